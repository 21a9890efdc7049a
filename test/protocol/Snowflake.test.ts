import { describe, expect, it } from "@effect/vitest"
import { Effect, Result, Schema } from "effect"
import { isSnowflake, shardIdForGuild, Snowflake, snowflakeTimestamp } from "../../src/protocol/Snowflake.ts"

// (X << 22) - 1 with X = 309944152832: above 2^53, and just below a multiple of 2^22, so a float64
// rounds it up to X << 22. Worked out by hand: id >> 22 = 309944152831.
const bigId = "1299999999999868927"
const bigIdShifted = 309944152831

describe("shardIdForGuild (PROTOCOL.md §4)", () => {
  it("item 52: routes a guild id above 2^53 exactly", () => {
    expect(BigInt(bigId) > 2n ** 53n).toBe(true)
    expect(shardIdForGuild(bigId, 16)).toBe(15) // 309944152831 % 16
    expect(shardIdForGuild(bigId, 1000)).toBe(831) // 309944152831 % 1000
    expect(shardIdForGuild(bigId, 7)).toBe(5) // 309944152831 % 7
    expect(shardIdForGuild("18446744073709551615", 1024)).toBe(1023) // max u64: (2^42 - 1) % 1024
  })

  it("item 52: Number arithmetic would route that id to the wrong shard", () => {
    const viaFloat = (n: number) => Math.floor(Number(bigId) / 2 ** 22) % n
    expect(viaFloat(16)).toBe(0) // float64 rounded the id up to 309944152832 << 22
    expect(viaFloat(16)).not.toBe(shardIdForGuild(bigId, 16))
    expect(viaFloat(1000)).not.toBe(shardIdForGuild(bigId, 1000))
    // and the 32-bit `>>` operator is wrong by far more
    expect((Number(bigId) >> 22) % 16).not.toBe(shardIdForGuild(bigId, 16))
  })

  it("counts 1..64: always in [0, count), matches division-based BigInt arithmetic, count 1 gives 0", () => {
    const ids = [bigId, "175928847299117063", "41771983423143937", "0", "18446744073709551615"]
    for (const id of ids) {
      const shifted = BigInt(id) / 4194304n // 2^22, by division instead of a shift
      for (let count = 1; count <= 64; count++) {
        const shard = shardIdForGuild(id, count)
        expect(shard).toBe(Number(shifted % BigInt(count)))
        expect(shard >= 0 && shard < count).toBe(true)
      }
      expect(shardIdForGuild(id, 1)).toBe(0)
    }
    expect(Number(BigInt(bigId) / 4194304n)).toBe(bigIdShifted)
  })
})

describe("snowflakeTimestamp", () => {
  it("gives ms since the Unix epoch (Discord docs example id)", () => {
    expect(snowflakeTimestamp("175928847299117063")).toBe(1462015105796) // 2016-04-30T11:18:25.796Z
    expect(new Date(snowflakeTimestamp("175928847299117063")).toISOString()).toBe("2016-04-30T11:18:25.796Z")
  })

  it("is exact above 2^53 and the Discord epoch for id 0", () => {
    expect(snowflakeTimestamp(bigId)).toBe(bigIdShifted + 1420070400000)
    expect(snowflakeTimestamp("0")).toBe(1420070400000)
  })
})

describe("isSnowflake", () => {
  it("accepts canonical decimal unsigned 64-bit integers", () => {
    for (const s of ["0", "1", "175928847299117063", bigId, "18446744073709551615"]) {
      expect(isSnowflake(s)).toBe(true)
    }
  })

  it("refuses everything else", () => {
    const bad = ["", "-1", "01", "1.5", "1e5", " 1", "1 ", "abc", "0x10", "18446744073709551616", "99999999999999999999", "123456789012345678901"]
    for (const s of bad) expect(isSnowflake(s)).toBe(false)
  })
})

describe("Snowflake schema (§5.2: ids may arrive as integers)", () => {
  const decode = Schema.decodeUnknownResult(Snowflake)

  it("keeps strings and normalises safe integers and bigints to strings", () => {
    expect(decode("175928847299117063")).toEqual(Result.succeed("175928847299117063"))
    expect(decode(123)).toEqual(Result.succeed("123"))
    expect(decode(BigInt(bigId))).toEqual(Result.succeed(bigId))
    expect(decode(18446744073709551615n)).toEqual(Result.succeed("18446744073709551615"))
  })

  it("rejects non-ids, negatives, fractions, unsafe numbers and out-of-range bigints", () => {
    for (const bad of ["abc", "-5", "", 1.5, -1, Number.NaN, 2 ** 53 + 2, -1n, 2n ** 64n, null, true, {}]) {
      expect(Result.isFailure(decode(bad))).toBe(true)
    }
  })

  it.effect.prop("every u64 bigint decodes to its decimal string, which is a snowflake", {
    id: Schema.BigInt.check(Schema.isBetweenBigInt({ minimum: 0n, maximum: 2n ** 64n - 1n }))
  }, ({ id }) =>
    Effect.sync(() => {
      const decoded = decode(id)
      return Result.isSuccess(decoded) && decoded.success === id.toString() && isSnowflake(decoded.success)
    }))
})
