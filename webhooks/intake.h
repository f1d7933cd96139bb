/* The webhook intake: POST $WEBHOOK_PATH.  A pure handler over base/http.h
 * structs: verifies and durably stores a delivery, with its job when
 * perfbot acts on its event, then answers.  Checks run in this order:
 * method (405), content type (415), GitHub headers (400 / 401), size (413),
 * signature (401); then duplicate (200), store (202 with "queued" when the
 * event has a handler, "ignored" when perfbot only records it).  The body is
 * not parsed on the request path: the event's job parses it once, ignores an
 * action perfbot does not act on (the delivery becomes "ignored") and marks
 * a signed body that is not a JSON object "malformed" (only a holder of the
 * webhook secret can send one).  Every error answer is {"error": reason}. */
#ifndef WH_INTAKE_H
#define WH_INTAKE_H

#include <stdint.h>

#include "base/http.h"
#include "store/store.h"

typedef struct wh_intake wh_intake;

typedef struct wh_intake_options {
	store *store;                /* borrowed; outlives the intake */
	const char *secret;          /* copied; NULL only with insecure_no_signature */
	const char *secret_old;      /* copied; may be NULL */
	int insecure_no_signature;   /* accept unsigned deliveries (local experiments) */
	size_t max_body;             /* bytes */
	/* Called after a delivery with jobs is durable (e.g. to wake workers). */
	void (*on_queued)(void *payload);
	void *on_queued_payload;
} wh_intake_options;

int wh_intake_new(wh_intake **out, const wh_intake_options *opts);
void wh_intake_free(wh_intake *in);

/* The checks that need only the request head: method, content type, GitHub
 * headers and the declared size (content_length < 0 when unknown).  Returns
 * 1 after filling resp with a final answer, 0 to go on reading the body.
 * The HTTP front also calls it with content_length = the bytes received so
 * far when a chunked body outgrows the cap. */
int wh_intake_check_head(const base_http_request *req, int64_t content_length, base_http_response *resp, void *payload);

/* The whole check and store, blocking until the answer; payload is the
 * wh_intake.  The same as prepare, submit, wait, finish below. */
int wh_intake_handle(const base_http_request *req, base_http_response *resp, void *payload);

/* The same in three steps, for a front that does not block a thread while
 * the delivery is written.  prepare runs every check (in the order above)
 * and returns 0 with a final answer in resp, 1 with *out (owned) holding a
 * delivery to store, or a negative code (these fit wh_route's start,
 * submit and finish).  submit queues the durable write
 * and calls resume(token) exactly once, from any thread, when its outcome is
 * known (req's body and headers must live until then).  finish then fills
 * resp (202 / 200 duplicate / 503) and frees p. */
int wh_intake_prepare(const base_http_request *req, base_http_response *resp, void *payload, void **out);
void wh_intake_submit(void *pending, void (*resume)(void *token), void *token);
int wh_intake_finish(void *pending, base_http_response *resp);

/* Decodes the `payload` field of an application/x-www-form-urlencoded body
 * into *out (owned, NUL-terminated). BASE_EINVALID when there is none. */
int wh_form_payload(char **out, size_t *len_out, const char *body, size_t len);

/* A stored delivery's body (*body owned, *len its size) as its JSON: a
 * form-encoded delivery is stored raw, beginning with payload=, and is
 * replaced by the decoded payload.  BASE_EINVALID when that does not
 * decode, BASE_ENOMEM; *body is left as it was then. */
int wh_stored_json(char **body, size_t *len);

#endif
