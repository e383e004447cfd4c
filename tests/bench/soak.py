#!/usr/bin/python3
"""Soak: RSS of one inboxd over many unique messages (issue 7: "RSS stays flat over
100,000 messages"). Posts --messages unique 5 KB messages (the benchmark's 5 KB mix) in
--steps equal steps with 32 keep-alive clients, and prints VmRSS after each step, the
database size, and whether every request got its 2xx. Not a test: it reports figures.

Usage (after tests/bench/run.sh has built build-bench/):
  tests/bench/soak.py [--messages 100000] [--steps 10] [--build build-bench]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen  # noqa: E402
from bench import Server  # noqa: E402

HERE = Path(__file__).resolve().parent


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=100000)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--build", default=str(HERE.parents[1] / "build-bench"))
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    build = Path(a.build)
    tmp = Path(tempfile.mkdtemp(prefix="inboxd-soak-"))
    try:
        tpl = gen.write_templates(HERE.parents[1], 5120, tmp)
        db = tmp / "inboxd.db"
        s = Server("inboxd", [str(build / "inboxd"), "serve", "--listen", "127.0.0.1:0",
                              "--db", str(db)], tmp)
        rows = [("0", s.status("VmRSS"), s.status("VmHWM"), 0, 0)]
        per_step = a.messages // a.steps
        next_id, errors = 1, 0
        for step in range(1, a.steps + 1):
            out = subprocess.run([str(build / "tests/bench/bench_load"), "--port", str(s.port),
                                  "--conns", "32", "--requests", str(per_step), "--id-start",
                                  str(next_id)] + tpl, check=True, capture_output=True)
            r = json.loads(out.stdout.decode().strip().splitlines()[-1])
            next_id = r["next_id"] + 1
            errors += r["errors"]
            size = sum(f.stat().st_size for f in tmp.glob("inboxd.db*"))
            rows.append((f"{step * per_step:,}", s.status("VmRSS"), s.status("VmHWM"),
                         r["rate"], size))
            print(f"step {step}: {step * per_step} messages, RSS {s.status('VmRSS')} kB",
                  file=sys.stderr, flush=True)
        rc = s.stop()
        print("| messages stored | RSS (MiB) | RSS high-water (MiB) | msg/s in step | database (MiB) |")
        print("| --- | --- | --- | --- | --- |")
        for m, rss, hwm, rate, size in rows:
            print(f"| {m} | {rss / 1024:.1f} | {hwm / 1024:.1f} | {rate:,.0f} | {size / 2**20:,.0f} |")
        first, last = rows[1][1], rows[-1][1]
        print(f"\nRSS after the first step {first / 1024:.1f} MiB, after the last "
              f"{last / 1024:.1f} MiB ({(last - first) / 1024:+.1f} MiB); errors {errors}; "
              f"exit status {rc}")
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
