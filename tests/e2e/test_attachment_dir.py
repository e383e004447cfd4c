#!/usr/bin/env python3
"""--attachment-dir (issue 9): attachment bytes kept as files named by their SHA-256 in a
directory (shared by every node), written before the row commits; the row keeps only the
metadata. Runs on both backends; on PostgreSQL two nodes share the directory."""
import base64
import hashlib
import os
import random
import shutil
import tempfile
from pathlib import Path

from inboxd_test import (Server, check, check_eq, db_query, on_postgres, run, run_cli)


def mail_with_attachment(seed, size):
    rnd = random.Random(seed)
    blob = bytes(rnd.getrandbits(8) for _ in range(size))
    b64 = base64.encodebytes(blob).decode().replace("\n", "\r\n")
    mail = ("From: Carol Example <carol@example.org>\r\nTo: Support <help@example.com>\r\n"
            f"Subject: Scan {seed}\r\nDate: Mon, 06 Jan 2025 10:00:00 +0000\r\n"
            f"Message-ID: <scan-{seed}-{rnd.getrandbits(40):x}@example.org>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
            "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe scan.\r\n"
            "--b1\r\nContent-Type: application/pdf; name=\"scan.pdf\"\r\n"
            "Content-Disposition: attachment; filename=\"../../scan.pdf\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n" + b64 + "--b1--\r\n")
    return mail.encode(), blob


def test_attachments_in_a_shared_directory():
    work = Path(tempfile.mkdtemp(prefix="inboxd-attdir-"))
    files = work / "attachments"
    files.mkdir()
    try:
        a = Server("--attachment-dir", str(files)).start()
        # A second node on the same database (PostgreSQL) or, on SQLite, the same server.
        b = Server("--attachment-dir", str(files), db=a.db).start() if on_postgres() else a
        try:
            sizes = [70000, 1500000, 70000]
            stored = []
            for i, size in enumerate(sizes):
                data, blob = mail_with_attachment(i % 2, size)  # the third repeats the first
                if i == 2:
                    data = data.replace(b"Subject: Scan 0", b"Subject: Scan again")
                reply = (a if i % 2 == 0 else b).ingest(data)
                stored.append((reply, blob))
            for reply, blob in stored:
                for node in {a, b}:
                    doc = node.get_json(f"/api/messages/{reply['message_id']}")
                    att = doc["attachments"][0]
                    digest = hashlib.sha256(blob).hexdigest()
                    check_eq(att["sha256"], digest)
                    check_eq(att["size"], len(blob))
                    r = node.get(att["url"])
                    check_eq(r.status, 200)
                    check(r.body == blob, "the bytes read back from the directory")
                    path = files / digest[:2] / digest
                    check(path.is_file(), f"{path} exists")
                    check_eq(path.read_bytes(), blob)
            # Content-addressed: the repeated attachment is one file; no temporary left.
            names = sorted(p.name for p in files.rglob("*") if p.is_file())
            check_eq(len(names), 2, names)
            check(not any(n.endswith(".tmp") for n in names), names)
            # The rows keep metadata only.
            rows = db_query(a.db, "SELECT in_file, length(data), size FROM attachments "
                                  "ORDER BY id")
            check_eq([(r[0], r[1]) for r in rows], [("1", "0")] * 3)
            # "inboxd ingest" writes to the same directory when told.
            data, blob = mail_with_attachment(7, 4000)
            out = run_cli("ingest", "--db", a.db, input=data,
                          env={"INBOXD_ATTACHMENT_DIR": str(files)})
            check_eq(out.returncode, 0, out.stderr)
            digest = hashlib.sha256(blob).hexdigest()
            check((files / digest[:2] / digest).is_file(), "ingest wrote the file")
        finally:
            if b is not a:
                b.stop()
            a.stop()
        # Without the directory the bytes are in the database, as before.
        with Server() as plain:
            data, blob = mail_with_attachment(3, 5000)
            reply = plain.ingest(data)
            doc = plain.get_json(f"/api/messages/{reply['message_id']}")
            check(plain.get(doc["attachments"][0]["url"]).body == blob)
            rows = db_query(plain.db, "SELECT in_file, length(data) FROM attachments")
            check_eq(rows, [["0", "5000"]])
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    run(globals())
