/**
 * The simulator's own traffic: a steady stream of guild events at a configured rate and mix (issue 5
 * "Configurable: … event mix and rate"), so a client pointed at the simulator sees what a real bot sees
 * without anyone driving `dispatch`.
 *
 * The mix is a list of event names with integer weights; events follow it in a fixed, interleaved order
 * (smooth weighted round robin: with weights 8/5/3/2/2, every 20 events hold exactly 8, 5, 3, 2 and 2 of
 * them), so a test can count them. Guilds are taken round robin, and every event carries `guild_id`, so the
 * simulator routes it to the shard that owns the guild (PROTOCOL.md §4). Names the generator knows get
 * realistic data (§6.1: MESSAGE_CREATE, TYPING_START, PRESENCE_UPDATE, MESSAGE_REACTION_ADD,
 * GUILD_MEMBER_UPDATE); any other name gets `{ id, guild_id }`.
 *
 * The rate holds over Clock time whatever the tick jitter (TestClock in tests): each tick emits what is due
 * since the start minus what was already sent, and after a stall longer than a second it does not try to
 * catch up (`paced`, which the soak's traffic uses too).
 */
import { Clock, Effect } from "effect"

/** A mix: event names with positive integer weights. */
export type TrafficMix = ReadonlyArray<readonly [event: string, weight: number]>

export interface TrafficOptions {
  /** Events per second (0: none). */
  readonly rate: number
  /** Which events, in what proportion. Default `DefaultMix`. */
  readonly mix?: TrafficMix | undefined
  /** How often events are emitted, in ms (what is due since the last tick goes at once). Default 50. */
  readonly tickMs?: number | undefined
}

/** What a bot with presences and message content sees most: per 20 events 8 messages, 5 typing, 3 presences, 2 reactions, 2 member updates. */
export const DefaultMix: TrafficMix = [
  ["MESSAGE_CREATE", 8],
  ["TYPING_START", 5],
  ["PRESENCE_UPDATE", 3],
  ["MESSAGE_REACTION_ADD", 2],
  ["GUILD_MEMBER_UPDATE", 2]
]

/** Checks traffic options (a programming error in the caller: throws a RangeError saying what to fix). */
export const validate = (options: TrafficOptions): TrafficOptions => {
  if (!Number.isFinite(options.rate) || options.rate < 0) {
    throw new RangeError(`GatewaySimulator: traffic.rate must be a number of events per second ≥ 0, got ${options.rate}`)
  }
  const tickMs = options.tickMs ?? 50
  if (!Number.isFinite(tickMs) || tickMs <= 0) {
    throw new RangeError(`GatewaySimulator: traffic.tickMs must be a positive number of ms, got ${tickMs}`)
  }
  const mix = options.mix ?? DefaultMix
  if (mix.length === 0) throw new RangeError("GatewaySimulator: traffic.mix must name at least one event")
  for (const [event, weight] of mix) {
    if (!/^[A-Z][A-Z0-9_]*$/.test(event)) {
      throw new RangeError(`GatewaySimulator: traffic.mix event ${JSON.stringify(event)} is not an event name (like MESSAGE_CREATE)`)
    }
    if (!Number.isInteger(weight) || weight < 1 || weight > 1000) {
      throw new RangeError(`GatewaySimulator: traffic.mix weight of ${event} must be a whole number from 1 to 1000, got ${weight}`)
    }
  }
  return options
}

/** One period of the mix, interleaved (smooth weighted round robin): its length is the sum of the weights. */
export const mixOrder = (mix: TrafficMix): ReadonlyArray<string> => {
  const total = mix.reduce((sum, [, weight]) => sum + weight, 0)
  const current = mix.map(() => 0)
  const order: Array<string> = []
  for (let n = 0; n < total; n++) {
    let best = 0
    for (let i = 0; i < mix.length; i++) {
      current[i]! += mix[i]![1]
      if (current[i]! > current[best]!) best = i
    }
    current[best]! -= total
    order.push(mix[best]![0])
  }
  return order
}

const words = ["gateway", "shard", "resume", "heartbeat", "effect", "stream", "fiber", "scope", "hello", "ready"]

/** The data of event `n` named `event` in guild `guildId` (deterministic but for the times). */
export const eventData = (event: string, n: number, guildId: string | undefined, nowMs: number): unknown => {
  const userId = String(100_000_000_000_000_000n + BigInt(n % 997))
  const channelId = guildId === undefined ? "1" : `${guildId.slice(0, -1)}${n % 3}`
  const user = { id: userId, username: `user${n % 997}`, global_name: null, discriminator: "0", avatar: null }
  switch (event) {
    case "MESSAGE_CREATE":
      return {
        id: String(200_000_000_000_000_000n + BigInt(n)),
        channel_id: channelId,
        guild_id: guildId,
        author: user,
        member: { roles: [], joined_at: new Date(nowMs - 86_400_000).toISOString(), deaf: false, mute: false },
        content: `${words[n % words.length]} ${words[(n * 7) % words.length]} #${n}`,
        timestamp: new Date(nowMs).toISOString(),
        edited_timestamp: null,
        tts: false,
        mention_everyone: false,
        mentions: [],
        mention_roles: [],
        attachments: [],
        embeds: [],
        pinned: false,
        type: 0
      }
    case "TYPING_START":
      return { channel_id: channelId, guild_id: guildId, user_id: userId, timestamp: Math.floor(nowMs / 1000) }
    case "PRESENCE_UPDATE":
      return {
        user: { id: userId },
        guild_id: guildId,
        status: n % 2 === 0 ? "online" : "idle",
        activities: [],
        client_status: { desktop: "online" }
      }
    case "MESSAGE_REACTION_ADD":
      return {
        user_id: userId,
        channel_id: channelId,
        message_id: String(200_000_000_000_000_000n + BigInt(Math.max(0, n - 5))),
        guild_id: guildId,
        emoji: { id: null, name: "👍" },
        burst: false,
        type: 0
      }
    case "GUILD_MEMBER_UPDATE":
      return { guild_id: guildId, roles: [], user, nick: null, joined_at: new Date(nowMs - 86_400_000).toISOString() }
    default:
      return { id: String(300_000_000_000_000_000n + BigInt(n)), guild_id: guildId }
  }
}

/** Events due at `elapsedMs` after the start at `rate` per second, given `sent` so far (at most one second's worth). */
export const due = (elapsedMs: number, rate: number, sent: number): number =>
  Math.max(0, Math.min(Math.floor((elapsedMs * rate) / 1000) - sent, Math.ceil(rate)))

/** Where the events go (the simulator's `dispatch`) and the guilds they are spread over (read at each tick). */
export interface TrafficTarget {
  readonly dispatch: (event: string, data: unknown) => Effect.Effect<void>
  readonly guilds: () => ReadonlyArray<string>
}

/**
 * Calls `emit(first, count, now)` every `tickMs` of Clock time with the events due since the start at `rate`
 * per second (`first` counts from 0), until the Clock reaches `untilMs` (forever if not given). At most one
 * second's worth goes at once, and after a stall longer than a second the backlog is dropped, not caught up.
 */
export const paced = <E, R>(
  options: { readonly rate: number; readonly tickMs: number; readonly untilMs?: number | undefined },
  emit: (first: number, count: number, now: number) => Effect.Effect<void, E, R>
): Effect.Effect<void, E, R> =>
  Effect.gen(function*() {
    const start = yield* Clock.currentTimeMillis
    let sent = 0
    while (true) {
      yield* Effect.sleep(options.tickMs)
      const now = yield* Clock.currentTimeMillis
      if (options.untilMs !== undefined && now >= options.untilMs) return
      const count = due(now - start, options.rate, sent)
      if (count > 0) yield* emit(sent, count, now)
      sent += count
      const owed = Math.floor(((now - start) * options.rate) / 1000)
      if (owed - sent > options.rate) sent = owed
    }
  })

/** Emits the traffic into `target`, forever (run it in a fiber). */
export const run = (target: TrafficTarget, options: TrafficOptions): Effect.Effect<void> => {
  const { rate } = validate(options)
  if (rate === 0) return Effect.void
  const order = mixOrder(options.mix ?? DefaultMix)
  return paced({ rate, tickMs: options.tickMs ?? 50 }, (first, count, now) =>
    Effect.gen(function*() {
      const guilds = target.guilds()
      for (let n = first; n < first + count; n++) {
        const event = order[n % order.length]!
        yield* target.dispatch(event, eventData(event, n, guilds.length === 0 ? undefined : guilds[n % guilds.length], now))
      }
    }))
}
