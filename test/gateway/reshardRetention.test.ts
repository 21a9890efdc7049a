/**
 * Nothing of a finished reshard stays reachable (issue 5 "Soak": no growth in heap beyond noise). A set's
 * closures once held the route it was built with — a reshard's staging route — and with it that reshard's
 * handoff and the set before it, which held the reshard before that: every reshard stayed in memory (about
 * 1.4 MB each under the soak's traffic). And the last reshard's handoff stayed until the next dispatch.
 *
 * Counted from heap snapshots (`heapCensus`): one `readyCount` closure per shard set, one `recordDelivered`
 * per reshard handoff. In its own file, so no other test's Gateway shares the worker's heap.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { GatewaySimulator } from "../../src/testing/GatewaySimulator.ts"
import { liveClosures } from "../support/heapCensus.ts"
import { advance, environment, guildIds, makeGateway } from "./harness.ts"

const guilds = guildIds(32)
const census = liveClosures(["readyCount", "recordDelivered"])

describe("resharding retains nothing of finished reshards", () => {
  it.effect("after 4 → 8 → 4 → 8 → 4 (traffic stopped before the last one ends): one shard set, no handoff", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway()
      yield* advance(1000)
      let sent = 0
      const traffic = yield* Effect.forkScoped(Effect.forever(Effect.gen(function*() {
        const i = sent++
        yield* sim.dispatch("MESSAGE_CREATE", { guild_id: guilds[i % guilds.length], content: String(i), id: String(i) })
        yield* Effect.sleep(50)
      })))
      const reshard = (count: number, whileRunning?: Effect.Effect<void>) =>
        Effect.gen(function*() {
          const fiber = yield* Effect.forkScoped(gateway.reshard(count))
          for (let step = 0; step < 240 && fiber.pollUnsafe() === undefined; step++) {
            yield* advance(500)
            if (whileRunning !== undefined && (yield* gateway.status).reshard?.phase === "draining") {
              yield* whileRunning
              whileRunning = undefined
            }
          }
          expect(fiber.pollUnsafe()).toBeDefined() // the reshard ended within the bounded wait
          yield* Fiber.join(fiber)
        })

      // While a reshard drains, both sets and its handoff are alive (the census sees what it should).
      yield* reshard(8, Effect.gen(function*() {
        expect(yield* census).toEqual({ readyCount: 2, recordDelivered: 1 })
      }))
      yield* reshard(4)
      yield* reshard(8)
      yield* reshard(4, Fiber.interrupt(traffic))
      yield* advance(1000)
      expect((yield* gateway.layout).count).toBe(4)
      expect(yield* census).toEqual({ readyCount: 1, recordDelivered: 0 })
    }).pipe(Effect.provide(environment({ recommendedShards: 4, maxConcurrency: 4 }))), { timeout: 120_000 })
})
