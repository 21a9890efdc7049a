/**
 * The `npm start` dashboard (issue 5): its pure pieces — a `GatewayStatus` rendered as the table, the
 * screen and the plain status line; events/s over the last second; keys → actions; flags; the event log
 * derived from status changes; fault injection; the demo traffic and its guilds; the log sink — then the
 * dashboard itself in plain mode against the in-process simulator under TestClock (flags as timers: a
 * fault, a reshard, the duration), and one end-to-end run of `src/main.ts` as a child process in non-TTY
 * mode over real sockets.
 */
import { describe, expect, it } from "@effect/vitest"
import { type Duration, Effect, Fiber, Option, Random, Result, Schema } from "effect"
import { spawn } from "node:child_process"
import * as Dashboard from "../src/dashboard/Dashboard.ts"
import { demoGuilds } from "../src/dashboard/DemoGuilds.ts"
import * as EventLog from "../src/dashboard/EventLog.ts"
import * as EventRates from "../src/dashboard/EventRates.ts"
import * as Faults from "../src/dashboard/Faults.ts"
import { defaultFlags, parseFlags } from "../src/dashboard/Flags.ts"
import { actionForKey, actionsForInput } from "../src/dashboard/Keys.ts"
import * as LogSink from "../src/dashboard/LogSink.ts"
import {
  describeReshard,
  fit,
  formatUptime,
  renderScreen,
  renderStatusLine,
  renderTable,
  visibleLength
} from "../src/dashboard/StatusTable.ts"
import { Gateway } from "../src/Gateway.ts"
import type { GatewayShardStatus, GatewayStatus, ReshardStatus } from "../src/GatewayStatus.ts"
import { shardIdForGuild } from "../src/protocol/Snowflake.ts"
import type { ShardTarget } from "../src/testing/SimulatorSessions.ts"
import { GatewaySimulator } from "../src/testing/GatewaySimulator.ts"
import { advance, environment, makeGateway } from "./gateway/harness.ts"

// ---------------------------------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------------------------------

const shard = (shardId: number, patch: Partial<GatewayShardStatus> = {}): GatewayShardStatus => ({
  shardId,
  shardCount: 4,
  phase: "ready",
  latencyMs: 41,
  sequence: 10,
  sessionId: `session-${shardId}`,
  lastDispatchAt: 1000,
  lastError: null,
  reconnects: 0,
  identifies: 1,
  resumes: 0,
  guilds: 16,
  ready: true,
  stale: false,
  ...patch
})

const status = (
  shards: ReadonlyArray<GatewayShardStatus>,
  patch: Partial<GatewayStatus> = {}
): GatewayStatus => ({
  shardCount: shards[0]?.shardCount ?? 4,
  shards,
  ready: shards.every((s) => s.ready),
  ended: false,
  reshard: null,
  ...patch
})

const reshardOf = (patch: Partial<ReshardStatus> = {}): ReshardStatus => ({
  phase: "starting",
  from: 4,
  to: 8,
  ready: 3,
  total: 8,
  error: null,
  ...patch
})

const mixed = status([
  shard(0),
  shard(1, { phase: "resuming", latencyMs: null, reconnects: 2, resumes: 1, ready: false }),
  shard(2, { latencyMs: 1234, stale: true }),
  shard(3, { phase: "ready", ready: false, guilds: 3 })
])

const rates = new Map([[0, 12.4], [1, 0], [2, 0], [3, 150.6]])

// ---------------------------------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------------------------------

describe("StatusTable: a GatewayStatus as the dashboard table", () => {
  it("renders one row per shard: phase, ping, guilds, events/s, reconnects, resumes", () => {
    expect(renderTable(mixed, rates, { columns: 80, maxRows: 20 })).toEqual([
      "id phase       ping  gld  ev/s rcn rsm",
      " 0 ready       41ms   16    12   0   0",
      " 1 resuming       —   16     0   2   1",
      " 2 stale       1.2s   16     0   0   0",
      " 3 loading     41ms    3   151   0   0"
    ])
  })

  it("puts shards side by side when they do not fit the height, and summarises what fits nowhere", () => {
    const many = status(Array.from({ length: 32 }, (_, id) => shard(id, { shardCount: 32, guilds: 2 })))
    const twoGroups = renderTable(many, new Map(), { columns: 80, maxRows: 16 })
    expect(twoGroups).toHaveLength(17)
    expect(twoGroups[0]).toBe("id phase       ping  gld  ev/s rcn rsm │ id phase       ping  gld  ev/s rcn rsm")
    expect(twoGroups[1]).toBe(" 0 ready       41ms    2     0   0   0 │ 16 ready       41ms    2     0   0   0")
    expect(twoGroups[16]).toBe("15 ready       41ms    2     0   0   0 │ 31 ready       41ms    2     0   0   0")
    // 80 columns hold two groups only: 10 rows × 2 show 19 shards and a summary of the other 13
    const cut = renderTable(many, new Map(), { columns: 80, maxRows: 10 })
    expect(cut).toHaveLength(11)
    expect(cut[10]!.split(" │ ")[1]!.trim()).toBe("… 13 more shards")
  })

  it("the plain status line: totals, phases while not all ready, a running reshard", () => {
    expect(renderStatusLine(status([shard(0), shard(1)]), new Map([[0, 100], [1, 99.6]]), 4_200)).toBe(
      "[00:04] 2/2 shards ready · 32 guilds · 200 ev/s · reconnects 0 · resumes 0 · identifies 2 · ping 41ms"
    )
    expect(renderStatusLine({ ...mixed, reshard: reshardOf() }, rates, 65_000)).toBe(
      "[01:05] 2/4 shards ready · 51 guilds · 163 ev/s · reconnects 2 · resumes 1 · identifies 4 · ping 439ms" +
        " · phases: 1 ready, 1 resuming, 1 stale, 1 loading · reshard 4 → 8: 3/8 ready (starting)"
    )
    // a finished reshard is history, not status
    expect(renderStatusLine({ ...status([shard(0)]), reshard: reshardOf({ phase: "done" }) }, new Map(), 0)).not.toContain(
      "reshard"
    )
  })

  it("describes a reshard by phase", () => {
    expect(describeReshard(reshardOf())).toBe("reshard 4 → 8: 3/8 ready (starting)")
    expect(describeReshard(reshardOf({ phase: "done", ready: 8 }))).toBe("reshard 4 → 8 done: 8 new shards serving")
    expect(describeReshard(reshardOf({ phase: "failed", error: "not ready in time" }))).toBe("reshard 4 → 8 failed: not ready in time")
  })

  it("fit cuts to the visible width; colour codes do not count", () => {
    const colored = "\x1b[32mready\x1b[0m and more"
    expect(visibleLength(colored)).toBe(14)
    expect(fit(colored, 7)).toBe("\x1b[32mready\x1b[0m a\x1b[0m")
    expect(visibleLength(fit(colored, 7))).toBe(7)
    expect(fit("short", 10)).toBe("short")
    expect(formatUptime(3_725_000)).toBe("1:02:05")
  })

  it("the screen: title, table, totals, reshard, newest events, keys", () => {
    const lines = renderScreen(
      {
        title: "simulator 127.0.0.1:1",
        status: { ...mixed, reshard: reshardOf() },
        rates,
        uptimeMs: 12_000,
        log: Array.from({ length: 30 }, (_, i) => ({ atMs: i * 1000, text: `event ${i}` })),
        keys: "keys: q quit"
      },
      { columns: 100, rows: 16 }
    )
    expect(lines).toHaveLength(16)
    expect(lines[0]).toBe("effect-discord-gateway · 4 shards · starting · up 00:12 · simulator 127.0.0.1:1")
    expect(lines.slice(1, 6)).toEqual(renderTable(mixed, rates, { columns: 100, maxRows: 20 }))
    expect(lines[6]).toBe("total 2/4 ready · 51 guilds · 163 ev/s · 2 reconnects · 1 resumes · 4 identifies · ping 439ms")
    expect(lines[7]).toBe("reshard 4 → 8: 3/8 ready (starting)")
    expect(lines[8]).toMatch(/^─ events ─+$/)
    // the newest events that fit, oldest of them first
    expect(lines.slice(9, 15)).toEqual(["00:24 event 24", "00:25 event 25", "00:26 event 26", "00:27 event 27", "00:28 event 28", "00:29 event 29"])
    expect(lines[15]).toBe("keys: q quit")
  })

  const Columns = Schema.Int.check(Schema.isBetween({ minimum: 40, maximum: 200 }))
  const Rows = Schema.Int.check(Schema.isBetween({ minimum: 14, maximum: 60 }))
  const Shards = Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 128 }))
  it.effect.prop(
    "the screen is exactly the terminal's height and no line is wider than it, for any size and shard count",
    { columns: Columns, rows: Rows, shards: Shards, resharding: Schema.Boolean },
    ({ columns, rows, shards, resharding }) =>
      Effect.sync(() => {
        const phases = ["ready", "resuming", "reconnecting", "identifying", "hello"] as const
        const view = status(
          Array.from({ length: shards }, (_, id) => shard(id, { shardCount: shards, phase: phases[id % phases.length]!, reconnects: id })),
          { reshard: resharding ? reshardOf({ from: shards, to: shards * 2, total: shards * 2 }) : null }
        )
        const lines = renderScreen(
          { title: "t", status: view, rates: new Map(), uptimeMs: 0, log: [{ atMs: 0, text: "x".repeat(300) }], keys: "k" },
          { columns, rows },
          true
        )
        return lines.length === rows && lines.every((line) => visibleLength(line) <= columns)
      }),
    { arbitrary: { runs: 200, seed: 5 } }
  )
})

// ---------------------------------------------------------------------------------------------------------------------
// Events per second
// ---------------------------------------------------------------------------------------------------------------------

describe("EventRates: events/s per shard over the last second", () => {
  it("counts dispatches per shard between a sample and the newest one at least a second older", () => {
    const r = EventRates.make()
    expect([...r.sample(0)]).toEqual([]) // nothing yet
    for (let i = 0; i < 100; i++) r.record(0)
    for (let i = 0; i < 30; i++) r.record(5)
    // 100 events in 0.5 s on shard 0: 200/s (the first second measures what has arrived so far)
    expect(r.sample(500)).toEqual(new Map([[0, 200], [5, 60]]))
    for (let i = 0; i < 50; i++) r.record(0)
    // at 1000: the baseline is still the sample at 0 → 150 events over 1 s
    expect(r.sample(1000).get(0)).toBe(150)
    // at 1500: baseline = sample at 500 (newest ≥ 1 s old); shard 0 got 50 since → 50/s; shard 5 none
    expect(r.sample(1500)).toEqual(new Map([[0, 50], [5, 0]]))
    // nothing more: at 2500 the baseline is the sample at 1500 → 0
    expect(EventRates.sum(r.sample(2500))).toBe(0)
    expect(r.total()).toBe(180)
  })

  it("ratesBetween: a shard new in the later sample counts from zero; no time elapsed gives 0", () => {
    const older = { at: 0, totals: new Map([[1, 10]]) }
    const newer = { at: 2000, totals: new Map([[1, 30], [2, 8]]) }
    expect(EventRates.ratesBetween(older, newer)).toEqual(new Map([[1, 10], [2, 4]]))
    expect(EventRates.ratesBetween(newer, newer)).toEqual(new Map([[1, 0], [2, 0]]))
  })
})

// ---------------------------------------------------------------------------------------------------------------------
// Keys and flags
// ---------------------------------------------------------------------------------------------------------------------

describe("Keys: key → action", () => {
  it("maps d z 7 9 c to faults, r to reshard, q and Ctrl-C to quit; case-insensitive; others nothing", () => {
    expect(actionForKey("d")).toEqual({ _tag: "Fault", fault: "drop" })
    expect(actionForKey("z")).toEqual({ _tag: "Fault", fault: "zombie" })
    expect(actionForKey("7")).toEqual({ _tag: "Fault", fault: "reconnect" })
    expect(actionForKey("9")).toEqual({ _tag: "Fault", fault: "invalidate" })
    expect(actionForKey("c")).toEqual({ _tag: "Fault", fault: "close" })
    expect(actionForKey("r")).toEqual({ _tag: "Reshard" })
    expect(actionForKey("q")).toEqual({ _tag: "Quit" })
    expect(actionForKey("\u0003")).toEqual({ _tag: "Quit" })
    expect(actionForKey("D")).toEqual({ _tag: "Fault", fault: "drop" })
    expect(actionForKey("x")).toBeUndefined()
  })

  it("a chunk with several keys gives their actions in order; an escape sequence gives none", () => {
    expect(actionsForInput("dxr")).toEqual([{ _tag: "Fault", fault: "drop" }, { _tag: "Reshard" }])
    expect(actionsForInput("\u001b[A")).toEqual([]) // arrow up: not "A"… nor anything else
    expect(actionsForInput("\u001b[7~")).toEqual([]) // not op 7
  })
})

describe("Flags", () => {
  it("defaults: 16 shards, 64 guilds, 200 events/s, 5 s heartbeat, no timers", () => {
    expect(parseFlags([])).toEqual(Result.succeed(defaultFlags))
    expect(defaultFlags).toMatchObject({ shards: 16, guilds: 64, rate: 200, heartbeatMs: 5000, durationMs: undefined })
  })

  it("reads --name value and --name=value; seconds become milliseconds", () => {
    const parsed = parseFlags(["--duration", "3", "--shards=4", "--fault-every", "2.5", "--reshard-at=10", "--rate", "0", "--plain"])
    expect(parsed).toEqual(
      Result.succeed({ ...defaultFlags, durationMs: 3000, shards: 4, faultEveryMs: 2500, reshardAtMs: 10_000, rate: 0, plain: true })
    )
  })

  it("refuses what cannot work, naming the flag", () => {
    const failure = (argv: ReadonlyArray<string>) => {
      const r = parseFlags(argv)
      return Result.isFailure(r) ? r.failure : "parsed"
    }
    expect(failure(["--shards", "0"])).toMatch(/^--shards must be a whole number ≥ 1/)
    expect(failure(["--shards", "2.5"])).toMatch(/^--shards/)
    expect(failure(["--duration"])).toBe("--duration needs a value")
    expect(failure(["--duration", "--plain"])).toBe("--duration needs a value")
    expect(failure(["--duration", "0"])).toMatch(/^--duration must be a number of seconds above 0/)
    expect(failure(["--fault-every=soon"])).toMatch(/^--fault-every/)
    expect(failure(["--speed", "1"])).toBe("unknown flag --speed: see --help")
    expect(failure(["--plain=yes"])).toBe("--plain takes no value")
    expect(failure(["4"])).toMatch(/^unexpected argument "4"/)
    expect(parseFlags(["-h"])).toEqual(Result.succeed({ ...defaultFlags, help: true }))
  })
})

// ---------------------------------------------------------------------------------------------------------------------
// The event log
// ---------------------------------------------------------------------------------------------------------------------

describe("EventLog: status changes in words", () => {
  const base = status([shard(0), shard(1), shard(2)])
  const withShard = (id: number, patch: Partial<GatewayShardStatus>, extra: Partial<GatewayStatus> = {}) =>
    status(base.shards.map((s) => (s.shardId === id ? { ...s, ...patch } : s)), extra)

  it("item 23: a drop then a resume reads 'disconnected… reconnecting', then 'resumed'", () => {
    const down = withShard(1, { phase: "reconnecting", lastError: "closed with 1006", reconnects: 1 })
    expect(EventLog.statusEvents(base, down)).toEqual(["shard 1 disconnected (closed with 1006); reconnecting"])
    const resuming = withShard(1, { phase: "resuming", reconnects: 1, resumes: 1 })
    expect(EventLog.statusEvents(down, resuming)).toEqual([])
    expect(EventLog.statusEvents(resuming, withShard(1, { reconnects: 1, resumes: 1 }))).toEqual(["shard 1 resumed"])
  })

  it("a reconnect that came and went between two observations is still seen, through the counters", () => {
    expect(EventLog.statusEvents(base, withShard(2, { reconnects: 1, resumes: 1 }))).toEqual(["shard 2 resumed"])
    expect(EventLog.statusEvents(base, withShard(2, { reconnects: 1, identifies: 2 }))).toEqual([
      "shard 2 identified again: new session"
    ])
  })

  it("item 25: after op 9 not resumable, the new IDENTIFY reads 'identified again'; first start-up is quiet", () => {
    const identifying = withShard(0, { phase: "identifying", ready: false })
    expect(EventLog.statusEvents(identifying, withShard(0, { identifies: 2 }))).toEqual([
      "shard 0 identified again: new session",
      "all 3 shards ready (48 guilds)"
    ])
    const starting = status([shard(0, { phase: "identifying", identifies: 1, ready: false })])
    expect(EventLog.statusEvents(starting, status([shard(0, { ready: false })]))).toEqual([])
  })

  it("stale, fatal and stopped shards; the gateway becoming ready and ending", () => {
    expect(EventLog.statusEvents(base, withShard(0, { stale: true }))).toEqual(["shard 0 stale: no dispatch while its guilds are active"])
    expect(EventLog.statusEvents(base, withShard(0, { phase: "fatal", lastError: "4014 disallowed intents" }))).toEqual([
      "shard 0 failed: 4014 disallowed intents"
    ])
    const notReady = withShard(0, { ready: false })
    expect(EventLog.statusEvents(notReady, base)).toEqual(["all 3 shards ready (48 guilds)"])
    expect(EventLog.statusEvents(undefined, base)).toEqual(["all 3 shards ready (48 guilds)"])
    expect(EventLog.statusEvents(base, { ...base, ended: true })).toEqual(["gateway ended"])
  })

  it("a reshard: started, each progress step, done (or failed) — once each", () => {
    const r0 = { ...base, reshard: reshardOf({ ready: 0 }) }
    const r5 = { ...base, reshard: reshardOf({ ready: 5 }) }
    const switching = { ...base, reshard: reshardOf({ ready: 8, phase: "switching" }) }
    const done = status(Array.from({ length: 8 }, (_, id) => shard(id, { shardCount: 8 })), { reshard: reshardOf({ ready: 8, phase: "done" }) })
    expect(EventLog.statusEvents(base, r0)).toEqual(["reshard 4 → 8 started", "reshard 4 → 8: 0/8 ready (starting)"])
    expect(EventLog.statusEvents(r0, r0)).toEqual([])
    expect(EventLog.statusEvents(r0, r5)).toEqual(["reshard 4 → 8: 5/8 ready (starting)"])
    expect(EventLog.statusEvents(r5, switching)).toEqual(["reshard 4 → 8: 8/8 ready (switching)"])
    expect(EventLog.statusEvents(switching, done)).toEqual(["reshard 4 → 8 done: 8 new shards serving"])
    expect(EventLog.statusEvents(done, done)).toEqual([])
    const failed = { ...base, reshard: reshardOf({ phase: "failed", error: "budget" }) }
    expect(EventLog.statusEvents(r5, failed)).toEqual(["reshard 4 → 8 failed: budget"])
    // the next reshard after a finished one is a new start
    expect(EventLog.statusEvents(failed, r0)).toEqual(["reshard 4 → 8 started", "reshard 4 → 8: 0/8 ready (starting)"])
  })

  it("keeps the last `capacity` lines and hands each one to onLine", () => {
    const seen: Array<string> = []
    const log = EventLog.make(3, (line) => seen.push(line.text))
    for (let i = 0; i < 5; i++) log.push(i * 1000, `line ${i}`)
    expect(log.lines()).toEqual([{ atMs: 2000, text: "line 2" }, { atMs: 3000, text: "line 3" }, { atMs: 4000, text: "line 4" }])
    expect(seen).toHaveLength(5)
  })
})

// ---------------------------------------------------------------------------------------------------------------------
// Fault injection
// ---------------------------------------------------------------------------------------------------------------------

describe("Faults", () => {
  const recording = () => {
    const calls: Array<string> = []
    const rec = (name: string) => (target: ShardTarget, ...args: ReadonlyArray<unknown>) =>
      Effect.sync(() => {
        calls.push(`${name} ${JSON.stringify(target)}${args.map((a) => ` ${JSON.stringify(a)}`).join("")}`)
      })
    const controls: Faults.FaultControls = {
      drop: rec("drop"),
      withholdAcks: rec("withholdAcks"),
      reconnect: rec("reconnect"),
      invalidateSession: rec("invalidateSession"),
      close: rec("close"),
      requestHeartbeat: rec("requestHeartbeat"),
      sendRaw: rec("sendRaw")
    }
    return { calls, controls }
  }

  it.effect("each fault drives the matching simulator control on the exact [id, count] tuple", () =>
    Effect.gen(function*() {
      const { calls, controls } = recording()
      for (const kind of Faults.faultKinds) yield* Faults.inject(controls, kind, [3, 16])
      expect(calls).toEqual([
        "drop [3,16]",
        "withholdAcks [3,16] true",
        "reconnect [3,16]",
        "invalidateSession [3,16] false",
        "close [3,16] 4000 \"fault: close 4000\""
      ])
      expect(Faults.describeFault("invalidate", 3)).toBe("fault: op 9 (not resumable) to shard 3 → expect a new IDENTIFY in 1–5 s")
    }))

  it.effect("picks only ready shards (at random), none when no shard is ready", () =>
    Effect.gen(function*() {
      const view = status([
        shard(0, { phase: "resuming" }),
        shard(1),
        shard(2, { phase: "reconnecting" }),
        shard(3)
      ])
      const picks = new Set<number>()
      for (let i = 0; i < 40; i++) {
        const picked = yield* Faults.pickShard(view)
        picks.add(Option.getOrThrow(picked).shardId)
      }
      expect([...picks].sort()).toEqual([1, 3])
      expect(yield* Faults.pickShard(status([shard(0, { phase: "hello" })]))).toEqual(Option.none())
      const kinds = new Set<string>()
      for (let i = 0; i < 60; i++) kinds.add(yield* Faults.randomFault)
      expect(kinds.size).toBe(Faults.faultKinds.length)
    }).pipe(Random.withSeed(11)))
})

// ---------------------------------------------------------------------------------------------------------------------
// Demo guilds
// ---------------------------------------------------------------------------------------------------------------------

describe("DemoGuilds", () => {
  it("item 52: demo guild k routes to shard k % n (BigInt routing) for n = 4, 16, 32, 64", () => {
    const guilds = demoGuilds(64)
    expect(new Set(guilds).size).toBe(64)
    for (const n of [4, 16, 32, 64]) {
      expect(guilds.map((g) => shardIdForGuild(g, n))).toEqual(guilds.map((_, k) => k % n))
    }
  })
})

// ---------------------------------------------------------------------------------------------------------------------
// Log sink
// ---------------------------------------------------------------------------------------------------------------------

describe("LogSink: the runtime's logs into the dashboard", () => {
  it.effect("Info and up become one line with the shard annotation; it goes to the attached log, else the fallback", () =>
    Effect.gen(function*() {
      const fallback: Array<string> = []
      const attached: Array<string> = []
      const sink = LogSink.make((line) => fallback.push(line))
      const program = Effect.gen(function*() {
        yield* Effect.logInfo("op 7 Reconnect").pipe(Effect.annotateLogs({ shard: 3 }))
        const detach = sink.attach((line) => attached.push(line))
        yield* Effect.logWarning("no heartbeat ACK", "second part\nand a second line").pipe(Effect.annotateLogs({ shard: 5 }))
        yield* Effect.logDebug("too chatty")
        detach()
        yield* Effect.logError("after")
      })
      yield* program.pipe(Effect.provide(sink.layer))
      expect(fallback).toEqual(["[shard 3] op 7 Reconnect", "error: after"])
      expect(attached).toEqual(["[shard 5] warning: no heartbeat ACK second part"])
    }))
})

// ---------------------------------------------------------------------------------------------------------------------
// The dashboard, plain mode, in-process simulator under TestClock
// ---------------------------------------------------------------------------------------------------------------------

describe("Dashboard (plain mode, in-process simulator, TestClock)", () => {
  it.effect("status lines on schedule; --fault-every injects into a ready shard and it recovers; --reshard-at doubles the count; --duration ends it", () =>
    Effect.gen(function*() {
      const sim = yield* GatewaySimulator
      const gateway = yield* makeGateway()
      const out: Array<string> = []
      const sink = LogSink.make((line) => out.push(`stderr ${line}`))
      const run = Dashboard.run({
        title: "test",
        interactive: false,
        keys: "",
        statusEveryMs: 2000,
        durationMs: 60_000,
        faultEveryMs: 7_000,
        reshardAtMs: 30_000,
        faults: sim,
        beforeReshard: (count) => sim.setRecommendedShards(count),
        logSink: sink,
        write: (text) => out.push(text)
      }).pipe(Effect.provideService(Gateway, gateway), Effect.provide(sink.layer), Random.withSeed(3))
      const fiber = yield* Effect.forkChild(run)
      for (let t = 0; t < 60_000; t += 500) yield* advance(500)
      yield* Fiber.join(fiber)

      const text = out.join("")
      const statusLines = text.split("\n").filter((l) => /^\[\d\d:\d\d\] \d+\/\d+ shards ready/.test(l))
      expect(statusLines.length).toBeGreaterThanOrEqual(29) // every 2 s for 60 s, plus the final one
      expect(statusLines[1]).toMatch(/^\[00:04\] 2\/2 shards ready · 32 guilds · \d+ ev\/s/)
      // faults: one every 7 s, each on a ready shard, each followed by that shard's recovery
      const faults = [...text.matchAll(/fault: .*shard (\d+)/g)]
      expect(faults.length).toBeGreaterThanOrEqual(4)
      expect(text).toMatch(/shard \d+ (resumed|identified again: new session)/)
      // the reshard at 30 s: 2 → 4, completed, and the final line shows 4 shards, all ready
      expect(text).toContain("[00:30] reshard 2 → 4 requested")
      expect(text).toContain("reshard 2 → 4 done: 4 new shards serving")
      expect(statusLines[statusLines.length - 1]).toMatch(/^\[01:00\] 4\/4 shards ready · 32 guilds · .* · stopped$/)
      expect(text).toContain("01:00 elapsed: stopping")
      expect(text).not.toContain("\x1b[") // no ANSI in plain mode
      expect(text).not.toContain("NEVER-SHOWN") // the token is never printed
    }).pipe(Effect.provide(environment({ recommendedShards: 2, maxConcurrency: 2 }))), 60_000)
})

// ---------------------------------------------------------------------------------------------------------------------
// End to end: `node src/main.ts` as a child process, not a TTY
// ---------------------------------------------------------------------------------------------------------------------

interface ChildResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs `node src/main.ts …args` (project Node, stdin not a TTY), bounded by `timeout`; killed if interrupted. */
const runMain = (args: ReadonlyArray<string>, timeout: Duration.Input) =>
  Effect.callback<ChildResult>((resume) => {
    const env = { ...process.env }
    delete env.DISCORD_TOKEN
    const child = spawn("node_modules/.bin/node", ["src/main.ts", ...args], {
      cwd: new URL("..", import.meta.url).pathname,
      env,
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    child.on("close", (code) => resume(Effect.succeed({ code, stdout, stderr })))
    return Effect.sync(() => {
      child.kill("SIGKILL")
    })
  }).pipe(Effect.timeout(timeout))

describe("npm start, non-TTY (end to end over real sockets)", () => {
  it.live("--duration 3 --shards 4: exits 0 after printing a status line with all 4 shards ready", () =>
    Effect.gen(function*() {
      const result = yield* runMain(["--duration", "3", "--shards", "4", "--status-every", "1"], "40 seconds")
      expect(result.code, result.stderr).toBe(0)
      expect(result.stdout).toMatch(/^\[\d\d:\d\d\] 4\/4 shards ready · 64 guilds · \d+ ev\/s · reconnects 0 · resumes 0 · identifies 4/m)
      expect(result.stdout).toContain("all 4 shards ready (64 guilds)")
      // The embedded simulator's own traffic (SimulatorTraffic, 200 events/s by default) reaches the shards.
      expect(result.stdout).toMatch(/ · [1-9]\d* ev\/s · /)
      expect(result.stdout).toMatch(/00:03 elapsed: stopping\n.* · stopped\n$/)
      expect(result.stdout).not.toContain("\x1b[")
    }), 60_000)

  it.live("a bad flag: exits 2 with the problem and the usage, starting nothing", () =>
    Effect.gen(function*() {
      const result = yield* runMain(["--shards", "0"], "20 seconds")
      expect(result.code).toBe(2)
      expect(result.stderr).toContain("npm start: --shards must be a whole number ≥ 1")
      expect(result.stderr).toContain("usage: npm start -- [flags]")
      expect(result.stdout).toBe("")
    }), 30_000)
})
