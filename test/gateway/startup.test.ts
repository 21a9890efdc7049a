import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope, Stream } from "effect"
import { Gateway } from "../../src/Gateway.ts"
import { networkMarginMs } from "../../src/IdentifyRateLimiter.ts"
import { ShardStrategy } from "../../src/ShardStrategy.ts"
import { GatewaySimulator } from "../../src/testing/GatewaySimulator.ts"
import { advance, environment, makeGateway } from "./harness.ts"

describe("Gateway startup", () => {
  it.effect("items 16–18: 16 shards at max_concurrency 4 identify bucket by bucket in id order; all ready within 2% of ceil(16/4) × 5 s", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway()
      const events = yield* gateway.subscription({ names: ["GATEWAY_READY"] })
      let readyAt: number | undefined
      yield* Effect.forkScoped(Stream.runForEach(Stream.take(events, 1), () =>
        Effect.clockWith((clock) => Effect.sync(() => readyAt = clock.currentTimeMillisUnsafe()))))
      for (let t = 0; t < 30_000; t += 250) yield* advance(250)

      const identifies = yield* sim.clientFrames({ op: 2 })
      expect(identifies.length).toBe(16)
      const shardOf = (f: typeof identifies[number]) => (f.d as { shard: [number, number] }).shard[0]
      // Item 3: count from /gateway/bot, every id started once.
      expect(identifies.map(shardOf).sort((a, b) => a - b)).toEqual([...Array(16).keys()])
      expect(identifies.every((f) => (f.d as { shard: [number, number] }).shard[1] === 16)).toBe(true)
      // Bucket b (ids 4b…4b+3) identifies at b × (5 s + the limiter's network margin); buckets never overlap
      // (item 18), keys spaced ≥ 5 s (item 16).
      for (const f of identifies) expect(f.at).toBe(Math.floor(shardOf(f) / 4) * (5000 + networkMarginMs))
      const byKey = new Map<number, Array<number>>()
      for (const f of identifies) byKey.set(shardOf(f) % 4, [...(byKey.get(shardOf(f) % 4) ?? []), f.at])
      for (const times of byKey.values()) {
        for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(4950)
      }
      // Item 17: no 5 s window holds more than max_concurrency identifies.
      for (const f of identifies) {
        expect(identifies.filter((g) => g.at >= f.at && g.at < f.at + 5000).length).toBeLessThanOrEqual(4)
      }
      // All ready: the last bucket may only identify at 15 s; the bound is ceil(16/4) × 5 s = 20 s, ± 2 %.
      expect(readyAt).toBeDefined()
      expect(readyAt!).toBeGreaterThanOrEqual(15_000)
      expect(readyAt!).toBeLessThanOrEqual(20_000 * 1.02)
      const status = yield* gateway.status
      expect(status.ready).toBe(true)
      expect(status.shards.map((s) => s.phase)).toEqual(Array(16).fill("ready"))
      expect(status.shards.reduce((n, s) => n + s.guilds, 0)).toBe(32)
      expect((yield* sim.serverFrames({ op: 9 })).length).toBe(0) // the simulator saw no bucket violation
    }).pipe(Effect.provide(environment({ maxConcurrency: 4, recommendedShards: 16 }))))

  it.effect("item 1: the layout comes from GET /gateway/bot; injected url and fixed count skip it", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      yield* makeGateway()
      yield* advance(100)
      const requests = yield* sim.restRequests
      const connections = yield* sim.connections
      expect(requests.length).toBeGreaterThanOrEqual(1)
      expect(requests.every((r) => r.at <= connections[0]!.openedAt)).toBe(true)
      expect(connections[0]!.url.startsWith(sim.options.baseUrl)).toBe(true)
    }).pipe(Effect.provide(environment({ recommendedShards: 2 }))))

  it.effect("item 1: with the gateway URL and a fixed count injected, GET /gateway/bot is not needed by the Gateway", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const before = (yield* sim.restRequests).length // the limiter layer's own fetch
      yield* makeGateway({ gatewayUrl: sim.options.baseUrl, shards: ShardStrategy.fixed(2) })
      yield* advance(6000)
      expect((yield* sim.restRequests).length).toBe(before)
      expect((yield* sim.clientFrames({ op: 2 })).map((f) => (f.d as { shard: Array<number> }).shard)).toEqual([[0, 2], [1, 2]])
    }).pipe(Effect.provide(environment({ recommendedShards: 5 }))))

  it.effect("a fatal close fails the Gateway with its typed error; no further connections", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway()
      const stream = yield* gateway.subscription()
      yield* advance(6000)
      expect((yield* gateway.status).ready).toBe(true)
      yield* sim.close([1, 2], 4014)
      yield* advance(100)
      const error = yield* Effect.flip(gateway.join)
      expect(error._tag).toBe("DisallowedIntents")
      expect((yield* Effect.flip(Stream.runDrain(stream)))._tag).toBe("DisallowedIntents")
      const opened = (yield* sim.connections).length
      yield* advance(120_000)
      expect((yield* sim.connections).length).toBe(opened)
      expect((yield* sim.connections).every((c) => c.closedAt !== null)).toBe(true)
      expect((yield* gateway.status).ended).toBe(true)
    }).pipe(Effect.provide(environment({ recommendedShards: 2 }))))

  it.effect("one shard's reconnect does not disturb the other shards' streams", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway()
      const stream = yield* gateway.subscription({ names: ["MESSAGE_CREATE"] })
      const got: Array<[number, number]> = []
      yield* Effect.forkScoped(Stream.runForEach(stream, (d) => Effect.sync(() => got.push([d.shard, d.seq]))))
      yield* advance(6000)
      const connectionsBefore = yield* sim.connections
      // Guild k routes to shard k % 2.
      yield* sim.dispatch("MESSAGE_CREATE", { guild_id: "4194305", content: "to shard 1" })
      yield* sim.drop([0, 2])
      yield* sim.dispatch("MESSAGE_CREATE", { guild_id: "4194305", content: "to shard 1 again" })
      yield* sim.dispatch("MESSAGE_CREATE", { guild_id: "0", content: "to shard 0 while it is down" })
      yield* advance(5000)
      const shard1 = got.filter(([shard]) => shard === 1).map(([, seq]) => seq)
      expect(shard1.length).toBe(2)
      expect(got.filter(([shard]) => shard === 0).length).toBe(1) // replayed after RESUME, once
      const after = yield* sim.connections
      // Shard 1 kept its connection; shard 0 got a new one.
      const shard1Connections = after.filter((c) => c.shard?.[0] === 1)
      expect(shard1Connections.length).toBe(connectionsBefore.filter((c) => c.shard?.[0] === 1).length)
      expect(shard1Connections.every((c) => c.closedAt === null)).toBe(true)
      expect(after.filter((c) => c.shard?.[0] === 0).length).toBe(2)
    }).pipe(Effect.provide(environment({ recommendedShards: 2 }))))

  it.effect("items 52, 57: guild commands (ops 4, 31, 43) travel on the owning shard, ids above 2^53 included; a malformed op 4 is refused; presence to every shard", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway()
      yield* advance(16_000)
      const bigGuild = "1299999999999868927" // (id >> 22) % 4 = 3, while Number arithmetic would say otherwise
      expect(gateway.shardForGuild(bigGuild)).toBe(Number((BigInt(bigGuild) >> 22n) % 4n))
      expect(gateway.shardForGuild(undefined)).toBe(0)
      yield* gateway.sendToGuild({ op: 4, d: { guild_id: bigGuild, channel_id: null, self_mute: false, self_deaf: false } })
      yield* gateway.sendToGuild({ op: 31, d: { guild_ids: ["0", "4194305", "8388610", "12582915"] } })
      yield* gateway.sendToGuild({ op: 43, d: { guild_id: bigGuild, fields: ["status"] } })
      yield* gateway.setPresence({ since: null, activities: [], status: "idle", afk: false })
      // Item 57: an op 4 that is not well-formed is refused locally and never sent.
      const invalid = yield* Effect.flip(gateway.sendToGuild({
        op: 4,
        d: { guild_id: bigGuild, channel_id: null, self_mute: "yes", self_deaf: false } as never
      }))
      expect(invalid._tag).toBe("InvalidCommand")
      yield* advance(1000)
      const voice = yield* sim.clientFrames({ op: 4 })
      expect(voice.map((f) => f.shard?.[0])).toEqual([gateway.shardForGuild(bigGuild)])
      expect(voice.map((f) => f.d)).toEqual([{ guild_id: bigGuild, channel_id: null, self_mute: false, self_deaf: false }])
      const channelInfo = yield* sim.clientFrames({ op: 43 })
      expect(channelInfo.map((f) => f.shard?.[0])).toEqual([gateway.shardForGuild(bigGuild)])
      const soundboard = yield* sim.clientFrames({ op: 31 })
      expect(soundboard.map((f) => [f.shard?.[0], (f.d as { guild_ids: Array<string> }).guild_ids]).sort())
        .toEqual([[0, ["0"]], [1, ["4194305"]], [2, ["8388610"]], [3, ["12582915"]]])
      const presence = yield* sim.clientFrames({ op: 3 })
      expect(presence.map((f) => f.shard?.[0]).sort()).toEqual([0, 1, 2, 3])
    }).pipe(Effect.provide(environment({ recommendedShards: 4 }))))

  it.effect("restart: a Gateway shut down gracefully is followed by one that RESUMEs every shard", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const first = yield* Scope.make()
      yield* makeGateway().pipe(Scope.provide(first))
      yield* advance(16_000)
      expect((yield* sim.clientFrames({ op: 2 })).length).toBe(4)
      yield* Scope.close(first, Exit.void) // default shutdown: resumable
      const closes = (yield* sim.connections).map((c) => c.closeCode)
      expect(closes).toEqual([4000, 4000, 4000, 4000])
      yield* sim.dispatch("MESSAGE_CREATE", { guild_id: "0", content: "while no process ran" })
      const gateway = yield* makeGateway()
      const stream = yield* gateway.subscription({ names: ["MESSAGE_CREATE"] })
      const got: Array<string> = []
      yield* Effect.forkScoped(Stream.runForEach(stream, (d) => Effect.sync(() => got.push(String((d.data as { content: string }).content)))))
      yield* advance(2000)
      expect((yield* sim.clientFrames({ op: 2 })).length).toBe(4) // no new IDENTIFY
      expect((yield* sim.clientFrames({ op: 6 })).map((f) => f.shard?.[0]).sort()).toEqual([0, 1, 2, 3])
      expect(got).toEqual(["while no process ran"])
    }).pipe(Effect.provide(environment({ recommendedShards: 4 }))))

  it.effect("no fiber or socket outlives the Gateway's Scope", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const scope = yield* Scope.make()
      const gateway = yield* makeGateway({ shutdown: "end-session" }).pipe(Scope.provide(scope))
      yield* advance(6000)
      yield* Scope.close(scope, Exit.void)
      expect((yield* sim.connections).every((c) => c.closedAt !== null && c.closeCode === 1000)).toBe(true)
      const frames = (yield* sim.clientFrames()).length
      yield* advance(300_000) // nothing left to heartbeat, reconnect or identify
      expect((yield* sim.clientFrames()).length).toBe(frames)
      expect((yield* sim.connections).length).toBe(2)
      expect(yield* Effect.exit(gateway.join)).toEqual(Exit.void)
      expect((yield* gateway.status).ended).toBe(true)
    }).pipe(Effect.provide(environment({ recommendedShards: 2 }))))
})

void Gateway
