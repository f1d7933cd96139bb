/* Bench runs for GitHub: the queue functions the event handlers call and the
 * "bench.run" job that measures a push or a pull request and reports it as
 * the "perfbot" check run (see services.h).
 *
 * A run belongs to a group: "branch:<name>" for pushes, "pull:<n>" for pull
 * requests.  Queueing a run supersedes the older active runs of its group: a
 * queued one has its job cancelled (each run's job carries the dedupe key
 * "bench:<repo>:<group>:<run>", so store_job_cancel_key reaches exactly that
 * job) and is marked "cancelled"; a running one is marked "cancelling".  The
 * job watches its own run's state from a small thread and raises the cancel
 * flag that the sandbox polls, so a superseded measurement stops within a
 * fraction of a second.  All cancellation state lives in the store: nothing
 * is shared between threads but the one flag of a running job.
 *
 * Approval: a pull request from a fork or a first-time contributor runs its
 * own perfbot.yml, so its run carries data.needs_approval and, until
 * someone with write access approves it (measure_bench_approve, after the
 * event handler asked GitHub for the permission), its job only creates an
 * "action_required" check run with an "Approve and run" button and leaves
 * the run in the state "waiting", with no job.  The approval queues the job
 * again; a newer push supersedes a waiting run like any other.
 *
 * Retries: the check run's id and, before the completing PATCH, the final
 * output are kept in the run's data, so a retried job neither creates a
 * second check run nor measures again just to report.  The installation
 * token only ever exists inside the checkout's credential callback.
 *
 * Threading: the queue functions run on event-handler workers, the job on a
 * worker; both only touch the store, the GitHub client (thread-safe) and
 * per-call state. */
#include "measure/run_watch.h"
#include "base/clock.h"
#include "measure/services.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "measure/bench.h"
#include "measure/checkout.h"
#include "measure/repo_config.h"
#include "base/buf.h"
#include "base/error.h"
#include "base/log.h"

#define CHECK_NAME "perfbot"
#define ZERO_SHA "0000000000000000000000000000000000000000"
#define OUTPUT_MAX 65535      /* GitHub's cap on a check run's summary and text */
#define WATCH_MS 250          /* how often a running job looks at its run's state */
#define SUPERSEDE_SCAN 200    /* newest runs of a repository looked at when queueing */

static const char config_example[] =
	"```yaml\n"
	"build: make -j2                 # optional, runs once, unmeasured\n"
	"benchmarks:\n"
	"  - name: parse-small\n"
	"    command: ./bench/parse data/small.json\n"
	"  - name: parse-large\n"
	"    command: ./bench/parse data/large.json\n"
	"threshold: 3%                   # smallest change reported\n"
	"metric: cycles                  # cycles (estimated) | instructions\n"
	"branches: [main]                # pushes measured; default: the default branch\n"
	"```\n";

static void iso_now(char out[32])
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int is_sha(const char *s)
{
	if (!s || strlen(s) != 40)
		return 0;
	for (const char *p = s; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return 0;
	return 1;
}

static const char *str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static int split_repo(char owner[128], char name[128], const char *full)
{
	const char *slash = full ? strchr(full, '/') : NULL;
	if (!slash || slash == full || !slash[1] || (size_t)(slash - full) >= 128 || strlen(slash + 1) >= 128 ||
	    strchr(slash + 1, '/'))
		return base_error_set(BASE_EINVALID, "bad repository name \"%s\"", full ? full : "");
	memcpy(owner, full, (size_t)(slash - full));
	owner[slash - full] = '\0';
	snprintf(name, 128, "%s", slash + 1);
	return 0;
}

/* ---- queueing --------------------------------------------------------------- */

static int active_state(const char *s)
{
	return s && (!strcmp(s, "queued") || !strcmp(s, "running") || !strcmp(s, "cancelling") || !strcmp(s, "waiting"));
}

/* Cancels the active runs of `group` older than `newer`. */
static int supersede(const measure_services *svc, const char *repository, const char *group, int64_t newer)
{
	json_t *filter = json_pack("{s:s, s:s}", "kind", "bench", "repository", repository);
	json_t *runs = NULL;
	int error = filter ? store_run_list(svc->store, filter, SUPERSEDE_SCAN, &runs) : BASE_ENOMEM;
	json_decref(filter);
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
		const char *g = str(data, "group"), *key = str(data, "job_key");
		if (id >= newer || !g || strcmp(g, group) != 0 || !active_state(str(r, "state")))
			continue;
		if (!strcmp(str(r, "state"), "waiting")) {
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
		error = store_run_set_state_from(svc->store, id, STORE_RUN_IN(STORE_RUN_QUEUED) | STORE_RUN_IN(STORE_RUN_RUNNING), cancelled ? STORE_RUN_CANCELLED : STORE_RUN_CANCELLING,
						 reason);
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
			cancelled ? "cancelled" : "cancelling", NULL);
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
	json_t *filter = json_pack("{s:s, s:s}", "kind", "bench", "repository", repository);
	json_t *runs = NULL;
	int64_t found = 0;
	if (filter && store_run_list(svc->store, filter, SUPERSEDE_SCAN, &runs) == 0) {
		size_t i;
		json_t *r;
		json_array_foreach(runs, i, r)
		{
			const char *g = str(json_object_get(r, "data"), "group");
			const char *h = str(r, "head_sha"), *b = str(r, "base_sha");
			/* a run being cancelled is no run to join */
			const char *st = str(r, "state");
			if (g && !strcmp(g, group) && h && !strcmp(h, head) && active_state(st) && strcmp(st, "cancelling") != 0 &&
			    ((!b && !base) || (b && base && !strcmp(b, base)))) {
				found = json_integer_value(json_object_get(r, "id"));
				*waiting_out = !strcmp(st, "waiting") ||
					       (json_is_true(json_object_get(json_object_get(r, "data"), "needs_approval")) &&
						!str(json_object_get(r, "data"), "approved_by"));
				break;
			}
		}
	}
	json_decref(filter);
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
		return measure_bench_approve(run_out, svc, spec->repository, id, 0, str(data, "sender"), "command");
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
	char key[512], payload[64];
	snprintf(key, sizeof(key), "bench:%s:%s:%lld", spec->repository, group, (long long)id);
	snprintf(payload, sizeof(payload), "{\"run_id\": %lld}", (long long)id);
	json_t *patch = json_pack("{s:s}", "job_key", key);
	if (!patch)
		return base_error_set(BASE_ENOMEM, "out of memory");
	error = store_run_update(svc->store, id, patch);
	json_decref(patch);
	if (error < 0)
		return error;
	if ((error = supersede(svc, spec->repository, group, id)) < 0)
		return error;
	int64_t job = 0;
	if ((error = store_job_add(svc->store, &job, "bench.run", payload, key, 0)) < 0)
		return error;
	if (svc->workers)
		store_workers_wake(svc->workers);
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
	if (!pull->repository || pull->number <= 0 || !is_sha(pull->head_sha) || !is_sha(pull->base_sha))
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
	if (!push->repository || !push->ref || !is_sha(push->after))
		return base_error_set(BASE_EINVALID, "bench: a push needs a repository, a ref and an after sha");
	if (!strcmp(push->after, ZERO_SHA))
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
		if (!is_sha(push->before))
			return base_error_set(BASE_EINVALID, "bench: pull request #%d has no base sha", number);
		measure_bench_pull pull = { .repository = push->repository, .installation_id = push->installation_id,
					  .number = number, .head_sha = push->after, .base_sha = push->before,
					  .clone_url = push->clone_url, .trigger = "rerequested", .sender = push->sender };
		return measure_bench_queue_pull(run_out, svc, &pull);
	}
	if (strncmp(push->ref, "refs/heads/", 11) != 0 || !push->ref[11])
		return 0; /* tags and other refs are not measured */
	const char *branch = push->ref + 11;
	const char *before = is_sha(push->before) && strcmp(push->before, ZERO_SHA) ? push->before : NULL;
	char group[300];
	if ((size_t)snprintf(group, sizeof(group), "branch:%s", branch) >= sizeof(group))
		return base_error_set(BASE_EINVALID, "bench: branch name too long");
	json_t *data = json_pack("{s:s, s:s?, s:s?, s:s?}", "ref", push->ref, "default_branch", push->default_branch,
				 "clone_url", push->clone_url, "sender", push->sender);
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
	json_t *filter = json_pack("{s:s, s:s}", "kind", "bench", "repository", repository);
	json_t *runs = NULL;
	int error = filter ? store_run_list(svc->store, filter, SUPERSEDE_SCAN, &runs) : BASE_ENOMEM;
	json_decref(filter);
	*out = NULL;
	if (error < 0)
		return error;
	size_t i;
	json_t *r;
	json_array_foreach(runs, i, r)
	{
		const json_t *data = json_object_get(r, "data");
		const char *g = str(data, "group"), *st = str(r, "state");
		int waits = st && (!strcmp(st, "waiting") ||
				   (!strcmp(st, "queued") && json_is_true(json_object_get(data, "needs_approval")) &&
				    !str(data, "approved_by")));
		if (g && !strcmp(g, group) && waits) {
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
		const char *kind = error == 0 ? str(run, "kind") : NULL, *of = error == 0 ? str(run, "repository") : NULL;
		if (error == BASE_ENOTFOUND || (error == 0 && (!kind || strcmp(kind, "bench") || !of || !repository ||
							       strcmp(of, repository)))) {
			error = base_error_set(BASE_ENOTFOUND, "run %lld is not a bench run of %s", (long long)run_id,
					      repository ? repository : "this repository");
			goto done;
		}
	} else {
		error = newest_waiting(&run, svc, repository, pull);
	}
	if (error < 0)
		goto done;
	int64_t id = json_integer_value(json_object_get(run, "id"));
	const char *state = str(run, "state");
	const json_t *data = json_object_get(run, "data");
	int needs = json_is_true(json_object_get(data, "needs_approval")) && !str(data, "approved_by");
	if (!state || (strcmp(state, "waiting") != 0 && !(needs && !strcmp(state, "queued")))) {
		error = base_error_set(BASE_ENOTFOUND, "run %lld is not waiting for approval (it is %s)", (long long)id,
				      state ? state : "?");
		goto done;
	}
	patch = json_pack("{s:s?, s:s, s:I}", "approved_by", user, "approved_via", via, "approved_at_ms",
			  (json_int_t)base_wall_ms());
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
	if (!strcmp(state, "waiting")) {
		/* its job ended when it started waiting: queue it again */
		error = store_run_set_state_from(svc->store, id, STORE_RUN_IN(STORE_RUN_WAITING), STORE_RUN_QUEUED, NULL);
		if (error == BASE_EEXISTS) {
			error = base_error_set(BASE_ENOTFOUND, "run %lld is not waiting for approval any more", (long long)id);
			goto done;
		}
		const char *key = str(data, "job_key");
		char payload[64];
		snprintf(payload, sizeof(payload), "{\"run_id\": %lld}", (long long)id);
		if (error == 0 && (error = store_job_add(svc->store, NULL, "bench.run", payload, key, 0)) == 0 &&
		    svc->workers)
			store_workers_wake(svc->workers);
	}
	if (error == 0 && run_out)
		*run_out = id;
done:
	json_decref(patch);
	json_decref(run);
	return error;
}

/* ---- the job: state ---------------------------------------------------------- */

typedef struct bench_job {
	measure_services *svc;
	store_job_ctx *ctx;
	int64_t id;
	char ids[24];
	json_t *run;                 /* owned: the stored run */
	const char *repository;      /* borrowed from run */
	char owner[128], name[128];
	int64_t inst;
	const char *head, *base;     /* base: the push's before, or the base branch tip */
	const char *branch;
	const char *ref, *default_branch, *clone_url, *head_ref, *base_ref, *sender;
	int pull;                    /* pull request number, 0 for a push */
	int64_t check_id;            /* 0 until created */
	measure_checkout_source src;
	int token_error;             /* the last failure of the token callback */
	measure_repo_config *cfg;      /* owned */
	atomic_int cancel;         /* raised by the watcher; read by the sandbox */
	char cancel_reason[128];
} bench_job;

static int token_cb(char *buf, size_t size, void *payload)
{
	bench_job *j = payload;
	int error = measure_token_fill(buf, size, j->svc->gh, j->inst);
	if (error < 0)
		j->token_error = error;
	return error;
}

/* GitHub trouble worth another attempt: the job goes back to the queue. */
static int gh_retry(bench_job *j, int error)
{
	/* on the last attempt the failure is reported like any other */
	if ((error != BASE_ERETRY && error != BASE_ETIMEOUT) || j->ctx->final_attempt)
		return 0;
	/* a rate limit says when; otherwise the workers' backoff decides */
	long wait = gh_retry_wait_ms();
	if (wait > 0)
		j->ctx->retry_at_ms = base_wall_ms() + wait;
	return 1;
}

static void set_note(bench_job *j, const char *text)
{
	snprintf(j->ctx->note, sizeof(j->ctx->note), "run %lld: %s", (long long)j->id, text);
}

/* Ends the run in the store. */
static void finish(bench_job *j, const char *state, const char *reason)
{
	if (store_run_set_state(j->svc->store, j->id, store_run_state_parse(state), reason) < 0)
		base_log(BASE_LOG_ERROR, "cannot record a bench run's outcome", "run", j->ids, "error", base_error_last(),
			NULL);
	set_note(j, reason ? reason : state);
	base_log(BASE_LOG_INFO, "bench run ended", "run", j->ids, "repository", j->repository, "state", state, "reason",
		reason, NULL);
}

static int update_data(bench_job *j, json_t *patch /* owns */)
{
	int error = patch ? store_run_update(j->svc->store, j->id, patch) : base_error_set(BASE_ENOMEM, "out of memory");
	json_decref(patch);
	return error;
}

/* ---- the cancel watcher -------------------------------------------------------- */

/* Called once on the watcher's thread: a newer push, a cancel or a
 * shutdown stops the measurement through the sandbox's cancel flag. */
static void on_watch(measure_watch_cause cause, const char *reason, void *payload)
{
	(void)cause;
	bench_job *j = payload;
	snprintf(j->cancel_reason, sizeof(j->cancel_reason), "%s", reason);
	__atomic_store_n(&j->cancel, 1, __ATOMIC_SEQ_CST);
}

static int cancelled(bench_job *j)
{
	return __atomic_load_n(&j->cancel, __ATOMIC_SEQ_CST);
}

/* ---- check runs ----------------------------------------------------------------- */

/* Copies at most OUTPUT_MAX bytes of s, cut at a UTF-8 boundary. */
static json_t *capped_string(const char *s)
{
	size_t n = strlen(s);
	if (n <= OUTPUT_MAX)
		return json_string(s);
	const char *marker = "\n\n… (truncated)";
	size_t keep = OUTPUT_MAX - strlen(marker);
	while (keep > 0 && ((unsigned char)s[keep] & 0xC0) == 0x80)
		keep--;
	char *t = malloc(keep + strlen(marker) + 1);
	if (!t)
		return NULL;
	memcpy(t, s, keep);
	memcpy(t + keep, marker, strlen(marker) + 1);
	json_t *v = json_string(t);
	free(t);
	return v;
}

/* Creates the in-progress check run once; its id is kept in the run's data
 * so that a retried job reuses it. */
static int check_start(bench_job *j, const char *summary)
{
	if (j->check_id)
		return 0;
	/* no details_url: perfbot serves no public page about a run (its data
	 * is the customer's); the check run itself carries the report */
	char when[32];
	iso_now(when);
	json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s}}", "name", CHECK_NAME, "head_sha", j->head,
				 "status", "in_progress", "started_at", when, "external_id", j->ids, "output", "title",
				 "Measuring…", "summary", summary);
	if (!body)
		return base_error_set(BASE_ENOMEM, "out of memory");
	int64_t id = 0;
	int error = gh_create_check_run(j->svc->gh, j->inst, j->owner, j->name, body, &id);
	json_decref(body);
	if (error < 0)
		return error;
	j->check_id = id;
	return update_data(j, json_pack("{s:I}", "check_run_id", (json_int_t)id));
}

/* Completes the check run with a result kept in the run's data first (a
 * retry after a GitHub failure only repeats this call). */
static int check_complete_stored(bench_job *j, const json_t *result)
{
	if (!j->check_id)
		return 0;
	char when[32];
	iso_now(when);
	json_t *output = json_pack("{s:O, s:O}", "title", json_object_get(result, "title"), "summary",
				   json_object_get(result, "summary"));
	if (output && json_is_string(json_object_get(result, "text")))
		json_object_set(output, "text", json_object_get(result, "text"));
	json_t *body = output ? json_pack("{s:s, s:O, s:s, s:o}", "status", "completed", "conclusion",
					  json_object_get(result, "conclusion"), "completed_at", when, "output", output)
			      : NULL;
	if (!body)
		return base_error_set(BASE_ENOMEM, "out of memory");
	int error = gh_update_check_run(j->svc->gh, j->inst, j->owner, j->name, j->check_id, body);
	json_decref(body);
	return error;
}

static int check_complete(bench_job *j, const char *conclusion, const char *title, const char *summary,
			  const char *text)
{
	json_t *result = json_pack("{s:s, s:s, s:o, s:o*}", "conclusion", conclusion, "title", title, "summary",
				   capped_string(summary), "text", text ? capped_string(text) : NULL);
	if (!result)
		return base_error_set(BASE_ENOMEM, "out of memory");
	int error = update_data(j, json_pack("{s:O}", "result", result));
	if (error == 0)
		error = check_complete_stored(j, result);
	json_decref(result);
	return error;
}

/* Reports a run that could not measure: check run (when there is one) and
 * run state.  Returns what the job returns. */
static int fail_run(bench_job *j, const char *conclusion, const char *title, const char *summary, const char *reason)
{
	int error = 0;
	if (j->check_id && (error = check_complete(j, conclusion, title, summary, NULL)) < 0) {
		if (gh_retry(j, error))
			return error;
		base_log(BASE_LOG_WARN, "cannot complete a check run", "run", j->ids, "error", base_error_last(), NULL);
	}
	finish(j, "failed", reason);
	return 0;
}

/* ---- measuring --------------------------------------------------------------------- */

static void store_measurements(bench_job *j, const json_t *run, const char *sha)
{
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(run, "benchmarks"), i, m)
	{
		const char *name = str(m, "name");
		int64_t mid = 0;
		if (name && store_measurement_put(j->svc->store, &mid, j->id, j->repository, sha, name, m) < 0)
			base_log(BASE_LOG_ERROR, "cannot store a measurement", "run", j->ids, "benchmark", name, "error",
				base_error_last(), NULL);
	}
}

static int measure(json_t **out, bench_job *j, const char *sha, const char *const *only, size_t nonly)
{
	char resolved[41];
	measure_bench_options o = MEASURE_BENCH_OPTIONS_INIT;
	o.only = only;
	o.nonly = nonly;
	o.cancel = &j->cancel;
	int error = measure_bench_measure_rev(out, resolved, j->svc->sandbox, &j->src, sha, j->cfg, &o);
	if (error == 0 && !cancelled(j))
		store_measurements(j, *out, resolved);
	return error;
}

/* A stored measurement may stand for the base only when it measured the
 * same command the same way with the same tools. */
/* A stored base measurement stands for one taken now only when it was made
 * the same way: the same command, mode, build and toolchain. */
static int reusable(const json_t *stored, const measure_benchmark_config *b, const char *build, const json_t *toolchain)
{
	const char *cmd = str(stored, "command"), *mode = str(stored, "mode"), *built = str(stored, "build_command");
	return cmd && mode && built && !strcmp(built, build ? build : "") && !strcmp(cmd, b->command) &&
	       !strcmp(mode, b->mode == MEASURE_MODE_REGION ? "region" : "process") && toolchain &&
	       json_equal(json_object_get(stored, "toolchain"), toolchain);
}

/* The base's measurements: stored ones where they fit, the others measured
 * now.  *out: owned array; *base_run_out: owned run document of what was
 * measured now (NULL when everything was stored). */
static int base_measurements(json_t **out, json_t **base_run_out, bench_job *j, const char *sha,
			     const json_t *toolchain)
{
	json_t *arr = json_array();
	const char **missing = calloc(j->cfg->nbenchmarks + 1, sizeof(*missing));
	size_t nmissing = 0;
	int error = 0;
	*out = NULL;
	*base_run_out = NULL;
	if (!arr || !missing) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < j->cfg->nbenchmarks; i++) {
		const measure_benchmark_config *b = &j->cfg->benchmarks[i];
		json_t *row = NULL;
		if (store_measurement_find(j->svc->store, j->repository, sha, b->name, &row) == 0) {
			const json_t *data = json_object_get(row, "data");
			if (reusable(data, b, j->cfg->build, toolchain)) {
				json_array_append(arr, (json_t *)data);
				json_decref(row);
				continue;
			}
		}
		json_decref(row);
		missing[nmissing++] = b->name;
	}
	if (nmissing) {
		if ((error = measure(base_run_out, j, sha, missing, nmissing)) < 0)
			goto done;
		json_array_extend(arr, json_object_get(*base_run_out, "benchmarks"));
	}
	*out = arr;
	arr = NULL;
done:
	json_decref(arr);
	free(missing);
	return error;
}

/* Exact counts for the check run's text: the summary rounds them. */
static void exact_rows(base_buf *b, const json_t *run_benchmarks, const char *sha, const char *label)
{
	size_t i;
	json_t *m;
	json_array_foreach(run_benchmarks, i, m)
	{
		const char *status = str(m, "status");
		base_buf_printf(b, "| `%s` | %s `%.7s` | %s |", str(m, "name"), label, sha, status ? status : "?");
		if (status && !strcmp(status, "ok"))
			base_buf_printf(b, " %lld | %lld | %lld | %lld |\n",
				       (long long)json_integer_value(json_object_get(m, "instructions")),
				       (long long)json_integer_value(json_object_get(m, "estimated_cycles")),
				       (long long)json_integer_value(json_object_get(m, "l1_misses")),
				       (long long)json_integer_value(json_object_get(m, "ll_misses")));
		else
			base_buf_puts(b, " — | — | — | — |\n");
	}
}

static char *details_text(const json_t *head, const char *head_sha, const json_t *base, const char *base_sha,
			  const json_t *head_run)
{
	base_buf b;
	base_buf_init(&b, OUTPUT_MAX);
	base_buf_puts(&b, "### Exact counts\n\n| Benchmark | Commit | Status | Instructions | Estimated cycles | "
			 "L1 misses | LL misses |\n|---|---|---|---:|---:|---:|---:|\n");
	exact_rows(&b, head, head_sha, "head");
	if (base)
		exact_rows(&b, base, base_sha, "base");
	const json_t *tc = json_object_get(head_run, "toolchain");
	if (tc) {
		base_buf_printf(&b, "\nToolchain: %s", str(tc, "valgrind") ? str(tc, "valgrind") : "valgrind");
		if (str(tc, "cc"))
			base_buf_printf(&b, ", %s", str(tc, "cc"));
		base_buf_puts(&b, ".\n");
	}
	/* failures' output tails, which the summary leaves out */
	size_t i;
	json_t *m;
	json_array_foreach(head, i, m)
	{
		const char *tail = str(m, "output_tail");
		if (tail && *tail) {
			base_buf_printf(&b, "\n#### `%s` output\n\n```\n", str(m, "name"));
			for (const char *s = tail; *s; s++)
				base_buf_put(&b, *s == '`' ? "'" : s, 1);
			base_buf_puts(&b, "\n```\n");
		}
	}
	return base_buf_detach(&b);
}

/* Reads and parses the configuration at the measured commit.  Returns 0
 * with j->cfg, or the code: BASE_ENOTFOUND (no file), BASE_EINVALID /
 * BASE_ETOOBIG (a bad file; message from the parser), others (git). */
static int read_config(bench_job *j)
{
	char *yml = NULL;
	size_t len = 0;
	int error = measure_checkout_read_file(&yml, &len, &j->src, j->head, MEASURE_REPO_CONFIG_PATH, MEASURE_REPO_CONFIG_MAX);
	if (error == 0)
		error = measure_repo_config_parse(&j->cfg, yml, len);
	free(yml);
	return error;
}

/* Fetches sha into the cache.  A refused token is dropped and the job
 * retried; a GitHub failure getting the token is retried too. */
static int fetch(bench_job *j, const char *sha, int *retry_out)
{
	char resolved[41];
	j->token_error = 0;
	*retry_out = 0;
	int error = measure_checkout_fetch(resolved, &j->src, sha);
	if (error == 0)
		return 0;
	if (error == BASE_EAUTH && !j->ctx->final_attempt) {
		gh_installation_token_invalidate(j->svc->gh, j->inst);
		*retry_out = 1;
	} else if (j->token_error && gh_retry(j, j->token_error)) {
		*retry_out = 1;
	}
	return error;
}

/* ---- the job ------------------------------------------------------------------------- */

#define APPROVE_ACTION "approve-run"

/* A pull request from a fork or a first-time contributor: its code (the
 * build and benchmark commands of its own perfbot.yml) runs only once
 * someone with write access approves, as GitHub Actions asks.  The check run
 * says so, with a button; the run waits in the state "waiting" without a
 * job.  An approval that lands while this runs is seen on the second look. */
static int wait_for_approval(bench_job *j)
{
	const json_t *data = json_object_get(j->run, "data");
	int64_t cid = json_integer_value(json_object_get(data, "waiting_check_run_id"));
	int error = 0;
	if (!cid) {
		char when[32], summary[1400];
		iso_now(when);
		snprintf(summary, sizeof(summary),
			 "This pull request comes from a fork or from a first-time contributor, so perfbot does not run "
			 "its code (the build and benchmark commands of its `%s` at `%.7s`) until a maintainer approves "
			 "it.\n\nSomeone with write access to the repository can approve with the **Approve and run** "
			 "button above, or by commenting `/perfbot approve` (or `/perfbot bench`) on the pull request. "
			 "A new push to the pull request needs a new approval.",
			 MEASURE_REPO_CONFIG_PATH, j->head);
		json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s}, s:[{s:s, s:s, s:s}]}", "name",
					 CHECK_NAME, "head_sha", j->head, "status", "completed", "conclusion",
					 "action_required", "completed_at", when, "external_id", j->ids, "output", "title",
					 "Waiting for approval", "summary", summary, "actions", "label", "Approve and run",
					 "description", "Run this pull request's benchmarks", "identifier", APPROVE_ACTION);
		if (!body)
			return base_error_set(BASE_ENOMEM, "out of memory");
		error = gh_create_check_run(j->svc->gh, j->inst, j->owner, j->name, body, &cid);
		json_decref(body);
		if (error < 0) {
			if (gh_retry(j, error))
				return error;
			/* the run still waits: a comment command approves it */
			base_log(BASE_LOG_WARN, "cannot create the waiting check run", "run", j->ids, "error", base_error_last(),
				NULL);
			cid = 0;
			error = 0;
		} else {
			update_data(j, json_pack("{s:I}", "waiting_check_run_id", (json_int_t)cid));
		}
	}
	error = store_run_set_state_from(j->svc->store, j->id, STORE_RUN_IN(STORE_RUN_QUEUED) | STORE_RUN_IN(STORE_RUN_RUNNING), STORE_RUN_WAITING,
					 "waiting for approval by someone with write access");
	if (error == BASE_EEXISTS) {
		set_note(j, "superseded before it waited");
		return 0;
	}
	if (error < 0)
		return error;
	/* approved between the first read and the state change: go on now */
	json_t *now = NULL;
	if (store_run_get(j->svc->store, j->id, &now) == 0 && str(json_object_get(now, "data"), "approved_by") &&
	    store_run_set_state_from(j->svc->store, j->id, STORE_RUN_IN(STORE_RUN_WAITING), STORE_RUN_QUEUED, NULL) == 0) {
		char payload[64];
		snprintf(payload, sizeof(payload), "{\"run_id\": %lld}", (long long)j->id);
		store_job_add(j->svc->store, NULL, "bench.run", payload, str(data, "job_key"), 0);
		if (j->svc->workers)
			store_workers_wake(j->svc->workers);
	}
	json_decref(now);
	set_note(j, "waiting for approval");
	base_log(BASE_LOG_INFO, "bench run waits for approval", "run", j->ids, "repository", j->repository, "pull",
		str(data, "ref"), NULL);
	return 0;
}

/* After an approval, the waiting check run says who approved; the
 * measurement gets a check run of its own. */
static void close_waiting_check(bench_job *j)
{
	const json_t *data = json_object_get(j->run, "data");
	int64_t cid = json_integer_value(json_object_get(data, "waiting_check_run_id"));
	if (!cid || json_is_true(json_object_get(data, "waiting_check_closed")))
		return;
	char title[200], summary[300];
	const char *by = str(data, "approved_by");
	snprintf(title, sizeof(title), "Approved by @%.100s", by ? by : "a maintainer");
	snprintf(summary, sizeof(summary), "Approved by @%.100s: perfbot measures `%.7s` in a new check run.",
		 by ? by : "a maintainer", j->head);
	json_t *body = json_pack("{s:s, s:{s:s, s:s}, s:[]}", "conclusion", "neutral", "output", "title", title,
				 "summary", summary, "actions");
	if (body && gh_update_check_run(j->svc->gh, j->inst, j->owner, j->name, cid, body) == 0)
		update_data(j, json_pack("{s:b}", "waiting_check_closed", 1));
	else
		base_log(BASE_LOG_WARN, "cannot close the waiting check run", "run", j->ids, "error", base_error_last(), NULL);
	json_decref(body);
}

static int no_config(bench_job *j)
{
	char summary[2048];
	snprintf(summary, sizeof(summary),
		 "`%.7s` has no `%s`, so perfbot has nothing to measure.\n\n"
		 "Add the file to describe how to build the project and which benchmarks to run; perfbot runs each "
		 "one under CPU simulation (callgrind) and reports what got faster or slower on every push and "
		 "pull request. For example:\n\n%s\n"
		 "Try it locally first with `perfbot bench --repo .`.\n",
		 j->head, MEASURE_REPO_CONFIG_PATH, config_example);
	int error = check_complete(j, "neutral", "No perfbot configuration", summary, NULL);
	if (error < 0 && gh_retry(j, error))
		return error;
	finish(j, "done", "no .github/perfbot.yml");
	return 0;
}

static int bad_config(bench_job *j, const char *message)
{
	char summary[2048], reason[600];
	snprintf(summary, sizeof(summary),
		 "perfbot could not read `%s` at `%.7s`:\n\n```\n%.1000s\n```\n\n"
		 "Fix the file and push again. The format, for reference:\n\n%s",
		 MEASURE_REPO_CONFIG_PATH, j->head, message, config_example);
	snprintf(reason, sizeof(reason), "invalid %s: %.500s", MEASURE_REPO_CONFIG_PATH, message);
	return fail_run(j, "failure", "Invalid .github/perfbot.yml", summary, reason);
}

/* For a push: whether the branch is tracked, from the file at `after` read
 * through the API before any check run exists.  1 tracked (or unknown: the
 * checkout decides later), 0 not tracked; negative: retry. */
static int push_tracked(bench_job *j)
{
	char *yml = NULL;
	size_t len = 0;
	int error = gh_get_file(j->svc->gh, j->inst, j->owner, j->name, MEASURE_REPO_CONFIG_PATH, j->head, &yml, &len);
	int tracked = 1;
	if (error == BASE_ENOTFOUND) {
		/* no file: only the default branch gets the "add one" check run */
		tracked = !j->default_branch || !strcmp(j->branch, j->default_branch);
	} else if (error == 0) {
		measure_repo_config *cfg = NULL;
		if (measure_repo_config_parse(&cfg, yml, len) == 0)
			tracked = measure_repo_config_tracks_branch(cfg, j->branch, j->default_branch);
		measure_repo_config_free(cfg); /* an invalid file is reported on any branch */
	} else if (gh_retry(j, error)) {
		tracked = error;
	} else {
		base_log(BASE_LOG_WARN, "cannot read the configuration through the API", "run", j->ids, "error",
			base_error_last(), NULL);
	}
	free(yml);
	return tracked;
}

static void queue_optimize(bench_job *j)
{
	if (!j->svc->queue_optimize)
		return;
	measure_optimize_request req = { .repository = j->repository, .installation_id = j->inst, .commit = j->head,
					 .branch = j->branch, .clone_url = j->clone_url, .requested_by = j->sender };
	int64_t run = 0;
	if (j->svc->queue_optimize(&run, &req, j->svc->queue_optimize_payload) < 0) {
		base_log(BASE_LOG_WARN, "cannot queue the agent run of a push", "run", j->ids, "error", base_error_last(),
			NULL);
		return;
	}
	char ids[24];
	snprintf(ids, sizeof(ids), "%lld", (long long)run);
	base_log(BASE_LOG_INFO, "agent run queued after a push", "run", j->ids, "agent_run", ids, NULL);
}

static int ended_cancelled(bench_job *j)
{
	if (j->ctx->stopping && atomic_load(j->ctx->stopping) && !strcmp(j->cancel_reason, "perfbot is shutting down")) {
		/* not superseded: measure again after the restart */
		store_run_set_state(j->svc->store, j->id, STORE_RUN_QUEUED, "interrupted by a shutdown");
		set_note(j, "interrupted by a shutdown");
		return base_error_set(BASE_ERETRY, "bench run %lld interrupted by a shutdown", (long long)j->id);
	}
	char summary[256];
	snprintf(summary, sizeof(summary), "This measurement was stopped: %s.", j->cancel_reason);
	int error = j->check_id ? check_complete(j, "cancelled", "Cancelled", summary, NULL) : 0;
	if (error < 0 && gh_retry(j, error))
		return error;
	finish(j, "cancelled", j->cancel_reason);
	return 0;
}

/* Measures, compares and reports.  j->cfg is set and the head fetched. */
static int measure_and_report(bench_job *j, int tracked_push)
{
	json_t *head_run = NULL, *base_run = NULL, *base = NULL, *cmp = NULL;
	measure_bench_report rep = { 0 };
	char *text = NULL, *summary = NULL;
	char merge_base[41] = "", reason[600];
	const char *base_sha = NULL, *base_label = NULL;
	int error = 0, retry = 0;

	if ((error = measure(&head_run, j, j->head, NULL, 0)) < 0) {
		if (cancelled(j)) {
			error = ended_cancelled(j);
			goto done;
		}
		char summary_s[1200];
		snprintf(summary_s, sizeof(summary_s), "perfbot could not measure `%.7s`:\n\n```\n%.1000s\n```\n",
			 j->head, base_error_last());
		snprintf(reason, sizeof(reason), "measurement failed: %.500s", base_error_last());
		error = fail_run(j, "failure", "Measurement failed", summary_s, reason);
		goto done;
	}
	if (cancelled(j)) {
		error = ended_cancelled(j);
		goto done;
	}
	const json_t *build = json_object_get(head_run, "build");
	const char *build_status = str(build, "status");
	if (build_status && strcmp(build_status, "ok") && strcmp(build_status, "none")) {
		base_buf s;
		base_buf_init(&s, OUTPUT_MAX - 100);
		base_buf_printf(&s, "The build `%s` %s at `%.7s`, so no benchmark was measured.\n\n```\n", j->cfg->build,
			       !strcmp(build_status, "timeout") ? "timed out" : "failed", j->head);
		const char *tail = str(build, "output_tail");
		for (const char *p = tail ? tail : ""; *p; p++)
			base_buf_put(&s, *p == '`' ? "'" : p, 1);
		base_buf_puts(&s, "\n```\n");
		snprintf(reason, sizeof(reason), "build %s", !strcmp(build_status, "timeout") ? "timed out" : "failed");
		error = fail_run(j, "failure", "Build failed", base_buf_cstr(&s), reason);
		base_buf_dispose(&s);
		goto done;
	}

	/* the base: the merge base of a pull request, the push's before */
	if (j->pull) {
		if ((error = fetch(j, j->base, &retry)) == 0 &&
		    (error = measure_checkout_merge_base(merge_base, &j->src, j->head, j->base)) == 0) {
			base_sha = merge_base;
			base_label = j->base_ref;
			update_data(j, json_pack("{s:s}", "merge_base", merge_base));
		} else if (retry) {
			goto done;
		} else {
			base_log(BASE_LOG_WARN, "no merge base: reporting the head alone", "run", j->ids, "error",
				base_error_last(), NULL);
			error = 0;
		}
	} else if (j->base) {
		if ((error = fetch(j, j->base, &retry)) == 0) {
			base_sha = j->base;
			base_label = j->branch; /* the branch before the push */
		} else if (retry) {
			goto done;
		} else {
			/* a force push can make `before` unreachable */
			base_log(BASE_LOG_WARN, "the push's before is not available: reporting the head alone", "run", j->ids,
				"error", base_error_last(), NULL);
			error = 0;
		}
	}
	if (base_sha) {
		if ((error = base_measurements(&base, &base_run, j, base_sha, json_object_get(head_run, "toolchain"))) < 0) {
			if (cancelled(j)) {
				error = ended_cancelled(j);
				goto done;
			}
			base_log(BASE_LOG_WARN, "cannot measure the base: reporting the head alone", "run", j->ids, "error",
				base_error_last(), NULL);
			base_sha = NULL;
			error = 0;
		}
		if (cancelled(j)) {
			error = ended_cancelled(j);
			goto done;
		}
	}

	const json_t *head = json_object_get(head_run, "benchmarks");
	if ((error = measure_bench_compare(&cmp, base_sha ? base : NULL, head, j->cfg)) < 0 ||
	    (error = measure_bench_report_make(&rep, cmp, j->pull ? j->head_ref : j->branch, j->head, base_label,
					     base_sha)) < 0)
		goto done;
	text = details_text(head, j->head, base_sha ? base : NULL, base_sha, head_run);
	const char *title = rep.title;
	if (!base_sha) {
		/* nothing to compare with: the numbers alone */
		summary = measure_bench_format_run(head_run);
		if (!rep.failures)
			title = "Measured (no base to compare with)";
	} else {
		base_buf s;
		base_buf_init(&s, OUTPUT_MAX);
		base_buf_puts(&s, rep.summary);
		const char *bs = str(json_object_get(base_run, "build"), "status");
		if (bs && strcmp(bs, "ok") && strcmp(bs, "none"))
			base_buf_printf(&s, "\nThe base `%.7s` did not build: its benchmarks count as new.\n", base_sha);
		summary = base_buf_detach(&s);
	}
	if (!summary || !text) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	if ((error = update_data(j, json_pack("{s:O, s:s?, s:s, s:i, s:i, s:i}", "comparison", cmp, "base_commit",
					      base_sha, "conclusion", rep.conclusion, "regressions", rep.regressions,
					      "improvements", rep.improvements, "failures", rep.failures))) < 0)
		goto done;
	if ((error = check_complete(j, rep.conclusion, title, summary, text)) < 0) {
		if (gh_retry(j, error))
			goto done;
		base_log(BASE_LOG_WARN, "cannot complete a check run", "run", j->ids, "error", base_error_last(), NULL);
		error = 0;
	}
	finish(j, "done", title);
	if (tracked_push && j->cfg->optimize_on_push)
		queue_optimize(j);
done:
	measure_bench_report_dispose(&rep);
	free(text);
	free(summary);
	json_decref(cmp);
	json_decref(base);
	json_decref(base_run);
	json_decref(head_run);
	return error;
}

static int run_job(store_job_ctx *ctx, void *payload)
{
	bench_job j;
	memset(&j, 0, sizeof(j));
	j.svc = payload;
	j.ctx = ctx;
	json_t *p = json_loads(ctx->job->payload, 0, NULL);
	j.id = json_integer_value(json_object_get(p, "run_id"));
	json_decref(p);
	if (j.id <= 0)
		return base_error_set(BASE_EINVALID, "bench.run: payload without run_id");
	snprintf(j.ids, sizeof(j.ids), "%lld", (long long)j.id);
	int error = store_run_get(j.svc->store, j.id, &j.run);
	if (error == BASE_ENOTFOUND) {
		set_note(&j, "no such run");
		return 0;
	}
	if (error < 0)
		return error;
	const json_t *data = json_object_get(j.run, "data");
	j.repository = str(j.run, "repository");
	j.inst = json_integer_value(json_object_get(j.run, "installation_id"));
	j.head = str(j.run, "head_sha");
	j.base = str(j.run, "base_sha");
	j.branch = str(j.run, "branch");
	j.ref = str(data, "ref");
	j.default_branch = str(data, "default_branch");
	j.clone_url = str(data, "clone_url");
	j.head_ref = str(data, "head_ref");
	j.base_ref = str(data, "base_ref");
	j.sender = str(data, "sender");
	j.pull = (int)json_integer_value(json_object_get(data, "pull"));
	j.check_id = json_integer_value(json_object_get(data, "check_run_id"));
	j.src = (measure_checkout_source){ .data_dir = j.svc->cfg->data_dir, .repository = j.repository,
					 .url = j.clone_url, .token_cb = token_cb, .token_payload = &j };
	const char *state = str(j.run, "state");
	int tracked = 0;
	measure_run_watch *w = NULL;

	if (!j.repository || !is_sha(j.head) || split_repo(j.owner, j.name, j.repository) < 0) {
		finish(&j, "failed", "the run has no repository or head commit");
		goto done;
	}
	if (state && (!strcmp(state, "cancelled") || !strcmp(state, "cancelling"))) {
		const char *why = str(j.run, "reason");
		snprintf(j.cancel_reason, sizeof(j.cancel_reason), "%s", why ? why : "cancelled");
		error = ended_cancelled(&j);
		goto done;
	}
	if (state && (!strcmp(state, "done") || !strcmp(state, "failed") || !strcmp(state, "skipped"))) {
		set_note(&j, "already ended");
		goto done;
	}
	if (!j.svc->gh) {
		finish(&j, "failed", "no GitHub App configured");
		goto done;
	}
	const json_t *result = json_object_get(data, "result");
	if (result && j.check_id) {
		/* an earlier attempt measured and failed to report: report only */
		if ((error = check_complete_stored(&j, result)) < 0) {
			if (!gh_retry(&j, error)) {
				base_log(BASE_LOG_WARN, "cannot complete a check run", "run", j.ids, "error", base_error_last(), NULL);
				error = 0;
				finish(&j, "failed", "the check run could not be completed");
			}
			goto done;
		}
		finish(&j, "done", str(result, "title"));
		goto done;
	}
	if (state && !strcmp(state, "waiting")) {
		set_note(&j, "waiting for approval");
		goto done;
	}
	if (json_is_true(json_object_get(data, "needs_approval")) && !str(data, "approved_by")) {
		error = wait_for_approval(&j);
		goto done;
	}
	/* a newer push may have superseded it since it was read */
	if ((error = store_run_set_state_from(j.svc->store, j.id, STORE_RUN_IN(STORE_RUN_QUEUED) | STORE_RUN_IN(STORE_RUN_RUNNING), STORE_RUN_RUNNING, NULL)) == BASE_EEXISTS) {
		json_t *now = NULL;
		error = store_run_get(j.svc->store, j.id, &now);
		const char *st = error == 0 ? str(now, "state") : NULL;
		if (st && (!strcmp(st, "cancelled") || !strcmp(st, "cancelling"))) {
			const char *why = str(now, "reason");
			snprintf(j.cancel_reason, sizeof(j.cancel_reason), "%s", why ? why : "cancelled");
			error = ended_cancelled(&j);
		} else if (error == 0) {
			set_note(&j, "already ended");
		}
		json_decref(now);
		goto done;
	}
	if (error < 0)
		goto done;
	base_log(BASE_LOG_INFO, "bench run started", "run", j.ids, "repository", j.repository, "head", j.head, "base",
		j.base, "pull", j.pull ? str(data, "ref") : NULL, NULL);

	if (!j.pull) {
		if (!j.branch) {
			finish(&j, "failed", "a push run without a branch");
			goto done;
		}
		if ((tracked = push_tracked(&j)) < 0) {
			error = tracked;
			goto done;
		}
		if (!tracked) {
			char reason[400];
			snprintf(reason, sizeof(reason), "branch %.300s is not tracked", j.branch);
			finish(&j, "skipped", reason);
			goto done;
		}
	}
	close_waiting_check(&j);
	char start_summary[256];
	snprintf(start_summary, sizeof(start_summary), "perfbot is building `%.7s` and measuring its benchmarks under "
		 "CPU simulation.", j.head);
	if ((error = check_start(&j, start_summary)) < 0) {
		if (gh_retry(&j, error))
			goto done;
		char reason[400];
		snprintf(reason, sizeof(reason), "cannot create the check run: %.300s", base_error_last());
		finish(&j, "failed", reason);
		error = 0;
		goto done;
	}
	if (!j.svc->sandbox) {
		error = fail_run(&j, "failure", "Sandbox unavailable",
				 "perfbot cannot start its sandbox (bubblewrap) on this server, and it never runs "
				 "repository code outside it. The server's log says why; nothing was measured.",
				 "sandbox unavailable");
		goto done;
	}
	int retry = 0;
	if ((error = fetch(&j, j.head, &retry)) < 0) {
		if (retry)
			goto done;
		char summary[1200], reason[600];
		snprintf(summary, sizeof(summary), "perfbot could not fetch `%.7s` from the repository:\n\n```\n%.1000s\n```\n",
			 j.head, base_error_last());
		snprintf(reason, sizeof(reason), "fetch failed: %.500s", base_error_last());
		error = fail_run(&j, "failure", "Could not fetch the commit", summary, reason);
		goto done;
	}
	error = read_config(&j);
	if (error == BASE_ENOTFOUND) {
		error = no_config(&j);
		goto done;
	}
	if (error == BASE_EINVALID || error == BASE_ETOOBIG) {
		char msg[1024];
		snprintf(msg, sizeof(msg), "%s", base_error_last());
		error = bad_config(&j, msg);
		goto done;
	}
	if (error < 0) {
		char reason[600];
		snprintf(reason, sizeof(reason), "cannot read %s: %.500s", MEASURE_REPO_CONFIG_PATH, base_error_last());
		error = fail_run(&j, "failure", "Could not read the configuration", reason, reason);
		goto done;
	}
	if (!j.pull && !measure_repo_config_tracks_branch(j.cfg, j.branch, j.default_branch)) {
		/* the API could not tell before the check run was made */
		int e = check_complete(&j, "skipped", "Branch not tracked",
				       "The `branches` of `.github/perfbot.yml` do not include this branch.", NULL);
		if (e < 0 && gh_retry(&j, e)) {
			error = e;
			goto done;
		}
		finish(&j, "skipped", "branch not tracked");
		goto done;
	}
	static const char *const stop_states[] = { "cancelling", "cancelled", NULL };
	measure_run_watch_options wo = { .store = j.svc->store, .run_id = j.id, .states = stop_states,
				       .stopping = ctx->stopping, .period_ms = WATCH_MS, .fn = on_watch, .payload = &j };
	measure_run_watch_start(&w, &wo);
	error = measure_and_report(&j, !j.pull);
done:
	measure_run_watch_stop(w);
	measure_repo_config_free(j.cfg);
	json_decref(j.run);
	return error;
}

int measure_bench_jobs_register(store_workers *w, measure_services *svc)
{
	return store_workers_register_bench(w, "bench.run", run_job, svc);
}
