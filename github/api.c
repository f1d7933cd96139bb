/* Typed GitHub calls on top of gh_request, and the search for missed
 * webhook deliveries.
 *
 * Each call builds its path with every caller-given segment
 * percent-encoded, so a branch or file name cannot change the endpoint.
 * Stateless apart from the client's redelivery set; thread-safe as the
 * client is. */
#include "github/github.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "base/buf.h"
#include "base/error.h"
#include "base/log.h"
#include "base/metrics.h"
#include "github/gh_int.h"

#define MAX_PATH_LEN 4096

/* repo_path: "/repos/{owner}/{repo}" followed by suffix (printf). */
static int repo_path(base_buf *b, const char *owner, const char *repo, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int repo_path(base_buf *b, const char *owner, const char *repo, const char *fmt, ...)
{
	int error;
	if (!owner || !owner[0] || !repo || !repo[0])
		return base_error_set(BASE_EINVALID, "repository owner and name are required");
	if ((error = base_buf_puts(b, "/repos/")) < 0 || (error = gh__url_escape(b, owner, 0)) < 0 ||
	    (error = base_buf_puts(b, "/")) < 0 || (error = gh__url_escape(b, repo, 0)) < 0)
		return base_error_set(error, "GitHub path too long");
	if (fmt && fmt[0]) {
		char suffix[512];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(suffix, sizeof(suffix), fmt, ap);
		va_end(ap);
		if ((error = base_buf_puts(b, suffix)) < 0)
			return base_error_set(error, "GitHub path too long");
	}
	return 0;
}

static int get_id(json_t *obj, int64_t *id_out, const char *what)
{
	json_t *id = json_object_get(obj, "id");
	if (!json_is_integer(id))
		return base_error_set(BASE_EINVALID, "GitHub answer for %s has no id", what);
	if (id_out)
		*id_out = (int64_t)json_integer_value(id);
	return 0;
}

int gh_get_installation(gh_client *c, int64_t installation_id, json_t **out)
{
	char path[64];
	snprintf(path, sizeof(path), "/app/installations/%" PRId64, installation_id);
	return gh_request(c, GH_AUTH_APP, "GET", path, NULL, out);
}

int gh_list_installation_repos(gh_client *c, int64_t installation_id, json_t **out)
{
	return gh_request_all(c, installation_id, "/installation/repositories?per_page=100", "repositories", out);
}

int gh_get_repo(gh_client *c, int64_t inst, const char *owner, const char *repo, json_t **out)
{
	base_buf p = BASE_BUF_INIT(MAX_PATH_LEN);
	int error = repo_path(&p, owner, repo, NULL);
	if (error == 0)
		error = gh_request(c, inst, "GET", base_buf_cstr(&p), NULL, out);
	base_buf_dispose(&p);
	return error;
}

int gh_get_file(gh_client *c, int64_t inst, const char *owner, const char *repo, const char *path,
		const char *ref, char **data_out, size_t *len_out)
{
	base_buf p = BASE_BUF_INIT(MAX_PATH_LEN);
	json_t *res = NULL;
	char *clean = NULL;
	unsigned char *dec = NULL;
	int error;

	*data_out = NULL;
	*len_out = 0;
	if (!path || !path[0])
		return base_error_set(BASE_EINVALID, "file path is required");
	while (*path == '/')
		path++;
	if ((error = repo_path(&p, owner, repo, "/contents/")) < 0)
		goto done;
	if ((error = gh__url_escape(&p, path, 1)) < 0)
		goto done;
	if (ref && ref[0] &&
	    ((error = base_buf_puts(&p, "?ref=")) < 0 || (error = gh__url_escape(&p, ref, 0)) < 0)) {
		error = base_error_set(error, "GitHub path too long");
		goto done;
	}
	if ((error = gh_request(c, inst, "GET", base_buf_cstr(&p), NULL, &res)) < 0)
		goto done;
	if (!json_is_object(res)) {
		error = base_error_set(BASE_EINVALID, "%s is a directory, not a file", path);
		goto done;
	}
	const char *type = json_string_value(json_object_get(res, "type"));
	const char *content = json_string_value(json_object_get(res, "content"));
	const char *encoding = json_string_value(json_object_get(res, "encoding"));
	if (type && strcmp(type, "file") != 0) {
		error = base_error_set(BASE_EINVALID, "%s is a %s, not a file", path, type);
		goto done;
	}
	if (!content || !encoding || strcmp(encoding, "base64") != 0) {
		/* files over 1 MB come without content */
		error = base_error_set(BASE_ETOOBIG, "%s: GitHub returned no base64 content (file too large?)", path);
		goto done;
	}
	size_t n = strlen(content), m = 0;
	if (!(clean = malloc(n + 1)) || !(dec = malloc(n / 4 * 3 + 4))) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < n; i++)
		if (content[i] != '\n' && content[i] != '\r' && content[i] != ' ')
			clean[m++] = content[i];
	clean[m] = '\0';
	int dn = m ? EVP_DecodeBlock(dec, (unsigned char *)clean, (int)m) : 0;
	if (dn < 0 || m % 4 != 0) {
		error = base_error_set(BASE_EINVALID, "%s: GitHub returned invalid base64 content", path);
		goto done;
	}
	if (m >= 1 && clean[m - 1] == '=')
		dn--;
	if (m >= 2 && clean[m - 2] == '=')
		dn--;
	dec[dn] = '\0';
	*data_out = (char *)dec;
	*len_out = (size_t)dn;
	dec = NULL;
done:
	free(clean);
	free(dec);
	json_decref(res);
	base_buf_dispose(&p);
	return error;
}

int gh_create_check_run(gh_client *c, int64_t inst, const char *owner, const char *repo, json_t *body,
			int64_t *id_out)
{
	base_buf p = BASE_BUF_INIT(MAX_PATH_LEN);
	json_t *res = NULL;
	int error = repo_path(&p, owner, repo, "/check-runs");
	if (error == 0 && (error = gh_request(c, inst, "POST", base_buf_cstr(&p), body, &res)) == 0)
		error = get_id(res, id_out, "check run");
	json_decref(res);
	base_buf_dispose(&p);
	return error;
}

int gh_update_check_run(gh_client *c, int64_t inst, const char *owner, const char *repo, int64_t id,
			json_t *body)
{
	base_buf p = BASE_BUF_INIT(MAX_PATH_LEN);
	int error = repo_path(&p, owner, repo, "/check-runs/%" PRId64, id);
	if (error == 0)
		error = gh_request(c, inst, "PATCH", base_buf_cstr(&p), body, NULL);
	base_buf_dispose(&p);
	return error;
}

static int send_body(gh_client *c, int64_t inst, const char *method, const char *path, const char *key,
		     const char *value, int64_t *id_out, const char *what)
{
	json_t *body = json_pack("{s:s}", key, value ? value : "");
	json_t *res = NULL;
	int error;
	if (!body)
		return base_error_set(BASE_EINVALID, "%s: text is not valid UTF-8", what);
	if ((error = gh_request(c, inst, method, path, body, &res)) == 0 && id_out)
		error = get_id(res, id_out, what);
	json_decref(body);
	json_decref(res);
	return error;
}

int gh_create_comment(gh_client *c, int64_t inst, const char *owner, const char *repo, int64_t number,
		      const char *text, int64_t *id_out)
{
	base_buf p = BASE_BUF_INIT(MAX_PATH_LEN);
	int error = repo_path(&p, owner, repo, "/issues/%" PRId64 "/comments", number);
	if (error == 0)
		error = send_body(c, inst, "POST", base_buf_cstr(&p), "body", text, id_out, "comment");
	base_buf_dispose(&p);
	return error;
}

int gh_edit_comment(gh_client *c, int64_t inst, const char *owner, const char *repo, int64_t comment_id,
		    const char *text)
{
	base_buf p = BASE_BUF_INIT(MAX_PATH_LEN);
	int error = repo_path(&p, owner, repo, "/issues/comments/%" PRId64, comment_id);
	if (error == 0)
		error = send_body(c, inst, "PATCH", base_buf_cstr(&p), "body", text, NULL, "comment");
	base_buf_dispose(&p);
	return error;
}

int gh_add_reaction(gh_client *c, int64_t inst, const char *owner, const char *repo, int64_t comment_id,
		    const char *content)
{
	base_buf p = BASE_BUF_INIT(MAX_PATH_LEN);
	int error = repo_path(&p, owner, repo, "/issues/comments/%" PRId64 "/reactions", comment_id);
	if (error == 0)
		error = send_body(c, inst, "POST", base_buf_cstr(&p), "content", content, NULL, "reaction");
	base_buf_dispose(&p);
	return error;
}

int gh_get_permission(gh_client *c, int64_t inst, const char *owner, const char *repo, const char *user,
		      char **perm_out)
{
	base_buf p = BASE_BUF_INIT(MAX_PATH_LEN);
	json_t *res = NULL;
	int error;
	*perm_out = NULL;
	if (!user || !user[0])
		return base_error_set(BASE_EINVALID, "user is required");
	if ((error = repo_path(&p, owner, repo, "/collaborators/")) < 0 || (error = gh__url_escape(&p, user, 0)) < 0 ||
	    (error = base_buf_puts(&p, "/permission")) < 0)
		goto done;
	error = gh_request(c, inst, "GET", base_buf_cstr(&p), NULL, &res);
	const char *perm = "none";
	if (error == BASE_ENOTFOUND) {
		/* "is not a user" / not a collaborator: no access */
		error = 0;
	} else if (error < 0) {
		goto done;
	} else if (!(perm = json_string_value(json_object_get(res, "permission")))) {
		error = base_error_set(BASE_EINVALID, "GitHub permission answer for %s has no permission", user);
		goto done;
	}
	if (!(*perm_out = strdup(perm)))
		error = base_error_set(BASE_ENOMEM, "out of memory");
done:
	json_decref(res);
	base_buf_dispose(&p);
	return error;
}

int gh_create_pull(gh_client *c, int64_t inst, const char *owner, const char *repo, json_t *body,
		   json_t **out)
{
	base_buf p = BASE_BUF_INIT(MAX_PATH_LEN);
	int error = repo_path(&p, owner, repo, "/pulls");
	if (error == 0)
		error = gh_request(c, inst, "POST", base_buf_cstr(&p), body, out);
	base_buf_dispose(&p);
	return error;
}

int gh_find_pull(gh_client *c, int64_t inst, const char *owner, const char *repo, const char *head_owner,
		 const char *branch, const char *state, json_t **out)
{
	base_buf p = BASE_BUF_INIT(MAX_PATH_LEN);
	json_t *list = NULL;
	int error;
	*out = NULL;
	if (!head_owner || !branch)
		return base_error_set(BASE_EINVALID, "head owner and branch are required");
	if ((error = repo_path(&p, owner, repo, "/pulls?head=")) < 0 || (error = gh__url_escape(&p, head_owner, 0)) < 0 ||
	    (error = base_buf_puts(&p, ":")) < 0 || (error = gh__url_escape(&p, branch, 0)) < 0 ||
	    (error = base_buf_puts(&p, "&state=")) < 0 || (error = gh__url_escape(&p, state ? state : "open", 0)) < 0)
		goto done;
	if ((error = gh_request(c, inst, "GET", base_buf_cstr(&p), NULL, &list)) < 0)
		goto done;
	json_t *first = json_is_array(list) ? json_array_get(list, 0) : NULL;
	if (!first) {
		error = base_error_set(BASE_ENOTFOUND, "no %s pull request for %s:%s", state ? state : "open", head_owner,
				      branch);
		goto done;
	}
	*out = json_incref(first);
done:
	json_decref(list);
	base_buf_dispose(&p);
	return error;
}

int gh_get_pull(gh_client *c, int64_t inst, const char *owner, const char *repo, int64_t number, json_t **out)
{
	base_buf p = BASE_BUF_INIT(MAX_PATH_LEN);
	int error = repo_path(&p, owner, repo, "/pulls/%" PRId64, number);
	if (error == 0)
		error = gh_request(c, inst, "GET", base_buf_cstr(&p), NULL, out);
	base_buf_dispose(&p);
	return error;
}

int gh_close_pull(gh_client *c, int64_t inst, const char *owner, const char *repo, int64_t number)
{
	base_buf p = BASE_BUF_INIT(MAX_PATH_LEN);
	int error = repo_path(&p, owner, repo, "/pulls/%" PRId64, number);
	if (error == 0)
		error = send_body(c, inst, "PATCH", base_buf_cstr(&p), "state", "closed", NULL, "pull request");
	base_buf_dispose(&p);
	return error;
}

int gh_get_app(gh_client *c, json_t **out)
{
	return gh_request(c, GH_AUTH_APP, "GET", "/app", NULL, out);
}

int gh_get_bot_user(gh_client *c, const char *slug, json_t **out)
{
	base_buf p = BASE_BUF_INIT(MAX_PATH_LEN);
	int error;
	*out = NULL;
	if (!slug || !slug[0])
		return base_error_set(BASE_EINVALID, "app slug is required");
	if ((error = base_buf_puts(&p, "/users/")) == 0 && (error = gh__url_escape(&p, slug, 0)) == 0 &&
	    (error = gh__url_escape(&p, "[bot]", 0)) == 0)
		error = gh_request(c, GH_AUTH_APP, "GET", base_buf_cstr(&p), NULL, out);
	base_buf_dispose(&p);
	return error;
}

int gh_list_deliveries(gh_client *c, json_t **out)
{
	return gh_request_all(c, GH_AUTH_APP, "/app/hook/deliveries?per_page=100", NULL, out);
}

int gh_list_recent_deliveries(gh_client *c, int n, json_t **out)
{
	char path[64];
	snprintf(path, sizeof(path), "/app/hook/deliveries?per_page=%d", n < 1 ? 1 : n > 100 ? 100 : n);
	int error = gh_request(c, GH_AUTH_APP, "GET", path, NULL, out);
	if (error == 0 && !json_is_array(*out)) {
		json_decref(*out);
		*out = NULL;
		error = base_error_set(BASE_EINVALID, "GitHub GET /app/hook/deliveries: expected a list");
	}
	return error;
}

int gh_get_hook_config(gh_client *c, json_t **out)
{
	return gh_request(c, GH_AUTH_APP, "GET", "/app/hook/config", NULL, out);
}

int gh_list_installations(gh_client *c, json_t **out)
{
	return gh_request_all(c, GH_AUTH_APP, "/app/installations?per_page=100", NULL, out);
}

int gh_count_installation_repos(gh_client *c, int64_t installation_id, int64_t *count_out)
{
	json_t *res = NULL;
	int error = gh_request(c, installation_id, "GET", "/installation/repositories?per_page=1", NULL, &res);
	json_t *n = json_object_get(res, "total_count");
	if (error == 0 && !json_is_integer(n))
		error = base_error_set(BASE_EINVALID, "GitHub answer for the installation's repositories has no total_count");
	if (error == 0)
		*count_out = (int64_t)json_integer_value(n);
	json_decref(res);
	return error;
}

int gh_redeliver(gh_client *c, int64_t delivery_id)
{
	char path[96];
	snprintf(path, sizeof(path), "/app/hook/deliveries/%" PRId64 "/attempts", delivery_id);
	return gh_request(c, GH_AUTH_APP, "POST", path, NULL, NULL);
}

/* ---- missed deliveries ------------------------------------------------------------ */

static int ok_status(json_t *d)
{
	json_int_t code = json_integer_value(json_object_get(d, "status_code"));
	return code >= 200 && code < 300;
}

int gh_redeliver_missed(gh_client *c, int (*is_stored)(const char *guid, void *payload), void *payload,
			int *found_out, int *redelivered_out)
{
	json_t *list = NULL, *succeeded = json_object(), *latest = json_object();
	int error = 0, found = 0, redelivered = 0;
	if (found_out)
		*found_out = 0;
	if (redelivered_out)
		*redelivered_out = 0;
	if (!succeeded || !latest) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	if ((error = gh_list_deliveries(c, &list)) < 0)
		goto done;

	/* per GUID: did any attempt succeed, and which failed attempt is the newest */
	size_t i;
	json_t *d;
	json_array_foreach(list, i, d) {
		const char *guid = json_string_value(json_object_get(d, "guid"));
		json_t *id = json_object_get(d, "id");
		if (!guid || !guid[0] || !json_is_integer(id))
			continue;
		if (ok_status(d)) {
			json_object_set_new(succeeded, guid, json_true());
			continue;
		}
		json_t *prev = json_object_get(latest, guid);
		if (!prev || json_integer_value(id) > json_integer_value(prev))
			json_object_set_new(latest, guid, json_integer(json_integer_value(id)));
	}
	const char *guid;
	json_t *id;
	json_object_foreach(latest, guid, id) {
		if (json_object_get(succeeded, guid))
			continue;
		int stored = is_stored ? is_stored(guid, payload) : 0;
		if (stored < 0) {
			error = stored;
			goto done;
		}
		if (stored)
			continue;
		int fresh = gh__redelivery_mark(c, guid);
		if (fresh < 0) {
			error = fresh;
			goto done;
		}
		if (!fresh)
			continue; /* asked for already: counted then */
		found++;
		base_metric_count("perfbot_redeliveries_found_total", "Failed webhook deliveries found missing", NULL, 1);
		/* one refusal does not stop the sweep: the others are still asked for */
		int e = gh_redeliver(c, (int64_t)json_integer_value(id));
		if (e < 0) {
			gh__redelivery_unmark(c, guid);
			base_log(BASE_LOG_WARN, "redelivery refused", "delivery", guid, "error", base_error_last(), NULL);
			if (!error)
				error = e;
			continue;
		}
		redelivered++;
		base_metric_count("perfbot_redeliveries_requested_total", "Webhook redeliveries requested from GitHub",
				 NULL, 1);
		base_log(BASE_LOG_INFO, "redelivery requested", "delivery", guid, NULL);
	}
done:
	if (found_out)
		*found_out = found;
	if (redelivered_out)
		*redelivered_out = redelivered;
	json_decref(list);
	json_decref(succeeded);
	json_decref(latest);
	return error;
}

int gh_repo_split(char owner[GH_NAME_MAX], char name[GH_NAME_MAX], const char *full)
{
	const char *slash = full ? strchr(full, '/') : NULL;
	if (!slash || slash == full || !slash[1] || (size_t)(slash - full) >= GH_NAME_MAX ||
	    strlen(slash + 1) >= GH_NAME_MAX || strchr(slash + 1, '/'))
		return base_error_set(BASE_EINVALID, "bad repository name \"%.200s\"", full ? full : "");
	memcpy(owner, full, (size_t)(slash - full));
	owner[slash - full] = '\0';
	memcpy(name, slash + 1, strlen(slash + 1) + 1);
	return 0;
}
