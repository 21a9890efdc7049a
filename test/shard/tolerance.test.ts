/**
 * Conformance: what a shard accepts from the gateway and what it sends as presence (PROTOCOL.md §1.3
 * "clients must ignore unknown keys, unknown `t`, and unknown ops", §6.1 PRESENCE_UPDATE, §6.2 op 3;
 * §10 items 47 and 51), plus malformed frames: none may crash the shard or close a healthy connection,
 * and `state.lastError` names the problem; a broken Hello or READY ends that connection and the shard
 * reconnects.
 *
 * Frames the simulator cannot produce on a fresh connection (a Hello without an interval, a READY of the
 * wrong shape) come from a wrapper around the simulator's transport that rewrites frames of one connection
 * (test/support/transportWrappers.ts); the simulator's `sendRaw` reaches only connections that already
 * IDENTIFYed/RESUMEd.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Redacted, Stream } from "effect"
import { InvalidCommand } from "../../src/Errors.ts"
import { Intents } from "../../src/protocol/Intents.ts"
import type { PresenceUpdateData } from "../../src/protocol/Payloads.ts"
import * as ShardModule from "../../src/Shard.ts"
import { GatewaySimulator } from "../../src/testing/GatewaySimulator.ts"
import { GatewayTransport } from "../../src/transport/GatewayTransport.ts"
import { realFramesTransport, rewritingTransport } from "../support/transportWrappers.ts"
import { advance, advanceInSteps, collectDispatches, guilds, I, layer, messageContents, phaseOf, recordStates, settle, startShard, token } from "./harness.ts"
import type { Dispatch } from "../../src/Dispatch.ts"

const statuses = new Set(["online", "dnd", "idle", "invisible", "offline"])
const activityKeys = new Set(["name", "state", "type", "url"])

/** Item 47's shape rules for a presence payload; returns what is wrong (empty when nothing is). */
const presenceProblems = (presence: unknown): Array<string> => {
  if (typeof presence !== "object" || presence === null) return ["not an object"]
  const p = presence as Record<string, unknown>
  const problems: Array<string> = []
  if (!("since" in p) || !(p.since === null || Number.isInteger(p.since))) problems.push("since")
  if (!Array.isArray(p.activities)) problems.push("activities")
  else {
    for (const activity of p.activities as Array<unknown>) {
      if (typeof activity !== "object" || activity === null) problems.push("activity not an object")
      else for (const key of Object.keys(activity)) if (!activityKeys.has(key)) problems.push(`activity.${key}`)
    }
  }
  if (typeof p.status !== "string" || !statuses.has(p.status)) problems.push("status")
  if (typeof p.afk !== "boolean") problems.push("afk")
  return problems
}

const initialPresence: PresenceUpdateData = {
  since: null,
  activities: [
    { name: "the gateway", type: 3 },
    { name: "a stream", type: 1, url: "https://twitch.tv/example" },
    { name: "Custom Status", type: 4, state: "testing" }
  ],
  status: "online",
  afk: false
}

const laterPresence: PresenceUpdateData = {
  since: 1_700_000_000_000,
  activities: [{ name: "idle things", type: 0, state: "away for a bit", url: null }],
  status: "idle",
  afk: true
}

describe("presence payloads", () => {
  it.effect("item 47: IDENTIFY presence and op 3 carry since, activities (name/state/type/url only), status, afk", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const shard = yield* startShard({ presence: initialPresence })
      yield* advance(100)
      expect(yield* phaseOf(shard)).toBe("ready")
      yield* shard.send({ op: 3, d: laterPresence })
      yield* advance(100)

      const [identify] = yield* sim.clientFrames({ op: 2 })
      const identifyPresence = (identify?.d as { presence?: unknown }).presence
      expect(presenceProblems(identifyPresence)).toEqual([])
      expect(identifyPresence).toEqual(initialPresence)

      const updates = yield* sim.clientFrames({ op: 3 })
      expect(updates.length).toBe(1)
      expect(presenceProblems(updates[0]!.d)).toEqual([])
      expect(updates[0]!.d).toEqual(laterPresence)
      // The gateway accepted both (a malformed presence closes with 4001).
      expect((yield* sim.connections)[0]!.closedAt).toBeNull()
    }).pipe(Effect.provide(layer())))

  it.effect("item 47: a presence with a field bots may not set, or a bad status, is refused locally and never sent", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const shard = yield* startShard()
      yield* advance(100)
      const withDetails = {
        ...laterPresence,
        activities: [{ name: "x", type: 0, details: "bots cannot set details" }]
      } as unknown as PresenceUpdateData
      const withBadStatus = { ...laterPresence, status: "away" } as unknown as PresenceUpdateData
      const withBadAfk = { ...laterPresence, afk: "no" } as unknown as PresenceUpdateData
      for (const d of [withDetails, withBadStatus, withBadAfk]) {
        const error = yield* Effect.flip(shard.send({ op: 3, d }))
        expect(error).toBeInstanceOf(InvalidCommand)
      }
      yield* advance(100)
      expect((yield* sim.clientFrames({ op: 3 })).length).toBe(0)

      // The same rule holds for the IDENTIFY presence: the shard refuses to start, opening nothing.
      const refused = yield* Effect.exit(ShardModule.make({
        token: Redacted.make(token),
        shardId: 0,
        shardCount: 1,
        intents: 1,
        gatewayUrl: sim.options.baseUrl,
        presence: withDetails
      }))
      expect(Exit.isFailure(refused)).toBe(true)
      expect((yield* sim.connections).length).toBe(1)
    }).pipe(Effect.provide(layer())))
})

describe("tolerance of unknown input", () => {
  it.effect("item 51: unknown fields, dispatch names and opcodes cause no close and no crash; a user-id-only PRESENCE_UPDATE and an unknown event are delivered", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const received = yield* collectDispatches
      const shard = yield* startShard({ intents: Intents.Guilds | Intents.GuildMessages | Intents.GuildPresences })
      const joined = yield* Effect.forkChild(shard.join)
      yield* advance(100)
      expect(yield* phaseOf(shard)).toBe("ready")
      // The simulator's Hello and READY already carry `_trace`; add unknown keys everywhere else too.
      yield* sim.dispatch("MESSAGE_CREATE", { guild_id: guilds[0], content: "traced", _trace: ["gateway-prd-1"], _new_field: { x: 1 } })
      yield* sim.sendRaw(0, `{"t":null,"s":null,"op":11,"d":null,"_trace":["top-level"],"future":[1,2,3]}`)
      yield* sim.dispatch("SOME_FUTURE_EVENT", { guild_id: guilds[0], answer: 42, nested: { list: [1, "two"] } })
      yield* sim.sendRaw(0, `{"t":null,"s":null,"op":5,"d":{"undocumented":true}}`)
      yield* sim.sendRaw(0, `{"t":null,"s":null,"op":42,"d":"text"}`)
      yield* sim.sendRaw(0, `{"op":99}`)
      yield* sim.dispatch("PRESENCE_UPDATE", { user: { id: "222078108977594368" } })
      yield* settle
      // No reaction at all: the connection is still open and the shard still ready.
      expect((yield* sim.connections).map((c) => c.closedAt)).toEqual([null])
      expect(yield* phaseOf(shard)).toBe("ready")

      const serverDispatches = yield* sim.serverFrames({ op: 0 })
      const seqOf = (t: string) => serverDispatches.find((f) => f.t === t)?.s
      const byName = (name: string) => received.filter((d) => d.name === name)
      // A dispatch's data may be parsed lazily (a getter): compare its four fields.
      const fields = (d: Dispatch) => ({ shard: d.shard, seq: d.seq, name: d.name, data: d.data })
      expect(byName("SOME_FUTURE_EVENT").map(fields)).toEqual([{
        shard: 0,
        seq: seqOf("SOME_FUTURE_EVENT"),
        name: "SOME_FUTURE_EVENT",
        data: { guild_id: guilds[0], answer: 42, nested: { list: [1, "two"] } }
      }])
      expect(byName("PRESENCE_UPDATE").map((d) => d.data)).toEqual([{ user: { id: "222078108977594368" } }])
      expect(byName("MESSAGE_CREATE").map((d) => d.data)).toEqual([
        { guild_id: guilds[0], content: "traced", _trace: ["gateway-prd-1"], _new_field: { x: 1 } }
      ])

      // And it keeps going: heartbeats continue, later dispatches arrive, the shard has not ended.
      const beatsBefore = (yield* sim.clientFrames({ op: 1 })).length
      yield* advanceInSteps(2 * I + 500)
      yield* sim.dispatch("MESSAGE_CREATE", { guild_id: guilds[0], content: "after" })
      yield* advance(100)
      expect((yield* sim.clientFrames({ op: 1 })).length).toBeGreaterThan(beatsBefore)
      expect(messageContents(received)).toEqual(["traced", "after"])
      expect(joined.pollUnsafe()).toBeUndefined()
      expect(yield* phaseOf(shard)).toBe("ready")
    }).pipe(Effect.provide(layer())))
})

describe("malformed frames", () => {
  it.effect("invalid JSON is skipped: no close, the shard keeps going and lastError names it", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const received = yield* collectDispatches
      const shard = yield* startShard()
      yield* advance(100)
      yield* sim.sendRaw(0, `{"op":0,"t":"MESSAGE_CREATE","s":`)
      yield* settle
      expect((yield* sim.connections).map((c) => c.closedAt)).toEqual([null])
      const state = yield* shard.state
      expect(state.phase).toBe("ready")
      expect(state.lastError).toMatch(/JSON/)
      yield* sim.dispatch("MESSAGE_CREATE", { guild_id: guilds[0], content: "still here" })
      yield* advance(100)
      expect(messageContents(received)).toEqual(["still here"])
    }).pipe(Effect.provide(layer())))

  it.effect("a dispatch without s is skipped: no close, the shard keeps going and lastError names it", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const received = yield* collectDispatches
      const shard = yield* startShard()
      yield* advance(100)
      const before = (yield* shard.state).sequence
      yield* sim.sendRaw(0, `{"op":0,"t":"MESSAGE_CREATE","d":{"content":"no sequence"}}`)
      yield* settle
      expect((yield* sim.connections).map((c) => c.closedAt)).toEqual([null])
      const state = yield* shard.state
      expect(state.phase).toBe("ready")
      expect(state.sequence).toBe(before)
      expect(state.lastError).toMatch(/MESSAGE_CREATE/)
      expect(state.lastError).toMatch(/`s`|sequence/)
      yield* sim.dispatch("MESSAGE_CREATE", { guild_id: guilds[0], content: "numbered" })
      yield* advance(100)
      expect(messageContents(received)).toEqual(["numbered"])
    }).pipe(Effect.provide(layer())))

  it.effect("a Hello without heartbeat_interval on a new connection: the shard drops that connection, reconnects and gets ready; lastError names it", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const transport = yield* rewritingTransport(1, (frame) => {
        const parsed = JSON.parse(frame) as { op: number }
        return parsed.op === 10 ? `{"t":null,"s":null,"op":10,"d":{"_trace":["sim"]}}` : frame
      })
      const shard = yield* startShard().pipe(Effect.provideService(GatewayTransport, transport))
      const states = yield* recordStates(shard)
      const joined = yield* Effect.forkChild(shard.join)
      yield* advanceInSteps(10_000)
      const connections = yield* sim.connections
      expect(connections.length).toBeGreaterThanOrEqual(2)
      expect(connections[0]!.closedBy).toBe("client")
      // Nothing but a close went out on the connection without a usable Hello.
      expect((yield* sim.clientFrames()).filter((f) => f.connectionId === connections[0]!.id)).toEqual([])
      expect(states.some((s) => s.lastError !== null && /heartbeat_interval|Hello/.test(s.lastError))).toBe(true)
      expect(yield* phaseOf(shard)).toBe("ready")
      expect(joined.pollUnsafe()).toBeUndefined()
    }).pipe(Effect.provide(layer())))

  it.effect("a corrupt zlib-stream message: lastError names it, the connection closes with 4000, a fresh context RESUMEs and every dispatch arrives once (items 46, 48)", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const { corruptNext, transport } = yield* realFramesTransport("zlib-stream")
      const received = yield* collectDispatches
      const shard = yield* startShard({ compression: "zlib-stream" }).pipe(Effect.provideService(GatewayTransport, transport))
      yield* shard.changes.pipe(Stream.filter((state) => state.phase === "ready"), Stream.runHead)
      yield* corruptNext
      yield* sim.dispatch("MESSAGE_CREATE", { guild_id: guilds[0], content: "lost on the wire" })
      yield* sim.dispatch("MESSAGE_CREATE", { guild_id: guilds[0], content: "after it" })
      // Decompression runs on node:zlib's threadpool, in real time. The corrupt message alone closes the
      // connection: no TestClock time passes (no heartbeat is due, so it is not taken for a zombie).
      yield* shard.changes.pipe(Stream.filter((s) => s.lastError !== null && /zlib-stream/.test(s.lastError)), Stream.runHead)
      yield* settle
      const [first] = yield* sim.connections
      expect([first!.closeCode, first!.closedBy]).toEqual([4000, "client"])
      // Then the reconnect waits on the TestClock (the backoff); from the new connection's open on, everything
      // (Hello, RESUME, the replay, RESUMED) moves in real time through zlib, and the test waits for READY.
      for (let step = 0; step < 100 && (yield* sim.connections).length < 2; step++) yield* advance(50)
      yield* shard.changes.pipe(Stream.filter((state) => state.phase === "ready"), Stream.runHead)
      yield* settle
      expect(messageContents(received)).toEqual(["lost on the wire", "after it"])
      const second = (yield* sim.connections)[1]
      // The session was kept: the next connection RESUMEs (its own inflate context reads the new stream).
      expect((yield* sim.clientFrames({ op: 6 })).map((f) => f.connectionId)).toEqual([second!.id])
      expect(yield* sim.clientFrames({ op: 2 })).toHaveLength(1)
      expect((yield* shard.state).phase).toBe("ready")
    }).pipe(Effect.provide(layer())))

  it.effect("a READY of the wrong shape: the shard drops that connection, reconnects, IDENTIFYs and gets ready; lastError names it", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const transport = yield* rewritingTransport(1, (frame) => {
        const parsed = JSON.parse(frame) as { t?: unknown }
        return parsed.t === "READY" ? JSON.stringify({ ...parsed, d: { v: 10, _trace: ["sim"] } }) : frame
      })
      const shard = yield* startShard().pipe(Effect.provideService(GatewayTransport, transport))
      const states = yield* recordStates(shard)
      const joined = yield* Effect.forkChild(shard.join)
      yield* advanceInSteps(12_000)
      const connections = yield* sim.connections
      expect(connections.length).toBeGreaterThanOrEqual(2)
      expect(connections[0]!.closedBy).toBe("client")
      expect(states.some((s) => s.lastError !== null && /READY/.test(s.lastError))).toBe(true)
      // The broken READY gave no session: the next connection IDENTIFYs, and the session is the new one.
      const identifies = yield* sim.clientFrames({ op: 2 })
      expect(identifies.length).toBe(2)
      const identified = connections.find((c) => c.id === identifies[1]!.connectionId)!
      expect(identified.id).toBeGreaterThan(connections[0]!.id)
      const state = yield* shard.state
      expect(state.phase).toBe("ready")
      expect(state.sessionId).toBe(identified.sessionId)
      expect(joined.pollUnsafe()).toBeUndefined()
    }).pipe(Effect.provide(layer())))
})
