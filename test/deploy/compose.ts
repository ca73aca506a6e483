import { readFileSync } from "node:fs";
import { parse } from "yaml";

/** The parts of a compose service these tests read. */
export interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile?: string };
  environment?: Record<string, string | number | boolean | null>;
  ports?: string[];
  volumes?: string[];
  profiles?: string[];
  healthcheck?: { test: string[] | string; interval?: string };
  depends_on?: Record<string, { condition: string }> | string[];
  stop_grace_period?: string;
  command?: string[] | string;
}

export interface ComposeFile {
  services: Record<string, ComposeService>;
}

/**
 * Reads a compose file as docker compose does for what these tests need: YAML with merge keys
 * (`<<: *gateway`), then `${VAR}`, `${VAR:-default}`, `${VAR-default}` and `$$` interpolated
 * from `vars` in every string.
 */
export function loadCompose(path: string, vars: Record<string, string | undefined>): ComposeFile {
  const document = parse(readFileSync(path, "utf8"), { merge: true }) as ComposeFile;
  return interpolate(document, vars) as ComposeFile;
}

function interpolate(value: unknown, vars: Record<string, string | undefined>): unknown {
  if (typeof value === "string") return interpolateString(value, vars);
  if (Array.isArray(value)) return value.map((item) => interpolate(item, vars));
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, interpolate(item, vars)]),
    );
  }
  return value;
}

export function interpolateString(text: string, vars: Record<string, string | undefined>): string {
  return text.replace(
    /\$\$|\$\{(\w+)(?:(:?)([-?])([^}]*))?\}|\$(\w+)/g,
    (whole, braced?: string, colon?: string, op?: string, arg?: string, bare?: string) => {
      if (whole === "$$") return "$";
      const name = (braced ?? bare)!;
      const value = vars[name];
      const unset = value === undefined || (colon === ":" && value === "");
      if (op === "-") return unset ? (arg ?? "") : value!;
      if (op === "?" && unset) throw new Error(`compose: ${name} is required: ${arg}`);
      return value ?? "";
    },
  );
}

/** Milliseconds of a compose duration such as `20s`, `1m30s`, `500ms`. */
export function durationMs(text: string): number {
  let total = 0;
  for (const [, amount, unit] of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
    const factor = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit as "ms" | "s" | "m" | "h"];
    total += Number(amount) * factor;
  }
  return total;
}
