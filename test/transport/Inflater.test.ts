/**
 * Tests for Inflater alone, fed with bytes made by node:zlib in the test (PROTOCOL.md §5.3–5.5; checklist
 * items 46, 48, 49, 50). `push` takes a batch of frames (every frame of one transport read) and returns the
 * complete messages they yield, in order: each decompressed one as an undecoded `TextFrame`, each text frame
 * as it came.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Schema } from "effect"
import * as zlib from "node:zlib"
import { FrameDecodeError } from "../../src/Errors.ts"
import * as Inflater from "../../src/transport/Inflater.ts"
import { type Frame, TextFrame } from "../../src/transport/TextFrame.ts"
import { compressor, message } from "./wsServer.ts"

/** How a text frame that went through `push` as a string is shown (see `shown`). */
const given = (text: string) => ({ given: text })

/**
 * Messages as the tests compare them: a decompressed one, which must come out as an undecoded `TextFrame`,
 * as its text; a text frame pushed as a string, passed through, as `given(text)`.
 */
const shown = (messages: ReadonlyArray<Inflater.Message>) =>
  messages.map((message) => typeof message === "string" ? given(message) : message.text())

/** Pushes each batch in turn and returns the messages every one of them yielded, unchanged. */
const pushEach = (inflater: Inflater.Inflater, batches: ReadonlyArray<ReadonlyArray<Frame>>) =>
  Effect.gen(function*() {
    const out: Array<ReadonlyArray<Inflater.Message>> = []
    for (const batch of batches) out.push(yield* inflater.push(batch))
    return out
  })

/** Pushes each batch in turn and returns the messages every one of them yielded, `shown`. */
const pushBatches = (inflater: Inflater.Inflater, batches: ReadonlyArray<ReadonlyArray<Frame>>) =>
  Effect.map(pushEach(inflater, batches), (outs) => outs.map(shown))

/** Pushes every frame as its own batch and returns all messages that came out. */
const pushOneByOne = (inflater: Inflater.Inflater, frames: ReadonlyArray<Frame>) =>
  Effect.map(pushBatches(inflater, frames.map((frame) => [frame])), (outs) => outs.flat())

const hex = (bytes: Uint8Array, n: number) => Buffer.from(bytes.subarray(0, n)).toString("hex")

/** Compresses every text with one stream (one connection). */
const compressAll = (kind: "zlib-stream" | "zstd-stream", texts: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const compress = yield* compressor(kind)
    const frames: Array<Buffer> = []
    for (const text of texts) frames.push(yield* compress(text))
    return frames
  })

/** A READY-sized message: well over 1 MiB of JSON. */
const bigMessage = JSON.stringify({ op: 0, t: "READY", d: { guilds: Array.from({ length: 100_000 }, (_, i) => ({ id: `${i}` })) } })

/** Runs `push` with `Effect.runSync`, which throws if the effect suspends: for batches that need no decompression. */
const pushSync = (inflater: Inflater.Inflater, frames: ReadonlyArray<Frame>) => shown(Effect.runSync(inflater.push(frames)))

/** One turn of the event loop (no timer involved). */
const nextTurn = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

describe("Inflater none (payload compression)", () => {
  it.effect("item 50: text frames pass through and standalone zlib binary frames are inflated, in one batch", () =>
    Effect.gen(function*() {
      const inflater = yield* Inflater.make("none")
      expect(inflater.passthrough).toBe(true)
      const texts = [message(1), message(2, 5000), message(3), message(4, 20), message(5, 70_000)]
      const frames = [texts[0]!, zlib.deflateSync(texts[1]!), texts[2]!, zlib.deflateSync(texts[3]!), zlib.deflateSync(texts[4]!)]
      expect(hex(frames[1] as Uint8Array, 1)).toBe("78")
      const expected = [given(texts[0]!), texts[1], given(texts[2]!), texts[3], texts[4]]
      // synchronous: runSync throws if the effect suspends
      expect(pushSync(inflater, frames)).toEqual(expected)
      expect(yield* pushOneByOne(inflater, frames)).toEqual(expected)
      expect(pushSync(inflater, [])).toEqual([])
      // a text frame still in bytes passes through as it is, undecoded
      const undecoded = new TextFrame(Buffer.from(message(6)))
      expect((yield* inflater.push([undecoded, frames[1]!]))[0]).toBe(undecoded)
    }))

  it.effect("a corrupt binary frame in a batch fails with FrameDecodeError", () =>
    Effect.gen(function*() {
      const inflater = yield* Inflater.make("none")
      const error = yield* Effect.flip(inflater.push([message(0), new Uint8Array([1, 2, 3, 4]), message(1)]))
      expect(error).toBeInstanceOf(FrameDecodeError)
      expect(error.detail).toContain("none")
    }))
})

describe("Inflater zlib-stream", () => {
  it.effect("item 46: 60 messages of one stream in one batch, later ones without header, one split over two frames", () =>
    Effect.gen(function*() {
      const texts = Array.from({ length: 60 }, (_, i) => message(i, i * 37))
      const frames = yield* compressAll("zlib-stream", texts)
      expect(hex(frames[0]!, 2)).toBe("789c")
      expect(hex(frames[1]!, 2)).not.toBe("789c")
      expect(frames.every(Inflater.endsWithSyncFlush)).toBe(true)

      const inflater = yield* Inflater.make("zlib-stream")
      expect(inflater.passthrough).toBe(false)
      // Message 55 (after ≥50 in the stream) arrives in two WS messages; only the second ends 00 00 ff ff.
      const split = frames[55]!
      const head = split.subarray(0, Math.floor(split.length / 2))
      expect(Inflater.endsWithSyncFlush(head)).toBe(false)
      const batch = [...frames.slice(0, 55), head, split.subarray(head.length), ...frames.slice(56)]
      expect(shown(yield* inflater.push(batch))).toEqual(texts)
    }))

  it.effect("item 46: the same stream pushed one frame per batch; a lone piece yields nothing, synchronously", () =>
    Effect.gen(function*() {
      const texts = Array.from({ length: 60 }, (_, i) => message(i, i * 37))
      const frames = yield* compressAll("zlib-stream", texts)
      const inflater = yield* Inflater.make("zlib-stream")
      const split = frames[55]!
      const head = split.subarray(0, Math.floor(split.length / 2))
      const out: Array<Inflater.Message> = []
      for (let i = 0; i < frames.length; i++) {
        if (i === 55) {
          expect(pushSync(inflater, [head])).toEqual([])
          out.push(...(yield* inflater.push([split.subarray(head.length)])))
        } else {
          out.push(...(yield* inflater.push([frames[i]!])))
        }
      }
      expect(shown(out)).toEqual(texts)
    }))

  it.effect("500 messages of varied sizes in one batch come out in order, equal to the originals", () =>
    Effect.gen(function*() {
      const texts = Array.from({ length: 501 }, (_, i) => message(i, (i * 7919) % 3000))
      const frames = yield* compressAll("zlib-stream", texts)
      const inflater = yield* Inflater.make("zlib-stream")
      expect(shown(yield* inflater.push(frames.slice(0, 500)))).toEqual(texts.slice(0, 500))
      // and the stream goes on with the next batch
      expect(shown(yield* inflater.push(frames.slice(500)))).toEqual(texts.slice(500))
    }))

  it.effect("text frames in a batch keep their position among the inflated messages", () =>
    Effect.gen(function*() {
      const frames = yield* compressAll("zlib-stream", [message(1), message(3)])
      const inflater = yield* Inflater.make("zlib-stream")
      const undecoded = new TextFrame(Buffer.from(message(4)))
      const out = yield* inflater.push([message(0), frames[0]!, message(2), frames[1]!, undecoded])
      expect(shown(out)).toEqual([given(message(0)), message(1), given(message(2)), message(3), message(4)])
      expect(out[4]).toBe(undecoded) // a text frame still in bytes passes through as it is, undecoded
      // a batch of text frames only needs no decompression: synchronous
      expect(pushSync(inflater, [message(5), message(6)])).toEqual([given(message(5)), given(message(6))])
    }))

  it.effect("an empty batch yields nothing, synchronously, and the stream goes on", () =>
    Effect.gen(function*() {
      const frames = yield* compressAll("zlib-stream", [message(0), message(1)])
      const inflater = yield* Inflater.make("zlib-stream")
      expect(pushSync(inflater, [])).toEqual([])
      expect(shown(yield* inflater.push([frames[0]!]))).toEqual([message(0)])
      expect(pushSync(inflater, [])).toEqual([])
      expect(shown(yield* inflater.push([frames[1]!]))).toEqual([message(1)])
    }))

  it.effect("a batch mixing complete messages and split pieces: marker at the batch end, a message across two batches", () =>
    Effect.gen(function*() {
      const texts = Array.from({ length: 6 }, (_, i) => message(i, i * 900))
      const f = yield* compressAll("zlib-stream", texts)
      const inflater = yield* Inflater.make("zlib-stream")
      const cut = (frame: Uint8Array, at: number) => [frame.subarray(0, at), frame.subarray(at)] as const
      const [a2, b2] = cut(f[2]!, 7)
      const [a4, b4] = cut(f[4]!, Math.floor(f[4]!.length / 2))
      expect(yield* pushBatches(inflater, [
        // message 1 in two pieces, the last one (with the marker) ends the batch; message 2 starts
        [f[0]!, ...cut(f[1]!, 5), a2],
        // message 2 ends in this batch, message 3 complete, message 4 starts
        [b2, f[3]!, a4],
        // message 4 is all this batch holds, it ends here, with no other message
        [b4],
        [f[5]!]
      ])).toEqual([[texts[0], texts[1]], [texts[2], texts[3]], [texts[4]], [texts[5]]])
    }))

  it.effect("the marker straddling pieces, within a batch and across batches", () =>
    Effect.gen(function*() {
      const texts = Array.from({ length: 5 }, (_, i) => message(i, 3000))
      const f = yield* compressAll("zlib-stream", texts)
      const inflater = yield* Inflater.make("zlib-stream")
      const n1 = f[1]!.length
      const n3 = f[3]!.length
      // `… 00 00` + `ff ff`, and `… 00` + `00 ff` + `ff`: only the last piece completes the marker
      const p1 = [f[1]!.subarray(0, n1 - 2), f[1]!.subarray(n1 - 2)]
      const p3 = [f[3]!.subarray(0, n3 - 3), f[3]!.subarray(n3 - 3, n3 - 1), f[3]!.subarray(n3 - 1)]
      expect(Inflater.endsWithSyncFlush(p1[0]!)).toBe(false)
      expect(yield* pushBatches(inflater, [
        [f[0]!, ...p1, f[2]!, p3[0]!],
        [p3[1]!],
        [p3[2]!, f[4]!]
      ])).toEqual([[texts[0], texts[1], texts[2]], [], [texts[3], texts[4]]])
    }))

  it("endsWithSyncFlush: only the whole marker 00 00 ff ff at the end counts", () => {
    expect(Inflater.endsWithSyncFlush(Uint8Array.of(7, 0, 0, 0xff, 0xff))).toBe(true)
    expect(Inflater.endsWithSyncFlush(Uint8Array.of(0, 0, 0xff, 0xff))).toBe(true)
    expect(Inflater.endsWithSyncFlush(Uint8Array.of(1, 0, 0xff, 0xff))).toBe(false)
    expect(Inflater.endsWithSyncFlush(Uint8Array.of(0, 1, 0xff, 0xff))).toBe(false)
    expect(Inflater.endsWithSyncFlush(Uint8Array.of(0, 0, 0xff, 0xfe))).toBe(false)
    expect(Inflater.endsWithSyncFlush(Uint8Array.of(0, 0xff, 0xff))).toBe(false)
  })

  it.effect("a short piece ending in ff ff completes a message only when the pieces before it end in 00 00", () =>
    Effect.gen(function*() {
      /** A message of pseudo-random characters (U+0100–U+07FF): its compressed bytes vary enough to hold ff ff. */
      const varied = (seed: number) => {
        let state = seed
        let content = ""
        for (let i = 0; i < 30_000; i++) {
          state = (Math.imul(state, 1664525) + 1013904223) >>> 0
          content += String.fromCharCode(0x100 + (state >>> 8) % 0x700)
        }
        return JSON.stringify({ op: 0, s: seed, t: "MESSAGE_CREATE", d: { content } })
      }
      // find an ff ff inside a message, not preceded by 00 00: a piece ending there does not end the message
      let found: { readonly text: string; readonly bytes: Buffer; readonly at: number } | undefined
      for (let seed = 1; seed <= 20 && found === undefined; seed++) {
        const text = varied(seed)
        const [bytes] = yield* compressAll("zlib-stream", [text])
        for (let i = 4; i < bytes!.length - 8 && found === undefined; i++) {
          if (bytes![i] === 0xff && bytes![i + 1] === 0xff && !(bytes![i - 2] === 0 && bytes![i - 1] === 0)) {
            found = { text, bytes: bytes!, at: i }
          }
        }
      }
      expect(found).toBeDefined()
      const { at, bytes, text } = found!
      const inflater = yield* Inflater.make("zlib-stream")
      const [messages] = yield* pushEach(inflater, [[bytes.subarray(0, at), bytes.subarray(at, at + 2), bytes.subarray(at + 2)]])
      expect(messages!.length).toBe(1)
      expect(shown(messages!)[0] === text).toBe(true) // (not toEqual: no diff of 60 KB strings)
    }))

  it.effect("closing the Scope releases the zlib context: a later push fails with FrameDecodeError", () =>
    Effect.gen(function*() {
      const [first, second] = yield* compressAll("zlib-stream", [message(0), message(1)])
      const inflater = yield* Effect.scoped(Effect.tap(Inflater.make("zlib-stream"), (i) => i.push([first!])))
      const error = yield* Effect.flip(inflater.push([second!]))
      expect(error).toBeInstanceOf(FrameDecodeError)
      expect(error.message).toContain("closed")
    }))

  it.effect("a message split over three frames, with a one-byte middle piece", () =>
    Effect.gen(function*() {
      const [first, second] = yield* compressAll("zlib-stream", [message(0), message(1, 3000)])
      const inflater = yield* Inflater.make("zlib-stream")
      const pieces = [first!, second!.subarray(0, 10), second!.subarray(10, 11), second!.subarray(11)]
      expect(shown(yield* inflater.push(pieces))).toEqual([message(0), message(1, 3000)])
    }))

  it.effect("a message over 1 MiB (READY-sized) comes out whole, in a batch with small ones around it", () =>
    Effect.gen(function*() {
      expect(bigMessage.length).toBeGreaterThan(1_048_576)
      const texts = [message(0), message(1, 10), bigMessage, message(3), message(4, 20_000), bigMessage, message(6)]
      const frames = yield* compressAll("zlib-stream", texts)
      const inflater = yield* Inflater.make("zlib-stream")
      expect(shown(yield* inflater.push(frames))).toEqual(texts)
      // and the big one split over batches
      const [next] = yield* compressAll("zlib-stream", [bigMessage])
      const other = yield* Inflater.make("zlib-stream")
      expect(yield* pushBatches(other, [[next!.subarray(0, 1000)], [next!.subarray(1000)]])).toEqual([[], [bigMessage]])
    }))

  it.effect("write callbacks held back by a full readable buffer (Transform highWaterMark) still split the output right", () =>
    Effect.gen(function*() {
      const texts = [...Array.from({ length: 12 }, (_, i) => message(i, 12_000)), bigMessage, message(13)]
      const frames = yield* compressAll("zlib-stream", texts)
      const stream = yield* Effect.acquireRelease(
        Effect.sync(() => zlib.createInflate({ flush: zlib.constants.Z_SYNC_FLUSH })),
        (stream) => Effect.sync(() => stream.destroy())
      )
      const inflater = Inflater.fromStream("zlib-stream", stream, true)
      // Paused, the output piles up in the readable buffer; past its highWaterMark, Transform holds back
      // the write callbacks (and zlib its work) until `_read` runs, which `resume` triggers.
      stream.pause()
      const fiber = yield* Effect.forkChild(inflater.push(frames), { startImmediately: true })
      while (stream.readableLength < stream.readableHighWaterMark) yield* nextTurn
      stream.resume()
      expect(shown(yield* Fiber.join(fiber))).toEqual(texts)
    }))

  it.effect("item 48: a new connection needs a new context; the old one cannot read a fresh stream", () =>
    Effect.gen(function*() {
      const firstStream = yield* compressor("zlib-stream")
      const old = yield* Inflater.make("zlib-stream")
      expect(shown(yield* old.push([yield* firstStream(message(0)), yield* firstStream(message(1))])))
        .toEqual([message(0), message(1)])

      const secondStream = yield* compressor("zlib-stream")
      const fresh = yield* secondStream(message(10))
      const next = yield* secondStream(message(11))
      expect(shown(yield* (yield* Inflater.make("zlib-stream")).push([fresh, next]))).toEqual([message(10), message(11)])
      // Feeding the new stream's header into the old context is an error, not garbage text.
      expect(yield* Effect.flip(old.push([fresh]))).toBeInstanceOf(FrameDecodeError)
    }))

  it.effect("a corrupt stream fails with FrameDecodeError, and so does every later push", () =>
    Effect.gen(function*() {
      const inflater = yield* Inflater.make("zlib-stream")
      const garbage = new Uint8Array([0x78, 0x9c, 0xff, 0xff, 0xff, 0x12, 0x00, 0x00, 0xff, 0xff])
      const error = yield* Effect.flip(inflater.push([garbage]))
      expect(error).toBeInstanceOf(FrameDecodeError)
      expect(error.detail).toContain("zlib-stream")
      const compress = yield* compressor("zlib-stream")
      expect(yield* Effect.flip(inflater.push([yield* compress(message(0))]))).toBeInstanceOf(FrameDecodeError)
    }))

  it.effect("a corrupt message in the middle of a batch fails the batch with FrameDecodeError, and the next push too", () =>
    Effect.gen(function*() {
      const frames = yield* compressAll("zlib-stream", Array.from({ length: 10 }, (_, i) => message(i, 500)))
      const inflater = yield* Inflater.make("zlib-stream")
      // 0x06: a deflate block of the reserved type 11, invalid wherever it appears
      const corrupt = new Uint8Array([0x06, 0x37, 0xde, 0xad, 0x00, 0x00, 0xff, 0xff])
      const error = yield* Effect.flip(inflater.push([...frames.slice(0, 5), corrupt, ...frames.slice(5)]))
      expect(error).toBeInstanceOf(FrameDecodeError)
      expect(error.detail).toContain("zlib-stream")
      const later = yield* Effect.flip(inflater.push([message(20)]))
      expect(later).toBeInstanceOf(FrameDecodeError)
      expect(later.detail).toBe(error.detail)
    }))

  it.effect("interrupted while decompressing: the stream is out of step and later pushes fail", () =>
    Effect.gen(function*() {
      const frames = yield* compressAll("zlib-stream", [message(0), bigMessage, message(2)])
      const inflater = yield* Inflater.make("zlib-stream")
      const fiber = yield* Effect.forkChild(inflater.push(frames.slice(0, 2)), { startImmediately: true })
      yield* Fiber.interrupt(fiber)
      const error = yield* Effect.flip(inflater.push([frames[2]!]))
      expect(error).toBeInstanceOf(FrameDecodeError)
      expect(error.detail).toContain("interrupted")
    }))

  it.effect.prop(
    "any messages, any split points, any batches: decoded in order",
    {
      texts: Schema.Array(Schema.String).check(Schema.isMinLength(1)),
      cut: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 1000 })),
      per: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 20 }))
    },
    ({ cut, per, texts }) =>
      Effect.gen(function*() {
        const compress = yield* compressor("zlib-stream")
        const inflater = yield* Inflater.make("zlib-stream")
        const frames: Array<Uint8Array> = []
        for (const text of texts) {
          const bytes = yield* compress(text)
          // cut each message into pieces of `cut` bytes; only the last ends with the marker
          for (let at = 0; at < bytes.length; at += cut) frames.push(bytes.subarray(at, Math.min(at + cut, bytes.length)))
        }
        // and hand them over `per` frames a batch
        const batches: Array<Array<Uint8Array>> = []
        for (let at = 0; at < frames.length; at += per) batches.push(frames.slice(at, at + per))
        const out = (yield* pushEach(inflater, batches)).flat()
        // each message exactly the bytes that went in, undecoded
        return out.length === texts.length &&
          out.every((message, i) => message instanceof TextFrame && message.bytes.equals(Buffer.from(texts[i]!)))
      }),
    { arbitrary: { runs: 40 } }
  )
})

describe("Inflater zstd-stream", () => {
  it.effect("item 49: flushed messages of a never-ended zstd frame decode one per WS message, in one batch", () =>
    Effect.gen(function*() {
      const texts = Array.from({ length: 30 }, (_, i) => message(i, i * 53))
      const frames = yield* compressAll("zstd-stream", texts)
      expect(hex(frames[0]!, 4)).toBe("28b52ffd")
      expect(frames.slice(1).some((frame) => hex(frame, 4) === "28b52ffd")).toBe(false)
      const inflater = yield* Inflater.make("zstd-stream")
      expect(inflater.passthrough).toBe(false)
      expect(shown(yield* inflater.push(frames))).toEqual(texts)
    }))

  it.effect("item 49: the same, one WS message per batch, with text frames and empty batches between", () =>
    Effect.gen(function*() {
      const texts = Array.from({ length: 30 }, (_, i) => message(i, i * 53))
      const frames = yield* compressAll("zstd-stream", texts)
      const inflater = yield* Inflater.make("zstd-stream")
      expect(yield* pushOneByOne(inflater, frames)).toEqual(texts)
      expect(pushSync(inflater, [])).toEqual([])
      expect(pushSync(inflater, ["text"])).toEqual([given("text")])
    }))

  it.effect("500 zstd messages of varied sizes in one batch come out in order", () =>
    Effect.gen(function*() {
      const texts = Array.from({ length: 500 }, (_, i) => message(i, (i * 7919) % 3000))
      const frames = yield* compressAll("zstd-stream", texts)
      const inflater = yield* Inflater.make("zstd-stream")
      expect(shown(yield* inflater.push([...frames.slice(0, 250), "text", ...frames.slice(250)])))
        .toEqual([...texts.slice(0, 250), given("text"), ...texts.slice(250)])
    }))

  it.effect("a zstd message over 1 MiB comes out whole, in a batch with small ones around it", () =>
    Effect.gen(function*() {
      const texts = [message(0), bigMessage, message(2), message(3, 20_000), bigMessage, message(5)]
      const frames = yield* compressAll("zstd-stream", texts)
      const inflater = yield* Inflater.make("zstd-stream")
      expect(shown(yield* inflater.push(frames))).toEqual(texts)
    }))

  it.effect("item 48: a fresh zstd context per connection", () =>
    Effect.gen(function*() {
      for (let connection = 0; connection < 2; connection++) {
        const frames = yield* compressAll("zstd-stream", [message(connection), message(connection + 100)])
        const inflater = yield* Inflater.make("zstd-stream")
        expect(shown(yield* inflater.push(frames))).toEqual([message(connection), message(connection + 100)])
      }
    }))

  it.effect("a corrupt zstd frame fails with FrameDecodeError", () =>
    Effect.gen(function*() {
      const inflater = yield* Inflater.make("zstd-stream")
      const error = yield* Effect.flip(inflater.push([new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])]))
      expect(error).toBeInstanceOf(FrameDecodeError)
      expect(error.detail).toContain("zstd-stream")
      expect(yield* Effect.flip(inflater.push([new Uint8Array([0x28, 0xb5, 0x2f, 0xfd])]))).toBeInstanceOf(FrameDecodeError)
    }))

  it.effect("a corrupt zstd message in the middle of a batch fails the batch, and the next push too", () =>
    Effect.gen(function*() {
      const frames = yield* compressAll("zstd-stream", Array.from({ length: 10 }, (_, i) => message(i, 500)))
      const inflater = yield* Inflater.make("zstd-stream")
      // a block header of the reserved block type 3
      const corrupt = new Uint8Array(8).fill(0xff)
      const error = yield* Effect.flip(inflater.push([...frames.slice(0, 5), corrupt, ...frames.slice(5)]))
      expect(error).toBeInstanceOf(FrameDecodeError)
      expect(error.detail).toContain("zstd-stream")
      expect(yield* Effect.flip(inflater.push(frames.slice(5)))).toBeInstanceOf(FrameDecodeError)
    }))
})
