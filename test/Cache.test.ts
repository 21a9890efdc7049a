/**
 * Tests of the guild cache (PROTOCOL.md §6.1 guild availability, §10 item 54; §4 the shard formula with
 * ids above 2^53): READY seeding, the GUILD_CREATE/UPDATE/DELETE rules, per-shard counts, resharding,
 * the bound, data of unexpected shape, the no-op layer, and a property test that the incrementally kept
 * counts always equal a recount.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Layer, Logger, Option, Schema } from "effect"
import type { CacheService, CachedGuild } from "../src/Cache.ts"
import { Cache } from "../src/Cache.ts"
import * as Dispatch from "../src/Dispatch.ts"
import { isSnowflake } from "../src/protocol/Snowflake.ts"

// ---------------------------------------------------------------------------------------------------
// Helpers

/**
 * A guild id on `shard` of `count`, above 2^53, built so its shard is known without the code under
 * test: `(k * count + shard) << 22`, with the 22 low bits all set. Those bits make float arithmetic
 * round up into bit 22, so a `Number`-based formula lands on the wrong shard.
 */
const idOn = (shard: number, count: number, k = 0): string =>
  (((BigInt(2 ** 34 + k) * BigInt(count) + BigInt(shard)) << 22n) | 0x3fffffn).toString()

/** The shard formula written independently of src (BigInt). */
const shardOf = (id: string, count: number): number => Number((BigInt(id) >> 22n) % BigInt(count))

let seq = 0
const dispatch = (name: string, data: unknown, shard = 0): Dispatch.Dispatch => Dispatch.make(shard, ++seq, name, data)
const ready = (shard: number, ids: ReadonlyArray<string>) =>
  dispatch("READY", {
    v: 10,
    user: { id: "1", username: "bot" },
    session_id: "s",
    resume_gateway_url: "wss://r",
    application: { id: "1" },
    guilds: ids.map((id) => ({ id, unavailable: true }))
  }, shard)
const guildCreate = (id: string, extra: Record<string, unknown> = {}) =>
  dispatch("GUILD_CREATE", { id, name: `guild ${id}`, member_count: 10, ...extra })
const guildUpdate = (id: string, name: string) => dispatch("GUILD_UPDATE", { id, name })
const guildDelete = (id: string, unavailable?: boolean) =>
  dispatch("GUILD_DELETE", unavailable === undefined ? { id } : { id, unavailable })

const memory = (maxGuilds?: number) => Cache.makeMemory(maxGuilds === undefined ? undefined : { maxGuilds })

const get = (cache: CacheService, id: string) =>
  Effect.map(cache.guild(id), (o) => Option.getOrUndefined(o))

/** Every count the cache reports for `count` shards, to compare in one expect. */
const counts = (cache: CacheService, count: number) =>
  Effect.gen(function*() {
    const guilds: Array<number> = []
    const unavailable: Array<number> = []
    for (let s = 0; s < count; s++) {
      guilds.push(yield* cache.guildCount(s))
      unavailable.push(yield* cache.unavailableCount(s))
    }
    return {
      guilds,
      unavailable,
      total: yield* cache.guildCount(),
      unavailableTotal: yield* cache.unavailableCount(),
      size: yield* cache.size,
      byShard: [...(yield* cache.guildCountsByShard)]
    }
  })

// ---------------------------------------------------------------------------------------------------

describe("Cache (memory)", () => {
  it("idOn builds ids above 2^53 on the intended shard", () => {
    const id = idOn(3, 4, 7)
    expect(BigInt(id) > 2n ** 53n).toBe(true)
    expect(isSnowflake(id) && isSnowflake(idOn(7, 8, 9999))).toBe(true) // below 2^64
    expect(shardOf(id, 4)).toBe(3)
    // The float formula is wrong for such ids: that is what the shard tests rely on.
    expect(Math.floor(Number(id) / 2 ** 22) % 4).not.toBe(3)
  })

  it.effect("ignores unrelated events: no state, and apply returns Effect.void without work", () =>
    Effect.gen(function*() {
      const cache = yield* memory()
      const message = dispatch("MESSAGE_CREATE", { id: idOn(0, 1), guild_id: idOn(0, 1), content: "hi" })
      expect(cache.apply(message, 4)).toBe(Effect.void)
      expect(cache.apply(dispatch("TYPING_START", { guild_id: idOn(0, 1) }), 4)).toBe(Effect.void)
      yield* cache.apply(message, 4)
      // Names starting like the cached ones are still ignored.
      yield* cache.apply(dispatch("GUILD_MEMBER_ADD", { id: idOn(1, 4), guild_id: idOn(1, 4) }), 4)
      yield* cache.apply(dispatch("GUILD_ROLE_CREATE", { id: idOn(1, 4), guild_id: idOn(1, 4) }), 4)
      yield* cache.apply(dispatch("RESUMED", { guilds: [{ id: idOn(1, 4) }] }), 4)
      yield* cache.apply(dispatch("READY_SUPPLEMENTAL", { guilds: [{ id: idOn(1, 4) }] }), 4)
      expect(yield* cache.size).toBe(0)
      expect(yield* cache.guild(idOn(1, 4))).toEqual(Option.none())
    }))

  it.effect("READY seeds every listed guild as unavailable, on its shard (§6.1)", () =>
    Effect.gen(function*() {
      const cache = yield* memory()
      const ids = [idOn(1, 4, 0), idOn(1, 4, 1), idOn(1, 4, 2)]
      yield* cache.apply(ready(1, ids), 4)
      const c = yield* counts(cache, 4)
      expect(c).toEqual({
        guilds: [0, 3, 0, 0],
        unavailable: [0, 3, 0, 0],
        total: 3,
        unavailableTotal: 3,
        size: 3,
        byShard: [[0, 0], [1, 3], [2, 0], [3, 0]]
      })
      expect(yield* get(cache, ids[0]!)).toEqual({ id: ids[0], shardId: 1, unavailable: true })
    }))

  it.effect("item 54: GUILD_CREATE of a READY guild makes it available, with its name and member count", () =>
    Effect.gen(function*() {
      const cache = yield* memory()
      const [a, b] = [idOn(2, 4, 0), idOn(2, 4, 1)]
      yield* cache.apply(ready(2, [a, b]), 4)
      yield* cache.apply(guildCreate(a, { member_count: 42 }), 4)
      expect(yield* get(cache, a)).toEqual({ id: a, shardId: 2, unavailable: false, name: `guild ${a}`, memberCount: 42 })
      expect(yield* get(cache, b)).toEqual({ id: b, shardId: 2, unavailable: true })
      expect((yield* counts(cache, 4)).unavailable).toEqual([0, 0, 1, 0])
      expect(yield* cache.guildCount(2)).toBe(2)
    }))

  it.effect("item 54: GUILD_CREATE for an unknown id is a join: added, available", () =>
    Effect.gen(function*() {
      const cache = yield* memory()
      yield* cache.apply(ready(0, [idOn(0, 4)]), 4)
      const joined = idOn(3, 4, 9)
      yield* cache.apply(guildCreate(joined), 4)
      expect(yield* get(cache, joined)).toEqual({
        id: joined,
        shardId: 3,
        unavailable: false,
        name: `guild ${joined}`,
        memberCount: 10
      })
      const c = yield* counts(cache, 4)
      expect([c.guilds, c.unavailable, c.size]).toEqual([[1, 0, 0, 1], [1, 0, 0, 0], 2])
    }))

  it.effect("item 54: GUILD_DELETE unavailable:true keeps the guild, marked unavailable; GUILD_CREATE makes it available again", () =>
    Effect.gen(function*() {
      const cache = yield* memory()
      const id = idOn(1, 4)
      yield* cache.apply(guildCreate(id, { member_count: 5 }), 4)
      yield* cache.apply(guildDelete(id, true), 4)
      expect(yield* get(cache, id)).toEqual({ id, shardId: 1, unavailable: true, name: `guild ${id}`, memberCount: 5 })
      expect([yield* cache.guildCount(1), yield* cache.unavailableCount(1), yield* cache.unavailableCount()]).toEqual([
        1,
        1,
        1
      ])
      yield* cache.apply(guildCreate(id, { member_count: 6 }), 4)
      expect(yield* get(cache, id)).toEqual({ id, shardId: 1, unavailable: false, name: `guild ${id}`, memberCount: 6 })
      expect([yield* cache.guildCount(1), yield* cache.unavailableCount(1)]).toEqual([1, 0])
    }))

  it.effect("item 54: GUILD_DELETE without unavailable removes the guild (absent or false); unknown ids are no-ops", () =>
    Effect.gen(function*() {
      const cache = yield* memory()
      const [a, b, c] = [idOn(0, 4, 0), idOn(0, 4, 1), idOn(1, 4, 2)]
      yield* cache.apply(guildCreate(a), 4)
      yield* cache.apply(guildCreate(b), 4)
      yield* cache.apply(guildDelete(c, true), 4) // outage of a guild not yet known: kept, unavailable
      yield* cache.apply(guildDelete(a), 4)
      yield* cache.apply(guildDelete(b, false), 4)
      yield* cache.apply(guildDelete(idOn(2, 4, 3)), 4) // never known: nothing happens
      expect(yield* cache.guild(a)).toEqual(Option.none())
      expect(yield* cache.guild(b)).toEqual(Option.none())
      expect(yield* get(cache, c)).toEqual({ id: c, shardId: 1, unavailable: true })
      const n = yield* counts(cache, 4)
      expect([n.guilds, n.unavailable, n.size]).toEqual([[0, 1, 0, 0], [0, 1, 0, 0], 1])
      // Removing an unavailable guild takes it out of the unavailable counts too.
      yield* cache.apply(guildDelete(c), 4)
      expect([yield* cache.size, yield* cache.unavailableCount(), yield* cache.unavailableCount(1)]).toEqual([0, 0, 0])
    }))

  it.effect("GUILD_CREATE in its outage form { id, unavailable: true } records the guild unavailable", () =>
    Effect.gen(function*() {
      const cache = yield* memory()
      const id = idOn(2, 4)
      yield* cache.apply(guildCreate(id), 4)
      yield* cache.apply(dispatch("GUILD_CREATE", { id, unavailable: true }), 4)
      expect(yield* get(cache, id)).toEqual({ id, shardId: 2, unavailable: true, name: `guild ${id}`, memberCount: 10 })
      expect(yield* cache.unavailableCount(2)).toBe(1)
    }))

  it.effect("GUILD_UPDATE changes the name and keeps availability; an unknown guild is added, available", () =>
    Effect.gen(function*() {
      const cache = yield* memory()
      const [a, b, c] = [idOn(0, 4, 0), idOn(1, 4, 1), idOn(2, 4, 2)]
      yield* cache.apply(guildCreate(a, { member_count: 7 }), 4)
      yield* cache.apply(guildUpdate(a, "renamed"), 4)
      expect(yield* get(cache, a)).toEqual({ id: a, shardId: 0, unavailable: false, name: "renamed", memberCount: 7 })
      yield* cache.apply(guildDelete(b, true), 4)
      yield* cache.apply(guildUpdate(b, "still down"), 4)
      expect(yield* get(cache, b)).toEqual({ id: b, shardId: 1, unavailable: true, name: "still down" })
      yield* cache.apply(guildUpdate(c, "new"), 4)
      expect(yield* get(cache, c)).toEqual({ id: c, shardId: 2, unavailable: false, name: "new" })
      // an update without a name (or member count) keeps the known one
      yield* cache.apply(dispatch("GUILD_UPDATE", { id: a }), 4)
      expect(yield* get(cache, a)).toEqual({ id: a, shardId: 0, unavailable: false, name: "renamed", memberCount: 7 })
      const n = yield* counts(cache, 4)
      expect([n.guilds, n.unavailable]).toEqual([[1, 1, 1, 0], [0, 1, 0, 0]])
    }))

  it.effect("a new session's READY drops the shard's guilds it no longer lists, and no other shard's", () =>
    Effect.gen(function*() {
      const cache = yield* memory()
      const [kept, left, other] = [idOn(1, 4, 0), idOn(1, 4, 1), idOn(2, 4, 2)]
      yield* cache.apply(ready(1, [kept, left]), 4)
      yield* cache.apply(guildCreate(kept), 4)
      yield* cache.apply(guildCreate(left), 4)
      yield* cache.apply(guildCreate(other), 4)
      // Shard 1 re-identifies while the bot was removed from `left`.
      yield* cache.apply(ready(1, [kept]), 4)
      expect(yield* cache.guild(left)).toEqual(Option.none())
      expect(yield* get(cache, kept)).toEqual({ id: kept, shardId: 1, unavailable: true, name: `guild ${kept}`, memberCount: 10 })
      expect(yield* get(cache, other)).toEqual({ id: other, shardId: 2, unavailable: false, name: `guild ${other}`, memberCount: 10 })
      const n = yield* counts(cache, 4)
      expect([n.guilds, n.unavailable, n.size]).toEqual([[0, 1, 1, 0], [0, 1, 0, 0], 2])
    }))

  it.effect("counts per shard are exact for ids above 2^53 (BigInt shard formula)", () =>
    Effect.gen(function*() {
      const cache = yield* memory()
      const perShard = [3, 0, 5, 1, 2, 0, 4, 1]
      const ids: Array<[string, number]> = []
      perShard.forEach((n, shard) => {
        for (let k = 0; k < n; k++) ids.push([idOn(shard, 8, 100 * shard + k), shard])
      })
      for (const [id] of ids) yield* cache.apply(guildCreate(id), 8)
      for (const [id, shard] of ids) expect((yield* get(cache, id))?.shardId).toBe(shard)
      const n = yield* counts(cache, 8)
      expect(n.guilds).toEqual(perShard)
      expect(n.byShard).toEqual(perShard.map((count, shard) => [shard, count]))
      expect(n.total).toBe(16)
      expect(yield* cache.guildCount(8)).toBe(0) // outside the mapping
      expect(yield* cache.guildCount(-1)).toBe(0)
    }))

  it.effect("reshard 4 → 8 moves every guild and every count to its new shard, keeping state", () =>
    Effect.gen(function*() {
      const cache = yield* memory()
      // Two guilds on each shard of 8 (so each shard s of 4 holds 8-shards s and s+4); the 8-shards 5
      // and 6 hold an unavailable guild.
      const ids: Array<string> = []
      for (let s8 = 0; s8 < 8; s8++) for (let k = 0; k < 2; k++) ids.push(idOn(s8, 8, 10 * s8 + k))
      for (const id of ids) yield* cache.apply(guildCreate(id), 4)
      yield* cache.apply(guildDelete(ids[10]!, true), 4) // 8-shard 5, 4-shard 1
      yield* cache.apply(guildDelete(ids[12]!, true), 4) // 8-shard 6, 4-shard 2
      const before = yield* counts(cache, 4)
      expect([before.guilds, before.unavailable]).toEqual([[4, 4, 4, 4], [0, 1, 1, 0]])

      yield* cache.reshard(8)
      const after = yield* counts(cache, 8)
      expect(after).toEqual({
        guilds: [2, 2, 2, 2, 2, 2, 2, 2],
        unavailable: [0, 0, 0, 0, 0, 1, 1, 0],
        total: 16,
        unavailableTotal: 2,
        size: 16,
        byShard: [0, 1, 2, 3, 4, 5, 6, 7].map((s) => [s, 2])
      })
      for (const id of ids) expect((yield* get(cache, id))?.shardId).toBe(shardOf(id, 8))
      expect(yield* get(cache, ids[10]!)).toEqual({
        id: ids[10],
        shardId: 5,
        unavailable: true,
        name: `guild ${ids[10]}`,
        memberCount: 10
      })
      // The new count is the mapping now: later events land on shards of 8.
      const joined = idOn(7, 8, 999)
      yield* cache.apply(guildCreate(joined), 8)
      expect(yield* cache.guildCount(7)).toBe(3)
      // And back to 4.
      yield* cache.reshard(4)
      const back = yield* counts(cache, 4)
      expect([back.guilds, back.unavailable, back.byShard.length]).toEqual([[4, 4, 4, 5], [0, 1, 1, 0], 4])
    }))

  it.effect("reshard with a count that is not a positive integer dies and changes nothing", () =>
    Effect.gen(function*() {
      const cache = yield* memory()
      yield* cache.apply(guildCreate(idOn(3, 4)), 4)
      for (const bad of [0, -2, 1.5, Number.NaN]) {
        const exit = yield* Effect.exit(cache.reshard(bad))
        expect(Exit.isFailure(exit) && Cause.hasDies(exit.cause)).toBe(true)
      }
      expect((yield* counts(cache, 4)).guilds).toEqual([0, 0, 0, 1])
    }))

  it.effect("the mapping count is adopted by the first apply; later counts do not remap (reshard does)", () =>
    Effect.gen(function*() {
      const cache = yield* memory()
      const a = idOn(5, 8, 1) // shard 1 of 4, shard 5 of 8
      yield* cache.apply(guildCreate(idOn(0, 4)), 4)
      yield* cache.apply(guildCreate(a), 8) // e.g. from the new shard set during a reshard
      expect((yield* get(cache, a))?.shardId).toBe(1)
      expect((yield* counts(cache, 4)).byShard).toEqual([[0, 1], [1, 1], [2, 0], [3, 0]])
    }))

  it.effect("a READY from a session of another shard count only adds guilds the cache lacks", () =>
    Effect.gen(function*() {
      const cache = yield* memory()
      const [known, other, fresh] = [idOn(5, 8, 1), idOn(1, 8, 2), idOn(5, 8, 3)]
      yield* cache.apply(guildCreate(known), 4)
      yield* cache.apply(guildCreate(other), 4) // 4-shard 1, not in the new session's list
      yield* cache.apply(ready(5, [known, fresh]), 8) // new set's shard 5 of 8 comes up
      expect((yield* get(cache, known))?.unavailable).toBe(false)
      expect(yield* get(cache, fresh)).toEqual({ id: fresh, shardId: 1, unavailable: true })
      expect((yield* get(cache, other))?.unavailable).toBe(false)
      expect([yield* cache.size, yield* cache.unavailableCount()]).toEqual([3, 1])
    }))

  it.effect("data of unexpected shape never throws; guilds without a snowflake id are ignored", () =>
    Effect.gen(function*() {
      const cache = yield* memory()
      const junk: ReadonlyArray<unknown> = [
        null,
        undefined,
        "text",
        42,
        [],
        {},
        { name: "no id" },
        { id: null },
        { id: "abc" },
        { id: "-5" },
        { id: "007" },
        { id: "18446744073709551616" },
        { id: 1.5 },
        { id: -5 },
        { id: -5n },
        { id: {} }
      ]
      for (const data of junk) {
        for (const name of ["GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE", "READY"]) {
          yield* cache.apply(dispatch(name, data), 4)
        }
        yield* cache.apply(dispatch("READY", { guilds: data }), 4)
        yield* cache.apply(dispatch("READY", { guilds: [data] }), 4)
      }
      expect(yield* cache.size).toBe(0)
      // A READY list with junk keeps its good entries; an integer id (ETF) is read as its decimal string.
      const good = idOn(2, 4)
      yield* cache.apply(dispatch("READY", { guilds: [null, { id: good }, "x", { id: 123 }] }, 2), 4)
      yield* cache.apply(dispatch("GUILD_CREATE", { id: 4194304 * 3, name: 7, member_count: -1 }), 4)
      expect(yield* get(cache, good)).toEqual({ id: good, shardId: 2, unavailable: true })
      expect(yield* get(cache, "123")).toEqual({ id: "123", shardId: 0, unavailable: true })
      // A wrongly typed name / member count is left out rather than stored.
      expect(yield* get(cache, String(4194304 * 3))).toEqual({ id: String(4194304 * 3), shardId: 3, unavailable: false })
      yield* cache.apply(dispatch("GUILD_CREATE", { id: "4194304", member_count: 1.5 }), 4)
      expect(yield* get(cache, "4194304")).toEqual({ id: "4194304", shardId: 1, unavailable: false })
      // A BigInt id (ETF big integers) is read as its decimal string too, on its shard.
      const big = idOn(1, 4, 5)
      yield* cache.apply(dispatch("GUILD_CREATE", { id: BigInt(big), name: "big" }), 4)
      expect(yield* get(cache, big)).toEqual({ id: big, shardId: 1, unavailable: false, name: "big" })
    }))

  it.effect("an invalid shard count on the first apply is ignored until a valid one comes", () =>
    Effect.gen(function*() {
      const cache = yield* memory()
      yield* cache.apply(guildCreate(idOn(1, 4)), 0)
      yield* cache.apply(guildCreate(idOn(1, 4)), Number.NaN)
      expect(yield* cache.size).toBe(0)
      yield* cache.apply(guildCreate(idOn(1, 4)), 4)
      expect(yield* cache.guildCount(1)).toBe(1)
    }))
})

describe("Cache bound", () => {
  it.effect("when full, a new guild evicts the least-recently-updated one; a warning is logged once", () =>
    Effect.gen(function*() {
      const logs: Array<string> = []
      const capture = Logger.make((o) => {
        logs.push(`${o.logLevel}: ${String(o.message)}`)
      })
      const run = Effect.gen(function*() {
        const cache = yield* memory(3)
        const [a, b, c, d, e] = [idOn(0, 4, 0), idOn(1, 4, 1), idOn(2, 4, 2), idOn(3, 4, 3), idOn(1, 4, 4)]
        yield* cache.apply(ready(0, [a]), 4)
        yield* cache.apply(guildCreate(b), 4)
        yield* cache.apply(guildDelete(c, true), 4)
        // Updates of known guilds when full never evict, and make the guild the most recent.
        yield* cache.apply(guildCreate(a), 4)
        yield* cache.apply(guildUpdate(b, "b2"), 4)
        expect(yield* cache.size).toBe(3)
        expect(logs).toEqual([])
        // Order now (oldest first): c, a, b.
        yield* cache.apply(guildCreate(d), 4)
        expect(yield* cache.guild(c)).toEqual(Option.none())
        yield* cache.apply(guildCreate(e), 4)
        expect(yield* cache.guild(a)).toEqual(Option.none())
        expect([Option.isSome(yield* cache.guild(b)), Option.isSome(yield* cache.guild(d))]).toEqual([true, true])
        const n = yield* counts(cache, 4)
        // c was the unavailable one; its eviction left the unavailable counts at 0.
        expect([n.guilds, n.unavailable, n.size, n.total]).toEqual([[0, 2, 0, 1], [0, 0, 0, 0], 3, 3])
      })
      yield* run.pipe(Effect.provide(Logger.layer([capture])))
      expect(logs.length).toBe(1)
      expect(logs[0]).toMatch(/^Warn: .*Cache is full/)
    }))

  it.effect("maxGuilds must be a positive integer", () =>
    Effect.gen(function*() {
      for (const bad of [0, -1, 2.5, Number.NaN]) {
        const exit = yield* Effect.exit(Effect.provide(Effect.asVoid(Cache), Cache.layerMemory({ maxGuilds: bad })))
        expect(Exit.isFailure(exit) && Cause.hasDies(exit.cause)).toBe(true)
      }
      yield* Effect.gen(function*() {
        const cache = yield* Cache
        yield* cache.apply(guildCreate(idOn(0, 2, 0)), 2)
        yield* cache.apply(guildCreate(idOn(1, 2, 1)), 2)
        expect([yield* cache.size, yield* cache.guildCount(0), yield* cache.guildCount(1)]).toEqual([1, 0, 1])
      }).pipe(Effect.provide(Layer.mergeAll(Cache.layerMemory({ maxGuilds: 1 }), Logger.layer([]))))
    }))
})

describe("Cache.layerNoop", () => {
  it.effect("apply does nothing and every read is empty or 0", () =>
    Effect.gen(function*() {
      const cache = yield* Cache
      const id = idOn(1, 4)
      yield* cache.apply(ready(1, [id]), 4)
      yield* cache.apply(guildCreate(idOn(2, 4)), 4)
      yield* cache.apply(guildDelete(id, true), 4)
      yield* cache.reshard(8)
      expect(yield* cache.guild(id)).toEqual(Option.none())
      expect([
        yield* cache.size,
        yield* cache.guildCount(),
        yield* cache.guildCount(1),
        yield* cache.unavailableCount(),
        yield* cache.unavailableCount(1)
      ]).toEqual([0, 0, 0, 0, 0])
      expect((yield* cache.guildCountsByShard).size).toBe(0)
    }).pipe(Effect.provide(Cache.layerNoop)))

  it.effect("layerMemory provides a working cache through the service", () =>
    Effect.gen(function*() {
      const cache = yield* Cache
      yield* cache.apply(guildCreate(idOn(1, 4)), 4)
      expect(yield* cache.guildCount(1)).toBe(1)
    }).pipe(Effect.provide(Cache.layerMemory())))
})

// ---------------------------------------------------------------------------------------------------
// Property: whatever the sequence, the incremental counts equal a recount of the cached guilds.

const Op = Schema.Struct({
  kind: Schema.Literals(["ready", "create", "createOutage", "update", "delete", "deleteOutage", "reshard"]),
  guild: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 11 })),
  shard: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 3 })),
  count: Schema.Literals([1, 2, 4, 8])
})
type Op = typeof Op.Type

/** 12 guild ids above 2^53, spread over shards of 8. */
const universe = Array.from({ length: 12 }, (_, i) => idOn(i % 8, 8, i))
const MaxGuilds = 6

const applyOp = (cache: CacheService, op: Op, firstCount: number) => {
  const id = universe[op.guild]!
  switch (op.kind) {
    case "ready":
      return cache.apply(ready(op.shard, universe.filter((_, i) => (i + op.shard) % 3 === 0)), firstCount)
    case "create":
      return cache.apply(guildCreate(id), firstCount)
    case "createOutage":
      return cache.apply(dispatch("GUILD_CREATE", { id, unavailable: true }), firstCount)
    case "update":
      return cache.apply(guildUpdate(id, "u"), firstCount)
    case "delete":
      return cache.apply(guildDelete(id), firstCount)
    case "deleteOutage":
      return cache.apply(guildDelete(id, true), firstCount)
    case "reshard":
      return cache.reshard(op.count)
  }
}

describe("Cache properties", () => {
  it.effect.prop(
    "incremental counts always equal a recount, shard ids follow the mapping count, the bound holds",
    { ops: Schema.Array(Op) },
    ({ ops }) =>
      Effect.gen(function*() {
        const cache = yield* memory(MaxGuilds)
        let mapping = 0
        for (const op of ops) {
          yield* applyOp(cache, op, 4).pipe(Effect.provide(Logger.layer([])))
          if (op.kind === "reshard") mapping = op.count
          else if (mapping === 0) mapping = 4
        }
        const cached: Array<CachedGuild> = []
        for (const id of universe) {
          const g = yield* cache.guild(id)
          if (Option.isSome(g)) cached.push(g.value)
        }
        const n = yield* counts(cache, Math.max(mapping, 1))
        const expectedGuilds = Array.from({ length: Math.max(mapping, 1) }, (_, s) =>
          cached.filter((g) => g.shardId === s).length)
        const expectedUnavailable = Array.from({ length: Math.max(mapping, 1) }, (_, s) =>
          cached.filter((g) => g.shardId === s && g.unavailable).length)
        expect(n.size).toBe(cached.length)
        expect(n.total).toBe(cached.length)
        expect(n.size).toBeLessThanOrEqual(MaxGuilds)
        expect(n.guilds).toEqual(expectedGuilds)
        expect(n.unavailable).toEqual(expectedUnavailable)
        expect(n.unavailableTotal).toBe(cached.filter((g) => g.unavailable).length)
        expect(n.byShard.length).toBe(mapping)
        for (const g of cached) expect(g.shardId).toBe(shardOf(g.id, mapping))
      }),
    { arbitrary: { runs: 200, seed: 54 } }
  )
})
