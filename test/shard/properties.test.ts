/**
 * Property tests of one shard against the in-process simulator under TestClock: random sequences of
 * non-fatal gateway faults (PROTOCOL.md §1.4–§1.10, §2, §3), after which the shard must be ready again
 * and four invariants must hold over the simulator's recordings:
 *
 * 1. exactly-once, in-order delivery of the dispatches the server sent (§1.7 replay, §6.1);
 * 2. item 11: never IDENTIFY and RESUME on one connection, at most one IDENTIFY per connection;
 * 3. item 40: no connection carries more than 120 client frames in any sliding 60 s window (§3);
 * 4. item 16: IDENTIFYs of the (single) bucket are ≥ 5000 − 50 ms apart and none is refused with op 9.
 *
 * Fault steps: dispatch k events (to the shard's guilds or guild-less), advance time, drop, server close
 * with a resumable or session-ending code (never a fatal one: those end the shard), op 7, op 9 d:true,
 * op 9 d:false, withhold ACKs for a while then release, server heartbeat requests (bursts up to 150).
 * Steps follow each other with no settling in between (only time steps let fibers settle), so controls
 * also land while the client has not yet reacted to the previous one.
 *
 * Inputs come from random arbitrary seeds (a failure prints the shrunk steps and a Replay token). The
 * shard's own randomness (heartbeat jitter, backoff jitter, op 9 wait) is seeded from the input's `seed`,
 * so every case — and its replay — is deterministic.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Random, Schema } from "effect"
import type { Dispatch } from "../../src/Dispatch.ts"
import type { Shard } from "../../src/Shard.ts"
import { GatewaySimulator, type RecordedFrame } from "../../src/testing/GatewaySimulator.ts"
import { advance, advanceInSteps, collectDispatches, guilds, I, layer, phaseOf, startShard } from "./harness.ts"

// ---- inputs ------------------------------------------------------------------------------------------------------

const int = (minimum: number, maximum: number) => Schema.Int.check(Schema.isBetween({ minimum, maximum }))

/** Server close codes that keep the shard alive: resume (4000–4002, 4005, 4008, unknown, server 1000/1001) or identify (4003, 4007, 4009). */
const NonFatalCloseCode = Schema.Literals([4000, 4001, 4002, 4003, 4005, 4007, 4008, 4009, 4006, 4999, 1000, 1001])

/** Index into `guilds`, or `guilds.length` for a guild-less event. */
const Target = int(0, guilds.length)

const Step = Schema.Union([
  Schema.TaggedStruct("dispatch", { targets: Schema.Array(Target).check(Schema.isBetweenLength(1, 5)) }),
  Schema.TaggedStruct("advance", { ms: int(0, 5000) }),
  Schema.TaggedStruct("drop", {}),
  Schema.TaggedStruct("close", { code: NonFatalCloseCode }),
  Schema.TaggedStruct("reconnect", {}),
  Schema.TaggedStruct("invalidate", { resumable: Schema.Boolean }),
  Schema.TaggedStruct("withhold", { ms: int(0, 5000) }),
  Schema.TaggedStruct("requestHeartbeat", { times: int(1, 150) })
])
type Step = typeof Step.Type

const Steps = Schema.Array(Step).check(Schema.isBetweenLength(3, 24))
const Seed = int(0, 1_000_000)

// ---- driving -----------------------------------------------------------------------------------------------------

/** Time moves in steps well below I, so every fiber reacts at the virtual time it is due (see harness `advance`). */
const Tick = 100

/** Like `advanceInSteps` with `Tick` steps, but 0 ms is one `advance(0)`: fibers still settle. */
const advanceBy = (ms: number) => ms === 0 ? advance(0) : advanceInSteps(ms, { step: Tick })

const runStep = (step: Step, eventCounter: { n: number }) =>
  Effect.gen(function*() {
    const sim = yield* GatewaySimulator
    switch (step._tag) {
      case "dispatch":
        for (const target of step.targets) {
          const n = ++eventCounter.n
          yield* sim.dispatch(
            "MESSAGE_CREATE",
            target < guilds.length ? { guild_id: guilds[target], id: String(n), content: `m${n}` } : { id: String(n), content: `m${n}` }
          )
        }
        return
      case "advance":
        return yield* advanceBy(step.ms)
      case "drop":
        return yield* sim.drop(0)
      case "close":
        return yield* sim.close(0, step.code)
      case "reconnect":
        return yield* sim.reconnect(0)
      case "invalidate":
        return yield* sim.invalidateSession(0, step.resumable)
      case "withhold":
        yield* sim.withholdAcks(0, true)
        yield* advanceBy(step.ms)
        return yield* sim.withholdAcks(0, false)
      case "requestHeartbeat":
        for (let i = 0; i < step.times; i++) yield* sim.requestHeartbeat(0)
        return
    }
  })

/** Long enough for any backoff (≤ 60 s × 1.25), an op 9 wait (≤ 5 s) and an identify bucket wait (≤ 5 s). */
const RecoveryLimitMs = 150_000
/** Ready and still ready this long: a pending zombie check (≤ 2 beats) or reconnect would have shown. */
const StableMs = 2 * I + 500

/** Lets the shard recover after the faults: advance until it has been ready for `StableMs`. */
const recover = (shard: Shard) =>
  Effect.gen(function*() {
    let stable = 0
    for (let waited = 0; waited < RecoveryLimitMs; waited += Tick) {
      yield* advance(Tick)
      stable = (yield* phaseOf(shard)) === "ready" ? stable + Tick : 0
      if (stable >= StableMs) return true
    }
    return false
  })

// ---- checks ------------------------------------------------------------------------------------------------------

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null
const sessionIdOf = (d: unknown): string | undefined =>
  isRecord(d) && typeof d.session_id === "string" ? d.session_id : undefined

/**
 * Property 1 — exactly-once, in-order delivery. The invariant, stated on the recordings:
 *
 * Let SENT be the set of (session, s) of every op 0 frame the simulator sent on any connection of the shard
 * (a frame's session: the one its connection started, READY's `session_id` or the client's RESUME
 * `session_id`; RESUME replays re-send the same pairs, so SENT is deduplicated). Let DELIVERED be the
 * dispatches the DispatchSink published, each attributed to the session of the latest READY delivered
 * before it (a new session always starts with READY). Then:
 * (a) DELIVERED has no duplicate (session, s) and every delivered pair is in SENT with the same event name;
 * (b) within each session, delivered `s` strictly increase;
 * (c) every (session, s) the server sent on a connection *before the first op 7 or op 9 on that connection*
 *     is delivered. The in-process transport hands the client every frame the server sent before a close
 *     or drop, and the client reads a connection's frames in order, so it reads everything up to the point
 *     where it leaves the connection on its own: on op 7 / op 9 it closes at once and frames queued behind
 *     them stay unread; on a missed ACK (zombie) it closes too, but that only happens on a withheld
 *     connection, where the server sends nothing. Frames left unread after op 7 / op 9 are not lost while
 *     the session lives — the RESUME replays them on the next connection, where (c) covers them again — and
 *     are legitimately lost when the session dies first (op 9 d:false, 4003/4007/4009): Discord cannot
 *     replay a dead session. Events the server buffered for a session but never sent on a connection
 *     (withheld, or emitted while disconnected and never resumed) are not in SENT;
 * (d) for the session the shard is ready on at the end, every sent (session, s) is delivered (anything left
 *     unread after an op 7 was replayed by the RESUME that led to the final connection).
 */
const checkDelivery = (
  frames: ReadonlyArray<RecordedFrame>,
  received: ReadonlyArray<Dispatch>,
  finalSession: string | null
) => {
  const sessionOfConnection = new Map<number, string>()
  const cut = new Set<number>()
  const sent = new Map<string, Map<number, string>>()
  const mustDeliver: Array<readonly [string, number]> = []
  for (const frame of frames) {
    if (frame.direction === "client") {
      const resumed = frame.op === 6 ? sessionIdOf(frame.d) : undefined
      if (resumed !== undefined) sessionOfConnection.set(frame.connectionId, resumed)
      continue
    }
    if (frame.op === 7 || frame.op === 9) {
      cut.add(frame.connectionId)
      continue
    }
    if (frame.op !== 0) continue
    if (frame.t === "READY") {
      const created = sessionIdOf(frame.d)
      expect(created, "READY carries a session_id").toBeDefined()
      sessionOfConnection.set(frame.connectionId, created!)
    }
    const session = sessionOfConnection.get(frame.connectionId)
    expect(session, `dispatch s=${frame.s} on connection ${frame.connectionId} outside a session`).toBeDefined()
    const s = frame.s!
    let bySeq = sent.get(session!)
    if (bySeq === undefined) sent.set(session!, bySeq = new Map())
    const previous = bySeq.get(s)
    expect(previous ?? frame.t, `the server re-sent ${session}#${s} under another name`).toBe(frame.t)
    bySeq.set(s, frame.t!)
    if (!cut.has(frame.connectionId)) mustDeliver.push([session!, s])
  }

  const delivered = new Map<string, Set<number>>()
  let current: string | undefined
  for (const dispatch of received) {
    expect(dispatch.shard).toBe(0)
    if (dispatch.name === "READY") current = sessionIdOf(dispatch.data)
    expect(current, `dispatch ${dispatch.name} s=${dispatch.seq} delivered before any READY`).toBeDefined()
    const session = current!
    let seqs = delivered.get(session)
    if (seqs === undefined) delivered.set(session, seqs = new Set())
    const key = `${session}#${dispatch.seq}`
    expect(seqs.has(dispatch.seq), `${key} delivered twice`).toBe(false)
    expect(sent.get(session)?.get(dispatch.seq), `${key} (${dispatch.name}) delivered but never sent`).toBe(dispatch.name)
    let last = -Infinity
    for (const s of seqs) last = Math.max(last, s)
    expect(dispatch.seq, `${key} delivered after a later s of its session`).toBeGreaterThan(last)
    seqs.add(dispatch.seq)
  }

  for (const [session, s] of mustDeliver) {
    expect(delivered.get(session)?.has(s) ?? false, `${session}#${s} was sent before any op 7/9 on its connection but never delivered`)
      .toBe(true)
  }
  expect(finalSession, "the ready shard has a session").not.toBeNull()
  for (const s of sent.get(finalSession!)?.keys() ?? []) {
    expect(delivered.get(finalSession!)?.has(s) ?? false, `${finalSession}#${s} of the final session never delivered`).toBe(true)
  }
}

const groupByConnection = (frames: ReadonlyArray<RecordedFrame>) => {
  const out = new Map<number, Array<RecordedFrame>>()
  for (const frame of frames) {
    let list = out.get(frame.connectionId)
    if (list === undefined) out.set(frame.connectionId, list = [])
    list.push(frame)
  }
  return out
}

/** Property 2 — item 11: at most one IDENTIFY per connection, never IDENTIFY and RESUME on one connection. */
const checkSessionStarts = (clientFrames: ReadonlyArray<RecordedFrame>) => {
  for (const [connection, list] of groupByConnection(clientFrames)) {
    const identifies = list.filter((f) => f.op === 2).length
    const resumes = list.filter((f) => f.op === 6).length
    expect(identifies, `connection ${connection}: ${identifies} IDENTIFYs`).toBeLessThanOrEqual(1)
    expect(identifies > 0 && resumes > 0, `connection ${connection}: both IDENTIFY and RESUME`).toBe(false)
  }
}

/**
 * Property 3 — item 40: in any sliding 60 s window a connection carries ≤ 120 client frames. (A 4008 the
 * simulator sends for the limit comes right after the 121st frame, which is recorded, so this covers it;
 * 4008 closes in the recordings are also the test's own faults.)
 */
const checkSendLimit = (clientFrames: ReadonlyArray<RecordedFrame>) => {
  for (const [connection, list] of groupByConnection(clientFrames)) {
    for (let i = 0; i + 120 < list.length; i++) {
      const span = list[i + 120]!.at - list[i]!.at
      expect(span, `connection ${connection}: 121 client frames within ${span} ms (from t=${list[i]!.at})`)
        .toBeGreaterThanOrEqual(60_000)
    }
  }
}

/** Property 4 — item 16 (one shard, one bucket): IDENTIFYs ≥ 5000 − 50 ms apart, and each one answered by READY. */
const checkIdentifies = (frames: ReadonlyArray<RecordedFrame>) => {
  const identifies = frames.filter((f) => f.direction === "client" && f.op === 2)
  for (let i = 1; i < identifies.length; i++) {
    const gap = identifies[i]!.at - identifies[i - 1]!.at
    expect(gap, `IDENTIFYs at t=${identifies[i - 1]!.at} and t=${identifies[i]!.at}`).toBeGreaterThanOrEqual(5000 - 50)
  }
  // The simulator answers an IDENTIFY at once: READY when accepted, op 9 d:false when the bucket refuses it.
  for (let i = 0; i < frames.length; i++) {
    const frame = frames[i]!
    if (frame.direction !== "client" || frame.op !== 2) continue
    const answer = frames.slice(i + 1).find((f) => f.connectionId === frame.connectionId && f.direction === "server")
    expect(answer === undefined ? "nothing" : answer.op === 0 ? answer.t : `op ${answer.op}`, `answer to the IDENTIFY at t=${frame.at}`)
      .toBe("READY")
  }
}

// ---- the property ------------------------------------------------------------------------------------------------

const runCase = (steps: ReadonlyArray<Step>) =>
  Effect.gen(function*() {
    const sim = yield* GatewaySimulator
    const received = yield* collectDispatches
    const shard = yield* startShard()
    yield* advance(0) // connect, Hello, IDENTIFY, READY: the faults start on a ready shard
    const eventCounter = { n: 0 }
    for (const step of steps) yield* runStep(step, eventCounter)
    const recovered = yield* recover(shard)
    const state = yield* shard.state
    expect(recovered, `the shard did not become ready again (phase ${state.phase}, last error ${state.lastError})`)
      .toBe(true)

    const frames = yield* sim.frames
    const clientFrames = frames.filter((f) => f.direction === "client")
    checkDelivery(frames, received, state.sessionId)
    checkSessionStarts(clientFrames)
    checkSendLimit(clientFrames)
    checkIdentifies(frames)
    return true
  })

describe("shard properties under random non-fatal faults", () => {
  it.effect.prop(
    "items 11, 16, 40 and exactly-once in-order delivery hold for any sequence of non-fatal faults",
    { seed: Seed, steps: Steps },
    ({ seed, steps }) => runCase(steps).pipe(Effect.scoped, Random.withSeed(seed), Effect.provide(layer())),
    { timeout: 60_000, arbitrary: { runs: 40, size: 24 } }
  )
})

describe("shard properties: shrunk counterexamples", () => {
  // Found by the property above (seed 60575, 15 steps) and reduced by hand: an op 9 d:false wait with a
  // fractional length puts an IDENTIFY at a fractional Clock time; the next IDENTIFY is granted exactly one
  // identify window later, and 10611.150821 − 5611.150821 = 4999.999999999999 in floating point.
  it.effect("item 16: an IDENTIFY exactly one window after the previous one (fractional ms) is not refused", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const shard = yield* startShard({ invalidSessionDelayMs: { min: 2611.150821, max: 2611.150821 } })
      yield* advanceBy(3000)
      yield* sim.invalidateSession(0, false) // re-IDENTIFY at 3000 + 2611.150821, the bucket is free
      yield* advanceBy(2700)
      expect((yield* sim.clientFrames({ op: 2 })).length).toBe(2)
      yield* sim.invalidateSession(0, false) // re-IDENTIFY when the bucket frees, at 5611.150821 + 5000
      expect(yield* recover(shard), "the shard became ready again").toBe(true)
      const frames = yield* sim.frames
      checkIdentifies(frames)
      expect(frames.filter((f) => f.direction === "client" && f.op === 2).length).toBe(3)
    }).pipe(Effect.provide(layer())))
})
