/**
 * effect-discord-gateway/testing: the test kit. `GatewaySimulator` is a protocol-faithful Discord gateway
 * that runs in-process under TestClock, so bots can be tested deterministically; `SimulatorHttpClient`
 * answers GET /gateway/bot from it; `SimulatorSocketServer` serves the same simulator over a real
 * WebSocket and HTTP on 127.0.0.1; `SimulatorTraffic` is the mix of events either sends by itself at a set
 * rate (the `traffic` option).
 */
export * from "./GatewaySimulator.ts"
export * as SimulatorFaults from "./SimulatorFaults.ts"
export * as SimulatorHttpClient from "./SimulatorHttpClient.ts"
export * as SimulatorSocketServer from "./SimulatorSocketServer.ts"
export * as SimulatorTraffic from "./SimulatorTraffic.ts"
