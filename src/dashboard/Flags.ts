/**
 * Flags of `npm start`: what the demo runs (shards, guilds, traffic rate, heartbeat) and, for runs without a
 * keyboard (CI, a pipe), what the keys would do on a timer: `--duration`, `--fault-every`, `--reshard-at`.
 *
 * Parsing is pure: `parseFlags(argv)` returns the flags with defaults filled in, or a message that names
 * the flag and what to write instead. Both `--name value` and `--name=value` are accepted; times are in
 * seconds (decimals allowed) and come out in milliseconds.
 */
import { Result } from "effect"

export interface Flags {
  /** Shards of the demo gateway (the simulator recommends this count). Default 16. */
  readonly shards: number
  /** Guilds in the simulator, spread evenly over the shards. Default 64. */
  readonly guilds: number
  /** Demo traffic in events per second (0: none). Default 200. */
  readonly rate: number
  /** The simulator's heartbeat interval, in ms. Default 5000. */
  readonly heartbeatMs: number
  /** Stop (gracefully) after this long, in ms. Default: run until `q` / Ctrl-C. */
  readonly durationMs: number | undefined
  /** Inject a random fault into a random ready shard this often, in ms. Default: never. */
  readonly faultEveryMs: number | undefined
  /** Reshard to twice the shard count at this time after start, in ms. Default: never. */
  readonly reshardAtMs: number | undefined
  /** How often the plain (non-TTY) mode prints a status line, in ms. Default 2000. */
  readonly statusEveryMs: number
  /** Print status lines even on a terminal (no redraw, no keys). */
  readonly plain: boolean
  /** Print the usage and exit. */
  readonly help: boolean
}

export const defaultFlags: Flags = {
  shards: 16,
  guilds: 64,
  rate: 200,
  heartbeatMs: 5000,
  durationMs: undefined,
  faultEveryMs: undefined,
  reshardAtMs: undefined,
  statusEveryMs: 2000,
  plain: false,
  help: false
}

export const usage = `usage: npm start -- [flags]

Without DISCORD_TOKEN: an embedded gateway simulator and a sharded bot against it, with a live dashboard.
With DISCORD_TOKEN (and DISCORD_INTENTS, default Guilds,GuildMessages): the example bot against Discord.

  --shards <n>          shards of the demo gateway (default 16)
  --guilds <n>          guilds in the simulator (default 64)
  --rate <n>            demo events per second (default 200; 0 for none)
  --heartbeat <s>       the simulator's heartbeat interval in seconds (default 5)
  --duration <s>        stop gracefully after this many seconds
  --fault-every <s>     inject a random fault into a random shard every so many seconds
  --reshard-at <s>      reshard to twice the shard count at this time
  --status-every <s>    status line period when not on a terminal (default 2)
  --plain               status lines instead of the live dashboard, even on a terminal
  --help                this text

Keys on a terminal: d drop · z zombie (ACKs withheld) · 7 op 7 · 9 op 9 · c close 4000 · r reshard ×2 · q quit`

type Spec =
  | { readonly kind: "count"; readonly key: "shards" | "guilds"; readonly min: number }
  | { readonly kind: "rate" }
  | { readonly kind: "seconds"; readonly key: "heartbeatMs" | "durationMs" | "faultEveryMs" | "reshardAtMs" | "statusEveryMs" }
  | { readonly kind: "switch"; readonly key: "plain" | "help" }

const specs: ReadonlyMap<string, Spec> = new Map<string, Spec>([
  ["shards", { kind: "count", key: "shards", min: 1 }],
  ["guilds", { kind: "count", key: "guilds", min: 1 }],
  ["rate", { kind: "rate" }],
  ["heartbeat", { kind: "seconds", key: "heartbeatMs" }],
  ["duration", { kind: "seconds", key: "durationMs" }],
  ["fault-every", { kind: "seconds", key: "faultEveryMs" }],
  ["reshard-at", { kind: "seconds", key: "reshardAtMs" }],
  ["status-every", { kind: "seconds", key: "statusEveryMs" }],
  ["plain", { kind: "switch", key: "plain" }],
  ["help", { kind: "switch", key: "help" }]
])

const isDecimal = (text: string): boolean => /^\d+(\.\d+)?$/.test(text)

/** Parses the command-line arguments after the script name. */
export const parseFlags = (argv: ReadonlyArray<string>): Result.Result<Flags, string> => {
  const flags: { -readonly [K in keyof Flags]: Flags[K] } = { ...defaultFlags }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "-h") {
      flags.help = true
      continue
    }
    if (!arg.startsWith("--")) return Result.fail(`unexpected argument ${JSON.stringify(arg)}: flags start with --`)
    const eq = arg.indexOf("=")
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq)
    const spec = specs.get(name)
    if (spec === undefined) return Result.fail(`unknown flag --${name}: see --help`)
    if (spec.kind === "switch") {
      if (eq !== -1) return Result.fail(`--${name} takes no value`)
      flags[spec.key] = true
      continue
    }
    let value: string
    if (eq !== -1) {
      value = arg.slice(eq + 1)
    } else {
      const next = argv[i + 1]
      if (next === undefined || next.startsWith("--")) return Result.fail(`--${name} needs a value`)
      value = next
      i++
    }
    switch (spec.kind) {
      case "count": {
        if (!/^\d+$/.test(value) || Number(value) < spec.min || !Number.isSafeInteger(Number(value))) {
          return Result.fail(`--${name} must be a whole number ≥ ${spec.min}, got ${JSON.stringify(value)}`)
        }
        flags[spec.key] = Number(value)
        break
      }
      case "rate": {
        if (!isDecimal(value)) return Result.fail(`--rate must be a number of events per second ≥ 0, got ${JSON.stringify(value)}`)
        flags.rate = Number(value)
        break
      }
      case "seconds": {
        if (!isDecimal(value) || Number(value) <= 0) {
          return Result.fail(`--${name} must be a number of seconds above 0 (e.g. 2 or 0.5), got ${JSON.stringify(value)}`)
        }
        flags[spec.key] = Math.round(Number(value) * 1000)
        break
      }
    }
  }
  return Result.succeed(flags)
}
