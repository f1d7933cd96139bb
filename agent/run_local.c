/* `perfbot optimize`'s agent run (agent/run_local.h): the commit of a local
 * repository is fetched into DATA_DIR's cache, a run with trigger "cli" is
 * recorded and run to its end on the calling thread by the same pipeline
 * as the "agent.run" job, without GitHub.  The caller's cancel flag stops
 * it like a stored cancel stops a job. */
#include "agent/run_local.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "agent/run_int.h"
#include "base/error.h"

/* The outcome document of run_local.h (owned; NULL when out of memory). */
static json_t *outcome_doc(const agent_run *r)
{
	json_t *doc = json_pack("{s:I,s:s,s:s,s:o,s:s,s:s}", "run", (json_int_t)r->id, "status",
				store_run_state_name(r->state), "reason", r->reason, "benchmarks",
				agent_run_short_table(r->verified), "summary", r->summary ? r->summary : "", "diff",
				r->diff ? r->diff : "");
	if (doc)
		json_object_set_new(doc, "commit", json_string(r->sha));
	if (doc && r->managed) /* the managed backend's session, agent and usage */
		json_object_set(doc, "managed", r->managed);
	return doc;
}

int agent_run_local(json_t **out, const agent_services *svc, const agent_run_local_options *o)
{
	char abs[PATH_MAX];
	*out = NULL;
	if (!o->repo_path || !realpath(o->repo_path, abs))
		return base_error_set(BASE_ENOTFOUND, "repository %s: %s", o->repo_path ? o->repo_path : "(none)",
				      strerror(errno));
	char sha[41];
	measure_checkout_source src = { .data_dir = svc->cfg->data_dir, .local_path = abs };
	int error = measure_checkout_fetch(sha, &src, o->rev ? o->rev : "HEAD");
	if (error < 0)
		return error;
	agent_run_request req = { .repository = abs, .commit = sha, .branch = NULL, .trigger = "cli",
				  .requested_by = getenv("USER"), .benchmarks = o->benchmarks,
				  .nbenchmarks = o->nbenchmarks };
	int64_t id = 0;
	if ((error = agent_run_create(&id, svc, &req, abs)) < 0)
		return error;
	agent_run r;
	if ((error = agent_run_init(&r, svc, id)) < 0) {
		agent_run_dispose(&r);
		return error;
	}
	r.gh = NULL; /* a local repository has no check run and no thread */
	store_run_set_state(svc->store, id, STORE_RUN_RUNNING, NULL);
	r.ext_cancel = o->cancel;
	agent_run_all(&r);
	json_t *doc = outcome_doc(&r);
	agent_run_dispose(&r);
	if (!doc)
		return base_error_set(BASE_ENOMEM, "out of memory");
	*out = doc;
	return 0;
}
