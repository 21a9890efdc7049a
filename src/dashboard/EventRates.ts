/**
 * Events per second per shard, over the last second: the dashboard counts every dispatch it receives by
 * shard id (`record`, the hot path: one Map update, no allocation), and at each redraw takes a snapshot of
 * the running totals (`sample`). The rate of a shard is its count since the newest snapshot at least one
 * window old, divided by the time between the two — so a redraw every 250 ms shows the last second, and
 * the first second after start shows what has arrived so far.
 *
 * Pure and clock-free: callers pass the time of each sample (the dashboard reads Effect's Clock).
 */

/** Running dispatch totals by shard id at one moment. */
export interface RateSample {
  readonly at: number
  readonly totals: ReadonlyMap<number, number>
}

/** Events per second by shard id between two samples (a shard missing from `newer` counts as 0). */
export const ratesBetween = (older: RateSample, newer: RateSample): Map<number, number> => {
  const rates = new Map<number, number>()
  const elapsedMs = newer.at - older.at
  for (const [shard, total] of newer.totals) {
    const delta = total - (older.totals.get(shard) ?? 0)
    rates.set(shard, elapsedMs > 0 && delta > 0 ? (delta * 1000) / elapsedMs : 0)
  }
  return rates
}

export interface EventRates {
  /** Counts one dispatch of `shard`. */
  readonly record: (shard: number) => void
  /** Takes a snapshot at `now` (ms) and returns events/s by shard over the last window. */
  readonly sample: (now: number) => ReadonlyMap<number, number>
  /** Dispatches counted so far, all shards. */
  readonly total: () => number
}

/** A rate counter over a sliding window of `windowMs` (default one second). */
export const make = (windowMs = 1000): EventRates => {
  const totals = new Map<number, number>()
  let count = 0
  /** Snapshots, oldest first; the first is the newest one at least `windowMs` before the last sample. */
  const samples: Array<RateSample> = []
  return {
    record: (shard) => {
      totals.set(shard, (totals.get(shard) ?? 0) + 1)
      count++
    },
    sample: (now) => {
      const current: RateSample = { at: now, totals: new Map(totals) }
      samples.push(current)
      while (samples.length > 1 && samples[1]!.at <= now - windowMs) samples.shift()
      return ratesBetween(samples[0]!, current)
    },
    total: () => count
  }
}

/** The sum of the rates. */
export const sum = (rates: ReadonlyMap<number, number>): number => {
  let total = 0
  for (const rate of rates.values()) total += rate
  return total
}
