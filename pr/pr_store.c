/* pr/ persisted through store/store.h: the "pr.open" job and the handler of
 * `pull_request` closed events.
 *
 * The store holds one pull document per run (store_pull_put): number,
 * branch, state ("open" | "merged" | "closed") and data {commit, url,
 * benchmarks, base, conflicts, merge_commit, branch_deleted}.  The run's own
 * document gets a "pull" key that mirrors it for the dashboard.  These
 * functions add no state of their own; any thread (the store serialises). */
#include "pr/pr.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/error.h"
#include "base/json.h"
#include "base/log.h"

#define MAX_BENCHES 64

static double jnum(const json_t *obj, const char *a, const char *b)
{
	const json_t *v = json_object_get(obj, a);
	if (!json_is_number(v))
		v = json_object_get(obj, b);
	return json_is_number(v) ? json_number_value(v) : -1;
}

static const char *first(const char *a, const char *b)
{
	return a && *a ? a : b;
}

int pr_proposal_from_json(pr_proposal *out, pr_bench_result *benches, size_t nbenches, int64_t run_id,
			  const json_t *run, const json_t *proposal)
{
	memset(out, 0, sizeof(*out));
	if (!json_is_object(run) || !json_is_object(proposal))
		return base_error_set(BASE_EINVALID, "run %" PRId64 " or its proposal is not a JSON object", run_id);
	const json_t *rdata = json_object_get(run, "data");
	out->run_id = run_id;
	out->repository = base_json_str(run, "repository");
	/* The diff was taken against the commit the run checked out. */
	out->base_sha = first(base_json_str(proposal, "base_sha"), first(base_json_str(run, "base_sha"), base_json_str(run, "head_sha")));
	out->base_branch = first(base_json_str(proposal, "base_branch"), base_json_str(run, "branch"));
	out->diff = base_json_str(proposal, "diff");
	out->diff_len = out->diff ? strlen(out->diff) : 0;
	out->summary = base_json_str(proposal, "summary");
	out->test_command = first(base_json_str(proposal, "test_command"), base_json_str(rdata, "test_command"));
	out->approved_by = first(base_json_str(rdata, "approved_by"), base_json_str(proposal, "approved_by"));
	out->approved_via = first(base_json_str(rdata, "approved_via"), base_json_str(proposal, "approved_via"));
	json_int_t thread = json_integer_value(json_object_get(rdata, "thread_number"));
	out->thread_number = thread > 0 && thread < 2147483647 ? (int)thread : 0;
	out->check_run_id = json_integer_value(json_object_get(rdata, "check_run_id"));
	out->fork = json_is_true(json_object_get(proposal, "fork")) || json_is_true(json_object_get(rdata, "fork"));
	out->pushed_sha = base_json_str(rdata, "pr_commit");
	if (!out->repository || !out->base_sha || !out->base_branch)
		return base_error_set(BASE_EINVALID, "run %" PRId64 " lacks repository, base commit or branch", run_id);
	if (!out->diff)
		return base_error_set(BASE_EINVALID, "the proposal of run %" PRId64 " has no diff", run_id);
	const json_t *arr = json_object_get(proposal, "benchmarks");
	size_t i;
	const json_t *b;
	json_array_foreach(arr, i, b) {
		if (out->nbenchmarks >= nbenches)
			break;
		pr_bench_result *r = &benches[out->nbenchmarks];
		r->name = base_json_str(b, "name");
		r->before = jnum(b, "base", "before");
		r->after = jnum(b, "head", "after");
		if (!r->name || r->before < 0 || r->after < 0)
			return base_error_set(BASE_EINVALID, "the proposal of run %" PRId64 " has a malformed benchmark", run_id);
		out->nbenchmarks++;
	}
	if (out->nbenchmarks == 0)
		return base_error_set(BASE_EINVALID, "the proposal of run %" PRId64 " has no benchmark results", run_id);
	out->benchmarks = benches;
	return 0;
}

/* Tells why nothing was opened: in the thread the command came from, and
 * on the run's check run (where the button was pressed; a run started by a
 * push has no thread). */
static void report_refusal(const pr_options *opts, const pr_proposal *p, const char *reason)
{
	base_buf b = BASE_BUF_INIT(4096);
	if (base_buf_printf(&b, "perfbot did not open a pull request for run %" PRId64 ": %s", p->run_id, reason) < 0) {
		base_buf_dispose(&b);
		return;
	}
	if (p->thread_number > 0 &&
	    opts->gh->comment(p->repository, p->thread_number, base_buf_cstr(&b), opts->gh->payload) < 0)
		base_log(BASE_LOG_WARN, "pr: refusal comment failed", "repository", p->repository, NULL);
	if (p->check_run_id > 0 && opts->gh->update_check_run &&
	    opts->gh->update_check_run(p->repository, p->check_run_id, "Pull request not opened", base_buf_cstr(&b),
				       NULL, opts->gh->payload) < 0)
		base_log(BASE_LOG_WARN, "pr: refusal on the check run failed", "repository", p->repository, NULL);
	base_buf_dispose(&b);
}

/* Keeps the commit pr/ is about to push in the run ({"pr_commit": sha}):
 * a retried job knows the branch as its own only by that commit. */
static int record_push(int64_t run_id, const char *commit_sha, void *payload)
{
	store *st = payload;
	json_t *update = json_pack("{s:s}", "pr_commit", commit_sha);
	int error = update ? store_run_update(st, run_id, update) : base_error_set(BASE_ENOMEM, "out of memory");
	json_decref(update);
	return error;
}

static int permanent(int error)
{
	return error == BASE_EINVALID || error == BASE_ETOOBIG || error == BASE_EEXISTS || error == BASE_EFORBIDDEN ||
	       error == BASE_ENOTFOUND;
}

int pr_job_open(pr_open_result *out, store *st, const pr_options *opts, int64_t run_id)
{
	json_t *run = NULL, *proposal = NULL, *data = NULL, *update = NULL;
	pr_bench_result benches[MAX_BENCHES];
	pr_proposal p;
	int error;
	memset(out, 0, sizeof(*out));
	if ((error = store_run_get(st, run_id, &run)) < 0)
		goto done;
	if ((error = store_proposal_get(st, run_id, &proposal)) < 0) {
		if (error == BASE_ENOTFOUND)
			error = base_error_set(BASE_EINVALID, "run %" PRId64 " has no proposal to open", run_id);
		goto done;
	}
	if ((error = pr_proposal_from_json(&p, benches, MAX_BENCHES, run_id, run, proposal)) < 0)
		goto done;
	pr_options with_record = *opts;
	with_record.record_push = record_push;
	with_record.record_payload = st;
	if ((error = pr_open(out, &with_record, &p)) < 0) {
		if (permanent(error)) {
			char reason[1100];
			snprintf(reason, sizeof(reason), "%s", base_error_last());
			update = json_pack("{s:{s:s}}", "pull", "error", reason);
			if (update)
				store_run_update(st, run_id, update);
			report_refusal(opts, &p, reason);
			base_error_set(error, "%s", reason);
		}
		goto done;
	}
	base_buf key = BASE_BUF_INIT(8192);
	for (size_t i = 0; i < p.nbenchmarks; i++)
		if (base_buf_printf(&key, "%s%s", i ? "," : "", p.benchmarks[i].name) < 0)
			break;
	data = json_pack("{s:s, s:s?, s:s, s:s, s:b}", "commit", out->commit_sha, "url", out->html_url, "benchmarks",
			 base_buf_cstr(&key), "base", p.base_branch, "conflicts", out->conflicts);
	base_buf_dispose(&key);
	update = json_pack("{s:{s:i, s:s?, s:s, s:s, s:s}}", "pull", "number", out->number, "url", out->html_url,
			   "branch", out->branch, "commit", out->commit_sha, "state", "open");
	if (!data || !update) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	if ((error = store_pull_put(st, run_id, p.repository, out->number, out->branch, "open", data)) < 0 ||
	    (error = store_run_update(st, run_id, update)) < 0)
		goto done;
	int closed = 0;
	if (opts->gh->list_open_pulls && pr_supersede(&closed, opts->gh, &p, out->number) < 0)
		base_log(BASE_LOG_WARN, "pr: superseding older pull requests failed", "repository", p.repository, "error",
			base_error_last(), NULL);
	error = 0;
done:
	json_decref(run);
	json_decref(proposal);
	json_decref(data);
	json_decref(update);
	return error;
}

int pr_handle_closed(const char **state_out, store *st, const pr_github *gh, const json_t *payload)
{
	pr_closed_event ev;
	json_t *row = NULL, *data = NULL, *update = NULL;
	const char *state = NULL;
	int deleted = 0, error;
	if (state_out)
		*state_out = NULL;
	if ((error = pr_closed_event_parse(&ev, payload)) < 0)
		return error;
	if ((error = store_pull_find_branch(st, ev.repository, ev.branch, &row)) < 0) {
		if (error == BASE_ENOTFOUND)
			error = base_error_set(BASE_ENOTFOUND, "no perfbot pull request for %s in %s", ev.branch,
					      ev.repository);
		goto done;
	}
	json_int_t run_id = json_integer_value(json_object_get(row, "run_id"));
	const json_t *old = json_object_get(row, "data");
	data = json_is_object(old) ? json_deep_copy(old) : json_object();
	if (!data) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	if ((error = pr_closed_apply(&state, &deleted, gh, &ev, base_json_str(data, "commit"))) < 0)
		goto done;
	json_object_set_new(data, "branch_deleted", json_boolean(deleted));
	if (ev.merged)
		json_object_set_new(data, "merge_commit", json_string(ev.merge_commit_sha));
	if ((error = store_pull_put(st, run_id, ev.repository, ev.number, ev.branch, state, data)) < 0)
		goto done;
	update = json_pack("{s:{s:i, s:s?, s:s, s:s?, s:s, s:s?}}", "pull", "number", ev.number, "url", base_json_str(data, "url"),
			   "branch", ev.branch, "commit", base_json_str(data, "commit"), "state", state, "merge_commit",
			   ev.merged ? ev.merge_commit_sha : NULL);
	if (!update || (error = store_run_update(st, run_id, update)) < 0) {
		if (!update)
			error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	if (state_out)
		*state_out = state;
	error = 0;
done:
	json_decref(row);
	json_decref(data);
	json_decref(update);
	return error;
}
