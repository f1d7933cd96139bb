/* Verification of a submitted diff on a clean work tree (see verify.h).
 *
 * Invariants: the diff is checked before anything is written; every command
 * of the repository runs in the sandbox; the verdict depends only on
 * perfbot's own measurement of the verified tree against the baseline.
 * Threading: blocking, no shared state. */
#include "agent/verify.h"

#include <git2.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent/bench.h"
#include "agent/tools.h"
#include "app/buf.h"
#include "app/error.h"

#define LOG_CAP (256u << 10)
#define TAIL 4000

static int bad_path(const char *p, const char **why)
{
	if (!p || !*p)
		return 0;
	if (p[0] == '/') {
		*why = "is an absolute path";
		return 1;
	}
	for (const char *s = p; *s;) {
		const char *e = strchr(s, '/');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		if (n == 2 && s[0] == '.' && s[1] == '.') {
			*why = "leaves the tree";
			return 1;
		}
		if (n == 4 && strncasecmp(s, ".git", 4) == 0) {
			*why = "is under .git/";
			return 1;
		}
		if (!e)
			break;
		s = e + 1;
	}
	if (strncasecmp(p, ".github/workflows/", 18) == 0) {
		*why = "is a GitHub Actions workflow (.github/workflows/)";
		return 1;
	}
	return 0;
}

/* Words of valgrind's client requests: code that asks the measuring tool to
 * count less (CALLGRIND_ZERO_STATS, a region moved) or behaves otherwise
 * under it (RUNNING_ON_VALGRIND).  A diff may not add or remove them: it
 * would change what is measured, not how fast the code is. */
static const char *const MEASUREMENT_WORDS[] = { "CALLGRIND_", "RUNNING_ON_VALGRIND", "VALGRIND_", "valgrind.h",
						 "callgrind.h", NULL };

/* The first changed line (+ or -, not a file header) that holds one of
 * MEASUREMENT_WORDS: its number in the diff and the word, or 0. */
static size_t measurement_line(const char *diff, size_t len, const char **word_out)
{
	size_t lineno = 0;
	for (const char *s = diff, *end = diff + len; s < end;) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t n = nl ? (size_t)(nl - s) : (size_t)(end - s);
		lineno++;
		int changed = n > 0 && (s[0] == '+' || s[0] == '-') && !(n >= 4 && (!strncmp(s, "+++ ", 4) || !strncmp(s, "--- ", 4)));
		for (size_t w = 0; changed && MEASUREMENT_WORDS[w]; w++) {
			if (memmem(s, n, MEASUREMENT_WORDS[w], strlen(MEASUREMENT_WORDS[w]))) {
				*word_out = MEASUREMENT_WORDS[w];
				return lineno;
			}
		}
		s += n + 1;
	}
	return 0;
}

int agent_diff_check(const char *diff, size_t len, size_t max_bytes)
{
	git_diff *d = NULL;
	int error = 0;
	if (!max_bytes)
		max_bytes = AGENT_VERIFY_MAX_DIFF;
	if (len > max_bytes)
		return app_error_set(APP_ETOOBIG, "the diff is %zu bytes, more than the %zu allowed", len, max_bytes);
	if (len == 0)
		return app_error_set(APP_EINVALID, "the diff is empty: nothing was changed");
	git_libgit2_init();
	if (git_diff_from_buffer(&d, diff, len) < 0) {
		const git_error *e = git_error_last();
		error = app_error_set(APP_EINVALID, "the diff cannot be parsed: %s", e && e->message ? e->message : "?");
		goto done;
	}
	size_t n = git_diff_num_deltas(d);
	if (n == 0) {
		error = app_error_set(APP_EINVALID, "the diff changes no file");
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		const git_diff_delta *dl = git_diff_get_delta(d, i);
		const char *why = NULL, *path = NULL;
		if (bad_path(dl->old_file.path, &why))
			path = dl->old_file.path;
		else if (bad_path(dl->new_file.path, &why))
			path = dl->new_file.path;
		else if (dl->flags & GIT_DIFF_FLAG_BINARY)
			path = dl->new_file.path, why = "is a binary file";
		else if (dl->new_file.mode == GIT_FILEMODE_LINK || dl->old_file.mode == GIT_FILEMODE_LINK)
			path = dl->new_file.path, why = "is a symbolic link";
		else if (dl->new_file.mode == GIT_FILEMODE_COMMIT || dl->old_file.mode == GIT_FILEMODE_COMMIT)
			path = dl->new_file.path, why = "is a submodule";
		if (path) {
			error = app_error_set(APP_EINVALID, "refused: %s %s", path, why);
			goto done;
		}
	}
	/* what the parser may not flag */
	if (memmem(diff, len, "\nGIT binary patch", 17) || memmem(diff, len, "\nBinary files ", 14) ||
	    strncmp(diff, "Binary files ", 13) == 0) {
		error = app_error_set(APP_EINVALID, "refused: the diff changes a binary file");
		goto done;
	}
	const char *word = NULL;
	size_t line = measurement_line(diff, len, &word);
	if (line)
		error = app_error_set(APP_EINVALID,
				      "refused: line %zu of the diff changes a valgrind client request (%s): that changes "
				      "what is measured, not how fast the code is",
				      line, word);
done:
	git_diff_free(d);
	git_libgit2_shutdown();
	return error;
}

static void tail_into(app_buf *log, const agent_sandbox_result *r)
{
	char *t = agent_sandbox_result_tail(r, TAIL);
	if (t) {
		app_buf_printf(log, "%s\n", t);
		free(t);
	}
}

/* Runs one configured command (build or test) in the fresh tree. */
static int run_step(int *ok, app_buf *log, const agent_verify_options *o, const char *what, const char *command)
{
	agent_sandbox_cmd cmd = AGENT_SANDBOX_CMD_INIT;
	agent_sandbox_result r;
	memset(&r, 0, sizeof(r));
	cmd.workspace = o->fresh_dir;
	cmd.shell = command;
	cmd.limits.timeout_s = o->config->timeout_s > 0 ? o->config->timeout_s : 600;
	cmd.cancel = o->cancel;
	int error = agent_sandbox_run(o->sandbox, &r, &cmd);
	if (error < 0) {
		agent_sandbox_result_dispose(&r);
		return error;
	}
	*ok = agent_sandbox_result_ok(&r);
	app_buf_printf(log, "%s: `%s`: %s (%lld ms)\n", what, command,
		       *ok ? "ok" : r.timed_out ? "timed out" : r.cancelled ? "cancelled" : "failed", (long long)r.wall_ms);
	if (!*ok)
		tail_into(log, &r);
	if (r.cancelled)
		error = APP_ECANCELLED;
	agent_sandbox_result_dispose(&r);
	return error;
}

static json_t *result_doc(const char *status, const char *reason, const agent_verify_options *o)
{
	json_t *d = json_pack("{s:s,s:s,s:b,s:s,s:s%,s:[],s:O}", "status", status, "reason", reason, "refused", 0, "summary",
			 o->summary ? o->summary : "", "diff", o->diff ? o->diff : "", o->diff_len, "benchmarks", "budgets",
			 o->budgets ? o->budgets : json_null());
	if (!d) /* a diff that is not UTF-8 text cannot be a JSON string */
		d = json_pack("{s:s,s:s,s:b,s:s,s:s,s:b,s:[],s:O}", "status", status, "reason", reason, "refused", 0,
			      "summary", "", "diff", "", "diff_not_utf8", 1, "benchmarks", "budgets",
			      o->budgets ? o->budgets : json_null());
	return d;
}

int agent_verify(json_t **out, const agent_verify_options *o)
{
	app_buf log = APP_BUF_INIT(LOG_CAP);
	json_t *doc = NULL, *run = NULL, *cmp = NULL;
	int error = 0, ok = 0;
	char reason[512];

	*out = NULL;
	if (!o->sandbox || !o->config || !o->fresh_dir || !o->scratch_dir)
		return app_error_set(APP_EINVALID, "verification needs a sandbox, a config, a fresh tree and a scratch dir");

	/* 1. the diff itself */
	if (agent_diff_check(o->diff ? o->diff : "", o->diff ? o->diff_len : 0, o->max_diff_bytes) < 0) {
		int empty = !o->diff || o->diff_len == 0;
		snprintf(reason, sizeof(reason), "%s", app_error_last());
		app_buf_printf(&log, "diff check: %s\n", reason);
		doc = result_doc(empty ? "no_improvement" : "failed", reason, o);
		if (doc && !empty)
			json_object_set_new(doc, "refused", json_true());
		goto finish;
	}
	app_buf_printf(&log, "diff check: ok (%zu bytes)\n", o->diff_len);

	/* 2. apply to the clean tree of the base commit */
	if (agent_workspace_apply(o->repo_path, o->fresh_dir, o->diff, o->diff_len) < 0) {
		snprintf(reason, sizeof(reason), "%s", app_error_last());
		app_buf_printf(&log, "apply: %s\n", reason);
		doc = result_doc("failed", reason, o);
		goto finish;
	}
	app_buf_puts(&log, "apply: ok\n");
	if (o->sandbox->prepare_dir && (error = agent_sandbox_prepare_dir(o->sandbox, o->fresh_dir)) < 0)
		goto done;

	/* 3. build and test */
	if (o->config->build) {
		if ((error = run_step(&ok, &log, o, "build", o->config->build)) < 0)
			goto cancelled;
		if (!ok) {
			doc = result_doc("failed", "the change does not build", o);
			goto finish;
		}
	}
	if (o->config->test) {
		if ((error = run_step(&ok, &log, o, "test", o->config->test)) < 0)
			goto cancelled;
		if (!ok) {
			doc = result_doc("failed", "the tests fail with the change", o);
			goto finish;
		}
	} else {
		app_buf_puts(&log, "test: no test command configured\n");
	}

	/* 4. measure every benchmark and compare with the baseline */
	agent_bench_options bo = AGENT_BENCH_OPTIONS_INIT;
	bo.scratch_dir = o->scratch_dir;
	bo.skip_build = 1;
	bo.cancel = o->cancel;
	if ((error = agent_bench_measure(&run, o->sandbox, o->fresh_dir, o->config, &bo)) < 0)
		goto done;
	if (o->cancel && *o->cancel) {
		error = APP_ECANCELLED;
		goto cancelled;
	}
	const json_t *base = o->baseline ? json_object_get(o->baseline, "benchmarks") : NULL;
	if ((error = agent_bench_compare(&cmp, base, json_object_get(run, "benchmarks"), o->config)) < 0)
		goto done;
	int improved = 0, regressed = 0, failed = 0;
	json_t *rows = json_array();
	size_t i;
	json_t *c;
	json_array_foreach(cmp, i, c) {
		const char *v = json_string_value(json_object_get(c, "verdict"));
		improved += v && !strcmp(v, "improved");
		regressed += v && !strcmp(v, "regressed");
		failed += v && (!strcmp(v, "failed") || !strcmp(v, "new"));
		json_t *row = json_pack("{s:O,s:O,s:O,s:O,s:O,s:O}", "name", json_object_get(c, "name"), "base",
					json_object_get(c, "base") ? json_object_get(c, "base") : json_null(), "head",
					json_object_get(c, "head") ? json_object_get(c, "head") : json_null(), "change_pct",
					json_object_get(c, "change_pct") ? json_object_get(c, "change_pct") : json_null(),
					"verdict", v ? json_object_get(c, "verdict") : json_null(), "threshold_pct",
					json_object_get(c, "threshold_pct") ? json_object_get(c, "threshold_pct") : json_null());
		if (row)
			json_array_append_new(rows, row);
		app_buf_printf(&log, "measure %s: %s\n", json_string_value(json_object_get(c, "name")), v ? v : "?");
	}
	if (failed)
		snprintf(reason, sizeof(reason), "%d benchmark%s could not be measured with the change", failed,
			 failed == 1 ? "" : "s");
	else if (regressed)
		snprintf(reason, sizeof(reason), "%d benchmark%s regressed past %s threshold", regressed,
			 regressed == 1 ? "" : "s", regressed == 1 ? "its" : "their");
	else if (!improved)
		snprintf(reason, sizeof(reason), "no benchmark improved past its threshold");
	else
		snprintf(reason, sizeof(reason), "%d benchmark%s improved, none regressed", improved, improved == 1 ? "" : "s");
	doc = result_doc(improved && !regressed && !failed ? "proposal" : failed ? "failed" : "no_improvement", reason, o);
	if (doc) {
		json_object_set_new(doc, "benchmarks", rows);
		json_object_set(doc, "measurement", run);
	} else {
		json_decref(rows);
	}
	goto finish;

cancelled:
	if (error == APP_ECANCELLED) {
		error = 0;
		app_buf_puts(&log, "cancelled\n");
		doc = result_doc("cancelled", "the run was cancelled", o);
	} else {
		goto done;
	}
finish:
	if (!doc) {
		error = app_error_set(APP_ENOMEM, "out of memory");
		goto done;
	}
	json_object_set_new(doc, "log", json_string(app_buf_cstr(&log)));
	*out = doc;
	doc = NULL;
done:
	json_decref(doc);
	json_decref(run);
	json_decref(cmp);
	app_buf_dispose(&log);
	return error;
}
