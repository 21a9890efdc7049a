/**
 * The gateway simulator service of the public test kit (`effect-discord-gateway/testing`): a
 * protocol-faithful fake Discord gateway to test bots against, under TestClock.
 *
 * `GatewaySimulator.layer(options)` provides both the `GatewaySimulator` controls and a `GatewayTransport`
 * whose connections go to it in-process. A test drives the gateway side (`dispatch`, `close`, `drop`,
 * `reconnect`, `invalidateSession`, `withholdAcks`, …) and reads what the client did (`frames`,
 * `clientFrames`, `connections`, `sessions`). The rules the simulator enforces are those of PROTOCOL.md
 * §1–§4 and §9; its recordings are what the §10 conformance checks read.
 *
 * ```ts
 * const test = Effect.gen(function*() {
 *   const sim = yield* GatewaySimulator
 *   // … start the bot with the GatewayTransport from the same layer …
 *   yield* sim.dispatch("MESSAGE_CREATE", { guild_id: "81384788765712384", content: "hi" })
 *   const identifies = yield* sim.clientFrames({ op: 2 })
 * }).pipe(Effect.provide(GatewaySimulator.layer({ token: "fake-token", guilds: ["81384788765712384"] })))
 * ```
 */
import { Context, Effect, Layer } from "effect"
import { GatewayTransport } from "../transport/GatewayTransport.ts"
import type { SimulatorControls } from "./SimulatorServer.ts"
import { makeSimulatorServer } from "./SimulatorServer.ts"
import type { SimulatorOptions } from "./SimulatorOptions.ts"
import { connectInProcess } from "./SimulatorTransport.ts"

export type { ResolvedSimulatorOptions, SimulatorOptions } from "./SimulatorOptions.ts"
export { DocumentedIntents, PrivilegedIntents } from "./SimulatorOptions.ts"
export type {
  FrameFilter,
  RecordedConnection,
  RecordedFrame,
  RecordedRestRequest,
  RefusedConnection
} from "./SimulatorRecording.ts"
export type {
  GatewayBotInfo,
  GatewayBotReply,
  NextConnectionBehaviour,
  ReplayBuffers,
  SimulatorConnectionHandlers,
  SimulatorControls,
  SimulatorPort,
  SimulatorServer,
  SimulatorSessionInfo
} from "./SimulatorServer.ts"
export { makeSimulatorServer } from "./SimulatorServer.ts"
export type { ShardTarget, ShardTuple } from "./SimulatorSessions.ts"

/** The simulated gateway: controls for the test, recordings of the client. See `SimulatorControls`. */
export class GatewaySimulator extends Context.Service<GatewaySimulator, SimulatorControls>()(
  "effect-discord-gateway/testing/GatewaySimulator"
) {
  /**
   * In-process simulator: provides `GatewaySimulator` and a `GatewayTransport` whose connections go to it —
   * no sockets, no delay, plain JSON text frames (never compressed; `encoding=etf` is refused). Its timers
   * run in the layer's Scope on the Clock in context (TestClock under `it.effect`). Invalid options throw
   * when the layer is built.
   */
  static readonly layer = (options: SimulatorOptions): Layer.Layer<GatewaySimulator | GatewayTransport> =>
    Layer.effectContext(Effect.gen(function*() {
      const server = yield* makeSimulatorServer(options)
      const { open: _open, ...controls } = server
      return Context.make(GatewaySimulator, controls).pipe(
        Context.add(GatewayTransport, GatewayTransport.of({ connect: connectInProcess(server) }))
      )
    }))
}
