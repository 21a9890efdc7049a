/**
 * What every benchmarked client implements: this library, @discordjs/ws, the raw baseline and the null
 * client (the producer alone). A benchmark starts a client in a Scope (closing it disconnects every shard)
 * and observes it only through the callbacks below, so every library is measured the same way.
 */
import type { Effect, Scope } from "effect"
import type { ServerUrls } from "../producer.ts"
import { BenchError } from "../BenchError.ts"

/** The token the benchmark simulator accepts. */
export const BenchToken = "bench-token.simulated.0"

export interface ClientOptions {
  readonly urls: ServerUrls
  readonly shardCount: number
  readonly compression: "none" | "zlib-stream"
  /**
   * The application only wants MESSAGE_CREATE: a library that can say so (a filtered subscription)
   * should; one that cannot filters in the callback.
   */
  readonly onlyMessages: boolean
  /**
   * Called once per MESSAGE_CREATE the application receives, with its data, which the application reads
   * (so a library that parses lazily pays for the parse here). The null client passes undefined, once per
   * frame.
   */
  readonly onMessage: (data: unknown) => void
  /** Called when a shard's session is resumed (RESUMED), when the client can see it. */
  readonly onResumed: () => void
}

export interface RunningClient {
  /** Waits until every shard is READY (the client's own notion of ready). */
  readonly ready: Effect.Effect<void, BenchError>
}

export interface Client {
  /** The row name in the results table. */
  readonly name: string
  /** True when `onMessage` counts every frame rather than MESSAGE_CREATEs (the null client). */
  readonly countsEveryFrame: boolean
  /** Connects `shardCount` shards in the current Scope. */
  readonly start: (options: ClientOptions) => Effect.Effect<RunningClient, BenchError, Scope.Scope>
}
