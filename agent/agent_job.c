/* Agent runs: the queue, the "agent.run" job, approval and cancellation
 * (agent/services.h), and the same run on a local repository for the CLI
 * (agent/agent_job.h).
 *
 * A run goes: fetch (the installation token exists only in the credential
 * callback) → configuration at the commit → two work trees (the agent's
 * workspace and a fresh one for verification) → sandbox → baseline
 * measurement (stored) → tools with the budgets of the configuration →
 * registration with the MCP endpoint (the per-run token) → task file → the
 * `command` backend, supervised with the wall budget → unregistration (the
 * token dies with it) → verification of the submission → the proposal or an
 * end state with its reason, the budgets used and the timings.  With a
 * GitHub client the run shows as the check run "perfbot optimize" on the
 * base commit (external_id = the run id) and as a comment in the thread
 * that asked for it.
 *
 * Invariants: at most one agent run per repository is queued or running
 * (checked at queue time); the run's state in the store is the truth for
 * cancellation: agent_run_cancel writes "cancelled" and the job's watcher
 * thread, polling the store, kills the agent's process group and the sandbox
 * commands through the cancel flag — so a cancel works from any worker or
 * replica.  Run states: queued, running, then proposal | no_improvement |
 * failed | cancelled.
 *
 * Threading: each run is owned by the thread that executes it plus its
 * watcher; the watcher touches only the cancel flag and the tool context
 * (under the run's lock).  The queue, approve and cancel functions are
 * called from event-handler threads and only talk to the store (and the
 * MCP endpoint to revoke a token). */
#include "agent/agent_job.h"
#include "base/clock.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent_cmd.h"
#include "measure/bench.h"
#include "measure/checkout.h"
#include "measure/repo_config.h"
#include "measure/run_watch.h"
#include "agent/task.h"
#include "agent/tools.h"
#include "agent/tools_run.h"
#include "agent/verify.h"
#include "base/buf.h"
#include "base/error.h"
#include "base/log.h"
#include "base/md.h"
#include "base/utf8.h"

#define WATCH_MS 250                 /* how often a running run looks for a cancel */
#define AGENT_GRACE_MS 15000         /* after the tools ended, before the agent is killed */
#define OUTPUT_TAIL 16384            /* bytes of the agent's output kept in the run */
#define DIFF_SHOWN 50000             /* bytes of diff in a check run (GitHub caps text at 65535) */
#define COMMENT_DIFF 20000           /* bytes of diff in a comment */
#define CHECK_NAME "perfbot optimize"

static const char *jstr(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static int64_t jint(const json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

static void job_key(char *buf, size_t n, int64_t run_id)
{
	snprintf(buf, n, "agent.run:%" PRId64, run_id);
}

static int is_end_state(const char *s)
{
	return s && strcmp(s, "queued") != 0 && strcmp(s, "running") != 0;
}

/* ---- queue ---------------------------------------------------------------- */

/* The agent run of `repository` that is queued or running, or *out NULL. */
static int active_run(json_t **out, store *st, const char *repository)
{
	static const char *const states[] = { "running", "queued" };
	*out = NULL;
	for (size_t i = 0; i < 2; i++) {
		json_t *filter = json_pack("{s:s,s:s,s:s}", "kind", "agent", "repository", repository, "state", states[i]);
		json_t *list = NULL;
		if (!filter)
			return base_error_set(BASE_ENOMEM, "out of memory");
		int error = store_run_list(st, filter, 1, &list);
		json_decref(filter);
		if (error < 0)
			return error;
		if (json_array_size(list) > 0) {
			*out = json_incref(json_array_get(list, 0));
			json_decref(list);
			return 0;
		}
		json_decref(list);
	}
	return 0;
}

static json_t *names_array(const char *const *names, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; a && names && i < n; i++)
		if (names[i])
			json_array_append_new(a, json_string(names[i]));
	return a;
}

/* Records the run; *out its id. */
static int create_run(int64_t *out, const agent_services *svc, const agent_run_request *req, const char *local_path)
{
	json_t *data = json_pack("{s:s?,s:i,s:s?,s:s?,s:o,s:s?}", "requested_by", req->requested_by, "thread_number",
				 req->thread_number, "clone_url", req->clone_url, "commit", req->commit, "benchmarks",
				 names_array(req->benchmarks, req->nbenchmarks), "local_path", local_path);
	if (!data)
		return base_error_set(BASE_ENOMEM, "out of memory");
	if (req->fork)
		json_object_set_new(data, "fork", json_true());
	store_run_spec spec = { .kind = STORE_RUN_AGENT, .repository = req->repository, .installation_id = req->installation_id,
				.head_sha = req->commit, .base_sha = req->commit, .branch = req->branch,
				.trigger = req->trigger, .data = data };
	int error = store_run_create(svc->store, out, &spec);
	json_decref(data);
	return error;
}

/* Held from the look for an active run to the new run's creation: two
 * commands (or a command and a push) at once never make two runs of one
 * repository.  One process writes the store (SQLite), so a process lock is
 * enough. */
static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;

int agent_run_queue(int64_t *run_out, const agent_services *svc, const agent_run_request *req)
{
	json_t *busy = NULL;
	int64_t id = 0;
	int error;
	if (run_out)
		*run_out = 0;
	if (!req->repository || !req->trigger || (!req->commit && !req->branch))
		return base_error_set(BASE_EINVALID, "an agent run needs a repository, a trigger and a commit or a branch");
	pthread_mutex_lock(&queue_lock);
	if ((error = active_run(&busy, svc->store, req->repository)) < 0)
		goto done;
	if (busy) {
		int64_t bid = jint(busy, "id");
		const char *state = jstr(busy, "state"), *trig = jstr(busy, "trigger");
		const char *by = jstr(json_object_get(busy, "data"), "requested_by");
		if (!strcmp(req->trigger, "push") && state && !strcmp(state, "queued") && trig && !strcmp(trig, "push")) {
			/* a newer push replaces a queued push-triggered run */
			char key[64];
			job_key(key, sizeof(key), bid);
			if ((error = store_job_cancel_key(svc->store, key, NULL)) < 0)
				goto done;
			error = store_run_set_state_from(svc->store, bid, STORE_RUN_IN(STORE_RUN_QUEUED), STORE_RUN_CANCELLED, "replaced by a newer push");
			if (error == BASE_EEXISTS) { /* it started meanwhile: it stays the repository's run */
				error = base_error_set(BASE_EEXISTS, "run %" PRId64 " is running for %s", bid, req->repository);
				goto done;
			}
			if (error < 0)
				goto done;
			base_log(BASE_LOG_INFO, "agent run replaced by a newer push", "repository", req->repository, NULL);
		} else {
			if (by)
				error = base_error_set(BASE_EEXISTS,
						      "run %" PRId64 " is %s for %s (requested by @%s); `/perfbot cancel %" PRId64
						      "` stops it",
						      bid, state ? state : "active", req->repository, by, bid);
			else
				error = base_error_set(BASE_EEXISTS, "run %" PRId64 " is %s for %s; `/perfbot cancel %" PRId64 "` stops it",
						      bid, state ? state : "active", req->repository, bid);
			goto done;
		}
	}
	if ((error = create_run(&id, svc, req, NULL)) < 0)
		goto done;
	char payload[64], key[64];
	snprintf(payload, sizeof(payload), "{\"run_id\":%" PRId64 "}", id);
	job_key(key, sizeof(key), id);
	if ((error = store_job_add(svc->store, NULL, "agent.run", payload, key, 0)) < 0) {
		store_run_set_state(svc->store, id, STORE_RUN_FAILED, "the job could not be queued");
		goto done;
	}
	if (svc->workers)
		store_workers_wake(svc->workers);
	if (run_out)
		*run_out = id;
	char ids[24];
	snprintf(ids, sizeof(ids), "%" PRId64, id);
	base_log(BASE_LOG_INFO, "agent run queued", "run", ids, "repository", req->repository, "trigger", req->trigger, NULL);
done:
	pthread_mutex_unlock(&queue_lock);
	json_decref(busy);
	return error;
}

/* ---- approval and cancellation ------------------------------------------- */

/* A run named in a command or a button must belong to the repository the
 * command came from: write access to one repository says nothing about
 * another.  An unknown run and a run of another repository read the same. */
static int get_run_of(json_t **out, const agent_services *svc, const char *repository, int64_t run_id)
{
	int error = store_run_get(svc->store, run_id, out);
	if (error == BASE_ENOTFOUND || (error == 0 && repository && (!jstr(*out, "repository") ||
								   strcmp(jstr(*out, "repository"), repository) != 0))) {
		json_decref(error == 0 ? *out : NULL);
		*out = NULL;
		return base_error_set(BASE_ENOTFOUND, "run %" PRId64 " is not a run of %s", run_id,
				     repository ? repository : "this repository");
	}
	return error;
}

int agent_run_approve(const agent_services *svc, const char *repository, int64_t run_id, const char *user,
		      const char *via)
{
	json_t *run = NULL, *proposal = NULL, *update = NULL;
	int error;
	if ((error = get_run_of(&run, svc, repository, run_id)) < 0)
		return error;
	const char *kind = jstr(run, "kind");
	if (!kind || strcmp(kind, "agent") != 0) {
		error = base_error_set(BASE_ENOTFOUND, "run %" PRId64 " is not an agent run", run_id);
		goto done;
	}
	const char *state = jstr(run, "state");
	if (store_proposal_get(svc->store, run_id, &proposal) < 0 || !state ||
	    (strcmp(state, "proposal") != 0 && strcmp(state, "merged") != 0 && strcmp(state, "closed") != 0)) {
		error = base_error_set(BASE_ENOTFOUND, "run %" PRId64 " has no verified proposal%s%s%s", run_id,
				      state ? " (it is " : "", state ? state : "", state ? ")" : "");
		goto done;
	}
	char payload[64], key[64];
	snprintf(payload, sizeof(payload), "{\"run_id\":%" PRId64 "}", run_id);
	snprintf(key, sizeof(key), "pr.open:%" PRId64, run_id);
	update = json_pack("{s:s,s:s,s:I}", "approved_by", user, "approved_via", via, "approved_at_ms", (json_int_t)base_wall_ms());
	if (!update) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	/* the approval, the run's record of it, the audit line and the PR job
	 * are stored together: a crash cannot leave an approval without its job */
	store_approval a = { .run_id = run_id, .user = user, .via = via, .run_update = update,
			     .job_kind = "pr.open", .job_payload = payload, .job_key = key };
	if ((error = store_approval_put(svc->store, &a)) < 0) {
		if (error == BASE_EEXISTS) {
			const json_t *d = json_object_get(run, "data");
			const char *by = jstr(d, "approved_by"), *how = jstr(d, "approved_via");
			if (by)
				base_error_set(BASE_EEXISTS, "run %" PRId64 " was already approved by @%s (%s)", run_id, by,
					      how ? how : "?");
			else
				base_error_set(BASE_EEXISTS, "run %" PRId64 " was already approved", run_id);
		}
		goto done;
	}
	if (svc->workers)
		store_workers_wake(svc->workers);
	char ids[24];
	snprintf(ids, sizeof(ids), "%" PRId64, run_id);
	base_log(BASE_LOG_INFO, "agent run approved", "run", ids, "user", user, "via", via, NULL);
done:
	json_decref(run);
	json_decref(proposal);
	json_decref(update);
	return error;
}

int agent_run_cancel(const agent_services *svc, const char *repository, int64_t run_id, const char *user)
{
	json_t *run = NULL, *update = NULL;
	int error;
	if ((error = get_run_of(&run, svc, repository, run_id)) < 0)
		return error;
	const char *kind = jstr(run, "kind"), *state = jstr(run, "state");
	char reason[200], key[64], subject[32];
	if (!kind || strcmp(kind, "agent") != 0) {
		error = base_error_set(BASE_ENOTFOUND, "run %" PRId64 " is not an agent run", run_id);
		goto done;
	}
	if (is_end_state(state)) {
		error = base_error_set(BASE_EINVALID, "run %" PRId64 " has already ended (%s)", run_id, state ? state : "?");
		goto done;
	}
	snprintf(reason, sizeof(reason), "cancelled by @%s", user ? user : "?");
	update = json_pack("{s:s?,s:I}", "cancelled_by", user, "cancelled_at_ms", (json_int_t)base_wall_ms());
	if (!update) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	/* only a run still queued or running: its end may have been recorded
	 * since it was read, and a proposal is not taken back by a cancel */
	if ((error = store_run_set_state_from(svc->store, run_id, STORE_RUN_IN(STORE_RUN_QUEUED) | STORE_RUN_IN(STORE_RUN_RUNNING), STORE_RUN_CANCELLED, reason)) < 0) {
		if (error == BASE_EEXISTS) {
			json_t *now = NULL;
			store_run_get(svc->store, run_id, &now);
			error = base_error_set(BASE_EINVALID, "run %" PRId64 " has already ended (%s)", run_id,
					      jstr(now, "state") ? jstr(now, "state") : "?");
			json_decref(now);
		}
		goto done;
	}
	if ((error = store_run_update(svc->store, run_id, update)) < 0)
		goto done;
	if (!strcmp(state, "queued")) {
		job_key(key, sizeof(key), run_id);
		store_job_cancel_key(svc->store, key, NULL);
	} else if (svc->mcp) {
		/* the token dies now; the run's watcher kills the agent and the
		 * sandbox commands within WATCH_MS */
		agent_mcp_unregister_run(svc->mcp, run_id);
	}
	snprintf(subject, sizeof(subject), "run %" PRId64, run_id);
	store_audit(svc->store, user, "cancel", subject, state);
done:
	json_decref(run);
	json_decref(update);
	return error;
}

/* ---- one run --------------------------------------------------------------- */

typedef struct run {
	const agent_services *svc;
	int64_t id;
	json_t *row;                   /* the run as stored at the start */
	const char *repository;        /* owner/name, or the local path */
	const char *local_path;
	int64_t inst;
	int thread_number;
	char owner[128], name[128];
	char sha[41];
	measure_checkout_source src;
	char repo_path[PATH_MAX];      /* the git repository holding sha */
	measure_repo_config *cfg;
	base_diff_policy *policy;       /* of cfg, for the agent's write tools */
	char *workspace, *fresh, *rundir;
	char cg[PATH_MAX], agent_dir[PATH_MAX], task[PATH_MAX];
	json_t *baseline;
	agent_run_hooks *hooks;
	agent_tools *tools;
	const char **focus;            /* NULL-terminated, borrowed from row */
	int64_t check_run_id;

	pthread_mutex_t lock;          /* guards tools and cancel against the watcher */
	measure_run_watch *watch;
	atomic_int cancel;           /* read by the sandbox and the agent supervisor */
	const atomic_int *ext_cancel;
	const atomic_int *stopping;
	int cancelled_in_store;
	int interrupted;

	/* the outcome */
	char status[24];
	char reason[1024];
	json_t *verified;              /* agent_verify's document */
	char *summary, *diff;
	json_t *budgets;
	json_t *agent_info;            /* {exit_code, timed_out, output} */
	int64_t t_start, t_baseline, t_agent, t_verify, t_end;
} run;

static void set_outcome(run *r, const char *status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_outcome(run *r, const char *status, const char *fmt, ...)
{
	snprintf(r->status, sizeof(r->status), "%s", status);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
	va_end(ap);
}

/* Called once on the watcher's thread: a cancel (stored, or raised by the
 * CLI) or a shutdown ends the tools, and through r->cancel the agent
 * command and the sandbox commands. */
static void on_watch(measure_watch_cause cause, const char *reason, void *payload)
{
	run *r = payload;
	pthread_mutex_lock(&r->lock);
	if (!r->cancel) {
		if (cause == MEASURE_WATCH_SHUTDOWN)
			r->interrupted = 1;
		else if (cause == MEASURE_WATCH_STORE)
			r->cancelled_in_store = 1;
		r->cancel = 1;
		if (r->tools)
			agent_tools_end(r->tools, cause == MEASURE_WATCH_SHUTDOWN ? reason : "cancelled");
	}
	pthread_mutex_unlock(&r->lock);
}

static int token_cb(char *buf, size_t size, void *payload)
{
	run *r = payload;
	return measure_token_fill(buf, size, r->svc->gh, r->inst);
}

/* The commit: the requested one, or the branch tip after a fresh fetch. */
static int resolve_commit(run *r)
{
	const json_t *d = json_object_get(r->row, "data");
	const char *commit = jstr(d, "commit"), *branch = jstr(r->row, "branch");
	const char *rev = commit ? commit : branch;
	int error;
	if (!rev)
		return base_error_set(BASE_EINVALID, "the run names neither a commit nor a branch");
	if (!commit && !r->local_path) {
		/* a name that never resolves forces a fetch of every branch, so a
		 * cached branch is never stale */
		error = measure_checkout_fetch(r->sha, &r->src, "refs/perfbot/refresh-branches");
		if (error == BASE_EAUTH && r->svc->gh) {
			gh_installation_token_invalidate(r->svc->gh, r->inst);
			error = measure_checkout_fetch(r->sha, &r->src, "refs/perfbot/refresh-branches");
		}
		if (error < 0 && error != BASE_ENOTFOUND)
			return error;
	}
	error = measure_checkout_fetch(r->sha, &r->src, rev);
	if (error == BASE_EAUTH && r->svc->gh) {
		gh_installation_token_invalidate(r->svc->gh, r->inst);
		error = measure_checkout_fetch(r->sha, &r->src, rev);
	}
	return error;
}

static int load_config(run *r)
{
	char *yml = NULL;
	size_t len = 0;
	int error = measure_checkout_read_file(&yml, &len, &r->src, r->sha, MEASURE_REPO_CONFIG_PATH, MEASURE_REPO_CONFIG_MAX);
	if (error == BASE_ENOTFOUND)
		return base_error_set(BASE_ENOTFOUND, "%.7s has no %s", r->sha, MEASURE_REPO_CONFIG_PATH);
	if (error < 0)
		return error;
	error = measure_repo_config_parse(&r->cfg, yml, len);
	free(yml);
	if (error < 0)
		return base_error_set(error, "%s: %s", MEASURE_REPO_CONFIG_PATH, base_error_last());
	if (r->cfg->nbenchmarks == 0)
		return base_error_set(BASE_EINVALID, "%s defines no benchmarks", MEASURE_REPO_CONFIG_PATH);
	for (size_t i = 0; r->focus && r->focus[i]; i++)
		if (!measure_repo_config_benchmark(r->cfg, r->focus[i]))
			return base_error_set(BASE_ENOTFOUND, "the configuration has no benchmark named \"%s\"", r->focus[i]);
	return 0;
}

static int make_dirs(run *r)
{
	char tmpl[PATH_MAX];
	snprintf(tmpl, sizeof(tmpl), "%s/work", r->svc->cfg->data_dir);
	mkdir(r->svc->cfg->data_dir, 0700);
	mkdir(tmpl, 0700);
	if ((size_t)snprintf(tmpl, sizeof(tmpl), "%s/work/run-%" PRId64 "-XXXXXX", r->svc->cfg->data_dir, r->id) >=
	    sizeof(tmpl))
		return base_error_set(BASE_EINVALID, "DATA_DIR path too long");
	if (!mkdtemp(tmpl))
		return base_error_set(BASE_EGENERIC, "mkdtemp %s: %s", tmpl, strerror(errno));
	if (!(r->rundir = strdup(tmpl)))
		return base_error_set(BASE_ENOMEM, "out of memory");
	snprintf(r->cg, sizeof(r->cg), "%s/cg", r->rundir);
	snprintf(r->agent_dir, sizeof(r->agent_dir), "%s/agent", r->rundir);
	snprintf(r->task, sizeof(r->task), "%s/task.md", r->rundir);
	if (mkdir(r->cg, 0700) < 0 || mkdir(r->agent_dir, 0700) < 0)
		return base_error_set(BASE_EGENERIC, "mkdir in %s: %s", r->rundir, strerror(errno));
	return 0;
}

static void store_measurements(run *r, const json_t *doc)
{
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(doc, "benchmarks"), i, m)
	{
		if (store_measurement_put(r->svc->store, NULL, r->id, r->repository, r->sha, jstr(m, "name"), m) < 0)
			base_log(BASE_LOG_WARN, "cannot store a measurement", "error", base_error_last(), NULL);
	}
}

/* The rows of doc's "benchmarks" cut down to `keys` (NULL-terminated); a
 * key a row lacks is null.  Owned. */
static json_t *table_of(const json_t *doc, const char *const keys[])
{
	json_t *a = json_array();
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(doc, "benchmarks"), i, m)
	{
		json_t *row = json_object();
		for (size_t k = 0; row && keys[k]; k++) {
			json_t *v = json_object_get(m, keys[k]);
			json_object_set(row, keys[k], v ? v : json_null());
		}
		if (row)
			json_array_append_new(a, row);
	}
	return a;
}

/* A compact table of a run document for the run's data. */
static json_t *baseline_table(const json_t *doc)
{
	static const char *const keys[] = { "name", "status", "instructions", "estimated_cycles", NULL };
	return table_of(doc, keys);
}

static int measure_baseline(run *r)
{
	measure_bench_options bo = MEASURE_BENCH_OPTIONS_INIT;
	bo.commit = r->sha;
	bo.scratch_dir = r->cg;
	bo.cancel = &r->cancel;
	int error = measure_bench_measure(&r->baseline, r->svc->sandbox, r->workspace, r->cfg, &bo);
	if (error < 0)
		return error;
	store_measurements(r, r->baseline);
	json_t *upd = json_pack("{s:o}", "baseline", baseline_table(r->baseline));
	if (upd)
		store_run_update(r->svc->store, r->id, upd);
	json_decref(upd);
	const json_t *build = json_object_get(r->baseline, "build");
	const char *bs = jstr(build, "status");
	if (r->cancel)
		return BASE_ECANCELLED;
	if (bs && (!strcmp(bs, "failed") || !strcmp(bs, "timeout"))) {
		const char *tail = jstr(build, "output_tail");
		return base_error_set(BASE_EINVALID, "the base commit does not build (%s)%s%.600s", bs, tail ? ": " : "",
				     tail ? tail : "");
	}
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(r->baseline, "benchmarks"), i, m)
	{
		const char *s = jstr(m, "status");
		if (!s || strcmp(s, "ok") != 0)
			return base_error_set(BASE_EINVALID, "benchmark %s fails at the base commit: %.400s", jstr(m, "name"),
					     jstr(m, "error") ? jstr(m, "error") : s ? s : "?");
	}
	return 0;
}

/* The agent's part: tools, registration, task file, the command. */
static int run_agent(run *r)
{
	const base_config *cfg = r->svc->cfg;
	int error;
	if (cfg->agent && strcmp(cfg->agent, "command") != 0)
		return base_error_set(BASE_EINVALID, "PERFBOT_AGENT=%s is not available; use PERFBOT_AGENT=command", cfg->agent);
	if (!cfg->agent_command || !*cfg->agent_command)
		return base_error_set(BASE_EINVALID, "no agent is configured: set PERFBOT_AGENT_COMMAND");
	if (!r->svc->mcp || !r->svc->mcp_url || !*r->svc->mcp_url)
		return base_error_set(BASE_EINVALID, "no MCP endpoint is available for the agent");

	agent_run_hooks_options ro = AGENT_RUN_HOOKS_OPTIONS_INIT;
	ro.sandbox = r->svc->sandbox;
	ro.workspace = r->workspace;
	ro.scratch_dir = r->cg;
	ro.config = r->cfg;
	ro.baseline = r->baseline;
	ro.cancel = &r->cancel;
	if ((error = agent_run_hooks_new(&r->hooks, &ro)) < 0)
		return error;
	int max_minutes = r->cfg->optimize_max_minutes, max_runs = r->cfg->optimize_max_benchmark_runs;
	int max_calls = max_runs * AGENT_RUN_TOOL_CALLS_PER_BENCHMARK_RUN;
	if ((error = measure_repo_config_diff_policy(&r->policy, r->cfg)) < 0)
		return error;
	agent_tools_options to = AGENT_TOOLS_OPTIONS_INIT;
	to.policy = r->policy;
	to.workspace = r->workspace;
	to.repo_path = r->repo_path;
	to.base_commit = r->sha;
	agent_run_hooks_fill(&to.hooks, r->hooks);
	to.max_wall_ms = (int64_t)max_minutes * 60000;
	to.max_tool_calls = max_calls;
	to.max_benchmark_runs = max_runs;
	agent_tools *tools = NULL;
	if ((error = agent_tools_new(&tools, &to)) < 0)
		return error;
	pthread_mutex_lock(&r->lock);
	r->tools = tools;
	if (r->cancel)
		agent_tools_end(tools, "cancelled");
	pthread_mutex_unlock(&r->lock);

	agent_task_info ti = { .run_id = r->id, .repository = r->repository, .base_sha = r->sha, .config = r->cfg,
			       .baseline = r->baseline, .focus = r->focus, .max_minutes = max_minutes,
			       .max_benchmark_runs = max_runs, .max_tool_calls = max_calls, .top_functions = 10 };
	if ((error = agent_task_write(r->task, &ti)) < 0)
		return error;

	if (r->cancel) /* cancelled during the baseline: no agent at all */
		return BASE_ECANCELLED;
	/* what the command must not see: perfbot's state and secrets (the
	 * database's own files too when it lives outside DATA_DIR) */
	char cwd[PATH_MAX], dotenv[PATH_MAX + 8], wal[PATH_MAX + 8], shm[PATH_MAX + 8];
	const char *db = cfg->database_url;
	if (db && strncmp(db, "sqlite:", 7) == 0)
		db += 7;
	const char *hide[8];
	size_t nhide = 0;
	hide[nhide++] = cfg->data_dir;
	if (getcwd(cwd, sizeof(cwd))) {
		snprintf(dotenv, sizeof(dotenv), "%s/.env", cwd);
		hide[nhide++] = dotenv;
	}
	if (cfg->private_key_path)
		hide[nhide++] = cfg->private_key_path;
	if (db && *db) {
		snprintf(wal, sizeof(wal), "%s-wal", db);
		snprintf(shm, sizeof(shm), "%s-shm", db);
		hide[nhide++] = db;
		hide[nhide++] = wal;
		hide[nhide++] = shm;
	}
	hide[nhide] = NULL;

	char token[AGENT_TOKEN_LEN + 1];
	if ((error = agent_mcp_register_run(r->svc->mcp, r->id, tools, token)) < 0)
		return error;
	agent_cmd_options co = AGENT_CMD_OPTIONS_INIT;
	co.command = cfg->agent_command;
	co.mcp_url = r->svc->mcp_url;
	co.token = token;
	co.run_id = r->id;
	co.task_file = r->task;
	co.workdir = r->agent_dir;
	co.hide = hide;
	co.wall_ms = (int64_t)max_minutes * 60000;
	co.grace_ms = AGENT_GRACE_MS;
	co.cancel = &r->cancel;
	co.tools = tools;
	agent_cmd_result res;
	memset(&res, 0, sizeof(res));
	char ids[24];
	snprintf(ids, sizeof(ids), "%" PRId64, r->id);
	base_log(BASE_LOG_INFO, "agent started", "run", ids, "repository", r->repository, NULL);
	error = agent_cmd_run(&res, &co);
	memset(token, 0, sizeof(token));
	/* the token dies with the run's activity */
	agent_tools_end(tools, res.timed_out ? "the wall time budget is exhausted" : "the agent has exited");
	agent_mcp_unregister_run(r->svc->mcp, r->id);
	if (error < 0) {
		agent_cmd_result_dispose(&res);
		return error;
	}
	const char *out = res.output ? res.output : "";
	size_t olen = strlen(out);
	const char *tail = olen > OUTPUT_TAIL ? out + olen - OUTPUT_TAIL : out;
	r->agent_info = json_pack("{s:i,s:i,s:b,s:b,s:b,s:I,s:s,s:b}", "exit_code", res.exit_code, "signal",
				  res.term_signal, "timed_out", res.timed_out, "cancelled", res.cancelled, "stopped",
				  res.stopped, "wall_ms", (json_int_t)res.wall_ms, "output", tail, "output_cut",
				  res.output_cut || tail != out);
	if (!r->agent_info) /* output that is not UTF-8 */
		r->agent_info = json_pack("{s:i,s:b,s:I}", "exit_code", res.exit_code, "timed_out", res.timed_out, "wall_ms",
					  (json_int_t)res.wall_ms);
	r->budgets = agent_tools_usage(tools);

	char *why = NULL;
	if (agent_tools_submission(tools, &r->summary, &r->diff) == 0) {
		/* verified below */
	} else if (r->cancel) {
		set_outcome(r, "cancelled", "cancelled");
	} else if (res.timed_out) {
		set_outcome(r, "no_improvement", "the wall time budget (%d minutes) is exhausted before a change was submitted",
			    max_minutes);
	} else if (agent_tools_ended(tools, &why) && why && strstr(why, "budget")) {
		set_outcome(r, "no_improvement", "%s before a change was submitted", why);
	} else if (res.exit_code != 0) {
		char tailbuf[600];
		snprintf(tailbuf, sizeof(tailbuf), "%s", olen > 500 ? out + olen - 500 : out);
		set_outcome(r, "failed", "the agent exited with %s %d without submitting a change%s%s",
			    res.exit_code < 0 ? "signal" : "status", res.exit_code < 0 ? res.term_signal : res.exit_code,
			    *tailbuf ? ": " : "", tailbuf);
	} else {
		set_outcome(r, "no_improvement", "the agent ended without submitting a change");
	}
	free(why);
	agent_cmd_result_dispose(&res);
	return 0;
}

static int verify(run *r)
{
	if (!r->diff || !*r->diff) {
		set_outcome(r, "no_improvement", "the agent submitted no change");
		return 0;
	}
	/* the base goes through the same steps as the candidate, in a clean
	 * tree of its own: the agent's workspace has seen the agent's work */
	char *base = NULL, sha2[41];
	int error = measure_checkout_worktree(&base, sha2, &r->src, r->sha);
	if (error < 0)
		return error;
	agent_verify_options vo = AGENT_VERIFY_OPTIONS_INIT;
	vo.sandbox = r->svc->sandbox;
	vo.config = r->cfg;
	vo.repo_path = r->repo_path;
	vo.fresh_dir = r->fresh;
	vo.base_dir = base;
	vo.scratch_dir = r->cg;
	vo.diff = r->diff;
	vo.diff_len = strlen(r->diff);
	vo.summary = r->summary;
	vo.budgets = r->budgets;
	vo.cancel = &r->cancel;
	error = agent_verify(&r->verified, &vo);
	char msg[1024];
	snprintf(msg, sizeof(msg), "%s", base_error_last());
	measure_worktree_remove(r->svc->cfg->data_dir, base);
	free(base);
	if (error < 0)
		return base_error_set(error, "%s", msg);
	const char *st = jstr(r->verified, "status"), *why = jstr(r->verified, "reason");
	set_outcome(r, st ? st : "failed", "%s", why ? why : "verification gave no verdict");
	const json_t *m = json_object_get(r->verified, "measurement");
	if (m) {
		size_t i;
		json_t *b;
		json_array_foreach(json_object_get(m, "benchmarks"), i, b)
		{
			json_t *c = json_deep_copy(b);
			if (c) {
				json_object_set_new(c, "verified", json_true());
				if (store_measurement_put(r->svc->store, NULL, r->id, r->repository, NULL, jstr(b, "name"), c) < 0)
					base_log(BASE_LOG_WARN, "cannot store a measurement", "error", base_error_last(), NULL);
				json_decref(c);
			}
		}
	}
	return 0;
}

/* {"name","base","head","change_pct"} rows of the verification (borrowed doc). */
static json_t *short_table(const json_t *verified)
{
	static const char *const keys[] = { "name", "base", "head", "change_pct", NULL };
	return table_of(verified, keys);
}

/* ---- markdown for GitHub ---------------------------------------------------- */

static void md_number(base_buf *b, const json_t *v)
{
	if (json_is_integer(v))
		base_buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else if (json_is_real(v))
		base_buf_printf(b, "%.0f", json_real_value(v));
	else
		base_buf_puts(b, "—");
}

static void md_table(base_buf *b, const run *r)
{
	const json_t *rows = json_object_get(r->verified, "benchmarks");
	if (json_array_size(rows) == 0)
		return;
	base_buf_printf(b, "| benchmark | before | after | change | verdict |\n|---|---:|---:|---:|---|\n");
	size_t i;
	json_t *row;
	json_array_foreach(rows, i, row)
	{
		char pct[32];
		measure_bench_row_pct(pct, sizeof(pct), row, "—");
		base_buf_printf(b, "| `%s` | ", jstr(row, "name") ? jstr(row, "name") : "?");
		md_number(b, json_object_get(row, "base"));
		base_buf_puts(b, " | ");
		md_number(b, json_object_get(row, "head"));
		base_buf_printf(b, " | %s | %s |\n", pct, jstr(row, "verdict") ? jstr(row, "verdict") : "");
	}
	base_buf_printf(b, "\n%s, measured by perfbot under CPU simulation on a clean checkout of `%.7s` with the change.\n",
		       r->cfg && r->cfg->metric == MEASURE_METRIC_INSTRUCTIONS ? "Instructions" : "Estimated cycles", r->sha);
}

static void md_diff(base_buf *b, const char *diff, size_t cap, int64_t run_id)
{
	if (!diff || !*diff)
		return;
	size_t n = strlen(diff);
	size_t shown = n > cap ? cap : n;
	if (n > cap) /* cut at a line end */
		while (shown > 0 && diff[shown - 1] != '\n')
			shown--;
	/* the fence outgrows any backtick run of the diff: a changed line
	 * with ``` in it cannot close it */
	base_buf_puts(b, "\n");
	base_md_fence(b, "diff", diff, shown);
	if (shown < n)
		base_buf_printf(b, "\n*The diff is truncated: %zu of %zu bytes shown. `perfbot runs show %" PRId64
				  "` prints all of it.*\n",
			       shown, n, run_id);
}

static void md_summary(base_buf *b, const run *r, int for_comment)
{
	int proposal = !strcmp(r->status, "proposal");
	if (proposal) {
		base_buf_printf(b, "%s perfbot run %" PRId64 " found a verified speed-up of `%.7s`.\n\n",
			       for_comment ? "###" : "", r->id, r->sha);
	} else {
		base_buf_printf(b, "%sperfbot run %" PRId64 " ended without a verified improvement (%s): ",
			       for_comment ? "### " : "", r->id, r->status);
		/* the reason can quote the agent or the repository */
		base_md_text(b, r->reason, strlen(r->reason));
		base_buf_puts(b, ".\n\n");
	}
	md_table(b, r);
	if (r->summary && *r->summary) {
		/* the agent's words, shown as text: no mention, link, image or
		 * markup of its own */
		base_buf_puts(b, "\n**The agent's summary:** ");
		base_md_text(b, r->summary, base_utf8_cut(r->summary, strlen(r->summary), 2000));
		base_buf_puts(b, "\n");
	}
	if (proposal)
		base_buf_printf(b, "\nTo open a pull request with this change, press **Open pull request** on the "
				  "**" CHECK_NAME "** check run or comment `/perfbot apply %" PRId64 "`.\n",
			       r->id);
	const json_t *u = r->budgets;
	if (u)
		base_buf_printf(b, "\nBudgets used: %" PRId64 " tool calls, %" PRId64 " benchmark runs, %" PRId64 " s.\n",
			       jint(u, "tool_calls"), jint(u, "benchmark_runs"), jint(u, "wall_ms") / 1000);
}

static void check_title(char *buf, size_t n, const run *r)
{
	if (strcmp(r->status, "proposal") != 0) {
		snprintf(buf, n, "No improvement verified (%s)", r->status);
		return;
	}
	size_t i;
	json_t *row;
	json_array_foreach(json_object_get(r->verified, "benchmarks"), i, row)
	{
		const char *v = jstr(row, "verdict");
		json_t *c = json_object_get(row, "change_pct");
		if (v && !strcmp(v, "improved") && json_is_number(c)) {
			char pct[32];
			measure_bench_format_pct(pct, sizeof(pct), json_number_value(c));
			snprintf(buf, n, "Verified: %.60s %s", jstr(row, "name"), pct);
			return;
		}
	}
	snprintf(buf, n, "Verified speed-up");
}

static int split_repo(run *r)
{
	const char *slash = strchr(r->repository, '/');
	if (!slash || slash == r->repository || (size_t)(slash - r->repository) >= sizeof(r->owner) ||
	    strlen(slash + 1) >= sizeof(r->name))
		return base_error_set(BASE_EINVALID, "bad repository name \"%s\"", r->repository);
	memcpy(r->owner, r->repository, (size_t)(slash - r->repository));
	r->owner[slash - r->repository] = '\0';
	snprintf(r->name, sizeof(r->name), "%s", slash + 1);
	return 0;
}

static void check_run_start(run *r)
{
	char ext[24];
	snprintf(ext, sizeof(ext), "%" PRId64, r->id);
	json_t *body = json_pack("{s:s,s:s,s:s,s:s,s:{s:s,s:s}}", "name", CHECK_NAME, "head_sha", r->sha, "external_id",
				 ext, "status", "in_progress", "output", "title", "An agent is looking for a speed-up",
				 "summary", "perfbot measures the baseline, lets an agent work in the sandbox, then "
					    "verifies its change on a clean checkout.");
	if (!body)
		return;
	if (gh_create_check_run(r->svc->gh, r->inst, r->owner, r->name, body, &r->check_run_id) < 0) {
		base_log(BASE_LOG_WARN, "cannot create the optimize check run", "repository", r->repository, "error",
			base_error_last(), NULL);
		r->check_run_id = 0;
	}
	json_decref(body);
	if (r->check_run_id) {
		json_t *upd = json_pack("{s:I}", "check_run_id", (json_int_t)r->check_run_id);
		if (upd)
			store_run_update(r->svc->store, r->id, upd);
		json_decref(upd);
	}
}

static void publish(run *r)
{
	int proposal = !strcmp(r->status, "proposal");
	base_buf summary = BASE_BUF_INIT(60000), text = BASE_BUF_INIT(65000);
	char title[200], ext[24];
	md_summary(&summary, r, 0);
	if (r->diff && (proposal || jstr(r->verified, "status")))
		md_diff(&text, r->diff, DIFF_SHOWN, r->id);
	if (r->verified && jstr(r->verified, "log")) {
		const char *log = jstr(r->verified, "log");
		base_buf_puts(&text, "\n<details><summary>Verification log</summary>\n\n");
		base_md_fence(&text, NULL, log, base_utf8_cut(log, strlen(log), 8000));
		base_buf_puts(&text, "</details>\n");
	}
	check_title(title, sizeof(title), r);
	snprintf(ext, sizeof(ext), "%" PRId64, r->id);
	const char *conclusion = !strcmp(r->status, "failed") ? "failure" : "neutral";
	json_t *body = json_pack("{s:s,s:s,s:s,s:s,s:s,s:{s:s,s:s,s:s}}", "name", CHECK_NAME, "head_sha", r->sha,
				 "external_id", ext, "status", "completed", "conclusion", conclusion, "output", "title",
				 title, "summary", base_buf_cstr(&summary), "text", base_buf_cstr(&text));
	if (body && proposal)
		json_object_set_new(body, "actions",
				    json_pack("[{s:s,s:s,s:s}]", "label", "Open pull request", "description",
					      "Push a branch and open a pull request", "identifier", "open-pr"));
	else if (body)
		json_object_set_new(body, "actions", json_array());
	int error = -1;
	if (body && r->check_run_id)
		error = gh_update_check_run(r->svc->gh, r->inst, r->owner, r->name, r->check_run_id, body);
	if (body && error < 0) {
		r->check_run_id = 0;
		error = gh_create_check_run(r->svc->gh, r->inst, r->owner, r->name, body, &r->check_run_id);
	}
	if (error < 0)
		base_log(BASE_LOG_WARN, "cannot publish the optimize check run", "repository", r->repository, "error",
			base_error_last(), NULL);
	json_decref(body);

	if (r->thread_number > 0) {
		base_buf c = BASE_BUF_INIT(60000);
		md_summary(&c, r, 1);
		if (proposal)
			md_diff(&c, r->diff, COMMENT_DIFF, r->id);
		int64_t cid = 0;
		if (gh_create_comment(r->svc->gh, r->inst, r->owner, r->name, r->thread_number, base_buf_cstr(&c), &cid) < 0)
			base_log(BASE_LOG_WARN, "cannot comment the agent run's outcome", "repository", r->repository, "error",
				base_error_last(), NULL);
		base_buf_dispose(&c);
		json_t *upd = json_pack("{s:I,s:I}", "check_run_id", (json_int_t)r->check_run_id, "comment_id",
					(json_int_t)cid);
		if (upd)
			store_run_update(r->svc->store, r->id, upd);
		json_decref(upd);
	} else if (r->check_run_id) {
		json_t *upd = json_pack("{s:I}", "check_run_id", (json_int_t)r->check_run_id);
		if (upd)
			store_run_update(r->svc->store, r->id, upd);
		json_decref(upd);
	}
	base_buf_dispose(&summary);
	base_buf_dispose(&text);
}

/* Publishes the outcome on GitHub, then marks the run reported: the state is
 * recorded first (so that an approval right after the comment is accepted),
 * "reported" tells watchers that the check run and the comment are out. */
static void surface(run *r)
{
	if (!r->svc->gh)
		return;
	if (r->sha[0])
		publish(r);
	json_t *upd = json_pack("{s:b}", "reported", 1);
	if (upd && store_run_update(r->svc->store, r->id, upd) < 0)
		base_log(BASE_LOG_WARN, "cannot record that the run was reported", "error", base_error_last(), NULL);
	json_decref(upd);
}

/* ---- recording the end -------------------------------------------------- */

static void record(run *r)
{
	store *st = r->svc->store;
	const char *branch = jstr(r->row, "branch");
	if (!strcmp(r->status, "proposal")) {
		json_t *p = json_pack("{s:s,s:s?,s:s?,s:O,s:s,s:s?,s:s,s:s?,s:O?,s:b}", "diff", r->diff, "summary", r->summary,
				      "test_command", r->cfg ? r->cfg->test : NULL, "benchmarks",
				      json_object_get(r->verified, "benchmarks"), "base_sha", r->sha, "base_branch", branch,
				      "metric", r->cfg && r->cfg->metric == MEASURE_METRIC_INSTRUCTIONS ? "instructions" : "cycles",
				      "verification_log", jstr(r->verified, "log"), "budgets", r->budgets, "fork",
				      json_is_true(json_object_get(json_object_get(r->row, "data"), "fork")));
		if (!p || store_proposal_put(st, r->id, p) < 0) {
			set_outcome(r, "failed", "the proposal could not be stored: %s", p ? base_error_last() : "out of memory");
		}
		json_decref(p);
	}
	r->t_end = base_wall_ms();
	json_t *timings = json_pack("{s:I,s:I,s:I,s:I,s:I}", "started_ms", (json_int_t)r->t_start, "baseline_ms",
				    (json_int_t)(r->t_baseline ? r->t_baseline - r->t_start : 0), "agent_ms",
				    (json_int_t)r->t_agent, "verify_ms", (json_int_t)r->t_verify, "total_ms",
				    (json_int_t)(r->t_end - r->t_start));
	json_t *outcome = json_pack("{s:s,s:s,s:o,s:s?}", "status", r->status, "reason", r->reason, "benchmarks",
				    short_table(r->verified), "summary", r->summary);
	json_t *upd = json_pack("{s:o?,s:o?,s:s,s:O?,s:O?,s:s?,s:b}", "outcome", outcome, "timings", timings, "commit",
				r->sha, "budgets", r->budgets, "agent", r->agent_info, "verification_log",
				jstr(r->verified, "log"), "refused", json_is_true(json_object_get(r->verified, "refused")));
	if (upd && store_run_update(st, r->id, upd) < 0)
		base_log(BASE_LOG_WARN, "cannot record the run's outcome", "error", base_error_last(), NULL);
	json_decref(upd);
	/* a cancel recorded in the store keeps its own reason (who cancelled);
	 * one that lands now, after the last look, wins over this end */
	if (!(r->cancelled_in_store && !strcmp(r->status, "cancelled"))) {
		int e = store_run_set_state_from(st, r->id, STORE_RUN_IN(STORE_RUN_QUEUED) | STORE_RUN_IN(STORE_RUN_RUNNING), store_run_state_parse(r->status), r->reason);
		if (e == BASE_EEXISTS) {
			r->cancelled_in_store = 1;
			set_outcome(r, "cancelled", "cancelled");
		} else if (e < 0) {
			base_log(BASE_LOG_WARN, "cannot record the run's state", "error", base_error_last(), NULL);
		}
	}
	char ids[24];
	snprintf(ids, sizeof(ids), "%" PRId64, r->id);
	base_log(BASE_LOG_INFO, "agent run ended", "run", ids, "status", r->status, "reason", r->reason, NULL);
}

/* ---- the run from start to end --------------------------------------------- */

static void execute(run *r)
{
	int error = 0;
	const char *step = "";
	r->t_start = base_wall_ms();
	const json_t *d = json_object_get(r->row, "data");
	r->repository = jstr(r->row, "repository");
	r->local_path = jstr(d, "local_path");
	r->inst = jint(r->row, "installation_id");
	r->thread_number = (int)jint(d, "thread_number");
	r->src.data_dir = r->svc->cfg->data_dir;
	if (r->local_path) {
		r->src.local_path = r->local_path;
		snprintf(r->repo_path, sizeof(r->repo_path), "%s", r->local_path);
	} else {
		r->src.repository = r->repository;
		r->src.url = jstr(d, "clone_url");
		if (r->svc->gh) {
			r->src.token_cb = token_cb;
			r->src.token_payload = r;
		}
		snprintf(r->repo_path, sizeof(r->repo_path), "%s/repos/%s.git", r->svc->cfg->data_dir, r->repository);
		if (r->svc->gh && (error = split_repo(r)) < 0) {
			step = "repository";
			goto fail;
		}
	}
	const json_t *names = json_object_get(d, "benchmarks");
	if (json_array_size(names) > 0) {
		r->focus = calloc(json_array_size(names) + 1, sizeof(*r->focus));
		size_t i, k = 0;
		json_t *v;
		json_array_foreach(names, i, v) if (r->focus && json_is_string(v)) r->focus[k++] = json_string_value(v);
	}

	step = "fetch";
	if ((error = resolve_commit(r)) < 0)
		goto fail;
	json_t *upd = json_pack("{s:s}", "commit", r->sha);
	if (upd)
		store_run_update(r->svc->store, r->id, upd);
	json_decref(upd);
	if (r->svc->gh)
		check_run_start(r);
	step = "configuration";
	if ((error = load_config(r)) < 0)
		goto fail;
	step = "sandbox";
	if (!r->svc->sandbox) {
		error = base_error_set(BASE_EINVALID, "the sandbox is unavailable on this server (bwrap could not start)");
		goto fail;
	}
	step = "work trees";
	char sha2[41];
	if ((error = make_dirs(r)) < 0 || (error = measure_checkout_worktree(&r->workspace, sha2, &r->src, r->sha)) < 0 ||
	    (error = measure_checkout_worktree(&r->fresh, sha2, &r->src, r->sha)) < 0)
		goto fail;
	step = "sandbox";
	if ((error = measure_sandbox_prepare_dir(r->svc->sandbox, r->workspace)) < 0 ||
	    (error = measure_sandbox_prepare_dir(r->svc->sandbox, r->cg)) < 0)
		goto fail;
	step = "baseline";
	error = measure_baseline(r);
	r->t_baseline = base_wall_ms();
	if (error < 0)
		goto fail;
	step = "agent";
	int64_t t = base_wall_ms();
	error = run_agent(r);
	r->t_agent = base_wall_ms() - t;
	if (error < 0)
		goto fail;
	if (!r->status[0]) {
		step = "verification";
		t = base_wall_ms();
		error = verify(r);
		r->t_verify = base_wall_ms() - t;
		if (error < 0)
			goto fail;
	}
	if (r->cancel)
		set_outcome(r, "cancelled", r->interrupted ? "interrupted: perfbot was shutting down" : "cancelled");
	return;
fail:
	if (r->cancel || error == BASE_ECANCELLED)
		set_outcome(r, "cancelled", r->interrupted ? "interrupted: perfbot was shutting down" : "cancelled");
	else
		set_outcome(r, "failed", "%s: %s", step, base_error_last());
}

static void run_dispose(run *r)
{
	measure_run_watch_stop(r->watch);
	r->watch = NULL;
	pthread_mutex_destroy(&r->lock);
	const char *dd = r->svc->cfg->data_dir;
	if (r->workspace)
		measure_worktree_remove(dd, r->workspace);
	if (r->fresh)
		measure_worktree_remove(dd, r->fresh);
	if (r->rundir)
		measure_worktree_remove(dd, r->rundir);
	free(r->workspace);
	free(r->fresh);
	free(r->rundir);
	agent_tools_free(r->tools);
	free(r->policy);
	agent_run_hooks_free(r->hooks);
	measure_repo_config_free(r->cfg);
	json_decref(r->baseline);
	json_decref(r->verified);
	json_decref(r->budgets);
	json_decref(r->agent_info);
	json_decref(r->row);
	free(r->summary);
	free(r->diff);
	free(r->focus);
}

static int run_init(run *r, const agent_services *svc, int64_t id)
{
	memset(r, 0, sizeof(*r));
	r->svc = svc;
	r->id = id;
	pthread_mutex_init(&r->lock, NULL);
	return store_run_get(svc->store, id, &r->row);
}

static void run_start_watch(run *r)
{
	static const char *const stop_states[] = { "cancelled", NULL };
	measure_run_watch_options o = { .store = r->svc->store, .run_id = r->id, .states = stop_states,
				      .stopping = r->stopping, .ext_cancel = r->ext_cancel, .period_ms = WATCH_MS,
				      .fn = on_watch, .payload = r };
	measure_run_watch_start(&r->watch, &o);
}

/* Runs r to its end and records it; the caller disposes r. */
static void run_all(run *r)
{
	run_start_watch(r);
	execute(r);
	/* the watcher may not touch the tools any more */
	measure_run_watch_stop(r->watch);
	r->watch = NULL;
	if (!r->cancelled_in_store) { /* a cancel that came while the run was ending */
		json_t *row = NULL;
		if (store_run_get(r->svc->store, r->id, &row) == 0 && jstr(row, "state") &&
		    !strcmp(jstr(row, "state"), "cancelled") && strcmp(r->status, "proposal") != 0) {
			r->cancelled_in_store = 1;
			set_outcome(r, "cancelled", "cancelled");
		}
		json_decref(row);
	}
	record(r);
	surface(r);
}

static int on_agent_run(store_job_ctx *ctx, void *payload)
{
	agent_services *svc = payload;
	json_t *p = json_loads(ctx->job->payload, 0, NULL);
	int64_t id = jint(p, "run_id");
	json_decref(p);
	if (id <= 0)
		return base_error_set(BASE_EINVALID, "agent.run job without a run_id");
	run r;
	int error = run_init(&r, svc, id);
	if (error < 0) {
		run_dispose(&r);
		return error;
	}
	const char *state = jstr(r.row, "state");
	if (is_end_state(state)) {
		snprintf(ctx->note, sizeof(ctx->note), "run %" PRId64 " is %s: nothing to do", id, state);
		run_dispose(&r);
		return 0;
	}
	/* a cancel or a newer push may have ended it since it was read */
	if ((error = store_run_set_state_from(svc->store, id, STORE_RUN_IN(STORE_RUN_QUEUED) | STORE_RUN_IN(STORE_RUN_RUNNING), STORE_RUN_RUNNING, NULL)) < 0) {
		run_dispose(&r);
		if (error != BASE_EEXISTS)
			return error;
		snprintf(ctx->note, sizeof(ctx->note), "%s: nothing to do", base_error_last());
		return 0;
	}
	r.stopping = ctx->stopping;
	run_all(&r);
	snprintf(ctx->note, sizeof(ctx->note), "run %" PRId64 ": %s", id, r.status);
	run_dispose(&r);
	return 0;
}

int agent_run_jobs_register(store_workers *w, agent_services *svc)
{
	return store_workers_register_bench(w, "agent.run", on_agent_run, svc);
}

/* ---- the local CLI ------------------------------------------------------------ */

int agent_run_local(json_t **out, const agent_services *svc, const agent_run_local_options *o)
{
	char abs[PATH_MAX];
	*out = NULL;
	if (!o->repo_path || !realpath(o->repo_path, abs))
		return base_error_set(BASE_ENOTFOUND, "repository %s: %s", o->repo_path ? o->repo_path : "(none)",
				     strerror(errno));
	char sha[41];
	measure_checkout_source src = { .data_dir = svc->cfg->data_dir, .local_path = abs };
	int error = measure_checkout_fetch(sha, &src, o->rev ? o->rev : "HEAD");
	if (error < 0)
		return error;
	agent_run_request req = { .repository = abs, .commit = sha, .branch = NULL, .trigger = "cli",
				  .requested_by = getenv("USER"), .benchmarks = o->benchmarks, .nbenchmarks = o->nbenchmarks };
	int64_t id = 0;
	if ((error = create_run(&id, svc, &req, abs)) < 0)
		return error;
	run r;
	if ((error = run_init(&r, svc, id)) < 0) {
		run_dispose(&r);
		return error;
	}
	store_run_set_state(svc->store, id, STORE_RUN_RUNNING, NULL);
	r.ext_cancel = o->cancel;
	run_all(&r);
	json_t *doc = json_pack("{s:I,s:s,s:s,s:o,s:s,s:s}", "run", (json_int_t)id, "status", r.status, "reason", r.reason,
				"benchmarks", short_table(r.verified), "summary", r.summary ? r.summary : "", "diff",
				r.diff ? r.diff : "");
	if (doc)
		json_object_set_new(doc, "commit", json_string(r.sha));
	run_dispose(&r);
	if (!doc)
		return base_error_set(BASE_ENOMEM, "out of memory");
	*out = doc;
	return 0;
}
