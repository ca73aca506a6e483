import { describe, expect } from "vitest";
import { request, whoami } from "../../support/clients.js";
import { arrivedAt, join, type SuiteContext, settle, uniqueRoom } from "../context.js";

/** The client protocol (join / leave / publish / whoami) with clients on different processes. */
export function clientProtocolCases(ctx: SuiteContext): void {
  describe("client protocol", () => {
    ctx.case(
      "client-protocol",
      "a client's publish reaches the room's members on other processes, not the sender or others",
      async () => {
        const room = uniqueRoom("chat");
        const [member, sender, outsider] = await ctx.clients(0, 1, 2);
        await Promise.all([join(member, room), join(sender, room)]);

        const identities = await Promise.all([member, sender, outsider].map(whoami));
        expect(identities.map((me) => me.gateway)).toEqual(
          [0, 1, 2].map((i) => ctx.node(i).gatewayId),
        );
        expect(identities[0]?.rooms).toEqual([room]);
        expect(identities[2]?.rooms).toEqual([]);

        const got = ctx.received(member, "chat");
        const notGot = [sender, outsider].map((s) => ctx.received(s, "chat"));
        const payload = { room, event: "chat", data: { text: "hi", n: 1 } };
        expect(await request(sender, "publish", payload)).toEqual({ ok: true });
        await arrivedAt([got]);
        await settle(ctx.node(1), [member, sender, outsider]);
        expect(got).toEqual([[{ text: "hi", n: 1 }]]);
        for (const list of notGot) expect(list).toEqual([]);

        // After `leave`, the former member gets nothing more.
        expect(await request(member, "leave", room)).toEqual({ ok: true });
        expect(await request(sender, "publish", { ...payload, data: "again" })).toEqual({
          ok: true,
        });
        await settle(ctx.node(1), [member]);
        expect(got).toHaveLength(1);
      },
    );
  });
}
