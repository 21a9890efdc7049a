/**
 * The simulator core (`makeSimulatorServer`, the protocol logic shared by the in-process simulator and
 * `SimulatorSocketServer`, PROTOCOL.md §9) behind a socket transport built to generate load, for the
 * dispatch benchmarks. Everything protocol-related happens in the core exactly as with
 * `SimulatorSocketServer`: Hello, IDENTIFY/READY, heartbeats and ACKs, routing, numbering (`s`), the
 * replay buffer and the frame text of every dispatch. Only the wire side differs:
 *
 * - `hold()` / `release()`: while held, every frame the core sends is encoded, compressed and framed
 *   as a WebSocket frame but kept in memory; `release()` writes them all at once in large writes. A run
 *   dispatches its events through the core while held (untimed), then the timed part is the release: the
 *   producer then costs a few large `write`s, so the clients, not the producer, set the pace.
 *   (`SimulatorSocketServer` writes each frame with its own system call and compresses each zlib-stream
 *   message with one thread-pool round trip: on this machine about 30 000 frames/s uncompressed and
 *   4 000 messages/s with zlib-stream — below every client measured.)
 * - zlib-stream (§5.4) is produced synchronously: the first message of a connection is a zlib stream
 *   start (`78 9c …`), each later one raw deflate blocks whose preset dictionary is the last 4 KiB of the
 *   text already sent on the connection, each ending with a sync flush (`00 00 ff ff`). That is a valid
 *   continuation of one zlib stream (back-references only reach text the client's inflate context already
 *   holds), with a compression ratio close to Discord's one-context stream (about 250 of 1150 bytes per
 *   MESSAGE_CREATE, against 233 with one deflate context), and it costs no thread-pool round trip.
 *
 * REST: `GET /api/v10/gateway/bot` and `/api/v10/gateway` as the core answers them. WebSocket on
 * `/gateway` and `/resume`. 127.0.0.1 only. Everything is released with the Scope of `make`.
 */
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import type { Duplex } from "node:stream"
import * as zlib from "node:zlib"
import { Effect, Exit } from "effect"
import type { Scope } from "effect"
import { type WebSocket, WebSocketServer } from "ws"
import type { SimulatorControls, SimulatorPort } from "../src/testing/SimulatorServer.ts"
import { makeSimulatorServer } from "../src/testing/SimulatorServer.ts"
import type { SimulatorOptions } from "../src/testing/SimulatorOptions.ts"

export interface LoadServer {
  readonly controls: SimulatorControls
  readonly gatewayUrl: string
  readonly resumeUrl: string
  readonly apiBaseUrl: string
  /** From now on, frames are kept (encoded and framed) instead of written. */
  readonly hold: () => void
  /** Writes every kept frame, in order, in large writes, and stops holding. */
  readonly release: () => void
}

const Host = "127.0.0.1"
const DictionaryBytes = 4096
/** Held frames are packed into writes of about this size. */
const WriteBytes = 1 << 20

/** One connection's zlib-stream encoder (see the module doc). */
const zlibStream = () => {
  let history: Buffer | undefined
  return (text: Buffer): Buffer => {
    const out = history === undefined
      ? zlib.deflateSync(text, { finishFlush: zlib.constants.Z_SYNC_FLUSH })
      : zlib.deflateRawSync(text, { windowBits: 12, memLevel: 4, dictionary: history, finishFlush: zlib.constants.Z_SYNC_FLUSH })
    const joined = history === undefined ? text : Buffer.concat([history, text])
    history = joined.length > DictionaryBytes ? joined.subarray(joined.length - DictionaryBytes) : joined
    return out
  }
}

/** The header of an unmasked server frame (RFC 6455 §5.2) carrying `length` bytes. */
const frameHeader = (binary: boolean, length: number): Buffer => {
  const opcode = binary ? 0x82 : 0x81
  if (length < 126) return Buffer.from([opcode, length])
  if (length < 65536) return Buffer.from([opcode, 126, length >> 8, length & 0xff])
  const header = Buffer.alloc(10)
  header[0] = opcode
  header[1] = 127
  header.writeBigUInt64BE(BigInt(length), 2)
  return header
}

/** The output side of one connection. */
class Wire {
  private socket: Duplex | undefined
  private ws: WebSocket | undefined
  private held: Array<Buffer> = []
  private holding: boolean
  private ended = false
  private readonly compress: ((text: Buffer) => Buffer) | undefined
  readonly port: SimulatorPort

  constructor(compressed: boolean, holding: boolean) {
    this.compress = compressed ? zlibStream() : undefined
    this.holding = holding
    this.port = {
      send: (text) => this.send(text),
      close: (code, reason) => this.end((ws) => ws.close(code, reason.slice(0, 120))),
      drop: () => this.end((ws) => ws.terminate())
    }
  }

  attach(ws: WebSocket, socket: Duplex) {
    this.ws = ws
    this.socket = socket
    if (!this.holding) this.flush()
  }

  hold() {
    this.holding = true
  }

  release() {
    this.holding = false
    this.flush()
  }

  detach() {
    this.ended = true
    this.held = []
  }

  private send(text: string) {
    if (this.ended) return
    const bytes = Buffer.from(text)
    const payload = this.compress === undefined ? bytes : this.compress(bytes)
    this.held.push(frameHeader(this.compress !== undefined, payload.length), payload)
    if (!this.holding && this.socket !== undefined) this.flush()
  }

  /** Writes what is held, packed into large writes. */
  private flush() {
    const socket = this.socket
    if (socket === undefined || this.held.length === 0) return
    const held = this.held
    this.held = []
    let start = 0
    let size = 0
    for (let i = 0; i < held.length; i++) {
      size += held[i]!.length
      if (size >= WriteBytes || i === held.length - 1) {
        socket.write(start === i ? held[i]! : Buffer.concat(held.slice(start, i + 1), size))
        start = i + 1
        size = 0
      }
    }
  }

  private end(act: (ws: WebSocket) => void) {
    if (this.ended) return
    this.flush()
    this.ended = true
    if (this.ws !== undefined) act(this.ws)
  }
}

/** Starts the load server in the current Scope. */
export const make = (options: Omit<SimulatorOptions, "baseUrl" | "resumeUrl">): Effect.Effect<LoadServer, never, Scope.Scope> =>
  Effect.gen(function*() {
    const httpServer = http.createServer()
    const wss = new WebSocketServer({ noServer: true })
    const sockets = new Set<Duplex>()
    const wires = new Set<Wire>()
    let holding = false
    const port = yield* Effect.acquireRelease(
      Effect.callback<number>((resume) => {
        httpServer.listen(0, Host, () => resume(Effect.succeed((httpServer.address() as AddressInfo).port)))
      }),
      () =>
        Effect.callback<void>((resume) => {
          httpServer.close(() => resume(Effect.void))
          for (const socket of sockets) socket.destroy()
          wss.close()
          httpServer.closeAllConnections()
        })
    )
    const origin = `${Host}:${port}`
    const gatewayUrl = `ws://${origin}/gateway`
    const resumeUrl = `ws://${origin}/resume`
    const { open, ...controls } = yield* makeSimulatorServer({ ...options, baseUrl: gatewayUrl, resumeUrl })
    const runSync = Effect.runSyncWith(yield* Effect.context<never>())
    const runSyncExit = Effect.runSyncExitWith(yield* Effect.context<never>())

    httpServer.on("upgrade", (request: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      socket.on("error", () => {})
      sockets.add(socket)
      socket.once("close", () => sockets.delete(socket))
      const url = new URL(request.url ?? "/", `http://${origin}`)
      const wire = new Wire(url.searchParams.get("compress") === "zlib-stream", holding)
      const opened = runSyncExit(open(`ws://${origin}${request.url ?? "/"}`, wire.port))
      if (Exit.isFailure(opened)) {
        socket.end("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        return
      }
      const handlers = opened.value
      wires.add(wire)
      wss.handleUpgrade(request, socket, head, (ws) => {
        ws.on("error", () => {})
        ws.on("message", (data: Buffer) => runSync(handlers.onFrame(data.toString("utf8"))))
        ws.once("close", (code) => {
          wire.detach()
          wires.delete(wire)
          runSync(handlers.onClosed(code))
        })
        wire.attach(ws, socket)
      })
    })

    httpServer.on("request", (request: http.IncomingMessage, response: http.ServerResponse) => {
      const path = new URL(request.url ?? "/", `http://${origin}`).pathname
      const reply = (status: number, body: unknown) => {
        const text = JSON.stringify(body)
        response.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) }).end(text)
      }
      if (path === "/api/v10/gateway") return reply(200, { url: gatewayUrl })
      if (path !== "/api/v10/gateway/bot") return reply(404, { message: "404: Not Found", code: 0 })
      const answer = runSync(controls.gatewayBotRequest(request.headers.authorization ?? ""))
      reply(answer.status, answer.body)
    })

    return {
      controls,
      gatewayUrl,
      resumeUrl,
      apiBaseUrl: `http://${origin}/api`,
      hold: () => {
        holding = true
        for (const wire of wires) wire.hold()
      },
      release: () => {
        holding = false
        for (const wire of wires) wire.release()
      }
    } satisfies LoadServer
  })
