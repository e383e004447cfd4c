/* metrics.c: counters and fixed-bucket histograms (metrics.h). */
#include "metrics.h"

#include <stdatomic.h>

typedef struct counter_def {
  const char *name;
  const char *help;
} counter_def;

static const counter_def counter_defs[METRIC_COUNTER_COUNT] = {
    [METRIC_DELIVERIES_DELIVERED] = {"inboxd_deliveries_delivered_total",
                                     "Deliveries the receiver accepted (2xx)."},
    [METRIC_DELIVERIES_RETRIED] = {"inboxd_deliveries_retried_total",
                                   "Delivery attempts that failed and were rescheduled."},
    [METRIC_DELIVERIES_FAILED] = {"inboxd_deliveries_failed_total",
                                  "Deliveries given up: refused (4xx) or out of attempts."},
    [METRIC_MESSAGES_STORED] = {"inboxd_messages_stored_total",
                                "Messages committed by the ingress routes."},
    [METRIC_INGEST_DUPLICATES] = {"inboxd_ingest_duplicates_total",
                                  "Ingress posts recognised as already stored."},
    [METRIC_SEARCH_SCANS_ABANDONED] = {"inboxd_search_scans_abandoned_total",
                                       "Ticket searches whose scan in activity order ran past "
                                       "its budget and read the message index instead."},
    [METRIC_STORE_GROUPS] = {"inboxd_store_group_commits_total",
                             "Transactions of the writer, each committing every job that was "
                             "waiting (group commit)."},
    [METRIC_STORE_JOBS] = {"inboxd_store_jobs_total",
                           "Jobs the writer ran in those transactions (an ingest request, a "
                           "ticket change, an outbox step)."},
};

/* Upper bounds in seconds; +Inf is implicit. From a local receiver's milliseconds to a
 * CRM that was down for an hour. */
static const double bucket_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                       1,     2.5,    5,     10,   30,    60,   300, 900,  3600};
#define NBUCKETS (G_N_ELEMENTS(bucket_bounds) + 1)

typedef struct histogram_def {
  const char *name;
  const char *help;
} histogram_def;

static const histogram_def histogram_defs[METRIC_HISTOGRAM_COUNT] = {
    [METRIC_DELIVERY_LATENCY] = {"inboxd_delivery_latency_seconds",
                                 "Time from the event's commit to its successful delivery."},
    [METRIC_DELIVERY_ATTEMPT_TIME] = {"inboxd_delivery_attempt_duration_seconds",
                                      "Duration of one delivery request, any outcome."},
    [METRIC_STORE_GROUP_TIME] = {"inboxd_store_group_commit_duration_seconds",
                                 "Duration of one writer transaction: its jobs, the commit "
                                 "and its fsync."},
};

typedef struct histogram {
  atomic_uint_fast64_t buckets[NBUCKETS]; /* not cumulative; summed when rendered */
  atomic_uint_fast64_t sum_us;
} histogram;

static atomic_uint_fast64_t counters[METRIC_COUNTER_COUNT];
static histogram histograms[METRIC_HISTOGRAM_COUNT];

void
metrics_add(metric_counter c, uint64_t n)
{
  if ((unsigned)c < METRIC_COUNTER_COUNT)
    atomic_fetch_add_explicit(&counters[c], n, memory_order_relaxed);
}

uint64_t
metrics_get(metric_counter c)
{
  return (unsigned)c < METRIC_COUNTER_COUNT
             ? atomic_load_explicit(&counters[c], memory_order_relaxed)
             : 0;
}

void
metrics_observe(metric_histogram h, double seconds)
{
  if ((unsigned)h >= METRIC_HISTOGRAM_COUNT)
    return;
  if (!(seconds > 0)) /* also NaN */
    seconds = 0;
  size_t i = 0;
  while (i < G_N_ELEMENTS(bucket_bounds) && seconds > bucket_bounds[i])
    i++;
  histogram *hg = &histograms[h];
  atomic_fetch_add_explicit(&hg->buckets[i], 1, memory_order_relaxed);
  /* Microseconds as an integer: atomic without a lock; about 584,000 years to wrap. */
  double us = seconds * 1e6;
  atomic_fetch_add_explicit(&hg->sum_us, us < 1.8e19 ? (uint64_t)us : UINT64_MAX / 2,
                            memory_order_relaxed);
}

/* A number as Prometheus reads it ("0.005", "3600", "12"), locale-independent. */
static void
append_number(GString *out, double v)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE];
  g_string_append(out, g_ascii_formatd(buf, sizeof buf, "%.15g", v));
}

void
metrics_render(GString *out)
{
  for (int c = 0; c < METRIC_COUNTER_COUNT; c++)
    g_string_append_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %" G_GUINT64_FORMAT "\n",
                           counter_defs[c].name, counter_defs[c].help, counter_defs[c].name,
                           counter_defs[c].name, (guint64)metrics_get((metric_counter)c));
  for (int h = 0; h < METRIC_HISTOGRAM_COUNT; h++) {
    const char *name = histogram_defs[h].name;
    histogram *hg = &histograms[h];
    g_string_append_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, histogram_defs[h].help,
                           name);
    /* Concurrent observations may land between these loads; the count line is the sum
     * of the buckets read, so every scrape is self-consistent. */
    uint64_t cumulative = 0;
    for (size_t i = 0; i < NBUCKETS; i++) {
      cumulative += atomic_load_explicit(&hg->buckets[i], memory_order_relaxed);
      g_string_append_printf(out, "%s_bucket{le=\"", name);
      if (i < G_N_ELEMENTS(bucket_bounds))
        append_number(out, bucket_bounds[i]);
      else
        g_string_append(out, "+Inf");
      g_string_append_printf(out, "\"} %" G_GUINT64_FORMAT "\n", (guint64)cumulative);
    }
    g_string_append_printf(out, "%s_sum ", name);
    append_number(out, (double)atomic_load_explicit(&hg->sum_us, memory_order_relaxed) / 1e6);
    g_string_append_printf(out, "\n%s_count %" G_GUINT64_FORMAT "\n", name, (guint64)cumulative);
  }
}

void
metrics_render_gauge(GString *out, const char *name, const char *help, double value)
{
  g_string_append_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s ", name, help, name, name);
  append_number(out, value);
  g_string_append_c(out, '\n');
}

void
metrics_reset(void)
{
  for (int c = 0; c < METRIC_COUNTER_COUNT; c++)
    atomic_store(&counters[c], 0);
  for (int h = 0; h < METRIC_HISTOGRAM_COUNT; h++) {
    for (size_t i = 0; i < NBUCKETS; i++)
      atomic_store(&histograms[h].buckets[i], 0);
    atomic_store(&histograms[h].sum_us, 0);
  }
}
