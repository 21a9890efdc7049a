/**
 * SessionStore: where a shard keeps what it needs to RESUME (PROTOCOL.md §1.6–1.7: `session_id`,
 * `resume_gateway_url` and the last sequence), so that a restarted process, or the machine that takes
 * a shard over, can resume instead of spending an IDENTIFY.
 *
 * Sessions are keyed by shard id **and** shard count (§4): a shard started with another count is
 * another session and must never resume this one, so `shard-3-of-16` and `shard-3-of-32` are separate
 * keys. Every session read back is validated with the `StoredSession` schema.
 *
 * Layers:
 * - `layerMemory`: a map in this process (tests, single-process bots that only need in-process resume).
 * - `layerFile(directory)`: one JSON file per key (`shard-3-of-16.json`) in `directory`, created if
 *   missing. A write goes to a fresh temporary file in the same directory, is flushed to disk, then
 *   renamed over the target: a reader (or a crash) sees the old file or the new one, never a mix. The
 *   file also records its own shard id and count, so a file copied or renamed to another key is
 *   detected.
 *
 * A file that cannot be parsed, fails the schema, or belongs to another key fails `get` with
 * `SessionStoreError`; it is not silently treated as absent. Atomic writes mean the store never
 * produces such a file itself, so one points at something worth seeing (another program writing the
 * directory, a format from another version, a damaged disk). Calling `get` and deciding is the shard's
 * job: the safe reaction is to log the error and IDENTIFY, and the next `set` replaces the bad file
 * whole. A missing file is simply `Option.none()`.
 */
import { NodeFileSystem } from "@effect/platform-node"
import { join } from "node:path"
import type { PlatformError } from "effect"
import { Context, Effect, FileSystem, Layer, Option, Schema } from "effect"
import { SessionStoreError } from "./Errors.ts"

/** Which session: a shard of a given shard count. */
export interface SessionKey {
  readonly shardId: number
  readonly shardCount: number
}

/** What RESUME needs (PROTOCOL.md §1.7). `sequence` is null until the first dispatch of the session. */
export const StoredSession = Schema.Struct({
  sessionId: Schema.NonEmptyString,
  sequence: Schema.NullOr(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))),
  resumeUrl: Schema.NonEmptyString
})
export type StoredSession = typeof StoredSession.Type

/** The stable name of a key, e.g. `"shard-3-of-16"` (also the file name, without `.json`). */
export const sessionKeyString = (key: SessionKey): string => `shard-${key.shardId}-of-${key.shardCount}`

/** The operations of a session store, whatever backs it. */
export interface SessionStoreService {
  /** The stored session of this key, or none. */
  readonly get: (key: SessionKey) => Effect.Effect<Option.Option<StoredSession>, SessionStoreError>
  /** Stores (replaces) the session of this key. */
  readonly set: (key: SessionKey, session: StoredSession) => Effect.Effect<void, SessionStoreError>
  /** Forgets the session of this key (nothing happens if there is none). */
  readonly remove: (key: SessionKey) => Effect.Effect<void, SessionStoreError>
}

export class SessionStore extends Context.Service<SessionStore, SessionStoreService>()(
  "effect-discord-gateway/SessionStore"
) {
  /** Builds an in-memory store. */
  static readonly makeMemory: Effect.Effect<SessionStoreService> = Effect.sync(() => makeMemoryUnsafe())

  /** Builds a file store over any `FileSystem` (see `layerFile` for the Node one). */
  static readonly makeFile = (directory: string): Effect.Effect<SessionStoreService, never, FileSystem.FileSystem> =>
    makeFile(directory)

  /** Sessions in a map of this process. */
  static readonly layerMemory: Layer.Layer<SessionStore> = Layer.effect(SessionStore, SessionStore.makeMemory)

  /** Sessions as JSON files in `directory` (created if missing), on Node's file system. */
  static readonly layerFile = (directory: string): Layer.Layer<SessionStore> =>
    Layer.effect(SessionStore, makeFile(directory)).pipe(Layer.provide(NodeFileSystem.layer))
}

type Operation = SessionStoreError["operation"]

const storeError = (operation: Operation, key: SessionKey, detail: string) =>
  new SessionStoreError({ operation, key: sessionKeyString(key), detail })

/** A key must name a real shard: integers with 0 ≤ shardId < shardCount. */
const checkKey = (operation: Operation, key: SessionKey): Effect.Effect<void, SessionStoreError> =>
  Number.isInteger(key.shardId) && Number.isInteger(key.shardCount) && key.shardId >= 0 && key.shardId < key.shardCount
    ? Effect.void
    : Effect.fail(storeError(operation, key, "invalid key: shard id and count must be integers with 0 ≤ id < count"))

const decodeSession = Schema.decodeUnknownEffect(StoredSession)

/** Validates (and copies) a session given to `set`. */
const checkSession = (key: SessionKey, session: StoredSession) =>
  decodeSession(session).pipe(
    Effect.mapError((error) => storeError("set", key, `invalid session: ${error.message}`))
  )

const makeMemoryUnsafe = (): SessionStoreService => {
  const sessions = new Map<string, StoredSession>()
  return {
    get: (key) =>
      Effect.andThen(checkKey("get", key), Effect.sync(() => Option.fromUndefinedOr(sessions.get(sessionKeyString(key))))),
    set: (key, session) =>
      checkKey("set", key).pipe(
        Effect.andThen(checkSession(key, session)),
        Effect.map((valid) => {
          sessions.set(sessionKeyString(key), valid)
        })
      ),
    remove: (key) =>
      Effect.andThen(checkKey("remove", key), Effect.sync(() => {
        sessions.delete(sessionKeyString(key))
      }))
  }
}

/** The content of a session file. `format` names this layout, so another version's file is recognised. */
const SessionFile = Schema.Struct({
  format: Schema.Literal("effect-discord-gateway/session@1"),
  shardId: Schema.Int,
  shardCount: Schema.Int,
  session: StoredSession
})
const decodeSessionFile = Schema.decodeUnknownEffect(Schema.fromJsonString(SessionFile))

const isNotFound = (error: PlatformError.PlatformError): boolean => error.reason._tag === "NotFound"

const makeFile = (directory: string): Effect.Effect<SessionStoreService, never, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    // Best effort now; `set` creates it again if needed and reports the failure there.
    yield* Effect.ignore(fs.makeDirectory(directory, { recursive: true }))

    const fileOf = (key: SessionKey) => join(directory, `${sessionKeyString(key)}.json`)
    const platformError = (operation: Operation, key: SessionKey) => (error: PlatformError.PlatformError) =>
      storeError(operation, key, error.message)

    const read = (key: SessionKey): Effect.Effect<Option.Option<string>, SessionStoreError> =>
      fs.readFileString(fileOf(key)).pipe(
        Effect.asSome,
        Effect.catchTag("PlatformError", (error) =>
          isNotFound(error) ? Effect.succeedNone : Effect.fail(platformError("get", key)(error)))
      )

    const parse = (key: SessionKey, text: string): Effect.Effect<StoredSession, SessionStoreError> =>
      decodeSessionFile(text).pipe(
        Effect.mapError((error) => storeError("get", key, `corrupt session file ${fileOf(key)}: ${error.message}`)),
        Effect.flatMap((file) =>
          file.shardId === key.shardId && file.shardCount === key.shardCount
            ? Effect.succeed(file.session)
            : Effect.fail(storeError(
              "get",
              key,
              `session file ${fileOf(key)} belongs to ${sessionKeyString(file)}, not to this key`
            ))
        )
      )

    const get = (key: SessionKey): Effect.Effect<Option.Option<StoredSession>, SessionStoreError> =>
      Effect.gen(function*() {
        yield* checkKey("get", key)
        const text = yield* read(key)
        if (Option.isNone(text)) return Option.none()
        return Option.some(yield* parse(key, text.value))
      })

    /** Writes `content` to the key's file atomically: temp file in the same directory, flush, rename. */
    const writeAtomically = (key: SessionKey, content: string): Effect.Effect<void, PlatformError.PlatformError> => {
      const target = fileOf(key)
      const temp = join(directory, `.${sessionKeyString(key)}.${globalThis.crypto.randomUUID()}.tmp`)
      const writeTemp = Effect.scoped(Effect.gen(function*() {
        const file = yield* fs.open(temp, { flag: "wx" })
        yield* file.writeAll(new TextEncoder().encode(content))
        yield* file.sync
      }))
      return fs.makeDirectory(directory, { recursive: true }).pipe(
        Effect.andThen(writeTemp),
        Effect.andThen(fs.rename(temp, target)),
        Effect.onError(() => Effect.ignore(fs.remove(temp, { force: true })))
      )
    }

    const set = (key: SessionKey, session: StoredSession): Effect.Effect<void, SessionStoreError> =>
      checkKey("set", key).pipe(
        Effect.andThen(checkSession(key, session)),
        Effect.flatMap((valid) =>
          writeAtomically(
            key,
            JSON.stringify(
              {
                format: "effect-discord-gateway/session@1",
                shardId: key.shardId,
                shardCount: key.shardCount,
                session: valid
              } satisfies typeof SessionFile.Type,
              null,
              2
            ) + "\n"
          ).pipe(Effect.mapError(platformError("set", key)))
        )
      )

    const remove = (key: SessionKey): Effect.Effect<void, SessionStoreError> =>
      checkKey("remove", key).pipe(
        Effect.andThen(fs.remove(fileOf(key), { force: true })),
        Effect.mapError((error) => error._tag === "SessionStoreError" ? error : platformError("remove", key)(error))
      )

    return { get, set, remove }
  })
