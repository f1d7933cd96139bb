/* perfbot's MCP endpoint: POST / GET / DELETE /mcp, the Streamable HTTP
 * transport of the Model Context Protocol (JSON-RPC 2.0), serving the tools
 * of agent/tools.h to the agent of each active run.
 *
 * A pure handler (base_http_handler): the HTTP front copies the request into
 * an base_http_request and calls agent_mcp_handle with the agent_mcp as
 * payload.  Each request must carry `Authorization: Bearer <run token>`;
 * the token names the run and so its tool context: one run's token never
 * reaches another run.  Sessions (Mcp-Session-Id) are issued on initialize
 * and belong to the run whose token created them.
 *
 * Threading: agent_mcp_handle may run on many threads at once; registration
 * and sessions are guarded by one lock, and tool calls of one run are
 * serialised by its tool context. */
#ifndef AGENT_MCP_H
#define AGENT_MCP_H

#include <stdint.h>

#include "agent/run_token.h"
#include "agent/tools.h"
#include "base/http.h"

typedef struct agent_mcp agent_mcp;

typedef struct agent_mcp_options {
	/* Host header values accepted ("127.0.0.1:3000", "perfbot.example.com"),
	 * NULL-terminated; NULL: localhost, 127.0.0.1 and [::1] on any port. */
	const char *const *allowed_hosts;
	/* Origin values accepted when a request has one ("https://x.example"),
	 * NULL-terminated; NULL: http(s) origins on localhost, 127.0.0.1, [::1].
	 * Requests without Origin (every non-browser client) are accepted. */
	const char *const *allowed_origins;
	/* Where token hashes live; taken over by the endpoint (disposed by
	 * agent_mcp_free).  All zero: an in-memory store. */
	agent_token_store tokens;
	int64_t session_idle_ms;   /* a session unused this long expires (default 1 h) */
	int max_sessions;          /* default 256 */
	int max_sessions_per_run;  /* sessions one run may hold at once (default 8) */
	size_t max_body;           /* bytes of a POST body (default 8 MiB) */
	int max_batch;             /* messages in a JSON-RPC batch (default 32) */
	size_t max_answer;         /* bytes of a batch's answers; requests past it are not run (default 8 MiB) */
	const char *server_version; /* serverInfo.version (default PERFBOT_VERSION or "0") */
} agent_mcp_options;

#define AGENT_MCP_OPTIONS_INIT { NULL, NULL, { NULL, NULL, NULL, NULL, NULL }, 0, 0, 0, 0, 0, 0, NULL }

/* The protocol revisions served, newest first. */
extern const char *const agent_mcp_versions[];

/* Creates the endpoint; option strings are copied. */
int agent_mcp_new(agent_mcp **out, const agent_mcp_options *opts);

/* Frees the endpoint; every run must have been unregistered. NULL is a no-op. */
void agent_mcp_free(agent_mcp *mcp);

/* The base_http_handler for /mcp; payload is the agent_mcp. */
int agent_mcp_handle(const base_http_request *req, base_http_response *resp, void *payload);

/* The checks of a request's head, before any body byte is read (the
 * head_check of webhooks/server.h): method, Host / Origin, bearer token,
 * MCP-Protocol-Version, and for POST Content-Type, Accept and the declared
 * size (content_length < 0: not declared).  Returns 1 after filling the
 * refusal (a missing or invalid token gets its 401 at once, so an
 * unauthenticated body is never read), 0 when the body may be read. */
int agent_mcp_check_head(const base_http_request *req, int64_t content_length, base_http_response *resp, void *payload);

/* Makes run_id's tools reachable: generates a fresh token (written to
 * token_out, the only copy in clear), stores its hash and maps it to
 * `tools` (borrowed until agent_mcp_unregister_run returns).
 * BASE_EEXISTS when the run is registered already. */
int agent_mcp_register_run(agent_mcp *mcp, int64_t run_id, agent_tools *tools, char token_out[AGENT_TOKEN_LEN + 1]);

/* Makes the run unreachable: deletes its token and its sessions, ends its
 * tools (agent_tools_end, which kills the sandbox command of a call in
 * flight), then waits for its calls in flight to return, also when another
 * thread began unregistering it.  Every tool call is bounded and stops when
 * the tools end, so the wait is short.  After it returns the tool context
 * may be freed.  A run not registered is a no-op. */
int agent_mcp_unregister_run(agent_mcp *mcp, int64_t run_id);

/* Number of live sessions (for tests and metrics). */
int agent_mcp_session_count(agent_mcp *mcp);

#endif
