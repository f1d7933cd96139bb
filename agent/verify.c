/* Verification of a submitted diff on clean work trees (see verify.h).
 *
 * Invariants: the diff is checked before anything is written; every command
 * of the repository runs in the sandbox, each step its own run; the base and
 * the candidate trees go through the same steps, so only the code differs;
 * the verdict depends only on perfbot's own measurements of the two trees.
 * Threading: blocking, no shared state. */
#include "agent/verify.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "measure/bench.h"
#include "agent/tools.h"
#include "base/buf.h"
#include "base/error.h"
#include "base/json.h"

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

int agent_diff_check(const char *diff, size_t len, size_t max_bytes, const base_diff_policy *policy)
{
	git_diff *d = NULL;
	int error = 0;
	if (!max_bytes)
		max_bytes = AGENT_VERIFY_MAX_DIFF;
	if (len > max_bytes)
		return base_error_set(BASE_ETOOBIG, "the diff is %zu bytes, more than the %zu allowed", len, max_bytes);
	if (len == 0)
		return base_error_set(BASE_EINVALID, "the diff is empty: nothing was changed");
	git_libgit2_init();
	if (git_diff_from_buffer(&d, diff, len) < 0) {
		const git_error *e = git_error_last();
		error = base_error_set(BASE_EINVALID, "the diff cannot be parsed: %s", e && e->message ? e->message : "?");
		goto done;
	}
	size_t n = git_diff_num_deltas(d);
	if (n == 0) {
		error = base_error_set(BASE_EINVALID, "the diff changes no file");
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
			error = base_error_set(BASE_EINVALID, "refused: %s %s", path, why);
			goto done;
		}
		if ((dl->old_file.path && (error = base_diff_policy_check_path(policy, dl->old_file.path)) < 0) ||
		    (dl->new_file.path && (error = base_diff_policy_check_path(policy, dl->new_file.path)) < 0))
			goto done;
	}
	/* what the parser may not flag */
	if (memmem(diff, len, "\nGIT binary patch", 17) || memmem(diff, len, "\nBinary files ", 14) ||
	    strncmp(diff, "Binary files ", 13) == 0) {
		error = base_error_set(BASE_EINVALID, "refused: the diff changes a binary file");
		goto done;
	}
	error = base_diff_policy_check_lines(diff, len);
done:
	git_diff_free(d);
	git_libgit2_shutdown();
	return error;
}

/* ---- client requests in what was built ----------------------------------- */

/* valgrind's special-instruction preambles: every client request (and
 * RUNNING_ON_VALGRIND) starts with one of them, whatever the source said. */
static const unsigned char PREAMBLE_X86_64[16] = { 0x48, 0xc1, 0xc7, 0x03, 0x48, 0xc1, 0xc7, 0x0d,
						   0x48, 0xc1, 0xc7, 0x3d, 0x48, 0xc1, 0xc7, 0x33 };
static const unsigned char PREAMBLE_ARM64[16] = { 0x8c, 0x0d, 0xcc, 0x93, 0x8c, 0x35, 0xcc, 0x93,
						  0x8c, 0xcd, 0xcc, 0x93, 0x8c, 0xf5, 0xcc, 0x93 };
#define SCAN_CHUNK (1u << 20)
#define SCAN_MAX_DEPTH 64
#define SCAN_MAX_FILES 200000

typedef struct scan_state {
	json_t *found;      /* {"path": count} */
	uint64_t bytes, max_bytes;
	size_t files;
	unsigned char *buf; /* SCAN_CHUNK + 15 */
} scan_state;

static size_t count_in(const unsigned char *p, size_t n, const unsigned char pat[16])
{
	size_t c = 0;
	for (const unsigned char *s = p, *end = p + n; (size_t)(end - s) >= 16;) {
		const unsigned char *m = memmem(s, (size_t)(end - s), pat, 16);
		if (!m)
			break;
		c++;
		s = m + 16;
	}
	return c;
}

/* Counts the preambles of one regular file (opened without following a
 * link, never blocking on a FIFO). */
static int scan_file(scan_state *st, int dirfd, const char *name, const char *rel)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return 0;
	struct stat sb;
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		return 0;
	}
	if ((uint64_t)sb.st_size > st->max_bytes - st->bytes) {
		close(fd);
		return base_error_set(BASE_ETOOBIG, "the built tree holds more than %llu bytes (at %s)",
				     (unsigned long long)st->max_bytes, rel);
	}
	size_t carry = 0, count = 0;
	int error = 0;
	for (;;) {
		ssize_t n = read(fd, st->buf + carry, SCAN_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		st->bytes += (uint64_t)n;
		if (st->bytes > st->max_bytes) {
			error = base_error_set(BASE_ETOOBIG, "the built tree holds more than %llu bytes (at %s)",
					      (unsigned long long)st->max_bytes, rel);
			break;
		}
		size_t have = carry + (size_t)n;
		count += count_in(st->buf, have, PREAMBLE_X86_64) + count_in(st->buf, have, PREAMBLE_ARM64);
		/* the last 15 bytes start the next window: a preamble across two
		 * reads is counted there; one counted here cannot fit in them */
		carry = have < 15 ? have : 15;
		memmove(st->buf, st->buf + have - carry, carry);
	}
	close(fd);
	if (error == 0 && count > 0)
		json_object_set_new(st->found, rel, json_integer((json_int_t)count));
	return error;
}

static int scan_dir(scan_state *st, int dfd, const char *rel, int depth)
{
	if (depth > SCAN_MAX_DEPTH) {
		close(dfd);
		return base_error_set(BASE_ETOOBIG, "the built tree is nested more than %d folders deep (at %s)",
				     SCAN_MAX_DEPTH, rel);
	}
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return base_error_set(BASE_EGENERIC, "cannot read %s: %s", *rel ? rel : ".", strerror(errno));
	}
	int error = 0;
	struct dirent *e;
	while (error == 0 && (e = readdir(d)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (++st->files > SCAN_MAX_FILES) {
			error = base_error_set(BASE_ETOOBIG, "the built tree holds more than %d files", SCAN_MAX_FILES);
			break;
		}
		char sub[4096];
		if ((size_t)snprintf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", e->d_name) >= sizeof(sub))
			continue;
		struct stat sb;
		if (fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISDIR(sb.st_mode)) {
			int sfd = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sfd >= 0)
				error = scan_dir(st, sfd, sub, depth + 1);
		} else if (S_ISREG(sb.st_mode)) {
			error = scan_file(st, dirfd(d), e->d_name, sub);
		}
	}
	closedir(d);
	return error;
}

int agent_verify_scan_requests(json_t **out, const char *dir, uint64_t max_bytes)
{
	*out = NULL;
	scan_state st = { json_object(), 0, max_bytes ? max_bytes : AGENT_VERIFY_SCAN_MAX, 0, malloc(SCAN_CHUNK + 16) };
	int error = 0;
	if (!st.found || !st.buf) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		error = base_error_set(BASE_EGENERIC, "cannot read %s: %s", dir, strerror(errno));
		goto done;
	}
	if ((error = scan_dir(&st, dfd, "", 0)) < 0)
		goto done;
	*out = st.found;
	st.found = NULL;
done:
	json_decref(st.found);
	free(st.buf);
	return error;
}

/* ---- the steps --------------------------------------------------------------- */

static void tail_into(base_buf *log, const measure_sandbox_result *r)
{
	char *t = measure_sandbox_result_tail(r, TAIL);
	if (t) {
		base_buf_printf(log, "%s\n", t);
		free(t);
	}
}

/* Runs one configured command (build or test) in dir, its own sandbox run. */
static int run_step(int *ok, base_buf *log, const agent_verify_options *o, const char *dir, const char *what,
		    const char *command)
{
	measure_sandbox_cmd cmd = MEASURE_SANDBOX_CMD_INIT;
	measure_sandbox_result r;
	memset(&r, 0, sizeof(r));
	cmd.workspace = dir;
	cmd.shell = command;
	cmd.limits.timeout_s = o->config->timeout_s > 0 ? o->config->timeout_s : 600;
	if (cmd.limits.cpu_s > 0 && cmd.limits.cpu_s < cmd.limits.timeout_s)
		cmd.limits.cpu_s = cmd.limits.timeout_s;
	cmd.cancel = o->cancel;
	int error = measure_sandbox_run(o->sandbox, &r, &cmd);
	if (error < 0) {
		measure_sandbox_result_dispose(&r);
		return error;
	}
	*ok = measure_sandbox_result_ok(&r);
	base_buf_printf(log, "%s: `%s`: %s (%lld ms)\n", what, command,
		       *ok ? "ok" : r.timed_out ? "timed out" : r.cancelled ? "cancelled" : "failed", (long long)r.wall_ms);
	if (!*ok)
		tail_into(log, &r);
	if (r.cancelled)
		error = BASE_ECANCELLED;
	measure_sandbox_result_dispose(&r);
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

/* The first file (in path order) of the candidate that holds more
 * client-request preambles than the same file of the base: 1 with the
 * message in reason. */
static int more_requests(char *reason, size_t n, const json_t *base, const json_t *head)
{
	const char *path, *first = NULL;
	json_t *v;
	json_int_t h = 0, b = 0;
	json_object_foreach((json_t *)head, path, v) {
		json_int_t hv = json_integer_value(v), bv = json_integer_value(json_object_get(base, path));
		if (hv > bv && (!first || strcmp(path, first) < 0)) {
			first = path;
			h = hv;
			b = bv;
		}
	}
	if (!first)
		return 0;
	snprintf(reason, n,
		 "refused: the built file %.200s holds %" JSON_INTEGER_FORMAT " valgrind client request%s, the base's %"
		 JSON_INTEGER_FORMAT ": a change may not alter how valgrind measures it",
		 first, h, h == 1 ? "" : "s", b);
	return 1;
}

static double metric_of(const json_t *m, const measure_repo_config *cfg)
{
	const char *key = cfg->metric == MEASURE_METRIC_INSTRUCTIONS ? "instructions" : "estimated_cycles";
	return json_number_value(json_object_get(m, key));
}

static const json_t *named(const json_t *run, const char *name)
{
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(run, "benchmarks"), i, m) {
		const char *n = base_json_str(m, "name");
		if (n && name && !strcmp(n, name))
			return m;
	}
	return NULL;
}

/* A region benchmark's gain counts when the whole process got cheaper by
 * at least AGENT_VERIFY_WHOLE_PROCESS_SHARE of it.  1 when it did not, with
 * the log line written. */
static int moved_out_of_region(base_buf *log, const json_t *base_run, const json_t *head_run, const char *name,
			       const measure_repo_config *cfg)
{
	const json_t *b = named(base_run, name), *h = named(head_run, name);
	const char *mode = base_json_str(h, "mode");
	if (!b || !h || !mode || strcmp(mode, "region") != 0)
		return 0;
	const json_t *bw = json_object_get(b, "whole_process"), *hw = json_object_get(h, "whole_process");
	double region_gain = metric_of(b, cfg) - metric_of(h, cfg);
	if (!bw || !hw) {
		base_buf_printf(log, "measure %s: no whole-process count to check the region's gain against\n", name);
		return 1;
	}
	double whole_gain = metric_of(bw, cfg) - metric_of(hw, cfg);
	if (whole_gain >= AGENT_VERIFY_WHOLE_PROCESS_SHARE * region_gain)
		return 0;
	base_buf_printf(log,
		       "measure %s: the region got cheaper by %.0f but the whole process by %.0f: work moved out of "
		       "the measured region is no speed-up\n",
		       name, region_gain, whole_gain);
	return 1;
}

/* Builds or tests both trees, the base first; *failed_out names the tree
 * that failed ("base" or "candidate"), NULL when both passed. */
static int both(const char **failed_out, base_buf *log, const agent_verify_options *o, const char *what,
		const char *command)
{
	char label[32];
	int ok = 0, error;
	*failed_out = NULL;
	snprintf(label, sizeof(label), "base %s", what);
	if ((error = run_step(&ok, log, o, o->base_dir, label, command)) < 0)
		return error;
	if (!ok) {
		*failed_out = "base";
		return 0;
	}
	snprintf(label, sizeof(label), "candidate %s", what);
	if ((error = run_step(&ok, log, o, o->fresh_dir, label, command)) < 0)
		return error;
	if (!ok)
		*failed_out = "candidate";
	return 0;
}

static int measure(json_t **out, const agent_verify_options *o, const char *dir)
{
	measure_bench_options bo = MEASURE_BENCH_OPTIONS_INIT;
	bo.scratch_dir = o->scratch_dir;
	bo.skip_build = 1;
	bo.whole_process = 1;
	bo.cancel = o->cancel;
	return measure_bench_measure(out, o->sandbox, dir, o->config, &bo);
}

/* The verdict on a comparison of the base's and the candidate's
 * measurements (borrowed): a row per benchmark, a proposal only when one
 * improved past its threshold and none regressed or failed.  Owned; NULL
 * when out of memory. */
static json_t *verdict(base_buf *log, const json_t *cmp, json_t *base_run, json_t *run, const agent_verify_options *o)
{
	int improved = 0, regressed = 0, nfailed = 0, moved = 0;
	json_t *rows = json_array();
	size_t i;
	json_t *c;
	char reason[512];
	json_array_foreach(cmp, i, c) {
		const char *v = base_json_str(c, "verdict");
		const char *name = base_json_str(c, "name");
		if (v && !strcmp(v, "improved") && moved_out_of_region(log, base_run, run, name, o->config)) {
			v = "moved_out_of_region";
			moved++;
		}
		improved += v && !strcmp(v, "improved");
		regressed += v && !strcmp(v, "regressed");
		nfailed += v && (!strcmp(v, "failed") || !strcmp(v, "new"));
		json_t *row = json_pack("{s:O,s:O,s:O,s:O,s:s?,s:O}", "name", json_object_get(c, "name"), "base",
					json_object_get(c, "base") ? json_object_get(c, "base") : json_null(), "head",
					json_object_get(c, "head") ? json_object_get(c, "head") : json_null(), "change_pct",
					json_object_get(c, "change_pct") ? json_object_get(c, "change_pct") : json_null(),
					"verdict", v, "threshold_pct",
					json_object_get(c, "threshold_pct") ? json_object_get(c, "threshold_pct") : json_null());
		if (row)
			json_array_append_new(rows, row);
		base_buf_printf(log, "measure %s: %s\n", name ? name : "?", v ? v : "?");
	}
	if (nfailed)
		snprintf(reason, sizeof(reason), "%d benchmark%s could not be measured with the change", nfailed,
			 nfailed == 1 ? "" : "s");
	else if (regressed)
		snprintf(reason, sizeof(reason), "%d benchmark%s regressed past %s threshold", regressed,
			 regressed == 1 ? "" : "s", regressed == 1 ? "its" : "their");
	else if (!improved && moved)
		snprintf(reason, sizeof(reason),
			 "no benchmark improved past its threshold: %d region%s got cheaper only because work moved out "
			 "of the measured region (the whole process did not get cheaper as much)",
			 moved, moved == 1 ? "" : "s");
	else if (!improved)
		snprintf(reason, sizeof(reason), "no benchmark improved past its threshold");
	else
		snprintf(reason, sizeof(reason), "%d benchmark%s improved, none regressed", improved, improved == 1 ? "" : "s");
	json_t *doc =
		result_doc(improved && !regressed && !nfailed ? "proposal" : nfailed ? "failed" : "no_improvement", reason, o);
	if (doc) {
		json_object_set_new(doc, "benchmarks", rows);
		json_object_set(doc, "measurement", run);
		json_object_set(doc, "base_measurement", base_run);
	} else {
		json_decref(rows);
	}
	return doc;
}

int agent_verify(json_t **out, const agent_verify_options *o)
{
	base_buf log = BASE_BUF_INIT(LOG_CAP);
	json_t *doc = NULL, *run = NULL, *base_run = NULL, *cmp = NULL, *base_req = NULL, *head_req = NULL;
	base_diff_policy *policy = NULL;
	const char *failed = NULL;
	int error = 0;
	char reason[512];

	*out = NULL;
	if (!o->sandbox || !o->config || !o->fresh_dir || !o->base_dir || !o->scratch_dir)
		return base_error_set(BASE_EINVALID,
				     "verification needs a sandbox, a config, two fresh trees and a scratch dir");
	if ((error = measure_repo_config_diff_policy(&policy, o->config)) < 0)
		return error;

	/* 1. the diff itself */
	if (agent_diff_check(o->diff ? o->diff : "", o->diff ? o->diff_len : 0, o->max_diff_bytes, policy) < 0) {
		int empty = !o->diff || o->diff_len == 0;
		snprintf(reason, sizeof(reason), "%s", base_error_last());
		base_buf_printf(&log, "diff check: %s\n", reason);
		doc = result_doc(empty ? "no_improvement" : "failed", reason, o);
		if (doc && !empty)
			json_object_set_new(doc, "refused", json_true());
		goto finish;
	}
	base_buf_printf(&log, "diff check: ok (%zu bytes)\n", o->diff_len);

	/* 2. apply to a clean tree of the base commit; another stays the base */
	if (agent_workspace_apply(o->repo_path, o->fresh_dir, o->diff, o->diff_len) < 0) {
		snprintf(reason, sizeof(reason), "%s", base_error_last());
		base_buf_printf(&log, "apply: %s\n", reason);
		doc = result_doc("failed", reason, o);
		goto finish;
	}
	base_buf_puts(&log, "apply: ok\n");
	if (o->sandbox->prepare_dir && ((error = measure_sandbox_prepare_dir(o->sandbox, o->fresh_dir)) < 0 ||
					(error = measure_sandbox_prepare_dir(o->sandbox, o->base_dir)) < 0))
		goto done;

	/* 3. build both, then judge what was built: client requests compile to
	 * a fixed instruction sequence whatever their spelling */
	if (o->config->build) {
		if ((error = both(&failed, &log, o, "build", o->config->build)) < 0)
			goto cancelled;
		if (failed) {
			doc = result_doc("failed",
					 !strcmp(failed, "base") ? "the base commit does not build in a clean tree"
								 : "the change does not build",
					 o);
			goto finish;
		}
	}
	if ((error = agent_verify_scan_requests(&base_req, o->base_dir, 0)) < 0 ||
	    (error = agent_verify_scan_requests(&head_req, o->fresh_dir, 0)) < 0) {
		if (error != BASE_ETOOBIG)
			goto done;
		snprintf(reason, sizeof(reason), "%s: too large to check for valgrind client requests", base_error_last());
		base_buf_printf(&log, "scan: %s\n", reason);
		doc = result_doc("failed", reason, o);
		error = 0;
		goto finish;
	}
	if (more_requests(reason, sizeof(reason), base_req, head_req)) {
		base_buf_printf(&log, "scan: %s\n", reason);
		doc = result_doc("failed", reason, o);
		if (doc)
			json_object_set_new(doc, "refused", json_true());
		goto finish;
	}
	base_buf_printf(&log, "scan: no new valgrind client request (%zu built file%s hold any, as at the base)\n",
		       json_object_size(head_req), json_object_size(head_req) == 1 ? "" : "s");

	/* 4. the tests, on both */
	if (o->config->test) {
		if ((error = both(&failed, &log, o, "test", o->config->test)) < 0)
			goto cancelled;
		if (failed) {
			doc = result_doc("failed",
					 !strcmp(failed, "base") ? "the tests fail at the base commit in a clean tree"
								 : "the tests fail with the change",
					 o);
			goto finish;
		}
	} else {
		base_buf_puts(&log, "test: no test command configured\n");
	}

	/* 5. measure both the same way and compare */
	if ((error = measure(&base_run, o, o->base_dir)) < 0)
		goto done;
	if (o->cancel && *o->cancel) {
		error = BASE_ECANCELLED;
		goto cancelled;
	}
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(base_run, "benchmarks"), i, c) {
		const char *st = base_json_str(c, "status");
		if (!st || strcmp(st, "ok") != 0) {
			const char *e = base_json_str(c, "error");
			snprintf(reason, sizeof(reason), "benchmark %.100s fails at the base commit in a clean tree: %.300s",
				 base_json_str(c, "name"), e ? e : st ? st : "?");
			base_buf_printf(&log, "measure base: %s\n", reason);
			doc = result_doc("failed", reason, o);
			goto finish;
		}
	}
	if ((error = measure(&run, o, o->fresh_dir)) < 0)
		goto done;
	if (o->cancel && *o->cancel) {
		error = BASE_ECANCELLED;
		goto cancelled;
	}
	if ((error = measure_bench_compare(&cmp, json_object_get(base_run, "benchmarks"), json_object_get(run, "benchmarks"),
					 o->config)) < 0)
		goto done;
	doc = verdict(&log, cmp, base_run, run, o);
	goto finish;

cancelled:
	if (error == BASE_ECANCELLED) {
		error = 0;
		base_buf_puts(&log, "cancelled\n");
		doc = result_doc("cancelled", "the run was cancelled", o);
	} else {
		goto done;
	}
finish:
	if (!doc) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	json_object_set_new(doc, "log", json_string(base_buf_cstr(&log)));
	*out = doc;
	doc = NULL;
done:
	json_decref(doc);
	json_decref(run);
	json_decref(base_run);
	json_decref(cmp);
	json_decref(base_req);
	json_decref(head_req);
	free(policy);
	base_buf_dispose(&log);
	return error;
}
