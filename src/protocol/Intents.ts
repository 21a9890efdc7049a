/**
 * Gateway intents (PROTOCOL.md §7): the bitfield sent in IDENTIFY that selects which events arrive.
 *
 * Every documented intent is a named bit. `validateIntents` refuses a value Discord would reject
 * with close 4013 (undocumented bits, non-integers, negatives) before any connection is opened;
 * `privilegedIn` names the bits that need approval in the Developer Portal (else close 4014).
 */
import { Result, Schema } from "effect"

/** The documented intent bits, by name (§7 table). Bits 17–19 and 22–23 are undocumented. */
export const IntentBits = {
  Guilds: 1 << 0,
  /** Privileged. */
  GuildMembers: 1 << 1,
  GuildModeration: 1 << 2,
  GuildExpressions: 1 << 3,
  GuildIntegrations: 1 << 4,
  GuildWebhooks: 1 << 5,
  GuildInvites: 1 << 6,
  GuildVoiceStates: 1 << 7,
  /** Privileged. */
  GuildPresences: 1 << 8,
  GuildMessages: 1 << 9,
  GuildMessageReactions: 1 << 10,
  GuildMessageTyping: 1 << 11,
  DirectMessages: 1 << 12,
  DirectMessageReactions: 1 << 13,
  DirectMessageTyping: 1 << 14,
  /** Privileged: fills content/embeds/attachments/components/poll of messages. */
  MessageContent: 1 << 15,
  GuildScheduledEvents: 1 << 16,
  AutoModerationConfiguration: 1 << 20,
  AutoModerationExecution: 1 << 21,
  GuildMessagePolls: 1 << 24,
  DirectMessagePolls: 1 << 25
} as const

export type IntentName = keyof typeof IntentBits

const intentNames = Object.keys(IntentBits) as ReadonlyArray<IntentName>

const privilegedNames: ReadonlyArray<IntentName> = ["GuildMembers", "GuildPresences", "MessageContent"]

const orAll = (names: ReadonlyArray<IntentName>): number => {
  let value = 0
  for (const name of names) value |= IntentBits[name]
  return value
}

/** GuildMembers | GuildPresences | MessageContent = 33026. */
export const PrivilegedIntents: number = orAll(privilegedNames)

/** Every documented bit = 53608447. */
export const AllIntents: number = orAll(intentNames)

/** Every documented bit that needs no approval. */
export const NonPrivilegedIntents: number = AllIntents & ~PrivilegedIntents

/** Builds the bitfield from intent names: `intentsFrom("Guilds", "GuildMessages")` = 513. */
export const intentsFrom = (...names: ReadonlyArray<IntentName>): number => orAll(names)

/** The bits by name plus `Intents.from(...names)`. */
export const Intents = { ...IntentBits, from: intentsFrom } as const

/** Whether every bit of `bit` is set in `value`. */
export const hasIntent = (value: number, bit: number): boolean => (value & bit) === bit

/** The privileged intents `value` requests, by name (empty when none). */
export const privilegedIn = (value: number): ReadonlyArray<IntentName> =>
  privilegedNames.filter((name) => hasIntent(value, IntentBits[name]))

/** An intents value Discord would refuse with close 4013; detected before connecting. */
export class InvalidIntentsConfig extends Schema.TaggedError<InvalidIntentsConfig>()("InvalidIntentsConfig", {
  // the rejected value itself, which may be NaN or ±Infinity
  // @effect-diagnostics-next-line schemaNumber:off
  value: Schema.Number,
  reason: Schema.Literals(["not-an-integer", "negative", "undocumented-bits"]),
  /** Bit positions set in `value` that Discord does not document (for `undocumented-bits`). */
  unknownBits: Schema.Array(Schema.Int)
}) {
  override get message() {
    const fix = `Build it with Intents.from("Guilds", "GuildMessages", …) from the documented names (PROTOCOL.md §7).`
    switch (this.reason) {
      case "not-an-integer":
        return `intents must be a non-negative integer bitfield, got ${this.value}. ${fix}`
      case "negative":
        return `intents must not be negative, got ${this.value}. ${fix}`
      case "undocumented-bits": {
        const bits = this.unknownBits.map((bit) => `${bit} (${2 ** bit})`).join(", ")
        return `intents ${this.value} sets undocumented bit(s) ${bits}; Discord would close with 4013. Clear them. ${fix}`
      }
    }
  }
}

const documented = BigInt(AllIntents)

/** Accepts a value made only of documented bits; otherwise says which bits are wrong. */
export const validateIntents = (value: number): Result.Result<number, InvalidIntentsConfig> => {
  if (!Number.isSafeInteger(value)) {
    return Result.fail(new InvalidIntentsConfig({ value, reason: "not-an-integer", unknownBits: [] }))
  }
  if (value < 0) {
    return Result.fail(new InvalidIntentsConfig({ value, reason: "negative", unknownBits: [] }))
  }
  if ((value & AllIntents) === value) return Result.succeed(value)
  // above 2^31 the 32-bit `&` truncates, so collect the stray bits with BigInt
  let stray = BigInt(value) & ~documented
  const unknownBits: Array<number> = []
  for (let bit = 0; stray > 0n; bit++, stray >>= 1n) {
    if ((stray & 1n) === 1n) unknownBits.push(bit)
  }
  return Result.fail(new InvalidIntentsConfig({ value, reason: "undocumented-bits", unknownBits }))
}
