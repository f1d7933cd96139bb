/* store_copy: moves an installation from its SQLite file to PostgreSQL.
 *
 * Both stores are opened through store_open first (the source must exist;
 * both get their migrations, so their tables match), then the rows are read
 * with SQLite directly and written with libpq in one transaction: a copy
 * that fails half-way leaves the target as it was.  Ids are kept, so runs,
 * measurements and jobs keep pointing at one another, and each id sequence
 * is advanced past the largest id copied.  Bodies are copied as bytes (from
 * the SQLite file's body log for the deliveries whose body is there); every
 * other value as text, which PostgreSQL converts to the column's type
 * (bigint, jsonb). */
#include "store/store_int.h"
#include "base/error.h"
#include "store/body_log.h"

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct table {
	const char *name;
	const char *columns; /* the same on both sides */
	int ncolumns;
	int serial;          /* has an id sequence to advance */
};

/* Parents before children; every table of the schema but managed_handover,
 * whose rows (work items' secrets) live only seconds. */
static const struct table TABLES[] = {
	{ "installations", "id, account, state, updated_ms", 4, 0 },
	{ "repositories", "installation_id, id, full_name", 3, 0 },
	{ "hooks", "hook_id, app_id, delivery_id, updated_ms", 4, 0 },
	{ "deliveries", "id, event, action, installation_id, repository, headers, body, received_ms, status", 9, 0 },
	{ "jobs",
	  "id, kind, payload, delivery_id, dedupe_key, state, attempts, completions, run_at_ms, lease_owner,"
	  " lease_expires_ms, error, note, created_ms, updated_ms",
	  15, 1 },
	{ "runs",
	  "id, kind, repository, installation_id, head_sha, base_sha, branch, trigger, state, reason, data, created_ms,"
	  " updated_ms",
	  13, 1 },
	{ "measurements", "id, run_id, repository, commit_sha, benchmark, data, created_ms, ok, instructions, estimated_cycles",
	  10, 1 },
	{ "proposals", "run_id, data, created_ms, updated_ms", 4, 0 },
	{ "pulls", "run_id, repository, number, branch, state, data, updated_ms", 7, 0 },
	{ "approvals", "run_id, \"user\", via, created_ms", 4, 0 },
	{ "audit", "id, at_ms, actor, action, subject, detail", 6, 1 },
	{ "run_tokens", "token_hash, run_id, created_ms", 3, 0 },
	{ "sessions", "id_hash, login, user_id, avatar_url, token, csrf, created_ms, expires_ms", 8, 0 },
};
#define NTABLES (sizeof(TABLES) / sizeof(TABLES[0]))
#define MAX_COLUMNS 16

static int pg_fail(PGconn *pg, PGresult *res, const char *what)
{
	char msg[300];
	const char *m = res ? PQresultErrorMessage(res) : "";
	snprintf(msg, sizeof(msg), "%s", m && *m ? m : PQerrorMessage(pg));
	msg[strcspn(msg, "\n")] = '\0';
	return base_error_set(BASE_EGENERIC, "store copy: %s: %s", what, msg);
}

static int pg_simple(PGconn *pg, const char *sql, const char *what, PGresult **keep)
{
	PGresult *res = PQexec(pg, sql);
	ExecStatusType st = PQresultStatus(res);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		int error = pg_fail(pg, res, what);
		PQclear(res);
		return error;
	}
	if (keep)
		*keep = res;
	else
		PQclear(res);
	return 0;
}

/* A delivery whose body is in the body log: the body column's value read
 * from there (*owned to free), else the column as it is. */
static int body_value(sqlite3_stmt *q, int col, int ncolumns, const char *bodies_dir, const char **value, int *length,
		      char **owned)
{
	*owned = NULL;
	if (sqlite3_column_type(q, ncolumns) != SQLITE_NULL && sqlite3_column_int64(q, ncolumns + 1) >= 0) {
		size_t n = (size_t)sqlite3_column_int64(q, ncolumns + 2);
		int error = store_body_log_read(bodies_dir, sqlite3_column_int(q, ncolumns),
					       sqlite3_column_int64(q, ncolumns + 1), n, owned);
		if (error < 0)
			return error;
		*value = *owned;
		*length = (int)n;
		return 0;
	}
	const void *b = sqlite3_column_blob(q, col);
	*length = sqlite3_column_bytes(q, col);
	*value = b ? b : "";
	return 0;
}

static int copy_table(sqlite3 *db, PGconn *pg, const struct table *t, const char *bodies_dir, int64_t *rows)
{
	char sql[1024], ins[1024];
	int has_body = strstr(t->columns, "body") != NULL;
	/* deliveries: where the body log holds the body, after the copied columns */
	snprintf(sql, sizeof(sql), "SELECT %s%s FROM %s", t->columns,
		 has_body ? ", body_segment, body_offset, body_length" : "", t->name);
	size_t n = (size_t)snprintf(ins, sizeof(ins), "INSERT INTO %s(%s) VALUES(", t->name, t->columns);
	for (int i = 0; i < t->ncolumns; i++)
		n += (size_t)snprintf(ins + n, sizeof(ins) - n, "%s$%d", i ? "," : "", i + 1);
	snprintf(ins + n, sizeof(ins) - n, ")");
	sqlite3_stmt *q = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
		return base_error_set(BASE_EGENERIC, "store copy: read %s: %s", t->name, sqlite3_errmsg(db));
	PGresult *res = PQprepare(pg, t->name, ins, t->ncolumns, NULL);
	int error = 0;
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		error = pg_fail(pg, res, t->name);
	PQclear(res);
	int rc;
	while (error == 0 && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *values[MAX_COLUMNS];
		int lengths[MAX_COLUMNS], formats[MAX_COLUMNS];
		char *body = NULL;
		for (int i = 0; error == 0 && i < t->ncolumns; i++) {
			int type = sqlite3_column_type(q, i);
			lengths[i] = 0;
			formats[i] = 0;
			if (!strcmp(sqlite3_column_name(q, i), "body")) {
				/* bytes as they were received, sent binary */
				if (type == SQLITE_NULL && sqlite3_column_type(q, t->ncolumns) == SQLITE_NULL) {
					values[i] = NULL;
					continue;
				}
				error = body_value(q, i, t->ncolumns, bodies_dir, &values[i], &lengths[i], &body);
				formats[i] = 1;
			} else if (type == SQLITE_NULL) {
				values[i] = NULL;
			} else {
				values[i] = (const char *)sqlite3_column_text(q, i);
			}
		}
		if (error < 0) {
			free(body);
			break;
		}
		res = PQexecPrepared(pg, t->name, t->ncolumns, values, lengths, formats, 0);
		free(body);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			error = pg_fail(pg, res, t->name);
		PQclear(res);
		if (error == 0)
			(*rows)++;
	}
	if (error == 0 && rc != SQLITE_DONE)
		error = base_error_set(BASE_EGENERIC, "store copy: read %s: %s", t->name, sqlite3_errmsg(db));
	sqlite3_finalize(q);
	if (error == 0 && t->serial) {
		snprintf(sql, sizeof(sql),
			 "SELECT setval(pg_get_serial_sequence('%s', 'id'), coalesce(max(id), 0) + 1, false) FROM %s",
			 t->name, t->name);
		error = pg_simple(pg, sql, t->name, NULL);
	}
	return error;
}

int store_copy(const char *from_url, const char *to_url, int force, store_copy_stats *stats)
{
	memset(stats, 0, sizeof(*stats));
	if (strncmp(from_url, "sqlite:", 7) != 0 || !from_url[7])
		return base_error_set(BASE_EINVALID, "store copy: --from: expected sqlite:PATH");
	if (strncmp(to_url, "postgres://", 11) != 0 && strncmp(to_url, "postgresql://", 13) != 0)
		return base_error_set(BASE_EINVALID, "store copy: --to: expected postgres://...");
	/* both at the newest schema first */
	store *src = NULL, *dst = NULL;
	int error = store_open_existing(&src, from_url);
	if (error == 0)
		error = store_open(&dst, to_url);
	store_free(src);
	store_free(dst);
	if (error < 0)
		return error;

	char bodies_dir[4200];
	if ((error = store_body_log_dir(bodies_dir, sizeof(bodies_dir), from_url + 7)) < 0)
		return error;
	sqlite3 *db = NULL;
	PGconn *pg = NULL;
	PGresult *res = NULL;
	if (sqlite3_open_v2(from_url + 7, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		error = base_error_set(BASE_EGENERIC, "store copy: cannot open %s: %s", from_url + 7,
				       db ? sqlite3_errmsg(db) : "out of memory");
		goto done;
	}
	sqlite3_busy_timeout(db, 10000);
	/* one snapshot of the source, whatever a running perfbot writes */
	if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
		error = base_error_set(BASE_EGENERIC, "store copy: %s", sqlite3_errmsg(db));
		goto done;
	}
	const char *keys[] = { "dbname", NULL };
	const char *vals[] = { to_url, NULL };
	pg = PQconnectdbParams(keys, vals, 1);
	if (!pg || PQstatus(pg) != CONNECTION_OK) {
		error = pg_fail(pg, NULL, "connect");
		goto done;
	}
	if ((error = pg_simple(pg, "BEGIN", "begin", NULL)) < 0)
		goto done;
	/* no replica writes meanwhile: the tables are ours until commit */
	char sql[1024];
	size_t n = (size_t)snprintf(sql, sizeof(sql), "LOCK TABLE ");
	for (size_t i = 0; i < NTABLES; i++)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, "%s%s", i ? ", " : "", TABLES[i].name);
	snprintf(sql + n, sizeof(sql) - n, " IN ACCESS EXCLUSIVE MODE");
	if ((error = pg_simple(pg, sql, "lock", NULL)) < 0)
		goto done;
	n = (size_t)snprintf(sql, sizeof(sql), "SELECT ");
	for (size_t i = 0; i < NTABLES; i++)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, "%s(SELECT count(*) FROM %s)", i ? " + " : "",
				      TABLES[i].name);
	if ((error = pg_simple(pg, sql, "count", &res)) < 0)
		goto done;
	char *end = NULL;
	long long existing = strtoll(PQgetvalue(res, 0, 0), &end, 10);
	PQclear(res);
	res = NULL;
	if (existing > 0 && !force) {
		error = base_error_set(BASE_EEXISTS,
				       "store copy: the target already holds %lld rows (pass --force to replace them)",
				       existing);
		goto done;
	}
	if (existing > 0) {
		n = (size_t)snprintf(sql, sizeof(sql), "TRUNCATE ");
		for (size_t i = 0; i < NTABLES; i++)
			n += (size_t)snprintf(sql + n, sizeof(sql) - n, "%s%s", i ? ", " : "", TABLES[i].name);
		if ((error = pg_simple(pg, sql, "truncate", NULL)) < 0)
			goto done;
	}
	for (size_t i = 0; i < NTABLES && error == 0; i++) {
		if ((error = copy_table(db, pg, &TABLES[i], bodies_dir, &stats->rows)) == 0)
			stats->tables++;
	}
	if (error == 0)
		error = pg_simple(pg, "COMMIT", "commit", NULL);
done:
	PQclear(res);
	if (pg)
		PQfinish(pg); /* an open transaction is rolled back */
	sqlite3_close(db);
	return error;
}
