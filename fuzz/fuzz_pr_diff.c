/* libFuzzer target: the proposal diff checks (pr_diff_check), which parse
 * untrusted git diffs from an agent's workspace with libgit2. */
#include <stddef.h>
#include <stdint.h>

#include "pr/pr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pr_diff_check((const char *)data, size, 64 * 1024);
	return 0;
}
