/**
 * What happened on the wire during a soak, read from the simulator's connection records (PROTOCOL.md §9:
 * opens and closes are recorded even with frame recording off): connections, IDENTIFYs, RESUMEs,
 * reconnects, and closes by code.
 *
 * - identifies: sessions created (each accepted IDENTIFY creates one; a connection records the session it
 *   last carried);
 * - resumes: connections that carried a session an earlier connection had carried (a successful RESUME);
 * - reconnects: every connection that was not a shard's start — the initial set's shards and each reshard's
 *   new set start once each (`starts`), every other connection is a reconnect;
 * - closes: by code and by who closed (server = the simulator's faults, client = the shards, transport = drops).
 */
import type { RecordedConnection } from "../testing/SimulatorRecording.ts"

export interface WireStats {
  readonly connections: number
  readonly identifies: number
  readonly resumes: number
  readonly reconnects: number
  /** `"<code> by <who>"` → count, e.g. `"4000 by client"`. */
  readonly closes: ReadonlyMap<string, number>
}

/** `starts`: shards started (the initial count plus the count of every reshard's new set). */
export const wireStats = (connections: ReadonlyArray<RecordedConnection>, starts: number): WireStats => {
  const sessions = new Set<string>()
  const closes = new Map<string, number>()
  let resumes = 0
  // Records are in connection order, so "an earlier connection" is "seen before in this loop".
  for (const connection of connections) {
    if (connection.sessionId !== null) {
      if (sessions.has(connection.sessionId)) resumes++
      else sessions.add(connection.sessionId)
    }
    if (connection.closeCode !== null) {
      const key = `${connection.closeCode} by ${connection.closedBy ?? "?"}`
      closes.set(key, (closes.get(key) ?? 0) + 1)
    }
  }
  return {
    connections: connections.length,
    identifies: sessions.size,
    resumes,
    reconnects: Math.max(0, connections.length - starts),
    closes
  }
}
