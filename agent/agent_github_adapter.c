/* The agent_github callbacks (agent/agent_github.h) over github/'s client:
 * each one splits "owner/name" with gh_repo_split and makes one typed call
 * with the installation's token.  Status mapping and retries are github/'s.
 * No state beyond the borrowed client, which is thread-safe: any thread. */
#include "agent/agent_github.h"

#include "measure/services.h"

static int create_check_run(int64_t *id_out, int64_t inst, const char *repository, json_t *body, void *payload)
{
	char owner[GH_NAME_MAX], name[GH_NAME_MAX];
	int error = gh_repo_split(owner, name, repository);
	return error < 0 ? error : gh_create_check_run(payload, inst, owner, name, body, id_out);
}

static int update_check_run(int64_t inst, const char *repository, int64_t check_run_id, json_t *body, void *payload)
{
	char owner[GH_NAME_MAX], name[GH_NAME_MAX];
	int error = gh_repo_split(owner, name, repository);
	return error < 0 ? error : gh_update_check_run(payload, inst, owner, name, check_run_id, body);
}

static int create_comment(int64_t *id_out, int64_t inst, const char *repository, int number, const char *text,
			  void *payload)
{
	char owner[GH_NAME_MAX], name[GH_NAME_MAX];
	int error = gh_repo_split(owner, name, repository);
	return error < 0 ? error : gh_create_comment(payload, inst, owner, name, number, text, id_out);
}

static int git_token(char *buf, size_t size, int64_t inst, void *payload)
{
	return measure_token_fill(buf, size, payload, inst);
}

static void git_token_invalidate(int64_t inst, void *payload)
{
	gh_installation_token_invalidate(payload, inst);
}

void agent_github_adapter_init(agent_github *out, gh_client *gh)
{
	*out = (agent_github){ .create_check_run = create_check_run, .update_check_run = update_check_run,
			       .create_comment = create_comment, .git_token = git_token,
			       .git_token_invalidate = git_token_invalidate, .payload = gh };
}
