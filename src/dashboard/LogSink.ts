/**
 * Where the runtime's Effect logs go while the dashboard runs: a Logger that hands each log (level Info and
 * up) as one short line — "[shard 3] op 7 Reconnect" — to whoever is attached (the dashboard's event log
 * while the live screen is up, so logs never tear the redraw), and otherwise prints it on stderr.
 *
 * The token is never in a line: the runtime never logs it (PROTOCOL.md §8), and this logger prints only
 * the message, the level and the `shard` annotation.
 */
import { Cause, Layer, Logger, type LogLevel, References } from "effect"

export interface LogSink {
  /** The Logger to install (`Logger.layer([sink.logger])`). */
  readonly logger: Logger.Logger<unknown, void>
  /** Sends lines to `onLine` until the returned function is called. */
  readonly attach: (onLine: (line: string) => void) => () => void
  /** Replaces the current loggers with this sink. */
  readonly layer: Layer.Layer<never>
}

const levelTag = (level: LogLevel.LogLevel): string =>
  level === "Warn" ? "warning: " : level === "Error" || level === "Fatal" ? "error: " : ""

const text = (value: unknown): string =>
  typeof value === "string" ? value : value instanceof Error ? value.message : (() => {
    try {
      return JSON.stringify(value) ?? String(value)
    } catch {
      return String(value)
    }
  })()

/** One log as a line: `[shard 3] warning: message parts`, first line of a multi-line message only. */
export const formatLog = (
  level: LogLevel.LogLevel,
  message: unknown,
  annotations: Readonly<Record<string, unknown>>,
  cause?: Cause.Cause<unknown>
): string => {
  const parts = Array.isArray(message) ? message.map(text) : [text(message)]
  if (cause !== undefined && cause.reasons.length > 0) parts.push(Cause.pretty(cause).split("\n")[0]!)
  const shard = annotations.shard
  const prefix = shard === undefined ? "" : `[shard ${text(shard)}] `
  return `${prefix}${levelTag(level)}${parts.join(" ").split("\n")[0]!}`
}

const rank: Readonly<Record<LogLevel.LogLevel, number>> = {
  All: 0,
  Trace: 1,
  Debug: 2,
  Info: 3,
  Warn: 4,
  Error: 5,
  Fatal: 6,
  None: 7
}

/** A sink printing to `fallback` (default stderr) while nothing is attached. Logs below Info are dropped. */
export const make = (fallback: (line: string) => void = (line) => process.stderr.write(`${line}\n`)): LogSink => {
  let target: ((line: string) => void) | undefined
  const logger = Logger.make<unknown, void>((options) => {
    if (rank[options.logLevel] < rank.Info) return
    const line = formatLog(
      options.logLevel,
      options.message,
      options.fiber.getRef(References.CurrentLogAnnotations),
      options.cause
    )
    ;(target ?? fallback)(line)
  })
  return {
    logger,
    attach: (onLine) => {
      target = onLine
      return () => {
        if (target === onLine) target = undefined
      }
    },
    layer: Logger.layer([logger])
  }
}
