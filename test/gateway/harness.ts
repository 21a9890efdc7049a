/**
 * Test harness for Gateway tests: a Gateway wired to the in-process simulator (gateway and /gateway/bot)
 * under TestClock. Heartbeat interval I = 1500 ms.
 */
import { Effect, Layer, Redacted, Stream } from "effect"
import { Cache } from "../../src/Cache.ts"
import { Gateway, type GatewayLayerOptions } from "../../src/Gateway.ts"
import { GatewayInfo } from "../../src/GatewayInfo.ts"
import { IdentifyRateLimiter } from "../../src/IdentifyRateLimiter.ts"
import { Intents } from "../../src/protocol/Intents.ts"
import { SessionStore } from "../../src/SessionStore.ts"
import { GatewaySimulator, type SimulatorOptions } from "../../src/testing/GatewaySimulator.ts"
import * as SimulatorHttpClient from "../../src/testing/SimulatorHttpClient.ts"
import { token } from "../shard/harness.ts"

export { advance, settle, token } from "../shard/harness.ts"

/** `count` guild ids spread over shards: guild k is (k << 22) + k, so it routes to shard k % n. */
export const guildIds = (count: number): ReadonlyArray<string> =>
  Array.from({ length: count }, (_, k) => String((BigInt(k) << 22n) + BigInt(k)))

/** Simulator + /gateway/bot over it + memory limiter from /gateway/bot + memory store and cache. */
export const environment = (simulator: Partial<SimulatorOptions> = {}, sessions = SessionStore.layerMemory) => {
  const sim = GatewaySimulator.layer({ token, heartbeatIntervalMs: 1500, guilds: guildIds(32), ...simulator })
  const info = GatewayInfo.layer({ token: Redacted.make(token), apiBaseUrl: "https://discord.test/api" }).pipe(
    Layer.provide(SimulatorHttpClient.layer)
  )
  return Layer.mergeAll(info, IdentifyRateLimiter.layerFromGatewayInfo.pipe(Layer.provide(info)), sessions, Cache.layerMemory())
    .pipe(Layer.provideMerge(sim))
}

export const baseOptions: GatewayLayerOptions = {
  token: Redacted.make(token),
  intents: Intents.Guilds | Intents.GuildMessages
}

/** Builds a Gateway in the current Scope. */
export const makeGateway = (options: Partial<GatewayLayerOptions> = {}) =>
  Gateway.make({ ...baseOptions, ...options })

/** Everything `stream` emits from now on, in the test's Scope (a stream that fails just stops). */
export const collect = <A, E>(stream: Stream.Stream<A, E>) =>
  Effect.gen(function*() {
    const items: Array<A> = []
    yield* Effect.forkScoped(Stream.runForEach(stream, (a) => Effect.sync(() => items.push(a))).pipe(Effect.ignore))
    return items
  })
