/**
 * Example: one shard against the in-process gateway simulator — no token, no network.
 *
 * The README's single-shard program with `GatewaySimulator.layer` as the transport: the shard IDENTIFYs,
 * the simulator emits MESSAGE_CREATEs, drops the connection once (an abrupt 1006, PROTOCOL.md §1.7 / item
 * 23), emits one more message while the shard is away, and the shard RESUMEs at the resume URL and gets
 * that message replayed, exactly once. Then the shard stops with 1000 (item 38).
 *
 * Run it: `node_modules/.bin/node examples/single-shard.ts` (a couple of seconds on the real clock).
 * `program` is exported so the test suite runs it under TestClock (test/examples.test.ts).
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect, Fiber, Layer, Redacted, Schedule, Stream } from "effect"
import { Dispatch, DispatchSink, IdentifyRateLimiter, Intents, SessionStore, Shard, type ShardState } from "effect-discord-gateway"
import { GatewaySimulator } from "effect-discord-gateway/testing"

/** The simulator checks IDENTIFY/RESUME against this token; a real bot reads DISCORD_TOKEN instead. */
const token = "simulated-token"
const guildId = "81384788765712384"

/** What the run observed, for the test suite (and the last log line). */
export interface SingleShardSummary {
  /** The MESSAGE_CREATE contents, in the order the subscriber received them. */
  readonly messages: ReadonlyArray<string>
  /** IDENTIFY (op 2) and RESUME (op 6) frames the simulator received. */
  readonly identifies: number
  readonly resumes: number
  /** The codes the client closed its connections with (the last one is the stop). */
  readonly clientCloseCodes: ReadonlyArray<number | null>
  /** The shard's phase after `stop`. */
  readonly finalPhase: string
}

const message = (id: number, content: string) => ({
  id: String(1_000 + id),
  channel_id: "222079895583457280",
  guild_id: guildId,
  content,
  author: { id: "53908232506183680", username: "someone" }
})

const run = Effect.gen(function*() {
  const sim = yield* GatewaySimulator
  const sink = yield* DispatchSink
  const events = yield* sink.subscription() // subscribe before the shard starts: nothing is missed

  const shard = yield* Shard.make({
    token: Redacted.make(token),
    shardId: 0,
    shardCount: 1,
    intents: Intents.Guilds | Intents.GuildMessages | Intents.MessageContent,
    gatewayUrl: sim.options.baseUrl, // the simulator's stand-in for /gateway/bot's url
    // Retry a failed connection after 200 ms instead of the default 1 s, 2 s, 4 s… (keeps the demo short).
    reconnectSchedule: Schedule.spaced("200 millis")
  })

  // The application: log every MESSAGE_CREATE; stop after the five this demo sends.
  const received = yield* events.pipe(
    Stream.filter(Dispatch.ofName("MESSAGE_CREATE")),
    Stream.tap((m) => Effect.log(`#${m.seq} on shard ${m.shard}: ${m.data.content}`)),
    Stream.map((m) => m.data.content),
    Stream.take(5),
    Stream.runCollect,
    Effect.forkScoped
  )

  const untilState = (done: (state: ShardState) => boolean) =>
    shard.changes.pipe(Stream.filter(done), Stream.runHead)

  yield* untilState((s) => s.phase === "ready")
  yield* Effect.log(`ready: session ${(yield* shard.state).sessionId}`)

  yield* sim.dispatch("MESSAGE_CREATE", message(1, "hello"))
  yield* sim.dispatch("MESSAGE_CREATE", message(2, "from the"))
  yield* sim.dispatch("MESSAGE_CREATE", message(3, "simulator"))

  // An abrupt drop (no close frame, 1006). The session stays resumable on the gateway side, and an event
  // sent while the shard is away waits in its replay buffer.
  yield* Effect.log("simulator: dropping the connection")
  yield* sim.drop(0)
  yield* sim.dispatch("MESSAGE_CREATE", message(4, "sent while disconnected"))
  yield* untilState((s) => s.phase === "ready" && s.resumes === 1)
  const resumed = yield* shard.state
  yield* Effect.log(`resumed session ${resumed.sessionId} at seq ${resumed.sequence} (identifies: ${resumed.identifies})`)

  yield* sim.dispatch("MESSAGE_CREATE", message(5, "after the resume"))
  const messages = Array.from(yield* Fiber.join(received))

  yield* shard.stop() // closes with 1000: the session ends, the bot goes offline
  const summary: SingleShardSummary = {
    messages,
    identifies: (yield* sim.clientFrames({ op: 2 })).length,
    resumes: (yield* sim.clientFrames({ op: 6 })).length,
    clientCloseCodes: (yield* sim.connections).map((c) => c.closedBy === "client" ? c.closeCode : null),
    finalPhase: (yield* shard.state).phase
  }
  yield* Effect.log(`stopped: ${JSON.stringify(summary)}`)
  return summary
})

/** The example, with its environment: simulator transport, in-memory limiter and session store, one sink. */
export const program = run.pipe(
  Effect.scoped,
  Effect.provide(Layer.mergeAll(
    // The simulator replaces NodeTransport: it provides GatewayTransport too. A 1 s heartbeat keeps it quick.
    GatewaySimulator.layer({ token, guilds: [guildId], heartbeatIntervalMs: 1000 }),
    IdentifyRateLimiter.layerMemory({ maxConcurrency: 1 }),
    SessionStore.layerMemory,
    DispatchSink.layer()
  ))
)

if (import.meta.main) NodeRuntime.runMain(program)
