/**
 * Snowflakes: Discord's 64-bit ids, kept as decimal strings (reference.mdx §Snowflakes).
 *
 * Implements the sharding formula of PROTOCOL.md §4, `shard_id = (guild_id >> 22) % num_shards`, in
 * BigInt: JS `>>` on numbers truncates to 32 bits and `Number(id)` loses precision above 2^53.
 * The `Snowflake` schema also accepts the integer forms ETF may deliver (§5.2) and normalises them
 * to strings.
 */
import { Schema, SchemaTransformation } from "effect"

export type Snowflake = string

/** 2015-01-01T00:00:00.000Z, the zero of a snowflake's timestamp. */
export const DiscordEpoch = 1420070400000

const MaxSnowflake = 18446744073709551615n
const MaxSnowflakeString = "18446744073709551615"
const decimal = /^(?:0|[1-9][0-9]{0,19})$/

/** Whether `s` is the canonical decimal form (no sign, no leading zero) of an unsigned 64-bit integer. */
export const isSnowflake = (s: string): boolean =>
  decimal.test(s) && (s.length < 20 || s <= MaxSnowflakeString)

/**
 * The shard that owns a guild: `(guild_id >> 22) % shardCount`, exact for every 64-bit id.
 * `guildId` must be a snowflake and `shardCount` a positive integer (BigInt throws otherwise).
 */
export const shardIdForGuild = (guildId: Snowflake, shardCount: number): number =>
  Number((BigInt(guildId) >> 22n) % BigInt(shardCount))

/** When the id was created, in ms since the Unix epoch. */
export const snowflakeTimestamp = (id: Snowflake): number => Number(BigInt(id) >> 22n) + DiscordEpoch

const SnowflakeString = Schema.String.check(
  Schema.makeFilter((s: string) => isSnowflake(s) || `expected a snowflake (decimal unsigned 64-bit integer), got "${s}"`)
)

// An integer above 2^53 has already lost digits by the time it is a JS number, so only safe ones are accepted.
const SnowflakeNumber = Schema.Finite.check(
  Schema.makeFilter((n: number) =>
    (Number.isSafeInteger(n) && n >= 0) || `expected a snowflake as a non-negative safe integer, got ${n}`
  )
)

const SnowflakeBigInt = Schema.BigInt.check(
  Schema.makeFilter((n: bigint) => (n >= 0n && n <= MaxSnowflake) || `expected a snowflake in [0, 2^64), got ${n}`)
)

/** A snowflake: a decimal string, or an integer/bigint (ETF), decoded to its decimal string. */
export const Snowflake = Schema.Union([SnowflakeString, SnowflakeNumber, SnowflakeBigInt]).pipe(
  Schema.decodeTo(
    Schema.String,
    SchemaTransformation.transform({
      decode: (id: string | number | bigint): string => typeof id === "string" ? id : String(id),
      encode: (id: string): string | number | bigint => id
    })
  )
)
