/**
 * `npm start` without DISCORD_TOKEN: the gateway simulator embedded on 127.0.0.1 (real HTTP and WebSocket,
 * `SimulatorSocketServer`) sending its own traffic at `--rate`, and a sharded Gateway over real sockets
 * (`NodeTransport`) against it, under the dashboard.
 *
 * The Gateway is wired exactly as against Discord: it discovers the URL, the recommended count and
 * max_concurrency through GET /api/v10/gateway/bot (`GatewayInfo` over fetch), identifies through the
 * limiter built from that answer (PROTOCOL.md §3), and runs the count the simulator recommends (`--shards`,
 * default 16). The simulator allows 16 identifies per 5 s window, so 16 shards start at once and a reshard
 * to 32 shows a second bucket round 5 s later. Frames are not recorded (a long run stays flat in memory).
 *
 * Teardown order: the dashboard ends, the Gateway's Scope closes (every shard saves its session and closes
 * 4000), then the traffic stops and the simulator closes.
 */
import { Effect, Layer, Redacted } from "effect"
import { FetchHttpClient } from "effect/http"
import { Cache } from "../Cache.ts"
import { Gateway } from "../Gateway.ts"
import { GatewayInfo } from "../GatewayInfo.ts"
import { IdentifyRateLimiter } from "../IdentifyRateLimiter.ts"
import { Intents } from "../protocol/Intents.ts"
import { SessionStore } from "../SessionStore.ts"
import { ShardStrategy } from "../ShardStrategy.ts"
import * as SimulatorSocketServer from "../testing/SimulatorSocketServer.ts"
import * as NodeTransport from "../transport/NodeTransport.ts"
import * as Dashboard from "./Dashboard.ts"
import { demoGuilds } from "./DemoGuilds.ts"
import type { Flags } from "./Flags.ts"
import { simulatorKeys } from "./Keys.ts"
import type { LogSink } from "./LogSink.ts"

/** The simulator's bot token: not a secret, never logged anyway. */
const DemoToken = "demo.simulator-token.not-a-secret"

/** Identify buckets of the embedded simulator (max_concurrency). */
const MaxConcurrency = 16

/** Runs the demo until quit, `--duration`, or a fatal close. */
export const run = (flags: Flags, interactive: boolean, logSink: LogSink) =>
  Effect.scoped(Effect.gen(function*() {
    const guilds = demoGuilds(flags.guilds)
    const server = yield* SimulatorSocketServer.make({
      token: DemoToken,
      guilds,
      recommendedShards: flags.shards,
      maxConcurrency: MaxConcurrency,
      heartbeatIntervalMs: flags.heartbeatMs,
      // The demo runs as long as the user watches: no frame recording, a bounded history of connections.
      recordFrames: false,
      historyLimit: 10_000,
      traffic: { rate: flags.rate }
    })

    const token = Redacted.make(DemoToken)
    const info = GatewayInfo.layer({ token, apiBaseUrl: server.apiBaseUrl }).pipe(Layer.provide(FetchHttpClient.layer))
    const services = Layer.mergeAll(
      info,
      IdentifyRateLimiter.layerFromGatewayInfo.pipe(Layer.provide(info)),
      SessionStore.layerMemory,
      Cache.layerMemory(),
      NodeTransport.layer
    )
    const gateway = Gateway.layer({
      token,
      intents: Intents.Guilds | Intents.GuildMessages | Intents.GuildMessageReactions | Intents.GuildMessageTyping,
      shards: ShardStrategy.recommended,
      apiBaseUrl: server.apiBaseUrl
    }).pipe(Layer.provide(services))

    const origin = server.apiBaseUrl.replace(/^http:\/\//, "").replace(/\/api$/, "")
    yield* Dashboard.run({
      title: `simulator ${origin}`,
      interactive,
      keys: simulatorKeys,
      intro: [
        `simulator on ${origin}: ${flags.guilds} guilds, ${flags.shards} shards recommended, max_concurrency ${MaxConcurrency}, heartbeat ${flags.heartbeatMs / 1000} s, ${flags.rate} events/s`,
        `faults also over HTTP: curl -X POST '${server.controlUrl}/drop?shard=3'`
      ],
      statusEveryMs: flags.statusEveryMs,
      durationMs: flags.durationMs,
      faultEveryMs: flags.faultEveryMs,
      reshardAtMs: flags.reshardAtMs,
      faults: server.controls,
      beforeReshard: (count) => server.controls.setRecommendedShards(count),
      logSink
    }).pipe(Effect.provide(gateway))
  }))
