/**
 * The simulator socket server on real sockets (PROTOCOL.md §1.1 REST, §1.2 URLs, §5.4–5.5 compression,
 * §9 fault injection): REST answers, the HTTP control endpoint, and what a bare `ws` client sees, with
 * compressed frames decoded by node:zlib here (not by the runtime's Inflater). `it.live`: real clock, but
 * nothing sleeps; every wait is on an event (a frame, a close, an HTTP answer), bounded by a timeout.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Queue, Scope } from "effect"
import type { Cause } from "effect"
import * as zlib from "node:zlib"
import { WebSocket } from "ws"
import * as SimulatorSocketServer from "../../src/testing/SimulatorSocketServer.ts"

const Token = "socket-token.NEVER-SHOWN.xyz"
const Guild = "81384788765712384"
const Query = "?v=10&encoding=json"
const Wait = "5 seconds"

const start = (options: Partial<SimulatorSocketServer.SimulatorSocketServerOptions> = {}) =>
  SimulatorSocketServer.make({ token: Token, heartbeatIntervalMs: 30_000, guilds: [Guild], ...options })

// ----- HTTP -----

interface HttpAnswer {
  readonly status: number
  readonly body: any
}

const request = (method: "GET" | "POST", url: string, init: { headers?: Record<string, string>; body?: string } = {}) =>
  Effect.promise(async (): Promise<HttpAnswer> => {
    const response = await fetch(url, { method, ...init })
    const text = await response.text()
    return { status: response.status, body: text === "" ? undefined : JSON.parse(text) }
  }).pipe(Effect.timeout(Wait))

const control = (server: SimulatorSocketServer.SimulatorSocketServer, path: string, body?: string) =>
  request("POST", `${server.controlUrl}/${path}`, body === undefined ? {} : { body })

// ----- a bare WebSocket client -----

interface RawFrame {
  readonly data: Buffer
  readonly binary: boolean
}

interface RawClient {
  readonly ws: WebSocket
  readonly next: Effect.Effect<RawFrame, Cause.TimeoutError>
  readonly closed: Effect.Effect<{ readonly code: number; readonly reason: string }, Cause.TimeoutError>
  /** The frames received and not taken yet (does not wait). */
  readonly drain: Effect.Effect<ReadonlyArray<RawFrame>>
  readonly send: (payload: unknown) => void
}

/** Opens a `ws` client in the Scope; fails with the HTTP status when the upgrade is refused. */
const rawClient = (url: string) =>
  Effect.gen(function*() {
    const frames = yield* Queue.unbounded<RawFrame>()
    const closed = yield* Deferred.make<{ readonly code: number; readonly reason: string }>()
    const ws = yield* Effect.acquireRelease(
      Effect.callback<WebSocket, string>((resume) => {
        let settled = false
        const settle = (effect: Effect.Effect<WebSocket, string>) => {
          if (!settled) resume(effect)
          settled = true
        }
        const socket = new WebSocket(url)
        socket.on("message", (data, binary) => {
          const buffer = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)
          Queue.offerUnsafe(frames, { data: buffer, binary })
        })
        socket.on("close", (code, reason) => Deferred.doneUnsafe(closed, Exit.succeed({ code, reason: reason.toString() })))
        socket.on("error", (error) => settle(Effect.fail(error.message)))
        socket.once("unexpected-response", (req, res) => {
          settle(Effect.fail(`HTTP ${res.statusCode}`))
          req.destroy()
        })
        socket.once("open", () => settle(Effect.succeed(socket)))
      }),
      (socket) => Effect.sync(() => socket.terminate())
    )
    const client: RawClient = {
      ws,
      next: Effect.timeout(Queue.take(frames), Wait),
      closed: Effect.timeout(Deferred.await(closed), Wait),
      drain: Queue.clear(frames),
      send: (payload) => ws.send(typeof payload === "string" ? payload : JSON.stringify(payload))
    }
    return client
  })

const ZlibMarker = "0000ffff"

/**
 * Decodes one connection's frames with node:zlib: the whole stream so far is decompressed at each message
 * end and the new text is the message (zlib: at a frame ending `00 00 ff ff`; zstd: every frame).
 */
const decoder = (kind: Kind) => {
  const parts: Array<Buffer> = []
  let seen = 0
  return (frame: RawFrame): string | undefined => {
    if (kind === "none") {
      expect(frame.binary).toBe(false)
      return frame.data.toString("utf8")
    }
    expect(frame.binary).toBe(true)
    parts.push(frame.data)
    if (kind === "zlib-stream" && frame.data.subarray(-4).toString("hex") !== ZlibMarker) return undefined
    const all = Buffer.concat(parts)
    const text = (kind === "zlib-stream"
      ? zlib.inflateSync(all, { finishFlush: zlib.constants.Z_SYNC_FLUSH })
      : zlib.zstdDecompressSync(all, { finishFlush: zlib.constants.ZSTD_e_flush })).toString("utf8")
    const message = text.slice(seen)
    seen = text.length
    return message
  }
}

/** The next whole gateway message, parsed. */
const nextMessage = (client: RawClient, decode: (frame: RawFrame) => string | undefined) =>
  Effect.gen(function*() {
    while (true) {
      const text = decode(yield* client.next)
      if (text !== undefined) return JSON.parse(text) as { op: number; d: any; s: number | null; t: string | null }
    }
  })

const identify = (client: RawClient) =>
  client.send({ op: 2, d: { token: Token, intents: 1, properties: { os: "linux", browser: "t", device: "t" } } })

type Kind = "none" | "zlib-stream" | "zstd-stream"

/** The base URL with `v`, `encoding` and, unless `kind` is "none", `compress`. */
const baseUrl = (server: SimulatorSocketServer.SimulatorSocketServer, kind: Kind) =>
  `${server.gatewayUrl}${Query}${kind === "none" ? "" : `&compress=${kind}`}`

/** A bare client on the base URL that read Hello, sent IDENTIFY and read READY (returned with its decoder). */
const identifiedClient = (server: SimulatorSocketServer.SimulatorSocketServer, kind: Kind = "none") =>
  Effect.gen(function*() {
    const client = yield* rawClient(baseUrl(server, kind))
    const decode = decoder(kind)
    yield* nextMessage(client, decode)
    identify(client)
    const ready = yield* nextMessage(client, decode)
    return { client, decode, ready }
  })

describe("SimulatorSocketServer", () => {
  it.live("§1.1: GET /api/v10/gateway/bot needs `Authorization: Bot <token>` (401 otherwise); /gateway gives the url", () =>
    Effect.gen(function*() {
      const server = yield* start({ recommendedShards: 3, maxConcurrency: 2 })
      expect(server.gatewayUrl).toBe(`ws://127.0.0.1:${server.port}/gateway`)
      expect(server.resumeUrl).toBe(`ws://127.0.0.1:${server.port}/resume`)
      expect(server.apiBaseUrl).toBe(`http://127.0.0.1:${server.port}/api`)

      const ok = yield* request("GET", `${server.apiBaseUrl}/v10/gateway/bot`, { headers: { Authorization: `Bot ${Token}` } })
      expect(ok.status).toBe(200)
      expect(ok.body).toMatchObject({
        url: server.gatewayUrl,
        shards: 3,
        session_start_limit: { total: 1000, remaining: 1000, max_concurrency: 2 }
      })
      expect(ok.body.session_start_limit.reset_after).toBeGreaterThan(0)

      const missing = yield* request("GET", `${server.apiBaseUrl}/v10/gateway/bot`)
      expect(missing.status).toBe(401)
      const wrong = yield* request("GET", `${server.apiBaseUrl}/v10/gateway/bot`, { headers: { Authorization: "Bot nope" } })
      expect(wrong.status).toBe(401)
      expect((yield* server.controls.restRequests).map((r) => [r.authorized, r.status])).toEqual([
        [true, 200],
        [false, 401],
        [false, 401]
      ])

      const plain = yield* request("GET", `${server.apiBaseUrl}/v10/gateway`)
      expect(plain).toEqual({ status: 200, body: { url: server.gatewayUrl } })
      expect((yield* request("GET", `${server.apiBaseUrl}/v10/users/@me`)).status).toBe(404)
    }))

  for (const kind of ["none", "zlib-stream", "zstd-stream"] as const) {
    it.live(`a bare ws client gets Hello (${kind === "none" ? "text frame" : `${kind}, binary, decoded with node:zlib`}) and READY`, () =>
      Effect.gen(function*() {
        const server = yield* start()
        const client = yield* rawClient(baseUrl(server, kind))
        const decode = decoder(kind)
        const first = yield* client.next
        if (kind === "zlib-stream") {
          expect(first.data.subarray(0, 2).toString("hex")).toBe("789c")
          expect(first.data.subarray(-4).toString("hex")).toBe(ZlibMarker)
        }
        if (kind === "zstd-stream") expect(first.data.subarray(0, 4).toString("hex")).toBe("28b52ffd")
        const hello = JSON.parse(decode(first)!)
        expect(hello).toMatchObject({ op: 10, d: { heartbeat_interval: 30_000 } })
        identify(client)
        const ready = yield* nextMessage(client, decode)
        expect(ready).toMatchObject({ op: 0, t: "READY", s: 1, d: { session_id: "session-1", resume_gateway_url: server.resumeUrl } })
        // item 46/49: later messages continue the same stream (no new zlib header / zstd magic)
        const guildCreate = yield* nextMessage(client, decode)
        expect(guildCreate).toMatchObject({ op: 0, t: "GUILD_CREATE", s: 2, d: { id: Guild } })
        const connections = yield* server.controls.connections
        expect(connections.map((c) => c.url)).toEqual([baseUrl(server, kind)])
      }))
  }

  for (const kind of ["zlib-stream", "zstd-stream"] as const) {
    it.live(`${kind}: a 1.5 MB dispatch between small ones is one WS message each, in order (§5.1)`, () =>
      Effect.gen(function*() {
        const server = yield* start()
        const { client, decode } = yield* identifiedClient(server, kind)
        yield* nextMessage(client, decode) // GUILD_CREATE
        const members = Array.from({ length: 30_000 }, (_, i) => ({ user: { id: `${1e17 + i * 7919}`, username: `u${i}` } }))
        yield* server.controls.dispatch("MESSAGE_CREATE", { guild_id: Guild, id: "before" })
        yield* server.controls.dispatch("GUILD_MEMBERS_CHUNK", { guild_id: Guild, members })
        yield* server.controls.dispatch("MESSAGE_CREATE", { guild_id: Guild, id: "after" })
        const texts: Array<string> = []
        for (let i = 0; i < 3; i++) texts.push(decode(yield* client.next)!) // each WS message is one whole message
        const messages = texts.map((text) => JSON.parse(text) as { s: number; t: string; d: any })
        expect(messages.map((m) => [m.s, m.t])).toEqual([[3, "MESSAGE_CREATE"], [4, "GUILD_MEMBERS_CHUNK"], [5, "MESSAGE_CREATE"]])
        expect(texts[1]!.length).toBeGreaterThan(1_500_000)
        expect(JSON.stringify(messages[1]!.d.members)).toBe(JSON.stringify(members))
      }))
  }

  it.live("item 46: splitCompressedFrames sends each zlib-stream message as two WS messages, only the last ending 00 00 ff ff", () =>
    Effect.gen(function*() {
      const server = yield* start({ splitCompressedFrames: true })
      const client = yield* rawClient(`${server.gatewayUrl}${Query}&compress=zlib-stream`)
      const head = yield* client.next
      const tail = yield* client.next
      expect(head.data.subarray(0, 2).toString("hex")).toBe("789c")
      expect(head.data.subarray(-4).toString("hex")).not.toBe(ZlibMarker)
      expect(tail.data.subarray(-4).toString("hex")).toBe(ZlibMarker)
      const decode = decoder("zlib-stream")
      expect(decode(head)).toBeUndefined()
      expect(JSON.parse(decode(tail)!)).toMatchObject({ op: 10 })
      identify(client)
      expect(yield* nextMessage(client, decode)).toMatchObject({ t: "READY" })
    }))

  it.live("item 48: a resume-URL connection starts a fresh zlib stream and RESUME replays the missed dispatches", () =>
    Effect.gen(function*() {
      const server = yield* start()
      const scope = yield* Scope.make()
      const { client: first, decode: decode1, ready } = yield* identifiedClient(server, "zlib-stream").pipe(Scope.provide(scope))
      yield* nextMessage(first, decode1) // GUILD_CREATE, s = 2
      first.ws.close(4000, "resume")
      expect(yield* server.awaitClosed(1)).toBe(4000)
      yield* Scope.close(scope, Exit.void)

      yield* server.controls.dispatch("MESSAGE_CREATE", { guild_id: Guild, id: "m1" })
      const second = yield* rawClient(`${ready.d.resume_gateway_url}${Query}&compress=zlib-stream`)
      const helloFrame = yield* second.next
      expect(helloFrame.data.subarray(0, 2).toString("hex")).toBe("789c")
      const decode2 = decoder("zlib-stream")
      expect(JSON.parse(decode2(helloFrame)!)).toMatchObject({ op: 10 })
      second.send({ op: 6, d: { token: Token, session_id: ready.d.session_id, seq: 2 } })
      expect(yield* nextMessage(second, decode2)).toMatchObject({ s: 3, t: "MESSAGE_CREATE", d: { id: "m1" } })
      expect(yield* nextMessage(second, decode2)).toMatchObject({ s: 4, t: "RESUMED" })
      const connections = yield* server.controls.connections
      expect(connections[1]!.url.startsWith(server.resumeUrl)).toBe(true)
      expect(connections[0]).toMatchObject({ closeCode: 4000, closedBy: "client" })
    }))

  it.live("control endpoint: heartbeat-request, dispatch, raw, reconnect, invalidate, close, and bad requests", () =>
    Effect.gen(function*() {
      const server = yield* start()
      const { client, decode } = yield* identifiedClient(server)
      yield* nextMessage(client, decode) // GUILD_CREATE

      expect((yield* control(server, "heartbeat-request?shard=0")).status).toBe(204)
      expect(yield* nextMessage(client, decode)).toEqual({ t: null, s: null, op: 1, d: null })

      const dispatched = yield* control(server, "dispatch", JSON.stringify({ event: "MESSAGE_CREATE", data: { guild_id: Guild, content: "hi" } }))
      expect(dispatched.status).toBe(204)
      expect(yield* nextMessage(client, decode)).toEqual({ t: "MESSAGE_CREATE", s: 3, op: 0, d: { guild_id: Guild, content: "hi" } })

      const raw = "{\"op\":0,\"t\":\"FUTURE_EVENT\",\"s\":99,\"d\":{\"_trace\":[\"x\"]}}"
      expect((yield* control(server, "raw?shard=0/1", raw)).status).toBe(204)
      expect((yield* client.next).data.toString()).toBe(raw)

      expect((yield* control(server, "reconnect?shard=0")).status).toBe(204)
      expect(yield* nextMessage(client, decode)).toMatchObject({ op: 7, d: null })
      expect((yield* control(server, "invalidate?shard=0&resumable=true")).status).toBe(204)
      expect(yield* nextMessage(client, decode)).toMatchObject({ op: 9, d: true })

      // bad requests change nothing
      expect((yield* control(server, "drop")).status).toBe(400)
      expect((yield* control(server, "drop?shard=2/1")).status).toBe(400)
      expect((yield* control(server, "close?shard=0&code=abc")).status).toBe(400)
      expect((yield* control(server, "dispatch", "not json")).status).toBe(400)
      expect((yield* control(server, "explode?shard=0")).status).toBe(404)
      expect((yield* request("GET", `${server.controlUrl}/drop?shard=0`)).status).toBe(405)

      const sessions = yield* request("GET", `${server.controlUrl}/sessions`)
      expect(sessions.body).toMatchObject([{ id: "session-1", shard: [0, 1], connected: false }])

      expect((yield* control(server, "close?shard=0&code=4009&reason=too%20slow")).status).toBe(204)
      expect(yield* client.closed).toEqual({ code: 4009, reason: "too slow" })
      expect(yield* server.awaitClosed(1)).toBe(4009)
      const connections = yield* request("GET", `${server.controlUrl}/connections`)
      expect(connections.body).toMatchObject([{ id: 1, closeCode: 4009, closedBy: "server" }])
    }))

  it.live("control drop ends the TCP connection without a close frame (client sees 1006), session kept", () =>
    Effect.gen(function*() {
      const server = yield* start()
      const { client } = yield* identifiedClient(server)
      expect((yield* control(server, "drop?shard=0")).status).toBe(204)
      expect((yield* client.closed).code).toBe(1006)
      expect(yield* server.awaitClosed(1)).toBe(1006)
      expect(yield* server.controls.sessions).toMatchObject([{ id: "session-1", connected: false }])
    }))

  it.live("control withhold: a heartbeat gets no ACK, while closes still go through", () =>
    Effect.gen(function*() {
      const server = yield* start()
      const { client, decode } = yield* identifiedClient(server)
      yield* nextMessage(client, decode) // GUILD_CREATE
      expect((yield* control(server, "withhold?shard=0&on=true")).status).toBe(204)
      client.send({ op: 1, d: 2 })
      client.send("not json") // → 4002 after the heartbeat was handled (same connection, in order)
      expect(yield* client.closed).toMatchObject({ code: 4002 })
      expect(yield* client.drain).toEqual([])
      expect(yield* server.controls.serverFrames({ op: 11 })).toEqual([])
    }))

  it.live("client close codes reach the simulator: 4000 keeps the session, an abrupt drop is 1006, 1000 ends it", () =>
    Effect.gen(function*() {
      const server = yield* start()
      const connect = Effect.gen(function*() {
        const client = yield* rawClient(`${server.gatewayUrl}${Query}`)
        const decode = decoder("none")
        yield* nextMessage(client, decode)
        return client
      })
      const a = yield* connect
      a.ws.close(4000)
      expect(yield* server.awaitClosed(1)).toBe(4000)
      const b = yield* connect
      b.ws.terminate()
      expect(yield* server.awaitClosed(2)).toBe(1006)
      const c = yield* connect
      identify(c)
      yield* nextMessage(c, decoder("none"))
      c.ws.close(1000)
      expect(yield* server.awaitClosed(3)).toBe(1000)
      const connections = yield* server.controls.connections
      expect(connections.map((x) => [x.closeCode, x.closedBy])).toEqual([[4000, "client"], [1006, "transport"], [1000, "client"]])
      expect(yield* server.controls.sessions).toEqual([])
    }))

  it.live("refused upgrades: encoding=etf (400), unknown path (404), refuseConnections (503, recorded)", () =>
    Effect.gen(function*() {
      const server = yield* start()
      expect(yield* Effect.flip(rawClient(`${server.gatewayUrl}?v=10&encoding=etf`))).toBe("HTTP 400")
      expect(yield* Effect.flip(rawClient(`ws://127.0.0.1:${server.port}/elsewhere${Query}`))).toBe("HTTP 404")
      yield* server.controls.refuseConnections(server.resumeUrl, true)
      expect(yield* Effect.flip(rawClient(`${server.resumeUrl}${Query}`))).toBe("HTTP 503")
      expect((yield* server.controls.refusedConnections).map((r) => r.url)).toEqual([`${server.resumeUrl}${Query}`])
      // the base URL still works
      const client = yield* rawClient(`${server.gatewayUrl}${Query}`)
      expect(yield* nextMessage(client, decoder("none"))).toMatchObject({ op: 10 })
    }))

  it.live("closing the Scope terminates every socket and stops listening", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const server = yield* start().pipe(Scope.provide(scope))
      const client = yield* rawClient(`${server.gatewayUrl}${Query}`)
      yield* nextMessage(client, decoder("none"))
      yield* Effect.timeout(Scope.close(scope, Exit.void), Wait)
      expect((yield* client.closed).code).toBe(1006)
      const refused = yield* Effect.flip(rawClient(`${server.gatewayUrl}${Query}`))
      expect(refused).toContain("ECONNREFUSED")
    }))
})
