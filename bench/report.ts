/**
 * The shape of benchmark results and their rendering as Markdown: each benchmark returns a `Section` (its
 * tables and the targets it checks); `run.ts` prints them and writes `bench/RESULTS.md`.
 */

export interface Table {
  readonly title: string
  /** What was measured and how, under the title. */
  readonly note?: string
  readonly header: ReadonlyArray<string>
  readonly rows: ReadonlyArray<ReadonlyArray<string>>
}

/** One target of the issue, checked against this run's figures. */
export interface Target {
  readonly name: string
  readonly goal: string
  readonly measured: string
  readonly met: boolean
}

export interface Section {
  readonly tables: ReadonlyArray<Table>
  readonly targets: ReadonlyArray<Target>
}

const row = (cells: ReadonlyArray<string>): string => `| ${cells.map((c) => c.replace(/\|/g, "\\|")).join(" | ")} |`

/** A table in Markdown (title as a level-3 heading). */
export const renderTable = (table: Table): string =>
  [
    `### ${table.title}`,
    "",
    ...(table.note === undefined ? [] : [table.note, ""]),
    row(table.header),
    row(table.header.map((_, i) => i === 0 ? "---" : "---:")),
    ...table.rows.map(row),
    ""
  ].join("\n")

/** The targets as a Markdown table. */
export const renderTargets = (targets: ReadonlyArray<Target>): string =>
  [
    row(["target", "goal", "measured", "met"]),
    row(["---", "---", "---", "---"]),
    ...targets.map((t) => row([t.name, t.goal, t.measured, t.met ? "yes" : "**no**"])),
    ""
  ].join("\n")
