/* The agent step of a run: the tool context with the configuration's
 * budgets (AGENT_RUN_TOOL_CALLS_PER_BENCHMARK_RUN calls per allowed
 * benchmark run), the task file, registration with the MCP endpoint (the
 * per-run token, which dies when the step ends), the backend, and what its
 * ending means for the run.
 *
 * Two backends: `command` (agent/agent_cmd.h): PERFBOT_AGENT_COMMAND
 * supervised with the wall budget, hidden from perfbot's state and secrets;
 * and `managed` (run_managed.c): a Claude Managed Agents session whose tool
 * calls the process's worker runs here.  The CLI's --agent, else
 * perfbot.yml's optimize.agent, else PERFBOT_AGENT picks one.
 * The step leaves a submission (r->summary, r->diff) for verification, or
 * decides the outcome itself: no_improvement, failed or cancelled.
 * Runs on the run's thread; the tool context is published to the watcher
 * under r->lock. */
#include "agent/run_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent_cmd.h"
#include "agent/task.h"
#include "base/error.h"
#include "base/log.h"

/* The run's backend: the CLI's choice, else perfbot.yml's optimize.agent,
 * else PERFBOT_AGENT. */
static int managed_backend(const agent_run *r)
{
	const char *o = r->svc->agent_override;
	if (o)
		return !strcmp(o, "managed");
	if (r->cfg->optimize_agent != MEASURE_AGENT_DEFAULT)
		return r->cfg->optimize_agent == MEASURE_AGENT_MANAGED;
	return r->svc->cfg->agent && !strcmp(r->svc->cfg->agent, "managed");
}

/* The backend can run here. */
static int backend_available(const agent_run *r, int managed)
{
	const base_config *cfg = r->svc->cfg;
	if (managed) {
		if (!r->svc->managed) {
			int error = base_config_managed_ready(cfg);
			return base_error_set(error < 0 ? error : BASE_EINVALID,
					      "the managed backend is not available on this server%s%s",
					      error < 0 ? ": " : " (its worker is not running)", error < 0 ? base_error_last() : "");
		}
		return 0;
	}
	if (cfg->agent && strcmp(cfg->agent, "command") != 0 && strcmp(cfg->agent, "managed") != 0)
		return base_error_set(BASE_EINVALID, "PERFBOT_AGENT=%s is not available; use PERFBOT_AGENT=command",
				      cfg->agent);
	if (!cfg->agent_command || !*cfg->agent_command)
		return base_error_set(BASE_EINVALID, "no agent is configured: set PERFBOT_AGENT_COMMAND");
	if (!r->svc->mcp || !r->svc->mcp_url || !*r->svc->mcp_url)
		return base_error_set(BASE_EINVALID, "no MCP endpoint is available for the agent");
	return 0;
}

/* The run's tools (published in r->tools for the watcher) and the task:
 * its text in *task_out (owned) when task_out is not NULL, else the task
 * file. */
static int make_tools(agent_run *r, char **task_out)
{
	int error;
	agent_run_hooks_options ro = AGENT_RUN_HOOKS_OPTIONS_INIT;
	ro.sandbox = r->svc->sandbox;
	ro.workspace = r->workspace;
	ro.scratch_dir = r->cg;
	ro.config = r->cfg;
	ro.baseline = r->baseline;
	ro.cancel = &r->cancel;
	if ((error = agent_run_hooks_new(&r->hooks, &ro)) < 0)
		return error;
	int max_minutes = r->cfg->optimize_max_minutes, max_runs = r->cfg->optimize_max_benchmark_runs;
	int max_calls = max_runs * AGENT_RUN_TOOL_CALLS_PER_BENCHMARK_RUN;
	if ((error = measure_repo_config_diff_policy(&r->policy, r->cfg)) < 0)
		return error;
	agent_tools_options to = AGENT_TOOLS_OPTIONS_INIT;
	to.policy = r->policy;
	to.workspace = r->workspace;
	to.repo_path = r->repo_path;
	to.base_commit = r->sha;
	agent_run_hooks_fill(&to.hooks, r->hooks);
	to.max_wall_ms = (int64_t)max_minutes * 60000;
	to.max_tool_calls = max_calls;
	to.max_benchmark_runs = max_runs;
	agent_tools *tools = NULL;
	if ((error = agent_tools_new(&tools, &to)) < 0)
		return error;
	pthread_mutex_lock(&r->lock);
	r->tools = tools;
	if (r->cancel)
		agent_tools_end(tools, "cancelled");
	pthread_mutex_unlock(&r->lock);

	agent_task_info ti = { .run_id = r->id, .repository = r->repository, .base_sha = r->sha, .config = r->cfg,
			       .baseline = r->baseline, .focus = r->focus, .max_minutes = max_minutes,
			       .max_benchmark_runs = max_runs, .max_tool_calls = max_calls, .top_functions = 10,
			       .managed = task_out != NULL };
	if (task_out)
		return agent_task_render(task_out, &ti);
	return agent_task_write(r->task, &ti);
}

/* What the command must not see: perfbot's state and secrets (the
 * database's own files too when it lives outside DATA_DIR). */
typedef struct hidden_paths {
	const char *list[8]; /* NULL-terminated */
	char dotenv[PATH_MAX + 8], wal[PATH_MAX + 8], shm[PATH_MAX + 8];
} hidden_paths;

static void hidden_paths_init(hidden_paths *h, const base_config *cfg)
{
	char cwd[PATH_MAX];
	const char *db = cfg->database_url;
	if (db && strncmp(db, "sqlite:", 7) == 0)
		db += 7;
	size_t n = 0;
	h->list[n++] = cfg->data_dir;
	if (getcwd(cwd, sizeof(cwd))) {
		snprintf(h->dotenv, sizeof(h->dotenv), "%s/.env", cwd);
		h->list[n++] = h->dotenv;
	}
	if (cfg->private_key_path)
		h->list[n++] = cfg->private_key_path;
	if (db && *db) {
		snprintf(h->wal, sizeof(h->wal), "%s-wal", db);
		snprintf(h->shm, sizeof(h->shm), "%s-shm", db);
		h->list[n++] = db;
		h->list[n++] = h->wal;
		h->list[n++] = h->shm;
	}
	h->list[n] = NULL;
}

/* The command, registered with the MCP endpoint for its duration. */
static int run_command(agent_cmd_result *res, agent_run *r)
{
	const base_config *cfg = r->svc->cfg;
	hidden_paths hide;
	hidden_paths_init(&hide, cfg);
	char token[AGENT_TOKEN_LEN + 1];
	int error = agent_mcp_register_run(r->svc->mcp, r->id, r->tools, token);
	if (error < 0)
		return error;
	agent_cmd_options co = AGENT_CMD_OPTIONS_INIT;
	co.command = cfg->agent_command;
	co.mcp_url = r->svc->mcp_url;
	co.token = token;
	co.run_id = r->id;
	co.task_file = r->task;
	co.workdir = r->agent_dir;
	co.hide = hide.list;
	co.wall_ms = (int64_t)r->cfg->optimize_max_minutes * 60000;
	co.grace_ms = AGENT_RUN_GRACE_MS;
	co.cancel = &r->cancel;
	co.tools = r->tools;
	char ids[24];
	snprintf(ids, sizeof(ids), "%" PRId64, r->id);
	base_log(BASE_LOG_INFO, "agent started", "run", ids, "repository", r->repository, NULL);
	error = agent_cmd_run(res, &co);
	memset(token, 0, sizeof(token));
	/* the token dies with the run's activity */
	agent_tools_end(r->tools, res->timed_out ? "the wall time budget is exhausted" : "the agent has exited");
	agent_mcp_unregister_run(r->svc->mcp, r->id);
	return error;
}

/* The command's exit and the tail of its output, for the run's record. */
static void record_agent_info(agent_run *r, const agent_cmd_result *res)
{
	const char *out = res->output ? res->output : "";
	size_t olen = strlen(out);
	const char *tail = olen > AGENT_RUN_OUTPUT_TAIL ? out + olen - AGENT_RUN_OUTPUT_TAIL : out;
	r->agent_info = json_pack("{s:i,s:i,s:b,s:b,s:b,s:I,s:s,s:b}", "exit_code", res->exit_code, "signal",
				  res->term_signal, "timed_out", res->timed_out, "cancelled", res->cancelled, "stopped",
				  res->stopped, "wall_ms", (json_int_t)res->wall_ms, "output", tail, "output_cut",
				  res->output_cut || tail != out);
	if (!r->agent_info) /* output that is not UTF-8 */
		r->agent_info = json_pack("{s:i,s:b,s:I}", "exit_code", res->exit_code, "timed_out", res->timed_out,
					  "wall_ms", (json_int_t)res->wall_ms);
}

/* A submission goes on to verification; without one, why the agent ended
 * decides the outcome. */
static void judge(agent_run *r, const agent_cmd_result *res)
{
	const char *out = res->output ? res->output : "";
	size_t olen = strlen(out);
	char *why = NULL;
	if (agent_tools_submission(r->tools, &r->summary, &r->diff) == 0) {
		/* verified next */
	} else if (r->cancel) {
		agent_run_set_outcome(r, STORE_RUN_CANCELLED, "cancelled");
	} else if (res->timed_out) {
		agent_run_set_outcome(r, STORE_RUN_NO_IMPROVEMENT,
				      "the wall time budget (%d minutes) is exhausted before a change was submitted",
				      r->cfg->optimize_max_minutes);
	} else if (agent_tools_ended(r->tools, &why) && why && strstr(why, "budget")) {
		agent_run_set_outcome(r, STORE_RUN_NO_IMPROVEMENT, "%s before a change was submitted", why);
	} else if (res->exit_code != 0) {
		char tailbuf[600];
		snprintf(tailbuf, sizeof(tailbuf), "%s", olen > 500 ? out + olen - 500 : out);
		agent_run_set_outcome(r, STORE_RUN_FAILED, "the agent exited with %s %d without submitting a change%s%s",
				      res->exit_code < 0 ? "signal" : "status",
				      res->exit_code < 0 ? res->term_signal : res->exit_code, *tailbuf ? ": " : "",
				      tailbuf);
	} else {
		agent_run_set_outcome(r, STORE_RUN_NO_IMPROVEMENT, "the agent ended without submitting a change");
	}
	free(why);
}

int agent_run_backend(agent_run *r)
{
	int error;
	int managed = managed_backend(r);
	if ((error = backend_available(r, managed)) < 0)
		return error;
	if (managed) {
		char *task = NULL;
		if ((error = make_tools(r, &task)) == 0)
			error = r->cancel ? BASE_ECANCELLED : agent_run_managed(r, task);
		free(task);
		return error;
	}
	if ((error = make_tools(r, NULL)) < 0)
		return error;
	if (r->cancel) /* cancelled during the baseline: no agent at all */
		return BASE_ECANCELLED;
	agent_cmd_result res;
	memset(&res, 0, sizeof(res));
	if ((error = run_command(&res, r)) < 0) {
		agent_cmd_result_dispose(&res);
		return error;
	}
	record_agent_info(r, &res);
	r->budgets = agent_tools_usage(r->tools);
	judge(r, &res);
	agent_cmd_result_dispose(&res);
	return 0;
}
