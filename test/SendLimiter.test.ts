/**
 * Tests of the per-connection send limiter (PROTOCOL.md §3 send limit; checklist items 40 and 41), all on
 * the TestClock: no sliding window ever carries more than `limit` frames, heartbeats never wait behind
 * queued commands, commands are never dropped and keep their order, waits end exactly when the blocking
 * send leaves the window.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Exit, Fiber, Schema } from "effect"
import { TestClock } from "effect/testing"
import * as SendLimiter from "../src/SendLimiter.ts"
import { maxInAnyWindow } from "./support/slidingWindow.ts"

/** A test connection: the limiter plus a log of every send time and of the order commands went out in. */
const harness = (options: Parameters<typeof SendLimiter.make>[0]) =>
  Effect.gen(function*() {
    const limiter = yield* SendLimiter.make(options)
    const sendTimes: Array<number> = []
    const commandOrder: Array<number> = []
    const commandTimes: Array<number> = []
    let issued = 0
    /** Queues one command; its ticket is its position in the order of `acquire` calls. */
    const command = Effect.suspend(() => {
      const ticket = issued++
      return limiter.acquire("command").pipe(
        Effect.andThen(Clock.currentTimeMillis),
        Effect.map((now) => {
          sendTimes.push(now)
          commandOrder.push(ticket)
          commandTimes[ticket] = now
        })
      )
    })
    /** Sends one heartbeat-priority frame; returns how long its acquire waited. */
    const heartbeat = Effect.gen(function*() {
      const before = yield* Clock.currentTimeMillis
      yield* limiter.acquire("heartbeat")
      const after = yield* Clock.currentTimeMillis
      sendTimes.push(after)
      return after - before
    })
    /** Heartbeats at `first`, `first + interval`, … (fixed schedule); collects each one's wait. */
    const heartbeatLoop = (first: number, interval: number, waits: Array<number>) =>
      Effect.gen(function*() {
        let due = first
        while (true) {
          const now = yield* Clock.currentTimeMillis
          if (due > now) yield* Effect.sleep(due - now)
          waits.push(yield* heartbeat)
          due += interval
        }
      })
    const issuedCount = () => issued
    return { limiter, sendTimes, commandOrder, commandTimes, command, heartbeat, heartbeatLoop, issuedCount }
  })

const range = (n: number) => Array.from({ length: n }, (_, i) => i)

describe("SendLimiter", () => {
  it("heartbeatReserve is ceil(window / interval) + 1, at most limit - 1", () => {
    expect(SendLimiter.heartbeatReserve(41_250)).toBe(3)
    expect(SendLimiter.heartbeatReserve(45_000)).toBe(3)
    expect(SendLimiter.heartbeatReserve(60_000)).toBe(2)
    expect(SendLimiter.heartbeatReserve(1_500)).toBe(41)
    expect(SendLimiter.heartbeatReserve(100)).toBe(119)
    expect(SendLimiter.heartbeatReserve(0)).toBe(119)
    expect(SendLimiter.heartbeatReserve(1_000, 1_000, 5)).toBe(2)
    expect(SendLimiter.heartbeatReserve(10, 1_000, 5)).toBe(4)
  })

  it.effect("a command waits exactly until the oldest blocking send leaves the window", () =>
    Effect.gen(function*() {
      // limit 5, reserve 2 => commands may go while < 3 frames are in the window
      const h = yield* harness({ heartbeatIntervalMs: 1_000, limit: 5, windowMs: 1_000 })
      const fiber = yield* Effect.forkChild(Effect.forEach(range(7), () => h.command, { concurrency: "unbounded" }))
      yield* TestClock.adjust(0)
      expect(yield* h.limiter.inWindow).toBe(3)
      yield* TestClock.adjust(999)
      expect(h.commandTimes.length).toBe(3)
      expect(yield* h.limiter.inWindow).toBe(3)
      yield* TestClock.adjust(1)
      yield* TestClock.adjust(1_000)
      yield* Fiber.join(fiber)
      expect(h.commandTimes).toEqual([0, 0, 0, 1_000, 1_000, 1_000, 2_000])
      expect(h.commandOrder).toEqual(range(7))
    }))

  it.effect("heartbeats use the reserved room that commands may not take", () =>
    Effect.gen(function*() {
      const h = yield* harness({ heartbeatIntervalMs: 1_000, limit: 5, windowMs: 1_000 })
      const commands = yield* Effect.forkChild(Effect.forEach(range(4), () => h.command, { concurrency: "unbounded" }))
      yield* TestClock.adjust(0)
      expect(h.commandTimes).toEqual([0, 0, 0])
      expect(yield* h.heartbeat).toBe(0) // 4th frame: goes although a command is queued
      expect(yield* h.heartbeat).toBe(0) // 5th frame
      expect(yield* h.limiter.inWindow).toBe(5)
      const third = yield* Effect.forkChild(h.heartbeat) // the window is full: waits for t = 1000
      yield* TestClock.adjust(1_000)
      expect(yield* Fiber.join(third)).toBe(1_000)
      yield* Fiber.join(commands)
      expect(h.commandTimes).toEqual([0, 0, 0, 1_000])
      expect(yield* h.limiter.inWindow).toBe(2)
    }))

  it.effect("a waiting command is not overtaken by a later command when room frees up", () =>
    Effect.gen(function*() {
      const h = yield* harness({ heartbeatIntervalMs: 1_000, limit: 5, windowMs: 1_000 }) // commands: < 3
      const at: Record<string, number> = {}
      const send = (name: string) => Effect.andThen(h.command, Clock.currentTimeMillis).pipe(Effect.map((t) => (at[name] = t)))
      yield* send("c0")
      // B's timer is registered first, so it fires before A's at t = 1000 and calls acquire before A wakes
      const b = yield* Effect.forkChild(Effect.andThen(Effect.sleep(1_000), send("B")))
      yield* TestClock.adjust(500)
      yield* send("c1")
      yield* send("c2")
      const a = yield* Effect.forkChild(send("A")) // window full: A waits for c0 to leave (t = 1000)
      yield* TestClock.adjust(500)
      yield* TestClock.adjust(500)
      yield* Fiber.join(a)
      yield* Fiber.join(b)
      expect(at).toEqual({ c0: 0, c1: 500, c2: 500, A: 1_000, B: 1_500 })
    }))

  it.effect("when the heartbeat reserve would take the whole limit, commands still keep one slot per window", () =>
    Effect.gen(function*() {
      // limit 5, I = 100 ms over a 1000 ms window: ceil(1000 / 100) + 1 = 11 slots wanted, capped at 4
      const h = yield* harness({ heartbeatIntervalMs: 100, limit: 5, windowMs: 1_000 })
      const fiber = yield* Effect.forkChild(Effect.forEach(range(3), () => h.command, { concurrency: "unbounded" }))
      yield* TestClock.adjust(2_000)
      expect(h.commandTimes).toEqual([0, 1_000, 2_000]) // checked before joining: starved commands would still wait
      yield* Fiber.join(fiber)
    }))

  it.effect("inWindow counts only the sends of the last window, even when nothing was sent since", () =>
    Effect.gen(function*() {
      const h = yield* harness({ heartbeatIntervalMs: 1_000, limit: 5, windowMs: 1_000 })
      yield* h.heartbeat
      yield* TestClock.adjust(500)
      yield* h.command
      expect(yield* h.limiter.inWindow).toBe(2)
      yield* TestClock.adjust(500) // the send of t = 0 leaves
      expect(yield* h.limiter.inWindow).toBe(1)
      yield* TestClock.adjust(500)
      expect(yield* h.limiter.inWindow).toBe(0)
    }))

  it.effect("interrupting waiting commands neither loses nor blocks the others", () =>
    Effect.gen(function*() {
      const h = yield* harness({ heartbeatIntervalMs: 1_000, limit: 5, windowMs: 1_000 }) // commands: < 3
      yield* Effect.forEach(range(3), () => h.command)
      const a = yield* Effect.forkChild(h.command) // head of the queue, sleeping until t = 1000
      const b = yield* Effect.forkChild(h.command) // parked
      const c = yield* Effect.forkChild(h.command) // parked
      yield* TestClock.adjust(500)
      yield* Fiber.interrupt(a)
      yield* Fiber.interrupt(c)
      const d = yield* Effect.forkChild(h.command)
      yield* TestClock.adjust(499)
      expect(h.commandOrder).toEqual([0, 1, 2])
      yield* TestClock.adjust(1)
      yield* Fiber.join(b)
      yield* Fiber.join(d)
      expect(h.commandOrder).toEqual([0, 1, 2, 4, 6])
      expect(h.commandTimes[4]).toBe(1_000)
      expect(h.commandTimes[6]).toBe(1_000)
      expect(yield* h.limiter.inWindow).toBe(2)
    }))

  it.effect("send times stay oldest first when the window grows after wrapping around: waits still end exactly when the blocking send leaves", () =>
    Effect.gen(function*() {
      const h = yield* harness({ heartbeatIntervalMs: 1_000, limit: 5, windowMs: 1_000 })
      yield* h.heartbeat
      yield* h.heartbeat
      yield* TestClock.adjust(1_000) // both leave the window: the next sends wrap around the first slots
      for (const _ of range(5)) {
        expect(yield* h.heartbeat).toBe(0) // at 1000, 1100, …, 1400; the fifth grows the window
        yield* TestClock.adjust(100)
      }
      const sixth = yield* Effect.forkChild(h.heartbeat) // at 1500: full until the send of 1000 leaves
      const seventh = yield* Effect.forkChild(h.heartbeat) // then the send of 1100
      yield* TestClock.adjust(1_000)
      expect([yield* Fiber.join(sixth), yield* Fiber.join(seventh)]).toEqual([500, 600])
      expect(h.sendTimes.slice(-2)).toEqual([2_000, 2_100])
    }))

  it.effect("invalid options are a defect: limit a positive integer, windowMs a positive finite number", () =>
    Effect.gen(function*() {
      const invalid = [
        { limit: 0 },
        { limit: 2.5 },
        { windowMs: 0 },
        { windowMs: -1_000 },
        { windowMs: Number.NaN },
        { windowMs: Number.POSITIVE_INFINITY }
      ]
      for (const options of invalid) {
        const exit = yield* Effect.exit(SendLimiter.make({ heartbeatIntervalMs: 41_250, ...options }))
        expect(Exit.hasDies(exit), JSON.stringify(options)).toBe(true)
      }
      expect(Exit.isSuccess(yield* Effect.exit(SendLimiter.make({ heartbeatIntervalMs: 41_250, limit: 1, windowMs: 1 })))).toBe(true)
    }))

  it.effect("item 41: 300 commands queued at once; every heartbeat (I = 1500 ms) goes out on time", () =>
    Effect.gen(function*() {
      const interval = 1_500
      const h = yield* harness({ heartbeatIntervalMs: interval })
      const waits: Array<number> = []
      const beats = yield* Effect.forkChild(h.heartbeatLoop(700, interval, waits))
      const commands = yield* Effect.forkChild(Effect.forEach(range(300), () => h.command, { concurrency: "unbounded" }))
      yield* TestClock.adjust("15 minutes")
      yield* Fiber.join(commands)
      yield* Fiber.interrupt(beats)
      expect(waits.length).toBe(Math.floor((15 * 60_000 - 700) / interval) + 1)
      expect(waits.every((w) => w === 0)).toBe(true)
      expect(h.commandOrder).toEqual(range(300)) // none dropped, order kept
      expect(maxInAnyWindow(h.sendTimes, 60_000)).toBeLessThanOrEqual(120)
      // commands never take the heartbeat reserve (41 slots at this interval)
      expect(maxInAnyWindow(h.commandTimes, 60_000)).toBeLessThanOrEqual(120 - 41)
      // and they are not starved: the first minute carries all the room the reserve leaves them
      expect(h.commandTimes.filter((t) => t < 60_000).length).toBeGreaterThan(30)
    }))

  it.effect("item 41: at I = 1000 ms, with a beat every I, commands still get limit - heartbeatReserve(I) per window", () =>
    Effect.gen(function*() {
      const interval = 1_000
      const commandCap = SendLimiter.defaultLimit - SendLimiter.heartbeatReserve(interval) // 120 - 61 = 59
      expect(commandCap).toBe(59)
      const h = yield* harness({ heartbeatIntervalMs: interval })
      const waits: Array<number> = []
      const beats = yield* Effect.forkChild(h.heartbeatLoop(0, interval, waits))
      const commands = yield* Effect.forkChild(Effect.forEach(range(300), () => h.command, { concurrency: "unbounded" }))
      yield* TestClock.adjust("6 minutes")
      // 60 heartbeats fill half of every window, yet each minute carries the commands' full share
      // (checked before joining: starved commands would still be waiting)
      const perMinute = range(6).map((m) => h.commandTimes.filter((t) => t >= m * 60_000 && t < (m + 1) * 60_000).length)
      expect(perMinute).toEqual([59, 59, 59, 59, 59, 300 - 5 * 59])
      yield* Fiber.join(commands)
      yield* Fiber.interrupt(beats)
      expect(waits.length).toBe(6 * 60 + 1)
      expect(waits.every((w) => w === 0)).toBe(true)
      expect(maxInAnyWindow(h.commandTimes, 60_000)).toBe(commandCap)
      expect(maxInAnyWindow(h.sendTimes, 60_000)).toBeLessThanOrEqual(SendLimiter.defaultLimit)
      expect(h.commandOrder).toEqual(range(300))
    }))

  it.effect.prop(
    "item 41: with 300 queued commands heartbeats never wait, whatever the interval",
    {
      interval: Schema.Int.check(Schema.isBetween({ minimum: 1_500, maximum: 60_000 })),
      firstPerMille: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 1_000 }))
    },
    ({ firstPerMille, interval }) =>
      Effect.gen(function*() {
        const h = yield* harness({ heartbeatIntervalMs: interval })
        const waits: Array<number> = []
        const beats = yield* Effect.forkChild(h.heartbeatLoop(Math.floor(interval * firstPerMille / 1_000), interval, waits))
        const commands = yield* Effect.forkChild(Effect.forEach(range(300), () => h.command, { concurrency: "unbounded" }))
        yield* TestClock.adjust("20 minutes")
        yield* Fiber.join(commands)
        yield* Fiber.interrupt(beats)
        expect(waits.length).toBeGreaterThan(0)
        expect(waits.every((w) => w === 0)).toBe(true)
        expect(h.commandOrder).toEqual(range(300))
        expect(maxInAnyWindow(h.sendTimes, 60_000)).toBeLessThanOrEqual(120)
      }),
    { arbitrary: { runs: 20 } }
  )

  const Burst = Schema.Struct({
    at: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 180_000 })),
    count: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 200 }))
  })

  it.effect.prop(
    "item 40: no sliding 60 s window ever carries more than 120 frames; no command is dropped or reordered",
    {
      interval: Schema.Int.check(Schema.isBetween({ minimum: 1_500, maximum: 60_000 })),
      firstPerMille: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 1_000 })),
      bursts: Schema.Array(Burst).check(Schema.isMaxLength(5)),
      // answers to server op 1, IDENTIFY, RESUME: heartbeat priority at arbitrary times
      extras: Schema.Array(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 240_000 }))).check(Schema.isMaxLength(12))
    },
    ({ bursts, extras, firstPerMille, interval }) =>
      Effect.gen(function*() {
        const h = yield* harness({ heartbeatIntervalMs: interval })
        const waits: Array<number> = []
        const beats = yield* Effect.forkChild(h.heartbeatLoop(Math.floor(interval * firstPerMille / 1_000), interval, waits))
        const total = bursts.reduce((n, b) => n + b.count, 0)
        const work = yield* Effect.forkChild(Effect.all([
          Effect.forEach(bursts, (burst) =>
            Effect.andThen(
              Effect.sleep(burst.at),
              Effect.forEach(range(burst.count), () => h.command, { concurrency: "unbounded", discard: true })
            ), { concurrency: "unbounded", discard: true }),
          Effect.forEach(extras, (at) => Effect.andThen(Effect.sleep(at), h.heartbeat), {
            concurrency: "unbounded",
            discard: true
          })
        ], { concurrency: "unbounded" }))
        yield* TestClock.adjust("60 minutes")
        yield* Fiber.join(work)
        yield* Fiber.interrupt(beats)
        expect(h.issuedCount()).toBe(total)
        expect(h.commandOrder).toEqual(range(total))
        expect(maxInAnyWindow(h.sendTimes, 60_000)).toBeLessThanOrEqual(120)
      }),
    { arbitrary: { runs: 100 } }
  )
})
