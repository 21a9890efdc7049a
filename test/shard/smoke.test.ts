/** Smoke test: one shard against the simulator identifies, becomes ready, delivers a dispatch and heartbeats. */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { GatewaySimulator } from "../../src/testing/GatewaySimulator.ts"
import { advance, collectDispatches, layer, phaseOf, startShard } from "./harness.ts"

describe("shard smoke", () => {
  it.effect("identifies, becomes ready, delivers dispatches and heartbeats", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const received = yield* collectDispatches
      const shard = yield* startShard()
      yield* advance(100)
      expect(yield* phaseOf(shard)).toBe("ready")
      yield* sim.dispatch("MESSAGE_CREATE", { guild_id: "81384788765712384", content: "hi" })
      yield* advance(5000)
      expect(received.map((d) => d.name)).toContain("MESSAGE_CREATE")
      const beats = yield* sim.clientFrames({ op: 1 })
      expect(beats.length).toBeGreaterThanOrEqual(3)
    }).pipe(Effect.provide(layer())))
})
