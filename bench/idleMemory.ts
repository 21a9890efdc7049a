/**
 * Idle memory per shard: N shards connected and READY, then idle (the simulator's heartbeat interval is
 * 10 minutes, so nothing is sent or received while measuring). Each client runs in a fresh process with
 * `--expose-gc` (`idleMemoryProcess.ts`), all clients of a round at once (heap and RSS are per process, so
 * they do not mix; only their times to READY would, and those are not reported here). The figure is (heap or
 * RSS once READY, held `holdMs` and idle − before connecting) / N, both after forced garbage collection, the
 * baseline taken after a warm-up run of N / 10 shards (connected, READY, closed), so that code compiled once
 * is not counted per shard. The hold (11 s in `npm run bench`) lets periodic work run once: this library's
 * first flush of its per-shard dispatch counters (every 10 s) adds Effect Metrics series an idle bot keeps.
 *
 * Simulator for this benchmark (`SimulatorSocketServer`): max_concurrency 1000 — every shard has its own
 * identify bucket, so all identify at once — and an identify window of 0 (instead of 5 s), so repeated runs
 * on one server never wait; a daily budget of 10⁶ session starts.
 *
 * Target (issue 5): at most 16 KiB of heap per idle shard.
 */
import { fork } from "node:child_process"
import { Effect } from "effect"
import type { ClientKey } from "./clients/index.ts"
import { BenchToken } from "./clients/Client.ts"
import { clients } from "./clients/index.ts"
import type { MemoryReply, MemoryRequest } from "./idleMemoryProcess.ts"
import type { Producer } from "./producer.ts"
import type { Section } from "./report.ts"
import { fixed, median, ratio } from "./stats.ts"
import { BenchError } from "./BenchError.ts"

export interface IdleMemoryOptions {
  readonly shards: number
  readonly runs: number
  /** How long the shards run after READY before they are measured (see the module doc). */
  readonly holdMs: number
  /** Clients measured, in table order; `raw` is the baseline when present. */
  readonly clients: ReadonlyArray<ClientKey>
}

export type IdleMemoryResult = ReadonlyArray<readonly [ClientKey, ReadonlyArray<MemoryReply>]>

export const idleServerOptions = {
  token: BenchToken,
  heartbeatIntervalMs: 600_000,
  maxConcurrency: 1000,
  identifyWindowMs: 0,
  recordFrames: false,
  sessionStartLimit: { total: 1_000_000, remaining: 1_000_000, resetAfterMs: 86_400_000 }
} as const

/** Runs one client in a fresh `--expose-gc` process against `request.urls`. */
const inChild = (request: MemoryRequest): Effect.Effect<MemoryReply, BenchError> =>
  Effect.scoped(Effect.gen(function*() {
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        fork(new URL("./idleMemoryProcess.ts", import.meta.url), { execArgv: ["--expose-gc"], stdio: ["ignore", "ignore", "inherit", "ipc"] })
      ),
      (child) => Effect.sync(() => child.kill())
    )
    return yield* Effect.callback<MemoryReply, BenchError>((resume) => {
      child.once("message", (message: { ok: true; reply: MemoryReply } | { ok: false; error: string }) =>
        resume(message.ok ? Effect.succeed(message.reply) : Effect.fail(new BenchError({ message: message.error }))))
      child.once("exit", (code) => resume(Effect.fail(new BenchError({ message: `idle memory process exited with ${code}` }))))
      child.send(request)
    }).pipe(
      Effect.timeoutOrElse({ duration: 180_000 + request.holdMs, orElse: () => Effect.fail(new BenchError({ message: "idle memory: no answer" })) })
    )
  }))

/** The warm-up run before the baseline: a tenth of the measured shards (at least one). */
const warmUpShards = (shards: number) => Math.max(1, Math.round(shards / 10))

export const runIdleMemory = (producer: Producer, options: IdleMemoryOptions): Effect.Effect<IdleMemoryResult, BenchError> =>
  Effect.gen(function*() {
    const replies = options.clients.map((): Array<MemoryReply> => [])
    for (let round = 0; round < options.runs; round++) {
      // Every client at once, each in its own process: heap and RSS are per process; only times are shared.
      const urls = yield* producer.start("socket", idleServerOptions)
      const request = { urls, shards: options.shards, warmUpShards: warmUpShards(options.shards), holdMs: options.holdMs }
      const replied = yield* Effect.forEach(options.clients, (client) => inChild({ ...request, client }), {
        concurrency: "unbounded"
      })
      replied.forEach((reply, i) => replies[i]!.push(reply))
      yield* producer.stop
    }
    return options.clients.map((key, i) => [key, replies[i]!] as const)
  })

export const idleMemorySection = (result: IdleMemoryResult, options: IdleMemoryOptions): Section => {
  const of = (key: ClientKey) => result.find(([k]) => k === key)?.[1] ?? []
  const heap = (r: ReadonlyArray<MemoryReply>) => median(r.map((x) => x.heapPerShard))
  const rss = (r: ReadonlyArray<MemoryReply>) => median(r.map((x) => x.rssPerShard))
  const kib = (bytes: number) => fixed(bytes / 1024, 1)
  const base = of("raw")
  const ours = of("ours")
  return {
    tables: [{
      title: `Idle memory per shard (${options.shards} shards after READY)`,
      note: `Median of ${options.runs} runs; in each, every client runs at once in its own fresh process against one ` +
        `simulator; (after − before) / ${options.shards}, ` +
        `both after forced GC; before = after a warm-up run of ${warmUpShards(options.shards)} shards (connected, READY, closed: ` +
        "code compiled once is not counted per shard); after = once every shard is READY, " +
        `${fixed(options.holdMs / 1000, 0)} s later (this library's periodic metrics flush, every 10 s, has run once) and the process ` +
        "is idle (half a second under 2 % CPU). Simulator: max_concurrency 1000, identify window 0, heartbeat 10 min.",
      header: ["client", "heap KiB / shard", "× baseline", "RSS KiB / shard", "× baseline"],
      rows: result.map(([key, r]) => [
        clients[key].name,
        kib(heap(r)),
        base.length === 0 ? "—" : ratio(heap(r) / heap(base)),
        kib(rss(r)),
        base.length === 0 ? "—" : ratio(rss(r) / rss(base))
      ])
    }],
    targets: ours.length === 0 ? [] : [{
      name: "heap per idle shard",
      goal: "≤ 16 KiB",
      measured: `${kib(heap(ours))} KiB`,
      met: heap(ours) <= 16 * 1024
    }]
  }
}
