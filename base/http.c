/* Helpers for the plain request / response structs (see http.h). */
#include "base/http.h"
#include "base/error.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RESPONSE_CAP (64u << 20)

void base_http_response_init(base_http_response *resp)
{
	memset(resp, 0, sizeof(*resp));
	resp->status = 200;
	resp->content_type = "application/json";
	base_buf_init(&resp->body, RESPONSE_CAP);
}

void base_http_response_dispose(base_http_response *resp)
{
	if (!resp)
		return;
	base_buf_dispose(&resp->body);
	for (size_t i = 0; i < resp->nheaders; i++) {
		free(resp->header_names[i]);
		free(resp->header_values[i]);
	}
	resp->nheaders = 0;
}

int base_http_response_header(base_http_response *resp, const char *name, const char *value)
{
	if (resp->nheaders >= BASE_HTTP_MAX_EXTRA_HEADERS)
		return base_error_set(BASE_ETOOBIG, "too many response headers");
	char *n = strdup(name), *v = strdup(value);
	if (!n || !v) {
		free(n);
		free(v);
		return base_error_set(BASE_ENOMEM, "out of memory");
	}
	resp->header_names[resp->nheaders] = n;
	resp->header_values[resp->nheaders] = v;
	resp->nheaders++;
	return 0;
}

int base_http_response_error(base_http_response *resp, int status, const char *reason)
{
	json_t *o = json_pack("{s:s}", "error", reason);
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!s)
		return base_error_set(BASE_ENOMEM, "out of memory");
	int error = base_http_response_json(resp, status, s);
	free(s);
	return error;
}

int base_http_response_json(base_http_response *resp, int status, const char *json_text)
{
	resp->status = status;
	resp->content_type = "application/json";
	base_buf_reset(&resp->body);
	return base_buf_puts(&resp->body, json_text);
}

const char *base_http_request_header(const base_http_request *req, const char *name)
{
	for (size_t i = 0; i < req->nheaders; i++)
		if (strcasecmp(req->headers[i].name, name) == 0)
			return req->headers[i].value;
	return NULL;
}

const char *base_http_request_query(const base_http_request *req, const char *name)
{
	for (size_t i = 0; i < req->nquery; i++)
		if (strcmp(req->query[i].name, name) == 0)
			return req->query[i].value;
	return NULL;
}
