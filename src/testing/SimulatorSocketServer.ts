/**
 * The gateway simulator served over real sockets: the same protocol core as the in-process simulator
 * (`makeSimulatorServer`, one implementation, two transports) behind a `ws` WebSocketServer and a small
 * node:http server, on 127.0.0.1 only (PROTOCOL.md §1.1, §1.2, §5.4–5.5, §9).
 *
 * One HTTP server on one port serves:
 * - `GET /api/v10/gateway/bot` — `gatewayBotRequest` with the request's `Authorization` header (200 JSON,
 *   or 401), and `GET /api/v10/gateway` — `{ url }` (§1.1);
 * - WebSocket upgrades on `/gateway` (the `/gateway/bot` url) and `/resume` (READY's
 *   `resume_gateway_url`, a different path so URL choice is observable, §9);
 * - `POST /control/<action>?shard=<id>[/<count>]` — fault injection for a shard's open connection(s):
 *   `drop`, `close?code=&reason=`, `reconnect` (op 7), `invalidate?resumable=` (op 9),
 *   `heartbeat-request` (server op 1), `withhold?on=` (no ACK, no frames), `raw` (the body, verbatim);
 *   and `dispatch` (JSON body `{ event, data }`, routed by guild like `SimulatorControls.dispatch`).
 *   `GET /control/sessions` and `GET /control/connections` return the simulator's view as JSON.
 *   Success is 204; bad input 400; unknown paths 404.
 *
 * Per connection the `compress` query decides the wire format (§5): none — text frames; `zlib-stream` —
 * one deflate context, each message sync-flushed into one binary frame (or split over two with
 * `splitCompressedFrames`, item 46); `zstd-stream` — one zstd context flushed per message (item 49).
 * Compression is asynchronous, so every connection has an outbox that sends frames, closes and drops in
 * the order the core produced them. A server close sends a close frame with the code; a drop terminates
 * the TCP connection (the client sees 1006); a client close reaches the core with its code (1006 when the
 * client vanished without a close frame). `encoding=etf` is refused at the upgrade (400), as is a URL the
 * test made the simulator refuse (`refuseConnections`: 503).
 *
 * Everything lives in the Scope of `make`: closing it terminates every socket and closes the server.
 * Time inside the simulator comes from the Clock in context (use the real clock: sockets do not follow a
 * TestClock).
 */
import { Deferred, Effect, Exit } from "effect"
import type { Scope } from "effect"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import type { Duplex } from "node:stream"
import { WebSocket, WebSocketServer } from "ws"
import { compressionOf } from "../transport/GatewayUrl.ts"
import type { Compression } from "../transport/GatewayUrl.ts"
import type { MessageCompressor } from "./SimulatorCompression.ts"
import { makeCompressor, splitMessage } from "./SimulatorCompression.ts"
import type { SimulatorOptions } from "./SimulatorOptions.ts"
import type { SimulatorConnectionHandlers, SimulatorControls, SimulatorPort } from "./SimulatorServer.ts"
import { makeSimulatorServer } from "./SimulatorServer.ts"
import type { ShardTarget } from "./SimulatorSessions.ts"

/** Options of the socket server: the simulator's (its URLs are the server's own) plus where to listen. */
export interface SimulatorSocketServerOptions extends Omit<SimulatorOptions, "baseUrl" | "resumeUrl"> {
  /** The only interface served: loopback. */
  readonly host?: "127.0.0.1"
  /** TCP port; 0 (the default) takes any free one. */
  readonly port?: number
  /** Send every zlib-stream message as two WebSocket messages (only the second ends `00 00 ff ff`). */
  readonly splitCompressedFrames?: boolean
}

/** A running socket server. */
export interface SimulatorSocketServer {
  /** The simulator's controls and recordings (the same core the HTTP control endpoint drives). */
  readonly controls: SimulatorControls
  /** `ws://127.0.0.1:<port>/gateway`: the `url` of `/gateway/bot`. */
  readonly gatewayUrl: string
  /** `ws://127.0.0.1:<port>/resume`: READY's `resume_gateway_url` (another path than `gatewayUrl`). */
  readonly resumeUrl: string
  /** `http://127.0.0.1:<port>/api` (REST clients append `/v10/gateway/bot`). */
  readonly apiBaseUrl: string
  /** `http://127.0.0.1:<port>/control` (append `/<action>?shard=…`). */
  readonly controlUrl: string
  /** The TCP port listened on. */
  readonly port: number
  /**
   * Waits until connection `connectionId` (a `RecordedConnection.id`) has closed on the socket, and
   * returns the close code `ws` saw (1006 without a close frame). The simulator's recordings already
   * reflect the close when it returns.
   */
  readonly awaitClosed: (connectionId: number) => Effect.Effect<number>
}

const Host = "127.0.0.1"
const GatewayPath = "/gateway"
const ResumePath = "/resume"
const ApiPrefix = "/api/v10"
const ControlPrefix = "/control/"
/** Largest control request body (a `raw` frame may be a deliberately huge one). */
const MaxBodyBytes = 16 * 1024 * 1024
/** A close frame's reason is at most 123 bytes (RFC 6455 §5.5); `ws` throws on longer ones. */
const MaxReasonBytes = 123

const truncateReason = (reason: string): string => {
  if (Buffer.byteLength(reason) <= MaxReasonBytes) return reason
  return Buffer.from(reason).subarray(0, MaxReasonBytes).toString("utf8").replace(/\uFFFD$/, "")
}

type Outgoing =
  | { readonly kind: "send"; readonly text: string }
  | { readonly kind: "close"; readonly code: number; readonly reason: string }
  | { readonly kind: "drop" }

/**
 * The output side of one connection: what the core sends, in order. Items wait until the WebSocket is
 * attached (the core sends Hello while the upgrade completes) and while a message is being compressed.
 */
class Outbox {
  private ws: WebSocket | undefined
  private readonly items: Array<Outgoing> = []
  private head = 0
  private busy = false
  private ended = false
  private readonly compressor: MessageCompressor | undefined
  private readonly split: boolean
  readonly port: SimulatorPort

  constructor(compressor: MessageCompressor | undefined, split: boolean) {
    this.compressor = compressor
    this.split = split
    this.port = {
      send: (text) => {
        // Fast path: uncompressed, attached and nothing queued.
        const ws = this.ws
        if (this.compressor === undefined && ws !== undefined && this.head === this.items.length && !this.ended) {
          if (ws.readyState === WebSocket.OPEN) ws.send(text)
          return
        }
        this.push({ kind: "send", text })
      },
      close: (code, reason) => this.push({ kind: "close", code, reason }),
      drop: () => this.push({ kind: "drop" })
    }
  }

  attach(ws: WebSocket): void {
    this.ws = ws
    this.pump()
  }

  /** The socket is gone: nothing more goes out. */
  end(): void {
    if (this.ended) return
    this.ended = true
    this.items.length = 0
    this.head = 0
    this.compressor?.destroy()
  }

  private push(item: Outgoing): void {
    if (this.ended) return
    this.items.push(item)
    this.pump()
  }

  private pump(): void {
    while (!this.busy && !this.ended && this.ws !== undefined && this.head < this.items.length) {
      const ws = this.ws
      const item = this.items[this.head++]!
      if (this.head === this.items.length) {
        this.items.length = 0
        this.head = 0
      }
      switch (item.kind) {
        case "send": {
          if (this.compressor === undefined) {
            if (ws.readyState === WebSocket.OPEN) ws.send(item.text)
            break
          }
          this.busy = true
          this.compressor.compress(item.text, (error, bytes) => {
            this.busy = false
            if (this.ended) return
            if (error !== undefined) {
              this.end()
              ws.terminate()
              return
            }
            if (ws.readyState === WebSocket.OPEN) {
              if (this.split) for (const part of splitMessage(bytes)) ws.send(part, { binary: true })
              else ws.send(bytes, { binary: true })
            }
            this.pump()
          })
          return
        }
        case "close": {
          this.end()
          try {
            ws.close(item.code, truncateReason(item.reason))
          } catch {
            // A code no close frame may carry (1005, 1006, …): end the connection without one.
            ws.terminate()
          }
          return
        }
        case "drop": {
          this.end()
          ws.terminate()
          return
        }
      }
    }
  }
}

/** `shard=<id>` or `shard=<id>/<count>`. */
const parseTarget = (value: string | null): ShardTarget | undefined => {
  if (value === null) return undefined
  const match = /^(\d+)(?:\/(\d+))?$/.exec(value)
  if (match === null) return undefined
  const id = Number(match[1])
  if (match[2] === undefined) return id
  const count = Number(match[2])
  return count >= 1 && id < count ? [id, count] : undefined
}

const parseBoolean = (value: string | null, fallback: boolean): boolean | undefined =>
  value === null ? fallback : value === "true" || value === "1" ? true : value === "false" || value === "0" ? false : undefined

class BadRequest {
  readonly status: number
  readonly message: string
  constructor(status: number, message: string) {
    this.status = status
    this.message = message
  }
}

const respond = (response: http.ServerResponse, status: number, body?: unknown) => {
  if (body === undefined) {
    response.writeHead(status).end()
    return
  }
  const text = JSON.stringify(body)
  response.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) }).end(text)
}

const rejectUpgrade = (socket: Duplex, status: number, message: string) => {
  const body = JSON.stringify({ message })
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ""}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  )
}

const readBody = (request: http.IncomingMessage, done: (body: string | BadRequest) => void) => {
  const chunks: Array<Buffer> = []
  let size = 0
  let failed = false
  request.on("data", (chunk: Buffer) => {
    if (failed) return
    size += chunk.length
    if (size > MaxBodyBytes) {
      failed = true
      done(new BadRequest(413, `body larger than ${MaxBodyBytes} bytes`))
      return
    }
    chunks.push(chunk)
  })
  request.on("end", () => {
    if (!failed) done(Buffer.concat(chunks, size).toString("utf8"))
  })
  request.on("error", () => {
    failed = true
  })
}

/**
 * Starts the simulator on a real socket in the current Scope: HTTP REST + control endpoint + WebSocket
 * gateway on one port of 127.0.0.1. A port already in use is a defect.
 */
export const make = (options: SimulatorSocketServerOptions): Effect.Effect<SimulatorSocketServer, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { host: _host, port: requestedPort, splitCompressedFrames, ...simulatorOptions } = options
    const split = splitCompressedFrames ?? false
    let stopped = false
    /** Every upgraded (or refused) TCP socket until it closes, so shutdown can end them all. */
    const sockets = new Set<Duplex>()

    const httpServer = http.createServer()
    const wss = new WebSocketServer({ noServer: true })
    const port = yield* Effect.acquireRelease(
      Effect.callback<number>((resume) => {
        const onError = (error: Error) => resume(Effect.die(error))
        httpServer.once("error", onError)
        httpServer.listen(requestedPort ?? 0, Host, () => {
          httpServer.off("error", onError)
          resume(Effect.succeed((httpServer.address() as AddressInfo).port))
        })
      }),
      () =>
        Effect.callback<void>((resume) => {
          stopped = true
          httpServer.close(() => resume(Effect.void))
          for (const client of wss.clients) client.terminate()
          for (const socket of sockets) socket.destroy()
          wss.close()
          httpServer.closeAllConnections()
        })
    )

    const origin = `${Host}:${port}`
    const gatewayUrl = `ws://${origin}${GatewayPath}`
    const resumeUrl = `ws://${origin}${ResumePath}`
    const apiBaseUrl = `http://${origin}/api`
    const controlUrl = `http://${origin}/control`

    const { open, ...controls } = yield* makeSimulatorServer({ ...simulatorOptions, baseUrl: gatewayUrl, resumeUrl })
    const context = yield* Effect.context<never>()
    const runSyncExit = Effect.runSyncExitWith(context)
    const runSync = Effect.runSyncWith(context)

    // ----- closes, per connection id: awaited ones, and the most recent codes (bounded, for long runs) -----
    const awaited = new Map<number, Deferred.Deferred<number>>()
    const recentCloses = new Map<number, number>()
    const socketClosed = (handlers: SimulatorConnectionHandlers, outbox: Outbox, code: number) => {
      outbox.end()
      if (!stopped) runSync(handlers.onClosed(code))
      const id = handlers.connectionId
      recentCloses.set(id, code)
      if (recentCloses.size > 4096) recentCloses.delete(recentCloses.keys().next().value!)
      const deferred = awaited.get(id)
      if (deferred !== undefined) {
        awaited.delete(id)
        Deferred.doneUnsafe(deferred, Exit.succeed(code))
      }
    }
    const awaitClosed = (id: number): Effect.Effect<number> =>
      Effect.suspend(() => {
        const code = recentCloses.get(id)
        if (code !== undefined) return Effect.succeed(code)
        let deferred = awaited.get(id)
        if (deferred === undefined) {
          deferred = Deferred.makeUnsafe<number>()
          awaited.set(id, deferred)
        }
        return Deferred.await(deferred)
      })

    // ----- WebSocket upgrades -----
    httpServer.on("upgrade", (request: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      socket.on("error", () => {})
      sockets.add(socket)
      socket.once("close", () => sockets.delete(socket))
      if (stopped) return rejectUpgrade(socket, 503, "the simulator is shutting down")
      const path = request.url ?? "/"
      const url = new URL(path, `http://${origin}`)
      if (url.pathname !== GatewayPath && url.pathname !== ResumePath) {
        return rejectUpgrade(socket, 404, `no gateway at ${url.pathname}`)
      }
      const encoding = url.searchParams.get("encoding")
      if (encoding !== null && encoding !== "json") {
        return rejectUpgrade(socket, 400, `the simulator speaks encoding=json only (asked: ${encoding})`)
      }
      const fullUrl = `ws://${origin}${path}`
      const compression: Compression = compressionOf(fullUrl)
      const outbox = new Outbox(compression === "none" ? undefined : makeCompressor(compression), split && compression === "zlib-stream")
      const opened = runSyncExit(open(fullUrl, outbox.port))
      if (Exit.isFailure(opened)) {
        outbox.end()
        return rejectUpgrade(socket, 503, "connection refused by the simulator")
      }
      const handlers = opened.value
      let attached = false
      socket.once("close", () => {
        if (!attached) socketClosed(handlers, outbox, 1006)
      })
      wss.handleUpgrade(request, socket, head, (ws) => {
        attached = true
        ws.on("error", () => {})
        ws.on("message", (data) => {
          if (stopped) return
          // The core speaks JSON text; a binary frame is read as UTF-8 (encoding=json only).
          const buffer = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)
          runSync(handlers.onFrame(buffer.toString("utf8")))
        })
        ws.once("close", (code) => socketClosed(handlers, outbox, code))
        outbox.attach(ws)
      })
    })

    // ----- REST and control -----
    const control = (
      action: string,
      query: URLSearchParams,
      body: string
    ): Effect.Effect<unknown> | BadRequest => {
      if (action === "dispatch") {
        let parsed: unknown
        try {
          parsed = JSON.parse(body)
        } catch {
          return new BadRequest(400, "dispatch needs a JSON body { event, data }")
        }
        if (typeof parsed !== "object" || parsed === null || typeof (parsed as { event?: unknown }).event !== "string") {
          return new BadRequest(400, "dispatch needs a JSON body { event, data }")
        }
        const { event, data } = parsed as { readonly event: string; readonly data?: unknown }
        return controls.dispatch(event, data ?? null)
      }
      const target = parseTarget(query.get("shard"))
      if (target === undefined) return new BadRequest(400, `${action} needs shard=<id> or shard=<id>/<count>`)
      switch (action) {
        case "drop":
          return controls.drop(target)
        case "close": {
          const code = Number(query.get("code"))
          if (!Number.isInteger(code) || code < 1000 || code > 4999) {
            return new BadRequest(400, "close needs code=<1000–4999>")
          }
          const reason = query.get("reason")
          return reason === null ? controls.close(target, code) : controls.close(target, code, reason)
        }
        case "reconnect":
          return controls.reconnect(target)
        case "invalidate": {
          const resumable = parseBoolean(query.get("resumable"), false)
          if (resumable === undefined) return new BadRequest(400, "resumable must be true or false")
          return controls.invalidateSession(target, resumable)
        }
        case "heartbeat-request":
          return controls.requestHeartbeat(target)
        case "withhold": {
          const on = parseBoolean(query.get("on"), true)
          if (on === undefined) return new BadRequest(400, "on must be true or false")
          return controls.withholdAcks(target, on)
        }
        case "raw":
          return controls.sendRaw(target, body)
        default:
          return new BadRequest(404, `unknown control action ${action}`)
      }
    }

    const reply = (response: http.ServerResponse, effect: Effect.Effect<unknown>, status: number) => {
      const exit = runSyncExit(effect)
      if (Exit.isFailure(exit)) respond(response, 500, { message: "the simulator failed to apply the request" })
      else respond(response, status, status === 204 ? undefined : exit.value)
    }

    httpServer.on("request", (request: http.IncomingMessage, response: http.ServerResponse) => {
      const url = new URL(request.url ?? "/", `http://${origin}`)
      const path = url.pathname
      const method = request.method ?? "GET"
      if (path === `${ApiPrefix}/gateway/bot` || path === `${ApiPrefix}/gateway`) {
        if (method !== "GET") return respond(response, 405, { message: "405: Method Not Allowed", code: 0 })
        if (path === `${ApiPrefix}/gateway`) return respond(response, 200, { url: gatewayUrl })
        const authorization = request.headers.authorization ?? ""
        const exit = runSyncExit(controls.gatewayBotRequest(authorization))
        if (Exit.isFailure(exit)) return respond(response, 500, { message: "500: Internal Server Error", code: 0 })
        return respond(response, exit.value.status, exit.value.body)
      }
      if (path === `${ControlPrefix}sessions` && method === "GET") return reply(response, controls.sessions, 200)
      if (path === `${ControlPrefix}connections` && method === "GET") return reply(response, controls.connections, 200)
      if (path.startsWith(ControlPrefix)) {
        if (method !== "POST") return respond(response, 405, { message: "control actions are POST requests" })
        const action = path.slice(ControlPrefix.length)
        return readBody(request, (body) => {
          if (body instanceof BadRequest) return respond(response, body.status, { message: body.message })
          const effect = control(action, url.searchParams, body)
          if (effect instanceof BadRequest) return respond(response, effect.status, { message: effect.message })
          reply(response, effect, 204)
        })
      }
      respond(response, 404, { message: "404: Not Found", code: 0 })
    })

    return {
      controls,
      gatewayUrl,
      resumeUrl,
      apiBaseUrl,
      controlUrl,
      port,
      awaitClosed
    } satisfies SimulatorSocketServer
  })

/**
 * Serves the simulator on a socket until interrupted (then closes every connection and the server).
 * Logs the gateway, REST and control URLs once listening.
 */
export const run = (options: SimulatorSocketServerOptions): Effect.Effect<never> =>
  Effect.scoped(Effect.gen(function*() {
    const server = yield* make(options)
    yield* Effect.logInfo(
      `gateway simulator listening: gateway ${server.gatewayUrl}, resume ${server.resumeUrl}, ` +
        `REST ${server.apiBaseUrl}/v10, control ${server.controlUrl}`
    )
    return yield* Effect.never
  }))
