/* Placeholder registration until the bench.run job lands (see services.h). */
#include "agent/services.h"
#include "app/error.h"

int agent_bench_queue_push(int64_t *run_out, const agent_services *svc, const agent_bench_push *push)
{
	(void)run_out;
	(void)svc;
	(void)push;
	return app_error_set(APP_EINVALID, "bench runs are not wired yet");
}

int agent_bench_queue_pull(int64_t *run_out, const agent_services *svc, const agent_bench_pull *pull)
{
	(void)run_out;
	(void)svc;
	(void)pull;
	return app_error_set(APP_EINVALID, "bench runs are not wired yet");
}

int agent_bench_jobs_register(app_workers *w, agent_services *svc)
{
	(void)w;
	(void)svc;
	return 0;
}
