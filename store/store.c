/* The store's public functions: argument checks shared by every backend,
 * then dispatch through the backend vtable (store_int.h). */
#include "store/store_int.h"
#include "base/error.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>

#include <openssl/crypto.h>

static int is_pg_url(const char *url)
{
	return strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0;
}

int store_url_check(const char *url)
{
	if (!url || !*url)
		return base_error_set(BASE_EINVALID, "DATABASE_URL: empty");
	if (strncmp(url, "sqlite:", 7) == 0)
		return url[7] ? 0 : base_error_set(BASE_EINVALID, "DATABASE_URL: empty SQLite path");
	if (is_pg_url(url)) {
		/* postgres://[user[:password]@][host][:port][/dbname][?param=value&...] */
		const char *rest = strstr(url, "://") + 3;
		const char *end = rest + strcspn(rest, "/?");
		const char *at = memchr(rest, '@', (size_t)(end - rest));
		const char *host = at ? at + 1 : rest;
		if (*end == '/' && end[1] == '/')
			return base_error_set(BASE_EINVALID, "DATABASE_URL: expected postgres://user:password@host:port/dbname");
		for (const char *p = url; *p; p++)
			if ((unsigned char)*p <= ' ')
				return base_error_set(BASE_EINVALID, "DATABASE_URL: a space or control character in the URL");
		const char *colon = NULL;
		for (const char *p = host; p < end; p++) {
			if (*p == '[') { /* [v6]:port */
				const char *close = memchr(p, ']', (size_t)(end - p));
				if (!close)
					return base_error_set(BASE_EINVALID, "DATABASE_URL: unclosed '[' in the host");
				p = close;
			} else if (*p == ',') {
				colon = NULL; /* host list: each may have a port */
			} else if (*p == ':') {
				colon = p;
			} else if (colon && (*p < '0' || *p > '9')) {
				return base_error_set(BASE_EINVALID, "DATABASE_URL: the port is not a number");
			}
		}
		if (colon && colon + 1 == end)
			return base_error_set(BASE_EINVALID, "DATABASE_URL: empty port");
		return 0;
	}
	if (strncmp(url, "postgres", 8) == 0)
		return base_error_set(BASE_EINVALID, "DATABASE_URL: expected postgres://... or postgresql://...");
	if (strstr(url, "://"))
		return base_error_set(BASE_EINVALID, "DATABASE_URL: unsupported store \"%.*s\" (sqlite:PATH or postgres://...)",
				      (int)(strstr(url, "://") - url), url);
	return 0;
}

void store_url_redact(char *out, size_t n, const char *url)
{
	if (!url) {
		snprintf(out, n, "(none)");
		return;
	}
	const char *scheme = strstr(url, "://");
	if (!scheme) {
		snprintf(out, n, "%s", url);
		return;
	}
	const char *rest = scheme + 3;
	const char *end = rest + strcspn(rest, "/?");
	const char *at = NULL;
	for (const char *p = rest; p < end; p++)
		if (*p == '@')
			at = p;
	const char *colon = at ? memchr(rest, ':', (size_t)(at - rest)) : NULL;
	/* a password given as a parameter (?password=...) is cut off too */
	const char *query = strchr(end, '?');
	int qlen = query && strstr(query, "password") ? (int)(query - end) : (int)strlen(end);
	if (colon)
		snprintf(out, n, "%.*s:***%.*s%.*s", (int)(colon - url), url, (int)(end - at), at, qlen, end);
	else
		snprintf(out, n, "%.*s%.*s", (int)(end - url), url, qlen, end);
}

const char *store_backend_name(const store *st)
{
	return st->be->name;
}

static int open_store(store **out, const char *url, int serving)
{
	int error = store_url_check(url);
	if (error < 0)
		return error;
	if (strncmp(url, "sqlite:", 7) == 0)
		return store_sqlite_open(out, url + 7, serving);
	if (is_pg_url(url))
		return store_pg_open(out, url);
	return store_sqlite_open(out, url, serving);
}

int store_open(store **out, const char *url)
{
	return open_store(out, url, 0);
}

int store_open_serving(store **out, const char *url)
{
	return open_store(out, url, 1);
}

int store_open_existing(store **out, const char *url)
{
	const char *path = strncmp(url, "sqlite:", 7) == 0 ? url + 7 : strstr(url, "://") ? NULL : url;
	struct stat sb;
	if (path && stat(path, &sb) != 0)
		return base_error_set(BASE_ENOTFOUND, "no perfbot store at %s (is DATA_DIR or DATABASE_URL right?)", path);
	return store_open(out, url);
}

void store_free(store *st)
{
	if (st)
		st->be->free(st);
}

int store_ping(store *st )
{
	return st->be->ping(st);
}

/* A blocking put over a backend's queue waits on this. */
struct put_wait {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int done;
};

static void put_wait_done(store_delivery_async *a)
{
	struct put_wait *w = a->payload;
	pthread_mutex_lock(&w->lock);
	w->done = 1;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

int store_delivery_put(store *st, const store_delivery *d, int *duplicate_out)
{
	if (!st->be->delivery_put_async)
		return st->be->delivery_put(st, d, duplicate_out);
	/* a backend with a commit queue: queue it and wait for its commit */
	struct put_wait w = { .done = 0 };
	store_delivery_async a = { .d = d, .done = put_wait_done, .payload = &w };
	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.cond, NULL);
	int error = store_delivery_put_async(st, &a);
	if (error == 0) {
		pthread_mutex_lock(&w.lock);
		while (!w.done)
			pthread_cond_wait(&w.cond, &w.lock);
		pthread_mutex_unlock(&w.lock);
	}
	pthread_cond_destroy(&w.cond);
	pthread_mutex_destroy(&w.lock);
	if (error < 0)
		return error;
	if (a.error < 0)
		return base_error_set(a.error, "%s", a.msg);
	if (duplicate_out)
		*duplicate_out = a.duplicate;
	return 0;
}

int store_delivery_put_async(store *st, store_delivery_async *a)
{
	a->error = 0;
	a->duplicate = 0;
	a->msg[0] = '\0';
	a->next = NULL;
	a->backend = NULL;
	if (st->be->delivery_put_async)
		return st->be->delivery_put_async(st, a);
	/* a backend without a queue of its own: the same durable put, here */
	int error = st->be->delivery_put(st, a->d, &a->duplicate);
	if (error < 0) {
		a->error = error;
		a->duplicate = 0;
		snprintf(a->msg, sizeof(a->msg), "%s", base_error_last());
	}
	a->done(a);
	return 0;
}

int store_delivery_exists(store *st, const char *id)
{
	return st->be->delivery_exists(st, id);
}

int store_delivery_body(store *st, const char *id, char **body_out, size_t *len_out)
{
	return st->be->delivery_body(st, id, body_out, len_out);
}

int store_delivery_set_status(store *st, const char *id, const char *status)
{
	return st->be->delivery_set_status(st, id, status);
}

int store_delivery_list(store *st, json_t **out, int limit, const char *event)
{
	return st->be->delivery_list(st, out, limit, event);
}

int store_job_add(store *st, int64_t *id_out, const char *kind, const char *payload, const char *dedupe_key, int64_t run_at_ms)
{
	return st->be->job_add(st, id_out, kind, payload, dedupe_key, run_at_ms);
}

int store_job_claim(store *st, store_job *out, const char *owner, int64_t lease_ms)
{
	return st->be->job_claim(st, out, owner, lease_ms, NULL);
}

int store_job_claim_filtered(store *st, store_job *out, const char *owner, int64_t lease_ms,
			     const store_job_filter *filter)
{
	return st->be->job_claim(st, out, owner, lease_ms, filter);
}

int store_job_heartbeat(store *st, int64_t id, const char *owner, int64_t lease_ms)
{
	return st->be->job_heartbeat(st, id, owner, lease_ms);
}

int store_job_done(store *st, int64_t id, const char *owner, const char *note)
{
	return st->be->job_done(st, id, owner, note);
}

int store_job_fail(store *st, int64_t id, const char *owner, const char *error, int64_t retry_at_ms)
{
	return st->be->job_fail(st, id, owner, error, retry_at_ms);
}

int store_job_cancel_key(store *st, const char *dedupe_key, int *count_out)
{
	return st->be->job_cancel_key(st, dedupe_key, count_out);
}

int store_job_release(store *st, const char *owner)
{
	return st->be->job_release(st, owner);
}

int store_job_list(store *st, json_t **out, int limit)
{
	return st->be->job_list(st, out, limit);
}

int store_job_counts(store *st, json_t **out)
{
	return st->be->job_counts(st, out);
}

int store_queue_stats_get(store *st, store_queue_stats *out, int64_t now_ms, int64_t since_ms)
{
	return st->be->queue_stats(st, out, now_ms, since_ms);
}

int store_wait_for_job(store *st, int timeout_ms)
{
	return st->be->wait_for_job(st, timeout_ms);
}

int store_schema_version(store *st, int *applied_out, int *known_out)
{
	return st->be->schema_version(st, applied_out, known_out);
}

int store_installation_put(store *st, int64_t id, const char *account, const char *state)
{
	return st->be->installation_put(st, id, account, state);
}

int store_installation_delete(store *st, int64_t id)
{
	return st->be->installation_delete(st, id);
}

int store_installation_state(store *st, int64_t id, char **state_out)
{
	return st->be->installation_state(st, id, state_out);
}

int store_repository_put(store *st, int64_t installation_id, int64_t repo_id, const char *full_name)
{
	return st->be->repository_put(st, installation_id, repo_id, full_name);
}

int store_repository_remove(store *st, int64_t installation_id, int64_t repo_id)
{
	return st->be->repository_remove(st, installation_id, repo_id);
}

int store_repository_list(store *st, int64_t installation_id, json_t **out)
{
	return st->be->repository_list(st, installation_id, out);
}

int store_hook_put(store *st, int64_t hook_id, int64_t app_id, const char *delivery_id)
{
	return st->be->hook_put(st, hook_id, app_id, delivery_id);
}

const char *store_run_kind_name(store_run_kind kind)
{
	return kind == STORE_RUN_BENCH ? "bench" : kind == STORE_RUN_AGENT ? "agent" : "unknown";
}

store_run_kind store_run_kind_parse(const char *s)
{
	return !s ? STORE_RUN_KIND_UNKNOWN
	       : !strcmp(s, "bench") ? STORE_RUN_BENCH
	       : !strcmp(s, "agent") ? STORE_RUN_AGENT
				     : STORE_RUN_KIND_UNKNOWN;
}

store_run_kind store_run_kind_of(const json_t *run)
{
	return store_run_kind_parse(json_string_value(json_object_get(run, "kind")));
}

int store_run_create(store *st, int64_t *id_out, const store_run_spec *spec)
{
	if (!spec || spec->kind == STORE_RUN_KIND_UNKNOWN)
		return base_error_set(BASE_EINVALID, "store_run_create: no kind");
	return st->be->run_create(st, id_out, spec);
}

static const char *const RUN_STATE_NAMES[] = {
	[STORE_RUN_UNKNOWN] = "unknown",	 [STORE_RUN_QUEUED] = "queued",
	[STORE_RUN_WAITING] = "waiting",	 [STORE_RUN_RUNNING] = "running",
	[STORE_RUN_CANCELLING] = "cancelling", [STORE_RUN_DONE] = "done",
	[STORE_RUN_SKIPPED] = "skipped",	 [STORE_RUN_FAILED] = "failed",
	[STORE_RUN_CANCELLED] = "cancelled",	 [STORE_RUN_PROPOSAL] = "proposal",
	[STORE_RUN_NO_IMPROVEMENT] = "no_improvement", [STORE_RUN_MERGED] = "merged",
	[STORE_RUN_CLOSED] = "closed",
};
#define RUN_STATES (sizeof(RUN_STATE_NAMES) / sizeof(RUN_STATE_NAMES[0]))

const char *store_run_state_name(store_run_state state)
{
	return (size_t)state < RUN_STATES ? RUN_STATE_NAMES[state] : "unknown";
}

store_run_state store_run_state_parse(const char *s)
{
	for (size_t i = 1; s && i < RUN_STATES; i++)
		if (strcmp(s, RUN_STATE_NAMES[i]) == 0)
			return (store_run_state)i;
	return STORE_RUN_UNKNOWN;
}

store_run_state store_run_state_of(const json_t *run)
{
	return store_run_state_parse(json_string_value(json_object_get(run, "state")));
}

int store_run_state_active(store_run_state state)
{
	return state == STORE_RUN_QUEUED || state == STORE_RUN_WAITING || state == STORE_RUN_RUNNING ||
	       state == STORE_RUN_CANCELLING;
}

int store_run_set_state_from(store *st, int64_t id, unsigned from, store_run_state state, const char *reason)
{
	char list[160] = "";
	size_t n = 0;
	if (!st || !from || state == STORE_RUN_UNKNOWN)
		return base_error_set(BASE_EINVALID, "store_run_set_state_from: missing argument");
	for (size_t i = 1; i < RUN_STATES; i++)
		if (from & STORE_RUN_IN(i))
			n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s", n ? "," : "", RUN_STATE_NAMES[i]);
	return st->be->run_set_state_from(st, id, list, store_run_state_name(state), reason);
}

int store_run_set_state(store *st, int64_t id, store_run_state state, const char *reason)
{
	if (state == STORE_RUN_UNKNOWN)
		return base_error_set(BASE_EINVALID, "store_run_set_state: no state");
	return st->be->run_set_state(st, id, store_run_state_name(state), reason);
}

int store_run_update(store *st, int64_t id, const json_t *data)
{
	return st->be->run_update(st, id, data);
}

int store_run_get(store *st, int64_t id, json_t **out)
{
	return st->be->run_get(st, id, out);
}

int store_run_list(store *st, const json_t *filter, int limit, json_t **out)
{
	return st->be->run_list(st, filter, limit, out);
}

int store_measurement_put(store *st, int64_t *id_out, int64_t run_id, const char *repository, const char *commit, const char *benchmark, const json_t *data)
{
	return st->be->measurement_put(st, id_out, run_id, repository, commit, benchmark, data);
}

int store_measurement_find(store *st, const char *repository, const char *commit, const char *benchmark, json_t **out)
{
	return st->be->measurement_find(st, repository, commit, benchmark, out);
}

int store_measurement_get(store *st, int64_t id, json_t **out)
{
	return st->be->measurement_get(st, id, out);
}

int store_measurement_list(store *st, int64_t run_id, json_t **out)
{
	return st->be->measurement_list(st, run_id, out);
}

int store_proposal_put(store *st, int64_t run_id, const json_t *data)
{
	return st->be->proposal_put(st, run_id, data);
}

int store_proposal_get(store *st, int64_t run_id, json_t **out)
{
	return st->be->proposal_get(st, run_id, out);
}

int store_pull_put(store *st, int64_t run_id, const char *repository, int number, const char *branch, const char *state, const json_t *data)
{
	return st->be->pull_put(st, run_id, repository, number, branch, state, data);
}

int store_pull_get(store *st, int64_t run_id, json_t **out)
{
	return st->be->pull_get(st, run_id, out);
}

int store_pull_find_branch(store *st, const char *repository, const char *branch, json_t **out)
{
	return st->be->pull_find_branch(st, repository, branch, out);
}

int store_approval_put(store *st, const store_approval *a)
{
	if (!a || a->run_id <= 0 || !a->user || !a->via)
		return base_error_set(BASE_EINVALID, "store_approval_put: missing argument");
	return st->be->approval_put(st, a);
}

int store_audit(store *st, const char *actor, const char *action, const char *subject, const char *detail)
{
	return st->be->audit(st, actor, action, subject, detail);
}

int store_run_token_put(store *st, int64_t run_id, const char *token_hash)
{
	return st->be->run_token_put(st, run_id, token_hash);
}

int store_run_token_find(store *st, const char *token_hash, int64_t *run_id_out)
{
	return st->be->run_token_find(st, token_hash, run_id_out);
}

int store_run_token_delete(store *st, int64_t run_id)
{
	return st->be->run_token_delete(st, run_id);
}

int store_handover_put(store *st, const char *environment_id, const char *session_id, const char *work_id,
		       const char *secret, const char *polled_by, int64_t polled_ms, int64_t expires_ms)
{
	if (!environment_id || !session_id || !work_id || !secret)
		return base_error_set(BASE_EINVALID, "store: a handover needs an environment, a session, an item and its secret");
	if (!st->be->handover_put)
		return base_error_set(BASE_EGENERIC, "store: the %s backend does not hand work items over", st->be->name);
	return st->be->handover_put(st, environment_id, session_id, work_id, secret, polled_by, polled_ms, expires_ms);
}

int store_handover_claim(store *st, const char *environment_id, const char *session_id, int64_t now_ms,
			 store_handover *out)
{
	memset(out, 0, sizeof(*out));
	if (!environment_id || !session_id)
		return base_error_set(BASE_EINVALID, "store: a handover claim needs an environment and a session");
	if (!st->be->handover_claim)
		return base_error_set(BASE_EGENERIC, "store: the %s backend does not hand work items over", st->be->name);
	int error = st->be->handover_claim(st, environment_id, session_id, now_ms, out);
	if (error < 0)
		store_handover_dispose(out);
	return error;
}

void store_handover_dispose(store_handover *h)
{
	if (!h)
		return;
	if (h->secret) {
		OPENSSL_cleanse(h->secret, strlen(h->secret));
		free(h->secret);
	}
	free(h->environment_id);
	free(h->session_id);
	free(h->work_id);
	free(h->polled_by);
	memset(h, 0, sizeof(*h));
}

void store_job_dispose(store_job *job)
{
	if (!job)
		return;
	free(job->kind);
	free(job->payload);
	free(job->delivery_id);
	memset(job, 0, sizeof(*job));
}

void store_session_dispose(store_session *s)
{
	if (!s)
		return;
	free(s->id_hash);
	free(s->login);
	free(s->avatar_url);
	if (s->token)
		memset(s->token, 0, strlen(s->token));
	free(s->token);
	free(s->csrf);
	memset(s, 0, sizeof(*s));
}

int store_session_put(store *st, const store_session *s)
{
	return st->be->session_put(st, s);
}

int store_session_get(store *st, const char *id_hash, int64_t now_ms, store_session *out)
{
	memset(out, 0, sizeof(*out));
	return st->be->session_get(st, id_hash, now_ms, out);
}

int store_session_delete(store *st, const char *id_hash)
{
	return st->be->session_delete(st, id_hash);
}

int store_series_get(store *st, json_t **out, const char *repository, const char *branch, const char *metric,
		     int limit)
{
	*out = NULL;
	if (!repository || !branch || limit < 1 || limit > 5000)
		return base_error_set(BASE_EINVALID, "series: a repository, a branch and a limit of 1 to 5000 are needed");
	if (!metric || (strcmp(metric, "cycles") && strcmp(metric, "instructions")))
		return base_error_set(BASE_EINVALID, "series: metric is cycles or instructions");
	return st->be->series_get(st, out, repository, branch, metric, limit);
}

int store_series_stamp(store *st, char *out, size_t cap, const char *repository, const char *branch)
{
	if (cap)
		out[0] = '\0';
	if (!repository || !branch || cap < 2)
		return base_error_set(BASE_EINVALID, "series stamp: repository, branch and room needed");
	return st->be->series_stamp(st, out, cap, repository, branch);
}
