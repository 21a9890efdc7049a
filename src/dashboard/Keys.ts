/**
 * Key handling: what each key of the live dashboard does. Pure — the terminal delivers raw-mode input
 * chunks (Terminal.ts), `actionsForInput` turns them into actions, the dashboard performs them.
 *
 * Keys: `d` drop a random shard's connection (no close frame: the client sees 1006 and RESUMEs,
 * PROTOCOL.md §1.7), `z` zombie it (heartbeat ACKs withheld: the client closes 4000 and RESUMEs, §1.4),
 * `7` op 7 Reconnect, `9` op 9 Invalid Session not resumable (a new IDENTIFY, §1.8), `c` close with
 * 4000, `r` reshard to twice the shard count (§4), `q` or Ctrl-C quit gracefully. Upper case works too;
 * escape sequences (arrows, function keys) are ignored.
 */
import type { FaultKind } from "./Faults.ts"

export type DashboardAction =
  | { readonly _tag: "Fault"; readonly fault: FaultKind }
  | { readonly _tag: "Reshard" }
  | { readonly _tag: "Quit" }

const CtrlC = "\u0003"
const CtrlD = "\u0004"
const Escape = "\u001b"

const fault = (kind: FaultKind): DashboardAction => ({ _tag: "Fault", fault: kind })

const keyMap: ReadonlyMap<string, DashboardAction> = new Map<string, DashboardAction>([
  ["d", fault("drop")],
  ["z", fault("zombie")],
  ["7", fault("reconnect")],
  ["9", fault("invalidate")],
  ["c", fault("close")],
  ["r", { _tag: "Reshard" }],
  ["q", { _tag: "Quit" }],
  [CtrlC, { _tag: "Quit" }],
  [CtrlD, { _tag: "Quit" }]
])

/** The action of one key, if it has one. */
export const actionForKey = (key: string): DashboardAction | undefined => keyMap.get(key.toLowerCase())

/** The actions of one raw-mode input chunk (several keys may arrive at once), in order. */
export const actionsForInput = (chunk: string): ReadonlyArray<DashboardAction> => {
  if (chunk.startsWith(Escape) && chunk.length > 1) return [] // an escape sequence, not keys
  const actions: Array<DashboardAction> = []
  for (const key of chunk) {
    const action = actionForKey(key)
    if (action !== undefined) actions.push(action)
  }
  return actions
}

/** The key help line of the simulator demo. */
export const simulatorKeys = "keys: d drop · z zombie · 7 op 7 · 9 op 9 · c close 4000 · r reshard ×2 · q quit"

/** The key help line against Discord (no fault injection there). */
export const discordKeys = "keys: r reshard ×2 · q quit"
