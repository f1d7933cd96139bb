/* The agent's tools: argument checking, budgets, the file tools, and the
 * rendering of sandbox and measurement answers into MCP tool results.
 *
 * Invariants: every path goes through agent_path_resolve; every answer is
 * capped (output_cap for text, file_cap for files); a failing tool answers
 * {isError: true} with one sentence and never a protocol error; once the run
 * has ended (submission, budget, cancel) every call answers isError with
 * the reason, and the stop flag the hooks poll kills the sandbox command of
 * a call in flight.  No tool runs agent-controlled work in perfbot's own
 * process without a bound: searches run in the sandbox, file sizes and
 * answers are capped, the diff is capped before it is formatted.
 * Threading: one mutex per context serialises calls, so a run's tools never
 * run concurrently; the hooks are called under it.  A second mutex guards
 * the end state, so that ending (from a watcher, the MCP endpoint or the
 * wall-time watchdog thread) never waits for a call. */
#include "agent/tools.h"
#include "agent/tool_result.h"
#include "base/clock.h"
#include "base/utf8.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/error.h"
#include "base/json.h"

#define DIFF_CAP (8u << 20)
#define SUMMARY_CAP (64u << 10)
#define GREP_LINE_SHOW 400     /* bytes of a matching line shown */
#define GREP_TIMEOUT_S 30      /* a search that takes longer is stopped */
#define GREP_PATTERN_MAX 4096

struct agent_tools {
	pthread_mutex_t lock;       /* serialises calls */
	pthread_mutex_t state_lock; /* guards ended and end_reason only, so that ending never waits for a call */
	char *workspace;
	char *repo_path; /* NULL: the workspace is a repository */
	char *base_commit;
	agent_tool_hooks hooks;
	const base_diff_policy *policy; /* borrowed; NULL: the built-in rules only */
	int64_t started_ms;
	int64_t max_wall_ms;
	int max_tool_calls;
	int max_benchmark_runs;
	int exec_timeout_s;
	size_t output_cap;
	size_t file_cap;
	int tool_calls;
	int benchmark_runs;
	int ended;
	char *end_reason;
	atomic_int stop;          /* set with ended: the sandbox's cancel flag for the call in flight */
	pthread_cond_t wake;        /* wakes the watchdog (end, free); uses state_lock */
	int closing;                /* agent_tools_free has begun */
	pthread_t watchdog;         /* ends the run when the wall-time budget is over */
	int has_watchdog;
	char *summary;
	char *diff;
	json_t *calls;              /* the timeline: {tool, started_ms, duration_ms, error}, at most MAX_TIMELINE */
};

#define MAX_TIMELINE 1000      /* calls kept in the timeline; later ones are counted only */
#define TIMELINE_ERROR_MAX 200 /* bytes of an error kept */

void agent_exec_result_dispose(agent_exec_result *r)
{
	if (!r)
		return;
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof(*r));
}

/* ---- results ------------------------------------------------------------- */

/* structured: owned (stolen), may be NULL. */
static json_t *result_new(const char *text, int is_error, json_t *structured)
{
	return agent_tool_result(text, strlen(text), is_error, structured);
}

/* The sentence of the last error of this thread as a failed result. */
static json_t *result_last_error(const char *fallback)
{
	const char *m = base_error_last();
	return result_new(*m ? m : fallback, 1, NULL);
}

/* ---- arguments ----------------------------------------------------------- */

/* A measurement id given as a string or an integer; copied into buf. */
static int arg_id(const json_t *args, const char *key, int required, char *buf, size_t n, json_t **err)
{
	json_t *v = json_object_get(args, key);
	buf[0] = '\0';
	if (!v || json_is_null(v)) {
		if (!required)
			return 0;
		*err = agent_tool_errorf("the argument \"%s\" is required", key);
		return -1;
	}
	if (json_is_integer(v))
		snprintf(buf, n, "%lld", (long long)json_integer_value(v));
	else if (json_is_string(v) && strlen(json_string_value(v)) < n)
		snprintf(buf, n, "%s", json_string_value(v));
	else {
		*err = agent_tool_errorf("the argument \"%s\" must be a measurement id", key);
		return -1;
	}
	return 0;
}

/* ---- files --------------------------------------------------------------- */

static int read_whole(const char *abs, size_t cap, char **out, size_t *len_out)
{
	/* O_NONBLOCK: opening a FIFO must not wait for a writer */
	int fd = open(abs, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ELOOP)
			return base_error_set(BASE_EFORBIDDEN, "the file is a symbolic link");
		return base_error_set(BASE_EINVALID, "cannot open the file: %s", strerror(errno));
	}
	struct stat st;
	int error = 0;
	base_buf b = BASE_BUF_INIT(cap);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		error = base_error_set(BASE_EINVALID, "not a regular file");
		goto done;
	}
	char chunk[65536];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			error = base_error_set(BASE_EINVALID, "cannot read the file: %s", strerror(errno));
			goto done;
		}
		if (n == 0)
			break;
		if (base_buf_put(&b, chunk, (size_t)n) < 0) {
			error = base_error_set(BASE_ETOOBIG, "the file is larger than %zu bytes", cap);
			goto done;
		}
	}
	*len_out = b.len;
	*out = base_buf_detach(&b);
	if (!*out)
		error = base_error_set(BASE_ENOMEM, "out of memory");
done:
	base_buf_dispose(&b);
	close(fd);
	return error;
}

static int write_whole(const char *abs, const char *data, size_t len)
{
	struct stat st;
	/* O_NONBLOCK: a FIFO fails to open (no reader) or is refused below
	 * (a reader), instead of waiting for one */
	int fd = open(abs, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0644);
	if (fd < 0) {
		if (errno == ELOOP)
			return base_error_set(BASE_EFORBIDDEN, "the file is a symbolic link");
		if (errno == EISDIR)
			return base_error_set(BASE_EINVALID, "the path is a directory");
		if (errno == ENXIO)
			return base_error_set(BASE_EINVALID, "not a regular file");
		return base_error_set(BASE_EINVALID, "cannot write the file: %s", strerror(errno));
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return base_error_set(BASE_EINVALID, "not a regular file");
	}
	size_t off = 0;
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			close(fd);
			return base_error_set(BASE_EINVALID, "cannot write the file: %s", strerror(e));
		}
		off += (size_t)n;
	}
	if (close(fd) < 0)
		return base_error_set(BASE_EINVALID, "cannot write the file: %s", strerror(errno));
	return 0;
}

/* Creates the missing directories above abs, which lies below root. */
static int make_parents(const char *abs, size_t root_len)
{
	char *p = strdup(abs);
	if (!p)
		return base_error_set(BASE_ENOMEM, "out of memory");
	int error = 0;
	char *slash = strrchr(p, '/');
	if (!slash || (size_t)(slash - p) <= root_len)
		goto done;
	*slash = '\0';
	for (char *s = p + root_len + 1; ; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;
			*s = '\0';
			if (mkdir(p, 0755) < 0 && errno != EEXIST) {
				error = base_error_set(BASE_EINVALID, "cannot create the directory: %s", strerror(errno));
				goto done;
			}
			*s = c;
			if (c == '\0')
				break;
		}
	}
done:
	free(p);
	return error;
}

static json_t *tool_read_file(agent_tools *t, const json_t *args)
{
	json_t *err = NULL, *res = NULL;
	const char *path;
	long long offset = 1, limit = 0;
	char *abs = NULL, *data = NULL;
	size_t len = 0;
	if (agent_tool_arg_str(args, "argument", "path", 1, &path, &err) < 0 || agent_tool_arg_int(args, "argument", "offset", 1, 1LL << 40, &offset, &err) < 0 ||
	    agent_tool_arg_int(args, "argument", "limit", 1, 1LL << 40, &limit, &err) < 0)
		return err;
	if (agent_path_resolve(&abs, t->workspace, path, 1) < 0 || read_whole(abs, t->file_cap, &data, &len) < 0) {
		res = result_last_error("cannot read the file");
		goto done;
	}
	if (memchr(data, '\0', len)) {
		res = agent_tool_errorf("\"%s\" is a binary file", path);
		goto done;
	}
	/* skip to line `offset`, keep `limit` lines, stop at the output cap */
	const char *p = data, *end = data + len;
	for (long long line = 1; line < offset && p < end; line++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		p = nl ? nl + 1 : end;
	}
	const char *q = p;
	long long taken = 0, next_line = offset;
	while (q < end && (limit == 0 || taken < limit)) {
		const char *nl = memchr(q, '\n', (size_t)(end - q));
		const char *e = nl ? nl + 1 : end;
		if ((size_t)(e - p) > t->output_cap)
			break;
		q = e;
		taken++;
		next_line++;
	}
	base_buf b = BASE_BUF_INIT(t->output_cap + 256);
	base_buf_put(&b, p, (size_t)(q - p));
	if (q < end && (limit == 0 || taken < limit))
		base_buf_printf(&b, "\n[output cut: the file continues at line %lld; read it with offset]", next_line);
	res = result_new(base_buf_cstr(&b), 0, NULL);
	base_buf_dispose(&b);
done:
	free(abs);
	free(data);
	return res;
}

/* A failed result when the diff policy protects the file abs (inside root):
 * verification would refuse the change, so the agent learns it now.  NULL
 * when the file may be changed. */
static json_t *refuse_protected(const agent_tools *t, const char *abs, const char *root)
{
	size_t rl = strlen(root);
	const char *rel = strncmp(abs, root, rl) == 0 && abs[rl] == '/' ? abs + rl + 1 : abs;
	if (base_diff_policy_check_path(t->policy, rel) == 0)
		return NULL;
	return agent_tool_errorf("%s; perfbot's verification would refuse the whole change", base_error_last());
}

static json_t *tool_write_file(agent_tools *t, const json_t *args)
{
	json_t *err = NULL, *res = NULL;
	const char *path;
	char *abs = NULL, *root = NULL;
	json_t *c = json_object_get(args, "content");
	if (agent_tool_arg_str(args, "argument", "path", 1, &path, &err) < 0)
		return err;
	if (!json_is_string(c))
		return agent_tool_errorf("the argument \"content\" is required and must be a string");
	size_t len = json_string_length(c);
	if (len > t->file_cap)
		return agent_tool_errorf("the content is larger than the %zu bytes allowed", t->file_cap);
	if (agent_path_resolve(&abs, t->workspace, path, 0) < 0) {
		res = result_last_error("cannot write the file");
		goto done;
	}
	if (!(root = realpath(t->workspace, NULL))) {
		res = agent_tool_errorf("the workspace is not accessible");
		goto done;
	}
	if (strcmp(abs, root) == 0) {
		res = agent_tool_errorf("write_file needs a file path");
		goto done;
	}
	if ((res = refuse_protected(t, abs, root)) != NULL)
		goto done;
	if (make_parents(abs, strlen(root)) < 0 || write_whole(abs, json_string_value(c), len) < 0) {
		res = result_last_error("cannot write the file");
		goto done;
	}
	char msg[512];
	snprintf(msg, sizeof(msg), "wrote %zu bytes to %s", len, path);
	res = result_new(msg, 0, NULL);
done:
	free(abs);
	free(root);
	return res;
}

static size_t count_occurrences(const char *hay, size_t hay_len, const char *needle, size_t n)
{
	size_t count = 0;
	const char *p = hay, *end = hay + hay_len;
	while ((size_t)(end - p) >= n) {
		const char *m = memmem(p, (size_t)(end - p), needle, n);
		if (!m)
			break;
		count++;
		p = m + n;
	}
	return count;
}

static json_t *tool_edit_file(agent_tools *t, const json_t *args)
{
	json_t *err = NULL, *res = NULL;
	const char *path;
	char *abs = NULL, *data = NULL, *root = NULL;
	size_t len = 0;
	json_t *jo = json_object_get(args, "old_string"), *jn = json_object_get(args, "new_string");
	json_t *jall = json_object_get(args, "replace_all");
	base_buf b = BASE_BUF_INIT(t->file_cap);
	if (agent_tool_arg_str(args, "argument", "path", 1, &path, &err) < 0)
		return err;
	if (!json_is_string(jo) || !json_is_string(jn))
		return agent_tool_errorf("the arguments \"old_string\" and \"new_string\" are required strings");
	if (jall && !json_is_boolean(jall) && !json_is_null(jall))
		return agent_tool_errorf("the argument \"replace_all\" must be a boolean");
	int all = json_is_true(jall);
	const char *os = json_string_value(jo), *ns = json_string_value(jn);
	size_t on = json_string_length(jo), nn = json_string_length(jn);
	if (on == 0)
		return agent_tool_errorf("old_string must not be empty; use write_file to create a file");
	if (agent_path_resolve(&abs, t->workspace, path, 1) < 0) {
		res = result_last_error("cannot edit the file");
		goto done;
	}
	if (!(root = realpath(t->workspace, NULL))) {
		res = agent_tool_errorf("the workspace is not accessible");
		goto done;
	}
	if ((res = refuse_protected(t, abs, root)) != NULL)
		goto done;
	if (read_whole(abs, t->file_cap, &data, &len) < 0) {
		res = result_last_error("cannot edit the file");
		goto done;
	}
	size_t count = count_occurrences(data, len, os, on);
	if (count == 0) {
		res = agent_tool_errorf("old_string was not found in %s", path);
		goto done;
	}
	if (count > 1 && !all) {
		res = agent_tool_errorf("old_string occurs %zu times in %s; add context to make it unique or set replace_all",
				    count, path);
		goto done;
	}
	const char *p = data, *end = data + len;
	int cut = 0;
	while (p < end) {
		const char *m = (size_t)(end - p) >= on ? memmem(p, (size_t)(end - p), os, on) : NULL;
		if (!m) {
			cut |= base_buf_put(&b, p, (size_t)(end - p)) < 0;
			break;
		}
		cut |= base_buf_put(&b, p, (size_t)(m - p)) < 0;
		cut |= base_buf_put(&b, ns, nn) < 0;
		p = m + on;
		if (!all) {
			cut |= base_buf_put(&b, p, (size_t)(end - p)) < 0;
			break;
		}
	}
	if (cut) {
		res = agent_tool_errorf("the edited file would be larger than %zu bytes", t->file_cap);
		goto done;
	}
	if (write_whole(abs, b.ptr ? b.ptr : "", b.len) < 0) {
		res = result_last_error("cannot write the file");
		goto done;
	}
	char msg[512];
	snprintf(msg, sizeof(msg), "replaced %zu occurrence%s in %s", count, count == 1 ? "" : "s", path);
	res = result_new(msg, 0, NULL);
done:
	base_buf_dispose(&b);
	free(abs);
	free(data);
	free(root);
	return res;
}

static int is_git_entry(const char *name)
{
	return strcasecmp(name, ".git") == 0;
}

static json_t *tool_list_files(agent_tools *t, const json_t *args)
{
	json_t *err = NULL, *res = NULL;
	const char *path;
	char *abs = NULL;
	struct dirent **ents = NULL;
	int n = -1;
	if (agent_tool_arg_str(args, "argument", "path", 0, &path, &err) < 0)
		return err;
	if (agent_path_resolve(&abs, t->workspace, path ? path : "", 1) < 0) {
		res = result_last_error("cannot list the directory");
		goto done;
	}
	struct stat st;
	if (lstat(abs, &st) < 0 || !S_ISDIR(st.st_mode)) {
		res = agent_tool_errorf("\"%s\" is not a directory", path ? path : ".");
		goto done;
	}
	n = scandir(abs, &ents, NULL, alphasort);
	if (n < 0) {
		res = agent_tool_errorf("cannot list \"%s\": %s", path ? path : ".", strerror(errno));
		goto done;
	}
	base_buf b = BASE_BUF_INIT(t->output_cap);
	json_t *items = json_array();
	int cut = 0;
	for (int i = 0; i < n; i++) {
		const char *name = ents[i]->d_name;
		if (!strcmp(name, ".") || !strcmp(name, "..") || is_git_entry(name))
			continue;
		char full[8192];
		snprintf(full, sizeof(full), "%s/%s", abs, name);
		struct stat es;
		const char *type = "other";
		long long size = 0;
		if (lstat(full, &es) == 0) {
			type = S_ISDIR(es.st_mode) ? "dir" : S_ISLNK(es.st_mode) ? "symlink" : S_ISREG(es.st_mode) ? "file" : "other";
			size = S_ISREG(es.st_mode) ? (long long)es.st_size : 0;
		}
		if (!cut && base_buf_printf(&b, "%s%s%s\n", name, !strcmp(type, "dir") ? "/" : "",
					    !strcmp(type, "symlink") ? " (symlink)" : "") < 0)
			cut = 1;
		if (!cut)
			json_array_append_new(items, json_pack("{s:s,s:s,s:I}", "name", name, "type", type, "size", size));
	}
	if (cut)
		base_buf_printf(&b, "[listing cut]\n");
	if (b.len == 0)
		base_buf_puts(&b, "(empty directory)\n");
	res = result_new(base_buf_cstr(&b), 0, json_pack("{s:o,s:b}", "entries", items, "truncated", cut));
	base_buf_dispose(&b);
done:
	for (int i = 0; i < n; i++)
		free(ents[i]);
	free(ents);
	free(abs);
	return res;
}

/* ---- grep ---------------------------------------------------------------- */

/* The search runs as GNU grep in the run's sandbox, never in perfbot's
 * process: a POSIX regular expression with backreferences can take
 * exponential time, and only the sandbox bounds it (a timeout, the run's
 * stop flag, its memory limits). */
static json_t *tool_grep(agent_tools *t, const json_t *args)
{
	json_t *err = NULL, *res = NULL;
	const char *pattern, *path;
	char *abs = NULL, *root = NULL;
	base_buf cmd = BASE_BUF_INIT(PATH_MAX * 2 + 65536);
	agent_exec_result r;
	memset(&r, 0, sizeof(r));
	if (agent_tool_arg_str(args, "argument", "pattern", 1, &pattern, &err) < 0 || agent_tool_arg_str(args, "argument", "path", 0, &path, &err) < 0)
		return err;
	if (strlen(pattern) > GREP_PATTERN_MAX)
		return agent_tool_errorf("the pattern is longer than %d bytes", GREP_PATTERN_MAX);
	if (!t->hooks.exec)
		return agent_tool_errorf("grep is not available in this run");
	if (agent_path_resolve(&abs, t->workspace, path ? path : "", 1) < 0) {
		res = result_last_error("cannot search there");
		goto done;
	}
	if (!(root = realpath(t->workspace, NULL))) {
		res = agent_tool_errorf("the workspace is not accessible");
		goto done;
	}
	size_t rn = strlen(root);
	const char *rel = strncmp(abs, root, rn) == 0 && abs[rn] == '/' ? abs + rn + 1 : NULL;
	/* -I: binary files skipped; -s: unreadable files are not errors, so
	 * that grep's stderr speaks of the pattern; no operand: the working
	 * directory, named without "./"; long lines cut */
	if (base_buf_puts(&cmd, "LC_ALL=C grep -rnHIs --exclude-dir=.[Gg][Ii][Tt] -E -e ") < 0 ||
	    agent_tool_shell_quote(&cmd, pattern) < 0 || (rel && (base_buf_puts(&cmd, " -- ") < 0 || agent_tool_shell_quote(&cmd, rel) < 0)) ||
	    base_buf_printf(&cmd, " | LC_ALL=C awk '{ if (length($0) > %d) print substr($0, 1, %d) \" [line cut]\"; "
				 "else print }'",
			   GREP_LINE_SHOW, GREP_LINE_SHOW) < 0) {
		res = agent_tool_errorf("the pattern is too long");
		goto done;
	}
	int timeout = GREP_TIMEOUT_S;
	if (t->max_wall_ms > 0) {
		long long left_s = (t->max_wall_ms - (base_mono_ms() - t->started_ms) + 999) / 1000;
		if (left_s < timeout)
			timeout = left_s < 1 ? 1 : (int)left_s;
	}
	if (t->hooks.exec(t->hooks.payload, base_buf_cstr(&cmd), timeout, t->output_cap, &t->stop, &r) < 0) {
		res = result_last_error("the search could not be run");
		goto done;
	}
	if (t->stop) {
		res = agent_tool_errorf("the search was stopped: the run has ended");
		goto done;
	}
	if (r.timed_out) {
		res = agent_tool_errorf("the search took longer than %d s and was stopped; use a simpler pattern or a "
				    "narrower path",
				    timeout);
		goto done;
	}
	const char *out = r.out ? r.out : "";
	if (!*out && r.err && *r.err && !strstr(r.err, "warning:")) {
		res = agent_tool_errorf("the pattern is not a valid POSIX extended regular expression: %.300s", r.err);
		goto done;
	}
	int matches = 0;
	for (const char *p = out; (p = strchr(p, '\n')); p++)
		matches++;
	base_buf b = BASE_BUF_INIT(t->output_cap + 128);
	base_buf_puts(&b, out);
	if (matches == 0 && !r.out_cut)
		base_buf_puts(&b, "no matches\n");
	if (r.out_cut)
		base_buf_printf(&b, "[output cut after %d matches]\n", matches);
	res = result_new(base_buf_cstr(&b), 0, json_pack("{s:i,s:b}", "matches", matches, "truncated", r.out_cut));
	base_buf_dispose(&b);
done:
	agent_exec_result_dispose(&r);
	base_buf_dispose(&cmd);
	free(abs);
	free(root);
	return res;
}

/* ---- sandbox and measurement --------------------------------------------- */

static json_t *tool_exec(agent_tools *t, const json_t *args)
{
	json_t *err = NULL;
	const char *command;
	long long timeout = t->exec_timeout_s;
	if (agent_tool_arg_str(args, "argument", "command", 1, &command, &err) < 0 ||
	    agent_tool_arg_int(args, "argument", "timeout_s", 1, t->exec_timeout_s, &timeout, &err) < 0)
		return err;
	if (!t->hooks.exec)
		return agent_tool_errorf("exec is not available in this run");
	/* a command never outlives the run's wall-time budget */
	if (t->max_wall_ms > 0) {
		long long left_s = (t->max_wall_ms - (base_mono_ms() - t->started_ms) + 999) / 1000;
		if (left_s < 1)
			left_s = 1;
		if (timeout > left_s)
			timeout = left_s;
	}
	agent_exec_result r;
	memset(&r, 0, sizeof(r));
	size_t cap = t->output_cap / 2;
	if (t->hooks.exec(t->hooks.payload, command, (int)timeout, cap, &t->stop, &r) < 0) {
		agent_exec_result_dispose(&r);
		return result_last_error("the command could not be run");
	}
	base_buf b = BASE_BUF_INIT(t->output_cap + 1024);
	if (t->stop)
		base_buf_printf(&b, "the command was killed: the run has ended\n");
	else if (r.timed_out)
		base_buf_printf(&b, "the command timed out after %lld s and was killed\n", timeout);
	else
		base_buf_printf(&b, "exit code: %d\n", r.exit_code);
	base_buf_printf(&b, "--- stdout ---\n%s%s", r.out ? r.out : "", r.out_cut ? "\n[stdout cut]\n" : "");
	base_buf_printf(&b, "--- stderr ---\n%s%s", r.err ? r.err : "", r.err_cut ? "\n[stderr cut]\n" : "");
	char *out = base_utf8_clean(r.out ? r.out : "", r.out ? strlen(r.out) : 0, NULL);
	char *errs = base_utf8_clean(r.err ? r.err : "", r.err ? strlen(r.err) : 0, NULL);
	json_t *sc = out && errs ? json_pack("{s:i,s:b,s:s,s:s,s:b,s:b}", "exit_code", r.exit_code, "timed_out",
					     r.timed_out, "stdout", out, "stderr", errs, "stdout_truncated", r.out_cut,
					     "stderr_truncated", r.err_cut)
				 : NULL;
	free(out);
	free(errs);
	json_t *res = result_new(base_buf_cstr(&b), r.timed_out, sc);
	base_buf_dispose(&b);
	agent_exec_result_dispose(&r);
	return res;
}

/* Renders [{name, base, head, change_pct}] as a text table. */
static void render_table(base_buf *b, const json_t *rows, const char *metric, const char *left, const char *right)
{
	size_t i;
	json_t *row;
	base_buf_printf(b, "%-32s %16s %16s %9s\n", "benchmark", left, right, "change");
	json_array_foreach(rows, i, row) {
		const char *name = base_json_str(row, "name");
		json_t *base = json_object_get(row, "base"), *head = json_object_get(row, "head");
		json_t *pct = json_object_get(row, "change_pct");
		char bs[32] = "-", hs[32] = "-", ps[32] = "-";
		if (json_is_number(base))
			snprintf(bs, sizeof(bs), "%.0f", json_number_value(base));
		if (json_is_number(head))
			snprintf(hs, sizeof(hs), "%.0f", json_number_value(head));
		if (json_is_number(pct))
			snprintf(ps, sizeof(ps), "%+.2f%%", json_number_value(pct));
		base_buf_printf(b, "%-32s %16s %16s %9s\n", name ? name : "?", bs, hs, ps);
	}
	if (metric)
		base_buf_printf(b, "(metric: %s; lower is better)\n", metric);
}

static json_t *tool_run_benchmarks(agent_tools *t, const json_t *args)
{
	json_t *names = json_object_get(args, "benchmarks"), *out = NULL;
	if (names && !json_is_null(names)) {
		size_t i;
		json_t *v;
		if (!json_is_array(names))
			return agent_tool_errorf("the argument \"benchmarks\" must be an array of names");
		json_array_foreach(names, i, v) if (!json_is_string(v)) return agent_tool_errorf(
			"the argument \"benchmarks\" must be an array of names");
	} else {
		names = NULL;
	}
	if (!t->hooks.run_benchmarks)
		return agent_tool_errorf("run_benchmarks is not available in this run");
	if (t->max_benchmark_runs > 0 && t->benchmark_runs >= t->max_benchmark_runs) {
		char reason[128];
		snprintf(reason, sizeof(reason), "the benchmark run budget (%d runs) is exhausted", t->max_benchmark_runs);
		agent_tools_end(t, reason);
		return result_new(reason, 1, NULL);
	}
	t->benchmark_runs++;
	if (t->hooks.run_benchmarks(t->hooks.payload, names, &t->stop, &out) < 0)
		return result_last_error("the benchmarks could not be measured");
	if (t->stop) {
		json_decref(out);
		return agent_tool_errorf("the measurement was stopped: the run has ended");
	}
	base_buf b = BASE_BUF_INIT(t->output_cap);
	json_t *mid = json_object_get(out, "measurement");
	if (json_is_string(mid))
		base_buf_printf(&b, "measurement %s\n", json_string_value(mid));
	else if (json_is_integer(mid))
		base_buf_printf(&b, "measurement %lld\n", (long long)json_integer_value(mid));
	render_table(&b, json_object_get(out, "benchmarks"), base_json_str(out, "metric"),
		     "baseline", "now");
	json_t *res = result_new(base_buf_cstr(&b), 0, out);
	base_buf_dispose(&b);
	return res;
}

static json_t *tool_get_profile(agent_tools *t, const json_t *args)
{
	json_t *err = NULL, *out = NULL;
	const char *bench;
	char mid[64];
	long long limit = 20;
	if (agent_tool_arg_str(args, "argument", "benchmark", 1, &bench, &err) < 0 || arg_id(args, "measurement", 0, mid, sizeof(mid), &err) < 0 ||
	    agent_tool_arg_int(args, "argument", "limit", 1, 200, &limit, &err) < 0)
		return err;
	if (!t->hooks.get_profile)
		return agent_tool_errorf("get_profile is not available in this run");
	if (t->hooks.get_profile(t->hooks.payload, bench, mid[0] ? mid : NULL, (int)limit, &out) < 0)
		return result_last_error("the profile could not be read");
	base_buf b = BASE_BUF_INIT(t->output_cap);
	const char *metric = base_json_str(out, "metric");
	base_buf_printf(&b, "profile of %s (%s)\n%14s %14s  %s\n", bench, metric ? metric : "cost", "exclusive", "inclusive",
		       "function (file)");
	size_t i;
	json_t *f;
	json_array_foreach(json_object_get(out, "functions"), i, f) {
		const char *name = base_json_str(f, "name");
		const char *file = base_json_str(f, "file");
		base_buf_printf(&b, "%14.0f %14.0f  %s (%s)\n", base_json_num(f, "exclusive"), base_json_num(f, "inclusive"),
			       name ? name : "?", file ? file : "?");
	}
	json_t *res = result_new(base_buf_cstr(&b), 0, out);
	base_buf_dispose(&b);
	return res;
}

static json_t *tool_compare(agent_tools *t, const json_t *args)
{
	json_t *err = NULL, *out = NULL;
	char base[64], head[64];
	if (arg_id(args, "base", 1, base, sizeof(base), &err) < 0 || arg_id(args, "head", 1, head, sizeof(head), &err) < 0)
		return err;
	if (!t->hooks.compare)
		return agent_tool_errorf("compare is not available in this run");
	if (t->hooks.compare(t->hooks.payload, base, head, &out) < 0)
		return result_last_error("the measurements could not be compared");
	base_buf b = BASE_BUF_INIT(t->output_cap);
	base_buf_printf(&b, "measurement %s against %s\n", head, base);
	render_table(&b, json_object_get(out, "benchmarks"), base_json_str(out, "metric"), base, head);
	json_t *res = result_new(base_buf_cstr(&b), 0, out);
	base_buf_dispose(&b);
	return res;
}

static json_t *tool_get_diff(agent_tools *t, const json_t *args)
{
	(void)args;
	char *diff = NULL;
	if (agent_workspace_diff(&diff, t->repo_path, t->workspace, t->base_commit, DIFF_CAP) < 0)
		return result_last_error("the diff could not be taken");
	size_t len = strlen(diff);
	base_buf b = BASE_BUF_INIT(t->output_cap + 128);
	if (len == 0)
		base_buf_puts(&b, "no changes against the base commit\n");
	else if (len > t->output_cap)
		base_buf_put(&b, diff, t->output_cap), base_buf_printf(&b, "\n[diff cut: %zu of %zu bytes shown]\n", t->output_cap, len);
	else
		base_buf_put(&b, diff, len);
	json_t *res = result_new(base_buf_cstr(&b), 0, NULL);
	base_buf_dispose(&b);
	free(diff);
	return res;
}

static json_t *tool_submit_result(agent_tools *t, const json_t *args)
{
	json_t *err = NULL;
	const char *summary;
	char *diff = NULL;
	if (agent_tool_arg_str(args, "argument", "summary", 1, &summary, &err) < 0)
		return err;
	if (!*summary)
		return agent_tool_errorf("the summary must say what was changed and why it is faster");
	if (strlen(summary) > SUMMARY_CAP)
		return agent_tool_errorf("the summary is longer than %u bytes", SUMMARY_CAP);
	if (agent_workspace_diff(&diff, t->repo_path, t->workspace, t->base_commit, DIFF_CAP) < 0)
		return result_last_error("the diff could not be taken");
	t->summary = strdup(summary);
	t->diff = diff;
	if (!t->summary)
		return NULL;
	agent_tools_end(t, "submitted");
	if (t->hooks.submit && t->hooks.submit(t->hooks.payload, summary, diff) < 0)
		return result_last_error("the submission could not be recorded");
	return result_new(*diff ? "submitted: perfbot now verifies the change on a clean checkout (build, tests, "
				  "measurement); your work on this run is done"
				: "submitted with no changes against the base commit; your work on this run is done",
			  0, json_pack("{s:b,s:I}", "submitted", 1, "diff_bytes", (json_int_t)strlen(diff)));
}

/* ---- dispatch and schemas ------------------------------------------------ */

typedef struct tool_def {
	const char *name;
	const char *title;
	const char *description;
	const char *schema; /* JSON text */
	json_t *(*fn)(agent_tools *t, const json_t *args);
} tool_def;

static const tool_def TOOLS[] = {
	{ "exec", "Run a command",
	  "Runs a shell command (/bin/sh -c) in the run's sandbox with the workspace as working directory. No network. "
	  "Returns the exit code, stdout and stderr (each capped, marked when cut).",
	  "{\"type\":\"object\",\"properties\":{\"command\":{\"type\":\"string\",\"description\":\"shell command\"},"
	  "\"timeout_s\":{\"type\":\"integer\",\"minimum\":1,\"description\":\"seconds before the command is killed\"}},"
	  "\"required\":[\"command\"],\"additionalProperties\":false}",
	  tool_exec },
	{ "read_file", "Read a file",
	  "Returns the raw text of a workspace file; offset is the first line (1-based), limit the number of lines.",
	  "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\",\"description\":\"path relative to the workspace\"},"
	  "\"offset\":{\"type\":\"integer\",\"minimum\":1},\"limit\":{\"type\":\"integer\",\"minimum\":1}},"
	  "\"required\":[\"path\"],\"additionalProperties\":false}",
	  tool_read_file },
	{ "write_file", "Write a file",
	  "Creates or replaces a workspace file with the given content (missing directories are created).",
	  "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\"},\"content\":{\"type\":\"string\"}},"
	  "\"required\":[\"path\",\"content\"],\"additionalProperties\":false}",
	  tool_write_file },
	{ "edit_file", "Edit a file",
	  "Replaces old_string by new_string in a workspace file. Fails when old_string is absent, or occurs more than once "
	  "and replace_all is not true.",
	  "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\"},\"old_string\":{\"type\":\"string\"},"
	  "\"new_string\":{\"type\":\"string\"},\"replace_all\":{\"type\":\"boolean\",\"default\":false}},"
	  "\"required\":[\"path\",\"old_string\",\"new_string\"],\"additionalProperties\":false}",
	  tool_edit_file },
	{ "list_files", "List a directory",
	  "Lists the entries of a workspace directory (the workspace root by default); directories end with '/'.",
	  "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\"}},\"additionalProperties\":false}",
	  tool_list_files },
	{ "grep", "Search files",
	  "Searches workspace files for a POSIX extended regular expression (grep -E, run in the sandbox and stopped after "
	  "30 s); answers file:line:text lines (capped).",
	  "{\"type\":\"object\",\"properties\":{\"pattern\":{\"type\":\"string\"},\"path\":{\"type\":\"string\","
	  "\"description\":\"file or directory to search; the workspace by default\"}},\"required\":[\"pattern\"],"
	  "\"additionalProperties\":false}",
	  tool_grep },
	{ "run_benchmarks", "Measure benchmarks",
	  "Measures all (or the named) benchmarks now under CPU simulation; returns a table against the baseline and a "
	  "measurement id. Counts against the run's benchmark budget.",
	  "{\"type\":\"object\",\"properties\":{\"benchmarks\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}},"
	  "\"additionalProperties\":false}",
	  tool_run_benchmarks },
	{ "get_profile", "Read a profile",
	  "Top functions of a benchmark by cost, exclusive and inclusive, with their files; the latest measurement unless "
	  "one is named (\"baseline\" names the baseline).",
	  "{\"type\":\"object\",\"properties\":{\"benchmark\":{\"type\":\"string\"},\"measurement\":{\"type\":[\"string\","
	  "\"integer\"]},\"limit\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":200}},\"required\":[\"benchmark\"],"
	  "\"additionalProperties\":false}",
	  tool_get_profile },
	{ "compare", "Compare measurements",
	  "Two measurements side by side (\"baseline\" names the baseline).",
	  "{\"type\":\"object\",\"properties\":{\"base\":{\"type\":[\"string\",\"integer\"]},\"head\":{\"type\":[\"string\","
	  "\"integer\"]}},\"required\":[\"base\",\"head\"],\"additionalProperties\":false}",
	  tool_compare },
	{ "get_diff", "Show the diff", "The workspace's diff against the base commit, new files included.",
	  "{\"type\":\"object\",\"properties\":{},\"additionalProperties\":false}", tool_get_diff },
	{ "submit_result", "Submit the result",
	  "Ends the work on this run. perfbot takes the diff from the workspace and verifies it itself (clean checkout, "
	  "build, tests, measurement); give a summary of the change and why it is faster.",
	  "{\"type\":\"object\",\"properties\":{\"summary\":{\"type\":\"string\"}},\"required\":[\"summary\"],"
	  "\"additionalProperties\":false}",
	  tool_submit_result },
};

#define NTOOLS (sizeof(TOOLS) / sizeof(TOOLS[0]))

static const tool_def *find_tool(const char *name)
{
	for (size_t i = 0; name && i < NTOOLS; i++)
		if (strcmp(TOOLS[i].name, name) == 0)
			return &TOOLS[i];
	return NULL;
}

int agent_tools_exists(const char *name)
{
	return find_tool(name) != NULL;
}

json_t *agent_tools_list(void)
{
	json_t *arr = json_array();
	for (size_t i = 0; arr && i < NTOOLS; i++) {
		json_t *schema = json_loads(TOOLS[i].schema, 0, NULL);
		json_t *d = json_pack("{s:s,s:s,s:s,s:o}", "name", TOOLS[i].name, "title", TOOLS[i].title, "description",
				      TOOLS[i].description, "inputSchema", schema ? schema : json_object());
		if (!d || json_array_append_new(arr, d) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

/* Called with the lock held. */
static const char *check_budgets(agent_tools *t, char *buf, size_t n)
{
	if (t->max_wall_ms > 0 && base_mono_ms() - t->started_ms >= t->max_wall_ms) {
		snprintf(buf, n, "the wall time budget (%lld minutes) is exhausted", (long long)(t->max_wall_ms / 60000));
		return buf;
	}
	if (t->max_tool_calls > 0 && t->tool_calls >= t->max_tool_calls) {
		snprintf(buf, n, "the tool call budget (%d calls) is exhausted", t->max_tool_calls);
		return buf;
	}
	return NULL;
}

/* Called with the lock held: one line of the run's tool-call timeline (the
 * dashboard draws it), times relative to the run's start. */
static void record_call(agent_tools *t, const char *tool, int64_t t0, const json_t *res)
{
	if (!t->calls && !(t->calls = json_array()))
		return;
	if (json_array_size(t->calls) >= MAX_TIMELINE)
		return;
	const char *err = NULL;
	if (json_is_true(json_object_get(res, "isError")))
		err = json_string_value(json_object_get(json_array_get(json_object_get(res, "content"), 0), "text"));
	char cut[TIMELINE_ERROR_MAX + 1];
	if (err) {
		size_t n = base_utf8_cut(err, strlen(err), TIMELINE_ERROR_MAX);
		memcpy(cut, err, n);
		cut[n] = '\0';
	}
	json_array_append_new(t->calls, json_pack("{s:s, s:I, s:I, s:s?}", "tool", tool, "started_ms",
						  (json_int_t)(t0 - t->started_ms), "duration_ms",
						  (json_int_t)(base_mono_ms() - t0), "error", err ? cut : NULL));
}

int agent_tool_call(agent_tools *t, const char *name, const json_t *args, json_t **result_out)
{
	const tool_def *def = find_tool(name);
	json_t *empty = NULL, *res = NULL;
	char reason[256];
	*result_out = NULL;
	if (!def)
		return base_error_set(BASE_ENOTFOUND, "there is no tool named \"%s\"", name ? name : "");
	if (!args || json_is_null(args))
		args = empty = json_object();
	else if (!json_is_object(args)) {
		*result_out = agent_tool_errorf("the arguments of %s must be an object", def->name);
		return *result_out ? 0 : base_error_set(BASE_ENOMEM, "out of memory");
	}
	pthread_mutex_lock(&t->lock);
	const char *why = check_budgets(t, reason, sizeof(reason));
	if (why)
		agent_tools_end(t, why);
	char *ended_why = NULL;
	if (agent_tools_ended(t, &ended_why)) {
		res = agent_tool_errorf("the run has ended: %s", ended_why ? ended_why : "ended");
		free(ended_why);
	} else {
		t->tool_calls++;
		base_error_clear();
		int64_t t0 = base_mono_ms();
		res = def->fn(t, args);
		record_call(t, def->name, t0, res);
	}
	pthread_mutex_unlock(&t->lock);
	json_decref(empty);
	if (!res)
		return base_error_set(BASE_ENOMEM, "out of memory");
	*result_out = res;
	return 0;
}

int agent_tools_begin_call(agent_tools *t, json_t **refusal)
{
	char reason[256];
	*refusal = NULL;
	pthread_mutex_lock(&t->lock);
	const char *why = check_budgets(t, reason, sizeof(reason));
	if (why)
		agent_tools_end(t, why);
	char *ended_why = NULL;
	int ended = agent_tools_ended(t, &ended_why);
	if (ended) {
		*refusal = agent_tool_errorf("the run has ended: %s", ended_why ? ended_why : "ended");
		free(ended_why);
	} else {
		t->tool_calls++;
	}
	pthread_mutex_unlock(&t->lock);
	if (ended)
		return *refusal ? 1 : base_error_set(BASE_ENOMEM, "out of memory");
	return 0;
}

const atomic_int *agent_tools_stop_flag(agent_tools *t)
{
	return &t->stop;
}

/* ---- lifecycle ----------------------------------------------------------- */

/* Ends the run when the wall-time budget is over, so that the stop flag
 * kills a call in flight (a measurement, a command) instead of letting it
 * run its own timeouts past the budget. */
static void *watchdog_main(void *arg)
{
	agent_tools *t = arg;
	int64_t deadline = t->started_ms + t->max_wall_ms;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	int64_t now_ms = base_mono_ms();
	int64_t abs_ns = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec + (deadline - now_ms) * 1000000LL;
	ts.tv_sec = (time_t)(abs_ns / 1000000000LL);
	ts.tv_nsec = (long)(abs_ns % 1000000000LL);
	int over = 0;
	pthread_mutex_lock(&t->state_lock);
	while (!t->closing && !t->ended && !over)
		over = pthread_cond_timedwait(&t->wake, &t->state_lock, &ts) == ETIMEDOUT;
	pthread_mutex_unlock(&t->state_lock);
	if (over) {
		char reason[128];
		snprintf(reason, sizeof(reason), "the wall time budget (%lld minutes) is exhausted",
			 (long long)(t->max_wall_ms / 60000));
		agent_tools_end(t, reason);
	}
	return NULL;
}

int agent_tools_new(agent_tools **out, const agent_tools_options *opts)
{
	*out = NULL;
	if (!opts || !opts->workspace || !opts->base_commit)
		return base_error_set(BASE_EINVALID, "a tool context needs a workspace and a base commit");
	agent_tools *t = calloc(1, sizeof(*t));
	if (!t)
		return base_error_set(BASE_ENOMEM, "out of memory");
	pthread_mutex_init(&t->lock, NULL);
	pthread_mutex_init(&t->state_lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&t->wake, &ca);
	pthread_condattr_destroy(&ca);
	t->workspace = strdup(opts->workspace);
	t->base_commit = strdup(opts->base_commit);
	t->repo_path = opts->repo_path ? strdup(opts->repo_path) : NULL;
	t->hooks = opts->hooks;
	t->policy = opts->policy;
	t->started_ms = base_mono_ms();
	t->max_wall_ms = opts->max_wall_ms;
	t->max_tool_calls = opts->max_tool_calls;
	t->max_benchmark_runs = opts->max_benchmark_runs;
	t->exec_timeout_s = opts->exec_timeout_s > 0 ? opts->exec_timeout_s : 600;
	t->output_cap = opts->output_cap >= 1024 ? opts->output_cap : 65536;
	t->file_cap = opts->file_cap >= 1024 ? opts->file_cap : 4u << 20;
	if (!t->workspace || !t->base_commit || (opts->repo_path && !t->repo_path)) {
		agent_tools_free(t);
		return base_error_set(BASE_ENOMEM, "out of memory");
	}
	if (t->max_wall_ms > 0) {
		if (pthread_create(&t->watchdog, NULL, watchdog_main, t) != 0) {
			agent_tools_free(t);
			return base_error_set(BASE_EGENERIC, "cannot start the wall-time watchdog");
		}
		t->has_watchdog = 1;
	}
	*out = t;
	return 0;
}

void agent_tools_free(agent_tools *t)
{
	if (!t)
		return;
	if (t->has_watchdog) {
		pthread_mutex_lock(&t->state_lock);
		t->closing = 1;
		pthread_cond_broadcast(&t->wake);
		pthread_mutex_unlock(&t->state_lock);
		pthread_join(t->watchdog, NULL);
	}
	pthread_cond_destroy(&t->wake);
	pthread_mutex_destroy(&t->lock);
	pthread_mutex_destroy(&t->state_lock);
	free(t->workspace);
	free(t->base_commit);
	free(t->repo_path);
	free(t->end_reason);
	json_decref(t->calls);
	free(t->summary);
	free(t->diff);
	free(t);
}

void agent_tools_end(agent_tools *t, const char *reason)
{
	pthread_mutex_lock(&t->state_lock);
	if (!t->ended) {
		t->ended = 1;
		t->end_reason = strdup(reason ? reason : "ended");
		t->stop = 1;
		pthread_cond_broadcast(&t->wake);
	}
	pthread_mutex_unlock(&t->state_lock);
}

int agent_tools_ended(agent_tools *t, char **reason_out)
{
	pthread_mutex_lock(&t->state_lock);
	int ended = t->ended;
	if (reason_out)
		*reason_out = ended && t->end_reason ? strdup(t->end_reason) : NULL;
	pthread_mutex_unlock(&t->state_lock);
	return ended;
}

json_t *agent_tools_usage(agent_tools *t)
{
	pthread_mutex_lock(&t->lock);
	json_t *u = json_pack("{s:i,s:i,s:I,s:i,s:i,s:I}", "tool_calls", t->tool_calls, "benchmark_runs", t->benchmark_runs,
			      "wall_ms", (json_int_t)(base_mono_ms() - t->started_ms), "max_tool_calls", t->max_tool_calls,
			      "max_benchmark_runs", t->max_benchmark_runs, "max_wall_ms", (json_int_t)t->max_wall_ms);
	if (u && t->calls)
		json_object_set_new(u, "calls", json_deep_copy(t->calls));
	pthread_mutex_unlock(&t->lock);
	return u;
}

int agent_tools_submission(agent_tools *t, char **summary_out, char **diff_out)
{
	int error = 0;
	pthread_mutex_lock(&t->lock);
	if (!t->summary) {
		error = base_error_set(BASE_ENOTFOUND, "nothing was submitted");
	} else {
		*summary_out = strdup(t->summary);
		*diff_out = strdup(t->diff ? t->diff : "");
		if (!*summary_out || !*diff_out) {
			free(*summary_out);
			free(*diff_out);
			error = base_error_set(BASE_ENOMEM, "out of memory");
		}
	}
	pthread_mutex_unlock(&t->lock);
	return error;
}
