/**
 * GatewayTransport: the service that opens one WebSocket connection to a gateway URL.
 *
 * It is the seam between the shard and the network. The real layer (`NodeTransport`) speaks WebSocket
 * through effect/socket with the `ws` package; the test kit's simulator provides an in-process layer with
 * no sockets. A connection lives in the Scope it is opened in: closing that Scope closes the connection
 * (code 1000 unless the owner closed it first with its own code, PROTOCOL.md §1.10), so a stale connection
 * can never touch its successor.
 *
 * Frames cross this seam raw: text frames as strings or, not yet decoded, as `TextFrame`s (the real transport
 * leaves decoding to whoever reads them; the shard reads both off their bytes, encoding a string first),
 * binary frames as bytes. Transport compression
 * (zlib-stream, zstd-stream, PROTOCOL.md §5.4–5.5) is undone above it by `Inflater`, one per connection,
 * so both layers share one implementation of it.
 */
import type { Effect, Scope } from "effect"
import type { NonEmptyReadonlyArray } from "effect/Array"
import { Context } from "effect"
import type { ConnectionClosed, ConnectFailed } from "../Errors.ts"
import type { Frame } from "./TextFrame.ts"

/** One open connection. */
export interface GatewayConnection {
  /**
   * Waits for the next frames and returns every frame buffered so far, in order (at least one).
   * Fails with `ConnectionClosed` once the connection is closed by either side or dropped; frames
   * received before the close are delivered first.
   */
  readonly receive: Effect.Effect<NonEmptyReadonlyArray<Frame>, ConnectionClosed>
  /** Writes one text frame. Fails with `ConnectionClosed` if the connection is already gone. */
  readonly send: (frame: string) => Effect.Effect<void, ConnectionClosed>
  /**
   * Starts the close handshake with this code (1000/1001 end the Discord session, 4000 keeps it
   * resumable). Idempotent; never fails. `receive` then fails at once with `ConnectionClosed` (`by:
   * "client"`), after the frames already received, without waiting for the server's answer: the shard
   * reads on its own fiber, and a close decided elsewhere (a stop, a deadline, a zombie) ends its read.
   */
  readonly close: (code: number, reason?: string) => Effect.Effect<void>
}

export class GatewayTransport extends Context.Service<GatewayTransport, {
  /**
   * Opens a connection to `url` (the full gateway URL with its `v`, `encoding` and `compress` query).
   * Resolves once the WebSocket is open. The connection belongs to the current Scope.
   */
  readonly connect: (url: string) => Effect.Effect<GatewayConnection, ConnectFailed, Scope.Scope>
}>()("effect-discord-gateway/GatewayTransport") {}
