/* The wire of Claude Managed Agents (reference/managed-agents.md): one
 * request with its headers, credential, error translation and retries, plus
 * the pure pieces a worker needs (a work item's secret, an SSE frame parser).
 *
 * Every path gets `?beta=true`; every request carries anthropic-version
 * 2023-06-01, anthropic-beta managed-agents-2026-04-01 and content-type
 * application/json.  Credentials are never logged and never part of an
 * error message (a server that echoes one gets it replaced by "[redacted]").
 *
 * Threading: an agent_managed_client may be shared; each request takes a
 * CURL handle of its own from the client's pool for its duration. */
#ifndef AGENT_MANAGED_API_H
#define AGENT_MANAGED_API_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "base/clock.h"

typedef struct agent_managed_client agent_managed_client;

typedef struct agent_managed_options {
	const char *base_url;      /* ANTHROPIC_BASE_URL; copied */
	const base_clock *clock;   /* borrowed; NULL: the system clock. Retry waits go through it */
	int max_retries;           /* retries after the first try (default 2) */
	long backoff_ms;           /* first backoff when the server names no wait (default 500) */
	long max_backoff_ms;       /* ceiling of a computed backoff (default 8000) */
	long max_wait_ms;          /* longest server-named wait honoured (default 60000) */
	long connect_timeout_ms;   /* default 10000 */
	long timeout_ms;           /* whole request (default 60000) */
	size_t max_response;       /* bytes of an answer (default 8 MiB) */
} agent_managed_options;

#define AGENT_MANAGED_OPTIONS_INIT { NULL, NULL, 2, 500, 8000, 60000, 10000, 60000, 8u << 20 }

typedef enum agent_managed_cred {
	AGENT_MANAGED_API_KEY,       /* x-api-key: control plane */
	AGENT_MANAGED_ENV_KEY,       /* Authorization: Bearer: polling an environment's work */
	AGENT_MANAGED_SESSIONS_TOKEN /* Authorization: Bearer: one work item and its session */
} agent_managed_cred;

typedef struct agent_managed_request {
	const char *method;          /* "GET", "POST", ... */
	const char *path;            /* "/v1/agents", may carry its own query ("?limit=100") */
	const json_t *body;          /* borrowed; NULL: none */
	agent_managed_cred cred;
	const char *credential;      /* borrowed; the key or token */
	const char *worker_id;       /* Anthropic-Worker-ID, or NULL */
	const char *base_url;        /* NULL: the client's (a work item's api_base_url otherwise) */
} agent_managed_request;

typedef struct agent_managed_response {
	long status;                 /* last HTTP status; 0 when none came */
	json_t *body;                /* owned: the answer's JSON (NULL when empty or not JSON) */
	char request_id[128];        /* the error's request_id or the request-id header, or "" */
	int attempts;                /* tries made */
} agent_managed_response;

void agent_managed_response_dispose(agent_managed_response *r);

int agent_managed_client_new(agent_managed_client **out, const agent_managed_options *opts);
void agent_managed_client_free(agent_managed_client *c);

/* Sends one request, retrying 408, 409, 429, 5xx and transport failures
 * (unless x-should-retry says otherwise, which also makes any status
 * retryable) with waits from retry-after-ms, retry-after or exponential
 * backoff with jitter.  0 for a 2xx (resp->body holds the answer); otherwise
 * a negative code with one line (method, path, status, the error's type and
 * message, its request id): BASE_EAUTH 401, BASE_EFORBIDDEN 403,
 * BASE_ENOTFOUND 404, BASE_EEXISTS 409, BASE_EINVALID other 4xx, BASE_ERETRY
 * 5xx and 429, BASE_ETIMEOUT, BASE_ETOOBIG.  resp->status tells a 412 (a lost
 * lease) apart.  resp is filled either way; dispose it. */
int agent_managed_send(agent_managed_client *c, const agent_managed_request *req, agent_managed_response *resp);

/* ---- pure helpers (tested alone) ---------------------------------------- */

/* The request URL for path: base + path + "?beta=true" (before any query
 * path carried).  *out owned. */
int agent_managed_url(char **out, const char *base_url, const char *path);

/* One line from an error answer: "TYPE: MESSAGE" of
 * {"type":"error","error":{"type","message"},"request_id"}, else the body's
 * start; control characters become spaces, every occurrence of `secret`
 * (may be NULL) becomes "[redacted]", at most cap-1 bytes.  request_id
 * (cap rid_cap, may be NULL) receives the request id or "". */
void agent_managed_error_text(char *out, size_t cap, const char *body, size_t len, const char *secret,
			      char *request_id, size_t rid_cap);

/* What the headers of an answer say about retrying.  Values are the raw
 * header texts or NULL. */
typedef struct agent_managed_retry_in {
	long status;             /* 0: transport failure */
	const char *should_retry;  /* x-should-retry */
	const char *retry_after_ms;
	const char *retry_after;   /* seconds or an HTTP date */
	int64_t now_wall_ms;       /* for an HTTP date */
	int attempt;               /* retries already made */
} agent_managed_retry_in;

/* 1 and *wait_ms when the request should be tried again after that wait
 * (attempt < max_retries is the caller's check), 0 when not.  A server-named
 * wait between 0 and opts->max_wait_ms is honoured; otherwise
 * backoff_ms * 2^attempt capped at max_backoff_ms, less up to 25% jitter
 * (`jitter` in [0,1), 0 in tests). */
int agent_managed_retry_wait(long *wait_ms, const agent_managed_retry_in *in, const agent_managed_options *opts,
			     double jitter);

/* A work item's `secret`: base64url (or base64), padded or not, of JSON
 * {"sessions_token": "...", "api_base_url": "..."}.  *token_out owned (wipe
 * it), *base_url_out owned or NULL when absent.  BASE_EINVALID without the
 * secret in the message. */
int agent_managed_secret_decode(char **token_out, char **base_url_out, const char *secret);

/* ---- server-sent events ------------------------------------------------- */

/* One event of a stream: name ("message" when the frame named none), data
 * (its data lines joined with '\n'), id (or ""); all borrowed for the
 * callback. */
typedef int (*agent_managed_sse_cb)(const char *event, const char *data, size_t data_len, const char *id,
				    void *payload);

/* An incremental parser (text/event-stream): fed arbitrary chunks, it calls
 * back once per complete frame with data.  Comment lines (": ping") and
 * `ping` events are keep-alives: counted, not delivered.  A frame larger than
 * the cap fails with BASE_ETOOBIG once and is skipped to its end; the parser
 * can go on.  Embedded struct: init / dispose. */
typedef struct agent_managed_sse {
	char *buf;          /* the current line, then the frame's data */
	size_t line_len;    /* bytes of the current line at buf + data_len */
	size_t data_len;    /* bytes of data collected (before the line) */
	size_t cap;         /* bytes of one frame: data, line and event name */
	char event[64];
	char id[128];
	int has_data;
	int skipping;       /* in an oversized frame: until its blank line */
	int last_cr;        /* the previous chunk ended with CR */
	int started;        /* past a leading byte-order mark */
	unsigned long keepalives; /* comments and ping events seen */
	unsigned long events;     /* frames delivered */
} agent_managed_sse;

int agent_managed_sse_init(agent_managed_sse *p, size_t cap);
void agent_managed_sse_dispose(agent_managed_sse *p);

/* Feeds len bytes; calls cb for each frame completed.  A negative return of
 * cb stops the feed and is returned as is. */
int agent_managed_sse_feed(agent_managed_sse *p, const char *data, size_t len, agent_managed_sse_cb cb,
			   void *payload);

/* ---- a stream of a session's events ------------------------------------- */

typedef struct agent_managed_stream_options {
	size_t frame_cap;        /* bytes of one event (default 1 MiB) */
	long idle_ms;            /* silence (not even a ping) that ends the stream (default 90000) */
	const atomic_int *stop;  /* borrowed, may be NULL: nonzero ends the stream (checked about once a second) */
} agent_managed_stream_options;

/* Opens req (a GET such as /v1/sessions/ID/events/stream) with accept
 * text/event-stream and calls cb for each event (agent_managed_sse_feed's
 * contract: pings and comments are not delivered) until the stream ends.
 * No retries: the caller reconnects and lists the history.  0 when the
 * server closed the stream; BASE_ECANCELLED on stop; the callback's own
 * negative code; BASE_ETOOBIG for an event past frame_cap (the stream is
 * closed: list the history); BASE_ETIMEOUT after idle_ms of silence;
 * BASE_ERETRY for a dropped connection; for a non-2xx answer the codes and
 * message of agent_managed_send, resp->status telling them apart. */
int agent_managed_stream(agent_managed_client *c, const agent_managed_request *req, const agent_managed_stream_options *so,
			 agent_managed_sse_cb cb, void *payload, agent_managed_response *resp);

#endif
