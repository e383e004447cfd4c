/* metrics.h: process-wide counters and histograms for GET /metrics (Prometheus text
 * format 0.0.4). Updates are lock-free atomic additions on fixed arrays: safe from any
 * thread, no allocation per observation. Gauges are computed when scraped and passed to
 * metrics_render_gauge(). */
#ifndef INBOXD_METRICS_H
#define INBOXD_METRICS_H

#include <glib.h>
#include <stdint.h>

typedef enum {
  METRIC_DELIVERIES_DELIVERED,   /* inboxd_deliveries_delivered_total */
  METRIC_DELIVERIES_RETRIED,     /* inboxd_deliveries_retried_total: attempts rescheduled */
  METRIC_DELIVERIES_FAILED,      /* inboxd_deliveries_failed_total: given up */
  METRIC_MESSAGES_STORED,        /* inboxd_messages_stored_total */
  METRIC_INGEST_DUPLICATES,      /* inboxd_ingest_duplicates_total */
  METRIC_SEARCH_SCANS_ABANDONED, /* inboxd_search_scans_abandoned_total (SQLite lists) */
  METRIC_STORE_GROUPS,           /* inboxd_store_group_commits_total: the writer's groups */
  METRIC_STORE_JOBS,             /* inboxd_store_jobs_total: jobs in those groups */
  METRIC_COUNTER_COUNT
} metric_counter;

typedef enum {
  METRIC_DELIVERY_LATENCY,      /* inboxd_delivery_latency_seconds: event to delivered */
  METRIC_DELIVERY_ATTEMPT_TIME, /* inboxd_delivery_attempt_duration_seconds: one request */
  METRIC_STORE_GROUP_TIME,      /* inboxd_store_group_commit_duration_seconds: one group */
  METRIC_HISTOGRAM_COUNT
} metric_histogram;

/* Add N to counter C. */
void metrics_add(metric_counter c, uint64_t n);

/* Record one observation of SECONDS (negative counts as 0) in histogram H. */
void metrics_observe(metric_histogram h, double seconds);

/* The current value of counter C (tests, logs). */
uint64_t metrics_get(metric_counter c);

/* Append every counter and histogram, with HELP and TYPE lines, to OUT. */
void metrics_render(GString *out);

/* Append one gauge NAME (with HELP) of VALUE to OUT. */
void metrics_render_gauge(GString *out, const char *name, const char *help, double value);

/* Zero everything (tests). */
void metrics_reset(void);

#endif
