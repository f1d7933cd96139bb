/* Validation of a proposal diff before any git work.
 *
 * The diff is untrusted: it comes from an agent's workspace.  It is parsed
 * with libgit2's patch parser (git_diff_from_buffer) and every delta is
 * checked: paths stay inside the tree, never reach `.git` or
 * `.github/workflows`, no binary patch, no symlink or submodule entries.
 * Then the diff policy that verification applied (base/diff_policy.h: no
 * test, build or CI file, nothing under .github/, no dotfile, no line that
 * names valgrind's measurement), so an approved proposal is never refused
 * here for another reason than the one verification would give.
 * Checks that need the base tree (does it apply, does a new file or a
 * rename land on an existing file, does it touch a symlink or a submodule
 * of the base) happen in pr_git.c.  Pure, no state; any thread. */
#include "pr/pr.h"
#include "pr/pr_int.h"

#include <git2.h>
#include <string.h>
#include <strings.h>

#include "base/diff_policy.h"
#include "base/error.h"
#include "base/utf8.h"

/* The length of s cut to at most cap bytes without splitting a UTF-8
 * character, for "%.*s": a refusal reaches the user through JSON. */
static int cut(const char *s, size_t cap)
{
	return (int)base_utf8_cut(s, strlen(s), cap);
}

/* One path component at a time: no empty, ".", ".." or ".git" component
 * (any case; git itself refuses ".git" in a tree on case-insensitive
 * systems), no backslash (a Windows separator in disguise). */
static int check_path(const char *path)
{
	if (!path || !*path)
		return base_error_set(BASE_EINVALID, "the diff names an empty path");
	if (path[0] == '/')
		return base_error_set(BASE_EINVALID, "the diff touches an absolute path: %.*s", cut(path, 200), path);
	if (strchr(path, '\\'))
		return base_error_set(BASE_EINVALID, "the diff touches a path with a backslash: %.*s",
				     cut(path, 200), path);
	const char *p = path;
	while (*p) {
		const char *end = strchr(p, '/');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (n == 0 || (n == 1 && p[0] == '.'))
			return base_error_set(BASE_EINVALID, "the diff touches a malformed path: %.*s",
					     cut(path, 200), path);
		if (n == 2 && p[0] == '.' && p[1] == '.')
			return base_error_set(BASE_EINVALID, "the diff touches a path outside the tree: %.*s",
					     cut(path, 200), path);
		if (n == 4 && strncasecmp(p, ".git", 4) == 0)
			return base_error_set(BASE_EINVALID, "the diff touches .git: %.*s", cut(path, 200), path);
		if (!end)
			break;
		p = end + 1;
	}
	if (strncasecmp(path, ".github/workflows/", 18) == 0 || strcasecmp(path, ".github/workflows") == 0)
		return base_error_set(BASE_EINVALID, "the diff touches a GitHub Actions workflow: %.*s",
				     cut(path, 200), path);
	return 0;
}

static int check_mode(uint16_t mode, const char *path)
{
	if (mode == GIT_FILEMODE_LINK)
		return base_error_set(BASE_EINVALID, "the diff adds or changes a symbolic link: %.*s",
				     cut(path, 200), path);
	if (mode == GIT_FILEMODE_COMMIT)
		return base_error_set(BASE_EINVALID, "the diff changes a submodule: %.*s", cut(path, 200), path);
	return 0;
}

int pr_diff_check_parsed(git_diff *diff)
{
	size_t n = git_diff_num_deltas(diff);
	if (n == 0)
		return base_error_set(BASE_EINVALID, "the diff changes no file");
	for (size_t i = 0; i < n; i++) {
		const git_diff_delta *d = git_diff_get_delta(diff, i);
		const char *path = d->new_file.path ? d->new_file.path : d->old_file.path;
		int error;
		if (d->old_file.path && (error = check_path(d->old_file.path)) < 0)
			return error;
		if (d->new_file.path && (error = check_path(d->new_file.path)) < 0)
			return error;
		if (d->flags & GIT_DIFF_FLAG_BINARY)
			return base_error_set(BASE_EINVALID, "the diff contains a binary patch: %.*s",
					     cut(path, 200), path);
		if ((error = check_mode(d->old_file.mode, path)) < 0 || (error = check_mode(d->new_file.mode, path)) < 0)
			return error;
		if ((d->old_file.path && (error = base_diff_policy_check_path(NULL, d->old_file.path)) < 0) ||
		    (d->new_file.path && (error = base_diff_policy_check_path(NULL, d->new_file.path)) < 0))
			return error;
	}
	return 0;
}

static int starts(const char *line, const char *end, const char *prefix)
{
	size_t n = strlen(prefix);
	return (size_t)(end - line) >= n && memcmp(line, prefix, n) == 0;
}

/* libgit2's parser folds "a//etc/passwd" into a relative path; the text is
 * what a reviewer reads, so absolute paths in the headers are refused too. */
static int check_headers(const char *diff, size_t len)
{
	static const char *const bare[] = {"rename from ", "rename to ", "copy from ", "copy to "};
	const char *end = diff + len;
	for (const char *line = diff; line < end;) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		const char *eol = nl ? nl : end;
		const char *path = NULL;
		if (starts(line, eol, "--- ") || starts(line, eol, "+++ ")) {
			path = line + 4;
			if (starts(path, eol, "a/") || starts(path, eol, "b/"))
				path += 2;
			else if (starts(path, eol, "/dev/null"))
				path = NULL;
		} else if (starts(line, eol, "diff --git ")) {
			if (memmem(line, (size_t)(eol - line), " a//", 4) || memmem(line, (size_t)(eol - line), " b//", 4) ||
			    starts(line, eol, "diff --git /"))
				path = "/";
		} else {
			for (size_t i = 0; i < sizeof(bare) / sizeof(bare[0]); i++)
				if (starts(line, eol, bare[i]))
					path = line + strlen(bare[i]);
		}
		if (path && path < eol && *path == '/')
			return base_error_set(BASE_EINVALID, "the diff touches an absolute path: %.*s",
					     (int)base_utf8_cut(line, (size_t)(eol - line), 200), line);
		line = nl ? nl + 1 : end;
	}
	return 0;
}

int pr_diff_parse(git_diff **out, const char *diff, size_t len, size_t max_bytes)
{
	if (max_bytes == 0)
		max_bytes = PR_DIFF_MAX_DEFAULT;
	*out = NULL;
	if (!diff || len == 0)
		return base_error_set(BASE_EINVALID, "the diff is empty");
	if (len > max_bytes)
		return base_error_set(BASE_ETOOBIG, "the diff is %zu bytes, over the cap of %zu bytes", len, max_bytes);
	if (memchr(diff, '\0', len))
		return base_error_set(BASE_EINVALID, "the diff contains a NUL byte");
	int error = check_headers(diff, len);
	if (error < 0)
		return error;
	git_diff *d = NULL;
	if (git_diff_from_buffer(&d, diff, len) < 0) {
		const git_error *e = git_error_last();
		return base_error_set(BASE_EINVALID, "the diff does not parse: %s", e && e->message ? e->message : "?");
	}
	error = pr_diff_check_parsed(d);
	if (error == 0)
		error = base_diff_policy_check_lines(diff, len);
	if (error < 0) {
		git_diff_free(d);
		return error;
	}
	*out = d;
	return 0;
}

int pr_init(void)
{
	if (git_libgit2_init() < 0)
		return base_error_set(BASE_EGENERIC, "libgit2 initialisation failed");
	return 0;
}

void pr_shutdown(void)
{
	git_libgit2_shutdown();
}

int pr_diff_check(const char *diff, size_t len, size_t max_bytes)
{
	git_libgit2_init();
	git_diff *d = NULL;
	int error = pr_diff_parse(&d, diff, len, max_bytes);
	git_diff_free(d);
	git_libgit2_shutdown();
	return error;
}
