/**
 * This library as a benchmarked client, wired as an application would: `Gateway.make` over the real
 * `NodeTransport`, `GatewayInfo` asking the simulator's `/api/v10/gateway/bot` through an HttpClient, the
 * identify limiter configured from it (max_concurrency), in-memory session store and cache.
 *
 * Events are consumed through the public typed Stream: a subscription taken before any event is sent
 * (`gateway.subscription`, the subscribe-now form of `dispatches`/`events`), run with `Stream.runForEach`.
 * A filtering application subscribes with `names: ["MESSAGE_CREATE"]` (what `gateway.events(name)` does).
 */
import { Effect, Layer, Redacted, Stream } from "effect"
import { FetchHttpClient } from "effect/http"
import { Cache } from "../../src/Cache.ts"
import { Gateway } from "../../src/Gateway.ts"
import { GatewayInfo } from "../../src/GatewayInfo.ts"
import { IdentifyRateLimiter } from "../../src/IdentifyRateLimiter.ts"
import { Intents } from "../../src/protocol/Intents.ts"
import { SessionStore } from "../../src/SessionStore.ts"
import { ShardStrategy } from "../../src/ShardStrategy.ts"
import * as NodeTransport from "../../src/transport/NodeTransport.ts"
import { BenchError } from "../BenchError.ts"
import { BenchToken, type Client, type ClientOptions, type RunningClient } from "./Client.ts"

const services = (apiBaseUrl: string) => {
  const info = GatewayInfo.layer({ token: Redacted.make(BenchToken), apiBaseUrl }).pipe(Layer.provide(FetchHttpClient.layer))
  return Layer.mergeAll(
    NodeTransport.layer,
    SessionStore.layerMemory,
    Cache.layerMemory(),
    IdentifyRateLimiter.layerFromGatewayInfo.pipe(Layer.provide(info))
  ).pipe(Layer.provideMerge(info))
}

const start = (options: ClientOptions) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(services(options.urls.apiBaseUrl))
    const gateway = yield* Gateway.make({
      token: Redacted.make(BenchToken),
      intents: Intents.Guilds | Intents.GuildMessages,
      shards: ShardStrategy.fixed(options.shardCount),
      compression: options.compression,
      apiBaseUrl: options.urls.apiBaseUrl
    }).pipe(Effect.provide(context))
    const dispatches = yield* gateway.subscription(options.onlyMessages ? { names: ["MESSAGE_CREATE"] } : undefined)
    const { onMessage, onResumed } = options
    yield* Effect.forkScoped(Stream.runForEach(dispatches, (dispatch) =>
      Effect.sync(() => {
        if (dispatch.name === "MESSAGE_CREATE") onMessage(dispatch.data)
        else if (dispatch.name === "RESUMED") onResumed()
      })))
    const ready = gateway.statusChanges.pipe(
      Stream.filter((status) => status.ready),
      Stream.runHead,
      Effect.asVoid
    )
    return { ready } satisfies RunningClient
  }).pipe(Effect.mapError((error) => new BenchError({ message: `effect-discord-gateway: ${String(error)}` })))

export const effectGatewayClient: Client = { name: "effect-discord-gateway", countsEveryFrame: false, start }
