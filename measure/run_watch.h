/* Watching a run while a job works on it.  A small thread asks the store
 * for the run's state every period, and looks at the server's draining flag
 * and an optional external cancel flag; the first time one of them says
 * stop, it calls the callback once (on the watcher thread) and ends.  Bench
 * runs and agent runs use it so that `/perfbot cancel`, a newer push or a
 * shutdown reaches a running sandbox within one period. */
#ifndef MEASURE_RUN_WATCH_H
#define MEASURE_RUN_WATCH_H

#include <stdatomic.h>
#include <stdint.h>

#include "store/store.h"

typedef enum {
	MEASURE_WATCH_STORE,     /* the run's state in the store is one of the watched states */
	MEASURE_WATCH_SHUTDOWN,  /* the server is draining */
	MEASURE_WATCH_EXTERNAL   /* the external cancel flag was raised */
} measure_watch_cause;

/* reason: the run's stored reason (or its state) for MEASURE_WATCH_STORE,
 * "perfbot is shutting down" or "cancelled" otherwise; borrowed for the call. */
typedef void (*measure_watch_fn)(measure_watch_cause cause, const char *reason, void *payload);

typedef struct measure_run_watch_options {
	store *store;                      /* borrowed */
	int64_t run_id;
	unsigned state_set;                /* states that mean stop: STORE_RUN_IN(STORE_RUN_CANCELLED) | ... */
	const atomic_int *stopping;        /* the server's draining flag; may be NULL */
	const atomic_int *ext_cancel;    /* may be NULL */
	int period_ms;
	measure_watch_fn fn;
	void *payload;
} measure_run_watch_options;

typedef struct measure_run_watch measure_run_watch;

/* Starts watching.  The run stops in a state of state_set.  When the
 * thread cannot start, *out is NULL and the run simply cannot be stopped
 * early (a warning is logged). */
int measure_run_watch_start(measure_run_watch **out, const measure_run_watch_options *opts);

/* Stops the watcher and waits for it (the callback never runs after this
 * returns); accepts NULL. */
void measure_run_watch_stop(measure_run_watch *w);

#endif
