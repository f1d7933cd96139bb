/* libFuzzer target: PUBLIC_URL as typed on the setup page or into .env,
 * parsed, written back, parsed again (the normal form must parse to itself)
 * and classified. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	base_url u, again;
	char out[1024], twice[1024], why[300];
	if (base_url_parse(&u, text) == 0 && base_url_format(out, sizeof(out), &u) == 0) {
		if (base_url_parse(&again, out) != 0 || base_url_format(twice, sizeof(twice), &again) != 0 ||
		    strcmp(out, twice) != 0)
			abort();
		base_url_reach(&u, why, sizeof(why));
	}
	base_host_classify(text);
	free(text);
	return 0;
}
