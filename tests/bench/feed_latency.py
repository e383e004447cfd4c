#!/usr/bin/python3
"""Change-feed wake-up latency (issue 6): one client waits in GET /api/events?wait=30
while another posts a message; the figure is the time from the ingest's 200 (the commit)
to the long poll's answer, and to an SSE client's event. Prints median and p99 over
--rounds posts. Not a test.

Usage (after tests/bench/run.sh has built build-bench/):
  tests/bench/feed_latency.py [--rounds 200] [--build build-bench]
"""
import argparse
import http.client
import json
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import Server  # noqa: E402

HERE = Path(__file__).resolve().parent


def mail(i):
    return (f"From: a@example.org\r\nTo: help@example.com\r\nSubject: latency {i}\r\n"
            f"Message-ID: <lat{i}.{time.time_ns()}@example.org>\r\n\r\nhello\r\n").encode()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--build", default=str(HERE.parents[1] / "build-bench"))
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="inboxd-feed-"))
    s = Server("inboxd", [str(Path(a.build) / "inboxd"), "serve", "--listen", "127.0.0.1:0",
                          "--db", str(tmp / "inboxd.db")], tmp)
    poll_ms, sse_ms = [], []
    try:
        post = http.client.HTTPConnection("127.0.0.1", s.port)
        sse = socket.create_connection(("127.0.0.1", s.port))
        sse.sendall(b"GET /api/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        sse_buf = bytearray()
        last = 0
        for i in range(a.rounds):
            got = {}

            def poll():
                c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
                c.request("GET", f"/api/events?after={last}&wait=30")
                got["doc"] = json.loads(c.getresponse().read())
                got["t"] = time.perf_counter()
                c.close()
            th = threading.Thread(target=poll)
            th.start()
            time.sleep(0.02)  # the poll is waiting
            post.request("POST", "/inbound/raw", body=mail(i),
                         headers={"Content-Type": "message/rfc822"})
            r = post.getresponse()
            r.read()
            acked = time.perf_counter()
            th.join()
            poll_ms.append((got["t"] - acked) * 1000)
            last = got["doc"]["last_seq"]
            # the SSE client's copy of the same event
            while f"id: {last}\n".encode() not in sse_buf:
                sse_buf += sse.recv(65536)
            sse_ms.append((time.perf_counter() - acked) * 1000)
            sse_buf.clear()
        sse.close()
    finally:
        s.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    def q(v, p):
        v = sorted(v)
        return v[min(len(v) - 1, int(p * len(v)))]
    print("| client | median after the 200 | p99 |")
    print("| --- | --- | --- |")
    print(f"| long poll | {statistics.median(poll_ms):.2f} ms | {q(poll_ms, .99):.2f} ms |")
    print(f"| Server-Sent Events | {statistics.median(sse_ms):.2f} ms | {q(sse_ms, .99):.2f} ms |")
    print(f"({a.rounds} posts; negative values mean the event arrived before the ingest's "
          "own reply was read)")


if __name__ == "__main__":
    main()
