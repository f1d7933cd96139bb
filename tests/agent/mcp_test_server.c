/* A stand-alone MCP server for the integration tests: libmicrohttpd on
 * 127.0.0.1 (an ephemeral port) in front of agent_mcp_handle, with one run
 * registered on a work tree, tools hooked to the real bwrap sandbox and the
 * real bench pipeline.  It measures the baseline first, then prints one JSON
 * line {"port", "token", "run"} on stdout and serves until stdin closes; a
 * submission is printed as {"submitted": {"summary", "diff"}}.
 *
 *   mcp_test_server --workspace DIR --repo GITDIR --base SHA [--scratch DIR]
 *                   [--max-tool-calls N] [--max-benchmark-runs N]
 *
 * Test support only: perfbot serve routes /mcp through webhooks/server.c. */
#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "measure/bench.h"
#include "agent/mcp.h"
#include "measure/repo_config.h"
#include "measure/sandbox.h"
#include "agent/tools.h"
#include "agent/tools_run.h"
#include "base/buf.h"
#include "base/error.h"
#include "base/http.h"
#include "base/log.h"

#define MAX_HEADERS 64

typedef struct conn {
	base_buf body;
	base_http_header headers[MAX_HEADERS];
	size_t nheaders;
} conn;

static int collect(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	(void)kind;
	conn *c = cls;
	if (c->nheaders < MAX_HEADERS)
		c->headers[c->nheaders++] = (base_http_header){ key, value ? value : "" };
	return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *connection, const char *url, const char *method,
				  const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
	(void)version;
	agent_mcp *mcp = cls;
	conn *c = *con_cls;
	if (!c) {
		c = calloc(1, sizeof(*c));
		base_buf_init(&c->body, 16u << 20);
		*con_cls = c;
		return MHD_YES;
	}
	if (*upload_size) {
		base_buf_put(&c->body, upload_data, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	base_http_response resp;
	base_http_response_init(&resp);
	if (strcmp(url, "/mcp") != 0) {
		base_http_response_error(&resp, 404, "not found");
	} else {
		c->nheaders = 0;
		MHD_get_connection_values(connection, MHD_HEADER_KIND, (MHD_KeyValueIterator)collect, c);
		base_http_request req = { 0 };
		req.method = method;
		req.path = url;
		req.headers = c->headers;
		req.nheaders = c->nheaders;
		req.body = base_buf_cstr(&c->body);
		req.body_len = c->body.len;
		req.peer = "127.0.0.1";
		if (agent_mcp_handle(&req, &resp, mcp) < 0)
			base_http_response_error(&resp, 500, "internal error");
	}
	struct MHD_Response *r = MHD_create_response_from_buffer(resp.body.len, (void *)base_buf_cstr(&resp.body),
								  MHD_RESPMEM_MUST_COPY);
	if (resp.body.len)
		MHD_add_response_header(r, "Content-Type", resp.content_type);
	for (size_t i = 0; i < resp.nheaders; i++)
		MHD_add_response_header(r, resp.header_names[i], resp.header_values[i]);
	enum MHD_Result ret = MHD_queue_response(connection, (unsigned)resp.status, r);
	MHD_destroy_response(r);
	base_http_response_dispose(&resp);
	return ret;
}

static void on_done(void *cls, struct MHD_Connection *connection, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)connection;
	(void)toe;
	conn *c = *con_cls;
	if (c) {
		base_buf_dispose(&c->body);
		free(c);
	}
	*con_cls = NULL;
}

static int on_submit(void *payload, const char *summary, const char *diff)
{
	(void)payload;
	json_t *o = json_pack("{s:{s:s,s:s}}", "submitted", "summary", summary, "diff", diff);
	char *s = json_dumps(o, JSON_COMPACT);
	printf("%s\n", s);
	fflush(stdout);
	free(s);
	json_decref(o);
	return 0;
}

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	base_buf b = BASE_BUF_INIT(MEASURE_REPO_CONFIG_MAX);
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		base_buf_put(&b, chunk, n);
	fclose(f);
	return base_buf_detach(&b);
}

static int die(const char *what)
{
	fprintf(stderr, "mcp_test_server: %s: %s\n", what, base_error_last());
	return 1;
}

int main(int argc, char **argv)
{
	const char *ws = NULL, *repo = NULL, *base = NULL, *scratch = "/tmp";
	int max_calls = 0, max_runs = 0;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--workspace"))
			ws = argv[i + 1];
		else if (!strcmp(argv[i], "--repo"))
			repo = argv[i + 1];
		else if (!strcmp(argv[i], "--base"))
			base = argv[i + 1];
		else if (!strcmp(argv[i], "--scratch"))
			scratch = argv[i + 1];
		else if (!strcmp(argv[i], "--max-tool-calls"))
			max_calls = (int)strtol(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--max-benchmark-runs"))
			max_runs = (int)strtol(argv[i + 1], NULL, 10);
	}
	if (!ws || !base) {
		fprintf(stderr, "usage: %s --workspace DIR --repo GITDIR --base SHA\n", argv[0]);
		return 2;
	}
	base_log_configure(BASE_LOG_WARN, 0, 2);

	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", ws, MEASURE_REPO_CONFIG_PATH);
	char *yml = read_text(path);
	measure_repo_config *cfg = NULL;
	measure_sandbox *sb = NULL;
	json_t *baseline = NULL;
	if (!yml || measure_repo_config_parse(&cfg, yml, strlen(yml)) < 0)
		return die("repo config");
	free(yml);
	if (measure_sandbox_new(&sb, "bwrap") < 0)
		return die("sandbox");
	if (sb->prepare_dir(sb, ws) < 0 || sb->prepare_dir(sb, scratch) < 0)
		return die("prepare");
	measure_bench_options bo = MEASURE_BENCH_OPTIONS_INIT;
	bo.scratch_dir = scratch;
	if (measure_bench_measure(&baseline, sb, ws, cfg, &bo) < 0)
		return die("baseline");

	agent_run_hooks *rh = NULL;
	agent_run_hooks_options ro = AGENT_RUN_HOOKS_OPTIONS_INIT;
	ro.sandbox = sb;
	ro.workspace = ws;
	ro.scratch_dir = scratch;
	ro.config = cfg;
	ro.baseline = baseline;
	if (agent_run_hooks_new(&rh, &ro) < 0)
		return die("hooks");
	agent_tools_options to = AGENT_TOOLS_OPTIONS_INIT;
	to.workspace = ws;
	to.repo_path = repo;
	to.base_commit = base;
	to.max_tool_calls = max_calls;
	to.max_benchmark_runs = max_runs;
	agent_run_hooks_fill(&to.hooks, rh);
	to.hooks.submit = on_submit;
	agent_tools *tools = NULL;
	agent_mcp *mcp = NULL;
	char token[AGENT_TOKEN_LEN + 1];
	if (agent_tools_new(&tools, &to) < 0 || agent_mcp_new(&mcp, NULL) < 0 ||
	    agent_mcp_register_run(mcp, 1, tools, token) < 0)
		return die("mcp");

	struct sockaddr_in addr;
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = 0;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
							MHD_USE_ERROR_LOG,
						0, NULL, NULL, on_request, mcp, MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL,
						MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_END);
	if (!d) {
		fprintf(stderr, "mcp_test_server: cannot listen\n");
		return 1;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	printf("{\"port\":%u,\"token\":\"%s\",\"run\":1}\n", info ? info->port : 0, token);
	fflush(stdout);

	char buf[256];
	while (fread(buf, 1, sizeof(buf), stdin) > 0)
		;
	MHD_stop_daemon(d);
	agent_tools_end(tools, "cancelled");
	agent_mcp_unregister_run(mcp, 1);
	agent_mcp_free(mcp);
	agent_tools_free(tools);
	agent_run_hooks_free(rh);
	json_decref(baseline);
	measure_repo_config_free(cfg);
	measure_sandbox_free(sb);
	return 0;
}
