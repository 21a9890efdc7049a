/**
 * Dispatch throughput: MESSAGE_CREATE events of about 1 KB (`events.ts`) pushed to 1 and 8 shards, JSON
 * and zlib-stream, the application reading every event's data (`content`, which forces a lazy parse):
 * this library through its typed Stream (`Stream.runForEach`), @discordjs/ws through its `dispatch` event,
 * the raw baseline (ws + JSON.parse + node:zlib) and the producer alone (frames counted, not parsed: the
 * ceiling of the harness).
 *
 * Figures per case and client: the median over the runs of events/s and of CPU seconds per 100 000
 * events, each with its ratio to the raw baseline of the same case. Targets (issue 5): on JSON at least
 * 0.9 × the baseline and at least @discordjs/ws; with zlib-stream at least 0.85 × the baseline.
 */
import { Effect } from "effect"
import type { ClientKey } from "./clients/index.ts"
import { clients } from "./clients/index.ts"
import { type DispatchCase, type DispatchSample, measureInterleaved } from "./dispatchRun.ts"
import { averageFrameBytes, block, BlockSize } from "./events.ts"
import type { Producer } from "./producer.ts"
import type { Section, Table, Target } from "./report.ts"
import { fixed, integer, median, ratio } from "./stats.ts"
import { BenchError } from "./BenchError.ts"

export interface ThroughputOptions {
  readonly shards: ReadonlyArray<number>
  readonly compressions: ReadonlyArray<"none" | "zlib-stream">
  /** Events per run (rounded up to whole blocks per shard), per case. */
  readonly eventsPerRun: Readonly<Record<"none" | "zlib-stream", number>>
  readonly runs: number
  /** One discarded run per client and case first (default true). */
  readonly warmUp?: boolean
  /** Clients measured, in table order; `raw` is the baseline and must be included. */
  readonly clients: ReadonlyArray<ClientKey>
}

/** Per case: the client keys and their samples. */
export interface CaseResult {
  readonly run: DispatchCase
  readonly samples: ReadonlyArray<readonly [ClientKey, ReadonlyArray<DispatchSample>]>
}

export const blocksFor = (events: number, shards: number): number => Math.max(1, Math.ceil(events / (BlockSize * shards)))

export const runThroughput = (producer: Producer, options: ThroughputOptions): Effect.Effect<ReadonlyArray<CaseResult>, BenchError> =>
  Effect.gen(function*() {
    const results: Array<CaseResult> = []
    for (const compression of options.compressions) {
      for (const shards of options.shards) {
        const run: DispatchCase = {
          shards,
          compression,
          kind: "messages",
          onlyMessages: false,
          blocksPerShard: blocksFor(options.eventsPerRun[compression], shards),
          runs: options.runs,
          warmUp: options.warmUp ?? true
        }
        const samples = yield* measureInterleaved(producer, options.clients.map((key) => clients[key]), run)
        results.push({ run, samples: options.clients.map((key, i) => [key, samples[i]!] as const) })
      }
    }
    return results
  })

const rate = (samples: ReadonlyArray<DispatchSample>) => median(samples.map((s) => s.eventsPerSecond))
const cpuPer100k = (samples: ReadonlyArray<DispatchSample>) => median(samples.map((s) => (s.cpuSeconds / s.events) * 100_000))

/** The throughput table and the targets it checks. */
export const throughputSection = (results: ReadonlyArray<CaseResult>, options: ThroughputOptions): Section => {
  const rows: Array<Array<string>> = []
  const targets: Array<Target> = []
  for (const { run, samples } of results) {
    const of = (key: ClientKey) => samples.find(([k]) => k === key)?.[1] ?? []
    const baseRate = rate(of("raw"))
    const baseCpu = cpuPer100k(of("raw"))
    const label = `${run.shards} shard${run.shards === 1 ? "" : "s"}, ${run.compression === "none" ? "json" : "zlib-stream"}`
    for (const [key, s] of samples) {
      rows.push([
        label,
        clients[key].name,
        integer(rate(s)),
        key === "null" ? "(ceiling)" : ratio(rate(s) / baseRate),
        key === "null" ? "—" : fixed(cpuPer100k(s), 2),
        key === "null" ? "—" : ratio(cpuPer100k(s) / baseCpu)
      ])
    }
    if (of("ours").length === 0) continue
    const ours = rate(of("ours")) / baseRate
    const goal = run.compression === "none" ? 0.9 : 0.85
    targets.push({
      name: `throughput ${label}`,
      goal: `≥ ${goal} × baseline`,
      measured: ratio(ours),
      met: ours >= goal
    })
    if (run.compression === "none" && of("discordjs").length > 0) {
      const djs = rate(of("discordjs"))
      targets.push({
        name: `throughput ${label} vs @discordjs/ws`,
        goal: "≥ @discordjs/ws",
        measured: ratio(rate(of("ours")) / djs),
        met: rate(of("ours")) >= djs
      })
    }
  }
  const table: Table = {
    title: `Dispatch throughput (MESSAGE_CREATE, ${integer(averageFrameBytes(block("messages", 0, 1)))} bytes a frame on average; the application reads every event's data)`,
    note: `Median of ${options.runs} runs per cell (after one warm-up run per client), clients interleaved round by round; ` +
      `${integer(options.eventsPerRun.none)} events per run with json, ${integer(options.eventsPerRun["zlib-stream"])} with zlib-stream. ` +
      "events/s: wall time from the release of the prepared events to the last one counted. " +
      "CPU: the benchmark process only (user + system, all threads, so zlib work included); the producer runs in its own process. " +
      "\"producer alone\" counts frames without parsing them: the ceiling of this harness.",
    header: ["case", "client", "events/s", "× baseline", "CPU s / 100k events", "× baseline"],
    rows
  }
  return { tables: [table], targets }
}
