/**
 * `npm run soak` (`node --expose-gc src/soakMain.ts`): the soak over real sockets in real time (issue 5
 * "Soak"). The gateway simulator listens on 127.0.0.1 (`SimulatorSocketServer`, frames not recorded), a
 * sharded Gateway connects to it over `NodeTransport`, and `SoakRun` drives traffic, a fault every few
 * seconds (every kind) and reshards for `--duration` seconds (default 600), printing a progress line every
 * `--progress-every` seconds and the report at the end.
 *
 * Heap figures are taken after a full GC when node runs with `--expose-gc` (otherwise as they are, with a
 * note). The simulator shares the process, and its replay buffers fill as traffic flows, so they are sized to
 * one minute of a shard's traffic (enough to RESUME after any fault here, at least 500 events) and the start
 * figure is taken after a warm-up of up to a minute (a third of a shorter run, and before the first reshard).
 * The buffers are part of both figures and are not full after a shorter warm-up (nor after a late reshard),
 * so the report also shows what they hold at start and end: a difference there is the simulator's, not the
 * runtime's.
 *
 * Exit codes: 0 when nothing was lost or delivered twice and no unhandled error happened; 1 otherwise (or
 * when the soak could not start); 2 on bad flags. Uncaught exceptions and unhandled rejections of the
 * process count as unhandled errors.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect, Random, Result } from "effect"
import * as SoakEnvironment from "./soak/SoakEnvironment.ts"
import * as SoakFlags from "./soak/SoakFlags.ts"
import { format, formatProgress, problems } from "./soak/SoakReport.ts"
import * as SoakRun from "./soak/SoakRun.ts"
import { makeGuilds } from "./soak/SoakTraffic.ts"

const gc = (globalThis as { readonly gc?: () => void }).gc

const heap = {
  afterGc: Effect.sync(() => {
    if (gc !== undefined) {
      gc()
      gc()
    }
    return process.memoryUsage().heapUsed
  }),
  now: Effect.sync(() => process.memoryUsage().heapUsed)
}

const program = Effect.gen(function*() {
  const parsed = SoakFlags.parse(process.argv.slice(2))
  if (Result.isFailure(parsed)) {
    yield* Console.error(`npm run soak: ${parsed.failure}\n\n${SoakFlags.usage}`)
    process.exitCode = 2
    return
  }
  const flags = parsed.success
  if (flags.help) return yield* Console.log(SoakFlags.usage)

  const external: Array<string> = []
  process.on("uncaughtException", (error) => {
    external.push(`uncaught exception: ${error.stack ?? String(error)}`)
    console.error(`uncaught exception: ${String(error)}`)
  })
  process.on("unhandledRejection", (reason) => {
    external.push(`unhandled rejection: ${String(reason)}`)
    console.error(`unhandled rejection: ${String(reason)}`)
  })

  const guilds = makeGuilds(flags.guilds)
  // Without --seed one is drawn and printed, so a run's choices (fault order, targets, timings) can be replayed.
  const seed = flags.seed ?? (yield* Random.nextIntBetween(0, 2 ** 31 - 1))
  yield* Console.log(
    `soak: ${flags.shards} shards, ${flags.guilds} guilds, ${flags.rate} events/s, a fault every ~${flags.faultEveryMs / 1000} s, ` +
      `a reshard every ${flags.reshardEveryMs / 1000} s, for ${flags.durationMs / 1000} s (simulator on 127.0.0.1, real sockets), ` +
      `seed ${seed}`
  )
  if (gc === undefined) yield* Console.log("note: node runs without --expose-gc; heap figures are taken without a full GC")

  const soak = SoakRun.run({
    guilds,
    durationMs: flags.durationMs,
    faultEveryMs: flags.faultEveryMs,
    rate: flags.rate,
    reshardEveryMs: flags.reshardEveryMs,
    progressEveryMs: flags.progressEveryMs,
    onProgress: (progress) => Console.log(formatProgress(progress)),
    onError: (line) => console.error(line),
    // Before the first reshard, so start and end compare the same shard count when the plan returns to it.
    warmupMs: Math.round(Math.min(60_000, flags.durationMs / 3, flags.reshardEveryMs * 0.8)),
    heap,
    externalErrors: () => external
  }).pipe(
    Effect.provide(SoakEnvironment.overSockets({
      shards: flags.shards,
      guildIds: guilds.ids,
      maxConcurrency: flags.maxConcurrency,
      heartbeatIntervalMs: flags.heartbeatMs,
      recordFrames: false,
      replayBufferSize: Math.max(500, Math.ceil((flags.rate / flags.shards) * 60))
    }))
  )
  const result = yield* Effect.result(Random.withSeed(soak, seed))
  if (Result.isFailure(result)) {
    yield* Console.error(`npm run soak: could not run: ${result.failure.message}`)
    process.exitCode = 1
    return
  }
  const report = result.success
  for (const line of format(report)) yield* Console.log(line)
  if (problems(report).length > 0) process.exitCode = 1
})

NodeRuntime.runMain(program)
