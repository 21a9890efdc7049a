/**
 * The soak itself, one implementation for both environments (issue 5 "Soak"): a sharded Gateway against the
 * simulator for a bounded time, with continuous traffic, a fault every few seconds (every kind, in turn),
 * and zero-downtime reshards; then a drain, and the report.
 *
 * 1. Build the Gateway (count recommended by the simulator's `/gateway/bot`) and subscribe to the soak's
 *    events; wait until every shard is ready.
 * 2. For `durationMs`: traffic (`SoakTraffic`), faults (`SoakFaults`), reshards (`SoakReshards`) — three
 *    fibers — and a progress snapshot every `progressEveryMs`.
 * 3. Drain: no more traffic or faults; wait (bounded) until no live session owes an event — zombies
 *    detected, invalidated shards re-identified, replays done.
 * 4. Report (`SoakReport`): the ledger's verdict against the sessions alive now, the wire counts from the
 *    simulator's connection records, faults, reshards, heap (with what the simulator buffers for replay),
 *    warnings and unhandled errors.
 *
 * Time is Effect's Clock only, so the same code runs under TestClock (in-process simulator, the test drives
 * the clock) and in real time (sockets). Every loop is bounded by a Clock deadline. The runtime's logs go to
 * `SoakLog` (counted; errors kept). The Gateway's Scope closes when the soak returns (sessions saved, 4000).
 */
import { Cause, Clock, Effect, Exit, Fiber, Redacted, Stream } from "effect"
import { Gateway, type GatewayLayerOptions } from "../Gateway.ts"
import { Intents } from "../protocol/Intents.ts"
import { ShardStrategy } from "../ShardStrategy.ts"
import { GatewaySimulator } from "../testing/GatewaySimulator.ts"
import { SoakToken } from "./SoakEnvironment.ts"
import * as SoakFaults from "./SoakFaults.ts"
import * as SoakLedger from "./SoakLedger.ts"
import * as SoakLog from "./SoakLog.ts"
import type { HeapSample, SoakProgress, SoakReport } from "./SoakReport.ts"
import * as SoakReshards from "./SoakReshards.ts"
import { readDelivery, SoakEventNames, type SoakGuilds } from "./SoakTraffic.ts"
import * as SoakTraffic from "./SoakTraffic.ts"
import { wireStats } from "./SoakWire.ts"

export interface SoakOptions {
  /** The guilds the simulator was built with (`SoakTraffic.makeGuilds`). */
  readonly guilds: SoakGuilds
  /** Traffic, faults and reshards run this long after the Gateway is ready. */
  readonly durationMs: number
  /** Mean time between faults (each wait is ×0.5–1.5 of it). */
  readonly faultEveryMs: number
  /** Events per second. */
  readonly rate: number
  /** A reshard this often (the first after this long). */
  readonly reshardEveryMs: number
  /** Traffic tick. Default 50 ms. */
  readonly tickMs?: number | undefined
  /** Progress snapshots this often. Default 10 s. */
  readonly progressEveryMs?: number | undefined
  readonly onProgress?: ((progress: SoakProgress) => Effect.Effect<void>) | undefined
  /** Each runtime error line as it happens. */
  readonly onError?: ((line: string) => void) | undefined
  /** The Gateway must be ready this soon after it starts. Default 120 s. */
  readonly readyTimeoutMs?: number | undefined
  /** The drain gives up after this long. Default 60 s. */
  readonly drainMs?: number | undefined
  /** The start heap is measured this long after the Gateway is ready (buffers warm). Default 0. */
  readonly warmupMs?: number | undefined
  /** How to read the heap: after a full GC (start and end), and cheaply (progress). None: no heap figures. */
  readonly heap?: {
    readonly afterGc: Effect.Effect<number>
    readonly now: Effect.Effect<number>
  } | undefined
  /** Errors raised outside Effect (e.g. the process's uncaught exceptions), read at the end. */
  readonly externalErrors?: (() => ReadonlyArray<string>) | undefined
  /** Gateway options beyond the defaults (token, intents and the recommended count are set). */
  readonly gateway?: Omit<Partial<GatewayLayerOptions>, "token"> | undefined
}

const SoakIntents = Intents.Guilds | Intents.GuildMessages | Intents.GuildMessageReactions | Intents.GuildMessageTyping

const reshardLabel = (reshard: { readonly phase: string; readonly from: number; readonly to: number; readonly ready: number; readonly total: number } | null) =>
  reshard === null || reshard.phase === "done" || reshard.phase === "failed"
    ? null
    : `${reshard.from} → ${reshard.to} ${reshard.phase} ${reshard.ready}/${reshard.total}`

const program = (options: SoakOptions, log: SoakLog.SoakLog) =>
  Effect.gen(function*() {
    const simulator = yield* GatewaySimulator
    const guilds = options.guilds
    const ledger = SoakLedger.make(guilds.ids.length)
    const errors: Array<string> = []
    const fail = (what: string) => (exit: Exit.Exit<unknown, unknown>) => {
      if (Exit.isFailure(exit) && !Exit.hasInterrupts(exit)) errors.push(`${what} failed: ${Cause.pretty(exit.cause)}`)
    }

    // 1. The Gateway, subscribed before any soak event is sent.
    const gateway = yield* Gateway.make({
      token: Redacted.make(SoakToken),
      intents: SoakIntents,
      shards: ShardStrategy.recommended,
      ...options.gateway
    })
    const clock = yield* Clock.Clock
    let start = clock.currentTimeMillisUnsafe()
    const switches: Array<number> = []
    const stream = yield* gateway.subscription({ names: [...SoakEventNames, "GATEWAY_RESHARDED"] })
    const consumer = yield* Effect.forkScoped(Stream.runForEach(stream, (dispatch) =>
      Effect.sync(() => {
        const at = clock.currentTimeMillisUnsafe() - start
        if (dispatch.name === "GATEWAY_RESHARDED") return void switches.push(at)
        const delivery = readDelivery(guilds, dispatch.data)
        if (delivery !== undefined) ledger.delivered(delivery.id, delivery.guild, dispatch.shard, at)
      })))

    const readyBy = (yield* Clock.currentTimeMillis) + (options.readyTimeoutMs ?? 120_000)
    while (!(yield* gateway.status).ready) {
      if ((yield* Clock.currentTimeMillis) >= readyBy) {
        errors.push("the Gateway was not ready in time")
        break
      }
      yield* Effect.sleep(100)
    }
    const initialShards = (yield* gateway.layout).count
    start = yield* Clock.currentTimeMillis
    const until = start + options.durationMs

    // 2. Traffic, faults, reshards, progress.
    const traffic = SoakTraffic.make(simulator, ledger, guilds)
    const faults = SoakFaults.make({ simulator, gateway, ledger, traffic })
    const reshards = SoakReshards.make({ simulator, gateway, initialCount: initialShards })

    let heapStart: HeapSample | null = null
    const heap = options.heap
    const sampleHeap = heap === undefined
      ? Effect.succeed(null)
      : Effect.gen(function*() {
        const bytes = yield* heap.afterGc
        return {
          bytes,
          shards: (yield* gateway.layout).count,
          simulatorReplay: yield* simulator.replayBuffers
        } satisfies HeapSample
      })
    const heapFiber = yield* Effect.forkScoped(Effect.gen(function*() {
      yield* Effect.sleep(options.warmupMs ?? 0)
      heapStart = yield* sampleHeap
    }))

    const faultCount = () => [...faults.counts().values()].reduce((n, c) => n + c, 0)
    const progress = (elapsedMs: number) =>
      Effect.gen(function*() {
        const status = yield* gateway.status
        const totals = ledger.totals()
        return {
          elapsedMs,
          shards: status.shardCount,
          reshard: reshardLabel(status.reshard),
          sent: totals.sent,
          delivered: totals.delivered,
          pending: totals.pending,
          duplicates: totals.duplicates,
          faults: faultCount(),
          reshards: reshards.outcomes().length,
          connections: (yield* simulator.connections).length,
          heapBytes: heap === undefined ? null : yield* heap.now
        } satisfies SoakProgress
      })
    const onProgress = options.onProgress
    const progressFiber = onProgress === undefined ? undefined : yield* Effect.forkScoped(Effect.gen(function*() {
      const every = Math.max(1, options.progressEveryMs ?? 10_000)
      // Bounded by the latest the soak can end (it is interrupted at the report anyway).
      const last = options.durationMs + (options.drainMs ?? 60_000) + 3_600_000
      for (let n = 1; n * every <= last; n++) {
        yield* Effect.sleep(Math.max(0, start + n * every - (yield* Clock.currentTimeMillis)))
        yield* onProgress(yield* progress((yield* Clock.currentTimeMillis) - start))
      }
    }))

    const workers = [
      ["traffic", yield* Effect.forkScoped(traffic.run({ rate: options.rate, untilMs: until, tickMs: options.tickMs ?? 50 }))],
      ["fault injector", yield* Effect.forkScoped(faults.run({ everyMs: options.faultEveryMs, untilMs: until }))],
      ["reshards", yield* Effect.forkScoped(reshards.run({ everyMs: options.reshardEveryMs, untilMs: until }))]
    ] as const
    for (const [name, fiber] of workers) fail(name)(yield* Fiber.await(fiber))
    fail("heap sampler")(yield* Fiber.await(heapFiber))

    // 3. Drain: until no live session owes an event (bounded).
    const drainBy = (yield* Clock.currentTimeMillis) + (options.drainMs ?? 60_000)
    let drained = false
    while ((yield* Clock.currentTimeMillis) < drainBy) {
      const alive = new Set((yield* simulator.sessions).map((s) => s.id))
      if (ledger.owed(alive) === 0) {
        drained = true
        break
      }
      yield* Effect.sleep(250)
    }
    yield* Effect.sleep(1000) // late duplicates would show now

    // 4. The report.
    const alive = new Set((yield* simulator.sessions).map((s) => s.id))
    const events = ledger.settle(alive)
    const status = yield* gateway.status
    const elapsedMs = (yield* Clock.currentTimeMillis) - start
    if (progressFiber !== undefined) {
      yield* Fiber.interrupt(progressFiber)
      if (onProgress !== undefined) yield* onProgress(yield* progress(elapsedMs))
    }
    const heapEnd = yield* sampleHeap
    const consumerExit = consumer.pollUnsafe()
    if (consumerExit !== undefined) {
      errors.push(`the dispatch stream ended during the soak: ${Exit.isFailure(consumerExit) ? Cause.pretty(consumerExit.cause) : "end of stream"}`)
    }
    let switchIndex = 0
    const report: SoakReport = {
      elapsedMs,
      initialShards,
      finalShards: status.shardCount,
      events,
      wire: wireStats(yield* simulator.connections, initialShards + reshards.outcomes().reduce((n, r) => n + r.to, 0)),
      faults: new Map(faults.counts()),
      faultsSkipped: faults.skipped(),
      reshards: reshards.outcomes().map((r) => ({
        from: r.from,
        to: r.to,
        startedAtMs: r.startedAt - start,
        durationMs: r.durationMs,
        // A successful reshard announces its switch once; a failed one never does.
        switchedAtMs: r.error === null ? switches[switchIndex++] ?? null : null,
        error: r.error
      })),
      heapStart,
      heapEnd,
      warnings: log.warnings(),
      errors: [
        ...log.errorLines(),
        ...(log.errors() > log.errorLines().length ? [`… and ${log.errors() - log.errorLines().length} more runtime errors`] : []),
        ...errors,
        ...(options.externalErrors?.() ?? [])
      ],
      gatewayEnded: status.ended,
      drained
    }
    return report
  })

/**
 * Runs a soak in the environment in context (`SoakEnvironment.inProcess` or `overSockets`) and returns its
 * report; the Gateway is shut down (resumably) before it returns. Fails only if the Gateway cannot be built.
 */
export const run = (options: SoakOptions) =>
  Effect.suspend(() => {
    const log = SoakLog.make(options.onError)
    return Effect.scoped(program(options, log)).pipe(Effect.provide(log.layer))
  })
