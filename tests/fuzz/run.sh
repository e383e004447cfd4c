#!/usr/bin/env bash
# run.sh [SECONDS]: build the libFuzzer targets with clang (ASan + UBSan) and run each for
# SECONDS (default 60) from seed corpora made of fixtures/, failing on any crash, leak or
# timeout. Prints executions and coverage per target. Crashes land in
# build-fuzz/artifacts/; turn each into a fixture.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
build=build-fuzz
CC=clang cmake -B "$build" -S . -DCMAKE_BUILD_TYPE=RelWithDebInfo -DINBOXD_FUZZ=ON >/dev/null
cmake --build "$build" -j"$(nproc)" --target $(cd tests/fuzz && ls fuzz_*.c | sed 's/\.c$//' | tr '\n' ' ')

mkdir -p "$build/artifacts"
export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1"
export G_SLICE=always-malloc # GLib's slice allocator would hide leaks from LeakSanitizer
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"

put() { # put DIR PREFIX FILE: one corpus entry, PREFIX (printf %b) then FILE's bytes
  { printf '%b' "$2"; cat "$3"; } > "$1/$(basename "$3").seed"
}

seed() { # seed <target> <corpus dir>: the fixtures that fit the target, in its input format
  local t=$1 dir=$2 f b
  mkdir -p "$dir"
  case $t in
    fuzz_mime|fuzz_classify) find fixtures -name '*.eml' -exec cp {} "$dir"/ \; ;;
    fuzz_strip|fuzz_html2text)
      find fixtures -name '*.txt' -o -name '*.html' | head -500 | xargs -r cp -t "$dir" ;;
    fuzz_form)
      for f in fixtures/providers/*/*.multipart; do
        b=$(head -c 64 "$f" | head -n1 | tr -d '\r' | sed 's/^--//')
        put "$dir" "multipart/form-data; boundary=$b\n" "$f"
      done
      for f in fixtures/providers/*/*.urlencoded; do
        put "$dir" "application/x-www-form-urlencoded\n" "$f"
      done ;;
    fuzz_adapters)
      for f in fixtures/providers/sendgrid/*.multipart; do
        put "$dir" "\x00multipart/form-data; boundary=xYzZY\n" "$f"; done
      b=$(head -n1 fixtures/providers/mailgun/parsed.multipart | tr -d '\r' | sed 's/^--//')
      put "$dir" "\x01multipart/form-data; boundary=$b\n" fixtures/providers/mailgun/parsed.multipart
      put "$dir" "\x01application/x-www-form-urlencoded\n" fixtures/providers/mailgun/mime.urlencoded
      for f in fixtures/providers/postmark/*.json; do
        case $f in *.meta.json) continue ;; esac
        put "$dir" "\x02application/json\n" "$f"; done
      for f in fixtures/providers/ses/*.json; do
        case $f in *.meta.json) continue ;; esac
        put "$dir" "\x03text/plain\n" "$f"; done
      put "$dir" "\x04application/x-www-form-urlencoded\n" fixtures/providers/mandrill/batch.urlencoded
      put "$dir" "\x05message/rfc822\n" fixtures/providers/source/order-1234.mime ;;
  esac
  if [ -d "tests/fuzz/corpus/$t" ]; then cp tests/fuzz/corpus/"$t"/* "$dir"/ 2>/dev/null || true; fi
}

status=0
for bin in "$build"/tests/fuzz/fuzz_*; do
  t=$(basename "$bin")
  corpus=$(mktemp -d)
  seed "$t" "$corpus"
  dict=()
  case $t in
    fuzz_mime|fuzz_classify) dict=(-dict=tests/fuzz/mime.dict) ;;
    *) [ -f "tests/fuzz/${t#fuzz_}.dict" ] && dict=(-dict="tests/fuzz/${t#fuzz_}.dict") ;;
  esac
  log=$(mktemp)
  if "$bin" "$corpus" "${dict[@]}" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
       -max_len=262144 -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-" \
       >"$log" 2>&1; then
    execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
    cov=$(grep -E '^#[0-9]+.*cov:' "$log" | tail -1 | sed -E 's/.*cov: ([0-9]+).*ft: ([0-9]+).*/cov \1 ft \2/')
    printf '%-18s ok   %10s execs  %s\n' "$t" "${execs:-?}" "${cov:-}"
  else
    status=1
    printf '%-18s FAIL (see below)\n' "$t"
    tail -60 "$log"
  fi
  rm -rf "$corpus" "$log"
done
exit $status
