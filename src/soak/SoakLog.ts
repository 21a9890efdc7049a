/**
 * The soak's logger: counts the runtime's warnings and errors instead of printing every reconnect, and
 * keeps the error lines for the report. An Error or Fatal log from the runtime is an unhandled problem
 * (a shard defect restarted by its supervisor, a fatal close, a failed reshard): it fails the soak.
 *
 * It replaces the default loggers for everything run under its `layer`, so the soak's output stays the
 * progress lines and the report; `onError` sees each error line as it happens (the CLI prints it).
 */
import { Cause, Layer, Logger } from "effect"

/** Error lines kept for the report (the first ones; later ones are only counted). */
const KeptErrors = 20

export interface SoakLog {
  /** Replaces the loggers of whatever runs under it. */
  readonly layer: Layer.Layer<never>
  readonly warnings: () => number
  readonly errors: () => number
  /** The first error lines. */
  readonly errorLines: () => ReadonlyArray<string>
}

const render = (message: unknown): string =>
  Array.isArray(message) ? message.map(renderOne).join(" ") : renderOne(message)

const renderOne = (part: unknown): string => {
  if (typeof part === "string") return part
  if (part instanceof Error) return part.message
  try {
    return JSON.stringify(part) ?? String(part)
  } catch {
    return String(part)
  }
}

export const make = (onError?: (line: string) => void): SoakLog => {
  let warnings = 0
  let errors = 0
  const lines: Array<string> = []
  const logger = Logger.make((options) => {
    switch (options.logLevel) {
      case "Warn":
        warnings++
        return
      case "Error":
      case "Fatal": {
        errors++
        const cause = options.cause.reasons.length > 0 ? ` — ${Cause.pretty(options.cause)}` : ""
        const line = `${options.logLevel}: ${render(options.message)}${cause}`
        if (lines.length < KeptErrors) lines.push(line)
        onError?.(line)
        return
      }
      default:
        return
    }
  })
  return {
    layer: Logger.layer([logger]),
    warnings: () => warnings,
    errors: () => errors,
    errorLines: () => lines
  }
}
