/**
 * ShardState: what a shard is doing, as users observe it (PROTOCOL.md §1.11 state machine).
 *
 * Phases: idle → connecting → hello (socket open, waiting for op 10) → identifying (waiting for an identify
 * slot or READY) | resuming (waiting for RESUMED) → ready; reconnecting between connections (backoff or
 * the op 9 wait); stopped after a graceful stop; fatal after a fatal close code.
 */
export type ShardPhase =
  | "idle"
  | "connecting"
  | "hello"
  | "identifying"
  | "resuming"
  | "ready"
  | "reconnecting"
  | "stopped"
  | "fatal"

export interface ShardState {
  readonly shardId: number
  readonly shardCount: number
  readonly phase: ShardPhase
  /** Round trip of the last heartbeat (op 1 → op 11), in ms; null before the first ACK. */
  readonly latencyMs: number | null
  /** The last `s` received in the current session; null when there is no session. */
  readonly sequence: number | null
  readonly sessionId: string | null
  /** Clock time (ms) of the last dispatch received; null if none yet. */
  readonly lastDispatchAt: number | null
  /** The last error or abnormal close, as a message; null if none. */
  readonly lastError: string | null
  /** Connections opened after the first one. */
  readonly reconnects: number
  /** IDENTIFYs sent. */
  readonly identifies: number
  /** RESUMEs sent. */
  readonly resumes: number
}

export const initialState = (shardId: number, shardCount: number): ShardState => ({
  shardId,
  shardCount,
  phase: "idle",
  latencyMs: null,
  sequence: null,
  sessionId: null,
  lastDispatchAt: null,
  lastError: null,
  reconnects: 0,
  identifies: 0,
  resumes: 0
})
