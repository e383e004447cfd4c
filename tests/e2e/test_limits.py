#!/usr/bin/env python3
"""Issue 7, limits and slow clients: every limit is configurable and answered with a
clear JSON error or, for mail that exceeds a parsing limit, stored raw with a warning;
stalled uploads cannot starve other clients and /healthz keeps answering."""
import base64
import json
import socket
import time

from inboxd_test import Server, check, check_eq, make_mail, read_http_response, run


def warnings_of(srv, reply):
    return srv.get_json(f"/api/messages/{reply['message_id']}")["parse_warnings"]


def has_warning(ws, code):
    return any(w.startswith(code + ":") for w in ws)


def nested(depth):
    """A message nested DEPTH multiparts deep."""
    body = "Content-Type: text/plain\r\n\r\ninnermost\r\n"
    for i in range(depth):
        b = f"b{i}"
        body = (f"Content-Type: multipart/mixed; boundary={b}\r\n\r\n--{b}\r\n{body}"
                f"--{b}--\r\n")
    return (b"From: a@example.org\r\nSubject: deep\r\nMessage-ID: <deep@example.org>\r\n"
            b"MIME-Version: 1.0\r\n" + body.encode())


def many_parts(n, size=10, b="pp"):
    parts = "".join(f"--{b}\r\nContent-Type: application/octet-stream\r\n"
                    f"Content-Disposition: attachment; filename=f{i}.bin\r\n"
                    f"Content-Transfer-Encoding: base64\r\n\r\n"
                    f"{base64.b64encode(bytes([i % 256]) * size).decode()}\r\n" for i in range(n))
    return (f"From: a@example.org\r\nSubject: parts\r\nMessage-ID: <parts{n}x{size}@example.org>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary={b}\r\n\r\n"
            f"--{b}\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n{parts}--{b}--\r\n").encode()


def test_parsing_limits_store_raw_with_warnings():
    with Server("--max-mime-depth", "5", "--max-mime-parts", "20", "--max-headers", "50",
                "--max-header-bytes", "2000", "--max-attachments", "3",
                "--max-attachment-bytes", "3000", "--max-decoded-bytes", "20000") as srv:
        cases = [
            (nested(12), "limit_depth"),
            (many_parts(40), "limit_parts"),
            (make_mail(message_id="<hdrs@example.org>",
                       extra_headers=[f"X-H{i}: v" for i in range(80)]), "limit_headers"),
            (make_mail(message_id="<long@example.org>",
                       extra_headers=["X-Long: " + "x" * 10000]), "limit_header_bytes"),
            (many_parts(6, b="aa"), "limit_attachments"),
            (many_parts(1, size=5000, b="bb"), "limit_attachment_bytes"),
            (many_parts(3, size=9000, b="cc"), "limit_decoded_bytes"),
        ]
        for data, code in cases:
            reply = srv.ingest(data)
            ws = warnings_of(srv, reply)
            check(has_warning(ws, code), f"{code} not in {ws}")
            raw = srv.get(f"/api/messages/{reply['message_id']}/raw").body
            check(raw == data, f"{code}: the raw message must be stored whole")
        doc = srv.get_json(f"/api/messages/{srv.ingest(many_parts(6, b='dd'))['message_id']}")
        check(len(doc["attachments"]) <= 3, doc["attachments"])


def test_form_fields_and_json_depth_are_limited():
    with Server("--max-form-fields", "50", "--max-json-depth", "10") as srv:
        body = "&".join(f"f{i}=v" for i in range(200)) + "&email=x"
        r = srv.request("POST", "/inbound/sendgrid", body=body,
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
        check(400 <= r.status < 500, r)
        check_eq(r.json()["error"]["code"], "form_limit")
        deep = "[" * 12 + "]" * 12
        r = srv.request("POST", "/inbound/postmark", body=json.dumps({"x": 1})[:-1] +
                        ', "Deep": ' + deep + "}", headers={"Content-Type": "application/json"})
        check(400 <= r.status < 500, r)
        check("deeper than 10" in r.json()["error"]["message"], r)
        check_eq(srv.get_json("/api/tickets")["tickets"], [], "nothing stored")


def open_stalled_upload(srv, source="127.0.0.1"):
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(10)
    s.connect(("127.0.0.1", srv.port))
    s.sendall(b"POST /inbound/raw HTTP/1.1\r\nHost: x\r\nContent-Type: message/rfc822\r\n"
              b"Content-Length: 100000\r\n\r\nFrom: a@")
    return s


def healthz_from(srv, source):
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(10)
    s.connect(("127.0.0.1", srv.port))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    r = read_http_response(s)
    s.close()
    return r


def test_slowloris_cannot_starve_others():
    with Server("--max-connections-per-ip", "20", "--connection-timeout", "2") as srv:
        attackers = [open_stalled_upload(srv) for _ in range(20)]
        # The 21st connection from the same address is refused at once.
        extra = open_stalled_upload(srv)
        extra.settimeout(5)
        try:
            got = extra.recv(100)
        except (ConnectionResetError, socket.timeout):
            got = b""
        check_eq(got, b"", "over the per-IP limit a connection is closed")
        extra.close()
        # Everybody else is served meanwhile.
        t0 = time.time()
        r = healthz_from(srv, "127.0.0.2")
        check_eq(r.status, 200)
        check(time.time() - t0 < 2, "healthz answered at once")
        # Stalled uploads are closed after the idle timeout.
        time.sleep(3.5)
        closed = 0
        for s in attackers:
            try:
                s.settimeout(2)
                closed += s.recv(100) == b""
            except (ConnectionResetError, socket.timeout):
                closed += 1
            s.close()
        check_eq(closed, 20, "idle uploads were closed")
        check_eq(healthz_from(srv, "127.0.0.1").status, 200)


def test_trickling_upload_is_cut_by_the_request_timeout():
    with Server("--request-timeout", "2", "--connection-timeout", "10") as srv:
        s = srv.raw_socket()
        s.sendall(b"POST /inbound/raw HTTP/1.1\r\nHost: x\r\nContent-Type: message/rfc822\r\n"
                  b"Content-Length: 100000\r\n\r\n")
        t0 = time.time()
        closed = False
        while time.time() - t0 < 8:
            try:
                s.sendall(b"x" * 10)
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.3)
        check(closed, "a body trickling past --request-timeout is cut")
        check(time.time() - t0 < 6, f"cut after {time.time() - t0:.1f}s")
        s.close()
        check_eq(srv.get_json("/healthz"), {"status": "ok"})


def test_connection_cap():
    with Server("--max-connections", "30", "--max-connections-per-ip", "0") as srv:
        held = []
        for _ in range(30):
            s = srv.raw_socket()
            held.append(s)
        time.sleep(0.2)
        extra = srv.raw_socket()
        extra.settimeout(5)
        extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            got = extra.recv(100)
        except (ConnectionResetError, socket.timeout):
            got = b""
        check_eq(got, b"", "over the connection cap")
        extra.close()
        for s in held:
            s.close()
        time.sleep(0.3)
        check_eq(srv.get_json("/healthz"), {"status": "ok"})


if __name__ == "__main__":
    run(globals())
