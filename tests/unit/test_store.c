/* Unit tests: the SQLite store (deliveries, duplicate detection, job leases,
 * retries, release, dedupe keys, runs and their documents) and the worker
 * pool (handlers, "no handler", retry then failure, bench kinds on their
 * own threads). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "store/store.h"
#include "store/worker.h"

struct fixture {
	char dir[64];
	char url[128];
	store *st;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/perfbot-store-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->url, sizeof(f->url), "sqlite:%s/sub/perfbot.db", f->dir);
	assert_int_equal(store_open(&f->st, f->url), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	store_free(f->st);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void put(store *st, const char *id, const char *event, int njobs, int *dup)
{
	store_job_spec jobs[2] = { { "event.test", "{\"n\":1}" }, { "event.test", "{\"n\":2}" } };
	store_delivery d = { .id = id, .event = event, .action = "created", .installation_id = 7,
			     .repository = "acme/fast", .headers_json = "{}", .body = "{\"x\":1}", .body_len = 7,
			     .received_ms = now_ms(), .status = njobs ? "queued" : "ignored", .jobs = jobs,
			     .njobs = (size_t)njobs };
	assert_int_equal(store_delivery_put(st, &d, dup), 0);
}

/* store_delivery_put_async: done runs once per delivery, after the data is
 * on disk (readable from another connection), with the duplicate flag; a
 * closed store refuses at once. */
struct async_wait {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int calls;
};

static void async_done(store_delivery_async *a)
{
	struct async_wait *w = a->payload;
	pthread_mutex_lock(&w->lock);
	w->calls++;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static void test_delivery_put_async(void **state)
{
	struct fixture *f = *state;
	enum { N = 40 };
	struct async_wait w = { .calls = 0 };
	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.cond, NULL);
	static store_delivery d[N];
	static store_delivery_async a[N];
	static char ids[N][24]; /* "async-" and any int */
	store_job_spec job = { "event.test", "{}" };
	for (int i = 0; i < N; i++) {
		/* the last one repeats the first id */
		snprintf(ids[i], sizeof(ids[i]), "async-%d", i == N - 1 ? 0 : i);
		d[i] = (store_delivery){ .id = ids[i], .event = "push", .headers_json = "{}", .body = "{}", .body_len = 2,
					 .received_ms = now_ms(), .status = "queued", .jobs = &job, .njobs = 1 };
		a[i] = (store_delivery_async){ .d = &d[i], .done = async_done, .payload = &w };
	}
	for (int i = 0; i < N - 1; i++)
		assert_int_equal(store_delivery_put_async(f->st, &a[i]), 0);
	pthread_mutex_lock(&w.lock);
	while (w.calls < N - 1)
		pthread_cond_wait(&w.cond, &w.lock);
	pthread_mutex_unlock(&w.lock);
	assert_int_equal(store_delivery_put_async(f->st, &a[N - 1]), 0);
	pthread_mutex_lock(&w.lock);
	while (w.calls < N)
		pthread_cond_wait(&w.cond, &w.lock);
	pthread_mutex_unlock(&w.lock);
	for (int i = 0; i < N; i++) {
		assert_int_equal(a[i].error, 0);
		assert_int_equal(a[i].duplicate, i == N - 1);
	}
	/* on disk: another connection sees them all, each with its job */
	store *other = NULL;
	assert_int_equal(store_open(&other, f->url), 0);
	for (int i = 0; i < N - 1; i++)
		assert_int_equal(store_delivery_exists(other, ids[i]), 1);
	json_t *jobs = NULL;
	assert_int_equal(store_job_list(other, &jobs, 1000), 0);
	assert_int_equal(json_array_size(jobs), N - 1);
	json_decref(jobs);
	store_free(other);
	assert_int_equal(w.calls, N); /* exactly once each */
	pthread_cond_destroy(&w.cond);
	pthread_mutex_destroy(&w.lock);
}

static void test_deliveries(void **state)
{
	struct fixture *f = *state;
	int dup = -1;
	put(f->st, "a", "push", 1, &dup);
	assert_int_equal(dup, 0);
	put(f->st, "a", "push", 1, &dup);
	assert_int_equal(dup, 1);
	put(f->st, "b", "star", 0, &dup);
	assert_int_equal(store_delivery_exists(f->st, "a"), 1);
	assert_int_equal(store_delivery_exists(f->st, "zz"), 0);
	char *body = NULL;
	size_t len = 0;
	assert_int_equal(store_delivery_body(f->st, "a", &body, &len), 0);
	assert_int_equal(len, 7);
	assert_string_equal(body, "{\"x\":1}");
	free(body);
	assert_int_equal(store_delivery_body(f->st, "zz", &body, &len), BASE_ENOTFOUND);
	json_t *rows = NULL;
	assert_int_equal(store_delivery_list(f->st, &rows, 10, "push"), 0);
	assert_int_equal(json_array_size(rows), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 0), "repository")), "acme/fast");
	json_decref(rows);
	json_t *jobs = NULL;
	assert_int_equal(store_job_list(f->st, &jobs, 10), 0);
	assert_int_equal(json_array_size(jobs), 1); /* the duplicate added no job */
	json_decref(jobs);

	/* a delivery's status follows its job */
	store_job j;
	assert_int_equal(store_job_claim(f->st, &j, "w", 60000), 0);
	assert_int_equal(store_job_done(f->st, j.id, "w", NULL), 0);
	store_job_dispose(&j);
	const char *want[2] = { "done", "ignored" };
	for (int tries = 0; tries < 100; tries++) {
		assert_int_equal(store_delivery_list(f->st, &rows, 10, NULL), 0);
		int ok = 1;
		for (size_t i = 0; i < 2; i++) {
			json_t *r = json_array_get(rows, i);
			const char *id = json_string_value(json_object_get(r, "id"));
			const char *status = json_string_value(json_object_get(r, "status"));
			ok &= !strcmp(status, want[!strcmp(id, "b")]);
		}
		json_decref(rows);
		if (ok)
			return;
		usleep(10 * 1000);
	}
	fail_msg("delivery status did not follow its job");
}

static void test_concurrent_group_commit(void **state);

static void test_leases(void **state)
{
	struct fixture *f = *state;
	int dup;
	put(f->st, "a", "push", 2, &dup);
	store_job j1, j2, j3;
	assert_int_equal(store_job_claim(f->st, &j1, "w1", 60000), 0);
	assert_int_equal(j1.attempts, 1);
	assert_string_equal(j1.delivery_id, "a");
	assert_int_equal(store_job_claim(f->st, &j2, "w2", 200), 0);
	assert_int_not_equal(j1.id, j2.id);
	assert_int_equal(store_job_claim(f->st, &j3, "w3", 60000), BASE_ENOTFOUND);
	/* an expired lease is claimed again: its worker died */
	usleep(300 * 1000);
	assert_int_equal(store_job_claim(f->st, &j3, "w3", 60000), 0);
	assert_int_equal(j3.id, j2.id);
	assert_int_equal(j3.attempts, 2);
	/* the dead worker cannot complete a job it no longer holds */
	assert_int_equal(store_job_done(f->st, j2.id, "w2", NULL), BASE_ENOTFOUND);
	assert_int_equal(store_job_done(f->st, j3.id, "w3", "ok"), 0);
	/* heartbeat keeps a lease */
	assert_int_equal(store_job_heartbeat(f->st, j1.id, "w1", 60000), 0);
	assert_int_equal(store_job_heartbeat(f->st, j1.id, "other", 60000), BASE_ENOTFOUND);
	/* release hands running jobs back */
	assert_int_equal(store_job_release(f->st, "w1"), 0);
	store_job j4;
	assert_int_equal(store_job_claim(f->st, &j4, "w4", 60000), 0);
	assert_int_equal(j4.id, j1.id);
	/* retry later, then fail for good */
	assert_int_equal(store_job_fail(f->st, j4.id, "w4", "boom", now_ms() + 250), 0);
	store_job j5;
	assert_int_equal(store_job_claim(f->st, &j5, "w5", 60000), BASE_ENOTFOUND);
	usleep(300 * 1000);
	assert_int_equal(store_job_claim(f->st, &j5, "w5", 60000), 0);
	assert_int_equal(store_job_fail(f->st, j5.id, "w5", "boom again", 0), 0);
	/* job bookkeeping is committed by the next group commit, within ms */
	json_t *counts = NULL;
	for (int i = 0; i < 100; i++) {
		json_decref(counts);
		assert_int_equal(store_job_counts(f->st, &counts), 0);
		if (json_integer_value(json_object_get(counts, "failed")) == 1)
			break;
		usleep(10 * 1000);
	}
	assert_int_equal(json_integer_value(json_object_get(counts, "done")), 1);
	assert_int_equal(json_integer_value(json_object_get(counts, "failed")), 1);
	json_decref(counts);
	store_job_dispose(&j1);
	store_job_dispose(&j2);
	store_job_dispose(&j3);
	store_job_dispose(&j4);
	store_job_dispose(&j5);
}

static void test_dedupe_and_runs(void **state)
{
	struct fixture *f = *state;
	int64_t a = 0, b = 0;
	assert_int_equal(store_job_add(f->st, &a, "bench", "{}", "bench:acme/fast:main", 0), 0);
	assert_int_equal(store_job_add(f->st, &b, "bench", "{}", "bench:acme/fast:main", 0), 0);
	assert_int_equal(a, b);
	int n = 0;
	assert_int_equal(store_job_cancel_key(f->st, "bench:acme/fast:main", &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(store_job_add(f->st, &b, "bench", "{}", "bench:acme/fast:main", 0), 0);
	assert_int_not_equal(a, b);

	json_t *data = json_pack("{s:s}", "note", "first");
	store_run_spec spec = { .kind = STORE_RUN_AGENT, .repository = "acme/fast", .installation_id = 7, .head_sha = "abc",
				.trigger = "comment", .data = data };
	int64_t run = 0;
	assert_int_equal(store_run_create(f->st, &run, &spec), 0);
	json_decref(data);
	data = json_pack("{s:i}", "tool_calls", 3);
	assert_int_equal(store_run_update(f->st, run, data), 0);
	json_decref(data);
	assert_int_equal(store_run_set_state(f->st, run, STORE_RUN_RUNNING, NULL), 0);
	json_t *r = NULL;
	assert_int_equal(store_run_get(f->st, run, &r), 0);
	assert_string_equal(json_string_value(json_object_get(r, "state")), "running");
	assert_string_equal(json_string_value(json_object_get(json_object_get(r, "data"), "note")), "first");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "data"), "tool_calls")), 3);
	json_decref(r);
	assert_int_equal(store_run_get(f->st, 999, &r), BASE_ENOTFOUND);

	/* a conditional transition does not overwrite what another thread wrote */
	assert_int_equal(store_run_set_state_from(f->st, run, STORE_RUN_IN(STORE_RUN_QUEUED) | STORE_RUN_IN(STORE_RUN_RUNNING), STORE_RUN_PROPOSAL, NULL), 0);
	assert_int_equal(store_run_set_state_from(f->st, run, STORE_RUN_IN(STORE_RUN_QUEUED) | STORE_RUN_IN(STORE_RUN_RUNNING), STORE_RUN_CANCELLED, "by @x"), BASE_EEXISTS);
	assert_non_null(strstr(base_error_last(), "is proposal"));
	assert_int_equal(store_run_set_state_from(f->st, 999, STORE_RUN_IN(STORE_RUN_QUEUED), STORE_RUN_RUNNING, NULL), BASE_ENOTFOUND);
	assert_int_equal(store_run_set_state(f->st, run, STORE_RUN_RUNNING, NULL), 0);

	/* an approval comes with its run update, audit line and job, or not at all */
	json_t *jobs = NULL;
	assert_int_equal(store_job_list(f->st, &jobs, 0), 0);
	size_t njobs = json_array_size(jobs);
	json_decref(jobs);
	json_t *upd = json_pack("{s:s}", "approved_by", "octocat");
	store_approval missing = { .run_id = 999, .user = "octocat", .via = "button", .run_update = upd,
				   .job_kind = "pr.open", .job_payload = "{\"run_id\":999}", .job_key = "pr.open:999" };
	assert_int_equal(store_approval_put(f->st, &missing), BASE_ENOTFOUND);
	store_approval ap = { .run_id = run, .user = "octocat", .via = "button", .run_update = upd,
			      .job_kind = "pr.open", .job_payload = "{}", .job_key = "pr.open:x" };
	assert_int_equal(store_approval_put(f->st, &ap), 0);
	ap.via = "comment";
	assert_int_equal(store_approval_put(f->st, &ap), BASE_EEXISTS);
	json_decref(upd);
	assert_int_equal(store_job_list(f->st, &jobs, 0), 0);
	assert_int_equal(json_array_size(jobs), njobs + 1); /* none for run 999, one for run */
	json_decref(jobs);
	assert_int_equal(store_run_get(f->st, run, &r), 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(r, "data"), "approved_by")), "octocat");
	json_decref(r);

	assert_int_equal(store_run_token_put(f->st, run, "hash1"), 0);
	int64_t found = 0;
	assert_int_equal(store_run_token_find(f->st, "hash1", &found), 0);
	assert_int_equal(found, run);
	assert_int_equal(store_run_token_delete(f->st, run), 0);
	assert_int_equal(store_run_token_find(f->st, "hash1", &found), BASE_ENOTFOUND);

	json_t *m = json_pack("{s:s,s:i}", "status", "ok", "instructions", 1000);
	int64_t mid = 0;
	assert_int_equal(store_measurement_put(f->st, &mid, run, "acme/fast", "abc", "sort", m), 0);
	json_decref(m);
	json_t *got = NULL;
	assert_int_equal(store_measurement_find(f->st, "acme/fast", "abc", "sort", &got), 0);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(got, "data"), "instructions")), 1000);
	json_decref(got);
	assert_int_equal(store_measurement_find(f->st, "acme/fast", "abc", "hash", &got), BASE_ENOTFOUND);
}

/* Many threads writing at once: every write is durable and counted once. */
struct writer_arg {
	store *st;
	int base;
};

static void *writer(void *p)
{
	struct writer_arg *a = p;
	for (int i = 0; i < 50; i++) {
		char id[32];
		snprintf(id, sizeof(id), "c-%d-%d", a->base, i);
		int dup = -1;
		store_job_spec job = { "event.test", "{}" };
		store_delivery d = { .id = id, .event = "push", .headers_json = "{}", .body = "{}", .body_len = 2,
				     .received_ms = 1, .status = "queued", .jobs = &job, .njobs = 1 };
		if (store_delivery_put(a->st, &d, &dup) < 0 || dup)
			return (void *)1;
	}
	return NULL;
}

static void test_concurrent_group_commit(void **state)
{
	struct fixture *f = *state;
	pthread_t t[8];
	struct writer_arg args[8];
	for (int i = 0; i < 8; i++) {
		args[i] = (struct writer_arg){ f->st, i };
		pthread_create(&t[i], NULL, writer, &args[i]);
	}
	for (int i = 0; i < 8; i++) {
		void *rv;
		pthread_join(t[i], &rv);
		assert_null(rv);
	}
	/* a second connection (another process would see the same) */
	store *other = NULL;
	assert_int_equal(store_open(&other, f->url), 0);
	json_t *rows = NULL;
	assert_int_equal(store_delivery_list(other, &rows, 1000, NULL), 0);
	assert_int_equal(json_array_size(rows), 400);
	json_decref(rows);
	store_free(other);
}

/* ---- workers ------------------------------------------------------------ */

static int calls_ok, calls_bad;

static int handler_ok(store_job_ctx *ctx, void *payload)
{
	(void)payload;
	__atomic_add_fetch(&calls_ok, 1, __ATOMIC_SEQ_CST);
	snprintf(ctx->note, sizeof(ctx->note), "handled %s", ctx->job->kind);
	return 0;
}

static int handler_bad(store_job_ctx *ctx, void *payload)
{
	(void)payload;
	__atomic_add_fetch(&calls_bad, 1, __ATOMIC_SEQ_CST);
	ctx->retry_at_ms = now_ms() + 10; /* no long backoff in a test */
	return base_error_set(BASE_EGENERIC, "always fails");
}

static void test_workers(void **state)
{
	struct fixture *f = *state;
	store_workers *w = NULL;
	store_workers_options o = { .nthreads = 2, .lease_ms = 5000, .max_attempts = 3, .poll_ms = 20 };
	assert_int_equal(store_workers_new(&w, f->st, &o), 0);
	assert_int_equal(store_workers_register(w, "ok.*", handler_ok, NULL), 0);
	assert_int_equal(store_workers_register(w, "bad", handler_bad, NULL), 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(store_job_add(f->st, NULL, "ok.one", "{}", NULL, 0), 0);
	assert_int_equal(store_job_add(f->st, NULL, "bad", "{}", NULL, 0), 0);
	assert_int_equal(store_job_add(f->st, NULL, "unknown.kind", "{}", NULL, 0), 0);
	assert_int_equal(store_workers_start(w), 0);
	json_t *counts = NULL;
	for (int i = 0; i < 200; i++) {
		usleep(20 * 1000);
		json_decref(counts);
		assert_int_equal(store_job_counts(f->st, &counts), 0);
		if (json_integer_value(json_object_get(counts, "done")) == 6 &&
		    json_integer_value(json_object_get(counts, "failed")) == 1)
			break;
	}
	store_workers_stop(w, 1000);
	store_workers_free(w);
	assert_int_equal(json_integer_value(json_object_get(counts, "done")), 6);
	assert_int_equal(json_integer_value(json_object_get(counts, "failed")), 1);
	json_decref(counts);
	assert_int_equal(calls_ok, 5);
	assert_int_equal(calls_bad, 3); /* max_attempts */
	json_t *jobs = NULL;
	assert_int_equal(store_job_list(f->st, &jobs, 10), 0);
	size_t i;
	json_t *j;
	int saw_no_handler = 0, saw_error = 0;
	json_array_foreach(jobs, i, j) {
		const char *note = json_string_value(json_object_get(j, "note"));
		const char *err = json_string_value(json_object_get(j, "error"));
		if (note && !strcmp(note, "no handler"))
			saw_no_handler = 1;
		if (err && !strcmp(err, "always fails"))
			saw_error = 1;
		assert_true(json_integer_value(json_object_get(j, "completions")) <= 1);
	}
	assert_true(saw_no_handler);
	assert_true(saw_error);
	json_decref(jobs);
}

/* A claim filtered by kind takes only its pool's jobs, oldest first. */
static void test_claim_filter(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(store_job_add(f->st, NULL, "bench.run", "{}", NULL, 0), 0);
	assert_int_equal(store_job_add(f->st, NULL, "event.push", "{}", NULL, 0), 0);
	assert_int_equal(store_job_add(f->st, NULL, "agent.run", "{}", NULL, 0), 0);
	const char *const heavy[] = { "bench.run", "agent.run", NULL };
	store_job_filter others = { .kinds = heavy, .exclude = 1 }, bench = { .kinds = heavy, .exclude = 0 };
	store_job j;
	assert_int_equal(store_job_claim_filtered(f->st, &j, "w1", 60000, &others), 0);
	assert_string_equal(j.kind, "event.push");
	store_job_dispose(&j);
	assert_int_equal(store_job_claim_filtered(f->st, &j, "w1", 60000, &others), BASE_ENOTFOUND);
	assert_int_equal(store_job_claim_filtered(f->st, &j, "w2", 60000, &bench), 0);
	assert_string_equal(j.kind, "bench.run");
	store_job_dispose(&j);
	assert_int_equal(store_job_claim_filtered(f->st, &j, "w2", 60000, &bench), 0);
	assert_string_equal(j.kind, "agent.run");
	store_job_dispose(&j);
	assert_int_equal(store_job_claim_filtered(f->st, &j, "w2", 60000, &bench), BASE_ENOTFOUND);
}

static atomic_int bench_running, bench_release, quick_done;

static int handler_bench(store_job_ctx *ctx, void *payload)
{
	(void)ctx;
	(void)payload;
	atomic_fetch_add(&bench_running, 1);
	while (!atomic_load(&bench_release))
		usleep(5 * 1000);
	return 0;
}

static int handler_quick(store_job_ctx *ctx, void *payload)
{
	(void)ctx;
	(void)payload;
	atomic_fetch_add(&quick_done, 1);
	return 0;
}

/* Every bench thread is busy with a long benchmark and more benchmarks wait:
 * a comment command and a PR job queued after them still run at once, on a
 * thread that never takes a benchmark. */
static void test_bench_threads_apart(void **state)
{
	struct fixture *f = *state;
	store_workers *w = NULL;
	store_workers_options o = { .nthreads = 1, .bench_threads = 1, .lease_ms = 5000, .max_attempts = 3,
				  .poll_ms = 20 };
	assert_int_equal(store_workers_new(&w, f->st, &o), 0);
	assert_int_equal(store_workers_register_bench(w, "bench.run", handler_bench, NULL), 0);
	assert_int_equal(store_workers_register_bench(w, "agent.*", handler_bench, NULL), BASE_EINVALID);
	assert_int_equal(store_workers_register(w, "event.issue_comment", handler_quick, NULL), 0);
	assert_int_equal(store_workers_register(w, "pr.open", handler_quick, NULL), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(store_job_add(f->st, NULL, "bench.run", "{}", NULL, 0), 0);
	assert_int_equal(store_workers_start(w), 0);
	for (int i = 0; i < 200 && atomic_load(&bench_running) == 0; i++)
		usleep(10 * 1000);
	assert_int_equal(atomic_load(&bench_running), 1);
	int64_t t0 = now_ms();
	assert_int_equal(store_job_add(f->st, NULL, "event.issue_comment", "{}", NULL, 0), 0);
	assert_int_equal(store_job_add(f->st, NULL, "pr.open", "{}", NULL, 0), 0);
	store_workers_wake(w);
	while (atomic_load(&quick_done) < 2 && now_ms() - t0 < 5000)
		usleep(5 * 1000);
	assert_int_equal(atomic_load(&quick_done), 2);
	assert_true(now_ms() - t0 < 1000);
	/* the general thread never picked up a waiting benchmark */
	usleep(100 * 1000);
	assert_int_equal(atomic_load(&bench_running), 1);
	assert_int_equal(store_workers_busy(w), 1);
	atomic_store(&bench_release, 1);
	json_t *counts = NULL;
	for (int i = 0; i < 200; i++) {
		json_decref(counts);
		assert_int_equal(store_job_counts(f->st, &counts), 0);
		if (json_integer_value(json_object_get(counts, "done")) == 5)
			break;
		usleep(20 * 1000);
	}
	assert_int_equal(json_integer_value(json_object_get(counts, "done")), 5);
	json_decref(counts);
	assert_int_equal(atomic_load(&bench_running), 3);
	store_workers_stop(w, 1000);
	store_workers_free(w);
}

/* What `perfbot doctor` reads: the queue's depth, its oldest due job and
 * recent failures; the schema version against the build's. */
static void test_queue_stats_and_schema(void **state)
{
	struct fixture *f = *state;
	int64_t now = now_ms(), id = 0;
	store_queue_stats q = { -1, -1, -1 };
	assert_int_equal(store_queue_stats_get(f->st, &q, now, now - 1000), 0);
	assert_int_equal(q.queued, 0);
	assert_int_equal(q.oldest_due_ms, 0);
	assert_int_equal(q.failed_since, 0);
	assert_int_equal(store_job_add(f->st, &id, "k", "{}", NULL, now - 5000), 0);
	assert_int_equal(store_job_add(f->st, &id, "k", "{}", NULL, now + 60000), 0); /* not due yet */
	assert_int_equal(store_job_add(f->st, &id, "k", "{}", NULL, now - 2000), 0);
	store_job j;
	assert_int_equal(store_job_claim(f->st, &j, "w", 60000), 0); /* the oldest due: now - 5000 */
	assert_int_equal(store_job_fail(f->st, j.id, "w", "boom", 0), 0);
	store_job_dispose(&j);
	for (int i = 0; i < 100 && q.failed_since != 1; i++) {
		usleep(10 * 1000);
		assert_int_equal(store_queue_stats_get(f->st, &q, now_ms(), now - 1000), 0);
	}
	assert_int_equal(q.queued, 2);
	assert_int_equal(q.oldest_due_ms, now - 2000);
	assert_int_equal(q.failed_since, 1);
	assert_int_equal(store_queue_stats_get(f->st, &q, now_ms(), now_ms() + 1000), 0);
	assert_int_equal(q.failed_since, 0);

	int applied = 0, known = 0;
	assert_int_equal(store_schema_version(f->st, &applied, &known), 0);
	assert_true(known >= 2);
	assert_int_equal(applied, known);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_deliveries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delivery_put_async, setup, teardown),
		cmocka_unit_test_setup_teardown(test_leases, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dedupe_and_runs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_group_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_workers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_claim_filter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bench_threads_apart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_stats_and_schema, setup, teardown),
	};
	return cmocka_run_group_tests_name("app_store", tests, NULL, NULL);
}
