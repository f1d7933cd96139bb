/* Bench runs for GitHub, the queue side (see services.h): what the event
 * handlers call when a push, a pull request or `/perfbot bench` asks for a
 * measurement, and the approval of a waiting run.  Each call records or
 * changes a run in the store and queues its "bench.run" job (bench_run.c);
 * none blocks on git, the sandbox or GitHub.
 *
 * A run belongs to a group: "branch:<name>" for pushes, "pull:<n>" for pull
 * requests.  Queueing a run supersedes the older active runs of its group: a
 * queued one has its job cancelled (each run's job carries the dedupe key
 * "bench:<repo>:<group>:<run>", so store_job_cancel_key reaches exactly that
 * job) and becomes STORE_RUN_CANCELLED; a running one becomes
 * STORE_RUN_CANCELLING, which its job's watcher turns into the sandbox's
 * cancel flag; a waiting one (no job) is cancelled outright.
 *
 * Approval: a pull request from a fork or a first-time contributor runs its
 * own perfbot.yml, so its run carries data.needs_approval and waits
 * (STORE_RUN_WAITING, no job) until someone with write access approves it
 * (measure_bench_approve, after the event handler asked GitHub for the
 * permission); the approval queues the job again.
 *
 * Threading: event-handler workers; only the store and per-call state. */
#include "measure/bench_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/json.h"
#include "base/log.h"

int bench_is_sha(const char *s)
{
	if (!s || strlen(s) != 40)
		return 0;
	for (const char *p = s; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return 0;
	return 1;
}

int bench_queue_job(const measure_services *svc, int64_t id, const char *key)
{
	char payload[64];
	snprintf(payload, sizeof(payload), "{\"run_id\": %lld}", (long long)id);
	int error = store_job_add(svc->store, NULL, BENCH_JOB_KIND, payload, key, 0);
	if (error == 0 && svc->workers)
		store_workers_wake(svc->workers);
	return error;
}

/* The bench runs of a repository, newest first (owned array). */
static int bench_runs(json_t **out, const measure_services *svc, const char *repository)
{
	json_t *filter = json_pack("{s:s, s:s}", "kind", store_run_kind_name(STORE_RUN_BENCH), "repository", repository);
	*out = NULL;
	int error = filter ? store_run_list(svc->store, filter, BENCH_SUPERSEDE_SCAN, out)
			   : base_error_set(BASE_ENOMEM, "out of memory");
	json_decref(filter);
	return error;
}

/* 1 when the run belongs to group ("branch:main", "pull:7"). */
static int in_group(const json_t *run, const char *group)
{
	const char *g = base_json_str(json_object_get(run, "data"), "group");
	return g && !strcmp(g, group);
}

/* A run of a fork's pull request that has not been approved yet. */
static int unapproved(const json_t *data)
{
	return json_is_true(json_object_get(data, "needs_approval")) && !base_json_str(data, "approved_by");
}

/* ---- queueing --------------------------------------------------------------- */

/* Cancels the active runs of `group` older than `newer`. */
static int supersede(const measure_services *svc, const char *repository, const char *group, int64_t newer)
{
	json_t *runs = NULL;
	int error = bench_runs(&runs, svc, repository);
	if (error < 0)
		return error;
	char reason[96];
	snprintf(reason, sizeof(reason), "superseded by run %lld", (long long)newer);
	size_t i;
	json_t *r;
	json_array_foreach(runs, i, r)
	{
		int64_t id = json_integer_value(json_object_get(r, "id"));
		const json_t *data = json_object_get(r, "data");
		const char *key = base_json_str(data, "job_key");
		store_run_state state = store_run_state_of(r);
		if (id >= newer || !in_group(r, group) || !store_run_state_active(state))
			continue;
		if (state == STORE_RUN_WAITING) {
			/* no job: the run waited for an approval it no longer needs */
			error = store_run_set_state_from(svc->store, id, STORE_RUN_IN(STORE_RUN_WAITING), STORE_RUN_CANCELLED, reason);
			if (error == BASE_EEXISTS) {
				error = 0;
				continue;
			}
			if (error < 0)
				break;
			continue;
		}
		int cancelled = 0;
		if (key && (error = store_job_cancel_key(svc->store, key, &cancelled)) < 0)
			break;
		/* a job not queued any more is running: it sees "cancelling" and
		 * stops; a run that ended meanwhile keeps its end */
		store_run_state to = cancelled ? STORE_RUN_CANCELLED : STORE_RUN_CANCELLING;
		error = store_run_set_state_from(svc->store, id, STORE_RUN_IN(STORE_RUN_QUEUED) | STORE_RUN_IN(STORE_RUN_RUNNING),
						 to, reason);
		if (error == BASE_EEXISTS) {
			error = 0;
			continue;
		}
		if (error < 0)
			break;
		char ids[24], by[24];
		snprintf(ids, sizeof(ids), "%lld", (long long)id);
		snprintf(by, sizeof(by), "%lld", (long long)newer);
		base_log(BASE_LOG_INFO, "bench run superseded", "run", ids, "by", by, "repository", repository, "state",
			store_run_state_name(to), NULL);
	}
	json_decref(runs);
	return error;
}

/* An active run of the group for the same commits, e.g. a delivery of the
 * same push twice: 0 when none.  *waiting_out: it waits for an approval. */
static int64_t same_active(int *waiting_out, const measure_services *svc, const char *repository, const char *group,
			   const char *head, const char *base)
{
	*waiting_out = 0;
	json_t *runs = NULL;
	int64_t found = 0;
	if (bench_runs(&runs, svc, repository) == 0) {
		size_t i;
		json_t *r;
		json_array_foreach(runs, i, r)
		{
			const char *h = base_json_str(r, "head_sha"), *b = base_json_str(r, "base_sha");
			int same = in_group(r, group) && h && !strcmp(h, head) &&
				   ((!b && !base) || (b && base && !strcmp(b, base)));
			/* a run being cancelled is no run to join */
			store_run_state st = store_run_state_of(r);
			if (same && store_run_state_active(st) && st != STORE_RUN_CANCELLING) {
				found = base_json_int(r, "id");
				*waiting_out = st == STORE_RUN_WAITING || unapproved(json_object_get(r, "data"));
				break;
			}
		}
	}
	json_decref(runs);
	return found;
}

/* Creates the run (data borrowed, extended here), supersedes older runs of
 * the group and queues the job. */
static int queue_run(int64_t *run_out, const measure_services *svc, store_run_spec *spec, json_t *data,
		     const char *group)
{
	int waiting = 0;
	int64_t id = same_active(&waiting, svc, spec->repository, group, spec->head_sha, spec->base_sha);
	if (id && waiting && !json_is_true(json_object_get(data, "needs_approval"))) {
		/* the same commits asked for by someone trusted (`/perfbot bench`
		 * by a maintainer): that approves the waiting run */
		return measure_bench_approve(run_out, svc, spec->repository, id, 0, base_json_str(data, "sender"), "command");
	}
	if (id) {
		if (run_out)
			*run_out = id;
		return 0;
	}
	json_object_set_new(data, "group", json_string(group));
	spec->kind = STORE_RUN_BENCH;
	spec->data = data;
	int error = store_run_create(svc->store, &id, spec);
	if (error < 0)
		return error;
	char key[512];
	snprintf(key, sizeof(key), "bench:%s:%s:%lld", spec->repository, group, (long long)id);
	json_t *patch = json_pack("{s:s}", "job_key", key);
	if (!patch)
		return base_error_set(BASE_ENOMEM, "out of memory");
	error = store_run_update(svc->store, id, patch);
	json_decref(patch);
	if (error < 0)
		return error;
	if ((error = supersede(svc, spec->repository, group, id)) < 0)
		return error;
	if ((error = bench_queue_job(svc, id, key)) < 0)
		return error;
	char ids[24];
	snprintf(ids, sizeof(ids), "%lld", (long long)id);
	base_log(BASE_LOG_INFO, "bench run queued", "run", ids, "repository", spec->repository, "group", group, "head",
		spec->head_sha, "trigger", spec->trigger, NULL);
	if (run_out)
		*run_out = id;
	return 0;
}

int measure_bench_queue_pull(int64_t *run_out, const measure_services *svc, const measure_bench_pull *pull)
{
	if (run_out)
		*run_out = 0;
	if (!pull->repository || pull->number <= 0 || !bench_is_sha(pull->head_sha) || !bench_is_sha(pull->base_sha))
		return base_error_set(BASE_EINVALID, "bench: a pull request needs a repository, a number and two shas");
	char ref[64], group[32];
	snprintf(ref, sizeof(ref), "refs/pull/%d/head", pull->number);
	snprintf(group, sizeof(group), "pull:%d", pull->number);
	json_t *data = json_pack("{s:s, s:i, s:s?, s:s?, s:s?, s:s?, s:s}", "ref", ref, "pull", pull->number,
				 "head_ref", pull->head_ref, "base_ref", pull->base_ref, "clone_url", pull->clone_url,
				 "sender", pull->sender, "base_tip", pull->base_sha);
	if (!data)
		return base_error_set(BASE_ENOMEM, "out of memory");
	if (pull->needs_approval)
		json_object_set_new(data, "needs_approval", json_true());
	store_run_spec spec = { .repository = pull->repository, .installation_id = pull->installation_id,
				.head_sha = pull->head_sha, .base_sha = pull->base_sha, .branch = pull->head_ref,
				.trigger = pull->trigger ? pull->trigger : "pull_request" };
	int error = queue_run(run_out, svc, &spec, data, group);
	json_decref(data);
	return error;
}

int measure_bench_queue_push(int64_t *run_out, const measure_services *svc, const measure_bench_push *push)
{
	if (run_out)
		*run_out = 0;
	if (push->deleted)
		return 0;
	if (!push->repository || !push->ref || !bench_is_sha(push->after))
		return base_error_set(BASE_EINVALID, "bench: a push needs a repository, a ref and an after sha");
	if (!strcmp(push->after, BENCH_ZERO_SHA))
		return 0;
	/* a pull request's run asked again (check run "Re-run"): its data.ref
	 * is GitHub's refs/pull/<n>/head, before is the base branch tip */
	int number = 0;
	if (!strncmp(push->ref, "refs/pull/", 10)) {
		char *end;
		long n = strtol(push->ref + 10, &end, 10);
		if (n > 0 && n < 1000000000 && !strcmp(end, "/head"))
			number = (int)n;
	}
	if (number) {
		if (!bench_is_sha(push->before))
			return base_error_set(BASE_EINVALID, "bench: pull request #%d has no base sha", number);
		measure_bench_pull pull = { .repository = push->repository, .installation_id = push->installation_id,
					  .number = number, .head_sha = push->after, .base_sha = push->before,
					  .clone_url = push->clone_url, .trigger = "rerequested", .sender = push->sender };
		return measure_bench_queue_pull(run_out, svc, &pull);
	}
	if (strncmp(push->ref, "refs/heads/", 11) != 0 || !push->ref[11])
		return 0; /* tags and other refs are not measured */
	const char *branch = push->ref + 11;
	const char *before = bench_is_sha(push->before) && strcmp(push->before, BENCH_ZERO_SHA) ? push->before : NULL;
	char group[300];
	if ((size_t)snprintf(group, sizeof(group), "branch:%s", branch) >= sizeof(group))
		return base_error_set(BASE_EINVALID, "bench: branch name too long");
	json_t *data = json_pack("{s:s, s:s?, s:s?, s:s?}", "ref", push->ref, "default_branch", push->default_branch,
				 "clone_url", push->clone_url, "sender", push->sender);
	/* what the dashboard shows of the measured commit */
	if (data && (push->commit_author || push->commit_message || push->commit_at_ms)) {
		json_t *c = json_pack("{s:s?, s:s?}", "author", push->commit_author, "message", push->commit_message);
		if (c && push->commit_at_ms > 0)
			json_object_set_new(c, "at_ms", json_integer((json_int_t)push->commit_at_ms));
		json_object_set_new(data, "commit", c);
	}
	if (!data)
		return base_error_set(BASE_ENOMEM, "out of memory");
	store_run_spec spec = { .repository = push->repository, .installation_id = push->installation_id,
				.head_sha = push->after, .base_sha = before, .branch = branch, .trigger = "push" };
	int error = queue_run(run_out, svc, &spec, data, group);
	json_decref(data);
	return error;
}

/* ---- approval ------------------------------------------------------------------ */

/* The newest run of pull request `pull` that waits for an approval. */
static int newest_waiting(json_t **out, const measure_services *svc, const char *repository, int pull)
{
	char group[32];
	snprintf(group, sizeof(group), "pull:%d", pull);
	json_t *runs = NULL;
	int error = bench_runs(&runs, svc, repository);
	*out = NULL;
	if (error < 0)
		return error;
	size_t i;
	json_t *r;
	json_array_foreach(runs, i, r)
	{
		store_run_state st = store_run_state_of(r);
		int waits = st == STORE_RUN_WAITING || (st == STORE_RUN_QUEUED && unapproved(json_object_get(r, "data")));
		if (in_group(r, group) && waits) {
			*out = json_incref(r);
			break;
		}
	}
	json_decref(runs);
	if (!*out)
		return base_error_set(BASE_ENOTFOUND, "nothing on pull request #%d is waiting for approval", pull);
	return 0;
}

int measure_bench_approve(int64_t *run_out, const measure_services *svc, const char *repository, int64_t run_id,
			int pull, const char *user, const char *via)
{
	json_t *run = NULL, *patch = NULL;
	int error;
	if (run_out)
		*run_out = 0;
	if (run_id > 0) {
		error = store_run_get(svc->store, run_id, &run);
		const char *of = error == 0 ? base_json_str(run, "repository") : NULL;
		if (error == BASE_ENOTFOUND || (error == 0 && (store_run_kind_of(run) != STORE_RUN_BENCH || !of ||
							       !repository || strcmp(of, repository)))) {
			error = base_error_set(BASE_ENOTFOUND, "run %lld is not a bench run of %s", (long long)run_id,
					      repository ? repository : "this repository");
			goto done;
		}
	} else {
		error = newest_waiting(&run, svc, repository, pull);
	}
	if (error < 0)
		goto done;
	int64_t id = base_json_int(run, "id");
	store_run_state state = store_run_state_of(run);
	const json_t *data = json_object_get(run, "data");
	if (state != STORE_RUN_WAITING && !(state == STORE_RUN_QUEUED && unapproved(data))) {
		const char *name = base_json_str(run, "state");
		error = base_error_set(BASE_ENOTFOUND, "run %lld is not waiting for approval (it is %s)", (long long)id,
				      name ? name : "?");
		goto done;
	}
	const base_clock *clock = svc->clock ? svc->clock : base_clock_system();
	patch = json_pack("{s:s?, s:s, s:I}", "approved_by", user, "approved_via", via, "approved_at_ms",
			  (json_int_t)clock->wall_ms(clock->payload));
	if (!patch) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	if ((error = store_run_update(svc->store, id, patch)) < 0)
		goto done;
	char ids[24];
	snprintf(ids, sizeof(ids), "%lld", (long long)id);
	store_audit(svc->store, user, "approve-bench", ids, via);
	base_log(BASE_LOG_INFO, "bench run approved", "run", ids, "user", user, "via", via, NULL);
	if (state == STORE_RUN_WAITING) {
		/* its job ended when it started waiting: queue it again */
		error = store_run_set_state_from(svc->store, id, STORE_RUN_IN(STORE_RUN_WAITING), STORE_RUN_QUEUED, NULL);
		if (error == BASE_EEXISTS) {
			error = base_error_set(BASE_ENOTFOUND, "run %lld is not waiting for approval any more", (long long)id);
			goto done;
		}
		if (error == 0)
			error = bench_queue_job(svc, id, base_json_str(data, "job_key"));
	}
	if (error == 0 && run_out)
		*run_out = id;
done:
	json_decref(patch);
	json_decref(run);
	return error;
}

int measure_bench_jobs_register(store_workers *w, measure_services *svc)
{
	return store_workers_register_bench(w, BENCH_JOB_KIND, bench_run_job, svc);
}
