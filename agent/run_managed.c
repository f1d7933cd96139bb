/* The `managed` backend of an agent run: the agent loop runs on Anthropic's
 * platform (Claude Managed Agents), every tool call runs here, in the run's
 * sandbox, served by the process's one worker (agent/managed_worker.h).
 *
 * A run: the built-in toolset on the run's workspace beside perfbot's
 * tools; POST /v1/sessions with the agent (PERFBOT_MANAGED_AGENT_ID, else
 * the agent `perfbot managed setup` made, found by its definition hash in
 * the agent list and remembered for the process), the self-hosted
 * environment, metadata {run: "<id>"}, the task as the first user message
 * and optimize.max_cost_usd as the session's budget; the session bound to
 * the worker at once; then a wait for the first of: the session's end (the
 * worker's on_end), submit_result (the agent gets a short grace to end its
 * turn), a cancel, the wall budget.  A session that has not ended gets a
 * user.interrupt.  Then the binding is undone (the work item stopped), the
 * session read once more for its usage and archived.
 *
 * What the end means: a submission goes on to verification as with the
 * command backend; end_turn without one and budget_reached are
 * no_improvement; retries exhausted, a terminal error, a terminated session,
 * a lost lease, a stopped item or a worker that could not serve are failed,
 * with the reason.
 *
 * Keys: the API key goes only into the control-plane requests of
 * agent/managed_api.c (which never logs or echoes it); the environment key
 * only to the worker.  Neither is in the task, the sandbox or a message.
 *
 * Threading: agent_managed_backend is shared by every run of the process
 * (start and the agent id under its lock); a run's wait state is shared
 * with the worker's serving thread through its own lock. */
#include "agent/run_int.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/managed_api.h"
#include "agent/managed_setup.h"
#include "agent/managed_worker.h"
#include "agent/tools_builtin.h"
#include "base/error.h"
#include "base/json.h"
#include "base/log.h"
#include "base/metrics.h"

#define MANAGED_POLL_MS 100

struct agent_managed_backend {
	const base_config *cfg;           /* borrowed */
	int max_sessions;
	agent_managed_client *client;     /* owned */
	pthread_mutex_t lock;             /* guards what follows */
	agent_managed_worker *worker;     /* owned; NULL until started */
	store *store;                     /* borrowed or NULL: handovers between replicas */
	char agent_id[128];               /* "" until known */
};

int agent_managed_backend_new(agent_managed_backend **out, const base_config *cfg, int max_sessions)
{
	int error;
	*out = NULL;
	if ((error = base_config_managed_ready(cfg)) < 0)
		return error;
	agent_managed_backend *m = calloc(1, sizeof(*m));
	if (!m)
		return base_error_set(BASE_ENOMEM, "out of memory");
	m->cfg = cfg;
	m->max_sessions = max_sessions > 0 ? max_sessions : 1;
	agent_managed_options o = AGENT_MANAGED_OPTIONS_INIT;
	o.base_url = cfg->anthropic_base_url;
	o.max_retries = 4;
	if ((error = agent_managed_client_new(&m->client, &o)) < 0) {
		free(m);
		return error;
	}
	pthread_mutex_init(&m->lock, NULL);
	*out = m;
	return 0;
}

void agent_managed_backend_set_store(agent_managed_backend *m, store *st)
{
	pthread_mutex_lock(&m->lock);
	m->store = st;
	pthread_mutex_unlock(&m->lock);
}

int agent_managed_backend_start(agent_managed_backend *m)
{
	int error = 0;
	pthread_mutex_lock(&m->lock);
	if (!m->worker) {
		agent_managed_worker_options wo = AGENT_MANAGED_WORKER_OPTIONS_INIT;
		wo.client = m->client;
		wo.environment_id = m->cfg->managed_environment_id;
		wo.environment_key = m->cfg->managed_environment_key;
		wo.max_sessions = m->max_sessions;
		/* a session's item may be polled before its run has bound it (the
		 * poll can answer before the session's creation does): such an item
		 * comes back after this window, not after the default 5 s; it also
		 * hands another replica's items over sooner */
		wo.reclaim_older_than_ms = 2000;
		wo.store = m->store;
		if ((error = agent_managed_worker_start(&m->worker, &wo)) < 0)
			m->worker = NULL;
		else
			base_log(BASE_LOG_INFO, "managed agents worker started", "environment",
				 m->cfg->managed_environment_id, NULL);
	}
	pthread_mutex_unlock(&m->lock);
	return error;
}

void agent_managed_backend_free(agent_managed_backend *m)
{
	if (!m)
		return;
	agent_managed_worker_stop(m->worker);
	agent_managed_client_free(m->client);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* The worker counts into these series as things happen; they are made
 * here, at zero, so that /metrics shows them before anything happened. */
void agent_managed_backend_metrics(agent_managed_backend *m)
{
	static const struct {
		const char *name, *help;
	} series[] = {
		{ "perfbot_managed_polls_total", "Managed Agents work polls" },
		{ "perfbot_managed_sessions_total", "Managed Agents session work items served" },
		{ "perfbot_managed_healthchecks_total", "Managed Agents healthcheck work items answered" },
		{ "perfbot_managed_results_posted_total", "Tool results posted to Managed Agents sessions" },
		{ "perfbot_managed_retries_total", "Managed Agents requests tried again" },
		{ "perfbot_managed_leases_lost_total", "Managed Agents work items whose lease was lost" },
		{ "perfbot_managed_handovers_total", "Managed Agents work items handed to another replica" },
		{ "perfbot_managed_taken_over_total", "Managed Agents work items polled by another replica and served here" },
	};
	static const char *const tools[] = { "bash",	    "read",	   "write",   "edit",	"glob",
					     "grep",	    "run_benchmarks", "get_profile", "compare", "get_diff",
					     "submit_result" };
	if (!m)
		return;
	for (size_t i = 0; i < sizeof(series) / sizeof(series[0]); i++)
		base_metric_counter(series[i].name, series[i].help, NULL);
	for (size_t i = 0; i < sizeof(tools) / sizeof(tools[0]); i++) {
		char labels[64];
		snprintf(labels, sizeof(labels), "tool=\"%s\"", tools[i]);
		base_metric_counter("perfbot_managed_tool_calls_total", "Managed Agents tool uses run, by tool", labels);
	}
}

/* ---- one run ------------------------------------------------------------ */

/* How the session ended, as the worker said. */
typedef struct managed_end_seen {
	int ended;
	agent_managed_end_kind kind;
	char message[512];
} managed_end_seen;

/* What the worker's serving thread tells the run. */
typedef struct managed_wait {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	managed_end_seen end;
	json_t *session;   /* the session at the end, as the worker read it (owned) */
} managed_wait;

static void on_end(void *payload, const agent_managed_end *end)
{
	managed_wait *w = payload;
	pthread_mutex_lock(&w->lock);
	if (!w->end.ended) { /* the first end is the run's */
		w->end.ended = 1;
		w->end.kind = end->kind;
		snprintf(w->end.message, sizeof(w->end.message), "%s", end->message ? end->message : "");
		w->session = end->session ? json_deep_copy(end->session) : NULL;
	}
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/* A control-plane request with the API key; *out (owned, may be NULL) the
 * answer. */
static int api(agent_managed_backend *m, const char *method, const char *path, const json_t *body, json_t **out)
{
	agent_managed_request req = { 0 };
	agent_managed_response resp;
	req.method = method;
	req.path = path;
	req.body = body;
	req.cred = AGENT_MANAGED_API_KEY;
	req.credential = m->cfg->anthropic_api_key;
	int error = agent_managed_send(m->client, &req, &resp);
	if (out && error == 0) {
		*out = resp.body;
		resp.body = NULL;
	}
	agent_managed_response_dispose(&resp);
	return error;
}

/* The agent's id: PERFBOT_MANAGED_AGENT_ID, else the one `perfbot managed
 * setup` made (remembered once found). */
static int agent_id(char *out, size_t cap, agent_managed_backend *m)
{
	if (m->cfg->managed_agent_id && *m->cfg->managed_agent_id) {
		snprintf(out, cap, "%s", m->cfg->managed_agent_id);
		return 0;
	}
	pthread_mutex_lock(&m->lock);
	snprintf(out, cap, "%s", m->agent_id);
	pthread_mutex_unlock(&m->lock);
	if (*out)
		return 0;
	json_t *a = NULL;
	int error = agent_managed_find_agent(&a, m->client, m->cfg->anthropic_api_key);
	if (error < 0)
		return error;
	const char *id = base_json_str(a, "id");
	if (!id || !*id || strlen(id) >= cap) {
		json_decref(a);
		return base_error_set(BASE_ENOTFOUND, "no agent made by perfbot managed setup is found for this API key: "
						      "run perfbot managed setup (or set PERFBOT_MANAGED_AGENT_ID)");
	}
	snprintf(out, cap, "%s", id);
	json_decref(a);
	pthread_mutex_lock(&m->lock);
	snprintf(m->agent_id, sizeof(m->agent_id), "%s", out);
	pthread_mutex_unlock(&m->lock);
	return 0;
}

/* POST /v1/sessions; *sid_out the session's id. */
static int create_session(char *sid, size_t cap, agent_run *r, const char *agent, const char *task)
{
	agent_managed_backend *m = r->svc->managed;
	int error = 0;
	json_t *answer = NULL;
	char run[24], title[300];
	snprintf(run, sizeof(run), "%" PRId64, r->id);
	snprintf(title, sizeof(title), "perfbot run %" PRId64 ": %.200s at %.7s", r->id, r->repository, r->sha);
	json_t *body = json_pack("{s:s,s:s,s:s,s:{s:s},s:[{s:s,s:[{s:s,s:s}]}]}", "agent", agent, "environment_id",
				 m->cfg->managed_environment_id, "title", title, "metadata", "run", run, "initial_events",
				 "type", "user.message", "content", "type", "text", "text", task);
	if (!body)
		return base_error_set(BASE_ENOMEM, "cannot build the session's request (is the task UTF-8?)");
	if (r->cfg->optimize_max_cost_usd > 0) {
		char amount[32];
		snprintf(amount, sizeof(amount), "%lld", (long long)llround(r->cfg->optimize_max_cost_usd * 100.0));
		json_object_set_new(body, "budget",
				    json_pack("{s:s,s:{s:s,s:s}}", "type", "limit", "max_list_cost", "amount", amount,
					      "currency", "USD"));
	}
	if ((error = api(m, "POST", "/v1/sessions", body, &answer)) < 0) {
		char msg[1024];
		snprintf(msg, sizeof(msg), "%s", base_error_last());
		error = base_error_set(error, "creating the agent's session: %s", msg);
		goto done;
	}
	const char *id = base_json_str(answer, "id");
	size_t n = id ? strlen(id) : 0;
	for (size_t i = 0; i < n; i++)
		if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z') || (id[i] >= '0' && id[i] <= '9') ||
		      id[i] == '_' || id[i] == '-'))
			n = 0;
	if (n == 0 || n >= cap) {
		error = base_error_set(BASE_EINVALID, "the new session has no valid id");
		goto done;
	}
	memcpy(sid, id, n + 1);
done:
	json_decref(body);
	json_decref(answer);
	return error;
}

static void post_interrupt(agent_managed_backend *m, const char *sid)
{
	char path[256];
	snprintf(path, sizeof(path), "/v1/sessions/%s/events", sid);
	json_t *body = json_pack("{s:[{s:s}]}", "events", "type", "user.interrupt");
	if (body && api(m, "POST", path, body, NULL) < 0)
		base_log(BASE_LOG_WARN, "cannot interrupt the session", "session", sid, "error", base_error_last(), NULL);
	json_decref(body);
}

static void archive(agent_managed_backend *m, const char *sid)
{
	char path[256];
	snprintf(path, sizeof(path), "/v1/sessions/%s/archive", sid);
	if (api(m, "POST", path, NULL, NULL) < 0)
		base_log(BASE_LOG_WARN, "cannot archive the session", "session", sid, "error", base_error_last(), NULL);
}

/* A list_cost {amount: "<minor units>", currency} in the currency's units,
 * or -1. */
static double cost_units(const json_t *cost)
{
	const json_t *a = json_object_get(cost, "amount");
	if (json_is_number(a))
		return json_number_value(a) / 100.0;
	const char *s = json_string_value(a);
	if (!s || !*s)
		return -1;
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	return errno || *end || v < 0 ? -1 : v / 100.0;
}

/* The run's record of its session: ids, the agent's version, the usage. */
static json_t *session_record(const char *sid, const char *agent, const json_t *session, const char *end,
			      const agent_run *r)
{
	const json_t *u = json_object_get(session, "usage");
	const json_t *cc = json_object_get(u, "cache_creation");
	json_int_t cache_creation = base_json_int(u, "cache_creation_input_tokens") +
				    base_json_int(cc, "ephemeral_1h_input_tokens") +
				    base_json_int(cc, "ephemeral_5m_input_tokens");
	const json_t *cost = json_object_get(u, "list_cost");
	double usd = cost_units(cost);
	const json_t *active = json_object_get(u, "active_seconds");
	if (!active)
		active = json_object_get(json_object_get(session, "stats"), "active_seconds");
	json_t *rec = json_pack("{s:s,s:s,s:s,s:s}", "session_id", sid, "agent_id", agent, "environment_id",
				r->svc->cfg->managed_environment_id, "end", end);
	if (!rec)
		return NULL;
	const json_t *ag = json_object_get(session, "agent");
	if (json_integer_value(json_object_get(ag, "version")))
		json_object_set_new(rec, "agent_version", json_integer(json_integer_value(json_object_get(ag, "version"))));
	if (u) {
		json_object_set_new(rec, "usage",
				    json_pack("{s:I,s:I,s:I,s:I}", "input_tokens", base_json_int(u, "input_tokens"),
					      "output_tokens", base_json_int(u, "output_tokens"), "cache_read_input_tokens",
					      base_json_int(u, "cache_read_input_tokens"), "cache_creation_input_tokens",
					      cache_creation));
	}
	if (json_is_object(cost))
		json_object_set(rec, "list_cost", (json_t *)cost);
	if (usd >= 0)
		json_object_set_new(rec, "list_cost_usd", json_real(usd));
	if (json_is_number(active))
		json_object_set_new(rec, "active_seconds", json_real(json_number_value(active)));
	if (r->cfg->optimize_max_cost_usd > 0)
		json_object_set_new(rec, "max_cost_usd", json_real(r->cfg->optimize_max_cost_usd));
	return rec;
}

/* The outcome of a session that ended without a submission. */
static void judge(agent_run *r, const managed_end_seen *w, int timed_out)
{
	char *why = NULL;
	if (agent_tools_submission(r->tools, &r->summary, &r->diff) == 0) {
		/* verified next */
	} else if (r->cancel) {
		agent_run_set_outcome(r, STORE_RUN_CANCELLED, "cancelled");
	} else if (timed_out) {
		agent_run_set_outcome(r, STORE_RUN_NO_IMPROVEMENT,
				      "the wall time budget (%d minutes) is exhausted before a change was submitted",
				      r->cfg->optimize_max_minutes);
	} else if (!w->ended && agent_tools_ended(r->tools, &why) && why && strstr(why, "budget")) {
		agent_run_set_outcome(r, STORE_RUN_NO_IMPROVEMENT, "%s before a change was submitted", why);
	} else if (!w->ended) {
		agent_run_set_outcome(r, STORE_RUN_FAILED, "the agent's session ended without a word from the worker%s%s",
				      why ? ": " : "", why ? why : "");
	} else {
		const char *msg = w->message;
		switch (w->kind) {
		case AGENT_MANAGED_END_TURN:
			agent_run_set_outcome(r, STORE_RUN_NO_IMPROVEMENT, "the agent ended its turn without submitting a change");
			break;
		case AGENT_MANAGED_END_BUDGET:
			if (r->cfg->optimize_max_cost_usd > 0)
				agent_run_set_outcome(r, STORE_RUN_NO_IMPROVEMENT,
						      "the cost budget (optimize.max_cost_usd: $%.2f) was reached before a "
						      "change was submitted",
						      r->cfg->optimize_max_cost_usd);
			else
				agent_run_set_outcome(r, STORE_RUN_NO_IMPROVEMENT,
						      "the session's budget was reached before a change was submitted");
			break;
		case AGENT_MANAGED_END_RETRIES_EXHAUSTED:
			agent_run_set_outcome(r, STORE_RUN_FAILED, "the agent's session exhausted its retries%s%s",
					      *msg ? ": " : "", msg);
			break;
		case AGENT_MANAGED_END_ERROR:
			agent_run_set_outcome(r, STORE_RUN_FAILED, "the agent's session failed%s%s", *msg ? ": " : "", msg);
			break;
		case AGENT_MANAGED_END_TERMINATED:
			agent_run_set_outcome(r, STORE_RUN_FAILED, "the agent's session was terminated%s%s", *msg ? ": " : "",
					      msg);
			break;
		case AGENT_MANAGED_END_LEASE_LOST:
			agent_run_set_outcome(r, STORE_RUN_FAILED,
					      "the session's work lease was lost (a heartbeat was refused): its tool calls "
					      "are no longer served here");
			break;
		case AGENT_MANAGED_END_STOPPED:
			agent_run_set_outcome(r, STORE_RUN_FAILED, "the session's work item was stopped before a change was "
								   "submitted%s%s",
					      *msg ? ": " : "", msg);
			break;
		case AGENT_MANAGED_END_FAILED:
			agent_run_set_outcome(r, STORE_RUN_FAILED, "the worker could not serve the session%s%s",
					      *msg ? ": " : "", msg);
			break;
		}
	}
	free(why);
}

/* Waits until the session ends, a submission (plus grace), a cancel or the
 * deadline.  *timed_out when the wall budget ran out. */
static void wait_end(agent_run *r, managed_wait *w, int64_t deadline, int *timed_out)
{
	int64_t grace_until = 0;
	*timed_out = 0;
	pthread_mutex_lock(&w->lock);
	while (!w->end.ended) {
		pthread_mutex_unlock(&w->lock);
		int64_t now = agent_run_now_ms(r->svc);
		int stop = 0;
		if (r->cancel) {
			stop = 1;
		} else if (now >= deadline) {
			*timed_out = 1;
			stop = 1;
		} else if (agent_tools_ended(r->tools, NULL)) {
			/* submit_result, a tool budget: the agent may end its turn */
			if (!grace_until)
				grace_until = now + AGENT_RUN_GRACE_MS;
			else if (now >= grace_until)
				stop = 1;
		}
		pthread_mutex_lock(&w->lock);
		if (stop || w->end.ended)
			break;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += MANAGED_POLL_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&w->cond, &w->lock, &ts);
	}
	pthread_mutex_unlock(&w->lock);
}

void agent_run_managed_abandon(agent_run *r, const char *sid)
{
	agent_managed_backend *m = r->svc->managed;
	if (!m) {
		base_log(BASE_LOG_WARN, "the session of a run whose replica stopped cannot be archived here (no managed "
					"settings)", "session", sid, NULL);
		return;
	}
	/* nobody serves its work item any more: the lease ran out with the replica */
	post_interrupt(m, sid);
	archive(m, sid);
}

int agent_run_managed(agent_run *r, const char *task)
{
	agent_managed_backend *m = r->svc->managed;
	agent_builtin *builtin = NULL;
	managed_wait w;
	char agent[128], sid[128] = "", ids[24];
	int error, bound = 0, timed_out = 0;

	memset(&w, 0, sizeof(w));
	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.cond, NULL);
	snprintf(ids, sizeof(ids), "%" PRId64, r->id);

	agent_builtin_options bo = { .tools = r->tools, .sandbox = r->svc->sandbox, .workspace = r->workspace,
				     .limits = MEASURE_SANDBOX_LIMITS_INIT };
	if ((error = agent_managed_backend_start(m)) < 0 || (error = agent_builtin_new(&builtin, &bo)) < 0 ||
	    (error = agent_id(agent, sizeof(agent), m)) < 0 || (error = create_session(sid, sizeof(sid), r, agent, task)) < 0)
		goto done;
	agent_managed_binding b = { .tools = r->tools, .builtin = builtin, .on_end = on_end, .payload = &w };
	if ((error = agent_managed_worker_bind(m->worker, sid, &b)) < 0) {
		post_interrupt(m, sid);
		archive(m, sid);
		goto done;
	}
	bound = 1;
	base_log(BASE_LOG_INFO, "agent session started", "run", ids, "repository", r->repository, "session", sid, NULL);
	json_t *early = json_pack("{s:{s:s,s:s,s:s}}", "managed", "session_id", sid, "agent_id", agent, "environment_id",
				  m->cfg->managed_environment_id);
	if (early)
		store_run_update(r->svc->store, r->id, early);
	json_decref(early);

	int64_t deadline = agent_run_now_ms(r->svc) + (int64_t)r->cfg->optimize_max_minutes * 60000;
	wait_end(r, &w, deadline, &timed_out);

	/* what ended the wait decides the outcome: an end the interrupt or the
	 * unbind causes later does not count */
	managed_end_seen seen;
	pthread_mutex_lock(&w.lock);
	seen = w.end;
	pthread_mutex_unlock(&w.lock);
	if (!seen.ended)
		post_interrupt(m, sid);
	/* calls in flight are killed, later ones refused */
	agent_tools_end(r->tools, r->cancel ? "cancelled"
				  : timed_out ? "the wall time budget is exhausted"
					      : "the agent's session has ended");
	agent_managed_worker_unbind(m->worker, sid);
	bound = 0;

	char path[256];
	json_t *session = NULL;
	snprintf(path, sizeof(path), "/v1/sessions/%s", sid);
	if (api(m, "GET", path, NULL, &session) < 0) {
		base_log(BASE_LOG_WARN, "cannot read the session's usage", "session", sid, "error", base_error_last(), NULL);
		json_decref(session);
		session = w.session ? json_incref(w.session) : NULL;
	}
	archive(m, sid);
	const char *endname = r->cancel	  ? "cancelled"
			      : timed_out ? "wall_time"
			      : seen.ended ? agent_managed_end_name(seen.kind)
					   : "interrupted";
	r->managed = session_record(sid, agent, session, endname, r);
	json_decref(session);
	if (r->managed) {
		json_t *upd = json_pack("{s:O}", "managed", r->managed);
		if (upd)
			store_run_update(r->svc->store, r->id, upd);
		json_decref(upd);
	}
	r->agent_info = json_pack("{s:s,s:s,s:s,s:s}", "backend", "managed", "session_id", sid, "end", endname, "message",
				  seen.message);
	r->budgets = agent_tools_usage(r->tools);
	judge(r, &seen, timed_out);
	base_log(BASE_LOG_INFO, "agent session ended", "run", ids, "session", sid, "end", endname, NULL);
	error = 0;
done:
	if (bound)
		agent_managed_worker_unbind(m->worker, sid);
	agent_builtin_free(builtin);
	json_decref(w.session);
	pthread_cond_destroy(&w.cond);
	pthread_mutex_destroy(&w.lock);
	return error;
}
