#!/usr/bin/python3
"""Ticket list latency with filters (GET /api/tickets?status=&customer=&tag=&q=): stores
--messages unique 5 KB messages (the benchmark's 5 KB mix: a few customers with many
tickets each), then times each filter --rounds times on one keep-alive connection and
prints the medians. A status, a customer or a tag that few tickets have is the case an index
must serve: without one, the list scans every ticket. Not a test: it reports figures.

Usage (after tests/bench/run.sh has built build-bench/):
  tests/bench/list_latency.py [--messages 50000] [--rounds 15] [--build build-bench]
                              [--inboxd BIN] [--db postgresql://... [--no-analyze]]
"""
import argparse
import http.client
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen  # noqa: E402
from bench import Server  # noqa: E402

HERE = Path(__file__).resolve().parent


def post(c, mail):
    c.request("POST", "/inbound/raw", body=mail.encode(),
              headers={"Content-Type": "message/rfc822"})
    r = c.getresponse()
    r.read()
    if r.status not in (200, 201):
        sys.exit(f"ingest: {r.status}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=50000)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--build", default=str(HERE.parents[1] / "build-bench"))
    ap.add_argument("--inboxd", help="the server binary (default: BUILD/inboxd), for an A/B")
    ap.add_argument("--db", help="an empty database for the server (default: a new SQLite "
                    "file), e.g. a postgresql:// URI")
    ap.add_argument("--no-analyze", action="store_true",
                    help="PostgreSQL: time the queries before any ANALYZE of the new rows")
    ap.add_argument("--warmup", type=int, default=30,
                    help="untimed runs of each filter first (PostgreSQL: plans, caches)")
    a = ap.parse_args()
    build = Path(a.build)
    tmp = Path(tempfile.mkdtemp(prefix="inboxd-list-"))
    s = None
    try:
        tpl = gen.write_templates(HERE.parents[1], 5120, tmp)
        s = Server("inboxd", [a.inboxd or str(build / "inboxd"), "serve", "--listen", "127.0.0.1:0",
                              "--db", a.db or str(tmp / "inboxd.db")], tmp)
        # The oldest 1,000 messages share a word no later one has: a search whose matches
        # are all at the end of the list.
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
        for i in range(1000):
            post(c, f"From: Old <old{i % 50}@example.org>\r\nTo: help@example.com\r\n"
                    f"Subject: old {i}\r\nMessage-ID: <old{i}.{time.time_ns()}@example.org>"
                    f"\r\n\r\nThe quagga report, part {i}.\r\n")
        subprocess.run([str(build / "tests/bench/bench_load"), "--port", str(s.port),
                        "--conns", "32", "--requests", str(a.messages)] + tpl,
                       check=True, capture_output=True)
        # A new connection: the load may outlast the server's idle timeout on this one.
        c.close()
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)

        def get(path):
            t0 = time.perf_counter()
            c.request("GET", path)
            r = c.getresponse()
            doc = json.loads(r.read())
            if r.status != 200:
                sys.exit(f"{path}: {r.status} {doc}")
            return (time.perf_counter() - t0) * 1000, doc

        every = get("/api/tickets?limit=1")[1]["tickets"]
        busy = every[0]["customer"]["address"]
        tickets, deep = [], None
        page = get("/api/tickets?limit=200")[1]
        while True:
            tickets += page["tickets"]
            if not page["next_cursor"]:
                break
            if deep is None and len(tickets) >= a.messages * 0.8:
                deep = (len(tickets), page["next_cursor"])
            page = get(f"/api/tickets?limit=200&cursor={page['next_cursor']}")[1]
        of_busy = [t for t in tickets if t["customer"]["address"] == busy]
        # The busy customer's oldest ticket goes to "pending": the rare status.
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PATCH",
                            "-H", "Content-Type: application/json", "-d", '{"status":"pending"}',
                            f"http://127.0.0.1:{s.port}/api/tickets/{of_busy[-1]['id']}"],
                           capture_output=True, text=True)
        if r.stdout != "200":
            sys.exit(f"PATCH: {r.stdout}")
        # Tags: "escalated" on three tickets (the rare tag), "billing" on every seventh. The
        # PATCH makes them the newest; a stride of 7 spreads them over the customers, whose
        # tickets come round every 10 (the templates). The oldest 1,000 stay the oldest.
        fresh = [t for t in tickets if not t["subject"].startswith("old ")]
        for k, t in enumerate(fresh):
            tags = (["escalated"] if k in (7, len(fresh) // 2, len(fresh) - 5) else []) + \
                   (["billing"] if k % 7 == 3 else [])
            if tags:
                c.request("PATCH", f"/api/tickets/{t['id']}", body=json.dumps({"tags": tags}),
                          headers={"Content-Type": "application/json"})
                r = c.getresponse()
                r.read()
                if r.status != 200:
                    sys.exit(f"PATCH tags: {r.status}")
        # A customer with three tickets, the usual case for a person.
        for i in range(3):
            post(c, f"From: Rare <rare@example.org>\r\nTo: help@example.com\r\n"
                    f"Subject: rare {i}\r\nMessage-ID: <rare{i}.{time.time_ns()}@example.org>"
                    f"\r\n\r\nhello\r\n")
        newest = get("/api/tickets?limit=1")[1]["tickets"][0]["updated_at"]
        analyzed = ""
        if a.db and a.db.startswith("postgres") and not a.no_analyze:
            # What autovacuum does within a minute of a load like this one: before it, the
            # planner has the statistics of a nearly empty table (a tag on every seventh
            # ticket measured 11.7 ms then, 1.3 ms after).
            subprocess.run(["psql", "-X", "-q", a.db, "-c", "ANALYZE"], check=True)
            analyzed = ", after ANALYZE"
        rows = [("no filter", ""), ("status=open (most tickets)", "status=open"),
                ("status=pending (one ticket)", "status=pending"),
                (f"customer with {len(of_busy):,} tickets", f"customer={quote(busy)}"),
                ("customer with 3 tickets", "customer=rare%40example.org"),
                ("customer with no ticket", "customer=nobody%40example.invalid"),
                ("status=pending + that customer", f"status=pending&customer={quote(busy)}"),
                (f"no filter, {deep[0]:,} tickets deep (cursor)", f"cursor={deep[1]}"),
                ("updated_since the newest change (a poll, nothing new)",
                 f"updated_since={quote(newest)}"),
                ("tag on 3 tickets", "tag=escalated"),
                ("tag on every seventh ticket", "tag=billing"),
                ("tag on no ticket", "tag=nothing"),
                ("tag on 3 tickets + status=open", "tag=escalated&status=open"),
                ("search: a word in 3 messages", "q=rare"),
                ("search: a word in no message", "q=nothingatall"),
                ("search: a word in every fifth message or so", "q=invoice"),
                ("search: a word in the 1,000 oldest messages only", "q=quagga")]
        print(f"{len(tickets):,} tickets from {a.messages + 1003:,} messages; medians of {a.rounds}, "
              f"limit=50, one keep-alive connection{analyzed}\n")
        print("| filter | median | p90 | tickets returned |")
        print("| --- | --- | --- | --- |")
        for label, query in rows:
            for _ in range(a.warmup):
                get(f"/api/tickets?limit=50&{query}")
            times, n = [], 0
            for _ in range(a.rounds):
                ms, doc = get(f"/api/tickets?limit=50&{query}")
                times.append(ms)
                n = len(doc["tickets"])
            times.sort()
            print(f"| {label} | {statistics.median(times):.2f} ms | "
                  f"{times[int(0.9 * (len(times) - 1))]:.2f} ms | {n} |")
    finally:
        if s:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
