/**
 * The runtime's Effect Metrics. Shards update them with a `shard` attribute (`updateForShard`, never per
 * event); export them with any effect/observability exporter (Prometheus, OTLP).
 */
import { Metric } from "effect"

export const connections = Metric.counter("discord_gateway_connections_total", {
  description: "gateway WebSocket connections opened"
})
export const reconnects = Metric.counter("discord_gateway_reconnects_total", {
  description: "connections opened after a shard's first one"
})
export const identifies = Metric.counter("discord_gateway_identifies_total", { description: "IDENTIFYs sent" })
export const resumes = Metric.counter("discord_gateway_resumes_total", { description: "RESUMEs sent" })
export const decodeErrors = Metric.counter("discord_gateway_decode_errors_total", {
  description: "malformed server frames"
})
export const dispatches = Metric.counter("discord_gateway_dispatches_total", {
  description: "dispatches received, by shard and event (flushed every 10 s)"
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
  description: "time a shard waited for an identify slot",
  boundaries: Metric.exponentialBoundaries({ start: 10, factor: 2, count: 16 })
})
export const heartbeatLatencyMs = Metric.histogram("discord_gateway_heartbeat_latency_ms", {
  description: "heartbeat round trip (op 1 to op 11)",
  boundaries: Metric.exponentialBoundaries({ start: 1, factor: 2, count: 14 })
})

/**
 * Updates one of the runtime's metrics for a shard (its `shard` attribute). The attributed view is built per
 * update, not kept per shard: shards update these rarely (connections, identifies, heartbeat ACKs), and an
 * idle shard then holds no metric objects of its own.
 */
export const updateForShard = <In, State>(metric: Metric.Metric<In, State>, shardId: number, input: In) =>
  Metric.update(Metric.withAttributes(metric, { shard: String(shardId) }), input)
