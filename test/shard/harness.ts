/**
 * Test harness for shard tests: a shard wired to the in-process simulator under TestClock.
 * The heartbeat interval is short (I = 1500 ms, PROTOCOL.md's suggestion for tests).
 */
import { Effect, Layer, Redacted, Stream } from "effect"
import { TestClock } from "effect/testing"
import type { Dispatch } from "../../src/Dispatch.ts"
import { DispatchSink } from "../../src/DispatchSink.ts"
import { IdentifyRateLimiter, type SessionStartLimit } from "../../src/IdentifyRateLimiter.ts"
import { Intents } from "../../src/protocol/Intents.ts"
import { SessionStore } from "../../src/SessionStore.ts"
import * as Shard from "../../src/Shard.ts"
import type { ShardPhase } from "../../src/ShardState.ts"
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
