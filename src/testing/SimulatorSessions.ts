/**
 * Simulated gateway sessions: their sequence numbering and replay buffer (PROTOCOL.md §1.7, §6.1), and the
 * routing index that delivers a dispatch to every session owning its guild (§4).
 *
 * Routing follows `shard_id = (guild_id >> 22) % num_shards`, computed with BigInt so ids above 2^53 route
 * correctly. Sessions are indexed by `num_shards` then `shard_id`, so a dispatch costs one lookup per
 * distinct shard count (usually one) plus one append per receiving session — never a scan of all sessions.
 * Several sessions with the same tuple each get the event; sessions with different counts coexist
 * (resharding). Events without a guild go to shard 0 sessions only.
 */

/** `[shard_id, num_shards]`. */
export type ShardTuple = readonly [shardId: number, shardCount: number]

/**
 * Which shard a control targets: a shard id (any session/connection with that id, whatever its count),
 * or an exact `[shard_id, num_shards]` tuple.
 */
export type ShardTarget = number | ShardTuple

/** Whether a tuple is selected by a target. */
export const targets = (target: ShardTarget, shard: ShardTuple | null): boolean => {
  if (shard === null) return false
  if (typeof target === "number") return shard[0] === target
  return shard[0] === target[0] && shard[1] === target[1]
}

/** A dispatch shared by every session that receives it; each session only adds its own `s`. */
export interface DispatchEntry {
  readonly t: string
  readonly d: unknown
  /** `{"t":<t>,"s":` — the frame text before the sequence number. */
  readonly head: string
  /** `,"op":0,"d":<d>}` — the frame text after it. */
  readonly tail: string
  /** UTF-8 bytes of head + tail (the sequence digits are ASCII). */
  readonly fixedBytes: number
}

/** Builds the shared part of a dispatch frame once (the `d` JSON is encoded once for all sessions). */
export const makeDispatchEntry = (t: string, d: unknown): DispatchEntry => {
  const head = `{"t":${JSON.stringify(t)},"s":`
  const tail = `,"op":0,"d":${JSON.stringify(d) ?? "null"}}`
  return { t, d, head, tail, fixedBytes: Buffer.byteLength(head) + Buffer.byteLength(tail) }
}

/** The frame text of a dispatch with its sequence number (key order t, s, op, d like Discord). */
export const dispatchText = (entry: DispatchEntry, s: number): string => entry.head + s + entry.tail

/** Byte size of `dispatchText(entry, s)` without measuring the string. */
export const dispatchBytes = (entry: DispatchEntry, s: number): number => entry.fixedBytes + String(s).length

/** A session as the server keeps it. `C` is the server's connection type (the session only holds it). */
export class SimulatedSession<C> {
  /** The last `s` given out. */
  seq = 0
  /** The connection the session is attached to, or null while disconnected. */
  connection: C | null = null
  /** Clock ms it was detached (resume window start), or null while attached. */
  disconnectedAt: number | null = null
  destroyed = false
  readonly id: string
  readonly shard: ShardTuple
  readonly intents: number
  private readonly capacity: number
  private readonly buffer: Array<DispatchEntry> = []

  constructor(id: string, shard: ShardTuple, intents: number, capacity: number) {
    this.id = id
    this.shard = shard
    this.intents = intents
    this.capacity = capacity
  }

  /** Numbers a dispatch for this session and keeps it for replay; returns its `s`. */
  append(entry: DispatchEntry): number {
    const s = ++this.seq
    if (this.capacity > 0) {
      if (this.buffer.length < this.capacity) this.buffer.push(entry)
      else this.buffer[(s - 1) % this.capacity] = entry
    }
    return s
  }

  /**
   * Whether every dispatch after `seq` is still buffered (false when some were evicted: the session can
   * then not be resumed from `seq`).
   */
  canReplayFrom(seq: number): boolean {
    return this.seq - seq <= Math.min(this.capacity, this.seq)
  }

  /** Calls `f` with every dispatch the replay buffer holds (oldest first only until it wraps). */
  forEachBuffered(f: (entry: DispatchEntry) => void): void {
    for (const entry of this.buffer) f(entry)
  }

  /** Calls `f` with every buffered dispatch with `s > seq`, in order. Check `canReplayFrom` first. */
  replayFrom(seq: number, f: (entry: DispatchEntry, s: number) => void): void {
    for (let s = seq + 1; s <= this.seq; s++) {
      f(this.buffer[(s - 1) % this.capacity]!, s)
    }
  }
}

/** Sessions by `num_shards`, then `shard_id`. */
export class SessionIndex<C> {
  private readonly byCount = new Map<number, Map<number, Set<SimulatedSession<C>>>>()

  add(session: SimulatedSession<C>): void {
    const [id, count] = session.shard
    let byId = this.byCount.get(count)
    if (byId === undefined) {
      byId = new Map()
      this.byCount.set(count, byId)
    }
    let set = byId.get(id)
    if (set === undefined) {
      set = new Set()
      byId.set(id, set)
    }
    set.add(session)
  }

  remove(session: SimulatedSession<C>): void {
    const [id, count] = session.shard
    const byId = this.byCount.get(count)
    const set = byId?.get(id)
    if (byId === undefined || set === undefined) return
    set.delete(session)
    if (set.size === 0) {
      byId.delete(id)
      if (byId.size === 0) this.byCount.delete(count)
    }
  }

  /**
   * Calls `f` for every session that owns a guild (`guildShifted` = `BigInt(guild_id) >> 22n`), or every
   * shard 0 session when `guildShifted` is null. `f` must not add or remove sessions.
   */
  forEachOwner(guildShifted: bigint | null, f: (session: SimulatedSession<C>) => void): void {
    for (const [count, byId] of this.byCount) {
      const set = byId.get(guildShifted === null ? 0 : Number(guildShifted % BigInt(count)))
      if (set !== undefined) for (const session of set) f(session)
    }
  }
}

/** `BigInt(id) >> 22n` for a snowflake string or integer, or null when it is not one. */
export const shiftedSnowflake = (id: unknown): bigint | null => {
  if (typeof id === "string" && /^\d{1,20}$/.test(id)) return BigInt(id) >> 22n
  if (typeof id === "number" && Number.isSafeInteger(id) && id >= 0) return BigInt(id) >> 22n
  if (typeof id === "bigint" && id >= 0n) return id >> 22n
  return null
}

/** The shard id that owns a guild under `count` shards (PROTOCOL.md §4). */
export const shardOfGuild = (guildId: string, count: number): number =>
  Number((BigInt(guildId) >> 22n) % BigInt(count))
