/**
 * ShardReadiness: when a shard's guilds have loaded (PROTOCOL.md §6.1 "Shard ready", checklist item 53).
 *
 * READY lists the shard's guilds, all unavailable; Discord then sends GUILD_CREATE (or GUILD_DELETE for a
 * guild in an outage) for each. A shard is ready once every READY guild has been answered, or when no
 * guild event arrived for `guildWaitTimeout` (some never come), or at once when the GUILDS intent is off
 * (no GUILD_CREATE will come). A RESUME keeps the guilds: readiness survives it (and a session resumed from
 * a saved one in a new process is ready at RESUMED); a new READY starts over.
 *
 * It is fed synchronously from the shard's dispatch path (READY, GUILD_CREATE, GUILD_DELETE only) and
 * reports transitions through `onReady`; the timeout runs on one fiber per shard, on Effect's Clock.
 */
import { Clock, Duration, Effect, type Scope } from "effect"
import type { Dispatch } from "./Dispatch.ts"

export interface ShardReadiness {
  /** Feeds READY / GUILD_CREATE / GUILD_DELETE; returns the effect of any transition (Effect.void if none). */
  readonly observe: (dispatch: Dispatch) => Effect.Effect<void>
  /** True once the guilds of the current session have loaded (or timed out). */
  readonly isReady: () => boolean
  /** Whether this GUILD_CREATE/DELETE answers a guild READY listed (session start-up, not news). */
  readonly answersReady: (dispatch: Dispatch) => boolean
}

export interface ReadyInfo {
  /** Guilds listed in READY. */
  readonly guilds: number
  /** Guilds that had not been answered when the wait timed out. */
  readonly missing: number
}

const guildIdOf = (data: unknown): string | undefined => {
  const id = typeof data === "object" && data !== null ? (data as { readonly id?: unknown }).id : undefined
  return typeof id === "string" ? id : undefined
}

const readyGuildIds = (data: unknown): ReadonlyArray<string> => {
  const guilds = typeof data === "object" && data !== null ? (data as { readonly guilds?: unknown }).guilds : undefined
  if (!Array.isArray(guilds)) return []
  const ids: Array<string> = []
  for (const guild of guilds) {
    const id = guildIdOf(guild)
    if (id !== undefined) ids.push(id)
  }
  return ids
}

export const make = (options: {
  /** Whether the shard identified with the GUILDS intent. */
  readonly guildsIntent: boolean
  readonly guildWaitTimeout: Duration.Input
  /** Called once per transition to ready. */
  readonly onReady: (info: ReadyInfo) => Effect.Effect<void>
}): Effect.Effect<ShardReadiness, never, Scope.Scope> =>
  Effect.gen(function*() {
    const clock = yield* Clock.Clock
    const scope = yield* Effect.scope
    const timeoutMs = Duration.toMillis(Duration.fromInputUnsafe(options.guildWaitTimeout))
    let pending: Set<string> | undefined
    let listed = 0
    let ready = false
    let lastProgressAt = 0
    let timerRunning = false

    const becomeReady = (missing: number): Effect.Effect<void> => {
      if (ready) return Effect.void
      ready = true
      pending = undefined
      return options.onReady({ guilds: listed, missing })
    }

    // Sleeps until no guild event arrived for `timeoutMs`, then gives up waiting.
    const timer: Effect.Effect<void> = Effect.suspend(() => {
      if (ready || pending === undefined) {
        timerRunning = false
        return Effect.void
      }
      const due = lastProgressAt + timeoutMs
      const now = clock.currentTimeMillisUnsafe()
      if (now >= due) {
        timerRunning = false
        return becomeReady(pending.size)
      }
      return Effect.andThen(Effect.sleep(Duration.millis(due - now)), timer)
    })

    const startTimer = (): Effect.Effect<void> => {
      if (timerRunning) return Effect.void
      timerRunning = true
      return Effect.asVoid(Effect.forkIn(timer, scope))
    }

    const observe = (dispatch: Dispatch): Effect.Effect<void> => {
      switch (dispatch.name) {
        case "READY": {
          const ids = readyGuildIds(dispatch.data)
          ready = false
          listed = ids.length
          if (!options.guildsIntent || ids.length === 0) return becomeReady(0)
          pending = new Set(ids)
          lastProgressAt = clock.currentTimeMillisUnsafe()
          return startTimer()
        }
        case "RESUMED":
          // A session resumed in this process keeps its readiness; one resumed from a saved session (a new
          // process) never had READY here: its guilds loaded before, so it is ready now.
          return pending === undefined ? becomeReady(0) : Effect.void
        case "GUILD_CREATE":
        case "GUILD_DELETE": {
          if (pending === undefined) return Effect.void
          const id = guildIdOf(dispatch.data)
          if (id === undefined || !pending.delete(id)) return Effect.void
          lastProgressAt = clock.currentTimeMillisUnsafe()
          return pending.size === 0 ? becomeReady(0) : Effect.void
        }
        default:
          return Effect.void
      }
    }

    const answersReady = (dispatch: Dispatch): boolean => {
      if (pending === undefined) return false
      const id = guildIdOf(dispatch.data)
      return id !== undefined && pending.has(id)
    }

    return { observe, isReady: () => ready, answersReady }
  })
