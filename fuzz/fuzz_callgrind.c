/* libFuzzer target: callgrind output parsing (written by code under test in
 * the sandbox, so untrusted), twice into one profile as for two processes,
 * its flame tree, and the same text read as a cachegrind file's totals.  It needs only the
 * pure parser (measure/callgrind_parse.c), nothing that runs valgrind. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "measure/callgrind_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	measure_cg_profile p;
	measure_cg_profile_init(&p);
	measure_cg_parse(&p, (const char *)data, size);
	measure_cg_parse(&p, (const char *)data, size);
	size_t *top = NULL, n = 0;
	if (measure_cg_top(&top, &n, &p, 0, 5) == 0)
		free(top);
	json_decref(measure_cg_flame_json(&p, 0, 400, 32, 5));
	json_decref(measure_cg_flame_json(&p, 1, 50, 4, 0));
	measure_cg_profile_dispose(&p);
	measure_cg_profile_init(&p);
	measure_cg_parse_totals(&p, (const char *)data, size);
	measure_cg_profile_dispose(&p);
	return 0;
}
