/**
 * The gateway opcodes (PROTOCOL.md §1.3): the `op` field of every frame.
 *
 * Only the documented numbers are listed. Op 5 and every other number are undocumented for bots; a
 * client ignores them when they arrive and never sends them.
 */

export const GatewayOpcode = {
  /** S→C: an event (`t` = event name, `s` = sequence). */
  Dispatch: 0,
  /** Both ways: C→S the periodic heartbeat (`d` = last seq or null); S→C "heartbeat now". */
  Heartbeat: 1,
  /** C→S: start a new session. */
  Identify: 2,
  /** C→S: update the bot's presence. */
  PresenceUpdate: 3,
  /** C→S: join, move between or leave voice channels. */
  VoiceStateUpdate: 4,
  /** C→S: resume a session after a reconnect. */
  Resume: 6,
  /** S→C: reconnect and resume. */
  Reconnect: 7,
  /** C→S: ask for guild members (answered by GUILD_MEMBERS_CHUNK). */
  RequestGuildMembers: 8,
  /** S→C: the session is invalid; `d` tells whether it may be resumed. */
  InvalidSession: 9,
  /** S→C: first frame of a connection, carries `heartbeat_interval`. */
  Hello: 10,
  /** S→C: acknowledges a client heartbeat. */
  HeartbeatAck: 11,
  /** C→S: ask for the soundboard sounds of guilds (answered by SOUNDBOARD_SOUNDS). */
  RequestSoundboardSounds: 31,
  /** C→S: ask for channel status / voice start times of a guild (answered by CHANNEL_INFO). */
  RequestChannelInfo: 43
} as const

export type GatewayOpcode = typeof GatewayOpcode[keyof typeof GatewayOpcode]
