/**
 * The server side of transport compression for the simulator socket server (PROTOCOL.md §5.4–5.5, §9).
 *
 * - `zlib-stream`: one `zlib.createDeflate()` per connection. Every gateway message is written with
 *   Z_SYNC_FLUSH, so it ends with `00 00 ff ff`; only the first message of the connection carries the zlib
 *   header `78 9c`. A message may be split over two WebSocket messages (`splitMessage`) to exercise the
 *   client's buffering until the marker (checklist item 46).
 * - `zstd-stream`: one `zlib.createZstdCompress()` per connection, flushed (ZSTD_e_flush) after every
 *   message and never ended; the magic `28 b5 2f fd` appears once, at the start (item 49).
 *
 * A new connection gets a new context, so a client that reuses its old one fails (item 48).
 *
 * This is callback-based Node glue, driven from `ws` event handlers: `compress` calls are queued by the
 * caller one at a time (see `SimulatorSocketServer`), and each one's callback receives exactly the bytes of
 * that message.
 */
import * as zlib from "node:zlib"
import type { Compression } from "../transport/GatewayUrl.ts"

export type { Compression } from "../transport/GatewayUrl.ts"

/** One connection's compression context. */
export interface MessageCompressor {
  /**
   * Compresses one gateway message and calls `done` with its bytes (or an error). Calls must not overlap:
   * start the next one after `done` ran.
   */
  readonly compress: (text: string, done: (error: Error | undefined, bytes: Buffer) => void) => void
  /** Frees the context. Later `compress` calls fail. */
  readonly destroy: () => void
}

const Empty = Buffer.alloc(0)

/**
 * A compression context for one connection. The stream's default flush mode is the per-message flush
 * (Z_SYNC_FLUSH / ZSTD_e_flush), so each write ends a message's output; its callback runs once that output
 * was pushed. Output still in the readable buffer at that point is awaited before `done` runs.
 */
export const makeCompressor = (kind: Exclude<Compression, "none">): MessageCompressor => {
  const stream: zlib.Deflate | zlib.ZstdCompress = kind === "zlib-stream"
    ? zlib.createDeflate({ flush: zlib.constants.Z_SYNC_FLUSH })
    : zlib.createZstdCompress({ flush: zlib.constants.ZSTD_e_flush })
  const chunks: Array<Buffer> = []
  let size = 0
  let written = false
  let done: ((error: Error | undefined, bytes: Buffer) => void) | undefined

  const settle = (error: Error | undefined) => {
    const callback = done
    if (callback === undefined) return
    done = undefined
    const bytes = error !== undefined ? Empty : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)
    chunks.length = 0
    size = 0
    callback(error, bytes)
  }

  stream.on("data", (chunk: Buffer) => {
    chunks.push(chunk)
    size += chunk.length
    if (written && stream.readableLength === 0) settle(undefined)
  })
  stream.on("error", (error) => settle(error))

  const onWritten = (error: Error | null | undefined) => {
    if (error) return settle(error)
    written = true
    if (stream.readableLength === 0) settle(undefined)
  }

  return {
    compress: (text, callback) => {
      if (stream.destroyed) return callback(new Error(`${kind}: the compression context is closed`), Empty)
      done = callback
      written = false
      stream.write(text, onWritten)
    },
    destroy: () => {
      done = undefined
      stream.destroy()
    }
  }
}

/** True when `bytes` ends with the zlib Z_SYNC_FLUSH marker `00 00 ff ff`. */
const endsWithMarker = (bytes: Uint8Array, end: number): boolean =>
  end >= 4 && bytes[end - 1] === 0xff && bytes[end - 2] === 0xff && bytes[end - 3] === 0 && bytes[end - 4] === 0

/**
 * Splits one zlib-stream message in two WebSocket messages near its middle, such that only the second
 * ends with the sync-flush marker (PROTOCOL.md §5.4; item 46). Messages shorter than 2 bytes stay whole.
 */
export const splitMessage = (bytes: Buffer): ReadonlyArray<Buffer> => {
  if (bytes.length < 2) return [bytes]
  let cut = bytes.length >> 1
  while (cut > 1 && endsWithMarker(bytes, cut)) cut--
  return [bytes.subarray(0, cut), bytes.subarray(cut)]
}
