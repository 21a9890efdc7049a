/**
 * The examples in examples/ run as the test suite's programs: each exported `program` runs under TestClock
 * (virtual time advanced in 100 ms steps until it ends) and its summary is checked against what the
 * example claims to show. They import the package by name ("effect-discord-gateway"), so this also checks
 * that the package's self-reference resolves.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, References } from "effect"
import { program as gatewayProgram } from "../examples/gateway.ts"
import { program as liveReshardProgram } from "../examples/live-reshard.ts"
import { program as singleShardProgram } from "../examples/single-shard.ts"
import { advance } from "./shard/harness.ts"

/** Runs an example to its end under TestClock; fails the test if it takes more than `maxMs` of virtual time. */
const runExample = <A, E>(program: Effect.Effect<A, E>, maxMs: number) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(program.pipe(Effect.provideService(References.MinimumLogLevel, "Warn")))
    for (let t = 0; t < maxMs && fiber.pollUnsafe() === undefined; t += 100) yield* advance(100)
    expect(fiber.pollUnsafe(), `the example did not finish within ${maxMs} ms of virtual time`).toBeDefined()
    return yield* Fiber.join(fiber)
  })

describe("examples", () => {
  it.effect("single-shard: messages arrive in order, a drop is RESUMEd (one IDENTIFY), the message sent meanwhile is replayed once, stop closes 1000", () =>
    Effect.gen(function*() {
      const summary = yield* runExample(singleShardProgram, 30_000)
      expect(summary.messages).toEqual(["hello", "from the", "simulator", "sent while disconnected", "after the resume"])
      expect(summary.identifies).toBe(1)
      expect(summary.resumes).toBe(1)
      // The dropped connection was closed by the simulator (not the client); the stop closed with 1000.
      expect(summary.clientCloseCodes).toEqual([null, 1000])
      expect(summary.finalPhase).toBe("stopped")
    }))

  it.effect("gateway: 4 shards from /gateway/bot, each message on the shard owning its guild, a member request in chunks, resumable shutdown", () =>
    Effect.gen(function*() {
      const summary = yield* runExample(gatewayProgram, 30_000)
      expect(summary.shardCount).toBe(4)
      expect(summary.allReady).toBe(true)
      expect(summary.messagesByShard).toEqual({
        0: ["message 0", "message 4"],
        1: ["message 1", "message 5"],
        2: ["message 2", "message 6"],
        3: ["message 3", "message 7"]
      })
      expect(summary.members).toEqual({ shard: 3, chunks: 3, members: 2500 })
      expect(summary.closeCodes).toEqual([4000, 4000, 4000, 4000])
      expect(summary.ended).toBe(true)
    }))

  it.effect("live-reshard: 4 → 8 under continuous traffic, GATEWAY_RESHARDED once, every message delivered exactly once", () =>
    Effect.gen(function*() {
      const summary = yield* runExample(liveReshardProgram, 60_000)
      expect(summary.resharded).toMatchObject({ from: 4, to: 8 })
      expect(summary.shardCountAfter).toBe(8)
      expect(summary.phases).toEqual(["starting", "switching", "draining", "done"])
      // Traffic spanned the switch: some messages came through each set.
      expect(summary.sent).toBeGreaterThan(300)
      expect(summary.beforeSwitch).toBeGreaterThan(0)
      expect(summary.beforeSwitch).toBeLessThan(summary.sent)
      // Exactly once: nothing lost, nothing repeated.
      expect(summary.unique).toBe(summary.sent)
      expect(summary.delivered).toBe(summary.sent)
    }))
})
