/* The fixture both halves of pr/'s tests share (tests/unit/test_pr.c and
 * tests/integration/c/test_pr_push.c): a work repository with a bare copy
 * and the diffs made from it, the fake pr_github that records what pr/ asked
 * of GitHub, and a proposal to open.  Included once per test program after
 * cmocka.h; every definition is static to that program. */
#ifndef PERFBOT_TESTS_PR_FIXTURE_H
#define PERFBOT_TESTS_PR_FIXTURE_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/error.h"
#include "base/log.h"
#include "pr/pr.h"

#define REPO "acme/widget"

static char tmp[256];      /* the fixture's directory: work/, srv/ (the bare remote), *.diff */
static char base_sha[41];
static char *good_diff, *binary_diff, *binary_nodata_diff;

/* ---- shell helpers ------------------------------------------------------- */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	int rc = system(cmd);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* First line of a command's output, trailing newline removed. */
static void sh_out(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void sh_out(char *out, size_t cap, const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	out[0] = '\0';
	FILE *f = popen(cmd, "r");
	if (!f)
		return;
	size_t n = fread(out, 1, cap - 1, f);
	out[n] = '\0';
	pclose(f);
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
		out[--n] = '\0';
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = calloc(1, 1 << 20);
	size_t n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* ---- the fake GitHub ----------------------------------------------------- */

typedef struct fake_pull {
	int number;
	char head[128], base[128], title[256], sha[41];
	char *body;
	int open;
} fake_pull;

typedef struct fake_gh {
	fake_pull pulls[16];
	int npulls;
	int creates;       /* create_pull calls that reached GitHub */
	int fail_create;   /* fail the next N creates with BASE_ERETRY */
	int race_create;   /* the next create loses a race: PR appears, 422 */
	int mergeable;     /* what get_pull reports */
	char comments[16][2048];
	int comment_on[16];
	int ncomments;
	int closed[16], nclosed;
	char deleted[8][128];
	int ndeleted;
	int check_updates;
	char check_summary[4096], check_url[256];
} fake_gh;

static fake_gh fk;

static void fill(pr_pull *out, const fake_pull *f)
{
	char u[128];
	snprintf(u, sizeof(u), "https://github.test/" REPO "/pull/%d", f->number);
	out->number = f->number;
	out->html_url = strdup(u);
	out->state = strdup(f->open ? "open" : "closed");
	out->head_ref = strdup(f->head);
	out->base_ref = strdup(f->base);
	out->body = f->body ? strdup(f->body) : NULL;
	out->mergeable = fk.mergeable;
}

static fake_pull *add_pull(const char *head, const char *base, const char *title, const char *body)
{
	fake_pull *f = &fk.pulls[fk.npulls];
	f->number = 100 + fk.npulls;
	snprintf(f->head, sizeof(f->head), "%s", head);
	snprintf(f->base, sizeof(f->base), "%s", base);
	snprintf(f->title, sizeof(f->title), "%s", title);
	f->body = strdup(body);
	f->open = 1;
	fk.npulls++;
	return f;
}

static int f_create(pr_pull *out, const char *repository, const char *title, const char *head, const char *base,
		    const char *body, void *payload)
{
	(void)payload;
	assert_string_equal(repository, REPO);
	if (fk.fail_create > 0) {
		fk.fail_create--;
		return base_error_set(BASE_ERETRY, "502 from GitHub");
	}
	for (int i = 0; i < fk.npulls; i++)
		if (fk.pulls[i].open && !strcmp(fk.pulls[i].head, head))
			return base_error_set(BASE_EEXISTS, "422 A pull request already exists");
	fk.creates++;
	fake_pull *f = add_pull(head, base, title, body);
	if (fk.race_create) {
		fk.race_create = 0;
		return base_error_set(BASE_EEXISTS, "422 A pull request already exists");
	}
	fill(out, f);
	return 0;
}

static int f_find(pr_pull *out, const char *repository, const char *branch, void *payload)
{
	(void)payload;
	(void)repository;
	for (int i = 0; i < fk.npulls; i++)
		if (fk.pulls[i].open && !strcmp(fk.pulls[i].head, branch)) {
			if (fk.race_create && fk.creates == 0)
				break;
			fill(out, &fk.pulls[i]);
			return 0;
		}
	return base_error_set(BASE_ENOTFOUND, "no pull");
}

static int f_get(pr_pull *out, const char *repository, int number, void *payload)
{
	(void)payload;
	(void)repository;
	for (int i = 0; i < fk.npulls; i++)
		if (fk.pulls[i].number == number) {
			fill(out, &fk.pulls[i]);
			return 0;
		}
	return BASE_ENOTFOUND;
}

static int f_list(pr_pull **out, size_t *n_out, const char *repository, const char *base, void *payload)
{
	(void)payload;
	(void)repository;
	*out = calloc(16, sizeof(pr_pull));
	*n_out = 0;
	for (int i = 0; i < fk.npulls; i++)
		if (fk.pulls[i].open && !strcmp(fk.pulls[i].base, base))
			fill(&(*out)[(*n_out)++], &fk.pulls[i]);
	return 0;
}

static int f_comment(const char *repository, int number, const char *body, void *payload)
{
	(void)payload;
	(void)repository;
	snprintf(fk.comments[fk.ncomments], sizeof(fk.comments[0]), "%s", body);
	fk.comment_on[fk.ncomments++] = number;
	return 0;
}

static int f_close(const char *repository, int number, void *payload)
{
	(void)payload;
	(void)repository;
	for (int i = 0; i < fk.npulls; i++)
		if (fk.pulls[i].number == number)
			fk.pulls[i].open = 0;
	fk.closed[fk.nclosed++] = number;
	return 0;
}

static int f_delete(const char *repository, const char *branch, void *payload)
{
	(void)payload;
	(void)repository;
	snprintf(fk.deleted[fk.ndeleted++], sizeof(fk.deleted[0]), "%s", branch);
	return 0;
}

static int f_check(const char *repository, int64_t id, const char *title, const char *summary, const char *details,
		   void *payload)
{
	(void)payload;
	(void)repository;
	(void)title;
	assert_int_equal(id, 77);
	fk.check_updates++;
	snprintf(fk.check_summary, sizeof(fk.check_summary), "%s", summary);
	snprintf(fk.check_url, sizeof(fk.check_url), "%s", details ? details : "");
	return 0;
}

static const pr_github gh = {f_create, f_find, f_get, f_list, f_comment, f_close, f_delete, f_check, NULL};

static void fake_reset(void)
{
	for (int i = 0; i < fk.npulls; i++)
		free(fk.pulls[i].body);
	memset(&fk, 0, sizeof(fk));
	fk.mergeable = 1;
}

static const pr_bench_result benches[] = {{"parse", 1000000, 770000}, {"render", 500000, 480000}};

/* The commits pr/ recorded before pushing, by run id (what pr_job_open
 * keeps in the run's data.pr_commit). */
static char recorded[64][41];

static pr_proposal proposal(int64_t run, const char *diff)
{
	pr_proposal p = {
		.run_id = run,
		.repository = REPO,
		.base_branch = "main",
		.base_sha = base_sha,
		.diff = diff,
		.diff_len = strlen(diff),
		.summary = "Replaced the loop in `hot` with a closed form.",
		.benchmarks = benches,
		.nbenchmarks = 2,
		.test_command = "make test",
		.approved_by = "octocat",
		.approved_via = "check run button",
		.thread_number = 5,
		.check_run_id = 77,
		.pushed_sha = recorded[run % 64],
	};
	return p;
}

static json_t *closed_payload(const char *ref, int merged, const char *head_sha, const char *head_repo)
{
	return json_pack("{s:s, s:{s:i, s:b, s:s, s:{s:s, s:s, s:{s:s}}}, s:{s:s}}", "action", "closed",
			 "pull_request", "number", 100, "merged", merged, "merge_commit_sha",
			 "1111111111111111111111111111111111111111", "head", "ref", ref, "sha", head_sha, "repo",
			 "full_name", head_repo, "repository", "full_name", REPO);
}

/* The work repository, its bare remote under srv/ and the diffs. */
static int fixture_setup(void)
{
	base_log_configure(BASE_LOG_OFF, 0, 2);
	pr_init();
	snprintf(tmp, sizeof(tmp), "/tmp/perfbot-test-pr-XXXXXX");
	if (!mkdtemp(tmp))
		return -1;
	setenv("HOME", tmp, 1);
	setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
	setenv("GIT_AUTHOR_NAME", "Dev", 1);
	setenv("GIT_AUTHOR_EMAIL", "dev@example.com", 1);
	setenv("GIT_COMMITTER_NAME", "Dev", 1);
	setenv("GIT_COMMITTER_EMAIL", "dev@example.com", 1);
	int rc = sh("set -e; cd %s; git init -q -b main work; cd work; mkdir -p src lib;"
		    "printf 'int hot(int n)\\n{\\n\\tint s = 0;\\n\\tfor (int i = 0; i < n; i++)\\n\\t\\ts += i;\\n"
		    "\\treturn s;\\n}\\n' > src/hot.c;"
		    "printf 'readme\\n' > README.md; printf 'old\\n' > lib/old.txt; printf 'keep\\n' > lib/keep.txt;"
		    "git add -A; git commit -qm base; mkdir -p ../srv/acme; git init -q --bare -b main ../srv/acme/widget.git;"
		    "git push -q ../srv/acme/widget.git main;"
		    "printf 'int hot(int n)\\n{\\n\\treturn n * (n - 1) / 2;\\n}\\n' > src/hot.c;"
		    "printf '#define FAST 1\\n' > src/fast.h; git add -A; git diff --cached > ../good.diff;"
		    "git reset -q --hard; printf '\\000\\001\\002\\003' > img.bin; git add img.bin;"
		    "git diff --cached --binary > ../binary.diff; git diff --cached > ../binary-nodata.diff;"
		    "git reset -q --hard",
		    tmp);
	if (rc != 0)
		return -1;
	sh_out(base_sha, sizeof(base_sha), "git -C %s/work rev-parse HEAD", tmp);
	char path[512];
	snprintf(path, sizeof(path), "%s/good.diff", tmp);
	good_diff = slurp(path);
	snprintf(path, sizeof(path), "%s/binary.diff", tmp);
	binary_diff = slurp(path);
	snprintf(path, sizeof(path), "%s/binary-nodata.diff", tmp);
	binary_nodata_diff = slurp(path);
	return 0;
}

static void fixture_teardown(void)
{
	fake_reset();
	free(good_diff);
	free(binary_diff);
	free(binary_nodata_diff);
	if (tmp[0])
		sh("rm -rf %s", tmp);
	pr_shutdown();
}

#endif
