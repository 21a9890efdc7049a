/**
 * Readers of the simulator's recorded frames (`RecordedFrame`) shared by the shard conformance tests
 * (PROTOCOL.md §1.5–§1.8: IDENTIFY, RESUME and READY carry object `d`s).
 */
import type { RecordedFrame } from "../../src/testing/GatewaySimulator.ts"

/** A frame's `d` as an object (IDENTIFY/RESUME/READY `d` always is one). */
export const dataOf = (frame: RecordedFrame): Record<string, unknown> => frame.d as Record<string, unknown>

/** A session start the client sent: IDENTIFY (op 2) or RESUME (op 6). */
export const isSessionStart = (frame: RecordedFrame): boolean =>
  frame.direction === "client" && (frame.op === 2 || frame.op === 6)
