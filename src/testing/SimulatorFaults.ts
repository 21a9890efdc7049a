/**
 * SimulatorFaults: the faults a test can throw at one shard of the simulator, by name, and how each is
 * applied (PROTOCOL.md §1.4, §1.7–§1.9, §2, §5.1). One catalogue for the soak, the dashboard and user tests.
 *
 * | kind | the simulator… | a correct client (PROTOCOL.md) |
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
 */
import type { Effect } from "effect"
import type { SimulatorControls } from "./SimulatorServer.ts"
import type { ShardTarget } from "./SimulatorSessions.ts"

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
  "unknown op"
]

/** Kinds after which the simulator destroys the shard's session (a fresh IDENTIFY follows). */
export const SessionEndingKinds: ReadonlySet<FaultKind> = new Set(["close 4003", "close 4007", "close 4009", "op 9 false"])

/** The simulator controls the faults use. */
export type FaultControls = Pick<
  SimulatorControls,
  "drop" | "close" | "reconnect" | "invalidateSession" | "withholdAcks" | "requestHeartbeat" | "sendRaw"
>

/** A frame that is not JSON (cut in the middle of a dispatch). */
const InvalidJson = `{"t":"MESSAGE_CREATE","s":1,"op":0,"d":{"content":"cut here`
/** A well-formed frame with an opcode the gateway does not define. */
const UnknownOp = `{"t":null,"s":null,"op":42,"d":{"fault":"unknown opcode"}}`

/** Applies a fault to the open connection(s) of `target`. */
export const apply = (controls: FaultControls, kind: FaultKind, target: ShardTarget): Effect.Effect<void> => {
  if (kind.startsWith("close ")) return controls.close(target, Number(kind.slice("close ".length)), `fault: ${kind}`)
  switch (kind) {
    case "drop":
      return controls.drop(target)
    case "op 7":
      return controls.reconnect(target)
    case "op 9 true":
      return controls.invalidateSession(target, true)
    case "op 9 false":
      return controls.invalidateSession(target, false)
    case "zombie":
      return controls.withholdAcks(target, true)
    case "heartbeat request":
      return controls.requestHeartbeat(target)
    case "invalid JSON":
      return controls.sendRaw(target, InvalidJson)
    default:
      return controls.sendRaw(target, UnknownOp)
  }
}
