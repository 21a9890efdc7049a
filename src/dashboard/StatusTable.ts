/**
 * Rendering the dashboard: a `GatewayStatus` (plus events/s per shard and the event log) as the lines of
 * the live terminal screen, or as one plain status line for logs and pipes. Pure: the caller decides where
 * the lines go (Terminal.ts redraws them; the plain mode prints `renderStatusLine`).
 *
 * The screen: a title, the shard table (per shard its phase, heartbeat latency, guilds, events/s,
 * reconnects and resumes — in as many side-by-side column groups as the width allows when the shards do
 * not fit the height), the totals, the reshard in progress if any (PROTOCOL.md §4), the last events, and
 * the keys. Every line is cut to the terminal width; colours (ANSI SGR) are optional and never count
 * towards the width.
 *
 * The input types are structural subsets of `GatewayStatus`, so a status from `gateway.status` is passed
 * as is, with or without the `reshard` field.
 */

/** What the table shows of one shard (a subset of `GatewayShardStatus`). */
export interface ShardView {
  readonly shardId: number
  readonly shardCount: number
  readonly phase: string
  readonly latencyMs: number | null
  readonly guilds: number
  readonly reconnects: number
  readonly resumes: number
  readonly identifies: number
  readonly ready: boolean
  readonly stale: boolean
  readonly lastError: string | null
}

/**
 * A reshard in progress or the last one: old and new shard counts, new shards ready of the new set's size,
 * its phase ("starting", "switching", "draining", then "done" or "failed" with an error).
 */
export interface ReshardView {
  readonly phase: string
  readonly from: number
  readonly to: number
  readonly ready: number
  readonly total: number
  readonly error?: string | null | undefined
}

/** What the dashboard reads of a `GatewayStatus`. */
export interface StatusView {
  readonly shardCount: number
  readonly shards: ReadonlyArray<ShardView>
  readonly ready: boolean
  readonly ended: boolean
  readonly reshard?: ReshardView | null | undefined
}

/** One line of the event log, stamped with the time since start. */
export interface LogLine {
  readonly atMs: number
  readonly text: string
}

export interface ScreenInput {
  /** What runs, e.g. "simulator 127.0.0.1:40123" or "discord.com". */
  readonly title: string
  readonly status: StatusView
  /** Events/s by shard id. */
  readonly rates: ReadonlyMap<number, number>
  readonly uptimeMs: number
  /** The event log, oldest first (only the newest lines that fit are shown). */
  readonly log: ReadonlyArray<LogLine>
  /** The key help line. */
  readonly keys: string
}

export interface ScreenSize {
  readonly columns: number
  readonly rows: number
}

export interface Totals {
  readonly shards: number
  readonly ready: number
  readonly guilds: number
  readonly eventsPerSecond: number
  readonly reconnects: number
  readonly resumes: number
  readonly identifies: number
  /** Mean heartbeat latency of the shards that have one; null if none has. */
  readonly latencyMs: number | null
}

// ---------------------------------------------------------------------------------------------------------------------
// Cells
// ---------------------------------------------------------------------------------------------------------------------

const shortPhases: Readonly<Record<string, string>> = {
  connecting: "connect",
  identifying: "identify",
  reconnecting: "reconnect"
}

/** The phase column: `ready` once the shard's guilds have loaded, `loading` between READY and then, `stale` when the watchdog says so. */
export const phaseLabel = (shard: ShardView): string => {
  if (shard.phase === "ready") return shard.stale ? "stale" : shard.ready ? "ready" : "loading"
  return shortPhases[shard.phase] ?? shard.phase
}

export const formatLatency = (ms: number | null): string =>
  ms === null ? "—" : ms < 1000 ? `${Math.round(ms)}ms` : `${(ms / 1000).toFixed(1)}s`

export const formatRate = (perSecond: number): string =>
  perSecond >= 100_000 ? `${Math.round(perSecond / 1000)}k` : String(Math.round(perSecond))

/** `mm:ss`, or `h:mm:ss` from one hour. */
export const formatUptime = (ms: number): string => {
  const seconds = Math.max(0, Math.floor(ms / 1000))
  const h = Math.floor(seconds / 3600)
  const mm = String(Math.floor((seconds % 3600) / 60)).padStart(2, "0")
  const ss = String(seconds % 60).padStart(2, "0")
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`
}

/** Whether the reshard is still running (not done, not failed). */
export const reshardActive = (reshard: ReshardView | null | undefined): reshard is ReshardView =>
  reshard !== undefined && reshard !== null && reshard.phase !== "done" && reshard.phase !== "failed"

/** "reshard 16 → 32: 12/32 ready (starting)", "reshard 16 → 32 done", "reshard 16 → 32 failed: …". */
export const describeReshard = (reshard: ReshardView): string => {
  const head = `reshard ${reshard.from} → ${reshard.to}`
  switch (reshard.phase) {
    case "done":
      return `${head} done: ${reshard.total} new shards serving`
    case "failed":
      return `${head} failed${reshard.error === undefined || reshard.error === null ? "" : `: ${reshard.error}`}`
    default:
      return `${head}: ${reshard.ready}/${reshard.total} ready (${reshard.phase})`
  }
}

export const totals = (status: StatusView, rates: ReadonlyMap<number, number>): Totals => {
  let ready = 0
  let guilds = 0
  let reconnects = 0
  let resumes = 0
  let identifies = 0
  let latencySum = 0
  let latencies = 0
  let eventsPerSecond = 0
  for (const shard of status.shards) {
    if (shard.ready) ready++
    guilds += shard.guilds
    reconnects += shard.reconnects
    resumes += shard.resumes
    identifies += shard.identifies
    if (shard.latencyMs !== null) {
      latencySum += shard.latencyMs
      latencies++
    }
    eventsPerSecond += rates.get(shard.shardId) ?? 0
  }
  return {
    shards: status.shards.length,
    ready,
    guilds,
    eventsPerSecond,
    reconnects,
    resumes,
    identifies,
    latencyMs: latencies === 0 ? null : latencySum / latencies
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Colour and width
// ---------------------------------------------------------------------------------------------------------------------

const paint = (color: boolean, code: string, text: string): string => (color ? `\x1b[${code}m${text}\x1b[0m` : text)

const phaseColor = (label: string): string => {
  switch (label) {
    case "ready":
      return "32"
    case "loading":
      return "36"
    case "stale":
    case "fatal":
      return "31"
    case "stopped":
    case "idle":
      return "2"
    default:
      return "33"
  }
}

/** Cuts `line` to `columns` visible characters (ANSI sequences kept, not counted). */
export const fit = (line: string, columns: number): string => {
  let visible = 0
  let out = ""
  let colored = false
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!
    if (ch === "\x1b") {
      const end = line.indexOf("m", i)
      if (end !== -1) {
        out += line.slice(i, end + 1)
        colored = true
        i = end
        continue
      }
    }
    if (visible >= columns) return colored ? `${out}\x1b[0m` : out
    out += ch
    visible++
  }
  return out
}

/** The visible length of `line` (without ANSI sequences). */
export const visibleLength = (line: string): number => line.replace(/\x1b\[[0-9;]*m/g, "").length

// ---------------------------------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------------------------------

const PhaseWidth = 9
const Separator = " │ "

const idWidth = (shards: ReadonlyArray<ShardView>): number => {
  let max = 0
  for (const shard of shards) if (shard.shardId > max) max = shard.shardId
  return Math.max(2, String(max).length)
}

/** Visible width of one table cell for this id width. */
const rowWidth = (idW: number): number => idW + 1 + PhaseWidth + 1 + 6 + 1 + 4 + 1 + 5 + 1 + 3 + 1 + 3

const headerCell = (idW: number): string =>
  `${"id".padStart(idW)} ${"phase".padEnd(PhaseWidth)} ${"ping".padStart(6)} ${"gld".padStart(4)} ${"ev/s".padStart(5)} ${"rcn".padStart(3)} ${"rsm".padStart(3)}`

const shardCell = (shard: ShardView, rate: number, idW: number, color: boolean): string => {
  const label = phaseLabel(shard)
  const phase = paint(color, phaseColor(label), label.slice(0, PhaseWidth).padEnd(PhaseWidth))
  const counter = (n: number) => (n > 0 ? paint(color, "33", String(n).padStart(3)) : String(n).padStart(3))
  return `${String(shard.shardId).padStart(idW)} ${phase} ${formatLatency(shard.latencyMs).padStart(6)} ${
    String(shard.guilds).padStart(4)
  } ${formatRate(rate).padStart(5)} ${counter(shard.reconnects)} ${counter(shard.resumes)}`
}

/**
 * The shard table: a header line and the shard rows, in `groups` side-by-side column groups filled top to
 * bottom. At most `maxRows` rows per group; shards that do not fit are summarised on the last row.
 */
export const renderTable = (
  status: StatusView,
  rates: ReadonlyMap<number, number>,
  size: { readonly columns: number; readonly maxRows: number },
  color = false
): ReadonlyArray<string> => {
  const shards = status.shards
  const idW = idWidth(shards)
  const width = rowWidth(idW)
  const maxRows = Math.max(1, size.maxRows)
  const groupsFit = Math.max(1, Math.floor((size.columns + Separator.length) / (width + Separator.length)))
  const groups = Math.max(1, Math.min(groupsFit, Math.ceil(shards.length / maxRows)))
  const rowsPerGroup = Math.max(1, Math.ceil(shards.length / groups))
  const rows = Math.min(rowsPerGroup, maxRows)
  const shown = Math.min(shards.length, rows * groups)
  const hidden = shards.length - shown
  const cells: Array<string> = []
  for (let i = 0; i < shown; i++) {
    const shard = shards[i]!
    cells.push(shardCell(shard, rates.get(shard.shardId) ?? 0, idW, color))
  }
  if (hidden > 0) cells[shown - 1] = `… ${hidden + 1} more shards`.padEnd(width)

  const lines: Array<string> = []
  const header = paint(color, "1", Array.from({ length: Math.min(groups, Math.max(1, Math.ceil(shown / rows))) }, () => headerCell(idW)).join(Separator))
  lines.push(fit(header, size.columns))
  for (let r = 0; r < rows; r++) {
    let line = ""
    for (let g = 0; g < groups; g++) {
      const cell = cells[g * rows + r]
      if (cell === undefined) break
      line += g === 0 ? cell : `${Separator}${cell}`
    }
    lines.push(fit(line, size.columns))
  }
  return lines
}

// ---------------------------------------------------------------------------------------------------------------------
// Lines
// ---------------------------------------------------------------------------------------------------------------------

const phaseSummary = (status: StatusView): string => {
  const counts = new Map<string, number>()
  for (const shard of status.shards) {
    const label = phaseLabel(shard)
    counts.set(label, (counts.get(label) ?? 0) + 1)
  }
  return [...counts].map(([label, n]) => `${n} ${label}`).join(", ")
}

/** The totals as parts: "16/16 ready", "64 guilds", "201 ev/s", "3 reconnects", "2 resumes", "18 identifies", "ping 2ms". */
export const totalsParts = (t: Totals): ReadonlyArray<string> => [
  `${t.ready}/${t.shards} ready`,
  `${t.guilds} guilds`,
  `${formatRate(t.eventsPerSecond)} ev/s`,
  `${t.reconnects} reconnects`,
  `${t.resumes} resumes`,
  `${t.identifies} identifies`,
  `ping ${formatLatency(t.latencyMs)}`
]

/** Joins parts with " · " into as few lines of at most `columns` as possible (a part never splits). */
export const wrapParts = (parts: ReadonlyArray<string>, columns: number, prefix = ""): ReadonlyArray<string> => {
  const lines: Array<string> = []
  let line = prefix
  for (const part of parts) {
    if (line === prefix) line += part
    else if (line.length + 3 + part.length <= columns) line += ` · ${part}`
    else {
      lines.push(line)
      line = `${" ".repeat(prefix.length)}${part}`
    }
  }
  lines.push(line)
  return lines
}

/**
 * One plain line for logs and pipes:
 * "[00:04] 16/16 shards ready · 64 guilds · 199 ev/s · reconnects 0 · resumes 0 · identifies 16 · ping 1ms".
 * Phases are listed while not every shard is ready; a reshard in progress is appended.
 */
export const renderStatusLine = (status: StatusView, rates: ReadonlyMap<number, number>, uptimeMs: number): string => {
  const t = totals(status, rates)
  let line = `[${formatUptime(uptimeMs)}] ${t.ready}/${t.shards} shards ready · ${t.guilds} guilds · ${
    formatRate(t.eventsPerSecond)
  } ev/s · reconnects ${t.reconnects} · resumes ${t.resumes} · identifies ${t.identifies} · ping ${formatLatency(t.latencyMs)}`
  if (t.ready < t.shards) line += ` · phases: ${phaseSummary(status)}`
  if (reshardActive(status.reshard)) line += ` · ${describeReshard(status.reshard)}`
  if (status.ended) line += " · ended"
  return line
}

/** The whole screen, one string per terminal row, each cut to the width. */
export const renderScreen = (input: ScreenInput, size: ScreenSize, color = false): ReadonlyArray<string> => {
  const { status } = input
  const columns = Math.max(20, size.columns)
  const reshard = status.reshard !== undefined && status.reshard !== null ? status.reshard : undefined
  const active = reshardActive(reshard)
  const state = status.ended ? paint(color, "31", "ended") : status.ready ? paint(color, "32", "ready") : paint(color, "33", "starting")
  const title = `${paint(color, "1", "effect-discord-gateway")} · ${status.shardCount} shards · ${state} · up ${formatUptime(input.uptimeMs)} · ${input.title}`
  const totalLines = wrapParts(totalsParts(totals(status, input.rates)), columns, "total ")

  // title, table header, totals, [reshard], events header, keys
  const fixed = 4 + totalLines.length + (reshard === undefined ? 0 : 1)
  const minLog = 3
  const maxRows = Math.max(1, size.rows - fixed - minLog)
  const table = renderTable(status, input.rates, { columns, maxRows }, color)
  const logRows = Math.max(1, size.rows - fixed - (table.length - 1))

  const lines: Array<string> = [fit(title, columns), ...table]
  for (const line of totalLines) lines.push(fit(line, columns))
  if (reshard !== undefined) {
    lines.push(fit(active ? paint(color, "35", describeReshard(reshard)) : paint(color, "2", `last ${describeReshard(reshard)}`), columns))
  }
  lines.push(fit(paint(color, "2", `─ events ${"─".repeat(Math.max(0, columns - 9))}`), columns))
  const log = input.log.slice(Math.max(0, input.log.length - logRows))
  for (const entry of log) lines.push(fit(`${paint(color, "2", formatUptime(entry.atMs))} ${entry.text}`, columns))
  for (let i = log.length; i < logRows; i++) lines.push("")
  lines.push(fit(paint(color, "2", input.keys), columns))
  return lines
}
