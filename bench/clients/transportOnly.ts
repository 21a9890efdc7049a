/**
 * The floor of this library's required transport, for the idle-memory benchmark: per "shard" one
 * `NodeTransport` connection (effect/socket's WebSocket over `ws`, issue 2) with a fiber waiting in
 * `receive`, and nothing else — no shard state machine, no heartbeat, no IDENTIFY. Ready once every
 * connection has received Hello (PROTOCOL.md §1.4).
 *
 * It is not a gateway client (it never identifies) and takes part in no other benchmark: it shows how much
 * of the library's per-shard memory the transport alone takes, next to raw `ws`.
 */
import { Deferred, Effect } from "effect"
import { GatewayTransport } from "../../src/transport/GatewayTransport.ts"
import { gatewayUrl } from "../../src/transport/GatewayUrl.ts"
import * as NodeTransport from "../../src/transport/NodeTransport.ts"
import { BenchError } from "../BenchError.ts"
import type { Client, ClientOptions, RunningClient } from "./Client.ts"

const start = (options: ClientOptions) =>
  Effect.gen(function*() {
    const transport = yield* GatewayTransport
    const url = gatewayUrl(options.urls.gatewayUrl, { compression: options.compression })
    const hellos = yield* Effect.forEach(Array.from({ length: options.shardCount }), () =>
      Effect.gen(function*() {
        const connection = yield* transport.connect(url)
        const hello = yield* Deferred.make<void>()
        yield* Effect.forkScoped(Effect.forever(Effect.andThen(connection.receive, Deferred.succeed(hello, undefined))))
        return hello
      }))
    const ready = Effect.forEach(hellos, Deferred.await, { discard: true })
    return { ready } satisfies RunningClient
  }).pipe(
    Effect.provide(NodeTransport.layer),
    Effect.mapError((error) => new BenchError({ message: `NodeTransport alone: ${String(error)}` }))
  )

export const transportOnlyClient: Client = {
  name: "NodeTransport alone (connection + pending receive, no shard)",
  countsEveryFrame: false,
  start
}
