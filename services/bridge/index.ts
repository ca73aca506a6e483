export { type Bridge, type BridgeMode, type BridgeOptions, startBridge } from "./bridge.js";
export type { JsonDataRule } from "./message.js";
export { type OutgoingEmit, SWITCHBOARD_HOST_ID } from "./outgoing.js";
