#!/usr/bin/python3
"""Head-of-line blocking: how long /healthz waits while large messages are parsed.

Eight keep-alive clients ask GET /healthz every 5 ms while two clients post 20 MB
messages (a base64 attachment each), three apiece. A message parsed on the HTTP thread
that received it holds every other connection of that thread until the parse ends; a
large body parsed on the offload pool holds none. Prints the latency of the health
checks made while the posts ran (median, p99, worst) and of the posts themselves.

usage: head_of_line.py [--inboxd BIN] [--runs N] [--size BYTES] [--tmp DIR]
Everything listens on 127.0.0.1 with a kernel-chosen port and is stopped by pid."""
import argparse
import http.client
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench  # noqa: E402
import gen  # noqa: E402

POLLERS = 8
POSTERS = 2
POSTS_EACH = 3


def one_run(inboxd, messages, tmp):
    d = tempfile.mkdtemp(prefix="hol-", dir=tmp)
    s = bench.Server("inboxd", [inboxd, "serve", "--listen", "127.0.0.1:0",
                                "--db", str(Path(d) / "inboxd.db")], d)
    stop = threading.Event()
    lat, posts = [], []
    measuring = threading.Event()

    def poll():
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
        while not stop.is_set():
            t = time.perf_counter()
            c.request("GET", "/healthz")
            c.getresponse().read()
            if measuring.is_set():
                lat.append(time.perf_counter() - t)
            time.sleep(0.005)
        c.close()

    def post(k):
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=300)
        for i in range(POSTS_EACH):
            t = time.perf_counter()
            c.request("POST", "/inbound/raw", body=messages[(k * POSTS_EACH + i) % len(messages)],
                      headers={"Content-Type": "message/rfc822"})
            r = c.getresponse()
            r.read()
            posts.append((r.status, time.perf_counter() - t))
        c.close()

    try:
        pollers = [threading.Thread(target=poll) for _ in range(POLLERS)]
        for t in pollers:
            t.start()
        time.sleep(0.5)
        measuring.set()
        posters = [threading.Thread(target=post, args=(k,)) for k in range(POSTERS)]
        for t in posters:
            t.start()
        for t in posters:
            t.join()
        measuring.clear()
        stop.set()
        for t in pollers:
            t.join()
    finally:
        stop.set()
        s.stop()
        shutil.rmtree(d, ignore_errors=True)
    lat.sort()
    return {"checks": len(lat), "p50": statistics.median(lat) * 1e3,
            "p99": lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1e3, "max": lat[-1] * 1e3,
            "over_50ms": sum(x > 0.05 for x in lat),
            "post_statuses": sorted({st for st, _ in posts}),
            "post_p50": statistics.median(d for _, d in posts) * 1e3}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--inboxd", default=str(HERE.parents[1] / "build-bench" / "inboxd"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size", type=int, default=20 << 20)
    ap.add_argument("--tmp", default=None)
    a = ap.parse_args()
    src = str(HERE.parents[1])
    n = POSTERS * POSTS_EACH
    messages = [gen.render(m, 700000000 + i) for i, m in
                enumerate(gen.templates(src, a.size, token=f"hol{int(time.time())}", count=n))]
    print(f"{a.inboxd}: {POSTERS} clients post {n} messages of {len(messages[0]):,} bytes; "
          f"{POLLERS} clients ask /healthz every 5 ms meanwhile")
    print("| run | health checks | p50 | p99 | worst | over 50 ms | posts | post p50 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    worst = []
    for k in range(a.runs):
        r = one_run(a.inboxd, messages, a.tmp)
        worst.append(r["max"])
        print(f"| {k + 1} | {r['checks']} | {r['p50']:.1f} ms | {r['p99']:.1f} ms | "
              f"{r['max']:.1f} ms | {r['over_50ms']} | {r['post_statuses']} | "
              f"{r['post_p50']:.0f} ms |", flush=True)
    print(f"median of the worst health checks: {statistics.median(worst):.1f} ms")


if __name__ == "__main__":
    main()
