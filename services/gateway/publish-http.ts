import type { IncomingMessage, ServerResponse } from "node:http";
import { ErrorCode, isSwitchboardError } from "../../core/errors.js";
import { checkPublishCommand, type PublishCommand } from "../../core/publish-command.js";
import { bearerCheck } from "./bearer.js";
import { send } from "./http.js";
import type { Logger } from "./logger.js";
import type { HttpRoute } from "./server.js";

export const PUBLISH_PATH = "/v1/publish";

export interface PublishRouteOptions {
  /** Accepted bearer keys (PUBLISH_API_KEYS); none means the route answers 404 publish_disabled. */
  apiKeys: readonly string[];
  /** Largest body, in bytes (MAX_COMMAND_BYTES). */
  maxCommandBytes: number;
  /** Hands a valid command to the backplane (the gateway passes `deliver`). */
  deliver: (command: PublishCommand) => void;
  /** 503 while false (backplane down, draining). */
  isReady: () => boolean;
  logger: Logger;
  /** Called once per request with the HTTP status, for metrics. */
  onResult?: (status: number) => void;
}

/**
 * `POST /v1/publish` with a publish command as JSON body and `Authorization: Bearer <key>`:
 * 202 `{ok:true, id}` once handed to the backplane; 400 `{error, reason}` for a bad command,
 * 401 without a valid key, 413 above `maxCommandBytes`, 503 when the gateway is not ready.
 */
export function createPublishRoute(options: PublishRouteOptions): HttpRoute {
  const { logger } = options;
  const authorized = bearerCheck(options.apiKeys);
  const enabled = options.apiKeys.length > 0;
  if (!enabled) {
    logger.warn({ path: PUBLISH_PATH }, "no PUBLISH_API_KEYS: the HTTP publish API is disabled");
  }

  return (req, res) => {
    if ((req.url ?? "/").split("?")[0] !== PUBLISH_PATH) return false;
    const reply = (status: number, body: unknown) => {
      options.onResult?.(status);
      send(res, status, body);
    };
    if (!enabled) {
      reply(404, { error: "publish_disabled", reason: "no PUBLISH_API_KEYS configured" });
      return true;
    }
    if (req.method !== "POST") {
      res.setHeader("allow", "POST");
      reply(405, { error: "method_not_allowed" });
      return true;
    }
    if (!authorized(req)) {
      res.setHeader("www-authenticate", 'Bearer realm="switchboard"');
      closeAfter(req, res);
      reply(401, { error: "unauthorized" });
      return true;
    }
    // The body is read as it arrives: a compressed one would be refused as invalid JSON, with a
    // reason that does not say why.
    const encoding = req.headers["content-encoding"];
    if (encoding !== undefined && encoding.trim().toLowerCase() !== "identity") {
      closeAfter(req, res);
      reply(415, {
        error: "unsupported_encoding",
        reason: `Content-Encoding ${encoding.slice(0, 50)} is not supported: send the command uncompressed`,
      });
      return true;
    }
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > options.maxCommandBytes) {
      closeAfter(req, res);
      reply(413, tooLarge(declared, options.maxCommandBytes));
      return true;
    }
    readBody(req, options.maxCommandBytes).then(
      (body) => {
        if (body === undefined) {
          closeAfter(req, res);
          reply(413, tooLarge(undefined, options.maxCommandBytes));
          return;
        }
        const check = checkPublishCommand(body, { maxBytes: options.maxCommandBytes });
        if (!check.ok) {
          return reply(check.code === "too_large" ? 413 : 400, {
            error: check.code,
            reason: check.reason,
          });
        }
        if (!options.isReady()) return reply(503, { error: "unavailable" });
        try {
          options.deliver(check.command);
        } catch (err) {
          // A command that can never be delivered (a namespace not served) is the caller's error.
          if (isSwitchboardError(err, ErrorCode.INVALID_ARGUMENT)) {
            return reply(400, { error: "invalid_command", reason: err.message });
          }
          logger.error({ err }, "publish over HTTP failed");
          return reply(500, { error: "internal" });
        }
        reply(202, { ok: true, id: check.command.id ?? null });
      },
      (err: unknown) => {
        logger.debug({ err }, "publish request body failed");
        res.destroy();
      },
    );
    return true;
  };
}

function tooLarge(bytes: number | undefined, maxBytes: number) {
  const size = bytes === undefined ? "" : ` ${bytes} bytes,`;
  return { error: "too_large", reason: `command is${size} over the limit of ${maxBytes} bytes` };
}

/** The body, or undefined as soon as it exceeds `maxBytes`. */
function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        req.off("data", onData);
        req.off("end", onEnd);
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => resolve(Buffer.concat(chunks));
    req.on("data", onData);
    req.on("end", onEnd);
    req.once("error", reject);
  });
}

/** Before an answer given without reading the whole body: close instead of reading the rest. */
function closeAfter(req: IncomingMessage, res: ServerResponse): void {
  if (req.complete) return;
  res.setHeader("connection", "close");
  res.once("finish", () => req.destroy());
}
