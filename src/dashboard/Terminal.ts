/**
 * The terminal under the live dashboard, with no dependency: plain `process.stdout` and `process.stdin`.
 *
 * - `screen` switches to the alternate screen and hides the cursor; `draw` repaints it from the top with
 *   ANSI cursor control (home, clear to end of line, clear below) — no scrolling, no flicker. Closing the
 *   Scope shows the cursor and returns to the normal screen, whatever ended the program.
 * - `keys` puts stdin in raw mode and streams what is typed (Ctrl-C arrives as a key, not as SIGINT);
 *   closing the stream restores the mode and releases stdin so the process can exit.
 *
 * Only for a TTY (`isInteractive`); otherwise the dashboard prints plain status lines.
 */
import { Effect, Queue, type Scope, Stream } from "effect"
import type { ScreenSize } from "./StatusTable.ts"

/** Both ends are a terminal: redraw and raw-mode keys are possible. */
export const isInteractive = (): boolean => process.stdout.isTTY === true && process.stdin.isTTY === true

export interface Screen {
  /** Repaints the screen with these lines (skipped when nothing changed). */
  readonly draw: (lines: ReadonlyArray<string>) => Effect.Effect<void>
  /** The terminal's size now. */
  readonly size: () => ScreenSize
}

const EnterAlternate = "\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J"
const LeaveAlternate = "\x1b[0m\x1b[?25h\x1b[?1049l"

/** The alternate screen, for the current Scope. */
export const screen: Effect.Effect<Screen, never, Scope.Scope> = Effect.gen(function*() {
  const out = process.stdout
  yield* Effect.acquireRelease(
    Effect.sync(() => out.write(EnterAlternate)),
    () => Effect.sync(() => out.write(LeaveAlternate))
  )
  let last = ""
  return {
    draw: (lines) =>
      Effect.sync(() => {
        const frame = `\x1b[H${lines.join("\x1b[K\r\n")}\x1b[K\x1b[J`
        if (frame === last) return
        last = frame
        out.write(frame)
      }),
    size: () => ({ columns: out.columns ?? 80, rows: out.rows ?? 24 })
  }
})

/** What is typed, chunk by chunk, with stdin in raw mode while the stream runs. */
export const keys: Stream.Stream<string> = Stream.callback<string>((queue) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const stdin = process.stdin
      const onData = (chunk: string | Buffer) => {
        Queue.offerUnsafe(queue, typeof chunk === "string" ? chunk : chunk.toString("utf8"))
      }
      stdin.setRawMode(true)
      stdin.setEncoding("utf8")
      stdin.on("data", onData)
      stdin.resume()
      return onData
    }),
    (onData) =>
      Effect.sync(() => {
        const stdin = process.stdin
        stdin.off("data", onData)
        stdin.setRawMode(false)
        stdin.pause()
      })
  ))
