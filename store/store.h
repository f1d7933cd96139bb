/* The store: perfbot's one source of durable state (deliveries, jobs,
 * installations, runs, measurements, proposals, pull requests, audit log).
 *
 * Callers see an opaque `store` and the functions below; a backend
 * (SQLite, store_sqlite.c, the default; PostgreSQL, store_pg.c, for several
 * replicas on one database) fills a `store_backend` vtable.  Every function is
 * safe to call from any thread: the backend hands each call a connection
 * that one thread uses at a time.  JSON documents crossing this interface
 * are owned by the caller in both directions unless noted ("borrows"). */
#ifndef STORE_STORE_H
#define STORE_STORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct store store;

/* ---- lifecycle ----------------------------------------------------------- */

/* Opens the store named by url ("sqlite:PATH", a plain path, or
 * "postgres://..." / "postgresql://...") and applies the numbered migrations
 * (once, even when several replicas open one PostgreSQL database together).
 * *out is freed with store_free. */
int store_open(store **out, const char *url);

/* store_open for the serving process.  With SQLite, webhook deliveries go
 * through the body log beside the database (see store_sqlite.c), which one
 * process at a time owns: the serving one waits up to 10 s for a tool that
 * holds it; any other process takes it only when it is free, and otherwise
 * reads the log and writes the deliveries it stores (rarely any) into the
 * database itself. */
int store_open_serving(store **out, const char *url);

/* 0 when url names a store this build opens (checked without opening it);
 * BASE_EINVALID with one line saying what is wrong (never the password). */
int store_url_check(const char *url);

/* url with its password replaced by "***" (for logs and reports). */
void store_url_redact(char *out, size_t n, const char *url);

/* "sqlite" or "postgres". */
const char *store_backend_name(const store *st);

/* The same for tools that only read: BASE_ENOTFOUND (naming the file) when
 * the SQLite store does not exist yet, instead of creating an empty one. */
int store_open_existing(store **out, const char *url);
void store_free(store *st);

/* 0 when the store answers a trivial query. */
int store_ping(store *st);

/* ---- deliveries ---------------------------------------------------------- */

typedef struct store_job_spec {
	const char *kind;     /* e.g. "event.push" */
	const char *payload;  /* JSON text; borrowed */
} store_job_spec;

typedef struct store_delivery {
	const char *id;               /* X-GitHub-Delivery */
	const char *event;
	const char *action;           /* NULL when the payload has none */
	int64_t installation_id;      /* 0 when none */
	const char *repository;       /* "owner/name" or NULL */
	const char *headers_json;     /* the GitHub headers as a JSON object */
	const char *body;             /* raw bytes as received */
	size_t body_len;
	int64_t received_ms;          /* ms since epoch */
	const char *status;           /* "queued" | "ignored" */
	const store_job_spec *jobs;   /* jobs created in the same transaction */
	size_t njobs;
} store_delivery;

/* Stores the delivery and its jobs durably, all or nothing, for every
 * delivery that arrived meanwhile at once (group commit: the call returns
 * once the data is on disk: in SQLite's body log when the store owns it,
 * its row and jobs following within a commit, visible at once to this
 * process's reads of deliveries and jobs, which wait for them; else in one
 * transaction).  *duplicate_out is 1 (and nothing is written) when the
 * delivery id is already stored. */
int store_delivery_put(store *st, const store_delivery *d, int *duplicate_out);

/* store_delivery_put without blocking the caller: for an HTTP front that
 * serves many connections per thread.  The caller fills d and done (and
 * payload); the store queues the delivery for the same durable transaction
 * store_delivery_put would use, then calls done(a) exactly once, from any
 * thread (the committer's, or the caller's own before this returns), after
 * error, duplicate and msg are set: error 0 means the delivery and its jobs
 * are on disk (or duplicate is 1 and nothing was written), a negative code
 * means nothing was stored (msg says why).  done must be quick and must not
 * call the store.  *a and everything d points to stay the caller's and must
 * live until done has run.  Returns 0 once queued; a negative code (done is
 * not called) when the store refuses at once (closing). */
typedef struct store_delivery_async {
	const store_delivery *d;                      /* borrowed until done */
	void (*done)(struct store_delivery_async *a);
	void *payload;                                /* the caller's */
	int error;                                    /* out */
	int duplicate;                                /* out */
	char msg[256];                                /* out, when error < 0 */
	struct store_delivery_async *next;            /* the backend's */
	void *backend;                                /* the backend's */
} store_delivery_async;

int store_delivery_put_async(store *st, store_delivery_async *a);

/* 1 if stored, 0 if not, negative on error. */
int store_delivery_exists(store *st, const char *id);

/* The raw body of a stored delivery (*body_out owned by the caller, NUL-terminated). */
int store_delivery_body(store *st, const char *id, char **body_out, size_t *len_out);

/* Sets the delivery's status ("done", "failed", "ignored", ...). */
int store_delivery_set_status(store *st, const char *id, const char *status);

/* A JSON array (owned) of {id, event, action, installation_id, repository,
 * received, status}, newest first; event may be NULL.  status is the one
 * stored when it is not "queued" ("ignored": no job, or its job found
 * nothing to do; "malformed"), else it follows the delivery's jobs:
 * "queued" while one waits or runs, "failed" when one failed for good,
 * else "done". */
int store_delivery_list(store *st, json_t **out, int limit, const char *event);

/* ---- jobs ---------------------------------------------------------------- */

typedef struct store_job {
	int64_t id;
	char *kind;         /* owned */
	char *payload;      /* owned JSON text */
	char *delivery_id;  /* owned, NULL when not from a delivery */
	int attempts;       /* including this one */
} store_job;

void store_job_dispose(store_job *job);

/* Adds a job outside a delivery (e.g. a PR job after an approval).
 * `dedupe_key` (may be NULL) makes the call a no-op when a job with that key
 * is queued or running.  run_at_ms 0 = now. */
int store_job_add(store *st, int64_t *id_out, const char *kind, const char *payload, const char *dedupe_key,
		  int64_t run_at_ms);

/* Claims the oldest due job (queued and due, or running with an expired
 * lease) for `owner` until now + lease_ms.  BASE_ENOTFOUND when none. */
int store_job_claim(store *st, store_job *out, const char *owner, int64_t lease_ms);

/* The kinds a claim may take: only those named, or (exclude) all but those.
 * Lets separate pools of workers share one queue. */
typedef struct store_job_filter {
	const char *const *kinds;  /* NULL-terminated exact kinds; borrowed */
	int exclude;
} store_job_filter;

/* store_job_claim limited by filter (NULL: any kind). */
int store_job_claim_filtered(store *st, store_job *out, const char *owner, int64_t lease_ms,
			     const store_job_filter *filter);

/* Extends the lease of a running job held by owner. */
int store_job_heartbeat(store *st, int64_t id, const char *owner, int64_t lease_ms);

/* Ends a claimed job: state "done" (note may say "no handler") ... */
int store_job_done(store *st, int64_t id, const char *owner, const char *note);

/* ... or a failure: retried at retry_at_ms, or failed for good when
 * retry_at_ms is 0. */
int store_job_fail(store *st, int64_t id, const char *owner, const char *error, int64_t retry_at_ms);

/* Cancels queued jobs with this dedupe key (a newer push replaces an older
 * one); returns the count through count_out (may be NULL). */
int store_job_cancel_key(store *st, const char *dedupe_key, int *count_out);

/* Puts the running jobs of owner (NULL: of every owner) back to queued. */
int store_job_release(store *st, const char *owner);

/* JSON array (owned) of jobs, newest first. */
int store_job_list(store *st, json_t **out, int limit);

/* Counts of jobs by state: {"queued": n, "running": n, ...} (owned). */
int store_job_counts(store *st, json_t **out);

/* Waits up to timeout_ms for jobs queued (by this process, or with
 * PostgreSQL by any replica: LISTEN/NOTIFY).  1 when woken, 0 on timeout.
 * One thread (the worker pool's listener) calls it. */
int store_wait_for_job(store *st, int timeout_ms);

/* The queue at now_ms, for `perfbot doctor`. */
typedef struct store_queue_stats {
	int64_t queued;         /* jobs waiting, due or not */
	int64_t oldest_due_ms;  /* run_at of the oldest queued job that is due; 0 when none */
	int64_t failed_since;   /* jobs failed for good since since_ms */
} store_queue_stats;

int store_queue_stats_get(store *st, store_queue_stats *out, int64_t now_ms, int64_t since_ms);

/* The newest schema migration applied to the store, and the newest this
 * build knows (a store migrated by a newer perfbot has more). */
int store_schema_version(store *st, int *applied_out, int *known_out);

/* ---- installations and repositories -------------------------------------- */

int store_installation_put(store *st, int64_t id, const char *account, const char *state);
int store_installation_delete(store *st, int64_t id);
/* state: "active" | "suspended" | "deleted"; BASE_ENOTFOUND when unknown. */
int store_installation_state(store *st, int64_t id, char **state_out);
int store_repository_put(store *st, int64_t installation_id, int64_t repo_id, const char *full_name);
int store_repository_remove(store *st, int64_t installation_id, int64_t repo_id);
/* JSON array (owned) of {id, full_name} for the installation. */
int store_repository_list(store *st, int64_t installation_id, json_t **out);

/* The hook id and app id recorded by the last ping. */
int store_hook_put(store *st, int64_t hook_id, int64_t app_id, const char *delivery_id);

/* ---- runs, measurements, proposals, pull requests, audit ----------------- */
/* Runs are "bench" or "agent"; their structured detail is a JSON document
 * that the owning module defines. */

/* What a run is; stored as "bench" | "agent" (names below, at the store's edge). */
typedef enum store_run_kind {
	STORE_RUN_KIND_UNKNOWN = 0,
	STORE_RUN_BENCH,           /* "bench": measure/'s bench run */
	STORE_RUN_AGENT            /* "agent": agent/'s agent run */
} store_run_kind;

const char *store_run_kind_name(store_run_kind kind);
store_run_kind store_run_kind_parse(const char *s);
/* The "kind" of a run record from store_run_get / store_run_list (borrowed). */
store_run_kind store_run_kind_of(const json_t *run);

typedef struct store_run_spec {
	store_run_kind kind;
	const char *repository;    /* "owner/name" or a local path */
	int64_t installation_id;
	const char *head_sha;
	const char *base_sha;      /* may be NULL */
	const char *branch;        /* may be NULL */
	const char *trigger;       /* "push" | "pull_request" | "comment" | "cli" ... */
	const json_t *data;        /* borrows; may be NULL */
} store_run_spec;

int store_run_create(store *st, int64_t *id_out, const store_run_spec *spec);

/* A run's state.  The store keeps it as text; these are the only names
 * (store_run_state_name / store_run_state_parse, here at the store's edge),
 * so no module compares state strings. */
typedef enum store_run_state {
	STORE_RUN_UNKNOWN = 0,      /* absent, or a name not below */
	STORE_RUN_QUEUED,           /* "queued" */
	STORE_RUN_WAITING,          /* "waiting": for a maintainer's approval */
	STORE_RUN_RUNNING,          /* "running" */
	STORE_RUN_CANCELLING,       /* "cancelling": asked to stop, still running */
	STORE_RUN_DONE,             /* "done" */
	STORE_RUN_SKIPPED,          /* "skipped" */
	STORE_RUN_FAILED,           /* "failed" */
	STORE_RUN_CANCELLED,        /* "cancelled" */
	STORE_RUN_PROPOSAL,         /* "proposal": a verified change waits for approval */
	STORE_RUN_NO_IMPROVEMENT,   /* "no_improvement" */
	STORE_RUN_MERGED,           /* "merged": its pull request was merged */
	STORE_RUN_CLOSED            /* "closed": its pull request was closed unmerged */
} store_run_state;

/* A set of states for store_run_set_state_from: STORE_RUN_IN(a) | STORE_RUN_IN(b). */
#define STORE_RUN_IN(s) (1u << (unsigned)(s))

/* "queued", ...; "unknown" for STORE_RUN_UNKNOWN.  Static string. */
const char *store_run_state_name(store_run_state state);
/* The state named s (NULL or another name: STORE_RUN_UNKNOWN). */
store_run_state store_run_state_parse(const char *s);
/* The "state" of a run record from store_run_get / store_run_list (borrowed). */
store_run_state store_run_state_of(const json_t *run);
/* 1 for queued, waiting, running and cancelling: the run has not ended. */
int store_run_state_active(store_run_state state);

/* reason may be NULL. */
int store_run_set_state(store *st, int64_t id, store_run_state state, const char *reason);
/* The same, only while the run is in one of the states of `from`
 * (STORE_RUN_IN(STORE_RUN_QUEUED) | STORE_RUN_IN(STORE_RUN_RUNNING)): a transition that cannot overwrite one another
 * thread made meanwhile.  BASE_EEXISTS ("run N is cancelled") when the run
 * is in another state, BASE_ENOTFOUND when there is no such run. */
int store_run_set_state_from(store *st, int64_t id, unsigned from, store_run_state state, const char *reason);
/* Merges the keys of data (borrows) into the run's document. */
int store_run_update(store *st, int64_t id, const json_t *data);
/* The run as a JSON object (owned): id, kind, repository, installation_id,
 * head_sha, base_sha, branch, trigger, state, reason, created, updated, data. */
int store_run_get(store *st, int64_t id, json_t **out);
/* filter keys (all optional): kind, repository, state, branch; newest first. */
int store_run_list(store *st, const json_t *filter, int limit, json_t **out);

/* One measurement of one benchmark at one commit; data (borrows) is the
 * module's document (counts, profile, toolchain). */
int store_measurement_put(store *st, int64_t *id_out, int64_t run_id, const char *repository, const char *commit,
			  const char *benchmark, const json_t *data);
/* Latest successful measurement of a benchmark at a commit, or BASE_ENOTFOUND. */
int store_measurement_find(store *st, const char *repository, const char *commit, const char *benchmark,
			   json_t **out);
int store_measurement_get(store *st, int64_t id, json_t **out);
/* Every measurement of a run, JSON array (owned). */
int store_measurement_list(store *st, int64_t run_id, json_t **out);

/* Proposals and pull requests: one document per run. */
int store_proposal_put(store *st, int64_t run_id, const json_t *data);
int store_proposal_get(store *st, int64_t run_id, json_t **out);
int store_pull_put(store *st, int64_t run_id, const char *repository, int number, const char *branch,
		   const char *state, const json_t *data);
int store_pull_get(store *st, int64_t run_id, json_t **out);
int store_pull_find_branch(store *st, const char *repository, const char *branch, json_t **out);

/* An approval and everything that follows from it, recorded together. */
typedef struct {
	int64_t run_id;
	const char *user;
	const char *via;          /* "comment" | "button" | ... */
	const json_t *run_update; /* merged into the run's document; may be NULL */
	const char *job_kind;     /* the job it queues; NULL for none */
	const char *job_payload;
	const char *job_key;      /* dedupe key, as for store_job_add */
} store_approval;

/* Records an approval once, in one transaction with the run's update, an
 * audit line and its job: either all of them are stored or none.
 * BASE_EEXISTS when the run was already approved. */
int store_approval_put(store *st, const store_approval *a);
int store_audit(store *st, const char *actor, const char *action, const char *subject, const char *detail);

/* Per-run bearer tokens, stored hashed (SHA-256 hex of the token). */
int store_run_token_put(store *st, int64_t run_id, const char *token_hash);
/* The run a token hash belongs to, BASE_ENOTFOUND when none. */
int store_run_token_find(store *st, const char *token_hash, int64_t *run_id_out);
int store_run_token_delete(store *st, int64_t run_id);

/* ---- dashboard: sign-in sessions and benchmark series -------------------- */

/* A signed-in browser.  The session id itself is never stored: the store
 * keys the session by the SHA-256 hex of its cookie value. */
typedef struct store_session {
	char *id_hash;      /* 64 hex chars */
	char *login;        /* GitHub login */
	int64_t user_id;    /* GitHub user id */
	char *avatar_url;   /* may be NULL */
	char *token;        /* the user's OAuth token; never logged */
	char *csrf;         /* the session's CSRF token (hex) */
	int64_t created_ms;
	int64_t expires_ms; /* ms since epoch; the session ends then */
} store_session;

/* Frees the strings of a session filled by store_session_get. */
void store_session_dispose(store_session *s);

/* Stores a new session (strings borrowed, copied) and deletes every
 * session expired at s->created_ms.  BASE_EEXISTS when id_hash is taken. */
int store_session_put(store *st, const store_session *s);

/* The session with this id hash that has not expired at now_ms (owned
 * strings in *out, store_session_dispose), or BASE_ENOTFOUND. */
int store_session_get(store *st, const char *id_hash, int64_t now_ms, store_session *out);

/* Deletes the session (sign-out); no error when there is none. */
int store_session_delete(store *st, const char *id_hash);

/* The benchmark history of a branch, in one query: the newest `limit`
 * (1..5000) commits measured by push-triggered bench runs of `repository`
 * on `branch` that ended "done" (one per commit: its newest such run),
 * oldest first, with each successful measurement's value of `metric`
 * ("cycles": estimated cycles, "instructions").  *out (owned):
 *   {"commits": [{"sha", "run_id", "at_ms", "author", "message"}],
 *    "series": {"<benchmark>": [value | null, ...]}}
 * with every series as long as commits (null where the commit has no
 * successful measurement of that benchmark); author and message come from
 * the run's data.commit (null when absent), at_ms from data.commit.at_ms or
 * else the run's creation time. */
int store_series_get(store *st, json_t **out, const char *repository, const char *branch, const char *metric,
		     int limit);

/* A short text (into out, cap bytes) that changes whenever what
 * store_series_get answers for (repository, branch) may have changed: a
 * measurement stored (by any process), a push-triggered bench run of the
 * branch added, updated or deleted.  For caching answers built from the
 * series; compare with strcmp. */
int store_series_stamp(store *st, char *out, size_t cap, const char *repository, const char *branch);

/* ---- moving an installation ---------------------------------------------- */

typedef struct store_copy_stats {
	int64_t rows;      /* rows copied, every table together */
	int tables;
} store_copy_stats;

/* Copies every table of the SQLite store at from_url ("sqlite:PATH") into
 * the PostgreSQL store at to_url (migrated first), ids preserved and
 * sequences advanced past them, in one transaction.  BASE_EEXISTS when the
 * target already holds data, unless force (then its rows are replaced). */
int store_copy(const char *from_url, const char *to_url, int force, store_copy_stats *stats);

/* ---- Managed Agents work items handed between replicas -------------------- */

/* A work item polled by a replica that does not serve its session, kept for
 * the replica that does until it claims it or expires_ms passes (wall
 * clock).  The secret is the work item's `secret` as polled: it lives in the
 * store only until the row is claimed or expires, and is never logged. */
typedef struct store_handover {
	char *environment_id, *session_id, *work_id;
	char *secret;       /* wiped by store_handover_dispose */
	char *polled_by;    /* the polling worker's id */
	int64_t polled_ms, expires_ms;
} store_handover;

/* Records the item (durable; a row with the same work_id is replaced) and
 * deletes every row whose expires_ms <= polled_ms. */
int store_handover_put(store *st, const char *environment_id, const char *session_id, const char *work_id,
		       const char *secret, const char *polled_by, int64_t polled_ms, int64_t expires_ms);
/* Atomically removes and returns (*out, owned) the oldest row of session_id
 * in environment_id with expires_ms > now_ms: of claimers racing for one row,
 * exactly one gets it.  BASE_ENOTFOUND when there is none (cheap: no write). */
int store_handover_claim(store *st, const char *environment_id, const char *session_id, int64_t now_ms,
			 store_handover *out);
void store_handover_dispose(store_handover *h);

#endif
