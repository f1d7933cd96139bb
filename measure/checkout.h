/* Checkouts: one bare cache repository per GitHub repository under
 * DATA_DIR/repos/<owner>/<name>.git, fetched with libgit2, and a fresh work
 * tree of an exact commit per run.
 *
 * Credentials exist only inside the libgit2 credential callback (user
 * x-access-token, the password from the caller's callback): never in a
 * config, a URL or a log.  A per-repository flock on
 * DATA_DIR/repos/<owner>/<name>.lock serialises fetches and tree exports, so
 * concurrent runs on one repository never corrupt the cache.  Work trees are
 * plain directories (no .git, no remote, no credentials) under
 * DATA_DIR/work/, removed with measure_worktree_remove.
 *
 * Threading: every call opens its own git_repository; safe from any thread. */
#ifndef MEASURE_CHECKOUT_H
#define MEASURE_CHECKOUT_H

#include <stddef.h>

/* Supplies the token for a fetch: writes it into buf (size bytes, NUL
 * terminated) and returns 0, or a negative code.  Called only when the
 * remote asks for credentials. */
typedef int (*measure_token_cb)(char *buf, size_t size, void *payload);

typedef struct measure_checkout_source {
	const char *data_dir;     /* DATA_DIR */
	const char *repository;   /* "owner/name": names the cache; NULL with local_path */
	const char *url;          /* clone URL without credentials (https://github.com/o/n.git) */
	measure_token_cb token_cb;  /* may be NULL for public repositories */
	void *token_payload;
	const char *local_path;   /* instead of url/cache: an existing local repository */
} measure_checkout_source;

/* Makes sure `rev` (a full sha, or any revspec for local paths) is in the
 * cache, fetching from url if needed (all branches and the sha itself).
 * *sha_out (41 bytes) receives the resolved commit. */
int measure_checkout_fetch(char sha_out[41], const measure_checkout_source *src, const char *rev);

/* Writes the tree of commit `sha` to a new directory DATA_DIR/work/<name>-XXXXXX
 * (after fetching it if needed).  *dir_out is owned (free()); remove the
 * directory with measure_worktree_remove. */
int measure_checkout_worktree(char **dir_out, char sha_out[41], const measure_checkout_source *src, const char *rev);

/* Reads one file at a commit without a work tree (e.g. .github/perfbot.yml):
 * BASE_ENOTFOUND when the commit has no such file; *out owned, NUL-terminated,
 * at most max bytes (BASE_ETOOBIG beyond). */
int measure_checkout_read_file(char **out, size_t *len_out, const measure_checkout_source *src, const char *sha,
			     const char *path, size_t max);

/* The merge base of two commits in the cache (for pull requests). */
int measure_checkout_merge_base(char sha_out[41], const measure_checkout_source *src, const char *a, const char *b);

/* Removes a work tree made by measure_checkout_worktree (recursively); refuses
 * paths outside DATA_DIR/work. NULL is a no-op. */
int measure_worktree_remove(const char *data_dir, const char *dir);

#endif
