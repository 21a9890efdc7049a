/**
 * Type-level checks of the dispatch event map: `tsc --noEmit` fails if any assertion breaks.
 * The runtime test only keeps vitest from reporting an empty file.
 */
import { describe, expect, it } from "@effect/vitest"
import { expectTypeOf } from "vitest"
import type { DispatchEventName, DispatchEvents, GuildCreateEvent } from "../../src/protocol/Events.ts"
import type {
  GuildCreateData,
  GuildDeleteData,
  GuildMembersChunkData,
  RateLimitedData,
  ReadyData
} from "../../src/protocol/Payloads.ts"

type Required =
  | "READY" | "RESUMED" | "GUILD_CREATE" | "GUILD_UPDATE" | "GUILD_DELETE" | "GUILD_MEMBERS_CHUNK"
  | "GUILD_MEMBER_ADD" | "GUILD_MEMBER_UPDATE" | "GUILD_MEMBER_REMOVE"
  | "GUILD_ROLE_CREATE" | "GUILD_ROLE_UPDATE" | "GUILD_ROLE_DELETE"
  | "CHANNEL_CREATE" | "CHANNEL_UPDATE" | "CHANNEL_DELETE" | "THREAD_CREATE" | "THREAD_UPDATE" | "THREAD_DELETE"
  | "MESSAGE_CREATE" | "MESSAGE_UPDATE" | "MESSAGE_DELETE" | "MESSAGE_DELETE_BULK"
  | "MESSAGE_REACTION_ADD" | "MESSAGE_REACTION_REMOVE" | "TYPING_START" | "PRESENCE_UPDATE" | "INTERACTION_CREATE"
  | "VOICE_STATE_UPDATE" | "VOICE_SERVER_UPDATE" | "USER_UPDATE" | "RATE_LIMITED" | "SOUNDBOARD_SOUNDS" | "CHANNEL_INFO"

describe("DispatchEvents (types)", () => {
  it("covers every required event name and nothing is `any`", () => {
    expectTypeOf<Required>().toExtend<DispatchEventName>()
    expectTypeOf<DispatchEvents["MESSAGE_CREATE"]>().not.toBeAny()
    expectTypeOf<DispatchEvents[DispatchEventName]>().not.toBeAny()
    expect(true).toBe(true)
  })

  it("gives precise field types", () => {
    expectTypeOf<DispatchEvents["MESSAGE_CREATE"]["content"]>().toEqualTypeOf<string>()
    expectTypeOf<DispatchEvents["MESSAGE_CREATE"]["guild_id"]>().toEqualTypeOf<string | undefined>()
    expectTypeOf<DispatchEvents["MESSAGE_UPDATE"]["author"]["id"]>().toEqualTypeOf<string>()
    expectTypeOf<DispatchEvents["GUILD_MEMBER_ADD"]["user"]["username"]>().toEqualTypeOf<string>()
    expectTypeOf<DispatchEvents["VOICE_SERVER_UPDATE"]["endpoint"]>().toEqualTypeOf<string | null>()
    expectTypeOf<DispatchEvents["VOICE_STATE_UPDATE"]["channel_id"]>().toEqualTypeOf<string | null>()
    expectTypeOf<DispatchEvents["TYPING_START"]["timestamp"]>().toEqualTypeOf<number>()
    expectTypeOf<DispatchEvents["PRESENCE_UPDATE"]["user"]["id"]>().toEqualTypeOf<string>()
    expectTypeOf<DispatchEvents["PRESENCE_UPDATE"]["user"]["username"]>().toEqualTypeOf<string | undefined>()
    expectTypeOf<DispatchEvents["MESSAGE_DELETE_BULK"]["ids"]>().toEqualTypeOf<ReadonlyArray<string>>()
    expectTypeOf<DispatchEvents["CHANNEL_INFO"]["channels"][number]["voice_start_time"]>()
      .toEqualTypeOf<number | null | undefined>()
  })

  it("reuses the Payloads schema types for the events the runtime decodes", () => {
    expectTypeOf<DispatchEvents["READY"]>().toEqualTypeOf<ReadyData>()
    expectTypeOf<DispatchEvents["GUILD_DELETE"]>().toEqualTypeOf<GuildDeleteData>()
    expectTypeOf<DispatchEvents["RATE_LIMITED"]>().toEqualTypeOf<RateLimitedData>()
    expectTypeOf<DispatchEvents["GUILD_CREATE"]>().toExtend<GuildCreateData>()
    expectTypeOf<DispatchEvents["GUILD_MEMBERS_CHUNK"]>().toExtend<GuildMembersChunkData>()
    expectTypeOf<DispatchEvents["READY"]["session_id"]>().toEqualTypeOf<string>()
    expectTypeOf<DispatchEvents["RESUMED"]>().toBeUnknown()
  })

  it("GUILD_CREATE narrows on `unavailable`", () => {
    const name = (guild: GuildCreateEvent): string | undefined => guild.unavailable === true ? undefined : guild.name
    expectTypeOf(name).returns.toEqualTypeOf<string | undefined>()
    expect(name({ id: "1", unavailable: true })).toBeUndefined()
  })
})
