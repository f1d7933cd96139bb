/* Private to the store: the backend vtable that app/store.c dispatches to.
 * A backend struct embeds `store` as its first member. */
#ifndef STORE_STORE_INT_H
#define STORE_STORE_INT_H

#include "store/store.h"

typedef struct store_backend {
	const char *name;
	void (*free)(store *st);
	int (*ping)(store *st);
	/* A backend gives one of the two puts; store.c makes the other of it:
	 * delivery_put queues and waits for the commit when only delivery_put_async
	 * is given, delivery_put_async runs delivery_put and calls done itself when
	 * only delivery_put is given. */
	int (*delivery_put)(store *st, const store_delivery *d, int *duplicate_out);
	int (*delivery_put_async)(store *st, store_delivery_async *a);
	int (*delivery_exists)(store *st, const char *id);
	int (*delivery_body)(store *st, const char *id, char **body_out, size_t *len_out);
	int (*delivery_set_status)(store *st, const char *id, const char *status);
	int (*delivery_list)(store *st, json_t **out, int limit, const char *event);
	int (*job_add)(store *st, int64_t *id_out, const char *kind, const char *payload, const char *dedupe_key,
		       int64_t run_at_ms);
	int (*job_claim)(store *st, store_job *out, const char *owner, int64_t lease_ms,
			 const store_job_filter *filter);
	int (*job_heartbeat)(store *st, int64_t id, const char *owner, int64_t lease_ms);
	int (*job_done)(store *st, int64_t id, const char *owner, const char *note);
	int (*job_fail)(store *st, int64_t id, const char *owner, const char *error, int64_t retry_at_ms);
	int (*job_cancel_key)(store *st, const char *dedupe_key, int *count_out);
	int (*job_release)(store *st, const char *owner);
	int (*job_list)(store *st, json_t **out, int limit);
	int (*job_counts)(store *st, json_t **out);
	int (*queue_stats)(store *st, store_queue_stats *out, int64_t now_ms, int64_t since_ms);
	int (*wait_for_job)(store *st, int timeout_ms);
	int (*schema_version)(store *st, int *applied_out, int *known_out);
	int (*installation_put)(store *st, int64_t id, const char *account, const char *state);
	int (*installation_delete)(store *st, int64_t id);
	int (*installation_state)(store *st, int64_t id, char **state_out);
	int (*repository_put)(store *st, int64_t installation_id, int64_t repo_id, const char *full_name);
	int (*repository_remove)(store *st, int64_t installation_id, int64_t repo_id);
	int (*repository_list)(store *st, int64_t installation_id, json_t **out);
	int (*hook_put)(store *st, int64_t hook_id, int64_t app_id, const char *delivery_id);
	int (*run_create)(store *st, int64_t *id_out, const store_run_spec *spec);
	int (*run_set_state)(store *st, int64_t id, const char *state, const char *reason);
	int (*run_set_state_from)(store *st, int64_t id, const char *from, const char *state, const char *reason);
	int (*run_update)(store *st, int64_t id, const json_t *data);
	int (*run_get)(store *st, int64_t id, json_t **out);
	int (*run_list)(store *st, const json_t *filter, int limit, json_t **out);
	int (*measurement_put)(store *st, int64_t *id_out, int64_t run_id, const char *repository, const char *commit,
			       const char *benchmark, const json_t *data);
	int (*measurement_find)(store *st, const char *repository, const char *commit, const char *benchmark,
				json_t **out);
	int (*measurement_get)(store *st, int64_t id, json_t **out);
	int (*measurement_list)(store *st, int64_t run_id, json_t **out);
	int (*proposal_put)(store *st, int64_t run_id, const json_t *data);
	int (*proposal_get)(store *st, int64_t run_id, json_t **out);
	int (*pull_put)(store *st, int64_t run_id, const char *repository, int number, const char *branch,
			const char *state, const json_t *data);
	int (*pull_get)(store *st, int64_t run_id, json_t **out);
	int (*pull_find_branch)(store *st, const char *repository, const char *branch, json_t **out);
	int (*approval_put)(store *st, const store_approval *a);
	int (*audit)(store *st, const char *actor, const char *action, const char *subject, const char *detail);
	int (*run_token_put)(store *st, int64_t run_id, const char *token_hash);
	int (*run_token_find)(store *st, const char *token_hash, int64_t *run_id_out);
	int (*run_token_delete)(store *st, int64_t run_id);
	int (*session_put)(store *st, const store_session *s);
	int (*session_get)(store *st, const char *id_hash, int64_t now_ms, store_session *out);
	int (*session_delete)(store *st, const char *id_hash);
	int (*series_get)(store *st, json_t **out, const char *repository, const char *branch, const char *metric,
			  int limit);
	int (*series_stamp)(store *st, char *out, size_t cap, const char *repository, const char *branch);
	/* may be NULL: store.c answers BASE_EGENERIC ("not supported") */
	int (*handover_put)(store *st, const char *environment_id, const char *session_id, const char *work_id,
			    const char *secret, const char *polled_by, int64_t polled_ms, int64_t expires_ms);
	int (*handover_claim)(store *st, const char *environment_id, const char *session_id, int64_t now_ms,
			      store_handover *out);
} store_backend;

struct store {
	const store_backend *be;
};

int store_sqlite_open(store **out, const char *path, int serving);
/* url: "postgres://..." or "postgresql://..." (libpq's URI form). */
int store_pg_open(store **out, const char *url);

#endif
