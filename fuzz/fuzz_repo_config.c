/* libFuzzer target: .github/perfbot.yml parsing (untrusted repository input). */
#include <stddef.h>
#include <stdint.h>

#include "measure/repo_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	measure_repo_config *cfg = NULL;
	if (measure_repo_config_parse(&cfg, (const char *)data, size) == 0)
		measure_repo_config_free(cfg);
	return 0;
}
