/* Checkout cache and work trees with libgit2 (see checkout.h).
 *
 * Layout under DATA_DIR:
 *   repos/<owner>/<name>.git    bare cache, fetched from the clone URL
 *   repos/<owner>/<name>.lock   flock()ed around every fetch and export
 *   work/<name>-XXXXXX          one plain work tree per run
 * The cache has no configured remote: fetches use an anonymous remote built
 * from the URL for that one call, and the token exists only inside the
 * credential callback (it is never in the URL, a config or a log).  libgit2
 * is initialised once per call (git_libgit2_init is reference counted and
 * thread-safe).  Each call opens its own git_repository. */
#include "measure/checkout.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <git2.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "base/fs.h"

typedef struct token_payload {
	const measure_checkout_source *src;
	int attempts;
} token_payload;

static int git_fail(int code, const char *what)
{
	const git_error *e = git_error_last();
	int app = code == GIT_ENOTFOUND ? BASE_ENOTFOUND : code == GIT_EAUTH ? BASE_EAUTH : BASE_EGENERIC;
	return base_error_set(app, "%s: %s", what, e && e->message ? e->message : "libgit2 error");
}


static int valid_part(const char *s, size_t n)
{
	if (n == 0 || n > 100 || (n <= 2 && s[0] == '.' && (n == 1 || s[1] == '.')))
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
		      c == '_' || c == '.'))
			return 0;
	}
	return 1;
}

/* DATA_DIR/repos/<owner>/<name> into buf (without suffix). */
static int cache_base(char *buf, size_t size, const measure_checkout_source *src)
{
	const char *slash = src->repository ? strchr(src->repository, '/') : NULL;
	if (!slash || !valid_part(src->repository, (size_t)(slash - src->repository)) ||
	    !valid_part(slash + 1, strlen(slash + 1)))
		return base_error_set(BASE_EINVALID, "repository name \"%s\" is not owner/name",
				     src->repository ? src->repository : "");
	if (!src->data_dir)
		return base_error_set(BASE_EINVALID, "checkout: DATA_DIR is not set");
	if ((size_t)snprintf(buf, size, "%s/repos/%s", src->data_dir, src->repository) >= size)
		return base_error_set(BASE_EINVALID, "path too long");
	return 0;
}

static int lock_repo(int *fd_out, const measure_checkout_source *src)
{
	char base[PATH_MAX], path[PATH_MAX + 8];
	int error;
	*fd_out = -1;
	if (src->local_path)
		return 0;
	if ((error = cache_base(base, sizeof(base), src)) < 0)
		return error;
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", base);
	char *slash = strrchr(dir, '/');
	*slash = '\0';
	if ((error = base_mkdirs(dir, 0700)) < 0)
		return error;
	snprintf(path, sizeof(path), "%s.lock", base);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return base_error_set(BASE_EGENERIC, "lock %s: %s", path, strerror(errno));
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			close(fd);
			return base_error_set(BASE_EGENERIC, "flock %s: %s", path, strerror(errno));
		}
	}
	*fd_out = fd;
	return 0;
}

static void unlock_repo(int fd)
{
	if (fd >= 0) {
		flock(fd, LOCK_UN);
		close(fd);
	}
}

static int open_repo(git_repository **out, const measure_checkout_source *src, int create)
{
	int rc;
	if (src->local_path) {
		if ((rc = git_repository_open_ext(out, src->local_path, 0, NULL)) < 0)
			return git_fail(rc, src->local_path);
		return 0;
	}
	char base[PATH_MAX], path[PATH_MAX + 8];
	int error = cache_base(base, sizeof(base), src);
	if (error < 0)
		return error;
	snprintf(path, sizeof(path), "%s.git", base);
	rc = git_repository_open_bare(out, path);
	if (rc == GIT_ENOTFOUND && create)
		rc = git_repository_init(out, path, 1);
	if (rc < 0)
		return git_fail(rc, "opening the cache repository");
	return 0;
}

static int credentials_cb(git_credential **out, const char *url, const char *username, unsigned int allowed,
			  void *payload)
{
	(void)url;
	(void)username;
	token_payload *tp = payload;
	if (!(allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) || !tp->src->token_cb || tp->attempts++ > 0)
		return GIT_PASSTHROUGH; /* no token, or it was refused once already */
	char token[512];
	if (tp->src->token_cb(token, sizeof(token), tp->src->token_payload) < 0)
		return GIT_EUSER;
	token[sizeof(token) - 1] = '\0';
	int rc = git_credential_userpass_plaintext_new(out, "x-access-token", token);
	explicit_bzero(token, sizeof(token));
	return rc;
}

static int resolve(git_oid *oid, git_repository *repo, const char *rev)
{
	git_object *obj = NULL;
	int rc = git_revparse_single(&obj, repo, rev);
	if (rc < 0)
		return rc;
	git_object *commit = NULL;
	rc = git_object_peel(&commit, obj, GIT_OBJECT_COMMIT);
	git_object_free(obj);
	if (rc < 0)
		return rc;
	git_oid_cpy(oid, git_object_id(commit));
	git_object_free(commit);
	return 0;
}

static int fetch_locked(git_repository *repo, const measure_checkout_source *src, const char *rev)
{
	if (!src->url)
		return base_error_set(BASE_EINVALID, "checkout: no clone URL for %s", src->repository);
	if (strchr(src->url, '@') && strstr(src->url, "://") && strchr(src->url, '@') > strstr(src->url, "://") &&
	    strchr(src->url, '@') < strchr(strstr(src->url, "://") + 3, '/'))
		return base_error_set(BASE_EINVALID, "checkout: the clone URL must not carry credentials");
	git_remote *remote = NULL;
	/* no url.*.insteadOf rewriting: the server's git configuration must not
	 * redirect (or add credentials to) perfbot's fetches; it also avoids
	 * libgit2 1.5's regex lookup of those keys, which leaks on every call */
	git_remote_create_options ro;
	git_remote_create_options_init(&ro, GIT_REMOTE_CREATE_OPTIONS_VERSION);
	ro.repository = repo;
	ro.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
	int rc = git_remote_create_with_opts(&remote, src->url, &ro);
	if (rc < 0)
		return git_fail(rc, "fetch");
	token_payload tp = { src, 0 };
	git_fetch_options fo;
	git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
	fo.callbacks.credentials = credentials_cb;
	fo.callbacks.payload = &tp;
	fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
	char *branches[1] = { "+refs/heads/*:refs/heads/*" };
	char *by_sha[1];
	char sha_spec[100];
	git_oid tmp;
	git_strarray specs = { branches, 1 };
	/* an exact sha (a push's head, a PR's head or base): only what it needs,
	 * not every branch of the repository */
	int exact = rev && strlen(rev) == 40 && git_oid_fromstr(&tmp, rev) == 0;
	if (exact) {
		snprintf(sha_spec, sizeof(sha_spec), "+%s:refs/perfbot/%s", rev, rev);
		by_sha[0] = sha_spec;
		specs.strings = by_sha;
	}
	rc = git_remote_fetch(remote, &specs, &fo, NULL);
	if (rc < 0 && exact) {
		/* servers that refuse fetching by sha: branches (a new
		 * connection, so the token may be asked for again) */
		specs.strings = branches;
		tp.attempts = 0;
		rc = git_remote_fetch(remote, &specs, &fo, NULL);
	}
	int error = rc < 0 ? git_fail(rc, "fetch") : 0;
	git_remote_free(remote);
	return error;
}

static int fetch_impl(char sha_out[41], git_repository *repo, const measure_checkout_source *src, const char *rev)
{
	git_oid oid;
	int rc = resolve(&oid, repo, rev);
	if (rc < 0 && !src->local_path) {
		int error = fetch_locked(repo, src, rev);
		if (error < 0)
			return error;
		rc = resolve(&oid, repo, rev);
	}
	if (rc < 0)
		return base_error_set(BASE_ENOTFOUND, "revision %.80s not found", rev);
	git_oid_tostr(sha_out, 41, &oid);
	return 0;
}

int measure_checkout_fetch(char sha_out[41], const measure_checkout_source *src, const char *rev)
{
	int error, lock = -1;
	git_repository *repo = NULL;
	git_libgit2_init();
	if ((error = lock_repo(&lock, src)) < 0)
		goto done;
	if ((error = open_repo(&repo, src, 1)) < 0)
		goto done;
	error = fetch_impl(sha_out, repo, src, rev);
done:
	git_repository_free(repo);
	unlock_repo(lock);
	git_libgit2_shutdown();
	return error;
}

int measure_checkout_worktree(char **dir_out, char sha_out[41], const measure_checkout_source *src, const char *rev)
{
	int error, lock = -1;
	git_repository *repo = NULL;
	git_commit *commit = NULL;
	char dir[PATH_MAX];
	int made = 0;
	*dir_out = NULL;
	git_libgit2_init();
	if (!src->data_dir) {
		error = base_error_set(BASE_EINVALID, "checkout: DATA_DIR is not set");
		goto done;
	}
	if ((error = lock_repo(&lock, src)) < 0)
		goto done;
	if ((error = open_repo(&repo, src, 1)) < 0)
		goto done;
	if ((error = fetch_impl(sha_out, repo, src, rev)) < 0)
		goto done;
	char work[PATH_MAX];
	snprintf(work, sizeof(work), "%s/work", src->data_dir);
	if ((error = base_mkdirs(work, 0700)) < 0)
		goto done;
	const char *name = src->repository ? strchr(src->repository, '/') + 1 : "local";
	if ((size_t)snprintf(dir, sizeof(dir), "%s/%.60s-XXXXXX", work, name) >= sizeof(dir)) {
		error = base_error_set(BASE_EINVALID, "path too long");
		goto done;
	}
	if (!mkdtemp(dir)) {
		error = base_error_set(BASE_EGENERIC, "mkdtemp %s: %s", dir, strerror(errno));
		goto done;
	}
	made = 1;
	git_oid oid;
	git_oid_fromstr(&oid, sha_out);
	int rc = git_commit_lookup(&commit, repo, &oid);
	if (rc < 0) {
		error = git_fail(rc, "commit lookup");
		goto done;
	}
	git_checkout_options co;
	git_checkout_options_init(&co, GIT_CHECKOUT_OPTIONS_VERSION);
	co.checkout_strategy = GIT_CHECKOUT_FORCE | GIT_CHECKOUT_DONT_WRITE_INDEX | GIT_CHECKOUT_DONT_UPDATE_INDEX;
	co.target_directory = dir;
	co.disable_filters = 0;
	rc = git_checkout_tree(repo, (const git_object *)commit, &co);
	if (rc < 0) {
		error = git_fail(rc, "writing the work tree");
		goto done;
	}
	*dir_out = strdup(dir);
	if (!*dir_out)
		error = base_error_set(BASE_ENOMEM, "out of memory");
done:
	if (error < 0 && made)
		measure_worktree_remove(src->data_dir, dir);
	git_commit_free(commit);
	git_repository_free(repo);
	unlock_repo(lock);
	git_libgit2_shutdown();
	return error;
}

int measure_checkout_read_file(char **out, size_t *len_out, const measure_checkout_source *src, const char *sha,
			     const char *path, size_t max)
{
	int error = 0, rc;
	git_repository *repo = NULL;
	git_commit *commit = NULL;
	git_tree *tree = NULL;
	git_tree_entry *entry = NULL;
	git_blob *blob = NULL;
	*out = NULL;
	git_libgit2_init();
	if ((error = open_repo(&repo, src, 0)) < 0)
		goto done;
	git_oid oid;
	if ((rc = resolve(&oid, repo, sha)) < 0 || (rc = git_commit_lookup(&commit, repo, &oid)) < 0 ||
	    (rc = git_commit_tree(&tree, commit)) < 0) {
		error = git_fail(rc, "reading the commit");
		goto done;
	}
	rc = git_tree_entry_bypath(&entry, tree, path);
	if (rc == GIT_ENOTFOUND) {
		error = base_error_set(BASE_ENOTFOUND, "%s not found in %.12s", path, sha);
		goto done;
	}
	if (rc < 0 || git_tree_entry_type(entry) != GIT_OBJECT_BLOB ||
	    (rc = git_blob_lookup(&blob, repo, git_tree_entry_id(entry))) < 0) {
		error = rc < 0 ? git_fail(rc, path) : base_error_set(BASE_EINVALID, "%s is not a file", path);
		goto done;
	}
	size_t n = (size_t)git_blob_rawsize(blob);
	if (n > max) {
		error = base_error_set(BASE_ETOOBIG, "%s is larger than %zu bytes", path, max);
		goto done;
	}
	char *s = malloc(n + 1);
	if (!s) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	memcpy(s, git_blob_rawcontent(blob), n);
	s[n] = '\0';
	*out = s;
	if (len_out)
		*len_out = n;
done:
	git_blob_free(blob);
	git_tree_entry_free(entry);
	git_tree_free(tree);
	git_commit_free(commit);
	git_repository_free(repo);
	git_libgit2_shutdown();
	return error;
}

int measure_checkout_merge_base(char sha_out[41], const measure_checkout_source *src, const char *a, const char *b)
{
	int error = 0, rc;
	git_repository *repo = NULL;
	git_libgit2_init();
	if ((error = open_repo(&repo, src, 0)) < 0)
		goto done;
	git_oid oa, ob, base;
	if ((rc = resolve(&oa, repo, a)) < 0 || (rc = resolve(&ob, repo, b)) < 0 ||
	    (rc = git_merge_base(&base, repo, &oa, &ob)) < 0) {
		error = git_fail(rc, "merge base");
		goto done;
	}
	git_oid_tostr(sha_out, 41, &base);
done:
	git_repository_free(repo);
	git_libgit2_shutdown();
	return error;
}

static int remove_tree_at(int dirfd, const char *name, int depth)
{
	if (depth > 512)
		return ELOOP;
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return unlinkat(dirfd, name, 0) < 0 && errno != ENOENT ? errno : 0;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return errno;
	}
	struct dirent *e;
	int err = 0;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		/* the sandbox may have left a directory without write permission */
		fchmod(fd, 0700);
		int r = remove_tree_at(fd, e->d_name, depth + 1);
		if (r && !err)
			err = r;
	}
	closedir(d);
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && !err)
		err = errno;
	return err;
}

int measure_worktree_remove(const char *data_dir, const char *dir)
{
	if (!dir)
		return 0;
	char work[PATH_MAX], real_work[PATH_MAX], real_dir[PATH_MAX];
	snprintf(work, sizeof(work), "%s/work", data_dir ? data_dir : "");
	if (!realpath(work, real_work) || !realpath(dir, real_dir))
		return base_error_set(BASE_ENOTFOUND, "work tree %s not found", dir);
	size_t l = strlen(real_work);
	if (strncmp(real_dir, real_work, l) != 0 || real_dir[l] != '/' || strchr(real_dir + l + 1, '/'))
		return base_error_set(BASE_EINVALID, "refusing to remove %s: not a work tree under %s", dir, work);
	int err = remove_tree_at(AT_FDCWD, real_dir, 0);
	if (err)
		return base_error_set(BASE_EGENERIC, "removing %s: %s", dir, strerror(err));
	return 0;
}
