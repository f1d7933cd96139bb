/* Webhook intake (see intake.h).  Runs on the HTTP front's event threads;
 * holds no per-request state of its own (a request's lives in its
 * wh_intake_pending), so any number of threads share one wh_intake.  The
 * request path verifies the signature, checks the payload in one streaming
 * pass (no JSON tree), and hands the delivery with its job to the store's
 * group commit without blocking; the answer is built when the commit that
 * holds it is on disk. */
#include "webhooks/intake.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "base/metrics.h"
#include "webhooks/event.h"
#include "webhooks/signature.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct wh_intake {
	store *store;
	char *secret;
	char *secret_old;
	int insecure;
	size_t max_body;
	void (*on_queued)(void *payload);
	void *on_queued_payload;
};

int wh_intake_new(wh_intake **out, const wh_intake_options *opts)
{
	if (!opts->secret && !opts->insecure_no_signature)
		return base_error_set(BASE_EINVALID, "WEBHOOK_SECRET: required to receive webhooks");
	wh_intake *in = calloc(1, sizeof(*in));
	if (!in)
		return base_error_set(BASE_ENOMEM, "out of memory");
	in->store = opts->store;
	in->secret = opts->secret ? strdup(opts->secret) : NULL;
	in->secret_old = opts->secret_old ? strdup(opts->secret_old) : NULL;
	in->insecure = opts->insecure_no_signature;
	in->max_body = opts->max_body;
	in->on_queued = opts->on_queued;
	in->on_queued_payload = opts->on_queued_payload;
	if ((opts->secret && !in->secret) || (opts->secret_old && !in->secret_old)) {
		wh_intake_free(in);
		return base_error_set(BASE_ENOMEM, "out of memory");
	}
	*out = in;
	return 0;
}

void wh_intake_free(wh_intake *in)
{
	if (!in)
		return;
	if (in->secret)
		explicit_bzero(in->secret, strlen(in->secret));
	if (in->secret_old)
		explicit_bzero(in->secret_old, strlen(in->secret_old));
	free(in->secret);
	free(in->secret_old);
	free(in);
}

static void count(const char *event, const char *outcome)
{
	char labels[160];
	snprintf(labels, sizeof(labels), "event=\"%s\",outcome=\"%s\"", event, outcome);
	base_metric_count("perfbot_webhook_deliveries_total", "Webhook deliveries by event and outcome", labels, 1);
}

static int refuse(base_http_response *resp, int status, const char *outcome, const char *reason)
{
	count("unverified", outcome);
	snprintf(resp->log_outcome, sizeof(resp->log_outcome), "%s", outcome);
	return base_http_response_error(resp, status, reason);
}

enum ctype { CT_OTHER, CT_JSON, CT_FORM };

static enum ctype content_type(const char *ct)
{
	if (!ct)
		return CT_OTHER;
	size_t n = strcspn(ct, "; \t");
	if (n == 16 && strncasecmp(ct, "application/json", n) == 0)
		return CT_JSON;
	if (n == 33 && strncasecmp(ct, "application/x-www-form-urlencoded", n) == 0)
		return CT_FORM;
	return CT_OTHER;
}

int wh_intake_check_head(const base_http_request *req, int64_t content_length, base_http_response *resp, void *payload)
{
	wh_intake *in = payload;
	const char *delivery = base_http_request_header(req, "X-GitHub-Delivery");
	const char *event = base_http_request_header(req, "X-GitHub-Event");
	if (delivery && wh_delivery_id_ok(delivery) == 0)
		snprintf(resp->log_delivery, sizeof(resp->log_delivery), "%s", delivery);
	if (event && wh_event_name_ok(event) == 0)
		snprintf(resp->log_event, sizeof(resp->log_event), "%s", event);

	if (strcmp(req->method, "POST") != 0) {
		base_http_response_header(resp, "Allow", "POST");
		refuse(resp, 405, "bad_request", "method not allowed: webhooks are delivered with POST");
		return 1;
	}
	if (content_type(base_http_request_header(req, "Content-Type")) == CT_OTHER) {
		refuse(resp, 415, "bad_request",
		       "unsupported Content-Type: expected application/json or application/x-www-form-urlencoded");
		return 1;
	}
	if (!event) {
		refuse(resp, 400, "bad_request", "missing X-GitHub-Event header");
		return 1;
	}
	if (wh_event_name_ok(event) < 0) {
		refuse(resp, 400, "bad_request", "invalid X-GitHub-Event header");
		return 1;
	}
	if (!delivery) {
		refuse(resp, 400, "bad_request", "missing X-GitHub-Delivery header");
		return 1;
	}
	if (wh_delivery_id_ok(delivery) < 0) {
		refuse(resp, 400, "bad_request", "invalid X-GitHub-Delivery header");
		return 1;
	}
	if (!in->insecure && !base_http_request_header(req, "X-Hub-Signature-256")) {
		refuse(resp, 401, "bad_signature", "missing X-Hub-Signature-256 header");
		base_log(BASE_LOG_WARN, "webhook refused: no signature", "delivery", delivery, "peer", req->peer, NULL);
		return 1;
	}
	if (content_length >= 0 && (uint64_t)content_length > in->max_body) {
		char reason[96];
		snprintf(reason, sizeof(reason), "payload too large: the limit is %zu bytes", in->max_body);
		refuse(resp, 413, "too_large", reason);
		return 1;
	}
	return 0;
}

int wh_form_payload(char **out, size_t *len_out, const char *body, size_t len)
{
	const char *p = body, *end = body + len;
	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *field_end = amp ? amp : end;
		if ((size_t)(field_end - p) >= 8 && memcmp(p, "payload=", 8) == 0) {
			size_t n = (size_t)(field_end - p - 8);
			char *plus = malloc(n + 1);
			if (!plus)
				return base_error_set(BASE_ENOMEM, "out of memory");
			for (size_t i = 0; i < n; i++)
				plus[i] = p[8 + i] == '+' ? ' ' : p[8 + i];
			int outlen = 0;
			char *dec = curl_easy_unescape(NULL, plus, (int)n, &outlen);
			free(plus);
			if (!dec)
				return base_error_set(BASE_ENOMEM, "out of memory");
			*out = malloc((size_t)outlen + 1);
			if (!*out) {
				curl_free(dec);
				return base_error_set(BASE_ENOMEM, "out of memory");
			}
			memcpy(*out, dec, (size_t)outlen);
			(*out)[outlen] = '\0';
			*len_out = (size_t)outlen;
			curl_free(dec);
			return 0;
		}
		p = field_end + 1;
	}
	return base_error_set(BASE_EINVALID, "form body without a payload field");
}

int wh_stored_json(char **body, size_t *len)
{
	if (*len < 8 || memcmp(*body, "payload=", 8) != 0)
		return 0;
	char *json = NULL;
	size_t jlen = 0;
	int error = wh_form_payload(&json, &jlen, *body, *len);
	if (error < 0)
		return error;
	free(*body);
	*body = json;
	*len = jlen;
	return 0;
}

/* The GitHub headers worth keeping with a delivery, as a JSON object. */
static char *headers_json(const base_http_request *req)
{
	json_t *o = json_object();
	for (size_t i = 0; i < req->nheaders; i++) {
		const char *n = req->headers[i].name;
		if (strncasecmp(n, "X-GitHub-", 9) == 0 || strncasecmp(n, "X-Hub-", 6) == 0 ||
		    strcasecmp(n, "User-Agent") == 0 || strcasecmp(n, "Content-Type") == 0)
			json_object_set_new(o, n, json_string(req->headers[i].value));
	}
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

/* A delivery between its checks and its answer: what the store writes, the
 * buffers it borrows, and the outcome of the write. */
typedef struct wh_intake_pending {
	wh_intake *in;
	store_delivery d;
	store_job_spec job;
	char kind[96];
	char *hdrs;
	char *job_payload;
	store_delivery_async put;
	void (*resume)(void *token);
	void *token;
} wh_intake_pending;

static void pending_free(wh_intake_pending *p)
{
	if (!p)
		return;
	free(p->hdrs);
	free(p->job_payload);
	free(p);
}

int wh_intake_prepare(const base_http_request *req, base_http_response *resp, void *payload, void **out)
{
	wh_intake *in = payload;
	*out = NULL;
	if (wh_intake_check_head(req, (int64_t)req->body_len, resp, payload))
		return 0;
	const char *event = base_http_request_header(req, "X-GitHub-Event");
	const char *delivery = base_http_request_header(req, "X-GitHub-Delivery");

	if (!in->insecure) {
		const char *sig = base_http_request_header(req, "X-Hub-Signature-256");
		if (wh_signature_verify(sig, req->body, req->body_len, in->secret, in->secret_old) < 0) {
			base_log(BASE_LOG_WARN, "webhook refused: bad signature", "delivery", delivery, "event", event, "peer",
				req->peer, "reason", base_error_last(), NULL);
			refuse(resp, 401, "bad_signature", "signature does not match the webhook secret");
			return 0;
		}
	}

	int error = 0;
	wh_intake_pending *p = calloc(1, sizeof(*p));
	if (!p)
		return base_error_set(BASE_ENOMEM, "out of memory");
	p->in = in;
	/* The body is stored as it came (a form body too: its payload= is
	 * decoded when the job reads it) and parsed once, by the event's job,
	 * after the answer: which action, installation and repository it
	 * names, and whether it is JSON at all, are the job's to find out.
	 * The request path decides from the event name alone whether a job is
	 * made; the ids and the event name were checked character by
	 * character, so they need no escaping below. */
	int handled = wh_event_has_handler(event);
	if (handled) {
		size_t n = strlen(delivery) + strlen(event) + 32;
		if (!(p->job_payload = malloc(n))) {
			error = base_error_set(BASE_ENOMEM, "out of memory");
			goto fail;
		}
		snprintf(p->job_payload, n, "{\"delivery\":\"%s\",\"event\":\"%s\"}", delivery, event);
		snprintf(p->kind, sizeof(p->kind), "event.%s", event);
		p->job.kind = p->kind;
		p->job.payload = p->job_payload;
	}
	if (!(p->hdrs = headers_json(req))) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto fail;
	}
	p->d = (store_delivery){
		.id = delivery,
		.event = event,
		.headers_json = p->hdrs,
		.body = req->body,
		.body_len = req->body_len,
		.received_ms = base_wall_ms(),
		.status = handled ? "queued" : "ignored",
		.jobs = handled ? &p->job : NULL,
		.njobs = handled ? 1 : 0,
	};
	*out = p;
	return 1;
fail:
	pending_free(p);
	return error;
}

static void put_done(store_delivery_async *a)
{
	wh_intake_pending *p = a->payload;
	p->resume(p->token);
}

void wh_intake_submit(void *pending, void (*resume)(void *token), void *token)
{
	wh_intake_pending *p = pending;
	p->resume = resume;
	p->token = token;
	p->put.d = &p->d;
	p->put.done = put_done;
	p->put.payload = p;
	int error = store_delivery_put_async(p->in->store, &p->put);
	if (error < 0) {
		p->put.error = error;
		snprintf(p->put.msg, sizeof(p->put.msg), "%s", base_error_last());
		resume(token);
	}
}

int wh_intake_finish(void *pending, base_http_response *resp)
{
	wh_intake_pending *p = pending;
	const store_delivery *d = &p->d;
	int error = 0;
	if (p->put.error < 0) {
		base_log(BASE_LOG_ERROR, "webhook not stored", "delivery", d->id, "event", d->event, "error", p->put.msg,
			NULL);
		count(d->event, "error");
		snprintf(resp->log_outcome, sizeof(resp->log_outcome), "store_error");
		/* not stored, so never 2xx: the sender retries (the store reconnects meanwhile) */
		base_http_response_header(resp, "Retry-After", "5");
		error = base_http_response_error(resp, 503, "the delivery could not be stored; GitHub may redeliver it");
		goto done;
	}
	int duplicate = p->put.duplicate;
	if (!duplicate && d->njobs && p->in->on_queued)
		p->in->on_queued(p->in->on_queued_payload);
	count(d->event, duplicate ? "duplicate" : "accepted");
	snprintf(resp->log_outcome, sizeof(resp->log_outcome), "%s", duplicate ? "duplicate" : d->status);
	char body[160];
	/* the id's characters were checked: no escaping needed */
	snprintf(body, sizeof(body), "{\"delivery\":\"%s\",\"status\":\"%s\"}", d->id,
		 duplicate ? "duplicate" : d->status);
	error = base_http_response_json(resp, duplicate ? 200 : 202, body);
done:
	pending_free(p);
	return error;
}

struct sync_wait {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int done;
};

static void sync_resume(void *token)
{
	struct sync_wait *w = token;
	pthread_mutex_lock(&w->lock);
	w->done = 1;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

int wh_intake_handle(const base_http_request *req, base_http_response *resp, void *payload)
{
	void *p = NULL;
	int r = wh_intake_prepare(req, resp, payload, &p);
	if (r <= 0)
		return r;
	struct sync_wait w = { .done = 0 };
	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.cond, NULL);
	wh_intake_submit(p, sync_resume, &w);
	pthread_mutex_lock(&w.lock);
	while (!w.done)
		pthread_cond_wait(&w.cond, &w.lock);
	pthread_mutex_unlock(&w.lock);
	pthread_cond_destroy(&w.cond);
	pthread_mutex_destroy(&w.lock);
	return wh_intake_finish(p, resp);
}
