#!/usr/bin/env python3
"""Issue 3 end to end: the same email through every provider route of the real server,
each provider's authentication (keys and certificates made here, at run time), the
status codes of spec section 11, and nothing stored for any refused request.

The oracle for "the same email" is Python's own reading of
fixtures/providers/source/order-1234.mime (stdlib `email`), not inboxd's parser."""
import base64
import email
import email.policy
import hashlib
import hmac
import http.server
import json
import os
import random
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

from inboxd_test import (FIXTURES, DbLock, Server, TestFailure, check, check_eq, db_query,
                         make_mail, on_postgres, skip_on_postgres,
                         read_http_response, run, sha256, validate, wait_until)

PROV = FIXTURES / "providers"
SOURCE = (PROV / "source" / "order-1234.mime").read_bytes()
TOPIC = "arn:aws:sns:us-east-1:111122223333:inbound"
OTHER_TOPIC = "arn:aws:sns:us-east-1:444455556666:someone-else"
MAILGUN_KEY = "key-" + secrets.token_hex(16)
MANDRILL_KEY = "mk-" + secrets.token_urlsafe(18)
MANDRILL_URL = "https://inbound.example.com/hooks/mandrill?src=mandrill"
INGRESS_USER, INGRESS_PASSWORD = "inbound", "s3cret-" + secrets.token_hex(6)
SEED = int(os.environ.get("INBOXD_TEST_SEED", random.randrange(1 << 30)))


def meta(rel):
    return json.loads((PROV / rel).read_text())


def b64(data):
    return base64.b64encode(data).decode()


# ---- keys and certificates, made once per run with the openssl CLI --------------------

def openssl(*args, data=None, cwd=None):
    out = subprocess.run(["openssl", *args], input=data, capture_output=True, cwd=cwd)
    if out.returncode != 0:
        raise TestFailure(f"openssl {' '.join(args)}: {out.stderr.decode(errors='replace')}")
    return out.stdout


class Keys:
    """SendGrid ECDSA P-256 keys, and for SNS a throw-away CA with a valid and an expired
    leaf certificate, plus a stranger's self-signed certificate. Deleted by cleanup()."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="inboxd-keys-"))
        d = self.dir
        for name in ("sg", "sg-other"):
            openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(d / f"{name}.key"))
        der = openssl("ec", "-in", str(d / "sg.key"), "-pubout", "-outform", "DER")
        self.sendgrid_public = b64(der)  # what SendGrid shows: base64 DER SubjectPublicKeyInfo
        self.sendgrid_key = d / "sg.key"
        self.sendgrid_other = d / "sg-other.key"

        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
                "-days", "2", "-subj", "/CN=inboxd test SNS CA", cwd=d)
        for leaf in ("leaf", "old"):
            openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{leaf}.key", "-out",
                    f"{leaf}.csr", "-subj", "/CN=sns.amazonaws.com", cwd=d)
        openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", "leaf.pem", "-days", "2", cwd=d)
        # An expired certificate: `openssl ca` is the CLI that takes explicit dates.
        (d / "index.txt").write_text("")
        (d / "serial").write_text("1000\n")
        (d / "ca.cnf").write_text(
            "[ca]\ndefault_ca = test\n[test]\ndatabase = index.txt\nnew_certs_dir = .\n"
            "serial = serial\ndefault_md = sha256\npolicy = any\n[any]\ncommonName = supplied\n")
        openssl("ca", "-batch", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca.key",
                "-in", "old.csr", "-out", "old.pem", "-notext", "-startdate", "20200101000000Z",
                "-enddate", "20200201000000Z", cwd=d)
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "stranger.key", "-out",
                "stranger.pem", "-days", "2", "-subj", "/CN=sns.amazonaws.com", cwd=d)
        # The pinned file holds the leaf followed by its CA, like a chain file.
        (d / "pinned.pem").write_bytes((d / "leaf.pem").read_bytes() + (d / "ca.pem").read_bytes())
        self.sns_pinned = d / "pinned.pem"
        self.sns_key = d / "leaf.key"
        self.sns_expired_pem = d / "old.pem"
        self.sns_expired_key = d / "old.key"
        self.sns_stranger_key = d / "stranger.key"

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


KEYS = None


def keys():
    global KEYS
    if KEYS is None:
        KEYS = Keys()
    return KEYS


# ---- the truth about the source email, read with Python's email package --------------

def oracle():
    msg = email.message_from_bytes(SOURCE, policy=email.policy.default)

    def addrs(name):
        h = msg[name]
        return [{"name": a.display_name or None, "address": a.addr_spec} for a in h.addresses] if h else []

    text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
    html = msg.get_body(("html",)).get_content().replace("\r\n", "\n")
    atts = []
    for part in msg.walk():
        if part.is_multipart() or part.get_content_maintype() == "text":
            continue
        data = part.get_content()
        cid = part["Content-ID"]
        atts.append({"filename": part.get_filename(), "content_type": part.get_content_type(),
                     "content_id": cid.strip().strip("<>") if cid else None,
                     "disposition": part.get_content_disposition(), "sha256": sha256(data),
                     "size": len(data)})
    return {"subject": str(msg["subject"]), "from": addrs("from")[0], "to": addrs("to"),
            "cc": addrs("cc"), "text": text.rstrip("\n"), "html": html.rstrip("\n"),
            "message_id": str(msg["message-id"]).strip().strip("<>"), "attachments": atts}


# ---- bodies of each provider -----------------------------------------------------------

class Req:
    def __init__(self, path, body, content_type, headers=None):
        self.path, self.body, self.content_type = path, body, content_type
        self.headers = dict(headers or {})


def mp_parse(body, boundary):
    """A multipart/form-data body -> [(part head bytes, name, value bytes)]."""
    delim = b"\r\n--" + boundary.encode()
    segs = (b"\r\n" + body).split(delim)
    check(segs[0] == b"" and segs[-1] == b"--\r\n", "unexpected multipart framing")
    parts = []
    for seg in segs[1:-1]:
        head, _, value = seg[2:].partition(b"\r\n\r\n")
        name = re.search(rb'name="([^"]*)"', head).group(1).decode()
        parts.append((head, name, value))
    return parts


def mp_build(parts, boundary):
    b = boundary.encode()
    return b"".join(b"--" + b + b"\r\n" + h + b"\r\n\r\n" + v + b"\r\n" for h, _, v in parts) + \
        b"--" + b + b"--\r\n"


def mp_field(name, value):
    return (f'Content-Disposition: form-data; name="{name}"'.encode(), name,
            value if isinstance(value, bytes) else value.encode())


def raw_req(data=SOURCE):
    return Req("/inbound/raw", data, "message/rfc822")


def sendgrid_sign(body, ts=None, key=None):
    ts = str(int(time.time()) if ts is None else ts)
    sig = openssl("dgst", "-sha256", "-sign", str(key or keys().sendgrid_key), data=ts.encode() + body)
    return {"X-Twilio-Email-Event-Webhook-Signature": b64(sig),
            "X-Twilio-Email-Event-Webhook-Timestamp": ts}


def sendgrid_req(mode, sign=True, body=None):
    body = body if body is not None else (PROV / "sendgrid" / f"{mode}.multipart").read_bytes()
    return Req("/inbound/sendgrid", body, "multipart/form-data; boundary=xYzZY",
               sendgrid_sign(body) if sign else {})


def mailgun_sig(ts, token, key=MAILGUN_KEY):
    return hmac.new(key.encode(), f"{ts}{token}".encode(), hashlib.sha256).hexdigest()


def mailgun_security(ts=None, token=None, key=MAILGUN_KEY):
    ts = str(int(time.time()) if ts is None else ts)
    token = token or secrets.token_hex(25)  # 50 characters, like Mailgun's
    return {"timestamp": ts, "token": token, "signature": mailgun_sig(ts, token, key)}


def mailgun_mime_req(message=SOURCE, security=None, extra=()):
    """/inbound/mailgun/mime, urlencoded, in Mailgun's field order."""
    sec = security if security is not None else mailgun_security()
    fields = [("recipient", "help@in.example.com"), ("sender", "bounce+x1@example.org"),
              ("from", "x@example.org"), ("subject", "s"), ("body-mime", message)]
    fields += [(k, v) for k, v in sec.items()] + list(extra)
    enc = [(k, v if isinstance(v, bytes) else v.encode()) for k, v in fields]
    return Req("/inbound/mailgun/mime", urllib.parse.urlencode(enc).encode(),
               "application/x-www-form-urlencoded")


MAILGUN_BOUNDARY = "2b6ebbc1e0c14b6f9d3c1d1e9a5f0c7e"


def mailgun_parsed_req(security=None, mutate=None):
    """The parsed-variant fixture, re-signed now (the fixture holds the spec vector)."""
    sec = security if security is not None else mailgun_security()
    parts = mp_parse((PROV / "mailgun" / "parsed.multipart").read_bytes(), MAILGUN_BOUNDARY)
    parts = [mp_field(n, sec[n]) if n in sec else (h, n, v) for h, n, v in parts]
    if mutate:
        parts = mutate(parts)
    return Req("/inbound/mailgun", mp_build(parts, MAILGUN_BOUNDARY),
               f"multipart/form-data; boundary={MAILGUN_BOUNDARY}")


def postmark_req(mode):
    return Req("/inbound/postmark", (PROV / "postmark" / f"{mode}.json").read_bytes(),
               "application/json; charset=utf-8" if mode == "parsed" else "application/json")


NOTE_KEYS = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
CONF_KEYS = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]


def sns_sign(doc, version=2, key=None):
    """Sign DOC as SNS does (spec 5.2), with the test's leaf key unless KEY."""
    keys_ = NOTE_KEYS if doc["Type"] == "Notification" else CONF_KEYS
    text = "".join(f"{k}\n{doc[k]}\n" for k in keys_ if k in doc).encode()
    doc["SignatureVersion"] = str(version)
    digest = "-sha1" if version == 1 else "-sha256"
    doc["Signature"] = b64(openssl("dgst", digest, "-sign", str(key or keys().sns_key), data=text))
    return doc


def sns_req(doc, headers=True):
    h = {}
    if headers:
        h = {"x-amz-sns-message-type": doc.get("Type", ""), "x-amz-sns-message-id": doc.get("MessageId", ""),
             "x-amz-sns-topic-arn": doc.get("TopicArn", ""),
             "User-Agent": "Amazon Simple Notification Service Agent"}
    return Req("/inbound/ses", json.dumps(doc, indent=1).encode(), "text/plain; charset=UTF-8", h)


def ses_doc(version=2, **changes):
    doc = json.loads((PROV / "ses" / "received.json").read_text())
    doc.update(changes)
    return sns_sign(doc, version)


def ses_note(raw, message_id, ses_id):
    """An SNS Notification carrying an SES "Received" notification for RAW."""
    note = json.loads(json.loads((PROV / "ses" / "received.json").read_text())["Message"])
    note["mail"]["messageId"] = ses_id
    note["content"] = b64(raw)
    return json.loads((PROV / "ses" / "received.json").read_text()) | {
        "MessageId": message_id, "Message": json.dumps(note, separators=(",", ":"))}


def mandrill_signature(body_fields, key=MANDRILL_KEY, url=MANDRILL_URL):
    data = url.encode() + b"".join(k.encode() + v.encode() for k, v in sorted(body_fields))
    return b64(hmac.new(key.encode(), data, hashlib.sha1).digest())


def mandrill_req(body=None, key=MANDRILL_KEY, url=MANDRILL_URL, sign=True):
    body = body if body is not None else (PROV / "mandrill" / "batch.urlencoded").read_bytes()
    fields = urllib.parse.parse_qsl(body.decode("ascii"), keep_blank_values=True)
    h = {"User-Agent": "Mandrill-Webhook/1.0"}
    if sign:
        h["X-Mandrill-Signature"] = mandrill_signature(fields, key, url)
    return Req("/inbound/mandrill", body, "application/x-www-form-urlencoded", h)


def mandrill_events_body(events):
    return urllib.parse.urlencode({"mandrill_events": json.dumps(events)}).encode()


def mandrill_event(raw, email_to="help@in.example.com"):
    return {"event": "inbound", "ts": int(time.time()),
            "msg": {"raw_msg": raw.decode(), "email": email_to,
                    "spf": {"result": "pass"}, "dkim": {"signed": True, "valid": True}}}


# ---- talking to the server ------------------------------------------------------------

def basic(user=INGRESS_USER, password=INGRESS_PASSWORD):
    return "Basic " + b64(f"{user}:{password}".encode())


def send(srv, req, auth=None, chunks=None, chunked=False, max_piece=512):
    """POST REQ; with CHUNKS (a random.Random) the body goes out in small random pieces
    (1 to MAX_PIECE bytes), with a Content-Length or in chunked transfer encoding."""
    headers = {"Content-Type": req.content_type}
    headers.update(req.headers)
    if auth:
        headers["Authorization"] = auth
    if chunks is None:
        return srv.request("POST", req.path, body=req.body, headers=headers)
    s = srv.raw_socket()
    try:
        head = f"POST {req.path} HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head += "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {len(req.body)}\r\n"
        s.sendall((head + "Connection: close\r\n\r\n").encode())
        pos = 0
        while pos < len(req.body):
            piece = req.body[pos:pos + chunks.randint(1, max_piece)]
            pos += len(piece)
            s.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n" if chunked else piece)
            if chunks.random() < 0.03:
                time.sleep(0.002)
        if chunked:
            s.sendall(b"0\r\n\r\n")
        return read_http_response(s)
    finally:
        s.close()


def counts(srv):
    tables = ("tickets", "messages", "attachments", "events", "replay_tokens")
    row = db_query(srv.db, "SELECT " + ", ".join(f"(SELECT count(*) FROM {t})" for t in tables))[0]
    return {t: int(v) for t, v in zip(tables, row)}


def refused(srv, req, status, code=None, auth=None, what="", then=None):
    """REQ is answered STATUS with a JSON error (of CODE) and nothing is stored (looked at
    after calling THEN, e.g. to end an injected storage fault)."""
    before = counts(srv)
    r = send(srv, req, auth=auth)
    if then:
        then()
    check_eq(r.status, status, f"{what or req.path}: {r}")
    err = r.json().get("error")
    check(isinstance(err, dict) and err.get("code") and err.get("message"), f"JSON error: {r}")
    if code:
        check_eq(err["code"], code, f"{what or req.path}: error code ({err['message']})")
    check_eq(counts(srv), before, f"{what or req.path}: nothing stored for a refused request")
    check_eq(len(srv.get_json("/api/tickets?limit=200")["tickets"]), before["tickets"],
             f"{what or req.path}: GET /api/tickets")
    return r


def stored(srv, req, auth=None, what="", **kw):
    r = send(srv, req, auth=auth, **kw)
    check_eq(r.status, 200, f"{what or req.path}: {r}")
    return r.json()


def all_flags(k):
    return ["--mailgun-signing-key", MAILGUN_KEY, "--sendgrid-verification-key", k.sendgrid_public,
            "--mandrill-key", MANDRILL_KEY, "--mandrill-url", MANDRILL_URL,
            "--ses-topic-arn", OTHER_TOPIC, "--ses-topic-arn", TOPIC,
            "--sns-cert-file", str(k.sns_pinned)]


# ---- equivalence ------------------------------------------------------------------------

# route name -> (builder, meta.json of its expectations)
ROUTES = {
    "raw": (lambda: raw_req(), None),
    "sendgrid raw": (lambda: sendgrid_req("raw"), "sendgrid/raw.meta.json"),
    "sendgrid parsed": (lambda: sendgrid_req("parsed"), "sendgrid/parsed.meta.json"),
    "mailgun parsed": (lambda: mailgun_parsed_req(), "mailgun/parsed.meta.json"),
    "mailgun mime": (lambda: mailgun_mime_req(), "mailgun/mime.meta.json"),
    "postmark raw": (lambda: postmark_req("raw"), "postmark/raw.meta.json"),
    "postmark parsed": (lambda: postmark_req("parsed"), "postmark/parsed.meta.json"),
    "ses": (lambda: sns_req(ses_doc(2)), "ses/received.meta.json"),
    "mandrill": (lambda: mandrill_req(), "mandrill/batch.meta.json"),
}
RAW_EXPECT = {"provider": "raw", "rebuilt": False, "envelope_from": None, "envelope_to": [],
              "spf": None, "dkim": None, "dmarc": None, "spam_score": None, "warnings": []}


def check_same_email(srv, doc, want, name):
    for field in ("subject", "from", "to", "cc", "text", "html", "message_id"):
        check_eq(doc[field], want[field], f"{name}: {field}")
    check_eq(doc["date"], "2025-01-06T10:00:00Z", f"{name}: date")
    check_eq(len(doc["attachments"]), len(want["attachments"]), f"{name}: attachment count")
    for got, exp in zip(doc["attachments"], want["attachments"]):
        for k in ("filename", "content_type", "content_id", "disposition", "sha256", "size"):
            check_eq(got[k], exp[k], f"{name}: attachment {exp['filename']} {k}")
        r = srv.get(got["url"])
        check_eq(r.status, 200, f"{name}: GET {got['url']}")
        check_eq(sha256(r.body), exp["sha256"], f"{name}: downloaded bytes of {exp['filename']}")
        check_eq(r.header("content-type").split(";")[0], exp["content_type"], f"{name}: served type")


def check_provider_view(srv, doc, exp, name):
    check_eq(doc["provider"], exp["provider"], f"{name}: provider")
    check_eq(doc["envelope"], {"from": exp["envelope_from"], "to": exp["envelope_to"]},
             f"{name}: envelope")
    check_eq(doc["auth"], {"spf": exp["spf"], "dkim": exp["dkim"], "dmarc": exp.get("dmarc")},
             f"{name}: auth verdicts")
    check_eq(doc["spam_score"], exp["spam_score"], f"{name}: spam score")
    raw = srv.get(f"/api/messages/{doc['id']}/raw")
    check_eq(raw.status, 200, f"{name}: raw")
    if exp["rebuilt"]:
        check([w for w in doc["parse_warnings"] if w.startswith("rebuilt")],
              f"{name}: a rebuilt message says so: {doc['parse_warnings']}")
        check(raw.body != SOURCE, f"{name}: rebuilt raw differs from the original")
        check_eq([w for w in doc["parse_warnings"] if not w.startswith("rebuilt")], exp["warnings"],
                 f"{name}: other warnings")
    else:
        check_eq(doc["parse_warnings"], exp["warnings"], f"{name}: parse warnings")
        check(raw.body == SOURCE, f"{name}: the stored raw MIME is the provider's bytes, unchanged")


def test_same_email_through_every_route():
    """Each route into a fresh, fully configured server, bodies in small random chunks
    (Content-Length and chunked transfer encoding); every view of the email is the same."""
    want = oracle()
    check_eq(want["subject"], "Bestellung 1234 \u2013 Drucker zieht kein Papier", "oracle subject")
    check_eq([a["filename"] for a in want["attachments"]], ["jam.png", "Rechnung-M\u00e4rz.pdf"])
    rng = random.Random(SEED)
    seen = {}
    for i, (name, (build, meta_file)) in enumerate(ROUTES.items()):
        exp = RAW_EXPECT if meta_file is None else meta(meta_file)["expect"]["inbound"][0]
        with Server(*all_flags(keys())) as srv:
            req = build()
            reply = stored(srv, req, what=name, chunks=rng, chunked=bool(i % 2))
            first = reply["results"][0] if "results" in reply else reply
            check_eq(first["duplicate"], False, f"{name}: duplicate")
            check_eq(first["classification"], "new", f"{name}: classification")
            doc = srv.get_json(f"/api/messages/{first['message_id']}")
            validate(doc, "message")
            check_same_email(srv, doc, want, name)
            check_provider_view(srv, doc, exp, name)
            seen[name] = doc["stripped_text"]
            # A provider's retry of the same request is a duplicate with the same ids
            # (Mailgun's retry is signed afresh; a replayed token is refused, see below).
            again = stored(srv, build(), what=name + " retry")
            again = again["results"][0] if "results" in again else again
            check_eq((again["duplicate"], again["message_id"], again["ticket_id"]),
                     (True, first["message_id"], first["ticket_id"]), f"{name}: retry")
            check_eq(counts(srv)["messages"], 2 if name == "mandrill" else 1, f"{name}: stored once")
    for name, stripped in seen.items():
        check_eq(stripped, seen["raw"], f"{name}: stripped_text")


# ---- authentication ---------------------------------------------------------------------

def test_mailgun_signatures_window_and_replay():
    with Server("--mailgun-signing-key", MAILGUN_KEY) as srv:
        # Spec section 12 vector: right signature, but its timestamp is long past. That it
        # fails as stale (not as a bad signature) shows the HMAC is the spec's.
        vector = {"timestamp": "1700000000", "token": "a3f5c0d1e2b4968778695a4b3c2d1e0f9a8b7c6d5e4f3a2b1c",
                  "signature": "64a05ffab5b32390ac9313603edc23b6770c27e56b345edf0a810ed3e81b8d0e"}
        with Server("--mailgun-signing-key", "test-signing-key-0123456789") as spec_srv:
            refused(spec_srv, mailgun_mime_req(security=vector), 406, "mailgun_timestamp_stale")
            bad = dict(vector, signature=vector["signature"][:-1] + "f")
            refused(spec_srv, mailgun_mime_req(security=bad), 406, "mailgun_bad_signature")
        now = int(time.time())
        mail = lambda: make_mail(subject="mailgun auth")
        refused(srv, mailgun_mime_req(mail(), mailgun_security(key="not-the-key")), 406,
                "mailgun_bad_signature", what="signed with another key")
        sec = mailgun_security()
        refused(srv, mailgun_mime_req(mail(), dict(sec, token=sec["token"][:-1] + "x")), 406,
                "mailgun_bad_signature", what="token changed after signing")
        sec = mailgun_security()
        refused(srv, mailgun_mime_req(mail(), dict(sec, timestamp=str(int(sec["timestamp"]) + 1))),
                406, "mailgun_bad_signature", what="timestamp changed after signing")
        refused(srv, mailgun_mime_req(mail(), mailgun_security(ts=now - 400)), 406,
                "mailgun_timestamp_stale", what="signed 400 s ago")
        refused(srv, mailgun_mime_req(mail(), mailgun_security(ts=now + 400)), 406,
                "mailgun_timestamp_stale", what="signed 400 s ahead")
        for missing in ("timestamp", "token", "signature"):
            sec = mailgun_security()
            del sec[missing]
            refused(srv, mailgun_mime_req(mail(), sec), 406, "mailgun_signature_missing",
                    what=f"without {missing}")
        refused(srv, mailgun_mime_req(mail(), {}), 406, "mailgun_signature_missing")
        check_eq(counts(srv)["replay_tokens"], 0, "refused requests remember no token")

        # Within the window (4 minutes old) it is accepted, and its token is remembered.
        first_sec = mailgun_security(ts=now - 240)
        first = stored(srv, mailgun_mime_req(make_mail(subject="first", message_id="<mg1@example.org>"),
                                             first_sec))
        check_eq(counts(srv)["replay_tokens"], 1)
        # The same request again, and the same signed token over another message: both
        # refused, as is every replay after a restart (the token is in the database).
        refused(srv, mailgun_mime_req(make_mail(subject="first", message_id="<mg1@example.org>"),
                                      first_sec), 406, "replayed_token", what="identical replay")
        forged = mailgun_mime_req(make_mail(subject="forged", message_id="<forged@example.org>"),
                                  first_sec)
        refused(srv, forged, 406, "replayed_token", what="token replayed with another message")
        srv.restart()
        refused(srv, forged, 406, "replayed_token", what="replay after a restart")
        check_eq(srv.get_json(f"/api/messages/{first['message_id']}")["subject"], "first")
        # A fresh token for the same message: Mailgun's retry, a duplicate.
        again = stored(srv, mailgun_mime_req(make_mail(subject="first", message_id="<mg1@example.org>"),
                                             mailgun_security()))
        check_eq((again["duplicate"], again["message_id"]), (True, first["message_id"]))


def test_mailgun_token_shares_the_transaction():
    """A post refused for storage trouble (503) leaves its token unused: the provider's
    retry of the very same signed request is then stored. The trouble: an injected write
    fault on SQLite; on PostgreSQL, tables locked by another session past the lock
    timeout."""
    work = Path(tempfile.mkdtemp(prefix="inboxd-fault-"))
    fault = work / "fault"
    fault.write_text("")
    try:
        flags = ["--mailgun-signing-key", MAILGUN_KEY, "--db-busy-timeout-ms", "300"]
        with Server(*flags, env={"INBOXD_FAULT_FILE": str(fault)}) as srv:
            req = mailgun_mime_req(make_mail(subject="during a fault"))
            if on_postgres():
                lock = DbLock(srv.db).__enter__()
                end = lambda: lock.__exit__(None, None, None)  # noqa: E731
            else:
                fault.write_text("full")
                time.sleep(0.05)
                end = lambda: (fault.write_text(""), time.sleep(0.05))  # noqa: E731
            r = refused(srv, req, 503, "storage_unavailable", then=end)
            check(r.header("retry-after"), "Retry-After on 503")
            reply = stored(srv, req, what="retry after the fault")
            check_eq(reply["duplicate"], False)
            check_eq(counts(srv)["replay_tokens"], 1)
            refused(srv, req, 406, "replayed_token", what="and now it is used")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_mailgun_hostile_duplicate_fields_and_store_notify():
    with Server("--mailgun-signing-key", MAILGUN_KEY) as srv:
        def with_extra(name, value, before):
            def mutate(parts):
                extra = mp_field(name, value)
                idx = next(i for i, p in enumerate(parts) if p[1] == name)
                return parts[:idx] + [extra] + parts[idx:] if before else parts + [extra]
            return mutate
        # A header named like Mailgun's security fields, posing beside (before or after)
        # the real ones: different values are refused, whatever their order.
        for name in ("token", "signature", "timestamp"):
            for before in (True, False):
                sec = mailgun_security()
                forged = mailgun_security()[name] if name != "timestamp" else str(int(time.time()) - 1)
                refused(srv, mailgun_parsed_req(sec, with_extra(name, forged, before)), 406,
                        "mailgun_conflicting_fields", what=f"two {name} fields (hostile first: {before})")
        # Urlencoded too: a second signature after the valid one.
        sec = mailgun_security()
        refused(srv, mailgun_mime_req(security=sec, extra=[("signature", "0" * 64)]), 406,
                "mailgun_conflicting_fields", what="urlencoded duplicate signature")
        check_eq(counts(srv)["replay_tokens"], 0)
        # An exact repeat of the same value is no conflict.
        sec = mailgun_security()
        reply = stored(srv, mailgun_parsed_req(sec, with_extra("token", sec["token"], False)))
        check_eq(reply["duplicate"], False)

        # Mail headers named like Mailgun's other fields (recipient, sender, body-mime),
        # posted as fields before the documented ones and listed in message-headers:
        # they change neither the envelope nor the message.
        forged_mime = make_mail(subject="forged via body-mime").decode()
        hostile = [("recipient", "evil@example.net"), ("sender", "evil@example.net"),
                   ("body-mime", forged_mime)]

        def pose(parts):
            out = [mp_field(n, v) for n, v in hostile]
            for h, n, v in parts:
                if n == "message-headers":
                    v = json.dumps(json.loads(v) + [list(x) for x in hostile]).encode()
                out.append((h, n, v))
            return out
        reply = stored(srv, mailgun_parsed_req(mailgun_security(), pose), what="hostile headers")
        doc = srv.get_json(f"/api/messages/{reply['message_id']}")
        check_eq(doc["envelope"], {"from": "bounce+x1@example.org", "to": ["help@in.example.com"]},
                 "hostile recipient/sender headers")
        check_eq(doc["subject"], oracle()["subject"], "hostile body-mime header")
        check(["recipient", "evil@example.net"] in doc["headers"], "the header itself is kept")

        # store(notify=...): the message is not in the post; refused with 406 (Mailgun
        # stops) and a message saying which route action to use.
        body = (PROV / "mailgun" / "store-notify.urlencoded").read_bytes()
        fields = urllib.parse.parse_qsl(body.decode(), keep_blank_values=True)
        sec = mailgun_security()
        fields = [(k, sec.get(k, v)) for k, v in fields]
        req = Req("/inbound/mailgun", urllib.parse.urlencode(fields).encode(),
                  "application/x-www-form-urlencoded")
        r = refused(srv, req, 406, "mailgun_store_notify_unsupported")
        check("/inbound/mailgun/mime" in r.json()["error"]["message"], r.json())


def test_sendgrid_ecdsa_signatures():
    k = keys()
    with Server("--sendgrid-verification-key", k.sendgrid_public) as srv:
        body = (PROV / "sendgrid" / "raw.multipart").read_bytes()
        ct = "multipart/form-data; boundary=xYzZY"
        refused(srv, Req("/inbound/sendgrid", body, ct), 401, "sendgrid_signature_missing")
        h = sendgrid_sign(body)
        refused(srv, Req("/inbound/sendgrid", body, ct, {k_: v for k_, v in h.items() if "Timestamp" in k_}),
                401, "sendgrid_signature_missing", what="no signature header")
        refused(srv, Req("/inbound/sendgrid", body, ct, {k_: v for k_, v in h.items() if "Signature" in k_}),
                401, "sendgrid_signature_missing", what="no timestamp header")
        refused(srv, Req("/inbound/sendgrid", body, ct, sendgrid_sign(body, key=k.sendgrid_other)),
                401, "sendgrid_bad_signature", what="signed by another key")
        tampered = body.replace(b"spam_score\"\r\n\r\n0.1", b"spam_score\"\r\n\r\n0.0")
        check(tampered != body)
        refused(srv, Req("/inbound/sendgrid", tampered, ct, h), 401, "sendgrid_bad_signature",
                what="body changed after signing")
        other_ts = dict(h, **{"X-Twilio-Email-Event-Webhook-Timestamp": str(int(time.time()) + 1)})
        refused(srv, Req("/inbound/sendgrid", body, ct, other_ts), 401, "sendgrid_bad_signature",
                what="timestamp changed after signing")
        garbage = dict(h, **{"X-Twilio-Email-Event-Webhook-Signature": "bm90IGEgc2lnbmF0dXJl"})
        refused(srv, Req("/inbound/sendgrid", body, ct, garbage), 401, "sendgrid_bad_signature")
        # SendGrid retries for 3 days and may keep the signed timestamp, so the window is
        # those 3 days (not Mailgun's 5 minutes); a signature older than that is stale.
        refused(srv, Req("/inbound/sendgrid", body, ct,
                         sendgrid_sign(body, ts=int(time.time()) - 4 * 86400)),
                401, "sendgrid_signature_stale", what="signed 4 days ago")
        refused(srv, Req("/inbound/sendgrid", body, ct,
                         sendgrid_sign(body, ts=int(time.time()) + 4 * 86400)),
                401, "sendgrid_signature_stale", what="signed 4 days ahead")
        reply = stored(srv, Req("/inbound/sendgrid", body, ct,
                                sendgrid_sign(body, ts=int(time.time()) - 3600)), what="an hour-old retry")
        check_eq(reply["duplicate"], False)
        # Replaying a captured request can only repeat that very message: a duplicate.
        again = stored(srv, Req("/inbound/sendgrid", body, ct, h))
        check_eq((again["duplicate"], again["message_id"]), (True, reply["message_id"]))
        check_eq(counts(srv)["messages"], 1)
        # Parsed mode, body in chunks: the signature covers the whole multipart body.
        parsed = sendgrid_req("parsed")
        reply = stored(srv, parsed, chunks=random.Random(SEED + 1), chunked=True)
        check_eq(reply["duplicate"], False)


def test_mandrill_signatures_batches_and_health_check():
    # Spec section 12 vector, byte for byte.
    value = ('[{"event":"inbound","ts":1700000000,"msg":{"raw_msg":"From: a@example.org\\r\\n'
             'To: t@in.example.com\\r\\nSubject: hi\\r\\n\\r\\nbody\\r\\n","email":"t@in.example.com"}}]')
    check_eq(len(value.encode()), 159, "spec vector length")
    vec_url = "https://inbound.example.com/hooks/mandrill"
    with Server("--mandrill-key", "mandrill-webhook-key-XYZ", "--mandrill-url", vec_url) as srv:
        body = urllib.parse.urlencode({"mandrill_events": value}).encode()
        req = Req("/inbound/mandrill", body, "application/x-www-form-urlencoded",
                  {"X-Mandrill-Signature": "RV7lJKUFzRT0U7sBDjQetfD09q0="})
        check_eq(mandrill_signature([("mandrill_events", value)], "mandrill-webhook-key-XYZ", vec_url),
                 "RV7lJKUFzRT0U7sBDjQetfD09q0=", "the test's own HMAC")
        reply = stored(srv, req)
        check_eq(srv.get_json(f"/api/messages/{reply['message_id']}")["subject"], "hi")

    with Server("--mandrill-key", MANDRILL_KEY, "--mandrill-url", MANDRILL_URL,
                "--ingress-user", INGRESS_USER, "--ingress-password", INGRESS_PASSWORD) as srv:
        # Mandrill checks the URL with HEAD/GET before it posts: 200, no credentials.
        for method in ("HEAD", "GET"):
            r = srv.request(method, "/inbound/mandrill")
            check_eq(r.status, 200, f"{method} /inbound/mandrill: {r}")
        check_eq(srv.request("GET", "/inbound/sendgrid").status, 405, "GET on another provider")
        auth = basic()
        refused(srv, mandrill_req(sign=False), 401, "mandrill_signature_missing", auth=auth)
        refused(srv, mandrill_req(key="another-key"), 401, "mandrill_bad_signature", auth=auth)
        refused(srv, mandrill_req(url="https://inbound.example.com/hooks/mandrill"), 401,
                "mandrill_bad_signature", auth=auth, what="signed for another URL")
        good = mandrill_req()
        tampered = Req(good.path, good.body.replace(b"help%40in.example.com", b"evil%40in.example.com", 1),
                       good.content_type, good.headers)
        check(tampered.body != good.body)
        refused(srv, tampered, 401, "mandrill_bad_signature", auth=auth, what="body changed after signing")

        # A batch whose second event is not mail: refused whole, the first is not stored.
        broken = mandrill_events_body([mandrill_event(make_mail(subject="one")),
                                       {"event": "inbound", "msg": {"email": "x@in.example.com"}}])
        refused(srv, mandrill_req(broken), 400, "mandrill_event_invalid", auth=auth)

        # The batch of two: both stored by the one request, in order.
        reply = stored(srv, mandrill_req(), auth=auth, chunks=random.Random(SEED + 2))
        results = reply["results"]
        check_eq(len(results), 2, "one result per event")
        check_eq([r_["duplicate"] for r_ in results], [False, False])
        subjects = [srv.get_json(f"/api/messages/{r_['message_id']}")["subject"] for r_ in results]
        check_eq(subjects, ["Bestellung 1234 \u2013 Drucker zieht kein Papier", "hi"])
        again = stored(srv, mandrill_req(), auth=auth)["results"]
        check_eq([(r_["duplicate"], r_["message_id"]) for r_ in again],
                 [(True, r_["message_id"]) for r_ in results], "the whole batch again: duplicates")


def test_mandrill_batch_is_one_commit():
    skip_on_postgres("faults are injected through SQLite's VFS")
    work = Path(tempfile.mkdtemp(prefix="inboxd-fault-"))
    fault = work / "fault"
    fault.write_text("")
    try:
        with Server("--mandrill-key", MANDRILL_KEY, "--mandrill-url", MANDRILL_URL,
                    env={"INBOXD_FAULT_FILE": str(fault)}) as srv:
            batch = mandrill_req(mandrill_events_body(
                [mandrill_event(make_mail(subject="batch one")),
                 mandrill_event(make_mail(subject="batch two"))]))
            for kind in ("full", "ioerr"):
                fault.write_text(kind)
                time.sleep(0.05)
                refused(srv, batch, 503, "storage_unavailable", what=f"batch under fault {kind}",
                        then=lambda: (fault.write_text(""), time.sleep(0.05)))
            results = stored(srv, batch)["results"]
            check_eq([r["duplicate"] for r in results], [False, False])
            check_eq(counts(srv)["messages"], 2)
    finally:
        shutil.rmtree(work, ignore_errors=True)


class SubscribeCatcher:
    """A local http.server that records the GETs inboxd makes for SubscribeURLs."""

    def __init__(self, delay=0.0):
        self.paths = []
        catcher = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                catcher.paths.append(self.path)
                time.sleep(delay)
                body = b"<ConfirmSubscriptionResponse/>"
                self.send_response(200)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, n, timeout=10):
        end = time.time() + timeout
        while len(self.paths) < n and time.time() < end:
            time.sleep(0.02)
        return list(self.paths)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def subscribe_doc(topic=TOPIC, version=1, url_host="sns.us-east-1.amazonaws.com"):
    doc = json.loads((PROV / "ses" / "subscribe.json").read_text())
    doc["TopicArn"] = topic
    doc["SubscribeURL"] = (f"https://{url_host}/?Action=ConfirmSubscription&TopicArn={topic}"
                           f"&Token={doc['Token']}")
    return sns_sign(doc, version)


def test_sns_signatures_topics_and_subscription():
    k = keys()
    catcher = SubscribeCatcher()
    try:
        with Server("--ses-topic-arn", TOPIC, "--sns-cert-file", str(k.sns_pinned),
                    env={"INBOXD_TEST_SNS_BASE": catcher.base}) as srv:
            # A confirmation for an allowed topic: inboxd GETs the SubscribeURL, stores nothing.
            before = counts(srv)
            doc = subscribe_doc()
            r = send(srv, sns_req(doc))
            check_eq(r.status, 200, f"subscription confirmation: {r}")
            paths = catcher.wait(1)
            query = urllib.parse.urlsplit(doc["SubscribeURL"]).query
            check_eq(paths, ["/?" + query], "the SubscribeURL was visited")
            check_eq(counts(srv), before, "a confirmation stores nothing")
            # A topic not on the list: 4xx, no visit, and the token logged for the operator.
            refused(srv, sns_req(subscribe_doc(OTHER_TOPIC)), 400, "ses_topic_not_allowed")
            check(any(doc["Token"] in line and OTHER_TOPIC in line for line in srv.log_text().splitlines()),
                  "the refused subscription's token is in the log")
            refused(srv, sns_req(subscribe_doc(url_host="sns.us-east-1.amazonaws.com.example.net")),
                    400, "sns_subscribe_url_refused")
            time.sleep(0.5)
            check_eq(catcher.paths, paths, "no SubscribeURL visited for a refused confirmation")

            # Notifications, signature version 1 and 2.
            n1 = stored(srv, sns_req(ses_doc(1)), what="SignatureVersion 1")
            check_eq(n1["duplicate"], False)
            n2 = stored(srv, sns_req(ses_doc(2)), what="SignatureVersion 2, the same SES message")
            check_eq((n2["duplicate"], n2["message_id"]), (True, n1["message_id"]))
            refused(srv, sns_req(ses_doc(2, TopicArn=OTHER_TOPIC)), 400, "ses_topic_not_allowed")
            # Wrong: another key, a changed Message, a v1 signature claimed as v2.
            stranger = json.loads((PROV / "ses" / "received.json").read_text())
            refused(srv, sns_req(sns_sign(stranger, 2, k.sns_stranger_key)), 403, "sns_bad_signature",
                    what="signed by a stranger's key")
            raw2 = make_mail(subject="ses two", message_id="<ses2@example.org>")
            doc = sns_sign(ses_note(raw2, "a1b2c3d4-0000-4000-8000-000000000002", "ses-two"), 2)
            forged = dict(doc, Message=ses_note(make_mail(subject="forged"), "x", "ses-forged")["Message"])
            refused(srv, sns_req(forged), 403, "sns_bad_signature", what="Message changed after signing")
            refused(srv, sns_req(dict(doc, SignatureVersion="1")), 403, "sns_bad_signature",
                    what="v2 signature claimed as v1")
            refused(srv, sns_req(dict(doc, SignatureVersion="3")), 403, "sns_signature_version")
            # Missing signature: empty, or no Signature key at all (malformed SNS).
            refused(srv, sns_req(dict(doc, Signature="")), 403, "sns_signature_missing")
            refused(srv, sns_req({k_: v for k_, v in doc.items() if k_ != "Signature"}), 400,
                    "sns_field_missing")
            # The certificate URL must be an SNS host over https.
            for url in ("https://sns.us-east-1.amazonaws.com.example.net/cert.pem",
                        "http://sns.us-east-1.amazonaws.com/cert.pem",
                        "https://example.org/SimpleNotificationService-1.pem"):
                refused(srv, sns_req(dict(doc, SigningCertURL=url)), 403, "sns_cert_url_refused",
                        what=url)
            mismatch = sns_req(doc)
            mismatch.headers["x-amz-sns-message-id"] = "another-id"
            refused(srv, mismatch, 400, "sns_header_mismatch")
            reply = stored(srv, sns_req(doc), what="the untouched second message")
            check_eq(srv.get_json(f"/api/messages/{reply['message_id']}")["subject"], "ses two")
            # An unsubscribe confirmation is acknowledged, nothing stored or visited.
            unsub = json.loads((PROV / "ses" / "subscribe.json").read_text())
            unsub["Type"] = "UnsubscribeConfirmation"
            before = counts(srv)
            r = send(srv, sns_req(sns_sign(unsub, 2)))
            check_eq(r.status, 200, f"unsubscribe confirmation: {r}")
            check_eq(counts(srv), before)
            time.sleep(0.3)
            check_eq(len(catcher.paths), 1, "only the one allowed subscription was visited")

        # Stale: the signing certificate has expired.
        with Server("--ses-topic-arn", TOPIC, "--sns-cert-file", str(k.sns_expired_pem)) as srv:
            doc = json.loads((PROV / "ses" / "received.json").read_text())
            refused(srv, sns_req(sns_sign(doc, 2, k.sns_expired_key)), 403, "sns_cert_expired")
    finally:
        catcher.close()


def big_mail(tag, blob):
    """A multipart message carrying BLOB as a base64 attachment."""
    b = "big-" + tag
    body = (f"--{b}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nsee attached ({tag})\r\n"
            f"--{b}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Disposition: attachment; filename=\"{tag}.bin\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n").encode()
    enc = base64.encodebytes(blob).replace(b"\n", b"\r\n")
    body += enc + f"--{b}--\r\n".encode()
    head = (f"From: Big Sender <big@example.org>\r\nTo: help@in.example.com\r\nSubject: big {tag}\r\n"
            f"Date: Mon, 06 Jan 2025 10:00:00 +0000\r\nMessage-ID: <big-{tag}@example.org>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"{b}\"\r\n\r\n").encode()
    return head + body


def test_large_bodies_through_the_spool():
    """Bodies past the 1 MiB in-memory limit are spooled to a file; messages that are a
    slice of the spooled body (SendGrid raw) and decoded ones (urlencoded, JSON, base64)
    read back byte for byte."""
    rng = random.Random(SEED + 3)
    blob = rng.randbytes(3 * 1024 * 1024 + 17)

    def sendgrid_raw(raw):
        parts = mp_parse((PROV / "sendgrid" / "raw.multipart").read_bytes(), "xYzZY")
        parts = [mp_field("email", raw) if n == "email" else (h, n, v) for h, n, v in parts]
        return sendgrid_req("raw", body=mp_build(parts, "xYzZY"))

    def postmark_raw(raw):
        doc = json.loads((PROV / "postmark" / "raw.json").read_text())
        doc["RawEmail"] = raw.decode()
        doc["MessageID"] = "big-" + hashlib.md5(raw).hexdigest()
        return Req("/inbound/postmark", json.dumps(doc).encode(), "application/json")

    builders = {"raw": raw_req, "sendgrid": sendgrid_raw, "mailgun": lambda raw: mailgun_mime_req(raw),
                "postmark": postmark_raw,
                "ses": lambda raw: sns_req(sns_sign(ses_note(raw, "big-sns", "big-ses"), 2)),
                "mandrill": lambda raw: mandrill_req(mandrill_events_body([mandrill_event(raw)]))}
    with Server(*all_flags(keys())) as srv:
        for i, (name, build) in enumerate(builders.items()):
            raw = big_mail(name, blob)
            req = build(raw)
            check(len(req.body) > 3 * 1024 * 1024, f"{name}: body of {len(req.body)} bytes")
            reply = stored(srv, req, what=name, chunks=rng, chunked=bool(i % 2), max_piece=65536)
            mid = (reply["results"][0] if "results" in reply else reply)["message_id"]
            doc = srv.get_json(f"/api/messages/{mid}")
            check_eq(doc["subject"], f"big {name}")
            check(srv.get(f"/api/messages/{mid}/raw").body == raw, f"{name}: raw bytes")
            att = doc["attachments"][0]
            check_eq((att["filename"], att["size"], att["sha256"]), (f"{name}.bin", len(blob), sha256(blob)))
            check_eq(sha256(srv.get(att["url"]).body), sha256(blob), f"{name}: attachment bytes")


def test_a_large_message_is_parsed_off_the_http_thread():
    """With one HTTP thread, a large message whose parse is held (the test gate) holds up
    nothing else: /healthz, an API read and a small message are answered meanwhile, and
    the large one is stored whole once released. Parsed on the HTTP thread, as every
    message was before, it held every other connection of that thread until it was done.
    A large request that fails (a bad signature) is answered from the same path."""
    rng = random.Random(SEED + 5)
    blob = rng.randbytes(600 * 1024 + 3)
    raw = big_mail("held", blob)
    workdir = Path(tempfile.mkdtemp(prefix="inboxd-gate-"))
    gate = workdir / "gate"
    try:
        with Server("--threads", "1", *all_flags(keys()),
                    env={"INBOXD_TEST_OFFLOAD_GATE": str(gate)}) as srv:
            done = {}
            t = threading.Thread(target=lambda: done.update(r=send(srv, raw_req(raw))))
            t.start()
            try:
                wait_until((workdir / "gate.held").exists, timeout=60,
                           what="the large message to reach the offload pool")
                check_eq(srv.get("/healthz", timeout=20).status, 200, "/healthz while it is held")
                check_eq(srv.get("/api/tickets", timeout=20).status, 200, "an API read meanwhile")
                small = srv.ingest(make_mail(subject="small one",
                                             message_id="<small-while-held@example.org>"))
                check_eq(srv.get_json(f"/api/messages/{small['message_id']}")["subject"], "small one")
                check("r" not in done and t.is_alive(), "the large message is still held")
            finally:
                gate.write_bytes(b"")  # also on failure: the server cannot stop while held
                t.join(60)
            check_eq(done["r"].status, 200, f"the large message: {done.get('r')}")
            mid = done["r"].json()["message_id"]
            check(srv.get(f"/api/messages/{mid}/raw").body == raw, "raw bytes of the large message")
            att = srv.get_json(f"/api/messages/{mid}")["attachments"][0]
            check_eq((att["size"], att["sha256"]), (len(blob), sha256(blob)))
            big = mandrill_events_body([mandrill_event(big_mail("unsigned", blob))])
            check(len(big) > 600 * 1024, "a large Mandrill body")
            refused(srv, mandrill_req(big, key="another-key"), 401, "mandrill_bad_signature")
            stored(srv, mandrill_req(big), what="the same body, signed")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_shutdown_after_the_drain_ran_out():
    """SIGTERM while requests outlast the 10 s drain: a large message already being parsed
    (held at the test gate), one queued behind it on the only offload thread, and a body
    that completes only after the drain. The first is stored and answered 200; the queued
    one and the late body are answered 503 shutting_down with Retry-After; the server
    exits 0 (libmicrohttpd used to abort it: stopped with a connection suspended). After
    a restart exactly the first message is there."""
    rng = random.Random(SEED + 7)
    workdir = Path(tempfile.mkdtemp(prefix="inboxd-gate-"))
    gate = workdir / "gate"
    mails = [big_mail(f"stop{i}", rng.randbytes(400 * 1024)) for i in range(3)]
    srv = Server("--threads", "1", env={"INBOXD_TEST_OFFLOAD_GATE": str(gate)}).start()
    try:
        replies = {}

        def post(i):
            replies[i] = send(srv, raw_req(mails[i]))

        first = threading.Thread(target=post, args=(0,))
        first.start()
        wait_until((workdir / "gate.held").exists, timeout=60,
                   what="the first message to reach the offload pool")
        queued = threading.Thread(target=post, args=(1,))
        queued.start()
        late = srv.raw_socket()
        late.sendall(f"POST /inbound/raw HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                     f"message/rfc822\r\nContent-Length: {len(mails[2])}\r\n\r\n".encode()
                     + mails[2][:-10])
        time.sleep(1)  # the second body is in; it waits behind the first
        srv.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "work under way finishes" in srv.log_text(), timeout=60,
                   what="the drain (10 s) to run out")
        late.sendall(mails[2][-10:])
        r = read_http_response(late)
        late.close()
        check_eq(r.status, 503, f"a body completed after the drain: {r}")
        check_eq(r.json()["error"]["code"], "shutting_down")
        gate.write_bytes(b"")
        first.join(60)
        queued.join(60)
        check_eq(replies[0].status, 200, f"the message being parsed: {replies[0]}")
        check_eq(replies[1].status, 503, f"the queued message: {replies[1]}")
        check_eq(replies[1].json()["error"]["code"], "shutting_down")
        check_eq(replies[1].header("retry-after"), "5")
        check_eq(srv.proc.wait(timeout=60), 0, f"exit status; log:\n{srv.log_text()[-3000:]}")
        srv.stop()
        srv.start()
        check_eq([t["subject"] for t in srv.get_json("/api/tickets")["tickets"]], ["big stop0"])
        mid = replies[0].json()["message_id"]
        check(srv.get(f"/api/messages/{mid}/raw").body == mails[0], "raw bytes of the first")
    except BaseException:
        print(f"kept {srv.workdir}", file=sys.stderr)
        raise
    else:
        shutil.rmtree(srv.workdir, ignore_errors=True)
    finally:
        gate.write_bytes(b"")
        if srv.proc:
            srv.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def test_shutdown_while_a_subscription_visit_hangs():
    """SIGTERM while inboxd is still visiting a SubscribeURL that does not answer: it
    stops in time, exits 0, and (sanitizer build) the visit does not outlive its state."""
    catcher = SubscribeCatcher(delay=4)
    try:
        srv = Server("--ses-topic-arn", TOPIC, "--sns-cert-file", str(keys().sns_pinned),
                     env={"INBOXD_TEST_SNS_BASE": catcher.base}).start()
        try:
            check_eq(send(srv, sns_req(subscribe_doc())).status, 200)
            check_eq(len(catcher.wait(1)), 1, "the visit started")
            t0 = time.time()
            check_eq(srv.stop(), 0, "exit status with a visit in progress")
            check(time.time() - t0 < 8, f"stopped in {time.time() - t0:.1f}s")
        finally:
            if srv.proc:
                srv.kill()
            shutil.rmtree(srv.workdir, ignore_errors=True)
    finally:
        catcher.close()


# ---- basic auth and status codes ---------------------------------------------------------

def test_basic_auth_on_every_ingress_route():
    k = keys()
    builders = [("raw", raw_req), ("sendgrid", lambda: sendgrid_req("raw")),
                ("mailgun", mailgun_parsed_req), ("mailgun/mime", mailgun_mime_req),
                ("postmark", lambda: postmark_req("raw")), ("ses", lambda: sns_req(ses_doc(2))),
                ("mandrill", mandrill_req)]
    with Server(*all_flags(k), "--ingress-user", INGRESS_USER,
                "--ingress-password", INGRESS_PASSWORD) as srv:
        wrong = [None, basic(password="wrong"), basic(user="other"),
                 basic(password=INGRESS_PASSWORD[:-1]), basic(password=INGRESS_PASSWORD + "x"),
                 basic(user=INGRESS_USER + ":" + INGRESS_PASSWORD, password=""),
                 "Basic " + b64(INGRESS_PASSWORD.encode()), "Bearer " + INGRESS_PASSWORD,
                 "Basic !!!"]
        for name, build in builders:
            for auth in wrong:
                r = refused(srv, build(), 401, "unauthorized", auth=auth, what=f"{name} auth={auth!r}")
                check_eq(r.header("www-authenticate"), 'Basic realm="inboxd"', f"{name}: challenge")
            reply = stored(srv, build(), auth=basic(), what=name)
            check("message_id" in reply or "results" in reply, reply)
            # The scheme name is case-insensitive (RFC 7617).
            stored(srv, build(), auth="basic " + basic()[6:], what=name + " lower-case scheme")
        # Only the password configured: basic auth is still required (never open by accident).
    with Server("--ingress-password", INGRESS_PASSWORD) as srv:
        refused(srv, raw_req(), 401, "unauthorized", what="password only, no credentials")
        refused(srv, raw_req(), 401, "unauthorized", auth=basic(password="nope"), what="password only")


def test_refusals_have_the_status_each_provider_needs():
    """Spec section 11: Mailgun stops only on 406, Postmark only on 403; SNS 4xx; 503 for
    storage trouble everywhere. Every refusal is a JSON error and stores nothing."""
    with Server(*all_flags(keys())) as srv:
        refused(srv, Req("/inbound/mailgun", b"recipient=a%40example.org&" +
                         urllib.parse.urlencode(mailgun_security()).encode(),
                         "application/x-www-form-urlencoded"), 406, "mailgun_no_message")
        refused(srv, Req("/inbound/mailgun/mime", b"x", "application/json"), 406)
        refused(srv, Req("/inbound/postmark", b"{not json", "application/json"), 403, "postmark_bad_json")
        refused(srv, Req("/inbound/postmark", b"{}", "application/json"), 403, "postmark_no_message")
        refused(srv, Req("/inbound/postmark", b"<xml/>", "text/xml"), 403, "unsupported_media_type")
        refused(srv, Req("/inbound/ses", b"{}", "text/plain"), 400, "sns_field_missing")
        refused(srv, Req("/inbound/ses", b"[", "text/plain"), 400, "sns_bad_json")
        body = mp_build([mp_field("to", "a@example.org")], "xYzZY")
        refused(srv, Req("/inbound/sendgrid", body, "multipart/form-data; boundary=xYzZY",
                         sendgrid_sign(body)), 400, "sendgrid_no_message")
        refused(srv, Req("/inbound/raw", b"hello", "image/png"), 415)
        refused(srv, Req("/inbound/nosuch", b"x", "text/plain"), 404, "not_found")
        r = srv.request("PUT", "/inbound/mailgun", body=b"x")
        check_eq(r.status, 405, f"PUT: {r}")
        check(r.header("allow"), "Allow header")


def main():
    print(f"seed {SEED} (INBOXD_TEST_SEED to repeat)", flush=True)
    try:
        run(globals())
    finally:
        if KEYS:
            KEYS.cleanup()


if __name__ == "__main__":
    main()
