/**
 * Shard conformance: IDENTIFY (PROTOCOL.md §1.5, §3; checklist items 11–19).
 *
 * Every assertion reads the simulator's recordings (frames, connections, times on the TestClock): one
 * IDENTIFY per connection and never mixed with RESUME (11), the shape of IDENTIFY `d` (12), a fixed
 * shard tuple (13), no payload compression beside transport compression (14), only ops 1/2/6 before
 * READY/RESUMED (15), the identify buckets at startup and on re-identify (16–18), and the daily
 * session-start budget (19). Tokens are compared on the raw frames the shard wrote, never printed.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Random, Schema } from "effect"
import { identity } from "effect/Function"
import { Intents } from "../../src/protocol/Intents.ts"
import { IdentifyData, type PresenceUpdateData } from "../../src/protocol/Payloads.ts"
import type { GatewayCommand, Shard } from "../../src/Shard.ts"
import { GatewaySimulator } from "../../src/testing/GatewaySimulator.ts"
import type { RecordedConnection, RecordedFrame } from "../../src/testing/GatewaySimulator.ts"
import { Redacted } from "../../src/testing/SimulatorRecording.ts"
import { GatewayTransport } from "../../src/transport/GatewayTransport.ts"
import { dataOf, isSessionStart } from "../support/recordedFrames.ts"
import { recordingSends, tokensSent } from "../support/transportWrappers.ts"
import { advanceInSteps, layer, simWithReadyShard, startShard, tau, token } from "./harness.ts"

// ---------------------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------------------

const isReadyOrResumed = (frame: RecordedFrame): boolean =>
  frame.direction === "server" && frame.op === 0 && (frame.t === "READY" || frame.t === "RESUMED")

/** The shard id an IDENTIFY declares. */
const identifiedShard = (frame: RecordedFrame): number => (dataOf(frame).shard as [number, number])[0]

const decodeIdentify = Schema.decodeUnknownResult(IdentifyData, { onExcessProperty: "error" })

const presence = {
  since: null,
  activities: [{ name: "conformance", type: 0 }],
  status: "idle",
  afk: false
} satisfies PresenceUpdateData

describe("shard identify conformance", () => {
  // -------------------------------------------------------------------------------------------------------
  // item 11
  // -------------------------------------------------------------------------------------------------------

  it.effect(
    "item 11: at most one IDENTIFY per connection, never IDENTIFY and RESUME on one connection (op 7, drop, op 9 true/false, closes)",
    () =>
      Effect.gen(function*() {
        const sim = yield* simWithReadyShard()
        yield* sim.reconnect(0) // op 7 → RESUME
        yield* advanceInSteps(3_000)
        yield* sim.drop(0) // 1006 → RESUME
        yield* advanceInSteps(3_000)
        yield* sim.invalidateSession(0, true) // op 9 true → RESUME
        yield* advanceInSteps(3_000)
        yield* sim.invalidateSession(0, false) // op 9 false → IDENTIFY after 1–5 s
        yield* advanceInSteps(8_000)
        yield* sim.close(0, 4000) // resumable close → RESUME
        yield* advanceInSteps(3_000)
        yield* sim.close(0, 4009) // session timed out → IDENTIFY
        yield* advanceInSteps(8_000)
        yield* sim.close(0, 4005) // "already authenticated" → reconnect
        yield* advanceInSteps(8_000)
        yield* sim.reconnect(0)
        yield* advanceInSteps(3_000)

        const frames = yield* sim.frames
        const connections = yield* sim.connections
        const identifies = frames.filter((f) => f.direction === "client" && f.op === 2)
        const resumes = frames.filter((f) => f.direction === "client" && f.op === 6)
        // the run did exercise both kinds of session start, on many connections
        expect(connections.length).toBeGreaterThanOrEqual(9)
        expect(identifies.length).toBeGreaterThanOrEqual(3)
        expect(resumes.length).toBeGreaterThanOrEqual(4)

        const violations: Array<string> = []
        for (const connection of connections) {
          const mine = frames.filter((f) => f.connectionId === connection.id)
          const identifyCount = mine.filter((f) => f.direction === "client" && f.op === 2).length
          if (identifyCount > 1) violations.push(`connection ${connection.id}: ${identifyCount} IDENTIFYs`)
          // IDENTIFY and RESUME may share a connection only with an op 9 d:true between them
          let previous: number | null = null
          let resumableInvalidSince = false
          for (const frame of mine) {
            if (frame.direction === "server" && frame.op === 9 && frame.d === true) resumableInvalidSince = true
            if (!isSessionStart(frame)) continue
            if (previous !== null && previous !== frame.op && !resumableInvalidSince) {
              violations.push(`connection ${connection.id}: op ${previous} then op ${frame.op}`)
            }
            previous = frame.op
            resumableInvalidSince = false
          }
        }
        expect(violations).toEqual([])
        // the simulator never had to reject a second IDENTIFY/RESUME: the only 4005 is the one this test sent
        expect(connections.filter((c) => c.closedBy === "server" && c.closeCode === 4005).length).toBe(1)
      }).pipe(Effect.provide(layer()))
  )

  // -------------------------------------------------------------------------------------------------------
  // item 12
  // -------------------------------------------------------------------------------------------------------

  it.effect(
    "item 12: IDENTIFY d is well-typed (token, properties, intents, shard; large_threshold and presence when configured)",
    () =>
      Effect.gen(function*() {
        const sim = yield* GatewaySimulator
        const { sent, transport } = yield* recordingSends
        const intents = Intents.Guilds | Intents.GuildMessages | Intents.MessageContent
        const properties = { os: "linux", browser: "conformance-suite", device: "conformance-suite" }
        yield* startShard({ shardId: 1, shardCount: 2, intents, largeThreshold: 120, presence, properties }).pipe(
          Effect.provideService(GatewayTransport, transport)
        )
        yield* advanceInSteps(1_000)

        const [identify, ...others] = yield* sim.clientFrames({ op: 2 })
        expect(others).toEqual([])
        if (identify === undefined) return expect.fail("no IDENTIFY was sent")
        const d = dataOf(identify)
        // the recording carries the redaction marker, never the token
        expect(d.token).toBe(Redacted)
        // the raw frame carried exactly the configured token (compared, not printed) …
        expect(tokensSent(sent, 2).map((t) => t === token)).toEqual([true])
        // … which the simulator accepted: READY came on that connection, no 4004
        const ready = (yield* sim.serverFrames()).filter((f) => f.connectionId === identify.connectionId && f.t === "READY")
        expect(ready.length).toBe(1)
        expect((yield* sim.connections).map((c) => c.closeCode)).toEqual([null])

        // the whole d against the IDENTIFY schema, no unknown keys
        const decoded = decodeIdentify(d)
        if (decoded._tag === "Failure") return expect.fail(decoded.failure.message)
        expect(typeof d.token).toBe("string")
        expect(d.properties).toEqual(properties)
        for (const key of ["os", "browser", "device"] as const) {
          expect(typeof (d.properties as Record<string, unknown>)[key]).toBe("string")
        }
        expect(Number.isInteger(d.intents)).toBe(true)
        expect(d.intents).toBe(intents)
        expect(d.shard).toEqual([1, 2])
        expect(Number.isInteger(d.large_threshold)).toBe(true)
        expect(d.large_threshold).toBe(120)
        expect(d.presence).toEqual(presence)
        expect(d.compress === undefined || typeof d.compress === "boolean").toBe(true)
      }).pipe(Effect.provide(layer()))
  )

  it.effect("item 12: with nothing optional configured, IDENTIFY d holds only well-typed required fields", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const { sent, transport } = yield* recordingSends
      yield* startShard().pipe(Effect.provideService(GatewayTransport, transport))
      yield* advanceInSteps(1_000)

      const identifies = yield* sim.clientFrames({ op: 2 })
      expect(identifies.length).toBe(1)
      const d = dataOf(identifies[0]!)
      expect(d.token).toBe(Redacted)
      expect(tokensSent(sent, 2).map((t) => t === token)).toEqual([true])
      expect((yield* sim.serverFrames()).filter((f) => f.t === "READY").length).toBe(1)
      const decoded = decodeIdentify(d)
      if (decoded._tag === "Failure") return expect.fail(decoded.failure.message)
      const properties = d.properties as Record<string, unknown>
      expect(Object.keys(properties).sort()).toEqual(["browser", "device", "os"])
      for (const key of ["os", "browser", "device"]) expect(typeof properties[key]).toBe("string")
      expect(d.intents).toBe(Intents.Guilds | Intents.GuildMessages)
      expect(d.shard).toEqual([0, 1])
      expect("large_threshold" in d).toBe(false)
      expect("presence" in d).toBe(false)
      expect(d.compress === undefined || d.compress === false).toBe(true)
    }).pipe(Effect.provide(layer())))

  // -------------------------------------------------------------------------------------------------------
  // item 13
  // -------------------------------------------------------------------------------------------------------

  it.effect.prop(
    "item 13: IDENTIFY shard is the configured tuple, identical on every re-IDENTIFY (op 9 false, 4009)",
    {
      count: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 64 })),
      id: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 63 }))
    },
    ({ count, id: rawId }) =>
      Effect.gen(function*() {
        const id = rawId % count
        const sim = yield* simWithReadyShard({ shardId: id, shardCount: count })
        yield* sim.invalidateSession(id, false)
        yield* advanceInSteps(8_000)
        yield* sim.drop(id) // a RESUME in between changes nothing
        yield* advanceInSteps(2_000)
        yield* sim.close(id, 4009)
        yield* advanceInSteps(7_000)
        yield* sim.invalidateSession(id, false)
        yield* advanceInSteps(8_000)

        const identifies = yield* sim.clientFrames({ op: 2 })
        expect(identifies.length).toBe(4)
        for (const frame of identifies) expect(dataOf(frame).shard).toEqual([id, count])
        // every connection that started a session carried that tuple
        for (const connection of yield* sim.connections) {
          if (connection.shard !== null) expect(connection.shard).toEqual([id, count])
        }
      }).pipe(Effect.provide(layer())),
    { arbitrary: { runs: 8 } }
  )

  // -------------------------------------------------------------------------------------------------------
  // item 14
  // -------------------------------------------------------------------------------------------------------

  it.effect("item 14: with compress=zlib-stream in the URL, IDENTIFY never asks for compress:true", () =>
    Effect.gen(function*() {
      const sim = yield* simWithReadyShard({ compression: "zlib-stream" })
      yield* sim.drop(0) // a resume connection
      yield* advanceInSteps(2_000)
      yield* sim.invalidateSession(0, false) // and a second IDENTIFY
      yield* advanceInSteps(8_000)

      const connections = yield* sim.connections
      expect(connections.length).toBeGreaterThanOrEqual(3)
      for (const connection of connections) {
        expect(new URL(connection.url).searchParams.get("compress")).toBe("zlib-stream")
      }
      const identifies = yield* sim.clientFrames({ op: 2 })
      expect(identifies.length).toBe(2)
      for (const frame of identifies) {
        const url = connections.find((c) => c.id === frame.connectionId)!.url
        expect(new URL(url).searchParams.has("compress")).toBe(true)
        expect(dataOf(frame).compress).not.toBe(true)
      }
    }).pipe(Effect.provide(layer())))

  // -------------------------------------------------------------------------------------------------------
  // item 15
  // -------------------------------------------------------------------------------------------------------

  it.effect("item 15: before READY/RESUMED only ops 1, 2, 6 are sent, even with commands queued early", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const commands: ReadonlyArray<GatewayCommand> = [
        { op: 3, d: presence },
        { op: 4, d: { guild_id: "81384788765712384", channel_id: null, self_mute: false, self_deaf: false } },
        { op: 43, d: { guild_id: "81384788765712384", fields: ["status"] } }
      ]
      // shard 0 gets the bucket at once; shard 1 (same bucket, mc 1) waits ~5 s with Hello and heartbeats
      const first = yield* startShard({ shardId: 0, shardCount: 2 })
      const second = yield* startShard({ shardId: 1, shardCount: 2 })
      // counts the sends that completed (a send completes once its frame went out)
      let delivered = 0
      const queue = (shard: Shard, command: GatewayCommand) =>
        Effect.forkChild(Effect.andThen(shard.send(command), Effect.sync(() => delivered++)))
      for (const shard of [first, second]) for (const command of commands) yield* queue(shard, command)
      yield* advanceInSteps(8_000)
      expect(delivered).toBe(commands.length * 2)

      // shard 1 resumes on a connection that never gets Hello: it must send nothing there; the queued
      // commands wait through the Hello timeout and the RESUME until RESUMED
      yield* sim.nextConnection("no-hello")
      yield* sim.drop(1)
      for (const command of commands) yield* queue(second, command)
      yield* advanceInSteps(30_000)
      expect(delivered).toBe(commands.length * 3)

      const frames = yield* sim.frames
      const connections = yield* sim.connections
      // the scenario happened: shard 1 waited for its bucket, a no-Hello connection, then a resume
      const identifies = frames.filter((f) => f.direction === "client" && f.op === 2)
      expect(identifies.map(identifiedShard)).toEqual([0, 1])
      expect(identifies[1]!.at).toBeGreaterThanOrEqual(5_000 - 50)
      const waitingBeats = frames.filter((f) =>
        f.connectionId === identifies[1]!.connectionId && f.direction === "client" && f.op === 1 && f.at < identifies[1]!.at
      )
      expect(waitingBeats.length).toBeGreaterThanOrEqual(2)
      expect(frames.filter((f) => f.direction === "client" && f.op === 6).length).toBeGreaterThanOrEqual(1)
      expect(frames.filter((f) => f.direction === "server" && f.t === "RESUMED").length).toBeGreaterThanOrEqual(1)
      expect(connections.length).toBeGreaterThanOrEqual(4)

      let commandFrames = 0
      const early: Array<{ readonly connection: number; readonly op: number | null; readonly at: number }> = []
      for (const connection of connections) {
        let ready = false
        for (const frame of frames) {
          if (frame.connectionId !== connection.id) continue
          if (isReadyOrResumed(frame)) ready = true
          if (frame.direction !== "client") continue
          if (!ready && frame.op !== 1 && frame.op !== 2 && frame.op !== 6) {
            early.push({ connection: connection.id, op: frame.op, at: frame.at })
          }
          if (frame.op === 3 || frame.op === 4 || frame.op === 43) commandFrames++
        }
      }
      expect(early).toEqual([])
      // every queued command was sent (after READY/RESUMED), and the simulator never closed with 4003
      expect(commandFrames).toBeGreaterThanOrEqual(commands.length * 3)
      expect(connections.some((c) => c.closeCode === 4003)).toBe(false)
      // the no-Hello connection carried no client frame at all
      const silent = connections.filter((c) => !frames.some((f) => f.connectionId === c.id && f.direction === "server"))
      expect(silent.length).toBe(1)
      expect(frames.filter((f) => f.connectionId === silent[0]!.id).length).toBe(0)
    }).pipe(Effect.provide(layer())))

  // -------------------------------------------------------------------------------------------------------
  // items 16–18
  // -------------------------------------------------------------------------------------------------------

  const maxConcurrency = 2
  const bucketed = () => layer({ maxConcurrency, simulator: { maxConcurrency } })

  /** Items 16 and 17 over every IDENTIFY the simulator received. */
  const checkBuckets = (identifies: ReadonlyArray<RecordedFrame>) => {
    const violations: Array<string> = []
    for (let i = 0; i < identifies.length; i++) {
      const a = identifies[i]!
      // 16: same key → at least 5000 − 50 ms apart
      for (let j = i + 1; j < identifies.length; j++) {
        const b = identifies[j]!
        if (identifiedShard(a) % maxConcurrency !== identifiedShard(b) % maxConcurrency) continue
        if (b.at - a.at < 4_950) {
          violations.push(`item 16: shards ${identifiedShard(a)} and ${identifiedShard(b)} only ${b.at - a.at} ms apart`)
        }
      }
      // 17: no 5 s window [t, t + 5000) holds more than max_concurrency IDENTIFYs
      const inWindow = identifies.filter((f) => f.at >= a.at && f.at < a.at + 5_000).length
      if (inWindow > maxConcurrency) violations.push(`item 17: ${inWindow} IDENTIFYs in [${a.at}, ${a.at + 5_000})`)
    }
    expect(violations).toEqual([])
  }

  // each start order with the default Random and with three fixed seeds (jitter varies the timings)
  const startups = [[7, 6, 5, 4, 3, 2, 1, 0], [5, 2, 7, 0, 3, 6, 1, 4]].flatMap((order) =>
    [undefined, 1, 2, 3].map((seed) => ({ order, seed }))
  )
  for (const { order, seed } of startups) {
    it.effect(
      `items 16, 17, 18: 8 shards, max_concurrency 2, started in order ${order.join(",")}${
        seed === undefined ? "" : ` (seed ${seed})`
      }: buckets and order kept`,
      () =>
        Effect.gen(function*() {
          const sim = yield* GatewaySimulator
          for (const id of order) yield* startShard({ shardId: id, shardCount: 8 })
          yield* advanceInSteps(22_000)

          const identifies = yield* sim.clientFrames({ op: 2 })
          // each shard identified exactly once, and the simulator (which enforces buckets) never sent op 9
          expect(identifies.map(identifiedShard).sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7])
          expect((yield* sim.serverFrames({ op: 9 })).length).toBe(0)
          expect((yield* sim.serverFrames()).filter((f) => f.t === "READY").length).toBe(8)
          checkBuckets(identifies)

          // 18: within each key ascending shard id; bucket b + 1 only after all of bucket b
          for (let key = 0; key < maxConcurrency; key++) {
            const ids = identifies.map(identifiedShard).filter((id) => id % maxConcurrency === key)
            expect(ids).toEqual([...ids].sort((a, b) => a - b))
          }
          const position = new Map(identifies.map((f, index) => [identifiedShard(f), index]))
          for (let bucket = 0; bucket < 3; bucket++) {
            const lastOfBucket = Math.max(position.get(bucket * 2)!, position.get(bucket * 2 + 1)!)
            const firstOfNext = Math.min(position.get(bucket * 2 + 2)!, position.get(bucket * 2 + 3)!)
            expect(firstOfNext).toBeGreaterThan(lastOfBucket)
            const lastAt = Math.max(...identifies.filter((f) => Math.floor(identifiedShard(f) / 2) === bucket).map((f) => f.at))
            const nextAt = Math.min(...identifies.filter((f) => Math.floor(identifiedShard(f) / 2) === bucket + 1).map((f) => f.at))
            expect(nextAt).toBeGreaterThanOrEqual(lastAt)
          }
        }).pipe(seed === undefined ? identity : Random.withSeed(seed), Effect.provide(bucketed()))
    )
  }

  it.effect("items 16, 17: re-IDENTIFYs of several shards after op 9 false and 4009 keep the bucket spacing", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      for (let id = 0; id < 8; id++) yield* startShard({ shardId: id, shardCount: 8 })
      yield* advanceInSteps(21_000)
      // three shards of key 0 and one of key 1 need a new session at once
      yield* sim.invalidateSession(0, false)
      yield* sim.invalidateSession(2, false)
      yield* sim.close(4, 4009)
      yield* sim.invalidateSession(3, false)
      yield* advanceInSteps(25_000)

      const identifies = yield* sim.clientFrames({ op: 2 })
      expect(identifies.length).toBe(12)
      checkBuckets(identifies)
      // the only op 9s are the three this test sent: no IDENTIFY was ever throttled
      expect((yield* sim.serverFrames({ op: 9 })).length).toBe(3)
      expect((yield* sim.serverFrames()).filter((f) => f.t === "READY").length).toBe(12)
    }).pipe(Effect.provide(bucketed())))

  // -------------------------------------------------------------------------------------------------------
  // item 19
  // -------------------------------------------------------------------------------------------------------

  const budget = (remaining: number) => {
    const sessionStartLimit = { total: 1000, remaining, resetAfterMs: 60_000 }
    return layer({ sessionStartLimit, simulator: { sessionStartLimit } })
  }

  it.effect("item 19: remaining 1, reset after 60 s: one IDENTIFY, a forced re-IDENTIFY waits for the reset", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      yield* startShard()
      yield* advanceInSteps(5_000)
      yield* sim.invalidateSession(0, false)
      yield* advanceInSteps(60_000)

      const identifies = yield* sim.clientFrames({ op: 2 })
      expect(identifies.length).toBe(2)
      expect(identifies.filter((f) => f.at < 60_000).length).toBe(1)
      expect(identifies[1]!.at).toBeGreaterThanOrEqual(60_000)
      expect(identifies[1]!.at).toBeLessThanOrEqual(60_000 + tau)
      // never past the budget: the simulator would have closed everything with 4004
      expect((yield* sim.connections).some((c) => c.closeCode === 4004)).toBe(false)
      expect((yield* sim.serverFrames()).filter((f) => f.t === "READY").length).toBe(2)
    }).pipe(Effect.provide(budget(1))))

  it.effect("item 19: with the budget spent, a shard waiting to IDENTIFY does not keep other shards from RESUMEing", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      // two starts left: shard 0 at 0 s, shard 1 at 5 s (one bucket) — then the budget is 0 until 60 s
      yield* startShard({ shardId: 0, shardCount: 2 })
      yield* startShard({ shardId: 1, shardCount: 2 })
      yield* advanceInSteps(7_000)
      yield* sim.invalidateSession(0, false)
      yield* advanceInSteps(5_000)
      yield* sim.dispatch("MESSAGE_CREATE", { guild_id: "41771983423143937", content: "while away" })
      yield* sim.drop(1)
      const droppedAt = 12_000
      yield* advanceInSteps(10_000)
      yield* sim.close(1, 4000)
      const closedAt = 22_000
      yield* advanceInSteps(45_000)

      const frames = yield* sim.frames
      const identifies = frames.filter((f) => f.direction === "client" && f.op === 2)
      expect(identifies.map(identifiedShard)).toEqual([0, 1, 0])
      expect(identifies.filter((f) => f.at < 60_000).length).toBeLessThanOrEqual(2)
      expect(identifies[2]!.at).toBeGreaterThanOrEqual(60_000)
      // shard 1 resumed at once after the drop and after the close, while shard 0 waited
      const resumes = frames.filter((f) => f.direction === "client" && f.op === 6)
      for (const faultAt of [droppedAt, closedAt]) {
        const next = resumes.find((f) => f.at >= faultAt)
        expect(next?.shard).toEqual([1, 2])
        expect(next!.at - faultAt).toBeLessThanOrEqual(tau)
      }
      // shard 0 has no session to resume from the op 9 on
      for (const resume of resumes.filter((f) => f.at >= 7_000)) expect(resume.shard).toEqual([1, 2])
      expect(frames.filter((f) => f.direction === "server" && f.t === "RESUMED" && f.at < 60_000).length).toBeGreaterThanOrEqual(2)
      expect((yield* sim.connections).some((c: RecordedConnection) => c.closeCode === 4004)).toBe(false)
    }).pipe(Effect.provide(budget(2))))
})
