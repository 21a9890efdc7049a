/**
 * The soak's fault injector: every fault the gateway can throw at a shard (the `SimulatorFaults` catalogue,
 * plus an unknown event that the ledger tracks like any other), one at a time on a random connected shard,
 * cycling through every kind in a random order (PROTOCOL.md §1.4, §1.7–§1.9, §2, §5.1).
 *
 * Sessions a fault destroys are read from the simulator before and after it, in one uninterrupted step, and
 * handed to the ledger: what they held and had not delivered is lost legitimately (Discord cannot replay a
 * dead session). During a reshard a third of the faults hit the other shard set (the one coming up, or the
 * one draining), by its `[shard_id, num_shards]` tuple.
 */
import { Clock, Effect, Random } from "effect"
import type { GatewayService } from "../Gateway.ts"
import * as SimulatorFaults from "../testing/SimulatorFaults.ts"
import type { SimulatorControls } from "../testing/SimulatorServer.ts"
import type { ShardTuple } from "../testing/SimulatorSessions.ts"
import type { Ledger } from "./SoakLedger.ts"
import { atomically, type SoakTraffic, UnknownEventName } from "./SoakTraffic.ts"

/** A fault the soak injects: one of the simulator's, or an unknown event (a soak event: it must arrive once). */
export type FaultKind = SimulatorFaults.FaultKind | "unknown event"

/** Every fault kind. */
export const FaultKinds: ReadonlyArray<FaultKind> = [...SimulatorFaults.FaultKinds, "unknown event"]

/** Kinds after which the simulator destroys the shard's session (a fresh IDENTIFY follows). */
export const SessionEndingKinds: ReadonlySet<FaultKind> = SimulatorFaults.SessionEndingKinds

/** Applies `kind` to the connections of `target` (events go through `traffic`, so the ledger knows them). */
export const apply = (
  simulator: SimulatorControls,
  traffic: SoakTraffic,
  kind: FaultKind,
  target: ShardTuple
): Effect.Effect<void> =>
  kind === "unknown event"
    ? Effect.asVoid(traffic.emitToShard(UnknownEventName, target))
    : SimulatorFaults.apply(simulator, kind, target)

/** One injected fault. */
export interface InjectedFault {
  readonly kind: FaultKind
  readonly target: ShardTuple
  readonly at: number
  /** Simulator sessions it destroyed. */
  readonly destroyed: ReadonlyArray<string>
}

export interface FaultInjector {
  /** Injects the next kind of the cycle into a random connected shard; none when no shard is connected. */
  readonly injectOne: Effect.Effect<InjectedFault | undefined>
  /** Injects a fault every `everyMs` until the Clock reaches `untilMs`. */
  readonly run: (options: { readonly everyMs: number; readonly untilMs: number }) => Effect.Effect<void>
  /** Faults injected so far, per kind (every kind present). */
  readonly counts: () => ReadonlyMap<FaultKind, number>
  /** Rounds with no connected shard to hit. */
  readonly skipped: () => number
}

const inReshard = (phase: string | undefined) => phase === "starting" || phase === "switching" || phase === "draining"

export const make = (options: {
  readonly simulator: SimulatorControls
  readonly gateway: GatewayService
  readonly ledger: Ledger
  readonly traffic: SoakTraffic
}): FaultInjector => {
  const { gateway, ledger, simulator, traffic } = options
  const counts = new Map<FaultKind, number>(FaultKinds.map((kind) => [kind, 0]))
  let cycle: Array<FaultKind> = []
  let skipped = 0

  /** A random connected shard of the live set (or, during a reshard, a third of the time the other set). */
  const pickTarget = Effect.gen(function*() {
    const status = yield* gateway.status
    let count = status.shardCount
    const reshard = status.reshard
    if (reshard !== null && inReshard(reshard.phase) && (yield* Random.nextIntBetween(0, 3, { halfOpen: true })) === 0) {
      count = count === reshard.from ? reshard.to : reshard.from
    }
    const connected = (yield* simulator.sessions).filter((s) => s.connected && s.shard[1] === count)
    if (connected.length === 0) return undefined
    const i = yield* Random.nextIntBetween(0, connected.length, { halfOpen: true })
    return connected[i]!.shard
  })

  const nextKind = Effect.gen(function*() {
    if (cycle.length === 0) cycle = yield* Random.shuffle(FaultKinds)
    return cycle.pop()!
  })

  const sameTuple = (a: ShardTuple, b: ShardTuple) => a[0] === b[0] && a[1] === b[1]

  const injectOne: Effect.Effect<InjectedFault | undefined> = Effect.gen(function*() {
    const target = yield* pickTarget
    if (target === undefined) {
      skipped++
      return undefined
    }
    const kind = yield* nextKind
    const at = yield* Clock.currentTimeMillis
    // Before, the fault, after: one step, so the difference is what this fault destroyed.
    const destroyed = yield* atomically(Effect.gen(function*() {
      const before = (yield* simulator.sessions).filter((s) => sameTuple(s.shard, target)).map((s) => s.id)
      yield* apply(simulator, traffic, kind, target)
      const after = new Set((yield* simulator.sessions).map((s) => s.id))
      return before.filter((id) => !after.has(id))
    }))
    ledger.destroyedByFault(destroyed)
    counts.set(kind, (counts.get(kind) ?? 0) + 1)
    return { kind, target, at, destroyed } satisfies InjectedFault
  })

  const run = (runOptions: { readonly everyMs: number; readonly untilMs: number }) =>
    Effect.gen(function*() {
      while (true) {
        // Jittered around the period (×0.5–1.5), so faults do not line up with heartbeats or traffic ticks.
        const wait = Math.round(runOptions.everyMs * (0.5 + (yield* Random.next)))
        const now = yield* Clock.currentTimeMillis
        if (now + wait >= runOptions.untilMs) return
        yield* Effect.sleep(wait)
        yield* injectOne
      }
    })

  return { injectOne, run, counts: () => counts, skipped: () => skipped }
}
