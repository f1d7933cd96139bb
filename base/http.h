/* Plain HTTP request and response structs shared by the HTTP front
 * (webhooks/server.c, the only code that touches libmicrohttpd) and the pure
 * handlers behind it (webhook intake, MCP endpoint, health, metrics, setup
 * pages).  A handler reads a base_http_request and fills an
 * base_http_response; tests call handlers directly with hand-made requests. */
#ifndef BASE_HTTP_H
#define BASE_HTTP_H

#include <stddef.h>

#include "base/buf.h"

typedef struct base_http_header {
	const char *name;
	const char *value;
} base_http_header;

typedef struct base_http_request {
	const char *method;              /* "POST" */
	const char *path;                /* "/api/github/webhooks", no query */
	const base_http_header *headers;  /* borrowed; names as received */
	size_t nheaders;
	const base_http_header *query;    /* decoded query arguments */
	size_t nquery;
	const char *body;                /* raw bytes, NUL-terminated; may be NULL when empty */
	size_t body_len;
	const char *peer;                /* "127.0.0.1" */
	const char *request_id;          /* for logs */
} base_http_request;

#define BASE_HTTP_MAX_EXTRA_HEADERS 8

typedef struct base_http_response {
	int status;
	const char *content_type;        /* static string; default application/json */
	base_buf body;                    /* owned; capped by the handler */
	char *header_names[BASE_HTTP_MAX_EXTRA_HEADERS];  /* owned */
	char *header_values[BASE_HTTP_MAX_EXTRA_HEADERS]; /* owned */
	size_t nheaders;
	/* Set by handlers for the request log line; borrowed static or owned by
	 * the per-request context for the request's lifetime. */
	char log_delivery[80];
	char log_event[64];
	char log_action[64];
	char log_outcome[32];
} base_http_response;

/* A handler for one route; returns 0 after filling resp, or a negative code
 * for an internal error (answered 500). */
typedef int (*base_http_handler)(const base_http_request *req, base_http_response *resp, void *payload);

void base_http_response_init(base_http_response *resp);
void base_http_response_dispose(base_http_response *resp);

/* Adds a response header (copied). */
int base_http_response_header(base_http_response *resp, const char *name, const char *value);

/* Sets status and a JSON body {"error": reason}. */
int base_http_response_error(base_http_response *resp, int status, const char *reason);

/* Sets status and a JSON body given as text. */
int base_http_response_json(base_http_response *resp, int status, const char *json_text);

/* Case-insensitive header lookup; NULL when absent. */
const char *base_http_request_header(const base_http_request *req, const char *name);

/* Query argument lookup; NULL when absent. */
const char *base_http_request_query(const base_http_request *req, const char *name);

#endif
