import { expect, it } from "@effect/vitest"
import { Effect } from "effect"

it.effect("runs on the project's own Node 24 (the node@24 devDependency), not the machine's Node 20", () =>
  Effect.sync(() => {
    expect(Number(process.versions.node.split(".")[0])).toBeGreaterThanOrEqual(24)
    expect(process.execPath).toContain("node_modules")
  }))
