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
const makeWindow = (capacity: number, windowMs: number) => {
  let times = new Float64Array(Math.min(InitialWindowSlots, Math.max(1, capacity)))
  let head = 0
  let size = 0
  return {
    size: () => size,
    evict(now: number): void {
      while (size > 0 && times[head]! + windowMs <= now) {
        head = head + 1 === times.length ? 0 : head + 1
        size--
      }
    },
    /** 0 if fewer than `cap` sends are in the window; else ms (> 0) until one more would fit. Call after evict. */
    waitFor(cap: number, now: number): number {
      if (size < cap) return 0
      // In-window sends are indexed 0 (oldest) … size-1; the one at `size - cap` must leave.
      let slot = head + size - cap
      if (slot >= times.length) slot -= times.length
      return times[slot]! + windowMs - now
    },
    /** Records a send; the caller never records more than `capacity` sends in the window. */
    record(now: number): void {
      if (size === times.length) {
        // Full: double (at most `capacity`), oldest first from slot 0.
        const grown = new Float64Array(Math.min(capacity, times.length * 2))
        grown.set(times.subarray(head))
        grown.set(times.subarray(0, head), times.length - head)
        times = grown
        head = 0
      }
      let slot = head + size
      if (slot >= times.length) slot -= times.length
      times[slot] = now
      size++
    }
  }
}

const makeWith = (clock: Clock.Clock, limit: number, windowMs: number, heartbeatIntervalMs: number): SendLimiter => {
  const commandCap = limit - heartbeatReserve(heartbeatIntervalMs, windowMs, limit)
  // Every frame, and commands alone (made at the first command: many connections only ever beat). Nothing is
  // recorded past a cap, so neither ever overflows.
  const all = makeWindow(limit, windowMs)
  let commands: ReturnType<typeof makeWindow> | undefined

  /**
   * Records a send of this priority now if there is room and returns 0; otherwise returns how long
   * (ms, > 0) until there is.
   */
  const tryTake = (priority: SendPriority): number => {
    const now = clock.currentTimeMillisUnsafe()
    all.evict(now)
    const waitAll = all.waitFor(limit, now)
    if (priority === "heartbeat") {
      if (waitAll === 0) all.record(now)
      return waitAll
    }
    commands ??= makeWindow(commandCap, windowMs)
    commands.evict(now)
    const wait = Math.max(waitAll, commands.waitFor(commandCap, now))
    if (wait === 0) {
      all.record(now)
      commands.record(now)
    }
    return wait
  }

  /** One FIFO queue of callers of the same priority. */
  const lane = (priority: SendPriority): Effect.Effect<void> => {
    // `active`: some caller is at the head of this lane (it is sleeping until room frees up, or has just
    // been handed the turn). Later callers park behind it, in order.
    let active = false
    const parked = MutableList.make<Deferred.Deferred<void>>()

    const passTurn = (): void => {
      const next = MutableList.take(parked)
      if (next === MutableList.Empty) active = false
      else Deferred.doneUnsafe(next, Effect.void)
    }
    const passTurnEffect = Effect.sync(passTurn)

    const attempt: Effect.Effect<void> = Effect.suspend(() => {
      const wait = tryTake(priority)
      return wait === 0 ? Effect.void : Effect.andThen(clock.sleep(Duration.millis(wait)), attempt)
    })
    // Completing a Deferred resumes its waiter inline, inside the fiber that passes the turn. The woken
    // caller yields first, so the one that just got its slot returns to its own caller (and writes its
    // frame) before the next one is served, and turns never nest on the stack.
    const afterTurn = Effect.andThen(Effect.yieldNow, attempt)

    return Effect.uninterruptibleMask((restore) => {
      if (!active) {
        if (tryTake(priority) === 0) return Effect.void // fast path: nobody queued, room now
        active = true
        return Effect.ensuring(restore(attempt), passTurnEffect)
      }
      const turn = Deferred.makeUnsafe<void>()
      MutableList.append(parked, turn)
      return Effect.ensuring(
        restore(Effect.andThen(Deferred.await(turn), afterTurn)),
        Effect.sync(() => {
          // Handed the turn (even if interrupted right after): pass it on. Still parked: leave the queue.
          if (Deferred.isDoneUnsafe(turn)) passTurn()
          else MutableList.remove(parked, turn)
        })
      )
    })
  }

  const heartbeat = lane("heartbeat")
  let command: Effect.Effect<void> | undefined

  return {
    acquire: (priority) => priority === "heartbeat" ? heartbeat : (command ??= lane("command")),
    inWindow: Effect.sync(() => {
      all.evict(clock.currentTimeMillisUnsafe())
      return all.size()
    })
  }
}
