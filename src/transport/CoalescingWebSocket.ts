/**
 * CoalescingWebSocket: a `ws` WebSocket seen by effect/socket as a `WebSocketLike` that hands over, as ONE
 * message, every frame the `ws` receiver parsed in one turn of the event loop.
 *
 * Why: effect/socket resumes the reading fiber as soon as a message arrives, so a TCP read carrying 50
 * gateway frames would run the shard's read loop 50 times, one fiber resume each; and through the DOM-style
 * `message` event it re-encodes every text frame to UTF-8 just to count buffered bytes. Here frames are
 * taken from `ws`'s own `message` event (bytes, the text flag), text is left undecoded (`TextFrame`: a shard
 * decodes only the events someone wants), and the frames of one turn are flushed in a microtask as a `FrameBatch` whose `byteLength` is their size on the wire — so
 * effect/socket's backpressure (pause `ws` at its high-water mark) still counts real bytes.
 *
 * Order is kept: frames leave in arrival order, and pending frames are flushed before a `close` or `error`
 * event is passed on (PROTOCOL.md §1.10: frames received before the close are delivered first). The close
 * code and reason are recorded (`closed`) before that flush. A connection ends once: our own `close` passes
 * on a `close` event with our code at once (its reader is not left waiting up to 30 s for the server's
 * answer), and nothing that arrives after it is passed on. Listeners follow EventTarget rules: one
 * registration per (type, listener), `once` honoured, called in the order added.
 */
import type { Socket } from "effect/socket"
import type { RawData, WebSocket } from "ws"
import { TextFrame } from "./TextFrame.ts"

/** The frames of one event-loop turn, in order: text frames as undecoded `TextFrame`s, binary frames as bytes. */
export class FrameBatch {
  readonly frames: Array<TextFrame | Uint8Array>
  /** Bytes on the wire: what effect/socket adds to its buffered size. */
  readonly byteLength: number
  constructor(frames: Array<TextFrame | Uint8Array>, byteLength: number) {
    this.frames = frames
    this.byteLength = byteLength
  }
}

type Listener = (event: Socket.WebSocketEvent) => void
type EventName = "open" | "message" | "error" | "close"

const toBuffer = (data: RawData): Buffer =>
  Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)

/** `ws`'s WebSocket with its Node-only flow control, as NodeWS creates it. */
export interface NodeWebSocket extends Socket.WebSocketLike {
  on: WebSocket["on"]
  off: WebSocket["off"]
  pause(): void
  resume(): void
  readonly isPaused: boolean
}

export const isNodeWebSocket = (ws: Socket.WebSocketLike): ws is NodeWebSocket =>
  typeof (ws as Partial<NodeWebSocket>).on === "function" && typeof (ws as Partial<NodeWebSocket>).pause === "function"

export class CoalescingWebSocket implements Socket.WebSocketLike {
  private readonly ws: NodeWebSocket
  private pending: Array<TextFrame | Uint8Array> = []
  private pendingBytes = 0
  /**
   * Listeners as an EventTarget keeps them: each (type, listener) once, in the order added. One short array
   * (a connection has about five), not a collection per type: this object lives as long as the connection.
   */
  private listeners: Array<{ readonly type: EventName; readonly listener: Listener; readonly once: boolean }> = []
  /** The close the server (or the network) ended the connection with, known before any listener runs. */
  closed: { readonly code: number; readonly reason: string } | undefined = undefined
  /** The `close` event went out (for the server's close or for ours): later frames are not passed on. */
  private ended = false

  private readonly flush = () => {
    if (this.pending.length === 0) return
    const batch = new FrameBatch(this.pending, this.pendingBytes)
    this.pending = []
    this.pendingBytes = 0
    this.dispatch("message", { type: "message", data: batch })
  }

  constructor(ws: NodeWebSocket) {
    this.ws = ws
    ws.on("message", (data: RawData, isBinary: boolean) => {
      if (this.ended) return
      const bytes = toBuffer(data)
      if (this.pending.length === 0) queueMicrotask(this.flush)
      this.pending.push(isBinary ? bytes : new TextFrame(bytes))
      this.pendingBytes += bytes.byteLength
    })
    ws.on("open", () => this.dispatch("open", { type: "open" }))
    // `ws` throws an 'error' nobody listens to; this listener always exists, so it never does.
    ws.on("error", (error: Error) => {
      this.flush()
      const event: Socket.WebSocketEvent & { readonly error: unknown; readonly message: string } = {
        type: "error",
        error,
        message: error?.message ?? ""
      }
      this.dispatch("error", event)
    })
    ws.on("close", (code: number, reason: Buffer) => {
      // Recorded first: a listener woken by the flush (a reader that sends) already sees the close.
      this.closed = { code, reason: reason.toString() }
      this.end(this.closed.code, this.closed.reason)
    })
  }

  get readyState(): number {
    return this.ws.readyState
  }

  get isPaused(): boolean {
    return this.ws.isPaused
  }

  pause(): void {
    this.ws.pause()
  }

  resume(): void {
    this.ws.resume()
  }

  addEventListener(type: EventName, listener: Listener, options?: { readonly once?: boolean }): void {
    if (this.listeners.some((entry) => entry.type === type && entry.listener === listener)) return
    // A new array of exactly the listeners (`push` would grow the array to 17 slots for a connection's life).
    this.listeners = this.listeners.concat({ type, listener, once: options?.once === true })
  }

  removeEventListener(type: EventName, listener: Listener): void {
    const index = this.listeners.findIndex((entry) => entry.type === type && entry.listener === listener)
    if (index === -1) return
    // A new array (a `dispatch` in progress keeps iterating the old one), of exactly the listeners left.
    this.listeners = this.listeners.slice(0, index).concat(this.listeners.slice(index + 1))
  }

  /**
   * Starts the close handshake and ends reading at once: the frames received so far, then a `close` event
   * with our code. The server's answer is not waited for (`ws` waits up to 30 s for it); whatever arrives
   * after our close frame is dropped, as the protocol lets it be (PROTOCOL.md §1.10).
   */
  close(code?: number, reason?: string): void {
    this.ws.close(code, reason)
    this.end(code ?? 1005, reason ?? "")
  }

  send(data: string | Uint8Array<ArrayBuffer>): void {
    this.ws.send(data)
  }

  /** The connection ended (the server's close, a drop, or ours): pending frames first, then one `close`. */
  private end(code: number, reason: string): void {
    if (this.ended) return
    this.ended = true
    this.flush()
    this.dispatch("close", { type: "close", code, reason })
  }

  private dispatch(type: EventName, event: Socket.WebSocketEvent): void {
    // Listeners added meanwhile wait for the next event; removed ones are not called (removal makes a new array).
    const listeners = this.listeners
    for (let i = 0; i < listeners.length; i++) {
      const entry = listeners[i]!
      if (entry.type !== type) continue
      if (listeners !== this.listeners && !this.listeners.includes(entry)) continue
      if (entry.once) this.removeEventListener(type, entry.listener)
      entry.listener(event)
    }
  }
}
