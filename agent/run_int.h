/* What the files of an agent run share, private to agent/:
 *   run_queue.c     queue, approve, cancel; the "agent.run" job's registration
 *   run_pipeline.c  one run from its job to its end: checkout, baseline,
 *                   the agent step, verification, the record in the store
 *   run_backend.c   the agent step: tools, MCP registration, task file, the
 *                   `command` backend, what its ending means
 *   run_managed.c   the `managed` backend: a Managed Agents session served by
 *                   the process's worker
 *   run_report.c    Markdown and check-run bodies of an outcome (pure)
 *   run_github.c    the check run and the thread comment (agent_github)
 *   run_local.c     the same run on a local repository for the CLI
 *
 * A run's state in the store is the truth for cancellation; its outcome is
 * a store_run_state (STORE_RUN_UNKNOWN until decided) with a reason. */
#ifndef AGENT_RUN_INT_H
#define AGENT_RUN_INT_H

#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/services.h"
#include "agent/tools.h"
#include "agent/tools_run.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/diff_policy.h"
#include "measure/checkout.h"
#include "measure/repo_config.h"
#include "measure/run_watch.h"
#include "store/store.h"
#include "store/worker.h"

#define AGENT_RUN_JOB_KIND "agent.run"
#define AGENT_RUN_CHECK_NAME "perfbot optimize"
#define AGENT_RUN_WATCH_MS 250      /* how often a running run looks for a cancel */
#define AGENT_RUN_GRACE_MS 15000    /* after the tools ended, before the agent is killed */
#define AGENT_RUN_OUTPUT_TAIL 16384 /* bytes of the agent's output kept in the run */
#define AGENT_RUN_DIFF_SHOWN 50000  /* bytes of diff in a check run (GitHub caps text at 65535) */
#define AGENT_RUN_COMMENT_DIFF 20000 /* bytes of diff in a comment */

/* One run while a job (or the CLI) works on it.  Owned by that thread; the
 * watcher thread touches only cancel, the flags beside it and tools, under
 * lock. */
typedef struct agent_run {
	const agent_services *svc;
	const agent_github *gh;        /* NULL: no GitHub for this run */
	agent_github gh_adapter;       /* gh's storage when it is the adapter over svc->gh */
	int64_t id;
	json_t *row;                   /* the run as stored at the start */
	const char *repository;        /* owner/name, or the local path */
	const char *local_path;
	int64_t inst;
	int thread_number;
	char sha[41];
	measure_checkout_source src;
	char repo_path[PATH_MAX];      /* the git repository holding sha */
	measure_repo_config *cfg;
	base_diff_policy *policy;      /* of cfg, for the agent's write tools */
	char *workspace, *fresh, *rundir;
	char cg[PATH_MAX], agent_dir[PATH_MAX], task[PATH_MAX];
	json_t *baseline;
	agent_run_hooks *hooks;
	agent_tools *tools;
	const char **focus;            /* NULL-terminated, borrowed from row */
	int64_t check_run_id;

	pthread_mutex_t lock;          /* guards tools and cancel against the watcher */
	measure_run_watch *watch;
	atomic_int cancel;             /* read by the sandbox and the agent supervisor */
	const atomic_int *ext_cancel;
	const atomic_int *stopping;
	int cancelled_in_store;
	int interrupted;

	/* the outcome */
	store_run_state state;         /* STORE_RUN_UNKNOWN until decided */
	char reason[1024];
	json_t *verified;              /* agent_verify's document */
	char *summary, *diff;
	json_t *budgets;
	json_t *agent_info;            /* {exit_code, timed_out, output}, or {backend: "managed", end} */
	json_t *managed;               /* the managed backend's record: session, agent, usage (or NULL) */
	int64_t t_start, t_baseline, t_agent, t_verify, t_end; /* ms */
} agent_run;

/* What a report shows of a run; everything borrowed. */
typedef struct agent_run_report {
	int64_t run_id;
	const char *sha;               /* the base commit */
	int instructions;              /* the metric is instructions, else estimated cycles */
	store_run_state state;
	const char *reason;
	const json_t *verified;        /* verification's document; may be NULL */
	const char *summary;           /* the agent's words; may be NULL */
	const char *diff;              /* may be NULL */
	const json_t *budgets;         /* may be NULL */
} agent_run_report;

/* ---- run_queue.c --------------------------------------------------------- */

/* Records a run of req (kind agent, state queued) without a job; local_path
 * (may be NULL) marks a CLI run on a local repository.  *out its id. */
int agent_run_create(int64_t *out, const agent_services *svc, const agent_run_request *req, const char *local_path);

/* ---- run_pipeline.c ------------------------------------------------------ */

/* Reads run id into r (zeroed first); agent_run_dispose r even on failure. */
int agent_run_init(agent_run *r, const agent_services *svc, int64_t id);
void agent_run_dispose(agent_run *r);
/* Runs r to its end, records it and reports it on GitHub. */
void agent_run_all(agent_run *r);
/* The "agent.run" job (payload {"run_id": N}). */
int agent_run_job(store_job_ctx *ctx, void *payload);

void agent_run_set_outcome(agent_run *r, store_run_state state, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The {"name","base","head","change_pct"} rows of the verification (owned). */
json_t *agent_run_short_table(const json_t *verified);

/* ---- run_backend.c ------------------------------------------------------- */

/* The agent's part: tools with the configuration's budgets, registration
 * with the MCP endpoint, the task file, the backend.  Leaves r->summary and
 * r->diff for verification, or sets the outcome (no submission). */
int agent_run_backend(agent_run *r);

/* ---- run_managed.c ------------------------------------------------------- */

/* The `managed` backend's agent step, once the tools are made: a session
 * with the task text (borrowed) served by the process's worker, until its
 * end, a submission, a cancel or the wall budget.  Leaves a submission or
 * sets the outcome, like the command backend; r->managed and the run's
 * "managed" record hold the session's figures. */
int agent_run_managed(agent_run *r, const char *task);
/* A managed run whose replica stopped while it ran (its job was claimed
 * again): its session sid is interrupted and archived (a warning when that
 * fails, or when this process has no managed backend); no second session
 * is started. */
void agent_run_managed_abandon(agent_run *r, const char *sid);

/* ---- run_report.c -------------------------------------------------------- */

void agent_run_report_of(agent_run_report *out, const agent_run *r);
/* The check run's title. */
void agent_run_report_title(char *buf, size_t n, const agent_run_report *rep);
/* The outcome in Markdown: for the check run's summary (for_comment 0) or
 * as the thread comment's opening (1). */
void agent_run_report_summary(base_buf *b, const agent_run_report *rep, int for_comment);
/* The diff in a fence that nothing in it can close, cut at a line end
 * after cap bytes with a note. */
void agent_run_report_diff(base_buf *b, const char *diff, size_t cap, int64_t run_id);
/* The body of the check run while the run works / once it ended (owned;
 * NULL when out of memory). */
json_t *agent_run_report_check_started(int64_t run_id, const char *sha);
json_t *agent_run_report_check_done(const agent_run_report *rep);
/* The thread comment (summary, and the diff of a proposal). */
void agent_run_report_comment(base_buf *b, const agent_run_report *rep);

/* ---- run_github.c -------------------------------------------------------- */

/* Creates the run's check run (in progress) on r->sha; a failure is logged. */
void agent_run_check_start(agent_run *r);
/* Publishes the ended run on GitHub (check run, comment) and marks it
 * reported; nothing without GitHub. */
void agent_run_surface(agent_run *r);

/* ---- time ---------------------------------------------------------------- */

static inline const base_clock *agent_run_clock(const agent_services *svc)
{
	return svc->clock ? svc->clock : base_clock_system();
}

static inline int64_t agent_run_now_ms(const agent_services *svc)
{
	const base_clock *c = agent_run_clock(svc);
	return c->wall_ms(c->payload);
}

#endif
