import { createRequire } from "node:module";

// The CommonJS packages of the RabbitMQ backplane, loaded with require: see "What a gateway
// loads at start" in docs/ARCHITECTURE.md (importing CommonJS from an ES module runs Node's
// cjs-module-lexer over it, which at start costs a gateway megabytes of compiler memory).
const require = createRequire(import.meta.url);

export const amqplib = require("amqplib") as typeof import("amqplib");
export const { ClusterAdapterWithHeartbeat, MessageType } =
  require("socket.io-adapter") as typeof import("socket.io-adapter");
export const { Decoder, Encoder } =
  require("@msgpack/msgpack") as typeof import("@msgpack/msgpack");
