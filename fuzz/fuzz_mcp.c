/* libFuzzer target: the MCP endpoint's JSON-RPC handling.  Each input is
 * the body of a POST /mcp with a valid token and session, so the fuzzer
 * reaches message classification, batches, dispatch and the tools' argument
 * checks.  Tools that write only see a throw-away workspace; exec and
 * measurement have no hooks here.  The endpoint is made once per process
 * (fuzzing harnesses may keep state; perfbot code may not). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/mcp.h"
#include "base/http.h"
#include "base/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static agent_mcp *mcp;
static agent_tools *tools;
static char token[AGENT_TOKEN_LEN + 1];
static char session[AGENT_TOKEN_LEN + 1];
static char auth[AGENT_TOKEN_LEN + 16];

static int post(const char *body, size_t len, base_http_response *resp)
{
	base_http_header h[] = {
		{ "Authorization", auth },
		{ "Content-Type", "application/json" },
		{ "Accept", "application/json, text/event-stream" },
		{ "Host", "127.0.0.1:3000" },
		{ "Mcp-Session-Id", session },
	};
	base_http_request req = { 0 };
	req.method = "POST";
	req.path = "/mcp";
	req.headers = h;
	req.nheaders = session[0] ? 5 : 4;
	req.body = body;
	req.body_len = len;
	base_http_response_init(resp);
	return agent_mcp_handle(&req, resp, mcp);
}

static char ws[64] = "/tmp/perfbot-fuzz-mcp-XXXXXX";

static void cleanup(void)
{
	char cmd[128];
	agent_mcp_unregister_run(mcp, 1);
	agent_mcp_free(mcp);
	agent_tools_free(tools);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", ws);
	if (system(cmd) != 0)
		return;
}

static int init_once(void)
{
	char cmd[256];
	base_log_configure(BASE_LOG_OFF, 0, 2);
	if (!mkdtemp(ws))
		return -1;
	snprintf(cmd, sizeof(cmd), "cd %s && git init -q && echo x > a.txt 2>/dev/null", ws);
	if (system(cmd) != 0)
		return -1;
	agent_tools_options o = AGENT_TOOLS_OPTIONS_INIT;
	o.workspace = ws;
	o.base_commit = "HEAD";
	if (agent_tools_new(&tools, &o) < 0 || agent_mcp_new(&mcp, NULL) < 0 ||
	    agent_mcp_register_run(mcp, 1, tools, token) < 0)
		return -1;
	snprintf(auth, sizeof(auth), "Bearer %s", token);
	atexit(cleanup);
	const char *init = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\"}}";
	base_http_response resp;
	post(init, strlen(init), &resp);
	for (size_t i = 0; i < resp.nheaders; i++)
		if (strcmp(resp.header_names[i], "Mcp-Session-Id") == 0)
			snprintf(session, sizeof(session), "%s", resp.header_values[i]);
	base_http_response_dispose(&resp);
	return session[0] ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!mcp && init_once() < 0)
		abort();
	char *body = malloc(size + 1);
	if (!body)
		return 0;
	memcpy(body, data, size);
	body[size] = '\0';
	base_http_response resp;
	post(body, size, &resp);
	/* every answer is a status the transport defines, with JSON or nothing */
	if (resp.status != 200 && resp.status != 202 && resp.status != 400 && resp.status != 404 && resp.status != 503)
		abort();
	base_http_response_dispose(&resp);
	free(body);
	return 0;
}
