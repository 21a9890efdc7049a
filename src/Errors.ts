/**
 * The typed errors of the gateway runtime.
 *
 * Fatal close codes (PROTOCOL.md §2: 4004, 4010–4014) each have their own error so users can match the one
 * they must fix; every message says what to do. No error ever carries the token (it is `Redacted` in
 * configuration and never copied into an error, a log line or a URL).
 */
import { Schema } from "effect"

const fatalFields = {
  shardId: Schema.Int,
  shardCount: Schema.Int,
  code: Schema.Int,
  reason: Schema.String
}

/** Close 4004: the token is wrong, revoked, or was reset (e.g. after the daily identify budget was exceeded). */
export class AuthenticationFailed extends Schema.TaggedError<AuthenticationFailed>()("AuthenticationFailed", fatalFields) {
  override get message() {
    return `shard ${this.shardId}/${this.shardCount}: authentication failed (close 4004). Check DISCORD_TOKEN: it is wrong, revoked or was reset.`
  }
}

/** Close 4010: the `[shard_id, num_shards]` tuple is invalid (for large bots: count not a multiple of the assigned number). */
export class InvalidShard extends Schema.TaggedError<InvalidShard>()("InvalidShard", fatalFields) {
  override get message() {
    return `shard ${this.shardId}/${this.shardCount}: invalid shard (close 4010). Use the shard count from GET /gateway/bot (large bots: a multiple of the number Discord assigned).`
  }
}

/** Close 4011: this shard would hold too many guilds; the shard count must grow (resharding). */
export class ShardingRequired extends Schema.TaggedError<ShardingRequired>()("ShardingRequired", fatalFields) {
  override get message() {
    return `shard ${this.shardId}/${this.shardCount}: sharding required (close 4011). Reshard to a larger count (GET /gateway/bot recommends one).`
  }
}

/** Close 4012: the gateway URL asked for an API version Discord does not serve. */
export class InvalidApiVersion extends Schema.TaggedError<InvalidApiVersion>()("InvalidApiVersion", fatalFields) {
  override get message() {
    return `shard ${this.shardId}/${this.shardCount}: invalid API version (close 4012). Connect with v=10.`
  }
}

/** Close 4013: the intents value contains bits Discord does not know. */
export class InvalidIntents extends Schema.TaggedError<InvalidIntents>()("InvalidIntents", fatalFields) {
  override get message() {
    return `shard ${this.shardId}/${this.shardCount}: invalid intents (close 4013). Build the intents value from the Intents bits only.`
  }
}

/** Close 4014: a privileged intent is requested that the application is not allowed to use. */
export class DisallowedIntents extends Schema.TaggedError<DisallowedIntents>()("DisallowedIntents", fatalFields) {
  override get message() {
    return `shard ${this.shardId}/${this.shardCount}: disallowed intents (close 4014). Enable the privileged intents (GUILD_MEMBERS, GUILD_PRESENCES, MESSAGE_CONTENT) in the Developer Portal, or stop requesting them.`
  }
}

/** Every fatal close: the shard opens no further connection and ends with one of these. */
export type FatalCloseError =
  | AuthenticationFailed
  | InvalidShard
  | ShardingRequired
  | InvalidApiVersion
  | InvalidIntents
  | DisallowedIntents

/** A client frame larger than the gateway's 4096-byte limit (PROTOCOL.md §5.1): refused locally, never sent. */
export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()("PayloadTooLarge", {
  op: Schema.Int,
  bytes: Schema.Int,
  limit: Schema.Int
}) {
  override get message() {
    return `op ${this.op} payload is ${this.bytes} bytes once encoded; the gateway accepts at most ${this.limit}. Split the command (e.g. fewer user_ids or activities).`
  }
}

/** A server frame that is not valid JSON, or whose payload does not match its opcode's schema. */
export class FrameDecodeError extends Schema.TaggedError<FrameDecodeError>()("FrameDecodeError", {
  op: Schema.NullOr(Schema.Int),
  event: Schema.NullOr(Schema.String),
  detail: Schema.String
}) {
  override get message() {
    return `malformed gateway frame (op ${this.op ?? "?"}${this.event === null ? "" : ` ${this.event}`}): ${this.detail}`
  }
}

/** A command that is not valid for its opcode (PROTOCOL.md §6.2), rejected before it is queued. */
export class InvalidCommand extends Schema.TaggedError<InvalidCommand>()("InvalidCommand", {
  op: Schema.Int,
  detail: Schema.String
}) {
  override get message() {
    return `invalid op ${this.op} command: ${this.detail}`
  }
}

/** The WebSocket could not be opened (refused, DNS, TLS, timeout). The URL never contains the token. */
export class ConnectFailed extends Schema.TaggedError<ConnectFailed>()("ConnectFailed", {
  url: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `could not connect to ${this.url}: ${this.detail}`
  }
}

/** The connection ended. `code` is the close code (1006 when the connection dropped without one). */
export class ConnectionClosed extends Schema.TaggedError<ConnectionClosed>()("ConnectionClosed", {
  code: Schema.Int,
  reason: Schema.String,
  /** Who closed: the server, this client, or nobody (the transport dropped). */
  by: Schema.Literals(["server", "client", "transport"])
}) {
  override get message() {
    return `gateway connection closed by ${this.by} with ${this.code}${this.reason === "" ? "" : ` (${this.reason})`}`
  }
}

/** The session store could not read or write a session. */
export class SessionStoreError extends Schema.TaggedError<SessionStoreError>()("SessionStoreError", {
  operation: Schema.Literals(["get", "set", "remove"]),
  key: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `session store ${this.operation} ${this.key} failed: ${this.detail}`
  }
}

/** A dispatch subscriber with the "fail" overflow strategy fell behind: its buffer was full. */
export class SubscriberOverflow extends Schema.TaggedError<SubscriberOverflow>()("SubscriberOverflow", {
  capacity: Schema.Int
}) {
  override get message() {
    return `dispatch subscriber fell behind: its buffer of ${this.capacity} was full. Consume faster, raise its capacity, or choose the "suspend", "sliding" or "dropping" overflow strategy.`
  }
}

/** The shard is stopped (or stopping): it accepts no more commands. */
export class ShardStopped extends Schema.TaggedError<ShardStopped>()("ShardStopped", {
  shardId: Schema.Int
}) {
  override get message() {
    return `shard ${this.shardId} is stopped; it accepts no commands`
  }
}

/** A command or control call named a shard this process does not run (or has stopped). */
export class ShardNotRunning extends Schema.TaggedError<ShardNotRunning>()("ShardNotRunning", {
  shardId: Schema.Int,
  detail: Schema.String
}) {
  override get message() {
    return `shard ${this.shardId} is not running here: ${this.detail}`
  }
}

/** A reshard did not happen; the running shard set was left untouched. */
export class ReshardFailed extends Schema.TaggedError<ReshardFailed>()("ReshardFailed", {
  from: Schema.Int,
  to: Schema.NullOr(Schema.Int),
  reason: Schema.Literals(["in-progress", "ended", "discovery", "layout", "budget", "not-ready", "fatal"]),
  detail: Schema.String
}) {
  override get message() {
    return `reshard ${this.from} → ${this.to ?? "?"} did not happen (${this.reason}): ${this.detail}. The running shards were left untouched.`
  }
}
