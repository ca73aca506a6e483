#!/usr/bin/env bash
# Redis pub/sub fan-out ceiling for docs/SCALING.md: a private redis-server on a free loopback
# port, 0/3/10/30 subscribers (redis-cli), redis-benchmark PUBLISHing 100-byte messages.
# Messages Redis sends per second = publishes/s x subscribers. Stops everything it started.
#   bash deploy/capacity/redis-fanout.sh
set -u
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
redis-server --port $PORT --bind 127.0.0.1 --save "" --appendonly no > /dev/null 2>&1 &
RPID=$!
sleep 1
for SUBS in 0 3 10 30; do
  SP=()
  for i in $(seq 1 $SUBS); do redis-cli -p $PORT subscribe bench > /dev/null & SP+=($!); done
  sleep 1
  R=$(redis-benchmark -p $PORT -n 100000 -c 20 -P 16 -q publish bench $(head -c 100 /dev/zero | tr '\0' x) 2>&1 | tr '\r' '\n' | grep "requests per second" | tail -1 | sed 's/.*: //')
  echo "subscribers=$SUBS $R"
  for p in "${SP[@]}"; do kill $p; done
done
kill $RPID
wait $RPID 2>/dev/null
