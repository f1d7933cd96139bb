/* The diff policy (see diff_policy.h).
 *
 * Paths are judged as text: no file system, no repository.  Built-in rules
 * compare case-insensitively (a `Tests/` folder or a `MAKEFILE` is what it
 * looks like on a case-insensitive file system); the globs of the
 * configuration compare exactly.  Pure, no state; any thread. */
#include "base/diff_policy.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/error.h"
#include "base/utf8.h"

#define MAX_WORD 1024
#define SHOWN 80 /* bytes of a command or glob quoted in a reason */
#define MAX_PATH_MATCH 4096 /* longer paths match no glob */

/* ---- globs ---------------------------------------------------------------- */

static int ch_eq(char a, char b, int fold)
{
	return fold ? tolower((unsigned char)a) == tolower((unsigned char)b) : a == b;
}

/* glob[0..gl) against s[0..sl): `*` and `?` never match '/', `**` does,
 * `**` + '/' is zero or more whole folders.  A row of booleans per glob
 * token over the positions of s: O(gl * sl), whatever the glob. */
static int match(const char *g, size_t gl, const char *s, size_t sl, int fold)
{
	if (sl > MAX_PATH_MATCH)
		return 0;
	unsigned char rows[2][MAX_PATH_MATCH + 1], star[MAX_PATH_MATCH + 1];
	unsigned char *old = rows[0], *cur = rows[1];
	memset(old, 0, sl + 1);
	old[0] = 1;
	for (size_t i = 0; i < gl;) {
		memset(cur, 0, sl + 1);
		if (g[i] == '*' && i + 1 < gl && g[i + 1] == '*') {
			star[0] = old[0];
			for (size_t j = 1; j <= sl; j++)
				star[j] = old[j] || star[j - 1];
			if (i + 2 < gl && g[i + 2] == '/') {
				for (size_t j = 0; j <= sl; j++)
					cur[j] = old[j] || (j > 0 && s[j - 1] == '/' && star[j - 1]);
				i += 3;
			} else {
				memcpy(cur, star, sl + 1);
				i += 2;
			}
		} else if (g[i] == '*') {
			cur[0] = old[0];
			for (size_t j = 1; j <= sl; j++)
				cur[j] = old[j] || (cur[j - 1] && s[j - 1] != '/');
			i++;
		} else {
			for (size_t j = 0; j < sl; j++)
				cur[j + 1] = old[j] && (g[i] == '?' ? s[j] != '/' : ch_eq(g[i], s[j], fold));
			i++;
		}
		unsigned char *t = old;
		old = cur;
		cur = t;
	}
	return old[sl];
}

static int match_z(const char *g, const char *s, int fold)
{
	return match(g, strlen(g), s, strlen(s), fold);
}

int base_diff_policy_glob(const char *glob, const char *path)
{
	if (!glob || !path)
		return 0;
	while (glob[0] == '.' && glob[1] == '/')
		glob += 2;
	while (glob[0] == '/')
		glob++;
	size_t gl = strlen(glob);
	while (gl > 0 && glob[gl - 1] == '/')
		gl--;
	if (gl == 0)
		return 0;
	size_t pl = strlen(path);
	if (!memchr(glob, '/', gl)) {
		/* a component at any depth */
		for (const char *c = path; *c;) {
			const char *e = strchr(c, '/');
			size_t n = e ? (size_t)(e - c) : strlen(c);
			if (match(glob, gl, c, n, 0))
				return 1;
			if (!e)
				break;
			c = e + 1;
		}
		return 0;
	}
	/* the path itself or one of its folders */
	for (size_t n = pl; n > 0; n--) {
		if (n == pl || path[n] == '/')
			if (match(glob, gl, path, n, 0))
				return 1;
	}
	return 0;
}

/* ---- built-in rules -------------------------------------------------------- */

static const char *const TEST_DIRS[] = { "tests", "test", "spec", "specs", "__tests__", "testdata", NULL };
static const char *const TEST_FILES[] = { "*_test.*", "test_*.*", "*.test.*", "*.spec.*", "*_spec.*", "conftest.py",
					  NULL };
static const char *const BUILD_FILES[] = {
	"Makefile*", "GNUmakefile", "*.mk", "*.mak", "CMakeLists.txt", "*.cmake", "CMakePresets.json",
	"configure*", "*.am", "*.ac", "*.m4", "meson.build", "meson_options.txt", "meson.options", "setup.py",
	"setup.cfg", "pyproject.toml", "tox.ini", "noxfile.py", "requirements*.txt", "Pipfile*", "poetry.lock",
	"package.json", "package-lock.json", "yarn.lock", "pnpm-lock.yaml", "Cargo.toml", "Cargo.lock", "build.rs",
	"go.mod", "go.sum", "go.work", "BUILD", "BUILD.bazel", "WORKSPACE*", "MODULE.bazel", "*.bzl", "build.gradle*",
	"settings.gradle*", "gradle.properties", "pom.xml", "build.xml", "SConstruct", "SConscript", "build.zig",
	"build.zig.zon", "Jenkinsfile", "Dockerfile*", "Gemfile*", "Rakefile", "*.gemspec", "composer.json",
	"*.csproj", "*.sln", "vcpkg.json", "conanfile.*", "build.sh", "pytest.ini", "jest.config.*",
	"vitest.config.*", "tsconfig*.json", "webpack.config.*", "rollup.config.*", "vite.config.*", "Justfile",
	"Taskfile.y*ml", "build.ninja", "*.ninja", "*.gyp", "*.gypi", "premake*.lua", "xmake.lua", "Build.PL", "dune",
	"dune-project", "*.cabal", "stack.yaml", "mix.exs", "rebar.config", "build.sbt", "*.nimble", "Package.swift",
	NULL
};

/* 1 when a component of path starts with a dot. */
static int has_dot_component(const char *path)
{
	for (const char *c = path; *c;) {
		if (c[0] == '.')
			return 1;
		const char *e = strchr(c, '/');
		if (!e)
			break;
		c = e + 1;
	}
	return 0;
}

static const char *basename_of(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

static int builtin(const char *path, char *why, size_t n)
{
	if (strncasecmp(path, ".github/", 8) == 0 || strcasecmp(path, ".github") == 0) {
		snprintf(why, n, "is under .github/ (CI and perfbot's configuration)");
		return 1;
	}
	if (has_dot_component(path)) {
		snprintf(why, n, "is a dotfile or under a dot-folder (tools such as valgrind read them)");
		return 1;
	}
	const char *base = basename_of(path);
	for (const char *c = path; c < base;) {
		const char *e = strchr(c, '/');
		size_t l = (size_t)(e - c);
		for (size_t i = 0; TEST_DIRS[i]; i++) {
			if (strlen(TEST_DIRS[i]) == l && strncasecmp(c, TEST_DIRS[i], l) == 0) {
				snprintf(why, n, "is a test (under %s/)", TEST_DIRS[i]);
				return 1;
			}
		}
		c = e + 1;
	}
	for (size_t i = 0; TEST_FILES[i]; i++) {
		if (match_z(TEST_FILES[i], base, 1)) {
			snprintf(why, n, "is a test (%s)", TEST_FILES[i]);
			return 1;
		}
	}
	for (size_t i = 0; BUILD_FILES[i]; i++) {
		if (match_z(BUILD_FILES[i], base, 1)) {
			snprintf(why, n, "is a build file (%s)", BUILD_FILES[i]);
			return 1;
		}
	}
	return 0;
}

/* ---- the files of the commands --------------------------------------------- */

static int is_separator(char c)
{
	return c == ';' || c == '&' || c == '|' || c == '(' || c == ')' || c == '\n' || c == '`';
}

/* A word of a command that names a file of the tree: relative, inside,
 * with a '/' or an extension ("data/x.json", "run.py"; not "3.5"). */
static int path_like(const char *w)
{
	if (!*w || w[0] == '/' || w[0] == '$' || w[0] == '~' || strstr(w, ".."))
		return 0;
	if (strchr(w, '/'))
		return 1;
	const char *dot = strrchr(w, '.');
	return dot && dot != w && isalpha((unsigned char)dot[1]);
}

/* 1 when path is p or under p. */
static int under(const char *path, const char *p, size_t pl)
{
	return pl > 0 && strncmp(path, p, pl) == 0 && (path[pl] == '\0' || path[pl] == '/');
}

static int cut(const char *s, size_t cap)
{
	return (int)base_utf8_cut(s, strlen(s), cap);
}

static const char *const INTERPRETERS[] = { "sh", "bash", "dash", "zsh", "python", "python3", "node", "perl",
					     "ruby", "php", "lua", "Rscript", "tclsh", "env", "exec", "nice", "time", NULL };

static int interpreter(const char *w)
{
	const char *b = basename_of(w);
	for (size_t i = 0; INTERPRETERS[i]; i++)
		if (strcmp(b, INTERPRETERS[i]) == 0)
			return 1;
	return strncmp(b, "python3.", 8) == 0;
}

/* 1 with why set when the command names path.  A benchmark command
 * protects every file it names and the folder of its program or script (the
 * harness); a build or test command protects its program or script only (a
 * compiler's inputs are the code to optimise). */
static int named_by(const char *command, int bench, const char *path, char *why, size_t n)
{
	char w[MAX_WORD];
	int pos = 0;       /* word position in the simple command */
	int program = 1;   /* the next word runs (program, or script after an interpreter) */
	int cd = 0;        /* the next word is the folder of a `cd` */
	for (const char *s = command; *s;) {
		while (*s == ' ' || *s == '\t' || *s == '<' || *s == '>')
			s++;
		if (is_separator(*s)) {
			pos = 0;
			program = 1;
			s++;
			continue;
		}
		if (!*s)
			break;
		size_t l = 0;
		while (*s && *s != ' ' && *s != '\t' && *s != '<' && *s != '>' && !is_separator(*s)) {
			if (*s != '"' && *s != '\'' && l + 1 < sizeof(w))
				w[l++] = *s;
			s++;
		}
		w[l] = '\0';
		int runs = program, assign = 0;
		pos++;
		char *word = w;
		char *eq = strchr(word, '=');
		if (eq && pos == 1 && word[0] != '-') { /* N=1000 ./bench: an assignment, not the program */
			pos = 0;
			word = eq + 1;
			runs = 0;
			assign = 1;
		} else if (eq) { /* --input=data/x */
			word = eq + 1;
			runs = 0;
		} else if (word[0] == '-') {
			continue;
		}
		if (!assign)
			program = runs && interpreter(word);
		int into = cd;
		cd = runs && pos == 1 && strcmp(word, "cd") == 0;
		int dotted = word[0] == '.' && word[1] == '/';
		while (word[0] == '.' && word[1] == '/')
			word += 2;
		size_t wl = strlen(word);
		while (wl > 0 && word[wl - 1] == '/')
			word[--wl] = '\0';
		if (into && bench && *word && word[0] != '/' && !strstr(word, "..") && under(path, word, wl)) {
			snprintf(why, n, "is in %s/, where the benchmark command `%.*s` runs", word, cut(command, SHOWN),
				 command);
			return 1;
		}
		if (!(path_like(word) || (dotted && *word && !strstr(word, ".."))))
			continue;
		if (!bench && !runs)
			continue;
		if (under(path, word, wl)) {
			snprintf(why, n, "is named by the %s command `%.*s`", bench ? "benchmark" : "build or test",
				 cut(command, SHOWN), command);
			return 1;
		}
		const char *slash = strrchr(word, '/');
		if (bench && runs && slash && under(path, word, (size_t)(slash - word))) {
			snprintf(why, n, "is in %.*s/, the folder of the benchmark command `%.*s`", (int)(slash - word),
				 word, cut(command, SHOWN), command);
			return 1;
		}
	}
	return 0;
}

int base_diff_policy_path(const base_diff_policy *p, const char *path, char *why, size_t n)
{
	if (!path || !*path) {
		snprintf(why, n, "is an empty path");
		return 1;
	}
	while (path[0] == '.' && path[1] == '/')
		path += 2;
	if (builtin(path, why, n))
		return 1;
	if (!p)
		return 0;
	for (size_t i = 0; i < p->nbench_commands; i++)
		if (p->bench_commands[i] && named_by(p->bench_commands[i], 1, path, why, n))
			return 1;
	for (size_t i = 0; i < p->ncommands; i++)
		if (p->commands[i] && named_by(p->commands[i], 0, path, why, n))
			return 1;
	for (size_t i = 0; i < p->nprotected; i++) {
		if (base_diff_policy_glob(p->protected_globs[i], path)) {
			snprintf(why, n, "matches optimize.protected (%.*s)", cut(p->protected_globs[i], SHOWN),
				 p->protected_globs[i]);
			return 1;
		}
	}
	if (p->nallowed > 0) {
		for (size_t i = 0; i < p->nallowed; i++)
			if (base_diff_policy_glob(p->allowed_globs[i], path))
				return 0;
		snprintf(why, n, "is outside optimize.paths");
		return 2;
	}
	return 0;
}

int base_diff_policy_check_path(const base_diff_policy *p, const char *path)
{
	char why[256];
	int r = base_diff_policy_path(p, path, why, sizeof(why));
	if (!r)
		return 0;
	return base_error_set(BASE_EINVALID, "refused: %.*s %s: %s", path ? cut(path, 200) : 0, path ? path : "", why,
			     r == 2 ? "the configuration limits what a change may touch"
				    : "a change may not alter what is built, tested or measured");
}

/* ---- changed lines --------------------------------------------------------- */

/* Words of valgrind's measurement: client requests (callgrind.h,
 * valgrind.h, RUNNING_ON_VALGRIND), its preloaded libraries (a program that
 * finds vgpreload in its maps knows it is measured) and its options. */
static const char *const MEASUREMENT_WORDS[] = { "callgrind", "cachegrind", "valgrind", "vgpreload",
						 "ld_preload", "ld_audit", NULL };

static const char *memcasemem(const char *h, size_t hl, const char *n, size_t nl)
{
	if (nl == 0 || hl < nl)
		return NULL;
	for (size_t i = 0; i + nl <= hl; i++)
		if (strncasecmp(h + i, n, nl) == 0)
			return h + i;
	return NULL;
}

size_t base_diff_policy_measurement_line(const char *diff, size_t len, const char **word_out)
{
	size_t lineno = 0;
	for (const char *s = diff, *end = diff + len; s < end;) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t n = nl ? (size_t)(nl - s) : (size_t)(end - s);
		lineno++;
		int changed = n > 0 && (s[0] == '+' || s[0] == '-') &&
			      !(n >= 4 && (!strncmp(s, "+++ ", 4) || !strncmp(s, "--- ", 4)));
		for (size_t w = 0; changed && MEASUREMENT_WORDS[w]; w++) {
			if (memcasemem(s, n, MEASUREMENT_WORDS[w], strlen(MEASUREMENT_WORDS[w]))) {
				*word_out = MEASUREMENT_WORDS[w];
				return lineno;
			}
		}
		s += n + 1;
	}
	return 0;
}

int base_diff_policy_check_lines(const char *diff, size_t len)
{
	const char *word = NULL;
	size_t line = base_diff_policy_measurement_line(diff, len, &word);
	if (!line)
		return 0;
	return base_error_set(BASE_EINVALID,
			     "refused: line %zu of the diff mentions \"%s\": a change may not alter how valgrind "
			     "measures it (client requests, preloaded libraries, options)",
			     line, word);
}
