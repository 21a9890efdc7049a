import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Scope, Stream } from "effect"
import { Cache } from "../../src/Cache.ts"
import { HeartbeatTimer } from "../../src/HeartbeatTimer.ts"
import { Intents } from "../../src/protocol/Intents.ts"
import { GatewaySimulator } from "../../src/testing/GatewaySimulator.ts"
import { advance, collect, environment, guildIds, makeGateway, settle } from "./harness.ts"

describe("Gateway readiness (item 53)", () => {
  it.effect("SHARD_READY after every READY guild got GUILD_CREATE or GUILD_DELETE; then GATEWAY_READY", () =>
    Effect.gen(function*() {
      const gateway = yield* makeGateway()
      const events = yield* collect(yield* gateway.subscription())
      yield* advance(6000)
      const names = events.map((d) => `${d.name}:${d.shard}`)
      // shard 0: READY, its guilds (one in an outage: GUILD_DELETE), then SHARD_READY.
      const shard0 = names.filter((n) => n.endsWith(":0"))
      expect(shard0[0]).toBe("READY:0")
      expect(shard0.filter((n) => n.startsWith("GUILD_")).length).toBe(16)
      expect(shard0.indexOf("SHARD_READY:0")).toBe(shard0.filter((n) => !n.startsWith("GATEWAY")).length - 1)
      expect(names.filter((n) => n.startsWith("GATEWAY_READY")).length).toBe(1)
      expect(names.indexOf("GATEWAY_READY:0")).toBeGreaterThan(names.indexOf("SHARD_READY:1"))
      const cache = yield* Cache
      expect(yield* cache.unavailableCount()).toBe(1) // the outage guild is kept, unavailable (item 54)
      expect((yield* gateway.status).shards.map((s) => [s.ready, s.guilds])).toEqual([[true, 16], [true, 16]])
    }).pipe(Effect.provide(environment({ recommendedShards: 2, unavailableGuilds: [guildIds(32)[2]!] }))))

  it.effect("a guild that never answers: the shard is ready after the guild-wait timeout, and says how many were missing", () =>
    Effect.gen(function*() {
      const gateway = yield* makeGateway({ guildWaitTimeout: "10 seconds" })
      const ready = yield* collect(gateway.events("SHARD_READY"))
      yield* advance(9000)
      expect(ready).toEqual([])
      expect((yield* gateway.status).ready).toBe(false)
      yield* advance(1500)
      expect(ready.map((d) => d.data)).toEqual([{ shardId: 0, guilds: 32, missing: 1 }])
      expect((yield* gateway.status).ready).toBe(true)
    }).pipe(Effect.provide(environment({ recommendedShards: 1, silentGuilds: [guildIds(32)[5]!] }))))

  it.effect("the guild-wait timeout counts from the last guild event, not from READY", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const late = guildIds(32)[5]! // READY lists 5 and 6; neither answers on its own
      const gateway = yield* makeGateway({ guildWaitTimeout: "10 seconds" })
      const ready = yield* collect(gateway.events("SHARD_READY"))
      yield* advance(8000)
      yield* sim.dispatch("GUILD_CREATE", { id: late, name: "late" }) // progress: the wait starts again
      yield* advance(9000)
      expect(ready).toEqual([])
      yield* advance(1500)
      expect(ready.map((d) => d.data)).toEqual([{ shardId: 0, guilds: 32, missing: 1 }]) // 6 never answered
    }).pipe(Effect.provide(environment({ recommendedShards: 1, silentGuilds: guildIds(32).slice(5, 7) }))))

  it.effect("a new READY starts readiness over: not ready until its guilds load, then SHARD_READY again", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway({ guildWaitTimeout: "10 seconds" })
      const ready = yield* collect(gateway.events("SHARD_READY"))
      yield* advance(11_000)
      expect(ready.length).toBe(1)
      yield* sim.invalidateSession([0, 1], false) // a new session (IDENTIFY after 1–5 s), READY again
      yield* advance(6000)
      expect((yield* sim.clientFrames({ op: 2 })).length).toBe(2)
      expect((yield* gateway.status).ready).toBe(false) // the silent guild holds it back again
      yield* advance(10_000)
      expect(ready.map((d) => d.data)).toEqual([
        { shardId: 0, guilds: 32, missing: 1 },
        { shardId: 0, guilds: 32, missing: 1 }
      ])
      expect((yield* gateway.status).ready).toBe(true)
    }).pipe(Effect.provide(environment({ recommendedShards: 1, silentGuilds: [guildIds(32)[5]!] }))))

  it.effect("a shard RESUMEd in a new process (a saved session) is ready at RESUMED: its guilds loaded before", () =>
    Effect.gen(function*() {
      const first = yield* Scope.make()
      yield* makeGateway().pipe(Scope.provide(first))
      yield* advance(6000)
      yield* Scope.close(first, Exit.void) // resumable: the session is saved
      const gateway = yield* makeGateway()
      const ready = yield* collect(gateway.events("SHARD_READY"))
      yield* advance(1000)
      expect((yield* GatewaySimulator.use((sim) => sim.clientFrames({ op: 6 }))).length).toBe(1)
      expect(ready.map((d) => d.shard)).toEqual([0])
      expect((yield* gateway.status).ready).toBe(true)
    }).pipe(Effect.provide(environment({ recommendedShards: 1 }))))

  it.effect("a RESUME while the guilds load is not readiness: the shard still waits for them", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway({ guildWaitTimeout: "10 seconds" })
      const ready = yield* collect(gateway.events("SHARD_READY"))
      yield* advance(3000)
      yield* sim.drop([0, 1]) // the shard RESUMEs; the silent guild is still missing
      yield* advance(3000)
      expect((yield* sim.clientFrames({ op: 6 })).length).toBe(1)
      expect(ready).toEqual([])
      expect((yield* gateway.status).ready).toBe(false)
      yield* advance(5000)
      expect(ready.map((d) => d.data)).toEqual([{ shardId: 0, guilds: 32, missing: 1 }])
    }).pipe(Effect.provide(environment({ recommendedShards: 1, silentGuilds: [guildIds(32)[5]!] }))))

  it.effect("a RESUME keeps readiness: a ready shard that RESUMEs sends no second SHARD_READY", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway()
      const ready = yield* collect(gateway.events("SHARD_READY"))
      yield* advance(1000)
      expect(ready.length).toBe(1)
      yield* sim.drop([0, 1])
      yield* advance(3000)
      expect((yield* sim.clientFrames({ op: 6 })).length).toBe(1)
      expect(ready.length).toBe(1)
      expect((yield* gateway.status).ready).toBe(true)
    }).pipe(Effect.provide(environment({ recommendedShards: 1 }))))

  it.effect("without the GUILDS intent a shard is ready right after READY", () =>
    Effect.gen(function*() {
      const gateway = yield* makeGateway({ intents: Intents.GuildMessages })
      const ready = yield* collect(gateway.events("SHARD_READY"))
      yield* advance(100)
      expect(ready.map((d) => d.data)).toEqual([{ shardId: 0, guilds: 32, missing: 0 }])
    }).pipe(Effect.provide(environment({ recommendedShards: 1 }))))
})

describe("Gateway member requests (items 55, 43)", () => {
  it.effect("a member request completes after chunk_count chunks on the owning shard", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway({ intents: Intents.Guilds | Intents.GuildMembers })
      yield* advance(6000)
      const guild = guildIds(32)[3]! // shard 1 of 2
      const fiber = yield* Effect.forkScoped(Stream.runCollect(gateway.requestMembers({ guildId: guild, query: "", limit: 0 })))
      yield* advance(1000)
      const chunks = yield* Fiber.join(fiber)
      expect(chunks.length).toBe(3)
      expect(chunks.reduce((n, c) => n + c.members.length, 0)).toBe(2500)
      expect((yield* sim.clientFrames({ op: 8 })).map((f) => f.shard?.[0])).toEqual([1])
    }).pipe(Effect.provide(environment({ recommendedShards: 2, membersPerGuild: 2500, memberChunkSize: 1000 }))))

  it.effect("a member request fails cleanly when its shard's session is lost", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway({ intents: Intents.Guilds | Intents.GuildMembers })
      yield* advance(6000)
      yield* sim.withholdAcks([1, 2], true) // chunks will not arrive
      const fiber = yield* Effect.forkScoped(Effect.flip(Stream.runCollect(gateway.requestMembers({ guildId: guildIds(32)[3]!, query: "a", limit: 10 }))))
      yield* advance(100)
      yield* sim.drop([1, 2])
      yield* advance(100)
      const error = yield* Fiber.join(fiber)
      expect(error.reason).toBe("SessionLost")
    }).pipe(Effect.provide(environment({ recommendedShards: 2 }))))

  it.effect("member requests fail (not hang) when the Gateway shuts down", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway({ intents: Intents.Guilds | Intents.GuildMembers })
      yield* advance(6000)
      yield* sim.withholdAcks(0, true)
      const fiber = yield* Effect.forkScoped(Effect.flip(Stream.runCollect(gateway.requestMembers({ guildId: guildIds(32)[0]!, query: "a", limit: 10 }))))
      yield* advance(100)
      yield* gateway.shutdown()
      yield* settle
      const error = yield* Fiber.join(fiber)
      // The shard stopping ends its session first (SessionLost); either way the request fails, never hangs.
      expect(["SessionLost", "Shutdown"]).toContain(error.reason)
    }).pipe(Effect.provide(environment({ recommendedShards: 1 }))))
})

describe("Gateway heartbeats (items 4, 6)", () => {
  it.effect("on the Gateway's shared heartbeat timer each shard keeps its own schedule: first beat within I of Hello, then every I", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      yield* makeGateway()
      // Four shards at max_concurrency 1 identify 5 s apart; the last has beaten several times by 24 s.
      for (let t = 0; t < 24_000; t += 100) yield* advance(100)
      const frames = yield* sim.frames
      const connections = yield* sim.connections
      expect(connections.length).toBe(4)
      const I = 1500
      for (const connection of connections) {
        expect(connection.closedAt, `connection ${connection.id} stayed up`).toBe(null)
        const on = frames.filter((f) => f.connectionId === connection.id)
        const hello = on.find((f) => f.direction === "server" && f.op === 10)!.at
        const beats = on.filter((f) => f.direction === "client" && f.op === 1).map((f) => f.at)
        expect(beats.length, `connection ${connection.id} beat`).toBeGreaterThan(4)
        expect(beats[0]! - hello, "item 4: the first beat within [0, I] of Hello").toBeGreaterThanOrEqual(0)
        expect(beats[0]! - hello, "item 4: the first beat within [0, I] of Hello").toBeLessThanOrEqual(I)
        // Under TestClock the timer runs each beat at exactly its time: every gap is I.
        expect(beats.slice(1).map((at, i) => at - beats[i]!), "item 6: every I").toEqual(beats.slice(1).map(() => I))
      }
    }).pipe(Effect.provide(environment({ recommendedShards: 4 }))))

  it.effect("a HeartbeatTimer in the application's context is the one the Gateway's shards use", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const timer = yield* HeartbeatTimer.make
      let registered = 0
      const counting = HeartbeatTimer.of({
        every: (scope, firstDelayMs, schedule, target) =>
          Effect.andThen(Effect.sync(() => registered++), timer.every(scope, firstDelayMs, schedule, target))
      })
      yield* makeGateway().pipe(Effect.provideService(HeartbeatTimer, counting))
      for (let t = 0; t < 10_000; t += 100) yield* advance(100)
      // One registration per connection (two shards, one connection each), and their beats went out.
      expect(registered).toBe(2)
      expect((yield* sim.connections).length).toBe(2)
      expect((yield* sim.clientFrames({ op: 1 })).length).toBeGreaterThanOrEqual(8)
    }).pipe(Effect.provide(environment({ recommendedShards: 2 }))))
})

describe("Gateway control and supervision", () => {
  it.effect("close, open and restart one shard at run time; restart RESUMEs", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway()
      yield* advance(6000)
      yield* gateway.closeShard(1)
      expect((yield* gateway.status).shards.map((s) => s.phase)).toEqual(["ready", "stopped"])
      expect((yield* sim.connections).find((c) => c.shard?.[0] === 1)?.closeCode).toBe(1000)
      yield* gateway.openShard(1)
      yield* advance(6000)
      expect((yield* gateway.status).shards.map((s) => s.phase)).toEqual(["ready", "ready"])
      expect((yield* sim.clientFrames({ op: 2 })).filter((f) => f.shard?.[0] === 1).length).toBe(2)
      yield* gateway.restartShard(0)
      yield* advance(1000)
      expect((yield* sim.clientFrames({ op: 6 })).map((f) => f.shard?.[0])).toEqual([0])
      expect((yield* gateway.openShard(7).pipe(Effect.flip))._tag).toBe("ShardNotRunning")
      expect((yield* gateway.send(7, { op: 3, d: { since: null, activities: [], status: "online", afk: false } }).pipe(Effect.flip))._tag).toBe("ShardNotRunning")
    }).pipe(Effect.provide(environment({ recommendedShards: 2 }))))

  it.effect("opening a shard that is running does nothing: still one connection per shard (item 30)", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway()
      yield* advance(6000)
      yield* gateway.openShard(0)
      yield* advance(6000)
      expect((yield* sim.connections).map((c) => [c.shard?.[0], c.closedAt])).toEqual([[0, null], [1, null]])
      expect(yield* sim.clientFrames({ op: 2 })).toHaveLength(2)
    }).pipe(Effect.provide(environment({ recommendedShards: 2 }))))

  it.effect("mass reconnect after an outage: every shard RESUMEs at once, taking no identify slot", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway()
      yield* advance(21_000)
      expect((yield* gateway.status).ready).toBe(true)
      for (let id = 0; id < 4; id++) yield* sim.drop([id, 4])
      yield* advance(1500)
      const resumes = yield* sim.clientFrames({ op: 6 })
      expect(resumes.length).toBe(4)
      expect(Math.max(...resumes.map((f) => f.at)) - Math.min(...resumes.map((f) => f.at))).toBeLessThan(1500)
      expect((yield* sim.clientFrames({ op: 2 })).length).toBe(4) // no new IDENTIFY
      expect((yield* gateway.status).shards.every((s) => s.phase === "ready")).toBe(true)
    }).pipe(Effect.provide(environment({ recommendedShards: 4 }))))

  it.effect("staleness watchdog: a shard with guilds and no dispatch for staleAfter is reported, and restarted when asked", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway({ staleAfter: "60 seconds", restartStaleShards: true })
      yield* advance(6000)
      expect((yield* gateway.status).shards.map((s) => s.stale)).toEqual([false])
      // Heartbeats keep flowing; dispatches stop (the pain: events stop while heartbeats are fine).
      for (let t = 0; t < 80_000; t += 1000) yield* advance(1000)
      const resumes = yield* sim.clientFrames({ op: 6 })
      expect(resumes.length).toBeGreaterThanOrEqual(1) // restarted: closed resumable, RESUMEd
      expect((yield* sim.clientFrames({ op: 2 })).length).toBe(1)
    }).pipe(Effect.provide(environment({ recommendedShards: 1 }))))

  it.effect("by default the staleness watchdog only reports: the stale shard is marked and keeps its connection", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway({ staleAfter: "60 seconds" })
      yield* advance(6000)
      for (let t = 0; t < 80_000; t += 1000) yield* advance(1000)
      expect((yield* gateway.status).shards.map((s) => [s.phase, s.stale])).toEqual([["ready", true]])
      expect(yield* sim.clientFrames({ op: 6 })).toEqual([])
      expect((yield* sim.connections).length).toBe(1)
    }).pipe(Effect.provide(environment({ recommendedShards: 1 }))))

  it.effect("a slow 'suspend' subscriber holds the shards' readers but not their heartbeats", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway()
      const unread = yield* gateway.subscription({ capacity: 4 }) // subscribed, never read
      void unread
      yield* advance(6000)
      for (let i = 0; i < 50; i++) yield* sim.dispatch("MESSAGE_CREATE", { guild_id: "0", content: `${i}` })
      for (let t = 0; t < 120_000; t += 1000) yield* advance(1000)
      // Two minutes of a blocked reader: the connection stayed up, beats were ACKed, no zombie close.
      expect((yield* sim.connections).length).toBe(1)
      expect((yield* sim.connections)[0]!.closedAt).toBe(null)
      expect((yield* sim.clientFrames({ op: 1 })).length).toBeGreaterThanOrEqual(80)
    }).pipe(Effect.provide(environment({ recommendedShards: 1 }))))

  it.effect("bad configuration fails before any connection, saying what to fix", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const error = yield* Effect.flip(makeGateway({ intents: 1 << 17, largeThreshold: 20 }))
      expect(error._tag).toBe("GatewayConfigError")
      expect(error.message).toMatch(/intents/)
      expect(error.message).toMatch(/large/i)
      expect((yield* sim.connections).length).toBe(0)
    }).pipe(Effect.provide(environment({ recommendedShards: 1 }))))

  it.effect("statusChanges streams the status as shards come up", () =>
    Effect.gen(function*() {
      const gateway = yield* makeGateway()
      const changes = yield* collect(gateway.statusChanges)
      yield* advance(6000)
      expect(changes.length).toBeGreaterThan(2)
      expect(changes[0]!.ready).toBe(false)
      expect(changes[changes.length - 1]!.ready).toBe(true)
    }).pipe(Effect.provide(environment({ recommendedShards: 2 }))))
})

describe("Gateway supervision", () => {
  it.effect("a shard that crashes (a defect) closes 4000, is restarted alone after 5 s and RESUMEs past the event that crashed it", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway()
      yield* advance(6000)
      expect((yield* gateway.status).ready).toBe(true)
      const dispatches = yield* collect(gateway.dispatches())
      // guild 1 routes to shard 1 of 2: its GUILD_UPDATE makes the (faulty) cache die in shard 1's fiber
      yield* sim.dispatch("GUILD_UPDATE", { id: guildIds(2)[1], name: "crash" })
      yield* advance(100)
      expect((yield* gateway.status).shards.map((s) => s.phase)).toEqual(["ready", "stopped"])
      // closed resumable (PROTOCOL.md §1.10), not with the Scope's 1000 that would end the session
      expect((yield* sim.connections).map((c) => c.closeCode)).toEqual([null, 4000])
      yield* advance(4800)
      expect((yield* sim.connections).length).toBe(2) // not before the pause
      yield* advance(3000)
      const after = yield* sim.connections
      // one new connection, for shard 1: a RESUME of the kept session; no new IDENTIFY; no crash loop
      expect(after.length).toBe(3)
      expect((yield* sim.clientFrames({ op: 6 })).length).toBe(1)
      expect((yield* sim.clientFrames({ op: 2 })).length).toBe(2)
      expect(after.map((c) => c.closeCode)).toEqual([null, 4000, null])
      expect((yield* gateway.status).shards.map((s) => s.phase)).toEqual(["ready", "ready"])
      yield* advance(30_000)
      expect((yield* sim.connections).length).toBe(3)
      // both shards deliver
      yield* sim.dispatch("MESSAGE_CREATE", { id: "to-0", channel_id: "1", guild_id: guildIds(2)[0], content: "a" })
      yield* sim.dispatch("MESSAGE_CREATE", { id: "to-1", channel_id: "1", guild_id: guildIds(2)[1], content: "b" })
      yield* advance(100)
      const ids = dispatches.filter((d) => d.name === "MESSAGE_CREATE").map((d) => (d.data as { readonly id?: string }).id)
      expect(ids).toEqual(["to-0", "to-1"])
    }).pipe(Effect.provide(Layer.merge(
      environment({ recommendedShards: 2 }),
      Layer.effect(Cache, Effect.map(Cache.makeMemory(), (cache) => ({
        ...cache,
        apply: (dispatch, shardCount) =>
          dispatch.name === "GUILD_UPDATE" && (dispatch.data as { readonly name?: string }).name === "crash"
            ? Effect.die(new Error("cache bug"))
            : cache.apply(dispatch, shardCount)
      })))
    ))))
})
