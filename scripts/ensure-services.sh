#!/usr/bin/env bash
# Makes sure the services the test suite talks to answer: PostgreSQL (127.0.0.1:5432,
# database `test`) and Redis (127.0.0.1:6379). Starts them when they are installed but
# down; installs nothing. Idempotent.
set -uo pipefail

pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

if ! pg_up; then
  echo "ensure-services: starting PostgreSQL"
  if ls /etc/postgresql >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
fi
if ! redis_up; then
  echo "ensure-services: starting Redis"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  for _ in $(seq 1 30); do redis_up && break; sleep 1; done
fi
pg_up && echo "ensure-services: PostgreSQL ok" || echo "ensure-services: WARNING PostgreSQL not answering"
redis_up && echo "ensure-services: Redis ok" || echo "ensure-services: WARNING Redis not answering"
exit 0
