/**
 * Child process of the idle-memory benchmark: one client, one fresh process (run with `--expose-gc`).
 *
 * It receives a `MemoryRequest` over IPC, warms the client up with `warmUpShards` shards (connected, READY,
 * closed) so that its code is loaded and compiled, collects garbage and takes the baseline. Then it connects
 * `shards` shards, waits until every one is READY, then `holdMs` more (a long-running client's periodic work
 * is part of its idle state: this library flushes its per-shard dispatch counters into Effect Metrics every
 * 10 s, and the first flush adds their series), then until the process is idle (less than 2 % CPU over half
 * a second, at most 60 s: work still queued is not idle), collects garbage again and answers with heap and
 * RSS per shard. Then it exits.
 */
import { Effect, Exit, References, Scope } from "effect"
import { clients, type ClientKey } from "./clients/index.ts"
import type { ServerUrls } from "./producer.ts"
import { BenchError } from "./BenchError.ts"

export interface MemoryRequest {
  readonly client: ClientKey
  readonly urls: ServerUrls
  readonly shards: number
  /**
   * Shards of the warm-up run before the baseline. One shard loads the code but leaves the compilation of its
   * hot paths to the measured run, where V8's code and feedback (about 1 KiB per shard over 1000 shards, seen
   * in heap snapshots) would count as per-shard memory; a tenth of the shards runs them hot first.
   */
  readonly warmUpShards: number
  /** How long the shards run after READY before the idle wait and the measurement. */
  readonly holdMs: number
}

export interface MemoryReply {
  readonly heapPerShard: number
  readonly rssPerShard: number
  /** Seconds from the start of the connections to every shard READY. */
  readonly readySeconds: number
  /** Seconds from the end of the hold until the process was idle. */
  readonly settleSeconds: number
}

/** Idle: less than 2 % CPU over a half-second window; given up after 60 s. */
const IdleCpuShare = 0.02
const WindowMs = 500
const MaxSettleMs = 60_000

/** Waits until a window passes with less than 2 % CPU used (bounded); returns the seconds waited. */
const settle = Effect.gen(function*() {
  for (let waited = WindowMs; waited <= MaxSettleMs; waited += WindowMs) {
    const cpu = process.cpuUsage()
    yield* Effect.sleep(WindowMs)
    const used = process.cpuUsage(cpu)
    if ((used.user + used.system) / 1000 < IdleCpuShare * WindowMs) return waited / 1000
  }
  return MaxSettleMs / 1000
})

const collect = Effect.promise(async () => {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) throw new Error("idle memory needs node --expose-gc")
  for (let i = 0; i < 3; i++) {
    gc()
    await new Promise((resolve) => setImmediate(resolve))
  }
  return process.memoryUsage()
})

const measure = (request: MemoryRequest) =>
  Effect.gen(function*() {
    const client = clients[request.client]
    const options = { urls: request.urls, compression: "none", onlyMessages: false, onMessage: () => {}, onResumed: () => {} } as const
    const bounded = <A>(effect: Effect.Effect<A, BenchError>) =>
      effect.pipe(Effect.timeoutOrElse({ duration: "120 seconds", orElse: () => Effect.fail(new BenchError({ message: `${client.name}: not ready` })) }))
    // warm-up: `warmUpShards` shards, then closed
    yield* Effect.scoped(Effect.flatMap(client.start({ ...options, shardCount: request.warmUpShards }), (running) => bounded(running.ready)))
    const before = yield* collect
    const scope = yield* Scope.make()
    const startedAt = performance.now()
    const running = yield* Scope.provide(client.start({ ...options, shardCount: request.shards }), scope)
    yield* bounded(running.ready)
    const readySeconds = (performance.now() - startedAt) / 1000
    yield* Effect.sleep(request.holdMs)
    const settleSeconds = yield* settle
    const after = yield* collect
    yield* Scope.close(scope, Exit.void)
    return {
      heapPerShard: (after.heapUsed - before.heapUsed) / request.shards,
      rssPerShard: (after.rss - before.rss) / request.shards,
      readySeconds,
      settleSeconds
    } satisfies MemoryReply
  })

process.once("message", (request: MemoryRequest) => {
  Effect.runPromise(measure(request).pipe(Effect.provideService(References.MinimumLogLevel, "Warn"))).then(
    (reply) => process.send?.({ ok: true, reply }, () => process.exit(0)),
    (error: unknown) => process.send?.({ ok: false, error: String(error) }, () => process.exit(1))
  )
})
