/**
 * Gateway: every shard this process runs, under supervision, as one service (PROTOCOL.md §3, §4, §6).
 *
 * - Discovery: GET /gateway/bot (through `GatewayInfo`) gives the URL, the recommended count and the
 *   identify limits, unless the URL and a fixed count are injected (item 1).
 * - Layout: a `ShardStrategy` says which shard ids this process runs, out of how many.
 * - Supervision: each shard is a fiber in its own child Scope of its shard set's (ShardSet.ts), inside the
 *   Gateway's Scope. A shard survives transient faults by itself (Shard.ts); a defect restarts that shard
 *   only, and it RESUMEs; a fatal close code fails the whole Gateway with its typed error and opens no
 *   further connection.
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
  Clock,
  Context,
  Deferred,
  Duration,
  Effect,
  Exit,
  Latch,
  Layer,
  Metric,
  Option,
  Schedule,
  Scope,
  Semaphore,
  Stream,
  SubscriptionRef
} from "effect"
import { Cache } from "./Cache.ts"
import * as Dispatch from "./Dispatch.ts"
import { type DispatchStreamError, DispatchSink, type DispatchSinkOptions, type SubscribeOptions } from "./DispatchSink.ts"
import {
  type FatalCloseError,
  InvalidCommand,
  type PayloadTooLarge,
  ReshardFailed,
  ShardNotRunning,
  type ShardStopped
} from "./Errors.ts"
import { type GatewayOptions, validateOptions } from "./GatewayConfig.ts"
import { GatewayInfo } from "./GatewayInfo.ts"
import type { GatewayStatus, ReshardStatus } from "./GatewayStatus.ts"
import { HeartbeatTimer } from "./HeartbeatTimer.ts"
import { IdentifyRateLimiter } from "./IdentifyRateLimiter.ts"
import type * as MemberRequests from "./MemberRequests.ts"
import * as Metrics from "./Metrics.ts"
import type { GuildMembersChunkEvent } from "./protocol/Events.ts"
import type { PresenceUpdateData } from "./protocol/Payloads.ts"
import { shardIdForGuild } from "./protocol/Snowflake.ts"
import * as ReshardHandoff from "./ReshardHandoff.ts"
import { SessionStore } from "./SessionStore.ts"
import type * as Shard from "./Shard.ts"
import type * as ShardReadiness from "./ShardReadiness.ts"
import * as ShardSet from "./ShardSet.ts"
import type { ShardLayout } from "./ShardStrategy.ts"
import { GatewayTransport } from "./transport/GatewayTransport.ts"

/** What the Gateway adds to the connection options of `GatewayOptions`. */
export interface GatewayRuntimeOptions {
  /** The dispatch hub's default buffer and overflow strategy per subscriber. */
  readonly dispatch?: DispatchSinkOptions | undefined
  /** What closing the Gateway's Scope does: "resumable" (default: save sessions, close 4000) or "end-session" (1000). */
  readonly shutdown?: "resumable" | "end-session" | undefined
  /** Restart a shard the staleness watchdog reports (default false: report only). */
  readonly restartStaleShards?: boolean | undefined
  /** Resharding: automatic on 4011, an optional periodic check, deadlines and the dedup window. */
  readonly reshard?: ReshardOptions | undefined
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
  /**
   * Reshards to `shardCount` (default: what GET /gateway/bot recommends) without downtime: the new shard set
   * comes up beside the running one, and takes over once every new shard is ready; subscribers see one
   * continuous stream, each event once (see ReshardHandoff for the exact guarantee). Completes two dedup
   * windows after the switch (the next reshard may start then); status shows "done" earlier. Fails with
   * `ReshardFailed` — and leaves the running set untouched — if another reshard is running, the budget
   * cannot cover it, the layout is invalid, a new shard hits a fatal close, or it is not ready in time.
   */
  readonly reshard: (shardCount?: number) => Effect.Effect<void, ReshardFailed>
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

/** Reshard settings (issue: resharding as a supervised scope swap). */
export interface ReshardOptions {
  /** Reshard automatically when a shard is closed with 4011 (ShardingRequired). Default true. */
  readonly onShardingRequired?: boolean | undefined
  /** An automatic reshard goes to max(recommended, current × splitFactor). Default 2. */
  readonly splitFactor?: number | undefined
  /** Check periodically and reshard ahead of Discord's limit. Default off. */
  readonly check?: {
    readonly interval: Duration.Input
    /** Reshard when a shard holds more guilds than this. Default 1000 (Discord's hard limit is 2500). */
    readonly maxGuildsPerShard?: number | undefined
  } | undefined
  /** The new set must be ready within this; otherwise the reshard rolls back. Default: its identify time + 2 min. */
  readonly readyTimeout?: Duration.Input | undefined
  /** How far apart the two sets' copies of an event may arrive and still be deduplicated. Default 10 s. */
  readonly dedupWindow?: Duration.Input | undefined
  /** How long, after the dedup window, the old set may still finish in-flight member requests. Default 10 s. */
  readonly drainTimeout?: Duration.Input | undefined
}

const make = Effect.fnUntraced(function*(rawOptions: GatewayLayerOptions) {
  const options = yield* validateOptions(rawOptions)
  const info = yield* GatewayInfo
  const limiter = yield* IdentifyRateLimiter
  const cache = yield* Cache
  const clock = yield* Clock.Clock
  const gatewayScope = yield* Effect.scope
  // Shards get the transport, store and limiter this Gateway was built with, and the application's references
  // (logger, log level, clock…), not the services only the Gateway uses: each shard's fiber ends up with its
  // own flattened copy of its context's map, which then stays at the smaller size (measured: 0.4 KiB less per
  // shard).
  // They share one HeartbeatTimer (one sleeping fiber for every shard's heartbeat): the application's, when
  // its context has one, else one in the Gateway's Scope.
  const shardContext = Context.add(
    Context.omit(GatewayInfo, Cache, Layer.CurrentMemoMap, Scope.Scope)(
      yield* Effect.context<GatewayTransport | SessionStore | IdentifyRateLimiter>()
    ),
    HeartbeatTimer,
    yield* HeartbeatTimer.sharedOrMake
  )
  const reshardOptions = rawOptions.reshard ?? {}
  const now = () => clock.currentTimeMillisUnsafe()

  // ---- discovery and layout (before any connection) ----
  const gatewayBot = yield* Effect.cached(info.gatewayBot)
  const initialLayout: ShardLayout = yield* options.shards.resolve({
    recommended: Effect.map(gatewayBot, (bot) => bot.shards),
    total: Option.none()
  })
  const gatewayUrl = options.gatewayUrl ?? (yield* gatewayBot).url
  if (options.gatewayUrl === undefined) {
    yield* limiter.setSessionStartLimit((yield* gatewayBot).sessionStartLimit)
  }
  yield* Effect.logInfo(`gateway layout: ${initialLayout.ids.length} of ${initialLayout.count} shards`)

  const hub = yield* DispatchSink.make(rawOptions.dispatch)
  let presence: PresenceUpdateData | undefined = options.presence
  const ended = yield* Deferred.make<void, FatalCloseError>()
  let gatewayReady = false

  // ---- the shard sets: the live one, and during a reshard the one coming up ----
  interface BuiltSet {
    readonly set: ShardSet.ShardSet
    readonly scope: Scope.Closeable
  }
  let current: BuiltSet
  let staging: { readonly built: BuiltSet; readonly ready: Deferred.Deferred<void>; readonly failed: Deferred.Deferred<never, FatalCloseError> } | undefined
  let handoff: ReshardHandoff.ReshardHandoff | undefined
  let reshardStatus: ReshardStatus | null = null

  // ---- status ----
  const snapshot: Effect.Effect<GatewayStatus> = Effect.gen(function*() {
    const shards = yield* current.set.snapshot
    if (staging !== undefined && reshardStatus !== null) {
      reshardStatus = { ...reshardStatus, ready: staging.built.set.readyCount() }
    }
    return {
      shardCount: current.set.layout.count,
      shards,
      ready: shards.length > 0 && shards.every((s) => s.ready),
      ended: Deferred.isDoneUnsafe(ended),
      reshard: reshardStatus
    }
  })
  const statusRef = yield* SubscriptionRef.make<GatewayStatus>({
    shardCount: initialLayout.count,
    shards: [],
    ready: false,
    ended: false,
    reshard: null
  })
  const refreshNow = Effect.gen(function*() {
    const status = yield* snapshot
    yield* SubscriptionRef.set(statusRef, status)
    if (status.ready && !gatewayReady && !status.ended) {
      gatewayReady = true
      yield* hub.publish(Dispatch.make(0, 0, "GATEWAY_READY", { shards: status.shards.length }))
    } else if (!status.ready) {
      gatewayReady = false
    }
  })

  // Shard phase changes come in storms (a thousand shards starting): they mark the status dirty and one
  // refresher rebuilds it once per scheduler turn, instead of once per change.
  let refreshScheduled = false
  const refreshStatus: Effect.Effect<void> = Effect.suspend(() => {
    if (refreshScheduled) return Effect.void
    refreshScheduled = true
    return Effect.asVoid(Effect.forkIn(
      Effect.andThen(Effect.yieldNow, Effect.suspend(() => {
        refreshScheduled = false
        return refreshNow
      })),
      gatewayScope
    ))
  })

  // ---- routes: where a set's dispatches go ----
  /** The live set: to the hub, minus what the old set already delivered right after a reshard. */
  const liveRoute: ShardSet.Route = (dispatch) => {
    if (handoff !== undefined) {
      const at = now()
      if (handoff.expired(at)) handoff = undefined
      else if (!handoff.fromNew(dispatch, at)) return Effect.void
    }
    return hub.publish(dispatch)
  }
  const dropRoute: ShardSet.Route = () => Effect.void

  // ---- building a set ----
  const shardOptions = (layout: ShardLayout) => (shardId: number): Shard.ShardOptions => ({
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

  /**
   * A set of `layout` in a child Scope of the Gateway's; its dispatches go nowhere until the caller points its
   * route. The set's closures live as long as the set, so they hold nothing of the caller (a reshard's staging
   * route would keep that reshard, its handoff and the set before it reachable from every later set).
   */
  const buildSet = (layout: ShardLayout) =>
    Effect.gen(function*() {
      const scope = yield* Scope.fork(gatewayScope)
      const holder: { built?: BuiltSet } = {}
      const set = yield* ShardSet.make({
        layout,
        shardOptions: shardOptions(layout),
        intents: options.intents,
        guildWaitTimeout: options.guildWaitTimeout,
        cache,
        shardContext,
        // During a reshard the handoff needs every event from both sets; otherwise only what subscribers want.
        wants: (name) => staging !== undefined || handoff !== undefined || hub.wants(name),
        onFatal: (error) => Effect.suspend(() => onFatal(holder.built!, error)),
        onShardReady: (shardId, readyInfo) => Effect.suspend(() => onShardReady(holder.built!, shardId, readyInfo)),
        onChange: Effect.suspend(() => refreshStatus)
      }).pipe(Scope.provide(scope))
      const built: BuiltSet = { set, scope }
      holder.built = built
      return built
    })

  const onShardReady = (built: BuiltSet, shardId: number, readyInfo: ShardReadiness.ReadyInfo) =>
    Effect.gen(function*() {
      if (readyInfo.missing > 0) {
        yield* Effect.logWarning(`shard ${shardId}/${built.set.layout.count}: ${readyInfo.missing} of ${readyInfo.guilds} guilds did not load in time`)
      }
      if (built === current) {
        yield* hub.publish(Dispatch.make(shardId, 0, "SHARD_READY", { shardId, ...readyInfo }))
      } else if (staging !== undefined && built === staging.built && built.set.readyCount() === built.set.layout.ids.length) {
        yield* Deferred.succeed(staging.ready, undefined)
      }
      yield* refreshStatus
    })

  /** A fatal close: rolls a reshard back (new set), reshards (4011), or ends the Gateway. */
  const onFatal = (built: BuiltSet, error: FatalCloseError): Effect.Effect<void> =>
    Effect.gen(function*() {
      if (staging !== undefined && built === staging.built) return yield* Deferred.fail(staging.failed, error)
      if (built !== current) return // an old set closing after a switch
      if (error._tag === "ShardingRequired" && reshardOptions.onShardingRequired !== false) {
        yield* Effect.logWarning(`${error.message} Resharding automatically; the other shards keep serving meanwhile.`)
        yield* Effect.forkIn(
          automaticReshard.pipe(
            Effect.catch((failure) =>
              failure.reason === "in-progress" ? Effect.void : Effect.logError(failure.message)
            )
          ),
          gatewayScope
        )
        return
      }
      yield* fail(error)
    })

  /** Ends the Gateway with a fatal error: no shard connects again, every stream fails with it. */
  const fail = (error: FatalCloseError): Effect.Effect<void> =>
    Effect.gen(function*() {
      if (Deferred.isDoneUnsafe(ended)) return
      yield* Effect.logError(`gateway failed: ${error.message}`)
      yield* Deferred.fail(ended, error)
      yield* hub.fail(error)
      // Stopping from outside the failing shard's fiber (it is one of the set's).
      yield* Effect.forkIn(Effect.andThen(stopEverything(false), refreshNow), gatewayScope)
    })

  const stopEverything = (resumable: boolean) =>
    Effect.gen(function*() {
      const pending = staging
      staging = undefined
      if (pending !== undefined) yield* Scope.close(pending.built.scope, Exit.void)
      yield* current.set.stopAll(resumable)
    })

  const shutdown = (shutdownOptions?: { readonly resumable?: boolean }) =>
    Effect.gen(function*() {
      if (Deferred.isDoneUnsafe(ended)) return
      yield* stopEverything(shutdownOptions?.resumable ?? true)
      yield* Deferred.succeed(ended, undefined)
      yield* refreshNow
      yield* hub.end
    })

  // ---- metrics: event counts per shard and name, flushed off the hot path ----
  yield* Effect.forkIn(
    Effect.repeat(Effect.suspend(() => current.set.flushMetrics), Schedule.spaced("10 seconds")),
    gatewayScope
  )

  // ---- start ----
  current = yield* buildSet(initialLayout)
  current.set.route = liveRoute
  yield* Effect.addFinalizer(() => shutdown({ resumable: rawOptions.shutdown !== "end-session" }))
  yield* current.set.startAll

  // ---- resharding: the new set comes up beside the old one, then takes over ----
  const reshardLock = yield* Semaphore.make(1)
  const dedupWindowMs = Duration.toMillis(Duration.fromInputUnsafe(reshardOptions.dedupWindow ?? "10 seconds"))
  const drainTimeout = reshardOptions.drainTimeout ?? "10 seconds"

  const reshardOnce = (requested: number | undefined): Effect.Effect<void, ReshardFailed> =>
    Effect.gen(function*() {
      const from = current.set.layout.count
      const refuse = (reason: ReshardFailed["reason"], detail: string, to: number | null = requested ?? null) =>
        Effect.fail(new ReshardFailed({ from, to, reason, detail }))
      if (Deferred.isDoneUnsafe(ended)) return yield* refuse("ended", "the Gateway has ended")
      const total = requested ?? (yield* Effect.mapError(info.gatewayBot, (e) => new ReshardFailed({ from, to: null, reason: "discovery", detail: e.message }))).shards
      const layout = yield* options.shards.resolve({
        recommended: Effect.map(info.gatewayBot, (bot) => bot.shards),
        total: Option.some(total)
      }).pipe(Effect.mapError((e) => new ReshardFailed({ from, to: total, reason: "layout", detail: e.message })))
      // Refuse up front when the daily budget cannot cover the new set's IDENTIFYs.
      const budget = yield* limiter.status
      if (budget.remaining < layout.ids.length) {
        return yield* refuse("budget", `the new set needs ${layout.ids.length} IDENTIFYs but ${budget.remaining} of today's ${budget.total} session starts are left (reset at ${new Date(budget.resetAt).toISOString()})`, total)
      }
      const readyTimeout = reshardOptions.readyTimeout ??
        Duration.millis(Math.ceil(layout.ids.length / budget.maxConcurrency) * 5000 + Duration.toMillis(options.guildWaitTimeout) + 120_000)
      yield* Effect.logInfo(`resharding ${from} → ${layout.count}: starting ${layout.ids.length} shards beside the running ones`)
      yield* Metric.update(Metrics.reshards, 1)

      // Overlap: the old set delivers (and is remembered); the new set is staged, its start-up kept back.
      const caughtUp = yield* Latch.make(false)
      const h = ReshardHandoff.make({
        windowMs: dedupWindowMs,
        capacity: 100_000,
        oldShards: current.set.layout,
        newShards: layout,
        onCaughtUp: () => caughtUp.openUnsafe()
      })
      handoff = undefined
      // `let`, cleared once closed: nothing of this reshard may keep the old set reachable afterwards.
      let old: BuiltSet | undefined = current
      // Recorded once published: a record can satisfy the catch-up and let the switch run, which must not
      // overtake this event.
      old.set.route = (dispatch) =>
        Effect.andThen(hub.publish(dispatch), Effect.sync(() => h.recordDelivered(dispatch, now())))
      const stagingRoute: ShardSet.Route = (dispatch, startup) =>
        startup ? Effect.void : Effect.sync(() => h.stage(dispatch, now()))
      reshardStatus = { phase: "starting", from, to: layout.count, ready: 0, total: layout.ids.length, error: null }
      const built = yield* buildSet(layout)
      built.set.route = stagingRoute
      const ready = yield* Deferred.make<void>()
      const failed = yield* Deferred.make<never, FatalCloseError>()
      staging = { built, ready, failed }
      yield* built.set.startAll
      yield* refreshNow

      const outcome = yield* Effect.raceFirst(Deferred.await(ready), Deferred.await(failed)).pipe(
        Effect.timeoutOrElse({ duration: readyTimeout, orElse: () => Effect.fail("timeout" as const) }),
        Effect.result
      )
      if (outcome._tag === "Failure") {
        // Roll back: the new set's Scope closes (its sessions end, 1000); the old set goes on untouched.
        staging = undefined
        old.set.route = liveRoute
        yield* Scope.close(built.scope, Exit.void)
        const failure = outcome.failure === "timeout"
          ? new ReshardFailed({ from, to: layout.count, reason: "not-ready", detail: `the new shards were not all ready within ${Duration.format(Duration.fromInputUnsafe(readyTimeout))}` })
          : new ReshardFailed({ from, to: layout.count, reason: "fatal", detail: outcome.failure.message })
        reshardStatus = { ...reshardStatus, phase: "failed", error: failure.message }
        yield* refreshNow
        yield* Effect.logError(failure.message)
        return yield* failure
      }

      // Let the old set catch up: events sent before a new shard's READY reached the old set only, and it
      // must have delivered them before the switch (bounded by the window: without traffic, nothing to wait for).
      reshardStatus = { ...reshardStatus, phase: "switching", ready: layout.ids.length }
      yield* refreshNow
      yield* caughtUp.await.pipe(
        Effect.timeoutOrElse({ duration: Duration.millis(dedupWindowMs), orElse: () => Effect.void })
      )

      // Switch, atomically: release the staged events the old set did not deliver, in order, before any
      // live new-set event. For one more window the old set stays connected and each event goes through
      // whichever set has it first.
      const flushed = yield* Latch.make(false) // made before the flush: nothing may yield between it and the swap
      const switchedAt = now()
      const released = h.flush(switchedAt)
      old.set.route = (dispatch) => Effect.suspend(() => h.fromOld(dispatch, now()) ? hub.publish(dispatch) : Effect.void)
      built.set.route = (dispatch, startup) => Effect.andThen(flushed.await, () => liveRoute(dispatch, startup))
      handoff = h
      current = built
      staging = undefined
      yield* cache.reshard(layout.count)
      for (const dispatch of released) yield* hub.publish(dispatch)
      yield* flushed.open
      built.set.route = liveRoute
      yield* hub.publish(Dispatch.make(0, 0, "GATEWAY_RESHARDED", {
        from,
        to: layout.count,
        released: released.length,
        deduplicated: h.stats().deduplicated
      }))
      gatewayReady = false
      reshardStatus = { ...reshardStatus, phase: "draining" }
      yield* refreshNow

      // Drain: the old set's late copies get the window; member requests in flight on it may finish there
      // (up to the drain timeout). Then its Scope closes (1000): no fiber or socket of it remains.
      yield* Effect.sleep(Duration.millis(dedupWindowMs))
      old.set.route = dropRoute
      const draining = old.set.members
      yield* Effect.gen(function*() {
        while ((yield* draining.inFlight) > 0) yield* Effect.sleep("100 millis")
      }).pipe(Effect.timeoutOrElse({ duration: drainTimeout, orElse: () => Effect.void }))
      yield* Scope.close(old.scope, Exit.void)
      old = undefined
      const stats = h.stats()
      reshardStatus = { ...reshardStatus, phase: "done" }
      yield* refreshNow
      yield* Effect.logInfo(`resharded ${from} → ${layout.count}: ${stats.released} staged events released, ${stats.deduplicated} duplicates dropped`)
      // The handoff still drops the new set's late copies until two windows after the switch (a new shard
      // replaying after a RESUME, say). The next reshard must not start before: it would replace it.
      const remaining = switchedAt + 2 * dedupWindowMs - now()
      if (remaining > 0) yield* Effect.sleep(Duration.millis(remaining))
      // Expired now; the live route drops it at the next dispatch, but without traffic there may be none.
      if (handoff === h) handoff = undefined
    })

  const reshard = (requested?: number): Effect.Effect<void, ReshardFailed> =>
    reshardLock.withPermitsIfAvailable(1)(reshardOnce(requested)).pipe(
      Effect.flatMap(Option.match({
        onNone: () =>
          Effect.fail(new ReshardFailed({ from: current.set.layout.count, to: requested ?? null, reason: "in-progress", detail: "another reshard is running; two never run at once" })),
        onSome: () => Effect.void
      }))
    )

  const splitFactor = reshardOptions.splitFactor ?? 2
  /** 4011 or the periodic check: the larger of /gateway/bot's count and current × split factor. */
  const automaticReshard = Effect.gen(function*() {
    const count = current.set.layout.count
    const recommended = yield* Effect.mapError(info.gatewayBot, (e) => new ReshardFailed({ from: count, to: null, reason: "discovery", detail: e.message }))
    yield* reshard(Math.max(recommended.shards, Math.ceil(count * splitFactor)))
  })

  if (reshardOptions.check !== undefined) {
    const maxGuilds = reshardOptions.check.maxGuildsPerShard ?? 1000
    const check = Effect.gen(function*() {
      if (staging !== undefined) return
      const counts = yield* cache.guildCountsByShard
      let busiest = 0
      for (const n of counts.values()) busiest = Math.max(busiest, n)
      const bot = yield* info.gatewayBot
      if (busiest > maxGuilds || bot.shards > current.set.layout.count) {
        yield* Effect.logInfo(`reshard check: ${busiest} guilds on the busiest shard, ${bot.shards} recommended for ${current.set.layout.count} running`)
        yield* automaticReshard
      }
    }).pipe(Effect.catch((e) => Effect.logWarning(`reshard check: ${e.message}`)))
    yield* Effect.forkIn(Effect.repeat(check, Schedule.spaced(reshardOptions.check.interval)), gatewayScope)
  }

  // ---- staleness watchdog ----
  if (options.staleAfter !== null) {
    const staleAfterMs = Duration.toMillis(options.staleAfter)
    const check = Effect.gen(function*() {
      const at = now()
      let changed = false
      for (const [id, entry] of current.set.running) {
        const state = yield* entry.shard.state
        const guilds = yield* cache.guildCount(id)
        const stale = state.phase === "ready" && guilds > 0 && state.lastDispatchAt !== null &&
          at - state.lastDispatchAt > staleAfterMs
        if (stale !== entry.stale) {
          entry.stale = stale
          changed = true
          if (stale) {
            yield* Effect.logWarning(`shard ${id}: no dispatch for ${at - state.lastDispatchAt!} ms with ${guilds} guilds: stale`)
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
  const notRunning = (shardId: number) => {
    const { count, ids } = current.set.layout
    return new ShardNotRunning({
      shardId,
      detail: ids.includes(shardId) ? "it is stopped" : `this process runs shards ${describeIds(ids)} of ${count}`
    })
  }

  const shardForGuild = (guildId: string | null | undefined): number =>
    guildId === null || guildId === undefined ? 0 : shardIdForGuild(guildId, current.set.layout.count)

  const send = (shardId: number, command: Shard.GatewayCommand): Effect.Effect<void, GatewayCommandError> =>
    Effect.suspend(() => current.set.send(shardId, command)).pipe(
      Effect.mapError((e) => e === "not-running" ? notRunning(shardId) : e)
    )

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
      presence = next // shards started later identify with it
      yield* Effect.forEach(current.set.running.keys(), (shardId) => send(shardId, { op: 3, d: next }), {
        concurrency: "unbounded",
        discard: true
      })
      // A reshard's new set may have identified with the old presence already.
      const coming = staging?.built.set
      if (coming !== undefined) {
        // Sent once each new shard is ready; not awaited (that can take the whole reshard).
        yield* Effect.forkIn(
          Effect.forEach(coming.running.keys(), (shardId) => Effect.ignore(coming.send(shardId, { op: 3, d: next })), {
            concurrency: "unbounded",
            discard: true
          }),
          gatewayScope
        )
      }
    })

  const openShard = (shardId: number) =>
    Effect.suspend(() =>
      current.set.layout.ids.includes(shardId)
        ? current.set.start(shardId)
        : Effect.fail(notRunning(shardId))
    )

  const closeShard = (shardId: number, closeOptions?: { readonly resumable?: boolean }) =>
    Effect.andThen(
      Effect.suspend(() => current.set.stop(shardId, closeOptions?.resumable ?? false)),
      refreshStatus
    )

  const restartShard = (shardId: number) =>
    Effect.andThen(closeShard(shardId, { resumable: true }), openShard(shardId))

  return Gateway.of({
    layout: Effect.sync(() => current.set.layout),
    dispatches: (subscribeOptions) => hub.subscribe(subscribeOptions),
    subscription: (subscribeOptions) => hub.subscription(subscribeOptions),
    events: <Name extends string>(name: Name, subscribeOptions?: Omit<SubscribeOptions, "names">) =>
      hub.subscribe({ ...subscribeOptions, names: [name] }) as Stream.Stream<Dispatch.Dispatch<Name>, DispatchStreamError>,
    status: snapshot,
    statusChanges: SubscriptionRef.changes(statusRef),
    shardForGuild,
    send,
    sendToGuild,
    setPresence,
    requestMembers: (memberOptions) => Stream.unwrap(Effect.sync(() => current.set.members.request(memberOptions))),
    openShard,
    closeShard,
    restartShard,
    reshard,
    shutdown,
    join: Deferred.await(ended)
  })
})

const describeIds = (ids: ReadonlyArray<number>): string =>
  ids.length === 0 ? "none" : ids.length > 8 ? `${ids[0]}…${ids[ids.length - 1]}` : ids.join(", ")
