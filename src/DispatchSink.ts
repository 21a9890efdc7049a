/**
 * DispatchSink: where shards put their dispatches, and where subscribers read them.
 *
 * A bounded PubSub: every subscriber gets every dispatch published after it subscribed, in publish order.
 * What a full buffer does is the user's choice and documented per strategy:
 * - "suspend" (default): the publishing shard waits until the slowest subscriber has room. The shard's
 *   reader stops reading, so the socket's own flow control pushes back on the server; nothing is lost.
 *   Heartbeats run on their own fiber and are not blocked.
 * - "sliding": the oldest buffered dispatches are dropped for the new one (slow subscribers lose old events).
 * - "dropping": the new dispatch is dropped while the buffer is full (slow subscribers lose new events).
 * With no subscriber, dispatches are not kept.
 */
import { Context, Effect, Layer, PubSub, type Scope, Stream } from "effect"
import type { Dispatch } from "./Dispatch.ts"

export type OverflowStrategy = "suspend" | "sliding" | "dropping"

export interface DispatchSinkOptions {
  /** Buffered dispatches per subscriber (a power of two performs best). Default 4096. */
  readonly capacity?: number
  /** What a full buffer does; default "suspend" (backpressure, nothing lost). */
  readonly overflow?: OverflowStrategy
}

export class DispatchSink extends Context.Service<DispatchSink, {
  /** Publishes one dispatch to every subscriber (may wait, per the overflow strategy). */
  readonly publish: (dispatch: Dispatch) => Effect.Effect<void>
  /** Every dispatch published after the stream starts running, for as long as it runs. */
  readonly subscribe: Stream.Stream<Dispatch>
  /**
   * Subscribes now (in the current Scope) and returns the stream of that subscription, so nothing published
   * between this call and the stream starting is missed.
   */
  readonly subscription: Effect.Effect<Stream.Stream<Dispatch>, never, Scope.Scope>
}>()("effect-discord-gateway/DispatchSink") {
  static readonly make = (options: DispatchSinkOptions = {}) =>
    Effect.gen(function*() {
      const capacity = options.capacity ?? 4096
      const pubsub = yield* (options.overflow === "sliding"
        ? PubSub.sliding<Dispatch>(capacity)
        : options.overflow === "dropping"
        ? PubSub.dropping<Dispatch>(capacity)
        : PubSub.bounded<Dispatch>(capacity))
      yield* Effect.addFinalizer(() => PubSub.shutdown(pubsub))
      return DispatchSink.of({
        publish: (dispatch) => Effect.asVoid(PubSub.publish(pubsub, dispatch)),
        subscribe: Stream.fromPubSub(pubsub),
        subscription: Effect.map(PubSub.subscribe(pubsub), Stream.fromSubscription)
      })
    })

  /** A PubSub-backed sink; see the module doc for the overflow strategies. */
  static readonly layer = (options: DispatchSinkOptions = {}): Layer.Layer<DispatchSink> =>
    Layer.effect(DispatchSink, DispatchSink.make(options))
}
