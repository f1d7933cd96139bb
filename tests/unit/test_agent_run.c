/* Agent runs (agent/run_*.c) against a real SQLite store, a fake GitHub
 * (agent_github) and a fake clock: queueing and its one-run-per-repository
 * rule, cancel, approval through the pull request hook, the "agent.run"
 * job up to the point where it needs the sandbox (its check run, its
 * report and its comment), and the Markdown of a report.  Runs that need
 * the agent command or the sandbox are in tests/integration/agent-run.test.js. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <git2.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/run_int.h"
#include "agent/services.h"
#include "base/error.h"
#include "base/json.h"

#define NOW_MS 1780000000000LL
#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

/* ---- fakes ------------------------------------------------------------------- */

typedef struct fake_github {
	json_t *created;        /* array of the bodies of create_check_run */
	json_t *updated;        /* array of {id, body} of update_check_run */
	json_t *comments;       /* array of {number, text} */
	int tokens;             /* git_token calls */
	int64_t inst_seen;
	char repo_seen[128];
} fake_github;

static int fake_create_check_run(int64_t *id_out, int64_t inst, const char *repository, json_t *body, void *payload)
{
	fake_github *g = payload;
	g->inst_seen = inst;
	snprintf(g->repo_seen, sizeof(g->repo_seen), "%s", repository);
	json_array_append_new(g->created, json_deep_copy(body));
	*id_out = 1000 + (int64_t)json_array_size(g->created);
	return 0;
}

static int fake_update_check_run(int64_t inst, const char *repository, int64_t id, json_t *body, void *payload)
{
	fake_github *g = payload;
	(void)inst;
	(void)repository;
	json_array_append_new(g->updated, json_pack("{s:I,s:O}", "id", (json_int_t)id, "body", body));
	return 0;
}

static int fake_create_comment(int64_t *id_out, int64_t inst, const char *repository, int number, const char *text,
			       void *payload)
{
	fake_github *g = payload;
	(void)inst;
	(void)repository;
	json_array_append_new(g->comments, json_pack("{s:i,s:s}", "number", number, "text", text));
	*id_out = 5000 + (int64_t)json_array_size(g->comments);
	return 0;
}

static int fake_git_token(char *buf, size_t size, int64_t inst, void *payload)
{
	fake_github *g = payload;
	(void)inst;
	g->tokens++;
	snprintf(buf, size, "fake-token");
	return 0;
}

static int64_t fake_now(void *payload)
{
	return *(int64_t *)payload;
}

static void fake_sleep(void *payload, int64_t ms)
{
	*(int64_t *)payload += ms;
}

/* The pull request hook: what agent/ hands over, stored as pr/ would (its
 * own job kind here, so that nothing of pr/ is needed). */
typedef struct fake_pr {
	int calls;
	int64_t run_id;
	char user[64], via[64];
	json_t *run_update;
} fake_pr;

static int fake_queue_pr(store *st, const store_approval *a, void *payload)
{
	fake_pr *p = payload;
	p->calls++;
	p->run_id = a->run_id;
	snprintf(p->user, sizeof(p->user), "%s", a->user);
	snprintf(p->via, sizeof(p->via), "%s", a->via);
	json_decref(p->run_update);
	p->run_update = json_deep_copy(a->run_update);
	store_approval with_job = *a;
	with_job.job_kind = "test.open-pull";
	with_job.job_payload = "{}";
	with_job.job_key = "test.open-pull";
	return store_approval_put(st, &with_job);
}

/* ---- fixture ---------------------------------------------------------------- */

typedef struct fixture {
	char dir[64];
	char data_dir[128];
	char origin[128];           /* a git repository the jobs clone from */
	char sha[41];               /* its commit with .github/perfbot.yml */
	store *st;
	base_config cfg;
	fake_github gh;
	agent_github gh_if;
	int64_t now;
	base_clock clock;
	fake_pr pr;
	agent_services svc;
} fixture;

static void sh(const char *cmd)
{
	if (system(cmd) != 0)
		fail_msg("command failed: %s", cmd);
}

static int setup(void **state)
{
	git_libgit2_init();
	fixture *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/perfbot-agentrun-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->data_dir, sizeof(f->data_dir), "%s/data", f->dir);
	snprintf(f->origin, sizeof(f->origin), "%s/origin", f->dir);
	char url[128];
	snprintf(url, sizeof(url), "sqlite:%s/perfbot.db", f->dir);
	if (store_open(&f->st, url) < 0)
		return -1;
	f->cfg.data_dir = f->data_dir;
	f->gh = (fake_github){ .created = json_array(), .updated = json_array(), .comments = json_array() };
	f->gh_if = (agent_github){ .create_check_run = fake_create_check_run, .update_check_run = fake_update_check_run,
				   .create_comment = fake_create_comment, .git_token = fake_git_token, .payload = &f->gh };
	f->now = NOW_MS;
	f->clock = (base_clock){ .wall_ms = fake_now, .mono_ms = fake_now, .sleep_ms = fake_sleep, .payload = &f->now };
	f->svc = (agent_services){ .cfg = &f->cfg, .store = f->st, .github = &f->gh_if, .clock = &f->clock,
				   .queue_pr = fake_queue_pr, .queue_pr_payload = &f->pr };
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	store_free(f->st);
	json_decref(f->gh.created);
	json_decref(f->gh.updated);
	json_decref(f->gh.comments);
	json_decref(f->pr.run_update);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	sh(cmd);
	free(f);
	git_libgit2_shutdown();
	return 0;
}

/* A repository with a configuration of one benchmark; f->sha its commit. */
static void make_origin(fixture *f)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd),
		 "set -e; git init -q -b main %s; cd %s; mkdir -p .github; "
		 "printf 'benchmarks:\\n  - name: parse\\n    command: ./parse\\n' > .github/perfbot.yml; "
		 "git add -A; git -c user.name=t -c user.email=t@e commit -qm c; git rev-parse HEAD > ../sha",
		 f->origin, f->origin);
	sh(cmd);
	snprintf(cmd, sizeof(cmd), "%s/sha", f->dir);
	FILE *fp = fopen(cmd, "r");
	assert_non_null(fp);
	assert_non_null(fgets(f->sha, sizeof(f->sha), fp));
	fclose(fp);
}

static agent_run_request comment_request(const char *commit)
{
	return (agent_run_request){ .repository = "octo/demo", .installation_id = 7, .commit = commit,
				    .branch = "main", .clone_url = "https://github.com/octo/demo.git",
				    .trigger = "comment", .requested_by = "mona", .thread_number = 12 };
}

static json_t *run_of(fixture *f, int64_t id)
{
	json_t *r = NULL;
	assert_int_equal(store_run_get(f->st, id, &r), 0);
	return r;
}

static store_run_state state_of(fixture *f, int64_t id)
{
	json_t *r = run_of(f, id);
	store_run_state s = store_run_state_of(r);
	json_decref(r);
	return s;
}

/* The state of the job with this dedupe key (owned), or NULL. */
static char *job_state(fixture *f, const char *key)
{
	json_t *jobs = NULL;
	char *out = NULL;
	assert_int_equal(store_job_list(f->st, &jobs, 100), 0);
	size_t i;
	json_t *j;
	json_array_foreach(jobs, i, j)
	{
		const char *k = base_json_str(j, "dedupe_key");
		if (!out && k && !strcmp(k, key))
			out = strdup(base_json_str(j, "state"));
	}
	json_decref(jobs);
	return out;
}

static char *run_job_state(fixture *f, int64_t run_id)
{
	char key[64];
	snprintf(key, sizeof(key), "agent.run:%" PRId64, run_id);
	return job_state(f, key);
}

/* ---- queue and cancel ------------------------------------------------------- */

static void queue_records_run_and_job(void **state)
{
	fixture *f = *state;
	agent_run_request req = comment_request(SHA_A);
	const char *names[] = { "parse" };
	req.benchmarks = names;
	req.nbenchmarks = 1;
	int64_t id = 0;
	assert_int_equal(agent_run_queue(&id, &f->svc, &req), 0);
	assert_true(id > 0);
	json_t *r = run_of(f, id);
	assert_int_equal(store_run_kind_of(r), STORE_RUN_AGENT);
	assert_int_equal(store_run_state_of(r), STORE_RUN_QUEUED);
	assert_string_equal(base_json_str(r, "repository"), "octo/demo");
	assert_string_equal(base_json_str(r, "trigger"), "comment");
	const json_t *d = json_object_get(r, "data");
	assert_string_equal(base_json_str(d, "requested_by"), "mona");
	assert_int_equal(base_json_int(d, "thread_number"), 12);
	assert_string_equal(json_string_value(json_array_get(json_object_get(d, "benchmarks"), 0)), "parse");
	json_decref(r);
	char *js = run_job_state(f, id);
	assert_string_equal(js, "queued");
	free(js);

	/* one run per repository: the second request names the first and how to stop it */
	int64_t id2 = 0;
	assert_int_equal(agent_run_queue(&id2, &f->svc, &req), BASE_EEXISTS);
	assert_int_equal(id2, 0);
	char want[160];
	snprintf(want, sizeof(want), "run %" PRId64 " is queued for octo/demo (requested by @mona); `/perfbot cancel %" PRId64 "`",
		 id, id);
	assert_non_null(strstr(base_error_last(), want));
}

static void newer_push_replaces_queued_push(void **state)
{
	fixture *f = *state;
	agent_run_request req = comment_request(SHA_A);
	req.trigger = "push";
	int64_t first = 0, second = 0;
	assert_int_equal(agent_run_queue(&first, &f->svc, &req), 0);
	assert_int_equal(agent_run_queue(&second, &f->svc, &req), 0);
	assert_true(second > first);
	json_t *r = run_of(f, first);
	assert_int_equal(store_run_state_of(r), STORE_RUN_CANCELLED);
	assert_string_equal(base_json_str(r, "reason"), "replaced by a newer push");
	json_decref(r);
	char *js = run_job_state(f, first);
	assert_string_equal(js, "cancelled");
	free(js);
	assert_int_equal(state_of(f, second), STORE_RUN_QUEUED);

	/* a comment does not replace anything */
	int64_t third = 0;
	agent_run_request c = comment_request(SHA_A);
	assert_int_equal(agent_run_queue(&third, &f->svc, &c), BASE_EEXISTS);
}

static void cancel_queued_run(void **state)
{
	fixture *f = *state;
	agent_run_request req = comment_request(SHA_A);
	int64_t id = 0;
	assert_int_equal(agent_run_queue(&id, &f->svc, &req), 0);

	/* a run of another repository reads as unknown */
	assert_int_equal(agent_run_cancel(&f->svc, "octo/other", id, "mona"), BASE_ENOTFOUND);
	assert_non_null(strstr(base_error_last(), "is not a run of octo/other"));
	assert_int_equal(state_of(f, id), STORE_RUN_QUEUED);

	f->now = NOW_MS + 1234;
	assert_int_equal(agent_run_cancel(&f->svc, "octo/demo", id, "mona"), 0);
	json_t *r = run_of(f, id);
	assert_int_equal(store_run_state_of(r), STORE_RUN_CANCELLED);
	assert_string_equal(base_json_str(r, "reason"), "cancelled by @mona");
	const json_t *d = json_object_get(r, "data");
	assert_string_equal(base_json_str(d, "cancelled_by"), "mona");
	assert_int_equal(base_json_int(d, "cancelled_at_ms"), NOW_MS + 1234);
	json_decref(r);
	char *js = run_job_state(f, id);
	assert_string_equal(js, "cancelled");
	free(js);

	/* once ended, a cancel is refused with the state */
	assert_int_equal(agent_run_cancel(&f->svc, "octo/demo", id, "mona"), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "has already ended (cancelled)"));
	/* the repository is free again */
	int64_t next = 0;
	assert_int_equal(agent_run_queue(&next, &f->svc, &req), 0);
}

/* ---- approval ----------------------------------------------------------------- */

/* A run of octo/demo in `state`, with a stored proposal when with_proposal. */
static int64_t run_in_state(fixture *f, store_run_state s, int with_proposal)
{
	agent_run_request req = comment_request(SHA_A);
	int64_t id = 0;
	assert_int_equal(agent_run_create(&id, &f->svc, &req, NULL), 0);
	assert_int_equal(store_run_set_state(f->st, id, s, NULL), 0);
	if (with_proposal) {
		json_t *p = json_pack("{s:s}", "diff", "--- a/x\n+++ b/x\n");
		assert_int_equal(store_proposal_put(f->st, id, p), 0);
		json_decref(p);
	}
	return id;
}

static void approve_proposal_queues_pr_job(void **state)
{
	fixture *f = *state;
	int64_t id = run_in_state(f, STORE_RUN_PROPOSAL, 1);
	f->now = NOW_MS + 99;
	assert_int_equal(agent_run_approve(&f->svc, "octo/demo", id, "mona", "button"), 0);
	assert_int_equal(f->pr.calls, 1);
	assert_int_equal(f->pr.run_id, id);
	assert_string_equal(f->pr.user, "mona");
	assert_string_equal(f->pr.via, "button");
	assert_string_equal(base_json_str(f->pr.run_update, "approved_by"), "mona");
	assert_int_equal(base_json_int(f->pr.run_update, "approved_at_ms"), NOW_MS + 99);
	/* the hook's job was stored with the approval */
	char *js = job_state(f, "test.open-pull");
	assert_non_null(js);
	assert_string_equal(js, "queued");
	free(js);
	json_t *r = run_of(f, id);
	assert_string_equal(base_json_str(json_object_get(r, "data"), "approved_via"), "button");
	json_decref(r);

	/* twice: refused, naming the first approval */
	assert_int_equal(agent_run_approve(&f->svc, "octo/demo", id, "hubot", "comment"), BASE_EEXISTS);
	assert_non_null(strstr(base_error_last(), "was already approved by @mona (button)"));
}

static void approve_refuses_other_states(void **state)
{
	fixture *f = *state;
	static const store_run_state refused[] = { STORE_RUN_QUEUED, STORE_RUN_RUNNING, STORE_RUN_FAILED,
						   STORE_RUN_NO_IMPROVEMENT, STORE_RUN_CANCELLED };
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		int64_t id = run_in_state(f, refused[i], 1);
		assert_int_equal(agent_run_approve(&f->svc, "octo/demo", id, "mona", "comment"), BASE_ENOTFOUND);
		char want[80];
		snprintf(want, sizeof(want), "has no verified proposal (it is %s)", store_run_state_name(refused[i]));
		assert_non_null(strstr(base_error_last(), want));
	}
	/* a proposal state without a stored proposal */
	int64_t bare = run_in_state(f, STORE_RUN_PROPOSAL, 0);
	assert_int_equal(agent_run_approve(&f->svc, "octo/demo", bare, "mona", "comment"), BASE_ENOTFOUND);
	/* another repository's run, a bench run */
	int64_t other = run_in_state(f, STORE_RUN_PROPOSAL, 1);
	assert_int_equal(agent_run_approve(&f->svc, "octo/other", other, "mona", "comment"), BASE_ENOTFOUND);
	assert_non_null(strstr(base_error_last(), "is not a run of octo/other"));
	store_run_spec bench = { .kind = STORE_RUN_BENCH, .repository = "octo/demo", .head_sha = SHA_A,
				 .trigger = "push" };
	int64_t bid = 0;
	assert_int_equal(store_run_create(f->st, &bid, &bench), 0);
	assert_int_equal(agent_run_approve(&f->svc, "octo/demo", bid, "mona", "comment"), BASE_ENOTFOUND);
	assert_non_null(strstr(base_error_last(), "is not an agent run"));
	assert_int_equal(f->pr.calls, 0);
	char *js = job_state(f, "test.open-pull");
	assert_null(js);

	/* without the hook (the CLI), nothing can be approved */
	f->svc.queue_pr = NULL;
	assert_int_equal(agent_run_approve(&f->svc, "octo/demo", other, "mona", "comment"), BASE_EINVALID);
}

/* ---- the job ------------------------------------------------------------------ */

/* Claims the queued job and runs the "agent.run" handler on it. */
static void run_queued_job(fixture *f, char *note, size_t note_size)
{
	store_job job;
	memset(&job, 0, sizeof(job));
	assert_int_equal(store_job_claim(f->st, &job, "test", 60000), 0);
	assert_string_equal(job.kind, AGENT_RUN_JOB_KIND);
	atomic_int stopping;
	atomic_init(&stopping, 0);
	store_job_ctx ctx = { .store = f->st, .job = &job, .stopping = &stopping };
	assert_int_equal(agent_run_job(&ctx, &f->svc), 0);
	snprintf(note, note_size, "%s", ctx.note);
	store_job_dispose(&job);
}

/* The job fetches the commit, opens its check run, then stops where the
 * sandbox is needed: the outcome completes the check run and is answered in
 * the thread, and the run's record keeps the ids and the clock's times. */
static void job_reports_on_github(void **state)
{
	fixture *f = *state;
	make_origin(f);
	agent_run_request req = comment_request(f->sha);
	req.clone_url = f->origin;
	int64_t id = 0;
	assert_int_equal(agent_run_queue(&id, &f->svc, &req), 0);
	char note[256];
	run_queued_job(f, note, sizeof(note));
	char want[300];
	snprintf(want, sizeof(want), "run %" PRId64 ": failed", id);
	assert_string_equal(note, want);

	/* the check run, created in progress on the commit */
	assert_int_equal(json_array_size(f->gh.created), 1);
	const json_t *c = json_array_get(f->gh.created, 0);
	assert_string_equal(base_json_str(c, "name"), "perfbot optimize");
	assert_string_equal(base_json_str(c, "head_sha"), f->sha);
	assert_string_equal(base_json_str(c, "status"), "in_progress");
	char ext[24];
	snprintf(ext, sizeof(ext), "%" PRId64, id);
	assert_string_equal(base_json_str(c, "external_id"), ext);
	assert_int_equal(f->gh.inst_seen, 7);
	assert_string_equal(f->gh.repo_seen, "octo/demo");

	/* completed with the outcome */
	assert_int_equal(json_array_size(f->gh.updated), 1);
	const json_t *u = json_array_get(f->gh.updated, 0);
	assert_int_equal(base_json_int(u, "id"), 1001);
	const json_t *body = json_object_get(u, "body");
	assert_string_equal(base_json_str(body, "status"), "completed");
	assert_string_equal(base_json_str(body, "conclusion"), "failure");
	const json_t *out = json_object_get(body, "output");
	assert_string_equal(base_json_str(out, "title"), "No improvement verified (failed)");
	assert_non_null(strstr(base_json_str(out, "summary"), "sandbox: the sandbox is unavailable"));
	assert_int_equal(json_array_size(json_object_get(body, "actions")), 0);

	/* answered in the thread */
	assert_int_equal(json_array_size(f->gh.comments), 1);
	const json_t *cm = json_array_get(f->gh.comments, 0);
	assert_int_equal(base_json_int(cm, "number"), 12);
	snprintf(want, sizeof(want), "### perfbot run %" PRId64 " ended without a verified improvement (failed): sandbox",
		 id);
	assert_non_null(strstr(base_json_str(cm, "text"), want));

	json_t *r = run_of(f, id);
	assert_int_equal(store_run_state_of(r), STORE_RUN_FAILED);
	const json_t *d = json_object_get(r, "data");
	assert_int_equal(base_json_int(d, "check_run_id"), 1001);
	assert_int_equal(base_json_int(d, "comment_id"), 5001);
	assert_true(json_is_true(json_object_get(d, "reported")));
	assert_string_equal(base_json_str(d, "commit"), f->sha);
	assert_string_equal(base_json_str(json_object_get(d, "outcome"), "status"), "failed");
	assert_int_equal(base_json_int(json_object_get(d, "timings"), "started_ms"), NOW_MS);
	json_decref(r);
}

/* Without GitHub the same job reports nothing and still records its end;
 * a job for a run that ended meanwhile does nothing. */
static void job_without_github(void **state)
{
	fixture *f = *state;
	make_origin(f);
	f->svc.github = NULL;
	agent_run_request req = comment_request(f->sha);
	req.clone_url = f->origin;
	int64_t id = 0;
	assert_int_equal(agent_run_queue(&id, &f->svc, &req), 0);
	char note[256];
	run_queued_job(f, note, sizeof(note));
	assert_int_equal(json_array_size(f->gh.created) + json_array_size(f->gh.comments), 0);
	json_t *r = run_of(f, id);
	assert_int_equal(store_run_state_of(r), STORE_RUN_FAILED);
	assert_null(json_object_get(json_object_get(r, "data"), "reported"));
	json_decref(r);

	/* a run cancelled before its job started */
	int64_t id2 = 0;
	assert_int_equal(agent_run_queue(&id2, &f->svc, &req), 0);
	assert_int_equal(store_run_set_state(f->st, id2, STORE_RUN_CANCELLED, "cancelled by @mona"), 0);
	run_queued_job(f, note, sizeof(note));
	char want[64];
	snprintf(want, sizeof(want), "run %" PRId64 " is cancelled: nothing to do", id2);
	assert_string_equal(note, want);
}

/* ---- the report ---------------------------------------------------------------- */

static agent_run_report proposal_report(json_t *verified, json_t *budgets)
{
	return (agent_run_report){ .run_id = 42, .sha = SHA_A, .state = STORE_RUN_PROPOSAL, .reason = "verified",
				   .verified = verified,
				   .summary = "Faster parse. cc @octocat [x](javascript:alert(1)) <img src=x>",
				   .diff = "--- a/p.c\n+++ b/p.c\n@@ -1 +1 @@\n-```\n+````\n", .budgets = budgets };
}

static void report_of_a_proposal(void **state)
{
	(void)state;
	json_t *verified = json_pack("{s:[{s:s,s:i,s:i,s:f,s:s}],s:s}", "benchmarks", "name", "parse", "base", 1000,
				     "head", 800, "change_pct", -20.0, "verdict", "improved", "log", "build ok\n");
	json_t *budgets = json_pack("{s:i,s:i,s:i}", "tool_calls", 31, "benchmark_runs", 4, "wall_ms", 65000);
	agent_run_report rep = proposal_report(verified, budgets);

	base_buf b = BASE_BUF_INIT(1 << 20);
	agent_run_report_comment(&b, &rep);
	const char *t = base_buf_cstr(&b);
	assert_non_null(strstr(t, "### perfbot run 42 found a verified speed-up of `aaaaaaa`."));
	assert_non_null(strstr(t, "| `parse` | 1000 | 800 |"));
	/* the agent's words are text: no mention, link or tag */
	assert_null(strstr(t, "@octocat"));
	assert_non_null(strstr(t, "@\xe2\x80\x8boctocat"));
	assert_non_null(strstr(t, "\\[x\\](javascript:alert(1))"));
	assert_null(strstr(t, "<img"));
	/* the diff in a fence longer than any backtick run inside it */
	assert_non_null(strstr(t, "\n`````diff\n--- a/p.c\n"));
	assert_non_null(strstr(t, "+````\n`````\n"));
	assert_non_null(strstr(t, "comment `/perfbot apply 42`"));
	assert_non_null(strstr(t, "Budgets used: 31 tool calls, 4 benchmark runs, 65 s."));
	base_buf_dispose(&b);

	/* the check run: a title naming the gain, the button, the log */
	json_t *body = agent_run_report_check_done(&rep);
	assert_non_null(body);
	assert_string_equal(base_json_str(body, "conclusion"), "neutral");
	const json_t *out = json_object_get(body, "output");
	assert_non_null(strstr(base_json_str(out, "title"), "Verified: parse "));
	assert_non_null(strstr(base_json_str(out, "text"), "<summary>Verification log</summary>"));
	assert_string_equal(base_json_str(json_array_get(json_object_get(body, "actions"), 0), "identifier"), "open-pr");
	json_decref(body);

	/* a long diff is cut at a line end, with the way to see all of it */
	base_buf d = BASE_BUF_INIT(1 << 20);
	agent_run_report_diff(&d, "line one\nline two\nline three\n", 12, 42);
	assert_non_null(strstr(base_buf_cstr(&d), "line one\n```"));
	assert_null(strstr(base_buf_cstr(&d), "line two"));
	assert_non_null(strstr(base_buf_cstr(&d), "9 of 29 bytes shown. `perfbot runs show 42`"));
	base_buf_dispose(&d);
	json_decref(verified);
	json_decref(budgets);
}

static void report_of_a_failure(void **state)
{
	(void)state;
	agent_run_report rep = { .run_id = 7, .sha = SHA_A, .state = STORE_RUN_NO_IMPROVEMENT,
				 .reason = "the agent said *nothing* to @team" };
	char title[200];
	agent_run_report_title(title, sizeof(title), &rep);
	assert_string_equal(title, "No improvement verified (no_improvement)");
	base_buf b = BASE_BUF_INIT(1 << 20);
	agent_run_report_comment(&b, &rep);
	assert_string_equal(base_buf_cstr(&b), "### perfbot run 7 ended without a verified improvement (no_improvement): "
					       "the agent said \\*nothing\\* to @\xe2\x80\x8bteam.\n\n");
	base_buf_dispose(&b);
	rep.state = STORE_RUN_FAILED;
	json_t *body = agent_run_report_check_done(&rep);
	assert_string_equal(base_json_str(body, "conclusion"), "failure");
	assert_int_equal(json_array_size(json_object_get(body, "actions")), 0);
	json_decref(body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(queue_records_run_and_job, setup, teardown),
		cmocka_unit_test_setup_teardown(newer_push_replaces_queued_push, setup, teardown),
		cmocka_unit_test_setup_teardown(cancel_queued_run, setup, teardown),
		cmocka_unit_test_setup_teardown(approve_proposal_queues_pr_job, setup, teardown),
		cmocka_unit_test_setup_teardown(approve_refuses_other_states, setup, teardown),
		cmocka_unit_test_setup_teardown(job_reports_on_github, setup, teardown),
		cmocka_unit_test_setup_teardown(job_without_github, setup, teardown),
		cmocka_unit_test(report_of_a_proposal),
		cmocka_unit_test(report_of_a_failure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
