/**
 * IdentifyRateLimiter: the service every shard asks before it sends IDENTIFY (PROTOCOL.md §3 "Identify
 * concurrency" and "Daily session starts"; checklist items 16–19).
 *
 * - Concurrency: IDENTIFYs share a rate-limit key `shardId % maxConcurrency`; each key allows one
 *   IDENTIFY per `windowMs` (5 s). Two grants of one key are always at least `windowMs` apart; keys
 *   are independent, so at most `maxConcurrency` grants fall in any window.
 * - Order: the shards waiting on one key are granted in ascending shard id (ties: first come first
 *   served), so a startup goes bucket by bucket (0…mc−1, then mc…2mc−1, …). Shards that ask in the
 *   same instant count as waiting together, whatever order their fibers run in. When the budget is
 *   short, the lowest waiting shard id goes first across buckets.
 * - Daily budget: with `remaining = R` and `resetAfterMs = T` given at t₀, at most R grants happen in
 *   [t₀, t₀+T). At 0 a caller waits for the reset; it is never refused and the budget is never
 *   exceeded (going over makes Discord reset the bot token). After a reset `remaining = total` and the
 *   next reset is assumed 24 h later, until `setSessionStartLimit` brings Discord's own numbers.
 *   Without a session start limit the budget is unlimited (tests, simulator-injected configs).
 *
 * RESUME never goes through this service: it is neither bucketed nor counted (§1.7).
 *
 * The interface is backend-neutral: this module holds the in-memory implementation for one process;
 * a shared (e.g. Redis) layer can implement the same three operations for several processes.
 *
 * In memory, all bookkeeping happens in synchronous steps (atomic on the JS thread). A waiter sleeps on
 * the Clock until its bucket frees up (or the budget resets), or until another caller grants it or
 * changes the limit; there is no polling. An interrupted waiter leaves its queue and blocks nobody. A
 * grant is final: if the caller is interrupted after it was granted, the slot counts as used (the
 * safe side of Discord's limits).
 */
import type { Clock } from "effect"
import { Context, Deferred, Duration, Effect, Layer } from "effect"
import { GatewayInfo, type GatewayInfoFailure } from "./GatewayInfo.ts"

/** The `session_start_limit` object of GET /gateway/bot, with `reset_after` in milliseconds. */
export interface SessionStartLimit {
  readonly total: number
  readonly remaining: number
  readonly resetAfterMs: number
}

/** What the limiter currently allows. Budget fields are `Infinity` when no session start limit is set. */
export interface IdentifyLimiterStatus {
  readonly maxConcurrency: number
  /** IDENTIFYs left before the next reset. */
  readonly remaining: number
  /** IDENTIFYs per day. */
  readonly total: number
  /** Clock time (ms) of the next budget reset. */
  readonly resetAt: number
}

/** The operations of the limiter, whatever stores its state. */
export interface IdentifyRateLimiterService {
  /**
   * Waits until `shardId` may IDENTIFY (its bucket `shardId % maxConcurrency` has been free for
   * `windowMs`, and the daily budget has a start left); then takes the slot. Never fails; at
   * remaining 0 it waits for the reset, never exceeds the budget.
   */
  readonly acquire: (shardId: number) => Effect.Effect<void>
  /** Current view: maxConcurrency, remaining, total, time of the next budget reset (ms, Clock time). */
  readonly status: Effect.Effect<IdentifyLimiterStatus>
  /** Replace the session start limit with a fresh value from GET /gateway/bot. */
  readonly setSessionStartLimit: (limit: SessionStartLimit) => Effect.Effect<void>
}

/** Options of the in-memory limiter. */
export interface IdentifyRateLimiterOptions {
  /** `session_start_limit.max_concurrency` from GET /gateway/bot (1 for most bots). */
  readonly maxConcurrency: number
  /** The daily budget; without it the budget is unlimited. */
  readonly sessionStartLimit?: SessionStartLimit
  /** One IDENTIFY per bucket per this many ms (Discord: 5000). */
  readonly windowMs?: number
}

/** Discord's identify window: one IDENTIFY per rate-limit key per 5 s. */
export const defaultWindowMs = 5_000

/** Added to the window by `layerFromGatewayInfo`: network jitter between a grant and Discord's receipt. */
export const networkMarginMs = 30
/** The budget window assumed after a reset, until fresh numbers arrive (Discord: 24 h). */
export const budgetWindowMs = 86_400_000

export class IdentifyRateLimiter extends Context.Service<IdentifyRateLimiter, IdentifyRateLimiterService>()(
  "effect-discord-gateway/IdentifyRateLimiter"
) {
  /** Builds the in-memory limiter (one process). Invalid options are a defect. */
  static readonly make = (options: IdentifyRateLimiterOptions): Effect.Effect<IdentifyRateLimiterService> =>
    makeMemory(options)

  /** The in-memory limiter as a layer: enough when every shard runs in this process. */
  static readonly layerMemory = (options: IdentifyRateLimiterOptions): Layer.Layer<IdentifyRateLimiter> =>
    Layer.effect(IdentifyRateLimiter, makeMemory(options))

  /**
   * The in-memory limiter configured from GET /gateway/bot: `max_concurrency` and `session_start_limit`
   * as Discord reports them now, with `networkMarginMs` added to the 5 s window (grants exactly 5 s apart
   * can reach Discord closer than that). For one process: several processes need one limiter they share,
   * which this package does not provide yet (a layer over e.g. Redis implementing this service).
   */
  static readonly layerFromGatewayInfo: Layer.Layer<IdentifyRateLimiter, GatewayInfoFailure, GatewayInfo> = Layer
    .effect(
      IdentifyRateLimiter,
      Effect.gen(function*() {
        const bot = yield* (yield* GatewayInfo).gatewayBot
        const { maxConcurrency, ...sessionStartLimit } = bot.sessionStartLimit
        return yield* makeMemory({ maxConcurrency, sessionStartLimit, windowMs: defaultWindowMs + networkMarginMs })
      })
    )
}

interface Waiter {
  readonly shardId: number
  /** Arrival number: breaks ties between equal shard ids (first come, first served). */
  readonly arrival: number
  granted: boolean
  /** Completed to wake the waiter early: when it is granted or the limit changed. */
  wake: Deferred.Deferred<void> | undefined
}

interface Bucket {
  /** Earliest Clock time of the next grant in this bucket. */
  nextFreeAt: number
  /** Waiting shards, sorted by (shardId, arrival). */
  readonly waiters: Array<Waiter>
}

const makeMemory = (options: IdentifyRateLimiterOptions): Effect.Effect<IdentifyRateLimiterService> =>
  Effect.suspend(() => {
    const maxConcurrency = options.maxConcurrency
    const windowMs = options.windowMs ?? defaultWindowMs
    if (!Number.isInteger(maxConcurrency) || maxConcurrency < 1) {
      return Effect.die(new RangeError(`IdentifyRateLimiter: maxConcurrency must be a positive integer, got ${maxConcurrency}`))
    }
    if (!(windowMs >= 0) || !Number.isFinite(windowMs)) {
      return Effect.die(new RangeError(`IdentifyRateLimiter: windowMs must be a finite number ≥ 0, got ${windowMs}`))
    }
    if (options.sessionStartLimit !== undefined) {
      const problem = checkLimit(options.sessionStartLimit)
      if (problem !== undefined) return Effect.die(new RangeError(`IdentifyRateLimiter: ${problem}`))
    }
    return Effect.clockWith((clock) => Effect.succeed(makeWith(clock, maxConcurrency, windowMs, options.sessionStartLimit)))
  })

const checkLimit = (limit: SessionStartLimit): string | undefined => {
  if (!(limit.total >= 0) || !(limit.remaining >= 0) || !(limit.resetAfterMs >= 0)) {
    return `session start limit needs total, remaining and resetAfterMs ≥ 0, got ${JSON.stringify(limit)}`
  }
  return undefined
}

const makeWith = (
  clock: Clock.Clock,
  maxConcurrency: number,
  windowMs: number,
  initialLimit: SessionStartLimit | undefined
): IdentifyRateLimiterService => {
  const buckets: ReadonlyArray<Bucket> = Array.from({ length: maxConcurrency }, () => ({
    nextFreeAt: Number.NEGATIVE_INFINITY,
    waiters: []
  }))
  let total = Number.POSITIVE_INFINITY
  let remaining = Number.POSITIVE_INFINITY
  let resetAt = Number.POSITIVE_INFINITY
  let arrivals = 0

  const applyLimit = (limit: SessionStartLimit, now: number): void => {
    total = limit.total
    remaining = Math.min(limit.remaining, limit.total)
    resetAt = now + limit.resetAfterMs
  }
  if (initialLimit !== undefined) applyLimit(initialLimit, clock.currentTimeMillisUnsafe())

  const refreshBudget = (now: number): void => {
    if (now >= resetAt) {
      remaining = total
      resetAt = now + budgetWindowMs
    }
  }

  const insert = (bucket: Bucket, waiter: Waiter): void => {
    const list = bucket.waiters
    let low = 0
    let high = list.length
    while (low < high) {
      const mid = (low + high) >>> 1
      const other = list[mid]!
      if (other.shardId < waiter.shardId || (other.shardId === waiter.shardId && other.arrival < waiter.arrival)) {
        low = mid + 1
      } else {
        high = mid
      }
    }
    list.splice(low, 0, waiter)
  }

  /**
   * Grants every waiter that may go now: while the budget lasts, the free bucket whose first waiter
   * has the lowest shard id goes next. State is fully updated before any waiter is woken (waking
   * resumes the waiter inline, and it may call back into the limiter).
   */
  const pump = (now: number): void => {
    refreshBudget(now)
    let granted: Array<Waiter> | undefined
    while (remaining > 0) {
      let best: Bucket | undefined
      for (const bucket of buckets) {
        const head = bucket.waiters[0]
        if (head !== undefined && bucket.nextFreeAt <= now && (best === undefined || head.shardId < best.waiters[0]!.shardId)) {
          best = bucket
        }
      }
      if (best === undefined) break
      const waiter = best.waiters.shift()!
      best.nextFreeAt = now + windowMs
      remaining--
      waiter.granted = true
      ;(granted ??= []).push(waiter)
    }
    if (granted !== undefined) for (const waiter of granted) wake(waiter)
  }

  const wake = (waiter: Waiter): void => {
    const deferred = waiter.wake
    if (deferred !== undefined) {
      waiter.wake = undefined
      Deferred.doneUnsafe(deferred, Effect.void)
    }
  }

  /** When the waiter could next be granted: its bucket is free, and the budget has a start. */
  const nextChance = (bucket: Bucket): number => remaining > 0 ? bucket.nextFreeAt : Math.max(bucket.nextFreeAt, resetAt)

  const waitFor = (waiter: Waiter, bucket: Bucket): Effect.Effect<void> => {
    const loop: Effect.Effect<void> = Effect.suspend(() => {
      if (waiter.granted) return Effect.void
      const now = clock.currentTimeMillisUnsafe()
      pump(now)
      if (waiter.granted) return Effect.void
      const woken = Deferred.makeUnsafe<void>()
      waiter.wake = woken
      // After `pump`, `nextChance` is in the future: the bucket was just used, or the budget is out.
      const sleep = clock.sleep(Duration.millis(Math.max(1, nextChance(bucket) - now)))
      return Effect.andThen(Effect.raceFirst(Deferred.await(woken), sleep), yieldThenLoop)
    })
    // Waking resumes inline in the waking fiber: yield first so wake-ups never nest on the stack.
    const yieldThenLoop = Effect.andThen(Effect.yieldNow, loop)
    return loop
  }

  const acquire = (shardId: number): Effect.Effect<void> =>
    Effect.uninterruptibleMask((restore) => {
      if (!Number.isInteger(shardId) || shardId < 0) {
        return Effect.die(new RangeError(`IdentifyRateLimiter: shard id must be an integer ≥ 0, got ${shardId}`))
      }
      const bucket = buckets[shardId % maxConcurrency]!
      const waiter: Waiter = { shardId, arrival: arrivals++, granted: false, wake: undefined }
      insert(bucket, waiter)
      // Queue first, decide after one yield: shards that ask in the same instant (a startup forking
      // every shard at once, in any order) are all queued before the first grant, so the lowest id of
      // each bucket goes first.
      return Effect.ensuring(
        restore(Effect.andThen(Effect.yieldNow, waitFor(waiter, bucket))),
        Effect.sync(() => {
          waiter.wake = undefined
          if (!waiter.granted) {
            const index = bucket.waiters.indexOf(waiter)
            if (index !== -1) bucket.waiters.splice(index, 1)
          }
        })
      )
    })

  const status = Effect.sync((): IdentifyLimiterStatus => {
    refreshBudget(clock.currentTimeMillisUnsafe())
    return { maxConcurrency, remaining, total, resetAt }
  })

  const setSessionStartLimit = (limit: SessionStartLimit): Effect.Effect<void> =>
    Effect.suspend(() => {
      const problem = checkLimit(limit)
      if (problem !== undefined) return Effect.die(new RangeError(`IdentifyRateLimiter: ${problem}`))
      const now = clock.currentTimeMillisUnsafe()
      applyLimit(limit, now)
      pump(now)
      // Waiters sleeping until the old reset must look again: the new limit may let them go sooner.
      const sleepers: Array<Waiter> = []
      for (const bucket of buckets) for (const waiter of bucket.waiters) sleepers.push(waiter)
      for (const waiter of sleepers) wake(waiter)
      return Effect.void
    })

  return { acquire, status, setSessionStartLimit }
}
