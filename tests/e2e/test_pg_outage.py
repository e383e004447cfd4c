#!/usr/bin/env python3
"""PostgreSQL's own storage-outage test (the SQLite fault VFS does not apply there): the
database server stops under a running inboxd -> ingestion and /healthz answer 503 (the
provider retries), nothing half-written; the server starts again -> inboxd reconnects by
itself (writer, read pool, LISTEN) and the provider's retry is stored once. Runs on a
private PostgreSQL server (tests/pg/start.sh), as the shared one must not stop."""
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from inboxd_test import (SRC, Server, check, check_eq, make_mail, psql, run,
                         skip_unless_postgres, wait_until)

START = str(SRC / "tests" / "pg" / "start.sh")
STOP = str(SRC / "tests" / "pg" / "stop.sh")


def test_database_outage_gives_503_then_recovers():
    skip_unless_postgres("the outage of a PostgreSQL server (SQLite: test_faults)")
    work = Path(tempfile.mkdtemp(prefix="inboxd-pgout-"))
    os.chmod(work, 0o755)  # the server runs as an unprivileged user
    pgdir = work / "pg"
    try:
        base = subprocess.run(["sh", START, str(pgdir)], capture_output=True, check=True,
                              timeout=120).stdout.decode().strip()
        psql(base, "CREATE DATABASE outage")
        db = base.rsplit("/", 1)[0] + "/outage"
        with Server(db=db) as srv:
            first = srv.ingest(make_mail(subject="before the outage"))
            feed = srv.get_json("/api/events?after=0")
            check_eq(len(feed["events"]), 2)

            subprocess.run(["sh", STOP, str(pgdir), "--keep"], check=True, timeout=120)
            data = make_mail(subject="during the outage", message_id="<outage@example.org>")
            for _ in range(3):
                r = srv.post_raw(data)
                check_eq(r.status, 503, repr(r))
                check_eq(r.json()["error"]["code"], "storage_unavailable")
                check(r.header("retry-after"), "503 tells when to retry")
            check_eq(srv.get("/healthz").status, 503, "/healthz while the database is down")
            check_eq(srv.get("/api/tickets").status, 503, "reads while the database is down")

            subprocess.run(["sh", START, str(pgdir)], capture_output=True, check=True,
                           timeout=120)
            # Recovers by itself: the read pool and the writer reconnect with back-off.
            wait_until(lambda: srv.get("/healthz").status == 200, what="/healthz 200 again")

            def retried():
                r = srv.post_raw(data)
                return r if r.status == 200 else None
            reply = wait_until(retried, what="the provider's retry to be stored").json()
            check_eq(reply["duplicate"], False, "nothing was half-written during the outage")
            check(reply["ticket_id"] != first["ticket_id"])
            again = srv.ingest(data)
            check_eq(again["duplicate"], True)
            tickets = srv.get_json("/api/tickets")["tickets"]
            check_eq(sorted(t["subject"] for t in tickets),
                     ["before the outage", "during the outage"])
            # The change feed goes on without a gap, and a long poll is woken again.
            events = srv.get_json("/api/events?after=0")["events"]
            check_eq([e["seq"] for e in events], [1, 2, 3, 4])
            log = srv.log_text()
            check("reconnect" in log or "connected to the database again" in log, log[-2000:])
    finally:
        subprocess.run(["sh", STOP, str(pgdir)], timeout=120)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    run(globals())
