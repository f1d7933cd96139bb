/* bench/pr driver: times perfbot's "approval → branch pushed and pull request
 * opened" (pr_open: diff checks, fetch into the bare cache, commit built in
 * memory, push, PR through a pr_github that answers at once) against a
 * repository served over smart HTTP.  Prints one line: "<seconds> <commit>".
 *   driver DATA_DIR URL TOKEN RUN BASE_SHA DIFF_FILE */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/error.h"
#include "base/log.h"
#include "pr/pr.h"

static const char *token;

static int token_cb(char **out, void *payload)
{
	(void)payload;
	*out = strdup(token);
	return 0;
}

static int not_found(pr_pull *out, const char *r, const char *b, void *p)
{
	(void)out, (void)r, (void)b, (void)p;
	return BASE_ENOTFOUND;
}

static int create(pr_pull *out, const char *r, const char *t, const char *h, const char *b, const char *body, void *p)
{
	(void)r, (void)t, (void)h, (void)b, (void)body, (void)p;
	out->number = 1;
	out->html_url = strdup("http://127.0.0.1/pull/1");
	return 0;
}

static int get(pr_pull *out, const char *r, int n, void *p)
{
	(void)r, (void)p;
	out->number = n;
	out->mergeable = 1;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 7) {
		fprintf(stderr, "usage: driver DATA_DIR URL TOKEN RUN BASE_SHA DIFF_FILE\n");
		return 2;
	}
	base_log_configure(getenv("PR_BENCH_DEBUG") ? BASE_LOG_DEBUG : BASE_LOG_WARN, 0, 2);
	token = argv[3];
	FILE *f = fopen(argv[6], "rb");
	if (!f)
		return 1;
	static char diff[1 << 20];
	size_t n = fread(diff, 1, sizeof(diff) - 1, f);
	fclose(f);
	diff[n] = '\0';

	pr_git_options git = {argv[1], "bench/big", argv[2], token_cb, NULL};
	pr_github gh = {create, not_found, get, NULL, NULL, NULL, NULL, NULL, NULL};
	pr_options opts = {&git, &gh, "perfbot[bot]", "1+perfbot[bot]@users.noreply.github.com", 0, 1, -1};
	pr_bench_result b[] = {{"bench", 1000, 800}};
	pr_proposal p = {.run_id = strtoll(argv[4], NULL, 10), .repository = "bench/big", .base_branch = "main",
			 .base_sha = argv[5], .diff = diff, .diff_len = n, .summary = "bench", .benchmarks = b,
			 .nbenchmarks = 1};
	pr_init(); /* perfbot initialises libgit2 once at start-up */
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pr_open_result r;
	int rc = pr_open(&r, &opts, &p);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (rc < 0) {
		fprintf(stderr, "pr_open: %s\n", base_error_last());
		return 1;
	}
	printf("%.3f %s\n", (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, r.commit_sha);
	pr_open_result_dispose(&r);
	pr_shutdown();
	return 0;
}
