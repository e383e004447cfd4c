"""Reference 4: a Python stdlib peer of inboxd's /inbound/raw, as one would write it
without a framework: http.server's ThreadingHTTPServer (HTTP/1.1 keep-alive), the email
package to parse the message and decode every part, sqlite3 in WAL mode with
synchronous=FULL and one commit per message, and the same JSON reply.

usage: python3 peer.py DB     (prints "listening PORT"; stops on SIGTERM)
"""
import email
import email.policy
import json
import signal
import sqlite3
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Store:
    def __init__(self, path):
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY,"
                        " message_id TEXT NOT NULL UNIQUE, subject TEXT, sender TEXT,"
                        " text TEXT, raw BLOB NOT NULL)")
        self.lock = threading.Lock()

    def put(self, message_id, subject, sender, text, raw):
        with self.lock:
            row = self.db.execute("SELECT id FROM messages WHERE message_id = ?",
                                  (message_id,)).fetchone()
            if row:
                return row[0], True
            self.db.execute("BEGIN IMMEDIATE")
            cur = self.db.execute("INSERT INTO messages (message_id, subject, sender, text, raw)"
                                  " VALUES (?, ?, ?, ?, ?)",
                                  (message_id, subject, sender, text, raw))
            self.db.execute("COMMIT")
            return cur.lastrowid, False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    store = None

    def log_message(self, *args):
        pass

    def reply(self, status, doc):
        body = json.dumps(doc, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        if self.path != "/inbound/raw" or not raw:
            self.reply(404 if self.path != "/inbound/raw" else 400, {"error": {"code": "bad"}})
            return
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        text = None
        for part in msg.walk():
            if part.is_multipart():
                continue
            try:
                content = part.get_content()  # transfer decoding and charset
            except (LookupError, ValueError, KeyError):
                content = part.get_payload(decode=True)
            if text is None and part.get_content_type() == "text/plain":
                text = content if isinstance(content, str) else None
        mid = str(msg.get("Message-ID", "")) or None
        ident, dup = self.store.put(mid, str(msg.get("Subject", "")), str(msg.get("From", "")),
                                    text, raw)
        self.reply(200, {"ticket_id": ident, "message_id": ident, "duplicate": dup,
                         "classification": "new"})


def main():
    Handler.store = Store(sys.argv[1])
    ThreadingHTTPServer.request_queue_size = 1024
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *a: threading.Thread(target=srv.shutdown).start())
    print(f"listening {srv.server_address[1]}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
