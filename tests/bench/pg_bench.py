#!/usr/bin/env python3
"""pg_bench.py: ingest throughput of one inboxd node against two, on one local PostgreSQL
(issue 9), beside SQLite for scale. A benchmark, not a test: it prints a table.

Every row: fresh database, `inboxd serve` with its defaults, 32 keep-alive clients POSTing
the 5 KB mix of gen.py to /inbound/raw (each message with its own Message-ID; the
clients are split evenly across the nodes), `--duration` seconds after `--warmup`.
Throughput counts 2xx answers, each given after its commit. The PostgreSQL server is
Debian's, started by tests/pg/start.sh in the temporary directory, durable by default
(fsync and synchronous_commit on, like SQLite's synchronous=FULL); `--no-fsync` runs it
as the tests do.

    tests/bench/run.sh --pg                 # builds build-bench/, then this
    /usr/bin/python3 tests/bench/pg_bench.py --build-dir build-bench [--runs 3]
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import gen  # noqa: E402
from bench import Server, run_json  # noqa: E402

CONNS = 32


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--src", default=str(HERE.parents[1]))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--warmup", type=float, default=1)
    ap.add_argument("--no-fsync", action="store_true", help="PostgreSQL without fsync")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()

    build = Path(a.build_dir).resolve()
    inboxd = str(build / "inboxd")
    load = str(build / "tests" / "bench" / "bench_load")
    tmp = Path(tempfile.mkdtemp(prefix="inboxd-pgbench-"))
    os.chmod(tmp, 0o755)  # the PostgreSQL server runs as an unprivileged user
    servers = []
    pgdir = tmp / "pg"
    next_id = [1]
    say = lambda *m: print(*m, file=sys.stderr, flush=True)  # noqa: E731

    # The mix's replies all answer a few fixed Message-IDs (five conversations that take
    # every reply). "hot": as they are; otherwise each reply answers a Message-ID of its
    # own (many conversations, as mail usually comes).
    sets = {}
    for kind in ("unique", "hot"):
        tdir = tmp / f"tmpl-{kind}"
        tdir.mkdir()
        for i, t in enumerate(gen.templates(a.src, 5120, token=f"p{os.getpid()}")):
            if kind == "unique":
                t = re.sub(r"<case-(\d+)@example\.org>", r"<case-\1.@@ID@@@example.org>", t)
            (tdir / f"{i:02d}.eml").write_bytes(t.encode("utf-8", "surrogateescape"))
        sets[kind] = sorted(str(p) for p in tdir.iterdir())

    env = dict(os.environ)
    if not a.no_fsync:
        env["INBOXD_PG_DURABLE"] = "1"
    base = subprocess.run(["sh", str(HERE.parents[0] / "pg" / "start.sh"), str(pgdir)],
                          check=True, capture_output=True, env=env).stdout.decode().strip()
    dbs = [0]

    def new_db():
        dbs[0] += 1
        name = f"bench{dbs[0]}"
        subprocess.run(["psql", "-X", "-q", base, "-c", f"CREATE DATABASE {name}"], check=True)
        return base.rsplit("/", 1)[0] + "/" + name

    def run_row(kind, nodes, files):
        db = new_db() if kind == "postgres" else str(tmp / f"sqlite{dbs[0]}-{next_id[0]}.db")
        srvs = []
        for n in range(nodes):
            s = Server(f"inboxd-{kind}-{nodes}-{n}-{next_id[0]}",
                       [inboxd, "serve", "--listen", "127.0.0.1:0", "--db", db], tmp)
            servers.append(s)
            srvs.append(s)
        results = [None] * nodes
        span = 10_000_000

        def one(i):
            argv = [load, "--port", str(srvs[i].port), "--conns", str(CONNS // nodes),
                    "--path", "/inbound/raw", "--id-start", str(next_id[0] + i * span),
                    "--duration", str(a.duration), "--warmup", str(a.warmup)] + files
            results[i] = run_json(argv)
        threads = [threading.Thread(target=one, args=(i,)) for i in range(nodes)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        next_id[0] += nodes * span
        for s in srvs:
            servers.remove(s)
            s.stop()
        ok = sum(r["ok"] for r in results)
        secs = max(r["seconds"] for r in results)
        errors = sum(r["errors"] + r["conn_errors"] + r["duplicates"] for r in results)
        p50 = max(r["p50_ms"] for r in results)
        p99 = max(r["p99_ms"] for r in results)
        return {"rate": ok / secs if secs else 0, "p50": p50, "p99": p99, "errors": errors}

    rows = [("SQLite, 1 node", "sqlite", 1, "unique"),
            ("PostgreSQL, 1 node", "postgres", 1, "unique"),
            ("PostgreSQL, 2 nodes", "postgres", 2, "unique"),
            ("PostgreSQL, 1 node, 5 hot threads", "postgres", 1, "hot"),
            ("PostgreSQL, 2 nodes, 5 hot threads", "postgres", 2, "hot")]
    got = {row[0]: [] for row in rows}
    try:
        for k in range(a.runs):
            for name, kind, nodes, refs in rows:
                say(f"run {k + 1}: {name}")
                got[name].append(run_row(kind, nodes, sets[refs]))
    finally:
        for s in servers:
            s.stop()
        subprocess.run(["sh", str(HERE.parents[0] / "pg" / "stop.sh"), str(pgdir)])
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    one = statistics.median(r["rate"] for r in got["PostgreSQL, 1 node"])
    print(f"\ninboxd ingest, 5 KB messages, {CONNS} clients split across the nodes, "
          f"{a.duration:g} s per run, median of {a.runs} runs; PostgreSQL "
          f"{'without fsync' if a.no_fsync else 'durable (fsync on)'}, local; "
          f"{os.cpu_count()} cores shared by everything\n")
    head = ["setup", "msg/s", "vs PG 1 node", "p50 ms", "p99 ms", "errors", "runs (msg/s)"]
    table = []
    for name, *_ in rows:
        rs = got[name]
        rate = statistics.median(r["rate"] for r in rs)
        table.append([name, f"{rate:.0f}", f"{rate / one:.2f}x" if one else "-",
                      f"{statistics.median(r['p50'] for r in rs):.1f}",
                      f"{statistics.median(r['p99'] for r in rs):.1f}",
                      str(sum(r["errors"] for r in rs)),
                      " ".join(f"{r['rate']:.0f}" for r in rs)])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *table)]
    for line in [head, ["-" * w for w in widths]] + table:
        print(" | ".join(str(x).ljust(w) for x, w in zip(line, widths)))


if __name__ == "__main__":
    main()
