/* The bench-run job (measure/bench_run.c) end to end against a real SQLite
 * store and a real git repository, with GitHub, the sandbox and the clock
 * faked: what the check runs say and which state the run ends in for a
 * push, a fork's pull request that waits for approval, a superseded push,
 * an invalid .github/perfbot.yml and a rate-limited GitHub.
 *
 * The fake sandbox stands in for valgrind: a benchmark's "callgrind output"
 * counts as many instructions as the work tree's file `cost` says, so each
 * commit of the repository has its own numbers.  The job is called as the
 * workers would call it, on this thread; nothing sleeps. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "measure/bench_int.h"
#include "base/error.h"
#include "base/log.h"

#define NOW_MS 1700000000000LL        /* the fake clock's wall time */
#define NOW_ISO "2023-11-14T22:13:20Z" /* the same as GitHub writes it */

#define CONFIG_OK "benchmarks:\n  - name: sort\n    command: ./bench\nbranches: [main]\n"
#define CONFIG_BAD "benchmarks:\n  - name: sort\n    comand: ./bench\n"

/* ---- fakes ------------------------------------------------------------------------- */

typedef struct fake_github {
	json_t *calls;        /* owned: [{"op", "id", "body"}] in call order */
	int64_t next_id;
	int create_error;     /* returned once by create_check_run when set */
	long retry_wait;      /* what retry_wait_ms says */
	const char *file;     /* get_file's answer (NULL: BASE_ENOTFOUND) */
} fake_github;

static int fake_create(int64_t *id_out, int64_t inst, const char *repository, json_t *body, void *payload)
{
	fake_github *g = payload;
	(void)inst;
	assert_string_equal(repository, "octo/demo");
	if (g->create_error) {
		int e = g->create_error;
		g->create_error = 0;
		return base_error_set(e, "rate limited");
	}
	*id_out = ++g->next_id;
	json_array_append_new(g->calls, json_pack("{s:s, s:I, s:O}", "op", "create", "id", (json_int_t)*id_out, "body", body));
	return 0;
}

static int fake_update(int64_t inst, const char *repository, int64_t id, json_t *body, void *payload)
{
	fake_github *g = payload;
	(void)inst;
	assert_string_equal(repository, "octo/demo");
	json_array_append_new(g->calls, json_pack("{s:s, s:I, s:O}", "op", "update", "id", (json_int_t)id, "body", body));
	return 0;
}

static int fake_comment(int64_t inst, const char *repository, int number, const char *body, void *payload)
{
	(void)inst, (void)repository, (void)number, (void)body, (void)payload;
	fail_msg("a bench run never comments");
	return 0;
}

static int fake_get_file(char **data_out, size_t *len_out, int64_t inst, const char *repository, const char *path,
			 const char *ref, void *payload)
{
	fake_github *g = payload;
	(void)inst, (void)repository, (void)ref;
	assert_string_equal(path, ".github/perfbot.yml");
	*data_out = NULL;
	*len_out = 0;
	if (!g->file)
		return base_error_set(BASE_ENOTFOUND, "no such file");
	*data_out = strdup(g->file);
	*len_out = strlen(g->file);
	return 0;
}

static int fake_token(char **token_out, int64_t inst, void *payload)
{
	(void)inst, (void)payload;
	*token_out = strdup("ghs_fake");
	return 0;
}

static void fake_invalidate(int64_t inst, void *payload)
{
	(void)inst, (void)payload;
}

static long fake_retry_wait(void *payload)
{
	return ((fake_github *)payload)->retry_wait;
}

static int64_t fake_wall(void *payload)
{
	(void)payload;
	return NOW_MS;
}

static int64_t fake_mono(void *payload)
{
	(void)payload;
	return 5000;
}

static void fake_sleep(void *payload, int64_t ms)
{
	(void)payload, (void)ms;
	fail_msg("the job never sleeps");
}

/* The sandbox: `valgrind --version` and `cc --version` answer, a build
 * passes, and a callgrind run writes an output file whose Ir is the number
 * in the work tree's `cost`. */
static int fake_run(measure_sandbox *sb, measure_sandbox_result *out, const measure_sandbox_cmd *cmd)
{
	(void)sb;
	memset(out, 0, sizeof(*out));
	const char *text = "";
	if (cmd->argv && !strcmp(cmd->argv[0], "valgrind"))
		text = "valgrind-3.19.0\n";
	else if (cmd->argv && !strcmp(cmd->argv[0], "cc"))
		text = "cc (fake) 12\n";
	if (cmd->argv && !strcmp(cmd->argv[0], "setarch")) {
		char path[4096];
		long long cost = 0;
		snprintf(path, sizeof(path), "%s/cost", cmd->workspace);
		FILE *f = fopen(path, "r");
		assert_non_null(f);
		assert_int_equal(fscanf(f, "%lld", &cost), 1);
		fclose(f);
		for (size_t i = 0; i < cmd->nmounts; i++) {
			if (strcmp(cmd->mounts[i].sandbox_path, "/tmp/cg") != 0)
				continue;
			snprintf(path, sizeof(path), "%s/out.1", cmd->mounts[i].host_path);
			f = fopen(path, "w");
			assert_non_null(f);
			fprintf(f, "version: 1\npositions: line\nevents: Ir\nsummary: %lld\nfl=bench.c\nfn=main\n1 %lld\n",
				cost, cost);
			fclose(f);
		}
	}
	out->out = strdup(text);
	out->out_len = strlen(text);
	out->err = strdup("");
	return 0;
}

static int fake_prepare(measure_sandbox *sb, const char *host_path)
{
	(void)sb, (void)host_path;
	return 0;
}

static void fake_free(measure_sandbox *sb)
{
	(void)sb;
}

/* ---- the fixture ----------------------------------------------------------------------- */

typedef struct fixture {
	char dir[64], origin[128], data_dir[128];
	char sha[4][41];          /* cost 1000 (A), 1100 (B, +10%), 1000 (C), invalid config (D) */
	store *st;
	base_config cfg;
	fake_github gh;
	measure_github github;
	base_clock clock;
	measure_sandbox sb;
	measure_services svc;
} fixture;

static void sh(const char *cmd)
{
	if (system(cmd) != 0)
		fail_msg("command failed: %s", cmd);
}

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));
	git_libgit2_init();
	snprintf(f->dir, sizeof(f->dir), "/tmp/perfbot-benchrun-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->origin, sizeof(f->origin), "%s/origin.git", f->dir);
	snprintf(f->data_dir, sizeof(f->data_dir), "%s/var", f->dir);
	char cmd[2048];
	snprintf(cmd, sizeof(cmd),
		 "set -e; git init -q -b main %s/src; cd %s/src; mkdir -p .github; "
		 "c() { git add -A; git -c user.name=t -c user.email=t@e commit -qm \"$1\"; git rev-parse HEAD >> ../shas; }; "
		 "printf '" CONFIG_OK "' > .github/perfbot.yml; echo 1000 > cost; c A; "
		 "echo 1100 > cost; c B; echo 1000 > cost; c C; "
		 "printf '" CONFIG_BAD "' > .github/perfbot.yml; c D; "
		 "git clone -q --bare %s/src %s",
		 f->dir, f->dir, f->dir, f->origin);
	sh(cmd);
	snprintf(cmd, sizeof(cmd), "%s/shas", f->dir);
	FILE *fp = fopen(cmd, "r");
	assert_non_null(fp);
	for (int i = 0; i < 4; i++) {
		assert_non_null(fgets(f->sha[i], sizeof(f->sha[i]), fp));
		fgetc(fp);
	}
	fclose(fp);

	snprintf(cmd, sizeof(cmd), "sqlite:%s/perfbot.db", f->dir);
	assert_int_equal(store_open(&f->st, cmd), 0);
	f->cfg.data_dir = f->data_dir;
	f->gh = (fake_github){ .calls = json_array(), .file = CONFIG_OK };
	f->github = (measure_github){ .create_check_run = fake_create,
				      .update_check_run = fake_update,
				      .comment = fake_comment,
				      .get_file = fake_get_file,
				      .installation_token = fake_token,
				      .token_invalidate = fake_invalidate,
				      .retry_wait_ms = fake_retry_wait,
				      .payload = &f->gh };
	f->clock = (base_clock){ .wall_ms = fake_wall, .mono_ms = fake_mono, .sleep_ms = fake_sleep };
	f->sb = (measure_sandbox){ .name = "fake", .run = fake_run, .prepare_dir = fake_prepare, .free = fake_free };
	f->svc = (measure_services){ .cfg = &f->cfg, .store = f->st, .github = &f->github, .clock = &f->clock,
				     .sandbox = &f->sb };
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	store_free(f->st);
	json_decref(f->gh.calls);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	int rc = system(cmd);
	free(f);
	git_libgit2_shutdown();
	return rc == 0 ? 0 : -1;
}

/* Runs the job of run id as a worker would; returns what the job returns. */
static int run_job(fixture *f, int64_t id, store_job_ctx *ctx)
{
	static store_job job;
	static char payload[64];
	snprintf(payload, sizeof(payload), "{\"run_id\": %lld}", (long long)id);
	memset(&job, 0, sizeof(job));
	job.payload = payload;
	memset(ctx, 0, sizeof(*ctx));
	ctx->store = f->st;
	ctx->job = &job;
	return bench_run_job(ctx, &f->svc);
}

static json_t *get_run(fixture *f, int64_t id)
{
	json_t *r = NULL;
	assert_int_equal(store_run_get(f->st, id, &r), 0);
	return r;
}

static const char *s(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static store_run_state state_of(fixture *f, int64_t id)
{
	json_t *r = get_run(f, id);
	store_run_state st = store_run_state_of(r);
	json_decref(r);
	return st;
}

static const json_t *call(fixture *f, size_t i, const char *op)
{
	const json_t *c = json_array_get(f->gh.calls, i);
	assert_non_null(c);
	assert_string_equal(s(c, "op"), op);
	return c;
}

static const json_t *body(const json_t *c)
{
	return json_object_get(c, "body");
}

static const char *output(const json_t *c, const char *key)
{
	return s(json_object_get(body(c), "output"), key);
}

static measure_bench_push push(fixture *f, int before, int after)
{
	return (measure_bench_push){ .repository = "octo/demo", .installation_id = 7, .ref = "refs/heads/main",
				     .before = before < 0 ? BENCH_ZERO_SHA : f->sha[before], .after = f->sha[after],
				     .default_branch = "main", .clone_url = f->origin, .sender = "mona" };
}

/* ---- tests ------------------------------------------------------------------------------- */

static void push_reports_a_regression(void **state)
{
	fixture *f = *state;
	measure_bench_push p = push(f, 0, 1);
	int64_t id = 0;
	store_job_ctx ctx;
	assert_int_equal(measure_bench_queue_push(&id, &f->svc, &p), 0);
	assert_int_equal(run_job(f, id, &ctx), 0);

	assert_int_equal(json_array_size(f->gh.calls), 2);
	const json_t *c = call(f, 0, "create");
	assert_string_equal(s(body(c), "name"), "perfbot");
	assert_string_equal(s(body(c), "status"), "in_progress");
	assert_string_equal(s(body(c), "head_sha"), f->sha[1]);
	assert_string_equal(s(body(c), "started_at"), NOW_ISO);
	int64_t check = json_integer_value(json_object_get(c, "id"));

	c = call(f, 1, "update");
	assert_int_equal(json_integer_value(json_object_get(c, "id")), check);
	assert_string_equal(s(body(c), "status"), "completed");
	assert_string_equal(s(body(c), "conclusion"), "failure");
	assert_string_equal(s(body(c), "completed_at"), NOW_ISO);
	assert_string_equal(output(c, "title"), "1 regression");
	assert_non_null(strstr(output(c, "summary"), "sort"));
	assert_non_null(strstr(output(c, "summary"), "+10.00%"));
	/* the exact counts: 1100 at the head, 1000 at the base */
	assert_non_null(strstr(output(c, "text"), "| `sort` | head"));
	assert_non_null(strstr(output(c, "text"), "| 1100 |"));
	assert_non_null(strstr(output(c, "text"), "| 1000 |"));
	assert_non_null(strstr(output(c, "text"), "valgrind-3.19.0"));

	json_t *r = get_run(f, id);
	assert_int_equal(store_run_state_of(r), STORE_RUN_DONE);
	assert_string_equal(s(r, "reason"), "1 regression");
	const json_t *d = json_object_get(r, "data");
	assert_int_equal(json_integer_value(json_object_get(d, "check_run_id")), check);
	assert_string_equal(s(d, "base_commit"), f->sha[0]);
	assert_int_equal(json_integer_value(json_object_get(d, "regressions")), 1);
	json_decref(r);

	/* the job again (a redelivery): the run has ended, GitHub hears nothing */
	assert_int_equal(run_job(f, id, &ctx), 0);
	assert_int_equal(json_array_size(f->gh.calls), 2);
}

static void fork_pull_waits_for_approval(void **state)
{
	fixture *f = *state;
	measure_bench_pull pr = { .repository = "octo/demo", .installation_id = 7, .number = 12,
				  .head_sha = f->sha[2], .head_ref = "feature", .base_sha = f->sha[0],
				  .base_ref = "main", .clone_url = f->origin, .trigger = "pull_request",
				  .sender = "stranger", .needs_approval = 1 };
	int64_t id = 0, approved = 0;
	store_job_ctx ctx;
	assert_int_equal(measure_bench_queue_pull(&id, &f->svc, &pr), 0);
	assert_int_equal(run_job(f, id, &ctx), 0);

	/* nothing runs: one check run asks for an approval */
	assert_int_equal(json_array_size(f->gh.calls), 1);
	const json_t *c = call(f, 0, "create");
	assert_string_equal(s(body(c), "conclusion"), "action_required");
	assert_string_equal(output(c, "title"), "Waiting for approval");
	assert_string_equal(s(json_array_get(json_object_get(body(c), "actions"), 0), "identifier"), "approve-run");
	int64_t waiting_check = json_integer_value(json_object_get(c, "id"));
	assert_int_equal(state_of(f, id), STORE_RUN_WAITING);
	assert_string_equal(ctx.note + strcspn(ctx.note, ":") + 2, "waiting for approval");

	/* a maintainer approves: the run is queued again, at the clock's time */
	assert_int_equal(measure_bench_approve(&approved, &f->svc, "octo/demo", 0, 12, "maintainer", "comment"), 0);
	assert_int_equal(approved, id);
	json_t *r = get_run(f, id);
	assert_int_equal(store_run_state_of(r), STORE_RUN_QUEUED);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "data"), "approved_at_ms")), NOW_MS);
	json_decref(r);
	/* nothing waits any more */
	assert_int_equal(measure_bench_approve(NULL, &f->svc, "octo/demo", 0, 12, "maintainer", "comment"),
			 BASE_ENOTFOUND);

	assert_int_equal(run_job(f, id, &ctx), 0);
	assert_int_equal(json_array_size(f->gh.calls), 4);
	c = call(f, 1, "update");
	assert_int_equal(json_integer_value(json_object_get(c, "id")), waiting_check);
	assert_string_equal(output(c, "title"), "Approved by @maintainer");
	c = call(f, 2, "create");
	assert_string_equal(s(body(c), "status"), "in_progress");
	c = call(f, 3, "update");
	/* C costs what A does: measured against the merge base A, no change */
	assert_string_equal(s(body(c), "conclusion"), "success");
	assert_string_equal(output(c, "title"), "No change");
	assert_int_equal(state_of(f, id), STORE_RUN_DONE);
}

static void newer_push_supersedes(void **state)
{
	fixture *f = *state;
	measure_bench_push p1 = push(f, 0, 1), p2 = push(f, 1, 2);
	int64_t r1 = 0, r2 = 0;
	store_job_ctx ctx;
	assert_int_equal(measure_bench_queue_push(&r1, &f->svc, &p1), 0);
	assert_int_equal(measure_bench_queue_push(&r2, &f->svc, &p2), 0);
	assert_int_equal(state_of(f, r1), STORE_RUN_CANCELLED);

	/* the older run's job, had a worker claimed it already, only ends it */
	assert_int_equal(run_job(f, r1, &ctx), 0);
	assert_int_equal(json_array_size(f->gh.calls), 0);
	json_t *r = get_run(f, r1);
	assert_int_equal(store_run_state_of(r), STORE_RUN_CANCELLED);
	char want[64];
	snprintf(want, sizeof(want), "superseded by run %lld", (long long)r2);
	assert_string_equal(s(r, "reason"), want);
	json_decref(r);

	/* the newer one measures C against B: 1000 after 1100 is an improvement */
	assert_int_equal(run_job(f, r2, &ctx), 0);
	assert_int_equal(json_array_size(f->gh.calls), 2);
	const json_t *c = call(f, 1, "update");
	assert_string_equal(s(body(c), "conclusion"), "success");
	assert_string_equal(output(c, "title"), "1 improvement");
	assert_int_equal(state_of(f, r2), STORE_RUN_DONE);
}

static void invalid_config_names_the_line(void **state)
{
	fixture *f = *state;
	f->gh.file = CONFIG_BAD;
	measure_bench_push p = push(f, 2, 3);
	int64_t id = 0;
	store_job_ctx ctx;
	assert_int_equal(measure_bench_queue_push(&id, &f->svc, &p), 0);
	assert_int_equal(run_job(f, id, &ctx), 0);

	assert_int_equal(json_array_size(f->gh.calls), 2);
	assert_string_equal(s(body(call(f, 0, "create")), "status"), "in_progress");
	const json_t *c = call(f, 1, "update");
	assert_string_equal(s(body(c), "conclusion"), "failure");
	assert_string_equal(output(c, "title"), "Invalid .github/perfbot.yml");
	assert_non_null(strstr(output(c, "summary"), "line 3"));
	assert_non_null(strstr(output(c, "summary"), "comand"));

	json_t *r = get_run(f, id);
	assert_int_equal(store_run_state_of(r), STORE_RUN_FAILED);
	assert_non_null(strstr(s(r, "reason"), "invalid .github/perfbot.yml: line 3"));
	json_decref(r);
}

static void rate_limit_retries_at_the_time_github_names(void **state)
{
	fixture *f = *state;
	f->gh.create_error = BASE_ERETRY;
	f->gh.retry_wait = 30000;
	measure_bench_push p = push(f, 0, 1);
	int64_t id = 0;
	store_job_ctx ctx;
	assert_int_equal(measure_bench_queue_push(&id, &f->svc, &p), 0);
	assert_int_equal(run_job(f, id, &ctx), BASE_ERETRY);
	assert_int_equal(ctx.retry_at_ms, NOW_MS + 30000);
	assert_int_equal(json_array_size(f->gh.calls), 0);
	assert_int_equal(state_of(f, id), STORE_RUN_RUNNING);

	/* the retry measures and reports with one check run */
	assert_int_equal(run_job(f, id, &ctx), 0);
	assert_int_equal(json_array_size(f->gh.calls), 2);
	assert_string_equal(s(body(call(f, 0, "create")), "status"), "in_progress");
	assert_string_equal(s(body(call(f, 1, "update")), "status"), "completed");
	assert_int_equal(state_of(f, id), STORE_RUN_DONE);
}

int main(void)
{
	base_log_configure(BASE_LOG_WARN, 0, 2);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(push_reports_a_regression, setup, teardown),
		cmocka_unit_test_setup_teardown(fork_pull_waits_for_approval, setup, teardown),
		cmocka_unit_test_setup_teardown(newer_push_supersedes, setup, teardown),
		cmocka_unit_test_setup_teardown(invalid_config_names_the_line, setup, teardown),
		cmocka_unit_test_setup_teardown(rate_limit_retries_at_the_time_github_names, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
