/* Test support: a fresh store for each store test, on SQLite or on the
 * PostgreSQL test cluster, and its removal afterwards (see store_test.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "base/error.h"
#include "tests/unit/support/store_test.h"

static const char *cluster; /* borrowed */

void store_test_set_cluster(const char *url)
{
	cluster = url;
}

static const char *cluster_url(void)
{
	const char *url = cluster ? cluster : getenv("PERFBOT_TEST_DATABASE_URL");
	if (!url || !*url)
		fail_msg("PERFBOT_TEST_DATABASE_URL is not set: run the PostgreSQL tests through tests/run.sh");
	return url;
}

void store_test_pg_admin(const char *sql)
{
	PGconn *c = PQconnectdb(cluster_url());
	assert_int_equal(PQstatus(c), CONNECTION_OK);
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
	PQfinish(c);
}

static struct store_test *fresh(const char *name)
{
	struct store_test *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/perfbot-%s-XXXXXX", name);
	assert_non_null(mkdtemp(f->dir));
	return f;
}

struct store_test *store_test_sqlite(const char *name)
{
	struct store_test *f = fresh(name);
	snprintf(f->url, sizeof(f->url), "sqlite:%s/perfbot.db", f->dir);
	if (store_open(&f->st, f->url) < 0)
		fail_msg("store_open: %s", base_error_last());
	return f;
}

struct store_test *store_test_pg(const char *name, int open_store)
{
	static int n;
	struct store_test *f = fresh(name);
	snprintf(f->dbname, sizeof(f->dbname), "%s_%d_%d", name, (int)getpid(), ++n);
	char sql[128];
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", f->dbname);
	store_test_pg_admin(sql);
	const char *url = cluster_url();
	const char *slash = strrchr(url, '/');
	assert_non_null(slash);
	snprintf(f->url, sizeof(f->url), "%.*s/%s", (int)(slash - url), url, f->dbname);
	if (open_store && store_open(&f->st, f->url) < 0)
		fail_msg("store_open: %s", base_error_last());
	return f;
}

void store_test_free(struct store_test *f)
{
	store_free(f->st);
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	if (f->dbname[0]) {
		snprintf(cmd, sizeof(cmd), "DROP DATABASE %s WITH (FORCE)", f->dbname);
		store_test_pg_admin(cmd);
	}
	free(f);
}

int store_test_setup_sqlite(void **state)
{
	*state = store_test_sqlite("store");
	return 0;
}

int store_test_setup_pg(void **state)
{
	*state = store_test_pg("store", 1);
	return 0;
}

int store_test_teardown(void **state)
{
	store_test_free(*state);
	return 0;
}
