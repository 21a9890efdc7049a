/**
 * The soak's report: what was sent and delivered, what the wire saw, which faults and reshards happened,
 * the heap at the start and the end, and the verdict (issue 5 "Soak": nothing lost, nothing twice, no
 * unhandled error; the Gateway never ended).
 *
 * `problems` lists every reason the soak fails — missing or duplicated events, deliveries of unknown ids,
 * unhandled errors, a failed reshard, a Gateway that ended — so the CLI exits non-zero exactly when it is
 * non-empty. Out-of-order deliveries, expected losses and heap growth are reported, not judged.
 */
import type { FaultKind } from "./SoakFaults.ts"
import type { LedgerSettlement } from "./SoakLedger.ts"
import type { ReplayBuffers } from "../testing/SimulatorServer.ts"
import type { WireStats } from "./SoakWire.ts"

/** One reshard, its times relative to the soak's start. */
export interface ReshardLine {
  readonly from: number
  readonly to: number
  readonly startedAtMs: number
  readonly durationMs: number
  /** When subscribers saw GATEWAY_RESHARDED (the switch); the dedup window runs from there. */
  readonly switchedAtMs: number | null
  readonly error: string | null
}

/**
 * The heap (bytes, after a GC when available) with the shard count running at that moment, and what the
 * simulator — in the same process — keeps for RESUME replay then: part of `bytes`, but not the runtime's.
 */
export interface HeapSample {
  readonly bytes: number
  readonly shards: number
  readonly simulatorReplay: ReplayBuffers
}

export interface SoakReport {
  /** Virtual or real ms from the Gateway's first READY to the end of the drain. */
  readonly elapsedMs: number
  readonly initialShards: number
  readonly finalShards: number
  readonly events: LedgerSettlement
  readonly wire: WireStats
  readonly faults: ReadonlyMap<FaultKind, number>
  /** Fault rounds with no connected shard to hit. */
  readonly faultsSkipped: number
  readonly reshards: ReadonlyArray<ReshardLine>
  readonly heapStart: HeapSample | null
  readonly heapEnd: HeapSample | null
  readonly warnings: number
  /** Unhandled errors: Error logs of the runtime, soak fibers that failed, a subscriber stream that ended. */
  readonly errors: ReadonlyArray<string>
  /** The Gateway ended (fatal close or shutdown) before the soak was over. */
  readonly gatewayEnded: boolean
  /** The drain ended with events still owed by live sessions. */
  readonly drained: boolean
}

/** Why the soak failed; empty when it passed. */
export const problems = (report: SoakReport): ReadonlyArray<string> => {
  const out: Array<string> = []
  const { events } = report
  if (events.missing > 0) out.push(`${events.missing} event(s) missing`)
  if (events.duplicates > 0) out.push(`${events.duplicates} duplicate deliveries`)
  if (events.unexpected > 0) out.push(`${events.unexpected} deliveries of events that were never sent`)
  if (report.errors.length > 0) out.push(`${report.errors.length} unhandled error(s)`)
  const failed = report.reshards.filter((r) => r.error !== null)
  if (failed.length > 0) out.push(`${failed.length} reshard(s) failed`)
  if (report.gatewayEnded) out.push("the Gateway ended during the soak")
  if (events.sent === 0) out.push("no event was sent")
  return out
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`

/** The report as text lines (the CLI prints them). */
export const format = (report: SoakReport): ReadonlyArray<string> => {
  const { events, wire } = report
  const lines: Array<string> = []
  lines.push(`soak report — ${seconds(report.elapsedMs)}, ${report.initialShards} → ${report.finalShards} shards`)
  lines.push(`  events sent                 ${events.sent}`)
  lines.push(`    into no session (a shard between sessions; never sent)  ${events.notSent}`)
  lines.push(`  events delivered            ${events.delivered}`)
  lines.push(`  duplicates                  ${events.duplicates}`)
  lines.push(`  missing                     ${events.missing}`)
  lines.push(`  lost with a destroyed session (expected)  ${events.lostWithDestroyedSession}`)
  lines.push(`  out of order within a guild (informational)  ${events.outOfOrder}`)
  if (events.unexpected > 0) lines.push(`  deliveries never sent       ${events.unexpected}`)
  lines.push(`  connections ${wire.connections} · reconnects ${wire.reconnects} · resumes ${wire.resumes} · identifies ${wire.identifies}`)
  const closes = [...wire.closes].sort((a, b) => b[1] - a[1]).map(([key, n]) => `${key} ×${n}`)
  lines.push(`  closes: ${closes.length === 0 ? "none" : closes.join(", ")}`)
  const injected = [...report.faults].reduce((n, [, c]) => n + c, 0)
  lines.push(`  faults injected ${injected}${report.faultsSkipped > 0 ? ` (${report.faultsSkipped} rounds skipped: no connected shard)` : ""}:`)
  lines.push(`    ${[...report.faults].map(([kind, n]) => `${kind} ×${n}`).join(", ")}`)
  lines.push(`  reshards ${report.reshards.length}:${report.reshards.length === 0 ? " none" : ""}`)
  for (const r of report.reshards) {
    const switched = r.switchedAtMs === null ? "" : `, switched at ${seconds(r.switchedAtMs)}`
    lines.push(
      `    at ${seconds(r.startedAtMs)}: ${r.from} → ${r.to} in ${seconds(r.durationMs)}${switched}` +
        (r.error === null ? "" : ` FAILED: ${r.error}`)
    )
  }
  if (report.heapStart !== null && report.heapEnd !== null) {
    const delta = report.heapEnd.bytes - report.heapStart.bytes
    lines.push(
      `  heap at start ${mb(report.heapStart.bytes)} (${report.heapStart.shards} shards) · at end ${mb(report.heapEnd.bytes)} ` +
        `(${report.heapEnd.shards} shards) · ${delta >= 0 ? "+" : "−"}${mb(Math.abs(delta))}`
    )
    const replay = (r: ReplayBuffers) => `${r.dispatches} dispatches (${mb(r.bytes)} of frame text) in ${r.sessions} sessions`
    lines.push(
      `    simulator replay buffers in that heap: at start ${replay(report.heapStart.simulatorReplay)} · ` +
        `at end ${replay(report.heapEnd.simulatorReplay)}`
    )
  }
  lines.push(`  runtime warnings ${report.warnings} · unhandled errors ${report.errors.length}`)
  for (const error of report.errors.slice(0, 10)) lines.push(`    ${error}`)
  if (!report.drained) lines.push("  the drain timed out with events still owed by live sessions")
  for (const d of events.duplicateSamples) {
    lines.push(`    duplicate #${d.id} (guild ${d.guild}) delivered again by shard ${d.shard} at ${seconds(d.at)}`)
  }
  for (const d of events.outOfOrderSamples) {
    lines.push(`    out of order #${d.id} (guild ${d.guild}) delivered by shard ${d.shard} at ${seconds(d.at)}, after #${d.after}`)
  }
  for (const sample of events.missingSamples) {
    const sessions = sample.sessions.map((s) => `${s.id} (${s.fate})`).join(", ")
    lines.push(`    missing #${sample.id} (guild ${sample.guild}) went into ${sessions || "no session"}`)
  }
  const failing = problems(report)
  lines.push(failing.length === 0 ? "PASS: nothing lost, nothing twice, no unhandled error" : `FAIL: ${failing.join("; ")}`)
  return lines
}

/** A progress snapshot, every few seconds of the run. */
export interface SoakProgress {
  readonly elapsedMs: number
  readonly shards: number
  /** "16 → 32 starting 20/32", or null outside a reshard. */
  readonly reshard: string | null
  readonly sent: number
  readonly delivered: number
  readonly pending: number
  readonly duplicates: number
  readonly faults: number
  readonly reshards: number
  readonly connections: number
  readonly heapBytes: number | null
}

export const formatProgress = (p: SoakProgress): string =>
  `[${seconds(p.elapsedMs).padStart(7)}] shards ${p.shards}${p.reshard === null ? "" : ` (reshard ${p.reshard})`} · ` +
  `sent ${p.sent} · delivered ${p.delivered} · in flight ${p.pending} · duplicates ${p.duplicates} · ` +
  `faults ${p.faults} · reshards ${p.reshards} · connections ${p.connections}` +
  (p.heapBytes === null ? "" : ` · heap ${mb(p.heapBytes)}`)
