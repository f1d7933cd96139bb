/* The task prompt of an agent run, rendered as markdown from the repo
 * config and the baseline measurement.  Numbers come from perfbot's own
 * measurement only.  Pure; thread-safe. */
#include "agent/task.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/error.h"
#include "base/json.h"

#define TASK_CAP (256u << 10)

static const json_t *find_bench(const json_t *baseline, const char *name)
{
	size_t i;
	json_t *b;
	json_array_foreach(json_object_get(baseline, "benchmarks"), i, b) {
		const char *n = base_json_str(b, "name");
		if (n && strcmp(n, name) == 0)
			return b;
	}
	return NULL;
}

int agent_task_render(char **out, const agent_task_info *in)
{
	base_buf b = BASE_BUF_INIT(TASK_CAP);
	const measure_repo_config *cfg = in->config;
	int metric_instr = cfg->metric == MEASURE_METRIC_INSTRUCTIONS;
	const char *key = metric_instr ? "instructions" : "estimated_cycles";
	const char *metric = metric_instr ? "instructions" : "estimated cycles";
	int top = in->top_functions > 0 ? in->top_functions : 10;

	*out = NULL;
	base_buf_printf(&b, "# perfbot agent run %lld\n\n", (long long)in->run_id);
	base_buf_printf(&b, "Make the benchmarks of `%s` faster at commit `%s` without changing what the code does.\n\n",
		       in->repository ? in->repository : "the repository", in->base_sha ? in->base_sha : "?");
	if (in->managed)
		base_buf_puts(&b, "You work through your tools only, all of them in perfbot's sandbox: `read`, `write`, `edit`, "
				  "`glob`, `grep` on the workspace (`/workspace`), `bash` to run commands there (no network; "
				  "one shell for the whole run), ");
	else
		base_buf_puts(&b, "You work through the tools of perfbot's MCP server only: `read_file`, `write_file`, "
				  "`edit_file`, `list_files`, `grep` on the workspace, `exec` to run commands in the sandbox "
				  "(no network), ");
	base_buf_puts(&b, "`run_benchmarks` to measure under CPU simulation (deterministic: instruction and cache counts), "
			  "`get_profile` for the functions that cost the most, `compare` and `get_diff`. "
			  "When you are done, call `submit_result` with a summary.\n\n");

	base_buf_printf(&b, "## Benchmarks (baseline, %s; lower is better)\n\n", metric);
	base_buf_puts(&b, "| benchmark | command | estimated cycles | instructions | threshold |\n|---|---|---:|---:|---:|\n");
	for (size_t i = 0; i < cfg->nbenchmarks; i++) {
		const measure_benchmark_config *bc = &cfg->benchmarks[i];
		const json_t *m = find_bench(in->baseline, bc->name);
		const char *status = base_json_str(m, "status");
		if (m && status && strcmp(status, "ok") == 0)
			base_buf_printf(&b, "| %s | `%s` | %.0f | %.0f | %.1f%% |\n", bc->name, bc->command,
				       base_json_num(m, "estimated_cycles"), base_json_num(m, "instructions"),
				       bc->threshold_pct);
		else
			base_buf_printf(&b, "| %s | `%s` | %s | - | %.1f%% |\n", bc->name, bc->command,
				       status ? status : "not measured", bc->threshold_pct);
	}
	if (in->focus && in->focus[0]) {
		base_buf_puts(&b, "\nFocus on: ");
		for (size_t i = 0; in->focus[i]; i++)
			base_buf_printf(&b, "%s`%s`", i ? ", " : "", in->focus[i]);
		base_buf_puts(&b, ".\n");
	}

	base_buf_printf(&b, "\n## Where the cost is (baseline profile, top %d by inclusive %s)\n", top, metric);
	for (size_t i = 0; i < cfg->nbenchmarks; i++) {
		const json_t *m = find_bench(in->baseline, cfg->benchmarks[i].name);
		const json_t *fns = json_object_get(m, "top_functions");
		if (!json_array_size(fns))
			continue;
		base_buf_printf(&b, "\n### %s\n\n| function | file | exclusive | inclusive |\n|---|---|---:|---:|\n",
			       cfg->benchmarks[i].name);
		size_t j;
		json_t *f;
		json_array_foreach(fns, j, f) {
			if ((int)j >= top)
				break;
			const char *name = base_json_str(f, "name");
			const char *file = base_json_str(f, "file");
			base_buf_printf(&b, "| `%s` | %s | %.0f | %.0f |\n", name ? name : "?", file ? file : "?",
				       base_json_num(json_object_get(f, "self"), key),
				       base_json_num(json_object_get(f, "inclusive"), key));
		}
	}

	base_buf_puts(&b, "\n## Rules\n\n");
	if (cfg->build)
		base_buf_printf(&b, "- The build command is `%s`.\n", cfg->build);
	if (cfg->test)
		base_buf_printf(&b, "- Keep the tests passing: `%s` must succeed.\n", cfg->test);
	else
		base_buf_puts(&b, "- Keep the behaviour identical; the repository has no test command, so be careful.\n");
	base_buf_puts(&b,
		     "- Keep public APIs (exported functions, headers, command-line interfaces) unchanged.\n"
		     "- Do not touch `.git/` or `.github/workflows/`, do not add binary files; keep the diff small.\n"
		     "- perfbot verifies independently: it applies your diff to a clean checkout, builds, runs the tests "
		     "and measures every benchmark itself. Claimed numbers are ignored; a change is proposed only when a "
		     "benchmark improves past its threshold and none regresses.\n"
		     "- Measure with `run_benchmarks` before you submit; use `get_profile` to find the hot code.\n"
		     "- Call `submit_result` with a short summary of what you changed and why it is faster.\n");
	base_buf_printf(&b, "\n## Budgets\n\n- wall time: %d minutes\n- benchmark runs: %d\n", in->max_minutes,
		       in->max_benchmark_runs);
	if (in->max_tool_calls > 0)
		base_buf_printf(&b, "- tool calls: %d\n", in->max_tool_calls);
	base_buf_puts(&b, "\nWhen a budget is exhausted the run ends and unsubmitted work is lost.\n");

	*out = base_buf_detach(&b);
	base_buf_dispose(&b);
	return *out ? 0 : base_error_set(BASE_ENOMEM, "out of memory");
}

int agent_task_write(const char *path, const agent_task_info *info)
{
	char *text = NULL;
	int error = agent_task_render(&text, info);
	if (error < 0)
		return error;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		free(text);
		return base_error_set(BASE_EGENERIC, "cannot write the task file %s: %s", path, strerror(errno));
	}
	size_t len = strlen(text), off = 0;
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			error = base_error_set(BASE_EGENERIC, "cannot write the task file %s: %s", path, strerror(errno));
			break;
		}
		off += (size_t)n;
	}
	close(fd);
	free(text);
	return error;
}
