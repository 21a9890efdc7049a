/**
 * The soak in the test suite (issue 5 "Soak", short version): the same `SoakRun` as `npm run soak`, with the
 * in-process simulator under TestClock — 4 shards, 3 minutes of virtual time, continuous traffic, a fault
 * every ~2.5 s cycling through every kind, reshards 4 → 8 → 4 → 12 → 4 with the two sets' dispatches arriving
 * at different times — and its parts: the ledger's verdicts, the wire counts and the CLI flags.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Fiber, Random, Result } from "effect"
import { TestClock } from "effect/testing"
import * as SoakEnvironment from "../src/soak/SoakEnvironment.ts"
import { FaultKinds } from "../src/soak/SoakFaults.ts"
import * as SoakFlags from "../src/soak/SoakFlags.ts"
import * as SoakLedger from "../src/soak/SoakLedger.ts"
import { problems, type SoakReport } from "../src/soak/SoakReport.ts"
import * as SoakReshards from "../src/soak/SoakReshards.ts"
import { planned } from "../src/soak/SoakReshards.ts"
import * as SoakRun from "../src/soak/SoakRun.ts"
import { makeGuilds, shardOf } from "../src/soak/SoakTraffic.ts"
import { wireStats } from "../src/soak/SoakWire.ts"
import { GatewaySimulator } from "../src/testing/GatewaySimulator.ts"

describe("soak ledger", () => {
  it("counts a second delivery of an id as a duplicate, and an earlier id after a later one of its guild as out of order", () => {
    const ledger = SoakLedger.make(2)
    for (let i = 0; i < 3; i++) ledger.sent(ledger.nextId(), 0, ["session-1"])
    ledger.delivered(0, 0, 0, 10)
    ledger.delivered(2, 0, 0, 11)
    ledger.delivered(1, 0, 0, 12)
    ledger.delivered(2, 0, 1, 13)
    ledger.delivered(7, 0, 0, 14) // never issued
    const settled = ledger.settle(new Set(["session-1"]))
    expect(settled).toMatchObject({ sent: 3, delivered: 3, duplicates: 1, outOfOrder: 1, unexpected: 1, missing: 0 })
    expect(settled.duplicateSamples).toEqual([{ id: 2, guild: 0, shard: 1, at: 13 }])
    expect(settled.outOfOrderSamples).toEqual([{ id: 1, guild: 0, shard: 0, at: 12, after: 2 }])
  })

  it("an undelivered event is lost legitimately only if a fault destroyed its sessions and none is alive; otherwise it is missing", () => {
    const ledger = SoakLedger.make(1)
    const send = (sessions: Array<string>) => {
      const id = ledger.nextId()
      ledger.sent(id, 0, sessions)
      return id
    }
    send(["s-live"]) // 0: its session is alive: the client should have it → missing
    send(["s-faulted"]) // 1: only session destroyed by a fault → expected loss
    send(["s-faulted", "s-retired"]) // 2: the other copy's session was ended by the client (a reshard) → expected loss
    send(["s-retired"]) // 3: ended by the client with no fault → missing
    send(["s-faulted", "s-live"]) // 4: a live session still has it → missing
    send([]) // 5: no session owned the guild → not sent
    ledger.destroyedByFault(["s-faulted"])
    const alive = new Set(["s-live"])
    expect(ledger.owed(alive)).toBe(2)
    const settled = ledger.settle(alive)
    expect(settled).toMatchObject({ sent: 6, notSent: 1, lostWithDestroyedSession: 2, missing: 3, pending: 5 })
    expect(settled.missingSamples.map((m) => m.id)).toEqual([0, 3, 4])
    expect(settled.missingSamples[1]!.sessions).toEqual([{ id: "s-retired", fate: "ended by the client" }])
  })

  it("a delivery of an event that went into no session is unexpected", () => {
    const ledger = SoakLedger.make(1)
    ledger.sent(ledger.nextId(), 0, [])
    ledger.delivered(0, 0, 0, 0)
    expect(ledger.totals()).toMatchObject({ notSent: 1, delivered: 0, unexpected: 1 })
  })
})

describe("soak wire counts", () => {
  it("identifies are sessions created, resumes are sessions carried again, reconnects are connections beyond the starts", () => {
    const connection = (id: number, shard: readonly [number, number] | null, sessionId: string | null, closeCode: number | null) => ({
      id,
      url: "wss://x",
      openedAt: id,
      closedAt: closeCode === null ? null : id + 1,
      closeCode,
      closedBy: closeCode === null ? null : closeCode === 1006 ? "transport" as const : "server" as const,
      shard,
      sessionId
    })
    const stats = wireStats([
      connection(1, [0, 2], "session-1", 1006), // start
      connection(2, [1, 2], "session-2", null), // start
      connection(3, [0, 2], "session-1", 4003), // RESUME of session-1
      connection(4, null, null, 4000), // never got as far as IDENTIFY
      connection(5, [0, 2], "session-3", null) // IDENTIFY after 4003
    ], 2)
    expect(stats).toMatchObject({ connections: 5, identifies: 3, resumes: 1, reconnects: 3 })
    expect([...stats.closes]).toEqual([["1006 by transport", 1], ["4003 by server", 1], ["4000 by server", 1]])
  })
})

describe("soak flags", () => {
  it("defaults: 600 s, 16 shards, a fault every 3 s, 200 events/s, a reshard every 120 s", () => {
    const flags = SoakFlags.parse([])
    expect(Result.isSuccess(flags) && flags.success).toMatchObject({
      durationMs: 600_000,
      shards: 16,
      faultEveryMs: 3000,
      rate: 200,
      reshardEveryMs: 120_000,
      guilds: 192
    })
  })

  it("reads --name value and --name=value; a short run still reshards every 20 s at least; bad values are named", () => {
    const flags = SoakFlags.parse(["--duration", "60", "--shards=8", "--fault-every", "0.5", "--rate=50"])
    expect(Result.isSuccess(flags) && flags.success).toMatchObject({
      durationMs: 60_000,
      shards: 8,
      faultEveryMs: 500,
      rate: 50,
      reshardEveryMs: 20_000,
      guilds: 96
    })
    expect(SoakFlags.parse(["--duration", "soon"])).toEqual(Result.fail(`--duration takes a number of seconds above 0, got "soon"`))
    expect(SoakFlags.parse(["--shards"])).toEqual(Result.fail("--shards needs a value"))
    expect(SoakFlags.parse(["--bogus", "1"])).toEqual(Result.fail("unknown flag --bogus: see --help"))
  })
})

const Shards = 4
const guilds = makeGuilds(48) // 4 per shard at 12 shards

/** Moves the TestClock in small steps until the fiber is done (at most `limitMs` of virtual time). */
const driveUntilDone = <A, E>(fiber: Fiber.Fiber<A, E>, limitMs: number) =>
  Effect.gen(function*() {
    for (let t = 0; t < limitMs && fiber.pollUnsafe() === undefined; t += 100) {
      for (let i = 0; i < 8; i++) yield* Effect.yieldNow
      yield* TestClock.adjust(100)
    }
    return yield* Fiber.join(fiber)
  })

// Deterministic (TestClock, seeded Random). The shard sets receive dispatches 20/40/80 ms late by count, so
// during each reshard the old and the new set see every event at different times, in both directions.
describe("soak (short, under TestClock)", () => {
  it.effect(
    "4 shards, 3 virtual minutes, every fault kind, reshards 4 → 8 → 4 → 12 → 4 under continuous traffic: nothing lost, nothing twice, the Gateway never ended",
    () =>
      Effect.gen(function*() {
        const sim = yield* GatewaySimulator
        const started = Date.now()
        const fiber = yield* Effect.forkChild(SoakRun.run({
          guilds,
          durationMs: 180_000,
          faultEveryMs: 2500,
          rate: 20,
          reshardEveryMs: 40_000,
          tickMs: 100,
          drainMs: 60_000
        }))
        const report: SoakReport = yield* driveUntilDone(fiber, 600_000)
        const realMs = Date.now() - started

        // The verdict: nothing lost, nothing twice, no unhandled error, the Gateway never ended.
        expect(problems(report)).toEqual([])
        expect(report.errors).toEqual([])
        expect(report.gatewayEnded).toBe(false)
        expect(report.drained).toBe(true)
        const { events } = report
        expect(events.sent).toBeGreaterThan(3000)
        expect(events.missing).toBe(0)
        expect(events.duplicates).toBe(0)
        expect(events.unexpected).toBe(0)
        expect(events.delivered + events.lostWithDestroyedSession + events.notSent).toBe(events.sent)
        // Expected losses stay rare: faults hit one shard at a time, and a connected session sends at once.
        expect(events.lostWithDestroyedSession + events.notSent).toBeLessThan(events.sent / 20)

        // Every fault kind at least once, and the simulator saw each (its own recordings).
        for (const kind of FaultKinds) expect(report.faults.get(kind) ?? 0, kind).toBeGreaterThanOrEqual(1)
        const serverCloses = new Set((yield* sim.connections).filter((c) => c.closedBy === "server").map((c) => c.closeCode))
        for (const kind of FaultKinds) {
          if (kind.startsWith("close ")) expect(serverCloses.has(Number(kind.slice(6))), kind).toBe(true)
        }
        const server = yield* sim.serverFrames()
        expect(server.some((f) => f.op === 7)).toBe(true)
        expect(server.some((f) => f.op === 9 && f.d === true)).toBe(true)
        expect(server.some((f) => f.op === 9 && f.d === false)).toBe(true)
        expect(server.some((f) => f.op === 1)).toBe(true)
        expect(server.some((f) => f.op === 42)).toBe(true)
        expect(server.some((f) => f.raw !== undefined && f.op === null)).toBe(true)
        expect(server.some((f) => f.t === "SOAK_UNKNOWN_EVENT")).toBe(true)
        expect((yield* sim.connections).some((c) => c.closeCode === 1006 && c.closedBy === "transport")).toBe(true)
        // A zombie was detected by the client: it closed with 4000 itself.
        expect((yield* sim.connections).some((c) => c.closeCode === 4000 && c.closedBy === "client")).toBe(true)

        // Resumable faults made shards RESUME; session-ending ones made them IDENTIFY beyond the sets' starts.
        const starts = Shards + report.reshards.reduce((n, r) => n + r.to, 0)
        expect(report.wire.resumes).toBeGreaterThanOrEqual(report.faults.get("drop")!)
        expect(report.wire.identifies).toBeGreaterThan(starts)
        expect(report.wire.reconnects).toBe(report.wire.connections - starts)

        // At least two reshards, all successful, along the plan; the Gateway ends on the last count.
        expect(report.reshards.length).toBeGreaterThanOrEqual(2)
        expect(report.reshards.map((r) => r.error)).toEqual(report.reshards.map(() => null))
        expect(report.reshards.every((r) => r.switchedAtMs !== null && r.switchedAtMs > r.startedAtMs)).toBe(true)
        expect(report.reshards.map((r) => r.to)).toEqual(report.reshards.map((_, i) => planned(Shards, i)))
        expect(report.finalShards).toBe(report.reshards.at(-1)!.to)
        // Guild routing the ledger assumes matches the simulator's (PROTOCOL.md §4).
        expect(shardOf(guilds, 5, 12)).toBe(Number((BigInt(guilds.ids[5]!) >> 22n) % 12n))

        expect(realMs).toBeLessThan(25_000)
      }).pipe(
        Random.withSeed(20_251_121),
        Effect.provide(SoakEnvironment.inProcess({
          shards: Shards,
          guildIds: guilds.ids,
          maxConcurrency: Shards,
          heartbeatIntervalMs: 1500,
          recordFrames: true,
          dispatchLatencyMs: { 4: 20, 8: 40, 12: 80 }
        }))
      ),
    { timeout: 60_000 }
  )

  it.effect(
    "regression: back-to-back reshards 16 → 32 → 16 → 48 with faults every 3 s: a reshard's late copies are still deduplicated when the next one starts",
    () =>
      // Found by `npm run soak`: the next reshard replaced the previous handoff before its second window ended,
      // and a new shard's RESUME replay delivered 23 events again (this seed, before the fix).
      Effect.gen(function*() {
        const many = makeGuilds(192)
        const fiber = yield* Effect.forkChild(SoakRun.run({
          guilds: many,
          durationMs: 120_000,
          faultEveryMs: 3000,
          rate: 60,
          reshardEveryMs: 15_000,
          tickMs: 100,
          drainMs: 60_000
        }))
        const report: SoakReport = yield* driveUntilDone(fiber, 600_000)
        expect(report.events.duplicates).toBe(0)
        expect(report.events.missing).toBe(0)
        expect(report.reshards.length).toBeGreaterThanOrEqual(4)
        expect(report.reshards.every((r) => r.error === null)).toBe(true)
      }).pipe(
        Random.withSeed(4),
        Effect.provide(SoakEnvironment.inProcess({
          shards: 16,
          guildIds: makeGuilds(192).ids,
          maxConcurrency: 16,
          heartbeatIntervalMs: 5000,
          recordFrames: false
        }))
      ),
    { timeout: 120_000 }
  )
})

describe("soak reshards", () => {
  it.effect("a reshard that outlasts --reshard-every delays the next one, and none starts after the deadline", () =>
    Effect.gen(function*() {
      let count = 4
      const starts: Array<number> = []
      // a Gateway whose reshards take 40 s; only what SoakReshards uses
      const gateway = {
        layout: Effect.sync(() => ({ count })),
        reshard: (to: number) =>
          Effect.gen(function*() {
            starts.push(yield* Clock.currentTimeMillis)
            yield* Effect.sleep("40 seconds")
            count = to
          })
      } as unknown as Parameters<typeof SoakReshards.make>[0]["gateway"]
      const simulator = { setRecommendedShards: () => Effect.void } as unknown as Parameters<typeof SoakReshards.make>[0]["simulator"]
      const reshards = SoakReshards.make({ simulator, gateway, initialCount: 4 })
      const fiber = yield* Effect.forkChild(reshards.run({ everyMs: 15_000, untilMs: 90_000 }))
      yield* TestClock.adjust("10 minutes")
      yield* Fiber.join(fiber)
      // at 15 s (ends 55 s), at 55 s (ends 95 s): the deadline has passed, no third
      expect(starts).toEqual([15_000, 55_000])
      expect(reshards.outcomes().map((o) => [o.from, o.to])).toEqual([[4, planned(4, 0)], [planned(4, 0), planned(4, 1)]])
    }))
})
