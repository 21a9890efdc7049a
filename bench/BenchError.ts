/**
 * The one error of the benchmark harness: a client that never got ready, a run that never finished, a
 * producer that did not answer. Benchmarks fail with it (they never fail on a figure).
 */
import { Data } from "effect"

export class BenchError extends Data.TaggedError("BenchError")<{ readonly message: string }> {}
