#!/usr/bin/env bash
# run.sh SECONDS: build the libFuzzer targets with clang (build-fuzz/), seed a corpus for
# each from fixtures/, and run every target for SECONDS (default 30). A crash leaves its
# input in build-fuzz/crash-* and makes this script fail.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-30}
CC=clang cmake -B build-fuzz -S . -DINBOXD_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j"${JOBS:-2}" --target $(cd tests/fuzz && ls fuzz_*.c | sed 's/\.c$//')

seed() { # seed DIR PREFIX FILE: write PREFIX + FILE's bytes as one corpus entry
  mkdir -p "$1"
  { printf '%b' "$2"; cat "$3"; } > "$1/$(basename "$3").seed"
}
for t in tests/fuzz/fuzz_*.c; do
  name=$(basename "$t" .c)
  corpus=build-fuzz/corpus/$name
  mkdir -p "$corpus"
  case $name in
    fuzz_form)
      for f in fixtures/providers/*/*.multipart; do
        b=$(head -c 64 "$f" | head -n1 | tr -d '\r' | sed 's/^--//')
        seed "$corpus" "multipart/form-data; boundary=$b\n" "$f"
      done
      for f in fixtures/providers/*/*.urlencoded; do
        seed "$corpus" "application/x-www-form-urlencoded\n" "$f"
      done ;;
    fuzz_adapters)
      for f in fixtures/providers/sendgrid/*.multipart; do
        seed "$corpus" "\x00multipart/form-data; boundary=xYzZY\n" "$f"; done
      b=$(head -n1 fixtures/providers/mailgun/parsed.multipart | tr -d '\r' | sed 's/^--//')
      seed "$corpus" "\x01multipart/form-data; boundary=$b\n" fixtures/providers/mailgun/parsed.multipart
      seed "$corpus" "\x01application/x-www-form-urlencoded\n" fixtures/providers/mailgun/mime.urlencoded
      for f in fixtures/providers/postmark/*.json; do
        case $f in *.meta.json) continue ;; esac
        seed "$corpus" "\x02application/json\n" "$f"; done
      for f in fixtures/providers/ses/*.json; do
        case $f in *.meta.json) continue ;; esac
        seed "$corpus" "\x03text/plain\n" "$f"; done
      seed "$corpus" "\x04application/x-www-form-urlencoded\n" fixtures/providers/mandrill/batch.urlencoded
      seed "$corpus" "\x05message/rfc822\n" fixtures/providers/source/order-1234.mime ;;
  esac
  echo "fuzzing $name for ${secs}s"
  (cd build-fuzz && ./tests/fuzz/"$name" -max_total_time="$secs" -max_len=262144 \
     -rss_limit_mb=2048 -print_final_stats=1 corpus/"$name" 2>&1 | tail -n 12)
done
