/* Test support: the store under test, on SQLite in a fresh directory or on
 * PostgreSQL in a fresh database of the test cluster (the URL
 * PERFBOT_TEST_DATABASE_URL names, or the one given to
 * store_test_set_cluster).  Failures fail the calling cmocka test. */
#ifndef PERFBOT_TESTS_STORE_TEST_H
#define PERFBOT_TESTS_STORE_TEST_H

#include "store/store.h"

struct store_test {
	char dir[64];    /* a fresh directory, removed by store_test_free */
	char url[512];   /* the store's URL */
	char dbname[64]; /* PostgreSQL: this test's database; "" on SQLite */
	store *st;       /* owned; NULL when not opened */
};

/* The cluster's URL ("postgres://user:pw@host:port/db") instead of
 * PERFBOT_TEST_DATABASE_URL; borrowed, it must outlive the tests. */
void store_test_set_cluster(const char *url);

/* Runs one statement on the cluster's own database. */
void store_test_pg_admin(const char *sql);

/* A store on SQLite at sqlite:/tmp/perfbot-<name>-XXXXXX/perfbot.db, open
 * (owned: store_test_free). */
struct store_test *store_test_sqlite(const char *name);

/* A fresh database <name>_<pid>_<n> on the cluster, its store open and
 * migrated when open_store, else st NULL (owned: store_test_free). */
struct store_test *store_test_pg(const char *name, int open_store);

/* Closes the store, removes the directory and drops the database. */
void store_test_free(struct store_test *f);

/* cmocka setups and teardown: *state a store_test named "store" on SQLite
 * or on a fresh PostgreSQL database, and its removal. */
int store_test_setup_sqlite(void **state);
int store_test_setup_pg(void **state);
int store_test_teardown(void **state);

#endif
