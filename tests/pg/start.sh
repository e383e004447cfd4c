#!/bin/sh
# start.sh DIR: initialize and start a throw-away PostgreSQL server for the tests, from
# Debian's postgresql package: initdb in DIR, run as an unprivileged user (nobody when
# started as root), listening on 127.0.0.1 only, on a free port, trust authentication for
# the superuser "inboxd". Writes DIR/uri (postgresql://inboxd@127.0.0.1:PORT/postgres),
# DIR/port and DIR/pid; stop it with stop.sh DIR. Safe to run again on a stopped DIR
# (restarts it on the same port).
set -eu
dir=${1:?usage: start.sh DIR}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bin/initdb" ] || { echo "start.sh: Debian's postgresql is not installed" >&2; exit 1; }

as_user() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u nobody -- "$@"
  else
    "$@"
  fi
}

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# Already running (a run that was interrupted): use it.
if [ -f "$dir/data/postmaster.pid" ] && [ -f "$dir/uri" ] &&
  kill -0 "$(head -n 1 "$dir/data/postmaster.pid")" 2>/dev/null; then
  cat "$dir/uri"
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  chown nobody "$dir"
fi
chmod 700 "$dir"
# The data directory goes to memory when it can (/dev/shm): tests create and drop many
# databases, which is slow on some disks; the server is thrown away anyway. A durable
# server (benchmarks) stays on disk.
if [ ! -e "$dir/data" ] && [ "${INBOXD_PG_DURABLE:-0}" != 1 ] && [ -d /dev/shm ] &&
  [ -w /dev/shm ]; then
  mem=$(mktemp -d /dev/shm/inboxd-pg.XXXXXX)
  [ "$(id -u)" -eq 0 ] && chown nobody "$mem"
  chmod 700 "$mem"
  ln -s "$mem" "$dir/data"
fi
if [ ! -f "$dir/data/PG_VERSION" ]; then
  as_user "$bin/initdb" -D "$(readlink -f "$dir/data")" -U inboxd -A trust -E UTF8 --locale=C \
    --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
fi
if [ ! -f "$dir/port" ]; then
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' \
    >"$dir/port"
fi
port=$(cat "$dir/port")
# Tests want speed, not durability of the throw-away server: fsync off (unless
# INBOXD_PG_DURABLE=1, for benchmarks). Enough connections for several e2e tests in
# parallel, each with a few inboxd nodes.
fast="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
[ "${INBOXD_PG_DURABLE:-0}" = 1 ] && fast=""
as_user "$bin/pg_ctl" -D "$(readlink -f "$dir/data")" -l "$dir/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $dir $fast -c max_connections=300 \
-c shared_buffers=128MB" start >/dev/null
head -n 1 "$dir/data/postmaster.pid" >"$dir/pid"
echo "postgresql://inboxd@127.0.0.1:$port/postgres" >"$dir/uri"
cat "$dir/uri"
