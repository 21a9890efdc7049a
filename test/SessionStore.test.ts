/**
 * Tests of the session store (PROTOCOL.md §1.6–1.7 what RESUME needs; §4 the shard count is part of the
 * key). The same behaviour is checked on both layers; the file layer is also checked for restarts,
 * atomic replacement and corrupt or foreign files. File tests use a temporary directory under
 * os.tmpdir() that the test's Scope removes.
 */
import { NodeFileSystem } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { join } from "node:path"
import type { PlatformError, Scope } from "effect"
import { Effect, FileSystem, Layer, Option, Result } from "effect"
import { SessionStoreError } from "../src/Errors.ts"
import type { StoredSession } from "../src/SessionStore.ts"
import { SessionStore, sessionKeyString } from "../src/SessionStore.ts"

const a: StoredSession = { sessionId: "a1b2c3", sequence: 42, resumeUrl: "wss://gateway-us-east1-b.discord.gg" }
const b: StoredSession = { sessionId: "d4e5f6", sequence: null, resumeUrl: "wss://gateway-us-east1-c.discord.gg" }
const k3of16 = { shardId: 3, shardCount: 16 }
const k3of32 = { shardId: 3, shardCount: 32 }

/** A temporary directory removed when the test's Scope closes. */
const tempDir = Effect.flatMap(FileSystem.FileSystem, (fs) => fs.makeTempDirectoryScoped({ prefix: "session-store-" }))

/** Runs `f` with a store from `layer` (built for this call only). */
const withStore = <A, E>(layer: Layer.Layer<SessionStore>, f: (store: SessionStore["Service"]) => Effect.Effect<A, E>) =>
  Effect.flatMap(SessionStore, f).pipe(Effect.provide(layer))

const expectStoreError = <A>(effect: Effect.Effect<A, SessionStoreError>, operation: string, key: string) =>
  Effect.gen(function*() {
    const result = yield* Effect.result(effect)
    expect(Result.isFailure(result)).toBe(true)
    if (Result.isFailure(result)) {
      expect(result.failure).toBeInstanceOf(SessionStoreError)
      expect(result.failure.operation).toBe(operation)
      expect(result.failure.key).toBe(key)
      return result.failure
    }
    throw new Error("unreachable")
  })

describe("SessionStore", () => {
  it("sessionKeyString names shard and count", () => {
    expect(sessionKeyString(k3of16)).toBe("shard-3-of-16")
    expect(sessionKeyString({ shardId: 0, shardCount: 1 })).toBe("shard-0-of-1")
  })

  /** The contract, on whichever layer `makeLayer` gives. */
  const contract = (
    name: string,
    makeLayer: Effect.Effect<Layer.Layer<SessionStore>, PlatformError.PlatformError, FileSystem.FileSystem | Scope.Scope>
  ) => {
    describe(name, () => {
      it.effect("round-trips a session; get of an unknown key is none; remove forgets", () =>
        Effect.gen(function*() {
          const layer = yield* makeLayer
          yield* withStore(layer, (store) =>
            Effect.gen(function*() {
              expect(yield* store.get(k3of16)).toEqual(Option.none())
              yield* store.set(k3of16, a)
              expect(yield* store.get(k3of16)).toEqual(Option.some(a))
              yield* store.set(k3of16, b) // replaces
              expect(yield* store.get(k3of16)).toEqual(Option.some(b))
              yield* store.remove(k3of16)
              expect(yield* store.get(k3of16)).toEqual(Option.none())
              yield* store.remove(k3of16) // removing nothing is fine
            }))
        }).pipe(Effect.provide(NodeFileSystem.layer)))

      it.effect("the key includes the shard count: 3/16 and 3/32 are separate sessions", () =>
        Effect.gen(function*() {
          const layer = yield* makeLayer
          yield* withStore(layer, (store) =>
            Effect.gen(function*() {
              yield* store.set(k3of16, a)
              expect(yield* store.get(k3of32)).toEqual(Option.none())
              yield* store.set(k3of32, b)
              expect(yield* store.get(k3of16)).toEqual(Option.some(a))
              expect(yield* store.get(k3of32)).toEqual(Option.some(b))
              yield* store.remove(k3of32)
              expect(yield* store.get(k3of16)).toEqual(Option.some(a))
            }))
        }).pipe(Effect.provide(NodeFileSystem.layer)))

      it.effect("rejects invalid keys and invalid sessions with SessionStoreError", () =>
        Effect.gen(function*() {
          const layer = yield* makeLayer
          yield* withStore(layer, (store) =>
            Effect.gen(function*() {
              yield* expectStoreError(store.get({ shardId: 16, shardCount: 16 }), "get", "shard-16-of-16")
              yield* expectStoreError(store.set({ shardId: -1, shardCount: 4 }, a), "set", "shard--1-of-4")
              yield* expectStoreError(store.remove({ shardId: 1.5, shardCount: 4 }), "remove", "shard-1.5-of-4")
              yield* expectStoreError(store.get({ shardId: 0, shardCount: 2.5 }), "get", "shard-0-of-2.5")
              yield* expectStoreError(store.set(k3of16, { ...a, sequence: 1.5 }), "set", "shard-3-of-16")
              yield* expectStoreError(store.set(k3of16, { ...a, sessionId: "" }), "set", "shard-3-of-16")
              yield* expectStoreError(store.set(k3of16, { ...a, sequence: -1 }), "set", "shard-3-of-16")
              yield* expectStoreError(store.set(k3of16, { ...a, resumeUrl: "" }), "set", "shard-3-of-16")
              expect(yield* store.get(k3of16)).toEqual(Option.none())
            }))
        }).pipe(Effect.provide(NodeFileSystem.layer)))

      it.effect("stores a copy of what the schema knows: extra fields are dropped, later changes to the caller's object do not reach it", () =>
        Effect.gen(function*() {
          const layer = yield* makeLayer
          yield* withStore(layer, (store) =>
            Effect.gen(function*() {
              const given = { ...a, extra: "not part of a session" }
              yield* store.set(k3of16, given)
              given.sequence = 99
              expect(yield* store.get(k3of16)).toEqual(Option.some(a))
            }))
        }).pipe(Effect.provide(NodeFileSystem.layer)))
    })
  }

  contract("layerMemory", Effect.succeed(SessionStore.layerMemory))
  contract("layerFile", Effect.map(tempDir, (dir) => SessionStore.layerFile(dir)))

  describe("layerFile", () => {
    it.effect("keeps one JSON file per key, and sessions survive a new layer over the same directory", () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const dir = yield* tempDir
        yield* withStore(SessionStore.layerFile(dir), (store) =>
          Effect.andThen(store.set(k3of16, a), store.set(k3of32, b)))
        expect((yield* fs.readDirectory(dir)).sort()).toEqual(["shard-3-of-16.json", "shard-3-of-32.json"])
        const onDisk = JSON.parse(yield* fs.readFileString(join(dir, "shard-3-of-16.json")))
        expect(onDisk).toEqual({ format: "effect-discord-gateway/session@1", shardId: 3, shardCount: 16, session: a })
        // a "restarted process": a second, separately built layer reads what the first wrote
        const [again16, again32] = yield* withStore(SessionStore.layerFile(dir), (store) =>
          Effect.all([store.get(k3of16), store.get(k3of32)]))
        expect(again16).toEqual(Option.some(a))
        expect(again32).toEqual(Option.some(b))
      }).pipe(Effect.provide(NodeFileSystem.layer)))

    it.effect("creates a missing directory", () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const dir = join(yield* tempDir, "state", "sessions")
        yield* withStore(SessionStore.layerFile(dir), (store) => store.set(k3of16, a))
        expect(yield* fs.readDirectory(dir)).toEqual(["shard-3-of-16.json"])
      }).pipe(Effect.provide(NodeFileSystem.layer)))

    it.effect("a directory removed after the store was built is created again by the next set", () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const dir = join(yield* tempDir, "sessions")
        yield* withStore(SessionStore.layerFile(dir), (store) =>
          Effect.gen(function*() {
            yield* fs.remove(dir, { recursive: true })
            yield* store.set(k3of16, a)
            expect(yield* store.get(k3of16)).toEqual(Option.some(a))
          }))
      }).pipe(Effect.provide(NodeFileSystem.layer)))

    it.effect("writes atomically: a pre-existing target is replaced whole and no temp file is left behind", () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const dir = yield* tempDir
        const target = join(dir, "shard-3-of-16.json")
        yield* fs.writeFileString(target, "x".repeat(10_000)) // longer than any session file
        yield* withStore(SessionStore.layerFile(dir), (store) =>
          Effect.gen(function*() {
            yield* store.set(k3of16, a)
            expect(JSON.parse(yield* fs.readFileString(target)).session).toEqual(a)
            // many concurrent writers of one key: the file is always one of them, whole
            const sessions = Array.from({ length: 20 }, (_, i) => ({ ...a, sequence: i }))
            yield* Effect.forEach(sessions, (s) => store.set(k3of16, s), { concurrency: "unbounded", discard: true })
            const last = yield* store.get(k3of16)
            expect(Option.isSome(last) && sessions.some((s) => s.sequence === last.value.sequence)).toBe(true)
          }))
        expect(yield* fs.readDirectory(dir)).toEqual(["shard-3-of-16.json"])
      }).pipe(Effect.provide(NodeFileSystem.layer)))

    it.effect("a write that fails leaves no temp file behind", () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const dir = yield* tempDir
        yield* fs.makeDirectory(join(dir, "shard-3-of-16.json")) // the rename onto it fails
        yield* withStore(SessionStore.layerFile(dir), (store) =>
          expectStoreError(store.set(k3of16, a), "set", "shard-3-of-16"))
        expect(yield* fs.readDirectory(dir)).toEqual(["shard-3-of-16.json"])
      }).pipe(Effect.provide(NodeFileSystem.layer)))

    it.effect("a remove that fails is a SessionStoreError naming remove and the key", () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const dir = yield* tempDir
        yield* fs.makeDirectory(join(dir, "shard-3-of-16.json")) // not a file: removing it fails
        yield* withStore(SessionStore.layerFile(dir), (store) =>
          expectStoreError(store.remove(k3of16), "remove", "shard-3-of-16"))
      }).pipe(Effect.provide(NodeFileSystem.layer)))

    it.effect("a corrupt file fails get with SessionStoreError; the next set replaces it", () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const dir = yield* tempDir
        const target = join(dir, "shard-3-of-16.json")
        yield* withStore(SessionStore.layerFile(dir), (store) =>
          Effect.gen(function*() {
            yield* fs.writeFileString(target, "{\"format\":\"effect-discord-gateway/session@1\",\"shard") // truncated
            const truncated = yield* expectStoreError(store.get(k3of16), "get", "shard-3-of-16")
            expect(truncated.detail).toContain("corrupt session file")
            yield* fs.writeFileString(
              target,
              JSON.stringify({ format: "effect-discord-gateway/session@1", shardId: 3, shardCount: 16, session: { ...a, sequence: "42" } })
            )
            yield* expectStoreError(store.get(k3of16), "get", "shard-3-of-16")
            yield* fs.writeFileString(target, JSON.stringify({ sessionId: "x", sequence: 1, resumeUrl: "wss://y" })) // no format
            yield* expectStoreError(store.get(k3of16), "get", "shard-3-of-16")
            yield* store.set(k3of16, b)
            expect(yield* store.get(k3of16)).toEqual(Option.some(b))
          }))
      }).pipe(Effect.provide(NodeFileSystem.layer)))

    it.effect("a file copied to another key (another shard count or shard id) is refused, never resumed", () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const dir = yield* tempDir
        yield* withStore(SessionStore.layerFile(dir), (store) =>
          Effect.gen(function*() {
            yield* store.set(k3of16, a)
            yield* fs.copyFile(join(dir, "shard-3-of-16.json"), join(dir, "shard-3-of-32.json"))
            const foreign = yield* expectStoreError(store.get(k3of32), "get", "shard-3-of-32")
            expect(foreign.detail).toContain("belongs to shard-3-of-16")
            expect(yield* store.get(k3of16)).toEqual(Option.some(a))
            // and to another shard id of the same count
            yield* fs.copyFile(join(dir, "shard-3-of-16.json"), join(dir, "shard-4-of-16.json"))
            const otherShard = yield* expectStoreError(store.get({ shardId: 4, shardCount: 16 }), "get", "shard-4-of-16")
            expect(otherShard.detail).toContain("belongs to shard-3-of-16")
          }))
      }).pipe(Effect.provide(NodeFileSystem.layer)))

    it.effect("a directory that cannot be created fails set with SessionStoreError", () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const dir = yield* tempDir
        const blocker = join(dir, "not-a-directory")
        yield* fs.writeFileString(blocker, "")
        yield* withStore(SessionStore.layerFile(join(blocker, "sessions")), (store) =>
          Effect.gen(function*() {
            yield* expectStoreError(store.set(k3of16, a), "set", "shard-3-of-16")
            yield* expectStoreError(store.get(k3of16), "get", "shard-3-of-16") // ENOTDIR, not "absent"
          }))
        expect(yield* fs.readDirectory(dir)).toEqual(["not-a-directory"])
      }).pipe(Effect.provide(NodeFileSystem.layer)))
  })
})
