/* Fuzz target: the GitHub App key parser (PEM, PEM with literal "\n",
 * base64 of a PEM), which reads configuration text.  A failure must never
 * echo the input in its message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "github/github.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	gh_app_key *key = NULL;
	if (gh_app_key_parse(&key, (const char *)data, size) == 0) {
		gh_app_key_free(key);
		return 0;
	}
	if (size >= 24 && memchr(data, '\0', size) == NULL) {
		char probe[25];
		memcpy(probe, data + size / 2 - 12, 24);
		probe[24] = '\0';
		if (strlen(probe) == 24 && strstr(base_error_last(), probe))
			abort();
	}
	return 0;
}
