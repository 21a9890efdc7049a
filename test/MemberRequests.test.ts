/**
 * MemberRequests (PROTOCOL.md §3, §6.1, §6.2; checklist items 43, 44, 55, 56): a real Shard against the
 * simulator under TestClock, wired as the Gateway will wire it (see test/memberRequests/setup.ts), plus a
 * property test of chunk matching against a stub `send`.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Duration, Effect, Exit, Fiber, Random, Schema, Scope, Stream } from "effect"
import * as Dispatch from "../src/Dispatch.ts"
import * as MemberRequests from "../src/MemberRequests.ts"
import type { RequestGuildMembersData } from "../src/protocol/Payloads.ts"
import { Intents } from "../src/protocol/Intents.ts"
import { GatewaySimulator } from "../src/testing/GatewaySimulator.ts"
import { phaseOf, startShard, tau } from "./shard/harness.ts"
import {
  advance,
  advanceBy,
  attach,
  bigGuilds,
  completed,
  consume,
  failureOf,
  glueShardLost,
  guild,
  isAllMembers,
  MemberIntents,
  memberId,
  op8Frames,
  otherGuild,
  rateLimitedFrames,
  settle,
  setup,
  silentGuild
} from "./memberRequests/setup.ts"

const utf8Bytes = (s: string) => Buffer.byteLength(s, "utf8")

describe("MemberRequests: answers", () => {
  it.effect("item 55: an all-members request ends after chunk_count chunks (2500 members → 3 chunks of 1000)", () =>
    Effect.gen(function*() {
      const { requests } = yield* setup()
      const consumer = yield* consume(requests.request({ guildId: guild, query: "", limit: 0 }))
      yield* advance(100)
      const chunks = yield* completed(consumer)
      expect(chunks.map((c) => c.chunk_index).sort()).toEqual([0, 1, 2])
      expect(chunks.every((c) => c.chunk_count === 3 && c.guild_id === guild)).toBe(true)
      expect(chunks.reduce((n, c) => n + c.members.length, 0)).toBe(2500)
      const frames = yield* op8Frames
      expect(frames).toHaveLength(1)
      const nonce = frames[0]!.d.nonce!
      expect(frames[0]!.d).toEqual({ guild_id: guild, query: "", limit: 0, nonce })
      expect(utf8Bytes(nonce)).toBeLessThanOrEqual(32)
      expect(chunks.every((c) => c.nonce === nonce)).toBe(true)
    }).pipe(Effect.provide(bigGuilds)))

  it.effect("item 55: chunks count in any order; duplicates, other nonces and other guilds are ignored; the stream ends after the last index", () =>
    Effect.gen(function*() {
      const { requests, sim } = yield* setup()
      const consumer = yield* consume(requests.request({ guildId: silentGuild, query: "a", limit: 10 }))
      yield* advance(100)
      const nonce = (yield* op8Frames)[0]!.d.nonce!
      const chunk = (index: number, n: string = nonce) =>
        sim.dispatch("GUILD_MEMBERS_CHUNK", { guild_id: silentGuild, members: [], chunk_index: index, chunk_count: 3, nonce: n })
      yield* chunk(2)
      yield* advance(10)
      expect(consumer.chunks.map((c) => c.chunk_index)).toEqual([2])
      yield* chunk(2) // duplicate
      yield* chunk(0, `${nonce}x`) // someone else's
      yield* sim.dispatch("GUILD_MEMBERS_CHUNK", { guild_id: guild, members: [], chunk_index: 0, chunk_count: 3, nonce }) // another guild's
      yield* advance(10)
      expect(consumer.chunks.map((c) => c.chunk_index)).toEqual([2])
      yield* chunk(0)
      yield* advance(10)
      expect(consumer.ended()).toBe(false)
      yield* chunk(1)
      yield* advance(10)
      expect((yield* completed(consumer)).map((c) => c.chunk_index)).toEqual([2, 0, 1])
      yield* chunk(1) // late: ignored, nothing breaks
      yield* advance(10)
    }).pipe(Effect.provide(bigGuilds)))

  it.effect("item 55: chunks of a second answer split another way (another chunk_count) are ignored: the first split wins", () =>
    Effect.gen(function*() {
      const { requests, sim } = yield* setup()
      const consumer = yield* consume(requests.request({ guildId: silentGuild, query: "a", limit: 10 }))
      yield* advance(100)
      const nonce = (yield* op8Frames)[0]!.d.nonce!
      const chunk = (index: number, count: number) =>
        sim.dispatch("GUILD_MEMBERS_CHUNK", { guild_id: silentGuild, members: [], chunk_index: index, chunk_count: count, nonce })
      yield* chunk(0, 2)
      yield* chunk(1, 3) // from an answer to another attempt of the request
      yield* advance(10)
      expect(consumer.ended()).toBe(false)
      yield* chunk(1, 2)
      yield* advance(10)
      expect((yield* completed(consumer)).map((c) => [c.chunk_index, c.chunk_count])).toEqual([[0, 2], [1, 2]])
    }).pipe(Effect.provide(bigGuilds)))

  it.effect("item 55: malformed GUILD_MEMBERS_CHUNKs, even with the request's nonce, are ignored and break nothing", () =>
    Effect.gen(function*() {
      const { requests, sim } = yield* setup()
      const consumer = yield* consume(requests.request({ guildId: silentGuild, query: "a", limit: 10 }))
      yield* advance(100)
      const nonce = (yield* op8Frames)[0]!.d.nonce!
      const valid = { guild_id: silentGuild, members: [], chunk_index: 0, chunk_count: 2, nonce }
      yield* sim.dispatch("GUILD_MEMBERS_CHUNK", null) // no d at all
      for (
        const malformed of [
          { chunk_index: 0.5 }, // not an integer index
          { chunk_count: 1.5 }, // not an integer count
          { chunk_index: -1 },
          { chunk_index: 2 }, // index = chunk_count: past the last chunk
          { chunk_index: 0, chunk_count: 2 ** 21 }, // an absurd chunk_count (a bitmap of 2 MiB)
          { members: undefined } // no members array
        ]
      ) yield* sim.dispatch("GUILD_MEMBERS_CHUNK", { ...valid, ...malformed })
      yield* advance(10)
      expect(consumer.chunks).toEqual([])
      expect(consumer.ended()).toBe(false)
      // the request still takes its real answer, split as its first valid chunk says
      yield* sim.dispatch("GUILD_MEMBERS_CHUNK", valid)
      yield* sim.dispatch("GUILD_MEMBERS_CHUNK", { ...valid, chunk_index: 1 })
      yield* advance(10)
      expect((yield* completed(consumer)).map((c) => [c.chunk_index, c.chunk_count])).toEqual([[0, 2], [1, 2]])
    }).pipe(Effect.provide(bigGuilds)))

  it.effect("item 55: two instances whose random nonce prefixes are equal (one seed) still never share a nonce", () =>
    Effect.scoped(Effect.gen(function*() {
      const sent: Array<string> = []
      const make = MemberRequests.make({
        send: (_guildId, d) => Effect.sync(() => void sent.push(d.nonce!)),
        shardOf: () => 0,
        intents: MemberIntents
      }).pipe(Random.withSeed("one seed"))
      const one = yield* make
      const two = yield* make
      yield* consume(one.request({ guildId: silentGuild, query: "a", limit: 1 }))
      yield* consume(two.request({ guildId: silentGuild, query: "a", limit: 1 }))
      yield* settle
      expect(sent).toHaveLength(2)
      expect(sent[0]!.slice(0, 6)).toBe(sent[1]!.slice(0, 6)) // the same random part
      expect(sent[0]).not.toBe(sent[1])
    })))

  it.effect("item 56: a user_ids request is answered with its members and not_found", () =>
    Effect.gen(function*() {
      const { requests } = yield* setup()
      const missing = "999999999999999999"
      const consumer = yield* consume(requests.request({ guildId: guild, userIds: [memberId(0), memberId(7), missing] }))
      yield* advance(100)
      const chunks = yield* completed(consumer)
      expect(chunks).toHaveLength(1)
      expect(chunks[0]!.members.map((m) => m.user?.id)).toEqual([memberId(0), memberId(7)])
      expect(chunks[0]!.not_found).toEqual([missing])
      const [frame] = yield* op8Frames
      expect(frame!.d).toEqual({ guild_id: guild, user_ids: [memberId(0), memberId(7), missing], nonce: chunks[0]!.nonce })
    }).pipe(Effect.provide(bigGuilds)))

  it.effect("item 55: concurrent requests to one guild are told apart by nonce; nonces are unique and ≤ 32 bytes", () =>
    Effect.gen(function*() {
      const { requests } = yield* setup()
      const one = yield* consume(requests.request({ guildId: guild, query: "member-1", limit: 5 }))
      const two = yield* consume(requests.request({ guildId: guild, query: "member-2", limit: 4 }))
      const ids = yield* consume(requests.request({ guildId: guild, userIds: [memberId(41)] }))
      // plus many unanswered ones in flight at the same time
      const silent = []
      for (let i = 0; i < 30; i++) silent.push(yield* consume(requests.request({ guildId: silentGuild, query: "x", limit: 1 })))
      yield* advance(100)
      const names = (chunks: ReadonlyArray<{ readonly members: ReadonlyArray<{ readonly user?: { readonly username: string } }> }>) =>
        chunks.flatMap((c) => c.members.map((m) => m.user!.username))
      const oneNames = names(yield* completed(one))
      const twoNames = names(yield* completed(two))
      expect(oneNames).toHaveLength(5)
      expect(oneNames.every((n) => n.startsWith("member-1"))).toBe(true)
      expect(twoNames).toHaveLength(4)
      expect(twoNames.every((n) => n.startsWith("member-2"))).toBe(true)
      expect(names(yield* completed(ids))).toEqual(["member-42"])
      const frames = yield* op8Frames
      expect(frames).toHaveLength(33)
      const nonces = frames.map((f) => f.d.nonce!)
      expect(new Set(nonces).size).toBe(33)
      expect(nonces.every((n) => utf8Bytes(n) <= 32)).toBe(true)
      expect(silent.some((c) => c.ended())).toBe(false)
      // each answer carries the nonce of its own request
      const nonceOf = (query: string) => frames.find((f) => f.d.query === query)!.d.nonce
      expect(one.chunks.every((c) => c.nonce === nonceOf("member-1"))).toBe(true)
      expect(two.chunks.every((c) => c.nonce === nonceOf("member-2"))).toBe(true)
      yield* requests.shutdown
    }).pipe(Effect.provide(bigGuilds)))

  it.effect("item 56: with GUILD_PRESENCES, presences: true is sent and the chunk carries presences", () =>
    Effect.gen(function*() {
      const { requests } = yield* setup({ intents: MemberIntents | Intents.GuildPresences })
      const consumer = yield* consume(requests.request({ guildId: guild, userIds: [memberId(1)], presences: true }))
      yield* advance(100)
      const [chunk] = yield* completed(consumer)
      expect(chunk!.presences).toEqual([])
      expect((yield* op8Frames)[0]!.d.presences).toBe(true)
    }).pipe(Effect.provide(bigGuilds)))
})

describe("MemberRequests: rate limits", () => {
  it.effect("item 43: after RATE_LIMITED no op 8 for the guild is sent within retry_after; then the limited request is sent again", () =>
    Effect.gen(function*() {
      const { requests, sim } = yield* setup()
      const limited = yield* consume(requests.request({ guildId: silentGuild, query: "a", limit: 1 }))
      yield* advance(100)
      const nonce = (yield* op8Frames)[0]!.d.nonce!
      yield* sim.dispatch("RATE_LIMITED", { opcode: 8, retry_after: 12.5, meta: { guild_id: silentGuild, nonce } })
      yield* advance(10)
      const [rateLimited] = yield* rateLimitedFrames
      // every op 8 for that guild waits for the block, a new request too; other guilds do not
      yield* advanceBy(2_000)
      const other = yield* consume(requests.request({ guildId: silentGuild, userIds: [memberId(5)] }))
      const elsewhere = yield* consume(requests.request({ guildId: guild, userIds: [memberId(5)] }))
      yield* advance(100)
      expect(yield* completed(elsewhere)).toHaveLength(1)
      yield* advanceBy(10_000)
      const silent = (yield* op8Frames).filter((f) => f.d.guild_id === silentGuild)
      expect(silent).toHaveLength(1) // 12.1 s after RATE_LIMITED: nothing more yet
      yield* advanceBy(1_000)
      const after = (yield* op8Frames).filter((f) => f.d.guild_id === silentGuild && f.at > rateLimited!.at)
      expect(after).toHaveLength(2)
      for (const frame of after) {
        expect(frame.at).toBeGreaterThanOrEqual(rateLimited!.at + 12_500)
        expect(frame.at).toBeLessThanOrEqual(rateLimited!.at + 12_500 + tau)
      }
      expect(after.map((f) => f.d.nonce)).toContain(nonce) // the limited request itself, sent again
      // the resent request is answered like any other
      yield* sim.dispatch("GUILD_MEMBERS_CHUNK", { guild_id: silentGuild, members: [], chunk_index: 0, chunk_count: 1, nonce })
      yield* advance(10)
      expect(yield* completed(limited)).toHaveLength(1)
      expect(other.ended()).toBe(false)
      yield* requests.shutdown
    }).pipe(Effect.provide(bigGuilds)))

  it.effect("item 43: the block lasts retry_after rounded up to the next ms, and a shorter RATE_LIMITED later does not shorten it", () =>
    Effect.gen(function*() {
      const { requests, sim } = yield* setup()
      yield* consume(requests.request({ guildId: silentGuild, query: "a", limit: 1 }))
      yield* advance(100)
      const nonce = (yield* op8Frames)[0]!.d.nonce!
      yield* sim.dispatch("RATE_LIMITED", { opcode: 8, retry_after: 10.0005, meta: { guild_id: silentGuild, nonce } })
      const [rateLimited] = yield* rateLimitedFrames
      yield* advance(1000)
      yield* sim.dispatch("RATE_LIMITED", { opcode: 8, retry_after: 1, meta: { guild_id: silentGuild } })
      yield* advance(10)
      yield* consume(requests.request({ guildId: silentGuild, userIds: [memberId(5)] }))
      const silentAfter = Effect.map(op8Frames, (frames) =>
        frames.filter((f) => f.d.guild_id === silentGuild && f.at > rateLimited!.at).map((f) => f.at - rateLimited!.at))
      yield* advanceBy(8_990) // 10 000 ms after the first RATE_LIMITED
      expect(yield* silentAfter).toEqual([])
      yield* advance(1)
      expect(yield* silentAfter).toEqual([10_001, 10_001])
    }).pipe(Effect.provide(bigGuilds)))

  it.effect("item 43: a RATE_LIMITED whose meta has only the nonce blocks that request's guild and sends it again", () =>
    Effect.gen(function*() {
      const { requests, sim } = yield* setup()
      yield* consume(requests.request({ guildId: silentGuild, query: "a", limit: 1 }))
      yield* advance(100)
      const nonce = (yield* op8Frames)[0]!.d.nonce!
      yield* sim.dispatch("RATE_LIMITED", { opcode: 8, retry_after: 5, meta: { nonce } })
      const [rateLimited] = yield* rateLimitedFrames
      yield* advanceBy(6_000)
      const after = (yield* op8Frames).filter((f) => f.at > rateLimited!.at)
      expect(after.map((f) => [f.d.guild_id, f.d.nonce, f.at - rateLimited!.at])).toEqual([[silentGuild, nonce, 5_000]])
    }).pipe(Effect.provide(bigGuilds)))

  it.effect("item 43: a RATE_LIMITED for another opcode does not block op 8 for the guild", () =>
    Effect.gen(function*() {
      const { requests, sim } = yield* setup()
      yield* sim.dispatch("RATE_LIMITED", { opcode: 3, retry_after: 30, meta: { guild_id: guild } })
      yield* advance(10)
      const request = yield* consume(requests.request({ guildId: guild, userIds: [memberId(5)] }))
      yield* advance(100)
      expect(yield* completed(request)).toHaveLength(1)
    }).pipe(Effect.provide(bigGuilds)))

  it.effect("item 43: malformed RATE_LIMITEDs (no d, a negative or non-numeric retry_after) block nothing and resend nothing", () =>
    Effect.gen(function*() {
      const { requests, sim } = yield* setup()
      const consumer = yield* consume(requests.request({ guildId: silentGuild, query: "a", limit: 1 }))
      yield* advance(100)
      const nonce = (yield* op8Frames)[0]!.d.nonce!
      yield* sim.dispatch("RATE_LIMITED", null)
      yield* sim.dispatch("RATE_LIMITED", { opcode: 8, retry_after: -1, meta: { guild_id: silentGuild, nonce } })
      yield* sim.dispatch("RATE_LIMITED", { opcode: 8, retry_after: "5", meta: { guild_id: silentGuild, nonce } })
      yield* advance(100)
      const other = yield* consume(requests.request({ guildId: silentGuild, userIds: [memberId(5)] }))
      yield* advance(100)
      const frames = yield* op8Frames
      expect(frames.map((f) => f.d.nonce).filter((n) => n === nonce)).toHaveLength(1) // the request was not sent again
      expect(frames).toHaveLength(2) // the guild is not blocked: the next request went at once
      expect(other.ended()).toBe(false)
      // and the dispatches still reach the requests
      yield* sim.dispatch("GUILD_MEMBERS_CHUNK", { guild_id: silentGuild, members: [], chunk_index: 0, chunk_count: 1, nonce })
      yield* advance(10)
      expect(yield* completed(consumer)).toHaveLength(1)
    }).pipe(Effect.provide(bigGuilds)))

  it.effect("item 43: a rate-limited request waiting out its block is not failed when its shard's session is lost; it is sent after the block", () =>
    Effect.gen(function*() {
      const { requests, sim } = yield* setup()
      const consumer = yield* consume(requests.request({ guildId: silentGuild, query: "a", limit: 1 }))
      yield* advance(100)
      const nonce = (yield* op8Frames)[0]!.d.nonce!
      yield* sim.dispatch("RATE_LIMITED", { opcode: 8, retry_after: 5, meta: { guild_id: silentGuild, nonce } })
      yield* advance(100)
      const [rateLimited] = yield* rateLimitedFrames
      yield* requests.shardLost(0, "reconnect") // its frame was refused: no answer is lost
      yield* advance(10)
      expect(consumer.ended()).toBe(false)
      yield* advanceBy(5_000)
      const resent = (yield* op8Frames).filter((f) => f.at > rateLimited!.at)
      expect(resent.map((f) => f.d.nonce)).toEqual([nonce])
      yield* sim.dispatch("GUILD_MEMBERS_CHUNK", { guild_id: silentGuild, members: [], chunk_index: 0, chunk_count: 1, nonce })
      yield* advance(10)
      expect(yield* completed(consumer)).toHaveLength(1)
    }).pipe(Effect.provide(bigGuilds)))

  it.effect("items 43 and 44: an all-members request the simulator rate limits is sent again after retry_after and 30 s after its first try", () =>
    Effect.gen(function*() {
      // Two instances on one session (e.g. state lost in a restart): only the simulator knows about the first
      // all-members request, so the second instance's one is refused with RATE_LIMITED.
      const { requests: first, shard } = yield* setup()
      const second = yield* attach(shard, MemberIntents)
      yield* completed(yield* consume(first.request({ guildId: guild, query: "", limit: 0 })).pipe(Effect.tap(() => advance(100))))
      yield* advanceBy(10_000)
      const limited = yield* consume(second.request({ guildId: guild, query: "", limit: 0 }))
      yield* advance(100)
      const [rateLimited] = yield* rateLimitedFrames
      expect(rateLimited).toBeDefined()
      const retryMs = rateLimited!.d.retry_after * 1000
      expect(retryMs).toBeGreaterThan(15_000) // 30 s minus the ~10 s since the first request
      expect(retryMs).toBeLessThan(30_000)
      expect(limited.chunks).toEqual([])
      const refused = (yield* op8Frames).find((f) => f.d.nonce === rateLimited!.d.meta.nonce)!
      yield* advanceBy(31_000)
      expect(yield* completed(limited)).toHaveLength(3)
      const resent = (yield* op8Frames).filter((f) => f.d.nonce === rateLimited!.d.meta.nonce)
      expect(resent).toHaveLength(2)
      expect(resent[1]!.at).toBeGreaterThanOrEqual(rateLimited!.at + retryMs) // item 43
      expect(resent[1]!.at - refused.at).toBeGreaterThanOrEqual(30_000) // item 44, counting the refused one
      expect(resent[1]!.at - refused.at).toBeLessThanOrEqual(30_000 + tau)
      expect(yield* rateLimitedFrames).toHaveLength(1)
    }).pipe(Effect.provide(bigGuilds)))

  it.effect("item 44: two all-members requests for one guild are sent ≥ 30 s apart; other guilds are not held back", () =>
    Effect.gen(function*() {
      const { requests } = yield* setup()
      const one = yield* consume(requests.request({ guildId: guild, query: "", limit: 0 }))
      const two = yield* consume(requests.request({ guildId: guild, query: "", limit: 0 }))
      const other = yield* consume(requests.request({ guildId: otherGuild, query: "", limit: 0 }))
      yield* advance(100)
      expect(yield* completed(one)).toHaveLength(3)
      expect(yield* completed(other)).toHaveLength(3)
      expect(two.ended()).toBe(false)
      yield* advanceBy(29_000)
      expect(two.ended()).toBe(false)
      yield* advanceBy(1_500)
      expect(yield* completed(two)).toHaveLength(3)
      // and a third, right after the second, waits another 30 s
      const three = yield* consume(requests.request({ guildId: guild, query: "", limit: 0 }))
      yield* advanceBy(31_000)
      expect(yield* completed(three)).toHaveLength(3)
      const frames = (yield* op8Frames).filter(isAllMembers)
      const mine = frames.filter((f) => f.d.guild_id === guild).map((f) => f.at)
      expect(mine).toHaveLength(3)
      expect(mine[1]! - mine[0]!).toBeGreaterThanOrEqual(30_000)
      expect(mine[1]! - mine[0]!).toBeLessThanOrEqual(30_000 + tau)
      expect(mine[2]! - mine[1]!).toBeGreaterThanOrEqual(30_000)
      expect(frames.filter((f) => f.d.guild_id === otherGuild).map((f) => f.at)).toEqual([mine[0]])
      expect(yield* rateLimitedFrames).toEqual([]) // Discord never had to refuse one
    }).pipe(Effect.provide(bigGuilds)))

  it.effect("item 44: the 30 s spacing holds back only all-members requests; other requests for the guild go at once", () =>
    Effect.gen(function*() {
      const { requests } = yield* setup()
      const all = yield* consume(requests.request({ guildId: guild, query: "", limit: 0 }))
      yield* advance(100)
      expect(yield* completed(all)).toHaveLength(3)
      const byIds = yield* consume(requests.request({ guildId: guild, userIds: [memberId(5)] }))
      const byQuery = yield* consume(requests.request({ guildId: guild, query: "m", limit: 1 }))
      yield* advance(100)
      expect(yield* completed(byIds)).toHaveLength(1)
      expect(yield* completed(byQuery)).toHaveLength(1)
    }).pipe(Effect.provide(bigGuilds)))
  it.effect("item 44: an all-members request whose send failed does not hold the next one back 30 s", () =>
    Effect.gen(function*() {
      const shard = yield* startShard({ intents: MemberIntents })
      let sends = 0
      const requests = yield* attach(shard, MemberIntents, {
        send: (_guildId, d) => sends++ === 0 ? Effect.fail({ message: "the shard stopped" }) : shard.send({ op: 8, d })
      })
      yield* advance(100)
      const failed = yield* consume(requests.request({ guildId: guild, query: "", limit: 0 }))
      yield* advance(100)
      expect((yield* failureOf(failed)).reason).toBe("SendFailed")
      const next = yield* consume(requests.request({ guildId: guild, query: "", limit: 0 }))
      yield* advance(100)
      expect(yield* completed(next)).toHaveLength(3) // nothing was written: no 30 s to wait
    }).pipe(Effect.provide(bigGuilds)))

  it.effect("item 44: the 30 s count from when the first all-members frame was written, not from when it was handed over", () =>
    Effect.gen(function*() {
      const shard = yield* startShard({ intents: MemberIntents })
      let sends = 0
      // The first frame takes 40 s to go out (as if queued behind the send limit), later ones go at once:
      // the second may not even pass the gate while the first is still being sent.
      const requests = yield* attach(shard, MemberIntents, {
        send: (_guildId, d) => Effect.andThen(sends++ === 0 ? Effect.sleep("40 seconds") : Effect.void, shard.send({ op: 8, d }))
      })
      yield* advance(100)
      const one = yield* consume(requests.request({ guildId: guild, query: "", limit: 0 }))
      const two = yield* consume(requests.request({ guildId: guild, query: "", limit: 0 }))
      yield* advanceBy(75_000)
      expect(yield* completed(one)).toHaveLength(3)
      expect(yield* completed(two)).toHaveLength(3)
      const [first, second] = (yield* op8Frames).map((f) => f.at)
      expect(second! - first!).toBeGreaterThanOrEqual(30_000)
      expect(yield* rateLimitedFrames).toEqual([])
    }).pipe(Effect.provide(bigGuilds)))
})

describe("MemberRequests: abandoned requests", () => {
  it.effect("item 44: an all-members request interrupted while its frame is being sent counts as sent: the next one still waits 30 s", () =>
    Effect.scoped(Effect.gen(function*() {
      const sent: Array<number> = []
      const requests = yield* MemberRequests.make({
        // the first frame is handed over but its send never completes (it may still go out, e.g. queued in the shard)
        send: () => Effect.flatMap(Clock.currentTimeMillis, (at) => sent.push(at) === 1 ? Effect.never : Effect.void),
        shardOf: () => 0,
        intents: MemberIntents
      })
      const first = yield* consume(requests.request({ guildId: guild, query: "", limit: 0 }))
      yield* advance(1_000)
      yield* Fiber.interrupt(first.fiber) // the caller gives up
      const second = yield* consume(requests.request({ guildId: guild, query: "", limit: 0 }))
      yield* advance(10_000)
      expect(sent).toHaveLength(1)
      yield* advance(20_000)
      expect(sent).toHaveLength(2)
      expect(sent[1]! - sent[0]!).toBeGreaterThanOrEqual(30_000)
      expect(second.ended()).toBe(false) // waiting for its chunks
    })))

  it.effect("a request whose consumer stops early is no longer in flight", () =>
    Effect.gen(function*() {
      const { requests } = yield* setup()
      const waiting = yield* consume(requests.request({ guildId: silentGuild, query: "a", limit: 1 }))
      yield* advance(100)
      expect(yield* requests.inFlight).toBe(1)
      yield* Fiber.interrupt(waiting.fiber)
      yield* settle
      expect(yield* requests.inFlight).toBe(0)
      // a stream taken only in part (the first of 3 chunks) leaves nothing behind either
      const firstChunk = yield* Stream.runCollect(Stream.take(requests.request({ guildId: guild, query: "", limit: 0 }), 1))
      expect(firstChunk).toHaveLength(1)
      yield* settle
      expect(yield* requests.inFlight).toBe(0)
    }).pipe(Effect.provide(bigGuilds)))
})

describe("MemberRequests: many guilds", () => {
  it.effect("items 43 and 44: a guild's block, its 30 s spacing and its all-members send under way survive the clean-up of idle guilds (> 1024 guilds)", () =>
    Effect.scoped(Effect.gen(function*() {
      const [blocked, spaced, sending] = ["100000000000000001", "100000000000000002", "100000000000000003"]
      const sent: Array<{ readonly guildId: string; readonly at: number }> = []
      let sends = 0
      const requests = yield* MemberRequests.make({
        send: (guildId) =>
          Effect.flatMap(Clock.currentTimeMillis, (at) => {
            sent.push({ guildId, at })
            // the first all-members send for `sending` never completes (a frame held inside the shard)
            return guildId === sending && sends++ === 0 ? Effect.never : Effect.void
          }),
        shardOf: () => 0,
        intents: MemberIntents
      })
      const sentTo = (guildId: string) => sent.filter((s) => s.guildId === guildId)
      yield* consume(requests.request({ guildId: sending, query: "", limit: 0 }))
      yield* advance(31_000) // its 30 s are over: only the send under way keeps its slot
      yield* requests.onDispatch(Dispatch.make(0, 1, "RATE_LIMITED", { opcode: 8, retry_after: 60, meta: { guild_id: blocked } }))
      yield* consume(requests.request({ guildId: spaced, query: "", limit: 0 }))
      yield* settle
      expect(sentTo(spaced)).toHaveLength(1)
      // requests for 1100 other guilds: their idle per-guild state is cleaned up along the way
      for (let i = 0; i < 1100; i++) {
        yield* consume(requests.request({ guildId: String(200000000000000000n + BigInt(i)), userIds: [memberId(0)] }))
      }
      yield* settle
      expect(sent).toHaveLength(1102)
      yield* consume(requests.request({ guildId: blocked, userIds: [memberId(0)] }))
      yield* consume(requests.request({ guildId: spaced, query: "", limit: 0 }))
      yield* consume(requests.request({ guildId: sending, query: "", limit: 0 }))
      yield* advance(1_000)
      expect(sentTo(blocked)).toEqual([]) // item 43: 60 s block
      expect(sentTo(spaced)).toHaveLength(1) // item 44: 30 s since the first
      expect(sentTo(sending)).toHaveLength(1) // item 44: the first is still being sent
      yield* advance(30_000)
      expect(sentTo(spaced).map((s) => s.at - sentTo(spaced)[0]!.at)).toEqual([0, 30_000])
      expect(sentTo(blocked)).toEqual([])
      yield* advance(30_000)
      expect(sentTo(blocked).map((s) => s.at)).toEqual([31_000 + 60_000])
      expect(sentTo(sending)).toHaveLength(1)
    })))
})

describe("MemberRequests: failing cleanly", () => {
  it.effect("shardLost mid-request fails the sent request with SessionLost; unsent and other-shard requests go on", () =>
    Effect.gen(function*() {
      const { requests, sim } = yield* setup()
      yield* completed(yield* consume(requests.request({ guildId: guild, query: "", limit: 0 })).pipe(Effect.tap(() => advance(100))))
      const waiting = yield* consume(requests.request({ guildId: guild, query: "", limit: 0 })) // held by the 30 s rule
      const consumer = yield* consume(requests.request({ guildId: silentGuild, query: "a", limit: 10 }))
      yield* advance(100)
      const nonce = (yield* op8Frames).find((f) => f.d.guild_id === silentGuild)!.d.nonce!
      yield* sim.dispatch("GUILD_MEMBERS_CHUNK", { guild_id: silentGuild, members: [], chunk_index: 0, chunk_count: 2, nonce })
      yield* advance(10)
      expect(consumer.chunks).toHaveLength(1)
      yield* requests.shardLost(1, "another shard reconnected")
      yield* advance(10)
      expect(consumer.ended()).toBe(false)
      yield* requests.shardLost(0, "reconnect")
      const error = yield* failureOf(consumer)
      expect(error).toBeInstanceOf(MemberRequests.MemberRequestError)
      expect(error.reason).toBe("SessionLost")
      expect(error.message).toContain("shard 0")
      expect(error.message).toContain(silentGuild)
      expect(consumer.chunks).toHaveLength(1)
      // the request that was not sent yet is sent later on the shard's (new) session
      expect(waiting.ended()).toBe(false)
      yield* advanceBy(31_000)
      expect(yield* completed(waiting)).toHaveLength(3)
    }).pipe(Effect.provide(bigGuilds)))

  it.effect("a dropped connection (the Gateway-like glue calls shardLost) fails the request; requests work again after the resume", () =>
    Effect.gen(function*() {
      const { requests, shard, sim } = yield* setup()
      yield* glueShardLost(shard, requests)
      yield* settle
      const consumer = yield* consume(requests.request({ guildId: silentGuild, query: "a", limit: 1 }))
      yield* advance(100)
      expect(yield* op8Frames).toHaveLength(1)
      yield* sim.drop(0)
      yield* advance(100)
      const error = yield* failureOf(consumer)
      expect(error.reason).toBe("SessionLost")
      yield* advanceBy(3_000)
      expect(yield* phaseOf(shard)).toBe("ready")
      expect((yield* sim.clientFrames({ op: 6 })).length).toBeGreaterThanOrEqual(1)
      const again = yield* consume(requests.request({ guildId: guild, userIds: [memberId(3)] }))
      yield* advance(100)
      expect(yield* completed(again)).toHaveLength(1)
    }).pipe(Effect.provide(bigGuilds)))

  it.effect("a request handed to the shard while its session was lost is sent again and still yields each chunk once", () =>
    Effect.gen(function*() {
      const { requests, shard, sim } = yield* setup()
      yield* sim.refuseConnections("wss://", true) // keep the shard away until the test lets it back
      yield* sim.drop(0)
      const consumer = yield* consume(requests.request({ guildId: guild, query: "member-1", limit: 3 }))
      yield* settle
      expect(yield* phaseOf(shard)).not.toBe("ready") // the frame waits inside the shard for the next session
      expect(yield* op8Frames).toEqual([])
      yield* requests.shardLost(0, "connection dropped") // it may have gone out on the lost session: ask again
      yield* sim.refuseConnections("wss://", false)
      yield* advanceBy(5_000)
      expect(yield* phaseOf(shard)).toBe("ready")
      expect(yield* completed(consumer)).toHaveLength(1)
      yield* advance(100)
      expect(consumer.chunks).toHaveLength(1) // the second answer's chunk is a duplicate index
      const frames = yield* op8Frames
      expect(frames).toHaveLength(2)
      expect(frames[0]!.d.nonce).toBe(frames[1]!.d.nonce)
    }).pipe(Effect.provide(bigGuilds)))

  it.effect("shutdown fails in-flight and waiting requests with Shutdown and refuses new ones; closing the Scope shuts down", () =>
    Effect.gen(function*() {
      const { requests } = yield* setup()
      yield* completed(yield* consume(requests.request({ guildId: guild, query: "", limit: 0 })).pipe(Effect.tap(() => advance(100))))
      const waiting = yield* consume(requests.request({ guildId: guild, query: "", limit: 0 }))
      const sent = yield* consume(requests.request({ guildId: silentGuild, query: "a", limit: 1 }))
      yield* advance(100)
      expect(yield* op8Frames).toHaveLength(2)
      yield* requests.shutdown
      expect((yield* failureOf(sent)).reason).toBe("Shutdown")
      expect((yield* failureOf(waiting)).reason).toBe("Shutdown")
      const late = yield* Effect.flip(Stream.runCollect(requests.request({ guildId: guild, userIds: [memberId(0)] })))
      expect(late.reason).toBe("Shutdown")
      yield* advanceBy(31_000)
      expect(yield* op8Frames).toHaveLength(2) // nothing more was sent

      const scope = yield* Scope.make()
      const scoped = yield* MemberRequests.make({
        send: () => Effect.void,
        shardOf: () => 0,
        intents: MemberIntents
      }).pipe(Scope.provide(scope))
      const pending = yield* consume(scoped.request({ guildId: silentGuild, query: "a", limit: 1 }))
      yield* advance(10)
      yield* Scope.close(scope, Exit.void)
      expect((yield* failureOf(pending)).reason).toBe("Shutdown")
    }).pipe(Effect.provide(bigGuilds)))

  it.effect("a request fails with SendFailed when the shard has stopped", () =>
    Effect.gen(function*() {
      const { requests, shard } = yield* setup()
      yield* shard.stop()
      const error = yield* Effect.flip(Stream.runCollect(requests.request({ guildId: guild, userIds: [memberId(0)] })))
      expect(error.reason).toBe("SendFailed")
      expect(error.message).toContain("stopped")
    }).pipe(Effect.provide(bigGuilds)))

  for (const [label, timeoutMs] of [["after the idle timeout set (10 s)", 10_000], ["by default after 60 s", undefined]] as const) {
    it.effect(`a sent request that gets no chunk fails with Timeout ${label}`, () =>
      Effect.gen(function*() {
        const { requests } = yield* setup(timeoutMs === undefined ? {} : { extra: { timeout: Duration.millis(timeoutMs) } })
        const expectedMs = timeoutMs ?? 60_000
        const consumer = yield* consume(requests.request({ guildId: silentGuild, query: "a", limit: 1 }))
        yield* advanceBy(expectedMs - 500)
        expect(consumer.ended()).toBe(false)
        yield* advanceBy(1_000)
        const error = yield* failureOf(consumer)
        expect(error.reason).toBe("Timeout")
        expect(error.message).toContain(`${expectedMs} ms`)
      }).pipe(Effect.provide(bigGuilds)))
  }

  it.effect("the idle timeout counts from the last chunk: a slow answer still completes", () =>
    Effect.gen(function*() {
      const { requests, sim } = yield* setup({ extra: { timeout: "10 seconds" } })
      const consumer = yield* consume(requests.request({ guildId: silentGuild, query: "a", limit: 10 }))
      yield* advance(100)
      const nonce = (yield* op8Frames)[0]!.d.nonce!
      for (const index of [0, 1, 2]) {
        yield* advanceBy(8_000) // under the timeout since the previous chunk, over it since sending
        yield* sim.dispatch("GUILD_MEMBERS_CHUNK", { guild_id: silentGuild, members: [], chunk_index: index, chunk_count: 3, nonce })
      }
      yield* advance(10)
      expect(yield* completed(consumer)).toHaveLength(3)
    }).pipe(Effect.provide(bigGuilds)))
})

describe("MemberRequests: local validation (item 56)", () => {
  const untyped = (options: object) => options as MemberRequests.MemberRequestOptions
  const many = Array.from({ length: 101 }, (_, i) => memberId(i))
  const cases: ReadonlyArray<readonly [string, MemberRequests.MemberRequestOptions, MemberRequests.MemberRequestFailure, string]> = [
    ["a guild id that is not a snowflake", { guildId: "my-guild", query: "a", limit: 1 }, "InvalidRequest", "snowflake"],
    ["both query and userIds", { guildId: guild, query: "a", limit: 1, userIds: [memberId(0)] }, "InvalidRequest", "not both"],
    ["neither query nor userIds", { guildId: guild }, "InvalidRequest", "set query with limit"],
    ["query without limit", { guildId: guild, query: "a" }, "InvalidRequest", "limit is required with query"],
    ["a negative limit", { guildId: guild, query: "a", limit: -1 }, "InvalidRequest", "non-negative integer"],
    ["an empty userIds", { guildId: guild, userIds: [] }, "InvalidRequest", "at least one"],
    ["101 userIds", { guildId: guild, userIds: many }, "InvalidRequest", "at most 100"],
    ["limit with userIds", { guildId: guild, userIds: [memberId(0)], limit: 5 }, "InvalidRequest", "query requests only"],
    ["a user id that is not a snowflake", { guildId: guild, userIds: [memberId(0), "bob"] }, "InvalidRequest", "userIds[1]"],
    ["all members without GUILD_MEMBERS", { guildId: guild, query: "", limit: 0 }, "MissingIntent", "GUILD_MEMBERS"],
    ["presences without GUILD_PRESENCES", { guildId: guild, userIds: [memberId(0)], presences: true }, "MissingIntent", "GUILD_PRESENCES"],
    // what a caller without types (JavaScript, parsed JSON) may pass
    ["presences that is not a boolean", untyped({ guildId: guild, userIds: [memberId(0)], presences: "yes" }), "InvalidRequest", "presences must be a boolean"],
    ["a query that is not a string", untyped({ guildId: guild, query: 5, limit: 1 }), "InvalidRequest", "query must be a string"],
    ["a limit that is not an integer", { guildId: guild, query: "a", limit: 1.5 }, "InvalidRequest", "non-negative integer"],
    ["userIds that is one id, not an array", untyped({ guildId: guild, userIds: memberId(0) }), "InvalidRequest", "at least one"],
    ["a first user id that is not a snowflake", { guildId: guild, userIds: ["bob", memberId(0)] }, "InvalidRequest", "userIds[0]"],
    ["a user id that is a number, not a string", untyped({ guildId: guild, userIds: [12345] }), "InvalidRequest", "userIds[0]"]
  ]

  it.effect("item 56: invalid requests are refused locally with a message that says what to fix; nothing is sent", () =>
    Effect.gen(function*() {
      const { requests } = yield* setup({ intents: Intents.Guilds | Intents.GuildMessages })
      for (const [name, options, reason, fix] of cases) {
        // failureOf: a request accepted by mistake fails the test at once instead of waiting for chunks
        const error = yield* failureOf(yield* consume(requests.request(options)))
        expect(error, name).toBeInstanceOf(MemberRequests.MemberRequestError)
        expect(error.reason, name).toBe(reason)
        expect(error.message, name).toContain(fix)
      }
      yield* advance(100)
      expect(yield* op8Frames).toEqual([])
      // without GUILD_MEMBERS a prefix query is still allowed, even an empty prefix with a limit
      const prefix = yield* consume(requests.request({ guildId: guild, query: "", limit: 5 }))
      yield* advance(100)
      expect((yield* completed(prefix)).flatMap((c) => c.members)).toHaveLength(5)
      const sim = yield* GatewaySimulator
      expect((yield* sim.connections).every((c) => c.closeCode === null)).toBe(true)
    }).pipe(Effect.provide(bigGuilds)))

  it("validateRequest builds the op 8 d of a valid request", () => {
    expect(MemberRequests.validateRequest({ guildId: guild, query: "ab", limit: 3, presences: false }, 0)).toEqual({
      guild_id: guild,
      presences: false,
      query: "ab",
      limit: 3
    })
    expect(MemberRequests.validateRequest({ guildId: guild, userIds: [memberId(0)] }, 0)).toEqual({
      guild_id: guild,
      user_ids: [memberId(0)]
    })
    const hundred = Array.from({ length: 100 }, (_, i) => memberId(i)) // the most one request may name
    expect(MemberRequests.validateRequest({ guildId: guild, userIds: hundred }, 0)).toEqual({ guild_id: guild, user_ids: hundred })
  })

  it("validateRequest copies userIds: the caller changing its array afterwards does not change the request", () => {
    const ids = [memberId(0), memberId(1)]
    const d = MemberRequests.validateRequest({ guildId: guild, userIds: ids }, 0)
    ids[0] = "bob"
    ids.push(memberId(2))
    expect(d).toEqual({ guild_id: guild, user_ids: [memberId(0), memberId(1)] })
  })
})

describe("MemberRequests: properties", () => {
  /** A deterministic shuffle (LCG) so the property's input fully decides the order. */
  const shuffled = <A>(items: ReadonlyArray<A>, seed: number): Array<A> => {
    const out = items.slice()
    let state = (seed >>> 0) || 1
    for (let i = out.length - 1; i > 0; i--) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0
      const j = state % (i + 1)
      const tmp = out[i]!
      out[i] = out[j]!
      out[j] = tmp
    }
    return out
  }

  it.effect.prop(
    "item 55: in any order, with duplicates, each index is yielded once and the stream ends right after the last new one",
    {
      count: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 12 })),
      seed: Schema.Int
    },
    ({ count, seed }) =>
      Effect.scoped(Effect.gen(function*() {
        const sent: Array<RequestGuildMembersData> = []
        const requests = yield* MemberRequests.make({
          send: (_guildId, d) => Effect.sync(() => void sent.push(d)),
          shardOf: () => 0,
          intents: MemberIntents
        })
        const consumer = yield* consume(requests.request({ guildId: guild, query: "", limit: 0 }))
        yield* settle
        const nonce = sent[0]!.nonce!
        const indices = Array.from({ length: count }, (_, i) => i)
        const order = shuffled([...indices, ...indices], seed)
        const distinct = new Set<number>()
        let seq = 0
        for (const index of order) {
          yield* requests.onDispatch(Dispatch.make(0, ++seq, "GUILD_MEMBERS_CHUNK", {
            guild_id: guild,
            members: [],
            chunk_index: index,
            chunk_count: count,
            nonce
          }))
          distinct.add(index)
          yield* settle
          expect(consumer.ended()).toBe(distinct.size === count)
        }
        const chunks = yield* completed(consumer)
        expect(chunks.map((c) => c.chunk_index).sort((a, b) => a - b)).toEqual(indices)
        expect(sent).toHaveLength(1)
      })),
    { arbitrary: { runs: 40 } }
  )
})
