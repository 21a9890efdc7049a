/**
 * DispatchSink: where shards put their dispatches, and where subscribers read them — one hub fanning out
 * to any number of independent subscribers, each with its own bounded buffer.
 *
 * Backpressure is explicit and chosen per subscriber (default: the sink's `overflow`, itself "suspend"):
 * - "suspend": a full buffer makes the publishing shard wait until this subscriber takes. The shard's
 *   reader stops reading, so the socket's own flow control pushes back on the server; nothing is lost.
 *   Heartbeats run on their own fiber and are not blocked. (One slow subscriber slows every shard.)
 * - "sliding": the oldest buffered dispatch is dropped for the new one (this subscriber loses old events).
 * - "dropping": the new dispatch is dropped (this subscriber loses new events).
 * - "fail": the subscriber's stream fails with `SubscriberOverflow`; the shards are not slowed.
 * Drops and waits are counted in Metrics (`discord_gateway_dispatch_dropped_total`, `…_delayed_total`).
 *
 * A subscriber may name the events it wants (`names`): others are skipped at publish time, before any
 * buffer, so events an application never asked for cost one Set lookup. There is no unbounded queue and no
 * fiber per event: publishing is synchronous while every buffer has room.
 */
import { Cause, Context, Effect, Layer, Metric, Queue, type Scope, Stream } from "effect"
import type { Dispatch } from "./Dispatch.ts"
import { type FatalCloseError, SubscriberOverflow } from "./Errors.ts"
import * as Metrics from "./Metrics.ts"

export type OverflowStrategy = "suspend" | "sliding" | "dropping" | "fail"

/** Why a dispatch stream failed: it fell behind under "fail", or the gateway ended with a fatal close. */
export type DispatchStreamError = SubscriberOverflow | FatalCloseError

export interface SubscribeOptions {
  /** Buffered dispatches for this subscriber. Default: the sink's capacity (4096). */
  readonly capacity?: number | undefined
  /** What a full buffer does for this subscriber. Default: the sink's overflow ("suspend"). */
  readonly overflow?: OverflowStrategy | undefined
  /** Only these event names (others never reach this subscriber's buffer). Default: every event. */
  readonly names?: ReadonlyArray<string> | undefined
}

export interface DispatchSinkOptions {
  /** Default buffer per subscriber. Default 4096. */
  readonly capacity?: number | undefined
  /** Default overflow strategy per subscriber. Default "suspend" (backpressure, nothing lost). */
  readonly overflow?: OverflowStrategy | undefined
}

interface Subscriber {
  readonly queue: Queue.Queue<Dispatch, DispatchStreamError | Cause.Done>
  readonly capacity: number
  readonly overflow: OverflowStrategy
  readonly names: ReadonlySet<string> | undefined
}

export class DispatchSink extends Context.Service<DispatchSink, {
  /**
   * Publishes one dispatch to every subscriber that wants it. It acts when called: every buffer with room
   * gets the dispatch then (no effect is built per event); the returned effect only waits for "suspend"
   * subscribers that were full. So call it when the dispatch is to go out, not while building a chain whose
   * earlier steps must run first.
   */
  readonly publish: (dispatch: Dispatch) => Effect.Effect<void>
  /** Subscribes now (in the current Scope): nothing published after this call is missed. */
  readonly subscription: (
    options?: SubscribeOptions
  ) => Effect.Effect<Stream.Stream<Dispatch, DispatchStreamError>, never, Scope.Scope>
  /** A stream that subscribes when it starts running and unsubscribes when it ends. */
  readonly subscribe: (options?: SubscribeOptions) => Stream.Stream<Dispatch, DispatchStreamError>
  /** Ends every subscriber's stream after its buffered dispatches (the gateway stopped). */
  readonly end: Effect.Effect<void>
  /** Fails every subscriber's stream with this error (the gateway ended with a fatal close). */
  readonly fail: (error: FatalCloseError) => Effect.Effect<void>
  /** How many subscribers there are now. */
  readonly subscriberCount: Effect.Effect<number>
  /**
   * Whether any subscriber wants this event name now. A shard skips building and publishing a dispatch
   * nobody wants (the hub would drop it anyway): one Set lookup per event.
   */
  readonly wants: (name: string) => boolean
}>()("effect-discord-gateway/DispatchSink") {
  static readonly make = (options: DispatchSinkOptions = {}) =>
    Effect.gen(function*() {
      const defaultCapacity = options.capacity ?? 4096
      const defaultOverflow = options.overflow ?? "suspend"
      // Copy-on-write: publish iterates a stable array; (un)subscribing replaces it.
      let subscribers: ReadonlyArray<Subscriber> = []
      /** Names some filtered subscriber wants, or undefined when an unfiltered subscriber wants them all. */
      let wanted: ReadonlySet<string> | undefined = new Set()
      const recomputeWanted = () => {
        const names = new Set<string>()
        for (const s of subscribers) {
          if (s.names === undefined) return void (wanted = undefined)
          for (const name of s.names) names.add(name)
        }
        wanted = names
      }
      let ended: Cause.Cause<DispatchStreamError | Cause.Done> | undefined

      const remove = (subscriber: Subscriber) => {
        subscribers = subscribers.filter((s) => s !== subscriber)
        recomputeWanted()
      }

      /** The rare path: count drops and delays, then wait for "suspend" subscribers to take. */
      const overflowed = (dropped: number, waits: ReadonlyArray<Effect.Effect<boolean>> | undefined) =>
        Effect.gen(function*() {
          if (dropped > 0) yield* Metric.update(Metrics.dispatchDropped, dropped)
          if (waits !== undefined) {
            yield* Metric.update(Metrics.dispatchDelayed, 1)
            for (const wait of waits) yield* wait
          }
        })

      const publish = (dispatch: Dispatch): Effect.Effect<void> => {
        let waits: Array<Effect.Effect<boolean>> | undefined
        let dropped = 0
        const current = subscribers
        for (let i = 0; i < current.length; i++) {
          const s = current[i]!
          if (s.names !== undefined && !s.names.has(dispatch.name)) continue
          if (s.overflow === "sliding") {
            if (Queue.sizeUnsafe(s.queue) >= s.capacity) dropped++
            Queue.offerUnsafe(s.queue, dispatch)
            continue
          }
          if (Queue.offerUnsafe(s.queue, dispatch)) continue
          switch (s.overflow) {
            case "suspend":
              ;(waits ??= []).push(Queue.offer(s.queue, dispatch))
              break
            case "dropping":
              dropped++
              break
            case "fail":
              dropped++
              remove(s)
              Queue.failCauseUnsafe(s.queue, Cause.fail(new SubscriberOverflow({ capacity: s.capacity })))
              break
          }
        }
        if (waits === undefined && dropped === 0) return Effect.void
        return overflowed(dropped, waits)
      }

      const subscription = (subscribeOptions: SubscribeOptions = {}) =>
        Effect.gen(function*() {
          const capacity = subscribeOptions.capacity ?? defaultCapacity
          const overflow = subscribeOptions.overflow ?? defaultOverflow
          const queue = yield* (overflow === "sliding"
            ? Queue.sliding<Dispatch, DispatchStreamError | Cause.Done>(capacity)
            : Queue.bounded<Dispatch, DispatchStreamError | Cause.Done>(capacity))
          const subscriber: Subscriber = {
            queue,
            capacity,
            overflow,
            names: subscribeOptions.names === undefined ? undefined : new Set(subscribeOptions.names)
          }
          if (ended !== undefined) Queue.failCauseUnsafe(queue, ended)
          else {
            subscribers = [...subscribers, subscriber]
            recomputeWanted()
          }
          yield* Effect.addFinalizer(() =>
            Effect.sync(() => {
              remove(subscriber)
              Queue.shutdownUnsafe(queue)
            })
          )
          return Stream.fromQueue(queue)
        })

      const closeAll = (cause: Cause.Cause<DispatchStreamError | Cause.Done>) =>
        Effect.sync(() => {
          if (ended !== undefined) return
          ended = cause
          const current = subscribers
          subscribers = []
          recomputeWanted()
          for (const s of current) Queue.failCauseUnsafe(s.queue, cause)
        })

      yield* Effect.addFinalizer(() => closeAll(Cause.fail(Cause.Done())))
      return DispatchSink.of({
        publish,
        subscription,
        subscribe: (subscribeOptions) => Stream.unwrap(subscription(subscribeOptions)),
        end: closeAll(Cause.fail(Cause.Done())),
        fail: (error) => closeAll(Cause.fail(error)),
        subscriberCount: Effect.sync(() => subscribers.length),
        wants: (name) => wanted === undefined || wanted.has(name)
      })
    })

  /** A hub with per-subscriber buffers; see the module doc for the overflow strategies. */
  static readonly layer = (options: DispatchSinkOptions = {}): Layer.Layer<DispatchSink> =>
    Layer.effect(DispatchSink, DispatchSink.make(options))
}
