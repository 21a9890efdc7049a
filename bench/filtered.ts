/**
 * Filtered consumption: the application wants MESSAGE_CREATE only, out of a realistic mix (`MixWeights`
 * in `events.ts`: PRESENCE_UPDATE 30 %, TYPING_START 25 %, MESSAGE_CREATE 20 %, MESSAGE_REACTION_ADD 15 %,
 * GUILD_MEMBER_UPDATE 10 %). This library subscribes with `names: ["MESSAGE_CREATE"]` (what
 * `gateway.events("MESSAGE_CREATE")` does); @discordjs/ws and the raw baseline parse every event and
 * filter in the listener. The application reads the data of every MESSAGE_CREATE it gets. The figure is
 * the events of the whole mix processed per second.
 *
 * Target (issue 5): at least 1.5 × the baseline's rate (events the application never asked for should
 * cost almost nothing).
 */
import { Effect } from "effect"
import type { ClientKey } from "./clients/index.ts"
import { clients } from "./clients/index.ts"
import { type DispatchCase, type DispatchSample, measureInterleaved } from "./dispatchRun.ts"
import { averageFrameBytes, block, MixWeights } from "./events.ts"
import type { Producer } from "./producer.ts"
import type { Section } from "./report.ts"
import { fixed, integer, median, ratio } from "./stats.ts"
import { blocksFor } from "./throughput.ts"
import { BenchError } from "./BenchError.ts"

export interface FilteredOptions {
  readonly shards: number
  readonly eventsPerRun: number
  readonly runs: number
  /** One discarded run per client first (default true). */
  readonly warmUp?: boolean
  /** Clients measured, in table order; `raw` is the baseline and must be included. */
  readonly clients: ReadonlyArray<ClientKey>
}

export interface FilteredResult {
  readonly run: DispatchCase
  readonly samples: ReadonlyArray<readonly [ClientKey, ReadonlyArray<DispatchSample>]>
}

export const runFiltered = (producer: Producer, options: FilteredOptions): Effect.Effect<FilteredResult, BenchError> =>
  Effect.gen(function*() {
    const run: DispatchCase = {
      shards: options.shards,
      compression: "none",
      kind: "mix",
      onlyMessages: true,
      blocksPerShard: blocksFor(options.eventsPerRun, options.shards),
      runs: options.runs,
      warmUp: options.warmUp ?? true
    }
    const samples = yield* measureInterleaved(producer, options.clients.map((key) => clients[key]), run)
    return { run, samples: options.clients.map((key, i) => [key, samples[i]!] as const) }
  })

export const filteredSection = (result: FilteredResult): Section => {
  const of = (key: ClientKey) => result.samples.find(([k]) => k === key)?.[1] ?? []
  const rate = (s: ReadonlyArray<DispatchSample>) => median(s.map((x) => x.eventsPerSecond))
  const cpu = (s: ReadonlyArray<DispatchSample>) => median(s.map((x) => (x.cpuSeconds / x.events) * 100_000))
  const baseRate = rate(of("raw"))
  const baseCpu = cpu(of("raw"))
  const mix = MixWeights.map(([name, weight]) => `${name} ${weight * 5} %`).join(", ")
  const ours = rate(of("ours")) / baseRate
  return {
    tables: [{
      title: "Filtered consumption (MESSAGE_CREATE out of a mix)",
      note: `${result.run.shards} shard(s), json, median of ${result.run.runs} runs. Mix: ${mix} ` +
        `(${integer(averageFrameBytes(block("mix", 0, 1)))} bytes a frame on average). ` +
        "events/s counts every event of the mix the client processed; the application receives only MESSAGE_CREATE and reads its data.",
      header: ["client", "mix events/s", "× baseline", "CPU s / 100k events", "× baseline"],
      rows: result.samples.map(([key, s]) => [
        clients[key].name,
        integer(rate(s)),
        key === "null" ? "(ceiling)" : ratio(rate(s) / baseRate),
        key === "null" ? "—" : fixed(cpu(s), 2),
        key === "null" ? "—" : ratio(cpu(s) / baseCpu)
      ])
    }],
    targets: of("ours").length === 0 ? [] : [{
      name: "filtered consumption",
      goal: "≥ 1.5 × baseline (all events parsed)",
      measured: ratio(ours),
      met: ours >= 1.5
    }]
  }
}
