/**
 * Drop to RESUMED: one shard connected and healthy (a heartbeat acknowledged on the current connection),
 * then the simulator drops its connection abruptly (`drop`: no close frame, the client sees 1006); the
 * figure is the time from the drop request to the client's application seeing RESUMED. It includes the
 * IPC hop to the producer process (a fraction of a millisecond), the reconnect to the resume URL, Hello,
 * RESUME and RESUMED, all on loopback.
 *
 * Simulator (`SimulatorSocketServer`): heartbeat interval 400 ms (by default), so one is acknowledged
 * within a second; each client waits 2.5 intervals after READY/RESUMED before the next drop. Target (issue 5): within 50 ms.
 */
import { Deferred, Effect } from "effect"
import type { ClientKey } from "./clients/index.ts"
import { BenchToken } from "./clients/Client.ts"
import { clients } from "./clients/index.ts"
import type { Producer } from "./producer.ts"
import type { Section } from "./report.ts"
import { fixed, median } from "./stats.ts"
import { BenchError } from "./BenchError.ts"

export interface ResumeOptions {
  /** Drops per client. */
  readonly drops: number
  /** The simulator's heartbeat interval (default 400 ms); each drop waits 2.5 intervals after READY/RESUMED. */
  readonly heartbeatMs?: number
  readonly clients: ReadonlyArray<ClientKey>
}

export type ResumeResult = ReadonlyArray<readonly [ClientKey, ReadonlyArray<number>]>

/** Milliseconds from each drop to RESUMED, for one client. */
const dropsOf = (producer: Producer, key: ClientKey, drops: number, heartbeatMs: number) =>
  Effect.scoped(Effect.gen(function*() {
    const urls = yield* producer.start("socket", {
      token: BenchToken,
      heartbeatIntervalMs: heartbeatMs,
      maxConcurrency: 16,
      identifyWindowMs: 0,
      recordFrames: false
    })
    yield* Effect.addFinalizer(() => Effect.ignore(producer.stop))
    let resumed: Deferred.Deferred<number> | undefined
    const running = yield* clients[key].start({
      urls,
      shardCount: 1,
      compression: "none",
      onlyMessages: false,
      onMessage: () => {},
      onResumed: () => {
        if (resumed !== undefined) Deferred.doneUnsafe(resumed, Effect.succeed(performance.now()))
      }
    })
    yield* running.ready.pipe(
      Effect.timeoutOrElse({ duration: "30 seconds", orElse: () => Effect.fail(new BenchError({ message: `${clients[key].name}: not ready` })) })
    )
    const latencies: Array<number> = []
    for (let i = 0; i < drops; i++) {
      yield* Effect.sleep(2.5 * heartbeatMs) // a heartbeat acknowledged on this connection
      const done = yield* Deferred.make<number>()
      resumed = done
      const droppedAt = performance.now()
      yield* producer.drop(0)
      const at = yield* Deferred.await(done).pipe(
        Effect.timeoutOrElse({ duration: "30 seconds", orElse: () => Effect.fail(new BenchError({ message: `${clients[key].name}: no RESUMED` })) })
      )
      latencies.push(at - droppedAt)
    }
    return latencies
  }))

export const runResume = (producer: Producer, options: ResumeOptions): Effect.Effect<ResumeResult, BenchError> =>
  Effect.gen(function*() {
    const result: Array<readonly [ClientKey, ReadonlyArray<number>]> = []
    for (const key of options.clients) result.push([key, yield* dropsOf(producer, key, options.drops, options.heartbeatMs ?? 400)])
    return result
  })

export const resumeSection = (result: ResumeResult, options: ResumeOptions): Section => {
  const ours = result.find(([key]) => key === "ours")?.[1]
  return {
    tables: [{
      title: "Drop to RESUMED (loopback)",
      note: `${options.drops} abrupt drops per client (no close frame), one shard; from the drop request to RESUMED seen by the application.`,
      header: ["client", "median (ms)", "min (ms)", "max (ms)"],
      rows: result.map(([key, ms]) => [clients[key].name, fixed(median(ms), 1), fixed(Math.min(...ms), 1), fixed(Math.max(...ms), 1)])
    }],
    targets: ours === undefined ? [] : [{
      name: "drop to RESUMED",
      goal: "≤ 50 ms",
      measured: `${fixed(median(ours), 1)} ms`,
      met: median(ours) <= 50
    }]
  }
}
