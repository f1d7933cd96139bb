/* Placeholder registration until the agent.run job lands (see services.h). */
#include "agent/services.h"
#include "app/error.h"

int agent_run_queue(int64_t *run_out, const agent_services *svc, const agent_run_request *req)
{
	(void)run_out;
	(void)svc;
	(void)req;
	return app_error_set(APP_EINVALID, "agent runs are not wired yet");
}

int agent_run_approve(const agent_services *svc, int64_t run_id, const char *user, const char *via)
{
	(void)svc;
	(void)run_id;
	(void)user;
	(void)via;
	return app_error_set(APP_EINVALID, "agent runs are not wired yet");
}

int agent_run_cancel(const agent_services *svc, int64_t run_id, const char *user)
{
	(void)svc;
	(void)run_id;
	(void)user;
	return app_error_set(APP_EINVALID, "agent runs are not wired yet");
}

int agent_run_jobs_register(app_workers *w, agent_services *svc)
{
	(void)w;
	(void)svc;
	return 0;
}
