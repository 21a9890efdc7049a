/**
 * The simulated guild members that answer Request Guild Members (op 8) with GUILD_MEMBERS_CHUNK
 * dispatches (PROTOCOL.md §6.1–§6.2): `chunk_index`/`chunk_count`, the request's nonce, `not_found` for
 * unknown user ids, `presences` when asked for and allowed.
 *
 * Every guild has the same `membersPerGuild` generated members: member `i` (0-based) has the user id
 * `MemberIdBase + i` and the username `member-<i+1>`. Nothing is stored; members are produced per
 * request, and a user-id lookup is arithmetic, not a scan.
 */
import type { MembersRequest } from "./SimulatorCommands.ts"

/** The user id of generated member 0. */
export const MemberIdBase = 300000000000000000n

/** The `joined_at` of every generated member. */
const JoinedAt = "2020-01-01T00:00:00.000000+00:00"

/** A generated guild member object. */
export interface SimulatedMember {
  readonly user: { readonly id: string; readonly username: string }
  readonly roles: ReadonlyArray<string>
  readonly joined_at: string
  readonly deaf: boolean
  readonly mute: boolean
}

const member = (index: number): SimulatedMember => ({
  user: { id: String(MemberIdBase + BigInt(index)), username: `member-${index + 1}` },
  roles: [],
  joined_at: JoinedAt,
  deaf: false,
  mute: false
})

/** The members a request selects, and the requested user ids that are not members. */
export const selectMembers = (
  request: MembersRequest,
  membersPerGuild: number
): { readonly members: ReadonlyArray<SimulatedMember>; readonly notFound: ReadonlyArray<string> | undefined } => {
  if (request.userIds !== undefined) {
    const members: Array<SimulatedMember> = []
    const notFound: Array<string> = []
    for (const id of request.userIds) {
      const index = BigInt(id) - MemberIdBase
      if (index >= 0n && index < BigInt(membersPerGuild)) members.push(member(Number(index)))
      else notFound.push(id)
    }
    return { members, notFound }
  }
  const query = (request.query ?? "").toLowerCase()
  // `query: ""` + `limit: 0` asks for everyone; otherwise at most `limit`, capped at 100 (PROTOCOL.md §6.2)
  const max = query === "" && request.limit === 0 ? membersPerGuild : Math.min(request.limit === 0 ? 100 : request.limit, 100)
  const members: Array<SimulatedMember> = []
  for (let i = 0; i < membersPerGuild && members.length < max; i++) {
    if (query === "" || `member-${i + 1}`.startsWith(query)) members.push(member(i))
  }
  return { members, notFound: undefined }
}

/** The `d` of each GUILD_MEMBERS_CHUNK answering a request, in order (at least one, even when empty). */
export const memberChunks = (
  request: MembersRequest,
  selection: ReturnType<typeof selectMembers>,
  chunkSize: number,
  withPresences: boolean
): Array<Record<string, unknown>> => {
  const count = Math.max(1, Math.ceil(selection.members.length / chunkSize))
  const chunks: Array<Record<string, unknown>> = []
  for (let index = 0; index < count; index++) {
    const d: Record<string, unknown> = {
      guild_id: request.guildId,
      members: selection.members.slice(index * chunkSize, (index + 1) * chunkSize),
      chunk_index: index,
      chunk_count: count
    }
    if (index === 0 && selection.notFound !== undefined) d.not_found = selection.notFound
    if (withPresences) d.presences = []
    if (request.nonce !== undefined) d.nonce = request.nonce
    chunks.push(d)
  }
  return chunks
}
