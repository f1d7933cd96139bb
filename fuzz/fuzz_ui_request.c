/* libFuzzer target: the dashboard's handling of a request from anyone: the
 * path (routing, ids, owner/name), the Cookie header (session and sign-in
 * state), Host and peer (the local viewer), the query (next, limit,
 * metric, branch, code, state) and X-CSRF-Token.  The input is lines:
 * method, path, cookie, host, peer, csrf, then query arguments "k=v".
 * GitHub is a stand-in that answers with one readable repository; the
 * store is a SQLite file in a private temporary directory, made once. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/error.h"
#include "ui/ui.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int f_exchange(void *p, const char *code, const char *redirect_uri, char **token_out)
{
	(void)p;
	(void)redirect_uri;
	if (strcmp(code, "good"))
		return base_error_set(BASE_EAUTH, "bad code");
	return (*token_out = strdup("ghu_fuzz")) ? 0 : BASE_ENOMEM;
}

static int f_user(void *p, const char *token, json_t **out)
{
	(void)p;
	(void)token;
	*out = json_pack("{s:s, s:i}", "login", "fuzz", "id", 1);
	return 0;
}

static int f_repositories(void *p, const char *token, json_t **out)
{
	(void)p;
	(void)token;
	*out = json_pack("[{s:s, s:b, s:s, s:i}]", "full_name", "o/r", "private", 1, "default_branch", "main",
			 "installation_id", 1);
	return 0;
}

static int f_permission(void *p, int64_t inst, const char *full_name, const char *login, char **perm_out)
{
	(void)p;
	(void)inst;
	(void)full_name;
	(void)login;
	*perm_out = strdup("read");
	return 0;
}

static char dir[64];
static store *st;
static ui_ctx *ui;
static base_config cfg;
static const ui_github gh = { f_exchange, f_user, f_repositories, f_permission, NULL };

static void cleanup(void)
{
	ui_free(ui);
	store_free(st);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

static int init(void)
{
	char url[128];
	snprintf(dir, sizeof(dir), "/tmp/perfbot-fuzz-ui-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(url, sizeof(url), "sqlite:%s/perfbot.db", dir);
	if (store_open(&st, url) < 0)
		return -1;
	cfg.github_client_id = "cid";
	cfg.github_client_secret = "secret";
	cfg.public_url = "https://perfbot.example.com";
	store_run_spec spec = { .kind = STORE_RUN_AGENT, .repository = "o/r", .installation_id = 1, .head_sha = "a",
				.branch = "main", .trigger = "push" };
	store_run_create(st, NULL, &spec);
	spec.installation_id = 0;
	spec.repository = "/local";
	store_run_create(st, NULL, &spec);
	ui_options o = { .cfg = &cfg, .store = st, .github = &gh };
	if (ui_new(&ui, &o) < 0)
		return -1;
	/* a session the inputs may name: id "00…0" */
	store_session s = { .id_hash = "60e05bd1b195af2f94112fa7197a5c88289058840ce7c6df9693756bc6250f55", .login = "fuzz",
			    .token = "ghu_fuzz", .csrf = "c", .created_ms = 0, .expires_ms = INT64_MAX };
	store_session_put(st, &s);
	atexit(cleanup);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!ui && init() < 0)
		abort();
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	char *fields[6] = { "GET", "/api/v1/me", "", "localhost", "127.0.0.1", "" };
	base_http_header query[8], headers[4];
	size_t nquery = 0, nheaders = 0;
	char *p = text;
	for (size_t i = 0; p; i++) {
		char *nl = strchr(p, '\n');
		if (nl)
			*nl = '\0';
		if (i < 6) {
			fields[i] = p;
		} else if (nquery < 8) {
			char *eq = strchr(p, '=');
			if (eq) {
				*eq = '\0';
				query[nquery++] = (base_http_header){ p, eq + 1 };
			}
		}
		p = nl ? nl + 1 : NULL;
	}
	headers[nheaders++] = (base_http_header){ "Cookie", fields[2] };
	headers[nheaders++] = (base_http_header){ "Host", fields[3] };
	headers[nheaders++] = (base_http_header){ "X-CSRF-Token", fields[5] };
	/* the HTTP front only routes these prefixes here */
	if (strncmp(fields[1], "/ui", 3) && strncmp(fields[1], "/api/v1/", 8) && strncmp(fields[1], "/auth/", 6)) {
		free(text);
		return 0;
	}
	base_http_request req = { .method = fields[0], .path = fields[1], .headers = headers, .nheaders = nheaders,
				  .query = query, .nquery = nquery, .peer = fields[4] };
	base_http_response resp;
	base_http_response_init(&resp);
	ui_handle(&req, &resp, ui);
	base_http_response_dispose(&resp);
	free(text);
	return 0;
}
