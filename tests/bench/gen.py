"""Synthetic mail for the benchmark, in the shapes that real clients and MTAs send
(modelled on the cases in fixtures/): Gmail-style multipart/alternative replies, plain
text replies with quoted history, Outlook HTML with an inline image, messages with a PDF
or image attachment, Latin-1 quoted-printable, base64 UTF-8 bodies, auto-replies, DSN
bounces and forwarded message/rfc822 parts.

Reply texts come from fixtures/replies/*.txt and *.html (hand-made, synthetic). Every
address is example.org / example.com / example.net. Output is deterministic for a seed.

Each message carries the marker @@ID@@ inside its Message-ID: bench_load replaces it
with a unique fixed-width number per request; render() does the same for files.
"""
import base64
import html
import quopri
import random
from pathlib import Path

MARKER = "@@ID@@"
CRLF = "\r\n"

FIRST = ["Jane", "Amir", "Sophie", "Kenji", "Lucía", "Olu", "Marta", "Noah", "Priya", "Tomás",
         "Ingrid", "Wei", "Fatima", "Lars", "Chloé", "Dmitri", "Aisha", "Mateo", "Yuki", "Eva"]
LAST = ["Doe", "Rahman", "Martin", "Sato", "García", "Adeyemi", "Nowak", "Fischer", "Patel",
        "Silva", "Berg", "Zhang", "Haddad", "Jensen", "Dubois", "Ivanov", "Khan", "López",
        "Tanaka", "Novak"]
DOMAINS = ["example.com", "example.net", "example.org"]
SUBJECTS = ["Order #{n} has not arrived", "Question about invoice {n}", "Refund for order {n}",
            "Cannot log in to my account", "Damaged parcel (case {n})", "Change of address",
            "Warranty claim for serial {n}", "Subscription renewal", "Wrong size delivered",
            "Où est ma commande {n} ?", "Rückfrage zu Rechnung {n}", "Problema con el pedido {n}"]
FILLER = ("Thanks for getting back to me so quickly. I checked the tracking page again this "
          "morning and it still shows the parcel at the regional depot. Could you please ask "
          "the carrier what is going on, and let me know whether I should expect it this week "
          "or whether it would be better to cancel and order again. ")


def _load_replies(src):
    d = Path(src) / "fixtures" / "replies"
    texts = sorted(p.read_text(encoding="utf-8", errors="replace") for p in d.glob("*.txt"))
    htmls = sorted(p.read_text(encoding="utf-8", errors="replace") for p in d.glob("*.html"))
    if not texts:
        texts = ["Hi,\n\nYes, that works for me.\n\nThanks,\nJane\n"]
    if not htmls:
        htmls = ["<div>Yes, that works for me.</div>"]
    return texts, htmls


def _crlf(text):
    return text.replace("\r\n", "\n").replace("\n", CRLF)


def _b64(data):
    enc = base64.b64encode(data).decode("ascii")
    return CRLF.join(enc[i:i + 76] for i in range(0, len(enc), 76))


def _qp(text, charset="utf-8"):
    return _crlf(quopri.encodestring(text.encode(charset, errors="replace")).decode("ascii"))


def _encoded_word(text):
    if all(ord(c) < 128 for c in text):
        return text
    return "=?UTF-8?B?" + base64.b64encode(text.encode("utf-8")).decode("ascii") + "?="


def _to_html(text):
    out, quote = [], False
    for line in text.replace("\r\n", "\n").split("\n"):
        q = line.startswith(">")
        if q and not quote:
            out.append('<blockquote type="cite" style="margin:0 0 0 .8ex;'
                       'border-left:1px #ccc solid;padding-left:1ex">')
        if quote and not q:
            out.append("</blockquote>")
        quote = q
        body = html.escape(line.lstrip("> ") if q else line)
        out.append(f"<div>{body or '<br>'}</div>")
    if quote:
        out.append("</blockquote>")
    return ('<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
            '</head><body dir="ltr">' + "\n".join(out) + "</body></html>\n")


def _binary(rng, n, magic=b""):
    return magic + rng.randbytes(max(0, n - len(magic)))


class Gen:
    def __init__(self, src, seed=1, token="bench"):
        self.rng = random.Random(seed)
        self.texts, self.htmls = _load_replies(src)
        self.token = token
        self.n = 0

    # ---- pieces ------------------------------------------------------------------------
    def person(self):
        r = self.rng
        first, last = r.choice(FIRST), r.choice(LAST)
        addr = f"{first.lower()}.{last.lower()}@{r.choice(DOMAINS)}"
        addr = addr.encode("ascii", errors="ignore").decode("ascii")
        return f"{first} {last}", addr

    def boundary(self):
        return f"----=_Part_{self.rng.randrange(10**6)}_{self.rng.randrange(10**9)}.{self.n}"

    def headers(self, content_type, extra=(), reply=True, auto=False):
        r = self.rng
        self.n += 1
        name, addr = self.person()
        subject = r.choice(SUBJECTS).format(n=r.randrange(1000, 99999))
        if reply:
            subject = "Re: " + subject
        day = r.randrange(1, 28)
        h = [f"Return-Path: <{addr}>",
             f"Received: from mail.{addr.split('@')[1]} (mail.{addr.split('@')[1]} [192.0.2.{r.randrange(1, 254)}])"
             f"{CRLF}\tby mx.example.org (Postfix) with ESMTPS id 4Y{r.randrange(10**8)}{CRLF}"
             f"\tfor <support@example.org>; Tue, {day} Jan 2025 10:{r.randrange(60):02d}:00 +0000 (UTC)",
             "Authentication-Results: mx.example.org; spf=pass smtp.mailfrom=" + addr +
             "; dkim=pass header.d=" + addr.split("@")[1] + "; dmarc=pass",
             f"From: {_encoded_word(name)} <{addr}>",
             "To: Example Support <support@example.org>",
             f"Subject: {_encoded_word(subject)}",
             f"Date: Tue, {day} Jan 2025 10:{r.randrange(60):02d}:{r.randrange(60):02d} +0100",
             f"Message-ID: <{MARKER}.{self.token}@{addr.split('@')[1]}>"]
        if reply:
            ref = f"<case-{r.randrange(10**6)}@example.org>"
            h += [f"In-Reply-To: {ref}", f"References: {ref}"]
        if auto:
            h += ["Auto-Submitted: auto-replied", "X-Autoreply: yes"]
        h += ["MIME-Version: 1.0", f"Content-Type: {content_type}"]
        h += list(extra)
        return CRLF.join(h) + CRLF + CRLF

    def reply_text(self, size):
        """A reply body (new text + quoted history) of about SIZE characters."""
        t = self.rng.choice(self.texts)
        while len(t) < size:
            t += "\n> " + FILLER + "\n>"
        return t

    # ---- shapes: each returns str (the message, CRLF, with the marker) -----------------
    def plain(self, size):
        body = self.reply_text(max(40, size - 1100))
        return (self.headers("text/plain; charset=utf-8",
                             ["Content-Transfer-Encoding: quoted-printable"]) + _qp(body))

    def alternative(self, size):
        b = self.boundary()
        text = self.reply_text(max(40, (size - 1500) // 3))
        return (self.headers(f'multipart/alternative; boundary="{b}"')
                + f"--{b}{CRLF}Content-Type: text/plain; charset=UTF-8{CRLF}"
                  f"Content-Transfer-Encoding: quoted-printable{CRLF}{CRLF}{_qp(text)}{CRLF}"
                + f"--{b}{CRLF}Content-Type: text/html; charset=UTF-8{CRLF}"
                  f"Content-Transfer-Encoding: quoted-printable{CRLF}{CRLF}{_qp(_to_html(text))}{CRLF}"
                + f"--{b}--{CRLF}")

    def html_only(self, size):
        h = self.rng.choice(self.htmls)
        while len(h) < size - 1200:
            h += "<div>" + html.escape(FILLER) + "</div>\n"
        return (self.headers("text/html; charset=utf-8",
                             ["Content-Transfer-Encoding: quoted-printable"]) + _qp(h))

    def latin1(self, size):
        text = ("Bonjour,\n\nJe n'ai toujours pas reçu ma commande. Pourriez-vous vérifier "
                "où elle se trouve ? Merci d'avance.\n\nCordialement,\nHélène Dubois\n")
        while len(text) < size - 1100:
            text += "\n> Nous avons bien reçu votre demande et revenons vers vous très bientôt."
        return (self.headers("text/plain; charset=iso-8859-1",
                             ["Content-Transfer-Encoding: quoted-printable"]) + _qp(text, "latin-1"))

    def base64_body(self, size):
        text = self.reply_text(max(200, (size - 1100) * 3 // 4))
        return (self.headers("text/plain; charset=UTF-8", ["Content-Transfer-Encoding: base64"])
                + _b64(text.encode("utf-8")) + CRLF)

    def auto_reply(self, size):
        text = ("Thank you for your message. I am out of the office until 20 January with "
                "limited access to e-mail. For urgent matters please contact my colleague.\n")
        while len(text) < size - 1200:
            text += FILLER + "\n"
        return (self.headers("text/plain; charset=utf-8", ["Content-Transfer-Encoding: 8bit"],
                             auto=True) + _crlf(text))

    def with_attachment(self, size, inline=False):
        """multipart/mixed (or related): an alternative body + a PDF or PNG of the rest."""
        b, ba = self.boundary(), self.boundary() + "alt"
        text = self.reply_text(600)
        att = max(256, (size - 2600 - len(text) * 3) * 3 // 4)
        if inline:
            kind, ctype, name, magic = "related", "image/png", "photo.png", b"\x89PNG\r\n\x1a\n"
            disp = f"inline; filename=\"{name}\""
            html_body = _to_html(text).replace("</body>", '<img src="cid:img1@example.com"></body>')
        else:
            kind, ctype, name, magic = "mixed", "application/pdf", "invoice.pdf", b"%PDF-1.4\n"
            disp = f"attachment; filename=\"{name}\""
            html_body = _to_html(text)
        ct = f'multipart/{kind}; boundary="{b}"' + ('; type="multipart/alternative"' if inline else "")
        return (self.headers(ct)
                + f"--{b}{CRLF}Content-Type: multipart/alternative; boundary=\"{ba}\"{CRLF}{CRLF}"
                + f"--{ba}{CRLF}Content-Type: text/plain; charset=UTF-8{CRLF}"
                  f"Content-Transfer-Encoding: quoted-printable{CRLF}{CRLF}{_qp(text)}{CRLF}"
                + f"--{ba}{CRLF}Content-Type: text/html; charset=UTF-8{CRLF}"
                  f"Content-Transfer-Encoding: quoted-printable{CRLF}{CRLF}{_qp(html_body)}{CRLF}"
                + f"--{ba}--{CRLF}{CRLF}"
                + f"--{b}{CRLF}Content-Type: {ctype}; name=\"{name}\"{CRLF}"
                  f"Content-Disposition: {disp}{CRLF}Content-Transfer-Encoding: base64{CRLF}"
                + (f"Content-ID: <img1@example.com>{CRLF}" if inline else "") + CRLF
                + _b64(_binary(self.rng, att, magic)) + CRLF
                + f"--{b}--{CRLF}")

    def inline_image(self, size):
        return self.with_attachment(size, inline=True)

    def bounce(self, size):
        b = self.boundary()
        rcpt = self.person()[1]
        self.n += 1
        r = self.rng
        orig = f"<reply-{r.randrange(10**6)}@example.org>"
        head = CRLF.join([
            "Return-Path: <>",
            "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>",
            "To: support@example.org",
            "Subject: Undelivered Mail Returned to Sender",
            f"Date: Tue, {r.randrange(1, 28)} Jan 2025 11:00:00 +0000",
            f"Message-ID: <{MARKER}.{self.token}@mx.example.net>",
            "Auto-Submitted: auto-replied",
            "MIME-Version: 1.0",
            f'Content-Type: multipart/report; report-type=delivery-status; boundary="{b}"',
        ]) + CRLF + CRLF
        human = ("This is the mail system at host mx.example.net.\n\nI'm sorry to have to inform "
                 "you that your message could not be delivered to one or more recipients.\n\n"
                 f"<{rcpt}>: host mx.example.com said: 550 5.1.1 User unknown\n")
        filler = ""
        while len(human) + len(filler) < size - 1800:
            filler += "X-Filler: " + FILLER[:60] + CRLF
        return (head
                + f"--{b}{CRLF}Content-Type: text/plain; charset=us-ascii{CRLF}{CRLF}{_crlf(human)}{CRLF}"
                + f"--{b}{CRLF}Content-Type: message/delivery-status{CRLF}{CRLF}"
                  f"Reporting-MTA: dns; mx.example.net{CRLF}{CRLF}"
                  f"Final-Recipient: rfc822; {rcpt}{CRLF}Action: failed{CRLF}Status: 5.1.1{CRLF}"
                  f"Diagnostic-Code: smtp; 550 5.1.1 User unknown{CRLF}{CRLF}"
                + f"--{b}{CRLF}Content-Type: text/rfc822-headers{CRLF}{CRLF}"
                  f"From: support@example.org{CRLF}To: {rcpt}{CRLF}Subject: Your ticket{CRLF}"
                  f"Message-ID: {orig}{CRLF}{filler}{CRLF}"
                + f"--{b}--{CRLF}")

    def forwarded(self, size):
        b = self.boundary()
        inner_text = self.reply_text(max(200, size - 2200))
        name, addr = self.person()
        inner = CRLF.join([
            f"From: {_encoded_word(name)} <{addr}>", "To: sales@example.com",
            "Subject: Quote request", "Date: Mon, 6 Jan 2025 09:00:00 +0000",
            f"Message-ID: <fwd-{self.rng.randrange(10**9)}@{addr.split('@')[1]}>",
            "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: quoted-printable"]) + CRLF + CRLF + _qp(inner_text)
        return (self.headers(f'multipart/mixed; boundary="{b}"', reply=False)
                + f"--{b}{CRLF}Content-Type: text/plain; charset=utf-8{CRLF}{CRLF}"
                  f"Please see the forwarded request below.{CRLF}{CRLF}"
                + f"--{b}{CRLF}Content-Type: message/rfc822{CRLF}"
                  f"Content-Disposition: attachment; filename=\"request.eml\"{CRLF}{CRLF}"
                + inner + CRLF + f"--{b}--{CRLF}")

    SHAPES = ["plain", "alternative", "html_only", "latin1", "base64_body", "auto_reply",
              "with_attachment", "inline_image", "bounce", "forwarded"]

    def make(self, shape, size):
        return getattr(self, shape)(size)


# The share of each shape in the parse corpus, and its size range in bytes.
CORPUS_MIX = [("plain", 22, 1500, 8000), ("alternative", 28, 3000, 16000),
              ("html_only", 6, 3000, 20000), ("latin1", 4, 1500, 5000),
              ("base64_body", 5, 2000, 8000), ("auto_reply", 5, 1500, 3000),
              ("bounce", 4, 3000, 6000), ("forwarded", 4, 3000, 12000),
              ("inline_image", 10, 20000, 120000), ("with_attachment", 12, 30000, 250000)]


def render(message, ident):
    """The message with its marker replaced by the 12-digit IDENT (as bench_load does)."""
    return message.replace(MARKER, f"{ident:012d}").encode("utf-8", "surrogateescape")


def corpus(src, count, seed=7, token="corpus"):
    """COUNT (shape, message) pairs in the CORPUS_MIX proportions, plus every
    fixtures/**/*.eml (the parser's own edge cases) when present."""
    g = Gen(src, seed, token)
    shapes = [s for s, w, _, _ in CORPUS_MIX for _ in range(w)]
    out = []
    extra = sorted(Path(src, "fixtures").glob("**/*.eml"))
    for p in extra[: count // 20]:
        out.append(("fixture", p.read_bytes().decode("utf-8", errors="surrogateescape")))
    while len(out) < count:
        shape = g.rng.choice(shapes)
        lo, hi = next((lo, hi) for s, _, lo, hi in CORPUS_MIX if s == shape)
        out.append((shape, g.make(shape, int(g.rng.uniform(lo, hi)))))
    return out


def templates(src, size, seed=1, token="bench", count=None):
    """Messages of about SIZE bytes for the load generator. Around 5 KB: one of each
    everyday shape (the 5 KB mix); larger sizes: mostly a base64 attachment."""
    g = Gen(src, seed, token)
    if size <= 2048:
        shapes = ["plain", "latin1", "auto_reply"]
    elif size <= 16384:
        shapes = ["plain", "alternative", "html_only", "latin1", "base64_body",
                  "auto_reply", "bounce", "forwarded", "with_attachment", "inline_image"]
    else:
        shapes = ["with_attachment", "inline_image"]
    if count:
        shapes = (shapes * count)[:count]
    return [sized(src, s, size, seed, token) for s in shapes]


def write_templates(src, size, directory):
    """templates(src, size) written into DIRECTORY as t0.eml, t1.eml, ...; their paths."""
    paths = []
    for i, m in enumerate(templates(src, size)):
        p = Path(directory) / f"t{i}.eml"
        p.write_bytes(m.encode("utf-8", "surrogateescape"))
        paths.append(str(p))
    return paths


def sized(src, shape, size, seed=1, token="bench"):
    """A SHAPE message within 3% of SIZE bytes (rendered), where the shape allows it:
    the size asked of the shape is corrected from what it made, a few times."""
    ask, best = size, None
    for attempt in range(6):
        m = Gen(src, seed * 1000 + attempt, token).make(shape, ask)
        got = len(render(m, 0))
        if best is None or abs(got - size) < abs(best[0] - size):
            best = (got, m)
        if abs(got - size) <= size * 0.03:
            break
        ask = max(64, ask + (size - got))
    return best[1]
