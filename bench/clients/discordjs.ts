/**
 * @discordjs/ws as a benchmarked client: a `WebSocketManager` with its default `SimpleShardingStrategy`
 * (every shard in this thread) and identify throttler, asking the simulator's `/api/v10/gateway/bot`
 * through an `@discordjs/rest` REST instance pointed at it. zlib-stream uses its `ZlibNative` method
 * (node:zlib; the optional `zlib-sync` package is not installed).
 *
 * Events arrive as `dispatch` events with the parsed payload; @discordjs/ws has no subscription filter, so
 * a filtering application checks `payload.t` in the listener.
 */
import { CompressionMethod, type RequiredWebSocketManagerOptions, WebSocketManager, WebSocketShardEvents } from "@discordjs/ws"
import { REST } from "@discordjs/rest"
import { Effect } from "effect"
import { BenchError } from "../BenchError.ts"
import { BenchToken, type Client, type ClientOptions, type RunningClient } from "./Client.ts"

const start = (options: ClientOptions) =>
  Effect.gen(function*() {
    const manager = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const rest = new REST({ api: options.urls.apiBaseUrl }).setToken(BenchToken)
        const manager = new WebSocketManager({
          token: BenchToken,
          intents: 513 as RequiredWebSocketManagerOptions["intents"], // Guilds | GuildMessages
          rest,
          shardCount: options.shardCount,
          compression: options.compression === "zlib-stream" ? CompressionMethod.ZlibNative : null
        })
        const { onMessage, onResumed } = options
        manager.on(WebSocketShardEvents.Dispatch, (payload) => {
          if (payload.t === "MESSAGE_CREATE") onMessage(payload.d)
        })
        manager.on(WebSocketShardEvents.Resumed, () => onResumed())
        manager.on(WebSocketShardEvents.Error, () => {})
        return manager
      }),
      (manager) => Effect.promise(async () => manager.destroy()).pipe(Effect.timeout("10 seconds"), Effect.ignore)
    )
    const connecting = manager.connect()
    connecting.catch(() => {})
    const ready = Effect.tryPromise({
      try: () => connecting,
      catch: (error) => new BenchError({ message: `@discordjs/ws: ${String(error)}` })
    })
    return { ready } satisfies RunningClient
  })

export const discordjsClient: Client = { name: "@discordjs/ws", countsEveryFrame: false, start }
