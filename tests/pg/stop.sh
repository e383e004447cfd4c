#!/bin/sh
# stop.sh DIR [--keep]: stop the server start.sh started in DIR, by the pid in its
# postmaster.pid, then remove it (and DIR) unless --keep is given.
set -eu
dir=${1:?usage: stop.sh DIR [--keep]}
pidfile="$dir/run/data/postmaster.pid"
if [ -f "$pidfile" ]; then
  pid=$(head -n 1 "$pidfile")
  # SIGINT: PostgreSQL's fast shutdown (clients are disconnected, a checkpoint is
  # written); SIGQUIT: immediate shutdown, enough for a server whose files go next.
  if [ "${2:-}" = "--keep" ]; then
    kill -INT "$pid" 2>/dev/null || true
  else
    kill -QUIT "$pid" 2>/dev/null || true
  fi
  i=0
  while kill -0 "$pid" 2>/dev/null && [ $i -lt 300 ]; do
    sleep 0.1
    i=$((i + 1))
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
fi
if [ "${2:-}" != "--keep" ]; then
  if [ -L "$dir/run" ]; then
    rm -rf "$(readlink -f "$dir/run")"
  fi
  rm -rf "$dir"
fi
