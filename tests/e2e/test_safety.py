#!/usr/bin/env python3
"""Issue 7, serving safely: SQL only as prepared statements (grepped), secrets never in
logs, safe headers on every response, attachments that cannot become a page, and the
graceful lifecycle (SIGHUP reopens the log, SIGTERM checkpoints and exits 0)."""
import hashlib
import hmac
import json
import os
import re
import signal
import sqlite3
import tempfile
import time
from pathlib import Path

from inboxd_test import SRC, Server, check, check_eq, make_mail, run, skip_on_postgres, validate

SQL_WORDS = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|PRAGMA|REPLACE)\b")


def c_sources():
    return sorted((SRC / "server").glob("*.c")) + sorted((SRC / "parsers").glob("*.c"))


def call_args(text, pos):
    """The top-level arguments of the call whose "(" ends at POS."""
    args, depth, cur, i = [], 1, "", pos
    while i < len(text) and depth:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < len(text) and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            cur += text[i:j + 1]
            i = j + 1
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if not depth:
                break
        if c == "," and depth == 1:
            args.append(cur.strip())
            cur = ""
        else:
            cur += c
        i += 1
    args.append(cur.strip())
    return args


def test_sql_is_never_built_from_strings():
    offenders = []
    for path in c_sources():
        text = path.read_text()
        # 1. No formatted string that is SQL.
        for m in re.finditer(r"(g_strdup_printf|g_snprintf|g_string_(append_)?printf|snprintf)"
                             r"\s*\(([^;]*?);", text, re.S):
            call = m.group(0)
            literal = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', call))
            if SQL_WORDS.search(literal) and re.search(r"%[sdl]", literal):
                offenders.append(f"{path.name}: formats SQL: {literal[:80]}")
        # 2. Statements are prepared only from literals or static SQL arrays.
        # (PostgreSQL: pg_query/pg_exec and libpq's own entry points, pg.c's helpers.)
        for m in re.finditer(r"\b(db_stmt|db_exec|sqlite3_exec|sqlite3_prepare_v[23]?|pg_query|"
                             r"pg_exec|PQexec|PQexecParams|PQprepare|PQsendQuery\w*)\s*\(",
                             text):
            args = call_args(text, m.end())
            if not args or re.search(r"\bconst\b|\bib_db\s*\*|\bpg_conn\s*\*|\bPGconn\s*\*",
                                     args[0]):
                continue  # a declaration or definition, not a call
            sql_arg = args[1] if len(args) > 1 else ""
            if m.group(1) == "PQprepare":
                sql_arg = args[2] if len(args) > 2 else ""
            ok = (sql_arg.startswith('"') or re.fullmatch(r"sql\w*", sql_arg) or
                  # the migration runners execute our own compiled-in .sql files
                  (path.name in ("store_sqlite.c", "store_pg.c") and
                   sql_arg == "(const char *)f->data") or
                  # db.c's and pg.c's helpers pass their own parameter through
                  (path.name in ("db.c", "pg.c") and sql_arg in ("sql", "pragmas", "name")))
            if not ok:
                offenders.append(f"{path.name}: {m.group(1)} with SQL argument {sql_arg!r}")
    check_eq(offenders, [], "SQL built from strings")
    # 3. Only the store modules speak SQL at all (the VFS modules use SQLite's file API, no SQL).
    speakers = {p.name for p in c_sources()
                if re.search(r"\bsqlite3_|db_stmt\(|\bPQ\w+\(|pg_query\(", p.read_text())}
    check(speakers <= {"store.c", "db.c", "pg.c", "faultvfs.c", "walvfs.c", "vfs_wrap.c"} |
          {p.name for p in (SRC / "server").glob("store_*.c")}, speakers)


SECRETS = {
    "api": "api-token-SECRET-1111",
    "forward": "forward-secret-SECRET-2222",
    "ingress": "ingress-password-SECRET-3333",
    "mailgun": "mailgun-key-SECRET-4444",
    "mandrill": "mandrill-key-SECRET-5555",
}


def test_secrets_never_in_logs_and_sighup_reopens():
    work = Path(tempfile.mkdtemp(prefix="inboxd-safety-"))
    log = work / "inboxd.log"
    flags = ["--log-file", str(log), "--log-level", "debug",
             "--api-token", SECRETS["api"], "--forward-secret", SECRETS["forward"],
             "--ingress-user", "inbound", "--ingress-password", SECRETS["ingress"],
             "--mailgun-signing-key", SECRETS["mailgun"], "--mandrill-key", SECRETS["mandrill"],
             "--mandrill-url", "https://inbound.example.com/inbound/mandrill"]
    with Server(*flags, workdir=work) as srv:
        import base64
        good = "Basic " + base64.b64encode(f"inbound:{SECRETS['ingress']}".encode()).decode()
        bad = "Basic " + base64.b64encode(b"inbound:" + SECRETS["ingress"].encode() + b"x").decode()
        srv.post_raw(make_mail(), headers={"Authorization": bad})
        check_eq(srv.post_raw(make_mail(), headers={"Authorization": good}).status, 200)
        srv.get("/api/tickets", headers={"Authorization": "Bearer " + SECRETS["api"] + "x"})
        srv.get("/api/tickets", headers={"Authorization": "Bearer " + SECRETS["api"]})
        ts = str(int(time.time()))
        token = "t" * 50
        sig = hmac.new(SECRETS["mailgun"].encode(), (ts + token).encode(), hashlib.sha256).hexdigest()
        body = f"body-mime=x&timestamp={ts}&token={token}&signature={sig[::-1]}"
        srv.request("POST", "/inbound/mailgun/mime", body=body, headers={
            "Content-Type": "application/x-www-form-urlencoded", "Authorization": good})
        srv.request("POST", "/inbound/mandrill", body="mandrill_events=%5B%5D", headers={
            "Content-Type": "application/x-www-form-urlencoded", "Authorization": good,
            "X-Mandrill-Signature": "nope"})
        # Rotate: move the log away, SIGHUP, and the server writes a new file.
        rotated = work / "inboxd.log.1"
        log.rename(rotated)
        srv.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 5
        while not log.exists() and time.time() < deadline:
            time.sleep(0.05)
        check(log.exists(), "SIGHUP reopened the log file")
        srv.get("/nope")
    text = rotated.read_text() + log.read_text()
    check(len(text) > 0, "logs were written")
    for line in text.splitlines():
        json.loads(line)  # one JSON object per line
    for name, secret in SECRETS.items():
        check(secret not in text, f"the {name} secret appears in the log")
    check("stopped" in log.read_text(), "shutdown logged in the reopened file")


def test_safe_headers_and_hostile_attachments():
    evil_name = 'a"b\\c\r\nX-Evil: 1/../../etc/passwd.html'
    b = "zz"
    from urllib.parse import quote
    encoded_name = quote(evil_name, safe="")
    mail = (f"From: a@example.org\r\nSubject: <script>alert(1)</script>\r\n"
            f"Message-ID: <evil@example.org>\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/mixed; boundary={b}\r\n\r\n"
            f"--{b}\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
            f"--{b}\r\nContent-Type: text/html\r\nContent-Disposition: attachment; "
            f"filename=\"evil.html\"\r\n\r\n<script>alert(document.cookie)</script>\r\n"
            f"--{b}\r\nContent-Type: image/svg+xml\r\nContent-Disposition: attachment; "
            f"filename*=UTF-8''{encoded_name}\r\n\r\n"
            f"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>\r\n"
            f"--{b}--\r\n").encode()
    with Server() as srv:
        reply = srv.ingest(mail)
        doc = srv.get_json(f"/api/messages/{reply['message_id']}")
        validate(doc, "message")
        check_eq(doc["subject"], "<script>alert(1)</script>", "stored as data, JSON-escaped")
        atts = {a["content_type"]: a for a in doc["attachments"]}
        for ctype in ("text/html", "image/svg+xml"):
            r = srv.get(atts[ctype]["url"])
            check_eq(r.status, 200)
            check_eq(r.header("content-type"), "application/octet-stream", "never rendered")
            cd = r.header("content-disposition")
            check(cd.startswith("attachment;"), cd)
            check("\r" not in cd and "\n" not in cd, cd)
            fname = re.search(r'filename="([^"]*)"', cd).group(1)
            check("/" not in fname and "\\" not in fname and not fname.startswith("."), fname)
            check_eq(r.header("x-content-type-options"), "nosniff")
            check("sandbox" in r.header("content-security-policy"))
            check(r.header("x-evil") is None, "header injection")
        for path in ["/api/tickets", f"/api/messages/{reply['message_id']}", "/nope<script>",
                     "/healthz", "/api/events"]:
            r = srv.get(path)
            check_eq(r.header("x-content-type-options"), "nosniff", path)
            check_eq(r.header("x-frame-options"), "DENY", path)
            check(r.header("content-security-policy"), path)
            check(r.header("content-type").startswith("application/json"), path)
        r = srv.get("/nope<script>")
        check(b"<script>" not in r.body or r.header("content-type") == "application/json", r.body)


def test_sigterm_checkpoints_the_wal():
    skip_on_postgres("the WAL file and its checkpoint are SQLite's")
    srv = Server().start()
    for i in range(20):
        srv.ingest(make_mail(subject=f"m{i}"))
    check_eq(srv.stop(), 0)
    wal = Path(srv.db + "-wal")
    check(not wal.exists() or wal.stat().st_size == 0, "WAL checkpointed at shutdown")
    conn = sqlite3.connect(srv.db)
    check_eq(conn.execute("PRAGMA integrity_check").fetchone()[0], "ok")
    check_eq(conn.execute("SELECT count(*) FROM messages").fetchone()[0], 20)
    conn.close()


def test_sigterm_finishes_requests_in_flight_and_turns_new_ones_away():
    srv = Server().start()
    try:
        mail = make_mail(subject="sent while the server stops")
        sock = srv.raw_socket()
        sock.sendall(b"POST /inbound/raw HTTP/1.1\r\nHost: x\r\nContent-Type: message/rfc822\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(mail) + mail[:100])
        time.sleep(0.3)  # the request is in flight: headers read, body half here
        srv.proc.send_signal(signal.SIGTERM)
        deadline = time.time() + 10
        while "stopping" not in srv.log_text() and time.time() < deadline:
            time.sleep(0.02)
        # New requests, on new connections, are answered 503 while the old one runs.
        for path in ("/healthz", "/api/tickets"):
            r = srv.get(path)
            check_eq((r.status, r.json()["error"]["code"]), (503, "shutting_down"), path)
            check_eq(r.headers.get("retry-after"), "5")
        sock.sendall(mail[100:])
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        sock.close()
        check(reply.startswith(b"HTTP/1.1 200"), f"the request in flight finished: {reply[:200]!r}")
        doc = json.loads(reply.split(b"\r\n\r\n", 1)[1])
        check_eq(srv.stop(), 0, "exit status after SIGTERM")
        srv.start()
        got = srv.get(f"/api/messages/{doc['message_id']}/raw")
        check_eq((got.status, got.body), (200, mail), "stored byte for byte")
    finally:
        srv.stop()


if __name__ == "__main__":
    run(globals())
