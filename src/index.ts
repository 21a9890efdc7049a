/**
 * effect-discord-gateway: the Discord gateway runtime for Effect 4.
 *
 * The public surface. Test kit (the gateway simulator) lives in `effect-discord-gateway/testing`.
 */
export { Cache, type CachedGuild, type CacheService } from "./Cache.ts"
export * as CloseCode from "./protocol/CloseCode.ts"
export * as Dispatch from "./Dispatch.ts"
export {
  DispatchSink,
  type DispatchSinkOptions,
  type DispatchStreamError,
  type OverflowStrategy,
  type SubscribeOptions
} from "./DispatchSink.ts"
export * from "./Errors.ts"
export type * as Events from "./protocol/Events.ts"
export {
  Gateway,
  type GatewayCommandError,
  type GatewayLayerOptions,
  type GatewayRuntimeOptions,
  type GatewayService,
  type GuildCommand
} from "./Gateway.ts"
export * as GatewayConfig from "./GatewayConfig.ts"
export {
  type GatewayBot,
  GatewayBotUnauthorized,
  GatewayInfo,
  GatewayInfoError,
  type GatewayInfoFailure
} from "./GatewayInfo.ts"
export type { GatewayShardStatus, GatewayStatus } from "./GatewayStatus.ts"
export { type GatewayConnection, GatewayTransport } from "./transport/GatewayTransport.ts"
export { type Frame, TextFrame } from "./transport/TextFrame.ts"
export type { Compression } from "./transport/GatewayUrl.ts"
export { type HeartbeatTarget, HeartbeatTimer, type HeartbeatTimerService } from "./HeartbeatTimer.ts"
export { IdentifyRateLimiter, type SessionStartLimit } from "./IdentifyRateLimiter.ts"
export {
  AllIntents,
  hasIntent,
  type IntentName,
  Intents,
  intentsFrom,
  InvalidIntentsConfig,
  NonPrivilegedIntents,
  PrivilegedIntents,
  privilegedIn,
  validateIntents
} from "./protocol/Intents.ts"
export {
  MemberRequestError,
  type MemberRequestFailure,
  type MemberRequestOptions
} from "./MemberRequests.ts"
export * as Metrics from "./Metrics.ts"
export * as NodeTransport from "./transport/NodeTransport.ts"
export { GatewayOpcode } from "./protocol/Opcode.ts"
export * as Payloads from "./protocol/Payloads.ts"
export { type SessionKey, SessionStore, type StoredSession } from "./SessionStore.ts"
export * as Shard from "./Shard.ts"
export type { ShardPhase, ShardState } from "./ShardState.ts"
export { type ShardLayout, ShardLayoutError, ShardStrategy, type StrategyInput } from "./ShardStrategy.ts"
export * as Snowflake from "./protocol/Snowflake.ts"
