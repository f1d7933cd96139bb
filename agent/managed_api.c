/* The Managed Agents wire over libcurl (see managed_api.h).
 *
 * A request is built from the base URL, the path with `?beta=true`, the
 * fixed headers and one credential header; the answer is capped
 * (max_response), parsed as JSON, and an error answer becomes one line of
 * base_error_set text.  Retries follow the SDKs: 408, 409, 429, 5xx and
 * transport failures, `x-should-retry` overriding, waits from
 * `retry-after-ms`, then `retry-after`, else exponential backoff; every wait
 * goes through the client's base_clock so that tests take no real time.
 * A session's event stream is one long GET whose chunks go through the SSE
 * parser as they come; it is never retried here (the caller reconnects and
 * lists the history, so no event is lost between two streams).
 *
 * Invariants: a credential goes only into its header, and its buffer is
 * wiped after the transfer; it is never logged, and an error text that
 * contains it has it replaced.  No response body is logged.
 *
 * Threading: the client is shared; CURL handles come from a mutex-protected
 * pool and each is used by one thread between get and put.  The SSE parser
 * and the other helpers are pure. */
#include "agent/managed_api.h"

#include <ctype.h>
#include <stdatomic.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "base/buf.h"
#include "base/curl_pool.h"
#include "base/error.h"
#include "base/log.h"

#ifndef PERFBOT_VERSION
#define PERFBOT_VERSION "0.0.0"
#endif

#define ERROR_TEXT_MAX 400

struct agent_managed_client {
	agent_managed_options opts;
	char *base_url;             /* owned, without trailing '/' */
	base_curl_pool pool;        /* at most 8 handles kept */
};

void agent_managed_response_dispose(agent_managed_response *r)
{
	if (!r)
		return;
	json_decref(r->body);
	r->body = NULL;
}

int agent_managed_client_new(agent_managed_client **out, const agent_managed_options *opts)
{
	static const agent_managed_options defaults = AGENT_MANAGED_OPTIONS_INIT;
	agent_managed_client *c;
	*out = NULL;
	if (!(c = calloc(1, sizeof(*c))))
		return base_error_set(BASE_ENOMEM, "out of memory");
	c->opts = opts ? *opts : defaults;
	if (c->opts.max_retries < 0)
		c->opts.max_retries = 0;
	if (c->opts.backoff_ms <= 0)
		c->opts.backoff_ms = defaults.backoff_ms;
	if (c->opts.max_backoff_ms <= 0)
		c->opts.max_backoff_ms = defaults.max_backoff_ms;
	if (c->opts.max_wait_ms <= 0)
		c->opts.max_wait_ms = defaults.max_wait_ms;
	if (c->opts.connect_timeout_ms <= 0)
		c->opts.connect_timeout_ms = defaults.connect_timeout_ms;
	if (c->opts.timeout_ms <= 0)
		c->opts.timeout_ms = defaults.timeout_ms;
	if (c->opts.max_response == 0)
		c->opts.max_response = defaults.max_response;
	if (!c->opts.clock)
		c->opts.clock = base_clock_system();
	const char *base = c->opts.base_url && c->opts.base_url[0] ? c->opts.base_url : "https://api.anthropic.com";
	if (!(c->base_url = strdup(base))) {
		free(c);
		return base_error_set(BASE_ENOMEM, "out of memory");
	}
	size_t n = strlen(c->base_url);
	while (n > 0 && c->base_url[n - 1] == '/')
		c->base_url[--n] = '\0';
	c->opts.base_url = NULL;
	base_curl_pool_init(&c->pool, 8);
	*out = c;
	return 0;
}

void agent_managed_client_free(agent_managed_client *c)
{
	if (!c)
		return;
	base_curl_pool_dispose(&c->pool);
	free(c->base_url);
	free(c);
}

/* ---- pure helpers -------------------------------------------------------- */

int agent_managed_url(char **out, const char *base_url, const char *path)
{
	base_buf b = BASE_BUF_INIT(16384);
	*out = NULL;
	if (!path || path[0] != '/')
		return base_error_set(BASE_EINVALID, "Anthropic API path must start with '/'");
	size_t blen = strlen(base_url);
	while (blen > 0 && base_url[blen - 1] == '/')
		blen--;
	const char *q = strchr(path, '?');
	size_t plen = q ? (size_t)(q - path) : strlen(path);
	if (base_buf_put(&b, base_url, blen) < 0 || base_buf_put(&b, path, plen) < 0 ||
	    base_buf_puts(&b, "?beta=true") < 0 || (q && q[1] && (base_buf_puts(&b, "&") < 0 || base_buf_puts(&b, q + 1) < 0))) {
		base_buf_dispose(&b);
		return base_error_set(BASE_ETOOBIG, "Anthropic API URL too long");
	}
	if (!(*out = base_buf_detach(&b)))
		return base_error_set(BASE_ENOMEM, "out of memory");
	return 0;
}

/* Copies s (n bytes) into out as one line: control characters and other
 * whitespace become single spaces. */
static void one_line(char *out, size_t cap, const char *s, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n && o + 1 < cap; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < 0x20 || ch == 0x7f) {
			if (o > 0 && out[o - 1] != ' ')
				out[o++] = ' ';
			continue;
		}
		out[o++] = (char)ch;
	}
	while (o > 0 && out[o - 1] == ' ')
		o--;
	out[o] = '\0';
}

/* Replaces every occurrence of secret in out (capacity cap) by [redacted];
 * the search goes on after each mark, so a secret found inside the mark
 * cannot loop. */
static void redact(char *out, size_t cap, const char *secret)
{
	static const char mark[] = "[redacted]";
	const size_t ml = sizeof(mark) - 1;
	size_t slen = secret ? strlen(secret) : 0;
	if (slen < 4) /* too short to be a credential; also keeps "" harmless */
		return;
	char *from = out;
	char *p;
	while ((p = strstr(from, secret)) != NULL) {
		size_t before = (size_t)(p - out);
		if (before + ml + 1 > cap) {
			*p = '\0'; /* no room for the mark: cut */
			return;
		}
		size_t tail = strlen(p + slen);
		if (before + ml + tail + 1 > cap)
			tail = cap - before - ml - 1;
		memmove(p + ml, p + slen, tail);
		memcpy(p, mark, ml);
		p[ml + tail] = '\0';
		from = p + ml;
	}
}

void agent_managed_error_text(char *out, size_t cap, const char *body, size_t len, const char *secret,
			      char *request_id, size_t rid_cap)
{
	char tmp[ERROR_TEXT_MAX * 2];
	if (request_id && rid_cap)
		request_id[0] = '\0';
	if (!cap)
		return;
	out[0] = '\0';
	json_t *root = body && len ? json_loadb(body, len, 0, NULL) : NULL;
	const json_t *err = json_object_get(root, "error");
	const char *type = json_string_value(json_object_get(err, "type"));
	const char *message = json_string_value(json_object_get(err, "message"));
	const char *rid = json_string_value(json_object_get(root, "request_id"));
	if (type || message) {
		snprintf(tmp, sizeof(tmp), "%s%s%s", type ? type : "error", message ? ": " : "", message ? message : "");
	} else if (body && len) {
		size_t n = len < 200 ? len : 200;
		snprintf(tmp, sizeof(tmp), "%.*s", (int)n, body);
	} else {
		snprintf(tmp, sizeof(tmp), "(no message)");
	}
	one_line(out, cap, tmp, strlen(tmp));
	redact(out, cap, secret);
	if (request_id && rid_cap && rid) {
		one_line(request_id, rid_cap, rid, strlen(rid));
		redact(request_id, rid_cap, secret);
	}
	json_decref(root);
}

/* A header value as a non-negative number (fractions allowed); -1 when not
 * one. */
static double parse_number(const char *s)
{
	if (!s)
		return -1;
	while (*s == ' ')
		s++;
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || v < 0 || v != v)
		return -1;
	while (*end == ' ')
		end++;
	return *end ? -1 : v;
}

int agent_managed_retry_wait(long *wait_ms, const agent_managed_retry_in *in, const agent_managed_options *opts,
			     double jitter)
{
	*wait_ms = 0;
	int retry;
	if (in->should_retry && !strcmp(in->should_retry, "true"))
		retry = 1;
	else if (in->should_retry && !strcmp(in->should_retry, "false"))
		retry = 0;
	else
		retry = in->status == 0 || in->status == 408 || in->status == 409 || in->status == 429 || in->status >= 500;
	if (!retry)
		return 0;
	double named = -1;
	double ms = parse_number(in->retry_after_ms);
	if (ms >= 0)
		named = ms;
	if (named < 0 && in->retry_after) {
		double s = parse_number(in->retry_after);
		if (s >= 0) {
			named = s * 1000.0;
		} else {
			struct tm tm;
			memset(&tm, 0, sizeof(tm));
			const char *end = strptime(in->retry_after, "%a, %d %b %Y %H:%M:%S GMT", &tm);
			if (end && !*end)
				named = ((double)timegm(&tm) * 1000.0) - (double)in->now_wall_ms;
		}
	}
	if (named >= 0 && named <= (double)opts->max_wait_ms) {
		*wait_ms = (long)named;
		return 1;
	}
	double base = (double)opts->backoff_ms;
	for (int i = 0; i < in->attempt && base < (double)opts->max_backoff_ms; i++)
		base *= 2;
	if (base > (double)opts->max_backoff_ms)
		base = (double)opts->max_backoff_ms;
	if (jitter < 0 || jitter >= 1)
		jitter = 0;
	*wait_ms = (long)(base * (1.0 - 0.25 * jitter));
	return 1;
}

static int b64_value(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '-' || ch == '+')
		return 62;
	if (ch == '_' || ch == '/')
		return 63;
	return -1;
}

int agent_managed_secret_decode(char **token_out, char **base_url_out, const char *secret)
{
	int error = 0;
	unsigned char *raw = NULL;
	json_t *root = NULL;
	size_t n = secret ? strlen(secret) : 0, o = 0;
	*token_out = NULL;
	*base_url_out = NULL;
	while (n > 0 && secret[n - 1] == '=')
		n--;
	if (n == 0 || n > 65536 || n % 4 == 1)
		return base_error_set(BASE_EINVALID, "the work item's secret is not base64url");
	if (!(raw = malloc(n * 3 / 4 + 3)))
		return base_error_set(BASE_ENOMEM, "out of memory");
	unsigned int acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b64_value((unsigned char)secret[i]);
		if (v < 0) {
			error = base_error_set(BASE_EINVALID, "the work item's secret is not base64url");
			goto done;
		}
		acc = (acc << 6) | (unsigned int)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			raw[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	json_error_t jerr;
	if (!(root = json_loadb((const char *)raw, o, 0, &jerr)) || !json_is_object(root)) {
		error = base_error_set(BASE_EINVALID, "the work item's secret does not hold a JSON object");
		goto done;
	}
	const char *token = json_string_value(json_object_get(root, "sessions_token"));
	const json_t *url = json_object_get(root, "api_base_url");
	if (!token || !token[0]) {
		error = base_error_set(BASE_EINVALID, "the work item's secret has no sessions_token");
		goto done;
	}
	for (const unsigned char *p = (const unsigned char *)token; *p; p++)
		if (*p <= ' ' || *p >= 0x7f) {
			error = base_error_set(BASE_EINVALID, "the work item's sessions_token holds invalid characters");
			goto done;
		}
	const char *u = json_string_value(url);
	if (url && !json_is_null(url) && (!u || (strncmp(u, "https://", 8) && strncmp(u, "http://", 7)) ||
					  strpbrk(u, " \t\r\n?#@"))) {
		error = base_error_set(BASE_EINVALID, "the work item's api_base_url is not an http(s) URL");
		goto done;
	}
	if (!(*token_out = strdup(token)) || (u && u[0] && !(*base_url_out = strdup(u)))) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
done:
	if (error < 0) {
		if (*token_out)
			OPENSSL_cleanse(*token_out, strlen(*token_out));
		free(*token_out);
		free(*base_url_out);
		*token_out = NULL;
		*base_url_out = NULL;
	}
	if (raw) {
		OPENSSL_cleanse(raw, n * 3 / 4 + 3);
		free(raw);
	}
	json_decref(root); /* jansson's copy of the token is freed unwiped: it never left this process */
	return error;
}

/* ---- SSE ------------------------------------------------------------------- */

int agent_managed_sse_init(agent_managed_sse *p, size_t cap)
{
	memset(p, 0, sizeof(*p));
	if (cap < 16)
		cap = 16;
	if (!(p->buf = malloc(cap + 1)))
		return base_error_set(BASE_ENOMEM, "out of memory");
	p->cap = cap;
	return 0;
}

void agent_managed_sse_dispose(agent_managed_sse *p)
{
	if (!p)
		return;
	free(p->buf);
	p->buf = NULL;
}

static void sse_reset_frame(agent_managed_sse *p)
{
	p->data_len = 0;
	p->has_data = 0;
	p->event[0] = '\0';
}

/* A complete line at buf + data_len (line_len bytes).  Returns the
 * callback's negative code, BASE_ETOOBIG for a field too long, or 0. */
static int sse_line(agent_managed_sse *p, agent_managed_sse_cb cb, void *payload)
{
	char *line = p->buf + p->data_len;
	size_t n = p->line_len;
	p->line_len = 0;
	if (!p->started) {
		p->started = 1;
		if (n >= 3 && (unsigned char)line[0] == 0xEF && (unsigned char)line[1] == 0xBB &&
		    (unsigned char)line[2] == 0xBF) {
			memmove(line, line + 3, n - 3);
			n -= 3;
		}
	}
	if (p->skipping) {
		if (n == 0) {
			p->skipping = 0;
			sse_reset_frame(p);
		}
		return 0;
	}
	if (n == 0) {
		int error = 0;
		if (p->has_data) {
			p->buf[p->data_len] = '\0';
			if (!strcmp(p->event, "ping")) {
				p->keepalives++;
			} else {
				p->events++;
				error = cb(p->event[0] ? p->event : "message", p->buf, p->data_len, p->id, payload);
			}
		}
		sse_reset_frame(p);
		return error;
	}
	if (line[0] == ':') {
		p->keepalives++;
		return 0;
	}
	size_t flen = 0;
	while (flen < n && line[flen] != ':')
		flen++;
	size_t v = flen < n ? flen + 1 : n;
	if (v < n && line[v] == ' ')
		v++;
	const char *value = line + v;
	size_t vlen = n - v;
	if (flen == 4 && !memcmp(line, "data", 4)) {
		/* the line sits right after the data: the value moves left */
		size_t at = p->data_len;
		if (p->has_data)
			p->buf[at++] = '\n';
		memmove(p->buf + at, value, vlen);
		p->data_len = at + vlen;
		p->has_data = 1;
	} else if (flen == 5 && !memcmp(line, "event", 5)) {
		if (vlen >= sizeof(p->event)) {
			p->skipping = 1;
			return base_error_set(BASE_ETOOBIG, "event stream: an event name longer than %zu bytes",
					      sizeof(p->event) - 1);
		}
		memcpy(p->event, value, vlen);
		p->event[vlen] = '\0';
	} else if (flen == 2 && !memcmp(line, "id", 2)) {
		if (vlen < sizeof(p->id) && !memchr(value, '\0', vlen)) {
			memcpy(p->id, value, vlen);
			p->id[vlen] = '\0';
		}
	}
	/* retry and unknown fields are ignored, as the standard says */
	return 0;
}

int agent_managed_sse_feed(agent_managed_sse *p, const char *data, size_t len, agent_managed_sse_cb cb,
			   void *payload)
{
	int result = 0;
	for (size_t i = 0; i < len; i++) {
		char ch = data[i];
		if (ch == '\n' && p->last_cr) {
			p->last_cr = 0;
			continue;
		}
		p->last_cr = ch == '\r';
		if (ch == '\n' || ch == '\r') {
			int error = sse_line(p, cb, payload);
			if (error < 0 && error != BASE_ETOOBIG)
				return error;
			if (error < 0)
				result = error;
			continue;
		}
		if (p->skipping) {
			p->line_len = 1; /* a non-empty line: not the frame's end */
			continue;
		}
		if (p->data_len + p->line_len + 1 > p->cap) {
			p->skipping = 1;
			p->line_len = 1;
			sse_reset_frame(p);
			result = base_error_set(BASE_ETOOBIG, "event stream: a frame larger than %zu bytes", p->cap);
			continue;
		}
		p->buf[p->data_len + p->line_len++] = ch;
	}
	return result;
}

/* ---- one exchange ------------------------------------------------------------ */

typedef struct exchange {
	long status;
	CURLcode curl_code;
	base_buf body;
	char should_retry[16];
	char retry_after_ms[32];
	char retry_after[64];
	char request_id[128];
	char curl_msg[CURL_ERROR_SIZE];
} exchange;

static void copy_header(CURL *h, const char *name, char *out, size_t cap)
{
	struct curl_header *hdr = NULL;
	out[0] = '\0';
	if (curl_easy_header(h, name, 0, CURLH_HEADER, -1, &hdr) == CURLHE_OK && hdr && hdr->value)
		one_line(out, cap, hdr->value, strlen(hdr->value));
}

/* The request's headers; cred and worker hold the credential and worker
 * lines (the caller wipes cred after the transfer).  NULL out of memory. */
static struct curl_slist *request_headers(const agent_managed_request *req, const char *accept, base_buf *cred,
					  base_buf *worker)
{
	struct curl_slist *hdrs = NULL, *t;
	const char *fixed[] = { "anthropic-version: 2023-06-01", "anthropic-beta: managed-agents-2026-04-01",
				"content-type: application/json", accept, "user-agent: perfbot/" PERFBOT_VERSION, "Expect:" };
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		if (!(t = curl_slist_append(hdrs, fixed[i])))
			goto fail;
		hdrs = t;
	}
	if (req->credential && req->credential[0]) {
		int e = req->cred == AGENT_MANAGED_API_KEY ? base_buf_printf(cred, "x-api-key: %s", req->credential)
							   : base_buf_printf(cred, "authorization: Bearer %s", req->credential);
		if (e < 0 || !(t = curl_slist_append(hdrs, base_buf_cstr(cred))))
			goto fail;
		hdrs = t;
	}
	if (req->worker_id) {
		if (base_buf_printf(worker, "anthropic-worker-id: %s", req->worker_id) < 0 ||
		    !(t = curl_slist_append(hdrs, base_buf_cstr(worker))))
			goto fail;
		hdrs = t;
	}
	return hdrs;
fail:
	curl_slist_free_all(hdrs);
	return NULL;
}

static void wipe_dispose(base_buf *b)
{
	if (b->ptr)
		OPENSSL_cleanse(b->ptr, b->alloc);
	base_buf_dispose(b);
}

static void send_once(agent_managed_client *c, CURL *h, const agent_managed_request *req, const char *url,
		      const char *body, exchange *ex)
{
	struct curl_slist *hdrs = NULL;
	base_buf cred = BASE_BUF_INIT(4096);
	base_buf worker = BASE_BUF_INIT(512);

	ex->status = 0;
	base_buf_reset(&ex->body);
	ex->should_retry[0] = ex->retry_after_ms[0] = ex->retry_after[0] = ex->request_id[0] = '\0';
	ex->curl_msg[0] = '\0';

	curl_easy_reset(h);
	if (!(hdrs = request_headers(req, "accept: application/json", &cred, &worker))) {
		ex->curl_code = CURLE_OUT_OF_MEMORY;
		goto done;
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L); /* a redirect never carries a key elsewhere */
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->opts.connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->opts.timeout_ms);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, base_curl_write_buf);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &ex->body);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ex->curl_msg);
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
	if (!strcmp(req->method, "GET")) {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	} else {
		if (strcmp(req->method, "POST"))
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)(body ? strlen(body) : 0));
	}
	ex->curl_code = curl_easy_perform(h);
	if (ex->curl_code == CURLE_OK) {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &ex->status);
		copy_header(h, "x-should-retry", ex->should_retry, sizeof(ex->should_retry));
		copy_header(h, "retry-after-ms", ex->retry_after_ms, sizeof(ex->retry_after_ms));
		copy_header(h, "retry-after", ex->retry_after, sizeof(ex->retry_after));
		copy_header(h, "request-id", ex->request_id, sizeof(ex->request_id));
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
done:
	curl_slist_free_all(hdrs);
	wipe_dispose(&cred);
	base_buf_dispose(&worker);
}

static int status_code(long status)
{
	switch (status) {
	case 401: return BASE_EAUTH;
	case 403: return BASE_EFORBIDDEN;
	case 404: return BASE_ENOTFOUND;
	case 409: return BASE_EEXISTS;
	case 408: return BASE_ETIMEOUT;
	case 429: return BASE_ERETRY;
	default: return status >= 500 ? BASE_ERETRY : BASE_EINVALID;
	}
}

static double jitter_value(void)
{
	unsigned int r = 0;
	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		r = (unsigned int)time(NULL);
	return (double)(r % 10000u) / 10000.0;
}

int agent_managed_send(agent_managed_client *c, const agent_managed_request *req, agent_managed_response *resp)
{
	int error = 0;
	char *url = NULL, *body_text = NULL;
	CURL *h = NULL;
	exchange ex;
	char path[256];
	const base_clock *clk = c->opts.clock;

	memset(resp, 0, sizeof(*resp));
	memset(&ex, 0, sizeof(ex));
	base_buf_init(&ex.body, c->opts.max_response);
	/* the path for messages: no query */
	size_t plen = req->path ? strcspn(req->path, "?") : 0;
	snprintf(path, sizeof(path), "%.*s", (int)(plen < sizeof(path) - 1 ? plen : sizeof(path) - 1),
		 req->path ? req->path : "");
	if ((error = agent_managed_url(&url, req->base_url ? req->base_url : c->base_url, req->path)) < 0)
		goto done;
	if (req->body && !(body_text = json_dumps(req->body, JSON_COMPACT))) {
		error = base_error_set(BASE_EINVALID, "cannot encode the request body of %s %s", req->method, path);
		goto done;
	}
	if (!(h = base_curl_pool_get(&c->pool))) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	for (int attempt = 0;; attempt++) {
		resp->attempts = attempt + 1;
		send_once(c, h, req, url, body_text, &ex);
		resp->status = ex.status;
		if (ex.curl_code == CURLE_WRITE_ERROR) {
			error = base_error_set(BASE_ETOOBIG, "Anthropic API %s %s: answer larger than %zu bytes", req->method,
					      path, c->opts.max_response);
			goto done;
		}
		if (ex.curl_code == CURLE_OK && ex.status >= 200 && ex.status < 300) {
			snprintf(resp->request_id, sizeof(resp->request_id), "%s", ex.request_id);
			if (ex.body.len > 0) {
				json_error_t jerr;
				if (!(resp->body = json_loadb(ex.body.ptr, ex.body.len, JSON_DECODE_ANY, &jerr))) {
					error = base_error_set(BASE_EINVALID, "Anthropic API %s %s: %ld answer is not JSON (%s)",
							      req->method, path, ex.status, jerr.text);
					goto done;
				}
			}
			goto done;
		}
		agent_managed_retry_in in = { 0 };
		in.status = ex.curl_code == CURLE_OK ? ex.status : 0;
		in.should_retry = ex.should_retry[0] ? ex.should_retry : NULL;
		in.retry_after_ms = ex.retry_after_ms[0] ? ex.retry_after_ms : NULL;
		in.retry_after = ex.retry_after[0] ? ex.retry_after : NULL;
		in.now_wall_ms = clk->wall_ms(clk->payload);
		in.attempt = attempt;
		long wait = 0;
		if (attempt < c->opts.max_retries && agent_managed_retry_wait(&wait, &in, &c->opts, jitter_value())) {
			char st[16], ms[24];
			snprintf(st, sizeof(st), "%ld", in.status);
			snprintf(ms, sizeof(ms), "%ld", wait);
			base_log(BASE_LOG_INFO, "anthropic api retry", "method", req->method, "path", path, "status", st,
				 "wait_ms", ms, NULL);
			if (wait > 0)
				clk->sleep_ms(clk->payload, wait);
			continue;
		}
		if (ex.curl_code != CURLE_OK) {
			char msg[CURL_ERROR_SIZE];
			one_line(msg, sizeof(msg), ex.curl_msg[0] ? ex.curl_msg : curl_easy_strerror(ex.curl_code),
				 strlen(ex.curl_msg[0] ? ex.curl_msg : curl_easy_strerror(ex.curl_code)));
			redact(msg, sizeof(msg), req->credential);
			error = base_error_set(ex.curl_code == CURLE_OPERATION_TIMEDOUT ? BASE_ETIMEOUT : BASE_ERETRY,
					      "Anthropic API %s %s: %s", req->method, path, msg);
			goto done;
		}
		char text[ERROR_TEXT_MAX];
		agent_managed_error_text(text, sizeof(text), ex.body.ptr, ex.body.len, req->credential, resp->request_id,
					 sizeof(resp->request_id));
		if (!resp->request_id[0])
			snprintf(resp->request_id, sizeof(resp->request_id), "%s", ex.request_id);
		if (ex.body.len > 0)
			resp->body = json_loadb(ex.body.ptr, ex.body.len, 0, NULL);
		error = base_error_set(status_code(ex.status), "Anthropic API %s %s: %ld %s%s%s%s", req->method, path,
				      ex.status, text, resp->request_id[0] ? " (request " : "", resp->request_id,
				      resp->request_id[0] ? ")" : "");
		goto done;
	}
done:
	base_curl_pool_put(&c->pool, h);
	free(url);
	free(body_text);
	base_buf_dispose(&ex.body);
	return error;
}

/* ---- an event stream ------------------------------------------------------- */

typedef struct stream_ctx {
	CURL *h;
	agent_managed_sse parser;
	agent_managed_sse_cb cb;
	void *payload;
	const atomic_int *stop;
	base_buf error_body;   /* a non-2xx answer's body */
	int result;            /* why the transfer was aborted from a callback */
} stream_ctx;

static size_t on_stream(char *data, size_t size, size_t n, void *userdata)
{
	stream_ctx *s = userdata;
	long status = 0;
	curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status >= 300) {
		base_buf_put(&s->error_body, data, size * n); /* capped: the rest is dropped */
		return size * n;
	}
	int error = agent_managed_sse_feed(&s->parser, data, size * n, s->cb, s->payload);
	if (error < 0) {
		s->result = error;
		return 0; /* aborts the transfer */
	}
	return size * n;
}

static int on_stream_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
			      curl_off_t ulnow)
{
	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	stream_ctx *s = userdata;
	if (s->stop && atomic_load(s->stop)) {
		s->result = BASE_ECANCELLED;
		return 1;
	}
	return 0;
}

int agent_managed_stream(agent_managed_client *c, const agent_managed_request *req, const agent_managed_stream_options *so,
			 agent_managed_sse_cb cb, void *payload, agent_managed_response *resp)
{
	int error = 0;
	char *url = NULL;
	struct curl_slist *hdrs = NULL;
	base_buf cred = BASE_BUF_INIT(4096), worker = BASE_BUF_INIT(512);
	stream_ctx s;
	char path[256], curl_msg[CURL_ERROR_SIZE] = "";
	long idle_ms = so && so->idle_ms > 0 ? so->idle_ms : 90000;

	memset(resp, 0, sizeof(*resp));
	memset(&s, 0, sizeof(s));
	base_buf_init(&s.error_body, 65536);
	resp->attempts = 1;
	size_t plen = req->path ? strcspn(req->path, "?") : 0;
	snprintf(path, sizeof(path), "%.*s", (int)(plen < sizeof(path) - 1 ? plen : sizeof(path) - 1),
		 req->path ? req->path : "");
	if ((error = agent_managed_sse_init(&s.parser, so && so->frame_cap ? so->frame_cap : (1u << 20))) < 0 ||
	    (error = agent_managed_url(&url, req->base_url ? req->base_url : c->base_url, req->path)) < 0)
		goto done;
	if (!(s.h = base_curl_pool_get(&c->pool)) || !(hdrs = request_headers(req, "accept: text/event-stream", &cred, &worker))) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	s.cb = cb;
	s.payload = payload;
	s.stop = so ? so->stop : NULL;
	curl_easy_reset(s.h);
	curl_easy_setopt(s.h, CURLOPT_URL, url);
	curl_easy_setopt(s.h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(s.h, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(s.h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(s.h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(s.h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(s.h, CURLOPT_CONNECTTIMEOUT_MS, c->opts.connect_timeout_ms);
	/* no overall timeout: a stream lasts; silence (not even a ping) ends it */
	curl_easy_setopt(s.h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(s.h, CURLOPT_LOW_SPEED_TIME, (idle_ms + 999) / 1000);
	curl_easy_setopt(s.h, CURLOPT_WRITEFUNCTION, on_stream);
	curl_easy_setopt(s.h, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(s.h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(s.h, CURLOPT_XFERINFOFUNCTION, on_stream_progress);
	curl_easy_setopt(s.h, CURLOPT_XFERINFODATA, &s);
	curl_easy_setopt(s.h, CURLOPT_ERRORBUFFER, curl_msg);
	CURLcode rc = curl_easy_perform(s.h);
	curl_easy_getinfo(s.h, CURLINFO_RESPONSE_CODE, &resp->status);
	curl_easy_setopt(s.h, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(s.h, CURLOPT_ERRORBUFFER, NULL);
	if (s.result < 0) {
		error = s.result;
		if (error == BASE_ECANCELLED)
			base_error_set(error, "Anthropic API GET %s: stream stopped", path);
		/* otherwise the parser's or the callback's message stands */
		goto done;
	}
	if (rc != CURLE_OK) {
		char msg[CURL_ERROR_SIZE];
		const char *m = curl_msg[0] ? curl_msg : curl_easy_strerror(rc);
		one_line(msg, sizeof(msg), m, strlen(m));
		redact(msg, sizeof(msg), req->credential);
		error = base_error_set(rc == CURLE_OPERATION_TIMEDOUT ? BASE_ETIMEOUT : BASE_ERETRY,
				      "Anthropic API GET %s: stream ended: %s", path, msg);
		goto done;
	}
	if (resp->status < 200 || resp->status >= 300) {
		char text[ERROR_TEXT_MAX];
		agent_managed_error_text(text, sizeof(text), s.error_body.ptr, s.error_body.len, req->credential,
					 resp->request_id, sizeof(resp->request_id));
		if (s.error_body.len > 0)
			resp->body = json_loadb(s.error_body.ptr, s.error_body.len, 0, NULL);
		error = base_error_set(status_code(resp->status), "Anthropic API GET %s: %ld %s%s%s%s", path, resp->status,
				      text, resp->request_id[0] ? " (request " : "", resp->request_id,
				      resp->request_id[0] ? ")" : "");
	}
done:
	base_curl_pool_put(&c->pool, s.h);
	curl_slist_free_all(hdrs);
	wipe_dispose(&cred);
	base_buf_dispose(&worker);
	base_buf_dispose(&s.error_body);
	agent_managed_sse_dispose(&s.parser);
	free(url);
	return error;
}
