/* Unit tests: webhook signatures (GitHub's documented vector, rotation,
 * malformed headers), event field extraction and the intake handler called
 * directly with hand-made requests over a real SQLite store, then the
 * event job's parse of what it stored (wh_job_payload). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/http.h"
#include "base/json_arena.h"
#include "store/store.h"
#include "webhooks/event.h"
#include "webhooks/handlers.h"
#include "webhooks/intake.h"
#include "webhooks/payload.h"
#include "webhooks/signature.h"

#define DOC_SECRET "It's a Secret to Everybody"
#define DOC_BODY "Hello, World!"
#define DOC_SIG "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

static void test_signature_documented_vector(void **state)
{
	(void)state;
	char sig[WH_SIGNATURE_LEN + 1];
	assert_int_equal(wh_signature_compute(sig, DOC_BODY, strlen(DOC_BODY), DOC_SECRET), 0);
	assert_string_equal(sig, DOC_SIG);
	assert_int_equal(wh_signature_verify(DOC_SIG, DOC_BODY, strlen(DOC_BODY), DOC_SECRET, NULL), 0);
}

static void test_signature_wrong_secret(void **state)
{
	(void)state;
	assert_int_equal(wh_signature_verify(DOC_SIG, DOC_BODY, strlen(DOC_BODY), "wrong", NULL), BASE_EAUTH);
	assert_null(strstr(base_error_last(), "wrong"));
	/* one changed body byte */
	assert_int_equal(wh_signature_verify(DOC_SIG, "Hello, World?", 13, DOC_SECRET, NULL), BASE_EAUTH);
}

static void test_signature_rotation(void **state)
{
	(void)state;
	/* signed with the old secret, during a rotation */
	assert_int_equal(wh_signature_verify(DOC_SIG, DOC_BODY, strlen(DOC_BODY), "new-secret", DOC_SECRET), 0);
	/* without the old secret configured it fails */
	assert_int_equal(wh_signature_verify(DOC_SIG, DOC_BODY, strlen(DOC_BODY), "new-secret", NULL), BASE_EAUTH);
}

static void test_signature_malformed_headers(void **state)
{
	(void)state;
	const char *bad[] = {
		NULL,
		"",
		"sha256=",
		"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1",   /* truncated */
		"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17a", /* too long */
		"sha256=z57107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",  /* garbled */
		"sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59",                          /* sha1 only */
		"SHA256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
		" sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(wh_signature_verify(bad[i], DOC_BODY, strlen(DOC_BODY), DOC_SECRET, NULL), BASE_EAUTH);
	/* upper-case hex digits are still the same MAC */
	assert_int_equal(wh_signature_verify("sha256=757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C8B043E17",
					     DOC_BODY, strlen(DOC_BODY), DOC_SECRET, NULL),
			 0);
}

static json_t *load(const char *text)
{
	json_t *j = json_loads(text, 0, NULL);
	assert_non_null(j);
	return j;
}

static void test_event_fields(void **state)
{
	(void)state;
	json_t *j = load("{\"action\":\"opened\",\"installation\":{\"id\":77},\"repository\":{\"full_name\":\"acme/fast\"},"
			 "\"sender\":{\"login\":\"octocat\"}}");
	wh_event_info info;
	assert_int_equal(wh_event_info_parse(&info, j), 0);
	assert_string_equal(info.action, "opened");
	assert_int_equal(info.installation_id, 77);
	assert_string_equal(info.repository, "acme/fast");
	assert_string_equal(info.sender, "octocat");
	json_decref(j);

	j = load("{\"zen\":\"Keep it logically awesome.\",\"hook_id\":12,\"hook\":{\"id\":12,\"app_id\":345}}");
	wh_ping ping;
	assert_int_equal(wh_ping_parse(&ping, j), 0);
	assert_int_equal(ping.hook_id, 12);
	assert_int_equal(ping.app_id, 345);
	json_decref(j);

	j = load("{\"action\":\"created\",\"installation\":{\"id\":9,\"account\":{\"login\":\"acme\"}},"
		 "\"repositories\":[{\"id\":1,\"full_name\":\"acme/a\"},{\"id\":2,\"full_name\":\"acme/b\"},{\"bogus\":1}]}");
	wh_installation inst;
	assert_int_equal(wh_installation_parse(&inst, j), 0);
	assert_int_equal(inst.id, 9);
	assert_string_equal(inst.account, "acme");
	assert_int_equal(inst.nrepos, 2);
	assert_string_equal(inst.repos[1].full_name, "acme/b");
	wh_installation_dispose(&inst);
	json_decref(j);

	j = load("{\"action\":\"removed\",\"installation\":{\"id\":9},\"repositories_added\":[],"
		 "\"repositories_removed\":[{\"id\":2,\"full_name\":\"acme/b\"}]}");
	assert_int_equal(wh_installation_parse(&inst, j), 0);
	assert_int_equal(inst.nrepos, 0);
	assert_int_equal(inst.nremoved, 1);
	assert_int_equal(inst.removed[0].id, 2);
	wh_installation_dispose(&inst);
	json_decref(j);

	j = load("{\"ref\":\"refs/heads/main\",\"before\":\"0000000000000000000000000000000000000000\",\"after\":\"abc\","
		 "\"created\":true,\"deleted\":false,\"repository\":{\"full_name\":\"acme/fast\",\"default_branch\":\"main\"},"
		 "\"installation\":{\"id\":5}}");
	wh_push push;
	assert_int_equal(wh_push_parse(&push, j), 0);
	assert_string_equal(push.ref, "refs/heads/main");
	assert_true(push.created);
	assert_false(push.deleted);
	assert_int_equal(push.installation_id, 5);
	assert_null(push.head_author);
	assert_int_equal(push.head_at_ms, 0);
	json_decref(j);

	/* the head commit, as the dashboard shows it */
	j = load("{\"ref\":\"refs/heads/main\",\"after\":\"abc\",\"repository\":{\"full_name\":\"acme/fast\"},"
		 "\"head_commit\":{\"message\":\"faster parse\",\"timestamp\":\"2026-12-07T05:00:01+01:00\","
		 "\"author\":{\"name\":\"Ada L\",\"username\":\"ada\"}}}");
	assert_int_equal(wh_push_parse(&push, j), 0);
	assert_string_equal(push.head_author, "ada");
	assert_string_equal(push.head_message, "faster parse");
	assert_int_equal(push.head_at_ms, (int64_t)1796616001 * 1000);
	json_decref(j);
	j = load("{\"ref\":\"refs/heads/main\",\"after\":\"abc\",\"repository\":{\"full_name\":\"acme/fast\"},"
		 "\"head_commit\":{\"timestamp\":\"2026-12-07T04:00:01Z\",\"author\":{\"name\":\"Ada L\"}}}");
	assert_int_equal(wh_push_parse(&push, j), 0);
	assert_string_equal(push.head_author, "Ada L");
	assert_int_equal(push.head_at_ms, (int64_t)1796616001 * 1000);
	json_decref(j);

	/* wrong shapes are errors, not crashes */
	j = load("{\"installation\":\"nope\",\"repository\":[1,2]}");
	assert_int_equal(wh_installation_parse(&inst, j), BASE_EINVALID);
	assert_int_equal(wh_push_parse(&push, j), BASE_EINVALID);
	assert_int_equal(wh_event_info_parse(&info, j), 0);
	assert_null(info.repository);
	json_decref(j);
}

static void test_event_routing(void **state)
{
	(void)state;
	assert_true(wh_event_is_handled("push", NULL));
	assert_true(wh_event_is_handled("pull_request", "synchronize"));
	assert_false(wh_event_is_handled("pull_request", "labeled"));
	assert_false(wh_event_is_handled("pull_request", "sync"));
	assert_true(wh_event_is_handled("check_run", "requested_action"));
	assert_false(wh_event_is_handled("star", "created"));
	assert_int_equal(wh_event_name_ok("installation_repositories"), 0);
	assert_int_equal(wh_event_name_ok("Push"), BASE_EINVALID);
	assert_int_equal(wh_event_name_ok("push\r\nX: y"), BASE_EINVALID);
	assert_int_equal(wh_delivery_id_ok("72d3162e-cc78-11e3-81ab-4c9367dc0958"), 0);
	assert_int_equal(wh_delivery_id_ok("a b"), BASE_EINVALID);
	assert_int_equal(wh_delivery_id_ok(""), BASE_EINVALID);
}

/* ---- the intake handler ------------------------------------------------- */

struct fixture {
	char dir[64];
	store *st;
	wh_intake *in;
	int queued;
};

static void on_queued(void *payload)
{
	((struct fixture *)payload)->queued++;
}

static int intake_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/perfbot-intake-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	char url[128];
	snprintf(url, sizeof(url), "sqlite:%s/perfbot.db", f->dir);
	assert_int_equal(store_open(&f->st, url), 0);
	wh_intake_options o = { .store = f->st, .secret = "new", .secret_old = DOC_SECRET, .max_body = 4096,
				.on_queued = on_queued, .on_queued_payload = f };
	assert_int_equal(wh_intake_new(&f->in, &o), 0);
	*state = f;
	return 0;
}

static int intake_teardown(void **state)
{
	struct fixture *f = *state;
	wh_intake_free(f->in);
	store_free(f->st);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

struct call {
	const char *method;
	const char *ctype;
	const char *event;
	const char *delivery;
	const char *sig;      /* NULL: computed with secret below; "" : absent */
	const char *secret;
	const char *body;
};

static int call(struct fixture *f, const struct call *c, base_http_response *resp)
{
	base_http_header h[8];
	size_t n = 0;
	char sig[WH_SIGNATURE_LEN + 1];
	if (c->ctype)
		h[n++] = (base_http_header){ "Content-Type", c->ctype };
	if (c->event)
		h[n++] = (base_http_header){ "X-GitHub-Event", c->event };
	if (c->delivery)
		h[n++] = (base_http_header){ "X-GitHub-Delivery", c->delivery };
	if (!c->sig) {
		wh_signature_compute(sig, c->body, strlen(c->body), c->secret ? c->secret : "new");
		h[n++] = (base_http_header){ "x-hub-signature-256", sig };
	} else if (*c->sig) {
		h[n++] = (base_http_header){ "X-Hub-Signature-256", c->sig };
	}
	base_http_request req = { .method = c->method ? c->method : "POST", .path = "/api/github/webhooks",
				 .headers = h, .nheaders = n, .body = c->body, .body_len = strlen(c->body),
				 .peer = "127.0.0.1" };
	base_http_response_init(resp);
	int error = wh_intake_handle(&req, resp, f->in);
	assert_int_equal(error, 0);
	return resp->status;
}

static void expect(struct fixture *f, const struct call *c, int status, const char *body_part)
{
	base_http_response r;
	int got = call(f, c, &r);
	if (got != status || !strstr(base_buf_cstr(&r.body), body_part))
		fail_msg("expected %d with \"%s\", got %d %s", status, body_part, got, base_buf_cstr(&r.body));
	base_http_response_dispose(&r);
}

static void test_intake_order_and_codes(void **state)
{
	struct fixture *f = *state;
	const char *ping = "{\"zen\":\"z\",\"hook_id\":1,\"hook\":{\"app_id\":2}}";
	/* each check, in order: a request failing several gets the first */
	expect(f, &(struct call){ .method = "GET", .ctype = "text/plain", .sig = "", .body = "" }, 405, "POST");
	expect(f, &(struct call){ .ctype = "text/plain", .sig = "", .body = ping }, 415, "Content-Type");
	expect(f, &(struct call){ .ctype = "application/json", .delivery = "d1", .body = ping }, 400, "X-GitHub-Event");
	expect(f, &(struct call){ .ctype = "application/json", .event = "ping", .body = ping }, 400, "X-GitHub-Delivery");
	expect(f, &(struct call){ .ctype = "application/json", .event = "ping", .delivery = "bad id!", .body = ping },
	       400, "X-GitHub-Delivery");
	expect(f, &(struct call){ .ctype = "application/json", .event = "ping", .delivery = "d1", .sig = "", .body = ping },
	       401, "X-Hub-Signature-256");
	expect(f, &(struct call){ .ctype = "application/json", .event = "ping", .delivery = "d1", .secret = "nope",
				  .body = ping },
	       401, "signature");
	assert_int_equal(store_delivery_exists(f->st, "d1"), 0); /* nothing stored so far */
	assert_int_equal(f->queued, 0);

	expect(f, &(struct call){ .ctype = "application/json; charset=utf-8", .event = "ping", .delivery = "d1",
				  .body = ping },
	       202, "\"status\":\"queued\"");
	assert_int_equal(f->queued, 1);
	expect(f, &(struct call){ .ctype = "application/json", .event = "ping", .delivery = "d1", .body = ping }, 200,
	       "\"status\":\"duplicate\"");
	assert_int_equal(f->queued, 1);
	/* the old secret during a rotation */
	expect(f, &(struct call){ .ctype = "application/json", .event = "ping", .delivery = "d2", .secret = DOC_SECRET,
				  .body = ping },
	       202, "d2");
	/* an event perfbot does nothing with is still accepted, stored as ignored, no job */
	expect(f, &(struct call){ .ctype = "application/json", .event = "star", .delivery = "d3",
				  .body = "{\"action\":\"created\"}" },
	       202, "\"status\":\"ignored\"");
	assert_int_equal(f->queued, 2);
	/* a handled event gets its job whatever its action: the job reads the
	 * action (wh_job_payload, below) */
	expect(f, &(struct call){ .ctype = "application/json", .event = "pull_request", .delivery = "d4",
				  .body = "{\"action\":\"labeled\"}" },
	       202, "\"status\":\"queued\"");
	assert_int_equal(f->queued, 3);
	/* the body is not parsed on the request path: a signed body that is not
	 * JSON, or not an object, is stored as it came, with its job */
	expect(f, &(struct call){ .ctype = "application/json", .event = "ping", .delivery = "d5", .body = "{\"a\":" },
	       202, "\"status\":\"queued\"");
	expect(f, &(struct call){ .ctype = "application/json", .event = "ping", .delivery = "d6", .body = "[1]" }, 202,
	       "\"status\":\"queued\"");
	expect(f, &(struct call){ .ctype = "application/json", .event = "star", .delivery = "d7", .body = "not json" },
	       202, "\"status\":\"ignored\"");
	assert_int_equal(f->queued, 5);

	json_t *rows = NULL;
	assert_int_equal(store_delivery_list(f->st, &rows, 10, NULL), 0);
	assert_int_equal(json_array_size(rows), 7);
	json_decref(rows);
	json_t *jobs = NULL;
	assert_int_equal(store_job_list(f->st, &jobs, 10), 0);
	assert_int_equal(json_array_size(jobs), 5);
	json_decref(jobs);
	char *body = NULL;
	size_t len = 0;
	assert_int_equal(store_delivery_body(f->st, "d5", &body, &len), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(body, "{\"a\":", 5);
	free(body);
}

static char job_error[512];

/* Claims the job the intake queued for delivery (the oldest queued one)
 * and runs wh_job_payload on it as a worker would. */
static int run_job_payload(struct fixture *f, const char *delivery, json_t **root, store_job *job, store_job_ctx *ctx)
{
	memset(job, 0, sizeof(*job));
	assert_int_equal(store_job_claim(f->st, job, "test", 60000), 0);
	assert_non_null(job->delivery_id);
	assert_string_equal(job->delivery_id, delivery);
	*ctx = (store_job_ctx){ .store = f->st, .job = job, .owner = "test" };
	*root = (json_t *)1; /* wh_job_payload sets it in every case */
	int error = wh_job_payload(root, ctx);
	/* then ends the job as the worker does (store/worker.c) */
	job_error[0] = '\0';
	if (error >= 0) {
		assert_int_equal(store_job_done(f->st, job->id, "test", ctx->note[0] ? ctx->note : NULL), 0);
	} else {
		snprintf(job_error, sizeof(job_error), "%s", base_error_last());
		assert_int_equal(store_job_fail(f->st, job->id, "test", job_error,
						ctx->final_attempt ? 0 : base_wall_ms() + 60000),
				 0);
	}
	return error;
}

/* The store commits job outcomes and status changes in groups, without
 * the caller waiting: a reader sees them within a moment. */
#define SETTLE_TRIES 500 /* of 10 ms */

/* The job of delivery as `perfbot jobs` lists it: its state, one attempt,
 * and its note or error containing text. */
static void assert_job(struct fixture *f, const char *delivery, const char *state, const char *text)
{
	char got[600] = "(not listed)";
	for (int tries = 0; tries < SETTLE_TRIES; tries++, usleep(10000)) {
		json_t *jobs = NULL;
		assert_int_equal(store_job_list(f->st, &jobs, 100), 0);
		size_t i;
		json_t *j, *found = NULL;
		json_array_foreach(jobs, i, j)
			if (json_is_string(json_object_get(j, "delivery_id")) &&
			    !strcmp(json_string_value(json_object_get(j, "delivery_id")), delivery))
				found = j;
		int ok = 0;
		if (found) {
			const char *st = json_string_value(json_object_get(found, "state"));
			const char *said =
				json_string_value(json_object_get(found, !strcmp(state, "done") ? "note" : "error"));
			json_int_t attempts = json_integer_value(json_object_get(found, "attempts"));
			snprintf(got, sizeof(got), "%s, %lld attempts, \"%s\"", st ? st : "?", (long long)attempts,
				 said ? said : "");
			ok = st && !strcmp(st, state) && attempts == 1 && said && strstr(said, text);
		}
		json_decref(jobs);
		if (ok)
			return;
	}
	fail_msg("job of %s: expected %s with \"%s\", got %s", delivery, state, text, got);
}

/* The status `perfbot deliveries` shows for one delivery. */
static void assert_delivery_status(struct fixture *f, const char *id, const char *status)
{
	char got[64] = "(not listed)";
	for (int tries = 0; tries < SETTLE_TRIES; tries++, usleep(10000)) {
		json_t *rows = NULL;
		assert_int_equal(store_delivery_list(f->st, &rows, 100, NULL), 0);
		size_t i;
		json_t *r;
		json_array_foreach(rows, i, r)
			if (!strcmp(json_string_value(json_object_get(r, "id")), id))
				snprintf(got, sizeof(got), "%s", json_string_value(json_object_get(r, "status")));
		json_decref(rows);
		if (!strcmp(got, status))
			return;
	}
	fail_msg("delivery %s: expected status %s, got %s", id, status, got);
}

static void test_intake_size_and_form(void **state)
{
	struct fixture *f = *state;
	base_http_header h[] = { { "Content-Type", "application/json" }, { "X-GitHub-Event", "push" },
				{ "X-GitHub-Delivery", "big" }, { "X-Hub-Signature-256", "sha256=00" } };
	base_http_request req = { .method = "POST", .path = "/", .headers = h, .nheaders = 4, .peer = "::1" };
	base_http_response r;
	base_http_response_init(&r);
	assert_int_equal(wh_intake_check_head(&req, 4097, &r, f->in), 1);
	assert_int_equal(r.status, 413);
	base_http_response_dispose(&r);
	base_http_response_init(&r);
	assert_int_equal(wh_intake_check_head(&req, 4096, &r, f->in), 0);
	assert_int_equal(wh_intake_check_head(&req, -1, &r, f->in), 0);
	base_http_response_dispose(&r);

	/* form-encoded: the signature covers the raw form body */
	const char *form = "payload=%7B%22action%22%3A%22created%22%2C%22installation%22%3A%7B%22id%22%3A3%7D%2C"
			   "%22repository%22%3A%7B%22full_name%22%3A%22a%2Fb%22%7D%2C%22comment%22%3A%7B%22body%22%3A"
			   "%22hello+world%22%7D%7D";
	expect(f, &(struct call){ .ctype = "application/x-www-form-urlencoded", .event = "issue_comment",
				  .delivery = "form1", .body = form },
	       202, "queued");
	/* stored as it came: the job decodes payload= when it reads the body */
	char *body = NULL;
	size_t len = 0;
	assert_int_equal(store_delivery_body(f->st, "form1", &body, &len), 0);
	assert_int_equal(len, strlen(form));
	assert_memory_equal(body, form, len);
	free(body);
	json_t *root = NULL;
	store_job job;
	store_job_ctx ctx;
	assert_int_equal(run_job_payload(f, "form1", &root, &job, &ctx), 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(root, "comment"), "body")), "hello world");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(root, "installation"), "id")), 3);
	json_decref(root);
	store_job_dispose(&job);
	/* a form body without payload= is answered like any signed body; its job finds it malformed */
	expect(f, &(struct call){ .ctype = "application/x-www-form-urlencoded", .event = "push", .delivery = "form2",
				  .body = "other=1" },
	       202, "queued");
	assert_int_equal(run_job_payload(f, "form2", &root, &job, &ctx), BASE_EINVALID);
	assert_null(root);
	assert_int_equal(ctx.final_attempt, 1);
	assert_job(f, "form2", "failed", "malformed JSON");
	assert_delivery_status(f, "form2", "malformed");
	store_job_dispose(&job);
}

/* The event's job parses the body once: an action perfbot does not act on
 * ends the job (done, with a note) and marks the delivery ignored; a body
 * that is not a JSON object fails the job for good and marks the delivery
 * malformed. */
static void test_job_payload(void **state)
{
	struct fixture *f = *state;
	json_t *root = NULL;
	store_job job;
	store_job_ctx ctx;

	expect(f, &(struct call){ .ctype = "application/json", .event = "pull_request", .delivery = "labeled",
				  .body = "{\"action\":\"labeled\",\"number\":1}" },
	       202, "\"status\":\"queued\"");
	assert_delivery_status(f, "labeled", "queued");
	assert_int_equal(run_job_payload(f, "labeled", &root, &job, &ctx), 1);
	assert_null(root);
	assert_string_equal(job.kind, "event.pull_request");
	assert_string_equal(ctx.note, "ignored: perfbot does not act on pull_request.labeled");
	assert_int_equal(ctx.final_attempt, 0);
	assert_job(f, "labeled", "done", "ignored: perfbot does not act on pull_request.labeled");
	assert_delivery_status(f, "labeled", "ignored");
	store_job_dispose(&job);

	expect(f, &(struct call){ .ctype = "application/json", .event = "pull_request", .delivery = "noaction",
				  .body = "{\"number\":1}" },
	       202, "queued");
	assert_int_equal(run_job_payload(f, "noaction", &root, &job, &ctx), 1);
	assert_string_equal(ctx.note, "ignored: perfbot does not act on pull_request without an action");
	assert_delivery_status(f, "noaction", "ignored");
	store_job_dispose(&job);

	/* an action perfbot acts on: the payload, and the delivery untouched */
	expect(f, &(struct call){ .ctype = "application/json", .event = "pull_request", .delivery = "opened",
				  .body = "{\"action\":\"opened\",\"number\":7}" },
	       202, "queued");
	assert_int_equal(run_job_payload(f, "opened", &root, &job, &ctx), 0);
	assert_non_null(root);
	assert_int_equal(json_integer_value(json_object_get(root, "number")), 7);
	assert_string_equal(ctx.note, "");
	assert_delivery_status(f, "opened", "done");
	json_decref(root);
	store_job_dispose(&job);

	/* not JSON, not an object, a form whose payload= is not JSON */
	static const struct {
		const char *event, *id, *ctype, *body, *why;
	} bad[] = {
		{ "ping", "badjson", "application/json", "{\"a\":", "malformed JSON" },
		{ "installation", "array", "application/json", "[{\"action\":\"created\"}]", "not a JSON object" },
		{ "ping", "string", "application/json", "\"zen\"", "malformed JSON" }, /* jansson wants [ or { */
		{ "ping", "empty", "application/json", "", "malformed JSON" },
		{ "ping", "badform", "application/x-www-form-urlencoded", "payload=%7B%22a", "malformed JSON" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		expect(f, &(struct call){ .ctype = bad[i].ctype, .event = bad[i].event, .delivery = bad[i].id,
					  .body = bad[i].body },
		       202, "\"status\":\"queued\"");
		assert_int_equal(run_job_payload(f, bad[i].id, &root, &job, &ctx), BASE_EINVALID);
		assert_null(root);
		assert_int_equal(ctx.final_attempt, 1);
		assert_job(f, bad[i].id, "failed", bad[i].why);
		assert_delivery_status(f, bad[i].id, "malformed");
		store_job_dispose(&job);
	}

	/* a job without a delivery */
	store_job none = { .id = 99, .kind = "event.ping" };
	ctx = (store_job_ctx){ .store = f->st, .job = &none, .owner = "test" };
	assert_int_equal(wh_job_payload(&root, &ctx), BASE_EINVALID);
	assert_null(root);
}

/* The streaming check agrees with jansson's decoder on what is a JSON
 * object, and with wh_event_info_parse on the fields it keeps. */
static void check_like_jansson(const char *doc, size_t len)
{
	wh_payload_fields f;
	int error = wh_payload_scan(&f, doc, len);
	json_t *root = json_loadb(doc, len, 0, NULL);
	if (!root || !json_is_object(root)) {
		if (error == 0)
			fail_msg("accepted what jansson refuses: %.*s", (int)len, doc);
		assert_int_equal(error, BASE_EINVALID);
		assert_non_null(strstr(base_error_last(), "JSON"));
	} else {
		if (error != 0)
			fail_msg("refused what jansson accepts (%s): %.*s", base_error_last(), (int)len, doc);
		wh_event_info info;
		assert_int_equal(wh_event_info_parse(&info, root), 0);
		if (info.action)
			assert_string_equal(f.action, info.action);
		else
			assert_null(f.action);
		if (info.repository)
			assert_string_equal(f.repository, info.repository);
		else
			assert_null(f.repository);
		assert_int_equal(f.installation_id, info.installation_id);
	}
	json_decref(root);
	wh_payload_dispose(&f);
}

static void test_payload_scan_like_jansson(void **state)
{
	(void)state;
	static const char *const docs[] = {
		"{\"action\":\"opened\",\"installation\":{\"id\":42},\"repository\":{\"full_name\":\"o/r\"}}",
		"{\"action\":\"a\",\"action\":\"b\"}",             /* the last duplicate wins */
		"{\"action\":\"a\",\"action\":null}",
		"{\"action\":1}",
		"{\"x\":{\"action\":\"nested\"},\"y\":[{\"action\":\"in array\"}]}",
		"{\"installation\":{\"id\":4.0}}",
		"{\"installation\":{\"id\":\"7\"}}",
		"{\"installation\":[{\"id\":7}]}",
		"{\"installation\":{\"id\":7},\"installation\":{\"account\":{}}}",
		"{\"installation\":{\"account\":{\"id\":9},\"id\":-3}}",
		"{\"repository\":{\"owner\":{\"full_name\":\"deep\"}}}",
		"{\"repository\":{\"full_name\":\"a/b\",\"full_name\":{\"x\":1}}}",
		"{\"repository\":\"o/r\",\"action\":\"caf\u00e9 \\u00e9\"}",
		"  {}  ",
		"{}",
		/* not objects, or not JSON */
		"", " ", "[]", "[{\"action\":\"x\"}]", "1", "\"s\"", "null", "{", "{\"a\":1,}", "{} {}",
		"{\"a\":1} x", "{'a':1}", "{\"a\":\"\\u0000\"}", "{\"\\u0000\":1}", "{\"a\":\"\xff\"}",
		"{\"a\":tru}", "{\"a\":01}", "{\"a\":1e999}", "{\"a\":99999999999999999999}", "/* c */{}",
	};
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
		check_like_jansson(docs[i], strlen(docs[i]));

	/* the benchmark's push payload, as GitHub shapes it */
	FILE *fp = fopen("bench/intake/push.json", "rb");
	assert_non_null(fp);
	static char buf[65536];
	size_t n = fread(buf, 1, sizeof(buf), fp);
	fclose(fp);
	check_like_jansson(buf, n);
	wh_payload_fields f;
	assert_int_equal(wh_payload_scan(&f, buf, n), 0);
	assert_non_null(f.repository);
	wh_payload_dispose(&f);
}

int main(void)
{
	/* as in perfbot itself, so the intake's request arena is exercised */
	base_json_arena_install();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_signature_documented_vector),
		cmocka_unit_test(test_signature_wrong_secret),
		cmocka_unit_test(test_signature_rotation),
		cmocka_unit_test(test_signature_malformed_headers),
		cmocka_unit_test(test_event_fields),
		cmocka_unit_test(test_event_routing),
		cmocka_unit_test(test_payload_scan_like_jansson),
		cmocka_unit_test_setup_teardown(test_intake_order_and_codes, intake_setup, intake_teardown),
		cmocka_unit_test_setup_teardown(test_intake_size_and_form, intake_setup, intake_teardown),
		cmocka_unit_test_setup_teardown(test_job_payload, intake_setup, intake_teardown),
	};
	return cmocka_run_group_tests_name("webhooks", tests, NULL, NULL);
}
