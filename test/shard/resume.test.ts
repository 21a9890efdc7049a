/**
 * Shard conformance: resume, reconnect and invalid session (PROTOCOL.md §1.7–§1.10; checklist items 20–30).
 *
 * Every assertion reads the simulator's recordings: which URL each connection opened (20, 25, 28, 29),
 * the first session-start frame on it and its `session_id`/`seq` (21, 22, 23, 25, 27, 29), close codes
 * (22), heartbeat `d` after a replay or a new READY (24, 29), op 9 timing (26), and open/close intervals
 * (30). Item 24 also checks the dispatches users receive: every one exactly once, in sequence order.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Random, Schema } from "effect"
import { SessionStoreError } from "../../src/Errors.ts"
import { SessionStore, sessionKeyString } from "../../src/SessionStore.ts"
import { GatewaySimulator } from "../../src/testing/GatewaySimulator.ts"
import type { RecordedConnection, RecordedFrame } from "../../src/testing/GatewaySimulator.ts"
import { Redacted } from "../../src/testing/SimulatorRecording.ts"
import { GatewayTransport } from "../../src/transport/GatewayTransport.ts"
import { dataOf, isSessionStart } from "../support/recordedFrames.ts"
import { recordingSends, tokensSent, wrapTransport } from "../support/transportWrappers.ts"
import { advanceInSteps, collectDispatches, layer, simWithReadyShard, startShard, tau, token } from "./harness.ts"

// ---------------------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------------------

/** A guild of shard 0 of 1 (every harness guild is). */
const guild = "81384788765712384"

/** Emits `n` MESSAGE_CREATE dispatches at once (no yield in between). */
const dispatchMany = (n: number) =>
  Effect.gen(function*() {
    const sim = yield* GatewaySimulator
    for (let i = 0; i < n; i++) yield* sim.dispatch("MESSAGE_CREATE", { guild_id: guild, content: `m${i}` })
  })

/** Scheme, host and path of a URL: what tells the base URL from the resume URL. */
const endpointOf = (url: string): string => {
  const parsed = new URL(url)
  return `${parsed.protocol}//${parsed.host}${parsed.pathname}`
}

/** The query parameters item 20 compares. */
const queryOf = (url: string) => {
  const query = new URL(url).searchParams
  return { v: query.get("v"), encoding: query.get("encoding"), compress: query.get("compress") }
}

/** The first frame the client sent on a connection that is not a heartbeat, if any. */
const firstNonHeartbeat = (frames: ReadonlyArray<RecordedFrame>, connectionId: number): RecordedFrame | undefined =>
  frames.find((f) => f.connectionId === connectionId && f.direction === "client" && f.op !== 1)

const isDispatch = (frame: RecordedFrame): boolean => frame.direction === "server" && frame.op === 0

/** The highest `s` among the dispatches recorded in `frames`, or null. */
const highestSeq = (frames: ReadonlyArray<RecordedFrame>): number | null => {
  let highest: number | null = null
  for (const frame of frames) if (isDispatch(frame) && frame.s !== null && (highest === null || frame.s > highest)) highest = frame.s
  return highest
}

/** The connection opened after `connection` (connections are numbered in order of attempts). */
const nextConnection = (connections: ReadonlyArray<RecordedConnection>, connection: RecordedConnection) =>
  connections.find((c) => c.id > connection.id)

/**
 * Checks item 7/29's rule from a point on: each heartbeat carries the highest `s` received so far in the
 * current session, null before its first dispatch. `frames` must start where the session numbering starts
 * (a READY's IDENTIFY, or the op 9 that ended the previous session).
 */
const heartbeatViolations = (frames: ReadonlyArray<RecordedFrame>): Array<string> => {
  const violations: Array<string> = []
  let highest: number | null = null
  for (const frame of frames) {
    if (isDispatch(frame) && frame.s !== null && (highest === null || frame.s > highest)) highest = frame.s
    if (frame.direction === "client" && frame.op === 1 && frame.d !== highest) {
      violations.push(`heartbeat at ${frame.at} on connection ${frame.connectionId}: d ${String(frame.d)}, expected ${highest}`)
    }
  }
  return violations
}

describe("shard resume conformance", () => {
  // -------------------------------------------------------------------------------------------------------
  // item 20
  // -------------------------------------------------------------------------------------------------------

  const item20Cases = [
    { name: "no compression", compression: "none", resumeUrl: undefined },
    { name: "zlib-stream", compression: "zlib-stream", resumeUrl: undefined },
    // a resume URL with a path and a foreign query: v/encoding are set, not appended
    { name: "resume URL with path and query", compression: "zlib-stream", resumeUrl: "wss://resume.simulator.invalid/gw?v=9&encoding=etf" }
  ] as const

  for (const testCase of item20Cases) {
    it.effect(`item 20: resumable reconnects open resume_gateway_url with the first connection's v/encoding/compress (${testCase.name})`, () =>
      Effect.gen(function*() {
        const sim = yield* simWithReadyShard({ compression: testCase.compression })
        yield* sim.reconnect(0) // op 7
        yield* advanceInSteps(3_000)
        yield* sim.drop(0) // 1006
        yield* advanceInSteps(3_000)
        yield* sim.close(0, 4000)
        yield* advanceInSteps(3_000)
        yield* sim.invalidateSession(0, true) // op 9 true
        yield* advanceInSteps(3_000)
        yield* sim.withholdAcks(0, true) // zombie
        yield* advanceInSteps(5_000)

        const frames = yield* sim.frames
        const [first, ...reconnects] = yield* sim.connections
        if (first === undefined) return expect.fail("no connection")
        expect(endpointOf(first.url)).toBe(endpointOf(sim.options.baseUrl))
        const original = queryOf(first.url)
        expect(original).toEqual({ v: "10", encoding: "json", compress: testCase.compression === "none" ? null : testCase.compression })
        // every fault here is resumable: every later connection resumes, at the resume URL, same query
        expect(reconnects.length).toBeGreaterThanOrEqual(5)
        for (const connection of reconnects) {
          expect(endpointOf(connection.url)).toBe(endpointOf(sim.options.resumeUrl))
          expect(queryOf(connection.url)).toEqual(original)
          expect(firstNonHeartbeat(frames, connection.id)?.op).toBe(6)
        }
      }).pipe(Effect.provide(layer(testCase.resumeUrl === undefined ? {} : { simulator: { resumeUrl: testCase.resumeUrl } }))))
  }

  // -------------------------------------------------------------------------------------------------------
  // item 21
  // -------------------------------------------------------------------------------------------------------

  it.effect("item 21: on a resume connection the first non-heartbeat frame is RESUME with READY's session_id, the last s and the token", () =>
    Effect.gen(function*() {
      const { sent, transport } = yield* recordingSends
      const sim = yield* simWithReadyShard().pipe(Effect.provideService(GatewayTransport, transport))
      yield* dispatchMany(4)
      yield* advanceInSteps(1_000)
      yield* sim.drop(0)
      yield* advanceInSteps(3_000)
      yield* dispatchMany(2)
      yield* advanceInSteps(1_000)
      // a zombie: the 3 dispatches go to the replay buffer, never to the client, so they are not "received"
      yield* sim.withholdAcks(0, true)
      yield* dispatchMany(3)
      yield* advanceInSteps(5_000)
      yield* sim.reconnect(0)
      yield* advanceInSteps(3_000)
      yield* dispatchMany(1)
      yield* advanceInSteps(500)
      yield* sim.invalidateSession(0, true)
      yield* advanceInSteps(3_000)

      const frames = yield* sim.frames
      const connections = yield* sim.connections
      const ready = frames.find((f) => f.t === "READY")
      if (ready === undefined) return expect.fail("no READY")
      const sessionId = dataOf(ready).session_id
      expect(typeof sessionId).toBe("string")

      const resumeConnections = connections.slice(1)
      expect(resumeConnections.length).toBeGreaterThanOrEqual(4)
      for (const connection of resumeConnections) {
        const opening = frames.findIndex((f) => f.connectionId === connection.id)
        const first = firstNonHeartbeat(frames, connection.id)
        if (first === undefined) return expect.fail(`connection ${connection.id} sent no RESUME`)
        expect(first.op).toBe(6)
        expect(dataOf(first).session_id).toBe(sessionId)
        // the last s the client received before this connection opened
        expect(dataOf(first).seq).toBe(highestSeq(frames.slice(0, opening)))
        expect(dataOf(first).token).toBe(Redacted)
        // and the simulator accepted it (right token, right session)
        expect(frames.some((f) => f.connectionId === connection.id && f.t === "RESUMED")).toBe(true)
      }
      // the zombie case really resumed from before the withheld dispatches
      const seqs = frames.filter((f) => f.direction === "client" && f.op === 6).map((f) => dataOf(f).seq as number)
      expect(new Set(seqs).size).toBeGreaterThanOrEqual(3)
      // the raw RESUMEs carried exactly the configured token (compared, not printed)
      const resumeTokens = tokensSent(sent, 6).map((sentToken) => sentToken === token)
      expect(resumeTokens.length).toBe(seqs.length)
      expect(resumeTokens.every((same) => same)).toBe(true)
    }).pipe(Effect.provide(layer())))

  // -------------------------------------------------------------------------------------------------------
  // item 22
  // -------------------------------------------------------------------------------------------------------

  it.effect("item 22: on op 7 the client closes with a code other than 1000/1001 and RESUMEs at the resume URL", () =>
    Effect.gen(function*() {
      const sim = yield* simWithReadyShard()
      yield* dispatchMany(2)
      yield* advanceInSteps(500)
      yield* sim.reconnect(0)
      yield* advanceInSteps(3_000)

      const frames = yield* sim.frames
      const connections = yield* sim.connections
      const op7 = frames.find((f) => f.direction === "server" && f.op === 7)
      if (op7 === undefined) return expect.fail("no op 7 sent")
      const asked = connections.find((c) => c.id === op7.connectionId)!
      expect(asked.closedBy).toBe("client")
      expect([1000, 1001]).not.toContain(asked.closeCode)
      const next = nextConnection(connections, asked)
      if (next === undefined) return expect.fail("no reconnect after op 7")
      expect(endpointOf(next.url)).toBe(endpointOf(sim.options.resumeUrl))
      const first = firstNonHeartbeat(frames, next.id)
      expect(first?.op).toBe(6)
      expect(dataOf(first!).session_id).toBe(dataOf(frames.find((f) => f.t === "READY")!).session_id)
      expect(frames.some((f) => f.connectionId === next.id && f.t === "RESUMED")).toBe(true)
    }).pipe(Effect.provide(layer())))

  it.effect("item 22: op 7 before Hello on a resume connection: close ∉ {1000, 1001}, then RESUME at the resume URL", () =>
    Effect.gen(function*() {
      const sim = yield* simWithReadyShard()
      yield* sim.nextConnection("reconnect-before-hello")
      yield* sim.drop(0)
      yield* advanceInSteps(5_000)

      const frames = yield* sim.frames
      const connections = yield* sim.connections
      const asked = connections.find((c) => frames.find((f) => f.connectionId === c.id)?.op === 7)
      if (asked === undefined) return expect.fail("no connection got op 7 before Hello")
      expect(endpointOf(asked.url)).toBe(endpointOf(sim.options.resumeUrl))
      expect(asked.closedBy).toBe("client")
      expect([1000, 1001]).not.toContain(asked.closeCode)
      const next = nextConnection(connections, asked)
      if (next === undefined) return expect.fail("no reconnect after op 7")
      expect(endpointOf(next.url)).toBe(endpointOf(sim.options.resumeUrl))
      expect(firstNonHeartbeat(frames, next.id)?.op).toBe(6)
      expect(frames.some((f) => f.connectionId === next.id && f.t === "RESUMED")).toBe(true)
    }).pipe(Effect.provide(layer())))

  it.effect("item 22: op 7 before Hello with no session yet: close ∉ {1000, 1001}, then IDENTIFY", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      yield* sim.nextConnection("reconnect-before-hello")
      yield* startShard()
      yield* advanceInSteps(5_000)

      const frames = yield* sim.frames
      const [asked, next] = yield* sim.connections
      if (asked === undefined || next === undefined) return expect.fail("expected a reconnect after op 7")
      expect(frames.find((f) => f.connectionId === asked.id)?.op).toBe(7)
      expect(asked.closedBy).toBe("client")
      expect([1000, 1001]).not.toContain(asked.closeCode)
      // no session, hence no resume URL: the base URL again, with IDENTIFY
      expect(endpointOf(next.url)).toBe(endpointOf(sim.options.baseUrl))
      expect(firstNonHeartbeat(frames, next.id)?.op).toBe(2)
      expect(frames.some((f) => f.connectionId === next.id && f.t === "READY")).toBe(true)
    }).pipe(Effect.provide(layer())))

  // -------------------------------------------------------------------------------------------------------
  // item 23
  // -------------------------------------------------------------------------------------------------------

  it.effect("item 23: after an abrupt drop (1006) the client reconnects and RESUMEs", () =>
    Effect.gen(function*() {
      const sim = yield* simWithReadyShard()
      yield* sim.drop(0)
      yield* advanceInSteps(3_000)
      yield* dispatchMany(3)
      yield* advanceInSteps(1_000)
      yield* sim.drop(0)
      yield* advanceInSteps(3_000)

      const frames = yield* sim.frames
      const connections = yield* sim.connections
      const sessionId = dataOf(frames.find((f) => f.t === "READY")!).session_id
      const dropped = connections.filter((c) => c.closeCode === 1006 && c.closedBy === "transport")
      expect(dropped.length).toBe(2)
      for (const connection of dropped) {
        const next = nextConnection(connections, connection)
        if (next === undefined) return expect.fail(`no reconnect after the drop of connection ${connection.id}`)
        const first = firstNonHeartbeat(frames, next.id)
        expect(first?.op).toBe(6)
        expect(dataOf(first!).session_id).toBe(sessionId)
        expect(frames.some((f) => f.connectionId === next.id && f.t === "RESUMED")).toBe(true)
      }
      // never a new session
      expect(frames.filter((f) => f.direction === "client" && f.op === 2).length).toBe(1)
    }).pipe(Effect.provide(layer())))

  it.effect("item 23: a session store that cannot save (disk full, read-only) does not end the shard; it still RESUMEs from memory", () =>
    Effect.gen(function*() {
      const sim = yield* simWithReadyShard()
      const readyConnection = (yield* sim.connections).length
      yield* sim.drop(0)
      yield* advanceInSteps(3_000)

      const frames = yield* sim.frames
      const connections = yield* sim.connections
      expect(connections.length).toBe(readyConnection + 1)
      const sessionId = dataOf(frames.find((f) => f.t === "READY")!).session_id
      const first = firstNonHeartbeat(frames, connections.at(-1)!.id)
      expect(first?.op).toBe(6)
      expect(dataOf(first!).session_id).toBe(sessionId)
      expect(frames.some((f) => f.connectionId === connections.at(-1)!.id && f.t === "RESUMED")).toBe(true)
    }).pipe(Effect.provide(layer({
      sessions: Layer.succeed(SessionStore, {
        get: () => Effect.succeedNone,
        set: (key) => Effect.fail(new SessionStoreError({ operation: "set", key: sessionKeyString(key), detail: "ENOSPC" })),
        remove: (key) => Effect.fail(new SessionStoreError({ operation: "remove", key: sessionKeyString(key), detail: "EROFS" }))
      })
    }))))

  it.effect("a saved session that cannot be read (a corrupt session file) does not stop the start: the shard IDENTIFYs", () =>
    Effect.gen(function*() {
      const sim = yield* simWithReadyShard()
      const sessionStarts = (yield* sim.frames).filter((f) => f.direction === "client" && isSessionStart(f))
      expect(sessionStarts.map((f) => f.op)).toEqual([2])
      expect((yield* sim.frames).some((f) => f.t === "READY")).toBe(true)
    }).pipe(Effect.provide(layer({
      sessions: Layer.succeed(SessionStore, {
        get: (key) => Effect.fail(new SessionStoreError({ operation: "get", key: sessionKeyString(key), detail: "corrupt session file" })),
        set: () => Effect.void,
        remove: () => Effect.void
      })
    }))))

  // -------------------------------------------------------------------------------------------------------
  // item 24
  // -------------------------------------------------------------------------------------------------------

  it.effect("item 24: replayed dispatches advance the sequence and reach users exactly once, in order", () =>
    Effect.gen(function*() {
      const received = yield* collectDispatches
      const sim = yield* simWithReadyShard()
      // dispatches while the shard is disconnected (drop, then events before it can reconnect)
      yield* sim.drop(0)
      yield* dispatchMany(3)
      yield* advanceInSteps(3_000)
      // dispatches while the connection is a zombie (buffered, never sent on it)
      yield* sim.withholdAcks(0, true)
      yield* dispatchMany(3)
      yield* advanceInSteps(5_000)
      // dispatches sent right behind op 7 (the client stops reading there; replay brings them back)
      yield* sim.reconnect(0)
      yield* dispatchMany(2)
      yield* advanceInSteps(3_000)
      // dispatches after op 9 true
      yield* sim.invalidateSession(0, true)
      yield* dispatchMany(2)
      yield* advanceInSteps(3_000)
      yield* dispatchMany(2)
      yield* advanceInSteps(2_000)

      const frames = yield* sim.frames
      const connections = yield* sim.connections
      // the first heartbeat after RESUMED carries the highest s received, replayed ones included
      let replayedConnections = 0
      for (const connection of connections) {
        const mine = frames.filter((f) => f.connectionId === connection.id)
        const resumedAt = mine.findIndex((f) => f.t === "RESUMED")
        if (resumedAt === -1) continue
        const resume = mine.find((f) => f.direction === "client" && f.op === 6)!
        const replayed = mine.slice(0, resumedAt).filter((f) => isDispatch(f) && f.s! > (dataOf(resume).seq as number))
        const beatAt = mine.findIndex((f, index) => index > resumedAt && f.direction === "client" && f.op === 1)
        if (beatAt === -1) continue
        expect(mine[beatAt]!.d).toBe(highestSeq(mine.slice(0, beatAt)))
        if (replayed.length >= 2) replayedConnections++
      }
      expect(replayedConnections).toBeGreaterThanOrEqual(4)

      // users got every dispatch of the session exactly once, in sequence order, none lost
      const session = (yield* sim.sessions)[0]
      if (session === undefined) return expect.fail("the session is gone")
      const seqs = received.filter((d) => d.shard === 0).map((d) => d.seq)
      expect(seqs).toEqual(Array.from({ length: session.seq }, (_, i) => i + 1))
      const sentNames = new Map<number, string | null>()
      for (const frame of frames) if (isDispatch(frame) && !sentNames.has(frame.s!)) sentNames.set(frame.s!, frame.t)
      expect(received.map((d) => d.name)).toEqual(received.map((d) => sentNames.get(d.seq)))
    }).pipe(Effect.provide(layer())))

  it.effect("a dispatch repeating a sequence number the session already had is not delivered again, and s never goes back", () =>
    Effect.gen(function*() {
      const received = yield* collectDispatches
      const sim = yield* simWithReadyShard()
      const [state] = yield* sim.sessions
      const last = state!.seq
      const before = received.length
      yield* sim.sendRaw(0, `{"t":"MESSAGE_CREATE","s":${last},"op":0,"d":{"content":"repeat"}}`)
      yield* sim.sendRaw(0, `{"t":"MESSAGE_CREATE","s":${last - 1},"op":0,"d":{"content":"older"}}`)
      yield* sim.dispatch("MESSAGE_CREATE", { guild_id: "81384788765712384", content: "next" })
      yield* advanceInSteps(500)
      expect(received.slice(before).map((d) => [d.seq, (d.data as { content?: unknown }).content])).toEqual([[last + 1, "next"]])
      // the next heartbeat carries the highest s, not a repeated one
      yield* sim.requestHeartbeat(0)
      yield* advanceInSteps(100)
      expect((yield* sim.clientFrames({ op: 1 })).at(-1)!.d).toBe(last + 1)
    }).pipe(Effect.provide(layer())))

  // -------------------------------------------------------------------------------------------------------
  // item 25
  // -------------------------------------------------------------------------------------------------------

  it.effect("item 25: after op 9 d:false the session_id is never sent again; the next connection IDENTIFYs at the base URL", () =>
    Effect.gen(function*() {
      const sim = yield* simWithReadyShard()
      yield* dispatchMany(2)
      yield* advanceInSteps(1_000)
      yield* sim.invalidateSession(0, false)
      yield* advanceInSteps(8_000)
      // later resumable faults must resume the new session, not the dead one
      yield* sim.drop(0)
      yield* advanceInSteps(3_000)
      yield* sim.reconnect(0)
      yield* advanceInSteps(3_000)

      const frames = yield* sim.frames
      const connections = yield* sim.connections
      const op9 = frames.findIndex((f) => f.direction === "server" && f.op === 9)
      const dead = dataOf(frames.find((f) => f.t === "READY")!).session_id
      expect(frames.slice(op9).filter((f) => f.direction === "client" && dataOf(f)?.session_id === dead)).toEqual([])
      const next = connections.find((c) => c.openedAt >= frames[op9]!.at && c.id > frames[op9]!.connectionId)
      if (next === undefined) return expect.fail("no connection after op 9")
      expect(endpointOf(next.url)).toBe(endpointOf(sim.options.baseUrl))
      expect(firstNonHeartbeat(frames, next.id)?.op).toBe(2)
      // the RESUMEs of the run after op 9 exist, and all carry the new session
      const laterResumes = frames.slice(op9).filter((f) => f.direction === "client" && f.op === 6)
      expect(laterResumes.length).toBeGreaterThanOrEqual(2)
    }).pipe(Effect.provide(layer())))

  it.effect("item 25: op 9 d:false in answer to RESUME (session expired): IDENTIFY at the base URL, old id never again", () =>
    Effect.gen(function*() {
      const sim = yield* simWithReadyShard()
      // the resume connection gets no Hello: the client waits out its Hello deadline, past the resume window
      yield* sim.nextConnection("no-hello")
      yield* sim.drop(0)
      yield* advanceInSteps(35_000)

      const frames = yield* sim.frames
      const connections = yield* sim.connections
      const op9 = frames.findIndex((f) => f.direction === "server" && f.op === 9)
      if (op9 === -1) return expect.fail("the RESUME was not refused")
      expect(frames[op9]!.d).toBe(false)
      // op 9 answered a RESUME of the dead session
      const answered = frames.slice(0, op9).filter((f) => f.connectionId === frames[op9]!.connectionId && isSessionStart(f))
      expect(answered.map((f) => f.op)).toEqual([6])
      const dead = dataOf(answered[0]!).session_id
      expect(frames.slice(op9).filter((f) => f.direction === "client" && dataOf(f)?.session_id === dead)).toEqual([])
      const next = connections.find((c) => c.id > frames[op9]!.connectionId)
      if (next === undefined) return expect.fail("no connection after op 9")
      expect(endpointOf(next.url)).toBe(endpointOf(sim.options.baseUrl))
      expect(firstNonHeartbeat(frames, next.id)?.op).toBe(2)
      expect(frames.some((f) => f.connectionId === next.id && f.t === "READY")).toBe(true)
    }).pipe(Effect.provide(layer({ simulator: { resumeWindowMs: 10_000 } }))))

  // -------------------------------------------------------------------------------------------------------
  // item 26
  // -------------------------------------------------------------------------------------------------------

  it.effect.prop(
    "item 26: after op 9 d:false (bucket free) IDENTIFY comes 1 s to 5 s + τ after the server sent op 9",
    { seed: Schema.Int },
    ({ seed }) =>
      Effect.gen(function*() {
        const sim = yield* simWithReadyShard()
        for (let round = 0; round < 4; round++) {
          yield* sim.invalidateSession(0, false)
          yield* advanceInSteps(12_000)
        }
        const frames = yield* sim.frames
        const op9s = frames.filter((f) => f.direction === "server" && f.op === 9 && f.d === false)
        expect(op9s.length).toBe(4)
        for (const op9 of op9s) {
          const identify = frames.find((f) => f.direction === "client" && f.op === 2 && f.at >= op9.at && f.connectionId > op9.connectionId)
          if (identify === undefined) return expect.fail(`no IDENTIFY after the op 9 at ${op9.at}`)
          expect(identify.at - op9.at).toBeGreaterThanOrEqual(1_000)
          expect(identify.at - op9.at).toBeLessThanOrEqual(5_000 + tau)
        }
      }).pipe(Random.withSeed(seed), Effect.provide(layer())),
    { arbitrary: { runs: 6 } }
  )

  // -------------------------------------------------------------------------------------------------------
  // item 27
  // -------------------------------------------------------------------------------------------------------

  it.effect("item 27: after op 9 d:true the next session start is RESUME with the current session_id and seq", () =>
    Effect.gen(function*() {
      const sim = yield* simWithReadyShard()
      yield* dispatchMany(3)
      yield* advanceInSteps(1_000)
      yield* sim.invalidateSession(0, true)
      yield* advanceInSteps(3_000)
      yield* dispatchMany(2)
      yield* advanceInSteps(1_000)
      yield* sim.invalidateSession(0, true)
      yield* advanceInSteps(3_000)

      const frames = yield* sim.frames
      const sessionId = dataOf(frames.find((f) => f.t === "READY")!).session_id
      const op9s = frames.flatMap((f, index) => f.direction === "server" && f.op === 9 && f.d === true ? [index] : [])
      expect(op9s.length).toBe(2)
      for (const index of op9s) {
        const next = frames.slice(index).find(isSessionStart)
        if (next === undefined) return expect.fail("no session start after op 9 d:true")
        expect(next.op).toBe(6)
        expect(dataOf(next).session_id).toBe(sessionId)
        expect(dataOf(next).seq).toBe(highestSeq(frames.slice(0, index)))
        expect(frames.some((f) => f.connectionId === next.connectionId && f.t === "RESUMED")).toBe(true)
      }
      expect(frames.filter((f) => f.direction === "client" && f.op === 2).length).toBe(1)
    }).pipe(Effect.provide(layer())))

  // -------------------------------------------------------------------------------------------------------
  // item 28
  // -------------------------------------------------------------------------------------------------------

  it.effect("item 28: when the resume URL refuses connections, the next attempt targets the base URL", () =>
    Effect.gen(function*() {
      const sim = yield* simWithReadyShard()
      yield* sim.refuseConnections(sim.options.resumeUrl, true)
      yield* sim.drop(0)
      yield* advanceInSteps(5_000)

      const refused = yield* sim.refusedConnections
      const connections = yield* sim.connections
      expect(refused.length).toBeGreaterThanOrEqual(1)
      for (const attempt of refused) {
        expect(endpointOf(attempt.url)).toBe(endpointOf(sim.options.resumeUrl))
        const after = [...connections, ...refused].filter((c) => c.id > attempt.id).sort((a, b) => a.id - b.id)[0]
        if (after === undefined) return expect.fail(`no attempt after the refused one at ${attempt.at}`)
        expect(endpointOf(after.url)).toBe(endpointOf(sim.options.baseUrl))
      }
      // and the shard got its session back there
      const frames = yield* sim.frames
      const last = connections[connections.length - 1]!
      expect(endpointOf(last.url)).toBe(endpointOf(sim.options.baseUrl))
      expect(frames.some((f) => f.connectionId === last.id && (f.t === "RESUMED" || f.t === "READY"))).toBe(true)
    }).pipe(Effect.provide(layer())))

  // -------------------------------------------------------------------------------------------------------
  // item 29
  // -------------------------------------------------------------------------------------------------------

  it.effect("item 29: after a new READY the new session_id is used and heartbeats follow the new numbering", () =>
    Effect.gen(function*() {
      const sim = yield* simWithReadyShard()
      yield* dispatchMany(40) // the old session's s climbs well above the new one's
      yield* advanceInSteps(1_000)
      // the limiter has one session start left until 30 s: the new connection heartbeats a long while
      // between the op 9 and its IDENTIFY, with no session at all
      yield* sim.invalidateSession(0, false)
      yield* advanceInSteps(30_000)
      yield* dispatchMany(3)
      yield* advanceInSteps(2_000)
      yield* sim.drop(0)
      yield* dispatchMany(2)
      yield* advanceInSteps(3_000)
      yield* sim.reconnect(0)
      yield* advanceInSteps(3_000)

      const frames = yield* sim.frames
      const readies = frames.filter((f) => f.t === "READY")
      expect(readies.length).toBe(2)
      expect(readies[1]!.at).toBeGreaterThanOrEqual(30_000)
      const [oldId, newId] = readies.map((f) => dataOf(f).session_id)
      expect(newId).not.toBe(oldId)
      const op9 = frames.findIndex((f) => f.direction === "server" && f.op === 9)
      const newReady = frames.indexOf(readies[1]!)
      const resumes = frames.slice(newReady).filter((f) => f.direction === "client" && f.op === 6)
      expect(resumes.length).toBeGreaterThanOrEqual(2)
      for (const resume of resumes) expect(dataOf(resume).session_id).toBe(newId)
      // from the op 9 on: null until the new READY, then the new session's s (never the old 40+)
      expect(heartbeatViolations(frames.slice(op9))).toEqual([])
      const beats = frames.slice(op9).filter((f) => f.direction === "client" && f.op === 1)
      expect(beats.filter((f) => f.d === null).length).toBeGreaterThanOrEqual(10)
      expect(beats.filter((f) => typeof f.d === "number").length).toBeGreaterThanOrEqual(4)
    }).pipe(Effect.provide(layer({ sessionStartLimit: { total: 1000, remaining: 1, resetAfterMs: 30_000 } }))))

  it.effect("item 29: a stale saved session is replaced by the new READY's session_id and resume_gateway_url", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const staleUrl = "wss://stale-resume.simulator.invalid"
      const store = yield* SessionStore
      yield* store.set({ shardId: 0, shardCount: 1 }, { sessionId: "stale-session", sequence: 40, resumeUrl: staleUrl })
      yield* startShard()
      yield* advanceInSteps(8_000) // RESUME of the stale session → op 9 false → IDENTIFY → READY
      yield* dispatchMany(2)
      yield* advanceInSteps(1_000)
      yield* sim.drop(0)
      yield* advanceInSteps(3_000)
      yield* sim.reconnect(0)
      yield* advanceInSteps(3_000)

      const frames = yield* sim.frames
      const connections = yield* sim.connections
      // the scenario: the stale RESUME at the stale URL was refused with op 9 false
      expect(endpointOf(connections[0]!.url)).toBe(endpointOf(staleUrl))
      expect(dataOf(firstNonHeartbeat(frames, connections[0]!.id)!).session_id).toBe("stale-session")
      const op9 = frames.findIndex((f) => f.direction === "server" && f.op === 9)
      expect(frames[op9]?.d).toBe(false)
      const ready = frames.find((f) => f.t === "READY")
      if (ready === undefined) return expect.fail("no READY")
      const newReady = frames.indexOf(ready)
      const { resume_gateway_url: resumeUrl, session_id: sessionId } = dataOf(ready)
      // after the new READY: its resume URL and its session only
      const after = connections.filter((c) => c.id > ready.connectionId)
      expect(after.length).toBeGreaterThanOrEqual(2)
      for (const connection of after) {
        expect(endpointOf(connection.url)).toBe(endpointOf(resumeUrl as string))
        const first = firstNonHeartbeat(frames, connection.id)
        expect(first?.op).toBe(6)
        expect(dataOf(first!).session_id).toBe(sessionId)
      }
      expect(frames.slice(newReady).some((f) => f.direction === "client" && dataOf(f)?.session_id === "stale-session")).toBe(false)
      expect(heartbeatViolations(frames.slice(op9))).toEqual([])
    }).pipe(Effect.provide(layer())))

  // -------------------------------------------------------------------------------------------------------
  // item 30
  // -------------------------------------------------------------------------------------------------------

  it.effect("item 30: at most one open WebSocket per shard at any moment, over a fault-heavy run", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      // how many connections the simulator holds open right after each new one opened
      const openAtConnect: Array<number> = []
      const transport = yield* wrapTransport((open) =>
        Effect.tap(open, () =>
          Effect.map(sim.connections, (all) => {
            openAtConnect.push(all.filter((c) => c.closedAt === null).length)
          }))
      )
      yield* simWithReadyShard().pipe(Effect.provideService(GatewayTransport, transport))
      const faults: ReadonlyArray<readonly [Effect.Effect<void>, number]> = [
        [sim.reconnect(0), 3_000],
        [sim.drop(0), 3_000],
        [sim.invalidateSession(0, true), 3_000],
        [sim.invalidateSession(0, false), 8_000],
        [sim.close(0, 4000), 3_000],
        [sim.close(0, 4009), 8_000],
        [sim.withholdAcks(0, true), 5_000],
        [Effect.andThen(sim.nextConnection("reconnect-before-hello"), sim.drop(0)), 5_000],
        [Effect.andThen(sim.nextConnection("no-hello"), sim.drop(0)), 25_000],
        [sim.close(0, 4001), 3_000],
        [Effect.andThen(sim.drop(0), sim.dispatch("MESSAGE_CREATE", { guild_id: guild })), 3_000]
      ]
      for (const [fault, wait] of faults) {
        yield* fault
        yield* advanceInSteps(wait)
      }

      const connections = yield* sim.connections
      expect(connections.length).toBeGreaterThanOrEqual(12)
      expect(openAtConnect.length).toBe(connections.length)
      expect(openAtConnect.every((open) => open === 1)).toBe(true)
      // by the recorded intervals too: each connection closed before the next one opened
      for (let i = 0; i + 1 < connections.length; i++) {
        const current = connections[i]!
        expect(current.closedAt).not.toBeNull()
        expect(current.closedAt!).toBeLessThanOrEqual(connections[i + 1]!.openedAt)
      }
      expect(connections.filter((c) => c.closedAt === null).length).toBe(1)
    }).pipe(Effect.provide(layer())))
})
