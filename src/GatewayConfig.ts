/**
 * Gateway configuration: the options of a multi-shard Gateway, their validation, and reading them from the
 * environment with effect `Config` (PROTOCOL.md §1.1–§1.2, §1.5, §5, §7; checklist items 1, 2, 12, 14, 47).
 *
 * Bad configuration fails before any connection, with a message that says what to fix:
 * - `validateOptions` checks options given in code (token shape, intents bits, `large_threshold` 50–250,
 *   presence per §6.2, URLs, compression, durations) and returns them normalised, defaults filled in;
 *   every problem is reported at once in one `GatewayConfigError`.
 * - `config` reads DISCORD_TOKEN (Redacted), DISCORD_INTENTS, DISCORD_SHARDS, CLUSTER_ID / CLUSTER_COUNT /
 *   TOTAL_SHARDS, DISCORD_COMPRESSION, DISCORD_LARGE_THRESHOLD, DISCORD_PRESENCE, DISCORD_API_URL,
 *   DISCORD_GATEWAY_URL, DISCORD_GUILD_WAIT_TIMEOUT and DISCORD_STALE_AFTER; a bad value fails with a
 *   `ConfigError` naming the variable and the fix. Optional variables set to "" count as unset.
 *
 * The token is never copied into an error or a message.
 */
import * as zlib from "node:zlib"
import { Config, Duration, Effect, Option, Redacted, Result, Schema, SchemaIssue } from "effect"
import { DefaultApiBaseUrl } from "./GatewayInfo.ts"
import { IntentBits, type IntentName, validateIntents } from "./protocol/Intents.ts"
import { PresenceUpdateData } from "./protocol/Payloads.ts"
import { checkLayout, fixed, fromEnvIfSet, recommended, type ShardStrategy } from "./ShardStrategy.ts"
import type { Compression } from "./transport/GatewayUrl.ts"

/** How a Gateway is configured in code (or read by `config`). */
export interface GatewayOptions {
  /** The bot token from the Developer Portal, without a `Bot ` prefix. */
  readonly token: Redacted.Redacted<string>
  /** The intents bitfield (`Intents.from("Guilds", …)`). */
  readonly intents: number
  /** Which shards this process runs. Default `ShardStrategy.recommended`. */
  readonly shards?: ShardStrategy | undefined
  /** Transport compression. Default `"none"`. */
  readonly compression?: Compression | undefined
  /** IDENTIFY `large_threshold`, 50–250 (Discord's default 50 when absent). */
  readonly largeThreshold?: number | undefined
  /** The presence sent in IDENTIFY. */
  readonly presence?: PresenceUpdateData | undefined
  /** The REST API base, without version. Default `https://discord.com/api`. */
  readonly apiBaseUrl?: string | undefined
  /** Overrides the gateway URL (`url` of /gateway/bot is then not used), e.g. a proxy or the simulator. */
  readonly gatewayUrl?: string | undefined
  /** How long a shard waits for the GUILD_CREATEs of READY's guilds before it counts as ready. Default 15 s. */
  readonly guildWaitTimeout?: Duration.Input | undefined
  /** Staleness watchdog: report a shard with no dispatch for this long. Default `null` (off). */
  readonly staleAfter?: Duration.Input | null | undefined
}

/** `GatewayOptions` after `validateOptions`: defaults filled in, durations decoded, URLs normalised. */
export interface ValidatedGatewayOptions extends GatewayOptions {
  readonly shards: ShardStrategy
  readonly compression: Compression
  /** Without trailing slash. */
  readonly apiBaseUrl: string
  readonly guildWaitTimeout: Duration.Duration
  readonly staleAfter: Duration.Duration | null
}

/** One thing wrong with the options: which option, and what to do about it. */
export const ConfigProblem = Schema.Struct({ option: Schema.String, fix: Schema.String })
export type ConfigProblem = typeof ConfigProblem.Type

/** The options cannot work; `problems` lists every one found, each saying what to fix. */
export class GatewayConfigError extends Schema.TaggedError<GatewayConfigError>()("GatewayConfigError", {
  problems: Schema.Array(ConfigProblem)
}) {
  override get message() {
    if (this.problems.length === 1) {
      const [only] = this.problems
      return `invalid gateway option ${only!.option}: ${only!.fix}`
    }
    return `invalid gateway options:\n${this.problems.map((p) => `  - ${p.option}: ${p.fix}`).join("\n")}`
  }
}

export const DefaultGuildWaitTimeout: Duration.Duration = Duration.seconds(15)

const compressions: ReadonlyArray<Compression> = ["none", "zlib-stream", "zstd-stream"]

// ---------------------------------------------------------------------------------------------------------------------
// Single checks, shared by `validateOptions` and `config`. Each returns the value or the fix (a string).
// ---------------------------------------------------------------------------------------------------------------------

/** The problem with a token, never quoting it. */
const tokenProblem = (token: string): string | undefined => {
  if (token.trim() === "") {
    return "the token is empty: set it to the bot token from the Developer Portal (Bot → Reset Token)."
  }
  if (/^bot\s/i.test(token)) {
    return "the token starts with \"Bot \": give the bare token; the \"Bot \" prefix is added where Discord wants it (REST), and IDENTIFY must not carry it."
  }
  if (/\s/.test(token)) {
    return "the token contains whitespace (a stray newline or space?): remove it."
  }
  return undefined
}

const largeThresholdProblem = (value: number): string | undefined =>
  Number.isSafeInteger(value) && value >= 50 && value <= 250
    ? undefined
    : `large_threshold must be an integer from 50 to 250 (Discord's IDENTIFY range), got ${value}.`

const compressionProblem = (value: string): string | undefined => {
  if (!compressions.includes(value as Compression)) {
    return `compression must be one of ${compressions.map((c) => `"${c}"`).join(", ")}, got ${JSON.stringify(value)}.`
  }
  if (value === "zstd-stream" && typeof (zlib as { createZstdDecompress?: unknown }).createZstdDecompress !== "function") {
    return `zstd-stream needs zlib.createZstdDecompress (Node ≥ 22.15); this is Node ${process.versions.node}. Use "zlib-stream" or upgrade Node.`
  }
  return undefined
}

/** Parses an absolute URL with one of `protocols`; returns it normalised (no trailing slash) or the fix. */
const parseUrl = (
  value: string,
  protocols: ReadonlyArray<string>,
  example: string
): Result.Result<string, string> => {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return Result.fail(`${JSON.stringify(value)} is not an absolute URL: use one like ${example}.`)
  }
  if (!protocols.includes(url.protocol)) {
    return Result.fail(
      `${JSON.stringify(value)} must use ${protocols.map((p) => p.replace(/:$/, "")).join(" or ")}, not ${url.protocol.replace(/:$/, "")}: use one like ${example}.`
    )
  }
  return Result.succeed(value.replace(/\/+$/, ""))
}

const parseApiBaseUrl = (value: string): Result.Result<string, string> =>
  Result.flatMap(parseUrl(value, ["https:", "http:"], DefaultApiBaseUrl), (url) =>
    /\/v\d+$/.test(new URL(url).pathname)
      ? Result.fail(`${JSON.stringify(value)} ends with an API version: give the base without it (e.g. ${DefaultApiBaseUrl}); /v10 is added.`)
      : Result.succeed(url))

const parseGatewayUrl = (value: string): Result.Result<string, string> =>
  parseUrl(value, ["wss:", "ws:"], "wss://gateway.discord.gg")

/** Decodes a duration; `positive` also refuses zero. */
const parseDuration = (value: Duration.Input, positive: boolean): Result.Result<Duration.Duration, string> => {
  const decoded = Duration.fromInput(value)
  if (Option.isNone(decoded)) {
    return Result.fail(`${JSON.stringify(value)} is not a duration: use one like "15 seconds" or "2 minutes".`)
  }
  const duration = decoded.value
  if (!Duration.isFinite(duration) || Duration.isNegative(duration) || (positive && Duration.isZero(duration))) {
    return Result.fail(
      `the duration must be finite and ${positive ? "above zero" : "zero or more"}, got ${Duration.format(duration)}.`
    )
  }
  return Result.succeed(duration)
}

const decodePresence = Schema.decodeUnknownResult(PresenceUpdateData)

const parsePresence = (value: unknown): Result.Result<PresenceUpdateData, string> =>
  Result.mapError(
    decodePresence(value),
    (error) =>
      `presence must be { since: number | null, activities: [{ name, type, state?, url? }], status: "online" | "dnd" | "idle" | "invisible" | "offline", afk: boolean }: ${error.message}`
  )

const isShardStrategy = (value: unknown): value is ShardStrategy =>
  typeof value === "object" && value !== null && typeof (value as { resolve?: unknown }).resolve === "function"

// ---------------------------------------------------------------------------------------------------------------------
// validateOptions
// ---------------------------------------------------------------------------------------------------------------------

/**
 * Checks options given in code and returns them normalised (defaults filled in, durations decoded, URLs
 * without trailing slash, presence decoded). Fails with every problem found in one `GatewayConfigError`.
 */
export const validateOptions = (
  options: GatewayOptions
): Effect.Effect<ValidatedGatewayOptions, GatewayConfigError> =>
  Effect.suspend(() => {
    const problems: Array<ConfigProblem> = []
    const problem = (option: string, fix: string) => {
      problems.push({ option, fix })
    }

    if (!Redacted.isRedacted(options.token)) {
      problem("token", "the token must be Redacted: pass Redacted.make(token), or read it with Config.Redacted(\"DISCORD_TOKEN\").")
    } else {
      const raw = Redacted.value(options.token)
      const fix = typeof raw === "string" ? tokenProblem(raw) : "the token must be a string."
      if (fix !== undefined) problem("token", fix)
    }

    const intents = validateIntents(options.intents)
    if (Result.isFailure(intents)) problem("intents", intents.failure.message)

    let shards: ShardStrategy = recommended
    if (options.shards !== undefined) {
      if (isShardStrategy(options.shards)) shards = options.shards
      else problem("shards", "shards must be a ShardStrategy: ShardStrategy.recommended, fixed(count, ids?), cluster(index, clusters) or custom(effect).")
    }

    const compression = options.compression ?? "none"
    const compressionFix = compressionProblem(compression)
    if (compressionFix !== undefined) problem("compression", compressionFix)

    if (options.largeThreshold !== undefined) {
      const fix = largeThresholdProblem(options.largeThreshold)
      if (fix !== undefined) problem("largeThreshold", fix)
    }

    /** An optional option: undefined when absent, else parsed — or reported, with `hint` after the fix. */
    const optional = <I, A>(
      option: string,
      value: I | undefined,
      parse: (value: I) => Result.Result<A, string>,
      hint = ""
    ): A | undefined => {
      if (value === undefined) return undefined
      const parsed = parse(value)
      if (Result.isSuccess(parsed)) return parsed.success
      problem(option, hint === "" ? parsed.failure : `${parsed.failure} ${hint}`)
      return undefined
    }

    const presence = optional("presence", options.presence, parsePresence)
    const apiBaseUrl = optional("apiBaseUrl", options.apiBaseUrl, parseApiBaseUrl) ?? DefaultApiBaseUrl
    const gatewayUrl = optional("gatewayUrl", options.gatewayUrl, parseGatewayUrl)
    const guildWaitTimeout = optional("guildWaitTimeout", options.guildWaitTimeout, (d) => parseDuration(d, false)) ??
      DefaultGuildWaitTimeout
    const staleAfter = optional(
      "staleAfter",
      options.staleAfter ?? undefined,
      (d) => parseDuration(d, true),
      "Use null to turn the watchdog off."
    ) ?? null

    if (problems.length > 0) return Effect.fail(new GatewayConfigError({ problems }))
    const validated: ValidatedGatewayOptions = {
      token: options.token,
      intents: options.intents,
      shards,
      compression,
      apiBaseUrl,
      guildWaitTimeout,
      staleAfter,
      ...(options.largeThreshold === undefined ? {} : { largeThreshold: options.largeThreshold }),
      ...(presence === undefined ? {} : { presence }),
      ...(gatewayUrl === undefined ? {} : { gatewayUrl })
    }
    return Effect.succeed(validated)
  })

// ---------------------------------------------------------------------------------------------------------------------
// Config (environment)
// ---------------------------------------------------------------------------------------------------------------------

/** A ConfigError pointing at variable `name`, whose message names it and says what to fix. */
const invalidVariable = (name: string, message: string): Config.ConfigError =>
  new Config.ConfigError(
    new Schema.SchemaError(new SchemaIssue.Pointer([name], new SchemaIssue.InvalidValue({ message })))
  )

/** An optional string variable; "" and whitespace count as unset. */
const optionalVariable = (name: string): Config.Config<Option.Option<string>> =>
  Config.String(name).pipe(
    Config.option,
    Config.map(Option.filter((value) => value.trim() !== "")),
    Config.map(Option.map((value) => value.trim()))
  )

/** An optional variable parsed by `parse` (value or fix); the fix is prefixed with the variable name. */
const parsedVariable = <A>(
  name: string,
  parse: (value: string) => Result.Result<A, string>
): Config.Config<Option.Option<A>> =>
  optionalVariable(name).pipe(
    Config.mapEffect((value) => {
      if (Option.isNone(value)) return Effect.succeedNone
      const parsed = parse(value.value)
      return Result.isSuccess(parsed)
        ? Effect.succeedSome(parsed.success)
        : Effect.fail(invalidVariable(name, `${name}: ${parsed.failure}`))
    })
  )

const tokenConfig: Config.Config<Redacted.Redacted<string>> = Config.Redacted("DISCORD_TOKEN").pipe(
  Config.option,
  Config.mapEffect((token) => {
    if (Option.isNone(token)) {
      return Effect.fail(
        invalidVariable(
          "DISCORD_TOKEN",
          "DISCORD_TOKEN is not set (or is empty): set it to the bot token from the Developer Portal (Bot → Reset Token), without a \"Bot \" prefix."
        )
      )
    }
    const fix = tokenProblem(Redacted.value(token.value))
    return fix === undefined
      ? Effect.succeed(token.value)
      : Effect.fail(invalidVariable("DISCORD_TOKEN", `DISCORD_TOKEN: ${fix}`))
  })
)

/** Intent names by their normalised spelling: "guildmessages" (from GuildMessages / GUILD_MESSAGES / guild_messages). */
const intentByKey: ReadonlyMap<string, IntentName> = new Map(
  (Object.keys(IntentBits) as Array<IntentName>).map((name) => [name.toLowerCase(), name])
)

/** Parses DISCORD_INTENTS: a number, or names separated by commas (or `|`). */
export const parseIntents = (value: string): Result.Result<number, string> => {
  const text = value.trim()
  let intents: number
  if (/^\d+$/.test(text)) {
    intents = Number(text)
  } else {
    intents = 0
    const unknown: Array<string> = []
    const names = text.split(/[,|]/).map((name) => name.trim()).filter((name) => name !== "")
    if (names.length === 0) {
      return Result.fail("give a number or a comma list of intent names, e.g. \"Guilds,GuildMessages\".")
    }
    for (const name of names) {
      const known = intentByKey.get(name.replace(/_/g, "").toLowerCase())
      if (known === undefined) unknown.push(name)
      else intents |= IntentBits[known]
    }
    if (unknown.length > 0) {
      return Result.fail(
        `unknown intent name(s) ${unknown.map((n) => JSON.stringify(n)).join(", ")}: use names from ${[...intentByKey.values()].join(", ")} (or a number).`
      )
    }
  }
  return Result.mapError(validateIntents(intents), (error) => error.message)
}

const intentsConfig: Config.Config<number> = parsedVariable("DISCORD_INTENTS", parseIntents).pipe(
  Config.mapEffect((intents) =>
    Effect.fromOption(intents).pipe(
      Effect.mapError(() =>
        invalidVariable(
          "DISCORD_INTENTS",
          "DISCORD_INTENTS is not set (or is empty): set it to a number or a comma list of intent names, e.g. \"Guilds,GuildMessages\"."
        )
      )
    )
  )
)

const shardsUsage =
  "use \"recommended\", a shard count (\"16\"), or a count and this process's ids (\"16:0,1,2,3\" or \"16:0-3\")."

/** Parses DISCORD_SHARDS: "recommended" | "<count>" | "<count>:<id>,<from>-<to>,…". */
export const parseShards = (value: string): Result.Result<ShardStrategy, string> => {
  const text = value.trim()
  if (text.toLowerCase() === "recommended") return Result.succeed(recommended)
  const match = /^(\d+)(?::(.*))?$/.exec(text)
  if (match === null) return Result.fail(`${JSON.stringify(value)} is not a shard layout: ${shardsUsage}`)
  const count = Number(match[1])
  if (!Number.isSafeInteger(count) || count < 1) return Result.fail(`the shard count must be ≥ 1, got ${match[1]}: ${shardsUsage}`)
  if (match[2] === undefined) return Result.succeed(fixed(count))
  const ids: Array<number> = []
  for (const part of match[2].split(",").map((p) => p.trim())) {
    const range = /^(\d+)(?:-(\d+))?$/.exec(part)
    if (range === null) return Result.fail(`${JSON.stringify(part)} is not a shard id or range: ${shardsUsage}`)
    const from = Number(range[1])
    const to = range[2] === undefined ? from : Number(range[2])
    if (to < from) return Result.fail(`the range ${part} is backwards: write it low-high.`)
    if (to - from > 100_000) return Result.fail(`the range ${part} is too large.`)
    for (let id = from; id <= to; id++) ids.push(id)
  }
  const layout = checkLayout({ count, ids })
  return Result.isFailure(layout) ? Result.fail(layout.failure.message) : Result.succeed(fixed(count, ids))
}

const shardsConfig: Config.Config<ShardStrategy> = Config.all({
  shards: parsedVariable("DISCORD_SHARDS", parseShards),
  cluster: fromEnvIfSet
}).pipe(
  Config.mapEffect(({ cluster, shards }) => {
    if (Option.isSome(shards) && Option.isSome(cluster)) {
      return Effect.fail(
        invalidVariable(
          "DISCORD_SHARDS",
          "DISCORD_SHARDS is set together with CLUSTER_ID / CLUSTER_COUNT / TOTAL_SHARDS: use one or the other (for clusters, set CLUSTER_ID, CLUSTER_COUNT and optionally TOTAL_SHARDS, and unset DISCORD_SHARDS)."
        )
      )
    }
    return Effect.succeed(Option.getOrElse(shards, () => Option.getOrElse(cluster, () => recommended)))
  })
)

const parseCompression = (value: string): Result.Result<Compression, string> => {
  const fix = compressionProblem(value)
  return fix === undefined ? Result.succeed(value as Compression) : Result.fail(fix)
}

const parseLargeThreshold = (value: string): Result.Result<number, string> => {
  const n = /^\d+$/.test(value) ? Number(value) : Number.NaN
  const fix = largeThresholdProblem(n)
  return fix === undefined ? Result.succeed(n) : Result.fail(fix.replace(/got NaN/, `got ${JSON.stringify(value)}`))
}

/** DISCORD_PRESENCE: JSON; `since` (null), `activities` ([]) and `afk` (false) may be left out, `status` defaults to online. */
const parsePresenceJson = (value: string): Result.Result<PresenceUpdateData, string> => {
  let json: unknown
  try {
    json = JSON.parse(value)
  } catch {
    return Result.fail("not valid JSON: give e.g. {\"status\":\"online\",\"activities\":[{\"name\":\"with Effect\",\"type\":0}]}.")
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return Result.fail("must be a JSON object, e.g. {\"status\":\"idle\"}.")
  }
  return parsePresence({ since: null, activities: [], status: "online", afk: false, ...json })
}

/** DISCORD_GUILD_WAIT_TIMEOUT / DISCORD_STALE_AFTER: "15 seconds", "2 minutes"…; STALE_AFTER also "off". */
const parseDurationText = (positive: boolean) => (value: string): Result.Result<Duration.Duration, string> =>
  parseDuration(value as Duration.Input, positive)

const staleAfterConfig: Config.Config<Option.Option<Duration.Duration | null>> = optionalVariable("DISCORD_STALE_AFTER").pipe(
  Config.mapEffect((value): Effect.Effect<Option.Option<Duration.Duration | null>, Config.ConfigError> => {
    if (Option.isNone(value)) return Effect.succeedNone
    if (value.value.toLowerCase() === "off") return Effect.succeedSome(null)
    const parsed = parseDurationText(true)(value.value)
    return Result.isSuccess(parsed)
      ? Effect.succeedSome(parsed.success)
      : Effect.fail(invalidVariable("DISCORD_STALE_AFTER", `DISCORD_STALE_AFTER: ${parsed.failure} Or "off".`))
  })
)

/**
 * The Gateway options from the environment (or any ConfigProvider):
 *
 * | variable | value | default |
 * |---|---|---|
 * | DISCORD_TOKEN | the bot token (Redacted), no `Bot ` prefix | required |
 * | DISCORD_INTENTS | a number, or names: `Guilds,GuildMessages` (also `GUILD_MESSAGES`) | required |
 * | DISCORD_SHARDS | `recommended`, `<count>`, or `<count>:<id>,<from>-<to>…` | recommended |
 * | CLUSTER_ID, CLUSTER_COUNT, TOTAL_SHARDS | cluster strategy (see `ShardStrategy.fromEnv`); not with DISCORD_SHARDS | — |
 * | DISCORD_COMPRESSION | `none`, `zlib-stream`, `zstd-stream` | none |
 * | DISCORD_LARGE_THRESHOLD | 50–250 | Discord's (50) |
 * | DISCORD_PRESENCE | JSON presence, e.g. `{"status":"idle","activities":[{"name":"x","type":0}]}` | none |
 * | DISCORD_API_URL | REST base without version | https://discord.com/api |
 * | DISCORD_GATEWAY_URL | gateway URL override (skips /gateway/bot's url) | none |
 * | DISCORD_GUILD_WAIT_TIMEOUT | a duration, e.g. `15 seconds` | 15 seconds |
 * | DISCORD_STALE_AFTER | a duration, or `off` | off |
 */
export const config: Config.Config<GatewayOptions> = Config.all({
  token: tokenConfig,
  intents: intentsConfig,
  shards: shardsConfig,
  compression: parsedVariable("DISCORD_COMPRESSION", parseCompression),
  largeThreshold: parsedVariable("DISCORD_LARGE_THRESHOLD", parseLargeThreshold),
  presence: parsedVariable("DISCORD_PRESENCE", parsePresenceJson),
  apiBaseUrl: parsedVariable("DISCORD_API_URL", parseApiBaseUrl),
  gatewayUrl: parsedVariable("DISCORD_GATEWAY_URL", parseGatewayUrl),
  guildWaitTimeout: parsedVariable("DISCORD_GUILD_WAIT_TIMEOUT", parseDurationText(false)),
  staleAfter: staleAfterConfig
}).pipe(
  Config.map((read): GatewayOptions => ({
    token: read.token,
    intents: read.intents,
    shards: read.shards,
    ...Option.match(read.compression, { onNone: () => ({}), onSome: (compression) => ({ compression }) }),
    ...Option.match(read.largeThreshold, { onNone: () => ({}), onSome: (largeThreshold) => ({ largeThreshold }) }),
    ...Option.match(read.presence, { onNone: () => ({}), onSome: (presence) => ({ presence }) }),
    ...Option.match(read.apiBaseUrl, { onNone: () => ({}), onSome: (apiBaseUrl) => ({ apiBaseUrl }) }),
    ...Option.match(read.gatewayUrl, { onNone: () => ({}), onSome: (gatewayUrl) => ({ gatewayUrl }) }),
    ...Option.match(read.guildWaitTimeout, { onNone: () => ({}), onSome: (guildWaitTimeout) => ({ guildWaitTimeout }) }),
    ...Option.match(read.staleAfter, { onNone: () => ({}), onSome: (staleAfter) => ({ staleAfter }) })
  }))
)
