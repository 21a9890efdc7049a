import { describe, expect, it } from "@effect/vitest"
import { Effect, Result, Schema } from "effect"
import {
  AllIntents,
  hasIntent,
  IntentBits,
  type IntentName,
  Intents,
  intentsFrom,
  InvalidIntentsConfig,
  NonPrivilegedIntents,
  privilegedIn,
  PrivilegedIntents,
  validateIntents
} from "../../src/protocol/Intents.ts"

const names = Object.keys(IntentBits) as Array<IntentName>

describe("intent bits (PROTOCOL.md §7)", () => {
  it("all documented bits OR'd = 53608447; privileged mask = 33026", () => {
    expect(AllIntents).toBe(53608447)
    expect(PrivilegedIntents).toBe(33026)
    expect(NonPrivilegedIntents).toBe(53608447 - 33026)
    expect(NonPrivilegedIntents & PrivilegedIntents).toBe(0)
  })

  it("matches the §7 table bit for bit", () => {
    expect(IntentBits).toEqual({
      Guilds: 1,
      GuildMembers: 2,
      GuildModeration: 4,
      GuildExpressions: 8,
      GuildIntegrations: 16,
      GuildWebhooks: 32,
      GuildInvites: 64,
      GuildVoiceStates: 128,
      GuildPresences: 256,
      GuildMessages: 512,
      GuildMessageReactions: 1024,
      GuildMessageTyping: 2048,
      DirectMessages: 4096,
      DirectMessageReactions: 8192,
      DirectMessageTyping: 16384,
      MessageContent: 32768,
      GuildScheduledEvents: 65536,
      AutoModerationConfiguration: 1048576,
      AutoModerationExecution: 2097152,
      GuildMessagePolls: 16777216,
      DirectMessagePolls: 33554432
    })
  })

  it("marks exactly GuildMembers, GuildPresences and MessageContent as privileged", () => {
    expect(privilegedIn(Intents.GuildMembers)).toEqual(["GuildMembers"])
    expect(privilegedIn(Intents.GuildPresences)).toEqual(["GuildPresences"])
    expect(privilegedIn(Intents.MessageContent)).toEqual(["MessageContent"])
    expect(privilegedIn(AllIntents)).toEqual(["GuildMembers", "GuildPresences", "MessageContent"])
    expect(privilegedIn(NonPrivilegedIntents)).toEqual([])
    for (const name of names) {
      const privileged = name === "GuildMembers" || name === "GuildPresences" || name === "MessageContent"
      expect(privilegedIn(IntentBits[name]).length === 1).toBe(privileged)
    }
  })

  it("Intents.from builds the bitfield from names; hasIntent reads it back", () => {
    const value = Intents.from("Guilds", "GuildMessages", "MessageContent")
    expect(value).toBe(1 + 512 + 32768)
    expect(intentsFrom()).toBe(0)
    expect(Intents.from(...names)).toBe(AllIntents)
    expect(hasIntent(value, Intents.GuildMessages)).toBe(true)
    expect(hasIntent(value, Intents.GuildMembers)).toBe(false)
    expect(hasIntent(value, Intents.Guilds | Intents.GuildMessages)).toBe(true)
    expect(hasIntent(value, Intents.Guilds | Intents.GuildMembers)).toBe(false)
  })
})

describe("validateIntents (close 4013 prevented locally)", () => {
  const failure = (value: number): InvalidIntentsConfig => {
    const result = validateIntents(value)
    if (Result.isSuccess(result)) throw new Error(`expected ${value} to be refused`)
    return result.failure
  }

  it("accepts 0, every single bit and the full set", () => {
    expect(validateIntents(0)).toEqual(Result.succeed(0))
    expect(validateIntents(AllIntents)).toEqual(Result.succeed(AllIntents))
    for (const name of names) expect(Result.isSuccess(validateIntents(IntentBits[name]))).toBe(true)
  })

  it("refuses undocumented bits and names them", () => {
    const error = failure(Intents.Guilds | (1 << 17) | (1 << 23))
    expect(error).toBeInstanceOf(InvalidIntentsConfig)
    expect(error._tag).toBe("InvalidIntentsConfig")
    expect(error.reason).toBe("undocumented-bits")
    expect(error.unknownBits).toEqual([17, 23])
    expect(error.message).toContain("17 (131072)")
    expect(error.message).toContain("23 (8388608)")
    expect(error.message).toContain("4013")
    expect(error.message).toContain("Intents.from")
  })

  it("refuses bits above 31 (where 32-bit operators would wrap)", () => {
    expect(failure(2 ** 40 + 1).unknownBits).toEqual([40])
    expect(failure(2 ** 31).unknownBits).toEqual([31])
    expect(failure(2 ** 32 + AllIntents).unknownBits).toEqual([32])
  })

  it("refuses non-integers and negatives", () => {
    for (const value of [1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 60]) {
      const error = failure(value)
      expect(error.reason).toBe("not-an-integer")
      expect(error.message).toContain("non-negative integer")
    }
    const negative = failure(-1)
    expect(negative.reason).toBe("negative")
    expect(negative.message).toContain("-1")
  })

  it.effect.prop("any combination of documented names validates to itself", {
    picked: Schema.Array(Schema.Literals(names))
  }, ({ picked }) =>
    Effect.sync(() => {
      const value = Intents.from(...picked)
      return Result.isSuccess(validateIntents(value)) && picked.every((name) => hasIntent(value, IntentBits[name]))
    }))
})
