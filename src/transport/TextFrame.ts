/**
 * TextFrame: a WebSocket text frame still in its UTF-8 bytes, decoded only when something reads it.
 *
 * A shard must see every dispatch's name and sequence number (PROTOCOL.md §1.3, §2: the sequence is
 * tracked for heartbeats and RESUME), but an event no subscriber asked for needs nothing else: its name and
 * `s` are read off the bytes (`Frame.decodeTextFrame`) and the frame is never turned into a string. The bytes
 * are valid UTF-8: the WebSocket checked them before handing the frame over (RFC 6455 §8.1).
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

/** The frame's text, for a text frame in either form. */
export const textOf = (frame: string | TextFrame): string => typeof frame === "string" ? frame : frame.text()
