/* One agent run from its job to its end.
 *
 * A run goes: fetch (the installation token exists only in the credential
 * callback) → configuration at the commit → two work trees (the agent's
 * workspace and a fresh one for verification) → sandbox → baseline
 * measurement (stored) → the agent step (run_backend.c) → verification of
 * the submission → the proposal or an end state with its reason, the
 * budgets used and the timings (from the services' clock) → the check run
 * and the comment (run_github.c).  Run states: queued, running, then
 * proposal | no_improvement | failed | cancelled.
 *
 * Cancellation: agent_run_cancel writes "cancelled" to the store; the run's
 * watcher thread, polling the store, raises the cancel flag, which kills the
 * agent's process group and the sandbox commands.  A shutdown or the CLI's
 * own flag does the same.
 *
 * Threading: each run is owned by the thread that executes it plus its
 * watcher; the watcher touches only the cancel flag and the tool context,
 * under the run's lock. */
#include "agent/run_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agent/verify.h"
#include "base/error.h"
#include "base/json.h"
#include "base/log.h"
#include "measure/bench.h"

void agent_run_set_outcome(agent_run *r, store_run_state state, const char *fmt, ...)
{
	r->state = state;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
	va_end(ap);
}

static int64_t now_ms(const agent_run *r)
{
	return agent_run_now_ms(r->svc);
}

/* Called once on the watcher's thread: a cancel (stored, or raised by the
 * CLI) or a shutdown ends the tools, and through r->cancel the agent
 * command and the sandbox commands. */
static void on_watch(measure_watch_cause cause, const char *reason, void *payload)
{
	agent_run *r = payload;
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
	agent_run *r = payload;
	return r->gh->git_token(buf, size, r->inst, r->gh->payload);
}

/* A fetch of rev; once more with a new token when git refused the cached one. */
static int fetch(agent_run *r, const char *rev)
{
	int error = measure_checkout_fetch(r->sha, &r->src, rev);
	if (error == BASE_EAUTH && r->gh && r->gh->git_token_invalidate) {
		r->gh->git_token_invalidate(r->inst, r->gh->payload);
		error = measure_checkout_fetch(r->sha, &r->src, rev);
	}
	return error;
}

/* The commit: the requested one, or the branch tip after a fresh fetch. */
static int resolve_commit(agent_run *r)
{
	const json_t *d = json_object_get(r->row, "data");
	const char *commit = base_json_str(d, "commit"), *branch = base_json_str(r->row, "branch");
	const char *rev = commit ? commit : branch;
	if (!rev)
		return base_error_set(BASE_EINVALID, "the run names neither a commit nor a branch");
	if (!commit && !r->local_path) {
		/* a name that never resolves forces a fetch of every branch, so a
		 * cached branch is never stale */
		int error = fetch(r, "refs/perfbot/refresh-branches");
		if (error < 0 && error != BASE_ENOTFOUND)
			return error;
	}
	return fetch(r, rev);
}

static int load_config(agent_run *r)
{
	char *yml = NULL;
	size_t len = 0;
	int error = measure_checkout_read_file(&yml, &len, &r->src, r->sha, MEASURE_REPO_CONFIG_PATH,
					       MEASURE_REPO_CONFIG_MAX);
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

static int make_dirs(agent_run *r)
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

/* Merges a small document into the run's; a failure only loses that record. */
static void update_run(agent_run *r, json_t *upd)
{
	if (upd)
		store_run_update(r->svc->store, r->id, upd);
	json_decref(upd);
}

/* ---- baseline --------------------------------------------------------------- */

static void store_measurements(agent_run *r, const json_t *doc)
{
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(doc, "benchmarks"), i, m)
	{
		if (store_measurement_put(r->svc->store, NULL, r->id, r->repository, r->sha, base_json_str(m, "name"), m) < 0)
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

json_t *agent_run_short_table(const json_t *verified)
{
	static const char *const keys[] = { "name", "base", "head", "change_pct", NULL };
	return table_of(verified, keys);
}

/* The base commit must build and every benchmark pass there, or nothing
 * the agent does can be compared.  (Statuses of measure/'s document.) */
static int baseline_usable(const json_t *baseline)
{
	const json_t *build = json_object_get(baseline, "build");
	const char *bs = base_json_str(build, "status");
	if (bs && (!strcmp(bs, "failed") || !strcmp(bs, "timeout"))) {
		const char *tail = base_json_str(build, "output_tail");
		return base_error_set(BASE_EINVALID, "the base commit does not build (%s)%s%.600s", bs, tail ? ": " : "",
				      tail ? tail : "");
	}
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(baseline, "benchmarks"), i, m)
	{
		const char *s = base_json_str(m, "status");
		if (!s || strcmp(s, "ok") != 0)
			return base_error_set(BASE_EINVALID, "benchmark %s fails at the base commit: %.400s",
					      base_json_str(m, "name"),
					      base_json_str(m, "error") ? base_json_str(m, "error") : s ? s : "?");
	}
	return 0;
}

static int measure_baseline(agent_run *r)
{
	measure_bench_options bo = MEASURE_BENCH_OPTIONS_INIT;
	bo.commit = r->sha;
	bo.scratch_dir = r->cg;
	bo.cancel = &r->cancel;
	int error = measure_bench_measure(&r->baseline, r->svc->sandbox, r->workspace, r->cfg, &bo);
	if (error < 0)
		return error;
	store_measurements(r, r->baseline);
	update_run(r, json_pack("{s:o}", "baseline", baseline_table(r->baseline)));
	if (r->cancel)
		return BASE_ECANCELLED;
	return baseline_usable(r->baseline);
}

/* ---- verification ------------------------------------------------------------ */

/* The verified measurements join the run's (marked "verified"). */
static void store_verified(agent_run *r)
{
	const json_t *m = json_object_get(r->verified, "measurement");
	size_t i;
	json_t *b;
	json_array_foreach(json_object_get(m, "benchmarks"), i, b)
	{
		json_t *c = json_deep_copy(b);
		if (!c)
			continue;
		json_object_set_new(c, "verified", json_true());
		if (store_measurement_put(r->svc->store, NULL, r->id, r->repository, NULL, base_json_str(b, "name"), c) < 0)
			base_log(BASE_LOG_WARN, "cannot store a measurement", "error", base_error_last(), NULL);
		json_decref(c);
	}
}

static int verify(agent_run *r)
{
	if (!r->diff || !*r->diff) {
		agent_run_set_outcome(r, STORE_RUN_NO_IMPROVEMENT, "the agent submitted no change");
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
	/* the verdict is verification's document; its status names a run state */
	store_run_state st = store_run_state_parse(base_json_str(r->verified, "status"));
	const char *why = base_json_str(r->verified, "reason");
	agent_run_set_outcome(r, st != STORE_RUN_UNKNOWN ? st : STORE_RUN_FAILED, "%s",
			      why ? why : "verification gave no verdict");
	store_verified(r);
	return 0;
}

/* ---- recording the end ------------------------------------------------------ */

static void store_proposal(agent_run *r)
{
	const json_t *d = json_object_get(r->row, "data");
	json_t *p = json_pack("{s:s,s:s?,s:s?,s:O,s:s,s:s?,s:s,s:s?,s:O?,s:b}", "diff", r->diff, "summary", r->summary,
			      "test_command", r->cfg ? r->cfg->test : NULL, "benchmarks",
			      json_object_get(r->verified, "benchmarks"), "base_sha", r->sha, "base_branch",
			      base_json_str(r->row, "branch"), "metric",
			      r->cfg && r->cfg->metric == MEASURE_METRIC_INSTRUCTIONS ? "instructions" : "cycles",
			      "verification_log", base_json_str(r->verified, "log"), "budgets", r->budgets, "fork",
			      json_is_true(json_object_get(d, "fork")));
	if (!p || store_proposal_put(r->svc->store, r->id, p) < 0)
		agent_run_set_outcome(r, STORE_RUN_FAILED, "the proposal could not be stored: %s",
				      p ? base_error_last() : "out of memory");
	json_decref(p);
}

static void record(agent_run *r)
{
	store *st = r->svc->store;
	if (r->state == STORE_RUN_PROPOSAL)
		store_proposal(r);
	r->t_end = now_ms(r);
	json_t *timings = json_pack("{s:I,s:I,s:I,s:I,s:I}", "started_ms", (json_int_t)r->t_start, "baseline_ms",
				    (json_int_t)(r->t_baseline ? r->t_baseline - r->t_start : 0), "agent_ms",
				    (json_int_t)r->t_agent, "verify_ms", (json_int_t)r->t_verify, "total_ms",
				    (json_int_t)(r->t_end - r->t_start));
	json_t *outcome = json_pack("{s:s,s:s,s:o,s:s?}", "status", store_run_state_name(r->state), "reason", r->reason,
				    "benchmarks", agent_run_short_table(r->verified), "summary", r->summary);
	json_t *upd = json_pack("{s:o?,s:o?,s:s,s:O?,s:O?,s:s?,s:b}", "outcome", outcome, "timings", timings, "commit",
				r->sha, "budgets", r->budgets, "agent", r->agent_info, "verification_log",
				base_json_str(r->verified, "log"),
				"refused", json_is_true(json_object_get(r->verified, "refused")));
	if (upd && store_run_update(st, r->id, upd) < 0)
		base_log(BASE_LOG_WARN, "cannot record the run's outcome", "error", base_error_last(), NULL);
	json_decref(upd);
	/* a cancel recorded in the store keeps its own reason (who cancelled);
	 * one that lands now, after the last look, wins over this end */
	if (!(r->cancelled_in_store && r->state == STORE_RUN_CANCELLED)) {
		int e = store_run_set_state_from(st, r->id, STORE_RUN_IN(STORE_RUN_QUEUED) | STORE_RUN_IN(STORE_RUN_RUNNING),
						 r->state, r->reason);
		if (e == BASE_EEXISTS) {
			r->cancelled_in_store = 1;
			agent_run_set_outcome(r, STORE_RUN_CANCELLED, "cancelled");
		} else if (e < 0) {
			base_log(BASE_LOG_WARN, "cannot record the run's state", "error", base_error_last(), NULL);
		}
	}
	char ids[24];
	snprintf(ids, sizeof(ids), "%" PRId64, r->id);
	base_log(BASE_LOG_INFO, "agent run ended", "run", ids, "status", store_run_state_name(r->state), "reason",
		 r->reason, NULL);
}

/* ---- the run from start to end ---------------------------------------------- */

/* Where the run's commit comes from: the local repository, or the clone
 * URL with the installation's token; and the benchmarks it focuses on. */
static int run_source(agent_run *r)
{
	const json_t *d = json_object_get(r->row, "data");
	r->repository = base_json_str(r->row, "repository");
	r->local_path = base_json_str(d, "local_path");
	r->inst = base_json_int(r->row, "installation_id");
	r->thread_number = (int)base_json_int(d, "thread_number");
	r->src.data_dir = r->svc->cfg->data_dir;
	if (r->local_path) {
		r->src.local_path = r->local_path;
		snprintf(r->repo_path, sizeof(r->repo_path), "%s", r->local_path);
	} else {
		r->src.repository = r->repository;
		r->src.url = base_json_str(d, "clone_url");
		if (r->gh && r->gh->git_token) {
			r->src.token_cb = token_cb;
			r->src.token_payload = r;
		}
		snprintf(r->repo_path, sizeof(r->repo_path), "%s/repos/%s.git", r->svc->cfg->data_dir, r->repository);
		char owner[GH_NAME_MAX], name[GH_NAME_MAX];
		if (r->gh && gh_repo_split(owner, name, r->repository ? r->repository : "") < 0)
			return base_error_set(BASE_EINVALID, "bad repository name \"%s\"",
					      r->repository ? r->repository : "");
	}
	const json_t *names = json_object_get(d, "benchmarks");
	if (json_array_size(names) > 0) {
		r->focus = calloc(json_array_size(names) + 1, sizeof(*r->focus));
		size_t i, k = 0;
		json_t *v;
		json_array_foreach(names, i, v) if (r->focus && json_is_string(v)) r->focus[k++] = json_string_value(v);
	}
	return 0;
}

/* Everything before the baseline: the commit, the check run, the
 * configuration, the work trees and the sandbox.  *step names the failing one. */
static int prepare(agent_run *r, const char **step)
{
	int error;
	*step = "fetch";
	if ((error = resolve_commit(r)) < 0)
		return error;
	update_run(r, json_pack("{s:s}", "commit", r->sha));
	if (r->gh)
		agent_run_check_start(r);
	*step = "configuration";
	if ((error = load_config(r)) < 0)
		return error;
	*step = "sandbox";
	if (!r->svc->sandbox)
		return base_error_set(BASE_EINVALID, "the sandbox is unavailable on this server (bwrap could not start)");
	*step = "work trees";
	char sha2[41];
	if ((error = make_dirs(r)) < 0 || (error = measure_checkout_worktree(&r->workspace, sha2, &r->src, r->sha)) < 0 ||
	    (error = measure_checkout_worktree(&r->fresh, sha2, &r->src, r->sha)) < 0)
		return error;
	*step = "sandbox";
	if ((error = measure_sandbox_prepare_dir(r->svc->sandbox, r->workspace)) < 0 ||
	    (error = measure_sandbox_prepare_dir(r->svc->sandbox, r->cg)) < 0)
		return error;
	return 0;
}

static void execute(agent_run *r)
{
	const char *step = "repository";
	int error;
	r->t_start = now_ms(r);
	if ((error = run_source(r)) < 0 || (error = prepare(r, &step)) < 0)
		goto fail;
	step = "baseline";
	error = measure_baseline(r);
	r->t_baseline = now_ms(r);
	if (error < 0)
		goto fail;
	step = "agent";
	int64_t t = now_ms(r);
	error = agent_run_backend(r);
	r->t_agent = now_ms(r) - t;
	if (error < 0)
		goto fail;
	if (r->state == STORE_RUN_UNKNOWN) {
		step = "verification";
		t = now_ms(r);
		error = verify(r);
		r->t_verify = now_ms(r) - t;
		if (error < 0)
			goto fail;
	}
	if (r->cancel)
		agent_run_set_outcome(r, STORE_RUN_CANCELLED, "%s",
				      r->interrupted ? "interrupted: perfbot was shutting down" : "cancelled");
	return;
fail:
	if (r->cancel || error == BASE_ECANCELLED)
		agent_run_set_outcome(r, STORE_RUN_CANCELLED, "%s",
				      r->interrupted ? "interrupted: perfbot was shutting down" : "cancelled");
	else
		agent_run_set_outcome(r, STORE_RUN_FAILED, "%s: %s", step, base_error_last());
}

void agent_run_dispose(agent_run *r)
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
	json_decref(r->managed);
	json_decref(r->row);
	free(r->summary);
	free(r->diff);
	free(r->focus);
}

int agent_run_init(agent_run *r, const agent_services *svc, int64_t id)
{
	memset(r, 0, sizeof(*r));
	r->svc = svc;
	r->id = id;
	if (svc->github) {
		r->gh = svc->github;
	} else if (svc->gh) {
		agent_github_adapter_init(&r->gh_adapter, svc->gh);
		r->gh = &r->gh_adapter;
	}
	pthread_mutex_init(&r->lock, NULL);
	return store_run_get(svc->store, id, &r->row);
}

static void start_watch(agent_run *r)
{
	measure_run_watch_options o = { .store = r->svc->store, .run_id = r->id,
					.state_set = STORE_RUN_IN(STORE_RUN_CANCELLED),
					.stopping = r->stopping, .ext_cancel = r->ext_cancel,
					.period_ms = AGENT_RUN_WATCH_MS, .fn = on_watch, .payload = r };
	measure_run_watch_start(&r->watch, &o);
}

void agent_run_all(agent_run *r)
{
	start_watch(r);
	execute(r);
	/* the watcher may not touch the tools any more */
	measure_run_watch_stop(r->watch);
	r->watch = NULL;
	if (!r->cancelled_in_store) { /* a cancel that came while the run was ending */
		json_t *row = NULL;
		if (store_run_get(r->svc->store, r->id, &row) == 0 && store_run_state_of(row) == STORE_RUN_CANCELLED &&
		    r->state != STORE_RUN_PROPOSAL) {
			r->cancelled_in_store = 1;
			agent_run_set_outcome(r, STORE_RUN_CANCELLED, "cancelled");
		}
		json_decref(row);
	}
	record(r);
	agent_run_surface(r);
}

/* The run was running when its job was claimed again: the replica that ran
 * it stopped (killed, lost its job lease).  A managed run's session lived
 * with that replica's worker (its workspace, its tool calls half done): the
 * run ends failed and the session is archived, never served half again nor
 * replaced by a second one.  0 when the run is not such a run. */
static int end_orphan(agent_run *r)
{
	const json_t *d = json_object_get(r->row, "data");
	const json_t *mg = json_object_get(d, "managed");
	const char *sid = base_json_str(mg, "session_id");
	if (store_run_state_of(r->row) != STORE_RUN_RUNNING || !sid || !*sid)
		return 0;
	char ids[24];
	snprintf(ids, sizeof(ids), "%" PRId64, r->id);
	base_log(BASE_LOG_WARN, "agent run found running when its job was claimed again: the replica serving it stopped",
		 "run", ids, "session", sid, NULL);
	r->t_start = now_ms(r);
	if (run_source(r) < 0)
		base_log(BASE_LOG_WARN, "agent run's source unreadable", "run", ids, "error", base_error_last(), NULL);
	const char *sha = base_json_str(d, "commit");
	if (sha && strlen(sha) < sizeof(r->sha))
		snprintf(r->sha, sizeof(r->sha), "%s", sha);
	r->check_run_id = base_json_int(d, "check_run_id");
	agent_run_managed_abandon(r, sid);
	json_t *upd = json_pack("{s:{s:s}}", "managed", "end", "replica_stopped");
	if (upd)
		store_run_update(r->svc->store, r->id, upd);
	json_decref(upd);
	r->agent_info = json_pack("{s:s,s:s,s:s}", "backend", "managed", "session_id", sid, "end", "replica_stopped");
	const char *was = base_json_str(json_object_get(d, "replica"), "owner");
	agent_run_set_outcome(r, STORE_RUN_FAILED,
			      "the replica serving the run stopped%s%s%s before it ended: its agent session %s was archived, "
			      "nothing proposed",
			      was ? " (" : "", was ? was : "", was ? ")" : "", sid);
	record(r);
	agent_run_surface(r);
	return 1;
}

int agent_run_job(store_job_ctx *ctx, void *payload)
{
	agent_services *svc = payload;
	json_t *p = json_loads(ctx->job->payload, 0, NULL);
	int64_t id = base_json_int(p, "run_id");
	json_decref(p);
	if (id <= 0)
		return base_error_set(BASE_EINVALID, AGENT_RUN_JOB_KIND " job without a run_id");
	agent_run r;
	int error = agent_run_init(&r, svc, id);
	if (error < 0) {
		agent_run_dispose(&r);
		return error;
	}
	store_run_state state = store_run_state_of(r.row);
	if (state != STORE_RUN_UNKNOWN && !store_run_state_active(state)) {
		snprintf(ctx->note, sizeof(ctx->note), "run %" PRId64 " is %s: nothing to do", id,
			 base_json_str(r.row, "state"));
		agent_run_dispose(&r);
		return 0;
	}
	if (end_orphan(&r)) {
		snprintf(ctx->note, sizeof(ctx->note), "run %" PRId64 ": %s (the replica serving it stopped)", id,
			 store_run_state_name(r.state));
		agent_run_dispose(&r);
		return 0;
	}
	/* The job was claimed again after its lease expired: the replica that
	 * was running the run died (or was stopped past its grace period).  An
	 * agent run is not repeated behind the user's back: it ends failed,
	 * saying why. */
	const char *was = base_json_str(json_object_get(json_object_get(r.row, "data"), "replica"), "owner");
	if (state == STORE_RUN_RUNNING && ctx->job->attempts > 1 && was && ctx->owner && strcmp(was, ctx->owner) != 0) {
		char reason[300];
		snprintf(reason, sizeof(reason), "interrupted: the replica running it (%s) stopped before it ended", was);
		store_run_set_state_from(svc->store, id, STORE_RUN_IN(STORE_RUN_RUNNING), STORE_RUN_FAILED, reason);
		snprintf(ctx->note, sizeof(ctx->note), "run %" PRId64 ": %.200s", id, reason);
		agent_run_dispose(&r);
		return 0;
	}
	/* a cancel or a newer push may have ended it since it was read */
	if ((error = store_run_set_state_from(svc->store, id,
					      STORE_RUN_IN(STORE_RUN_QUEUED) | STORE_RUN_IN(STORE_RUN_RUNNING),
					      STORE_RUN_RUNNING, NULL)) < 0) {
		agent_run_dispose(&r);
		if (error != BASE_EEXISTS)
			return error;
		snprintf(ctx->note, sizeof(ctx->note), "%s: nothing to do", base_error_last());
		return 0;
	}
	/* which replica runs it: its MCP endpoint serves the agent command */
	json_t *replica = json_pack("{s:{s:s?,s:s?}}", "replica", "owner", ctx->owner, "mcp_url", svc->mcp_url);
	if (replica)
		store_run_update(svc->store, id, replica);
	json_decref(replica);
	r.stopping = ctx->stopping;
	agent_run_all(&r);
	snprintf(ctx->note, sizeof(ctx->note), "run %" PRId64 ": %s", id, store_run_state_name(r.state));
	agent_run_dispose(&r);
	return 0;
}
