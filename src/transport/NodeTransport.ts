/**
 * NodeTransport: the real `GatewayTransport`, a WebSocket client over effect/socket and the `ws` package.
 *
 * The `ws` socket reaches effect/socket through `CoalescingWebSocket`, so each read hands the shard every
 * frame of one event-loop turn at once (one fiber resume per TCP read, not per frame).
 *
 * `connect` opens the socket in the caller's Scope and resolves once it is open; an open failure or timeout
 * is a `ConnectFailed`. `receive` hands over the raw frames (text as undecoded `TextFrame`s, binary as bytes)
 * in batches; every end of the connection fails it with `ConnectionClosed`: the server's close code and reason
 * (`by: "server"`), the close we started (`by: "client"`, at once: the server's answer is not waited for), or
 * 1006 when the connection dropped without a close frame (`by: "transport"`). `close(code)` sends our close
 * frame once (PROTOCOL.md §1.10: 1000/1001 end the Discord session, 4000 keeps it resumable); a Scope closed
 * without it closes with 1000.
 *
 * Incoming message size is left at the `ws` default (100 MiB) since READY can be megabytes (§5.1).
 */
import { NodeWS } from "@effect/platform-node"
import { Context, Duration, Effect, Exit, Layer, Scope } from "effect"
import type { NonEmptyReadonlyArray } from "effect/Array"
import { Socket } from "effect/socket"
import { ConnectFailed, ConnectionClosed } from "../Errors.ts"
import { GatewayTransport } from "./GatewayTransport.ts"
import type { GatewayConnection } from "./GatewayTransport.ts"
import { CoalescingWebSocket, FrameBatch, isNodeWebSocket } from "./CoalescingWebSocket.ts"
import type { Frame } from "./TextFrame.ts"

const OPEN = 1
/** A close frame's reason is at most 123 bytes (RFC 6455 §5.5); `ws` throws on longer ones. */
const MAX_REASON_BYTES = 123

const truncateReason = (reason: string): string => {
  if (Buffer.byteLength(reason) <= MAX_REASON_BYTES) return reason
  const bytes = Buffer.from(reason).subarray(0, MAX_REASON_BYTES)
  // drop a trailing partial character (decoded as U+FFFD)
  return bytes.toString("utf8").replace(/\uFFFD$/, "")
}

const describe = (cause: unknown): string => {
  if (cause instanceof Error && cause.message !== "") return cause.message
  if (typeof cause === "object" && cause !== null) {
    const { error, message } = cause as { readonly error?: unknown; readonly message?: unknown }
    if (typeof message === "string" && message !== "") return message
    if (error instanceof Error && error.message !== "") return error.message
  }
  return String(cause)
}

const connectFailed = (url: string, error: Socket.SocketError, openTimeout: Duration.Input): ConnectFailed => {
  const reason = error.reason
  let detail: string
  switch (reason._tag) {
    case "SocketOpenError":
      detail = reason.kind === "Timeout"
        ? `the WebSocket did not open within ${Duration.format(Duration.fromInputUnsafe(openTimeout))}`
        : describe(reason.cause)
      break
    case "SocketCloseError":
      detail = `closed with ${reason.code}${reason.closeReason ? ` (${reason.closeReason})` : ""} before opening`
      break
    default:
      detail = reason.message
  }
  return new ConnectFailed({ url, detail })
}

/**
 * effect/socket hands over what `CoalescingWebSocket` gave it: one `FrameBatch` per event-loop turn (usually
 * one per pull). Their frames, in order.
 */
const unbatch = (
  messages: NonEmptyReadonlyArray<string | Uint8Array>
): NonEmptyReadonlyArray<Frame> => {
  const batches = messages as unknown as NonEmptyReadonlyArray<FrameBatch>
  const frames = batches.length === 1 ? batches[0].frames : batches.flatMap((batch) => batch.frames)
  return frames as unknown as NonEmptyReadonlyArray<Frame>
}

const DEFAULT_OPEN_TIMEOUT: Duration.Input = "10 seconds"

type MakeWebSocket = (url: string, options?: Socket.WebSocketConstructorOptions | undefined) => Socket.WebSocketLike

/**
 * One open connection. Its state is fields of one object and its steps are methods: a connection lives as
 * long as its shard's session, so it keeps no closures over the set-up's locals. `receive`, `send` and
 * `close` are own properties (`GatewayConnection` is a record: wrappers may spread it).
 */
class NodeConnection implements GatewayConnection {
  private readonly ws: CoalescingWebSocket
  private readonly write: (chunk: string | Socket.CloseEvent) => Effect.Effect<void, Socket.SocketError>
  private closeCalled = false
  private closedByClient = false
  private clientCode = 1000
  private clientReason = ""
  readonly receive: Effect.Effect<NonEmptyReadonlyArray<Frame>, ConnectionClosed>

  constructor(
    ws: CoalescingWebSocket,
    pull: Effect.Effect<NonEmptyReadonlyArray<string | Uint8Array>, Socket.SocketError>,
    write: (chunk: string | Socket.CloseEvent) => Effect.Effect<void, Socket.SocketError>
  ) {
    this.ws = ws
    this.write = write
    this.receive = Effect.mapBoth(pull, { onSuccess: unbatch, onFailure: (error) => this.fromSocketError(error) })
  }

  // `ws` silently drops a frame sent after the close started (or once the Scope closed the socket); fail instead.
  readonly send = (frame: string): Effect.Effect<void, ConnectionClosed> =>
    Effect.suspend(() =>
      this.ws.readyState !== OPEN
        ? Effect.fail(this.currentClosed())
        : Effect.mapError(this.write(frame), (error) => this.fromSocketError(error))
    )

  readonly close = (code: number, reason?: string): Effect.Effect<void> =>
    Effect.suspend(() => {
      // Only a close we start is ours; if the server's close already arrived (or the Scope closed the socket),
      // nothing is left to send.
      if (this.closeCalled || this.ws.readyState !== OPEN) return Effect.void
      this.closeCalled = true
      this.closedByClient = true
      this.clientCode = code
      this.clientReason = reason === undefined ? "" : truncateReason(reason)
      // An invalid code (1005, 1006, <1000, ≥5000…) makes ws throw: nothing was sent, so forget this
      // call; the socket stays open until a valid close or the Scope (1000).
      return Effect.catch(this.write(new Socket.CloseEvent(this.clientCode, this.clientReason)), () =>
        Effect.sync(() => {
          this.closeCalled = false
          this.closedByClient = false
        }))
    })

  private closed(code: number, reason: string): ConnectionClosed {
    return new ConnectionClosed({
      code,
      reason,
      by: this.closedByClient ? "client" : code === 1006 ? "transport" : "server"
    })
  }

  /** The close as `ws` reported it, known before any frame flushed with it reaches the reader. */
  private currentClosed(): ConnectionClosed {
    const closed = this.ws.closed
    return closed !== undefined
      ? this.closed(closed.code, closed.reason)
      : this.closedByClient
      ? this.closed(this.clientCode, this.clientReason)
      : this.closed(1006, "")
  }

  private fromSocketError(error: Socket.SocketError): ConnectionClosed {
    const reason = error.reason
    if (reason._tag === "SocketCloseError") return this.closed(reason.code, reason.closeReason ?? "")
    return new ConnectionClosed({ code: 1006, reason: "", by: this.closedByClient ? "client" : "transport" })
  }
}

/**
 * Closes the socket (1000) when the Scope closes: one closure that closes when the Scope calls it, made here
 * so that it keeps nothing but the socket for the connection's life.
 */
const closeWithScope = (scope: Scope.Scope, ws: CoalescingWebSocket): Effect.Effect<void> =>
  Scope.addFinalizerExit(scope, () => {
    ws.close(1000)
    return Effect.void
  })

const connectWith = (
  makeWebSocket: MakeWebSocket,
  url: string,
  openTimeout: Duration.Input
): Effect.Effect<GatewayConnection, ConnectFailed, Scope.Scope> =>
  Effect.gen(function*() {
    // The connection gets its own child of the caller's Scope so a failed open is released at once.
    const scope = yield* Scope.fork(yield* Effect.scope)
    // The socket is made here and closed with its Scope, then handed to effect/socket as made: effect/socket
    // keeps the effect that acquires its socket for the connection's life, and a value keeps nothing more.
    // The finalizer is added to the Scope directly (`acquireRelease` would keep the fiber's context for the
    // connection's life; closing needs nothing from it).
    const ws = yield* Effect.uninterruptible(Effect.suspend(() => {
      const made = makeWebSocket(url)
      if (!isNodeWebSocket(made)) return Effect.die(new TypeError("NodeTransport needs the `ws` package's WebSocket (NodeWS)"))
      const opened = new CoalescingWebSocket(made)
      return Effect.as(closeWithScope(scope, opened), opened)
    })).pipe(Effect.onError((cause) => Scope.close(scope, Exit.failCause(cause))))
    // Built with an empty context: effect/socket keeps the context it was built in for the connection's life
    // and merges it into the reader's, which copies every service of both into a new map per connection
    // (0.75 KiB per connection, measured over 1000) unless one of them is empty. The socket needs no
    // service: it is in hand.
    const socket = yield* Effect.provideContext(Socket.fromWebSocket(Effect.succeed(ws), { openTimeout }), Context.empty())
    const reader = yield* Scope.provide(socket.reader, scope).pipe(
      Effect.onError((cause) => Scope.close(scope, Exit.failCause(cause))),
      Effect.mapError((error) => connectFailed(url, error, openTimeout))
    )
    const { write } = yield* Scope.provide(socket.writer, scope)
    return new NodeConnection(ws, reader.pull, write)
  })

/** The real transport with options: `openTimeout` bounds the WebSocket opening handshake (default 10 s). */
export const layerWith = (options: { readonly openTimeout?: Duration.Input | undefined } = {}): Layer.Layer<
  GatewayTransport
> =>
  Layer.effect(
    GatewayTransport,
    Effect.gen(function*() {
      const makeWebSocket = yield* Socket.WebSocketConstructor
      const openTimeout = options.openTimeout ?? DEFAULT_OPEN_TIMEOUT
      return GatewayTransport.of({ connect: (url) => connectWith(makeWebSocket, url, openTimeout) })
    })
  ).pipe(Layer.provide(NodeWS.layerWebSocketConstructor))

/** The real transport: WebSocket over the `ws` package, 10 s open timeout. Needs nothing else. */
export const layer: Layer.Layer<GatewayTransport> = layerWith()
