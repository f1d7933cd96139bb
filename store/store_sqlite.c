/* SQLite store backend.
 *
 * WAL mode, synchronous=FULL: a committed transaction is on disk.  Every
 * write goes through one write connection guarded by `wlock` (group
 * commit), and the committer thread commits whatever has gathered:
 *  - webhook deliveries (the hot path) go to the body log beside the
 *    database (body_log.h): the logger thread takes whatever has queued,
 *    answers duplicates (ids logged or stored), writes one record per new
 *    delivery (its row data and body) in one write, syncs it and answers:
 *    a delivery is durable once its record is.  The committer then adds
 *    the rows, jobs and the log position they reach in one transaction,
 *    and opening the store replays the records past that position, so a
 *    kill between the two loses nothing.  Reads of deliveries and jobs wait
 *    for the rows of what was answered before them.  A database opened in
 *    memory has no log: its deliveries are queued for the committer, which
 *    inserts the whole queue (bodies inline) and commits it;
 *  - other writes take `wlock`, run their statements inside the open
 *    transaction under a savepoint of their own (a failure undoes only its
 *    part), release the lock and wait for the next commit.
 * Either way a caller returns only once its data is on disk, one fsync
 * serves every write that arrived meanwhile, and writers in this process
 * never meet SQLITE_BUSY.  Reads borrow a
 * connection from a small pool (one thread per connection at a time); WAL
 * lets them run beside the writer and beside other processes (the CLI).
 * Schema changes are numbered migrations applied at open. */
#include "store/store_int.h"
#include "store/body_log.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/fs.h"
#include "base/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <search.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define POOL_SIZE 8
#define BUSY_TIMEOUT_MS 10000
#define WCACHE 96 /* statements kept prepared on the write connection */
#define CKPT_PAGES 4000   /* WAL pages after which the checkpointer copies them into the database */
#define CKPT_HARD 40000   /* ... and after which the committer does it itself (the WAL's bound) */

typedef struct sq_store {
	store base;
	char *path;
	sqlite3 *pool[POOL_SIZE];
	int pool_free[POOL_SIZE];
	pthread_mutex_t pool_lock;
	pthread_cond_t pool_cond;

	sqlite3 *writer;           /* used only with wlock held */
	pthread_mutex_t wlock;
	pthread_cond_t work_cond;  /* committer: a transaction has waiters */
	pthread_mutex_t q_lock;    /* guards the delivery queue and `wanted` */
	store_delivery_async *q_head, *q_tail; /* deliveries waiting for the committer */
	int wanted;                /* a wend() waits for a commit */
	pthread_mutex_t commit_lock; /* guards `committed` for waiters */
	pthread_cond_t commit_cond;/* callers: an epoch was committed */
	sqlite3_stmt *ins_delivery; /* cached on the write connection */
	char *bodies_dir;          /* NULL: a database in memory, bodies go into the rows */
	/* With a body log, a delivery goes to the logger thread first: it is
	 * durable, and answered, once its record (row data and body) is synced
	 * in the log; the committer then adds its row, its jobs and the log
	 * position they reach in one transaction.  Opening the store replays
	 * the records past that position (a crash between the two). */
	store_body_log *bodies;    /* the logger's (and the opener's) */
	pthread_t logger;
	int logger_started;
	pthread_mutex_t l_lock;
	pthread_cond_t l_cond;     /* logger: deliveries queued, or stop */
	pthread_cond_t l_room;     /* logger: the committer caught up */
	store_delivery_async *l_head, *l_tail; /* l_lock */
	int l_stop;                /* l_lock */
	void *pending;             /* l_lock: tsearch tree of ids logged, not yet in the database */
	size_t npending;           /* l_lock */
	int64_t log_seq;           /* l_lock: batches whose rows went to the committer */
	pthread_t syncer;          /* the fdatasync and the answers, beside the logger */
	int syncer_started;
	pthread_cond_t sync_cond;  /* l_lock: syncer: batches appended, or stop */
	struct lbatch *a_head, *a_tail; /* l_lock: appended, waiting for the syncer */
	int sync_stop;             /* l_lock */
	pthread_mutex_t a_lock;    /* an append and its queueing; a failed sync's cut */
	int64_t row_seq;           /* l_lock: ... and whose rows it committed */
	sqlite3 *l_db;             /* the logger's connection: duplicate checks */
	sqlite3_stmt *l_exists;
	struct logged *r_head, *r_tail; /* q_lock: logged deliveries for the committer */
	sqlite3_stmt *ins_job;
	sqlite3_stmt *ins_logged;
	struct {
		const char *sql;           /* the caller's text; compared, not trusted */
		sqlite3_stmt *st;
	} wcache[WCACHE];            /* used only with wlock held */
	int nwcache;
	pthread_t committer;
	int committer_started;
	int tx_open;
	int64_t epoch;             /* number of the open (or last) transaction */
	int64_t committed;         /* last epoch committed or failed */
	int64_t failed_epoch;      /* last epoch whose COMMIT failed */
	char failed_msg[256];
	int stopping;
	pthread_mutex_t job_lock;  /* store_wait_for_job: a job was queued */
	pthread_cond_t job_cond;
	int job_queued;

	/* checkpoints run beside commits, on a connection of their own */
	sqlite3 *ckpt_db;
	pthread_t checkpointer;
	int ckpt_started;
	pthread_mutex_t ck_lock;
	pthread_cond_t ck_cond;
	int ck_wanted, ck_stop;     /* guarded by ck_lock */
} sq_store;

/* Tells store_wait_for_job that jobs were queued (in this process: SQLite
 * has one serving process). */
static void job_signal(sq_store *s)
{
	pthread_mutex_lock(&s->job_lock);
	s->job_queued = 1;
	pthread_cond_broadcast(&s->job_cond);
	pthread_mutex_unlock(&s->job_lock);
}

static int sq_err(sqlite3 *db, const char *what)
{
	int rc = sqlite3_extended_errcode(db);
	int code = (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED ? BASE_ERETRY : BASE_EGENERIC;
	return base_error_set(code, "store: %s: %s", what, sqlite3_errmsg(db));
}

/* ---- connections ---------------------------------------------------------- */

static int open_conn(sqlite3 **out, const char *path)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		int error = base_error_set(BASE_EGENERIC, "store: cannot open %s: %s", path,
					  db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return error;
	}
	sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
	char *msg = NULL;
	rc = sqlite3_exec(db,
			  /* 500 KiB of page cache a connection (SQLite's default is 2 MiB):
			   * a dozen connections filling theirs under load held more memory
			   * than the rest of perfbot; the kernel's page cache is behind them */
			  "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA cache_size=-500;"
			  "PRAGMA wal_autocheckpoint=4000;",
			  NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		int error = base_error_set(BASE_EGENERIC, "store: cannot configure %s: %s", path, msg ? msg : "?");
		sqlite3_free(msg);
		sqlite3_close(db);
		return error;
	}
	*out = db;
	return 0;
}

static sqlite3 *conn_get(sq_store *s)
{
	pthread_mutex_lock(&s->pool_lock);
	for (;;) {
		for (int i = 0; i < POOL_SIZE; i++) {
			if (s->pool_free[i]) {
				s->pool_free[i] = 0;
				pthread_mutex_unlock(&s->pool_lock);
				return s->pool[i];
			}
		}
		pthread_cond_wait(&s->pool_cond, &s->pool_lock);
	}
}

static void conn_put(sq_store *s, sqlite3 *db)
{
	pthread_mutex_lock(&s->pool_lock);
	for (int i = 0; i < POOL_SIZE; i++)
		if (s->pool[i] == db)
			s->pool_free[i] = 1;
	pthread_cond_signal(&s->pool_cond);
	pthread_mutex_unlock(&s->pool_lock);
}

/* ---- statements on the write connection ------------------------------------ */

/* The write connection's prepared statement for sql (wlock held): prepared
 * once and kept, so the hot writes (deliveries, job claims, savepoints)
 * are not compiled again each time.  *owned is 1 when the cache is full and
 * the statement is the caller's to finalize (wput does either).  NULL with
 * the error set when sql does not prepare. */
static sqlite3_stmt *wget(sq_store *s, const char *sql, int *owned)
{
	*owned = 0;
	for (int i = 0; i < s->nwcache; i++)
		if (s->wcache[i].sql == sql && strcmp(sqlite3_sql(s->wcache[i].st), sql) == 0)
			return s->wcache[i].st;
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v3(s->writer, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
		return NULL;
	if (s->nwcache < WCACHE) {
		s->wcache[s->nwcache].sql = sql;
		s->wcache[s->nwcache].st = st;
		s->nwcache++;
	} else {
		*owned = 1;
	}
	return st;
}

static void wput(sqlite3_stmt *st, int owned)
{
	if (owned) {
		sqlite3_finalize(st);
	} else if (st) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
}

/* A statement without arguments or rows (BEGIN, SAVEPOINT, COMMIT ...) on
 * the write connection; SQLITE_OK or SQLite's error code. */
static int wexec(sq_store *s, const char *sql)
{
	int owned;
	sqlite3_stmt *st = wget(s, sql, &owned);
	if (!st)
		return sqlite3_errcode(s->writer);
	int rc = sqlite3_step(st);
	wput(st, owned);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* ---- group commit --------------------------------------------------------- */

/* Takes the write connection inside the open transaction (opening one if
 * needed) under a fresh savepoint.  Always pair with wend(). */
static sqlite3 *wbegin(sq_store *s)
{
	pthread_mutex_lock(&s->wlock);
	if (!s->tx_open) {
		if (wexec(s, "BEGIN IMMEDIATE") == SQLITE_OK) {
			s->tx_open = 1;
			s->epoch++;
		}
	}
	wexec(s, "SAVEPOINT w");
	return s->writer;
}

/* Ends a write begun with wbegin: undoes it when error < 0, then waits
 * (unless `wait` is 0) until its transaction is committed.  Returns error,
 * or the commit's.  Job bookkeeping does not wait: the next commit carries
 * it within milliseconds, and if the process dies first the job is simply
 * claimed and run again (jobs are at-least-once; their handlers are
 * idempotent).  Deliveries and everything a user is told about wait. */
static int wend_opt(sq_store *s, int error, int wait)
{
	char msg[256];
	if (error < 0) {
		snprintf(msg, sizeof(msg), "%s", base_error_last());
		wexec(s, "ROLLBACK TO w");
	}
	wexec(s, "RELEASE w");
	if (!s->tx_open) {
		pthread_mutex_unlock(&s->wlock);
		if (error < 0)
			return base_error_set(error, "%s", msg);
		return base_error_set(BASE_ERETRY, "store: cannot begin a write transaction: %s", sqlite3_errmsg(s->writer));
	}
	int64_t mine = s->epoch;
	pthread_mutex_unlock(&s->wlock);
	pthread_mutex_lock(&s->q_lock);
	s->wanted = 1;
	pthread_cond_signal(&s->work_cond);
	pthread_mutex_unlock(&s->q_lock);
	if (!wait)
		return error < 0 ? base_error_set(error, "%s", msg) : 0;
	/* waiting on a lock of its own keeps waiters off the write path */
	pthread_mutex_lock(&s->commit_lock);
	while (s->committed < mine)
		pthread_cond_wait(&s->commit_cond, &s->commit_lock);
	int failed = s->failed_epoch == mine;
	if (failed && error == 0)
		snprintf(msg, sizeof(msg), "%s", s->failed_msg);
	pthread_mutex_unlock(&s->commit_lock);
	if (error < 0)
		return base_error_set(error, "%s", msg);
	if (failed)
		return base_error_set(BASE_ERETRY, "%s", msg);
	return 0;
}

static int wend(sq_store *s, int error)
{
	return wend_opt(s, error, 1);
}

static int insert_delivery(sq_store *s, store_delivery_async *p);
static int insert_logged(sq_store *s, const store_delivery *d, int segment, int64_t body_offset, size_t body_len);
#define META_JOBS 8 /* jobs a logged delivery carries at most */

/* A logged delivery's row data decoded: d's strings point into the record's
 * meta it was decoded from. */
struct meta {
	store_delivery d;
	store_job_spec jobs[META_JOBS];
};
static int meta_decode(struct meta *out, const char *buf, size_t len);

/* A delivery durable in the body log, waiting for its row. */
struct logged {
	struct logged *next;
	char *meta;                /* owned: the record's row data (its id, the key in `pending`, at meta + 4) */
	size_t meta_len;
	int segment;
	int64_t body_offset;
	size_t body_len;
	int64_t end;               /* where the record ends: the log position its row reaches */
	int64_t seq;               /* its batch's log_seq */
	unsigned char head[STORE_BODY_LOG_HEAD];
};

static void logged_free(struct logged *r)
{
	if (!r)
		return;
	free(r->meta);
	free(r);
}

static int pending_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* After each commit on the write connection (SQLite's WAL hook, in place of
 * its automatic checkpoint, which would copy the WAL into the database
 * inside the commit and hold up every delivery waiting for the next one):
 * a WAL past CKPT_PAGES wakes the checkpointer; one past CKPT_HARD (the
 * checkpointer cannot finish while commits keep coming) is checkpointed
 * here, as SQLite would. */
static int on_wal(void *arg, sqlite3 *db, const char *name, int pages)
{
	sq_store *s = arg;
	if (pages >= CKPT_HARD) {
		sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	} else if (pages >= CKPT_PAGES) {
		pthread_mutex_lock(&s->ck_lock);
		s->ck_wanted = 1;
		pthread_cond_signal(&s->ck_cond);
		pthread_mutex_unlock(&s->ck_lock);
	}
	return SQLITE_OK;
}

/* The committer and the checkpointer run a little behind the threads that
 * answer requests: with the body log, no answer waits for them (a delivery
 * is durable in the log), and under a burst of webhooks the HTTP front and
 * the logger get the cores first; the logger's cap on deliveries waiting
 * for their rows keeps the committer from falling far behind.  Linux: nice
 * is per thread. */
#define BACKGROUND_NICE 5

static void background_thread(void)
{
	setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), BACKGROUND_NICE);
}

static void *checkpointer_main(void *arg)
{
	sq_store *s = arg;
	pthread_setname_np(pthread_self(), "pb-checkpoint");
	background_thread();
	for (;;) {
		pthread_mutex_lock(&s->ck_lock);
		while (!s->ck_wanted && !s->ck_stop)
			pthread_cond_wait(&s->ck_cond, &s->ck_lock);
		int stop = s->ck_stop;
		s->ck_wanted = 0;
		pthread_mutex_unlock(&s->ck_lock);
		if (stop)
			break;
		/* PASSIVE: copies what no reader needs, never waits for a lock */
		sqlite3_wal_checkpoint_v2(s->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	}
	return NULL;
}

static void *committer_main(void *arg)
{
	sq_store *s = arg;
	pthread_setname_np(pthread_self(), "pb-commit");
	if (s->bodies)
		background_thread(); /* else deliveries wait for it */
	for (;;) {
		pthread_mutex_lock(&s->q_lock);
		while (!s->q_head && !s->r_head && !s->wanted && !s->stopping)
			pthread_cond_wait(&s->work_cond, &s->q_lock);
		store_delivery_async *batch = s->q_head;
		s->q_head = s->q_tail = NULL;
		struct logged *rbatch = s->r_head, *rlast = s->r_tail;
		s->r_head = s->r_tail = NULL;
		int stopping = s->stopping && !batch && !rbatch && !s->wanted;
		s->wanted = 0;
		pthread_mutex_unlock(&s->q_lock);

		pthread_mutex_lock(&s->wlock);
		if (stopping && !s->tx_open) {
			pthread_mutex_unlock(&s->wlock);
			break;
		}
		if ((batch || rbatch) && !s->tx_open) {
			if (wexec(s, "BEGIN IMMEDIATE") == SQLITE_OK) {
				s->tx_open = 1;
				s->epoch++;
			}
		}
		for (store_delivery_async *p = batch; p; p = p->next) {
			if (!s->tx_open) {
				p->error = BASE_ERETRY;
				snprintf(p->msg, sizeof(p->msg), "store: cannot begin a write transaction: %s",
					 sqlite3_errmsg(s->writer));
				continue;
			}
			wexec(s, "SAVEPOINT d");
			if ((p->error = insert_delivery(s, p)) < 0) {
				snprintf(p->msg, sizeof(p->msg), "%s", base_error_last());
				wexec(s, "ROLLBACK TO d");
			}
			wexec(s, "RELEASE d");
		}
		/* deliveries already durable in the body log: their rows, and the
		 * log position they reach, all or nothing */
		int rows_failed = 0;
		for (struct logged *r = rbatch; r && s->tx_open && !rows_failed; r = r->next) {
			struct meta m;
			rows_failed = meta_decode(&m, r->meta, r->meta_len) < 0 ||
				      insert_logged(s, &m.d, r->segment, r->body_offset, r->body_len) < 0;
		}
		if (rbatch && s->tx_open && !rows_failed) {
			int owned;
			sqlite3_stmt *st = wget(s, "UPDATE body_log_position SET segment=?, offset=?", &owned);
			rows_failed = !st || sqlite3_bind_int(st, 1, rlast->segment) != SQLITE_OK ||
				      sqlite3_bind_int64(st, 2, rlast->end) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE;
			wput(st, owned);
		}
		int failed = 0;
		char msg[256] = "";
		if (rbatch && (rows_failed || !s->tx_open)) {
			/* answered already: the rows are tried again (and the log
			 * replays them at the next start if the process ends first) */
			snprintf(msg, sizeof(msg), "store: cannot add delivered rows: %s", sqlite3_errmsg(s->writer));
			if (s->tx_open)
				wexec(s, "ROLLBACK");
			s->tx_open = 0;
			failed = 1;
		}
		if (s->tx_open) {
			if (wexec(s, "COMMIT") != SQLITE_OK) {
				snprintf(msg, sizeof(msg), "store: commit failed: %s", sqlite3_errmsg(s->writer));
				wexec(s, "ROLLBACK");
				failed = 1;
			}
			s->tx_open = 0;
		}
		int64_t epoch = s->epoch;
		pthread_mutex_unlock(&s->wlock);

		pthread_mutex_lock(&s->commit_lock);
		if (failed) {
			s->failed_epoch = epoch;
			memcpy(s->failed_msg, msg, sizeof(msg));
		}
		s->committed = epoch;
		pthread_cond_broadcast(&s->commit_cond);
		pthread_mutex_unlock(&s->commit_lock);

		/* the outcome to each waiter; p may be freed by its done */
		int queued = 0;
		for (store_delivery_async *p = batch, *next; p; p = next) {
			next = p->next;
			if (failed && p->error == 0) {
				p->error = BASE_ERETRY;
				p->duplicate = 0;
				memcpy(p->msg, msg, sizeof(msg));
			}
			queued |= p->error == 0 && !p->duplicate && p->d->njobs > 0;
			p->done(p);
		}
		if (rbatch && failed && !s->stopping) {
			/* back to the front of the queue, after a pause */
			pthread_mutex_lock(&s->q_lock);
			rlast->next = s->r_head;
			s->r_head = rbatch;
			if (!s->r_tail)
				s->r_tail = rlast;
			pthread_mutex_unlock(&s->q_lock);
			struct timespec pause = { 0, 200 * 1000000 };
			nanosleep(&pause, NULL);
		} else if (rbatch) {
			/* added; or failed while closing: the log replays them at the
			 * next start.  Either way their ids (freed below) leave the
			 * pending set. */
			pthread_mutex_lock(&s->l_lock);
			for (struct logged *r = rbatch; r; r = r->next) {
				tdelete(r->meta + 4, &s->pending, pending_cmp);
				s->npending--;
				if (!failed && r->seq > s->row_seq)
					s->row_seq = r->seq;
			}
			pthread_cond_broadcast(&s->l_room);
			pthread_mutex_unlock(&s->l_lock);
			queued |= !failed;
			for (struct logged *r = rbatch, *next; r; r = next) {
				next = r->next;
				logged_free(r);
			}
		}
		if (queued)
			job_signal(s);
	}
	return NULL;
}

/* ---- statement helpers ---------------------------------------------------- */

/* Binds arguments described by `types`: 's' text (NULL ok), 'i' int64,
 * 'b' blob (pointer, size_t), 'n' int. */
static int bind_args(sqlite3_stmt *st, const char *types, va_list ap)
{
	int idx = 1;
	for (const char *t = types; *t; t++, idx++) {
		int rc;
		switch (*t) {
		case 's': {
			const char *v = va_arg(ap, const char *);
			rc = v ? sqlite3_bind_text(st, idx, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, idx);
			break;
		}
		case 'i':
			rc = sqlite3_bind_int64(st, idx, va_arg(ap, int64_t));
			break;
		case 'n':
			rc = sqlite3_bind_int(st, idx, va_arg(ap, int));
			break;
		case 'b': {
			const void *p = va_arg(ap, const void *);
			size_t n = va_arg(ap, size_t);
			rc = sqlite3_bind_blob64(st, idx, p ? p : "", n, SQLITE_STATIC);
			break;
		}
		default:
			return BASE_EINVALID;
		}
		if (rc != SQLITE_OK)
			return BASE_EGENERIC;
	}
	return 0;
}

static int prepare(sqlite3 *db, sqlite3_stmt **out, const char *sql, const char *types, ...)
{
	if (sqlite3_prepare_v2(db, sql, -1, out, NULL) != SQLITE_OK)
		return sq_err(db, "prepare");
	va_list ap;
	va_start(ap, types);
	int error = bind_args(*out, types, ap);
	va_end(ap);
	if (error < 0) {
		sqlite3_finalize(*out);
		*out = NULL;
		return sq_err(db, "bind");
	}
	return 0;
}

/* prepare() with the write connection's kept statement (wlock held);
 * release with wput(*out, *owned). */
static int wprepare(sq_store *s, sqlite3_stmt **out, int *owned, const char *sql, const char *types, ...)
{
	if (!(*out = wget(s, sql, owned)))
		return sq_err(s->writer, "prepare");
	va_list ap;
	va_start(ap, types);
	int error = bind_args(*out, types, ap);
	va_end(ap);
	if (error < 0) {
		error = sq_err(s->writer, "bind");
		wput(*out, *owned);
		*out = NULL;
		*owned = 0;
	}
	return error;
}

/* Runs a statement that returns no rows; *changes_out (may be NULL) gets the
 * number of rows changed. */
static int exec_v(sqlite3 *db, int *changes_out, const char *sql, const char *types, va_list ap)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return sq_err(db, "prepare");
	int error = bind_args(st, types, ap);
	if (error < 0) {
		sqlite3_finalize(st);
		return sq_err(db, "bind");
	}
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		error = sq_err(db, "write");
	else if (changes_out)
		*changes_out = sqlite3_changes(db);
	sqlite3_finalize(st);
	return error;
}

static int exec(sqlite3 *db, int *changes_out, const char *sql, const char *types, ...)
{
	va_list ap;
	va_start(ap, types);
	int error = exec_v(db, changes_out, sql, types, ap);
	va_end(ap);
	return error;
}

/* exec_v with the write connection's prepared statement (wlock held). */
static int wexec_v(sq_store *s, int *changes_out, const char *sql, const char *types, va_list ap)
{
	int owned;
	sqlite3_stmt *st = wget(s, sql, &owned);
	if (!st)
		return sq_err(s->writer, "prepare");
	int error = bind_args(st, types, ap);
	if (error < 0) {
		error = sq_err(s->writer, "bind");
	} else {
		int rc = sqlite3_step(st);
		if (rc != SQLITE_DONE && rc != SQLITE_ROW)
			error = sq_err(s->writer, "write");
		else if (changes_out)
			*changes_out = sqlite3_changes(s->writer);
	}
	wput(st, owned);
	return error;
}

static int wexec_v_args(sq_store *s, int *changes_out, const char *sql, const char *types, ...)
{
	va_list ap;
	va_start(ap, types);
	int error = wexec_v(s, changes_out, sql, types, ap);
	va_end(ap);
	return error;
}

/* One write statement through the group commit, not waiting for it. */
static int pexec_async(sq_store *s, int *changes_out, const char *sql, const char *types, ...)
{
	wbegin(s);
	va_list ap;
	va_start(ap, types);
	int error = wexec_v(s, changes_out, sql, types, ap);
	va_end(ap);
	return wend_opt(s, error, 0);
}

/* One durable write statement through the group commit. */
static int pexec(sq_store *s, int *changes_out, const char *sql, const char *types, ...)
{
	wbegin(s);
	va_list ap;
	va_start(ap, types);
	int error = wexec_v(s, changes_out, sql, types, ap);
	va_end(ap);
	return wend(s, error);
}

/* A row as a JSON object: column names as keys; columns named "data" or
 * ending in "_json" are parsed as JSON. */
static json_t *row_json(sqlite3_stmt *st)
{
	json_t *o = json_object();
	int n = sqlite3_column_count(st);
	for (int i = 0; i < n; i++) {
		const char *name = sqlite3_column_name(st, i);
		json_t *v;
		switch (sqlite3_column_type(st, i)) {
		case SQLITE_INTEGER:
			v = json_integer(sqlite3_column_int64(st, i));
			break;
		case SQLITE_FLOAT:
			v = json_real(sqlite3_column_double(st, i));
			break;
		case SQLITE_NULL:
			v = json_null();
			break;
		default: {
			const char *text = (const char *)sqlite3_column_text(st, i);
			size_t nl = strlen(name);
			if (!strcmp(name, "data") || (nl > 5 && !strcmp(name + nl - 5, "_json"))) {
				v = json_loads(text ? text : "null", JSON_DECODE_ANY, NULL);
				if (!v)
					v = json_null();
				if (nl > 5 && !strcmp(name + nl - 5, "_json")) {
					char key[64];
					snprintf(key, sizeof(key), "%.*s", (int)(nl - 5), name);
					json_object_set_new(o, key, v);
					continue;
				}
			} else {
				v = json_string(text ? text : "");
				if (!v) /* not UTF-8 */
					v = json_stringn_nocheck(text ? text : "", strlen(text ? text : ""));
			}
		}
		}
		json_object_set_new(o, name, v);
	}
	return o;
}

/* Runs a query; *out is an array of row objects (owned).  With `single`, *out
 * is the first row object, or BASE_ENOTFOUND. */
static int query(sq_store *s, json_t **out, int single, const char *sql, const char *types, ...)
{
	sqlite3 *db = conn_get(s);
	sqlite3_stmt *st = NULL;
	int error = 0;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		error = sq_err(db, "prepare");
		goto done;
	}
	va_list ap;
	va_start(ap, types);
	error = bind_args(st, types, ap);
	va_end(ap);
	if (error < 0) {
		error = sq_err(db, "bind");
		goto done;
	}
	json_t *arr = json_array();
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_array_append_new(arr, row_json(st));
		if (single)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		json_decref(arr);
		error = sq_err(db, "read");
		goto done;
	}
	if (single) {
		if (json_array_size(arr) == 0) {
			json_decref(arr);
			error = base_error_set(BASE_ENOTFOUND, "not found");
			goto done;
		}
		*out = json_incref(json_array_get(arr, 0));
		json_decref(arr);
	} else {
		*out = arr;
	}
done:
	sqlite3_finalize(st);
	conn_put(s, db);
	return error;
}

static char *json_text(const json_t *data)
{
	return data ? json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("{}");
}

/* ---- migrations ----------------------------------------------------------- */

static const char *migrations[] = {
	/* 1: deliveries, jobs, installations */
	"CREATE TABLE deliveries(id TEXT PRIMARY KEY, event TEXT NOT NULL, action TEXT, installation_id INTEGER,"
	" repository TEXT, headers TEXT, body BLOB, received_ms INTEGER NOT NULL, status TEXT NOT NULL);"
	"CREATE INDEX deliveries_received ON deliveries(received_ms);"
	"CREATE TABLE jobs(id INTEGER PRIMARY KEY, kind TEXT NOT NULL, payload TEXT NOT NULL, delivery_id TEXT,"
	" dedupe_key TEXT, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, completions INTEGER NOT NULL DEFAULT 0,"
	" run_at_ms INTEGER NOT NULL, lease_owner TEXT, lease_expires_ms INTEGER, error TEXT, note TEXT,"
	" created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);"
	"CREATE INDEX jobs_queued ON jobs(state, run_at_ms);"
	"CREATE INDEX jobs_lease ON jobs(state, lease_expires_ms);"
	"CREATE INDEX jobs_dedupe ON jobs(dedupe_key) WHERE dedupe_key IS NOT NULL;"
	"CREATE INDEX jobs_delivery ON jobs(delivery_id);"
	"CREATE TABLE installations(id INTEGER PRIMARY KEY, account TEXT, state TEXT NOT NULL, updated_ms INTEGER);"
	"CREATE TABLE repositories(installation_id INTEGER NOT NULL, id INTEGER NOT NULL, full_name TEXT NOT NULL,"
	" PRIMARY KEY(installation_id, id));"
	"CREATE TABLE hooks(hook_id INTEGER PRIMARY KEY, app_id INTEGER, delivery_id TEXT, updated_ms INTEGER);",
	/* 2: runs and their products */
	"CREATE TABLE runs(id INTEGER PRIMARY KEY, kind TEXT NOT NULL, repository TEXT, installation_id INTEGER,"
	" head_sha TEXT, base_sha TEXT, branch TEXT, trigger TEXT, state TEXT NOT NULL, reason TEXT, data TEXT,"
	" created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);"
	"CREATE INDEX runs_repo ON runs(repository, kind, state);"
	"CREATE TABLE measurements(id INTEGER PRIMARY KEY, run_id INTEGER, repository TEXT, commit_sha TEXT,"
	" benchmark TEXT, data TEXT, created_ms INTEGER NOT NULL);"
	"CREATE INDEX measurements_commit ON measurements(repository, commit_sha, benchmark);"
	"CREATE INDEX measurements_run ON measurements(run_id);"
	"CREATE TABLE proposals(run_id INTEGER PRIMARY KEY, data TEXT, created_ms INTEGER, updated_ms INTEGER);"
	"CREATE TABLE pulls(run_id INTEGER PRIMARY KEY, repository TEXT, number INTEGER, branch TEXT, state TEXT,"
	" data TEXT, updated_ms INTEGER);"
	"CREATE INDEX pulls_branch ON pulls(repository, branch);"
	"CREATE TABLE approvals(run_id INTEGER PRIMARY KEY, user TEXT, via TEXT, created_ms INTEGER);"
	"CREATE TABLE audit(id INTEGER PRIMARY KEY, at_ms INTEGER, actor TEXT, action TEXT, subject TEXT, detail TEXT);"
	"CREATE TABLE run_tokens(token_hash TEXT PRIMARY KEY, run_id INTEGER NOT NULL, created_ms INTEGER);",
	/* 3: the dashboard: sign-in sessions, and the measured values as
	 * columns so that a branch's history is read from indexes alone */
	"CREATE TABLE sessions(id_hash TEXT PRIMARY KEY, login TEXT NOT NULL, user_id INTEGER, avatar_url TEXT,"
	" token TEXT, csrf TEXT NOT NULL, created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL);"
	"CREATE INDEX sessions_expiry ON sessions(expires_ms);"
	"ALTER TABLE measurements ADD COLUMN ok INTEGER;"
	"ALTER TABLE measurements ADD COLUMN instructions INTEGER;"
	"ALTER TABLE measurements ADD COLUMN estimated_cycles INTEGER;"
	"UPDATE measurements SET ok = (json_extract(data, '$.status') = 'ok'),"
	" instructions = json_extract(data, '$.instructions'), estimated_cycles = json_extract(data, '$.estimated_cycles');"
	"CREATE INDEX measurements_series ON measurements(run_id, commit_sha, benchmark, ok, estimated_cycles, instructions);"
	"CREATE INDEX runs_branch ON runs(repository, branch, kind, trigger, state, id);",
	/* 4: Managed Agents work items handed to the replica serving their session */
	"CREATE TABLE managed_handover(work_id TEXT PRIMARY KEY, environment_id TEXT NOT NULL,"
	" session_id TEXT NOT NULL, secret TEXT NOT NULL, polled_by TEXT, polled_ms INTEGER NOT NULL,"
	" expires_ms INTEGER NOT NULL);"
	"CREATE INDEX managed_handover_session ON managed_handover(session_id, expires_ms);"
	"CREATE INDEX managed_handover_expiry ON managed_handover(expires_ms);",
	/* 5: a delivery's body in the body log: where it is (offset -1 or NULL:
	 * the body column holds it, as in every row before) */
	"ALTER TABLE deliveries ADD COLUMN body_segment INTEGER;"
	"ALTER TABLE deliveries ADD COLUMN body_offset INTEGER;"
	"ALTER TABLE deliveries ADD COLUMN body_length INTEGER;"
	"CREATE TABLE body_log_position(segment INTEGER NOT NULL, offset INTEGER NOT NULL);"
	"INSERT INTO body_log_position VALUES(1, 0);",
	/* 6: the jobs of given kinds, due first: what a pool of workers that
	 * runs only those kinds claims from (see sq_job_claim) */
	"CREATE INDEX jobs_kind ON jobs(state, kind, run_at_ms);",
};

static int migrate(sqlite3 *db)
{
	int error = 0;
	char *msg = NULL;
	if (sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS schema_migrations(version INTEGER PRIMARY KEY, applied_ms INTEGER)",
			 NULL, NULL, &msg) != SQLITE_OK)
		goto fail;
	for (size_t i = 0; i < sizeof(migrations) / sizeof(migrations[0]); i++) {
		int version = (int)i + 1;
		if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK)
			goto fail;
		sqlite3_stmt *st = NULL;
		int have = 0;
		if (sqlite3_prepare_v2(db, "SELECT 1 FROM schema_migrations WHERE version=?", -1, &st, NULL) == SQLITE_OK) {
			sqlite3_bind_int(st, 1, version);
			have = sqlite3_step(st) == SQLITE_ROW;
		}
		sqlite3_finalize(st);
		if (!have) {
			if (sqlite3_exec(db, migrations[i], NULL, NULL, &msg) != SQLITE_OK ||
			    exec(db, NULL, "INSERT INTO schema_migrations(version, applied_ms) VALUES(?, ?)", "ni", version,
				 base_wall_ms()) < 0) {
				sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
				if (!msg)
					msg = sqlite3_mprintf("%s", base_error_last());
				error = base_error_set(BASE_EGENERIC, "store: migration %d failed: %s", version, msg);
				sqlite3_free(msg);
				return error;
			}
		}
		if (sqlite3_exec(db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK)
			goto fail;
	}
	return 0;
fail:
	error = base_error_set(BASE_EGENERIC, "store: migrations: %s", msg ? msg : sqlite3_errmsg(db));
	sqlite3_free(msg);
	return error;
}

/* ---- deliveries (group commit) ------------------------------------------- */

/* Runs a cached statement (prepared once on the write connection). */
static int run_cached(sqlite3 *db, sqlite3_stmt **cache, int *changes_out, const char *sql, const char *types, ...)
{
	if (!*cache && sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, cache, NULL) != SQLITE_OK)
		return sq_err(db, "prepare");
	sqlite3_stmt *st = *cache;
	va_list ap;
	va_start(ap, types);
	int error = bind_args(st, types, ap);
	va_end(ap);
	if (error < 0)
		error = sq_err(db, "bind");
	else if (sqlite3_step(st) != SQLITE_DONE)
		error = sq_err(db, "write");
	else if (changes_out)
		*changes_out = sqlite3_changes(db);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return error;
}

/* The jobs of a delivery whose row was just inserted (wlock held). */
static int insert_jobs(sq_store *s, const store_delivery *d)
{
	int error = 0;
	for (size_t i = 0; error == 0 && i < d->njobs; i++)
		error = run_cached(s->writer, &s->ins_job, NULL,
				   "INSERT INTO jobs(kind, payload, delivery_id, state, run_at_ms, created_ms, updated_ms)"
				   " VALUES(?,?,?,'queued',?,?,?)",
				   "sssiii", d->jobs[i].kind, d->jobs[i].payload, d->id, d->received_ms, d->received_ms,
				   d->received_ms);
	return error;
}

/* Inserts one queued delivery, its body inline, and its jobs (committer
 * thread, wlock held): a database without a body log. */
static int insert_delivery(sq_store *s, store_delivery_async *p)
{
	const store_delivery *d = p->d;
	sqlite3 *db = s->writer;
	int changes = 0;
	int error = run_cached(db, &s->ins_delivery, &changes,
			       "INSERT OR IGNORE INTO deliveries(id, event, action, installation_id, repository, headers,"
			       " body, received_ms, status) VALUES(?,?,?,?,?,?,?,?,?)",
			       "sssissbis", d->id, d->event, d->action, d->installation_id, d->repository, d->headers_json,
			       d->body, d->body_len, d->received_ms, d->status);
	if (error == 0 && changes > 0)
		error = insert_jobs(s, d);
	p->duplicate = error == 0 && changes == 0;
	return error;
}

/* ---- the body log's stage ------------------------------------------------- */

#define PENDING_MAX 10000 /* deliveries logged and not yet in the database: the logger waits past it */
#define META_NULL 0xffffffffu

/* A record's meta: the delivery's row data, each string as a 4-byte
 * big-endian length then its bytes with their NUL (META_NULL for none),
 * the integers as 8 bytes, then the jobs. */
static int meta_u64(base_buf *m, uint64_t v)
{
	unsigned char b[8];
	store_be_put(b, v, 8);
	return base_buf_put(m, b, 8);
}

static int meta_str(base_buf *m, const char *str)
{
	size_t n = str ? strlen(str) + 1 : 0;
	unsigned char b[4];
	store_be_put(b, str ? (uint32_t)n : META_NULL, 4);
	int error = base_buf_put(m, b, 4);
	return error < 0 || !str ? error : base_buf_put(m, str, n);
}

/* Encodes d's row data (not its body) into m, at most
 * STORE_BODY_LOG_META_MAX bytes (m's cap): a longer record would never
 * replay. */
static int meta_encode(base_buf *m, const store_delivery *d)
{
	if (d->njobs > META_JOBS)
		return base_error_set(BASE_EINVALID, "store: a delivery carries at most %d jobs", META_JOBS);
	int error = meta_str(m, d->id);
	if (!error)
		error = meta_str(m, d->event);
	if (!error)
		error = meta_str(m, d->action);
	if (!error)
		error = meta_str(m, d->repository);
	if (!error)
		error = meta_str(m, d->headers_json);
	if (!error)
		error = meta_str(m, d->status);
	if (!error)
		error = meta_u64(m, (uint64_t)d->installation_id);
	if (!error)
		error = meta_u64(m, (uint64_t)d->received_ms);
	if (!error)
		error = meta_u64(m, (uint64_t)d->njobs);
	for (size_t i = 0; !error && i < d->njobs; i++) {
		error = meta_str(m, d->jobs[i].kind);
		if (!error)
			error = meta_str(m, d->jobs[i].payload);
	}
	if (error == BASE_ETOOBIG)
		return base_error_set(BASE_EINVALID, "store: a delivery's row data is over %zu bytes",
				      STORE_BODY_LOG_META_MAX);
	return error < 0 ? base_error_set(BASE_ENOMEM, "out of memory") : 0;
}

static int meta_take_str(const char **out, const char *buf, size_t len, size_t *at)
{
	if (*at + 4 > len)
		return -1;
	uint32_t n = (uint32_t)store_be_get((const unsigned char *)buf + *at, 4);
	*at += 4;
	if (n == META_NULL) {
		*out = NULL;
		return 0;
	}
	if (n == 0 || n > len - *at || buf[*at + n - 1] != '\0')
		return -1;
	*out = buf + *at;
	*at += n;
	return 0;
}

static int meta_take_u64(uint64_t *out, const char *buf, size_t len, size_t *at)
{
	if (*at + 8 > len)
		return -1;
	*out = store_be_get((const unsigned char *)buf + *at, 8);
	*at += 8;
	return 0;
}

static int meta_decode(struct meta *out, const char *buf, size_t len)
{
	memset(out, 0, sizeof(*out));
	size_t at = 0;
	uint64_t inst = 0, received = 0, njobs = 0;
	store_delivery *d = &out->d;
	if (meta_take_str(&d->id, buf, len, &at) < 0 || meta_take_str(&d->event, buf, len, &at) < 0 ||
	    meta_take_str(&d->action, buf, len, &at) < 0 || meta_take_str(&d->repository, buf, len, &at) < 0 ||
	    meta_take_str(&d->headers_json, buf, len, &at) < 0 || meta_take_str(&d->status, buf, len, &at) < 0 ||
	    meta_take_u64(&inst, buf, len, &at) < 0 || meta_take_u64(&received, buf, len, &at) < 0 ||
	    meta_take_u64(&njobs, buf, len, &at) < 0 || njobs > META_JOBS || !d->id || !d->event || !d->status)
		return base_error_set(BASE_EINVALID, "store: a body log record's row data is damaged");
	for (size_t i = 0; i < njobs; i++)
		if (meta_take_str(&out->jobs[i].kind, buf, len, &at) < 0 ||
		    meta_take_str(&out->jobs[i].payload, buf, len, &at) < 0 || !out->jobs[i].kind ||
		    !out->jobs[i].payload)
			return base_error_set(BASE_EINVALID, "store: a body log record's row data is damaged");
	d->installation_id = (int64_t)inst;
	d->received_ms = (int64_t)received;
	d->jobs = out->jobs;
	d->njobs = (size_t)njobs;
	return 0;
}

/* The row and jobs of a delivery whose record is in the body log
 * (committer thread, wlock held, or the opener alone). */
static int insert_logged(sq_store *s, const store_delivery *d, int segment, int64_t body_offset, size_t body_len)
{
	sqlite3 *db = s->writer;
	int changes = 0;
	int error = run_cached(db, &s->ins_logged, &changes,
			       "INSERT OR IGNORE INTO deliveries(id, event, action, installation_id, repository, headers,"
			       " body, received_ms, status, body_segment, body_offset, body_length)"
			       " VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
			       "sssissbisnii", d->id, d->event, d->action, d->installation_id, d->repository,
			       d->headers_json, NULL, (size_t)0, d->received_ms, d->status, segment, body_offset,
			       (int64_t)body_len);
	return error == 0 && changes > 0 ? insert_jobs(s, d) : error;
}

/* 1 when id is logged and its row not yet committed. */
static int is_pending(sq_store *s, const char *id)
{
	pthread_mutex_lock(&s->l_lock);
	int found = tfind(id, &s->pending, pending_cmp) != NULL;
	pthread_mutex_unlock(&s->l_lock);
	return found;
}

/* 1 when a row of id is in the database (the logger's connection), 0 when
 * not, negative on error. */
static int stored(sq_store *s, const char *id)
{
	sqlite3_stmt *st = s->l_exists;
	if (sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC) != SQLITE_OK)
		return sq_err(s->l_db, "bind");
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return sq_err(s->l_db, "read");
	return rc == SQLITE_ROW;
}

/* Reads of deliveries and jobs see every delivery answered before them:
 * waits (at most a few seconds) until the committer has added the rows of
 * everything logged so far. */
static void sync_rows(sq_store *s)
{
	if (!s->logger_started)
		return;
	pthread_mutex_lock(&s->l_lock);
	int64_t target = s->log_seq;
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	while (s->row_seq < target && !s->l_stop && pthread_cond_timedwait(&s->l_room, &s->l_lock, &until) == 0)
		;
	pthread_mutex_unlock(&s->l_lock);
}

enum fate { NEW, DUPLICATE, DUPLICATE_HERE, FAILED };

/* A batch between the logger's steps. */
struct lbatch {
	struct lbatch *next;  /* l_lock: in the queue of batches appended, not yet synced */
	store_delivery_async *list;
	size_t n;
	enum fate *fate;
	struct logged **rows;
	struct iovec *iov;
	int64_t *offsets;
	size_t niov;
	int segment;
	int written;      /* its records were appended */
	int error;
	char msg[256];
};

static void lbatch_free(struct lbatch *b)
{
	for (size_t i = 0; b->rows && i < b->n; i++)
		if (b->rows[i])
			logged_free(b->rows[i]);
	free(b->fate);
	free(b->rows);
	free(b->iov);
	free(b->offsets);
	free(b);
}

/* The logger's step: duplicates found, the new deliveries' records (laid
 * out by sq_delivery_put_async on the caller's thread) made pending (a
 * redelivery now finds them) and appended, and the batch queued for the
 * sync thread, which owns it from then on (NULL is returned); else the
 * batch, to be finished at once (nothing to sync, or its append failed);
 * NULL too when out of memory, every delivery answered. */
static struct lbatch *log_prepare(sq_store *s, store_delivery_async *list)
{
	struct lbatch *b = calloc(1, sizeof(*b));
	if (!b) {
		for (store_delivery_async *p = list, *q; p; p = q) {
			q = p->next;
			logged_free(p->backend);
			p->backend = NULL;
			p->error = BASE_ERETRY;
			snprintf(p->msg, sizeof(p->msg), "store: out of memory");
			p->done(p);
		}
		return NULL;
	}
	b->list = list;
	for (store_delivery_async *p = list; p; p = p->next)
		b->n++;
	size_t n = b->n;
	b->fate = calloc(n, sizeof(*b->fate));
	b->rows = calloc(n, sizeof(*b->rows));
	b->iov = calloc(3 * n, sizeof(*b->iov));
	b->offsets = calloc(3 * n, sizeof(*b->offsets));
	size_t i = 0;
	for (store_delivery_async *p = list; p; p = p->next, i++) {
		if (b->rows)
			b->rows[i] = p->backend;
		else
			logged_free(p->backend);
		p->backend = NULL;
	}
	if (!b->fate || !b->rows || !b->iov || !b->offsets) {
		b->error = base_error_set(BASE_ENOMEM, "out of memory");
		snprintf(b->msg, sizeof(b->msg), "store: out of memory");
		return b;
	}
	/* ids pending, then in the database: an id leaves the pending set only
	 * once its row is committed, so the database, read after this, has the
	 * row of any id that is in neither */
	i = 0;
	pthread_mutex_lock(&s->l_lock);
	for (store_delivery_async *p = list; p; p = p->next, i++)
		if (tfind(p->d->id, &s->pending, pending_cmp))
			b->fate[i] = DUPLICATE;
	pthread_mutex_unlock(&s->l_lock);
	/* one read transaction (one lock of the database file) for the batch */
	sqlite3_exec(s->l_db, "BEGIN", NULL, NULL, NULL);
	i = 0;
	for (store_delivery_async *p = list; p; p = p->next, i++) {
		if (b->fate[i] != NEW)
			continue;
		int have = stored(s, p->d->id);
		if (have != 0) {
			b->fate[i] = have > 0 ? DUPLICATE : FAILED;
			if (have < 0)
				snprintf(p->msg, sizeof(p->msg), "%s", base_error_last());
		}
	}
	sqlite3_exec(s->l_db, "COMMIT", NULL, NULL, NULL);
	/* then the same id twice in the batch: a copy after a new first one is
	 * its duplicate (a copy whose first could not be checked was checked
	 * on its own) */
	i = 0;
	for (store_delivery_async *p = list; p; p = p->next, i++) {
		if (b->fate[i] != NEW)
			continue;
		size_t j = 0;
		for (store_delivery_async *q = list; q != p && (b->fate[j] != NEW || strcmp(q->d->id, p->d->id) != 0);
		     q = q->next, j++)
			;
		if (j < i)
			b->fate[i] = DUPLICATE_HERE;
	}
	i = 0;
	for (store_delivery_async *p = list; p; p = p->next, i++) {
		struct logged *r = b->rows[i];
		if (b->fate[i] != NEW) {
			logged_free(r);
			b->rows[i] = NULL;
			continue;
		}
		b->iov[b->niov++] = (struct iovec){ r->head, STORE_BODY_LOG_HEAD };
		b->iov[b->niov++] = (struct iovec){ r->meta, r->meta_len };
		b->iov[b->niov++] = (struct iovec){ (void *)(p->d->body ? p->d->body : ""), r->body_len };
	}
	pthread_mutex_lock(&s->l_lock);
	for (i = 0; i < n; i++)
		if (b->rows[i]) {
			tsearch(b->rows[i]->meta + 4, &s->pending, pending_cmp); /* the id, first in the meta */
			s->npending++;
		}
	pthread_mutex_unlock(&s->l_lock);
	if (!b->niov)
		return b;
	/* appended and queued under a_lock: a failed sync takes every batch
	 * appended so far, and cuts the log, while no append runs */
	pthread_mutex_lock(&s->a_lock);
	if ((b->error = store_body_log_append(s->bodies, b->iov, b->niov, &b->segment, b->offsets)) == 0) {
		b->written = 1;
		pthread_mutex_lock(&s->l_lock);
		if (s->a_tail)
			s->a_tail->next = b;
		else
			s->a_head = b;
		s->a_tail = b;
		pthread_cond_signal(&s->sync_cond);
		pthread_mutex_unlock(&s->l_lock);
		b = NULL; /* the sync thread's, maybe freed already */
	} else {
		snprintf(b->msg, sizeof(b->msg), "%s", base_error_last());
	}
	pthread_mutex_unlock(&s->a_lock);
	return b;
}

/* Once the sync that covers the batch has its outcome (error): the
 * answers, and the rows to the committer in log order; or, failed, every
 * new delivery undone (not pending, its records cut: a_lock held). */
static void log_finish(sq_store *s, struct lbatch *b, int error, const char *msg, int fail_duplicates)
{
	if (error < 0 && !b->error) {
		b->error = error;
		snprintf(b->msg, sizeof(b->msg), "%s", msg);
	}
	if (b->error < 0 && b->rows) {
		if (b->written)
			store_body_log_rewind(s->bodies, b->segment, b->offsets[0]);
		pthread_mutex_lock(&s->l_lock);
		for (size_t i = 0; i < b->n; i++)
			if (b->rows[i] && tdelete(b->rows[i]->meta + 4, &s->pending, pending_cmp))
				s->npending--;
		pthread_cond_broadcast(&s->l_room);
		pthread_mutex_unlock(&s->l_lock);
	}
	struct logged *head = NULL, **tail = &head, *last = NULL;
	for (size_t i = 0, k = 0; !b->error && i < b->n; i++) {
		struct logged *r = b->rows[i];
		if (!r)
			continue;
		r->segment = b->segment;
		r->body_offset = b->offsets[k + 2];
		r->end = r->body_offset + (int64_t)r->body_len;
		k += 3;
		*tail = last = r;
		tail = &r->next;
		b->rows[i] = NULL;
	}
	if (head) {
		pthread_mutex_lock(&s->l_lock);
		int64_t seq = ++s->log_seq;
		pthread_mutex_unlock(&s->l_lock);
		for (struct logged *r = head; r; r = r->next)
			r->seq = seq;
		pthread_mutex_lock(&s->q_lock);
		if (s->r_tail)
			s->r_tail->next = head;
		else
			s->r_head = head;
		s->r_tail = last;
		pthread_cond_signal(&s->work_cond);
		pthread_mutex_unlock(&s->q_lock);
	}
	/* the answers; p may be freed by its done */
	size_t i = 0;
	for (store_delivery_async *p = b->list, *next; p; p = next, i++) {
		next = p->next;
		enum fate f = b->fate ? b->fate[i] : FAILED;
		p->duplicate = 0;
		if (f == FAILED || (b->error < 0 && (f != DUPLICATE || fail_duplicates))) {
			p->error = BASE_ERETRY;
			if (b->error < 0 && f != FAILED)
				snprintf(p->msg, sizeof(p->msg), "%s", b->msg);
		} else {
			p->error = 0;
			p->duplicate = f != NEW;
		}
		p->done(p);
	}
	lbatch_free(b);
}

/* The sync thread: one fdatasync for every batch appended since its last
 * one, then their answers, at once (no other thread to wake), while the
 * logger lays out and appends the next batches. */
static void *syncer_main(void *arg)
{
	sq_store *s = arg;
	pthread_setname_np(pthread_self(), "pb-sync");
	pthread_mutex_lock(&s->l_lock);
	for (;;) {
		while (!s->a_head && !s->sync_stop)
			pthread_cond_wait(&s->sync_cond, &s->l_lock);
		struct lbatch *list = s->a_head;
		s->a_head = s->a_tail = NULL;
		pthread_mutex_unlock(&s->l_lock);
		if (!list)
			break; /* stopping, and the logger (stopped first) appends no more */
		int error = store_body_log_sync(s->bodies);
		if (error < 0) {
			/* every batch appended so far fails, duplicates too (their
			 * first copy may be one that failed here), and the log is cut
			 * at the first one's start before the next append */
			char msg[256];
			snprintf(msg, sizeof(msg), "%s", base_error_last());
			pthread_mutex_lock(&s->a_lock);
			pthread_mutex_lock(&s->l_lock);
			struct lbatch *last = list;
			while (last->next)
				last = last->next;
			last->next = s->a_head;
			s->a_head = s->a_tail = NULL;
			pthread_mutex_unlock(&s->l_lock);
			for (struct lbatch *b = list, *next; b; b = next) {
				next = b->next;
				log_finish(s, b, error, msg, 1);
			}
			pthread_mutex_unlock(&s->a_lock);
		} else {
			for (struct lbatch *b = list, *next; b; b = next) {
				next = b->next;
				log_finish(s, b, 0, "", 0);
			}
		}
		pthread_mutex_lock(&s->l_lock);
	}
	return NULL;
}

static void *logger_main(void *arg)
{
	sq_store *s = arg;
	pthread_setname_np(pthread_self(), "pb-log");
	for (;;) {
		pthread_mutex_lock(&s->l_lock);
		while (!s->l_head && !s->l_stop)
			pthread_cond_wait(&s->l_cond, &s->l_lock);
		/* the committer is far behind: wait for it rather than hold more */
		while (s->npending >= PENDING_MAX && !s->l_stop)
			pthread_cond_wait(&s->l_room, &s->l_lock);
		store_delivery_async *list = s->l_head;
		s->l_head = s->l_tail = NULL;
		pthread_mutex_unlock(&s->l_lock);
		if (!list)
			break;
		struct lbatch *b = log_prepare(s, list);
		if (b) /* nothing to sync (duplicates only), or the append failed */
			log_finish(s, b, 0, "", 0);
	}
	return NULL;
}

/* At open, before any thread: the rows of the records the log holds past
 * the position the database reached, then the log's end cut to its last
 * whole record. */
static int replay_one(const store_body_log_record *r, void *arg)
{
	sq_store *s = arg;
	struct meta m;
	int error = meta_decode(&m, r->meta, r->meta_len);
	if (error < 0)
		return base_error_set(error, "store: body log segment %d at %lld: %s", r->segment, (long long)r->offset,
				      base_error_last());
	return insert_logged(s, &m.d, r->segment, r->body_offset, r->body_len);
}

static int replay_log(sq_store *s)
{
	int segment = 1;
	int64_t offset = 0;
	sqlite3_stmt *q = NULL;
	if (sqlite3_prepare_v2(s->writer, "SELECT segment, offset FROM body_log_position", -1, &q, NULL) != SQLITE_OK)
		return sq_err(s->writer, "read the body log position");
	if (sqlite3_step(q) == SQLITE_ROW) {
		segment = sqlite3_column_int(q, 0);
		offset = sqlite3_column_int64(q, 1);
	}
	sqlite3_finalize(q);
	if (exec(s->writer, NULL, "BEGIN IMMEDIATE", "") < 0)
		return base_error_set(BASE_EGENERIC, "store: %s", base_error_last());
	int end_segment = segment;
	int64_t end = offset;
	int error = store_body_log_replay(s->bodies_dir, segment, offset, replay_one, s, &end_segment, &end);
	if (error == 0 && (end_segment != segment || end != offset))
		error = exec(s->writer, NULL, "UPDATE body_log_position SET segment=?, offset=?", "ni", end_segment, end);
	if (error == 0)
		error = exec(s->writer, NULL, "COMMIT", "");
	if (error < 0) {
		char msg[300];
		snprintf(msg, sizeof(msg), "%s", base_error_last());
		sqlite3_exec(s->writer, "ROLLBACK", NULL, NULL, NULL);
		return base_error_set(BASE_EGENERIC, "store: replaying the body log: %s", msg);
	}
	return store_body_log_seek(s->bodies, end_segment, end);
}

/* Appends a to the queue (head, tail) guarded by lock, and wakes the
 * thread waiting on cond; BASE_ERETRY when the store is closing. */
static int enqueue(store_delivery_async *a, pthread_mutex_t *lock, pthread_cond_t *cond, const int *closing,
		   store_delivery_async **head, store_delivery_async **tail)
{
	pthread_mutex_lock(lock);
	if (*closing) {
		pthread_mutex_unlock(lock);
		return base_error_set(BASE_ERETRY, "store: closing");
	}
	a->next = NULL;
	if (*tail)
		(*tail)->next = a;
	else
		*head = a;
	*tail = a;
	pthread_cond_signal(cond);
	pthread_mutex_unlock(lock);
	return 0;
}

/* The record of a delivery for the body log, laid out on the caller's
 * thread (its digest too): the logger, which runs one batch at a time, is
 * left the duplicate checks and the write. */
static struct logged *logged_new(const store_delivery *d)
{
	struct logged *r = calloc(1, sizeof(*r));
	base_buf m = BASE_BUF_INIT(STORE_BODY_LOG_META_MAX);
	if (!r || meta_encode(&m, d) < 0) {
		if (!r)
			base_error_set(BASE_ENOMEM, "out of memory");
		base_buf_dispose(&m);
		free(r);
		return NULL;
	}
	r->meta_len = m.len;
	r->meta = base_buf_detach(&m);
	r->body_len = d->body ? d->body_len : 0;
	store_body_log_head(r->head, r->meta, r->meta_len, d->body, r->body_len);
	return r;
}

static int sq_delivery_put_async(store *st, store_delivery_async *a)
{
	sq_store *s = (sq_store *)st;
	/* with a body log, to the logger; else to the committer */
	if (!s->logger_started)
		return enqueue(a, &s->q_lock, &s->work_cond, &s->stopping, &s->q_head, &s->q_tail);
	if (!(a->backend = logged_new(a->d)))
		return BASE_ERETRY;
	int error = enqueue(a, &s->l_lock, &s->l_cond, &s->l_stop, &s->l_head, &s->l_tail);
	if (error < 0) {
		logged_free(a->backend);
		a->backend = NULL;
	}
	return error;
}

static int sq_delivery_exists(store *st, const char *id)
{
	sq_store *s = (sq_store *)st;
	if (s->logger_started && is_pending(s, id))
		return 1;
	json_t *row = NULL;
	int error = query((sq_store *)st, &row, 1, "SELECT 1 AS x FROM deliveries WHERE id=?", "s", id);
	json_decref(row);
	if (error == BASE_ENOTFOUND)
		return 0;
	return error < 0 ? error : 1;
}

static int sq_delivery_body(store *st, const char *id, char **body_out, size_t *len_out)
{
	sync_rows((sq_store *)st);
	sq_store *s = (sq_store *)st;
	sqlite3 *db = conn_get(s);
	sqlite3_stmt *q = NULL;
	char *b = NULL;
	size_t n = 0;
	int error = prepare(db, &q, "SELECT body, body_segment, body_offset, body_length FROM deliveries WHERE id=?", "s",
			    id);
	if (error < 0)
		goto done;
	int rc = sqlite3_step(q);
	if (rc == SQLITE_DONE) {
		error = base_error_set(BASE_ENOTFOUND, "delivery %s is not stored", id);
		goto done;
	}
	if (rc != SQLITE_ROW) {
		error = sq_err(db, "read delivery");
		goto done;
	}
	if (sqlite3_column_type(q, 1) != SQLITE_NULL && sqlite3_column_int64(q, 2) >= 0) {
		if (!s->bodies_dir) {
			error = base_error_set(BASE_EGENERIC, "delivery %s: its body is in a body log this store has none of", id);
			goto done;
		}
		n = (size_t)sqlite3_column_int64(q, 3);
		if ((error = store_body_log_read(s->bodies_dir, sqlite3_column_int(q, 1), sqlite3_column_int64(q, 2), n,
						 &b)) < 0)
			goto done;
	} else {
		n = (size_t)sqlite3_column_bytes(q, 0);
		if (!(b = malloc(n + 1))) {
			error = base_error_set(BASE_ENOMEM, "out of memory");
			goto done;
		}
		if (n)
			memcpy(b, sqlite3_column_blob(q, 0), n);
		b[n] = '\0';
	}
	*body_out = b;
	if (len_out)
		*len_out = n;
done:
	sqlite3_finalize(q);
	conn_put(s, db);
	return error;
}

static int sq_delivery_set_status(store *st, const char *id, const char *status)
{
	sync_rows((sq_store *)st);
	return pexec_async((sq_store *)st, NULL, "UPDATE deliveries SET status=? WHERE id=?", "ss", status, id);
}

static int sq_delivery_list(store *st, json_t **out, int limit, const char *event)
{
	sync_rows((sq_store *)st);
	return query((sq_store *)st, out, 0,
		     /* a delivery's status follows its jobs: queued while one waits
		      * or runs, failed when one failed for good, else done */
		     "SELECT id, event, action, installation_id, repository,"
		     " strftime('%Y-%m-%dT%H:%M:%fZ', received_ms / 1000.0, 'unixepoch') AS received,"
		     " CASE WHEN status <> 'queued' THEN status ELSE coalesce((SELECT CASE"
		     "  WHEN sum(state IN ('queued','running')) > 0 THEN 'queued'"
		     "  WHEN sum(state = 'failed') > 0 THEN 'failed' ELSE 'done' END"
		     "  FROM jobs WHERE jobs.delivery_id = deliveries.id), status) END AS status"
		     " FROM deliveries WHERE (?1 IS NULL OR event=?1) ORDER BY received_ms DESC, rowid DESC LIMIT ?2",
		     "sn", event, limit > 0 ? limit : -1);
}

/* ---- jobs ----------------------------------------------------------------- */

/* Inside a write: the queued or running job with dedupe_key, else a new one. */
static int insert_job(sqlite3 *db, int64_t *id_out, const char *kind, const char *payload, const char *dedupe_key,
		      int64_t run_at_ms)
{
	int64_t now = base_wall_ms();
	int error = 0;
	*id_out = 0;
	if (dedupe_key) {
		sqlite3_stmt *q = NULL;
		if ((error = prepare(db, &q, "SELECT id FROM jobs WHERE dedupe_key=? AND state IN ('queued','running')", "s",
				     dedupe_key)) < 0)
			return error;
		if (sqlite3_step(q) == SQLITE_ROW)
			*id_out = sqlite3_column_int64(q, 0);
		sqlite3_finalize(q);
		if (*id_out)
			return 0;
	}
	error = exec(db, NULL,
		     "INSERT INTO jobs(kind, payload, dedupe_key, state, run_at_ms, created_ms, updated_ms)"
		     " VALUES(?,?,?,'queued',?,?,?)",
		     "sssiii", kind, payload, dedupe_key, run_at_ms ? run_at_ms : now, now, now);
	if (error == 0)
		*id_out = sqlite3_last_insert_rowid(db);
	return error;
}

static int sq_job_add(store *st, int64_t *id_out, const char *kind, const char *payload, const char *dedupe_key,
		      int64_t run_at_ms)
{
	sq_store *s = (sq_store *)st;
	int64_t id = 0;
	sqlite3 *db = wbegin(s);
	int error = insert_job(db, &id, kind, payload, dedupe_key, run_at_ms);
	error = wend(s, error);
	if (error == 0 && id_out)
		*id_out = id;
	if (error == 0)
		job_signal(s);
	return error;
}

static char *col_strdup(sqlite3_stmt *q, int i)
{
	const unsigned char *t = sqlite3_column_text(q, i);
	return t ? strdup((const char *)t) : NULL;
}

static int sq_job_claim(store *st, store_job *out, const char *owner, int64_t lease_ms, const store_job_filter *filter)
{
	/* a job of a delivery answered before this call can be claimed */
	sync_rows((sq_store *)st);
	sq_store *s = (sq_store *)st;
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
	sqlite3 *db = wbegin(s);
	int64_t now = base_wall_ms();
	sqlite3_stmt *q = NULL;
	int owned = 0;
	/* two walks of an index in due order: a lease that expired (its
	 * worker died) first, else the oldest due job.  A filter names the
	 * kinds of the other pool of workers: the pool that runs only those
	 * seeks each kind in jobs_kind, so a backlog of other jobs (a burst
	 * of webhooks) costs its claims nothing; the pool that runs the rest
	 * walks the due order past the few jobs of those kinds. */
#define CLAIM(kind_filter, queued_index)                                                                    \
	"UPDATE jobs SET state='running', lease_owner=?1, lease_expires_ms=?2 + ?3,"                          \
	" attempts=attempts+1, updated_ms=?2"                                                                 \
	" WHERE id=coalesce("                                                                                 \
	"(SELECT id FROM jobs WHERE state='running' AND lease_expires_ms<?2" kind_filter                       \
	" ORDER BY lease_expires_ms LIMIT 1),"                                                                \
	"(SELECT id FROM jobs" queued_index " WHERE state='queued' AND run_at_ms<=?2" kind_filter              \
	" ORDER BY run_at_ms, id LIMIT 1))"                                                                   \
	" RETURNING id, kind, payload, delivery_id, attempts"
	const char *sql = !filter	   ? CLAIM("", "")
			  : filter->exclude ? CLAIM(" AND kind NOT IN (SELECT value FROM json_each(?4))", "")
					    : CLAIM(" AND kind IN (SELECT value FROM json_each(?4))", " INDEXED BY jobs_kind");
#undef CLAIM
	int error = filter ? wprepare(s, &q, &owned, sql, "siis", owner, now, lease_ms, kinds)
			   : wprepare(s, &q, &owned, sql, "sii", owner, now, lease_ms);
	free(kinds);
	if (error < 0)
		goto done;
	int rc = sqlite3_step(q);
	if (rc == SQLITE_DONE) {
		wput(q, owned);
		wend_opt(s, 0, 0);
		return BASE_ENOTFOUND;
	}
	if (rc != SQLITE_ROW) {
		error = sq_err(db, "claim job");
		goto done;
	}
	out->id = sqlite3_column_int64(q, 0);
	out->kind = col_strdup(q, 1);
	out->payload = col_strdup(q, 2);
	out->delivery_id = col_strdup(q, 3);
	out->attempts = sqlite3_column_int(q, 4);
	while (sqlite3_step(q) == SQLITE_ROW)
		;
done:
	wput(q, owned);
	error = wend_opt(s, error, 0);
	if (error < 0 && out->kind) {
		store_job_dispose(out);
	}
	return error;
}

static int owned_update(sq_store *s, const char *sql, const char *what, int64_t id, const char *owner, ...)
{
	(void)what;
	int changes = 0;
	va_list ap;
	va_start(ap, owner);
	const char *a = va_arg(ap, const char *);
	int64_t b = va_arg(ap, int64_t);
	va_end(ap);
	int error = pexec_async(s, &changes, sql, "siis", a, b, id, owner);
	if (error == 0 && changes == 0)
		error = base_error_set(BASE_ENOTFOUND, "job %lld is not held by %s", (long long)id, owner);
	return error;
}

static int sq_job_heartbeat(store *st, int64_t id, const char *owner, int64_t lease_ms)
{
	return owned_update((sq_store *)st,
			    "UPDATE jobs SET note=coalesce(?1, note), lease_expires_ms=?2 WHERE id=?3 AND lease_owner=?4"
			    " AND state='running'",
			    "heartbeat", id, owner, (const char *)NULL, base_wall_ms() + lease_ms);
}

static int sq_job_done(store *st, int64_t id, const char *owner, const char *note)
{
	return owned_update((sq_store *)st,
			    "UPDATE jobs SET state='done', note=?1, updated_ms=?2, lease_owner=NULL, lease_expires_ms=NULL,"
			    " completions=completions+1 WHERE id=?3 AND lease_owner=?4 AND state='running'",
			    "done", id, owner, note, base_wall_ms());
}

static int sq_job_fail(store *st, int64_t id, const char *owner, const char *err, int64_t retry_at_ms)
{
	sq_store *s = (sq_store *)st;
	int changes = 0;
	int error = pexec_async(s, &changes,
			  "UPDATE jobs SET state=CASE WHEN ?1 > 0 THEN 'queued' ELSE 'failed' END,"
			  " run_at_ms=CASE WHEN ?1 > 0 THEN ?1 ELSE run_at_ms END, error=?2, updated_ms=?3,"
			  " lease_owner=NULL, lease_expires_ms=NULL WHERE id=?4 AND lease_owner=?5 AND state='running'",
			  "isiis", retry_at_ms, err, base_wall_ms(), id, owner);
	if (error == 0 && changes == 0)
		error = base_error_set(BASE_ENOTFOUND, "job %lld is not held by %s", (long long)id, owner);
	return error;
}

static int sq_job_cancel_key(store *st, const char *dedupe_key, int *count_out)
{
	int changes = 0;
	int error = pexec((sq_store *)st, &changes,
			  "UPDATE jobs SET state='cancelled', updated_ms=? WHERE dedupe_key=? AND state='queued'", "is",
			  base_wall_ms(), dedupe_key);
	if (count_out)
		*count_out = changes;
	return error;
}

static int sq_job_release(store *st, const char *owner)
{
	int error = pexec((sq_store *)st, NULL,
			  "UPDATE jobs SET state='queued', lease_owner=NULL, lease_expires_ms=NULL, updated_ms=?1"
			  " WHERE state='running' AND (?2 IS NULL OR lease_owner=?2)",
			  "is", base_wall_ms(), owner);
	if (error == 0)
		job_signal((sq_store *)st);
	return error;
}

/* 1 once a job was queued since the last call returned 1, 0 after
 * timeout_ms without one. */
static int sq_wait_for_job(store *st, int timeout_ms)
{
	sq_store *s = (sq_store *)st;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&s->job_lock);
	while (!s->job_queued && pthread_cond_timedwait(&s->job_cond, &s->job_lock, &ts) == 0)
		;
	int woke = s->job_queued;
	s->job_queued = 0;
	pthread_mutex_unlock(&s->job_lock);
	return woke;
}

static int sq_job_list(store *st, json_t **out, int limit)
{
	sync_rows((sq_store *)st);
	return query((sq_store *)st, out, 0,
		     "SELECT id, kind, state, attempts, completions, delivery_id, dedupe_key, lease_owner, error, note,"
		     " strftime('%Y-%m-%dT%H:%M:%fZ', created_ms / 1000.0, 'unixepoch') AS created,"
		     " strftime('%Y-%m-%dT%H:%M:%fZ', updated_ms / 1000.0, 'unixepoch') AS updated"
		     " FROM jobs ORDER BY id DESC LIMIT ?",
		     "n", limit > 0 ? limit : -1);
}

static int sq_job_counts(store *st, json_t **out)
{
	sync_rows((sq_store *)st);
	json_t *rows = NULL;
	int error = query((sq_store *)st, &rows, 0, "SELECT state, count(*) AS n FROM jobs GROUP BY state", "");
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

static int sq_queue_stats(store *st, store_queue_stats *out, int64_t now_ms, int64_t since_ms)
{
	sync_rows((sq_store *)st);
	json_t *row = NULL;
	int error = query((sq_store *)st, &row, 1,
			  "SELECT (SELECT count(*) FROM jobs WHERE state='queued') AS queued,"
			  " (SELECT coalesce(min(run_at_ms), 0) FROM jobs WHERE state='queued' AND run_at_ms <= ?1) AS oldest,"
			  " (SELECT count(*) FROM jobs WHERE state='failed' AND updated_ms >= ?2) AS failed",
			  "ii", now_ms, since_ms);
	if (error == 0) {
		out->queued = (int64_t)json_integer_value(json_object_get(row, "queued"));
		out->oldest_due_ms = (int64_t)json_integer_value(json_object_get(row, "oldest"));
		out->failed_since = (int64_t)json_integer_value(json_object_get(row, "failed"));
	}
	json_decref(row);
	return error;
}

/* ---- installations -------------------------------------------------------- */

static int sq_installation_put(store *st, int64_t id, const char *account, const char *state)
{
	return pexec((sq_store *)st, NULL,
		     "INSERT INTO installations(id, account, state, updated_ms) VALUES(?1,?2,?3,?4)"
		     " ON CONFLICT(id) DO UPDATE SET account=coalesce(?2, account), state=?3, updated_ms=?4",
		     "issi", id, account, state, base_wall_ms());
}

static int sq_installation_delete(store *st, int64_t id)
{
	sq_store *s = (sq_store *)st;
	int error = pexec(s, NULL, "DELETE FROM repositories WHERE installation_id=?", "i", id);
	if (error == 0)
		error = pexec(s, NULL,
			      "INSERT INTO installations(id, state, updated_ms) VALUES(?1,'deleted',?2)"
			      " ON CONFLICT(id) DO UPDATE SET state='deleted', updated_ms=?2",
			      "ii", id, base_wall_ms());
	return error;
}

static int sq_installation_state(store *st, int64_t id, char **state_out)
{
	json_t *row = NULL;
	int error = query((sq_store *)st, &row, 1, "SELECT state FROM installations WHERE id=?", "i", id);
	if (error < 0)
		return error;
	*state_out = strdup(json_string_value(json_object_get(row, "state")));
	json_decref(row);
	return *state_out ? 0 : base_error_set(BASE_ENOMEM, "out of memory");
}

static int sq_repository_put(store *st, int64_t installation_id, int64_t repo_id, const char *full_name)
{
	return pexec((sq_store *)st, NULL,
		     "INSERT INTO repositories(installation_id, id, full_name) VALUES(?1,?2,?3)"
		     " ON CONFLICT(installation_id, id) DO UPDATE SET full_name=?3",
		     "iis", installation_id, repo_id, full_name);
}

static int sq_repository_remove(store *st, int64_t installation_id, int64_t repo_id)
{
	return pexec((sq_store *)st, NULL, "DELETE FROM repositories WHERE installation_id=? AND id=?", "ii",
		     installation_id, repo_id);
}

static int sq_repository_list(store *st, int64_t installation_id, json_t **out)
{
	return query((sq_store *)st, out, 0,
		     "SELECT id, full_name FROM repositories WHERE installation_id=? ORDER BY full_name", "i",
		     installation_id);
}

static int sq_hook_put(store *st, int64_t hook_id, int64_t app_id, const char *delivery_id)
{
	return pexec((sq_store *)st, NULL,
		     "INSERT INTO hooks(hook_id, app_id, delivery_id, updated_ms) VALUES(?1,?2,?3,?4)"
		     " ON CONFLICT(hook_id) DO UPDATE SET app_id=?2, delivery_id=?3, updated_ms=?4",
		     "iisi", hook_id, app_id, delivery_id, base_wall_ms());
}

/* ---- runs and products ---------------------------------------------------- */

static int sq_run_create(store *st, int64_t *id_out, const store_run_spec *r)
{
	sq_store *s = (sq_store *)st;
	char *data = json_text(r->data);
	if (!data)
		return base_error_set(BASE_ENOMEM, "out of memory");
	sqlite3 *db = wbegin(s);
	int64_t now = base_wall_ms();
	int64_t id = 0;
	int error = exec(db, NULL,
			 "INSERT INTO runs(kind, repository, installation_id, head_sha, base_sha, branch, trigger, state, data,"
			 " created_ms, updated_ms) VALUES(?,?,?,?,?,?,?,'queued',?,?,?)",
			 "ssisssssii", store_run_kind_name(r->kind), r->repository, r->installation_id, r->head_sha, r->base_sha, r->branch,
			 r->trigger, data, now, now);
	if (error == 0)
		id = sqlite3_last_insert_rowid(db);
	error = wend(s, error);
	if (error == 0 && id_out)
		*id_out = id;
	free(data);
	return error;
}

static int sq_run_set_state(store *st, int64_t id, const char *state, const char *reason)
{
	int changes = 0;
	int error = pexec((sq_store *)st, &changes, "UPDATE runs SET state=?, reason=?, updated_ms=? WHERE id=?", "ssii",
			  state, reason, base_wall_ms(), id);
	if (error == 0 && changes == 0)
		error = base_error_set(BASE_ENOTFOUND, "run %lld not found", (long long)id);
	return error;
}

static int sq_run_set_state_from(store *st, int64_t id, const char *from, const char *state, const char *reason)
{
	int changes = 0;
	int error = pexec((sq_store *)st, &changes,
			  "UPDATE runs SET state=?, reason=?, updated_ms=? WHERE id=? AND instr(',' || ? || ',', ',' || state || ',') > 0",
			  "ssiis", state, reason, base_wall_ms(), id, from);
	if (error < 0)
		return error;
	if (changes == 0) {
		json_t *row = NULL;
		if ((error = query((sq_store *)st, &row, 1, "SELECT state FROM runs WHERE id=?", "i", id)) < 0)
			return error == BASE_ENOTFOUND ? base_error_set(BASE_ENOTFOUND, "run %lld not found", (long long)id)
						      : error;
		const char *now = json_string_value(json_object_get(row, "state"));
		error = base_error_set(BASE_EEXISTS, "run %lld is %s", (long long)id, now ? now : "?");
		json_decref(row);
	}
	return error;
}

/* Inside a write: merges data into run id's document. */
static int patch_run(sqlite3 *db, int64_t id, const json_t *data)
{
	char *text = json_text(data);
	if (!text)
		return base_error_set(BASE_ENOMEM, "out of memory");
	int changes = 0;
	int error = exec(db, &changes, "UPDATE runs SET data=json_patch(coalesce(data,'{}'), ?), updated_ms=? WHERE id=?",
			 "sii", text, base_wall_ms(), id);
	free(text);
	if (error == 0 && changes == 0)
		error = base_error_set(BASE_ENOTFOUND, "run %lld not found", (long long)id);
	return error;
}

/* Inside a write: one line of the audit log. */
static int insert_audit(sqlite3 *db, const char *actor, const char *action, const char *subject, const char *detail)
{
	return exec(db, NULL, "INSERT INTO audit(at_ms, actor, action, subject, detail) VALUES(?,?,?,?,?)", "issss",
		    base_wall_ms(), actor, action, subject, detail);
}

static int sq_run_update(store *st, int64_t id, const json_t *data)
{
	sq_store *s = (sq_store *)st;
	sqlite3 *db = wbegin(s);
	return wend(s, patch_run(db, id, data));
}

#define RUN_COLUMNS                                                                                                   \
	"SELECT id, kind, repository, installation_id, head_sha, base_sha, branch, trigger, state, reason,"            \
	" strftime('%Y-%m-%dT%H:%M:%fZ', created_ms / 1000.0, 'unixepoch') AS created,"                               \
	" strftime('%Y-%m-%dT%H:%M:%fZ', updated_ms / 1000.0, 'unixepoch') AS updated, data FROM runs"

static int sq_run_get(store *st, int64_t id, json_t **out)
{
	int error = query((sq_store *)st, out, 1, RUN_COLUMNS " WHERE id=?", "i", id);
	if (error == BASE_ENOTFOUND)
		base_error_set(BASE_ENOTFOUND, "run %lld not found", (long long)id);
	return error;
}

static int sq_run_list(store *st, const json_t *filter, int limit, json_t **out)
{
	const char *kind = json_string_value(json_object_get(filter, "kind"));
	const char *repo = json_string_value(json_object_get(filter, "repository"));
	const char *state = json_string_value(json_object_get(filter, "state"));
	const char *branch = json_string_value(json_object_get(filter, "branch"));
	return query((sq_store *)st, out, 0,
		     RUN_COLUMNS " WHERE (?1 IS NULL OR kind=?1) AND (?2 IS NULL OR repository=?2)"
				 " AND (?3 IS NULL OR state=?3) AND (?4 IS NULL OR branch=?4) ORDER BY id DESC LIMIT ?5",
		     "ssssn", kind, repo, state, branch, limit > 0 ? limit : -1);
}

static int sq_measurement_put(store *st, int64_t *id_out, int64_t run_id, const char *repository, const char *commit,
			      const char *benchmark, const json_t *data)
{
	sq_store *s = (sq_store *)st;
	char *text = json_text(data);
	if (!text)
		return base_error_set(BASE_ENOMEM, "out of memory");
	sqlite3 *db = wbegin(s);
	int64_t id = 0;
	int error = exec(db, NULL,
			 "INSERT INTO measurements(run_id, repository, commit_sha, benchmark, data, created_ms, ok, instructions,"
			 " estimated_cycles) VALUES(?1,?2,?3,?4,?5,?6, json_extract(?5, '$.status') = 'ok',"
			 " json_extract(?5, '$.instructions'), json_extract(?5, '$.estimated_cycles'))",
			 "issssi", run_id, repository, commit, benchmark, text, base_wall_ms());
	if (error == 0)
		id = sqlite3_last_insert_rowid(db);
	error = wend(s, error);
	if (error == 0 && id_out)
		*id_out = id;
	free(text);
	return error;
}

#define MEASUREMENT_COLUMNS "SELECT id, run_id, repository, commit_sha AS \"commit\", benchmark, data FROM measurements"

static int sq_measurement_find(store *st, const char *repository, const char *commit, const char *benchmark,
			       json_t **out)
{
	return query((sq_store *)st, out, 1,
		     MEASUREMENT_COLUMNS " WHERE repository=? AND commit_sha=? AND benchmark=?"
					 " AND json_extract(data, '$.status')='ok' ORDER BY id DESC LIMIT 1",
		     "sss", repository, commit, benchmark);
}

static int sq_measurement_get(store *st, int64_t id, json_t **out)
{
	return query((sq_store *)st, out, 1, MEASUREMENT_COLUMNS " WHERE id=?", "i", id);
}

static int sq_measurement_list(store *st, int64_t run_id, json_t **out)
{
	return query((sq_store *)st, out, 0, MEASUREMENT_COLUMNS " WHERE run_id=? ORDER BY id", "i", run_id);
}

static int sq_proposal_put(store *st, int64_t run_id, const json_t *data)
{
	char *text = json_text(data);
	if (!text)
		return base_error_set(BASE_ENOMEM, "out of memory");
	int64_t now = base_wall_ms();
	int error = pexec((sq_store *)st, NULL,
			  "INSERT INTO proposals(run_id, data, created_ms, updated_ms) VALUES(?1,?2,?3,?3)"
			  " ON CONFLICT(run_id) DO UPDATE SET data=?2, updated_ms=?3",
			  "isi", run_id, text, now);
	free(text);
	return error;
}

static int sq_proposal_get(store *st, int64_t run_id, json_t **out)
{
	json_t *row = NULL;
	int error = query((sq_store *)st, &row, 1, "SELECT data FROM proposals WHERE run_id=?", "i", run_id);
	if (error == BASE_ENOTFOUND)
		return base_error_set(BASE_ENOTFOUND, "run %lld has no proposal", (long long)run_id);
	if (error < 0)
		return error;
	*out = json_incref(json_object_get(row, "data"));
	json_decref(row);
	return 0;
}

static int sq_pull_put(store *st, int64_t run_id, const char *repository, int number, const char *branch,
		       const char *state, const json_t *data)
{
	char *text = json_text(data);
	if (!text)
		return base_error_set(BASE_ENOMEM, "out of memory");
	int error = pexec((sq_store *)st, NULL,
			  "INSERT INTO pulls(run_id, repository, number, branch, state, data, updated_ms)"
			  " VALUES(?1,?2,?3,?4,?5,?6,?7) ON CONFLICT(run_id) DO UPDATE SET repository=?2, number=?3,"
			  " branch=?4, state=?5, data=json_patch(coalesce(data,'{}'), ?6), updated_ms=?7",
			  "isnsssi", run_id, repository, number, branch, state, text, base_wall_ms());
	free(text);
	return error;
}

static int sq_pull_get(store *st, int64_t run_id, json_t **out)
{
	return query((sq_store *)st, out, 1,
		     "SELECT run_id, repository, number, branch, state, data FROM pulls WHERE run_id=?", "i", run_id);
}

static int sq_pull_find_branch(store *st, const char *repository, const char *branch, json_t **out)
{
	return query((sq_store *)st, out, 1,
		     "SELECT run_id, repository, number, branch, state, data FROM pulls WHERE repository=? AND branch=?"
		     " ORDER BY run_id DESC",
		     "ss", repository, branch);
}

static int sq_approval_put(store *st, const store_approval *a)
{
	sq_store *s = (sq_store *)st;
	char subject[32];
	snprintf(subject, sizeof(subject), "run %lld", (long long)a->run_id);
	int64_t now = base_wall_ms();
	int changes = 0;
	sqlite3 *db = wbegin(s);
	int error = exec(db, &changes, "INSERT OR IGNORE INTO approvals(run_id, user, via, created_ms) VALUES(?,?,?,?)",
			 "issi", a->run_id, a->user, a->via, now);
	if (error == 0 && changes == 0)
		error = base_error_set(BASE_EEXISTS, "run %lld is already approved", (long long)a->run_id);
	if (error == 0 && a->run_update)
		error = patch_run(db, a->run_id, a->run_update);
	if (error == 0)
		error = insert_audit(db, a->user, "approve", subject, a->via);
	int64_t job = 0;
	if (error == 0 && a->job_kind)
		error = insert_job(db, &job, a->job_kind, a->job_payload, a->job_key, now);
	error = wend(s, error);
	if (error == 0 && a->job_kind)
		job_signal(s);
	return error;
}

static int sq_audit(store *st, const char *actor, const char *action, const char *subject, const char *detail)
{
	sq_store *s = (sq_store *)st;
	sqlite3 *db = wbegin(s);
	return wend(s, insert_audit(db, actor, action, subject, detail));
}

static int sq_run_token_put(store *st, int64_t run_id, const char *token_hash)
{
	return pexec((sq_store *)st, NULL, "INSERT INTO run_tokens(token_hash, run_id, created_ms) VALUES(?,?,?)", "sii",
		     token_hash, run_id, base_wall_ms());
}

static int sq_run_token_find(store *st, const char *token_hash, int64_t *run_id_out)
{
	json_t *row = NULL;
	int error = query((sq_store *)st, &row, 1, "SELECT run_id FROM run_tokens WHERE token_hash=?", "s", token_hash);
	if (error < 0)
		return error;
	*run_id_out = json_integer_value(json_object_get(row, "run_id"));
	json_decref(row);
	return 0;
}

static int sq_run_token_delete(store *st, int64_t run_id)
{
	return pexec((sq_store *)st, NULL, "DELETE FROM run_tokens WHERE run_id=?", "i", run_id);
}

/* ---- dashboard -------------------------------------------------------------- */

static int sq_session_put(store *st, const store_session *x)
{
	sq_store *s = (sq_store *)st;
	sqlite3 *db = wbegin(s);
	int error = exec(db, NULL, "DELETE FROM sessions WHERE expires_ms <= ?", "i", x->created_ms);
	if (error == 0)
		error = exec(db, NULL,
			     "INSERT INTO sessions(id_hash, login, user_id, avatar_url, token, csrf, created_ms, expires_ms)"
			     " VALUES(?,?,?,?,?,?,?,?)",
			     "ssisssii", x->id_hash, x->login, x->user_id, x->avatar_url, x->token, x->csrf, x->created_ms,
			     x->expires_ms);
	if (error < 0 && sqlite3_extended_errcode(db) == SQLITE_CONSTRAINT_PRIMARYKEY)
		error = base_error_set(BASE_EEXISTS, "session exists");
	return wend(s, error);
}

static char *col_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t ? strdup((const char *)t) : NULL;
}

static int sq_session_get(store *st, const char *id_hash, int64_t now_ms, store_session *out)
{
	sq_store *s = (sq_store *)st;
	sqlite3 *db = conn_get(s);
	sqlite3_stmt *q = NULL;
	int error = prepare(db, &q,
			    "SELECT id_hash, login, user_id, avatar_url, token, csrf, created_ms, expires_ms FROM sessions"
			    " WHERE id_hash=? AND expires_ms > ?",
			    "si", id_hash, now_ms);
	if (error < 0)
		goto done;
	int rc = sqlite3_step(q);
	if (rc == SQLITE_DONE) {
		error = base_error_set(BASE_ENOTFOUND, "no such session");
	} else if (rc != SQLITE_ROW) {
		error = sq_err(db, "read");
	} else {
		out->id_hash = col_dup(q, 0);
		out->login = col_dup(q, 1);
		out->user_id = sqlite3_column_int64(q, 2);
		out->avatar_url = col_dup(q, 3);
		out->token = col_dup(q, 4);
		out->csrf = col_dup(q, 5);
		out->created_ms = sqlite3_column_int64(q, 6);
		out->expires_ms = sqlite3_column_int64(q, 7);
		if (!out->id_hash || !out->login || !out->csrf)
			error = base_error_set(BASE_ENOMEM, "out of memory");
	}
done:
	sqlite3_finalize(q);
	conn_put(s, db);
	if (error < 0)
		store_session_dispose(out);
	return error;
}

static int sq_session_delete(store *st, const char *id_hash)
{
	return pexec((sq_store *)st, NULL, "DELETE FROM sessions WHERE id_hash=?", "s", id_hash);
}

/* One statement: the branch's runs from the `limit`-th newest on (its id
 * found backwards along the runs_branch index), read forwards along that
 * index and joined with their measurements through the covering
 * measurements_series index: oldest first with no sort.  Rows come grouped
 * by run, so the series are filled in one pass; a commit measured again
 * keeps only its newest run (dropped at the end, rarely needed). */
static int sq_series_get(store *st, json_t **out, const char *repository, const char *branch, const char *metric,
			 int limit)
{
	sq_store *s = (sq_store *)st;
	sqlite3 *db = conn_get(s);
	sqlite3_stmt *q = NULL;
	json_t *commits = json_array(), *series = json_object(), *seen = json_object(), *root = NULL;
	unsigned char *dropped = calloc((size_t)limit, 1);
	size_t ndropped = 0;
	int use_instr = !strcmp(metric, "instructions");
	int error = 0;
	if (!commits || !series || !seen || !dropped) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	error = prepare(db, &q,
			"SELECT c.id, c.head_sha, coalesce(json_extract(c.data, '$.commit.at_ms'), c.created_ms),"
			"  json_extract(c.data, '$.commit.author'), json_extract(c.data, '$.commit.message'),"
			"  m.benchmark, CASE WHEN ?4 THEN m.instructions ELSE m.estimated_cycles END"
			" FROM runs c INDEXED BY runs_branch"
			" LEFT JOIN measurements m ON m.run_id = c.id AND m.commit_sha = c.head_sha AND m.ok = 1"
			" WHERE c.repository=?1 AND c.branch=?2 AND c.kind='bench' AND c.trigger='push' AND c.state='done'"
			"  AND c.head_sha IS NOT NULL AND c.id >= coalesce((SELECT id FROM runs INDEXED BY runs_branch"
			"   WHERE repository=?1 AND branch=?2 AND kind='bench' AND trigger='push' AND state='done'"
			"   AND head_sha IS NOT NULL ORDER BY id DESC LIMIT 1 OFFSET ?3 - 1), 0)"
			" ORDER BY c.id",
			"ssnn", repository, branch, limit, use_instr);
	if (error < 0)
		goto done;
	int64_t last_run = -1;
	size_t ncommits = 0;
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		int64_t run = sqlite3_column_int64(q, 0);
		if (run != last_run) {
			const char *sha = (const char *)sqlite3_column_text(q, 1);
			const char *author = (const char *)sqlite3_column_text(q, 3);
			const char *message = (const char *)sqlite3_column_text(q, 4);
			if (ncommits >= (size_t)limit)
				break; /* cannot happen: LIMIT */
			json_t *c = json_pack("{s:s, s:I, s:I, s:s?, s:s?}", "sha", sha ? sha : "", "run_id", (json_int_t)run,
					      "at_ms", (json_int_t)sqlite3_column_int64(q, 2), "author", author, "message",
					      message);
			if (!c || json_array_append_new(commits, c) < 0) {
				error = base_error_set(BASE_ENOMEM, "out of memory");
				goto done;
			}
			json_t *before = json_object_get(seen, sha ? sha : "");
			if (before) {
				dropped[json_integer_value(before)] = 1;
				ndropped++;
			}
			json_object_set_new(seen, sha ? sha : "", json_integer((json_int_t)ncommits));
			/* every series grows by a null for the new commit */
			const char *k;
			json_t *v;
			json_object_foreach(series, k, v) json_array_append_new(v, json_null());
			last_run = run;
			ncommits++;
		}
		const char *bench = (const char *)sqlite3_column_text(q, 5);
		if (!bench || sqlite3_column_type(q, 6) == SQLITE_NULL)
			continue;
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
		json_array_set_new(arr, ncommits - 1, json_integer(sqlite3_column_int64(q, 6)));
	}
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		error = sq_err(db, "read");
		goto done;
	}
	if (ndropped) {
		/* the older runs of commits measured again go; a benchmark left
		 * with no value goes too */
		json_t *kept = json_array(), *kseries = json_object();
		for (size_t i = 0; i < ncommits; i++)
			if (!dropped[i])
				json_array_append(kept, json_array_get(commits, i));
		const char *k;
		json_t *v;
		json_object_foreach(series, k, v)
		{
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
	sqlite3_finalize(q);
	conn_put(s, db);
	json_decref(commits);
	json_decref(series);
	json_decref(seen);
	free(dropped);
	if (error == 0)
		*out = root;
	return error;
}

static int sq_series_stamp(store *st, char *out, size_t cap, const char *repository, const char *branch)
{
	sq_store *s = (sq_store *)st;
	sqlite3 *db = conn_get(s);
	sqlite3_stmt *q = NULL;
	int error = prepare(db, &q,
			    "SELECT count(*), coalesce(sum(state='done'), 0), coalesce(max(id), 0), coalesce(max(updated_ms), 0),"
			    "  (SELECT coalesce(max(id), 0) FROM measurements)"
			    " FROM runs INDEXED BY runs_branch"
			    " WHERE repository=?1 AND branch=?2 AND kind='bench' AND trigger='push'",
			    "ss", repository, branch);
	if (error == 0) {
		if (sqlite3_step(q) == SQLITE_ROW)
			snprintf(out, cap, "%lld:%lld:%lld:%lld:%lld", (long long)sqlite3_column_int64(q, 0),
				 (long long)sqlite3_column_int64(q, 1), (long long)sqlite3_column_int64(q, 2),
				 (long long)sqlite3_column_int64(q, 3), (long long)sqlite3_column_int64(q, 4));
		else
			error = sq_err(db, "read");
	}
	sqlite3_finalize(q);
	conn_put(s, db);
	return error;
}

static int sq_handover_put(store *st, const char *environment_id, const char *session_id, const char *work_id,
			   const char *secret, const char *polled_by, int64_t polled_ms, int64_t expires_ms)
{
	sq_store *s = (sq_store *)st;
	wbegin(s);
	int error = wexec_v_args(s, NULL, "DELETE FROM managed_handover WHERE expires_ms<=?", "i", polled_ms);
	if (error == 0)
		error = wexec_v_args(s, NULL,
				     "INSERT OR REPLACE INTO managed_handover(work_id, environment_id, session_id, secret,"
				     " polled_by, polled_ms, expires_ms) VALUES(?,?,?,?,?,?,?)",
				     "sssssii", work_id, environment_id, session_id, secret, polled_by, polled_ms, expires_ms);
	return wend(s, error);
}

static int sq_handover_claim(store *st, const char *environment_id, const char *session_id, int64_t now_ms,
			     store_handover *out)
{
	sq_store *s = (sq_store *)st;
	json_t *row = NULL;
	/* a read first: the replicas ask often and there is rarely anything */
	int error = query(s, &row, 1,
			  "SELECT work_id FROM managed_handover WHERE session_id=? AND expires_ms>? AND environment_id=?"
			  " LIMIT 1",
			  "sis", session_id, now_ms, environment_id);
	json_decref(row);
	if (error < 0)
		return error == BASE_ENOTFOUND ? base_error_set(BASE_ENOTFOUND, "no work item to hand over") : error;
	sqlite3 *db = wbegin(s);
	sqlite3_stmt *q = NULL;
	int owned = 0;
	/* one statement under the write lock: of racing claimers one deletes the row */
	error = wprepare(s, &q, &owned,
			 "DELETE FROM managed_handover WHERE work_id=(SELECT work_id FROM managed_handover"
			 " WHERE session_id=?1 AND expires_ms>?2 AND environment_id=?3 ORDER BY polled_ms, work_id LIMIT 1)"
			 " RETURNING environment_id, session_id, work_id, secret, polled_by, polled_ms, expires_ms",
			 "sis", session_id, now_ms, environment_id);
	if (error < 0)
		goto done;
	int rc = sqlite3_step(q);
	if (rc == SQLITE_DONE) {
		error = base_error_set(BASE_ENOTFOUND, "no work item to hand over");
		goto done;
	}
	if (rc != SQLITE_ROW) {
		error = sq_err(db, "claim a work item");
		goto done;
	}
	out->environment_id = col_strdup(q, 0);
	out->session_id = col_strdup(q, 1);
	out->work_id = col_strdup(q, 2);
	out->secret = col_strdup(q, 3);
	out->polled_by = col_strdup(q, 4);
	out->polled_ms = sqlite3_column_int64(q, 5);
	out->expires_ms = sqlite3_column_int64(q, 6);
	while (sqlite3_step(q) == SQLITE_ROW)
		;
	if (!out->work_id || !out->secret || !out->session_id || !out->environment_id)
		error = base_error_set(BASE_ENOMEM, "out of memory");
done:
	wput(q, owned);
	if (error == BASE_ENOTFOUND) {
		wend_opt(s, 0, 0);
		return BASE_ENOTFOUND;
	}
	/* waits for the commit: a claim that did not reach the disk could be claimed again */
	return wend(s, error);
}

static int sq_schema_version(store *st, int *applied_out, int *known_out)
{
	json_t *row = NULL;
	int error = query((sq_store *)st, &row, 1, "SELECT coalesce(max(version), 0) AS v FROM schema_migrations", "");
	if (error == 0) {
		*applied_out = (int)json_integer_value(json_object_get(row, "v"));
		*known_out = (int)(sizeof(migrations) / sizeof(migrations[0]));
	}
	json_decref(row);
	return error;
}

static int sq_ping(store *st)
{
	json_t *row = NULL;
	int error = query((sq_store *)st, &row, 1, "SELECT 1 AS ok", "");
	json_decref(row);
	return error;
}

static void free_nothing(void *p)
{
	(void)p; /* the ids belong to their rows */
}

/* Sets *flag under lock, wakes the thread (cond, and cond2 when not NULL)
 * and waits for it to end. */
static void stop_thread(pthread_t t, pthread_mutex_t *lock, pthread_cond_t *cond, pthread_cond_t *cond2, int *flag)
{
	pthread_mutex_lock(lock);
	*flag = 1;
	pthread_cond_broadcast(cond);
	if (cond2)
		pthread_cond_broadcast(cond2);
	pthread_mutex_unlock(lock);
	pthread_join(t, NULL);
}

static void sq_free(store *st)
{
	sq_store *s = (sq_store *)st;
	/* the logger answers what is queued, then the committer adds the rows */
	if (s->logger_started)
		stop_thread(s->logger, &s->l_lock, &s->l_cond, &s->l_room, &s->l_stop);
	if (s->syncer_started)
		stop_thread(s->syncer, &s->l_lock, &s->sync_cond, NULL, &s->sync_stop);
	if (s->committer_started)
		stop_thread(s->committer, &s->q_lock, &s->work_cond, NULL, &s->stopping);
	if (s->ckpt_started)
		stop_thread(s->checkpointer, &s->ck_lock, &s->ck_cond, NULL, &s->ck_stop);
	sqlite3_close(s->ckpt_db);
	pthread_mutex_destroy(&s->ck_lock);
	pthread_cond_destroy(&s->ck_cond);
	/* cached statements first: a connection with open statements stays open */
	sqlite3_finalize(s->ins_delivery);
	sqlite3_finalize(s->ins_job);
	sqlite3_finalize(s->ins_logged);
	for (int i = 0; i < s->nwcache; i++)
		sqlite3_finalize(s->wcache[i].st);
	sqlite3_close(s->writer);
	store_body_log_free(s->bodies);
	free(s->bodies_dir);
	sqlite3_finalize(s->l_exists);
	sqlite3_close(s->l_db);
	/* rows the committer could not add are replayed from the log next time */
	for (struct logged *r = s->r_head, *next; r; r = next) {
		next = r->next;
		logged_free(r);
	}
	tdestroy(s->pending, free_nothing);
	pthread_mutex_destroy(&s->l_lock);
	pthread_mutex_destroy(&s->a_lock);
	pthread_cond_destroy(&s->l_cond);
	pthread_cond_destroy(&s->l_room);
	pthread_cond_destroy(&s->sync_cond);
	for (int i = 0; i < POOL_SIZE; i++)
		sqlite3_close(s->pool[i]);
	pthread_mutex_destroy(&s->pool_lock);
	pthread_cond_destroy(&s->pool_cond);
	pthread_mutex_destroy(&s->wlock);
	pthread_mutex_destroy(&s->commit_lock);
	pthread_mutex_destroy(&s->q_lock);
	pthread_cond_destroy(&s->work_cond);
	pthread_cond_destroy(&s->commit_cond);
	pthread_mutex_destroy(&s->job_lock);
	pthread_cond_destroy(&s->job_cond);
	free(s->path);
	free(s);
}

static const store_backend sqlite_backend = {
	.name = "sqlite",
	.free = sq_free,
	.ping = sq_ping,
	.delivery_put_async = sq_delivery_put_async,
	.delivery_exists = sq_delivery_exists,
	.delivery_body = sq_delivery_body,
	.delivery_set_status = sq_delivery_set_status,
	.delivery_list = sq_delivery_list,
	.job_add = sq_job_add,
	.job_claim = sq_job_claim,
	.job_heartbeat = sq_job_heartbeat,
	.job_done = sq_job_done,
	.job_fail = sq_job_fail,
	.job_cancel_key = sq_job_cancel_key,
	.job_release = sq_job_release,
	.job_list = sq_job_list,
	.job_counts = sq_job_counts,
	.queue_stats = sq_queue_stats,
	.wait_for_job = sq_wait_for_job,
	.schema_version = sq_schema_version,
	.installation_put = sq_installation_put,
	.installation_delete = sq_installation_delete,
	.installation_state = sq_installation_state,
	.repository_put = sq_repository_put,
	.repository_remove = sq_repository_remove,
	.repository_list = sq_repository_list,
	.hook_put = sq_hook_put,
	.run_create = sq_run_create,
	.run_set_state = sq_run_set_state,
	.run_set_state_from = sq_run_set_state_from,
	.run_update = sq_run_update,
	.run_get = sq_run_get,
	.run_list = sq_run_list,
	.measurement_put = sq_measurement_put,
	.measurement_find = sq_measurement_find,
	.measurement_get = sq_measurement_get,
	.measurement_list = sq_measurement_list,
	.proposal_put = sq_proposal_put,
	.proposal_get = sq_proposal_get,
	.pull_put = sq_pull_put,
	.pull_get = sq_pull_get,
	.pull_find_branch = sq_pull_find_branch,
	.approval_put = sq_approval_put,
	.audit = sq_audit,
	.run_token_put = sq_run_token_put,
	.run_token_find = sq_run_token_find,
	.run_token_delete = sq_run_token_delete,
	.session_put = sq_session_put,
	.session_get = sq_session_get,
	.session_delete = sq_session_delete,
	.series_get = sq_series_get,
	.series_stamp = sq_series_stamp,
	.handover_put = sq_handover_put,
	.handover_claim = sq_handover_claim,
};

/* mkdir -p of the directory part of path. */
static int make_parent_dirs(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash || slash == path)
		return 0;
	char dir[4096];
	if ((size_t)(slash - path) >= sizeof(dir))
		return base_error_set(BASE_EINVALID, "store path too long");
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = '\0';
	return base_mkdirs(dir, 0700);
}

/* The database holds webhook payloads, run tokens and installation data:
 * readable by perfbot's user only.  The file is made (or tightened) 0600
 * before SQLite opens it; SQLite gives the -wal and -shm files it creates
 * the database's mode, and existing ones are tightened too. */
static int private_files(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return base_error_set(BASE_EGENERIC, "store: cannot open %s: %s", path, strerror(errno));
	struct stat st;
	int error = 0;
	if (fstat(fd, &st) == 0 && (st.st_mode & 077) && fchmod(fd, st.st_mode & 0700) < 0)
		error = base_error_set(BASE_EGENERIC, "store: cannot make %s private: %s", path, strerror(errno));
	close(fd);
	static const char *const sfx[] = { "-wal", "-shm", "-journal" };
	for (size_t i = 0; !error && i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		char p[4200];
		if ((size_t)snprintf(p, sizeof(p), "%s%s", path, sfx[i]) >= sizeof(p))
			continue;
		if (lstat(p, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077))
			(void)chmod(p, st.st_mode & 0700);
	}
	return error;
}

int store_sqlite_open(store **out, const char *path, int serving)
{
	int error;
	if (!*path)
		return base_error_set(BASE_EINVALID, "DATABASE_URL: empty SQLite path");
	if ((error = make_parent_dirs(path)) < 0)
		return error;
	if (strcmp(path, ":memory:") != 0 && strncmp(path, "file:", 5) != 0 && (error = private_files(path)) < 0)
		return error;
	sq_store *s = calloc(1, sizeof(*s));
	if (!s)
		return base_error_set(BASE_ENOMEM, "out of memory");
	s->base.be = &sqlite_backend;
	s->path = strdup(path);
	pthread_mutex_init(&s->pool_lock, NULL);
	pthread_cond_init(&s->pool_cond, NULL);
	pthread_mutex_init(&s->wlock, NULL);
	pthread_mutex_init(&s->commit_lock, NULL);
	pthread_mutex_init(&s->q_lock, NULL);
	pthread_cond_init(&s->work_cond, NULL);
	pthread_cond_init(&s->commit_cond, NULL);
	pthread_mutex_init(&s->job_lock, NULL);
	pthread_cond_init(&s->job_cond, NULL);
	pthread_mutex_init(&s->ck_lock, NULL);
	pthread_cond_init(&s->ck_cond, NULL);
	pthread_mutex_init(&s->l_lock, NULL);
	pthread_mutex_init(&s->a_lock, NULL);
	pthread_cond_init(&s->l_cond, NULL);
	pthread_cond_init(&s->l_room, NULL);
	pthread_cond_init(&s->sync_cond, NULL);
	if ((error = open_conn(&s->writer, path)) < 0)
		goto fail;
	if ((error = migrate(s->writer)) < 0)
		goto fail;
	if (strcmp(path, ":memory:") != 0 && strncmp(path, "file:", 5) != 0) {
		char dir[4200];
		if ((error = store_body_log_dir(dir, sizeof(dir), path)) < 0)
			goto fail;
		if (!(s->bodies_dir = strdup(dir))) {
			error = base_error_set(BASE_ENOMEM, "out of memory");
			goto fail;
		}
		error = store_body_log_open(&s->bodies, dir, STORE_BODY_LOG_SEGMENT_MAX, serving ? 10000 : 0);
		if (error == BASE_EEXISTS) {
			/* another process owns the log: read it, write deliveries inline */
			if (serving)
				base_log(BASE_LOG_WARN, "store: another process holds the body log; webhook bodies go into the"
					 " database until the next start", "detail", base_error_last(), NULL);
			base_error_clear();
			error = 0;
		} else if (error < 0) {
			goto fail;
		}
	}
	if (s->bodies) {
		if ((error = replay_log(s)) < 0)
			goto fail;
		if ((error = open_conn(&s->l_db, path)) < 0)
			goto fail;
		if (sqlite3_prepare_v3(s->l_db, "SELECT 1 FROM deliveries WHERE id=?", -1, SQLITE_PREPARE_PERSISTENT,
				       &s->l_exists, NULL) != SQLITE_OK) {
			error = sq_err(s->l_db, "prepare");
			goto fail;
		}
	}
	if ((error = open_conn(&s->ckpt_db, path)) < 0)
		goto fail;
	if (pthread_create(&s->checkpointer, NULL, checkpointer_main, s) != 0) {
		error = base_error_set(BASE_EGENERIC, "store: cannot start the checkpoint thread");
		goto fail;
	}
	s->ckpt_started = 1;
	sqlite3_wal_hook(s->writer, on_wal, s);
	for (int i = 0; i < POOL_SIZE; i++) {
		if ((error = open_conn(&s->pool[i], path)) < 0)
			goto fail;
		s->pool_free[i] = 1;
	}
	if (pthread_create(&s->committer, NULL, committer_main, s) != 0) {
		error = base_error_set(BASE_EGENERIC, "store: cannot start the commit thread");
		goto fail;
	}
	s->committer_started = 1;
	if (s->bodies) {
		if (pthread_create(&s->syncer, NULL, syncer_main, s) != 0) {
			error = base_error_set(BASE_EGENERIC, "store: cannot start the body log's sync thread");
			goto fail;
		}
		s->syncer_started = 1;
		if (pthread_create(&s->logger, NULL, logger_main, s) != 0) {
			error = base_error_set(BASE_EGENERIC, "store: cannot start the body log thread");
			goto fail;
		}
		s->logger_started = 1;
	}
	*out = &s->base;
	return 0;
fail:
	sq_free(&s->base);
	return error;
}
