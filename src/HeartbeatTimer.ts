/**
 * HeartbeatTimer: runs the heartbeats of many connections from one sleeping fiber (PROTOCOL.md §1.4: a
 * beat every `heartbeat_interval`, the first after interval × U[0,1)).
 *
 * A heartbeat waits almost all of its life. A fiber sleeping per connection costs about 2.8 KiB (the fiber,
 * its stack, the sleep's callbacks and Node timer, its place in the Scope), more than anything else a
 * connection keeps besides its socket. Here each heartbeat is an entry in a min-heap ordered by when it is
 * due, and one fiber sleeps on the Clock until the earliest: when it wakes, each due beat runs on a fiber of
 * its own, in the Scope and with the context of the connection that registered it (its log annotations, its
 * services), and its next time comes from its Schedule's step. An entry earlier than the one the fiber
 * sleeps for replaces the sleeping fiber; a closed Scope removes its entry at once.
 *
 * Time is the Clock's, so under TestClock beats happen exactly when due. When a beat is due is kept in the
 * Clock's monotonic time, as a sleep per connection was: a step of the wall clock (a VM resumed, NTP) neither
 * holds beats back nor runs them early (an early beat, before the last one's ACK, would look like a zombie
 * connection). A Schedule's step is given the wall time, as Schedules expect. A Gateway shares one timer
 * between all of its shards; a shard started without one in its context makes its own.
 */
import { Clock, Context, Duration, Effect, Fiber, Layer, Pull, Schedule, Scope } from "effect"

const NanosPerMilli = BigInt(1_000_000)

type Step = (now: number, input: unknown) => Pull.Pull<[unknown, Duration.Duration], never, unknown>

/**
 * What a heartbeat runs: its `beat`, called each time it is due. A method of an object the caller already
 * has (a shard's connection), so that the timer keeps no closure per heartbeat.
 */
export interface HeartbeatTarget {
  // @effect-diagnostics-next-line lazyEffect:off -- a method of the caller's object, not a thunk: no closure per entry
  beat(): Effect.Effect<void>
}

/** One registered heartbeat: when it is next due and what runs then. */
class Entry {
  /** When it is next due: the Clock's monotonic time, in ms. */
  due: number
  /** Position in the heap; -1 while it is not in it (running, or removed). */
  index = -1
  /** Its Scope closed: it is never put back. */
  closed = false
  readonly target: HeartbeatTarget
  readonly step: Step
  readonly scope: Scope.Scope
  readonly context: Context.Context<never>

  constructor(due: number, target: HeartbeatTarget, step: Step, scope: Scope.Scope, context: Context.Context<never>) {
    this.due = due
    this.target = target
    this.step = step
    this.scope = scope
    this.context = context
  }
}

/** A binary min-heap of entries by `due`, each knowing its index so that it can be removed in O(log n). */
class EntryHeap {
  private readonly entries: Array<Entry> = []

  get size(): number {
    return this.entries.length
  }

  peek(): Entry | undefined {
    return this.entries[0]
  }

  push(entry: Entry): void {
    entry.index = this.entries.length
    this.entries.push(entry)
    this.up(entry.index)
  }

  remove(entry: Entry): void {
    const i = entry.index
    if (i < 0) return
    entry.index = -1
    const last = this.entries.pop()!
    if (i === this.entries.length) return
    this.entries[i] = last
    last.index = i
    this.down(i)
    this.up(last.index)
  }

  private up(i: number): void {
    const entries = this.entries
    const entry = entries[i]!
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (entries[parent]!.due <= entry.due) break
      entries[i] = entries[parent]!
      entries[i]!.index = i
      i = parent
    }
    entries[i] = entry
    entry.index = i
  }

  private down(i: number): void {
    const entries = this.entries
    const entry = entries[i]!
    const n = entries.length
    for (;;) {
      let child = 2 * i + 1
      if (child >= n) break
      if (child + 1 < n && entries[child + 1]!.due < entries[child]!.due) child++
      if (entries[child]!.due >= entry.due) break
      entries[i] = entries[child]!
      entries[i]!.index = i
      i = child
    }
    entries[i] = entry
    entry.index = i
  }
}

export interface HeartbeatTimerService {
  /**
   * Runs `target.beat()` after `firstDelayMs`, then after every delay `schedule` gives (its step is taken
   * when a beat runs), until `scope` closes or the Schedule ends. Each run is a fiber of its own in `scope`,
   * with the caller's context.
   */
  readonly every: (
    scope: Scope.Scope,
    firstDelayMs: number,
    schedule: Schedule.Schedule<unknown>,
    target: HeartbeatTarget
  ) => Effect.Effect<void>
}

/** Builds a timer whose fiber lives in the current Scope and sleeps on the current Clock. */
const make: Effect.Effect<HeartbeatTimerService, never, Scope.Scope> = Effect.gen(function*() {
  const timerScope = yield* Effect.scope
  const timerContext = yield* Effect.context<never>()
  const clock = yield* Clock.Clock
  const monotonicMillis = (): number => Number(clock.monotonicTimeNanosUnsafe() / NanosPerMilli)
  const heap = new EntryHeap()
  let sleeper: Fiber.Fiber<void> | undefined
  let sleeperDue = Infinity

  /** Makes the sleeping fiber wake for the earliest entry, if it sleeps for a later one (or none sleeps). */
  const reschedule: Effect.Effect<void> = Effect.suspend(() => {
    const first = heap.peek()
    if (first === undefined || (sleeper !== undefined && sleeperDue <= first.due)) return Effect.void
    sleeper?.interruptUnsafe()
    sleeperDue = first.due
    const delay = Duration.millis(Math.max(0, first.due - monotonicMillis()))
    // Forked under the timer's own context, whichever fiber registered the entry: a forked fiber starts with
    // its parent's context and keeps it, and a shard's (its sink, its set) must not outlive the shard.
    return Effect.map(Effect.forkIn(Effect.andThen(Effect.sleep(delay), fire), timerScope), (fiber) => {
      sleeper = fiber
    }).pipe(Effect.updateContext((_: Context.Context<never>) => timerContext))
  })

  /** Runs an entry's beat, and puts it back at the time its Schedule gives next (unless the Schedule ended). */
  const run = (entry: Entry, now: number, wallNow: number): Effect.Effect<void> =>
    Effect.andThen(
      Effect.forkIn(
        Effect.suspend(() => entry.target.beat()).pipe(Effect.updateContext((_: Context.Context<never>) => entry.context)),
        entry.scope
      ),
      Effect.matchCause(entry.step(wallNow, undefined), {
        onFailure: () => undefined,
        onSuccess: ([, delay]) => {
          // Its Scope may have closed meanwhile: then it is not put back.
          if (entry.closed) return
          entry.due = now + Duration.toMillis(delay)
          heap.push(entry)
        }
      })
    )

  /** Wakes: every due entry runs, then the fiber sleeps again for the next. */
  const fire: Effect.Effect<void> = Effect.suspend(() => {
    sleeper = undefined
    sleeperDue = Infinity
    const now = monotonicMillis()
    const wallNow = clock.currentTimeMillisUnsafe()
    const due: Array<Entry> = []
    for (let first = heap.peek(); first !== undefined && first.due <= now; first = heap.peek()) {
      heap.remove(first)
      due.push(first)
    }
    return Effect.andThen(Effect.forEach(due, (entry) => run(entry, now, wallNow), { discard: true }), reschedule)
  })

  /**
   * The entry leaves the heap when its Scope closes: one closure that keeps only the entry, doing its work
   * when the closing Scope calls it (which runs the returned effect at once), rather than an effect and a
   * closure to return it.
   */
  const removeOnClose = (entry: Entry) =>
    Scope.addFinalizerExit(entry.scope, () => {
      entry.closed = true
      heap.remove(entry)
      return Effect.void
    })

  const every: HeartbeatTimerService["every"] = (scope, firstDelayMs, schedule, target) =>
    Effect.flatMap(Effect.context<never>(), (context) =>
      Effect.flatMap(Schedule.toStep(schedule), (step) => {
        const entry = new Entry(monotonicMillis() + firstDelayMs, target, step as Step, scope, context)
        heap.push(entry)
        return Effect.andThen(removeOnClose(entry), reschedule)
      }))

  return { every }
})

export class HeartbeatTimer extends Context.Service<HeartbeatTimer, HeartbeatTimerService>()(
  "effect-discord-gateway/HeartbeatTimer"
) {
  /** Builds a timer in the current Scope (its fiber ends with it), on the current Clock. */
  static readonly make = make

  /** The timer of the current context when there is one (shared), else a new one in the current Scope. */
  static readonly sharedOrMake: Effect.Effect<HeartbeatTimerService, never, Scope.Scope> = Effect.flatMap(
    Effect.serviceOption(HeartbeatTimer),
    (shared) => shared._tag === "Some" ? Effect.succeed(shared.value) : make
  )

  /** One timer for every shard built with it. */
  static readonly layer: Layer.Layer<HeartbeatTimer> = Layer.effect(HeartbeatTimer, make)
}
