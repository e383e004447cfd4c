#!/usr/bin/python3
"""inboxd benchmark: references and inboxd side by side, in one run, with ratios.

Run through tests/bench/run.sh (which builds the programs); see tests/bench/README.md.
Everything listens on 127.0.0.1 with a kernel-chosen port, lives in one temporary
directory, and is stopped by pid. Python stdlib only.
"""
import argparse
import http.client
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen  # noqa: E402

HERE = Path(__file__).resolve().parent
CONNS = 32
# The writer's group commits (GET /metrics), read before and after the ingest run.
GROUP_METRICS = ("inboxd_store_group_commits_total", "inboxd_store_jobs_total",
                 "inboxd_store_group_commit_duration_seconds_sum")

# ---- processes ---------------------------------------------------------------------------


class Server:
    """A server process started by us: its pid, port and log."""

    def __init__(self, name, argv, tmp, env=None, port_of=None):
        self.name = name
        self.log = open(Path(tmp) / f"{name}.log", "ab")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log,
                                     stdin=subprocess.DEVNULL, env=env)
        line = self.proc.stdout.readline().decode().strip()
        if not line:
            self.stop()
            raise RuntimeError(f"{name} did not start (see {self.log.name})")
        self.port = int(line.rsplit(":", 1)[-1].split()[-1]) if port_of is None else port_of(line)
        self.pid = self.proc.pid

    def status(self, key):
        """A /proc/PID/status value in kB (VmRSS, VmHWM)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        return 0

    def reset_hwm(self):
        """Reset the RSS high-water mark (Linux: "5" > clear_refs). False if refused."""
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            return True
        except OSError:
            return False

    def write_bytes(self):
        """Bytes this process sent to the storage layer so far (/proc/PID/io)."""
        for line in Path(f"/proc/{self.pid}/io").read_text().splitlines():
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
        return 0

    def thread_cpu(self):
        """{tid: (name, CPU seconds)} of every thread (/proc/PID/task/*/stat)."""
        out, hz = {}, os.sysconf("SC_CLK_TCK")
        for t in os.listdir(f"/proc/{self.pid}/task"):
            try:
                stat = Path(f"/proc/{self.pid}/task/{t}/stat").read_text()
            except OSError:
                continue
            name = stat[stat.index("(") + 1:stat.rindex(")")]
            f = stat[stat.rindex(")") + 2:].split()
            out[t] = (name, (int(f[11]) + int(f[12])) / hz)
        return out

    def metrics(self, *names):
        """{name: value} of the Prometheus samples NAMES (no labels) from GET /metrics."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            c.request("GET", "/metrics")
            text = c.getresponse().read().decode()
        finally:
            c.close()
        found = {}
        for line in text.splitlines():
            f = line.split()
            if len(f) == 2 and f[0] in names:
                found[f[0]] = float(f[1])
        return found

    def fds(self):
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc.stdout.close()
        self.log.close()
        return self.proc.returncode


def run_json(argv, **kw):
    """Run a reference program; its JSON result, plus the bytes it wrote to storage."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_oublock
    out = subprocess.run(argv, check=True, capture_output=True, **kw).stdout.decode()
    r = json.loads(out.strip().splitlines()[-1])
    r["write_bytes"] = (resource.getrusage(resource.RUSAGE_CHILDREN).ru_oublock - before) * 512
    return r


def cpu_split(before, after, n):
    """CPU microseconds per message by thread (inboxd names its threads): the HTTP workers
    together, the writer, the search indexer, the rest (checkpoints, main, forwarder)."""
    d = {t: (after[t][0], after[t][1] - before.get(t, (None, 0))[1]) for t in after}
    http = sum(c for name, c in d.values() if name.startswith(("MHD", "http-offload")))
    writer = sum(c for name, c in d.values() if name == "store-writer")
    index = sum(c for name, c in d.values() if name == "search-index")
    rest = sum(d[t][1] for t in d) - http - writer - index
    n = max(1, n)
    return {"http_workers": http * 1e6 / n, "writer": writer * 1e6 / n,
            "search_index": index * 1e6 / n, "other": rest * 1e6 / n}


class Bench:
    def __init__(self, args):
        self.a = args
        self.build = Path(args.build_dir).resolve()
        self.bin = self.build / "tests" / "bench"
        self.inboxd = str(self.build / "inboxd")
        self.tmp = Path(tempfile.mkdtemp(prefix="inboxd-bench-", dir=args.tmp))
        self.results = {}
        self.next_id = 1
        self.servers = []

    # ---- helpers ---------------------------------------------------------------------
    def path(self, *parts):
        p = self.tmp.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def templates(self, size, count=None):
        """Write the load templates of SIZE bytes once; return their paths."""
        d = self.path(f"tmpl-{size}")
        if not d.exists():
            d.mkdir()
            for i, t in enumerate(gen.templates(self.a.src, size, token=f"b{os.getpid()}",
                                                count=count)):
                (d / f"{i:02d}.eml").write_bytes(t.encode("utf-8", "surrogateescape"))
        return sorted(str(p) for p in d.iterdir())

    def rendered(self, size):
        """The SIZE templates with real ids (for the GMime and SQLite references)."""
        d = self.path(f"rendered-{size}")
        if not d.exists():
            d.mkdir()
            for i, t in enumerate(gen.templates(self.a.src, size)):
                (d / f"{i:02d}.eml").write_bytes(gen.render(t, i + 1))
        return sorted(str(p) for p in d.iterdir())

    def start(self, name, argv, **kw):
        s = Server(name, argv, self.tmp, **kw)
        self.servers.append(s)
        return s

    def stop(self, s):
        self.servers.remove(s)
        return s.stop()

    def start_inboxd(self, tag, extra=()):
        db = self.path(f"inboxd-{tag}", "inboxd.db")
        return self.start(f"inboxd-{tag}", [self.inboxd, "serve", "--listen", "127.0.0.1:0",
                                            "--db", str(db), *extra])

    def load(self, port, files, conns=CONNS, duration=None, requests=None, warmup=None,
             path="/inbound/raw"):
        argv = [str(self.bin / "bench_load"), "--port", str(port), "--conns", str(conns),
                "--path", path, "--id-start", str(self.next_id)]
        if requests:
            argv += ["--requests", str(requests)]
        else:
            argv += ["--duration", str(duration or self.a.duration),
                     "--warmup", str(self.a.warmup if warmup is None else warmup)]
        r = run_json(argv + list(files))
        self.next_id = r["next_id"] + 1
        return r

    def say(self, *msg):
        print(*msg, file=sys.stderr, flush=True)

    # ---- 1-5: one round ----------------------------------------------------------------
    def round(self, k):
        t5 = self.templates(5120)
        r5 = self.rendered(5120)
        res = {}
        self.say(f"round {k}: bare libmicrohttpd")
        s = self.start("mhd", [str(self.bin / "bench_mhd_ref"), "2"])
        res["mhd"] = self.load(s.port, t5)
        self.stop(s)

        self.say(f"round {k}: GMime parse + decode")
        res["gmime"] = run_json([str(self.bin / "bench_gmime_ref"), "--seconds",
                                 str(self.a.duration / 2), *r5])

        for batch in (1, 64):
            self.say(f"round {k}: SQLite WAL FULL, {batch}/commit")
            db = self.path(f"sqlite-{k}-{batch}", "ref.db")
            res[f"sqlite{batch}"] = run_json([str(self.bin / "bench_sqlite_ref"), str(db), r5[0],
                                              str(batch), str(self.a.duration / 2)])
            shutil.rmtree(db.parent)

        self.say(f"round {k}: inboxd ingest")
        s = self.start_inboxd(f"round{k}")
        first, w0, c0 = self.next_id, s.write_bytes(), s.thread_cpu()
        m0, t0 = s.metrics(*GROUP_METRICS), time.monotonic()
        res["inboxd"] = self.load(s.port, t5)
        res["inboxd"]["write_bytes"] = s.write_bytes() - w0
        m1, t1 = s.metrics(*GROUP_METRICS), time.monotonic()
        res["inboxd"]["groups"] = {k: m1.get(k, 0) - m0.get(k, 0) for k in GROUP_METRICS}
        res["inboxd"]["groups"]["wall_s"] = t1 - t0  # warm-up included, like the groups
        n = res["inboxd"]["messages"] = self.next_id - 1 - first
        res["inboxd"]["cpu_us"] = cpu_split(c0, s.thread_cpu(), n)
        res["inboxd"]["exit"] = self.stop(s)

        self.say(f"round {k}: Python stdlib peer")
        db = self.path(f"peer-{k}", "peer.db")
        s = self.start("peer", [sys.executable, str(HERE / "peer.py"), str(db)])
        res["peer"] = self.load(s.port, t5)
        self.stop(s)
        return res

    # ---- 6: inboxd parse vs GMime walk ---------------------------------------------------
    def parse(self):
        d = self.path("corpus")
        d.mkdir(exist_ok=True)
        files = []
        shapes = {}
        for i, (shape, m) in enumerate(gen.corpus(self.a.src, self.a.corpus)):
            p = d / f"{i:05d}-{shape}.eml"
            p.write_bytes(gen.render(m, 10**9 + i))
            files.append(str(p))
            shapes[shape] = shapes.get(shape, 0) + 1
        total = sum(os.path.getsize(f) for f in files)
        # Correctness first: every file gives one JSON line, exit 0.
        out = subprocess.run([self.inboxd, "parse", *files], capture_output=True)
        lines = out.stdout.count(b"\n")
        res = {"files": len(files), "bytes": total, "shapes": shapes, "exit": out.returncode,
               "json_lines": lines, "runs": []}

        def timed(argv):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.monotonic()
            with open(os.devnull, "wb") as null:
                rc = subprocess.run(argv, stdout=null, stderr=subprocess.DEVNULL).returncode
            wall = time.monotonic() - t0
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            return {"wall": wall, "cpu": cpu, "rc": rc}

        for k in range(self.a.runs):
            self.say(f"parse run {k + 1}/{self.a.runs}")
            ib = timed([self.inboxd, "parse", *files])
            gm = timed([str(self.bin / "bench_gmime_ref"), "--files", *files])
            res["runs"].append({"inboxd": ib, "gmime": gm})
        return res

    # ---- 7: peak memory of a 20 MB message ------------------------------------------------
    def memory(self):
        size = 20 * 1024 * 1024
        big = self.templates(size, count=1)
        s = self.start_inboxd("memory")
        self.load(s.port, self.templates(5120), conns=4, requests=40)
        time.sleep(0.5)
        idle = s.status("VmRSS")
        reset = s.reset_hwm()
        if not reset:
            idle = max(idle, s.status("VmHWM"))
        r = self.load(s.port, big, conns=1, requests=1)
        hwm = s.status("VmHWM")
        s.rss_after = s.status("VmRSS")
        res = {"message_bytes": os.path.getsize(big[0]), "idle_kb": idle, "hwm_kb": hwm,
               "rss_after_kb": s.rss_after, "hwm_reset": reset, "load": r}
        res["exit"] = self.stop(s)
        res["ratio"] = (hwm - idle) * 1024 / res["message_bytes"]
        return res

    # ---- 8: 10,000 idle long polls ------------------------------------------------------------
    def idle(self):
        n = self.a.idle
        s = self.start_inboxd("idle")
        time.sleep(0.3)
        before, fds_before = s.status("VmRSS"), s.fds()
        # From 400 clients per address 127.0.0.x: inboxd limits connections per address
        # (--max-connections-per-ip), and 10,000 dashboards are not one machine.
        hold = subprocess.Popen([str(self.bin / "bench_load"), "--port", str(s.port), "--hold",
                                 "--conns", str(n), "--sources", str((n + 399) // 400),
                                 "--path", "/api/events?after=0&wait=60"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        res = {"clients": n}
        try:
            line = hold.stdout.readline().decode().split()
            res["open_ms"] = int(line[2]) if len(line) == 3 else None
            deadline = time.monotonic() + 20
            while s.fds() < fds_before + n and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(1)
            res["server_fds"] = s.fds() - fds_before
            res["rss_before_kb"], res["rss_after_kb"] = before, s.status("VmRSS")
            t0 = time.monotonic()
            c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
            try:
                c.request("GET", "/healthz")
                resp = c.getresponse()
                res["healthz"] = resp.status
                res["healthz_body"] = resp.read().decode()[:100]
            except OSError as e:
                res["healthz"] = str(e)
            c.close()
            res["healthz_ms"] = (time.monotonic() - t0) * 1000
            res["hold"] = self.hold_status(hold)
            # One message while they wait: it is stored, and its event answers every
            # waiter (the change feed's fan-out).
            t0 = time.monotonic()
            res["ingest_while_held"] = self.load(s.port, self.templates(5120), conns=1,
                                                 requests=1)
            deadline = time.monotonic() + 30
            while True:
                st = self.hold_status(hold)
                if st["still_waiting"] == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            res["fanout_ms"] = (time.monotonic() - t0) * 1000
            res["hold_after_event"] = st
        finally:
            out, _ = hold.communicate(b"stop\n", timeout=60)
        res["exit"] = self.stop(s)
        return res

    @staticmethod
    def hold_status(hold):
        hold.stdin.write(b"status\n")
        hold.stdin.flush()
        return json.loads(hold.stdout.readline().decode())

    # ---- 10: forwarding ---------------------------------------------------------------------
    def forward(self):
        """inboxd with --forward-url at a receiver that answers 200 (bench_mhd_ref, which
        counts POSTs), N messages ingested as fast as they go. While the forwarder keeps up,
        its rate is the ingest's; the backlog left when the ingest ends drains at the
        forwarder's own rate, which is the figure (events/s)."""
        n = self.a.forward
        recv = self.start("receiver", [str(self.bin / "bench_mhd_ref"), "2"])

        def count():
            c = http.client.HTTPConnection("127.0.0.1", recv.port, timeout=5)
            try:
                c.request("GET", "/count")
                return int(c.getresponse().read())
            finally:
                c.close()

        s = self.start_inboxd("forward", ["--forward-url",
                                          f"http://127.0.0.1:{recv.port}/hook"])
        t0 = time.monotonic()
        fill = self.load(s.port, self.templates(5120), requests=n)
        t1, c1 = time.monotonic(), count()
        last, t_last = c1, t1
        while time.monotonic() < t1 + 300:
            time.sleep(0.05)
            c, now = count(), time.monotonic()
            if c > last:
                last, t_last = c, now
            elif now - t_last > 3:
                break
        res = {"messages": n, "stored": fill["ok"], "ingest_s": t1 - t0,
               "at_ingest_end": c1, "delivered": last, "seconds": t_last - t0,
               "exit": self.stop(s)}
        self.stop(recv)
        res["overall_rate"] = last / res["seconds"] if res["seconds"] > 0 else 0
        backlog = last - c1
        res["drain_rate"] = backlog / (t_last - t1) if backlog > 0 and t_last > t1 else None
        res["rate"] = res["drain_rate"] if res["drain_rate"] else res["overall_rate"]
        return res

    # ---- 9: scaling -----------------------------------------------------------------------
    def scaling(self):
        rows = []
        plan = [(1024, 32), (5120, 32), (65536, 32), (1 << 20, 16), (20 << 20, 4)]
        for size, conns in plan:
            self.say(f"scaling: size {size}, {conns} clients")
            files = self.templates(size)
            s = self.start_inboxd(f"size{size}")
            if size >= (1 << 20):
                r = self.load(s.port, files, conns=conns, requests=8 * conns if size < (20 << 20) else 16)
            else:
                r = self.load(s.port, files, conns=conns)
            r["exit"] = self.stop(s)
            rows.append({"kind": "size", "size": size, "conns": conns, **r})
        for conns in (1, 8, 32, 128, 256):
            self.say(f"scaling: 5 KB, {conns} clients")
            s = self.start_inboxd(f"conns{conns}")
            r = self.load(s.port, self.templates(5120), conns=conns)
            r["exit"] = self.stop(s)
            rows.append({"kind": "conns", "size": 5120, "conns": conns, **r})
        return rows

    def close(self):
        for s in list(self.servers):
            self.stop(s)
        if not self.a.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)


# ---- report ---------------------------------------------------------------------------------

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def fmt(x, unit=""):
    if isinstance(x, str):
        return x
    if x != x:
        return "n/a"
    if abs(x) >= 100:
        s = f"{x:,.0f}"
    elif abs(x) >= 10:
        s = f"{x:.1f}"
    else:
        s = f"{x:.2f}"
    return s + (f" {unit}" if unit else "")


def table(head, rows):
    widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"
    out = [line(head), "| " + " | ".join("-" * w for w in widths) + " |"]
    out += [line(r) for r in rows]
    return "\n".join(out)


def writer_groups(rounds):
    """From the ingest run's /metrics: jobs per group commit, a group's mean duration and
    the share of the run the writer spent in groups (near 100 %: the writer is the bound)."""
    per, mean, busy = [], [], []
    for r in rounds:
        g = r["inboxd"].get("groups") or {}
        n = g.get("inboxd_store_group_commits_total", 0)
        if not n:
            continue
        per.append(g["inboxd_store_jobs_total"] / n)
        mean.append(g["inboxd_store_group_commit_duration_seconds_sum"] / n * 1000)
        if g.get("wall_s"):
            busy.append(g["inboxd_store_group_commit_duration_seconds_sum"] / g["wall_s"])
    if not per:
        return "n/a"
    return f"{fmt(med(per))} / {fmt(med(mean), 'ms')} / {fmt(med(busy) * 100, '%')}"


def report(b, rounds, parse, mem, idle, scale, fwd):
    R = {"rounds": rounds, "parse": parse, "memory": mem, "idle": idle, "scaling": scale,
         "forward": fwd}
    lines = []
    verdicts = []

    def verdict(name, ok):
        verdicts.append((name, ok))
        return "yes" if ok else "NO"

    if rounds:
        g = lambda key, f="rate": med([r[key][f] for r in rounds])
        ratio = lambda num, den: med([r[num]["rate"] / r[den]["rate"] for r in rounds
                                     if r[den]["rate"]])
        ib = [r["inboxd"] for r in rounds]
        errors = sum(r["errors"] + r["conn_errors"] for r in ib)
        dups = sum(r["duplicates"] for r in ib)
        r64, rpeer = ratio("inboxd", "sqlite64"), ratio("inboxd", "peer")
        load_cost = med([r["mhd"]["loader_cpu_s"] / max(1, r["mhd"]["ok"]) for r in rounds])
        gen_cap = 1 / load_cost if load_cost else float("nan")
        rows = [
            ["1 bare libmicrohttpd, epoll, 2 threads, 200 to POST", fmt(g("mhd"), "req/s"), "", ""],
            ["2 GMime parse + decode, one core", fmt(g("gmime"), "msg/s"), "", ""],
            ["3a SQLite WAL FULL, 1 message per commit", fmt(g("sqlite1"), "msg/s"), "", ""],
            ["3b SQLite WAL FULL, 64 messages per commit", fmt(g("sqlite64"), "msg/s"), "", ""],
            ["4 Python stdlib peer (http.server + email + sqlite3)", fmt(g("peer"), "msg/s"),
             "", ""],
            ["5 inboxd durable ingest, unique 5 KB, POST /inbound/raw", fmt(g("inboxd"), "msg/s"),
             "", ""],
            ["5 inboxd / 3b (SQLite 64 per commit)", fmt(r64 * 100, "%"), ">= 50%",
             verdict("ingest vs SQLite group commit", r64 >= 0.5)],
            ["5 inboxd / 4 (Python peer)", fmt(rpeer, "x"), ">= 20x",
             verdict("ingest vs Python peer", rpeer >= 20)],
            ["5 inboxd errors (non-2xx + connection) / duplicates", f"{errors} / {dups}", "0 / 0",
             verdict("zero errors", errors == 0 and dups == 0)],
            ["5 inboxd latency p50 / p99", f"{fmt(med([r['p50_ms'] for r in ib]))} / "
             f"{fmt(med([r['p99_ms'] for r in ib]), 'ms')}", "", ""],
            ["5 inboxd / 1 (share of the HTTP floor)", fmt(ratio("inboxd", "mhd") * 100, "%"), "",
             ""],
            ["  inboxd CPU per message: HTTP workers (parse) / writer / search index / rest",
             " / ".join(fmt(med([r['inboxd']['cpu_us'][k] for r in rounds]), 'us')
                        for k in ("http_workers", "writer", "search_index", "other")), "", ""],
            ["  writer: messages per group commit / mean group (inserts + fsync) / busy",
             writer_groups(rounds), "", ""],
            ["  one durable commit (3a: 1000 / rate)", fmt(1000 / g("sqlite1"), "ms"), "", ""],
            ["  storage bytes written per 5 KB message: 3b / 5",
             f"{fmt(med([r['sqlite64']['write_bytes'] / r['sqlite64']['messages'] for r in rounds]) / 1024, 'KiB')}"
             f" / {fmt(med([r['inboxd']['write_bytes'] / max(1, r['inboxd']['messages']) for r in rounds]) / 1024, 'KiB')}",
             "", ""],
            ["  load generator: CPU per request / capacity per core",
             f"{fmt(load_cost * 1e6, 'us')} / {fmt(gen_cap, 'req/s')}",
             f">> {fmt(g('inboxd'))}", verdict("generator not the bottleneck",
                                              gen_cap >= 10 * g("inboxd"))],
        ]
    else:
        rows = []
    if parse:
        ib_cpu = med([r["inboxd"]["cpu"] for r in parse["runs"]])
        gm_cpu = med([r["gmime"]["cpu"] for r in parse["runs"]])
        ib_wall = med([r["inboxd"]["wall"] for r in parse["runs"]])
        gm_wall = med([r["gmime"]["wall"] for r in parse["runs"]])
        n = parse["files"]
        pr = med([r["gmime"]["cpu"] / r["inboxd"]["cpu"] for r in parse["runs"]])
        ok = parse["exit"] == 0 and parse["json_lines"] == n and \
            all(r["inboxd"]["rc"] == 0 for r in parse["runs"])
        rows += [
            [f"6 inboxd parse, {n} files ({parse['bytes'] / 1e6:.1f} MB), per CPU-second",
             fmt(n / ib_cpu, "msg/s"), "", ""],
            ["6 bare GMime parse-and-decode walk, same files, per CPU-second",
             fmt(n / gm_cpu, "msg/s"), "", ""],
            ["6 inboxd parse / GMime walk (CPU; wall-clock in brackets)",
             f"{fmt(pr * 100, '%')} ({fmt(gm_wall / ib_wall * 100, '%')})", ">= 35%",
             verdict("parse vs bare GMime", pr >= 0.35)],
            ["6 inboxd parse: exit 0, one JSON line per file", f"{parse['exit']}, "
             f"{parse['json_lines']}/{n}", f"0, {n}/{n}", verdict("parse output", ok)],
        ]
    if mem:
        rows += [
            [f"7 20 MB message ({mem['message_bytes'] / 1e6:.1f} MB): peak RSS - idle RSS",
             f"{fmt((mem['hwm_kb'] - mem['idle_kb']) / 1024, 'MiB')} (idle "
             f"{fmt(mem['idle_kb'] / 1024, 'MiB')})", "", ""],
            ["7 peak growth / message size", fmt(mem["ratio"], "x"), "<= 2.5x",
             verdict("20 MB peak memory", mem["ratio"] <= 2.5 and mem["load"]["ok"] == 1)],
        ]
    if idle:
        h, h2 = idle["hold"], idle["hold_after_event"]
        grow = idle["rss_after_kb"] - idle["rss_before_kb"]
        ok = (h["still_waiting"] == idle["clients"] and idle["healthz"] == 200 and
              idle["ingest_while_held"]["ok"] == 1 and h2["answered"] == idle["clients"])
        rows += [
            [f"8 {idle['clients']:,} idle long polls: RSS before -> after",
             f"{fmt(idle['rss_before_kb'] / 1024)} -> {fmt(idle['rss_after_kb'] / 1024, 'MiB')}"
             f" ({fmt(grow * 1024 / idle['clients'] / 1024, 'KiB')}/client)", "", ""],
            ["8 held (waiting / answered / closed); /healthz while held",
             f"{h['still_waiting']} / {h['answered']} / {h['closed']}; "
             f"{idle['healthz']} in {fmt(idle['healthz_ms'], 'ms')}",
             f"{idle['clients']} / 0 / 0; 200", verdict("idle clients held", ok)],
            ["8 one new message: all long polls answered in",
             f"{fmt(idle['fanout_ms'], 'ms')} ({h2['answered']} answered)", "", ""],
        ]
    if fwd:
        how = (f"draining a backlog of {fwd['delivered'] - fwd['at_ingest_end']:,}"
               if fwd["drain_rate"] else "kept up with the ingest: a lower bound")
        rows += [
            [f"10 forwarding to a local 200 receiver: {fwd['delivered']:,} events of "
             f"{fwd['stored']:,} messages", (fmt(fwd["rate"], "events/s") + f" ({how})")
             if fwd["delivered"] else "n/a (nothing delivered: no forwarder?)", ">= 2,000/s",
             verdict("forwarding rate", fwd["rate"] >= 2000 and fwd["delivered"] >= fwd["stored"])],
        ]
    out = ["", "## inboxd benchmark", "",
           table(["figure", "measured", "target", "met"], rows)]
    if rounds:
        out += ["", f"Medians of {len(rounds)} rounds (each round runs 1-5 back to back; ratios "
                    f"are taken within a round, then the median); {b.a.duration:g} s per "
                    f"load run after {b.a.warmup:g} s warm-up, {CONNS} keep-alive clients."]
        per = [[str(i + 1)] + [fmt(r[k]["rate"]) for k in
                               ("mhd", "gmime", "sqlite1", "sqlite64", "peer", "inboxd")] +
               [fmt(r["inboxd"]["rate"] / r["sqlite64"]["rate"] * 100, "%"),
                fmt(r["inboxd"]["rate"] / r["peer"]["rate"], "x"),
                fmt(r["inboxd"]["p99_ms"], "ms")]
               for i, r in enumerate(rounds)]
        out += ["", table(["round", "1 MHD", "2 GMime", "3a SQL 1", "3b SQL 64", "4 Python",
                           "5 inboxd", "5/3b", "5/4", "5 p99"], per)]
    if scale:
        srow = [[fmt(r["size"] / 1024, "KiB") if r["size"] < (1 << 20) else
                 fmt(r["size"] / (1 << 20), "MiB"), str(r["conns"]), fmt(r["rate"], "msg/s"),
                 fmt(r["mb_per_s"], "MB/s"), fmt(r["p50_ms"], "ms"), fmt(r["p99_ms"], "ms"),
                 f"{r['errors'] + r['conn_errors']}"] for r in scale if r["kind"] == "size"]
        crow = [[str(r["conns"]), fmt(r["rate"], "msg/s"), fmt(r["p50_ms"], "ms"),
                 fmt(r["p99_ms"], "ms"), f"{r['errors'] + r['conn_errors']}"]
                for r in scale if r["kind"] == "conns"]
        out += ["", "### inboxd throughput vs message size", "",
                table(["size", "clients", "throughput", "bytes", "p50", "p99", "errors"], srow),
                "", "### inboxd throughput vs concurrency (5 KB)", "",
                table(["clients", "throughput", "p50", "p99", "errors"], crow)]
    met = sum(ok for _, ok in verdicts)
    out += ["", f"targets met: {met}/{len(verdicts)}"
            + ("" if met == len(verdicts) else
               "  (not met: " + ", ".join(n for n, ok in verdicts if not ok) + ")")]
    text = "\n".join(out)
    print(text, flush=True)
    R["verdicts"] = verdicts
    return R


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--src", default=str(HERE.parents[1]))
    ap.add_argument("--tmp", default=None, help="parent of the temporary directory")
    ap.add_argument("--runs", type=int, default=3, help="rounds of 1-5, runs of 6")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per load run")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--corpus", type=int, default=2000, help="files of the parse corpus")
    ap.add_argument("--idle", type=int, default=10000, help="idle long-poll clients")
    ap.add_argument("--forward", type=int, default=3000, help="messages queued for forwarding")
    ap.add_argument("--only", default="rounds,parse,memory,idle,forward,scaling",
                    help="comma list of parts to run")
    ap.add_argument("--json", help="also write every figure to this file")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = a.idle + 1024  # the server and the load generator each hold one end
    if hard != resource.RLIM_INFINITY and hard < want:
        print(f"bench: the open-file limit is {hard}; {a.idle} idle clients need about {want}"
              " (raise the hard limit: ulimit -Hn)", file=sys.stderr)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY
                                                else want, hard))
    only = set(a.only.split(","))
    b = Bench(a)
    rounds, parse, mem, idle, scale, fwd = [], None, None, None, None, None
    try:
        if "rounds" in only:
            for k in range(a.runs):
                rounds.append(b.round(k + 1))
        if "parse" in only:
            parse = b.parse()
        if "memory" in only:
            b.say("memory: 20 MB message")
            mem = b.memory()
        if "idle" in only:
            b.say(f"idle: {a.idle} long polls")
            idle = b.idle()
        if "forward" in only:
            b.say(f"forward: {a.forward} messages ingested and forwarded")
            fwd = b.forward()
        if "scaling" in only:
            scale = b.scaling()
    finally:
        b.close()
    R = report(b, rounds, parse, mem, idle, scale, fwd)
    if a.json:
        Path(a.json).write_text(json.dumps(R, indent=1))


if __name__ == "__main__":
    main()
