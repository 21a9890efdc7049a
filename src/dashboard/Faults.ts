/**
 * Fault injection for the demo: the faults a newcomer can throw at one shard of the embedded simulator,
 * and what each one should make the runtime do (PROTOCOL.md §1.4, §1.7, §1.8, §9):
 *
 * | fault | the simulator… | the shard… |
 * |---|---|---|
 * | drop | ends the TCP connection, no close frame | sees 1006, reconnects to the resume URL, RESUMEs |
 * | zombie | withholds heartbeat ACKs (and every other frame) | misses an ACK, closes 4000, RESUMEs |
 * | reconnect | sends op 7 | closes 4000, RESUMEs |
 * | invalidate | sends op 9 `d: false` | waits 1–5 s, IDENTIFYs a new session |
 * | close | closes with 4000 | RESUMEs |
 *
 * The target is chosen at random (Effect's `Random`) among the shards that are ready, and addressed by its
 * `[shard_id, num_shards]` tuple so a fault during a reshard hits the set the table shows.
 */
import { Effect, Option, Random } from "effect"
import * as SimulatorFaults from "../testing/SimulatorFaults.ts"
import type { ShardTuple } from "../testing/SimulatorSessions.ts"
import type { ShardView, StatusView } from "./StatusTable.ts"

export type FaultKind = "drop" | "zombie" | "reconnect" | "invalidate" | "close"

export const faultKinds: ReadonlyArray<FaultKind> = ["drop", "zombie", "reconnect", "invalidate", "close"]

/** The simulator controls a fault needs. */
export type FaultControls = SimulatorFaults.FaultControls

/** Each demo fault is one of the simulator's. */
const simulatorFault: Readonly<Record<FaultKind, SimulatorFaults.FaultKind>> = {
  drop: "drop",
  zombie: "zombie",
  reconnect: "op 7",
  invalidate: "op 9 false",
  close: "close 4000"
}

/** Injects `kind` into the open connection of shard `target`. */
export const inject = (controls: FaultControls, kind: FaultKind, target: ShardTuple): Effect.Effect<void> =>
  SimulatorFaults.apply(controls, simulatorFault[kind], target)

/** A log line for an injected fault: what was done and what should follow. */
export const describeFault = (kind: FaultKind, shardId: number): string => {
  switch (kind) {
    case "drop":
      return `fault: dropped shard ${shardId}'s connection (1006) → expect a resume`
    case "zombie":
      return `fault: shard ${shardId} is a zombie (ACKs withheld) → expect close 4000 and a resume at the next beat`
    case "reconnect":
      return `fault: op 7 to shard ${shardId} → expect a resume`
    case "invalidate":
      return `fault: op 9 (not resumable) to shard ${shardId} → expect a new IDENTIFY in 1–5 s`
    case "close":
      return `fault: closed shard ${shardId} with 4000 → expect a resume`
  }
}

/** A shard to fault: one of the ready shards, at random; none if no shard is ready. */
export const pickShard = (status: StatusView): Effect.Effect<Option.Option<ShardView>> =>
  Effect.suspend(() => {
    const ready = status.shards.filter((shard) => shard.phase === "ready")
    if (ready.length === 0) return Effect.succeedNone
    return Effect.map(Random.nextIntBetween(0, ready.length, { halfOpen: true }), (i) => Option.fromUndefinedOr(ready[i]))
  })

/** A fault kind, at random. */
export const randomFault: Effect.Effect<FaultKind> = Effect.map(
  Random.nextIntBetween(0, faultKinds.length, { halfOpen: true }),
  (i) => faultKinds[i]!
)
