/**
 * The soak's traffic generator: continuous guild events, each with a unique id, dispatched through the
 * simulator and entered in the ledger in the same uninterrupted step (PROTOCOL.md §4 routing).
 *
 * Guilds: guild k's snowflake has timestamp part `BaseTimestamp + k` (around 2024), so consecutive guilds
 * land on consecutive shards for any count: with a guild count that is a multiple of the shard count, every
 * shard of every set gets the same share of the traffic, before and after each reshard.
 *
 * Events: a realistic mix (messages, typing, reactions, presences) plus an event name no library knows
 * (`SOAK_UNLISTED_EVENT`, checklist item 51: delivered, never fatal). Each carries `soak` (its id) and its
 * `guild_id`; ids are unique, so the reshard handoff's content identity is unique too.
 *
 * Atomicity: reading which sessions own the guild (`sessions`) and dispatching happen with scheduler yields
 * switched off, so no other fiber (a shard identifying, a fault) can change the sessions in between — the
 * ledger's routing is exactly the simulator's.
 *
 * Rate: `SimulatorTraffic.paced`, as the simulator's own traffic: each tick emits what is due since the start by
 * the Clock (at most one second's worth; after a longer stall the backlog is dropped).
 */
import { Effect, References } from "effect"
import type { SimulatorControls } from "../testing/SimulatorServer.ts"
import { paced } from "../testing/SimulatorTraffic.ts"
import type { Ledger } from "./SoakLedger.ts"

/** A snowflake timestamp part (ms since the Discord epoch, around 2024). */
const BaseTimestamp = 300_000_000_000n

/** The soak's guilds: ids (snowflake strings) and, per guild, its shifted id as a number (k-th: base + k). */
export interface SoakGuilds {
  readonly ids: ReadonlyArray<string>
  /** `guild_id >> 22`, exact in a double (< 2^53). */
  readonly shifted: ReadonlyArray<number>
  /** Guild index by id. */
  readonly indexOf: ReadonlyMap<string, number>
}

export const makeGuilds = (count: number): SoakGuilds => {
  const ids: Array<string> = []
  const shifted: Array<number> = []
  const indexOf = new Map<string, number>()
  for (let k = 0; k < count; k++) {
    const timestamp = BaseTimestamp + BigInt(k)
    const id = String((timestamp << 22n) | BigInt(k % 4096))
    ids.push(id)
    shifted.push(Number(timestamp))
    indexOf.set(id, k)
  }
  return { ids, shifted, indexOf }
}

/** The shard that owns guild `index` under `count` shards. */
export const shardOf = (guilds: SoakGuilds, index: number, count: number): number => guilds.shifted[index]! % count

/** The names the traffic uses: a common mix, then one name unknown to every library. */
export const TrafficNames: ReadonlyArray<string> = [
  "MESSAGE_CREATE",
  "TYPING_START",
  "MESSAGE_CREATE",
  "MESSAGE_REACTION_ADD",
  "MESSAGE_CREATE",
  "PRESENCE_UPDATE",
  "TYPING_START",
  "SOAK_UNLISTED_EVENT"
]

/** The name of the one-off unknown event the fault injector sends. */
export const UnknownEventName = "SOAK_UNKNOWN_EVENT"

/** Every event name a soak subscriber must receive. */
export const SoakEventNames: ReadonlyArray<string> = [...new Set([...TrafficNames, UnknownEventName])]

/** The data of soak event `id`: its id, its guild, and a little realistic content. */
const eventData = (id: number, guildId: string) => ({
  soak: id,
  id: String(400_000_000_000_000_000n + BigInt(id)),
  guild_id: guildId,
  channel_id: guildId,
  user_id: String(100_000_000_000_000_000n + BigInt(id % 997)),
  content: `soak event #${id}`
})

/** Reads a delivered event's soak id and guild index (−1 when it is not a soak event). */
export const readDelivery = (guilds: SoakGuilds, data: unknown): { readonly id: number; readonly guild: number } | undefined => {
  if (typeof data !== "object" || data === null) return undefined
  const { guild_id, soak } = data as { readonly soak?: unknown; readonly guild_id?: unknown }
  if (typeof soak !== "number") return undefined
  return { id: soak, guild: typeof guild_id === "string" ? guilds.indexOf.get(guild_id) ?? -1 : -1 }
}

export interface SoakTraffic {
  readonly guilds: SoakGuilds
  /** Dispatches one event of guild `guild` named `name`, entered in the ledger. */
  readonly emit: (name: string, guild: number) => Effect.Effect<void>
  /** Dispatches one unknown-named event to a guild of shard `[id, count]`; false if that shard owns no guild. */
  readonly emitToShard: (name: string, shard: readonly [number, number]) => Effect.Effect<boolean>
  /** Emits the mix at `rate` events/s, round robin over the guilds, until the Clock reaches `untilMs`. */
  readonly run: (options: { readonly rate: number; readonly untilMs: number; readonly tickMs: number }) => Effect.Effect<void>
}

/** Runs `effect` with scheduler yields off: no other fiber runs until it completes (it must not wait). */
export const atomically = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.provideService(effect, References.PreventSchedulerYield, true)

export const make = (simulator: SimulatorControls, ledger: Ledger, guilds: SoakGuilds): SoakTraffic => {
  /** Dispatches a batch of (name, guild) pairs against one reading of the sessions. */
  const emitBatch = (names: ReadonlyArray<string>, guildOf: (i: number) => number): Effect.Effect<void> =>
    atomically(Effect.flatMap(simulator.sessions, (sessions) =>
      Effect.forEach(names, (name, i) => {
        const guild = guildOf(i)
        const shifted = guilds.shifted[guild]!
        const receivers: Array<string> = []
        for (const session of sessions) {
          if (shifted % session.shard[1] === session.shard[0]) receivers.push(session.id)
        }
        const id = ledger.nextId()
        ledger.sent(id, guild, receivers)
        return simulator.dispatch(name, eventData(id, guilds.ids[guild]!))
      }, { discard: true })))

  const emit = (name: string, guild: number) => emitBatch([name], () => guild)

  const emitToShard = (name: string, [shardId, count]: readonly [number, number]) =>
    Effect.suspend(() => {
      const candidates: Array<number> = []
      for (let k = 0; k < guilds.ids.length; k++) if (shardOf(guilds, k, count) === shardId) candidates.push(k)
      if (candidates.length === 0) return Effect.succeed(false)
      const guild = candidates[ledger.totals().sent % candidates.length]!
      return Effect.as(emit(name, guild), true)
    })

  const run = (options: { readonly rate: number; readonly untilMs: number; readonly tickMs: number }) =>
    options.rate <= 0 || guilds.ids.length === 0
      ? Effect.void
      : Effect.suspend(() => {
        const names: Array<string> = []
        return paced(options, (first, count) => {
          names.length = 0
          for (let i = 0; i < count; i++) names.push(TrafficNames[(first + i) % TrafficNames.length]!)
          return emitBatch(names, (i) => (first + i) % guilds.ids.length)
        })
      })

  return { guilds, emit, emitToShard, run }
}
