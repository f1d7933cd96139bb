/* The REST client: one request to GitHub with retries, rate limits, write
 * serialisation and authentication, plus pagination.
 *
 * Threading: gh_client is shared by all threads.  CURL handles come from a
 * base_curl_pool; a handle is used by one thread between get and put,
 * and keeps its connection cache between requests.  Per-installation state
 * (rate-limit budget, guarded by the client mutex; the write lock that
 * serialises content-creating requests) lives in entries that are never freed before the client.  The
 * only other mutable state is the thread-local wait of the last
 * BASE_ERETRY, which belongs with the thread-local error message.
 *
 * Invariants: tokens and JWTs go only into the Authorization header of
 * requests to the configured API URL (pagination links to another origin
 * are refused, redirects never carry them to another host); they are never
 * logged, and no response body is logged. */
#include "github/github.h"
#include "base/clock.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
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
#include "base/metrics.h"
#include "github/gh_int.h"
#include "github/token_cache.h"

#ifndef PERFBOT_VERSION
#define PERFBOT_VERSION "0.0.0"
#endif

#define MAX_RATE_WAITS 5
#define REDELIVERY_SET_MAX 4096

typedef struct inst_state {
	struct inst_state *next;
	int64_t id;
	pthread_mutex_t write_mu;   /* held across one content-creating request */
	int has_remaining;
	long remaining;
	int64_t reset;              /* epoch s */
	int secondary_count;        /* consecutive secondary limits */
	base_metric *remaining_gauge;
} inst_state;

struct gh_client {
	const base_config *cfg;
	gh_options opts;
	char *api_url;              /* without trailing slash */
	gh_app_key *key;            /* NULL: unauthenticated calls only */
	gh_token_cache *tokens;
	pthread_mutex_t mu;         /* states, redelivery set */
	base_curl_pool pool;
	inst_state *states;
	char *redelivered[REDELIVERY_SET_MAX]; /* ring of GUIDs */
	int nredelivered;
	int redelivered_next;
};

static _Thread_local long tl_retry_wait_ms;

long gh_retry_wait_ms(void)
{
	return tl_retry_wait_ms;
}

int gh__max_pages(const gh_client *c)
{
	return c->opts.max_pages;
}

/* ---- lifecycle -------------------------------------------------------------- */

int gh_client_new(gh_client **out, const base_config *cfg, const gh_options *opts)
{
	static const gh_options defaults = GH_OPTIONS_INIT;
	int error = 0;
	gh_client *c = NULL;

	*out = NULL;
	if (!(c = calloc(1, sizeof(*c))))
		return base_error_set(BASE_ENOMEM, "out of memory");
	pthread_mutex_init(&c->mu, NULL);
	base_curl_pool_init(&c->pool, BASE_CURL_POOL_MAX);
	c->cfg = cfg;
	c->opts = opts ? *opts : defaults;
	if (c->opts.max_pages <= 0)
		c->opts.max_pages = defaults.max_pages;
	if (c->opts.max_response == 0)
		c->opts.max_response = defaults.max_response;
	if (!c->opts.clock)
		c->opts.clock = base_clock_system();
	const char *base = c->opts.api_url ? c->opts.api_url : cfg->github_api_url;
	if (!base || !base[0])
		base = "https://api.github.com";
	if (!(c->api_url = strdup(base))) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	size_t n = strlen(c->api_url);
	while (n > 0 && c->api_url[n - 1] == '/')
		c->api_url[--n] = '\0';
	c->opts.api_url = NULL;
	if ((cfg->private_key && cfg->private_key[0]) || (cfg->private_key_path && cfg->private_key_path[0])) {
		if ((error = gh_app_key_load(&c->key, cfg)) < 0)
			goto done;
	}
	if ((error = gh_token_cache_new(&c->tokens, c->opts.token_margin_s)) < 0)
		goto done;
	*out = c;
	c = NULL;
done:
	gh_client_free(c);
	return error;
}

void gh_client_free(gh_client *c)
{
	if (!c)
		return;
	base_curl_pool_dispose(&c->pool);
	inst_state *s = c->states;
	while (s) {
		inst_state *next = s->next;
		pthread_mutex_destroy(&s->write_mu);
		free(s);
		s = next;
	}
	for (int i = 0; i < REDELIVERY_SET_MAX; i++)
		free(c->redelivered[i]);
	gh_token_cache_free(c->tokens);
	gh_app_key_free(c->key);
	free(c->api_url);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

static inst_state *state_for(gh_client *c, int64_t id)
{
	inst_state *s;
	pthread_mutex_lock(&c->mu);
	for (s = c->states; s; s = s->next)
		if (s->id == id)
			goto done;
	if ((s = calloc(1, sizeof(*s))) != NULL) {
		char labels[64];
		s->id = id;
		pthread_mutex_init(&s->write_mu, NULL);
		snprintf(labels, sizeof(labels), "installation=\"%" PRId64 "\"", id);
		s->remaining_gauge = base_metric_gauge("perfbot_github_ratelimit_remaining",
						      "GitHub API requests left in the current rate-limit window",
						      labels);
		s->next = c->states;
		c->states = s;
	}
done:
	pthread_mutex_unlock(&c->mu);
	return s;
}

/* ---- redelivery set ------------------------------------------------------------ */

int gh__redelivery_mark(gh_client *c, const char *guid)
{
	int result = 1;
	pthread_mutex_lock(&c->mu);
	for (int i = 0; i < c->nredelivered; i++) {
		if (c->redelivered[i] && strcmp(c->redelivered[i], guid) == 0) {
			result = 0;
			goto done;
		}
	}
	char *copy = strdup(guid);
	if (!copy) {
		result = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	free(c->redelivered[c->redelivered_next]);
	c->redelivered[c->redelivered_next] = copy;
	c->redelivered_next = (c->redelivered_next + 1) % REDELIVERY_SET_MAX;
	if (c->nredelivered < REDELIVERY_SET_MAX)
		c->nredelivered++;
done:
	pthread_mutex_unlock(&c->mu);
	return result;
}

void gh__redelivery_unmark(gh_client *c, const char *guid)
{
	pthread_mutex_lock(&c->mu);
	for (int i = 0; i < c->nredelivered; i++) {
		if (c->redelivered[i] && strcmp(c->redelivered[i], guid) == 0) {
			free(c->redelivered[i]);
			c->redelivered[i] = NULL;
		}
	}
	pthread_mutex_unlock(&c->mu);
}

/* ---- pure helpers ------------------------------------------------------------- */

int gh_link_next(char **out, const char *link)
{
	*out = NULL;
	if (!link)
		return 0;
	const char *p = link;
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (!*p)
			return 0;
		if (*p != '<')
			return base_error_set(BASE_EINVALID, "malformed Link header");
		const char *url = p + 1;
		const char *end = strchr(url, '>');
		if (!end)
			return base_error_set(BASE_EINVALID, "malformed Link header");
		size_t url_len = (size_t)(end - url);
		p = end + 1;
		int is_next = 0;
		/* parameters up to the next ',' outside quotes */
		while (*p && *p != ',') {
			while (*p == ' ' || *p == '\t' || *p == ';')
				p++;
			const char *name = p;
			while (*p && *p != '=' && *p != ';' && *p != ',')
				p++;
			size_t name_len = (size_t)(p - name);
			while (name_len > 0 && (name[name_len - 1] == ' ' || name[name_len - 1] == '\t'))
				name_len--;
			if (*p != '=')
				continue;
			p++;
			while (*p == ' ' || *p == '\t')
				p++;
			const char *val;
			size_t val_len;
			if (*p == '"') {
				val = ++p;
				while (*p && *p != '"')
					p++;
				if (*p != '"')
					return base_error_set(BASE_EINVALID, "malformed Link header");
				val_len = (size_t)(p - val);
				p++;
			} else {
				val = p;
				while (*p && *p != ';' && *p != ',' && *p != ' ')
					p++;
				val_len = (size_t)(p - val);
			}
			if (name_len == 3 && strncasecmp(name, "rel", 3) == 0) {
				/* rel may list several space-separated types */
				const char *v = val, *vend = val + val_len;
				while (v < vend) {
					while (v < vend && *v == ' ')
						v++;
					const char *w = v;
					while (w < vend && *w != ' ')
						w++;
					if (w - v == 4 && strncasecmp(v, "next", 4) == 0)
						is_next = 1;
					v = w;
				}
			}
		}
		if (is_next) {
			if (url_len == 0)
				return base_error_set(BASE_EINVALID, "malformed Link header: empty next URL");
			if (!(*out = strndup(url, url_len)))
				return base_error_set(BASE_ENOMEM, "out of memory");
			return 0;
		}
	}
}

#define MAX_SECONDARY_WAIT_MS (15L * 60 * 1000)
#define MAX_WAIT_S (24L * 3600) /* caps header values so the arithmetic cannot overflow */

long gh_rate_wait_ms(const gh_rate_info *in, int64_t now, int secondary_count, long base_secondary_ms,
		     gh_rate_kind *kind_out)
{
	*kind_out = GH_RATE_NONE;
	if (in->status != 403 && in->status != 429)
		return 0;
	if (in->has_retry_after) {
		*kind_out = GH_RATE_SECONDARY;
		long s = in->retry_after_s < MAX_WAIT_S ? in->retry_after_s : MAX_WAIT_S;
		return s > 0 ? s * 1000 : 0;
	}
	if (in->has_remaining && in->remaining == 0) {
		*kind_out = GH_RATE_PRIMARY;
		if (!in->has_reset)
			return base_secondary_ms;
		int64_t secs = in->reset - now;
		if (secs < 0)
			secs = 0;
		if (secs > MAX_WAIT_S)
			secs = MAX_WAIT_S;
		/* reset is whole seconds: one more second never wakes up early */
		return (long)(secs * 1000 + 1000);
	}
	if (in->status == 429 || in->says_rate_limit) {
		*kind_out = GH_RATE_SECONDARY;
		long wait = base_secondary_ms;
		for (int i = 0; i < secondary_count && wait < MAX_SECONDARY_WAIT_MS; i++)
			wait *= 2;
		return wait < MAX_SECONDARY_WAIT_MS ? wait : MAX_SECONDARY_WAIT_MS;
	}
	return 0;
}

int gh__url_escape(base_buf *b, const char *s, int keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		int ok = isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~' || (keep_slash && *p == '/');
		char enc[3] = { '%', hex[*p >> 4], hex[*p & 15] };
		int error = ok ? base_buf_put(b, p, 1) : base_buf_put(b, enc, 3);
		if (error < 0)
			return base_error_set(error, "URL too long");
	}
	return 0;
}

/* ---- one HTTP exchange ----------------------------------------------------------- */

typedef struct exchange {
	long status;
	CURLcode curl_code;
	base_buf body;
	gh_rate_info rate;
	char *link;                 /* owned */
	char curl_msg[CURL_ERROR_SIZE];
} exchange;

static int parse_long(const char *s, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s)
		return -1;
	*out = v;
	return 0;
}

static const char *header_value(CURL *h, const char *name)
{
	struct curl_header *hdr = NULL;
	if (curl_easy_header(h, name, 0, CURLH_HEADER, -1, &hdr) != CURLHE_OK || !hdr)
		return NULL;
	return hdr->value;
}

static int is_write(const char *method)
{
	return strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;
}

static void send_once(gh_client *c, CURL *h, const char *method, const char *url, const char *auth,
		      const char *body, exchange *ex)
{
	struct curl_slist *hdrs = NULL;
	base_buf authz = BASE_BUF_INIT(16384);

	ex->status = 0;
	base_buf_reset(&ex->body);
	free(ex->link);
	ex->link = NULL;
	memset(&ex->rate, 0, sizeof(ex->rate));
	ex->curl_msg[0] = '\0';

	curl_easy_reset(h);
	hdrs = curl_slist_append(hdrs, "Accept: application/vnd.github+json");
	hdrs = curl_slist_append(hdrs, "X-GitHub-Api-Version: 2022-11-28");
	hdrs = curl_slist_append(hdrs, "User-Agent: perfbot/" PERFBOT_VERSION);
	hdrs = curl_slist_append(hdrs, "Expect:");
	if (body)
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	if (auth) {
		if (base_buf_printf(&authz, "Authorization: Bearer %s", auth) == 0)
			hdrs = curl_slist_append(hdrs, base_buf_cstr(&authz));
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->opts.connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->opts.timeout_ms);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, base_curl_write_buf);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &ex->body);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ex->curl_msg);
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
	if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
		curl_easy_setopt(h, CURLOPT_MAXREDIRS, 3L);
		curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	} else {
		if (strcmp(method, "POST") != 0)
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
		if (body || strcmp(method, "POST") == 0) {
			curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)(body ? strlen(body) : 0));
		}
	}

	ex->curl_code = curl_easy_perform(h);
	if (ex->curl_code == CURLE_OK) {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &ex->status);
		const char *v;
		ex->rate.status = ex->status;
		if ((v = header_value(h, "x-ratelimit-remaining")) && parse_long(v, &ex->rate.remaining) == 0)
			ex->rate.has_remaining = 1;
		long reset;
		if ((v = header_value(h, "x-ratelimit-reset")) && parse_long(v, &reset) == 0) {
			ex->rate.has_reset = 1;
			ex->rate.reset = reset;
		}
		if ((v = header_value(h, "retry-after")) && parse_long(v, &ex->rate.retry_after_s) == 0)
			ex->rate.has_retry_after = 1;
		if ((v = header_value(h, "link")))
			ex->link = strdup(v);
	}
	/* curl keeps a pointer to the header list until the next reset */
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdrs);
	if (authz.ptr)
		OPENSSL_cleanse(authz.ptr, authz.alloc);
	base_buf_dispose(&authz);
}

/* "message: errors[0].message" from a GitHub error body, into b. */
static void github_message(base_buf *b, const char *body)
{
	json_t *root = body && body[0] ? json_loads(body, 0, NULL) : NULL;
	const char *msg = root ? json_string_value(json_object_get(root, "message")) : NULL;
	base_buf_puts(b, msg ? msg : "(no message)");
	json_t *errors = root ? json_object_get(root, "errors") : NULL;
	json_t *first = json_is_array(errors) ? json_array_get(errors, 0) : NULL;
	const char *detail = NULL;
	if (json_is_string(first))
		detail = json_string_value(first);
	else if (json_is_object(first))
		detail = json_string_value(json_object_get(first, "message"));
	if (!detail && json_is_object(first))
		detail = json_string_value(json_object_get(first, "code"));
	if (detail) {
		base_buf_puts(b, ": ");
		base_buf_puts(b, detail);
	}
	json_decref(root);
}

/* Waits on the client's clock (a test's returns at once). */
static void sleep_ms(const gh_client *c, long ms)
{
	if (ms > 0)
		c->opts.clock->sleep_ms(c->opts.clock->payload, ms);
}

/* The client's clock: seconds since the epoch, and a monotonic ms count. */
static int64_t now_s(const gh_client *c)
{
	return c->opts.clock->wall_ms(c->opts.clock->payload) / 1000;
}

static int64_t mono_ms(const gh_client *c)
{
	return c->opts.clock->mono_ms(c->opts.clock->payload);
}

static long backoff_ms(const gh_client *c, int attempt)
{
	long base = c->opts.backoff_ms;
	for (int i = 0; i < attempt && base < 60000; i++)
		base *= 2;
	unsigned int r = 0;
	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		r = (unsigned int)base_mono_ms();
	long jitter = base > 0 ? (long)(r % (unsigned int)(base / 2 + 1)) : 0;
	return base + jitter;
}

static int token_fetch(char **token_out, int64_t *expires_out, int64_t installation_id, void *payload);

/* The credential for auth: *cred_out owned (wiped by the caller). */
static int credential(gh_client *c, int64_t auth, const char *user_token, char **cred_out)
{
	*cred_out = NULL;
	if (user_token)
		return (*cred_out = strdup(user_token)) ? 0 : base_error_set(BASE_ENOMEM, "out of memory");
	if (auth == GH_AUTH_NONE)
		return 0;
	if (auth == GH_AUTH_APP)
		return gh_app_jwt(cred_out, c->key, c->cfg->app_id, now_s(c));
	return gh_token_cache_get(c->tokens, auth, now_s(c), token_fetch, c, cred_out);
}

static void wipe_free(char *s)
{
	if (!s)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}

static int status_error(long status, const char *method, const char *path, const char *body)
{
	base_buf msg = BASE_BUF_INIT(1024);
	github_message(&msg, body);
	int code;
	switch (status) {
	case 401: code = BASE_EAUTH; break;
	case 403: code = BASE_EFORBIDDEN; break;
	case 404:
	case 410: code = BASE_ENOTFOUND; break;
	case 409: code = BASE_EEXISTS; break;
	case 422: code = strstr(base_buf_cstr(&msg), "already exists") ? BASE_EEXISTS : BASE_EINVALID; break;
	default: code = status >= 500 ? BASE_ERETRY : BASE_EGENERIC; break;
	}
	base_error_set(code, "GitHub %ld %s %s: %s", status, method, path, base_buf_cstr(&msg));
	base_buf_dispose(&msg);
	return code;
}

/* Sends one logical request.  target is a path under the API URL or an
 * absolute URL under it.  *out owned (may be NULL for an empty body);
 * *next_out (owned) the Link rel="next" URL when next_out is non-NULL. */
static int do_request(gh_client *c, int64_t auth, const char *user_token, const char *method, const char *target,
		      json_t *body, json_t **out, char **next_out)
{
	int error = 0;
	char *cred = NULL, *body_text = NULL;
	CURL *h = NULL;
	inst_state *st = NULL;
	int locked = 0, retried_auth = 0, net_attempts = 0, rate_waits = 0;
	base_buf url = BASE_BUF_INIT(8192);
	exchange ex = { 0 };
	char path[512];

	if (out)
		*out = NULL;
	if (next_out)
		*next_out = NULL;
	tl_retry_wait_ms = 0;
	base_buf_init(&ex.body, c->opts.max_response);

	size_t base_len = strlen(c->api_url);
	if (target[0] == '/') {
		if (base_buf_puts(&url, c->api_url) < 0 || base_buf_puts(&url, target) < 0) {
			error = base_error_set(BASE_EINVALID, "GitHub URL too long");
			goto done;
		}
	} else if (strncmp(target, c->api_url, base_len) == 0 && target[base_len] == '/') {
		if (base_buf_puts(&url, target) < 0) {
			error = base_error_set(BASE_EINVALID, "GitHub URL too long");
			goto done;
		}
	} else {
		error = base_error_set(BASE_EINVALID, "refusing a GitHub URL outside %s", c->api_url);
		goto done;
	}
	/* the path for messages and logs: no base, no query, and no manifest
	 * code (whoever holds one can fetch the new App's key with it) */
	const char *p = base_buf_cstr(&url) + base_len;
	size_t plen = strcspn(p, "?");
	if (strncmp(p, "/app-manifests/", 15) == 0)
		snprintf(path, sizeof(path), "/app-manifests/{code}/conversions");
	else
		snprintf(path, sizeof(path), "%.*s", (int)(plen < sizeof(path) - 1 ? plen : sizeof(path) - 1), p);

	if (body && !(body_text = json_dumps(body, JSON_COMPACT))) {
		error = base_error_set(BASE_EINVALID, "cannot encode the request body for %s %s", method, path);
		goto done;
	}
	if (!(st = state_for(c, auth > 0 ? auth : 0)) || !(h = base_curl_pool_get(&c->pool))) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	/* All the waiting one call may do in place (behind another write of
	 * the installation, for a rate limit): at most max_wait_ms in total,
	 * then the job is handed back to the queue. */
	int64_t deadline = mono_ms(c) + c->opts.max_wait_ms;
	if (auth > 0 && is_write(method)) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += c->opts.max_wait_ms / 1000;
		until.tv_nsec += (c->opts.max_wait_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		if (pthread_mutex_timedlock(&st->write_mu, &until) != 0) {
			tl_retry_wait_ms = 1000;
			error = base_error_set(BASE_ERETRY, "GitHub %s %s: another write of this installation is still waiting "
							  "on GitHub's limits; retry later",
					      method, path);
			goto done;
		}
		locked = 1;
	}

	for (;;) {
		/* a budget known to be spent: wait for the reset before sending */
		pthread_mutex_lock(&c->mu);
		int spent = auth != GH_AUTH_NONE && st->has_remaining && st->remaining == 0;
		int64_t reset = st->reset;
		pthread_mutex_unlock(&c->mu);
		if (spent) {
			int64_t now = now_s(c);
			if (reset > now) {
				int64_t secs = reset - now < MAX_WAIT_S ? reset - now : MAX_WAIT_S;
				long wait = (long)(secs * 1000 + 1000);
				if (wait > c->opts.max_wait_ms || mono_ms(c) + wait > deadline) {
					tl_retry_wait_ms = wait;
					error = base_error_set(BASE_ERETRY,
							      "GitHub rate limit exhausted for %s %s: retry in %ld ms",
							      method, path, wait);
					goto done;
				}
				sleep_ms(c, wait);
			}
			pthread_mutex_lock(&c->mu);
			st->has_remaining = 0;
			pthread_mutex_unlock(&c->mu);
		}
		wipe_free(cred);
		cred = NULL;
		if ((error = credential(c, auth, user_token, &cred)) < 0)
			goto done;

		int64_t t0 = base_mono_ms();
		send_once(c, h, method, base_buf_cstr(&url), cred, body_text, &ex);
		if (base_log_enabled(BASE_LOG_DEBUG)) {
			char status[16], ms[24];
			snprintf(status, sizeof(status), "%ld", ex.status);
			snprintf(ms, sizeof(ms), "%" PRId64, base_mono_ms() - t0);
			base_log(BASE_LOG_DEBUG, "github request", "method", method, "path", path, "status", status,
				"ms", ms, NULL);
		}

		if (ex.curl_code != CURLE_OK) {
			if (ex.curl_code == CURLE_WRITE_ERROR) {
				error = base_error_set(BASE_ETOOBIG, "GitHub %s %s: response larger than %zu bytes", method,
						      path, c->opts.max_response);
				goto done;
			}
			int timeout = ex.curl_code == CURLE_OPERATION_TIMEDOUT;
			if (net_attempts < c->opts.max_retries) {
				sleep_ms(c, backoff_ms(c, net_attempts++));
				continue;
			}
			error = base_error_set(timeout ? BASE_ETIMEOUT : BASE_ERETRY, "GitHub %s %s: %s", method, path,
					      ex.curl_msg[0] ? ex.curl_msg : curl_easy_strerror(ex.curl_code));
			goto done;
		}

		if (ex.rate.has_remaining && auth != GH_AUTH_NONE) {
			pthread_mutex_lock(&c->mu);
			st->has_remaining = 1;
			st->remaining = ex.rate.remaining;
			st->reset = ex.rate.has_reset ? ex.rate.reset : 0;
			pthread_mutex_unlock(&c->mu);
			base_metric_set(st->remaining_gauge, (double)ex.rate.remaining);
		}

		if (ex.status >= 200 && ex.status < 300) {
			pthread_mutex_lock(&c->mu);
			st->secondary_count = 0;
			pthread_mutex_unlock(&c->mu);
			if (out && ex.body.len > 0) {
				json_error_t jerr;
				if (!(*out = json_loadb(ex.body.ptr, ex.body.len, 0, &jerr))) {
					error = base_error_set(BASE_EINVALID, "GitHub %ld %s %s: answer is not JSON (%s)",
							      ex.status, method, path, jerr.text);
					goto done;
				}
			}
			if (next_out && ex.link && (error = gh_link_next(next_out, ex.link)) < 0)
				goto done;
			goto done;
		}

		if (ex.status == 401 && auth > 0 && !retried_auth) {
			/* the cached token may have been revoked: fetch a new one once */
			gh_token_cache_drop(c->tokens, auth, cred);
			retried_auth = 1;
			continue;
		}

		if (ex.status == 403 || ex.status == 429) {
			base_buf msg = BASE_BUF_INIT(1024);
			github_message(&msg, base_buf_cstr(&ex.body));
			ex.rate.says_rate_limit = strcasestr(base_buf_cstr(&msg), "rate limit") != NULL;
			base_buf_dispose(&msg);
			gh_rate_kind kind;
			pthread_mutex_lock(&c->mu);
			long wait = gh_rate_wait_ms(&ex.rate, now_s(c), st->secondary_count,
						    c->opts.secondary_wait_ms, &kind);
			if (kind == GH_RATE_SECONDARY)
				st->secondary_count++;
			pthread_mutex_unlock(&c->mu);
			if (kind != GH_RATE_NONE) {
				const char *what = kind == GH_RATE_PRIMARY ? "primary" : "secondary";
				char wait_s[24];
				snprintf(wait_s, sizeof(wait_s), "%ld", wait);
				base_log(BASE_LOG_WARN, "github rate limit", "kind", what, "method", method, "path", path,
					"wait_ms", wait_s, NULL);
				if (wait > c->opts.max_wait_ms || rate_waits >= MAX_RATE_WAITS ||
				    mono_ms(c) + wait > deadline) {
					tl_retry_wait_ms = wait;
					error = base_error_set(BASE_ERETRY, "GitHub %ld %s %s: %s rate limit, retry in %ld ms",
							      ex.status, method, path, what, wait);
					goto done;
				}
				rate_waits++;
				sleep_ms(c, wait);
				pthread_mutex_lock(&c->mu);
				st->has_remaining = 0; /* waited for the reset already */
				pthread_mutex_unlock(&c->mu);
				continue;
			}
		}

		if (ex.status >= 500 && net_attempts < c->opts.max_retries) {
			sleep_ms(c, backoff_ms(c, net_attempts++));
			continue;
		}
		error = status_error(ex.status, method, path, base_buf_cstr(&ex.body));
		if (ex.status == 401 && auth > 0)
			gh_token_cache_drop(c->tokens, auth, cred);
		goto done;
	}
done:
	if (locked)
		pthread_mutex_unlock(&st->write_mu);
	base_curl_pool_put(&c->pool, h);
	wipe_free(cred);
	free(body_text);
	free(ex.link);
	base_buf_dispose(&ex.body);
	base_buf_dispose(&url);
	return error;
}

int gh_request(gh_client *c, int64_t auth, const char *method, const char *path, json_t *body, json_t **out)
{
	return do_request(c, auth, NULL, method, path, body, out, NULL);
}

static int request_all(gh_client *c, int64_t auth, const char *user_token, const char *path, const char *array_key,
		       json_t **out)
{
	int error = 0;
	json_t *all = json_array(), *page = NULL;
	char *next = NULL, *target = NULL;
	*out = NULL;
	if (!all)
		return base_error_set(BASE_ENOMEM, "out of memory");
	if (!(target = strdup(path))) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	for (int pages = 0; target; pages++) {
		if (pages >= c->opts.max_pages) {
			base_log(BASE_LOG_WARN, "github pagination cap reached", "path", path, NULL);
			break;
		}
		if ((error = do_request(c, auth, user_token, "GET", target, NULL, &page, &next)) < 0)
			goto done;
		json_t *items = array_key ? json_object_get(page, array_key) : page;
		if (!json_is_array(items)) {
			error = base_error_set(BASE_EINVALID, "GitHub GET %s: expected a list%s%s", path,
					      array_key ? " in " : "", array_key ? array_key : "");
			goto done;
		}
		if (json_array_extend(all, items) != 0) {
			error = base_error_set(BASE_ENOMEM, "out of memory");
			goto done;
		}
		json_decref(page);
		page = NULL;
		free(target);
		target = next;
		next = NULL;
	}
	*out = all;
	all = NULL;
done:
	json_decref(all);
	json_decref(page);
	free(next);
	free(target);
	return error;
}

int gh_request_all(gh_client *c, int64_t auth, const char *path, const char *array_key, json_t **out)
{
	return request_all(c, auth, NULL, path, array_key, out);
}

int gh_user_request(gh_client *c, const char *user_token, const char *path, json_t **out)
{
	return do_request(c, GH_AUTH_NONE, user_token, "GET", path, NULL, out, NULL);
}

int gh_user_request_all(gh_client *c, const char *user_token, const char *path, const char *array_key, json_t **out)
{
	return request_all(c, GH_AUTH_NONE, user_token, path, array_key, out);
}

/* ---- installation tokens ------------------------------------------------------- */

static int parse_time(const char *s, int64_t *out)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	const char *end = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
	if (!end)
		return -1;
	*out = (int64_t)timegm(&tm);
	return 0;
}

static int token_fetch(char **token_out, int64_t *expires_out, int64_t installation_id, void *payload)
{
	gh_client *c = payload;
	char path[96];
	json_t *res = NULL;
	int error;
	snprintf(path, sizeof(path), "/app/installations/%" PRId64 "/access_tokens", installation_id);
	if ((error = do_request(c, GH_AUTH_APP, NULL, "POST", path, NULL, &res, NULL)) < 0)
		return error;
	const char *token = json_string_value(json_object_get(res, "token"));
	const char *expires = json_string_value(json_object_get(res, "expires_at"));
	if (!token || !token[0]) {
		error = base_error_set(BASE_EINVALID, "GitHub POST %s: no token in the answer", path);
		goto done;
	}
	if (parse_time(expires, expires_out) < 0)
		*expires_out = now_s(c) + 3600;
	if (!(*token_out = strdup(token)))
		error = base_error_set(BASE_ENOMEM, "out of memory");
	char id[24];
	snprintf(id, sizeof(id), "%" PRId64, installation_id);
	base_log(BASE_LOG_INFO, "github installation token issued", "installation", id, "expires_at", expires, NULL);
done:
	/* the token text inside res is wiped by its owner: jansson frees it */
	json_decref(res);
	return error;
}

int gh_installation_token(gh_client *c, int64_t installation_id, char **token_out)
{
	*token_out = NULL;
	if (installation_id <= 0)
		return base_error_set(BASE_EINVALID, "invalid installation id %" PRId64, installation_id);
	return gh_token_cache_get(c->tokens, installation_id, now_s(c), token_fetch, c, token_out);
}

void gh_installation_token_invalidate(gh_client *c, int64_t installation_id)
{
	gh_token_cache_drop(c->tokens, installation_id, NULL);
}
