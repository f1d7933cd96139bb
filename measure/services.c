/* Pieces shared by the GitHub-facing jobs of measure/ and agent/ (see
 * services.h): an installation token copied into a caller's buffer for a
 * libgit2 credential callback, through measure_github (github/'s client
 * goes through its adapter).  No state; any thread. */
#include "measure/services.h"
#include "base/error.h"

#include <stdlib.h>
#include <string.h>

/* Copies tok (owned, wiped and freed here) into buf. */
static int token_copy(char *buf, size_t size, char *tok)
{
	size_t n = strlen(tok);
	int error = 0;
	if (n >= size)
		error = base_error_set(BASE_ETOOBIG, "installation token too long");
	else
		memcpy(buf, tok, n + 1);
	explicit_bzero(tok, n);
	free(tok);
	return error;
}

int measure_token_fill_with(char *buf, size_t size, const measure_github *gh, int64_t installation_id)
{
	if (!gh)
		return base_error_set(BASE_EAUTH, "no GitHub App configured for credentials");
	char *tok = NULL;
	int error = gh->installation_token(&tok, installation_id, gh->payload);
	if (error < 0)
		return error;
	return token_copy(buf, size, tok);
}

int measure_token_fill(char *buf, size_t size, gh_client *gh, int64_t installation_id)
{
	measure_github a;
	if (!gh)
		return measure_token_fill_with(buf, size, NULL, installation_id);
	measure_github_adapter_init(&a, gh);
	return measure_token_fill_with(buf, size, &a, installation_id);
}
