/**
 * Summarises a V8 `.cpuprofile` (from `node --cpu-prof` or `BENCH_PROFILE`): self time by area (our
 * files, each package, Node internals, GC), then the functions with the most self time and the most total
 * (inclusive) time, each with its file:line, so a profile of a benchmark can be read in a terminal. Usage: `node bench/profileSummary.ts <file.cpuprofile> [rows] [path filter]`.
 */
import { readFileSync } from "node:fs"

interface ProfileNode {
  readonly id: number
  readonly callFrame: {
    readonly functionName: string
    readonly url: string
    readonly lineNumber: number
  }
  readonly children?: ReadonlyArray<number>
}

interface Profile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

const [file, rowsArg, filter] = process.argv.slice(2)
if (file === undefined) {
  console.error("usage: node bench/profileSummary.ts <file.cpuprofile> [rows] [path filter]")
  process.exit(2)
}
const rows = Number(rowsArg ?? 30)
const profile = JSON.parse(readFileSync(file, "utf8")) as Profile

const byId = new Map(profile.nodes.map((node) => [node.id, node]))
const parent = new Map<number, number>()
for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)

const label = (node: ProfileNode): string => {
  const { functionName, lineNumber, url } = node.callFrame
  const where = url === "" ? "" : ` ${url.replace(/^file:\/\//, "").replace(process.cwd() + "/", "")}:${lineNumber + 1}`
  return `${functionName === "" ? "(anonymous)" : functionName}${where}`
}

/** Where a frame's code lives: our source file, a package, a Node internal or a V8 pseudo-frame. */
const area = (node: ProfileNode): string => {
  const url = node.callFrame.url.replace(/^file:\/\//, "").replace(process.cwd() + "/", "")
  if (url === "") return node.callFrame.functionName.startsWith("(") ? node.callFrame.functionName : "(V8 builtins)"
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (pkg !== null) return `package ${pkg[1]}`
  if (url.startsWith("node:")) return "node internals"
  return url
}

const self = new Map<string, number>()
const byArea = new Map<string, number>()
const total = new Map<string, number>()
let all = 0
for (let i = 0; i < profile.samples.length; i++) {
  const dt = profile.timeDeltas[i] ?? 0
  all += dt
  let node = byId.get(profile.samples[i]!)
  if (node === undefined) continue
  const own = label(node)
  self.set(own, (self.get(own) ?? 0) + dt)
  byArea.set(area(node), (byArea.get(area(node)) ?? 0) + dt)
  // inclusive time: once per distinct frame on the stack
  const seen = new Set<string>()
  while (node !== undefined) {
    const name = label(node)
    if (!seen.has(name)) {
      seen.add(name)
      total.set(name, (total.get(name) ?? 0) + dt)
    }
    const up = parent.get(node.id)
    node = up === undefined ? undefined : byId.get(up)
  }
}

const print = (title: string, table: Map<string, number>) => {
  console.log(`\n${title} (of ${(all / 1000).toFixed(0)} ms sampled)`)
  const sorted = [...table].filter(([name]) => filter === undefined || name.includes(filter)).sort((a, b) => b[1] - a[1])
  for (const [name, us] of sorted.slice(0, rows)) {
    console.log(`${((100 * us) / all).toFixed(1).padStart(6)} %  ${(us / 1000).toFixed(0).padStart(7)} ms  ${name}`)
  }
}

print("self time by area", byArea)
print("self time", self)
print("total time", total)
