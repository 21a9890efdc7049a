/**
 * A bare-bones gateway client for the simulator tests: it opens connections through `GatewayTransport`
 * (the simulator's in-process layer) and sends/reads raw payloads, with none of the shard's logic, so each
 * test decides exactly what the "client" does.
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import type { ConnectionClosed, ConnectFailed } from "../../src/Errors.ts"
import { GatewaySimulator } from "../../src/testing/GatewaySimulator.ts"
import type { SimulatorOptions } from "../../src/testing/GatewaySimulator.ts"
import { GatewayTransport } from "../../src/transport/GatewayTransport.ts"

export const Token = "fake-token.Sim.XYZ-0123456789"
export const BaseUrl = "wss://gateway.simulator.invalid"
export const ResumeUrl = "wss://resume.simulator.invalid"
export const Query = "/?v=10&encoding=json"
export const AllIntents = 53608447
export const GUILDS = 1

export interface Payload {
  readonly op: number
  readonly d: any
  readonly s: number | null
  readonly t: string | null
}

export interface RawClient {
  /** The next frame (waits for one). */
  readonly next: Effect.Effect<Payload, ConnectionClosed>
  /** The next frame as raw text. */
  readonly nextText: Effect.Effect<string, ConnectionClosed>
  /** Reads until the connection ends: the frames still pending and the close. */
  readonly untilClosed: Effect.Effect<{ readonly frames: ReadonlyArray<Payload>; readonly closed: ConnectionClosed }>
  readonly send: (payload: unknown) => Effect.Effect<void, ConnectionClosed>
  readonly sendText: (text: string) => Effect.Effect<void, ConnectionClosed>
  readonly close: (code: number) => Effect.Effect<void>
  readonly identify: (d?: Record<string, unknown>) => Effect.Effect<void, ConnectionClosed>
  readonly resume: (sessionId: string, seq: number | null, token?: string) => Effect.Effect<void, ConnectionClosed>
}

export const identifyData = (d: Record<string, unknown> = {}) => ({
  token: Token,
  properties: { os: "linux", browser: "sim-test", device: "sim-test" },
  intents: GUILDS,
  ...d
})

/** Opens a connection (default: the base URL with v=10) and wraps it. */
export const connect = (
  url: string = BaseUrl + Query
): Effect.Effect<RawClient, ConnectFailed, GatewayTransport | Scope.Scope> =>
  Effect.gen(function*() {
    const transport = yield* GatewayTransport
    const connection = yield* transport.connect(url)
    const pending: Array<string> = []
    const nextText: Effect.Effect<string, ConnectionClosed> = Effect.suspend(() =>
      pending.length > 0
        ? Effect.succeed(pending.shift()!)
        : Effect.map(connection.receive, (batch) => {
          for (const frame of batch) pending.push(frame as string)
          return pending.shift()!
        })
    )
    const next = Effect.map(nextText, (text) => JSON.parse(text) as Payload)
    const untilClosed = Effect.gen(function*() {
      const frames: Array<Payload> = []
      while (true) {
        const result = yield* Effect.result(next)
        if (result._tag === "Failure") return { frames, closed: result.failure }
        frames.push(result.success)
      }
    })
    const send = (payload: unknown) => connection.send(JSON.stringify(payload))
    return {
      next,
      nextText,
      untilClosed,
      send,
      sendText: connection.send,
      close: (code) => connection.close(code),
      identify: (d) => send({ op: 2, d: identifyData(d) }),
      resume: (sessionId, seq, token = Token) => send({ op: 6, d: { token, session_id: sessionId, seq } })
    }
  })

/** Opens a connection, reads Hello, identifies, and reads READY (plus its GUILD_CREATEs when `guildCreates` > 0). */
export const connectReady = (d: Record<string, unknown> = {}, guildCreates = 0, url?: string) =>
  Effect.gen(function*() {
    const client = yield* connect(url)
    const hello = yield* client.next
    if (hello.op !== 10) throw new Error(`expected Hello, got op ${hello.op}`)
    yield* client.identify(d)
    const ready = yield* client.next
    if (ready.t !== "READY") throw new Error(`expected READY, got ${JSON.stringify(ready)}`)
    const guilds: Array<Payload> = []
    for (let i = 0; i < guildCreates; i++) guilds.push(yield* client.next)
    return { client, ready, guilds }
  })

/** `(guild_id >> 22) % count`, the documented formula (computed independently of the simulator). */
export const shardOf = (guildId: string, count: number) => Number((BigInt(guildId) >> 22n) % BigInt(count))

/**
 * Runs a test body against a fresh simulator (token `Token`, heartbeat interval 1500 ms, `defaults`, then
 * `options`). The Scope stays for `it.effect` to provide.
 */
export const withSimulator = (defaults: Partial<SimulatorOptions> = {}) =>
<A, E>(
  effect: Effect.Effect<A, E, GatewaySimulator | GatewayTransport | Scope.Scope>,
  options: Partial<SimulatorOptions> = {}
): Effect.Effect<A, E, Scope.Scope> =>
  Effect.provide(effect, GatewaySimulator.layer({ token: Token, heartbeatIntervalMs: 1500, ...defaults, ...options }))
