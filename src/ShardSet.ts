/**
 * ShardSet: the shards of one layout (one shard count), supervised in the Scope the set is built in.
 *
 * Each shard runs in its own child Scope of the set's, keyed by shard id; the shard's own fiber is the only
 * one it keeps (its end is reported through `onEnd`, so no supervising fiber waits beside it). A shard
 * survives transient faults by itself (Shard.ts); a defect restarts that shard only, after a pause; a fatal
 * close is handed to `onFatal` (the Gateway decides: fail, reshard, or roll a reshard back). Closing the
 * set's Scope stops every shard.
 *
 * Per dispatch the set does its own bookkeeping — metrics counts, the cache (guild events), readiness
 * (READY/GUILD_CREATE/GUILD_DELETE, item 53), member requests (chunks, RATE_LIMITED) — then hands the
 * dispatch to `route`, which the Gateway points at the hub (live), at the reshard staging buffer, or
 * nowhere (an old set draining). `startup` marks a session's own start-up (READY and the guild events
 * answering it) so a reshard can keep it from subscribers. A new set's route drops everything until the
 * Gateway points it somewhere (before `startAll`): the set never holds a route it was built with, which could
 * belong to a finished reshard and keep that reshard (its handoff, the set before it, …) reachable.
 */
import {
  Cause,
  Context,
  type Duration,
  Effect,
  Exit,
  Metric,
  Option,
  Scope,
  Stream
} from "effect"
import type { CacheService } from "./Cache.ts"
import type { Dispatch } from "./Dispatch.ts"
import { DispatchSink } from "./DispatchSink.ts"
import type { FatalCloseError } from "./Errors.ts"
import type { GatewayShardStatus } from "./GatewayStatus.ts"
import type { IdentifyRateLimiter } from "./IdentifyRateLimiter.ts"
import * as MemberRequests from "./MemberRequests.ts"
import * as Metrics from "./Metrics.ts"
import type { SessionStore } from "./SessionStore.ts"
import * as Shard from "./Shard.ts"
import * as ShardReadiness from "./ShardReadiness.ts"
import { initialState, type ShardState } from "./ShardState.ts"
import type { ShardLayout } from "./ShardStrategy.ts"
import type { GatewayTransport } from "./transport/GatewayTransport.ts"

export interface RunningShard {
  readonly shard: Shard.Shard
  readonly readiness: ShardReadiness.ShardReadiness
  /** The Scope it runs in (`closeShardScope` takes it out of `running`). */
  readonly scope: Scope.Closeable
  stale: boolean
}

/**
 * Where a set's dispatches go (`startup`: part of a session's own start-up). Like `DispatchSink.publish`, a
 * route acts when called, not when its effect runs: call it after the bookkeeping that must come first.
 */
export type Route = (dispatch: Dispatch, startup: boolean) => Effect.Effect<void>

/** The events a set needs itself (cache, readiness, member requests), whoever subscribes. */
const RuntimeEvents: ReadonlySet<string> = new Set([
  "READY",
  "RESUMED",
  "GUILD_CREATE",
  "GUILD_UPDATE",
  "GUILD_DELETE",
  "GUILD_MEMBERS_CHUNK",
  "RATE_LIMITED"
])

/** What a shard's sink does: its set handles each dispatch with the shard's readiness. */
interface SinkOwner {
  readonly publishFrom: (readiness: ShardReadiness.ShardReadiness, dispatch: Dispatch) => Effect.Effect<void>
  readonly wants: (name: string) => boolean
}

const NoSubscribers: Effect.Effect<number> = Effect.succeed(0)

type DispatchSinkService = DispatchSink["Service"]

/**
 * A shard's sink: write-only, its dispatches go to its set (`SinkOwner`) with the shard's readiness. One
 * small object per shard whose steps are methods, not a closure and a copy of every sink field per shard.
 */
class ShardSink implements DispatchSinkService {
  private readonly owner: SinkOwner
  private readonly readiness: ShardReadiness.ShardReadiness
  constructor(owner: SinkOwner, readiness: ShardReadiness.ShardReadiness) {
    this.owner = owner
    this.readiness = readiness
  }
  publish(dispatch: Dispatch): Effect.Effect<void> {
    return this.owner.publishFrom(this.readiness, dispatch)
  }
  wants(name: string): boolean {
    return this.owner.wants(name)
  }
  subscription(): Effect.Effect<never> {
    return Effect.die("a shard's sink is write-only")
  }
  subscribe(): Stream.Stream<never> {
    return Stream.die("a shard's sink is write-only")
  }
  get end(): Effect.Effect<void> {
    return Effect.void
  }
  fail(): Effect.Effect<void> {
    return Effect.void
  }
  get subscriberCount(): Effect.Effect<number> {
    return NoSubscribers
  }
}

export interface ShardSetParams {
  readonly layout: ShardLayout
  /** Options of one shard (read when it starts: presence may have changed). */
  readonly shardOptions: (shardId: number) => Shard.ShardOptions
  readonly intents: number
  readonly guildWaitTimeout: Duration.Input
  readonly cache: CacheService
  /**
   * The whole context every shard runs with (the Gateway's: its transport, store and limiter, and its clock,
   * logger and log annotations), in place of the context of whichever fiber starts a shard.
   */
  readonly shardContext: Context.Context<GatewayTransport | SessionStore | IdentifyRateLimiter>
  /** Whether an event name is wanted downstream now (subscribers, or a reshard recording everything). */
  readonly wants: (name: string) => boolean
  readonly onFatal: (error: FatalCloseError) => Effect.Effect<void>
  readonly onShardReady: (shardId: number, info: ShardReadiness.ReadyInfo) => Effect.Effect<void>
  /** Something observable changed (a phase, readiness). */
  readonly onChange: Effect.Effect<void>
}

export interface ShardSet {
  readonly layout: ShardLayout
  readonly members: MemberRequests.MemberRequests
  /** Where this set's dispatches go now: nowhere until the Gateway points it (and re-points it during a reshard). */
  route: Route
  readonly start: (shardId: number) => Effect.Effect<void>
  readonly startAll: Effect.Effect<void>
  /** Stops one shard (resumable: session saved, close 4000; else close 1000) and removes it. */
  readonly stop: (shardId: number, resumable: boolean) => Effect.Effect<void>
  readonly stopAll: (resumable: boolean) => Effect.Effect<void>
  readonly running: ReadonlyMap<number, RunningShard>
  /** Shards whose guilds have loaded. */
  readonly readyCount: () => number
  readonly snapshot: Effect.Effect<ReadonlyArray<GatewayShardStatus>>
  readonly flushMetrics: Effect.Effect<void>
  readonly send: (shardId: number, command: Shard.GatewayCommand) => Effect.Effect<void, Shard.SendError | "not-running">
}

/** Where a new set's dispatches go until the Gateway points it somewhere. */
const nowhere: Route = () => Effect.void

export const make = Effect.fnUntraced(function*(params: ShardSetParams) {
  const { cache, guildWaitTimeout, intents, layout, onChange, onFatal, onShardReady, shardContext, shardOptions, wants } =
    params
  const guildsIntent = (intents & 1) !== 0
  const running = new Map<number, RunningShard>()
  /** Each started shard's Scope (a child of the set's), until it ends or is stopped. */
  const scopes = new Map<number, Scope.Closeable>()
  const setScope = yield* Effect.scope
  // The parent of the shards' Scopes, made before the set's finalizer (`stopAll`) is added: closing the set
  // then stops each shard first (session forgotten, 1000) instead of interrupting it with its session still
  // saved, which a later set of the same count would try to RESUME (op 9, then IDENTIFY anyway).
  const shardsScope = yield* Scope.fork(setScope)
  let stopping = false

  const members = yield* MemberRequests.make({
    send: (guildId, d) =>
      Effect.mapError(set.send(shardOf(guildId), { op: 8, d }), (e) => e === "not-running" ? { message: `shard ${shardOf(guildId)} is not running` } : e),
    shardOf: (guildId) => shardOf(guildId),
    intents: intents
  })
  const shardOf = (guildId: string) => Number((BigInt(guildId) >> 22n) % BigInt(layout.count))

  const wantsEvent = (name: string) => RuntimeEvents.has(name) || wants(name)

  const sinkOwner: SinkOwner = {
    wants: wantsEvent,
    publishFrom: (readiness, dispatch) => {
      switch (dispatch.name) {
        case "RESUMED":
          return Effect.andThen(set.route(dispatch, false), readiness.observe(dispatch))
        case "READY":
        case "GUILD_CREATE":
        case "GUILD_UPDATE":
        case "GUILD_DELETE": {
          const startup = dispatch.name === "READY" || readiness.answersReady(dispatch)
          // The route is called once the cache has the event (see `Route`), so a subscriber never reads the
          // cache behind the event it got.
          return cache.apply(dispatch, layout.count).pipe(
            Effect.andThen(() => set.route(dispatch, startup)),
            Effect.andThen(() => readiness.observe(dispatch))
          )
        }
        case "GUILD_MEMBERS_CHUNK":
        case "RATE_LIMITED":
          return Effect.andThen(members.onDispatch(dispatch), () => set.route(dispatch, false))
        default:
          return set.route(dispatch, false)
      }
    }
  }

  /** Starts a shard in a new child Scope; it ends by itself only on a fatal close or a defect. */
  const runShard = (shardId: number, scope: Scope.Closeable) =>
    Effect.gen(function*() {
      const readiness = yield* ShardReadiness.make({
        guildsIntent,
        guildWaitTimeout: guildWaitTimeout,
        onReady: (info) => onShardReady(shardId, info)
      })
      const sink = DispatchSink.of(new ShardSink(sinkOwner, readiness))
      // Status follows the shard's phase; a session leaving "ready" fails its in-flight member requests.
      let wasReady = false
      const onStateChange = (state: ShardState): Effect.Effect<void> => {
        const lost = wasReady && state.phase !== "ready"
        wasReady = state.phase === "ready"
        return lost
          ? Effect.andThen(members.shardLost(shardId, `shard ${shardId} is ${state.phase}`), onChange)
          : onChange
      }
      const onEnd = (exit: Exit.Exit<void, FatalCloseError>) => ended(shardId, scope, exit)
      const shard = yield* Shard.make({ ...shardOptions(shardId), onStateChange, onEnd }).pipe(
        Effect.provideService(DispatchSink, sink),
        Effect.orDie // options were validated before any shard started
      )
      running.set(shardId, { shard, readiness, scope, stale: false })
    }).pipe(
      Scope.provide(scope),
      // A failed start is handled like a shard that ended with it.
      Effect.catchCause((cause) => ended(shardId, scope, Exit.failCause(cause))),
      // Not the context of the fiber that starts the shard (a reshard asked for by the application, a
      // restart after a defect): a shard outlives it, and must not keep its logger, annotations or services.
      Effect.updateContext((_: Context.Context<never>) => shardContext)
    )

  /**
   * A shard ended (on its own fiber, or its start failed). Interrupted: it was stopped, nothing to do. Else,
   * from a fiber of the set's: its Scope closes, then a fatal close goes to `onFatal` and a defect restarts
   * this shard only (after a pause).
   */
  const ended = (shardId: number, scope: Scope.Closeable, exit: Exit.Exit<void, FatalCloseError>): Effect.Effect<void> => {
    if (Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)) return Effect.void
    return Effect.asVoid(Effect.forkIn(
      Effect.gen(function*() {
        yield* closeShardScope(shardId, scope)
        if (Exit.isSuccess(exit)) return
        const failure = Cause.findErrorOption(exit.cause)
        if (Option.isSome(failure)) return yield* onFatal(failure.value)
        yield* Effect.logError(`shard ${shardId} crashed; restarting it`, Cause.pretty(exit.cause))
        yield* Effect.sleep("5 seconds")
        if (!stopping) yield* start(shardId)
      }),
      setScope
    ))
  }

  const start = (shardId: number): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (scopes.has(shardId)) return Effect.void
      const scope = Scope.forkUnsafe(shardsScope)
      scopes.set(shardId, scope)
      return runShard(shardId, scope)
    })

  /**
   * Closes a shard's Scope. The shard leaves `scopes` and `running` first (unless a later start already
   * replaced it there), and the status hears of it (unless the set is stopping). This is done here, not by a
   * finalizer of the shard's Scope: a second finalizer would give every shard's Scope a map of them.
   */
  const closeShardScope = (shardId: number, scope: Scope.Closeable): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (scopes.get(shardId) === scope) scopes.delete(shardId)
      const close = Scope.close(scope, Exit.void)
      if (running.get(shardId)?.scope !== scope) return close
      running.delete(shardId)
      return stopping ? close : Effect.andThen(onChange, close)
    })

  /** Stops a shard (waiting until it has ended) and closes its Scope. */
  const stopShard = (shardId: number, resumable: boolean) =>
    Effect.gen(function*() {
      const entry = running.get(shardId)
      if (entry !== undefined) yield* entry.shard.stop({ resumable })
      const scope = scopes.get(shardId)
      if (scope !== undefined) yield* closeShardScope(shardId, scope)
    })

  // One series per shard and one per event name, never one per both (Metrics' module doc).
  const flushMetrics = Effect.gen(function*() {
    const byEvent = new Map<string, number>()
    for (const [shardId, entry] of running) {
      let total = 0
      for (const [event, count] of entry.shard.takeEventCounts()) {
        total += count
        byEvent.set(event, (byEvent.get(event) ?? 0) + count)
      }
      if (total === 0) continue
      yield* Metric.update(
        Metric.withAttributes(Metrics.dispatches, { shard: String(shardId), shardCount: String(layout.count) }),
        total
      )
    }
    for (const [event, count] of byEvent) {
      yield* Metric.update(Metric.withAttributes(Metrics.dispatchesByEvent, { event }), count)
    }
  })

  const stopAll = (resumable: boolean) =>
    Effect.gen(function*() {
      stopping = true
      yield* flushMetrics
      yield* Effect.forEach([...scopes.keys()], (shardId) => stopShard(shardId, resumable), {
        concurrency: "unbounded",
        discard: true
      })
      yield* members.shutdown
    })
  yield* Effect.addFinalizer(() => stopAll(false))

  const set: ShardSet = {
    layout,
    members,
    route: nowhere,
    start,
    // In id order: each shard asks the identify limiter in turn, so buckets fill lowest id first.
    startAll: Effect.forEach(layout.ids, start, { discard: true }),
    stop: stopShard,
    stopAll,
    running,
    readyCount: () => {
      let n = 0
      for (const entry of running.values()) if (entry.readiness.isReady()) n++
      return n
    },
    snapshot: Effect.gen(function*() {
      const shards: Array<GatewayShardStatus> = []
      for (const id of layout.ids) {
        const entry = running.get(id)
        const state = entry === undefined
          ? { ...initialState(id, layout.count), phase: "stopped" as const }
          : yield* entry.shard.state
        shards.push({
          ...state,
          guilds: yield* cache.guildCount(id),
          ready: entry?.readiness.isReady() ?? false,
          stale: entry?.stale ?? false
        })
      }
      return shards
    }),
    flushMetrics,
    send: (shardId, command) => {
      const entry = running.get(shardId)
      return entry === undefined ? Effect.fail("not-running" as const) : entry.shard.send(command)
    }
  }
  return set
})
