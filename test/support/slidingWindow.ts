/**
 * Counting events in a sliding time window: the measure behind the identify buckets (PROTOCOL.md §3, at
 * most max_concurrency IDENTIFYs per 5 s; checklist item 17) and the send limit (§3, at most 120 frames
 * per 60 s; items 40–41).
 */

/** The largest number of the given times inside one half-open window `[t, t + windowMs)`. */
export const maxInAnyWindow = (values: ReadonlyArray<number>, windowMs: number): number => {
  const times = [...values].sort((a, b) => a - b)
  let max = 0
  let first = 0
  for (let last = 0; last < times.length; last++) {
    while (times[last]! - times[first]! >= windowMs) first++
    max = Math.max(max, last - first + 1)
  }
  return max
}
