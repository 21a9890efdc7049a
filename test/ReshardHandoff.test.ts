import { describe, expect, it } from "@effect/vitest"
import * as Dispatch from "../src/Dispatch.ts"
import * as ReshardHandoff from "../src/ReshardHandoff.ts"

const typing = (shard: number, seq: number) =>
  Dispatch.make(shard, seq, "TYPING_START", { channel_id: "1", user_id: "2", timestamp: 1700000000 })
const message = (shard: number, seq: number, id: string) => Dispatch.make(shard, seq, "MESSAGE_CREATE", { id })

const twoShards = { count: 2, ids: [0, 1] }
const oneShard = { count: 1, ids: [0] }

const make = (onCaughtUp?: () => void) =>
  ReshardHandoff.make({ windowMs: 1000, capacity: 1000, oldShards: twoShards, newShards: twoShards, ...(onCaughtUp ? { onCaughtUp } : {}) })

describe("ReshardHandoff", () => {
  it("identical payloads are counted, not collapsed: two typing events stay two", () => {
    const h = make()
    h.recordDelivered(typing(0, 10), 0) // the old set delivered the first copy…
    h.stage(typing(0, 3), 5) // …the new set's copy of it is dropped
    h.stage(typing(0, 4), 6) // the second (identical payload, distinct event) is kept
    expect(h.flush(10).map((d) => d.seq)).toEqual([4])
  })

  it("two identical deliveries match two identical copies: none is released", () => {
    const h = make()
    h.recordDelivered(typing(0, 10), 0)
    h.recordDelivered(typing(0, 11), 1)
    h.stage(typing(0, 3), 5)
    h.stage(typing(0, 4), 6)
    expect(h.flush(10)).toEqual([])
  })

  it("identity includes the event name: a reaction removed is not a copy of the reaction added", () => {
    const h = make()
    const reaction = { user_id: "2", channel_id: "1", message_id: "3", emoji: { id: null, name: "👍" } }
    h.recordDelivered(Dispatch.make(0, 10, "MESSAGE_REACTION_ADD", reaction), 0)
    h.stage(Dispatch.make(0, 4, "MESSAGE_REACTION_REMOVE", reaction), 5)
    expect(h.flush(10).map((d) => d.name)).toEqual(["MESSAGE_REACTION_REMOVE"])
  })

  it("a copy whose frame differs from the delivered one only in a key after d is still a copy (identity is d's text)", () => {
    const lazy = (frame: string, seq: number) => Dispatch.makeLazy(0, seq, "X", frame, frame.indexOf('"d":') + 4, () => {})
    const h = make()
    h.recordDelivered(lazy('{"t":"X","s":10,"op":0,"d":{"a":"}\\"","b":[1,{"c":2}]},"_trace":["old-set"]}', 10), 0)
    h.stage(lazy('{"t":"X","s":3,"op":0,"d":{"a":"}\\"","b":[1,{"c":2}]},"_trace":["new-set"]}', 3), 5)
    expect(h.flush(10)).toEqual([])
  })

  it("staged events the old set delivers later are not released; the rest are, in order", () => {
    const h = make()
    h.stage(message(0, 1, "a"), 0)
    h.stage(message(1, 1, "b"), 1)
    h.stage(message(0, 2, "c"), 2)
    h.recordDelivered(message(0, 7, "a"), 3)
    expect(h.flush(4).map((d) => (d.data as { id: string }).id)).toEqual(["b", "c"])
  })

  it("catches up once the old set has delivered an event every new shard received", () => {
    let caughtUp = 0
    const h = make(() => caughtUp++)
    h.stage(message(0, 1, "a"), 0)
    h.recordDelivered(message(0, 5, "a"), 1) // new shard 0 passed
    expect(h.caughtUp()).toBe(false)
    h.recordDelivered(message(1, 6, "b"), 2) // the old set is ahead: remembered…
    h.stage(message(1, 1, "b"), 3) // …and the new shard 1's copy proves it passed
    expect(h.caughtUp()).toBe(true)
    expect(caughtUp).toBe(1)
  })

  it("4 → 6: a new shard's guilds come from two old shards, and each must catch up; one cannot vouch for the other", () => {
    // New shard 4 holds guilds with (id >> 22) ≡ 4 (mod 6): ≡ 0 or 2 (mod 4), i.e. on old shards 0 and 2.
    let caughtUp = 0
    const h = ReshardHandoff.make({
      windowMs: 1000,
      capacity: 1000,
      oldShards: { count: 4, ids: [0, 1, 2, 3] },
      newShards: { count: 6, ids: [4] },
      onCaughtUp: () => caughtUp++
    })
    h.stage(message(4, 1, "on old 2"), 0)
    h.recordDelivered(message(2, 9, "on old 2"), 1) // old shard 2 passed new shard 4's start…
    expect(h.caughtUp()).toBe(false) // …but old shard 0 (lagging) may still hold earlier events of its guilds
    h.recordDelivered(message(0, 5, "on old 0"), 2) // old shard 0 is ahead: remembered…
    h.stage(message(4, 2, "on old 0"), 3) // …and new shard 4's copy proves it passed too
    expect(h.caughtUp()).toBe(true)
    expect(caughtUp).toBe(1)
  })

  it("k → 2k: each new shard has exactly one old shard, so one delivery each catches up", () => {
    const h = ReshardHandoff.make({ windowMs: 1000, capacity: 1000, oldShards: twoShards, newShards: { count: 4, ids: [0, 1, 2, 3] } })
    for (const n of [0, 1, 2, 3]) {
      expect(h.caughtUp()).toBe(false)
      h.stage(message(n, 1, `e${n}`), n)
      h.recordDelivered(message(n % 2, 10 + n, `e${n}`), n) // new shard n's guilds are all on old shard n mod 2
    }
    expect(h.caughtUp()).toBe(true)
  })

  it("no old shard here can share a guild with a new shard here: caught up at once, and told so once", () => {
    let caughtUp = 0
    // 4 → 6 with old shard 1 and new shard 0 in this process: 1 and 0 differ modulo gcd(4, 6) = 2.
    const h = ReshardHandoff.make({ windowMs: 1000, capacity: 1000, oldShards: { count: 4, ids: [1] }, newShards: { count: 6, ids: [0] }, onCaughtUp: () => caughtUp++ })
    expect(h.caughtUp()).toBe(true)
    expect(caughtUp).toBe(1)
  })

  it(`past ${ReshardHandoff.MaxCatchUpPairs} shard pairs the catch-up is not tracked: never caught up before the window`, () => {
    const ids = (count: number) => Array.from({ length: count }, (_, i) => i)
    // 400 and 401 are coprime: every old shard can share a guild with every new shard (160 400 pairs).
    const h = ReshardHandoff.make({ windowMs: 1000, capacity: 1000, oldShards: { count: 400, ids: ids(400) }, newShards: { count: 401, ids: ids(401) } })
    h.stage(message(0, 1, "a"), 0)
    h.recordDelivered(message(0, 5, "a"), 1)
    expect(h.caughtUp()).toBe(false)
    const small = ReshardHandoff.make({ windowMs: 1000, capacity: 1000, oldShards: { count: 2, ids: [0] }, newShards: { count: 3, ids: [0] } })
    small.stage(message(0, 1, "a"), 0)
    small.recordDelivered(message(0, 5, "a"), 1)
    expect(small.caughtUp()).toBe(true) // 2 → 3 with one shard each here: one pair, matched
  })

  it("after the switch each event goes through whichever set has it first, once, within the window", () => {
    const h = make()
    h.flush(0)
    expect(h.fromOld(message(0, 9, "x"), 10)).toBe(true) // old first: delivered
    expect(h.fromNew(message(0, 2, "x"), 20)).toBe(false) // new's copy dropped
    expect(h.fromNew(message(0, 3, "y"), 30)).toBe(true) // new first: delivered
    expect(h.fromOld(message(0, 10, "y"), 40)).toBe(false) // old's copy dropped
    expect(h.fromOld(message(0, 11, "w"), 990)).toBe(true) // the old set's last accepted event…
    expect(h.fromOld(message(0, 11, "z"), 1000)).toBe(false) // past one window the old set is cut off
    expect(h.fromNew(message(0, 4, "w"), 1100)).toBe(false) // …its late new copy is still dropped
    expect(h.fromNew(message(0, 5, "z"), 1100)).toBe(true)
    expect(h.expired(1999)).toBe(false)
    expect(h.expired(2000)).toBe(true)
    expect(h.stats()).toMatchObject({ released: 0, deduplicated: 3 })
  })

  it("remembered deliveries expire after two windows", () => {
    const h = make()
    h.recordDelivered(message(0, 1, "late"), 0)
    h.recordDelivered(message(0, 2, "kept"), 0)
    h.stage(message(0, 1, "kept"), 1900) // within two windows: matched, not released
    h.stage(message(0, 1, "late"), 2500) // the copy came more than 2 windows later: not matched
    expect(h.flush(2600).map((d) => (d.data as { id: string }).id)).toEqual(["late"])
  })

  it("a matched copy expiring does not take a later identical delivery with it", () => {
    const h = make()
    h.recordDelivered(typing(0, 10), 0)
    h.stage(typing(0, 3), 100) // matched: the first copy is consumed
    h.recordDelivered(typing(0, 11), 500) // a second event with the same payload
    h.stage(typing(0, 4), 2100) // the first entry has expired, the second has not: still matched
    expect(h.flush(2200)).toEqual([])
  })

  it("memory is bounded by capacity: past it the oldest remembered delivery is forgotten", () => {
    const h = ReshardHandoff.make({ windowMs: 1000, capacity: 2, oldShards: oneShard, newShards: oneShard })
    h.recordDelivered(message(0, 1, "a"), 0)
    h.recordDelivered(message(0, 2, "b"), 1)
    h.recordDelivered(message(0, 3, "c"), 2) // "a" is forgotten
    h.stage(message(0, 1, "a"), 3)
    h.stage(message(0, 2, "c"), 4)
    expect(h.flush(5).map((d) => (d.data as { id: string }).id)).toEqual(["a"])
  })

  it("staged events are bounded by capacity too: past it the oldest is dropped (its copy taken as delivered)", () => {
    const h = ReshardHandoff.make({ windowMs: 1000, capacity: 2, oldShards: oneShard, newShards: oneShard })
    h.stage(message(0, 1, "a"), 0)
    h.stage(message(0, 2, "b"), 1)
    h.stage(message(0, 3, "c"), 2)
    expect(h.flush(3).map((d) => (d.data as { id: string }).id)).toEqual(["b", "c"])
  })
})
