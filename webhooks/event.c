/* Event parsing (see event.h).  Pure functions over jansson trees of
 * payloads whose signature has already been verified; still, nothing here
 * trusts shapes: a missing or mistyped field is an error or a default, never
 * a crash. */
#include "webhooks/event.h"
#include "base/error.h"
#include "base/json.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

int wh_event_info_parse(wh_event_info *out, const json_t *payload)
{
	memset(out, 0, sizeof(*out));
	if (!json_is_object(payload))
		return base_error_set(BASE_EINVALID, "payload is not a JSON object");
	out->action = base_json_str(payload, "action");
	out->installation_id = base_json_int(json_object_get(payload, "installation"), "id");
	out->repository = base_json_str(json_object_get(payload, "repository"), "full_name");
	out->sender = base_json_str(json_object_get(payload, "sender"), "login");
	return 0;
}

static const struct {
	const char *event;
	const char *actions; /* space-separated, NULL = any */
} handled[] = {
	{ "ping", NULL },
	{ "installation", "created deleted suspend unsuspend new_permissions_accepted" },
	{ "installation_repositories", "added removed" },
	{ "push", NULL },
	{ "pull_request", "opened synchronize reopened closed" },
	{ "issue_comment", "created" },
	{ "check_run", "requested_action rerequested" },
	{ "check_suite", "rerequested" },
};

int wh_event_is_handled(const char *event, const char *action)
{
	for (size_t i = 0; i < sizeof(handled) / sizeof(handled[0]); i++) {
		if (strcmp(handled[i].event, event) != 0)
			continue;
		if (!handled[i].actions)
			return 1;
		if (!action)
			return 0;
		size_t n = strlen(action);
		for (const char *p = handled[i].actions; (p = strstr(p, action)) != NULL; p += n)
			if ((p == handled[i].actions || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
				return 1;
		return 0;
	}
	return 0;
}

int wh_event_has_handler(const char *event)
{
	for (size_t i = 0; i < sizeof(handled) / sizeof(handled[0]); i++)
		if (strcmp(handled[i].event, event) == 0)
			return 1;
	return 0;
}

int wh_event_name_ok(const char *event)
{
	size_t n = event ? strlen(event) : 0;
	if (n == 0 || n > 64)
		return BASE_EINVALID;
	for (const char *p = event; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || *p == '_' || (*p >= '0' && *p <= '9')))
			return BASE_EINVALID;
	return 0;
}

int wh_delivery_id_ok(const char *id)
{
	size_t n = id ? strlen(id) : 0;
	if (n == 0 || n > 64)
		return BASE_EINVALID;
	for (const char *p = id; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
		      *p == '_' || *p == '.'))
			return BASE_EINVALID;
	return 0;
}

int wh_ping_parse(wh_ping *out, const json_t *payload)
{
	memset(out, 0, sizeof(*out));
	const json_t *hook = json_object_get(payload, "hook");
	out->hook_id = base_json_int(payload, "hook_id");
	if (!out->hook_id)
		out->hook_id = base_json_int(hook, "id");
	if (!out->hook_id)
		return base_error_set(BASE_EINVALID, "ping without hook_id");
	out->app_id = base_json_int(hook, "app_id");
	out->zen = base_json_str(payload, "zen");
	return 0;
}

static int repo_list(wh_repo_ref **out, size_t *n_out, const json_t *arr)
{
	*out = NULL;
	*n_out = 0;
	if (!json_is_array(arr) || json_array_size(arr) == 0)
		return 0;
	wh_repo_ref *r = calloc(json_array_size(arr), sizeof(*r));
	if (!r)
		return base_error_set(BASE_ENOMEM, "out of memory");
	size_t i, n = 0;
	json_t *v;
	json_array_foreach(arr, i, v) {
		int64_t id = base_json_int(v, "id");
		const char *name = base_json_str(v, "full_name");
		if (!id || !name)
			continue;
		r[n].id = id;
		r[n].full_name = name;
		n++;
	}
	*out = r;
	*n_out = n;
	return 0;
}

int wh_installation_parse(wh_installation *out, const json_t *payload)
{
	memset(out, 0, sizeof(*out));
	const json_t *inst = json_object_get(payload, "installation");
	out->action = base_json_str(payload, "action");
	out->id = base_json_int(inst, "id");
	if (!out->id)
		return base_error_set(BASE_EINVALID, "installation event without installation.id");
	out->account = base_json_str(json_object_get(inst, "account"), "login");
	const json_t *added = json_object_get(payload, "repositories_added");
	int error = repo_list(&out->repos, &out->nrepos, added ? added : json_object_get(payload, "repositories"));
	if (error == 0)
		error = repo_list(&out->removed, &out->nremoved, json_object_get(payload, "repositories_removed"));
	if (error < 0)
		wh_installation_dispose(out);
	return error;
}

void wh_installation_dispose(wh_installation *ev)
{
	if (!ev)
		return;
	free(ev->repos);
	free(ev->removed);
	ev->repos = ev->removed = NULL;
	ev->nrepos = ev->nremoved = 0;
}

/* An ISO 8601 time with a zone ("2026-12-07T04:00:00Z", "...+01:00") in
 * ms since the epoch; 0 when it does not parse. */
static int64_t iso_ms(const char *s)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	const char *p = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
	if (!p)
		return 0;
	while (*p == '.' || (*p >= '0' && *p <= '9'))
		p++;
	long off = 0;
	if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
		long h = (p[1] - '0') * 10 + (p[2] - '0'), m = (p[4] - '0') * 10 + (p[5] - '0');
		off = (h * 60 + m) * 60 * (*p == '-' ? -1 : 1);
	} else if (strcmp(p, "Z") != 0) {
		return 0;
	}
	time_t t = timegm(&tm);
	return t < 0 ? 0 : ((int64_t)t - off) * 1000;
}

int wh_push_parse(wh_push *out, const json_t *payload)
{
	memset(out, 0, sizeof(*out));
	const json_t *repo = json_object_get(payload, "repository");
	out->ref = base_json_str(payload, "ref");
	out->before = base_json_str(payload, "before");
	out->after = base_json_str(payload, "after");
	out->deleted = json_is_true(json_object_get(payload, "deleted"));
	out->created = json_is_true(json_object_get(payload, "created"));
	out->repository = base_json_str(repo, "full_name");
	out->default_branch = base_json_str(repo, "default_branch");
	out->clone_url = base_json_str(repo, "clone_url");
	out->installation_id = base_json_int(json_object_get(payload, "installation"), "id");
	out->sender = base_json_str(json_object_get(payload, "sender"), "login");
	const json_t *head = json_object_get(payload, "head_commit");
	const json_t *author = json_object_get(head, "author");
	out->head_author = base_json_str(author, "username") ? base_json_str(author, "username") : base_json_str(author, "name");
	out->head_message = base_json_str(head, "message");
	out->head_at_ms = iso_ms(base_json_str(head, "timestamp"));
	if (!out->ref || !out->after || !out->repository)
		return base_error_set(BASE_EINVALID, "push event without ref, after or repository.full_name");
	return 0;
}
