/**
 * The benchmark producer: a child process that serves the gateway simulator on 127.0.0.1 and drives it.
 * It runs in its own process so that the clients' CPU time (`process.cpuUsage` in the parent) is theirs
 * alone, and so that producer and consumer each get one of the machine's two cores.
 *
 * Two transports over the same protocol core (PROTOCOL.md §9):
 * - `"socket"`: `SimulatorSocketServer` itself, for startup, idle memory and drop-to-RESUMED;
 * - `"load"`: `loadServer.ts`, for the dispatch benchmarks: `prepare` holds the wire and pushes the run's
 *   pre-generated events (`events.ts`) through the simulator's own `dispatch` control, in a tight loop,
 *   interleaved over the shards; `release` then writes them all at once (the timed part).
 *
 * Commands arrive over IPC (`ProducerCommand`); each is answered with a `ProducerReply` of the same id.
 * The process exits when its parent disconnects.
 */
import { Effect, Exit, Scope } from "effect"
import * as SimulatorSocketServer from "../src/testing/SimulatorSocketServer.ts"
import type { SimulatorControls } from "../src/testing/SimulatorServer.ts"
import { block, type BlockKind } from "./events.ts"
import * as LoadServer from "./loadServer.ts"

/** Options of a simulator server (JSON-serialisable). */
export type ServerOptions = Omit<SimulatorSocketServer.SimulatorSocketServerOptions, "host" | "port">

export type Transport = "socket" | "load"

export type ProducerCommand =
  | { readonly id: number; readonly type: "start"; readonly transport: Transport; readonly options: ServerOptions }
  | { readonly id: number; readonly type: "stop" }
  | {
    readonly id: number
    readonly type: "prepare"
    readonly kind: BlockKind
    readonly shardCount: number
    readonly blocks: number
  }
  | { readonly id: number; readonly type: "release" }
  | { readonly id: number; readonly type: "drop"; readonly shardId: number }

export type ProducerReply =
  | { readonly id: number; readonly ok: true; readonly value?: unknown }
  | { readonly id: number; readonly ok: false; readonly error: string }

/** The URLs of a started server. */
export interface ServerUrls {
  readonly gatewayUrl: string
  readonly resumeUrl: string
  readonly apiBaseUrl: string
}

interface Running {
  readonly scope: Scope.Closeable
  readonly controls: SimulatorControls
  readonly load: LoadServer.LoadServer | undefined
}

let running: Running | undefined

const stop = async () => {
  const current = running
  running = undefined
  if (current !== undefined) await Effect.runPromise(Scope.close(current.scope, Exit.void))
}

const start = async (transport: Transport, options: ServerOptions): Promise<ServerUrls> => {
  await stop()
  const scope = Scope.makeUnsafe()
  const make: Effect.Effect<LoadServer.LoadServer | SimulatorSocketServer.SimulatorSocketServer, never, Scope.Scope> =
    transport === "load" ? LoadServer.make(options) : SimulatorSocketServer.make(options)
  const server = await Effect.runPromise(Scope.provide(make, scope))
  running = { scope, controls: server.controls, load: "hold" in server ? server : undefined }
  return { gatewayUrl: server.gatewayUrl, resumeUrl: server.resumeUrl, apiBaseUrl: server.apiBaseUrl }
}

/** Holds the wire and dispatches `blocks` blocks per shard through the core, interleaved over the shards. */
const prepare = (load: LoadServer.LoadServer, controls: SimulatorControls, kind: BlockKind, shardCount: number, blocks: number) => {
  const perShard = Array.from({ length: shardCount }, (_, shardId) =>
    block(kind, shardId, shardCount).map((event) => controls.dispatch(event.name, event.data)))
  const round: Array<Effect.Effect<void>> = []
  for (let i = 0; i < perShard[0]!.length; i++) for (const events of perShard) round.push(events[i]!)
  load.hold()
  Effect.runSync(Effect.forEach(Array.from({ length: blocks }), () => Effect.forEach(round, (dispatch) => dispatch, { discard: true }), { discard: true }))
}

const handle = async (command: ProducerCommand): Promise<unknown> => {
  if (command.type === "start") return start(command.transport, command.options)
  if (command.type === "stop") return stop()
  const current = running
  if (current === undefined) throw new Error(`${command.type}: no server is running`)
  switch (command.type) {
    case "drop":
      return Effect.runSync(current.controls.drop(command.shardId))
    case "prepare":
    case "release": {
      const load = current.load
      if (load === undefined) throw new Error(`${command.type} needs the "load" transport`)
      return command.type === "release"
        ? load.release()
        : prepare(load, current.controls, command.kind, command.shardCount, command.blocks)
    }
  }
}

process.on("message", (command: ProducerCommand) => {
  handle(command).then(
    (value) => process.send?.({ id: command.id, ok: true, value } satisfies ProducerReply),
    (error: unknown) => process.send?.({ id: command.id, ok: false, error: String(error) } satisfies ProducerReply)
  )
})
process.on("disconnect", () => process.exit(0))
