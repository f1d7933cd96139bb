/* Prometheus metrics: counters, gauges and histograms registered by name
 * and label set, updated lock-free (atomics), rendered in the text format
 * for GET /metrics.  Handles stay valid for the process lifetime. */
#ifndef APP_METRICS_H
#define APP_METRICS_H

#include "app/buf.h"

typedef struct app_metric app_metric;

/* Looks up or creates a series.  labels is the Prometheus label text
 * without braces ("event=\"push\",outcome=\"accepted\"") or NULL.  Never
 * returns NULL (falls back to a shared sink when out of memory). */
app_metric *app_metric_counter(const char *name, const char *help, const char *labels);
app_metric *app_metric_gauge(const char *name, const char *help, const char *labels);
/* Buckets in seconds: 0.0005 .. 10. */
app_metric *app_metric_histogram(const char *name, const char *help, const char *labels);

void app_metric_add(app_metric *m, double v);   /* counters and gauges */
void app_metric_set(app_metric *m, double v);   /* gauges */
void app_metric_observe(app_metric *m, double v); /* histograms */

/* Convenience: counter lookup + add in one call. */
void app_metric_count(const char *name, const char *help, const char *labels, double v);

/* Renders every series (text exposition format 0.0.4). */
int app_metrics_render(app_buf *out);

#endif
