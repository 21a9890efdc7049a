/**
 * Decoding of server frames (PROTOCOL.md §1.3): the envelope `{op, d, s, t}` is checked eagerly and by hand
 * (this runs for every event); the payloads of the rare control ops (Hello, Invalid Session) are checked
 * here too, and a malformed one is a `FrameDecodeError`, never silently dropped.
 *
 * Every text frame is read from its UTF-8 bytes (`TextFrame`), however it arrived: from the real transport
 * as it came off the socket, from `Inflater` as it came out of decompression (§5.3–5.5), or, from the
 * in-process simulator or a fake transport, as a string, which is encoded first (those are not the hot
 * path). Dispatch data is not parsed here when it need not be: Discord writes dispatches as
 * `{"t":"NAME","s":N,"op":0,"d":…}`, so the envelope is read off the bytes and `d` left in them
 * (`dataStart`) for whoever reads it — an event nobody subscribed to is never decoded to a string, let
 * alone parsed. Any other key order or spacing, or a name that is not plain ASCII, takes the full parse
 * (and keys after `d` are handled when the data is read).
 *
 * Unknown opcodes come back as `{ op: "unknown" }` and unknown keys are ignored (item 51).
 */
import { FrameDecodeError } from "../Errors.ts"
import { TextFrame } from "../transport/TextFrame.ts"

export type ServerFrame =
  /** A dispatch: `d` parsed, or (`dataStart` set) left in `text`, from `dataStart` to the closing brace. */
  | {
    readonly op: 0
    readonly s: number
    readonly t: string
    readonly d: unknown
    /** The whole frame, still in bytes (decoded by whoever reads the data). */
    readonly text: TextFrame
    /** Where `d` starts in the decoded text (`text.text()`), when it was left unparsed. */
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

const DispatchPrefix = Buffer.from('{"t":"')
const SeqKey = Buffer.from(',"s":')
const OpAndData = Buffer.from(',"op":0,"d":')

const startsWithAt = (bytes: Buffer, prefix: Buffer, at: number): boolean => {
  if (at + prefix.length > bytes.length) return false
  for (let i = 0; i < prefix.length; i++) if (bytes[at + i] !== prefix[i]) return false
  return true
}

/**
 * Event names seen recently, by a hash of their bytes: a gateway sends a few dozen names over and over, so
 * the name is almost always one of these, and the same string each time (no string made per event, and
 * its hash, which every Map and Set lookup of it needs, computed once). A slot holds the last name that
 * hashed to it.
 */
const NameSlots = 256
const names: Array<string | undefined> = Array.from({ length: NameSlots }, () => undefined)

/** The name in `bytes[start, end)` (printable ASCII, `hash` over its bytes), the cached string when it is one. */
const eventName = (bytes: Buffer, start: number, end: number, hash: number): string => {
  const slot = hash & (NameSlots - 1)
  const cached = names[slot]
  if (cached !== undefined && cached.length === end - start) {
    let i = 0
    while (i < cached.length && cached.charCodeAt(i) === bytes[start + i]) i++
    if (i === cached.length) return cached
  }
  return names[slot] = bytes.toString("latin1", start, end)
}

/**
 * Reads a dispatch in Discord's layout off the bytes, without decoding them or parsing `d`; undefined when
 * the frame is laid out otherwise. Names are taken when they are printable ASCII without escapes
 * (Discord's are upper-case letters, digits and `_`); anything else is left to the full parse.
 */
const scanDispatch = (frame: TextFrame): ServerFrame | undefined => {
  const bytes = frame.bytes
  if (!startsWithAt(bytes, DispatchPrefix, 0) || bytes[bytes.length - 1] !== 125 /* } */) return undefined
  let nameEnd = DispatchPrefix.length
  let hash = 0
  for (let c = bytes[nameEnd]; c !== 34 /* " */; c = bytes[++nameEnd]) {
    if (c === undefined || c < 32 || c > 126 || c === 92 /* \ */) return undefined
    hash = (hash * 31 + c) | 0
  }
  if (nameEnd === DispatchPrefix.length || !startsWithAt(bytes, SeqKey, nameEnd + 1)) return undefined
  let i = nameEnd + 1 + SeqKey.length
  let s = 0
  const digitsStart = i
  for (let c = bytes[i]; c !== undefined && c >= 48 && c <= 57; c = bytes[++i]) s = s * 10 + (c - 48)
  // JSON numbers have no leading zeros ("s":007 is not JSON): such a frame is left to the full parse.
  const digits = i - digitsStart
  if (digits === 0 || digits > 15 || (digits > 1 && bytes[digitsStart] === 48) || !startsWithAt(bytes, OpAndData, i)) {
    return undefined
  }
  // Every byte before `d` was checked to be ASCII (the keys, the name, the digits), and an ASCII byte is one
  // UTF-16 unit of the decoded text whatever follows it: the byte offset is the offset in the text.
  const dataStart = i + OpAndData.length
  if (dataStart >= bytes.length - 1) return undefined
  return { op: 0, s, t: eventName(bytes, DispatchPrefix.length, nameEnd, hash), d: undefined, text: frame, dataStart }
}

/**
 * Decodes one complete gateway message, a text frame in either form a transport may hand over (a string
 * is encoded to bytes, so both take one path). A dispatch in Discord's layout is read off the bytes (its
 * data, and the rest of the frame, stay undecoded until read); anything else is decoded and parsed whole.
 * Returns the frame, or the error describing what is wrong.
 */
export const decodeTextFrame = (frame: string | TextFrame): ServerFrame | FrameDecodeError => {
  const bytes = typeof frame === "string" ? new TextFrame(Buffer.from(frame)) : frame
  return scanDispatch(bytes) ?? parseServerFrame(bytes)
}

/** The full parse: any layout, any op. */
const parseServerFrame = (message: TextFrame): ServerFrame | FrameDecodeError => {
  const text = message.text()
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
      return { op: 0, s, t, d: frame.d, text: message, dataStart: undefined }
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
