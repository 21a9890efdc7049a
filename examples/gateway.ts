/**
 * Example: a multi-shard Gateway against the in-process gateway simulator — no token, no network.
 *
 * The wiring a real bot uses, with the simulator in place of Discord: `GatewayInfo` asks GET /gateway/bot
 * (answered by `SimulatorHttpClient`), which gives the gateway URL, the recommended shard count (4 here) and
 * the identify limits (`IdentifyRateLimiter.layerFromGatewayInfo`, PROTOCOL.md §1.1 and §3, items 1, 3,
 * 16–18). The program then reads typed MESSAGE_CREATEs from every shard as one stream, prints the status,
 * asks for every member of one guild (op 8 on the shard owning it, answered in chunks; items 52, 55), and
 * shuts down gracefully: every shard saves its session and closes with 4000, so a restarted process
 * RESUMEs instead of identifying (§1.10).
 *
 * Run it: `node_modules/.bin/node examples/gateway.ts` (well under a second of gateway time).
 * `program` is exported so the test suite runs it under TestClock (test/examples.test.ts).
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect, Fiber, Layer, Redacted, Stream } from "effect"
import { Cache, Gateway, GatewayInfo, IdentifyRateLimiter, Intents, SessionStore } from "effect-discord-gateway"
import { GatewaySimulator, SimulatorHttpClient } from "effect-discord-gateway/testing"

const token = "simulated-token"

/** Eight guild ids; guild k is (k << 22) + k, so with 4 shards it belongs to shard k % 4. */
const guilds = Array.from({ length: 8 }, (_, k) => String((BigInt(k) << 22n) + BigInt(k)))

/** What the run observed, for the test suite (and the last log line). */
export interface GatewaySummary {
  readonly shardCount: number
  /** Shard id → the MESSAGE_CREATE contents it delivered, in order. */
  readonly messagesByShard: Readonly<Record<number, ReadonlyArray<string>>>
  /** Every shard of this process was ready (guilds loaded) before the messages were sent. */
  readonly allReady: boolean
  /** The member request: the shard it went to, its chunks, and the members they carried. */
  readonly members: { readonly shard: number; readonly chunks: number; readonly members: number }
  /** The codes the client closed its connections with at shutdown (4000: resumable). */
  readonly closeCodes: ReadonlyArray<number | null>
  /** The Gateway had ended once `shutdown` returned. */
  readonly ended: boolean
}

const run = Effect.gen(function*() {
  const gateway = yield* Gateway
  const sim = yield* GatewaySimulator

  // `events(name)` subscribes to one event name; `data` is typed as MESSAGE_CREATE's. The stream starts
  // (and subscribes) on its own fiber; `subscription()` subscribes synchronously when that matters.
  const messages = yield* gateway.events("MESSAGE_CREATE").pipe(
    Stream.tap((m) => Effect.log(`shard ${m.shard} #${m.seq} in guild ${m.data.guild_id}: ${m.data.content}`)),
    Stream.take(guilds.length),
    Stream.runCollect,
    Effect.forkScoped
  )

  // Wait until every shard has loaded its guilds (READY answered by GUILD_CREATE/DELETE, item 53).
  const ready = yield* gateway.statusChanges.pipe(Stream.filter((s) => s.ready), Stream.runHead)
  const status = yield* gateway.status
  yield* Effect.log(`ready: ${status.shardCount} shards`)
  for (const s of status.shards) {
    yield* Effect.log(`  shard ${s.shardId}: ${s.phase}, ${s.guilds} guilds, session ${s.sessionId}, seq ${s.sequence}`)
  }

  // One message in each guild: each arrives on the shard that owns the guild, in one merged stream.
  for (const [k, guildId] of guilds.entries()) {
    yield* sim.dispatch("MESSAGE_CREATE", {
      id: String(2_000 + k),
      channel_id: "222079895583457280",
      guild_id: guildId,
      content: `message ${k}`,
      author: { id: "53908232506183680", username: "someone" }
    })
  }
  const delivered = Array.from(yield* Fiber.join(messages))
  const messagesByShard: Record<number, Array<string>> = {}
  for (const m of delivered) (messagesByShard[m.shard] ??= []).push(m.data.content)

  // Request Guild Members: routed to the owning shard, the stream ends after chunk_count chunks.
  const guildId = guilds[3]!
  const chunks = Array.from(yield* Stream.runCollect(gateway.requestMembers({ guildId, query: "", limit: 0 })))
  const members = chunks.reduce((n, chunk) => n + chunk.members.length, 0)
  yield* Effect.log(`guild ${guildId} (shard ${gateway.shardForGuild(guildId)}): ${members} members in ${chunks.length} chunks`)

  // Graceful shutdown: sessions saved, every connection closed with 4000. (Closing the Gateway layer's
  // Scope does the same; `shutdown({ resumable: false })` ends the sessions with 1000 instead.)
  yield* gateway.shutdown()
  const summary: GatewaySummary = {
    shardCount: status.shardCount,
    messagesByShard,
    allReady: ready._tag === "Some",
    members: { shard: gateway.shardForGuild(guildId), chunks: chunks.length, members },
    closeCodes: (yield* sim.connections).map((c) => c.closedBy === "client" ? c.closeCode : null),
    ended: (yield* gateway.status).ended
  }
  yield* Effect.log(`shut down: ${JSON.stringify(summary)}`)
  return summary
})

/** The simulated Discord: 8 guilds of 2500 members, /gateway/bot recommends 4 shards, 4 identify buckets. */
const simulator = GatewaySimulator.layer({
  token,
  guilds,
  recommendedShards: 4,
  maxConcurrency: 4,
  heartbeatIntervalMs: 1000,
  membersPerGuild: 2500
})

/** GET /gateway/bot through an HttpClient answered by the simulator (a real bot: `NodeHttpClient.layerUndici`). */
const gatewayInfo = GatewayInfo.layer({ token: Redacted.make(token) }).pipe(Layer.provide(SimulatorHttpClient.layer))

/** What the Gateway needs besides a transport: discovery, the identify limiter, sessions, the guild cache. */
const services = Layer.mergeAll(
  gatewayInfo,
  IdentifyRateLimiter.layerFromGatewayInfo.pipe(Layer.provide(gatewayInfo)),
  SessionStore.layerMemory, // a real bot: SessionStore.layerFile(".sessions")
  Cache.layerMemory()
).pipe(Layer.provideMerge(simulator)) // the simulator is also the GatewayTransport

const GatewayLive = Gateway.layer({
  token: Redacted.make(token),
  intents: Intents.Guilds | Intents.GuildMessages | Intents.MessageContent | Intents.GuildMembers
}).pipe(Layer.provideMerge(services))

/** The example, with its environment. */
export const program = run.pipe(Effect.scoped, Effect.provide(GatewayLive))

if (import.meta.main) NodeRuntime.runMain(program)
