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
 * events pass through without validation, so an event the application never reads costs no schema work.
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

/** Builds a dispatch (the runtime's constructor; one object per event, nothing else allocated). */
export const make = (shard: number, seq: number, name: string, data: unknown): Dispatch =>
  ({ shard, seq, name, data }) as Dispatch
