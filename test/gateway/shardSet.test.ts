/**
 * The shard set's own rules (src/ShardSet.ts), seen through the Gateway: its bookkeeping (cache, readiness,
 * member requests) gets the events it needs whether or not a subscriber wants them, subscribers still get
 * them, a phase change refreshes the status, and a shard that was stopped (or whose Gateway stopped) stays
 * stopped.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Metric, Option, Stream } from "effect"
import { Cache } from "../../src/Cache.ts"
import type { GatewayStatus } from "../../src/GatewayStatus.ts"
import { Intents } from "../../src/protocol/Intents.ts"
import { GatewaySimulator } from "../../src/testing/GatewaySimulator.ts"
import { advance, collect, environment, guildIds, makeGateway, settle } from "./harness.ts"

const memberIntents = Intents.Guilds | Intents.GuildMembers
/** A guild id no simulated session holds: op 8 for it is never answered. */
const silentGuild = "222222222222222222"

/** The op 8 frames the client sent: when, and with which nonce. */
const op8Frames = Effect.gen(function*() {
  const sim = yield* GatewaySimulator
  return (yield* sim.clientFrames({ op: 8 })).map((f) => ({ at: f.at, nonce: (f.d as { readonly nonce?: string }).nonce }))
})

/** A Cache whose GUILD_UPDATE takes 50 ms to apply, as a remote backend (Redis) would. */
const slowCache = Layer.effect(Cache, Effect.map(Cache.makeMemory(), (cache) => ({
  ...cache,
  apply: (dispatch, shardCount) =>
    dispatch.name === "GUILD_UPDATE"
      ? Effect.andThen(Effect.sleep("50 millis"), cache.apply(dispatch, shardCount))
      : cache.apply(dispatch, shardCount)
})))

/** A Cache whose GUILD_UPDATE makes the shard's fiber die (a faulty backend): the shard crashes. */
const crashingCache = Layer.effect(Cache, Effect.map(Cache.makeMemory(), (cache) => ({
  ...cache,
  apply: (dispatch, shardCount) =>
    dispatch.name === "GUILD_UPDATE" && (dispatch.data as { readonly name?: string }).name === "crash"
      ? Effect.die(new Error("cache bug"))
      : cache.apply(dispatch, shardCount)
})))

describe("ShardSet: bookkeeping without subscribers", () => {
  it.effect("the cache follows GUILD_UPDATE and GUILD_DELETE even when no subscriber wants them", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const cache = yield* Cache
      yield* makeGateway()
      yield* advance(6000)
      const [renamed, left] = [guildIds(32)[3]!, guildIds(32)[4]!]
      expect(Option.isSome(yield* cache.guild(left))).toBe(true)
      yield* sim.dispatch("GUILD_UPDATE", { id: renamed, name: "renamed" })
      yield* sim.dispatch("GUILD_DELETE", { id: left }) // the bot left the guild
      yield* advance(100)
      expect(Option.map(yield* cache.guild(renamed), (g) => g.name)).toEqual(Option.some("renamed"))
      expect(yield* cache.guild(left)).toEqual(Option.none())
    }).pipe(Effect.provide(environment({ recommendedShards: 1 }))))

  it.effect("item 53: a READY guild answered by GUILD_DELETE (an outage) counts for readiness even when no subscriber wants it", () =>
    Effect.gen(function*() {
      const gateway = yield* makeGateway({ guildWaitTimeout: "60 seconds" })
      yield* advance(6000)
      expect((yield* gateway.status).ready).toBe(true) // not held back until the guild-wait timeout
    }).pipe(Effect.provide(environment({ recommendedShards: 1, unavailableGuilds: [guildIds(32)[2]!] }))))

  it.effect("item 43: a RATE_LIMITED reaches the member requests even when no subscriber wants it: the request is sent again after retry_after", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway({ intents: memberIntents })
      yield* advance(6000)
      const request = yield* Effect.forkScoped(Stream.runDrain(gateway.requestMembers({ guildId: silentGuild, query: "a", limit: 1 })))
      yield* advance(100)
      const [first] = yield* op8Frames
      yield* sim.dispatch("RATE_LIMITED", { opcode: 8, retry_after: 5, meta: { guild_id: silentGuild, nonce: first!.nonce } })
      yield* advance(4000)
      expect(yield* op8Frames).toHaveLength(1)
      yield* advance(2000)
      const frames = yield* op8Frames
      expect(frames.map((f) => f.nonce)).toEqual([first!.nonce, first!.nonce])
      expect(frames[1]!.at - frames[0]!.at).toBeGreaterThanOrEqual(5000)
      yield* Fiber.interrupt(request)
    }).pipe(Effect.provide(environment({ recommendedShards: 1 }))))
})

describe("ShardSet: subscribers", () => {
  it.effect("subscribers get RESUMED, GUILD_MEMBERS_CHUNK and RATE_LIMITED too, not only the set's bookkeeping", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway({ intents: memberIntents })
      const names = yield* Effect.map(collect(gateway.dispatches()), (events) => () => events.map((d) => d.name))
      yield* advance(6000)
      yield* Stream.runDrain(gateway.requestMembers({ guildId: guildIds(32)[0]!, userIds: ["300000000000000000"] })).pipe(
        Effect.forkScoped,
        Effect.andThen(advance(100))
      )
      yield* sim.dispatch("RATE_LIMITED", { opcode: 3, retry_after: 1, meta: {} })
      yield* sim.drop(0)
      yield* advance(3000)
      expect((yield* sim.clientFrames({ op: 6 })).length).toBe(1)
      for (const name of ["GUILD_MEMBERS_CHUNK", "RATE_LIMITED", "RESUMED"]) expect(names(), name).toContain(name)
    }).pipe(Effect.provide(environment({ recommendedShards: 1, membersPerGuild: 10 }))))

  it.effect("a subscriber gets a guild event once the cache has it: reading the cache then never sees the old guild", () =>
    Effect.gen(function*() {
      // The cache takes 50 ms to apply a GUILD_UPDATE (a remote backend); the subscriber looks the guild up as
      // soon as it gets the event.
      const sim = yield* GatewaySimulator
      const cache = yield* Cache
      const gateway = yield* makeGateway()
      const seen: Array<string | undefined> = []
      yield* Effect.forkScoped(Stream.runForEach(gateway.events("GUILD_UPDATE"), (dispatch) =>
        Effect.map(cache.guild(dispatch.data.id), (guild) => seen.push(Option.getOrUndefined(guild)?.name))))
      yield* advance(6000)
      const id = guildIds(32)[3]!
      yield* sim.dispatch("GUILD_UPDATE", { id, name: "renamed" })
      yield* advance(100)
      expect(seen).toEqual(["renamed"])
    }).pipe(Effect.provide(Layer.merge(environment({ recommendedShards: 1 }), slowCache))))
})

describe("ShardSet: member requests and the shard's phase", () => {
  it.effect("a member request made before its shard is ready is sent once: the start-up phases are no lost session", () =>
    Effect.gen(function*() {
      const gateway = yield* makeGateway({ intents: memberIntents })
      // unanswered, so a second copy sent after the first was written would show
      const request = yield* Effect.forkScoped(Stream.runDrain(gateway.requestMembers({ guildId: silentGuild, query: "a", limit: 1 })))
      yield* advance(6000)
      expect((yield* gateway.status).ready).toBe(true)
      expect(yield* op8Frames).toHaveLength(1)
      expect(request.pollUnsafe()).toBeUndefined() // still waiting for its chunks, not failed with SessionLost
      yield* Fiber.interrupt(request)
    }).pipe(Effect.provide(environment({ recommendedShards: 1 }))))

  it.effect("shutdown fails a member request still waiting to be sent (held by the 30 s rule) with Shutdown", () =>
    Effect.gen(function*() {
      const gateway = yield* makeGateway({ intents: memberIntents })
      yield* advance(6000)
      const all = { guildId: guildIds(32)[0]!, query: "", limit: 0 }
      yield* Stream.runDrain(gateway.requestMembers(all)).pipe(Effect.forkScoped, Effect.andThen(advance(100)))
      const waiting = yield* Effect.forkScoped(Effect.flip(Stream.runDrain(gateway.requestMembers(all))))
      yield* advance(100)
      expect(waiting.pollUnsafe()).toBeUndefined()
      yield* gateway.shutdown()
      yield* settle
      expect(waiting.pollUnsafe()).toBeDefined() // failed at once, not 30 s later
      expect((yield* Fiber.join(waiting)).reason).toBe("Shutdown")
    }).pipe(Effect.provide(environment({ recommendedShards: 1, membersPerGuild: 10 }))))
})

describe("ShardSet: status and supervision", () => {
  it.effect("statusChanges follows a shard's phase: a dropped connection shows, then the resumed shard", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway()
      const changes: Array<GatewayStatus> = yield* collect(gateway.statusChanges)
      yield* advance(6000)
      const before = changes.length
      // The in-process gateway answers at once: refused connections keep the shard from resuming for a while,
      // so that its phases after the drop are there to be seen (status is rebuilt once per scheduler turn).
      yield* sim.refuseConnections("wss://", true)
      yield* sim.drop(0)
      yield* advance(3000)
      expect((yield* sim.refusedConnections).length).toBeGreaterThan(0)
      const whileDown = changes.slice(before).map((s) => s.shards[0]?.phase)
      expect(whileDown.length).toBeGreaterThan(0)
      expect(whileDown.every((p) => p !== "ready")).toBe(true)
      yield* sim.refuseConnections("wss://", false)
      yield* advance(30_000)
      expect((yield* sim.clientFrames({ op: 6 })).length).toBe(1)
      expect(changes[changes.length - 1]!.shards[0]?.phase).toBe("ready")
    }).pipe(Effect.provide(environment({ recommendedShards: 1 }))))

  it.effect("statusChanges shows a crashed shard as stopped", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway()
      const changes: Array<GatewayStatus> = yield* collect(gateway.statusChanges)
      yield* advance(6000)
      yield* sim.dispatch("GUILD_UPDATE", { id: guildIds(2)[1], name: "crash" }) // shard 1 of 2
      yield* advance(100)
      expect(changes[changes.length - 1]!.shards.map((s) => s.phase)).toEqual(["ready", "stopped"])
    }).pipe(Effect.provide(Layer.merge(environment({ recommendedShards: 2 }), crashingCache))))

  it.effect("a shard that crashed is not restarted when the Gateway shuts down during the restart pause", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway()
      yield* advance(6000)
      yield* sim.dispatch("GUILD_UPDATE", { id: guildIds(2)[1], name: "crash" })
      yield* advance(100)
      expect((yield* sim.connections).length).toBe(2)
      yield* gateway.shutdown()
      yield* advance(10_000) // twice the 5 s pause
      expect((yield* sim.connections).length).toBe(2)
      expect((yield* gateway.status).shards.map((s) => s.phase)).toEqual(["stopped", "stopped"])
    }).pipe(Effect.provide(Layer.merge(environment({ recommendedShards: 2 }), crashingCache))))

  it.effect("a shard closed with closeShard stays closed: it is not restarted like a crashed one", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway()
      yield* advance(6000)
      yield* gateway.closeShard(1)
      yield* advance(10_000) // twice the crash-restart pause
      expect((yield* sim.connections).length).toBe(2)
      expect((yield* gateway.status).shards.map((s) => s.phase)).toEqual(["ready", "stopped"])
    }).pipe(Effect.provide(environment({ recommendedShards: 2 }))))

  it.effect("after closeShard, setPresence goes to the shards still running", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway()
      yield* advance(6000)
      yield* gateway.closeShard(1)
      yield* gateway.setPresence({ since: null, activities: [], status: "idle", afk: false })
      yield* advance(100)
      expect((yield* sim.clientFrames({ op: 3 })).map((f) => f.shard?.[0])).toEqual([0])
    }).pipe(Effect.provide(environment({ recommendedShards: 2 }))))

  it.effect("shutdown counts the dispatches of its last seconds in the dispatches metric (flushed every 10 s otherwise)", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway()
      yield* advance(6000) // the periodic flush ran at start only
      for (let i = 0; i < 3; i++) yield* sim.dispatch("MESSAGE_CREATE", { guild_id: guildIds(32)[0], content: `${i}` })
      yield* advance(100)
      yield* gateway.shutdown()
      const counts = (yield* Metric.snapshot)
        .filter((m) => m.id === "discord_gateway_dispatch_events_total" && m.attributes?.event === "MESSAGE_CREATE")
        .map((m) => (m.state as { readonly count: number }).count)
      expect(counts).toEqual([3])
    }).pipe(
      Effect.provide(environment({ recommendedShards: 1 })),
      Effect.provideService(Metric.MetricRegistry, new Map())
    ))
})
