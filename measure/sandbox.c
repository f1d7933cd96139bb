/* Backend-independent parts of the sandbox interface: the fixed environment,
 * result helpers and the backend factory.  No state; thread-safe. */
#include "measure/sandbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"
#include "base/error.h"

const char *const measure_sandbox_env[] = {
	"PATH=/usr/local/bin:/usr/bin:/bin",
	"HOME=" MEASURE_SANDBOX_HOME,
	"LANG=C.UTF-8",
	"TZ=UTC",
	"PYTHONHASHSEED=0",
	"PYTHONMALLOC=malloc",
	"PYTHONDONTWRITEBYTECODE=1",
	"PWD=" MEASURE_SANDBOX_WORKSPACE, /* bwrap sets it after --chdir anyway */
	NULL,
};

int measure_sandbox_result_ok(const measure_sandbox_result *r)
{
	return r && !r->timed_out && !r->cancelled && r->limit == MEASURE_SANDBOX_LIMIT_NONE && r->term_signal == 0 &&
	       r->exit_code == 0;
}

/* "1 GiB", "512 MiB", "1000 bytes": the largest unit that divides n. */
static void human_bytes(char *buf, size_t cap, uint64_t n)
{
	static const char *const units[] = { "bytes", "KiB", "MiB", "GiB", "TiB" };
	int u = 0;
	while (u < 4 && n >= 1024 && n % 1024 == 0) {
		n /= 1024;
		u++;
	}
	snprintf(buf, cap, "%llu %s", (unsigned long long)n, units[u]);
}

const char *measure_sandbox_result_reason(const measure_sandbox_result *r, char *buf, size_t cap)
{
	char v[48];
	if (cap == 0)
		return buf;
	buf[0] = '\0';
	if (!r)
		return buf;
	switch (r->limit) {
	case MEASURE_SANDBOX_LIMIT_NONE:
		break;
	case MEASURE_SANDBOX_LIMIT_MEMORY:
		human_bytes(v, sizeof(v), r->limit_value);
		snprintf(buf, cap, "the sandbox exceeded its memory limit (%s) and was killed", v);
		break;
	case MEASURE_SANDBOX_LIMIT_PIDS:
		snprintf(buf, cap, "the sandbox reached its process limit (%llu processes) and was killed",
			 (unsigned long long)r->limit_value);
		break;
	case MEASURE_SANDBOX_LIMIT_CPU:
		snprintf(buf, cap, "the sandbox exceeded its CPU time limit (%llu s) and was killed",
			 (unsigned long long)r->limit_value);
		break;
	case MEASURE_SANDBOX_LIMIT_DISK:
		human_bytes(v, sizeof(v), r->limit_value);
		snprintf(buf, cap, "the sandbox exceeded its disk limit (%s written) and was killed", v);
		break;
	case MEASURE_SANDBOX_LIMIT_DISK_FREE:
		human_bytes(v, sizeof(v), r->limit_value);
		snprintf(buf, cap, "the sandbox was killed: the host disk fell below %s free", v);
		break;
	}
	return buf;
}

char *measure_sandbox_result_tail(const measure_sandbox_result *r, size_t max)
{
	char reason[160], note[168] = "";
	if (measure_sandbox_result_reason(r, reason, sizeof(reason))[0])
		snprintf(note, sizeof(note), "[%s]", reason);
	size_t nl = strlen(note);
	if (nl)
		max = max > nl + 1 ? max - nl - 1 : 0;
	const char *parts[2] = { r && r->err ? r->err : "", r && r->out ? r->out : "" };
	size_t lens[2] = { strlen(parts[0]), strlen(parts[1]) };
	size_t total = lens[0] + lens[1] + (lens[0] && lens[1] ? 1 : 0);
	size_t skip = total > max ? total - max : 0;
	char *s = malloc((total - skip) + nl + 2);
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
	if (nl) {
		if (n && s[n - 1] != '\n')
			s[n++] = '\n';
		memcpy(s + n, note, nl);
		n += nl;
	}
	s[n] = '\0';
	return s;
}

void measure_sandbox_result_dispose(measure_sandbox_result *r)
{
	if (!r)
		return;
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof(*r));
}

void measure_sandbox_free(measure_sandbox *sb)
{
	if (sb && sb->free)
		sb->free(sb);
}

int measure_sandbox_new(measure_sandbox **out, const char *backend)
{
	return measure_sandbox_new_with(out, backend, NULL);
}

int measure_sandbox_new_with(measure_sandbox **out, const char *backend, const measure_sandbox_bwrap_options *opts)
{
	*out = NULL;
	if (!backend || !*backend || strcmp(backend, "bwrap") == 0)
		return measure_sandbox_bwrap_new(out, opts);
	return base_error_set(BASE_EINVALID, "PERFBOT_SANDBOX: unknown sandbox backend \"%s\" (expected bwrap)",
			     backend);
}

int measure_sandbox_new_config(measure_sandbox **out, const base_config *cfg)
{
	measure_sandbox_bwrap_options o = MEASURE_SANDBOX_BWRAP_OPTIONS_INIT;
	o.memory_bytes = cfg->sandbox_memory;
	o.pids = cfg->sandbox_pids;
	o.cpu_s = cfg->sandbox_cpu_s;
	o.disk_bytes = cfg->sandbox_disk;
	o.disk_reserve_bytes = cfg->sandbox_disk_reserve;
	return measure_sandbox_new_with(out, cfg->sandbox, &o);
}

int measure_sandbox_spawn(measure_sandbox *sb, measure_sandbox_proc **out, const measure_sandbox_cmd *cmd)
{
	*out = NULL;
	if (!sb || !sb->spawn)
		return base_error_set(BASE_EINVALID, "the %s sandbox cannot keep a process running",
				      sb && sb->name ? sb->name : "(none)");
	return sb->spawn(sb, out, cmd);
}

void measure_sandbox_proc_free(measure_sandbox_proc *p)
{
	if (p)
		p->free(p);
}
