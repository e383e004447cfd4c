#!/usr/bin/env bash
# run-all.sh: the whole test suite, as CI runs it on a fresh Debian machine:
# install what is missing, build, run every test (unit, golden, end-to-end), then the
# same suite under AddressSanitizer + UndefinedBehaviorSanitizer, then bounded fuzzing.
# Environment: JOBS (default: cores), INBOXD_SKIP_SANITIZE=1, INBOXD_FUZZ_SECONDS (per
# target, default 30; 0 skips fuzzing).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
jobs=${JOBS:-$(nproc)}
start=$(date +%s)

deploy/install-deps.sh --test

step() { printf '\n=== %s (%ds)\n' "$*" $(( $(date +%s) - start )); }

step "build"
cmake -B build -S . -DCMAKE_BUILD_TYPE=RelWithDebInfo -DINBOXD_WERROR=ON >/dev/null
cmake --build build -j"$jobs"

step "tests"
ctest --test-dir build --output-on-failure -j"$jobs"

if [ "${INBOXD_SKIP_SANITIZE:-0}" != 1 ]; then
  step "sanitizer build (ASan + UBSan)"
  cmake -B build-asan -S . -DCMAKE_BUILD_TYPE=Debug -DINBOXD_SANITIZE=ON -DINBOXD_WERROR=ON \
    >/dev/null
  cmake --build build-asan -j"$jobs"
  step "tests under the sanitizers"
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=23:strict_string_checks=1"
  # GLib's slice allocator would hide leaked GLib containers from LeakSanitizer.
  export G_SLICE=always-malloc
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  export LSAN_OPTIONS="suppressions=$top/tests/lsan.supp:print_suppressions=0"
  ctest --test-dir build-asan --output-on-failure -j"$jobs"
  unset ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS G_SLICE
fi

if [ -x tests/fuzz/run.sh ] && [ "${INBOXD_FUZZ_SECONDS:-30}" != 0 ]; then
  step "bounded fuzzing"
  tests/fuzz/run.sh "${INBOXD_FUZZ_SECONDS:-30}"
fi

step "all tests passed"
