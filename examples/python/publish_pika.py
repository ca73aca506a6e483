"""Publish one command to Socket.IO clients through Switchboard's RabbitMQ queue.

    pip install pika   # or: apt-get install python3-pika
    python3 publish_pika.py chat:1 "hello from Python"

Env: AMQP_URL (default amqp://guest:guest@localhost:5672), SWITCHBOARD_QUEUE.
"""
import json, os, sys, uuid
import pika

room = sys.argv[1] if len(sys.argv) > 1 else "chat:1"
text = sys.argv[2] if len(sys.argv) > 2 else "hi"
command = {"v": 1, "id": str(uuid.uuid4()), "rooms": [room], "event": "message", "data": {"text": text}}

url = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672")
connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()
channel.confirm_delivery()  # basic_publish returns once RabbitMQ has the command
channel.basic_publish(
    exchange="",  # the default exchange routes to the queue of that name (gateways declare it)
    routing_key=os.environ.get("SWITCHBOARD_QUEUE", "switchboard.publish"),
    body=json.dumps(command),
    properties=pika.BasicProperties(
        content_type="application/json", delivery_mode=2, message_id=command["id"]
    ),
    mandatory=True,  # raises UnroutableError when the queue does not exist yet
)
connection.close()
print("published", command["id"])
