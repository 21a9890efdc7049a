/**
 * Small numeric helpers for benchmark figures: the median of several runs, and fixed formatting for the
 * results table.
 */

/** The median of `values` (the mean of the two middle values for an even count); NaN when empty. */
export const median = (values: ReadonlyArray<number>): number => {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

/** An integer with thousands separators (`12 345`). */
export const integer = (value: number): string =>
  Number.isFinite(value) ? Math.round(value).toString().replace(/\B(?=(\d{3})+(?!\d))/g, " ") : "—"

/** A number with `digits` decimals. */
export const fixed = (value: number, digits: number): string => Number.isFinite(value) ? value.toFixed(digits) : "—"

/** A ratio as `0.87×`. */
export const ratio = (value: number): string => Number.isFinite(value) ? `${value.toFixed(2)}×` : "—"
