/* HTTP front on libmicrohttpd (see server.h).
 *
 * Threading: one MHD daemon per event thread (epoll), each serving many
 * connections, so nothing on them may block.  The daemons listen on the
 * same port with SO_REUSEPORT: the kernel spreads new connections over
 * them evenly (a shared listening socket lets whichever thread wakes first
 * take a burst of them, leaving one thread all the work).  A route with start / submit /
 * finish (the webhook intake) is checked on the event thread, then its
 * connection is suspended while it waits (for the group commit) and resumed
 * by whichever thread has its answer; a route not marked quick runs its
 * handler on a detached thread of its own the same way (suspend, run,
 * resume), so a slow handler (GitHub calls, MCP tools) never stalls the
 * event thread's other connections.  A suspended request's req_ctx has two
 * holders, MHD and the thread that resumes it: whichever lets go last (the
 * completion callback, or resume once it has returned from MHD) frees it,
 * so neither waits for the other.  Per-request state lives in one req_ctx
 * allocated on the first callback and, for a request never suspended,
 * freed in MHD's completion callback.  Bodies are
 * accumulated into a capped base_buf: a declared Content-Length over the cap
 * is refused before reading; a chunked body that outgrows it is discarded
 * (counted, not stored) and answered 413 when the upload ends.
 *
 * The bodies of all requests in flight together hold at most max_buffered
 * bytes: after a route's head checks, a declared body takes its size from
 * that budget before a byte is read (a body of unknown size takes it as it
 * comes); a request the budget has no room for is answered 503 with
 * Retry-After and its body is never stored.  So 1,024 connections cannot
 * make perfbot hold 1,024 bodies of the largest size. */
#include "webhooks/server.h"
#include "base/error.h"
#include "base/log.h"
#include "base/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_ROUTES 16
#define MAX_HEADERS 128
#define MAX_QUERY 32
#define DISCARD_FACTOR 4 /* past cap × this, an oversized upload is cut off */
#define DEFAULT_MAX_BUFFERED ((size_t)64 << 20)
#define RESERVE_STEP ((size_t)64 << 10) /* a body of unknown size reserves this much at a time */
#define BUSY_RETRY_AFTER "5"            /* seconds, when the body budget is spent */

#define MAX_DAEMONS 64

struct wh_server {
	struct MHD_Daemon *daemons[MAX_DAEMONS]; /* one per event thread */
	int ndaemons;
	wh_route routes[MAX_ROUTES];
	size_t nroutes;
	char *host;
	int port;
	int max_connections;
	int timeout_s;
	int threads;
	atomic_int in_flight;
	int quiesced;
	size_t max_buffered;        /* bytes of bodies held at once, all requests together */
	atomic_size_t buffered;     /* bytes reserved by requests in flight */
};

struct req_ctx {
	wh_server *srv;
	const wh_route *route;
	base_buf body;
	uint64_t received;          /* every body byte, kept or discarded */
	size_t reserved;            /* bytes of the server's body budget held by this request */
	int too_large;
	int over_budget;            /* the budget had no room: discarded, answered 503 */
	int answered;
	base_http_header headers[MAX_HEADERS];
	size_t nheaders;
	base_http_header query[MAX_QUERY];
	size_t nquery;
	char peer[INET6_ADDRSTRLEN];
	struct timespec start;
	char status_s[8];
	/* a request answered later (route start, or a handler on its own thread) */
	struct MHD_Connection *conn;
	const char *method;         /* MHD's; valid for the request */
	const char *url;
	int waiting;                /* suspended; the answer comes after resume */
	atomic_int holders;         /* suspended: MHD and the resumer; the last frees */
	void *state;                /* the route's, between start and finish */
	base_http_response oresp;   /* a handler run on its own thread: its answer */
	int oerror;
};

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	base_log(BASE_LOG_WARN, "http", "detail", msg, NULL);
}

int wh_server_new(wh_server **out, const wh_server_options *opts)
{
	wh_server *s = calloc(1, sizeof(*s));
	if (!s || !(s->host = strdup(opts->host ? opts->host : "127.0.0.1"))) {
		free(s);
		return base_error_set(BASE_ENOMEM, "out of memory");
	}
	s->port = opts->port;
	s->max_connections = opts->max_connections > 0 ? opts->max_connections : 1024;
	s->timeout_s = opts->connection_timeout_s > 0 ? opts->connection_timeout_s : 30;
	s->max_buffered = opts->max_buffered > 0 ? opts->max_buffered : DEFAULT_MAX_BUFFERED;
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	s->threads = opts->threads > 0 ? opts->threads : cores > 0 ? (int)cores : 1;
	if (s->threads > MAX_DAEMONS)
		s->threads = MAX_DAEMONS;
	atomic_init(&s->in_flight, 0);
	atomic_init(&s->buffered, 0);
	*out = s;
	return 0;
}

int wh_server_route(wh_server *srv, const wh_route *route)
{
	if (srv->nroutes >= MAX_ROUTES)
		return base_error_set(BASE_ETOOBIG, "too many routes");
	wh_route *r = &srv->routes[srv->nroutes];
	*r = *route;
	r->path = strdup(route->path);
	if (!r->path)
		return base_error_set(BASE_ENOMEM, "out of memory");
	srv->nroutes++;
	return 0;
}

static const wh_route *find_route(const wh_server *srv, const char *path)
{
	for (size_t i = 0; i < srv->nroutes; i++) {
		const wh_route *r = &srv->routes[i];
		if (r->prefix ? strncmp(path, r->path, strlen(r->path)) == 0 : strcmp(path, r->path) == 0)
			return r;
	}
	return NULL;
}

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct req_ctx *c = cls;
	if (kind == MHD_HEADER_KIND) {
		if (c->nheaders < MAX_HEADERS) {
			c->headers[c->nheaders].name = key;
			c->headers[c->nheaders].value = value ? value : "";
			c->nheaders++;
		}
	} else if (kind == MHD_GET_ARGUMENT_KIND) {
		if (c->nquery < MAX_QUERY) {
			c->query[c->nquery].name = key;
			c->query[c->nquery].value = value ? value : "";
			c->nquery++;
		}
	}
	return MHD_YES;
}

static double elapsed_s(const struct timespec *start)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static enum MHD_Result send_response(struct MHD_Connection *conn, struct req_ctx *c, base_http_response *resp,
				     const char *method, const char *path)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(resp->body.len, resp->body.ptr ? resp->body.ptr : "",
								 MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	if (resp->content_type)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, resp->content_type);
	for (size_t i = 0; i < resp->nheaders; i++)
		MHD_add_response_header(r, resp->header_names[i], resp->header_values[i]);
	enum MHD_Result ret = MHD_queue_response(conn, (unsigned int)resp->status, r);
	MHD_destroy_response(r);
	c->answered = 1;

	double secs = elapsed_s(&c->start);
	char labels[160];
	snprintf(labels, sizeof(labels), "route=\"%s\"", c->route ? c->route->path : "none");
	base_metric_observe(base_metric_histogram("perfbot_http_request_duration_seconds", "HTTP request duration", labels),
			   secs);
	if (base_log_enabled(BASE_LOG_INFO)) {
		char status[8], ms[32];
		snprintf(status, sizeof(status), "%d", resp->status);
		snprintf(ms, sizeof(ms), "%.2f", secs * 1000.0);
		base_log(resp->status >= 500 ? BASE_LOG_ERROR : BASE_LOG_INFO, "request", "method", method, "path", path,
			"status", status, "duration_ms", ms, "peer", c->peer,
			"delivery", resp->log_delivery[0] ? resp->log_delivery : NULL,
			"event", resp->log_event[0] ? resp->log_event : NULL,
			"action", resp->log_action[0] ? resp->log_action : NULL,
			"outcome", resp->log_outcome[0] ? resp->log_outcome : NULL, NULL);
	}
	return ret;
}

static void fill_request(base_http_request *req, struct req_ctx *c, const char *method, const char *url)
{
	memset(req, 0, sizeof(*req));
	req->method = method;
	req->path = url;
	req->headers = c->headers;
	req->nheaders = c->nheaders;
	req->query = c->query;
	req->nquery = c->nquery;
	req->body = c->body.ptr;
	req->body_len = c->body.len;
	req->peer = c->peer;
}

/* Takes n more bytes of the server's body budget for c; 0, or -1 (nothing
 * taken) when the budget has no room. */
static int budget_take(wh_server *srv, struct req_ctx *c, size_t n)
{
	size_t cur = atomic_load(&srv->buffered);
	do {
		if (n > srv->max_buffered || cur > srv->max_buffered - n)
			return -1;
	} while (!atomic_compare_exchange_weak(&srv->buffered, &cur, cur + n));
	c->reserved += n;
	return 0;
}

/* The answer when the body budget is spent: retry later, never a 2xx. */
static void answer_busy(base_http_response *resp)
{
	base_http_response_header(resp, "Retry-After", BUSY_RETRY_AFTER);
	snprintf(resp->log_outcome, sizeof(resp->log_outcome), "busy");
	base_http_response_error(resp, 503, "busy: too many request bodies in flight; retry later");
}

static void ctx_free(struct req_ctx *c)
{
	wh_server *srv = c->srv;
	if (c->conn) {
		if (c->state && c->route->finish) {
			base_http_response r;
			base_http_response_init(&r);
			c->route->finish(c->state, &r);
			base_http_response_dispose(&r);
		}
		base_http_response_dispose(&c->oresp);
	}
	base_buf_dispose(&c->body);
	atomic_fetch_sub(&srv->buffered, c->reserved);
	free(c);
	atomic_fetch_sub(&srv->in_flight, 1);
}

/* A holder of a suspended request's ctx lets go. */
static void ctx_release(struct req_ctx *c)
{
	if (atomic_fetch_sub(&c->holders, 1) == 1)
		ctx_free(c);
}

/* Called once per suspended request, from any thread, when its answer is
 * ready.  The event thread may answer and complete the request before
 * MHD_resume_connection returns here: the ctx stays until both let go. */
static void resume(void *token)
{
	struct req_ctx *c = token;
	MHD_resume_connection(c->conn);
	ctx_release(c);
}

/* Suspends the connection before anything can resume it. */
static void wait_for(struct req_ctx *c, struct MHD_Connection *conn, const char *method, const char *url)
{
	c->conn = conn;
	c->method = method;
	c->url = url;
	c->waiting = 1;
	atomic_store(&c->holders, 2);
	MHD_suspend_connection(conn);
}

/* A handler that may block, on a thread of its own. */
static void *run_handler(void *arg)
{
	struct req_ctx *c = arg;
	base_http_request req;
	fill_request(&req, c, c->method, c->url);
	base_http_response_init(&c->oresp);
	c->oerror = c->route->handler(&req, &c->oresp, c->route->payload);
	resume(c);
	return NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				  const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	(void)version;
	wh_server *srv = cls;
	struct req_ctx *c = *con_cls;
	base_http_request req;
	base_http_response resp;

	if (!c) {
		c = calloc(1, sizeof(*c));
		if (!c)
			return MHD_NO;
		*con_cls = c;
		c->srv = srv;
		atomic_fetch_add(&srv->in_flight, 1);
		clock_gettime(CLOCK_MONOTONIC, &c->start);
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		if (ci && ci->client_addr) {
			const struct sockaddr *sa = ci->client_addr;
			if (sa->sa_family == AF_INET)
				inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, c->peer,
					  sizeof(c->peer));
			else if (sa->sa_family == AF_INET6)
				inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, c->peer,
					  sizeof(c->peer));
		}
		MHD_get_connection_values(conn, MHD_HEADER_KIND | MHD_GET_ARGUMENT_KIND, collect_header, c);
		c->route = find_route(srv, url);
		base_buf_init(&c->body, c->route ? c->route->max_body : 0);
		base_http_response_init(&resp);
		enum MHD_Result ret = MHD_YES;
		if (!c->route) {
			base_http_response_error(&resp, 404, "not found");
			ret = send_response(conn, c, &resp, method, url);
		} else {
			int64_t cl = -1;
			const char *cls_h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
			if (cls_h) {
				char *end;
				errno = 0;
				unsigned long long v = strtoull(cls_h, &end, 10);
				cl = (errno || *end) ? INT64_MAX : (v > INT64_MAX ? INT64_MAX : (int64_t)v);
			}
			fill_request(&req, c, method, url);
			int answered = c->route->head_check && c->route->head_check(&req, cl, &resp, c->route->payload);
			/* after the head's own checks, in their order: a declared
			 * body takes its room in the budget before a byte of it is
			 * read, or is refused at once */
			if (!answered && cl > 0 && (uint64_t)cl <= c->route->max_body && budget_take(srv, c, (size_t)cl) < 0) {
				answer_busy(&resp);
				answered = 1;
			}
			if (answered) {
				ret = send_response(conn, c, &resp, method, url);
			} else if (cl > 0 && (uint64_t)cl <= c->route->max_body && cl <= (1 << 20)) {
				/* one allocation for an honest declared size; the cap still rules */
				base_buf_reserve(&c->body, (size_t)cl);
			}
		}
		base_http_response_dispose(&resp);
		return ret;
	}

	if (*upload_data_size > 0) {
		size_t n = *upload_data_size;
		c->received += n;
		if (!c->too_large && !c->over_budget && c->route && c->body.len + n <= c->route->max_body &&
		    c->body.len + n > c->reserved) {
			/* a body of undeclared size takes its room as it comes */
			size_t want = c->body.len + n - c->reserved;
			want = want < RESERVE_STEP ? RESERVE_STEP : want;
			if (c->reserved + want > c->route->max_body)
				want = c->route->max_body - c->reserved;
			if (budget_take(srv, c, want) < 0) {
				c->over_budget = 1;
				base_buf_dispose(&c->body);
			}
		}
		if (!c->too_large && !c->over_budget && base_buf_put(&c->body, upload_data, n) < 0) {
			c->too_large = 1;
			base_buf_dispose(&c->body);
		}
		*upload_data_size = 0;
		/* a client that keeps streaming far past the cap is cut off */
		if ((c->too_large || c->over_budget) && c->route &&
		    c->received > (uint64_t)c->route->max_body * DISCARD_FACTOR)
			return MHD_NO;
		return MHD_YES;
	}

	if (c->waiting) {
		/* back after resume: the answer is ready */
		c->waiting = 0;
		/* start's answer so far (its log fields), or the handler's answer */
		resp = c->oresp;
		base_http_response_init(&c->oresp);
		int error;
		if (c->route->start) {
			error = c->route->finish(c->state, &resp);
			c->state = NULL;
		} else {
			error = c->oerror;
		}
		if (error < 0) {
			base_log(BASE_LOG_ERROR, "handler failed", "path", url, "error", base_error_last(), NULL);
			base_http_response_dispose(&resp);
			base_http_response_init(&resp);
			base_http_response_error(&resp, 500, "internal error");
		}
		enum MHD_Result r = send_response(conn, c, &resp, method, url);
		base_http_response_dispose(&resp);
		return r;
	}

	base_http_response_init(&resp);
	enum MHD_Result ret;
	fill_request(&req, c, method, url);
	if (c->too_large) {
		req.body = NULL;
		req.body_len = 0;
		if (!c->route->head_check || !c->route->head_check(&req, (int64_t)c->received, &resp, c->route->payload))
			base_http_response_error(&resp, 413, "request body too large");
		ret = send_response(conn, c, &resp, method, url);
	} else if (c->over_budget) {
		answer_busy(&resp);
		ret = send_response(conn, c, &resp, method, url);
	} else if (c->route->start) {
		void *state = NULL;
		int r = c->route->start(&req, &resp, c->route->payload, &state);
		if (r == 1) {
			wait_for(c, conn, method, url);
			c->state = state;
			c->oresp = resp; /* moved: finish completes it */
			c->route->submit(state, resume, c);
			return MHD_YES;
		}
		if (r < 0) {
			base_log(BASE_LOG_ERROR, "handler failed", "path", url, "error", base_error_last(), NULL);
			base_http_response_dispose(&resp);
			base_http_response_init(&resp);
			base_http_response_error(&resp, 500, "internal error");
		}
		ret = send_response(conn, c, &resp, method, url);
	} else if (!c->route->quick) {
		wait_for(c, conn, method, url);
		pthread_t t;
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &attr, run_handler, c) != 0) {
			c->oerror = base_error_set(BASE_EGENERIC, "cannot start a handler thread");
			resume(c);
		}
		pthread_attr_destroy(&attr);
		base_http_response_dispose(&resp);
		return MHD_YES;
	} else {
		int error = c->route->handler(&req, &resp, c->route->payload);
		if (error < 0) {
			base_log(BASE_LOG_ERROR, "handler failed", "path", url, "error", base_error_last(), NULL);
			base_http_response_dispose(&resp);
			base_http_response_init(&resp);
			base_http_response_error(&resp, 500, "internal error");
		}
		ret = send_response(conn, c, &resp, method, url);
	}
	base_http_response_dispose(&resp);
	return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)conn;
	(void)toe;
	struct req_ctx *c = *con_cls;
	if (!c)
		return;
	*con_cls = NULL;
	/* suspended once: the thread that resumed it may still be inside
	 * resume(), and a request the daemon ends while it is suspended
	 * (stopping) still gets its resume call, which then frees it */
	if (c->conn)
		ctx_release(c);
	else
		ctx_free(c);
}

/* 0 when nothing listens on sa's port: a port shared with SO_REUSEPORT
 * would otherwise let a second perfbot (same user) join the first's
 * silently instead of failing to start. */
static int port_free(const struct sockaddr *sa, socklen_t len)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0; /* the daemon's own bind reports what is wrong */
	int one = 1;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	int error = bind(fd, sa, len) < 0 && errno == EADDRINUSE ? -1 : 0;
	close(fd);
	return error;
}

static void stop_daemons(wh_server *srv)
{
	for (int i = 0; i < srv->ndaemons; i++)
		MHD_stop_daemon(srv->daemons[i]);
	srv->ndaemons = 0;
}

int wh_server_start(wh_server *srv)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	struct sockaddr *sa;
	unsigned int flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	memset(&sin, 0, sizeof(sin));
	memset(&sin6, 0, sizeof(sin6));
	if (inet_pton(AF_INET, srv->host, &sin.sin_addr) == 1) {
		sin.sin_family = AF_INET;
		sin.sin_port = htons((uint16_t)srv->port);
		sa = (struct sockaddr *)&sin;
	} else if (inet_pton(AF_INET6, srv->host, &sin6.sin6_addr) == 1) {
		sin6.sin6_family = AF_INET6;
		sin6.sin6_port = htons((uint16_t)srv->port);
		sa = (struct sockaddr *)&sin6;
		flags |= MHD_USE_IPv6;
	} else if (strcmp(srv->host, "localhost") == 0) {
		sin.sin_family = AF_INET;
		sin.sin_port = htons((uint16_t)srv->port);
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sa = (struct sockaddr *)&sin;
	} else {
		return base_error_set(BASE_EINVALID, "HOST: \"%s\" is not an IPv4 or IPv6 address", srv->host);
	}
	/* the connection limit is shared out; the first daemon's port (PORT=0:
	 * any free one) is the others' */
	unsigned int limit = (unsigned int)((srv->max_connections + srv->threads - 1) / srv->threads);
	socklen_t salen = sa->sa_family == AF_INET ? sizeof(sin) : sizeof(sin6);
	if (srv->threads > 1 && srv->port != 0 && port_free(sa, salen) < 0)
		return base_error_set(BASE_EGENERIC, "cannot listen on %s:%d: %s", srv->host, srv->port, strerror(EADDRINUSE));
	for (int i = 0; i < srv->threads; i++) {
		struct MHD_Daemon *d =
			MHD_start_daemon(flags, (uint16_t)srv->port, NULL, NULL, on_request, srv,
					 MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, NULL, MHD_OPTION_SOCK_ADDR, sa,
					 MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_CONNECTION_LIMIT, limit,
					 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)srv->timeout_s,
					 MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_LISTENING_ADDRESS_REUSE,
					 (unsigned int)(srv->threads > 1), MHD_OPTION_END);
		if (!d) {
			int error = base_error_set(BASE_EGENERIC, "cannot listen on %s:%d: %s", srv->host, srv->port,
						  errno ? strerror(errno) : "libmicrohttpd refused to start");
			stop_daemons(srv);
			return error;
		}
		srv->daemons[srv->ndaemons++] = d;
		const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
		if (i == 0 && di) {
			srv->port = di->port;
			if (sa->sa_family == AF_INET)
				sin.sin_port = htons((uint16_t)srv->port);
			else
				sin6.sin6_port = htons((uint16_t)srv->port);
		}
	}
	return 0;
}

int wh_server_port(const wh_server *srv)
{
	return srv->port;
}

void wh_server_quiesce(wh_server *srv)
{
	if (srv->quiesced)
		return;
	for (int i = 0; i < srv->ndaemons; i++) {
		MHD_socket fd = MHD_quiesce_daemon(srv->daemons[i]);
		if (fd != MHD_INVALID_SOCKET)
			close(fd);
	}
	srv->quiesced = 1;
}

int wh_server_wait_idle(wh_server *srv, int timeout_ms)
{
	for (int waited = 0; atomic_load(&srv->in_flight) > 0; waited += 10) {
		if (waited >= timeout_ms)
			return base_error_set(BASE_ETIMEOUT, "%d requests still in flight", atomic_load(&srv->in_flight));
		struct timespec ts = { 0, 10 * 1000000 };
		nanosleep(&ts, NULL);
	}
	return 0;
}

void wh_server_free(wh_server *srv)
{
	if (!srv)
		return;
	stop_daemons(srv);
	for (size_t i = 0; i < srv->nroutes; i++)
		free((char *)srv->routes[i].path);
	free(srv->host);
	free(srv);
}
