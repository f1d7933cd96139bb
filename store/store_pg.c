/* PostgreSQL store backend (libpq), for several replicas on one database.
 *
 * The same tables, numbered migrations and guarantees as store_sqlite.c, in
 * PostgreSQL's dialect:
 *  - migrations run under a session advisory lock, so replicas starting
 *    together apply each one once;
 *  - a delivery and its jobs are one statement; a committer thread puts the
 *    deliveries that arrive meanwhile into one transaction (group commit:
 *    one WAL flush for the batch), and a call returns once PostgreSQL
 *    committed it; the delivery id is the primary key, so a duplicate sent
 *    to another replica inserts nothing and is reported as such;
 *  - a claim locks the oldest due job with FOR UPDATE SKIP LOCKED (an
 *    expired lease first: its worker died), so replicas never take the same
 *    job; done/fail only count while the caller still holds the lease;
 *  - an insert into jobs (a trigger), a release and a retry NOTIFY the
 *    channel perfbot_jobs; store_wait_for_job LISTENs on a connection of its
 *    own, so idle workers of every replica wake at once;
 *  - run documents are jsonb, merged with perfbot_merge_patch (RFC 7396, as
 *    SQLite's json_patch).
 *
 * Threads: calls borrow a connection from a small pool (one thread per
 * connection at a time; the pool's mutex guards only the free list).  The
 * hot statements are prepared once per connection.  A connection that
 * breaks (restart, failover) is dropped; the next call reconnects, with
 * backoff: while PostgreSQL is unreachable calls fail at once with
 * BASE_ERETRY (the HTTP front answers 503, /readyz says so) instead of
 * queueing.  A pooled connection the server closed is replaced before use;
 * a statement whose connection broke under it is tried once more on a fresh
 * one when running it twice is harmless (reads, a delivery then seen as a
 * duplicate, updates guarded by a lease), never an insert taking a new id.
 *
 * The URL (and its password) is never logged: errors carry libpq's message,
 * which names the host and user only. */
#include "store/store_int.h"
#include "base/clock.h"
#include "base/error.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POOL_SIZE 10
#define MAX_PARAMS 16
#define MAX_PREPARED 16
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define MIGRATION_LOCK 0x70657266626f74LL /* "perfbot" */
#define NOTIFY_CHANNEL "perfbot_jobs"

/* Column type oids (pg_type.h is server-side). */
#define OID_BOOL 16
#define OID_BYTEA 17
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23
#define OID_JSON 114
#define OID_FLOAT4 700
#define OID_FLOAT8 701
#define OID_NUMERIC 1700
#define OID_JSONB 3802

struct pconn {
	PGconn *pg;                        /* NULL: not connected */
	const char *prepared[MAX_PREPARED]; /* statement names prepared here (static strings) */
	int nprepared;
	int busy;
};

typedef struct pg_store {
	store base;
	char *url;                   /* owned; holds the password: never logged */
	struct pconn pool[POOL_SIZE];
	pthread_mutex_t lock;        /* pool slots, backoff */
	pthread_cond_t cond;
	int64_t down_until_ms;       /* no reconnect before this */
	int backoff_ms;
	char down_msg[256];          /* why the last connect failed */

	pthread_mutex_t listen_lock; /* the LISTEN connection */
	PGconn *listener;
	int64_t listen_retry_ms;

	/* deliveries waiting for the committer (group commit) */
	pthread_mutex_t q_lock;
	pthread_cond_t q_cond;
	store_delivery_async *q_head, *q_tail;
	pthread_t committer;
	int committer_started;
	int stopping;
} pg_store;

/* ---- connections ---------------------------------------------------------- */

/* libpq prints notices (and a server's "terminating connection") on
 * stderr by default; perfbot's errors say what failed instead. */
static void quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

static PGconn *connect_url(const char *url)
{
	/* connect_timeout and keepalives first: a value in the URL wins */
	const char *keys[] = { "connect_timeout", "keepalives_idle", "keepalives_interval", "keepalives_count",
			       "application_name", "options", "dbname", NULL };
	const char *vals[] = { "5", "10", "5", "3", "perfbot", "-c client_min_messages=warning", url, NULL };
	PGconn *pg = PQconnectdbParams(keys, vals, 1);
	if (pg)
		PQsetNoticeProcessor(pg, quiet, NULL);
	return pg;
}

/* One line from libpq's message (they end with a newline). */
static void pq_msg(char *out, size_t n, PGconn *pg, const PGresult *res)
{
	const char *m = res ? PQresultErrorMessage(res) : NULL;
	if (!m || !*m)
		m = pg ? PQerrorMessage(pg) : "out of memory";
	snprintf(out, n, "%s", m);
	for (char *p = out; *p; p++)
		if (*p == '\n')
			*p = *(p + 1) ? ' ' : '\0';
}

static int unavailable(pg_store *s)
{
	return base_error_set(BASE_ERETRY, "store unavailable: %s", s->down_msg[0] ? s->down_msg : "reconnecting");
}

/* An idle connection has nothing to read: when its socket is readable the
 * server said goodbye (a restart, pg_terminate_backend) or closed it, and
 * the connection is replaced before a statement fails on it. */
static int closed_by_server(PGconn *pg)
{
	struct pollfd pfd = { .fd = PQsocket(pg), .events = POLLIN };
	if (pfd.fd < 0)
		return 1;
	if (poll(&pfd, 1, 0) <= 0)
		return 0;
	return !PQconsumeInput(pg) || PQstatus(pg) != CONNECTION_OK;
}

/* Borrows a pool slot with a live connection (connecting when needed).
 * BASE_ERETRY while the database is unreachable. */
static int conn_get(pg_store *s, struct pconn **out)
{
	pthread_mutex_lock(&s->lock);
	struct pconn *c = NULL;
	for (;;) {
		for (int i = 0; i < POOL_SIZE && !c; i++)
			if (!s->pool[i].busy && s->pool[i].pg)
				c = &s->pool[i];
		for (int i = 0; i < POOL_SIZE && !c; i++)
			if (!s->pool[i].busy)
				c = &s->pool[i];
		if (c)
			break;
		pthread_cond_wait(&s->cond, &s->lock);
	}
	c->busy = 1;
	pthread_mutex_unlock(&s->lock);
	if (c->pg && PQstatus(c->pg) == CONNECTION_OK && !closed_by_server(c->pg)) {
		*out = c;
		return 0;
	}
	pthread_mutex_lock(&s->lock);
	int64_t now = base_wall_ms();
	if (now < s->down_until_ms) {
		c->busy = 0;
		pthread_cond_signal(&s->cond);
		int error = unavailable(s);
		pthread_mutex_unlock(&s->lock);
		return error;
	}
	pthread_mutex_unlock(&s->lock);

	if (c->pg)
		PQfinish(c->pg);
	c->nprepared = 0;
	c->pg = connect_url(s->url);
	int ok = c->pg && PQstatus(c->pg) == CONNECTION_OK;
	pthread_mutex_lock(&s->lock);
	if (ok) {
		s->backoff_ms = 0;
		s->down_until_ms = 0;
		s->down_msg[0] = '\0';
		pthread_mutex_unlock(&s->lock);
		*out = c;
		return 0;
	}
	pq_msg(s->down_msg, sizeof(s->down_msg), c->pg, NULL);
	PQfinish(c->pg);
	c->pg = NULL;
	s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : BACKOFF_MIN_MS;
	if (s->backoff_ms > BACKOFF_MAX_MS)
		s->backoff_ms = BACKOFF_MAX_MS;
	s->down_until_ms = base_wall_ms() + s->backoff_ms;
	c->busy = 0;
	pthread_cond_signal(&s->cond);
	int error = unavailable(s);
	pthread_mutex_unlock(&s->lock);
	return error;
}

static void conn_put(pg_store *s, struct pconn *c)
{
	/* a connection left inside a transaction (a bug or a broken
	 * connection) is not handed to the next caller */
	if (c->pg && (PQstatus(c->pg) != CONNECTION_OK || PQtransactionStatus(c->pg) != PQTRANS_IDLE)) {
		PQfinish(c->pg);
		c->pg = NULL;
		c->nprepared = 0;
	}
	pthread_mutex_lock(&s->lock);
	c->busy = 0;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/* 1 when the connection broke (the statement may be retried elsewhere). */
static int conn_broken(const struct pconn *c)
{
	return !c->pg || PQstatus(c->pg) != CONNECTION_OK;
}

/* ---- statements ----------------------------------------------------------- */

/* A row count from PQcmdTuples ("" when none). */
static int count_of(const char *s)
{
	char *end = NULL;
	long n = s && *s ? strtol(s, &end, 10) : 0;
	return n < 0 || n > INT32_MAX ? 0 : (int)n;
}

/* Parameters described by `types`: 's' text (NULL ok), 'i' int64, 'n' int,
 * 'b' bytea (pointer, size_t; sent binary), 'j' JSON text (NULL ok). */
struct params {
	const char *values[MAX_PARAMS];
	int lengths[MAX_PARAMS];
	int formats[MAX_PARAMS];
	char nums[MAX_PARAMS][24];
	int n;
};

static int params_fill(struct params *p, const char *types, va_list ap)
{
	memset(p, 0, sizeof(*p));
	for (const char *t = types; *t; t++) {
		if (p->n >= MAX_PARAMS)
			return base_error_set(BASE_EINVALID, "store: too many parameters");
		int i = p->n++;
		switch (*t) {
		case 's':
		case 'j':
			p->values[i] = va_arg(ap, const char *);
			break;
		case 'i':
			snprintf(p->nums[i], sizeof(p->nums[i]), "%" PRId64, va_arg(ap, int64_t));
			p->values[i] = p->nums[i];
			break;
		case 'n':
			snprintf(p->nums[i], sizeof(p->nums[i]), "%d", va_arg(ap, int));
			p->values[i] = p->nums[i];
			break;
		case 'b': {
			const char *b = va_arg(ap, const char *);
			size_t len = va_arg(ap, size_t);
			if (len > INT32_MAX)
				return base_error_set(BASE_ETOOBIG, "store: value too large");
			p->values[i] = b ? b : "";
			p->lengths[i] = (int)len;
			p->formats[i] = 1;
			break;
		}
		default:
			return base_error_set(BASE_EINVALID, "store: bad parameter type '%c'", *t);
		}
	}
	return 0;
}

static int sqlstate_is(const PGresult *res, const char *state)
{
	const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	return s && strcmp(s, state) == 0;
}

/* Runs sql on c.  `name` (a static string, may be NULL) prepares it once per
 * connection.  Returns the result (PGRES_COMMAND_OK or TUPLES_OK) in *out,
 * or an error (BASE_ERETRY when the connection broke or PostgreSQL asked
 * for a retry, BASE_EEXISTS on a unique violation). */
static int run_v(struct pconn *c, PGresult **out, const char *name, const char *sql, const char *types, va_list ap)
{
	struct params p;
	*out = NULL;
	int error = params_fill(&p, types, ap);
	if (error < 0)
		return error;
	PGresult *res;
	int prepared = 0;
	for (int i = 0; name && i < c->nprepared; i++)
		if (c->prepared[i] == name)
			prepared = 1;
	if (name && !prepared && c->nprepared < MAX_PREPARED) {
		res = PQprepare(c->pg, name, sql, p.n, NULL);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			char msg[300];
			pq_msg(msg, sizeof(msg), c->pg, res);
			PQclear(res);
			return base_error_set(conn_broken(c) ? BASE_ERETRY : BASE_EGENERIC, "store: prepare: %s", msg);
		}
		PQclear(res);
		c->prepared[c->nprepared++] = name;
		prepared = 1;
	}
	if (prepared)
		res = PQexecPrepared(c->pg, name, p.n, p.values, p.lengths, p.formats, 0);
	else
		res = PQexecParams(c->pg, sql, p.n, NULL, p.values, p.lengths, p.formats, 0);
	ExecStatusType st = PQresultStatus(res);
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		*out = res;
		return 0;
	}
	char msg[300];
	pq_msg(msg, sizeof(msg), c->pg, res);
	int code = BASE_EGENERIC;
	if (conn_broken(c) || sqlstate_is(res, "40001") || sqlstate_is(res, "40P01") || sqlstate_is(res, "57P01") ||
	    sqlstate_is(res, "57P03") || sqlstate_is(res, "08006") || sqlstate_is(res, "08003"))
		code = BASE_ERETRY;
	else if (sqlstate_is(res, "23505"))
		code = BASE_EEXISTS;
	PQclear(res);
	return base_error_set(code, "store: %s", msg);
}

static int run_c(struct pconn *c, PGresult **out, const char *name, const char *sql, const char *types, ...)
{
	va_list ap;
	va_start(ap, types);
	int error = run_v(c, out, name, sql, types, ap);
	va_end(ap);
	return error;
}

/* Inside a transaction: a statement returning no rows we need; *changes_out
 * (may be NULL) gets the rows it changed. */
static int exec_c(struct pconn *c, int *changes_out, const char *sql, const char *types, ...)
{
	PGresult *res = NULL;
	va_list ap;
	va_start(ap, types);
	int error = run_v(c, &res, NULL, sql, types, ap);
	va_end(ap);
	if (error == 0 && changes_out)
		*changes_out = count_of(PQcmdTuples(res));
	PQclear(res);
	return error;
}

/* One statement on a pooled connection; with `retry`, tried once more on a
 * fresh connection when the first one broke.  Only for statements that
 * may run twice: reads, and writes that give the same state again (a
 * delivery whose id is then stored, an update guarded by its lease).  An
 * insert that takes a new id is never repeated: the first may have
 * committed before the connection broke.  *out owned by the caller. */
static int stmt_v(pg_store *s, PGresult **out, int retry, const char *name, const char *sql, const char *types,
		  va_list ap)
{
	int error = 0;
	for (int attempt = 0; attempt < (retry ? 2 : 1); attempt++) {
		struct pconn *c = NULL;
		if ((error = conn_get(s, &c)) < 0)
			return error;
		va_list aq;
		va_copy(aq, ap);
		error = run_v(c, out, name, sql, types, aq);
		va_end(aq);
		int broken = error < 0 && conn_broken(c);
		conn_put(s, c);
		if (!broken)
			break;
	}
	return error;
}

static int stmt(pg_store *s, PGresult **out, const char *name, const char *sql, const char *types, ...)
{
	va_list ap;
	va_start(ap, types);
	int error = stmt_v(s, out, 1, name, sql, types, ap);
	va_end(ap);
	return error;
}

/* The same, never repeated: an insert taking a new id. */
static int stmt_once(pg_store *s, PGresult **out, const char *name, const char *sql, const char *types, ...)
{
	va_list ap;
	va_start(ap, types);
	int error = stmt_v(s, out, 0, name, sql, types, ap);
	va_end(ap);
	return error;
}

/* One write statement; *changes_out (may be NULL) gets the rows changed. */
static int pexec(pg_store *s, int *changes_out, const char *name, const char *sql, const char *types, ...)
{
	PGresult *res = NULL;
	va_list ap;
	va_start(ap, types);
	int error = stmt_v(s, &res, 1, name, sql, types, ap);
	va_end(ap);
	if (error == 0 && changes_out)
		*changes_out = count_of(PQcmdTuples(res));
	PQclear(res);
	return error;
}

static int64_t col_int(const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return 0;
	char *end = NULL;
	return (int64_t)strtoll(PQgetvalue(res, row, col), &end, 10);
}

static char *col_strdup(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : strdup(PQgetvalue(res, row, col));
}

/* A row as a JSON object: column names as keys; columns named "data", ending
 * in "_json", or of a JSON type are parsed as JSON ("x_json" becomes "x"). */
static json_t *row_json(const PGresult *res, int row)
{
	json_t *o = json_object();
	int n = PQnfields(res);
	for (int i = 0; i < n; i++) {
		const char *name = PQfname(res, i);
		const char *text = PQgetvalue(res, row, i);
		Oid type = PQftype(res, i);
		size_t nl = strlen(name);
		int is_json_name = !strcmp(name, "data") || (nl > 5 && !strcmp(name + nl - 5, "_json"));
		json_t *v;
		char *end = NULL;
		if (PQgetisnull(res, row, i)) {
			v = json_null();
		} else if (type == OID_INT8 || type == OID_INT4 || type == OID_INT2) {
			v = json_integer((json_int_t)strtoll(text, &end, 10));
		} else if (type == OID_FLOAT4 || type == OID_FLOAT8 || type == OID_NUMERIC) {
			v = json_real(strtod(text, &end));
		} else if (type == OID_BOOL) {
			v = json_boolean(text[0] == 't');
		} else if (is_json_name || type == OID_JSON || type == OID_JSONB) {
			v = json_loads(text, JSON_DECODE_ANY, NULL);
			if (!v)
				v = json_null();
		} else {
			v = json_string(text);
			if (!v) /* not UTF-8 */
				v = json_stringn_nocheck(text, strlen(text));
		}
		if (nl > 5 && !strcmp(name + nl - 5, "_json")) {
			char key[64];
			snprintf(key, sizeof(key), "%.*s", (int)(nl - 5), name);
			json_object_set_new(o, key, v);
		} else {
			json_object_set_new(o, name, v);
		}
	}
	return o;
}

/* Rows of res as JSON: an array, or with `single` the first row
 * (BASE_ENOTFOUND when none). */
static int result_json(const PGresult *res, json_t **out, int single)
{
	int rows = PQntuples(res);
	if (single) {
		if (rows == 0)
			return base_error_set(BASE_ENOTFOUND, "not found");
		*out = row_json(res, 0);
		return 0;
	}
	json_t *arr = json_array();
	for (int r = 0; r < rows; r++)
		json_array_append_new(arr, row_json(res, r));
	*out = arr;
	return 0;
}

static int query(pg_store *s, json_t **out, int single, const char *sql, const char *types, ...)
{
	PGresult *res = NULL;
	va_list ap;
	va_start(ap, types);
	int error = stmt_v(s, &res, 1, NULL, sql, types, ap);
	va_end(ap);
	if (error == 0)
		error = result_json(res, out, single);
	PQclear(res);
	return error;
}

static int query_c(struct pconn *c, json_t **out, int single, const char *sql, const char *types, ...)
{
	PGresult *res = NULL;
	va_list ap;
	va_start(ap, types);
	int error = run_v(c, &res, NULL, sql, types, ap);
	va_end(ap);
	if (error == 0)
		error = result_json(res, out, single);
	PQclear(res);
	return error;
}

/* A transaction on a pooled connection: tx_begin, statements on *c, then
 * tx_end, which commits when error is 0 (else rolls back) and returns the
 * first error. */
static int tx_begin(pg_store *s, struct pconn **c)
{
	int error = conn_get(s, c);
	if (error < 0)
		return error;
	PGresult *res = NULL;
	if ((error = run_c(*c, &res, NULL, "BEGIN", "")) < 0) {
		conn_put(s, *c);
		*c = NULL;
		return error;
	}
	PQclear(res);
	return 0;
}

static int tx_end(pg_store *s, struct pconn *c, int error)
{
	PGresult *res = NULL;
	if (error == 0) {
		if ((error = run_c(c, &res, NULL, "COMMIT", "")) == 0 && PQtransactionStatus(c->pg) != PQTRANS_IDLE)
			error = base_error_set(BASE_ERETRY, "store: commit failed");
	} else {
		char msg[300];
		snprintf(msg, sizeof(msg), "%s", base_error_last());
		if (run_c(c, &res, NULL, "ROLLBACK", "") < 0 && PQstatus(c->pg) == CONNECTION_OK)
			PQreset(c->pg);
		base_error_set(error, "%s", msg);
	}
	PQclear(res);
	conn_put(s, c);
	return error;
}

static char *json_text(const json_t *data)
{
	return data ? json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("{}");
}

/* Milliseconds since the epoch as the SQLite backend's ISO text. */
#define ISO(col) "to_char(to_timestamp(" col " / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* ---- migrations ----------------------------------------------------------- */

/* The numbered migrations of store_sqlite.c, in PostgreSQL's dialect: the
 * same tables and columns (text, bigint, bytea for bodies, jsonb for
 * documents), plus what PostgreSQL needs besides (the NOTIFY trigger, the
 * merge-patch function). */
static const char *migrations[] = {
	/* 1: deliveries, jobs, installations */
	"CREATE TABLE deliveries(id TEXT PRIMARY KEY, event TEXT NOT NULL, action TEXT, installation_id BIGINT,"
	" repository TEXT, headers TEXT, body BYTEA, received_ms BIGINT NOT NULL, status TEXT NOT NULL);"
	"CREATE INDEX deliveries_received ON deliveries(received_ms);"
	"CREATE TABLE jobs(id BIGSERIAL PRIMARY KEY, kind TEXT NOT NULL, payload TEXT NOT NULL, delivery_id TEXT,"
	" dedupe_key TEXT, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, completions INTEGER NOT NULL DEFAULT 0,"
	" run_at_ms BIGINT NOT NULL, lease_owner TEXT, lease_expires_ms BIGINT, error TEXT, note TEXT,"
	" created_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL);"
	"CREATE INDEX jobs_queued ON jobs(state, run_at_ms);"
	"CREATE INDEX jobs_lease ON jobs(state, lease_expires_ms);"
	"CREATE INDEX jobs_dedupe ON jobs(dedupe_key) WHERE dedupe_key IS NOT NULL;"
	"CREATE INDEX jobs_delivery ON jobs(delivery_id);"
	"CREATE FUNCTION perfbot_jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$"
	" BEGIN PERFORM pg_notify('" NOTIFY_CHANNEL "', ''); RETURN NULL; END $$;"
	"CREATE TRIGGER jobs_notify AFTER INSERT ON jobs FOR EACH STATEMENT EXECUTE FUNCTION perfbot_jobs_notify();"
	"CREATE TABLE installations(id BIGINT PRIMARY KEY, account TEXT, state TEXT NOT NULL, updated_ms BIGINT);"
	"CREATE TABLE repositories(installation_id BIGINT NOT NULL, id BIGINT NOT NULL, full_name TEXT NOT NULL,"
	" PRIMARY KEY(installation_id, id));"
	"CREATE TABLE hooks(hook_id BIGINT PRIMARY KEY, app_id BIGINT, delivery_id TEXT, updated_ms BIGINT);",
	/* 2: runs and their products */
	"CREATE TABLE runs(id BIGSERIAL PRIMARY KEY, kind TEXT NOT NULL, repository TEXT, installation_id BIGINT,"
	" head_sha TEXT, base_sha TEXT, branch TEXT, trigger TEXT, state TEXT NOT NULL, reason TEXT, data JSONB,"
	" created_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL);"
	"CREATE INDEX runs_repo ON runs(repository, kind, state);"
	"CREATE TABLE measurements(id BIGSERIAL PRIMARY KEY, run_id BIGINT, repository TEXT, commit_sha TEXT,"
	" benchmark TEXT, data JSONB, created_ms BIGINT NOT NULL);"
	"CREATE INDEX measurements_commit ON measurements(repository, commit_sha, benchmark);"
	"CREATE INDEX measurements_run ON measurements(run_id);"
	"CREATE TABLE proposals(run_id BIGINT PRIMARY KEY, data JSONB, created_ms BIGINT, updated_ms BIGINT);"
	"CREATE TABLE pulls(run_id BIGINT PRIMARY KEY, repository TEXT, number INTEGER, branch TEXT, state TEXT,"
	" data JSONB, updated_ms BIGINT);"
	"CREATE INDEX pulls_branch ON pulls(repository, branch);"
	"CREATE TABLE approvals(run_id BIGINT PRIMARY KEY, \"user\" TEXT, via TEXT, created_ms BIGINT);"
	"CREATE TABLE audit(id BIGSERIAL PRIMARY KEY, at_ms BIGINT, actor TEXT, action TEXT, subject TEXT, detail TEXT);"
	"CREATE TABLE run_tokens(token_hash TEXT PRIMARY KEY, run_id BIGINT NOT NULL, created_ms BIGINT);"
	/* SQLite's json_patch (RFC 7396): objects merge recursively, null deletes */
	"CREATE FUNCTION perfbot_merge_patch(t jsonb, p jsonb) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$"
	" DECLARE k text; v jsonb;"
	" BEGIN"
	"  IF p IS NULL OR jsonb_typeof(p) <> 'object' THEN RETURN p; END IF;"
	"  IF t IS NULL OR jsonb_typeof(t) <> 'object' THEN t := '{}'; END IF;"
	"  FOR k, v IN SELECT * FROM jsonb_each(p) LOOP"
	"   IF jsonb_typeof(v) = 'null' THEN t := t - k;"
	"   ELSE t := jsonb_set(t, ARRAY[k], perfbot_merge_patch(t -> k, v)); END IF;"
	"  END LOOP;"
	"  RETURN t;"
	" END $$;",
	/* 3: the dashboard: sign-in sessions, and the measured values as
	 * columns so that a branch's history is read from indexes alone */
	/* a JSON number as bigint (NULL for anything else), as json_extract */
	"CREATE FUNCTION perfbot_json_int(v jsonb) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$"
	" SELECT CASE WHEN jsonb_typeof(v) = 'number' THEN trunc((v #>> '{}')::numeric)::bigint END $$;"
	"CREATE TABLE sessions(id_hash TEXT PRIMARY KEY, login TEXT NOT NULL, user_id BIGINT, avatar_url TEXT,"
	" token TEXT, csrf TEXT NOT NULL, created_ms BIGINT NOT NULL, expires_ms BIGINT NOT NULL);"
	"CREATE INDEX sessions_expiry ON sessions(expires_ms);"
	"ALTER TABLE measurements ADD COLUMN ok BOOLEAN, ADD COLUMN instructions BIGINT,"
	" ADD COLUMN estimated_cycles BIGINT;"
	"UPDATE measurements SET ok = coalesce(data->>'status' = 'ok', false),"
	" instructions = perfbot_json_int(data->'instructions'),"
	" estimated_cycles = perfbot_json_int(data->'estimated_cycles');"
	"CREATE INDEX measurements_series ON measurements(run_id, commit_sha, benchmark, ok, estimated_cycles, instructions);"
	"CREATE INDEX runs_branch ON runs(repository, branch, kind, trigger, state, id);",
	/* 4: Managed Agents work items handed to the replica serving their session */
	"CREATE TABLE managed_handover(work_id TEXT PRIMARY KEY, environment_id TEXT NOT NULL,"
	" session_id TEXT NOT NULL, secret TEXT NOT NULL, polled_by TEXT, polled_ms BIGINT NOT NULL,"
	" expires_ms BIGINT NOT NULL);"
	"CREATE INDEX managed_handover_session ON managed_handover(session_id, expires_ms);"
	"CREATE INDEX managed_handover_expiry ON managed_handover(expires_ms);",
	/* 5: the jobs of given kinds, due first: what a pool of workers that
	 * runs only those kinds claims from (see pg_job_claim) */
	"CREATE INDEX jobs_kind ON jobs(state, kind, run_at_ms);",
};
#define NMIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

static int simple(struct pconn *c, const char *sql)
{
	PGresult *res = PQexec(c->pg, sql);
	ExecStatusType st = PQresultStatus(res);
	int error = 0;
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		char msg[300];
		pq_msg(msg, sizeof(msg), c->pg, res);
		error = base_error_set(conn_broken(c) ? BASE_ERETRY : BASE_EGENERIC, "%s", msg);
	}
	PQclear(res);
	return error;
}

/* Applies the missing migrations, each in its own transaction, holding a
 * session advisory lock: replicas starting together wait for one another
 * and each migration runs once. */
static int migrate(pg_store *s)
{
	struct pconn *c = NULL;
	int error = conn_get(s, &c);
	if (error < 0)
		return error;
	char lock[96];
	snprintf(lock, sizeof(lock), "SELECT pg_advisory_lock(%lld)", (long long)MIGRATION_LOCK);
	if ((error = simple(c, lock)) < 0)
		goto done;
	if ((error = simple(c, "CREATE TABLE IF NOT EXISTS schema_migrations(version INTEGER PRIMARY KEY,"
			       " applied_ms BIGINT)")) < 0)
		goto unlock;
	for (int i = 0; i < NMIGRATIONS && error == 0; i++) {
		int version = i + 1;
		json_t *row = NULL;
		if ((error = query_c(c, &row, 0, "SELECT 1 AS x FROM schema_migrations WHERE version=$1", "n", version)) < 0)
			break;
		int have = json_array_size(row) > 0;
		json_decref(row);
		if (have)
			continue;
		if ((error = simple(c, "BEGIN")) < 0)
			break;
		if ((error = simple(c, migrations[i])) < 0 ||
		    (error = exec_c(c, NULL, "INSERT INTO schema_migrations(version, applied_ms) VALUES($1,$2)", "ni",
				    version, base_wall_ms())) < 0) {
			char msg[300];
			snprintf(msg, sizeof(msg), "%s", base_error_last());
			simple(c, "ROLLBACK");
			error = base_error_set(BASE_EGENERIC, "store: migration %d failed: %s", version, msg);
			break;
		}
		if ((error = simple(c, "COMMIT")) < 0)
			break;
	}
unlock:
	snprintf(lock, sizeof(lock), "SELECT pg_advisory_unlock(%lld)", (long long)MIGRATION_LOCK);
	{
		char msg[300];
		snprintf(msg, sizeof(msg), "%s", base_error_last());
		simple(c, lock);
		if (error < 0)
			base_error_set(error, "%s", msg);
	}
done:
	conn_put(s, c);
	return error;
}

/* ---- deliveries ------------------------------------------------------------ */

/* One delivery and its jobs in one statement: nothing when the id is
 * stored (by any replica).  Inside the committer's transaction, or on its
 * own (then its own transaction). */
#define DELIVERY_PUT_SQL                                                                                              \
	"WITH d AS (INSERT INTO deliveries(id, event, action, installation_id, repository, headers, body,"            \
	" received_ms, status) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT (id) DO NOTHING RETURNING id),"         \
	" j AS (INSERT INTO jobs(kind, payload, delivery_id, state, run_at_ms, created_ms, updated_ms)"                \
	" SELECT x->>'k', x->>'p', d.id, 'queued', $8, $8, $8 FROM d,"                                                \
	" jsonb_array_elements($10::jsonb) AS x RETURNING 1)"                                                         \
	" SELECT (SELECT count(*) FROM d) AS inserted, (SELECT count(*) FROM j) AS jobs"
#define DELIVERY_PUT_ARGS(d, jobs)                                                                                    \
	"sssissbisj", (d)->id, (d)->event, (d)->action, (d)->installation_id, (d)->repository, (d)->headers_json,      \
		(d)->body, (d)->body_len, (d)->received_ms, (d)->status, (jobs)

static void pending_fail(store_delivery_async *p, int error)
{
	p->error = error;
	p->duplicate = 0;
	snprintf(p->msg, sizeof(p->msg), "%s", base_error_last());
}

/* The delivery's jobs as the JSON array the statement takes (owned). */
static char *jobs_json(const store_delivery *d)
{
	json_t *jobs = json_array();
	for (size_t i = 0; jobs && i < d->njobs; i++)
		json_array_append_new(jobs, json_pack("{s:s,s:s}", "k", d->jobs[i].kind, "p", d->jobs[i].payload));
	char *text = jobs ? json_dumps(jobs, JSON_COMPACT) : NULL;
	json_decref(jobs);
	return text;
}

/* The delivery on c (inside the committer's transaction), or on a pooled
 * connection of its own (c NULL: its own transaction, the statement retried
 * once on a fresh connection when its connection broke). */
static int put_one(pg_store *s, struct pconn *c, store_delivery_async *p)
{
	char *jobs = jobs_json(p->d);
	if (!jobs)
		return base_error_set(BASE_ENOMEM, "out of memory");
	PGresult *res = NULL;
	int error = c ? run_c(c, &res, "delivery_put", DELIVERY_PUT_SQL, DELIVERY_PUT_ARGS(p->d, jobs))
		      : stmt(s, &res, "delivery_put", DELIVERY_PUT_SQL, DELIVERY_PUT_ARGS(p->d, jobs));
	if (error == 0)
		p->duplicate = col_int(res, 0, 0) == 0;
	PQclear(res);
	free(jobs);
	return error;
}

static void put_alone(pg_store *s, store_delivery_async *p)
{
	int error = put_one(s, NULL, p);
	if (error < 0)
		pending_fail(p, error);
}

/* Group commit: every delivery that arrived during the previous commit goes
 * into one transaction, so one WAL flush acknowledges them all.  When one
 * statement fails (not the connection), the batch is rolled back and each
 * delivery is stored on its own, so one bad delivery fails alone.  A broken
 * connection before COMMIT was sent: nothing was committed, the batch is
 * tried once more on a fresh connection; after it: every caller gets
 * BASE_ERETRY (a 503: the sender retries; a stored one is then a duplicate). */
static void commit_batch(pg_store *s, store_delivery_async *batch)
{
	if (!batch->next) {
		put_alone(s, batch);
		return;
	}
	for (int attempt = 0; attempt < 2; attempt++) {
		struct pconn *c = NULL;
		int error = conn_get(s, &c);
		if (error < 0) {
			for (store_delivery_async *p = batch; p; p = p->next)
				pending_fail(p, error);
			return;
		}
		PGresult *res = NULL;
		int commit_sent = 0;
		if ((error = run_c(c, &res, NULL, "BEGIN", "")) == 0) {
			PQclear(res);
			for (store_delivery_async *p = batch; p && error == 0; p = p->next)
				error = put_one(s, c, p);
			if (error == 0) {
				commit_sent = 1;
				res = NULL;
				if ((error = run_c(c, &res, NULL, "COMMIT", "")) == 0 && PQtransactionStatus(c->pg) != PQTRANS_IDLE)
					error = base_error_set(BASE_ERETRY, "store: commit failed");
				PQclear(res);
			}
		}
		int broken = conn_broken(c);
		if (error < 0 && !broken) {
			res = PQexec(c->pg, "ROLLBACK");
			PQclear(res);
		}
		conn_put(s, c);
		if (error == 0)
			return;
		if (broken && !commit_sent && attempt == 0)
			continue;
		if (broken || commit_sent) {
			for (store_delivery_async *p = batch; p; p = p->next)
				pending_fail(p, error);
			return;
		}
		/* a statement failed: each on its own */
		for (store_delivery_async *p = batch; p; p = p->next) {
			p->duplicate = 0;
			put_alone(s, p);
		}
		return;
	}
}

static void *committer_main(void *arg)
{
	pg_store *s = arg;
	pthread_setname_np(pthread_self(), "pb-commit");
	pthread_mutex_lock(&s->q_lock);
	for (;;) {
		while (!s->q_head && !s->stopping)
			pthread_cond_wait(&s->q_cond, &s->q_lock);
		if (!s->q_head)
			break; /* stopping, nothing left */
		store_delivery_async *batch = s->q_head;
		s->q_head = s->q_tail = NULL;
		pthread_mutex_unlock(&s->q_lock);
		commit_batch(s, batch);
		/* the outcome to each caller; p may be freed by its done */
		for (store_delivery_async *p = batch, *next; p; p = next) {
			next = p->next;
			p->done(p);
		}
		pthread_mutex_lock(&s->q_lock);
	}
	pthread_mutex_unlock(&s->q_lock);
	return NULL;
}

static int pg_delivery_put_async(store *st, store_delivery_async *a)
{
	pg_store *s = (pg_store *)st;
	pthread_mutex_lock(&s->q_lock);
	if (s->stopping) {
		pthread_mutex_unlock(&s->q_lock);
		return base_error_set(BASE_ERETRY, "store: closing");
	}
	a->next = NULL;
	if (s->q_tail)
		s->q_tail->next = a;
	else
		s->q_head = a;
	s->q_tail = a;
	pthread_cond_signal(&s->q_cond);
	pthread_mutex_unlock(&s->q_lock);
	return 0;
}

static int pg_delivery_exists(store *st, const char *id)
{
	json_t *rows = NULL;
	int error = query((pg_store *)st, &rows, 0, "SELECT 1 AS x FROM deliveries WHERE id=$1", "s", id);
	if (error < 0)
		return error;
	int n = json_array_size(rows) > 0;
	json_decref(rows);
	return n;
}

static int pg_delivery_body(store *st, const char *id, char **body_out, size_t *len_out)
{
	pg_store *s = (pg_store *)st;
	struct pconn *c = NULL;
	int error = conn_get(s, &c);
	if (error < 0)
		return error;
	const char *values[1] = { id };
	int formats[1] = { 0 };
	PGresult *res = PQexecParams(c->pg, "SELECT body FROM deliveries WHERE id=$1", 1, NULL, values, NULL, formats, 1);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		char msg[300];
		pq_msg(msg, sizeof(msg), c->pg, res);
		error = base_error_set(conn_broken(c) ? BASE_ERETRY : BASE_EGENERIC, "store: read delivery: %s", msg);
		goto done;
	}
	if (PQntuples(res) == 0) {
		error = base_error_set(BASE_ENOTFOUND, "delivery %s is not stored", id);
		goto done;
	}
	size_t n = PQgetisnull(res, 0, 0) ? 0 : (size_t)PQgetlength(res, 0, 0);
	char *b = malloc(n + 1);
	if (!b) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	if (n)
		memcpy(b, PQgetvalue(res, 0, 0), n);
	b[n] = '\0';
	*body_out = b;
	if (len_out)
		*len_out = n;
done:
	PQclear(res);
	conn_put(s, c);
	return error;
}

static int pg_delivery_set_status(store *st, const char *id, const char *status)
{
	return pexec((pg_store *)st, NULL, NULL, "UPDATE deliveries SET status=$1 WHERE id=$2", "ss", status, id);
}

static int pg_delivery_list(store *st, json_t **out, int limit, const char *event)
{
	return query((pg_store *)st, out, 0,
		     "SELECT id, event, action, installation_id, repository, " ISO("received_ms") " AS received,"
		     " CASE WHEN status <> 'queued' THEN status ELSE coalesce((SELECT CASE"
		     "  WHEN count(*) FILTER (WHERE state IN ('queued','running')) > 0 THEN 'queued'"
		     "  WHEN count(*) FILTER (WHERE state = 'failed') > 0 THEN 'failed' ELSE 'done' END"
		     "  FROM jobs WHERE jobs.delivery_id = deliveries.id), status) END AS status"
		     " FROM deliveries WHERE ($1::text IS NULL OR event=$1) ORDER BY received_ms DESC, id DESC"
		     " LIMIT $2",
		     "si", event, (int64_t)(limit > 0 ? limit : INT32_MAX));
}

/* ---- jobs ------------------------------------------------------------------ */

/* Inside a transaction: the queued or running job with dedupe_key, else a
 * new one.  The key's advisory lock makes the check and the insert one step
 * across replicas. */
static int insert_job(struct pconn *c, int64_t *id_out, const char *kind, const char *payload, const char *dedupe_key,
		      int64_t run_at_ms)
{
	int64_t now = base_wall_ms();
	json_t *row = NULL;
	int error;
	*id_out = 0;
	if (dedupe_key) {
		if ((error = exec_c(c, NULL, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", "s", dedupe_key)) < 0)
			return error;
		if ((error = query_c(c, &row, 0,
				     "SELECT id FROM jobs WHERE dedupe_key=$1 AND state IN ('queued','running') LIMIT 1",
				     "s", dedupe_key)) < 0)
			return error;
		if (json_array_size(row) > 0)
			*id_out = json_integer_value(json_object_get(json_array_get(row, 0), "id"));
		json_decref(row);
		if (*id_out)
			return 0;
	}
	if ((error = query_c(c, &row, 1,
			     "INSERT INTO jobs(kind, payload, dedupe_key, state, run_at_ms, created_ms, updated_ms)"
			     " VALUES($1,$2,$3,'queued',$4,$5,$5) RETURNING id",
			     "sssii", kind, payload, dedupe_key, run_at_ms ? run_at_ms : now, now)) < 0)
		return error;
	*id_out = json_integer_value(json_object_get(row, "id"));
	json_decref(row);
	return 0;
}

static int pg_job_add(store *st, int64_t *id_out, const char *kind, const char *payload, const char *dedupe_key,
		      int64_t run_at_ms)
{
	pg_store *s = (pg_store *)st;
	int64_t id = 0;
	int error;
	if (!dedupe_key) {
		PGresult *res = NULL;
		int64_t now = base_wall_ms();
		error = stmt_once(s, &res, "job_add",
			     "INSERT INTO jobs(kind, payload, state, run_at_ms, created_ms, updated_ms)"
			     " VALUES($1,$2,'queued',$3,$4,$4) RETURNING id",
			     "ssii", kind, payload, run_at_ms ? run_at_ms : now, now);
		if (error == 0)
			id = col_int(res, 0, 0);
		PQclear(res);
	} else {
		struct pconn *c = NULL;
		if ((error = tx_begin(s, &c)) < 0)
			return error;
		error = tx_end(s, c, insert_job(c, &id, kind, payload, dedupe_key, run_at_ms));
	}
	if (error == 0 && id_out)
		*id_out = id;
	return error;
}

static int pg_job_claim(store *st, store_job *out, const char *owner, int64_t lease_ms, const store_job_filter *filter)
{
	pg_store *s = (pg_store *)st;
	char *kinds = NULL;
	memset(out, 0, sizeof(*out));
	if (filter) {
		json_t *a = json_array();
		for (size_t i = 0; a && filter->kinds && filter->kinds[i]; i++)
			json_array_append_new(a, json_string(filter->kinds[i]));
		kinds = a ? json_dumps(a, JSON_COMPACT) : NULL;
		json_decref(a);
		if (!kinds)
			return base_error_set(BASE_ENOMEM, "out of memory");
	}
	int64_t now = base_wall_ms();
	PGresult *res = NULL;
	/* a lease that expired (its worker died) first, else the oldest due
	 * job; a row another replica is claiming is skipped, not waited for.
	 * A filter names the kinds of the other pool of workers: the pool that
	 * runs only those finds them through jobs_kind, so a backlog of other
	 * jobs (a burst of webhooks) costs its claims nothing. */
#define CLAIM(kind_filter)                                                                                  \
	"UPDATE jobs SET state='running', lease_owner=$1, lease_expires_ms=$2::bigint + $3::bigint,"          \
	" attempts=attempts+1, updated_ms=$2"                                                                 \
	" WHERE id=coalesce("                                                                                 \
	"(SELECT id FROM jobs WHERE state='running' AND lease_expires_ms<$2" kind_filter                       \
	" ORDER BY lease_expires_ms LIMIT 1 FOR UPDATE SKIP LOCKED),"                                         \
	"(SELECT id FROM jobs WHERE state='queued' AND run_at_ms<=$2" kind_filter                              \
	" ORDER BY run_at_ms, id LIMIT 1 FOR UPDATE SKIP LOCKED))"                                            \
	" AND (state='queued' OR (state='running' AND lease_expires_ms<$2))"                                  \
	" RETURNING id, kind, payload, delivery_id, attempts"
	int error;
	if (!filter)
		error = stmt(s, &res, "job_claim", CLAIM(""), "sii", owner, now, lease_ms);
	else if (filter->exclude)
		error = stmt(s, &res, "job_claim_others",
			     CLAIM(" AND kind NOT IN (SELECT jsonb_array_elements_text($4::jsonb))"), "siis", owner, now,
			     lease_ms, kinds);
	else
		error = stmt(s, &res, "job_claim_kinds",
			     CLAIM(" AND kind IN (SELECT jsonb_array_elements_text($4::jsonb))"), "siis", owner, now,
			     lease_ms, kinds);
#undef CLAIM
	free(kinds);
	if (error < 0)
		return error;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return BASE_ENOTFOUND;
	}
	out->id = col_int(res, 0, 0);
	out->kind = col_strdup(res, 0, 1);
	out->payload = col_strdup(res, 0, 2);
	out->delivery_id = col_strdup(res, 0, 3);
	out->attempts = (int)col_int(res, 0, 4);
	PQclear(res);
	if (!out->kind || !out->payload) {
		store_job_dispose(out);
		return base_error_set(BASE_ENOMEM, "out of memory");
	}
	return 0;
}

static int owned(int error, int changes, int64_t id, const char *owner)
{
	if (error == 0 && changes == 0)
		error = base_error_set(BASE_ENOTFOUND, "job %lld is not held by %s", (long long)id, owner);
	return error;
}

static int pg_job_heartbeat(store *st, int64_t id, const char *owner, int64_t lease_ms)
{
	int changes = 0;
	int error = pexec((pg_store *)st, &changes, "job_heartbeat",
			  "UPDATE jobs SET lease_expires_ms=$1 WHERE id=$2 AND lease_owner=$3 AND state='running'", "iis",
			  base_wall_ms() + lease_ms, id, owner);
	return owned(error, changes, id, owner);
}

static int pg_job_done(store *st, int64_t id, const char *owner, const char *note)
{
	int changes = 0;
	int error = pexec((pg_store *)st, &changes, "job_done",
			  "UPDATE jobs SET state='done', note=$1, updated_ms=$2, lease_owner=NULL, lease_expires_ms=NULL,"
			  " completions=completions+1 WHERE id=$3 AND lease_owner=$4 AND state='running'",
			  "siis", note, base_wall_ms(), id, owner);
	return owned(error, changes, id, owner);
}

static int pg_job_fail(store *st, int64_t id, const char *owner, const char *err, int64_t retry_at_ms)
{
	PGresult *res = NULL;
	int error = stmt((pg_store *)st, &res, "job_fail",
			 "WITH u AS (UPDATE jobs SET state=CASE WHEN $1::bigint > 0 THEN 'queued' ELSE 'failed' END,"
			 " run_at_ms=CASE WHEN $1::bigint > 0 THEN $1::bigint ELSE run_at_ms END, error=$2, updated_ms=$3,"
			 " lease_owner=NULL, lease_expires_ms=NULL WHERE id=$4 AND lease_owner=$5 AND state='running'"
			 " RETURNING state),"
			 " n AS (SELECT pg_notify('" NOTIFY_CHANNEL "', '') FROM u WHERE u.state='queued')"
			 " SELECT (SELECT count(*) FROM u) AS changed, (SELECT count(*) FROM n) AS notified",
			 "isiis", retry_at_ms, err, base_wall_ms(), id, owner);
	int changes = error == 0 ? (int)col_int(res, 0, 0) : 0;
	PQclear(res);
	return owned(error, changes, id, owner);
}

static int pg_job_cancel_key(store *st, const char *dedupe_key, int *count_out)
{
	int changes = 0;
	int error = pexec((pg_store *)st, &changes, NULL,
			  "UPDATE jobs SET state='cancelled', updated_ms=$1 WHERE dedupe_key=$2 AND state='queued'", "is",
			  base_wall_ms(), dedupe_key);
	if (count_out)
		*count_out = changes;
	return error;
}

static int pg_job_release(store *st, const char *owner)
{
	return pexec((pg_store *)st, NULL, NULL,
		     "WITH u AS (UPDATE jobs SET state='queued', lease_owner=NULL, lease_expires_ms=NULL, updated_ms=$1"
		     " WHERE state='running' AND ($2::text IS NULL OR lease_owner=$2) RETURNING 1),"
		     " n AS (SELECT pg_notify('" NOTIFY_CHANNEL "', '') WHERE EXISTS (SELECT 1 FROM u))"
		     " SELECT (SELECT count(*) FROM u) AS changed, (SELECT count(*) FROM n) AS notified",
		     "is", base_wall_ms(), owner);
}

static int pg_job_list(store *st, json_t **out, int limit)
{
	return query((pg_store *)st, out, 0,
		     "SELECT id, kind, state, attempts, completions, delivery_id, dedupe_key, lease_owner, error, note,"
		     " " ISO("created_ms") " AS created, " ISO("updated_ms") " AS updated"
		     " FROM jobs ORDER BY id DESC LIMIT $1",
		     "i", (int64_t)(limit > 0 ? limit : INT32_MAX));
}

static int pg_job_counts(store *st, json_t **out)
{
	json_t *rows = NULL;
	int error = query((pg_store *)st, &rows, 0, "SELECT state, count(*) AS n FROM jobs GROUP BY state", "");
	if (error < 0)
		return error;
	json_t *o = json_pack("{s:i,s:i,s:i,s:i,s:i}", "queued", 0, "running", 0, "done", 0, "failed", 0, "cancelled", 0);
	size_t i;
	json_t *r;
	json_array_foreach(rows, i, r)
		json_object_set(o, json_string_value(json_object_get(r, "state")), json_object_get(r, "n"));
	json_decref(rows);
	*out = o;
	return 0;
}

static int pg_queue_stats(store *st, store_queue_stats *out, int64_t now_ms, int64_t since_ms)
{
	json_t *row = NULL;
	int error = query((pg_store *)st, &row, 1,
			  "SELECT (SELECT count(*) FROM jobs WHERE state='queued') AS queued,"
			  " (SELECT coalesce(min(run_at_ms), 0) FROM jobs WHERE state='queued' AND run_at_ms <= $1) AS oldest,"
			  " (SELECT count(*) FROM jobs WHERE state='failed' AND updated_ms >= $2) AS failed",
			  "ii", now_ms, since_ms);
	if (error == 0) {
		out->queued = (int64_t)json_integer_value(json_object_get(row, "queued"));
		out->oldest_due_ms = (int64_t)json_integer_value(json_object_get(row, "oldest"));
		out->failed_since = (int64_t)json_integer_value(json_object_get(row, "failed"));
	}
	json_decref(row);
	return error;
}

/* Waits on the LISTEN connection until a job notification, a new
 * connection (notifications may have been missed: 1) or timeout_ms (0). */
static int pg_wait_for_job(store *st, int timeout_ms)
{
	pg_store *s = (pg_store *)st;
	pthread_mutex_lock(&s->listen_lock);
	int woke = 0;
	if (!s->listener || PQstatus(s->listener) != CONNECTION_OK) {
		if (s->listener) {
			PQfinish(s->listener);
			s->listener = NULL;
		}
		if (base_wall_ms() >= s->listen_retry_ms) {
			PGconn *pg = connect_url(s->url);
			PGresult *res = pg && PQstatus(pg) == CONNECTION_OK ? PQexec(pg, "LISTEN " NOTIFY_CHANNEL) : NULL;
			if (res && PQresultStatus(res) == PGRES_COMMAND_OK) {
				s->listener = pg;
				woke = 1; /* jobs may have been queued while it was away */
			} else {
				PQfinish(pg);
				s->listen_retry_ms = base_wall_ms() + 1000;
			}
			PQclear(res);
		}
		if (!s->listener) {
			pthread_mutex_unlock(&s->listen_lock);
			struct timespec ts = { timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L };
			nanosleep(&ts, NULL);
			return 0;
		}
	}
	PGnotify *n;
	if (!woke) {
		PQconsumeInput(s->listener);
		while ((n = PQnotifies(s->listener)) != NULL) {
			woke = 1;
			PQfreemem(n);
		}
	}
	if (!woke) {
		struct pollfd pfd = { .fd = PQsocket(s->listener), .events = POLLIN };
		int r = pfd.fd >= 0 ? poll(&pfd, 1, timeout_ms) : -1;
		if (r != 0) {
			if (!PQconsumeInput(s->listener) || PQstatus(s->listener) != CONNECTION_OK) {
				PQfinish(s->listener);
				s->listener = NULL;
			} else {
				while ((n = PQnotifies(s->listener)) != NULL) {
					woke = 1;
					PQfreemem(n);
				}
			}
		}
	}
	pthread_mutex_unlock(&s->listen_lock);
	return woke;
}

/* ---- installations ------------------------------------------------------------ */

static int pg_installation_put(store *st, int64_t id, const char *account, const char *state)
{
	return pexec((pg_store *)st, NULL, NULL,
		     "INSERT INTO installations(id, account, state, updated_ms) VALUES($1,$2,$3,$4)"
		     " ON CONFLICT(id) DO UPDATE SET account=coalesce($2, installations.account), state=$3, updated_ms=$4",
		     "issi", id, account, state, base_wall_ms());
}

static int pg_installation_delete(store *st, int64_t id)
{
	pg_store *s = (pg_store *)st;
	struct pconn *c = NULL;
	int error = tx_begin(s, &c);
	if (error < 0)
		return error;
	error = exec_c(c, NULL, "DELETE FROM repositories WHERE installation_id=$1", "i", id);
	if (error == 0)
		error = exec_c(c, NULL,
			       "INSERT INTO installations(id, state, updated_ms) VALUES($1,'deleted',$2)"
			       " ON CONFLICT(id) DO UPDATE SET state='deleted', updated_ms=$2",
			       "ii", id, base_wall_ms());
	return tx_end(s, c, error);
}

static int pg_installation_state(store *st, int64_t id, char **state_out)
{
	json_t *row = NULL;
	int error = query((pg_store *)st, &row, 1, "SELECT state FROM installations WHERE id=$1", "i", id);
	if (error < 0)
		return error;
	*state_out = strdup(json_string_value(json_object_get(row, "state")));
	json_decref(row);
	return *state_out ? 0 : base_error_set(BASE_ENOMEM, "out of memory");
}

static int pg_repository_put(store *st, int64_t installation_id, int64_t repo_id, const char *full_name)
{
	return pexec((pg_store *)st, NULL, NULL,
		     "INSERT INTO repositories(installation_id, id, full_name) VALUES($1,$2,$3)"
		     " ON CONFLICT(installation_id, id) DO UPDATE SET full_name=$3",
		     "iis", installation_id, repo_id, full_name);
}

static int pg_repository_remove(store *st, int64_t installation_id, int64_t repo_id)
{
	return pexec((pg_store *)st, NULL, NULL, "DELETE FROM repositories WHERE installation_id=$1 AND id=$2", "ii",
		     installation_id, repo_id);
}

static int pg_repository_list(store *st, int64_t installation_id, json_t **out)
{
	return query((pg_store *)st, out, 0,
		     "SELECT id, full_name FROM repositories WHERE installation_id=$1 ORDER BY full_name", "i",
		     installation_id);
}

static int pg_hook_put(store *st, int64_t hook_id, int64_t app_id, const char *delivery_id)
{
	return pexec((pg_store *)st, NULL, NULL,
		     "INSERT INTO hooks(hook_id, app_id, delivery_id, updated_ms) VALUES($1,$2,$3,$4)"
		     " ON CONFLICT(hook_id) DO UPDATE SET app_id=$2, delivery_id=$3, updated_ms=$4",
		     "iisi", hook_id, app_id, delivery_id, base_wall_ms());
}

/* ---- runs and products ------------------------------------------------------------ */

static int pg_run_create(store *st, int64_t *id_out, const store_run_spec *r)
{
	char *data = json_text(r->data);
	if (!data)
		return base_error_set(BASE_ENOMEM, "out of memory");
	int64_t now = base_wall_ms();
	PGresult *res = NULL;
	int error = stmt_once((pg_store *)st, &res, NULL,
			 "INSERT INTO runs(kind, repository, installation_id, head_sha, base_sha, branch, trigger, state, data,"
			 " created_ms, updated_ms) VALUES($1,$2,$3,$4,$5,$6,$7,'queued',$8::jsonb,$9,$9) RETURNING id",
			 "ssisssssi", store_run_kind_name(r->kind), r->repository, r->installation_id, r->head_sha,
			 r->base_sha, r->branch, r->trigger, data, now);
	free(data);
	if (error == 0 && id_out)
		*id_out = col_int(res, 0, 0);
	PQclear(res);
	return error;
}

static int pg_run_set_state(store *st, int64_t id, const char *state, const char *reason)
{
	int changes = 0;
	int error = pexec((pg_store *)st, &changes, NULL, "UPDATE runs SET state=$1, reason=$2, updated_ms=$3 WHERE id=$4",
			  "ssii", state, reason, base_wall_ms(), id);
	if (error == 0 && changes == 0)
		error = base_error_set(BASE_ENOTFOUND, "run %lld not found", (long long)id);
	return error;
}

static int pg_run_set_state_from(store *st, int64_t id, const char *from, const char *state, const char *reason)
{
	int changes = 0;
	int error = pexec((pg_store *)st, &changes, NULL,
			  "UPDATE runs SET state=$1, reason=$2, updated_ms=$3 WHERE id=$4"
			  " AND state = ANY(string_to_array($5, ','))",
			  "ssiis", state, reason, base_wall_ms(), id, from);
	if (error < 0)
		return error;
	if (changes == 0) {
		json_t *row = NULL;
		if ((error = query((pg_store *)st, &row, 1, "SELECT state FROM runs WHERE id=$1", "i", id)) < 0)
			return error == BASE_ENOTFOUND ? base_error_set(BASE_ENOTFOUND, "run %lld not found", (long long)id)
						      : error;
		const char *now = json_string_value(json_object_get(row, "state"));
		error = base_error_set(BASE_EEXISTS, "run %lld is %s", (long long)id, now ? now : "?");
		json_decref(row);
	}
	return error;
}

/* Inside a transaction: merges data into run id's document. */
static int patch_run(struct pconn *c, int64_t id, const json_t *data)
{
	char *text = json_text(data);
	if (!text)
		return base_error_set(BASE_ENOMEM, "out of memory");
	int changes = 0;
	int error = exec_c(c, &changes,
			   "UPDATE runs SET data=perfbot_merge_patch(coalesce(data,'{}'::jsonb), $1::jsonb), updated_ms=$2"
			   " WHERE id=$3",
			   "sii", text, base_wall_ms(), id);
	free(text);
	if (error == 0 && changes == 0)
		error = base_error_set(BASE_ENOTFOUND, "run %lld not found", (long long)id);
	return error;
}

static int insert_audit(struct pconn *c, const char *actor, const char *action, const char *subject, const char *detail)
{
	return exec_c(c, NULL, "INSERT INTO audit(at_ms, actor, action, subject, detail) VALUES($1,$2,$3,$4,$5)", "issss",
		      base_wall_ms(), actor, action, subject, detail);
}

static int pg_run_update(store *st, int64_t id, const json_t *data)
{
	char *text = json_text(data);
	if (!text)
		return base_error_set(BASE_ENOMEM, "out of memory");
	int changes = 0;
	int error = pexec((pg_store *)st, &changes, "run_update",
			  "UPDATE runs SET data=perfbot_merge_patch(coalesce(data,'{}'::jsonb), $1::jsonb), updated_ms=$2"
			  " WHERE id=$3",
			  "sii", text, base_wall_ms(), id);
	free(text);
	if (error == 0 && changes == 0)
		error = base_error_set(BASE_ENOTFOUND, "run %lld not found", (long long)id);
	return error;
}

#define RUN_COLUMNS                                                                                                   \
	"SELECT id, kind, repository, installation_id, head_sha, base_sha, branch, trigger, state, reason,"            \
	" " ISO("created_ms") " AS created, " ISO("updated_ms") " AS updated, data FROM runs"

static int pg_run_get(store *st, int64_t id, json_t **out)
{
	int error = query((pg_store *)st, out, 1, RUN_COLUMNS " WHERE id=$1", "i", id);
	if (error == BASE_ENOTFOUND)
		base_error_set(BASE_ENOTFOUND, "run %lld not found", (long long)id);
	return error;
}

static int pg_run_list(store *st, const json_t *filter, int limit, json_t **out)
{
	const char *kind = json_string_value(json_object_get(filter, "kind"));
	const char *repo = json_string_value(json_object_get(filter, "repository"));
	const char *state = json_string_value(json_object_get(filter, "state"));
	const char *branch = json_string_value(json_object_get(filter, "branch"));
	return query((pg_store *)st, out, 0,
		     RUN_COLUMNS " WHERE ($1::text IS NULL OR kind=$1) AND ($2::text IS NULL OR repository=$2)"
				 " AND ($3::text IS NULL OR state=$3) AND ($4::text IS NULL OR branch=$4)"
				 " ORDER BY id DESC LIMIT $5",
		     "ssssi", kind, repo, state, branch, (int64_t)(limit > 0 ? limit : INT32_MAX));
}

static int pg_measurement_put(store *st, int64_t *id_out, int64_t run_id, const char *repository, const char *commit,
			      const char *benchmark, const json_t *data)
{
	char *text = json_text(data);
	if (!text)
		return base_error_set(BASE_ENOMEM, "out of memory");
	PGresult *res = NULL;
	int error = stmt_once((pg_store *)st, &res, NULL,
			 "INSERT INTO measurements(run_id, repository, commit_sha, benchmark, data, created_ms, ok, instructions,"
			 " estimated_cycles) VALUES($1,$2,$3,$4,$5::jsonb,$6, coalesce($5::jsonb->>'status' = 'ok', false),"
			 " perfbot_json_int($5::jsonb->'instructions'), perfbot_json_int($5::jsonb->'estimated_cycles'))"
			 " RETURNING id",
			 "issssi", run_id, repository, commit, benchmark, text, base_wall_ms());
	free(text);
	if (error == 0 && id_out)
		*id_out = col_int(res, 0, 0);
	PQclear(res);
	return error;
}

#define MEASUREMENT_COLUMNS "SELECT id, run_id, repository, commit_sha AS \"commit\", benchmark, data FROM measurements"

static int pg_measurement_find(store *st, const char *repository, const char *commit, const char *benchmark,
			       json_t **out)
{
	return query((pg_store *)st, out, 1,
		     MEASUREMENT_COLUMNS " WHERE repository=$1 AND commit_sha=$2 AND benchmark=$3"
					 " AND data->>'status'='ok' ORDER BY id DESC LIMIT 1",
		     "sss", repository, commit, benchmark);
}

static int pg_measurement_get(store *st, int64_t id, json_t **out)
{
	return query((pg_store *)st, out, 1, MEASUREMENT_COLUMNS " WHERE id=$1", "i", id);
}

static int pg_measurement_list(store *st, int64_t run_id, json_t **out)
{
	return query((pg_store *)st, out, 0, MEASUREMENT_COLUMNS " WHERE run_id=$1 ORDER BY id", "i", run_id);
}

static int pg_proposal_put(store *st, int64_t run_id, const json_t *data)
{
	char *text = json_text(data);
	if (!text)
		return base_error_set(BASE_ENOMEM, "out of memory");
	int error = pexec((pg_store *)st, NULL, NULL,
			  "INSERT INTO proposals(run_id, data, created_ms, updated_ms) VALUES($1,$2::jsonb,$3,$3)"
			  " ON CONFLICT(run_id) DO UPDATE SET data=$2::jsonb, updated_ms=$3",
			  "isi", run_id, text, base_wall_ms());
	free(text);
	return error;
}

static int pg_proposal_get(store *st, int64_t run_id, json_t **out)
{
	json_t *row = NULL;
	int error = query((pg_store *)st, &row, 1, "SELECT data FROM proposals WHERE run_id=$1", "i", run_id);
	if (error == BASE_ENOTFOUND)
		return base_error_set(BASE_ENOTFOUND, "run %lld has no proposal", (long long)run_id);
	if (error < 0)
		return error;
	*out = json_incref(json_object_get(row, "data"));
	json_decref(row);
	return 0;
}

static int pg_pull_put(store *st, int64_t run_id, const char *repository, int number, const char *branch,
		       const char *state, const json_t *data)
{
	char *text = json_text(data);
	if (!text)
		return base_error_set(BASE_ENOMEM, "out of memory");
	int error = pexec((pg_store *)st, NULL, NULL,
			  "INSERT INTO pulls(run_id, repository, number, branch, state, data, updated_ms)"
			  " VALUES($1,$2,$3,$4,$5,$6::jsonb,$7) ON CONFLICT(run_id) DO UPDATE SET repository=$2, number=$3,"
			  " branch=$4, state=$5, data=perfbot_merge_patch(coalesce(pulls.data,'{}'::jsonb), $6::jsonb),"
			  " updated_ms=$7",
			  "isnsssi", run_id, repository, number, branch, state, text, base_wall_ms());
	free(text);
	return error;
}

static int pg_pull_get(store *st, int64_t run_id, json_t **out)
{
	return query((pg_store *)st, out, 1,
		     "SELECT run_id, repository, number, branch, state, data FROM pulls WHERE run_id=$1", "i", run_id);
}

static int pg_pull_find_branch(store *st, const char *repository, const char *branch, json_t **out)
{
	return query((pg_store *)st, out, 1,
		     "SELECT run_id, repository, number, branch, state, data FROM pulls WHERE repository=$1 AND branch=$2"
		     " ORDER BY run_id DESC",
		     "ss", repository, branch);
}

static int pg_approval_put(store *st, const store_approval *a)
{
	pg_store *s = (pg_store *)st;
	char subject[32];
	snprintf(subject, sizeof(subject), "run %lld", (long long)a->run_id);
	struct pconn *c = NULL;
	int error = tx_begin(s, &c);
	if (error < 0)
		return error;
	int changes = 0;
	error = exec_c(c, &changes,
		       "INSERT INTO approvals(run_id, \"user\", via, created_ms) VALUES($1,$2,$3,$4)"
		       " ON CONFLICT(run_id) DO NOTHING",
		       "issi", a->run_id, a->user, a->via, base_wall_ms());
	if (error == 0 && changes == 0)
		error = base_error_set(BASE_EEXISTS, "run %lld is already approved", (long long)a->run_id);
	if (error == 0 && a->run_update)
		error = patch_run(c, a->run_id, a->run_update);
	if (error == 0)
		error = insert_audit(c, a->user, "approve", subject, a->via);
	int64_t job = 0;
	if (error == 0 && a->job_kind)
		error = insert_job(c, &job, a->job_kind, a->job_payload, a->job_key, 0);
	return tx_end(s, c, error);
}

static int pg_audit(store *st, const char *actor, const char *action, const char *subject, const char *detail)
{
	PGresult *res = NULL;
	int error = stmt_once((pg_store *)st, &res, NULL,
			      "INSERT INTO audit(at_ms, actor, action, subject, detail) VALUES($1,$2,$3,$4,$5)", "issss",
			      base_wall_ms(), actor, action, subject, detail);
	PQclear(res);
	return error;
}

static int pg_run_token_put(store *st, int64_t run_id, const char *token_hash)
{
	PGresult *res = NULL;
	int error = stmt_once((pg_store *)st, &res, NULL,
			      "INSERT INTO run_tokens(token_hash, run_id, created_ms) VALUES($1,$2,$3)", "sii", token_hash,
			      run_id, base_wall_ms());
	PQclear(res);
	return error;
}

static int pg_run_token_find(store *st, const char *token_hash, int64_t *run_id_out)
{
	json_t *row = NULL;
	int error = query((pg_store *)st, &row, 1, "SELECT run_id FROM run_tokens WHERE token_hash=$1", "s", token_hash);
	if (error < 0)
		return error;
	*run_id_out = json_integer_value(json_object_get(row, "run_id"));
	json_decref(row);
	return 0;
}

static int pg_run_token_delete(store *st, int64_t run_id)
{
	return pexec((pg_store *)st, NULL, NULL, "DELETE FROM run_tokens WHERE run_id=$1", "i", run_id);
}

/* ---- dashboard --------------------------------------------------------------- */

static int pg_session_put(store *st, const store_session *x)
{
	pg_store *s = (pg_store *)st;
	struct pconn *c = NULL;
	int error = tx_begin(s, &c);
	if (error < 0)
		return error;
	error = exec_c(c, NULL, "DELETE FROM sessions WHERE expires_ms <= $1", "i", x->created_ms);
	if (error == 0)
		error = exec_c(c, NULL,
			       "INSERT INTO sessions(id_hash, login, user_id, avatar_url, token, csrf, created_ms, expires_ms)"
			       " VALUES($1,$2,$3,$4,$5,$6,$7,$8)",
			       "ssisssii", x->id_hash, x->login, x->user_id, x->avatar_url, x->token, x->csrf, x->created_ms,
			       x->expires_ms);
	if (error == BASE_EEXISTS)
		base_error_set(BASE_EEXISTS, "session exists");
	return tx_end(s, c, error);
}

static int pg_session_get(store *st, const char *id_hash, int64_t now_ms, store_session *out)
{
	PGresult *res = NULL;
	int error = stmt((pg_store *)st, &res, NULL,
			 "SELECT id_hash, login, user_id, avatar_url, token, csrf, created_ms, expires_ms FROM sessions"
			 " WHERE id_hash=$1 AND expires_ms > $2",
			 "si", id_hash, now_ms);
	if (error == 0 && PQntuples(res) == 0)
		error = base_error_set(BASE_ENOTFOUND, "no such session");
	if (error == 0) {
		out->id_hash = col_strdup(res, 0, 0);
		out->login = col_strdup(res, 0, 1);
		out->user_id = col_int(res, 0, 2);
		out->avatar_url = col_strdup(res, 0, 3);
		out->token = col_strdup(res, 0, 4);
		out->csrf = col_strdup(res, 0, 5);
		out->created_ms = col_int(res, 0, 6);
		out->expires_ms = col_int(res, 0, 7);
		if (!out->id_hash || !out->login || !out->csrf)
			error = base_error_set(BASE_ENOMEM, "out of memory");
	}
	PQclear(res);
	if (error < 0)
		store_session_dispose(out);
	return error;
}

static int pg_session_delete(store *st, const char *id_hash)
{
	return pexec((pg_store *)st, NULL, NULL, "DELETE FROM sessions WHERE id_hash=$1", "s", id_hash);
}

/* The SQLite backend's series query in PostgreSQL's words: the branch's runs
 * from the `limit`-th newest on, along runs_branch, joined with their
 * successful measurements; rows come grouped by run, oldest first, and are
 * folded into the series in one pass (a commit measured again keeps only
 * its newest run). */
static int pg_series_get(store *st, json_t **out, const char *repository, const char *branch, const char *metric,
			 int limit)
{
	PGresult *res = NULL;
	json_t *commits = json_array(), *series = json_object(), *seen = json_object(), *root = NULL;
	unsigned char *dropped = calloc((size_t)limit, 1);
	size_t ndropped = 0, ncommits = 0;
	int error = 0;
	if (!commits || !series || !seen || !dropped) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	error = stmt((pg_store *)st, &res, NULL,
		     "SELECT c.id, c.head_sha, coalesce(perfbot_json_int(c.data->'commit'->'at_ms'), c.created_ms) AS at_ms,"
		     "  c.data->'commit'->>'author' AS author, c.data->'commit'->>'message' AS message,"
		     "  m.benchmark, CASE WHEN $4::boolean THEN m.instructions ELSE m.estimated_cycles END AS value"
		     " FROM runs c"
		     " LEFT JOIN measurements m ON m.run_id = c.id AND m.commit_sha = c.head_sha AND m.ok"
		     " WHERE c.repository=$1 AND c.branch=$2 AND c.kind='bench' AND c.trigger='push' AND c.state='done'"
		     "  AND c.head_sha IS NOT NULL AND c.id >= coalesce((SELECT id FROM runs"
		     "   WHERE repository=$1 AND branch=$2 AND kind='bench' AND trigger='push' AND state='done'"
		     "   AND head_sha IS NOT NULL ORDER BY id DESC LIMIT 1 OFFSET $3::int - 1), 0)"
		     " ORDER BY c.id, m.id",
		     "ssns", repository, branch, limit, strcmp(metric, "instructions") == 0 ? "true" : "false");
	if (error < 0)
		goto done;
	int64_t last_run = -1;
	for (int r = 0; r < PQntuples(res); r++) {
		int64_t run = col_int(res, r, 0);
		if (run != last_run) {
			const char *sha = PQgetisnull(res, r, 1) ? "" : PQgetvalue(res, r, 1);
			const char *author = PQgetisnull(res, r, 3) ? NULL : PQgetvalue(res, r, 3);
			const char *message = PQgetisnull(res, r, 4) ? NULL : PQgetvalue(res, r, 4);
			if (ncommits >= (size_t)limit)
				break;
			json_t *c = json_pack("{s:s, s:I, s:I, s:s?, s:s?}", "sha", sha, "run_id", (json_int_t)run, "at_ms",
					      (json_int_t)col_int(res, r, 2), "author", author, "message", message);
			if (!c || json_array_append_new(commits, c) < 0) {
				error = base_error_set(BASE_ENOMEM, "out of memory");
				goto done;
			}
			json_t *before = json_object_get(seen, sha);
			if (before) {
				dropped[json_integer_value(before)] = 1;
				ndropped++;
			}
			json_object_set_new(seen, sha, json_integer((json_int_t)ncommits));
			const char *k;
			json_t *v;
			json_object_foreach(series, k, v) json_array_append_new(v, json_null());
			last_run = run;
			ncommits++;
		}
		if (PQgetisnull(res, r, 5) || PQgetisnull(res, r, 6))
			continue;
		const char *bench = PQgetvalue(res, r, 5);
		json_t *arr = json_object_get(series, bench);
		if (!arr) {
			arr = json_array();
			for (size_t i = 0; arr && i < ncommits; i++)
				json_array_append_new(arr, json_null());
			if (!arr || json_object_set_new(series, bench, arr) < 0) {
				error = base_error_set(BASE_ENOMEM, "out of memory");
				goto done;
			}
		}
		json_array_set_new(arr, ncommits - 1, json_integer((json_int_t)col_int(res, r, 6)));
	}
	if (ndropped) {
		json_t *kept = json_array(), *kseries = json_object();
		for (size_t i = 0; i < ncommits; i++)
			if (!dropped[i])
				json_array_append(kept, json_array_get(commits, i));
		const char *k;
		json_t *v;
		json_object_foreach(series, k, v) {
			json_t *nv = json_array();
			int any = 0;
			for (size_t i = 0; i < ncommits; i++)
				if (!dropped[i]) {
					json_array_append(nv, json_array_get(v, i));
					any |= !json_is_null(json_array_get(v, i));
				}
			if (any)
				json_object_set_new(kseries, k, nv);
			else
				json_decref(nv);
		}
		json_decref(commits);
		json_decref(series);
		commits = kept;
		series = kseries;
	}
	if (!(root = json_pack("{s:O, s:O}", "commits", commits, "series", series)))
		error = base_error_set(BASE_ENOMEM, "out of memory");
done:
	PQclear(res);
	json_decref(commits);
	json_decref(series);
	json_decref(seen);
	free(dropped);
	if (error == 0)
		*out = root;
	return error;
}

/* ---- Managed Agents work items handed between replicas ------------------------ */

static int pg_handover_put(store *st, const char *environment_id, const char *session_id, const char *work_id,
			   const char *secret, const char *polled_by, int64_t polled_ms, int64_t expires_ms)
{
	pg_store *s = (pg_store *)st;
	struct pconn *c = NULL;
	int error = tx_begin(s, &c);
	if (error < 0)
		return error;
	error = exec_c(c, NULL, "DELETE FROM managed_handover WHERE expires_ms <= $1", "i", polled_ms);
	if (error == 0)
		error = exec_c(c, NULL,
			       "INSERT INTO managed_handover(work_id, environment_id, session_id, secret, polled_by, polled_ms,"
			       " expires_ms) VALUES($1,$2,$3,$4,$5,$6,$7) ON CONFLICT (work_id) DO UPDATE SET"
			       " environment_id=EXCLUDED.environment_id, session_id=EXCLUDED.session_id,"
			       " secret=EXCLUDED.secret, polled_by=EXCLUDED.polled_by, polled_ms=EXCLUDED.polled_ms,"
			       " expires_ms=EXCLUDED.expires_ms",
			       "sssssii", work_id, environment_id, session_id, secret, polled_by, polled_ms, expires_ms);
	return tx_end(s, c, error);
}

static int pg_handover_claim(store *st, const char *environment_id, const char *session_id, int64_t now_ms,
			     store_handover *out)
{
	pg_store *s = (pg_store *)st;
	PGresult *res = NULL;
	/* a read first: the replicas ask often and there is rarely anything */
	int error = stmt(s, &res, "handover_peek",
			 "SELECT 1 FROM managed_handover WHERE session_id=$1 AND expires_ms > $2 AND environment_id=$3"
			 " LIMIT 1",
			 "sis", session_id, now_ms, environment_id);
	int have = error == 0 && PQntuples(res) > 0;
	PQclear(res);
	res = NULL;
	if (error < 0)
		return error;
	if (!have)
		return base_error_set(BASE_ENOTFOUND, "no work item to hand over");
	/* the row locked by one claimer is skipped by the others; never run
	 * twice (a claim repeated after a broken connection would take another
	 * row while the first is lost) */
	error = stmt_once(s, &res, NULL,
			  "DELETE FROM managed_handover WHERE work_id=(SELECT work_id FROM managed_handover"
			  " WHERE session_id=$1 AND expires_ms > $2 AND environment_id=$3 ORDER BY polled_ms, work_id"
			  " LIMIT 1 FOR UPDATE SKIP LOCKED)"
			  " RETURNING environment_id, session_id, work_id, secret, polled_by, polled_ms, expires_ms",
			  "sis", session_id, now_ms, environment_id);
	if (error == 0 && PQntuples(res) == 0)
		error = base_error_set(BASE_ENOTFOUND, "no work item to hand over");
	if (error == 0) {
		out->environment_id = col_strdup(res, 0, 0);
		out->session_id = col_strdup(res, 0, 1);
		out->work_id = col_strdup(res, 0, 2);
		out->secret = col_strdup(res, 0, 3);
		out->polled_by = col_strdup(res, 0, 4);
		out->polled_ms = col_int(res, 0, 5);
		out->expires_ms = col_int(res, 0, 6);
		if (!out->environment_id || !out->session_id || !out->work_id || !out->secret)
			error = base_error_set(BASE_ENOMEM, "out of memory");
	}
	PQclear(res);
	return error;
}

static int pg_schema_version(store *st, int *applied_out, int *known_out)
{
	json_t *row = NULL;
	int error = query((pg_store *)st, &row, 1, "SELECT coalesce(max(version), 0) AS v FROM schema_migrations", "");
	if (error == 0) {
		*applied_out = (int)json_integer_value(json_object_get(row, "v"));
		*known_out = NMIGRATIONS;
	}
	json_decref(row);
	return error;
}

static int pg_ping(store *st)
{
	PGresult *res = NULL;
	int error = stmt((pg_store *)st, &res, NULL, "SELECT 1", "");
	PQclear(res);
	return error;
}

static void pg_free(store *st)
{
	pg_store *s = (pg_store *)st;
	if (s->committer_started) {
		pthread_mutex_lock(&s->q_lock);
		s->stopping = 1;
		pthread_cond_signal(&s->q_cond);
		pthread_mutex_unlock(&s->q_lock);
		pthread_join(s->committer, NULL);
	}
	pthread_mutex_destroy(&s->q_lock);
	pthread_cond_destroy(&s->q_cond);
	for (int i = 0; i < POOL_SIZE; i++)
		if (s->pool[i].pg)
			PQfinish(s->pool[i].pg);
	if (s->listener)
		PQfinish(s->listener);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->listen_lock);
	if (s->url) {
		explicit_bzero(s->url, strlen(s->url));
		free(s->url);
	}
	free(s);
}

static int pg_series_stamp(store *st, char *out, size_t cap, const char *repository, const char *branch)
{
	PGresult *res = NULL;
	int error = stmt((pg_store *)st, &res, NULL,
			 "SELECT count(*), coalesce(sum(CASE WHEN state='done' THEN 1 ELSE 0 END), 0), coalesce(max(id), 0),"
			 "  coalesce(max(updated_ms), 0), (SELECT coalesce(max(id), 0) FROM measurements)"
			 " FROM runs WHERE repository=$1 AND branch=$2 AND kind='bench' AND trigger='push'",
			 "ss", repository, branch);
	if (error == 0 && PQntuples(res) == 1)
		snprintf(out, cap, "%lld:%lld:%lld:%lld:%lld", (long long)col_int(res, 0, 0), (long long)col_int(res, 0, 1),
			 (long long)col_int(res, 0, 2), (long long)col_int(res, 0, 3), (long long)col_int(res, 0, 4));
	else if (error == 0)
		error = base_error_set(BASE_EGENERIC, "store: series stamp: no row");
	PQclear(res);
	return error;
}

static const store_backend pg_backend = {
	.name = "postgres",
	.free = pg_free,
	.ping = pg_ping,
	.delivery_put_async = pg_delivery_put_async,
	.delivery_exists = pg_delivery_exists,
	.delivery_body = pg_delivery_body,
	.delivery_set_status = pg_delivery_set_status,
	.delivery_list = pg_delivery_list,
	.job_add = pg_job_add,
	.job_claim = pg_job_claim,
	.job_heartbeat = pg_job_heartbeat,
	.job_done = pg_job_done,
	.job_fail = pg_job_fail,
	.job_cancel_key = pg_job_cancel_key,
	.job_release = pg_job_release,
	.job_list = pg_job_list,
	.job_counts = pg_job_counts,
	.queue_stats = pg_queue_stats,
	.wait_for_job = pg_wait_for_job,
	.schema_version = pg_schema_version,
	.installation_put = pg_installation_put,
	.installation_delete = pg_installation_delete,
	.installation_state = pg_installation_state,
	.repository_put = pg_repository_put,
	.repository_remove = pg_repository_remove,
	.repository_list = pg_repository_list,
	.hook_put = pg_hook_put,
	.run_create = pg_run_create,
	.run_set_state = pg_run_set_state,
	.run_set_state_from = pg_run_set_state_from,
	.run_update = pg_run_update,
	.run_get = pg_run_get,
	.run_list = pg_run_list,
	.measurement_put = pg_measurement_put,
	.measurement_find = pg_measurement_find,
	.measurement_get = pg_measurement_get,
	.measurement_list = pg_measurement_list,
	.proposal_put = pg_proposal_put,
	.proposal_get = pg_proposal_get,
	.pull_put = pg_pull_put,
	.pull_get = pg_pull_get,
	.pull_find_branch = pg_pull_find_branch,
	.approval_put = pg_approval_put,
	.audit = pg_audit,
	.run_token_put = pg_run_token_put,
	.run_token_find = pg_run_token_find,
	.run_token_delete = pg_run_token_delete,
	.session_put = pg_session_put,
	.session_get = pg_session_get,
	.session_delete = pg_session_delete,
	.series_get = pg_series_get,
	.series_stamp = pg_series_stamp,
	.handover_put = pg_handover_put,
	.handover_claim = pg_handover_claim,
};

int store_pg_open(store **out, const char *url)
{
	pg_store *s = calloc(1, sizeof(*s));
	if (!s)
		return base_error_set(BASE_ENOMEM, "out of memory");
	s->base.be = &pg_backend;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	pthread_mutex_init(&s->listen_lock, NULL);
	pthread_mutex_init(&s->q_lock, NULL);
	pthread_cond_init(&s->q_cond, NULL);
	s->url = strdup(url);
	if (!s->url) {
		pg_free(&s->base);
		return base_error_set(BASE_ENOMEM, "out of memory");
	}
	/* the first connection says whether the URL works at all */
	struct pconn *c = NULL;
	int error = conn_get(s, &c);
	if (error < 0) {
		char msg[300];
		snprintf(msg, sizeof(msg), "%s", s->down_msg);
		pg_free(&s->base);
		return base_error_set(BASE_ERETRY, "DATABASE_URL: cannot connect to PostgreSQL: %s", msg);
	}
	conn_put(s, c);
	if ((error = migrate(s)) < 0) {
		pg_free(&s->base);
		return error;
	}
	if (pthread_create(&s->committer, NULL, committer_main, s) != 0) {
		pg_free(&s->base);
		return base_error_set(BASE_EGENERIC, "store: cannot start the commit thread");
	}
	s->committer_started = 1;
	*out = &s->base;
	return 0;
}
