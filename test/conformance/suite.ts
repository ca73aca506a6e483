import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  type BackplaneDescription,
  CONFORMANCE_CASES,
  MULTI_PROCESS_CASES,
} from "../support/backplanes.js";
import { closeAllClients } from "../support/clients.js";
import { broadcastCases } from "./cases/broadcast.js";
import { clientProtocolCases } from "./cases/client-protocol.js";
import { deliveryPathCases } from "./cases/delivery-paths.js";
import { livenessCases } from "./cases/liveness.js";
import { requestCases } from "./cases/requests.js";
import { PROCESSES, SuiteContext } from "./context.js";

/**
 * The backplane conformance suite (docs/ARCHITECTURE.md, "Tests"): the same cases for every backplane,
 * against real gateway processes (test/support/harness) on a real broker. The processes are
 * shared by the cases of one backplane; each case uses rooms of its own and closes its clients.
 *
 * Adding a backplane: describe it in test/support/backplanes.ts, then one test file with
 * `conformanceSuite(backplanes.<name>)`.
 */
export function conformanceSuite(backplane: BackplaneDescription): void {
  const processes = backplane.topology === "single" ? 1 : PROCESSES;
  describe(`backplane "${backplane.name}" (${processes} ${backplane.topology === "cluster" ? "cluster workers" : "processes"})`, () => {
    const ctx = new SuiteContext(backplane);
    beforeAll(() => ctx.start(), 120_000);
    afterAll(() => ctx.stop(), 60_000);
    afterEach(() => closeAllClients());

    it("declares every case it does not run, each with a reason", () => {
      const declared = Object.entries(backplane.notApplicable);
      for (const [id, reason] of declared) {
        expect(CONFORMANCE_CASES).toContain(id);
        expect(reason, id).toMatch(/\w{3,}/);
      }
      if (backplane.topology === "single") {
        expect(declared.map(([id]) => id).sort()).toEqual([...MULTI_PROCESS_CASES].sort());
      } else {
        // Multi-process backplanes run the whole suite.
        expect(declared).toEqual([]);
      }
    });

    broadcastCases(ctx);
    requestCases(ctx);
    clientProtocolCases(ctx);
    livenessCases(ctx);
    deliveryPathCases(ctx);
  });
}
