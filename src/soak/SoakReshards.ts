/**
 * The soak's reshards: zero-downtime reshards of the running Gateway at a steady pace, under traffic and
 * faults (issue 4; PROTOCOL.md §4: sessions of different counts run side by side).
 *
 * The plan alternates growing and shrinking around the initial count N: 2N, N, 3N, N, 2N, … — doubling and
 * back, then a count that is not a power-of-two multiple — so every second reshard returns to N (heap at the
 * end compares with the start) and the Gateway proves it reshards to any count, both ways. Before each one
 * the simulator's `/gateway/bot` is made to recommend the new count, as Discord would.
 *
 * One reshard at a time: the next starts `everyMs` after the previous one started, or when it ends if it ran
 * longer. None starts after the deadline; one in progress is waited for.
 */
import { Clock, Effect } from "effect"
import type { GatewayService } from "../Gateway.ts"
import type { SimulatorControls } from "../testing/SimulatorServer.ts"

/** The count of the `index`-th reshard (0-based) from the initial count `initial`. */
export const planned = (initial: number, index: number): number => {
  const step = index % 4
  return step === 0 ? initial * 2 : step === 2 ? initial * 3 : initial
}

/** One reshard's outcome. */
export interface ReshardOutcome {
  readonly from: number
  readonly to: number
  readonly startedAt: number
  readonly durationMs: number
  /** Null on success; otherwise why it failed. */
  readonly error: string | null
}

export interface SoakReshards {
  /** Reshards every `everyMs` (first after `everyMs`) until `untilMs`; a reshard in progress at the deadline completes. */
  readonly run: (options: { readonly everyMs: number; readonly untilMs: number }) => Effect.Effect<void>
  /** Reshards done so far (successful or not), in order. */
  readonly outcomes: () => ReadonlyArray<ReshardOutcome>
  /** The reshard in progress, if any. */
  readonly current: () => { readonly from: number; readonly to: number } | undefined
}

export const make = (options: {
  readonly simulator: SimulatorControls
  readonly gateway: GatewayService
  readonly initialCount: number
}): SoakReshards => {
  const { gateway, initialCount, simulator } = options
  const outcomes: Array<ReshardOutcome> = []
  let current: { readonly from: number; readonly to: number } | undefined

  const reshardOnce = (index: number) =>
    Effect.gen(function*() {
      const from = (yield* gateway.layout).count
      const to = planned(initialCount, index)
      const startedAt = yield* Clock.currentTimeMillis
      current = { from, to }
      yield* simulator.setRecommendedShards(to)
      const result = yield* Effect.result(gateway.reshard(to))
      const durationMs = (yield* Clock.currentTimeMillis) - startedAt
      current = undefined
      outcomes.push({
        from,
        to,
        startedAt,
        durationMs,
        error: result._tag === "Failure" ? result.failure.message : null
      })
    })

  const run = (runOptions: { readonly everyMs: number; readonly untilMs: number }) =>
    Effect.gen(function*() {
      let next = (yield* Clock.currentTimeMillis) + runOptions.everyMs
      for (let index = 0; ; index++) {
        const now = yield* Clock.currentTimeMillis
        // A reshard that outlasts `everyMs` delays the next one; none starts after the deadline.
        if (next >= runOptions.untilMs || now >= runOptions.untilMs) return
        if (next > now) yield* Effect.sleep(next - now)
        yield* reshardOnce(index)
        next += runOptions.everyMs
      }
    })

  return { run, outcomes: () => outcomes, current: () => current }
}
