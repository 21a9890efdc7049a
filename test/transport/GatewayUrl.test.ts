/**
 * Tests for the gateway URL builder (PROTOCOL.md §1.2; checklist items 2 and 20).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { compressionOf, gatewayUrl } from "../../src/transport/GatewayUrl.ts"
import type { Compression } from "../../src/transport/GatewayUrl.ts"

const query = (url: string) => Object.fromEntries(new URL(url).searchParams)

describe("gatewayUrl", () => {
  it("item 2: the first connection gets v=10, encoding=json and compress only when configured", () => {
    expect(gatewayUrl("wss://gateway.discord.gg", { compression: "none" })).toBe(
      "wss://gateway.discord.gg/?v=10&encoding=json"
    )
    expect(gatewayUrl("wss://gateway.discord.gg", { compression: "zlib-stream" })).toBe(
      "wss://gateway.discord.gg/?v=10&encoding=json&compress=zlib-stream"
    )
    expect(gatewayUrl("wss://gateway.discord.gg", { compression: "zstd-stream", version: 10, encoding: "json" }))
      .toBe("wss://gateway.discord.gg/?v=10&encoding=json&compress=zstd-stream")
  })

  it("item 20: a resume_gateway_url without path or query gets the same query as the original url", () => {
    for (const compression of ["none", "zlib-stream", "zstd-stream"] as const) {
      const first = gatewayUrl("wss://gateway.discord.gg/", { compression })
      const resume = gatewayUrl("wss://gateway-us-east1-b.discord.gg", { compression })
      expect(new URL(resume).host).toBe("gateway-us-east1-b.discord.gg")
      expect(new URL(resume).pathname).toBe("/")
      expect(query(resume)).toEqual(query(first))
    }
  })

  it("keeps a path, replaces stale values and removes compress when compression is off", () => {
    const url = gatewayUrl("wss://example.test/gateway/?v=9&encoding=etf&compress=zlib-stream&x=1", {
      compression: "none"
    })
    expect(new URL(url).pathname).toBe("/gateway/")
    expect(query(url)).toEqual({ v: "10", encoding: "json", x: "1" })
    const zstd = gatewayUrl("wss://example.test/gateway?compress=zlib-stream", { compression: "zstd-stream" })
    expect(zstd).toBe("wss://example.test/gateway?compress=zstd-stream&v=10&encoding=json")
  })

  it("rejects a string that is not an absolute URL", () => {
    expect(() => gatewayUrl("gateway.discord.gg", { compression: "none" })).toThrow(TypeError)
  })
})

describe("compressionOf", () => {
  it("reads the compress parameter back; absent or unknown is none", () => {
    expect(compressionOf("wss://g.test/?v=10&encoding=json")).toBe("none")
    expect(compressionOf("wss://g.test/?compress=zlib-stream")).toBe("zlib-stream")
    expect(compressionOf("wss://g.test/?compress=zstd-stream")).toBe("zstd-stream")
    expect(compressionOf("wss://g.test/?compress=brotli")).toBe("none")
  })

  it.effect.prop(
    "round-trips gatewayUrl for any compression and host",
    {
      compression: Schema.Literals(["none", "zlib-stream", "zstd-stream"]),
      host: Schema.String.check(Schema.isPattern(/^[a-z][a-z0-9-]{0,20}$/))
    },
    ({ compression, host }: { compression: Compression; host: string }) =>
      Effect.sync(() => {
        const url = gatewayUrl(`wss://${host}.discord.test`, { compression })
        return compressionOf(url) === compression && query(url).v === "10" && query(url).encoding === "json"
      }),
    { arbitrary: { runs: 50 } }
  )
})
