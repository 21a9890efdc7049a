/**
 * Shard strategies: which shard ids this process runs, out of how many (PROTOCOL.md §4, §3 "large bots").
 *
 * A strategy is a value with one function, `resolve`, from what the Gateway knows (the recommended count
 * from GET /gateway/bot, and during a reshard the new total) to a `ShardLayout` `{ count, ids }`. Every
 * strategy can reshard (issue 4): given `total`, `recommended` and `fixed(count)` take the new count and
 * `cluster` recomputes this process's contiguous range; only `fixed(count, ids)` (ids chosen by hand)
 * refuses, with an error saying why.
 *
 * Strategies compose: `cluster(1, 2, fixed(64))` is "64 shards, then this cluster's half";
 * `requireMultipleOf(16)(recommended)` checks the large-bot rule. Every built-in strategy returns a layout
 * that passed `validateLayout` (count ≥ 1, ids integers in [0, count), no duplicates, at least one id,
 * ascending), so an impossible layout fails with a clear `ShardLayoutError` before any connection.
 *
 * `fromEnv` reads CLUSTER_ID, CLUSTER_COUNT and TOTAL_SHARDS (the docker-compose, process-per-cluster
 * pattern), and each process takes its own range of the shared count.
 *
 * How several processes agree on a count, today: either every process is configured with the same count
 * (TOTAL_SHARDS / `fixed(n)`) and a reshard passes the same new total to each, or each resolves
 * `recommended` by asking /gateway/bot itself — which can briefly differ between processes while Discord's
 * recommendation changes, so pin the count for deployments that must not overlap. A cross-process
 * coordinator comes with the distributed layers.
 */
import { Config, Effect, Option, Result, Schema, SchemaIssue } from "effect"

/** The shards one process runs: `ids` (ascending, each in [0, count)) out of `count` in total. */
export interface ShardLayout {
  readonly count: number
  readonly ids: ReadonlyArray<number>
}

/**
 * What a strategy resolves against. `E` is how asking for the recommended count can fail (e.g.
 * `GatewayInfoFailure` when it is `GET /gateway/bot`); a strategy passes that failure through unchanged.
 */
export interface StrategyInput<E = never> {
  /** The recommended shard count (`shards` of GET /gateway/bot); only run when a strategy needs it. */
  readonly recommended: Effect.Effect<number, E>
  /** Set during a reshard: the new total shard count. `none` at startup. */
  readonly total: Option.Option<number>
}

/** A shard strategy: a value that computes this process's layout. */
export interface ShardStrategy {
  readonly resolve: <E>(input: StrategyInput<E>) => Effect.Effect<ShardLayout, ShardLayoutError | E>
}

/** Why a layout could not be computed or is not one Discord would accept. */
export const ShardLayoutErrorReason = Schema.Literals([
  "invalid-count",
  "invalid-id",
  "id-out-of-range",
  "duplicate-id",
  "no-ids",
  "not-multiple",
  "invalid-multiple",
  "invalid-cluster",
  "empty-cluster",
  "cannot-reshard",
  "recommended-unavailable",
  "custom-failed"
])
export type ShardLayoutErrorReason = typeof ShardLayoutErrorReason.Type

/** A shard layout that cannot be right, or could not be computed; `message` says what to fix. */
export class ShardLayoutError extends Schema.TaggedError<ShardLayoutError>()("ShardLayoutError", {
  reason: ShardLayoutErrorReason,
  detail: Schema.String,
  /** The underlying failure, for `recommended-unavailable` and `custom-failed`. */
  cause: Schema.optionalKey(Schema.Unknown)
}) {
  override get message() {
    return this.detail
  }
}

const layoutError = (reason: ShardLayoutErrorReason, detail: string) =>
  Effect.fail(new ShardLayoutError({ reason, detail }))

const layoutProblem = (reason: ShardLayoutErrorReason, detail: string) =>
  Result.fail(new ShardLayoutError({ reason, detail }))

/** Ids 0 … count-1. */
const allIds = (count: number): Array<number> => {
  const ids = new Array<number>(count)
  for (let id = 0; id < count; id++) ids[id] = id
  return ids
}

const isPositiveInt = (n: number): boolean => Number.isSafeInteger(n) && n >= 1

const describeIds = (ids: ReadonlyArray<number>): string =>
  ids.length <= 8 ? `[${ids.join(", ")}]` : `[${ids.slice(0, 8).join(", ")}, … ${ids.length} ids]`

/**
 * Checks a layout synchronously; succeeds with it (ids sorted ascending, as a fresh array) or fails with the first
 * problem: count not an integer ≥ 1, an id not an integer or outside [0, count), an id listed twice, no id
 * at all, or (with `multipleOf`) a count Discord would refuse with close 4010.
 */
export const checkLayout = (
  layout: ShardLayout,
  options?: { readonly multipleOf?: number | undefined }
): Result.Result<ShardLayout, ShardLayoutError> => {
  const { count, ids } = layout
  if (!isPositiveInt(count)) {
    return layoutProblem(
      "invalid-count",
      `shard count must be an integer ≥ 1, got ${count}. Use the count GET /gateway/bot recommends (ShardStrategy.recommended) or a positive integer.`
    )
  }
  if (ids.length === 0) {
    return layoutProblem(
      "no-ids",
      `the layout runs no shard (ids is empty, count ${count}): give this process at least one shard id in 0..${count - 1}.`
    )
  }
  const seen = new Set<number>()
  for (const id of ids) {
    if (!Number.isSafeInteger(id)) {
      return layoutProblem("invalid-id", `shard id ${id} is not an integer: shard ids are integers in 0..${count - 1}.`)
    }
    if (id < 0 || id >= count) {
      return layoutProblem(
        "id-out-of-range",
        `shard id ${id} is out of range for ${count} shard(s): ids must be in 0..${count - 1} (Discord requires 0 ≤ shard_id < num_shards).`
      )
    }
    if (seen.has(id)) {
      return layoutProblem(
        "duplicate-id",
        `shard id ${id} is listed twice in ${describeIds(ids)}: each shard runs once per process; remove the duplicate.`
      )
    }
    seen.add(id)
  }
  const multipleOf = options?.multipleOf
  if (multipleOf !== undefined) {
    if (!isPositiveInt(multipleOf)) {
      return layoutProblem("invalid-multiple", `the required shard multiple must be an integer ≥ 1, got ${multipleOf}.`)
    }
    if (count % multipleOf !== 0) {
      const up = Math.ceil(count / multipleOf) * multipleOf
      return layoutProblem(
        "not-multiple",
        `shard count ${count} is not a multiple of ${multipleOf}, which Discord requires of this large bot (else close 4010): use a multiple of ${multipleOf}, e.g. ${up}.`
      )
    }
  }
  const sorted = ids.slice().sort((a, b) => a - b)
  return Result.succeed({ count, ids: sorted })
}

/** `checkLayout` as an Effect. */
export const validateLayout = (
  layout: ShardLayout,
  options?: { readonly multipleOf?: number | undefined }
): Effect.Effect<ShardLayout, ShardLayoutError> => Effect.fromResult(checkLayout(layout, options))

/** Resolves `strategy` and checks the result with `validateLayout` (and the large-bot multiple, if given). */
export const resolveLayout = <E>(
  strategy: ShardStrategy,
  input: StrategyInput<E>,
  options?: { readonly multipleOf?: number | undefined }
): Effect.Effect<ShardLayout, ShardLayoutError | E> =>
  Effect.flatMap(strategy.resolve(input), (layout) => validateLayout(layout, options))

/** A `StrategyInput` for startup (`total` none) or a reshard to `total`, with a known recommended count. */
export const input = (recommended: number, total?: number): StrategyInput<never> => ({
  recommended: Effect.succeed(recommended),
  total: total === undefined ? Option.none() : Option.some(total)
})

const countFor = <E>(input: StrategyInput<E>): Effect.Effect<number, E> =>
  Option.isSome(input.total) ? Effect.succeed(input.total.value) : input.recommended

const whole = (count: number): Effect.Effect<ShardLayout, ShardLayoutError> =>
  validateLayout({ count, ids: allIds(count) })

/**
 * All shards, as many as GET /gateway/bot recommends (item 3); on a reshard, all shards of the new total.
 */
export const recommended: ShardStrategy = {
  resolve: (input) => Effect.flatMap(countFor(input), whole)
}

/**
 * A fixed shard count. Without `ids`, this process runs all of them, and a reshard runs all shards of the
 * new total. With `ids`, exactly those (checked against `count`); such a hand-picked layout cannot be
 * recomputed for another count, so a reshard to a different total fails with `cannot-reshard`.
 */
export const fixed = (count: number, ids?: ReadonlyArray<number>): ShardStrategy => {
  if (ids === undefined) {
    return { resolve: (input) => whole(Option.getOrElse(input.total, () => count)) }
  }
  return {
    resolve: (input) => {
      if (Option.isSome(input.total) && input.total.value !== count) {
        return layoutError(
          "cannot-reshard",
          `fixed(${count}, ${describeIds(ids)}) runs hand-picked shard ids and cannot reshard to ${input.total.value} shards: restart with ids for the new count, or use fixed(count), cluster(…) or recommended, which recompute ids for a new total.`
        )
      }
      return validateLayout({ count, ids })
    }
  }
}

/**
 * Process-per-cluster deployments: the shards of `base` (default `recommended`) are split into `clusters`
 * contiguous ranges as evenly as possible (the first `n % clusters` ranges get one more shard), and this
 * process runs range `index` (0-based). On a reshard `base` resolves for the new total and the range is
 * recomputed: cluster 1 of 2 runs 4–7 of 8 shards, then 8–15 of 16.
 */
export const cluster = (index: number, clusters: number, base: ShardStrategy = recommended): ShardStrategy => ({
  resolve: (input) => {
    if (!isPositiveInt(clusters)) {
      return layoutError("invalid-cluster", `the cluster count must be an integer ≥ 1, got ${clusters}.`)
    }
    if (!Number.isSafeInteger(index) || index < 0 || index >= clusters) {
      return layoutError(
        "invalid-cluster",
        `cluster index ${index} is out of range for ${clusters} cluster(s): indexes are 0-based, 0..${clusters - 1}.`
      )
    }
    return Effect.flatMap(base.resolve(input), (layout) => {
      const n = layout.ids.length
      const size = Math.floor(n / clusters)
      const extra = n % clusters
      const start = index * size + Math.min(index, extra)
      const end = start + size + (index < extra ? 1 : 0)
      if (start === end) {
        return layoutError(
          "empty-cluster",
          `cluster ${index} of ${clusters} gets no shard: the layout has only ${n} shard(s) ${describeIds(layout.ids)}. Run at most ${n} cluster(s), or more shards.`
        )
      }
      return validateLayout({ count: layout.count, ids: layout.ids.slice(start, end) })
    })
  }
})

/**
 * Any Effect that yields `{ count, ids }`, or a function of the `StrategyInput` that does (use it to
 * follow `total` on a reshard). The function sees `recommended` failing with a `ShardLayoutError`
 * (`recommended-unavailable`); if that error escapes, the original failure of `recommended` is what the
 * strategy fails with. Any other failure that is not already a `ShardLayoutError` becomes one
 * (`custom-failed`, the original as `cause`). The result is checked with `validateLayout`.
 */
export const custom = <E2>(
  layout:
    | Effect.Effect<ShardLayout, E2>
    | ((input: StrategyInput<ShardLayoutError>) => Effect.Effect<ShardLayout, E2>)
): ShardStrategy => ({
  resolve: <E>(input: StrategyInput<E>): Effect.Effect<ShardLayout, ShardLayoutError | E> => {
    // failures of `recommended`, by the ShardLayoutError the user code saw, to restore them unchanged
    const originals = new WeakMap<ShardLayoutError, E>()
    const userInput: StrategyInput<ShardLayoutError> = {
      total: input.total,
      recommended: Effect.mapError(input.recommended, (error) => {
        const wrapped = new ShardLayoutError({
          reason: "recommended-unavailable",
          detail: `the recommended shard count is unavailable: ${describeError(error)}`,
          cause: error
        })
        originals.set(wrapped, error)
        return wrapped
      })
    }
    return (Effect.isEffect(layout) ? layout : layout(userInput)).pipe(
      Effect.catch((error): Effect.Effect<never, ShardLayoutError | E> => {
        if (error instanceof ShardLayoutError) {
          return originals.has(error) ? Effect.fail(originals.get(error) as E) : Effect.fail(error)
        }
        return Effect.fail(
          new ShardLayoutError({
            reason: "custom-failed",
            detail: `the custom shard strategy failed: ${describeError(error)}`,
            cause: error
          })
        )
      }),
      Effect.flatMap((result) => validateLayout(result))
    )
  }
})

const describeError = (error: unknown): string => {
  if (error instanceof Error) return error.message
  if (typeof error === "string") return error
  try {
    return JSON.stringify(error) ?? String(error)
  } catch {
    return String(error)
  }
}

/**
 * Large bots: the shard count must be a multiple of the number Discord assigned (historically 16), or
 * IDENTIFY is refused with close 4010. Wraps a strategy so a layout with another count fails up front.
 */
export const requireMultipleOf = (multiple: number) => (strategy: ShardStrategy): ShardStrategy => ({
  resolve: (input) => resolveLayout(strategy, input, { multipleOf: multiple })
})

// ---------------------------------------------------------------------------------------------------------------------
// Environment (docker-compose pattern)
// ---------------------------------------------------------------------------------------------------------------------

/** A ConfigError pointing at `name` whose message says what to fix. */
const invalidVariable = (name: string, message: string): Config.ConfigError =>
  new Config.ConfigError(
    new Schema.SchemaError(new SchemaIssue.Pointer([name], new SchemaIssue.InvalidValue({ message })))
  )

/** An optional integer variable (empty counts as unset), at least `min`. */
const optionalInt = (name: string, min: number, meaning: string): Config.Config<Option.Option<number>> =>
  Config.String(name).pipe(
    Config.option,
    Config.mapEffect((raw) => {
      if (Option.isNone(raw) || raw.value.trim() === "") return Effect.succeed(Option.none<number>())
      const text = raw.value.trim()
      const value = /^\d+$/.test(text) ? Number(text) : Number.NaN
      if (!Number.isSafeInteger(value) || value < min) {
        return Effect.fail(
          invalidVariable(name, `${name} must be an integer ≥ ${min} (${meaning}), got ${JSON.stringify(raw.value)}.`)
        )
      }
      return Effect.succeedSome(value)
    })
  )

/** The three cluster variables, each optional. */
const clusterVariables = Config.all({
  clusterId: optionalInt("CLUSTER_ID", 0, "this process's cluster index, 0-based"),
  clusterCount: optionalInt("CLUSTER_COUNT", 1, "how many cluster processes share the shards"),
  totalShards: optionalInt("TOTAL_SHARDS", 1, "the total shard count all clusters share")
})

/**
 * The strategy CLUSTER_ID, CLUSTER_COUNT and TOTAL_SHARDS describe, or none when none is set:
 * CLUSTER_ID + CLUSTER_COUNT → `cluster(CLUSTER_ID, CLUSTER_COUNT, TOTAL_SHARDS ? fixed(TOTAL_SHARDS) : recommended)`;
 * TOTAL_SHARDS alone → `fixed(TOTAL_SHARDS)`. Setting only one of CLUSTER_ID / CLUSTER_COUNT, or an id not
 * below the count, fails with a message naming the variable. Empty values count as unset.
 */
export const fromEnvIfSet: Config.Config<Option.Option<ShardStrategy>> = clusterVariables.pipe(
  Config.mapEffect(({ clusterCount, clusterId, totalShards }) => {
    const base = Option.match(totalShards, { onNone: () => recommended, onSome: (total) => fixed(total) })
    if (Option.isSome(clusterId) && Option.isNone(clusterCount)) {
      return Effect.fail(
        invalidVariable(
          "CLUSTER_COUNT",
          "CLUSTER_ID is set but CLUSTER_COUNT is not: set CLUSTER_COUNT to the number of cluster processes (or unset CLUSTER_ID)."
        )
      )
    }
    if (Option.isNone(clusterId) && Option.isSome(clusterCount)) {
      return Effect.fail(
        invalidVariable(
          "CLUSTER_ID",
          "CLUSTER_COUNT is set but CLUSTER_ID is not: set CLUSTER_ID to this process's cluster index (0-based), or unset CLUSTER_COUNT."
        )
      )
    }
    if (Option.isSome(clusterId) && Option.isSome(clusterCount)) {
      if (clusterId.value >= clusterCount.value) {
        return Effect.fail(
          invalidVariable(
            "CLUSTER_ID",
            `CLUSTER_ID must be below CLUSTER_COUNT (indexes are 0-based, 0..${clusterCount.value - 1}), got CLUSTER_ID=${clusterId.value} with CLUSTER_COUNT=${clusterCount.value}.`
          )
        )
      }
      return Effect.succeedSome(cluster(clusterId.value, clusterCount.value, base))
    }
    return Effect.succeed(Option.isSome(totalShards) ? Option.some(base) : Option.none<ShardStrategy>())
  })
)

/** `fromEnvIfSet`, defaulting to `recommended` when no cluster variable is set. */
export const fromEnv: Config.Config<ShardStrategy> = fromEnvIfSet.pipe(
  Config.map(Option.getOrElse(() => recommended))
)

/** The strategies and helpers as one namespace value: `ShardStrategy.cluster(0, 4)`. */
export const ShardStrategy = {
  recommended,
  fixed,
  cluster,
  custom,
  requireMultipleOf,
  fromEnv,
  fromEnvIfSet,
  validateLayout,
  checkLayout,
  resolveLayout,
  input
} as const
