/**
 * The dashboard: watches the `Gateway` in context and shows it — live on a terminal, as plain status lines
 * elsewhere — and turns keys (or, without a keyboard, timers from the flags) into faults and reshards.
 *
 * What runs, each in a fiber of the dashboard's Scope:
 * - a subscriber counting dispatches per shard for events/s (a "sliding" buffer: watching never slows a
 *   shard down; synthetic SHARD_READY / GATEWAY_READY, seq 0, are not counted);
 * - a poll of `gateway.status` every `refreshMs` (about 4×/s): the redraw (or, in plain mode, a status line
 *   every `statusEveryMs`), and `statusEvents` between consecutive polls for the event log ("shard 3
 *   resumed", reshard progress, PROTOCOL.md §1.7, §4; polling also sees the reshard's ready count move).
 *   The runtime's own logs join the event log through the `LogSink`;
 * - raw-mode keys (Keys.ts) on a terminal; `--duration`, `--fault-every`, `--reshard-at` on timers.
 *
 * It ends on `q` / Ctrl-C, when the duration is up, or when the Gateway ends (a fatal close fails it with
 * that typed error); then the screen is restored and a final status line printed. Closing the Gateway
 * (and so every shard) is the caller's Scope's job. All time goes through Effect's Clock.
 */
import { Clock, Deferred, Effect, Exit, Option, Schedule, Stream } from "effect"
import type { FatalCloseError } from "../Errors.ts"
import { Gateway } from "../Gateway.ts"
import * as EventLog from "./EventLog.ts"
import * as EventRates from "./EventRates.ts"
import * as Faults from "./Faults.ts"
import { actionsForInput, type DashboardAction } from "./Keys.ts"
import type { LogSink } from "./LogSink.ts"
import { formatUptime, renderScreen, renderStatusLine, type StatusView } from "./StatusTable.ts"
import * as Terminal from "./Terminal.ts"

export interface DashboardOptions {
  /** What runs, for the title: "simulator 127.0.0.1:40123", "discord.com". */
  readonly title: string
  /** Live screen and keys (a TTY), or plain status lines. */
  readonly interactive: boolean
  /** The key help line. */
  readonly keys: string
  /** Lines for the event log at start (where the simulator listens…). */
  readonly intro?: ReadonlyArray<string> | undefined
  /** Redraw period. Default 250 ms. */
  readonly refreshMs?: number | undefined
  /** Plain mode: status line period. */
  readonly statusEveryMs: number
  /** Stop after this long. */
  readonly durationMs?: number | undefined
  /** Inject a random fault this often (needs `faults`). */
  readonly faultEveryMs?: number | undefined
  /** Reshard to twice the count at this time. */
  readonly reshardAtMs?: number | undefined
  /** The embedded simulator's fault controls; undefined against Discord. */
  readonly faults?: Faults.FaultControls | undefined
  /** Runs before a reshard to `count` (the simulator then recommends that count). */
  readonly beforeReshard?: ((count: number) => Effect.Effect<void>) | undefined
  /** Receives the runtime's logs while the dashboard runs. */
  readonly logSink: LogSink
  /** Where text goes. Default `process.stdout.write`. */
  readonly write?: ((text: string) => void) | undefined
}

/** Runs the dashboard until quit, the duration, or the Gateway's end (failing with its fatal close error). */
export const run = (options: DashboardOptions): Effect.Effect<void, FatalCloseError, Gateway> =>
  Effect.gen(function*() {
    const gateway = yield* Gateway
    const clock = yield* Clock.Clock
    const write = options.write ?? ((text: string) => {
      process.stdout.write(text)
    })
    const refreshMs = options.refreshMs ?? 250
    const start = clock.currentTimeMillisUnsafe()
    const uptime = () => clock.currentTimeMillisUnsafe() - start
    const rates = EventRates.make()
    let status: StatusView = yield* gateway.status
    let rateView: ReadonlyMap<number, number> = new Map()

    yield* Effect.scoped(Effect.gen(function*() {
      const log = EventLog.make(
        200,
        options.interactive ? undefined : (line) => write(`[${formatUptime(line.atMs)}] ${line.text}\n`)
      )
      const note = (text: string) => log.push(uptime(), text)
      const detach = options.logSink.attach(note)
      yield* Effect.addFinalizer(() => Effect.sync(detach))
      for (const line of options.intro ?? []) note(line)

      const done = yield* Deferred.make<void, FatalCloseError>()
      const quit = (reason: string) =>
        Effect.andThen(Effect.sync(() => note(reason)), Deferred.succeed(done, undefined))

      // ---- events/s: count every dispatch by shard (never slowing the shards: sliding buffer) ----
      yield* Effect.forkScoped(
        Stream.runForEachArray(
          gateway.dispatches({ overflow: "sliding", capacity: 8192 }),
          (batch) =>
            Effect.sync(() => {
              for (const dispatch of batch) if (dispatch.seq !== 0) rates.record(dispatch.shard)
            })
        ).pipe(Effect.ignore)
      )

      // ---- the end of the Gateway ends the dashboard (a fatal close fails it) ----
      yield* Effect.forkScoped(Effect.flatMap(Effect.exit(gateway.join), (exit) => Deferred.done(done, exit)))

      // ---- actions ----
      const injectFault = (kind: Faults.FaultKind) =>
        Effect.gen(function*() {
          const controls = options.faults
          if (controls === undefined) {
            note("faults need the embedded simulator (run without DISCORD_TOKEN)")
            return
          }
          const picked = yield* Faults.pickShard(yield* gateway.status)
          if (Option.isNone(picked)) {
            note("no ready shard to fault right now")
            return
          }
          const { shardCount, shardId } = picked.value
          yield* Faults.inject(controls, kind, [shardId, shardCount])
          note(Faults.describeFault(kind, shardId))
        })

      let resharding = false
      const reshard = Effect.gen(function*() {
        if (resharding) {
          note("a reshard is already running")
          return
        }
        const from = (yield* gateway.status).shardCount
        const to = from * 2
        resharding = true
        note(`reshard ${from} → ${to} requested`)
        yield* Effect.forkScoped(
          Effect.gen(function*() {
            if (options.beforeReshard !== undefined) yield* options.beforeReshard(to)
            yield* gateway.reshard(to)
            note(`reshard ${from} → ${to} complete`)
          }).pipe(
            Effect.catch((error) => Effect.sync(() => note(`reshard ${from} → ${to} failed: ${error.message}`))),
            Effect.ensuring(Effect.sync(() => {
              resharding = false
            }))
          )
        )
      })

      const perform = (action: DashboardAction) => {
        switch (action._tag) {
          case "Fault":
            return injectFault(action.fault)
          case "Reshard":
            return reshard
          case "Quit":
            return quit("quitting: closing every shard resumably…")
        }
      }

      // ---- output ----
      let previous: StatusView | undefined
      const refresh = Effect.flatMap(gateway.status, (next) =>
        Effect.sync(() => {
          for (const line of EventLog.statusEvents(previous, next)) note(line)
          previous = next
          status = next
          rateView = rates.sample(clock.currentTimeMillisUnsafe())
        }))

      if (options.interactive) {
        const screen = yield* Terminal.screen
        const draw = Effect.andThen(
          refresh,
          Effect.suspend(() =>
            screen.draw(renderScreen(
              { title: options.title, status, rates: rateView, uptimeMs: uptime(), log: log.lines(), keys: options.keys },
              screen.size(),
              true
            ))
          )
        )
        yield* Effect.forkScoped(Effect.repeat(draw, Schedule.spaced(refreshMs)))
        yield* Effect.forkScoped(Stream.runForEach(Terminal.keys, (chunk) =>
          Effect.forEach(actionsForInput(chunk), perform, { discard: true })))
      } else {
        yield* Effect.forkScoped(Effect.repeat(refresh, Schedule.spaced(refreshMs)))
        const printStatus = Effect.suspend(() =>
          Effect.sync(() => write(`${renderStatusLine(status, rateView, uptime())}\n`))
        )
        yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep(options.statusEveryMs), printStatus)))
      }

      // ---- timers from the flags ----
      if (options.durationMs !== undefined) {
        yield* Effect.forkScoped(Effect.andThen(Effect.sleep(options.durationMs), quit(`${formatUptime(options.durationMs)} elapsed: stopping`)))
      }
      if (options.reshardAtMs !== undefined) {
        yield* Effect.forkScoped(Effect.andThen(Effect.sleep(options.reshardAtMs), reshard))
      }
      if (options.faultEveryMs !== undefined) {
        const every = options.faultEveryMs
        yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep(every), Effect.flatMap(Faults.randomFault, injectFault))))
      }

      yield* Deferred.await(done)
      yield* refresh
    })).pipe(
      // after the screen is restored: the last status, on the normal screen / in the log
      Effect.onExit((exit) =>
        Exit.hasInterrupts(exit) || Exit.isSuccess(exit)
          ? Effect.sync(() => write(`${renderStatusLine(status, rateView, uptime())} · ${Exit.isSuccess(exit) ? "stopped" : "interrupted"}\n`))
          : Effect.void
      )
    )
  })
