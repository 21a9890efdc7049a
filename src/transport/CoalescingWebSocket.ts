/**
 * CoalescingWebSocket: a `ws` WebSocket seen by effect/socket as a `WebSocketLike` that hands over, as ONE
 * message, every frame the `ws` receiver parsed in one turn of the event loop.
 *
 * Why: effect/socket resumes the reading fiber as soon as a message arrives, so a TCP read carrying 50
 * gateway frames would run the shard's read loop 50 times, one fiber resume each; and through the DOM-style
 * `message` event it re-encodes every text frame to UTF-8 just to count buffered bytes. Here frames are
 * taken from `ws`'s own `message` event (bytes, the text flag), text is decoded once, and the frames of one
 * turn are flushed in a microtask as a `FrameBatch` whose `byteLength` is their size on the wire — so
 * effect/socket's backpressure (pause `ws` at its high-water mark) still counts real bytes.
 *
 * Order is kept: frames leave in arrival order, and pending frames are flushed before a `close` or `error`
 * event is passed on (PROTOCOL.md §1.10: frames received before the close are delivered first).
 */
import type { Socket } from "effect/socket"
import type { RawData, WebSocket } from "ws"

/** The frames of one event-loop turn, in order: text frames as strings, binary frames as bytes. */
export class FrameBatch {
  readonly frames: Array<string | Uint8Array>
  /** Bytes on the wire: what effect/socket adds to its buffered size. */
  readonly byteLength: number
  constructor(frames: Array<string | Uint8Array>, byteLength: number) {
    this.frames = frames
    this.byteLength = byteLength
  }
}

type Listener = (event: Socket.WebSocketEvent) => void
type EventName = "open" | "message" | "error" | "close"

const toBuffer = (data: RawData): Buffer =>
  Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)

const ignore = () => {}

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
  private pending: Array<string | Uint8Array> = []
  private pendingBytes = 0
  private readonly messageListeners: Array<Listener> = []
  /** Each listener registered for open/error/close with the `ws` handler standing for it. */
  private readonly handlers = new Map<Listener, { readonly type: EventName; readonly handler: (...args: Array<any>) => void }>()
  private readonly flush = () => {
    if (this.pending.length === 0) return
    const batch = new FrameBatch(this.pending, this.pendingBytes)
    this.pending = []
    this.pendingBytes = 0
    const event = { type: "message", data: batch }
    for (const listener of this.messageListeners.slice()) listener(event)
  }

  private readonly ws: NodeWebSocket
  constructor(ws: NodeWebSocket) {
    this.ws = ws
    ws.on("message", (data: RawData, isBinary: boolean) => {
      const bytes = toBuffer(data)
      if (this.pending.length === 0) queueMicrotask(this.flush)
      this.pending.push(isBinary ? bytes : bytes.toString())
      this.pendingBytes += bytes.byteLength
    })
    // `ws` throws an 'error' nobody listens to; the listeners below report it, this keeps it from crashing.
    ws.on("error", ignore)
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
    if (type === "message") {
      this.messageListeners.push(listener)
      return
    }
    if (this.handlers.has(listener)) return
    const once = options?.once === true
    const handler = (...args: Array<any>) => {
      if (once) this.removeEventListener(type, listener)
      this.flush()
      listener(this.event(type, args))
    }
    this.handlers.set(listener, { type, handler })
    this.ws.on(type, handler)
  }

  removeEventListener(type: EventName, listener: Listener): void {
    if (type === "message") {
      const index = this.messageListeners.indexOf(listener)
      if (index >= 0) this.messageListeners.splice(index, 1)
      return
    }
    const entry = this.handlers.get(listener)
    if (entry === undefined || entry.type !== type) return
    this.handlers.delete(listener)
    this.ws.off(type, entry.handler)
  }

  close(code?: number, reason?: string): void {
    this.ws.close(code, reason)
  }

  send(data: string | Uint8Array<ArrayBuffer>): void {
    this.ws.send(data)
  }

  private event(type: EventName, args: Array<any>): Socket.WebSocketEvent {
    switch (type) {
      case "close":
        return { type, code: args[0] as number, reason: String(args[1] ?? "") }
      case "error": {
        // shaped like the DOM ErrorEvent `ws` would give: `error` and `message`
        const error = args[0] as Error | undefined
        const event: Socket.WebSocketEvent & { readonly error?: unknown; readonly message?: string } = {
          type,
          error,
          message: error?.message ?? ""
        }
        return event
      }
      default:
        return { type }
    }
  }
}
