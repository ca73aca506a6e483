"""A python-socketio client for the delivery-path tests: records the Engine.IO message packets it
receives, in arrival order, as the Socket.IO layer gets them.

    delivery_client.py GATEWAY_URL ROOM TRANSPORT

Prints one JSON object a line: {"ready": true, "join": ...} once it joined ROOM, then
{"text": "..."} or {"hex": "..."} for every message packet (a binary attachment is hex).
The test stops it when it has seen enough.
"""
import json
import sys

import socketio


def out(**fields):
    print(json.dumps(fields), flush=True)


def main(url, room, transport):
    sio = socketio.Client(reconnection=False)
    receive = sio.eio._receive_packet

    # The read loop calls this for each packet in arrival order (event handlers run on threads
    # of their own, so they would not show the order).
    def record(pkt):
        if pkt.packet_type == 4:  # Engine.IO "message"
            if isinstance(pkt.data, bytes):
                out(hex=pkt.data.hex())
            else:
                out(text=pkt.data)
        receive(pkt)

    sio.eio._receive_packet = record
    sio.connect(url, transports=[transport])
    reply = sio.call("join", room, timeout=10)
    out(ready=True, join=reply)
    sio.wait()


if __name__ == "__main__":
    main(*sys.argv[1:4])
