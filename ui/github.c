/* ui_github over the App's REST client: the code exchange on GitHub's web
 * host, the user's own calls with their token, and the permission check
 * with the installation's token as the comment commands ask it.  Any
 * thread (the client is thread-safe). */
#include "ui/ui.h"
#include "base/error.h"
#include "base/json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INSTALLATIONS 100

typedef struct adapter {
	ui_github g;      /* first: the pointer handed out */
	gh_client *gh;
	const base_config *cfg;
} adapter;

static int gh_exchange(void *payload, const char *code, const char *redirect_uri, char **token_out)
{
	const adapter *a = payload;
	const base_config *cfg = a->cfg;
	char web[512];
	if (cfg->github_web_url)
		snprintf(web, sizeof(web), "%s", cfg->github_web_url);
	else if (cfg->ghe_host)
		snprintf(web, sizeof(web), "https://%s", cfg->ghe_host);
	else
		snprintf(web, sizeof(web), "https://github.com");
	size_t n = strlen(web);
	while (n > 0 && web[n - 1] == '/')
		web[--n] = '\0';
	return gh_oauth_exchange(token_out, web, cfg->github_client_id, cfg->github_client_secret, code, redirect_uri);
}

static int need_client(const adapter *a)
{
	return a->gh ? 0 : base_error_set(BASE_EINVALID, "no GitHub App is configured");
}

static int gh_user(void *payload, const char *token, json_t **out)
{
	const adapter *a = payload;
	int error = need_client(a);
	return error < 0 ? error : gh_user_request(a->gh, token, "/user", out);
}

static int gh_repositories(void *payload, const char *token, json_t **out)
{
	const adapter *a = payload;
	json_t *insts = NULL, *all = json_array();
	int error = need_client(a);
	*out = NULL;
	if (!all)
		return base_error_set(BASE_ENOMEM, "out of memory");
	if (error < 0 || (error = gh_user_request_all(a->gh, token, "/user/installations?per_page=100", "installations",
						      &insts)) < 0)
		goto done;
	size_t i;
	json_t *inst;
	json_array_foreach(insts, i, inst)
	{
		if (i >= MAX_INSTALLATIONS)
			break;
		int64_t id = base_json_int(inst, "id");
		char path[128];
		json_t *repos = NULL;
		snprintf(path, sizeof(path), "/user/installations/%" PRId64 "/repositories?per_page=100", id);
		if ((error = gh_user_request_all(a->gh, token, path, "repositories", &repos)) < 0)
			goto done;
		size_t j;
		json_t *r;
		json_array_foreach(repos, j, r)
		{
			json_t *e = json_pack("{s:s?, s:b, s:s?, s:I}", "full_name", base_json_str(r, "full_name"), "private",
					      json_is_true(json_object_get(r, "private")), "default_branch",
					      base_json_str(r, "default_branch"), "installation_id", (json_int_t)id);
			if (e && base_json_str(r, "full_name"))
				json_array_append_new(all, e);
			else
				json_decref(e);
		}
		json_decref(repos);
	}
	*out = all;
	all = NULL;
done:
	json_decref(insts);
	json_decref(all);
	return error;
}

static int gh_permission(void *payload, int64_t installation_id, const char *full_name, const char *login,
			 char **perm_out)
{
	const adapter *a = payload;
	char owner[GH_NAME_MAX], name[GH_NAME_MAX];
	int error = need_client(a);
	if (error < 0 || (error = gh_repo_split(owner, name, full_name)) < 0)
		return error;
	return gh_get_permission(a->gh, installation_id, owner, name, login, perm_out);
}

int ui_github_default_new(ui_github **out, gh_client *gh, const base_config *cfg)
{
	adapter *a = calloc(1, sizeof(*a));
	*out = NULL;
	if (!a)
		return base_error_set(BASE_ENOMEM, "out of memory");
	a->gh = gh;
	a->cfg = cfg;
	a->g = (ui_github){ .exchange = gh_exchange, .user = gh_user, .repositories = gh_repositories,
			    .permission = gh_permission, .payload = a };
	*out = &a->g;
	return 0;
}

void ui_github_default_free(ui_github *g)
{
	free(g); /* the adapter starts with it */
}
