import { parseArgs } from "node:util";
import {
  ErrorCode,
  errorMessage,
  isSwitchboardError,
  SwitchboardError,
} from "../../core/errors.js";
import { isPositiveInteger } from "../../core/validate.js";
import { createPublisher, type PublisherOptions, type PublishInput } from "./publisher.js";

export const PUBLISH_USAGE = `usage: switchboard publish --via amqp|redis|http --event NAME [options]

  --via VIA         amqp (RabbitMQ queue), redis (Redis stream) or http (a gateway's /v1/publish)
  --url URL         broker or gateway URL (defaults: amqp://localhost, redis://localhost:6379,
                    http://localhost:3000)
  --event NAME      event the clients receive
  --data JSON       the event's argument, any JSON value (default null)
  --room ROOM       a room to reach; repeat for more; none reaches every client of the namespace
  --except ROOM     clients in this room do not receive it; repeat for more
  --namespace NSP   Socket.IO namespace (default /)
  --id ID           the command's id (default: a random UUID)
  --key KEY         API key, only with --via http (one of the gateway's PUBLISH_API_KEYS)
  --queue NAME      RabbitMQ queue, only with --via amqp (default switchboard.publish)
  --stream NAME     Redis stream, only with --via redis (default switchboard:publish)
  --timeout MS      give up waiting for the confirmation after MS (default 10000)

exit codes: 0 published, 64 bad usage, 65 invalid command, 69 broker or gateway unavailable,
  77 API key refused
`;

const DEFAULT_URLS = {
  amqp: "amqp://localhost",
  redis: "redis://localhost:6379",
  http: "http://localhost:3000",
} as const;

const usage = (message: string) => new SwitchboardError(ErrorCode.USAGE, message);

/** `switchboard publish …`: prints one line and returns the exit code. */
export async function runPublishCli(
  argv: string[],
  io: { out: (line: string) => void; err: (line: string) => void } = {
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
  },
): Promise<number> {
  let options: PublisherOptions;
  let command: PublishInput;
  try {
    ({ options, command } = parse(argv));
  } catch (err) {
    // parseArgs throws TypeErrors (unknown flag, missing value): bad usage too.
    if (!(isSwitchboardError(err, ErrorCode.USAGE) || err instanceof TypeError)) throw err;
    io.err(`switchboard publish: ${err.message}\n\n${PUBLISH_USAGE}`);
    return 64; // EX_USAGE
  }
  const publisher = createPublisher(options);
  try {
    const { id, via } = await publisher.publish(command);
    io.out(`published ${id ?? "(no id)"} via ${via}`);
    return 0;
  } catch (err) {
    io.err(`switchboard publish: ${errorMessage(err)}`);
    if (isSwitchboardError(err, "SWB_ERR_INVALID_ARGUMENT")) return 65; // EX_DATAERR
    if (isSwitchboardError(err, "SWB_ERR_UNAUTHORIZED")) return 77; // EX_NOPERM
    if (isSwitchboardError(err)) return 69; // EX_UNAVAILABLE
    return 1;
  } finally {
    await publisher.close();
  }
}

function parse(argv: string[]): { options: PublisherOptions; command: PublishInput } {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      via: { type: "string" },
      url: { type: "string" },
      event: { type: "string" },
      data: { type: "string" },
      room: { type: "string", multiple: true },
      except: { type: "string", multiple: true },
      namespace: { type: "string" },
      id: { type: "string" },
      key: { type: "string" },
      queue: { type: "string" },
      stream: { type: "string" },
      timeout: { type: "string" },
    },
  });
  if (positionals.length > 0) throw usage(`unexpected argument ${JSON.stringify(positionals[0])}`);
  const via = values.via;
  if (via !== "amqp" && via !== "redis" && via !== "http") {
    throw usage("--via must be amqp, redis or http");
  }
  // A flag another --via would use is a mistake, not something to ignore silently.
  for (const [flag, owner] of [
    ["queue", "amqp"],
    ["stream", "redis"],
    ["key", "http"],
  ] as const) {
    if (values[flag] !== undefined && via !== owner) {
      throw usage(`--${flag} is only valid with --via ${owner} (got --via ${via})`);
    }
  }
  if (values.event === undefined) throw usage("--event is required");
  let data: unknown = null;
  if (values.data !== undefined) {
    try {
      data = JSON.parse(values.data);
    } catch (err) {
      throw usage(`--data is not JSON: ${errorMessage(err)}`);
    }
  }
  let timeoutMs: number | undefined;
  if (values.timeout !== undefined) {
    timeoutMs = Number(values.timeout);
    if (!isPositiveInteger(timeoutMs)) {
      throw usage("--timeout must be a positive whole number of milliseconds");
    }
  }
  const url = values.url ?? DEFAULT_URLS[via];
  const common = { url, timeoutMs };
  let options: PublisherOptions;
  if (via === "amqp") options = { via, ...common, queue: values.queue };
  else if (via === "redis") options = { via, ...common, stream: values.stream };
  else {
    if (!values.key) throw usage("--key is required with --via http");
    options = { via, ...common, apiKey: values.key };
  }
  const command: PublishInput = { event: values.event, data };
  if (values.room) command.rooms = values.room;
  if (values.except) command.except = values.except;
  if (values.namespace !== undefined) command.namespace = values.namespace;
  if (values.id !== undefined) command.id = values.id;
  return { options, command };
}
