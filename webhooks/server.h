/* The HTTP front: libmicrohttpd in epoll mode, a pool of event threads (one
 * per core by default), each serving many connections.  The only code that
 * touches MHD: it copies each request into a base_http_request, caps its
 * body, calls the route's pure handler and sends the answer.  Nothing may
 * block an event thread: a route either answers at once (`quick`), or
 * waits without a thread (start / submit / finish: the connection is
 * suspended until its answer is ready), or its handler runs on a thread of
 * its own.  Routes are registered before wh_server_start and never change
 * afterwards. */
#ifndef WH_SERVER_H
#define WH_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "base/http.h"

typedef struct wh_server wh_server;

typedef struct wh_route {
	const char *path;              /* exact path, or a prefix when prefix != 0; copied */
	int prefix;
	base_http_handler handler;
	/* Optional: checks on the request head before any body byte is read
	 * (content_length < 0 when not declared).  Returns 1 after filling a
	 * final answer.  Called again with the received size when a body grows
	 * past max_body. */
	int (*head_check)(const base_http_request *req, int64_t content_length, base_http_response *resp, void *payload);
	void *payload;                 /* borrowed */
	size_t max_body;               /* body cap in bytes (0: no body accepted) */
	/* 1: handler never waits (no network, no durable write); it runs on
	 * the event thread.  0: it runs on a thread of its own. */
	int quick;
	/* Optional, instead of handler: a request that waits for something
	 * (a commit) without holding a thread.  start runs on the event thread
	 * and returns 0 with a final answer in resp, 1 with *state to go on, or
	 * a negative code (500).  On 1 the server suspends the connection and
	 * calls submit, which arranges for resume(token) to be called exactly
	 * once, from any thread; then finish fills resp and frees state. */
	int (*start)(const base_http_request *req, base_http_response *resp, void *payload, void **state);
	void (*submit)(void *state, void (*resume)(void *token), void *token);
	int (*finish)(void *state, base_http_response *resp);
} wh_route;

typedef struct wh_server_options {
	const char *host;              /* "127.0.0.1", "::1", "0.0.0.0" */
	int port;                      /* 0: any free port */
	int max_connections;
	int connection_timeout_s;
	size_t max_buffered;           /* bytes of request bodies held at once, all requests
					* together (0: 64 MiB); past it: 503 with Retry-After */
	int threads;                   /* event threads (0: one per online core) */
} wh_server_options;

int wh_server_new(wh_server **out, const wh_server_options *opts);
int wh_server_route(wh_server *srv, const wh_route *route);
int wh_server_start(wh_server *srv);
/* The port actually bound (after start). */
int wh_server_port(const wh_server *srv);
/* Stops accepting new connections; requests in flight go on. */
void wh_server_quiesce(wh_server *srv);
/* Waits until no request is in flight, at most timeout_ms; 0 or BASE_ETIMEOUT. */
int wh_server_wait_idle(wh_server *srv, int timeout_ms);
/* Stops the daemon (closing idle connections) and frees everything. */
void wh_server_free(wh_server *srv);

#endif
