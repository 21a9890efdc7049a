/**
 * TextFrame: a gateway message still in its UTF-8 bytes, decoded only when something reads it.
 *
 * A shard must see every dispatch's name and sequence number (PROTOCOL.md §1.3, §2: the sequence is
 * tracked for heartbeats and RESUME), but an event no subscriber asked for needs nothing else: its name and
 * `s` are read off the bytes (`Frame.decodeTextFrame`) and the frame is never turned into a string. Text
 * frames from the socket come as TextFrames (their bytes are valid UTF-8: the WebSocket checked them, RFC
 * 6455 §8.1), and so do the messages `Inflater` decompresses (§5.3–5.5; nothing checked those bytes, and
 * `text()` turns an invalid sequence into U+FFFD).
 */
export class TextFrame {
  readonly bytes: Buffer
  constructor(bytes: Buffer) {
    this.bytes = bytes
  }
  /** The frame as a string (decoded at each call). */
  text(): string {
    return this.bytes.toString("utf8")
  }
}

/** A frame as it crosses the transport seam: text (decoded or not yet) or binary. */
export type Frame = string | TextFrame | Uint8Array

/** A binary frame (payload- or transport-compressed, PROTOCOL.md §5.3–5.5); otherwise a text frame. */
export const isBinary = (frame: Frame): frame is Uint8Array => typeof frame !== "string" && !(frame instanceof TextFrame)
