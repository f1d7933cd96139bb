/* Pieces shared by the GitHub-facing jobs of agent/ (see services.h). */
#include "agent/services.h"
#include "app/error.h"

#include <stdlib.h>
#include <string.h>

int agent_token_fill(char *buf, size_t size, gh_client *gh, int64_t installation_id)
{
	if (!gh)
		return app_error_set(APP_EAUTH, "no GitHub App configured for credentials");
	char *tok = NULL;
	int error = gh_installation_token(gh, installation_id, &tok);
	if (error < 0)
		return error;
	size_t n = strlen(tok);
	if (n >= size)
		error = app_error_set(APP_ETOOBIG, "installation token too long");
	else
		memcpy(buf, tok, n + 1);
	explicit_bzero(tok, n);
	free(tok);
	return error;
}
