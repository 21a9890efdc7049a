/**
 * A real `Shard` over the real `NodeTransport` against the simulator socket server, once per transport
 * compression (PROTOCOL.md §1.4–1.7 lifecycle, §5.4–5.5 compression, §9): IDENTIFY → READY → dispatches
 * (≥ 60 messages in one compressed stream, item 46; every zlib message split over two WebSocket messages
 * in the split run, item 46) → a drop through the HTTP control endpoint → reconnect to the resume URL with
 * a fresh decompression context (items 20, 23, 48) → RESUME with the last seq (item 21) → the missed
 * dispatches replayed exactly once → `stop()` closes with 1000 (item 38). Also over real sockets: op 7 and
 * a zombie connection close with 4000 on the wire (items 9, 22), and a resume URL refusing the upgrade
 * sends the next attempt to the base URL (item 28).
 *
 * `it.live` with a 500 ms heartbeat: real sockets, real time, but no sleeps — every wait is on the
 * shard's `changes`, the DispatchSink stream or a socket close, bounded by a timeout. The "missed"
 * dispatches are made deterministic with the control endpoint: the connection is withheld (the simulator
 * buffers but sends nothing), the dispatches are emitted, then the connection is dropped.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Queue, Redacted, Schedule, Stream } from "effect"
import type { Dispatch } from "../../src/Dispatch.ts"
import { DispatchSink } from "../../src/DispatchSink.ts"
import { IdentifyRateLimiter } from "../../src/IdentifyRateLimiter.ts"
import { Intents } from "../../src/protocol/Intents.ts"
import { SessionStore } from "../../src/SessionStore.ts"
import * as Shard from "../../src/Shard.ts"
import type { ShardState } from "../../src/ShardState.ts"
import * as SimulatorSocketServer from "../../src/testing/SimulatorSocketServer.ts"
import { gatewayUrl } from "../../src/transport/GatewayUrl.ts"
import type { Compression } from "../../src/transport/GatewayUrl.ts"
import * as NodeTransport from "../../src/transport/NodeTransport.ts"

const Token = "ws-shard-token.NEVER-SHOWN.42"
const Guild = "81384788765712384"
const Bound = "10 seconds"
const LiveMessages = 60
const MissedMessages = 5
const AfterDropMessages = 5
const AfterResumeMessages = 5

const Services = Layer.mergeAll(
  NodeTransport.layer,
  IdentifyRateLimiter.layerMemory({ maxConcurrency: 1 }),
  SessionStore.layerMemory,
  DispatchSink.layer()
)

/** The simulator socket server in the test's Scope: a 500 ms heartbeat, one guild. */
const startServer = (options: Partial<SimulatorSocketServer.SimulatorSocketServerOptions> = {}) =>
  SimulatorSocketServer.make({ token: Token, heartbeatIntervalMs: 500, guilds: [Guild], ...options })

/** Waits (bounded) for the first state matching `predicate`; `changes` emits the current state first. */
const awaitState = (shard: Shard.Shard, predicate: (state: ShardState) => boolean) =>
  shard.changes.pipe(Stream.filter(predicate), Stream.runHead, Effect.timeout(Bound))

/** Shard 0 of 1 over NodeTransport against `server`, once it is ready. */
const readyShard = (server: SimulatorSocketServer.SimulatorSocketServer, compression: Compression) =>
  Effect.gen(function*() {
    const shard = yield* Shard.make({
      token: Redacted.make(Token),
      shardId: 0,
      shardCount: 1,
      intents: Intents.Guilds | Intents.GuildMessages,
      gatewayUrl: server.gatewayUrl,
      compression,
      // a failed connection is retried quickly (the default waits ≥ 1 s)
      reconnectSchedule: Schedule.spaced("20 millis")
    })
    yield* awaitState(shard, (s) => s.phase === "ready")
    return shard
  })

const post = (url: string, body?: string) =>
  Effect.promise(async () => (await fetch(url, body === undefined ? { method: "POST" } : { method: "POST", body })).status)
    .pipe(Effect.timeout(Bound))

const message = (id: string) => ({ guild_id: Guild, channel_id: "1", id, content: `message ${id} — ✓ ${"x".repeat(40)}` })

const scenarios: ReadonlyArray<{ readonly compression: Compression; readonly split: boolean }> = [
  { compression: "none", split: false },
  { compression: "zlib-stream", split: false },
  { compression: "zlib-stream", split: true },
  { compression: "zstd-stream", split: false }
]

describe("Shard over WebSocket (NodeTransport ↔ SimulatorSocketServer)", () => {
  for (const { compression, split } of scenarios) {
    const name = `${compression}${split ? ", every message split over two WS messages" : ""}`
    it.live(
      `${name}: READY, ${LiveMessages} dispatches, drop → RESUME at the resume URL (fresh context), missed dispatches once, stop 1000 (items 20, 21, 23, 38, 46, 48)`,
      () =>
        Effect.gen(function*() {
          const server = yield* startServer({ splitCompressedFrames: split })
          const sim = server.controls
          const sink = yield* DispatchSink
          const received = yield* Queue.unbounded<Dispatch>()
          yield* Effect.forkScoped(Stream.runForEach(yield* sink.subscription(), (d) => Queue.offer(received, d)))
          /** Takes dispatches until one named `last` arrived (bounded), returning them all. */
          const takeUntil = (last: string) =>
            Effect.gen(function*() {
              const out: Array<Dispatch> = []
              while (out.length === 0 || out[out.length - 1]!.name !== last) out.push(yield* Queue.take(received))
              return out
            }).pipe(Effect.timeout(Bound))

          const shard = yield* readyShard(server, compression)

          // ≥ 60 messages through one compression context (item 46)
          for (let i = 0; i < LiveMessages; i++) yield* sim.dispatch("MESSAGE_CREATE", message(`live-${i}`))
          yield* sim.dispatch("BATCH_END", null)
          const first = yield* takeUntil("BATCH_END")
          expect(first.map((d) => d.name)).toEqual([
            "READY",
            "GUILD_CREATE",
            ...Array.from({ length: LiveMessages }, () => "MESSAGE_CREATE"),
            "BATCH_END"
          ])
          const lastSeqBeforeDrop = first[first.length - 1]!.seq

          // Missed dispatches: withheld on the live connection, then the connection drops (control endpoint)
          expect(yield* post(`${server.controlUrl}/withhold?shard=0`)).toBe(204)
          for (let i = 0; i < MissedMessages; i++) {
            const body = JSON.stringify({ event: "MESSAGE_CREATE", data: message(`missed-${i}`) })
            expect(yield* post(`${server.controlUrl}/dispatch`, body)).toBe(204)
          }
          expect(yield* post(`${server.controlUrl}/drop?shard=0`)).toBe(204)
          // emitted while the shard reconnects: replayed or live, either way exactly once
          for (let i = 0; i < AfterDropMessages; i++) yield* sim.dispatch("MESSAGE_CREATE", message(`after-drop-${i}`))

          yield* awaitState(shard, (s) => s.phase === "ready" && s.resumes === 1)
          for (let i = 0; i < AfterResumeMessages; i++) yield* sim.dispatch("MESSAGE_CREATE", message(`after-resume-${i}`))
          yield* sim.dispatch("TEST_END", null)
          const rest = yield* takeUntil("TEST_END")

          // every dispatch of the session exactly once, in order: s = 1, 2, 3, …
          const all = [...first, ...rest]
          expect(all.map((d) => d.seq)).toEqual(Array.from({ length: all.length }, (_, i) => i + 1))
          const ids = all.filter((d) => d.name === "MESSAGE_CREATE").map((d) => (d.data as { id: string }).id)
          expect(ids).toEqual([
            ...Array.from({ length: LiveMessages }, (_, i) => `live-${i}`),
            ...Array.from({ length: MissedMessages }, (_, i) => `missed-${i}`),
            ...Array.from({ length: AfterDropMessages }, (_, i) => `after-drop-${i}`),
            ...Array.from({ length: AfterResumeMessages }, (_, i) => `after-resume-${i}`)
          ])
          expect(rest.filter((d) => d.name === "RESUMED")).toHaveLength(1)

          // the resume went to the resume URL with the same query, with READY's session and the last seq
          const connections = yield* sim.connections
          expect(connections.map((c) => c.url)).toEqual([
            gatewayUrl(server.gatewayUrl, { compression }),
            gatewayUrl(server.resumeUrl, { compression })
          ])
          expect(connections[0]).toMatchObject({ closeCode: 1006, closedBy: "transport" })
          const resumes = yield* sim.clientFrames({ op: 6 })
          expect(resumes.map((f) => f.d)).toEqual([{ token: "<redacted>", session_id: "session-1", seq: lastSeqBeforeDrop }])
          expect(yield* sim.clientFrames({ op: 2 })).toHaveLength(1)

          // graceful stop: close 1000, the session ends
          yield* shard.stop()
          expect(yield* Effect.timeout(server.awaitClosed(connections[1]!.id), Bound)).toBe(1000)
          expect((yield* sim.connections)[1]).toMatchObject({ closeCode: 1000, closedBy: "client" })
          expect(yield* sim.sessions).toEqual([])
          expect((yield* shard.state).phase).toBe("stopped")
        }).pipe(Effect.provide(Services))
    )
  }

  it.live("zlib-stream: op 7 and a zombie connection close with 4000 on the wire and RESUME at the resume URL (items 9, 22)", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const sim = server.controls
      const shard = yield* readyShard(server, "zlib-stream")

      // op 7: the shard closes with a resumable code (the server sees it in the close frame) and resumes
      expect(yield* post(`${server.controlUrl}/reconnect?shard=0`)).toBe(204)
      expect(yield* Effect.timeout(server.awaitClosed(1), Bound)).toBe(4000)
      yield* awaitState(shard, (s) => s.phase === "ready" && s.resumes === 1)

      // zombie: ACKs withheld → at the next beat the shard closes 4000 itself and resumes
      expect(yield* post(`${server.controlUrl}/withhold?shard=0&on=true`)).toBe(204)
      expect(yield* Effect.timeout(server.awaitClosed(2), Bound)).toBe(4000)
      yield* awaitState(shard, (s) => s.phase === "ready" && s.resumes === 2)

      const connections = yield* sim.connections
      expect(connections.map((c) => [c.closeCode, c.closedBy])).toEqual([[4000, "client"], [4000, "client"], [null, null]])
      expect(connections.slice(1).every((c) => c.url === gatewayUrl(server.resumeUrl, { compression: "zlib-stream" })))
        .toBe(true)
      expect((yield* sim.clientFrames({ op: 6 })).map((f) => f.connectionId)).toEqual([2, 3])
      yield* shard.stop()
      expect(yield* Effect.timeout(server.awaitClosed(3), Bound)).toBe(1000)
    }).pipe(Effect.provide(Services)))

  it.live("item 28: a resume URL that refuses the upgrade (HTTP 503) → the next attempt RESUMEs at the base URL", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const sim = server.controls
      const shard = yield* readyShard(server, "zlib-stream")
      yield* sim.refuseConnections(server.resumeUrl, true)
      expect(yield* post(`${server.controlUrl}/drop?shard=0`)).toBe(204)
      yield* awaitState(shard, (s) => s.phase === "ready" && s.resumes === 1)
      const url = (base: string) => gatewayUrl(base, { compression: "zlib-stream" })
      expect((yield* sim.refusedConnections).map((r) => r.url)).toEqual([url(server.resumeUrl)])
      expect((yield* sim.connections).map((c) => c.url)).toEqual([url(server.gatewayUrl), url(server.gatewayUrl)])
      expect((yield* sim.clientFrames({ op: 6 })).map((f) => f.connectionId)).toEqual([3])
      expect(yield* sim.clientFrames({ op: 2 })).toHaveLength(1)
    }).pipe(Effect.provide(Services)))
})
