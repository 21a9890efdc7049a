/**
 * Wrappers around the `GatewayTransport` in context (in shard tests, the simulator's in-process one) for
 * what the simulator cannot do by itself: keep the raw text the shard writes (the recordings redact the
 * token, PROTOCOL.md §1.5), leave a connect attempt hanging (the connect deadline), rewrite or drop
 * the frames one connection receives (a broken Hello or READY, a READY that never comes), and hand frames
 * over as the real transport does (undecoded, or zlib-stream compressed, with a corrupt message on demand).
 *
 * Everything is one mechanism, `wrapTransport`: each connect attempt goes through a hook that gets the
 * inner transport's connect and the attempt's number.
 */
import { Effect } from "effect"
import type { NonEmptyReadonlyArray } from "effect/Array"
import type { Scope } from "effect"
import type { ConnectFailed } from "../../src/Errors.ts"
import { type GatewayConnection, GatewayTransport } from "../../src/transport/GatewayTransport.ts"
import { type Frame, TextFrame } from "../../src/transport/TextFrame.ts"
import { compressor } from "../transport/wsServer.ts"

type Connect = Effect.Effect<GatewayConnection, ConnectFailed, Scope.Scope>

/**
 * The transport in context with every connect attempt passed through `hook`: `open` is the inner
 * transport's connect to `url`, `attempt` the attempt's number (1-based, counted when the attempt runs).
 */
export const wrapTransport = (hook: (open: Connect, attempt: number, url: string) => Connect) =>
  Effect.gen(function*() {
    const inner = yield* GatewayTransport
    let attempts = 0
    return GatewayTransport.of({ connect: (url) => Effect.suspend(() => hook(inner.connect(url), ++attempts, url)) })
  })

/** The transport in context, keeping the raw text of every frame the shard writes (in `sent`, in order). */
export const recordingSends = Effect.gen(function*() {
  const sent: Array<string> = []
  const transport = yield* wrapTransport((open) =>
    Effect.map(open, (connection): GatewayConnection => ({
      ...connection,
      send: (frame) => Effect.andThen(Effect.sync(() => sent.push(frame)), connection.send(frame))
    }))
  )
  return { transport, sent }
})

/** The `d.token` of every raw frame with this `op` among `sent` (compare them; never print them). */
export const tokensSent = (sent: ReadonlyArray<string>, op: number): Array<unknown> =>
  sent.map((text) => JSON.parse(text) as { op: number; d: { token?: unknown } })
    .filter((frame) => frame.op === op)
    .map((frame) => frame.d.token)

/**
 * The transport in context with the `nth` connect attempt (1-based) hanging forever: its socket never
 * opens. `log` has the clock time of every attempt and whether the hanging one was interrupted.
 */
export const hangingTransport = (nth: number) =>
  Effect.gen(function*() {
    const log = { attempts: [] as Array<number>, abandoned: false }
    const transport = yield* wrapTransport((open, attempt) =>
      Effect.gen(function*() {
        log.attempts.push(yield* Effect.clockWith((clock) => clock.currentTimeMillis))
        if (attempt !== nth) return yield* open
        return yield* Effect.never.pipe(Effect.onInterrupt(() =>
          Effect.sync(() => {
            log.abandoned = true
          })
        ))
      })
    )
    return { log, transport }
  })

/**
 * The transport in context with the text frames the `nth` opened connection (1-based; attempts that
 * failed do not count) receives passed through `rewrite` (return undefined to drop a frame). Other
 * connections, and binary frames, are untouched.
 */
export const rewritingTransport = (nth: number, rewrite: (frame: string) => string | undefined) =>
  Effect.gen(function*() {
    let opened = 0
    return yield* wrapTransport((open) =>
      Effect.map(open, (connection) => {
        if (++opened !== nth) return connection
        const receive: typeof connection.receive = Effect.flatMap(connection.receive, (batch) => {
          const out: Array<string | Uint8Array> = []
          for (const frame of batch) {
            const next = typeof frame === "string" ? rewrite(frame) : frame instanceof TextFrame ? rewrite(frame.text()) : frame
            if (next !== undefined) out.push(next)
          }
          return out.length > 0 ? Effect.succeed(out as unknown as NonEmptyReadonlyArray<string>) : receive
        })
        return { ...connection, receive }
      })
    )
  })

/** The transport in context with every dispatch (op 0) the `nth` opened connection receives withheld. */
export const withholdingDispatches = (nth: number) =>
  rewritingTransport(nth, (frame) => frame.includes(`"op":0,`) ? undefined : frame)

/** A zlib-stream message no inflate context can read (it ends with the 00 00 ff ff marker, §5.4). */
const CorruptMessage = new Uint8Array([0x06, 0x37, 0xde, 0xad, 0x00, 0x00, 0xff, 0xff])

/**
 * The transport in context with the simulator's text frames handed over as the real transport hands them:
 * undecoded `TextFrame`s (`"none"`), or compressed through one zlib-stream context per connection, as
 * Discord sends them (PROTOCOL.md §5.4). `corruptNext` replaces the next frame any connection receives with
 * a corrupt compressed message (the frame it replaces is lost on the wire).
 */
export const realFramesTransport = (compression: "none" | "zlib-stream") =>
  Effect.gen(function*() {
    let corrupt = false
    const transport = yield* wrapTransport((open) =>
      Effect.gen(function*() {
        const connection = yield* open
        const handOver = compression === "none"
          ? (text: string): Effect.Effect<Frame> => Effect.succeed(new TextFrame(Buffer.from(text)))
          : yield* compressor("zlib-stream")
        const receive = Effect.flatMap(connection.receive, (batch) =>
          Effect.forEach(batch, (frame): Effect.Effect<Frame> => {
            if (typeof frame !== "string") return Effect.succeed(frame)
            if (!corrupt) return handOver(frame)
            corrupt = false
            return Effect.succeed(CorruptMessage)
          }) as Effect.Effect<NonEmptyReadonlyArray<Frame>>)
        return { ...connection, receive }
      })
    )
    const corruptNext = Effect.sync(() => {
      corrupt = true
    })
    return { transport, corruptNext }
  })
