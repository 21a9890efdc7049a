import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Dispatch from "../../src/Dispatch.ts"
import { FrameDecodeError } from "../../src/Errors.ts"
import { decodeServerFrame } from "../../src/protocol/Frame.ts"
import { GatewaySimulator } from "../../src/testing/GatewaySimulator.ts"
import { advance, collectDispatches, layer, startShard } from "../shard/harness.ts"

describe("decodeServerFrame", () => {
  it("reads a dispatch in Discord's layout without parsing its data", () => {
    const text = '{"t":"MESSAGE_CREATE","s":42,"op":0,"d":{"content":"hi","n":[1,2]}}'
    const frame = decodeServerFrame(text)
    expect(frame).toEqual({ op: 0, s: 42, t: "MESSAGE_CREATE", d: undefined, text, dataStart: text.indexOf('"d":') + 4 })
  })

  it("falls back to a full parse for any other key order or spacing", () => {
    for (const text of ['{"op":0,"s":7,"t":"X","d":{"a":1}}', '{"t": "X", "s": 7, "op": 0, "d": {"a":1}}']) {
      expect(decodeServerFrame(text)).toEqual({ op: 0, s: 7, t: "X", d: { a: 1 }, text, dataStart: undefined })
    }
  })

  it("keys after d: the data is still right when read (the whole frame is parsed then)", () => {
    const text = '{"t":"X","s":7,"op":0,"d":{"a":1},"_trace":["x"]}'
    const frame = decodeServerFrame(text)
    if (frame instanceof FrameDecodeError || frame.op !== 0 || frame.dataStart === undefined) throw new Error("fast path expected")
    const errors: Array<string> = []
    expect(Dispatch.makeLazy(0, 7, "X", text, frame.dataStart, (d) => errors.push(d.name)).data).toEqual({ a: 1 })
    expect(errors).toEqual([])
  })

  it("a dispatch without s, or with a non-integer s, is a decode error either way", () => {
    expect(decodeServerFrame('{"t":"X","op":0,"d":{}}')).toBeInstanceOf(FrameDecodeError)
    expect(decodeServerFrame('{"t":"X","s":"7","op":0,"d":{}}')).toBeInstanceOf(FrameDecodeError)
    expect(decodeServerFrame("{not json")).toBeInstanceOf(FrameDecodeError)
  })

  it("control frames are decoded eagerly (item 51: unknown keys ignored)", () => {
    expect(decodeServerFrame('{"t":null,"s":null,"op":10,"d":{"heartbeat_interval":41250,"_trace":["x"]}}'))
      .toEqual({ op: 10, heartbeatInterval: 41250 })
    expect(decodeServerFrame('{"op":9,"d":false}')).toEqual({ op: 9, resumable: false })
    expect(decodeServerFrame('{"op":99,"d":null}')).toEqual({ op: "unknown", code: 99 })
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
    const broken = '{"t":"Y","s":2,"op":0,"d":{broken}'
    const bad = Dispatch.makeLazy(0, 2, "Y", broken, broken.indexOf('"d":') + 4, (dispatch) => errors.push(dispatch.name))
    expect(bad.data).toBeUndefined()
    expect(errors).toEqual(["Y"])
  })
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
