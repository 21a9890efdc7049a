/**
 * The in-process `GatewayTransport`: connections that go straight to a `SimulatorServer`, with no sockets.
 *
 * Each connection is a Queue of text frames. The simulator's port offers frames into it and, on a close,
 * fails it with `ConnectionClosed` after the buffered frames (`by: "server"` for a close frame,
 * `by: "transport"` with 1006 for a drop). The client's `send` hands the frame to the simulator at once;
 * its `close(code)` reaches the simulator as that close code (PROTOCOL.md §1.10: 1000/1001 end the
 * session, others keep it resumable); releasing the connection's Scope without `close` is a client close
 * with 1000, as with a real socket.
 *
 * Frames are plain JSON text with no delay: this transport never compresses, whatever `compress` the URL
 * asks for (transport compression is exercised by the real-socket tests), and it speaks `encoding=json`
 * only — a URL asking for `encoding=etf` fails to connect with `ConnectFailed`.
 */
import { Cause, Effect, Queue } from "effect"
import { ConnectFailed, ConnectionClosed } from "../Errors.ts"
import type { GatewayConnection } from "../transport/GatewayTransport.ts"
import type { SimulatorPort, SimulatorServer } from "./SimulatorServer.ts"

const encodingOf = (url: string): string | null => {
  try {
    return new URL(url).searchParams.get("encoding")
  } catch {
    return null
  }
}

/** `GatewayTransport.connect` backed by a simulator. */
export const connectInProcess = (server: SimulatorServer) => (url: string) =>
  Effect.gen(function*() {
    const encoding = encodingOf(url)
    if (encoding !== null && encoding !== "json") {
      return yield* new ConnectFailed({
        url,
        detail: `the in-process simulator transport speaks encoding=json only (asked: ${encoding})`
      })
    }
    const inbox = yield* Queue.unbounded<string, ConnectionClosed>()
    let closed: ConnectionClosed | undefined
    const end = (error: ConnectionClosed) => {
      if (closed !== undefined) return
      closed = error
      Queue.failCauseUnsafe(inbox, Cause.fail(error))
    }
    const port: SimulatorPort = {
      send: (text) => {
        if (closed === undefined) Queue.offerUnsafe(inbox, text)
      },
      close: (code, reason) => end(new ConnectionClosed({ code, reason, by: "server" })),
      drop: () => end(new ConnectionClosed({ code: 1006, reason: "", by: "transport" }))
    }
    const handlers = yield* server.open(url, port)
    const clientClose = (code: number, reason: string) =>
      Effect.suspend(() => {
        if (closed !== undefined) return Effect.void
        end(new ConnectionClosed({ code, reason, by: "client" }))
        return handlers.onClosed(code)
      })
    yield* Effect.addFinalizer(() => clientClose(1000, ""))
    const connection: GatewayConnection = {
      receive: Queue.takeAll(inbox),
      send: (frame) => Effect.suspend(() => closed === undefined ? handlers.onFrame(frame) : Effect.fail(closed)),
      close: (code, reason) => clientClose(code, reason ?? "")
    }
    return connection
  })
