/* The self-hosted environment's worker (see managed_worker.h and
 * reference/managed-agents.md, "The worker loop").
 *
 * One poller thread takes work items, and stops taking them while
 * max_sessions are served.  A session item whose session is bound here gets
 * a thread of its own (the serving thread) and, once acked and heartbeated,
 * a heartbeat thread; the serving thread runs a stream reader thread per
 * connection to the session's event stream, whose events it takes from a
 * queue, and lists the history after each (re)connection and again a moment
 * later, so that no event is lost between the listing and the stream.  Tool
 * uses run on the serving thread, one at a time, in the order the session
 * gave them.  An item of a session not bound here is not acked.  With a
 * store shared by the replicas it is recorded there (its secret too, until
 * claimed or expired), and the handover thread of every worker claims the
 * rows of the sessions bound in its process (at once on a bind, else every
 * HANDOVER_CHECK_MS): the claim is atomic, so exactly one worker acks and
 * serves the item, the one whose run holds the workspace.  A row not
 * claimed expires before the reclaim window, and the service offers the
 * item again.  Without a store (or when recording fails) the item waits a
 * moment for a bind (a run binds right after creating its session, and the
 * poll may be faster), then is left to another worker.
 *
 * Exactly once: each binding keeps the tool uses answered (a result in the
 * history, our own result, a claim while one runs, or a result computed but
 * not yet posted, which is posted again rather than the tool run again), so
 * a tool use seen on the stream and in the history, or by two items of one
 * session, is run and answered once.
 *
 * Leases: a 412 on a heartbeat (or no heartbeat accepted within the TTL)
 * means another worker may hold the item: serving stops (after the tool call
 * in flight, if any, returns), nothing is posted any more and stop is not
 * called.  A heartbeat answering stopping/stopped winds the item down.
 *
 * Threading and locks: w->mu guards the bindings, the item lists, the
 * counters and each binding's answered set; an item's heartbeat fields have
 * their own lock and its event queue another.  No lock is held across a
 * request, a tool call or on_end.  The environment key and the sessions
 * tokens go only into request headers; they are wiped when freed. */
#include "agent/managed_worker.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "base/error.h"
#include "base/json.h"
#include "base/log.h"
#include "base/metrics.h"

#define ID_MAX 128             /* ids put into paths: [A-Za-z0-9_-]{1,128} */
#define NAP_SLICE_MS 50        /* naps check their flag this often (clock time) */
#define RELIST_FIRST_MS 2000   /* the history is listed again this long after a stream opened, */
#define RELIST_MAX_MS 60000    /* then after twice as long each time, up to this */
#define QUEUE_CAP 10000        /* events waiting on the serving thread */
#define HISTORY_PAGES_MAX 200  /* pages of 1000 events */
#define DEFAULT_TTL_S 90
#define HOLD_MS 2000           /* an item of a session not bound (yet) waits this long for its bind */
#define HELD_MAX 64
#define HANDOVER_CHECK_MS 250  /* the store is asked this often for items of the sessions bound here */

/* A session bound by a run. */
typedef struct binding_rec {
	struct binding_rec *next;
	char *session_id;          /* owned */
	agent_managed_binding b;   /* borrowed pointers, until unbind returns */
	int users;                 /* item threads serving with it */
	int unbinding;
	int orphan;                /* unbound from its own on_end: the last user frees it */
	json_t *answered;          /* owned: tool use id -> true (answered), false (being run) or the result
				    * event not yet posted */
} binding_rec;

/* One work item taken from the poll. */
typedef struct item {
	struct item *next;
	agent_managed_worker *w;
	char work_id[ID_MAX + 1];
	char session_id[ID_MAX + 1];
	int healthcheck;
	char *token;               /* owned, wiped: the sessions token */
	char *base_url;            /* owned or NULL: the secret's api_base_url */
	binding_rec *bind;         /* NULL for a healthcheck */
	pthread_t thread;
	int finished;              /* under w->mu: the thread is over, join it */
	int64_t hold_until;        /* clock mono: a held item's end of waiting for its bind */

	atomic_int stop;           /* serving ends, whatever the reason */
	atomic_int lease_lost;
	atomic_int wind_down;      /* a heartbeat answered stopping/stopped */
	atomic_int stop_asked;     /* unbind or worker stop */
	atomic_int stream_stop;    /* ends the current stream */

	pthread_t hb_thread;
	int hb_started;
	atomic_int hb_quit;
	pthread_mutex_t hb_mu;     /* guards last_hb, ttl_s, hb_ok_ms */
	char last_hb[128];         /* "" before the first heartbeat */
	long ttl_s;
	int64_t hb_ok_ms;          /* clock mono of the last accepted heartbeat */

	pthread_mutex_t q_mu;      /* guards the stream fields below */
	pthread_cond_t q_cond;
	json_t *queue;             /* owned: events from the stream not yet handled */
	int stream_done;
	int stream_code;
	long stream_status;
	unsigned long stream_events;
	char stream_msg[256];
} item;

struct agent_managed_worker {
	agent_managed_client *client;   /* borrowed */
	char *environment_id;           /* owned */
	char *environment_key;          /* owned, wiped */
	char *worker_id;                /* owned */
	int max_sessions;
	long block_ms, reclaim_ms;
	const base_clock *clock;        /* borrowed */
	store *store;                   /* borrowed or NULL: handovers between replicas */

	pthread_mutex_t mu;
	pthread_cond_t cond;            /* a binding's users or an item finished */
	binding_rec *bindings;
	item *items;
	item *held;                     /* session items polled before their session was bound */
	int held_count;
	int sessions_active;
	int polling_stopped;            /* a fatal answer to the poll */
	json_t *left_logged;            /* owned: sessions whose items were left, logged once */
	agent_managed_worker_stats st;

	atomic_int stopping;
	atomic_int wake;                /* a bind: the pause after an empty poll ends */
	pthread_t poller;
	int poller_started;
	pthread_t handover;             /* claims items handed over through the store */
	int handover_started;
	int handover_wake;              /* under mu: a bind, check the store now */
	pthread_cond_t handover_cond;   /* with mu */
};

/* The item a serving thread serves: unbind called from its own on_end must
 * not wait for itself. */
static _Thread_local item *tl_item;

/* ---- small helpers --------------------------------------------------------- */

static char *dup_str(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void wipe_free(char *s)
{
	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

static int valid_id(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
			return 0;
	return 1;
}

static double jitter(void)
{
	unsigned int r = 0;
	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		r = (unsigned int)time(NULL) ^ (unsigned int)getpid();
	return (double)(r % 10000u) / 10000.0;
}

static int64_t now_ms(const agent_managed_worker *w)
{
	return w->clock->mono_ms(w->clock->payload);
}

static int raised(const atomic_int *a, const atomic_int *b)
{
	return (a && atomic_load(a)) || (b && atomic_load(b));
}

/* Sleeps ms of clock time in slices, returning early once *a or *b (either
 * may be NULL) is set.  1 when cut short. */
static int nap(agent_managed_worker *w, int64_t ms, const atomic_int *a, const atomic_int *b)
{
	while (ms > 0) {
		if (raised(a, b))
			return 1;
		int64_t slice = ms < NAP_SLICE_MS ? ms : NAP_SLICE_MS;
		w->clock->sleep_ms(w->clock->payload, slice);
		ms -= slice;
	}
	return raised(a, b);
}

/* Percent-encodes s (a query value) into out; "" when it does not fit. */
static void query_escape(char *out, size_t cap, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
			if (o + 1 >= cap)
				goto full;
			out[o++] = (char)ch;
		} else {
			if (o + 3 >= cap)
				goto full;
			out[o++] = '%';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 15];
		}
	}
	out[o] = '\0';
	return;
full:
	out[0] = '\0';
}

static void count(agent_managed_worker *w, long *field, long n)
{
	pthread_mutex_lock(&w->mu);
	*field += n;
	pthread_mutex_unlock(&w->mu);
}

static void metric(const char *name, const char *help, const char *labels, long n)
{
	if (n > 0)
		base_metric_count(name, help, labels, (double)n);
}

static void count_retries(agent_managed_worker *w, long n)
{
	if (n <= 0)
		return;
	count(w, &w->st.retries, n);
	metric("perfbot_managed_retries_total", "Managed Agents requests tried again", NULL, n);
}

/* A request about an item: its sessions token and base URL.  Retries made
 * by the client are counted. */
static int item_send(item *it, const char *method, const char *path, const json_t *body, agent_managed_response *resp)
{
	agent_managed_request rq = { 0 };
	rq.method = method;
	rq.path = path;
	rq.body = body;
	rq.cred = AGENT_MANAGED_SESSIONS_TOKEN;
	rq.credential = it->token;
	rq.worker_id = it->w->worker_id;
	rq.base_url = it->base_url;
	int error = agent_managed_send(it->w->client, &rq, resp);
	count_retries(it->w, resp->attempts - 1);
	return error;
}

/* ---- heartbeats ------------------------------------------------------------- */

enum { HB_OK = 0, HB_LOST = 1, HB_WIND_DOWN = 2 };

/* One heartbeat: HB_OK, HB_LOST (412), HB_WIND_DOWN (state stopping or
 * stopped) or a negative code. */
static int heartbeat_once(item *it)
{
	agent_managed_worker *w = it->w;
	char path[768], expected[400], last[128];
	agent_managed_response resp;

	pthread_mutex_lock(&it->hb_mu);
	snprintf(last, sizeof(last), "%s", it->last_hb[0] ? it->last_hb : "NO_HEARTBEAT");
	pthread_mutex_unlock(&it->hb_mu);
	query_escape(expected, sizeof(expected), last);
	snprintf(path, sizeof(path), "/v1/environments/%s/work/%s/heartbeat?expected_last_heartbeat=%s", w->environment_id,
		 it->work_id, expected);
	int error = item_send(it, "POST", path, NULL, &resp);
	if (error < 0) {
		if (resp.status == 412)
			error = HB_LOST;
		agent_managed_response_dispose(&resp);
		return error;
	}
	const char *lh = base_json_str(resp.body, "last_heartbeat");
	const char *state = base_json_str(resp.body, "state");
	int64_t ttl = base_json_int(resp.body, "ttl_seconds");
	pthread_mutex_lock(&it->hb_mu);
	if (lh && strlen(lh) < sizeof(it->last_hb))
		snprintf(it->last_hb, sizeof(it->last_hb), "%s", lh);
	if (ttl > 0)
		it->ttl_s = ttl > 86400 ? 86400 : (long)ttl;
	it->hb_ok_ms = now_ms(w);
	pthread_mutex_unlock(&it->hb_mu);
	int r = HB_OK;
	if (state && (!strcmp(state, "stopping") || !strcmp(state, "stopped")))
		r = HB_WIND_DOWN;
	agent_managed_response_dispose(&resp);
	return r;
}

/* The lease is gone: serving stops, and the item is never stopped by us. */
static void lose_lease(item *it)
{
	if (atomic_exchange(&it->lease_lost, 1))
		return;
	atomic_store(&it->stop, 1);
	count(it->w, &it->w->st.leases_lost, 1);
	metric("perfbot_managed_leases_lost_total", "Managed Agents work items whose lease was lost", NULL, 1);
	base_log(BASE_LOG_WARN, "managed worker: lease lost", "work", it->work_id,
		 "session", it->session_id[0] ? it->session_id : NULL, NULL);
}

static void hb_result(item *it, int r)
{
	if (r == HB_LOST) {
		lose_lease(it);
	} else if (r == HB_WIND_DOWN) {
		atomic_store(&it->wind_down, 1);
		atomic_store(&it->stop, 1);
	}
}

/* Every max(1 s, min(ttl/2, 30 s)); after a failed heartbeat, again in 1 s,
 * until the lease's TTL has passed since the last one accepted. */
static void *hb_main(void *arg)
{
	item *it = arg;
	agent_managed_worker *w = it->w;
	int failed = 0;
	while (!atomic_load(&it->hb_quit) && !atomic_load(&it->stop)) {
		pthread_mutex_lock(&it->hb_mu);
		long ttl = it->ttl_s;
		int64_t ok = it->hb_ok_ms;
		pthread_mutex_unlock(&it->hb_mu);
		int64_t interval = (int64_t)ttl * 1000 / 2;
		if (interval > 30000)
			interval = 30000;
		if (interval < 1000 || failed)
			interval = 1000;
		if (nap(w, interval, &it->hb_quit, &it->stop))
			break;
		if (atomic_load(&it->stop))
			break;
		int r = heartbeat_once(it);
		if (r < 0) {
			failed = 1;
			base_log(BASE_LOG_WARN, "managed worker: heartbeat failed", "work", it->work_id, "error",
				 base_error_last(), NULL);
			if (now_ms(w) - ok > (int64_t)ttl * 1000) {
				lose_lease(it);
				break;
			}
			continue;
		}
		failed = 0;
		hb_result(it, r);
	}
	return NULL;
}

/* ---- the event stream --------------------------------------------------------- */

static int on_stream_event(const char *event, const char *data, size_t data_len, const char *id, void *payload)
{
	item *it = payload;
	(void)id;
	json_t *ev = json_loadb(data, data_len, 0, NULL);
	if (!strcmp(event, "error")) {
		const json_t *e = json_object_get(ev, "error");
		char text[240];
		snprintf(text, sizeof(text), "%s: %s", base_json_str(e, "type") ? base_json_str(e, "type") : "error",
			 base_json_str(e, "message") ? base_json_str(e, "message") : "");
		for (char *p = text; *p; p++)
			if ((unsigned char)*p < 0x20)
				*p = ' ';
		json_decref(ev);
		return base_error_set(BASE_ERETRY, "session %s: the event stream sent an error: %s", it->session_id, text);
	}
	if (!json_is_object(ev) || !base_json_str(ev, "type")) {
		json_decref(ev);
		return 0; /* not an event: skipped */
	}
	pthread_mutex_lock(&it->q_mu);
	int full = json_array_size(it->queue) >= QUEUE_CAP;
	if (!full) {
		json_array_append_new(it->queue, ev);
		it->stream_events++;
		pthread_cond_signal(&it->q_cond);
	}
	pthread_mutex_unlock(&it->q_mu);
	if (full) {
		json_decref(ev);
		return base_error_set(BASE_ETOOBIG, "session %s: more than %d events waiting", it->session_id, QUEUE_CAP);
	}
	return 0;
}

static void *reader_main(void *arg)
{
	item *it = arg;
	char path[256];
	agent_managed_response resp;
	agent_managed_request rq = { 0 };
	agent_managed_stream_options so = { 0 };

	snprintf(path, sizeof(path), "/v1/sessions/%s/events/stream", it->session_id);
	rq.method = "GET";
	rq.path = path;
	rq.cred = AGENT_MANAGED_SESSIONS_TOKEN;
	rq.credential = it->token;
	rq.worker_id = it->w->worker_id;
	rq.base_url = it->base_url;
	so.stop = &it->stream_stop;
	int error = agent_managed_stream(it->w->client, &rq, &so, on_stream_event, it, &resp);
	pthread_mutex_lock(&it->q_mu);
	it->stream_done = 1;
	it->stream_code = error;
	it->stream_status = resp.status;
	snprintf(it->stream_msg, sizeof(it->stream_msg), "%s", error < 0 ? base_error_last() : "");
	pthread_cond_signal(&it->q_cond);
	pthread_mutex_unlock(&it->q_mu);
	agent_managed_response_dispose(&resp);
	return NULL;
}

/* ---- serving a session ------------------------------------------------------- */

typedef struct serve {
	item *it;
	binding_rec *bind;
	json_t *verdicts;      /* owned: tool use id -> "allow" | "deny" */
	json_t *pending_ask;   /* owned: tool use id -> the tool use, until its confirmation */
	json_t *skipped;       /* owned: denied tool use ids already logged */
	int ended;
	agent_managed_end_kind kind;
	char message[512];
} serve;

static void end_with(serve *sv, agent_managed_end_kind kind, const char *message)
{
	if (sv->ended)
		return;
	sv->ended = 1;
	sv->kind = kind;
	snprintf(sv->message, sizeof(sv->message), "%s", message ? message : "");
}

/* Claims tool use id for this thread: NULL when it was unknown (it is now
 * "being run"), else what the answered set holds (a new reference): true
 * (answered), false (run by another item's thread) or the result event
 * not yet posted. */
static json_t *answered_claim(serve *sv, const char *id)
{
	pthread_mutex_lock(&sv->it->w->mu);
	json_t *v = json_incref(json_object_get(sv->bind->answered, id));
	if (!v)
		json_object_set_new(sv->bind->answered, id, json_false());
	pthread_mutex_unlock(&sv->it->w->mu);
	return v;
}

/* Forgets a claim that led to no run (denied, waiting for a confirmation). */
static void answered_unclaim(serve *sv, const char *id)
{
	pthread_mutex_lock(&sv->it->w->mu);
	if (json_is_false(json_object_get(sv->bind->answered, id)))
		json_object_del(sv->bind->answered, id);
	pthread_mutex_unlock(&sv->it->w->mu);
}

/* Records id as answered (value NULL) or its result as computed (borrows). */
static void answered_set(serve *sv, const char *id, json_t *value)
{
	pthread_mutex_lock(&sv->it->w->mu);
	json_object_set_new(sv->bind->answered, id, value ? json_incref(value) : json_true());
	pthread_mutex_unlock(&sv->it->w->mu);
}

static int is_retryable(int error, long status)
{
	return error == BASE_ERETRY || error == BASE_ETIMEOUT || status == 408 || status == 409 || status == 429 ||
	       status >= 500 || status == 0;
}

/* Posts the result event of tool use id (borrows ev), trying again on 429,
 * 5xx and transport failures while the lease lasts. */
static int post_result(serve *sv, const char *id, json_t *ev)
{
	item *it = sv->it;
	agent_managed_worker *w = it->w;
	char path[256];
	int64_t backoff = 1000;
	int error = 0;
	json_t *body = json_pack("{s:[O]}", "events", ev);
	if (!body)
		return base_error_set(BASE_ENOMEM, "out of memory");
	snprintf(path, sizeof(path), "/v1/sessions/%s/events", it->session_id);
	for (int attempt = 0;; attempt++) {
		agent_managed_response resp;
		if (atomic_load(&it->lease_lost) || (attempt > 0 && atomic_load(&it->stop))) {
			error = base_error_set(BASE_ECANCELLED, "session %s: the result of %s was not posted: serving stopped",
					       it->session_id, id);
			break;
		}
		if (attempt > 0)
			count_retries(w, 1);
		error = item_send(it, "POST", path, body, &resp);
		long status = resp.status;
		agent_managed_response_dispose(&resp);
		if (error == 0) {
			answered_set(sv, id, NULL);
			count(w, &w->st.results_posted, 1);
			metric("perfbot_managed_results_posted_total", "Tool results posted to Managed Agents sessions", NULL, 1);
			break;
		}
		if (!is_retryable(error, status)) {
			/* refused for good (answered already, session over): never tried again */
			base_log(BASE_LOG_WARN, "managed worker: result refused", "session", it->session_id, "tool_use", id,
				 "error", base_error_last(), NULL);
			answered_set(sv, id, NULL);
			break;
		}
		base_log(BASE_LOG_INFO, "managed worker: posting a result again", "session", it->session_id, "tool_use", id,
			 "error", base_error_last(), NULL);
		nap(w, backoff, &it->lease_lost, &it->stop);
		backoff = backoff * 2 > 30000 ? 30000 : backoff * 2;
	}
	json_decref(body);
	return error;
}

/* An MCP CallToolResult (borrows) as an event's content (owned). */
static json_t *result_content(const json_t *res)
{
	json_t *out = json_array();
	const json_t *content = json_object_get(res, "content");
	size_t i;
	const json_t *blk;
	json_array_foreach(content, i, blk) {
		const char *type = base_json_str(blk, "type");
		const char *text = base_json_str(blk, "text");
		if (type && !strcmp(type, "text") && text && text[0])
			json_array_append_new(out, json_pack("{s:s,s:s}", "type", "text", "text", text));
	}
	if (json_array_size(out) == 0)
		json_array_append_new(out, json_pack("{s:s,s:s}", "type", "text", "text", "(no output)"));
	return out;
}

static json_t *error_content(const char *text)
{
	return json_pack("[{s:s,s:s}]", "type", "text", "text", text);
}

/* Runs a tool use (borrows ev) and answers it. */
static void run_tool(serve *sv, const json_t *ev, int custom)
{
	item *it = sv->it;
	agent_managed_worker *w = it->w;
	const char *id = base_json_str(ev, "id");
	const char *name = base_json_str(ev, "name");
	const json_t *input = json_object_get(ev, "input");
	json_t *res = NULL, *content = NULL, *out = NULL;
	int is_error = 0, error;
	char labels[200];

	if (!name)
		name = "";
	int known = custom ? agent_tools_exists(name) : agent_builtin_exists(name);
	snprintf(labels, sizeof(labels), "tool=\"%s\"", known && valid_id(name) ? name : "unknown");
	count(w, &w->st.tool_calls, 1);
	metric("perfbot_managed_tool_calls_total", "Managed Agents tool uses run, by tool", labels, 1);
	if (!custom && !sv->bind->b.builtin)
		error = base_error_set(BASE_ENOTFOUND, "the built-in tools are not available in this run");
	else if (!custom)
		error = agent_builtin_call(sv->bind->b.builtin, name, input, &res);
	else if (!sv->bind->b.tools)
		error = base_error_set(BASE_ENOTFOUND, "perfbot's tools are not available in this run");
	else
		error = agent_tool_call(sv->bind->b.tools, name, input, &res);
	if (error == BASE_ENOTFOUND && !res) {
		char text[300];
		if ((custom && !sv->bind->b.tools) || (!custom && !sv->bind->b.builtin))
			snprintf(text, sizeof(text), "The tool \"%.128s\" is not available in this run.", name);
		else
			snprintf(text, sizeof(text), "Unknown tool \"%.128s\".", name);
		content = error_content(text);
		is_error = 1;
	} else if (error < 0) {
		base_log(BASE_LOG_ERROR, "managed worker: tool failed", "session", it->session_id, "tool", labels, "error",
			 base_error_last(), NULL);
		content = error_content("The tool failed inside perfbot (an internal error); try again or another way.");
		is_error = 1;
	} else {
		content = result_content(res);
		is_error = json_is_true(json_object_get(res, "isError"));
	}
	json_decref(res);
	if (custom)
		out = json_pack("{s:s,s:s,s:o,s:b}", "type", "user.custom_tool_result", "custom_tool_use_id", id, "content",
				content, "is_error", is_error);
	else
		out = json_pack("{s:s,s:s,s:o,s:b}", "type", "user.tool_result", "tool_use_id", id, "content", content,
				"is_error", is_error);
	if (!out) {
		answered_unclaim(sv, id);
		return;
	}
	answered_set(sv, id, out);
	if (!atomic_load(&it->lease_lost))
		post_result(sv, id, out);
	json_decref(out);
}

static void tool_use(serve *sv, const json_t *ev, int custom)
{
	item *it = sv->it;
	const char *id = base_json_str(ev, "id");
	if (!valid_id(id))
		return;
	if (!custom) {
		const char *perm = base_json_str(ev, "evaluated_permission");
		if (perm && !strcmp(perm, "deny")) {
			if (!json_object_get(sv->skipped, id)) {
				json_object_set_new(sv->skipped, id, json_true());
				base_log(BASE_LOG_INFO, "managed worker: tool use denied, not run", "session", it->session_id,
					 "tool_use", id, NULL);
			}
			return;
		}
		if (perm && !strcmp(perm, "ask")) {
			const char *verdict = base_json_str(sv->verdicts, id);
			if (!verdict) {
				json_object_set(sv->pending_ask, id, (json_t *)ev);
				return;
			}
			if (strcmp(verdict, "allow"))
				return;
		}
	}
	json_t *done = answered_claim(sv, id);
	if (done) {
		if (json_is_object(done) && !atomic_load(&it->lease_lost))
			post_result(sv, id, done); /* computed before, never posted: not run again */
		json_decref(done);
		return;
	}
	run_tool(sv, ev, custom);
}

static void confirmation(serve *sv, const json_t *ev)
{
	const char *id = base_json_str(ev, "tool_use_id");
	const char *result = base_json_str(ev, "result");
	if (!valid_id(id) || !result)
		return;
	json_object_set_new(sv->verdicts, id, json_string(result));
	json_t *use = json_incref(json_object_get(sv->pending_ask, id));
	if (!use)
		return;
	json_object_del(sv->pending_ask, id);
	if (!strcmp(result, "allow"))
		tool_use(sv, use, 0);
	json_decref(use);
}

/* 1 and *kind when ev ends the session's serving. */
static int ending(const json_t *ev, agent_managed_end_kind *kind, const char **message)
{
	const char *type = base_json_str(ev, "type");
	*message = "";
	if (!type)
		return 0;
	if (!strcmp(type, "session.status_idle")) {
		const char *why = base_json_str(json_object_get(ev, "stop_reason"), "type");
		if (!why)
			return 0;
		if (!strcmp(why, "end_turn"))
			*kind = AGENT_MANAGED_END_TURN;
		else if (!strcmp(why, "budget_reached"))
			*kind = AGENT_MANAGED_END_BUDGET;
		else if (!strcmp(why, "retries_exhausted"))
			*kind = AGENT_MANAGED_END_RETRIES_EXHAUSTED;
		else
			return 0; /* requires_action: the session waits for us */
		return 1;
	}
	if (!strcmp(type, "session.error")) {
		const json_t *e = json_object_get(ev, "error");
		const char *rs = base_json_str(json_object_get(e, "retry_status"), "type");
		if (!rs || (strcmp(rs, "terminal") && strcmp(rs, "exhausted")))
			return 0;
		*kind = AGENT_MANAGED_END_ERROR;
		*message = base_json_str(e, "message") ? base_json_str(e, "message") : "";
		return 1;
	}
	if (!strcmp(type, "session.status_terminated") || !strcmp(type, "session.deleted")) {
		*kind = AGENT_MANAGED_END_TERMINATED;
		return 1;
	}
	return 0;
}

static int is_status_event(const char *type)
{
	return !strncmp(type, "session.status_", 15) || !strcmp(type, "session.error") || !strcmp(type, "session.deleted");
}

/* An event from the stream. */
static void handle_live(serve *sv, const json_t *ev)
{
	const char *type = base_json_str(ev, "type");
	agent_managed_end_kind kind;
	const char *msg;
	if (!strcmp(type, "agent.tool_use"))
		tool_use(sv, ev, 0);
	else if (!strcmp(type, "agent.custom_tool_use"))
		tool_use(sv, ev, 1);
	else if (!strcmp(type, "user.tool_confirmation"))
		confirmation(sv, ev);
	else if (!strcmp(type, "user.tool_result") && valid_id(base_json_str(ev, "tool_use_id")))
		answered_set(sv, base_json_str(ev, "tool_use_id"), NULL);
	else if (!strcmp(type, "user.custom_tool_result") && valid_id(base_json_str(ev, "custom_tool_use_id")))
		answered_set(sv, base_json_str(ev, "custom_tool_use_id"), NULL);
	else if (ending(ev, &kind, &msg))
		end_with(sv, kind, msg);
}

/* Lists the whole history (owned array in *out). */
static int list_history(serve *sv, json_t **out)
{
	item *it = sv->it;
	json_t *all = json_array();
	char *cursor = NULL;
	int error = 0;
	*out = NULL;
	for (int pageno = 0; pageno < HISTORY_PAGES_MAX; pageno++) {
		char path[1024], esc[600] = "";
		agent_managed_response resp;
		if (cursor)
			query_escape(esc, sizeof(esc), cursor);
		snprintf(path, sizeof(path), "/v1/sessions/%s/events?limit=1000%s%s", it->session_id, esc[0] ? "&page=" : "",
			 esc);
		if ((error = item_send(it, "GET", path, NULL, &resp)) < 0) {
			agent_managed_response_dispose(&resp);
			goto done;
		}
		json_array_extend(all, json_object_get(resp.body, "data"));
		free(cursor);
		cursor = dup_str(base_json_str(resp.body, "next_page"));
		agent_managed_response_dispose(&resp);
		if (!cursor || !cursor[0] || strlen(cursor) > 512)
			break;
	}
	*out = all;
	all = NULL;
done:
	free(cursor);
	json_decref(all);
	return error;
}

/* Lists the history and answers what is not answered.  The session ended
 * when its latest status event ends it and no user.message follows (a
 * message after an end starts a new turn).  ends_only: look for the end
 * alone, run nothing (winding down). */
static int handle_history(serve *sv, int ends_only)
{
	json_t *evs = NULL;
	int error = list_history(sv, &evs);
	if (error < 0)
		return error;
	size_t i, n = json_array_size(evs);
	long last_msg = -1, last_interrupt = -1, last_status = -1;
	json_t *ev;
	json_array_foreach(evs, i, ev) {
		const char *type = base_json_str(ev, "type");
		if (!type)
			continue;
		if (!strcmp(type, "user.tool_result") && valid_id(base_json_str(ev, "tool_use_id")))
			answered_set(sv, base_json_str(ev, "tool_use_id"), NULL);
		else if (!strcmp(type, "user.custom_tool_result") && valid_id(base_json_str(ev, "custom_tool_use_id")))
			answered_set(sv, base_json_str(ev, "custom_tool_use_id"), NULL);
		else if (!strcmp(type, "user.tool_confirmation") && valid_id(base_json_str(ev, "tool_use_id")) &&
			 base_json_str(ev, "result"))
			json_object_set_new(sv->verdicts, base_json_str(ev, "tool_use_id"),
					    json_string(base_json_str(ev, "result")));
		else if (!strcmp(type, "user.message"))
			last_msg = (long)i;
		else if (!strcmp(type, "user.interrupt"))
			last_interrupt = (long)i;
		else if (is_status_event(type))
			last_status = (long)i;
	}
	for (i = 0; !ends_only && i < n && !sv->ended && !atomic_load(&sv->it->stop); i++) {
		ev = json_array_get(evs, i);
		const char *type = base_json_str(ev, "type");
		if (!type || (long)i < last_interrupt) /* a tool use before an interrupt was cancelled */
			continue;
		if (!strcmp(type, "agent.tool_use"))
			tool_use(sv, ev, 0);
		else if (!strcmp(type, "agent.custom_tool_use"))
			tool_use(sv, ev, 1);
	}
	agent_managed_end_kind kind;
	const char *msg;
	if (last_status >= 0 && last_status > last_msg && ending(json_array_get(evs, (size_t)last_status), &kind, &msg))
		end_with(sv, kind, msg);
	json_decref(evs);
	return 0;
}

/* Takes the next event from the stream's queue (owned) or NULL after
 * about 50 ms; *done when the stream is over and nothing is queued. */
static json_t *next_event(item *it, int *done)
{
	json_t *ev = NULL;
	pthread_mutex_lock(&it->q_mu);
	if (json_array_size(it->queue) == 0 && !it->stream_done) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&it->q_cond, &it->q_mu, &ts);
	}
	if (json_array_size(it->queue) > 0) {
		ev = json_incref(json_array_get(it->queue, 0));
		json_array_remove(it->queue, 0);
	}
	*done = it->stream_done && !ev;
	pthread_mutex_unlock(&it->q_mu);
	return ev;
}

/* Follows the session until it ends or serving stops. */
static void serve_session(serve *sv)
{
	item *it = sv->it;
	agent_managed_worker *w = it->w;
	int64_t backoff = 1000;

	while (!sv->ended && !atomic_load(&it->stop)) {
		pthread_t reader;
		pthread_mutex_lock(&it->q_mu);
		json_array_clear(it->queue);
		it->stream_done = 0;
		it->stream_code = 0;
		it->stream_status = 0;
		it->stream_events = 0;
		it->stream_msg[0] = '\0';
		pthread_mutex_unlock(&it->q_mu);
		atomic_store(&it->stream_stop, 0);
		if (pthread_create(&reader, NULL, reader_main, it) != 0) {
			end_with(sv, AGENT_MANAGED_END_FAILED, "cannot start a thread");
			break;
		}
		/* The stream shows what happens once it is connected, the history what
		 * happened before it was listed.  An event between the two (when the
		 * stream is connected is not seen from here) is found by listing again
		 * a moment after the stream opened, then less and less often. */
		int64_t opened = now_ms(w), relist_every = RELIST_FIRST_MS, relist_at = opened + relist_every;
		if (handle_history(sv, 0) < 0)
			base_log(BASE_LOG_WARN, "managed worker: listing the history failed", "session", it->session_id, "error",
				 base_error_last(), NULL);
		int done = 0;
		while (!sv->ended && !atomic_load(&it->stop) && !done) {
			json_t *ev = next_event(it, &done);
			if (ev) {
				handle_live(sv, ev);
				json_decref(ev);
			} else if (!done && now_ms(w) >= relist_at) {
				if (handle_history(sv, 0) < 0)
					base_log(BASE_LOG_WARN, "managed worker: listing the history failed", "session",
						 it->session_id, "error", base_error_last(), NULL);
				relist_every = relist_every * 2 > RELIST_MAX_MS ? RELIST_MAX_MS : relist_every * 2;
				relist_at = now_ms(w) + relist_every;
			}
		}
		atomic_store(&it->stream_stop, 1);
		pthread_join(reader, NULL);
		if (sv->ended || atomic_load(&it->stop))
			break;
		pthread_mutex_lock(&it->q_mu);
		int code = it->stream_code;
		long status = it->stream_status;
		unsigned long events = it->stream_events;
		char msg[256];
		snprintf(msg, sizeof(msg), "%s", it->stream_msg);
		pthread_mutex_unlock(&it->q_mu);
		if (status == 404) {
			end_with(sv, AGENT_MANAGED_END_TERMINATED, msg);
			break;
		}
		if (status == 401 || status == 403) {
			end_with(sv, AGENT_MANAGED_END_FAILED, msg);
			break;
		}
		if (code < 0)
			base_log(BASE_LOG_INFO, "managed worker: reconnecting to the event stream", "session", it->session_id,
				 "error", msg, NULL);
		if (events > 0 || now_ms(w) - opened > 10000)
			backoff = 1000;
		nap(w, backoff, &it->stop, NULL);
		backoff = backoff * 2 > 30000 ? 30000 : backoff * 2;
	}
}

/* ---- an item's thread ---------------------------------------------------------- */

const char *agent_managed_end_name(agent_managed_end_kind kind)
{
	switch (kind) {
	case AGENT_MANAGED_END_TURN: return "end_turn";
	case AGENT_MANAGED_END_BUDGET: return "budget_reached";
	case AGENT_MANAGED_END_RETRIES_EXHAUSTED: return "retries_exhausted";
	case AGENT_MANAGED_END_ERROR: return "error";
	case AGENT_MANAGED_END_TERMINATED: return "terminated";
	case AGENT_MANAGED_END_LEASE_LOST: return "lease_lost";
	case AGENT_MANAGED_END_STOPPED: return "stopped";
	case AGENT_MANAGED_END_FAILED: return "failed";
	}
	return "unknown";
}

static int ack_item(item *it)
{
	char path[512];
	agent_managed_response resp;
	snprintf(path, sizeof(path), "/v1/environments/%s/work/%s/ack", it->w->environment_id, it->work_id);
	int error = item_send(it, "POST", path, NULL, &resp);
	agent_managed_response_dispose(&resp);
	return error;
}

static void stop_item(item *it)
{
	char path[512];
	agent_managed_response resp;
	json_t *body;
	if (atomic_load(&it->lease_lost))
		return; /* another worker may hold it */
	snprintf(path, sizeof(path), "/v1/environments/%s/work/%s/stop", it->w->environment_id, it->work_id);
	body = json_pack("{s:b}", "force", 1);
	int error = item_send(it, "POST", path, body, &resp);
	if (error < 0 && resp.status == 412)
		lose_lease(it);
	else if (error < 0 && resp.status != 409)
		base_log(BASE_LOG_WARN, "managed worker: stopping a work item failed", "work", it->work_id, "error",
			 base_error_last(), NULL);
	agent_managed_response_dispose(&resp);
	json_decref(body);
}

static json_t *get_session(item *it, int *error_out)
{
	char path[256];
	agent_managed_response resp;
	snprintf(path, sizeof(path), "/v1/sessions/%s", it->session_id);
	int error = item_send(it, "GET", path, NULL, &resp);
	if (error_out)
		*error_out = error < 0 ? (resp.status == 404 ? BASE_ENOTFOUND : error) : 0;
	json_t *s = error < 0 ? NULL : json_incref(resp.body);
	agent_managed_response_dispose(&resp);
	return s;
}

static void healthcheck(item *it)
{
	agent_managed_worker *w = it->w;
	count(w, &w->st.healthchecks, 1);
	metric("perfbot_managed_healthchecks_total", "Managed Agents healthcheck work items answered", NULL, 1);
	if (ack_item(it) < 0) {
		base_log(BASE_LOG_WARN, "managed worker: ack failed", "work", it->work_id, "error", base_error_last(), NULL);
		return;
	}
	int r = heartbeat_once(it);
	if (r < 0)
		base_log(BASE_LOG_WARN, "managed worker: heartbeat failed", "work", it->work_id, "error", base_error_last(),
			 NULL);
	hb_result(it, r);
	stop_item(it);
}

static void session_item(item *it)
{
	agent_managed_worker *w = it->w;
	serve sv;
	json_t *session = NULL;
	int error;

	memset(&sv, 0, sizeof(sv));
	sv.it = it;
	sv.bind = it->bind;
	sv.verdicts = json_object();
	sv.pending_ask = json_object();
	sv.skipped = json_object();
	if ((error = ack_item(it)) < 0) {
		/* not ours to serve (stopped, taken): the service offers it again if it must */
		base_log(BASE_LOG_WARN, "managed worker: ack failed", "work", it->work_id, "session", it->session_id, "error",
			 base_error_last(), NULL);
		goto done;
	}
	count(w, &w->st.sessions_served, 1);
	metric("perfbot_managed_sessions_total", "Managed Agents session work items served", NULL, 1);
	/* the first heartbeat before anything slow */
	int r = heartbeat_once(it);
	if (r < 0)
		base_log(BASE_LOG_WARN, "managed worker: heartbeat failed", "work", it->work_id, "error", base_error_last(),
			 NULL);
	else
		hb_result(it, r);
	pthread_mutex_lock(&it->hb_mu);
	if (!it->hb_ok_ms)
		it->hb_ok_ms = now_ms(w);
	pthread_mutex_unlock(&it->hb_mu);
	if (!atomic_load(&it->stop) && pthread_create(&it->hb_thread, NULL, hb_main, it) == 0)
		it->hb_started = 1;
	if (!atomic_load(&it->stop)) {
		session = get_session(it, &error);
		if (error == BASE_ENOTFOUND)
			end_with(&sv, AGENT_MANAGED_END_TERMINATED, "the session is gone");
		else if (error < 0)
			end_with(&sv, AGENT_MANAGED_END_FAILED, base_error_last());
		else if (base_json_str(session, "status") && !strcmp(base_json_str(session, "status"), "terminated"))
			end_with(&sv, AGENT_MANAGED_END_TERMINATED, "");
		json_decref(session);
		session = NULL;
	}
	if (!sv.ended && !atomic_load(&it->stop))
		serve_session(&sv);
	if (!sv.ended && atomic_load(&it->wind_down) && !atomic_load(&it->lease_lost))
		handle_history(&sv, 1); /* asked to stop: the session's own end, when it shows, is the better reason */
	atomic_store(&it->hb_quit, 1);
	if (it->hb_started) {
		pthread_join(it->hb_thread, NULL);
		it->hb_started = 0;
	}

	agent_managed_end end = { AGENT_MANAGED_END_STOPPED, "", NULL };
	if (atomic_load(&it->lease_lost)) {
		end.kind = AGENT_MANAGED_END_LEASE_LOST;
		end.message = "the work item's lease was lost";
	} else {
		if (sv.ended) {
			end.kind = sv.kind;
			end.message = sv.message;
		}
		session = get_session(it, NULL);
		end.session = session;
	}
	if (sv.bind->b.on_end)
		sv.bind->b.on_end(sv.bind->b.payload, &end);
	stop_item(it);
	base_log(BASE_LOG_INFO, "managed worker: session served", "work", it->work_id, "session", it->session_id, "end",
		 agent_managed_end_name(end.kind), NULL);
done:
	json_decref(session);
	json_decref(sv.verdicts);
	json_decref(sv.pending_ask);
	json_decref(sv.skipped);
}

static void *item_main(void *arg)
{
	item *it = arg;
	agent_managed_worker *w = it->w;
	binding_rec *orphan = NULL;
	tl_item = it;
	if (it->healthcheck)
		healthcheck(it);
	else
		session_item(it);
	pthread_mutex_lock(&w->mu);
	if (it->bind) {
		it->bind->users--;
		w->sessions_active--;
		if (it->bind->orphan && it->bind->users == 0)
			orphan = it->bind;
		it->bind = NULL;
	}
	it->finished = 1;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->mu);
	if (orphan) {
		free(orphan->session_id);
		json_decref(orphan->answered);
		free(orphan);
	}
	return NULL;
}

static void item_free(item *it)
{
	if (!it)
		return;
	wipe_free(it->token);
	free(it->base_url);
	json_decref(it->queue);
	pthread_mutex_destroy(&it->hb_mu);
	pthread_mutex_destroy(&it->q_mu);
	pthread_cond_destroy(&it->q_cond);
	free(it);
}

static item *item_new(agent_managed_worker *w)
{
	item *it = calloc(1, sizeof(*it));
	if (!it)
		return NULL;
	it->w = w;
	it->ttl_s = DEFAULT_TTL_S;
	pthread_mutex_init(&it->hb_mu, NULL);
	pthread_mutex_init(&it->q_mu, NULL);
	pthread_cond_init(&it->q_cond, NULL);
	if (!(it->queue = json_array())) {
		item_free(it);
		return NULL;
	}
	return it;
}

/* ---- the poller --------------------------------------------------------------- */

static binding_rec *find_binding(agent_managed_worker *w, const char *session_id)
{
	for (binding_rec *b = w->bindings; b; b = b->next)
		if (!strcmp(b->session_id, session_id))
			return b;
	return NULL;
}

/* Joins the item threads that are over (all when `all`). */
static void reap(agent_managed_worker *w, int all)
{
	for (;;) {
		item *done = NULL;
		pthread_mutex_lock(&w->mu);
		for (item **p = &w->items; *p; p = &(*p)->next) {
			if ((*p)->finished || all) {
				done = *p;
				*p = done->next;
				break;
			}
		}
		pthread_mutex_unlock(&w->mu);
		if (!done)
			return;
		pthread_join(done->thread, NULL);
		item_free(done);
	}
}

/* Starts the thread of item `it` (owned; freed on failure) served with
 * binding b (NULL for a healthcheck).  Under w->mu. */
static void start_item_locked(agent_managed_worker *w, item *it, binding_rec *b)
{
	it->bind = b;
	if (b) {
		b->users++;
		w->sessions_active++;
	}
	if (pthread_create(&it->thread, NULL, item_main, it) != 0) {
		if (b) {
			b->users--;
			w->sessions_active--;
			pthread_cond_broadcast(&w->cond);
		}
		base_log(BASE_LOG_ERROR, "managed worker: cannot start a thread", "work", it->work_id, NULL);
		item_free(it);
		return;
	}
	it->next = w->items;
	w->items = it;
}

/* A new item from a work item's fields (all borrowed; the secret is decoded,
 * not kept), polled here or claimed from the store.  NULL when unusable
 * (logged). */
static item *item_from(agent_managed_worker *w, const char *id, const char *type, const char *sid, const char *secret)
{
	item *it = NULL;
	if (!valid_id(id) || !type) {
		base_log(BASE_LOG_WARN, "managed worker: a work item without a usable id or type", NULL);
		return NULL;
	}
	int hc = !strcmp(type, "healthcheck");
	if (!hc && strcmp(type, "session")) {
		base_log(BASE_LOG_WARN, "managed worker: a work item of an unknown type", "work", id, "type", type, NULL);
		return NULL;
	}
	if (!hc && !valid_id(sid)) {
		base_log(BASE_LOG_WARN, "managed worker: a session work item without a usable session id", "work", id, NULL);
		return NULL;
	}
	if (!(it = item_new(w)))
		return NULL;
	snprintf(it->work_id, sizeof(it->work_id), "%s", id);
	if (!hc)
		snprintf(it->session_id, sizeof(it->session_id), "%s", sid);
	it->healthcheck = hc;
	if (!secret || agent_managed_secret_decode(&it->token, &it->base_url, secret) < 0) {
		base_log(BASE_LOG_WARN, "managed worker: a work item with an unreadable secret", "work", id, NULL);
		item_free(it);
		return NULL;
	}
	return it;
}

/* Records an item of a session not bound here in the store for the replica
 * that binds it (borrows all).  1 when recorded. */
static int hand_over(agent_managed_worker *w, const char *id, const char *sid, const char *secret)
{
	if (!w->store)
		return 0;
	int64_t polled = base_wall_ms();
	/* claimed and acked well before the service would offer it again */
	int64_t expires = polled + w->reclaim_ms * 3 / 4;
	if (store_handover_put(w->store, w->environment_id, sid, id, secret, w->worker_id, polled, expires) < 0) {
		base_log(BASE_LOG_WARN, "managed worker: cannot hand a work item over through the store", "work", id,
			 "session", sid, "error", base_error_last(), NULL);
		return 0;
	}
	pthread_mutex_lock(&w->mu);
	w->st.items_left++;
	w->st.handed_over++;
	/* an item nobody claims comes back every reclaim window: logged once */
	int logged = json_object_get(w->left_logged, sid) != NULL;
	if (!logged) {
		if (json_object_size(w->left_logged) > 4096)
			json_object_clear(w->left_logged);
		json_object_set_new(w->left_logged, sid, json_true());
	}
	pthread_mutex_unlock(&w->mu);
	metric("perfbot_managed_handovers_total", "Managed Agents work items handed to another replica", NULL, 1);
	if (!logged)
		base_log(BASE_LOG_INFO, "managed worker: a session not bound here, handed over through the store",
			 "session", sid, "work", id, NULL);
	return 1;
}

/* Takes one polled work item (borrows wi). */
static void take_item(agent_managed_worker *w, const json_t *wi)
{
	const char *id = base_json_str(wi, "id");
	const json_t *data = json_object_get(wi, "data");
	const char *type = base_json_str(data, "type");
	const char *sid = base_json_str(data, "id");
	const char *secret = base_json_str(wi, "secret");
	int hc = type && !strcmp(type, "healthcheck");

	count(w, &w->st.items, 1);
	item *it = item_from(w, id, type, sid, secret);
	if (!it)
		return;
	pthread_mutex_lock(&w->mu);
	binding_rec *b = hc ? NULL : find_binding(w, sid);
	if (!hc && (!b || b->unbinding) && w->store) {
		pthread_mutex_unlock(&w->mu);
		item_free(it); /* the secret stays in the store only */
		it = NULL;
		if (hand_over(w, id, sid, secret))
			return;
		if (!(it = item_from(w, id, type, sid, secret)))
			return;
		pthread_mutex_lock(&w->mu);
		b = find_binding(w, sid); /* bound meanwhile? */
	}
	if (!hc && (!b || b->unbinding)) {
		if (w->held_count < HELD_MAX && !atomic_load(&w->stopping) && !(b && b->unbinding)) {
			/* the run may bind it in a moment (it creates the session, then binds) */
			int64_t hold = w->reclaim_ms / 2 < HOLD_MS ? w->reclaim_ms / 2 : HOLD_MS;
			it->hold_until = now_ms(w) + hold;
			it->next = w->held;
			w->held = it;
			w->held_count++;
			it = NULL;
		} else {
			w->st.items_left++;
		}
		pthread_mutex_unlock(&w->mu);
		item_free(it);
		return;
	}
	start_item_locked(w, it, b);
	pthread_mutex_unlock(&w->mu);
}

/* Items held past their wait: another replica's runs, left (not acked) for
 * the reclaim window. */
static void expire_held(agent_managed_worker *w, int all)
{
	int64_t now = now_ms(w);
	for (;;) {
		item *it = NULL;
		int logged = 1;
		pthread_mutex_lock(&w->mu);
		for (item **p = &w->held; *p; p = &(*p)->next) {
			if (all || (*p)->hold_until <= now) {
				it = *p;
				*p = it->next;
				w->held_count--;
				break;
			}
		}
		if (it && !all) {
			w->st.items_left++;
			logged = json_object_get(w->left_logged, it->session_id) != NULL;
			if (!logged) {
				if (json_object_size(w->left_logged) > 4096)
					json_object_clear(w->left_logged);
				json_object_set_new(w->left_logged, it->session_id, json_true());
			}
		}
		pthread_mutex_unlock(&w->mu);
		if (!it)
			return;
		if (!logged)
			base_log(BASE_LOG_INFO, "managed worker: a session not served here, left to another worker",
				 "session", it->session_id, "work", it->work_id, NULL);
		item_free(it);
	}
}

/* Claims from the store the items of the sessions bound here (polled by
 * other workers) and serves them. */
static void claim_handovers(agent_managed_worker *w)
{
	char sids[64][ID_MAX + 1];
	size_t n = 0;
	pthread_mutex_lock(&w->mu);
	for (binding_rec *b = w->bindings; b && n < 64; b = b->next)
		if (!b->unbinding)
			snprintf(sids[n++], sizeof(sids[0]), "%s", b->session_id);
	pthread_mutex_unlock(&w->mu);
	for (size_t i = 0; i < n && !atomic_load(&w->stopping); i++) {
		for (int k = 0; k < 8; k++) {
			store_handover h;
			int error = store_handover_claim(w->store, w->environment_id, sids[i], base_wall_ms(), &h);
			if (error < 0) {
				if (error != BASE_ENOTFOUND)
					base_log(BASE_LOG_WARN, "managed worker: cannot claim handed over work items",
						 "session", sids[i], "error", base_error_last(), NULL);
				break;
			}
			count(w, &w->st.items, 1);
			item *it = item_from(w, h.work_id, "session", h.session_id, h.secret);
			store_handover_dispose(&h);
			if (!it)
				continue;
			pthread_mutex_lock(&w->mu);
			binding_rec *b = find_binding(w, it->session_id);
			if (!b || b->unbinding) {
				/* unbound since: not acked, the service offers it again */
				w->st.items_left++;
				pthread_mutex_unlock(&w->mu);
				item_free(it);
				continue;
			}
			w->st.taken_over++;
			metric("perfbot_managed_taken_over_total",
			       "Managed Agents work items polled by another replica and served here", NULL, 1);
			base_log(BASE_LOG_INFO, "managed worker: serving a work item handed over by another worker",
				 "session", it->session_id, "work", it->work_id, NULL);
			start_item_locked(w, it, b);
			pthread_mutex_unlock(&w->mu);
		}
	}
}

static void *handover_main(void *arg)
{
	agent_managed_worker *w = arg;
	while (!atomic_load(&w->stopping)) {
		claim_handovers(w);
		/* the wait is in real time: other processes write the rows */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)HANDOVER_CHECK_MS * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_mutex_lock(&w->mu);
		while (!w->handover_wake && !atomic_load(&w->stopping))
			if (pthread_cond_timedwait(&w->handover_cond, &w->mu, &ts) != 0)
				break;
		w->handover_wake = 0;
		pthread_mutex_unlock(&w->mu);
	}
	return NULL;
}

static void *poller_main(void *arg)
{
	agent_managed_worker *w = arg;
	int64_t backoff = 1000;
	char path[512];
	snprintf(path, sizeof(path), "/v1/environments/%s/work/poll?block_ms=%ld&reclaim_older_than_ms=%ld",
		 w->environment_id, w->block_ms, w->reclaim_ms);
	while (!atomic_load(&w->stopping)) {
		reap(w, 0);
		expire_held(w, 0);
		pthread_mutex_lock(&w->mu);
		/* a held item counts: it is served as soon as its session is bound */
		int busy = w->polling_stopped || w->sessions_active + w->held_count >= w->max_sessions;
		pthread_mutex_unlock(&w->mu);
		if (busy) {
			nap(w, 200, &w->stopping, NULL);
			continue;
		}
		agent_managed_request rq = { 0 };
		agent_managed_response resp;
		rq.method = "GET";
		rq.path = path;
		rq.cred = AGENT_MANAGED_ENV_KEY;
		rq.credential = w->environment_key;
		rq.worker_id = w->worker_id;
		count(w, &w->st.polls, 1);
		metric("perfbot_managed_polls_total", "Managed Agents work polls", NULL, 1);
		atomic_store(&w->wake, 0);
		int error = agent_managed_send(w->client, &rq, &resp);
		count_retries(w, resp.attempts - 1);
		if (error < 0) {
			long status = resp.status;
			agent_managed_response_dispose(&resp);
			if (status == 401 || status == 403 || status == 404) {
				char st[16];
				snprintf(st, sizeof(st), "%ld", status);
				base_log(BASE_LOG_ERROR, "managed worker: polling stopped (check the environment id and key)",
					 "status", st, "error", base_error_last(), NULL);
				pthread_mutex_lock(&w->mu);
				w->polling_stopped = 1;
				pthread_mutex_unlock(&w->mu);
				continue;
			}
			base_log(BASE_LOG_WARN, "managed worker: poll failed", "error", base_error_last(), NULL);
			nap(w, backoff, &w->stopping, NULL);
			backoff = backoff * 2 > 60000 ? 60000 : backoff * 2;
			continue;
		}
		backoff = 1000;
		if (!json_is_object(resp.body)) {
			/* nothing to do; a run binding its new session cuts the pause short */
			agent_managed_response_dispose(&resp);
			nap(w, 1000 + (int64_t)(jitter() * 2000), &w->stopping, &w->wake);
			continue;
		}
		take_item(w, resp.body);
		agent_managed_response_dispose(&resp);
	}
	return NULL;
}

/* ---- public ------------------------------------------------------------------- */

static void worker_free(agent_managed_worker *w)
{
	if (!w)
		return;
	while (w->bindings) {
		binding_rec *b = w->bindings;
		w->bindings = b->next;
		free(b->session_id);
		json_decref(b->answered);
		free(b);
	}
	free(w->environment_id);
	wipe_free(w->environment_key);
	free(w->worker_id);
	json_decref(w->left_logged);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cond);
	pthread_cond_destroy(&w->handover_cond);
	free(w);
}

int agent_managed_worker_start(agent_managed_worker **out, const agent_managed_worker_options *opts)
{
	agent_managed_worker *w = NULL;
	int error = 0;
	*out = NULL;
	if (!opts || !opts->client || !valid_id(opts->environment_id) || !opts->environment_key ||
	    !opts->environment_key[0])
		return base_error_set(BASE_EINVALID, "managed worker: a client, an environment id and its key are needed");
	if (!(w = calloc(1, sizeof(*w))))
		return base_error_set(BASE_ENOMEM, "out of memory");
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cond, NULL);
	pthread_cond_init(&w->handover_cond, NULL);
	w->client = opts->client;
	w->store = opts->store;
	w->clock = opts->clock ? opts->clock : base_clock_system();
	w->max_sessions = opts->max_sessions > 0 ? opts->max_sessions : 1;
	w->block_ms = opts->block_ms >= 1 && opts->block_ms <= 999 ? opts->block_ms : 999;
	w->reclaim_ms = opts->reclaim_older_than_ms > 0 ? opts->reclaim_older_than_ms : 5000;
	w->environment_id = dup_str(opts->environment_id);
	w->environment_key = dup_str(opts->environment_key);
	w->left_logged = json_object();
	if (opts->worker_id && opts->worker_id[0]) {
		w->worker_id = dup_str(opts->worker_id);
	} else {
		char host[64] = "host", id[160];
		unsigned int r = 0;
		if (gethostname(host, sizeof(host)) != 0)
			snprintf(host, sizeof(host), "host");
		host[sizeof(host) - 1] = '\0';
		for (char *p = host; *p; p++)
			if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.')
				*p = '-';
		if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
			r = (unsigned int)time(NULL);
		snprintf(id, sizeof(id), "perfbot-%s-%ld-%08x", host, (long)getpid(), r);
		w->worker_id = dup_str(id);
	}
	if (!w->environment_id || !w->environment_key || !w->worker_id || !w->left_logged) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	if (pthread_create(&w->poller, NULL, poller_main, w) != 0) {
		error = base_error_set(BASE_EGENERIC, "managed worker: cannot start the poller thread");
		goto done;
	}
	w->poller_started = 1;
	if (w->store) {
		if (pthread_create(&w->handover, NULL, handover_main, w) != 0) {
			atomic_store(&w->stopping, 1);
			pthread_join(w->poller, NULL);
			error = base_error_set(BASE_EGENERIC, "managed worker: cannot start the handover thread");
			goto done;
		}
		w->handover_started = 1;
	}
	*out = w;
	w = NULL;
done:
	worker_free(w);
	return error;
}

void agent_managed_worker_stop(agent_managed_worker *w)
{
	if (!w)
		return;
	atomic_store(&w->stopping, 1);
	pthread_mutex_lock(&w->mu);
	pthread_cond_broadcast(&w->handover_cond);
	pthread_mutex_unlock(&w->mu);
	if (w->handover_started)
		pthread_join(w->handover, NULL);
	if (w->poller_started)
		pthread_join(w->poller, NULL);
	pthread_mutex_lock(&w->mu);
	for (item *it = w->items; it; it = it->next) {
		atomic_store(&it->stop_asked, 1);
		atomic_store(&it->stop, 1);
	}
	pthread_mutex_unlock(&w->mu);
	reap(w, 1);
	expire_held(w, 1);
	worker_free(w);
}

int agent_managed_worker_bind(agent_managed_worker *w, const char *session_id, const agent_managed_binding *b)
{
	binding_rec *rec;
	if (!w || !b || !valid_id(session_id))
		return base_error_set(BASE_EINVALID, "managed worker: a session id and a binding are needed");
	if (!(rec = calloc(1, sizeof(*rec))) || !(rec->session_id = strdup(session_id)) ||
	    !(rec->answered = json_object())) {
		if (rec) {
			free(rec->session_id);
			free(rec);
		}
		return base_error_set(BASE_ENOMEM, "out of memory");
	}
	rec->b = *b;
	pthread_mutex_lock(&w->mu);
	if (find_binding(w, session_id)) {
		pthread_mutex_unlock(&w->mu);
		json_decref(rec->answered);
		free(rec->session_id);
		free(rec);
		return base_error_set(BASE_EEXISTS, "managed worker: session %s is bound already", session_id);
	}
	rec->next = w->bindings;
	w->bindings = rec;
	/* a session bound now may have had an item left before: log it again if so */
	json_object_del(w->left_logged, session_id);
	/* its item polled a moment ago waits here: served now */
	for (item **p = &w->held; *p;) {
		item *it = *p;
		if (strcmp(it->session_id, session_id)) {
			p = &it->next;
			continue;
		}
		*p = it->next;
		it->next = NULL;
		w->held_count--;
		start_item_locked(w, it, rec);
	}
	/* an item another worker polled may wait in the store: claimed now */
	w->handover_wake = 1;
	pthread_cond_broadcast(&w->handover_cond);
	pthread_mutex_unlock(&w->mu);
	atomic_store(&w->wake, 1);
	return 0;
}

void agent_managed_worker_unbind(agent_managed_worker *w, const char *session_id)
{
	if (!w || !session_id)
		return;
	pthread_mutex_lock(&w->mu);
	binding_rec *rec = find_binding(w, session_id);
	if (!rec) {
		pthread_mutex_unlock(&w->mu);
		return;
	}
	rec->unbinding = 1;
	for (item *it = w->items; it; it = it->next) {
		if (it->bind == rec) {
			atomic_store(&it->stop_asked, 1);
			atomic_store(&it->stop, 1);
		}
	}
	/* from the binding's own on_end, the calling thread is a user that
	 * touches the binding no more once on_end returns */
	int self = tl_item && tl_item->bind == rec;
	while (rec->users > self)
		pthread_cond_wait(&w->cond, &w->mu);
	for (binding_rec **p = &w->bindings; *p; p = &(*p)->next) {
		if (*p == rec) {
			*p = rec->next;
			break;
		}
	}
	if (self) {
		rec->orphan = 1; /* freed by the serving thread when it is done */
		pthread_mutex_unlock(&w->mu);
		return;
	}
	pthread_mutex_unlock(&w->mu);
	free(rec->session_id);
	json_decref(rec->answered);
	free(rec);
}

void agent_managed_worker_stats_get(agent_managed_worker *w, agent_managed_worker_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	*out = w->st;
	pthread_mutex_unlock(&w->mu);
}
