/**
 * Test helpers for the transport tests: a real `ws` WebSocketServer on 127.0.0.1 (port 0) living in the
 * test's Scope, and the server side of transport compression (one zlib deflate or zstd compressor per
 * connection, flushed after every message, as the gateway does: PROTOCOL.md §5.4–5.5).
 *
 * Everything is event driven: connections, messages and closes arrive through Queues and Deferreds.
 */
import { Deferred, Effect, Queue } from "effect"
import type { Scope } from "effect"
import type { IncomingMessage } from "node:http"
import type { AddressInfo } from "node:net"
import * as zlib from "node:zlib"
import { WebSocketServer } from "ws"
import type { WebSocket } from "ws"

export interface ServerMessage {
  readonly text: string
  readonly isBinary: boolean
}

export interface ServerConnection {
  readonly socket: WebSocket
  /** The request path and query the client asked for. */
  readonly path: string
  readonly messages: Queue.Queue<ServerMessage>
  readonly closed: Deferred.Deferred<{ readonly code: number; readonly reason: string }>
}

export interface TestServer {
  /** `ws://127.0.0.1:<port>` */
  readonly url: string
  readonly connections: Queue.Queue<ServerConnection>
}

/** A WebSocket server for one test; closed (and its clients terminated) with the Scope. */
export const testServer: Effect.Effect<TestServer, never, Scope.Scope> = Effect.gen(function*() {
  const connections = yield* Queue.unbounded<ServerConnection>()
  const runSync = Effect.runSyncWith(yield* Effect.context<never>())
  const wss = yield* Effect.acquireRelease(
    Effect.callback<WebSocketServer>((resume) => {
      const server = new WebSocketServer({ host: "127.0.0.1", port: 0 })
      server.once("listening", () => resume(Effect.succeed(server)))
    }),
    (server) =>
      Effect.callback<void>((resume) => {
        for (const client of server.clients) client.terminate()
        server.close(() => resume(Effect.void))
      })
  )
  wss.on("connection", (socket: WebSocket, request: IncomingMessage) => {
    const messages = runSync(Queue.unbounded<ServerMessage>())
    const closed = Deferred.makeUnsafe<{ readonly code: number; readonly reason: string }>()
    socket.on("message", (data, isBinary) => {
      const text = Array.isArray(data) ? Buffer.concat(data).toString() : Buffer.from(data as Buffer).toString()
      Queue.offerUnsafe(messages, { text, isBinary })
    })
    socket.on("close", (code, reason) => {
      Deferred.doneUnsafe(closed, Effect.succeed({ code, reason: reason.toString() }))
    })
    Queue.offerUnsafe(connections, { socket, path: request.url ?? "", messages, closed })
  })
  const { port } = wss.address() as AddressInfo
  return { url: `ws://127.0.0.1:${port}`, connections }
})

/** Sends one frame from the server and waits until `ws` has written it. */
export const serverSend = (socket: WebSocket, data: string | Uint8Array): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    socket.send(data, { binary: typeof data !== "string" }, () => resume(Effect.void))
  })

/**
 * One server-side compression context (one per connection): `compress(text)` returns the bytes the
 * gateway would send for that message (zlib: ending `00 00 ff ff`; zstd: a flushed, never-ended frame).
 */
export const compressor = (
  kind: "zlib-stream" | "zstd-stream"
): Effect.Effect<(text: string) => Effect.Effect<Buffer>, never, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(
      Effect.sync(() => kind === "zlib-stream" ? zlib.createDeflate() : zlib.createZstdCompress()),
      (stream) => Effect.sync(() => stream.destroy())
    ),
    (stream) => {
      const chunks: Array<Buffer> = []
      stream.on("data", (chunk: Buffer) => chunks.push(chunk))
      const flushKind = kind === "zlib-stream" ? zlib.constants.Z_SYNC_FLUSH : zlib.constants.ZSTD_e_flush
      return (text: string) =>
        Effect.callback<Buffer>((resume) => {
          chunks.length = 0
          stream.write(text)
          stream.flush(flushKind, () => resume(Effect.succeed(Buffer.concat(chunks))))
        })
    }
  )

/** A gateway-like JSON message with some non-ASCII text, `size` characters of padding. */
export const message = (seq: number, size = 40): string =>
  JSON.stringify({ op: 0, s: seq, t: "MESSAGE_CREATE", d: { content: `héllo ✓ 🎉 #${seq} ${"x".repeat(size)}` } })
