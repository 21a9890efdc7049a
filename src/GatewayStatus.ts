/**
 * GatewayStatus: what the whole Gateway is doing, as users observe it — one entry per shard this process
 * runs, plus whether every shard is ready (guilds loaded, PROTOCOL.md §6.1 / item 53).
 */
import type { ShardState } from "./ShardState.ts"

export interface GatewayShardStatus extends ShardState {
  /** Guilds the cache holds for this shard. */
  readonly guilds: number
  /** The shard's guilds have loaded (READY answered by GUILD_CREATE/DELETE, or the guild wait timed out). */
  readonly ready: boolean
  /** The staleness watchdog saw no dispatch for `staleAfter` while the shard had guilds. */
  readonly stale: boolean
}

/** A reshard in progress, or the last one. */
export interface ReshardStatus {
  /** starting: the new set is coming up beside the old one; switching: the source of dispatches moves;
   * draining: the old set finishes in-flight member requests before it closes; done / failed: the outcome. */
  readonly phase: "starting" | "switching" | "draining" | "done" | "failed"
  readonly from: number
  readonly to: number
  /** New shards ready (guilds loaded), of `total`. */
  readonly ready: number
  readonly total: number
  /** Why it failed. */
  readonly error: string | null
}

export interface GatewayStatus {
  /** The shard count every shard identified with. */
  readonly shardCount: number
  /** This process's shards, ascending by id. */
  readonly shards: ReadonlyArray<GatewayShardStatus>
  /** Every shard of this process is ready. */
  readonly ready: boolean
  /** The Gateway has ended (shut down, or failed with a fatal close). */
  readonly ended: boolean
  /** The reshard in progress, or the last one; null if there never was one. */
  readonly reshard: ReshardStatus | null
}
