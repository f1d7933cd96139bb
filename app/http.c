/* Helpers for the plain request / response structs (see http.h). */
#include "app/http.h"
#include "app/error.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RESPONSE_CAP (64u << 20)

void app_http_response_init(app_http_response *resp)
{
	memset(resp, 0, sizeof(*resp));
	resp->status = 200;
	resp->content_type = "application/json";
	app_buf_init(&resp->body, RESPONSE_CAP);
}

void app_http_response_dispose(app_http_response *resp)
{
	if (!resp)
		return;
	app_buf_dispose(&resp->body);
	for (size_t i = 0; i < resp->nheaders; i++) {
		free(resp->header_names[i]);
		free(resp->header_values[i]);
	}
	resp->nheaders = 0;
}

int app_http_response_header(app_http_response *resp, const char *name, const char *value)
{
	if (resp->nheaders >= APP_HTTP_MAX_EXTRA_HEADERS)
		return app_error_set(APP_ETOOBIG, "too many response headers");
	char *n = strdup(name), *v = strdup(value);
	if (!n || !v) {
		free(n);
		free(v);
		return app_error_set(APP_ENOMEM, "out of memory");
	}
	resp->header_names[resp->nheaders] = n;
	resp->header_values[resp->nheaders] = v;
	resp->nheaders++;
	return 0;
}

int app_http_response_error(app_http_response *resp, int status, const char *reason)
{
	json_t *o = json_pack("{s:s}", "error", reason);
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!s)
		return app_error_set(APP_ENOMEM, "out of memory");
	int error = app_http_response_json(resp, status, s);
	free(s);
	return error;
}

int app_http_response_json(app_http_response *resp, int status, const char *json_text)
{
	resp->status = status;
	resp->content_type = "application/json";
	app_buf_reset(&resp->body);
	return app_buf_puts(&resp->body, json_text);
}

const char *app_http_request_header(const app_http_request *req, const char *name)
{
	for (size_t i = 0; i < req->nheaders; i++)
		if (strcasecmp(req->headers[i].name, name) == 0)
			return req->headers[i].value;
	return NULL;
}

const char *app_http_request_query(const app_http_request *req, const char *name)
{
	for (size_t i = 0; i < req->nquery; i++)
		if (strcmp(req->query[i].name, name) == 0)
			return req->query[i].value;
	return NULL;
}
