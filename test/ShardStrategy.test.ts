/**
 * Shard strategies (PROTOCOL.md §4, §3 large bots; issue 3 "Shard strategies", issue 4 "every strategy
 * reshards"): each built-in strategy, composition, reshard recomputation, every layout validation error,
 * and reading the cluster variables from the environment.
 */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Option, Schema } from "effect"
import {
  checkLayout,
  cluster,
  custom,
  fixed,
  fromEnv,
  fromEnvIfSet,
  input,
  recommended,
  requireMultipleOf,
  resolveLayout,
  type ShardLayout,
  ShardLayoutError,
  ShardStrategy,
  type StrategyInput,
  validateLayout
} from "../src/ShardStrategy.ts"

const range = (from: number, to: number): Array<number> => Array.from({ length: to - from + 1 }, (_, i) => from + i)

/** An input whose `recommended` must not be asked for. */
const noRecommended = (total?: number): StrategyInput<never> => ({
  recommended: Effect.die("recommended was asked for"),
  total: total === undefined ? Option.none() : Option.some(total)
})

/** Fails with the error the strategy resolved to. */
const failure = <E>(effect: Effect.Effect<ShardLayout, E>) => Effect.flip(effect)

class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", {}) {}

describe("recommended", () => {
  it.effect("item 3: runs all ids 0..shards-1 of the recommended count", () =>
    Effect.gen(function*() {
      expect(yield* recommended.resolve(input(4))).toEqual({ count: 4, ids: [0, 1, 2, 3] })
      expect(yield* recommended.resolve(input(1))).toEqual({ count: 1, ids: [0] })
    }))

  it.effect("reshard: takes the new total (4 → 8) without asking for the recommendation", () =>
    Effect.gen(function*() {
      expect(yield* recommended.resolve(noRecommended(8))).toEqual({ count: 8, ids: range(0, 7) })
    }))

  it.effect("a failing recommendation passes through unchanged, typed", () =>
    Effect.gen(function*() {
      const error = yield* failure(recommended.resolve({ recommended: Effect.fail(new Unauthorized()), total: Option.none() }))
      expect(error).toBeInstanceOf(Unauthorized)
    }))

  it.effect("a recommendation of 0 is refused (invalid-count)", () =>
    Effect.gen(function*() {
      const error = yield* failure(recommended.resolve(input(0)))
      expect(error).toMatchObject({ _tag: "ShardLayoutError", reason: "invalid-count" })
    }))
})

describe("fixed", () => {
  it.effect("fixed(count): all ids of count; the recommendation is never asked for", () =>
    Effect.gen(function*() {
      expect(yield* fixed(6).resolve(noRecommended())).toEqual({ count: 6, ids: range(0, 5) })
    }))

  it.effect("fixed(count) reshards to all ids of the new total", () =>
    Effect.gen(function*() {
      expect(yield* fixed(6).resolve(noRecommended(16))).toEqual({ count: 16, ids: range(0, 15) })
    }))

  it.effect("fixed(count, ids): exactly those ids, ascending", () =>
    Effect.gen(function*() {
      expect(yield* fixed(8, [6, 2, 4]).resolve(noRecommended())).toEqual({ count: 8, ids: [2, 4, 6] })
      // the same total is not a reshard
      expect(yield* fixed(8, [6, 2, 4]).resolve(noRecommended(8))).toEqual({ count: 8, ids: [2, 4, 6] })
    }))

  it.effect("fixed(count, ids) refuses to reshard to another total, saying why", () =>
    Effect.gen(function*() {
      const error = yield* failure(fixed(8, [0, 1]).resolve(noRecommended(16)))
      expect(error).toBeInstanceOf(ShardLayoutError)
      expect(error).toMatchObject({ reason: "cannot-reshard" })
      expect(error.message).toContain("cannot reshard to 16")
      expect(error.message).toContain("fixed(count)")
    }))

  it.effect("fixed with impossible ids fails (id ≥ count, duplicates, none, count < 1)", () =>
    Effect.gen(function*() {
      expect(yield* failure(fixed(4, [4]).resolve(input(1)))).toMatchObject({ reason: "id-out-of-range" })
      expect(yield* failure(fixed(4, [1, 1]).resolve(input(1)))).toMatchObject({ reason: "duplicate-id" })
      expect(yield* failure(fixed(4, []).resolve(input(1)))).toMatchObject({ reason: "no-ids" })
      expect(yield* failure(fixed(0).resolve(input(1)))).toMatchObject({ reason: "invalid-count" })
    }))
})

describe("cluster", () => {
  it.effect("contiguous ranges: cluster 0 and 1 of 2 over recommended 8 → [0..3] and [4..7]", () =>
    Effect.gen(function*() {
      expect(yield* cluster(0, 2).resolve(input(8))).toEqual({ count: 8, ids: range(0, 3) })
      expect(yield* cluster(1, 2).resolve(input(8))).toEqual({ count: 8, ids: range(4, 7) })
    }))

  it.effect("reshard: cluster 1 of 2 over 8 → [4..7], over 16 → [8..15]", () =>
    Effect.gen(function*() {
      const strategy = cluster(1, 2)
      expect(yield* strategy.resolve(input(8))).toEqual({ count: 8, ids: range(4, 7) })
      expect(yield* strategy.resolve(noRecommended(16))).toEqual({ count: 16, ids: range(8, 15) })
    }))

  it.effect("uneven split: 10 shards over 3 clusters → 4, 3, 3 (the first ranges get the extra)", () =>
    Effect.gen(function*() {
      const ids = yield* Effect.forEach([0, 1, 2], (i) => Effect.map(cluster(i, 3).resolve(input(10)), (l) => l.ids))
      expect(ids).toEqual([[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]])
    }))

  it.effect.prop(
    "the clusters cover every shard exactly once, each a contiguous range, sizes differing by at most 1",
    {
      count: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 300 })),
      clusters: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 40 }))
    },
    ({ clusters, count }) =>
      Effect.gen(function*() {
        const layouts = yield* Effect.forEach(range(0, clusters - 1), (i) => Effect.result(cluster(i, clusters).resolve(input(count))))
        if (clusters > count) {
          // more clusters than shards: the extra clusters get none and say so
          const empty = layouts.filter((r) => r._tag === "Failure")
          expect(empty.length).toBe(clusters - count)
          for (const r of empty) if (r._tag === "Failure") expect(r.failure).toMatchObject({ reason: "empty-cluster" })
          return
        }
        const ids = layouts.map((r) => (r._tag === "Success" ? r.success.ids : []))
        expect(ids.flat()).toEqual(range(0, count - 1))
        for (const part of ids) expect(part).toEqual(range(part[0]!, part[part.length - 1]!))
        const sizes = ids.map((part) => part.length)
        expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1)
      }),
    { arbitrary: { runs: 200, seed: 20 } }
  )

  it.effect("an invalid index or cluster count fails with invalid-cluster", () =>
    Effect.gen(function*() {
      const outOfRange = yield* failure(cluster(2, 2).resolve(input(8)))
      expect(outOfRange).toMatchObject({ reason: "invalid-cluster" })
      expect(outOfRange.message).toContain("0-based, 0..1")
      expect(yield* failure(cluster(-1, 2).resolve(input(8)))).toMatchObject({ reason: "invalid-cluster" })
      expect(yield* failure(cluster(0, 0).resolve(input(8)))).toMatchObject({ reason: "invalid-cluster" })
      expect(yield* failure(cluster(0.5, 2).resolve(input(8)))).toMatchObject({ reason: "invalid-cluster" })
    }))

  it.effect("a cluster with no shard fails with empty-cluster, saying how many clusters can run", () =>
    Effect.gen(function*() {
      const error = yield* failure(cluster(3, 4).resolve(input(3)))
      expect(error).toMatchObject({ reason: "empty-cluster" })
      expect(error.message).toContain("at most 3 cluster(s)")
    }))
})

describe("composition", () => {
  it.effect("cluster(1, 2, fixed(64)): a fixed count, then this cluster's range", () =>
    Effect.gen(function*() {
      expect(yield* cluster(1, 2, fixed(64)).resolve(noRecommended())).toEqual({ count: 64, ids: range(32, 63) })
    }))

  it.effect("cluster over hand-picked ids splits those ids", () =>
    Effect.gen(function*() {
      expect(yield* cluster(1, 2, fixed(16, [0, 2, 4, 6, 8, 10])).resolve(noRecommended())).toEqual({ count: 16, ids: [6, 8, 10] })
    }))

  it.effect("cluster of cluster: nested ranges", () =>
    Effect.gen(function*() {
      expect(yield* cluster(1, 2, cluster(1, 2, fixed(16))).resolve(noRecommended())).toEqual({ count: 16, ids: range(12, 15) })
    }))

  it.effect("requireMultipleOf(16): a recommended 24 is refused with a clear fix; 32 passes", () =>
    Effect.gen(function*() {
      const strategy = requireMultipleOf(16)(recommended)
      const error = yield* failure(strategy.resolve(input(24)))
      expect(error).toMatchObject({ reason: "not-multiple" })
      expect(error.message).toContain("not a multiple of 16")
      expect(error.message).toContain("e.g. 32")
      expect((yield* strategy.resolve(input(32))).count).toBe(32)
    }))

  it.effect("requireMultipleOf composes under cluster and applies to reshard totals", () =>
    Effect.gen(function*() {
      const strategy = cluster(0, 2, requireMultipleOf(16)(recommended))
      expect(yield* strategy.resolve(input(32))).toEqual({ count: 32, ids: range(0, 15) })
      expect(yield* strategy.resolve(noRecommended(48))).toEqual({ count: 48, ids: range(0, 23) })
      expect(yield* failure(strategy.resolve(noRecommended(40)))).toMatchObject({ reason: "not-multiple" })
    }))

  it.effect("requireMultipleOf with a bad multiple fails with invalid-multiple", () =>
    Effect.gen(function*() {
      expect(yield* failure(requireMultipleOf(0)(recommended).resolve(input(8)))).toMatchObject({ reason: "invalid-multiple" })
    }))

  it("the namespace value exposes every strategy", () => {
    expect(ShardStrategy.recommended).toBe(recommended)
    expect(ShardStrategy.cluster).toBe(cluster)
    expect(ShardStrategy.fixed).toBe(fixed)
    expect(ShardStrategy.custom).toBe(custom)
    expect(ShardStrategy.requireMultipleOf).toBe(requireMultipleOf)
    expect(ShardStrategy.fromEnv).toBe(fromEnv)
  })
})

describe("custom", () => {
  it.effect("any Effect yielding { count, ids }; ids come back ascending", () =>
    Effect.gen(function*() {
      const strategy = custom(Effect.succeed({ count: 12, ids: [11, 3, 7] }))
      expect(yield* strategy.resolve(noRecommended())).toEqual({ count: 12, ids: [3, 7, 11] })
    }))

  it.effect("a function of the input follows the reshard total", () =>
    Effect.gen(function*() {
      const evens = custom((input) =>
        Effect.map(
          Option.isSome(input.total) ? Effect.succeed(input.total.value) : input.recommended,
          (count) => ({ count, ids: range(0, count - 1).filter((id) => id % 2 === 0) })
        )
      )
      expect(yield* evens.resolve(input(4))).toEqual({ count: 4, ids: [0, 2] })
      expect(yield* evens.resolve(noRecommended(8))).toEqual({ count: 8, ids: [0, 2, 4, 6] })
    }))

  it.effect("the recommendation's own failure escapes unchanged", () =>
    Effect.gen(function*() {
      const strategy = custom((input) => Effect.map(input.recommended, (count) => ({ count, ids: [0] })))
      const error = yield* failure(strategy.resolve({ recommended: Effect.fail(new Unauthorized()), total: Option.none() }))
      expect(error).toBeInstanceOf(Unauthorized)
    }))

  it.effect("another failure becomes ShardLayoutError custom-failed, keeping the cause; a ShardLayoutError passes through", () =>
    Effect.gen(function*() {
      const boom = new Error("redis is down")
      const error = yield* failure(custom(Effect.fail(boom)).resolve(noRecommended()))
      expect(error).toMatchObject({ _tag: "ShardLayoutError", reason: "custom-failed", cause: boom })
      expect(error.message).toContain("redis is down")
      const own = new ShardLayoutError({ reason: "no-ids", detail: "mine" })
      expect(yield* failure(custom(Effect.fail(own)).resolve(noRecommended()))).toBe(own)
    }))

  it.effect("an impossible custom layout is refused by validation", () =>
    Effect.gen(function*() {
      expect(yield* failure(custom(Effect.succeed({ count: 4, ids: [1, 9] })).resolve(noRecommended())))
        .toMatchObject({ reason: "id-out-of-range" })
    }))
})

describe("validateLayout", () => {
  const reasonOf = (layout: ShardLayout, multipleOf?: number) =>
    Effect.map(Effect.flip(validateLayout(layout, { multipleOf })), (e) => [e.reason, e.message] as const)

  it.effect("count must be an integer ≥ 1", () =>
    Effect.gen(function*() {
      for (const count of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
        const [reason, message] = yield* reasonOf({ count, ids: [0] })
        expect(reason).toBe("invalid-count")
        expect(message).toContain("integer ≥ 1")
      }
    }))

  it.effect("ids must be integers in [0, count)", () =>
    Effect.gen(function*() {
      expect(yield* reasonOf({ count: 4, ids: [0.5] })).toEqual(["invalid-id", expect.stringContaining("not an integer")])
      expect(yield* reasonOf({ count: 4, ids: [4] })).toEqual(["id-out-of-range", expect.stringContaining("0..3")])
      expect((yield* reasonOf({ count: 4, ids: [-1] }))[0]).toBe("id-out-of-range")
    }))

  it.effect("no duplicates, at least one id", () =>
    Effect.gen(function*() {
      expect(yield* reasonOf({ count: 4, ids: [2, 1, 2] })).toEqual(["duplicate-id", expect.stringContaining("listed twice")])
      expect(yield* reasonOf({ count: 4, ids: [] })).toEqual(["no-ids", expect.stringContaining("at least one")])
    }))

  it.effect("large bots: the count must be a multiple of the required number (else 4010)", () =>
    Effect.gen(function*() {
      expect(yield* reasonOf({ count: 20, ids: [0] }, 16)).toEqual(["not-multiple", expect.stringContaining("4010")])
      expect((yield* reasonOf({ count: 20, ids: [0] }, 0))[0]).toBe("invalid-multiple")
      expect(yield* validateLayout({ count: 32, ids: [0] }, { multipleOf: 16 })).toEqual({ count: 32, ids: [0] })
    }))

  it.effect("a valid layout comes back sorted, as a copy", () =>
    Effect.gen(function*() {
      const ids = [3, 1, 2]
      const layout = yield* validateLayout({ count: 4, ids })
      expect(layout.ids).toEqual([1, 2, 3])
      expect(ids).toEqual([3, 1, 2])
      expect(checkLayout({ count: 4, ids })._tag).toBe("Success")
    }))

  it.effect("resolveLayout resolves and checks the large-bot multiple", () =>
    Effect.gen(function*() {
      expect(yield* Effect.flip(resolveLayout(recommended, input(24), { multipleOf: 16 }))).toMatchObject({ reason: "not-multiple" })
      expect((yield* resolveLayout(recommended, input(32), { multipleOf: 16 })).ids.length).toBe(32)
    }))
})

describe("fromEnv (CLUSTER_ID, CLUSTER_COUNT, TOTAL_SHARDS)", () => {
  const read = (env: Record<string, string>) => fromEnv.parse(ConfigProvider.fromEnv({ env }))
  const layoutFrom = (env: Record<string, string>, recommendedCount = 8) =>
    Effect.flatMap(read(env), (strategy) => strategy.resolve(input(recommendedCount)))
  const errorFrom = (env: Record<string, string>) => Effect.map(Effect.flip(read(env)), (e) => e.message)

  it.effect("nothing set → recommended; TOTAL_SHARDS alone → fixed(TOTAL_SHARDS)", () =>
    Effect.gen(function*() {
      expect(yield* read({})).toBe(recommended)
      expect(yield* layoutFrom({ TOTAL_SHARDS: "16" })).toEqual({ count: 16, ids: range(0, 15) })
      expect(yield* fromEnvIfSet.parse(ConfigProvider.fromEnv({ env: {} }))).toEqual(Option.none())
    }))

  it.effect("CLUSTER_ID + CLUSTER_COUNT over TOTAL_SHARDS, or over the recommended count", () =>
    Effect.gen(function*() {
      expect(yield* layoutFrom({ CLUSTER_ID: "1", CLUSTER_COUNT: "2", TOTAL_SHARDS: "16" })).toEqual({ count: 16, ids: range(8, 15) })
      expect(yield* layoutFrom({ CLUSTER_ID: "1", CLUSTER_COUNT: "2" }, 8)).toEqual({ count: 8, ids: range(4, 7) })
      // and the env-built strategy reshards like any cluster strategy
      const strategy = yield* read({ CLUSTER_ID: "1", CLUSTER_COUNT: "2" })
      expect(yield* strategy.resolve(noRecommended(16))).toEqual({ count: 16, ids: range(8, 15) })
    }))

  it.effect("empty values count as unset (docker-compose ${VAR} with VAR undefined)", () =>
    Effect.gen(function*() {
      expect(yield* read({ CLUSTER_ID: "", CLUSTER_COUNT: " ", TOTAL_SHARDS: "" })).toBe(recommended)
    }))

  it.effect("bad values fail naming the variable and the fix", () =>
    Effect.gen(function*() {
      expect(yield* errorFrom({ CLUSTER_ID: "1" })).toContain("CLUSTER_ID is set but CLUSTER_COUNT is not")
      expect(yield* errorFrom({ CLUSTER_COUNT: "2" })).toContain("CLUSTER_COUNT is set but CLUSTER_ID is not")
      expect(yield* errorFrom({ CLUSTER_ID: "2", CLUSTER_COUNT: "2" })).toContain("CLUSTER_ID must be below CLUSTER_COUNT")
      expect(yield* errorFrom({ CLUSTER_ID: "one", CLUSTER_COUNT: "2" })).toContain("CLUSTER_ID must be an integer ≥ 0")
      expect(yield* errorFrom({ CLUSTER_ID: "0", CLUSTER_COUNT: "0" })).toContain("CLUSTER_COUNT must be an integer ≥ 1")
      expect(yield* errorFrom({ TOTAL_SHARDS: "0" })).toContain("TOTAL_SHARDS must be an integer ≥ 1")
      expect(yield* errorFrom({ TOTAL_SHARDS: "-4" })).toContain("TOTAL_SHARDS must be an integer ≥ 1")
    }))
})
