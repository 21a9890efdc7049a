/**
 * GatewayInfo: GET /gateway/bot through effect's HttpClient (PROTOCOL.md §1.1, §3; checklist item 1),
 * against the simulator's REST endpoint under TestClock: decoding, 401, retries with backoff and
 * Retry-After, permanent failures, and the token kept out of errors and logs.
 */
import { describe, expect, it } from "@effect/vitest"
import { type Duration, Effect, Fiber, Layer, Logger, Redacted, Schema } from "effect"
import { HttpClient, HttpClientResponse } from "effect/http"
import { TestClock } from "effect/testing"
import {
  type GatewayBot,
  GatewayBotFromJson,
  GatewayBotUnauthorized,
  GatewayInfo,
  GatewayInfoError,
  type GatewayInfoOptions,
  makeGatewayBot,
  recommendedShards
} from "../src/GatewayInfo.ts"
import { GatewaySimulator } from "../src/testing/GatewaySimulator.ts"
import * as SimulatorHttpClient from "../src/testing/SimulatorHttpClient.ts"
import { InjectedFailure, type SimulatorHttpClientOptions } from "../src/testing/SimulatorHttpClient.ts"

const Token = "simulated-token-abc.def"
const guilds = Array.from({ length: 2500 }, (_, i) => String((BigInt(i + 1) << 22n) + 81384788765712384n))

const simulator = GatewaySimulator.layer({ token: Token, guilds, maxConcurrency: 4 })
const options: GatewayInfoOptions = { token: Redacted.make(Token) }

/** Runs `f` with a simulator-backed client (its request log included) and the simulator. */
const withClient = <A, E>(
  httpOptions: SimulatorHttpClientOptions,
  f: (http: SimulatorHttpClient.SimulatorHttp, sim: GatewaySimulator["Service"]) => Effect.Effect<A, E>
) =>
  Effect.gen(function*() {
    const sim = yield* GatewaySimulator
    return yield* f(SimulatorHttpClient.make(sim, httpOptions), sim)
  }).pipe(Effect.provide(simulator))

/** Forks `effect`, lets virtual time run for `time`, and returns its exit. */
const runFor = <A, E>(effect: Effect.Effect<A, E>, time: Duration.Input) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(effect)
    yield* TestClock.adjust(time)
    return yield* Fiber.await(fiber)
  })

describe("GatewayInfo.layer over the simulator", () => {
  it.effect("item 1: GET /gateway/bot carries Authorization: Bot <token> and decodes url, shards, session_start_limit", () =>
    Effect.gen(function*() {
      const bot = yield* GatewayInfo.use((info) => info.gatewayBot)
      const sim = yield* GatewaySimulator
      const raw = yield* sim.gatewayBot
      expect(bot).toEqual({
        url: raw.url,
        shards: raw.shards,
        sessionStartLimit: {
          total: raw.session_start_limit.total,
          remaining: raw.session_start_limit.remaining,
          resetAfterMs: raw.session_start_limit.reset_after,
          maxConcurrency: 4
        }
      })
      expect(bot.shards).toBe(3) // 2500 guilds → ceil(2500 / 1000)
      const requests = yield* sim.restRequests
      expect(requests.map((r) => [r.path, r.authorized, r.status])).toEqual([["/gateway/bot", true, 200]])
    }).pipe(
      Effect.provide(
        GatewayInfo.layer(options).pipe(Layer.provide(SimulatorHttpClient.layer), Layer.provideMerge(simulator))
      )
    ))

  it.effect("every call asks again (not cached): a changed recommendation is seen", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      expect(yield* recommendedShards).toBe(3)
      yield* sim.setRecommendedShards(8)
      expect(yield* recommendedShards).toBe(8)
      expect((yield* sim.restRequests).length).toBe(2)
    }).pipe(
      Effect.provide(
        GatewayInfo.layer(options).pipe(Layer.provide(SimulatorHttpClient.layer), Layer.provideMerge(simulator))
      )
    ))

  it.effect("apiBaseUrl is used as the base (a trailing slash is tolerated)", () =>
    withClient({}, (http) =>
      Effect.gen(function*() {
        const bot = yield* makeGatewayBot(http.client, { ...options, apiBaseUrl: "https://proxy.example/discord/api/" })
        expect(bot.shards).toBe(3)
        expect((yield* http.requests).map((r) => [r.path, r.outcome])).toEqual([["/discord/api/v10/gateway/bot", 200]])
      })))

  it.effect("the simulator client answers 404 to any other path", () =>
    withClient({}, (http) =>
      Effect.gen(function*() {
        const response = yield* http.client.get("https://discord.com/api/v10/users/@me")
        expect(response.status).toBe(404)
        const post = yield* http.client.post("https://discord.com/api/v10/gateway/bot")
        expect(post.status).toBe(405)
        expect((yield* http.requests).map((r) => r.outcome)).toEqual([404, 405])
      })))
})

describe("GatewayInfo failures", () => {
  it.effect("401 fails at once with GatewayBotUnauthorized (no retry); the message says to check DISCORD_TOKEN", () =>
    withClient({}, (http, sim) =>
      Effect.gen(function*() {
        const exit = yield* runFor(makeGatewayBot(http.client, { token: Redacted.make("wrong-token") }), "10 minutes")
        expect(exit._tag).toBe("Failure")
        const error = yield* Effect.flip(exit)
        expect(error).toBeInstanceOf(GatewayBotUnauthorized)
        expect(error.message).toContain("DISCORD_TOKEN")
        expect(error.message).not.toContain("wrong-token")
        expect(JSON.stringify(error)).not.toContain("wrong-token")
        expect((yield* sim.restRequests).map((r) => [r.authorized, r.status])).toEqual([[false, 401]])
        expect((yield* http.requests).length).toBe(1)
      })))

  it.effect("503s are retried with exponential backoff (1 s, 2 s) and then succeed", () =>
    withClient({ failFirst: 2 }, (http) =>
      Effect.gen(function*() {
        const exit = yield* runFor(makeGatewayBot(http.client, options), "1 minute")
        expect(exit._tag).toBe("Success")
        const requests = yield* http.requests
        expect(requests.map((r) => [r.at, r.outcome])).toEqual([[0, 503], [1000, 503], [3000, 200]])
      })))

  it.effect("network errors, timeouts (a request that never answers) and 500/502/504/408 are transient", () =>
    withClient({
      failures: [
        InjectedFailure.network,
        InjectedFailure.hang,
        InjectedFailure.status(500),
        InjectedFailure.status(502),
        InjectedFailure.status(504)
      ]
    }, (http) =>
      Effect.gen(function*() {
        const exit = yield* runFor(makeGatewayBot(http.client, { ...options, requestTimeout: "10 seconds" }), "5 minutes")
        expect(exit._tag).toBe("Success")
        const requests = yield* http.requests
        // attempt 2 hangs for the 10 s timeout, then backoff 2 s → 13 s; then 4 s, 8 s, 16 s
        expect(requests.map((r) => [r.at, r.outcome])).toEqual([
          [0, "network"],
          [1000, "hang"],
          [13_000, 500],
          [17_000, 502],
          [25_000, 504],
          [41_000, 200]
        ])
      })))

  it.effect("408 is transient too", () =>
    withClient({ failures: [InjectedFailure.status(408)] }, (http) =>
      Effect.gen(function*() {
        const exit = yield* runFor(makeGatewayBot(http.client, options), "1 minute")
        expect(exit._tag).toBe("Success")
        expect((yield* http.requests).map((r) => r.outcome)).toEqual([408, 200])
      })))

  it.effect("429 honours retry_after from the body when it exceeds the backoff", () =>
    withClient({ failures: [InjectedFailure.status(429, { retryAfter: 2.5 })] }, (http) =>
      Effect.gen(function*() {
        const exit = yield* runFor(makeGatewayBot(http.client, options), "1 minute")
        expect(exit._tag).toBe("Success")
        expect((yield* http.requests).map((r) => [r.at, r.outcome])).toEqual([[0, 429], [2500, 200]])
      })))

  it.effect("429 honours the Retry-After header (seconds)", () =>
    withClient({ failures: [InjectedFailure.status(429, { retryAfterHeader: "7" })] }, (http) =>
      Effect.gen(function*() {
        const exit = yield* runFor(makeGatewayBot(http.client, options), "1 minute")
        expect(exit._tag).toBe("Success")
        expect((yield* http.requests).map((r) => [r.at, r.outcome])).toEqual([[0, 429], [7000, 200]])
      })))

  it.effect("a short retry_after never shortens the backoff", () =>
    withClient({ failures: [InjectedFailure.status(503), InjectedFailure.status(429, { retryAfter: 0.1 })] }, (http) =>
      Effect.gen(function*() {
        yield* runFor(makeGatewayBot(http.client, options), "1 minute")
        expect((yield* http.requests).map((r) => r.at)).toEqual([0, 1000, 3000])
      })))

  it.effect("429 asking for more than maxRetryAfter fails at once with GatewayInfoError", () =>
    withClient({ failures: [InjectedFailure.status(429, { retryAfter: 3600 })] }, (http) =>
      Effect.gen(function*() {
        const exit = yield* runFor(makeGatewayBot(http.client, options), "1 minute")
        const error = yield* Effect.flip(exit)
        expect(error).toBeInstanceOf(GatewayInfoError)
        if (error._tag === "GatewayInfoError") {
          expect(error.status).toBe(429)
          expect(error.message).toContain("3600 s")
        }
        expect((yield* http.requests).length).toBe(1)
      })))

  it.effect("bounded: after 5 retries (1+2+4+8+16 s) it fails with the last status — no silent fallback", () =>
    withClient({ failFirst: 100 }, (http) =>
      Effect.gen(function*() {
        const exit = yield* runFor(makeGatewayBot(http.client, options), "10 minutes")
        const error = yield* Effect.flip(exit)
        expect(error).toBeInstanceOf(GatewayInfoError)
        if (error._tag === "GatewayInfoError") {
          expect(error.status).toBe(503)
          expect(error.detail).toContain("gave up after 6 attempts")
        }
        expect((yield* http.requests).map((r) => r.at)).toEqual([0, 1000, 3000, 7000, 15_000, 31_000])
      })))

  it.effect("retries and the base delay are configurable; retries: 0 fails on the first transient error", () =>
    withClient({ failFirst: 100 }, (http) =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(yield* runFor(makeGatewayBot(http.client, { ...options, retries: 0 }), "1 minute"))
        expect(error.message).toContain("gave up after 1 attempt)")
        yield* runFor(makeGatewayBot(http.client, { ...options, retries: 2, retryBaseDelay: "500 millis" }), "1 minute")
        const times = (yield* http.requests).slice(1).map((r) => r.at - 60_000)
        expect(times).toEqual([0, 500, 1500])
      })))

  it.effect("404 fails at once with a hint to check DISCORD_API_URL", () =>
    withClient({ failures: [InjectedFailure.status(404)] }, (http) =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(makeGatewayBot(http.client, options))
        expect(error).toBeInstanceOf(GatewayInfoError)
        if (error._tag === "GatewayInfoError") expect(error.status).toBe(404)
        expect(error.message).toContain("DISCORD_API_URL")
        expect((yield* http.requests).length).toBe(1)
      })))

  it.effect("a 4xx other than 401/408/429 fails at once with its status and Discord's message", () =>
    withClient({ failures: [InjectedFailure.status(403, { message: "Missing Access" })] }, (http) =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(makeGatewayBot(http.client, options))
        expect(error).toBeInstanceOf(GatewayInfoError)
        expect(error.message).toContain("403")
        expect(error.message).toContain("Missing Access")
        expect((yield* http.requests).length).toBe(1)
      })))

  it.effect("an invalid apiBaseUrl fails with GatewayInfoError naming DISCORD_API_URL", () =>
    withClient({}, (http) =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(makeGatewayBot(http.client, { ...options, apiBaseUrl: "not a url" }))
        expect(error).toBeInstanceOf(GatewayInfoError)
        expect(error.message).toContain("DISCORD_API_URL")
      })))

  const answering = (status: number, body: string) =>
    HttpClient.make((request) => Effect.succeed(HttpClientResponse.fromWeb(request, new Response(body, { status }))))

  it.effect("a 200 whose body is not the documented shape fails with GatewayInfoError (not retried)", () =>
    Effect.gen(function*() {
      const shapeless = yield* Effect.flip(makeGatewayBot(answering(200, JSON.stringify({ url: "wss://x", shards: 0 })), options))
      expect(shapeless).toBeInstanceOf(GatewayInfoError)
      expect(shapeless.message).toContain("documented shape")
      const html = yield* Effect.flip(makeGatewayBot(answering(200, "<html>proxy</html>"), options))
      expect(html.message).toContain("not JSON")
    }))

  it.effect("the token appears in no error and no log line", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const capture = Logger.formatJson.pipe(Logger.map((line) => lines.push(line)))
      const unauthorized = yield* withClient({}, (http) =>
        Effect.flip(makeGatewayBot(http.client, { token: Redacted.make(`${Token}-old`) })))
      const exhausted = yield* withClient({ failures: [InjectedFailure.network, InjectedFailure.hang], failFirst: 100 }, (http) =>
        Effect.flatMap(runFor(makeGatewayBot(http.client, options), "10 minutes"), Effect.flip)).pipe(
          Effect.provide(Logger.layer([capture]))
        )
      const errors = [unauthorized, exhausted]
      expect(lines.length).toBeGreaterThan(0) // the retries were logged
      for (const text of [...lines, ...errors.map((e) => `${e.message} ${JSON.stringify(e)} ${String(e)}`)]) {
        expect(text).not.toContain(Token)
      }
    }))
})

describe("GatewayInfo.layerStatic and the schema", () => {
  const injected: GatewayBot = {
    url: "wss://injected.example",
    shards: 16,
    sessionStartLimit: { total: 2000, remaining: 1999, resetAfterMs: 1000, maxConcurrency: 16 }
  }

  it.effect("item 1: injected values are served without any request", () =>
    Effect.gen(function*() {
      expect(yield* GatewayInfo.use((info) => info.gatewayBot)).toEqual(injected)
    }).pipe(Effect.provide(GatewayInfo.layerStatic(injected))))

  it("decodes Discord's snake_case into camelCase, dropping unknown keys", () => {
    const decoded = Schema.decodeUnknownSync(GatewayBotFromJson)({
      url: "wss://gateway.discord.gg",
      shards: 9,
      session_start_limit: { total: 1000, remaining: 999, reset_after: 14400000, max_concurrency: 1, extra: 1 },
      _trace: ["x"]
    })
    expect(decoded).toEqual({
      url: "wss://gateway.discord.gg",
      shards: 9,
      sessionStartLimit: { total: 1000, remaining: 999, resetAfterMs: 14400000, maxConcurrency: 1 }
    })
    expect(Schema.encodeSync(GatewayBotFromJson)(decoded)).toEqual({
      url: "wss://gateway.discord.gg",
      shards: 9,
      session_start_limit: { total: 1000, remaining: 999, reset_after: 14400000, max_concurrency: 1 }
    })
  })

  it("refuses impossible values: 0 shards, max_concurrency 0, negative remaining, missing keys", () => {
    const good = {
      url: "wss://g",
      shards: 1,
      session_start_limit: { total: 1000, remaining: 1, reset_after: 0, max_concurrency: 1 }
    }
    const decode = Schema.decodeUnknownResult(GatewayBotFromJson)
    expect(decode(good)._tag).toBe("Success")
    expect(decode({ ...good, shards: 0 })._tag).toBe("Failure")
    expect(decode({ ...good, url: "" })._tag).toBe("Failure")
    expect(decode({ ...good, session_start_limit: { ...good.session_start_limit, max_concurrency: 0 } })._tag).toBe("Failure")
    expect(decode({ ...good, session_start_limit: { ...good.session_start_limit, remaining: -1 } })._tag).toBe("Failure")
    expect(decode({ url: "wss://g", shards: 1 })._tag).toBe("Failure")
  })
})
