/* The MCP endpoint (Streamable HTTP, JSON-RPC 2.0) over the agent tools.
 *
 * Request order of checks: method (GET 405), Host / Origin (403), bearer
 * token (401), MCP-Protocol-Version (400), and for POST Content-Type (415),
 * Accept (406) and the declared size (413): all of them from the head, before
 * the HTTP front reads a body byte (agent_mcp_check_head).  Then DELETE ends
 * a session, and POST checks JSON (-32700), message shapes and the batch
 * size (-32600) and the session (400 missing, 404 unknown or of another
 * run), then dispatches.  Answers are application/json: one object, or an
 * array for a batch; a body of notifications and responses only gets 202
 * with no body.
 *
 * Bounds: a batch holds at most max_batch messages (refused before any is
 * run), and once its answers reach max_answer bytes the rest is answered
 * with an error instead of being run; a run holds at most
 * max_sessions_per_run sessions (429 past it), all runs max_sessions.
 *
 * Invariants: clear tokens are never stored or logged (hashes only); a
 * session and a token both name one run; a run's tool context is borrowed
 * from its registration and kept alive by a reference count while a call
 * runs, so unregistering ends the tools (stopping the call in flight) and
 * then waits for calls in flight.
 *
 * Threading: one mutex guards runs and sessions; tool calls run outside it. */
#include "agent/mcp.h"
#include "base/clock.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/error.h"
#include "base/json.h"
#include "base/log.h"
#include "base/metrics.h"

#ifndef PERFBOT_VERSION
#define PERFBOT_VERSION "0"
#endif

#define DEFAULT_PROTOCOL "2025-03-26" /* assumed when the header is absent */
#define SESSION_ID_LEN AGENT_TOKEN_LEN

const char *const agent_mcp_versions[] = { "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05", NULL };

enum { RPC_PARSE = -32700, RPC_INVALID = -32600, RPC_METHOD = -32601, RPC_PARAMS = -32602, RPC_SERVER = -32000 };

typedef struct run_entry {
	int64_t run_id;
	agent_tools *tools; /* borrowed */
	int refs;           /* calls in flight */
	int gone;           /* unregistered; kept until its calls in flight return */
	struct run_entry *next;
} run_entry;

typedef struct session {
	char id[SESSION_ID_LEN + 1];
	int64_t run_id;
	char version[16];
	int64_t last_ms;
	struct session *next;
} session;

struct agent_mcp {
	pthread_mutex_t lock;
	pthread_cond_t idle; /* signalled when a run's refs drop */
	agent_token_store tokens;
	char **hosts;        /* NULL-terminated copies, or NULL */
	char **origins;
	int64_t session_idle_ms;
	int max_sessions;
	int max_sessions_per_run;
	size_t max_body;
	int max_batch;
	size_t max_answer;
	char *version;
	run_entry *runs;
	session *sessions;
	int nsessions;
};

static char **copy_list(const char *const *l)
{
	if (!l)
		return NULL;
	size_t n = 0;
	while (l[n])
		n++;
	char **c = calloc(n + 1, sizeof(*c));
	for (size_t i = 0; c && i < n; i++)
		if (!(c[i] = strdup(l[i])))
			return NULL; /* leaks the partial copy only when out of memory at start-up */
	return c;
}

static void free_list(char **l)
{
	for (size_t i = 0; l && l[i]; i++)
		free(l[i]);
	free(l);
}

int agent_mcp_new(agent_mcp **out, const agent_mcp_options *opts)
{
	agent_mcp_options defaults = AGENT_MCP_OPTIONS_INIT;
	int error = 0;
	if (!opts)
		opts = &defaults;
	*out = NULL;
	agent_mcp *m = calloc(1, sizeof(*m));
	if (!m)
		return base_error_set(BASE_ENOMEM, "out of memory");
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->idle, NULL);
	m->session_idle_ms = opts->session_idle_ms > 0 ? opts->session_idle_ms : 3600 * 1000;
	m->max_sessions = opts->max_sessions > 0 ? opts->max_sessions : 256;
	m->max_sessions_per_run = opts->max_sessions_per_run > 0 ? opts->max_sessions_per_run : 8;
	m->max_body = opts->max_body > 0 ? opts->max_body : 8u << 20;
	m->max_batch = opts->max_batch > 0 ? opts->max_batch : 32;
	m->max_answer = opts->max_answer > 0 ? opts->max_answer : 8u << 20;
	m->version = strdup(opts->server_version ? opts->server_version : PERFBOT_VERSION);
	m->hosts = copy_list(opts->allowed_hosts);
	m->origins = copy_list(opts->allowed_origins);
	if (!m->version || (opts->allowed_hosts && !m->hosts) || (opts->allowed_origins && !m->origins)) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	if (opts->tokens.put)
		m->tokens = opts->tokens;
	else if ((error = agent_token_store_memory(&m->tokens)) < 0)
		goto done;
done:
	if (error < 0) {
		if (opts->tokens.put)
			memset(&m->tokens, 0, sizeof(m->tokens)); /* not taken over on failure */
		agent_mcp_free(m);
		return error;
	}
	*out = m;
	return 0;
}

void agent_mcp_free(agent_mcp *m)
{
	if (!m)
		return;
	while (m->sessions) {
		session *s = m->sessions;
		m->sessions = s->next;
		free(s);
	}
	while (m->runs) {
		run_entry *r = m->runs;
		m->runs = r->next;
		free(r);
	}
	agent_token_store_dispose(&m->tokens);
	free_list(m->hosts);
	free_list(m->origins);
	free(m->version);
	pthread_cond_destroy(&m->idle);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* ---- runs ---------------------------------------------------------------- */

static run_entry *find_run_locked(agent_mcp *m, int64_t run_id)
{
	for (run_entry *r = m->runs; r; r = r->next)
		if (r->run_id == run_id && !r->gone)
			return r;
	return NULL;
}

int agent_mcp_register_run(agent_mcp *m, int64_t run_id, agent_tools *tools, char token_out[AGENT_TOKEN_LEN + 1])
{
	char hash[AGENT_TOKEN_HASH_LEN + 1];
	int error = 0;
	run_entry *r = NULL;
	token_out[0] = '\0';
	pthread_mutex_lock(&m->lock);
	if (find_run_locked(m, run_id)) {
		error = base_error_set(BASE_EEXISTS, "run %lld is registered already", (long long)run_id);
		goto done;
	}
	if (!(r = calloc(1, sizeof(*r)))) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	/* a token of an earlier attempt of this run (a crash, a released lease)
	 * must not come back to life with this one */
	if ((error = m->tokens.del(m->tokens.self, run_id)) < 0 || (error = agent_token_generate(token_out)) < 0 ||
	    (error = agent_token_hash(hash, token_out, AGENT_TOKEN_LEN)) < 0 ||
	    (error = m->tokens.put(m->tokens.self, run_id, hash)) < 0) {
		free(r);
		token_out[0] = '\0';
		goto done;
	}
	r->run_id = run_id;
	r->tools = tools;
	r->next = m->runs;
	m->runs = r;
done:
	pthread_mutex_unlock(&m->lock);
	return error;
}

int agent_mcp_unregister_run(agent_mcp *m, int64_t run_id)
{
	int error = 0;
	pthread_mutex_lock(&m->lock);
	run_entry *r = find_run_locked(m, run_id);
	if (r) {
		r->gone = 1; /* no new call can find it */
		/* the call in flight, if any, is stopped now (its sandbox command
		 * killed through the tools' stop flag) instead of running its
		 * own timeouts: the wait below is short */
		agent_tools_end(r->tools, "the run has ended");
		error = m->tokens.del(m->tokens.self, run_id);
		for (session **sp = &m->sessions; *sp;) {
			if ((*sp)->run_id == run_id) {
				session *s = *sp;
				*sp = s->next;
				free(s);
				m->nsessions--;
			} else {
				sp = &(*sp)->next;
			}
		}
	}
	/* Waits for the calls in flight of this run, also when another thread
	 * (a cancel) began the unregistration: the caller frees the tools
	 * next.  The first waiter to see no call left unlinks the entry. */
	for (int waited_s = 0;;) {
		run_entry **pp = &m->runs;
		while (*pp && !((*pp)->run_id == run_id && (*pp)->gone))
			pp = &(*pp)->next;
		if (!*pp)
			break;
		if ((*pp)->refs == 0) {
			run_entry *dead = *pp;
			*pp = dead->next;
			free(dead);
			continue;
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 5;
		if (pthread_cond_timedwait(&m->idle, &m->lock, &ts) != 0) {
			char run[32], secs[16];
			waited_s += 5;
			snprintf(run, sizeof(run), "%lld", (long long)run_id);
			snprintf(secs, sizeof(secs), "%d", waited_s);
			base_log(BASE_LOG_WARN, "waiting for a tool call of an ended run", "run", run, "seconds", secs, NULL);
		}
	}
	pthread_mutex_unlock(&m->lock);
	return error;
}

int agent_mcp_session_count(agent_mcp *m)
{
	pthread_mutex_lock(&m->lock);
	int n = m->nsessions;
	pthread_mutex_unlock(&m->lock);
	return n;
}

/* ---- HTTP checks --------------------------------------------------------- */

/* "host[:port]" → is the host part a loopback name? */
static int loopback_hostport(const char *hp, size_t n)
{
	const char *names[] = { "localhost", "127.0.0.1", "[::1]" };
	for (size_t i = 0; i < 3; i++) {
		size_t k = strlen(names[i]);
		if (n >= k && strncasecmp(hp, names[i], k) == 0 && (n == k || hp[k] == ':')) {
			for (size_t j = k + (n > k); j < n; j++)
				if (hp[j] < '0' || hp[j] > '9')
					return 0;
			return 1;
		}
	}
	return 0;
}

static int in_list(char **list, const char *v)
{
	for (size_t i = 0; list[i]; i++)
		if (strcasecmp(list[i], v) == 0)
			return 1;
	return 0;
}

static int host_ok(agent_mcp *m, const char *host)
{
	if (!host)
		return 0;
	return m->hosts ? in_list(m->hosts, host) : loopback_hostport(host, strlen(host));
}

static int origin_ok(agent_mcp *m, const char *origin)
{
	if (!origin)
		return 1;
	if (m->origins)
		return in_list(m->origins, origin);
	const char *rest = NULL;
	if (strncasecmp(origin, "http://", 7) == 0)
		rest = origin + 7;
	else if (strncasecmp(origin, "https://", 8) == 0)
		rest = origin + 8;
	return rest && loopback_hostport(rest, strlen(rest));
}

/* Does a media-type list (Accept) name `type`? Parameters are ignored. */
static int accepts(const char *accept, const char *type)
{
	size_t tl = strlen(type);
	const char *p = accept;
	while (p && *p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		const char *e = p;
		while (*e && *e != ',' && *e != ';' && *e != ' ')
			e++;
		if ((size_t)(e - p) == tl && strncasecmp(p, type, tl) == 0)
			return 1;
		if ((size_t)(e - p) == 3 && strncmp(p, "*/*", 3) == 0)
			return 1;
		p = strchr(e, ',');
	}
	return 0;
}

static int content_type_json(const char *ct)
{
	if (!ct)
		return 0;
	while (*ct == ' ')
		ct++;
	size_t n = strlen("application/json");
	return strncasecmp(ct, "application/json", n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static int version_supported(const char *v)
{
	for (size_t i = 0; agent_mcp_versions[i]; i++)
		if (strcmp(agent_mcp_versions[i], v) == 0)
			return 1;
	return 0;
}

/* ---- responses ----------------------------------------------------------- */

static json_t *rpc_error(const json_t *id, int code, const char *message)
{
	return json_pack("{s:s,s:O,s:{s:i,s:s}}", "jsonrpc", "2.0", "id", id ? id : json_null(), "error", "code", code,
			 "message", message);
}

static json_t *rpc_result(const json_t *id, json_t *result /* owned */)
{
	return json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", id, "result", result);
}

static int send_json(base_http_response *resp, int status, json_t *body /* owned */)
{
	char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (!s)
		return base_error_set(BASE_ENOMEM, "out of memory");
	int error = base_http_response_json(resp, status, s);
	free(s);
	return error;
}

/* An HTTP-level refusal with a JSON-RPC error body, as the SDK's servers do. */
static int refuse(base_http_response *resp, int status, int code, const char *message)
{
	snprintf(resp->log_outcome, sizeof(resp->log_outcome), "%d", status);
	return send_json(resp, status, rpc_error(NULL, code, message));
}

/* ---- the request's identity ---------------------------------------------- */

/* The run named by the bearer token, with a reference held; NULL (and a
 * 401 in resp) otherwise. */
static run_entry *authenticate(agent_mcp *m, const base_http_request *req, base_http_response *resp)
{
	const char *auth = base_http_request_header(req, "Authorization");
	char hash[AGENT_TOKEN_HASH_LEN + 1];
	int64_t run_id = 0;
	run_entry *r = NULL;
	if (auth && strncasecmp(auth, "Bearer ", 7) == 0) {
		const char *tok = auth + 7;
		while (*tok == ' ')
			tok++;
		size_t n = strlen(tok);
		while (n > 0 && tok[n - 1] == ' ')
			n--;
		if (n > 0 && n <= 512 && agent_token_hash(hash, tok, n) == 0 &&
		    m->tokens.find(m->tokens.self, hash, &run_id) == 0) {
			pthread_mutex_lock(&m->lock);
			r = find_run_locked(m, run_id);
			if (r)
				r->refs++;
			pthread_mutex_unlock(&m->lock);
		}
	}
	base_error_clear();
	if (!r) {
		base_http_response_header(resp, "WWW-Authenticate",
					 auth ? "Bearer realm=\"perfbot\", error=\"invalid_token\"" : "Bearer realm=\"perfbot\"");
		refuse(resp, 401, RPC_SERVER, auth ? "Unauthorized: the token is not valid for an active run"
						  : "Unauthorized: a bearer token is required");
	}
	return r;
}

static void release(agent_mcp *m, run_entry *r)
{
	pthread_mutex_lock(&m->lock);
	if (--r->refs == 0)
		pthread_cond_broadcast(&m->idle);
	pthread_mutex_unlock(&m->lock);
}

static void expire_sessions_locked(agent_mcp *m)
{
	int64_t now = base_mono_ms();
	for (session **sp = &m->sessions; *sp;) {
		if (now - (*sp)->last_ms > m->session_idle_ms) {
			session *s = *sp;
			*sp = s->next;
			free(s);
			m->nsessions--;
		} else {
			sp = &(*sp)->next;
		}
	}
}

/* 0: found and touched; BASE_ENOTFOUND: unknown, expired or another run's. */
static int session_check(agent_mcp *m, const char *id, int64_t run_id, int remove)
{
	int error = BASE_ENOTFOUND;
	pthread_mutex_lock(&m->lock);
	expire_sessions_locked(m);
	for (session **sp = &m->sessions; *sp; sp = &(*sp)->next) {
		session *s = *sp;
		if (s->run_id == run_id && strlen(id) == SESSION_ID_LEN && agent_token_equal(s->id, id)) {
			error = 0;
			if (remove) {
				*sp = s->next;
				free(s);
				m->nsessions--;
			} else {
				s->last_ms = base_mono_ms();
			}
			break;
		}
	}
	pthread_mutex_unlock(&m->lock);
	return error;
}

static int session_create(agent_mcp *m, int64_t run_id, const char *version, char id_out[SESSION_ID_LEN + 1])
{
	int error = 0;
	session *s = calloc(1, sizeof(*s));
	if (!s)
		return base_error_set(BASE_ENOMEM, "out of memory");
	if ((error = agent_token_generate(s->id)) < 0) {
		free(s);
		return error;
	}
	s->run_id = run_id;
	snprintf(s->version, sizeof(s->version), "%s", version);
	s->last_ms = base_mono_ms();
	pthread_mutex_lock(&m->lock);
	expire_sessions_locked(m);
	int of_run = 0;
	for (session *o = m->sessions; o; o = o->next)
		of_run += o->run_id == run_id;
	if (of_run >= m->max_sessions_per_run) {
		error = base_error_set(BASE_EEXISTS, "Too many sessions for this run: at most %d; end one with DELETE",
				      m->max_sessions_per_run);
		free(s);
	} else if (m->nsessions >= m->max_sessions) {
		error = base_error_set(BASE_ETOOBIG, "too many MCP sessions");
		free(s);
	} else {
		s->next = m->sessions;
		m->sessions = s;
		m->nsessions++;
		memcpy(id_out, s->id, SESSION_ID_LEN + 1);
	}
	pthread_mutex_unlock(&m->lock);
	return error;
}

/* ---- JSON-RPC ------------------------------------------------------------ */

typedef enum { MSG_INVALID, MSG_REQUEST, MSG_NOTIFICATION, MSG_RESPONSE } msg_kind;

static msg_kind classify(const json_t *msg)
{
	if (!json_is_object(msg))
		return MSG_INVALID;
	const char *v = base_json_str(msg, "jsonrpc");
	if (!v || strcmp(v, "2.0") != 0)
		return MSG_INVALID;
	json_t *method = json_object_get(msg, "method"), *id = json_object_get(msg, "id");
	if (id && !json_is_string(id) && !json_is_integer(id))
		return MSG_INVALID;
	if (method) {
		if (!json_is_string(method))
			return MSG_INVALID;
		json_t *params = json_object_get(msg, "params");
		if (params && !json_is_object(params) && !json_is_array(params))
			return MSG_INVALID;
		return id ? MSG_REQUEST : MSG_NOTIFICATION;
	}
	if (id && (json_object_get(msg, "result") || json_object_get(msg, "error")))
		return MSG_RESPONSE;
	return MSG_INVALID;
}

static int is_initialize(const json_t *msg)
{
	const char *method = base_json_str(msg, "method");
	return method && strcmp(method, "initialize") == 0;
}

static json_t *do_initialize(agent_mcp *m, const json_t *id, const json_t *params, char *version_out, size_t n)
{
	const char *asked = base_json_str(params, "protocolVersion");
	if (!json_is_object(params) || !asked)
		return rpc_error(id, RPC_PARAMS, "initialize needs params.protocolVersion");
	const char *v = version_supported(asked) ? asked : agent_mcp_versions[0];
	snprintf(version_out, n, "%s", v);
	return rpc_result(id, json_pack("{s:s,s:{s:{s:b}},s:{s:s,s:s,s:s},s:s}", "protocolVersion", v, "capabilities",
					"tools", "listChanged", 0, "serverInfo", "name", "perfbot", "title", "perfbot",
					"version", m->version, "instructions",
					"Tools of one perfbot agent run: read and edit the workspace, run commands in the "
					"sandbox, measure benchmarks under CPU simulation, read profiles, and call "
					"submit_result when done."));
}

static json_t *do_tools_call(run_entry *r, const json_t *id, const json_t *params)
{
	const char *name = base_json_str(params, "name");
	json_t *args = json_object_get(params, "arguments");
	if (!json_is_object(params) || !name)
		return rpc_error(id, RPC_PARAMS, "tools/call needs params.name");
	if (args && !json_is_object(args) && !json_is_null(args))
		return rpc_error(id, RPC_PARAMS, "tools/call params.arguments must be an object");
	if (!agent_tools_exists(name)) {
		char msg[200];
		snprintf(msg, sizeof(msg), "Unknown tool: %.120s", name);
		return rpc_error(id, RPC_PARAMS, msg);
	}
	json_t *result = NULL;
	char run[32];
	snprintf(run, sizeof(run), "%lld", (long long)r->run_id);
	base_log(BASE_LOG_INFO, "tool call", "run", run, "tool", name, NULL);
	if (agent_tool_call(r->tools, name, args, &result) < 0)
		return rpc_error(id, -32603, "Internal error");
	json_t *err = json_object_get(result, "isError");
	char labels[96];
	snprintf(labels, sizeof(labels), "tool=\"%s\",outcome=\"%s\"", name, json_is_true(err) ? "error" : "ok");
	base_metric_count("perfbot_agent_tool_calls_total", "Agent tool calls by tool and outcome", labels, 1);
	return rpc_result(id, result);
}

static json_t *dispatch(agent_mcp *m, run_entry *r, const json_t *msg, char *version_out, size_t n)
{
	const json_t *id = json_object_get(msg, "id");
	const char *method = base_json_str(msg, "method");
	json_t *params = json_object_get(msg, "params");
	if (strcmp(method, "initialize") == 0)
		return do_initialize(m, id, params, version_out, n);
	if (strcmp(method, "ping") == 0)
		return rpc_result(id, json_object());
	if (strcmp(method, "tools/list") == 0) {
		json_t *cursor = params ? json_object_get(params, "cursor") : NULL;
		if ((params && !json_is_object(params)) || (cursor && !json_is_string(cursor)))
			return rpc_error(id, RPC_PARAMS, "tools/list params.cursor must be a string");
		json_t *tools = agent_tools_list();
		return tools ? rpc_result(id, json_pack("{s:o}", "tools", tools)) : NULL;
	}
	if (strcmp(method, "tools/call") == 0)
		return do_tools_call(r, id, params);
	char msg_text[200];
	snprintf(msg_text, sizeof(msg_text), "Method not found: %.120s", method);
	return rpc_error(id, RPC_METHOD, msg_text);
}

static int handle_post(agent_mcp *m, run_entry *r, const base_http_request *req, base_http_response *resp)
{
	json_t *body = NULL, *answers = NULL;
	int error = 0;

	/* Content-Type, Accept and the size were checked with the head */
	json_error_t jerr;
	body = json_loadb(req->body ? req->body : "", req->body_len, JSON_DECODE_ANY, &jerr);
	if (!body)
		return refuse(resp, 400, RPC_PARSE, "Parse error: the body is not JSON");
	int batch = json_is_array(body);
	size_t count = batch ? json_array_size(body) : 1;
	if ((batch && count == 0) || (!batch && classify(body) == MSG_INVALID)) {
		error = refuse(resp, 400, RPC_INVALID, "Invalid Request");
		goto done;
	}
	if (batch && count > (size_t)m->max_batch) {
		char msg[120];
		snprintf(msg, sizeof(msg), "Invalid Request: a batch holds at most %d messages", m->max_batch);
		error = refuse(resp, 400, RPC_INVALID, msg);
		goto done;
	}

	/* initialize: alone, without a session */
	int has_init = 0, nrequests = 0;
	for (size_t i = 0; i < count; i++) {
		json_t *msg = batch ? json_array_get(body, i) : body;
		msg_kind k = classify(msg);
		if (k == MSG_REQUEST || k == MSG_NOTIFICATION || k == MSG_INVALID)
			nrequests += k != MSG_NOTIFICATION;
		if (k == MSG_REQUEST && is_initialize(msg))
			has_init = 1;
	}
	if (has_init && count > 1) {
		error = refuse(resp, 400, RPC_INVALID, "Invalid Request: initialize must not be part of a batch");
		goto done;
	}
	const char *sid = base_http_request_header(req, "Mcp-Session-Id");
	if (!has_init) {
		if (!sid) {
			error = refuse(resp, 400, RPC_SERVER, "Bad Request: Mcp-Session-Id header is required");
			goto done;
		}
		if (session_check(m, sid, r->run_id, 0) < 0) {
			error = refuse(resp, 404, -32001, "Session not found");
			goto done;
		}
	}

	if (nrequests == 0) {
		resp->status = 202;
		resp->content_type = "application/json";
		base_buf_reset(&resp->body);
		snprintf(resp->log_outcome, sizeof(resp->log_outcome), "202");
		goto done;
	}

	answers = json_array();
	char version[16] = "";
	size_t answered = 0; /* bytes of the answers so far */
	for (size_t i = 0; answers && i < count; i++) {
		json_t *msg = batch ? json_array_get(body, i) : body;
		msg_kind k = classify(msg);
		json_t *a = NULL;
		if (k == MSG_INVALID) {
			json_t *id = json_is_object(msg) ? json_object_get(msg, "id") : NULL;
			a = rpc_error(json_is_string(id) || json_is_integer(id) ? id : NULL, RPC_INVALID, "Invalid Request");
		} else if (k == MSG_REQUEST && answered >= m->max_answer) {
			/* the answer is full: the rest of the batch is not run */
			a = rpc_error(json_object_get(msg, "id"), RPC_SERVER,
				      "Server error: the batch's answer is full; send this request again on its own");
		} else if (k == MSG_REQUEST) {
			a = dispatch(m, r, msg, version, sizeof(version));
			answered += a ? json_dumpb(a, NULL, 0, JSON_COMPACT) : 0;
		} else {
			continue;
		}
		if (!a || json_array_append_new(answers, a) < 0) {
			error = base_error_set(BASE_ENOMEM, "out of memory");
			goto done;
		}
	}
	if (!answers) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	if (has_init && version[0]) {
		char id[SESSION_ID_LEN + 1];
		int rc = session_create(m, r->run_id, version, id);
		if (rc == BASE_EEXISTS) {
			error = refuse(resp, 429, RPC_SERVER, base_error_last());
			goto done;
		}
		if (rc < 0) {
			error = refuse(resp, 503, RPC_SERVER, "Too many sessions");
			goto done;
		}
		base_http_response_header(resp, "Mcp-Session-Id", id);
	}
	snprintf(resp->log_outcome, sizeof(resp->log_outcome), "200");
	error = send_json(resp, 200, batch ? json_incref(answers) : json_incref(json_array_get(answers, 0)));
done:
	json_decref(answers);
	json_decref(body);
	return error;
}

/* The checks that need no body, in the documented order.  0 with *r_out
 * (a reference held) when the request may go on; 1 after filling the
 * refusal. */
static int check_head(agent_mcp *m, const base_http_request *req, int64_t content_length, base_http_response *resp,
		      run_entry **r_out)
{
	run_entry *r = NULL;
	*r_out = NULL;
	snprintf(resp->log_event, sizeof(resp->log_event), "mcp");
	int is_post = strcmp(req->method, "POST") == 0, is_delete = strcmp(req->method, "DELETE") == 0;
	if (!is_post && !is_delete) {
		base_http_response_header(resp, "Allow", "POST, DELETE");
		refuse(resp, 405, RPC_SERVER, "Method Not Allowed: this server offers no event stream");
		return 1;
	}
	if (!host_ok(m, base_http_request_header(req, "Host")) || !origin_ok(m, base_http_request_header(req, "Origin"))) {
		refuse(resp, 403, RPC_SERVER, "Forbidden: Host or Origin not allowed");
		return 1;
	}
	if (!(r = authenticate(m, req, resp)))
		return 1;
	const char *pv = base_http_request_header(req, "MCP-Protocol-Version");
	if (pv && !version_supported(pv)) {
		refuse(resp, 400, RPC_SERVER, "Bad Request: unsupported MCP-Protocol-Version");
		goto refused;
	}
	if (is_post) {
		if (!content_type_json(base_http_request_header(req, "Content-Type"))) {
			refuse(resp, 415, RPC_SERVER, "Unsupported Media Type: Content-Type must be application/json");
			goto refused;
		}
		const char *accept = base_http_request_header(req, "Accept");
		if (!accept || !accepts(accept, "application/json") || !accepts(accept, "text/event-stream")) {
			refuse(resp, 406, RPC_SERVER, "Not Acceptable: Accept must list both application/json and text/event-stream");
			goto refused;
		}
		if (content_length >= 0 && (uint64_t)content_length > m->max_body) {
			refuse(resp, 413, RPC_SERVER, "Payload Too Large");
			goto refused;
		}
	}
	*r_out = r;
	return 0;
refused:
	release(m, r);
	return 1;
}

int agent_mcp_check_head(const base_http_request *req, int64_t content_length, base_http_response *resp, void *payload)
{
	agent_mcp *m = payload;
	run_entry *r = NULL;
	if (check_head(m, req, content_length, resp, &r))
		return 1;
	release(m, r);
	return 0;
}

int agent_mcp_handle(const base_http_request *req, base_http_response *resp, void *payload)
{
	agent_mcp *m = payload;
	run_entry *r = NULL;
	int error = 0;

	if (check_head(m, req, (int64_t)req->body_len, resp, &r))
		return 0;
	if (strcmp(req->method, "DELETE") == 0) {
		const char *sid = base_http_request_header(req, "Mcp-Session-Id");
		if (!sid)
			error = refuse(resp, 400, RPC_SERVER, "Bad Request: Mcp-Session-Id header is required");
		else if (session_check(m, sid, r->run_id, 1) < 0)
			error = refuse(resp, 404, -32001, "Session not found");
		else {
			resp->status = 200;
			base_buf_reset(&resp->body);
			snprintf(resp->log_outcome, sizeof(resp->log_outcome), "200");
		}
		goto done;
	}
	error = handle_post(m, r, req, resp);
done:
	release(m, r);
	return error;
}
