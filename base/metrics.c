/* Prometheus metrics registry (see metrics.h).  Series are created under a
 * mutex and never freed; updates are lock-free: values are doubles stored
 * as atomic 64-bit integers of their bit pattern, updated by CAS loops.
 * Histograms keep cumulative-at-render bucket counters. */
#include "base/metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum mtype { M_COUNTER, M_GAUGE, M_HISTOGRAM };

static const double buckets[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

struct base_metric {
	struct base_metric *next;
	enum mtype type;
	char *name;
	char *help;
	char *labels;
	_Atomic uint64_t value;            /* double bits: counter/gauge value, histogram sum */
	_Atomic uint64_t count;            /* histogram observations */
	_Atomic uint64_t bucket[NBUCKETS]; /* histogram: observations <= bucket bound (non-cumulative) */
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct base_metric *registry;
static struct base_metric sink;

static double bits_to_double(uint64_t b)
{
	double d;
	memcpy(&d, &b, sizeof(d));
	return d;
}

static uint64_t double_to_bits(double d)
{
	uint64_t b;
	memcpy(&b, &d, sizeof(b));
	return b;
}

static void atomic_add_double(_Atomic uint64_t *p, double v)
{
	uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(p, &old, double_to_bits(bits_to_double(old) + v),
						      memory_order_relaxed, memory_order_relaxed))
		;
}

static int same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static base_metric *lookup(enum mtype type, const char *name, const char *help, const char *labels)
{
	pthread_mutex_lock(&reg_lock);
	struct base_metric *m;
	for (m = registry; m; m = m->next)
		if (m->type == type && strcmp(m->name, name) == 0 && same(m->labels, labels && *labels ? labels : NULL))
			goto out;
	m = calloc(1, sizeof(*m));
	if (!m) {
		m = &sink;
		goto out;
	}
	m->type = type;
	m->name = strdup(name);
	m->help = strdup(help ? help : name);
	m->labels = labels && *labels ? strdup(labels) : NULL;
	if (!m->name || !m->help || (labels && *labels && !m->labels)) {
		free(m->name);
		free(m->help);
		free(m->labels);
		free(m);
		m = &sink;
		goto out;
	}
	/* keep series of one name together, appended after the last of them */
	struct base_metric **pp = &registry, **after = NULL;
	for (; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->name, name) == 0)
			after = &(*pp)->next;
	if (after) {
		m->next = *after;
		*after = m;
	} else {
		*pp = m;
	}
out:
	pthread_mutex_unlock(&reg_lock);
	return m;
}

base_metric *base_metric_counter(const char *name, const char *help, const char *labels)
{
	return lookup(M_COUNTER, name, help, labels);
}

base_metric *base_metric_gauge(const char *name, const char *help, const char *labels)
{
	return lookup(M_GAUGE, name, help, labels);
}

base_metric *base_metric_histogram(const char *name, const char *help, const char *labels)
{
	return lookup(M_HISTOGRAM, name, help, labels);
}

void base_metric_add(base_metric *m, double v)
{
	atomic_add_double(&m->value, v);
}

void base_metric_set(base_metric *m, double v)
{
	atomic_store_explicit(&m->value, double_to_bits(v), memory_order_relaxed);
}

void base_metric_observe(base_metric *m, double v)
{
	atomic_add_double(&m->value, v);
	atomic_fetch_add_explicit(&m->count, 1, memory_order_relaxed);
	for (size_t i = 0; i < NBUCKETS; i++) {
		if (v <= buckets[i]) {
			atomic_fetch_add_explicit(&m->bucket[i], 1, memory_order_relaxed);
			break;
		}
	}
}

void base_metric_count(const char *name, const char *help, const char *labels, double v)
{
	base_metric_add(base_metric_counter(name, help, labels), v);
}

static int labelled(base_buf *out, const char *name, const char *suffix, const char *labels, const char *extra)
{
	int error = base_buf_printf(out, "%s%s", name, suffix);
	if (error < 0)
		return error;
	if (labels || extra)
		error = base_buf_printf(out, "{%s%s%s}", labels ? labels : "", labels && extra ? "," : "", extra ? extra : "");
	return error;
}

int base_metrics_render(base_buf *out)
{
	int error = 0;
	const char *last = "";
	pthread_mutex_lock(&reg_lock);
	for (struct base_metric *m = registry; m && error == 0; m = m->next) {
		if (strcmp(last, m->name) != 0) {
			static const char *types[] = { "counter", "gauge", "histogram" };
			error = base_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name, types[m->type]);
			last = m->name;
		}
		if (error < 0)
			break;
		double v = bits_to_double(atomic_load(&m->value));
		if (m->type != M_HISTOGRAM) {
			if ((error = labelled(out, m->name, "", m->labels, NULL)) < 0)
				break;
			error = base_buf_printf(out, " %.17g\n", v);
			continue;
		}
		uint64_t cum = 0;
		for (size_t i = 0; i < NBUCKETS && error == 0; i++) {
			char le[48];
			cum += atomic_load(&m->bucket[i]);
			snprintf(le, sizeof(le), "le=\"%g\"", buckets[i]);
			if ((error = labelled(out, m->name, "_bucket", m->labels, le)) == 0)
				error = base_buf_printf(out, " %llu\n", (unsigned long long)cum);
		}
		uint64_t count = atomic_load(&m->count);
		if (error == 0 && (error = labelled(out, m->name, "_bucket", m->labels, "le=\"+Inf\"")) == 0)
			error = base_buf_printf(out, " %llu\n", (unsigned long long)count);
		if (error == 0 && (error = labelled(out, m->name, "_sum", m->labels, NULL)) == 0)
			error = base_buf_printf(out, " %.17g\n", v);
		if (error == 0 && (error = labelled(out, m->name, "_count", m->labels, NULL)) == 0)
			error = base_buf_printf(out, " %llu\n", (unsigned long long)count);
	}
	pthread_mutex_unlock(&reg_lock);
	return error;
}
