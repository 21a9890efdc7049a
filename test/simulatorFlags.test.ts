/**
 * `npm run simulator` flags (`simulatorFlags.ts`): defaults, every option the issue names (guild count and
 * ids, recommended shards, max_concurrency, session_start_limit, heartbeat interval, event mix and rate),
 * and a clear message for each bad value.
 */
import { describe, expect, it } from "@effect/vitest"
import { Result } from "effect"
import { parse } from "../src/simulatorFlags.ts"

const ok = (argv: ReadonlyArray<string>) => {
  const parsed = parse(argv)
  if (Result.isFailure(parsed)) throw new Error(parsed.failure)
  return parsed.success
}
const failure = (argv: ReadonlyArray<string>) => {
  const parsed = parse(argv)
  return Result.isFailure(parsed) ? parsed.failure : "parsed"
}

describe("npm run simulator flags", () => {
  it("defaults: 64 guilds routing k → k % n, any port, max_concurrency 1, Discord's heartbeat, no traffic", () => {
    const options = ok([])
    expect(options.guilds?.length).toBe(64)
    expect(options.guilds?.[5]).toBe(String((5n << 22n) + 5n))
    expect([options.port, options.maxConcurrency, options.heartbeatIntervalMs, options.token]).toEqual([0, 1, 41_250, "simulator-token"])
    expect(options.traffic).toBeUndefined()
    expect(options.sessionStartLimit).toBeUndefined()
    expect(options.splitCompressedFrames).toBe(false)
    // a long-running server: no frame recording, a bounded history of connections and requests
    expect([options.recordFrames, options.historyLimit]).toEqual([false, 10_000])
  })

  it("every option", () => {
    const options = ok([
      "--port", "8090", "--guild-ids", "81384788765712384, 41771983423143937", "--shards", "2", "--max-concurrency", "16",
      "--session-start-limit", "3", "--heartbeat", "1500", "--rate", "12.5", "--mix", "MESSAGE_CREATE:3,GUILD_AUDIT_LOG_ENTRY_CREATE:1",
      "--token", "t", "--split"
    ])
    expect(options).toEqual({
      token: "t",
      guilds: ["81384788765712384", "41771983423143937"],
      port: 8090,
      maxConcurrency: 16,
      heartbeatIntervalMs: 1500,
      splitCompressedFrames: true,
      recordFrames: false,
      historyLimit: 10_000,
      recommendedShards: 2,
      sessionStartLimit: { total: 3, remaining: 3, resetAfterMs: 86_400_000 },
      traffic: { rate: 12.5, mix: [["MESSAGE_CREATE", 3], ["GUILD_AUDIT_LOG_ENTRY_CREATE", 1]] }
    })
    expect(ok(["--rate", "100"]).traffic).toEqual({ rate: 100 }) // the realistic default mix
  })

  it("bad values: one clear line each", () => {
    expect(failure(["--nope"])).toBe("unknown flag --nope")
    expect(failure(["--rate"])).toBe("--rate needs a value")
    expect(failure(["--guilds", "-1"])).toBe("--guilds takes a whole number ≥ 0, got -1")
    expect(failure(["--shards", "0"])).toBe("--shards takes a whole number ≥ 1, got 0")
    expect(failure(["--port", "70000"])).toBe("--port takes a TCP port (0–65535), got 70000")
    expect(failure(["--rate", "fast"])).toBe("--rate takes a number of events per second ≥ 0, got fast")
    expect(failure(["--rate", "5", "--mix", "MESSAGE_CREATE:0"])).toMatch(/^--mix takes EVENT:weight pairs/)
    expect(failure(["--rate", "5", "--mix", "message_create:2"])).toMatch(/^--mix takes EVENT:weight pairs/)
    expect(failure(["--guild-ids", "12,abc"])).toBe('--guild-ids takes snowflakes separated by commas, got "abc"')
    expect(failure(["--guilds", "4", "--guild-ids", "12"])).toBe("--guilds and --guild-ids cannot be used together")
  })
})
