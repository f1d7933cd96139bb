/* What agent runs ask of GitHub, as a struct of function pointers: the
 * check run "perfbot optimize", the comment in the thread that asked for
 * the run, and an installation token for git.  The server fills it from
 * github/'s client (agent_github_adapter_init); tests pass a fake through
 * agent_services.github.  `repository` is "owner/name"; every callback gets
 * the installation and, last, the struct's payload.  JSON bodies are
 * borrowed for the call.  Callbacks may be called from any worker thread. */
#ifndef AGENT_AGENT_GITHUB_H
#define AGENT_AGENT_GITHUB_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "github/github.h"

typedef struct agent_github {
	/* POST /repos/{repository}/check-runs with body; *id_out the new check run's id. */
	int (*create_check_run)(int64_t *id_out, int64_t installation_id, const char *repository, json_t *body,
				void *payload);
	/* PATCH /repos/{repository}/check-runs/{check_run_id} with body. */
	int (*update_check_run)(int64_t installation_id, const char *repository, int64_t check_run_id, json_t *body,
				void *payload);
	/* POST /repos/{repository}/issues/{number}/comments; *id_out the comment's id. */
	int (*create_comment)(int64_t *id_out, int64_t installation_id, const char *repository, int number,
			      const char *text, void *payload);
	/* An installation token for git over HTTPS (user x-access-token) into
	 * buf (size bytes, NUL-terminated; the caller wipes it).  BASE_EAUTH
	 * when there is none to give. */
	int (*git_token)(char *buf, size_t size, int64_t installation_id, void *payload);
	/* Forgets a token git refused (a 401 on fetch): the next git_token asks
	 * GitHub for a new one. */
	void (*git_token_invalidate)(int64_t installation_id, void *payload);
	void *payload;
} agent_github;

/* Fills *out with callbacks over the real client gh (borrowed: it must
 * outlive *out).  The adapter keeps no state of its own. */
void agent_github_adapter_init(agent_github *out, gh_client *gh);

#endif
