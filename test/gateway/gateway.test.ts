/**
 * Gateway rules (src/Gateway.ts) that the other Gateway tests did not pin down: what it hands every shard
 * from its own options and from GET /gateway/bot, when it says GATEWAY_READY, and what the status reports
 * during a reshard.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Metric, Stream } from "effect"
import { IdentifyRateLimiter } from "../../src/IdentifyRateLimiter.ts"
import { Intents } from "../../src/protocol/Intents.ts"
import { ShardStrategy } from "../../src/ShardStrategy.ts"
import { GatewaySimulator } from "../../src/testing/GatewaySimulator.ts"
import { advance, collect, environment, guildIds, makeGateway } from "./harness.ts"

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

describe("Gateway: stopping", () => {
  it.effect("shutdown() stops every shard resumably by default (close 4000) and ends the dispatch streams", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway()
      const stream = yield* Effect.forkScoped(Stream.runDrain(gateway.dispatches()))
      yield* advance(6000)
      yield* gateway.shutdown()
      yield* advance(100)
      expect((yield* sim.connections).map((c) => c.closeCode)).toEqual([4000, 4000])
      expect(stream.pollUnsafe()).toBeDefined() // ended, not waiting for the Gateway's Scope to close
    }).pipe(Effect.provide(environment({ recommendedShards: 2 }))))

  it.effect("after a fatal close the other shards end their sessions (close 1000), they are not kept for a RESUME", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway()
      yield* advance(6000)
      yield* sim.close([1, 2], 4014)
      yield* advance(100)
      expect((yield* gateway.status).ended).toBe(true)
      expect((yield* sim.connections).map((c) => c.closeCode)).toEqual([1000, 4014])
    }).pipe(Effect.provide(environment({ recommendedShards: 2 }))))

  it.effect("shutdown during a reshard also stops the new set's shards", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway()
      yield* advance(6000)
      yield* Effect.forkScoped(Effect.ignore(gateway.reshard(4)))
      const newSet = Effect.map(sim.connections, (all) => all.filter((c) => c.shard?.[1] === 4))
      for (let t = 0; t < 30_000 && (yield* newSet).length === 0; t += 100) yield* advance(100)
      expect((yield* newSet).length).toBeGreaterThan(0)
      yield* gateway.shutdown()
      yield* advance(30_000)
      expect((yield* sim.connections).every((c) => c.closedAt !== null)).toBe(true)
    }).pipe(Effect.provide(environment({ recommendedShards: 2 }))))

  it.effect("a reshard after the Gateway ended is refused with reason ended", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway()
      yield* advance(6000)
      yield* gateway.shutdown()
      const attempt = yield* Effect.forkScoped(Effect.flip(gateway.reshard(4)))
      yield* advance(100)
      expect(attempt.pollUnsafe()).toBeDefined() // refused at once
      expect((yield* Fiber.join(attempt)).reason).toBe("ended")
      yield* advance(10_000)
      expect((yield* sim.connections).length).toBe(2)
    }).pipe(Effect.provide(environment({ recommendedShards: 2 }))))
})

describe("Gateway: metrics and the reshard budget", () => {
  it.effect("the dispatch counts reach the metric every 10 s while the Gateway runs", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      yield* makeGateway()
      yield* advance(6000)
      for (let i = 0; i < 3; i++) yield* sim.dispatch("MESSAGE_CREATE", { guild_id: guildIds(32)[0], content: `${i}` })
      const counted = Effect.map(Metric.snapshot, (all) =>
        all.filter((m) => m.id === "discord_gateway_dispatch_events_total" && m.attributes?.event === "MESSAGE_CREATE")
          .map((m) => (m.state as { readonly count: number }).count))
      yield* advance(3000) // 9 s: the flush at 10 s has not run yet
      expect(yield* counted).toEqual([])
      yield* advance(1500)
      expect(yield* counted).toEqual([3])
    }).pipe(
      Effect.provide(environment({ recommendedShards: 1 })),
      Effect.provideService(Metric.MetricRegistry, new Map())
    ))

  it.effect("dispatches are counted by shard and by event name, never by both: one series per shard whatever it sees", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway()
      yield* advance(6000)
      const [onShard0, onShard1] = guildIds(32)
      for (let i = 0; i < 2; i++) yield* sim.dispatch("MESSAGE_CREATE", { guild_id: onShard0, content: `${i}` })
      yield* sim.dispatch("TYPING_START", { guild_id: onShard1 })
      yield* sim.dispatch("MESSAGE_REACTION_ADD", { guild_id: onShard1 })
      yield* advance(100)
      yield* gateway.shutdown()
      const all = yield* Metric.snapshot
      const count = (m: (typeof all)[number]) => (m.state as { readonly count: number }).count
      const byShard = all.filter((m) => m.id === "discord_gateway_dispatches_total")
      const byEvent = all.filter((m) => m.id === "discord_gateway_dispatch_events_total")
      expect(byShard.map((m) => m.attributes).sort((a, b) => String(a?.shard).localeCompare(String(b?.shard))))
        .toEqual([{ shard: "0", shardCount: "2" }, { shard: "1", shardCount: "2" }])
      const eventCount = (name: string) => byEvent.filter((m) => m.attributes?.event === name).map(count)
      expect(eventCount("MESSAGE_CREATE")).toEqual([2])
      expect(eventCount("TYPING_START")).toEqual([1])
      expect(eventCount("MESSAGE_REACTION_ADD")).toEqual([1])
      expect(eventCount("READY")).toEqual([2])
      expect(byEvent.every((m) => Object.keys(m.attributes ?? {}).join() === "event")).toBe(true)
      // every dispatch is in both: the shards' totals and the events' totals agree
      expect(byShard.map(count).reduce((a, b) => a + b)).toBe(byEvent.map(count).reduce((a, b) => a + b))
    }).pipe(
      Effect.provide(environment({ recommendedShards: 2 })),
      Effect.provideService(Metric.MetricRegistry, new Map())
    ))

  it.effect("a reshard counts in the reshards metric", () =>
    Effect.gen(function*() {
      const gateway = yield* makeGateway()
      yield* advance(1000)
      const reshard = yield* Effect.forkScoped(gateway.reshard(4))
      for (let t = 0; t < 60_000 && reshard.pollUnsafe() === undefined; t += 500) yield* advance(500)
      yield* Fiber.join(reshard)
      const counts = (yield* Metric.snapshot).filter((m) => m.id === "discord_gateway_reshards_total")
        .map((m) => (m.state as { readonly count: number }).count)
      expect(counts).toEqual([1])
    }).pipe(
      Effect.provide(environment({ recommendedShards: 2, maxConcurrency: 4 })),
      Effect.provideService(Metric.MetricRegistry, new Map())
    ))

  it.effect("a reshard whose new set needs exactly the session starts left is not refused", () =>
    Effect.gen(function*() {
      const gateway = yield* makeGateway()
      yield* advance(1000) // 2 IDENTIFYs: 4 of 6 left
      const reshard = yield* Effect.forkScoped(gateway.reshard(4))
      for (let t = 0; t < 60_000 && reshard.pollUnsafe() === undefined; t += 500) yield* advance(500)
      yield* Fiber.join(reshard)
      expect((yield* gateway.status).shardCount).toBe(4)
    }).pipe(Effect.provide(environment({
      recommendedShards: 2,
      maxConcurrency: 4,
      sessionStartLimit: { total: 1000, remaining: 6, resetAfterMs: 3_600_000 }
    }))))
})

describe("Gateway: after a reshard's switch", () => {
  it.effect("the Gateway says GATEWAY_READY again for the new set", () =>
    Effect.gen(function*() {
      const gateway = yield* makeGateway()
      const ready = yield* collect(gateway.events("GATEWAY_READY"))
      yield* advance(1000)
      expect(ready.map((d) => d.data)).toEqual([{ shards: 2 }])
      const reshard = yield* Effect.forkScoped(gateway.reshard(4))
      for (let t = 0; t < 60_000 && reshard.pollUnsafe() === undefined; t += 500) yield* advance(500)
      yield* Fiber.join(reshard)
      expect(ready.map((d) => d.data)).toEqual([{ shards: 2 }, { shards: 4 }])
    }).pipe(Effect.provide(environment({ recommendedShards: 2, maxConcurrency: 4 }))))

  it.effect("a member-request stream made before a reshard and run after it goes to the new set", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway({ intents: Intents.Guilds | Intents.GuildMembers })
      yield* advance(1000)
      const stream = gateway.requestMembers({ guildId: guildIds(32)[5]!, userIds: ["300000000000000000"] }) // not run yet
      const reshard = yield* Effect.forkScoped(gateway.reshard(4))
      for (let t = 0; t < 60_000 && reshard.pollUnsafe() === undefined; t += 500) yield* advance(500)
      yield* Fiber.join(reshard)
      const request = yield* Effect.forkScoped(Stream.runCollect(stream))
      yield* advance(100)
      expect((yield* Fiber.join(request)).length).toBe(1)
      expect((yield* sim.clientFrames({ op: 8 })).map((f) => f.shard?.[1])).toEqual([4])
    }).pipe(Effect.provide(environment({ recommendedShards: 2, maxConcurrency: 4, membersPerGuild: 10 }))))

  it.effect("a presence set during a reshard also reaches the new set's shards that have already identified", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway()
      yield* advance(6000)
      const reshard = yield* Effect.forkScoped(gateway.reshard(4))
      const identified = Effect.map(sim.clientFrames({ op: 2 }), (all) => all.filter((f) => f.shard?.[1] === 4))
      for (let t = 0; t < 30_000 && (yield* identified).length === 0; t += 100) yield* advance(100)
      expect((yield* identified).length).toBeLessThan(4) // mid-reshard: max_concurrency 1, 5 s apart
      yield* gateway.setPresence({ since: null, activities: [], status: "dnd", afk: false })
      for (let t = 0; t < 120_000 && reshard.pollUnsafe() === undefined; t += 500) yield* advance(500)
      yield* Fiber.join(reshard)
      // the shards that identified before setPresence got it as op 3; the later ones identified with it
      const op3 = (yield* sim.clientFrames({ op: 3 })).filter((f) => f.shard?.[1] === 4).map((f) => f.shard?.[0])
      const identifies = (yield* sim.clientFrames({ op: 2 })).filter((f) => f.shard?.[1] === 4)
      for (const id of [0, 1, 2, 3]) {
        const identify = identifies.find((f) => f.shard?.[0] === id)!
        const status = (identify.d as { readonly presence?: { readonly status?: string } }).presence?.status
        expect(status === "dnd" || op3.includes(id), `new shard ${id}`).toBe(true)
      }
    }).pipe(Effect.provide(environment({ recommendedShards: 2 }))))

  it.effect("the old set stays up after the dedup window while a member request on it is still answered", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway({ intents: Intents.Guilds | Intents.GuildMembers })
      yield* advance(1000)
      const silentGuild = "222222222222222222" // no simulated session answers op 8 for it
      const request = yield* Effect.forkScoped(Stream.runCollect(gateway.requestMembers({ guildId: silentGuild, query: "a", limit: 1 })))
      yield* advance(100)
      const nonce = ((yield* sim.clientFrames({ op: 8 }))[0]!.d as { readonly nonce: string }).nonce
      const reshard = yield* Effect.forkScoped(gateway.reshard(4))
      const phase = Effect.map(gateway.status, (s) => s.reshard?.phase)
      for (let t = 0; t < 60_000 && (yield* phase) !== "draining"; t += 100) yield* advance(100)
      expect(yield* phase).toBe("draining")
      yield* advance(10_000 + 2_000) // past the dedup window, within the drain timeout (10 s more)
      // the answer reaches the guild's shard in both sets; the old set's member requests know the nonce
      yield* sim.dispatch("GUILD_MEMBERS_CHUNK", { guild_id: silentGuild, members: [], chunk_index: 0, chunk_count: 1, nonce })
      yield* advance(100)
      expect((yield* Fiber.join(request)).length).toBe(1)
      for (let t = 0; t < 60_000 && reshard.pollUnsafe() === undefined; t += 500) yield* advance(500)
      yield* Fiber.join(reshard)
    }).pipe(Effect.provide(environment({ recommendedShards: 2, maxConcurrency: 4 }))))
})

describe("Gateway: automatic reshards", () => {
  it.effect("item 36: a 4011 reshards to /gateway/bot's count when it is larger than the current count × 2", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway({ shards: ShardStrategy.fixed(2) })
      yield* advance(1000)
      yield* sim.close([1, 2], 4011)
      for (let t = 0; t < 60_000 && (yield* gateway.status).shardCount === 2; t += 500) yield* advance(500)
      expect((yield* gateway.status).shardCount).toBe(8) // max(recommended 8, 2 × 2)
    }).pipe(Effect.provide(environment({ recommendedShards: 8, maxConcurrency: 8 }))))

  it.effect("the periodic check reshards when /gateway/bot recommends more shards than are running", () =>
    Effect.gen(function*() {
      const gateway = yield* makeGateway({ shards: ShardStrategy.fixed(2), reshard: { check: { interval: "30 seconds" } } })
      yield* advance(1000)
      expect((yield* gateway.status).shardCount).toBe(2) // 16 guilds per shard: far under the default 1000
      for (let t = 0; t < 65_000 && (yield* gateway.status).reshard?.phase !== "done"; t += 500) yield* advance(500)
      expect((yield* gateway.status).shardCount).toBe(4)
    }).pipe(Effect.provide(environment({ recommendedShards: 4, maxConcurrency: 4 }))))

  it.effect("by default the periodic check reshards once a shard holds more than 1000 guilds", () =>
    Effect.gen(function*() {
      const gateway = yield* makeGateway({ reshard: { check: { interval: "30 seconds" } } })
      yield* advance(1000)
      expect((yield* gateway.status).shards.map((s) => s.guilds)).toEqual([1001])
      for (let t = 0; t < 65_000 && (yield* gateway.status).reshard?.phase !== "done"; t += 500) yield* advance(500)
      expect((yield* gateway.status).shardCount).toBe(2) // max(recommended 1, 1 × 2)
    }).pipe(Effect.provide(environment({ recommendedShards: 1, guilds: guildIds(1001) }))))

  it.effect("the periodic check does not reshard while the busiest shard holds exactly maxGuildsPerShard guilds", () =>
    Effect.gen(function*() {
      const gateway = yield* makeGateway({ reshard: { check: { interval: "30 seconds", maxGuildsPerShard: 8 } } })
      yield* advance(1000)
      expect((yield* gateway.status).shards.map((s) => s.guilds)).toEqual([8, 8, 8, 8])
      for (let t = 0; t < 65_000; t += 500) yield* advance(500) // two checks
      const status = yield* gateway.status
      expect([status.shardCount, status.reshard]).toEqual([4, null])
    }).pipe(Effect.provide(environment({ recommendedShards: 4, maxConcurrency: 4 }))))
})

describe("Gateway: the staleness watchdog", () => {
  it.effect("only a ready shard that holds guilds is reported stale; the report shows in statusChanges and in the stale-shards metric", () =>
    Effect.gen(function*() {
      const gateway = yield* makeGateway({ staleAfter: "60 seconds" })
      const changes = yield* collect(gateway.statusChanges)
      yield* advance(6000)
      expect((yield* gateway.status).shards.map((s) => s.guilds)).toEqual([1, 0])
      for (let t = 0; t < 80_000; t += 1000) yield* advance(1000)
      // shard 1 has no guild: no dispatch is expected of it
      expect(changes[changes.length - 1]!.shards.map((s) => [s.phase, s.stale])).toEqual([["ready", true], ["ready", false]])
      const reported = (yield* Metric.snapshot).filter((m) => m.id === "discord_gateway_stale_shards_total")
        .map((m) => (m.state as { readonly count: number }).count)
      expect(reported).toEqual([1])
    }).pipe(
      Effect.provide(environment({ recommendedShards: 2, guilds: [guildIds(32)[0]!] })),
      Effect.provideService(Metric.MetricRegistry, new Map())
    ))

  it.effect("a shard that cannot reconnect is not reported stale: it is not ready, its connection is the problem", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway({ staleAfter: "60 seconds" })
      yield* advance(6000)
      yield* sim.refuseConnections("wss://", true)
      yield* sim.drop(0)
      for (let t = 0; t < 80_000; t += 1000) yield* advance(1000)
      const [shard] = (yield* gateway.status).shards
      expect(shard!.phase).not.toBe("ready")
      expect(shard!.stale).toBe(false)
    }).pipe(Effect.provide(environment({ recommendedShards: 1 }))))
})

describe("Gateway: guild commands", () => {
  it.effect("item 52: op 31 is split per owning shard, each shard's frame listing all of its guilds in order", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway()
      yield* advance(6000)
      const [g0, g1, g2, g3] = guildIds(4) // guild k routes to shard k % 2
      yield* gateway.sendToGuild({ op: 31, d: { guild_ids: [g0!, g1!, g2!, g3!] } })
      yield* advance(100)
      const frames = yield* sim.clientFrames({ op: 31 })
      expect(frames.map((f) => [f.shard?.[0], (f.d as { readonly guild_ids: Array<string> }).guild_ids]).sort())
        .toEqual([[0, [g0, g2]], [1, [g1, g3]]])
    }).pipe(Effect.provide(environment({ recommendedShards: 2 }))))
})

describe("Gateway: commands to a shard that is not running", () => {
  it.effect("ShardNotRunning says whether the shard is stopped or not one of this process's shards", () =>
    Effect.gen(function*() {
      const gateway = yield* makeGateway()
      yield* advance(6000)
      yield* gateway.closeShard(1)
      const presence = { since: null, activities: [], status: "online", afk: false } as const
      const stopped = yield* Effect.flip(gateway.send(1, { op: 3, d: presence }))
      expect(stopped.message).toBe("shard 1 is not running here: it is stopped")
      const elsewhere = yield* Effect.flip(gateway.openShard(7))
      expect(elsewhere.message).toBe("shard 7 is not running here: this process runs shards 0, 1 of 2")
    }).pipe(Effect.provide(environment({ recommendedShards: 2 }))))
})
