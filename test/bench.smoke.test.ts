/**
 * Smoke run of the benchmarks (bench/, issue 5): every benchmark function once with tiny figures (3 shards,
 * one block of 500 events per shard, one run, no warm-up), against the real simulator in its producer
 * process, so `npm run bench` keeps working. Only sanity is asserted — every event sent was counted, once;
 * rates, CPU, memory and times are finite numbers — never a timing or a target.
 */
import { expect, layer } from "@effect/vitest"
import { Effect, References } from "effect"
import type { DispatchSample } from "../bench/dispatchRun.ts"
import { BlockSize } from "../bench/events.ts"
import { runFiltered } from "../bench/filtered.ts"
import { runIdleMemory } from "../bench/idleMemory.ts"
import { ProducerProcess } from "../bench/producer.ts"
import { runResume } from "../bench/resumeLatency.ts"
import { runStartup } from "../bench/startup.ts"
import { runThroughput } from "../bench/throughput.ts"

const Shards = 3

const expectSane = (sample: DispatchSample) => {
  expect(sample.events).toBe(Shards * BlockSize)
  expect(sample.counted).toBe(sample.expected)
  expect(sample.expected).toBeGreaterThan(0)
  expect(Number.isFinite(sample.eventsPerSecond) && sample.eventsPerSecond > 0).toBe(true)
  expect(Number.isFinite(sample.cpuSeconds) && sample.cpuSeconds >= 0).toBe(true)
}

/** The application read every message's content (the null client reads nothing). */
const expectContentRead = (key: string, sample: DispatchSample) =>
  expect(sample.contentChars > 0).toBe(key !== "null")

const quiet = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.provideService(References.MinimumLogLevel, "Error"))

layer(ProducerProcess.layer, { timeout: "30 seconds", excludeTestServices: true })("benchmarks (smoke run)", (it) => {
  it.effect("throughput: every client counts every event, json and zlib-stream", () =>
    quiet(Effect.gen(function*() {
      const producer = yield* ProducerProcess
      const results = yield* runThroughput(producer, {
        shards: [Shards],
        compressions: ["none", "zlib-stream"],
        eventsPerRun: { none: Shards * BlockSize, "zlib-stream": Shards * BlockSize },
        runs: 1,
        warmUp: false,
        clients: ["null", "raw", "ours", "discordjs"]
      })
      expect(results.map((r) => r.run.compression)).toEqual(["none", "zlib-stream"])
      for (const result of results) {
        expect(result.samples.map(([key]) => key)).toEqual(["null", "raw", "ours", "discordjs"])
        for (const [key, samples] of result.samples) {
          expect(samples).toHaveLength(1)
          for (const sample of samples) {
            expectSane(sample)
            expectContentRead(key, sample)
          }
        }
      }
    })), 30_000)

  it.effect("filtered consumption: MESSAGE_CREATE of the mix counted by every client", () =>
    quiet(Effect.gen(function*() {
      const producer = yield* ProducerProcess
      const result = yield* runFiltered(producer, {
        shards: Shards,
        eventsPerRun: Shards * BlockSize,
        runs: 1,
        warmUp: false,
        clients: ["raw", "ours", "discordjs"]
      })
      for (const [key, samples] of result.samples) {
        expect(samples).toHaveLength(1)
        for (const sample of samples) {
          expectSane(sample)
          expectContentRead(key, sample)
          expect(sample.expected).toBeLessThan(sample.events) // only the MESSAGE_CREATEs of the mix
        }
      }
    })), 30_000)

  it.effect("idle memory, startup and drop to RESUMED produce finite figures", () =>
    quiet(Effect.gen(function*() {
      const producer = yield* ProducerProcess
      const memory = yield* runIdleMemory(producer, { shards: Shards, runs: 1, holdMs: 0, clients: ["ours"] })
      const [reply] = memory[0]![1]
      expect(Number.isFinite(reply!.heapPerShard) && Number.isFinite(reply!.rssPerShard)).toBe(true)
      expect(reply!.readySeconds).toBeGreaterThan(0)

      const startup = yield* runStartup(producer, { shards: Shards, concurrency: 16, windowMs: 5000, runs: 1, clients: ["ours"] })
      const times = startup[0]![1]
      expect([...times.one, ...times.all].every((s) => Number.isFinite(s) && s > 0)).toBe(true)

      const resume = yield* runResume(producer, { drops: 1, heartbeatMs: 100, clients: ["raw", "ours"] })
      for (const [, latencies] of resume) {
        expect(latencies).toHaveLength(1)
        expect(latencies.every((ms) => Number.isFinite(ms) && ms > 0)).toBe(true)
      }
    })), 30_000)
})
