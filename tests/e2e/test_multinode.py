#!/usr/bin/env python3
"""Several inboxd nodes on one PostgreSQL database (issue 9): two `inboxd serve` processes
on two ports share one database and one CRM receiver. Every message is posted to both
nodes at once (a provider's retry that lands on the other node), replies race their
siblings to both nodes, and one node is killed with SIGKILL in the middle. Afterwards:
every acknowledged message is stored exactly once, every conversation is one ticket,
every event reached the CRM (the dead node's claimed deliveries were taken over after
their lease), in order per ticket, and the change feed has no gap."""
import random
import re
import threading
import time
from collections import defaultdict

from inboxd_test import (Server, check, check_eq, make_mail, new_pg_database, psql, run,
                         skip_unless_postgres, wait_until)
from test_forward import Receiver, forward_flags

CONVERSATIONS = 16
REPLIES = 3
PAIRS = 12


def mail(mid, subject, refs=(), reply_to=None, body="Hello\n"):
    extra = []
    if reply_to:
        extra.append(f"In-Reply-To: <{reply_to}>")
    if refs:
        extra.append("References: " + " ".join(f"<{r}>" for r in refs))
    return make_mail(subject=subject, message_id=f"<{mid}>", extra_headers=extra, body=body)


class Poster:
    """Posts (node, message) pairs from threads; remembers every acknowledgement."""

    def __init__(self):
        self.lock = threading.Lock()
        self.acks = defaultdict(list)  # Message-ID -> [reply docs]
        self.refused = 0

    def post(self, srv, mid, data):
        try:
            r = srv.post_raw(data)
        except Exception:
            with self.lock:
                self.refused += 1  # the node died under us: never acknowledged
            return
        if r.status == 200:
            with self.lock:
                self.acks[mid].append(r.json())
        else:
            with self.lock:
                self.refused += 1

    def all(self, jobs):
        threads = [threading.Thread(target=self.post, args=job) for job in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def node_name(srv):
    m = re.search(r"as node (\S+) \(", srv.log_text())
    check(m, "the node logs its name")
    return m.group(1)


def test_two_nodes_one_database_one_killed():
    skip_unless_postgres("several nodes share one PostgreSQL database")
    rng = random.Random(9)
    db = new_pg_database()
    lease = "1500"
    # A CRM that takes a while to answer, so deliveries are in flight when a node dies.
    with Receiver(lambda rec: (time.sleep(0.2), 200)[1]) as recv:
        flags = forward_flags(recv.url, "--forward-lease-ms", lease, attempts=50)
        a = Server(*flags, db=db).start()
        b = Server(*flags, db=db).start()
        poster = Poster()
        messages = {}  # Message-ID -> (conversation, bytes)
        try:
            # 1. Every conversation's first message, posted to both nodes at once.
            roots = []
            for c in range(CONVERSATIONS):
                mid = f"root{c}.{rng.getrandbits(32):x}@example.org"
                data = mail(mid, f"conversation {c}", body=f"first message of {c}\n")
                messages[mid] = (f"c{c}", data)
                roots.append(mid)
            poster.all([(srv, mid, messages[mid][1]) for mid in roots for srv in (a, b)])

            # 2. Replies in chains (each answers the previous one and references the whole
            # thread), all at once, each to both nodes; pairs of messages that reference
            # each other race to the two nodes. Node b dies in the middle of it.
            jobs = []
            for c, root in enumerate(roots):
                chain = [root]
                for k in range(REPLIES):
                    mid = f"re{c}.{k}.{rng.getrandbits(32):x}@example.org"
                    data = mail(mid, f"Re: conversation {c}", refs=chain, reply_to=chain[-1],
                                body=f"reply {k} in {c}\n")
                    messages[mid] = (f"c{c}", data)
                    chain = chain + [mid]
                    jobs += [(a, mid, data), (b, mid, data)]
            for p in range(PAIRS):
                x = f"x{p}.{rng.getrandbits(32):x}@example.org"
                y = f"y{p}.{rng.getrandbits(32):x}@example.org"
                messages[x] = (f"p{p}", mail(x, f"pair {p}", refs=[y]))
                messages[y] = (f"p{p}", mail(y, f"pair {p}", refs=[x]))
                jobs += [(a, x, messages[x][1]), (b, y, messages[y][1]),
                         (b, x, messages[x][1]), (a, y, messages[y][1])]
            rng.shuffle(jobs)
            b_name = node_name(b)
            taken_over = []

            def kill_b_while_it_delivers():
                # Once b holds claims (deliveries it is sending), SIGKILL it.
                deadline = time.time() + 20
                while time.time() < deadline:
                    rows = psql(db, "SELECT id FROM deliveries WHERE status = 'delivering' "
                                    f"AND claimed_by = '{b_name}'")
                    if rows:
                        b.proc.kill()
                        taken_over.extend(r[0] for r in rows)
                        return
                    time.sleep(0.02)
                b.proc.kill()
            killer = threading.Thread(target=kill_b_while_it_delivers)
            killer.start()
            poster.all(jobs)
            killer.join()
            b.proc.wait()
            b.proc.stdout.close()
            b.log.close()
            b.proc = None

            # 3. Providers retry what was not acknowledged, on the node that is left.
            for mid, (_, data) in messages.items():
                if not poster.acks.get(mid):
                    poster.post(a, mid, data)
            check_eq(sorted(m for m in messages if not poster.acks.get(m)), [],
                     "every message acknowledged in the end")

            # Every acknowledged message exactly once, with the ids every ack gave.
            rows = psql(db, "SELECT rfc_message_id, count(*), min(id), min(ticket_id) "
                            "FROM messages GROUP BY rfc_message_id")
            stored = {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in rows}
            for mid, acks in poster.acks.items():
                check(mid in stored, f"{mid} acknowledged but not stored")
                check_eq(stored[mid][0], 1, f"{mid} stored exactly once")
                for ack in acks:
                    check_eq((ack["message_id"], ack["ticket_id"]), stored[mid][1:],
                             f"{mid}: every acknowledgement names the stored message")
            check_eq(len(stored), len(messages), "nothing but the posted messages")
            dups = sum(1 for acks in poster.acks.values() for x in acks if x["duplicate"])
            check(dups > 0, "some posts were answered as duplicates")

            # Every conversation is one ticket, and no two conversations share one.
            tickets = defaultdict(set)
            for mid, (conv, _) in messages.items():
                tickets[conv].add(stored[mid][2])
            for conv, ts in tickets.items():
                check_eq(len(ts), 1, f"conversation {conv} is one ticket")
            check_eq(len({min(ts) for ts in tickets.values()}), len(tickets),
                     "conversations are separate tickets")

            # The change feed: seqs 1..N without a gap, as every node reads it.
            events = a.get_json("/api/events?after=0&limit=1000")["events"]
            check_eq([e["seq"] for e in events], list(range(1, len(events) + 1)),
                     "change feed without gaps")

            # Every event reached the CRM, including those node b had claimed when it died.
            want = {e["seq"] for e in events}

            def all_delivered():
                rows = psql(db, "SELECT seq, id, status FROM deliveries")
                return len(rows) == len(want) and all(r[2] == "delivered" for r in rows) and rows
            rows = wait_until(all_delivered, timeout=90, what="every delivery delivered")
            check_eq({int(r[0]) for r in rows}, want, "one delivery per event")
            got = {rec.delivery for rec in recv.snapshot() if rec.ok}
            check_eq(sorted({r[1] for r in rows} - got), [], "every delivery reached the CRM")
            check(taken_over, "node b died holding claims")
            by_id = {r[1]: r for r in rows}
            for dlv in taken_over:
                check_eq(by_id[dlv][2], "delivered", f"{dlv}, claimed by the dead node, delivered")

            # In order per ticket: each ticket's deliveries were first received in seq order.
            seq_of = {r[1]: int(r[0]) for r in rows}
            first_seen = {}
            for rec in recv.snapshot():
                if rec.ok and rec.delivery not in first_seen:
                    first_seen[rec.delivery] = rec
            by_ticket = defaultdict(list)
            for dlv, rec in sorted(first_seen.items(), key=lambda kv: kv[1].arrived):
                by_ticket[rec.doc["ticket"]["id"]].append(seq_of[dlv])
            for t, seqs in by_ticket.items():
                check_eq(seqs, sorted(seqs), f"ticket {t}: deliveries in event order")
            print(f"{len(messages)} messages, {sum(len(x) for x in poster.acks.values())} acks "
                  f"({dups} duplicates), {poster.refused} refused by the dying node, "
                  f"{len(events)} events, {len(recv.snapshot())} CRM requests, {len(taken_over)} "
                  f"deliveries taken over from the dead node")
        finally:
            if b.proc:
                b.proc.kill()
                b.proc.wait()
            a.stop()


def test_one_hot_conversation_on_two_nodes():
    """Many replies of one conversation, each referencing the root and some siblings (so
    their Message-ID locks overlap in every order), at once on both nodes: all stored, no
    503 (groups never wait for a lock while holding one, so they cannot deadlock), one
    ticket."""
    skip_unless_postgres("several nodes share one PostgreSQL database")
    rng = random.Random(4)
    db = new_pg_database()
    with Server(db=db) as a, Server(db=db) as b:
        root = f"hot-root.{rng.getrandbits(32):x}@example.org"
        first = a.ingest(mail(root, "hot"))
        ids = [f"hot{k}.{rng.getrandbits(32):x}@example.org" for k in range(80)]
        jobs = []
        for k, mid in enumerate(ids):
            siblings = rng.sample(ids, 4)  # in both directions: cycles if locks waited
            data = mail(mid, "Re: hot", refs=[root] + siblings, reply_to=root)
            jobs.append((a if k % 2 else b, mid, data))
        poster = Poster()
        t0 = time.monotonic()
        poster.all(jobs)
        took = time.monotonic() - t0
        check_eq(poster.refused, 0, "every reply stored at the first attempt")
        tickets = {acks[0]["ticket_id"] for acks in poster.acks.values()}
        check_eq(tickets, {first["ticket_id"]}, "one ticket")
        check(took < 30, f"{len(ids)} replies took {took:.1f}s")
        for node in (a, b):
            check("deadlock" not in node.log_text(), "no group waited for a lock it could not get")
        print(f"{len(ids)} overlapping replies on two nodes in {took:.2f}s")


def test_long_poll_on_one_node_wakes_for_a_commit_on_the_other():
    skip_unless_postgres("several nodes share one PostgreSQL database")
    db = new_pg_database()
    with Server(db=db) as a, Server(db=db) as b:
        b.ingest(make_mail(subject="first"))
        last = a.get_json("/api/events?after=0")["last_seq"]
        check_eq(last, 2, "node a reads what node b committed")
        result = {}

        def poll():
            t0 = time.monotonic()
            result["doc"] = a.get_json(f"/api/events?after={last}&wait=20")
            result["took"] = time.monotonic() - t0
        waiter = threading.Thread(target=poll)
        waiter.start()
        time.sleep(0.5)  # the long poll is waiting on node a
        b.ingest(make_mail(subject="second"))
        waiter.join(30)
        check_eq([e["seq"] for e in result["doc"]["events"]], [3, 4])
        # Woken by NOTIFY, not by the end of the wait (20 s).
        check(result["took"] < 5, f"the long poll on node a took {result['took']:.2f}s")
        print(f"long poll on node a answered {result['took'] - 0.5:.3f}s after node b's "
              f"commit began")


if __name__ == "__main__":
    run(globals())
