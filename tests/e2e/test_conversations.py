#!/usr/bin/env python3
"""Issue 4 end to end: sequences of messages through the real server, checking ticket
ids, thread_reason, classification, status changes, stripped text and suppressions."""
import json
import threading

from inboxd_test import Server, check, check_eq, make_mail, run, validate

DOMAIN = "support.example.com"
CUSTOMER = "Ayşe Yılmaz <ayse@example.org>"


def agent_reply(srv, ticket, text="Please restart it.", status=None):
    body = {"from": "Ana Agent <ana@example.com>", "text": text}
    if status:
        body["status"] = status
    r = srv.request("POST", f"/api/tickets/{ticket}/messages", body=json.dumps(body),
                    headers={"Content-Type": "application/json"})
    check_eq(r.status, 201, r)
    doc = r.json()
    validate({k: v for k, v in doc.items() if k != "send_headers"}, "message")
    return doc


def msg(srv, mid):
    return srv.get_json(f"/api/messages/{mid}")


def ticket(srv, tid):
    return srv.get_json(f"/api/tickets/{tid}")["ticket"]


def test_agent_reply_headers_and_customer_answer_threads_back():
    with Server("--reply-domain", DOMAIN) as srv:
        first = srv.ingest(make_mail(subject="Printer broken", frm=CUSTOMER,
                                     message_id="<c1@example.org>"))
        check_eq(first["classification"], "new")
        t = first["ticket_id"]
        out = agent_reply(srv, t)
        h = out["send_headers"]
        check_eq(out["direction"], "outbound")
        check_eq(h["In-Reply-To"], "<c1@example.org>")
        check_eq(h["References"], "<c1@example.org>")
        check_eq(h["Subject"], f"Re: Printer broken [#{t}]")
        check(h["Reply-To"].startswith(f"reply+{t}.") and h["Reply-To"].endswith("@" + DOMAIN), h)
        check(h["Message-ID"].endswith("@" + DOMAIN + ">"), h)
        check("ayse@example.org" in h["To"], h)
        raw = srv.get(f"/api/messages/{out['id']}/raw").body
        check(b"In-Reply-To: <c1@example.org>" in raw and b"Reply-To: reply+" in raw, raw[:600])
        check_eq(out["message_id"], h["Message-ID"].strip("<>"))
        check_eq(ticket(srv, t)["status"], "pending", "an agent reply waits on the customer")

        ans = srv.ingest(make_mail(subject="Re: " + h["Subject"], frm=CUSTOMER,
                                   message_id="<c2@example.org>",
                                   extra_headers=[f"In-Reply-To: {h['Message-ID']}",
                                                  f"References: <c1@example.org> {h['Message-ID']}"],
                                   body="Still broken.\n"))
        check_eq(ans["ticket_id"], t)
        check_eq(ans["classification"], "reply")
        m = msg(srv, ans["message_id"])
        check_eq(m["thread_reason"], "in_reply_to")
        tk = ticket(srv, t)
        check_eq(tk["status"], "open", "the customer's answer reopens")
        check_eq(tk["message_count"], 3)
        thread = srv.get_json(f"/api/tickets/{t}")["messages"]
        check_eq([x["direction"] for x in thread], ["inbound", "outbound", "inbound"])
        types = [e["type"] for e in srv.get_json("/api/events")["events"]]
        check_eq(types, ["ticket.created", "message.created", "message.created", "ticket.updated",
                         "message.created", "ticket.updated"])


def test_references_newest_first_and_reply_address_and_subject_tag():
    with Server("--reply-domain", DOMAIN) as srv:
        t = srv.ingest(make_mail(subject="Order 1", frm=CUSTOMER, message_id="<o1@example.org>"))["ticket_id"]
        u = srv.ingest(make_mail(subject="Order 2", frm=CUSTOMER, message_id="<o2@example.org>"))["ticket_id"]
        # References: newest known first wins.
        r = srv.ingest(make_mail(subject="x", frm=CUSTOMER, extra_headers=[
            "References: <o1@example.org> <o2@example.org> <unknown@example.org>"]))
        check_eq(r["ticket_id"], u)
        check_eq(msg(srv, r["message_id"])["thread_reason"], "references")
        # A signed reply address in To, no threading headers at all.
        h = agent_reply(srv, t)["send_headers"]
        r = srv.ingest(make_mail(subject="new words", frm="someone.else@example.net",
                                 to=h["Reply-To"]))
        check_eq(r["ticket_id"], t)
        check_eq(msg(srv, r["message_id"])["thread_reason"], "reply_address")
        # A forged signature never joins.
        forged = f"reply+{t}.0123456789abcdef@{DOMAIN}"
        r = srv.ingest(make_mail(subject="hi", frm="mallory@example.net", to=forged))
        check(r["ticket_id"] not in (t, u), "forged reply address joined a ticket")
        # Subject tag: only from a participant; prefixes in many languages are stripped.
        r = srv.ingest(make_mail(subject=f"AW: RE: [External] Ynt: Order 1 [#{t}]", frm=CUSTOMER))
        check_eq(r["ticket_id"], t)
        check_eq(msg(srv, r["message_id"])["thread_reason"], "subject_tag")
        r = srv.ingest(make_mail(subject=f"Re: Order 1 [#{t}]", frm="stranger@example.net"))
        check(r["ticket_id"] != t, "a stranger's subject tag opened a new ticket")
        check_eq(msg(srv, r["message_id"])["thread_reason"], "new")
        # A Cc'd address of the ticket is a participant.
        c = srv.ingest(make_mail(subject="Order 3", frm=CUSTOMER, extra_headers=["Cc: boss@example.org"]))
        r = srv.ingest(make_mail(subject=f"Re: Order 3 [#{c['ticket_id']}]", frm="Boss <BOSS@example.org>"))
        check_eq(r["ticket_id"], c["ticket_id"])


def test_closed_ticket_reopens_but_not_for_auto_replies():
    with Server("--reply-domain", DOMAIN) as srv:
        first = srv.ingest(make_mail(subject="Help", frm=CUSTOMER, message_id="<h1@example.org>"))
        t = first["ticket_id"]
        out = agent_reply(srv, t, status="closed")
        check_eq(ticket(srv, t)["status"], "closed")
        ooo = srv.ingest(make_mail(subject="Automatic reply: Re: Help", frm=CUSTOMER,
                                   extra_headers=["Auto-Submitted: auto-replied",
                                                  f"In-Reply-To: <{out['message_id']}>"],
                                   body="I am out of the office until Monday.\n"))
        check_eq(ooo["ticket_id"], t)
        check_eq(ooo["classification"], "auto_reply")
        check_eq(ticket(srv, t)["status"], "closed", "an auto-reply never reopens")
        again = srv.ingest(make_mail(subject="Re: Help", frm=CUSTOMER,
                                     extra_headers=[f"In-Reply-To: <{out['message_id']}>"]))
        check_eq(again["classification"], "reply")
        check_eq(ticket(srv, t)["status"], "open")


def bounce_mail(original_id, rcpt="ayse@example.org", status="5.1.1"):
    b = "b0undary42"
    return (f"From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\n"
            f"To: ana@example.com\r\nSubject: Undelivered Mail Returned to Sender\r\n"
            f"Message-ID: <bounce-{original_id}@mx.example.org>\r\n"
            f"Date: Mon, 06 Jan 2025 10:05:00 +0000\r\nAuto-Submitted: auto-replied\r\n"
            f"MIME-Version: 1.0\r\n"
            f"Content-Type: multipart/report; report-type=delivery-status; boundary=\"{b}\"\r\n\r\n"
            f"--{b}\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
            f"--{b}\r\nContent-Type: message/delivery-status\r\n\r\n"
            f"Reporting-MTA: dns; mx.example.org\r\n\r\n"
            f"Final-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: {status}\r\n"
            f"Diagnostic-Code: smtp; 550 {status} <{rcpt}>: Recipient address rejected\r\n"
            f"--{b}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
            f"From: ana@example.com\r\nTo: {rcpt}\r\nSubject: Re: Help\r\n"
            f"Message-ID: <{original_id}>\r\n"
            f"--{b}--\r\n").encode()


def arf_mail(original_id, rcpt="ayse@example.org"):
    b = "arfb0und"
    return (f"From: staff@feedback.example.net\r\nTo: abuse@example.com\r\n"
            f"Subject: Abuse report\r\nMessage-ID: <arf-{original_id}@feedback.example.net>\r\n"
            f"MIME-Version: 1.0\r\n"
            f"Content-Type: multipart/report; report-type=feedback-report; boundary=\"{b}\"\r\n\r\n"
            f"--{b}\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n"
            f"--{b}\r\nContent-Type: message/feedback-report\r\n\r\n"
            f"Feedback-Type: abuse\r\nUser-Agent: ExampleFBL/1.0\r\nVersion: 1\r\n"
            f"Original-Rcpt-To: {rcpt}\r\n"
            f"--{b}\r\nContent-Type: message/rfc822\r\n\r\n"
            f"From: ana@example.com\r\nTo: {rcpt}\r\nSubject: Re: Help\r\n"
            f"Message-ID: <{original_id}>\r\n\r\nhello\r\n"
            f"--{b}--\r\n").encode()


def test_bounces_and_complaints_join_their_ticket_and_suppress():
    with Server("--reply-domain", DOMAIN) as srv:
        t = srv.ingest(make_mail(subject="Help", frm=CUSTOMER))["ticket_id"]
        out = agent_reply(srv, t)
        b = srv.ingest(bounce_mail(out["message_id"]))
        check_eq(b["classification"], "bounce")
        check_eq(b["ticket_id"], t, "a bounce is linked to the ticket of the returned message")
        m = msg(srv, b["message_id"])
        check_eq(m["bounce"]["kind"], "hard")
        check_eq(m["bounce"]["original_message_id"], out["message_id"])
        check_eq(ticket(srv, t)["status"], "pending", "a bounce never reopens")
        c = srv.ingest(arf_mail(out["message_id"], rcpt="other@example.org"))
        check_eq(c["classification"], "complaint")
        check_eq(c["ticket_id"], t)
        sup = {s["address"]: s for s in srv.get_json("/api/suppressions")["suppressions"]}
        check_eq(sup["ayse@example.org"]["reason"], "hard_bounce")
        check_eq(sup["ayse@example.org"]["status"], "5.1.1")
        check_eq(sup["ayse@example.org"]["message_id"], b["message_id"])
        check_eq(sup["other@example.org"]["reason"], "complaint")
        # A soft bounce does not downgrade; an unmatched bounce opens no open ticket.
        srv.ingest(bounce_mail("unknown@nowhere.example", rcpt="ayse@example.org", status="4.2.2"))
        sup = {s["address"]: s for s in srv.get_json("/api/suppressions")["suppressions"]}
        check_eq(sup["ayse@example.org"]["reason"], "hard_bounce")
        open_ids = [x["id"] for x in srv.get_json("/api/tickets?status=open")["tickets"]]
        check_eq(open_ids, [], "machine mail opened a customer ticket")


def test_concurrent_replies_never_split_a_conversation():
    with Server() as srv:
        t = srv.ingest(make_mail(subject="Race", frm=CUSTOMER, message_id="<r0@example.org>"))["ticket_id"]
        results = []

        def post(i):
            results.append(srv.ingest(make_mail(subject="Re: Race", frm=CUSTOMER,
                                                extra_headers=["In-Reply-To: <r0@example.org>"],
                                                body=f"answer {i}\n")))
        ths = [threading.Thread(target=post, args=(i,)) for i in range(20)]
        [x.start() for x in ths]
        [x.join() for x in ths]
        check_eq({r["ticket_id"] for r in results}, {t})
        check_eq(ticket(srv, t)["message_count"], 21)


def test_stripped_text_of_a_reply():
    with Server() as srv:
        t = srv.ingest(make_mail(subject="Help", frm=CUSTOMER, message_id="<s1@example.org>"))
        body = ("Thanks, that fixed it!\n\nOn Mon, Jan 6, 2025 at 10:00 AM Ana Agent "
                "<ana@example.com> wrote:\n> Please restart it.\n> Ana\n")
        r = srv.ingest(make_mail(subject="Re: Help", frm=CUSTOMER, body=body,
                                 extra_headers=["In-Reply-To: <s1@example.org>"]))
        m = msg(srv, r["message_id"])
        check_eq(m["stripped_text"], "Thanks, that fixed it!")
        check(m["text"].startswith("Thanks, that fixed it!") and "Please restart it." in m["text"],
              "text stays intact")
        snippet = srv.get_json(f"/api/tickets/{t['ticket_id']}")["ticket"]["last_message"]["snippet"]
        check_eq(snippet, "Thanks, that fixed it!")


def test_agent_reply_validation():
    with Server() as srv:
        t = srv.ingest(make_mail())["ticket_id"]
        h = {"Content-Type": "application/json"}
        for body, code in [({"text": "x"}, "invalid_from"),
                           ({"from": "not an address", "text": "x"}, "invalid_from"),
                           ({"from": "a@b.c, d@e.f", "text": "x"}, "invalid_from"),
                           ({"from": "a@example.com\r\nBcc: x@y.z", "text": "x"}, "invalid_from"),
                           ({"from": "a@example.com", "text": "  "}, "empty_reply"),
                           ({"from": "a@example.com", "text": 5}, "invalid_field"),
                           ({"from": "a@example.com", "text": "x", "status": "gone"}, "invalid_status")]:
            r = srv.request("POST", f"/api/tickets/{t}/messages", body=json.dumps(body), headers=h)
            check_eq(r.status, 400, body)
            check_eq(r.json()["error"]["code"], code, body)
        r = srv.request("POST", "/api/tickets/999/messages",
                        body=json.dumps({"from": "a@example.com", "text": "x"}), headers=h)
        check_eq(r.status, 404)


if __name__ == "__main__":
    run(globals())
