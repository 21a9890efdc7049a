/**
 * The demo's guilds (`npm start`): realistic snowflakes whose timestamp part steps by one, so guild k lives on
 * shard `k % shardCount` for any count dividing 64 (PROTOCOL.md §4 routing) — the guilds spread evenly before
 * and after a reshard. The embedded simulator's own traffic (`SimulatorTraffic`) is spread over them.
 */

/** A snowflake timestamp (ms since the Discord epoch, around 2024) divisible by 64. */
const BaseTimestamp = 300_000_000_000n

/** `count` guild ids; guild k routes to shard `k % n` when n divides 64. */
export const demoGuilds = (count: number): ReadonlyArray<string> =>
  Array.from({ length: count }, (_, k) => String(((BaseTimestamp + BigInt(k)) << 22n) | BigInt(k % 4096)))
