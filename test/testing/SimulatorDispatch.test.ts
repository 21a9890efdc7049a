/**
 * What the simulator sends and records (PROTOCOL.md §3, §4, §6, §9): dispatch routing by guild (BigInt
 * formula, shard 0 for guild-less events, copies to every session of a tuple, coexisting shard counts),
 * replies to ops 8/31/43 including the all-members RATE_LIMITED rule, raw frames, and recordings that
 * never contain the token.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import { GatewaySimulator } from "../../src/testing/GatewaySimulator.ts"
import { connect, connectReady, identifyData, Query, ResumeUrl, shardOf, Token, withSimulator } from "./rawClient.ts"

const run = withSimulator({ heartbeatTimeoutMs: 3_600_000 })

/** 2^60: shard 1 of 3 with BigInt, shard 0 with JavaScript's 32-bit `>>`. */
const Big = "1152921504606846976"
const Small = "81384788765712384"

describe("GatewaySimulator dispatch routing", () => {
  it.effect("item 52: a guild event reaches only the sessions owning the guild; guild-less events reach shard 0 only", () =>
    run(Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const clients = []
      for (const id of [0, 1, 2]) {
        clients.push((yield* connectReady({ shard: [id, 3], intents: 0 })).client)
        yield* TestClock.adjust(5000)
      }
      expect(shardOf(Big, 3)).toBe(1)
      yield* sim.dispatch("MESSAGE_CREATE", { guild_id: Big, content: "big" })
      yield* sim.dispatch("MESSAGE_CREATE", { guild_id: Small, content: "small" })
      yield* sim.dispatch("GUILD_UPDATE", { id: Big, name: "renamed" }) // guild objects route by id
      yield* sim.dispatch("MESSAGE_CREATE", { content: "dm" })
      yield* sim.dispatch("ENTITLEMENT_CREATE", { id: "1", sku_id: "2" })
      const received = (yield* sim.serverFrames({ op: 0 }))
        .filter((f) => f.t !== "READY")
        .map((f) => [f.shard?.[0], f.t, f.s, (f.d as any).content ?? (f.d as any).name ?? null])
      expect(received).toEqual([
        [1, "MESSAGE_CREATE", 2, "big"],
        [shardOf(Small, 3), "MESSAGE_CREATE", shardOf(Small, 3) === 1 ? 3 : 2, "small"],
        [1, "GUILD_UPDATE", shardOf(Small, 3) === 1 ? 4 : 3, "renamed"],
        [0, "MESSAGE_CREATE", shardOf(Small, 3) === 0 ? 3 : 2, "dm"],
        [0, "ENTITLEMENT_CREATE", shardOf(Small, 3) === 0 ? 4 : 3, null]
      ])
      expect((yield* clients[1]!.next).d.content).toBe("big")
    })))

  it.effect("sessions with the same tuple each get their own copy; sessions of another shard count coexist", () =>
    run(Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const a = yield* connectReady({ shard: [1, 3], intents: 0 })
      yield* TestClock.adjust(5000)
      const b = yield* connectReady({ shard: [1, 3], intents: 0 })
      yield* TestClock.adjust(5000)
      const c = yield* connectReady({ shard: [shardOf(Big, 5), 5], intents: 0 })
      yield* TestClock.adjust(5000)
      const other = yield* connectReady({ shard: [(shardOf(Big, 5) + 1) % 5, 5], intents: 0 })
      yield* sim.dispatch("MESSAGE_CREATE", { guild_id: Big })
      for (const client of [a.client, b.client, c.client]) {
        expect(yield* client.next).toMatchObject({ t: "MESSAGE_CREATE", s: 2 })
      }
      expect((yield* sim.serverFrames({ op: 0 })).filter((f) => f.connectionId === 4 && f.t !== "READY")).toEqual([])
      expect(other.ready.s).toBe(1)
    })))

  it.effect("a resumable (disconnected) session numbers and buffers routed events; an expired one is dropped", () =>
    run(
      Effect.gen(function*() {
        const sim = yield* GatewaySimulator
        const { client } = yield* connectReady({ intents: 0 })
        yield* client.close(4000)
        yield* sim.dispatch("X", {})
        expect((yield* sim.sessions)[0]?.seq).toBe(2)
        yield* TestClock.adjust(1000)
        yield* sim.dispatch("X", {})
        expect(yield* sim.sessions).toEqual([])
      }),
      { resumeWindowMs: 1000 }
    ))
})

describe("GatewaySimulator commands", () => {
  const guild = "175928847299117063"

  it.effect("item 55: op 8 is answered by GUILD_MEMBERS_CHUNK dispatches carrying the nonce, chunk_index and chunk_count", () =>
    run(
      Effect.gen(function*() {
        const { client } = yield* connectReady({ intents: 1 | 2 }, 1)
        yield* client.send({ op: 8, d: { guild_id: guild, query: "", limit: 0, nonce: "n1" } })
        const chunks = [yield* client.next, yield* client.next, yield* client.next]
        expect(chunks.map((c) => [c.t, c.d.guild_id, c.d.nonce, c.d.chunk_index, c.d.chunk_count, c.d.members.length]))
          .toEqual([
            ["GUILD_MEMBERS_CHUNK", guild, "n1", 0, 3, 2],
            ["GUILD_MEMBERS_CHUNK", guild, "n1", 1, 3, 2],
            ["GUILD_MEMBERS_CHUNK", guild, "n1", 2, 3, 1]
          ])
        expect(chunks[0]!.d.members[0]).toMatchObject({ user: { id: "300000000000000000", username: "member-1" } })
        // by user id, with one unknown id
        yield* client.send({ op: 8, d: { guild_id: guild, user_ids: ["300000000000000004", "5"], limit: 0, nonce: "n2" } })
        const byId = yield* client.next
        expect(byId.d).toMatchObject({ chunk_count: 1, not_found: ["5"], nonce: "n2" })
        expect(byId.d.members.map((m: any) => m.user.id)).toEqual(["300000000000000004"])
        // a prefix query; an over-long nonce is ignored
        yield* client.send({ op: 8, d: { guild_id: guild, query: "member-2", limit: 10, nonce: "x".repeat(33) } })
        const prefix = yield* client.next
        expect(prefix.d.members.map((m: any) => m.user.username)).toEqual(["member-2"])
        expect("nonce" in prefix.d).toBe(false)
      }),
      { guilds: [guild], membersPerGuild: 5, memberChunkSize: 2 }
    ))

  it.effect("item 43/44: a second all-members request for a guild within 30 s gets RATE_LIMITED instead", () =>
    run(
      Effect.gen(function*() {
        const { client } = yield* connectReady({ intents: 1 | 2 }, 1)
        const all = (nonce: string) => client.send({ op: 8, d: { guild_id: guild, query: "", limit: 0, nonce } })
        yield* all("a")
        expect((yield* client.next).t).toBe("GUILD_MEMBERS_CHUNK")
        yield* TestClock.adjust(12_500)
        yield* all("b")
        expect(yield* client.next).toMatchObject({
          t: "RATE_LIMITED",
          s: 4, // READY 1, GUILD_CREATE 2, chunk 3: RATE_LIMITED takes a sequence number too
          d: { opcode: 8, retry_after: 17.5, meta: { guild_id: guild, nonce: "b" } }
        })
        // a query for a name is not an all-members request
        yield* client.send({ op: 8, d: { guild_id: guild, query: "m", limit: 1 } })
        expect((yield* client.next).t).toBe("GUILD_MEMBERS_CHUNK")
        yield* TestClock.adjust(17_500)
        yield* all("c")
        expect(yield* client.next).toMatchObject({ t: "GUILD_MEMBERS_CHUNK", d: { nonce: "c" } })
      }),
      { guilds: [guild] }
    ))

  it.effect("op 8 for a guild the session does not hold goes unanswered; a malformed op 8 closes with 4001", () =>
    run(
      Effect.gen(function*() {
        const sim = yield* GatewaySimulator
        const other = "222078108977594368"
        const { client } = yield* connectReady({ intents: 0, shard: [shardOf(guild, 2), 2] })
        yield* client.send({ op: 8, d: { guild_id: "4194304", query: "", limit: 0 } }) // not a guild of the bot
        if (shardOf(other, 2) !== shardOf(guild, 2)) yield* client.send({ op: 8, d: { guild_id: other, query: "", limit: 0 } })
        expect((yield* sim.serverFrames({ op: 0 })).map((f) => f.t)).toEqual(["READY"])
        yield* client.send({ op: 8, d: { guild_id: [guild], query: "", limit: 0 } })
        expect((yield* client.untilClosed).closed.code).toBe(4001)
      }),
      { guilds: [guild, "222078108977594368"] }
    ))

  it.effect("op 31 → SOUNDBOARD_SOUNDS per guild, op 43 → CHANNEL_INFO, op 3 and op 4 are accepted and recorded", () =>
    run(
      Effect.gen(function*() {
        const sim = yield* GatewaySimulator
        const second = "222078108977594368"
        const { client } = yield* connectReady({ intents: 0 })
        yield* client.send({ op: 3, d: { since: null, activities: [{ name: "x", type: 0 }], status: "idle", afk: false } })
        yield* client.send({ op: 4, d: { guild_id: guild, channel_id: null, self_mute: false, self_deaf: true } })
        yield* client.send({ op: 31, d: { guild_ids: [guild, second] } })
        yield* client.send({ op: 43, d: { guild_id: guild, fields: ["status"] } })
        const replies = [yield* client.next, yield* client.next, yield* client.next]
        expect(replies.map((r) => [r.t, r.d])).toEqual([
          ["SOUNDBOARD_SOUNDS", { guild_id: guild, soundboard_sounds: [] }],
          ["SOUNDBOARD_SOUNDS", { guild_id: second, soundboard_sounds: [] }],
          ["CHANNEL_INFO", { guild_id: guild, channels: [] }]
        ])
        expect((yield* sim.clientFrames()).map((f) => f.op)).toEqual([2, 3, 4, 31, 43])
        expect((yield* sim.clientFrames({ op: 3 }))[0]?.d).toMatchObject({ status: "idle" })
        // a presence with a bad status is a bad payload
        yield* client.send({ op: 3, d: { since: null, activities: [], status: "busy", afk: false } })
        expect((yield* client.untilClosed).closed.code).toBe(4001)
      }),
      { guilds: [guild, "222078108977594368"] }
    ))
})

describe("GatewaySimulator recording", () => {
  it.effect("sendRaw delivers the text verbatim and records it (parsed when it is JSON)", () =>
    run(Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const { client } = yield* connectReady({ intents: 0, shard: [0, 1] })
      yield* sim.sendRaw(0, "{not json")
      yield* sim.sendRaw([0, 1], '{"t":"SOMETHING_NEW","s":null,"op":0,"d":{"_trace":["x"]}}')
      yield* sim.sendRaw([0, 2], "{}") // no connection with that tuple
      expect([yield* client.nextText, yield* client.nextText]).toEqual([
        "{not json",
        '{"t":"SOMETHING_NEW","s":null,"op":0,"d":{"_trace":["x"]}}'
      ])
      const raw = (yield* sim.serverFrames()).slice(-2)
      expect(raw.map((f) => [f.op, f.t, f.raw])).toEqual([[null, null, "{not json"], [0, "SOMETHING_NEW", undefined]])
    })))

  it.effect("records frames both ways in order with connection, time, shard, op, t, s and byte size", () =>
    run(Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const { client } = yield* connectReady({ intents: 0, shard: [0, 1] })
      yield* TestClock.adjust(700)
      yield* client.send({ op: 1, d: 1 })
      const frames = yield* sim.frames
      expect(frames.map((f) => [f.connectionId, f.direction, f.at, f.shard, f.op, f.t, f.s])).toEqual([
        [1, "server", 0, null, 10, null, null],
        [1, "client", 0, [0, 1], 2, null, null],
        [1, "server", 0, [0, 1], 0, "READY", 1],
        [1, "client", 700, [0, 1], 1, null, null],
        [1, "server", 700, [0, 1], 11, null, null]
      ])
      expect(frames[0]?.bytes).toBe(Buffer.byteLength('{"t":null,"s":null,"op":10,"d":{"heartbeat_interval":1500,"_trace":["sim"]}}'))
      expect(frames[3]?.bytes).toBe(Buffer.byteLength(JSON.stringify({ op: 1, d: 1 })))
      expect(yield* sim.clientFrames({ op: 1, shard: 0 })).toHaveLength(1)
      expect(yield* sim.clientFrames({ shard: [0, 2] })).toHaveLength(0)
      yield* sim.clearFrames
      expect(yield* sim.frames).toEqual([])
    })))

  it.effect("the recordings contain the token nowhere (IDENTIFY, RESUME, malformed and oversize frames, rotation)", () =>
    run(Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const { client, ready } = yield* connectReady()
      yield* client.close(4000)
      const resumed = yield* connect(ResumeUrl + Query)
      yield* resumed.next
      yield* resumed.resume(ready.d.session_id, 1)
      yield* resumed.next
      yield* resumed.sendText(`{"op":2,"d":{"token":"${Token}",`) // malformed, contains the token
      const oversize = yield* connect()
      yield* oversize.next
      yield* oversize.send({ op: 2, d: { ...identifyData(), pad: "x".repeat(5000), again: Token } })
      const raw = yield* connect()
      yield* raw.next
      yield* raw.sendText(`garbage ${Token} garbage`)
      yield* sim.rotateToken
      const json = JSON.stringify({ frames: yield* sim.frames, connections: yield* sim.connections })
      expect(json).toContain("<redacted>")
      expect(json).not.toContain(Token)
      const identify = (yield* sim.clientFrames({ op: 2 }))[0]
      expect((identify?.d as any).token).toBe("<redacted>")
      expect((yield* sim.clientFrames()).filter((f) => f.raw !== undefined)).toHaveLength(3)
    })))
})
