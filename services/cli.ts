import cluster from "node:cluster";
import { ErrorCode, isSwitchboardError } from "../core/errors.js";
import { exitOnConfigError, loadConfigOrExit, runGateway } from "./gateway/main.js";

const USAGE = `usage: switchboard <command>

commands:
  gateway     run one gateway process (config from environment variables, see docs/OPERATIONS.md)
  cluster     run a primary and WORKERS gateway workers on one port (the embedded default)
  publish     send one publish command to clients (switchboard publish --help)
  loadtest    size a cluster: N clients, R rooms, M msgs/s, a report (switchboard loadtest --help)
  help        show this text
`;

async function main(argv: string[]): Promise<void> {
  if (cluster.isWorker) {
    const { runClusterWorker } = await import("./cluster/worker.js");
    await runClusterWorker(loadConfigOrExit(process.env));
    return;
  }
  const [command] = argv;
  switch (command) {
    case "gateway":
      await runGateway(loadConfigOrExit(process.env));
      return;
    case "cluster": {
      const { runClusterPrimary } = await import("./cluster/primary.js");
      await runClusterPrimary(loadConfigOrExit(process.env));
      return;
    }
    case "publish": {
      const { runPublishCli, PUBLISH_USAGE } = await import("./publisher/cli.js");
      if (argv.includes("--help") || argv.includes("-h")) {
        process.stdout.write(PUBLISH_USAGE);
        return;
      }
      process.exitCode = await runPublishCli(argv.slice(1));
      return;
    }
    case "loadtest": {
      const { runLoadtestCli, LOADTEST_USAGE } = await import("./loadtest/cli.js");
      if (argv.includes("--help") || argv.includes("-h")) {
        process.stdout.write(LOADTEST_USAGE);
        return;
      }
      process.exitCode = await runLoadtestCli(argv.slice(1));
      return;
    }
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(USAGE);
      return;
    default:
      process.stderr.write(`switchboard: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
      process.exit(64); // EX_USAGE
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  // A setting found unusable after the environment was read (exit 78, one line naming it).
  if (isSwitchboardError(err, ErrorCode.INVALID_CONFIG)) exitOnConfigError(err);
  process.stderr.write(
    `switchboard: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});
