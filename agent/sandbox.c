/* Backend-independent parts of the sandbox interface: the fixed environment,
 * result helpers and the backend factory.  No state; thread-safe. */
#include "agent/sandbox.h"

#include <stdlib.h>
#include <string.h>

#include "app/error.h"

const char *const agent_sandbox_env[] = {
	"PATH=/usr/local/bin:/usr/bin:/bin",
	"HOME=" AGENT_SANDBOX_WORKSPACE,
	"LANG=C.UTF-8",
	"TZ=UTC",
	"PYTHONHASHSEED=0",
	"PYTHONMALLOC=malloc",
	"PWD=" AGENT_SANDBOX_WORKSPACE, /* bwrap sets it after --chdir anyway */
	NULL,
};

int agent_sandbox_result_ok(const agent_sandbox_result *r)
{
	return r && !r->timed_out && !r->cancelled && r->term_signal == 0 && r->exit_code == 0;
}

char *agent_sandbox_result_tail(const agent_sandbox_result *r, size_t max)
{
	const char *parts[2] = { r && r->err ? r->err : "", r && r->out ? r->out : "" };
	size_t lens[2] = { strlen(parts[0]), strlen(parts[1]) };
	size_t total = lens[0] + lens[1] + (lens[0] && lens[1] ? 1 : 0);
	size_t skip = total > max ? total - max : 0;
	char *s = malloc((total - skip) + 1);
	if (!s)
		return NULL;
	size_t n = 0;
	for (int i = 0; i < 2; i++) {
		const char *p = parts[i];
		size_t l = lens[i];
		if (i == 1 && lens[0] && lens[1]) {
			if (skip)
				skip--;
			else
				s[n++] = '\n';
		}
		if (skip >= l) {
			skip -= l;
			continue;
		}
		memcpy(s + n, p + skip, l - skip);
		n += l - skip;
		skip = 0;
	}
	s[n] = '\0';
	return s;
}

void agent_sandbox_result_dispose(agent_sandbox_result *r)
{
	if (!r)
		return;
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof(*r));
}

void agent_sandbox_free(agent_sandbox *sb)
{
	if (sb && sb->free)
		sb->free(sb);
}

int agent_sandbox_new(agent_sandbox **out, const char *backend)
{
	*out = NULL;
	if (!backend || !*backend || strcmp(backend, "bwrap") == 0)
		return agent_sandbox_bwrap_new(out, NULL);
	return app_error_set(APP_EINVALID, "PERFBOT_SANDBOX: unknown sandbox backend \"%s\" (expected bwrap)",
			     backend);
}
