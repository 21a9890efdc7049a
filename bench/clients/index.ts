/**
 * Every benchmarked client by key: `ours` (this library), `discordjs` (@discordjs/ws), `raw` (the baseline:
 * ws + JSON.parse + node:zlib) and `null` (the producer alone). Child processes look clients up by key.
 */
import type { Client } from "./Client.ts"
import { discordjsClient } from "./discordjs.ts"
import { effectGatewayClient } from "./effectGateway.ts"
import { nullClient, rawClient } from "./raw.ts"
import { transportOnlyClient } from "./transportOnly.ts"

export type ClientKey = "ours" | "discordjs" | "raw" | "null" | "transport"

export const clients: Readonly<Record<ClientKey, Client>> = {
  ours: effectGatewayClient,
  discordjs: discordjsClient,
  raw: rawClient,
  null: nullClient,
  transport: transportOnlyClient
}
