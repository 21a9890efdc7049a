/**
 * Shard: one gateway session kept alive through every fault the gateway throws at it (PROTOCOL.md §1–§3).
 *
 * A shard is a fiber built from services: `GatewayTransport` (the socket), `IdentifyRateLimiter` (identify
 * buckets and the daily budget), `SessionStore` (what RESUME needs), `DispatchSink` (where its dispatches
 * go) and, when its context has one, a `HeartbeatTimer` shared with other shards (else it makes its own).
 * Each connection lives in its own Scope, so a stale connection can never touch its successor.
 *
 * Per connection: connect (deadline) → Hello (deadline; op 7 before Hello reconnects) → heartbeat on the
 * timer, each beat on a fiber of its own (first beat after interval × U[0,1) but not before 1 ms, then every
 * interval; a beat due while the previous one is unacknowledged closes 4000 and resumes — zombie, item 9;
 * not while the reader is held by dispatch backpressure, when the ACK may be waiting unread) and, beside
 * it, IDENTIFY through the limiter or RESUME at the resume URL → READY/RESUMED (deadline, extended while
 * dispatches flow) → commands flow. Only ops 1, 2 and 6 are sent before READY/RESUMED (item 15), all
 * through the connection's send limiter.
 * The shard's fiber reads the connection itself; a close decided elsewhere (a stop, a deadline, a zombie)
 * closes the connection, which ends the pending read at once, and gives up a wait on a full subscriber.
 *
 * Between connections: the close-code table decides resume / identify / fatal; consecutive failed attempts
 * wait on the reconnect Schedule (exponential from 1 s with jitter, capped at 60 s, reset after a healthy
 * connection); op 9 `d:false` waits uniform 1–5 s and identifies. A fatal code ends the shard with its
 * typed error and opens nothing more.
 *
 * Hot path (per dispatch): a hand check of the envelope, a sequence update, one Dispatch object, one publish;
 * the data is parsed when read. After a read whose dispatches were handed over, the reader yields, so the
 * application's consumers take them before the next read (the buffers between stay short). A dispatch
 * nobody wants (no subscriber, no runtime bookkeeping) costs only the envelope check and the sequence
 * update: from the real transport, compressed or not, its frame is not even decoded to a string.
 * Seq and last-dispatch time are plain fields read by `state`; `changes` emits on phase, latency, session and
 * error changes only.
 */
import {
  Cause,
  Clock,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  Metric,
  Option,
  Pull,
  Queue,
  Random,
  Result,
  Redacted,
  Schedule,
  Schema,
  Scope,
  Stream,
  SubscriptionRef
} from "effect"
import * as Dispatch from "./Dispatch.ts"
import { DispatchSink } from "./DispatchSink.ts"
import {
  type ConnectionClosed,
  type FatalCloseError,
  FrameDecodeError,
  InvalidCommand,
  PayloadTooLarge,
  ShardStopped
} from "./Errors.ts"
import { HeartbeatTimer, type HeartbeatTimerService } from "./HeartbeatTimer.ts"
import { IdentifyRateLimiter } from "./IdentifyRateLimiter.ts"
import * as Metrics from "./Metrics.ts"
import { classifyClose, ResumableCloseCode, SessionEndingCloseCode } from "./protocol/CloseCode.ts"
import { decodeTextFrame, type ServerFrame } from "./protocol/Frame.ts"
import {
  type ClientCommand,
  PresenceUpdateData,
  ReadyData,
  RequestChannelInfoData,
  RequestGuildMembersData,
  RequestSoundboardSoundsData,
  VoiceStateUpdateData
} from "./protocol/Payloads.ts"
import * as SendLimiter from "./SendLimiter.ts"
import { SessionStore, type StoredSession } from "./SessionStore.ts"
import { initialState, type ShardPhase, type ShardState } from "./ShardState.ts"
import { type GatewayConnection, GatewayTransport } from "./transport/GatewayTransport.ts"
import { type Compression, gatewayUrl } from "./transport/GatewayUrl.ts"
import * as Inflater from "./transport/Inflater.ts"
import { type Frame, isBinary } from "./transport/TextFrame.ts"

/** The gateway's limit for one client frame, in bytes (PROTOCOL.md §5.1). */
export const MaxFrameBytes = 4096

export interface ShardOptions {
  /** The bot token. Kept Redacted; it only ever leaves in IDENTIFY/RESUME frames. */
  readonly token: Redacted.Redacted<string>
  readonly shardId: number
  readonly shardCount: number
  /** The intents bitfield (see `Intents`). */
  readonly intents: number
  /** The base gateway URL (`url` from GET /gateway/bot), without query. */
  readonly gatewayUrl: string
  /** Transport compression; default "none". */
  readonly compression?: Compression | undefined
  /** IDENTIFY `large_threshold` (50–250). */
  readonly largeThreshold?: number | undefined
  /** IDENTIFY initial presence. */
  readonly presence?: PresenceUpdateData | undefined
  /** IDENTIFY `properties`; defaults to this runtime's name and the process platform. */
  readonly properties?: { readonly os: string; readonly browser: string; readonly device: string } | undefined
  /** Deadline for the WebSocket to open. Default 15 s. */
  readonly connectTimeout?: Duration.Input | undefined
  /** Deadline for Hello after the socket opened. Default 20 s. */
  readonly helloTimeout?: Duration.Input | undefined
  /** Deadline for READY/RESUMED after IDENTIFY/RESUME was sent, extended by every dispatch. Default 30 s. */
  readonly readyTimeout?: Duration.Input | undefined
  /** Delays between consecutive failed connection attempts. Default `reconnectBackoff`. */
  readonly reconnectSchedule?: Schedule.Schedule<unknown> | undefined
  /** The wait after op 9 `d:false` before identifying again, uniform in [min, max] ms. Default 1000–5000. */
  readonly invalidSessionDelayMs?: { readonly min: number; readonly max: number } | undefined
  /** How many commands may wait for the connection; `send` waits while it is full. Default 1000. */
  readonly commandBuffer?: number | undefined
  /** Called with the new state on every change `changes` emits (a supervisor's hook; no extra fiber). */
  readonly onStateChange?: ((state: ShardState) => Effect.Effect<void>) | undefined
  /** Called once when the shard ends, with how it ended, on its own fiber (a supervisor's hook; no extra fiber). */
  readonly onEnd?: ((exit: Exit.Exit<void, FatalCloseError>) => Effect.Effect<void>) | undefined
}

/** A command users send on a shard (PROTOCOL.md §6.2). Heartbeat, IDENTIFY and RESUME are the shard's own. */
export type GatewayCommand = Exclude<ClientCommand, { readonly op: 1 | 2 | 6 }>

/** Why `Shard.send` refused a command. */
export type SendError = PayloadTooLarge | InvalidCommand | ShardStopped

export interface Shard {
  readonly id: number
  readonly count: number
  /** The current state (a snapshot, sequence and last dispatch time included). */
  readonly state: Effect.Effect<ShardState>
  /** The state now, then on every phase, latency, session or error change. */
  readonly changes: Stream.Stream<ShardState>
  /**
   * Sends a command once the session is ready, within the send limit. Waits for room; never drops it.
   * Fails at once, sending nothing, if it is malformed or over 4096 bytes; fails if the shard stops first.
   */
  readonly send: (command: GatewayCommand) => Effect.Effect<void, SendError>
  /**
   * Stops the shard. `resumable: false` (default) closes with 1000 and forgets the session (the bot goes
   * offline); `resumable: true` saves the session and closes with 4000 so a restarted process can RESUME.
   * Waits until the shard has ended.
   */
  readonly stop: (options?: { readonly resumable?: boolean }) => Effect.Effect<void>
  /** Waits for the shard to end: succeeds after `stop`, fails with the fatal close error otherwise. */
  readonly join: Effect.Effect<void, FatalCloseError>
  /** Dispatches received per event name since the last call (for metrics; every event counts). */
  takeEventCounts(): ReadonlyMap<string, number>
}

/** The default reconnect schedule: 1 s, 2 s, 4 s … capped at 60 s, each delay × U[1, 1.25) (never below 1 s). */
export const reconnectBackoff: Schedule.Schedule<unknown> = Schedule.exponential("1 second", 2).pipe(
  Schedule.modifyDelay(({ duration }) =>
    Effect.map(Random.next, (r) => Duration.millis(Math.round(Math.min(60_000, Duration.toMillis(duration) * (1 + r / 4)))))
  )
)

/**
 * The heartbeat's Schedule for an interval, built once for the interval the last Hello gave (every
 * connection of a gateway gets the same one) and shared: a Schedule is a description, its state lives in
 * each connection's step.
 */
let lastHeartbeatSchedule: { readonly interval: number; readonly schedule: Schedule.Schedule<number> } | undefined
const heartbeatSchedule = (interval: number): Schedule.Schedule<number> => {
  if (lastHeartbeatSchedule?.interval !== interval) {
    lastHeartbeatSchedule = { interval, schedule: Schedule.spaced(Duration.millis(interval)) }
  }
  return lastHeartbeatSchedule.schedule
}

/** Why a connection ended, when it did not end the shard. */
interface Outcome {
  readonly kind: "closed" | "reconnect" | "zombie" | "invalid-session" | "connect-failed" | "timeout" | "stopped"
  /** The connection reached READY/RESUMED and had a heartbeat acknowledged after it. */
  readonly healthy: boolean
}

interface LiveSession {
  readonly sessionId: string
  readonly resumeUrl: string
  sequence: number | null
}

interface PendingCommand {
  readonly frame: string
  readonly done: Deferred.Deferred<void, ShardStopped>
}

const decodeReady = Schema.decodeUnknownResult(ReadyData)

const parseJson = (text: string): Result.Result<unknown, unknown> => {
  try {
    return Result.succeed(JSON.parse(text))
  } catch (error) {
    return Result.fail(error)
  }
}

const defaultProperties = { os: process.platform, browser: "effect-discord-gateway", device: "effect-discord-gateway" }

const byteLength = (text: string): number => {
  // ASCII fast path: most frames are ASCII, where length === bytes.
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return Buffer.byteLength(text, "utf8")
  return text.length
}

/** One validator per user command op, built once. */
const commandValidators: {
  readonly [Op in GatewayCommand["op"]]: (data: unknown) => Result.Result<unknown, Schema.SchemaError>
} = {
  3: Schema.decodeUnknownResult(PresenceUpdateData),
  4: Schema.decodeUnknownResult(VoiceStateUpdateData),
  8: Schema.decodeUnknownResult(RequestGuildMembersData),
  31: Schema.decodeUnknownResult(RequestSoundboardSoundsData),
  43: Schema.decodeUnknownResult(RequestChannelInfoData)
}

/** Encodes and checks a user command; the string is the frame that will be sent. */
const encodeCommand = (command: GatewayCommand): string | InvalidCommand | PayloadTooLarge => {
  const validate = commandValidators[command.op] as ((data: unknown) => Result.Result<unknown, Schema.SchemaError>) | undefined
  if (validate === undefined) {
    return new InvalidCommand({ op: command.op, detail: "not a user command (ops 3, 4, 8, 31 and 43 are)" })
  }
  const checked = validate(command.d)
  if (Result.isFailure(checked)) return new InvalidCommand({ op: command.op, detail: checked.failure.message })
  const frame = JSON.stringify({ op: command.op, d: command.d })
  const bytes = byteLength(frame)
  return bytes > MaxFrameBytes ? new PayloadTooLarge({ op: command.op, bytes, limit: MaxFrameBytes }) : frame
}

/** The services a shard runs on, taken from its context once. */
interface ShardServices {
  readonly transport: GatewayTransport["Service"]
  readonly identifyLimiter: IdentifyRateLimiter["Service"]
  readonly store: SessionStore["Service"]
  readonly sink: DispatchSink["Service"]
  readonly clock: Clock.Clock
  readonly heartbeats: HeartbeatTimerService
}

/**
 * A running shard's handle. `id` and `count` are read from the runtime, and `state`, `changes` and `join`
 * are made when read: a shard lives long, and most handles are never asked (a class keeps its getters on the
 * prototype, not in every handle). `send` and
 * `stop` are bound, so that they can be passed around as functions.
 */
class ShardHandle implements Shard {
  private readonly runtime: ShardRuntime
  private readonly fiber: Fiber.Fiber<void, FatalCloseError>

  constructor(runtime: ShardRuntime, fiber: Fiber.Fiber<void, FatalCloseError>) {
    this.runtime = runtime
    this.fiber = fiber
  }

  get id(): number {
    return this.runtime.shardId
  }

  get count(): number {
    return this.runtime.shardCount
  }

  readonly send = (command: GatewayCommand): Effect.Effect<void, SendError> => this.runtime.send(command)

  readonly stop = (options?: { readonly resumable?: boolean }): Effect.Effect<void> =>
    Effect.andThen(this.runtime.requestStop(options), Effect.ignore(Fiber.join(this.fiber)))

  takeEventCounts(): ReadonlyMap<string, number> {
    return this.runtime.takeEventCounts()
  }

  get state(): Effect.Effect<ShardState> {
    return Effect.sync(() => this.runtime.withLive(this.runtime.state))
  }

  get changes(): Stream.Stream<ShardState> {
    return this.runtime.changes()
  }

  get join(): Effect.Effect<void, FatalCloseError> {
    return Fiber.join(this.fiber)
  }
}

const NoEventCounts: ReadonlyMap<string, number> = new Map()

/**
 * The set-up of one connection (`ShardRuntime.connectOnce`): it ends by handing over the wait for the
 * connection's end, so no suspended generator frame is kept for the connection's life. A function of the
 * module, not one made per call: the wait keeps the generator's function alive, and each function made per
 * call would keep its own `prototype` object (0.2 KiB per shard).
 */
function* openConnection(this: ShardRuntime) {
  const options = this.options
  const compression = options.compression ?? "none"
  const resumeWith = this.session
  const base = resumeWith !== null && !this.resumeUrlRefused ? resumeWith.resumeUrl : options.gatewayUrl
  const url = gatewayUrl(base, { compression })
  yield* this.setPhase("connecting")
  const scope = this.connectionScope!
  const opened = yield* this.services.transport.connect(url).pipe(
    Scope.provide(scope),
    Effect.timeoutOrElse({
      duration: options.connectTimeout ?? "15 seconds",
      orElse: () => Effect.fail("timeout" as const)
    }),
    Effect.result
  )
  if (opened._tag === "Failure") {
    const detail = opened.failure === "timeout" ? `connect to ${url} timed out` : opened.failure.message
    if (base !== options.gatewayUrl) this.resumeUrlRefused = true
    yield* Effect.logWarning(detail)
    yield* this.update({ lastError: detail })
    // flattened: the generator hands over what to wait for
    return Effect.succeed<Outcome>({ kind: "connect-failed", healthy: false })
  }
  this.resumeUrlRefused = false
  yield* this.setPhase("hello")
  yield* Metric.update(Metrics.connections, 1)
  const connection = new Connection(
    this,
    opened.success,
    scope,
    yield* Scope.provide(Inflater.make(compression), scope),
    yield* Deferred.make<Outcome, FatalCloseError>(),
    // Deadlines race the phase they guard: when it completes, their fibers end (no idle sleepers left).
    yield* Deferred.make<void>(),
    yield* Deferred.make<void>()
  )
  // Hello deadline.
  yield* connection.fork(Deferred.await(connection.helloArrived).pipe(Effect.timeoutOrElse({
    duration: options.helloTimeout ?? "20 seconds",
    orElse: () =>
      Effect.andThen(this.update({ lastError: "no Hello in time" }), connection.finish("timeout", ResumableCloseCode))
  })))
  // A stop request closes this connection with the code the stop asked for (`stop` calls it directly).
  this.activeStop = connection.closeForStop
  // When the connection's Scope closes, the connection no longer answers a stop or wakes a sender; and a
  // defect (a bug in code run per dispatch, e.g. a cache) that ends the shard's fiber closes it with 4000,
  // not the Scope's 1000, so the session stays resumable for the supervisor's restart (PROTOCOL.md §1.10).
  // The finalizer goes to the Scope itself: it needs nothing from the fiber's context.
  yield* Scope.addFinalizerExit(connection.scope, (exit) => connection.release(exit))
  if (this.stopping !== null) yield* connection.closeForStop
  // The read loop runs on the shard's own fiber: a connection keeps no other long-lived fiber (its
  // heartbeat is an entry in the HeartbeatTimer). Its outcome, or a `finish` from elsewhere (which closes
  // the connection, so that the transport ends the pending read at once), ends the connection.
  return connection.readLoop()
}

/**
 * The shard-wide part of a running shard: its options, services and state, and the steps between its
 * connections. Its steps are methods (one object per shard, not a closure per step: a shard lives long and
 * there may be thousands); only the effects kept for the shard's life are built once, here.
 */
class ShardRuntime {
  readonly options: ShardOptions
  /** The SessionStore key, which is also where the shard's id and count are read (`shardId`, `shardCount`). */
  readonly key: { readonly shardId: number; readonly shardCount: number }
  readonly services: ShardServices
  readonly readyTimeoutMs: number
  /** Completed by a stop request: ends a wait between connections at once. */
  readonly stopSignal: Deferred.Deferred<void>

  session: LiveSession | null
  /** The resume URL refused a connection: the next attempt goes to the base URL (item 28). */
  resumeUrlRefused = false
  lastDispatchAt: number | null = null
  stopping: { readonly resumable: boolean } | null = null
  pending: PendingCommand | undefined = undefined
  /** Closes the live connection for a stop request (with the code the stop asked for). */
  activeStop: Effect.Effect<void> | undefined = undefined
  /** The Scope of the connection being opened or read, until `closeConnection`. */
  connectionScope: Scope.Closeable | undefined = undefined
  /** Starts the ready connection's command sender if it is not running. */
  wakePump: Effect.Effect<void> | undefined = undefined
  /** The latest state. `changes` subscribers read it through a SubscriptionRef made on the first subscription. */
  state: ShardState
  stateRef: SubscriptionRef.SubscriptionRef<ShardState> | undefined = undefined
  /** Dispatches per event name since the last `takeEventCounts`; none while no dispatch arrived. */
  eventCounts: Map<string, number> | undefined = undefined
  /** A dispatch whose data, parsed lazily by a reader, was not JSON: reported at the next frame. */
  lazyDataError: string | undefined = undefined
  readonly onLazyDataError: Dispatch.LazyDataError
  /** Commands waiting for a ready connection: made at the first `send` (many shards never send one). */
  commands: Queue.Queue<PendingCommand> | undefined = undefined
  /** The shard has ended: `send` fails at once. */
  shardEnded = false
  /** The reconnect schedule's state: made at the first failed attempt, dropped after a healthy connection. */
  backoff: ((input: unknown) => Pull.Pull<unknown, never, unknown>) | undefined = undefined
  attempts = 0
  /**
   * The loop of connections, as a chain of effects: it is suspended for the whole life of each connection,
   * where a generator would keep its frame alive.
   */
  readonly nextConnection: Effect.Effect<void, FatalCloseError>

  constructor(
    options: ShardOptions,
    key: { readonly shardId: number; readonly shardCount: number },
    services: ShardServices,
    session: LiveSession | null,
    stopSignal: Deferred.Deferred<void>
  ) {
    this.options = options
    this.key = key
    this.services = services
    this.readyTimeoutMs = Duration.toMillis(Duration.fromInputUnsafe(options.readyTimeout ?? "30 seconds"))
    this.stopSignal = stopSignal
    this.session = session
    this.state = initialState(options.shardId, options.shardCount)
    this.onLazyDataError = (dispatch) => {
      this.lazyDataError = `malformed gateway frame (op 0 ${dispatch.name}): data is not valid JSON`
    }
    this.nextConnection = Effect.suspend(() => this.connectNext())
  }

  get shardId(): number {
    return this.key.shardId
  }

  get shardCount(): number {
    return this.key.shardCount
  }

  // Made when sent (and checked once by `make`): no copy of the token is kept in memory for the shard's life.
  identifyFrame(): string {
    const options = this.options
    return JSON.stringify({
      op: 2,
      d: {
        token: Redacted.value(options.token),
        properties: options.properties ?? defaultProperties,
        intents: options.intents,
        shard: [this.shardId, this.shardCount],
        ...(options.largeThreshold === undefined ? {} : { large_threshold: options.largeThreshold }),
        ...(options.presence === undefined ? {} : { presence: options.presence })
      }
    })
  }

  withLive(s: ShardState): ShardState {
    return {
      ...s,
      sequence: this.session?.sequence ?? null,
      sessionId: this.session?.sessionId ?? null,
      lastDispatchAt: this.lastDispatchAt
    }
  }

  update(patch: Partial<ShardState>): Effect.Effect<void> {
    return Effect.suspend(() => {
      const next = this.state = this.withLive({ ...this.state, ...patch })
      const published = this.stateRef === undefined ? Effect.void : SubscriptionRef.set(this.stateRef, next)
      const onStateChange = this.options.onStateChange
      return onStateChange === undefined ? published : Effect.andThen(published, onStateChange(next))
    })
  }

  setPhase(phase: ShardPhase): Effect.Effect<void> {
    return this.update({ phase })
  }

  counted(field: "reconnects" | "identifies" | "resumes"): Effect.Effect<void> {
    return Effect.suspend(() => this.update({ [field]: this.state[field] + 1 }))
  }

  saveSession(): Effect.Effect<void> {
    return Effect.suspend(() => {
      const current = this.session
      if (current === null) return this.services.store.remove(this.key)
      const stored: StoredSession = {
        sessionId: current.sessionId,
        sequence: current.sequence,
        resumeUrl: current.resumeUrl
      }
      return this.services.store.set(this.key, stored)
    }).pipe(Effect.catch((error) => Effect.logWarning("could not save the session", error)))
  }

  forgetSession(): Effect.Effect<void> {
    return Effect.suspend(() => {
      this.session = null
      return Effect.andThen(this.saveSession(), this.update({}))
    })
  }

  // ---- one connection ----
  /**
   * Opens one connection in a new Scope and waits for its end (set up by `openConnection`). The Scope is
   * closed by `closeConnection`: after the outcome (`connectNext`), or first thing when the shard's life ends
   * (`lifeEnded`: a fatal close, a defect, an interruption). Not `Effect.scoped`, whose frame, closures and
   * context with the Scope in it (0.5 KiB, flattened after enough lookups) the shard's fiber would keep for
   * the connection's life; only the steps that need the Scope get it.
   */
  connectOnce(): Effect.Effect<Outcome, FatalCloseError> {
    return Effect.suspend(() => {
      this.connectionScope = Scope.makeUnsafe()
      return Effect.flatten(Effect.gen({ self: this }, openConnection))
    })
  }

  /** Closes the connection's Scope, if one is open, with how it ended. */
  closeConnection(exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> {
    const scope = this.connectionScope
    if (scope === undefined) return Effect.void
    this.connectionScope = undefined
    return Scope.close(scope, exit)
  }

  // ---- the shard's life ----
  interruptibleWait(wait: Effect.Effect<unknown, unknown>): Effect.Effect<void> {
    return Effect.raceFirst(Effect.ignore(wait), Deferred.await(this.stopSignal))
  }

  connectNext(): Effect.Effect<void, FatalCloseError> {
    if (this.stopping !== null) return Effect.void
    const connect = this.attempts++ === 0 ? this.connectOnce() : this.counted("reconnects").pipe(
      Effect.andThen(Metrics.updateForShard(Metrics.reconnects, this.shardId, 1)),
      Effect.andThen(this.connectOnce())
    )
    return Effect.flatMap(
      connect,
      (outcome) => Effect.andThen(this.closeConnection(Exit.succeed(outcome)), this.afterConnection(outcome))
    )
  }

  afterConnection(outcome: Outcome): Effect.Effect<void, FatalCloseError> {
    if (this.stopping !== null || outcome.kind === "stopped") return Effect.void
    return Effect.gen({ self: this }, function*() {
      yield* this.setPhase("reconnecting")
      if (this.session !== null) yield* this.saveSession()
      if (outcome.kind === "invalid-session") {
        const delay = this.options.invalidSessionDelayMs ?? { min: 1000, max: 5000 }
        const wait = yield* Random.nextBetween(delay.min, delay.max)
        yield* this.interruptibleWait(Effect.sleep(Duration.millis(Math.round(wait))))
      } else if (outcome.healthy) {
        this.backoff = undefined
      } else {
        this.backoff ??= yield* Schedule.toStepWithSleep(this.options.reconnectSchedule ?? reconnectBackoff)
        yield* this.interruptibleWait(this.backoff(undefined))
      }
    }).pipe(Effect.andThen(this.nextConnection))
  }

  /**
   * The end of the shard's life, one step on its fiber (one frame kept below the connections for the
   * shard's whole life, where a chain of taps, `ensuring` and `onExit` kept six):
   * - the open connection's Scope is closed (`closeConnection`);
   * - a fatal close: the phase says so and the error is logged;
   * - always: pending and queued commands fail, since the shard will not send them;
   * - a defect: the session is saved with the sequence of the dispatch being handled (it is counted before it
   *   is published), so that a restart RESUMEs after it rather than replaying it into the same defect;
   * - a graceful end: the session is kept for a resumable stop and forgotten otherwise, and the phase is
   *   "stopped";
   * - then the supervisor's `onEnd`, with how the shard ended.
   * It runs as a finalizer, so uninterruptibly; the steps that wait on other services (a SessionStore, the
   * state hook) stay interruptible, as they were in the chain, so that a hung store cannot hold up a Scope's
   * close.
   */
  lifeEnded(exit: Exit.Exit<void, FatalCloseError>): Effect.Effect<void> {
    return Effect.gen({ self: this }, function*() {
      // First the open connection's Scope, with the shard's exit (after a defect, `Connection.release` closes
      // the socket with 4000 rather than the Scope's 1000).
      yield* this.closeConnection(exit)
      const fatal = Exit.isFailure(exit) ? Cause.findErrorOption(exit.cause) : Option.none()
      if (Option.isSome(fatal)) {
        const { message } = fatal.value
        yield* interruptibly(Effect.andThen(this.update({ phase: "fatal", lastError: message }), Effect.logError(message)))
      }
      this.shardEnded = true
      const stopped = new ShardStopped({ shardId: this.shardId })
      if (this.pending !== undefined) yield* Deferred.fail(this.pending.done, stopped)
      if (this.commands !== undefined) {
        for (const item of yield* Queue.clear(this.commands)) yield* Deferred.fail(item.done, stopped)
        yield* Queue.shutdown(this.commands)
      }
      let ended: Exit.Exit<void, FatalCloseError> = exit
      if (Exit.isFailure(exit)) {
        if (Cause.hasDies(exit.cause)) yield* interruptibly(this.saveSession())
      } else {
        if (this.stopping !== null && !this.stopping.resumable) this.session = null
        ended = yield* interruptibly(Effect.andThen(this.saveSession(), this.setPhase("stopped")))
      }
      const onEnd = this.options.onEnd
      if (onEnd !== undefined) yield* onEnd(ended)
    })
  }

  // ---- the handle's operations ----
  changes(): Stream.Stream<ShardState> {
    return Stream.unwrap(Effect.suspend(() =>
      this.stateRef === undefined
        ? Effect.map(SubscriptionRef.make(this.state), (made) => SubscriptionRef.changes(this.stateRef ??= made))
        : Effect.succeed(SubscriptionRef.changes(this.stateRef))
    ))
  }

  send(command: GatewayCommand): Effect.Effect<void, SendError> {
    return Effect.gen({ self: this }, function*() {
      const shardId = this.shardId
      const frame = encodeCommand(command)
      if (typeof frame !== "string") return yield* frame
      if (this.stopping !== null || this.shardEnded) return yield* new ShardStopped({ shardId })
      if (this.commands === undefined) {
        const made = yield* Queue.bounded<PendingCommand>(this.options.commandBuffer ?? 1000)
        // Another send may have made one meanwhile (keep the first), or the shard ended meanwhile.
        this.commands ??= made
        if (this.shardEnded) return yield* new ShardStopped({ shardId })
      }
      const done = yield* Deferred.make<void, ShardStopped>()
      const accepted = yield* Queue.offer(this.commands, { frame, done })
      if (!accepted) return yield* new ShardStopped({ shardId })
      if (this.wakePump !== undefined) yield* this.wakePump
      return yield* Deferred.await(done)
    })
  }

  /** Marks the shard stopping and closes its live connection; the handle then waits for the shard's end. */
  requestStop(options: { readonly resumable?: boolean } | undefined): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.stopping === null) this.stopping = { resumable: options?.resumable ?? false }
      return Effect.andThen(
        Deferred.succeed(this.stopSignal, undefined),
        Effect.suspend(() => this.activeStop ?? Effect.void)
      )
    })
  }

  takeEventCounts(): ReadonlyMap<string, number> {
    const counts = this.eventCounts
    this.eventCounts = undefined
    return counts ?? NoEventCounts
  }
}

/** Runs a step of a shard's end interruptibly inside its (uninterruptible) finalizer; its exit is kept. */
const interruptibly = (effect: Effect.Effect<void>) => Effect.exit(Effect.interruptible(effect))

/**
 * One connection of a shard (its steps as the module doc lists them, from Hello to its end): its state and
 * the steps that handle its frames. Its steps are methods; the effects it keeps for its life (the next read,
 * the stop and wake hooks) are built once, here.
 */
class Connection {
  readonly shard: ShardRuntime
  readonly conn: GatewayConnection
  readonly scope: Scope.Scope
  readonly inflater: Inflater.Inflater
  readonly ended: Deferred.Deferred<Outcome, FatalCloseError>
  readonly helloArrived: Deferred.Deferred<void>
  readonly readyArrived: Deferred.Deferred<void>

  finished = false
  helloSeen = false
  ready = false
  acksSinceReady = 0
  awaitingAck = false
  lastBeatAt = 0
  /** The reader is waiting in `publish` (a "suspend" subscriber's buffer is full). */
  publishing = false
  heldAtLastBeat = false
  progressAt = 0
  limiter: SendLimiter.SendLimiter | undefined = undefined
  pumping = false
  /** The batch being handled published a dispatch: the reader yields before its next read. */
  handedOver = false
  /** When the batch being handled was received. */
  receivedAt = 0

  readonly readNext: Effect.Effect<Outcome, FatalCloseError | ConnectionClosed>
  /**
   * After a batch that handed dispatches over, the reader lets the fibers that take them (the application's
   * consumers) run before it reads again. Otherwise, with the socket full, every shard's reader is resumed
   * by each read ahead of a consumer that must wait for the event loop's next turn: subscribers' buffers fill
   * to capacity and stay full, every waiting dispatch lives through young-generation collections (which
   * copy it, then promote it), and readers end up waiting on full buffers. Measured with 8 shards and the
   * socket full: a subscriber's buffer held 1 900 dispatches on average (4 096 at most) without this, 345
   * with it, and GC took about half the time.
   */
  readonly yieldThenRead: Effect.Effect<Outcome, FatalCloseError | ConnectionClosed>
  /** Closes this connection for a stop request, with the code the stop asked for. */
  readonly closeForStop: Effect.Effect<void>
  /** Starts the command sender if it is not running (the shard's `wakePump` while this connection is ready). */
  readonly startPump: Effect.Effect<void>

  /** Waits for the connection's end. Made when needed (at its end, or when a publish waits): not kept. */
  get awaitEnded(): Effect.Effect<Outcome, FatalCloseError> {
    return Deferred.await(this.ended)
  }

  constructor(
    shard: ShardRuntime,
    conn: GatewayConnection,
    scope: Scope.Scope,
    inflater: Inflater.Inflater,
    ended: Deferred.Deferred<Outcome, FatalCloseError>,
    helloArrived: Deferred.Deferred<void>,
    readyArrived: Deferred.Deferred<void>
  ) {
    this.shard = shard
    this.conn = conn
    this.scope = scope
    this.inflater = inflater
    this.ended = ended
    this.helloArrived = helloArrived
    this.readyArrived = readyArrived
    this.readNext = Effect.flatMap(conn.receive, (batch) => this.onBatch(batch))
    this.yieldThenRead = Effect.andThen(Effect.yieldNow, this.readNext)
    this.closeForStop = Effect.suspend(() =>
      this.finish("stopped", shard.stopping?.resumable ? ResumableCloseCode : SessionEndingCloseCode)
    )
    this.startPump = Effect.suspend(() => {
      if (this.pumping || this.finished) return Effect.void
      this.pumping = true
      return Effect.asVoid(this.fork(Effect.ignore(this.pumpCommands())))
    })
  }

  /** It reached READY/RESUMED and had a heartbeat acknowledged after it (`Outcome.healthy`). */
  get healthy(): boolean {
    return this.ready && this.acksSinceReady > 0
  }

  fork<A, E>(effect: Effect.Effect<A, E>): Effect.Effect<Fiber.Fiber<A, E>> {
    return Effect.forkIn(effect, this.scope)
  }

  /** The connection's Scope closed: it no longer answers a stop or wakes a sender; a defect closes it with 4000. */
  release(exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> {
    const shard = this.shard
    if (shard.activeStop === this.closeForStop) shard.activeStop = undefined
    if (shard.wakePump === this.startPump) shard.wakePump = undefined
    return Exit.isFailure(exit) && Cause.hasDies(exit.cause) ? this.conn.close(ResumableCloseCode) : Effect.void
  }

  /** Ends the connection (once) as `kind`, closing it with `code`. */
  finish(kind: Outcome["kind"], code: number): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.finished) return Effect.void
      this.finished = true
      return Effect.andThen(
        this.conn.close(code),
        Deferred.succeed(this.ended, { kind, healthy: this.healthy })
      )
    })
  }

  sendPriority(frame: string): Effect.Effect<void> {
    return Effect.suspend(() => this.limiter === undefined ? Effect.void : this.limiter.acquire("heartbeat")).pipe(
      Effect.andThen(this.conn.send(frame)),
      Effect.ignore
    )
  }

  heartbeatFrame(): string {
    return `{"op":1,"d":${this.shard.session?.sequence ?? null}}`
  }

  beat(): Effect.Effect<void> {
    // A missing ACK proves a dead connection only if the reader was free to see it: while the reader is
    // held by dispatch backpressure (or was at the previous beat) the ACK may be waiting behind dispatches.
    const readerHeld = this.publishing || this.heldAtLastBeat
    this.heldAtLastBeat = this.publishing
    if (this.awaitingAck && !readerHeld) {
      return Effect.andThen(
        Effect.andThen(
          Effect.logWarning("no heartbeat ACK since the last beat: zombie connection, reconnecting"),
          this.shard.update({ lastError: "zombie connection (no heartbeat ACK)" })
        ),
        this.finish("zombie", ResumableCloseCode)
      )
    }
    this.awaitingAck = true
    return Effect.andThen(this.limiter!.acquire("heartbeat"), () => {
      this.lastBeatAt = this.shard.services.clock.currentTimeMillisUnsafe()
      return Effect.ignore(this.conn.send(this.heartbeatFrame()))
    })
  }

  // First beat after I × U[0,1), then every I on a Schedule, on the shard's HeartbeatTimer (one sleeping
  // fiber for every connection that shares it, rather than one per connection). `Schedule.spaced` (the delay
  // counted from each beat) rather than `Schedule.fixed`: fixed computes the next delay modulo the window
  // from a fractional start, and rounding can make it ~0 — a second beat in the same instant, before the
  // ACK, a false zombie — and it fires at once after any stall longer than I. A beat takes microseconds: I ± τ.
  // The first delay is at least 1 ms (a draw of 0 has probability 1/I): a beat is never due in the very
  // instant of Hello, where it would race the answer to the IDENTIFY or RESUME sent beside it and could
  // carry a sequence that answer has just replaced.
  heartbeat(interval: number): Effect.Effect<void> {
    return Effect.flatMap(Random.next, (jitter) =>
      this.shard.services.heartbeats.every(
        this.scope,
        Math.max(1, Math.floor(interval * jitter)),
        heartbeatSchedule(interval),
        this
      ))
  }

  readyDeadline(): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.ready || this.finished) return Effect.void
      const due = this.progressAt + this.shard.readyTimeoutMs
      const now = this.shard.services.clock.currentTimeMillisUnsafe()
      if (now >= due) {
        return Effect.andThen(
          this.shard.update({ lastError: "READY/RESUMED did not arrive in time" }),
          this.finish("timeout", ResumableCloseCode)
        )
      }
      return Effect.andThen(Effect.sleep(Duration.millis(due - now)), this.readyDeadline())
    })
  }

  // Effects run once per connection (the handshake, becoming ready) are built when they run, so that an
  // idle connection keeps nothing of them.
  handshake(): Effect.Effect<void> {
    return Effect.gen({ self: this }, function*() {
      const shard = this.shard
      const { services: { clock }, shardId } = shard
      const current = shard.session
      if (current !== null) {
        yield* shard.setPhase("resuming")
        yield* this.sendPriority(JSON.stringify({
          op: 6,
          d: { token: Redacted.value(shard.options.token), session_id: current.sessionId, seq: current.sequence }
        }))
        yield* shard.counted("resumes")
        yield* Metrics.updateForShard(Metrics.resumes, shardId, 1)
      } else {
        yield* shard.setPhase("identifying")
        const waitStart = clock.currentTimeMillisUnsafe()
        yield* shard.services.identifyLimiter.acquire(shardId)
        yield* Metric.update(Metrics.identifyWaitMs, clock.currentTimeMillisUnsafe() - waitStart)
        yield* this.sendPriority(shard.identifyFrame())
        yield* shard.counted("identifies")
        yield* Metric.update(Metrics.identifies, 1)
      }
      this.progressAt = clock.currentTimeMillisUnsafe()
      yield* Effect.raceFirst(Deferred.await(this.readyArrived), this.readyDeadline())
    })
  }

  // Commands go out on a fiber that runs only while some are waiting: it sends the pending one, then the
  // queued ones in order, and ends when the queue is empty (`send` starts it again). A failed write ends
  // it for this connection; the command stays pending and goes out on the next one.
  pumpCommands(): Effect.Effect<void, ConnectionClosed> {
    return Effect.suspend(() => {
      const shard = this.shard
      let item = shard.pending
      if (item === undefined) {
        const taken = shard.commands === undefined ? undefined : Queue.takeUnsafe(shard.commands)
        if (taken === undefined || taken._tag === "Failure") {
          this.pumping = false
          return Effect.void
        }
        item = shard.pending = taken.value
      }
      const sending = item
      return this.limiter!.acquire("command").pipe(
        // Written and marked done in one uninterruptible step: a command is sent once, never again on the
        // next connection.
        Effect.andThen(Effect.uninterruptible(Effect.andThen(this.conn.send(sending.frame), () => {
          shard.pending = undefined
          return Deferred.succeed(sending.done, undefined)
        }))),
        Effect.andThen(Effect.suspend(() => this.pumpCommands()))
      )
    })
  }

  becameReady(): Effect.Effect<void> {
    return Effect.gen({ self: this }, function*() {
      this.ready = true
      yield* Deferred.succeed(this.readyArrived, undefined)
      yield* this.shard.setPhase("ready")
      this.shard.wakePump = this.startPump
      yield* this.startPump
    })
  }

  onDecodeError(error: FrameDecodeError): Effect.Effect<void> {
    return Effect.gen({ self: this }, function*() {
      yield* Metrics.updateForShard(Metrics.decodeErrors, this.shard.shardId, 1)
      yield* this.shard.update({ lastError: error.message })
      yield* Effect.logWarning(error.message)
      // Without a valid Hello or READY the connection cannot go on; anything else is skipped.
      if (error.op === 10 || error.event === "READY") yield* this.finish("closed", ResumableCloseCode)
    })
  }

  onReady(frame: Extract<ServerFrame, { op: 0 }>): Effect.Effect<void> {
    return Effect.gen({ self: this }, function*() {
      const shard = this.shard
      const parsed = frame.dataStart === undefined
        ? Result.succeed(frame.d)
        : Result.map(parseJson(frame.text.text()), (whole) => (whole as { readonly d?: unknown }).d)
      if (Result.isFailure(parsed)) {
        return yield* this.onDecodeError(new FrameDecodeError({ op: 0, event: "READY", detail: "data is not valid JSON" }))
      }
      const data = parsed.success
      const decoded = decodeReady(data)
      if (decoded._tag === "Failure") {
        return yield* this.onDecodeError(new FrameDecodeError({ op: 0, event: "READY", detail: decoded.failure.message }))
      }
      shard.session = { sessionId: decoded.success.session_id, resumeUrl: decoded.success.resume_gateway_url, sequence: frame.s }
      yield* shard.saveSession()
      yield* this.becameReady()
      shard.lastDispatchAt = shard.services.clock.currentTimeMillisUnsafe()
      yield* this.publish(Dispatch.make(shard.shardId, frame.s, frame.t, data))
    })
  }

  publish(dispatch: Dispatch.Dispatch): Effect.Effect<void> {
    this.handedOver = true
    const published = this.shard.services.sink.publish(dispatch)
    // Every buffer had room: done, nothing to wait for (the common case allocates nothing more).
    if (published === Effect.void) return published
    this.publishing = true
    // A connection ended meanwhile (a stop, a deadline) does not wait for a full subscriber to take: the
    // wait is given up, so that a stop requested by the consumer itself cannot deadlock.
    const publishDone = Effect.sync(() => {
      this.publishing = false
    })
    return Effect.raceFirst(Effect.andThen(published, publishDone), Effect.ignore(this.awaitEnded))
  }

  // The per-event path: no generator, one Dispatch object, one publish.
  onDispatch(frame: Extract<ServerFrame, { op: 0 }>): Effect.Effect<void> {
    const shard = this.shard
    const { s, t } = frame
    const counts = shard.eventCounts ??= new Map()
    counts.set(t, (counts.get(t) ?? 0) + 1)
    if (t === "READY") return this.onReady(frame)
    const session = shard.session
    if (session !== null) {
      // A replayed or repeated dispatch of this session is delivered once.
      if (session.sequence !== null && s <= session.sequence) return Effect.void
      session.sequence = s
    }
    // Every frame of a batch arrived in one event-loop turn: the batch's time is theirs.
    shard.lastDispatchAt = this.receivedAt
    if (!this.ready) this.progressAt = this.receivedAt
    // Nobody wants it (no subscriber, no runtime bookkeeping): the sequence is tracked, nothing is built.
    if (t !== "RESUMED" && !shard.services.sink.wants(t)) return Effect.void
    const dispatch = frame.dataStart === undefined
      ? Dispatch.make(shard.shardId, s, t, frame.d)
      : Dispatch.makeLazy(shard.shardId, s, t, frame.text.text(), frame.dataStart, shard.onLazyDataError)
    if (t === "RESUMED") return Effect.andThen(this.becameReady(), () => this.publish(dispatch))
    return this.publish(dispatch)
  }

  onFrame(frame: ServerFrame): Effect.Effect<void> {
    const shard = this.shard
    switch (frame.op) {
      case 0:
        return this.onDispatch(frame)
      case 10: {
        if (this.helloSeen) return Effect.void
        this.helloSeen = true
        Deferred.doneUnsafe(this.helloArrived, Exit.void)
        const interval = frame.heartbeatInterval
        return Effect.gen({ self: this }, function*() {
          this.limiter = yield* SendLimiter.make({ heartbeatIntervalMs: interval })
          yield* shard.setPhase(shard.session === null ? "identifying" : "resuming")
          yield* this.heartbeat(interval)
          yield* this.fork(this.handshake())
        })
      }
      case 11: {
        this.awaitingAck = false
        if (this.ready) this.acksSinceReady++
        const latencyMs = shard.services.clock.currentTimeMillisUnsafe() - this.lastBeatAt
        return Effect.andThen(Metric.update(Metrics.heartbeatLatencyMs, latencyMs), shard.update({ latencyMs }))
      }
      case 1:
        // "Heartbeat now": answered at once, outside the regular schedule (item 8).
        return Effect.asVoid(this.fork(this.sendPriority(this.heartbeatFrame())))
      case 7:
        return Effect.andThen(Effect.logInfo("op 7 Reconnect"), this.finish("reconnect", ResumableCloseCode))
      case 9:
        if (frame.resumable) {
          return Effect.andThen(Effect.logInfo("op 9 Invalid Session (resumable)"), this.finish("reconnect", ResumableCloseCode))
        }
        return Effect.logInfo("op 9 Invalid Session (not resumable): identifying again").pipe(
          Effect.andThen(shard.forgetSession()),
          Effect.andThen(this.finish("invalid-session", SessionEndingCloseCode))
        )
      case "unknown":
        return Effect.logDebug(`ignoring unknown opcode ${frame.code}`)
    }
  }

  onClosed(closed: ConnectionClosed): Effect.Effect<Outcome, FatalCloseError> {
    return Effect.gen({ self: this }, function*() {
      if (this.finished) return yield* this.awaitEnded
      this.finished = true
      const shard = this.shard
      const info = classifyClose(closed.code)
      yield* shard.update({ lastError: closed.message })
      yield* Effect.logInfo(`${closed.message}: ${info.name}, ${info.action}`)
      if (info.action === "fatal" && info.error !== undefined) {
        return yield* (new info.error({ shardId: shard.shardId, shardCount: shard.shardCount, code: closed.code, reason: closed.reason }))
      }
      if (info.action === "identify") yield* shard.forgetSession()
      return { kind: "closed", healthy: this.healthy } satisfies Outcome
    })
  }

  // The read loop is written as a chain of effects rather than a generator: it lives as long as the
  // connection, and a suspended generator keeps its whole frame (and a prototype per shard) alive.
  /**
   * Handles the frames of a batch from `start` on, then reads again (or ends with the connection). A
   * dispatch whose lazily read data turned out not to be JSON (found while a frame was handled) is reported
   * before the next frame.
   */
  handleFrom(
    texts: ReadonlyArray<Inflater.Message>,
    start: number
  ): Effect.Effect<Outcome, FatalCloseError | ConnectionClosed> {
    const shard = this.shard
    for (let i = start;; i++) {
      if (shard.lazyDataError !== undefined) {
        const detail = shard.lazyDataError
        shard.lazyDataError = undefined
        return Effect.andThen(
          this.onDecodeError(new FrameDecodeError({ op: 0, event: null, detail })),
          Effect.suspend(() => this.handleFrom(texts, i))
        )
      }
      if (i === texts.length) {
        if (!this.handedOver) return this.readNext
        this.handedOver = false
        return this.yieldThenRead
      }
      if (this.finished) return this.awaitEnded
      // A text frame is decoded only as far as needed (an unwanted dispatch: not at all).
      const frame = decodeTextFrame(texts[i]!)
      const handled = frame instanceof FrameDecodeError ? this.onDecodeError(frame) : this.onFrame(frame)
      // Most frames finish synchronously (Effect.void): nothing is built to continue after them.
      if (handled !== Effect.void) return Effect.andThen(handled, Effect.suspend(() => this.handleFrom(texts, i + 1)))
    }
  }

  onBatch(batch: ReadonlyArray<Frame>): Effect.Effect<Outcome, FatalCloseError | ConnectionClosed> {
    this.receivedAt = this.shard.services.clock.currentTimeMillisUnsafe()
    // Without compression the text frames are the messages: the Inflater is only needed once a binary
    // (payload-compressed) frame appears. Otherwise the whole batch is inflated at once.
    let inflate = !this.inflater.passthrough
    for (let i = 0; !inflate && i < batch.length; i++) inflate = isBinary(batch[i]!)
    if (!inflate) return this.handleFrom(batch as ReadonlyArray<Inflater.Message>, 0)
    if (this.finished) return this.awaitEnded
    return Effect.flatMap(Effect.result(this.inflater.push(batch)), (inflated) =>
      inflated._tag === "Success"
        ? this.handleFrom(inflated.success, 0)
        // A corrupt compression stream cannot be resynchronised: reconnect. The messages of this batch
        // that did decode are not handled either; nothing is lost, since the shard resumes and the
        // gateway replays every dispatch after the last sequence number we did handle.
        : Effect.andThen(
          Effect.andThen(this.onDecodeError(inflated.failure), this.finish("closed", ResumableCloseCode)),
          this.awaitEnded
        ))
  }

  /** The connection ended as `exit` says (unless a `finish` from elsewhere said so first). */
  endWith(exit: Exit.Exit<Outcome, FatalCloseError>): Effect.Effect<Outcome, FatalCloseError> {
    return Effect.andThen(Deferred.done(this.ended, exit), this.awaitEnded)
  }

  /**
   * The reads until the connection's end: one frame below them for the connection's life. The transport's
   * close goes to `onClosed`; any other end (a fatal close found in a frame, a defect) ends the connection
   * as it is.
   */
  readLoop(): Effect.Effect<Outcome, FatalCloseError> {
    return Effect.matchCauseEffect(this.readNext, {
      onSuccess: (outcome) => this.endWith(Exit.succeed(outcome)),
      onFailure: (cause) => {
        const error = Cause.findErrorOption(cause)
        return Option.isSome(error) && error.value._tag === "ConnectionClosed"
          ? Effect.flatMap(Effect.exit(this.onClosed(error.value)), (exit) => this.endWith(exit))
          : this.endWith(Exit.failCause(cause as Cause.Cause<FatalCloseError>))
      }
    })
  }
}

/**
 * Starts a shard in the current Scope and returns its handle. Closing the Scope interrupts it (its
 * connection closes with 1000); use `stop` for a chosen close code.
 */
export const make = Effect.fnUntraced(function*(options: ShardOptions) {
  const services: ShardServices = {
    transport: yield* GatewayTransport,
    identifyLimiter: yield* IdentifyRateLimiter,
    store: yield* SessionStore,
    sink: yield* DispatchSink,
    clock: yield* Clock.Clock,
    // The Gateway's timer when there is one (shared by its shards), else one of the shard's own.
    heartbeats: yield* HeartbeatTimer.sharedOrMake
  }
  const key = { shardId: options.shardId, shardCount: options.shardCount }
  const session = Option.getOrNull(
    yield* services.store.get(key).pipe(
      Effect.map(Option.map((s): LiveSession => ({ ...s }))),
      Effect.catch((error) => Effect.as(Effect.logWarning("could not read the saved session", error), Option.none()))
    )
  )
  const runtime = new ShardRuntime(options, key, services, session, yield* Deferred.make<void>())
  const identifyBytes = byteLength(runtime.identifyFrame())
  if (identifyBytes > MaxFrameBytes) {
    return yield* new PayloadTooLarge({ op: 2, bytes: identifyBytes, limit: MaxFrameBytes })
  }
  if (options.presence !== undefined) {
    const presence = encodeCommand({ op: 3, d: options.presence })
    if (typeof presence !== "string") return yield* presence
  }
  // The fiber is owned by the current Scope: its close interrupts the fiber (unless the fiber itself closes
  // it). One finalizer, not `forkScoped`'s finalizer plus an observer on the fiber to remove it at the
  // fiber's end (0.2 KiB a shard); a shard that ended by itself leaves it until the Scope closes.
  const scope = yield* Effect.scope
  const fiber = yield* Effect.forkDetach(Effect.onExit(runtime.nextConnection, (exit) => runtime.lifeEnded(exit)))
  yield* Scope.addFinalizerExit(scope, () =>
    Effect.withFiber((current) => current === fiber ? Effect.void : Fiber.interrupt(fiber)))
  const shard: Shard = new ShardHandle(runtime, fiber)
  return shard
}, (effect, options) =>
  // Every log line of the shard, from its start and on its fiber for its whole life (which inherits this
  // context once, at the fork), carries its id and count.
  Effect.annotateLogs(effect, { shard: options.shardId, shardCount: options.shardCount }))
