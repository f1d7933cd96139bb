/* Workspace confinement and the workspace diff, shared by the file tools
 * and by verification.
 *
 * Confinement: an agent's path is checked lexically first (relative, no
 * "..", no .git component), then resolved with realpath(3) and accepted
 * only when the result is the workspace or below it and still has no .git
 * component.  Files are then opened with O_NOFOLLOW, so a last component
 * swapped for a link after the check is refused too.  Tool calls of one run
 * are serialised, which keeps the check and the use together.
 *
 * No state; thread-safe. */
#include "agent/tools.h"

#include <errno.h>
#include <fcntl.h>
#include <git2.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/error.h"

static int is_git_name(const char *s, size_t n)
{
	return n == 4 && strncasecmp(s, ".git", 4) == 0;
}

/* 1 when the relative path (components separated by '/') has a .git part. */
static int has_git_component(const char *p)
{
	while (*p) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (is_git_name(p, n))
			return 1;
		if (!e)
			break;
		p = e + 1;
	}
	return 0;
}

/* Checks that `resolved` lies in `root` (both canonical); stores the part
 * below root (without leading '/') in *below. */
static int inside(const char *root, const char *resolved, const char **below)
{
	size_t n = strlen(root);
	if (strncmp(resolved, root, n) != 0)
		return 0;
	if (resolved[n] == '\0') {
		*below = resolved + n;
		return 1;
	}
	if (resolved[n] != '/' && !(n == 1 && root[0] == '/'))
		return 0;
	*below = resolved + n + (resolved[n] == '/');
	return 1;
}

int agent_path_resolve(char **abs_out, const char *workspace, const char *rel, int must_exist)
{
	char *root = NULL, *norm = NULL, *probe = NULL, *res = NULL;
	base_buf out = BASE_BUF_INIT(PATH_MAX * 2);
	int error = 0;

	*abs_out = NULL;
	if (!rel)
		rel = "";
	if (strlen(rel) >= PATH_MAX)
		return base_error_set(BASE_EFORBIDDEN, "the path is too long");
	if (rel[0] == '/')
		return base_error_set(BASE_EFORBIDDEN, "absolute paths are not allowed; give a path relative to the workspace");
	if (!(root = realpath(workspace, NULL)))
		return base_error_set(BASE_EGENERIC, "the workspace is not accessible: %s", strerror(errno));

	/* lexical pass: normalise "." and empty parts, refuse ".." and .git */
	base_buf nb = BASE_BUF_INIT(PATH_MAX);
	for (const char *p = rel; *p;) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			base_buf_dispose(&nb);
			error = base_error_set(BASE_EFORBIDDEN, "\"..\" is not allowed in paths; stay inside the workspace");
			goto done;
		}
		if (is_git_name(p, n)) {
			base_buf_dispose(&nb);
			error = base_error_set(BASE_EFORBIDDEN, "the .git directory is off limits");
			goto done;
		}
		if (n > 0 && !(n == 1 && p[0] == '.')) {
			if ((nb.len && base_buf_put(&nb, "/", 1) < 0) || base_buf_put(&nb, p, n) < 0) {
				base_buf_dispose(&nb);
				error = base_error_set(BASE_EFORBIDDEN, "the path is too long");
				goto done;
			}
		}
		if (!e)
			break;
		p = e + 1;
	}
	norm = base_buf_detach(&nb);
	if (!norm) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}

	/* Find the longest existing prefix, resolve it, keep the rest as is
	 * (the rest does not exist, so it holds no links). */
	size_t keep = strlen(norm);
	const char *rest = "";
	for (;;) {
		free(probe);
		probe = NULL;
		if (base_buf_printf(&out, "%s%s%.*s", root, keep ? "/" : "", (int)keep, norm) < 0) {
			error = base_error_set(BASE_EFORBIDDEN, "the path is too long");
			goto done;
		}
		probe = base_buf_detach(&out);
		if (!probe) {
			error = base_error_set(BASE_ENOMEM, "out of memory");
			goto done;
		}
		res = realpath(probe, NULL);
		if (res)
			break;
		if (errno != ENOENT) {
			struct stat st;
			if (errno == ENOTDIR)
				error = base_error_set(BASE_EINVALID, "a part of the path \"%s\" is not a directory", rel);
			else if (lstat(probe, &st) == 0 && S_ISLNK(st.st_mode))
				error = base_error_set(BASE_EFORBIDDEN, "\"%s\" goes through a symbolic link that cannot be followed", rel);
			else
				error = base_error_set(BASE_EINVALID, "cannot resolve \"%s\": %s", rel, strerror(errno));
			goto done;
		}
		struct stat st;
		if (lstat(probe, &st) == 0 && S_ISLNK(st.st_mode)) {
			error = base_error_set(BASE_EFORBIDDEN, "\"%s\" goes through a symbolic link that leads nowhere", rel);
			goto done;
		}
		if (must_exist && keep == strlen(norm)) {
			error = base_error_set(BASE_ENOTFOUND, "\"%s\" does not exist", rel);
			goto done;
		}
		if (keep == 0) {
			error = base_error_set(BASE_EGENERIC, "the workspace is not accessible");
			goto done;
		}
		while (keep > 0 && norm[keep - 1] != '/')
			keep--;
		rest = norm + keep;
		if (keep > 0)
			keep--; /* drop the separator */
	}

	const char *below = NULL;
	if (!inside(root, res, &below)) {
		error = base_error_set(BASE_EFORBIDDEN, "\"%s\" resolves outside the workspace", rel);
		goto done;
	}
	if (has_git_component(below) || has_git_component(rest)) {
		error = base_error_set(BASE_EFORBIDDEN, "the .git directory is off limits");
		goto done;
	}
	if (base_buf_printf(&out, "%s%s%s", res, *rest ? "/" : "", rest) < 0) {
		error = base_error_set(BASE_EFORBIDDEN, "the path is too long");
		goto done;
	}
	*abs_out = base_buf_detach(&out);
	if (!*abs_out)
		error = base_error_set(BASE_ENOMEM, "out of memory");
done:
	base_buf_dispose(&out);
	free(root);
	free(norm);
	free(probe);
	free(res);
	return error;
}

static int git_fail(const char *what)
{
	const git_error *e = git_error_last();
	return base_error_set(BASE_EGENERIC, "%s: %s", what, e && e->message ? e->message : "unknown error");
}

/* Opens repo_path with `workspace` as its work directory (in memory only:
 * nothing is written to either), or the workspace itself. */
static int open_with_workdir(git_repository **repo, const char *repo_path, const char *workspace)
{
	if (!repo_path) {
		if (git_repository_open_ext(repo, workspace, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) < 0)
			return git_fail("cannot open the workspace repository");
		return 0;
	}
	if (git_repository_open_ext(repo, repo_path, GIT_REPOSITORY_OPEN_NO_SEARCH | GIT_REPOSITORY_OPEN_BARE, NULL) < 0 &&
	    git_repository_open_ext(repo, repo_path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) < 0)
		return git_fail("cannot open the repository");
	if (git_repository_set_workdir(*repo, workspace, 0) < 0) {
		git_repository_free(*repo);
		*repo = NULL;
		return git_fail("cannot use the workspace as a work tree");
	}
	return 0;
}

/* 1 when the first bytes of the workspace file hold a NUL (git's test
 * for binary content); reads at most 8000 bytes. */
static int peek_binary(const char *abs)
{
	char buf[8000];
	int fd = open(abs, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf));
	close(fd);
	return n > 0 && memchr(buf, '\0', (size_t)n) != NULL;
}

/* Before a delta's patch is formatted: BASE_ETOOBIG when its text cannot
 * fit in `room` bytes, judged from the file sizes alone (a new file's
 * patch holds all of it; a changed file's at least the growth); *skip 1
 * for a new binary file too big to format (it would be left out anyway). */
static int weigh_delta(int *skip, git_repository *repo, const char *workspace, const git_diff_delta *d, size_t room,
		       size_t cap)
{
	*skip = 0;
	if (!d || !d->new_file.path || (d->status != GIT_DELTA_UNTRACKED && d->status != GIT_DELTA_ADDED &&
					 d->status != GIT_DELTA_MODIFIED && d->status != GIT_DELTA_TYPECHANGE))
		return 0;
	char abs[PATH_MAX];
	struct stat st;
	if ((size_t)snprintf(abs, sizeof(abs), "%s/%s", workspace, d->new_file.path) >= sizeof(abs) ||
	    lstat(abs, &st) < 0 || !S_ISREG(st.st_mode))
		return 0;
	uint64_t size = (uint64_t)st.st_size, old = d->old_file.size;
	int is_new = d->status == GIT_DELTA_UNTRACKED || d->status == GIT_DELTA_ADDED;
	if (!is_new && size > room && !git_oid_is_zero(&d->old_file.id)) {
		/* a tree entry carries no size: the object header has it */
		git_odb *odb = NULL;
		size_t osize = 0;
		git_object_t otype;
		if (git_repository_odb(&odb, repo) == 0 && git_odb_read_header(&osize, &otype, odb, &d->old_file.id) == 0)
			old = osize;
		git_odb_free(odb);
		git_error_clear();
	}
	uint64_t least = is_new ? size : (size > old ? size - old : 0);
	if (least <= room)
		return 0;
	if (is_new && peek_binary(abs)) {
		*skip = 1;
		return 0;
	}
	return base_error_set(BASE_ETOOBIG, "the diff is more than the %zu bytes allowed: %s alone has %llu bytes", cap,
			     d->new_file.path, (unsigned long long)size);
}

int agent_workspace_diff(char **out, const char *repo_path, const char *workspace, const char *base_commit, size_t cap)
{
	git_repository *repo = NULL;
	git_object *obj = NULL;
	git_tree *tree = NULL;
	git_diff *diff = NULL;
	base_buf text = BASE_BUF_INIT(cap);
	int error = 0, too_big = 0;

	*out = NULL;
	git_libgit2_init();
	if ((error = open_with_workdir(&repo, repo_path, workspace)) < 0)
		goto done;
	if (git_revparse_single(&obj, repo, base_commit) < 0) {
		error = git_fail("cannot find the base commit");
		goto done;
	}
	if (git_object_peel((git_object **)&tree, obj, GIT_OBJECT_TREE) < 0) {
		error = git_fail("the base commit has no tree");
		goto done;
	}
	git_diff_options opts;
	git_diff_options_init(&opts, GIT_DIFF_OPTIONS_VERSION);
	opts.flags = GIT_DIFF_INCLUDE_UNTRACKED | GIT_DIFF_RECURSE_UNTRACKED_DIRS | GIT_DIFF_SHOW_UNTRACKED_CONTENT |
		     GIT_DIFF_SHOW_BINARY;
	/* A plain directory has no index: compare the tree with the files
	 * themselves.  A repository workspace compares through its index so
	 * that files an agent staged or removed with git count too. */
	if ((repo_path ? git_diff_tree_to_workdir(&diff, repo, tree, &opts)
		       : git_diff_tree_to_workdir_with_index(&diff, repo, tree, &opts)) < 0) {
		error = git_fail("cannot diff the workspace");
		goto done;
	}
	/* Patch by patch, leaving out new binary files: they are build
	 * products in a tree without a .gitignore, and never a valid change.
	 * Each file's size is weighed against the room left before its patch
	 * is formatted (which reads the whole file), so that a huge file costs
	 * a stat, not its content. */
	for (size_t i = 0, n = git_diff_num_deltas(diff); i < n && !too_big; i++) {
		git_patch *patch = NULL;
		git_buf one = { NULL, 0, 0 };
		int skip_big = 0;
		if ((error = weigh_delta(&skip_big, repo, workspace, git_diff_get_delta(diff, i), cap - text.len, cap)) < 0)
			goto done;
		if (skip_big)
			continue;
		if (git_patch_from_diff(&patch, diff, i) < 0) {
			error = git_fail("cannot format the diff");
			goto done;
		}
		const git_diff_delta *d = patch ? git_patch_get_delta(patch) : git_diff_get_delta(diff, i);
		int skip = d->status == GIT_DELTA_UNTRACKED && (d->flags & GIT_DIFF_FLAG_BINARY);
		if (patch && !skip) {
			if (git_patch_to_buf(&one, patch) < 0) {
				git_patch_free(patch);
				error = git_fail("cannot format the diff");
				goto done;
			}
			if (base_buf_put(&text, one.ptr ? one.ptr : "", one.size) < 0)
				too_big = 1;
			git_buf_dispose(&one);
		}
		git_patch_free(patch);
	}
	if (too_big) {
		error = base_error_set(BASE_ETOOBIG, "the diff is more than the %zu bytes allowed", cap);
		goto done;
	}
	*out = base_buf_detach(&text);
	if (!*out)
		error = base_error_set(BASE_ENOMEM, "out of memory");
done:
	base_buf_dispose(&text);
	git_diff_free(diff);
	git_tree_free(tree);
	git_object_free(obj);
	git_repository_free(repo);
	git_libgit2_shutdown();
	return error;
}

int agent_workspace_apply(const char *repo_path, const char *workspace, const char *diff, size_t len)
{
	git_repository *repo = NULL;
	git_diff *d = NULL;
	int error = 0;

	git_libgit2_init();
	if ((error = open_with_workdir(&repo, repo_path, workspace)) < 0)
		goto done;
	if (git_diff_from_buffer(&d, diff, len) < 0) {
		git_fail("the diff cannot be parsed");
		error = BASE_EINVALID;
		goto done;
	}
	if (git_apply(repo, d, GIT_APPLY_LOCATION_WORKDIR, NULL) < 0) {
		git_fail("the diff does not apply to the base commit");
		error = BASE_EINVALID;
		goto done;
	}
done:
	git_diff_free(d);
	git_repository_free(repo);
	git_libgit2_shutdown();
	return error;
}
