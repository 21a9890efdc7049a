/**
 * Inflater: turns the frames of one connection back into gateway messages, undoing compression
 * (PROTOCOL.md §5.3–5.5). It works on a batch: `push(frames)` takes every frame of one transport read and
 * returns every complete gateway message those frames finish, in order. A decompressed message comes out as
 * a `TextFrame`, its bytes not decoded: the shard reads a dispatch's envelope off the bytes, so with
 * compression too an event nobody wants is never decoded to a string.
 *
 * - `"none"`: text frames are the messages. A binary frame is payload compression (§5.3): an independent
 *   zlib stream holding one whole message, inflated synchronously (checklist item 50). Never suspends.
 * - `"zlib-stream"` (§5.4): one inflate context for the whole connection. Binary data is buffered until it
 *   ends with the Z_SYNC_FLUSH marker `00 00 ff ff` (the marker may straddle pieces); only then is it
 *   inflated, so a message split over several WebSocket messages, within a batch or across batches, comes
 *   out once, whole (item 46).
 * - `"zstd-stream"` (§5.5): one zstd decompression context for the whole connection. Each binary WebSocket
 *   message is one gateway message; the zstd frame never ends, so each message is fed in and all output it
 *   yields is collected (item 49).
 *
 * Text frames pass through in their position, as they came (string or `TextFrame`). For the two stream
 * modes, all complete compressed messages of a batch are written into the long-lived node:zlib stream back
 * to back, without waiting between writes, and the fiber suspends once for the batch. The output is
 * attributed to messages by boundaries: the stream is read in flowing mode, and when the callback of write k
 * runs, every output byte of message k has been pushed (either emitted via 'data' or still in the readable
 * buffer) while no byte of a later message has (the next write's work has only just been started on the
 * threadpool). So message k ends at `bytes emitted so far + stream.readableLength` at callback k. This also
 * holds when Transform defers a write callback because the readable buffer is above its highWaterMark (it
 * releases it from `_read`, before the buffered chunk is taken out), so multi-megabyte messages (READY,
 * GUILD_CREATE) are fine. Once the output reaches the last boundary it is concatenated once and each
 * message is a view of its slice (no copy, no decode; node:zlib never writes over output it has pushed).
 * A batch that needs no decompression completes synchronously.
 *
 * Make one Inflater per connection: a new connection starts a new compressed stream (item 48). The zlib
 * objects live in the Scope `make` runs in. A corrupt stream fails `push` with `FrameDecodeError` (never a
 * crash), and every later `push` fails the same way; the connection owner is expected to close. Interrupting
 * a `push` while it waits for the stream leaves the stream out of step, so it also fails every later `push`.
 */
import { Effect, Scope } from "effect"
import * as zlib from "node:zlib"
import { FrameDecodeError } from "../Errors.ts"
import type { Compression } from "./GatewayUrl.ts"
import { type Frame, isBinary, TextFrame } from "./TextFrame.ts"

/** One gateway message out of `push`: a text frame as it came, or a decompressed one, undecoded. */
export type Message = string | TextFrame

export interface Inflater {
  /**
   * True when text frames come out unchanged (`"none"`): the caller may skip `push` for a batch of text
   * frames and only call it when a binary frame appears.
   */
  readonly passthrough: boolean
  /**
   * Feeds the frames of one batch, in order. Returns the complete gateway messages they yield, in order:
   * text frames in their position, unchanged, and a compressed message, as a `TextFrame`, where its last
   * piece arrived (a zlib-stream message still incomplete at the end of the batch is kept for the next
   * call). Calls must be sequential (one receive loop per connection).
   */
  readonly push: (frames: ReadonlyArray<Frame>) => Effect.Effect<ReadonlyArray<Message>, FrameDecodeError>
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

type Resume = (effect: Effect.Effect<ReadonlyArray<Message>, FrameDecodeError>) => void

/** The slot of a compressed message in a batch's result until it is decompressed. */
const Decompressing = new TextFrame(Buffer.alloc(0))

/** One batch in flight through the decompression stream. */
interface InFlight {
  /** The batch's result: text frames in place, `Decompressing` in the slots of compressed messages. */
  readonly out: Array<Message>
  /** `slots[k]`: the index in `out` of the k-th compressed message written. */
  readonly slots: ReadonlyArray<number>
  /** `ends[k]`: the batch output offset where the k-th message ends (filled by write callbacks). */
  readonly ends: Array<number>
  readonly resume: Resume
}

/**
 * Drives one long-lived node:zlib decompression stream (created with a flush mode that makes every write
 * emit everything it can; zlib: Z_SYNC_FLUSH). `start` writes one batch of complete compressed messages
 * back to back and calls `resume` once, with all their messages or a `FrameDecodeError`.
 */
const streamDecoder = (
  compression: Compression,
  stream: zlib.Inflate | zlib.ZstdDecompress
) => {
  // Output of the batch in flight, and its length in bytes (bytes emitted via 'data').
  let chunks: Array<Buffer> = []
  let emitted = 0
  let failure: FrameDecodeError | undefined
  let inFlight: InFlight | undefined

  const reset = () => {
    inFlight = undefined
    chunks = []
    emitted = 0
  }
  const complete = (batch: InFlight) => {
    const all = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, emitted)
    reset()
    const { ends, out, slots } = batch
    let start = 0
    for (let k = 0; k < slots.length; k++) {
      const end = ends[k]!
      out[slots[k]!] = new TextFrame(all.subarray(start, end))
      start = end
    }
    batch.resume(Effect.succeed(out))
  }
  const fail = (detail: string) => {
    if (failure === undefined) failure = decodeError(compression, detail)
    const batch = inFlight
    reset()
    if (batch !== undefined) batch.resume(Effect.fail(failure))
  }

  stream.on("data", (chunk: Buffer) => {
    const batch = inFlight
    if (batch === undefined) return // only after a failure: the batch it belonged to is gone
    chunks.push(chunk)
    emitted += chunk.length
    // Output still in the readable buffer at the last write callback arrives here; finish once it is in.
    if (batch.ends.length === batch.slots.length && emitted >= batch.ends[batch.ends.length - 1]!) {
      complete(batch)
    }
  })
  stream.on("error", (cause) => fail(errorMessage(cause)))
  stream.on("close", () => fail("the decompression stream is closed"))
  // Callbacks run in write order. At callback k all output of message k has been pushed and none of later
  // ones: message k ends at what was emitted plus what the readable buffer still holds.
  const onWritten = (cause: Error | null | undefined) => {
    const batch = inFlight
    if (batch === undefined) return
    if (cause) return fail(errorMessage(cause))
    const end = emitted + stream.readableLength
    batch.ends.push(end)
    if (batch.ends.length === batch.slots.length && emitted >= end) complete(batch)
  }

  return {
    failed: (): FrameDecodeError | undefined =>
      failure ?? (stream.destroyed ? decodeError(compression, "the decompression stream is closed") : undefined),
    /** Registers a batch; returns the interruption handler for `Effect.callback`. */
    start: (
      inputs: ReadonlyArray<Uint8Array>,
      out: Array<Message>,
      slots: ReadonlyArray<number>,
      resume: Resume
    ): Effect.Effect<void> => {
      const batch: InFlight = { out, slots, ends: [], resume }
      inFlight = batch
      for (let k = 0; k < inputs.length; k++) stream.write(inputs[k]!, onWritten)
      return Effect.sync(() => {
        if (inFlight === batch) {
          // Output still to come belongs to this batch; the stream is out of step from now on.
          reset()
          if (failure === undefined) failure = decodeError(compression, "interrupted while decompressing")
        }
      })
    }
  }
}

/**
 * An Inflater over a stream decompressor you own (for `"zlib-stream"`, create it with
 * `flush: Z_SYNC_FLUSH`); `make` is the usual way to get one. `splitMessages`: zlib-stream framing, where a
 * message may arrive in pieces and ends with `00 00 ff ff`; otherwise every binary frame is one message.
 */
export const fromStream = (
  compression: Compression,
  stream: zlib.Inflate | zlib.ZstdDecompress,
  splitMessages: boolean
): Inflater => {
  const decoder = streamDecoder(compression, stream)
  // zlib-stream pieces of a message that arrived without the marker yet; usually empty.
  let pending: Array<Uint8Array> = []
  let pendingSize = 0
  return {
    passthrough: false,
    // One callback: the frames are taken, and the batch is written, in the same synchronous step (nothing is
    // consumed if the fiber is interrupted before it). Resumed at once when nothing needs decompression.
    push: (frames) =>
      Effect.callback<ReadonlyArray<Message>, FrameDecodeError>((resume) => {
        const failure = decoder.failed()
        if (failure !== undefined) return resume(Effect.fail(failure))
        const out: Array<Message> = []
        const inputs: Array<Uint8Array> = []
        const slots: Array<number> = []
        for (let i = 0; i < frames.length; i++) {
          const frame = frames[i]!
          // The gateway never compresses a text frame; pass it through as a whole message.
          if (!isBinary(frame)) {
            out.push(frame)
            continue
          }
          let whole = frame
          if (splitMessages) {
            const complete = frame.length >= 4 || pending.length === 0
              ? endsWithSyncFlush(frame)
              : markerAcross(pending, frame)
            if (!complete) {
              pending.push(frame)
              pendingSize += frame.length
              continue
            }
            if (pending.length > 0) {
              pending.push(frame)
              whole = Buffer.concat(pending, pendingSize + frame.length)
              pending = []
              pendingSize = 0
            }
          }
          slots.push(out.length)
          out.push(Decompressing)
          inputs.push(whole)
        }
        if (inputs.length === 0) return resume(Effect.succeed(out))
        return decoder.start(inputs, out, slots, resume)
      })
  }
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
  push: (frames) =>
    Effect.try({
      try: () => {
        const out: Array<Message> = new Array(frames.length)
        for (let i = 0; i < frames.length; i++) {
          const frame = frames[i]!
          out[i] = isBinary(frame) ? new TextFrame(zlib.inflateSync(frame)) : frame
        }
        return out
      },
      catch: (cause) => decodeError("none", `payload-compressed frame: ${errorMessage(cause)}`)
    })
}

/** A fresh Inflater for one connection using `compression`; its zlib context is released with the Scope. */
export const make = (compression: Compression): Effect.Effect<Inflater, never, Scope.Scope> => {
  switch (compression) {
    case "none":
      return Effect.succeed(noneInflater)
    case "zlib-stream":
      return Effect.map(
        acquireStream(() => zlib.createInflate({ flush: zlib.constants.Z_SYNC_FLUSH })),
        (stream) => fromStream("zlib-stream", stream, true)
      )
    case "zstd-stream":
      return Effect.map(
        acquireStream(() => zlib.createZstdDecompress()),
        (stream) => fromStream("zstd-stream", stream, false)
      )
  }
}
