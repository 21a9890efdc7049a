/**
 * The simulator's own traffic (issue 5 "event mix and rate"): the mix in exact proportions, the rate over
 * Clock time, options checked, and — through the simulator — every event routed to the shard that owns its
 * guild (PROTOCOL.md §4, item 52).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { GatewaySimulator } from "../../src/testing/GatewaySimulator.ts"
import { resolveSimulatorOptions } from "../../src/testing/SimulatorOptions.ts"
import * as SimulatorTraffic from "../../src/testing/SimulatorTraffic.ts"
import { connectReady, shardOf, Token, withSimulator } from "./rawClient.ts"

/** Guild k routes to shard k % 2 (its timestamp part is k). */
const guilds = Array.from({ length: 6 }, (_, k) => String((BigInt(k + 1_000) << 22n) + BigInt(k)))

const countBy = (names: ReadonlyArray<string>) => {
  const counts: Record<string, number> = {}
  for (const name of names) counts[name] = (counts[name] ?? 0) + 1
  return counts
}

describe("SimulatorTraffic", () => {
  it("the default mix: every 20 events hold 8 messages, 5 typing, 3 presences, 2 reactions, 2 member updates, interleaved", () => {
    const order = SimulatorTraffic.mixOrder(SimulatorTraffic.DefaultMix)
    expect(order.length).toBe(20)
    expect(countBy(order)).toEqual({
      MESSAGE_CREATE: 8,
      TYPING_START: 5,
      PRESENCE_UPDATE: 3,
      MESSAGE_REACTION_ADD: 2,
      GUILD_MEMBER_UPDATE: 2
    })
    // Interleaved, not in runs: never three of one event in a row.
    for (let i = 2; i < order.length; i++) expect(order[i] === order[i - 1] && order[i] === order[i - 2]).toBe(false)
  })

  it("every event carries the guild it was given; unknown names get an id and the guild", () => {
    for (const event of [...SimulatorTraffic.DefaultMix.map(([name]) => name), "SOMETHING_NEW"]) {
      const data = SimulatorTraffic.eventData(event, 7, guilds[1], 0) as { readonly guild_id?: string; readonly id?: string }
      expect(data.guild_id).toBe(guilds[1])
    }
    expect(SimulatorTraffic.eventData("SOMETHING_NEW", 7, guilds[1], 0)).toEqual({ id: "300000000000000007", guild_id: guilds[1] })
  })

  it.effect("emits `rate` events per second of Clock time, reading the guilds at every tick", () =>
    Effect.gen(function*() {
      const sent: Array<readonly [string, string]> = []
      let current: ReadonlyArray<string> = guilds.slice(0, 2)
      const fiber = yield* Effect.forkChild(SimulatorTraffic.run({
        dispatch: (event, data) => Effect.sync(() => sent.push([event, (data as { guild_id: string }).guild_id])),
        guilds: () => current
      }, { rate: 200, tickMs: 40 }))
      yield* TestClock.adjust(20)
      expect(sent).toEqual([]) // first tick at 40 ms
      yield* TestClock.adjust(980)
      expect(sent.length).toBe(200)
      expect(new Set(sent.map(([, guild]) => guild))).toEqual(new Set(guilds.slice(0, 2)))
      current = guilds.slice(2, 3)
      yield* TestClock.adjust(9000)
      expect(sent.length).toBe(2000)
      expect(new Set(sent.slice(200).map(([, guild]) => guild))).toEqual(new Set([guilds[2]]))
      expect(countBy(sent.map(([event]) => event)).MESSAGE_CREATE).toBe(800)
      yield* Fiber.interrupt(fiber)
      // What is due depends on elapsed time only, and a long pause gives one second's worth, no burst.
      expect(SimulatorTraffic.due(990, 200, 0)).toBe(198)
      expect(SimulatorTraffic.due(1000, 200, 198)).toBe(2)
      expect(SimulatorTraffic.due(10_000, 200, 0)).toBe(200)
    }))

  it("bad options are refused with what to fix", () => {
    const resolve = (traffic: SimulatorTraffic.TrafficOptions) => () => resolveSimulatorOptions({ token: Token, traffic })
    expect(resolve({ rate: -1 })).toThrow(/traffic\.rate must be a number of events per second ≥ 0, got -1/)
    expect(resolve({ rate: Number.NaN })).toThrow(/traffic\.rate/)
    expect(resolve({ rate: 10, mix: [] })).toThrow(/traffic\.mix must name at least one event/)
    expect(resolve({ rate: 10, mix: [["MESSAGE_CREATE", 0]] })).toThrow(/weight of MESSAGE_CREATE must be a whole number from 1 to 1000, got 0/)
    expect(resolve({ rate: 10, mix: [["message create", 1]] })).toThrow(/"message create" is not an event name/)
    expect(resolve({ rate: 10, tickMs: 0 })).toThrow(/traffic\.tickMs must be a positive number/)
    expect(resolveSimulatorOptions({ token: Token, traffic: { rate: 10 } }).traffic).toEqual({ rate: 10 })
  })

  it.effect("item 52: the simulator's traffic reaches each shard with its own guilds, in the mix's proportions", () =>
    withSimulator({ guilds, heartbeatTimeoutMs: 3_600_000, traffic: { rate: 40, mix: [["MESSAGE_CREATE", 3], ["CUSTOM_EVENT", 1]] } })(
      Effect.gen(function*() {
        const sim = yield* GatewaySimulator
        yield* connectReady({ shard: [0, 2], intents: 0 })
        yield* TestClock.adjust(5000)
        yield* connectReady({ shard: [1, 2], intents: 0 })
        const from = (yield* sim.serverFrames({ op: 0 })).length
        yield* TestClock.adjust(10_000)
        const traffic = (yield* sim.serverFrames({ op: 0 })).slice(from)
        // 40 events/s for 10 s, each to exactly one of the two shards.
        expect(traffic.length).toBeGreaterThanOrEqual(399)
        expect(traffic.length).toBeLessThanOrEqual(401)
        for (const frame of traffic) {
          expect(frame.shard?.[0]).toBe(shardOf((frame.d as { guild_id: string }).guild_id, 2))
        }
        const counts = countBy(traffic.map((frame) => frame.t!))
        expect(Math.abs(counts.MESSAGE_CREATE! - 3 * counts.CUSTOM_EVENT!)).toBeLessThanOrEqual(3)
        expect(new Set(traffic.map((frame) => frame.shard?.[0]))).toEqual(new Set([0, 1]))
      })
    ))
})
