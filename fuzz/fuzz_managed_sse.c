/* libFuzzer target: the Managed Agents event-stream parser
 * (agent_managed_sse_feed).  The first byte picks a frame cap and the second
 * a chunk size, so the fuzzer reaches the split points (CR/LF across chunks,
 * a frame cut anywhere) and the oversized-frame path; the rest is the stream.
 * Every delivered frame must be NUL-terminated at its length, and the
 * parser's buffer never holds more than its cap. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/managed_api.h"
#include "base/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_frame(const char *event, const char *data, size_t len, const char *id, void *payload)
{
	size_t *cap = payload;
	/* data may hold NUL bytes (len counts them); it ends with one */
	if (!event || !event[0] || !id || data[len] != '\0' || len > *cap || strlen(event) >= 64)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t cap = 16 + (size_t)data[0] * 8;
	size_t chunk = 1 + (size_t)data[1];
	data += 2;
	size -= 2;
	agent_managed_sse p;
	if (agent_managed_sse_init(&p, cap) < 0)
		return 0;
	for (size_t off = 0; off < size; off += chunk) {
		size_t n = size - off < chunk ? size - off : chunk;
		int error = agent_managed_sse_feed(&p, (const char *)data + off, n, on_frame, &cap);
		if (error < 0 && error != BASE_ETOOBIG)
			abort();
		if (p.data_len + p.line_len > p.cap)
			abort();
	}
	agent_managed_sse_dispose(&p);
	return 0;
}
