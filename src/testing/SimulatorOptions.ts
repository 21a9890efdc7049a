/**
 * The gateway simulator's configuration: what a test can tune, its defaults, and the resolved form the
 * protocol core works with.
 *
 * Every default mirrors production Discord (PROTOCOL.md §1.4 heartbeat interval 41250 ms, §3 identify
 * buckets of 5 s and a daily budget of 1000, §4 2500 guilds per shard, §7 intent masks), except the URLs,
 * which use the reserved `.invalid` TLD, and the resume URL, which differs from the base URL so a test can
 * see which one a client connects to (§9).
 */

import { type TrafficOptions, validate } from "./SimulatorTraffic.ts"

/** Every documented intent bit OR'd together (PROTOCOL.md §7). Any other bit → close 4013. */
export const DocumentedIntents = 53608447

/** The privileged intent bits: GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT (PROTOCOL.md §7). */
export const PrivilegedIntents = 33026

/** One day in milliseconds: the default `reset_after` of the daily session-start budget. */
const OneDayMs = 86_400_000

/** How a test configures the simulated gateway. Only `token` is required. */
export interface SimulatorOptions {
  /** The bot token IDENTIFY and RESUME must carry (tests use a fake one). Never recorded. */
  readonly token: string
  /** Guild ids (snowflake strings) the bot is in. Default: none. */
  readonly guilds?: ReadonlyArray<string>
  /** The `heartbeat_interval` sent in Hello, in ms. Default 41250. */
  readonly heartbeatIntervalMs?: number
  /** The `url` of `/gateway/bot`. Default `"wss://gateway.simulator.invalid"`. */
  readonly baseUrl?: string
  /** READY's `resume_gateway_url`. Default `"wss://resume.simulator.invalid"` (differs from `baseUrl`). */
  readonly resumeUrl?: string
  /** `max_concurrency`: number of identify buckets (`shard_id % maxConcurrency`). Default 1. */
  readonly maxConcurrency?: number
  /** One IDENTIFY per bucket per this many ms; a faster one gets op 9 `d:false`. Default 5000. */
  readonly identifyWindowMs?: number
  /**
   * The daily session-start budget as `/gateway/bot` reports it. An IDENTIFY arriving with `remaining`
   * at 0 terminates every connection with 4004 and rotates the token (PROTOCOL.md §3).
   * Default 1000/1000/24 h. `resetAfterMs` counts from the moment the simulator starts.
   */
  readonly sessionStartLimit?: {
    readonly total: number
    readonly remaining: number
    readonly resetAfterMs: number
  }
  /** The privileged intent bits the application may use; others → close 4014. Default all (33026). */
  readonly allowedPrivilegedIntents?: number
  /** How long a disconnected session stays resumable, in ms. Default 120000. */
  readonly resumeWindowMs?: number
  /** How many dispatches each session keeps for RESUME replay. Default 10000. */
  readonly replayBufferSize?: number
  /** A session whose shard would hold more guilds than this is refused with 4011. Default 2500. */
  readonly maxGuildsPerShard?: number
  /**
   * The server closes a connection with 4000 (session kept) when no client heartbeat arrived for this
   * long after Hello or the previous heartbeat. Default `heartbeatIntervalMs * 1.5`.
   */
  readonly heartbeatTimeoutMs?: number
  /** Members every guild has, for op 8 replies (generated as `{ user: { id, username } }`). Default 3. */
  readonly membersPerGuild?: number
  /** Members per GUILD_MEMBERS_CHUNK. Default 1000 (Discord's); lower it to get several chunks. */
  readonly memberChunkSize?: number
  /** `/gateway/bot` `shards`. Default `max(1, ceil(guilds / 1000))`. */
  readonly recommendedShards?: number
  /**
   * Record every frame (`frames`, `clientFrames`). Default true. Benchmarks may turn it off; connections
   * and sessions are tracked either way.
   */
  readonly recordFrames?: boolean
  /**
   * How many of each kind of record are kept — frames, connections, refused connection attempts and
   * `/gateway/bot` requests: at least the latest `historyLimit` of each, never more than twice that. Default:
   * all of them (a test reads everything it caused). A server that runs for long should bound it; `npm run
   * simulator` keeps 10 000.
   */
  readonly historyLimit?: number
  /**
   * Guilds in an outage: READY lists them (as always, unavailable) and the session gets
   * GUILD_DELETE `{id, unavailable: true}` instead of GUILD_CREATE (PROTOCOL.md §6.1).
   */
  readonly unavailableGuilds?: ReadonlyArray<string>
  /** Guilds READY lists but that get neither GUILD_CREATE nor GUILD_DELETE (the client's guild wait times out). */
  readonly silentGuilds?: ReadonlyArray<string>
  /**
   * Delay (ms) before `dispatch` reaches sessions of one shard count (`{ 4: 30 }`) or of one shard
   * (`{ "1/4": 300 }`, which wins), e.g. so that during a reshard the two sets, or two connections, receive
   * an event at different times. Default none.
   */
  readonly dispatchLatencyMs?: Readonly<Record<string | number, number>>
  /**
   * The simulator's own traffic: guild events at `rate` per second in the proportions of `mix`, spread over
   * the guilds (`SimulatorTraffic`). Default none: events are only sent through `dispatch`.
   */
  readonly traffic?: TrafficOptions
}

/** The options with every default filled in (the token is left out: it can rotate, see `currentToken`). */
export interface ResolvedSimulatorOptions {
  readonly guilds: ReadonlyArray<string>
  readonly heartbeatIntervalMs: number
  readonly baseUrl: string
  readonly resumeUrl: string
  readonly maxConcurrency: number
  readonly identifyWindowMs: number
  readonly sessionStartLimit: {
    readonly total: number
    readonly remaining: number
    readonly resetAfterMs: number
  }
  readonly allowedPrivilegedIntents: number
  readonly resumeWindowMs: number
  readonly replayBufferSize: number
  readonly maxGuildsPerShard: number
  readonly heartbeatTimeoutMs: number
  readonly membersPerGuild: number
  readonly memberChunkSize: number
  /** `undefined`: computed from the guild count. */
  readonly recommendedShards: number | undefined
  readonly recordFrames: boolean
  readonly historyLimit: number
  readonly unavailableGuilds: ReadonlySet<string>
  readonly silentGuilds: ReadonlySet<string>
  readonly dispatchLatencyMs: Readonly<Record<string | number, number>>
  readonly traffic: TrafficOptions | undefined
}

const positiveInt = (name: string, value: number): number => {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`GatewaySimulator: ${name} must be a positive integer, got ${value}`)
  }
  return value
}

const nonNegative = (name: string, value: number): number => {
  if (!Number.isFinite(value) || value < 0) {
    throw new RangeError(`GatewaySimulator: ${name} must be a non-negative number, got ${value}`)
  }
  return value
}

/** Fills in the defaults and rejects values that cannot work (a programming error in the test: throws). */
export const resolveSimulatorOptions = (options: SimulatorOptions): ResolvedSimulatorOptions => {
  const heartbeatIntervalMs = positiveInt("heartbeatIntervalMs", options.heartbeatIntervalMs ?? 41250)
  const limit = options.sessionStartLimit ?? { total: 1000, remaining: 1000, resetAfterMs: OneDayMs }
  for (const id of options.guilds ?? []) {
    if (!/^\d+$/.test(id)) throw new RangeError(`GatewaySimulator: guild id ${JSON.stringify(id)} is not a snowflake`)
  }
  return {
    guilds: options.guilds ?? [],
    heartbeatIntervalMs,
    baseUrl: options.baseUrl ?? "wss://gateway.simulator.invalid",
    resumeUrl: options.resumeUrl ?? "wss://resume.simulator.invalid",
    maxConcurrency: positiveInt("maxConcurrency", options.maxConcurrency ?? 1),
    identifyWindowMs: nonNegative("identifyWindowMs", options.identifyWindowMs ?? 5000),
    sessionStartLimit: {
      total: nonNegative("sessionStartLimit.total", limit.total),
      remaining: nonNegative("sessionStartLimit.remaining", limit.remaining),
      resetAfterMs: positiveInt("sessionStartLimit.resetAfterMs", limit.resetAfterMs)
    },
    allowedPrivilegedIntents: options.allowedPrivilegedIntents ?? PrivilegedIntents,
    resumeWindowMs: nonNegative("resumeWindowMs", options.resumeWindowMs ?? 120_000),
    replayBufferSize: nonNegative("replayBufferSize", options.replayBufferSize ?? 10_000),
    maxGuildsPerShard: positiveInt("maxGuildsPerShard", options.maxGuildsPerShard ?? 2500),
    heartbeatTimeoutMs: nonNegative("heartbeatTimeoutMs", options.heartbeatTimeoutMs ?? heartbeatIntervalMs * 1.5),
    membersPerGuild: nonNegative("membersPerGuild", options.membersPerGuild ?? 3),
    memberChunkSize: positiveInt("memberChunkSize", options.memberChunkSize ?? 1000),
    recommendedShards: options.recommendedShards === undefined
      ? undefined
      : positiveInt("recommendedShards", options.recommendedShards),
    recordFrames: options.recordFrames ?? true,
    historyLimit: options.historyLimit === undefined ? Infinity : positiveInt("historyLimit", options.historyLimit),
    unavailableGuilds: new Set(options.unavailableGuilds ?? []),
    silentGuilds: new Set(options.silentGuilds ?? []),
    dispatchLatencyMs: options.dispatchLatencyMs ?? {},
    traffic: options.traffic === undefined ? undefined : validate(options.traffic)
  }
}
