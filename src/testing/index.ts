/**
 * effect-discord-gateway/testing: the test kit. `GatewaySimulator` is a protocol-faithful Discord gateway
 * that runs in-process under TestClock, so bots can be tested deterministically.
 */
export * from "./GatewaySimulator.ts"
