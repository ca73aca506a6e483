// A plain Socket.IO server on the RabbitMQ adapter, and an emitter in the same file for brevity
// (any Node process can be the emitter). Run: AMQP_URL=amqp://guest:guest@localhost:5672 node examples/node/amqp-adapter.mjs
import { createServer } from "node:http";
import amqp from "amqplib";
import { Server } from "socket.io";
import { AmqpEmitter, createAmqpAdapter } from "switchboard/adapters/amqp";

const url = process.env.AMQP_URL ?? "amqp://guest:guest@localhost:5672";
const exchange = process.env.AMQP_EXCHANGE ?? "socket.io";
// noDelay: amqplib turns Nagle's algorithm on otherwise, which delays back-to-back publishes.
const connect = () => amqp.connect(url, { noDelay: true });
const connection = await connect();
const httpServer = createServer();
const io = new Server(httpServer, {
  adapter: createAmqpAdapter(connection, { exchange, connectionFactory: connect }),
});
io.on("connection", (socket) => socket.join("chat:1"));
await new Promise((resolve) => httpServer.listen(Number(process.env.PORT ?? 3000), resolve));

const emitter = new AmqpEmitter(await connect(), { exchange });
process.on("SIGUSR2", () => emitter.to("chat:1").emit("message", { text: "hi from the emitter" }));
process.on("SIGTERM", async () => {
  await emitter.close();
  io.close();
  await connection.close();
  process.exit(0);
});
console.log(`listening on ${httpServer.address().port}`);
