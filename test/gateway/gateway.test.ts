/**
 * Gateway rules (src/Gateway.ts) that the other Gateway tests did not pin down: what it hands every shard
 * from its own options and from GET /gateway/bot, when it says GATEWAY_READY, and what the status reports
 * during a reshard.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Stream } from "effect"
import { IdentifyRateLimiter } from "../../src/IdentifyRateLimiter.ts"
import { GatewaySimulator } from "../../src/testing/GatewaySimulator.ts"
import { advance, environment, guildIds, makeGateway } from "./harness.ts"

const collect = <A, E>(stream: Stream.Stream<A, E>) =>
  Effect.gen(function*() {
    const items: Array<A> = []
    yield* Effect.forkScoped(Stream.runForEach(stream, (a) => Effect.sync(() => items.push(a))))
    return items
  })

describe("Gateway: what every shard is given", () => {
  it.effect("item 2: the compression option reaches every shard's connection URL", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      yield* makeGateway({ compression: "zlib-stream" })
      yield* advance(100)
      const connections = yield* sim.connections
      expect(connections.length).toBe(2)
      for (const c of connections) expect(new URL(c.url).searchParams.get("compress")).toBe("zlib-stream")
    }).pipe(Effect.provide(environment({ recommendedShards: 2 }))))

  it.effect("item 12: the largeThreshold option reaches every shard's IDENTIFY", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      yield* makeGateway({ largeThreshold: 100 })
      yield* advance(6000)
      const identifies = yield* sim.clientFrames({ op: 2 })
      expect(identifies.map((f) => (f.d as { readonly large_threshold?: number }).large_threshold)).toEqual([100, 100])
    }).pipe(Effect.provide(environment({ recommendedShards: 2 }))))

  it.effect("the shard options (here invalidSessionDelayMs) reach every shard", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      yield* makeGateway({ shard: { invalidSessionDelayMs: { min: 100, max: 200 } } })
      yield* advance(6000)
      yield* sim.invalidateSession(0, false)
      yield* advance(500) // the default delay is 1–5 s
      const [invalid] = yield* sim.serverFrames({ op: 9 })
      const identifies = yield* sim.clientFrames({ op: 2 })
      expect(identifies.length).toBe(2)
      expect(identifies[1]!.at - invalid!.at).toBeGreaterThanOrEqual(100)
      expect(identifies[1]!.at - invalid!.at).toBeLessThanOrEqual(200 + 250)
    }).pipe(Effect.provide(environment({ recommendedShards: 1 }))))

  it.effect("item 19: the Gateway gives its identify limiter /gateway/bot's session_start_limit (remaining 0: no IDENTIFY before reset_after)", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway()
      for (let t = 0; t < 29_000; t += 1000) yield* advance(1000)
      expect(yield* sim.clientFrames({ op: 2 })).toEqual([])
      for (let t = 0; t < 2_000; t += 1000) yield* advance(1000)
      expect((yield* sim.clientFrames({ op: 2 })).map((f) => f.at >= 30_000)).toEqual([true])
      expect((yield* gateway.status).ready).toBe(true)
    }).pipe(Effect.provide(Layer.merge(
      environment({ recommendedShards: 1, sessionStartLimit: { total: 1000, remaining: 0, resetAfterMs: 30_000 } }),
      // a limiter that knows no budget of its own (not built from /gateway/bot)
      IdentifyRateLimiter.layerMemory({ maxConcurrency: 1 })
    ))))
})

describe("Gateway: GATEWAY_READY and the status", () => {
  it.effect("GATEWAY_READY again when the Gateway is ready again after it was not (a new session loading its guilds)", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway({ guildWaitTimeout: "10 seconds" })
      const ready = yield* collect(gateway.events("GATEWAY_READY"))
      yield* advance(11_000)
      expect(ready.length).toBe(1)
      yield* sim.invalidateSession(0, false) // a new session: READY again, the silent guild holds it back
      yield* advance(6000)
      expect((yield* gateway.status).ready).toBe(false)
      yield* advance(11_000)
      expect((yield* gateway.status).ready).toBe(true)
      expect(ready.length).toBe(2)
    }).pipe(Effect.provide(environment({ recommendedShards: 1, silentGuilds: [guildIds(32)[5]!] }))))

  it.effect("during a reshard the status counts the new shards that are ready so far", () =>
    Effect.gen(function*() {
      const gateway = yield* makeGateway()
      yield* advance(6000)
      const reshard = yield* Effect.forkScoped(gateway.reshard(4))
      const seen = new Set<number>()
      for (let t = 0; t < 120_000 && reshard.pollUnsafe() === undefined; t += 250) {
        yield* advance(250)
        const status = (yield* gateway.status).reshard
        if (status?.phase === "starting") seen.add(status.ready)
      }
      yield* Fiber.join(reshard)
      // four new shards identify 5 s apart (max_concurrency 1): the count goes up while they start
      expect([...seen].sort()).toEqual([0, 1, 2, 3])
    }).pipe(Effect.provide(environment({ recommendedShards: 2 }))))
})

describe("Gateway: fatal closes around a reshard", () => {
  it.effect("item 36: with reshard.onShardingRequired false, a 4011 fails the Gateway with ShardingRequired instead of resharding", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway({ reshard: { onShardingRequired: false } })
      yield* advance(6000)
      yield* sim.close([1, 2], 4011)
      yield* advance(100)
      expect((yield* gateway.status).ended).toBe(true)
      expect((yield* Effect.flip(gateway.join))._tag).toBe("ShardingRequired")
      for (let t = 0; t < 30_000; t += 1000) yield* advance(1000)
      expect((yield* sim.connections).filter((c) => c.shard?.[1] !== 2)).toEqual([]) // no new set was started
    }).pipe(Effect.provide(environment({ recommendedShards: 2 }))))

  it.effect("a fatal close on a shard of the new set fails the reshard at once with reason fatal; the old set serves on", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway()
      yield* advance(6000)
      const attempt = yield* Effect.forkScoped(Effect.flip(gateway.reshard(4)))
      const newConnection = Effect.map(sim.connections, (all) => all.find((c) => c.shard?.[1] === 4))
      for (let t = 0; t < 30_000 && (yield* newConnection) === undefined; t += 100) yield* advance(100)
      yield* sim.close((yield* newConnection)!.shard!, 4014) // disallowed intents: fatal
      for (let t = 0; t < 2_000 && attempt.pollUnsafe() === undefined; t += 100) yield* advance(100)
      expect(attempt.pollUnsafe()).toBeDefined() // not after the ready timeout (minutes)
      const error = yield* Fiber.join(attempt)
      expect(error.reason).toBe("fatal")
      expect(error.to).toBe(4)
      const status = yield* gateway.status
      expect([status.ended, status.shardCount, status.ready]).toEqual([false, 2, true])
    }).pipe(Effect.provide(environment({ recommendedShards: 2 }))))

  it.effect("a fatal close on a shard of the old set while it drains after the switch does not end the Gateway", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway()
      yield* advance(6000)
      const reshard = yield* Effect.forkScoped(gateway.reshard(4))
      const phase = Effect.map(gateway.status, (s) => s.reshard?.phase)
      for (let t = 0; t < 60_000 && (yield* phase) !== "draining"; t += 100) yield* advance(100)
      expect(yield* phase).toBe("draining")
      yield* sim.close([0, 2], 4014) // the old set is still connected for the dedup window
      for (let t = 0; t < 60_000 && reshard.pollUnsafe() === undefined; t += 500) yield* advance(500)
      yield* Fiber.join(reshard)
      const status = yield* gateway.status
      expect([status.ended, status.shardCount, status.ready]).toEqual([false, 4, true])
    }).pipe(Effect.provide(environment({ recommendedShards: 2 }))))
})
