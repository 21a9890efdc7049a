/**
 * Tests of the in-memory IDENTIFY limiter (PROTOCOL.md §3 identify concurrency and daily session starts;
 * checklist items 16–19), all on the TestClock: bucket spacing, bucket-by-bucket startup order, the
 * daily budget, interruption of waiters.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Exit, Fiber, Layer, Schema } from "effect"
import { TestClock } from "effect/testing"
import type { IdentifyRateLimiterOptions } from "../src/IdentifyRateLimiter.ts"
import { GatewayInfo } from "../src/GatewayInfo.ts"
import { IdentifyRateLimiter } from "../src/IdentifyRateLimiter.ts"
import { maxInAnyWindow } from "./support/slidingWindow.ts"

interface Grant {
  readonly shardId: number
  readonly askedAt: number
  readonly grantedAt: number
}

/** A limiter plus a log of every grant. `ask` forks one acquire that records its grant. */
const harness = (options: IdentifyRateLimiterOptions) =>
  Effect.gen(function*() {
    const limiter = yield* IdentifyRateLimiter.make(options)
    const grants: Array<Grant> = []
    const identify = (shardId: number) =>
      Effect.gen(function*() {
        const askedAt = yield* Clock.currentTimeMillis
        yield* limiter.acquire(shardId)
        grants.push({ shardId, askedAt, grantedAt: yield* Clock.currentTimeMillis })
      })
    const ask = (shardId: number, delay = 0) =>
      Effect.forkChild(delay === 0 ? identify(shardId) : Effect.andThen(Effect.sleep(delay), identify(shardId)))
    const grantedSorted = () =>
      [...grants].sort((a, b) => a.grantedAt - b.grantedAt || a.shardId - b.shardId).map((g) => [g.shardId, g.grantedAt])
    return { limiter, grants, ask, grantedSorted }
  })

const range = (n: number) => Array.from({ length: n }, (_, i) => i)

describe("IdentifyRateLimiter", () => {
  it.effect("item 18: 16 shards, max_concurrency 4, asking at once: bucket by bucket every 5 s, ascending ids", () =>
    Effect.gen(function*() {
      const h = yield* harness({ maxConcurrency: 4 })
      for (const shard of range(16)) yield* h.ask(shard)
      yield* TestClock.adjust(0)
      expect(h.grantedSorted()).toEqual([[0, 0], [1, 0], [2, 0], [3, 0]])
      yield* TestClock.adjust(4_999)
      expect(h.grants.length).toBe(4)
      yield* TestClock.adjust(1)
      yield* TestClock.adjust(15_000)
      expect(h.grantedSorted()).toEqual(
        range(16).map((shard) => [shard, Math.floor(shard / 4) * 5_000])
      )
    }))

  it.effect("item 18: the startup order holds whatever order the shards ask in within one instant", () =>
    Effect.gen(function*() {
      const h = yield* harness({ maxConcurrency: 4 })
      const order = [13, 2, 7, 0, 15, 9, 4, 11, 1, 14, 6, 3, 12, 8, 10, 5]
      for (const shard of order) yield* h.ask(shard)
      yield* TestClock.adjust(20_000)
      expect(h.grantedSorted()).toEqual(range(16).map((shard) => [shard, Math.floor(shard / 4) * 5_000]))
    }))

  it.effect("item 16: a bucket grants at most once per window; buckets are independent", () =>
    Effect.gen(function*() {
      const h = yield* harness({ maxConcurrency: 2 })
      yield* h.ask(0)
      yield* h.ask(1)
      yield* h.ask(2, 1_000) // bucket 0, busy until 5000
      yield* h.ask(3, 7_000) // bucket 1, free again since 5000
      yield* h.ask(4, 7_000) // bucket 0, next free at 10000
      yield* TestClock.adjust(20_000)
      expect(h.grantedSorted()).toEqual([[0, 0], [1, 0], [2, 5_000], [3, 7_000], [4, 10_000]])
    }))

  it.effect("the same shard id asking twice (old and new set of a reshard) is served first come, first served", () =>
    Effect.gen(function*() {
      const h = yield* harness({ maxConcurrency: 1 })
      yield* h.ask(3)
      yield* h.ask(3, 1_000) // both wait for the bucket (free at 5000): the earlier asker goes first
      yield* h.ask(3, 2_000)
      yield* TestClock.adjust(20_000)
      expect(h.grants.map((g) => [g.askedAt, g.grantedAt])).toEqual([[0, 0], [1_000, 5_000], [2_000, 10_000]])
    }))

  it.effect("a custom window spaces the grants of a bucket", () =>
    Effect.gen(function*() {
      const h = yield* harness({ maxConcurrency: 1, windowMs: 1_000 })
      for (const shard of range(3)) yield* h.ask(shard)
      yield* TestClock.adjust(5_000)
      expect(h.grantedSorted()).toEqual([[0, 0], [1, 1_000], [2, 2_000]])
    }))

  it.effect.prop(
    "items 16, 17: random shards asking at random times never break the bucket spacing, and nobody waits needlessly",
    {
      maxConcurrency: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 16 })),
      requests: Schema.Array(Schema.Struct({
        shardId: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 63 })),
        at: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 30_000 }))
      })).check(Schema.isMaxLength(40))
    },
    ({ maxConcurrency, requests }) =>
      Effect.gen(function*() {
        const h = yield* harness({ maxConcurrency })
        for (const request of requests) yield* h.ask(request.shardId, request.at)
        yield* TestClock.adjust(40 * 5_000 + 30_000)
        // every request was granted, never before it was made
        expect(h.grants.length).toBe(requests.length)
        for (const grant of h.grants) expect(grant.grantedAt).toBeGreaterThanOrEqual(grant.askedAt)
        // item 17: no 5 s window holds more than max_concurrency grants
        expect(maxInAnyWindow(h.grants.map((g) => g.grantedAt), 5_000)).toBeLessThanOrEqual(maxConcurrency)
        for (const bucket of range(maxConcurrency)) {
          const inBucket = h.grants.filter((g) => g.shardId % maxConcurrency === bucket)
          const byTime = [...inBucket].sort((a, b) => a.grantedAt - b.grantedAt)
          for (let k = 0; k < byTime.length; k++) {
            const grant = byTime[k]!
            const previous = k === 0 ? Number.NEGATIVE_INFINITY : byTime[k - 1]!.grantedAt
            // item 16: grants of one bucket are ≥ 5000 ms apart
            expect(grant.grantedAt - previous).toBeGreaterThanOrEqual(5_000)
            // work-conserving: the grant comes as soon as the bucket is free and someone is waiting
            const pending = byTime.slice(k)
            const earliestAsk = Math.min(...pending.map((g) => g.askedAt))
            expect(grant.grantedAt).toBe(Math.max(previous + 5_000, earliestAsk))
            // ascending ids among the shards that were already waiting
            for (const other of pending) {
              if (other.askedAt < grant.grantedAt) expect(other.shardId).toBeGreaterThanOrEqual(grant.shardId)
            }
          }
        }
      }),
    { arbitrary: { runs: 100 } }
  )

  it.effect("item 19: with remaining 2 and reset after 60 s, the third IDENTIFY waits for the reset", () =>
    Effect.gen(function*() {
      const h = yield* harness({ maxConcurrency: 16, sessionStartLimit: { total: 1_000, remaining: 2, resetAfterMs: 60_000 } })
      for (const shard of range(3)) yield* h.ask(shard)
      yield* TestClock.adjust(59_999)
      expect(h.grantedSorted()).toEqual([[0, 0], [1, 0]])
      expect(yield* h.limiter.status).toEqual({ maxConcurrency: 16, remaining: 0, total: 1_000, resetAt: 60_000 })
      yield* TestClock.adjust(1)
      expect(h.grantedSorted()).toEqual([[0, 0], [1, 0], [2, 60_000]])
      expect(yield* h.limiter.status).toEqual({
        maxConcurrency: 16,
        remaining: 999,
        total: 1_000,
        resetAt: 60_000 + 86_400_000
      })
    }))

  it.effect("item 19: with remaining 0 nothing is granted before the reset", () =>
    Effect.gen(function*() {
      const h = yield* harness({ maxConcurrency: 1 })
      yield* TestClock.adjust(10_000)
      yield* h.limiter.setSessionStartLimit({ total: 5, remaining: 0, resetAfterMs: 30_000 }) // t₀ = 10 s
      for (const shard of range(3)) yield* h.ask(shard)
      yield* TestClock.adjust(29_999)
      expect(h.grants).toEqual([])
      yield* TestClock.adjust(1)
      expect(h.grantedSorted()).toEqual([[0, 40_000]])
      yield* TestClock.adjust(10_000)
      expect(h.grantedSorted()).toEqual([[0, 40_000], [1, 45_000], [2, 50_000]])
      expect((yield* h.limiter.status).remaining).toBe(2)
    }))

  it.effect("when the budget is short, the lowest waiting shard id goes first across buckets", () =>
    Effect.gen(function*() {
      const h = yield* harness({ maxConcurrency: 4, sessionStartLimit: { total: 10, remaining: 1, resetAfterMs: 60_000 } })
      yield* h.ask(4) // bucket 0
      yield* h.ask(1) // bucket 1
      yield* TestClock.adjust(60_000)
      expect(h.grantedSorted()).toEqual([[1, 0], [4, 60_000]])
    }))

  it.effect.prop(
    "item 19: never more than `remaining` grants before the reset, and every request is served after it",
    {
      remaining: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 8 })),
      resetAfterMs: Schema.Int.check(Schema.isBetween({ minimum: 1_000, maximum: 120_000 })),
      maxConcurrency: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 4 })),
      requests: Schema.Array(Schema.Struct({
        shardId: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 15 })),
        at: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 150_000 }))
      })).check(Schema.isMaxLength(20))
    },
    ({ maxConcurrency, remaining, requests, resetAfterMs }) =>
      Effect.gen(function*() {
        const h = yield* harness({ maxConcurrency, sessionStartLimit: { total: 100, remaining, resetAfterMs } })
        for (const request of requests) yield* h.ask(request.shardId, request.at)
        yield* TestClock.adjust(150_000 + 20 * 5_000)
        expect(h.grants.filter((g) => g.grantedAt < resetAfterMs).length).toBeLessThanOrEqual(remaining)
        expect(h.grants.length).toBe(requests.length)
        expect(maxInAnyWindow(h.grants.map((g) => g.grantedAt), 5_000)).toBeLessThanOrEqual(maxConcurrency)
        expect((yield* h.limiter.status).remaining).toBe(
          100 - h.grants.filter((g) => g.grantedAt >= resetAfterMs).length
        )
      }),
    { arbitrary: { runs: 100 } }
  )

  it.effect("a fresh session start limit wakes the shards waiting for the old reset", () =>
    Effect.gen(function*() {
      const h = yield* harness({ maxConcurrency: 2, sessionStartLimit: { total: 10, remaining: 0, resetAfterMs: 3_600_000 } })
      for (const shard of range(3)) yield* h.ask(shard)
      yield* TestClock.adjust(5_000)
      expect(h.grants).toEqual([])
      yield* h.limiter.setSessionStartLimit({ total: 10, remaining: 10, resetAfterMs: 60_000 })
      yield* TestClock.adjust(0)
      expect(h.grantedSorted()).toEqual([[0, 5_000], [1, 5_000]])
      yield* TestClock.adjust(5_000)
      expect(h.grantedSorted()).toEqual([[0, 5_000], [1, 5_000], [2, 10_000]])
      expect(yield* h.limiter.status).toEqual({ maxConcurrency: 2, remaining: 7, total: 10, resetAt: 65_000 })
    }))

  it.effect("without a session start limit the budget is unlimited", () =>
    Effect.gen(function*() {
      const h = yield* harness({ maxConcurrency: 64 })
      for (const shard of range(64)) yield* h.ask(shard)
      yield* TestClock.adjust(0)
      expect(h.grants.length).toBe(64)
      expect(yield* h.limiter.status).toEqual({
        maxConcurrency: 64,
        remaining: Number.POSITIVE_INFINITY,
        total: Number.POSITIVE_INFINITY,
        resetAt: Number.POSITIVE_INFINITY
      })
    }))

  it.effect("an interrupted waiter gives up its place without blocking others or using the budget", () =>
    Effect.gen(function*() {
      const h = yield* harness({ maxConcurrency: 1, sessionStartLimit: { total: 2, remaining: 2, resetAfterMs: 600_000 } })
      yield* h.ask(0)
      const one = yield* h.ask(1)
      yield* h.ask(2)
      yield* TestClock.adjust(1_000)
      yield* Fiber.interrupt(one) // was next in line (lowest waiting id)
      yield* TestClock.adjust(4_000)
      expect(h.grantedSorted()).toEqual([[0, 0], [2, 5_000]])
      expect((yield* h.limiter.status).remaining).toBe(0)
      // a waiter interrupted while the budget is out does not leak either
      const three = yield* h.ask(3)
      yield* TestClock.adjust(10_000)
      yield* Fiber.interrupt(three)
      yield* h.ask(4)
      yield* TestClock.adjust(600_000)
      expect(h.grantedSorted()).toEqual([[0, 0], [2, 5_000], [4, 600_000]])
      expect((yield* h.limiter.status).remaining).toBe(1)
    }))

  it.effect("layerMemory provides the service", () =>
    Effect.gen(function*() {
      const limiter = yield* IdentifyRateLimiter
      yield* limiter.acquire(5)
      expect((yield* limiter.status).maxConcurrency).toBe(4)
    }).pipe(Effect.provide(IdentifyRateLimiter.layerMemory({ maxConcurrency: 4 }))))

  it.effect("item 19: layerFromGatewayInfo takes the daily budget from GET /gateway/bot", () =>
    Effect.gen(function*() {
      const limiter = yield* IdentifyRateLimiter
      expect(yield* limiter.status).toEqual({ maxConcurrency: 2, remaining: 1, total: 1_000, resetAt: 60_000 })
      const granted: Array<number> = []
      yield* Effect.forkChild(Effect.forEach(range(2), (shard) =>
        Effect.andThen(limiter.acquire(shard), Clock.currentTimeMillis).pipe(Effect.map((t) => granted.push(t))), {
        concurrency: "unbounded"
      }))
      yield* TestClock.adjust(59_999)
      expect(granted).toEqual([0]) // remaining 1: the second IDENTIFY waits for the reset
      yield* TestClock.adjust(1)
      expect(granted).toEqual([0, 60_000])
    }).pipe(Effect.provide(IdentifyRateLimiter.layerFromGatewayInfo.pipe(Layer.provide(GatewayInfo.layerStatic({
      url: "wss://gateway.discord.gg",
      shards: 2,
      sessionStartLimit: { total: 1_000, remaining: 1, resetAfterMs: 60_000, maxConcurrency: 2 }
    }))))))

  it.effect("invalid options and session start limits are a defect", () =>
    Effect.gen(function*() {
      const dies = <A, E>(effect: Effect.Effect<A, E>) => Effect.map(Effect.exit(effect), Exit.hasDies)
      expect(yield* dies(IdentifyRateLimiter.make({ maxConcurrency: 0 }))).toBe(true)
      expect(yield* dies(IdentifyRateLimiter.make({ maxConcurrency: 1.5 }))).toBe(true)
      for (const windowMs of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
        expect(yield* dies(IdentifyRateLimiter.make({ maxConcurrency: 1, windowMs })), `windowMs ${windowMs}`).toBe(true)
      }
      const valid = { total: 1_000, remaining: 10, resetAfterMs: 60_000 }
      const invalid = [{ ...valid, total: -1 }, { ...valid, remaining: -1 }, { ...valid, resetAfterMs: Number.NaN }]
      for (const sessionStartLimit of invalid) {
        expect(yield* dies(IdentifyRateLimiter.make({ maxConcurrency: 1, sessionStartLimit })), JSON.stringify(sessionStartLimit))
          .toBe(true)
      }
      const limiter = yield* IdentifyRateLimiter.make({ maxConcurrency: 1, sessionStartLimit: valid })
      for (const limit of invalid) expect(yield* dies(limiter.setSessionStartLimit(limit))).toBe(true)
      expect((yield* limiter.status).remaining).toBe(10) // an invalid limit changes nothing
      expect(yield* dies(limiter.acquire(-1))).toBe(true)
    }))
})
