/* The pr_github vtable over github/'s client: each callback splits the
 * "owner/name" it gets, makes one typed call (or one generic request) with
 * the installation's token and converts GitHub's answer to pr/'s structs.
 *
 * GitHub's answers are outside input: every field is read with a type check
 * and a missing one becomes NULL / 0 / -1 rather than an error, except the
 * pull request number, without which nothing can follow.  Status mapping is
 * github/'s (BASE_EEXISTS on a 422 "already exists"); the only remapping here
 * is a 422 on a branch deletion ("Reference does not exist"), which is
 * BASE_ENOTFOUND like the 404.  No state beyond the borrowed client; any
 * thread (the client is thread-safe). */
#include "pr/pr_github_adapter.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/error.h"

#define PATH_CAP 2048
#define PART_CAP 256

typedef struct repo_parts {
	char owner[PART_CAP];
	char name[PART_CAP];
} repo_parts;

static int split(repo_parts *out, const char *repository)
{
	const char *slash = repository ? strchr(repository, '/') : NULL;
	if (!slash || slash == repository || !slash[1] || strchr(slash + 1, '/') ||
	    (size_t)(slash - repository) >= PART_CAP || strlen(slash + 1) >= PART_CAP)
		return base_error_set(BASE_EINVALID, "repository must be owner/name: %.200s", repository ? repository : "");
	memcpy(out->owner, repository, (size_t)(slash - repository));
	out->owner[slash - repository] = '\0';
	snprintf(out->name, sizeof(out->name), "%s", slash + 1);
	return 0;
}

/* Percent-encodes s for a path segment or a query value; '/' is kept when
 * keep_slash (a branch name inside git/refs/heads/...). */
static int escape(base_buf *b, const char *s, int keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	int error = 0;
	for (; *s && error == 0; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
		    ch == '_' || ch == '.' || ch == '~' || (keep_slash && ch == '/')) {
			char c = (char)ch;
			error = base_buf_put(b, &c, 1);
		} else {
			char enc[3] = {'%', hex[ch >> 4], hex[ch & 15]};
			error = base_buf_put(b, enc, 3);
		}
	}
	return error;
}

static int dup_field(char **out, const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));
	*out = NULL;
	if (s && !(*out = strdup(s)))
		return base_error_set(BASE_ENOMEM, "out of memory");
	return 0;
}

int pr_pull_from_github(pr_pull *out, const json_t *obj)
{
	memset(out, 0, sizeof(*out));
	json_t *num = json_object_get(obj, "number");
	if (!json_is_integer(num) || json_integer_value(num) <= 0 || json_integer_value(num) > 2147483647)
		return base_error_set(BASE_EINVALID, "GitHub returned a pull request without a number");
	out->number = (int)json_integer_value(num);
	const json_t *head = json_object_get(obj, "head"), *base = json_object_get(obj, "base");
	int error;
	if ((error = dup_field(&out->html_url, obj, "html_url")) < 0 || (error = dup_field(&out->state, obj, "state")) < 0 ||
	    (error = dup_field(&out->head_ref, head, "ref")) < 0 || (error = dup_field(&out->head_sha, head, "sha")) < 0 ||
	    (error = dup_field(&out->base_ref, base, "ref")) < 0 || (error = dup_field(&out->body, obj, "body")) < 0 ||
	    (error = dup_field(&out->merge_commit_sha, obj, "merge_commit_sha")) < 0) {
		pr_pull_dispose(out);
		return error;
	}
	out->merged = json_is_true(json_object_get(obj, "merged"));
	const json_t *m = json_object_get(obj, "mergeable");
	out->mergeable = json_is_true(m) ? 1 : json_is_false(m) ? 0 : -1;
	return 0;
}

static int create_pull(pr_pull *out, const char *repository, const char *title, const char *head, const char *base,
		       const char *body, void *payload)
{
	pr_github_adapter *a = payload;
	repo_parts r;
	json_t *req = NULL, *res = NULL;
	memset(out, 0, sizeof(*out));
	int error = split(&r, repository);
	if (error < 0)
		return error;
	req = json_pack("{s:s, s:s, s:s, s:s, s:b}", "title", title ? title : "", "head", head ? head : "", "base",
			base ? base : "", "body", body ? body : "", "maintainer_can_modify", 1);
	if (!req)
		return base_error_set(BASE_ENOMEM, "out of memory");
	if ((error = gh_create_pull(a->gh, a->installation_id, r.owner, r.name, req, &res)) == 0)
		error = pr_pull_from_github(out, res);
	json_decref(req);
	json_decref(res);
	return error;
}

static int find_pull_by_head(pr_pull *out, const char *repository, const char *branch, void *payload)
{
	pr_github_adapter *a = payload;
	repo_parts r;
	json_t *res = NULL;
	memset(out, 0, sizeof(*out));
	int error = split(&r, repository);
	if (error < 0)
		return error;
	if ((error = gh_find_pull(a->gh, a->installation_id, r.owner, r.name, r.owner, branch, "open", &res)) == 0)
		error = pr_pull_from_github(out, res);
	json_decref(res);
	return error;
}

static int get_pull(pr_pull *out, const char *repository, int number, void *payload)
{
	pr_github_adapter *a = payload;
	repo_parts r;
	json_t *res = NULL;
	memset(out, 0, sizeof(*out));
	int error = split(&r, repository);
	if (error < 0)
		return error;
	if ((error = gh_get_pull(a->gh, a->installation_id, r.owner, r.name, number, &res)) == 0)
		error = pr_pull_from_github(out, res);
	json_decref(res);
	return error;
}

static int list_open_pulls(pr_pull **out, size_t *n_out, const char *repository, const char *base, void *payload)
{
	pr_github_adapter *a = payload;
	repo_parts r;
	base_buf path = BASE_BUF_INIT(PATH_CAP);
	json_t *list = NULL;
	pr_pull *pulls = NULL;
	size_t n = 0;
	*out = NULL;
	*n_out = 0;
	int error = split(&r, repository);
	if (error < 0)
		goto done;
	if ((error = base_buf_puts(&path, "/repos/")) < 0 || (error = escape(&path, r.owner, 0)) < 0 ||
	    (error = base_buf_puts(&path, "/")) < 0 || (error = escape(&path, r.name, 0)) < 0 ||
	    (error = base_buf_puts(&path, "/pulls?state=open&per_page=100&base=")) < 0 ||
	    (error = escape(&path, base ? base : "", 0)) < 0)
		goto done;
	if ((error = gh_request_all(a->gh, a->installation_id, base_buf_cstr(&path), NULL, &list)) < 0)
		goto done;
	size_t total = json_array_size(list);
	if (total > 0 && !(pulls = calloc(total, sizeof(*pulls)))) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < total; i++) {
		/* a malformed entry is skipped: it cannot be a pull request we follow */
		if (pr_pull_from_github(&pulls[n], json_array_get(list, i)) == 0)
			n++;
	}
	*out = pulls;
	*n_out = n;
	pulls = NULL;
	error = 0;
done:
	free(pulls);
	json_decref(list);
	base_buf_dispose(&path);
	return error;
}

static int comment(const char *repository, int number, const char *body, void *payload)
{
	pr_github_adapter *a = payload;
	repo_parts r;
	int64_t id = 0;
	int error = split(&r, repository);
	if (error < 0)
		return error;
	return gh_create_comment(a->gh, a->installation_id, r.owner, r.name, number, body, &id);
}

static int close_pull(const char *repository, int number, void *payload)
{
	pr_github_adapter *a = payload;
	repo_parts r;
	int error = split(&r, repository);
	if (error < 0)
		return error;
	return gh_close_pull(a->gh, a->installation_id, r.owner, r.name, number);
}

static int delete_branch(const char *repository, const char *branch, void *payload)
{
	pr_github_adapter *a = payload;
	repo_parts r;
	base_buf path = BASE_BUF_INIT(PATH_CAP);
	int error = split(&r, repository);
	if (error < 0)
		goto done;
	if (!branch || !*branch) {
		error = base_error_set(BASE_EINVALID, "no branch to delete");
		goto done;
	}
	if ((error = base_buf_puts(&path, "/repos/")) < 0 || (error = escape(&path, r.owner, 0)) < 0 ||
	    (error = base_buf_puts(&path, "/")) < 0 || (error = escape(&path, r.name, 0)) < 0 ||
	    (error = base_buf_puts(&path, "/git/refs/heads/")) < 0 || (error = escape(&path, branch, 1)) < 0)
		goto done;
	error = gh_request(a->gh, a->installation_id, "DELETE", base_buf_cstr(&path), NULL, NULL);
	if (error == BASE_EINVALID || error == BASE_ENOTFOUND) /* 422 "Reference does not exist" or 404 */
		error = base_error_set(BASE_ENOTFOUND, "branch %.200s is already gone from %.200s", branch, repository);
done:
	base_buf_dispose(&path);
	return error;
}

static int update_check_run(const char *repository, int64_t check_run_id, const char *title, const char *summary,
			    const char *details_url, void *payload)
{
	pr_github_adapter *a = payload;
	repo_parts r;
	int error = split(&r, repository);
	if (error < 0)
		return error;
	json_t *body = json_pack("{s:{s:s, s:s}}", "output", "title", title ? title : "", "summary", summary ? summary : "");
	if (!body)
		return base_error_set(BASE_ENOMEM, "out of memory");
	if (details_url && *details_url)
		json_object_set_new(body, "details_url", json_string(details_url));
	error = gh_update_check_run(a->gh, a->installation_id, r.owner, r.name, check_run_id, body);
	json_decref(body);
	return error;
}

void pr_github_adapter_init(pr_github *out, pr_github_adapter *ctx, gh_client *gh, int64_t installation_id)
{
	ctx->gh = gh;
	ctx->installation_id = installation_id;
	memset(out, 0, sizeof(*out));
	out->create_pull = create_pull;
	out->find_pull_by_head = find_pull_by_head;
	out->get_pull = get_pull;
	out->list_open_pulls = list_open_pulls;
	out->comment = comment;
	out->close_pull = close_pull;
	out->delete_branch = delete_branch;
	out->update_check_run = update_check_run;
	out->payload = ctx;
}
