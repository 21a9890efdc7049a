/**
 * Real-socket tests for NodeTransport against a `ws` WebSocketServer on 127.0.0.1 (PROTOCOL.md §1.2, §1.10,
 * §5; checklist items 2, 45, 46, 48, 49, 50). `it.live`: real clock, but nothing sleeps; every wait is on
 * an event (a connection, a message, a close).
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Queue } from "effect"
import * as net from "node:net"
import type { AddressInfo } from "node:net"
import * as zlib from "node:zlib"
import { ConnectFailed, ConnectionClosed, FrameDecodeError } from "../../src/Errors.ts"
import { GatewayTransport } from "../../src/transport/GatewayTransport.ts"
import type { GatewayConnection } from "../../src/transport/GatewayTransport.ts"
import { compressionOf, gatewayUrl } from "../../src/transport/GatewayUrl.ts"
import type { Compression } from "../../src/transport/GatewayUrl.ts"
import * as Inflater from "../../src/transport/Inflater.ts"
import * as NodeTransport from "../../src/transport/NodeTransport.ts"
import { decoded } from "../support/frames.ts"
import { compressor, message, serverSend, testServer } from "./wsServer.ts"
import type { ServerConnection, TestServer } from "./wsServer.ts"

/** Connects through the real transport and takes the matching server-side connection. */
const open = (server: TestServer, compression: Compression = "none") =>
  Effect.gen(function*() {
    const transport = yield* GatewayTransport
    const connection = yield* transport.connect(gatewayUrl(server.url, { compression }))
    const serverSide = yield* Queue.take(server.connections)
    return { connection, serverSide }
  })

/** Receives batches until `count` messages came out of `inflater` (each receive yields at least one frame). */
const receiveMessages = (connection: GatewayConnection, inflater: Inflater.Inflater, count: number) =>
  Effect.gen(function*() {
    const out: Array<string> = []
    while (out.length < count) {
      out.push(...decoded(yield* inflater.push(yield* connection.receive)))
    }
    return out
  })

/** Receives raw frames until `count` frames arrived. */
const receiveFrames = (connection: GatewayConnection, count: number) =>
  Effect.gen(function*() {
    const out: Array<string | Uint8Array> = []
    while (out.length < count) out.push(...decoded(yield* connection.receive))
    return out
  })

/** Sends `texts` from the server through one compression context, message `splitAt` in two WS messages. */
const sendCompressed = (
  serverSide: ServerConnection,
  kind: "zlib-stream" | "zstd-stream",
  texts: ReadonlyArray<string>,
  splitAt = -1
) =>
  Effect.gen(function*() {
    const compress = yield* compressor(kind)
    for (let i = 0; i < texts.length; i++) {
      const bytes = yield* compress(texts[i]!)
      if (i === 0) expect(bytes.subarray(0, 2).toString("hex")).toBe(kind === "zlib-stream" ? "789c" : "28b5")
      if (i === splitAt) {
        const head = bytes.subarray(0, bytes.length >> 1)
        expect(Inflater.endsWithSyncFlush(head)).toBe(false)
        yield* serverSend(serverSide.socket, head)
        yield* serverSend(serverSide.socket, bytes.subarray(head.length))
      } else {
        yield* serverSend(serverSide.socket, bytes)
      }
    }
  })

describe("NodeTransport", () => {
  it.live("text frames both ways; item 45: client frames are text frames of the JSON", () =>
    Effect.gen(function*() {
      const server = yield* testServer
      const { connection, serverSide } = yield* open(server)
      expect(serverSide.path).toBe("/?v=10&encoding=json")
      yield* serverSend(serverSide.socket, JSON.stringify({ op: 10, d: { heartbeat_interval: 41250 } }))
      yield* serverSend(serverSide.socket, JSON.stringify({ op: 11 }))
      expect(yield* receiveFrames(connection, 2)).toEqual([
        JSON.stringify({ op: 10, d: { heartbeat_interval: 41250 } }),
        JSON.stringify({ op: 11 })
      ])
      const identify = JSON.stringify({ op: 2, d: { token: "t", intents: 513, properties: { os: "linux" } } })
      yield* connection.send(JSON.stringify({ op: 1, d: null }))
      yield* connection.send(identify)
      expect(yield* Queue.take(serverSide.messages)).toEqual({ text: "{\"op\":1,\"d\":null}", isBinary: false })
      expect(yield* Queue.take(serverSide.messages)).toEqual({ text: identify, isBinary: false })
    }).pipe(Effect.provide(NodeTransport.layer)))

  it.live("a connection is a record: a wrapper that spreads it still receives, sends and closes", () =>
    Effect.gen(function*() {
      const server = yield* testServer
      const { connection, serverSide } = yield* open(server)
      const { close, receive, send } = { ...connection }
      yield* serverSend(serverSide.socket, JSON.stringify({ op: 11 }))
      expect(decoded(yield* receive)).toEqual([JSON.stringify({ op: 11 })])
      yield* send(JSON.stringify({ op: 1, d: null }))
      expect(yield* Queue.take(serverSide.messages)).toEqual({ text: "{\"op\":1,\"d\":null}", isBinary: false })
      yield* close(4000, "resume")
      expect(yield* Deferred.await(serverSide.closed)).toEqual({ code: 4000, reason: "resume" })
      expect(yield* Effect.flip(receive)).toMatchObject({ code: 4000, by: "client" })
    }).pipe(Effect.provide(NodeTransport.layer)))
  it.live("a READY-sized (multi-megabyte) frame arrives whole (§5.1)", () =>
    Effect.gen(function*() {
      const server = yield* testServer
      const { connection, serverSide } = yield* open(server)
      const big = JSON.stringify({ op: 0, t: "READY", d: { guilds: Array.from({ length: 200_000 }, (_, i) => ({ id: `${i}` })) } })
      expect(big.length).toBeGreaterThan(3_000_000)
      yield* serverSend(serverSide.socket, big)
      expect(yield* receiveFrames(connection, 1)).toEqual([big])
    }).pipe(Effect.provide(NodeTransport.layer)))

  it.live("server close 4004 surfaces as ConnectionClosed{4004, by server} after the frames before it", () =>
    Effect.gen(function*() {
      const server = yield* testServer
      const { connection, serverSide } = yield* open(server)
      yield* serverSend(serverSide.socket, "{\"op\":10}")
      serverSide.socket.close(4004, "Authentication failed")
      expect(decoded(yield* connection.receive)).toEqual(["{\"op\":10}"])
      const error = yield* Effect.flip(connection.receive)
      expect(error).toBeInstanceOf(ConnectionClosed)
      expect({ ...error }).toMatchObject({ code: 4004, reason: "Authentication failed", by: "server" })
      // send after the close fails instead of vanishing
      expect(yield* Effect.flip(connection.send("{}"))).toMatchObject({ code: 4004, by: "server" })
      // close after the server's close sends nothing and does not fail
      yield* connection.close(4000)
      expect((yield* Deferred.await(serverSide.closed)).code).toBe(4004)
    }).pipe(Effect.provide(NodeTransport.layer)))

  it.live("client close(4000) reaches the server as 4000, once; receive then fails with by client", () =>
    Effect.gen(function*() {
      const server = yield* testServer
      const { connection, serverSide } = yield* open(server)
      yield* connection.close(4000, "resume")
      yield* connection.close(1000, "ignored: close is idempotent")
      expect(yield* Deferred.await(serverSide.closed)).toEqual({ code: 4000, reason: "resume" })
      const error = yield* Effect.flip(connection.receive)
      expect({ ...error }).toMatchObject({ code: 4000, reason: "resume", by: "client" })
      expect(yield* Effect.flip(connection.send("{}"))).toMatchObject({ code: 4000, by: "client" })
    }).pipe(Effect.provide(NodeTransport.layer)))

  it.live("a receive waiting when we close fails at once with our close, though the server never answers it", () =>
    Effect.gen(function*() {
      const server = yield* testServer
      const { connection, serverSide } = yield* open(server)
      const waiting = yield* Effect.forkChild(Effect.flip(connection.receive), { startImmediately: true })
      // The server stops reading: our close frame is never answered (`ws` would wait 30 s for the answer).
      ;(serverSide.socket as unknown as { readonly _socket: net.Socket })._socket.pause()
      yield* connection.close(4000, "zombie")
      const error = yield* Fiber.join(waiting).pipe(Effect.timeoutOrElse({
        duration: "5 seconds",
        orElse: () => Effect.die(new Error("receive did not end with our close"))
      }))
      expect(error).toBeInstanceOf(ConnectionClosed)
      expect({ ...error }).toMatchObject({ code: 4000, reason: "zombie", by: "client" })
      expect(Deferred.isDoneUnsafe(serverSide.closed)).toBe(false)
    }).pipe(Effect.provide(NodeTransport.layer)))

  it.live("close with a code that may not be sent (1006) does nothing; a later close(4000) still works", () =>
    Effect.gen(function*() {
      const server = yield* testServer
      const { connection, serverSide } = yield* open(server)
      yield* connection.close(1006)
      yield* connection.send("{\"op\":1}") // still open
      expect((yield* Queue.take(serverSide.messages)).text).toBe("{\"op\":1}")
      yield* connection.close(4000)
      expect((yield* Deferred.await(serverSide.closed)).code).toBe(4000)
    }).pipe(Effect.provide(NodeTransport.layer)))

  it.live("a Scope closed without close() closes the socket with 1000", () =>
    Effect.gen(function*() {
      const server = yield* testServer
      const serverSide = yield* Effect.scoped(Effect.map(open(server), ({ serverSide }) => serverSide))
      expect((yield* Deferred.await(serverSide.closed)).code).toBe(1000)
    }).pipe(Effect.provide(NodeTransport.layer)))

  it.live("a connection whose Scope closed fails send and receive at once", () =>
    Effect.gen(function*() {
      const server = yield* testServer
      const { connection } = yield* Effect.scoped(open(server))
      expect(yield* Effect.flip(connection.send("{}"))).toBeInstanceOf(ConnectionClosed)
      expect(yield* Effect.flip(connection.receive)).toBeInstanceOf(ConnectionClosed)
      yield* connection.close(4000) // no-op, must not hang
    }).pipe(Effect.provide(NodeTransport.layer)))

  it.live("a server that drops the TCP socket gives ConnectionClosed{1006, by transport}", () =>
    Effect.gen(function*() {
      const server = yield* testServer
      const { connection, serverSide } = yield* open(server)
      serverSide.socket.terminate()
      const error = yield* Effect.flip(connection.receive)
      expect({ ...error }).toMatchObject({ code: 1006, by: "transport" })
    }).pipe(Effect.provide(NodeTransport.layer)))

  it.live("connecting to a closed port gives ConnectFailed with the url", () =>
    Effect.gen(function*() {
      const port = yield* Effect.callback<number>((resume) => {
        const probe = net.createServer().listen(0, "127.0.0.1", () => {
          const { port } = probe.address() as AddressInfo
          probe.close(() => resume(Effect.succeed(port)))
        })
      })
      const url = gatewayUrl(`ws://127.0.0.1:${port}`, { compression: "none" })
      const transport = yield* GatewayTransport
      const error = yield* Effect.flip(transport.connect(url))
      expect(error).toBeInstanceOf(ConnectFailed)
      expect(error.url).toBe(url)
      expect(error.detail).toContain("ECONNREFUSED")
    }).pipe(Effect.provide(NodeTransport.layer)))

  it.live("layerWith openTimeout: a server that never answers the handshake gives ConnectFailed, socket released", () =>
    Effect.gen(function*() {
      const tcpClosed = yield* Deferred.make<void>()
      const tcpOpened = yield* Deferred.make<void>()
      const sockets = new Set<net.Socket>()
      const server = yield* Effect.acquireRelease(
        Effect.callback<net.Server>((resume) => {
          // accepts TCP and reads the HTTP upgrade request, but never answers it
          const s = net.createServer((socket) => {
            sockets.add(socket)
            Deferred.doneUnsafe(tcpOpened, Effect.void)
            socket.resume()
            socket.on("close", () => Deferred.doneUnsafe(tcpClosed, Effect.void))
          })
          s.listen(0, "127.0.0.1", () => resume(Effect.succeed(s)))
        }),
        (s) =>
          Effect.callback<void>((resume) => {
            for (const socket of sockets) socket.destroy()
            s.close(() => resume(Effect.void))
          })
      )
      const { port } = server.address() as AddressInfo
      const transport = yield* GatewayTransport
      const error = yield* Effect.flip(transport.connect(`ws://127.0.0.1:${port}/?v=10&encoding=json`))
      expect(error).toBeInstanceOf(ConnectFailed)
      expect(error.detail).toContain("did not open within")
      yield* Deferred.await(tcpOpened)
      // released when connect failed, not when the test's Scope ends
      yield* Deferred.await(tcpClosed)
    }).pipe(Effect.provide(NodeTransport.layerWith({ openTimeout: "300 millis" }))))

  it.live("item 46 + 48: zlib-stream, 60 messages with one split, then a second connection with a fresh context", () =>
    Effect.gen(function*() {
      const server = yield* testServer
      for (let round = 0; round < 2; round++) {
        yield* Effect.scoped(Effect.gen(function*() {
          const { connection, serverSide } = yield* open(server, "zlib-stream")
          expect(serverSide.path).toBe("/?v=10&encoding=json&compress=zlib-stream")
          expect(compressionOf(`ws://x${serverSide.path}`)).toBe("zlib-stream")
          const inflater = yield* Inflater.make("zlib-stream")
          const texts = Array.from({ length: 60 }, (_, i) => message(round * 100 + i, i * 11))
          yield* sendCompressed(serverSide, "zlib-stream", texts, 52)
          expect(yield* receiveMessages(connection, inflater, texts.length)).toEqual(texts)
        }))
      }
    }).pipe(Effect.provide(NodeTransport.layer)))

  it.live("item 49 + 48: zstd-stream messages flushed in a never-ended frame, on two connections", () =>
    Effect.gen(function*() {
      const server = yield* testServer
      for (let round = 0; round < 2; round++) {
        yield* Effect.scoped(Effect.gen(function*() {
          const { connection, serverSide } = yield* open(server, "zstd-stream")
          expect(serverSide.path).toBe("/?v=10&encoding=json&compress=zstd-stream")
          const inflater = yield* Inflater.make("zstd-stream")
          const texts = Array.from({ length: 40 }, (_, i) => message(round * 100 + i, i * 29))
          yield* sendCompressed(serverSide, "zstd-stream", texts)
          expect(yield* receiveMessages(connection, inflater, texts.length)).toEqual(texts)
        }))
      }
    }).pipe(Effect.provide(NodeTransport.layer)))

  it.live("item 50: payload compression, a mix of text frames and standalone zlib binary frames", () =>
    Effect.gen(function*() {
      const server = yield* testServer
      const { connection, serverSide } = yield* open(server)
      const inflater = yield* Inflater.make("none")
      const texts = Array.from({ length: 10 }, (_, i) => message(i, i * 300))
      for (let i = 0; i < texts.length; i++) {
        yield* serverSend(serverSide.socket, i % 2 === 0 ? texts[i]! : zlib.deflateSync(texts[i]!))
      }
      const frames = yield* receiveFrames(connection, texts.length)
      expect(frames.map((frame) => typeof frame)).toEqual(texts.map((_, i) => i % 2 === 0 ? "string" : "object"))
      expect(decoded(yield* inflater.push(frames))).toEqual(texts)
    }).pipe(Effect.provide(NodeTransport.layer)))

  it.live("a corrupt compressed frame on the wire gives FrameDecodeError", () =>
    Effect.gen(function*() {
      const server = yield* testServer
      const { connection, serverSide } = yield* open(server, "zlib-stream")
      const inflater = yield* Inflater.make("zlib-stream")
      const compress = yield* compressor("zlib-stream")
      yield* serverSend(serverSide.socket, yield* compress(message(0)))
      // 0x06: a deflate block of the reserved type 11, invalid wherever it appears
      yield* serverSend(serverSide.socket, new Uint8Array([0x06, 0x37, 0xde, 0xad, 0x00, 0x00, 0xff, 0xff]))
      const result = yield* Effect.flip(receiveMessages(connection, inflater, 2))
      expect(result).toBeInstanceOf(FrameDecodeError)
    }).pipe(Effect.provide(NodeTransport.layer)))
})
