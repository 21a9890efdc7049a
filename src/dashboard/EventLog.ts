/**
 * The dashboard's event log: the last few things that happened, in words — "shard 3 resumed",
 * "reshard 16 → 32: 12/32 ready (identifying)" — newest last, bounded.
 *
 * `statusEvents(previous, next)` derives those lines from two consecutive `GatewayStatus` values (pure):
 * a shard that lost its connection, resumed (PROTOCOL.md §1.7), had to IDENTIFY again (op 9 not
 * resumable, §1.8), went stale, stopped or failed; the whole gateway becoming ready (§6.1); and a reshard
 * starting, progressing, finishing or rolling back (§4). The dashboard adds its own lines (faults it
 * injected, keys) and the Effect logs of the runtime (LogSink.ts).
 */
import type { LogLine, ShardView, StatusView } from "./StatusTable.ts"
import { describeReshard, reshardActive } from "./StatusTable.ts"

export interface EventLog {
  /** Appends a line stamped `atMs` (time since start); the oldest is dropped beyond the capacity. */
  readonly push: (atMs: number, text: string) => void
  /** The lines, oldest first. */
  readonly lines: () => ReadonlyArray<LogLine>
}

/** A log keeping the last `capacity` lines; `onLine` sees every line as it is pushed (the plain mode prints it). */
export const make = (capacity = 100, onLine?: (line: LogLine) => void): EventLog => {
  const buffer: Array<LogLine> = []
  return {
    push: (atMs, text) => {
      const line = { atMs, text }
      buffer.push(line)
      if (buffer.length > capacity) buffer.shift()
      onLine?.(line)
    },
    lines: () => buffer
  }
}

const key = (shard: ShardView): string => `${shard.shardId}/${shard.shardCount}`

const shardEvents = (before: ShardView, after: ShardView, out: Array<string>): void => {
  const name = `shard ${after.shardId}`
  const phaseChanged = before.phase !== after.phase
  if (after.phase === "ready" && (phaseChanged || after.resumes > before.resumes || after.identifies > before.identifies)) {
    // Counters catch a reconnect that came and went between two observations.
    if (after.resumes > before.resumes || before.phase === "resuming") out.push(`${name} resumed`)
    else if (after.identifies > 1 && (after.identifies > before.identifies || before.phase === "identifying")) {
      out.push(`${name} identified again: new session`)
    }
  } else if (phaseChanged) {
    switch (after.phase) {
      case "reconnecting":
        out.push(`${name} disconnected${after.lastError === null ? "" : ` (${after.lastError})`}; reconnecting`)
        break
      case "stopped":
        out.push(`${name} stopped`)
        break
      case "fatal":
        out.push(`${name} failed${after.lastError === null ? "" : `: ${after.lastError}`}`)
        break
    }
  }
  if (!before.stale && after.stale) out.push(`${name} stale: no dispatch while its guilds are active`)
  if (before.stale && !after.stale) out.push(`${name} receiving again`)
}

/** The log lines for the change from `previous` (undefined at start) to `next`. */
export const statusEvents = (previous: StatusView | undefined, next: StatusView): ReadonlyArray<string> => {
  const out: Array<string> = []
  if (previous !== undefined) {
    const before = new Map<string, ShardView>()
    for (const shard of previous.shards) before.set(key(shard), shard)
    for (const shard of next.shards) {
      const old = before.get(key(shard))
      if (old !== undefined) shardEvents(old, shard, out)
    }
  }

  const was = previous?.reshard ?? null
  const now = next.reshard ?? null
  if (now !== null) {
    const same = was !== null && was.from === now.from && was.to === now.to
    if (!same || (!reshardActive(was) && reshardActive(now))) {
      if (reshardActive(now)) out.push(`reshard ${now.from} → ${now.to} started`)
      out.push(describeReshard(now))
    } else if (was.ready !== now.ready || was.phase !== now.phase || was.total !== now.total) {
      out.push(describeReshard(now))
    }
  } else if (previous !== undefined && previous.shardCount !== next.shardCount) {
    out.push(`shard count ${previous.shardCount} → ${next.shardCount}`)
  }

  if (next.ready && !(previous?.ready ?? false) && next.shards.length > 0) {
    let guilds = 0
    for (const shard of next.shards) guilds += shard.guilds
    out.push(`all ${next.shards.length} shards ready (${guilds} guilds)`)
  }
  if (next.ended && !(previous?.ended ?? false)) out.push("gateway ended")
  return out
}
