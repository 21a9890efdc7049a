/**
 * Shard: one gateway session kept alive through every fault the gateway throws at it (PROTOCOL.md §1–§3).
 *
 * A shard is a fiber built from services: `GatewayTransport` (the socket), `IdentifyRateLimiter` (identify
 * buckets and the daily budget), `SessionStore` (what RESUME needs) and `DispatchSink` (where its dispatches
 * go). Each connection lives in its own Scope, so a stale connection can never touch its successor.
 *
 * Per connection: connect (deadline) → Hello (deadline; op 7 before Hello reconnects) → heartbeat on its own
 * fiber (first beat after interval × U[0,1), then every interval; a beat due while the previous one is
 * unacknowledged closes 4000 and resumes — zombie, item 9; not while the reader is held by dispatch
 * backpressure, when the ACK may be waiting unread) and, beside it, IDENTIFY through the limiter or
 * RESUME at the resume URL → READY/RESUMED (deadline, extended while dispatches flow) → commands flow.
 * Only ops 1, 2 and 6 are sent before READY/RESUMED (item 15), all through the connection's send limiter.
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
  readonly takeEventCounts: () => ReadonlyMap<string, number>
}

/** What a running shard's handle reads and does, made by `make` over the shard's state. */
interface ShardOps {
  readonly state: () => ShardState
  readonly changes: () => Stream.Stream<ShardState>
  readonly send: Shard["send"]
  readonly stop: Shard["stop"]
  readonly takeEventCounts: Shard["takeEventCounts"]
}

/**
 * A running shard's handle. `state`, `changes` and `join` are made when read: a shard lives long, and most
 * handles are never asked (a class keeps its getters on the prototype, not in every handle).
 */
class ShardHandle implements Shard {
  readonly id: number
  readonly count: number
  readonly send: Shard["send"]
  readonly stop: Shard["stop"]
  readonly takeEventCounts: Shard["takeEventCounts"]
  private readonly fiber: Fiber.Fiber<void, FatalCloseError>
  private readonly readState: ShardOps["state"]
  private readonly makeChanges: ShardOps["changes"]

  constructor(id: number, count: number, fiber: Fiber.Fiber<void, FatalCloseError>, ops: ShardOps) {
    this.id = id
    this.count = count
    this.fiber = fiber
    this.readState = ops.state
    this.makeChanges = ops.changes
    this.send = ops.send
    this.stop = ops.stop
    this.takeEventCounts = ops.takeEventCounts
  }

  get state(): Effect.Effect<ShardState> {
    return Effect.sync(this.readState)
  }

  get changes(): Stream.Stream<ShardState> {
    return this.makeChanges()
  }

  get join(): Effect.Effect<void, FatalCloseError> {
    return Fiber.join(this.fiber)
  }
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

/**
 * Starts a shard in the current Scope and returns its handle. Closing the Scope interrupts it (its
 * connection closes with 1000); use `stop` for a chosen close code.
 */
export const make = Effect.fnUntraced(function*(options: ShardOptions) {
  const transport = yield* GatewayTransport
  const identifyLimiter = yield* IdentifyRateLimiter
  const store = yield* SessionStore
  const sink = yield* DispatchSink
  const clock = yield* Clock.Clock

  const { shardCount, shardId } = options
  const key = { shardId, shardCount }
  const compression = options.compression ?? "none"
  const connectTimeout = options.connectTimeout ?? "15 seconds"
  const helloTimeout = options.helloTimeout ?? "20 seconds"
  const readyTimeoutMs = Duration.toMillis(Duration.fromInputUnsafe(options.readyTimeout ?? "30 seconds"))
  const invalidDelay = options.invalidSessionDelayMs ?? { min: 1000, max: 5000 }
  const reconnectSchedule = options.reconnectSchedule ?? reconnectBackoff

  // Made when sent (and checked once here): no copy of the token is kept in memory for the shard's life.
  const identifyFrame = () =>
    JSON.stringify({
      op: 2,
      d: {
        token: Redacted.value(options.token),
        properties: options.properties ?? defaultProperties,
        intents: options.intents,
        shard: [shardId, shardCount],
        ...(options.largeThreshold === undefined ? {} : { large_threshold: options.largeThreshold }),
        ...(options.presence === undefined ? {} : { presence: options.presence })
      }
    })
  const identifyBytes = byteLength(identifyFrame())
  if (identifyBytes > MaxFrameBytes) {
    return yield* new PayloadTooLarge({ op: 2, bytes: identifyBytes, limit: MaxFrameBytes })
  }
  if (options.presence !== undefined) {
    const presence = encodeCommand({ op: 3, d: options.presence })
    if (typeof presence !== "string") return yield* presence
  }

  // ---- shard-wide state ----
  let session: LiveSession | null = Option.getOrNull(
    yield* store.get(key).pipe(
      Effect.map(Option.map((s): LiveSession => ({ ...s }))),
      Effect.catch((error) => Effect.as(Effect.logWarning("could not read the saved session", error), Option.none()))
    )
  )
  /** The resume URL refused a connection: the next attempt goes to the base URL (item 28). */
  let resumeUrlRefused = false
  let lastDispatchAt: number | null = null
  let stopping: { readonly resumable: boolean } | null = null
  let pending: PendingCommand | undefined
  /** Closes the live connection for a stop request (with the code the stop asked for). */
  let activeStop: Effect.Effect<void> | undefined
  /** Starts the ready connection's command sender if it is not running. */
  let wakePump: Effect.Effect<void> | undefined
  /** The latest state. `changes` subscribers read it through a SubscriptionRef made on the first subscription. */
  let state = initialState(shardId, shardCount)
  let stateRef: SubscriptionRef.SubscriptionRef<ShardState> | undefined
  let eventCounts = new Map<string, number>()
  /** A dispatch whose data, parsed lazily by a reader, was not JSON: reported at the next frame. */
  let lazyDataError: string | undefined
  const onLazyDataError: Dispatch.LazyDataError = (dispatch) => {
    lazyDataError = `malformed gateway frame (op 0 ${dispatch.name}): data is not valid JSON`
  }
  /** Commands waiting for a ready connection: made at the first `send` (many shards never send one). */
  let commands: Queue.Queue<PendingCommand> | undefined
  /** The shard has ended: `send` fails at once. */
  let shardEnded = false
  const stopSignal = yield* Deferred.make<void>()

  const withLive = (s: ShardState): ShardState => ({
    ...s,
    sequence: session?.sequence ?? null,
    sessionId: session?.sessionId ?? null,
    lastDispatchAt
  })
  const onStateChange = options.onStateChange
  const update = (patch: Partial<ShardState>): Effect.Effect<void> =>
    Effect.suspend(() => {
      const next = state = withLive({ ...state, ...patch })
      const published = stateRef === undefined ? Effect.void : SubscriptionRef.set(stateRef, next)
      return onStateChange === undefined ? published : Effect.andThen(published, onStateChange(next))
    })
  const setPhase = (phase: ShardPhase) => update({ phase })
  const counted = (field: "reconnects" | "identifies" | "resumes") =>
    Effect.suspend(() => update({ [field]: state[field] + 1 }))

  const saveSession = Effect.suspend(() => {
    const current = session
    if (current === null) return store.remove(key)
    const stored: StoredSession = {
      sessionId: current.sessionId,
      sequence: current.sequence,
      resumeUrl: current.resumeUrl
    }
    return store.set(key, stored)
  }).pipe(Effect.catch((error) => Effect.logWarning("could not save the session", error)))

  const forgetSession = Effect.suspend(() => {
    session = null
    return Effect.andThen(saveSession, update({}))
  })

  // ---- one connection ----
  // The connection is set up by a generator that ends by handing over the wait for the connection's end, so
  // that no suspended generator frame is kept for the connection's life.
  const connectOnce: Effect.Effect<Outcome, FatalCloseError> = Effect.scoped(Effect.flatten(Effect.gen(function*() {
    const resumeWith = session
    const base = resumeWith !== null && !resumeUrlRefused ? resumeWith.resumeUrl : options.gatewayUrl
    const url = gatewayUrl(base, { compression })
    yield* setPhase("connecting")
    const opened = yield* transport.connect(url).pipe(
      Effect.timeoutOrElse({
        duration: connectTimeout,
        orElse: () => Effect.fail("timeout" as const)
      }),
      Effect.result
    )
    if (opened._tag === "Failure") {
      const detail = opened.failure === "timeout" ? `connect to ${url} timed out` : opened.failure.message
      if (base !== options.gatewayUrl) resumeUrlRefused = true
      yield* Effect.logWarning(detail)
      yield* update({ lastError: detail })
      // @effect-diagnostics-next-line returnEffectInGen:off -- flattened: the generator hands over what to wait for
      return Effect.succeed<Outcome>({ kind: "connect-failed", healthy: false })
    }
    resumeUrlRefused = false
    yield* setPhase("hello")
    yield* Metric.update(Metrics.connections, 1)
    const conn: GatewayConnection = opened.success
    const connectionScope = yield* Effect.scope
    const fork = <A, E>(effect: Effect.Effect<A, E>) => Effect.forkIn(effect, connectionScope)
    const inflater = yield* Inflater.make(compression)
    const ended = yield* Deferred.make<Outcome, FatalCloseError>()

    // per-connection state
    let finished = false
    let helloSeen = false
    let ready = false
    let acksSinceReady = 0
    let awaitingAck = false
    let lastBeatAt = 0
    /** The reader is waiting in `publish` (a "suspend" subscriber's buffer is full). */
    let publishing = false
    const publishDone = Effect.sync(() => {
      publishing = false
    })
    let heldAtLastBeat = false
    let progressAt = 0
    let limiter: SendLimiter.SendLimiter | undefined

    const finish = (outcome: Omit<Outcome, "healthy">, code: number) =>
      Effect.suspend(() => {
        if (finished) return Effect.void
        finished = true
        return Effect.andThen(
          conn.close(code),
          Deferred.succeed(ended, { kind: outcome.kind, healthy: ready && acksSinceReady > 0 })
        )
      })

    const sendPriority = (frame: string) =>
      Effect.suspend(() => limiter === undefined ? Effect.void : limiter.acquire("heartbeat")).pipe(
        Effect.andThen(conn.send(frame)),
        Effect.ignore
      )

    const heartbeatFrame = () => `{"op":1,"d":${session?.sequence ?? null}}`

    const beat = Effect.suspend(() => {
      // A missing ACK proves a dead connection only if the reader was free to see it: while the reader is
      // held by dispatch backpressure (or was at the previous beat) the ACK may be waiting behind dispatches.
      const readerHeld = publishing || heldAtLastBeat
      heldAtLastBeat = publishing
      if (awaitingAck && !readerHeld) {
        return Effect.andThen(
          Effect.andThen(Effect.logWarning("no heartbeat ACK since the last beat: zombie connection, reconnecting"), update({ lastError: "zombie connection (no heartbeat ACK)" })),
          finish({ kind: "zombie" }, ResumableCloseCode)
        )
      }
      awaitingAck = true
      return Effect.andThen(limiter!.acquire("heartbeat"), () => {
        lastBeatAt = clock.currentTimeMillisUnsafe()
        return Effect.ignore(conn.send(heartbeatFrame()))
      })
    })

    // First beat after I × U[0,1), then every I on a Schedule. `Schedule.spaced` (the delay counted after each
    // beat) rather than `Schedule.fixed`: fixed computes the next delay modulo the window from a fractional
    // start, and rounding can make it ~0 — a second beat in the same instant, before the ACK, a false zombie
    // — and it fires at once after any stall longer than I. A beat takes microseconds: I ± τ.
    // The Schedule's step is driven here (its delay slept on the Clock) rather than by `Effect.repeat`, whose
    // per-run metadata machinery would stay with every connection once it has beaten (about 1.5 KiB) for
    // nothing a heartbeat reads.
    // The end of the Schedule (`spaced` never ends) is caught around each step, not around the whole loop,
    // so that the sleeping heartbeat keeps no handler frame.
    const heartbeat = (interval: number) =>
      Effect.flatMap(Schedule.toStep(heartbeatSchedule(interval)), (step) => {
        const nextStep = Effect.suspend(() =>
          Pull.catchDone(step(clock.currentTimeMillisUnsafe(), undefined), () => Effect.succeed(null))
        )
        const beatThenWait: Effect.Effect<void> = Effect.andThen(
          beat,
          Effect.flatMap(nextStep, (next) => next === null ? Effect.void : Effect.andThen(Effect.sleep(next[1]), beatThenWait))
        )
        return Effect.flatMap(Random.next, (jitter) =>
          Effect.andThen(Effect.sleep(Duration.millis(Math.floor(interval * jitter))), beatThenWait))
      })

    // Deadlines race the phase they guard: when it completes, their fibers end (no idle sleepers left).
    const helloArrived = yield* Deferred.make<void>()
    const readyArrived = yield* Deferred.make<void>()

    const readyDeadline: Effect.Effect<void> = Effect.suspend(() => {
      if (ready || finished) return Effect.void
      const due = progressAt + readyTimeoutMs
      const now = clock.currentTimeMillisUnsafe()
      if (now >= due) {
        return Effect.andThen(update({ lastError: "READY/RESUMED did not arrive in time" }), finish({ kind: "timeout" }, ResumableCloseCode))
      }
      return Effect.andThen(Effect.sleep(Duration.millis(due - now)), readyDeadline)
    })

    // Effects run once per connection (the handshake, becoming ready) are built when they run, so that an
    // idle connection keeps nothing of them.
    const handshake = () => Effect.gen(function*() {
      const current = session
      if (current !== null) {
        yield* setPhase("resuming")
        yield* sendPriority(JSON.stringify({
          op: 6,
          d: { token: Redacted.value(options.token), session_id: current.sessionId, seq: current.sequence }
        }))
        yield* counted("resumes")
        yield* Metrics.updateForShard(Metrics.resumes, shardId, 1)
      } else {
        yield* setPhase("identifying")
        const waitStart = clock.currentTimeMillisUnsafe()
        yield* identifyLimiter.acquire(shardId)
        yield* Metric.update(Metrics.identifyWaitMs, clock.currentTimeMillisUnsafe() - waitStart)
        yield* sendPriority(identifyFrame())
        yield* counted("identifies")
        yield* Metrics.updateForShard(Metrics.identifies, shardId, 1)
      }
      progressAt = clock.currentTimeMillisUnsafe()
      yield* Effect.raceFirst(Deferred.await(readyArrived), readyDeadline)
    })

    // Commands go out on a fiber that runs only while some are waiting: it sends the pending one, then the
    // queued ones in order, and ends when the queue is empty (`send` starts it again). A failed write ends
    // it for this connection; the command stays pending and goes out on the next one.
    let pumping = false
    const pumpCommands: Effect.Effect<void, ConnectionClosed> = Effect.suspend(() => {
      let item = pending
      if (item === undefined) {
        const taken = commands === undefined ? undefined : Queue.takeUnsafe(commands)
        if (taken === undefined || taken._tag === "Failure") {
          pumping = false
          return Effect.void
        }
        item = pending = taken.value
      }
      const sending = item
      return limiter!.acquire("command").pipe(
        // Written and marked done in one uninterruptible step: a command is sent once, never again on the
        // next connection.
        Effect.andThen(Effect.uninterruptible(Effect.andThen(conn.send(sending.frame), () => {
          pending = undefined
          return Deferred.succeed(sending.done, undefined)
        }))),
        Effect.andThen(pumpCommands)
      )
    })
    const startPump = Effect.suspend(() => {
      if (pumping || finished) return Effect.void
      pumping = true
      return Effect.asVoid(fork(Effect.ignore(pumpCommands)))
    })

    const becameReady = () => Effect.gen(function*() {
      ready = true
      yield* Deferred.succeed(readyArrived, undefined)
      yield* setPhase("ready")
      wakePump = startPump
      yield* startPump
    })

    const onDecodeError = (error: FrameDecodeError) =>
      Effect.gen(function*() {
        yield* Metrics.updateForShard(Metrics.decodeErrors, shardId, 1)
        yield* update({ lastError: error.message })
        yield* Effect.logWarning(error.message)
        // Without a valid Hello or READY the connection cannot go on; anything else is skipped.
        if (error.op === 10 || error.event === "READY") yield* finish({ kind: "closed" }, ResumableCloseCode)
      })

    const onReady = (frame: Extract<ServerFrame, { op: 0 }>) =>
      Effect.gen(function*() {
        const parsed = frame.dataStart === undefined
          ? Result.succeed(frame.d)
          : Result.map(parseJson(frame.text.text()), (whole) => (whole as { readonly d?: unknown }).d)
        if (Result.isFailure(parsed)) {
          return yield* onDecodeError(new FrameDecodeError({ op: 0, event: "READY", detail: "data is not valid JSON" }))
        }
        const data = parsed.success
        const decoded = decodeReady(data)
        if (decoded._tag === "Failure") {
          return yield* onDecodeError(new FrameDecodeError({ op: 0, event: "READY", detail: decoded.failure.message }))
        }
        session = { sessionId: decoded.success.session_id, resumeUrl: decoded.success.resume_gateway_url, sequence: frame.s }
        yield* saveSession
        yield* becameReady()
        lastDispatchAt = clock.currentTimeMillisUnsafe()
        yield* publish(Dispatch.make(shardId, frame.s, frame.t, data))
      })

    /** The batch being handled published a dispatch: the reader yields before its next read. */
    let handedOver = false
    const publish = (dispatch: Dispatch.Dispatch): Effect.Effect<void> => {
      handedOver = true
      const published = sink.publish(dispatch)
      // Every buffer had room: done, nothing to wait for (the common case allocates nothing more).
      if (published === Effect.void) return published
      publishing = true
      // A connection ended meanwhile (a stop, a deadline) does not wait for a full subscriber to take: the
      // wait is given up, so that a stop requested by the consumer itself cannot deadlock.
      return Effect.raceFirst(Effect.andThen(published, publishDone), Effect.ignore(awaitEnded))
    }

    // The per-event path: no generator, one Dispatch object, one publish.
    /** When the batch being handled was received. */
    let receivedAt = 0
    const onDispatch = (frame: Extract<ServerFrame, { op: 0 }>): Effect.Effect<void> => {
      const { s, t } = frame
      eventCounts.set(t, (eventCounts.get(t) ?? 0) + 1)
      if (t === "READY") return onReady(frame)
      if (session !== null) {
        // A replayed or repeated dispatch of this session is delivered once.
        if (session.sequence !== null && s <= session.sequence) return Effect.void
        session.sequence = s
      }
      // Every frame of a batch arrived in one event-loop turn: the batch's time is theirs.
      lastDispatchAt = receivedAt
      if (!ready) progressAt = receivedAt
      // Nobody wants it (no subscriber, no runtime bookkeeping): the sequence is tracked, nothing is built.
      if (t !== "RESUMED" && !sink.wants(t)) return Effect.void
      const dispatch = frame.dataStart === undefined
        ? Dispatch.make(shardId, s, t, frame.d)
        : Dispatch.makeLazy(shardId, s, t, frame.text.text(), frame.dataStart, onLazyDataError)
      if (t === "RESUMED") return Effect.andThen(becameReady(), () => publish(dispatch))
      return publish(dispatch)
    }

    const onFrame = (frame: ServerFrame): Effect.Effect<void> => {
      switch (frame.op) {
        case 0:
          return onDispatch(frame)
        case 10: {
          if (helloSeen) return Effect.void
          helloSeen = true
          Deferred.doneUnsafe(helloArrived, Exit.void)
          const interval = frame.heartbeatInterval
          return Effect.gen(function*() {
            limiter = yield* SendLimiter.make({ heartbeatIntervalMs: interval })
            yield* setPhase(session === null ? "identifying" : "resuming")
            yield* fork(heartbeat(interval))
            yield* fork(handshake())
          })
        }
        case 11: {
          awaitingAck = false
          if (ready) acksSinceReady++
          const latencyMs = clock.currentTimeMillisUnsafe() - lastBeatAt
          return Effect.andThen(Metric.update(Metrics.heartbeatLatencyMs, latencyMs), update({ latencyMs }))
        }
        case 1:
          // "Heartbeat now": answered at once, outside the regular schedule (item 8).
          return Effect.asVoid(fork(sendPriority(heartbeatFrame())))
        case 7:
          return Effect.andThen(Effect.logInfo("op 7 Reconnect"), finish({ kind: "reconnect" }, ResumableCloseCode))
        case 9:
          if (frame.resumable) {
            return Effect.andThen(Effect.logInfo("op 9 Invalid Session (resumable)"), finish({ kind: "reconnect" }, ResumableCloseCode))
          }
          return Effect.logInfo("op 9 Invalid Session (not resumable): identifying again").pipe(
            Effect.andThen(forgetSession),
            Effect.andThen(finish({ kind: "invalid-session" }, SessionEndingCloseCode))
          )
        case "unknown":
          return Effect.logDebug(`ignoring unknown opcode ${frame.code}`)
      }
    }

    const onClosed = (closed: ConnectionClosed): Effect.Effect<Outcome, FatalCloseError> =>
      Effect.gen(function*() {
        if (finished) return yield* Deferred.await(ended)
        finished = true
        const healthy = ready && acksSinceReady > 0
        const info = classifyClose(closed.code)
        yield* update({ lastError: closed.message })
        yield* Effect.logInfo(`${closed.message}: ${info.name}, ${info.action}`)
        if (info.action === "fatal" && info.error !== undefined) {
          return yield* (new info.error({ shardId, shardCount, code: closed.code, reason: closed.reason }))
        }
        if (info.action === "identify") yield* forgetSession
        return { kind: "closed", healthy }
      })

    // The read loop is written as a chain of effects rather than a generator: it lives as long as the
    // connection, and a suspended generator keeps its whole frame (and a prototype per shard) alive.
    const awaitEnded = Deferred.await(ended)
    /**
     * Handles the frames of a batch from `start` on, then reads again (or ends with the connection). A
     * dispatch whose lazily read data turned out not to be JSON (found while a frame was handled) is reported
     * before the next frame.
     */
    const handleFrom = (
      texts: ReadonlyArray<Inflater.Message>,
      start: number
    ): Effect.Effect<Outcome, FatalCloseError | ConnectionClosed> => {
      for (let i = start;; i++) {
        if (lazyDataError !== undefined) {
          const detail = lazyDataError
          lazyDataError = undefined
          return Effect.andThen(
            onDecodeError(new FrameDecodeError({ op: 0, event: null, detail })),
            Effect.suspend(() => handleFrom(texts, i))
          )
        }
        if (i === texts.length) {
          if (!handedOver) return readNext
          handedOver = false
          return yieldThenRead
        }
        if (finished) return awaitEnded
        // A text frame is decoded only as far as needed (an unwanted dispatch: not at all).
        const frame = decodeTextFrame(texts[i]!)
        const handled = frame instanceof FrameDecodeError ? onDecodeError(frame) : onFrame(frame)
        // Most frames finish synchronously (Effect.void): nothing is built to continue after them.
        if (handled !== Effect.void) return Effect.andThen(handled, Effect.suspend(() => handleFrom(texts, i + 1)))
      }
    }
    const onBatch = (batch: ReadonlyArray<Frame>): Effect.Effect<Outcome, FatalCloseError | ConnectionClosed> => {
      receivedAt = clock.currentTimeMillisUnsafe()
      // Without compression the text frames are the messages: the Inflater is only needed once a binary
      // (payload-compressed) frame appears. Otherwise the whole batch is inflated at once.
      let inflate = !inflater.passthrough
      for (let i = 0; !inflate && i < batch.length; i++) inflate = isBinary(batch[i]!)
      if (!inflate) return handleFrom(batch as ReadonlyArray<Inflater.Message>, 0)
      if (finished) return awaitEnded
      return Effect.flatMap(Effect.result(inflater.push(batch)), (inflated) =>
        inflated._tag === "Success"
          ? handleFrom(inflated.success, 0)
          // A corrupt compression stream cannot be resynchronised: reconnect. The messages of this batch
          // that did decode are not handled either; nothing is lost, since the shard resumes and the
          // gateway replays every dispatch after the last sequence number we did handle.
          : Effect.andThen(
            Effect.andThen(onDecodeError(inflated.failure), finish({ kind: "closed" }, ResumableCloseCode)),
            awaitEnded
          ))
    }
    const readNext: Effect.Effect<Outcome, FatalCloseError | ConnectionClosed> = Effect.flatMap(conn.receive, onBatch)
    // After a batch that handed dispatches over, the reader lets the fibers that take them (the application's
    // consumers) run before it reads again. Otherwise, with the socket full, every shard's reader is resumed
    // by each read ahead of a consumer that must wait for the event loop's next turn: subscribers' buffers fill
    // to capacity and stay full, every waiting dispatch lives through young-generation collections (which
    // copy it, then promote it), and readers end up waiting on full buffers. Measured with 8 shards and the
    // socket full: a subscriber's buffer held 1 900 dispatches on average (4 096 at most) without this, 345
    // with it, and GC took about half the time.
    const yieldThenRead = Effect.andThen(Effect.yieldNow, readNext)
    /** The connection ended as `exit` says (unless a `finish` from elsewhere said so first). */
    const endWith = (exit: Exit.Exit<Outcome, FatalCloseError>) => Effect.andThen(Deferred.done(ended, exit), awaitEnded)
    // One frame below the reads for the connection's life: the transport's close goes to `onClosed`, any
    // other end (a fatal close found in a frame, a defect) ends the connection as it is.
    const readLoop = Effect.matchCauseEffect(readNext, {
      onSuccess: (outcome) => endWith(Exit.succeed(outcome)),
      onFailure: (cause) => {
        const error = Cause.findErrorOption(cause)
        return Option.isSome(error) && error.value._tag === "ConnectionClosed"
          ? Effect.flatMap(Effect.exit(onClosed(error.value)), endWith)
          : endWith(Exit.failCause(cause as Cause.Cause<FatalCloseError>))
      }
    })

    // Hello deadline.
    yield* fork(Deferred.await(helloArrived).pipe(Effect.timeoutOrElse({
      duration: helloTimeout,
      orElse: () => Effect.andThen(update({ lastError: "no Hello in time" }), finish({ kind: "timeout" }, ResumableCloseCode))
    })))
    // A stop request closes this connection with the code the stop asked for (`stop` calls it directly).
    const closeForStop = Effect.suspend(() =>
      finish({ kind: "stopped" }, stopping?.resumable ? ResumableCloseCode : SessionEndingCloseCode)
    )
    activeStop = closeForStop
    // When the connection's Scope closes, the connection no longer answers a stop or wakes a sender; and a
    // defect (a bug in code run per dispatch, e.g. a cache) that ends the shard's fiber closes it with 4000,
    // not the Scope's 1000, so the session stays resumable for the supervisor's restart (PROTOCOL.md §1.10).
    // The finalizer goes to the Scope itself: it needs nothing from the fiber's context.
    yield* Scope.addFinalizerExit(connectionScope, (exit) => {
      if (activeStop === closeForStop) activeStop = undefined
      if (wakePump === startPump) wakePump = undefined
      return Exit.isFailure(exit) && Cause.hasDies(exit.cause) ? conn.close(ResumableCloseCode) : Effect.void
    })
    if (stopping !== null) yield* closeForStop
    // The read loop runs on the shard's own fiber: a connection keeps one long-lived fiber besides it, the
    // heartbeat's. Its outcome, or a `finish` from elsewhere (which closes the connection, so that the
    // transport ends the pending read at once), ends the connection.
    // @effect-diagnostics-next-line returnEffectInGen:off -- flattened: the generator hands over what to wait for
    return readLoop
  })))

  // ---- the shard's life ----
  const interruptibleWait = (wait: Effect.Effect<unknown, unknown>) =>
    Effect.raceFirst(Effect.ignore(wait), Deferred.await(stopSignal))

  // The loop of connections, as a chain of effects: it is suspended for the whole life of each connection,
  // where a generator would keep its frame alive. The reconnect schedule's state is made at the first failed
  // attempt and dropped after a healthy connection.
  let backoff: ((input: unknown) => Pull.Pull<unknown, never, unknown>) | undefined
  let attempts = 0
  const nextConnection: Effect.Effect<void, FatalCloseError> = Effect.suspend(() => {
    if (stopping !== null) return Effect.void
    const connect = attempts++ === 0 ? connectOnce : counted("reconnects").pipe(
      Effect.andThen(Metrics.updateForShard(Metrics.reconnects, shardId, 1)),
      Effect.andThen(connectOnce)
    )
    return Effect.flatMap(connect, afterConnection)
  })
  const afterConnection = (outcome: Outcome): Effect.Effect<void, FatalCloseError> =>
    Effect.suspend(() => {
      if (stopping !== null || outcome.kind === "stopped") return Effect.void
      return Effect.gen(function*() {
        yield* setPhase("reconnecting")
        if (session !== null) yield* saveSession
        if (outcome.kind === "invalid-session") {
          const wait = yield* Random.nextBetween(invalidDelay.min, invalidDelay.max)
          yield* interruptibleWait(Effect.sleep(Duration.millis(Math.round(wait))))
        } else if (outcome.healthy) {
          backoff = undefined
        } else {
          backoff ??= yield* Schedule.toStepWithSleep(reconnectSchedule)
          yield* interruptibleWait(backoff(undefined))
        }
      }).pipe(Effect.andThen(nextConnection))
    })

  // The end of the shard's life is one step on its fiber (one frame kept below the connections for the
  // shard's whole life, where a chain of taps, `ensuring` and `onExit` kept six):
  // - a fatal close: the phase says so and the error is logged;
  // - always: pending and queued commands fail, since the shard will not send them;
  // - a defect: the session is saved with the sequence of the dispatch being handled (it is counted before it
  //   is published), so that a restart RESUMEs after it rather than replaying it into the same defect;
  // - a graceful end: the session is kept for a resumable stop and forgotten otherwise, and the phase is
  //   "stopped";
  // - then the supervisor's `onEnd`, with how the shard ended.
  // It runs as a finalizer, so uninterruptibly; the steps that wait on other services (a SessionStore, the
  // state hook) stay interruptible, as they were in the chain, so that a hung store cannot hold up a Scope's
  // close.
  const onEnd = options.onEnd
  const interruptibly = (effect: Effect.Effect<void>) => Effect.exit(Effect.interruptible(effect))
  const lifeEnded = (exit: Exit.Exit<void, FatalCloseError>): Effect.Effect<void> =>
    Effect.gen(function*() {
      const fatal = Exit.isFailure(exit) ? Cause.findErrorOption(exit.cause) : Option.none()
      if (Option.isSome(fatal)) {
        const { message } = fatal.value
        yield* interruptibly(Effect.andThen(update({ phase: "fatal", lastError: message }), Effect.logError(message)))
      }
      shardEnded = true
      const stopped = new ShardStopped({ shardId })
      if (pending !== undefined) yield* Deferred.fail(pending.done, stopped)
      if (commands !== undefined) {
        for (const item of yield* Queue.clear(commands)) yield* Deferred.fail(item.done, stopped)
        yield* Queue.shutdown(commands)
      }
      let ended: Exit.Exit<void, FatalCloseError> = exit
      if (Exit.isFailure(exit)) {
        if (Cause.hasDies(exit.cause)) yield* interruptibly(saveSession)
      } else {
        if (stopping !== null && !stopping.resumable) session = null
        ended = yield* interruptibly(Effect.andThen(saveSession, setPhase("stopped")))
      }
      if (onEnd !== undefined) yield* onEnd(ended)
    })
  const fiber = yield* Effect.forkScoped(Effect.onExit(nextConnection, lifeEnded))

  const shard: Shard = new ShardHandle(shardId, shardCount, fiber, {
    state: () => withLive(state),
    changes: () =>
      Stream.unwrap(Effect.suspend(() =>
        stateRef === undefined
          ? Effect.map(SubscriptionRef.make(state), (made) => SubscriptionRef.changes(stateRef ??= made))
          : Effect.succeed(SubscriptionRef.changes(stateRef))
      )),
    send: (command) =>
      Effect.gen(function*() {
        const frame = encodeCommand(command)
        if (typeof frame !== "string") return yield* frame
        if (stopping !== null || shardEnded) return yield* new ShardStopped({ shardId })
        if (commands === undefined) {
          const made = yield* Queue.bounded<PendingCommand>(options.commandBuffer ?? 1000)
          // Another send may have made one meanwhile (keep the first), or the shard ended meanwhile.
          commands ??= made
          if (shardEnded) return yield* new ShardStopped({ shardId })
        }
        const done = yield* Deferred.make<void, ShardStopped>()
        const accepted = yield* Queue.offer(commands, { frame, done })
        if (!accepted) return yield* new ShardStopped({ shardId })
        if (wakePump !== undefined) yield* wakePump
        return yield* Deferred.await(done)
      }),
    stop: (stopOptions) =>
      Effect.gen(function*() {
        if (stopping === null) stopping = { resumable: stopOptions?.resumable ?? false }
        yield* Deferred.succeed(stopSignal, undefined)
        if (activeStop !== undefined) yield* activeStop
        yield* Effect.ignore(Fiber.join(fiber))
      }),
    takeEventCounts: () => {
      const counts = eventCounts
      eventCounts = new Map()
      return counts
    }
  })
  return shard
}, (effect, options) =>
  // Every log line of the shard, from its start and on its fiber for its whole life (which inherits this
  // context once, at the fork), carries its id and count.
  Effect.annotateLogs(effect, { shard: options.shardId, shardCount: options.shardCount }))
