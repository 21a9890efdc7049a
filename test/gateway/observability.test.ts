/**
 * What an operator sees of a running Gateway besides its status: Metrics (counters per shard, the two
 * histograms for all shards) and log lines annotated with the shard they come from.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Logger, Metric } from "effect"
import { GatewaySimulator, type ShardTarget } from "../../src/testing/GatewaySimulator.ts"
import { advance, environment, makeGateway } from "./harness.ts"
import * as ShardHarness from "../shard/harness.ts"

/** The metrics of the runtime, by id, with the attributes each series has. */
const series = (id: string) =>
  Effect.map(Metric.snapshot, (all) =>
    all.filter((m) => m.id === id).map((m) => ({ attributes: { ...m.attributes }, state: m.state as unknown })))

const counterOf = (state: unknown) => (state as { readonly count: number }).count

/** A logger that keeps every line as structured output (message, level, annotations). */
const captureLogs = () => {
  const lines: Array<{ readonly message: unknown; readonly annotations: Readonly<Record<string, unknown>> }> = []
  const logger = Logger.formatStructured.pipe(Logger.map((line) => {
    lines.push({ message: line.message, annotations: line.annotations })
  }))
  return { lines, layer: Logger.layer([logger]) }
}

/**
 * Runs `setup` with log lines captured, then sends op 7 to `target` and lets the shard reconnect: the
 * annotations of its "op 7 Reconnect" lines, and every line captured.
 */
const reconnectLogged = <E, R>(setup: Effect.Effect<unknown, E, R>, target: ShardTarget) =>
  Effect.gen(function*() {
    const logs = captureLogs()
    yield* Effect.gen(function*() {
      yield* setup
      yield* (yield* GatewaySimulator).reconnect(target)
      yield* advance(5000)
    }).pipe(Effect.provide(logs.layer))
    const reconnect = logs.lines.filter((line) => String(line.message).includes("op 7 Reconnect"))
    return { annotations: reconnect.map((line) => line.annotations), lines: logs.lines }
  })

describe("Gateway observability", () => {
  it.effect("metrics: reconnects and resumes per shard; connections, identifies, identify wait and heartbeat latency for all shards", () =>
    Effect.gen(function*() {
      const gateway = yield* makeGateway()
      yield* advance(6000)
      const sim = yield* GatewaySimulator
      yield* sim.reconnect(1) // shard 1 resumes on a new connection
      yield* advance(5000)
      expect((yield* gateway.status).shards.map((s) => s.phase)).toEqual(["ready", "ready"])

      const byShard = (id: string) =>
        Effect.map(series(id), (all) =>
          Object.fromEntries(all.map((s) => [String(s.attributes.shard), counterOf(s.state)])))
      expect(yield* byShard("discord_gateway_reconnects_total")).toEqual({ 1: 1 })
      // connections for the whole process, no `shard` attribute: a shard's are 1 + its reconnects
      const connections = yield* series("discord_gateway_connections_total")
      expect(connections.map((s) => [s.attributes, counterOf(s.state)])).toEqual([[{}, 3]])
      // identifies for the whole process too: every shard identifies once (its own count is in its status)
      const identifies = yield* series("discord_gateway_identifies_total")
      expect(identifies.map((s) => [s.attributes, counterOf(s.state)])).toEqual([[{}, 2]])
      expect((yield* gateway.status).shards.map((s) => s.identifies)).toEqual([1, 1])
      expect(yield* byShard("discord_gateway_resumes_total")).toEqual({ 1: 1 })

      // One histogram each for the whole process, no `shard` attribute: two identifies waited, and every
      // acknowledged heartbeat of either shard was observed.
      const identifyWait = yield* series("discord_gateway_identify_wait_ms")
      expect(identifyWait.map((s) => s.attributes)).toEqual([{}])
      expect((identifyWait[0]!.state as Metric.HistogramState).count).toBe(2)
      const latency = yield* series("discord_gateway_heartbeat_latency_ms")
      expect(latency.map((s) => s.attributes)).toEqual([{}])
      const acks = (yield* sim.serverFrames({ op: 11 })).length
      expect((latency[0]!.state as Metric.HistogramState).count).toBe(acks)
      expect(acks).toBeGreaterThanOrEqual(4)
    }).pipe(
      Effect.provide(environment({ recommendedShards: 2 })),
      Effect.provideService(Metric.MetricRegistry, new Map())
    ))

  it.effect("a shard's log lines carry its id and the shard count (Gateway)", () =>
    Effect.gen(function*() {
      const { annotations } = yield* reconnectLogged(Effect.andThen(makeGateway(), advance(6000)), 1)
      expect(annotations).toEqual([{ shard: 1, shardCount: 2 }])
    }).pipe(Effect.provide(environment({ recommendedShards: 2 }))))

  it.effect("shards started by a reshard run with the Gateway's context, not the context of the fiber that asked for it", () =>
    Effect.gen(function*() {
      const resharded = Effect.gen(function*() {
        const gateway = yield* makeGateway()
        yield* advance(6000)
        // Asked for from a fiber of the application's own, with its own log annotations.
        const reshard = yield* Effect.forkScoped(gateway.reshard(4).pipe(Effect.annotateLogs({ caller: "admin command" })))
        for (let t = 0; t < 120_000 && reshard.pollUnsafe() === undefined; t += 500) yield* advance(500)
        yield* Fiber.join(reshard)
        expect((yield* gateway.layout).count).toBe(4)
      })
      const { annotations, lines } = yield* reconnectLogged(resharded, [3, 4])
      expect(annotations).toEqual([{ shard: 3, shardCount: 4 }])
      // The reshard's own lines do carry the caller's annotation: they run on the caller's fiber.
      expect(lines.some((line) => String(line.message).startsWith("resharding 2 → 4") && line.annotations.caller === "admin command"))
        .toBe(true)
    }).pipe(Effect.provide(environment({ recommendedShards: 2, maxConcurrency: 4 }))))

  it.effect("a shard run on its own annotates its log lines itself", () =>
    Effect.gen(function*() {
      const { annotations } = yield* reconnectLogged(Effect.andThen(ShardHarness.startShard({ shardId: 2, shardCount: 3 }), advance(3000)), 2)
      expect(annotations).toEqual([{ shard: 2, shardCount: 3 }])
    }).pipe(Effect.provide(ShardHarness.layer())))
})
