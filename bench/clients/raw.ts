/**
 * The raw baseline: `ws` + `JSON.parse` + `node:zlib`, no library — the practical limit of a Node gateway
 * client. Per shard: IDENTIFY on Hello, heartbeat every interval with the last `s`, and on an unexpected
 * close a reconnect to READY's `resume_gateway_url` with RESUME (PROTOCOL.md §1.4–§1.7). With zlib-stream
 * (§5.4) one `zlib.createInflate` context per connection; binary frames are buffered until one ends with
 * `00 00 ff ff`, then inflated with the documented stream API, one write per message.
 *
 * Every message is parsed in full; the application's filter is `t === "MESSAGE_CREATE"` on the result.
 *
 * The null client (`nullClient`) is the same connection code that stops parsing after READY and counts
 * frames: it measures the producer alone.
 */
import * as zlib from "node:zlib"
import { Effect } from "effect"
import WebSocket from "ws"
import { type Client, type ClientOptions, BenchToken, type RunningClient } from "./Client.ts"

interface Payload {
  readonly op: number
  readonly t?: string | null
  readonly s?: number | null
  readonly d?: unknown
}

interface ReadyData {
  readonly session_id: string
  readonly resume_gateway_url: string
}

const endsWithSyncFlush = (frame: Buffer): boolean => {
  const n = frame.length
  return n >= 4 && frame[n - 1] === 0xff && frame[n - 2] === 0xff && frame[n - 3] === 0 && frame[n - 4] === 0
}

/** One shard's connection(s). `countFrames`: after READY, count frames instead of parsing them. */
const rawShard = (options: ClientOptions, shardId: number, countFrames: boolean, onReady: () => void) => {
  let ws: WebSocket | undefined
  let heartbeat: ReturnType<typeof setInterval> | undefined
  let sequence: number | null = null
  let session: { readonly id: string; readonly resumeUrl: string } | undefined
  let closing = false
  let ready = false

  const handle = (payload: Payload) => {
    if (payload.s != null) sequence = payload.s
    switch (payload.op) {
      case 0:
        if (payload.t === "MESSAGE_CREATE") options.onMessage(payload.d)
        else if (payload.t === "READY") {
          const data = payload.d as ReadyData
          session = { id: data.session_id, resumeUrl: data.resume_gateway_url }
          ready = true
          onReady()
        } else if (payload.t === "RESUMED") options.onResumed()
        return
      case 10: {
        const socket = ws!
        const interval = (payload.d as { readonly heartbeat_interval: number }).heartbeat_interval
        heartbeat = setInterval(() => socket.send(JSON.stringify({ op: 1, d: sequence })), interval)
        socket.send(JSON.stringify(
          session === undefined
            ? { op: 2, d: { token: BenchToken, intents: 513, shard: [shardId, options.shardCount], properties: { os: "linux", browser: "raw", device: "raw" } } }
            : { op: 6, d: { token: BenchToken, session_id: session.id, seq: sequence } }
        ))
        return
      }
      case 7:
        ws?.close(4000)
        return
    }
  }

  const connect = (base: string) => {
    const compressed = options.compression === "zlib-stream"
    const socket = new WebSocket(`${base}?v=10&encoding=json${compressed ? "&compress=zlib-stream" : ""}`, { perMessageDeflate: false })
    ws = socket
    if (compressed) {
      const inflate = zlib.createInflate({ flush: zlib.constants.Z_SYNC_FLUSH })
      let output: Array<Buffer> = []
      let pending: Array<Buffer> = []
      inflate.on("data", (chunk: Buffer) => output.push(chunk))
      const onInflated = () => {
        const text = output.length === 1 ? output[0]!.toString() : Buffer.concat(output).toString()
        output = []
        handle(JSON.parse(text))
      }
      socket.on("message", (data: Buffer) => {
        if (countFrames && ready) return options.onMessage(undefined)
        pending.push(data)
        if (!endsWithSyncFlush(data)) return
        const message = pending.length === 1 ? pending[0]! : Buffer.concat(pending)
        pending = []
        inflate.write(message, onInflated)
      })
      socket.once("close", () => inflate.destroy())
    } else {
      socket.on("message", (data: Buffer) => {
        if (countFrames && ready) return options.onMessage(undefined)
        handle(JSON.parse(data.toString()))
      })
    }
    socket.on("error", () => {})
    socket.once("close", () => {
      clearInterval(heartbeat)
      if (!closing) connect(session?.resumeUrl ?? options.urls.gatewayUrl)
    })
  }

  connect(options.urls.gatewayUrl)
  return {
    close: () => {
      closing = true
      clearInterval(heartbeat)
      ws?.terminate()
    }
  }
}

const start = (countFrames: boolean) => (options: ClientOptions) =>
  Effect.gen(function*() {
    let waiting = options.shardCount
    let notify: (() => void) | undefined
    const onReady = () => {
      if (--waiting === 0) notify?.()
    }
    yield* Effect.acquireRelease(
      Effect.sync(() => Array.from({ length: options.shardCount }, (_, id) => rawShard(options, id, countFrames, onReady))),
      (shards) => Effect.sync(() => shards.forEach((shard) => shard.close()))
    )
    const ready = Effect.callback<void>((resume) => {
      if (waiting <= 0) return resume(Effect.void)
      notify = () => resume(Effect.void)
    })
    return { ready } satisfies RunningClient
  })

export const rawClient: Client = { name: "raw ws + JSON.parse + zlib", countsEveryFrame: false, start: start(false) }

export const nullClient: Client = { name: "producer alone (frames counted, not parsed)", countsEveryFrame: true, start: start(true) }
