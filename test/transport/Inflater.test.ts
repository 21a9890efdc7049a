/**
 * Tests for Inflater alone, fed with bytes made by node:zlib in the test (PROTOCOL.md §5.3–5.5; checklist
 * items 46, 48, 49, 50).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import * as zlib from "node:zlib"
import { FrameDecodeError } from "../../src/Errors.ts"
import * as Inflater from "../../src/transport/Inflater.ts"
import { compressor, message } from "./wsServer.ts"

/** Pushes every frame in order and returns the messages that came out. */
const pushAll = (inflater: Inflater.Inflater, frames: ReadonlyArray<string | Uint8Array>) =>
  Effect.gen(function*() {
    const out: Array<string> = []
    for (const frame of frames) {
      const text = yield* inflater.push(frame)
      if (text !== undefined) out.push(text)
    }
    return out
  })

const hex = (bytes: Uint8Array, n: number) => Buffer.from(bytes.subarray(0, n)).toString("hex")

describe("Inflater none (payload compression)", () => {
  it.effect("item 50: text frames pass through and standalone zlib binary frames are inflated", () =>
    Effect.gen(function*() {
      const inflater = yield* Inflater.make("none")
      expect(inflater.passthrough).toBe(true)
      const texts = [message(1), message(2, 5000), message(3), message(4, 20)]
      const frames = [texts[0]!, zlib.deflateSync(texts[1]!), texts[2]!, zlib.deflateSync(texts[3]!)]
      expect(hex(frames[1] as Uint8Array, 1)).toBe("78")
      expect(yield* pushAll(inflater, frames)).toEqual(texts)
    }))

  it.effect("a corrupt binary frame fails with FrameDecodeError", () =>
    Effect.gen(function*() {
      const inflater = yield* Inflater.make("none")
      const error = yield* Effect.flip(inflater.push(new Uint8Array([1, 2, 3, 4])))
      expect(error).toBeInstanceOf(FrameDecodeError)
      expect(error.detail).toContain("none")
    }))
})

describe("Inflater zlib-stream", () => {
  it.effect("item 46: 60 messages of one stream, later ones without header, one split over two frames", () =>
    Effect.gen(function*() {
      const compress = yield* compressor("zlib-stream")
      const texts = Array.from({ length: 60 }, (_, i) => message(i, i * 37))
      const frames: Array<Uint8Array> = []
      for (const text of texts) frames.push(yield* compress(text))
      expect(hex(frames[0]!, 2)).toBe("789c")
      expect(hex(frames[1]!, 2)).not.toBe("789c")
      expect(frames.every(Inflater.endsWithSyncFlush)).toBe(true)

      const inflater = yield* Inflater.make("zlib-stream")
      expect(inflater.passthrough).toBe(false)
      // Message 55 (after ≥50 in the stream) arrives in two WS messages; only the second ends 00 00 ff ff.
      const split = frames[55]!
      const head = split.subarray(0, Math.floor(split.length / 2))
      expect(Inflater.endsWithSyncFlush(head)).toBe(false)
      const out: Array<string> = []
      for (let i = 0; i < frames.length; i++) {
        if (i === 55) {
          expect(yield* inflater.push(head)).toBeUndefined()
          out.push((yield* inflater.push(split.subarray(head.length)))!)
        } else {
          out.push((yield* inflater.push(frames[i]!))!)
        }
      }
      expect(out).toEqual(texts)
    }))

  it.effect("a message split over three frames, with a one-byte middle piece", () =>
    Effect.gen(function*() {
      const compress = yield* compressor("zlib-stream")
      const first = yield* compress(message(0))
      const second = yield* compress(message(1, 3000))
      const inflater = yield* Inflater.make("zlib-stream")
      const pieces = [first, second.subarray(0, 10), second.subarray(10, 11), second.subarray(11)]
      expect(yield* pushAll(inflater, pieces)).toEqual([message(0), message(1, 3000)])
    }))

  it.effect("a multi-megabyte message (READY-sized) comes out whole", () =>
    Effect.gen(function*() {
      const compress = yield* compressor("zlib-stream")
      const big = JSON.stringify({ op: 0, t: "READY", d: { guilds: Array.from({ length: 100_000 }, (_, i) => ({ id: `${i}` })) } })
      expect(big.length).toBeGreaterThan(1_000_000)
      const inflater = yield* Inflater.make("zlib-stream")
      expect(yield* pushAll(inflater, [yield* compress(message(0)), yield* compress(big), yield* compress(message(2))]))
        .toEqual([message(0), big, message(2)])
    }))

  it.effect("item 48: a new connection needs a new context; the old one cannot read a fresh stream", () =>
    Effect.gen(function*() {
      const firstStream = yield* compressor("zlib-stream")
      const old = yield* Inflater.make("zlib-stream")
      expect(yield* pushAll(old, [yield* firstStream(message(0)), yield* firstStream(message(1))]))
        .toEqual([message(0), message(1)])

      const secondStream = yield* compressor("zlib-stream")
      const fresh = yield* secondStream(message(10))
      const next = yield* secondStream(message(11))
      expect(yield* pushAll(yield* Inflater.make("zlib-stream"), [fresh, next])).toEqual([message(10), message(11)])
      // Feeding the new stream's header into the old context is an error, not garbage text.
      expect(yield* Effect.flip(old.push(fresh))).toBeInstanceOf(FrameDecodeError)
    }))

  it.effect("a corrupt stream fails with FrameDecodeError, and so does every later push", () =>
    Effect.gen(function*() {
      const inflater = yield* Inflater.make("zlib-stream")
      const garbage = new Uint8Array([0x78, 0x9c, 0xff, 0xff, 0xff, 0x12, 0x00, 0x00, 0xff, 0xff])
      const error = yield* Effect.flip(inflater.push(garbage))
      expect(error).toBeInstanceOf(FrameDecodeError)
      expect(error.detail).toContain("zlib-stream")
      const compress = yield* compressor("zlib-stream")
      expect(yield* Effect.flip(inflater.push(yield* compress(message(0))))).toBeInstanceOf(FrameDecodeError)
    }))

  it.effect.prop(
    "any messages, any split points: decoded in order",
    {
      texts: Schema.Array(Schema.String).check(Schema.isMinLength(1)),
      cut: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 1000 }))
    },
    ({ cut, texts }) =>
      Effect.gen(function*() {
        const compress = yield* compressor("zlib-stream")
        const inflater = yield* Inflater.make("zlib-stream")
        const frames: Array<Uint8Array> = []
        for (const text of texts) {
          const bytes = yield* compress(text)
          // cut each message into pieces of `cut` bytes; only the last ends with the marker
          for (let at = 0; at < bytes.length; at += cut) frames.push(bytes.subarray(at, Math.min(at + cut, bytes.length)))
        }
        const out = yield* pushAll(inflater, frames)
        // compared as UTF-8 (a lone surrogate in the input is not encodable and comes back as U+FFFD)
        return out.length === texts.length && out.every((text, i) => text === Buffer.from(texts[i]!).toString())
      }),
    { arbitrary: { runs: 40 } }
  )
})

describe("Inflater zstd-stream", () => {
  it.effect("item 49: flushed messages of a never-ended zstd frame decode one per WS message", () =>
    Effect.gen(function*() {
      const compress = yield* compressor("zstd-stream")
      const texts = Array.from({ length: 30 }, (_, i) => message(i, i * 53))
      const frames: Array<Uint8Array> = []
      for (const text of texts) frames.push(yield* compress(text))
      expect(hex(frames[0]!, 4)).toBe("28b52ffd")
      expect(frames.slice(1).some((frame) => hex(frame, 4) === "28b52ffd")).toBe(false)
      const inflater = yield* Inflater.make("zstd-stream")
      expect(inflater.passthrough).toBe(false)
      expect(yield* pushAll(inflater, frames)).toEqual(texts)
    }))

  it.effect("a multi-megabyte zstd message comes out whole", () =>
    Effect.gen(function*() {
      const compress = yield* compressor("zstd-stream")
      const big = JSON.stringify({ op: 0, t: "READY", d: { guilds: Array.from({ length: 100_000 }, (_, i) => ({ id: `${i}` })) } })
      const inflater = yield* Inflater.make("zstd-stream")
      expect(yield* pushAll(inflater, [yield* compress(message(0)), yield* compress(big), yield* compress(message(2))]))
        .toEqual([message(0), big, message(2)])
    }))

  it.effect("item 48: a fresh zstd context per connection", () =>
    Effect.gen(function*() {
      for (let connection = 0; connection < 2; connection++) {
        const compress = yield* compressor("zstd-stream")
        const inflater = yield* Inflater.make("zstd-stream")
        const frames = [yield* compress(message(connection)), yield* compress(message(connection + 100))]
        expect(yield* pushAll(inflater, frames)).toEqual([message(connection), message(connection + 100)])
      }
    }))

  it.effect("a corrupt zstd frame fails with FrameDecodeError", () =>
    Effect.gen(function*() {
      const inflater = yield* Inflater.make("zstd-stream")
      const error = yield* Effect.flip(inflater.push(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])))
      expect(error).toBeInstanceOf(FrameDecodeError)
      expect(error.detail).toContain("zstd-stream")
      expect(yield* Effect.flip(inflater.push(new Uint8Array([0x28, 0xb5, 0x2f, 0xfd])))).toBeInstanceOf(FrameDecodeError)
    }))
})
