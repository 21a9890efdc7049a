/**
 * CoalescingWebSocket over real `ws` sockets on 127.0.0.1 (plus a fake `ws` emitter where a same-tick race
 * has to be forced). It proves:
 * - the frames one TCP read carries reach a `message` listener as ONE `FrameBatch`: text frames undecoded
 *   (`TextFrame`),
 *   binary frames as bytes, in wire order, with `byteLength` = their size on the wire (UTF-8 bytes);
 * - frames received before a close or an error are delivered before that event is passed on;
 * - through NodeTransport, a burst is handed to `receive` in a few batches (a pending `receive` gets the whole
 *   read, not only its first frame), then the server's close fails `receive` with ConnectionClosed;
 * - effect/socket's backpressure still pauses the `ws` socket at its high-water mark, and no frame is lost;
 * - EventTarget rules for listeners: removeEventListener, `once`, one registration per (type, listener);
 * - a send woken by frames flushed with a close already sees that close (code and reason as `ws` got them);
 * - an 'error' on the `ws` socket with no error listener does not throw (the adapter's guard).
 * `it.live`: the real clock, but nothing sleeps; every wait is on an event and bounded by `bounded`.
 */
import { describe, expect, it, vi } from "@effect/vitest"
import { Deferred, Effect, Fiber, Queue } from "effect"
import type { Socket } from "effect/socket"
import { EventEmitter } from "node:events"
import type * as net from "node:net"
import { WebSocket } from "ws"
import { ConnectionClosed } from "../../src/Errors.ts"
import { CoalescingWebSocket, FrameBatch } from "../../src/transport/CoalescingWebSocket.ts"
import type { NodeWebSocket } from "../../src/transport/CoalescingWebSocket.ts"
import { GatewayTransport } from "../../src/transport/GatewayTransport.ts"
import { gatewayUrl } from "../../src/transport/GatewayUrl.ts"
import * as NodeTransport from "../../src/transport/NodeTransport.ts"
import { type Frame, TextFrame } from "../../src/transport/TextFrame.ts"
import { decoded } from "../support/frames.ts"
import { message, testServer } from "./wsServer.ts"
import type { ServerConnection, TestServer } from "./wsServer.ts"

/** Bounds a wait on an event, so a broken adapter fails the test instead of hanging it. */
const bounded = (what: string) => <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.timeoutOrElse(self, {
    duration: "5 seconds",
    orElse: () => Effect.die(new Error(`timed out waiting for ${what}`))
  })

/**
 * A raw `ws` client wrapped in CoalescingWebSocket, open, and its server-side connection; `setup` runs on the
 * wrapper before the handshake. The client is terminated with the test's Scope.
 */
const rawClient = (server: TestServer, setup: (socket: CoalescingWebSocket) => void = () => {}) =>
  Effect.gen(function*() {
    const ws = yield* Effect.acquireRelease(
      Effect.sync(() => new WebSocket(server.url)),
      (ws) => Effect.sync(() => ws.terminate())
    )
    const socket = new CoalescingWebSocket(ws as unknown as NodeWebSocket)
    setup(socket)
    yield* Effect.callback<void>((resume) => {
      socket.addEventListener("open", () => resume(Effect.void), { once: true })
    }).pipe(bounded("open"))
    const serverSide: ServerConnection = yield* Queue.take(server.connections).pipe(bounded("the server connection"))
    return { ws, socket, serverSide }
  })

/** Every `message` event of `socket`, in order, in a Queue. */
const messageEvents = (socket: CoalescingWebSocket) =>
  Effect.gen(function*() {
    const events = yield* Queue.unbounded<Socket.WebSocketEvent>()
    socket.addEventListener("message", (event) => {
      Queue.offerUnsafe(events, event)
    })
    return events
  })

const batchOf = (event: Socket.WebSocketEvent): FrameBatch => {
  expect(event.type).toBe("message")
  expect(event.data).toBeInstanceOf(FrameBatch)
  return event.data as FrameBatch
}

const wireBytes = (frames: ReadonlyArray<string | Uint8Array>): number =>
  frames.reduce((sum, frame) => sum + (typeof frame === "string" ? Buffer.byteLength(frame) : frame.byteLength), 0)

/** Frames in a comparable shape: text as `t:<text>`, binary as `b:<hex>` (a string is never binary, and back). */
const shape = (frames: ReadonlyArray<string | Uint8Array>): Array<string> =>
  frames.map((frame) => typeof frame === "string" ? `t:${frame}` : `b:${Buffer.from(frame).toString("hex")}`)

/**
 * Sends the frames from the server as ONE TCP write: the `ws` frames (and whatever `andThen` sends, e.g. a close
 * frame) are corked into a single writev, so the client reads them in one go. Separate small writes would not
 * do: the kernel may deliver them to the client in several reads (Nagle, autocorking).
 */
const burst = (
  socket: ServerConnection["socket"],
  frames: ReadonlyArray<string | Uint8Array>,
  andThen: () => void = () => {}
) => {
  // `_socket` is ws's (undocumented) net.Socket
  const tcp = (socket as unknown as { readonly _socket: net.Socket })._socket
  tcp.cork()
  for (const frame of frames) socket.send(frame, { binary: typeof frame !== "string" })
  andThen()
  tcp.uncork()
}

/** A stand-in for `ws`'s WebSocket (an EventEmitter with its flow control) to emit events in one tick. */
class FakeWs extends EventEmitter {
  readyState = 1
  isPaused = false
  pause() {
    this.isPaused = true
  }
  resume() {
    this.isPaused = false
  }
  close() {}
  send() {}
}

const fake = () => {
  const ws = new FakeWs()
  return { ws, socket: new CoalescingWebSocket(ws as unknown as NodeWebSocket) }
}

/** A NodeTransport connection to a fresh test server, and the server's side of it. */
const transportConnection = Effect.gen(function*() {
  const server = yield* testServer
  const transport = yield* GatewayTransport
  const connection = yield* transport.connect(gatewayUrl(server.url, { compression: "none" })).pipe(bounded("connect"))
  const serverSide = yield* Queue.take(server.connections).pipe(bounded("the server connection"))
  return { connection, serverSide }
})

/** Lets every queued microtask run (the adapter flushes in one). */
const drainMicrotasks = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

describe("CoalescingWebSocket", () => {
  it.live("50 text frames of one write burst arrive as ONE FrameBatch, in order, byteLength in UTF-8 bytes", () =>
    Effect.gen(function*() {
      const server = yield* testServer
      const { serverSide, socket } = yield* rawClient(server)
      const events = yield* messageEvents(socket)
      const frames = Array.from({ length: 50 }, (_, i) => i === 7 ? `héllo ✓ 🎉 ${i}` : `{"op":0,"s":${i}}`)
      expect(wireBytes(frames)).toBeGreaterThan(frames.join("").length) // the non-ASCII frame: bytes ≠ chars
      burst(serverSide.socket, frames)
      const batch = batchOf(yield* Queue.take(events).pipe(bounded("the batch")))
      expect(decoded(batch.frames)).toEqual(frames)
      // Text is handed over undecoded: whoever reads it decodes it (a shard skips events nobody wants).
      expect(batch.frames.every((frame) => frame instanceof TextFrame)).toBe(true)
      expect(batch.byteLength).toBe(wireBytes(frames))
      // one event for the whole burst
      expect(yield* Queue.size(events)).toBe(0)

      // a later burst is a new batch holding only its own frames
      burst(serverSide.socket, ["after"])
      const next = batchOf(yield* Queue.take(events).pipe(bounded("the second batch")))
      expect(decoded(next.frames)).toEqual(["after"])
      expect(next.byteLength).toBe(5)
    }))

  it.live("binary frames arrive as bytes and text frames as TextFrames, interleaved in wire order", () =>
    Effect.gen(function*() {
      const server = yield* testServer
      const { serverSide, socket } = yield* rawClient(server)
      const events = yield* messageEvents(socket)
      const frames: Array<string | Uint8Array> = [
        "first ✓",
        new Uint8Array([0x78, 0x9c, 0x00, 0xff]),
        "",
        new Uint8Array([]),
        Buffer.from("bytes that look like text"),
        "{\"op\":11}",
        new Uint8Array(Array.from({ length: 300 }, (_, i) => i & 0xff))
      ]
      burst(serverSide.socket, frames)
      const batch = batchOf(yield* Queue.take(events).pipe(bounded("the batch")))
      expect(batch.frames.map((frame) => frame instanceof TextFrame ? "text" : "binary")).toEqual(
        frames.map((frame) => typeof frame === "string" ? "text" : "binary")
      )
      for (const frame of batch.frames) if (!(frame instanceof TextFrame)) expect(frame).toBeInstanceOf(Uint8Array)
      expect(shape(decoded(batch.frames))).toEqual(shape(frames))
      expect(batch.byteLength).toBe(wireBytes(frames))
    }))

  it.live("frames sent with a close in the same tick are all delivered before the close listener runs", () =>
    Effect.gen(function*() {
      const server = yield* testServer
      const log: Array<string> = []
      const closed = yield* Deferred.make<void>()
      const { serverSide } = yield* rawClient(server, (socket) => {
        socket.addEventListener("message", (event) => {
          for (const frame of decoded((event.data as FrameBatch).frames)) log.push(`frame ${String(frame)}`)
        })
        socket.addEventListener("close", (event) => {
          log.push(`close ${event.code} ${event.reason}`)
          Deferred.doneUnsafe(closed, Effect.void)
        })
      })
      const frames = Array.from({ length: 10 }, (_, i) => `frame-${i}-é`)
      burst(serverSide.socket, frames, () => serverSide.socket.close(4001, "going away ✓"))
      yield* Deferred.await(closed).pipe(bounded("close"))
      expect(log).toEqual([...frames.map((frame) => `frame ${frame}`), "close 4001 going away ✓"])
    }))

  it.live("pending frames are flushed before a close or error emitted in the same tick (fake ws)", () =>
    Effect.gen(function*() {
      for (const type of ["close", "error"] as const) {
        const { socket, ws } = fake()
        const log: Array<unknown> = []
        socket.addEventListener("message", (event) => log.push(decoded((event.data as FrameBatch).frames)))
        socket.addEventListener(type, (event) => log.push({ ...event }))
        ws.emit("message", Buffer.from("a"), false)
        ws.emit("message", Buffer.from([1, 2]), true)
        const error = new Error("boom")
        // no microtask runs between the frames and this event
        if (type === "close") ws.emit("close", 4003, Buffer.from("bye"))
        else ws.emit("error", error)
        expect(log).toEqual([
          ["a", Buffer.from([1, 2])],
          type === "close"
            ? { type: "close", code: 4003, reason: "bye" }
            : { type: "error", error, message: "boom" }
        ])
        // the flush queued for those frames finds nothing left: no second (empty or repeated) batch
        yield* drainMicrotasks
        expect(log).toHaveLength(2)
      }
    }))

  it.live("NodeTransport: a 200-frame burst comes out of receive in a few batches, then ConnectionClosed 4000", () =>
    Effect.gen(function*() {
      const { connection, serverSide } = yield* transportConnection
      const N = 200
      const texts = Array.from({ length: N }, (_, i) => message(i))
      // The burst answers a client frame, so `receive` below is already waiting when it arrives.
      serverSide.socket.once("message", () => {
        burst(serverSide.socket, texts, () => serverSide.socket.close(4000, "bye"))
      })
      yield* connection.send("go")
      const batches: Array<ReadonlyArray<Frame>> = []
      const error = yield* Effect.gen(function*() {
        while (true) batches.push(yield* connection.receive)
      }).pipe(Effect.flip, bounded("the frames and the close"))
      expect(decoded(batches.flat())).toEqual(texts)
      expect(batches.length).toBeLessThan(N / 2)
      // Without coalescing, a waiting receive is resumed by the first frame alone.
      expect(batches[0]!.length).toBeGreaterThan(1)
      expect(error).toBeInstanceOf(ConnectionClosed)
      expect({ ...error }).toMatchObject({ code: 4000, reason: "bye", by: "server" })
    }).pipe(Effect.provide(NodeTransport.layer)))

  it.live("NodeTransport backpressure: 4 MiB unread pauses the ws socket; all frames then arrive intact, in order", () =>
    Effect.gen(function*() {
      const { connection, serverSide } = yield* transportConnection

      // Observe (not change) the client socket's flow control: pause/resume still run the real `ws` methods.
      const paused = yield* Deferred.make<{ readonly isPaused: boolean; readonly bytesRead: number }>()
      const pause = WebSocket.prototype.pause
      const spies = yield* Effect.acquireRelease(
        Effect.sync(() => ({
          pause: vi.spyOn(WebSocket.prototype, "pause").mockImplementation(function(this: WebSocket) {
            pause.call(this)
            if (this === serverSide.socket) return
            // `_socket` is ws's (undocumented) net.Socket: how much the client had read when it paused
            const seen = { isPaused: this.isPaused, bytesRead: (this as unknown as { readonly _socket: net.Socket })._socket.bytesRead }
            // Not synchronously: completing the Deferred would run the test fiber inside effect/socket's pause.
            queueMicrotask(() => Deferred.doneUnsafe(paused, Effect.succeed(seen)))
          }),
          resume: vi.spyOn(WebSocket.prototype, "resume")
        })),
        (spies) =>
          Effect.sync(() => {
            spies.pause.mockRestore()
            spies.resume.mockRestore()
          })
      )
      const clientCalls = (spy: typeof spies.resume) => spy.mock.contexts.filter((ws) => ws !== serverSide.socket).length

      const FRAME = 16 * 1024
      const COUNT = 256 // 4 MiB
      const texts = Array.from({ length: COUNT }, (_, i) => `${String(i).padStart(5, "0")}:`.padEnd(FRAME, "abcdefgh"[i % 8]))
      burst(serverSide.socket, texts)

      // No receive yet: effect/socket must pause `ws` once 64 KiB (counted by FrameBatch.byteLength) are buffered.
      const atPause = yield* Deferred.await(paused).pipe(bounded("the client ws to be paused"))
      expect(atPause.isPaused).toBe(true)
      expect(atPause.bytesRead).toBeLessThan((COUNT * FRAME) / 4) // paused long before the burst was read
      expect(clientCalls(spies.resume)).toBe(0)

      const frames: Array<Frame> = []
      yield* Effect.gen(function*() {
        while (frames.length < COUNT) frames.push(...(yield* connection.receive))
      }).pipe(bounded("all frames"))
      expect(frames.length).toBe(COUNT)
      expect(decoded(frames).every((frame, i) => frame === texts[i])).toBe(true)
      // receiving drained the buffer and resumed the socket (it paused again as the rest came in)
      expect(clientCalls(spies.resume)).toBeGreaterThan(0)
      expect(clientCalls(spies.pause)).toBeGreaterThan(0)
    }).pipe(Effect.provide(NodeTransport.layer)))

  it.live("removeEventListener removes open/close/error/message listeners; once listeners fire once", () =>
    Effect.gen(function*() {
      const server = yield* testServer
      const calls: Record<string, number> = {}
      const count = (name: string) => () => {
        calls[name] = (calls[name] ?? 0) + 1
      }
      const closed = yield* Deferred.make<void>()
      const removedOpen = count("removedOpen")
      const removedClose = count("removedClose")
      const keptClose = count("keptClose")
      const onceClose = count("onceClose")
      const twiceAddedClose = count("twiceAddedClose")
      const { serverSide, socket, ws } = yield* rawClient(server, (socket) => {
        socket.addEventListener("open", count("keptOpen"))
        socket.addEventListener("open", removedOpen)
        socket.removeEventListener("open", removedOpen)
      })
      expect(calls).toEqual({ keptOpen: 1 })

      // error: a once listener, a plain one, a removed one
      const removedError = count("removedError")
      const errors: Array<string | undefined> = []
      socket.addEventListener("error", count("onceError"), { once: true })
      socket.addEventListener("error", (event) => errors.push((event as { readonly message?: string }).message))
      socket.addEventListener("error", removedError)
      socket.removeEventListener("error", removedError)
      ws.emit("error", new Error("first"))
      ws.emit("error", new Error("second"))
      expect(errors).toEqual(["first", "second"])
      expect(calls).toEqual({ keptOpen: 1, onceError: 1 })

      // message: a removed listener gets nothing, the remaining one gets the frame
      const removedMessage = count("removedMessage")
      socket.addEventListener("message", removedMessage)
      const events = yield* messageEvents(socket)
      socket.removeEventListener("message", removedMessage)
      burst(serverSide.socket, ["x"])
      expect(decoded(batchOf(yield* Queue.take(events).pipe(bounded("the frame"))).frames)).toEqual(["x"])

      // close: removed, kept, removed under another type (stays), once, added twice (runs once)
      socket.addEventListener("close", removedClose)
      socket.addEventListener("close", keptClose)
      socket.addEventListener("close", onceClose, { once: true })
      socket.addEventListener("close", twiceAddedClose)
      socket.addEventListener("close", twiceAddedClose)
      socket.removeEventListener("close", removedClose)
      socket.removeEventListener("error", keptClose) // registered for close, not error: not removed
      // last, since completing the Deferred runs the test fiber at once, inside the close event
      socket.addEventListener("close", () => Deferred.doneUnsafe(closed, Effect.void))
      serverSide.socket.close(4002, "done")
      yield* Deferred.await(closed).pipe(bounded("close"))
      expect(calls).toEqual({ keptOpen: 1, onceError: 1, keptClose: 1, onceClose: 1, twiceAddedClose: 1 })

      // a connection ends once: a second close event from `ws` is not passed on
      ws.emit("close", 4002, Buffer.from("again"))
      expect(calls).toEqual({ keptOpen: 1, onceError: 1, keptClose: 1, onceClose: 1, twiceAddedClose: 1 })
    }))

  it.live("an 'error' on the ws socket with no error listener does not throw", () =>
    Effect.gen(function*() {
      const server = yield* testServer
      const { ws } = yield* rawClient(server)
      // control: a bare `ws` socket does throw on an unheard 'error'
      const bare = yield* Effect.acquireRelease(
        Effect.sync(() => new WebSocket(server.url)),
        (bare) => Effect.sync(() => bare.terminate())
      )
      expect(() => bare.emit("error", new Error("unheard"))).toThrow("unheard")
      expect(() => ws.emit("error", new Error("unheard"))).not.toThrow()
      bare.on("error", () => {}) // terminating a connecting socket reports an error too
    }))

  it.live("a real protocol error (invalid UTF-8 text frame): frames before it come first, nothing throws", () =>
    Effect.gen(function*() {
      const server = yield* testServer
      const closed = yield* Deferred.make<number>()
      const log: Array<string> = []
      const { serverSide, socket } = yield* rawClient(server, (socket) => {
        socket.addEventListener("close", (event) => Deferred.doneUnsafe(closed, Effect.succeed(event.code ?? -1)))
      })
      socket.addEventListener("message", (event) => {
        for (const frame of decoded((event.data as FrameBatch).frames)) log.push(String(frame))
      })
      // first without an error listener: only the adapter's guard hears the error
      burst(serverSide.socket, ["ok 1", "ok 2"])
      serverSide.socket.send(Buffer.from([0xc3, 0x28]), { binary: false }) // not UTF-8, sent as text
      // 1006: `ws` stops reading at the bad frame, so it never sees the server's close frame
      expect(yield* Deferred.await(closed).pipe(bounded("close"))).toBe(1006)
      expect(log).toEqual(["ok 1", "ok 2"])

      // then with one: it gets `ws`'s error, after the frames that came before it
      const closed2 = yield* Deferred.make<void>()
      const log2: Array<string> = []
      const second = yield* rawClient(server, (socket) => {
        socket.addEventListener("message", (event) => {
          for (const frame of decoded((event.data as FrameBatch).frames)) log2.push(`frame ${String(frame)}`)
        })
        socket.addEventListener("error", (event) => {
          log2.push(`error ${(event as { readonly message?: string }).message}`)
        })
        socket.addEventListener("close", () => Deferred.doneUnsafe(closed2, Effect.void))
      })
      burst(second.serverSide.socket, ["a", "b"])
      second.serverSide.socket.send(Buffer.from([0xff]), { binary: false })
      yield* Deferred.await(closed2).pipe(bounded("close"))
      expect(log2.slice(0, 2)).toEqual(["frame a", "frame b"])
      expect(log2.slice(2)).toHaveLength(1)
      expect(log2[2]).toMatch(/^error .*UTF-8/i)
    }))
  it.live("our close ends reading at once: this turn's frames, then one close with our code; nothing after it", () =>
    Effect.gen(function*() {
      const { socket, ws } = fake()
      const seen: Array<string> = []
      socket.addEventListener("message", (event) => {
        for (const frame of decoded((event.data as FrameBatch).frames)) seen.push(`frame ${String(frame)}`)
      })
      socket.addEventListener("close", (event) => {
        seen.push(`close ${event.code} ${event.reason}`)
      })
      ws.emit("message", Buffer.from("a"), false)
      ws.emit("message", Buffer.from("b"), false)
      socket.close(4000, "bye")
      expect(seen).toEqual(["frame a", "frame b", "close 4000 bye"])
      // the server's late frames and its answer to our close are not passed on
      ws.emit("message", Buffer.from("c"), false)
      yield* drainMicrotasks
      ws.emit("close", 4000, Buffer.from("bye"))
      expect(seen).toEqual(["frame a", "frame b", "close 4000 bye"])
      expect(socket.closed).toEqual({ code: 4000, reason: "bye" })

      // a close `ws` refuses (an invalid code throws) ends nothing
      const refused = fake()
      const events: Array<string> = []
      refused.socket.addEventListener("close", () => {
        events.push("close")
      })
      refused.ws.close = () => {
        throw new TypeError("invalid close code")
      }
      expect(() => refused.socket.close(1006)).toThrow("invalid close code")
      expect(events).toEqual([])
    }))

  it.live("EventTarget rules: one listener for two types gets both; message `once` honoured, a duplicate add ignored", () =>
    Effect.gen(function*() {
      const { socket, ws } = fake()
      const seen: Array<string | undefined> = []
      const both = (event: Socket.WebSocketEvent) => {
        seen.push(event.type)
      }
      let calls = 0
      const onMessage = () => {
        calls++
      }
      socket.addEventListener("message", onMessage, { once: true })
      socket.addEventListener("message", onMessage)
      ws.emit("message", Buffer.from("a"), false)
      yield* drainMicrotasks
      ws.emit("message", Buffer.from("b"), false)
      yield* drainMicrotasks
      expect(calls).toBe(1)

      socket.addEventListener("error", both)
      socket.addEventListener("close", both)
      ws.emit("error", new Error("boom"))
      ws.emit("close", 1006, Buffer.alloc(0))
      expect(seen).toEqual(["error", "close"])

      // a listener removed by an earlier one during the same event is not called
      const order: Array<string> = []
      const second = () => {
        order.push("second")
      }
      socket.addEventListener("open", () => {
        order.push("first")
        socket.removeEventListener("open", second)
      })
      socket.addEventListener("open", second)
      ws.emit("open")
      expect(order).toEqual(["first"])
    }))

  it.live("NodeTransport: a send woken by the frames of a same-tick close sees that close (4000, server), not 1006", () =>
    Effect.gen(function*() {
      const { connection } = yield* transportConnection
      // the client's `ws` socket, caught on its first send
      const spy = vi.spyOn(WebSocket.prototype, "send")
      yield* connection.send("hello")
      const client = spy.mock.contexts[0] as WebSocket
      spy.mockRestore()
      // a shard-like reader: takes the frames, answers them
      const reader = yield* Effect.forkChild(
        connection.receive.pipe(Effect.andThen(() => connection.send("reply")), Effect.flip),
        { startImmediately: true }
      )
      yield* Effect.yieldNow
      // what `ws` does when the close frame follows the last frames in one read: no microtask in between
      client.emit("message", Buffer.from("{\"op\":1}"), false)
      ;(client as unknown as { _readyState: number })._readyState = 3
      client.emit("close", 4000, Buffer.from("bye"))
      const error = yield* Fiber.join(reader).pipe(bounded("the reader"))
      expect(error).toBeInstanceOf(ConnectionClosed)
      expect({ code: error.code, by: error.by, reason: error.reason }).toEqual({ code: 4000, by: "server", reason: "bye" })
    }).pipe(Effect.provide(NodeTransport.layer)))
})
