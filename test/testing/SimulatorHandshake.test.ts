/**
 * The simulator's connection rules (PROTOCOL.md §1.4–§1.6, §2, §3, §9): Hello, IDENTIFY → READY and
 * GUILD_CREATE, heartbeat ACKs, every close code it enforces, identify buckets and the daily budget.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import { GatewaySimulator } from "../../src/testing/GatewaySimulator.ts"
import { BaseUrl, connect, connectReady, identifyData, Query, ResumeUrl, shardOf, Token, withSimulator } from "./rawClient.ts"

const run = withSimulator({ heartbeatTimeoutMs: 3_600_000 })

/** Ids chosen to spread over shards; the last two are above 2^53 (2^60 and 2^63 + 2^22). */
const Guilds = [
  "81384788765712384",
  "175928847299117063",
  "222078108977594368",
  "613425648685547541",
  "1152921504606846976",
  "9223372036858970112"
]

const expectClose = (send: (client: Effect.Success<ReturnType<typeof connect>>) => Effect.Effect<void, unknown>, code: number, url?: string) =>
  Effect.gen(function*() {
    const client = yield* connect(url)
    yield* client.next // Hello
    yield* send(client).pipe(Effect.ignore)
    const { closed } = yield* client.untilClosed
    expect(closed.by).toBe("server")
    expect(closed.code).toBe(code)
    const sim = yield* GatewaySimulator
    const [record] = (yield* sim.connections).slice(-1)
    expect(record?.closeCode).toBe(code)
    expect(record?.closedBy).toBe("server")
  })

describe("GatewaySimulator handshake", () => {
  it.effect("Hello is sent first, with key order t,s,op,d and a _trace", () =>
    run(Effect.gen(function*() {
      const client = yield* connect()
      expect(yield* client.nextText).toBe('{"t":null,"s":null,"op":10,"d":{"heartbeat_interval":1500,"_trace":["sim"]}}')
    })))

  it.effect("IDENTIFY gets READY (s=1) with the shard's guilds, then a GUILD_CREATE per guild (routing formula, ids above 2^53)", () =>
    run(
      Effect.gen(function*() {
        const seen = new Map<number, Array<string>>()
        for (const id of [0, 1, 2]) {
          const expected = Guilds.filter((g) => shardOf(g, 3) === id)
          const { client, ready, guilds } = yield* connectReady({ shard: [id, 3] }, expected.length)
          expect(ready).toMatchObject({ op: 0, s: 1, t: "READY" })
          expect(ready.d).toMatchObject({
            v: 10,
            user: { bot: true },
            session_id: `session-${id + 1}`,
            resume_gateway_url: ResumeUrl,
            shard: [id, 3],
            application: { flags: 0 }
          })
          expect(ready.d.guilds).toEqual(expected.map((g) => ({ id: g, unavailable: true })))
          expect(guilds.map((g) => [g.t, g.s, g.d.id, g.d.unavailable])).toEqual(
            expected.map((g, i) => ["GUILD_CREATE", i + 2, g, false])
          )
          seen.set(id, expected)
          yield* client.close(1000)
          yield* TestClock.adjust(5000) // next identify bucket slot
        }
        // 2^60 >> 22 = 2^38 ≡ 1 (mod 3); 32-bit `>>` on a number would give 0
        expect(seen.get(1)).toContain("1152921504606846976")
        expect([...seen.values()].flat().sort()).toEqual([...Guilds].sort())
      }),
      { guilds: Guilds }
    ))

  it.effect("without the GUILDS intent READY comes alone", () =>
    run(
      Effect.gen(function*() {
        const { client } = yield* connectReady({ intents: 512 })
        yield* client.send({ op: 1, d: 1 })
        expect((yield* client.next).op).toBe(11) // next frame is the ACK, not a GUILD_CREATE
      }),
      { guilds: Guilds }
    ))

  it.effect("a heartbeat (before or after IDENTIFY) is answered with op 11", () =>
    run(Effect.gen(function*() {
      const client = yield* connect()
      yield* client.next
      yield* client.send({ op: 1, d: null })
      expect(yield* client.nextText).toBe('{"t":null,"s":null,"op":11,"d":null}')
      yield* client.identify()
      yield* client.next
      yield* client.send({ op: 1, d: 1 })
      expect(yield* client.next).toEqual({ t: null, s: null, op: 11, d: null })
    })))

  describe("close codes", () => {
    it.effect("4001 for an unknown opcode", () =>
      run(expectClose((c) => c.send({ op: 5, d: null }), 4001)))

    it.effect("4001 for a known opcode with a malformed d", () =>
      run(expectClose((c) => c.send({ op: 1, d: "soon" }), 4001)))

    it.effect("4002 for invalid JSON", () =>
      run(expectClose((c) => c.sendText("{\"op\":1,"), 4002)))

    it.effect("4002 for a frame over 4096 bytes (4096 exactly is fine)", () =>
      run(Effect.gen(function*() {
        const client = yield* connect()
        yield* client.next
        const padded = (bytes: number) => {
          const base = JSON.stringify({ op: 1, d: null, pad: "" })
          return JSON.stringify({ op: 1, d: null, pad: "x".repeat(bytes - base.length) })
        }
        yield* client.sendText(padded(4096))
        expect((yield* client.next).op).toBe(11)
        yield* expectClose((c) => c.sendText(padded(4097)), 4002)
      })))

    it.effect("4003 for a non-heartbeat payload before IDENTIFY", () =>
      run(expectClose((c) => c.send({ op: 3, d: { since: null, activities: [], status: "online", afk: false } }), 4003)))

    it.effect("4004 for a wrong token (IDENTIFY and RESUME)", () =>
      run(Effect.gen(function*() {
        yield* expectClose((c) => c.identify({ token: "wrong" }), 4004)
        yield* expectClose((c) => c.resume("session-1", 0, "wrong"), 4004)
      })))

    it.effect("4005 for a second IDENTIFY on one connection", () =>
      run(Effect.gen(function*() {
        const { client } = yield* connectReady()
        yield* client.identify()
        const { closed } = yield* client.untilClosed
        expect([closed.code, closed.by]).toEqual([4005, "server"])
      })))

    it.effect("4007 for a RESUME seq beyond the session's last one", () =>
      run(Effect.gen(function*() {
        const { client, ready } = yield* connectReady()
        yield* client.close(4000)
        yield* expectClose((c) => c.resume(ready.d.session_id, 2), 4007, ResumeUrl + Query)
      })))

    it.effect("4008 for the 121st frame within 60 s (sliding window)", () =>
      run(
        Effect.gen(function*() {
          const client = yield* connect()
          yield* client.next
          for (let i = 0; i < 60; i++) yield* client.send({ op: 1, d: null })
          yield* TestClock.adjust(30_000)
          for (let i = 0; i < 60; i++) yield* client.send({ op: 1, d: null })
          yield* TestClock.adjust(30_000)
          // the first 60 are now 60 s old: 60 more fit, the 61st is the 121st within (0 s, 60 s]
          for (let i = 0; i < 60; i++) yield* client.send({ op: 1, d: null })
          yield* client.send({ op: 1, d: null })
          const { frames, closed } = yield* client.untilClosed
          expect(frames.filter((f) => f.op === 11)).toHaveLength(180)
          expect([closed.code, closed.by]).toEqual([4008, "server"])
        })
      ))

    it.effect("4010 for an invalid shard tuple", () =>
      run(Effect.gen(function*() {
        yield* expectClose((c) => c.identify({ shard: [2, 2] }), 4010)
        yield* expectClose((c) => c.identify({ shard: [0, 0] }), 4010)
        yield* expectClose((c) => c.identify({ shard: [0] }), 4010)
      })))

    it.effect("4011 when the shard would hold more than maxGuildsPerShard guilds", () =>
      run(
        Effect.gen(function*() {
          yield* expectClose((c) => c.identify({ shard: [0, 1] }), 4011)
          // with more shards each holds fewer guilds and IDENTIFY succeeds
          const sim = yield* GatewaySimulator
          const onShard = (id: number) => Guilds.filter((g) => shardOf(g, 3) === id).length
          expect(onShard(1)).toBe(3) // exactly the cap is allowed
          const { ready } = yield* connectReady({ shard: [1, 3], intents: 0 })
          expect(ready.d.guilds).toHaveLength(onShard(1))
          expect((yield* sim.sessions).map((s) => s.shard)).toEqual([[1, 3]])
        }),
        { guilds: Guilds, maxGuildsPerShard: 3 }
      ))

    it.effect("4012 right after Hello when the URL does not ask for v=10", () =>
      run(Effect.gen(function*() {
        const client = yield* connect(`${BaseUrl}/?v=9&encoding=json`)
        const { frames, closed } = yield* client.untilClosed
        expect(frames.map((f) => f.op)).toEqual([10])
        expect([closed.code, closed.by]).toEqual([4012, "server"])
        const noVersion = yield* connect(`${BaseUrl}/?encoding=json`)
        expect((yield* noVersion.untilClosed).closed.code).toBe(4012)
      })))

    it.effect("4013 for undocumented intent bits", () =>
      run(Effect.gen(function*() {
        yield* expectClose((c) => c.identify({ intents: 1 << 17 }), 4013)
        yield* expectClose((c) => c.identify({ intents: 2 ** 40 }), 4013)
        yield* expectClose((c) => c.identify({ intents: undefined }), 4013)
      })))

    it.effect("4014 for a privileged intent the application may not use", () =>
      run(
        Effect.gen(function*() {
          yield* expectClose((c) => c.identify({ intents: 1 | 32768 }), 4014)
          const { ready } = yield* connectReady({ intents: 1 | 2 }) // GUILD_MEMBERS is allowed
          expect(ready.t).toBe("READY")
        }),
        { allowedPrivilegedIntents: 2 }
      ))
  })

  describe("identify limits", () => {
    it.effect("item 16: a second IDENTIFY in the same bucket less than 5 s − 50 ms later gets op 9 false (no close); another bucket is free", () =>
      run(
        Effect.gen(function*() {
          yield* connectReady({ shard: [0, 4] })
          const early = yield* connect()
          yield* early.next
          yield* early.identify({ shard: [2, 4] }) // 2 % 2 = bucket 0, like shard 0
          expect(yield* early.next).toEqual({ t: null, s: null, op: 9, d: false })
          yield* connectReady({ shard: [1, 4] }) // bucket 1: allowed at once
          yield* TestClock.adjust(4949) // item 16 tolerates arrivals 50 ms closer than the window, no more
          yield* early.identify({ shard: [2, 4] }) // same connection, still too early
          expect((yield* early.next).d).toBe(false)
          yield* TestClock.adjust(1)
          yield* early.identify({ shard: [2, 4] })
          expect(yield* early.next).toMatchObject({ t: "READY", s: 1 })
          const sim = yield* GatewaySimulator
          expect((yield* sim.sessions).map((s) => s.shard)).toEqual([[0, 4], [1, 4], [2, 4]])
        }),
        { maxConcurrency: 2 }
      ))

    it.effect("item 19: IDENTIFY past the daily budget closes every connection with 4004 and rotates the token", () =>
      run(
        Effect.gen(function*() {
          const sim = yield* GatewaySimulator
          expect((yield* sim.gatewayBot).session_start_limit).toEqual({
            total: 1000,
            remaining: 1,
            reset_after: 60_000,
            max_concurrency: 1
          })
          const first = yield* connectReady({ shard: [0, 2] })
          yield* TestClock.adjust(5000)
          const second = yield* connect()
          yield* second.next
          yield* second.identify({ shard: [1, 2] })
          expect((yield* second.untilClosed).closed.code).toBe(4004)
          expect((yield* first.client.untilClosed).closed.code).toBe(4004)
          expect(yield* sim.sessions).toEqual([])
          const rotated = yield* sim.token
          expect(rotated).not.toBe(Token)
          // the old token is now refused
          yield* expectClose((c) => c.identify(), 4004)
          // RESUME does not consume the budget but the session is gone: op 9 false with the new token
          const resumer = yield* connect(ResumeUrl + Query)
          yield* resumer.next
          yield* resumer.resume(first.ready.d.session_id, 1, rotated)
          expect((yield* resumer.next).op).toBe(9)
          // after reset_after the budget is back
          yield* TestClock.adjust(60_000)
          expect((yield* sim.gatewayBot).session_start_limit.remaining).toBe(1000)
          yield* resumer.send({ op: 2, d: identifyData({ token: rotated }) })
          expect((yield* resumer.next).t).toBe("READY")
        }),
        { sessionStartLimit: { total: 1000, remaining: 1, resetAfterMs: 60_000 } }
      ))

    it.effect("/gateway/bot recommends max(1, ceil(guilds / 1000)) shards and checks the Authorization header", () =>
      Effect.gen(function*() {
        const many = Array.from({ length: 2001 }, (_, i) => String((BigInt(i) + 1n) << 22n))
        yield* Effect.gen(function*() {
          const sim = yield* GatewaySimulator
          expect(yield* sim.gatewayBotRequest(`Bot ${Token}`)).toEqual({
            status: 200,
            body: {
              url: BaseUrl,
              shards: 3,
              session_start_limit: { total: 1000, remaining: 1000, reset_after: 86_400_000, max_concurrency: 1 }
            }
          })
          expect((yield* sim.gatewayBotRequest("Bot nope")).status).toBe(401)
          const requests = yield* sim.restRequests
          expect(requests.map((r) => [r.authorized, r.status])).toEqual([[true, 200], [false, 401]])
          expect(JSON.stringify(requests)).not.toContain(Token)
          yield* sim.setRecommendedShards(8)
          expect((yield* sim.gatewayBot).shards).toBe(8)
        }).pipe(Effect.provide(GatewaySimulator.layer({ token: Token, guilds: many })))
        const none = yield* GatewaySimulator.use((s) => s.gatewayBot).pipe(
          Effect.provide(GatewaySimulator.layer({ token: Token }))
        )
        expect(none.shards).toBe(1)
      }))
  })
})
