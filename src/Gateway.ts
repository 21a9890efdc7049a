/**
 * Gateway: every shard this process runs, under supervision, as one service (PROTOCOL.md §3, §4, §6).
 *
 * - Discovery: GET /gateway/bot (through `GatewayInfo`) gives the URL, the recommended count and the
 *   identify limits, unless the URL and a fixed count are injected (item 1).
 * - Layout: a `ShardStrategy` says which shard ids this process runs, out of how many.
 * - Supervision: each shard is a fiber in a FiberMap keyed by shard id, in the Gateway's Scope. A shard
 *   survives transient faults by itself (Shard.ts); a defect restarts that shard only; a fatal close code
 *   fails the whole Gateway with its typed error and opens no further connection.
 * - Startup: shards start in id order through the shared `IdentifyRateLimiter`, which identifies bucket
 *   by bucket (items 16–18); resumes take no identify slot.
 * - Dispatch: one hub for every shard (`DispatchSink`): any number of subscribers, each with its own
 *   bounded buffer and overflow strategy, optionally filtered by event name.
 * - Readiness: a shard is ready once its READY guilds have loaded (`ShardReadiness`, item 53); the hub
 *   carries synthetic `SHARD_READY` and `GATEWAY_READY` events (seq 0) on each transition.
 * - Commands: to one shard, to the shard owning a guild (ops 4, 8, 31, 43; item 52), or presence to all.
 * - Shutdown (closing the Gateway's Scope): every shard stops, by default resumably — sessions are saved
 *   and closed with 4000 so the next process RESUMEs; `shutdown: "end-session"` closes with 1000 instead.
 *
 * The per-dispatch path adds one switch on the event name and a counter bump to the shard's path; cache,
 * readiness and member-request bookkeeping run only for the events they need.
 */
import {
  Cause,
  Clock,
  Context,
  Deferred,
  Duration,
  Effect,
  FiberMap,
  Layer,
  Metric,
  Option,
  Schedule,
  type Scope,
  Stream,
  SubscriptionRef
} from "effect"
import { Cache } from "./Cache.ts"
import * as Dispatch from "./Dispatch.ts"
import {
  type DispatchStreamError,
  DispatchSink,
  type DispatchSinkOptions,
  type SubscribeOptions
} from "./DispatchSink.ts"
import {
  type FatalCloseError,
  InvalidCommand,
  type PayloadTooLarge,
  ShardNotRunning,
  type ShardStopped
} from "./Errors.ts"
import { type GatewayOptions, validateOptions } from "./GatewayConfig.ts"
import { GatewayInfo } from "./GatewayInfo.ts"
import type { GatewayShardStatus, GatewayStatus } from "./GatewayStatus.ts"
import { IdentifyRateLimiter } from "./IdentifyRateLimiter.ts"
import { SessionStore } from "./SessionStore.ts"
import { GatewayTransport } from "./transport/GatewayTransport.ts"
import * as MemberRequests from "./MemberRequests.ts"
import * as Metrics from "./Metrics.ts"
import { IntentBits } from "./protocol/Intents.ts"
import type { GuildMembersChunkEvent } from "./protocol/Events.ts"
import type { PresenceUpdateData } from "./protocol/Payloads.ts"
import { shardIdForGuild } from "./protocol/Snowflake.ts"
import * as Shard from "./Shard.ts"
import * as ShardReadiness from "./ShardReadiness.ts"
import { initialState } from "./ShardState.ts"
import type { ShardLayout } from "./ShardStrategy.ts"

/** What the Gateway adds to the connection options of `GatewayOptions`. */
export interface GatewayRuntimeOptions {
  /** The dispatch hub's default buffer and overflow strategy per subscriber. */
  readonly dispatch?: DispatchSinkOptions | undefined
  /** What closing the Gateway's Scope does: "resumable" (default: save sessions, close 4000) or "end-session" (1000). */
  readonly shutdown?: "resumable" | "end-session" | undefined
  /** Restart a shard the staleness watchdog reports (default false: report only). */
  readonly restartStaleShards?: boolean | undefined
  /** Shard options passed through to every shard (deadlines, reconnect schedule…). */
  readonly shard?:
    | Pick<
      Shard.ShardOptions,
      "connectTimeout" | "helloTimeout" | "readyTimeout" | "reconnectSchedule" | "invalidSessionDelayMs" | "commandBuffer"
    >
    | undefined
}

export type GatewayLayerOptions = GatewayOptions & GatewayRuntimeOptions

/** Errors of sending a command through the Gateway. */
export type GatewayCommandError = PayloadTooLarge | InvalidCommand | ShardStopped | ShardNotRunning

/** Commands that target one guild and travel on the shard owning it (item 52). */
export type GuildCommand = Extract<Shard.GatewayCommand, { readonly op: 4 | 8 | 31 | 43 }>

export interface GatewayService {
  /** The shard count and this process's shard ids. */
  readonly layout: Effect.Effect<ShardLayout>
  /** Every shard's dispatches (and SHARD_READY/GATEWAY_READY), as one stream; subscribes when it starts. */
  readonly dispatches: (options?: SubscribeOptions) => Stream.Stream<Dispatch.Dispatch, DispatchStreamError>
  /** Subscribes now (in the current Scope), so nothing published after this call is missed. */
  readonly subscription: (
    options?: SubscribeOptions
  ) => Effect.Effect<Stream.Stream<Dispatch.Dispatch, DispatchStreamError>, never, Scope.Scope>
  /** One event name, its data typed; other events never reach this subscriber's buffer. */
  readonly events: <Name extends string>(
    name: Name,
    options?: Omit<SubscribeOptions, "names">
  ) => Stream.Stream<Dispatch.Dispatch<Name>, DispatchStreamError>
  /** The status now. */
  readonly status: Effect.Effect<GatewayStatus>
  /** The status now, then on every change. */
  readonly statusChanges: Stream.Stream<GatewayStatus>
  /** The shard that owns a guild (BigInt arithmetic); guild-less events (DMs) belong to shard 0. */
  readonly shardForGuild: (guildId: string | null | undefined) => number
  /** Sends a command on one shard. */
  readonly send: (shardId: number, command: Shard.GatewayCommand) => Effect.Effect<void, GatewayCommandError>
  /** Sends a guild-scoped command on the shard owning its guild (op 31: split per owning shard). */
  readonly sendToGuild: (command: GuildCommand) => Effect.Effect<void, GatewayCommandError>
  /** Sets the presence on every shard (and on shards started later). */
  readonly setPresence: (presence: PresenceUpdateData) => Effect.Effect<void, GatewayCommandError>
  /**
   * Request Guild Members (op 8) on the shard owning the guild: the member chunks of this request (matched
   * by nonce), ending after `chunk_count` chunks. Honours RATE_LIMITED and the one-all-members-request-per-
   * guild-per-30 s rule; fails (never hangs) if the shard's session is lost or the Gateway stops.
   */
  readonly requestMembers: (
    options: MemberRequests.MemberRequestOptions
  ) => Stream.Stream<GuildMembersChunkEvent, MemberRequests.MemberRequestError>
  /** Starts a shard of the layout that is not running (it RESUMEs if its session was saved). */
  readonly openShard: (shardId: number) => Effect.Effect<void, ShardNotRunning>
  /** Stops one shard: resumable (save, 4000) or not (1000, default). */
  readonly closeShard: (shardId: number, options?: { readonly resumable?: boolean }) => Effect.Effect<void>
  /** Stops one shard resumably and starts it again (it RESUMEs). */
  readonly restartShard: (shardId: number) => Effect.Effect<void, ShardNotRunning>
  /** Stops every shard (resumable by default) and ends the dispatch streams. */
  readonly shutdown: (options?: { readonly resumable?: boolean }) => Effect.Effect<void>
  /** Waits for the Gateway to end: succeeds after shutdown, fails with a fatal close error. */
  readonly join: Effect.Effect<void, FatalCloseError>
}

export class Gateway extends Context.Service<Gateway, GatewayService>()("effect-discord-gateway/Gateway") {
  static readonly make = (options: GatewayLayerOptions) => make(options)
  /**
   * The Gateway as a Layer. Needs a `GatewayTransport`, `SessionStore`, `IdentifyRateLimiter`, `Cache` and
   * `GatewayInfo`; fails before any connection if the configuration or the shard layout is invalid.
   */
  static readonly layer = (options: GatewayLayerOptions) => Layer.effect(Gateway, make(options))
}

interface RunningShard {
  readonly shard: Shard.Shard
  readonly readiness: ShardReadiness.ShardReadiness
  stale: boolean
}

const make = Effect.fnUntraced(function*(rawOptions: GatewayLayerOptions) {
  const options = yield* validateOptions(rawOptions)
  const info = yield* GatewayInfo
  const limiter = yield* IdentifyRateLimiter
  const cache = yield* Cache
  const clock = yield* Clock.Clock
  const gatewayScope = yield* Effect.scope
  // Shards run in FiberMap fibers; they get the transport, store and limiter this Gateway was built with.
  const shardContext = yield* Effect.context<GatewayTransport | SessionStore | IdentifyRateLimiter>()

  // ---- discovery and layout (before any connection) ----
  const gatewayBot = yield* Effect.cached(info.gatewayBot)
  const layout: ShardLayout = yield* options.shards.resolve({
    recommended: Effect.map(gatewayBot, (bot) => bot.shards),
    total: Option.none()
  })
  const gatewayUrl = options.gatewayUrl ?? (yield* gatewayBot).url
  if (options.gatewayUrl === undefined) {
    yield* limiter.setSessionStartLimit((yield* gatewayBot).sessionStartLimit)
  }
  yield* Effect.logInfo(`gateway layout: ${layout.ids.length} of ${layout.count} shards`)

  const hub = yield* DispatchSink.make(rawOptions.dispatch)
  const guildsIntent = (options.intents & IntentBits.Guilds) !== 0
  const guildWaitTimeout = options.guildWaitTimeout
  let presence: PresenceUpdateData | undefined = options.presence
  const running = new Map<number, RunningShard>()
  const fibers = yield* FiberMap.make<number>()
  const ended = yield* Deferred.make<void, FatalCloseError>()
  let stopping = false
  let gatewayReady = false
  const eventCounts = new Map<number, Map<string, number>>()

  // ---- status ----
  const statusRef = yield* SubscriptionRef.make<GatewayStatus>({
    shardCount: layout.count,
    shards: layout.ids.map((id) => ({ ...initialState(id, layout.count), guilds: 0, ready: false, stale: false })),
    ready: false,
    ended: false
  })
  const snapshot: Effect.Effect<GatewayStatus> = Effect.gen(function*() {
    const shards: Array<GatewayShardStatus> = []
    for (const id of layout.ids) {
      const entry = running.get(id)
      const state = entry === undefined ? { ...initialState(id, layout.count), phase: "stopped" as const } : yield* entry.shard.state
      shards.push({
        ...state,
        guilds: yield* cache.guildCount(id),
        ready: entry?.readiness.isReady() ?? false,
        stale: entry?.stale ?? false
      })
    }
    return {
      shardCount: layout.count,
      shards,
      ready: shards.length > 0 && shards.every((s) => s.ready),
      ended: Deferred.isDoneUnsafe(ended)
    }
  })
  const refreshStatus = Effect.gen(function*() {
    const status = yield* snapshot
    yield* SubscriptionRef.set(statusRef, status)
    if (status.ready && !gatewayReady && !status.ended) {
      gatewayReady = true
      yield* hub.publish(Dispatch.make(0, 0, "GATEWAY_READY", { shards: status.shards.length }))
    } else if (!status.ready) {
      gatewayReady = false
    }
  })

  // ---- metrics: event counts per shard and name, flushed off the hot path ----
  const flushEventCounts = Effect.gen(function*() {
    for (const [shardId, counts] of eventCounts) {
      for (const [event, count] of counts) {
        if (count === 0) continue
        counts.set(event, 0)
        yield* Metric.update(Metric.withAttributes(Metrics.dispatches, { shard: String(shardId), event }), count)
      }
    }
  })
  yield* Effect.forkIn(Effect.repeat(flushEventCounts, Schedule.spaced("10 seconds")), gatewayScope)

  // ---- member requests (op 8), routed to the owning shard ----
  const members = yield* MemberRequests.make({
    send: (guildId, d) => send(shardForGuild(guildId), { op: 8, d }),
    shardOf: (guildId) => shardForGuild(guildId),
    intents: options.intents
  })

  // ---- the per-shard dispatch path ----
  const shardSink = (shardId: number, readiness: ShardReadiness.ShardReadiness): DispatchSink["Service"] => {
    const counts = new Map<string, number>()
    eventCounts.set(shardId, counts)
    return DispatchSink.of({
      ...hub,
      publish: (dispatch) => {
        counts.set(dispatch.name, (counts.get(dispatch.name) ?? 0) + 1)
        switch (dispatch.name) {
          case "READY":
          case "GUILD_CREATE":
          case "GUILD_UPDATE":
          case "GUILD_DELETE":
            return cache.apply(dispatch, layout.count).pipe(
              Effect.andThen(hub.publish(dispatch)),
              Effect.andThen(readiness.observe(dispatch))
            )
          case "GUILD_MEMBERS_CHUNK":
          case "RATE_LIMITED":
            return Effect.andThen(members.onDispatch(dispatch), hub.publish(dispatch))
          default:
            return hub.publish(dispatch)
        }
      }
    })
  }

  const onShardReady = (shardId: number, readyInfo: ShardReadiness.ReadyInfo) =>
    Effect.gen(function*() {
      if (readyInfo.missing > 0) {
        yield* Effect.logWarning(`shard ${shardId}: ${readyInfo.missing} of ${readyInfo.guilds} guilds did not load in time`)
      }
      yield* hub.publish(Dispatch.make(shardId, 0, "SHARD_READY", { shardId, ...readyInfo }))
      yield* refreshStatus
    })

  // ---- supervision ----
  const shardOptions = (shardId: number): Shard.ShardOptions => ({
    ...rawOptions.shard,
    token: options.token,
    shardId,
    shardCount: layout.count,
    intents: options.intents,
    gatewayUrl,
    compression: options.compression,
    largeThreshold: options.largeThreshold,
    presence
  })

  const runShard = (shardId: number) =>
    Effect.scoped(Effect.gen(function*() {
      const readiness = yield* ShardReadiness.make({
        guildsIntent,
        guildWaitTimeout,
        onReady: (readyInfo) => onShardReady(shardId, readyInfo)
      })
      const shard = yield* Shard.make(shardOptions(shardId)).pipe(
        Effect.provideService(DispatchSink, shardSink(shardId, readiness)),
        Effect.orDie // options were validated before any shard started
      )
      const entry: RunningShard = { shard, readiness, stale: false }
      running.set(shardId, entry)
      yield* Effect.addFinalizer(() =>
        Effect.suspend(() => {
          if (running.get(shardId) === entry) running.delete(shardId)
          return stopping ? Effect.void : refreshStatus
        })
      )
      // Status follows the shard's phase changes; a session leaving "ready" fails its member requests.
      let wasReady = false
      yield* Effect.forkScoped(shard.changes.pipe(
        Stream.runForEach((state) => {
          const lost = wasReady && state.phase !== "ready"
          wasReady = state.phase === "ready"
          return lost
            ? Effect.andThen(members.shardLost(shardId, `shard ${shardId} is ${state.phase}`), refreshStatus)
            : refreshStatus
        })
      ))
      yield* shard.join
    })).pipe(Effect.provide(shardContext), Effect.annotateLogs({ shard: shardId }))

  /** A fatal close fails the Gateway; a defect restarts this shard only (after a pause). */
  const supervised = (shardId: number): Effect.Effect<void> =>
    runShard(shardId).pipe(
      Effect.catchCause((cause) => {
        if (Cause.hasInterruptsOnly(cause)) return Effect.void
        const failure = Cause.findErrorOption(cause)
        if (Option.isSome(failure)) return fail(failure.value)
        return Effect.logError(`shard ${shardId} crashed; restarting it`, Cause.pretty(cause)).pipe(
          Effect.andThen(Effect.sleep("5 seconds")),
          Effect.andThen(Effect.suspend(() => supervised(shardId)))
        )
      })
    )

  const start = (shardId: number) => FiberMap.run(fibers, shardId, supervised(shardId), { onlyIfMissing: true })

  const stopAll = (resumable: boolean) =>
    Effect.gen(function*() {
      stopping = true
      yield* Effect.forEach(running.values(), (entry) => entry.shard.stop({ resumable }), {
        concurrency: "unbounded",
        discard: true
      })
      yield* FiberMap.clear(fibers)
      yield* members.shutdown
      yield* flushEventCounts
    })

  /** Ends the Gateway with a fatal error: no shard connects again, every stream fails with it. */
  const fail = (error: FatalCloseError): Effect.Effect<void> =>
    Effect.gen(function*() {
      if (Deferred.isDoneUnsafe(ended)) return
      yield* Effect.logError(`gateway failed: ${error.message}`)
      yield* Deferred.fail(ended, error)
      yield* hub.fail(error)
      // Stopping from outside the failing shard's fiber (it is one of the FiberMap's).
      yield* Effect.forkIn(Effect.andThen(stopAll(false), refreshStatus), gatewayScope)
    })

  const shutdown = (shutdownOptions?: { readonly resumable?: boolean }) =>
    Effect.gen(function*() {
      if (Deferred.isDoneUnsafe(ended)) return
      yield* stopAll(shutdownOptions?.resumable ?? true)
      yield* Deferred.succeed(ended, undefined)
      yield* refreshStatus
      yield* hub.end
    })

  yield* Effect.addFinalizer(() => shutdown({ resumable: rawOptions.shutdown !== "end-session" }))

  // Start in id order: each shard asks the limiter in turn, so buckets fill lowest id first.
  for (const id of layout.ids) yield* start(id)

  // ---- staleness watchdog ----
  if (options.staleAfter !== null) {
    const staleAfterMs = Duration.toMillis(options.staleAfter)
    const check = Effect.gen(function*() {
      const now = clock.currentTimeMillisUnsafe()
      let changed = false
      for (const [id, entry] of running) {
        const state = yield* entry.shard.state
        const guilds = yield* cache.guildCount(id)
        const stale = state.phase === "ready" && guilds > 0 && state.lastDispatchAt !== null &&
          now - state.lastDispatchAt > staleAfterMs
        if (stale !== entry.stale) {
          entry.stale = stale
          changed = true
          if (stale) {
            yield* Effect.logWarning(`shard ${id}: no dispatch for ${now - state.lastDispatchAt!} ms with ${guilds} guilds: stale`)
            yield* Metric.update(Metrics.staleShards, 1)
            if (rawOptions.restartStaleShards === true) yield* Effect.forkIn(restartShard(id), gatewayScope)
          }
        }
      }
      if (changed) yield* refreshStatus
    })
    yield* Effect.forkIn(
      Effect.repeat(check, Schedule.spaced(Duration.millis(Math.max(1000, staleAfterMs / 4)))),
      gatewayScope
    )
  }

  // ---- commands ----
  const shardFor = (shardId: number) =>
    Effect.suspend(() => {
      const entry = running.get(shardId)
      return entry === undefined
        ? Effect.fail(new ShardNotRunning({ shardId, detail: layout.ids.includes(shardId) ? "it is stopped" : `this process runs shards ${describeIds(layout.ids)} of ${layout.count}` }))
        : Effect.succeed(entry.shard)
    })

  const shardForGuild = (guildId: string | null | undefined): number =>
    guildId === null || guildId === undefined ? 0 : shardIdForGuild(guildId, layout.count)

  const send = (shardId: number, command: Shard.GatewayCommand) =>
    Effect.flatMap(shardFor(shardId), (shard) => shard.send(command))

  const sendToGuild = (command: GuildCommand): Effect.Effect<void, GatewayCommandError> => {
    if (command.op === 31) {
      const byShard = new Map<number, [string, ...Array<string>]>()
      for (const guildId of command.d.guild_ids) {
        const shardId = shardForGuild(guildId)
        const list = byShard.get(shardId)
        if (list === undefined) byShard.set(shardId, [guildId])
        else list.push(guildId)
      }
      return Effect.forEach(byShard, ([shardId, guildIds]) => send(shardId, { op: 31, d: { guild_ids: guildIds } }), {
        discard: true
      })
    }
    const guildId = (command.d as { readonly guild_id?: unknown }).guild_id
    if (typeof guildId !== "string") {
      return Effect.fail(new InvalidCommand({ op: command.op, detail: "a guild-scoped command needs a string guild_id" }))
    }
    return send(shardForGuild(guildId), command)
  }

  const setPresence = (next: PresenceUpdateData) =>
    Effect.gen(function*() {
      presence = next
      yield* Effect.forEach(running.keys(), (shardId) => send(shardId, { op: 3, d: next }), {
        concurrency: "unbounded",
        discard: true
      })
    })

  const openShard = (shardId: number) =>
    layout.ids.includes(shardId)
      ? Effect.asVoid(start(shardId))
      : Effect.fail(new ShardNotRunning({ shardId, detail: `it is not in this process's layout (${describeIds(layout.ids)} of ${layout.count})` }))

  const closeShard = (shardId: number, closeOptions?: { readonly resumable?: boolean }) =>
    Effect.gen(function*() {
      const entry = running.get(shardId)
      if (entry !== undefined) yield* entry.shard.stop({ resumable: closeOptions?.resumable ?? false })
      yield* FiberMap.remove(fibers, shardId)
      yield* refreshStatus
    })

  const restartShard = (shardId: number) =>
    Effect.andThen(closeShard(shardId, { resumable: true }), openShard(shardId))

  return Gateway.of({
    layout: Effect.succeed(layout),
    dispatches: (subscribeOptions) => hub.subscribe(subscribeOptions),
    subscription: (subscribeOptions) => hub.subscription(subscribeOptions),
    events: <Name extends string>(name: Name, subscribeOptions?: Omit<SubscribeOptions, "names">) =>
      hub.subscribe({ ...subscribeOptions, names: [name] }) as Stream.Stream<Dispatch.Dispatch<Name>, DispatchStreamError>,
    status: snapshot,
    statusChanges: SubscriptionRef.changes(statusRef),
    shardForGuild,
    send,
    requestMembers: members.request,
    sendToGuild,
    setPresence,
    openShard,
    closeShard,
    restartShard,
    shutdown,
    join: Deferred.await(ended)
  })
})

const describeIds = (ids: ReadonlyArray<number>): string =>
  ids.length === 0 ? "none" : ids.length > 8 ? `${ids[0]}…${ids[ids.length - 1]}` : ids.join(", ")
