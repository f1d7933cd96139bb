/* The branch behind a perfbot pull request, built and pushed with libgit2.
 *
 * The bare cache DATA_DIR/repos/<owner>/<name>.git (measure/'s checkout
 * layout) is opened or created, brought up to date over HTTP(S) and written only
 * while an flock on DATA_DIR/repos/<owner>/<name>.lock is held, so several
 * workers can share it.  Remotes are anonymous and credentials come from a
 * callback: no URL, token or remote is ever written to the cache's config.
 * The commit is built in memory (git_apply_to_tree on the measured base
 * tree); there is no work tree.  Invariants: perfbot never force-pushes; a
 * remote branch whose head is not the commit perfbot recorded pushing is
 * left alone; the parent of a pushed commit is always in the base
 * repository's history of the base branch (never a fork's commit, though
 * the shared cache holds those).
 * Each call owns its git_repository; any thread. */
#include "pr/pr.h"
#include "pr/pr_int.h"

#include <errno.h>
#include <fcntl.h>
#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/error.h"
#include "base/fs.h"
#include "base/log.h"
#include "base/utf8.h"

#define PATH_CAP 4096

/* Payload of the remote callbacks of one fetch or push. */
typedef struct remote_ctx {
	const pr_git_options *git;
	int attempts;     /* credential requests so far */
	char status[512]; /* the server's refusal of our ref, "" when accepted */
	char remote[1024]; /* the server's messages ("remote: ..."), the latest kept */
	size_t remote_len;
} remote_ctx;

static const char *git_msg(void)
{
	const git_error *e = git_error_last();
	return e && e->message ? e->message : "unknown git error";
}

/* The length of s cut to at most cap bytes without splitting a UTF-8
 * character, for "%.*s": messages end up in JSON (the run, a comment). */
static int cut(const char *s, size_t cap)
{
	return (int)base_utf8_cut(s, strlen(s), cap);
}

/* Maps a libgit2 failure of a network operation to perfbot's codes. */
static int net_error(int gerr, const char *what, const char *repository)
{
	const git_error *e = git_error_last();
	const char *m = e && e->message ? e->message : "unknown git error";
	if (gerr == GIT_EAUTH || strstr(m, "401") || strstr(m, "authentication"))
		return base_error_set(BASE_EAUTH, "%s %s: authentication failed: %s", what, repository, m);
	if (strstr(m, "403"))
		return base_error_set(BASE_EFORBIDDEN, "%s %s: permission denied: %s", what, repository, m);
	if (strstr(m, "404"))
		return base_error_set(BASE_ENOTFOUND, "%s %s: repository not found: %s", what, repository, m);
	return base_error_set(BASE_ERETRY, "%s %s: %s", what, repository, m);
}

static int credentials_cb(git_credential **out, const char *url, const char *user_from_url, unsigned int allowed,
			  void *payload)
{
	(void)url;
	(void)user_from_url;
	remote_ctx *c = payload;
	if (!c->git->token || !(allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT))
		return GIT_PASSTHROUGH;
	/* A second request means the token was refused: stop, do not loop. */
	if (c->attempts++ > 0) {
		git_error_set_str(GIT_ERROR_NET, "the installation token was refused (401)");
		return GIT_EAUTH;
	}
	char *token = NULL;
	if (c->git->token(&token, c->git->token_payload) < 0 || !token) {
		free(token);
		git_error_set_str(GIT_ERROR_NET, "no installation token available");
		return GIT_EAUTH;
	}
	int rc = git_credential_userpass_plaintext_new(out, "x-access-token", token);
	explicit_bzero(token, strlen(token));
	free(token);
	return rc;
}

/* Keeps what the server says on the side band (hooks, branch protection:
 * "error: GH006: Protected branch update failed ..."), capped. */
static int sideband_cb(const char *str, int len, void *payload)
{
	remote_ctx *p = payload;
	if (len <= 0)
		return 0;
	size_t n = (size_t)len, cap = sizeof(p->remote) - 1;
	if (n > cap) {
		str += n - cap;
		n = cap;
	}
	if (p->remote_len + n > cap) { /* drop the oldest text */
		size_t drop = p->remote_len + n - cap;
		memmove(p->remote, p->remote + drop, p->remote_len - drop);
		p->remote_len -= drop;
	}
	memcpy(p->remote + p->remote_len, str, n);
	p->remote_len += n;
	p->remote[p->remote_len] = '\0';
	return 0;
}

/* The first line of the server's messages that says "error", without
 * control characters, into out ("" when there is none). */
static void remote_error_line(char *out, size_t cap, const remote_ctx *p)
{
	const char *s = p->remote, *hit = NULL;
	while (*s && !hit) {
		const char *end = s + strcspn(s, "\r\n");
		const char *e = strstr(s, "error");
		if (e && e < end)
			hit = s;
		else
			s = *end ? end + 1 : end;
	}
	out[0] = '\0';
	if (!hit)
		return;
	while (*hit == ' ')
		hit++;
	size_t i = 0;
	while (hit[i] && hit[i] != '\r' && hit[i] != '\n' && i + 1 < cap) {
		out[i] = (unsigned char)hit[i] < 0x20 ? ' ' : hit[i];
		i++;
	}
	out[i] = '\0';
}

static int push_update_cb(const char *refname, const char *status, void *payload)
{
	remote_ctx *p = payload;
	(void)refname;
	if (status)
		snprintf(p->status, sizeof(p->status), "%s", status);
	return 0;
}

static double mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* "owner/name" with GitHub's characters only, so it is safe as two path
 * components. */
static int check_repository(const char *repository)
{
	const char *slash = repository ? strchr(repository, '/') : NULL;
	if (!slash || slash == repository || !slash[1] || strchr(slash + 1, '/'))
		return base_error_set(BASE_EINVALID, "repository must be owner/name: %.*s",
				     cut(repository ? repository : "", 200), repository ? repository : "");
	for (const char *p = repository; *p; p++) {
		char ch = *p;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
		      ch == '_' || ch == '.' || ch == '/'))
			return base_error_set(BASE_EINVALID, "repository name has a forbidden character: %.*s",
					     cut(repository, 200), repository);
	}
	if (repository[0] == '.' || slash[1] == '.')
		return base_error_set(BASE_EINVALID, "repository name starts with a dot: %.*s", cut(repository, 200),
				     repository);
	return 0;
}


/* Takes the cache lock; *fd_out is closed (releasing it) by the caller. */
static int lock_cache(int *fd_out, const char *data_dir, const char *repository)
{
	char dir[PATH_CAP], path[PATH_CAP];
	const char *slash = strchr(repository, '/');
	int n = snprintf(dir, sizeof(dir), "%s/repos/%.*s", data_dir, (int)(slash - repository), repository);
	if (n < 0 || (size_t)n >= sizeof(dir))
		return base_error_set(BASE_EINVALID, "DATA_DIR path too long");
	int error = base_mkdirs(dir, 0700);
	if (error < 0)
		return error;
	n = snprintf(path, sizeof(path), "%s/repos/%s.lock", data_dir, repository);
	if (n < 0 || (size_t)n >= sizeof(path))
		return base_error_set(BASE_EINVALID, "DATA_DIR path too long");
	int fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		return base_error_set(BASE_EGENERIC, "open %s: %s", path, strerror(errno));
	while (flock(fd, LOCK_EX) < 0) {
		if (errno == EINTR)
			continue;
		error = base_error_set(BASE_EGENERIC, "flock %s: %s", path, strerror(errno));
		close(fd);
		return error;
	}
	*fd_out = fd;
	return 0;
}

static int open_cache(git_repository **out, const char *data_dir, const char *repository)
{
	char path[PATH_CAP];
	int n = snprintf(path, sizeof(path), "%s/repos/%s.git", data_dir, repository);
	if (n < 0 || (size_t)n >= sizeof(path))
		return base_error_set(BASE_EINVALID, "DATA_DIR path too long");
	if (git_repository_open_bare(out, path) == 0)
		return 0;
	if (git_repository_init(out, path, 1) < 0)
		return base_error_set(BASE_EGENERIC, "cannot create the cache %s: %s", path, git_msg());
	base_log(BASE_LOG_INFO, "pr: created repository cache", "repository", repository, NULL);
	return 0;
}

static int ref_name(char *out, size_t cap, const char *prefix, const char *branch)
{
	int n = snprintf(out, cap, "%s%s", prefix, branch ? branch : "");
	if (!branch || n < 0 || (size_t)n >= cap)
		return base_error_set(BASE_EINVALID, "branch name too long");
	int valid = 0;
	if (git_reference_name_is_valid(&valid, out) < 0 || !valid)
		return base_error_set(BASE_EINVALID, "not a valid branch name: %.*s", cut(branch, 200), branch);
	return 0;
}

static const git_remote_head *find_head(const git_remote_head **heads, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(heads[i]->name, name) == 0)
			return heads[i];
	return NULL;
}

/* The paths a diff reads or writes (old and new side of every delta),
 * without repeats.  Borrowed from the diff. */
typedef struct touched {
	const char **paths;
	size_t n;
} touched;

static int collect_paths(touched *t, git_diff *diff)
{
	size_t n = git_diff_num_deltas(diff);
	t->n = 0;
	t->paths = calloc(2 * n + 1, sizeof(*t->paths));
	if (!t->paths)
		return base_error_set(BASE_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const git_diff_delta *d = git_diff_get_delta(diff, i);
		const char *side[2] = {d->old_file.path, d->new_file.path};
		for (int k = 0; k < 2; k++) {
			int seen = !side[k];
			for (size_t j = 0; j < t->n && !seen; j++)
				seen = strcmp(t->paths[j], side[k]) == 0;
			if (!seen)
				t->paths[t->n++] = side[k];
		}
	}
	return 0;
}

/* A path the diff writes must not turn a directory of the base into a file,
 * nor go through a file of the base as if it were a directory: only the
 * touched paths are applied, so the rest of the tree cannot catch it. */
static int check_placement(git_tree *tree, const char *path)
{
	char prefix[PATH_CAP];
	git_tree_entry *e = NULL;
	size_t len = strlen(path);
	if (len >= sizeof(prefix))
		return base_error_set(BASE_EINVALID, "the diff names a path that is too long");
	for (size_t i = 0; i <= len; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		memcpy(prefix, path, i);
		prefix[i] = '\0';
		if (git_tree_entry_bypath(&e, tree, prefix) != 0)
			return 0; /* from here on the path is new */
		git_object_t type = git_tree_entry_type(e);
		git_tree_entry_free(e);
		e = NULL;
		if (path[i] == '/' && type != GIT_OBJECT_TREE)
			return base_error_set(BASE_EINVALID, "the diff puts %.*s under %.*s, which is a file",
					     cut(path, 200), path, cut(prefix, 200), prefix);
		if (path[i] == '\0' && type == GIT_OBJECT_TREE)
			return base_error_set(BASE_EINVALID, "the diff writes %.*s, which is a directory", cut(path, 200),
					     path);
	}
	return 0;
}

/* What the deltas before the current one did to a path: written (added,
 * renamed or copied onto) or gone (deleted, renamed away).  Borrowed from
 * the diff. */
typedef struct path_state {
	const char *path;
	int exists;
} path_state;

static path_state *state_of(path_state *st, size_t ns, const char *path)
{
	for (size_t i = 0; i < ns; i++)
		if (strcmp(st[i].path, path) == 0)
			return &st[i];
	return NULL;
}

static void set_state(path_state *st, size_t *ns, const char *path, int exists)
{
	path_state *s = state_of(st, *ns, path);
	if (!s) {
		s = &st[(*ns)++];
		s->path = path;
	}
	s->exists = exists;
}

/* A symlink or a submodule of the base must not be touched: a text hunk on
 * it would make it a regular file. */
static int check_special(git_tree *tree, const char *path)
{
	git_tree_entry *e = NULL;
	if (!path || git_tree_entry_bypath(&e, tree, path) != 0)
		return 0;
	git_filemode_t mode = git_tree_entry_filemode(e);
	git_tree_entry_free(e);
	if (mode == GIT_FILEMODE_LINK)
		return base_error_set(BASE_EINVALID, "the diff changes %.*s, which is a symbolic link in the base commit",
				     cut(path, 200), path);
	if (mode == GIT_FILEMODE_COMMIT)
		return base_error_set(BASE_EINVALID, "the diff changes %.*s, which is a submodule in the base commit",
				     cut(path, 200), path);
	return 0;
}

/* Walks the deltas in order against the base tree.  A path may be created
 * (a new file, or the target of a rename or copy) only where no file is at
 * that point: libgit2 would merge a "new file" into an existing one, where
 * git apply refuses it.  A file an earlier delta deleted or renamed away
 * leaves its path free.  Directories are left to check_placement. */
static int check_deltas(git_tree *tree, git_diff *diff)
{
	size_t n = git_diff_num_deltas(diff), ns = 0;
	path_state *st = calloc(2 * n + 1, sizeof(*st));
	int error = 0;
	if (!st)
		return base_error_set(BASE_ENOMEM, "out of memory");
	for (size_t i = 0; i < n && error == 0; i++) {
		const git_diff_delta *d = git_diff_get_delta(diff, i);
		const char *from = d->old_file.path, *to = d->new_file.path;
		if ((error = check_special(tree, from)) < 0 || (error = check_special(tree, to)) < 0)
			break;
		int creates = d->status == GIT_DELTA_ADDED || d->status == GIT_DELTA_RENAMED ||
			      d->status == GIT_DELTA_COPIED;
		if (creates && to) {
			const path_state *s = state_of(st, ns, to);
			int exists = 0;
			if (s) {
				exists = s->exists;
			} else {
				git_tree_entry *e = NULL;
				if (git_tree_entry_bypath(&e, tree, to) == 0) {
					exists = git_tree_entry_type(e) != GIT_OBJECT_TREE;
					git_tree_entry_free(e);
				}
			}
			if (exists && d->status == GIT_DELTA_ADDED) {
				error = base_error_set(BASE_EINVALID, "the diff adds a new file over the existing file %.*s",
						      cut(to, 200), to);
				break;
			}
			if (exists) {
				error = base_error_set(BASE_EINVALID, "the diff %s %.*s onto the existing file %.*s",
						      d->status == GIT_DELTA_RENAMED ? "renames" : "copies",
						      cut(from ? from : "", 200), from ? from : "", cut(to, 200), to);
				break;
			}
		}
		if ((d->status == GIT_DELTA_DELETED || d->status == GIT_DELTA_RENAMED) && from)
			set_state(st, &ns, from, 0);
		if (creates && to)
			set_state(st, &ns, to, 1);
	}
	free(st);
	return error;
}

/* Applies the parsed diff to base's tree; *tree_out is the result.
 *
 * Only the touched paths take part: they are copied from the base tree
 * into a small tree, the diff is applied to that (git_apply_to_tree reads
 * and rewrites its whole preimage, which on a large repository is most of
 * the work), and the results are written over the base tree with
 * git_tree_create_updated, which rebuilds only the trees on those paths. */
static int build_tree(git_oid *tree_out, git_repository *repo, git_commit *base, git_diff *diff)
{
	git_tree *tree = NULL, *sparse = NULL;
	git_index *index = NULL;
	git_treebuilder *bld = NULL;
	git_tree_update *updates = NULL;
	touched t = {NULL, 0};
	git_oid oid;
	int error;
	if (git_commit_tree(&tree, base) < 0) {
		error = base_error_set(BASE_EGENERIC, "cannot read the base tree: %s", git_msg());
		goto done;
	}
	if ((error = check_deltas(tree, diff)) < 0)
		goto done;
	if ((error = collect_paths(&t, diff)) < 0)
		goto done;
	if (!(updates = calloc(t.n + 1, sizeof(*updates)))) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	/* the preimage: the touched paths that exist in the base */
	size_t nu = 0;
	for (size_t i = 0; i < t.n; i++) {
		if ((error = check_placement(tree, t.paths[i])) < 0)
			goto done;
		git_tree_entry *e = NULL;
		if (git_tree_entry_bypath(&e, tree, t.paths[i]) != 0)
			continue;
		updates[nu].action = GIT_TREE_UPDATE_UPSERT;
		git_oid_cpy(&updates[nu].id, git_tree_entry_id(e));
		updates[nu].filemode = git_tree_entry_filemode(e);
		updates[nu].path = t.paths[i];
		nu++;
		git_tree_entry_free(e);
	}
	if (git_treebuilder_new(&bld, repo, NULL) < 0 || git_treebuilder_write(&oid, bld) < 0 ||
	    git_tree_lookup(&sparse, repo, &oid) < 0) {
		error = base_error_set(BASE_EGENERIC, "cannot write an empty tree: %s", git_msg());
		goto done;
	}
	if (nu > 0) {
		git_tree *empty = sparse;
		sparse = NULL;
		int rc = git_tree_create_updated(&oid, repo, empty, nu, updates);
		git_tree_free(empty);
		if (rc < 0 || git_tree_lookup(&sparse, repo, &oid) < 0) {
			error = base_error_set(BASE_EGENERIC, "cannot write the preimage tree: %s", git_msg());
			goto done;
		}
	}
	if (git_apply_to_tree(&index, repo, sparse, diff, NULL) < 0) {
		char id[GIT_OID_HEXSZ + 1];
		git_oid_tostr(id, sizeof(id), git_commit_id(base));
		error = base_error_set(BASE_EINVALID, "the diff does not apply to %.12s: %s", id, git_msg());
		goto done;
	}
	/* the postimage of each touched path, written over the base tree */
	nu = 0;
	for (size_t i = 0; i < t.n; i++) {
		const git_index_entry *ie = git_index_get_bypath(index, t.paths[i], 0);
		git_tree_entry *e = NULL;
		int in_base = git_tree_entry_bypath(&e, tree, t.paths[i]) == 0;
		git_tree_entry_free(e);
		if (ie) {
			updates[nu].action = GIT_TREE_UPDATE_UPSERT;
			git_oid_cpy(&updates[nu].id, &ie->id);
			updates[nu].filemode = (git_filemode_t)ie->mode;
		} else if (in_base) {
			updates[nu].action = GIT_TREE_UPDATE_REMOVE;
		} else {
			continue;
		}
		updates[nu].path = t.paths[i];
		nu++;
	}
	if (git_tree_create_updated(tree_out, repo, tree, nu, updates) < 0) {
		error = base_error_set(BASE_EINVALID, "cannot build the new tree: %s", git_msg());
		goto done;
	}
	error = 0;
done:
	free(updates);
	free(t.paths);
	git_treebuilder_free(bld);
	git_index_free(index);
	git_tree_free(sparse);
	git_tree_free(tree);
	return error;
}

/* An in-memory remote: nothing is read from or written to the cache's
 * config, and url.*.insteadOf rewrites do not apply to perfbot's URL. */
static int anonymous_remote(git_remote **out, git_repository *repo, const char *url)
{
	git_remote_create_options o;
	git_remote_create_options_init(&o, GIT_REMOTE_CREATE_OPTIONS_VERSION);
	o.repository = repo;
	o.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF;
	if (git_remote_create_with_opts(out, url, &o) < 0)
		return base_error_set(BASE_EINVALID, "bad repository URL: %s", git_msg());
	return 0;
}

/* Pushes local_ref to remote_ref over `remote`, already connected for push
 * with ctx as its callbacks' payload (the connection is reused). */
static int push_branch(git_remote *remote, remote_ctx *ctx, const char *local_ref, const char *remote_ref)
{
	const pr_git_options *git = ctx->git;
	char spec[700];
	snprintf(spec, sizeof(spec), "%s:%s", local_ref, remote_ref); /* both refs checked, < 300 */
	char *specs[] = {spec};
	git_strarray refspecs = {specs, 1};
	git_push_options opts;
	git_push_options_init(&opts, GIT_PUSH_OPTIONS_VERSION);
	opts.callbacks.credentials = credentials_cb;
	opts.callbacks.push_update_reference = push_update_cb;
	opts.callbacks.sideband_progress = sideband_cb;
	opts.callbacks.payload = ctx;
	ctx->status[0] = '\0';
	ctx->remote[0] = '\0';
	ctx->remote_len = 0;

	int gerr = git_remote_push(remote, &refspecs, &opts);
	if (gerr < 0) {
		const char *m = git_msg();
		if (strstr(m, "non-fastforward") || strstr(m, "non-fast-forward"))
			return base_error_set(BASE_EEXISTS, "push of %s refused: the remote branch has other commits (%s)",
					     remote_ref, m);
		return net_error(gerr, "push to", git->repository);
	}
	if (ctx->status[0]) {
		const char *s = ctx->status;
		if (strstr(s, "fast-forward") || strstr(s, "fetch first") || strstr(s, "already exists"))
			return base_error_set(BASE_EEXISTS, "push of %s refused: the remote branch has other commits (%s)",
					     remote_ref, s);
		char why[300];
		remote_error_line(why, sizeof(why), ctx);
		if (strstr(s, "protected branch") || strstr(why, "GH006"))
			return base_error_set(BASE_EFORBIDDEN,
					     "push of %s refused by %s: a branch protection rule covers it (%s%s%s)",
					     remote_ref, git->repository, s, why[0] ? "; " : "", why);
		return base_error_set(BASE_EFORBIDDEN, "push of %s refused by %s: %s%s%s", remote_ref, git->repository, s,
				     why[0] ? "; " : "", why);
	}
	return 0;
}

/* Connects, lists the remote refs and downloads what is missing: the base
 * branch unless base_sha and the branch's tip are already here, and the
 * perfbot branch when the remote has one.  *remote_head_out is the remote branch's oid (zero when
 * absent). */
static int fetch(git_repository *repo, const pr_git_options *git, const char *base_ref, const char *branch_ref,
		 const git_oid *base_oid, const git_oid *tip_oid, git_oid *remote_head_out, int *remote_has_out)
{
	git_remote *remote = NULL;
	remote_ctx ctx = {.git = git};
	git_remote_callbacks cbs;
	git_remote_init_callbacks(&cbs, GIT_REMOTE_CALLBACKS_VERSION);
	cbs.credentials = credentials_cb;
	cbs.payload = &ctx;
	char spec_base[700], spec_branch[700];
	char *specs[2];
	size_t nspecs = 0;
	int error, gerr;
	*remote_has_out = 0;

	if ((error = anonymous_remote(&remote, repo, git->url)) < 0)
		goto done;
	if ((gerr = git_remote_connect(remote, GIT_DIRECTION_FETCH, &cbs, NULL, NULL)) < 0) {
		error = net_error(gerr, "fetch from", git->repository);
		goto done;
	}
	const git_remote_head **heads = NULL;
	size_t nheads = 0;
	if (git_remote_ls(&heads, &nheads, remote) < 0) {
		error = net_error(-1, "fetch from", git->repository);
		goto done;
	}
	const git_remote_head *bh = find_head(heads, nheads, branch_ref);
	if (bh) {
		*remote_has_out = 1;
		git_oid_cpy(remote_head_out, &bh->oid);
	}
	git_odb *odb = NULL;
	if (git_repository_odb(&odb, repo) < 0) {
		error = base_error_set(BASE_EGENERIC, "cannot open the object database: %s", git_msg());
		goto done;
	}
	if (!git_odb_exists(odb, base_oid) || !git_odb_exists(odb, tip_oid)) {
		/* refs/heads/<b> → refs/remotes/origin/<b> */
		snprintf(spec_base, sizeof(spec_base), "+%s:refs/remotes/origin/%s", base_ref, base_ref + 11);
		specs[nspecs++] = spec_base;
	}
	if (bh && !git_odb_exists(odb, &bh->oid)) {
		snprintf(spec_branch, sizeof(spec_branch), "+%s:refs/remotes/origin/%s", branch_ref, branch_ref + 11);
		specs[nspecs++] = spec_branch;
	}
	git_odb_free(odb);
	if (nspecs > 0) {
		git_fetch_options fo;
		git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
		fo.callbacks = cbs;
		fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
		fo.update_fetchhead = 0;
		git_strarray refspecs = {specs, nspecs};
		if ((gerr = git_remote_download(remote, &refspecs, &fo)) < 0) {
			error = net_error(gerr, "fetch from", git->repository);
			goto done;
		}
		if ((gerr = git_remote_update_tips(remote, &cbs, 0, GIT_REMOTE_DOWNLOAD_TAGS_NONE, NULL)) < 0) {
			error = base_error_set(BASE_EGENERIC, "cannot update the cache's refs: %s", git_msg());
			goto done;
		}
	}
	error = 0;
done:
	if (remote)
		git_remote_disconnect(remote);
	git_remote_free(remote);
	return error;
}

int pr_branch_publish(pr_branch_result *out, const pr_git_options *git, const pr_commit_spec *spec)
{
	git_repository *repo = NULL;
	git_diff *diff = NULL;
	git_commit *base = NULL;
	git_signature *sig = NULL;
	git_reference *ref = NULL;
	git_remote *push_remote = NULL;
	remote_ctx push_ctx = {.git = git};
	int lock_fd = -1, error;
	char base_ref[300], branch_ref[300], local_ref[300];
	git_oid base_oid, tree_oid, commit_oid, remote_head;
	int remote_has = 0;

	memset(out, 0, sizeof(*out));
	git_libgit2_init();
	if (!git || !spec || !git->data_dir || !git->url || !spec->base_sha || !spec->author_name ||
	    !spec->author_email || !spec->message) {
		error = base_error_set(BASE_EINVALID, "pr_branch_publish: missing argument");
		goto done;
	}
	if ((error = check_repository(git->repository)) < 0)
		goto done;
	if ((error = ref_name(base_ref, sizeof(base_ref), "refs/heads/", spec->base_branch)) < 0 ||
	    (error = ref_name(branch_ref, sizeof(branch_ref), "refs/heads/", spec->branch)) < 0 ||
	    (error = ref_name(local_ref, sizeof(local_ref), "refs/", spec->branch)) < 0)
		goto done;
	if (strlen(spec->base_sha) != GIT_OID_HEXSZ || git_oid_fromstr(&base_oid, spec->base_sha) < 0) {
		error = base_error_set(BASE_EINVALID, "base commit is not a 40-hex sha: %.*s",
				      cut(spec->base_sha, 64), spec->base_sha);
		goto done;
	}
	/* Refuse a bad diff before touching the network or the cache. */
	if ((error = pr_diff_parse(&diff, spec->diff, spec->diff_len, spec->max_diff_bytes)) < 0)
		goto done;

	double t_start = mono_ms(), t_connected = 0, t_built = 0;
	if ((error = lock_cache(&lock_fd, git->data_dir, git->repository)) < 0)
		goto done;
	if ((error = open_cache(&repo, git->data_dir, git->repository)) < 0)
		goto done;
	/* One connection for push also lists the remote's refs: when the base
	 * commit and any existing perfbot branch head are already cached (a
	 * warm cache), no fetch is needed at all. */
	if ((error = anonymous_remote(&push_remote, repo, git->url)) < 0)
		goto done;
	git_remote_callbacks cbs;
	git_remote_init_callbacks(&cbs, GIT_REMOTE_CALLBACKS_VERSION);
	cbs.credentials = credentials_cb;
	cbs.push_update_reference = push_update_cb;
	cbs.sideband_progress = sideband_cb;
	cbs.payload = &push_ctx;
	int gerr = git_remote_connect(push_remote, GIT_DIRECTION_PUSH, &cbs, NULL, NULL);
	if (gerr < 0) {
		error = net_error(gerr, "connect to", git->repository);
		if (error == BASE_EFORBIDDEN)
			error = base_error_set(BASE_EFORBIDDEN,
					      "push to %s refused: the app may not write to it (it needs the contents: write "
					      "permission): %s",
					      git->repository, git_msg());
		goto done;
	}
	const git_remote_head **heads = NULL;
	size_t nheads = 0;
	if (git_remote_ls(&heads, &nheads, push_remote) < 0) {
		error = net_error(-1, "list refs of", git->repository);
		goto done;
	}
	const git_remote_head *bh = find_head(heads, nheads, branch_ref);
	const git_remote_head *tiph = find_head(heads, nheads, base_ref);
	if (!tiph) {
		error = base_error_set(BASE_ENOTFOUND, "branch %s does not exist in %s", spec->base_branch, git->repository);
		goto done;
	}
	git_oid tip;
	git_oid_cpy(&tip, &tiph->oid);
	if (spec->onto_branch_tip)
		git_oid_cpy(&base_oid, &tip); /* a fork's commit is never a parent */
	git_odb *odb = NULL;
	if (git_repository_odb(&odb, repo) < 0) {
		error = base_error_set(BASE_EGENERIC, "cannot open the object database: %s", git_msg());
		goto done;
	}
	int cached = git_odb_exists(odb, &base_oid) && git_odb_exists(odb, &tip) && (!bh || git_odb_exists(odb, &bh->oid));
	git_odb_free(odb);
	if (cached) {
		remote_has = bh != NULL;
		if (bh)
			git_oid_cpy(&remote_head, &bh->oid);
	} else if ((error = fetch(repo, git, base_ref, branch_ref, &base_oid, &tip, &remote_head, &remote_has)) < 0) {
		goto done;
	}
	if (git_commit_lookup(&base, repo, &base_oid) < 0) {
		error = base_error_set(BASE_ENOTFOUND, "the measured base commit %.12s is not on %s in %s any more",
				      spec->base_sha, spec->base_branch, git->repository);
		goto done;
	}
	/* The parent must be in the base repository's own history of the
	 * branch: the cache also holds what runs fetched (a fork's pull
	 * request head), and pushing a commit on top of that would push the
	 * fork's commits, whose workflows then run with the repository's
	 * secrets. */
	if (!git_oid_equal(&base_oid, &tip) && git_graph_descendant_of(repo, &tip, &base_oid) != 1) {
		char id[GIT_OID_HEXSZ + 1];
		git_oid_tostr(id, sizeof(id), &base_oid);
		error = base_error_set(BASE_EINVALID,
				      "the proposal's base commit %.12s is not on branch %s of %s: perfbot pushes only "
				      "commits built on that branch's history, never a fork's commits",
				      id, spec->base_branch, git->repository);
		goto done;
	}
	git_oid_tostr(out->parent_sha, sizeof(out->parent_sha), &base_oid);
	t_connected = mono_ms();
	if ((error = build_tree(&tree_oid, repo, base, diff)) < 0)
		goto done;
	t_built = mono_ms();

	if (remote_has) {
		/* perfbot's own branch only when its head is the commit perfbot
		 * recorded before pushing: run ids are sequential, and anyone
		 * with push access can create perfbot/opt-<next> first */
		git_oid pushed;
		int have_pushed = spec->pushed_sha && strlen(spec->pushed_sha) == GIT_OID_HEXSZ &&
				  git_oid_fromstr(&pushed, spec->pushed_sha) == 0;
		if (!have_pushed || !git_oid_equal(&pushed, &remote_head)) {
			char id[GIT_OID_HEXSZ + 1];
			git_oid_tostr(id, sizeof(id), &remote_head);
			out->extended = have_pushed && git_graph_descendant_of(repo, &remote_head, &pushed) == 1;
			if (out->extended)
				error = base_error_set(BASE_EEXISTS,
						      "branch %s in %s has commits on top of perfbot's %.12s (head %.12s); "
						      "not overwriting it",
						      spec->branch, git->repository, spec->pushed_sha, id);
			else
				error = base_error_set(BASE_EEXISTS,
						      "branch %s already exists in %s with commit %.12s, which perfbot did "
						      "not push; not overwriting it nor adopting it (delete the branch and "
						      "approve again)",
						      spec->branch, git->repository, id);
			goto done;
		}
		git_oid_cpy(&commit_oid, &remote_head);
		out->pushed = 0;
	} else {
		if (git_signature_now(&sig, spec->author_name, spec->author_email) < 0) {
			error = base_error_set(BASE_EINVALID, "bad bot identity: %s", git_msg());
			goto done;
		}
		git_tree *tree = NULL;
		if (git_tree_lookup(&tree, repo, &tree_oid) < 0) {
			error = base_error_set(BASE_EGENERIC, "cannot read the new tree: %s", git_msg());
			goto done;
		}
		const git_commit *parents[] = {base};
		int rc = git_commit_create(&commit_oid, repo, NULL, sig, sig, NULL, spec->message, tree, 1, parents);
		git_tree_free(tree);
		if (rc < 0) {
			error = base_error_set(BASE_EGENERIC, "cannot write the commit: %s", git_msg());
			goto done;
		}
		if (git_reference_create(&ref, repo, local_ref, &commit_oid, 1, "perfbot: proposal commit") < 0) {
			error = base_error_set(BASE_EGENERIC, "cannot write %s: %s", local_ref, git_msg());
			goto done;
		}
		if (spec->record_push) {
			char id[GIT_OID_HEXSZ + 1];
			git_oid_tostr(id, sizeof(id), &commit_oid);
			if ((error = spec->record_push(id, spec->record_payload)) < 0)
				goto done;
		}
		if ((error = push_branch(push_remote, &push_ctx, local_ref, branch_ref)) < 0)
			goto done;
		out->pushed = 1;
	}
	git_oid_tostr(out->commit_sha, sizeof(out->commit_sha), &commit_oid);
	git_oid_tostr(out->tree_sha, sizeof(out->tree_sha), &tree_oid);
	char ms_fetch[32], ms_build[32], ms_push[32];
	snprintf(ms_fetch, sizeof(ms_fetch), "%.1f", t_connected - t_start);
	snprintf(ms_build, sizeof(ms_build), "%.1f", t_built - t_connected);
	snprintf(ms_push, sizeof(ms_push), "%.1f", mono_ms() - t_built);
	base_log(BASE_LOG_DEBUG, "pr: branch timings", "connect_fetch_ms", ms_fetch, "build_ms", ms_build, "commit_push_ms",
		ms_push, NULL);
	base_log(BASE_LOG_INFO, "pr: branch ready", "repository", git->repository, "branch", spec->branch, "commit",
		out->commit_sha, "pushed", out->pushed ? "yes" : "no", NULL);
	error = 0;
done:
	if (push_remote)
		git_remote_disconnect(push_remote);
	git_remote_free(push_remote);
	git_reference_free(ref);
	git_signature_free(sig);
	git_commit_free(base);
	git_diff_free(diff);
	git_repository_free(repo);
	if (lock_fd >= 0)
		close(lock_fd);
	git_libgit2_shutdown();
	return error;
}

int pr_bot_identity(char **name_out, char **email_out, const char *slug, int64_t bot_user_id)
{
	*name_out = *email_out = NULL;
	if (!slug || !*slug || bot_user_id <= 0)
		return base_error_set(BASE_EINVALID, "the bot identity needs the app slug and the bot user id");
	base_buf name = BASE_BUF_INIT(512), email = BASE_BUF_INIT(512);
	int error;
	if ((error = base_buf_printf(&name, "%s[bot]", slug)) < 0 ||
	    (error = base_buf_printf(&email, "%lld+%s[bot]@users.noreply.github.com", (long long)bot_user_id, slug)) <
		    0) {
		base_buf_dispose(&name);
		base_buf_dispose(&email);
		return error;
	}
	*name_out = base_buf_detach(&name);
	*email_out = base_buf_detach(&email);
	return 0;
}
