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
 * The switch waits until the old set has caught up (`caughtUp`): for every new shard, the old set has
 * delivered an event that shard also received. A new shard only receives events sent after its READY, so
 * the old set has then delivered every event sent before the new set existed — those reached the old set
 * only. (Bounded by the window: without traffic there is nothing to wait for.)
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
 * Guarantee (assuming the two sets' copies of an event arrive within `windowMs` of each other, and the old
 * set's connections deliver in the order events were sent): every event is delivered exactly once, and a
 * guild's events in order. Outside it: copies further apart than the window may be delivered twice; an
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
  const counts = new Map<string, number>()
  /** Keys consumed whose FIFO entries have not expired: expiry must not count them again. */
  const consumed = new Map<string, number>()
  const decrement = (map: Map<string, number>, key: string): boolean => {
    const n = map.get(key)
    if (n === undefined) return false
    if (n <= 1) map.delete(key)
    else map.set(key, n - 1)
    return true
  }
  const expire = (now: number) => {
    while (head < fifo.length && (fifo[head]!.at + 2 * windowMs <= now || fifo.length - head > capacity)) {
      const { key } = fifo[head++]!
      if (!decrement(consumed, key)) decrement(counts, key)
    }
    if (head > 1024 && head * 2 > fifo.length) {
      fifo.splice(0, head)
      head = 0
    }
  }
  return {
    add: (key: string, now: number) => {
      expire(now)
      fifo.push({ key, at: now })
      counts.set(key, (counts.get(key) ?? 0) + 1)
    },
    /** Takes one remembered copy of this key, if any. */
    take: (key: string, now: number): boolean => {
      expire(now)
      if (!decrement(counts, key)) return false
      consumed.set(key, (consumed.get(key) ?? 0) + 1)
      return true
    }
  }
}

export const make = (options: {
  readonly windowMs: number
  readonly capacity: number
  /** The new set's shard ids: the old set must catch up with each. */
  readonly newShards: ReadonlyArray<number>
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
  const waiting = new Set(options.newShards)
  let switchedAt: number | undefined
  let stagedTotal = 0
  let released = 0
  let deduplicated = 0

  /** The old set has delivered an event this new shard received: it has passed the shard's start. */
  const passed = (shard: number) => {
    if (!waiting.delete(shard) || waiting.size > 0) return
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
        return passed(entry.dispatch.shard)
      }
      fromOldSet.add(key, now)
    },
    stage: (dispatch, now) => {
      if (switchedAt !== undefined) return
      stagedTotal++
      const key = identity(dispatch)
      if (fromOldSet.take(key, now)) {
        deduplicated++
        return passed(dispatch.shard)
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
    caughtUp: () => waiting.size === 0,
    flush: (now) => {
      switchedAt = now
      const out: Array<Dispatch> = []
      for (const entry of staged) {
        if (entry.matched) continue
        out.push(entry.dispatch)
        fromNewSet.add(entry.key, now) // delivered now: the old set's late copy must be dropped
      }
      staged = []
      unmatched.clear()
      released += out.length
      return out
    },
    fromOld: (dispatch, now) => {
      if (switchedAt === undefined || now >= switchedAt + windowMs) return false
      const key = identity(dispatch)
      if (fromNewSet.take(key, now)) {
        deduplicated++
        return false
      }
      fromOldSet.add(key, now)
      return true
    },
    fromNew: (dispatch, now) => {
      // Until two windows: the old set may deliver up to one window after the switch, and the new set's
      // copy of such an event may come up to a window later still.
      if (switchedAt === undefined || now >= switchedAt + 2 * windowMs) return true
      const key = identity(dispatch)
      if (fromOldSet.take(key, now)) {
        deduplicated++
        return false
      }
      fromNewSet.add(key, now)
      return true
    },
    expired: (now) => switchedAt !== undefined && now >= switchedAt + 2 * windowMs,
    stats: () => ({ staged: stagedTotal, released, deduplicated })
  }
}
