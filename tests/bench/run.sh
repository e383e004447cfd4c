#!/bin/sh
# inboxd benchmark: build the programs (-DINBOXD_BENCH=ON, in build-bench/ unless
# INBOXD_BENCH_BUILD says otherwise), raise the open-file limit, run bench.py.
# usage: tests/bench/run.sh [bench.py options]      e.g. --runs 5, --only rounds,parse
#        tests/bench/run.sh --profile [profile.py options]
#        tests/bench/run.sh --pg [pg_bench.py options]   (one vs two nodes on PostgreSQL)
set -eu
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${INBOXD_BENCH_BUILD:-$SRC/build-bench}
PY=/usr/bin/python3

cmake -S "$SRC" -B "$BUILD" -DINBOXD_BENCH=ON -DINBOXD_SANITIZE=OFF \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j2 --target bench_all >/dev/null

# 10,000 idle clients need 10,000 descriptors in the server and as many in the load
# generator (each process has its own limit). Root may raise the hard limit.
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt 16384 ]; then
  ulimit -Hn 65536 2>/dev/null || true
fi
ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true

if [ "${1:-}" = --pg ]; then
  shift
  exec "$PY" "$SRC/tests/bench/pg_bench.py" --build-dir "$BUILD" "$@"
fi
if [ "${1:-}" = --profile ]; then
  shift
  exec "$PY" "$SRC/tests/bench/profile.py" --build-dir "$BUILD" "$@"
fi
exec "$PY" "$SRC/tests/bench/bench.py" --build-dir "$BUILD" "$@"
