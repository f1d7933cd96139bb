/* The worker of perfbot's self-hosted Managed Agents environment
 * (reference/managed-agents.md, "The worker loop"): one poller per process
 * that takes the environment's work items and serves each session item on a
 * thread of its own, running the session's tool uses in the sandbox of the
 * run the session belongs to.  Nothing reaches perfbot from outside: the
 * worker polls.
 *
 * A run binds its session (agent_managed_worker_bind) before or right after
 * creating it; a work item whose session is bound here is acked,
 * heartbeated (first NO_HEARTBEAT, then the last_heartbeat echoed, every
 * max(1 s, min(ttl/2, 30 s))) and served: GET the session, open its event
 * stream, list the history and answer every tool use not yet answered,
 * exactly once (agent.tool_use: the built-in toolset, agent/tools_builtin.h;
 * agent.custom_tool_use: perfbot's tools, agent/tools.h), then follow the
 * stream, reconnecting and listing again after a drop.  `deny` is never run;
 * `ask` waits for a user.tool_confirmation that allows it.  Results are
 * posted with retries while the lease lasts.  A 412 on a heartbeat is a lost
 * lease: serving stops at once, stop is not called, and the binding hears
 * AGENT_MANAGED_END_LEASE_LOST.  An item whose session is not bound here
 * (another replica's run) is not acked: with a store it is recorded there
 * (store_handover_put) and the replica whose run bound the session claims
 * it (on bind, and every 250 ms) and serves it as if it had
 * polled it, well before the reclaim window; without one, or when nobody
 * claims it, the service hands it to another worker after the reclaim
 * window.  Healthcheck items are acked, heartbeated and stopped.
 *
 * Threading: start/stop from the owner's thread; bind/unbind/interrupt from
 * any thread.  The binding's on_end is called from a serving thread, once
 * per session end seen (a session may come back as a new item later). */
#ifndef AGENT_MANAGED_WORKER_H
#define AGENT_MANAGED_WORKER_H

#include <jansson.h>
#include <stdint.h>

#include "agent/managed_api.h"
#include "agent/tools.h"
#include "agent/tools_builtin.h"
#include "base/clock.h"
#include "store/store.h"

typedef struct agent_managed_worker agent_managed_worker;

typedef struct agent_managed_worker_options {
	agent_managed_client *client;  /* borrowed, outlives the worker */
	const char *environment_id;    /* copied */
	const char *environment_key;   /* copied, wiped on free; never logged */
	const char *worker_id;         /* Anthropic-Worker-ID; NULL: "perfbot-<host>-<pid>-<random>" */
	int max_sessions;              /* sessions served at once (WORKERS); default 1 */
	long block_ms;                 /* poll's block_ms, 1..999 (default 999) */
	long reclaim_older_than_ms;    /* poll's reclaim window (default 5000) */
	const base_clock *clock;       /* borrowed; NULL: the system clock (sleeps, heartbeats) */
	store *store;                  /* borrowed or NULL: the store shared by the replicas, through
					* which items of sessions bound elsewhere are handed over */
} agent_managed_worker_options;

#define AGENT_MANAGED_WORKER_OPTIONS_INIT { NULL, NULL, NULL, NULL, 1, 999, 5000, NULL, NULL }

/* Why a session's serving ended. */
typedef enum agent_managed_end_kind {
	AGENT_MANAGED_END_TURN,              /* idle, end_turn */
	AGENT_MANAGED_END_BUDGET,            /* idle, budget_reached */
	AGENT_MANAGED_END_RETRIES_EXHAUSTED, /* idle, retries_exhausted */
	AGENT_MANAGED_END_ERROR,             /* session.error with retry_status terminal/exhausted */
	AGENT_MANAGED_END_TERMINATED,        /* session.status_terminated / session.deleted */
	AGENT_MANAGED_END_LEASE_LOST,        /* a heartbeat answered 412 */
	AGENT_MANAGED_END_STOPPED,           /* the item was stopped (state stopping/stopped, unbind,
					      * interrupt, worker stop) */
	AGENT_MANAGED_END_FAILED             /* the worker could not serve (errors past retries) */
} agent_managed_end_kind;

/* The end's name as the run records it ("end_turn", "budget_reached",
 * "retries_exhausted", "error", "terminated", "lease_lost", "stopped",
 * "failed"). */
const char *agent_managed_end_name(agent_managed_end_kind kind);

typedef struct agent_managed_end {
	agent_managed_end_kind kind;
	const char *message;       /* borrowed for the call: the error's text or "" */
	const json_t *session;     /* borrowed for the call: GET /v1/sessions/{id} at the end
				    * (usage, agent version), or NULL when it could not be read */
} agent_managed_end;

/* What a run lends the worker while its session lives (all borrowed until
 * unbind returns). */
typedef struct agent_managed_binding {
	agent_tools *tools;        /* perfbot's tools: the custom tool uses */
	agent_builtin *builtin;    /* the built-in toolset */
	void (*on_end)(void *payload, const agent_managed_end *end);
	void *payload;
} agent_managed_binding;

/* Starts the poller thread. */
int agent_managed_worker_start(agent_managed_worker **out, const agent_managed_worker_options *opts);
/* Stops polling, ends every session served (as AGENT_MANAGED_END_STOPPED:
 * their items stopped), joins the threads and frees.  NULL is a no-op. */
void agent_managed_worker_stop(agent_managed_worker *w);

/* Serves the work items of session_id (copied) with b until unbind.
 * BASE_EEXISTS when the session is bound already. */
int agent_managed_worker_bind(agent_managed_worker *w, const char *session_id, const agent_managed_binding *b);
/* Ends the serving of session_id (its item stopped with force) and waits
 * until no thread uses the binding any more. */
void agent_managed_worker_unbind(agent_managed_worker *w, const char *session_id);

/* Counters for /metrics and tests. */
typedef struct agent_managed_worker_stats {
	long polls, items, healthchecks, sessions_served, tool_calls, results_posted, retries, leases_lost,
		items_left,   /* items not acked: their session is not bound here */
		handed_over,  /* of those, recorded in the store for the replica serving the session */
		taken_over;   /* items claimed from the store (polled by another worker) and served */
} agent_managed_worker_stats;
void agent_managed_worker_stats_get(agent_managed_worker *w, agent_managed_worker_stats *out);

#endif
