/**
 * Measured dispatch runs, shared by the throughput and the filtered-consumption benchmarks. Each run: a
 * fresh simulator ("load" transport), the client connected and READY on every shard, then
 *
 * 1. untimed: the producer holds the wire and pushes `blocksPerShard` blocks to every shard through the
 *    simulator core (numbered, buffered for replay, framed, compressed);
 * 2. timed: the clock starts when the release is requested and stops on the last event the client's
 *    application counts. CPU time is this process's (`process.cpuUsage`, user + system, all threads, so
 *    the client's zlib work is in it; the producer runs in its own process and is not).
 *
 * Every wait is bounded by a timeout.
 */
import { Deferred, Effect } from "effect"
import type { Client } from "./clients/Client.ts"
import { BenchToken } from "./clients/Client.ts"
import { type BlockKind, BlockSize, countedPerBlock } from "./events.ts"
import type { Producer } from "./producer.ts"
import { profiled } from "./profiler.ts"
import { BenchError } from "./BenchError.ts"

export interface DispatchCase {
  readonly shards: number
  readonly compression: "none" | "zlib-stream"
  readonly kind: BlockKind
  /** The application subscribes to MESSAGE_CREATE only. */
  readonly onlyMessages: boolean
  /** Blocks (of `BlockSize` events) per shard and run. */
  readonly blocksPerShard: number
  /** Measured runs per client. */
  readonly runs: number
  /** One discarded run per client first (default true). */
  readonly warmUp?: boolean
}

export interface DispatchSample {
  /** Events the producer sent in the run (every event of the blocks, whatever the client counts). */
  readonly events: number
  /** Events the application was expected to count, and how many it counted (read after the run). */
  readonly expected: number
  readonly counted: number
  /** Characters of `content` the application read (0 for the null client, which does not parse). */
  readonly contentChars: number
  /** Events sent per second of wall time. */
  readonly eventsPerSecond: number
  /** This process's CPU seconds (user + system) during the run. */
  readonly cpuSeconds: number
}

const RunTimeout = "60 seconds"

/** The simulator for dispatch runs: quiet (long heartbeat interval), no frame recording, instant identifies. */
export const dispatchServerOptions = {
  token: BenchToken,
  heartbeatIntervalMs: 60_000,
  maxConcurrency: 16,
  identifyWindowMs: 0,
  recordFrames: false,
  replayBufferSize: 1_000,
  sessionStartLimit: { total: 1_000_000, remaining: 1_000_000, resetAfterMs: 86_400_000 }
} as const

/**
 * One run: a fresh simulator, `client` connected and READY, the run's events prepared (untimed), then the
 * timed release. `label` names the profile written when BENCH_PROFILE is set.
 */
export const measureOnce = (
  producer: Producer,
  client: Client,
  run: DispatchCase,
  label: string
): Effect.Effect<DispatchSample, BenchError> =>
  Effect.scoped(Effect.gen(function*() {
    const urls = yield* producer.start("load", dispatchServerOptions)
    yield* Effect.addFinalizer(() => Effect.ignore(producer.stop))
    const total = countedPerBlock(run.kind, run.onlyMessages && !client.countsEveryFrame) * run.shards * run.blocksPerShard
    const finished = yield* Deferred.make<void>()
    let counted = 0
    let contentChars = 0
    const running = yield* client.start({
      urls,
      shardCount: run.shards,
      compression: run.compression,
      onlyMessages: run.onlyMessages,
      onMessage: (data) => {
        // What an application does with a message: read its fields (this forces a lazy parse).
        const content = (data as { readonly content?: unknown } | undefined)?.content
        if (typeof content === "string") contentChars += content.length
        if (++counted === total) Deferred.doneUnsafe(finished, Effect.void)
      },
      onResumed: () => {}
    })
    yield* running.ready.pipe(
      Effect.timeoutOrElse({ duration: "60 seconds", orElse: () => Effect.fail(new BenchError({ message: `${client.name}: not ready` })) })
    )
    yield* producer.prepare(run.kind, run.shards, run.blocksPerShard)
    counted = 0
    const startedAt = performance.now()
    const cpuAtStart = process.cpuUsage()
    yield* profiled(`${client.name} ${label}`, Effect.andThen(producer.release, Deferred.await(finished))).pipe(
      Effect.timeoutOrElse({
        duration: RunTimeout,
        orElse: () => Effect.fail(new BenchError({ message: `${client.name}: counted ${counted} of ${total} events` }))
      })
    )
    const seconds = (performance.now() - startedAt) / 1000
    const cpu = process.cpuUsage(cpuAtStart)
    const events = BlockSize * run.shards * run.blocksPerShard
    yield* Effect.yieldNow // anything counted twice would show here
    return {
      events,
      expected: total,
      counted,
      contentChars,
      eventsPerSecond: events / seconds,
      cpuSeconds: (cpu.user + cpu.system) / 1e6
    } satisfies DispatchSample
  }))

/**
 * Measures every client on one case: one warm-up run each (discarded, unless `warmUp` is false), then `run.runs` rounds in which
 * every client runs once, so that all clients see the same machine conditions in each round.
 * Returns the samples per client, in the order of `clients`.
 */
export const measureInterleaved = (
  producer: Producer,
  clients: ReadonlyArray<Client>,
  run: DispatchCase
): Effect.Effect<ReadonlyArray<ReadonlyArray<DispatchSample>>, BenchError> =>
  Effect.gen(function*() {
    const label = `${run.shards} shards ${run.compression} ${run.kind}${run.onlyMessages ? " filtered" : ""}`
    if (run.warmUp !== false) for (const client of clients) yield* measureOnce(producer, client, run, `${label} warm-up`)
    const samples = clients.map((): Array<DispatchSample> => [])
    for (let round = 1; round <= run.runs; round++) {
      for (let i = 0; i < clients.length; i++) {
        samples[i]!.push(yield* measureOnce(producer, clients[i]!, run, `${label} run ${round}`))
      }
    }
    return samples
  })
