/**
 * Flags of `npm run soak`: how long, how many shards, how often a fault, how much traffic (issue 5 "Soak":
 * 16 shards, 10 minutes by default, shorter via a flag).
 *
 * `parse(argv)` is pure: the flags with defaults filled in, or a message naming the bad flag. `--name value`
 * and `--name=value` both work; times are seconds (decimals allowed) and come out in milliseconds.
 */
import { Result } from "effect"

export interface SoakFlags {
  /** Traffic, faults and reshards run this long. Default 600 s. */
  readonly durationMs: number
  /** Initial shard count (what the simulator recommends). Default 16. */
  readonly shards: number
  /** Mean time between faults. Default 3 s. */
  readonly faultEveryMs: number
  /** Events per second. Default 200. */
  readonly rate: number
  /** Time between reshards. Default: a fifth of the duration, at least 20 s. */
  readonly reshardEveryMs: number
  /** The simulator's heartbeat interval. Default 5 s (a zombie is detected within two). */
  readonly heartbeatMs: number
  /** Guilds. Default 12 per initial shard (even over N, 2N and 3N shards). */
  readonly guilds: number
  /** Identify buckets (`max_concurrency`). Default 16. */
  readonly maxConcurrency: number
  /** Progress line period. Default 10 s. */
  readonly progressEveryMs: number
  /** Seed of Effect's Random (fault order, targets, timings). Undefined: `npm run soak` draws one and prints it. */
  readonly seed: number | undefined
  readonly help: boolean
}

export const usage = `usage: npm run soak -- [flags]

A sharded Gateway against the gateway simulator on 127.0.0.1 (real sockets, real time) with continuous
traffic, a fault every few seconds (every kind in turn) and zero-downtime reshards; then a report of events
sent vs delivered, duplicates, missing, reconnects, resumes, identifies, reshards and the heap.
Exits 1 if an event was lost or delivered twice, or an unhandled error happened.

  --duration <s>        how long traffic, faults and reshards run (default 600)
  --shards <n>          initial shard count (default 16)
  --fault-every <s>     mean time between faults (default 3)
  --rate <n>            events per second (default 200)
  --reshard-every <s>   time between reshards (default duration / 5, at least 20)
  --heartbeat <s>       the simulator's heartbeat interval (default 5)
  --guilds <n>          guilds (default 12 per initial shard)
  --max-concurrency <n> identify buckets (default 16)
  --progress-every <s>  progress line period (default 10)
  --seed <n>            seed for the random choices (default: drawn and printed in the first line)
  --help                this text`

type Key = Exclude<keyof SoakFlags, "help">

const seconds = new Set<Key>(["durationMs", "faultEveryMs", "reshardEveryMs", "heartbeatMs", "progressEveryMs"])

const names: ReadonlyMap<string, Key> = new Map<string, Key>([
  ["duration", "durationMs"],
  ["shards", "shards"],
  ["fault-every", "faultEveryMs"],
  ["rate", "rate"],
  ["reshard-every", "reshardEveryMs"],
  ["heartbeat", "heartbeatMs"],
  ["guilds", "guilds"],
  ["max-concurrency", "maxConcurrency"],
  ["progress-every", "progressEveryMs"],
  ["seed", "seed"]
])

/** Reads one value; a message when it is not acceptable. */
const read = (name: string, key: Key, text: string): number | string => {
  if (seconds.has(key)) {
    const value = Number(text)
    return /^\d+(\.\d+)?$/.test(text) && value > 0
      ? Math.round(value * 1000)
      : `--${name} takes a number of seconds above 0, got ${JSON.stringify(text)}`
  }
  if (key === "rate") {
    return /^\d+(\.\d+)?$/.test(text) ? Number(text) : `--rate takes events per second (≥ 0), got ${JSON.stringify(text)}`
  }
  if (key === "seed") {
    return /^-?\d+$/.test(text) && Number.isSafeInteger(Number(text)) ? Number(text) : `--seed takes an integer, got ${JSON.stringify(text)}`
  }
  return /^\d+$/.test(text) && Number(text) >= 1 && Number.isSafeInteger(Number(text))
    ? Number(text)
    : `--${name} takes a whole number ≥ 1, got ${JSON.stringify(text)}`
}

/** Parses the arguments after the script name. */
export const parse = (argv: ReadonlyArray<string>): Result.Result<SoakFlags, string> => {
  const given = new Map<Key, number>()
  let help = false
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "--help" || arg === "-h") {
      help = true
      continue
    }
    if (!arg.startsWith("--")) return Result.fail(`unexpected argument ${JSON.stringify(arg)}: flags start with --`)
    const eq = arg.indexOf("=")
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq)
    const key = names.get(name)
    if (key === undefined) return Result.fail(`unknown flag --${name}: see --help`)
    const text = eq === -1 ? argv[i + 1] : arg.slice(eq + 1)
    if (text === undefined || (eq === -1 && text.startsWith("--"))) return Result.fail(`--${name} needs a value`)
    if (eq === -1) i++
    const value = read(name, key, text)
    if (typeof value === "string") return Result.fail(value)
    given.set(key, value)
  }
  const durationMs = given.get("durationMs") ?? 600_000
  const shards = given.get("shards") ?? 16
  return Result.succeed({
    durationMs,
    shards,
    faultEveryMs: given.get("faultEveryMs") ?? 3000,
    rate: given.get("rate") ?? 200,
    reshardEveryMs: given.get("reshardEveryMs") ?? Math.max(20_000, Math.round(durationMs / 5)),
    heartbeatMs: given.get("heartbeatMs") ?? 5000,
    guilds: given.get("guilds") ?? shards * 12,
    maxConcurrency: given.get("maxConcurrency") ?? 16,
    progressEveryMs: given.get("progressEveryMs") ?? 10_000,
    seed: given.get("seed"),
    help
  })
}
