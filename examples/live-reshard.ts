/**
 * Example: a live reshard from 4 to 8 shards under continuous traffic, against the in-process gateway
 * simulator — no token, no network.
 *
 * Discord lets sessions with different shard counts run side by side (PROTOCOL.md §4), so `gateway.reshard`
 * starts the 8 new shards beside the 4 running ones, switches the event source once all 8 are ready, and
 * closes the old set. Both sets receive the same guild events during the overlap; the Gateway delivers each
 * one once (docs/RESHARDING.md). This program sends a MESSAGE_CREATE with a unique id every 20 ms, from
 * before the reshard until after it — the simulator delivers each to the old set 120 ms late and to the new
 * set 40 ms late, so the two copies of an event never arrive together and the new set is ahead at the
 * switch — and counts the distinct ids delivered.
 *
 * Run it: `node_modules/.bin/node examples/live-reshard.ts` (about 10 s: the new shards wait for Discord's
 * 5 s identify window, as they would in production, and the old set drains for the 2 s dedup window).
 * `program` is exported so the test suite runs it under TestClock (test/examples.test.ts).
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect, Fiber, Layer, Redacted, Stream } from "effect"
import { Cache, Dispatch, type Events, Gateway, GatewayInfo, IdentifyRateLimiter, Intents, SessionStore } from "effect-discord-gateway"
import { GatewaySimulator, SimulatorHttpClient } from "effect-discord-gateway/testing"

const token = "simulated-token"
const messageGapMs = 20

/** Sixteen guild ids; guild k is (k << 22) + k, so it belongs to shard k % n for n = 4 and n = 8. */
const guilds = Array.from({ length: 16 }, (_, k) => String((BigInt(k) << 22n) + BigInt(k)))

/** What the run observed, for the test suite (and the last log line). */
export interface LiveReshardSummary {
  /** The GATEWAY_RESHARDED event's data (null if it never came). */
  readonly resharded: Events.GatewayReshardedEvent | null
  readonly sent: number
  /** MESSAGE_CREATEs delivered, and how many distinct ids among them. */
  readonly delivered: number
  readonly unique: number
  /** Messages delivered before GATEWAY_RESHARDED (by the old set); the rest came after the switch. */
  readonly beforeSwitch: number
  /** The reshard phases the status went through. */
  readonly phases: ReadonlyArray<string>
  readonly shardCountAfter: number
}

const run = Effect.gen(function*() {
  const gateway = yield* Gateway
  const sim = yield* GatewaySimulator

  // Subscribe before anything is sent (`subscription` subscribes now; `events` would on its first pull).
  const stream = yield* gateway.subscription({ names: ["MESSAGE_CREATE", "GATEWAY_RESHARDED"] })
  const ids: Array<string> = []
  let beforeSwitch = 0
  let resharded: Events.GatewayReshardedEvent | undefined
  yield* Effect.forkScoped(Stream.runForEach(stream, (d) =>
    Effect.sync(() => {
      if (Dispatch.is(d, "GATEWAY_RESHARDED")) {
        resharded = d.data
      } else if (Dispatch.is(d, "MESSAGE_CREATE")) {
        ids.push(d.data.id)
        if (resharded === undefined) beforeSwitch++
      }
    })
  ))

  // Log the reshard's progress as the status changes.
  const phases: Array<string> = []
  yield* Effect.forkScoped(Stream.runForEach(gateway.statusChanges, ({ reshard }) => {
    if (reshard === null || phases[phases.length - 1] === reshard.phase) return Effect.void
    phases.push(reshard.phase)
    return Effect.log(`reshard ${reshard.from} → ${reshard.to}: ${reshard.phase} (${reshard.ready}/${reshard.total} new shards ready)`)
  }))

  yield* gateway.statusChanges.pipe(Stream.filter((s) => s.ready), Stream.runHead)
  yield* Effect.log(`ready with ${(yield* gateway.status).shardCount} shards; sending a message every ${messageGapMs} ms`)

  // Continuous traffic: one message every 20 ms, round-robin over the guilds, each with a unique id, from
  // before the reshard until after it has finished.
  let sent = 0
  let sending = true
  const traffic = yield* Effect.forkScoped(Effect.gen(function*() {
    while (sending) {
      const n = sent++
      yield* sim.dispatch("MESSAGE_CREATE", {
        id: String(10_000 + n),
        channel_id: "222079895583457280",
        guild_id: guilds[n % guilds.length],
        content: `message ${n}`,
        author: { id: "53908232506183680", username: "someone" }
      })
      yield* Effect.sleep(messageGapMs)
    }
  }))

  yield* Effect.sleep(500)
  yield* gateway.reshard(8) // returns once the old set has drained and closed
  yield* Effect.sleep(500)
  sending = false
  yield* Fiber.join(traffic)
  yield* Effect.sleep(500) // let the last messages through the simulated latency

  const summary: LiveReshardSummary = {
    resharded: resharded ?? null,
    sent,
    delivered: ids.length,
    unique: new Set(ids).size,
    beforeSwitch,
    phases,
    shardCountAfter: (yield* gateway.status).shardCount
  }
  const exactlyOnce = summary.delivered === summary.sent && summary.unique === summary.sent
  yield* Effect.log(`${summary.sent} sent, ${summary.delivered} delivered, ${summary.unique} distinct: ${exactlyOnce ? "each exactly once" : "NOT exactly once"}`)
  yield* Effect.log(`done: ${JSON.stringify(summary)}`)
  return summary
})

const simulator = GatewaySimulator.layer({
  token,
  guilds,
  recommendedShards: 4,
  maxConcurrency: 16,
  heartbeatIntervalMs: 1000,
  // Each set sees an event at a different time, as two real connections would (keyed by shard count).
  dispatchLatencyMs: { 4: 120, 8: 40 }
})

const gatewayInfo = GatewayInfo.layer({ token: Redacted.make(token) }).pipe(Layer.provide(SimulatorHttpClient.layer))

const services = Layer.mergeAll(
  gatewayInfo,
  IdentifyRateLimiter.layerFromGatewayInfo.pipe(Layer.provide(gatewayInfo)),
  SessionStore.layerMemory,
  Cache.layerMemory()
).pipe(Layer.provideMerge(simulator))

const GatewayLive = Gateway.layer({
  token: Redacted.make(token),
  intents: Intents.Guilds | Intents.GuildMessages | Intents.MessageContent,
  // The two sets' copies of an event arrive 80 ms apart here; 2 s of dedup window is plenty (default 10 s).
  reshard: { dedupWindow: "2 seconds" }
}).pipe(Layer.provideMerge(services))

/** The example, with its environment. */
export const program = run.pipe(Effect.scoped, Effect.provide(GatewayLive))

if (import.meta.main) NodeRuntime.runMain(program)
