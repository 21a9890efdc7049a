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

interface ReadinessOptions {
  /** Whether the shard identified with the GUILDS intent. */
  readonly guildsIntent: boolean
  readonly guildWaitTimeout: Duration.Input
  /** Called once per transition to ready. */
  readonly onReady: (info: ReadyInfo) => Effect.Effect<void>
}

/**
 * One shard's readiness. Its state is fields and its steps are methods, so a shard keeps one small object
 * for it (every shard has one for as long as it runs); the timeout's effect is made when first needed.
 */
class Readiness implements ShardReadiness {
  private pending: Set<string> | undefined
  private listed = 0
  private ready = false
  private lastProgressAt = 0
  private timerRunning = false
  private timer: Effect.Effect<void> | undefined
  private readonly clock: Clock.Clock
  private readonly scope: Scope.Scope
  private readonly timeoutMs: number
  private readonly options: ReadinessOptions

  constructor(clock: Clock.Clock, scope: Scope.Scope, options: ReadinessOptions) {
    this.clock = clock
    this.scope = scope
    this.timeoutMs = Duration.toMillis(Duration.fromInputUnsafe(options.guildWaitTimeout))
    this.options = options
  }

  isReady(): boolean {
    return this.ready
  }

  private becomeReady(missing: number): Effect.Effect<void> {
    if (this.ready) return Effect.void
    this.ready = true
    this.pending = undefined
    return this.options.onReady({ guilds: this.listed, missing })
  }

  /** Sleeps until no guild event arrived for `timeoutMs`, then gives up waiting. */
  private makeTimer(): Effect.Effect<void> {
    const timer: Effect.Effect<void> = Effect.suspend(() => {
      if (this.ready || this.pending === undefined) {
        this.timerRunning = false
        return Effect.void
      }
      const due = this.lastProgressAt + this.timeoutMs
      const now = this.clock.currentTimeMillisUnsafe()
      if (now >= due) {
        this.timerRunning = false
        return this.becomeReady(this.pending.size)
      }
      return Effect.andThen(Effect.sleep(Duration.millis(due - now)), timer)
    })
    return timer
  }

  private startTimer(): Effect.Effect<void> {
    if (this.timerRunning) return Effect.void
    this.timerRunning = true
    return Effect.asVoid(Effect.forkIn(this.timer ??= this.makeTimer(), this.scope))
  }

  observe(dispatch: Dispatch): Effect.Effect<void> {
    switch (dispatch.name) {
      case "READY": {
        const ids = readyGuildIds(dispatch.data)
        this.ready = false
        this.listed = ids.length
        if (!this.options.guildsIntent || ids.length === 0) return this.becomeReady(0)
        this.pending = new Set(ids)
        this.lastProgressAt = this.clock.currentTimeMillisUnsafe()
        return this.startTimer()
      }
      case "RESUMED":
        // A session resumed in this process keeps its readiness; one resumed from a saved session (a new
        // process) never had READY here: its guilds loaded before, so it is ready now.
        return this.pending === undefined ? this.becomeReady(0) : Effect.void
      case "GUILD_CREATE":
      case "GUILD_DELETE": {
        if (this.pending === undefined) return Effect.void
        const id = guildIdOf(dispatch.data)
        if (id === undefined || !this.pending.delete(id)) return Effect.void
        this.lastProgressAt = this.clock.currentTimeMillisUnsafe()
        return this.pending.size === 0 ? this.becomeReady(0) : Effect.void
      }
      default:
        return Effect.void
    }
  }

  answersReady(dispatch: Dispatch): boolean {
    if (this.pending === undefined) return false
    const id = guildIdOf(dispatch.data)
    return id !== undefined && this.pending.has(id)
  }
}

export const make = (options: ReadinessOptions): Effect.Effect<ShardReadiness, never, Scope.Scope> =>
  Effect.gen(function*() {
    return new Readiness(yield* Clock.Clock, yield* Effect.scope, options)
  })
