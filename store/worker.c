/* Worker pool (see worker.h).  Each worker thread owns its claim loop; the
 * pool's mutex guards only the wake-up conditions (one per set of threads)
 * and the running set used by the heartbeat thread.  Owners are
 * "<host>:<pid>:<n>", so leases held by a process are recognisable in the
 * store.  The bench kinds are fixed before start; a bench thread claims only
 * them, any other thread everything else (store_job_claim_filtered). */
#include "store/worker.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "base/metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_HANDLERS 64
/* Nice value of the general workers' threads: while webhooks pour in, the
 * HTTP front (answering GitHub within its timeout) and the committer get
 * the cores first, and the jobs the deliveries queued catch up after the
 * burst.  Bench threads keep the default: they measure. */
#define GENERAL_NICE 10

struct handler {
	char *kind;
	int prefix;
	store_job_handler fn;
	void *payload;
	int bench;        /* runs on the bench threads */
};

enum { SET_GENERAL, SET_BENCH, NSETS };

/* One set of threads: its wake-up condition and pending wake-ups. */
struct thread_set {
	pthread_cond_t wake;
	int wakeups;      /* guarded by lock */
	int n;            /* threads in the set */
};

struct worker {
	store_workers *pool;
	pthread_t thread;
	int index;
	int set;          /* SET_GENERAL or SET_BENCH */
	char owner[128];
	int64_t job_id;   /* running job, 0 when idle; guarded by pool->lock */
};

struct store_workers {
	store *store;
	store_workers_options opts;
	struct handler handlers[MAX_HANDLERS];
	size_t nhandlers;
	struct worker *workers;
	int nworkers;
	const char *bench_kinds[MAX_HANDLERS + 1]; /* borrowed from handlers */
	store_job_filter filter[NSETS];            /* NULL kinds: no filter */
	pthread_t heartbeat;
	pthread_t listener;        /* wakes the idle threads on new jobs */
	int listening;
	pthread_mutex_t lock;
	struct thread_set sets[NSETS];
	atomic_int stopping;
	atomic_int busy;
	int started;
	int running;
};

int store_workers_new(store_workers **out, store *st, const store_workers_options *opts)
{
	store_workers *w = calloc(1, sizeof(*w));
	if (!w)
		return base_error_set(BASE_ENOMEM, "out of memory");
	w->store = st;
	w->opts = *opts;
	if (w->opts.nthreads < 1)
		w->opts.nthreads = 1;
	if (w->opts.lease_ms <= 0)
		w->opts.lease_ms = 300000;
	if (w->opts.max_attempts < 1)
		w->opts.max_attempts = 5;
	if (w->opts.poll_ms <= 0)
		w->opts.poll_ms = 500;
	if (w->opts.bench_threads < 0)
		w->opts.bench_threads = 0;
	pthread_mutex_init(&w->lock, NULL);
	for (int i = 0; i < NSETS; i++)
		pthread_cond_init(&w->sets[i].wake, NULL);
	atomic_init(&w->stopping, 0);
	atomic_init(&w->busy, 0);
	*out = w;
	return 0;
}

static int add_handler(store_workers *w, const char *kind, store_job_handler fn, void *payload, int bench)
{
	if (w->workers)
		return base_error_set(BASE_EINVALID, "job handlers are registered before the workers start");
	if (w->nhandlers >= MAX_HANDLERS)
		return base_error_set(BASE_ETOOBIG, "too many job handlers");
	struct handler *h = &w->handlers[w->nhandlers];
	size_t n = strlen(kind);
	h->prefix = n > 0 && kind[n - 1] == '*';
	h->kind = strndup(kind, h->prefix ? n - 1 : n);
	if (!h->kind)
		return base_error_set(BASE_ENOMEM, "out of memory");
	h->fn = fn;
	h->payload = payload;
	h->bench = bench;
	w->nhandlers++;
	return 0;
}

int store_workers_register(store_workers *w, const char *kind, store_job_handler fn, void *payload)
{
	return add_handler(w, kind, fn, payload, 0);
}

int store_workers_register_bench(store_workers *w, const char *kind, store_job_handler fn, void *payload)
{
	size_t n = strlen(kind);
	if (n == 0 || kind[n - 1] == '*')
		return base_error_set(BASE_EINVALID, "bench job kinds are exact, got \"%s\"", kind);
	return add_handler(w, kind, fn, payload, 1);
}

static const struct handler *find_handler(const store_workers *w, const char *kind)
{
	for (size_t i = 0; i < w->nhandlers; i++)
		if (!w->handlers[i].prefix && strcmp(w->handlers[i].kind, kind) == 0)
			return &w->handlers[i];
	for (size_t i = 0; i < w->nhandlers; i++)
		if (w->handlers[i].prefix && strncmp(kind, w->handlers[i].kind, strlen(w->handlers[i].kind)) == 0)
			return &w->handlers[i];
	return NULL;
}

static int64_t backoff_ms(int attempts)
{
	int64_t base = 1000;
	for (int i = 1; i < attempts && base < 300000; i++)
		base *= 2;
	if (base > 300000)
		base = 300000;
	return base / 2 + (int64_t)(rand() % (int)(base / 2 + 1)); /* jitter: 50-100% */
}

static void run_job(struct worker *wk, store_job *job)
{
	store_workers *w = wk->pool;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	store_job_ctx ctx = { .store = w->store, .job = job, .stopping = &w->stopping, .owner = wk->owner,
			    .final_attempt = job->attempts >= w->opts.max_attempts };
	const struct handler *h = find_handler(w, job->kind);
	int error = 0;
	base_error_clear();
	if (h)
		error = h->fn(&ctx, h->payload);
	else
		snprintf(ctx.note, sizeof(ctx.note), "no handler");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;

	const char *outcome;
	char errmsg[512] = "";
	if (error == 0) {
		outcome = "done";
		if (store_job_done(w->store, job->id, wk->owner, ctx.note[0] ? ctx.note : NULL) < 0)
			base_log(BASE_LOG_ERROR, "cannot record job outcome", "error", base_error_last(), NULL);
	} else {
		snprintf(errmsg, sizeof(errmsg), "%s", base_error_last()[0] ? base_error_last() : base_error_name(error));
		int64_t retry_at = 0;
		if (!ctx.final_attempt)
			retry_at = ctx.retry_at_ms > 0 ? ctx.retry_at_ms : base_wall_ms() + backoff_ms(job->attempts);
		outcome = retry_at ? "retry" : "failed";
		if (store_job_fail(w->store, job->id, wk->owner, errmsg, retry_at) < 0)
			base_log(BASE_LOG_ERROR, "cannot record job outcome", "error", base_error_last(), NULL);
	}
	char labels[160], id[32], attempts[16], ms[32];
	snprintf(labels, sizeof(labels), "kind=\"%s\",outcome=\"%s\"", job->kind, outcome);
	base_metric_count("perfbot_jobs_total", "Jobs run by kind and outcome", labels, 1);
	snprintf(labels, sizeof(labels), "kind=\"%s\"", job->kind);
	base_metric_observe(base_metric_histogram("perfbot_job_duration_seconds", "Job run time", labels), secs);
	snprintf(id, sizeof(id), "%lld", (long long)job->id);
	snprintf(attempts, sizeof(attempts), "%d", job->attempts);
	snprintf(ms, sizeof(ms), "%.1f", secs * 1000.0);
	base_log(error == 0 ? BASE_LOG_INFO : BASE_LOG_WARN, "job", "job", id, "kind", job->kind, "delivery",
		job->delivery_id, "status", outcome, "attempt", attempts, "duration_ms", ms, "note",
		ctx.note[0] ? ctx.note : NULL, "error", errmsg[0] ? errmsg : NULL, NULL);
}

static void *worker_main(void *arg)
{
	struct worker *wk = arg;
	store_workers *w = wk->pool;
	pthread_setname_np(pthread_self(), wk->set == SET_GENERAL ? "pb-job" : "pb-bench");
	srand((unsigned)(time(NULL) ^ (wk->index * 7919)));
	if (wk->set == SET_GENERAL) /* this thread only (Linux: nice is per thread) */
		setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), GENERAL_NICE);
	while (!atomic_load(&w->stopping)) {
		store_job job;
		const store_job_filter *f = w->filter[wk->set].kinds ? &w->filter[wk->set] : NULL;
		int error = store_job_claim_filtered(w->store, &job, wk->owner, w->opts.lease_ms, f);
		if (error == 0) {
			pthread_mutex_lock(&w->lock);
			wk->job_id = job.id;
			pthread_mutex_unlock(&w->lock);
			atomic_fetch_add(&w->busy, 1);
			run_job(wk, &job);
			atomic_fetch_sub(&w->busy, 1);
			pthread_mutex_lock(&w->lock);
			wk->job_id = 0;
			pthread_mutex_unlock(&w->lock);
			store_job_dispose(&job);
			continue;
		}
		if (error != BASE_ENOTFOUND)
			base_log(BASE_LOG_WARN, "cannot claim a job", "error", base_error_last(), NULL);
		struct thread_set *set = &w->sets[wk->set];
		pthread_mutex_lock(&w->lock);
		if (set->wakeups > 0) {
			set->wakeups--;
		} else if (!atomic_load(&w->stopping)) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += (long)(w->opts.poll_ms % 1000) * 1000000;
			ts.tv_sec += w->opts.poll_ms / 1000 + ts.tv_nsec / 1000000000;
			ts.tv_nsec %= 1000000000;
			pthread_cond_timedwait(&set->wake, &w->lock, &ts);
			if (set->wakeups > 0)
				set->wakeups--;
		}
		pthread_mutex_unlock(&w->lock);
	}
	return NULL;
}

static void *heartbeat_main(void *arg)
{
	store_workers *w = arg;
	pthread_setname_np(pthread_self(), "pb-heartbeat");
	int64_t period = w->opts.lease_ms / 3;
	if (period < 100)
		period = 100;
	int64_t next = base_wall_ms() + period;
	while (!atomic_load(&w->stopping)) {
		struct timespec ts = { 0, 50 * 1000000 };
		nanosleep(&ts, NULL);
		if (base_wall_ms() < next)
			continue;
		next = base_wall_ms() + period;
		for (int i = 0; i < w->nworkers; i++) {
			pthread_mutex_lock(&w->lock);
			int64_t id = w->workers[i].job_id;
			pthread_mutex_unlock(&w->lock);
			if (id)
				store_job_heartbeat(w->store, id, w->workers[i].owner, w->opts.lease_ms);
		}
	}
	return NULL;
}

/* Idle threads sleep until a job is queued: by this process, or with
 * PostgreSQL by any replica (LISTEN/NOTIFY); their poll_ms timeout only
 * catches jobs that become due later (a retry's backoff). */
static void *listener_main(void *arg)
{
	store_workers *w = arg;
	pthread_setname_np(pthread_self(), "pb-listen");
	while (!atomic_load(&w->stopping))
		if (store_wait_for_job(w->store, 250) > 0 && !atomic_load(&w->stopping))
			store_workers_wake(w);
	return NULL;
}

static void stop_listener(store_workers *w)
{
	if (w->listening)
		pthread_join(w->listener, NULL);
	w->listening = 0;
}

int store_workers_start(store_workers *w)
{
	char host[64] = "localhost";
	gethostname(host, sizeof(host) - 1);
	size_t nbench = 0;
	for (size_t i = 0; i < w->nhandlers; i++)
		if (w->handlers[i].bench)
			w->bench_kinds[nbench++] = w->handlers[i].kind;
	w->bench_kinds[nbench] = NULL;
	w->sets[SET_GENERAL].n = w->opts.nthreads;
	w->sets[SET_BENCH].n = 0;
	if (nbench > 0 && w->opts.bench_threads > 0) {
		/* the bench kinds run only on their own threads */
		w->sets[SET_BENCH].n = w->opts.bench_threads;
		w->filter[SET_GENERAL] = (store_job_filter){ .kinds = w->bench_kinds, .exclude = 1 };
		w->filter[SET_BENCH] = (store_job_filter){ .kinds = w->bench_kinds, .exclude = 0 };
	}
	w->nworkers = w->sets[SET_GENERAL].n + w->sets[SET_BENCH].n;
	w->workers = calloc((size_t)w->nworkers, sizeof(*w->workers));
	if (!w->workers)
		return base_error_set(BASE_ENOMEM, "out of memory");
	for (int i = 0; i < w->nworkers; i++) {
		struct worker *wk = &w->workers[i];
		wk->pool = w;
		wk->index = i;
		wk->set = i < w->sets[SET_GENERAL].n ? SET_GENERAL : SET_BENCH;
		snprintf(wk->owner, sizeof(wk->owner), "%s:%d:%d", host, (int)getpid(), i);
		if (pthread_create(&wk->thread, NULL, worker_main, wk) != 0) {
			atomic_store(&w->stopping, 1);
			for (int j = 0; j < i; j++)
				pthread_join(w->workers[j].thread, NULL);
			return base_error_set(BASE_EGENERIC, "cannot start worker threads");
		}
		w->running++;
	}
	if (pthread_create(&w->heartbeat, NULL, heartbeat_main, w) == 0)
		w->started = 1;
	if (pthread_create(&w->listener, NULL, listener_main, w) == 0)
		w->listening = 1;
	return 0;
}

void store_workers_wake(store_workers *w)
{
	/* one thread of each set looks: the job may belong to either */
	pthread_mutex_lock(&w->lock);
	for (int i = 0; i < NSETS; i++) {
		struct thread_set *set = &w->sets[i];
		if (set->n == 0)
			continue;
		if (set->wakeups < set->n)
			set->wakeups++;
		pthread_cond_signal(&set->wake);
	}
	pthread_mutex_unlock(&w->lock);
}

int store_workers_busy(store_workers *w)
{
	return atomic_load(&w->busy);
}

int store_workers_running(store_workers *w)
{
	return w->running && !atomic_load(&w->stopping) ? w->running : 0;
}

void store_workers_stop(store_workers *w, int grace_ms)
{
	if (!w || !w->workers)
		return;
	atomic_store(&w->stopping, 1);
	pthread_mutex_lock(&w->lock);
	for (int i = 0; i < NSETS; i++)
		pthread_cond_broadcast(&w->sets[i].wake);
	pthread_mutex_unlock(&w->lock);
	int64_t deadline = base_wall_ms() + grace_ms;
	while (atomic_load(&w->busy) > 0 && base_wall_ms() < deadline) {
		struct timespec ts = { 0, 20 * 1000000 };
		nanosleep(&ts, NULL);
	}
	if (w->started)
		pthread_join(w->heartbeat, NULL);
	w->started = 0;
	stop_listener(w);
	if (atomic_load(&w->busy) > 0) {
		/* jobs that outlive the grace period are handed back, not lost */
		for (int i = 0; i < w->nworkers; i++) {
			pthread_mutex_lock(&w->lock);
			int64_t id = w->workers[i].job_id;
			pthread_mutex_unlock(&w->lock);
			if (id) {
				store_job_release(w->store, w->workers[i].owner);
				char sid[32];
				snprintf(sid, sizeof(sid), "%lld", (long long)id);
				base_log(BASE_LOG_WARN, "job lease released at shutdown", "job", sid, NULL);
			}
		}
		return; /* the threads still running end with the process */
	}
	for (int i = 0; i < w->running; i++)
		pthread_join(w->workers[i].thread, NULL);
	w->running = 0;
}

void store_workers_free(store_workers *w)
{
	if (!w)
		return;
	if (w->running && atomic_load(&w->busy) == 0) {
		atomic_store(&w->stopping, 1);
		pthread_mutex_lock(&w->lock);
		for (int i = 0; i < NSETS; i++)
			pthread_cond_broadcast(&w->sets[i].wake);
		pthread_mutex_unlock(&w->lock);
		if (w->started)
			pthread_join(w->heartbeat, NULL);
		w->started = 0;
		stop_listener(w);
		for (int i = 0; i < w->running; i++)
			pthread_join(w->workers[i].thread, NULL);
		w->running = 0;
	}
	if (w->running)
		return; /* threads still inside a handler own the pool until exit */
	for (size_t i = 0; i < w->nhandlers; i++)
		free(w->handlers[i].kind);
	free(w->workers);
	pthread_mutex_destroy(&w->lock);
	for (int i = 0; i < NSETS; i++)
		pthread_cond_destroy(&w->sets[i].wake);
	free(w);
}
