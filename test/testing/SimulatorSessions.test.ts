/**
 * The simulator's session lifecycle (PROTOCOL.md §1.7–§1.10, §9): RESUME and replay, which closes keep or
 * end a session, the resume window, missed heartbeats, zombie connections (withheld ACKs), op 7 / op 9,
 * connection behaviours before Hello, refused URLs, and the in-process transport's close semantics.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { TestClock } from "effect/testing"
import { GatewaySimulator } from "../../src/testing/GatewaySimulator.ts"
import { BaseUrl, connect, connectReady, Query, ResumeUrl, withSimulator } from "./rawClient.ts"

const run = withSimulator()

/** A guild owned by shard 0 of any count (its id >> 22 is 0). */
const G0 = "4194303"

const resumeOn = (sessionId: string, seq: number | null, url = ResumeUrl + Query) =>
  Effect.gen(function*() {
    const client = yield* connect(url)
    expect((yield* client.next).op).toBe(10)
    yield* client.resume(sessionId, seq)
    return client
  })

describe("GatewaySimulator sessions", () => {
  it.effect("item 24: RESUME replays every missed dispatch in order, then RESUMED with the next seq", () =>
    run(Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const { client, ready } = yield* connectReady({ intents: 0 })
      yield* sim.dispatch("MESSAGE_CREATE", { n: 1 })
      expect(yield* client.next).toMatchObject({ t: "MESSAGE_CREATE", s: 2, d: { n: 1 } })
      yield* client.close(4000)
      for (const n of [2, 3, 4]) yield* sim.dispatch("MESSAGE_CREATE", { n })
      const resumed = yield* resumeOn(ready.d.session_id, 2)
      const frames = [yield* resumed.next, yield* resumed.next, yield* resumed.next, yield* resumed.next]
      expect(frames.map((f) => [f.t, f.s, f.d.n])).toEqual([
        ["MESSAGE_CREATE", 3, 2],
        ["MESSAGE_CREATE", 4, 3],
        ["MESSAGE_CREATE", 5, 4],
        ["RESUMED", 6, undefined]
      ])
      yield* sim.dispatch("MESSAGE_CREATE", { n: 5 })
      expect((yield* resumed.next).s).toBe(7)
      const connections = yield* sim.connections
      expect(connections.map((c) => [c.url, c.closedBy, c.closeCode, c.sessionId])).toEqual([
        [BaseUrl + Query, "client", 4000, "session-1"],
        [ResumeUrl + Query, null, null, "session-1"]
      ])
      expect((yield* sim.sessions)[0]).toMatchObject({ id: "session-1", seq: 7, connected: true, connectionId: 2 })
    })))

  it.effect("a RESUME from an older seq than the replay buffer holds gets op 9 false", () =>
    run(
      Effect.gen(function*() {
        const sim = yield* GatewaySimulator
        const { client, ready } = yield* connectReady({ intents: 0 })
        yield* client.close(4000)
        for (const n of [1, 2, 3]) yield* sim.dispatch("X", { n }) // s = 2, 3, 4; buffer keeps 3 and 4
        expect((yield* (yield* resumeOn(ready.d.session_id, 1)).next)).toMatchObject({ op: 9, d: false })
        const ok = yield* resumeOn(ready.d.session_id, 2)
        expect([(yield* ok.next).s, (yield* ok.next).s, (yield* ok.next).t]).toEqual([3, 4, "RESUMED"])
      }),
      { replayBufferSize: 2 }
    ))

  it.effect("replayBuffers: the distinct dispatches sessions keep for replay (shared ones once), bounded per session, gone with the session", () =>
    run(
      Effect.gen(function*() {
        const sim = yield* GatewaySimulator
        const a = yield* connectReady({ intents: 0 })
        const b = yield* connectReady({ intents: 0 }) // the same shard [0, 1]: both get every dispatch
        const text = (n: number) => Buffer.byteLength(`{"t":"X","s":,"op":0,"d":{"n":${n}}}`)
        yield* sim.dispatch("X", { n: 1 })
        expect((yield* sim.replayBuffers)).toMatchObject({ sessions: 2, dispatches: 3 }) // each READY, one X
        for (const n of [2, 3, 4]) yield* sim.dispatch("X", { n })
        expect(yield* sim.replayBuffers).toEqual({ sessions: 2, dispatches: 2, bytes: text(3) + text(4) })
        yield* a.client.close(1000)
        expect(yield* sim.replayBuffers).toEqual({ sessions: 1, dispatches: 2, bytes: text(3) + text(4) })
        yield* b.client.close(1000)
        expect(yield* sim.replayBuffers).toEqual({ sessions: 0, dispatches: 0, bytes: 0 })
      }),
      { replayBufferSize: 2, identifyWindowMs: 0 }
    ))

  it.effect("item 38: a client close with 1000 destroys the session (RESUME → op 9 false); 4000 keeps it", () =>
    run(Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const kept = yield* connectReady({ shard: [0, 2] })
      yield* kept.client.close(4000)
      yield* TestClock.adjust(5000)
      const ended = yield* connectReady({ shard: [1, 2] })
      yield* ended.client.close(1000)
      expect((yield* sim.sessions).map((s) => [s.id, s.connected])).toEqual([["session-1", false]])
      const refused = yield* resumeOn(ended.ready.d.session_id, 1)
      expect(yield* refused.next).toEqual({ t: null, s: null, op: 9, d: false })
      const accepted = yield* resumeOn(kept.ready.d.session_id, 1)
      expect((yield* accepted.next).t).toBe("RESUMED")
    })))

  it.effect("a disconnected session expires after resumeWindowMs (then op 9 false)", () =>
    run(
      Effect.gen(function*() {
        const sim = yield* GatewaySimulator
        const a = yield* connectReady({ shard: [0, 2] })
        yield* TestClock.adjust(5000)
        const b = yield* connectReady({ shard: [1, 2] })
        yield* a.client.close(4000)
        yield* b.client.close(4000)
        yield* TestClock.adjust(9999)
        expect((yield* sim.sessions).map((s) => s.resumableUntil)).toEqual([15_000, 15_000])
        expect((yield* (yield* resumeOn(a.ready.d.session_id, 1)).next).t).toBe("RESUMED")
        yield* TestClock.adjust(1)
        expect(yield* (yield* resumeOn(b.ready.d.session_id, 1)).next).toMatchObject({ op: 9, d: false })
        expect((yield* sim.sessions).map((s) => s.id)).toEqual(["session-1"])
      }),
      { resumeWindowMs: 10_000, heartbeatTimeoutMs: 3_600_000 }
    ))

  it.effect("missed heartbeats: the server closes with 4000 after heartbeatTimeoutMs and keeps the session", () =>
    run(Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const { client, ready } = yield* connectReady()
      // heartbeats every interval keep the connection up
      for (let i = 0; i < 4; i++) {
        yield* TestClock.adjust(1500)
        yield* client.send({ op: 1, d: 1 })
        expect((yield* client.next).op).toBe(11)
      }
      yield* TestClock.adjust(2249) // timeout = 1.5 × 1500 after the last heartbeat
      expect((yield* sim.connections)[0]?.closedAt).toBeNull()
      yield* TestClock.adjust(1)
      const { closed } = yield* client.untilClosed
      expect([closed.code, closed.by]).toEqual([4000, "server"])
      expect((yield* sim.connections)[0]).toMatchObject({ closedAt: 8250, closeCode: 4000, closedBy: "server" })
      expect((yield* sim.sessions)[0]).toMatchObject({ connected: false, resumableUntil: 8250 + 120_000 })
      expect((yield* (yield* resumeOn(ready.d.session_id, 1)).next).t).toBe("RESUMED")
    })))

  it.effect("item 9: withheld ACKs — no ACK and no other frame reach the zombie; RESUME elsewhere replays them", () =>
    run(Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const { client, ready } = yield* connectReady({ intents: 0 })
      yield* sim.withholdAcks(0, true)
      yield* client.send({ op: 1, d: 1 })
      yield* sim.dispatch("MESSAGE_CREATE", { guild_id: G0 })
      yield* sim.requestHeartbeat(0)
      const server = yield* sim.serverFrames()
      expect(server.map((f) => f.op)).toEqual([10, 0]) // Hello and READY only
      expect((yield* sim.clientFrames({ op: 1 }))).toHaveLength(1)
      yield* client.close(4000)
      const resumed = yield* resumeOn(ready.d.session_id, 1)
      expect([(yield* resumed.next).t, (yield* resumed.next).t]).toEqual(["MESSAGE_CREATE", "RESUMED"])
      // the new connection is not withheld
      yield* resumed.send({ op: 1, d: 3 })
      expect((yield* resumed.next).op).toBe(11)
      // the switch turns off again
      yield* sim.withholdAcks(0, false)
      yield* sim.dispatch("X", {})
      expect((yield* resumed.next).t).toBe("X")
    })))

  it.effect("item 22: reconnect sends op 7; server op 1 asks for a heartbeat", () =>
    run(Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const { client } = yield* connectReady({ shard: [0, 1] })
      yield* sim.reconnect([0, 1])
      expect(yield* client.nextText).toBe('{"t":null,"s":null,"op":7,"d":null}')
      yield* sim.requestHeartbeat(0)
      expect(yield* client.next).toEqual({ t: null, s: null, op: 1, d: null })
      yield* sim.reconnect([0, 2]) // another tuple: not this connection
      expect((yield* sim.serverFrames({ op: 7 }))).toHaveLength(1)
    })))

  it.effect("item 22: nextConnection('reconnect-before-hello') sends op 7 instead of Hello; 'no-hello' sends nothing", () =>
    run(Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      yield* sim.nextConnection("reconnect-before-hello")
      yield* sim.nextConnection("no-hello")
      const first = yield* connect()
      expect(yield* first.next).toEqual({ t: null, s: null, op: 7, d: null })
      yield* connect()
      const third = yield* connect()
      expect((yield* third.next).op).toBe(10)
      const byConnection = (yield* sim.serverFrames()).map((f) => [f.connectionId, f.op])
      expect(byConnection).toEqual([[1, 7], [3, 10]])
      // no Hello means no missed-heartbeat timeout either
      yield* TestClock.adjust(60_000)
      expect((yield* sim.connections).map((c) => c.closedBy)).toEqual([null, null, "server"])
    })))

  it.effect("item 28: refuseConnections makes connects to matching URLs fail with ConnectFailed", () =>
    run(Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      yield* sim.refuseConnections(ResumeUrl, true)
      const error = yield* Effect.flip(connect(ResumeUrl + Query))
      expect(error._tag).toBe("ConnectFailed")
      expect(error.url).toBe(ResumeUrl + Query)
      const base = yield* connect()
      expect((yield* base.next).op).toBe(10)
      yield* sim.refuseConnections(ResumeUrl, false)
      yield* connect(ResumeUrl + Query)
      expect((yield* sim.refusedConnections).map((r) => [r.id, r.url])).toEqual([[1, ResumeUrl + Query]])
      expect((yield* sim.connections).map((c) => [c.id, c.url])).toEqual([[2, BaseUrl + Query], [3, ResumeUrl + Query]])
    })))

  it.effect("item 25/27: invalidateSession(false) destroys the session; (true) lets it RESUME on the same connection", () =>
    run(Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const { client, ready } = yield* connectReady()
      yield* sim.invalidateSession(0, true)
      expect(yield* client.next).toEqual({ t: null, s: null, op: 9, d: true })
      yield* client.resume(ready.d.session_id, 1)
      expect((yield* client.next).t).toBe("RESUMED")
      yield* sim.invalidateSession(0, false)
      expect((yield* client.next).d).toBe(false)
      expect(yield* sim.sessions).toEqual([])
      yield* client.resume(ready.d.session_id, 2)
      expect((yield* client.next).d).toBe(false)
      yield* TestClock.adjust(5000)
      yield* client.identify() // a fresh IDENTIFY on the same connection is allowed after op 9
      expect((yield* client.next).d.session_id).toBe("session-2")
    }), { heartbeatTimeoutMs: 3_600_000 }))

  it.effect("a RESUME while another connection still holds the session closes that older connection", () =>
    run(Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const { client, ready } = yield* connectReady({ intents: 0 })
      const second = yield* resumeOn(ready.d.session_id, 1)
      expect((yield* second.next).t).toBe("RESUMED")
      const { closed } = yield* client.untilClosed
      expect(closed.by).toBe("server")
      expect((yield* sim.sessions)[0]).toMatchObject({ connectionId: 2, connected: true })
    })))

  it.effect("drop: the client sees 1006 by the transport, no close frame; the session stays resumable", () =>
    run(Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const { client, ready } = yield* connectReady()
      yield* sim.drop(0)
      const { closed } = yield* client.untilClosed
      expect([closed.code, closed.by]).toEqual([1006, "transport"])
      expect((yield* sim.connections)[0]).toMatchObject({ closeCode: 1006, closedBy: "transport" })
      expect((yield* (yield* resumeOn(ready.d.session_id, 1)).next).t).toBe("RESUMED")
    })))

  it.effect("server close: a resumable code keeps the session, a session-ending one (4009) destroys it", () =>
    run(Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const { client, ready } = yield* connectReady()
      yield* sim.close(0, 4000)
      const { closed } = yield* client.untilClosed
      expect([closed.code, closed.reason, closed.by]).toEqual([4000, "Unknown error.", "server"])
      const again = yield* resumeOn(ready.d.session_id, 1)
      expect((yield* again.next).t).toBe("RESUMED")
      yield* sim.close([0, 1], 4009, "bye")
      expect((yield* again.untilClosed).closed).toMatchObject({ code: 4009, reason: "bye" })
      expect(yield* sim.sessions).toEqual([])
      // send after close fails with the close
      expect((yield* Effect.flip(again.send({ op: 1, d: null }))).code).toBe(4009)
    })))

  it.effect("closing the connection's Scope without close() is a client close with 1000 (session destroyed)", () =>
    run(Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const scope = yield* Scope.make()
      yield* connectReady().pipe(Scope.provide(scope))
      expect(yield* sim.sessions).toHaveLength(1)
      yield* Scope.close(scope, Exit.void)
      expect((yield* sim.connections)[0]).toMatchObject({ closeCode: 1000, closedBy: "client" })
      expect(yield* sim.sessions).toEqual([])
    })))

  it.effect("the client's own close ends receive with ConnectionClosed by client; frames buffered before it come first", () =>
    run(Effect.gen(function*() {
      const client = yield* connect()
      yield* client.close(4000)
      const { frames, closed } = yield* client.untilClosed
      expect(frames.map((f) => f.op)).toEqual([10])
      expect([closed.code, closed.by]).toEqual([4000, "client"])
    })))

  it.effect("historyLimit: frames, connections, refused attempts and REST requests keep the latest records, bounded", () =>
    run(
      Effect.gen(function*() {
        const sim = yield* GatewaySimulator
        for (let i = 0; i < 7; i++) {
          const scope = yield* Scope.make()
          yield* connectReady().pipe(Scope.provide(scope))
          yield* Scope.close(scope, Exit.void)
          yield* sim.gatewayBotRequest(`Bot ${i}`)
        }
        yield* sim.refuseConnections(BaseUrl, true)
        for (let i = 0; i < 7; i++) yield* Effect.flip(connect())
        // ids 1–7 were accepted, 8–14 refused: at least the latest 3 of each are kept, never 6 or more.
        const ids = (yield* sim.connections).map((c) => c.id)
        expect(ids.length).toBeGreaterThanOrEqual(3)
        expect(ids.length).toBeLessThan(6)
        expect(ids.slice(-3)).toEqual([5, 6, 7])
        const refused = (yield* sim.refusedConnections).map((r) => r.id)
        expect(refused.length).toBeLessThan(6)
        expect(refused.slice(-3)).toEqual([12, 13, 14])
        const rest = yield* sim.restRequests
        expect(rest.length).toBeLessThan(6)
        expect(rest.length).toBeGreaterThanOrEqual(3)
        // every connection sent and received frames (Hello, IDENTIFY, READY, …): far more than 6 of them
        const frames = yield* sim.frames
        expect(frames.length).toBeLessThan(6)
        expect(frames.at(-1)?.connectionId).toBe(7)
      }),
      { historyLimit: 3, identifyWindowMs: 0 }
    ))

  it.effect("without historyLimit every record is kept", () =>
    run(Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      for (let i = 0; i < 7; i++) {
        const scope = yield* Scope.make()
        yield* connectReady().pipe(Scope.provide(scope))
        yield* Scope.close(scope, Exit.void)
      }
      expect((yield* sim.connections).map((c) => c.id)).toEqual([1, 2, 3, 4, 5, 6, 7])
    }), { identifyWindowMs: 0 }))

  it.effect("the in-process transport refuses encoding=etf", () =>
    run(Effect.gen(function*() {
      const error = yield* Effect.flip(connect(`${BaseUrl}/?v=10&encoding=etf`))
      expect(error._tag).toBe("ConnectFailed")
    })))
})
