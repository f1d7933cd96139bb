/* GitHub webhook events: what perfbot extracts from a verified payload, and
 * which (event, action) pairs it acts on.  Typed structs for the events the
 * job handlers use; their strings are borrowed from the json_t they were
 * parsed from (keep it alive while using the struct). */
#ifndef WH_EVENT_H
#define WH_EVENT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Fields common to every event, for the deliveries table and logs. */
typedef struct wh_event_info {
	const char *action;          /* NULL when the payload has none */
	int64_t installation_id;     /* 0 when none */
	const char *repository;      /* "owner/name" or NULL */
	const char *sender;          /* login or NULL */
} wh_event_info;

/* Extracts the common fields; BASE_EINVALID when the payload is not an object. */
int wh_event_info_parse(wh_event_info *out, const json_t *payload);

/* 1 when perfbot acts on this event and action, 0 when it only records it. */
int wh_event_is_handled(const char *event, const char *action);

/* 1 when perfbot acts on some action of this event (so a delivery of it
 * gets a job, whose handler checks the action), 0 when it only records it. */
int wh_event_has_handler(const char *event);

/* Sanity checks for the headers naming a delivery: 0 or BASE_EINVALID. */
int wh_event_name_ok(const char *event);
int wh_delivery_id_ok(const char *id);

typedef struct wh_ping {
	int64_t hook_id;
	int64_t app_id;      /* hook.app_id, 0 for a repository hook */
	const char *zen;
} wh_ping;
int wh_ping_parse(wh_ping *out, const json_t *payload);

typedef struct wh_repo_ref {
	int64_t id;
	const char *full_name;
} wh_repo_ref;

/* installation (created, deleted, suspend, unsuspend, new_permissions_accepted)
 * and installation_repositories (added, removed). */
typedef struct wh_installation {
	const char *action;
	int64_t id;
	const char *account;           /* account.login */
	wh_repo_ref *repos;            /* owned array: repositories, or repositories_added */
	size_t nrepos;
	wh_repo_ref *removed;          /* owned array: repositories_removed */
	size_t nremoved;
} wh_installation;
int wh_installation_parse(wh_installation *out, const json_t *payload);
void wh_installation_dispose(wh_installation *ev);

/* push */
typedef struct wh_push {
	const char *ref;               /* "refs/heads/main" */
	const char *before;
	const char *after;
	int deleted;
	int created;
	const char *repository;        /* full_name */
	const char *default_branch;
	const char *clone_url;
	int64_t installation_id;
	const char *sender;
	const char *head_author;       /* head_commit.author: username, else name; may be NULL */
	const char *head_message;      /* head_commit.message; may be NULL */
	int64_t head_at_ms;            /* head_commit.timestamp, ms since epoch; 0 when absent */
} wh_push;
int wh_push_parse(wh_push *out, const json_t *payload);

#endif
