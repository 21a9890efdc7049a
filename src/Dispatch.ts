/**
 * Dispatch: one gateway event (op 0) as users receive it — the shard it came from, its sequence number in
 * that shard's session, its event name, and its data.
 *
 * Event data is typed by name through `DispatchEvents` (PROTOCOL.md §6.1). TypeScript cannot narrow a
 * union that also admits every other string, so narrowing goes through `Dispatch.is(dispatch, name)` (or a
 * per-event stream), which types `data` as that event's data. Unknown event names are delivered too, with
 * `data: unknown` (PROTOCOL.md §1.3: unknown events are tolerated, never fatal).
 *
 * The runtime decodes only what it needs (op, s, t, and the data of READY/RESUMED/guild events); user
 * events pass through without validation. When the frame allowed it, `data` is parsed on first read (and
 * kept): an event the application never reads costs no JSON.parse. If that parse fails, `data` is
 * undefined and the shard reports the malformed frame in its state (`lastError`).
 */
import type { DispatchEventName, DispatchEvents } from "./protocol/Events.ts"

/** The data type of an event name: typed for known events, `unknown` for every other name. */
export type EventData<Name extends string> = Name extends DispatchEventName ? DispatchEvents[Name] : unknown

/** One dispatch delivered to users. */
export interface Dispatch<Name extends string = string> {
  /** The shard whose session received it. */
  readonly shard: number
  /** Its `s` in that session (sessions number their dispatches independently). */
  readonly seq: number
  /** The event name (`t`), e.g. "MESSAGE_CREATE". */
  readonly name: Name
  /** The event data (`d`). */
  readonly data: EventData<Name>
}

/** Narrows a dispatch to one event name, typing its data. */
export const is = <Name extends string>(dispatch: Dispatch, name: Name): dispatch is Dispatch<Name> =>
  dispatch.name === name

/** A predicate for `Stream.filter` that keeps one event name, typed. */
export const ofName = <Name extends string>(name: Name) => (dispatch: Dispatch): dispatch is Dispatch<Name> =>
  dispatch.name === name

/** Builds a dispatch whose data is already parsed. */
export const make = (shard: number, seq: number, name: string, data: unknown): Dispatch =>
  ({ shard, seq, name, data }) as Dispatch

/** Called when a lazily parsed `data` turns out not to be JSON. */
export type LazyDataError = (dispatch: Dispatch, error: unknown) => void

/**
 * Where the JSON value that starts at `start` ends (exclusive): after its closing bracket or quote, or, for a
 * number, `true`, `false` or `null`, at the `,` or `}` that follows it. For malformed text, some index at or
 * before the end of the text.
 */
const jsonValueEnd = (text: string, start: number): number => {
  let depth = 0
  for (let i = start; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 34 /* " */) {
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i)
        if (d === 92 /* \ */) i++
        else if (d === 34) break
      }
      if (depth === 0) return Math.min(i + 1, text.length)
    } else if (c === 123 /* { */ || c === 91 /* [ */) {
      depth++
    } else if (c === 125 /* } */ || c === 93 /* ] */) {
      if (depth === 0) return i
      if (--depth === 0) return i + 1
    } else if (c === 44 /* , */ && depth === 0) {
      return i
    }
  }
  return text.length
}

/** A dispatch whose data is parsed from its JSON text on first read. */
class LazyDispatch {
  readonly shard: number
  readonly seq: number
  readonly name: string
  /** The whole frame, and where `d` starts in it (the frame ends right after `d`, unless keys follow it). */
  readonly #frame: string
  readonly #dataStart: number
  readonly #onError: LazyDataError
  #data: unknown = undefined
  #parsed = false
  constructor(shard: number, seq: number, name: string, frame: string, dataStart: number, onError: LazyDataError) {
    this.shard = shard
    this.seq = seq
    this.name = name
    this.#frame = frame
    this.#dataStart = dataStart
    this.#onError = onError
  }
  /** The JSON text of `d` alone, found by a scan of its value: keys after `d` are not part of it. */
  get rawData(): string {
    return this.#frame.slice(this.#dataStart, jsonValueEnd(this.#frame, this.#dataStart))
  }
  get data(): unknown {
    if (!this.#parsed) {
      this.#parsed = true
      try {
        // Discord's frames end right after `d`: its text runs to the closing brace (no scan needed).
        this.#data = JSON.parse(this.#frame.slice(this.#dataStart, this.#frame.length - 1))
      } catch {
        // Keys after `d` (a layout Discord does not use) make the tail invalid: parse the whole frame.
        try {
          this.#data = (JSON.parse(this.#frame) as { readonly d?: unknown }).d
        } catch (error) {
          this.#onError(this as unknown as Dispatch, error)
        }
      }
    }
    return this.#data
  }
  toJSON() {
    return { shard: this.shard, seq: this.seq, name: this.name, data: this.data }
  }
}

/**
 * Builds a dispatch whose data is parsed on first read from `frame` (the whole gateway message), where `d`
 * starts at `dataStart` and runs to the closing brace.
 */
export const makeLazy = (
  shard: number,
  seq: number,
  name: string,
  frame: string,
  dataStart: number,
  onError: LazyDataError
): Dispatch => new LazyDispatch(shard, seq, name, frame, dataStart, onError) as unknown as Dispatch

/** The JSON text of a dispatch's data as received, when it was kept (no parse or stringify needed). */
export const rawData = (dispatch: Dispatch): string | undefined =>
  dispatch instanceof LazyDispatch ? dispatch.rawData : undefined
