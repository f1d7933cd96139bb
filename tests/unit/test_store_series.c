/* Unit tests: the store's dashboard operations: a branch's benchmark
 * series (which runs count, order, limit, alignment of missing values,
 * failed measurements, the metric) and sign-in sessions (expiry, purge,
 * delete), against SQLite and against PostgreSQL (a fresh database per
 * test on the cluster PERFBOT_TEST_DATABASE_URL names: tests/run.sh starts
 * one; without it the PostgreSQL tests fail, they are not skipped). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "base/error.h"
#include "store/store.h"
#include "tests/unit/support/store_test.h"

/* A bench run of sha on branch, ended in state, with a measurement per
 * (name, cycles) pair (cycles < 0: a failed measurement). */
static int64_t bench_run(store *st, const char *repo, const char *branch, const char *trigger, const char *sha,
			 store_run_state state, const char *author, int64_t at_ms, const char *const *names,
			 const long *cycles, size_t n)
{
	json_t *data = json_pack("{s:{s:s, s:s, s:I}}", "commit", "author", author, "message", "a commit", "at_ms",
				 (json_int_t)at_ms);
	store_run_spec spec = { .kind = STORE_RUN_BENCH, .repository = repo, .installation_id = 1, .head_sha = sha,
				.branch = branch, .trigger = trigger, .data = data };
	int64_t id = 0;
	assert_int_equal(store_run_create(st, &id, &spec), 0);
	json_decref(data);
	for (size_t i = 0; i < n; i++) {
		json_t *m = cycles[i] >= 0 ? json_pack("{s:s, s:I, s:I}", "status", "ok", "estimated_cycles",
						       (json_int_t)cycles[i], "instructions", (json_int_t)(cycles[i] / 2))
					   : json_pack("{s:s, s:s}", "status", "failed", "error", "exit 1");
		assert_int_equal(store_measurement_put(st, NULL, id, repo, sha, names[i], m), 0);
		json_decref(m);
	}
	assert_int_equal(store_run_set_state(st, id, state, NULL), 0);
	return id;
}

static const json_t *values_of(const json_t *out, const char *bench)
{
	return json_object_get(json_object_get(out, "series"), bench);
}

static void assert_values(const json_t *values, const long *want, size_t n)
{
	assert_int_equal(json_array_size(values), n);
	for (size_t i = 0; i < n; i++) {
		json_t *v = json_array_get(values, i);
		if (want[i] < 0)
			assert_true(json_is_null(v));
		else
			assert_int_equal(json_integer_value(v), want[i]);
	}
}

static void test_series(void **state)
{
	struct store_test *f = *state;
	store *st = f->st;
	const char *R = "o/r";
	const char *ab[] = { "a", "b" };
	json_t *out = NULL;

	assert_int_equal(store_series_get(st, &out, R, "main", "cycles", 10), 0);
	assert_int_equal(json_array_size(json_object_get(out, "commits")), 0);
	assert_int_equal(json_object_size(json_object_get(out, "series")), 0);
	json_decref(out);

	int64_t r1 = bench_run(st, R, "main", "push", "s1", STORE_RUN_DONE, "ann", 1000, ab, (long[]){ 100, 200 }, 2);
	/* b failed at s2: null there; a only */
	bench_run(st, R, "main", "push", "s2", STORE_RUN_DONE, "bo", 2000, ab, (long[]){ 110, -1 }, 2);
	/* not part of main's history: another branch, a pull request, a run that failed, another repository */
	bench_run(st, R, "dev", "push", "x1", STORE_RUN_DONE, "x", 0, ab, (long[]){ 1, 1 }, 2);
	bench_run(st, R, "main", "pull_request", "x2", STORE_RUN_DONE, "x", 0, ab, (long[]){ 1, 1 }, 2);
	bench_run(st, R, "main", "push", "x3", STORE_RUN_FAILED, "x", 0, ab, (long[]){ 1, 1 }, 2);
	bench_run(st, "o/other", "main", "push", "x4", STORE_RUN_DONE, "x", 0, ab, (long[]){ 1, 1 }, 2);
	/* s3 has only b; s1 measured again later: its newest run counts, at its place */
	bench_run(st, R, "main", "push", "s3", STORE_RUN_DONE, "cy", 3000, ab + 1, (long[]){ 230 }, 1);
	int64_t r1b = bench_run(st, R, "main", "push", "s1", STORE_RUN_DONE, "ann", 1000, ab, (long[]){ 101, 201 }, 2);

	assert_int_equal(store_series_get(st, &out, R, "main", "cycles", 10), 0);
	const json_t *commits = json_object_get(out, "commits");
	assert_int_equal(json_array_size(commits), 3);
	/* oldest first, by run: s2, s3, then s1 measured again */
	assert_string_equal(json_string_value(json_object_get(json_array_get(commits, 0), "sha")), "s2");
	assert_string_equal(json_string_value(json_object_get(json_array_get(commits, 1), "sha")), "s3");
	assert_string_equal(json_string_value(json_object_get(json_array_get(commits, 2), "sha")), "s1");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(commits, 2), "run_id")), r1b);
	assert_true(r1b != r1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(commits, 0), "author")), "bo");
	assert_string_equal(json_string_value(json_object_get(json_array_get(commits, 0), "message")), "a commit");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(commits, 1), "at_ms")), 3000);
	assert_int_equal(json_object_size(json_object_get(out, "series")), 2);
	assert_values(values_of(out, "a"), (long[]){ 110, -1, 101 }, 3);
	assert_values(values_of(out, "b"), (long[]){ -1, 230, 201 }, 3);
	json_decref(out);

	/* the newest `limit` commits, still oldest first; another metric */
	assert_int_equal(store_series_get(st, &out, R, "main", "instructions", 2), 0);
	commits = json_object_get(out, "commits");
	assert_int_equal(json_array_size(commits), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(commits, 0), "sha")), "s3");
	assert_values(values_of(out, "a"), (long[]){ -1, 50 }, 2);
	assert_values(values_of(out, "b"), (long[]){ 115, 100 }, 2);
	json_decref(out);

	/* arguments the store refuses */
	assert_int_equal(store_series_get(st, &out, R, "main", "cycles", 0), BASE_EINVALID);
	assert_int_equal(store_series_get(st, &out, R, "main", "cycles", 5001), BASE_EINVALID);
	assert_int_equal(store_series_get(st, &out, R, "main", "wall", 10), BASE_EINVALID);
	assert_null(out);
}

static void test_series_large(void **state)
{
	struct store_test *f = *state;
	const char *names[] = { "p" };
	char sha[16];
	for (int i = 0; i < 300; i++) {
		snprintf(sha, sizeof(sha), "c%d", i);
		bench_run(f->st, "o/big", "main", "push", sha, STORE_RUN_DONE, "a", i, names, (long[]){ 1000 + i }, 1);
	}
	json_t *out = NULL;
	assert_int_equal(store_series_get(f->st, &out, "o/big", "main", "cycles", 200), 0);
	assert_int_equal(json_array_size(json_object_get(out, "commits")), 200);
	const json_t *v = values_of(out, "p");
	assert_int_equal(json_array_size(v), 200);
	assert_int_equal(json_integer_value(json_array_get(v, 0)), 1100);
	assert_int_equal(json_integer_value(json_array_get(v, 199)), 1299);
	json_decref(out);
}

/* The stamp changes with every measurement stored and every change to a
 * push-triggered bench run of the branch, and not otherwise. */
static void test_series_stamp(void **state)
{
	struct store_test *f = *state;
	const char *a[] = { "a" };
	char s0[96], s1[96], s2[96], s3[96], s4[96];
	assert_int_equal(store_series_stamp(f->st, s0, sizeof(s0), "o/r", "main"), 0);
	int64_t run = bench_run(f->st, "o/r", "main", "push", "c1", STORE_RUN_DONE, "a", 1, a, (long[]){ 10 }, 1);
	assert_int_equal(store_series_stamp(f->st, s1, sizeof(s1), "o/r", "main"), 0);
	assert_string_not_equal(s0, s1);
	assert_int_equal(store_series_stamp(f->st, s2, sizeof(s2), "o/r", "main"), 0);
	assert_string_equal(s1, s2);
	/* a measurement more of the same run */
	json_t *m = json_pack("{s:s, s:I}", "status", "ok", "estimated_cycles", (json_int_t)20);
	assert_int_equal(store_measurement_put(f->st, NULL, run, "o/r", "c1", "b", m), 0);
	json_decref(m);
	assert_int_equal(store_series_stamp(f->st, s3, sizeof(s3), "o/r", "main"), 0);
	assert_string_not_equal(s2, s3);
	/* a run of the branch that has not finished yet, then finishes */
	store_run_spec spec = { .kind = STORE_RUN_BENCH, .repository = "o/r", .installation_id = 1, .head_sha = "c2",
				.branch = "main", .trigger = "push" };
	int64_t id = 0;
	assert_int_equal(store_run_create(f->st, &id, &spec), 0);
	assert_int_equal(store_series_stamp(f->st, s4, sizeof(s4), "o/r", "main"), 0);
	assert_string_not_equal(s3, s4);
	assert_int_equal(store_run_set_state(f->st, id, STORE_RUN_DONE, NULL), 0);
	assert_int_equal(store_series_stamp(f->st, s0, sizeof(s0), "o/r", "main"), 0);
	assert_string_not_equal(s4, s0);
	/* another branch's runs leave it */
	store_run_spec other = spec;
	other.branch = "dev";
	assert_int_equal(store_run_create(f->st, &id, &other), 0);
	assert_int_equal(store_series_stamp(f->st, s1, sizeof(s1), "o/r", "main"), 0);
	assert_string_equal(s0, s1);
	assert_int_equal(store_series_stamp(f->st, s1, 1, "o/r", "main"), BASE_EINVALID);
}

static void test_sessions(void **state)
{
	struct store_test *f = *state;
	store *st = f->st;
	store_session s = { .id_hash = "h1", .login = "alice", .user_id = 7, .avatar_url = NULL, .token = "ghu_x",
			    .csrf = "c1", .created_ms = 1000, .expires_ms = 5000 };
	assert_int_equal(store_session_put(st, &s), 0);
	assert_int_equal(store_session_put(st, &s), BASE_EEXISTS);
	store_session got;
	assert_int_equal(store_session_get(st, "h1", 4999, &got), 0);
	assert_string_equal(got.login, "alice");
	assert_string_equal(got.token, "ghu_x");
	assert_string_equal(got.csrf, "c1");
	assert_null(got.avatar_url);
	assert_int_equal(got.user_id, 7);
	assert_int_equal(got.expires_ms, 5000);
	store_session_dispose(&got);
	/* expired at its expiry */
	assert_int_equal(store_session_get(st, "h1", 5000, &got), BASE_ENOTFOUND);
	assert_null(got.login);
	assert_int_equal(store_session_get(st, "nope", 0, &got), BASE_ENOTFOUND);
	/* a new session purges the expired ones */
	store_session s2 = { .id_hash = "h2", .login = "bob", .csrf = "c2", .created_ms = 6000, .expires_ms = 9000 };
	assert_int_equal(store_session_put(st, &s2), 0);
	assert_int_equal(store_session_get(st, "h1", 0, &got), BASE_ENOTFOUND);
	assert_int_equal(store_session_get(st, "h2", 6000, &got), 0);
	store_session_dispose(&got);
	assert_int_equal(store_session_delete(st, "h2"), 0);
	assert_int_equal(store_session_get(st, "h2", 6000, &got), BASE_ENOTFOUND);
	assert_int_equal(store_session_delete(st, "h2"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_series, store_test_setup_sqlite, store_test_teardown),
		cmocka_unit_test_setup_teardown(test_series_large, store_test_setup_sqlite, store_test_teardown),
		cmocka_unit_test_setup_teardown(test_series_stamp, store_test_setup_sqlite, store_test_teardown),
		cmocka_unit_test_setup_teardown(test_sessions, store_test_setup_sqlite, store_test_teardown),
		{ "postgres/test_series", test_series, store_test_setup_pg, store_test_teardown, NULL },
		{ "postgres/test_series_large", test_series_large, store_test_setup_pg, store_test_teardown, NULL },
		{ "postgres/test_series_stamp", test_series_stamp, store_test_setup_pg, store_test_teardown, NULL },
		{ "postgres/test_sessions", test_sessions, store_test_setup_pg, store_test_teardown, NULL },
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
