/**
 * Shard conformance: the send limit and the frame size limit (PROTOCOL.md §3 "Send limit", §5.1;
 * checklist items 40, 41 and 42).
 *
 * The shard is driven through its public `send` with hundreds of user commands while the simulator
 * records every client frame; the checks then run over the recordings: every sliding 60 s window of
 * each connection, the heartbeat schedule under load, the order and completeness of the commands, and
 * the size of every frame. Rejected commands are looked for in the recordings too (they must be absent).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Random } from "effect"
import { PayloadTooLarge } from "../../src/Errors.ts"
import type { PresenceUpdateData } from "../../src/protocol/Payloads.ts"
import type { GatewayCommand } from "../../src/Shard.ts"
import { GatewaySimulator, type RecordedFrame } from "../../src/testing/GatewaySimulator.ts"
import { maxInAnyWindow } from "../support/slidingWindow.ts"
import { advance, advanceInSteps, guilds, I, layer, startShard, tau } from "./harness.ts"

const WindowMs = 60_000
const SendLimit = 120
const MaxFrameBytes = 4096

/** The most frames of one connection inside any half-open window `[t, t + 60 s)`. */
const maxInSlidingWindow = (times: ReadonlyArray<number>): number => maxInAnyWindow(times, WindowMs)

/** Client frame times per connection. */
const clientTimesByConnection = (frames: ReadonlyArray<RecordedFrame>): Map<number, Array<number>> => {
  const out = new Map<number, Array<number>>()
  for (const frame of frames) {
    if (frame.direction !== "client") continue
    let times = out.get(frame.connectionId)
    if (times === undefined) out.set(frame.connectionId, times = [])
    times.push(frame.at)
  }
  return out
}

/** Item 40: no connection carries more than 120 client frames in any sliding 60 s window. */
const expectSendLimitKept = (frames: ReadonlyArray<RecordedFrame>) => {
  for (const [connectionId, times] of clientTimesByConnection(frames)) {
    expect(maxInSlidingWindow(times), `client frames in a 60 s window on connection ${connectionId}`)
      .toBeLessThanOrEqual(SendLimit)
  }
}

/** Item 42: every client frame is at most 4096 bytes once encoded. */
const expectFramesWithinSize = (frames: ReadonlyArray<RecordedFrame>) => {
  for (const frame of frames) {
    if (frame.direction === "client") expect(frame.bytes, `op ${frame.op} at ${frame.at}`).toBeLessThanOrEqual(MaxFrameBytes)
  }
}

/** Presence update number `n`: `since` numbers it, so the recordings show order and completeness. */
const presence = (n: number): GatewayCommand => ({
  op: 3,
  d: { since: n, activities: [{ name: `task ${n}`, type: 0 }], status: "online", afk: false }
})

const voiceState = (n: number): GatewayCommand => ({
  op: 4,
  d: { guild_id: guilds[n % guilds.length]!, channel_id: n % 2 === 0 ? null : "41771983423143939", self_mute: false, self_deaf: n % 3 === 0 }
})

/** Forks one `send` per command, each started at once so the commands enter the shard in this order. */
const queueAll = (send: (command: GatewayCommand) => Effect.Effect<void, unknown>, commands: ReadonlyArray<GatewayCommand>) =>
  Effect.forEach(commands, (command) => Effect.forkChild(send(command), { startImmediately: true }))

describe("shard send limits (PROTOCOL.md §3, §5.1)", () => {
  it.effect("item 40: 500 commands, a reconnect in the middle: no connection carries > 120 client frames in any 60 s window", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const shard = yield* startShard()
      yield* advance(100)
      const commands = Array.from({ length: 500 }, (_, n) => n % 2 === 0 ? presence(n) : voiceState(n))
      const sends = yield* queueAll(shard.send, commands)
      yield* advanceInSteps(150_000)
      // A resumable close mid-way: the rest goes out on a new connection with a fresh budget.
      yield* sim.close(0, 4000)
      yield* advanceInSteps(330_000)
      for (const send of sends) expect(Exit.isSuccess(yield* Fiber.await(send))).toBe(true)

      const frames = yield* sim.frames
      const connections = yield* sim.connections
      expect(connections.length).toBeGreaterThanOrEqual(2)
      // The simulator never had to close a connection with 4008 (rate limited).
      expect(connections.filter((c) => c.closeCode === 4008)).toEqual([])
      expectSendLimitKept(frames)
      // Non-vacuous: the load pressed on the limit (a window came close to 120 on the first connection and
      // on the one that took over after the 4000).
      const perConnection = clientTimesByConnection(frames)
      expect(maxInSlidingWindow(perConnection.get(connections[0]!.id)!)).toBeGreaterThan(100)
      const takeover = connections.find((c) => c.openedAt >= 150_000)!
      expect(maxInSlidingWindow(perConnection.get(takeover.id)!)).toBeGreaterThan(100)
      // every command went out
      const sent = frames.filter((f) => f.direction === "client" && (f.op === 3 || f.op === 4))
      const presences = new Set(sent.filter((f) => f.op === 3).map((f) => (f.d as PresenceUpdateData).since))
      expect(presences.size).toBe(250)
      expect(sent.filter((f) => f.op === 4).length).toBeGreaterThanOrEqual(250)
      expectFramesWithinSize(frames)
    }).pipe(Random.withSeed(40), Effect.provide(layer())), 60_000)

  it.effect("item 41: 300 commands queued at once: heartbeats keep items 4 and 6, item 40 holds, all sent in order", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const shard = yield* startShard()
      // Queued before the shard is even connected: all 300 wait for READY together.
      const sends = yield* queueAll(shard.send, Array.from({ length: 300 }, (_, n) => presence(n)))
      yield* advanceInSteps(300_000)
      const end = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
      for (const send of sends) expect(Exit.isSuccess(yield* Fiber.await(send))).toBe(true)

      const frames = yield* sim.frames
      const connections = yield* sim.connections
      // ACKs arrived all along: the one connection must have stayed up (no reconnect, no 4008).
      expect(connections.map((c) => c.closeCode)).toEqual([null])

      // every command, once, in the order it was queued
      const presences = frames.filter((f) => f.direction === "client" && f.op === 3)
      expect(presences.map((f) => (f.d as PresenceUpdateData).since)).toEqual(Array.from({ length: 300 }, (_, n) => n))

      // heartbeats: item 4 …
      const hello = frames.find((f) => f.direction === "server" && f.op === 10)!
      const beats = frames.filter((f) => f.direction === "client" && f.op === 1).map((f) => f.at)
      expect(beats.length).toBeGreaterThan(0)
      expect(beats[0]! - hello.at).toBeGreaterThanOrEqual(0)
      expect(beats[0]! - hello.at).toBeLessThanOrEqual(I + tau)
      // … and item 6, all along the load
      for (let i = 1; i < beats.length; i++) {
        expect(beats[i]! - beats[i - 1]!, `gap before beat ${i}`).toBeGreaterThanOrEqual(I - tau)
        expect(beats[i]! - beats[i - 1]!, `gap before beat ${i}`).toBeLessThanOrEqual(I + tau)
      }
      expect(end - beats[beats.length - 1]!).toBeLessThanOrEqual(I + tau)
      // The commands were still going out when the run ended, or just done: the beats above ran under load.
      expect(presences[presences.length - 1]!.at).toBeGreaterThan(2 * WindowMs)

      expectSendLimitKept(frames)
      expectFramesWithinSize(frames)
    }).pipe(Random.withSeed(41), Effect.provide(layer())), 60_000)

  it.effect("item 42: a command over 4096 bytes fails with PayloadTooLarge and is never sent; one of exactly 4096 goes", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const shard = yield* startShard()
      yield* advance(100)

      const members = (query: string): GatewayCommand => ({ op: 8, d: { guild_id: guilds[0]!, query, limit: 1, nonce: "edge" } })
      const frameBytes = (command: GatewayCommand) => Buffer.byteLength(JSON.stringify({ op: command.op, d: command.d }))
      const padding = MaxFrameBytes - frameBytes(members(""))
      const exact = members("q".repeat(padding))
      const over = members("q".repeat(padding + 1))
      expect(frameBytes(exact)).toBe(MaxFrameBytes)
      expect(frameBytes(over)).toBe(MaxFrameBytes + 1)

      const error = yield* Effect.flip(shard.send(over))
      expect(error).toBeInstanceOf(PayloadTooLarge)
      expect(error).toMatchObject({ _tag: "PayloadTooLarge", op: 8, bytes: MaxFrameBytes + 1, limit: MaxFrameBytes })
      const huge = yield* Effect.flip(shard.send(members("x".repeat(20_000))))
      expect(huge._tag).toBe("PayloadTooLarge")
      yield* advance(1_000)
      expect(yield* sim.clientFrames({ op: 8 })).toEqual([])

      const fiber = yield* Effect.forkChild(shard.send(exact))
      yield* advance(100)
      expect(Exit.isSuccess(yield* Fiber.await(fiber))).toBe(true)
      const sent = yield* sim.clientFrames({ op: 8 })
      expect(sent.length).toBe(1)
      expect(sent[0]!.bytes).toBe(MaxFrameBytes)

      const connections = yield* sim.connections
      expect(connections.length).toBe(1)
      expect(connections[0]!.closedAt).toBeNull()
      expectFramesWithinSize(yield* sim.frames)
    }).pipe(Effect.provide(layer())))

  it.effect("item 42: the limit counts UTF-8 bytes: a presence under 4096 characters but over 4096 bytes is refused", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const shard = yield* startShard()
      yield* advance(100)
      const name = "é".repeat(2_100) // 2 100 characters, 4 200 bytes
      const command: GatewayCommand = { op: 3, d: { since: null, activities: [{ name, type: 0 }], status: "online", afk: false } }
      const text = JSON.stringify({ op: command.op, d: command.d })
      expect(text.length).toBeLessThan(MaxFrameBytes)
      expect(Buffer.byteLength(text)).toBeGreaterThan(MaxFrameBytes)

      const error = yield* Effect.flip(shard.send(command))
      expect(error).toMatchObject({ _tag: "PayloadTooLarge", op: 3, bytes: Buffer.byteLength(text), limit: MaxFrameBytes })
      yield* advance(1_000)
      expect(yield* sim.clientFrames({ op: 3 })).toEqual([])
      expectFramesWithinSize(yield* sim.frames)
    }).pipe(Effect.provide(layer())))

  it.effect("item 42: an IDENTIFY that would exceed 4096 bytes (huge initial presence) fails the start; nothing is sent", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const activities = Array.from({ length: 40 }, (_, n) => ({ name: `activity ${n} `.padEnd(120, "-"), type: 0 }))
      const error = yield* Effect.flip(startShard({ presence: { since: null, activities, status: "online", afk: false } }))
      expect(error._tag).toBe("PayloadTooLarge")
      yield* advance(1_000)
      expect(yield* sim.connections).toEqual([])
      expect(yield* sim.clientFrames()).toEqual([])
    }).pipe(Effect.provide(layer())))

  it.effect("item 42: an invalid command (op 8 with both query and user_ids) fails with InvalidCommand and is never sent", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const shard = yield* startShard()
      yield* advance(100)
      const invalid: GatewayCommand = { op: 8, d: { guild_id: guilds[0]!, query: "a", limit: 1, user_ids: ["41771983423143940"] } }
      const error = yield* Effect.flip(shard.send(invalid))
      expect(error).toMatchObject({ _tag: "InvalidCommand", op: 8 })
      yield* advance(1_000)
      expect(yield* sim.clientFrames({ op: 8 })).toEqual([])

      // The shard is unharmed: the same request made valid goes out on the same connection.
      const fiber = yield* Effect.forkChild(shard.send({ op: 8, d: { guild_id: guilds[0]!, query: "a", limit: 1 } }))
      yield* advance(100)
      expect(Exit.isSuccess(yield* Fiber.await(fiber))).toBe(true)
      expect((yield* sim.clientFrames({ op: 8 })).length).toBe(1)
      const connections = yield* sim.connections
      expect(connections.length).toBe(1)
      expect(connections[0]!.closedAt).toBeNull()
    }).pipe(Effect.provide(layer())))
})
