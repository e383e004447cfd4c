#!/usr/bin/env python3
"""Issue 6 end to end: API tokens, filters, full-text search, cursor paging while mail
arrives, PATCH, ETags, the long-poll and SSE change feed, CORS."""
import json
import os
import socket
import sqlite3
import threading
import time
from urllib.parse import quote

from inboxd_test import (SRC, Server, check, check_eq, make_mail, metric, on_postgres, run,
                         run_cli, skip_on_postgres, validate)


def test_api_tokens_read_only_and_read_write():
    with Server("--api-token", "rw-secret", "--api-token", "ro-secret:ro") as srv:
        srv.ingest(make_mail())
        r = srv.get("/api/tickets")
        check_eq(r.status, 401)
        check_eq(r.json()["error"]["code"], "unauthorized")
        check(r.header("www-authenticate").startswith("Bearer"), r.headers)
        check_eq(srv.get("/api/tickets", headers={"Authorization": "Bearer wrong"}).status, 401)
        check_eq(srv.get("/api/tickets", headers={"Authorization": "Bearer rw-secre"}).status, 401)
        check_eq(srv.get("/api/tickets", headers={"Authorization": "Bearer ro-secret:ro"}).status,
                 401)
        for tok in ("rw-secret", "ro-secret"):
            check_eq(srv.get("/api/tickets", headers={"Authorization": f"Bearer {tok}"}).status, 200)
        patch = json.dumps({"status": "closed"})
        h = {"Content-Type": "application/json"}
        r = srv.request("PATCH", "/api/tickets/1", body=patch,
                        headers=dict(h, Authorization="Bearer ro-secret"))
        check_eq(r.status, 403)
        r = srv.request("PATCH", "/api/tickets/1", body=patch,
                        headers=dict(h, Authorization="Bearer rw-secret"))
        check_eq(r.status, 200, r)
        # Ingress and health are not behind the API token.
        check_eq(srv.get("/healthz").status, 200)
        check_eq(srv.post_raw(make_mail()).status, 200)


def test_patch_validation_and_event():
    with Server() as srv:
        t = srv.ingest(make_mail())["ticket_id"]
        h = {"Content-Type": "application/json"}

        def patch(body, ct="application/json"):
            return srv.request("PATCH", f"/api/tickets/{t}", body=body,
                               headers={"Content-Type": ct})
        for body, code in [('{"status":"done"}', "invalid_status"),
                           ('{"status":3}', "invalid_status"),
                           ('{"tags":"vip"}', "invalid_tags"),
                           ('{"tags":[""]}', "invalid_tags"),
                           ('{"tags":[" x"]}', "invalid_tags"),
                           ('{"tags":["' + "x" * 65 + '"]}', "invalid_tags"),
                           ('{"subject":"x"}', "unknown_field"),
                           ('{}', "empty_patch"),
                           ('[1]', "invalid_json"),
                           ('{"status":', "invalid_json")]:
            r = patch(body)
            check_eq(r.status, 400, body)
            check_eq(r.json()["error"]["code"], code, body)
        check_eq(patch('{"status":"closed"}', ct="text/plain").status, 415)
        check_eq(srv.request("PATCH", "/api/tickets/999", body='{"status":"closed"}',
                             headers=h).status, 404)
        r = patch('{"status":"pending","tags":["vip","billing","vip"]}')
        check_eq(r.status, 200, r)
        doc = r.json()
        validate(doc["ticket"], "ticket")
        check_eq(doc["ticket"]["status"], "pending")
        check_eq(doc["ticket"]["tags"], ["vip", "billing"])
        check_eq(doc["changed"], True)
        check_eq(patch('{"status":"pending"}').json()["changed"], False, "no-op patch")
        types = [e["type"] for e in srv.get_json("/api/events")["events"]]
        check_eq(types, ["ticket.created", "message.created", "ticket.updated"])
        check_eq([x["id"] for x in srv.get_json("/api/tickets?tag=vip")["tickets"]], [t])
        check_eq(srv.get_json("/api/tickets?tag=other")["tickets"], [])
        check_eq(srv.get_json("/api/tickets?status=pending")["tickets"][0]["id"], t)


def test_etags_and_304():
    with Server() as srv:
        reply = srv.ingest(make_mail())
        for path in ["/api/tickets", f"/api/tickets/{reply['ticket_id']}",
                     f"/api/messages/{reply['message_id']}", "/api/events?after=0"]:
            r = srv.get(path)
            etag = r.header("etag")
            check(etag and etag.startswith('"'), f"{path}: {r.headers}")
            r2 = srv.get(path, headers={"If-None-Match": etag})
            check_eq(r2.status, 304, path)
            check_eq(r2.body, b"")
            check_eq(srv.get(path, headers={"If-None-Match": '"other"'}).status, 200)
            check_eq(srv.get(path, headers={"If-None-Match": f'W/{etag}, "x"'}).status, 304)
        t = f"/api/tickets/{reply['ticket_id']}"
        etag = srv.get(t).header("etag")
        srv.request("PATCH", t, body='{"tags":["x"]}', headers={"Content-Type": "application/json"})
        check_eq(srv.get(t, headers={"If-None-Match": etag}).status, 200, "changed ticket, new ETag")


def test_search_words_prefixes_phrases_and_folding():
    with Server() as srv:
        tr = srv.ingest(make_mail(subject="Fatura hakkında şikayet",
                                  frm="Çağlar Öztürk <caglar@example.com.tr>",
                                  body="Merhaba, faturamda yanlış bir ücret var. Yazıcı da bozuk.\n"))
        de = srv.ingest(make_mail(subject="Rückerstattung für Bestellung",
                                  frm="Jürgen Groß <juergen@example.de>",
                                  body="Die Straße ist falsch und die Lieferung kam nie an.\n"))
        en = srv.ingest(make_mail(subject="Printer broken", frm="bob@example.net",
                                  body="The printer makes a grinding noise.\n"))

        def find(q):
            return search_ids(srv, q)
        check_eq(find("sikayet"), [tr["ticket_id"]], "diacritics folded")
        check_eq(find("şikayet"), [tr["ticket_id"]])
        check_eq(find("ŞİKAYET"), [tr["ticket_id"]], "Turkish capitals")
        check_eq(find("yazici"), [tr["ticket_id"]], "dotless ı folded")
        check_eq(find("caglar"), [tr["ticket_id"]], "sender names")
        check_eq(find("ozturk"), [tr["ticket_id"]])
        check_eq(find("rueckerstattung"), [], "no umlaut transliteration")
        check_eq(find("ruckerstattung"), [de["ticket_id"]])
        check_eq(find("strasse"), [de["ticket_id"]], "ß folds to ss")
        check_eq(find("Groß"), [de["ticket_id"]])
        check_eq(find("lieferung kam"), [de["ticket_id"]], "words are ANDed")
        check_eq(find('"kam nie an"'), [de["ticket_id"]], "phrase")
        check_eq(find('"nie kam"'), [], "phrase order matters")
        check_eq(find("print*"), [en["ticket_id"]], "prefix")
        check_eq(find("print"), [], "no implicit prefix")
        check_eq(find("grinding OR noise AND NOT"), [], "operators are words, never syntax")
        check_eq(find('fatura" ) ( NEAR'), [], "no FTS5 syntax errors from user input")
        r = srv.get("/api/tickets?q=%22%22")
        check_eq(r.status, 400)


def test_search_few_and_many_matches_agree_with_the_list():
    # The SQLite store maps matching messages to tickets one of two ways, by how many
    # messages match (few: their rows; many: a scan in activity order). With 40 messages
    # one match is "few" and forty are "many"; both must give the unfiltered list's
    # matching tickets in its order, alone, with a status or a customer, and page by page.
    with Server() as srv:
        h = {"Content-Type": "application/json"}
        people = ["Dana <dana@example.org>", "Eli <eli@example.org>"]
        for i in range(40):
            word = "zebrafish" if i == 7 else "goldfish"
            srv.ingest(make_mail(subject=f"teapot {i}", frm=people[i % 2],
                                 body=f"The teapot leaks, {word} {i}.\n"))
        every = srv.get_json("/api/tickets?limit=100")["tickets"]
        check_eq(len(every), 40)
        r = srv.request("PATCH", f"/api/tickets/{every[5]['id']}", body='{"status":"pending"}',
                        headers=h)
        check_eq(r.status, 200, r)
        every = srv.get_json("/api/tickets?limit=100")["tickets"]
        subjects = {t["id"]: t["subject"] for t in every}
        zebra = {t["id"] for t in every if subjects[t["id"]] == "teapot 7"}
        before = 0 if on_postgres() else metric(srv, "inboxd_search_scans_abandoned_total")
        for q, matching in [("zebrafish", zebra), ("teapot", set(subjects)),
                            ("goldfish", set(subjects) - zebra), ("nothingatall", set())]:
            for extra, keep in [("", lambda t: True),
                                ("&status=pending", lambda t: t["status"] == "pending"),
                                ("&customer=eli%40example.org",
                                 lambda t: t["customer"]["address"] == "eli@example.org")]:
                want = [t["id"] for t in every if t["id"] in matching and keep(t)]
                got = [t["id"] for t in srv.get_json(f"/api/tickets?q={q}{extra}")["tickets"]]
                check_eq(got, want, f"q={q}{extra}")
                check_eq(paged_ids(srv, f"q={q}{extra}", 3), want, f"q={q}{extra}, three per page")
        check_eq(len(zebra), 1)
        if not on_postgres():
            # The many-match lists were the scan's, not the index read after a given-up scan.
            check_eq(metric(srv, "inboxd_search_scans_abandoned_total") - before, 0)


def test_search_of_old_matches_and_of_a_long_thread():
    # A word in many messages is looked for by scanning tickets in activity order, which
    # finds a page soon when the matches are spread over the list. The SQLite store scans
    # only when the newest quarter of the messages holds a page of matches; otherwise it
    # reads the matches' rows (few) or the messages_ticket index. And a scan that runs past
    # its budget (what reading that index costs) is given up for the index. Every plan
    # must give the unfiltered list's matching tickets in its order.
    with Server() as srv:
        for i in range(1940):
            word = "kudu quagga" if i < 30 else "quagga" if i < 200 else "zebra"
            srv.ingest(make_mail(subject=f"herd {i}", body=f"A {word} at the gate, {i}.\n"))
        # The newest 60 messages match too, but all in one ticket: a long thread.
        for i in range(60):
            srv.ingest(make_mail(subject="Re: the quagga thread", body=f"More quagga, {i}.\n",
                                 message_id=f"<thread{i}@example.org>",
                                 extra_headers=[f"In-Reply-To: <thread{i - 1}@example.org>"]
                                 if i else []))
        every = paged(srv, "", 200)
        check_eq(len(every), 1941, "the thread is one ticket")
        check_eq(every[0]["message_count"], 60)

        def herd(t, below):
            return t["subject"].startswith("herd ") and int(t["subject"].split()[1]) < below
        quagga = [t["id"] for t in every if herd(t, 200) or "thread" in t["subject"]]
        before = 0 if on_postgres() else metric(srv, "inboxd_search_scans_abandoned_total")
        # Matches mostly old (the page needs more than the thread has): the index.
        check_eq(paged_ids(srv, "q=quagga", 200), quagga)
        # Few and old: their rows.
        check_eq(paged_ids(srv, "q=kudu", 1), [t["id"] for t in every if herd(t, 30)])
        # Spread over the list: the scan.
        check_eq(paged_ids(srv, "q=zebra", 100), [t["id"] for t in every if not herd(t, 200)
                                                  and "thread" not in t["subject"]])
        if not on_postgres():
            check_eq(metric(srv, "inboxd_search_scans_abandoned_total") - before, 0)
        # A page of matches among the newest messages, but in one ticket: the scan reads
        # on through the newer tickets for the rest of the page, past its budget.
        check_eq(paged_ids(srv, "q=quagga", 30), quagga, "q=quagga, thirty per page")
        if not on_postgres():
            # The first page only: the later ones start among the old matches.
            check_eq(metric(srv, "inboxd_search_scans_abandoned_total") - before, 1)


def paged(srv, query, limit):
    """The tickets of GET /api/tickets?QUERY, followed page by page, LIMIT per page."""
    tickets, page = [], srv.get_json(f"/api/tickets?{query}&limit={limit}")
    tickets += page["tickets"]
    while page["next_cursor"]:
        page = srv.get_json(f"/api/tickets?{query}&limit={limit}&cursor={page['next_cursor']}")
        tickets += page["tickets"]
    return tickets


def paged_ids(srv, query, limit):
    return [t["id"] for t in paged(srv, query, limit)]


def search_ids(srv, q):
    return sorted(t["id"] for t in srv.get_json(f"/api/tickets?q={quote(q)}")["tickets"])


def test_search_index_is_derived_and_rebuilt():
    """SQLite keeps the index in <db>.search, written after the commit: a search still
    sees every acknowledged message at once, `inboxd ingest` indexes its own, and a lost
    index (deleted, or an upgrade from schema 7 that kept it in the main file) is rebuilt
    at start."""
    skip_on_postgres("PostgreSQL indexes in the message's own transaction")
    with Server() as srv:
        ids = {}
        for i, word in enumerate(["zebrafish", "quokka", "axolotl"] * 20):
            t = srv.ingest(make_mail(subject=f"About the {word} #{i}", frm=f"c{i}@example.org"))
            # Read your writes: each search right after its 2xx.
            check(t["ticket_id"] in search_ids(srv, word), f"{word} #{i} found at once")
            ids.setdefault(word, []).append(t["ticket_id"])
        # Only what the sender wrote is indexed, not the history quoted below it.
        reply = srv.ingest(make_mail(
            subject="Re: delivery", frm="q@example.org",
            body=("Thanks, the okapi arrived today.\n\nOn Mon, 6 Jan 2025 at 10:00, Support "
                  "<help@example.com> wrote:\n> We shipped the wombat.\n")))
        check_eq(search_ids(srv, "okapi"), [reply["ticket_id"]])
        check_eq(search_ids(srv, "wombat"), [], "quoted history is not indexed")
        ids["okapi"] = [reply["ticket_id"]]
        mail = make_mail(subject="Narwhal sighting", frm="cli@example.org")
        out = run_cli("ingest", "--db", srv.db, input=mail)
        check_eq(out.returncode, 0, out.stderr)
        narwhal = search_ids(srv, "narwhal")
        check_eq(len(narwhal), 1, "indexed by `inboxd ingest`")
        want = {w: sorted(v) for w, v in ids.items()}
        want["narwhal"] = narwhal
        index = srv.db + ".search"
        check(os.path.exists(index), "the index file is next to the database")

        # An intact index is not scanned again at start.
        srv.restart()
        check_eq(search_ids(srv, "quokka"), want["quokka"])
        check("missing from the search index" not in srv.log_text(), "no catch-up needed")

        # Lost index: deleted while the server is stopped.
        check_eq(srv.stop(), 0)
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(index + suffix):
                os.remove(index + suffix)
        srv.start()
        for word, tickets in want.items():
            check_eq(search_ids(srv, word), tickets, f"{word} after the index was deleted")
        check_eq(search_ids(srv, "wombat"), [], "the rebuilt index holds what was written too")
        check("indexing 62 messages missing from the search index" in srv.log_text(),
              "the catch-up is logged")

        # Upgrade from schema 7: the index lived in the main file.
        check_eq(srv.stop(), 0)
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(index + suffix):
                os.remove(index + suffix)
        conn = sqlite3.connect(srv.db, isolation_level=None)
        conn.execute("UPDATE meta SET value = '7' WHERE key = 'schema_version'")
        conn.execute("CREATE VIRTUAL TABLE message_search USING fts5(subject, body, names, "
                     "content = '', tokenize = 'unicode61 remove_diacritics 2')")
        conn.close()
        srv.start()
        for word, tickets in want.items():
            check_eq(search_ids(srv, word), tickets, f"{word} after the upgrade")
        conn = sqlite3.connect(srv.db, isolation_level=None)
        left = conn.execute("SELECT count(*) FROM sqlite_schema "
                            "WHERE name = 'message_search'").fetchone()[0]
        version = conn.execute("SELECT value FROM meta "
                               "WHERE key = 'schema_version'").fetchone()[0]
        conn.close()
        newest = max(int(f.name[:3]) for f in (SRC / "schema" / "sqlite").glob("*.sql"))
        check_eq((left, int(version)), (0, newest), "migration 008 dropped the old table")


def test_cursor_paging_stable_while_mail_arrives():
    with Server() as srv:
        ids = [srv.ingest(make_mail(subject=f"old {i}"))["ticket_id"] for i in range(9)]
        seen = []
        page = srv.get_json("/api/tickets?limit=4")
        seen += [t["id"] for t in page["tickets"]]
        n = 0
        while page["next_cursor"]:
            srv.ingest(make_mail(subject=f"new {n}"))  # new activity between pages
            n += 1
            page = srv.get_json(f"/api/tickets?limit=4&cursor={page['next_cursor']}")
            seen += [t["id"] for t in page["tickets"]]
        check_eq(len(seen), len(set(seen)), "no duplicates")
        check_eq(sorted(seen), sorted(ids), "every ticket that existed is seen exactly once")


def test_status_and_customer_filters_page_newest_first():
    # Each filter and pair of filters must give exactly the unfiltered list's tickets that
    # match, in its order (newest activity first), whole and page by page. The SQLite store
    # plans each combination on its own index, so each needs its own check.
    with Server() as srv:
        h = {"Content-Type": "application/json"}
        people = ["Bob <bob@example.net>", "Carol <Carol@Example.net>"]
        for i in range(9):
            srv.ingest(make_mail(subject=f"case {i}", frm=people[i % 3 == 0]))
        every = srv.get_json("/api/tickets?limit=100")["tickets"]
        for t in every[1:8:3]:
            r = srv.request("PATCH", f"/api/tickets/{t['id']}", body='{"status":"pending"}',
                            headers=h)
            check_eq(r.status, 200, r)
        every = srv.get_json("/api/tickets?limit=100")["tickets"]
        check_eq(len(every), 9)
        cases = [({"status": "pending"}, None, None), ({"customer": "BOB@example.net"}, None,
                 "bob@example.net"), ({"customer": "carol@example.net"}, None,
                 "carol@example.net"), ({"status": "pending", "customer": "bob@example.net"},
                 "pending", "bob@example.net"), ({"status": "open", "customer":
                 "CAROL@example.net"}, "open", "carol@example.net"),
                 ({"customer": "nobody@example.net"}, None, "nobody@example.net"),
                 ({"status": "closed"}, "closed", None)]
        for params, status, customer in cases:
            status = status or params.get("status")
            want = [t["id"] for t in every
                    if (not status or t["status"] == status)
                    and (not customer or t["customer"]["address"].lower() == customer)]
            query = "&".join(f"{k}={quote(v)}" for k, v in params.items())
            got = [t["id"] for t in srv.get_json(f"/api/tickets?{query}")["tickets"]]
            check_eq(got, want, query)
            check_eq(paged_ids(srv, query, 2), want, f"{query}, two per page")
        check(any(t["status"] == "pending" for t in every), "some tickets are pending")
        check_eq(len({t["customer"]["address"].lower() for t in every}), 2)


def test_tag_filter_alone_and_combined_pages_newest_first():
    # The SQLite store leads the list with a tag's tickets when it has fewer than
    # sqrt(page x tickets), and checks the tag on each ticket of an activity scan when it
    # has more: with 12 tickets, "vip" (2) leads at any page size, "billing" (8) leads for
    # a page of 100 and is a filter for a page of 1. Both must give the unfiltered list's
    # tagged tickets in its order, alone and with a status, a customer or a search.
    with Server() as srv:
        h = {"Content-Type": "application/json"}
        people = ["Bob <bob@example.net>", "Carol <carol@example.net>"]
        for i in range(12):
            srv.ingest(make_mail(subject=f"case {i}", frm=people[i % 3 == 0],
                                 body=f"The {'kettle' if i % 2 else 'toaster'} is broken.\n"))
        every = srv.get_json("/api/tickets?limit=100")["tickets"]
        tags = {}
        for k, t in enumerate(every):
            tags[t["id"]] = (["vip"] if k in (2, 9) else []) + (["billing"] if k % 3 else [])
            tags[t["id"]] += ["wrong"] if k == 4 else []
            body = {"tags": tags[t["id"]]} if k != 5 else {"tags": tags[t["id"]],
                                                           "status": "pending"}
            if tags[t["id"]] or k == 5:
                r = srv.request("PATCH", f"/api/tickets/{t['id']}", body=json.dumps(body),
                                headers=h)
                check_eq(r.status, 200, r)
        # A changed tag list replaces the old one: "wrong" is gone, "billing" stays.
        r = srv.request("PATCH", f"/api/tickets/{every[4]['id']}",
                        body='{"tags":["billing"]}', headers=h)
        check_eq(r.status, 200, r)
        tags[every[4]["id"]] = ["billing"]
        every = srv.get_json("/api/tickets?limit=100")["tickets"]
        check_eq({t["id"]: t["tags"] for t in every}, tags)
        kettle = {t["id"] for t in srv.get_json("/api/tickets?q=kettle&limit=100")["tickets"]}
        check_eq(len(kettle), 6)
        for tag in ("vip", "billing", "wrong", "nothing"):
            for extra, keep in [("", lambda t: True),
                                ("&status=pending", lambda t: t["status"] == "pending"),
                                ("&status=open", lambda t: t["status"] == "open"),
                                ("&customer=CAROL%40example.net",
                                 lambda t: t["customer"]["address"] == "carol@example.net"),
                                ("&q=kettle", lambda t: t["id"] in kettle),
                                ("&status=open&customer=bob%40example.net&q=kettle",
                                 lambda t: t["status"] == "open" and t["id"] in kettle
                                 and t["customer"]["address"] == "bob@example.net")]:
                query = f"tag={tag}{extra}"
                want = [t["id"] for t in every if tag in t["tags"] and keep(t)]
                got = [t["id"] for t in srv.get_json(f"/api/tickets?{query}&limit=100")["tickets"]]
                check_eq(got, want, query)
                check_eq(paged_ids(srv, query, 1), want, f"{query}, one per page")
        check_eq(sum("billing" in t for t in tags.values()), 8)
        check_eq(sum("vip" in t for t in tags.values()), 2)


def test_tags_indexed_on_upgrade():
    skip_on_postgres("the SQLite schema's migration 011")
    with Server() as srv:
        h = {"Content-Type": "application/json"}
        ids = [srv.ingest(make_mail(subject=f"case {i}"))["ticket_id"] for i in range(4)]
        for t in ids[1:3]:
            r = srv.request("PATCH", f"/api/tickets/{t}", body='{"tags":["vip","billing"]}',
                            headers=h)
            check_eq(r.status, 200, r)
        # A database of schema 10 had the tags in tickets.tags only.
        check_eq(srv.stop(), 0)
        conn = sqlite3.connect(srv.db, isolation_level=None)
        for sql in ("DROP TRIGGER ticket_tags_insert", "DROP TRIGGER ticket_tags_update",
                    "DROP TABLE ticket_tags"):
            conn.execute(sql)
        conn.execute("UPDATE meta SET value = '10' WHERE key = 'schema_version'")
        conn.close()
        srv.start()
        check_eq([t["id"] for t in srv.get_json("/api/tickets?tag=vip")["tickets"]],
                 ids[2:0:-1], "the migration indexes the tags already set")
        check_eq(srv.log_text().count("applied migration sqlite/011_ticket_tags.sql"), 2,
                 "011 applied when the database was made and again after the downgrade")
        r = srv.request("PATCH", f"/api/tickets/{ids[2]}", body='{"tags":[]}', headers=h)
        check_eq(r.status, 200, r)
        check_eq([t["id"] for t in srv.get_json("/api/tickets?tag=billing")["tickets"]],
                 [ids[1]], "and the triggers keep them")
        # A ticket row written with its tags (as an import would) is indexed too.
        check_eq(srv.stop(), 0)
        conn = sqlite3.connect(srv.db, isolation_level=None)
        new = conn.execute("INSERT INTO tickets (subject, tags, created_at, updated_at) VALUES "
                           "('imported', '[\"vip\",\"old\"]', '2025-01-01T00:00:00.000Z', "
                           "'2025-01-01T00:00:00.000Z')").lastrowid
        rows = conn.execute("SELECT tag FROM ticket_tags WHERE ticket_id = ? ORDER BY tag",
                            (new,)).fetchall()
        conn.close()
        check_eq(rows, [("old",), ("vip",)], "the insert trigger")


def test_updated_since():
    with Server() as srv:
        srv.ingest(make_mail(subject="a"))
        time.sleep(0.05)
        mark = srv.get_json("/api/events")["events"][-1]["at"]
        time.sleep(0.05)
        b = srv.ingest(make_mail(subject="b"))
        check_eq([t["id"] for t in srv.get_json(f"/api/tickets?updated_since={mark}")["tickets"]],
                 [b["ticket_id"]])
        check_eq(srv.get("/api/tickets?updated_since=yesterday").status, 400)


def test_long_poll_wakes_on_commit():
    with Server() as srv:
        last = srv.get_json("/api/events")["last_seq"]
        t0 = time.time()
        empty = srv.get_json(f"/api/events?after={last}&wait=1")
        check_eq(empty["events"], [])
        check(0.9 <= time.time() - t0 < 5, "returns empty after wait")
        result = {}

        def poll():
            t = time.time()
            result["doc"] = srv.get_json(f"/api/events?after={last}&wait=30")
            result["woke"] = time.time()
        th = threading.Thread(target=poll)
        th.start()
        time.sleep(0.3)
        posted = time.time()
        reply = srv.ingest(make_mail())
        acked = time.time()
        th.join(10)
        check(not th.is_alive(), "long poll did not wake")
        evs = result["doc"]["events"]
        check_eq([e["type"] for e in evs], ["ticket.created", "message.created"])
        check_eq(evs[-1]["message_id"], reply["message_id"])
        check(result["woke"] - acked < 1.0, f"woke {result['woke'] - acked:.3f}s after the ack")
        check_eq(srv.get("/api/events?wait=301").status, 400)


def test_many_waiting_clients_and_shutdown():
    with Server() as srv:
        last = srv.get_json("/api/events")["last_seq"]
        socks = []
        for _ in range(200):
            s = srv.raw_socket()
            s.sendall(f"GET /api/events?after={last}&wait=60 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            socks.append(s)
        time.sleep(0.5)
        srv.ingest(make_mail())
        from inboxd_test import read_http_response
        woke = 0
        for s in socks:
            r = read_http_response(s)
            if r.status == 200 and len(json.loads(r.body)["events"]) == 2:
                woke += 1
            s.close()
        check_eq(woke, 200, "every waiting client got the events")
        # Waiting clients do not hold up a shutdown.
        s = srv.raw_socket()
        s.sendall(b"GET /api/events?after=999999&wait=300 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)
        t0 = time.time()
        check_eq(srv.stop(), 0)
        check(time.time() - t0 < 5, "shutdown answered the long poll")
        s.close()


def test_server_sent_events_with_resume():
    with Server() as srv:
        a = srv.ingest(make_mail())
        s = srv.raw_socket()
        s.sendall(b"GET /api/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n"
                  b"Last-Event-ID: 1\r\n\r\n")
        buf = b""
        deadline = time.time() + 10

        def read_until(pred):
            nonlocal buf
            while not pred(buf) and time.time() < deadline:
                s.settimeout(max(0.1, deadline - time.time()))
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        read_until(lambda b: b"id: 2" in b)
        check(b"text/event-stream" in buf, buf[:300])
        check(b"id: 1\n" not in buf, "Last-Event-ID resumes after 1")
        check(b"event: message.created" in buf)
        b2 = srv.ingest(make_mail())
        read_until(lambda b: b"id: 4" in b)
        check(b'"message_id":%d' % b2["message_id"] in buf, buf[-400:])
        s.close()


def test_cors():
    with Server("--cors-origin", "https://dash.example.com") as srv:
        r = srv.request("OPTIONS", "/api/tickets/1", headers={
            "Origin": "https://dash.example.com", "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "authorization,content-type"})
        check_eq(r.status, 204)
        check_eq(r.header("access-control-allow-origin"), "https://dash.example.com")
        check("PATCH" in r.header("access-control-allow-methods"))
        check("Authorization" in r.header("access-control-allow-headers"))
        r = srv.get("/api/tickets", headers={"Origin": "https://dash.example.com"})
        check_eq(r.header("access-control-allow-origin"), "https://dash.example.com")
        check("ETag" in r.header("access-control-expose-headers"))
        r = srv.get("/api/tickets", headers={"Origin": "https://evil.example"})
        check_eq(r.header("access-control-allow-origin"), None)
        r = srv.request("OPTIONS", "/api/tickets", headers={"Origin": "https://evil.example"})
        check_eq(r.header("access-control-allow-origin"), None)


def test_web_view_is_served_with_strict_csp():
    with Server() as srv:
        r = srv.get("/")
        check_eq(r.status, 200)
        check(r.header("content-type").startswith("text/html"))
        csp = r.header("content-security-policy")
        check("default-src 'none'" in csp and "script-src 'self'" in csp, csp)
        check("unsafe-inline" not in csp and "unsafe-eval" not in csp, csp)
        check_eq(srv.get("/static/../../etc/passwd").status, 404)
        check_eq(srv.get("/static/nope.js").status, 404)


if __name__ == "__main__":
    run(globals())
