/* An agent run on GitHub, through the agent_github interface: the check
 * run "perfbot optimize" on the base commit (external_id = the run id),
 * created when the commit is known and completed with the outcome, and a
 * comment in the thread that asked for the run.  The ids are kept in the
 * run's document (check_run_id, comment_id); "reported" says both are out.
 *
 * GitHub failing never fails the run: the outcome is in the store already,
 * and a failure here is logged.  Called on the run's thread. */
#include "agent/run_int.h"

#include <inttypes.h>
#include <stdio.h>

#include "base/error.h"
#include "base/log.h"

/* Keeps the check run's id (and the comment's, with_comment) in the run. */
static void record_ids(agent_run *r, int with_comment, int64_t comment_id)
{
	json_t *upd = with_comment
			      ? json_pack("{s:I,s:I}", "check_run_id", (json_int_t)r->check_run_id, "comment_id",
					  (json_int_t)comment_id)
			      : json_pack("{s:I}", "check_run_id", (json_int_t)r->check_run_id);
	if (upd)
		store_run_update(r->svc->store, r->id, upd);
	json_decref(upd);
}

void agent_run_check_start(agent_run *r)
{
	json_t *body = agent_run_report_check_started(r->id, r->sha);
	if (!body)
		return;
	if (r->gh->create_check_run(&r->check_run_id, r->inst, r->repository, body, r->gh->payload) < 0) {
		base_log(BASE_LOG_WARN, "cannot create the optimize check run", "repository", r->repository, "error",
			 base_error_last(), NULL);
		r->check_run_id = 0;
	}
	json_decref(body);
	if (r->check_run_id)
		record_ids(r, 0, 0);
}

/* The check run completed with the outcome: the one created at the start,
 * or a new one when that one is gone (or was never created). */
static void publish_check_run(agent_run *r, const agent_run_report *rep)
{
	json_t *body = agent_run_report_check_done(rep);
	int error = -1;
	if (body && r->check_run_id)
		error = r->gh->update_check_run(r->inst, r->repository, r->check_run_id, body, r->gh->payload);
	if (body && error < 0) {
		r->check_run_id = 0;
		error = r->gh->create_check_run(&r->check_run_id, r->inst, r->repository, body, r->gh->payload);
	}
	if (error < 0)
		base_log(BASE_LOG_WARN, "cannot publish the optimize check run", "repository", r->repository, "error",
			 base_error_last(), NULL);
	json_decref(body);
}

/* The outcome in the thread that asked for the run; *id_out 0 when it failed. */
static void publish_comment(int64_t *id_out, agent_run *r, const agent_run_report *rep)
{
	base_buf c = BASE_BUF_INIT(60000);
	agent_run_report_comment(&c, rep);
	*id_out = 0;
	if (r->gh->create_comment(id_out, r->inst, r->repository, r->thread_number, base_buf_cstr(&c), r->gh->payload) <
	    0) {
		*id_out = 0;
		base_log(BASE_LOG_WARN, "cannot comment the agent run's outcome", "repository", r->repository, "error",
			 base_error_last(), NULL);
	}
	base_buf_dispose(&c);
}

static void publish(agent_run *r)
{
	agent_run_report rep;
	agent_run_report_of(&rep, r);
	publish_check_run(r, &rep);
	if (r->thread_number > 0) {
		int64_t cid = 0;
		publish_comment(&cid, r, &rep);
		record_ids(r, 1, cid);
	} else if (r->check_run_id) {
		record_ids(r, 0, 0);
	}
}

/* The state is recorded before (so that an approval right after the
 * comment is accepted); "reported" tells watchers that the check run and
 * the comment are out. */
void agent_run_surface(agent_run *r)
{
	if (!r->gh)
		return;
	if (r->sha[0])
		publish(r);
	json_t *upd = json_pack("{s:b}", "reported", 1);
	if (upd && store_run_update(r->svc->store, r->id, upd) < 0)
		base_log(BASE_LOG_WARN, "cannot record that the run was reported", "error", base_error_last(), NULL);
	json_decref(upd);
}
