import { ErrorCode, isSwitchboardError } from "../../core/errors.js";
import { runLoadtest } from "./coordinator.js";
import { LOADTEST_USAGE, parseLoadtestArgs } from "./options.js";
import { formatSummary } from "./report.js";

export { LOADTEST_USAGE };

/** `switchboard loadtest …`: runs, prints the summary, returns the exit code. */
export async function runLoadtestCli(argv: string[]): Promise<number> {
  let options: ReturnType<typeof parseLoadtestArgs>;
  try {
    options = parseLoadtestArgs(argv);
  } catch (err) {
    if (!isSwitchboardError(err, ErrorCode.USAGE)) throw err;
    process.stderr.write(`switchboard loadtest: ${err.message}\n\n${LOADTEST_USAGE}`);
    return 64; // EX_USAGE
  }
  const { report, exitCode } = await runLoadtest(options, {
    out: process.stdout,
    err: process.stderr,
  });
  process.stdout.write(formatSummary(report));
  if (options.jsonFile)
    process.stderr.write(`loadtest: JSON report written to ${options.jsonFile}\n`);
  if (options.htmlFile)
    process.stderr.write(`loadtest: HTML report written to ${options.htmlFile}\n`);
  return exitCode;
}
