/**
 * Test helpers for MemberRequests: a real Shard against the simulator (test/shard/harness.ts), wired the way
 * the Gateway will wire it — `send` = `shard.send({ op: 8, d })`, `onDispatch` fed from a DispatchSink
 * subscription, and (optionally) `shardLost` called when the shard leaves the ready phase.
 */
import { Effect, Fiber, Result, Stream } from "effect"
import { DispatchSink } from "../../src/DispatchSink.ts"
import * as MemberRequests from "../../src/MemberRequests.ts"
import type { GuildMembersChunkEvent } from "../../src/protocol/Events.ts"
import { Intents } from "../../src/protocol/Intents.ts"
import type * as Shard from "../../src/Shard.ts"
import { GatewaySimulator, type RecordedFrame } from "../../src/testing/GatewaySimulator.ts"
import { advance, guilds, layer, settle, startShard } from "../shard/harness.ts"

export { advance, settle } from "../shard/harness.ts"

/** GUILDS | GUILD_MEMBERS: all-members requests allowed, presences not. */
export const MemberIntents = Intents.Guilds | Intents.GuildMembers

/** A guild the simulator holds (shard 0 of 1). */
export const guild = guilds[0]!
export const otherGuild = guilds[2]!
/** A guild the simulator does not hold: its op 8 requests go unanswered (chunks can be injected with `sim.dispatch`). */
export const silentGuild = "222222222222222222"

/** 2500 members per guild, 1000 per chunk: an all-members request is answered by 3 chunks. */
export const bigGuilds = layer({ simulator: { membersPerGuild: 2500, memberChunkSize: 1000 } })

/** Member `i` of a simulated guild (SimulatorMembers: `MemberIdBase + i`). */
export const memberId = (i: number) => String(300000000000000000n + BigInt(i))

/** Member requests on `shard`, fed by a fresh DispatchSink subscription in the test's Scope. */
export const attach = (shard: Shard.Shard, intents: number, extra: Partial<MemberRequests.MemberRequestsDeps> = {}) =>
  Effect.gen(function*() {
    const sink = yield* DispatchSink
    // only the two events MemberRequests reads reach this subscriber's buffer
    const dispatches = yield* sink.subscription({ names: ["GUILD_MEMBERS_CHUNK", "RATE_LIMITED"] })
    const requests = yield* MemberRequests.make({
      send: (_guildId, d) => shard.send({ op: 8, d }),
      shardOf: () => shard.id,
      intents,
      ...extra
    })
    yield* Effect.forkScoped(Effect.ignore(Stream.runForEach(dispatches, requests.onDispatch)))
    return requests
  })

/** Starts a shard with `intents`, attaches member requests, and waits until it is ready. */
export const setup = (options: { readonly intents?: number; readonly extra?: Partial<MemberRequests.MemberRequestsDeps> } = {}) =>
  Effect.gen(function*() {
    const intents = options.intents ?? MemberIntents
    const shard = yield* startShard({ intents })
    const requests = yield* attach(shard, intents, options.extra)
    yield* advance(100)
    return { shard, requests, sim: yield* GatewaySimulator }
  })

/** The Gateway-like glue: `shardLost` whenever the shard leaves the ready phase. */
export const glueShardLost = (shard: Shard.Shard, requests: MemberRequests.MemberRequests) =>
  Effect.forkScoped(Effect.suspend(() => {
    let wasReady = false
    return Stream.runForEach(shard.changes, (state) => {
      const lost = wasReady && state.phase !== "ready"
      wasReady = state.phase === "ready"
      return lost ? requests.shardLost(state.shardId, `phase ${state.phase}`) : Effect.void
    })
  }))

export interface Consumer {
  /** Every chunk received so far, in order. */
  readonly chunks: Array<GuildMembersChunkEvent>
  readonly fiber: Fiber.Fiber<Result.Result<void, MemberRequests.MemberRequestError>>
  /** Whether the stream has ended (completed or failed). */
  readonly ended: () => boolean
}

/** Runs a request's stream in the background, recording its chunks; `fiber` ends with how the stream ended. */
export const consume = (stream: Stream.Stream<GuildMembersChunkEvent, MemberRequests.MemberRequestError>) =>
  Effect.gen(function*() {
    const chunks: Array<GuildMembersChunkEvent> = []
    const fiber = yield* Effect.forkChild(
      Effect.result(Stream.runForEach(stream, (chunk) => Effect.sync(() => chunks.push(chunk))))
    )
    const consumer: Consumer = { chunks, fiber, ended: () => fiber.pollUnsafe() !== undefined }
    return consumer
  })

/** Throws when the consumer's stream is still running (rather than waiting on a clock nobody moves). */
const mustHaveEnded = (consumer: Consumer) =>
  Effect.gen(function*() {
    yield* settle
    if (!consumer.ended()) throw new Error(`the member request is still running (${consumer.chunks.length} chunks so far)`)
  })

/** The error a consumer's stream failed with (fails the test if it completed or is still running). */
export const failureOf = (consumer: Consumer) =>
  Effect.gen(function*() {
    yield* mustHaveEnded(consumer)
    const result = yield* Fiber.join(consumer.fiber)
    if (Result.isSuccess(result)) throw new Error("expected the member request to fail, it completed")
    return result.failure
  })

/** The chunks of a consumer whose stream must have completed. */
export const completed = (consumer: Consumer) =>
  Effect.gen(function*() {
    yield* mustHaveEnded(consumer)
    const result = yield* Fiber.join(consumer.fiber)
    if (Result.isFailure(result)) throw new Error(`expected the member request to complete, it failed: ${result.failure.message}`)
    return consumer.chunks
  })

export interface Op8Frame {
  readonly at: number
  readonly d: {
    readonly guild_id: string
    readonly query?: string
    readonly limit?: number
    readonly user_ids?: ReadonlyArray<string>
    readonly presences?: boolean
    readonly nonce?: string
  }
}

/** The op 8 frames the client sent, as the simulator recorded them. */
export const op8Frames = Effect.gen(function*() {
  const sim = yield* GatewaySimulator
  const frames: ReadonlyArray<RecordedFrame> = yield* sim.clientFrames({ op: 8 })
  return frames.map((f): Op8Frame => ({ at: f.at, d: f.d as Op8Frame["d"] }))
})

/** The RATE_LIMITED dispatches the simulator sent. */
export const rateLimitedFrames = Effect.gen(function*() {
  const sim = yield* GatewaySimulator
  const frames = yield* sim.serverFrames({ op: 0 })
  return frames.filter((f) => f.t === "RATE_LIMITED").map((f) => ({
    at: f.at,
    d: f.d as { readonly opcode: number; readonly retry_after: number; readonly meta: { readonly guild_id: string; readonly nonce?: string } }
  }))
})

/** Moves time by `ms` in steps (heartbeats keep the connection alive along the way). */
export const advanceBy = (ms: number, step = 500) =>
  Effect.gen(function*() {
    for (let left = ms; left > 0; left -= step) yield* advance(Math.min(step, left))
  })

export const isAllMembers = (frame: Op8Frame) => frame.d.query === "" && frame.d.limit === 0
