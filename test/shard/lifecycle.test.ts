/**
 * Conformance: a shard's life as a whole (PROTOCOL.md §1.4–§1.11, §2, ShardState's phases): the connect,
 * Hello and READY deadlines; the state it reports (`changes`, `state`) checked against the simulator's
 * recordings; a process restart that RESUMEs from the file SessionStore; the token never leaving the
 * IDENTIFY/RESUME frames (logs, errors, state, recordings); and commands across reconnects and stop.
 *
 * The in-process transport opens every connection at once and delivers every frame, so two deadline
 * tests wrap it (test/support/transportWrappers.ts): one attempt whose socket never opens, one connection
 * whose dispatches are withheld so READY never comes while heartbeats are still acknowledged.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Layer, Logger, Option, References, Scope, Stream } from "effect"
import { mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { SessionStore } from "../../src/SessionStore.ts"
import type { Shard } from "../../src/Shard.ts"
import type { ShardPhase } from "../../src/ShardState.ts"
import { GatewaySimulator, type RecordedFrame } from "../../src/testing/GatewaySimulator.ts"
import { DispatchSink } from "../../src/DispatchSink.ts"
import { type GatewayConnection, GatewayTransport } from "../../src/transport/GatewayTransport.ts"
import { type Frame, TextFrame } from "../../src/transport/TextFrame.ts"
import { hangingTransport, rewritingTransport, withholdingDispatches, wrapTransport } from "../support/transportWrappers.ts"
import { advance, advanceInSteps, collectDispatches, guilds, I, layer, messageContents, phaseOf, recordStates, startShard, tau, token } from "./harness.ts"

/** Waits (event-driven, no clock) until the shard reports `phase`: for steps that do real file I/O. */
const awaitPhase = (shard: Shard, phase: ShardPhase) =>
  shard.changes.pipe(Stream.filter((s) => s.phase === phase), Stream.take(1), Stream.runDrain)

const lastOf = <A>(items: ReadonlyArray<A>): A | undefined => items[items.length - 1]

/** A frame read from the in-process transport: a MESSAGE_CREATE by its content, anything else by its op. */
const describeFrame = (frame: Frame): string => {
  const text = typeof frame === "string" ? frame : frame instanceof TextFrame ? frame.text() : Buffer.from(frame).toString("utf8")
  const payload = JSON.parse(text) as { readonly op: number; readonly t?: string; readonly d?: { readonly content?: unknown } }
  return payload.t === "MESSAGE_CREATE" ? String(payload.d?.content) : `op ${payload.op}`
}

describe("deadlines", () => {
  it.effect("connect: an attempt whose socket never opens is abandoned after connectTimeout (15 s) and retried", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const { log, transport } = yield* hangingTransport(1)
      const shard = yield* startShard().pipe(Effect.provideService(GatewayTransport, transport))
      const states = yield* recordStates(shard)
      yield* advanceInSteps(14_900)
      expect(log.attempts.length).toBe(1)
      expect(log.abandoned).toBe(false)
      yield* advanceInSteps(3000)
      expect(log.abandoned).toBe(true)
      expect(log.attempts.length).toBe(2)
      const retryAt = log.attempts[1]! - log.attempts[0]!
      expect(retryAt).toBeGreaterThanOrEqual(15_000)
      expect(retryAt).toBeLessThanOrEqual(15_000 + 1250 + tau)
      expect(states.some((s) => s.lastError !== null && /timed out/.test(s.lastError))).toBe(true)
      expect((yield* sim.connections).length).toBe(1)
      expect(yield* phaseOf(shard)).toBe("ready")
    }).pipe(Effect.provide(layer())))

  it.effect("Hello: a connection that never gets Hello is closed by the shard after helloTimeout (20 s), which reconnects", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      yield* sim.nextConnection("no-hello")
      const shard = yield* startShard()
      yield* advanceInSteps(19_900)
      expect((yield* sim.connections)[0]!.closedAt).toBeNull()
      yield* advanceInSteps(3000)
      const [first, second] = yield* sim.connections
      expect(first!.closedBy).toBe("client")
      expect(first!.closedAt! - first!.openedAt).toBeGreaterThanOrEqual(20_000)
      expect(first!.closedAt! - first!.openedAt).toBeLessThanOrEqual(20_000 + tau)
      // Without Hello there is nothing to send: no heartbeat, no IDENTIFY.
      expect((yield* sim.clientFrames()).filter((f) => f.connectionId === first!.id)).toEqual([])
      expect(second).toBeDefined()
      expect(second!.openedAt).toBeLessThanOrEqual(first!.closedAt! + 1250 + tau)
      expect(yield* phaseOf(shard)).toBe("ready")
    }).pipe(Effect.provide(layer())))

  it.effect("READY: when READY never comes, the shard closes after readyTimeout and reconnects", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const transport = yield* withholdingDispatches(1)
      const shard = yield* startShard({ readyTimeout: "10 seconds" }).pipe(
        Effect.provideService(GatewayTransport, transport)
      )
      const states = yield* recordStates(shard)
      yield* advanceInSteps(9_900)
      // Heartbeats are acknowledged all along: ACKs are not READY and do not extend its deadline.
      expect((yield* sim.serverFrames({ op: 11 })).length).toBeGreaterThanOrEqual(5)
      expect((yield* sim.connections)[0]!.closedAt).toBeNull()
      expect(yield* phaseOf(shard)).toBe("identifying")
      yield* advanceInSteps(8000)
      const connections = yield* sim.connections
      const [identify] = yield* sim.clientFrames({ op: 2 })
      expect(identify!.connectionId).toBe(connections[0]!.id)
      expect(connections[0]!.closedBy).toBe("client")
      expect(connections[0]!.closedAt! - identify!.at).toBeGreaterThanOrEqual(10_000)
      expect(connections[0]!.closedAt! - identify!.at).toBeLessThanOrEqual(10_000 + tau)
      expect(states.some((s) => s.lastError !== null && /READY/.test(s.lastError))).toBe(true)
      expect(connections.length).toBeGreaterThanOrEqual(2)
      expect(yield* phaseOf(shard)).toBe("ready")
    }).pipe(Effect.provide(layer())))
})

describe("READY/RESUMED deadline, extended by dispatches", () => {
  it.effect("a RESUME whose RESUMED is slow: dispatches still arriving keep the connection; readyTimeout after the last one it closes", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      // The second connection (the RESUME) never sees RESUMED; its replay and live dispatches do arrive.
      const transport = yield* rewritingTransport(2, (frame) => frame.includes(`"t":"RESUMED"`) ? undefined : frame)
      const received = yield* collectDispatches
      const shard = yield* startShard({ readyTimeout: "10 seconds" }).pipe(Effect.provideService(GatewayTransport, transport))
      yield* advanceInSteps(2_000)
      yield* sim.drop(0)
      yield* advanceInSteps(3_000)
      const resumeConnection = (yield* sim.connections)[1]!
      expect((yield* sim.clientFrames({ op: 6 })).map((f) => f.connectionId)).toEqual([resumeConnection.id])
      // 25 s without RESUMED, well past readyTimeout, but a dispatch every 5 s.
      for (let i = 0; i < 5; i++) {
        yield* sim.dispatch("MESSAGE_CREATE", { guild_id: guilds[0], content: `during the replay ${i}` })
        yield* advanceInSteps(5_000)
      }
      expect((yield* sim.connections)[1]!.closedAt).toBeNull()
      expect(yield* phaseOf(shard)).toBe("resuming")
      expect(messageContents(received)).toHaveLength(5)
      const lastDispatchAt = (yield* sim.serverFrames({ op: 0 })).at(-1)!.at
      // Nothing more: readyTimeout after the last dispatch the connection is given up, with a resumable close.
      yield* advanceInSteps(7_000)
      const given = (yield* sim.connections)[1]!
      expect([given.closedBy, given.closeCode]).toEqual(["client", 4000])
      expect(given.closedAt! - lastDispatchAt).toBeGreaterThanOrEqual(10_000)
      expect(given.closedAt! - lastDispatchAt).toBeLessThanOrEqual(10_000 + tau)
    }).pipe(Effect.provide(layer())))
})

describe("state", () => {
  it.effect("changes emits the phases of a normal start in order: idle → connecting → hello → identifying → ready", () =>
    Effect.gen(function*() {
      const shard = yield* startShard()
      const states = yield* recordStates(shard)
      yield* advance(100)
      const phases = states.map((s) => s.phase).filter((p, i, all) => i === 0 || all[i - 1] !== p)
      expect(phases).toEqual(["idle", "connecting", "hello", "identifying", "ready"])
    }).pipe(Effect.provide(layer())))

  it.effect("state reports latency after an ACK, seq, session id, last dispatch time and counts that match the recordings", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const shard = yield* startShard()
      yield* advance(100)
      let state = yield* shard.state
      expect(state.phase).toBe("ready")
      if ((yield* sim.serverFrames({ op: 11 })).length === 0) expect(state.latencyMs).toBeNull()

      yield* advanceInSteps(I + 500)
      const acks = yield* sim.serverFrames({ op: 11 })
      const beats = yield* sim.clientFrames({ op: 1 })
      expect(acks.length).toBeGreaterThan(0)
      state = yield* shard.state
      expect(state.latencyMs).toBe(lastOf(acks)!.at - lastOf(beats)!.at)

      for (const content of ["a", "b", "c"]) yield* sim.dispatch("MESSAGE_CREATE", { guild_id: guilds[0], content })
      yield* advance(100)
      const dispatches = yield* sim.serverFrames({ op: 0 })
      const readyFrame = dispatches.find((f) => f.t === "READY")!
      state = yield* shard.state
      expect(state.sequence).toBe(lastOf(dispatches)!.s)
      expect(state.sessionId).toBe((readyFrame.d as { session_id: string }).session_id)
      expect(state.lastDispatchAt).toBe(lastOf(dispatches)!.at)

      // A resume and a fresh identify later, the counters still match what the gateway saw.
      yield* sim.close(0, 4000)
      yield* advanceInSteps(2000)
      yield* sim.invalidateSession(0, false)
      yield* advanceInSteps(12_000)
      const connections = yield* sim.connections
      const identifies = yield* sim.clientFrames({ op: 2 })
      const resumes = yield* sim.clientFrames({ op: 6 })
      expect(identifies.length).toBeGreaterThanOrEqual(2)
      expect(resumes.length).toBeGreaterThanOrEqual(1)
      state = yield* shard.state
      expect(state.phase).toBe("ready")
      expect(state.reconnects).toBe(connections.length - 1)
      expect(state.identifies).toBe(identifies.length)
      expect(state.resumes).toBe(resumes.length)
      const laterDispatches = yield* sim.serverFrames({ op: 0 })
      const lastReady = laterDispatches.filter((f) => f.t === "READY").pop()!
      expect(state.sessionId).toBe((lastReady.d as { session_id: string }).session_id)
      expect(state.sessionId).not.toBe((readyFrame.d as { session_id: string }).session_id)
      expect(state.sequence).toBe(lastOf(laterDispatches)!.s)
      expect(state.lastDispatchAt).toBe(lastOf(laterDispatches)!.at)
    }).pipe(Effect.provide(layer())))
})

describe("restart", () => {
  it.effect("a new shard over the same file SessionStore RESUMEs after stop({ resumable: true }) and gets the dispatches in between exactly once", () => {
    const directory = mkdtempSync(join(tmpdir(), "effect-discord-gateway-restart-"))
    return Effect.gen(function*() {
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(directory, { recursive: true, force: true })))
      const sim = yield* GatewaySimulator
      const received = yield* collectDispatches

      // First process: READY (saved to disk), one event, then a resumable stop.
      const first = yield* startShard()
      yield* advance(100)
      yield* awaitPhase(first, "ready")
      yield* sim.dispatch("MESSAGE_CREATE", { guild_id: guilds[0], content: "before stop" })
      yield* advance(100)
      const sessionId = (yield* first.state).sessionId
      const seqAtStop = (yield* first.state).sequence
      yield* first.stop({ resumable: true })

      // While no process runs, the gateway keeps numbering the session's events.
      yield* sim.dispatch("MESSAGE_CREATE", { guild_id: guilds[0], content: "between 1" })
      yield* sim.dispatch("MESSAGE_CREATE", { guild_id: guilds[0], content: "between 2" })

      expect(readdirSync(directory)).toContain("shard-0-of-1.json")

      // Second process: same options, a fresh store over the same directory.
      const second = yield* startShard().pipe(Effect.provide(SessionStore.layerFile(directory)))
      // Ready, or give up after 10 s of virtual time (an IDENTIFY would wait for the identify window).
      yield* Effect.raceFirst(awaitPhase(second, "ready"), advanceInSteps(10_000))
      yield* advance(100)
      expect(yield* phaseOf(second)).toBe("ready")

      const connections = yield* sim.connections
      expect(connections.length).toBe(2)
      expect(connections[1]!.url.startsWith(sim.options.resumeUrl)).toBe(true)
      const onSecond = (yield* sim.clientFrames()).filter((f) => f.connectionId === connections[1]!.id)
      const start = onSecond.find((f) => f.op !== 1)
      expect(start?.op).toBe(6)
      expect(start?.d).toMatchObject({ session_id: sessionId, seq: seqAtStop })
      expect((yield* sim.clientFrames({ op: 2 })).length).toBe(1)

      const contents = messageContents(received)
      expect(contents).toEqual(["before stop", "between 1", "between 2"])
      const replayed = (yield* sim.serverFrames({ op: 0 })).filter((f) => f.connectionId === connections[1]!.id)
      expect((yield* second.state).sequence).toBe(lastOf(replayed)!.s)
    }).pipe(Effect.provide(layer({ sessions: SessionStore.layerFile(directory) })))
  })
})

describe("token secrecy", () => {
  it.effect("the token never appears in logs, errors (4004 included), shard state or the simulator's recordings", () => {
    const lines: Array<string> = []
    const capture = Logger.formatJson.pipe(Logger.map((line) => {
      lines.push(line)
    }))
    return Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const shard = yield* startShard()
      const states = yield* recordStates(shard)
      const joined = yield* Effect.forkChild(shard.join)
      yield* advance(100)
      yield* sim.dispatch("MESSAGE_CREATE", { guild_id: guilds[0], content: "hello" })
      yield* advanceInSteps(I + 500)
      yield* sim.close(0, 4000) // → RESUME
      yield* advanceInSteps(2000)
      yield* sim.sendRaw(0, "{not json") // → a warning
      yield* sim.invalidateSession(0, false) // → IDENTIFY again
      yield* advanceInSteps(12_000)
      yield* sim.setToken("a-rotated-token") // the configured token is now wrong
      yield* sim.close(0, 4000) // → RESUME with the old token → 4004
      yield* advanceInSteps(5000)

      const exit = joined.pollUnsafe()
      expect(exit).toBeDefined()
      const error = Option.getOrUndefined(Exit.findErrorOption(exit!))
      expect(error?._tag).toBe("AuthenticationFailed")
      // The scenario did what it claims: token-bearing frames went out (and were accepted) on every path.
      expect((yield* sim.clientFrames({ op: 2 })).length).toBeGreaterThanOrEqual(2)
      expect((yield* sim.clientFrames({ op: 6 })).length).toBeGreaterThanOrEqual(2)
      expect(lines.length).toBeGreaterThan(0)
      expect(lines.some((line) => line.includes("4004"))).toBe(true)

      const haystacks: Record<string, string> = {
        logs: lines.join("\n"),
        errorMessage: error!.message,
        errorString: String(error),
        errorJson: JSON.stringify(error),
        cause: Exit.isFailure(exit!) ? Cause.pretty(exit!.cause) : "",
        state: JSON.stringify(yield* shard.state),
        states: JSON.stringify(states),
        frames: JSON.stringify(yield* sim.frames),
        connections: JSON.stringify(yield* sim.connections),
        sessions: JSON.stringify(yield* sim.sessions),
        refused: JSON.stringify(yield* sim.refusedConnections),
        rest: JSON.stringify(yield* sim.restRequests)
      }
      for (const [where, text] of Object.entries(haystacks)) {
        expect({ where, leaks: text.includes(token) || text.includes("NEVER-SHOWN") }).toEqual({ where, leaks: false })
      }
    }).pipe(
      Effect.provide(Layer.mergeAll(layer(), Logger.layer([capture]))),
      Effect.provideService(References.MinimumLogLevel, "All")
    )
  })
})

describe("commands", () => {
  it.effect("a command sent while the shard is reconnecting is delivered once the next session is ready", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const shard = yield* startShard()
      yield* advance(100)
      yield* advanceInSteps(I + 500)
      yield* sim.refuseConnections(sim.options.baseUrl, true)
      yield* sim.refuseConnections(sim.options.resumeUrl, true)
      yield* sim.drop(0)
      yield* advance(100)
      expect(yield* phaseOf(shard)).not.toBe("ready")
      const presence = { since: null, activities: [{ name: "queued", type: 0 }], status: "dnd", afk: false } as const
      const sending = yield* Effect.forkChild(shard.send({ op: 3, d: presence }))
      yield* advanceInSteps(3000)
      expect((yield* sim.clientFrames({ op: 3 })).length).toBe(0)
      expect(sending.pollUnsafe()).toBeUndefined()

      yield* sim.refuseConnections(sim.options.baseUrl, false)
      yield* sim.refuseConnections(sim.options.resumeUrl, false)
      yield* advanceInSteps(6000)
      expect(yield* phaseOf(shard)).toBe("ready")
      const updates = yield* sim.clientFrames({ op: 3 })
      expect(updates.length).toBe(1)
      expect(updates[0]!.d).toEqual(presence)
      // Sent on the new session, after it was ready (after RESUMED on that connection).
      const frames = yield* sim.frames
      const resumedIndex = frames.findIndex((f) =>
        f.direction === "server" && f.connectionId === updates[0]!.connectionId && (f.t === "RESUMED" || f.t === "READY")
      )
      const updateIndex = frames.findIndex((f: RecordedFrame) => f.direction === "client" && f.op === 3)
      expect(updates[0]!.connectionId).toBeGreaterThan((yield* sim.connections)[0]!.id)
      expect(resumedIndex).toBeGreaterThanOrEqual(0)
      expect(updateIndex).toBeGreaterThan(resumedIndex)
      const exit = sending.pollUnsafe()
      expect(exit !== undefined && Exit.isSuccess(exit)).toBe(true)
    }).pipe(Effect.provide(layer())))

  it.effect("stop while the reader waits on a full \"suspend\" subscriber that never takes: the stop completes, 1000 is sent", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const sink = yield* DispatchSink
      // subscribed, buffer of one, never read: READY fills it, the next dispatch holds the reader
      const unread = yield* sink.subscription({ capacity: 1, overflow: "suspend" })
      const shard = yield* startShard()
      yield* advance(100)
      expect(yield* phaseOf(shard)).toBe("ready")
      yield* sim.dispatch("MESSAGE_CREATE", { id: "1", channel_id: "2", guild_id: guilds[0], content: "held" })
      yield* advance(100)
      const stopping = yield* Effect.forkChild(shard.stop())
      yield* advance(100)
      expect(stopping.pollUnsafe()).toEqual(Exit.void)
      // the subscriber never took more than READY: the held dispatch was waiting, not delivered
      expect((yield* Stream.runCollect(Stream.take(unread, 1))).map((d) => d.name)).toEqual(["READY"])
      const connections = yield* sim.connections
      expect(connections.map((c) => [c.closeCode, c.closedBy])).toEqual([[1000, "client"]])
    }).pipe(Effect.provide(layer())))

  it.effect("closing a shard's Scope while its last session save hangs (a stuck SessionStore) does not hang the close", () => {
    let hang = false
    const stuck = <A>(effect: Effect.Effect<A>) => Effect.suspend(() => hang ? Effect.never : effect)
    return Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const scope = yield* Scope.make()
      const shard = yield* Scope.provide(startShard(), scope)
      yield* advance(100)
      expect(yield* phaseOf(shard)).toBe("ready")
      hang = true
      // the stop closes the connection, then waits in the graceful end's save
      const stopping = yield* Effect.forkChild(shard.stop())
      yield* advance(100)
      expect((yield* sim.connections).map((c) => [c.closeCode, c.closedBy])).toEqual([[1000, "client"]])
      expect(stopping.pollUnsafe()).toBeUndefined()
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      yield* advance(100)
      expect(closing.pollUnsafe()).toEqual(Exit.void)
    }).pipe(Effect.provide(layer({
      sessions: Layer.succeed(SessionStore, {
        get: () => Effect.succeedNone,
        set: () => stuck(Effect.void),
        remove: () => stuck(Effect.void)
      })
    })))
  })

  it.effect("item 38: closing a shard's Scope without a stop (its fiber interrupted) closes its connection with 1000; no beat follows", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const scope = yield* Scope.make()
      yield* Scope.provide(startShard(), scope)
      yield* advance(100)
      expect((yield* sim.connections).map((c) => c.closeCode)).toEqual([null])
      yield* Scope.close(scope, Exit.void)
      yield* advance(100)
      expect((yield* sim.connections).map((c) => [c.closeCode, c.closedBy])).toEqual([[1000, "client"]])
      const beats = (yield* sim.clientFrames({ op: 1 })).length
      yield* advance(3 * I)
      expect((yield* sim.clientFrames({ op: 1 })).length).toBe(beats)
    }).pipe(Effect.provide(layer())))

  it.effect("send after stop fails with ShardStopped and sends nothing", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const shard = yield* startShard()
      yield* advance(100)
      yield* shard.stop()
      const error = yield* Effect.flip(
        shard.send({ op: 3, d: { since: null, activities: [], status: "online", afk: false } })
      )
      expect(error._tag).toBe("ShardStopped")
      yield* advance(100)
      expect((yield* sim.clientFrames({ op: 3 })).length).toBe(0)
    }).pipe(Effect.provide(layer())))

  it.effect("send after the shard ended on its own (a fatal close, no stop) fails with ShardStopped at once", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const shard = yield* startShard()
      yield* advance(3000)
      yield* sim.close(0, 4004) // authentication failed: fatal, the shard ends by itself
      yield* advance(100)
      expect(Exit.isFailure(yield* Effect.exit(shard.join))).toBe(true)
      // The first command of this shard: nothing was ever queued before it ended.
      const sending = yield* Effect.forkChild(Effect.flip(
        shard.send({ op: 3, d: { since: null, activities: [], status: "online", afk: false } })
      ))
      yield* advance(100)
      const exit = sending.pollUnsafe()
      expect(exit !== undefined && Exit.isSuccess(exit) && exit.value._tag).toBe("ShardStopped")
      expect((yield* sim.clientFrames({ op: 3 })).length).toBe(0)
    }).pipe(Effect.provide(layer())))

  it.effect("a command waiting when the shard stops fails with ShardStopped and is never sent", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      yield* sim.refuseConnections(sim.options.baseUrl, true)
      const shard = yield* startShard()
      const sending = yield* Effect.forkChild(
        shard.send({ op: 3, d: { since: null, activities: [], status: "idle", afk: true } })
      )
      yield* advanceInSteps(2000)
      expect(sending.pollUnsafe()).toBeUndefined()
      yield* shard.stop()
      yield* advance(100)
      const exit = sending.pollUnsafe()
      expect(exit).toBeDefined()
      expect(Option.getOrUndefined(Exit.findErrorOption(exit!))?._tag).toBe("ShardStopped")
      yield* sim.refuseConnections(sim.options.baseUrl, false)
      yield* advanceInSteps(5000)
      expect((yield* sim.connections).length).toBe(0)
      expect((yield* sim.clientFrames({ op: 3 })).length).toBe(0)
    }).pipe(Effect.provide(layer())))
})

describe("hand-over to the application", () => {
  it.effect("after a read that handed dispatches over, the application's consumer runs before the shard reads again", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const log: Array<string> = []
      // Each read returns one frame, and the next is ready at once: a reader that never yields would read
      // them all before the consumer ran (it only runs when the reader suspends).
      const transport = yield* wrapTransport((open) =>
        Effect.map(open, (connection): GatewayConnection => {
          const buffered: Array<Frame> = []
          return {
            ...connection,
            receive: Effect.suspend(() =>
              buffered.length > 0 ? Effect.succeed(buffered) : Effect.map(connection.receive, (frames) => {
                buffered.push(...frames)
                return buffered
              })
            ).pipe(Effect.map((frames) => {
              const frame = frames.shift()!
              log.push(`read ${describeFrame(frame)}`) // a read that returned a frame
              return [frame] as const
            }))
          }
        })
      )
      const sink = yield* DispatchSink
      yield* Effect.forkScoped(Stream.runForEach(
        yield* sink.subscription({ names: ["MESSAGE_CREATE"] }),
        (dispatch) => Effect.sync(() => log.push(`got ${(dispatch.data as { readonly content: string }).content}`))
      ))
      yield* startShard().pipe(Effect.provideService(GatewayTransport, transport))
      yield* advance(2000)
      log.length = 0
      yield* Effect.forEach(["a", "b", "c"], (content) => sim.dispatch("MESSAGE_CREATE", { guild_id: guilds[0], content }), { discard: true })
      yield* advance(100)
      // The first heartbeat's jitter is random, so a beat (and its ACK) may fall in these 100 ms. Reading the
      // ACK once the consumer has run is fine; reading anything between a dispatch's read and its hand-over
      // is what this test is after, so only an ACK read right after a `got` is left out.
      const handOvers = log.filter((entry, i) => !(entry === "read op 11" && (i === 0 || log[i - 1]!.startsWith("got"))))
      expect(handOvers).toEqual(["read a", "got a", "read b", "got b", "read c", "got c"])
    }).pipe(Effect.provide(layer())))
})
