/* Unit tests: the MCP endpoint's HTTP rules (method, Host / Origin, bearer
 * token, Content-Type, Accept, protocol version, sessions), its JSON-RPC
 * answers (parse error, invalid request, unknown method, bad params,
 * batches, notifications) and the per-run tokens (hashing, isolation of
 * runs, validity only while registered).  Requests go straight into
 * agent_mcp_handle. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/mcp.h"
#include "agent/run_token.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/http.h"

#define ACCEPT_BOTH "application/json, text/event-stream"

typedef struct fixture {
	char ws[64];
	agent_tools *t1, *t2;
	agent_mcp *mcp;
	char tok1[AGENT_TOKEN_LEN + 1], tok2[AGENT_TOKEN_LEN + 1];
	char sid1[AGENT_TOKEN_LEN + 1];
} fixture;

typedef struct req_spec {
	const char *method;
	const char *token;       /* NULL: no Authorization */
	const char *session;     /* NULL: no Mcp-Session-Id */
	const char *content_type;
	const char *accept;
	const char *host;
	const char *origin;
	const char *version;     /* MCP-Protocol-Version */
	const char *body;
} req_spec;

/* Sends one request; returns the status, fills resp (dispose it). */
static int send_req(fixture *fx, const req_spec *s, base_http_response *resp)
{
	base_http_header h[8];
	size_t n = 0;
	char auth[200];
	if (s->token) {
		snprintf(auth, sizeof(auth), "Bearer %s", s->token);
		h[n++] = (base_http_header){ "Authorization", auth };
	}
	if (s->session)
		h[n++] = (base_http_header){ "mcp-session-id", s->session };
	if (s->content_type)
		h[n++] = (base_http_header){ "Content-Type", s->content_type };
	if (s->accept)
		h[n++] = (base_http_header){ "Accept", s->accept };
	h[n++] = (base_http_header){ "Host", s->host ? s->host : "127.0.0.1:3000" };
	if (s->origin)
		h[n++] = (base_http_header){ "Origin", s->origin };
	if (s->version)
		h[n++] = (base_http_header){ "MCP-Protocol-Version", s->version };
	base_http_request req = { 0 };
	req.method = s->method ? s->method : "POST";
	req.path = "/mcp";
	req.headers = h;
	req.nheaders = n;
	req.body = s->body;
	req.body_len = s->body ? strlen(s->body) : 0;
	req.peer = "127.0.0.1";
	base_http_response_init(resp);
	assert_int_equal(agent_mcp_handle(&req, resp, fx->mcp), 0);
	return resp->status;
}

static const char *resp_header(const base_http_response *r, const char *name)
{
	for (size_t i = 0; i < r->nheaders; i++)
		if (strcasecmp(r->header_names[i], name) == 0)
			return r->header_values[i];
	return NULL;
}

static json_t *resp_json(const base_http_response *r)
{
	json_error_t e;
	json_t *j = json_loads(base_buf_cstr(&r->body), JSON_DECODE_ANY, &e);
	if (!j)
		fail_msg("not JSON: %s", base_buf_cstr(&r->body));
	return j;
}

static int rpc_code(const json_t *msg)
{
	return (int)json_integer_value(json_object_get(json_object_get(msg, "error"), "code"));
}

/* A POST with the right headers, for run 1's token and session. */
static int post(fixture *fx, const char *body, base_http_response *resp)
{
	req_spec s = { .token = fx->tok1, .session = fx->sid1, .content_type = "application/json",
		       .accept = ACCEPT_BOTH, .body = body };
	return send_req(fx, &s, resp);
}

static void initialize(fixture *fx, const char *token, char sid_out[AGENT_TOKEN_LEN + 1])
{
	base_http_response resp;
	req_spec s = { .token = token, .content_type = "application/json", .accept = ACCEPT_BOTH,
		       .body = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
			       "\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}" };
	assert_int_equal(send_req(fx, &s, &resp), 200);
	const char *sid = resp_header(&resp, "Mcp-Session-Id");
	assert_non_null(sid);
	assert_int_equal(strlen(sid), AGENT_TOKEN_LEN);
	snprintf(sid_out, AGENT_TOKEN_LEN + 1, "%s", sid);
	json_t *j = resp_json(&resp);
	json_t *result = json_object_get(j, "result");
	assert_string_equal(json_string_value(json_object_get(result, "protocolVersion")), "2025-06-18");
	assert_non_null(json_object_get(json_object_get(result, "capabilities"), "tools"));
	assert_string_equal(json_string_value(json_object_get(json_object_get(result, "serverInfo"), "name")), "perfbot");
	json_decref(j);
	base_http_response_dispose(&resp);
}

static int setup(void **state)
{
	fixture *fx = calloc(1, sizeof(*fx));
	snprintf(fx->ws, sizeof(fx->ws), "/tmp/perfbot-mcp-XXXXXX");
	if (!mkdtemp(fx->ws))
		return -1;
	char cmd[512];
	snprintf(cmd, sizeof(cmd),
		 "cd %s && git init -q && echo hello > a.txt && git add . && "
		 "git -c user.name=t -c user.email=t@example.com commit -qm base",
		 fx->ws);
	if (system(cmd) != 0)
		return -1;
	agent_tools_options o = AGENT_TOOLS_OPTIONS_INIT;
	o.workspace = fx->ws;
	o.base_commit = "HEAD";
	if (agent_tools_new(&fx->t1, &o) < 0 || agent_tools_new(&fx->t2, &o) < 0)
		return -1;
	if (agent_mcp_new(&fx->mcp, NULL) < 0)
		return -1;
	if (agent_mcp_register_run(fx->mcp, 1, fx->t1, fx->tok1) < 0 ||
	    agent_mcp_register_run(fx->mcp, 2, fx->t2, fx->tok2) < 0)
		return -1;
	initialize(fx, fx->tok1, fx->sid1);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	fixture *fx = *state;
	agent_mcp_unregister_run(fx->mcp, 1);
	agent_mcp_unregister_run(fx->mcp, 2);
	agent_mcp_free(fx->mcp);
	agent_tools_free(fx->t1);
	agent_tools_free(fx->t2);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->ws);
	assert_int_equal(system(cmd), 0);
	free(fx);
	return 0;
}

static void test_http_method_host_origin(void **state)
{
	fixture *fx = *state;
	base_http_response r;
	req_spec s = { .method = "GET", .token = fx->tok1, .session = fx->sid1, .accept = "text/event-stream" };
	assert_int_equal(send_req(fx, &s, &r), 405);
	base_http_response_dispose(&r);

	req_spec h = { .token = fx->tok1, .session = fx->sid1, .content_type = "application/json", .accept = ACCEPT_BOTH,
		       .host = "evil.example.com", .body = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}" };
	assert_int_equal(send_req(fx, &h, &r), 403);
	base_http_response_dispose(&r);
	h.host = "localhost:3000";
	h.origin = "https://evil.example.com";
	assert_int_equal(send_req(fx, &h, &r), 403);
	base_http_response_dispose(&r);
	h.origin = "http://localhost:3000";
	assert_int_equal(send_req(fx, &h, &r), 200);
	base_http_response_dispose(&r);
}

static void test_auth(void **state)
{
	fixture *fx = *state;
	base_http_response r;
	req_spec s = { .session = fx->sid1, .content_type = "application/json", .accept = ACCEPT_BOTH,
		       .body = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}" };
	assert_int_equal(send_req(fx, &s, &r), 401);
	assert_non_null(resp_header(&r, "WWW-Authenticate"));
	assert_true(strncmp(resp_header(&r, "WWW-Authenticate"), "Bearer", 6) == 0);
	base_http_response_dispose(&r);

	char wrong[AGENT_TOKEN_LEN + 1];
	memcpy(wrong, fx->tok1, sizeof(wrong));
	wrong[0] = wrong[0] == 'a' ? 'b' : 'a';
	s.token = wrong;
	assert_int_equal(send_req(fx, &s, &r), 401);
	assert_non_null(strstr(resp_header(&r, "WWW-Authenticate"), "invalid_token"));
	base_http_response_dispose(&r);

	/* run 2's token on run 1's session: that session is not found */
	s.token = fx->tok2;
	assert_int_equal(send_req(fx, &s, &r), 404);
	base_http_response_dispose(&r);

	/* once the run is unregistered, its token stops working */
	assert_int_equal(agent_mcp_unregister_run(fx->mcp, 2), 0);
	assert_int_equal(send_req(fx, &s, &r), 401);
	base_http_response_dispose(&r);
	s.token = fx->tok1;
	assert_int_equal(send_req(fx, &s, &r), 200);
	base_http_response_dispose(&r);
}

static void test_content_negotiation_and_version(void **state)
{
	fixture *fx = *state;
	base_http_response r;
	req_spec s = { .token = fx->tok1, .session = fx->sid1, .content_type = "text/plain", .accept = ACCEPT_BOTH,
		       .body = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}" };
	assert_int_equal(send_req(fx, &s, &r), 415);
	base_http_response_dispose(&r);
	s.content_type = "application/json; charset=utf-8";
	s.accept = "application/json";
	assert_int_equal(send_req(fx, &s, &r), 406);
	base_http_response_dispose(&r);
	s.accept = "text/event-stream";
	assert_int_equal(send_req(fx, &s, &r), 406);
	base_http_response_dispose(&r);
	s.accept = "text/event-stream, application/json;q=0.9";
	s.version = "1999-01-01";
	assert_int_equal(send_req(fx, &s, &r), 400);
	base_http_response_dispose(&r);
	s.version = "2025-06-18";
	assert_int_equal(send_req(fx, &s, &r), 200);
	json_t *j = resp_json(&r);
	assert_non_null(json_object_get(j, "result"));
	assert_int_equal(json_integer_value(json_object_get(j, "id")), 1);
	json_decref(j);
	base_http_response_dispose(&r);
}

static void test_sessions(void **state)
{
	fixture *fx = *state;
	base_http_response r;
	req_spec s = { .token = fx->tok1, .content_type = "application/json", .accept = ACCEPT_BOTH,
		       .body = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}" };
	assert_int_equal(send_req(fx, &s, &r), 400);
	base_http_response_dispose(&r);
	s.session = "0000000000000000000000000000000000000000000000000000000000000000";
	assert_int_equal(send_req(fx, &s, &r), 404);
	base_http_response_dispose(&r);

	/* a version the server does not know is answered with the latest */
	req_spec i = { .token = fx->tok1, .content_type = "application/json", .accept = ACCEPT_BOTH,
		       .body = "{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"initialize\",\"params\":"
			       "{\"protocolVersion\":\"2099-01-01\",\"capabilities\":{}}}" };
	assert_int_equal(send_req(fx, &i, &r), 200);
	json_t *j = resp_json(&r);
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "result"), "protocolVersion")),
			    agent_mcp_versions[0]);
	json_decref(j);
	base_http_response_dispose(&r);
	assert_int_equal(agent_mcp_session_count(fx->mcp), 2);

	/* DELETE ends the session */
	req_spec d = { .method = "DELETE", .token = fx->tok1, .session = fx->sid1 };
	assert_int_equal(send_req(fx, &d, &r), 200);
	base_http_response_dispose(&r);
	assert_int_equal(send_req(fx, &d, &r), 404);
	base_http_response_dispose(&r);
	assert_int_equal(post(fx, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}", &r), 404);
	base_http_response_dispose(&r);
	d.session = NULL;
	assert_int_equal(send_req(fx, &d, &r), 400);
	base_http_response_dispose(&r);
}

static void test_jsonrpc_errors(void **state)
{
	fixture *fx = *state;
	base_http_response r;
	json_t *j;
	assert_int_equal(post(fx, "{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": ", &r), 400);
	j = resp_json(&r);
	assert_int_equal(rpc_code(j), -32700);
	assert_true(json_is_null(json_object_get(j, "id")));
	json_decref(j);
	base_http_response_dispose(&r);

	assert_int_equal(post(fx, "{\"jsonrpc\": \"1.0\", \"id\": 1, \"method\": \"ping\"}", &r), 400);
	j = resp_json(&r);
	assert_int_equal(rpc_code(j), -32600);
	json_decref(j);
	base_http_response_dispose(&r);
	assert_int_equal(post(fx, "[]", &r), 400);
	base_http_response_dispose(&r);
	assert_int_equal(post(fx, "42", &r), 400);
	base_http_response_dispose(&r);

	assert_int_equal(post(fx, "{\"jsonrpc\": \"2.0\", \"id\": 7, \"method\": \"resources/list\"}", &r), 200);
	j = resp_json(&r);
	assert_int_equal(rpc_code(j), -32601);
	assert_int_equal(json_integer_value(json_object_get(j, "id")), 7);
	json_decref(j);
	base_http_response_dispose(&r);

	assert_int_equal(post(fx, "{\"jsonrpc\": \"2.0\", \"id\": 8, \"method\": \"tools/call\", \"params\": {}}", &r), 200);
	j = resp_json(&r);
	assert_int_equal(rpc_code(j), -32602);
	json_decref(j);
	base_http_response_dispose(&r);
	assert_int_equal(post(fx, "{\"jsonrpc\": \"2.0\", \"id\": 9, \"method\": \"tools/call\", \"params\": "
				  "{\"name\": \"nope\", \"arguments\": {}}}",
			      &r),
			 200);
	j = resp_json(&r);
	assert_int_equal(rpc_code(j), -32602);
	json_decref(j);
	base_http_response_dispose(&r);
}

static void test_notifications_batches_and_calls(void **state)
{
	fixture *fx = *state;
	base_http_response r;
	assert_int_equal(post(fx, "{\"jsonrpc\": \"2.0\", \"method\": \"notifications/initialized\"}", &r), 202);
	assert_int_equal(r.body.len, 0);
	base_http_response_dispose(&r);
	assert_int_equal(post(fx, "[{\"jsonrpc\": \"2.0\", \"method\": \"notifications/initialized\"},"
				  "{\"jsonrpc\": \"2.0\", \"id\": 5, \"result\": {}}]",
			      &r),
			 202);
	base_http_response_dispose(&r);

	assert_int_equal(post(fx, "[{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \"ping\"},"
				  "{\"jsonrpc\": \"2.0\", \"method\": \"notifications/initialized\"},"
				  "{\"jsonrpc\": \"2.0\", \"id\": 2, \"method\": \"tools/list\"},"
				  "{\"foo\": 1}]",
			      &r),
			 200);
	json_t *j = resp_json(&r);
	assert_true(json_is_array(j));
	assert_int_equal(json_array_size(j), 3);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(j, 0), "id")), 1);
	json_t *tools = json_object_get(json_object_get(json_array_get(j, 1), "result"), "tools");
	assert_int_equal(json_array_size(tools), 11);
	assert_int_equal(rpc_code(json_array_get(j, 2)), -32600);
	json_decref(j);
	base_http_response_dispose(&r);

	/* initialize may not be batched */
	assert_int_equal(post(fx, "[{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \"initialize\", \"params\": "
				  "{\"protocolVersion\": \"2025-06-18\"}}, {\"jsonrpc\": \"2.0\", \"id\": 2, \"method\": \"ping\"}]",
			      &r),
			 400);
	base_http_response_dispose(&r);

	/* a tool call reaches run 1's workspace; a failing tool is a result */
	assert_int_equal(post(fx, "{\"jsonrpc\": \"2.0\", \"id\": 3, \"method\": \"tools/call\", \"params\": "
				  "{\"name\": \"read_file\", \"arguments\": {\"path\": \"a.txt\"}}}",
			      &r),
			 200);
	j = resp_json(&r);
	json_t *res = json_object_get(j, "result");
	assert_false(json_is_true(json_object_get(res, "isError")));
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(res, "content"), 0), "text")),
			    "hello\n");
	json_decref(j);
	base_http_response_dispose(&r);
	assert_int_equal(post(fx, "{\"jsonrpc\": \"2.0\", \"id\": 4, \"method\": \"tools/call\", \"params\": "
				  "{\"name\": \"read_file\", \"arguments\": {\"path\": \"/etc/passwd\"}}}",
			      &r),
			 200);
	j = resp_json(&r);
	assert_true(json_is_true(json_object_get(json_object_get(j, "result"), "isError")));
	json_decref(j);
	base_http_response_dispose(&r);
}

static void test_tokens(void **state)
{
	(void)state;
	char h[AGENT_TOKEN_HASH_LEN + 1];
	assert_int_equal(agent_token_hash(h, "abc", 3), 0);
	assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	char a[AGENT_TOKEN_LEN + 1], b[AGENT_TOKEN_LEN + 1];
	assert_int_equal(agent_token_generate(a), 0);
	assert_int_equal(agent_token_generate(b), 0);
	assert_int_equal(strlen(a), 64);
	assert_int_equal(strspn(a, "0123456789abcdef"), 64);
	assert_string_not_equal(a, b);
	assert_true(agent_token_equal(a, a));
	assert_false(agent_token_equal(a, b));

	/* the store sees hashes only */
	agent_token_store ts;
	assert_int_equal(agent_token_store_memory(&ts), 0);
	assert_int_equal(agent_token_hash(h, a, strlen(a)), 0);
	assert_int_equal(ts.put(ts.self, 42, h), 0);
	assert_int_equal(ts.put(ts.self, 43, a + 1), BASE_EINVALID);
	int64_t run = 0;
	assert_int_equal(ts.find(ts.self, h, &run), 0);
	assert_int_equal(run, 42);
	assert_int_equal(ts.find(ts.self, a, &run), BASE_ENOTFOUND);
	assert_int_equal(ts.del(ts.self, 42), 0);
	assert_int_equal(ts.find(ts.self, h, &run), BASE_ENOTFOUND);
	agent_token_store_dispose(&ts);
}

static void test_register_twice(void **state)
{
	fixture *fx = *state;
	char tok[AGENT_TOKEN_LEN + 1];
	assert_int_equal(agent_mcp_register_run(fx->mcp, 1, fx->t1, tok), BASE_EEXISTS);
	assert_string_equal(tok, "");
}


static void test_sessions_per_run(void **state)
{
	fixture *fx = *state;
	char sid[AGENT_TOKEN_LEN + 1];
	for (int i = 1; i < 8; i++) /* run 1 holds one from the setup */
		initialize(fx, fx->tok1, sid);
	base_http_response r;
	req_spec s = { .token = fx->tok1, .content_type = "application/json", .accept = ACCEPT_BOTH,
		       .body = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
			       "\"2025-06-18\",\"capabilities\":{}}}" };
	assert_int_equal(send_req(fx, &s, &r), 429);
	assert_null(resp_header(&r, "Mcp-Session-Id"));
	json_t *j = resp_json(&r);
	assert_int_equal(rpc_code(j), -32000);
	assert_non_null(strstr(json_string_value(json_object_get(json_object_get(j, "error"), "message")),
			       "Too many sessions for this run: at most 8"));
	json_decref(j);
	base_http_response_dispose(&r);
	assert_int_equal(agent_mcp_session_count(fx->mcp), 8);
	/* another run is not affected */
	initialize(fx, fx->tok2, sid);
	assert_int_equal(agent_mcp_session_count(fx->mcp), 9);
	/* ending one of run 1's sessions makes room again */
	req_spec d = { .method = "DELETE", .token = fx->tok1, .session = fx->sid1 };
	assert_int_equal(send_req(fx, &d, &r), 200);
	base_http_response_dispose(&r);
	initialize(fx, fx->tok1, sid);
}

static void test_batch_caps(void **state)
{
	fixture *fx = *state;
	base_http_response r;
	/* more messages than a batch may hold: refused before any is run */
	base_buf b = BASE_BUF_INIT(1 << 20);
	base_buf_puts(&b, "[");
	for (int i = 0; i < 33; i++)
		base_buf_printf(&b, "%s{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/list\"}", i ? "," : "", i);
	base_buf_puts(&b, "]");
	assert_int_equal(post(fx, base_buf_cstr(&b), &r), 400);
	json_t *j = resp_json(&r);
	assert_int_equal(rpc_code(j), -32600);
	assert_non_null(strstr(json_string_value(json_object_get(json_object_get(j, "error"), "message")), "at most 32"));
	json_decref(j);
	base_http_response_dispose(&r);
	base_buf_dispose(&b);

	/* once the answer is full, the rest of the batch is not run */
	agent_mcp *m = NULL;
	agent_mcp_options o = AGENT_MCP_OPTIONS_INIT;
	o.max_answer = 1000; /* one tools/list answer is larger */
	assert_int_equal(agent_mcp_new(&m, &o), 0);
	char tok[AGENT_TOKEN_LEN + 1], sid[AGENT_TOKEN_LEN + 1];
	assert_int_equal(agent_mcp_register_run(m, 9, fx->t1, tok), 0);
	agent_mcp *saved = fx->mcp;
	fx->mcp = m;
	initialize(fx, tok, sid);
	req_spec s = { .token = tok, .session = sid, .content_type = "application/json", .accept = ACCEPT_BOTH,
		       .body = "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"},"
			       "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"},"
			       "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}]" };
	assert_int_equal(send_req(fx, &s, &r), 200);
	j = resp_json(&r);
	assert_int_equal(json_array_size(j), 3);
	assert_non_null(json_object_get(json_array_get(j, 0), "result"));
	assert_int_equal(rpc_code(json_array_get(j, 1)), -32000);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(j, 1), "id")), 2);
	assert_int_equal(rpc_code(json_array_get(j, 2)), -32000);
	json_decref(j);
	base_http_response_dispose(&r);
	fx->mcp = saved;
	agent_mcp_unregister_run(m, 9);
	agent_mcp_free(m);
}

static int head(fixture *fx, const char *token, const char *method, int64_t length, base_http_response *resp)
{
	base_http_header h[5];
	size_t n = 0;
	char auth[200];
	if (token) {
		snprintf(auth, sizeof(auth), "Bearer %s", token);
		h[n++] = (base_http_header){ "Authorization", auth };
	}
	h[n++] = (base_http_header){ "Content-Type", "application/json" };
	h[n++] = (base_http_header){ "Accept", ACCEPT_BOTH };
	h[n++] = (base_http_header){ "Host", "127.0.0.1:3000" };
	base_http_request req = { 0 };
	req.method = method;
	req.path = "/mcp";
	req.headers = h;
	req.nheaders = n;
	req.peer = "127.0.0.1";
	base_http_response_init(resp);
	return agent_mcp_check_head(&req, length, resp, fx->mcp);
}

static void test_head_check_before_body(void **state)
{
	fixture *fx = *state;
	base_http_response r;
	/* no token, a wrong one: 401 from the head alone */
	assert_int_equal(head(fx, NULL, "POST", 8 << 20, &r), 1);
	assert_int_equal(r.status, 401);
	assert_non_null(resp_header(&r, "WWW-Authenticate"));
	base_http_response_dispose(&r);
	assert_int_equal(head(fx, "0123", "POST", -1, &r), 1);
	assert_int_equal(r.status, 401);
	base_http_response_dispose(&r);
	/* a run's token: the body may come, unless declared too large */
	assert_int_equal(head(fx, fx->tok1, "POST", 100, &r), 0);
	base_http_response_dispose(&r);
	assert_int_equal(head(fx, fx->tok1, "POST", -1, &r), 0);
	base_http_response_dispose(&r);
	assert_int_equal(head(fx, fx->tok1, "POST", (8 << 20) + 1, &r), 1);
	assert_int_equal(r.status, 413);
	base_http_response_dispose(&r);
	assert_int_equal(head(fx, fx->tok1, "GET", -1, &r), 1);
	assert_int_equal(r.status, 405);
	base_http_response_dispose(&r);
	/* the references taken for the check are released: unregistering
	 * does not wait */
	int64_t start = base_mono_ms();
	agent_mcp_unregister_run(fx->mcp, 1);
	assert_true(base_mono_ms() - start < 1000);
}

/* An exec hook that runs until the tools' stop flag is raised (at most 30 s). */
static int waiting_exec(void *payload, const char *command, int timeout_s, size_t cap, const atomic_int *stop,
			agent_exec_result *out)
{
	(void)payload;
	(void)command;
	(void)timeout_s;
	(void)cap;
	for (int i = 0; i < 3000 && !*stop; i++) {
		struct timespec ts = { 0, 10 * 1000000L };
		nanosleep(&ts, NULL);
	}
	out->timed_out = 1;
	out->out = strdup("");
	out->err = strdup("");
	return 0;
}

typedef struct bg_post {
	fixture *fx;
	const char *token, *session;
	int status;
	json_t *answer;
} bg_post;

static void *bg_post_main(void *arg)
{
	bg_post *b = arg;
	base_http_response r;
	req_spec s = { .token = b->token, .session = b->session, .content_type = "application/json",
		       .accept = ACCEPT_BOTH,
		       .body = "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":\"exec\","
			       "\"arguments\":{\"command\":\"sleep 600\"}}}" };
	b->status = send_req(b->fx, &s, &r);
	b->answer = resp_json(&r);
	base_http_response_dispose(&r);
	return NULL;
}

static void test_unregister_stops_call_in_flight(void **state)
{
	fixture *fx = *state;
	agent_tools *t = NULL;
	agent_tools_options o = AGENT_TOOLS_OPTIONS_INIT;
	o.workspace = fx->ws;
	o.base_commit = "HEAD";
	o.hooks.exec = waiting_exec;
	assert_int_equal(agent_tools_new(&t, &o), 0);
	char tok[AGENT_TOKEN_LEN + 1], sid[AGENT_TOKEN_LEN + 1];
	assert_int_equal(agent_mcp_register_run(fx->mcp, 3, t, tok), 0);
	initialize(fx, tok, sid);
	bg_post b = { fx, tok, sid, 0, NULL };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, bg_post_main, &b), 0);
	struct timespec ts = { 0, 300 * 1000000L };
	nanosleep(&ts, NULL);
	/* a cancel: the call in flight is stopped, unregistering returns soon */
	int64_t start = base_mono_ms();
	assert_int_equal(agent_mcp_unregister_run(fx->mcp, 3), 0);
	int64_t ms = base_mono_ms() - start;
	if (ms > 2000)
		fail_msg("unregistering waited %lld ms for the call in flight", (long long)ms);
	pthread_join(th, NULL);
	assert_int_equal(b.status, 200);
	json_t *res = json_object_get(b.answer, "result");
	assert_true(json_is_true(json_object_get(res, "isError")));
	json_decref(b.answer);
	assert_int_equal(agent_tools_ended(t, NULL), 1);
	agent_tools_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_http_method_host_origin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auth, setup, teardown),
		cmocka_unit_test_setup_teardown(test_content_negotiation_and_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sessions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_jsonrpc_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_notifications_batches_and_calls, setup, teardown),
		cmocka_unit_test(test_tokens),
		cmocka_unit_test_setup_teardown(test_register_twice, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sessions_per_run, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_caps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_head_check_before_body, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unregister_stops_call_in_flight, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
