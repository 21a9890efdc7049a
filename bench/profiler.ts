/**
 * Optional CPU profiles of the timed part of a benchmark only. With `BENCH_PROFILE=<directory>` set,
 * `profiled(name, effect)` records a V8 CPU profile (node:inspector) while `effect` runs and writes
 * `<directory>/<name>.cpuprofile`; without it, `effect` runs as is. Read the file with
 * `node bench/profileSummary.ts`.
 */
import { mkdirSync, writeFileSync } from "node:fs"
import { Session } from "node:inspector/promises"
import { join } from "node:path"
import { Effect } from "effect"

const directory = process.env.BENCH_PROFILE
let session: Session | undefined

/** Runs `effect`, recording a CPU profile of it when BENCH_PROFILE is set. */
export const profiled = <A, E, R>(name: string, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => {
  if (directory === undefined || directory === "") return effect
  return Effect.acquireUseRelease(
    Effect.promise(async () => {
      if (session === undefined) {
        session = new Session()
        session.connect()
        await session.post("Profiler.enable")
        await session.post("Profiler.setSamplingInterval", { interval: 100 })
      }
      await session.post("Profiler.start")
      return session
    }),
    () => effect,
    (session) =>
      Effect.promise(async () => {
        const { profile } = await session.post("Profiler.stop")
        mkdirSync(directory, { recursive: true })
        writeFileSync(join(directory, `${name.replace(/[^\w.-]+/g, "_")}.cpuprofile`), JSON.stringify(profile))
      })
  )
}
