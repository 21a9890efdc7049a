/**
 * How the gateway simulator reads client payloads: hand-written checks of the `d` of each client opcode
 * (PROTOCOL.md §1.5 Identify, §1.7 Resume, §6.2 commands), independent of the client's own schemas so the
 * simulator judges a client by the documented shapes, not by the code under test.
 *
 * A failed check yields a human-readable problem; the server turns it into close 4001 ("bad payload for
 * an opcode", PROTOCOL.md §2/§5.1). The token, shard and intents checks of IDENTIFY map to their own close
 * codes (4004, 4010, 4013, 4014) and live in the server.
 */
import { Result } from "effect"
import type { ShardTuple } from "./SimulatorSessions.ts"

/** A JSON object (not null, not an array). */
export const isRecord = (u: unknown): u is Record<string, unknown> =>
  typeof u === "object" && u !== null && !Array.isArray(u)

const isSnowflake = (u: unknown): u is string => typeof u === "string" && /^\d{1,20}$/.test(u)

const isNonNegativeInt = (u: unknown): u is number => typeof u === "number" && Number.isSafeInteger(u) && u >= 0

/** `[shard_id, num_shards]` when valid (integers, `0 ≤ id < count`), otherwise null (→ close 4010). */
export const parseShardTuple = (u: unknown): ShardTuple | null => {
  if (!Array.isArray(u) || u.length !== 2) return null
  const [id, count] = u as [unknown, unknown]
  if (!isNonNegativeInt(id) || !isNonNegativeInt(count) || count < 1 || id >= count) return null
  return [id, count]
}

/** The tuple an IDENTIFY declares: its `shard`, `[0, 1]` when absent, null when malformed. */
export const identifyShard = (d: unknown): ShardTuple | null => {
  if (!isRecord(d) || d.shard === undefined) return isRecord(d) ? [0, 1] : null
  return parseShardTuple(d.shard)
}

const statuses = new Set(["online", "dnd", "idle", "invisible", "offline"])

/** Checks an Update Presence object (op 3 `d`, IDENTIFY `presence`): `since`, `activities`, `status`, `afk`. */
export const presenceProblem = (u: unknown): string | undefined => {
  if (!isRecord(u)) return "presence must be an object"
  if (u.since !== null && !isNonNegativeInt(u.since)) return "presence.since must be an integer or null"
  if (!Array.isArray(u.activities)) return "presence.activities must be an array"
  for (const activity of u.activities) {
    if (!isRecord(activity) || typeof activity.name !== "string" || !Number.isInteger(activity.type)) {
      return "each activity needs a string name and an integer type"
    }
    if (activity.state !== undefined && activity.state !== null && typeof activity.state !== "string") {
      return "activity.state must be a string"
    }
    if (activity.url !== undefined && activity.url !== null && typeof activity.url !== "string") {
      return "activity.url must be a string"
    }
  }
  if (typeof u.status !== "string" || !statuses.has(u.status)) {
    return "presence.status must be online, dnd, idle, invisible or offline"
  }
  if (typeof u.afk !== "boolean") return "presence.afk must be a boolean"
  return undefined
}

/** Checks the parts of an IDENTIFY `d` that close with 4001 when wrong: properties, compress, large_threshold, presence. */
export const identifyProblem = (d: Record<string, unknown>): string | undefined => {
  const properties = d.properties
  if (!isRecord(properties)) return "IDENTIFY properties must be an object"
  for (const key of ["os", "browser", "device"] as const) {
    if (properties[key] !== undefined && typeof properties[key] !== "string") return `IDENTIFY properties.${key} must be a string`
  }
  if (d.compress !== undefined && typeof d.compress !== "boolean") return "IDENTIFY compress must be a boolean"
  const threshold = d.large_threshold
  if (threshold !== undefined && (!Number.isInteger(threshold) || (threshold as number) < 50 || (threshold as number) > 250)) {
    return "IDENTIFY large_threshold must be an integer in [50, 250]"
  }
  if (d.presence !== undefined) {
    const problem = presenceProblem(d.presence)
    if (problem !== undefined) return `IDENTIFY ${problem}`
  }
  return undefined
}

/** A RESUME `d`, read. */
export interface ResumeRequest {
  readonly token: unknown
  readonly sessionId: string
  readonly seq: number
}

/** Reads a RESUME `d` (`token` is checked by the server: a wrong one closes 4004, not 4001). */
export const parseResume = (d: unknown): Result.Result<ResumeRequest, string> => {
  if (!isRecord(d)) return Result.fail("RESUME d must be an object")
  if (typeof d.session_id !== "string") return Result.fail("RESUME session_id must be a string")
  const seq = d.seq === null ? 0 : d.seq
  if (!isNonNegativeInt(seq)) return Result.fail("RESUME seq must be a non-negative integer or null")
  return Result.succeed({ token: d.token, sessionId: d.session_id, seq })
}

/** Heartbeat `d`: the last sequence number or null. */
export const heartbeatProblem = (d: unknown): string | undefined =>
  d === null || d === undefined || isNonNegativeInt(d) ? undefined : "heartbeat d must be an integer or null"

/** Checks an Update Voice State `d` (op 4). */
export const voiceStateProblem = (d: unknown): string | undefined => {
  if (!isRecord(d)) return "voice state d must be an object"
  if (!isSnowflake(d.guild_id)) return "voice state guild_id must be a snowflake string"
  if (d.channel_id !== null && !isSnowflake(d.channel_id)) return "voice state channel_id must be a snowflake string or null"
  if (typeof d.self_mute !== "boolean" || typeof d.self_deaf !== "boolean") return "voice state self_mute/self_deaf must be booleans"
  return undefined
}

/** A Request Guild Members `d` (op 8), read. */
export interface MembersRequest {
  readonly guildId: string
  /** Set for query requests (`""` with `limit: 0` = all members). */
  readonly query: string | undefined
  readonly limit: number
  /** Set for user-id requests. */
  readonly userIds: ReadonlyArray<string> | undefined
  readonly presences: boolean
  /** A valid nonce (string ≤ 32 bytes); an invalid one is ignored like Discord does. */
  readonly nonce: string | undefined
}

/** Reads an op 8 `d`: one guild, exactly one of `query`+`limit` / `user_ids` (≤ 100). */
export const parseMembersRequest = (d: unknown): Result.Result<MembersRequest, string> => {
  if (!isRecord(d)) return Result.fail("request guild members d must be an object")
  if (!isSnowflake(d.guild_id)) return Result.fail("request guild members needs one guild_id (a snowflake string)")
  const hasQuery = d.query !== undefined
  const hasIds = d.user_ids !== undefined
  if (hasQuery === hasIds) return Result.fail("request guild members needs exactly one of query / user_ids")
  if (hasQuery && (typeof d.query !== "string" || !isNonNegativeInt(d.limit))) {
    return Result.fail("request guild members query needs a string query and an integer limit")
  }
  let userIds: ReadonlyArray<string> | undefined
  if (hasIds) {
    const raw = d.user_ids
    const list = typeof raw === "string" ? [raw] : raw
    if (!Array.isArray(list) || list.length > 100 || !list.every(isSnowflake)) {
      return Result.fail("request guild members user_ids must be at most 100 snowflake strings")
    }
    userIds = list
  }
  if (d.presences !== undefined && typeof d.presences !== "boolean") return Result.fail("presences must be a boolean")
  const nonce = typeof d.nonce === "string" && Buffer.byteLength(d.nonce) <= 32 ? d.nonce : undefined
  return Result.succeed({
    guildId: d.guild_id,
    query: hasQuery ? d.query as string : undefined,
    limit: hasQuery ? d.limit as number : 0,
    userIds,
    presences: d.presences === true,
    nonce
  })
}

/** Reads an op 31 `d`: `{ guild_ids: snowflake[] }`. */
export const parseSoundboardRequest = (d: unknown): Result.Result<ReadonlyArray<string>, string> =>
  isRecord(d) && Array.isArray(d.guild_ids) && d.guild_ids.every(isSnowflake)
    ? Result.succeed(d.guild_ids)
    : Result.fail("request soundboard sounds needs guild_ids (snowflake strings)")

const channelInfoFields = new Set(["status", "voice_start_time"])

/** Reads an op 43 `d`: `{ guild_id, fields: ("status" | "voice_start_time")[] }`; gives the guild id. */
export const parseChannelInfoRequest = (d: unknown): Result.Result<string, string> =>
  isRecord(d) && isSnowflake(d.guild_id) && Array.isArray(d.fields) &&
    d.fields.every((f) => typeof f === "string" && channelInfoFields.has(f))
    ? Result.succeed(d.guild_id)
    : Result.fail("request channel info needs guild_id and fields (status, voice_start_time)")
