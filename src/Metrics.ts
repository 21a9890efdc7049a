/**
 * The runtime's Effect Metrics; export them with any effect/observability exporter (Prometheus, OTLP).
 *
 * Counters carry a `shard` attribute (`updateForShard`, never per event) where the shard is what an operator
 * looks for: reconnects, resumes, decode errors. A series per shard that every healthy shard has costs
 * about 0.65 KiB for the life of the process, so what every shard does once is counted per process:
 * connections (a shard's are one more than its reconnects) and identifies (the session-start budget is the
 * bot's; a shard that identifies again had a reconnect it did not resume, and its own counts are in
 * `Gateway.status`). Dispatches are counted twice, by shard and by event name, never by both:
 * a series per shard and event would be one per kind of event each shard has seen (tens of thousands at 1000
 * shards, more memory than the shards themselves). The two histograms (identify wait, heartbeat latency) are
 * one per process too: a histogram per shard is a series per bucket per shard (15 000 series at 1000 shards,
 * each kept in memory for as long as the process runs), and a shard's own latency is in `Gateway.status`
 * (`latencyMs`).
 */
import { Metric } from "effect"

export const connections = Metric.counter("discord_gateway_connections_total", {
  description: "gateway WebSocket connections opened (all shards; a shard's: 1 + its reconnects)"
})
export const reconnects = Metric.counter("discord_gateway_reconnects_total", {
  description: "connections opened after a shard's first one"
})
export const identifies = Metric.counter("discord_gateway_identifies_total", {
  description: "IDENTIFYs sent (all shards; a shard's own count is in its status)"
})
export const resumes = Metric.counter("discord_gateway_resumes_total", { description: "RESUMEs sent" })
export const decodeErrors = Metric.counter("discord_gateway_decode_errors_total", {
  description: "malformed server frames"
})
export const dispatches = Metric.counter("discord_gateway_dispatches_total", {
  description: "dispatches received, by shard (flushed every 10 s)"
})
export const dispatchesByEvent = Metric.counter("discord_gateway_dispatch_events_total", {
  description: "dispatches received by all shards, by event name (flushed every 10 s)"
})
export const reshards = Metric.counter("discord_gateway_reshards_total", { description: "reshards started" })
export const staleShards = Metric.counter("discord_gateway_stale_shards_total", {
  description: "times the staleness watchdog found a shard with guilds but no dispatch for staleAfter"
})
export const dispatchDropped = Metric.counter("discord_gateway_dispatch_dropped_total", {
  description: "dispatches a subscriber lost under the sliding, dropping or fail overflow strategy"
})
export const dispatchDelayed = Metric.counter("discord_gateway_dispatch_delayed_total", {
  description: "publishes that waited for a full \"suspend\" subscriber (backpressure on the shards)"
})
export const identifyWaitMs = Metric.histogram("discord_gateway_identify_wait_ms", {
  description: "time a shard waited for an identify slot (all shards)",
  boundaries: Metric.exponentialBoundaries({ start: 10, factor: 2, count: 16 })
})
export const heartbeatLatencyMs = Metric.histogram("discord_gateway_heartbeat_latency_ms", {
  description: "heartbeat round trip (op 1 to op 11), all shards",
  boundaries: Metric.exponentialBoundaries({ start: 1, factor: 2, count: 14 })
})

/**
 * Updates one of the runtime's counters for a shard (its `shard` attribute). The attributed view is built per
 * update, not kept per shard: shards update these rarely (connections, identifies, resumes), and the shard
 * holds no metric objects of its own.
 */
export const updateForShard = <In, State>(metric: Metric.Metric<In, State>, shardId: number, input: In) =>
  Metric.update(Metric.withAttributes(metric, { shard: String(shardId) }), input)
