#!/usr/bin/python3
"""Profile inboxd's ingest path and parse path (tests/bench/README.md, "Profiling").

perf (software cpu-clock sampling, DWARF call graphs: this VM has no hardware counters)
gives where the time goes per thread; valgrind's callgrind gives instruction counts,
which do not move with the load of the machine, per message and per function.

usage: profile.py --build-dir DIR [--tool perf,callgrind] [--what ingest,parse]
"""
import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402
import gen  # noqa: E402

# Functions whose direct callees are worth listing (outermost occurrence in each stack).
KEYS = ["run_batch", "sqlite3_exec", "ingest_job", "store_item", "store_insert_message",
        "thread_assign", "thread_record", "on_stored", "on_access", "ingress_raw",
        "pipeline_prepare", "parse_message", "mime_parse", "cmd_parse", "parse_one",
        "ib_message_to_json", "strip_message", "classify_message"]


def fold_perf(data, outdir, comm=None):
    """perf script -> list of stacks (leaf first) per thread name."""
    argv = ["perf", "script", "-i", str(data), "-F", "comm,tid,ip,sym"]
    out = subprocess.run(argv, capture_output=True, text=True, errors="replace").stdout
    threads = collections.defaultdict(list)
    cur, name = [], None
    for line in out.splitlines():
        if not line.strip():
            if cur and name:
                threads[name].append(cur)
            cur, name = [], None
            continue
        if not line.startswith((" ", "\t")):
            parts = line.split()
            name = f"{parts[0]}:{parts[1]}" if len(parts) > 1 else parts[0]
            continue
        f = line.split(None, 1)
        sym = f[1] if len(f) > 1 else f[0]
        sym = re.sub(r"\+0x[0-9a-f]+$", "", sym).replace(" (inlined)", "").strip()
        cur.append(sym)
    if cur and name:
        threads[name].append(cur)
    return threads


def report_stacks(title, stacks, total, top=15):
    n = len(stacks)
    print(f"\n### {title}: {n} samples ({100 * n / total:.1f}% of the process)\n")
    self_ = collections.Counter(s[0] for s in stacks if s)
    incl = collections.Counter()
    for s in stacks:
        for sym in set(s):
            incl[sym] += 1
    print("self time (% of this thread):")
    for sym, c in self_.most_common(top):
        print(f"  {100 * c / n:5.1f}%  {sym}")
    print("inclusive (% of this thread), named functions:")
    shown = 0
    for sym, c in incl.most_common():
        if sym.startswith(("0x", "[")) or sym in ("start_thread", "clone3", "__clone3",
                                                 "_start", "__libc_start_main", "main"):
            continue
        print(f"  {100 * c / n:5.1f}%  {sym}")
        shown += 1
        if shown >= top + 10:
            break
    for key in KEYS:
        kids = collections.Counter()
        for s in stacks:
            if key in s:
                i = len(s) - 1 - s[::-1].index(key)
                kids[s[i - 1] if i > 0 else "(self)"] += 1
        if sum(kids.values()) >= max(5, n // 50):
            print(f"  {key} ({100 * sum(kids.values()) / n:.1f}%) calls:")
            for sym, c in kids.most_common(8):
                if 100 * c / n >= 0.5:
                    print(f"      {100 * c / n:5.1f}%  {sym}")


def perf_report(data, outdir):
    threads = fold_perf(data, outdir)
    total = sum(len(v) for v in threads.values())
    # Group threads by name: the writer is the busiest "inboxd" thread besides main.
    for name, stacks in sorted(threads.items(), key=lambda kv: -len(kv[1])):
        if len(stacks) >= total / 50:
            report_stacks(name, stacks, total)


def callgrind_report(out, per, label):
    ann = subprocess.run(["callgrind_annotate", "--inclusive=yes", str(out)],
                         capture_output=True, text=True, errors="replace").stdout
    lines = ann.splitlines()
    total = None
    for line in lines:
        m = re.match(r"\s*([\d,]+)\s+\(100\.0%\)\s+PROGRAM TOTALS", line)
        if m:
            total = int(m.group(1).replace(",", ""))
    print(f"\n### callgrind, {label}: {total:,} instructions"
          + (f", {total / per:,.0f} per message" if total and per else ""))
    print("inclusive, top functions (instructions per message):")
    shown, seen = 0, set()
    for line in lines:
        m = re.match(r"\s*([\d,]+)\s+\(\s*([\d.]+)%\)\s+\S*:(\S+)", line)
        if not m:
            continue
        ir, pct, fn = int(m.group(1).replace(",", "")), float(m.group(2)), m.group(3)
        fn = fn.split("'")[0]  # recursion levels
        if (fn in seen or fn.startswith(("0x", "(below", "_dl_", "__libc_start"))
                or fn in ("main", "start_thread", "clone3", "dl_main")):
            continue
        seen.add(fn)
        print(f"  {pct:5.1f}%  {ir / per:12,.0f}  {fn}")
        shown += 1
        if shown >= 45:
            break


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--src", default=str(bench.HERE.parents[1]))
    ap.add_argument("--tool", default="perf,callgrind")
    ap.add_argument("--what", default="ingest,parse")
    ap.add_argument("--duration", type=float, default=6)
    ap.add_argument("--tmp", default=None)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    a.runs, a.warmup, a.corpus, a.idle = 1, 0, 400, 0
    tools, what = set(a.tool.split(",")), set(a.what.split(","))
    b = bench.Bench(a)
    t5 = b.templates(5120)
    try:
        if "ingest" in what and "perf" in tools:
            data = b.path("perf-ingest.data")
            db = b.path("perf-ingest", "inboxd.db")
            s = b.start("perf-inboxd", ["perf", "record", "-q", "-F", "499", "-e", "cpu-clock",
                                        "--call-graph", "dwarf,16384", "-o", str(data), "--",
                                        b.inboxd, "serve", "--listen", "127.0.0.1:0",
                                        "--db", str(db)])
            r = b.load(s.port, t5)
            print(f"## perf, ingest: 5 KB mix, {bench.CONNS} clients: {r['rate']:.0f} msg/s "
                  f"under perf, p99 {r['p99_ms']:.1f} ms")
            # perf forwards SIGTERM to inboxd and then writes its data.
            b.stop(s)
            perf_report(data, b.tmp)
        if "ingest" in what and "callgrind" in tools:
            out = b.path("callgrind.ingest")
            db = b.path("cg-ingest", "inboxd.db")
            s = b.start("cg-inboxd", ["valgrind", "--tool=callgrind", "--quiet",
                                      f"--callgrind-out-file={out}", b.inboxd, "serve",
                                      "--listen", "127.0.0.1:0", "--db", str(db)])
            b.load(s.port, t5, conns=8, requests=100)  # warm-up: schema, caches
            n = 1000
            r = b.load(s.port, t5, conns=bench.CONNS, requests=n)
            b.stop(s)
            print(f"\n## callgrind, ingest: {n + 100} messages (5 KB mix), all threads")
            callgrind_report(out, n + 100, "inboxd serve, per ingested message")
        if "parse" in what:
            d = b.path("corpus")
            d.mkdir(exist_ok=True)
            files = []
            for i, (shape, m) in enumerate(gen.corpus(a.src, a.corpus)):
                p = d / f"{i:05d}-{shape}.eml"
                p.write_bytes(gen.render(m, 10**9 + i))
                files.append(str(p))
            if "perf" in tools:
                data = b.path("perf-parse.data")
                subprocess.run(["perf", "record", "-q", "-F", "999", "-e", "cpu-clock",
                                "--call-graph", "dwarf,16384", "-o", str(data), "--",
                                b.inboxd, "parse", *files], stdout=subprocess.DEVNULL,
                               check=True)
                print(f"\n## perf, inboxd parse of {len(files)} corpus files")
                perf_report(data, b.tmp)
            if "callgrind" in tools:
                for label, argv in [("inboxd parse", [b.inboxd, "parse", *files]),
                                    ("bare GMime walk", [str(b.bin / "bench_gmime_ref"),
                                                         "--files", *files])]:
                    out = b.path(f"callgrind.{label.split()[-1]}")
                    subprocess.run(["valgrind", "--tool=callgrind", "--quiet",
                                    f"--callgrind-out-file={out}", *argv],
                                   stdout=subprocess.DEVNULL, check=True)
                    callgrind_report(out, len(files), f"{label}, {len(files)} corpus files")
    finally:
        b.close()


if __name__ == "__main__":
    main()
