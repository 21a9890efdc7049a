/**
 * Gateway configuration (PROTOCOL.md §1.1–§1.2, §1.5, §5, §7; checklist items 2, 12, 14, 47): options in
 * code checked by `validateOptions`, and the environment read by `config`. Every bad value must fail before
 * any connection with a message that names the option or variable and says what to fix — and never
 * quotes the token.
 */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Redacted, Result } from "effect"
import {
  config,
  DefaultGuildWaitTimeout,
  GatewayConfigError,
  type GatewayOptions,
  parseIntents,
  parseShards,
  validateOptions
} from "../src/GatewayConfig.ts"
import { IntentBits, Intents } from "../src/protocol/Intents.ts"
import { cluster, fixed, input, recommended } from "../src/ShardStrategy.ts"

const Token = "MTAwMDAwMDAwMDAwMDAwMDAx.Gx1y2z.secret-part"
const base: GatewayOptions = { token: Redacted.make(Token), intents: Intents.from("Guilds", "GuildMessages") }

/** The problems of invalid options, as [option, fix] pairs. */
const problemsOf = (options: GatewayOptions) =>
  Effect.map(Effect.flip(validateOptions(options)), (error) => {
    expect(error).toBeInstanceOf(GatewayConfigError)
    expect(error.message).not.toContain(Token)
    return error.problems.map((p) => [p.option, p.fix] as const)
  })

const fixFor = (options: GatewayOptions, option: string) =>
  Effect.map(problemsOf(options), (problems) => {
    const found = problems.find(([name]) => name === option)
    expect(found, `expected a problem with ${option}, got ${JSON.stringify(problems)}`).toBeDefined()
    return found![1]
  })

describe("validateOptions", () => {
  it.effect("minimal options get the defaults: recommended shards, no compression, discord.com/api, 15 s guild wait, no watchdog", () =>
    Effect.gen(function*() {
      const validated = yield* validateOptions(base)
      expect(validated.shards).toBe(recommended)
      expect(validated.compression).toBe("none")
      expect(validated.apiBaseUrl).toBe("https://discord.com/api")
      expect(Duration.toMillis(validated.guildWaitTimeout)).toBe(15_000)
      expect(validated.guildWaitTimeout).toEqual(DefaultGuildWaitTimeout)
      expect(validated.staleAfter).toBeNull()
      expect("largeThreshold" in validated).toBe(false)
      expect("presence" in validated).toBe(false)
      expect("gatewayUrl" in validated).toBe(false)
      expect(Redacted.value(validated.token)).toBe(Token)
    }))

  it.effect("items 12, 47: valid options are kept and normalised (URLs without trailing slash, durations decoded, presence decoded)", () =>
    Effect.gen(function*() {
      const strategy = cluster(0, 2)
      const validated = yield* validateOptions({
        ...base,
        shards: strategy,
        compression: "zlib-stream",
        largeThreshold: 250,
        presence: { since: null, activities: [{ name: "tests", type: 0 }], status: "idle", afk: false },
        apiBaseUrl: "http://127.0.0.1:8080/api/",
        gatewayUrl: "ws://127.0.0.1:9000/",
        guildWaitTimeout: "30 seconds",
        staleAfter: "5 minutes"
      })
      expect(validated.shards).toBe(strategy)
      expect(validated.compression).toBe("zlib-stream")
      expect(validated.largeThreshold).toBe(250)
      expect(validated.presence).toEqual({ since: null, activities: [{ name: "tests", type: 0 }], status: "idle", afk: false })
      expect(validated.apiBaseUrl).toBe("http://127.0.0.1:8080/api")
      expect(validated.gatewayUrl).toBe("ws://127.0.0.1:9000")
      expect(Duration.toMillis(validated.guildWaitTimeout)).toBe(30_000)
      expect(validated.staleAfter === null ? null : Duration.toMillis(validated.staleAfter)).toBe(300_000)
    }))

  it.effect("token: empty, a \"Bot \" prefix, whitespace, or not Redacted — each says what to do, never quoting it", () =>
    Effect.gen(function*() {
      expect(yield* fixFor({ ...base, token: Redacted.make("  ") }, "token")).toContain("empty")
      expect(yield* fixFor({ ...base, token: Redacted.make(`Bot ${Token}`) }, "token")).toContain("give the bare token")
      expect(yield* fixFor({ ...base, token: Redacted.make(`${Token}\n`) }, "token")).toContain("whitespace")
      const notRedacted = { ...base, token: Token as unknown as Redacted.Redacted<string> }
      expect(yield* fixFor(notRedacted, "token")).toContain("Redacted.make")
    }))

  it.effect("intents: undocumented bits, negatives and fractions are refused before connecting (close 4013 otherwise)", () =>
    Effect.gen(function*() {
      expect(yield* fixFor({ ...base, intents: 1 << 17 }, "intents")).toContain("undocumented bit(s) 17")
      expect(yield* fixFor({ ...base, intents: -1 }, "intents")).toContain("must not be negative")
      expect(yield* fixFor({ ...base, intents: 1.5 }, "intents")).toContain("non-negative integer")
      expect((yield* validateOptions({ ...base, intents: 0 })).intents).toBe(0)
    }))

  it.effect("item 12: largeThreshold must be an integer in 50–250", () =>
    Effect.gen(function*() {
      for (const bad of [49, 251, 100.5]) {
        expect(yield* fixFor({ ...base, largeThreshold: bad }, "largeThreshold")).toContain("from 50 to 250")
      }
      expect((yield* validateOptions({ ...base, largeThreshold: 50 })).largeThreshold).toBe(50)
    }))

  it.effect("item 47: presence is checked with the op 3 schema (status values, activity keys)", () =>
    Effect.gen(function*() {
      const badStatus = { since: null, activities: [], status: "away", afk: false } as unknown as GatewayOptions["presence"]
      expect(yield* fixFor({ ...base, presence: badStatus }, "presence")).toContain("status")
      const badActivity = {
        since: null,
        activities: [{ name: "x", type: 0, details: "not allowed for bots" }],
        status: "online",
        afk: false
      } as unknown as GatewayOptions["presence"]
      expect(yield* fixFor({ ...base, presence: badActivity }, "presence")).toContain("details")
    }))

  it.effect("URLs: apiBaseUrl absolute http(s) without version; gatewayUrl ws(s)", () =>
    Effect.gen(function*() {
      expect(yield* fixFor({ ...base, apiBaseUrl: "discord.com/api" }, "apiBaseUrl")).toContain("not an absolute URL")
      expect(yield* fixFor({ ...base, apiBaseUrl: "ftp://discord.com/api" }, "apiBaseUrl")).toContain("https or http")
      expect(yield* fixFor({ ...base, apiBaseUrl: "https://discord.com/api/v10" }, "apiBaseUrl")).toContain("without it")
      expect(yield* fixFor({ ...base, gatewayUrl: "https://gateway.discord.gg" }, "gatewayUrl")).toContain("wss or ws")
      expect(yield* fixFor({ ...base, gatewayUrl: "gateway" }, "gatewayUrl")).toContain("not an absolute URL")
    }))

  it.effect("items 2, 14: compression is one of none / zlib-stream / zstd-stream", () =>
    Effect.gen(function*() {
      const bad = { ...base, compression: "gzip" } as unknown as GatewayOptions
      expect(yield* fixFor(bad, "compression")).toContain("\"zlib-stream\"")
      expect((yield* validateOptions({ ...base, compression: "zstd-stream" })).compression).toBe("zstd-stream") // Node 24 has zstd
    }))

  it.effect("durations: guildWaitTimeout finite and ≥ 0; staleAfter > 0 or null", () =>
    Effect.gen(function*() {
      expect(yield* fixFor({ ...base, guildWaitTimeout: "-1 seconds" }, "guildWaitTimeout")).toContain("finite")
      expect(yield* fixFor({ ...base, guildWaitTimeout: "Infinity" }, "guildWaitTimeout")).toContain("finite")
      expect(yield* fixFor({ ...base, staleAfter: 0 }, "staleAfter")).toContain("null to turn the watchdog off")
      expect(yield* fixFor({ ...base, guildWaitTimeout: "soon" as Duration.Input }, "guildWaitTimeout")).toContain("not a duration")
      expect((yield* validateOptions({ ...base, staleAfter: null })).staleAfter).toBeNull()
      expect(Duration.toMillis((yield* validateOptions({ ...base, guildWaitTimeout: 0 })).guildWaitTimeout)).toBe(0)
    }))

  it.effect("shards must be a strategy", () =>
    Effect.gen(function*() {
      const bad = { ...base, shards: 16 } as unknown as GatewayOptions
      expect(yield* fixFor(bad, "shards")).toContain("ShardStrategy")
    }))

  it.effect("every problem is reported at once, in one error whose message lists them", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(validateOptions({
        ...base,
        token: Redacted.make(""),
        intents: 1 << 30,
        largeThreshold: 10,
        apiBaseUrl: "nope"
      }))
      expect(error.problems.map((p) => p.option)).toEqual(["token", "intents", "largeThreshold", "apiBaseUrl"])
      expect(error.message).toContain("invalid gateway options:")
      expect(error.message).toContain("  - largeThreshold:")
    }))
})

describe("config (environment)", () => {
  const Env = { DISCORD_TOKEN: Token, DISCORD_INTENTS: "Guilds,GuildMessages" }
  const read = (env: Record<string, string>) => config.parse(ConfigProvider.fromEnv({ env }))
  const errorOf = (env: Record<string, string>) =>
    Effect.map(Effect.flip(read(env)), (error) => {
      expect(error.message).not.toContain(Token.slice(-11))
      return error.message
    })

  it.effect("the minimum is DISCORD_TOKEN (Redacted) and DISCORD_INTENTS; the rest are left to the defaults", () =>
    Effect.gen(function*() {
      const options = yield* read(Env)
      expect(Redacted.isRedacted(options.token)).toBe(true)
      expect(String(options.token)).not.toContain(Token)
      expect(Redacted.value(options.token)).toBe(Token)
      expect(options.intents).toBe(IntentBits.Guilds | IntentBits.GuildMessages)
      expect(options.shards).toBe(recommended)
      expect(Object.keys(options).sort()).toEqual(["intents", "shards", "token"])
      // and they pass validateOptions
      expect((yield* validateOptions(options)).compression).toBe("none")
    }))

  it.effect("every variable is read", () =>
    Effect.gen(function*() {
      const options = yield* read({
        ...Env,
        DISCORD_SHARDS: "16:0-3,8",
        DISCORD_COMPRESSION: "zlib-stream",
        DISCORD_LARGE_THRESHOLD: "100",
        DISCORD_PRESENCE: "{\"status\":\"dnd\",\"activities\":[{\"name\":\"tests\",\"type\":3}]}",
        DISCORD_API_URL: "http://localhost:8080/api",
        DISCORD_GATEWAY_URL: "ws://localhost:9000",
        DISCORD_GUILD_WAIT_TIMEOUT: "30 seconds",
        DISCORD_STALE_AFTER: "5 minutes"
      })
      expect(yield* options.shards!.resolve(input(1))).toEqual({ count: 16, ids: [0, 1, 2, 3, 8] })
      expect(options.compression).toBe("zlib-stream")
      expect(options.largeThreshold).toBe(100)
      expect(options.presence).toEqual({ since: null, activities: [{ name: "tests", type: 3 }], status: "dnd", afk: false })
      expect(options.apiBaseUrl).toBe("http://localhost:8080/api")
      expect(options.gatewayUrl).toBe("ws://localhost:9000")
      expect(Duration.toMillis(Duration.fromInputUnsafe(options.guildWaitTimeout!))).toBe(30_000)
      expect(Duration.toMillis(Duration.fromInputUnsafe(options.staleAfter!))).toBe(300_000)
      expect((yield* read({ ...Env, DISCORD_STALE_AFTER: "off" })).staleAfter).toBeNull()
    }))

  it.effect("works through ConfigProvider.fromUnknown and a ConfigProvider layer too", () =>
    Effect.gen(function*() {
      const fromUnknown = yield* config.parse(ConfigProvider.fromUnknown({ DISCORD_TOKEN: Token, DISCORD_INTENTS: "513" }))
      expect(fromUnknown.intents).toBe(513)
      const viaLayer = yield* Effect.provide(
        config,
        ConfigProvider.layer(ConfigProvider.fromEnv({ env: { ...Env, DISCORD_SHARDS: "4" } }))
      )
      expect(yield* viaLayer.shards!.resolve(input(1))).toEqual({ count: 4, ids: [0, 1, 2, 3] })
    }))

  it.effect("DISCORD_TOKEN: missing, empty or with a \"Bot \" prefix fails naming the variable, never quoting the token", () =>
    Effect.gen(function*() {
      expect(yield* errorOf({ DISCORD_INTENTS: "1" })).toContain("DISCORD_TOKEN is not set")
      expect(yield* errorOf({ ...Env, DISCORD_TOKEN: "" })).toContain("DISCORD_TOKEN is not set (or is empty)")
      expect(yield* errorOf({ ...Env, DISCORD_TOKEN: "   " })).toContain("DISCORD_TOKEN: the token is empty")
      const prefixed = yield* errorOf({ ...Env, DISCORD_TOKEN: `Bot ${Token}` })
      expect(prefixed).toContain("DISCORD_TOKEN: the token starts with \"Bot \"")
      expect(prefixed).not.toContain(Token)
    }))

  it.effect("DISCORD_INTENTS: a number or intent names (GuildMessages, GUILD_MESSAGES, guild_messages; , or |)", () =>
    Effect.gen(function*() {
      const expected = IntentBits.Guilds | IntentBits.GuildMessages | IntentBits.MessageContent
      for (const spelling of ["Guilds,GuildMessages,MessageContent", "GUILDS | GUILD_MESSAGES | MESSAGE_CONTENT", "guilds, guild_messages,message_content", String(expected)]) {
        expect((yield* read({ ...Env, DISCORD_INTENTS: spelling })).intents).toBe(expected)
      }
    }))

  it.effect("DISCORD_INTENTS: missing, unknown names or undocumented bits fail naming the variable and the fix", () =>
    Effect.gen(function*() {
      expect(yield* errorOf({ DISCORD_TOKEN: Token })).toContain("DISCORD_INTENTS is not set")
      const unknown = yield* errorOf({ ...Env, DISCORD_INTENTS: "Guilds,GuildMesages" })
      expect(unknown).toContain("DISCORD_INTENTS: unknown intent name(s) \"GuildMesages\"")
      expect(unknown).toContain("GuildMessages")
      expect(yield* errorOf({ ...Env, DISCORD_INTENTS: "131072" })).toContain("undocumented bit(s) 17")
      expect(yield* errorOf({ ...Env, DISCORD_INTENTS: "," })).toContain("comma list of intent names")
      const parsed = parseIntents("Guilds")
      expect(Result.isSuccess(parsed) && parsed.success).toBe(1)
    }))

  it.effect("DISCORD_SHARDS: recommended | <count> | <count>:<ids>; bad layouts fail before connecting", () =>
    Effect.gen(function*() {
      expect((yield* read({ ...Env, DISCORD_SHARDS: "recommended" })).shards).toBe(recommended)
      expect(yield* (yield* read({ ...Env, DISCORD_SHARDS: "8" })).shards!.resolve(input(1))).toEqual({ count: 8, ids: [0, 1, 2, 3, 4, 5, 6, 7] })
      expect(yield* errorOf({ ...Env, DISCORD_SHARDS: "8:8" })).toContain("DISCORD_SHARDS: shard id 8 is out of range for 8 shard(s)")
      expect(yield* errorOf({ ...Env, DISCORD_SHARDS: "8:1,1" })).toContain("listed twice")
      expect(yield* errorOf({ ...Env, DISCORD_SHARDS: "0" })).toContain("DISCORD_SHARDS: the shard count must be ≥ 1")
      expect(yield* errorOf({ ...Env, DISCORD_SHARDS: "auto" })).toContain("use \"recommended\", a shard count")
      expect(yield* errorOf({ ...Env, DISCORD_SHARDS: "8:3-1" })).toContain("backwards")
      expect(Result.isSuccess(parseShards(" 4 "))).toBe(true)
    }))

  it.effect("CLUSTER_ID / CLUSTER_COUNT / TOTAL_SHARDS give a cluster strategy; with DISCORD_SHARDS it is a conflict", () =>
    Effect.gen(function*() {
      const options = yield* read({ ...Env, CLUSTER_ID: "1", CLUSTER_COUNT: "2", TOTAL_SHARDS: "8" })
      expect(yield* options.shards!.resolve(input(1))).toEqual({ count: 8, ids: [4, 5, 6, 7] })
      const overRecommended = yield* read({ ...Env, CLUSTER_ID: "0", CLUSTER_COUNT: "2" })
      expect(yield* overRecommended.shards!.resolve(input(4))).toEqual({ count: 4, ids: [0, 1] })
      expect(yield* errorOf({ ...Env, CLUSTER_ID: "1", CLUSTER_COUNT: "2", DISCORD_SHARDS: "8" })).toContain("use one or the other")
      expect(yield* errorOf({ ...Env, CLUSTER_ID: "1" })).toContain("CLUSTER_COUNT is not")
      // a fixed strategy equal in behaviour to fixed(8) for TOTAL_SHARDS alone
      const total = yield* read({ ...Env, TOTAL_SHARDS: "8" })
      expect(yield* total.shards!.resolve(input(1))).toEqual(yield* fixed(8).resolve(input(1)))
    }))

  it.effect("DISCORD_COMPRESSION, DISCORD_LARGE_THRESHOLD: bad values name the variable and the allowed values", () =>
    Effect.gen(function*() {
      expect(yield* errorOf({ ...Env, DISCORD_COMPRESSION: "gzip" })).toContain("DISCORD_COMPRESSION: compression must be one of \"none\", \"zlib-stream\", \"zstd-stream\"")
      expect(yield* errorOf({ ...Env, DISCORD_LARGE_THRESHOLD: "300" })).toContain("DISCORD_LARGE_THRESHOLD: large_threshold must be an integer from 50 to 250")
      expect(yield* errorOf({ ...Env, DISCORD_LARGE_THRESHOLD: "lots" })).toContain("got \"lots\"")
    }))

  it.effect("DISCORD_API_URL, DISCORD_GATEWAY_URL: must parse, with the right scheme", () =>
    Effect.gen(function*() {
      expect(yield* errorOf({ ...Env, DISCORD_API_URL: "discord.com" })).toContain("DISCORD_API_URL: \"discord.com\" is not an absolute URL")
      expect(yield* errorOf({ ...Env, DISCORD_API_URL: "https://discord.com/api/v10" })).toContain("ends with an API version")
      expect(yield* errorOf({ ...Env, DISCORD_GATEWAY_URL: "https://gateway.discord.gg" })).toContain("DISCORD_GATEWAY_URL:")
    }))

  it.effect("DISCORD_PRESENCE: JSON with defaults for since/activities/afk; bad JSON or fields fail", () =>
    Effect.gen(function*() {
      expect((yield* read({ ...Env, DISCORD_PRESENCE: "{}" })).presence).toEqual({ since: null, activities: [], status: "online", afk: false })
      expect(yield* errorOf({ ...Env, DISCORD_PRESENCE: "{status: idle}" })).toContain("DISCORD_PRESENCE: not valid JSON")
      expect(yield* errorOf({ ...Env, DISCORD_PRESENCE: "[]" })).toContain("must be a JSON object")
      expect(yield* errorOf({ ...Env, DISCORD_PRESENCE: "{\"status\":\"away\"}" })).toContain("DISCORD_PRESENCE: presence must be")
    }))

  it.effect("DISCORD_GUILD_WAIT_TIMEOUT / DISCORD_STALE_AFTER: durations with a unit", () =>
    Effect.gen(function*() {
      expect(yield* errorOf({ ...Env, DISCORD_GUILD_WAIT_TIMEOUT: "30" })).toContain("DISCORD_GUILD_WAIT_TIMEOUT: \"30\" is not a duration")
      expect(yield* errorOf({ ...Env, DISCORD_STALE_AFTER: "0 seconds" })).toContain("Or \"off\"")
    }))

  it.effect("optional variables set to \"\" count as unset", () =>
    Effect.gen(function*() {
      const options = yield* read({ ...Env, DISCORD_SHARDS: "", DISCORD_COMPRESSION: "", DISCORD_LARGE_THRESHOLD: " ", DISCORD_API_URL: "" })
      expect(Object.keys(options).sort()).toEqual(["intents", "shards", "token"])
    }))
})
