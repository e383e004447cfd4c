/* test_forward_policy: the forwarder's pure policy: verdicts, backoff with full jitter
 * (bounds, doubling, one-hour cap, no overflow), Retry-After (seconds and the three
 * HTTP-date formats) and the Inboxd-Signature value. */
#include <glib.h>
#include <stdint.h>

#include "check.h"
#include "forward.h"

#define HOUR_MS (3600 * 1000)

static void
test_classify(void)
{
  CHECK_INT(forward_classify(1, 200), FORWARD_DELIVERED);
  CHECK_INT(forward_classify(1, 202), FORWARD_DELIVERED);
  CHECK_INT(forward_classify(1, 204), FORWARD_DELIVERED);
  CHECK_INT(forward_classify(1, 299), FORWARD_DELIVERED);
  /* Retried: no answer, server errors, timeouts and rate limits the receiver reports. */
  CHECK_INT(forward_classify(0, 0), FORWARD_RETRY);
  CHECK_INT(forward_classify(1, 500), FORWARD_RETRY);
  CHECK_INT(forward_classify(1, 502), FORWARD_RETRY);
  CHECK_INT(forward_classify(1, 503), FORWARD_RETRY);
  CHECK_INT(forward_classify(1, 599), FORWARD_RETRY);
  CHECK_INT(forward_classify(1, 408), FORWARD_RETRY);
  CHECK_INT(forward_classify(1, 429), FORWARD_RETRY);
  CHECK_INT(forward_classify(1, 301), FORWARD_RETRY);
  /* Every other 4xx: the receiver refused the event. */
  CHECK_INT(forward_classify(1, 400), FORWARD_REFUSED);
  CHECK_INT(forward_classify(1, 401), FORWARD_REFUSED);
  CHECK_INT(forward_classify(1, 403), FORWARD_REFUSED);
  CHECK_INT(forward_classify(1, 404), FORWARD_REFUSED);
  CHECK_INT(forward_classify(1, 410), FORWARD_REFUSED);
  CHECK_INT(forward_classify(1, 422), FORWARD_REFUSED);
  CHECK_INT(forward_classify(1, 499), FORWARD_REFUSED);
}

static void
test_backoff_ceiling(void)
{
  CHECK_INT(forward_backoff_ceiling(1000, 1), 1000);
  CHECK_INT(forward_backoff_ceiling(1000, 2), 2000);
  CHECK_INT(forward_backoff_ceiling(1000, 3), 4000);
  CHECK_INT(forward_backoff_ceiling(1000, 12), 2048000);
  CHECK_INT(forward_backoff_ceiling(1000, 13), HOUR_MS); /* 4,096,000 > one hour */
  CHECK_INT(forward_backoff_ceiling(1000, 30), HOUR_MS);
  CHECK_INT(forward_backoff_ceiling(1000, 1000000), HOUR_MS); /* no overflow */
  CHECK_INT(forward_backoff_ceiling(50, 4), 400);
  CHECK_INT(forward_backoff_ceiling(INT64_MAX / 2, 3), HOUR_MS);
  CHECK_INT(forward_backoff_ceiling(7200000, 1), HOUR_MS);
  CHECK_INT(forward_backoff_ceiling(0, 5), 0);
  /* Attempt 0 or below reads as the first. */
  CHECK_INT(forward_backoff_ceiling(1000, 0), 1000);
}

static void
test_backoff_full_jitter(void)
{
  /* Bounds: every delay is in [0, ceiling], the extremes included. */
  CHECK_INT(forward_backoff_delay(1000, 1, 0.0), 0);
  CHECK_INT(forward_backoff_delay(1000, 1, 0.9999999999), 1000);
  CHECK_INT(forward_backoff_delay(1000, 3, 0.5), 2000);
  CHECK_INT(forward_backoff_delay(1000, 40, 0.9999999999), HOUR_MS);
  CHECK_INT(forward_backoff_delay(1000, 1, -3.0), 0); /* out-of-range randoms clamp */
  CHECK_INT(forward_backoff_delay(1000, 1, 7.0), 1000);
  GRand *rand = g_rand_new_with_seed(42);
  for (int attempt = 1; attempt <= 20; attempt++) {
    int64_t ceiling = forward_backoff_ceiling(500, attempt);
    int64_t lo = INT64_MAX, hi = -1;
    double sum = 0;
    const int n = 4000;
    for (int i = 0; i < n; i++) {
      int64_t d = forward_backoff_delay(500, attempt, g_rand_double(rand));
      CHECK(d >= 0 && d <= ceiling);
      lo = MIN(lo, d);
      hi = MAX(hi, d);
      sum += (double)d;
    }
    /* Full jitter spreads over the whole range: near 0, near the ceiling, mean ~half. */
    CHECK(lo <= ceiling / 50);
    CHECK(hi >= ceiling - ceiling / 50);
    double mean = sum / n;
    CHECK(mean > ceiling * 0.45 && mean < ceiling * 0.55);
  }
  g_rand_free(rand);
}

static void
test_retry_after(void)
{
  int64_t d = -1;
  /* delay-seconds */
  CHECK_INT(forward_retry_after("120", 0, &d), 0);
  CHECK_INT(d, 120000);
  CHECK_INT(forward_retry_after(" 3 ", 0, &d), 0);
  CHECK_INT(d, 3000);
  CHECK_INT(forward_retry_after("0", 0, &d), 0);
  CHECK_INT(d, 0);
  CHECK_INT(forward_retry_after("99999999999999999999", 0, &d), 0);
  CHECK_INT(d, HOUR_MS); /* capped, no overflow */
  CHECK_INT(forward_retry_after("86400", 0, &d), 0);
  CHECK_INT(d, HOUR_MS);
  /* not a Retry-After */
  CHECK_INT(forward_retry_after(NULL, 0, &d), -1);
  CHECK_INT(forward_retry_after("", 0, &d), -1);
  CHECK_INT(forward_retry_after("   ", 0, &d), -1);
  CHECK_INT(forward_retry_after("-5", 0, &d), -1);
  CHECK_INT(forward_retry_after("1.5", 0, &d), -1);
  CHECK_INT(forward_retry_after("10 seconds", 0, &d), -1);
  CHECK_INT(forward_retry_after("soon", 0, &d), -1);

  /* HTTP-date, the three formats of RFC 9110, relative to NOW. 784111777 is
   * Sun, 06 Nov 1994 08:49:37 GMT. */
  const int64_t when = 784111777LL * 1000;
  CHECK_INT(forward_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", when - 30000, &d), 0);
  CHECK_INT(d, 30000);
  CHECK_INT(forward_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", when - 2500, &d), 0);
  CHECK_INT(d, 2500);
  CHECK_INT(forward_retry_after("Sun Nov  6 08:49:37 1994", when - 1000, &d), 0);
  CHECK_INT(d, 1000);
  /* In the past: now. Far ahead: capped at one hour. */
  CHECK_INT(forward_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", when + 60000, &d), 0);
  CHECK_INT(d, 0);
  CHECK_INT(forward_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", when - 86400000, &d), 0);
  CHECK_INT(d, HOUR_MS);
  CHECK_INT(forward_retry_after("Sun, 99 Foo 1994 88:49:37 GMT", when, &d), -1);
}

static void
test_signature(void)
{
  /* Reference value from Python: hmac.new(b"whsec_test", b'1700000000.{"a":1}',
   * hashlib.sha256).hexdigest() */
  char *sig = forward_signature("whsec_test", 1700000000, "{\"a\":1}", 7);
  CHECK_STR(sig, "t=1700000000,v1="
                 "38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789");
  g_free(sig);
  /* The body length is honoured (no reliance on a terminator). */
  sig = forward_signature("whsec_test", 1700000000, "{\"a\":1}trailing", 7);
  CHECK_STR(sig, "t=1700000000,v1="
                 "38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789");
  g_free(sig);
}

int
main(void)
{
  test_classify();
  test_backoff_ceiling();
  test_backoff_full_jitter();
  test_retry_after();
  test_signature();
  return check_done();
}
