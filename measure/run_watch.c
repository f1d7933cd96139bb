/* Run watcher (see run_watch.h).  The thread sleeps on a condition variable
 * between polls so that stopping it is immediate; the callback runs outside
 * the watcher's lock. */
#include "measure/run_watch.h"
#include "base/error.h"
#include "base/json.h"
#include "base/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct measure_run_watch {
	measure_run_watch_options o;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int stop;              /* guarded by lock */
};

/* 1 and the reason when the stored run is in one of the watched states. */
static int stored_stop(measure_run_watch *w, char *reason, size_t size)
{
	json_t *row = NULL;
	if (store_run_get(w->o.store, w->o.run_id, &row) < 0)
		return 0;
	store_run_state state = store_run_state_of(row);
	int hit = state != STORE_RUN_UNKNOWN && (w->o.state_set & STORE_RUN_IN(state)) != 0;
	if (hit) {
		const char *why = base_json_str(row, "reason");
		snprintf(reason, size, "%s", why && *why ? why : store_run_state_name(state));
	}
	json_decref(row);
	return hit;
}

static void *watch_main(void *arg)
{
	measure_run_watch *w = arg;
	pthread_mutex_lock(&w->lock);
	while (!w->stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)w->o.period_ms * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		if (pthread_cond_timedwait(&w->cond, &w->lock, &ts) != ETIMEDOUT || w->stop)
			continue;
		pthread_mutex_unlock(&w->lock);
		char reason[256] = "";
		int hit = 1;
		measure_watch_cause cause;
		if (w->o.ext_cancel && *w->o.ext_cancel) {
			cause = MEASURE_WATCH_EXTERNAL;
			snprintf(reason, sizeof(reason), "cancelled");
		} else if (w->o.stopping && atomic_load(w->o.stopping)) {
			cause = MEASURE_WATCH_SHUTDOWN;
			snprintf(reason, sizeof(reason), "perfbot is shutting down");
		} else {
			cause = MEASURE_WATCH_STORE;
			hit = stored_stop(w, reason, sizeof(reason));
		}
		if (hit) {
			w->o.fn(cause, reason, w->o.payload);
			return NULL;
		}
		pthread_mutex_lock(&w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

int measure_run_watch_start(measure_run_watch **out, const measure_run_watch_options *opts)
{
	*out = NULL;
	measure_run_watch *w = calloc(1, sizeof(*w));
	if (!w)
		return base_error_set(BASE_ENOMEM, "out of memory");
	w->o = *opts;
	if (w->o.period_ms <= 0)
		w->o.period_ms = 250;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
		char id[24];
		snprintf(id, sizeof(id), "%lld", (long long)opts->run_id);
		base_log(BASE_LOG_WARN, "cannot start a run's watcher: it can only stop at its end", "run", id, NULL);
		pthread_mutex_destroy(&w->lock);
		pthread_cond_destroy(&w->cond);
		free(w);
		return 0;
	}
	*out = w;
	return 0;
}

void measure_run_watch_stop(measure_run_watch *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = 1;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	free(w);
}
