#!/usr/bin/env python3
"""Forwarding benchmark (not part of ctest). Prints:

1. delivery throughput: events/s drained from a backlog to a local receiver that answers
   200 (a small C receiver on libmicrohttpd, keep-alive, so the receiver is not the
   bottleneck);
2. ingestion throughput with the CRM down (connection refused, and hanging) versus up.

Usage: tests/bench/forward_bench.py [--build DIR] [--messages N] [--clients C]
Needs a built inboxd (default build/inboxd) and a C compiler for the receiver."""
import argparse
import http.client
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[2]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def build_receiver(workdir):
    out = workdir / "forward_receiver"
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libmicrohttpd"],
                           capture_output=True, text=True, check=True).stdout.split()
    subprocess.run(["cc", "-O2", "-o", str(out), str(SRC / "tests/bench/forward_receiver.c")]
                   + flags, check=True)
    return out


class Receiver:
    def __init__(self, binary, port):
        self.port = port
        self.proc = subprocess.Popen([str(binary), str(port), "2"], stdout=subprocess.PIPE)
        self.proc.stdout.readline()

    def get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request("GET", path)
        n = int(c.getresponse().read())
        c.close()
        return n

    def count(self):
        return self.get("/count")

    def reset(self):
        self.get("/reset")

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def stop(self):
        self.proc.send_signal(signal.SIGCONT)
        self.proc.terminate()
        self.proc.wait()


class Inboxd:
    def __init__(self, binary, db, *flags):
        self.log = open(str(db) + ".log", "ab")
        self.proc = subprocess.Popen([str(binary), "serve", "--listen", "127.0.0.1:0", "--db",
                                      str(db), "--log-level", "warn"] + list(flags),
                                     stdout=subprocess.PIPE, stderr=self.log)
        line = self.proc.stdout.readline()
        m = re.match(rb"inboxd listening on http://127\.0\.0\.1:(\d+)", line)
        if not m:
            raise SystemExit(f"inboxd did not start: {line!r}")
        self.port = int(m.group(1))

    def stop(self):
        self.proc.terminate()
        rc = self.proc.wait(timeout=60)
        self.log.close()
        if rc != 0:
            raise SystemExit(f"inboxd exited {rc}")


def mail(i, rnd):
    body = "Hello,\r\n" + " ".join(rnd.choice(["printer", "invoice", "broken", "please",
                                               "help", "order", "thanks"])
                                   for _ in range(60)) + "\r\n"
    return (f"From: Customer {i} <c{i}@example.org>\r\nTo: help@example.com\r\n"
            f"Subject: Case {i}\r\nMessage-ID: <bench-{i}-{rnd.getrandbits(48):x}@example.org>\r\n"
            "Date: Mon, 06 Jan 2025 10:00:00 +0000\r\nContent-Type: text/plain; charset=utf-8"
            "\r\n\r\n" + body).encode()


def ingest(port, n, clients, seed):
    """POST N messages from CLIENTS keep-alive connections; returns messages/s."""
    rnd = random.Random(seed)
    bodies = [mail(seed * 1000000 + i, rnd) for i in range(n)]
    errors = []

    def worker(k):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for body in bodies[k::clients]:
            c.request("POST", "/inbound/raw", body=body,
                      headers={"Content-Type": "message/rfc822"})
            r = c.getresponse()
            r.read()
            if r.status != 200:
                errors.append(r.status)
        c.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    t0 = time.monotonic()
    [t.start() for t in threads]
    [t.join() for t in threads]
    dt = time.monotonic() - t0
    if errors:
        raise SystemExit(f"{len(errors)} posts failed: {errors[:5]}")
    return n / dt


def wait_count(recv, want, timeout=300):
    t0 = time.monotonic()
    while recv.count() < want:
        if time.monotonic() - t0 > timeout:
            raise SystemExit(f"only {recv.count()} of {want} events arrived")
        time.sleep(0.01)
    return time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=str(SRC / "build"))
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--clients", type=int, default=16)
    args = ap.parse_args()
    binary = Path(args.build) / "inboxd"
    work = Path(tempfile.mkdtemp(prefix="inboxd-bench-"))
    n = args.messages
    try:
        recv_bin = build_receiver(work)
        rport = free_port()
        recv = Receiver(recv_bin, rport)
        up = f"http://127.0.0.1:{rport}/hooks/inboxd"
        dead = f"http://127.0.0.1:{free_port()}/hooks/inboxd"
        common = ["--forward-secret", "bench-secret"]
        print(f"inboxd forwarding benchmark: {n} messages (2 events each), "
              f"{args.clients} ingest clients, {os.cpu_count()} cores")

        # Ingestion with the CRM refusing connections (every due event is retried).
        srv = Inboxd(binary, work / "refused.db", "--forward-url", dead, *common)
        rate_refused = ingest(srv.port, n, args.clients, 1)
        srv.stop()

        # Ingestion with the CRM hanging (a stopped process): the forwarder's window fills
        # and waits for timeouts; its backlog is then drained below.
        recv.pause()
        srv = Inboxd(binary, work / "backlog.db", "--forward-url", up, *common)
        rate_hanging = ingest(srv.port, n, args.clients, 2)
        srv.stop()  # puts the requests in flight back in the queue (after 5 s)
        recv.resume()
        time.sleep(0.5)
        recv.reset()

        # Delivery throughput: drain the backlog of 2N events.
        t0 = time.monotonic()
        srv = Inboxd(binary, work / "backlog.db", "--forward-url", up, *common)
        drain = wait_count(recv, 2 * n)
        drain_total = time.monotonic() - t0
        srv.stop()

        # Ingestion with the CRM up, and the end-to-end time until everything arrived.
        recv.reset()
        srv = Inboxd(binary, work / "up.db", "--forward-url", up, *common)
        t0 = time.monotonic()
        rate_up = ingest(srv.port, n, args.clients, 3)
        wait_count(recv, 2 * n)
        e2e = time.monotonic() - t0
        srv.stop()

        # Ingestion without forwarding, for reference.
        srv = Inboxd(binary, work / "off.db")
        rate_off = ingest(srv.port, n, args.clients, 4)
        srv.stop()
        recv.stop()

        print(f"delivery: {2 * n} backlog events drained in {drain:.2f} s "
              f"= {2 * n / drain:,.0f} events/s (including start-up: {2 * n / drain_total:,.0f})")
        print(f"ingest, forwarding off:          {rate_off:8,.0f} messages/s")
        print(f"ingest, CRM up (200):            {rate_up:8,.0f} messages/s "
              f"(all {2 * n} events delivered {e2e:.2f} s after the first post)")
        print(f"ingest, CRM down (refused):      {rate_refused:8,.0f} messages/s")
        print(f"ingest, CRM down (hanging):      {rate_hanging:8,.0f} messages/s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
