#!/usr/bin/env python3
"""Write the provider request bodies under fixtures/providers/ from one hand-made email.

The same message (fixtures/providers/source/order-1234.mime) is posted the way each
provider would post it: SendGrid raw and parsed mode, Mailgun parsed (multipart, every
header also a field) and MIME (urlencoded), Postmark with and without RawEmail, SES via
SNS, and a Mandrill batch. tests/unit/test_adapters.c checks that every adapter yields
the same message. Bodies are deterministic: rerunning the script rewrites the same bytes.
The *.meta.json sidecars (request and expected values) are written by hand, not here.

Shapes follow shared/spec/ingress-formats.md; all content is synthetic.
"""
import base64
import json
import quopri
import struct
import urllib.parse
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "fixtures" / "providers"


def png_1x1():
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00\xcc\x22\x11", 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


PNG = png_1x1()
PDF = (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
       b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
       b"trailer << /Root 1 0 R >>\n%%EOF\n")

FROM_NAME = "J\u00fcrgen M\u00fcller"
FROM_ADDR = "jurgen@example.org"
SUBJECT = "Bestellung 1234 \u2013 Drucker zieht kein Papier"
TEXT = ("Hallo,\r\n\r\nder Drucker zieht seit gestern kein Papier mehr ein.\r\n"
        "Foto anbei, Rechnung auch.\r\n\r\nGr\u00fc\u00dfe\r\nJ\u00fcrgen")
HTML = ("<html><body><p>Hallo,</p><p>der Drucker zieht seit gestern kein Papier mehr ein.</p>"
        "<p><img src=\"cid:jam.1@example.org\" alt=\"Stau\"></p>"
        "<p>Gr\u00fc\u00dfe<br>J\u00fcrgen</p></body></html>")
PDF_NAME = "Rechnung-M\u00e4rz.pdf"


def b64_lines(data):
    s = base64.b64encode(data).decode()
    return "\r\n".join(s[i:i + 76] for i in range(0, len(s), 76))


def qp(text, charset):
    enc = quopri.encodestring(text.encode(charset).replace(b"\r\n", b"\n"))
    return enc.decode("ascii").replace("\n", "\r\n")


HEADERS = [
    ("Received", "from mail.example.org (mail.example.org [192.0.2.10]) by mx.in.example.com "
                 "with ESMTPS id 4Yx1; Mon, 06 Jan 2025 10:00:01 +0000"),
    ("Received", "from [198.51.100.7] by mail.example.org with ESMTPSA id q9; "
                 "Mon, 06 Jan 2025 10:59:58 +0100"),
    ("From", "=?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <jurgen@example.org>"),
    ("To", "Support <help@in.example.com>"),
    ("Cc", "bob@example.net"),
    ("Subject", "=?UTF-8?Q?Bestellung_1234_=E2=80=93_Drucker_zieht_kein_Papier?="),
    ("Date", "Mon, 06 Jan 2025 11:00:00 +0100"),
    ("Message-ID", "<order-1234.5f1c@example.org>"),
    ("MIME-Version", "1.0"),
    ("Content-Type", "multipart/mixed; boundary=\"mix-7Hq\""),
]

MESSAGE = ("".join(f"{n}: {v}\r\n" for n, v in HEADERS) + "\r\n" +
           "This is a multi-part message in MIME format.\r\n"
           "--mix-7Hq\r\n"
           "Content-Type: multipart/related; boundary=\"rel-7Hq\"; type=\"multipart/alternative\"\r\n"
           "\r\n"
           "--rel-7Hq\r\n"
           "Content-Type: multipart/alternative; boundary=\"alt-7Hq\"\r\n"
           "\r\n"
           "--alt-7Hq\r\n"
           "Content-Type: text/plain; charset=iso-8859-1\r\n"
           "Content-Transfer-Encoding: quoted-printable\r\n"
           "\r\n" + qp(TEXT, "iso-8859-1") + "\r\n"
           "--alt-7Hq\r\n"
           "Content-Type: text/html; charset=utf-8\r\n"
           "Content-Transfer-Encoding: quoted-printable\r\n"
           "\r\n" + qp(HTML, "utf-8") + "\r\n"
           "--alt-7Hq--\r\n"
           "\r\n"
           "--rel-7Hq\r\n"
           "Content-Type: image/png; name=\"jam.png\"\r\n"
           "Content-Disposition: inline; filename=\"jam.png\"\r\n"
           "Content-Transfer-Encoding: base64\r\n"
           "Content-ID: <jam.1@example.org>\r\n"
           "\r\n" + b64_lines(PNG) + "\r\n"
           "--rel-7Hq--\r\n"
           "\r\n"
           "--mix-7Hq\r\n"
           "Content-Type: application/pdf; name*=UTF-8''Rechnung-M%C3%A4rz.pdf\r\n"
           "Content-Disposition: attachment; filename*=UTF-8''Rechnung-M%C3%A4rz.pdf\r\n"
           "Content-Transfer-Encoding: base64\r\n"
           "\r\n" + b64_lines(PDF) + "\r\n"
           "--mix-7Hq--\r\n").encode("ascii")

DECODED_HEADERS = {"From": f"{FROM_NAME} <{FROM_ADDR}>", "To": "Support <help@in.example.com>",
                   "Cc": "bob@example.net", "Subject": SUBJECT}


def multipart(fields, boundary):
    """fields: (name, value bytes, filename or None, content type or None)."""
    out = b""
    for name, value, filename, ctype in fields:
        out += f"--{boundary}\r\n".encode()
        disp = f'Content-Disposition: form-data; name="{name}"'
        if filename is not None:
            disp += f'; filename="{filename}"'
        out += disp.encode("utf-8") + b"\r\n"
        if ctype:
            out += f"Content-Type: {ctype}\r\n".encode()
        out += b"\r\n" + value + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def text(name, value, charset="utf-8"):
    return (name, value.encode(charset), None, None)


def write(rel, data):
    path = ROOT / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


ENVELOPE = json.dumps({"to": ["help@in.example.com"], "from": "bounce+x1@example.org"})


def sendgrid():
    common = [
        text("dkim", "{@example.org : pass}"),
        text("to", DECODED_HEADERS["To"]),
        text("cc", DECODED_HEADERS["Cc"]),
        text("from", DECODED_HEADERS["From"]),
        text("subject", SUBJECT),
        text("sender_ip", "192.0.2.10"),
        text("spam_report", "Spam detection software, running on the system \"mx\", has "
                            "NOT identified this incoming email as spam.\n\nContent analysis "
                            "details:   (0.1 points, 5.0 required)\n"),
        text("envelope", ENVELOPE),
        text("spam_score", "0.1"),
        text("SPF", "pass"),
    ]
    raw = common[:5] + [("email", MESSAGE, None, None)] + common[5:] + [
        text("charsets", json.dumps({"to": "UTF-8", "cc": "UTF-8", "html": "UTF-8",
                                     "subject": "UTF-8", "from": "UTF-8", "text": "UTF-8"}))]
    write("sendgrid/raw.multipart", multipart(raw, "xYzZY"))

    # Parsed mode: headers unfolded, decoded and sorted alphabetically (as in the 2025
    # capture), SendGrid's own Received line included; bodies in their original charset.
    hdrs = [(n, DECODED_HEADERS.get(n, v)) for n, v in HEADERS]
    hdrs.append(("Received", "by mx0047p1mdw1.sendgrid.net with SMTP id Zt9 "
                             "Mon, 06 Jan 2025 10:00:02 +0000 (UTC)"))
    hdrs.sort(key=lambda h: h[0])
    parsed = [
        text("headers", "".join(f"{n}: {v}\n" for n, v in hdrs)),
        text("dkim", "{@example.org : pass}"),
        text("content-ids", json.dumps({"jam.1@example.org": "attachment1"})),
        text("to", DECODED_HEADERS["To"]),
        text("cc", DECODED_HEADERS["Cc"]),
        text("html", HTML),
        text("from", DECODED_HEADERS["From"]),
        text("text", TEXT, "iso-8859-1"),
        text("sender_ip", "192.0.2.10"),
        text("spam_report", "Spam detection software, running on the system \"mx\", has "
                            "NOT identified this incoming email as spam.\n"),
        text("envelope", ENVELOPE),
        text("attachments", "2"),
        text("subject", SUBJECT),
        text("attachment-info", json.dumps({
            "attachment1": {"filename": "jam.png", "name": "jam.png", "type": "image/png",
                            "content-id": "jam.1@example.org"},
            "attachment2": {"filename": "Rechnung-Mrz.pdf", "name": PDF_NAME,
                            "type": "application/pdf"}}, ensure_ascii=False)),
        text("spam_score", "0.1"),
        ("attachment1", PNG, "jam.png", "image/png"),
        ("attachment2", PDF, "Rechnung-Mrz.pdf", "application/pdf"),
        text("charsets", json.dumps({"to": "UTF-8", "cc": "UTF-8", "html": "UTF-8",
                                     "subject": "UTF-8", "from": "UTF-8",
                                     "text": "iso-8859-1"})),
        text("SPF", "pass"),
    ]
    write("sendgrid/parsed.multipart", multipart(parsed, "xYzZY"))


MG_TS = "1700000000"
MG_TOKEN = "a3f5c0d1e2b4968778695a4b3c2d1e0f9a8b7c6d5e4f3a2b1c"
MG_SIG = "64a05ffab5b32390ac9313603edc23b6770c27e56b345edf0a810ed3e81b8d0e"  # spec section 12


def mailgun():
    mg_headers = [
        ("X-Mailgun-Incoming", "Yes"),
        ("X-Envelope-From", "<bounce+x1@example.org>"),
        ("Received", "from mail.example.org (mail.example.org [192.0.2.10]) by mxa.mailgun.org "
                     "with ESMTP id 677b; Mon, 06 Jan 2025 10:00:01 -0000 (UTC)"),
    ] + HEADERS[1:] + [
        ("X-Mailgun-Sflag", "No"),
        ("X-Mailgun-Sscore", "0.3"),
        ("X-Mailgun-Spf", "Pass"),
        ("X-Mailgun-Dkim-Check-Result", "Pass"),
    ]
    # Every header is also posted as its own field (several Received), then the
    # documented fields.
    fields = [text(n, v) for n, v in mg_headers]
    fields += [
        text("recipient", "help@in.example.com"),
        text("sender", "bounce+x1@example.org"),
        text("from", HEADERS[2][1]),
        text("subject", SUBJECT),
        text("body-plain", TEXT),
        text("stripped-text", "Hallo,\r\n\r\nder Drucker zieht seit gestern kein Papier mehr ein."),
        text("stripped-signature", "Gr\u00fc\u00dfe\r\nJ\u00fcrgen"),
        text("body-html", HTML),
        text("stripped-html", HTML),
        text("attachment-count", "2"),
        text("content-id-map", json.dumps({"<jam.1@example.org>": "attachment-1"})),
        text("message-headers", json.dumps([list(h) for h in mg_headers], ensure_ascii=False)),
        text("timestamp", MG_TS),
        text("token", MG_TOKEN),
        text("signature", MG_SIG),
        ("attachment-1", PNG, "jam.png", "image/png"),
        ("attachment-2", PDF, PDF_NAME, "application/pdf"),
    ]
    write("mailgun/parsed.multipart", multipart(fields, "2b6ebbc1e0c14b6f9d3c1d1e9a5f0c7e"))

    mime = [("recipient", "help@in.example.com"), ("sender", "bounce+x1@example.org"),
            ("from", HEADERS[2][1]), ("subject", SUBJECT), ("body-mime", MESSAGE.decode()),
            ("timestamp", MG_TS), ("token", MG_TOKEN), ("signature", MG_SIG)]
    write("mailgun/mime.urlencoded", urllib.parse.urlencode(mime).encode())


def postmark():
    raw_headers = [{"Name": "Return-Path", "Value": "<bounce+x1@example.org>"}]
    raw_headers += [{"Name": n, "Value": v} for n, v in HEADERS
                    if n in ("Received", "Message-ID", "MIME-Version")]
    raw_headers += [{"Name": "X-Spam-Checker-Version", "Value": "SpamAssassin 3.4.6 on p-pm-inbound01"},
                    {"Name": "X-Spam-Status", "Value": "No"},
                    {"Name": "X-Spam-Score", "Value": "-0.1"},
                    {"Name": "X-Spam-Tests", "Value": "DKIM_SIGNED,DKIM_VALID,SPF_PASS"},
                    {"Name": "Received-SPF", "Value": "pass (example.org: 192.0.2.10 is "
                                                       "authorized to use 'bounce+x1@example.org' "
                                                       "in 'mfrom' identity) receiver=p-pm-inbound01"}]
    doc = {
        "FromName": FROM_NAME,
        "MessageStream": "inbound",
        "From": FROM_ADDR,
        "FromFull": {"Email": FROM_ADDR, "Name": FROM_NAME, "MailboxHash": ""},
        "To": "\"Support\" <help@in.example.com>",
        "ToFull": [{"Email": "help@in.example.com", "Name": "Support", "MailboxHash": ""}],
        "Cc": "bob@example.net",
        "CcFull": [{"Email": "bob@example.net", "Name": "", "MailboxHash": ""}],
        "Bcc": "", "BccFull": [],
        "OriginalRecipient": "help@in.example.com",
        "Subject": SUBJECT,
        "MessageID": "5a1e0f3c-8d2b-4c55-9f0e-0c6b1d2e3f40",
        "ReplyTo": "",
        "MailboxHash": "",
        "Date": "Mon, 06 Jan 2025 11:00:00 +0100",
        "TextBody": TEXT,
        "HtmlBody": HTML,
        "StrippedTextReply": "",
        "Tag": "",
        "Headers": raw_headers,
        "Attachments": [
            {"Name": "jam.png", "Content": base64.b64encode(PNG).decode(), "ContentType": "image/png",
             "ContentLength": len(PNG), "ContentID": "jam.1@example.org"},
            {"Name": PDF_NAME, "Content": base64.b64encode(PDF).decode(),
             "ContentType": "application/pdf", "ContentLength": len(PDF)},
        ],
    }
    write("postmark/parsed.json", json.dumps(doc, indent=1, ensure_ascii=False).encode() + b"\n")
    doc["RawEmail"] = MESSAGE.decode()
    write("postmark/raw.json", json.dumps(doc, indent=1, ensure_ascii=False).encode() + b"\n")


def ses():
    topic = "arn:aws:sns:us-east-1:111122223333:inbound"
    note = {
        "notificationType": "Received",
        "mail": {
            "timestamp": "2025-01-06T10:00:01.636Z", "source": "bounce+x1@example.org",
            "messageId": "o3vrnil0e2ic28trm7dfhrc2v0clambda4nbp0g1",
            "destination": ["help@in.example.com"], "headersTruncated": False,
            "headers": [{"name": n, "value": v} for n, v in HEADERS],
            "commonHeaders": {"returnPath": "bounce+x1@example.org",
                              "from": [HEADERS[2][1]], "date": "Mon, 06 Jan 2025 11:00:00 +0100",
                              "to": ["Support <help@in.example.com>"], "cc": ["bob@example.net"],
                              "messageId": "<order-1234.5f1c@example.org>", "subject": SUBJECT},
        },
        "receipt": {
            "timestamp": "2025-01-06T10:00:01.636Z", "processingTimeMillis": 357,
            "recipients": ["help@in.example.com"],
            "spamVerdict": {"status": "PASS"}, "virusVerdict": {"status": "PASS"},
            "spfVerdict": {"status": "PASS"}, "dkimVerdict": {"status": "PASS"},
            "dmarcVerdict": {"status": "GRAY"},
            "action": {"type": "SNS", "topicArn": topic, "encoding": "BASE64"},
        },
        "content": base64.b64encode(MESSAGE).decode(),
    }
    env = {
        "Type": "Notification",
        "MessageId": "8f6dee70-c885-558a-be7d-bd48bbf5335e",
        "TopicArn": topic,
        "Subject": "Amazon SES Email Receipt Notification",
        "Message": json.dumps(note, separators=(",", ":")),
        "Timestamp": "2025-01-06T10:00:02.000Z",
        "SignatureVersion": "2",
        "Signature": "",  # signed at run time by the test with a throw-away certificate
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-"
                          "9c6465fa7f48f5cacd23014631ec1136.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&"
                          "SubscriptionArn=" + topic + ":4f1e2d3c-0b9a-4877-8c6d-5e4f3a2b1c0d",
    }
    write("ses/received.json", json.dumps(env, indent=1).encode() + b"\n")


def mandrill():
    second = ("From: a@example.org\r\nTo: t@in.example.com\r\nSubject: hi\r\n"
              "Message-ID: <m2@example.org>\r\n\r\nbody\r\n")
    events = [
        {"event": "inbound", "ts": 1736157602, "_id": None,
         "msg": {"raw_msg": MESSAGE.decode(), "email": "help@in.example.com",
                 "from_email": FROM_ADDR, "from_name": FROM_NAME, "subject": SUBJECT,
                 "to": [["help@in.example.com", "Support"]], "cc": [["bob@example.net", None]],
                 "text": TEXT + "\n", "html": HTML + "\n", "tags": [], "sender": None,
                 "headers": {"Received": [HEADERS[0][1], HEADERS[1][1]],
                             "Message-Id": "<order-1234.5f1c@example.org>"},
                 "spf": {"result": "pass", "detail": "sender SPF authorized"},
                 "dkim": {"signed": True, "valid": True},
                 "spam_report": {"score": 0.3, "matched_rules": [
                     {"name": "DKIM_VALID", "score": -0.1, "description": "valid signature"}]},
                 "images": {"jam.png": {"name": "jam.png", "type": "image/png",
                                        "content": base64.b64encode(PNG).decode()}},
                 "attachments": {PDF_NAME: {"name": PDF_NAME, "type": "application/pdf",
                                            "content": base64.b64encode(PDF).decode(),
                                            "base64": True}}}},
        {"event": "inbound", "ts": 1736157603,
         "msg": {"raw_msg": second, "email": "t@in.example.com", "from_email": "a@example.org",
                 "subject": "hi", "to": [["t@in.example.com", None]],
                 "spf": {"result": "neutral", "detail": "no policy"},
                 "dkim": {"signed": False, "valid": False},
                 "spam_report": {"score": 2.5, "matched_rules": []}}},
    ]
    body = urllib.parse.urlencode({"mandrill_events": json.dumps(events, ensure_ascii=False)})
    write("mandrill/batch.urlencoded", body.encode())


def main():
    write("source/order-1234.mime", MESSAGE)
    sendgrid()
    mailgun()
    postmark()
    ses()
    mandrill()


if __name__ == "__main__":
    main()
