/* measure_github (services.h) over github/'s client: each callback splits
 * the "owner/name" it gets with gh_repo_split and makes one typed call with
 * the installation's token.  Status mapping is github/'s; nothing is
 * remapped here.  No state beyond the borrowed client; any thread (the
 * client is thread-safe). */
#include "measure/services.h"

#include <stdint.h>

static int create_check_run(int64_t *id_out, int64_t inst, const char *repository, json_t *body, void *payload)
{
	char owner[GH_NAME_MAX], name[GH_NAME_MAX];
	int error = gh_repo_split(owner, name, repository);
	if (error < 0)
		return error;
	return gh_create_check_run(payload, inst, owner, name, body, id_out);
}

static int update_check_run(int64_t inst, const char *repository, int64_t check_run_id, json_t *body, void *payload)
{
	char owner[GH_NAME_MAX], name[GH_NAME_MAX];
	int error = gh_repo_split(owner, name, repository);
	if (error < 0)
		return error;
	return gh_update_check_run(payload, inst, owner, name, check_run_id, body);
}

static int comment(int64_t inst, const char *repository, int number, const char *body, void *payload)
{
	char owner[GH_NAME_MAX], name[GH_NAME_MAX];
	int64_t id = 0;
	int error = gh_repo_split(owner, name, repository);
	if (error < 0)
		return error;
	return gh_create_comment(payload, inst, owner, name, number, body, &id);
}

static int get_file(char **data_out, size_t *len_out, int64_t inst, const char *repository, const char *path,
		    const char *ref, void *payload)
{
	char owner[GH_NAME_MAX], name[GH_NAME_MAX];
	*data_out = NULL;
	*len_out = 0;
	int error = gh_repo_split(owner, name, repository);
	if (error < 0)
		return error;
	return gh_get_file(payload, inst, owner, name, path, ref, data_out, len_out);
}

static int installation_token(char **token_out, int64_t inst, void *payload)
{
	return gh_installation_token(payload, inst, token_out);
}

static void token_invalidate(int64_t inst, void *payload)
{
	gh_installation_token_invalidate(payload, inst);
}

static long retry_wait_ms(void *payload)
{
	(void)payload;
	return gh_retry_wait_ms();
}

void measure_github_adapter_init(measure_github *out, gh_client *gh)
{
	*out = (measure_github){ .create_check_run = create_check_run,
				 .update_check_run = update_check_run,
				 .comment = comment,
				 .get_file = get_file,
				 .installation_token = installation_token,
				 .token_invalidate = token_invalidate,
				 .retry_wait_ms = retry_wait_ms,
				 .payload = gh };
}
