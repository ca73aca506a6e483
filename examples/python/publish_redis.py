"""Publish one command to Socket.IO clients through Switchboard's Redis stream.

    pip install redis   # or: apt-get install python3-redis
    python3 publish_redis.py chat:1 "hello from Python"

Env: REDIS_URL (default redis://localhost:6379), SWITCHBOARD_STREAM.
"""
import json, os, sys, uuid
import redis

room = sys.argv[1] if len(sys.argv) > 1 else "chat:1"
text = sys.argv[2] if len(sys.argv) > 2 else "hi"
command = {"v": 1, "id": str(uuid.uuid4()), "rooms": [room], "event": "message", "data": {"text": text}}

client = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://localhost:6379"))
stream = os.environ.get("SWITCHBOARD_STREAM", "switchboard:publish")
# The command's JSON goes in field `command`; the gateways' consumer group takes it from there.
entry = client.xadd(stream, {"command": json.dumps(command)})
print("published", command["id"], "as", entry.decode())
