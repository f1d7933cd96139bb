/* The text of a bench run's check runs (see bench_int.h): the summaries of
 * the runs that measured nothing (waiting for approval, no or an invalid
 * .github/perfbot.yml, a failed build), the summary and the exact-count text
 * of a measured run, and GitHub's cap on each string.  The comparison table
 * itself is measure_bench_report_make's (bench.c).
 *
 * Pure: JSON documents and strings in, text out; no I/O, no shared state. */
#include "measure/bench_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"

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

json_t *bench_capped_string(const char *s)
{
	size_t n = strlen(s);
	if (n <= BENCH_OUTPUT_MAX)
		return json_string(s);
	const char *marker = "\n\n… (truncated)";
	size_t keep = BENCH_OUTPUT_MAX - strlen(marker);
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

const char *bench_text_waiting(char *buf, size_t cap, const char *head)
{
	snprintf(buf, cap,
		 "This pull request comes from a fork or from a first-time contributor, so perfbot does not run "
		 "its code (the build and benchmark commands of its `%s` at `%.7s`) until a maintainer approves "
		 "it.\n\nSomeone with write access to the repository can approve with the **Approve and run** "
		 "button above, or by commenting `/perfbot approve` (or `/perfbot bench`) on the pull request. "
		 "A new push to the pull request needs a new approval.",
		 MEASURE_REPO_CONFIG_PATH, head);
	return buf;
}

const char *bench_text_no_config(char *buf, size_t cap, const char *head)
{
	snprintf(buf, cap,
		 "`%.7s` has no `%s`, so perfbot has nothing to measure.\n\n"
		 "Add the file to describe how to build the project and which benchmarks to run; perfbot runs each "
		 "one under CPU simulation (callgrind) and reports what got faster or slower on every push and "
		 "pull request. For example:\n\n%s\n"
		 "Try it locally first with `perfbot bench --repo .`.\n",
		 head, MEASURE_REPO_CONFIG_PATH, config_example);
	return buf;
}

const char *bench_text_bad_config(char *buf, size_t cap, const char *head, const char *message)
{
	snprintf(buf, cap,
		 "perfbot could not read `%s` at `%.7s`:\n\n```\n%.1000s\n```\n\n"
		 "Fix the file and push again. The format, for reference:\n\n%s",
		 MEASURE_REPO_CONFIG_PATH, head, message, config_example);
	return buf;
}

const char *bench_text_start(char *buf, size_t cap, const char *head)
{
	snprintf(buf, cap, "perfbot is building `%.7s` and measuring its benchmarks under CPU simulation.", head);
	return buf;
}

/* Output inside a ``` fence: a backquote could close it. */
static void put_fenced(base_buf *b, const char *text)
{
	for (const char *p = text ? text : ""; *p; p++)
		base_buf_put(b, *p == '`' ? "'" : p, 1);
}

char *bench_text_build_failed(const char *build_command, const char *head, const json_t *build)
{
	const char *status = base_json_str(build, "status");
	int timeout = status && !strcmp(status, "timeout");
	base_buf s;
	base_buf_init(&s, BENCH_OUTPUT_MAX - 100);
	base_buf_printf(&s, "The build `%s` %s at `%.7s`, so no benchmark was measured.\n\n```\n", build_command,
			timeout ? "timed out" : "failed", head);
	put_fenced(&s, base_json_str(build, "output_tail"));
	base_buf_puts(&s, "\n```\n");
	return base_buf_detach(&s);
}

char *bench_text_summary(const measure_bench_report *rep, const json_t *head_run, const json_t *base_run,
			 const char *base_sha)
{
	/* nothing to compare with: the numbers alone */
	if (!base_sha)
		return measure_bench_format_run(head_run);
	base_buf s;
	base_buf_init(&s, BENCH_OUTPUT_MAX);
	base_buf_puts(&s, rep->summary);
	const char *bs = base_json_str(json_object_get(base_run, "build"), "status");
	if (bs && strcmp(bs, "ok") && strcmp(bs, "none"))
		base_buf_printf(&s, "\nThe base `%.7s` did not build: its benchmarks count as new.\n", base_sha);
	return base_buf_detach(&s);
}

/* Exact counts for the check run's text: the summary rounds them. */
static void exact_rows(base_buf *b, const json_t *run_benchmarks, const char *sha, const char *label)
{
	size_t i;
	json_t *m;
	json_array_foreach(run_benchmarks, i, m)
	{
		const char *status = base_json_str(m, "status");
		base_buf_printf(b, "| `%s` | %s `%.7s` | %s |", base_json_str(m, "name"), label, sha, status ? status : "?");
		if (status && !strcmp(status, "ok"))
			base_buf_printf(b, " %lld | %lld | %lld | %lld |\n", (long long)base_json_int(m, "instructions"),
					(long long)base_json_int(m, "estimated_cycles"),
					(long long)base_json_int(m, "l1_misses"), (long long)base_json_int(m, "ll_misses"));
		else
			base_buf_puts(b, " — | — | — | — |\n");
	}
}

char *bench_text_details(const json_t *head, const char *head_sha, const json_t *base, const char *base_sha,
			 const json_t *head_run)
{
	base_buf b;
	base_buf_init(&b, BENCH_OUTPUT_MAX);
	base_buf_puts(&b, "### Exact counts\n\n| Benchmark | Commit | Status | Instructions | Estimated cycles | "
			  "L1 misses | LL misses |\n|---|---|---|---:|---:|---:|---:|\n");
	exact_rows(&b, head, head_sha, "head");
	if (base)
		exact_rows(&b, base, base_sha, "base");
	const json_t *tc = json_object_get(head_run, "toolchain");
	if (tc) {
		const char *vg = base_json_str(tc, "valgrind"), *cc = base_json_str(tc, "cc");
		base_buf_printf(&b, "\nToolchain: %s", vg ? vg : "valgrind");
		if (cc)
			base_buf_printf(&b, ", %s", cc);
		base_buf_puts(&b, ".\n");
	}
	/* failures' output tails, which the summary leaves out */
	size_t i;
	json_t *m;
	json_array_foreach(head, i, m)
	{
		const char *tail = base_json_str(m, "output_tail");
		if (tail && *tail) {
			base_buf_printf(&b, "\n#### `%s` output\n\n```\n", base_json_str(m, "name"));
			put_fenced(&b, tail);
			base_buf_puts(&b, "\n```\n");
		}
	}
	return base_buf_detach(&b);
}
