/* Unit tests: the store (deliveries, duplicate detection, job leases,
 * retries, release, dedupe keys, runs and their documents) and the worker
 * pool (handlers, "no handler", retry then failure, bench kinds on their
 * own threads), each against both backends: SQLite, and PostgreSQL on the
 * cluster named by PERFBOT_TEST_DATABASE_URL (tests/run.sh starts one; run
 * alone, this binary starts its own with tests/lib/pg.sh).  Each PostgreSQL
 * test gets a fresh database.  Then what only PostgreSQL has: several
 * stores ("replicas") on one database, migrations racing, LISTEN/NOTIFY
 * wake-ups, lost connections, and `store copy` from SQLite. */
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

#include <libpq-fe.h>

#include "base/error.h"
#include "store/store.h"
#include "store/worker.h"
#include "tests/unit/support/store_test.h"

/* The cluster's URL ("postgres://user:pw@127.0.0.1:port/perfbot"). */
static char pg_url[512];
static char pg_own_dir[64]; /* a cluster this binary started */

static int setup_sqlite(void **state)
{
	struct store_test *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/perfbot-store-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->url, sizeof(f->url), "sqlite:%s/sub/perfbot.db", f->dir);
	assert_int_equal(store_open(&f->st, f->url), 0);
	assert_string_equal(store_backend_name(f->st), "sqlite");
	*state = f;
	return 0;
}

/* A fresh database, unmigrated: open_store false leaves f->st NULL. */
static struct store_test *pg_fixture(int open_store)
{
	struct store_test *f = store_test_pg("t", open_store);
	if (open_store)
		assert_string_equal(store_backend_name(f->st), "postgres");
	return f;
}

static int setup_pg(void **state)
{
	*state = pg_fixture(1);
	return 0;
}

static int teardown(void **state)
{
	store_test_free(*state);
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
	struct store_test *f = *state;
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

/* A status the delivery's job set (the webhook job parses the body after
 * the answer: "ignored" for an action perfbot does not act on, "malformed"
 * for a body that is not a JSON object) is listed as set, whatever state
 * the job ended in. */
static void test_delivery_status_set_by_job(void **state)
{
	struct store_test *f = *state;
	int dup = -1;
	put(f->st, "m", "ping", 1, &dup);
	put(f->st, "i", "pull_request", 1, &dup);
	put(f->st, "q", "push", 1, &dup);
	for (int n = 0; n < 3; n++) {
		store_job j;
		assert_int_equal(store_job_claim(f->st, &j, "w", 60000), 0);
		if (!strcmp(j.delivery_id, "m")) {
			assert_int_equal(store_delivery_set_status(f->st, "m", "malformed"), 0);
			assert_int_equal(store_job_fail(f->st, j.id, "w", "malformed JSON", 0), 0);
		} else if (!strcmp(j.delivery_id, "i")) {
			assert_int_equal(store_delivery_set_status(f->st, "i", "ignored"), 0);
			assert_int_equal(store_job_done(f->st, j.id, "w", "ignored"), 0);
		} else {
			assert_int_equal(store_job_fail(f->st, j.id, "w", "boom", 0), 0);
		}
		store_job_dispose(&j);
	}
	static const char *const want[][2] = { { "m", "malformed" }, { "i", "ignored" }, { "q", "failed" } };
	for (int tries = 0; tries < 200; tries++, usleep(10 * 1000)) {
		json_t *rows = NULL;
		assert_int_equal(store_delivery_list(f->st, &rows, 10, NULL), 0);
		int ok = json_array_size(rows) == 3;
		size_t i;
		json_t *r;
		json_array_foreach(rows, i, r)
			for (size_t k = 0; k < 3; k++)
				if (!strcmp(json_string_value(json_object_get(r, "id")), want[k][0]))
					ok &= !strcmp(json_string_value(json_object_get(r, "status")), want[k][1]);
		json_decref(rows);
		if (ok)
			return;
	}
	fail_msg("a status set by the delivery's job is not what the list shows");
}

static void test_deliveries(void **state)
{
	struct store_test *f = *state;
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
	struct store_test *f = *state;
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
	struct store_test *f = *state;
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
	struct store_test *f = *state;
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
	struct store_test *f = *state;
	calls_ok = calls_bad = 0; /* run once per backend */
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
	struct store_test *f = *state;
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
	struct store_test *f = *state;
	atomic_store(&bench_running, 0); /* run once per backend */
	atomic_store(&bench_release, 0);
	atomic_store(&quick_done, 0);
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
	struct store_test *f = *state;
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

/* A run's document takes merges as SQLite's json_patch does (RFC 7396):
 * nested objects merge, null deletes a key; a pull's data the same. */
static void test_run_document_merge(void **state)
{
	struct store_test *f = *state;
	json_t *data = json_pack("{s:{s:i,s:i},s:s}", "a", "x", 1, "y", 2, "keep", "k");
	store_run_spec spec = { .kind = STORE_RUN_BENCH, .repository = "acme/fast", .head_sha = "abc", .trigger = "push",
				.data = data };
	int64_t run = 0;
	assert_int_equal(store_run_create(f->st, &run, &spec), 0);
	json_decref(data);
	json_t *patch = json_loads("{\"a\":{\"y\":null,\"z\":3},\"new\":[1,\"two\"],\"s\":\"caf\\u00e9 \\\"q\\\"\"}", 0,
				   NULL);
	assert_int_equal(store_run_update(f->st, run, patch), 0);
	json_decref(patch);
	json_t *r = NULL;
	assert_int_equal(store_run_get(f->st, run, &r), 0);
	json_t *want = json_loads("{\"a\":{\"x\":1,\"z\":3},\"keep\":\"k\",\"new\":[1,\"two\"],\"s\":\"caf\\u00e9 \\\"q\\\"\"}",
				  0, NULL);
	assert_true(json_equal(json_object_get(r, "data"), want));
	assert_string_equal(json_string_value(json_object_get(r, "kind")), "bench");
	assert_non_null(strchr(json_string_value(json_object_get(r, "created")), 'T'));
	json_decref(want);
	json_decref(r);
	json_t *empty = json_object();
	assert_int_equal(store_run_update(f->st, 999999, empty), BASE_ENOTFOUND);
	json_decref(empty);

	json_t *pd = json_pack("{s:s}", "title", "faster");
	assert_int_equal(store_pull_put(f->st, run, "acme/fast", 12, "perfbot/opt-1", "open", pd), 0);
	json_decref(pd);
	pd = json_pack("{s:s}", "merged_by", "octocat");
	assert_int_equal(store_pull_put(f->st, run, "acme/fast", 12, "perfbot/opt-1", "merged", pd), 0);
	json_decref(pd);
	json_t *pull = NULL;
	assert_int_equal(store_pull_find_branch(f->st, "acme/fast", "perfbot/opt-1", &pull), 0);
	assert_string_equal(json_string_value(json_object_get(pull, "state")), "merged");
	assert_int_equal(json_integer_value(json_object_get(pull, "number")), 12);
	assert_string_equal(json_string_value(json_object_get(json_object_get(pull, "data"), "title")), "faster");
	assert_string_equal(json_string_value(json_object_get(json_object_get(pull, "data"), "merged_by")), "octocat");
	json_decref(pull);
	json_t *prop = json_pack("{s:s,s:f}", "diff", "--- a\n+++ b\n", "impact", 0.25);
	assert_int_equal(store_proposal_put(f->st, run, prop), 0);
	json_t *got = NULL;
	assert_int_equal(store_proposal_get(f->st, run, &got), 0);
	assert_true(json_equal(got, prop));
	json_decref(got);
	json_decref(prop);
	assert_int_equal(store_installation_put(f->st, 7, "acme", "active"), 0);
	assert_int_equal(store_installation_put(f->st, 7, NULL, "suspended"), 0);
	char *st = NULL;
	assert_int_equal(store_installation_state(f->st, 7, &st), 0);
	assert_string_equal(st, "suspended");
	free(st);
	assert_int_equal(store_repository_put(f->st, 7, 70, "acme/fast"), 0);
	json_t *repos = NULL;
	assert_int_equal(store_repository_list(f->st, 7, &repos), 0);
	assert_int_equal(json_array_size(repos), 1);
	json_decref(repos);
	assert_int_equal(store_installation_delete(f->st, 7), 0);
	assert_int_equal(store_repository_list(f->st, 7, &repos), 0);
	assert_int_equal(json_array_size(repos), 0);
	json_decref(repos);
	assert_int_equal(store_hook_put(f->st, 5, 6, "d1"), 0);
	assert_int_equal(store_hook_put(f->st, 5, 6, "d2"), 0);
	assert_int_equal(store_audit(f->st, "octocat", "cancel", "run 1", NULL), 0);
}

static void drain_wakeups(store *st)
{
	while (store_wait_for_job(st, 20) == 1)
		;
}

/* The wait hook: a queued job wakes the waiter at once; nothing queued
 * means a timeout, not a spin. */
static void test_wait_for_job(void **state)
{
	struct store_test *f = *state;
	drain_wakeups(f->st);
	int64_t t0 = now_ms();
	assert_int_equal(store_wait_for_job(f->st, 150), 0);
	assert_true(now_ms() - t0 >= 100);
	assert_int_equal(store_job_add(f->st, NULL, "k", "{}", NULL, 0), 0);
	t0 = now_ms();
	assert_int_equal(store_wait_for_job(f->st, 5000), 1);
	assert_true(now_ms() - t0 < 1000);
	/* a delivery's jobs too */
	drain_wakeups(f->st);
	int dup;
	put(f->st, "w1", "push", 1, &dup);
	assert_int_equal(store_wait_for_job(f->st, 5000), 1);
}

/* ---- PostgreSQL only: several replicas on one database ------------------ */

struct dup_arg {
	store *st;
	int accepted;
};

static void *dup_writer(void *p)
{
	struct dup_arg *a = p;
	for (int i = 0; i < 40; i++) {
		char id[32];
		snprintf(id, sizeof(id), "shared-%d", i);
		int dup = -1;
		store_job_spec job = { "event.test", "{}" };
		store_delivery d = { .id = id, .event = "push", .headers_json = "{}", .body = "{}", .body_len = 2,
				     .received_ms = now_ms(), .status = "queued", .jobs = &job, .njobs = 1 };
		if (store_delivery_put(a->st, &d, &dup) < 0)
			return (void *)1;
		if (!dup)
			a->accepted++;
	}
	return NULL;
}

/* The same deliveries sent to two replicas at once: each id is accepted
 * exactly once, with exactly one job; the other copies are duplicates. */
static void test_pg_replicas_share_deliveries(void **state)
{
	struct store_test *f = *state;
	store *b = NULL;
	assert_int_equal(store_open(&b, f->url), 0);
	pthread_t t[6];
	struct dup_arg args[6];
	for (int i = 0; i < 6; i++) {
		args[i] = (struct dup_arg){ i % 2 ? b : f->st, 0 };
		pthread_create(&t[i], NULL, dup_writer, &args[i]);
	}
	int accepted = 0;
	for (int i = 0; i < 6; i++) {
		void *rv;
		pthread_join(t[i], &rv);
		assert_null(rv);
		accepted += args[i].accepted;
	}
	assert_int_equal(accepted, 40);
	json_t *counts = NULL;
	assert_int_equal(store_job_counts(b, &counts), 0);
	assert_int_equal(json_integer_value(json_object_get(counts, "queued")), 40);
	json_decref(counts);
	assert_int_equal(store_delivery_exists(b, "shared-39"), 1);
	store_free(b);
}

struct mixed_arg {
	store *st;
	int n;
	int bad;
	int result;
};

static void *mixed_writer(void *p)
{
	struct mixed_arg *a = p;
	char id[32];
	snprintf(id, sizeof(id), "m-%d", a->n);
	store_job_spec job = { "event.test", "{}" };
	/* PostgreSQL refuses text that is not UTF-8 */
	store_delivery d = { .id = id, .event = a->bad ? "p\xffsh" : "push", .headers_json = "{}", .body = "{}",
			     .body_len = 2, .received_ms = now_ms(), .status = "queued", .jobs = &job, .njobs = 1 };
	int dup = -1;
	a->result = store_delivery_put(a->st, &d, &dup);
	return NULL;
}

/* Deliveries committed together: one the database refuses fails alone,
 * the others of its batch are stored. */
static void test_pg_bad_delivery_fails_alone(void **state)
{
	struct store_test *f = *state;
	for (int round = 0; round < 5; round++) {
		pthread_t t[8];
		struct mixed_arg a[8];
		for (int i = 0; i < 8; i++) {
			a[i] = (struct mixed_arg){ f->st, round * 8 + i, i == 3, 1 };
			pthread_create(&t[i], NULL, mixed_writer, &a[i]);
		}
		for (int i = 0; i < 8; i++)
			pthread_join(t[i], NULL);
		for (int i = 0; i < 8; i++) {
			char id[32];
			snprintf(id, sizeof(id), "m-%d", round * 8 + i);
			if (i == 3) {
				assert_true(a[i].result < 0);
				assert_int_equal(store_delivery_exists(f->st, id), 0);
			} else {
				assert_int_equal(a[i].result, 0);
				assert_int_equal(store_delivery_exists(f->st, id), 1);
			}
		}
	}
}

#define CLAIM_JOBS 150
static atomic_int claimed[CLAIM_JOBS + 1];
static int64_t first_job_id;

struct claim_arg {
	store *st;
	char owner[32];
};

static void *claimer(void *p)
{
	struct claim_arg *a = p;
	for (;;) {
		store_job j;
		int e = store_job_claim(a->st, &j, a->owner, 60000);
		if (e == BASE_ENOTFOUND)
			return NULL;
		if (e < 0)
			return (void *)1;
		int64_t i = j.id - first_job_id;
		if (i >= 0 && i < CLAIM_JOBS)
			atomic_fetch_add(&claimed[i], 1);
		if (store_job_done(a->st, j.id, a->owner, NULL) < 0) {
			store_job_dispose(&j);
			return (void *)1;
		}
		store_job_dispose(&j);
	}
}

/* Three replicas, four workers each, one queue: every job is claimed and
 * done exactly once (FOR UPDATE SKIP LOCKED). */
static void test_pg_claims_exactly_once(void **state)
{
	struct store_test *f = *state;
	store *st[3] = { f->st, NULL, NULL };
	assert_int_equal(store_open(&st[1], f->url), 0);
	assert_int_equal(store_open(&st[2], f->url), 0);
	for (int i = 0; i < CLAIM_JOBS; i++) {
		int64_t id = 0;
		assert_int_equal(store_job_add(f->st, &id, "k", "{}", NULL, 0), 0);
		if (i == 0)
			first_job_id = id;
		atomic_store(&claimed[i], 0);
	}
	pthread_t t[12];
	struct claim_arg args[12];
	for (int i = 0; i < 12; i++) {
		args[i].st = st[i % 3];
		snprintf(args[i].owner, sizeof(args[i].owner), "r%d:w%d", i % 3, i);
		pthread_create(&t[i], NULL, claimer, &args[i]);
	}
	for (int i = 0; i < 12; i++) {
		void *rv;
		pthread_join(t[i], &rv);
		assert_null(rv);
	}
	for (int i = 0; i < CLAIM_JOBS; i++)
		assert_int_equal(atomic_load(&claimed[i]), 1);
	json_t *counts = NULL;
	assert_int_equal(store_job_counts(f->st, &counts), 0);
	assert_int_equal(json_integer_value(json_object_get(counts, "done")), CLAIM_JOBS);
	json_decref(counts);
	store_free(st[1]);
	store_free(st[2]);
}

static atomic_int woken_done;

static int handler_count(store_job_ctx *ctx, void *payload)
{
	(void)ctx;
	(void)payload;
	atomic_fetch_add(&woken_done, 1);
	return 0;
}

/* A job queued by one replica wakes the idle workers of another at once
 * (NOTIFY), though their poll interval is a minute. */
static void test_pg_notify_wakes_other_replica(void **state)
{
	struct store_test *f = *state;
	store *b = NULL;
	assert_int_equal(store_open(&b, f->url), 0);
	store_workers *w = NULL;
	store_workers_options o = { .nthreads = 2, .lease_ms = 5000, .max_attempts = 3, .poll_ms = 60000 };
	assert_int_equal(store_workers_new(&w, b, &o), 0);
	assert_int_equal(store_workers_register(w, "ping", handler_count, NULL), 0);
	assert_int_equal(store_workers_start(w), 0);
	usleep(500 * 1000); /* the workers went idle; the listener is listening */
	int64_t t0 = now_ms();
	assert_int_equal(store_job_add(f->st, NULL, "ping", "{}", NULL, 0), 0);
	while (atomic_load(&woken_done) < 1 && now_ms() - t0 < 5000)
		usleep(5 * 1000);
	assert_int_equal(atomic_load(&woken_done), 1);
	assert_true(now_ms() - t0 < 2000);
	store_workers_stop(w, 1000);
	store_workers_free(w);
	store_free(b);
}

/* Connections cut by the server (a restart, a failover): the next calls
 * reconnect instead of failing for good, and the listener comes back. */
static void test_pg_reconnects(void **state)
{
	struct store_test *f = *state;
	int dup;
	put(f->st, "before", "push", 1, &dup);
	drain_wakeups(f->st);
	char sql[256];
	snprintf(sql, sizeof(sql),
		 "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname='%s' AND pid <> pg_backend_pid()",
		 f->dbname);
	store_test_pg_admin(sql);
	usleep(100 * 1000);
	for (int i = 0; i < 3; i++) /* a broken connection is retried on a fresh one */
		assert_int_equal(store_ping(f->st), 0);
	put(f->st, "after", "push", 1, &dup);
	assert_int_equal(dup, 0);
	assert_int_equal(store_delivery_exists(f->st, "before"), 1);
	/* the LISTEN connection is re-established (1: jobs may have been missed) */
	int woke = 0;
	for (int i = 0; i < 20 && !woke; i++)
		woke = store_wait_for_job(f->st, 100);
	assert_int_equal(woke, 1);
	drain_wakeups(f->st);
	assert_int_equal(store_job_add(f->st, NULL, "k", "{}", NULL, 0), 0);
	assert_int_equal(store_wait_for_job(f->st, 5000), 1);
}

/* An unreachable database or a wrong password: store_open fails at once
 * with a retryable error that never shows the password. */
static void test_pg_unreachable(void **state)
{
	(void)state;
	store *st = NULL;
	assert_int_equal(store_open(&st, "postgres://perfbot:sekrit-pw-1@127.0.0.1:1/perfbot"), BASE_ERETRY);
	assert_null(strstr(base_error_last(), "sekrit"));
	assert_non_null(strstr(base_error_last(), "DATABASE_URL"));
	char url[512];
	const char *at = strchr(pg_url, '@');
	snprintf(url, sizeof(url), "postgres://perfbot:wrong-pw-2%s", at);
	assert_int_equal(store_open(&st, url), BASE_ERETRY);
	assert_null(strstr(base_error_last(), "wrong-pw"));
	assert_non_null(strstr(base_error_last(), "password"));
}

struct open_arg {
	const char *url;
	int error;
	store *st;
};

static void *opener(void *p)
{
	struct open_arg *a = p;
	a->error = store_open(&a->st, a->url);
	return NULL;
}

/* Replicas starting together on an empty database: every one opens, each
 * migration is applied once (the advisory lock). */
static void test_pg_migrations_race(void **state)
{
	(void)state;
	struct store_test *f = pg_fixture(0);
	pthread_t t[5];
	struct open_arg a[5];
	for (int i = 0; i < 5; i++) {
		a[i] = (struct open_arg){ f->url, -1, NULL };
		pthread_create(&t[i], NULL, opener, &a[i]);
	}
	for (int i = 0; i < 5; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 5; i++)
		assert_int_equal(a[i].error, 0);
	int applied = 0, known = 0;
	assert_int_equal(store_schema_version(a[0].st, &applied, &known), 0);
	assert_int_equal(applied, known);
	PGconn *c = PQconnectdb(f->url);
	PGresult *r = PQexec(c, "SELECT count(*) FROM schema_migrations");
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	char want[16];
	snprintf(want, sizeof(want), "%d", known);
	assert_string_equal(PQgetvalue(r, 0, 0), want);
	PQclear(r);
	PQfinish(c);
	for (int i = 0; i < 5; i++)
		store_free(a[i].st);
	void *fs = f;
	teardown(&fs);
}

/* `perfbot store copy`: every table from SQLite, ids kept, sequences past
 * them, bodies byte for byte; a non-empty target only with force. */
static void test_pg_copy_from_sqlite(void **state)
{
	struct store_test *f = *state;
	store_free(f->st); /* the target starts empty (but migrated) */
	f->st = NULL;
	char src[128];
	snprintf(src, sizeof(src), "sqlite:%s/old.db", f->dir);
	store *old = NULL;
	assert_int_equal(store_open(&old, src), 0);
	static const char body[] = "{\"x\":\"\\u0000\"}\x01\xff\x00tail";
	store_job_spec job = { "event.push", "{\"n\":1}" };
	store_delivery d = { .id = "d1", .event = "push", .action = NULL, .installation_id = 7, .repository = "acme/fast",
			     .headers_json = "{\"X-GitHub-Event\":\"push\"}", .body = body, .body_len = sizeof(body),
			     .received_ms = 1700000000123, .status = "queued", .jobs = &job, .njobs = 1 };
	int dup;
	assert_int_equal(store_delivery_put(old, &d, &dup), 0);
	int64_t j2 = 0, run = 0, mid = 0;
	assert_int_equal(store_job_add(old, &j2, "pr.open", "{}", "pr.open:1", 0), 0);
	json_t *data = json_pack("{s:s,s:{s:i}}", "note", "é", "nested", "n", 5);
	store_run_spec spec = { .kind = STORE_RUN_AGENT, .repository = "acme/fast", .installation_id = 7,
				.head_sha = "abc", .trigger = "comment", .data = data };
	assert_int_equal(store_run_create(old, &run, &spec), 0);
	assert_int_equal(store_run_set_state(old, run, STORE_RUN_PROPOSAL, "verified"), 0);
	json_t *m = json_pack("{s:s,s:i}", "status", "ok", "instructions", 1000);
	assert_int_equal(store_measurement_put(old, &mid, run, "acme/fast", "abc", "sort", m), 0);
	json_decref(m);
	assert_int_equal(store_proposal_put(old, run, data), 0);
	assert_int_equal(store_pull_put(old, run, "acme/fast", 3, "perfbot/opt-1", "open", data), 0);
	json_decref(data);
	store_approval ap = { .run_id = run, .user = "octocat", .via = "button" };
	assert_int_equal(store_approval_put(old, &ap), 0);
	assert_int_equal(store_run_token_put(old, run, "hash"), 0);
	assert_int_equal(store_installation_put(old, 7, "acme", "active"), 0);
	assert_int_equal(store_repository_put(old, 7, 70, "acme/fast"), 0);
	assert_int_equal(store_hook_put(old, 5, 6, "d1"), 0);
	store_free(old);

	store_copy_stats stats;
	assert_int_equal(store_copy(src, f->url, 0, &stats), 0);
	assert_int_equal(stats.tables, 13);
	assert_true(stats.rows >= 12);
	assert_int_equal(store_open(&f->st, f->url), 0);
	char *b = NULL;
	size_t len = 0;
	assert_int_equal(store_delivery_body(f->st, "d1", &b, &len), 0);
	assert_int_equal(len, sizeof(body));
	assert_memory_equal(b, body, sizeof(body));
	free(b);
	json_t *r = NULL;
	assert_int_equal(store_run_get(f->st, run, &r), 0);
	assert_string_equal(json_string_value(json_object_get(r, "state")), "proposal");
	assert_string_equal(json_string_value(json_object_get(json_object_get(r, "data"), "note")), "é");
	json_decref(r);
	assert_int_equal(store_measurement_find(f->st, "acme/fast", "abc", "sort", &r), 0);
	assert_int_equal(json_integer_value(json_object_get(r, "id")), mid);
	json_decref(r);
	int64_t found = 0;
	assert_int_equal(store_run_token_find(f->st, "hash", &found), 0);
	assert_int_equal(found, run);
	assert_int_equal(store_approval_put(f->st, &ap), BASE_EEXISTS);
	/* the dedupe key still holds, and new ids come after the copied ones */
	int64_t again = 0, fresh = 0, run2 = 0;
	assert_int_equal(store_job_add(f->st, &again, "pr.open", "{}", "pr.open:1", 0), 0);
	assert_int_equal(again, j2);
	assert_int_equal(store_job_add(f->st, &fresh, "k", "{}", NULL, 0), 0);
	assert_true(fresh > j2);
	spec.data = NULL;
	assert_int_equal(store_run_create(f->st, &run2, &spec), 0);
	assert_true(run2 > run);
	store_job j;
	assert_int_equal(store_job_claim(f->st, &j, "w", 60000), 0);
	assert_string_equal(j.delivery_id, "d1");
	assert_string_equal(j.payload, "{\"n\":1}");
	store_job_dispose(&j);

	/* a target with data is refused, or replaced with force */
	assert_int_equal(store_copy(src, f->url, 0, &stats), BASE_EEXISTS);
	assert_non_null(strstr(base_error_last(), "--force"));
	assert_int_equal(store_copy(src, f->url, 1, &stats), 0);
	json_t *runs = NULL;
	assert_int_equal(store_run_list(f->st, NULL, 0, &runs), 0);
	assert_int_equal(json_array_size(runs), 1);
	json_decref(runs);
	/* a missing source is named */
	char missing[128];
	snprintf(missing, sizeof(missing), "sqlite:%s/none.db", f->dir);
	assert_int_equal(store_copy(missing, f->url, 1, &stats), BASE_ENOTFOUND);
}

static void test_url_check_and_redact(void **state)
{
	(void)state;
	assert_int_equal(store_url_check("postgres://u:p@db.example:5432/perfbot?sslmode=require"), 0);
	assert_int_equal(store_url_check("postgresql://db/perfbot"), 0);
	assert_int_equal(store_url_check("postgresql://[::1]:5432/perfbot"), 0);
	assert_int_equal(store_url_check("sqlite:/var/perfbot.db"), 0);
	assert_int_equal(store_url_check("/var/perfbot.db"), 0);
	assert_int_equal(store_url_check("postgres://u:pw@db:port/x"), BASE_EINVALID);
	assert_null(strstr(base_error_last(), "pw"));
	assert_int_equal(store_url_check("postgres://u:pw@db:/x"), BASE_EINVALID);
	assert_int_equal(store_url_check("postgres:db"), BASE_EINVALID);
	assert_int_equal(store_url_check("mysql://db/x"), BASE_EINVALID);
	assert_int_equal(store_url_check("sqlite:"), BASE_EINVALID);
	char out[256];
	store_url_redact(out, sizeof(out), "postgres://u:secret@db:5432/perfbot?sslmode=require");
	assert_string_equal(out, "postgres://u:***@db:5432/perfbot?sslmode=require");
	store_url_redact(out, sizeof(out), "postgres://u@db/perfbot");
	assert_string_equal(out, "postgres://u@db/perfbot");
	store_url_redact(out, sizeof(out), "postgres://db/perfbot?password=secret");
	assert_string_equal(out, "postgres://db/perfbot");
	store_url_redact(out, sizeof(out), "sqlite:/var/perfbot.db");
	assert_string_equal(out, "sqlite:/var/perfbot.db");
}

#define BOTH(fn)                                                                                                   \
	{ "sqlite/" #fn, fn, setup_sqlite, teardown, NULL }, { "postgres/" #fn, fn, setup_pg, teardown, NULL }
#define PG(fn) { "postgres/" #fn, fn, setup_pg, teardown, NULL }

/* The cluster: PERFBOT_TEST_DATABASE_URL, or one started here (and stopped
 * at exit).  PostgreSQL that cannot start fails the run: nothing is skipped. */
static void pg_cluster_stop(void)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "sh tests/lib/pg.sh stop %s >/dev/null 2>&1; rm -rf %s", pg_own_dir, pg_own_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not stop the PostgreSQL cluster in %s\n", pg_own_dir);
}

static int pg_cluster(void)
{
	const char *env = getenv("PERFBOT_TEST_DATABASE_URL");
	if (env && *env) {
		snprintf(pg_url, sizeof(pg_url), "%s", env);
		return 0;
	}
	snprintf(pg_own_dir, sizeof(pg_own_dir), "/tmp/perfbot-pg-XXXXXX");
	if (!mkdtemp(pg_own_dir))
		return -1;
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "sh tests/lib/pg.sh start %s", pg_own_dir);
	FILE *p = popen(cmd, "r");
	if (!p || !fgets(pg_url, sizeof(pg_url), p)) {
		if (p)
			pclose(p);
		return -1;
	}
	pg_url[strcspn(pg_url, "\n")] = '\0';
	store_test_set_cluster(pg_url);
	atexit(pg_cluster_stop);
	return pclose(p) == 0 ? 0 : -1;
}

int main(void)
{
	if (pg_cluster() < 0) {
		fprintf(stderr, "[  FAILED  ] 1 test: PostgreSQL did not start (tests/lib/pg.sh); the PostgreSQL store "
				"tests cannot run\n");
		return 1;
	}
	const struct CMUnitTest tests[] = {
		BOTH(test_deliveries),
		BOTH(test_delivery_status_set_by_job),
		BOTH(test_delivery_put_async),
		BOTH(test_leases),
		BOTH(test_dedupe_and_runs),
		BOTH(test_concurrent_group_commit),
		BOTH(test_workers),
		BOTH(test_claim_filter),
		BOTH(test_bench_threads_apart),
		BOTH(test_queue_stats_and_schema),
		BOTH(test_run_document_merge),
		BOTH(test_wait_for_job),
		PG(test_pg_replicas_share_deliveries),
		PG(test_pg_claims_exactly_once),
		PG(test_pg_bad_delivery_fails_alone),
		PG(test_pg_notify_wakes_other_replica),
		PG(test_pg_reconnects),
		PG(test_pg_copy_from_sqlite),
		{ "postgres/test_pg_migrations_race", test_pg_migrations_race, NULL, NULL, NULL },
		{ "postgres/test_pg_unreachable", test_pg_unreachable, NULL, NULL, NULL },
		{ "test_url_check_and_redact", test_url_check_and_redact, NULL, NULL, NULL },
	};
	return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
