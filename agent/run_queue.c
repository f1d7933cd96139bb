/* The requests made of agent runs (agent/services.h): queue a run, approve
 * its proposal, cancel it; and the registration of the "agent.run" job.
 *
 * Invariants: at most one agent run per repository is queued or running
 * (checked at queue time, under queue_lock); a run named by a command
 * belongs to the repository the command came from; a cancel is written to
 * the store, where the running job's watcher finds it (run_pipeline.c), so
 * it works from any worker or replica.  An approval and pr/'s job that
 * opens the pull request are stored in one transaction (svc->queue_pr).
 *
 * Threading: called from event-handler threads; only the store (and the
 * MCP endpoint, to revoke a token) is touched, never git or the sandbox. */
#include "agent/run_int.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "base/error.h"
#include "base/json.h"
#include "base/log.h"

static void job_key(char *buf, size_t n, int64_t run_id)
{
	snprintf(buf, n, AGENT_RUN_JOB_KIND ":%" PRId64, run_id);
}

/* The stored state's name for messages ("?" when absent). */
static const char *state_text(const json_t *run)
{
	const char *s = base_json_str(run, "state");
	return s ? s : "?";
}

/* A run that has ended (an absent state is not an end). */
static int has_ended(store_run_state s)
{
	return s != STORE_RUN_UNKNOWN && !store_run_state_active(s);
}

/* ---- queue ---------------------------------------------------------------- */

/* The agent run of `repository` that is queued or running, or *out NULL. */
static int active_run(json_t **out, store *st, const char *repository)
{
	static const store_run_state states[] = { STORE_RUN_RUNNING, STORE_RUN_QUEUED };
	*out = NULL;
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
		json_t *filter = json_pack("{s:s,s:s,s:s}", "kind", store_run_kind_name(STORE_RUN_AGENT), "repository",
					   repository, "state", store_run_state_name(states[i]));
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

int agent_run_create(int64_t *out, const agent_services *svc, const agent_run_request *req, const char *local_path)
{
	json_t *data = json_pack("{s:s?,s:i,s:s?,s:s?,s:o,s:s?}", "requested_by", req->requested_by, "thread_number",
				 req->thread_number, "clone_url", req->clone_url, "commit", req->commit, "benchmarks",
				 names_array(req->benchmarks, req->nbenchmarks), "local_path", local_path);
	if (!data)
		return base_error_set(BASE_ENOMEM, "out of memory");
	if (req->fork)
		json_object_set_new(data, "fork", json_true());
	store_run_spec spec = { .kind = STORE_RUN_AGENT, .repository = req->repository,
				.installation_id = req->installation_id, .head_sha = req->commit, .base_sha = req->commit,
				.branch = req->branch, .trigger = req->trigger, .data = data };
	int error = store_run_create(svc->store, out, &spec);
	json_decref(data);
	return error;
}

/* The repository has an active run, `busy`: a newer push replaces a queued
 * push-triggered run (0); anything else is refused with the way to stop
 * the active run (BASE_EEXISTS). */
static int make_room(const agent_services *svc, const agent_run_request *req, const json_t *busy)
{
	int64_t bid = base_json_int(busy, "id");
	store_run_state state = store_run_state_of(busy);
	const char *trig = base_json_str(busy, "trigger");
	const char *by = base_json_str(json_object_get(busy, "data"), "requested_by");
	const char *shown = base_json_str(busy, "state") ? base_json_str(busy, "state") : "active";
	int pushes = !strcmp(req->trigger, "push") && trig && !strcmp(trig, "push");
	if (pushes && state == STORE_RUN_QUEUED) {
		char key[64];
		job_key(key, sizeof(key), bid);
		int error = store_job_cancel_key(svc->store, key, NULL);
		if (error < 0)
			return error;
		error = store_run_set_state_from(svc->store, bid, STORE_RUN_IN(STORE_RUN_QUEUED), STORE_RUN_CANCELLED,
						 "replaced by a newer push");
		if (error == BASE_EEXISTS) /* it started meanwhile: it stays the repository's run */
			return base_error_set(BASE_EEXISTS, "run %" PRId64 " is running for %s", bid, req->repository);
		if (error < 0)
			return error;
		base_log(BASE_LOG_INFO, "agent run replaced by a newer push", "repository", req->repository, NULL);
		return 0;
	}
	if (by)
		return base_error_set(BASE_EEXISTS,
				      "run %" PRId64 " is %s for %s (requested by @%s); `/perfbot cancel %" PRId64
				      "` stops it",
				      bid, shown, req->repository, by, bid);
	return base_error_set(BASE_EEXISTS, "run %" PRId64 " is %s for %s; `/perfbot cancel %" PRId64 "` stops it", bid,
			      shown, req->repository, bid);
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
	if (busy && (error = make_room(svc, req, busy)) < 0)
		goto done;
	if ((error = agent_run_create(&id, svc, req, NULL)) < 0)
		goto done;
	char payload[64], key[64];
	snprintf(payload, sizeof(payload), "{\"run_id\":%" PRId64 "}", id);
	job_key(key, sizeof(key), id);
	if ((error = store_job_add(svc->store, NULL, AGENT_RUN_JOB_KIND, payload, key, 0)) < 0) {
		store_run_set_state(svc->store, id, STORE_RUN_FAILED, "the job could not be queued");
		goto done;
	}
	if (svc->workers)
		store_workers_wake(svc->workers);
	if (run_out)
		*run_out = id;
	char ids[24];
	snprintf(ids, sizeof(ids), "%" PRId64, id);
	base_log(BASE_LOG_INFO, "agent run queued", "run", ids, "repository", req->repository, "trigger", req->trigger,
		 NULL);
done:
	pthread_mutex_unlock(&queue_lock);
	json_decref(busy);
	return error;
}

/* ---- approval and cancellation ------------------------------------------- */

/* The agent run named in a command or a button; it must belong to the
 * repository the command came from: write access to one repository says
 * nothing about another.  An unknown run and a run of another repository
 * read the same. */
static int get_agent_run_of(json_t **out, const agent_services *svc, const char *repository, int64_t run_id)
{
	int error = store_run_get(svc->store, run_id, out);
	if (error == 0 && repository) {
		const char *of = base_json_str(*out, "repository");
		if (!of || strcmp(of, repository) != 0) {
			json_decref(*out);
			error = BASE_ENOTFOUND;
		}
	}
	if (error == BASE_ENOTFOUND) {
		*out = NULL;
		return base_error_set(BASE_ENOTFOUND, "run %" PRId64 " is not a run of %s", run_id,
				      repository ? repository : "this repository");
	}
	if (error < 0)
		return error;
	if (store_run_kind_of(*out) != STORE_RUN_AGENT) {
		json_decref(*out);
		*out = NULL;
		return base_error_set(BASE_ENOTFOUND, "run %" PRId64 " is not an agent run", run_id);
	}
	return 0;
}

/* A proposal can be approved while it waits and after its pull request
 * ended (to open it again). */
static int approvable(store_run_state s)
{
	return s == STORE_RUN_PROPOSAL || s == STORE_RUN_MERGED || s == STORE_RUN_CLOSED;
}

int agent_run_approve(const agent_services *svc, const char *repository, int64_t run_id, const char *user,
		      const char *via)
{
	json_t *run = NULL, *proposal = NULL, *update = NULL;
	int error;
	if ((error = get_agent_run_of(&run, svc, repository, run_id)) < 0)
		return error;
	const char *state = base_json_str(run, "state");
	if (store_proposal_get(svc->store, run_id, &proposal) < 0 || !approvable(store_run_state_of(run))) {
		error = base_error_set(BASE_ENOTFOUND, "run %" PRId64 " has no verified proposal%s%s%s", run_id,
				       state ? " (it is " : "", state ? state : "", state ? ")" : "");
		goto done;
	}
	if (!svc->queue_pr) {
		error = base_error_set(BASE_EINVALID, "pull requests cannot be opened here");
		goto done;
	}
	update = json_pack("{s:s,s:s,s:I}", "approved_by", user, "approved_via", via, "approved_at_ms",
			   (json_int_t)agent_run_now_ms(svc));
	if (!update) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	/* the approval, the run's record of it, the audit line and the PR job
	 * are stored together: a crash cannot leave an approval without its job */
	store_approval a = { .run_id = run_id, .user = user, .via = via, .run_update = update };
	if ((error = svc->queue_pr(svc->store, &a, svc->queue_pr_payload)) < 0) {
		if (error == BASE_EEXISTS) {
			const json_t *d = json_object_get(run, "data");
			const char *by = base_json_str(d, "approved_by"), *how = base_json_str(d, "approved_via");
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

/* The run has ended meanwhile: the message names its state now. */
static int ended_meanwhile(const agent_services *svc, int64_t run_id)
{
	json_t *now = NULL;
	store_run_get(svc->store, run_id, &now);
	int error = base_error_set(BASE_EINVALID, "run %" PRId64 " has already ended (%s)", run_id, state_text(now));
	json_decref(now);
	return error;
}

int agent_run_cancel(const agent_services *svc, const char *repository, int64_t run_id, const char *user)
{
	json_t *run = NULL, *update = NULL;
	int error;
	if ((error = get_agent_run_of(&run, svc, repository, run_id)) < 0)
		return error;
	store_run_state state = store_run_state_of(run);
	char reason[200], key[64], subject[32];
	if (has_ended(state)) {
		error = base_error_set(BASE_EINVALID, "run %" PRId64 " has already ended (%s)", run_id, state_text(run));
		goto done;
	}
	snprintf(reason, sizeof(reason), "cancelled by @%s", user ? user : "?");
	update = json_pack("{s:s?,s:I}", "cancelled_by", user, "cancelled_at_ms", (json_int_t)agent_run_now_ms(svc));
	if (!update) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	/* only a run still queued or running: its end may have been recorded
	 * since it was read, and a proposal is not taken back by a cancel */
	error = store_run_set_state_from(svc->store, run_id,
					 STORE_RUN_IN(STORE_RUN_QUEUED) | STORE_RUN_IN(STORE_RUN_RUNNING),
					 STORE_RUN_CANCELLED, reason);
	if (error == BASE_EEXISTS)
		error = ended_meanwhile(svc, run_id);
	if (error < 0 || (error = store_run_update(svc->store, run_id, update)) < 0)
		goto done;
	if (state == STORE_RUN_QUEUED) {
		job_key(key, sizeof(key), run_id);
		store_job_cancel_key(svc->store, key, NULL);
	} else if (svc->mcp) {
		/* the token dies now; the run's watcher kills the agent and the
		 * sandbox commands within AGENT_RUN_WATCH_MS */
		agent_mcp_unregister_run(svc->mcp, run_id);
	}
	snprintf(subject, sizeof(subject), "run %" PRId64, run_id);
	store_audit(svc->store, user, "cancel", subject, state_text(run));
done:
	json_decref(run);
	json_decref(update);
	return error;
}

int agent_run_jobs_register(store_workers *w, agent_services *svc)
{
	return store_workers_register_bench(w, AGENT_RUN_JOB_KIND, agent_run_job, svc);
}
