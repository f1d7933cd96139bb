/* Queueing bench runs (measure/bench_queue.c) against a real SQLite store:
 * what a push or pull request records, which older runs a newer one
 * supersedes, and what is not measured at all.  The job itself is covered
 * by test_measure_bench_run.c (fake GitHub, sandbox and clock) and
 * tests/integration/bench-github.test.js (the real binary). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "measure/services.h"
#include "base/error.h"
#include "base/log.h"

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define SHA_C "cccccccccccccccccccccccccccccccccccccccc"
#define ZERO "0000000000000000000000000000000000000000"

typedef struct fixture {
	char dir[64];
	store *st;
	measure_services svc;
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/perfbot-benchjob-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	char url[128];
	snprintf(url, sizeof(url), "sqlite:%s/perfbot.db", f->dir);
	if (store_open(&f->st, url) < 0)
		return -1;
	f->svc.store = f->st;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	store_free(f->st);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static measure_bench_push push(const char *ref, const char *before, const char *after)
{
	return (measure_bench_push){ .repository = "octo/demo", .installation_id = 7, .ref = ref, .before = before,
				   .after = after, .default_branch = "main",
				   .clone_url = "https://github.com/octo/demo.git", .sender = "mona" };
}

static json_t *run(fixture *f, int64_t id)
{
	json_t *r = NULL;
	assert_int_equal(store_run_get(f->st, id, &r), 0);
	return r;
}

static const char *s(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* The state of the job queued for a run (through its dedupe key). */
static char *job_state(fixture *f, int64_t run_id)
{
	json_t *r = run(f, run_id), *jobs = NULL;
	const char *key = s(json_object_get(r, "data"), "job_key");
	assert_non_null(key);
	assert_int_equal(store_job_list(f->st, &jobs, 100), 0);
	char *out = NULL;
	size_t i;
	json_t *j;
	json_array_foreach(jobs, i, j)
	{
		if (s(j, "dedupe_key") && !strcmp(s(j, "dedupe_key"), key)) {
			assert_string_equal(s(j, "kind"), "bench.run");
			out = strdup(s(j, "state"));
		}
	}
	json_decref(jobs);
	json_decref(r);
	assert_non_null(out);
	return out;
}

static void push_records_run_and_job(void **state)
{
	fixture *f = *state;
	measure_bench_push p = push("refs/heads/main", SHA_A, SHA_B);
	int64_t id = 0;
	assert_int_equal(measure_bench_queue_push(&id, &f->svc, &p), 0);
	assert_true(id > 0);
	json_t *r = run(f, id);
	assert_string_equal(s(r, "kind"), "bench");
	assert_string_equal(s(r, "state"), "queued");
	assert_string_equal(s(r, "head_sha"), SHA_B);
	assert_string_equal(s(r, "base_sha"), SHA_A);
	assert_string_equal(s(r, "branch"), "main");
	assert_string_equal(s(r, "trigger"), "push");
	const json_t *d = json_object_get(r, "data");
	assert_string_equal(s(d, "ref"), "refs/heads/main");
	assert_string_equal(s(d, "default_branch"), "main");
	assert_string_equal(s(d, "clone_url"), "https://github.com/octo/demo.git");
	assert_string_equal(s(d, "group"), "branch:main");
	json_decref(r);
	char *js = job_state(f, id);
	assert_string_equal(js, "queued");
	free(js);

	/* the same push delivered again: the same run */
	int64_t again = 0;
	assert_int_equal(measure_bench_queue_push(&again, &f->svc, &p), 0);
	assert_int_equal(again, id);

	/* a new branch has no base */
	measure_bench_push nb = push("refs/heads/topic", ZERO, SHA_C);
	assert_int_equal(measure_bench_queue_push(&id, &f->svc, &nb), 0);
	r = run(f, id);
	assert_true(json_is_null(json_object_get(r, "base_sha")) || !json_object_get(r, "base_sha"));
	json_decref(r);
}

static void nothing_for_deletions_tags_and_bad_input(void **state)
{
	fixture *f = *state;
	int64_t id = 99;
	measure_bench_push del = push("refs/heads/main", SHA_A, ZERO);
	del.deleted = 1;
	assert_int_equal(measure_bench_queue_push(&id, &f->svc, &del), 0);
	assert_int_equal(id, 0);
	measure_bench_push tag = push("refs/tags/v1", ZERO, SHA_A);
	assert_int_equal(measure_bench_queue_push(&id, &f->svc, &tag), 0);
	assert_int_equal(id, 0);
	measure_bench_push bad = push("refs/heads/main", SHA_A, "not-a-sha");
	assert_int_equal(measure_bench_queue_push(&id, &f->svc, &bad), BASE_EINVALID);
	measure_bench_pull pr = { .repository = "octo/demo", .number = 0, .head_sha = SHA_A, .base_sha = SHA_B };
	assert_int_equal(measure_bench_queue_pull(&id, &f->svc, &pr), BASE_EINVALID);
	json_t *runs = NULL;
	assert_int_equal(store_run_list(f->st, NULL, 10, &runs), 0);
	assert_int_equal(json_array_size(runs), 0);
	json_decref(runs);
}

static void newer_push_supersedes_queued_and_running(void **state)
{
	fixture *f = *state;
	int64_t r1 = 0, r2 = 0, r3 = 0, other = 0;
	measure_bench_push p1 = push("refs/heads/main", SHA_A, SHA_B);
	measure_bench_push p2 = push("refs/heads/main", SHA_B, SHA_C);
	measure_bench_push p3 = push("refs/heads/main", SHA_C, SHA_A);
	measure_bench_push po = push("refs/heads/topic", SHA_A, SHA_B);
	assert_int_equal(measure_bench_queue_push(&r1, &f->svc, &p1), 0);
	assert_int_equal(measure_bench_queue_push(&other, &f->svc, &po), 0);
	assert_int_equal(measure_bench_queue_push(&r2, &f->svc, &p2), 0);

	/* queued: its job is cancelled and the run too */
	json_t *r = run(f, r1);
	assert_string_equal(s(r, "state"), "cancelled");
	char want[64];
	snprintf(want, sizeof(want), "superseded by run %lld", (long long)r2);
	assert_string_equal(s(r, "reason"), want);
	json_decref(r);
	char *js = job_state(f, r1);
	assert_string_equal(js, "cancelled");
	free(js);
	/* another branch is left alone */
	r = run(f, other);
	assert_string_equal(s(r, "state"), "queued");
	json_decref(r);

	/* running: the job is claimed, so the run is asked to stop */
	store_job job;
	memset(&job, 0, sizeof(job));
	int claimed = 0;
	while (store_job_claim(f->st, &job, "w", 60000) == 0) {
		json_t *pl = json_loads(job.payload, 0, NULL);
		int64_t rid = json_integer_value(json_object_get(pl, "run_id"));
		json_decref(pl);
		if (rid == r2) {
			claimed = 1;
			assert_int_equal(store_run_set_state(f->st, r2, STORE_RUN_RUNNING, NULL), 0);
		}
		store_job_dispose(&job);
		if (claimed)
			break;
	}
	assert_true(claimed);
	assert_int_equal(measure_bench_queue_push(&r3, &f->svc, &p3), 0);
	r = run(f, r2);
	assert_string_equal(s(r, "state"), "cancelling");
	json_decref(r);
	r = run(f, r3);
	assert_string_equal(s(r, "state"), "queued");
	json_decref(r);
	js = job_state(f, r3);
	assert_string_equal(js, "queued");
	free(js);
}

static void pulls_have_their_own_group_and_rerun_as_pulls(void **state)
{
	fixture *f = *state;
	measure_bench_pull pr = { .repository = "octo/demo", .installation_id = 7, .number = 12, .head_sha = SHA_B,
				.head_ref = "feature", .base_sha = SHA_A, .base_ref = "main",
				.clone_url = "https://github.com/octo/demo.git", .trigger = "pull_request", .sender = "mona" };
	int64_t r1 = 0, r2 = 0, branch_run = 0;
	assert_int_equal(measure_bench_queue_pull(&r1, &f->svc, &pr), 0);
	json_t *r = run(f, r1);
	const json_t *d = json_object_get(r, "data");
	assert_int_equal(json_integer_value(json_object_get(d, "pull")), 12);
	assert_string_equal(s(d, "ref"), "refs/pull/12/head");
	assert_string_equal(s(d, "group"), "pull:12");
	assert_string_equal(s(d, "base_ref"), "main");
	assert_string_equal(s(r, "trigger"), "pull_request");
	json_decref(r);

	/* a push to the PR's branch is another group */
	measure_bench_push bp = push("refs/heads/feature", SHA_A, SHA_B);
	assert_int_equal(measure_bench_queue_push(&branch_run, &f->svc, &bp), 0);
	r = run(f, r1);
	assert_string_equal(s(r, "state"), "queued");
	json_decref(r);

	/* "Re-run" of the check run: the handler re-queues with data.ref */
	measure_bench_push again = push("refs/pull/12/head", SHA_A, SHA_C);
	assert_int_equal(measure_bench_queue_push(&r2, &f->svc, &again), 0);
	r = run(f, r2);
	assert_string_equal(s(r, "trigger"), "rerequested");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "data"), "pull")), 12);
	assert_string_equal(s(r, "head_sha"), SHA_C);
	json_decref(r);
	r = run(f, r1);
	assert_string_equal(s(r, "state"), "cancelled");
	json_decref(r);
}

int main(void)
{
	base_log_configure(BASE_LOG_WARN, 0, 2);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(push_records_run_and_job, setup, teardown),
		cmocka_unit_test_setup_teardown(nothing_for_deletions_tags_and_bad_input, setup, teardown),
		cmocka_unit_test_setup_teardown(newer_push_supersedes_queued_and_running, setup, teardown),
		cmocka_unit_test_setup_teardown(pulls_have_their_own_group_and_rerun_as_pulls, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
