/**
 * The one close-code table (PROTOCOL.md §2): what a shard does after its connection closes with a code.
 *
 * - `resume`: reconnect and RESUME if a session exists (IDENTIFY otherwise);
 * - `identify`: the session is gone — forget it, reconnect to the base URL and IDENTIFY;
 * - `fatal`: open no further connection; the shard ends with the typed error.
 *
 * Codes not in the table (1006 drops, 4006, 4015+, server-sent 1000/1001, anything else) resume: the
 * documented rule for a disconnect without a usable code. A server op 9 `d:false` then moves to IDENTIFY.
 */
import {
  AuthenticationFailed,
  DisallowedIntents,
  type FatalCloseError,
  InvalidApiVersion,
  InvalidIntents,
  InvalidShard,
  ShardingRequired
} from "../Errors.ts"

export type CloseAction = "resume" | "identify" | "fatal"

type FatalConstructor = new(props: {
  readonly shardId: number
  readonly shardCount: number
  readonly code: number
  readonly reason: string
}) => FatalCloseError

export interface CloseCodeInfo {
  readonly code: number
  readonly name: string
  readonly action: CloseAction
  /** For fatal codes: the typed error the shard ends with. */
  readonly error?: FatalConstructor
}

const entry = (code: number, name: string, action: CloseAction, error?: FatalConstructor): CloseCodeInfo =>
  error === undefined ? { code, name, action } : { code, name, action, error }

/** Every documented code, plus the WebSocket codes a client sees. */
export const CloseCodes: ReadonlyMap<number, CloseCodeInfo> = new Map([
  entry(1000, "Normal closure", "resume"),
  entry(1001, "Going away", "resume"),
  entry(1006, "Abnormal closure (no close frame)", "resume"),
  entry(4000, "Unknown error", "resume"),
  entry(4001, "Unknown opcode", "resume"),
  entry(4002, "Decode error", "resume"),
  entry(4003, "Not authenticated", "identify"),
  entry(4004, "Authentication failed", "fatal", AuthenticationFailed),
  entry(4005, "Already authenticated", "resume"),
  entry(4007, "Invalid seq", "identify"),
  entry(4008, "Rate limited", "resume"),
  entry(4009, "Session timed out", "identify"),
  entry(4010, "Invalid shard", "fatal", InvalidShard),
  entry(4011, "Sharding required", "fatal", ShardingRequired),
  entry(4012, "Invalid API version", "fatal", InvalidApiVersion),
  entry(4013, "Invalid intent(s)", "fatal", InvalidIntents),
  entry(4014, "Disallowed intent(s)", "fatal", DisallowedIntents)
].map((info) => [info.code, info]))

const unknownCode = (code: number): CloseCodeInfo => ({ code, name: "Unknown close code", action: "resume" })

/** Looks a close code up in the table; unknown codes resume. */
export const classifyClose = (code: number): CloseCodeInfo => CloseCodes.get(code) ?? unknownCode(code)

/** The code a client closes with when it wants to RESUME afterwards (never 1000/1001, PROTOCOL.md §1.10). */
export const ResumableCloseCode = 4000

/** The code a client closes with when the session should end (bot goes offline). */
export const SessionEndingCloseCode = 1000
