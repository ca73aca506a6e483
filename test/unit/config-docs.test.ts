import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { defaultOf, fieldOf, loadConfig, VARIABLES } from "../../services/gateway/config.js";

/**
 * docs/OPERATIONS.md's variable table is the operators' copy of the config schema: a variable
 * added to one and not the other fails here. A row may name several variables (`A` / `B`); its
 * default cell then lists their defaults in the same order.
 */

const OPERATIONS = new URL("../../docs/OPERATIONS.md", import.meta.url);

interface Row {
  names: string[];
  defaults: string[];
}

function variableTable(markdown: string): Row[] {
  const lines = markdown.split("\n");
  const header = lines.findIndex((line) => /^\|\s*variable\s*\|\s*default\s*\|/.test(line));
  if (header < 0) throw new Error("docs/OPERATIONS.md has no | variable | default | table");
  const rows: Row[] = [];
  for (const line of lines.slice(header + 2)) {
    if (!line.startsWith("|")) break;
    const [name = "", fallback = ""] = line.split("|").slice(1);
    rows.push({
      names: [...name.matchAll(/`([A-Z][A-Z0-9_]*)`/g)].map((m) => m[1] as string),
      defaults: [...fallback.matchAll(/`([^`]*)`/g)].map((m) => m[1] as string),
    });
  }
  return rows;
}

const rows = variableTable(readFileSync(OPERATIONS, "utf8"));
const documented = rows.flatMap((row) => row.names);

describe("docs/OPERATIONS.md and the config schema", () => {
  it("the table lists every variable of the schema, and only those", () => {
    expect(documented.length).toBeGreaterThan(10);
    expect([...VARIABLES].filter((name) => !documented.includes(name))).toEqual([]);
    expect(documented.filter((name) => !(VARIABLES as readonly string[]).includes(name))).toEqual(
      [],
    );
    expect(new Set(documented).size).toBe(documented.length);
  });

  it("the defaults the table writes are the schema's", () => {
    let compared = 0;
    for (const row of rows) {
      if (row.defaults.length < row.names.length) continue; // "see PROTOCOL.md", "CPU count"…
      row.names.forEach((name, i) => {
        const written = row.defaults[i] as string;
        if (written.includes("<")) return; // a computed default, like <hostname>:<pid>
        expect({ name, default: written }).toEqual({
          name,
          default: defaultOf(name as (typeof VARIABLES)[number]),
        });
        compared++;
      });
    }
    expect(compared).toBeGreaterThan(10);
  });

  it("every variable has its Config field, named after it", () => {
    // Optional variables without a default are absent unless set: set them all.
    const config = loadConfig({
      REDIS_URL: "redis://localhost:6379",
      AMQP_URL: "amqp://localhost",
      AUTH_JWT_SECRET: "x".repeat(32),
      AUTH_JWKS_URL: "https://issuer.example/jwks.json",
      AUTH_JWT_ISSUER: "https://issuer.example",
      AUTH_JWT_AUDIENCE: "switchboard",
      AUTH_DEFAULT_ROOMS: "lobby",
      AUTH_DEFAULT_PUBLISH: "lobby",
      PYTHON_BRIDGE_URL: "redis://localhost:6379",
      METRICS_TOKEN: "m".repeat(16),
      TLS_CERT_FILE: fileURLToPath(OPERATIONS),
      TLS_KEY_FILE: fileURLToPath(OPERATIONS),
      TLS_CA_FILE: fileURLToPath(OPERATIONS),
    });
    for (const name of VARIABLES) expect(Object.keys(config)).toContain(fieldOf(name));
    expect(fieldOf("AUTH_JWKS_URL")).toBe("authJwksUrl");
  });
});
