/* subject.h: subject lines as the threader compares them. Reply and forward prefixes
 * in many languages ("Re:", "AW:", "回复：", "Réf. :", "Re[2]:") and list or gateway
 * tags ("[External]", "[SPAM]", "【list】") are noise for threading; the inboxd ticket
 * tag "[#123]" is a signal of its own, read by subject_ticket_tag().
 *
 * Decision: the normalized form DROPS every "[#<digits>]" tag, wherever it sits. The
 * customer's first mail ("Printer broken") carries no tag, while our replies and their
 * answers do ("Re: Printer broken [#42]"); keeping the tag would make the two forms
 * differ. The tag is matched separately and first. */
#ifndef INBOXD_SUBJECT_H
#define INBOXD_SUBJECT_H

/* Return SUBJECT without leading reply/forward prefixes and bracket tags (repeated and
 * mixed, in any order), without any "[#<digits>]" ticket tag and without a trailing
 * "(fwd)", with every run of Unicode white space or control characters collapsed to
 * one space, trimmed and in Unicode NFC. Case is kept (compare with subject_key()).
 * Invalid UTF-8 is repaired first. Returns a new string (g_free), never NULL: "" for
 * NULL, for an empty subject or one that is only prefixes and tags. */
char *subject_normalize(const char *subject);

/* Return the key two subjects are equal by for threading: subject_normalize() then
 * case-folded. Returns a new string (g_free), never NULL ("" means: no usable
 * subject, match nothing by it). */
char *subject_key(const char *subject);

/* Find the first inboxd ticket tag "[#<digits>]" in SUBJECT. Returns 1 and stores the
 * number in *TICKET_OUT (which may be NULL) when one holds a ticket number from 1 to
 * 10^18-1; returns 0 (and leaves *TICKET_OUT alone) when there is none or SUBJECT is
 * NULL. SUBJECT is borrowed. */
int subject_ticket_tag(const char *subject, long long *ticket_out);

/* Return 1 when SUBJECT starts (after white space and bracket tags) with at least one
 * reply or forward prefix, else 0 (also for NULL). SUBJECT is borrowed. */
int subject_has_reply_prefix(const char *subject);

#endif
