#!/bin/sh
# start.sh DIR: initialize and start a throw-away PostgreSQL server for the tests, from
# Debian's postgresql package: initdb, run as an unprivileged user (nobody when started as
# root), listening on 127.0.0.1 only, on a free port, trust authentication for the
# superuser "inboxd". Writes DIR/uri (postgresql://inboxd@127.0.0.1:PORT/postgres),
# DIR/port and DIR/pid; stop it with stop.sh DIR. Run again on a stopped DIR, it restarts
# the server on the same port; on a running one it only prints the URI.
#
# What the server itself touches (data, socket, log) lives in DIR/run, a link to a
# directory of its own under /dev/shm (in memory: tests create many databases, which is
# slow on some disks) or, with INBOXD_PG_DURABLE=1 (benchmarks: fsync on), under
# /var/tmp; so DIR may sit where the unprivileged user cannot go (e.g. under /root).
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
if [ -f "$dir/run/data/postmaster.pid" ] && [ -f "$dir/uri" ] &&
  kill -0 "$(head -n 1 "$dir/run/data/postmaster.pid")" 2>/dev/null; then
  cat "$dir/uri"
  exit 0
fi
if [ ! -e "$dir/run" ]; then
  parent=/dev/shm
  if [ "${INBOXD_PG_DURABLE:-0}" = 1 ] || [ ! -d /dev/shm ] || [ ! -w /dev/shm ]; then
    parent=/var/tmp
  fi
  run=$(mktemp -d "$parent/inboxd-pg.XXXXXX")
  if [ "$(id -u)" -eq 0 ]; then
    chown nobody "$run"
  fi
  chmod 700 "$run"
  ln -s "$run" "$dir/run"
fi
run=$(readlink -f "$dir/run")
if [ ! -f "$run/data/PG_VERSION" ]; then
  as_user "$bin/initdb" -D "$run/data" -U inboxd -A trust -E UTF8 --locale=C --no-sync \
    >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
fi
if [ ! -f "$dir/port" ]; then
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' \
    >"$dir/port"
fi
port=$(cat "$dir/port")
# Tests want speed, not durability of the throw-away server: fsync off (unless
# INBOXD_PG_DURABLE=1). Enough connections for several e2e tests in parallel, each with a
# few inboxd nodes.
fast="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
[ "${INBOXD_PG_DURABLE:-0}" = 1 ] && fast=""
if ! as_user "$bin/pg_ctl" -D "$run/data" -l "$run/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $run $fast -c max_connections=300 \
-c shared_buffers=128MB" start >/dev/null; then
  tail -n 20 "$run/server.log" >&2
  exit 1
fi
head -n 1 "$run/data/postmaster.pid" >"$dir/pid"
echo "postgresql://inboxd@127.0.0.1:$port/postgres" >"$dir/uri"
cat "$dir/uri"
