/**
 * HeartbeatTimer: one sleeping fiber runs every registered heartbeat at its time (PROTOCOL.md §1.4; the
 * shard-level rules, items 4–10, are tested through shards in test/shard/heartbeat.test.ts, each shard with
 * a timer of its own, and in test/gateway, where a Gateway's shards share one).
 *
 * Time is virtual (TestClock): every beat must run at exactly the instant its Schedule says, whatever the
 * order in which heartbeats were registered and removed.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Context, Deferred, Effect, Exit, Schedule, Schema, Scope } from "effect"
import { TestClock } from "effect/testing"
import { HeartbeatTimer } from "../src/HeartbeatTimer.ts"
import { liveClosures } from "./support/heapCensus.ts"

const int = (min: number, max: number) => Schema.Int.check(Schema.isBetween({ minimum: min, maximum: max }))

/** A target that records the time of each of its beats. */
const recorder = (times: Array<number>) => ({
  beat: () => Effect.clockWith((clock) => Effect.sync(() => void times.push(clock.currentTimeMillisUnsafe())))
})

/** The times `first, first + interval, …` up to `until`. */
const expectedTimes = (first: number, interval: number, until: number): Array<number> => {
  const times: Array<number> = []
  for (let t = first; t <= until; t += interval) times.push(t)
  return times
}

const Registration = Schema.Struct({
  /** When (virtual ms) the heartbeat is registered. */
  at: int(0, 3000),
  firstDelay: int(0, 4000),
  interval: int(1, 2500)
})

describe("HeartbeatTimer", () => {
  it.effect.prop(
    "every heartbeat runs exactly at registration + first delay, then every interval, whatever the order of registrations",
    { registrations: Schema.Array(Registration).check(Schema.isBetweenLength(1, 12)) },
    ({ registrations }) =>
      Effect.gen(function*() {
        const timer = yield* HeartbeatTimer.make
        const scope = yield* Effect.scope
        const horizon = 10_000
        const byTime = [...registrations].sort((a, b) => a.at - b.at)
        const recorded = byTime.map(() => [] as Array<number>)
        let now = 0
        for (let i = 0; i < byTime.length; i++) {
          const { at, firstDelay, interval } = byTime[i]!
          yield* TestClock.adjust(at - now)
          now = at
          yield* timer.every(scope, firstDelay, Schedule.spaced(interval), recorder(recorded[i]!))
        }
        yield* TestClock.adjust(horizon - now)
        for (let i = 0; i < byTime.length; i++) {
          const { at, firstDelay, interval } = byTime[i]!
          expect(recorded[i]).toEqual(expectedTimes(at + firstDelay, interval, horizon))
        }
      }).pipe(Effect.scoped),
    { arbitrary: { runs: 60 } }
  )

  it.effect("a heartbeat registered earlier than the one the timer sleeps for runs first, at its own time", () =>
    Effect.gen(function*() {
      const timer = yield* HeartbeatTimer.make
      const scope = yield* Effect.scope
      const late: Array<number> = []
      const early: Array<number> = []
      yield* timer.every(scope, 5000, Schedule.spaced(5000), recorder(late))
      yield* timer.every(scope, 100, Schedule.spaced(1000), recorder(early))
      yield* TestClock.adjust(5000)
      expect(early).toEqual([100, 1100, 2100, 3100, 4100])
      expect(late).toEqual([5000])
    }).pipe(Effect.scoped))

  it.effect("closing a heartbeat's Scope stops its beats at once; the others keep theirs", () =>
    Effect.gen(function*() {
      const timer = yield* HeartbeatTimer.make
      const kept: Array<number> = []
      const closed: Array<number> = []
      const keptScope = yield* Effect.scope
      const closedScope = yield* Scope.make()
      yield* timer.every(keptScope, 1000, Schedule.spaced(1000), recorder(kept))
      // Due at the same instants as `kept`: the earliest entry of the heap is the one removed.
      yield* timer.every(closedScope, 1000, Schedule.spaced(1000), recorder(closed))
      yield* TestClock.adjust(2500)
      yield* Scope.close(closedScope, Exit.void)
      yield* TestClock.adjust(2500)
      expect(closed).toEqual([1000, 2000])
      expect(kept).toEqual([1000, 2000, 3000, 4000, 5000])
    }).pipe(Effect.scoped))

  it.effect("a beat runs with the registering fiber's context and in its Scope: closing it interrupts a beat still running", () =>
    Effect.gen(function*() {
      class Connection extends Context.Service<Connection, { readonly id: number }>()("test/Connection") {}
      const timer = yield* HeartbeatTimer.make
      const scope = yield* Scope.make()
      const seen: Array<number> = []
      const running = yield* Deferred.make<void>()
      const interrupted = yield* Deferred.make<void>()
      const target = {
        beat: () =>
          Effect.gen(function*() {
            const connection = yield* Effect.serviceOption(Connection)
            seen.push(connection._tag === "Some" ? connection.value.id : -1)
            yield* Deferred.succeed(running, undefined)
            return yield* Effect.never
          }).pipe(Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined)))
      }
      yield* timer.every(scope, 1000, Schedule.spaced(1000), target).pipe(Effect.provideService(Connection, { id: 7 }))
      yield* TestClock.adjust(1000)
      yield* Deferred.await(running)
      expect(seen).toEqual([7])
      yield* Scope.close(scope, Exit.void)
      yield* Deferred.await(interrupted)
      yield* TestClock.adjust(5000)
      expect(seen).toEqual([7])
    }).pipe(Effect.scoped))

  it.effect("a step of the wall clock, back or forward, neither holds beats back nor runs them early (due times are monotonic)", () =>
    Effect.gen(function*() {
      const test = yield* Clock.Clock
      // The test clock with a wall time that can be stepped: monotonic time and sleeps are the test clock's.
      let wallOffset = 0
      const stepped: Clock.Clock = {
        currentTimeMillisUnsafe: () => test.currentTimeMillisUnsafe() + wallOffset,
        currentTimeMillis: Effect.sync(() => test.currentTimeMillisUnsafe() + wallOffset),
        currentTimeNanosUnsafe: () => test.currentTimeNanosUnsafe(),
        currentTimeNanos: test.currentTimeNanos,
        monotonicTimeNanosUnsafe: () => test.monotonicTimeNanosUnsafe(),
        monotonicTimeNanos: test.monotonicTimeNanos,
        sleep: (duration) => test.sleep(duration)
      }
      const timer = yield* HeartbeatTimer.make.pipe(Effect.provideService(Clock.Clock, stepped))
      const scope = yield* Effect.scope
      const times: Array<number> = []
      const target = { beat: () => Effect.sync(() => void times.push(test.currentTimeMillisUnsafe())) }
      yield* timer.every(scope, 1000, Schedule.spaced(1000), target).pipe(Effect.provideService(Clock.Clock, stepped))
      yield* TestClock.adjust(1500)
      wallOffset = -60_000 // the wall clock steps back a minute
      yield* TestClock.adjust(1000)
      wallOffset = 120_000 // then two minutes forward
      yield* TestClock.adjust(1000)
      // Recorded on the test clock itself: one beat a second throughout, none late, none bunched.
      expect(times).toEqual([1000, 2000, 3000])
    }).pipe(Effect.scoped))

  it.effect("a Schedule that ends ends its heartbeat: recurs(2) gives the first beat and two more", () =>
    Effect.gen(function*() {
      const timer = yield* HeartbeatTimer.make
      const scope = yield* Effect.scope
      const times: Array<number> = []
      yield* timer.every(scope, 500, Schedule.max([Schedule.spaced(1000), Schedule.recurs(2)]), recorder(times))
      yield* TestClock.adjust(10_000)
      expect(times).toEqual([500, 1500, 2500])
    }).pipe(Effect.scoped))

  it.effect("nothing of a heartbeat's registrant outlives its Scope: the timer's fiber keeps the timer's context, not the registrant's", () =>
    Effect.gen(function*() {
      class Registrant extends Context.Service<Registrant, { readonly heartbeatTimerTestMarker: () => void }>()("test/Registrant") {}
      const census = liveClosures(["heartbeatTimerTestMarker"])
      const timer = yield* HeartbeatTimer.make
      const scope = yield* Scope.make()
      // Registered (the first entry, so the timer's fiber is forked from this fiber) with a context whose
      // service has a closure the census can count.
      yield* timer.every(scope, 1000, Schedule.spaced(1000), recorder([])).pipe(
        Effect.provideService(Registrant, { heartbeatTimerTestMarker: () => {} })
      )
      yield* TestClock.adjust(2500)
      expect(yield* census).toEqual({ heartbeatTimerTestMarker: 1 })
      yield* Scope.close(scope, Exit.void)
      // A later entry makes the timer sleep for it: its fiber is the only part of the timer left running.
      yield* timer.every(yield* Effect.scope, 1000, Schedule.spaced(1000), recorder([]))
      yield* TestClock.adjust(2500)
      expect(yield* census).toEqual({ heartbeatTimerTestMarker: 0 })
    }).pipe(Effect.scoped))

  it.effect("the timer's fiber ends with its own Scope: no beat runs after it closes", () =>
    Effect.gen(function*() {
      const timerScope = yield* Scope.make()
      const timer = yield* HeartbeatTimer.make.pipe(Scope.provide(timerScope))
      const times: Array<number> = []
      yield* timer.every(yield* Effect.scope, 1000, Schedule.spaced(1000), recorder(times))
      yield* TestClock.adjust(1500)
      yield* Scope.close(timerScope, Exit.void)
      yield* TestClock.adjust(5000)
      expect(times).toEqual([1000])
    }).pipe(Effect.scoped))
})
