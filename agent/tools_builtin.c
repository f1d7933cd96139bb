/* The Managed Agents built-in tools, executed for one run.
 *
 * read, write and edit go through perfbot's own tools (agent_tool_call's
 * read_file, write_file, edit_file, list_files): one implementation of path
 * confinement, the protected paths, the file caps and the budget.  glob
 * walks the workspace here (no agent code runs: names only, links not
 * followed, .git left out, the walk and the answer capped); grep runs GNU
 * grep in the run's sandbox like perfbot's grep tool, with a timeout, the
 * stop flag and an output cap.  glob, grep and bash count against the
 * tool-call budget through agent_tools_begin_call.
 *
 * bash is one shell per run (bash --noprofile --norc, started on first
 * use), a long-lived sandbox process (measure_sandbox_spawn) whose cancel
 * flag is the run's stop flag: ending the run kills it even between calls.
 * Each command is sent on the shell's stdin as
 *
 *     IFS= read -r -d '' VAR <<'DELIMITER'
 *     <the command>
 *     DELIMITER
 *     eval "$VAR" </dev/null
 *     STATUS=$?
 *     command printf '\nMARKER %d\n' "$STATUS"
 *
 * with a fresh random DELIMITER and MARKER (128 bits each) per command: the
 * quoted here-document carries the text untouched, eval runs it in the
 * shell itself (cd, variables and jobs persist; a syntax error is the
 * command's own failure, not a broken frame), its stdin is /dev/null (a
 * command that reads stdin cannot swallow the frame), and the output ends
 * at the marker line, which carries the exit status.  Output past the cap
 * is read and dropped while the marker is looked for.  Output that arrives
 * between commands (background jobs) opens the next command's answer.
 *
 * A timeout, the end of the run or a shell that exits (`exit 3`) ends the
 * shell: it is killed and reaped, and the next command starts a new one; a
 * shell that died between two commands (a whole-sandbox limit) is said to
 * have in the next answer.
 *
 * Threading: a mutex serialises the calls on one agent_builtin; the stop
 * flag is set from any thread (agent_tools_end) and acted on by the proc's
 * own watch thread and by the call in flight; a second mutex guards the
 * shell pointer so that agent_builtin_free can kill the shell of a call in
 * flight. */
#include "agent/tools_builtin.h"

#include "agent/tool_result.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/utf8.h"

#define DEFAULT_ANSWER_CAP (64u << 10) /* when limits.output_cap is 0 */
#define DEFAULT_COMMAND_S 600          /* ceiling of one command when limits.timeout_s is 0 */
#define COMMAND_MAX (256u << 10)       /* longest bash command accepted */
#define GREP_TIMEOUT_S 30
#define GREP_PATTERN_MAX 4096
#define GREP_LINE_SHOW 400
#define GLOB_MAX_RESULTS 1000
#define GLOB_MAX_ENTRIES 100000
#define GLOB_MAX_PATTERNS 64
#define GLOB_MAX_DEPTH 64
#define KILL_WAIT_MS 3000 /* a killed shell is reaped within this */

struct agent_builtin {
	pthread_mutex_t lock;       /* serialises calls */
	pthread_mutex_t shell_lock; /* guards the shell pointer for agent_builtin_free's kill */
	agent_tools *tools;         /* borrowed */
	measure_sandbox *sandbox;   /* borrowed */
	char *workspace;            /* owned */
	measure_sandbox_limits limits;
	size_t cap;                  /* bytes of one answer */
	int command_s;               /* ceiling of one command */
	measure_sandbox_proc *shell; /* owned; NULL until first use and after it ended */
	base_buf pending;            /* shell output that came between commands */
};

/* ---- results ------------------------------------------------------------- */

/* The text of a tool result (borrowed), "" when it has none. */
static const char *result_text(const json_t *r)
{
	const char *s = json_string_value(json_object_get(json_array_get(json_object_get(r, "content"), 0), "text"));
	return s ? s : "";
}

/* ---- arguments ----------------------------------------------------------- */

static int arg_bool(const json_t *in, const char *key, int *out, json_t **err)
{
	json_t *v = json_object_get(in, key);
	*out = 0;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v)) {
		*err = agent_tool_errorf("the input \"%s\" must be true or false", key);
		return -1;
	}
	*out = json_is_true(v);
	return 0;
}

/* The path the agent gave, as perfbot's tools take it: relative to the
 * workspace ("" for the workspace itself).  *rel borrows from `path`.
 * *absolute says whether the agent wrote it under /workspace. */
static int map_path(const char *path, const char **rel, int *absolute, json_t **err)
{
	static const char ws[] = MEASURE_SANDBOX_WORKSPACE;
	size_t wl = sizeof(ws) - 1;
	if (absolute)
		*absolute = 0;
	if (!path) {
		*rel = "";
		return 0;
	}
	if (path[0] != '/') {
		*rel = path;
		return 0;
	}
	if (strncmp(path, ws, wl) != 0 || (path[wl] != '\0' && path[wl] != '/')) {
		*err = agent_tool_errorf("%.300s is outside the workspace; give a path under %s or relative to it", path, ws);
		return -1;
	}
	const char *p = path + wl;
	while (*p == '/')
		p++;
	*rel = p;
	if (absolute)
		*absolute = 1;
	return 0;
}

/* ---- read, write, edit: perfbot's own file tools -------------------------- */

static int call_tool(agent_builtin *b, const char *name, json_t *args, json_t **out)
{
	int error = args ? agent_tool_call(b->tools, name, args, out) : base_error_set(BASE_ENOMEM, "out of memory");
	json_decref(args);
	/* the built-in tools answer text only */
	if (error == 0)
		json_object_del(*out, "structuredContent");
	return error;
}

/* A refusal before perfbot's tool is reached still counts as a call. */
static int refuse(agent_builtin *b, json_t *err, json_t **out)
{
	json_t *refusal = NULL;
	int rc = agent_tools_begin_call(b->tools, &refusal);
	if (rc < 0) {
		json_decref(err);
		return rc;
	}
	if (rc == 1) {
		json_decref(err);
		err = refusal;
	}
	*out = err;
	return err ? 0 : base_error_set(BASE_ENOMEM, "out of memory");
}

#define CUT_HEAD "\n[output cut: the file continues at line "
#define CUT_TAIL "; read it with offset]"

/* read_file's answer (text from line `first` on) in the numbered form
 * `cat -n` gives: the line number, a tab, the line. */
static json_t *number_lines(const char *text, long long first, size_t cap)
{
	size_t len = strlen(text), hl = strlen(CUT_HEAD), tl = strlen(CUT_TAIL);
	long long cut_at = 0;
	/* perfbot's read_file marks a cut at the output cap */
	if (len > tl && strcmp(text + len - tl, CUT_TAIL) == 0) {
		const char *h = NULL;
		for (const char *p = text; (p = strstr(p, CUT_HEAD)) != NULL; p++)
			h = p;
		if (h) {
			char *end;
			long long n = strtoll(h + hl, &end, 10);
			if (end == text + len - tl && n > 0) {
				cut_at = n;
				len = (size_t)(h - text);
			}
		}
	}
	base_buf o = BASE_BUF_INIT(cap + len / 4 + 4096);
	long long line = first;
	const char *p = text, *end = text + len;
	int cut = 0;
	while (p < end && !cut) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (o.len + n + 16 > cap) {
			cut = 1;
			break;
		}
		base_buf_printf(&o, "%6lld\t", line);
		base_buf_put(&o, p, n);
		base_buf_put(&o, "\n", 1);
		line++;
		p = nl ? nl + 1 : end;
	}
	if (cut || cut_at)
		base_buf_printf(&o,
				"[output cut: the file continues at line %lld; read on with view_range [%lld, -1]]\n",
				cut ? line : cut_at, cut ? line : cut_at);
	json_t *r = agent_tool_result(o.ptr ? o.ptr : "", o.len, 0, NULL);
	base_buf_dispose(&o);
	return r;
}

static int tool_read(agent_builtin *b, const json_t *in, json_t **out)
{
	json_t *err = NULL;
	const char *path, *rel;
	long long first = 1, last = 0;
	if (agent_tool_arg_str(in, "input", "file_path", 1, &path, &err) < 0 || map_path(path, &rel, NULL, &err) < 0)
		return refuse(b, err, out);
	json_t *vr = json_object_get(in, "view_range");
	if (!vr || json_is_null(vr)) {
		/* the offset and limit some agents send instead */
		long long limit = 0;
		if (agent_tool_arg_int(in, "input", "offset", 1, 1LL << 40, &first, &err) < 0 ||
		    agent_tool_arg_int(in, "input", "limit", 1, 1LL << 40, &limit, &err) < 0)
			return refuse(b, err, out);
		if (limit > 0)
			last = first + limit - 1;
	} else {
		json_t *a = json_array_get(vr, 0), *z = json_array_get(vr, 1);
		if (!json_is_array(vr) || json_array_size(vr) != 2 || !json_is_integer(a) || !json_is_integer(z))
			return refuse(
				b,
				agent_tool_errorf("view_range must be [start, end]: line numbers, end <= 0 for the end of the file"),
				out);
		first = json_integer_value(a);
		last = json_integer_value(z);
		if (first < 1 || (last > 0 && last < first))
			return refuse(
				b,
				agent_tool_errorf("view_range [%lld, %lld] is not a range of lines (they start at 1; end <= 0 "
				       "reads to the end)",
				       first, last),
				out);
	}
	/* a directory: its listing, as the text editor tools answer */
	char *abs = NULL;
	struct stat st;
	if (agent_path_resolve(&abs, b->workspace, rel, 1) == 0 && stat(abs, &st) == 0 && S_ISDIR(st.st_mode)) {
		free(abs);
		return call_tool(b, "list_files", json_pack("{s:s}", "path", rel), out);
	}
	free(abs);
	json_t *args = json_pack("{s:s,s:I}", "path", rel, "offset", (json_int_t)first);
	if (args && last > 0)
		json_object_set_new(args, "limit", json_integer(last - first + 1));
	json_t *r = NULL;
	int error = call_tool(b, "read_file", args, &r);
	if (error < 0)
		return error;
	if (json_is_true(json_object_get(r, "isError"))) {
		*out = r;
		return 0;
	}
	const char *text = result_text(r);
	if (!*text)
		*out = first > 1 ? agent_tool_errorf("%.300s has fewer than %lld lines", path, first)
				 : agent_tool_result("(the file is empty)\n", 20, 0, NULL);
	else
		*out = number_lines(text, first, b->cap);
	json_decref(r);
	return *out ? 0 : base_error_set(BASE_ENOMEM, "out of memory");
}

static int tool_write(agent_builtin *b, const json_t *in, json_t **out)
{
	json_t *err = NULL;
	const char *path, *rel;
	json_t *content = json_object_get(in, "content");
	if (agent_tool_arg_str(in, "input", "file_path", 1, &path, &err) < 0 || map_path(path, &rel, NULL, &err) < 0)
		return refuse(b, err, out);
	if (!json_is_string(content))
		return refuse(b, agent_tool_errorf("the input \"content\" is required and must be a string"), out);
	return call_tool(b, "write_file", json_pack("{s:s,s:O}", "path", rel, "content", content), out);
}

static int tool_edit(agent_builtin *b, const json_t *in, json_t **out)
{
	json_t *err = NULL;
	const char *path, *rel;
	if (agent_tool_arg_str(in, "input", "file_path", 1, &path, &err) < 0 || map_path(path, &rel, NULL, &err) < 0)
		return refuse(b, err, out);
	const char *old_string = json_string_value(json_object_get(in, "old_string"));
	if (old_string && !*old_string)
		return refuse(b, agent_tool_errorf("old_string must not be empty; use write to create or replace a whole file"),
			      out);
	json_t *args = json_pack("{s:s}", "path", rel);
	static const char *const keys[] = { "old_string", "new_string", "replace_all" };
	for (int i = 0; args && i < 3; i++) {
		json_t *v = json_object_get(in, keys[i]);
		if (v)
			json_object_set(args, keys[i], v);
	}
	return call_tool(b, "edit_file", args, out);
}

/* ---- glob ---------------------------------------------------------------- */

/* Expands the first {a,b,...} of pat (no nesting inside it) into *pats;
 * recursively, up to GLOB_MAX_PATTERNS. */
static int expand_braces(const char *pat, char **pats, int *n)
{
	const char *open = strchr(pat, '{');
	const char *close = open ? strchr(open, '}') : NULL;
	if (!open || !close) {
		if (*n >= GLOB_MAX_PATTERNS)
			return -1;
		return (pats[(*n)++] = strdup(pat)) ? 0 : -1;
	}
	for (const char *alt = open + 1; alt <= close;) {
		const char *e = alt;
		while (e < close && *e != ',')
			e++;
		base_buf x = BASE_BUF_INIT(PATH_MAX * 4);
		int bad = base_buf_put(&x, pat, (size_t)(open - pat)) < 0 ||
			  base_buf_put(&x, alt, (size_t)(e - alt)) < 0 || base_buf_puts(&x, close + 1) < 0;
		int rc = bad ? -1 : expand_braces(base_buf_cstr(&x), pats, n);
		base_buf_dispose(&x);
		if (rc < 0)
			return -1;
		alt = e + 1;
	}
	return 0;
}

/* Whether the path segments match the pattern segments; "**" matches any
 * number of whole segments, other segments fnmatch (no leading-dot rule). */
static int segs_match(char **ps, int np, char **ss, int ns)
{
	if (np == 0)
		return ns == 0;
	if (strcmp(ps[0], "**") == 0) {
		for (int k = 0; k <= ns; k++)
			if (segs_match(ps + 1, np - 1, ss + k, ns - k))
				return 1;
		return 0;
	}
	if (ns == 0 || fnmatch(ps[0], ss[0], 0) != 0)
		return 0;
	return segs_match(ps + 1, np - 1, ss + 1, ns - 1);
}

/* Splits s (modified) at '/' into at most max segments, empty ones dropped. */
static int split_segs(char *s, char **segs, int max)
{
	int n = 0;
	for (char *tok = s; tok && n < max;) {
		char *slash = strchr(tok, '/');
		if (slash)
			*slash = '\0';
		if (*tok && strcmp(tok, ".") != 0)
			segs[n++] = tok;
		tok = slash ? slash + 1 : NULL;
	}
	return n;
}

typedef struct glob_walk {
	char **pats; /* brace-expanded patterns, each split into segs below */
	char *pat_segs[GLOB_MAX_PATTERNS][GLOB_MAX_DEPTH];
	int pat_n[GLOB_MAX_PATTERNS];
	int npats;
	char **found; /* owned strings: matching paths relative to the base */
	size_t nfound, afound;
	long entries; /* left to visit */
	int overflow; /* more matches than kept */
} glob_walk;

static int path_matches(glob_walk *g, const char *rel)
{
	char copy[PATH_MAX];
	char *segs[GLOB_MAX_DEPTH];
	snprintf(copy, sizeof(copy), "%s", rel);
	int ns = split_segs(copy, segs, GLOB_MAX_DEPTH);
	for (int i = 0; i < g->npats; i++)
		if (segs_match(g->pat_segs[i], g->pat_n[i], segs, ns))
			return 1;
	return 0;
}

static void glob_dir(glob_walk *g, int dirfd, const char *prefix, int depth)
{
	DIR *d = depth < GLOB_MAX_DEPTH ? fdopendir(dirfd) : NULL;
	if (!d) {
		close(dirfd);
		return;
	}
	struct dirent *e;
	while (g->entries > 0 && (e = readdir(d)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcasecmp(e->d_name, ".git"))
			continue;
		g->entries--;
		char rel[PATH_MAX];
		if ((size_t)snprintf(rel, sizeof(rel), "%s%s%s", prefix, *prefix ? "/" : "", e->d_name) >= sizeof(rel))
			continue;
		struct stat st;
		if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0)
				glob_dir(g, sub, rel, depth + 1);
			continue;
		}
		if (!path_matches(g, rel))
			continue;
		if (g->nfound >= GLOB_MAX_RESULTS * 10) {
			g->overflow = 1;
			continue;
		}
		if (g->nfound == g->afound) {
			size_t na = g->afound ? g->afound * 2 : 64;
			char **nf = realloc(g->found, na * sizeof(*nf));
			if (!nf)
				continue;
			g->found = nf;
			g->afound = na;
		}
		char *dup = strdup(rel);
		if (dup)
			g->found[g->nfound++] = dup;
	}
	closedir(d);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static json_t *glob_run(agent_builtin *b, const json_t *in)
{
	json_t *err = NULL, *res = NULL;
	const char *pattern, *path, *rel_path, *rel_pat = NULL;
	int abs_path = 0, abs_pat = 0;
	char *base = NULL;
	glob_walk *g = NULL;
	char *pats[GLOB_MAX_PATTERNS];
	int npats = 0;
	if (agent_tool_arg_str(in, "input", "pattern", 1, &pattern, &err) < 0 || agent_tool_arg_str(in, "input", "path", 0, &path, &err) < 0 ||
	    map_path(path, &rel_path, &abs_path, &err) < 0)
		return err;
	if (!*pattern || strlen(pattern) >= PATH_MAX)
		return agent_tool_errorf("the pattern must be a non-empty glob shorter than %d bytes", PATH_MAX);
	/* an absolute pattern names the workspace itself */
	if (pattern[0] == '/') {
		if (map_path(pattern, &rel_pat, &abs_pat, &err) < 0)
			return err;
		rel_path = "";
	} else {
		rel_pat = pattern;
	}
	for (const char *p = rel_pat; *p;) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == 2 && p[0] == '.' && p[1] == '.')
			return agent_tool_errorf("\"..\" is not allowed in patterns; stay inside the workspace");
		p = e ? e + 1 : p + n;
	}
	if (agent_path_resolve(&base, b->workspace, rel_path, 1) < 0) {
		const char *m = base_error_last();
		return agent_tool_errorf("%s", *m ? m : "cannot search there");
	}
	struct stat st;
	if (stat(base, &st) < 0 || !S_ISDIR(st.st_mode)) {
		res = agent_tool_errorf("%.300s is not a directory", path ? path : ".");
		goto done;
	}
	if (!(g = calloc(1, sizeof(*g))) || expand_braces(rel_pat, pats, &npats) < 0) {
		res = agent_tool_errorf("the pattern expands to more than %d patterns", GLOB_MAX_PATTERNS);
		goto done;
	}
	g->pats = pats;
	g->npats = npats;
	for (int i = 0; i < npats; i++)
		g->pat_n[i] = split_segs(pats[i], g->pat_segs[i], GLOB_MAX_DEPTH);
	g->entries = GLOB_MAX_ENTRIES;
	int fd = open(base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		res = agent_tool_errorf("cannot list %.300s: %s", path ? path : ".", strerror(errno));
		goto done;
	}
	glob_dir(g, fd, "", 0);
	if (g->nfound)
		qsort(g->found, g->nfound, sizeof(*g->found), cmp_str);
	/* answered relative to the workspace, or under /workspace when the
	 * agent wrote absolute paths */
	int absolute = abs_path || abs_pat;
	base_buf o = BASE_BUF_INIT(b->cap);
	size_t shown = 0;
	for (size_t i = 0; i < g->nfound && shown < GLOB_MAX_RESULTS; i++) {
		const char *sep = *rel_path ? "/" : "";
		if (base_buf_printf(&o, "%s%s%s%s\n", absolute ? MEASURE_SANDBOX_WORKSPACE "/" : "", rel_path, sep,
				    g->found[i]) < 0)
			break;
		shown++;
	}
	base_buf t = BASE_BUF_INIT(b->cap + 512);
	if (g->nfound == 0)
		base_buf_puts(&t, "no files match\n");
	else if (o.len)
		base_buf_put(&t, o.ptr, o.len);
	if (shown < g->nfound || g->overflow)
		base_buf_printf(&t, "[%zu%s more matches not shown; narrow the pattern or the path]\n",
				g->nfound - shown, g->overflow ? " or" : "");
	if (g->entries <= 0)
		base_buf_printf(&t, "[the search stopped after %d entries; narrow the path]\n", GLOB_MAX_ENTRIES);
	res = agent_tool_result(t.ptr ? t.ptr : "", t.len, 0, NULL);
	base_buf_dispose(&o);
	base_buf_dispose(&t);
done:
	if (g) {
		for (size_t i = 0; i < g->nfound; i++)
			free(g->found[i]);
		free(g->found);
	}
	for (int i = 0; i < npats; i++)
		free(pats[i]);
	free(g);
	free(base);
	return res;
}

/* ---- grep ---------------------------------------------------------------- */

/* --include for each brace alternative of a glob; grep matches --include
 * against base names, so a leading directory part is dropped. */
static int add_includes(base_buf *cmd, const char *glob)
{
	char *pats[GLOB_MAX_PATTERNS];
	int n = 0, rc = 0;
	if (expand_braces(glob, pats, &n) < 0)
		rc = -1;
	for (int i = 0; i < n; i++) {
		const char *slash = strrchr(pats[i], '/');
		if (!rc && (base_buf_puts(cmd, " --include=") < 0 || agent_tool_shell_quote(cmd, slash ? slash + 1 : pats[i]) < 0))
			rc = -1;
		free(pats[i]);
	}
	return rc;
}

static json_t *grep_run(agent_builtin *b, const json_t *in)
{
	json_t *err = NULL, *res = NULL;
	const char *pattern, *path, *rel, *glob, *mode, *type;
	int ci = 0, numbers = 1, multiline = 0;
	long long after = -1, before = -1, context = -1, head = 0;
	char *abs = NULL, *root = NULL;
	base_buf cmd = BASE_BUF_INIT(PATH_MAX * 2 + 65536);
	measure_sandbox_result r;
	memset(&r, 0, sizeof(r));
	json_t *jn = json_object_get(in, "-n");
	if (agent_tool_arg_str(in, "input", "pattern", 1, &pattern, &err) < 0 || agent_tool_arg_str(in, "input", "path", 0, &path, &err) < 0 ||
	    agent_tool_arg_str(in, "input", "glob", 0, &glob, &err) < 0 || agent_tool_arg_str(in, "input", "output_mode", 0, &mode, &err) < 0 ||
	    agent_tool_arg_str(in, "input", "type", 0, &type, &err) < 0 || arg_bool(in, "-i", &ci, &err) < 0 ||
	    arg_bool(in, "multiline", &multiline, &err) < 0 || agent_tool_arg_int(in, "input", "-A", 0, 1000, &after, &err) < 0 ||
	    agent_tool_arg_int(in, "input", "-B", 0, 1000, &before, &err) < 0 || agent_tool_arg_int(in, "input", "-C", 0, 1000, &context, &err) < 0 ||
	    agent_tool_arg_int(in, "input", "context", 0, 1000, &context, &err) < 0 ||
	    agent_tool_arg_int(in, "input", "head_limit", 0, 1000000, &head, &err) < 0 || map_path(path, &rel, NULL, &err) < 0)
		return err;
	if (jn && json_is_boolean(jn))
		numbers = json_is_true(jn);
	if (!mode)
		mode = "files_with_matches";
	if (strcmp(mode, "content") && strcmp(mode, "files_with_matches") && strcmp(mode, "count"))
		return agent_tool_errorf("output_mode must be \"content\", \"files_with_matches\" or \"count\"");
	if (multiline)
		return agent_tool_errorf("multiline search is not supported; search line by line");
	if (strlen(pattern) > GREP_PATTERN_MAX)
		return agent_tool_errorf("the pattern is longer than %d bytes", GREP_PATTERN_MAX);
	if (type && (!*type || strspn(type, "abcdefghijklmnopqrstuvwxyz0123456789+") != strlen(type)))
		return agent_tool_errorf("type must be a file extension such as \"c\" or \"py\"");
	if (agent_path_resolve(&abs, b->workspace, rel, 1) < 0) {
		const char *m = base_error_last();
		res = agent_tool_errorf("%s", *m ? m : "cannot search there");
		goto done;
	}
	if (!(root = realpath(b->workspace, NULL))) {
		res = agent_tool_errorf("the workspace is not accessible");
		goto done;
	}
	size_t rn = strlen(root);
	const char *operand = strncmp(abs, root, rn) == 0 && abs[rn] == '/' ? abs + rn + 1 : NULL;
	int content = !strcmp(mode, "content"), count = !strcmp(mode, "count");
	/* -I: binary files skipped; -s: unreadable files are no errors; no
	 * operand: the working directory, named without "./" */
	int bad = base_buf_puts(&cmd, "LC_ALL=C grep -rHIs --exclude-dir=.[Gg][Ii][Tt] -E") < 0 ||
		  (ci && base_buf_puts(&cmd, " -i") < 0) || (content && numbers && base_buf_puts(&cmd, " -n") < 0) ||
		  (!content && base_buf_puts(&cmd, count ? " -c" : " -l") < 0) ||
		  (content && context >= 0 && base_buf_printf(&cmd, " -C %lld", context) < 0) ||
		  (content && after >= 0 && base_buf_printf(&cmd, " -A %lld", after) < 0) ||
		  (content && before >= 0 && base_buf_printf(&cmd, " -B %lld", before) < 0) ||
		  (glob && add_includes(&cmd, glob) < 0) ||
		  (type && base_buf_printf(&cmd, " --include='*.%s'", type) < 0) || base_buf_puts(&cmd, " -e ") < 0 ||
		  agent_tool_shell_quote(&cmd, pattern) < 0 ||
		  (operand && (base_buf_puts(&cmd, " -- ") < 0 || agent_tool_shell_quote(&cmd, operand) < 0));
	/* files without a match are left out of the counts; file lists sorted */
	if (!bad && count)
		bad = base_buf_puts(&cmd, " | LC_ALL=C grep -v ':0$'") < 0;
	if (!bad && !content)
		bad = base_buf_puts(&cmd, " | LC_ALL=C sort") < 0;
	if (!bad && head > 0)
		bad = base_buf_printf(&cmd, " | head -n %lld", head) < 0;
	if (!bad)
		bad = base_buf_printf(
			      &cmd,
			      " | LC_ALL=C awk '{ if (length($0) > %d) print substr($0, 1, %d) \" [line cut]\"; "
			      "else print }'",
			      GREP_LINE_SHOW, GREP_LINE_SHOW) < 0;
	if (bad) {
		res = agent_tool_errorf("the search is too long to run");
		goto done;
	}
	measure_sandbox_cmd c = MEASURE_SANDBOX_CMD_INIT;
	const atomic_int *stop = agent_tools_stop_flag(b->tools);
	c.workspace = b->workspace;
	c.shell = base_buf_cstr(&cmd);
	c.limits = b->limits;
	c.limits.timeout_s = b->command_s < GREP_TIMEOUT_S ? b->command_s : GREP_TIMEOUT_S;
	c.limits.output_cap = b->cap;
	c.cancel = stop;
	if (measure_sandbox_run(b->sandbox, &r, &c) < 0) {
		const char *m = base_error_last();
		res = agent_tool_errorf("the search could not be run: %s", *m ? m : "sandbox failure");
		goto done;
	}
	if (*stop || r.cancelled) {
		res = agent_tool_errorf("the search was stopped: the run has ended");
		goto done;
	}
	if (r.timed_out) {
		res = agent_tool_errorf(
			"the search took longer than %d s and was stopped; use a simpler pattern or a narrower path",
			c.limits.timeout_s);
		goto done;
	}
	const char *o = r.out ? r.out : "";
	if (!*o && r.err && *r.err && !strstr(r.err, "warning:")) {
		res = agent_tool_errorf("the pattern is not a valid POSIX extended regular expression: %.300s", r.err);
		goto done;
	}
	base_buf t = BASE_BUF_INIT(b->cap + 256);
	base_buf_put(&t, o, r.out_len);
	if (!*o)
		base_buf_puts(&t, content ? "no matches\n" : "no files match\n");
	res = agent_tool_result(t.ptr ? t.ptr : "", t.len, 0, NULL);
	base_buf_dispose(&t);
done:
	measure_sandbox_result_dispose(&r);
	base_buf_dispose(&cmd);
	free(abs);
	free(root);
	return res;
}

/* ---- bash ---------------------------------------------------------------- */

static void hex_token(char *out, size_t n_bytes)
{
	unsigned char raw[32];
	size_t got = 0;
	while (got < n_bytes) {
		ssize_t r = getrandom(raw + got, n_bytes - got, 0);
		if (r > 0)
			got += (size_t)r;
		else if (errno != EINTR)
			abort(); /* no randomness: the frame could be forged */
	}
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < n_bytes; i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 15];
	}
	out[2 * n_bytes] = '\0';
}

/* Kills the shell, waits for its tree to go and frees it. */
static void shell_stop(agent_builtin *b)
{
	pthread_mutex_lock(&b->shell_lock);
	measure_sandbox_proc *p = b->shell;
	b->shell = NULL;
	pthread_mutex_unlock(&b->shell_lock);
	base_buf_reset(&b->pending);
	if (!p)
		return;
	p->kill(p);
	p->wait(p, KILL_WAIT_MS, NULL);
	measure_sandbox_proc_free(p);
}

static int shell_start(agent_builtin *b)
{
	static const char *const bash_argv[] = { "/bin/bash", "--noprofile", "--norc", NULL };
	measure_sandbox_cmd c = MEASURE_SANDBOX_CMD_INIT;
	c.workspace = b->workspace;
	c.argv = bash_argv;
	c.limits = b->limits;
	c.limits.timeout_s = 0; /* each command has its own; the shell lives as long as the run */
	c.cancel = agent_tools_stop_flag(b->tools);
	base_buf_reset(&b->pending);
	measure_sandbox_proc *p = NULL;
	int error = measure_sandbox_spawn(b->sandbox, &p, &c);
	pthread_mutex_lock(&b->shell_lock);
	b->shell = p;
	pthread_mutex_unlock(&b->shell_lock);
	return error;
}

/* Sends all of s to the shell before the deadline.  0 sent; 1 the shell is
 * gone; 2 the deadline passed; 3 the run ended. */
static int shell_send(agent_builtin *b, const char *s, size_t len, int64_t deadline, const atomic_int *stop)
{
	size_t off = 0;
	while (off < len) {
		if (*stop)
			return 3;
		if (base_mono_ms() >= deadline)
			return 2;
		ssize_t n = send(b->shell->in_fd, s + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return 1;
		struct pollfd pfd = { .fd = b->shell->in_fd, .events = POLLOUT };
		poll(&pfd, 1, 50);
		if (b->shell->wait(b->shell, 0, NULL))
			return 1;
	}
	return 0;
}

/* What a command gave: the output as kept (its first `cap` bytes), the
 * bytes seen, the exit status when the marker came. */
typedef struct shell_out {
	char *buf;
	size_t len, alloc;
	size_t dropped; /* bytes read past the cap and thrown away */
	size_t scanned; /* the marker is not in buf[0, scanned - marker length) */
	int found;
	size_t at; /* where the marker line starts (its '\n') */
	int status;
} shell_out;

static int out_append(shell_out *o, const char *p, size_t n)
{
	if (o->len + n + 1 > o->alloc) {
		size_t na = o->alloc ? o->alloc : 8192;
		while (na < o->len + n + 1)
			na *= 2;
		char *nb = realloc(o->buf, na);
		if (!nb)
			return -1;
		o->buf = nb;
		o->alloc = na;
	}
	memcpy(o->buf + o->len, p, n);
	o->len += n;
	o->buf[o->len] = '\0';
	return 0;
}

/* Looks for "\n<marker> <status>\n"; past the cap, drops the middle of the
 * buffer, keeping the first `cap` bytes and a tail where a marker may be
 * beginning. */
static void out_scan(shell_out *o, const char *marker, size_t cap)
{
	size_t ml = strlen(marker);
	size_t from = o->scanned > ml + 24 ? o->scanned - ml - 24 : 0;
	for (;;) {
		char *m = o->len > from ? memmem(o->buf + from, o->len - from, marker, ml) : NULL;
		if (!m)
			break;
		size_t at = (size_t)(m - o->buf);
		char *nl = memchr(m + ml, '\n', o->len - at - ml);
		if (!nl)
			return; /* the rest of the line is still coming */
		char *end;
		long st = strtol(m + ml + 1, &end, 10);
		if (m[ml] == ' ' && end == nl && at > 0 && o->buf[at - 1] == '\n') {
			o->found = 1;
			o->at = at - 1;
			o->status = (int)st;
			return;
		}
		from = at + 1;
	}
	o->scanned = o->len;
	size_t tail = ml + 32;
	if (o->len > cap + tail + 65536) {
		size_t cut = o->len - tail - cap;
		memmove(o->buf + cap, o->buf + o->len - tail, tail);
		o->dropped += cut;
		o->len = cap + tail;
		o->buf[o->len] = '\0';
		o->scanned = o->len;
	}
}

static json_t *bash_answer(const shell_out *o, size_t upto, size_t cap, int is_error, const char *note)
{
	size_t keep = upto < cap ? upto : cap;
	size_t total = upto + o->dropped;
	keep = base_utf8_cut(o->buf ? o->buf : "", keep, keep);
	base_buf t = BASE_BUF_INIT(cap + 1024);
	if (keep)
		base_buf_put(&t, o->buf, keep);
	if (total > keep) {
		if (t.len && t.ptr[t.len - 1] != '\n')
			base_buf_put(&t, "\n", 1);
		base_buf_printf(&t, "[output cut: %zu of %zu bytes shown]\n", keep, total);
	}
	if (note) {
		if (t.len && t.ptr[t.len - 1] != '\n')
			base_buf_put(&t, "\n", 1);
		base_buf_puts(&t, note);
	}
	json_t *r = agent_tool_result(t.ptr ? t.ptr : "", t.len, is_error, NULL);
	base_buf_dispose(&t);
	return r;
}

static int tool_bash(agent_builtin *b, const json_t *in, json_t **out)
{
	json_t *err = NULL, *res = NULL;
	const char *command;
	int restart = 0;
	long long limit_ms = (long long)b->command_s * 1000, timeout_ms = limit_ms;
	shell_out o;
	memset(&o, 0, sizeof(o));
	base_buf script = BASE_BUF_INIT(COMMAND_MAX + 512);
	if (agent_tool_arg_str(in, "input", "command", 0, &command, &err) < 0 || arg_bool(in, "restart", &restart, &err) < 0 ||
	    agent_tool_arg_int(in, "input", "timeout_ms", 1, 1LL << 40, &timeout_ms, &err) < 0)
		return refuse(b, err, out);
	if (!restart && (!command || !*command))
		return refuse(b, agent_tool_errorf("the input \"command\" is required"), out);
	if (command && strlen(command) > COMMAND_MAX)
		return refuse(b,
			      agent_tool_errorf("the command is longer than %u bytes; put it in a file and run that", COMMAND_MAX),
			      out);
	json_t *refusal = NULL;
	int rc = agent_tools_begin_call(b->tools, &refusal);
	if (rc != 0) {
		*out = refusal;
		return rc < 0 ? rc : 0;
	}
	if (timeout_ms > limit_ms)
		timeout_ms = limit_ms;
	const atomic_int *stop = agent_tools_stop_flag(b->tools);
	if (restart) {
		shell_stop(b);
		if (!command || !*command) {
			res = agent_tool_result("the shell was restarted\n", 24, 0, NULL);
			goto done;
		}
	}
	/* a shell that ended between two commands (a background job broke a
	 * whole-sandbox limit, or was killed): the agent learns it */
	char before[400];
	before[0] = '\0';
	measure_sandbox_result gone;
	memset(&gone, 0, sizeof(gone));
	if (b->shell && b->shell->wait(b->shell, 0, &gone)) {
		char reason[256];
		measure_sandbox_result_reason(&gone, reason, sizeof(reason));
		snprintf(before, sizeof(before),
			 "[the shell had ended since the last command%s%s; this one ran in a new shell]\n",
			 *reason ? ": " : "", reason);
		shell_stop(b);
	}
	if (!b->shell && shell_start(b) < 0) {
		const char *m = base_error_last();
		res = agent_tool_errorf("the shell could not be started: %s", *m ? m : "sandbox failure");
		goto done;
	}
	char delim[65], marker[65], var[40];
	hex_token(delim, 16);
	hex_token(marker + 4, 16);
	memcpy(marker, "PBE_", 4);
	snprintf(var, sizeof(var), "__perfbot_cmd");
	size_t cl = strlen(command);
	if (base_buf_printf(&script, "IFS= read -r -d '' %s <<'PBD_%s'\n", var, delim) < 0 ||
	    base_buf_put(&script, command, cl) < 0 ||
	    (cl && command[cl - 1] != '\n' && base_buf_put(&script, "\n", 1) < 0) ||
	    base_buf_printf(&script,
			    "PBD_%s\neval \"$%s\" </dev/null\n__perfbot_status=$?\n"
			    "command printf '\\n%%s %%d\\n' '%s' \"$__perfbot_status\"\n",
			    delim, var, marker) < 0) {
		res = agent_tool_errorf("the command is too long");
		goto done;
	}
	/* what background jobs printed since the last command opens this answer */
	if ((*before && out_append(&o, before, strlen(before)) < 0) ||
	    (b->pending.len && out_append(&o, b->pending.ptr, b->pending.len) < 0)) {
		res = NULL;
		goto done;
	}
	base_buf_reset(&b->pending);
	int64_t start = base_mono_ms();
	int64_t deadline = start + timeout_ms;
	int sent = shell_send(b, script.ptr, script.len, deadline, stop);
	int why = sent; /* 0 running, 1 shell gone, 2 timeout, 3 stopped */
	int eof = 0;
	while (why == 0) {
		if (*stop) {
			why = 3;
			break;
		}
		int64_t now = base_mono_ms();
		if (now >= deadline) {
			why = 2;
			break;
		}
		struct pollfd pfd = { .fd = b->shell->out_fd, .events = POLLIN };
		int wait = deadline - now < 50 ? (int)(deadline - now) + 1 : 50;
		int pr = eof ? 0 : poll(&pfd, 1, wait);
		if (eof) {
			struct timespec ts = { 0, 20 * 1000000L };
			nanosleep(&ts, NULL);
		}
		if (pr > 0) {
			char chunk[65536];
			ssize_t n = read(b->shell->out_fd, chunk, sizeof(chunk));
			if (n > 0) {
				if (out_append(&o, chunk, (size_t)n) < 0)
					goto done;
				out_scan(&o, marker, b->cap);
				if (o.found)
					break;
				continue;
			}
			if (n == 0)
				eof = 1;
		}
		if (b->shell->wait(b->shell, 0, NULL)) {
			/* drain what is left, then the end */
			char chunk[65536];
			ssize_t n;
			while ((n = read(b->shell->out_fd, chunk, sizeof(chunk))) > 0)
				if (out_append(&o, chunk, (size_t)n) == 0)
					out_scan(&o, marker, b->cap);
			/* the end of the run kills the shell: that is why it is
			 * gone when the flag was raised since the check above */
			if (!o.found)
				why = *stop ? 3 : 1;
			break;
		}
	}
	char note[512];
	if (o.found) {
		/* what came after the marker line belongs to the next answer */
		char *nl = memchr(o.buf + o.at + 1, '\n', o.len - o.at - 1);
		if (nl && (size_t)(nl + 1 - o.buf) < o.len)
			base_buf_put(&b->pending, nl + 1, o.len - (size_t)(nl + 1 - o.buf));
		note[0] = '\0';
		if (o.status != 0)
			snprintf(note, sizeof(note), "[exit status %d]\n", o.status);
		res = bash_answer(&o, o.at, b->cap, o.status != 0, note[0] ? note : NULL);
	} else if (why == 1) {
		measure_sandbox_result st;
		memset(&st, 0, sizeof(st));
		b->shell->wait(b->shell, KILL_WAIT_MS, &st);
		char reason[256];
		measure_sandbox_result_reason(&st, reason, sizeof(reason));
		if (*reason)
			snprintf(note, sizeof(note), "[%s; a new shell starts with the next command]\n", reason);
		else if (st.term_signal)
			snprintf(note, sizeof(note),
				 "[the shell was killed by signal %d; a new shell starts with the next "
				 "command]\n",
				 st.term_signal);
		else
			snprintf(note, sizeof(note),
				 "[the shell exited with status %d; a new shell starts with the next "
				 "command]\n",
				 st.exit_code);
		res = bash_answer(&o, o.len, b->cap, st.exit_code != 0 || st.term_signal || *reason, note);
		shell_stop(b);
	} else if (why == 2) {
		shell_stop(b);
		snprintf(note, sizeof(note),
			 "[the command timed out after %lld ms: the shell was killed and restarted (the working "
			 "directory, variables and background jobs are gone)]\n",
			 timeout_ms);
		res = bash_answer(&o, o.len, b->cap, 1, note);
	} else {
		shell_stop(b);
		char *reason = NULL;
		agent_tools_ended(b->tools, &reason);
		snprintf(note, sizeof(note), "[the command was stopped: the run has ended: %.300s]\n",
			 reason ? reason : "ended");
		free(reason);
		res = bash_answer(&o, o.len, b->cap, 1, note);
	}
done:
	free(o.buf);
	base_buf_dispose(&script);
	if (!res)
		return base_error_set(BASE_ENOMEM, "out of memory");
	*out = res;
	return 0;
}

/* ---- dispatch ------------------------------------------------------------ */

static int run_counted(agent_builtin *b, json_t *(*fn)(agent_builtin *, const json_t *), const json_t *in, json_t **out)
{
	json_t *refusal = NULL;
	int rc = agent_tools_begin_call(b->tools, &refusal);
	if (rc != 0) {
		*out = refusal;
		return rc < 0 ? rc : 0;
	}
	base_error_clear();
	*out = fn(b, in);
	return *out ? 0 : base_error_set(BASE_ENOMEM, "out of memory");
}

static const char *const NAMES[] = { "bash", "read", "write", "edit", "glob", "grep" };

int agent_builtin_exists(const char *name)
{
	for (size_t i = 0; name && i < sizeof(NAMES) / sizeof(NAMES[0]); i++)
		if (strcmp(name, NAMES[i]) == 0)
			return 1;
	return 0;
}

int agent_builtin_call(agent_builtin *b, const char *name, const json_t *input, json_t **result_out)
{
	*result_out = NULL;
	if (!agent_builtin_exists(name))
		return base_error_set(BASE_ENOTFOUND, "there is no built-in tool named \"%s\"", name ? name : "");
	json_t *empty = NULL;
	if (!input || json_is_null(input))
		input = empty = json_object();
	int error = 0;
	pthread_mutex_lock(&b->lock);
	if (!json_is_object(input))
		error = refuse(b, agent_tool_errorf("the input of %s must be an object", name), result_out);
	else if (!strcmp(name, "bash"))
		error = tool_bash(b, input, result_out);
	else if (!strcmp(name, "read"))
		error = tool_read(b, input, result_out);
	else if (!strcmp(name, "write"))
		error = tool_write(b, input, result_out);
	else if (!strcmp(name, "edit"))
		error = tool_edit(b, input, result_out);
	else if (!strcmp(name, "glob"))
		error = run_counted(b, glob_run, input, result_out);
	else
		error = run_counted(b, grep_run, input, result_out);
	pthread_mutex_unlock(&b->lock);
	json_decref(empty);
	return error;
}

/* ---- lifecycle ----------------------------------------------------------- */

int agent_builtin_new(agent_builtin **out, const agent_builtin_options *opts)
{
	*out = NULL;
	if (!opts || !opts->tools || !opts->sandbox || !opts->workspace)
		return base_error_set(BASE_EINVALID,
				      "the built-in tools need a tool context, a sandbox and a workspace");
	agent_builtin *b = calloc(1, sizeof(*b));
	if (!b || !(b->workspace = strdup(opts->workspace))) {
		free(b);
		return base_error_set(BASE_ENOMEM, "out of memory");
	}
	pthread_mutex_init(&b->lock, NULL);
	pthread_mutex_init(&b->shell_lock, NULL);
	b->tools = opts->tools;
	b->sandbox = opts->sandbox;
	b->limits = opts->limits;
	b->cap = opts->limits.output_cap ? opts->limits.output_cap : DEFAULT_ANSWER_CAP;
	if (b->cap < 1024)
		b->cap = 1024;
	b->command_s = opts->limits.timeout_s > 0 ? opts->limits.timeout_s : DEFAULT_COMMAND_S;
	base_buf_init(&b->pending, b->cap);
	*out = b;
	return 0;
}

void agent_builtin_free(agent_builtin *b)
{
	if (!b)
		return;
	/* a command in flight on another thread ends at once: its shell is
	 * gone; then that call's return is waited for */
	pthread_mutex_lock(&b->shell_lock);
	if (b->shell)
		b->shell->kill(b->shell);
	pthread_mutex_unlock(&b->shell_lock);
	pthread_mutex_lock(&b->lock);
	shell_stop(b);
	pthread_mutex_unlock(&b->lock);
	base_buf_dispose(&b->pending);
	pthread_mutex_destroy(&b->shell_lock);
	pthread_mutex_destroy(&b->lock);
	free(b->workspace);
	free(b);
}
