/**
 * Flags of `npm run simulator` (the standalone gateway simulator, `simulatorMain.ts`), parsed into the
 * options of `SimulatorSocketServer`. Every value is checked here, so a bad flag is one clear line and exit
 * code 2, never a stack trace.
 */
import { Result } from "effect"
import type { SimulatorSocketServerOptions } from "./testing/SimulatorSocketServer.ts"
import type { TrafficMix } from "./testing/SimulatorTraffic.ts"

/**
 * A standalone server runs for as long as its operator wants: it records no frames (nothing reads them; the
 * control API serves sessions and connections) and keeps the latest 10 000 connections, refused attempts and
 * REST requests, so its memory does not grow with traffic or reconnects.
 */
const StandaloneHistory = { recordFrames: false, historyLimit: 10_000 } as const

export const usage = `usage: npm run simulator -- [flags]
  --port <n>                  TCP port on 127.0.0.1 (default 0: any free port)
  --guilds <n>                guild count (default 64; guild k routes to shard k % n)
  --guild-ids <id,id,…>       these guild ids instead of --guilds
  --shards <n>                /gateway/bot recommended shards (default from the guild count)
  --max-concurrency <n>       identify buckets per 5 s (default 1)
  --session-start-limit <n>   daily session starts (total and remaining; default 1000, reset after 24 h)
  --heartbeat <ms>            heartbeat interval (default 41250)
  --rate <n>                  events per second the simulator sends by itself (default 0: none)
  --mix <EVENT:w,…>           their mix, e.g. MESSAGE_CREATE:8,TYPING_START:5 (default the realistic mix)
  --token <string>            the bot token it accepts (default "simulator-token")
  --split                     send every zlib-stream message as two WebSocket messages`

const wholeNumbers = ["--port", "--guilds", "--shards", "--max-concurrency", "--session-start-limit", "--heartbeat"] as const
const valued = new Set<string>([...wholeNumbers, "--rate", "--mix", "--guild-ids", "--token"])

const parseMix = (value: string): Result.Result<TrafficMix, string> => {
  const mix: Array<readonly [string, number]> = []
  for (const part of value.split(",")) {
    const match = /^([A-Z][A-Z0-9_]*):(\d+)$/.exec(part.trim())
    if (match === null || Number(match[2]) < 1) {
      return Result.fail(`--mix takes EVENT:weight pairs separated by commas (weights ≥ 1), got ${JSON.stringify(part)}`)
    }
    mix.push([match[1]!, Number(match[2])])
  }
  return Result.succeed(mix)
}

/** Parses the flags; the failure is the message to print (with `usage`). */
export const parse = (argv: ReadonlyArray<string>): Result.Result<SimulatorSocketServerOptions, string> => {
  const numbers = new Map<string, number>()
  const text = new Map<string, string>()
  let split = false
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!
    if (flag === "--split") {
      split = true
      continue
    }
    if (!valued.has(flag)) return Result.fail(`unknown flag ${flag}`)
    const value = argv[++i]
    if (value === undefined) return Result.fail(`${flag} needs a value`)
    if ((wholeNumbers as ReadonlyArray<string>).includes(flag)) {
      const n = Number(value)
      if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) return Result.fail(`${flag} takes a whole number ≥ 0, got ${value}`)
      numbers.set(flag, n)
    } else {
      text.set(flag, value)
    }
  }
  let guilds: ReadonlyArray<string>
  const ids = text.get("--guild-ids")
  if (ids !== undefined) {
    if (numbers.has("--guilds")) return Result.fail("--guilds and --guild-ids cannot be used together")
    guilds = ids.split(",").map((id) => id.trim())
    const bad = guilds.find((id) => !/^\d{1,20}$/.test(id))
    if (bad !== undefined) return Result.fail(`--guild-ids takes snowflakes separated by commas, got ${JSON.stringify(bad)}`)
  } else {
    // Guild k is (k << 22) + k: it routes to shard k % count, so guilds spread evenly over any count.
    guilds = Array.from({ length: numbers.get("--guilds") ?? 64 }, (_, k) => String((BigInt(k) << 22n) + BigInt(k)))
  }
  const rateText = text.get("--rate") ?? "0"
  const rate = Number(rateText)
  if (!/^\d+(\.\d+)?$/.test(rateText) || !Number.isFinite(rate)) {
    return Result.fail(`--rate takes a number of events per second ≥ 0, got ${rateText}`)
  }
  const mixText = text.get("--mix")
  const mix = mixText === undefined ? undefined : parseMix(mixText)
  if (mix !== undefined && Result.isFailure(mix)) return Result.fail(mix.failure)
  if ((numbers.get("--port") ?? 0) > 65_535) return Result.fail(`--port takes a TCP port (0–65535), got ${numbers.get("--port")}`)
  for (const flag of ["--max-concurrency", "--heartbeat", "--shards"]) {
    if (numbers.get(flag) === 0) return Result.fail(`${flag} takes a whole number ≥ 1, got 0`)
  }
  const limit = numbers.get("--session-start-limit")
  return Result.succeed({
    token: text.get("--token") ?? "simulator-token",
    guilds,
    port: numbers.get("--port") ?? 0,
    maxConcurrency: numbers.get("--max-concurrency") ?? 1,
    heartbeatIntervalMs: numbers.get("--heartbeat") ?? 41_250,
    splitCompressedFrames: split,
    ...StandaloneHistory,
    ...(numbers.has("--shards") ? { recommendedShards: numbers.get("--shards")! } : {}),
    ...(limit === undefined ? {} : { sessionStartLimit: { total: limit, remaining: limit, resetAfterMs: 86_400_000 } }),
    ...(rate > 0 ? { traffic: { rate, ...(mix === undefined ? {} : { mix: mix.success }) } } : {})
  })
}
