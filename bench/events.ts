/**
 * Benchmark events: realistic gateway dispatch data (PROTOCOL.md §6.1), generated deterministically so the
 * producer (the simulator process) and the consumers (the benchmarked clients) agree on what a block holds.
 *
 * - `messageCreate`: a MESSAGE_CREATE of about 1 KB on the wire (author, member, an embed, mentions…).
 * - The mix (`MixWeights`): what a mid-sized bot with presences sees — PRESENCE_UPDATE 30 %, TYPING_START
 *   25 %, MESSAGE_CREATE 20 %, MESSAGE_REACTION_ADD 15 %, GUILD_MEMBER_UPDATE 10 %.
 * - A *block* is what the producer sends to one shard per credit: `BlockSize` events routed to that
 *   shard's guilds. Every block ends with a MESSAGE_CREATE, so a subscriber that sees only
 *   MESSAGE_CREATE knows when the whole block (and all before it) has been processed.
 *
 * Event data carries `guild_id` values that route to the intended shard: guild `(k << 22) + k` belongs to
 * shard `k % shardCount` (PROTOCOL.md §4).
 */

/** Events per block (per shard, per credit). */
export const BlockSize = 500

/** What a block is made of. */
export type BlockKind = "messages" | "mix"

/** One event of a block: its name and its data. */
export interface BenchEvent {
  readonly name: string
  readonly data: Readonly<Record<string, unknown>>
}

/** The mix, as weights out of 20. */
export const MixWeights: ReadonlyArray<readonly [name: string, weight: number]> = [
  ["PRESENCE_UPDATE", 6],
  ["TYPING_START", 5],
  ["MESSAGE_CREATE", 4],
  ["MESSAGE_REACTION_ADD", 3],
  ["GUILD_MEMBER_UPDATE", 2]
]

/** A small deterministic PRNG (mulberry32), so both processes generate the same blocks. */
const prng = (seed: number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

type Random = () => number

const Words = [
  "gateway", "shard", "resume", "heartbeat", "latency", "deploy", "release", "build", "test", "merge",
  "review", "ship", "fix", "crash", "queue", "cache", "event", "stream", "fiber", "scope", "layer", "effect",
  "discord", "server", "channel", "thread", "emoji", "role", "member", "voice", "stage", "guild", "bot"
]

const pick = <A>(random: Random, items: ReadonlyArray<A>): A => items[Math.floor(random() * items.length)]!
const words = (random: Random, count: number): string => Array.from({ length: count }, () => pick(random, Words)).join(" ")
const snowflake = (random: Random): string =>
  String(1_100_000_000_000_000_000n + (BigInt(Math.floor(random() * 2 ** 32)) << 26n) + BigInt(Math.floor(random() * 2 ** 26)))
const hex = (random: Random): string => Math.floor(random() * 2 ** 32).toString(16).padStart(8, "0")
const hash = (random: Random): string => hex(random) + hex(random) + hex(random) + hex(random)
const timestamp = (random: Random): string => new Date(1_735_689_600_000 + Math.floor(random() * 3e10)).toISOString()

/** A guild id owned by `shardId` of `shardCount`: `(k << 22) + k` with `k % shardCount === shardId`. */
export const guildOf = (shardId: number, shardCount: number, nth: number): string => {
  const k = BigInt(shardId + nth * shardCount)
  return String((k << 22n) + k)
}

const user = (random: Random) => ({
  username: `${pick(random, Words)}_${Math.floor(random() * 10_000)}`,
  public_flags: 0,
  id: snowflake(random),
  global_name: words(random, 2),
  discriminator: "0",
  clan: null,
  avatar_decoration_data: null,
  avatar: hash(random)
})

const member = (random: Random) => ({
  roles: [snowflake(random), snowflake(random)],
  premium_since: null,
  pending: false,
  nick: null,
  mute: false,
  joined_at: timestamp(random),
  flags: 0,
  deaf: false,
  communication_disabled_until: null,
  banner: null,
  avatar: null
})

/** MESSAGE_CREATE data of about 1 KB once framed. */
const messageCreate = (random: Random, guildId: string) => ({
  type: 0,
  tts: false,
  timestamp: timestamp(random),
  pinned: false,
  nonce: snowflake(random),
  mentions: [],
  mention_roles: [],
  mention_everyone: false,
  member: member(random),
  id: snowflake(random),
  flags: 0,
  embeds: [{
    type: "rich",
    title: words(random, 4),
    description: words(random, 8),
    color: Math.floor(random() * 0xffffff),
    fields: [{ name: pick(random, Words), value: words(random, 3), inline: true }],
    footer: { text: words(random, 2) }
  }],
  edited_timestamp: null,
  content: words(random, 8),
  components: [],
  channel_type: 0,
  channel_id: snowflake(random),
  author: user(random),
  attachments: [],
  guild_id: guildId
})

const presenceUpdate = (random: Random, guildId: string) => ({
  user: { id: snowflake(random) },
  status: pick(random, ["online", "idle", "dnd"]),
  guild_id: guildId,
  client_status: { desktop: "online" },
  activities: [{
    type: 0,
    name: words(random, 2),
    id: hash(random).slice(0, 16),
    created_at: 1_735_689_600_000 + Math.floor(random() * 3e10),
    timestamps: { start: 1_735_689_600_000 },
    application_id: snowflake(random)
  }]
})

const typingStart = (random: Random, guildId: string) => ({
  user_id: snowflake(random),
  timestamp: Math.floor(1_735_689_600 + random() * 3e7),
  member: { ...member(random), user: user(random) },
  channel_id: snowflake(random),
  guild_id: guildId
})

const reactionAdd = (random: Random, guildId: string) => ({
  user_id: snowflake(random),
  type: 0,
  message_id: snowflake(random),
  message_author_id: snowflake(random),
  member: { ...member(random), user: user(random) },
  emoji: { name: "👍", id: null },
  channel_id: snowflake(random),
  burst: false,
  guild_id: guildId
})

const memberUpdate = (random: Random, guildId: string) => ({
  ...member(random),
  user: user(random),
  guild_id: guildId
})

const generators: Record<string, (random: Random, guildId: string) => Readonly<Record<string, unknown>>> = {
  MESSAGE_CREATE: messageCreate,
  PRESENCE_UPDATE: presenceUpdate,
  TYPING_START: typingStart,
  MESSAGE_REACTION_ADD: reactionAdd,
  GUILD_MEMBER_UPDATE: memberUpdate
}

/** The event names of a mix block, in order: the same for every shard; the last one is MESSAGE_CREATE. */
const mixNames = (): Array<string> => {
  const random = prng(0x313)
  const bag: Array<string> = []
  for (const [name, weight] of MixWeights) for (let i = 0; i < weight; i++) bag.push(name)
  const names = Array.from({ length: BlockSize }, () => pick(random, bag))
  names[BlockSize - 1] = "MESSAGE_CREATE"
  return names
}

/** The block shard `shardId` of `shardCount` receives per credit. Same arguments, same events. */
export const block = (kind: BlockKind, shardId: number, shardCount: number): ReadonlyArray<BenchEvent> => {
  const random = prng(0x5eed + shardId * 7919 + (kind === "mix" ? 1 : 0))
  const names = kind === "messages" ? Array.from({ length: BlockSize }, () => "MESSAGE_CREATE") : mixNames()
  return names.map((name, i) => ({ name, data: generators[name]!(random, guildOf(shardId, shardCount, i % 8)) }))
}

/** How many events of a block a consumer counts: every event, or only MESSAGE_CREATE. */
export const countedPerBlock = (kind: BlockKind, onlyMessages: boolean): number =>
  !onlyMessages || kind === "messages" ? BlockSize : mixNames().filter((name) => name === "MESSAGE_CREATE").length

/** Average frame size of a block on the wire (`{"t":…,"s":…,"op":0,"d":…}`), in bytes. */
export const averageFrameBytes = (events: ReadonlyArray<BenchEvent>): number => {
  let total = 0
  for (const e of events) total += Buffer.byteLength(`{"t":"${e.name}","s":12345,"op":0,"d":${JSON.stringify(e.data)}}`)
  return Math.round(total / events.length)
}
