import { describe, expect, it } from "@effect/vitest"
import { Effect, Queue, Schema, Stream } from "effect"
import * as Dispatch from "../../src/Dispatch.ts"
import { DispatchSink } from "../../src/DispatchSink.ts"
import { FrameDecodeError } from "../../src/Errors.ts"
import { decodeTextFrame, type ServerFrame } from "../../src/protocol/Frame.ts"
import { GatewaySimulator } from "../../src/testing/GatewaySimulator.ts"
import { TextFrame } from "../../src/transport/TextFrame.ts"
import { GatewayTransport } from "../../src/transport/GatewayTransport.ts"
import { advance, collectDispatches, guilds, layer, startShard } from "../shard/harness.ts"
import { realFramesTransport, wrapTransport } from "../support/transportWrappers.ts"

/** A frame's text in both forms a transport may hand it over: as a string and still in bytes. */
const bothForms = (text: string): ReadonlyArray<string | TextFrame> => [text, new TextFrame(Buffer.from(text))]

describe("decodeTextFrame", () => {
  it("reads a dispatch in Discord's layout off the bytes: name, s and where d starts; the frame stays undecoded", () => {
    const text = '{"t":"MESSAGE_CREATE","s":42,"op":0,"d":{"content":"héllo ✓ 🎉","n":[1,2]}}'
    const bytes = new TextFrame(Buffer.from(text))
    expect(decodeTextFrame(bytes)).toEqual({
      op: 0, s: 42, t: "MESSAGE_CREATE", d: undefined, text: bytes, dataStart: text.indexOf('"d":') + 4
    })
    expect((decodeTextFrame(bytes) as { readonly text: TextFrame }).text).toBe(bytes) // not decoded, not copied
    // Non-ASCII after the envelope does not shift dataStart: the envelope is ASCII, so byte and text offsets agree.
    const errors: Array<string> = []
    expect(Dispatch.makeLazy(0, 42, "MESSAGE_CREATE", text, text.indexOf('"d":') + 4, (d) => errors.push(d.name)).data)
      .toEqual({ content: "héllo ✓ 🎉", n: [1, 2] })
    expect(errors).toEqual([])
  })

  it("a frame given as a string takes the same path: encoded to bytes, then read off them", () => {
    const text = '{"t":"MESSAGE_CREATE","s":42,"op":0,"d":{"content":"héllo"}}'
    const frame = decodeTextFrame(text)
    if (frame instanceof FrameDecodeError || frame.op !== 0) throw new Error("a dispatch expected")
    expect(frame.text).toBeInstanceOf(TextFrame)
    expect(frame.text.text()).toBe(text)
    expect({ s: frame.s, t: frame.t, dataStart: frame.dataStart }).toEqual({ s: 42, t: "MESSAGE_CREATE", dataStart: text.indexOf('"d":') + 4 })
  })

  it("names that share a cache slot are told apart by their bytes (\"Aa\" and \"BB\" hash alike)", () => {
    const nameOf = (t: string) => (decodeTextFrame(`{"t":"${t}","s":1,"op":0,"d":{}}`) as { readonly t?: string }).t
    expect(["Aa", "BB", "Aa", "BB", "Ab", "Aa"].map(nameOf)).toEqual(["Aa", "BB", "Aa", "BB", "Ab", "Aa"])
    // same slot, a cached name that is a prefix of the next one ("A" and "Ab")
    expect(["A", "Ab", "A"].map(nameOf)).toEqual(["A", "Ab", "A"])
    // same slot, same length, same first letter ("Aaz" and "Ab[" hash alike)
    expect(["Aaz", "Ab[", "Aaz"].map(nameOf)).toEqual(["Aaz", "Ab[", "Aaz"])
  })

  it("falls back to a full parse for any other key order or spacing", () => {
    for (const text of ['{"op":0,"s":7,"t":"X","d":{"a":1}}', '{"t": "X", "s": 7, "op": 0, "d": {"a":1}}']) {
      for (const form of bothForms(text)) {
        expect(decodeTextFrame(form)).toEqual({ op: 0, s: 7, t: "X", d: { a: 1 }, text: new TextFrame(Buffer.from(text)), dataStart: undefined })
      }
    }
  })

  it("keys after d: the data is still right when read (the whole frame is parsed then)", () => {
    const text = '{"t":"X","s":7,"op":0,"d":{"a":1},"_trace":["x"]}'
    const frame = decodeTextFrame(text)
    if (frame instanceof FrameDecodeError || frame.op !== 0 || frame.dataStart === undefined) throw new Error("fast path expected")
    const errors: Array<string> = []
    expect(Dispatch.makeLazy(0, 7, "X", frame.text.text(), frame.dataStart, (d) => errors.push(d.name)).data).toEqual({ a: 1 })
    expect(errors).toEqual([])
  })

  it("a dispatch without s, or with a non-integer s, text that is not JSON or not a JSON object, and a non-integer op are decode errors", () => {
    for (
      const text of [
        '{"t":"X","op":0,"d":{}}',
        '{"t":"X","s":"7","op":0,"d":{}}',
        '{"t":"X","s":7.5,"op":0,"d":{}}',
        '{"t":"X","s":007,"op":0,"d":{}}',
        "{not json",
        "null",
        "5",
        '"frame"',
        '{"op":1.5,"d":null}'
      ]
    ) {
      for (const form of bothForms(text)) expect(decodeTextFrame(form)).toBeInstanceOf(FrameDecodeError)
    }
  })

  it("control frames are decoded eagerly (item 51: unknown keys ignored)", () => {
    expect(decodeTextFrame('{"t":null,"s":null,"op":10,"d":{"heartbeat_interval":41250,"_trace":["x"]}}'))
      .toEqual({ op: 10, heartbeatInterval: 41250 })
    expect(decodeTextFrame(new TextFrame(Buffer.from('{"op":9,"d":false}')))).toEqual({ op: 9, resumable: false })
    expect(decodeTextFrame('{"op":99,"d":null}')).toEqual({ op: "unknown", code: 99 })
    expect(decodeTextFrame('{"op":11}')).toEqual({ op: 11 })
    expect(decodeTextFrame('{"op":1,"d":null}')).toEqual({ op: 1 })
    expect(decodeTextFrame('{"op":7,"d":null}')).toEqual({ op: 7 })
    expect(decodeTextFrame('{"op":9,"d":true}')).toEqual({ op: 9, resumable: true })
  })

  it("an Invalid Session without a boolean d, and a Hello without a positive finite heartbeat_interval, are decode errors", () => {
    for (
      const text of [
        '{"op":9,"d":null}',
        '{"op":9}',
        '{"op":9,"d":"false"}',
        '{"op":10,"d":{"heartbeat_interval":0}}',
        '{"op":10,"d":{"heartbeat_interval":-41250}}',
        '{"op":10,"d":{"heartbeat_interval":1e999}}',
        '{"op":10,"d":{"heartbeat_interval":"41250"}}',
        '{"op":10,"d":null}'
      ]
    ) {
      for (const form of bothForms(text)) expect(decodeTextFrame(form), text).toBeInstanceOf(FrameDecodeError)
    }
  })

  it("Dispatch.is and Dispatch.ofName keep exactly the dispatches of one name, lazy or not", () => {
    const frame = '{"t":"MESSAGE_CREATE","s":2,"op":0,"d":{"content":"hi"}}'
    const all = [
      Dispatch.make(0, 1, "TYPING_START", {}),
      Dispatch.makeLazy(0, 2, "MESSAGE_CREATE", frame, frame.indexOf('"d":') + 4, () => {}),
      Dispatch.make(1, 3, "MESSAGE_CREATE_X", {})
    ]
    expect(all.filter((d) => Dispatch.is(d, "MESSAGE_CREATE")).map((d) => d.seq)).toEqual([2])
    const messages = all.filter(Dispatch.ofName("MESSAGE_CREATE"))
    expect(messages.map((d) => d.data.content)).toEqual(["hi"]) // typed as MESSAGE_CREATE data
  })

  it("a lazy dispatch parses its data once, on first read, and keeps its text", () => {
    const errors: Array<string> = []
    const frame = '{"t":"X","s":1,"op":0,"d":{"a":1}}'
    const d = Dispatch.makeLazy(0, 1, "X", frame, frame.indexOf('"d":') + 4, (dispatch) => errors.push(dispatch.name))
    expect(Dispatch.rawData(d)).toBe('{"a":1}')
    const first = d.data
    expect(first).toEqual({ a: 1 })
    expect(d.data).toBe(first)
    expect(JSON.parse(JSON.stringify(d))).toEqual({ shard: 0, seq: 1, name: "X", data: { a: 1 } })
    // `rawData` is d's text alone, whatever follows it in the frame (strings with brackets, nesting, scalars)
    for (const [data, tail] of [['{"a":"}\\"]","b":[1,{"c":2}]}', ',"_trace":["x"]'], ["null", ',"x":1'], ["12", ""], ['"a,b}"', ',"x":1']] as const) {
      const text = `{"t":"X","s":1,"op":0,"d":${data}${tail}}`
      const lazy = Dispatch.makeLazy(0, 1, "X", text, text.indexOf('"d":') + 4, () => {})
      expect(Dispatch.rawData(lazy), text).toBe(data)
      expect(lazy.data, text).toEqual(JSON.parse(data))
    }
    const broken = '{"t":"Y","s":2,"op":0,"d":{broken}'
    const bad = Dispatch.makeLazy(0, 2, "Y", broken, broken.indexOf('"d":') + 4, (dispatch) => errors.push(dispatch.name))
    expect(bad.data).toBeUndefined()
    expect(errors).toEqual(["Y"])
  })
})

/**
 * What a dispatch frame means, read the way the shard reads `decodeTextFrame`'s answer: its name, seq and
 * data (data left in the frame is read as a subscriber would, through `Dispatch.makeLazy`), or "malformed"
 * (a decode error, or data that does not parse when read).
 */
const meaning = (frame: ServerFrame | FrameDecodeError) => {
  if (frame instanceof FrameDecodeError) return "malformed"
  if (frame.op !== 0) return { op: frame.op }
  if (frame.dataStart === undefined) return { s: frame.s, t: frame.t, data: frame.d }
  let malformed = false
  const data = Dispatch.makeLazy(0, frame.s, frame.t, frame.text.text(), frame.dataStart, () => {
    malformed = true
  }).data
  return malformed ? "malformed" : { s: frame.s, t: frame.t, data }
}

/** The same, by a plain full JSON.parse of the text: the reference the reader must agree with. */
const parsedMeaning = (text: string) => {
  let raw: { readonly op?: unknown; readonly s?: unknown; readonly t?: unknown; readonly d?: unknown }
  try {
    raw = JSON.parse(text)
  } catch {
    return "malformed"
  }
  if (raw.op !== 0) return { op: raw.op }
  return typeof raw.t === "string" && Number.isInteger(raw.s) ? { s: raw.s, t: raw.t, data: raw.d } : "malformed"
}

describe("decodeTextFrame agrees with a full JSON.parse", () => {
  it("in Discord's layout and every other one, escaped or non-ASCII names, malformed frames", () => {
    for (const text of [
      '{"t":"MESSAGE_CREATE","s":42,"op":0,"d":{"content":"héllo ✓ 🎉"}}',
      '{"op":0,"s":7,"t":"X","d":{"a":1}}',
      '{"t":"A\\u0042","s":7,"op":0,"d":{}}',
      '{"t":"A\\"B","s":7,"op":0,"d":{}}',
      '{"t":"ÉVÉNEMENT","s":7,"op":0,"d":{}}',
      '{"t":"X\tY","s":7,"op":0,"d":{}}',
      '{"t":"X","s":7,"op":0,"d":{"a":1},"_trace":[]}',
      '{"t":"X","s":1234567890123456,"op":0,"d":{}}',
      '{"t":"X","s":12345678901234567890,"op":0,"d":{}}',
      '{"t":"X","s":7.5,"op":0,"d":{}}',
      '{"t":"X","s":007,"op":0,"d":{}}',
      '{"t":"X","s":0,"op":0,"d":{}}',
      '{"t":"X","s":,"op":0,"d":{}}',
      '{"op":0,"s":7,"t":null,"d":{}}',
      '{"op":0,"s":7,"t":7,"d":{}}',
      '{"op":0,"s":7,"d":{}}',
      '{"t":"X","s":7,"op":0,"d":{broken}',
      '{"t":"X","s":7,"op":0,"d":{}',
      '{"t":"X","op":0,"d":{}}',
      '{"t":"","s":7,"op":0,"d":{}}',
      "{not json"
    ]) {
      for (const form of bothForms(text)) expect(meaning(decodeTextFrame(form)), text).toEqual(parsedMeaning(text))
    }
  })

  it.effect.prop("any name, seq and content, in any of these layouts, well-formed or not, either form", {
    name: Schema.String,
    seq: Schema.Int,
    content: Schema.String,
    layout: Schema.Literals(["discord", "other", "spaced", "trailing", "broken data", "unterminated", "string s"]),
    asString: Schema.Boolean
  }, ({ asString, content, layout, name, seq }) =>
    Effect.sync(() => {
      const t = JSON.stringify(name)
      const s = Math.abs(seq)
      const d = JSON.stringify({ content })
      const text = {
        "discord": `{"t":${t},"s":${s},"op":0,"d":${d}}`,
        "other": `{"op":0,"s":${s},"t":${t},"d":${d}}`,
        "spaced": `{"t": ${t}, "s": ${s}, "op": 0, "d": ${d}}`,
        "trailing": `{"t":${t},"s":${s},"op":0,"d":${d},"_trace":[]}`,
        "broken data": `{"t":${t},"s":${s},"op":0,"d":{${d}}`,
        "unterminated": `{"t":${t},"s":${s},"op":0,"d":${d}`,
        "string s": `{"t":${t},"s":"${s}","op":0,"d":${d}}`
      }[layout]
      const decoded = decodeTextFrame(asString ? text : new TextFrame(Buffer.from(text)))
      expect(meaning(decoded)).toEqual(parsedMeaning(text))
      return true
    }))
})

/**
 * The shard's transport with the simulator's frames handed over as the real transport hands them: text
 * frames undecoded (`"none"`), or compressed through one zlib-stream context per connection, as Discord
 * sends them (PROTOCOL.md §5.4). Every frame the shard sends is kept in `sent`.
 */
const asRealTransport = (compression: "none" | "zlib-stream") =>
  Effect.gen(function*() {
    const sent = yield* Queue.unbounded<string>()
    const real = yield* realFramesTransport(compression)
    const transport = yield* wrapTransport((open) =>
      Effect.map(open, (connection) => ({
        ...connection,
        send: (frame: string) => Effect.andThen(connection.send(frame), Queue.offer(sent, frame))
      }))
    ).pipe(Effect.provideService(GatewayTransport, real.transport))
    return { transport, sent }
  })

/**
 * The names of the dispatches decoded to a string while the scope is open, by whatever means: every
 * `Buffer#toString` whose result starts like a dispatch frame is noted.
 */
const decodedDispatches = Effect.acquireRelease(
  Effect.sync(() => {
    const original = Buffer.prototype.toString
    const names: Array<string> = []
    Buffer.prototype.toString = function(this: Buffer, ...args: Parameters<Buffer["toString"]>) {
      const text = original.apply(this, args)
      const name = /^\{"t":"([^"]*)"/.exec(text)?.[1]
      if (name !== undefined) names.push(name)
      return text
    }
    return { names, original }
  }),
  ({ original }) => Effect.sync(() => {
    Buffer.prototype.toString = original
  })
)

describe("in a shard", () => {
  for (const compression of ["none", "zlib-stream"] as const) {
    it.effect(`${compression}: a dispatch nobody subscribed to is never decoded to a string, and its sequence still counts (op 1 answered with it)`, () =>
      Effect.gen(function*() {
        const sim = yield* GatewaySimulator
        const { sent, transport } = yield* asRealTransport(compression)
        const sink = yield* DispatchSink
        const messages = yield* Queue.unbounded<unknown>()
        yield* Effect.forkScoped(Stream.runForEach(
          yield* sink.subscription({ names: ["MESSAGE_CREATE"] }),
          (dispatch) => Queue.offer(messages, dispatch.data)
        ))
        const shard = yield* startShard({ compression }).pipe(Effect.provideService(GatewayTransport, transport))
        yield* shard.changes.pipe(Stream.filter((state) => state.phase === "ready"), Stream.runHead)
        const decoded = yield* decodedDispatches
        for (let i = 0; i < 5; i++) yield* sim.dispatch("TYPING_START", { guild_id: guilds[0], i })
        yield* sim.dispatch("MESSAGE_CREATE", { guild_id: guilds[0], content: "wanted" })
        for (let i = 0; i < 5; i++) yield* sim.dispatch("PRESENCE_UPDATE", { guild_id: guilds[0], i })
        expect(yield* Queue.take(messages)).toEqual({ guild_id: guilds[0], content: "wanted" })
        // A server op 1 is answered at once with the last sequence number, an unwanted event's (items 7, 8);
        // it comes after the dispatches, so when the answer is sent every one of them was handled.
        const lastSeq = (yield* sim.serverFrames({ op: 0 })).at(-1)!.s
        yield* Queue.clear(sent)
        yield* sim.requestHeartbeat(0)
        let beat = JSON.parse(yield* Queue.take(sent)) as { readonly op: number; readonly d: unknown }
        while (beat.op !== 1) beat = JSON.parse(yield* Queue.take(sent))
        expect(beat.d).toBe(lastSeq)
        expect(decoded.names).toEqual(["MESSAGE_CREATE"])
      }).pipe(Effect.provide(layer())))
  }
})

describe("malformed data in Discord's layout (item 51: tolerated, reported)", () => {
  it.effect("is delivered with undefined data once read; the shard keeps going and names it in lastError", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const received = yield* collectDispatches
      const shard = yield* startShard()
      yield* advance(500)
      // The next seq of the session (sendRaw does not number frames; the simulator's next dispatch then
      // repeats this seq and is dropped as a repeat, so a second one follows).
      const next = (yield* shard.state).sequence! + 1
      yield* sim.sendRaw(0, `{"t":"MESSAGE_CREATE","s":${next},"op":0,"d":{broken}`)
      yield* advance(100)
      const broken = received.find((d) => d.seq === next)!
      expect(broken.name).toBe("MESSAGE_CREATE")
      expect(broken.data).toBeUndefined() // read: the parse fails, tolerated
      yield* sim.dispatch("MESSAGE_CREATE", { guild_id: "81384788765712384", content: "repeat of the seq" })
      yield* sim.dispatch("MESSAGE_CREATE", { guild_id: "81384788765712384", content: "next" })
      yield* advance(100)
      const state = yield* shard.state
      expect(state.phase).toBe("ready")
      expect(state.lastError).toMatch(/MESSAGE_CREATE.*not valid JSON/)
      expect(received.at(-1)!.data).toMatchObject({ content: "next" })
    }).pipe(Effect.provide(layer())))
})
