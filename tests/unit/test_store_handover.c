/* Unit tests: Managed Agents work items handed over between replicas through
 * the store (store_handover_put / store_handover_claim): the row comes back
 * whole once, only for its environment and session and before it expires,
 * expired rows are swept, and of many claimers racing on two handles on one
 * store (two replicas) exactly one gets each row.  Against SQLite and
 * against PostgreSQL (a fresh database per test on the cluster
 * PERFBOT_TEST_DATABASE_URL names: tests/run.sh starts one; without it the
 * PostgreSQL tests fail, they are not skipped). */
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
#include <unistd.h>

#include "base/clock.h"
#include "base/error.h"
#include "store/store.h"
#include "tests/unit/support/store_test.h"

static void test_put_then_claim_once(void **state)
{
	struct store_test *f = *state;
	int64_t now = base_wall_ms();
	store_handover h;
	assert_int_equal(store_handover_put(f->st, "env_1", "sesn_a", "work_1", "c2VjcmV0", "replica-a", now, now + 3000),
			 0);
	/* another session, another environment: not theirs */
	assert_int_equal(store_handover_claim(f->st, "env_1", "sesn_b", now, &h), BASE_ENOTFOUND);
	assert_null(h.secret);
	assert_int_equal(store_handover_claim(f->st, "env_2", "sesn_a", now, &h), BASE_ENOTFOUND);
	assert_int_equal(store_handover_claim(f->st, "env_1", "sesn_a", now + 10, &h), 0);
	assert_string_equal(h.environment_id, "env_1");
	assert_string_equal(h.session_id, "sesn_a");
	assert_string_equal(h.work_id, "work_1");
	assert_string_equal(h.secret, "c2VjcmV0");
	assert_string_equal(h.polled_by, "replica-a");
	assert_true(h.polled_ms == now);
	assert_true(h.expires_ms == now + 3000);
	store_handover_dispose(&h);
	assert_null(h.secret);
	/* gone once claimed */
	assert_int_equal(store_handover_claim(f->st, "env_1", "sesn_a", now + 10, &h), BASE_ENOTFOUND);

	/* the same item polled again (after a reclaim): one row, the newest */
	assert_int_equal(store_handover_put(f->st, "env_1", "sesn_a", "work_2", "old", "replica-a", now, now + 3000), 0);
	assert_int_equal(store_handover_put(f->st, "env_1", "sesn_a", "work_2", "new", "replica-c", now + 1, now + 3001),
			 0);
	assert_int_equal(store_handover_claim(f->st, "env_1", "sesn_a", now + 10, &h), 0);
	assert_string_equal(h.secret, "new");
	assert_string_equal(h.polled_by, "replica-c");
	store_handover_dispose(&h);
	assert_int_equal(store_handover_claim(f->st, "env_1", "sesn_a", now + 10, &h), BASE_ENOTFOUND);

	/* two items of one session: the older first */
	assert_int_equal(store_handover_put(f->st, "env_1", "sesn_a", "work_4", "s4", "r", now + 5, now + 3000), 0);
	assert_int_equal(store_handover_put(f->st, "env_1", "sesn_a", "work_3", "s3", "r", now + 2, now + 3000), 0);
	assert_int_equal(store_handover_claim(f->st, "env_1", "sesn_a", now + 10, &h), 0);
	assert_string_equal(h.work_id, "work_3");
	store_handover_dispose(&h);
	assert_int_equal(store_handover_claim(f->st, "env_1", "sesn_a", now + 10, &h), 0);
	assert_string_equal(h.work_id, "work_4");
	store_handover_dispose(&h);

	/* what a caller must give */
	assert_int_equal(store_handover_put(f->st, "env_1", "sesn_a", "work_5", NULL, "r", now, now + 1), BASE_EINVALID);
	assert_int_equal(store_handover_claim(f->st, NULL, "sesn_a", now, &h), BASE_EINVALID);
}

static void test_expired_rows_not_claimed_and_swept(void **state)
{
	struct store_test *f = *state;
	int64_t now = base_wall_ms();
	store_handover h;
	assert_int_equal(store_handover_put(f->st, "env_1", "sesn_a", "work_1", "s1", "r", now, now + 1000), 0);
	/* at expires_ms the row is no longer anyone's: the service reclaims the item */
	assert_int_equal(store_handover_claim(f->st, "env_1", "sesn_a", now + 1000, &h), BASE_ENOTFOUND);
	assert_int_equal(store_handover_claim(f->st, "env_1", "sesn_a", now + 5000, &h), BASE_ENOTFOUND);
	/* still there for a claim before it (a clock behind) ... */
	assert_int_equal(store_handover_put(f->st, "env_1", "sesn_b", "work_2", "s2", "r", now, now + 1000), 0);
	/* ... until a later put sweeps what expired, whatever the session */
	assert_int_equal(store_handover_put(f->st, "env_1", "sesn_c", "work_3", "s3", "r", now + 1000, now + 2000), 0);
	assert_int_equal(store_handover_claim(f->st, "env_1", "sesn_a", now, &h), BASE_ENOTFOUND);
	assert_int_equal(store_handover_claim(f->st, "env_1", "sesn_b", now, &h), BASE_ENOTFOUND);
	assert_int_equal(store_handover_claim(f->st, "env_1", "sesn_c", now + 1999, &h), 0);
	assert_string_equal(h.work_id, "work_3");
	store_handover_dispose(&h);
}

#define ROWS 40
#define CLAIMERS 6

struct race {
	store *st;
	int64_t now;
	atomic_int go;
	atomic_int claimed[ROWS];
	atomic_int wins;
	atomic_int errors;
};

static void *claimer(void *arg)
{
	struct race *r = arg;
	while (!atomic_load(&r->go))
		usleep(100);
	for (;;) {
		store_handover h;
		int error = store_handover_claim(r->st, "env_1", "sesn_r", r->now, &h);
		if (error == BASE_ENOTFOUND)
			break;
		if (error < 0) {
			/* busy on the other connection: try again */
			if (error != BASE_ERETRY)
				atomic_fetch_add(&r->errors, 1);
			continue;
		}
		long n = strtol(h.work_id + 5, NULL, 10);
		if (n >= 0 && n < ROWS)
			atomic_fetch_add(&r->claimed[n], 1);
		atomic_fetch_add(&r->wins, 1);
		store_handover_dispose(&h);
	}
	return NULL;
}

static void test_one_claimer_per_row(void **state)
{
	struct store_test *f = *state;
	store *other = NULL;
	/* a second handle on the same file: another replica's connections */
	assert_int_equal(store_open(&other, f->url), 0);
	int64_t now = base_wall_ms();
	for (int round = 0; round < 2; round++) {
		int rows = round == 0 ? 1 : ROWS;
		for (int i = 0; i < rows; i++) {
			char id[32];
			snprintf(id, sizeof(id), "work_%d", i);
			assert_int_equal(store_handover_put(f->st, "env_1", "sesn_r", id, "s", "r", now, now + 60000), 0);
		}
		struct race ra = { 0 }, rb = { 0 };
		ra.st = f->st;
		rb.st = other;
		ra.now = rb.now = now + 1;
		pthread_t t[2 * CLAIMERS];
		for (int i = 0; i < CLAIMERS; i++) {
			assert_int_equal(pthread_create(&t[i], NULL, claimer, &ra), 0);
			assert_int_equal(pthread_create(&t[CLAIMERS + i], NULL, claimer, &rb), 0);
		}
		atomic_store(&ra.go, 1);
		atomic_store(&rb.go, 1);
		for (int i = 0; i < 2 * CLAIMERS; i++)
			pthread_join(t[i], NULL);
		assert_int_equal(atomic_load(&ra.errors) + atomic_load(&rb.errors), 0);
		assert_int_equal(atomic_load(&ra.wins) + atomic_load(&rb.wins), rows);
		for (int i = 0; i < rows; i++)
			assert_int_equal(atomic_load(&ra.claimed[i]) + atomic_load(&rb.claimed[i]), 1);
	}
	store_free(other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_then_claim_once, store_test_setup_sqlite, store_test_teardown),
		cmocka_unit_test_setup_teardown(test_expired_rows_not_claimed_and_swept, store_test_setup_sqlite,
						store_test_teardown),
		cmocka_unit_test_setup_teardown(test_one_claimer_per_row, store_test_setup_sqlite, store_test_teardown),
		{ "postgres/test_put_then_claim_once", test_put_then_claim_once, store_test_setup_pg,
		  store_test_teardown, NULL },
		{ "postgres/test_expired_rows_not_claimed_and_swept", test_expired_rows_not_claimed_and_swept,
		  store_test_setup_pg, store_test_teardown, NULL },
		{ "postgres/test_one_claimer_per_row", test_one_claimer_per_row, store_test_setup_pg,
		  store_test_teardown, NULL },
	};
	return cmocka_run_group_tests_name("store_handover", tests, NULL, NULL);
}
