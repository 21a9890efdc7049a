/**
 * Where a soak runs: the gateway simulator and everything a Gateway needs, in one of two environments
 * sharing the same soak logic (issue 5: one implementation of the protocol, two transports).
 *
 * - `inProcess`: the simulator in-process (`GatewaySimulator.layer`: no sockets, timers on the Clock in
 *   context, so it runs under TestClock), `/gateway/bot` answered by it through `SimulatorHttpClient`.
 * - `overSockets`: the simulator served on 127.0.0.1 (`SimulatorSocketServer`: real HTTP and WebSocket), the
 *   Gateway over `NodeTransport` and `/gateway/bot` over fetch — wired exactly as against Discord
 *   (PROTOCOL.md §1.1–§1.2). Use the real clock.
 *
 * Both provide the simulator's controls as `GatewaySimulator`, plus an identify limiter built from
 * `/gateway/bot` (max_concurrency and the session-start budget, §3), an in-memory session store and cache.
 */
import { Context, Effect, Layer, Redacted } from "effect"
import { FetchHttpClient } from "effect/http"
import { Cache } from "../Cache.ts"
import { GatewayInfo, type GatewayInfoFailure } from "../GatewayInfo.ts"
import { IdentifyRateLimiter } from "../IdentifyRateLimiter.ts"
import { SessionStore } from "../SessionStore.ts"
import { GatewaySimulator } from "../testing/GatewaySimulator.ts"
import * as SimulatorHttpClient from "../testing/SimulatorHttpClient.ts"
import type { SimulatorOptions } from "../testing/SimulatorOptions.ts"
import * as SimulatorSocketServer from "../testing/SimulatorSocketServer.ts"
import type { GatewayTransport } from "../transport/GatewayTransport.ts"
import * as NodeTransport from "../transport/NodeTransport.ts"

/** The simulator's bot token: not a secret. */
export const SoakToken = "soak.simulator-token.not-a-secret"

/** What a soak needs from its environment. */
export type SoakServices = GatewaySimulator | GatewayTransport | GatewayInfo | IdentifyRateLimiter | SessionStore | Cache

/** The simulated Discord of a soak. */
export interface SoakSimulatorSettings {
  /** What `/gateway/bot` recommends at the start (the Gateway's initial count). */
  readonly shards: number
  readonly guildIds: ReadonlyArray<string>
  /** Identify buckets (`max_concurrency`). */
  readonly maxConcurrency: number
  readonly heartbeatIntervalMs: number
  /** Record every frame (tests read them); off for long runs. */
  readonly recordFrames: boolean
  /** Dispatches each session keeps for RESUME replay. Default 2000. */
  readonly replayBufferSize?: number | undefined
  /** Per-count / per-shard dispatch latency (see `SimulatorOptions.dispatchLatencyMs`). */
  readonly dispatchLatencyMs?: Readonly<Record<string | number, number>> | undefined
}

const simulatorOptions = (settings: SoakSimulatorSettings): SimulatorOptions => ({
  token: SoakToken,
  guilds: settings.guildIds,
  recommendedShards: settings.shards,
  maxConcurrency: settings.maxConcurrency,
  heartbeatIntervalMs: settings.heartbeatIntervalMs,
  // A long soak identifies hundreds of times; the daily budget is not what it tests.
  sessionStartLimit: { total: 1_000_000, remaining: 1_000_000, resetAfterMs: 86_400_000 },
  recordFrames: settings.recordFrames,
  replayBufferSize: settings.replayBufferSize ?? 2000,
  ...(settings.dispatchLatencyMs === undefined ? {} : { dispatchLatencyMs: settings.dispatchLatencyMs })
})

/** Store, cache and the identify limiter from `/gateway/bot`, over a `GatewayInfo`. */
const gatewayServices = <R>(info: Layer.Layer<GatewayInfo, never, R>) =>
  Layer.mergeAll(
    info,
    IdentifyRateLimiter.layerFromGatewayInfo.pipe(Layer.provide(info)),
    SessionStore.layerMemory,
    Cache.layerMemory()
  )

/** The in-process simulator (runs under TestClock). */
export const inProcess = (settings: SoakSimulatorSettings): Layer.Layer<SoakServices, GatewayInfoFailure> => {
  const simulator = GatewaySimulator.layer(simulatorOptions(settings))
  const info = GatewayInfo.layer({ token: Redacted.make(SoakToken), apiBaseUrl: "https://discord.simulator.invalid/api" })
    .pipe(Layer.provide(SimulatorHttpClient.layer))
  return gatewayServices(info).pipe(Layer.provideMerge(simulator))
}

/** The simulator on 127.0.0.1 over real sockets; the Gateway over `NodeTransport` (use the real clock). */
export const overSockets = (settings: SoakSimulatorSettings): Layer.Layer<SoakServices, GatewayInfoFailure> =>
  Layer.unwrap(Effect.gen(function*() {
    const server = yield* SimulatorSocketServer.make(simulatorOptions(settings))
    const simulator = Layer.succeedContext(Context.make(GatewaySimulator, server.controls))
    const info = GatewayInfo.layer({ token: Redacted.make(SoakToken), apiBaseUrl: server.apiBaseUrl })
      .pipe(Layer.provide(FetchHttpClient.layer))
    return Layer.mergeAll(gatewayServices(info), simulator, NodeTransport.layer)
  }))
