/** A one-file demo served at `/`: join a room, publish to it, watch messages from every gateway. */
export const DEMO_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Switchboard demo</title>
<style>body{font:15px system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}
input,button{font:inherit;padding:.3rem .5rem}#log{border:1px solid #ccc;padding:.5rem;height:18rem;overflow:auto;white-space:pre-wrap;font-family:ui-monospace,monospace;font-size:13px}</style>
</head><body>
<h1>Switchboard</h1>
<p id="me">connecting…</p>
<p><input id="room" value="chat:lobby" aria-label="room"> <button id="join">join</button> <button id="leave">leave</button></p>
<p><input id="text" value="hello" aria-label="message"> <button id="send">publish</button></p>
<div id="log" role="log"></div>
<script src="/socket.io/socket.io.js"></script>
<script>
const $ = (id) => document.getElementById(id);
const log = (line) => { $("log").textContent += line + "\\n"; $("log").scrollTop = 1e9; };
const socket = io({ transports: ["websocket"] });
const whoami = () => socket.emit("whoami", (me) => { $("me").textContent = "socket " + me.id + " on gateway " + me.gateway + " in rooms [" + me.rooms.join(", ") + "]"; });
socket.on("connect", whoami);
socket.on("disconnect", (reason) => { $("me").textContent = "disconnected: " + reason; });
socket.onAny((event, data) => log(event + " " + JSON.stringify(data)));
$("join").onclick = () => socket.emit("join", $("room").value, (r) => { log("join -> " + JSON.stringify(r)); whoami(); });
$("leave").onclick = () => socket.emit("leave", $("room").value, (r) => { log("leave -> " + JSON.stringify(r)); whoami(); });
$("send").onclick = () => socket.emit("publish", { room: $("room").value, event: "message", data: { text: $("text").value } }, (r) => log("publish -> " + JSON.stringify(r)));
</script>
</body></html>
`;
