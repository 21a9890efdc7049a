/**
 * `npm run simulator`: the gateway simulator on 127.0.0.1 as a standalone server — GET /api/v10/gateway/bot
 * and /gateway, the WebSocket gateway (json; zlib-stream and zstd-stream), and POST /control/<action> for
 * fault injection (drop, close?code=, reconnect, invalidate?resumable=, heartbeat-request, withhold?on=, raw,
 * dispatch). Point any Discord gateway client at it (the printed REST and gateway URLs); Ctrl-C stops it.
 *
 * Flags (`simulatorFlags.ts`): port, guild count or ids, recommended shards, max_concurrency, the daily
 * session-start limit, heartbeat interval, the simulator's own traffic (rate and event mix), token, and
 * split zlib-stream messages.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect, Result } from "effect"
import { parse, usage } from "./simulatorFlags.ts"
import * as SimulatorSocketServer from "./testing/SimulatorSocketServer.ts"

const argv = process.argv.slice(2)
const options = parse(argv)
if (argv.includes("--help")) {
  process.stdout.write(`${usage}\n`)
} else if (Result.isFailure(options)) {
  process.stderr.write(`${options.failure}\n${usage}\n`)
  process.exit(2)
} else {
  SimulatorSocketServer.run(options.success).pipe(Effect.asVoid, NodeRuntime.runMain)
}
