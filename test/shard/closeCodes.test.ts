/**
 * Conformance: what a shard does after each close code (PROTOCOL.md §2 table, §1.10, §10 items 31–39).
 *
 * Every assertion reads the simulator's recordings (connections with their URLs and close codes, the
 * frames of each connection, refused connection attempts) and, for the [API] parts, the shard's typed
 * `join` failure and its state. Fatal codes are triggered the way Discord would where the simulator can
 * (bad token, bad shard tuple, undocumented or unapproved intents, too many guilds), else with `sim.close`.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Option, Redacted } from "effect"
import { Intents } from "../../src/protocol/Intents.ts"
import { SessionStore } from "../../src/SessionStore.ts"
import type { Shard } from "../../src/Shard.ts"
import { GatewaySimulator, type RecordedFrame } from "../../src/testing/GatewaySimulator.ts"
import { advance, advanceInSteps, I, layer, phaseOf, startShard, tau } from "./harness.ts"

/** The first frame that is not a heartbeat: the session-start frame (IDENTIFY or RESUME). */
const sessionStart = (frames: ReadonlyArray<RecordedFrame>): RecordedFrame | undefined => frames.find((f) => f.op !== 1)

/**
 * Closes shard 0's connection from the server with `code` and lets 8 s pass; then returns what happened
 * after the close: that connection, the connections opened after it, and the first session-start frame
 * (IDENTIFY or RESUME) sent after it, with its connection. Found by code and time rather than by index, so
 * an unrelated extra reconnect cannot shift it.
 */
const closeAndFollow = (code: number) =>
  Effect.gen(function*() {
    const sim = yield* GatewaySimulator
    yield* sim.close(0, code)
    yield* advanceInSteps(8000)
    const connections = yield* sim.connections
    const index = connections.findIndex((c) => c.closeCode === code && c.closedBy === "server")
    expect(index).toBeGreaterThanOrEqual(0)
    const closed = connections[index]!
    const later = connections.slice(index + 1)
    expect(later.length).toBeGreaterThanOrEqual(1)
    const laterIds = new Set(later.map((c) => c.id))
    const frames = (yield* sim.frames).filter((f) => f.direction === "client" && laterIds.has(f.connectionId))
    const start = sessionStart(frames)
    expect(start).toBeDefined()
    const startConnection = later.find((c) => c.id === start!.connectionId)!
    /** The connections opened after the close, up to the one that carried the session start. */
    const untilStart = later.filter((c) => c.id <= startConnection.id)
    return { closed, later, frames, start: start!, startConnection, untilStart }
  })

/** The READY `d` the simulator sent (the first READY of the test). */
const readyData = Effect.map(
  GatewaySimulator.use((sim) => sim.serverFrames({ op: 0 })),
  (frames) => frames.find((f) => f.t === "READY")?.d as { readonly session_id: string } | undefined
)

/** Starts shard 0/1, waits for READY and for a heartbeat ACK after it (a healthy session). */
const readyShard = (overrides: Parameters<typeof startShard>[0] = {}) =>
  Effect.gen(function*() {
    const shard = yield* startShard(overrides)
    yield* advance(100)
    expect(yield* phaseOf(shard)).toBe("ready")
    yield* advanceInSteps(I + 500)
    return shard
  })

/** Forks `shard.join` so a test can look at how (and whether) the shard ended without blocking. */
const watchJoin = (shard: Shard) => Effect.forkChild(shard.join)

const fatalError = <E>(exit: Exit.Exit<void, E> | undefined): E | undefined =>
  exit === undefined ? undefined : Option.getOrUndefined(Exit.findErrorOption(exit))

describe("close codes", () => {
  for (const code of [4000, 4001, 4002, 4008]) {
    it.effect(`item 31: after ${code} the shard reconnects to the resume URL and sends RESUME`, () =>
      Effect.gen(function*() {
        const sim = yield* GatewaySimulator
        const shard = yield* readyShard()
        const ready = yield* readyData
        const { frames, later, start } = yield* closeAndFollow(code)
        expect(later[0]!.url.startsWith(sim.options.resumeUrl)).toBe(true)
        expect(start.op).toBe(6)
        expect((start.d as { session_id?: unknown }).session_id).toBe(ready?.session_id)
        expect(frames.some((f) => f.op === 2)).toBe(false)
        expect(yield* phaseOf(shard)).toBe("ready")
      }).pipe(Effect.provide(layer())))
  }

  for (const code of [4003, 4007, 4009]) {
    it.effect(`item 32: after ${code} the shard reconnects to the base URL and sends IDENTIFY, not RESUME`, () =>
      Effect.gen(function*() {
        const sim = yield* GatewaySimulator
        const shard = yield* readyShard()
        const { frames, start, untilStart } = yield* closeAndFollow(code)
        const ready = yield* readyData
        for (const connection of untilStart) expect(connection.url.startsWith(sim.options.baseUrl)).toBe(true)
        expect(start.op).toBe(2)
        // The dead session is never resumed.
        expect(frames.some((f) => f.op === 6 && (f.d as { session_id?: unknown }).session_id === ready?.session_id))
          .toBe(false)
        expect(yield* phaseOf(shard)).toBe("ready")
      }).pipe(Effect.provide(layer())))
  }

  it.effect("item 33: after 4005 the shard reconnects and starts a session (IDENTIFY or RESUME)", () =>
    Effect.gen(function*() {
      const shard = yield* readyShard()
      const { start } = yield* closeAndFollow(4005)
      expect([2, 6]).toContain(start.op)
      expect(yield* phaseOf(shard)).toBe("ready")
    }).pipe(Effect.provide(layer())))

  it.effect("item 34: a wrong token (4004 on IDENTIFY) opens no new connection for well over 30 s and ends AuthenticationFailed", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const shard = yield* startShard({ token: Redacted.make("not-the-simulator-token") })
      const joined = yield* watchJoin(shard)
      yield* advanceInSteps(120_000)
      const connections = yield* sim.connections
      expect(connections.length).toBe(1)
      expect(connections[0]!.closeCode).toBe(4004)
      expect(connections[0]!.closedBy).toBe("server")
      expect((yield* sim.refusedConnections).length).toBe(0)
      const error = fatalError(joined.pollUnsafe())
      expect(error?._tag).toBe("AuthenticationFailed")
      expect(error?.code).toBe(4004)
      expect(yield* phaseOf(shard)).toBe("fatal")
    }).pipe(Effect.provide(layer())))

  it.effect("item 34: 4004 on a live session opens no new connection for well over 30 s and ends AuthenticationFailed", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const shard = yield* readyShard()
      const joined = yield* watchJoin(shard)
      yield* sim.close(0, 4004)
      yield* advanceInSteps(120_000)
      expect((yield* sim.connections).length).toBe(1)
      expect((yield* sim.refusedConnections).length).toBe(0)
      const error = fatalError(joined.pollUnsafe())
      expect(error?._tag).toBe("AuthenticationFailed")
      expect(error?.code).toBe(4004)
      expect(yield* phaseOf(shard)).toBe("fatal")
    }).pipe(Effect.provide(layer())))

  const fatalCases = [
    {
      code: 4010,
      tag: "InvalidShard",
      how: "shard id ≥ shard count",
      simulator: {},
      start: startShard({ shardId: 1, shardCount: 1 }),
      trigger: Effect.void
    },
    {
      code: 4012,
      tag: "InvalidApiVersion",
      how: "server close (the shard always asks for v=10)",
      simulator: {},
      start: startShard(),
      trigger: GatewaySimulator.use((sim) => sim.close(0, 4012))
    },
    {
      code: 4013,
      tag: "InvalidIntents",
      how: "an undocumented intent bit",
      simulator: {},
      start: startShard({ intents: Intents.Guilds | (1 << 17) }),
      trigger: Effect.void
    },
    {
      code: 4014,
      tag: "DisallowedIntents",
      how: "GUILD_PRESENCES without approval",
      simulator: { allowedPrivilegedIntents: 0 },
      start: startShard({ intents: Intents.Guilds | Intents.GuildPresences }),
      trigger: Effect.void
    }
  ] as const

  for (const c of fatalCases) {
    it.effect(`item 35: ${c.code} (${c.how}) opens no new connection and ends with ${c.tag} carrying the code`, () =>
      Effect.gen(function*() {
        const sim = yield* GatewaySimulator
        const shard = yield* c.start
        const joined = yield* watchJoin(shard)
        yield* advance(100)
        yield* c.trigger
        yield* advanceInSteps(120_000)
        const connections = yield* sim.connections
        expect(connections.length).toBe(1)
        expect(connections[0]!.closeCode).toBe(c.code)
        expect(connections[0]!.closedBy).toBe("server")
        expect((yield* sim.refusedConnections).length).toBe(0)
        const error = fatalError(joined.pollUnsafe())
        expect(error?._tag).toBe(c.tag)
        expect(error?.code).toBe(c.code)
        expect(yield* phaseOf(shard)).toBe("fatal")
      }).pipe(Effect.provide(layer({ simulator: c.simulator }))))
  }

  it.effect("item 36: after 4011 the shard never reconnects with the same [id, count] and ends with ShardingRequired", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      // 4 guilds on one shard, at most 1 per shard: IDENTIFY [0, 1] is refused with 4011.
      const shard = yield* startShard()
      const joined = yield* watchJoin(shard)
      yield* advanceInSteps(120_000)
      const connections = yield* sim.connections
      expect(connections.length).toBe(1)
      expect(connections[0]!.closeCode).toBe(4011)
      const identifies = yield* sim.clientFrames({ op: 2 })
      expect(identifies.filter((f) => JSON.stringify((f.d as { shard?: unknown }).shard) === "[0,1]").length).toBe(1)
      expect((yield* sim.clientFrames({ op: 6 })).length).toBe(0)
      const error = fatalError(joined.pollUnsafe())
      expect(error?._tag).toBe("ShardingRequired")
      expect(error?.code).toBe(4011)
      expect(yield* phaseOf(shard)).toBe("fatal")
    }).pipe(Effect.provide(layer({ simulator: { maxGuildsPerShard: 1 } }))))

  for (const code of [4006, 4999, 1000, 1001]) {
    it.effect(`item 37: after a server close with ${code} the shard reconnects (not fatal) and RESUMEs its session (§2)`, () =>
      Effect.gen(function*() {
        const sim = yield* GatewaySimulator
        const shard = yield* readyShard()
        const joined = yield* watchJoin(shard)
        const ready = yield* readyData
        const { later, start } = yield* closeAndFollow(code)
        // PROTOCOL.md §2: a code without a usable meaning (unlisted, or a server 1000/1001) keeps the session.
        expect(later[0]!.url.startsWith(sim.options.resumeUrl)).toBe(true)
        expect(start.op).toBe(6)
        expect((start.d as { session_id?: unknown }).session_id).toBe(ready?.session_id)
        expect(joined.pollUnsafe()).toBeUndefined()
        expect(yield* phaseOf(shard)).toBe("ready")
      }).pipe(Effect.provide(layer())))
  }

  it.effect("item 38: stop() closes with 1000 from the client", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const shard = yield* readyShard()
      yield* shard.stop()
      const connections = yield* sim.connections
      expect(connections.length).toBe(1)
      expect(connections[0]!.closeCode).toBe(1000)
      expect(connections[0]!.closedBy).toBe("client")
      expect(yield* phaseOf(shard)).toBe("stopped")
    }).pipe(Effect.provide(layer())))

  it.effect("item 38: stop({ resumable: true }) closes with a code in 3000–4999 and saves the session in the SessionStore", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const store = yield* SessionStore
      const shard = yield* readyShard()
      yield* sim.dispatch("MESSAGE_CREATE", { guild_id: "81384788765712384", content: "before stop" })
      yield* advance(100)
      const ready = yield* readyData
      const lastSeq = Math.max(...(yield* sim.serverFrames({ op: 0 })).map((f) => f.s ?? 0))
      yield* shard.stop({ resumable: true })
      const [connection] = yield* sim.connections
      expect(connection!.closedBy).toBe("client")
      expect(connection!.closeCode).toBeGreaterThanOrEqual(3000)
      expect(connection!.closeCode).toBeLessThanOrEqual(4999)
      const saved = yield* store.get({ shardId: 0, shardCount: 1 })
      expect(Option.getOrUndefined(saved)).toEqual({
        sessionId: ready?.session_id,
        sequence: lastSeq,
        resumeUrl: sim.options.resumeUrl
      })
      // The gateway kept it resumable too (a 1000/1001 close would have destroyed it).
      expect((yield* sim.sessions).map((s) => [s.id, s.connected])).toEqual([[ready?.session_id, false]])
    }).pipe(Effect.provide(layer())))

  it.effect("item 39: failed connection attempts back off from ≥ 1 s, growing, capped at 60 s; a healthy session resets it", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      yield* sim.refuseConnections(sim.options.baseUrl, true)
      yield* sim.refuseConnections(sim.options.resumeUrl, true)
      const shard = yield* startShard()
      yield* advanceInSteps(600_000)
      const refused = yield* sim.refusedConnections
      expect((yield* sim.connections).length).toBe(0)
      const gaps = refused.slice(1).map((r, i) => r.at - refused[i]!.at)
      expect(gaps.length).toBeGreaterThanOrEqual(8)
      for (const gap of gaps) {
        expect(gap).toBeGreaterThanOrEqual(1000)
        // reconnectBackoff caps the delay after its jitter: never above 60 s (+1 ms for float timestamps).
        expect(gap).toBeLessThanOrEqual(60_001)
      }
      // Growing: each gap at least the previous one, up to a jitter of 20 %, and the cap is reached.
      for (let i = 1; i < gaps.length; i++) expect(gaps[i]!).toBeGreaterThanOrEqual(gaps[i - 1]! * 0.8)
      expect(gaps[0]!).toBeLessThanOrEqual(1250 + tau)
      expect(Math.max(...gaps)).toBeGreaterThanOrEqual(45_000)

      // Allow connections: the next attempt (≤ 60 s away) succeeds; wait for READY and an ACK (healthy).
      yield* sim.refuseConnections(sim.options.baseUrl, false)
      yield* sim.refuseConnections(sim.options.resumeUrl, false)
      yield* advanceInSteps(60_000 + 5000 + 2 * I)
      expect(yield* phaseOf(shard)).toBe("ready")
      expect((yield* sim.serverFrames({ op: 11 })).length).toBeGreaterThan(0)

      // Fail again: the backoff starts over at about 1 s.
      yield* sim.refuseConnections(sim.options.baseUrl, true)
      yield* sim.refuseConnections(sim.options.resumeUrl, true)
      const before = refused.length
      yield* sim.drop(0)
      yield* advanceInSteps(10_000)
      const after = (yield* sim.refusedConnections).slice(before)
      expect(after.length).toBeGreaterThanOrEqual(2)
      const firstGap = after[1]!.at - after[0]!.at
      expect(firstGap).toBeGreaterThanOrEqual(1000)
      expect(firstGap).toBeLessThanOrEqual(1250 + tau)
    }).pipe(Effect.provide(layer())))
})
