/**
 * The soak's fault injector: every fault the gateway can throw at a shard, one at a time on a random
 * connected shard, cycling through every kind in a random order (PROTOCOL.md §1.4, §1.7–§1.9, §2, §5.1).
 *
 * | kind | the simulator… | the shard (PROTOCOL.md) |
 * |---|---|---|
 * | drop | ends the connection without a close frame | 1006 → RESUME (item 23) |
 * | close 4000/4001/4002/4005/4008 | closes with that code, session kept | RESUME (items 31, 33) |
 * | close 4003/4007/4009 | closes with that code, session destroyed | IDENTIFY (item 32) |
 * | close 4006 / 1000 / 1001 | closes with an unlisted code or a server 1000/1001, session kept | RESUME (item 37) |
 * | op 7 | sends Reconnect | close ∉ {1000, 1001}, RESUME (item 22) |
 * | op 9 true / op 9 false | sends Invalid Session; `false` destroys the session | RESUME (27) / wait 1–5 s, IDENTIFY (25, 26) |
 * | zombie | withholds ACKs and every frame on the connection | close 4000 at the next beat, RESUME (item 9) |
 * | heartbeat request | sends a server op 1 | beats at once (item 8) |
 * | invalid JSON / unknown op | sends a frame that is not JSON / has op 42 | skipped, no close (item 51) |
 * | unknown event | dispatches an event no library knows (a soak event: it must arrive once) | delivered (item 51) |
 *
 * Sessions a fault destroys are read from the simulator before and after it, in one uninterrupted step, and
 * handed to the ledger: what they held and had not delivered is lost legitimately (Discord cannot replay a
 * dead session). During a reshard a third of the faults hit the other shard set (the one coming up, or the
 * one draining), by its `[shard_id, num_shards]` tuple.
 */
import { Clock, Effect, Random } from "effect"
import type { GatewayService } from "../Gateway.ts"
import type { SimulatorControls } from "../testing/SimulatorServer.ts"
import type { ShardTuple } from "../testing/SimulatorSessions.ts"
import type { Ledger } from "./SoakLedger.ts"
import { atomically, type SoakTraffic, UnknownEventName } from "./SoakTraffic.ts"

export type FaultKind =
  | "drop"
  | "close 4000"
  | "close 4001"
  | "close 4002"
  | "close 4003"
  | "close 4005"
  | "close 4006"
  | "close 4007"
  | "close 4008"
  | "close 4009"
  | "close 1000"
  | "close 1001"
  | "op 7"
  | "op 9 true"
  | "op 9 false"
  | "zombie"
  | "heartbeat request"
  | "invalid JSON"
  | "unknown op"
  | "unknown event"

/** Every fault kind, in table order. */
export const FaultKinds: ReadonlyArray<FaultKind> = [
  "drop",
  "close 4000",
  "close 4001",
  "close 4002",
  "close 4003",
  "close 4005",
  "close 4006",
  "close 4007",
  "close 4008",
  "close 4009",
  "close 1000",
  "close 1001",
  "op 7",
  "op 9 true",
  "op 9 false",
  "zombie",
  "heartbeat request",
  "invalid JSON",
  "unknown op",
  "unknown event"
]

/** Kinds after which the simulator destroys the shard's session (a fresh IDENTIFY follows). */
export const SessionEndingKinds: ReadonlySet<FaultKind> = new Set(["close 4003", "close 4007", "close 4009", "op 9 false"])

/** The close code of a "close …" kind. */
const closeCodeOf = (kind: FaultKind): number | undefined =>
  kind.startsWith("close ") ? Number(kind.slice("close ".length)) : undefined

/** A frame that is not JSON (cut in the middle of a dispatch). */
const InvalidJson = `{"t":"MESSAGE_CREATE","s":1,"op":0,"d":{"content":"cut here`
/** A well-formed frame with an opcode the gateway does not define. */
const UnknownOp = `{"t":null,"s":null,"op":42,"d":{"soak":"unknown opcode"}}`

/** Applies `kind` to the connections of `target` (events go through `traffic`, so the ledger knows them). */
export const apply = (
  simulator: SimulatorControls,
  traffic: SoakTraffic,
  kind: FaultKind,
  target: ShardTuple
): Effect.Effect<void> => {
  const code = closeCodeOf(kind)
  if (code !== undefined) return simulator.close(target, code, `soak: ${kind}`)
  switch (kind) {
    case "drop":
      return simulator.drop(target)
    case "op 7":
      return simulator.reconnect(target)
    case "op 9 true":
      return simulator.invalidateSession(target, true)
    case "op 9 false":
      return simulator.invalidateSession(target, false)
    case "zombie":
      return simulator.withholdAcks(target, true)
    case "heartbeat request":
      return simulator.requestHeartbeat(target)
    case "invalid JSON":
      return simulator.sendRaw(target, InvalidJson)
    case "unknown op":
      return simulator.sendRaw(target, UnknownOp)
    case "unknown event":
      return Effect.asVoid(traffic.emitToShard(UnknownEventName, target))
    default:
      return Effect.void
  }
}

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
