"""Python side of the bridge tests: the real Debian packages, driven by the TypeScript tests.

    bridge_tool.py flask URL CHANNEL CASES_JSON   Flask-SocketIO write-only emits (pickle)
    bridge_tool.py raw URL CHANNEL HEX...         publishes raw message bodies (JSON, hostile)
    bridge_tool.py client GATEWAY_URL ROOM         socketio.Client: joins ROOM, prints events
    bridge_tool.py server URL CHANNEL PORT         python-socketio server on the channel

Every line printed is one JSON object, so the tests read it without guessing.
"""
import json
import sys


def plain(value):
    """bytes as hex, so that received binary arguments print as JSON."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def out(**fields):
    print(json.dumps(plain(fields)), flush=True)


def flask_emits(url, channel, cases):
    from flask_socketio import SocketIO

    # No app: Flask-SocketIO's write-only mode, as a Celery job or a script uses it.
    socketio = SocketIO(message_queue=url, channel=channel)
    for case in cases:
        if case.get("op") == "close_room":
            socketio.close_room(case["room"], namespace=case.get("namespace", "/"))
            continue
        if case.get("op") == "disconnect":
            socketio.server.disconnect(case["sid"], namespace=case.get("namespace", "/"))
            continue
        data = case.get("data")
        if case.get("tuple"):
            data = tuple(data)
        if case.get("bytes") is not None:
            data = {"blob": bytes(case["bytes"]), "name": "file"}
        socketio.emit(
            case["event"],
            data,
            namespace=case.get("namespace", "/"),
            to=case.get("to"),
            skip_sid=case.get("skip_sid"),
        )
    out(emitted=len(cases))


def raw(url, channel, bodies):
    if url.startswith("redis"):
        import redis

        client = redis.Redis.from_url(url)
        for body in bodies:
            client.publish(channel, body)
        client.close()
    else:
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(url))
        ch = connection.channel()
        # Exactly kombu's declaration (fanout, not durable, not auto-delete).
        ch.exchange_declare(channel, exchange_type="fanout", durable=False, auto_delete=False)
        for body in bodies:
            ch.basic_publish(channel, "", body)
        connection.close()
    out(published=len(bodies))


def client(gateway_url, room, namespace="/"):
    import socketio

    sio = socketio.Client(reconnection=False)

    # Handlers run on threads of their own: the order of the lines is not the order of arrival.
    @sio.on("*", namespace=namespace)
    def any_event(event, *args):
        out(event=event, args=list(args))

    sio.connect(gateway_url, transports=["websocket"], namespaces=[namespace])
    reply = sio.call("join", room, namespace=namespace, timeout=10)
    out(ready=True, sid=sio.get_sid(namespace), join=reply)
    sio.wait()


def server(url, channel, port):
    import socketio
    from wsgiref.simple_server import WSGIRequestHandler, make_server
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIServer

    if url.startswith("redis"):
        manager = socketio.RedisManager(url, channel=channel)
    else:
        manager = socketio.KombuManager(url, channel=channel)
    sio = socketio.Server(client_manager=manager, async_mode="threading")

    @sio.on("join")
    def join(sid, room):
        sio.enter_room(sid, room)
        return {"ok": True}

    @sio.on("shout")
    def shout(sid, payload):
        sio.emit(payload["event"], payload["data"], to=payload["room"])
        return {"ok": True}

    class Threading(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    httpd = make_server("127.0.0.1", int(port), socketio.WSGIApp(sio), Threading, Quiet)
    out(listening=int(port))
    httpd.serve_forever()


def polling_client(server_url, room):
    """A python-socketio client of the Python server (long-polling: no websocket server there)."""
    import socketio

    sio = socketio.Client(reconnection=False)

    @sio.on("*")
    def any_event(event, *args):
        out(event=event, args=list(args))

    sio.connect(server_url, transports=["polling"])
    reply = sio.call("join", room, timeout=10)
    out(ready=True, sid=sio.get_sid(), join=reply)
    for line in sys.stdin:
        command = json.loads(line)
        if command.get("shout"):
            out(shouted=sio.call("shout", command["shout"], timeout=10))
        else:
            break
    sio.disconnect()


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "flask":
        flask_emits(args[0], args[1], json.loads(args[2]))
    elif command == "raw":
        raw(args[0], args[1], [bytes.fromhex(h) for h in args[2:]])
    elif command == "client":
        client(*args)
    elif command == "server":
        server(*args)
    elif command == "polling-client":
        polling_client(*args)
    else:
        sys.exit("unknown command " + command)
