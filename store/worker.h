/* The worker pool: threads that claim jobs from the store with a lease, run
 * the handler registered for the job's kind, and record the outcome.  Two
 * sets of threads share the queue: bench threads (BENCH_WORKERS) run only
 * the kinds registered with store_workers_register_bench (benchmarks, agent
 * runs: long and sandbox-heavy), the others (WORKERS) run every other kind
 * and never one of those, so webhook events, comment commands and pull
 * request jobs never wait behind a benchmark.  With no bench threads every
 * kind runs on the others.  A failing job is retried with exponential backoff up to
 * JOB_ATTEMPTS tries, then marked failed with its error.  A job kind with no
 * handler ends "done" with the note "no handler".  A heartbeat thread
 * extends the leases of running jobs, so only a dead process loses them.
 * A listener thread waits on store_wait_for_job and wakes idle threads when
 * any process sharing the store queues a job. */
#ifndef STORE_WORKER_H
#define STORE_WORKER_H

#include <stdatomic.h>
#include <stdint.h>

#include "store/store.h"

typedef struct store_workers store_workers;

typedef struct store_job_ctx {
	store *store;               /* borrowed */
	const store_job *job;       /* borrowed: id, kind, payload, delivery_id, attempts */
	int final_attempt;          /* 1 when a failure now is final; a handler may set
				     * it before failing to fail for good (no retry) */
	char note[256];             /* optional outcome note set by the handler */
	int64_t retry_at_ms;        /* a handler returning BASE_ERETRY may set when to retry */
	const atomic_int *stopping; /* non-zero when the process is draining */
	const char *owner;          /* the lease holder, "<host>:<pid>:<n>" (borrowed) */
} store_job_ctx;

/* Returns 0 when the job is done, a negative code when it failed
 * (base_error_last() says why; retried unless it was the last attempt). */
typedef int (*store_job_handler)(store_job_ctx *ctx, void *payload);

typedef struct store_workers_options {
	int nthreads;              /* threads for every kind but the bench kinds */
	int bench_threads;         /* threads for the bench kinds only; 0: none, the
				    * bench kinds run on the nthreads */
	int64_t lease_ms;
	int max_attempts;
	int poll_ms;               /* idle poll interval (wake-ups make it rarely matter) */
} store_workers_options;

int store_workers_new(store_workers **out, store *st, const store_workers_options *opts);
/* Registers a handler for a kind (exact), or for every kind starting with
 * the prefix when kind ends in '*'.  Before start only. */
int store_workers_register(store_workers *w, const char *kind, store_job_handler fn, void *payload);
/* The same for a kind (exact) whose jobs run on the bench threads only. */
int store_workers_register_bench(store_workers *w, const char *kind, store_job_handler fn, void *payload);
int store_workers_start(store_workers *w);
/* Wakes idle workers: new jobs are queued. Safe from any thread. */
void store_workers_wake(store_workers *w);
/* Number of workers running a job right now. */
int store_workers_busy(store_workers *w);
int store_workers_running(store_workers *w);
/* Stops claiming, waits up to grace_ms for running jobs, then releases the
 * leases of those still running (they are claimed again on restart). */
void store_workers_stop(store_workers *w, int grace_ms);
void store_workers_free(store_workers *w);

#endif
