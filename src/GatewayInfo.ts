/**
 * GatewayInfo: `GET /gateway/bot`, the bootstrap call before any connection (PROTOCOL.md §1.1, §3;
 * checklist item 1).
 *
 * The answer gives the gateway `url`, the recommended shard count and the `session_start_limit` (daily
 * identify budget and `max_concurrency`). It is fetched through effect's `HttpClient` with
 * `Authorization: Bot <token>` and decoded with Schema from Discord's snake_case into camelCase. It is not
 * cached: its values change as the bot joins guilds, so every `gatewayBot` asks again.
 *
 * Failures are typed. Transient ones (network, timeout, 408, 5xx, 429 honouring `Retry-After` /
 * `retry_after`) are retried with exponential backoff, a bounded number of times, then fail with
 * `GatewayInfoError`. 401 fails at once with `GatewayBotUnauthorized` (the token is wrong). Anything else
 * fails at once with `GatewayInfoError`. There is no fallback to one shard. The token is never put in an
 * error or a log line.
 *
 * `GatewayInfo.layerStatic(bot)` serves injected values instead (no request at all).
 */
import { Context, Duration, Effect, Layer, Redacted, Schedule, Schema } from "effect"
import { HttpClient, type HttpClientError, HttpClientRequest, type HttpClientResponse } from "effect/http"

/** The identify budget of `GET /gateway/bot` (PROTOCOL.md §3). */
export interface SessionStartLimit {
  /** Session starts (IDENTIFYs) allowed per reset period (normally 1000 per 24 h). */
  readonly total: number
  /** Session starts left in this period. */
  readonly remaining: number
  /** Milliseconds until `remaining` resets to `total`. */
  readonly resetAfterMs: number
  /** How many IDENTIFYs may start per 5 s (one per `shard_id % maxConcurrency` bucket). */
  readonly maxConcurrency: number
}

/** The decoded answer of `GET /gateway/bot`. */
export interface GatewayBot {
  /** The gateway base URL (e.g. `wss://gateway.discord.gg`), without query. */
  readonly url: string
  /** The recommended shard count. */
  readonly shards: number
  readonly sessionStartLimit: SessionStartLimit
}

const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))

/** `session_start_limit` as Discord sends it, decoded to `SessionStartLimit`. */
export const SessionStartLimitFromJson = Schema.Struct({
  total: NonNegativeInt,
  remaining: NonNegativeInt,
  resetAfterMs: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0)),
  maxConcurrency: PositiveInt
}).pipe(Schema.encodeKeys({ resetAfterMs: "reset_after", maxConcurrency: "max_concurrency" }))

/** The `GET /gateway/bot` body as Discord sends it (snake_case), decoded to `GatewayBot`. Unknown keys are dropped. */
export const GatewayBotFromJson = Schema.Struct({
  url: Schema.NonEmptyString,
  shards: PositiveInt,
  sessionStartLimit: SessionStartLimitFromJson
}).pipe(Schema.encodeKeys({ sessionStartLimit: "session_start_limit" }))

const decodeGatewayBot = Schema.decodeUnknownEffect(GatewayBotFromJson)

/** 401 from `GET /gateway/bot`: the token is not valid. Not retried. */
export class GatewayBotUnauthorized extends Schema.TaggedError<GatewayBotUnauthorized>()("GatewayBotUnauthorized", {}) {
  override get message() {
    return "GET /gateway/bot answered 401 Unauthorized: the bot token is wrong, revoked or was reset. Check DISCORD_TOKEN (the token from the Developer Portal, without a \"Bot \" prefix)."
  }
}

/** `GET /gateway/bot` failed for another reason, or kept failing transiently until the retries ran out. */
export class GatewayInfoError extends Schema.TaggedError<GatewayInfoError>()("GatewayInfoError", {
  /** The HTTP status of the (last) answer; absent when there was none (network, timeout, bad URL). */
  status: Schema.optionalKey(Schema.Int),
  detail: Schema.String
}) {
  override get message() {
    return `GET /gateway/bot failed${this.status === undefined ? "" : ` with ${this.status}`}: ${this.detail}`
  }
}

/** Every way `gatewayBot` can fail. */
export type GatewayInfoFailure = GatewayBotUnauthorized | GatewayInfoError

export interface GatewayInfoOptions {
  /** The bot token, without the `Bot ` prefix. */
  readonly token: Redacted.Redacted<string>
  /** The REST API base, without version. Default `https://discord.com/api`. */
  readonly apiBaseUrl?: string | undefined
  /** Retries after the first attempt for transient failures. Default 5. */
  readonly retries?: number | undefined
  /** The first backoff delay; each retry doubles it. Default 1 s. */
  readonly retryBaseDelay?: Duration.Input | undefined
  /** The deadline of one attempt; a request without an answer by then counts as transient. Default 10 s. */
  readonly requestTimeout?: Duration.Input | undefined
  /** A 429 asking to wait longer than this fails at once instead of waiting. Default 60 s. */
  readonly maxRetryAfter?: Duration.Input | undefined
}

export const DefaultApiBaseUrl = "https://discord.com/api"

/** A failure worth another attempt; `retryAfterMs` is the server's minimum wait (429). Internal. */
interface Transient {
  readonly _tag: "Transient"
  readonly status: number | undefined
  readonly detail: string
  readonly retryAfterMs: number | undefined
}

type AttemptError = Transient | GatewayInfoFailure

const transient = (status: number | undefined, detail: string, retryAfterMs?: number): Transient => ({
  _tag: "Transient",
  status,
  detail,
  retryAfterMs
})

const permanent = (status: number | undefined, detail: string): GatewayInfoError =>
  status === undefined ? new GatewayInfoError({ detail }) : new GatewayInfoError({ status, detail })

const truncate = (text: string, max = 200): string => (text.length <= max ? text : `${text.slice(0, max)}…`)

/** The body of a non-200 answer, as JSON when it is JSON; never fails. */
const readErrorBody = (response: HttpClientResponse.HttpClientResponse) =>
  response.text.pipe(
    Effect.map((text): { readonly text: string; readonly json: unknown } => {
      try {
        return { text, json: JSON.parse(text) }
      } catch {
        return { text, json: undefined }
      }
    }),
    Effect.orElseSucceed(() => ({ text: "", json: undefined as unknown }))
  )

const bodyMessage = (body: { readonly text: string; readonly json: unknown }): string => {
  const json = body.json
  if (typeof json === "object" && json !== null && "message" in json && typeof json.message === "string") {
    return json.message
  }
  return truncate(body.text.trim())
}

/** Seconds → ms from the `Retry-After` header (seconds) or the body's `retry_after` (float seconds). */
const retryAfterMsOf = (
  response: HttpClientResponse.HttpClientResponse,
  json: unknown
): number | undefined => {
  let seconds: number | undefined
  if (typeof json === "object" && json !== null && "retry_after" in json && typeof json.retry_after === "number") {
    seconds = json.retry_after
  }
  const header = response.headers["retry-after"]
  if (header !== undefined && /^\s*\d+(\.\d+)?\s*$/.test(header)) {
    const fromHeader = Number(header)
    seconds = seconds === undefined ? fromHeader : Math.max(seconds, fromHeader)
  }
  return seconds === undefined || !Number.isFinite(seconds) || seconds < 0 ? undefined : Math.ceil(seconds * 1000)
}

const describeClientError = (error: HttpClientError.HttpClientError): Transient | GatewayInfoError => {
  const reason = error.reason
  switch (reason._tag) {
    case "TransportError":
      return transient(undefined, `network error: ${reason.description ?? describeCause(reason.cause)}`)
    case "InvalidUrlError":
      return permanent(
        undefined,
        `the request URL is not valid: check apiBaseUrl / DISCORD_API_URL (an absolute http(s) URL such as ${DefaultApiBaseUrl}).`
      )
    default:
      return permanent(undefined, `${reason._tag}: ${truncate(reason.message)}`)
  }
}

const describeCause = (cause: unknown): string =>
  cause instanceof Error ? truncate(cause.message) : cause === undefined ? "no detail" : truncate(String(cause))

/**
 * The `GET /gateway/bot` effect: one request per call, retried as described in the module comment.
 * Exposed for the layer and for tests; most code uses `GatewayInfo.layer`.
 */
export const makeGatewayBot = (
  client: HttpClient.HttpClient,
  options: GatewayInfoOptions
): Effect.Effect<GatewayBot, GatewayInfoFailure> => {
  const base = (options.apiBaseUrl ?? DefaultApiBaseUrl).replace(/\/+$/, "")
  const retries = Math.max(0, Math.floor(options.retries ?? 5))
  const timeout = options.requestTimeout ?? "10 seconds"
  const maxRetryAfterMs = Duration.toMillis(Duration.fromInputUnsafe(options.maxRetryAfter ?? "60 seconds"))
  const token = options.token

  const classify = (
    response: HttpClientResponse.HttpClientResponse
  ): Effect.Effect<GatewayBot, AttemptError> => {
    const status = response.status
    if (status >= 200 && status < 300) {
      return response.json.pipe(
        Effect.mapError(() => permanent(status, "the answer is not JSON: is apiBaseUrl / DISCORD_API_URL Discord's API?")),
        Effect.flatMap((json) =>
          Effect.mapError(decodeGatewayBot(json), (error) =>
            permanent(status, `the answer does not have the documented shape: ${truncate(error.message, 400)}`)
          )
        )
      )
    }
    if (status === 401) return Effect.fail(new GatewayBotUnauthorized())
    return Effect.flatMap(readErrorBody(response), (body): Effect.Effect<never, AttemptError> => {
      const message = bodyMessage(body)
      if (status === 429) {
        const retryAfterMs = retryAfterMsOf(response, body.json)
        if (retryAfterMs !== undefined && retryAfterMs > maxRetryAfterMs) {
          return Effect.fail(permanent(
            status,
            `rate limited for ${retryAfterMs / 1000} s, longer than the ${maxRetryAfterMs / 1000} s this client waits: another process may be flooding the API with this token, or the IP is banned. ${message}`
          ))
        }
        return Effect.fail(transient(status, `rate limited${message === "" ? "" : `: ${message}`}`, retryAfterMs))
      }
      if (status === 408 || status >= 500) {
        return Effect.fail(transient(status, message === "" ? "server error" : message))
      }
      const hint = status === 404
        ? " Check apiBaseUrl / DISCORD_API_URL: it must be the API base without version (e.g. https://discord.com/api)."
        : status === 403
        ? " The token may lack access, or the request was blocked."
        : ""
      return Effect.fail(permanent(status, `${message === "" ? "unexpected answer" : message}.${hint}`))
    })
  }

  const attempt: Effect.Effect<GatewayBot, AttemptError> = Effect.suspend(() => {
    const request = HttpClientRequest.get(`${base}/v10/gateway/bot`).pipe(
      HttpClientRequest.setHeader("Authorization", `Bot ${Redacted.value(token)}`),
      HttpClientRequest.acceptJson
    )
    return client.execute(request).pipe(
      Effect.mapError(describeClientError),
      Effect.flatMap(classify),
      // covers the whole attempt: the answer and reading its body
      Effect.timeoutOrElse({
        duration: timeout,
        orElse: () => Effect.fail(transient(undefined, `no answer within ${Duration.format(Duration.fromInputUnsafe(timeout))}`))
      })
    )
  }).pipe(
    Effect.tapError((error) =>
      error._tag === "Transient"
        ? Effect.logWarning(`GET /gateway/bot: ${error.status ?? "no answer"} (${error.detail}); will retry if attempts remain`)
        : Effect.void
    )
  )

  const backoff = Schedule.exponential(options.retryBaseDelay ?? "1 second", 2).pipe(
    Schedule.setInputType<AttemptError>(),
    Schedule.modifyDelay(({ duration, input }) =>
      Effect.succeed(
        input._tag === "Transient" && input.retryAfterMs !== undefined
          ? Duration.max(duration, Duration.millis(input.retryAfterMs))
          : duration
      )
    ),
    Schedule.upTo({ times: retries })
  )

  return attempt.pipe(
    Effect.retry({ schedule: backoff, while: (error) => error._tag === "Transient" }),
    Effect.catchIf(
      (error): error is Transient => error._tag === "Transient",
      (error) =>
        Effect.fail(permanent(
          error.status,
          `${error.detail} (gave up after ${retries + 1} attempt${retries === 0 ? "" : "s"})`
        ))
    )
  )
}

/** `GET /gateway/bot` as a service: the Gateway asks it before connecting and before resharding. */
export class GatewayInfo extends Context.Service<GatewayInfo, {
  /** Fetches `/gateway/bot` now (never cached). */
  readonly gatewayBot: Effect.Effect<GatewayBot, GatewayInfoFailure>
}>()("effect-discord-gateway/GatewayInfo") {
  /** Asks Discord (or `apiBaseUrl`) through the `HttpClient` in context. */
  static readonly layer = (options: GatewayInfoOptions): Layer.Layer<GatewayInfo, never, HttpClient.HttpClient> =>
    Layer.effect(
      GatewayInfo,
      Effect.map(HttpClient.HttpClient, (client) => GatewayInfo.of({ gatewayBot: makeGatewayBot(client, options) }))
    )

  /** Serves `bot` as is, with no request (url and shards injected by configuration or a test). */
  static readonly layerStatic = (bot: GatewayBot): Layer.Layer<GatewayInfo> =>
    Layer.succeed(GatewayInfo, GatewayInfo.of({ gatewayBot: Effect.succeed(bot) }))
}

/** The recommended shard count (`shards` of a fresh `/gateway/bot`), e.g. for `StrategyInput.recommended`. */
export const recommendedShards: Effect.Effect<number, GatewayInfoFailure, GatewayInfo> = GatewayInfo.use((info) =>
  Effect.map(info.gatewayBot, (bot) => bot.shards)
)
