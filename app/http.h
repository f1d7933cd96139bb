/* Plain HTTP request and response structs shared by the HTTP front
 * (webhooks/server.c, the only code that touches libmicrohttpd) and the pure
 * handlers behind it (webhook intake, MCP endpoint, health, metrics, setup
 * pages).  A handler reads an app_http_request and fills an
 * app_http_response; tests call handlers directly with hand-made requests. */
#ifndef APP_HTTP_H
#define APP_HTTP_H

#include <stddef.h>

#include "app/buf.h"

typedef struct app_http_header {
	const char *name;
	const char *value;
} app_http_header;

typedef struct app_http_request {
	const char *method;              /* "POST" */
	const char *path;                /* "/api/github/webhooks", no query */
	const app_http_header *headers;  /* borrowed; names as received */
	size_t nheaders;
	const app_http_header *query;    /* decoded query arguments */
	size_t nquery;
	const char *body;                /* raw bytes, NUL-terminated; may be NULL when empty */
	size_t body_len;
	const char *peer;                /* "127.0.0.1" */
	const char *request_id;          /* for logs */
} app_http_request;

#define APP_HTTP_MAX_EXTRA_HEADERS 8

typedef struct app_http_response {
	int status;
	const char *content_type;        /* static string; default application/json */
	app_buf body;                    /* owned; capped by the handler */
	char *header_names[APP_HTTP_MAX_EXTRA_HEADERS];  /* owned */
	char *header_values[APP_HTTP_MAX_EXTRA_HEADERS]; /* owned */
	size_t nheaders;
	/* Set by handlers for the request log line; borrowed static or owned by
	 * the per-request context for the request's lifetime. */
	char log_delivery[80];
	char log_event[64];
	char log_action[64];
	char log_outcome[32];
} app_http_response;

/* A handler for one route; returns 0 after filling resp, or a negative code
 * for an internal error (answered 500). */
typedef int (*app_http_handler)(const app_http_request *req, app_http_response *resp, void *payload);

void app_http_response_init(app_http_response *resp);
void app_http_response_dispose(app_http_response *resp);

/* Adds a response header (copied). */
int app_http_response_header(app_http_response *resp, const char *name, const char *value);

/* Sets status and a JSON body {"error": reason}. */
int app_http_response_error(app_http_response *resp, int status, const char *reason);

/* Sets status and a JSON body given as text. */
int app_http_response_json(app_http_response *resp, int status, const char *json_text);

/* Case-insensitive header lookup; NULL when absent. */
const char *app_http_request_header(const app_http_request *req, const char *name);

/* Query argument lookup; NULL when absent. */
const char *app_http_request_query(const app_http_request *req, const char *name);

#endif
