/**
 * Test harness for shard tests: a shard wired to the in-process simulator under TestClock.
 * The heartbeat interval is short (I = 1500 ms, PROTOCOL.md's suggestion for tests). Besides the wiring:
 * moving virtual time (one step, or many small ones) and recording what a shard publishes (its
 * dispatches, its states).
 */
import { Effect, Layer, Redacted, Stream } from "effect"
import { TestClock } from "effect/testing"
import type { Dispatch } from "../../src/Dispatch.ts"
import { DispatchSink } from "../../src/DispatchSink.ts"
import { IdentifyRateLimiter, type SessionStartLimit } from "../../src/IdentifyRateLimiter.ts"
import { Intents } from "../../src/protocol/Intents.ts"
import { SessionStore } from "../../src/SessionStore.ts"
import * as Shard from "../../src/Shard.ts"
import type { ShardPhase, ShardState } from "../../src/ShardState.ts"
import { GatewaySimulator, type SimulatorOptions } from "../../src/testing/GatewaySimulator.ts"

export const token = "test-token.NEVER-SHOWN.abc123"
export const I = 1500
/** The checklist's timing tolerance τ. */
export const tau = 250

/** Guild ids: several per shard for small counts, one above 2^53. */
export const guilds = ["81384788765712384", "1299999999999868927", "41771983423143937", "41771983423143938"]

export interface HarnessOptions {
  readonly simulator?: Partial<SimulatorOptions>
  readonly maxConcurrency?: number
  readonly sessionStartLimit?: SessionStartLimit
  readonly sessions?: Layer.Layer<SessionStore>
}

export const layer = (options: HarnessOptions = {}) =>
  Layer.mergeAll(
    GatewaySimulator.layer({ token, heartbeatIntervalMs: I, guilds, ...options.simulator }),
    IdentifyRateLimiter.layerMemory({
      maxConcurrency: options.maxConcurrency ?? 1,
      ...(options.sessionStartLimit === undefined ? {} : { sessionStartLimit: options.sessionStartLimit })
    }),
    options.sessions ?? SessionStore.layerMemory,
    DispatchSink.layer()
  )

/** Starts a shard against the simulator (defaults: shard 0 of 1, GUILDS | GUILD_MESSAGES). */
export const startShard = (overrides: Partial<Shard.ShardOptions> = {}) =>
  Effect.gen(function*() {
    const sim = yield* GatewaySimulator
    return yield* Shard.make({
      token: Redacted.make(token),
      shardId: 0,
      shardCount: 1,
      intents: Intents.Guilds | Intents.GuildMessages,
      gatewayUrl: sim.options.baseUrl,
      ...overrides
    })
  })

/** Subscribes now and collects every dispatch into an array, in the test's Scope. */
export const collectDispatches = Effect.gen(function*() {
  const sink = yield* DispatchSink
  const stream = yield* sink.subscription()
  const received: Array<Dispatch> = []
  yield* Effect.forkScoped(Stream.runForEach(stream, (d) => Effect.sync(() => received.push(d))))
  return received
})

/** The `content` of every MESSAGE_CREATE among `received`, in order. */
export const messageContents = (received: ReadonlyArray<Dispatch>): Array<unknown> =>
  received.filter((d) => d.name === "MESSAGE_CREATE").map((d) => (d.data as { readonly content?: unknown }).content)

/** Records every state the shard publishes, from now on (the current one first), in the test's Scope. */
export const recordStates = (shard: Shard.Shard) =>
  Effect.gen(function*() {
    const states: Array<ShardState> = []
    yield* Effect.forkScoped(
      Stream.runForEach(shard.changes, (s) => Effect.sync(() => states.push(s))),
      { startImmediately: true }
    )
    return states
  })

/** Reads a shard's phase. */
export const phaseOf = (shard: Shard.Shard): Effect.Effect<ShardPhase> => Effect.map(shard.state, (s) => s.phase)

/**
 * Lets every runnable fiber run until it suspends, without moving time. `TestClock.adjust` only waits
 * for fibers woken from a sleep; a shard's start-up chain (connect → Hello → fork → send) runs on plain
 * scheduler hops, so tests settle before and after moving the clock. The scheduler is FIFO, so this
 * is deterministic.
 */
export const settle = Effect.gen(function*() {
  for (let i = 0; i < 64; i++) yield* Effect.yieldNow
})

/** Moves the TestClock by `ms`, letting fibers settle before and after. */
export const advance = (ms: number) =>
  Effect.gen(function*() {
    yield* settle
    yield* TestClock.adjust(ms)
    yield* settle
  })

export interface StepOptions {
  /** The largest step in ms (default 100: well below I and τ, so every fiber reacts at about its due time). */
  readonly step?: number
  /**
   * `false` (default): the last step is shortened so that exactly `ms` pass. `true`: only whole steps, so
   * `ms` is rounded up to the next multiple of `step`.
   */
  readonly wholeSteps?: boolean
}

/** Moves virtual time by `ms` in small steps (each one an `advance`); nothing happens for `ms` ≤ 0. */
export const advanceInSteps = (ms: number, options: StepOptions = {}) =>
  Effect.gen(function*() {
    const step = options.step ?? 100
    for (let elapsed = 0; elapsed < ms; elapsed += step) {
      yield* advance(options.wholeSteps === true ? step : Math.min(step, ms - elapsed))
    }
  })

/**
 * Starts a shard (`startShard` with `overrides`) and lets it run 2 s in small steps, so its first session
 * is READY. Returns the simulator, for the test to drive.
 */
export const simWithReadyShard = (overrides: Partial<Shard.ShardOptions> = {}) =>
  Effect.gen(function*() {
    const sim = yield* GatewaySimulator
    yield* startShard(overrides)
    yield* advanceInSteps(2_000)
    return sim
  })
