/* Pieces shared by the GitHub-facing jobs of agent/ (see services.h). */
#include "measure/services.h"
#include "base/error.h"

#include <stdlib.h>
#include <string.h>

int measure_token_fill(char *buf, size_t size, gh_client *gh, int64_t installation_id)
{
	if (!gh)
		return base_error_set(BASE_EAUTH, "no GitHub App configured for credentials");
	char *tok = NULL;
	int error = gh_installation_token(gh, installation_id, &tok);
	if (error < 0)
		return error;
	size_t n = strlen(tok);
	if (n >= size)
		error = base_error_set(BASE_ETOOBIG, "installation token too long");
	else
		memcpy(buf, tok, n + 1);
	explicit_bzero(tok, n);
	free(tok);
	return error;
}
