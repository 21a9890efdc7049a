/**
 * MemberRequests: Request Guild Members (op 8) as one Stream of GUILD_MEMBERS_CHUNK per request
 * (PROTOCOL.md §3 all-members limit, §6.1 GUILD_MEMBERS_CHUNK, §6.2 op 8; checklist items 43, 44, 55, 56).
 *
 * Independent of the Gateway: it is given a `send` (routes an op 8 to the shard that owns the guild),
 * `shardOf` and the IDENTIFY intents, is fed every dispatch through `onDispatch`, and is told when a
 * shard's session is lost (`shardLost`) or everything stops (`shutdown`).
 *
 * - A request is checked locally before anything is sent (item 56): one guild, exactly one of
 *   `query` (+ `limit`) / `userIds` (1–100), `presences` only with GUILD_PRESENCES, an all-members
 *   request (`query: ""`, `limit: 0`) only with GUILD_MEMBERS. A refusal is a `MemberRequestError`
 *   whose message says what to fix.
 * - Each request carries its own nonce (≤ 32 ASCII bytes, never reused by an instance, with a random
 *   per-instance prefix so two instances on one session do not collide) and its stream ends after
 *   `chunk_count` distinct chunk indices with that nonce, in any order (item 55). Duplicate indices and
 *   chunks of other nonces are ignored.
 * - RATE_LIMITED `{opcode: 8, retry_after, meta: {guild_id, nonce}}`: the guild is blocked for
 *   `retry_after` — no op 8 for it is sent before then (item 43) — and the limited request is sent again
 *   once the block is over.
 * - Two all-members requests for one guild are never sent less than 30 s apart (item 44): the second waits.
 *   The 30 s count from the moment the first `send` completed (the frame was written), and only one
 *   all-members send per guild is under way at a time.
 * - Never hangs: a request fails with `SessionLost` when its shard's session is lost after the frame went
 *   out, with `Shutdown` on `shutdown` (or when the Scope of `make` closes), with `SendFailed` when `send`
 *   fails (e.g. the shard stopped), and with `Timeout` when no chunk arrives for `timeout` after sending
 *   (Discord does not answer a request for a guild the session does not hold).
 *
 * Costs: one fiber per request (sending, rate-limit waits, the idle timer), none per chunk. `onDispatch`
 * ignores other events with at most one string compare and never waits. A request's chunk buffer holds at
 * most its `chunk_count` chunks (each index is accepted once; the queue is ended after the last one), so
 * a slow consumer never blocks the dispatch pipeline and the buffer cannot grow past one answer.
 *
 * A race we cannot close from here: a frame already queued inside the shard when a RATE_LIMITED for its
 * guild arrives is still sent (the shard's queue cannot take it back). And when a session is lost while a
 * frame is being handed to the shard, it may have gone out on the lost session or the next one; the
 * request is then sent again (answers to both are deduplicated by chunk index).
 */
import { Cause, Clock, Duration, Effect, Latch, Queue, Random, Schema, type Scope, Stream } from "effect"
import type { Dispatch } from "./Dispatch.ts"
import type { GuildMembersChunkEvent } from "./protocol/Events.ts"
import { hasIntent, IntentBits } from "./protocol/Intents.ts"
import type { RequestGuildMembersData } from "./protocol/Payloads.ts"
import { isSnowflake } from "./protocol/Snowflake.ts"

/** Discord's minimum spacing of two all-members requests for one guild (PROTOCOL.md §3). */
export const AllMembersIntervalMs = 30_000

/** At most this many `user_ids` per op 8 (PROTOCOL.md §6.2). */
export const MaxUserIds = 100

/** A nonce may be at most this many bytes (PROTOCOL.md §6.2); ours are ASCII, so characters. */
export const MaxNonceBytes = 32

/** The default `timeout`: how long a sent request may go without a chunk. */
export const DefaultIdleTimeout: Duration.Input = "60 seconds"

/** What one request asks for: exactly one of `query` (with `limit`) / `userIds`. */
export interface MemberRequestOptions {
  readonly guildId: string
  /** Username prefix; `""` with `limit: 0` asks for every member (needs GUILD_MEMBERS; once per 30 s per guild). */
  readonly query?: string
  /** Required with `query`: the most members to return (0 only with `query: ""`, meaning all). */
  readonly limit?: number
  /** Specific members, 1–100 user ids. Unknown ids come back in the first chunk's `not_found`. */
  readonly userIds?: ReadonlyArray<string>
  /** Include presences (needs GUILD_PRESENCES). */
  readonly presences?: boolean
}

/** Why a member request failed. */
export const MemberRequestFailure = Schema.Literals([
  "InvalidRequest",
  "MissingIntent",
  "SessionLost",
  "Shutdown",
  "SendFailed",
  "Timeout"
])
export type MemberRequestFailure = typeof MemberRequestFailure.Type

/** A member request that was refused locally or could not complete. `detail` says what happened or what to fix. */
export class MemberRequestError extends Schema.TaggedError<MemberRequestError>()("MemberRequestError", {
  reason: MemberRequestFailure,
  guildId: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    const guild = `request guild members (op 8) for guild ${this.guildId}`
    switch (this.reason) {
      case "InvalidRequest":
        return `${guild} is invalid: ${this.detail}`
      case "MissingIntent":
        return `${guild} needs an intent the shards did not identify with: ${this.detail}`
      case "SessionLost":
        return `${guild} failed: ${this.detail}; its answer is lost, request again`
      case "Shutdown":
        return `${guild} failed: the member requests were shut down (the gateway is stopping)`
      case "SendFailed":
        return `${guild} could not be sent: ${this.detail}`
      case "Timeout":
        return `${guild} failed: ${this.detail}`
    }
  }
}

/** What `send` may fail with (any tagged error has a message; a `MemberRequestError` is passed through). */
export interface SendFailure {
  readonly message: string
}

export interface MemberRequestsDeps {
  /** Sends an op 8 command on the shard that owns the guild (the Gateway routes it); completes once written. */
  readonly send: (guildId: string, d: RequestGuildMembersData) => Effect.Effect<void, SendFailure>
  /** Which shard owns a guild (requests fail when that shard's session is lost). */
  readonly shardOf: (guildId: string) => number
  /** The intents the shards identified with (item 56). */
  readonly intents: number
  /** How long a sent request may go without a chunk before it fails with `Timeout`. Default 60 s. */
  readonly timeout?: Duration.Input | undefined
}

export interface MemberRequests {
  /**
   * The chunks answering one request, matched by nonce; ends after `chunk_count` chunks (indices in any
   * order). Fails with a `MemberRequestError`: at once when the request is invalid (nothing is sent), or
   * later when its shard's session is lost, the requests shut down, sending fails, or no chunk comes.
   * Each run of the stream is a new request.
   */
  readonly request: (options: MemberRequestOptions) => Stream.Stream<GuildMembersChunkEvent, MemberRequestError>
  /** Feed every dispatch here: GUILD_MEMBERS_CHUNK and RATE_LIMITED are used, others ignored. Never waits. */
  readonly onDispatch: (dispatch: Dispatch) => Effect.Effect<void>
  /** The shard's session was lost (reconnect, stop): its requests already sent fail with `SessionLost`. */
  readonly shardLost: (shardId: number, reason: string) => Effect.Effect<void>
  /** Fails every request with `Shutdown`, now and later. */
  readonly shutdown: Effect.Effect<void>
  /** Requests not finished yet (waiting, being sent, or waiting for chunks). */
  readonly inFlight: Effect.Effect<number>
}

// ---------------------------------------------------------------------------------------------------------------------
// Local validation (item 56)
// ---------------------------------------------------------------------------------------------------------------------

const refuse = (guildId: string, detail: string) =>
  new MemberRequestError({ reason: "InvalidRequest", guildId: String(guildId), detail })

const isAllMembers = (query: string | undefined, limit: number | undefined): boolean => query === "" && limit === 0

/**
 * Checks a request against PROTOCOL.md §6.2 and the intents, and builds its op 8 `d` (without the nonce).
 * Returns the error that says what to fix instead.
 */
export const validateRequest = (
  options: MemberRequestOptions,
  intents: number
): RequestGuildMembersData | MemberRequestError => {
  const { guildId, limit, presences, query, userIds } = options
  if (typeof guildId !== "string" || !isSnowflake(guildId)) {
    return refuse(
      String(guildId),
      `guildId must be one guild's id (a snowflake string such as "81384788765712384"), got ${JSON.stringify(guildId)}`
    )
  }
  const hasQuery = query !== undefined
  const hasIds = userIds !== undefined
  if (hasQuery && hasIds) return refuse(guildId, "set either query (with limit) or userIds, not both")
  if (!hasQuery && !hasIds) {
    return refuse(guildId, `set query with limit (query "" and limit 0 for every member) or userIds`)
  }
  if (presences !== undefined && typeof presences !== "boolean") {
    return refuse(guildId, "presences must be a boolean")
  }
  if (presences === true && !hasIntent(intents, IntentBits.GuildPresences)) {
    return new MemberRequestError({
      reason: "MissingIntent",
      guildId,
      detail: "presences: true needs the GUILD_PRESENCES intent (Intents.GuildPresences, privileged: enable it " +
        "in the Developer Portal) in the shards' intents; add it or leave presences out"
    })
  }
  const base = presences === undefined ? { guild_id: guildId } : { guild_id: guildId, presences }
  if (hasQuery) {
    if (typeof query !== "string") return refuse(guildId, "query must be a string (a username prefix)")
    if (limit === undefined) {
      return refuse(guildId, `limit is required with query: the most members to return (query "" with limit 0 for every member)`)
    }
    if (!Number.isSafeInteger(limit) || limit < 0) {
      return refuse(guildId, `limit must be a non-negative integer, got ${limit}`)
    }
    if (isAllMembers(query, limit) && !hasIntent(intents, IntentBits.GuildMembers)) {
      return new MemberRequestError({
        reason: "MissingIntent",
        guildId,
        detail: `an all-members request (query "", limit 0) needs the GUILD_MEMBERS intent (Intents.GuildMembers, ` +
          "privileged: enable it in the Developer Portal) in the shards' intents; add it, or ask by query prefix or userIds"
      })
    }
    return { ...base, query, limit }
  }
  if (limit !== undefined) return refuse(guildId, "limit applies to query requests only; remove it when asking by userIds")
  if (!Array.isArray(userIds) || userIds.length === 0) return refuse(guildId, "userIds must list at least one user id")
  if (userIds.length > MaxUserIds) {
    return refuse(guildId, `userIds lists ${userIds.length} users; at most ${MaxUserIds} per request: split it into several requests`)
  }
  for (let i = 0; i < userIds.length; i++) {
    const id: unknown = userIds[i]
    if (typeof id !== "string" || !isSnowflake(id)) {
      return refuse(guildId, `userIds[${i}] must be a user id (a snowflake string), got ${JSON.stringify(id)}`)
    }
  }
  return { ...base, user_ids: userIds.slice() }
}

// ---------------------------------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------------------------------

/** waiting: not sent, or to be sent again · sending: handed to `send` · sent: waiting for chunks. */
type Phase = "waiting" | "sending" | "sent"

interface Pending {
  readonly nonce: string
  readonly guildId: string
  readonly shardId: number
  readonly allMembers: boolean
  readonly data: RequestGuildMembersData
  readonly queue: Queue.Queue<GuildMembersChunkEvent, MemberRequestError | Cause.Done>
  /** Opened by RATE_LIMITED for this request: the sender goes back to the gate. */
  readonly wake: Latch.Latch
  phase: Phase
  done: boolean
  /** RATE_LIMITED came for the current attempt. */
  limited: boolean
  /** This request holds its guild's all-members slot. */
  holdsGate: boolean
  /** The shard's loss count when the current attempt was handed to `send`. */
  sendEpoch: number
  /** 0 until the first chunk. */
  chunkCount: number
  received: number
  seen: Uint8Array | undefined
  lastActivityAt: number
}

/** Per-guild send rules: the RATE_LIMITED block (item 43) and the all-members spacing (item 44). */
interface GuildGate {
  /** No op 8 for the guild before this time (ms). */
  blockedUntil: number
  /** When the last all-members request was sent (ms). */
  allMembersAt: number
  /** `allMembersAt` before the current all-members send, restored if that send fails. */
  previousAllMembersAt: number
  /** Set while an all-members send is under way; other all-members requests wait for it. */
  sending: Latch.Latch | undefined
}

/** Guards `chunk_count` against absurd values (a bitmap of this many bytes at most). */
const MaxChunkCount = 1 << 20

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null

/** Instances made by this process: part of the nonce prefix. */
let instances = 0

// ---------------------------------------------------------------------------------------------------------------------
// make
// ---------------------------------------------------------------------------------------------------------------------

/** Builds the member requests in the current Scope; closing it fails every request (`shutdown`). */
export const make = (deps: MemberRequestsDeps): Effect.Effect<MemberRequests, never, Scope.Scope> =>
  Effect.gen(function*() {
    const clock = yield* Clock.Clock
    const timeoutMs = Duration.toMillis(Duration.fromInputUnsafe(deps.timeout ?? DefaultIdleTimeout))
    const now = () => clock.currentTimeMillisUnsafe()

    // nonce = <6 random base-36 chars><instance>.<counter>: ASCII, ≤ 6 + 11 + 1 + 11 = 29 bytes (item 55)
    const random = yield* Random.nextIntBetween(0, 36 ** 6 - 1)
    const prefix = `${random.toString(36).padStart(6, "0")}${(instances++).toString(36)}.`
    let counter = 0
    const nextNonce = () => `${prefix}${(++counter).toString(36)}`

    const inflight = new Map<string, Pending>()
    const epochs = new Map<number, number>()
    const epochOf = (shardId: number) => epochs.get(shardId) ?? 0
    let closed = false

    // ---- guild gates ----
    const gates = new Map<string, GuildGate>()
    let sweepAtSize = 1024
    const sweep = () => {
      const t = now()
      for (const [id, gate] of gates) {
        if (gate.sending === undefined && gate.blockedUntil <= t && gate.allMembersAt + AllMembersIntervalMs <= t) {
          gates.delete(id)
        }
      }
      sweepAtSize = Math.max(1024, gates.size * 2)
    }
    const gateFor = (guildId: string): GuildGate => {
      let gate = gates.get(guildId)
      if (gate === undefined) {
        if (gates.size >= sweepAtSize) sweep()
        gate = { blockedUntil: 0, allMembersAt: -Infinity, previousAllMembersAt: -Infinity, sending: undefined }
        gates.set(guildId, gate)
      }
      return gate
    }

    /** Waits until the guild's rules allow this request to be sent; an all-members request takes the slot. */
    const acquireGate = (req: Pending): Effect.Effect<void> =>
      Effect.suspend(function loop(): Effect.Effect<void> {
        if (req.done) return Effect.void
        const gate = gateFor(req.guildId)
        if (req.allMembers && gate.sending !== undefined) return Effect.andThen(gate.sending.await, Effect.suspend(loop))
        const t = now()
        const earliest = req.allMembers
          ? Math.max(gate.blockedUntil, gate.allMembersAt + AllMembersIntervalMs)
          : gate.blockedUntil
        if (earliest > t) return Effect.andThen(clock.sleep(Duration.millis(earliest - t)), Effect.suspend(loop))
        if (req.allMembers) {
          gate.sending = Latch.makeUnsafe(false)
          gate.previousAllMembersAt = gate.allMembersAt
          gate.allMembersAt = t
          req.holdsGate = true
        }
        return Effect.void
      })

    /** Gives the all-members slot back; `written`: the frame went out (or may still go out). */
    const releaseGate = (req: Pending, written: boolean) => {
      if (!req.holdsGate) return
      req.holdsGate = false
      const gate = gateFor(req.guildId)
      gate.allMembersAt = written ? Math.max(gate.allMembersAt, now()) : gate.previousAllMembersAt
      const sending = gate.sending
      gate.sending = undefined
      sending?.openUnsafe()
    }

    // ---- ending a request ----
    const finish = (req: Pending, error: MemberRequestError | undefined) => {
      if (req.done) return
      req.done = true
      if (inflight.get(req.nonce) === req) inflight.delete(req.nonce)
      if (error === undefined) Queue.endUnsafe(req.queue)
      else Queue.failCauseUnsafe(req.queue, Cause.fail(error))
      req.wake.openUnsafe()
    }

    const lostError = (req: Pending, detail: string) =>
      new MemberRequestError({ reason: "SessionLost", guildId: req.guildId, detail })

    const toSendError = (req: Pending, error: SendFailure): MemberRequestError =>
      error instanceof MemberRequestError
        ? error
        : new MemberRequestError({ reason: "SendFailed", guildId: req.guildId, detail: error.message })

    // ---- one request's fiber ----
    /** One attempt: pass the gate, hand the frame to `send`. False when the request ended meanwhile. */
    const sendOnce = (req: Pending): Effect.Effect<boolean, MemberRequestError> =>
      acquireGate(req).pipe(
        Effect.andThen(Effect.suspend(() => {
          if (req.done) return Effect.succeed(false)
          req.limited = false
          req.wake.closeUnsafe()
          req.phase = "sending"
          req.sendEpoch = epochOf(req.shardId)
          return Effect.as(deps.send(req.guildId, req.data), true)
        })),
        Effect.mapError((error) => toSendError(req, error)),
        Effect.onExit((exit) =>
          Effect.sync(() => releaseGate(req, req.phase === "sending" && !(exit._tag === "Failure" && Cause.hasFails(exit.cause))))
        )
      )

    /** Fails the request when no chunk came for `timeout` since it was sent or since the last chunk. */
    const idleTimer = (req: Pending): Effect.Effect<void> =>
      Effect.suspend(function loop(): Effect.Effect<void> {
        if (req.done) return Effect.void
        const due = req.lastActivityAt + timeoutMs
        const t = now()
        if (t >= due) {
          finish(
            req,
            new MemberRequestError({
              reason: "Timeout",
              guildId: req.guildId,
              detail: `no GUILD_MEMBERS_CHUNK for ${timeoutMs} ms after sending (${req.received} of ` +
                `${req.chunkCount === 0 ? "?" : req.chunkCount} chunks in); Discord does not answer for a guild ` +
                "the shard does not hold — check the guild id and the shard routing"
            })
          )
          return Effect.void
        }
        return Effect.andThen(clock.sleep(Duration.millis(due - t)), Effect.suspend(loop))
      })

    const run = (req: Pending): Effect.Effect<void> =>
      Effect.gen(function*() {
        while (!req.done) {
          const sent = yield* sendOnce(req)
          if (!sent || req.done) return
          if (req.limited || epochOf(req.shardId) !== req.sendEpoch) {
            // rate limited, or the session was lost while the frame was handed over: send it again
            req.phase = "waiting"
            continue
          }
          req.phase = "sent"
          req.lastActivityAt = now()
          yield* Effect.raceFirst(req.wake.await, idleTimer(req))
        }
      }).pipe(Effect.catch((error) => Effect.sync(() => finish(req, error))))

    // ---- dispatches ----
    const onChunk = (d: unknown) => {
      if (!isRecord(d)) return
      const nonce = d.nonce
      if (typeof nonce !== "string") return
      const req = inflight.get(nonce)
      if (req === undefined || req.done || d.guild_id !== req.guildId) return
      const index = d.chunk_index
      const count = d.chunk_count
      if (
        typeof index !== "number" || typeof count !== "number" || !Number.isInteger(index) ||
        !Number.isInteger(count) || index < 0 || index >= count || count > MaxChunkCount || !Array.isArray(d.members)
      ) return
      if (req.seen === undefined) {
        req.seen = new Uint8Array(count)
        req.chunkCount = count
      } else if (count !== req.chunkCount) {
        return // the answer to another attempt of this request, with another split: the first one wins
      }
      if (req.seen[index] === 1) return
      req.seen[index] = 1
      req.received++
      req.lastActivityAt = now()
      Queue.offerUnsafe(req.queue, d as unknown as GuildMembersChunkEvent)
      if (req.received === req.chunkCount) finish(req, undefined)
    }

    const onRateLimited = (d: unknown) => {
      if (!isRecord(d) || d.opcode !== 8) return
      const retryAfter = d.retry_after
      if (typeof retryAfter !== "number" || !Number.isFinite(retryAfter) || retryAfter < 0) return
      const meta = isRecord(d.meta) ? d.meta : undefined
      const nonce = meta?.nonce
      const req = typeof nonce === "string" ? inflight.get(nonce) : undefined
      const guildId = typeof meta?.guild_id === "string" ? meta.guild_id : req?.guildId
      if (guildId === undefined) return
      const until = now() + Math.ceil(retryAfter * 1000)
      const gate = gateFor(guildId)
      if (until > gate.blockedUntil) gate.blockedUntil = until
      if (req !== undefined && !req.done && req.guildId === guildId) {
        req.limited = true
        req.phase = "waiting"
        req.wake.openUnsafe()
      }
    }

    const shutdownError = (guildId: string) =>
      new MemberRequestError({ reason: "Shutdown", guildId, detail: "shut down" })

    const shutdown = Effect.sync(() => {
      closed = true
      for (const req of inflight.values()) finish(req, shutdownError(req.guildId))
    })
    yield* Effect.addFinalizer(() => shutdown)

    const requests: MemberRequests = {
      request: (options) =>
        Stream.callback<GuildMembersChunkEvent, MemberRequestError>((queue) =>
          Effect.gen(function*() {
            if (closed) return yield* shutdownError(String(options.guildId))
            const data = validateRequest(options, deps.intents)
            if (data instanceof MemberRequestError) return yield* data
            const nonce = nextNonce()
            const req: Pending = {
              nonce,
              guildId: options.guildId,
              shardId: deps.shardOf(options.guildId),
              allMembers: isAllMembers(options.query, options.limit),
              data: { ...data, nonce },
              queue,
              wake: Latch.makeUnsafe(false),
              phase: "waiting",
              done: false,
              limited: false,
              holdsGate: false,
              sendEpoch: 0,
              chunkCount: 0,
              received: 0,
              seen: undefined,
              lastActivityAt: 0
            }
            inflight.set(nonce, req)
            yield* Effect.addFinalizer(() =>
              Effect.sync(() => {
                req.done = true
                releaseGate(req, req.phase === "sending")
                if (inflight.get(nonce) === req) inflight.delete(nonce)
              })
            )
            yield* run(req)
          })
        ),
      onDispatch: (dispatch) => {
        const name = dispatch.name
        // "GUILD_MEMBERS_CHUNK" has 19 characters, "RATE_LIMITED" 12: other events cost a length check or one compare
        if (name.length === 19) {
          if (name === "GUILD_MEMBERS_CHUNK" && inflight.size > 0) {
            const data = dispatch.data
            return Effect.sync(() => onChunk(data))
          }
        } else if (name.length === 12 && name === "RATE_LIMITED") {
          const data = dispatch.data
          return Effect.sync(() => onRateLimited(data))
        }
        return Effect.void
      },
      shardLost: (shardId, reason) =>
        Effect.sync(() => {
          epochs.set(shardId, epochOf(shardId) + 1)
          for (const req of inflight.values()) {
            if (req.shardId === shardId && req.phase === "sent") {
              finish(req, lostError(req, `shard ${shardId}'s session was lost (${reason}) before every chunk arrived`))
            }
          }
        }),
      shutdown,
      inFlight: Effect.sync(() => inflight.size)
    }
    return requests
  })
