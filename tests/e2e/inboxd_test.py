"""Shared helpers of the end-to-end tests: start the real `inboxd serve` on 127.0.0.1
with a temporary database, talk HTTP to it, validate documents against schema/, and a
tiny runner (every `test_*` function of a module, in order)."""
import base64
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

SRC = Path(os.environ.get("INBOXD_SOURCE_DIR", Path(__file__).resolve().parents[2]))
BIN = os.environ.get("INBOXD_BIN", str(SRC / "build" / "inboxd"))
FIXTURES = SRC / "fixtures"

try:
    import jsonschema
except ImportError:  # the test command installs python3-jsonschema; fail loudly without it
    jsonschema = None


class TestFailure(AssertionError):
    pass


class Skip(Exception):
    """Raised by a test that does not apply to the backend it runs on (printed, counted)."""


# ---- The database under test ----------------------------------------------------------------
# INBOXD_TEST_DB=postgres runs every Server on a fresh database of the PostgreSQL server
# tests/pg/start.sh started in INBOXD_PG_DIR (ctest's e2e_pg.* tests); otherwise each
# Server gets a new SQLite file.

def on_postgres():
    return os.environ.get("INBOXD_TEST_DB") == "postgres"


def skip_on_postgres(reason):
    if on_postgres():
        raise Skip(reason)


def skip_unless_postgres(reason="needs PostgreSQL (INBOXD_TEST_DB=postgres)"):
    if not on_postgres():
        raise Skip(reason)


def pg_dir():
    d = os.environ.get("INBOXD_PG_DIR")
    if not d or not (Path(d) / "uri").exists():
        raise TestFailure("INBOXD_TEST_DB=postgres needs INBOXD_PG_DIR with a server started "
                          "by tests/pg/start.sh")
    return Path(d)


def psql(uri, sql, input=None, check_status=True):
    """Run SQL through psql on URI; returns rows as lists of strings."""
    out = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                          uri, "-c", sql], capture_output=True, timeout=60, input=input)
    if check_status and out.returncode != 0:
        raise TestFailure(f"psql {sql!r}: {out.stderr.decode(errors='replace')}")
    return [line.split("\t") for line in out.stdout.decode().splitlines() if line]


_db_counter = [0]


def new_pg_database(base_uri=None):
    """A new, empty database on the test server; returns its URI."""
    base = base_uri or (pg_dir() / "uri").read_text().strip()
    _db_counter[0] += 1
    name = f"t{os.getpid()}_{_db_counter[0]}_{random.getrandbits(24):x}"
    psql(base, f"CREATE DATABASE {name}")
    return base.rsplit("/", 1)[0] + "/" + name


def new_db(workdir):
    """What --db gets for a fresh database: a PostgreSQL URI or an SQLite file in WORKDIR."""
    return new_pg_database() if on_postgres() else str(Path(workdir) / "inboxd.db")


def db_query(db, sql):
    """Rows of SQL on the database DB (an SQLite file or a PostgreSQL URI), as strings."""
    if db.startswith("postgres"):
        return psql(db, sql)
    import sqlite3
    conn = sqlite3.connect(db)
    try:
        return [[str(v) for v in row] for row in conn.execute(sql).fetchall()]
    finally:
        conn.close()


class DbLock:
    """Hold a write lock on DB for a while (SQLite: BEGIN IMMEDIATE; PostgreSQL: a session
    holding EXCLUSIVE locks on tickets and messages), so writers wait and time out."""

    def __init__(self, db):
        self.db = db

    def __enter__(self):
        if self.db.startswith("postgres"):
            self.proc = subprocess.Popen(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", self.db],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT)
            self.proc.stdin.write(b"BEGIN;\nLOCK TABLE tickets, messages IN EXCLUSIVE MODE;\n"
                                  b"\\echo locked\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
            if b"locked" not in line:
                raise TestFailure(f"cannot lock {self.db}: {line!r}")
        else:
            import sqlite3
            self.conn = sqlite3.connect(self.db, timeout=5, isolation_level=None)
            self.conn.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, *exc):
        if self.db.startswith("postgres"):
            self.proc.stdin.write(b"ROLLBACK;\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
            self.proc.stdout.close()
        else:
            self.conn.execute("ROLLBACK")
            self.conn.close()


def check(cond, what="check failed"):
    if not cond:
        raise TestFailure(what)


def check_eq(got, want, what=""):
    if got != want:
        raise TestFailure(f"{what}\n  got:  {got!r}\n  want: {want!r}")


# ---- JSON Schemas -----------------------------------------------------------------------

_schemas = {}


def validate(doc, name):
    """Validate DOC against schema/<name>.schema.json."""
    if jsonschema is None:
        raise TestFailure("python3-jsonschema is not installed (run deploy/install-deps.sh --test)")
    if name not in _schemas:
        schema = json.loads((SRC / "schema" / f"{name}.schema.json").read_text())
        cls = jsonschema.validators.validator_for(schema)
        _schemas[name] = cls(schema, format_checker=cls.FORMAT_CHECKER)
    errors = sorted(_schemas[name].iter_errors(doc), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        raise TestFailure(f"{name} schema: {e.message} at {list(e.path)}")


def validate_thread(doc):
    validate(doc["ticket"], "ticket")
    for m in doc["messages"]:
        validate(m, "message")


# ---- The server ---------------------------------------------------------------------------

class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case name -> value (last one wins)
        self.body = body

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            raise TestFailure(f"not JSON (status {self.status}): {self.body[:200]!r}")

    def header(self, name):
        return self.headers.get(name.lower())

    def __repr__(self):
        return f"<{self.status} {self.body[:300]!r}>"


class Server:
    """`inboxd serve` on 127.0.0.1:0 with DB (a new temporary file unless given)."""

    def __init__(self, *flags, db=None, env=None, workdir=None):
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="inboxd-e2e-"))
        self._own_workdir = workdir is None
        self.db = str(db or new_db(self.workdir))
        self.flags = list(flags)
        self.env = dict(os.environ)
        if self.db.startswith("postgres"):
            # A short lease, so a test that kills a node sees its deliveries resumed soon.
            self.env.setdefault("INBOXD_FORWARD_LEASE_MS", "2000")
        self.env.update(env or {})
        self.proc = None
        self.port = None

    def start(self, timeout=20):
        self.log = open(self.workdir / "server.log", "ab")
        cmd = [BIN, "serve", "--listen", "127.0.0.1:0", "--db", self.db] + self.flags
        if os.environ.get("INBOXD_VALGRIND"):
            # tests/valgrind.sh: the server under memcheck; any error or definite leak
            # makes it exit 99, which stop() reports.
            cmd = ["valgrind", "--quiet", "--error-exitcode=99", "--leak-check=full",
                   "--show-leak-kinds=definite", "--errors-for-leak-kinds=definite",
                   "--num-callers=30", f"--suppressions={SRC}/tests/valgrind.supp"] + cmd
            timeout = max(timeout, 120)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, env=self.env)
        deadline = time.time() + timeout
        line = b""
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if line or self.proc.poll() is not None:
                break
        m = re.match(rb"inboxd listening on http://127\.0\.0\.1:(\d+)", line)
        if not m:
            self.proc.kill()
            self.proc.wait()
            raise TestFailure(f"inboxd did not start: {line!r}; log:\n{self.log_text()[-3000:]}")
        self.port = int(m.group(1))
        return self

    def log_text(self):
        try:
            return (self.workdir / "server.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Stop the server by pid; returns its exit status."""
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise TestFailure(f"inboxd did not stop within {timeout}s after signal {sig}")
        rc = self.proc.returncode
        self.proc.stdout.close()
        self.proc = None
        self.log.close()
        return rc

    def kill(self):
        return self.stop(signal.SIGKILL)

    def restart(self):
        rc = self.stop()
        check_eq(rc, 0, "exit status after SIGTERM")
        return self.start()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        ok = exc[0] is None
        try:
            if self.proc:
                rc = self.stop()
                if ok and rc != 0:
                    ok = False
                    raise TestFailure(f"exit status after SIGTERM: {rc}; log:\n"
                                      f"{self.log_text()[-3000:]}")
        finally:
            # A failing test keeps its directory (database and server.log) for a look.
            if self._own_workdir and ok:
                shutil.rmtree(self.workdir, ignore_errors=True)
            elif not ok:
                print(f"kept {self.workdir}", file=sys.stderr)

    # -- HTTP --

    def request(self, method, path, body=None, headers=None, timeout=60):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
            return Response(resp.status, hdrs, data)
        finally:
            conn.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def get_json(self, path, status=200, **kw):
        r = self.get(path, **kw)
        check_eq(r.status, status, f"GET {path}: {r.body[:300]!r}")
        return r.json()

    def post_raw(self, data, content_type="message/rfc822", path="/inbound/raw", headers=None):
        h = {"Content-Type": content_type}
        h.update(headers or {})
        return self.request("POST", path, body=data, headers=h)

    def ingest(self, data, **kw):
        """POST DATA to /inbound/raw and return the reply document; must be 200."""
        r = self.post_raw(data, **kw)
        check_eq(r.status, 200, f"POST /inbound/raw: {r.body[:300]!r}")
        doc = r.json()
        check(set(doc) == {"ticket_id", "message_id", "duplicate", "classification"}, doc)
        return doc

    def raw_socket(self):
        return socket.create_connection(("127.0.0.1", self.port), timeout=30)

    def post_in_chunks(self, path, data, content_type="message/rfc822", rng=None, chunked=False):
        """Send DATA in small random pieces over one socket (Content-Length or chunked)."""
        rng = rng or random.Random(1)
        s = self.raw_socket()
        try:
            head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            head += "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {len(data)}\r\n"
            head += "Connection: close\r\n\r\n"
            s.sendall(head.encode())
            pos = 0
            while pos < len(data):
                n = rng.randint(1, 700)
                piece = data[pos:pos + n]
                pos += n
                if chunked:
                    s.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
                else:
                    s.sendall(piece)
                if rng.random() < 0.05:
                    time.sleep(0.001)
            if chunked:
                s.sendall(b"0\r\n\r\n")
            return read_http_response(s)
        finally:
            s.close()


def read_http_response(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    return Response(status, headers, rest[:length])


def run_cli(*args, input=None, env=None, timeout=60):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([BIN] + list(args), input=input, capture_output=True, env=e,
                          timeout=timeout)


def parse_cli(path_or_bytes):
    """`inboxd parse` of a file path or of bytes on stdin -> document."""
    if isinstance(path_or_bytes, (bytes, bytearray)):
        out = run_cli("parse", input=bytes(path_or_bytes))
    else:
        out = run_cli("parse", str(path_or_bytes))
    check_eq(out.returncode, 0, f"inboxd parse: {out.stderr!r}")
    return json.loads(out.stdout.decode().splitlines()[0])


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def all_fixture_emails():
    return sorted(FIXTURES.rglob("*.eml"))


def make_mail(subject="Hello", frm="Alice Example <alice@example.org>",
              to="Support <help@example.com>", body="Hi,\nmy printer is broken.\n",
              message_id=None, extra_headers=()):
    mid = message_id or f"<{random.getrandbits(64):x}@example.org>"
    lines = [f"From: {frm}", f"To: {to}", f"Subject: {subject}",
             "Date: Mon, 06 Jan 2025 10:00:00 +0000", f"Message-ID: {mid}",
             "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8"]
    lines += list(extra_headers)
    return ("\r\n".join(lines) + "\r\n\r\n" + body.replace("\n", "\r\n")).encode()


def metrics(srv):
    """{name: value} of every Prometheus sample without labels in SRV's /metrics (one GET)."""
    r = srv.get("/metrics")
    check_eq(r.status, 200)
    found = {}
    for line in r.body.decode().splitlines():
        f = line.split()
        if len(f) == 2 and not line.startswith("#"):
            found[f[0]] = float(f[1])
    return found


def metric(srv, name):
    """The value of the Prometheus sample NAME (no labels) in SRV's /metrics."""
    value = metrics(srv).get(name)
    if value is None:
        raise AssertionError(f"no metric {name}")
    return value


def wait_until(fn, timeout=30, what="condition", interval=0.05):
    """FN()'s first true value, polled every INTERVAL seconds for up to TIMEOUT."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(interval)
    raise TestFailure(f"timed out waiting for {what}")


# ---- Runner -----------------------------------------------------------------------------

def run(module_globals):
    tests = [(n, f) for n, f in module_globals.items() if n.startswith("test_") and callable(f)]
    only = os.environ.get("INBOXD_TEST_ONLY")
    failed = skipped = 0
    for name, fn in tests:
        if only and only not in name:
            continue
        t0 = time.time()
        try:
            fn()
            print(f"ok   {name} ({time.time() - t0:.2f}s)", flush=True)
        except Skip as e:
            skipped += 1
            print(f"skip {name}: {e}", flush=True)
        except Exception:
            failed += 1
            print(f"FAIL {name} ({time.time() - t0:.2f}s)\n{traceback.format_exc()}", flush=True)
    ran = sum(1 for n, _ in tests if not only or only in n)
    print(f"{ran - failed - skipped} passed, {failed} failed, {skipped} skipped")
    sys.exit(1 if failed else 0)
