/* Fuzz target: the Link header parser of the GitHub client (pagination
 * follows what GitHub's answer says, so the header is outside input). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "github/github.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	char *next = NULL;
	if (gh_link_next(&next, s) == 0 && next) {
		/* the URL returned is a part of the input */
		if (!strstr(s, next))
			abort();
		free(next);
	}
	free(s);
	return 0;
}
