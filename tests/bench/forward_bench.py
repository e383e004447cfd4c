#!/usr/bin/env python3
"""Forwarding benchmark (not part of ctest). Prints:

1. delivery throughput: events/s drained from a backlog to a local receiver that answers
   200 (a small C receiver on libmicrohttpd, keep-alive, so the receiver is not the
   bottleneck);
2. ingestion throughput with the CRM down (connection refused, and hanging) versus up.

Usage: tests/bench/forward_bench.py [--build DIR] [--messages N] [--clients C] [--rounds R]
Each figure is the median of R rounds (all runs are printed): the machine is shared.
Needs a built inboxd (default build/inboxd) and a C compiler for the receiver."""
import argparse
import http.client
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[2]


def cpu_seconds(pid):
    """User + system CPU time of PID so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


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
    ap.add_argument("--rounds", type=int, default=3)
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
        print(f"inboxd forwarding benchmark: {n} messages (2 events each) per run, "
              f"{args.clients} ingest clients, {args.rounds} rounds, {os.cpu_count()} cores, "
              f"load average {load_average():.1f} at start")
        rates = {"off": [], "up": [], "refused": [], "hanging": []}
        drains, drain_cpus, e2es = [], [], []
        for rnd in range(args.rounds):
            seed = 10 * rnd
            # Reference: forwarding off.
            srv = Inboxd(binary, work / f"off{rnd}.db")
            rates["off"].append(ingest(srv.port, n, args.clients, seed + 1))
            srv.stop()

            # CRM refusing connections: every due event is attempted and rescheduled.
            srv = Inboxd(binary, work / f"refused{rnd}.db", "--forward-url", dead, *common)
            rates["refused"].append(ingest(srv.port, n, args.clients, seed + 2))
            srv.stop()

            # CRM hanging (a stopped process): the window fills and waits for timeouts.
            recv.pause()
            srv = Inboxd(binary, work / f"backlog{rnd}.db", "--forward-url", up, *common)
            rates["hanging"].append(ingest(srv.port, n, args.clients, seed + 3))
            srv.stop()  # puts the requests in flight back in the queue (after 5 s)
            recv.resume()
            time.sleep(0.5)
            recv.reset()

            # Delivery throughput: drain that backlog of 2N events.
            srv = Inboxd(binary, work / f"backlog{rnd}.db", "--forward-url", up, *common)
            c0 = cpu_seconds(srv.proc.pid)
            drains.append(2 * n / wait_count(recv, 2 * n))
            drain_cpus.append((cpu_seconds(srv.proc.pid) - c0) / (2 * n) * 1e6)
            srv.stop()

            # CRM up: ingestion, and the time until every event arrived.
            recv.reset()
            srv = Inboxd(binary, work / f"up{rnd}.db", "--forward-url", up, *common)
            t0 = time.monotonic()
            rates["up"].append(ingest(srv.port, n, args.clients, seed + 4))
            wait_count(recv, 2 * n)
            e2es.append(time.monotonic() - t0)
            srv.stop()
            recv.reset()
        recv.stop()

        def fmt(values):
            return (f"{statistics.median(values):8,.0f}  (runs: "
                    + ", ".join(f"{v:,.0f}" for v in values) + ")")
        print(f"delivery from a backlog, events/s:  {fmt(drains)}")
        print(f"  inboxd CPU per delivered event, us: {fmt(drain_cpus)}")
        print(f"ingest, messages/s, forwarding off: {fmt(rates['off'])}")
        print(f"ingest, messages/s, CRM up (200):   {fmt(rates['up'])}")
        print(f"  all {2 * n} events delivered, s after the first post: "
              + ", ".join(f"{v:.2f}" for v in e2es))
        print(f"ingest, messages/s, CRM refusing:   {fmt(rates['refused'])}")
        print(f"ingest, messages/s, CRM hanging:    {fmt(rates['hanging'])}")
        print(f"load average at the end: {load_average():.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
