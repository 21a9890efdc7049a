/**
 * What the gateway simulator records: every frame in both directions, every connection, every refused
 * connection attempt and every `/gateway/bot` request — the material the conformance checks of
 * PROTOCOL.md §10 read (§9 "Record every client frame … plus opens/closes").
 *
 * Recordings never contain a bot token: a `token` field of a frame's `d` is replaced by `"<redacted>"`,
 * raw text of malformed frames has every token the simulator ever accepted (and any `"token":"…"` pair)
 * masked, and `Authorization` headers are not kept.
 */
import type { ShardTuple } from "./SimulatorSessions.ts"

/** What replaces a token in every recording. */
export const Redacted = "<redacted>"

/** Longest `raw` text kept for a malformed frame. */
const RawLimit = 512

/**
 * Appends a record to a history that keeps at least the latest `limit` records: once it holds twice that, the
 * older half goes (one copy per `limit` appends, so appending stays O(1) on average).
 */
export const appendRecord = <A>(history: Array<A>, record: A, limit: number): void => {
  history.push(record)
  if (history.length >= 2 * limit) history.splice(0, history.length - limit)
}

/** One frame as it crossed the (simulated) wire. */
export interface RecordedFrame {
  /** The connection it travelled on (`RecordedConnection.id`). */
  readonly connectionId: number
  /** `"client"`: sent by the client to the simulator; `"server"`: sent by the simulator. */
  readonly direction: "client" | "server"
  /** Clock time in ms (TestClock time under `it.effect`). */
  readonly at: number
  /** The `[shard_id, num_shards]` of the connection when the frame passed (its IDENTIFY/RESUME), or null before. */
  readonly shard: ShardTuple | null
  /** The frame's `op`, or null when the frame is not a JSON object with a numeric `op`. */
  readonly op: number | null
  /** The frame's `t` (dispatch name), or null. */
  readonly t: string | null
  /** The frame's `s` (sequence), or null. */
  readonly s: number | null
  /** The decoded `d`, with a `token` field replaced by `"<redacted>"`. */
  readonly d: unknown
  /** Encoded size in bytes (UTF-8). */
  readonly bytes: number
  /** Only for frames that are not valid JSON or exceed 4096 bytes: their text, truncated and redacted. */
  readonly raw?: string
}

/** One connection the simulator accepted. */
export interface RecordedConnection {
  /** Connection id, in order of connection attempts (refused attempts take ids too). */
  readonly id: number
  /** The full URL the client connected to, query included. */
  readonly url: string
  /** Clock time the connection opened. */
  readonly openedAt: number
  /** Clock time it closed, or null while open. */
  readonly closedAt: number | null
  /** The close code (1006 for a drop), or null while open. */
  readonly closeCode: number | null
  /** Who ended it: the client (close frame), the server (close frame), the transport (drop, no close frame). */
  readonly closedBy: "client" | "server" | "transport" | null
  /** The shard tuple of its latest IDENTIFY/RESUME, or null before one. */
  readonly shard: ShardTuple | null
  /** The session it last carried (after a successful IDENTIFY or RESUME), or null. */
  readonly sessionId: string | null
}

/** A connection attempt refused by `refuseConnections` (the client saw `ConnectFailed`). */
export interface RefusedConnection {
  /** Taken from the same counter as `RecordedConnection.id`, so ids order all attempts. */
  readonly id: number
  readonly url: string
  readonly at: number
}

/** One `GET /gateway/bot` request answered by `gatewayBotRequest` (the header itself is not kept). */
export interface RecordedRestRequest {
  readonly at: number
  readonly method: "GET"
  readonly path: "/gateway/bot"
  /** Whether the `Authorization` header was `Bot <current token>`. */
  readonly authorized: boolean
  readonly status: 200 | 401
}

/** A frame filter for `clientFrames`/`serverFrames`: op and/or shard (a number matches any count). */
export interface FrameFilter {
  readonly op?: number
  readonly shard?: number | readonly [shardId: number, shardCount: number]
}

const tokenPair = /"token"\s*:\s*"(?:[^"\\]|\\.)*"/g

const maskTokens = (value: string, tokens: Iterable<string>): string => {
  let out = value
  for (const token of tokens) {
    if (token.length > 0 && out.includes(token)) out = out.split(token).join(Redacted)
  }
  return out
}

const redactDeep = (value: unknown, tokens: ReadonlySet<string>): unknown => {
  if (typeof value === "string") return maskTokens(value, tokens)
  if (Array.isArray(value)) return value.map((item) => redactDeep(item, tokens))
  if (typeof value === "object" && value !== null) {
    const out: Record<string, unknown> = {}
    for (const [key, item] of Object.entries(value)) out[key] = key === "token" ? Redacted : redactDeep(item, tokens)
    return out
  }
  return value
}

/**
 * A client frame's `d` as recorded: a `token` field is replaced by `"<redacted>"` (shallow copy). When the
 * frame text carries a known token anywhere else too, every string holding it is masked (deep copy) — the
 * usual frame costs one `includes` per known token.
 */
export const redactData = (d: unknown, text: string, tokens: ReadonlySet<string>): unknown => {
  for (const token of tokens) {
    if (token.length > 0 && text.includes(token)) return redactDeep(d, tokens)
  }
  if (typeof d === "object" && d !== null && !Array.isArray(d) && Object.hasOwn(d, "token")) {
    return { ...(d as Record<string, unknown>), token: Redacted }
  }
  return d
}

/** Text of a malformed frame as recorded: truncated, every known token and any `"token":"…"` masked. */
export const redactRaw = (text: string, tokens: Iterable<string>): string => {
  const out = maskTokens(text.replace(tokenPair, `"token":"${Redacted}"`), tokens)
  return out.length > RawLimit ? `${out.slice(0, RawLimit)}…` : out
}

/** Whether a frame matches a filter. */
export const matchesFilter = (frame: RecordedFrame, filter: FrameFilter | undefined): boolean => {
  if (filter === undefined) return true
  if (filter.op !== undefined && frame.op !== filter.op) return false
  const shard = filter.shard
  if (shard === undefined) return true
  if (frame.shard === null) return false
  if (typeof shard === "number") return frame.shard[0] === shard
  return frame.shard[0] === shard[0] && frame.shard[1] === shard[1]
}
