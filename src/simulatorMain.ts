/**
 * `npm run simulator`: the gateway simulator on 127.0.0.1 as a standalone server — GET /api/v10/gateway/bot
 * and /gateway, the WebSocket gateway (json; zlib-stream and zstd-stream), and POST /control/<action> for
 * fault injection (drop, close?code=, reconnect, invalidate?resumable=, heartbeat-request, withhold?on=, raw,
 * dispatch). Point any Discord gateway client at it (the printed REST and gateway URLs); Ctrl-C stops it.
 *
 * Flags: --port <n> (default 0: any free port), --guilds <n> (default 64), --shards <n> (recommended count,
 * default from the guild count), --max-concurrency <n> (default 1), --heartbeat <ms> (default 41250),
 * --token <string> (default "simulator-token"), --split (split zlib-stream messages over two WS messages).
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect, Result } from "effect"
import * as SimulatorSocketServer from "./testing/SimulatorSocketServer.ts"

const usage = "usage: npm run simulator -- [--port n] [--guilds n] [--shards n] [--max-concurrency n] [--heartbeat ms] [--token s] [--split]"

const parse = (argv: ReadonlyArray<string>): Result.Result<SimulatorSocketServer.SimulatorSocketServerOptions, string> => {
  const numbers: Record<string, number> = {}
  let token = "simulator-token"
  let split = false
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!
    if (flag === "--split") {
      split = true
      continue
    }
    if (!["--token", "--port", "--guilds", "--shards", "--max-concurrency", "--heartbeat"].includes(flag)) {
      return Result.fail(`unknown flag ${flag}`)
    }
    const value = argv[++i]
    if (value === undefined) return Result.fail(`${flag} needs a value`)
    if (flag === "--token") {
      token = value
      continue
    }
    const n = Number(value)
    if (!Number.isInteger(n) || n < 0) return Result.fail(`${flag} takes a whole number ≥ 0, got ${value}`)
    numbers[flag] = n
  }
  const guildCount = numbers["--guilds"] ?? 64
  // Guild k is (k << 22) + k: it routes to shard k % count, so guilds spread evenly over any count.
  const guilds = Array.from({ length: guildCount }, (_, k) => String((BigInt(k) << 22n) + BigInt(k)))
  return Result.succeed({
    token,
    guilds,
    port: numbers["--port"] ?? 0,
    maxConcurrency: numbers["--max-concurrency"] ?? 1,
    heartbeatIntervalMs: numbers["--heartbeat"] ?? 41_250,
    splitCompressedFrames: split,
    ...(numbers["--shards"] === undefined ? {} : { recommendedShards: numbers["--shards"] })
  })
}

const options = parse(process.argv.slice(2))
if (Result.isFailure(options)) {
  process.stderr.write(`${options.failure}\n${usage}\n`)
  process.exit(2)
} else {
  SimulatorSocketServer.run(options.success).pipe(Effect.asVoid, NodeRuntime.runMain)
}
