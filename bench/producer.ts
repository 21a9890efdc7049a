/**
 * The parent's handle on the producer process (`simulatorProcess.ts`): forks it in the current Scope
 * (killed when the Scope closes), and turns its IPC commands into Effects. Every request is bounded by a
 * timeout, so a wedged child fails the benchmark instead of hanging it.
 */
import { fork } from "node:child_process"
import { Context, Effect, Layer } from "effect"
import type { Scope } from "effect"
import type { BlockKind } from "./events.ts"
import type { ProducerCommand, ProducerReply, ServerOptions, ServerUrls, Transport } from "./simulatorProcess.ts"
import { BenchError } from "./BenchError.ts"

export type { ServerOptions, ServerUrls, Transport } from "./simulatorProcess.ts"

type Request = ProducerCommand extends infer C ? C extends unknown ? Omit<C, "id"> : never : never

export interface Producer {
  /** Starts a fresh simulator server on a transport (stopping the previous one) and returns its URLs. */
  readonly start: (transport: Transport, options: ServerOptions) => Effect.Effect<ServerUrls, BenchError>
  /** Stops the server: every connection is terminated. */
  readonly stop: Effect.Effect<void, BenchError>
  /** "load" transport: holds the wire and dispatches `blocks` blocks of `kind` to each of `shardCount` shards. */
  readonly prepare: (kind: BlockKind, shardCount: number, blocks: number) => Effect.Effect<void, BenchError>
  /** "load" transport: writes everything prepared. Resolves once the producer has started writing. */
  readonly release: Effect.Effect<void, BenchError>
  /** Drops the connection(s) of a shard without a close frame (the client sees 1006). */
  readonly drop: (shardId: number) => Effect.Effect<void, BenchError>
}

const RequestTimeout = "60 seconds"

/** Forks the producer process in the current Scope. */
export const make: Effect.Effect<Producer, never, Scope.Scope> = Effect.gen(function*() {
  const child = yield* Effect.acquireRelease(
    Effect.sync(() =>
      fork(new URL("./simulatorProcess.ts", import.meta.url), { execArgv: (process.env.BENCH_PRODUCER_ARGS ?? "").split(" ").filter((a) => a !== ""), stdio: ["ignore", "inherit", "inherit", "ipc"] })
    ),
    // Disconnecting lets the child exit by itself (and write a --cpu-prof profile); kill it if it does not.
    (child) =>
      Effect.callback<void>((resume) => {
        if (child.exitCode !== null) return resume(Effect.void)
        child.once("exit", () => resume(Effect.void))
        child.disconnect()
      }).pipe(Effect.timeout("5 seconds"), Effect.ignore, Effect.ensuring(Effect.sync(() => child.kill())))
  )
  let nextId = 0
  const pending = new Map<number, (reply: ProducerReply) => void>()
  child.on("message", (reply: ProducerReply) => {
    const resume = pending.get(reply.id)
    pending.delete(reply.id)
    resume?.(reply)
  })

  const request = <A>(command: Request): Effect.Effect<A, BenchError> =>
    Effect.callback<A, BenchError>((resume) => {
      const id = ++nextId
      pending.set(id, (reply) => resume(reply.ok ? Effect.succeed(reply.value as A) : Effect.fail(new BenchError({ message: reply.error }))))
      child.send({ ...command, id })
      return Effect.sync(() => pending.delete(id))
    }).pipe(
      Effect.timeoutOrElse({
        duration: RequestTimeout,
        orElse: () => Effect.fail(new BenchError({ message: `producer: no answer to ${command.type}` }))
      })
    )

  return {
    start: (transport, options) => request<ServerUrls>({ type: "start", transport, options }),
    stop: request<void>({ type: "stop" }),
    prepare: (kind, shardCount, blocks) => request<void>({ type: "prepare", kind, shardCount, blocks }),
    release: request<void>({ type: "release" }),
    drop: (shardId) => request<void>({ type: "drop", shardId })
  } satisfies Producer
})

/** The producer process as a service, for sharing one process between benchmarks (the smoke test). */
export class ProducerProcess extends Context.Service<ProducerProcess, Producer>()("bench/ProducerProcess") {
  static readonly layer: Layer.Layer<ProducerProcess> = Layer.effect(ProducerProcess, make)
}
