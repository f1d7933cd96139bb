/* libFuzzer target: the .env parser (a file users edit by hand). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int ignore(const char *key, const char *value, void *payload)
{
	(void)payload;
	return key[0] == '\0' || value == NULL ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	base_dotenv_parse(text, ignore, NULL);
	free(text);
	return 0;
}
