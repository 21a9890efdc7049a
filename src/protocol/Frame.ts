/**
 * Decoding of server frames (PROTOCOL.md §1.3): the envelope `{op, d, s, t}` is checked eagerly and by hand
 * (this runs for every event); the payloads of the rare control ops (Hello, Invalid Session) are checked
 * here too, and a malformed one is a `FrameDecodeError`, never silently dropped.
 *
 * Dispatch data is not parsed here when it need not be: Discord writes dispatches as
 * `{"t":"NAME","s":N,"op":0,"d":…}`, so the envelope is read off the text and `d` left in it (`dataStart`)
 * for whoever reads it — an event nobody subscribed to costs no JSON.parse. Any other key order or spacing
 * takes the full parse (and keys after `d` are handled when the data is read).
 *
 * Unknown opcodes come back as `{ op: "unknown" }` and unknown keys are ignored (item 51).
 */
import { FrameDecodeError } from "../Errors.ts"
import type { TextFrame } from "../transport/TextFrame.ts"

export type ServerFrame =
  /** A dispatch: `d` parsed, or (`dataStart` set) left in `text`, from `dataStart` to the closing brace. */
  | {
    readonly op: 0
    readonly s: number
    readonly t: string
    readonly d: unknown
    /** The whole frame; still undecoded (`TextFrame`) when it was read off the bytes. */
    readonly text: string | TextFrame
    readonly dataStart: number | undefined
  }
  | { readonly op: 1 }
  | { readonly op: 7 }
  | { readonly op: 9; readonly resumable: boolean }
  | { readonly op: 10; readonly heartbeatInterval: number }
  | { readonly op: 11 }
  | { readonly op: "unknown"; readonly code: number }

const HeartbeatRequest: ServerFrame = { op: 1 }
const Reconnect: ServerFrame = { op: 7 }
const HeartbeatAck: ServerFrame = { op: 11 }

const fail = (op: number | null, event: string | null, detail: string) => new FrameDecodeError({ op, event, detail })

const DispatchPrefix = '{"t":"'
const SeqKey = ',"s":'
const OpAndData = ',"op":0,"d":'

/** Reads a dispatch in Discord's layout without parsing `d`; undefined when the text is laid out otherwise. */
const scanDispatch = (text: string): ServerFrame | undefined => {
  if (!text.startsWith(DispatchPrefix) || text.charCodeAt(text.length - 1) !== 125 /* } */) return undefined
  const nameEnd = text.indexOf('"', DispatchPrefix.length)
  if (nameEnd === -1) return undefined
  const t = text.slice(DispatchPrefix.length, nameEnd)
  if (t.length === 0 || t.includes("\\") || !text.startsWith(SeqKey, nameEnd + 1)) return undefined
  let i = nameEnd + 1 + SeqKey.length
  let s = 0
  const digitsStart = i
  for (let c = text.charCodeAt(i); c >= 48 && c <= 57; c = text.charCodeAt(++i)) s = s * 10 + (c - 48)
  if (i === digitsStart || i - digitsStart > 15 || !text.startsWith(OpAndData, i)) return undefined
  const dataStart = i + OpAndData.length
  if (dataStart >= text.length - 1) return undefined
  return { op: 0, s, t, d: undefined, text, dataStart }
}

const DispatchPrefixBytes = Buffer.from(DispatchPrefix)
const SeqKeyBytes = Buffer.from(SeqKey)
const OpAndDataBytes = Buffer.from(OpAndData)

const startsWithAt = (bytes: Buffer, prefix: Buffer, at: number): boolean => {
  if (at + prefix.length > bytes.length) return false
  for (let i = 0; i < prefix.length; i++) if (bytes[at + i] !== prefix[i]) return false
  return true
}

/**
 * `scanDispatch` on the bytes of a text frame: the same layout, read without decoding the frame. Names are
 * taken when they are plain ASCII (Discord's are upper-case letters, digits and `_`); anything else is left
 * to the full decode.
 */
const scanDispatchBytes = (frame: TextFrame): ServerFrame | undefined => {
  const bytes = frame.bytes
  if (!startsWithAt(bytes, DispatchPrefixBytes, 0) || bytes[bytes.length - 1] !== 125 /* } */) return undefined
  let nameEnd = DispatchPrefixBytes.length
  for (let c = bytes[nameEnd]; c !== 34 /* " */; c = bytes[++nameEnd]) {
    if (c === undefined || c < 32 || c > 126 || c === 92 /* \ */) return undefined
  }
  if (nameEnd === DispatchPrefixBytes.length || !startsWithAt(bytes, SeqKeyBytes, nameEnd + 1)) return undefined
  let i = nameEnd + 1 + SeqKeyBytes.length
  let s = 0
  const digitsStart = i
  for (let c = bytes[i]; c !== undefined && c >= 48 && c <= 57; c = bytes[++i]) s = s * 10 + (c - 48)
  if (i === digitsStart || i - digitsStart > 15 || !startsWithAt(bytes, OpAndDataBytes, i)) return undefined
  // The prefix is ASCII, so byte offsets are character offsets in the decoded text.
  const dataStart = i + OpAndDataBytes.length
  if (dataStart >= bytes.length - 1) return undefined
  return { op: 0, s, t: bytes.toString("latin1", DispatchPrefixBytes.length, nameEnd), d: undefined, text: frame, dataStart }
}

/**
 * Decodes one text frame still in bytes: a dispatch in Discord's layout is read off the bytes (its data,
 * and the rest of the frame, stay undecoded until read); anything else is decoded and goes through
 * `decodeServerFrame`.
 */
export const decodeTextFrame = (frame: TextFrame): ServerFrame | FrameDecodeError =>
  scanDispatchBytes(frame) ?? decodeServerFrame(frame.text())

/** Decodes one complete gateway message (text). Returns the frame, or the error describing what is wrong. */
export const decodeServerFrame = (text: string): ServerFrame | FrameDecodeError => {
  const dispatch = scanDispatch(text)
  if (dispatch !== undefined) return dispatch
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch {
    return fail(null, null, `not valid JSON (${text.length} characters)`)
  }
  if (typeof raw !== "object" || raw === null) return fail(null, null, "not a JSON object")
  const frame = raw as { readonly op?: unknown; readonly d?: unknown; readonly s?: unknown; readonly t?: unknown }
  const op = frame.op
  if (typeof op !== "number" || !Number.isInteger(op)) return fail(null, null, "`op` is not an integer")
  switch (op) {
    case 0: {
      const { s, t } = frame
      if (typeof t !== "string") return fail(0, null, "dispatch without a string `t`")
      if (typeof s !== "number" || !Number.isInteger(s)) return fail(0, t, "dispatch without an integer `s`")
      return { op: 0, s, t, d: frame.d, text, dataStart: undefined }
    }
    case 1:
      return HeartbeatRequest
    case 7:
      return Reconnect
    case 9:
      return typeof frame.d === "boolean"
        ? { op: 9, resumable: frame.d }
        : fail(9, null, "Invalid Session `d` is not a boolean")
    case 10: {
      const d = frame.d as { readonly heartbeat_interval?: unknown } | null | undefined
      const interval = typeof d === "object" && d !== null ? d.heartbeat_interval : undefined
      return typeof interval === "number" && Number.isFinite(interval) && interval > 0
        ? { op: 10, heartbeatInterval: interval }
        : fail(10, null, "Hello without a positive `heartbeat_interval`")
    }
    case 11:
      return HeartbeatAck
    default:
      return { op: "unknown", code: op }
  }
}
