/* How an agent run's outcome reads on GitHub: the check run's title,
 * summary and text, and the comment in the thread that asked for the run.
 *
 * Everything that perfbot did not write itself (the agent's summary, the
 * reason, which can quote the agent or the repository, the diff, the
 * verification log) goes through base/md.h: as escaped text or in a fence
 * that nothing inside can close.  Sizes are capped for GitHub (a check
 * run's text is at most 65535 characters).  Pure: no I/O, no state; any
 * thread. */
#include "agent/run_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "base/json.h"
#include "base/md.h"
#include "base/utf8.h"
#include "measure/bench.h"

void agent_run_report_of(agent_run_report *out, const agent_run *r)
{
	*out = (agent_run_report){ .run_id = r->id, .sha = r->sha,
				   .instructions = r->cfg && r->cfg->metric == MEASURE_METRIC_INSTRUCTIONS,
				   .state = r->state, .reason = r->reason, .verified = r->verified,
				   .summary = r->summary, .diff = r->diff, .budgets = r->budgets };
}

static void md_number(base_buf *b, const json_t *v)
{
	if (json_is_integer(v))
		base_buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else if (json_is_real(v))
		base_buf_printf(b, "%.0f", json_real_value(v));
	else
		base_buf_puts(b, "—");
}

static void md_table(base_buf *b, const agent_run_report *rep)
{
	const json_t *rows = json_object_get(rep->verified, "benchmarks");
	if (json_array_size(rows) == 0)
		return;
	base_buf_printf(b, "| benchmark | before | after | change | verdict |\n|---|---:|---:|---:|---|\n");
	size_t i;
	json_t *row;
	json_array_foreach(rows, i, row)
	{
		char pct[32];
		const char *name = base_json_str(row, "name"), *verdict = base_json_str(row, "verdict");
		measure_bench_row_pct(pct, sizeof(pct), row, "—");
		base_buf_printf(b, "| `%s` | ", name ? name : "?");
		md_number(b, json_object_get(row, "base"));
		base_buf_puts(b, " | ");
		md_number(b, json_object_get(row, "head"));
		base_buf_printf(b, " | %s | %s |\n", pct, verdict ? verdict : "");
	}
	base_buf_printf(b,
			"\n%s, measured by perfbot under CPU simulation on a clean checkout of `%.7s` with the change.\n",
			rep->instructions ? "Instructions" : "Estimated cycles", rep->sha ? rep->sha : "");
}

void agent_run_report_diff(base_buf *b, const char *diff, size_t cap, int64_t run_id)
{
	if (!diff || !*diff)
		return;
	size_t n = strlen(diff);
	size_t shown = n > cap ? cap : n;
	if (n > cap) /* cut at a line end */
		while (shown > 0 && diff[shown - 1] != '\n')
			shown--;
	/* the fence outgrows any backtick run of the diff: a changed line
	 * with ``` in it cannot close it */
	base_buf_puts(b, "\n");
	base_md_fence(b, "diff", diff, shown);
	if (shown < n)
		base_buf_printf(b,
				"\n*The diff is truncated: %zu of %zu bytes shown. `perfbot runs show %" PRId64
				"` prints all of it.*\n",
				shown, n, run_id);
}

void agent_run_report_summary(base_buf *b, const agent_run_report *rep, int for_comment)
{
	const char *reason = rep->reason ? rep->reason : "";
	if (rep->state == STORE_RUN_PROPOSAL) {
		base_buf_printf(b, "%s perfbot run %" PRId64 " found a verified speed-up of `%.7s`.\n\n",
				for_comment ? "###" : "", rep->run_id, rep->sha ? rep->sha : "");
	} else {
		base_buf_printf(b, "%sperfbot run %" PRId64 " ended without a verified improvement (%s): ",
				for_comment ? "### " : "", rep->run_id, store_run_state_name(rep->state));
		/* the reason can quote the agent or the repository */
		base_md_text(b, reason, strlen(reason));
		base_buf_puts(b, ".\n\n");
	}
	md_table(b, rep);
	if (rep->summary && *rep->summary) {
		/* the agent's words, shown as text: no mention, link, image or
		 * markup of its own */
		base_buf_puts(b, "\n**The agent's summary:** ");
		base_md_text(b, rep->summary, base_utf8_cut(rep->summary, strlen(rep->summary), 2000));
		base_buf_puts(b, "\n");
	}
	if (rep->state == STORE_RUN_PROPOSAL)
		base_buf_printf(b,
				"\nTo open a pull request with this change, press **Open pull request** on the "
				"**" AGENT_RUN_CHECK_NAME "** check run or comment `/perfbot apply %" PRId64 "`.\n",
				rep->run_id);
	const json_t *u = rep->budgets;
	if (u)
		base_buf_printf(b, "\nBudgets used: %" PRId64 " tool calls, %" PRId64 " benchmark runs, %" PRId64 " s.\n",
				base_json_int(u, "tool_calls"), base_json_int(u, "benchmark_runs"),
				base_json_int(u, "wall_ms") / 1000);
}

void agent_run_report_title(char *buf, size_t n, const agent_run_report *rep)
{
	if (rep->state != STORE_RUN_PROPOSAL) {
		snprintf(buf, n, "No improvement verified (%s)", store_run_state_name(rep->state));
		return;
	}
	size_t i;
	json_t *row;
	json_array_foreach(json_object_get(rep->verified, "benchmarks"), i, row)
	{
		const char *v = base_json_str(row, "verdict");
		json_t *c = json_object_get(row, "change_pct");
		if (v && !strcmp(v, "improved") && json_is_number(c)) {
			char pct[32];
			measure_bench_format_pct(pct, sizeof(pct), json_number_value(c));
			snprintf(buf, n, "Verified: %.60s %s", base_json_str(row, "name"), pct);
			return;
		}
	}
	snprintf(buf, n, "Verified speed-up");
}

json_t *agent_run_report_check_started(int64_t run_id, const char *sha)
{
	char ext[24];
	snprintf(ext, sizeof(ext), "%" PRId64, run_id);
	return json_pack("{s:s,s:s,s:s,s:s,s:{s:s,s:s}}", "name", AGENT_RUN_CHECK_NAME, "head_sha", sha, "external_id",
			 ext, "status", "in_progress", "output", "title", "An agent is looking for a speed-up", "summary",
			 "perfbot measures the baseline, lets an agent work in the sandbox, then "
			 "verifies its change on a clean checkout.");
}

/* The check run's text: the diff (of a proposal, or of a verified
 * submission) and the verification log. */
static void check_text(base_buf *text, const agent_run_report *rep)
{
	const char *log = base_json_str(rep->verified, "log");
	if (rep->diff && (rep->state == STORE_RUN_PROPOSAL || base_json_str(rep->verified, "status")))
		agent_run_report_diff(text, rep->diff, AGENT_RUN_DIFF_SHOWN, rep->run_id);
	if (log) {
		base_buf_puts(text, "\n<details><summary>Verification log</summary>\n\n");
		base_md_fence(text, NULL, log, base_utf8_cut(log, strlen(log), 8000));
		base_buf_puts(text, "</details>\n");
	}
}

json_t *agent_run_report_check_done(const agent_run_report *rep)
{
	base_buf summary = BASE_BUF_INIT(60000), text = BASE_BUF_INIT(65000);
	char title[200], ext[24];
	agent_run_report_summary(&summary, rep, 0);
	check_text(&text, rep);
	agent_run_report_title(title, sizeof(title), rep);
	snprintf(ext, sizeof(ext), "%" PRId64, rep->run_id);
	const char *conclusion = rep->state == STORE_RUN_FAILED ? "failure" : "neutral";
	json_t *body = json_pack("{s:s,s:s,s:s,s:s,s:s,s:{s:s,s:s,s:s}}", "name", AGENT_RUN_CHECK_NAME, "head_sha",
				 rep->sha, "external_id", ext, "status", "completed", "conclusion", conclusion, "output",
				 "title", title, "summary", base_buf_cstr(&summary), "text", base_buf_cstr(&text));
	/* only a proposal offers the button; an empty list removes an old one */
	if (body && rep->state == STORE_RUN_PROPOSAL)
		json_object_set_new(body, "actions",
				    json_pack("[{s:s,s:s,s:s}]", "label", "Open pull request", "description",
					      "Push a branch and open a pull request", "identifier", "open-pr"));
	else if (body)
		json_object_set_new(body, "actions", json_array());
	base_buf_dispose(&summary);
	base_buf_dispose(&text);
	return body;
}

void agent_run_report_comment(base_buf *b, const agent_run_report *rep)
{
	agent_run_report_summary(b, rep, 1);
	if (rep->state == STORE_RUN_PROPOSAL)
		agent_run_report_diff(b, rep->diff, AGENT_RUN_COMMENT_DIFF, rep->run_id);
}
