/* test_metrics: counters and histograms are exact under concurrent updates, buckets are
 * cumulative with the right boundaries, and the text is Prometheus exposition format. */
#include <glib.h>
#include <pthread.h>
#include <string.h>

#include "check.h"
#include "metrics.h"

enum { THREADS = 8, PER_THREAD = 20000 };

static void *
hammer(void *arg)
{
  for (int i = 0; i < PER_THREAD; i++) {
    metrics_add(METRIC_DELIVERIES_DELIVERED, 1);
    metrics_observe(METRIC_DELIVERY_LATENCY, (i % 4) * 0.5); /* 0, 0.5, 1, 1.5 s */
  }
  return NULL;
}

/* The value of the sample line that starts with PREFIX (name and labels), or -1. */
static double
sample(const char *text, const char *prefix)
{
  char **lines = g_strsplit(text, "\n", -1);
  double v = -1;
  size_t n = strlen(prefix);
  for (char **l = lines; *l; l++)
    if (strncmp(*l, prefix, n) == 0 && (*l)[n] == ' ')
      v = g_ascii_strtod(*l + n + 1, NULL);
  g_strfreev(lines);
  return v;
}

static void
test_concurrent_updates(void)
{
  metrics_reset();
  pthread_t th[THREADS];
  for (int i = 0; i < THREADS; i++)
    pthread_create(&th[i], NULL, hammer, NULL);
  for (int i = 0; i < THREADS; i++)
    pthread_join(th[i], NULL);
  CHECK_INT(metrics_get(METRIC_DELIVERIES_DELIVERED), THREADS * PER_THREAD);

  GString *out = g_string_new(NULL);
  metrics_render(out);
  const char *t = out->str;
  const double total = THREADS * PER_THREAD;
  CHECK(sample(t, "inboxd_deliveries_delivered_total") == total);
  CHECK(sample(t, "inboxd_delivery_latency_seconds_count") == total);
  CHECK(sample(t, "inboxd_delivery_latency_seconds_bucket{le=\"0.001\"}") == total / 4);
  CHECK(sample(t, "inboxd_delivery_latency_seconds_bucket{le=\"0.25\"}") == total / 4);
  CHECK(sample(t, "inboxd_delivery_latency_seconds_bucket{le=\"0.5\"}") == total / 2);
  CHECK(sample(t, "inboxd_delivery_latency_seconds_bucket{le=\"1\"}") == total * 3 / 4);
  CHECK(sample(t, "inboxd_delivery_latency_seconds_bucket{le=\"2.5\"}") == total);
  CHECK(sample(t, "inboxd_delivery_latency_seconds_bucket{le=\"3600\"}") == total);
  CHECK(sample(t, "inboxd_delivery_latency_seconds_bucket{le=\"+Inf\"}") == total);
  double sum = sample(t, "inboxd_delivery_latency_seconds_sum");
  CHECK(sum > total * 0.75 - 0.01 && sum < total * 0.75 + 0.01);
  CHECK(strstr(t, "# TYPE inboxd_delivery_latency_seconds histogram\n") != NULL);
  CHECK(strstr(t, "# TYPE inboxd_deliveries_retried_total counter\n") != NULL);
  CHECK(strstr(t, "# HELP inboxd_deliveries_failed_total ") != NULL);
  CHECK(sample(t, "inboxd_messages_stored_total") == 0);
  CHECK(sample(t, "inboxd_ingest_duplicates_total") == 0);
  /* Buckets never decrease. */
  char **lines = g_strsplit(t, "\n", -1);
  double prev = -1;
  for (char **l = lines; *l; l++) {
    if (!g_str_has_prefix(*l, "inboxd_delivery_attempt_duration_seconds_bucket") &&
        !g_str_has_prefix(*l, "inboxd_delivery_latency_seconds_bucket"))
      continue;
    if (strstr(*l, "le=\"0.001\""))
      prev = -1;
    double v = g_ascii_strtod(strrchr(*l, ' ') + 1, NULL);
    CHECK(v >= prev);
    prev = v;
  }
  g_strfreev(lines);
  g_string_free(out, TRUE);
}

static void
test_edges_and_gauges(void)
{
  metrics_reset();
  metrics_observe(METRIC_DELIVERY_ATTEMPT_TIME, -1);    /* counted as 0 */
  metrics_observe(METRIC_DELIVERY_ATTEMPT_TIME, 0.001); /* on a boundary: le="0.001" */
  metrics_observe(METRIC_DELIVERY_ATTEMPT_TIME, 1e9);   /* past the last bound */
  metrics_add(METRIC_INGEST_DUPLICATES, 3);
  GString *out = g_string_new(NULL);
  metrics_render(out);
  metrics_render_gauge(out, "inboxd_delivery_queue_depth", "Queue.", 42);
  metrics_render_gauge(out, "inboxd_delivery_oldest_pending_age_seconds", "Age.", 1.5);
  const char *t = out->str;
  CHECK(sample(t, "inboxd_delivery_attempt_duration_seconds_bucket{le=\"0.001\"}") == 2);
  CHECK(sample(t, "inboxd_delivery_attempt_duration_seconds_bucket{le=\"3600\"}") == 2);
  CHECK(sample(t, "inboxd_delivery_attempt_duration_seconds_bucket{le=\"+Inf\"}") == 3);
  CHECK(sample(t, "inboxd_ingest_duplicates_total") == 3);
  CHECK(sample(t, "inboxd_delivery_queue_depth") == 42);
  CHECK(sample(t, "inboxd_delivery_oldest_pending_age_seconds") == 1.5);
  CHECK(strstr(t, "# TYPE inboxd_delivery_queue_depth gauge\n") != NULL);
  /* Every line is a comment or "name[{labels}] value". */
  char **lines = g_strsplit(t, "\n", -1);
  for (char **l = lines; *l; l++) {
    if (!**l || **l == '#')
      continue;
    CHECK(g_regex_match_simple("^[a-z_]+(\\{le=\"[0-9.+Inf]+\"\\})? [0-9.e+-]+$", *l, 0, 0));
  }
  g_strfreev(lines);
  g_string_free(out, TRUE);
}

int
main(void)
{
  test_concurrent_updates();
  test_edges_and_gauges();
  return check_done();
}
