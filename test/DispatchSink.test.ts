import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Metric, Scope, Stream } from "effect"
import * as Dispatch from "../src/Dispatch.ts"
import { DispatchSink } from "../src/DispatchSink.ts"
import { AuthenticationFailed } from "../src/Errors.ts"
import { settle } from "./shard/harness.ts"

const range = (n: number) => Array.from({ length: n }, (_, i) => i)

const event = (seq: number, name = "MESSAGE_CREATE") => Dispatch.make(0, seq, name, { n: seq })

describe("DispatchSink", () => {
  it.effect("every subscriber gets every dispatch published after it subscribed, in order", () =>
    Effect.gen(function*() {
      const sink = yield* DispatchSink.make()
      yield* sink.publish(event(0)) // nobody subscribed yet: not kept
      const a = yield* sink.subscription()
      const b = yield* sink.subscription()
      for (let i = 1; i <= 5; i++) yield* sink.publish(event(i))
      yield* sink.end
      expect((yield* Stream.runCollect(a)).map((d) => d.seq)).toEqual([1, 2, 3, 4, 5])
      expect((yield* Stream.runCollect(b)).map((d) => d.seq)).toEqual([1, 2, 3, 4, 5])
    }))

  it.effect("suspend (default): a full buffer makes the publisher wait; nothing is lost", () =>
    Effect.gen(function*() {
      const sink = yield* DispatchSink.make({ capacity: 2 })
      const stream = yield* sink.subscription()
      const publisher = yield* Effect.forkChild(Effect.forEach([1, 2, 3, 4, 5], (i) => sink.publish(event(i))))
      yield* settle
      expect(publisher.pollUnsafe()).toBeUndefined() // waiting: 2 buffered, the 3rd cannot go in
      const taken = yield* Effect.forkChild(Stream.runCollect(Stream.take(stream, 5)))
      yield* Fiber.join(publisher)
      expect((yield* Fiber.join(taken)).map((d) => d.seq)).toEqual([1, 2, 3, 4, 5])
    }))

  it.effect("by default a subscriber buffers 4096 dispatches before the publisher waits", () =>
    Effect.gen(function*() {
      const sink = yield* DispatchSink.make()
      yield* Effect.asVoid(sink.subscription()) // subscribed, never read
      const first = yield* Effect.forkChild(Effect.forEach(range(4096), (i) => sink.publish(event(i)), { discard: true }))
      yield* settle
      expect(first.pollUnsafe()).toBeDefined() // all 4096 went in without waiting
      const publisher = yield* Effect.forkChild(sink.publish(event(4097)))
      yield* settle
      expect(publisher.pollUnsafe()).toBeUndefined()
    }))

  it.effect("sliding: the publisher never waits; the subscriber keeps the newest", () =>
    Effect.gen(function*() {
      const sink = yield* DispatchSink.make({ capacity: 2, overflow: "sliding" })
      const stream = yield* sink.subscription()
      for (let i = 1; i <= 5; i++) yield* sink.publish(event(i))
      yield* sink.end
      expect((yield* Stream.runCollect(stream)).map((d) => d.seq)).toEqual([4, 5])
    }))

  it.effect("dropping: the publisher never waits; the subscriber keeps the oldest", () =>
    Effect.gen(function*() {
      const sink = yield* DispatchSink.make({ capacity: 2 })
      const stream = yield* sink.subscription({ overflow: "dropping" })
      for (let i = 1; i <= 5; i++) yield* sink.publish(event(i))
      yield* sink.end
      expect((yield* Stream.runCollect(stream)).map((d) => d.seq)).toEqual([1, 2])
    }))

  it.effect("fail: the slow subscriber's stream fails with SubscriberOverflow; others are unaffected", () =>
    Effect.gen(function*() {
      const sink = yield* DispatchSink.make({ capacity: 2 })
      const slow = yield* sink.subscription({ overflow: "fail" })
      const fast = yield* sink.subscription({ capacity: 16 })
      for (let i = 1; i <= 5; i++) yield* sink.publish(event(i))
      expect(yield* sink.subscriberCount).toBe(1) // the failed one was removed at once
      yield* sink.end
      const failed = yield* Effect.flip(Stream.runCollect(slow))
      expect(failed._tag).toBe("SubscriberOverflow")
      expect((yield* Stream.runCollect(fast)).map((d) => d.seq)).toEqual([1, 2, 3, 4, 5])
    }))

  it.effect("every dispatch a subscriber loses is counted as dropped, every publish that waits as delayed", () =>
    Effect.gen(function*() {
      const count = (id: string) =>
        Effect.map(Metric.snapshot, (all) =>
          all.filter((m) => m.id === id).reduce((n, m) => n + (m.state as { readonly count: number }).count, 0))
      const sink = yield* DispatchSink.make({ capacity: 2 })
      yield* Effect.asVoid(sink.subscription({ overflow: "sliding" })) // loses 3 (the oldest)
      yield* Effect.asVoid(sink.subscription({ overflow: "dropping" })) // loses 3 (the newest)
      yield* Effect.asVoid(sink.subscription({ overflow: "fail" })) // loses the 3rd, then is gone
      for (let i = 1; i <= 5; i++) yield* sink.publish(event(i))
      expect(yield* count("discord_gateway_dispatch_dropped_total")).toBe(7)
      expect(yield* count("discord_gateway_dispatch_delayed_total")).toBe(0)
      const slow = yield* sink.subscription({ overflow: "suspend", capacity: 1 })
      yield* sink.publish(event(6))
      const publisher = yield* Effect.forkChild(sink.publish(event(7))) // waits for `slow`
      yield* Effect.forkChild(Stream.runDrain(Stream.take(slow, 2)))
      yield* Fiber.join(publisher)
      expect(yield* count("discord_gateway_dispatch_delayed_total")).toBe(1)
    }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())))

  it.effect("a name filter keeps other events out of the subscriber's buffer", () =>
    Effect.gen(function*() {
      const sink = yield* DispatchSink.make({ capacity: 1, overflow: "fail" })
      const messages = yield* sink.subscription({ names: ["MESSAGE_CREATE"] })
      // Many typing events would overflow a buffer of 1 if they were queued.
      for (let i = 0; i < 100; i++) yield* sink.publish(event(i, "TYPING_START"))
      yield* sink.publish(event(100, "MESSAGE_CREATE"))
      yield* sink.end
      const got = yield* Stream.runCollect(messages)
      expect(got.map((d) => [d.name, d.seq])).toEqual([["MESSAGE_CREATE", 100]])
    }))

  it.effect("subscribe() takes the same options as subscription(): names, capacity, overflow", () =>
    Effect.gen(function*() {
      const sink = yield* DispatchSink.make()
      const started = yield* Effect.forkChild(
        Stream.runCollect(sink.subscribe({ names: ["MESSAGE_CREATE"], capacity: 2, overflow: "sliding" }))
      )
      yield* settle // the stream subscribes when it starts running
      expect(yield* sink.subscriberCount).toBe(1)
      yield* sink.publish(event(1, "TYPING_START"))
      for (let i = 2; i <= 5; i++) yield* sink.publish(event(i))
      yield* sink.end
      expect((yield* Fiber.join(started)).map((d) => d.seq)).toEqual([4, 5])
    }))

  it.effect("fail(error) fails every stream with the fatal error, after what was buffered", () =>
    Effect.gen(function*() {
      const sink = yield* DispatchSink.make()
      const stream = yield* sink.subscription()
      yield* sink.publish(event(1))
      yield* sink.fail(new AuthenticationFailed({ shardId: 0, shardCount: 1, code: 4004, reason: "" }))
      const seen: Array<number> = []
      const exit = yield* Effect.exit(Stream.runForEach(stream, (d) => Effect.sync(() => seen.push(d.seq))))
      expect(seen).toEqual([1])
      expect(Exit.isFailure(exit) && exit.cause.toString()).toContain("AuthenticationFailed")
      // A subscriber arriving after the end sees the same end.
      const late = yield* sink.subscription()
      expect((yield* Effect.flip(Stream.runCollect(late)))._tag).toBe("AuthenticationFailed")
    }))

  it.effect("a publisher waiting on a full subscriber is released when that subscriber unsubscribes", () =>
    Effect.gen(function*() {
      const sink = yield* DispatchSink.make({ capacity: 1 })
      const subscriberScope = yield* Scope.make()
      yield* Effect.asVoid(sink.subscription().pipe(Scope.provide(subscriberScope))) // never read
      yield* sink.publish(event(1))
      const publisher = yield* Effect.forkChild(sink.publish(event(2)))
      yield* settle
      expect(publisher.pollUnsafe()).toBeUndefined() // waiting: the buffer is full
      yield* Scope.close(subscriberScope, Exit.void)
      yield* settle
      const exit = publisher.pollUnsafe()
      expect(exit !== undefined && Exit.isSuccess(exit)).toBe(true) // done, not interrupted: the shard keeps reading
    }))

  it.effect("closing the sink's scope ends every subscriber's stream after what was buffered", () =>
    Effect.gen(function*() {
      const sinkScope = yield* Scope.make()
      const sink = yield* DispatchSink.make().pipe(Scope.provide(sinkScope))
      const stream = yield* sink.subscription()
      yield* sink.publish(event(1))
      const collected = yield* Effect.forkChild(Stream.runCollect(stream))
      yield* Scope.close(sinkScope, Exit.void)
      yield* settle
      const exit = collected.pollUnsafe()
      expect(exit !== undefined && Exit.isSuccess(exit) ? exit.value.map((d) => d.seq) : exit).toEqual([1])
    }))

  it.effect("the first end wins: fail after end does not change how later subscribers end", () =>
    Effect.gen(function*() {
      const sink = yield* DispatchSink.make()
      const early = yield* sink.subscription()
      yield* sink.end
      yield* sink.fail(new AuthenticationFailed({ shardId: 0, shardCount: 1, code: 4004, reason: "" }))
      expect(yield* Stream.runCollect(early)).toEqual([])
      const late = yield* sink.subscription()
      expect(yield* Stream.runCollect(late)).toEqual([]) // ended like the others, not failed
    }))

  it.effect("an unsubscribed subscriber no longer holds up publishers", () =>
    Effect.gen(function*() {
      const sink = yield* DispatchSink.make({ capacity: 1 })
      yield* Effect.scoped(Effect.asVoid(sink.subscription()))
      expect(yield* sink.subscriberCount).toBe(0)
      for (let i = 0; i < 10; i++) yield* sink.publish(event(i)) // would block if the subscriber were kept
    }))
})
