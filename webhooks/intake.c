/* Webhook intake (see intake.h).  Runs on the HTTP front's connection
 * threads; holds no per-request state of its own (everything lives in the
 * request and response structs), so any number of threads can share one
 * wh_intake.  The only blocking call is store_delivery_put, which returns
 * once the delivery is durable (group commit). */
#include "webhooks/intake.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/json_arena.h"
#include "base/log.h"
#include "base/metrics.h"
#include "webhooks/event.h"
#include "webhooks/signature.h"

#include <curl/curl.h>
#include <jansson.h>
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

int wh_intake_handle(const base_http_request *req, base_http_response *resp, void *payload)
{
	wh_intake *in = payload;
	if (wh_intake_check_head(req, (int64_t)req->body_len, resp, payload))
		return 0;
	const char *event = base_http_request_header(req, "X-GitHub-Event");
	const char *delivery = base_http_request_header(req, "X-GitHub-Delivery");

	if (!in->insecure) {
		const char *sig = base_http_request_header(req, "X-Hub-Signature-256");
		if (wh_signature_verify(sig, req->body, req->body_len, in->secret, in->secret_old) < 0) {
			base_log(BASE_LOG_WARN, "webhook refused: bad signature", "delivery", delivery, "event", event, "peer",
				req->peer, "reason", base_error_last(), NULL);
			return refuse(resp, 401, "bad_signature", "signature does not match the webhook secret");
		}
	}

	int error = 0;
	char *form_json = NULL;
	const char *json_bytes = req->body ? req->body : "";
	size_t json_len = req->body_len;
	char *hdrs = NULL;
	char *job_payload = NULL;
	char *action = NULL, *repository = NULL;
	if (content_type(base_http_request_header(req, "Content-Type")) == CT_FORM) {
		if ((error = wh_form_payload(&form_json, &json_len, json_bytes, json_len)) < 0) {
			if (error == BASE_EINVALID)
				error = refuse(resp, 400, "bad_request", base_error_last());
			goto done;
		}
		json_bytes = form_json;
	}
	/* The payload tree is request-scoped: it lives in this thread's arena
	 * only while the few fields perfbot keeps are copied out (with malloc,
	 * which the arena does not touch); nothing else runs inside the window. */
	json_error_t jerr;
	wh_event_info info;
	int parsed_object = 0;
	base_json_arena_begin();
	json_t *root = json_loadb(json_bytes, json_len, 0, &jerr);
	if (root && json_is_object(root)) {
		parsed_object = 1;
		wh_event_info_parse(&info, root);
		action = info.action ? strdup(info.action) : NULL;
		repository = info.repository ? strdup(info.repository) : NULL;
		info.action = action;
		info.repository = repository;
	}
	/* a no-op walk inside the arena; a real free where none is installed */
	int was_tree = root != NULL;
	json_decref(root);
	root = NULL;
	base_json_arena_end();
	if (!parsed_object) {
		char reason[300];
		if (!was_tree)
			snprintf(reason, sizeof(reason), "malformed JSON at line %d, column %d: %s", jerr.line, jerr.column,
				 jerr.text);
		else
			snprintf(reason, sizeof(reason), "the payload is not a JSON object");
		error = refuse(resp, 400, "bad_request", reason);
		goto done;
	}
	if ((info.action && !action) || (info.repository && !repository)) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	if (info.action)
		snprintf(resp->log_action, sizeof(resp->log_action), "%s", info.action);

	int handled = wh_event_is_handled(event, info.action);
	store_job_spec job;
	char kind[96];
	if (handled) {
		json_t *jp = json_pack("{s:s,s:s,s:s?}", "delivery", delivery, "event", event, "action", info.action);
		job_payload = jp ? json_dumps(jp, JSON_COMPACT) : NULL;
		json_decref(jp);
		if (!job_payload) {
			error = base_error_set(BASE_ENOMEM, "out of memory");
			goto done;
		}
		snprintf(kind, sizeof(kind), "event.%s", event);
		job.kind = kind;
		job.payload = job_payload;
	}
	hdrs = headers_json(req);
	store_delivery d = {
		.id = delivery,
		.event = event,
		.action = info.action,
		.installation_id = info.installation_id,
		.repository = info.repository,
		.headers_json = hdrs,
		.body = req->body,
		.body_len = req->body_len,
		.received_ms = base_wall_ms(),
		.status = handled ? "queued" : "ignored",
		.jobs = handled ? &job : NULL,
		.njobs = handled ? 1 : 0,
	};
	int duplicate = 0;
	if ((error = store_delivery_put(in->store, &d, &duplicate)) < 0) {
		base_log(BASE_LOG_ERROR, "webhook not stored", "delivery", delivery, "event", event, "error",
			base_error_last(), NULL);
		count(event, "error");
		snprintf(resp->log_outcome, sizeof(resp->log_outcome), "store_error");
		/* not stored, so never 2xx: the sender retries (the store reconnects meanwhile) */
		base_http_response_header(resp, "Retry-After", "5");
		error = base_http_response_error(resp, 503, "the delivery could not be stored; GitHub may redeliver it");
		goto done;
	}
	if (!duplicate && handled && in->on_queued)
		in->on_queued(in->on_queued_payload);
	const char *outcome = duplicate ? "duplicate" : "accepted";
	count(event, outcome);
	snprintf(resp->log_outcome, sizeof(resp->log_outcome), "%s", duplicate ? "duplicate" : d.status);
	char body[160];
	/* the id's characters were checked: no escaping needed */
	snprintf(body, sizeof(body), "{\"delivery\":\"%s\",\"status\":\"%s\"}", delivery,
		 duplicate ? "duplicate" : d.status);
	error = base_http_response_json(resp, duplicate ? 200 : 202, body);
done:
	free(form_json);
	free(hdrs);
	free(job_payload);
	free(action);
	free(repository);
	return error;
}
