/**
 * `npm run bench`: every benchmark of issue 5 in one run, side by side — this library, @discordjs/ws, the
 * raw baseline (ws + JSON.parse + node:zlib) and, for dispatch, the producer alone — against the gateway
 * simulator served on 127.0.0.1 by a producer process (`simulatorProcess.ts`). Prints the tables with
 * ratios to the baseline and the targets met or missed, and writes them with the machine to
 * `bench/RESULTS.md`.
 *
 * Benchmarks are not tests: nothing here fails on a figure. `BENCH_PROFILE=<dir>` writes CPU profiles of
 * every timed dispatch run (see `profiler.ts`, `profileSummary.ts`); `BENCH_ONLY=throughput,filtered` (any of
 * throughput, filtered, memory, startup, resume) runs only those and prints them without writing RESULTS.md.
 */
import { cpus, loadavg } from "node:os"
import { readFileSync, writeFileSync } from "node:fs"
import { NodeRuntime } from "@effect/platform-node"
import { Effect, References } from "effect"
import { filteredSection, runFiltered } from "./filtered.ts"
import { idleMemorySection, runIdleMemory } from "./idleMemory.ts"
import * as Producer from "./producer.ts"
import { renderTable, renderTargets, type Section } from "./report.ts"
import { resumeSection, runResume } from "./resumeLatency.ts"
import { runStartup, startupSection } from "./startup.ts"
import { runThroughput, throughputSection } from "./throughput.ts"

// Runs last about a second for every client (json at ~100k events/s, zlib-stream at ~20k): throughput is a
// steady-state figure. With runs of 20 000 json events (0.2 s) each freshly built client's start-up (JIT of
// its code paths, first GCs; not separated further) weighed on the figure: this library's 1-shard ratio
// swung between 0.64× and 0.87× on unchanged code, and was 0.96× with 100 000 events.
const throughputOptions = {
  shards: [1, 8],
  compressions: ["none", "zlib-stream"],
  eventsPerRun: { none: 100_000, "zlib-stream": 20_000 },
  runs: 5,
  clients: ["null", "raw", "ours", "discordjs"]
} as const
const filteredOptions = { shards: 1, eventsPerRun: 150_000, runs: 5, clients: ["null", "raw", "ours", "discordjs"] } as const
const idleMemoryOptions = { shards: 1000, runs: 3, holdMs: 11_000, clients: ["raw", "transport", "ours", "discordjs"] } as const
const startupOptions = { shards: 32, concurrency: 16, windowMs: 5000, runs: 3, clients: ["ours", "discordjs"] } as const
const resumeOptions = { drops: 5, clients: ["raw", "ours", "discordjs"] } as const

/** CPU model, cores, Node version, load average: what the figures depend on. */
const machine = (): string => {
  let model = cpus()[0]?.model ?? "unknown"
  try {
    model = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? model
  } catch {
    // not Linux: keep os.cpus()
  }
  return `${model}, ${cpus().length} cores, Node ${process.version}, ${process.platform}`
}

const load = () => loadavg().map((l) => l.toFixed(2)).join(" / ")

const timed = <A, E, R>(name: string, effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const startedAt = performance.now()
    yield* Effect.sync(() => console.error(`[bench] ${name}…`))
    const result = yield* effect
    yield* Effect.sync(() => console.error(`[bench] ${name}: ${((performance.now() - startedAt) / 1000).toFixed(1)} s`))
    return result
  })

const only = (process.env.BENCH_ONLY ?? "").split(",").filter((name) => name !== "")
const selected = (name: string) => only.length === 0 || only.includes(name)

/** Runs one benchmark when selected, timing it on stderr. */
const benchmark = <A, E, R>(key: string, name: string, effect: Effect.Effect<A, E, R>, section: (a: A) => Section) =>
  selected(key) ? Effect.map(timed(name, effect), (a) => [section(a)]) : Effect.succeed([])

const program = Effect.scoped(Effect.gen(function*() {
  const startedAt = performance.now()
  const loadBefore = load()
  const producer = yield* Producer.make
  const sections: ReadonlyArray<Section> = [
    ...yield* benchmark("throughput", "throughput", runThroughput(producer, throughputOptions), (r) => throughputSection(r, throughputOptions)),
    ...yield* benchmark("filtered", "filtered consumption", runFiltered(producer, filteredOptions), filteredSection),
    ...yield* benchmark("memory", "idle memory", runIdleMemory(producer, idleMemoryOptions), (r) => idleMemorySection(r, idleMemoryOptions)),
    ...yield* benchmark("startup", "startup", runStartup(producer, startupOptions), (r) => startupSection(r, startupOptions)),
    ...yield* benchmark("resume", "drop to RESUMED", runResume(producer, resumeOptions), (r) => resumeSection(r, resumeOptions))
  ]
  const minutes = (performance.now() - startedAt) / 60_000
  const markdown = [
    "# Benchmark results",
    "",
    `Machine: ${machine()}. Load average (1/5/15 min) ${loadBefore} at the start, ${load()} at the end. ` +
    `Run on ${new Date().toISOString().slice(0, 10)} in ${minutes.toFixed(1)} min by \`npm run bench\`.`,
    "",
    "Clients and simulator run on this machine: the simulator (the library's own protocol core) in a producer " +
    "process, the clients in the benchmark process, sharing its cores. Ratios compare figures of the same run.",
    "",
    "## Targets (issue 5)",
    "",
    renderTargets(sections.flatMap((s) => s.targets)),
    "## Figures",
    "",
    ...sections.flatMap((s) => s.tables.map(renderTable))
  ].join("\n")
  yield* Effect.sync(() => {
    console.log(markdown)
    if (only.length === 0) writeFileSync(new URL("./RESULTS.md", import.meta.url), markdown)
  })
}))

program.pipe(Effect.provideService(References.MinimumLogLevel, "Warn"), NodeRuntime.runMain)
