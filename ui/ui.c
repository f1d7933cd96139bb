/* The dashboard's front door (see ui.h): security headers on every answer,
 * /auth to auth.c, /api/v1 to api.c, /ui to the compiled-in pages.  The
 * pages route on the client: a /ui/ path that is not a file is the index
 * page.  Any thread; the only shared state is the access cache
 * (access.c), under ui->mu. */
#include "ui/ui_int.h"
#include "ui/assets.h"
#include "base/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char CSP[] = "default-src 'self'; img-src 'self' data: https://avatars.githubusercontent.com; "
			  "style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
			  "form-action 'self'";

int64_t ui_now_ms(const ui_ctx *ui)
{
	return ui->clock->wall_ms(ui->clock->payload);
}

int ui_reply(base_http_response *resp, int status, json_t *root)
{
	if (!root)
		return base_error_set(BASE_ENOMEM, "out of memory");
	char *text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	if (!text)
		return base_error_set(BASE_ENOMEM, "out of memory");
	int error = base_http_response_json(resp, status, text);
	free(text);
	return error;
}

int ui_error(base_http_response *resp, int status, const char *sentence)
{
	return base_http_response_error(resp, status, sentence);
}

int ui_hidden(const ui_who *who, base_http_response *resp)
{
	if (who->signed_in)
		return ui_error(resp, 404, "not found");
	return ui_reply(resp, 401, json_pack("{s:s, s:s}", "error", "sign in to see this", "sign_in", "/auth/login"));
}

int ui_new(ui_ctx **out, const ui_options *o)
{
	ui_ctx *ui = calloc(1, sizeof(*ui));
	*out = NULL;
	if (!ui)
		return base_error_set(BASE_ENOMEM, "out of memory");
	ui->cfg = o->cfg;
	ui->store = o->store;
	ui->agent = o->agent;
	if (o->github)
		ui->gh = *o->github;
	ui->clock = o->clock ? o->clock : base_clock_system();
	ui->access_ttl_ms = (int64_t)(o->access_ttl_s > 0 ? o->access_ttl_s : 300) * 1000;
	ui->session_ttl_ms = (int64_t)(o->session_ttl_s > 0 ? o->session_ttl_s : 8 * 3600) * 1000;
	const char *pub = o->cfg && o->cfg->public_url ? o->cfg->public_url : "";
	snprintf(ui->public_url, sizeof(ui->public_url), "%s", pub);
	size_t n = strlen(ui->public_url);
	while (n > 0 && ui->public_url[n - 1] == '/')
		ui->public_url[--n] = '\0';
	ui->secure = strncmp(ui->public_url, "https://", 8) == 0;
	if (o->cfg && o->cfg->github_web_url)
		snprintf(ui->web_url, sizeof(ui->web_url), "%s", o->cfg->github_web_url);
	else if (o->cfg && o->cfg->ghe_host)
		snprintf(ui->web_url, sizeof(ui->web_url), "https://%s", o->cfg->ghe_host);
	else
		snprintf(ui->web_url, sizeof(ui->web_url), "https://github.com");
	n = strlen(ui->web_url);
	while (n > 0 && ui->web_url[n - 1] == '/')
		ui->web_url[--n] = '\0';
	pthread_mutex_init(&ui->mu, NULL);
	*out = ui;
	return 0;
}

void ui_free(ui_ctx *ui)
{
	if (!ui)
		return;
	for (size_t i = 0; i < UI_ACCESS_SLOTS; i++)
		json_decref(ui->access[i].repos);
	for (size_t i = 0; i < UI_THRESHOLD_SLOTS; i++)
		json_decref(ui->thresholds[i].per);
	for (size_t i = 0; i < UI_SERIES_SLOTS; i++) {
		json_decref(ui->series[i].per);
		free(ui->series[i].text);
	}
	pthread_mutex_destroy(&ui->mu);
	free(ui);
}

static int is_under(const char *path, const char *prefix)
{
	size_t n = strlen(prefix);
	return strncmp(path, prefix, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* Whether an Accept-Encoding header takes gzip (not with q=0). */
static int accepts_gzip(const char *h)
{
	for (const char *p = h; p && (p = strcasestr(p, "gzip")); p += 4) {
		const char *q = p + 4;
		while (*q == ' ')
			q++;
		if (*q == ';') {
			const char *v = strstr(q, "q=");
			if (v && v[2] == '0' && (v[3] == '\0' || v[3] == ',' || (v[3] == '.' && strspn(v + 4, "0") > 0 &&
									   !strchr("123456789", v[4 + strspn(v + 4, "0")]))))
				return 0;
		}
		return 1;
	}
	return 0;
}

/* GET /ui/...: a file of the pages, else (no extension: a page's route)
 * the index page. */
static int serve_asset(const base_http_request *req, base_http_response *resp)
{
	if (strcmp(req->method, "GET") && strcmp(req->method, "HEAD")) {
		base_http_response_header(resp, "Allow", "GET");
		return ui_error(resp, 405, "method not allowed");
	}
	const char *p = req->path + 3; /* after "/ui" */
	const ui_asset *a = NULL;
	if (!*p) {
		base_http_response_header(resp, "Location", "/ui/");
		resp->status = 302;
		return 0;
	}
	const char *last = strrchr(p, '/');
	int is_file = strchr(last ? last : p, '.') != NULL;
	if (!strcmp(p, "/") || ui_asset_find(p, &a) < 0) {
		if (is_file && strcmp(p, "/"))
			return ui_error(resp, 404, "not found");
		if (ui_asset_find("/index.html", &a) < 0)
			return ui_error(resp, 404, "not found");
	}
	const char *inm = base_http_request_header(req, "If-None-Match");
	if (a->etag)
		base_http_response_header(resp, "ETag", a->etag);
	/* the index page names the hashed files: always asked again */
	base_http_response_header(resp, "Cache-Control", strcmp(a->path, "/index.html") ? "public, max-age=3600" : "no-cache");
	if (inm && a->etag && strcmp(inm, a->etag) == 0) {
		resp->status = 304;
		return 0;
	}
	resp->status = 200;
	resp->content_type = a->content_type;
	base_buf_reset(&resp->body);
	if (a->gzip) {
		base_http_response_header(resp, "Vary", "Accept-Encoding");
		if (accepts_gzip(base_http_request_header(req, "Accept-Encoding"))) {
			base_http_response_header(resp, "Content-Encoding", "gzip");
			return base_buf_put(&resp->body, a->gzip, a->gzip_len);
		}
	}
	return base_buf_put(&resp->body, a->bytes, a->len);
}

int ui_handle(const base_http_request *req, base_http_response *resp, void *payload)
{
	ui_ctx *ui = payload;
	int error = 0;
	base_http_response_header(resp, "Content-Security-Policy", CSP);
	base_http_response_header(resp, "X-Content-Type-Options", "nosniff");
	base_http_response_header(resp, "Referrer-Policy", "same-origin");
	snprintf(resp->log_outcome, sizeof(resp->log_outcome), "ui");
	if (is_under(req->path, "/ui"))
		return serve_asset(req, resp);
	if (is_under(req->path, "/auth"))
		return ui_auth_handle(ui, req, resp);
	if (!is_under(req->path, "/api/v1"))
		return ui_error(resp, 404, "not found");
	base_http_response_header(resp, "Cache-Control", "no-store");
	ui_who who;
	if ((error = ui_who_get(ui, req, &who)) < 0)
		return error;
	error = ui_api_handle(ui, &who, req, resp);
	ui_who_dispose(&who);
	return error;
}
