/**
 * The embedded simulator's demo traffic: the demo's guilds, and a steady mix of the events a real bot sees
 * most — messages, typing, presences, reactions, member updates — emitted at a modest rate from one fiber.
 *
 * Guild ids are realistic snowflakes whose timestamp part steps by one, so guild k lives on shard
 * `k % shardCount` for any count dividing 64 (PROTOCOL.md §4 routing): the guilds spread evenly before and
 * after a reshard. Events carry `guild_id`, so the simulator routes each to the owning shard (§4).
 *
 * The rate holds over time whatever the tick jitter: each tick emits what is due since the start by the
 * Clock, minus what was already sent (at most one second's worth after a long pause).
 */
import { Clock, Effect } from "effect"

/** A snowflake timestamp (ms since the Discord epoch, around 2024) divisible by 64. */
const BaseTimestamp = 300_000_000_000n

/** `count` guild ids; guild k routes to shard `k % n` when n divides 64. */
export const demoGuilds = (count: number): ReadonlyArray<string> =>
  Array.from({ length: count }, (_, k) => String(((BaseTimestamp + BigInt(k)) << 22n) | BigInt(k % 4096)))

export interface DemoEvent {
  readonly event: string
  readonly data: unknown
}

/** The mix, per 20 events: 8 messages, 5 typing, 3 presences, 2 reactions, 2 member updates. */
const mix: ReadonlyArray<string> = [
  "MESSAGE_CREATE", "TYPING_START", "MESSAGE_CREATE", "PRESENCE_UPDATE", "MESSAGE_CREATE",
  "TYPING_START", "MESSAGE_REACTION_ADD", "MESSAGE_CREATE", "GUILD_MEMBER_UPDATE", "TYPING_START",
  "MESSAGE_CREATE", "PRESENCE_UPDATE", "MESSAGE_CREATE", "TYPING_START", "MESSAGE_REACTION_ADD",
  "MESSAGE_CREATE", "PRESENCE_UPDATE", "GUILD_MEMBER_UPDATE", "MESSAGE_CREATE", "TYPING_START"
]

const words = ["gateway", "shard", "resume", "heartbeat", "effect", "stream", "fiber", "scope", "hello", "ready"]

/** Event `n` of the demo (deterministic): its name from the mix, its guild by round robin. */
export const demoEvent = (n: number, guilds: ReadonlyArray<string>, nowMs: number): DemoEvent => {
  const event = mix[n % mix.length]!
  const guildId = guilds.length === 0 ? undefined : guilds[n % guilds.length]!
  const userId = String(100_000_000_000_000_000n + BigInt(n % 997))
  const channelId = guildId === undefined ? "1" : `${guildId.slice(0, -1)}${n % 3}`
  const user = { id: userId, username: `user${n % 997}`, global_name: null, discriminator: "0", avatar: null }
  switch (event) {
    case "MESSAGE_CREATE":
      return {
        event,
        data: {
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
      }
    case "TYPING_START":
      return { event, data: { channel_id: channelId, guild_id: guildId, user_id: userId, timestamp: Math.floor(nowMs / 1000) } }
    case "PRESENCE_UPDATE":
      return {
        event,
        data: {
          user: { id: userId },
          guild_id: guildId,
          status: n % 2 === 0 ? "online" : "idle",
          activities: [],
          client_status: { desktop: "online" }
        }
      }
    case "MESSAGE_REACTION_ADD":
      return {
        event,
        data: {
          user_id: userId,
          channel_id: channelId,
          message_id: String(200_000_000_000_000_000n + BigInt(Math.max(0, n - 5))),
          guild_id: guildId,
          emoji: { id: null, name: "👍" },
          burst: false,
          type: 0
        }
      }
    default:
      return {
        event,
        data: { guild_id: guildId, roles: [], user, nick: null, joined_at: new Date(nowMs - 86_400_000).toISOString() }
      }
  }
}

/** Where demo events go (`SimulatorControls.dispatch`). */
export interface TrafficTarget {
  readonly dispatch: (event: string, data: unknown) => Effect.Effect<void>
}

/** Events due at `elapsedMs` after start at `rate` per second, given `sent` so far (at most one second's worth). */
export const due = (elapsedMs: number, rate: number, sent: number): number =>
  Math.max(0, Math.min(Math.floor((elapsedMs * rate) / 1000) - sent, Math.ceil(rate)))

/** Emits the demo mix at `rate` events per second into `target`, forever (run it in a fiber). */
export const run = (
  target: TrafficTarget,
  guilds: ReadonlyArray<string>,
  rate: number,
  tickMs = 50
): Effect.Effect<void> =>
  rate <= 0
    ? Effect.void
    : Effect.gen(function*() {
      const start = yield* Clock.currentTimeMillis
      let sent = 0
      while (true) {
        yield* Effect.sleep(tickMs)
        const now = yield* Clock.currentTimeMillis
        const count = due(now - start, rate, sent)
        for (let i = 0; i < count; i++) {
          const { data, event } = demoEvent(sent + i, guilds, now)
          yield* target.dispatch(event, data)
        }
        sent += count
        // after a pause longer than a second, do not try to catch up
        if (Math.floor(((now - start) * rate) / 1000) - sent > rate) sent = Math.floor(((now - start) * rate) / 1000)
      }
    })
