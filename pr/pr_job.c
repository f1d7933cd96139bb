/* Placeholder registration until the pr.open job lands (see pr_job.h). */
#include "pr/pr_job.h"
#include "app/error.h"

int pr_jobs_register(app_workers *w, pr_services *svc)
{
	(void)w;
	(void)svc;
	return 0;
}

int pr_handle_closed_event(pr_services *svc, const json_t *payload)
{
	(void)svc;
	(void)payload;
	return app_error_set(APP_EINVALID, "pull request events are not wired yet");
}
