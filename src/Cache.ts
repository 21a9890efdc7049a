/**
 * Cache: which guilds the bot is in, on which shard, and whether each is available — fed with every
 * dispatch by the Gateway, read by status (guild counts per shard) and by users.
 *
 * Rules (PROTOCOL.md §6.1, §10 item 54):
 * - READY: every listed guild is recorded unavailable, on its shard. A READY starts a new session, whose
 *   list is the shard's whole guild set, so cached guilds of that shard it no longer lists (left while
 *   the bot was offline) are removed.
 * - GUILD_CREATE: the guild is available (a join, the lazy fill of a READY guild, or "available again");
 *   the outage form `{ id, unavailable: true }` records it unavailable instead.
 * - GUILD_UPDATE: name (and member count when present) updated; an unknown guild is added, available.
 * - GUILD_DELETE with `unavailable: true`: an outage — kept, marked unavailable. Without it (absent or
 *   anything but `true`): the bot left or was removed — the guild is removed.
 * - Every other event is ignored after one character test on its name.
 * - Data of unexpected shape never throws: a guild without a snowflake id is ignored.
 *
 * Shards. A guild's shard is `(id >> 22) % count` (PROTOCOL.md §4, `Snowflake.shardIdForGuild`, BigInt),
 * computed from the id, not taken from the dispatch. All shard ids in the cache use one count, the
 * *mapping count*: the first `apply` adopts its `shardCount`, and only `reshard` changes it afterwards.
 * During a reshard both shard sets may feed the cache with different counts; their guild events are
 * applied on the current mapping (the guild's state is the same whichever session reports it), and a
 * READY of a session of another count only adds the guilds the cache lacks (that session does not serve
 * the cache's shards yet, so it must not mark them unavailable). `reshard(n)` then moves every guild to
 * its shard of `n` in one pass. Per-shard and unavailable counts are kept incrementally: queries never
 * scan; only `reshard`, and a READY that finds guilds to drop, walk the guilds.
 *
 * Bound (`maxGuilds`, default 1 000 000; about 190 bytes a guild with a short name, so about 190 MB
 * when full, measured on Node 24). When full, a new guild evicts the least-recently-updated one (READY,
 * GUILD_CREATE/UPDATE and an outage GUILD_DELETE each count as an update), and a warning is logged once
 * per cache. Why evict rather than refuse: the guilds Discord reports now (a join, an update) are the
 * ones users look up next. Refusing would leave every guild joined after the cache filled missing for
 * good, whereas an evicted guild is the one quiet the longest, and it returns with its next READY,
 * GUILD_CREATE or GUILD_UPDATE. It costs O(1): a Map keeps insertion order, and an update re-inserts the
 * guild at the back. Either way, once the bound is reached the counts cover cached guilds only, so size
 * the bound above the bot's guild count.
 *
 * Layers: `layerMemory` (this process), `layerNoop` (no cache; every read is empty or 0). A shared backend
 * (e.g. Redis; not provided by this package yet) would implement `CacheService` with the same rules.
 */
import { Cause, Context, Effect, Layer, Option } from "effect"
import type { Dispatch } from "./Dispatch.ts"
import { isSnowflake, shardIdForGuild } from "./protocol/Snowflake.ts"

/** A guild as the cache knows it. */
export interface CachedGuild {
  readonly id: string
  /** Its shard under the cache's mapping count. */
  readonly shardId: number
  /** True during an outage, and from READY until the guild's GUILD_CREATE. */
  readonly unavailable: boolean
  readonly name?: string
  readonly memberCount?: number
}

/** The operations of a guild cache, whatever backs it. */
export interface CacheService {
  /**
   * Feeds one dispatch; the Gateway calls this for every dispatch, with its shard count. Events other
   * than READY and GUILD_CREATE/UPDATE/DELETE cost one character test. See the module doc for the rules.
   */
  readonly apply: (dispatch: Dispatch, shardCount: number) => Effect.Effect<void>
  /** The cached guild of this id, or none. */
  readonly guild: (id: string) => Effect.Effect<Option.Option<CachedGuild>>
  /** How many guilds are cached: all, or one shard's (0 for a shard id outside the mapping). */
  readonly guildCount: (shardId?: number) => Effect.Effect<number>
  /** Guilds per shard id, one entry for every shard of the mapping count (0 included). */
  readonly guildCountsByShard: Effect.Effect<ReadonlyMap<number, number>>
  /** How many cached guilds are unavailable: all, or one shard's. */
  readonly unavailableCount: (shardId?: number) => Effect.Effect<number>
  /**
   * Moves every guild to its shard under `shardCount` (resharding), keeping the guilds and their
   * state, and makes it the mapping count. Dies with an IllegalArgumentError unless `shardCount` is a
   * positive safe integer.
   */
  readonly reshard: (shardCount: number) => Effect.Effect<void>
  /** How many guilds are cached. */
  readonly size: Effect.Effect<number>
}

/** Options of the in-memory cache. */
export interface CacheMemoryOptions {
  /** The most guilds kept (a positive integer); when full, the least-recently-updated is evicted. Default 1 000 000. */
  readonly maxGuilds?: number
}

export class Cache extends Context.Service<Cache, CacheService>()("effect-discord-gateway/Cache") {
  /** Builds an in-memory cache (dies with an IllegalArgumentError on a bad `maxGuilds`). */
  static readonly makeMemory = (options?: CacheMemoryOptions): Effect.Effect<CacheService> =>
    Effect.suspend(() => {
      const maxGuilds = options?.maxGuilds ?? DefaultMaxGuilds
      return isCount(maxGuilds)
        ? Effect.succeed(makeMemoryUnsafe(maxGuilds))
        : Effect.die(new Cause.IllegalArgumentError(`Cache maxGuilds must be a positive integer, got ${maxGuilds}`))
    })

  /** A cache in this process's memory, bounded by `maxGuilds` (default 1 000 000). */
  static readonly layerMemory = (options?: CacheMemoryOptions): Layer.Layer<Cache> =>
    Layer.effect(Cache, Cache.makeMemory(options))

  /** No cache: `apply` does nothing and every read answers empty or 0. */
  static readonly layerNoop: Layer.Layer<Cache> = Layer.succeed(Cache, {
    apply: () => Effect.void,
    guild: () => Effect.succeedNone,
    guildCount: () => Effect.succeed(0),
    guildCountsByShard: Effect.succeed(new Map<number, number>()),
    unavailableCount: () => Effect.succeed(0),
    reshard: () => Effect.void,
    size: Effect.succeed(0)
  })
}

const DefaultMaxGuilds = 1_000_000

const isCount = (n: number): boolean => Number.isSafeInteger(n) && n >= 1

/** `data[key]` when data is an object, else undefined (dispatch data is not trusted to have a shape). */
const field = (data: unknown, key: string): unknown =>
  typeof data === "object" && data !== null ? (data as Record<string, unknown>)[key] : undefined

/** A guild id as a canonical snowflake string (ETF may deliver integers), or undefined. */
const snowflakeOf = (value: unknown): string | undefined => {
  if (typeof value === "string") return isSnowflake(value) ? value : undefined
  if (typeof value === "number") return Number.isSafeInteger(value) && value >= 0 ? String(value) : undefined
  if (typeof value === "bigint") {
    const s = String(value)
    return isSnowflake(s) ? s : undefined
  }
  return undefined
}

const stringOf = (value: unknown): string | undefined => typeof value === "string" ? value : undefined

const countOf = (value: unknown): number | undefined =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 0 ? value : undefined

/** A CachedGuild with absent optional fields left out (exactOptionalPropertyTypes). */
const entry = (
  id: string,
  shardId: number,
  unavailable: boolean,
  name: string | undefined,
  memberCount: number | undefined
): CachedGuild =>
  name === undefined
    ? memberCount === undefined ? { id, shardId, unavailable } : { id, shardId, unavailable, memberCount }
    : memberCount === undefined
    ? { id, shardId, unavailable, name }
    : { id, shardId, unavailable, name, memberCount }

const G = 71 // "G": GUILD_CREATE / GUILD_UPDATE / GUILD_DELETE
const R = 82 // "R": READY

/** The in-memory cache; `maxGuilds` must already be valid. */
const makeMemoryUnsafe = (maxGuilds: number): CacheService => {
  /** In least-recently-updated-first order: an update deletes and re-inserts. */
  const guilds = new Map<string, CachedGuild>()
  /** The shard count the cached shard ids use; 0 until the first `apply` with a valid count. */
  let mappingCount = 0
  let perShard: Array<number> = []
  let unavailablePerShard: Array<number> = []
  let unavailableTotal = 0
  let evicted = false
  let warned = false

  const warnFull = Effect.logWarning(
    "Cache is full: guilds are evicted, least recently updated first; guild counts now cover cached guilds only"
  ).pipe(Effect.annotateLogs({ maxGuilds }))

  const count = (guild: CachedGuild, delta: number): void => {
    perShard[guild.shardId]! += delta
    if (guild.unavailable) {
      unavailablePerShard[guild.shardId]! += delta
      unavailableTotal += delta
    }
  }

  const remove = (id: string, guild: CachedGuild): void => {
    guilds.delete(id)
    count(guild, -1)
  }

  /** Stores `next` for `next.id` (replacing `prev` if given) at the most-recently-updated end. */
  const put = (prev: CachedGuild | undefined, next: CachedGuild): void => {
    if (prev !== undefined) {
      remove(next.id, prev)
    } else if (guilds.size >= maxGuilds) {
      const oldest = guilds.entries().next().value
      if (oldest !== undefined) remove(oldest[0], oldest[1])
      evicted = true
    }
    guilds.set(next.id, next)
    count(next, 1)
  }

  /** Records a guild as unavailable, keeping what is known of it. */
  const markUnavailable = (id: string): void => {
    const prev = guilds.get(id)
    put(prev, entry(id, shardIdForGuild(id, mappingCount), true, prev?.name, prev?.memberCount))
  }

  const onReady = (shard: number, data: unknown, shardCount: number): void => {
    const list = field(data, "guilds")
    if (!Array.isArray(list)) return
    const ids = new Set<string>()
    for (const item of list) {
      const id = snowflakeOf(field(item, "id"))
      if (id !== undefined) ids.add(id)
    }
    if (shardCount !== mappingCount) {
      // A session of another shard count (a reshard in progress): it does not serve our shards yet.
      for (const id of ids) if (!guilds.has(id)) markUnavailable(id)
      return
    }
    if (Number.isSafeInteger(shard) && shard >= 0 && shard < mappingCount) {
      // The new session's list is the shard's whole guild set: drop cached guilds of the shard it lacks.
      // Counting the listed ones already cached avoids the walk when nothing is to be dropped.
      let listedAndCached = 0
      for (const id of ids) if (guilds.get(id)?.shardId === shard) listedAndCached++
      if (listedAndCached < perShard[shard]!) {
        for (const [id, guild] of guilds) if (guild.shardId === shard && !ids.has(id)) remove(id, guild)
      }
    }
    for (const id of ids) markUnavailable(id)
  }

  /** Records a guild from a GUILD_CREATE/UPDATE payload; `unavailable` decides its availability from the previous entry. */
  const upsert = (id: string, data: unknown, unavailable: (prev: CachedGuild | undefined) => boolean): void => {
    const prev = guilds.get(id)
    put(
      prev,
      entry(
        id,
        shardIdForGuild(id, mappingCount),
        unavailable(prev),
        stringOf(field(data, "name")) ?? prev?.name,
        countOf(field(data, "member_count")) ?? prev?.memberCount
      )
    )
  }

  /** A join, or a guild available again (or, in an outage form, unavailable). */
  const onGuildCreate = (data: unknown): void => {
    const id = snowflakeOf(field(data, "id"))
    if (id === undefined) return
    if (field(data, "unavailable") === true) return markUnavailable(id)
    upsert(id, data, () => false)
  }

  /** New details; availability unchanged (an unknown guild is added as available). */
  const onGuildUpdate = (data: unknown): void => {
    const id = snowflakeOf(field(data, "id"))
    if (id === undefined) return
    upsert(id, data, (prev) => prev?.unavailable ?? false)
  }

  const onGuildDelete = (data: unknown): void => {
    const id = snowflakeOf(field(data, "id"))
    if (id === undefined) return
    if (field(data, "unavailable") === true) return markUnavailable(id)
    const prev = guilds.get(id)
    if (prev !== undefined) remove(id, prev)
  }

  const resetCounts = (shardCount: number): void => {
    perShard = new Array<number>(shardCount).fill(0)
    unavailablePerShard = new Array<number>(shardCount).fill(0)
  }

  const step = (dispatch: Dispatch, shardCount: number): void => {
    if (mappingCount === 0) {
      if (!isCount(shardCount)) return
      mappingCount = shardCount
      resetCounts(shardCount)
    }
    switch (dispatch.name) {
      case "READY":
        return onReady(dispatch.shard, dispatch.data, shardCount)
      case "GUILD_CREATE":
        return onGuildCreate(dispatch.data)
      case "GUILD_UPDATE":
        return onGuildUpdate(dispatch.data)
      case "GUILD_DELETE":
        return onGuildDelete(dispatch.data)
    }
  }

  const afterStep = (): Effect.Effect<void> => {
    if (!evicted || warned) return Effect.void
    warned = true
    return warnFull
  }

  const reshard = (shardCount: number): void => {
    if (shardCount === mappingCount) return
    resetCounts(shardCount)
    unavailableTotal = 0
    mappingCount = shardCount
    for (const [id, guild] of guilds) {
      const shardId = shardIdForGuild(id, shardCount)
      // `set` on a present key keeps its place: a reshard is not an update.
      const moved = shardId === guild.shardId ? guild : { ...guild, shardId }
      if (moved !== guild) guilds.set(id, moved)
      count(moved, 1)
    }
  }

  const countIn = (counts: ReadonlyArray<number>, total: number, shardId: number | undefined): number =>
    shardId === undefined ? total : (counts[shardId] ?? 0)

  return {
    apply: (dispatch, shardCount) => {
      const first = dispatch.name.charCodeAt(0)
      if (first !== G && first !== R) return Effect.void
      return Effect.suspend(() => {
        step(dispatch, shardCount)
        return afterStep()
      })
    },
    guild: (id) => Effect.sync(() => Option.fromUndefinedOr(guilds.get(id))),
    guildCount: (shardId) => Effect.sync(() => countIn(perShard, guilds.size, shardId)),
    guildCountsByShard: Effect.sync(() => {
      const out = new Map<number, number>()
      for (let shardId = 0; shardId < perShard.length; shardId++) out.set(shardId, perShard[shardId]!)
      return out
    }),
    unavailableCount: (shardId) => Effect.sync(() => countIn(unavailablePerShard, unavailableTotal, shardId)),
    reshard: (shardCount) =>
      isCount(shardCount)
        ? Effect.sync(() => reshard(shardCount))
        : Effect.die(new Cause.IllegalArgumentError(`Cache reshard needs a positive integer shard count, got ${shardCount}`)),
    size: Effect.sync(() => guilds.size)
  }
}
