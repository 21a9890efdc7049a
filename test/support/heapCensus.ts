/**
 * Counts the live closures of this process by function name, from a V8 heap snapshot — for leak tests that
 * ask "how many of these are still reachable?" (one named method per object: `readyCount` per shard set,
 * `recordDelivered` per reshard handoff).
 *
 * Taking a snapshot collects all garbage first and then walks what is reachable from the roots, so the
 * count is exact whenever it is taken: unlike WeakRef or FinalizationRegistry + `gc()`, it does not depend
 * on when a collection happens to run. A test should also check a count it knows is non-zero (the objects
 * alive now), so that a renamed method cannot make it pass by counting nothing.
 */
import { getHeapSnapshot } from "node:v8"
import { Effect } from "effect"

interface HeapSnapshot {
  readonly snapshot: { readonly meta: { readonly node_fields: ReadonlyArray<string>; readonly node_types: readonly [ReadonlyArray<string>] } }
  readonly nodes: ReadonlyArray<number>
  readonly strings: ReadonlyArray<string>
}

const readSnapshot = (): Promise<HeapSnapshot> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    getHeapSnapshot()
      .on("data", (chunk: Buffer) => chunks.push(chunk))
      .on("error", reject)
      .on("end", () => resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")) as HeapSnapshot))
  })

/** How many closures with each of `names` are reachable now. */
export const liveClosures = <const Names extends ReadonlyArray<string>>(
  names: Names
): Effect.Effect<Record<Names[number], number>> =>
  Effect.map(Effect.promise(readSnapshot), (heap) => {
    const fields = heap.snapshot.meta.node_fields
    const width = fields.length
    const typeField = fields.indexOf("type")
    const nameField = fields.indexOf("name")
    const closureType = heap.snapshot.meta.node_types[0].indexOf("closure")
    const counts = Object.fromEntries(names.map((name) => [name, 0])) as Record<string, number>
    for (let i = 0; i < heap.nodes.length; i += width) {
      if (heap.nodes[i + typeField] !== closureType) continue
      const name = heap.strings[heap.nodes[i + nameField]!]!
      if (Object.hasOwn(counts, name)) counts[name]!++
    }
    return counts as Record<Names[number], number>
  })
