/**
 * Shard conformance: heartbeating (PROTOCOL.md §1.4, checklist items 4–10).
 *
 * Every assertion reads the simulator's recordings: when Hello went out, when each client op 1 arrived
 * and what it carried, which connection closed with which code and when. Time is virtual (TestClock) and
 * moves in small steps through the harness's `advance`, so the recorded times are the shard's own
 * schedule. The jitter is the shard's real `Random` draw; tests that need reproducible draws seed it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Random, Schema } from "effect"
import { GatewaySimulator, type RecordedFrame } from "../../src/testing/GatewaySimulator.ts"
import { advance, advanceInSteps, I, layer, settle, startShard, tau } from "./harness.ts"

// ---------------------------------------------------------------------------------------------------------------------
// Reading the recordings

const clientOn = (frames: ReadonlyArray<RecordedFrame>, connectionId: number, op?: number) =>
  frames.filter((f) => f.direction === "client" && f.connectionId === connectionId && (op === undefined || f.op === op))

const serverOn = (frames: ReadonlyArray<RecordedFrame>, connectionId: number, op?: number) =>
  frames.filter((f) => f.direction === "server" && f.connectionId === connectionId && (op === undefined || f.op === op))

/** When the simulator sent Hello on a connection. */
const helloAt = (frames: ReadonlyArray<RecordedFrame>, connectionId: number): number => {
  const hello = serverOn(frames, connectionId, 10)
  expect(hello.length, `Hello on connection ${connectionId}`).toBe(1)
  return hello[0]!.at
}

/** The client's op 1 times on a connection. */
const beatTimes = (frames: ReadonlyArray<RecordedFrame>, connectionId: number): Array<number> =>
  clientOn(frames, connectionId, 1).map((f) => f.at)

/** Gaps between consecutive times. */
const gaps = (times: ReadonlyArray<number>): Array<number> => times.slice(1).map((t, i) => t - times[i]!)

/**
 * Item 4 and item 6 on one connection's self-scheduled beats, up to `until` (exclusive of later beats):
 * the first beat at Hello + δ with 0 ≤ δ ≤ I + τ, then every gap within I ± τ, and no silence longer
 * than I + τ between the last beat and `until`.
 */
const expectRegularBeats = (hello: number, beats: ReadonlyArray<number>, until: number) => {
  expect(beats.length, "at least one heartbeat").toBeGreaterThan(0)
  const delta = beats[0]! - hello
  expect(delta, "item 4: δ ≥ 0").toBeGreaterThanOrEqual(0)
  expect(delta, "item 4: δ ≤ I + τ").toBeLessThanOrEqual(I + tau)
  for (const gap of gaps(beats)) {
    expect(gap, "item 6: gap ≥ I − τ").toBeGreaterThanOrEqual(I - tau)
    expect(gap, "item 6: gap ≤ I + τ").toBeLessThanOrEqual(I + tau)
  }
  expect(until - beats[beats.length - 1]!, "item 6: no silence longer than I + τ").toBeLessThanOrEqual(I + tau)
}

/**
 * Item 7 over a whole recording, in wire order: every client op 1 carries the latest `s` the server sent
 * in the current session (`null` once op 9 `d:false` ended the session and after an IDENTIFY, until the
 * new session's first dispatch; a RESUME keeps the value).
 * Returns the heartbeats checked, with the value each was expected to carry.
 */
const expectHeartbeatSequences = (frames: ReadonlyArray<RecordedFrame>) => {
  let latest: number | null = null
  const checked: Array<{ readonly frame: RecordedFrame; readonly expected: number | null }> = []
  for (const frame of frames) {
    if (frame.direction === "server" && frame.op === 0 && frame.s !== null) latest = frame.s
    else if (frame.direction === "server" && frame.op === 9 && frame.d === false) latest = null // session gone
    else if (frame.direction === "client" && frame.op === 2) latest = null
    else if (frame.direction === "client" && frame.op === 1) checked.push({ frame, expected: latest })
  }
  for (const { expected, frame } of checked) {
    expect(frame.d, `item 7: op 1 at ${frame.at} on connection ${frame.connectionId}`).toBe(expected)
  }
  return checked
}

/** Advances in `stepMs` steps until `done` holds, for at most `limitMs`; returns whether it held. */
const advanceUntil = <R>(done: Effect.Effect<boolean, never, R>, limitMs: number, stepMs = 50) =>
  Effect.gen(function*() {
    for (let waited = 0; waited < limitMs; waited += stepMs) {
      if (yield* done) return true
      yield* advance(stepMs)
    }
    return yield* done
  })

const lastConnectionId = Effect.gen(function*() {
  const sim = yield* GatewaySimulator
  const connections = yield* sim.connections
  return connections[connections.length - 1]!.id
})

/** How many op 1 the client has sent on a connection so far. */
const beatCount = (connectionId: number) =>
  Effect.gen(function*() {
    const sim = yield* GatewaySimulator
    return clientOn(yield* sim.frames, connectionId, 1).length
  })

const now = Effect.clockWith((clock) => clock.currentTimeMillis)

const messageIn = (n: number) => ({ guild_id: "81384788765712384", channel_id: "1", content: `message ${n}` })

// ---------------------------------------------------------------------------------------------------------------------

describe("shard heartbeat (PROTOCOL.md §1.4)", () => {
  it.effect.prop(
    "item 4: the first op 1 goes at Hello + δ with 0 ≤ δ ≤ I + τ, whatever the jitter draw",
    { seed: Schema.Int },
    ({ seed }) =>
      Effect.gen(function*() {
        const sim = yield* GatewaySimulator
        yield* startShard()
        yield* advanceInSteps(I + tau + 500, { wholeSteps: true })
        const frames = yield* sim.frames
        const beats = beatTimes(frames, 1)
        expect(beats.length).toBeGreaterThan(0)
        const delta = beats[0]! - helloAt(frames, 1)
        expect(delta).toBeGreaterThanOrEqual(0)
        expect(delta).toBeLessThanOrEqual(I + tau)
      }).pipe(Random.withSeed(seed), Effect.provide(layer())),
    { arbitrary: { runs: 12, seed: 4, maxShrinks: 2 } }
  )

  it.effect("item 5: over 24 fresh connections the first-beat δ is jittered: not all equal, min δ < I/2 < max δ", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      yield* startShard()
      yield* settle
      const connectionCount = 24
      for (let n = 0; n < connectionCount; n++) {
        const id = yield* lastConnectionId
        expect(yield* advanceUntil(Effect.map(beatCount(id), (c) => c > 0), I + tau + 1_000), `first beat on connection ${id}`)
          .toBe(true)
        // A resumable close: the shard opens a fresh connection (and resumes) at once.
        yield* sim.close(0, 4000)
        yield* advance(0)
        // The reconnect must have happened before the next round reads "the last connection".
        if (n < connectionCount - 1) expect(yield* lastConnectionId).toBeGreaterThan(id)
      }
      const frames = yield* sim.frames
      const connections = yield* sim.connections
      expect(connections.length).toBeGreaterThanOrEqual(connectionCount)
      const deltas = connections.slice(0, connectionCount).map((c) => beatTimes(frames, c.id)[0]! - helloAt(frames, c.id))
      for (const delta of deltas) {
        expect(delta).toBeGreaterThanOrEqual(0)
        expect(delta).toBeLessThanOrEqual(I + tau)
      }
      expect(new Set(deltas).size).toBeGreaterThan(1)
      expect(Math.min(...deltas)).toBeLessThan(I / 2)
      expect(Math.max(...deltas)).toBeGreaterThan(I / 2)
    }).pipe(Random.withSeed(5), Effect.provide(layer())))

  it.effect.prop(
    "item 6: while ACKs arrive, self-scheduled beats are I ± τ apart for 3 minutes; no gap exceeds I + τ (any jitter)",
    { seed: Schema.Int },
    ({ seed }) =>
      Effect.gen(function*() {
        const sim = yield* GatewaySimulator
        yield* startShard()
        for (let minute = 0; minute < 3; minute++) {
          yield* sim.dispatch("MESSAGE_CREATE", messageIn(minute))
          // Beats are timer-driven: TestClock wakes each at its exact time whatever the step size.
          yield* advanceInSteps(60_000, { step: 250 })
        }
        const frames = yield* sim.frames
        // ACKs arrived all along: the connection must still be the first one.
        expect((yield* sim.connections).map((c) => c.closeCode)).toEqual([null])
        // every beat was acknowledged
        expect(serverOn(frames, 1, 11).length).toBe(clientOn(frames, 1, 1).length)
        const beats = beatTimes(frames, 1)
        expect(beats.length).toBeGreaterThanOrEqual(Math.floor(180_000 / (I + tau)))
        expectRegularBeats(helloAt(frames, 1), beats, yield* now)
      }).pipe(Random.withSeed(seed), Effect.provide(layer())),
    { timeout: 60_000, arbitrary: { runs: 5, seed: 6, maxShrinks: 2 } }
  )

  it.effect("item 7: op 1 d is the latest s of the session, through dispatches and a RESUME (kept, never reset)", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      yield* startShard()
      // READY (s = 1) and one GUILD_CREATE per guild: s = 5
      expect(yield* advanceUntil(Effect.map(beatCount(1), (c) => c >= 2), 2 * I + tau)).toBe(true)
      for (let n = 0; n < 3; n++) yield* sim.dispatch("MESSAGE_CREATE", messageIn(n))
      yield* settle
      expect(yield* advanceUntil(Effect.map(beatCount(1), (c) => c >= 4), 2 * I + tau)).toBe(true)
      const beforeResume = (yield* sim.sessions)[0]!.seq
      expect(beforeResume).toBe(8)

      yield* sim.close(0, 4000)
      yield* advance(0)
      const resumeId = yield* lastConnectionId
      expect(resumeId).toBe(2)
      expect(yield* advanceUntil(Effect.map(beatCount(resumeId), (c) => c >= 2), 2 * I + tau)).toBe(true)
      for (let n = 3; n < 5; n++) yield* sim.dispatch("MESSAGE_CREATE", messageIn(n))
      yield* settle
      expect(yield* advanceUntil(Effect.map(beatCount(resumeId), (c) => c >= 4), 2 * I + tau)).toBe(true)

      const frames = yield* sim.frames
      const checked = expectHeartbeatSequences(frames)
      // The RESUME carried the kept value, and no beat of the resumed session went back to null or below it.
      const resume = clientOn(frames, resumeId, 6)
      expect(resume.length).toBe(1)
      expect((resume[0]!.d as { seq: unknown }).seq).toBe(beforeResume)
      const resumedBeats = clientOn(frames, resumeId, 1).map((f) => f.d)
      for (const d of resumedBeats) expect(typeof d === "number" && d > beforeResume).toBe(true)
      // Non-vacuous: beats were checked before and after the new dispatches on both connections.
      const expectedValues = new Set(checked.map((c) => c.expected))
      for (const value of [5, 8, beforeResume + 1, (yield* sim.sessions)[0]!.seq]) expect(expectedValues).toContain(value)
    }).pipe(Random.withSeed(7), Effect.provide(layer())))

  it.effect("item 7: after op 9 d:false, beats on the new connection carry null until the new session's first dispatch", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      yield* startShard({ invalidSessionDelayMs: { min: 1_000, max: 1_000 } })
      // Ready without moving time, so the dispatches below come before the first beat.
      yield* advance(0)
      expect((yield* sim.sessions).length).toBe(1)
      for (let n = 0; n < 2; n++) yield* sim.dispatch("MESSAGE_CREATE", messageIn(n))
      yield* settle
      expect(yield* advanceUntil(Effect.map(beatCount(1), (c) => c >= 1), I + tau)).toBe(true)
      // The first IDENTIFY took the bucket at t = 0: the re-IDENTIFY waits until t = 5000, beyond the
      // first beat of the new connection (Hello ≤ I + 1000 + step, first beat ≤ Hello + I).
      yield* sim.invalidateSession(0, false)
      expect(yield* advanceUntil(Effect.map(sim.clientFrames({ op: 2 }), (f) => f.length >= 2), 10_000)).toBe(true)
      yield* advanceInSteps(3 * I)

      const frames = yield* sim.frames
      const connections = yield* sim.connections
      expect(connections.length).toBe(2)
      const fresh = connections[1]!.id
      const firstDispatch = serverOn(frames, fresh, 0)[0]!
      expect(firstDispatch.t).toBe("READY")
      const identify = clientOn(frames, fresh, 2)[0]!
      const beforeReady = clientOn(frames, fresh, 1).filter((f) => f.at < identify.at)
      expect(beforeReady.length).toBeGreaterThan(0)
      for (const beat of beforeReady) expect(beat.d).toBeNull()
      // The old session's value (7: READY, 4 GUILD_CREATE, 2 messages) was carried before op 9.
      expect(clientOn(frames, 1, 1).map((f) => f.d)).toContain(7)
      // After READY the beats follow the new numbering (READY s = 1 and 4 GUILD_CREATE: 5).
      const afterReady = clientOn(frames, fresh, 1).filter((f) => f.at > identify.at)
      expect(afterReady.length).toBeGreaterThan(0)
      for (const beat of afterReady) expect(beat.d).toBe(5)
      expectHeartbeatSequences(frames)
    }).pipe(Random.withSeed(9), Effect.provide(layer())))

  it.effect("item 8: a server op 1 is answered with op 1 within τ; the client never sends op 11", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      yield* startShard()
      const answers: Array<{ readonly requestedAt: number; readonly answeredAt: number | undefined }> = []
      for (let round = 0; round < 5; round++) {
        yield* sim.dispatch("MESSAGE_CREATE", messageIn(round))
        // Right after a scheduled beat, so the next scheduled one is about I away: only the answer can land within τ.
        const seen = yield* beatCount(1)
        expect(yield* advanceUntil(Effect.map(beatCount(1), (c) => c > seen), I + tau)).toBe(true)
        const before = yield* beatCount(1)
        const requestedAt = yield* now
        yield* sim.requestHeartbeat(0)
        yield* advanceInSteps(tau, { step: 50 })
        const later = clientOn(yield* sim.frames, 1, 1).slice(before)
        answers.push({ requestedAt, answeredAt: later[0]?.at })
        yield* advanceInSteps(I / 2, { wholeSteps: true })
      }
      for (const { answeredAt, requestedAt } of answers) {
        expect(answeredAt, `answer to the op 1 sent at ${requestedAt}`).toBeDefined()
        expect(answeredAt! - requestedAt).toBeGreaterThanOrEqual(0)
        expect(answeredAt! - requestedAt).toBeLessThanOrEqual(tau)
      }
      const frames = yield* sim.frames
      expect(serverOn(frames, 1, 1).length).toBe(5)
      expect(frames.filter((f) => f.direction === "client" && f.op === 11)).toEqual([])
      // The answers carry the latest sequence too.
      expectHeartbeatSequences(frames)
    }).pipe(Random.withSeed(8), Effect.provide(layer())))

  it.effect.prop(
    "item 9: no ACK for beat k → at beat k+1's due time (± τ) the client closes (∉ 1000/1001), reconnects to the resume URL, RESUMEs",
    { seed: Schema.Int },
    ({ seed }) =>
      Effect.gen(function*() {
        const sim = yield* GatewaySimulator
        const k = 3
        yield* startShard()
        expect(yield* advanceUntil(Effect.map(beatCount(1), (c) => c >= k - 1), k * I + tau)).toBe(true)
        // From now on connection 1 gets nothing: beat k goes unanswered.
        yield* sim.withholdAcks(0, true)
        const closed = Effect.map(sim.connections, (cs) => cs[0]!.closedAt !== null)
        expect(yield* advanceUntil(closed, 3 * I)).toBe(true)
        yield* advanceInSteps(2 * I)

        const frames = yield* sim.frames
        const connections = yield* sim.connections
        const first = connections[0]!
        const beats = beatTimes(frames, 1)
        expect(beats.length, "beat k+1 is not sent").toBe(k)
        const acked = serverOn(frames, 1, 11).filter((f) => f.at >= beats[k - 1]!)
        expect(acked, "beat k was not acknowledged").toEqual([])
        expect(first.closedBy).toBe("client")
        expect([1000, 1001]).not.toContain(first.closeCode)
        const due = beats[k - 1]! + I
        expect(Math.abs(first.closedAt! - due)).toBeLessThanOrEqual(tau)

        expect(connections.length).toBeGreaterThanOrEqual(2)
        const second = connections[1]!
        expect(second.url.startsWith(sim.options.resumeUrl)).toBe(true)
        const sessionFrames = clientOn(frames, second.id).filter((f) => f.op !== 1)
        expect(sessionFrames[0]?.op).toBe(6)
        expect((sessionFrames[0]!.d as { session_id: unknown }).session_id).toBe(first.sessionId)
        expect(clientOn(frames, second.id, 2)).toEqual([])
      }).pipe(Random.withSeed(seed), Effect.provide(layer())),
    { arbitrary: { runs: 8, seed: 9, maxShrinks: 2 } }
  )

  it.effect("item 10: while the identify bucket holds IDENTIFY back for W > I, beats keep to items 4 and 6", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      // max_concurrency 1: shard k of 4 may identify only at 5000·k, so shards 1–3 wait W ≥ 5000 > I.
      const count = 4
      for (let id = 0; id < count; id++) yield* startShard({ shardId: id, shardCount: count })
      yield* advanceInSteps(5_000 * (count - 1) + 2 * I)

      const frames = yield* sim.frames
      const connections = yield* sim.connections
      expect(connections.length).toBe(count)
      for (let id = 1; id < count; id++) {
        const connection = connections.find((c) => c.shard?.[0] === id)!
        expect(connection, `connection of shard ${id}`).toBeDefined()
        expect(connection.closedAt).toBeNull()
        const hello = helloAt(frames, connection.id)
        const identify = clientOn(frames, connection.id, 2)
        expect(identify.length).toBe(1)
        const identifiedAt = identify[0]!.at
        const wait = identifiedAt - hello
        expect(wait, `shard ${id} waited for its bucket`).toBeGreaterThan(I)
        const beatsBefore = beatTimes(frames, connection.id).filter((t) => t < identifiedAt)
        expect(beatsBefore.length).toBeGreaterThanOrEqual(Math.floor(wait / (I + tau)))
        expectRegularBeats(hello, beatsBefore, identifiedAt)
      }
    }).pipe(Random.withSeed(10), Effect.provide(layer({ maxConcurrency: 1 }))))

  it.effect("item 4: a jitter draw of 0 puts the first beat 1 ms after Hello, not in Hello's instant, where it would cross the answer to RESUME (item 7 holds)", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      yield* startShard()
      yield* advance(0)
      for (let n = 0; n < 3; n++) yield* sim.dispatch("MESSAGE_CREATE", messageIn(n))
      yield* advanceInSteps(2 * I)
      yield* sim.drop(0)
      yield* advanceInSteps(3 * I) // reconnect after the backoff, RESUME, RESUMED
      const frames = yield* sim.frames
      const connections = yield* sim.connections
      expect(connections.length).toBe(2)
      expect(clientOn(frames, connections[1]!.id, 6).length, "the second connection RESUMEd").toBe(1)
      for (const connection of connections) {
        expect(beatTimes(frames, connection.id)[0]! - helloAt(frames, connection.id), `δ on connection ${connection.id}`).toBe(1)
      }
      expectHeartbeatSequences(frames)
    }).pipe(
      // Every draw is 0: the first-beat jitter (and the reconnect backoff's).
      Effect.provideService(Random.Random, { nextIntUnsafe: () => 0, nextDoubleUnsafe: () => 0 }),
      Effect.provide(layer())
    ))
})
