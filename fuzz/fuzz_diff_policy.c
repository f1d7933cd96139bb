/* libFuzzer target: the diff policy (app/diff_policy.h) on untrusted input:
 * globs and commands from a repository's configuration, paths and changed
 * lines from an agent's diff.  Input: glob '\n' path '\n' command '\n' diff. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/diff_policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *take(const char **p, const char *end)
{
	const char *nl = memchr(*p, '\n', (size_t)(end - *p));
	size_t n = nl ? (size_t)(nl - *p) : (size_t)(end - *p);
	char *s = strndup(*p, n);
	*p += n + (nl ? 1 : 0);
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	char *glob = take(&p, end), *path = take(&p, end), *command = take(&p, end);
	if (glob && path && command) {
		const char *globs[] = { glob };
		const char *commands[] = { command };
		base_diff_policy pol = BASE_DIFF_POLICY_INIT;
		pol.bench_commands = commands;
		pol.nbench_commands = 1;
		pol.commands = commands;
		pol.ncommands = 1;
		pol.protected_globs = globs;
		pol.nprotected = 1;
		pol.allowed_globs = globs;
		pol.nallowed = 1;
		char why[256];
		base_diff_policy_path(&pol, path, why, sizeof(why));
		base_diff_policy_glob(glob, path);
		const char *word;
		base_diff_policy_measurement_line(p, (size_t)(end - p), &word);
	}
	free(glob);
	free(path);
	free(command);
	return 0;
}
