/* Prometheus metrics: counters, gauges and histograms registered by name
 * and label set, updated lock-free (atomics), rendered in the text format
 * for GET /metrics.  Handles stay valid for the process lifetime. */
#ifndef BASE_METRICS_H
#define BASE_METRICS_H

#include "base/buf.h"

typedef struct base_metric base_metric;

/* Looks up or creates a series.  labels is the Prometheus label text
 * without braces ("event=\"push\",outcome=\"accepted\"") or NULL.  Never
 * returns NULL (falls back to a shared sink when out of memory). */
base_metric *base_metric_counter(const char *name, const char *help, const char *labels);
base_metric *base_metric_gauge(const char *name, const char *help, const char *labels);
/* Buckets in seconds: 0.0005 .. 10. */
base_metric *base_metric_histogram(const char *name, const char *help, const char *labels);

void base_metric_add(base_metric *m, double v);   /* counters and gauges */
void base_metric_set(base_metric *m, double v);   /* gauges */
void base_metric_observe(base_metric *m, double v); /* histograms */

/* Convenience: counter lookup + add in one call. */
void base_metric_count(const char *name, const char *help, const char *labels, double v);

/* Renders every series (text exposition format 0.0.4). */
int base_metrics_render(base_buf *out);

#endif
