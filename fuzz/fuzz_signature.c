/* libFuzzer target: the X-Hub-Signature-256 check.  The input is split at
 * the first newline into a header value and a body; the check must never
 * crash, read out of bounds or accept a header it did not compute. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "webhooks/signature.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t hlen = nl ? (size_t)(nl - data) : size;
	char *header = malloc(hlen + 1);
	if (!header)
		return 0;
	memcpy(header, data, hlen);
	header[hlen] = '\0';
	const uint8_t *body = nl ? nl + 1 : data + size;
	size_t blen = nl ? size - hlen - 1 : 0;
	int rc = wh_signature_verify(header, body, blen, "fuzz-secret", "old-secret");
	if (rc == 0) {
		char expect[WH_SIGNATURE_LEN + 1], old[WH_SIGNATURE_LEN + 1];
		wh_signature_compute(expect, body, blen, "fuzz-secret");
		wh_signature_compute(old, body, blen, "old-secret");
		if (strcasecmp(header, expect) != 0 && strcasecmp(header, old) != 0)
			abort(); /* accepted a signature that is not ours */
	}
	free(header);
	return 0;
}
