/**
 * An `HttpClient` backed by the gateway simulator, so `GatewayInfo.layer` (GET /gateway/bot, PROTOCOL.md
 * §1.1, checklist item 1) runs end to end under TestClock with no sockets.
 *
 * A `GET <anything>/v10/gateway/bot` is answered by the simulator's `gatewayBotRequest` with the request's
 * `Authorization` header (200 with the body, or 401), so the simulator records it in `restRequests`.
 * Anything else is answered 404. Failures can be injected ahead of the simulator — a number of 503s, or a
 * script of statuses (429 with `retry_after` / `Retry-After`), network errors and requests that never
 * answer — to exercise retries and backoff.
 */
import { Clock, Effect, Layer, Option } from "effect"
import { Headers, HttpClient, HttpClientError, type HttpClientRequest, HttpClientResponse } from "effect/http"
import { GatewaySimulator } from "./GatewaySimulator.ts"
import type { SimulatorControls } from "./SimulatorServer.ts"

/** One injected failure, used for one `/gateway/bot` request instead of asking the simulator. */
export type InjectedFailure =
  | {
    readonly _tag: "Status"
    readonly status: number
    /** Put in the JSON body as `retry_after` (seconds, may be fractional), as Discord does on 429. */
    readonly retryAfter?: number | undefined
    /** Sent as the `Retry-After` header, verbatim. */
    readonly retryAfterHeader?: string | undefined
    /** The body's `message`. Default: a text matching the status. */
    readonly message?: string | undefined
  }
  /** The request fails without an answer (a `TransportError`). */
  | { readonly _tag: "Network" }
  /** The request never answers (to exercise timeouts). */
  | { readonly _tag: "Hang" }

export const InjectedFailure = {
  status: (
    status: number,
    options?: { readonly retryAfter?: number; readonly retryAfterHeader?: string; readonly message?: string }
  ): InjectedFailure => ({ _tag: "Status", status, ...options }),
  network: { _tag: "Network" } as InjectedFailure,
  hang: { _tag: "Hang" } as InjectedFailure
} as const

export interface SimulatorHttpClientOptions {
  /** Answer the first `failFirst` `/gateway/bot` requests with 503 (after any scripted `failures`). */
  readonly failFirst?: number | undefined
  /** Failures for the first `/gateway/bot` requests, in order, one each. */
  readonly failures?: ReadonlyArray<InjectedFailure> | undefined
}

/** One request the client saw, with how it was answered. */
export interface SimulatorHttpRequest {
  /** Clock time of the request (TestClock under `it.effect`). */
  readonly at: number
  readonly method: string
  /** The URL path (no query). */
  readonly path: string
  /** The answer's status, or `"network"` / `"hang"` for those injected failures. */
  readonly outcome: number | "network" | "hang"
}

/** The client plus what it recorded. */
export interface SimulatorHttp {
  readonly client: HttpClient.HttpClient
  /** Every request, in order (the header values are not kept). */
  readonly requests: Effect.Effect<ReadonlyArray<SimulatorHttpRequest>>
}

const GatewayBotPath = /\/v10\/gateway\/bot\/?$/

const statusText: Record<number, string> = {
  400: "400: Bad Request",
  403: "403: Forbidden",
  404: "404: Not Found",
  408: "Request Timeout",
  429: "You are being rate limited.",
  500: "500: Internal Server Error",
  502: "502: Bad Gateway",
  503: "503: Service Unavailable",
  504: "504: Gateway Timeout"
}

const jsonResponse = (
  request: HttpClientRequest.HttpClientRequest,
  status: number,
  body: unknown,
  headers?: Record<string, string>
): HttpClientResponse.HttpClientResponse =>
  HttpClientResponse.fromWeb(
    request,
    new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } })
  )

/** Builds a simulator-backed client for `simulator` with its own failure script and request log. */
export const make = (simulator: SimulatorControls, options?: SimulatorHttpClientOptions): SimulatorHttp => {
  const script: Array<InjectedFailure> = [...(options?.failures ?? [])]
  for (let i = 0; i < (options?.failFirst ?? 0); i++) script.push(InjectedFailure.status(503))
  const log: Array<SimulatorHttpRequest> = []

  const client = HttpClient.make((request, url) =>
    Effect.gen(function*() {
      const at = yield* Clock.currentTimeMillis
      const record = (outcome: SimulatorHttpRequest["outcome"]) => {
        log.push({ at, method: request.method, path: url.pathname, outcome })
      }
      if (request.method !== "GET" || !GatewayBotPath.test(url.pathname)) {
        const status = GatewayBotPath.test(url.pathname) ? 405 : 404
        record(status)
        return jsonResponse(request, status, { message: status === 404 ? "404: Not Found" : "405: Method Not Allowed", code: 0 })
      }
      const failure = script.shift()
      if (failure !== undefined) {
        switch (failure._tag) {
          case "Network":
            record("network")
            return yield* new HttpClientError.HttpClientError({
              reason: new HttpClientError.TransportError({ request, description: "simulated network failure" })
            })
          case "Hang":
            record("hang")
            return yield* Effect.never
          case "Status": {
            record(failure.status)
            const body: Record<string, unknown> = {
              message: failure.message ?? statusText[failure.status] ?? `${failure.status}`,
              code: 0
            }
            if (failure.retryAfter !== undefined) {
              body.retry_after = failure.retryAfter
              body.global = false
            }
            const headers: Record<string, string> = failure.retryAfterHeader === undefined
              ? {}
              : { "retry-after": failure.retryAfterHeader }
            return jsonResponse(request, failure.status, body, headers)
          }
        }
      }
      const authorization = Option.getOrElse(Headers.get(request.headers, "authorization"), () => "")
      const reply = yield* simulator.gatewayBotRequest(authorization)
      record(reply.status)
      return jsonResponse(request, reply.status, reply.body)
    })
  )

  return { client, requests: Effect.sync(() => log.slice()) }
}

/** The `HttpClient` over the `GatewaySimulator` in context, with optional injected failures. */
export const layerWith = (
  options?: SimulatorHttpClientOptions
): Layer.Layer<HttpClient.HttpClient, never, GatewaySimulator> =>
  Layer.effect(
    HttpClient.HttpClient,
    Effect.map(GatewaySimulator, (simulator) => make(simulator, options).client)
  )

/** The `HttpClient` over the `GatewaySimulator` in context: `/v10/gateway/bot` answered by it, else 404. */
export const layer: Layer.Layer<HttpClient.HttpClient, never, GatewaySimulator> = layerWith()
