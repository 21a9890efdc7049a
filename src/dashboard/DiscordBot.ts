/**
 * `npm start` with DISCORD_TOKEN: the example bot against Discord. A Gateway configured from the
 * environment (`GatewayConfig.config`: DISCORD_TOKEN, DISCORD_INTENTS — here defaulting to
 * `Guilds,GuildMessages` —, DISCORD_SHARDS, …), discovery through GET /gateway/bot over fetch, identifies
 * through the limiter built from its `session_start_limit` (PROTOCOL.md §3), sessions saved to files in
 * DISCORD_SESSION_DIR (default `.sessions`) so the next start RESUMEs, and one log line per MESSAGE_CREATE
 * (author and channel; never the token, never the content) under the dashboard.
 */
import { ConfigProvider, Effect, Layer, Stream } from "effect"
import { FetchHttpClient } from "effect/http"
import { Cache } from "../Cache.ts"
import { Gateway } from "../Gateway.ts"
import * as GatewayConfig from "../GatewayConfig.ts"
import { GatewayInfo } from "../GatewayInfo.ts"
import { IdentifyRateLimiter } from "../IdentifyRateLimiter.ts"
import { SessionStore } from "../SessionStore.ts"
import * as NodeTransport from "../transport/NodeTransport.ts"
import * as Dashboard from "./Dashboard.ts"
import type { Flags } from "./Flags.ts"
import { discordKeys } from "./Keys.ts"
import type { LogSink } from "./LogSink.ts"

const DefaultIntents = "Guilds,GuildMessages"

/** The environment, with DISCORD_INTENTS defaulting to Guilds,GuildMessages. */
const environment = (): ConfigProvider.ConfigProvider => {
  const intents = process.env.DISCORD_INTENTS?.trim()
  return ConfigProvider.fromEnvRecord({
    ...process.env,
    DISCORD_INTENTS: intents === undefined || intents === "" ? DefaultIntents : intents
  })
}

/** Runs the example bot until quit, `--duration`, or a fatal close. */
export const run = (flags: Flags, interactive: boolean, logSink: LogSink) =>
  Effect.gen(function*() {
    const options = yield* GatewayConfig.config.parse(environment())
    const info = GatewayInfo.layer({ token: options.token, apiBaseUrl: options.apiBaseUrl }).pipe(
      Layer.provide(FetchHttpClient.layer)
    )
    const services = Layer.mergeAll(
      info,
      IdentifyRateLimiter.layerFromGatewayInfo.pipe(Layer.provide(info)),
      SessionStore.layerFile(process.env.DISCORD_SESSION_DIR ?? ".sessions"),
      Cache.layerMemory(),
      NodeTransport.layer
    )
    const host = new URL(options.apiBaseUrl ?? "https://discord.com/api").host

    yield* Effect.scoped(Effect.gen(function*() {
      const gateway = yield* Gateway
      yield* Effect.forkScoped(Stream.runForEach(gateway.events("MESSAGE_CREATE"), (message) => {
        const { author, channel_id, guild_id } = message.data
        return Effect.logInfo(
          `message from ${author.username} (${author.id}) in channel ${channel_id}${guild_id === undefined ? " (DM)" : ` of guild ${guild_id}`}`
        ).pipe(Effect.annotateLogs({ shard: message.shard }))
      }))
      yield* Dashboard.run({
        title: host,
        interactive,
        keys: discordKeys,
        statusEveryMs: flags.statusEveryMs,
        durationMs: flags.durationMs,
        faultEveryMs: flags.faultEveryMs,
        reshardAtMs: flags.reshardAtMs,
        logSink
      })
    })).pipe(Effect.provide(Layer.provide(Gateway.layer(options), services)))
  })
