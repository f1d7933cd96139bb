/* Unit tests: the Managed Agents wire (agent/managed_api.c) and set-up
 * (agent/managed_setup.c).  Pure helpers are called directly: the work
 * item's secret, the SSE parser, URLs, error texts, retry waits.  Requests
 * go to a scripted HTTP server in this process (libmicrohttpd on loopback)
 * with a fake clock, so retries take no real time and every wait is
 * recorded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/managed_api.h"
#include "agent/managed_setup.h"
#include "agent/tools.h"
#include "base/error.h"
#include "base/json.h"
#include "base/log.h"

/* ---- the work item's secret ------------------------------------------------ */

/* base64url without padding, as the service sends it */
static void b64url(char *out, size_t cap, const char *in, int url, int pad)
{
	static const char std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	static const char safe[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const char *a = url ? safe : std;
	size_t n = strlen(in), o = 0;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned char)in[i] << 16;
		if (i + 1 < n)
			v |= (unsigned char)in[i + 1] << 8;
		if (i + 2 < n)
			v |= (unsigned char)in[i + 2];
		assert_true(o + 4 < cap);
		out[o++] = a[(v >> 18) & 63];
		out[o++] = a[(v >> 12) & 63];
		if (i + 1 < n)
			out[o++] = a[(v >> 6) & 63];
		else if (pad)
			out[o++] = '=';
		if (i + 2 < n)
			out[o++] = a[v & 63];
		else if (pad)
			out[o++] = '=';
	}
	out[o] = '\0';
}

static void test_secret_decode(void **state)
{
	(void)state;
	char enc[1024];
	char *token = NULL, *url = NULL;
	/* '?' and '>' make the alphabets differ ("Pz8-" vs "Pz8+") */
	const char *json = "{\"sessions_token\":\"sess-tok_12?>?>\",\"api_base_url\":\"https://work.example.com\"}";
	b64url(enc, sizeof(enc), json, 1, 0);
	assert_null(strchr(enc, '='));
	assert_int_equal(agent_managed_secret_decode(&token, &url, enc), 0);
	assert_string_equal(token, "sess-tok_12?>?>");
	assert_string_equal(url, "https://work.example.com");
	free(token);
	free(url);

	/* padded, standard alphabet, no api_base_url */
	b64url(enc, sizeof(enc), "{\"sessions_token\":\"t0k>>?\"}", 0, 1);
	assert_int_equal(agent_managed_secret_decode(&token, &url, enc), 0);
	assert_string_equal(token, "t0k>>?");
	assert_null(url);
	free(token);
	b64url(enc, sizeof(enc), "{\"sessions_token\":\"t\",\"api_base_url\":null}", 1, 0);
	assert_int_equal(agent_managed_secret_decode(&token, &url, enc), 0);
	assert_null(url);
	free(token);

	/* refusals: their messages never hold the secret */
	const char *bad_json[] = { "{\"api_base_url\":\"https://x\"}", "[1,2]", "not json",
				   "{\"sessions_token\":\"a b\"}", "{\"sessions_token\":\"t\",\"api_base_url\":\"ftp://x\"}",
				   "{\"sessions_token\":\"\"}", NULL };
	for (int i = 0; bad_json[i]; i++) {
		b64url(enc, sizeof(enc), bad_json[i], 1, 0);
		assert_int_equal(agent_managed_secret_decode(&token, &url, enc), BASE_EINVALID);
		assert_null(token);
		assert_null(url);
		assert_null(strstr(base_error_last(), enc));
	}
	const char *bad_b64[] = { "", "a", "ab$d", "abc def", "=====", NULL };
	for (int i = 0; bad_b64[i]; i++) {
		assert_int_equal(agent_managed_secret_decode(&token, &url, bad_b64[i]), BASE_EINVALID);
		assert_null(token);
	}
	assert_int_equal(agent_managed_secret_decode(&token, &url, NULL), BASE_EINVALID);
}

/* ---- SSE -------------------------------------------------------------------- */

struct frames {
	char text[8192];
	int n;
	int stop_at; /* the callback fails on this frame (1-based), 0: never */
};

static int on_frame(const char *event, const char *data, size_t len, const char *id, void *payload)
{
	struct frames *f = payload;
	f->n++;
	assert_int_equal(strlen(data), len);
	size_t o = strlen(f->text);
	snprintf(f->text + o, sizeof(f->text) - o, "[%s|%s|%s]", event, data, id);
	return f->stop_at == f->n ? BASE_ECANCELLED : 0;
}

static const char STREAM[] =
	"\xEF\xBB\xBF: welcome\n"
	"event: agent.tool_use\n"
	"data: {\"type\":\"agent.tool_use\",\n"
	"data:\"id\":\"tu_1\"}\n"
	"id: 7\n"
	"\n"
	"event: ping\r\n"
	"data: {\"type\":\"ping\"}\r\n"
	"\r\n"
	": keep-alive\r"
	"event:session.status_idle\r"
	"data:{\"type\":\"session.status_idle\"}\r"
	"retry: 1000\r"
	"unknown: field\r"
	"\r"
	"event: no-data\n"
	"\n"
	"data\n"
	"data:  two spaces\n"
	"\n";

static const char STREAM_WANT[] = "[agent.tool_use|{\"type\":\"agent.tool_use\",\n\"id\":\"tu_1\"}|7]"
				  "[session.status_idle|{\"type\":\"session.status_idle\"}|7]"
				  "[message|\n two spaces|7]";

static void test_sse_frames(void **state)
{
	(void)state;
	agent_managed_sse p;
	struct frames f = { "", 0, 0 };
	/* all at once */
	assert_int_equal(agent_managed_sse_init(&p, 4096), 0);
	assert_int_equal(agent_managed_sse_feed(&p, STREAM, sizeof(STREAM) - 1, on_frame, &f), 0);
	assert_string_equal(f.text, STREAM_WANT);
	assert_int_equal(p.events, 3);
	assert_int_equal(p.keepalives, 3); /* two comments and a ping event */
	agent_managed_sse_dispose(&p);

	/* every split point, and byte by byte: the same frames */
	for (size_t cut = 0; cut <= sizeof(STREAM) - 1; cut++) {
		struct frames g = { "", 0, 0 };
		assert_int_equal(agent_managed_sse_init(&p, 4096), 0);
		assert_int_equal(agent_managed_sse_feed(&p, STREAM, cut, on_frame, &g), 0);
		assert_int_equal(agent_managed_sse_feed(&p, STREAM + cut, sizeof(STREAM) - 1 - cut, on_frame, &g), 0);
		assert_string_equal(g.text, STREAM_WANT);
		agent_managed_sse_dispose(&p);
	}
	struct frames h = { "", 0, 0 };
	assert_int_equal(agent_managed_sse_init(&p, 4096), 0);
	for (size_t i = 0; i < sizeof(STREAM) - 1; i++)
		assert_int_equal(agent_managed_sse_feed(&p, STREAM + i, 1, on_frame, &h), 0);
	assert_string_equal(h.text, STREAM_WANT);
	agent_managed_sse_dispose(&p);

	/* an incomplete frame is not delivered until its blank line */
	struct frames k = { "", 0, 0 };
	assert_int_equal(agent_managed_sse_init(&p, 4096), 0);
	assert_int_equal(agent_managed_sse_feed(&p, "event: a\ndata: 1\n", 17, on_frame, &k), 0);
	assert_int_equal(k.n, 0);
	assert_int_equal(agent_managed_sse_feed(&p, "\n", 1, on_frame, &k), 0);
	assert_string_equal(k.text, "[a|1|]");
	agent_managed_sse_dispose(&p);

	/* the callback's error stops the feed */
	struct frames s = { "", 0, 1 };
	assert_int_equal(agent_managed_sse_init(&p, 4096), 0);
	assert_int_equal(agent_managed_sse_feed(&p, "data: 1\n\ndata: 2\n\n", 18, on_frame, &s), BASE_ECANCELLED);
	assert_int_equal(s.n, 1);
	agent_managed_sse_dispose(&p);
}

static void test_sse_cap(void **state)
{
	(void)state;
	agent_managed_sse p;
	struct frames f = { "", 0, 0 };
	char big[400];
	memset(big, 'x', sizeof(big));
	assert_int_equal(agent_managed_sse_init(&p, 64), 0);
	assert_int_equal(agent_managed_sse_feed(&p, "event: big\ndata: ", 17, on_frame, &f), 0);
	assert_int_equal(agent_managed_sse_feed(&p, big, sizeof(big), on_frame, &f), BASE_ETOOBIG);
	assert_non_null(strstr(base_error_last(), "larger than 64 bytes"));
	/* the rest of that frame is skipped, later frames come through,
	 * even in the same chunk as the oversized one's end */
	assert_int_equal(agent_managed_sse_feed(&p, "xx\ndata: more\n\nevent: ok\ndata: small\n\n", 38, on_frame, &f), 0);
	assert_string_equal(f.text, "[ok|small|]");
	/* many data lines add up to the cap too */
	struct frames g = { "", 0, 0 };
	int error = 0;
	for (int i = 0; i < 40 && error == 0; i++)
		error = agent_managed_sse_feed(&p, "data: 0123456789\n", 17, on_frame, &g);
	assert_int_equal(error, BASE_ETOOBIG);
	assert_int_equal(agent_managed_sse_feed(&p, "\ndata: after\n\n", 14, on_frame, &g), 0);
	assert_string_equal(g.text, "[message|after|]");
	/* an event name past its field */
	char name[200] = "event: ";
	memset(name + 7, 'n', 100);
	snprintf(name + 107, sizeof(name) - 107, "\ndata: x\n\ndata: y\n\n");
	struct frames h = { "", 0, 0 };
	assert_int_equal(agent_managed_sse_feed(&p, name, strlen(name), on_frame, &h), BASE_ETOOBIG);
	assert_string_equal(h.text, "[message|y|]");
	agent_managed_sse_dispose(&p);
}

/* ---- URLs, error texts, retry waits ----------------------------------------- */

static void test_url(void **state)
{
	(void)state;
	char *u = NULL;
	assert_int_equal(agent_managed_url(&u, "https://api.anthropic.com", "/v1/agents"), 0);
	assert_string_equal(u, "https://api.anthropic.com/v1/agents?beta=true");
	free(u);
	assert_int_equal(agent_managed_url(&u, "http://127.0.0.1:9/base/", "/v1/environments/env_1/work/poll?block_ms=999"), 0);
	assert_string_equal(u, "http://127.0.0.1:9/base/v1/environments/env_1/work/poll?beta=true&block_ms=999");
	free(u);
	assert_int_equal(agent_managed_url(&u, "https://x", "/v1/agents?"), 0);
	assert_string_equal(u, "https://x/v1/agents?beta=true");
	free(u);
	assert_int_equal(agent_managed_url(&u, "https://x", "v1/agents"), BASE_EINVALID);
}

static void test_error_text(void **state)
{
	(void)state;
	char out[200], rid[64];
	const char *body = "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\",\"message\":\"invalid x-api-key "
			   "sk-ant-SECRET-1\\nsecond line\"},\"request_id\":\"req_011CZ\"}";
	agent_managed_error_text(out, sizeof(out), body, strlen(body), "sk-ant-SECRET-1", rid, sizeof(rid));
	assert_string_equal(out, "authentication_error: invalid x-api-key [redacted] second line");
	assert_string_equal(rid, "req_011CZ");
	agent_managed_error_text(out, sizeof(out), "<html>\r\nBad gateway</html>", 26, NULL, rid, sizeof(rid));
	assert_string_equal(out, "<html> Bad gateway</html>");
	assert_string_equal(rid, "");
	agent_managed_error_text(out, sizeof(out), "", 0, NULL, NULL, 0);
	assert_string_equal(out, "(no message)");
	/* cut to the buffer, still redacted where the key fits */
	char small[24];
	const char *b2 = "{\"error\":{\"type\":\"x\",\"message\":\"KEY-12345678 KEY-12345678\"}}";
	agent_managed_error_text(small, sizeof(small), b2, strlen(b2), "KEY-12345678", NULL, 0);
	assert_null(strstr(small, "KEY-1234"));
	assert_true(strlen(small) < sizeof(small));
	/* a secret the mark itself contains */
	const char *b3 = "{\"error\":{\"type\":\"x\",\"message\":\"redacted twice: redacted\"}}";
	agent_managed_error_text(out, sizeof(out), b3, strlen(b3), "redacted", NULL, 0);
	assert_string_equal(out, "x: [redacted] twice: [redacted]");
}

static void test_retry_wait(void **state)
{
	(void)state;
	agent_managed_options o = AGENT_MANAGED_OPTIONS_INIT;
	long w;
	agent_managed_retry_in in = { 0 };
	/* what is retried */
	long statuses[] = { 0, 408, 409, 429, 500, 502, 503, 529 };
	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
		in.status = statuses[i];
		assert_int_equal(agent_managed_retry_wait(&w, &in, &o, 0), 1);
		assert_int_equal(w, 500);
	}
	long final[] = { 400, 401, 403, 404, 412, 422 };
	for (size_t i = 0; i < sizeof(final) / sizeof(final[0]); i++) {
		in.status = final[i];
		assert_int_equal(agent_managed_retry_wait(&w, &in, &o, 0), 0);
	}
	/* x-should-retry wins both ways */
	in.status = 400;
	in.should_retry = "true";
	assert_int_equal(agent_managed_retry_wait(&w, &in, &o, 0), 1);
	in.status = 503;
	in.should_retry = "false";
	assert_int_equal(agent_managed_retry_wait(&w, &in, &o, 0), 0);
	in.should_retry = NULL;
	/* backoff doubles up to its ceiling, jitter takes at most a quarter */
	in.status = 500;
	long want[] = { 500, 1000, 2000, 4000, 8000, 8000 };
	for (int a = 0; a < 6; a++) {
		in.attempt = a;
		assert_int_equal(agent_managed_retry_wait(&w, &in, &o, 0), 1);
		assert_int_equal(w, want[a]);
	}
	in.attempt = 1;
	assert_int_equal(agent_managed_retry_wait(&w, &in, &o, 0.999), 1);
	assert_true(w >= 750 && w <= 1000);
	/* the server's waits: retry-after-ms first, then retry-after */
	in.attempt = 0;
	in.status = 429;
	in.retry_after_ms = "1234.5";
	in.retry_after = "9";
	assert_int_equal(agent_managed_retry_wait(&w, &in, &o, 0), 1);
	assert_int_equal(w, 1234);
	in.retry_after_ms = "soon";
	assert_int_equal(agent_managed_retry_wait(&w, &in, &o, 0), 1);
	assert_int_equal(w, 9000);
	in.retry_after_ms = NULL;
	in.retry_after = "Wed, 21 Oct 2015 07:28:30 GMT";
	in.now_wall_ms = 1445412480000LL; /* 07:28:00 */
	assert_int_equal(agent_managed_retry_wait(&w, &in, &o, 0), 1);
	assert_int_equal(w, 30000);
	/* past the longest wait honoured, or negative: the backoff */
	in.retry_after = "3600";
	assert_int_equal(agent_managed_retry_wait(&w, &in, &o, 0), 1);
	assert_int_equal(w, 500);
	in.retry_after = "-5";
	assert_int_equal(agent_managed_retry_wait(&w, &in, &o, 0), 1);
	assert_int_equal(w, 500);
	in.retry_after = "0";
	assert_int_equal(agent_managed_retry_wait(&w, &in, &o, 0), 1);
	assert_int_equal(w, 0);
}

/* ---- a scripted server ------------------------------------------------------ */

#define MAX_STEPS 16
#define MAX_SEEN 32

struct step {
	int status;
	const char *body;
	const char *headers[4][2];
	int stream;    /* 1: the body in 7-byte pieces; 2: then pings until the client goes */
};

struct piece {
	const char *body;
	size_t off;
	int forever;
};

static ssize_t stream_piece(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)pos;
	struct piece *p = cls;
	size_t left = strlen(p->body) - p->off;
	if (left == 0) {
		if (!p->forever)
			return MHD_CONTENT_READER_END_OF_STREAM;
		struct timespec ts = { 0, 20 * 1000000L };
		nanosleep(&ts, NULL);
		memcpy(buf, ": ping\n", 7);
		return 7;
	}
	size_t n = left < 7 ? left : 7;
	if (n > max)
		n = max;
	memcpy(buf, p->body + p->off, n);
	p->off += n;
	return (ssize_t)n;
}

struct seen {
	char method[8];
	char url[512];
	char api_key[128];
	char authorization[160];
	char version[64];
	char beta[64];
	char content_type[64];
	char worker[64];
	char accept[64];
	char body[8192];
};

struct server {
	struct MHD_Daemon *d;
	int port;
	pthread_mutex_t mu;
	struct step steps[MAX_STEPS];
	int nsteps, next;
	struct seen seen[MAX_SEEN];
	int nseen;
	/* routes for set-up: answer by method and path instead of the script */
	int (*route)(struct server *s, const struct seen *req, int *status, char **body);
	json_t *agents;     /* the fake's agents */
	json_t *environments;
	int agent_version_posts;
};

struct conn {
	char body[8192];
	size_t len;
};

static void copy_hdr(struct MHD_Connection *c, const char *name, char *out, size_t cap)
{
	const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
	snprintf(out, cap, "%s", v ? v : "");
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
			       const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	(void)version;
	struct server *s = cls;
	struct conn *cn = *con_cls;
	if (!cn) {
		cn = calloc(1, sizeof(*cn));
		*con_cls = cn;
		return MHD_YES;
	}
	if (*upload_size) {
		size_t n = *upload_size;
		if (cn->len + n < sizeof(cn->body)) {
			memcpy(cn->body + cn->len, upload, n);
			cn->len += n;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	pthread_mutex_lock(&s->mu);
	struct seen req;
	memset(&req, 0, sizeof(req));
	snprintf(req.method, sizeof(req.method), "%s", method);
	const char *beta = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "beta");
	const char *block = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "block_ms");
	const char *page = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "page");
	snprintf(req.url, sizeof(req.url), "%s?beta=%s%s%s%s%s", url, beta ? beta : "(none)", block ? "&block_ms=" : "",
		 block ? block : "", page ? "&page=" : "", page ? page : "");
	copy_hdr(c, "x-api-key", req.api_key, sizeof(req.api_key));
	copy_hdr(c, "authorization", req.authorization, sizeof(req.authorization));
	copy_hdr(c, "anthropic-version", req.version, sizeof(req.version));
	copy_hdr(c, "anthropic-beta", req.beta, sizeof(req.beta));
	copy_hdr(c, "content-type", req.content_type, sizeof(req.content_type));
	copy_hdr(c, "anthropic-worker-id", req.worker, sizeof(req.worker));
	copy_hdr(c, "accept", req.accept, sizeof(req.accept));
	memcpy(req.body, cn->body, cn->len);
	if (s->nseen < MAX_SEEN)
		s->seen[s->nseen++] = req;
	int status = 500;
	char *text = NULL;
	const struct step *st = NULL;
	if (s->route) {
		s->route(s, &req, &status, &text);
	} else if (s->next < s->nsteps) {
		st = &s->steps[s->next++];
		status = st->status;
		text = strdup(st->body ? st->body : "");
	} else {
		text = strdup("{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"script over\"}}");
	}
	pthread_mutex_unlock(&s->mu);
	struct MHD_Response *r;
	if (st && st->stream) {
		struct piece *p = calloc(1, sizeof(*p));
		p->body = st->body;
		p->forever = st->stream == 2;
		free(text);
		r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64, stream_piece, p, free);
		MHD_add_response_header(r, "content-type", "text/event-stream");
		enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
		MHD_destroy_response(r);
		return ret;
	}
	r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(r, "content-type", "application/json");
	for (int i = 0; st && i < 4 && st->headers[i][0]; i++)
		MHD_add_response_header(r, st->headers[i][0], st->headers[i][1]);
	enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
	MHD_destroy_response(r);
	return ret;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode code)
{
	(void)cls;
	(void)c;
	(void)code;
	free(*con_cls);
	*con_cls = NULL;
}

static void server_start(struct server *s)
{
	pthread_mutex_init(&s->mu, NULL);
	s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, handler, s, MHD_OPTION_NOTIFY_COMPLETED,
				completed, NULL, MHD_OPTION_END);
	assert_non_null(s->d);
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	assert_non_null(info);
	s->port = info->port;
}

static void server_stop(struct server *s)
{
	MHD_stop_daemon(s->d);
	pthread_mutex_destroy(&s->mu);
	json_decref(s->agents);
	json_decref(s->environments);
}

/* The fake clock: sleeps are recorded, never taken. */
struct fake_time {
	int64_t now;
	long slept[16];
	int nslept;
};

static int64_t fake_now(void *payload)
{
	return ((struct fake_time *)payload)->now;
}

static void fake_sleep(void *payload, int64_t ms)
{
	struct fake_time *t = payload;
	if (t->nslept < 16)
		t->slept[t->nslept++] = (long)ms;
	t->now += ms;
}

static agent_managed_client *client_for(struct server *s, struct fake_time *t, base_clock *clk, int retries)
{
	char base[64];
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", s->port);
	*clk = (base_clock){ .wall_ms = fake_now, .mono_ms = fake_now, .sleep_ms = fake_sleep, .payload = t };
	agent_managed_options o = AGENT_MANAGED_OPTIONS_INIT;
	o.base_url = base;
	o.clock = clk;
	o.max_retries = retries;
	o.timeout_ms = 10000;
	agent_managed_client *c = NULL;
	assert_int_equal(agent_managed_client_new(&c, &o), 0);
	return c;
}

static void test_request_headers_and_credentials(void **state)
{
	(void)state;
	struct server s;
	memset(&s, 0, sizeof(s));
	s.steps[0] = (struct step){ 200, "{\"id\":\"agent_1\"}", { { "request-id", "req_a" } }, 0 };
	s.steps[1] = (struct step){ 200, "null", { { NULL, NULL } }, 0 };
	s.steps[2] = (struct step){ 200, "", { { NULL, NULL } }, 0 };
	s.nsteps = 3;
	server_start(&s);
	struct fake_time t = { 1000, { 0 }, 0 };
	base_clock clk;
	agent_managed_client *c = client_for(&s, &t, &clk, 2);

	json_t *body = json_pack("{s:s}", "name", "perfbot");
	agent_managed_request req = { .method = "POST", .path = "/v1/agents", .body = body,
				      .cred = AGENT_MANAGED_API_KEY, .credential = "sk-ant-key-1" };
	agent_managed_response resp;
	assert_int_equal(agent_managed_send(c, &req, &resp), 0);
	assert_int_equal(resp.status, 200);
	assert_string_equal(base_json_str(resp.body, "id"), "agent_1");
	assert_string_equal(resp.request_id, "req_a");
	agent_managed_response_dispose(&resp);

	agent_managed_request poll = { .method = "GET", .path = "/v1/environments/env_1/work/poll?block_ms=999",
				       .cred = AGENT_MANAGED_ENV_KEY, .credential = "envkey-2", .worker_id = "perfbot-w1" };
	assert_int_equal(agent_managed_send(c, &poll, &resp), 0);
	assert_true(json_is_null(resp.body));
	agent_managed_response_dispose(&resp);

	char other[64];
	snprintf(other, sizeof(other), "http://127.0.0.1:%d/", s.port);
	agent_managed_request item = { .method = "POST", .path = "/v1/environments/env_1/work/w1/ack",
				       .cred = AGENT_MANAGED_SESSIONS_TOKEN, .credential = "sess-3", .base_url = other };
	assert_int_equal(agent_managed_send(c, &item, &resp), 0);
	assert_null(resp.body);
	agent_managed_response_dispose(&resp);

	assert_int_equal(s.nseen, 3);
	for (int i = 0; i < 3; i++) {
		assert_string_equal(s.seen[i].version, "2023-06-01");
		assert_string_equal(s.seen[i].beta, "managed-agents-2026-04-01");
		assert_string_equal(s.seen[i].content_type, "application/json");
	}
	assert_string_equal(s.seen[0].method, "POST");
	assert_string_equal(s.seen[0].url, "/v1/agents?beta=true");
	assert_string_equal(s.seen[0].api_key, "sk-ant-key-1");
	assert_string_equal(s.seen[0].authorization, "");
	assert_string_equal(s.seen[0].body, "{\"name\":\"perfbot\"}");
	assert_string_equal(s.seen[1].url, "/v1/environments/env_1/work/poll?beta=true&block_ms=999");
	assert_string_equal(s.seen[1].api_key, "");
	assert_string_equal(s.seen[1].authorization, "Bearer envkey-2");
	assert_string_equal(s.seen[1].worker, "perfbot-w1");
	assert_string_equal(s.seen[2].url, "/v1/environments/env_1/work/w1/ack?beta=true");
	assert_string_equal(s.seen[2].authorization, "Bearer sess-3");
	assert_string_equal(s.seen[2].worker, "");
	assert_int_equal(t.nslept, 0);
	json_decref(body);
	agent_managed_client_free(c);
	server_stop(&s);
}

static void test_retries_on_the_clock(void **state)
{
	(void)state;
	struct server s;
	memset(&s, 0, sizeof(s));
	const char *overloaded = "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy\"}}";
	s.steps[0] = (struct step){ 429, overloaded, { { "retry-after-ms", "1500" }, { "retry-after", "7" } }, 0 };
	s.steps[1] = (struct step){ 503, overloaded, { { "retry-after", "2" } }, 0 };
	s.steps[2] = (struct step){ 529, overloaded, { { NULL, NULL } }, 0 };
	s.steps[3] = (struct step){ 200, "{\"ok\":true}", { { NULL, NULL } }, 0 };
	s.nsteps = 4;
	server_start(&s);
	struct fake_time t = { 5000, { 0 }, 0 };
	base_clock clk;
	agent_managed_client *c = client_for(&s, &t, &clk, 3);
	agent_managed_request req = { .method = "POST", .path = "/v1/sessions/s1/events",
				      .cred = AGENT_MANAGED_SESSIONS_TOKEN, .credential = "tok" };
	agent_managed_response resp;
	assert_int_equal(agent_managed_send(c, &req, &resp), 0);
	assert_int_equal(resp.attempts, 4);
	agent_managed_response_dispose(&resp);
	assert_int_equal(t.nslept, 3);
	assert_int_equal(t.slept[0], 1500); /* retry-after-ms before retry-after */
	assert_int_equal(t.slept[1], 2000);
	assert_true(t.slept[2] >= 1500 && t.slept[2] <= 2000); /* the third backoff, with jitter */
	agent_managed_client_free(c);
	server_stop(&s);

	/* x-should-retry: false stops at once; the retries run out on 500s */
	memset(&s, 0, sizeof(s));
	s.steps[0] = (struct step){ 500, overloaded, { { "x-should-retry", "false" } }, 0 };
	s.steps[1] = (struct step){ 500, overloaded, { { NULL, NULL } }, 0 };
	s.steps[2] = (struct step){ 500, overloaded, { { NULL, NULL } }, 0 };
	s.steps[3] = (struct step){ 500, overloaded, { { NULL, NULL } }, 0 };
	s.nsteps = 4;
	server_start(&s);
	struct fake_time t2 = { 0, { 0 }, 0 };
	c = client_for(&s, &t2, &clk, 2);
	assert_int_equal(agent_managed_send(c, &req, &resp), BASE_ERETRY);
	assert_int_equal(resp.attempts, 1);
	assert_int_equal(t2.nslept, 0);
	agent_managed_response_dispose(&resp);
	assert_int_equal(agent_managed_send(c, &req, &resp), BASE_ERETRY);
	assert_int_equal(resp.attempts, 3);
	assert_int_equal(resp.status, 500);
	assert_int_equal(t2.nslept, 2);
	assert_non_null(strstr(base_error_last(), "500 overloaded_error: busy"));
	agent_managed_response_dispose(&resp);
	agent_managed_client_free(c);
	server_stop(&s);
}

static void test_errors_one_line_without_key(void **state)
{
	(void)state;
	struct server s;
	memset(&s, 0, sizeof(s));
	s.steps[0] = (struct step){ 401,
				    "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\",\"message\":\"invalid "
				    "x-api-key: sk-ant-WRONG-key\"},\"request_id\":\"req_401\"}",
				    { { NULL, NULL } }, 0 };
	s.steps[1] = (struct step){ 412, "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":"
					 "\"lease lost\"}}", { { NULL, NULL } }, 0 };
	s.steps[2] = (struct step){ 404, "{\"type\":\"error\",\"error\":{\"type\":\"not_found_error\",\"message\":"
					 "\"no agent\"}}", { { NULL, NULL } }, 0 };
	s.steps[3] = (struct step){ 200, "not json", { { NULL, NULL } }, 0 };
	s.nsteps = 4;
	server_start(&s);
	struct fake_time t = { 0, { 0 }, 0 };
	base_clock clk;
	agent_managed_client *c = client_for(&s, &t, &clk, 2);
	agent_managed_request req = { .method = "GET", .path = "/v1/agents/agent_1?version=2",
				      .cred = AGENT_MANAGED_API_KEY, .credential = "sk-ant-WRONG-key" };
	agent_managed_response resp;
	assert_int_equal(agent_managed_send(c, &req, &resp), BASE_EAUTH);
	assert_string_equal(base_error_last(), "Anthropic API GET /v1/agents/agent_1: 401 authentication_error: "
					       "invalid x-api-key: [redacted] (request req_401)");
	assert_string_equal(resp.request_id, "req_401");
	assert_int_equal(resp.attempts, 1);
	agent_managed_response_dispose(&resp);
	assert_int_equal(agent_managed_send(c, &req, &resp), BASE_EINVALID);
	assert_int_equal(resp.status, 412);
	agent_managed_response_dispose(&resp);
	assert_int_equal(agent_managed_send(c, &req, &resp), BASE_ENOTFOUND);
	agent_managed_response_dispose(&resp);
	assert_int_equal(agent_managed_send(c, &req, &resp), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "not JSON"));
	agent_managed_response_dispose(&resp);
	assert_int_equal(t.nslept, 0);
	agent_managed_client_free(c);
	server_stop(&s);

	/* nobody listening: retried, then one line */
	struct fake_time t2 = { 0, { 0 }, 0 };
	agent_managed_options o = AGENT_MANAGED_OPTIONS_INIT;
	o.base_url = "http://127.0.0.1:1";
	clk = (base_clock){ .wall_ms = fake_now, .mono_ms = fake_now, .sleep_ms = fake_sleep, .payload = &t2 };
	o.clock = &clk;
	o.max_retries = 1;
	assert_int_equal(agent_managed_client_new(&c, &o), 0);
	int error = agent_managed_send(c, &req, &resp);
	assert_true(error == BASE_ERETRY || error == BASE_ETIMEOUT);
	assert_int_equal(resp.attempts, 2);
	assert_int_equal(t2.nslept, 1);
	assert_null(strchr(base_error_last(), '\n'));
	assert_null(strstr(base_error_last(), "WRONG"));
	agent_managed_response_dispose(&resp);
	agent_managed_client_free(c);
}

static void test_answer_cap(void **state)
{
	(void)state;
	struct server s;
	memset(&s, 0, sizeof(s));
	static char big[100000];
	memset(big, ' ', sizeof(big) - 3);
	big[0] = '[';
	big[sizeof(big) - 3] = ']';
	s.steps[0] = (struct step){ 200, big, { { NULL, NULL } }, 0 };
	s.nsteps = 1;
	server_start(&s);
	char base[64];
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", s.port);
	agent_managed_options o = AGENT_MANAGED_OPTIONS_INIT;
	o.base_url = base;
	o.max_response = 4096;
	agent_managed_client *c = NULL;
	assert_int_equal(agent_managed_client_new(&c, &o), 0);
	agent_managed_request req = { .method = "GET", .path = "/v1/sessions/s1/events",
				      .cred = AGENT_MANAGED_SESSIONS_TOKEN, .credential = "tok" };
	agent_managed_response resp;
	assert_int_equal(agent_managed_send(c, &req, &resp), BASE_ETOOBIG);
	assert_non_null(strstr(base_error_last(), "larger than 4096 bytes"));
	agent_managed_response_dispose(&resp);
	agent_managed_client_free(c);
	server_stop(&s);
}


struct stream_seen {
	char text[4096];
	atomic_int stop;
	int stop_after;
	int n;
};

static int on_stream_event(const char *event, const char *data, size_t len, const char *id, void *payload)
{
	(void)id;
	(void)len;
	struct stream_seen *ss = payload;
	size_t o = strlen(ss->text);
	snprintf(ss->text + o, sizeof(ss->text) - o, "[%s %s]", event, data);
	if (++ss->n == ss->stop_after)
		atomic_store(&ss->stop, 1);
	return 0;
}

static void test_stream(void **state)
{
	(void)state;
	struct server s;
	memset(&s, 0, sizeof(s));
	s.steps[0] = (struct step){ 200,
				    ": hello\n\nevent: agent.message\ndata: {\"type\":\"agent.message\"}\n\n"
				    "event: ping\ndata: {\"type\":\"ping\"}\n\n"
				    "event: agent.custom_tool_use\ndata: {\"type\":\"agent.custom_tool_use\",\"id\":\"ctu_1\"}\n\n",
				    { { NULL, NULL } }, 1 };
	s.steps[1] = (struct step){ 404,
				    "{\"type\":\"error\",\"error\":{\"type\":\"not_found_error\",\"message\":\"no session\"}}",
				    { { NULL, NULL } }, 0 };
	s.steps[2] = (struct step){ 200, "event: a\ndata: 1\n\n", { { NULL, NULL } }, 2 };
	s.steps[3] = (struct step){ 200, "event: big\ndata: 0123456789012345678901234567890123456789\n\n",
				    { { NULL, NULL } }, 1 };
	s.nsteps = 4;
	server_start(&s);
	struct fake_time t = { 0, { 0 }, 0 };
	base_clock clk;
	agent_managed_client *c = client_for(&s, &t, &clk, 2);
	agent_managed_request req = { .method = "GET", .path = "/v1/sessions/sesn_1/events/stream",
				      .cred = AGENT_MANAGED_SESSIONS_TOKEN, .credential = "sess-tok-5" };
	agent_managed_response resp;
	struct stream_seen ss;
	memset(&ss, 0, sizeof(ss));

	/* events in pieces, pings left out, until the server closes */
	assert_int_equal(agent_managed_stream(c, &req, NULL, on_stream_event, &ss, &resp), 0);
	assert_string_equal(ss.text, "[agent.message {\"type\":\"agent.message\"}]"
				     "[agent.custom_tool_use {\"type\":\"agent.custom_tool_use\",\"id\":\"ctu_1\"}]");
	assert_int_equal(resp.status, 200);
	agent_managed_response_dispose(&resp);
	assert_string_equal(s.seen[0].url, "/v1/sessions/sesn_1/events/stream?beta=true");
	assert_string_equal(s.seen[0].accept, "text/event-stream");
	assert_string_equal(s.seen[0].authorization, "Bearer sess-tok-5");
	assert_string_equal(s.seen[0].beta, "managed-agents-2026-04-01");

	/* an error answer: not retried, one line */
	memset(&ss, 0, sizeof(ss));
	assert_int_equal(agent_managed_stream(c, &req, NULL, on_stream_event, &ss, &resp), BASE_ENOTFOUND);
	assert_int_equal(resp.status, 404);
	assert_string_equal(base_error_last(), "Anthropic API GET /v1/sessions/sesn_1/events/stream: 404 not_found_error: "
					       "no session");
	agent_managed_response_dispose(&resp);

	/* the stop flag ends an endless stream */
	memset(&ss, 0, sizeof(ss));
	ss.stop_after = 1;
	agent_managed_stream_options so = { 0, 0, &ss.stop };
	assert_int_equal(agent_managed_stream(c, &req, &so, on_stream_event, &ss, &resp), BASE_ECANCELLED);
	assert_string_equal(ss.text, "[a 1]");
	agent_managed_response_dispose(&resp);

	/* an event past the cap closes the stream */
	memset(&ss, 0, sizeof(ss));
	agent_managed_stream_options small = { 32, 0, NULL };
	assert_int_equal(agent_managed_stream(c, &req, &small, on_stream_event, &ss, &resp), BASE_ETOOBIG);
	assert_string_equal(ss.text, "");
	agent_managed_response_dispose(&resp);
	assert_int_equal(s.nseen, 4);
	assert_int_equal(t.nslept, 0);
	agent_managed_client_free(c);
	server_stop(&s);
}

/* ---- set-up ------------------------------------------------------------------- */

static json_t *find_tool_in(const json_t *list, const char *name, const char *key)
{
	size_t i;
	json_t *t;
	json_array_foreach(list, i, t)
	{
		const char *n = base_json_str(t, key);
		if (n && !strcmp(n, name))
			return t;
	}
	return NULL;
}

/* One tool layer: the custom tools are agent_tools_list()'s, unchanged. */
static void test_definition(void **state)
{
	(void)state;
	json_t *def = agent_managed_agent_definition("claude-opus-4-5", NULL);
	assert_non_null(def);
	assert_string_equal(base_json_str(def, "name"), "perfbot");
	assert_string_equal(base_json_str(def, "model"), "claude-opus-4-5");
	assert_string_equal(base_json_str(def, "system"), agent_managed_system_prompt());
	json_t *tools = json_object_get(def, "tools");
	assert_int_equal(json_array_size(tools), 6);
	json_t *mcp = agent_tools_list();
	static const char *const custom[] = { "run_benchmarks", "get_profile", "compare", "get_diff", "submit_result" };
	for (size_t k = 0; k < 5; k++) {
		json_t *t = json_array_get(tools, k);
		json_t *m = find_tool_in(mcp, custom[k], "name");
		assert_non_null(m);
		assert_string_equal(base_json_str(t, "type"), "custom");
		assert_string_equal(base_json_str(t, "name"), custom[k]);
		assert_string_equal(base_json_str(t, "description"), base_json_str(m, "description"));
		assert_true(json_equal(json_object_get(t, "input_schema"), json_object_get(m, "inputSchema")));
	}
	/* exec and the file tools are the built-in toolset's, web tools off */
	assert_null(find_tool_in(tools, "exec", "name"));
	assert_null(find_tool_in(tools, "read_file", "name"));
	json_t *want = json_loads("{\"type\":\"agent_toolset_20260401\",\"default_config\":{\"enabled\":true,"
				  "\"permission_policy\":{\"type\":\"always_allow\"}},\"configs\":[{\"name\":\"web_fetch\","
				  "\"enabled\":false},{\"name\":\"web_search\",\"enabled\":false}]}",
				  0, NULL);
	assert_true(json_equal(json_array_get(tools, 5), want));
	json_decref(want);
	json_decref(mcp);

	/* the prompt compiled in is the file's text */
	FILE *f = fopen("agent/managed_system_prompt.md", "rb");
	assert_non_null(f);
	static char text[200000];
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	assert_true(n > 100);
	assert_string_equal(agent_managed_system_prompt(), text);

	/* the hash follows the definition: model and prompt */
	char h1[65], h2[65], h3[65], h4[65];
	assert_int_equal(agent_managed_definition_hash(h1, def), 0);
	json_t *same = agent_managed_agent_definition("claude-opus-4-5", NULL);
	json_t *model = agent_managed_agent_definition("claude-sonnet-4-5", NULL);
	json_t *prompt = agent_managed_agent_definition("claude-opus-4-5", "another prompt");
	assert_int_equal(agent_managed_definition_hash(h2, same), 0);
	assert_int_equal(agent_managed_definition_hash(h3, model), 0);
	assert_int_equal(agent_managed_definition_hash(h4, prompt), 0);
	assert_int_equal(strlen(h1), 64);
	assert_string_equal(h1, h2);
	assert_string_not_equal(h1, h3);
	assert_string_not_equal(h1, h4);
	json_decref(same);
	json_decref(model);
	json_decref(prompt);
	json_decref(def);
}

#define GOOD_KEY "sk-ant-good-key-123"

static char *error_body(const char *type, const char *message)
{
	json_t *e = json_pack("{s:s,s:{s:s,s:s},s:s}", "type", "error", "error", "type", type, "message", message,
			      "request_id", "req_fake");
	char *text = json_dumps(e, JSON_COMPACT);
	json_decref(e);
	return text;
}

/* A small Managed Agents control plane: agents (versioned) and
 * environments, the API key checked. */
/* The id after prefix in url, up to '?' or '/': 1 when there is one. */
static int path_id(const char *url, const char *prefix, char *out, size_t cap)
{
	size_t n = strlen(prefix);
	if (strncmp(url, prefix, n) != 0)
		return 0;
	size_t len = strcspn(url + n, "?/");
	if (len == 0 || len >= cap)
		return 0;
	memcpy(out, url + n, len);
	out[len] = '\0';
	return 1;
}

static int route(struct server *s, const struct seen *req, int *status, char **body)
{
	json_t *answer = NULL;
	char id[64];
	if (strcmp(req->api_key, GOOD_KEY) != 0) {
		*status = 401;
		char msg[256];
		snprintf(msg, sizeof(msg), "invalid x-api-key %s", req->api_key);
		*body = error_body("authentication_error", msg);
		return 0;
	}
	if (!s->agents)
		s->agents = json_array();
	if (!s->environments)
		s->environments = json_array();
	json_t *in = req->body[0] ? json_loads(req->body, 0, NULL) : NULL;
	*status = 200;
	if (!strcmp(req->method, "GET") && !strncmp(req->url, "/v1/agents?beta=true", 20)) {
		answer = json_pack("{s:O,s:n}", "data", s->agents, "next_page");
	} else if (!strcmp(req->method, "POST") && !strcmp(req->url, "/v1/agents?beta=true")) {
		snprintf(id, sizeof(id), "agent_%zu", json_array_size(s->agents) + 1);
		answer = json_deep_copy(in);
		json_object_set_new(answer, "id", json_string(id));
		json_object_set_new(answer, "version", json_integer(1));
		json_object_set_new(answer, "archived_at", json_null());
		json_array_append(s->agents, answer);
	} else if (path_id(req->url, "/v1/agents/", id, sizeof(id))) {
		json_t *a = find_tool_in(s->agents, id, "id");
		if (!a) {
			*status = 404;
			*body = error_body("not_found_error", "no such agent");
			json_decref(in);
			return 0;
		}
		if (!strcmp(req->method, "POST")) {
			s->agent_version_posts++;
			if (json_integer_value(json_object_get(in, "version")) != json_integer_value(json_object_get(a, "version"))) {
				*status = 409;
				*body = error_body("invalid_request_error", "version mismatch");
				json_decref(in);
				return 0;
			}
			json_object_del(in, "version");
			json_object_update(a, in);
			json_object_set_new(a, "version", json_integer(json_integer_value(json_object_get(a, "version")) + 1));
		}
		answer = json_incref(a);
	} else if (!strcmp(req->method, "POST") && !strcmp(req->url, "/v1/environments?beta=true")) {
		snprintf(id, sizeof(id), "env_%zu", json_array_size(s->environments) + 1);
		answer = json_deep_copy(in);
		json_object_set_new(answer, "id", json_string(id));
		json_array_append(s->environments, answer);
	} else if (path_id(req->url, "/v1/environments/", id, sizeof(id)) && find_tool_in(s->environments, id, "id")) {
		answer = json_incref(find_tool_in(s->environments, id, "id"));
	} else {
		*status = 404;
		*body = error_body("not_found_error", "not found");
		json_decref(in);
		return 0;
	}
	*body = json_dumps(answer, JSON_COMPACT);
	json_decref(answer);
	json_decref(in);
	return 0;
}

static int count_method(const struct server *s, const char *method, const char *url)
{
	int n = 0;
	for (int i = 0; i < s->nseen; i++)
		if (!strcmp(s->seen[i].method, method) && !strcmp(s->seen[i].url, url))
			n++;
	return n;
}

static void test_setup_idempotent(void **state)
{
	(void)state;
	struct server s;
	memset(&s, 0, sizeof(s));
	s.route = route;
	server_start(&s);
	struct fake_time t = { 0, { 0 }, 0 };
	base_clock clk;
	agent_managed_client *c = client_for(&s, &t, &clk, 0);
	agent_managed_setup_options o = { .api_key = GOOD_KEY, .model = "claude-opus-4-5" };
	agent_managed_setup_result r;

	/* first run: both created */
	assert_int_equal(agent_managed_setup(&r, c, &o), 0);
	assert_string_equal(r.agent_id, "agent_1");
	assert_string_equal(r.agent_action, "created");
	assert_int_equal(r.agent_version, 1);
	assert_string_equal(r.environment_id, "env_1");
	assert_string_equal(r.environment_action, "created");
	json_t *env = json_array_get(s.environments, 0);
	assert_string_equal(base_json_str(json_object_get(env, "config"), "type"), "self_hosted");
	json_t *agent = json_array_get(s.agents, 0);
	assert_string_equal(base_json_str(json_object_get(agent, "metadata"), AGENT_MANAGED_HASH_KEY),
			    r.definition_sha256);

	/* again, with the printed ids or finding the agent by its metadata:
	 * nothing changes */
	int posts = s.nseen;
	o.environment_id = "env_1";
	assert_int_equal(agent_managed_setup(&r, c, &o), 0);
	assert_string_equal(r.agent_action, "unchanged");
	assert_string_equal(r.environment_action, "unchanged");
	o.agent_id = "agent_1";
	assert_int_equal(agent_managed_setup(&r, c, &o), 0);
	assert_string_equal(r.agent_action, "unchanged");
	assert_int_equal(r.agent_version, 1);
	for (int i = posts; i < s.nseen; i++)
		assert_string_equal(s.seen[i].method, "GET");
	assert_int_equal(json_array_size(s.agents), 1);
	assert_int_equal(json_array_size(s.environments), 1);

	/* a changed model, then a changed prompt: a new version each */
	o.model = "claude-sonnet-4-5";
	assert_int_equal(agent_managed_setup(&r, c, &o), 0);
	assert_string_equal(r.agent_action, "updated");
	assert_int_equal(r.agent_version, 2);
	assert_string_equal(base_json_str(agent, "model"), "claude-sonnet-4-5");
	o.system_prompt = "a new prompt";
	o.agent_id = NULL;
	assert_int_equal(agent_managed_setup(&r, c, &o), 0);
	assert_string_equal(r.agent_action, "updated");
	assert_int_equal(r.agent_version, 3);
	assert_string_equal(base_json_str(agent, "system"), "a new prompt");
	assert_int_equal(count_method(&s, "POST", "/v1/agents/agent_1?beta=true"), 2);
	assert_int_equal(json_array_size(s.agents), 1);
	agent_managed_client_free(c);
	server_stop(&s);
}

static void test_setup_errors(void **state)
{
	(void)state;
	struct server s;
	memset(&s, 0, sizeof(s));
	s.route = route;
	server_start(&s);
	struct fake_time t = { 0, { 0 }, 0 };
	base_clock clk;
	agent_managed_client *c = client_for(&s, &t, &clk, 0);
	agent_managed_setup_result r;

	agent_managed_setup_options o = { .api_key = "sk-ant-WRONG-999", .model = "claude-opus-4-5" };
	assert_int_equal(agent_managed_setup(&r, c, &o), BASE_EAUTH);
	assert_non_null(strstr(base_error_last(), "listing the agents: the API key (ANTHROPIC_API_KEY) was refused"));
	assert_non_null(strstr(base_error_last(), "401 authentication_error"));
	assert_null(strstr(base_error_last(), "WRONG"));
	assert_null(strchr(base_error_last(), '\n'));

	o.api_key = NULL;
	assert_int_equal(agent_managed_setup(&r, c, &o), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "ANTHROPIC_API_KEY: required"));
	o.api_key = GOOD_KEY;
	o.model = NULL;
	assert_int_equal(agent_managed_setup(&r, c, &o), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "PERFBOT_MANAGED_MODEL: required"));
	o.model = "claude-opus-4-5";
	o.agent_id = "agent_404";
	assert_int_equal(agent_managed_setup(&r, c, &o), BASE_ENOTFOUND);
	assert_non_null(strstr(base_error_last(), "PERFBOT_MANAGED_AGENT_ID: no agent agent_404"));
	o.agent_id = NULL;
	o.environment_id = "env_404";
	assert_int_equal(agent_managed_setup(&r, c, &o), BASE_ENOTFOUND);
	assert_non_null(strstr(base_error_last(), "PERFBOT_MANAGED_ENVIRONMENT_ID: no environment env_404"));
	assert_int_equal(json_array_size(s.environments), 0);
	agent_managed_client_free(c);
	server_stop(&s);
}

int main(void)
{
	base_log_configure(BASE_LOG_OFF, 0, 2);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_secret_decode),
		cmocka_unit_test(test_sse_frames),
		cmocka_unit_test(test_sse_cap),
		cmocka_unit_test(test_url),
		cmocka_unit_test(test_error_text),
		cmocka_unit_test(test_retry_wait),
		cmocka_unit_test(test_request_headers_and_credentials),
		cmocka_unit_test(test_retries_on_the_clock),
		cmocka_unit_test(test_errors_one_line_without_key),
		cmocka_unit_test(test_answer_cap),
		cmocka_unit_test(test_stream),
		cmocka_unit_test(test_definition),
		cmocka_unit_test(test_setup_idempotent),
		cmocka_unit_test(test_setup_errors),
	};
	return cmocka_run_group_tests_name("agent_managed", tests, NULL, NULL);
}
