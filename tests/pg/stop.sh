#!/bin/sh
# stop.sh DIR [--keep]: stop the server start.sh started in DIR (by its pid), then remove
# DIR unless --keep is given.
set -eu
dir=${1:?usage: stop.sh DIR [--keep]}
if [ -f "$dir/data/postmaster.pid" ]; then
  pid=$(head -n 1 "$dir/data/postmaster.pid")
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
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
fi
if [ "${2:-}" != "--keep" ]; then
  # The data directory may be a link to memory (start.sh).
  [ -L "$dir/data" ] && rm -rf "$(readlink -f "$dir/data")"
  rm -rf "$dir"
fi
