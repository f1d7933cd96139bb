/* libFuzzer target: .github/perfbot.yml parsing (untrusted repository input). */
#include <stddef.h>
#include <stdint.h>

#include "agent/repo_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	agent_repo_config *cfg = NULL;
	if (agent_repo_config_parse(&cfg, (const char *)data, size) == 0)
		agent_repo_config_free(cfg);
	return 0;
}
