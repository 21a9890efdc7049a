/**
 * The gateway simulator's protocol core: a fake Discord gateway that enforces the server side of
 * PROTOCOL.md §1 (lifecycle), §2 (close codes), §3 (rate limits), §4 (sharding) and §9 (simulator notes),
 * and records everything for the §10 conformance checks.
 *
 * It knows nothing about sockets. A transport opens a connection with its URL and an output port
 * (`send` a text frame, `close` with a code, `drop` without one) and gets back the handlers it calls for
 * each incoming frame and for the client's close. The in-process transport (`SimulatorTransport`) and a
 * real WebSocket server can thus share this one implementation. The core speaks JSON text; compression
 * belongs to the transport.
 *
 * All time comes from Effect's Clock (so the simulator runs under TestClock). The only timers — one
 * missed-heartbeat watch per connection — are fibers in the simulator's Scope. Resume windows, identify
 * buckets, the send limit and the op 8 limit are timestamp checks, with no timers.
 */
import { Clock, Duration, Effect, Result, Scope } from "effect"
import type { Fiber } from "effect"
import { ConnectFailed } from "../Errors.ts"
import {
  heartbeatProblem,
  identifyProblem,
  identifyShard,
  isRecord,
  parseChannelInfoRequest,
  parseMembersRequest,
  parseResume,
  parseShardTuple,
  parseSoundboardRequest,
  presenceProblem,
  voiceStateProblem
} from "./SimulatorCommands.ts"
import { memberChunks, selectMembers } from "./SimulatorMembers.ts"
import type { ResolvedSimulatorOptions, SimulatorOptions } from "./SimulatorOptions.ts"
import { DocumentedIntents, PrivilegedIntents, resolveSimulatorOptions } from "./SimulatorOptions.ts"
import type {
  FrameFilter,
  RecordedConnection,
  RecordedFrame,
  RecordedRestRequest,
  RefusedConnection
} from "./SimulatorRecording.ts"
import { appendRecord, matchesFilter, redactData, redactRaw } from "./SimulatorRecording.ts"
import * as SimulatorTraffic from "./SimulatorTraffic.ts"
import type { DispatchEntry, ShardTarget, ShardTuple } from "./SimulatorSessions.ts"
import {
  dispatchBytes,
  dispatchText,
  makeDispatchEntry,
  SessionIndex,
  shardOfGuild,
  shiftedSnowflake,
  SimulatedSession,
  targets
} from "./SimulatorSessions.ts"

/** The output side of one connection, provided by the transport. Each call acts at once. */
export interface SimulatorPort {
  /** Delivers one text frame to the client. */
  readonly send: (text: string) => void
  /** Closes the connection with a close frame (the client sees this code and reason). */
  readonly close: (code: number, reason: string) => void
  /** Ends the connection without a close frame (the client sees 1006). */
  readonly drop: () => void
}

/** What the transport calls for one open connection. */
export interface SimulatorConnectionHandlers {
  /** The connection's id (`RecordedConnection.id`). */
  readonly connectionId: number
  /** One text frame from the client. */
  readonly onFrame: (text: string) => Effect.Effect<void>
  /** The client closed the connection with this code (1006: the client's side dropped without a close frame). */
  readonly onClosed: (code: number) => Effect.Effect<void>
}

/** What the next opened connection gets instead of Hello (see `nextConnection`). */
export type NextConnectionBehaviour = "reconnect-before-hello" | "no-hello"

/** A live or resumable session, as `sessions` reports it. */
export interface SimulatorSessionInfo {
  /** `"session-1"`, `"session-2"`, … in creation order. */
  readonly id: string
  readonly shard: ShardTuple
  /** The last sequence number given out. */
  readonly seq: number
  readonly intents: number
  /** The connection carrying it, or null while disconnected. */
  readonly connectionId: number | null
  readonly connected: boolean
  /** While disconnected: the Clock ms after which RESUME is refused (op 9 `d:false`); null while connected. */
  readonly resumableUntil: number | null
}

/** What the sessions keep for RESUME replay (`replayBuffers`). */
export interface ReplayBuffers {
  /** Live and resumable sessions. */
  readonly sessions: number
  /** Distinct dispatches held (each once, however many sessions hold it). */
  readonly dispatches: number
  /** Their frame text in bytes, without the sequence numbers. */
  readonly bytes: number
}

/** The body of `GET /gateway/bot` (PROTOCOL.md §1.1). */
export interface GatewayBotInfo {
  readonly url: string
  readonly shards: number
  readonly session_start_limit: {
    readonly total: number
    readonly remaining: number
    /** Milliseconds until the budget resets. */
    readonly reset_after: number
    readonly max_concurrency: number
  }
}

/** The HTTP answer to `GET /gateway/bot`: 200 with the body, or 401 for a wrong `Authorization`. */
export type GatewayBotReply =
  | { readonly status: 200; readonly body: GatewayBotInfo }
  | { readonly status: 401; readonly body: { readonly message: string; readonly code: number } }

/** The test-facing controls and recordings of the simulator (the `GatewaySimulator` service). */
export interface SimulatorControls {
  /** The resolved options (defaults filled in; the token is left out, see `token`). */
  readonly options: ResolvedSimulatorOptions
  /**
   * Emits a dispatch as Discord would. Routed by `data.guild_id` (for GUILD_CREATE/UPDATE/DELETE by
   * `data.id`) with `(guild_id >> 22) % num_shards` to every session, connected or resumable, whose
   * `[id, count]` owns the guild — several sessions with the same tuple each get it, and sessions with
   * different counts may coexist (resharding). Events without a guild (or with an id that is not a
   * snowflake) go to shard 0 sessions only. Each session numbers the event (`s = ++seq`), keeps it for
   * RESUME replay, and sends it when connected (and not withheld). Events are not filtered by intents.
   */
  readonly dispatch: (event: string, data: unknown) => Effect.Effect<void>
  /**
   * Closes the open connection(s) of that shard with a close frame. The session stays resumable, except
   * for codes that end it (4003, 4004, 4007, 4009, 4010–4014). Default reason: Discord's text for the code.
   */
  readonly close: (target: ShardTarget, code: number, reason?: string) => Effect.Effect<void>
  /** Drops the shard's open connection(s) abruptly: no close frame, the client sees 1006; sessions stay resumable. */
  readonly drop: (target: ShardTarget) => Effect.Effect<void>
  /** Sends op 7 Reconnect to the shard's open connection(s). The server does not close them itself. */
  readonly reconnect: (target: ShardTarget) => Effect.Effect<void>
  /**
   * Sends op 9 Invalid Session with `d = resumable` to the shard's open connection(s), which then count as
   * unauthenticated (they may IDENTIFY or RESUME again). With `false` the shard's sessions — connected or
   * not — are destroyed; with `true` they become resumable (resume window starts now).
   */
  readonly invalidateSession: (target: ShardTarget, resumable: boolean) => Effect.Effect<void>
  /** Sends a server op 1 ("heartbeat now") to the shard's open connection(s). */
  readonly requestHeartbeat: (target: ShardTarget) => Effect.Effect<void>
  /**
   * Makes the shard's current open connection(s) a zombie: while withheld, the simulator sends no ACK and
   * no other frame on them (dispatches still enter the session's replay buffer). Closes still go through.
   * A new connection of the shard is not withheld.
   */
  readonly withholdAcks: (target: ShardTarget, withhold: boolean) => Effect.Effect<void>
  /** Sends `frame` verbatim to the shard's open connection(s): malformed JSON, unknown ops/events, `_trace`… It does not touch sequence numbers. */
  readonly sendRaw: (target: ShardTarget, frame: string) => Effect.Effect<void>
  /** While `refuse` is on, connecting to any URL starting with `urlPrefix` fails (the client sees `ConnectFailed`). */
  readonly refuseConnections: (urlPrefix: string, refuse: boolean) => Effect.Effect<void>
  /**
   * The next opened connection gets op 7 instead of Hello (`"reconnect-before-hello"`), or nothing at all and
   * no missed-heartbeat timeout (`"no-hello"`). Calls queue up: one behaviour per connection, in order.
   */
  readonly nextConnection: (behaviour: NextConnectionBehaviour) => Effect.Effect<void>
  /** Every frame in both directions, in order (empty when `recordFrames` is off). */
  readonly frames: Effect.Effect<ReadonlyArray<RecordedFrame>>
  /** The frames the client sent, optionally only one op and/or shard. */
  readonly clientFrames: (filter?: FrameFilter) => Effect.Effect<ReadonlyArray<RecordedFrame>>
  /** The frames the simulator sent, optionally only one op and/or shard. */
  readonly serverFrames: (filter?: FrameFilter) => Effect.Effect<ReadonlyArray<RecordedFrame>>
  /** Forgets the recorded frames (connections and sessions are kept). For long benchmarks. */
  readonly clearFrames: Effect.Effect<void>
  /** Every accepted connection, in order, with its close (if any). */
  readonly connections: Effect.Effect<ReadonlyArray<RecordedConnection>>
  /** Every connection attempt refused by `refuseConnections`, in order. */
  readonly refusedConnections: Effect.Effect<ReadonlyArray<RefusedConnection>>
  /** The live and resumable sessions (destroyed and expired ones are gone), in creation order. */
  readonly sessions: Effect.Effect<ReadonlyArray<SimulatorSessionInfo>>
  /**
   * What the live and resumable sessions keep for RESUME replay: the distinct dispatches (sessions that got
   * the same one share it) and the bytes of their frame text. Bounded by `replayBufferSize` per session; a
   * run sharing the simulator's process reads it to tell the simulator's memory from its own.
   */
  readonly replayBuffers: Effect.Effect<ReplayBuffers>
  /** What `GET /gateway/bot` would answer now. `shards` = `recommendedShards` or `max(1, ceil(guilds / 1000))`. */
  readonly gatewayBot: Effect.Effect<GatewayBotInfo>
  /** Answers a `GET /gateway/bot` with this `Authorization` header and records the request (never the header). */
  readonly gatewayBotRequest: (authorization: string) => Effect.Effect<GatewayBotReply>
  /** The recorded `GET /gateway/bot` requests. */
  readonly restRequests: Effect.Effect<ReadonlyArray<RecordedRestRequest>>
  /** The token IDENTIFY/RESUME must carry now. */
  readonly token: Effect.Effect<string>
  /** Replaces the valid token (the old one then fails with 4004). */
  readonly setToken: (token: string) => Effect.Effect<void>
  /** Replaces the valid token by a new generated one and returns it (what Discord does after budget exhaustion). */
  readonly rotateToken: Effect.Effect<string>
  /** Replaces the bot's guild list (READY/GUILD_CREATE of later IDENTIFYs, op 8 answers, 4011 and `/gateway/bot`). */
  readonly setGuilds: (guilds: ReadonlyArray<string>) => Effect.Effect<void>
  /** Overrides `/gateway/bot` `shards` (`undefined`: computed from the guild count again). */
  readonly setRecommendedShards: (shards: number | undefined) => Effect.Effect<void>
}

/** The whole simulator: controls plus the entry point transports use. */
export interface SimulatorServer extends SimulatorControls {
  /**
   * Opens a connection to `url` whose frames go out through `port`. Sends Hello at once (or what
   * `nextConnection` asked for), and closes with 4012 right after when the query lacks `v=10`.
   * Fails with `ConnectFailed` when the URL is refused (`refuseConnections`) or is not a URL.
   */
  readonly open: (url: string, port: SimulatorPort) => Effect.Effect<SimulatorConnectionHandlers, ConnectFailed>
}

// ---------------------------------------------------------------------------------------------------------------------

const MaxPayloadBytes = 4096
const SendLimit = 120
const SendWindowMs = 60_000
const AllMembersWindowMs = 30_000
const OneDayMs = 86_400_000
const Trace = ["sim"] as const
const BotUser = { id: "100000000000000001", username: "simulator-bot", discriminator: "0", global_name: null, avatar: null, bot: true }
const Application = { id: "100000000000000001", flags: 0 }
const RotatedTokenPrefix = "simulator-rotated-token-"

/** Client opcodes the gateway knows (PROTOCOL.md §1.3); anything else → 4001. */
const ClientOps = new Set([1, 2, 3, 4, 6, 8, 31, 43])

/** Server close codes after which the session cannot be resumed. */
const SessionEndingCodes = new Set([4003, 4004, 4007, 4009, 4010, 4011, 4012, 4013, 4014])

/** Discord's close reasons. */
const Reasons: Record<number, string> = {
  1000: "Normal closure.",
  4000: "Unknown error.",
  4001: "Unknown opcode.",
  4002: "Error while decoding payload.",
  4003: "Not authenticated.",
  4004: "Authentication failed.",
  4005: "Already authenticated.",
  4007: "Invalid seq.",
  4008: "Rate limited.",
  4009: "Session timed out.",
  4010: "Invalid shard.",
  4011: "Sharding required.",
  4012: "Invalid API version.",
  4013: "Invalid intent(s).",
  4014: "Disallowed intent(s)."
}
const reasonFor = (code: number): string => Reasons[code] ?? ""

/** Events whose guild is `data.id` rather than `data.guild_id`. */
/** How much closer than the identify window two IDENTIFYs of one bucket may arrive (checklist item 16). */
const IdentifyArrivalToleranceMs = 50

const GuildObjectEvents = new Set(["GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE"])

/** Sliding send limit of one connection: the times of its last 120 client frames (PROTOCOL.md §3, [P]). */
class SendWindow {
  private readonly times = new Float64Array(SendLimit)
  private head = 0
  private count = 0
  /** Records a frame at `at`; true when it is the 121st within 60 s (→ 4008). */
  hit(at: number): boolean {
    if (this.count < SendLimit) {
      this.times[(this.head + this.count) % SendLimit] = at
      this.count++
      return false
    }
    if (at - this.times[this.head]! < SendWindowMs) return true
    this.times[this.head] = at
    this.head = (this.head + 1) % SendLimit
    return false
  }
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] }

interface Connection {
  readonly id: number
  readonly port: SimulatorPort
  readonly record: Mutable<RecordedConnection>
  readonly window: SendWindow
  closed: boolean
  session: SimulatedSession<Connection> | null
  shard: ShardTuple | null
  lastHeartbeatAt: number
  withheld: boolean
  timer: Fiber.Fiber<void> | undefined
}

interface Guild {
  readonly id: string
  readonly shifted: bigint
}

/**
 * Builds a simulator. Its missed-heartbeat timers are fibers in the current Scope (closing the Scope stops
 * them); the Clock is the one in context when it is built. Invalid options throw (a test bug).
 */
export const makeSimulatorServer = (input: SimulatorOptions): Effect.Effect<SimulatorServer, never, Scope.Scope> =>
  Effect.gen(function*() {
    const options = resolveSimulatorOptions(input)
    const clock = yield* Clock.Clock
    const scope = yield* Effect.scope
    const now = () => clock.currentTimeMillisUnsafe()

    // ----- state -----
    let token = input.token
    const knownTokens = new Set([token])
    let rotations = 0
    let guilds: Array<Guild> = []
    let guildIds = new Set<string>()
    /** Guild ids per shard, cached per shard count. */
    let guildsByCount = new Map<number, Array<Array<string>>>()
    let recommendedShards = options.recommendedShards
    let budgetRemaining = options.sessionStartLimit.remaining
    let budgetResetAt = now() + options.sessionStartLimit.resetAfterMs
    const identifyBuckets = new Map<number, number>()
    const allMembersAt = new Map<string, number>()
    let connectionCounter = 0
    let sessionCounter = 0
    const openConnections = new Set<Connection>()
    const sessionsById = new Map<string, SimulatedSession<Connection>>()
    const index = new SessionIndex<Connection>()
    const refusedPrefixes = new Set<string>()
    const pendingBehaviours: Array<NextConnectionBehaviour> = []
    let frames: Array<RecordedFrame> = []
    const connections: Array<Mutable<RecordedConnection>> = []
    const refused: Array<RefusedConnection> = []
    const restRequests: Array<RecordedRestRequest> = []

    let guildList: ReadonlyArray<string> = []
    const setGuildList = (ids: ReadonlyArray<string>) => {
      guildList = ids
      guilds = ids.map((id) => ({ id, shifted: BigInt(id) >> 22n }))
      guildIds = new Set(ids)
      guildsByCount = new Map()
    }
    setGuildList(options.guilds)

    const guildsOfShard = (shard: ShardTuple): Array<string> => {
      let byId = guildsByCount.get(shard[1])
      if (byId === undefined) {
        byId = Array.from({ length: shard[1] }, () => [])
        const count = BigInt(shard[1])
        for (const guild of guilds) byId[Number(guild.shifted % count)]!.push(guild.id)
        guildsByCount.set(shard[1], byId)
      }
      return byId[shard[0]]!
    }

    const ownsGuild = (session: SimulatedSession<Connection>, guildId: string) =>
      guildIds.has(guildId) && shardOfGuild(guildId, session.shard[1]) === session.shard[0]

    // ----- recording and sending -----
    const record = (
      connection: Connection,
      direction: "client" | "server",
      at: number,
      shard: ShardTuple | null,
      op: number | null,
      t: string | null,
      s: number | null,
      d: unknown,
      bytes: number,
      raw: string | undefined
    ) => {
      if (!options.recordFrames) return
      const frame: RecordedFrame = raw === undefined
        ? { connectionId: connection.id, direction, at, shard, op, t, s, d, bytes }
        : { connectionId: connection.id, direction, at, shard, op, t, s, d, bytes, raw }
      appendRecord(frames, frame, options.historyLimit)
    }

    const sendFrame = (
      connection: Connection,
      text: string,
      op: number,
      t: string | null,
      s: number | null,
      d: unknown,
      bytes: number
    ) => {
      if (connection.closed || connection.withheld) return
      connection.port.send(text)
      record(connection, "server", now(), connection.shard, op, t, s, d, bytes, undefined)
    }

    const sendOp = (connection: Connection, op: number, d: unknown) => {
      const text = `{"t":null,"s":null,"op":${op},"d":${JSON.stringify(d) ?? "null"}}`
      sendFrame(connection, text, op, null, null, d, Buffer.byteLength(text))
    }

    /** Numbers the event for the session, buffers it, and sends it when the session is connected. */
    const deliver = (session: SimulatedSession<Connection>, entry: DispatchEntry) => {
      const s = session.append(entry)
      const connection = session.connection
      if (connection !== null) sendFrame(connection, dispatchText(entry, s), 0, entry.t, s, entry.d, dispatchBytes(entry, s))
    }

    const dispatchTo = (session: SimulatedSession<Connection>, t: string, d: unknown) =>
      deliver(session, makeDispatchEntry(t, d))

    // ----- sessions -----
    const isExpired = (session: SimulatedSession<Connection>, at: number) =>
      session.connection === null && session.disconnectedAt !== null &&
      at - session.disconnectedAt >= options.resumeWindowMs

    const destroySession = (session: SimulatedSession<Connection>) => {
      if (session.destroyed) return
      session.destroyed = true
      index.remove(session)
      sessionsById.delete(session.id)
      if (session.connection !== null) session.connection.session = null
      session.connection = null
    }

    const attach = (connection: Connection, session: SimulatedSession<Connection>) => {
      session.connection = connection
      session.disconnectedAt = null
      connection.session = session
      connection.shard = session.shard
      connection.record.shard = session.shard
      connection.record.sessionId = session.id
    }

    /** Detaches the connection's session: destroyed, or resumable from now on. */
    const detach = (connection: Connection, destroy: boolean) => {
      const session = connection.session
      if (session === null) return
      connection.session = null
      session.connection = null
      if (destroy) destroySession(session)
      else session.disconnectedAt = now()
    }

    const sweepExpired = (at: number) => {
      for (const session of sessionsById.values()) if (isExpired(session, at)) destroySession(session)
    }

    // ----- connections -----
    const stopTimer = (connection: Connection) => {
      const timer = connection.timer
      connection.timer = undefined
      timer?.interruptUnsafe()
    }

    const markClosed = (connection: Connection, code: number, by: "client" | "server" | "transport") => {
      connection.closed = true
      openConnections.delete(connection)
      connection.record.closedAt = now()
      connection.record.closeCode = code
      connection.record.closedBy = by
      stopTimer(connection)
    }

    /** The server ends a connection: with a close frame, or (`drop`) without one. */
    const serverClose = (connection: Connection, code: number, reason: string) => {
      if (connection.closed) return
      markClosed(connection, code, "server")
      detach(connection, SessionEndingCodes.has(code))
      connection.port.close(code, reason)
    }

    const serverDrop = (connection: Connection) => {
      if (connection.closed) return
      markClosed(connection, 1006, "transport")
      detach(connection, false)
      connection.port.drop()
    }

    const clientClosed = (connection: Connection, code: number) => {
      if (connection.closed) return
      markClosed(connection, code, code === 1006 ? "transport" : "client")
      // PROTOCOL.md §1.10: 1000/1001 end the session; any other code or a drop keeps it resumable
      detach(connection, code === 1000 || code === 1001)
    }

    const targetConnections = (target: ShardTarget): Array<Connection> => {
      const out: Array<Connection> = []
      for (const connection of openConnections) if (targets(target, connection.shard)) out.push(connection)
      return out
    }

    const watchHeartbeats = (connection: Connection): Effect.Effect<void> =>
      Effect.gen(function*() {
        while (!connection.closed) {
          const wait = connection.lastHeartbeatAt + options.heartbeatTimeoutMs - now()
          if (wait <= 0) {
            connection.timer = undefined
            serverClose(connection, 4000, "Heartbeat timeout.")
            return
          }
          yield* Effect.sleep(wait)
        }
      })

    // ----- the daily budget and the token -----
    const refreshBudget = (at: number) => {
      while (at >= budgetResetAt) {
        budgetRemaining = options.sessionStartLimit.total
        budgetResetAt += OneDayMs
      }
    }

    const rotate = (): string => {
      token = `${RotatedTokenPrefix}${++rotations}`
      knownTokens.add(token)
      return token
    }

    /** Past the daily limit: Discord terminates every session and resets the token (PROTOCOL.md §3). */
    const exhaustBudget = () => {
      for (const connection of [...openConnections]) serverClose(connection, 4004, reasonFor(4004))
      for (const session of [...sessionsById.values()]) destroySession(session)
      rotate()
    }

    // ----- client opcodes -----
    const identify = (connection: Connection, d: unknown, at: number) => {
      if (!isRecord(d)) return serverClose(connection, 4001, "IDENTIFY d must be an object")
      if (d.token !== token) return serverClose(connection, 4004, reasonFor(4004))
      const shard = d.shard === undefined ? [0, 1] as const : parseShardTuple(d.shard)
      if (shard === null) return serverClose(connection, 4010, reasonFor(4010))
      connection.shard = shard
      connection.record.shard = shard
      const problem = identifyProblem(d)
      if (problem !== undefined) return serverClose(connection, 4001, problem)
      const intents = d.intents
      if (
        typeof intents !== "number" || !Number.isInteger(intents) || intents < 0 || intents > DocumentedIntents ||
        (intents & ~DocumentedIntents) !== 0
      ) return serverClose(connection, 4013, reasonFor(4013))
      if ((intents & PrivilegedIntents & ~options.allowedPrivilegedIntents) !== 0) {
        return serverClose(connection, 4014, reasonFor(4014))
      }
      const shardGuilds = guildsOfShard(shard)
      if (shardGuilds.length > options.maxGuildsPerShard) return serverClose(connection, 4011, reasonFor(4011))
      const bucket = shard[0] % options.maxConcurrency
      const last = identifyBuckets.get(bucket)
      // Refused when closer than the window minus 50 ms (checklist item 16's tolerance: grants exactly one
      // window apart can arrive a little closer over a real network). `at < last + …`, not `at - last < …`:
      // with fractional times the subtraction rounds (10611.150821 - 5611.150821 = 4999.999999999999).
      if (last !== undefined && at < last + options.identifyWindowMs - IdentifyArrivalToleranceMs) {
        return sendOp(connection, 9, false)
      }
      refreshBudget(at)
      if (budgetRemaining <= 0) return exhaustBudget()
      budgetRemaining--
      identifyBuckets.set(bucket, at)

      const session = new SimulatedSession<Connection>(
        `session-${++sessionCounter}`,
        shard,
        intents,
        options.replayBufferSize
      )
      sessionsById.set(session.id, session)
      index.add(session)
      attach(connection, session)
      const ready: Record<string, unknown> = {
        v: 10,
        user: BotUser,
        guilds: shardGuilds.map((id) => ({ id, unavailable: true })),
        session_id: session.id,
        resume_gateway_url: options.resumeUrl,
        application: Application,
        _trace: Trace
      }
      if (d.shard !== undefined) ready.shard = shard
      dispatchTo(session, "READY", ready)
      if ((intents & 1) !== 0) {
        const joinedAt = new Date(at).toISOString()
        for (const id of shardGuilds) {
          if (options.silentGuilds.has(id)) continue
          if (options.unavailableGuilds.has(id)) dispatchTo(session, "GUILD_DELETE", { id, unavailable: true })
          else dispatchTo(session, "GUILD_CREATE", guildCreate(id, joinedAt))
        }
      }
    }

    const guildCreate = (id: string, joinedAt: string) => ({
      id,
      name: `Guild ${id}`,
      unavailable: false,
      member_count: options.membersPerGuild,
      large: options.membersPerGuild > 250,
      joined_at: joinedAt,
      owner_id: BotUser.id,
      features: [],
      roles: [],
      emojis: [],
      stickers: [],
      members: [],
      channels: [],
      threads: [],
      presences: [],
      voice_states: [],
      stage_instances: [],
      guild_scheduled_events: [],
      soundboard_sounds: []
    })

    const resume = (connection: Connection, d: unknown, at: number) => {
      const parsed = parseResume(d)
      if (isRecord(d) && d.token !== token) return serverClose(connection, 4004, reasonFor(4004))
      if (Result.isFailure(parsed)) return serverClose(connection, 4001, parsed.failure)
      const request = parsed.success
      const session = sessionsById.get(request.sessionId)
      if (session === undefined) return sendOp(connection, 9, false)
      connection.shard = session.shard
      connection.record.shard = session.shard
      if (isExpired(session, at)) {
        destroySession(session)
        return sendOp(connection, 9, false)
      }
      if (request.seq > session.seq) return serverClose(connection, 4007, reasonFor(4007))
      // Dispatches after `seq` were evicted from the replay buffer: the session cannot be resumed from there
      if (!session.canReplayFrom(request.seq)) return sendOp(connection, 9, false)
      const previous = session.connection
      if (previous !== null && previous !== connection) {
        previous.session = null
        session.connection = null
        serverClose(previous, 4003, "Session resumed on another connection.")
      }
      attach(connection, session)
      session.replayFrom(request.seq, (entry, s) =>
        sendFrame(connection, dispatchText(entry, s), 0, entry.t, s, entry.d, dispatchBytes(entry, s)))
      dispatchTo(session, "RESUMED", { _trace: Trace })
    }

    const requestMembers = (connection: Connection, session: SimulatedSession<Connection>, d: unknown, at: number) => {
      const parsed = parseMembersRequest(d)
      if (Result.isFailure(parsed)) return serverClose(connection, 4001, parsed.failure)
      const request = parsed.success
      // Discord answers only for a guild the session holds; elsewhere the request goes unanswered
      if (!ownsGuild(session, request.guildId)) return
      if (request.query === "" && request.limit === 0) {
        const last = allMembersAt.get(request.guildId)
        if (last !== undefined && at - last < AllMembersWindowMs) {
          const meta: Record<string, unknown> = { guild_id: request.guildId }
          if (request.nonce !== undefined) meta.nonce = request.nonce
          return dispatchTo(session, "RATE_LIMITED", {
            opcode: 8,
            retry_after: (AllMembersWindowMs - (at - last)) / 1000,
            meta
          })
        }
        allMembersAt.set(request.guildId, at)
      }
      const selection = selectMembers(request, options.membersPerGuild)
      const withPresences = request.presences && (session.intents & 256) !== 0
      for (const chunk of memberChunks(request, selection, options.memberChunkSize, withPresences)) {
        dispatchTo(session, "GUILD_MEMBERS_CHUNK", chunk)
      }
    }

    const handleFrame = (connection: Connection, text: string) => {
      if (connection.closed) return
      const at = now()
      const bytes = Buffer.byteLength(text)
      const limited = connection.window.hit(at)
      let payload: Record<string, unknown> | undefined
      let malformed: string | undefined = bytes > MaxPayloadBytes ? `payload of ${bytes} bytes exceeds 4096` : undefined
      try {
        const parsed: unknown = JSON.parse(text)
        if (isRecord(parsed)) payload = parsed
        else malformed ??= "payload is not a JSON object"
      } catch {
        malformed ??= "payload is not valid JSON"
      }
      const op = payload !== undefined && typeof payload.op === "number" ? payload.op : null
      const d = payload?.d
      let shard = connection.shard
      if (op === 2 && connection.session === null) shard = identifyShard(d) ?? shard
      else if (op === 6 && connection.session === null && isRecord(d) && typeof d.session_id === "string") {
        shard = sessionsById.get(d.session_id)?.shard ?? shard
      }
      record(
        connection,
        "client",
        at,
        shard,
        op,
        typeof payload?.t === "string" ? payload.t : null,
        typeof payload?.s === "number" ? payload.s : null,
        redactData(d ?? null, text, knownTokens),
        bytes,
        malformed === undefined ? undefined : redactRaw(text, knownTokens)
      )

      if (limited) return serverClose(connection, 4008, reasonFor(4008))
      if (malformed !== undefined || payload === undefined) return serverClose(connection, 4002, reasonFor(4002))
      if (op === null || !ClientOps.has(op)) return serverClose(connection, 4001, reasonFor(4001))
      if (op === 1) {
        const problem = heartbeatProblem(d)
        if (problem !== undefined) return serverClose(connection, 4001, problem)
        connection.lastHeartbeatAt = at
        return sendOp(connection, 11, null)
      }
      if (op === 2 || op === 6) {
        if (connection.session !== null) return serverClose(connection, 4005, reasonFor(4005))
        return op === 2 ? identify(connection, d, at) : resume(connection, d, at)
      }
      const session = connection.session
      if (session === null) return serverClose(connection, 4003, reasonFor(4003))
      switch (op) {
        case 3: {
          const problem = presenceProblem(d)
          if (problem !== undefined) return serverClose(connection, 4001, problem)
          return
        }
        case 4: {
          const problem = voiceStateProblem(d)
          if (problem !== undefined) return serverClose(connection, 4001, problem)
          return
        }
        case 8:
          return requestMembers(connection, session, d, at)
        case 31: {
          const parsed = parseSoundboardRequest(d)
          if (Result.isFailure(parsed)) return serverClose(connection, 4001, parsed.failure)
          for (const guildId of parsed.success) {
            if (ownsGuild(session, guildId)) {
              dispatchTo(session, "SOUNDBOARD_SOUNDS", { guild_id: guildId, soundboard_sounds: [] })
            }
          }
          return
        }
        case 43: {
          const parsed = parseChannelInfoRequest(d)
          if (Result.isFailure(parsed)) return serverClose(connection, 4001, parsed.failure)
          if (ownsGuild(session, parsed.success)) dispatchTo(session, "CHANNEL_INFO", { guild_id: parsed.success, channels: [] })
          return
        }
      }
    }

    // ----- opening connections -----
    const refuses = (url: string) => {
      for (const prefix of refusedPrefixes) if (url.startsWith(prefix)) return true
      return false
    }

    const open = (url: string, port: SimulatorPort): Effect.Effect<SimulatorConnectionHandlers, ConnectFailed> =>
      Effect.suspend(() => {
        const id = ++connectionCounter
        const at = now()
        if (refuses(url)) {
          appendRecord(refused, { id, url, at }, options.historyLimit)
          return Effect.fail(new ConnectFailed({ url, detail: "connection refused by the simulator (refuseConnections)" }))
        }
        let version: string | null
        try {
          version = new URL(url).searchParams.get("v")
        } catch {
          appendRecord(refused, { id, url, at }, options.historyLimit)
          return Effect.fail(new ConnectFailed({ url, detail: "not a valid URL" }))
        }
        const recorded: Mutable<RecordedConnection> = {
          id,
          url,
          openedAt: at,
          closedAt: null,
          closeCode: null,
          closedBy: null,
          shard: null,
          sessionId: null
        }
        appendRecord(connections, recorded, options.historyLimit)
        const connection: Connection = {
          id,
          port,
          record: recorded,
          window: new SendWindow(),
          closed: false,
          session: null,
          shard: null,
          lastHeartbeatAt: at,
          withheld: false,
          timer: undefined
        }
        openConnections.add(connection)
        const handlers: SimulatorConnectionHandlers = {
          connectionId: id,
          onFrame: (text) => Effect.sync(() => handleFrame(connection, text)),
          onClosed: (code) => Effect.sync(() => clientClosed(connection, code))
        }
        const behaviour = pendingBehaviours.shift()
        if (behaviour === "reconnect-before-hello") sendOp(connection, 7, null)
        else if (behaviour === undefined) {
          sendOp(connection, 10, { heartbeat_interval: options.heartbeatIntervalMs, _trace: Trace })
        }
        if (version !== "10") {
          serverClose(connection, 4012, reasonFor(4012))
          return Effect.succeed(handlers)
        }
        if (behaviour !== undefined) return Effect.succeed(handlers)
        return Effect.forkIn(watchHeartbeats(connection), scope).pipe(
          Effect.map((fiber) => {
            if (connection.closed) fiber.interruptUnsafe()
            else connection.timer = fiber
            return handlers
          })
        )
      })

    // ----- controls -----
    const forTarget = (target: ShardTarget, f: (connection: Connection) => void) =>
      Effect.sync(() => {
        for (const connection of targetConnections(target)) f(connection)
      })

    const sessionInfo = (session: SimulatedSession<Connection>): SimulatorSessionInfo => ({
      id: session.id,
      shard: session.shard,
      seq: session.seq,
      intents: session.intents,
      connectionId: session.connection?.id ?? null,
      connected: session.connection !== null,
      resumableUntil: session.disconnectedAt === null ? null : session.disconnectedAt + options.resumeWindowMs
    })

    const gatewayBotNow = (): GatewayBotInfo => {
      const at = now()
      refreshBudget(at)
      return {
        url: options.baseUrl,
        shards: recommendedShards ?? Math.max(1, Math.ceil(guilds.length / 1000)),
        session_start_limit: {
          total: options.sessionStartLimit.total,
          remaining: budgetRemaining,
          reset_after: budgetResetAt - at,
          max_concurrency: options.maxConcurrency
        }
      }
    }

    const filtered = (direction: "client" | "server", filter: FrameFilter | undefined) =>
      Effect.sync(() => frames.filter((frame) => frame.direction === direction && matchesFilter(frame, filter)))

    const server: SimulatorServer = {
      options,
      open,
      dispatch: (event, data) =>
        Effect.suspend(() => {
          const at = now()
          let key: unknown = undefined
          if (isRecord(data)) key = data.guild_id ?? (GuildObjectEvents.has(event) ? data.id : undefined)
          const entry = makeDispatchEntry(event, data)
          let expired: Array<SimulatedSession<Connection>> | undefined
          let delayed: Array<Effect.Effect<void>> | undefined
          index.forEachOwner(shiftedSnowflake(key), (session) => {
            if (isExpired(session, at)) return void (expired ??= []).push(session)
            const latency = options.dispatchLatencyMs[`${session.shard[0]}/${session.shard[1]}`] ??
              options.dispatchLatencyMs[session.shard[1]] ?? 0
            if (latency <= 0) return deliver(session, entry)
            // Constant per session, so the session's order is kept (equal wake-up times run first in, first out).
            ;(delayed ??= []).push(Effect.asVoid(Effect.forkIn(
              Effect.andThen(Effect.sleep(Duration.millis(latency)), Effect.sync(() => {
                if (!session.destroyed) deliver(session, entry)
              })),
              scope
            )))
          })
          if (expired !== undefined) for (const session of expired) destroySession(session)
          return delayed === undefined ? Effect.void : Effect.all(delayed, { discard: true })
        }),
      close: (target, code, reason) =>
        forTarget(target, (connection) => serverClose(connection, code, reason ?? reasonFor(code))),
      drop: (target) => forTarget(target, serverDrop),
      reconnect: (target) => forTarget(target, (connection) => sendOp(connection, 7, null)),
      invalidateSession: (target, resumable) =>
        Effect.sync(() => {
          for (const connection of targetConnections(target)) {
            sendOp(connection, 9, resumable)
            detach(connection, !resumable)
          }
          if (!resumable) {
            for (const session of [...sessionsById.values()]) if (targets(target, session.shard)) destroySession(session)
          }
        }),
      requestHeartbeat: (target) => forTarget(target, (connection) => sendOp(connection, 1, null)),
      withholdAcks: (target, withhold) =>
        forTarget(target, (connection) => {
          connection.withheld = withhold
        }),
      sendRaw: (target, frame) =>
        forTarget(target, (connection) => {
          if (connection.withheld) return
          connection.port.send(frame)
          let parsed: unknown
          let raw: string | undefined
          try {
            parsed = JSON.parse(frame)
          } catch {
            raw = redactRaw(frame, knownTokens)
          }
          const p = isRecord(parsed) ? parsed : undefined
          record(
            connection,
            "server",
            now(),
            connection.shard,
            typeof p?.op === "number" ? p.op : null,
            typeof p?.t === "string" ? p.t : null,
            typeof p?.s === "number" ? p.s : null,
            p?.d ?? null,
            Buffer.byteLength(frame),
            raw
          )
        }),
      refuseConnections: (urlPrefix, refuse) =>
        Effect.sync(() => {
          if (refuse) refusedPrefixes.add(urlPrefix)
          else refusedPrefixes.delete(urlPrefix)
        }),
      nextConnection: (behaviour) =>
        Effect.sync(() => {
          pendingBehaviours.push(behaviour)
        }),
      frames: Effect.sync(() => frames.slice()),
      clientFrames: (filter) => filtered("client", filter),
      serverFrames: (filter) => filtered("server", filter),
      clearFrames: Effect.sync(() => {
        frames = []
      }),
      connections: Effect.sync(() => connections.map((c) => ({ ...c }))),
      refusedConnections: Effect.sync(() => refused.slice()),
      sessions: Effect.sync(() => {
        sweepExpired(now())
        return Array.from(sessionsById.values(), sessionInfo)
      }),
      replayBuffers: Effect.sync((): ReplayBuffers => {
        sweepExpired(now())
        const held = new Set<DispatchEntry>()
        for (const session of sessionsById.values()) session.forEachBuffered((entry) => held.add(entry))
        let bytes = 0
        for (const entry of held) bytes += entry.fixedBytes
        return { sessions: sessionsById.size, dispatches: held.size, bytes }
      }),
      gatewayBot: Effect.sync(gatewayBotNow),
      gatewayBotRequest: (authorization) =>
        Effect.sync((): GatewayBotReply => {
          const authorized = authorization === `Bot ${token}`
          const status = authorized ? 200 : 401
          appendRecord(restRequests, { at: now(), method: "GET", path: "/gateway/bot", authorized, status }, options.historyLimit)
          return authorized
            ? { status: 200, body: gatewayBotNow() }
            : { status: 401, body: { message: "401: Unauthorized", code: 0 } }
        }),
      restRequests: Effect.sync(() => restRequests.slice()),
      token: Effect.sync(() => token),
      setToken: (next) =>
        Effect.sync(() => {
          token = next
          knownTokens.add(next)
        }),
      rotateToken: Effect.sync(rotate),
      setGuilds: (ids) =>
        Effect.sync(() => {
          for (const id of ids) {
            if (!/^\d{1,20}$/.test(id)) throw new RangeError(`GatewaySimulator: guild id ${JSON.stringify(id)} is not a snowflake`)
          }
          setGuildList(ids)
        }),
      setRecommendedShards: (shards) =>
        Effect.sync(() => {
          recommendedShards = shards
        })
    }
    if (options.traffic !== undefined) {
      yield* Effect.forkScoped(SimulatorTraffic.run({ dispatch: server.dispatch, guilds: () => guildList }, options.traffic))
    }
    return server
  })
