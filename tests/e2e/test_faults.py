#!/usr/bin/env python3
"""Issue 7, storage faults and crashes: the request gets 503 (providers retry), nothing
half-written stays, the server recovers by itself, `inboxd ingest` exits 75, and after a
SIGKILL in the middle of concurrent ingestion every acknowledged message is present and
byte-exact."""
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from inboxd_test import (Server, check, check_eq, db_query, make_mail, new_db, on_postgres, run,
                         run_cli, sha256, skip_on_postgres)

FAULTS = ["full", "fsync", "readonly", "ioerr"]


def integrity(db):
    if db.startswith("postgres"):
        return "ok"  # PostgreSQL checks its own pages; there is no integrity_check
    conn = sqlite3.connect(db)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def counts(db):
    tables = ("tickets", "messages", "raw_messages", "events")
    row = db_query(db, "SELECT " + ", ".join(f"(SELECT count(*) FROM {t})" for t in tables))[0]
    return tuple(int(v) for v in row)


def test_injected_faults_give_503_then_recover():
    skip_on_postgres("the fault-injection VFS is SQLite's; PostgreSQL has test_pg_outage")
    work = Path(tempfile.mkdtemp(prefix="inboxd-fault-"))
    fault = work / "fault"
    fault.write_text("")
    with Server(env={"INBOXD_FAULT_FILE": str(fault)}) as srv:
        srv.ingest(make_mail(subject="before"))
        before = counts(srv.db)
        for kind in FAULTS:
            fault.write_text(kind)
            time.sleep(0.05)
            data = make_mail(subject=f"during {kind}", message_id=f"<{kind}@example.org>")
            r = srv.post_raw(data)
            check_eq(r.status, 503, f"{kind}: {r}")
            check_eq(r.json()["error"]["code"], "storage_unavailable")
            check(r.header("retry-after"), "Retry-After")
            fault.write_text("")
            time.sleep(0.05)
            check_eq(counts(srv.db), before, f"{kind}: nothing half-written")
            reply = srv.ingest(data)  # the provider's retry
            check_eq(reply["duplicate"], False)
            check(srv.get(f"/api/messages/{reply['message_id']}/raw").body == data)
            before = counts(srv.db)
        check_eq(srv.get_json("/healthz"), {"status": "ok"})
        check_eq(integrity(srv.db), "ok")
    shutil.rmtree(work, ignore_errors=True)


def test_ingest_exits_75_on_faults():
    skip_on_postgres("the fault-injection VFS is SQLite's; PostgreSQL has test_pg_outage")
    work = Path(tempfile.mkdtemp(prefix="inboxd-fault-"))
    db, fault = str(work / "x.db"), work / "fault"
    fault.write_text("")
    env = {"INBOXD_FAULT_FILE": str(fault)}
    check_eq(run_cli("ingest", "--db", db, input=make_mail(), env=env).returncode, 0)
    for kind in FAULTS:
        fault.write_text(kind)
        out = run_cli("ingest", "--db", db, input=make_mail(subject=kind), env=env)
        check_eq(out.returncode, 75, f"{kind}: {out.stderr!r}")
    fault.write_text("")
    check_eq(counts(db)[1], 1)
    check_eq(integrity(db), "ok")
    shutil.rmtree(work, ignore_errors=True)


def test_real_disk_full_on_a_small_filesystem():
    """A real tmpfs of 2 MiB fills up: 503 while full, back to 200 after space is freed."""
    skip_on_postgres("the database file lives on the tmpfs only with SQLite")
    mnt = Path(tempfile.mkdtemp(prefix="inboxd-tmpfs-"))
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)]).returncode:
        raise AssertionError("cannot mount a tmpfs (the test suite runs as root)")
    try:
        with Server(db=str(mnt / "inboxd.db"), workdir=tempfile.mkdtemp()) as srv:
            filler = mnt / "filler"
            big = b"x" * 60000
            statuses = []
            for i in range(60):
                body = make_mail(subject=f"m{i}", body=big.decode())
                statuses.append(srv.post_raw(body).status)
                if statuses[-1] == 503:
                    break
            check(503 in statuses, f"the filesystem never filled: {statuses}")
            print(f"disk full after {statuses.count(200)} messages")
            check(all(s in (200, 503) for s in statuses), statuses)
            acked = statuses.count(200)
            check_eq(counts(srv.db)[1], acked, "exactly the acknowledged messages are stored")
            # Free space (the operator deletes something): inboxd recovers by itself.
            with open(filler, "wb"):
                pass
            (mnt / "filler").unlink()
            subprocess.run(["mount", "-o", "remount,size=8m", str(mnt)], check=True)
            reply = srv.ingest(make_mail(subject="after"))
            check_eq(reply["duplicate"], False)
        check_eq(integrity(str(mnt / "inboxd.db")), "ok")
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


def test_sigkill_during_concurrent_ingestion_loses_nothing_acknowledged():
    rng = random.Random(11)
    work = Path(tempfile.mkdtemp(prefix="inboxd-kill-"))
    db = new_db(work)
    report = []
    for round_no in range(3):
        srv = Server(db=db, workdir=work).start()
        acked = {}  # Message-ID -> raw bytes
        lock = threading.Lock()
        stop = threading.Event()

        def client(n):
            while not stop.is_set():
                mid = f"<k{round_no}-{n}-{rng.getrandbits(40):x}@example.org>"
                data = make_mail(subject=f"kill {round_no}", message_id=mid,
                                 body=("y" * rng.randint(10, 20000)) + "\n")
                try:
                    r = srv.post_raw(data)
                except Exception:
                    return  # the server died under us: the request was never acknowledged
                if r.status == 200:
                    with lock:
                        acked[mid.strip("<>")] = (data, r.json()["message_id"])
        threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
        [t.start() for t in threads]
        time.sleep(0.4 + rng.random() * 0.6)
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait()
        stop.set()
        [t.join() for t in threads]
        srv.proc.stdout.close()
        srv.log.close()
        srv.proc = None
        # Restart and check every acknowledged message, byte for byte.
        with Server(db=db, workdir=work) as again:
            for mid, (data, message_id) in acked.items():
                doc = again.get_json(f"/api/messages/{message_id}")
                check_eq(doc["message_id"], mid)
                raw = again.get(f"/api/messages/{message_id}/raw").body
                check(sha256(raw) == sha256(data), f"message {message_id} differs after the kill")
        check_eq(integrity(db), "ok")
        report.append(f"round {round_no}: {len(acked)} acked, all present")
        check(len(acked) > 0, "no message was acknowledged before the kill")
    print("; ".join(report))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    run(globals())
