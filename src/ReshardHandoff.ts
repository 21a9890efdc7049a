/**
 * ReshardHandoff: exactly-once delivery across a reshard (PROTOCOL.md §4: sessions with different shard
 * counts run side by side and both receive the same guild events, numbered differently).
 *
 * Before the switch the old set delivers and the new set is staged:
 * - `stage`: each event the new set receives (except its session start-up — READY and the GUILD_CREATE /
 *   DELETE answering it, state the application already has) waits in order, unless the old set has
 *   already delivered it;
 * - `recordDelivered`: each event the old set delivers is matched against the staged ones; unmatched, it
 *   is remembered for the new set's copy to come.
 * The switch waits until the old set has caught up (`caughtUp`): for every new shard and every old shard
 * that can hold a guild of it (shard ids congruent modulo the gcd of the two counts), that old shard has
 * delivered an event that new shard also received. A new shard only receives events sent after its READY,
 * and one connection delivers in the order events were sent, so that old shard has then delivered every
 * event of their common guilds sent before the new shard existed — those reached the old set only. Pairs,
 * not new shards alone: when the counts are not multiples, a new shard's guilds come from several old
 * shards, and one of them lagging must not be vouched for by another. (Bounded by the window: without
 * traffic there is nothing to wait for; a pair without a common guild never matches, and neither do pairs
 * past `MaxCatchUpPairs`, so those switches wait the window.)
 * At the switch the staged events the old set did not deliver are released in order (`flush`). For one more
 * window both sets stay connected and each event goes through whichever set has it first, the other copy
 * being dropped (`fromOld` / `fromNew`); then the old set is cut off, and for a second window the new set's
 * late copies of what the old set delivered are still dropped. A late copy on either side is neither lost
 * nor repeated.
 *
 * Identity is content: event name + the JSON of its data. Discord sends the same payload to every session
 * that receives an event, so the copies match; counting per identity (a multiset) keeps two distinct
 * events with identical payloads (a repeated TYPING_START in the same second) as two.
 *
 * Guarantee (assuming the two sets' copies of an event arrive within `windowMs` of each other, and each of
 * the old set's connections delivers in the order events were sent): every event is delivered exactly once,
 * and a guild's events in order. Outside it: copies further apart than the window may be delivered twice; an
 * event of a guild whose new shard came up last may be delivered out of order if the catch-up timed out;
 * when an old shard loses its session during the overlap (op 9 false, 4003/4007/4009), its guilds' events of
 * the gap reach only the new set and are released at the switch — after newer ones the old shard's next
 * session already delivered (each still exactly once);
 * identical-payload events whose counts differ between the sets within the window may be dropped or
 * repeated. Memory is bounded by `capacity` entries per side (oldest dropped) and by time (2 × window).
 */
import { type Dispatch, rawData } from "./Dispatch.ts"

export interface ReshardHandoff {
  /** Before the switch: the old set delivered this. */
  readonly recordDelivered: (dispatch: Dispatch, now: number) => void
  /** Before the switch: the new set received this. */
  readonly stage: (dispatch: Dispatch, now: number) => void
  /** Whether the old set has caught up with every new shard (see the module doc). */
  readonly caughtUp: () => boolean
  /** The switch: the staged events the old set did not deliver, oldest first. Staging ends. */
  readonly flush: (now: number) => ReadonlyArray<Dispatch>
  /** After the switch: whether to deliver this old-set event (false: the new set already did). */
  readonly fromOld: (dispatch: Dispatch, now: number) => boolean
  /** After the switch: whether to deliver this new-set event (false: the old set already did). */
  readonly fromNew: (dispatch: Dispatch, now: number) => boolean
  /** Whether both windows after the switch have passed (the handoff can be dropped). */
  readonly expired: (now: number) => boolean
  readonly stats: () => { readonly staged: number; readonly released: number; readonly deduplicated: number }
}

/** The identity of an event: its name and the JSON of its data (the received text when it was kept). */
export const identity = (dispatch: Dispatch): string =>
  `${dispatch.name}\u0000${rawData(dispatch) ?? JSON.stringify(dispatch.data)}`

interface Staged {
  readonly dispatch: Dispatch
  readonly key: string
  readonly at: number
  matched: boolean
}

/** A multiset of identities with expiry in arrival order. */
const makeMemory = (windowMs: number, capacity: number) => {
  const fifo: Array<{ readonly key: string; readonly at: number }> = []
  let head = 0
  /** Per key: how many copies are remembered, and the shard that delivered them (an event's guild decides it). */
  const copies = new Map<string, { count: number; readonly shard: number }>()
  /** Keys consumed whose FIFO entries have not expired: expiry must not count them again. */
  const consumed = new Map<string, number>()
  const dropCopy = (key: string): boolean => {
    const entry = copies.get(key)
    if (entry === undefined) return false
    if (--entry.count === 0) copies.delete(key)
    return true
  }
  const unconsume = (key: string): boolean => {
    const n = consumed.get(key)
    if (n === undefined) return false
    if (n <= 1) consumed.delete(key)
    else consumed.set(key, n - 1)
    return true
  }
  const expire = (now: number) => {
    while (head < fifo.length && (fifo[head]!.at + 2 * windowMs <= now || fifo.length - head > capacity)) {
      const { key } = fifo[head++]!
      if (!unconsume(key)) dropCopy(key)
    }
    if (head > 1024 && head * 2 > fifo.length) {
      fifo.splice(0, head)
      head = 0
    }
  }
  return {
    add: (key: string, shard: number, now: number) => {
      expire(now)
      fifo.push({ key, at: now })
      const entry = copies.get(key)
      if (entry === undefined) copies.set(key, { count: 1, shard })
      else entry.count++
    },
    /** Takes one remembered copy of this key: the shard that delivered it, or -1 when none is remembered. */
    take: (key: string, now: number): number => {
      expire(now)
      const shard = copies.get(key)?.shard ?? -1
      if (!dropCopy(key)) return -1
      consumed.set(key, (consumed.get(key) ?? 0) + 1)
      return shard
    }
  }
}

/** A set's shard count and the ids it runs here. */
export interface ShardIds {
  readonly count: number
  readonly ids: ReadonlyArray<number>
}

/** Beyond this many (old, new) shard pairs, the catch-up is not tracked: the switch waits the window. */
export const MaxCatchUpPairs = 100_000

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b))

/**
 * The (old shard, new shard) pairs that can share a guild, as `old × newCount + new`: a guild on old shard o
 * and new shard n has (id >> 22) ≡ o (mod oldCount) and ≡ n (mod newCount), possible exactly when o ≡ n
 * modulo their gcd. Undefined past `MaxCatchUpPairs`.
 */
const catchUpPairs = (oldShards: ShardIds, newShards: ShardIds): Set<number> | undefined => {
  const g = gcd(oldShards.count, newShards.count)
  const pairs = new Set<number>()
  for (const n of newShards.ids) {
    for (const o of oldShards.ids) {
      if ((o - n) % g !== 0) continue
      if (pairs.size === MaxCatchUpPairs) return undefined
      pairs.add(o * newShards.count + n)
    }
  }
  return pairs
}

export const make = (options: {
  readonly windowMs: number
  readonly capacity: number
  /** The old set: each of its shards must catch up with every new shard it can share a guild with. */
  readonly oldShards: ShardIds
  /** The new set. */
  readonly newShards: ShardIds
  /** Called once, when the old set has caught up. */
  readonly onCaughtUp?: () => void
}): ReshardHandoff => {
  const { capacity, windowMs } = options
  /** Old-set deliveries the new set has not matched yet. */
  const fromOldSet = makeMemory(windowMs, capacity)
  /** After the switch: new-set deliveries the old set has not matched yet. */
  const fromNewSet = makeMemory(windowMs, capacity)
  let staged: Array<Staged> = []
  const unmatched = new Map<string, Array<Staged>>()
  const newCount = options.newShards.count
  /** The pairs still to catch up (undefined: not tracked, never caught up before the window). */
  const waiting = catchUpPairs(options.oldShards, options.newShards)
  let switchedAt: number | undefined
  let stagedTotal = 0
  let released = 0
  let deduplicated = 0

  // No old shard here can share a guild with a new shard here (each process runs some ids of each set):
  // nothing to catch up with.
  if (waiting?.size === 0) options.onCaughtUp?.()

  /** Old shard `from` delivered an event new shard `to` received: it has passed that shard's start. */
  const passed = (from: number, to: number) => {
    if (waiting === undefined || !waiting.delete(from * newCount + to) || waiting.size > 0) return
    options.onCaughtUp?.()
  }

  return {
    recordDelivered: (dispatch, now) => {
      const key = identity(dispatch)
      const list = unmatched.get(key)
      if (list !== undefined) {
        const entry = list.shift()!
        if (list.length === 0) unmatched.delete(key)
        entry.matched = true
        deduplicated++
        return passed(dispatch.shard, entry.dispatch.shard)
      }
      fromOldSet.add(key, dispatch.shard, now)
    },
    stage: (dispatch, now) => {
      if (switchedAt !== undefined) return
      stagedTotal++
      const key = identity(dispatch)
      const deliveredBy = fromOldSet.take(key, now)
      if (deliveredBy >= 0) {
        deduplicated++
        return passed(deliveredBy, dispatch.shard)
      }
      const entry: Staged = { dispatch, key, at: now, matched: false }
      staged.push(entry)
      const list = unmatched.get(key)
      if (list === undefined) unmatched.set(key, [entry])
      else list.push(entry)
      // Bounded: past the window an event's copy has reached the old set and been delivered there.
      let drop = 0
      while (drop < staged.length && (staged[drop]!.at + 2 * windowMs <= now || staged.length - drop > capacity)) {
        const old = staged[drop++]!
        if (old.matched) continue
        const same = unmatched.get(old.key)
        if (same === undefined) continue
        same.splice(same.indexOf(old), 1)
        if (same.length === 0) unmatched.delete(old.key)
      }
      if (drop > 0) staged = staged.slice(drop)
    },
    caughtUp: () => waiting !== undefined && waiting.size === 0,
    flush: (now) => {
      switchedAt = now
      const out: Array<Dispatch> = []
      for (const entry of staged) {
        if (entry.matched) continue
        out.push(entry.dispatch)
        fromNewSet.add(entry.key, entry.dispatch.shard, now) // delivered now: the old set's late copy must be dropped
      }
      staged = []
      unmatched.clear()
      released += out.length
      return out
    },
    fromOld: (dispatch, now) => {
      if (switchedAt === undefined || now >= switchedAt + windowMs) return false
      const key = identity(dispatch)
      if (fromNewSet.take(key, now) >= 0) {
        deduplicated++
        return false
      }
      fromOldSet.add(key, dispatch.shard, now)
      return true
    },
    fromNew: (dispatch, now) => {
      // Until two windows: the old set may deliver up to one window after the switch, and the new set's
      // copy of such an event may come up to a window later still.
      if (switchedAt === undefined || now >= switchedAt + 2 * windowMs) return true
      const key = identity(dispatch)
      if (fromOldSet.take(key, now) >= 0) {
        deduplicated++
        return false
      }
      fromNewSet.add(key, dispatch.shard, now)
      return true
    },
    expired: (now) => switchedAt !== undefined && now >= switchedAt + 2 * windowMs,
    stats: () => ({ staged: stagedTotal, released, deduplicated })
  }
}
