/**
 * `npm start`: the runtime in one command.
 *
 * - With DISCORD_TOKEN set: the example bot against Discord (DiscordBot.ts) under the dashboard.
 * - Without it (the default): the gateway simulator embedded on 127.0.0.1, 16 shards over real sockets
 *   against it with demo traffic, and the live dashboard (Demo.ts). Keys inject faults and reshard; without
 *   a terminal, `--duration`, `--fault-every` and `--reshard-at` do (see `--help`).
 *
 * `q` / Ctrl-C (SIGINT, SIGTERM) shut down gracefully: `NodeRuntime.runMain` interrupts the program, the
 * Gateway's Scope closes and every shard saves its session and closes resumably (PROTOCOL.md §1.9).
 * Exit codes: 0 after a clean stop, 1 on a failure (printed as one message), 2 on bad flags, 130 on a signal.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect, Result } from "effect"
import * as Demo from "./dashboard/Demo.ts"
import * as DiscordBot from "./dashboard/DiscordBot.ts"
import { parseFlags, usage } from "./dashboard/Flags.ts"
import * as LogSink from "./dashboard/LogSink.ts"
import * as Terminal from "./dashboard/Terminal.ts"

const program = Effect.gen(function*() {
  const parsed = parseFlags(process.argv.slice(2))
  if (Result.isFailure(parsed)) {
    yield* Console.error(`npm start: ${parsed.failure}\n\n${usage}`)
    process.exitCode = 2
    return
  }
  const flags = parsed.success
  if (flags.help) return yield* Console.log(usage)

  const interactive = Terminal.isInteractive() && !flags.plain
  const sink = LogSink.make()
  const token = process.env.DISCORD_TOKEN
  const app = token !== undefined && token.trim() !== ""
    ? DiscordBot.run(flags, interactive, sink)
    : Demo.run(flags, interactive, sink)
  yield* app.pipe(
    Effect.catch((error) =>
      Effect.andThen(Console.error(`npm start: ${error.message}`), Effect.sync(() => {
        process.exitCode = 1
      }))
    ),
    Effect.provide(sink.layer)
  )
})

NodeRuntime.runMain(program)
