#!/usr/bin/env python3
"""Issue 2 end to end: raw MIME in over HTTP (and `inboxd ingest`), durable tickets out,
read back through the REST API byte for byte, across a restart."""
import json
import os
import random
import socket
import sqlite3
import subprocess
import time

from inboxd_test import (FIXTURES, DbLock, Server, all_fixture_emails, check, check_eq,
                         db_query, make_mail, metric, metrics, new_db, on_postgres, psql,
                         parse_cli, read_http_response, run, run_cli, sha256, validate,
                         validate_thread)

# Fields of the stored document that must equal what `inboxd parse` says of the same bytes.
PARSED_FIELDS = ["message_id", "in_reply_to", "references", "subject", "date", "from", "to",
                 "cc", "reply_to", "text", "html", "headers", "parse_warnings",
                 "stripped_text", "stripped_html"]


def check_message_roundtrip(srv, path, data, reply):
    """Everything inboxd stored for DATA reads back exactly."""
    mid = reply["message_id"]
    doc = srv.get_json(f"/api/messages/{mid}")
    validate(doc, "message")
    check_eq(doc["id"], mid)
    check_eq(doc["ticket_id"], reply["ticket_id"])
    check_eq(doc["provider"], "raw")
    want = parse_cli(path)
    for field in PARSED_FIELDS:
        check_eq(doc[field], want[field], f"{path.name}: field {field}")
    check_eq(len(doc["attachments"]), len(want["attachments"]), f"{path.name}: attachments")
    raw = srv.get(f"/api/messages/{mid}/raw")
    check_eq(raw.status, 200)
    check_eq(raw.header("content-type"), "message/rfc822")
    check(raw.body == data, f"{path.name}: raw bytes differ ({len(raw.body)} vs {len(data)})")
    for att, want_att in zip(doc["attachments"], want["attachments"]):
        for k in ("filename", "content_type", "size", "sha256", "content_id", "disposition"):
            check_eq(att[k], want_att[k], f"{path.name}: attachment {k}")
        check_eq(att["url"], f"/api/attachments/{att['id']}")
        got = srv.get(att["url"])
        check_eq(got.status, 200, f"GET {att['url']}")
        check_eq(sha256(got.body), att["sha256"], f"{path.name}: attachment bytes")
        check_eq(len(got.body), att["size"])
        check_eq(got.header("x-content-type-options"), "nosniff")
        check(got.header("content-disposition").startswith("attachment;"),
              got.header("content-disposition"))
        check(not got.header("content-type").startswith("text/html"), "html served inline")


def test_fixtures_roundtrip_across_restart():
    emails = all_fixture_emails()
    check(len(emails) > 0, "no fixtures")
    with Server() as srv:
        stored = []
        half = len(emails) // 2
        for i, path in enumerate(emails):
            if i == half:
                srv.restart()
            data = path.read_bytes()
            reply = srv.ingest(data)
            check_eq(reply["duplicate"], False, f"{path.name} stored as a duplicate")
            stored.append((path, data, reply))
        srv.restart()
        for path, data, reply in stored:
            check_message_roundtrip(srv, path, data, reply)
            thread = srv.get_json(f"/api/tickets/{reply['ticket_id']}")
            validate_thread(thread)
            check(any(m["id"] == reply["message_id"] for m in thread["messages"]))


def test_a_body_and_its_start_are_stored_once():
    # What the sender newly wrote is most often the start of the text (a first message, a
    # reply above the quote): the stored document then holds its length, not a second
    # copy. Below the quote it is not the start, and both are stored.
    top = ("Thanks, it arrived today." * 20 + "\n\nOn Mon, 6 Jan 2025 at 10:00, Support "
           "<help@example.com> wrote:\n> We shipped it.\n> Best, Support\n")
    below = ("On Mon, 6 Jan 2025 at 10:00, Support <help@example.com> wrote:\n"
             "> We shipped it.\n> Best, Support\n\n" + "It never arrived." * 20 + "\n")
    cases = [("Hello,\n\n" + "my order 4711 never arrived, please check. " * 40 + "\n", True),
             (top, True), (below, False)]
    with Server() as srv:
        for body, prefix in cases:
            r = srv.ingest(make_mail(subject="Order", body=body))
            doc = srv.get_json(f"/api/messages/{r['message_id']}")
            validate(doc, "message")
            check_eq(doc["stripped_text"],
                     parse_cli(make_mail(subject="x", body=body))["stripped_text"])
            check_eq(doc["text"].startswith(doc["stripped_text"]), prefix)
            check(len(doc["stripped_text"]) > 300, doc["stripped_text"])
            [[stored]] = db_query(srv.db, f"SELECT doc FROM messages WHERE id = {r['message_id']}")
            stored = json.loads(stored)
            if prefix:
                check_eq(stored["stripped_text"], len(doc["stripped_text"].encode()), "stored once")
            else:
                check_eq(stored["stripped_text"], doc["stripped_text"], "stored as it is")
            check_eq(stored["text"], doc["text"])


def test_ticket_fields_and_listing():
    with Server() as srv:
        a = srv.ingest(make_mail(subject="Printer broken", frm="Ayşe Yılmaz <ayse@example.org>"))
        time.sleep(0.01)
        b = srv.ingest(make_mail(subject="Invoice", frm="bob@example.net", body="Where is it?"))
        check(a["ticket_id"] != b["ticket_id"], "each new message opens a ticket")
        check_eq(a["classification"], "new")
        t = srv.get_json(f"/api/tickets/{a['ticket_id']}")
        validate_thread(t)
        ticket = t["ticket"]
        check_eq(ticket["subject"], "Printer broken")
        check_eq(ticket["status"], "open")
        check_eq(ticket["customer"], {"name": "Ayşe Yılmaz", "address": "ayse@example.org"})
        check_eq(ticket["message_count"], 1)
        check_eq(ticket["last_message"]["id"], a["message_id"])
        check_eq(ticket["last_message"]["direction"], "inbound")
        check_eq(t["messages"][0]["thread_reason"], "new")
        lst = srv.get_json("/api/tickets")
        for tk in lst["tickets"]:
            validate(tk, "ticket")
        check_eq([tk["id"] for tk in lst["tickets"]], [b["ticket_id"], a["ticket_id"]],
                 "newest activity first")
        check_eq(lst["next_cursor"], None)
        check_eq(srv.get_json("/api/tickets?customer=BOB@example.net")["tickets"][0]["id"],
                 b["ticket_id"])
        check_eq(srv.get_json("/api/tickets?status=closed")["tickets"], [])


def test_cursor_paging():
    with Server() as srv:
        ids = [srv.ingest(make_mail(subject=f"t{i}"))["ticket_id"] for i in range(7)]
        seen, cursor = [], None
        while True:
            q = "/api/tickets?limit=3" + (f"&cursor={cursor}" if cursor else "")
            page = srv.get_json(q)
            seen += [t["id"] for t in page["tickets"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        check_eq(sorted(seen), sorted(ids), "pages cover every ticket once")
        check_eq(len(seen), len(set(seen)), "no duplicates across pages")
        r = srv.get("/api/tickets?cursor=bm9wZQ")
        check_eq(r.status, 400)
        check_eq(r.json()["error"]["code"], "invalid_cursor")
        check_eq(srv.get("/api/tickets?limit=0").status, 400)
        check_eq(srv.get("/api/tickets?limit=201").status, 400)
        check_eq(srv.get("/api/tickets?status=weird").status, 400)


def test_idempotency():
    with Server() as srv:
        data = make_mail(message_id="<same@example.org>")
        first = srv.ingest(data)
        again = srv.ingest(data)
        check_eq(again["duplicate"], True)
        check_eq((again["ticket_id"], again["message_id"]),
                 (first["ticket_id"], first["message_id"]))
        # Same Message-ID, different bytes: a different message, stored.
        other = srv.ingest(make_mail(message_id="<same@example.org>", body="changed\n"))
        check_eq(other["duplicate"], False)
        check(other["message_id"] != first["message_id"])
        # No Message-ID: a stable synthetic one, so a retry is still a duplicate.
        bare = b"From: x@example.org\r\nSubject: no id\r\n\r\nbody\r\n"
        one, two = srv.ingest(bare), srv.ingest(bare)
        check_eq(two["duplicate"], True)
        check_eq(one["message_id"], two["message_id"])
        doc = srv.get_json(f"/api/messages/{one['message_id']}")
        check(doc["message_id"].endswith("@inboxd.invalid"), doc["message_id"])
        check_eq(len(srv.get_json("/api/events")["events"]), 2 * 3, "events only for new mail")


def test_concurrent_duplicates_store_once():
    import threading
    with Server() as srv:
        data = make_mail(message_id="<race@example.org>")
        results = []

        def post():
            results.append(srv.ingest(data))
        threads = [threading.Thread(target=post) for _ in range(16)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        check_eq(len({(r["ticket_id"], r["message_id"]) for r in results}), 1)
        check_eq(sum(1 for r in results if not r["duplicate"]), 1)
        check_eq(len(srv.get_json("/api/tickets")["tickets"]), 1)


def test_group_commit_is_measured():
    """/metrics counts the writer's transactions and their jobs: one each for requests
    that arrive one after the other; fewer transactions than jobs for 16 clients posting
    at once (group commit); one duration observation per transaction."""
    import threading
    with Server() as srv:
        def counts():
            m = metrics(srv)
            return tuple(m[f"inboxd_store_{k}"] for k in (
                "group_commits_total", "jobs_total", "group_commit_duration_seconds_count",
                "group_commit_duration_seconds_sum"))
        g0, j0, n0, s0 = counts()
        check_eq(n0, g0, "one duration per transaction")
        for i in range(5):
            srv.ingest(make_mail(subject=f"one by one {i}"))
        g1, j1, n1, s1 = counts()
        check_eq((g1 - g0, j1 - j0, n1 - n0), (5, 5, 5), "sequential requests: a group each")
        check(s1 > s0, "the durations add up")
        errors = []

        def post(k):
            for i in range(10):
                try:
                    srv.ingest(make_mail(subject=f"client {k} message {i}"))
                except Exception as e:  # noqa: BLE001 - reported below
                    errors.append(e)
        threads = [threading.Thread(target=post, args=(k,)) for k in range(16)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        check_eq(errors, [])
        g2, j2, n2, _ = counts()
        check_eq(j2 - j1, 160, "one job per request")
        check(g2 - g1 < j2 - j1, f"{g2 - g1:.0f} transactions for {j2 - j1:.0f} jobs: grouped")
        check_eq(n2, g2, "one duration per transaction")
        check_eq(metric(srv, "inboxd_messages_stored_total"), 165)


def test_bodies_in_small_random_chunks():
    rng = random.Random(7)
    with Server() as srv:
        for i, path in enumerate(all_fixture_emails()[:12]):
            data = path.read_bytes()
            r = srv.post_in_chunks("/inbound/raw", data, rng=rng, chunked=bool(i % 2))
            check_eq(r.status, 200, f"{path.name}: {r.body!r}")
            mid = r.json()["message_id"]
            check(srv.get(f"/api/messages/{mid}/raw").body == data, path.name)


def test_errors_are_json_with_fitting_status():
    with Server("--max-body-bytes", "100000") as srv:
        def err(r, status, code=None):
            check_eq(r.status, status, repr(r))
            check_eq(r.header("content-type"), "application/json")
            e = r.json()["error"]
            check(e["code"] and e["message"], e)
            if code:
                check_eq(e["code"], code)
            return r
        err(srv.get("/nope"), 404, "not_found")
        err(srv.get("/api/tickets/999"), 404, "not_found")
        err(srv.get("/api/messages/999"), 404)
        err(srv.get("/api/messages/999/raw"), 404)
        err(srv.get("/api/attachments/999"), 404)
        err(srv.get("/api/tickets/abc"), 404)
        r = err(srv.request("DELETE", "/api/tickets/1"), 405, "method_not_allowed")
        check("GET" in r.header("allow"), r.headers)
        r = err(srv.get("/inbound/raw"), 405)
        check_eq(r.header("allow"), "POST")
        err(srv.post_raw(b"x", content_type="application/json"), 415, "unsupported_media_type")
        err(srv.post_raw(b""), 400, "empty_body")
        err(srv.post_raw(b"A" * 100001), 413, "too_large")
        # Chunked upload with no Content-Length: refused once it passes the limit.
        r = srv.post_in_chunks("/inbound/raw", b"B" * 150000, chunked=True)
        err(r, 413)
        # 413 is answered from the headers, before any body byte is sent.
        s = srv.raw_socket()
        s.sendall(b"POST /inbound/raw HTTP/1.1\r\nHost: x\r\nContent-Type: message/rfc822\r\n"
                  b"Content-Length: 999999999\r\n\r\n")
        err(read_http_response(s), 413)
        s.close()
        check_eq(srv.get_json("/healthz"), {"status": "ok"})


def test_503_when_the_database_cannot_commit_then_recovers():
    with Server("--db-busy-timeout-ms", "200") as srv:
        with DbLock(srv.db):
            r = srv.post_raw(make_mail(message_id="<busy@example.org>"))
            check_eq(r.status, 503, repr(r))
            check_eq(r.json()["error"]["code"], "storage_unavailable")
            check(r.header("retry-after"), "503 tells when to retry")
        reply = srv.ingest(make_mail(message_id="<busy@example.org>"))
        check_eq(reply["duplicate"], False, "nothing half-written by the failed attempt")
        check_eq(len(srv.get_json("/api/tickets")["tickets"]), 1)


def test_sigterm_finishes_and_exits_zero():
    srv = Server().start()
    srv.ingest(make_mail())
    check_eq(srv.stop(), 0)
    if not on_postgres():
        check_eq(db_query(srv.db, "PRAGMA integrity_check"), [["ok"]])
    check_eq(db_query(srv.db, "SELECT count(*) FROM messages"), [["1"]])


def test_env_configuration_and_newer_schema_refused():
    srv = Server(env={"INBOXD_MAX_BODY_BYTES": "50"})
    with srv:
        check_eq(srv.post_raw(make_mail()).status, 413)
    import tempfile
    db = new_db(tempfile.mkdtemp(prefix="inboxd-newer-"))
    if on_postgres():
        psql(db, "CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL); "
                 "INSERT INTO meta VALUES ('schema_version', '999')")
    else:
        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO meta VALUES ('schema_version', '999')")
        conn.commit()
        conn.close()
    out = subprocess.run([os.environ.get("INBOXD_BIN"), "serve", "--db", str(db), "--listen",
                          "127.0.0.1:0"], capture_output=True, timeout=30)
    check(out.returncode != 0, "a newer database must be refused")
    check(b"newer" in out.stderr, out.stderr)


def test_ingest_command():
    srv = Server()
    db = srv.db
    data = make_mail(subject="From postfix", message_id="<pipe@example.org>")
    out = run_cli("ingest", "--db", db, "--from", "alice@example.org", "--to",
                  "help@example.com", input=data)
    check_eq(out.returncode, 0, out.stderr)
    out = run_cli("ingest", "--db", db, input=data)
    check_eq(out.returncode, 0, out.stderr)
    check(b"duplicate" not in out.stdout, "a different envelope is a different delivery")
    out = run_cli("ingest", "--db", db, "--from", "alice@example.org", "--to",
                  "help@example.com", input=data)
    check(b"duplicate" in out.stdout, out.stdout)
    check_eq(run_cli("ingest", "--db", db, input=b"").returncode, 65)
    with DbLock(db):
        out = run_cli("ingest", "--db", db, input=make_mail(),
                      env={"INBOXD_DB_BUSY_TIMEOUT_MS": "300"}, timeout=60)
    check_eq(out.returncode, 75, "EX_TEMPFAIL while the database is locked")
    with srv:
        lst = srv.get_json("/api/tickets")["tickets"]
        check_eq(len(lst), 2)
        msgs = [srv.get_json(f"/api/tickets/{t['id']}")["messages"][0] for t in lst]
        envs = sorted((m["envelope"]["from"] or "", tuple(m["envelope"]["to"])) for m in msgs)
        check_eq(envs, [("", ()), ("alice@example.org", ("help@example.com",))])
        for m in msgs:
            check_eq(m["provider"], "ingest")


if __name__ == "__main__":
    run(globals())
