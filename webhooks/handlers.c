/* Foundation event handlers (see handlers.h).  They run on worker threads
 * and are idempotent: replaying a delivery (a retried job, a redelivery)
 * leaves the same rows. */
#include "webhooks/handlers.h"
#include "base/error.h"
#include "base/json.h"
#include "base/log.h"
#include "webhooks/event.h"
#include "webhooks/intake.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A signed body that is not a JSON object: its job fails for good (a retry
 * reads the same bytes) and the delivery is marked malformed. */
static int malformed(store_job_ctx *ctx, int error)
{
	char msg[512];
	snprintf(msg, sizeof(msg), "%s", base_error_last());
	ctx->final_attempt = 1;
	if (store_delivery_set_status(ctx->store, ctx->job->delivery_id, "malformed") < 0)
		base_log(BASE_LOG_WARN, "cannot mark a delivery malformed", "delivery", ctx->job->delivery_id, "error",
			base_error_last(), NULL);
	return base_error_set(error, "%s", msg);
}

int wh_job_payload(json_t **out, store_job_ctx *ctx)
{
	const store_job *job = ctx->job;
	*out = NULL;
	if (!job->delivery_id)
		return base_error_set(BASE_EINVALID, "job %lld has no delivery", (long long)job->id);
	char *body = NULL;
	size_t len = 0;
	int error = store_delivery_body(ctx->store, job->delivery_id, &body, &len);
	if (error < 0)
		return error;
	if ((error = wh_stored_json(&body, &len)) < 0) {
		free(body);
		if (error == BASE_EINVALID)
			return malformed(ctx, error);
		return error; /* out of memory: worth a retry */
	}
	json_error_t jerr;
	json_t *root = json_loadb(body, len, 0, &jerr);
	free(body);
	if (!root) {
		base_error_set(BASE_EINVALID, "delivery %s: malformed JSON: %s", job->delivery_id, jerr.text);
		return malformed(ctx, BASE_EINVALID);
	}
	if (!json_is_object(root)) {
		json_decref(root);
		base_error_set(BASE_EINVALID, "delivery %s: the payload is not a JSON object", job->delivery_id);
		return malformed(ctx, BASE_EINVALID);
	}
	/* the request path made the job from the event name alone: an action
	 * perfbot does not act on ends here, recorded as ignored */
	const char *event = strncmp(job->kind, "event.", 6) == 0 ? job->kind + 6 : NULL;
	const char *action = base_json_str(root, "action");
	if (event && !wh_event_is_handled(event, action)) {
		snprintf(ctx->note, sizeof(ctx->note), "ignored: perfbot does not act on %s%s%s", event,
			 action ? "." : "", action ? action : " without an action");
		if (store_delivery_set_status(ctx->store, job->delivery_id, "ignored") < 0)
			base_log(BASE_LOG_WARN, "cannot mark a delivery ignored", "delivery", job->delivery_id, "error",
				base_error_last(), NULL);
		json_decref(root);
		return 1;
	}
	*out = root;
	return 0;
}

/* Runs fn on the delivery's parsed payload. */
static int with_root(store_job_ctx *ctx, int (*fn)(store_job_ctx *ctx, const json_t *root))
{
	json_t *root = NULL;
	int error = wh_job_payload(&root, ctx);
	if (error == 0)
		error = fn(ctx, root);
	json_decref(root);
	return error > 0 ? 0 : error;
}

static int on_ping_event(store_job_ctx *ctx, const json_t *root)
{
	int error = 0;
	wh_ping ping;
	if ((error = wh_ping_parse(&ping, root)) == 0)
		error = store_hook_put(ctx->store, ping.hook_id, ping.app_id, ctx->job->delivery_id);
	if (error == 0)
		snprintf(ctx->note, sizeof(ctx->note), "hook %lld, app %lld", (long long)ping.hook_id,
			 (long long)ping.app_id);
	return error;
}

static int on_ping(store_job_ctx *ctx, void *payload)
{
	(void)payload;
	return with_root(ctx, on_ping_event);
}

static int on_installation_event(store_job_ctx *ctx, const json_t *root)
{
	int error = 0;
	wh_installation ev;
	if ((error = wh_installation_parse(&ev, root)) < 0)
		goto done;
	const char *a = ev.action ? ev.action : "";
	if (!strcmp(a, "deleted")) {
		error = store_installation_delete(ctx->store, ev.id);
	} else {
		const char *state = !strcmp(a, "suspend") ? "suspended" : "active";
		error = store_installation_put(ctx->store, ev.id, ev.account, state);
		if (!strcmp(a, "created"))
			for (size_t i = 0; i < ev.nrepos && error == 0; i++)
				error = store_repository_put(ctx->store, ev.id, ev.repos[i].id, ev.repos[i].full_name);
	}
	if (error == 0)
		snprintf(ctx->note, sizeof(ctx->note), "installation %lld %s", (long long)ev.id, a);
	wh_installation_dispose(&ev);
done:
	return error;
}

static int on_installation(store_job_ctx *ctx, void *payload)
{
	(void)payload;
	return with_root(ctx, on_installation_event);
}

static int on_installation_repositories_event(store_job_ctx *ctx, const json_t *root)
{
	int error = 0;
	wh_installation ev;
	if ((error = wh_installation_parse(&ev, root)) < 0)
		goto done;
	/* a repository event implies the installation exists */
	char *state = NULL;
	if (store_installation_state(ctx->store, ev.id, &state) == BASE_ENOTFOUND)
		error = store_installation_put(ctx->store, ev.id, ev.account, "active");
	free(state);
	for (size_t i = 0; i < ev.nrepos && error == 0; i++)
		error = store_repository_put(ctx->store, ev.id, ev.repos[i].id, ev.repos[i].full_name);
	for (size_t i = 0; i < ev.nremoved && error == 0; i++)
		error = store_repository_remove(ctx->store, ev.id, ev.removed[i].id);
	if (error == 0)
		snprintf(ctx->note, sizeof(ctx->note), "installation %lld: %zu added, %zu removed", (long long)ev.id,
			 ev.nrepos, ev.nremoved);
	wh_installation_dispose(&ev);
done:
	return error;
}

static int on_installation_repositories(store_job_ctx *ctx, void *payload)
{
	(void)payload;
	return with_root(ctx, on_installation_repositories_event);
}

int wh_handlers_register(store_workers *w, const wh_handlers_options *opts)
{
	int error;
	if ((error = store_workers_register(w, "event.ping", on_ping, NULL)) < 0 ||
	    (error = store_workers_register(w, "event.installation", on_installation, NULL)) < 0 ||
	    (error = store_workers_register(w, "event.installation_repositories", on_installation_repositories, NULL)) < 0)
		return error;
	if (opts && (error = wh_github_handlers_register(w, opts)) < 0)
		return error;
	return 0;
}
