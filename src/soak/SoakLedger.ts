/**
 * The soak's ledger: every soak event sent, every delivery, and at the end the verdict on each event that
 * never arrived (issue 5 "Soak": nothing lost, nothing twice; issue 4: exactly once across reshards).
 *
 * Each event carries a unique integer id (`data.soak`). When the traffic generator dispatches it, it tells
 * the ledger which simulator sessions the event went into (`sent`): the sessions that own the event's guild
 * at that instant, read in the same uninterrupted step as the dispatch, exactly as the simulator routes it
 * (PROTOCOL.md §4: every session, connected or resumable, whose `[id, count]` owns the guild). A session
 * numbers the event, keeps it for RESUME replay and sends it when connected (§1.7) — so an event that went
 * into at least one session is owed to the application unless every copy died with its session.
 *
 * Deliveries are counted per id: a second delivery of an id is a duplicate. Per guild, a delivery with a
 * smaller id than the guild's latest one is out of order (informational: a guild's events are sent in id
 * order; docs/RESHARDING.md says when a reshard may break it). The first of each are kept for the report.
 *
 * At the end (`settle`) each event never delivered is classified from the fate of the sessions it went into:
 * - none (no session owned its guild: the shard was between a destroyed session and its new READY, §1.9) —
 *   "not sent": Discord had nobody to send it to;
 * - at least one of them was destroyed by an injected fault (op 9 `d:false`, close 4003/4007/4009 — Discord
 *   cannot replay a dead session) and none of them is still alive — "lost with a destroyed session"
 *   (expected). The other sessions, if any, were ended by the client itself at a reshard (the old set closes
 *   with 1000 once the new one has taken over; ReshardHandoff gives it one window for late copies);
 * - otherwise — "missing": a live session (or one the client ended with no fault) had it, so the client
 *   should have delivered it. Missing events fail the soak.
 *
 * Memory is flat in the run length apart from one byte per id: an event's routing is kept only until its
 * first delivery.
 */

/** What the ledger keeps about an event until it is delivered. */
interface Pending {
  readonly guild: number
  /** Simulator session ids the event went into (empty: no session owned the guild). */
  readonly sessions: ReadonlyArray<string>
}

/** Running totals. */
export interface LedgerTotals {
  /** Events dispatched to the simulator (ids issued). */
  readonly sent: number
  /** Of those, events that went into no session (no session owned the guild at the time). */
  readonly notSent: number
  /** Distinct events delivered at least once. */
  readonly delivered: number
  /** Deliveries beyond the first of an id. */
  readonly duplicates: number
  /** Deliveries of a guild's event after a later event of that guild. */
  readonly outOfOrder: number
  /** Deliveries of an id the ledger never issued, or of an event that went into no session. */
  readonly unexpected: number
  /** Events that went into a session and are not delivered (yet). */
  readonly pending: number
}

/** One undelivered event and the sessions it went into, for the report. */
export interface MissingEvent {
  readonly id: number
  readonly guild: number
  readonly sessions: ReadonlyArray<{ readonly id: string; readonly fate: SessionFate }>
}

/** How many duplicate and out-of-order deliveries the report lists (the first ones). */
const DeliverySamples = 10

/** A delivery the report shows: a second (or later) one of an event, or one out of its guild's order. */
export interface DeliverySample {
  readonly id: number
  readonly guild: number
  /** The shard that delivered it, and when (the caller's clock, ms). */
  readonly shard: number
  readonly at: number
}

/** A delivery of an event after a later event of its guild (`after`: the latest id delivered for that guild). */
export interface OutOfOrderDelivery extends DeliverySample {
  readonly after: number
}

/** What became of a session, as far as the ledger can tell at the end. */
export type SessionFate = "alive" | "destroyed by a fault" | "ended by the client"

/** The final classification. */
export interface LedgerSettlement extends LedgerTotals {
  /** Undelivered, and every copy died with a session a fault destroyed (expected). */
  readonly lostWithDestroyedSession: number
  /** Undelivered although a session that was not destroyed by a fault had it (a bug). */
  readonly missing: number
  /** Up to `sampleSize` missing events. */
  readonly missingSamples: ReadonlyArray<MissingEvent>
  /** The first duplicate deliveries (up to 10). */
  readonly duplicateSamples: ReadonlyArray<DeliverySample>
  /** The first out-of-order deliveries (up to 10). */
  readonly outOfOrderSamples: ReadonlyArray<OutOfOrderDelivery>
}

export interface Ledger {
  /** Issues the next event id. */
  readonly nextId: () => number
  /** Event `id` of guild `guild` went into these simulator sessions (call in the same step as the dispatch). */
  readonly sent: (id: number, guild: number, sessions: ReadonlyArray<string>) => void
  /** The application received event `id` of guild `guild` from `shard` at `at` (ms). */
  readonly delivered: (id: number, guild: number, shard: number, at: number) => void
  /** These simulator sessions were destroyed by an injected fault. */
  readonly destroyedByFault: (sessionIds: Iterable<string>) => void
  /** Totals now. */
  readonly totals: () => LedgerTotals
  /** Events sent into a session that is still alive and not delivered yet (what a drain waits for). */
  readonly owed: (aliveSessions: ReadonlySet<string>) => number
  /** The verdict on every undelivered event, given the sessions alive now. */
  readonly settle: (aliveSessions: ReadonlySet<string>, sampleSize?: number) => LedgerSettlement
}

/** Low bits of an id's state byte: deliveries so far (saturating). */
const CountMask = 0x7f
/** High bit: the event went into no session. */
const NotSentFlag = 0x80

export const make = (guildCount: number): Ledger => {
  let issued = 0
  /** One byte per id: delivery count and the not-sent flag. Grows by doubling. */
  let states = new Uint8Array(1024)
  const pending = new Map<number, Pending>()
  const lastByGuild = new Float64Array(guildCount).fill(-1)
  const destroyed = new Set<string>()
  let notSent = 0
  let delivered = 0
  let duplicates = 0
  let outOfOrder = 0
  let unexpected = 0
  const duplicateSamples: Array<DeliverySample> = []
  const outOfOrderSamples: Array<OutOfOrderDelivery> = []

  const ensure = (id: number) => {
    if (id < states.length) return
    let size = states.length
    while (size <= id) size *= 2
    const next = new Uint8Array(size)
    next.set(states)
    states = next
  }

  const fateOf = (session: string, alive: ReadonlySet<string>): SessionFate =>
    alive.has(session) ? "alive" : destroyed.has(session) ? "destroyed by a fault" : "ended by the client"

  /** True when an undelivered event is an expected loss (see the module doc). */
  const expectedLoss = (entry: Pending, alive: ReadonlySet<string>): boolean => {
    let faulted = false
    for (const session of entry.sessions) {
      if (alive.has(session)) return false
      if (destroyed.has(session)) faulted = true
    }
    return faulted
  }

  const totals = (): LedgerTotals => ({
    sent: issued,
    notSent,
    delivered,
    duplicates,
    outOfOrder,
    unexpected,
    pending: pending.size
  })

  return {
    nextId: () => issued++,
    sent: (id, guild, sessions) => {
      ensure(id)
      if (sessions.length === 0) {
        states[id] = states[id]! | NotSentFlag
        notSent++
        return
      }
      pending.set(id, { guild, sessions })
    },
    delivered: (id, guild, shard, at) => {
      if (!Number.isInteger(id) || id < 0 || id >= issued) {
        unexpected++
        return
      }
      ensure(id)
      const state = states[id]!
      if ((state & NotSentFlag) !== 0) {
        unexpected++
        return
      }
      const count = state & CountMask
      if (count < CountMask) states[id] = state + 1
      if (count > 0) {
        duplicates++
        if (duplicateSamples.length < DeliverySamples) duplicateSamples.push({ id, guild, shard, at })
        return
      }
      delivered++
      pending.delete(id)
      if (guild >= 0 && guild < lastByGuild.length) {
        const latest = lastByGuild[guild]!
        if (id < latest) {
          outOfOrder++
          if (outOfOrderSamples.length < DeliverySamples) outOfOrderSamples.push({ id, guild, shard, at, after: latest })
        } else lastByGuild[guild] = id
      }
    },
    destroyedByFault: (sessionIds) => {
      for (const id of sessionIds) destroyed.add(id)
    },
    totals,
    owed: (alive) => {
      let n = 0
      for (const entry of pending.values()) {
        for (const session of entry.sessions) {
          if (alive.has(session)) {
            n++
            break
          }
        }
      }
      return n
    },
    settle: (alive, sampleSize = 10) => {
      let lost = 0
      let missing = 0
      const samples: Array<MissingEvent> = []
      for (const [id, entry] of pending) {
        if (expectedLoss(entry, alive)) {
          lost++
          continue
        }
        missing++
        if (samples.length < sampleSize) {
          samples.push({
            id,
            guild: entry.guild,
            sessions: entry.sessions.map((session) => ({ id: session, fate: fateOf(session, alive) }))
          })
        }
      }
      return {
        ...totals(),
        lostWithDestroyedSession: lost,
        missing,
        missingSamples: samples,
        duplicateSamples: duplicateSamples.slice(),
        outOfOrderSamples: outOfOrderSamples.slice()
      }
    }
  }
}
