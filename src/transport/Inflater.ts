/**
 * Inflater: turns the frames of one connection back into gateway message text, undoing compression
 * (PROTOCOL.md §5.3–5.5).
 *
 * - `"none"`: text frames are the messages. A binary frame is payload compression (§5.3): an independent
 *   zlib stream holding one whole message (checklist item 50).
 * - `"zlib-stream"` (§5.4): one inflate context for the whole connection. Binary data is buffered until it
 *   ends with the Z_SYNC_FLUSH marker `00 00 ff ff`; only then is it inflated, so a message split over
 *   several WebSocket messages comes out once, whole (item 46).
 * - `"zstd-stream"` (§5.5): one zstd decompression context for the whole connection. Each WebSocket message
 *   is one gateway message; the zstd frame never ends, so each message is fed in and all output it yields
 *   is collected (item 49).
 *
 * Make one Inflater per connection: a new connection starts a new compressed stream (item 48). The zlib
 * objects live in the Scope `make` runs in. A corrupt stream fails `push` with `FrameDecodeError` (never a
 * crash), and every later `push` fails the same way; the connection owner is expected to close.
 */
import { Effect, Scope } from "effect"
import * as zlib from "node:zlib"
import { FrameDecodeError } from "../Errors.ts"
import type { Compression } from "./GatewayUrl.ts"

export interface Inflater {
  /**
   * True when text frames come out unchanged (`"none"`): the caller may skip `push` for string frames
   * and only hand it binary ones.
   */
  readonly passthrough: boolean
  /**
   * Feeds one WebSocket frame. Returns the complete gateway message text, or `undefined` while a
   * zlib-stream message is still incomplete. Calls must be sequential (one receive loop per connection).
   */
  readonly push: (frame: string | Uint8Array) => Effect.Effect<string | undefined, FrameDecodeError>
}

const decodeError = (compression: Compression, detail: string): FrameDecodeError =>
  new FrameDecodeError({ op: null, event: null, detail: `${compression}: ${detail}` })

const errorMessage = (cause: unknown): string =>
  cause instanceof Error ? cause.message : String(cause)

/** True when `frame` ends with the zlib Z_SYNC_FLUSH marker `00 00 ff ff`. */
export const endsWithSyncFlush = (frame: Uint8Array): boolean => {
  const n = frame.length
  return n >= 4 && frame[n - 1] === 0xff && frame[n - 2] === 0xff && frame[n - 3] === 0 && frame[n - 4] === 0
}

/** The marker check for a short last piece: the marker may straddle the pieces buffered before it. */
const SYNC_FLUSH_MARKER: ReadonlyArray<number> = [0, 0, 0xff, 0xff]
const markerAcross = (pending: ReadonlyArray<Uint8Array>, frame: Uint8Array): boolean => {
  const marker = SYNC_FLUSH_MARKER
  let m = 3
  for (let i = frame.length - 1; i >= 0; i--, m--) if (frame[i] !== marker[m]) return false
  for (let p = pending.length - 1; p >= 0 && m >= 0; p--) {
    const piece = pending[p]!
    for (let i = piece.length - 1; i >= 0 && m >= 0; i--, m--) if (piece[i] !== marker[m]) return false
  }
  return m < 0
}

const toText = (chunks: ReadonlyArray<Buffer>, size: number): string =>
  chunks.length === 1 ? chunks[0]!.toString("utf8") : Buffer.concat(chunks, size).toString("utf8")

/**
 * Drives one long-lived node:zlib decompression stream: `decode(input)` writes `input` and resolves with
 * all the text the stream produced for it. The stream is created with a flush mode that makes every write
 * emit everything it can (zlib: Z_SYNC_FLUSH), so the write callback marks the end of a message's output.
 */
const streamDecoder = (
  compression: Compression,
  stream: zlib.Inflate | zlib.ZstdDecompress
) => {
  const chunks: Array<Buffer> = []
  let size = 0
  let written = false
  let failure: FrameDecodeError | undefined
  let resume: ((effect: Effect.Effect<string, FrameDecodeError>) => void) | undefined

  const settle = (effect: Effect.Effect<string, FrameDecodeError>) => {
    const r = resume
    resume = undefined
    chunks.length = 0
    size = 0
    if (r !== undefined) r(effect)
  }
  const finish = () => {
    if (resume === undefined) return
    settle(Effect.succeed(toText(chunks, size)))
  }
  const fail = (detail: string) => {
    if (failure === undefined) failure = decodeError(compression, detail)
    if (resume !== undefined) settle(Effect.fail(failure))
  }

  stream.on("data", (chunk: Buffer) => {
    chunks.push(chunk)
    size += chunk.length
    // Output left in the readable buffer when the write completed arrives here; finish once drained.
    if (written && stream.readableLength === 0) finish()
  })
  stream.on("error", (cause) => fail(errorMessage(cause)))
  const onWritten = (cause: Error | null | undefined) => {
    if (cause) return fail(errorMessage(cause))
    written = true
    if (stream.readableLength === 0) finish()
  }

  const decode = (input: Uint8Array): Effect.Effect<string, FrameDecodeError> =>
    Effect.callback<string, FrameDecodeError>((r) => {
      if (failure !== undefined) return r(Effect.fail(failure))
      if (stream.destroyed) return r(Effect.fail(decodeError(compression, "the decompression stream is closed")))
      resume = r
      written = false
      stream.write(input, onWritten)
      return Effect.sync(() => {
        if (resume === r) {
          // Output still to come belongs to this message; the stream is out of step from now on.
          resume = undefined
          failure = decodeError(compression, "interrupted while decompressing")
        }
      })
    })

  return decode
}

const acquireStream = <S extends zlib.Inflate | zlib.ZstdDecompress>(
  create: () => S
): Effect.Effect<S, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(create),
    (stream) => Effect.sync(() => stream.destroy())
  )

const noneInflater: Inflater = {
  passthrough: true,
  push: (frame) =>
    typeof frame === "string"
      ? Effect.succeed(frame)
      : Effect.try({
        try: () => zlib.inflateSync(frame).toString("utf8"),
        catch: (cause) => decodeError("none", `payload-compressed frame: ${errorMessage(cause)}`)
      })
}

const makeZlibStream: Effect.Effect<Inflater, never, Scope.Scope> = Effect.map(
  acquireStream(() => zlib.createInflate({ flush: zlib.constants.Z_SYNC_FLUSH })),
  (stream) => {
    const decode = streamDecoder("zlib-stream", stream)
    // Pieces of a message that arrived without the marker yet; usually empty.
    let pending: Array<Uint8Array> = []
    let pendingSize = 0
    return {
      passthrough: false,
      push: (frame) => {
        // The gateway never compresses a text frame; pass it through as a whole message.
        if (typeof frame === "string") return Effect.succeed(frame)
        const complete = frame.length >= 4 || pending.length === 0
          ? endsWithSyncFlush(frame)
          : markerAcross(pending, frame)
        if (!complete) {
          pending.push(frame)
          pendingSize += frame.length
          return Effect.undefined
        }
        if (pending.length === 0) return decode(frame)
        pending.push(frame)
        const whole = Buffer.concat(pending, pendingSize + frame.length)
        pending = []
        pendingSize = 0
        return decode(whole)
      }
    }
  }
)

const makeZstdStream: Effect.Effect<Inflater, never, Scope.Scope> = Effect.map(
  acquireStream(() => zlib.createZstdDecompress()),
  (stream) => {
    const decode = streamDecoder("zstd-stream", stream)
    return {
      passthrough: false,
      push: (frame) => typeof frame === "string" ? Effect.succeed(frame) : decode(frame)
    }
  }
)

/** A fresh Inflater for one connection using `compression`; its zlib context is released with the Scope. */
export const make = (compression: Compression): Effect.Effect<Inflater, never, Scope.Scope> => {
  switch (compression) {
    case "none":
      return Effect.succeed(noneInflater)
    case "zlib-stream":
      return makeZlibStream
    case "zstd-stream":
      return makeZstdStream
  }
}
