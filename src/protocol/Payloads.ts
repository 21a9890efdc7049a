/**
 * Schemas for the `d` of every gateway opcode, both directions (PROTOCOL.md §1.3, §1.5–1.9, §6).
 *
 * Client commands (ops 1, 2, 3, 4, 6, 8, 31, 43) are described exactly, so a sender can validate a
 * command before it is queued (`CommandDataSchemas`): identify shape (§1.5, checklist item 12),
 * presence shape (§6.2, item 47), op 8 rules (item 56), op 4 shape (item 57).
 *
 * Server data is decoded only as far as the runtime needs it (Hello, Invalid Session, READY, guild
 * availability, member chunks, RATE_LIMITED). Unknown keys such as `_trace` are tolerated and
 * stripped from the decoded value (§1.3, item 51); a known field with the wrong shape fails.
 */
import { Schema, SchemaTransformation } from "effect"
import { GatewayOpcode } from "./Opcode.ts"
import { Snowflake } from "./Snowflake.ts"

const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
const PositiveInt = Schema.Int.check(Schema.isGreaterThan(0))

/** UTF-8 length of a string, without encoding it. */
const utf8Bytes = (s: string): number => {
  let bytes = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x80) bytes += 1
    else if (c < 0x800) bytes += 2
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const next = s.charCodeAt(i + 1)
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4
        i++
      } else bytes += 3
    } else bytes += 3
  }
  return bytes
}

// ---------------------------------------------------------------------------------------------
// Shared pieces
// ---------------------------------------------------------------------------------------------

/** `[shard_id, num_shards]` with 0 ≤ shard_id < num_shards (§1.5). */
export const ShardTuple = Schema.Tuple([NonNegativeInt, PositiveInt]).check(
  Schema.makeFilter(([id, count]: readonly [number, number]) =>
    id < count || `shard id ${id} must be below the shard count ${count}`
  )
)
export type ShardTuple = typeof ShardTuple.Type

const activityKeys: ReadonlySet<string> = new Set(["name", "type", "state", "url"])

/** An activity a bot may set (§6.2): only `name`, `type`, `state`, `url`; any other key is refused. */
export const PresenceActivity = Schema.Record(Schema.String, Schema.Unknown).check(
  Schema.makeFilter((activity: { readonly [key: string]: unknown }) => {
    for (const key in activity) {
      if (!activityKeys.has(key)) return `bots may only set name, type, state and url of an activity, not "${key}"`
    }
    return undefined
  })
).pipe(Schema.decodeTo(
  Schema.Struct({
    name: Schema.String,
    type: NonNegativeInt,
    state: Schema.optionalKey(Schema.NullOr(Schema.String)),
    url: Schema.optionalKey(Schema.NullOr(Schema.String))
  }),
  SchemaTransformation.passthrough({ strict: false })
))
export type PresenceActivity = typeof PresenceActivity.Type

/** Presence status values (§6.2). */
export const PresenceStatus = Schema.Literals(["online", "dnd", "idle", "invisible", "offline"])
export type PresenceStatus = typeof PresenceStatus.Type

// ---------------------------------------------------------------------------------------------
// Client → server
// ---------------------------------------------------------------------------------------------

/** Op 1 `d`: the last sequence number received, or null (§1.4). */
export const HeartbeatData = Schema.NullOr(Schema.Int)
export type HeartbeatData = typeof HeartbeatData.Type

/** Op 3 `d`, also IDENTIFY's `presence` (§6.2, item 47). `since` is ms since the epoch (idle since) or null. */
export const PresenceUpdateData = Schema.Struct({
  since: Schema.NullOr(Schema.Int),
  activities: Schema.Array(PresenceActivity),
  status: PresenceStatus,
  afk: Schema.Boolean
})
export type PresenceUpdateData = typeof PresenceUpdateData.Type

/** IDENTIFY `properties` (§1.5). */
export const IdentifyProperties = Schema.Struct({
  os: Schema.String,
  browser: Schema.String,
  device: Schema.String
})
export type IdentifyProperties = typeof IdentifyProperties.Type

/** Op 2 `d` (§1.5, item 12). */
export const IdentifyData = Schema.Struct({
  token: Schema.String,
  properties: IdentifyProperties,
  compress: Schema.optionalKey(Schema.Boolean),
  large_threshold: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 50, maximum: 250 }))),
  shard: Schema.optionalKey(ShardTuple),
  presence: Schema.optionalKey(PresenceUpdateData),
  intents: NonNegativeInt
})
export type IdentifyData = typeof IdentifyData.Type

/** Op 6 `d` (§1.7). */
export const ResumeData = Schema.Struct({
  token: Schema.String,
  session_id: Schema.String,
  seq: Schema.NullOr(Schema.Int)
})
export type ResumeData = typeof ResumeData.Type

/** Op 4 `d` (§6.2, item 57): `channel_id: null` leaves voice. */
export const VoiceStateUpdateData = Schema.Struct({
  guild_id: Snowflake,
  channel_id: Schema.NullOr(Snowflake),
  self_mute: Schema.Boolean,
  self_deaf: Schema.Boolean
})
export type VoiceStateUpdateData = typeof VoiceStateUpdateData.Type

/**
 * Op 8 `d` (§6.2, item 56): one guild; exactly one of `query` / `user_ids`; `limit` required with
 * `query` (`query: ""` + `limit: 0` = all members); at most 100 `user_ids`; `nonce` ≤ 32 UTF-8 bytes.
 * Whether `presences` / all-members are allowed depends on the IDENTIFY intents: the sender checks that.
 */
export const RequestGuildMembersData = Schema.Struct({
  guild_id: Snowflake,
  query: Schema.optionalKey(Schema.String),
  limit: Schema.optionalKey(NonNegativeInt),
  presences: Schema.optionalKey(Schema.Boolean),
  user_ids: Schema.optionalKey(Schema.Array(Snowflake).check(Schema.isBetweenLength(1, 100))),
  nonce: Schema.optionalKey(Schema.String.check(
    Schema.makeFilter((nonce: string) => utf8Bytes(nonce) <= 32 || "nonce must be at most 32 bytes of UTF-8")
  ))
}).check(Schema.makeFilter((d: {
  readonly query?: string
  readonly limit?: number
  readonly user_ids?: ReadonlyArray<string>
}) => {
  const hasQuery = d.query !== undefined
  if (hasQuery === (d.user_ids !== undefined)) return "set exactly one of query / user_ids"
  if (hasQuery && d.limit === undefined) return "limit is required with query (use 0 with query \"\" for all members)"
  return undefined
}))
export type RequestGuildMembersData = typeof RequestGuildMembersData.Type

/** Op 31 `d`: the guilds whose soundboard sounds to send (SOUNDBOARD_SOUNDS answers per guild). */
export const RequestSoundboardSoundsData = Schema.Struct({
  guild_ids: Schema.NonEmptyArray(Snowflake)
})
export type RequestSoundboardSoundsData = typeof RequestSoundboardSoundsData.Type

/** The fields op 43 can ask for. */
export const ChannelInfoField = Schema.Literals(["status", "voice_start_time"])
export type ChannelInfoField = typeof ChannelInfoField.Type

/** Op 43 `d` (CHANNEL_INFO answers). */
export const RequestChannelInfoData = Schema.Struct({
  guild_id: Snowflake,
  fields: Schema.Array(ChannelInfoField)
})
export type RequestChannelInfoData = typeof RequestChannelInfoData.Type

/** The `d` schema of each op a client may send, so a command is validated before it is queued. */
export const CommandDataSchemas = {
  [GatewayOpcode.Heartbeat]: HeartbeatData,
  [GatewayOpcode.Identify]: IdentifyData,
  [GatewayOpcode.PresenceUpdate]: PresenceUpdateData,
  [GatewayOpcode.VoiceStateUpdate]: VoiceStateUpdateData,
  [GatewayOpcode.Resume]: ResumeData,
  [GatewayOpcode.RequestGuildMembers]: RequestGuildMembersData,
  [GatewayOpcode.RequestSoundboardSounds]: RequestSoundboardSoundsData,
  [GatewayOpcode.RequestChannelInfo]: RequestChannelInfoData
} as const

/** The ops a client sends: 1, 2, 3, 4, 6, 8, 31, 43. */
export type ClientOpcode = keyof typeof CommandDataSchemas

/** The validated `d` of client op `Op`. */
export type CommandData<Op extends ClientOpcode> = typeof CommandDataSchemas[Op]["Type"]

/** A client frame before encoding: `{ op, d }` with `d` matching `op`. */
export type ClientCommand = { readonly [Op in ClientOpcode]: { readonly op: Op; readonly d: CommandData<Op> } }[ClientOpcode]

// ---------------------------------------------------------------------------------------------
// Server → client
// ---------------------------------------------------------------------------------------------

/** Op 10 `d` (§1.4): the heartbeat interval in ms. */
export const HelloData = Schema.Struct({
  heartbeat_interval: PositiveInt
})
export type HelloData = typeof HelloData.Type

/** Op 9 `d` (§1.9): may the session be resumed? */
export const InvalidSessionData = Schema.Boolean
export type InvalidSessionData = typeof InvalidSessionData.Type

/** The READY user: the fields the runtime reads plus common optional ones. */
export const ReadyUser = Schema.Struct({
  id: Snowflake,
  username: Schema.String,
  discriminator: Schema.optionalKey(Schema.String),
  global_name: Schema.optionalKey(Schema.NullOr(Schema.String)),
  avatar: Schema.optionalKey(Schema.NullOr(Schema.String)),
  bot: Schema.optionalKey(Schema.Boolean)
})
export type ReadyUser = typeof ReadyUser.Type

/** A guild as listed in READY / GUILD_DELETE: `unavailable: true` during an outage. */
export const UnavailableGuild = Schema.Struct({
  id: Snowflake,
  unavailable: Schema.optionalKey(Schema.Boolean)
})
export type UnavailableGuild = typeof UnavailableGuild.Type

/** READY `d` (§1.6). */
export const ReadyData = Schema.Struct({
  v: Schema.Int,
  user: ReadyUser,
  guilds: Schema.Array(UnavailableGuild),
  session_id: Schema.String,
  resume_gateway_url: Schema.String,
  shard: Schema.optionalKey(ShardTuple),
  application: Schema.Struct({
    id: Snowflake,
    flags: Schema.optionalKey(Schema.Int)
  })
})
export type ReadyData = typeof ReadyData.Type

/** RESUMED `d`: no documented fields (usually `{ _trace }`, possibly null): anything is accepted. */
export const ResumedData = Schema.Unknown
export type ResumedData = typeof ResumedData.Type

/** GUILD_CREATE `d`, only what guild availability tracking needs (§6.1). */
export const GuildCreateData = Schema.Struct({
  id: Snowflake,
  unavailable: Schema.optionalKey(Schema.Boolean),
  member_count: Schema.optionalKey(NonNegativeInt)
})
export type GuildCreateData = typeof GuildCreateData.Type

/** GUILD_DELETE `d` (§6.1): `unavailable: true` = outage, absent = the bot left or was removed. */
export const GuildDeleteData = UnavailableGuild
export type GuildDeleteData = typeof GuildDeleteData.Type

/** GUILD_MEMBERS_CHUNK `d` (§6.1): members stay undecoded; 0 ≤ chunk_index < chunk_count. */
export const GuildMembersChunkData = Schema.Struct({
  guild_id: Snowflake,
  members: Schema.Array(Schema.Unknown),
  chunk_index: NonNegativeInt,
  chunk_count: PositiveInt,
  not_found: Schema.optionalKey(Schema.Array(Snowflake)),
  presences: Schema.optionalKey(Schema.Array(Schema.Unknown)),
  nonce: Schema.optionalKey(Schema.String)
}).check(Schema.makeFilter((d: { readonly chunk_index: number; readonly chunk_count: number }) =>
  d.chunk_index < d.chunk_count || `chunk_index ${d.chunk_index} must be below chunk_count ${d.chunk_count}`
))
export type GuildMembersChunkData = typeof GuildMembersChunkData.Type

/**
 * RATE_LIMITED `d` (§3): `retry_after` in (fractional) seconds. Only op 8's `meta` is documented,
 * so every `meta` field is optional and other keys are ignored.
 */
export const RateLimitedData = Schema.Struct({
  opcode: Schema.Int,
  retry_after: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0)),
  meta: Schema.Struct({
    guild_id: Schema.optionalKey(Snowflake),
    nonce: Schema.optionalKey(Schema.String)
  })
})
export type RateLimitedData = typeof RateLimitedData.Type
