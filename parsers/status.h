/* status.h: the one status type of inboxd. Every module converts its library's
 * convention (MHD_YES/NO, CURLcode, SQLITE_*, jansson's -1, GMime's NULL) into an
 * ib_status at the call site, so callers only ever see these values. */
#ifndef INBOXD_STATUS_H
#define INBOXD_STATUS_H

typedef enum ib_status {
  IB_OK = 0,
  IB_ERR_INVALID,     /* malformed input: the request will never succeed as sent */
  IB_ERR_NOT_MAIL,    /* the input is not an email message at all */
  IB_ERR_LIMIT,       /* a configured limit (size, depth, count) was exceeded */
  IB_ERR_AUTH,        /* missing or wrong credentials or signature */
  IB_ERR_FORBIDDEN,   /* authenticated, but not allowed (read-only token, topic) */
  IB_ERR_NOT_FOUND,   /* no such object */
  IB_ERR_CONFLICT,    /* the request conflicts with stored state (e.g. a replay) */
  IB_ERR_UNSUPPORTED, /* a valid request we do not handle (media type, variant) */
  IB_ERR_STORAGE,     /* transient storage trouble: retry later */
  IB_ERR_IO,          /* an operating-system call failed */
  IB_ERR_NOMEM,       /* an allocation failed */
  IB_ERR_INTERNAL,    /* a bug: an invariant of ours does not hold */
  IB_STATUS_COUNT
} ib_status;

/* Return a short constant snake_case name for ST ("ok", "invalid", ...). Never NULL. */
const char *ib_status_str(ib_status st);

#endif
