/**
 * The types of dispatch (op 0) data that users receive, keyed by event name `t` (PROTOCOL.md §6.1).
 *
 * Types only: nothing here is checked at runtime. Events the runtime decodes itself (READY, RESUMED,
 * GUILD_CREATE/DELETE, GUILD_MEMBERS_CHUNK, RATE_LIMITED) reuse or extend the Payloads schema types.
 * The others follow Discord's documented fields; fields Discord often omits are optional, and deep
 * structures this runtime does not model (message components, polls, …) are `unknown`.
 */
import type {
  GuildCreateData,
  GuildDeleteData,
  GuildMembersChunkData,
  RateLimitedData,
  ReadyData,
  ResumedData
} from "./Payloads.ts"
import type { Snowflake } from "./Snowflake.ts"

// ---------------------------------------------------------------------------------------------
// Objects shared by several events
// ---------------------------------------------------------------------------------------------

export interface AvatarDecorationData {
  readonly asset: string
  readonly sku_id: Snowflake
}

export interface User {
  readonly id: Snowflake
  readonly username: string
  readonly discriminator: string
  readonly global_name: string | null
  readonly avatar: string | null
  readonly bot?: boolean
  readonly system?: boolean
  readonly mfa_enabled?: boolean
  readonly banner?: string | null
  readonly accent_color?: number | null
  readonly locale?: string
  readonly verified?: boolean
  readonly email?: string | null
  readonly flags?: number
  readonly premium_type?: number
  readonly public_flags?: number
  readonly avatar_decoration_data?: AvatarDecorationData | null
}

export interface GuildMember {
  /** Absent where the member is attached to a user already (message `member`, mentions). */
  readonly user?: User
  readonly nick?: string | null
  readonly avatar?: string | null
  readonly banner?: string | null
  readonly roles: ReadonlyArray<Snowflake>
  /** ISO 8601; null for guest members. */
  readonly joined_at: string | null
  readonly premium_since?: string | null
  readonly deaf: boolean
  readonly mute: boolean
  readonly flags: number
  readonly pending?: boolean
  /** Only where the member comes with an interaction. */
  readonly permissions?: string
  readonly communication_disabled_until?: string | null
  readonly avatar_decoration_data?: AvatarDecorationData | null
}

/** The partial member attached to messages and mentions: no `user`, voice flags may be missing. */
export interface PartialGuildMember extends Omit<GuildMember, "user" | "deaf" | "mute"> {
  readonly deaf?: boolean
  readonly mute?: boolean
}

export interface RoleTags {
  readonly bot_id?: Snowflake
  readonly integration_id?: Snowflake
  /** Present (as null) when the role is the booster role. */
  readonly premium_subscriber?: null
  readonly subscription_listing_id?: Snowflake
  readonly available_for_purchase?: null
  readonly guild_connections?: null
}

export interface RoleColors {
  readonly primary_color: number
  readonly secondary_color: number | null
  readonly tertiary_color: number | null
}

export interface Role {
  readonly id: Snowflake
  readonly name: string
  /** Deprecated in favour of `colors`, still sent. */
  readonly color: number
  readonly colors?: RoleColors
  readonly hoist: boolean
  readonly icon?: string | null
  readonly unicode_emoji?: string | null
  readonly position: number
  readonly permissions: string
  readonly managed: boolean
  readonly mentionable: boolean
  readonly tags?: RoleTags
  readonly flags: number
}

/** A custom emoji (`id` set) or a unicode one (`id: null`, `name` = the character). */
export interface Emoji {
  readonly id: Snowflake | null
  readonly name: string | null
  readonly roles?: ReadonlyArray<Snowflake>
  readonly user?: User
  readonly require_colons?: boolean
  readonly managed?: boolean
  readonly animated?: boolean
  readonly available?: boolean
}

export interface Sticker {
  readonly id: Snowflake
  readonly pack_id?: Snowflake
  readonly name: string
  readonly description: string | null
  readonly tags: string
  readonly type: number
  readonly format_type: number
  readonly available?: boolean
  readonly guild_id?: Snowflake
  readonly user?: User
  readonly sort_value?: number
}

export interface StickerItem {
  readonly id: Snowflake
  readonly name: string
  readonly format_type: number
}

export interface PermissionOverwrite {
  readonly id: Snowflake
  /** 0 = role, 1 = member. */
  readonly type: number
  readonly allow: string
  readonly deny: string
}

export interface ThreadMetadata {
  readonly archived: boolean
  readonly auto_archive_duration: number
  readonly archive_timestamp: string
  readonly locked: boolean
  readonly invitable?: boolean
  readonly create_timestamp?: string | null
}

export interface ThreadMember {
  readonly id?: Snowflake
  readonly user_id?: Snowflake
  readonly join_timestamp: string
  readonly flags: number
  readonly member?: GuildMember
}

export interface ForumTag {
  readonly id: Snowflake
  readonly name: string
  readonly moderated: boolean
  readonly emoji_id: Snowflake | null
  readonly emoji_name: string | null
}

/** Any channel or thread; which fields are present depends on `type`. */
export interface Channel {
  readonly id: Snowflake
  readonly type: number
  readonly guild_id?: Snowflake
  readonly position?: number
  readonly permission_overwrites?: ReadonlyArray<PermissionOverwrite>
  readonly name?: string | null
  readonly topic?: string | null
  readonly nsfw?: boolean
  readonly last_message_id?: Snowflake | null
  readonly bitrate?: number
  readonly user_limit?: number
  readonly rate_limit_per_user?: number
  readonly recipients?: ReadonlyArray<User>
  readonly icon?: string | null
  readonly owner_id?: Snowflake
  readonly application_id?: Snowflake
  readonly managed?: boolean
  readonly parent_id?: Snowflake | null
  readonly last_pin_timestamp?: string | null
  readonly rtc_region?: string | null
  readonly video_quality_mode?: number
  readonly message_count?: number
  readonly member_count?: number
  readonly thread_metadata?: ThreadMetadata
  readonly member?: ThreadMember
  readonly default_auto_archive_duration?: number
  readonly permissions?: string
  readonly flags?: number
  readonly total_message_sent?: number
  readonly available_tags?: ReadonlyArray<ForumTag>
  readonly applied_tags?: ReadonlyArray<Snowflake>
  readonly default_reaction_emoji?: { readonly emoji_id: Snowflake | null; readonly emoji_name: string | null } | null
  readonly default_thread_rate_limit_per_user?: number
  readonly default_sort_order?: number | null
  readonly default_forum_layout?: number
}

export interface Attachment {
  readonly id: Snowflake
  readonly filename: string
  readonly title?: string
  readonly description?: string
  readonly content_type?: string
  readonly size: number
  readonly url: string
  readonly proxy_url: string
  readonly height?: number | null
  readonly width?: number | null
  readonly ephemeral?: boolean
  readonly duration_secs?: number
  readonly waveform?: string
  readonly flags?: number
}

export interface EmbedMedia {
  readonly url: string
  readonly proxy_url?: string
  readonly height?: number
  readonly width?: number
}

export interface Embed {
  readonly title?: string
  readonly type?: string
  readonly description?: string
  readonly url?: string
  readonly timestamp?: string
  readonly color?: number
  readonly footer?: { readonly text: string; readonly icon_url?: string; readonly proxy_icon_url?: string }
  readonly image?: EmbedMedia
  readonly thumbnail?: EmbedMedia
  readonly video?: Partial<EmbedMedia>
  readonly provider?: { readonly name?: string; readonly url?: string }
  readonly author?: { readonly name: string; readonly url?: string; readonly icon_url?: string; readonly proxy_icon_url?: string }
  readonly fields?: ReadonlyArray<{ readonly name: string; readonly value: string; readonly inline?: boolean }>
}

export interface Reaction {
  readonly count: number
  readonly count_details: { readonly burst: number; readonly normal: number }
  readonly me: boolean
  readonly me_burst: boolean
  readonly emoji: Emoji
  readonly burst_colors: ReadonlyArray<string>
}

export interface MessageReference {
  readonly type?: number
  readonly message_id?: Snowflake
  readonly channel_id?: Snowflake
  readonly guild_id?: Snowflake
  readonly fail_if_not_exists?: boolean
}

export interface ChannelMention {
  readonly id: Snowflake
  readonly guild_id: Snowflake
  readonly type: number
  readonly name: string
}

export interface Message {
  readonly id: Snowflake
  readonly channel_id: Snowflake
  readonly author: User
  /** Empty unless the bot has MESSAGE_CONTENT, is mentioned, or the message is a DM. */
  readonly content: string
  readonly timestamp: string
  readonly edited_timestamp: string | null
  readonly tts: boolean
  readonly mention_everyone: boolean
  readonly mentions: ReadonlyArray<User>
  readonly mention_roles: ReadonlyArray<Snowflake>
  readonly mention_channels?: ReadonlyArray<ChannelMention>
  readonly attachments: ReadonlyArray<Attachment>
  readonly embeds: ReadonlyArray<Embed>
  readonly reactions?: ReadonlyArray<Reaction>
  readonly nonce?: string | number
  readonly pinned: boolean
  readonly webhook_id?: Snowflake
  readonly type: number
  readonly activity?: { readonly type: number; readonly party_id?: string }
  readonly application_id?: Snowflake
  readonly flags?: number
  readonly message_reference?: MessageReference
  /** Present (possibly null) on replies and thread starters. */
  readonly referenced_message?: Message | null
  readonly thread?: Channel
  readonly sticker_items?: ReadonlyArray<StickerItem>
  readonly position?: number
  /** Not modelled here. */
  readonly application?: unknown
  readonly interaction_metadata?: unknown
  readonly components?: ReadonlyArray<unknown>
  readonly message_snapshots?: ReadonlyArray<unknown>
  readonly role_subscription_data?: unknown
  readonly resolved?: unknown
  readonly poll?: unknown
  readonly call?: unknown
}

export interface VoiceState {
  readonly guild_id?: Snowflake
  readonly channel_id: Snowflake | null
  readonly user_id: Snowflake
  readonly member?: GuildMember
  readonly session_id: string
  readonly deaf: boolean
  readonly mute: boolean
  readonly self_deaf: boolean
  readonly self_mute: boolean
  readonly self_stream?: boolean
  readonly self_video: boolean
  readonly suppress: boolean
  readonly request_to_speak_timestamp: string | null
}

/** An activity as received in presences (richer than what a bot may send). */
export interface Activity {
  readonly name: string
  readonly type: number
  readonly url?: string | null
  readonly created_at: number
  readonly timestamps?: { readonly start?: number; readonly end?: number }
  readonly application_id?: Snowflake
  readonly status_display_type?: number | null
  readonly details?: string | null
  readonly state?: string | null
  readonly emoji?: { readonly name: string; readonly id?: Snowflake; readonly animated?: boolean } | null
  readonly party?: { readonly id?: string; readonly size?: readonly [current: number, max: number] }
  readonly assets?: {
    readonly large_image?: string
    readonly large_text?: string
    readonly small_image?: string
    readonly small_text?: string
  }
  readonly instance?: boolean
  readonly flags?: number
  /** Button labels only. */
  readonly buttons?: ReadonlyArray<string>
}

export type ReceivedPresenceStatus = "online" | "dnd" | "idle" | "offline"

export interface ClientStatus {
  readonly desktop?: ReceivedPresenceStatus
  readonly mobile?: ReceivedPresenceStatus
  readonly web?: ReceivedPresenceStatus
  readonly embedded?: ReceivedPresenceStatus
}

/** The user of a presence: only `id` is guaranteed, nothing else is validated by Discord (§6.1). */
export interface PresenceUser extends Partial<User> {
  readonly id: Snowflake
}

export interface StageInstance {
  readonly id: Snowflake
  readonly guild_id: Snowflake
  readonly channel_id: Snowflake
  readonly topic: string
  readonly privacy_level: number
  readonly discoverable_disabled?: boolean
  readonly guild_scheduled_event_id: Snowflake | null
}

export interface SoundboardSound {
  readonly name: string
  readonly sound_id: Snowflake
  readonly volume: number
  readonly emoji_id: Snowflake | null
  readonly emoji_name: string | null
  readonly guild_id?: Snowflake
  readonly available: boolean
  readonly user?: User
}

export interface Guild {
  readonly id: Snowflake
  readonly name: string
  readonly icon: string | null
  readonly icon_hash?: string | null
  readonly splash: string | null
  readonly discovery_splash: string | null
  readonly owner_id: Snowflake
  readonly afk_channel_id: Snowflake | null
  readonly afk_timeout: number
  readonly widget_enabled?: boolean
  readonly widget_channel_id?: Snowflake | null
  readonly verification_level: number
  readonly default_message_notifications: number
  readonly explicit_content_filter: number
  readonly roles: ReadonlyArray<Role>
  readonly emojis: ReadonlyArray<Emoji>
  readonly features: ReadonlyArray<string>
  readonly mfa_level: number
  readonly application_id: Snowflake | null
  readonly system_channel_id: Snowflake | null
  readonly system_channel_flags: number
  readonly rules_channel_id: Snowflake | null
  readonly max_presences?: number | null
  readonly max_members?: number
  readonly vanity_url_code: string | null
  readonly description: string | null
  readonly banner: string | null
  readonly premium_tier: number
  readonly premium_subscription_count?: number
  readonly preferred_locale: string
  readonly public_updates_channel_id: Snowflake | null
  readonly max_video_channel_users?: number
  readonly max_stage_video_channel_users?: number
  readonly nsfw_level: number
  readonly stickers?: ReadonlyArray<Sticker>
  readonly premium_progress_bar_enabled: boolean
  readonly safety_alerts_channel_id: Snowflake | null
}

// ---------------------------------------------------------------------------------------------
// Event payloads
// ---------------------------------------------------------------------------------------------

/** PRESENCE_UPDATE (needs GUILD_PRESENCES). */
export interface PresenceUpdateEvent {
  readonly user: PresenceUser
  readonly guild_id: Snowflake
  readonly status: ReceivedPresenceStatus
  readonly activities: ReadonlyArray<Activity>
  readonly client_status: ClientStatus
}

/** A presence inside GUILD_CREATE / GUILD_MEMBERS_CHUNK (no `guild_id`). */
export type GuildPresence = Omit<PresenceUpdateEvent, "guild_id">

/** GUILD_CREATE for an available guild: the full guild plus the create-only fields. */
export interface AvailableGuildCreateEvent extends Guild, GuildCreateData {
  readonly unavailable?: false
  readonly joined_at: string
  readonly large: boolean
  readonly member_count: number
  readonly voice_states: ReadonlyArray<Omit<VoiceState, "guild_id">>
  readonly members: ReadonlyArray<GuildMember>
  readonly channels: ReadonlyArray<Channel>
  readonly threads: ReadonlyArray<Channel>
  readonly presences: ReadonlyArray<GuildPresence>
  readonly stage_instances: ReadonlyArray<StageInstance>
  /** Not modelled here. */
  readonly guild_scheduled_events: ReadonlyArray<unknown>
  readonly soundboard_sounds: ReadonlyArray<SoundboardSound>
}

/** GUILD_CREATE during an outage: only the id. */
export interface UnavailableGuildCreateEvent extends GuildCreateData {
  readonly unavailable: true
}

export type GuildCreateEvent = AvailableGuildCreateEvent | UnavailableGuildCreateEvent

export interface GuildMembersChunkEvent extends GuildMembersChunkData {
  readonly members: ReadonlyArray<GuildMember>
  readonly presences?: ReadonlyArray<GuildPresence>
}

export interface GuildMemberAddEvent extends GuildMember {
  readonly guild_id: Snowflake
  readonly user: User
}

export interface GuildMemberUpdateEvent {
  readonly guild_id: Snowflake
  readonly roles: ReadonlyArray<Snowflake>
  readonly user: User
  readonly nick?: string | null
  readonly avatar: string | null
  readonly banner?: string | null
  readonly joined_at: string | null
  readonly premium_since?: string | null
  readonly deaf?: boolean
  readonly mute?: boolean
  readonly pending?: boolean
  readonly communication_disabled_until?: string | null
  readonly flags?: number
  readonly avatar_decoration_data?: AvatarDecorationData | null
}

export interface GuildMemberRemoveEvent {
  readonly guild_id: Snowflake
  readonly user: User
}

export interface GuildRoleEvent {
  readonly guild_id: Snowflake
  readonly role: Role
}

export interface GuildRoleDeleteEvent {
  readonly guild_id: Snowflake
  readonly role_id: Snowflake
}

export interface ThreadCreateEvent extends Channel {
  /** Set when the thread was just created (absent when the bot was added to an existing one). */
  readonly newly_created?: boolean
}

export interface ThreadDeleteEvent {
  readonly id: Snowflake
  readonly guild_id: Snowflake
  readonly parent_id: Snowflake
  readonly type: number
}

/** MESSAGE_CREATE / MESSAGE_UPDATE: the message plus gateway-only fields. */
export interface MessageEvent extends Message {
  readonly guild_id?: Snowflake
  /** The author's member, for messages in guild text channels. */
  readonly member?: PartialGuildMember
  readonly mentions: ReadonlyArray<User & { readonly member?: PartialGuildMember }>
}

export interface MessageDeleteEvent {
  readonly id: Snowflake
  readonly channel_id: Snowflake
  readonly guild_id?: Snowflake
}

export interface MessageDeleteBulkEvent {
  readonly ids: ReadonlyArray<Snowflake>
  readonly channel_id: Snowflake
  readonly guild_id?: Snowflake
}

export interface MessageReactionRemoveEvent {
  readonly user_id: Snowflake
  readonly channel_id: Snowflake
  readonly message_id: Snowflake
  readonly guild_id?: Snowflake
  /** Partial: `id` and `name` (plus `animated` for custom emoji). */
  readonly emoji: Emoji
  readonly burst: boolean
  /** 0 = normal, 1 = burst. */
  readonly type: number
}

export interface MessageReactionAddEvent extends MessageReactionRemoveEvent {
  readonly member?: GuildMember
  readonly message_author_id?: Snowflake
  readonly burst_colors?: ReadonlyArray<string>
}

export interface TypingStartEvent {
  readonly channel_id: Snowflake
  readonly guild_id?: Snowflake
  readonly user_id: Snowflake
  /** Unix time in seconds. */
  readonly timestamp: number
  readonly member?: GuildMember
}

export interface InteractionOption {
  readonly name: string
  readonly type: number
  readonly value?: string | number | boolean
  readonly options?: ReadonlyArray<InteractionOption>
  readonly focused?: boolean
}

/** The `data` of an interaction; which fields are present depends on the interaction type. */
export interface InteractionData {
  readonly id?: Snowflake
  readonly name?: string
  readonly type?: number
  readonly guild_id?: Snowflake
  readonly target_id?: Snowflake
  readonly options?: ReadonlyArray<InteractionOption>
  readonly custom_id?: string
  readonly component_type?: number
  readonly values?: ReadonlyArray<string>
  /** Not modelled here. */
  readonly resolved?: unknown
  readonly components?: ReadonlyArray<unknown>
}

export interface Interaction {
  readonly id: Snowflake
  readonly application_id: Snowflake
  readonly type: number
  readonly data?: InteractionData
  readonly guild?: { readonly id: Snowflake; readonly locale: string; readonly features: ReadonlyArray<string> }
  readonly guild_id?: Snowflake
  readonly channel?: Channel
  readonly channel_id?: Snowflake
  /** In guilds; carries `permissions`. */
  readonly member?: GuildMember
  /** In DMs. */
  readonly user?: User
  readonly token: string
  readonly version: number
  readonly message?: Message
  readonly app_permissions: string
  readonly locale?: string
  readonly guild_locale?: string
  readonly entitlements: ReadonlyArray<unknown>
  /** Installation context (integration type id) → owner id. */
  readonly authorizing_integration_owners: { readonly [integrationType: string]: Snowflake }
  readonly context?: number
  readonly attachment_size_limit: number
}

export interface VoiceServerUpdateEvent {
  readonly token: string
  readonly guild_id: Snowflake
  /** null: the voice server is gone; wait for another VOICE_SERVER_UPDATE. */
  readonly endpoint: string | null
}

export interface SoundboardSoundsEvent {
  readonly guild_id: Snowflake
  readonly soundboard_sounds: ReadonlyArray<SoundboardSound>
}

export interface ChannelInfoEvent {
  readonly guild_id: Snowflake
  readonly channels: ReadonlyArray<{
    readonly id: Snowflake
    /** Only when requested. */
    readonly status?: string | null
    /** Unix time in seconds; only when requested. */
    readonly voice_start_time?: number | null
  }>
}

/** Dispatch data by event name (`t`). */
/** Data of the synthetic SHARD_READY event. */
export interface ShardReadyEvent {
  readonly shardId: number
  /** Guilds listed in READY. */
  readonly guilds: number
  /** Guilds still unanswered when the guild wait timed out (0 when all loaded). */
  readonly missing: number
}

/** Data of the synthetic GATEWAY_READY event. */
export interface GatewayReadyEvent {
  /** Shards of this process. */
  readonly shards: number
}

/** Data of the synthetic GATEWAY_RESHARDED event. */
export interface GatewayReshardedEvent {
  readonly from: number
  readonly to: number
  /** Events only the new set had received at the switch, delivered from its staging buffer. */
  readonly released: number
  /** New-set copies dropped up to the switch because the old set had delivered them. */
  readonly deduplicated: number
}

export interface DispatchEvents {
  readonly READY: ReadyData
  readonly RESUMED: ResumedData
  readonly GUILD_CREATE: GuildCreateEvent
  readonly GUILD_UPDATE: Guild
  readonly GUILD_DELETE: GuildDeleteData
  readonly GUILD_MEMBERS_CHUNK: GuildMembersChunkEvent
  readonly GUILD_MEMBER_ADD: GuildMemberAddEvent
  readonly GUILD_MEMBER_UPDATE: GuildMemberUpdateEvent
  readonly GUILD_MEMBER_REMOVE: GuildMemberRemoveEvent
  readonly GUILD_ROLE_CREATE: GuildRoleEvent
  readonly GUILD_ROLE_UPDATE: GuildRoleEvent
  readonly GUILD_ROLE_DELETE: GuildRoleDeleteEvent
  readonly CHANNEL_CREATE: Channel
  readonly CHANNEL_UPDATE: Channel
  readonly CHANNEL_DELETE: Channel
  readonly THREAD_CREATE: ThreadCreateEvent
  readonly THREAD_UPDATE: Channel
  readonly THREAD_DELETE: ThreadDeleteEvent
  readonly MESSAGE_CREATE: MessageEvent
  readonly MESSAGE_UPDATE: MessageEvent
  readonly MESSAGE_DELETE: MessageDeleteEvent
  readonly MESSAGE_DELETE_BULK: MessageDeleteBulkEvent
  readonly MESSAGE_REACTION_ADD: MessageReactionAddEvent
  readonly MESSAGE_REACTION_REMOVE: MessageReactionRemoveEvent
  readonly TYPING_START: TypingStartEvent
  readonly PRESENCE_UPDATE: PresenceUpdateEvent
  readonly INTERACTION_CREATE: Interaction
  readonly VOICE_STATE_UPDATE: VoiceState
  readonly VOICE_SERVER_UPDATE: VoiceServerUpdateEvent
  readonly USER_UPDATE: User
  readonly RATE_LIMITED: RateLimitedData
  /** Synthetic (seq 0, from this runtime, not Discord): a shard's READY guilds have loaded. */
  readonly SHARD_READY: ShardReadyEvent
  /** Synthetic (seq 0, from this runtime, not Discord): every shard of this process is ready. */
  readonly GATEWAY_READY: GatewayReadyEvent
  /** Synthetic (seq 0, from this runtime, not Discord): dispatches now come from the new shard count. */
  readonly GATEWAY_RESHARDED: GatewayReshardedEvent
  readonly SOUNDBOARD_SOUNDS: SoundboardSoundsEvent
  readonly CHANNEL_INFO: ChannelInfoEvent
}

export type DispatchEventName = keyof DispatchEvents
