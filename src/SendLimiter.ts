/**
 * SendLimiter: the per-connection client send limit (PROTOCOL.md §3 "Send limit", checklist items 40–41).
 *
 * Discord closes a connection with 4008 when the client sends more than 120 frames in 60 s, and every
 * op counts (heartbeats, IDENTIFY and RESUME included). The docs do not say whether the window is fixed
 * or sliding, so this limiter enforces the stricter reading: no sliding window of `windowMs` ever holds
 * more than `limit` frames.
 *
 * Room is kept for heartbeats. Frames of priority `"heartbeat"` (op 1, answers to a server op 1,
 * IDENTIFY, RESUME) may go while fewer than `limit` frames are in the window; `"command"` frames only
 * while fewer than `limit - heartbeatReserve(I)` *commands* are (and fewer than `limit` frames in all).
 * With regular heartbeats every `I` ms the reserve (`ceil(window / I) + 1`) covers every heartbeat of a
 * window plus one session-start frame, so a heartbeat never waits however many commands are queued, and
 * commands keep `limit - reserve` frames per window whatever the interval (117 at Discord's usual
 * I ≈ 41.25 s, 79 at a test interval of 1.5 s).
 *
 * Each connection makes its own limiter (the budget resets with every connection). It is not a
 * service. Commands are served first come, first served: a caller that has to wait is queued, only
 * the head of the queue sleeps, and it sleeps exactly until the send that blocks it leaves the window
 * (no polling). Heartbeats have their own queue and never wait behind commands. Send times live in a
 * ring buffer that starts small and doubles up to `limit` timestamps (an idle connection sends a beat per
 * interval and keeps a few bytes); once grown, the limiter allocates nothing for a send that need not wait.
 * Time is read from, and slept on, the Clock of the context that made the limiter (TestClock in tests).
 */
import type { Clock } from "effect"
import { Deferred, Duration, Effect, MutableList } from "effect"

/** `"heartbeat"`: op 1, answers to a server op 1, IDENTIFY and RESUME. `"command"`: everything else. */
export type SendPriority = "heartbeat" | "command"

export interface SendLimiter {
  /** Waits (on Effect's Clock) until a frame of this priority may go out, then records it as sent now. Never fails, never drops. */
  readonly acquire: (priority: SendPriority) => Effect.Effect<void>
  /** Frames sent in the current window (for status/tests). */
  readonly inWindow: Effect.Effect<number>
}

/** Slots a window starts with (a heartbeat per interval and a session start fit). */
const InitialWindowSlots = 4

/** Discord's limit: 120 frames… */
export const defaultLimit = 120
/** …per 60 s. */
export const defaultWindowMs = 60_000

/**
 * Slots kept free for heartbeats: `ceil(windowMs / heartbeatIntervalMs) + 1` (every heartbeat a
 * window can hold, plus one IDENTIFY/RESUME or answer to a server op 1), at most `limit - 1` so that
 * commands always keep one slot.
 */
export const heartbeatReserve = (
  heartbeatIntervalMs: number,
  windowMs: number = defaultWindowMs,
  limit: number = defaultLimit
): number => {
  const max = Math.max(0, limit - 1)
  if (!(heartbeatIntervalMs > 0)) return max
  return Math.min(Math.ceil(windowMs / heartbeatIntervalMs) + 1, max)
}

/**
 * Builds the limiter of one connection. `heartbeatIntervalMs` is the interval from Hello; `limit` and
 * `windowMs` default to Discord's 120 per 60 s. Invalid options are a defect.
 */
export const make = (options: {
  readonly heartbeatIntervalMs: number
  readonly limit?: number
  readonly windowMs?: number
}): Effect.Effect<SendLimiter> =>
  Effect.suspend(() => {
    const limit = options.limit ?? defaultLimit
    const windowMs = options.windowMs ?? defaultWindowMs
    if (!Number.isInteger(limit) || limit < 1) {
      return Effect.die(new RangeError(`SendLimiter: limit must be a positive integer, got ${limit}`))
    }
    if (!(windowMs > 0) || !Number.isFinite(windowMs)) {
      return Effect.die(new RangeError(`SendLimiter: windowMs must be a positive number, got ${windowMs}`))
    }
    return Effect.clockWith((clock) => Effect.succeed(makeWith(clock, limit, windowMs, options.heartbeatIntervalMs)))
  })

/** The send times of one kind still inside the window: a ring buffer, oldest first, grown on demand. */
class SendWindow {
  private times: Array<number>
  private head = 0
  size = 0
  private readonly capacity: number
  private readonly windowMs: number
  constructor(capacity: number, windowMs: number) {
    this.capacity = capacity
    this.windowMs = windowMs
    this.times = new Array<number>(Math.min(InitialWindowSlots, Math.max(1, capacity))).fill(0)
  }
  evict(now: number): void {
    const times = this.times
    while (this.size > 0 && times[this.head]! + this.windowMs <= now) {
      this.head = this.head + 1 === times.length ? 0 : this.head + 1
      this.size--
    }
  }
  /** 0 if fewer than `cap` sends are in the window; else ms (> 0) until one more would fit. Call after evict. */
  waitFor(cap: number, now: number): number {
    if (this.size < cap) return 0
    // In-window sends are indexed 0 (oldest) … size-1; the one at `size - cap` must leave.
    let slot = this.head + this.size - cap
    if (slot >= this.times.length) slot -= this.times.length
    return this.times[slot]! + this.windowMs - now
  }
  /** Records a send; the caller never records more than `capacity` sends in the window. */
  record(now: number): void {
    if (this.size === this.times.length) {
      // Full: double (at most `capacity`), oldest first from slot 0.
      const times = this.times
      const grown = new Array<number>(Math.min(this.capacity, times.length * 2)).fill(0)
      for (let i = 0; i < this.size; i++) grown[i] = times[(this.head + i) % times.length]!
      this.times = grown
      this.head = 0
    }
    let slot = this.head + this.size
    if (slot >= this.times.length) slot -= this.times.length
    this.times[slot] = now
    this.size++
  }
}

/**
 * One FIFO queue of callers of the same priority. `active`: some caller is at the head of this lane (it is
 * sleeping until room frees up, or has just been handed the turn); later callers park behind it, in order.
 * What only waiting needs (the parked list, the retry effects) is made when a caller first has to wait.
 */
class Lane {
  private active = false
  private parked: MutableList.MutableList<Deferred.Deferred<void>> | undefined
  /** The lane's `acquire`: one effect, made once, run by every caller. */
  readonly acquire: Effect.Effect<void>
  private waiting: { readonly attempt: Effect.Effect<void>; readonly afterTurn: Effect.Effect<void>; readonly passTurn: Effect.Effect<void> } | undefined

  private readonly limiter: Limiter
  private readonly priority: SendPriority

  constructor(limiter: Limiter, priority: SendPriority) {
    this.limiter = limiter
    this.priority = priority
    // Room now and nobody queued (the common case) needs no mask: taking a slot is synchronous.
    this.acquire = Effect.suspend(() =>
      !this.active && this.limiter.tryTake(this.priority) === 0
        ? Effect.void
        : Effect.uninterruptibleMask((restore) => this.enter(restore))
    )
  }

  private passTurn(): void {
    const next = this.parked === undefined ? MutableList.Empty : MutableList.take(this.parked)
    if (next === MutableList.Empty) this.active = false
    else Deferred.doneUnsafe(next, Effect.void)
  }

  private makeWaiting() {
    const attempt: Effect.Effect<void> = Effect.suspend(() => {
      const wait = this.limiter.tryTake(this.priority)
      return wait === 0 ? Effect.void : Effect.andThen(this.limiter.clock.sleep(Duration.millis(wait)), attempt)
    })
    // Completing a Deferred resumes its waiter inline, inside the fiber that passes the turn. The woken
    // caller yields first, so the one that just got its slot returns to its own caller (and writes its
    // frame) before the next one is served, and turns never nest on the stack.
    return { attempt, afterTurn: Effect.andThen(Effect.yieldNow, attempt), passTurn: Effect.sync(() => this.passTurn()) }
  }

  /** A caller that has to wait (no room now, or others are queued). */
  private enter(restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>): Effect.Effect<void> {
    if (!this.active) {
      // No room now (the fast path found none, and no time has passed since): sleep at the head of the lane.
      this.active = true
      const waiting = this.waiting ??= this.makeWaiting()
      return Effect.ensuring(restore(waiting.attempt), waiting.passTurn)
    }
    const waiting = this.waiting ??= this.makeWaiting()
    const parked = this.parked ??= MutableList.make()
    const turn = Deferred.makeUnsafe<void>()
    MutableList.append(parked, turn)
    return Effect.ensuring(
      restore(Effect.andThen(Deferred.await(turn), waiting.afterTurn)),
      Effect.sync(() => {
        // Handed the turn (even if interrupted right after): pass it on. Still parked: leave the queue.
        if (Deferred.isDoneUnsafe(turn)) this.passTurn()
        else MutableList.remove(parked, turn)
      })
    )
  }
}

/**
 * A connection's limiter. Its state is fields and its steps are methods, so a connection keeps a few small
 * objects for it rather than a set of closures: every connection has one for as long as it lives.
 */
class Limiter implements SendLimiter {
  /** Every frame. */
  private readonly all: SendWindow
  /** Commands alone, made at the first command: many connections only ever beat. */
  private commands: SendWindow | undefined
  private readonly heartbeatLane: Lane
  private commandLane: Lane | undefined

  readonly clock: Clock.Clock
  private readonly limit: number
  private readonly windowMs: number
  private readonly commandCap: number

  constructor(clock: Clock.Clock, limit: number, windowMs: number, commandCap: number) {
    this.clock = clock
    this.limit = limit
    this.windowMs = windowMs
    this.commandCap = commandCap
    // Nothing is recorded past a cap, so neither window ever overflows.
    this.all = new SendWindow(limit, windowMs)
    this.heartbeatLane = new Lane(this, "heartbeat")
  }

  acquire(priority: SendPriority): Effect.Effect<void> {
    return priority === "heartbeat" ? this.heartbeatLane.acquire : (this.commandLane ??= new Lane(this, "command")).acquire
  }

  get inWindow(): Effect.Effect<number> {
    return Effect.sync(() => {
      this.all.evict(this.clock.currentTimeMillisUnsafe())
      return this.all.size
    })
  }

  /**
   * Records a send of this priority now if there is room and returns 0; otherwise returns how long
   * (ms, > 0) until there is.
   */
  tryTake(priority: SendPriority): number {
    const now = this.clock.currentTimeMillisUnsafe()
    const all = this.all
    all.evict(now)
    const waitAll = all.waitFor(this.limit, now)
    if (priority === "heartbeat") {
      if (waitAll === 0) all.record(now)
      return waitAll
    }
    const commands = this.commands ??= new SendWindow(this.commandCap, this.windowMs)
    commands.evict(now)
    const wait = Math.max(waitAll, commands.waitFor(this.commandCap, now))
    if (wait === 0) {
      all.record(now)
      commands.record(now)
    }
    return wait
  }
}

const makeWith = (clock: Clock.Clock, limit: number, windowMs: number, heartbeatIntervalMs: number): SendLimiter =>
  new Limiter(clock, limit, windowMs, limit - heartbeatReserve(heartbeatIntervalMs, windowMs, limit))
