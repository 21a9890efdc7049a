import { describe, expect, it } from "@effect/vitest"
import { Result, Schema } from "effect"
import { GatewayOpcode } from "../../src/protocol/Opcode.ts"
import {
  CommandDataSchemas,
  GuildCreateData,
  GuildDeleteData,
  GuildMembersChunkData,
  HeartbeatData,
  HelloData,
  IdentifyData,
  InvalidSessionData,
  PresenceUpdateData,
  RateLimitedData,
  ReadyData,
  RequestChannelInfoData,
  RequestGuildMembersData,
  RequestSoundboardSoundsData,
  ResumeData,
  ResumedData,
  VoiceStateUpdateData
} from "../../src/protocol/Payloads.ts"

/** Decodes with the schema, throwing a readable error if it is refused. */
const accept = <S extends Schema.ConstraintDecoder<unknown>>(schema: S, input: unknown): S["Type"] => {
  const result = Schema.decodeUnknownResult(schema)(input)
  if (Result.isFailure(result)) throw new Error(`refused: ${result.failure.message}\ninput: ${JSON.stringify(input)}`)
  return result.success
}

/** Asserts every input is refused. */
const rejectAll = (schema: Schema.ConstraintDecoder<unknown>, inputs: ReadonlyArray<unknown>): void => {
  const decode = Schema.decodeUnknownResult(schema)
  for (const input of inputs) {
    expect(Result.isFailure(decode(input)), `should refuse ${JSON.stringify(input)}`).toBe(true)
  }
}

const guildId = "41771983423143937"

describe("opcodes (PROTOCOL.md §1.3)", () => {
  it("has the documented numbers", () => {
    expect(GatewayOpcode).toEqual({
      Dispatch: 0, Heartbeat: 1, Identify: 2, PresenceUpdate: 3, VoiceStateUpdate: 4, Resume: 6, Reconnect: 7,
      RequestGuildMembers: 8, InvalidSession: 9, Hello: 10, HeartbeatAck: 11, RequestSoundboardSounds: 31,
      RequestChannelInfo: 43
    })
  })

  it("CommandDataSchemas covers exactly the client ops 1, 2, 3, 4, 6, 8, 31, 43", () => {
    expect(Object.keys(CommandDataSchemas).map(Number).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 6, 8, 31, 43])
    expect(CommandDataSchemas[GatewayOpcode.Identify]).toBe(IdentifyData)
    expect(CommandDataSchemas[GatewayOpcode.RequestGuildMembers]).toBe(RequestGuildMembersData)
  })
})

describe("Hello / Heartbeat / Invalid Session", () => {
  it("item 51: Hello with an unknown `_trace` key is accepted and the key dropped", () => {
    const hello = accept(HelloData, { heartbeat_interval: 41250, _trace: ["[\"gateway-prd-us-east1-b-0568\",{\"micros\":0.0}]"] })
    expect(hello).toEqual({ heartbeat_interval: 41250 })
  })

  it("Hello needs a positive integer interval", () => {
    expect(accept(HelloData, { heartbeat_interval: 45000 })).toEqual({ heartbeat_interval: 45000 })
    rejectAll(HelloData, [{}, null, { heartbeat_interval: 0 }, { heartbeat_interval: -1 }, { heartbeat_interval: 1.5 }, { heartbeat_interval: "soon" }])
  })

  it("Heartbeat d is the last seq or null", () => {
    expect(accept(HeartbeatData, null)).toBe(null)
    expect(accept(HeartbeatData, 251)).toBe(251)
    rejectAll(HeartbeatData, ["251", 1.5, undefined, {}])
  })

  it("Invalid Session d is a boolean", () => {
    expect(accept(InvalidSessionData, false)).toBe(false)
    expect(accept(InvalidSessionData, true)).toBe(true)
    rejectAll(InvalidSessionData, [null, 0, "false"])
  })
})

describe("IDENTIFY (§1.5)", () => {
  const documented = {
    token: "my_token",
    properties: { os: "linux", browser: "disco", device: "disco" },
    compress: true,
    large_threshold: 250,
    shard: [0, 1],
    presence: {
      activities: [{ name: "Cards Against Humanity", type: 0 }],
      status: "dnd",
      since: 91879201,
      afk: false
    },
    intents: 7
  }

  it("item 12: accepts the documented example and the minimal form", () => {
    expect(accept(IdentifyData, documented)).toEqual(documented)
    const minimal = { token: "t", properties: { os: "linux", browser: "b", device: "d" }, intents: 0 }
    const decoded = accept(IdentifyData, minimal)
    expect(decoded).toEqual(minimal)
    expect("shard" in decoded).toBe(false)
  })

  it("item 12: refuses missing/ill-typed required fields", () => {
    const { token: _token, ...noToken } = documented
    const { intents: _intents, ...noIntents } = documented
    rejectAll(IdentifyData, [
      noToken,
      noIntents,
      { ...documented, token: 42 },
      { ...documented, intents: 1.5 },
      { ...documented, intents: "7" },
      { ...documented, properties: { os: "linux", browser: "disco" } },
      { ...documented, properties: { os: 1, browser: "disco", device: "disco" } }
    ])
  })

  it("item 12: refuses ill-typed optional fields", () => {
    rejectAll(IdentifyData, [
      { ...documented, compress: "yes" },
      { ...documented, large_threshold: 49 },
      { ...documented, large_threshold: 251 },
      { ...documented, large_threshold: 100.5 },
      { ...documented, shard: [1, 1] },
      { ...documented, shard: [2, 1] },
      { ...documented, shard: [-1, 2] },
      { ...documented, shard: [0, 0] },
      { ...documented, shard: [0] },
      { ...documented, shard: [0.5, 2] },
      { ...documented, presence: { ...documented.presence, status: "away" } },
      { ...documented, compress: undefined } // optional means absent, not undefined
    ])
    expect(accept(IdentifyData, { ...documented, shard: [15, 16], large_threshold: 50 }).shard).toEqual([15, 16])
  })
})

describe("Presence update (§6.2)", () => {
  const presence = {
    since: null,
    activities: [{ name: "with effects", type: 0 }, { name: "live", type: 1, url: "https://twitch.tv/x", state: "s" }],
    status: "online",
    afk: false
  }

  it("item 47: accepts since null/int, name/type/state/url activities, each status", () => {
    expect(accept(PresenceUpdateData, presence)).toEqual(presence)
    expect(accept(PresenceUpdateData, { ...presence, since: 1700000000000, activities: [] }).since).toBe(1700000000000)
    for (const status of ["online", "dnd", "idle", "invisible", "offline"]) {
      expect(accept(PresenceUpdateData, { ...presence, status }).status).toBe(status)
    }
  })

  it("item 47: refuses activity keys a bot may not set", () => {
    rejectAll(PresenceUpdateData, [
      { ...presence, activities: [{ name: "x", type: 0, emoji: { name: "🙂" } }] },
      { ...presence, activities: [{ name: "x", type: 0, created_at: 1 }] },
      { ...presence, activities: [{ name: "x", type: 0, details: "d" }] }
    ])
  })

  it("item 47: refuses malformed presences", () => {
    const { afk: _afk, ...noAfk } = presence
    rejectAll(PresenceUpdateData, [
      noAfk,
      { ...presence, status: "away" },
      { ...presence, since: "now" },
      { ...presence, since: 1.5 },
      { ...presence, afk: "false" },
      { ...presence, activities: { name: "x", type: 0 } },
      { ...presence, activities: [{ type: 0 }] },
      { ...presence, activities: [{ name: "x", type: "playing" }] },
      { ...presence, activities: [{ name: "x", type: 0, url: 5 }] }
    ])
  })
})

describe("Voice state update (§6.2)", () => {
  it("item 57: accepts a join (snowflake channel) and a leave (null channel)", () => {
    const join = { guild_id: guildId, channel_id: "127121515262115840", self_mute: false, self_deaf: true }
    expect(accept(VoiceStateUpdateData, join)).toEqual(join)
    expect(accept(VoiceStateUpdateData, { ...join, channel_id: null }).channel_id).toBe(null)
  })

  it("item 57: refuses a missing or ill-typed field", () => {
    const join = { guild_id: guildId, channel_id: "127121515262115840", self_mute: false, self_deaf: true }
    const { self_deaf: _deaf, ...noDeaf } = join
    const { channel_id: _channel, ...noChannel } = join
    rejectAll(VoiceStateUpdateData, [
      noDeaf,
      noChannel,
      { ...join, self_mute: "false" },
      { ...join, guild_id: "abc" },
      { ...join, channel_id: "" }
    ])
  })
})

describe("Request guild members (§6.2)", () => {
  it("item 56: accepts a query request, an all-members request and a user_ids request", () => {
    expect(accept(RequestGuildMembersData, { guild_id: guildId, query: "ab", limit: 10 })).toEqual({
      guild_id: guildId,
      query: "ab",
      limit: 10
    })
    expect(accept(RequestGuildMembersData, { guild_id: guildId, query: "", limit: 0, presences: true })).toBeDefined()
    const byIds = { guild_id: guildId, user_ids: ["175928847299117063"], presences: false, nonce: "a".repeat(32) }
    expect(accept(RequestGuildMembersData, byIds)).toEqual(byIds)
    const hundred = Array.from({ length: 100 }, (_, i) => String(1000 + i))
    expect(accept(RequestGuildMembersData, { guild_id: guildId, user_ids: hundred }).user_ids).toHaveLength(100)
  })

  it("item 56: exactly one of query / user_ids, limit with query, one guild, ≤ 100 ids", () => {
    rejectAll(RequestGuildMembersData, [
      { guild_id: guildId, query: "", limit: 0, user_ids: ["1"] },
      { guild_id: guildId, limit: 0 },
      { guild_id: guildId, query: "ab" },
      { guild_id: [guildId, "2"], query: "", limit: 0 },
      { query: "", limit: 0 },
      { guild_id: guildId, user_ids: [] },
      { guild_id: guildId, user_ids: Array.from({ length: 101 }, (_, i) => String(1000 + i)) },
      { guild_id: guildId, user_ids: ["not-an-id"] },
      { guild_id: guildId, query: "", limit: -1 }
    ])
    const decode = Schema.decodeUnknownResult(RequestGuildMembersData)
    const both = decode({ guild_id: guildId, query: "", limit: 0, user_ids: ["1"] })
    expect(Result.isFailure(both) && both.failure.message).toContain("exactly one of query / user_ids")
    const noLimit = decode({ guild_id: guildId, query: "ab" })
    expect(Result.isFailure(noLimit) && noLimit.failure.message).toContain("limit is required with query")
  })

  it("item 55: nonce is limited to 32 bytes of UTF-8, not 32 characters", () => {
    const ok = { guild_id: guildId, query: "", limit: 0 }
    expect(accept(RequestGuildMembersData, { ...ok, nonce: "é".repeat(16) }).nonce).toBe("é".repeat(16)) // 32 bytes
    rejectAll(RequestGuildMembersData, [
      { ...ok, nonce: "a".repeat(33) },
      { ...ok, nonce: "é".repeat(17) }, // 17 chars, 34 bytes
      { ...ok, nonce: "😀".repeat(9) } // 18 UTF-16 units, 36 bytes
    ])
  })
})

describe("Resume, soundboard and channel info commands", () => {
  it("Resume d is token, session_id, seq", () => {
    const resume = { token: "t", session_id: "abc", seq: 1337 }
    expect(accept(ResumeData, resume)).toEqual(resume)
    expect(accept(ResumeData, { ...resume, seq: null }).seq).toBe(null)
    rejectAll(ResumeData, [{ ...resume, seq: "1337" }, { token: "t", seq: 1 }])
  })

  it("op 31 needs a non-empty guild list", () => {
    expect(accept(RequestSoundboardSoundsData, { guild_ids: [guildId, "2"] }).guild_ids).toEqual([guildId, "2"])
    rejectAll(RequestSoundboardSoundsData, [{ guild_ids: [] }, { guild_ids: guildId }, {}])
  })

  it("op 43 asks for status / voice_start_time only", () => {
    const request = { guild_id: guildId, fields: ["status", "voice_start_time"] }
    expect(accept(RequestChannelInfoData, request)).toEqual(request)
    rejectAll(RequestChannelInfoData, [{ guild_id: guildId, fields: ["topic"] }, { fields: ["status"] }])
  })
})

describe("READY (§1.6)", () => {
  const ready = {
    v: 10,
    user_settings: {},
    user: { id: "80351110224678912", username: "Nelly", discriminator: "0", global_name: null, avatar: null, bot: true, flags: 0 },
    guilds: [{ id: guildId, unavailable: true }, { id: "2", unavailable: true }],
    session_id: "f0a9e3bd6e38ed1c0b1e1a2dcf3b2a4c",
    resume_gateway_url: "wss://gateway-us-east1-b.discord.gg",
    shard: [0, 2],
    application: { id: "80351110224678912", flags: 0 },
    _trace: ["[\"gateway-prd\"]"]
  }

  it("accepts a documented READY with extra keys, dropping what the runtime does not read", () => {
    const decoded = accept(ReadyData, ready)
    expect(decoded.session_id).toBe(ready.session_id)
    expect(decoded.resume_gateway_url).toBe(ready.resume_gateway_url)
    expect(decoded.guilds.map((g) => g.id)).toEqual([guildId, "2"])
    expect(decoded.shard).toEqual([0, 2])
    expect("_trace" in decoded).toBe(false)
  })

  it("normalises integer ids (ETF) to strings", () => {
    const decoded = accept(ReadyData, { ...ready, user: { id: 80351110224678912n, username: "Nelly" }, guilds: [{ id: 2 }] })
    expect(decoded.user.id).toBe("80351110224678912")
    expect(decoded.guilds).toEqual([{ id: "2" }])
  })

  it("refuses a READY with a broken shape", () => {
    const { session_id: _session, ...noSession } = ready
    const { application: _application, ...noApplication } = ready
    rejectAll(ReadyData, [
      noSession,
      noApplication,
      { ...ready, resume_gateway_url: null },
      { ...ready, guilds: { id: guildId } },
      { ...ready, guilds: [{ unavailable: true }] },
      { ...ready, user: { username: "Nelly" } },
      { ...ready, shard: [2, 2] },
      { ...ready, v: "10" },
      { broken: true }
    ])
  })

  it("RESUMED d is tolerated whatever it is", () => {
    for (const d of [{ _trace: ["x"] }, null, undefined, {}]) expect(accept(ResumedData, d)).toEqual(d)
  })
})

describe("guild availability, member chunks, RATE_LIMITED (§6.1, §3)", () => {
  it("GUILD_CREATE: an outage stub and a full guild both decode to what the runtime needs", () => {
    expect(accept(GuildCreateData, { id: guildId, unavailable: true })).toEqual({ id: guildId, unavailable: true })
    const full = { id: guildId, name: "x", unavailable: false, member_count: 42, members: [], channels: [], large: false }
    expect(accept(GuildCreateData, full)).toEqual({ id: guildId, unavailable: false, member_count: 42 })
    rejectAll(GuildCreateData, [{ name: "x" }, { id: guildId, member_count: -1 }, { id: guildId, unavailable: "no" }])
  })

  it("GUILD_DELETE: unavailable is kept when present and absent otherwise", () => {
    expect(accept(GuildDeleteData, { id: guildId, unavailable: true })).toEqual({ id: guildId, unavailable: true })
    expect(accept(GuildDeleteData, { id: guildId })).toEqual({ id: guildId })
    rejectAll(GuildDeleteData, [{ unavailable: true }, { id: guildId, unavailable: "yes" }])
  })

  it("GUILD_MEMBERS_CHUNK: members stay raw; 0 ≤ chunk_index < chunk_count", () => {
    const chunk = {
      guild_id: guildId,
      members: [{ user: { id: "1" }, roles: [] }],
      chunk_index: 1,
      chunk_count: 3,
      not_found: ["5"],
      nonce: "n1"
    }
    expect(accept(GuildMembersChunkData, chunk)).toEqual(chunk)
    rejectAll(GuildMembersChunkData, [
      { ...chunk, chunk_index: 3 },
      { ...chunk, chunk_index: -1 },
      { ...chunk, chunk_count: 0, chunk_index: 0 },
      { ...chunk, members: null },
      { ...chunk, nonce: 5 }
    ])
  })

  it("item 43: RATE_LIMITED carries opcode, fractional retry_after seconds and a loose meta", () => {
    const limited = { opcode: 8, retry_after: 27.48, meta: { guild_id: guildId, nonce: "n1" } }
    expect(accept(RateLimitedData, limited)).toEqual(limited)
    expect(accept(RateLimitedData, { opcode: 99, retry_after: 1, meta: { other: "x" } })).toEqual({ opcode: 99, retry_after: 1, meta: {} })
    rejectAll(RateLimitedData, [
      { ...limited, retry_after: "27" },
      { ...limited, retry_after: -1 },
      { ...limited, retry_after: Number.POSITIVE_INFINITY },
      { opcode: 8, retry_after: 1 }
    ])
  })
})
