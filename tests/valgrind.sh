#!/usr/bin/env bash
# valgrind.sh [TEST...]: the end-to-end suite with every inboxd server under valgrind
# memcheck (no invalid reads or writes, no definite leaks: the server exits 99 otherwise
# and the test fails). Slow (memcheck runs code ~30x slower), so it is not part of
# run-all.sh; run it before a release. Default: every tests/e2e/test_*.py that runs the
# server (the browser and fault tests are left out: timing-sensitive under valgrind).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh --test
cmake -B build -S . -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
tests=("$@")
[ ${#tests[@]} -eq 0 ] && tests=(test_core test_conversations test_dashboard test_providers
                                 test_forward test_safety test_limits)
status=0
for t in "${tests[@]}"; do
  echo "=== $t under valgrind"
  if ! INBOXD_VALGRIND=1 INBOXD_BIN=build/inboxd INBOXD_SOURCE_DIR=$PWD \
       /usr/bin/python3 "tests/e2e/$t.py"; then
    status=1
  fi
done
exit $status
