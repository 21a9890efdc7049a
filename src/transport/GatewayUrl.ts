/**
 * Builds the URL a shard connects to: a gateway base URL plus the `v`, `encoding` and `compress` query
 * (PROTOCOL.md §1.2).
 *
 * The base is either the cached `/gateway/bot` url or READY's `resume_gateway_url`, which comes without our
 * query (e.g. `wss://gateway-us-east1-b.discord.gg`). It is parsed with `URL` and the query is set, never
 * string-appended, so a resume connection carries exactly the same `v`/`encoding`/`compress` as the first
 * one (checklist items 2 and 20). `compress` is present only when transport compression is on.
 */

/** Transport compression (PROTOCOL.md §5.4–5.5); `"none"` leaves the `compress` parameter out. */
export type Compression = "none" | "zlib-stream" | "zstd-stream"

/** Wire encoding. Only JSON is implemented. */
export type Encoding = "json"

/** The API version this runtime speaks. */
export const API_VERSION = 10

/**
 * Returns `base` with `v`, `encoding` and (unless `compression` is `"none"`) `compress` set, replacing any
 * values already in it; other query parameters and the path are kept. A base without a path gets `/`
 * (`wss://host` → `wss://host/?v=10&encoding=json`).
 *
 * Throws a `TypeError` when `base` is not an absolute URL.
 */
export const gatewayUrl = (
  base: string,
  options: {
    readonly version?: typeof API_VERSION | undefined
    readonly encoding?: Encoding | undefined
    readonly compression: Compression
  }
): string => {
  const url = new URL(base)
  const query = url.searchParams
  query.set("v", String(options.version ?? API_VERSION))
  query.set("encoding", options.encoding ?? "json")
  if (options.compression === "none") {
    query.delete("compress")
  } else {
    query.set("compress", options.compression)
  }
  return url.toString()
}

/**
 * The transport compression a gateway URL asks for: its `compress` parameter, or `"none"` when it is
 * absent or not one we know (the gateway would not compress then either). Throws a `TypeError` when `url`
 * is not an absolute URL.
 */
export const compressionOf = (url: string): Compression => {
  const value = new URL(url).searchParams.get("compress")
  return value === "zlib-stream" || value === "zstd-stream" ? value : "none"
}
