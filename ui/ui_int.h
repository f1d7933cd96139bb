/* Private to ui/: the context, the viewer of a request, and the helpers
 * the files of the module share. */
#ifndef UI_UI_INT_H
#define UI_UI_INT_H

#include <pthread.h>

#include "ui/ui.h"

#define UI_ACCESS_SLOTS 256        /* signed-in users whose access is remembered at once */
#define UI_SESSION_COOKIE "perfbot_session"
#define UI_STATE_COOKIE "perfbot_oauth"
#define UI_NEXT_MAX 512            /* bytes of a sign-in's "next" path */

typedef struct ui_access_slot {
	char key[65];        /* the session's id hash; "" when free */
	int64_t fetched_ms;  /* wall clock of GitHub's answer */
	json_t *repos;       /* owned: [{full_name, private, default_branch, installation_id}] */
} ui_access_slot;

#define UI_THRESHOLD_SLOTS 64      /* repositories whose thresholds are remembered */
#define UI_THRESHOLD_TTL_MS 60000  /* ...for a minute: a new perfbot.yml shows within it */

typedef struct ui_threshold_slot {
	char repo[256];
	int64_t fetched_ms;
	double top;          /* the repository's threshold (percent) */
	json_t *per;         /* owned: {benchmark: percent} */
} ui_threshold_slot;

#define UI_SERIES_SLOTS 8 /* series answers remembered (their JSON text, up to ~1.6 MB each) */

/* One series answer as sent, kept until the store's series stamp or the
 * thresholds it was built with change. */
typedef struct ui_series_slot {
	char key[600];       /* repository, branch, metric, limit; "" when free */
	char stamp[96];      /* store_series_stamp when it was built */
	double top;          /* the thresholds it was built with */
	json_t *per;         /* owned */
	char *text;          /* owned: the answer */
	uint64_t used;       /* ui_ctx.series_tick when last sent */
} ui_series_slot;

struct ui_ctx {
	const base_config *cfg;
	store *store;
	const agent_services *agent;
	ui_github gh;
	const base_clock *clock;
	int64_t access_ttl_ms;
	int64_t session_ttl_ms;
	int secure;                 /* PUBLIC_URL is https: cookies are Secure */
	char public_url[512];       /* PUBLIC_URL without a trailing '/', or "" */
	char web_url[512];          /* GitHub's web address */
	pthread_mutex_t mu;         /* guards access[] */
	ui_access_slot access[UI_ACCESS_SLOTS];
	ui_threshold_slot thresholds[UI_THRESHOLD_SLOTS]; /* guarded by mu */
	ui_series_slot series[UI_SERIES_SLOTS];           /* guarded by mu */
	uint64_t series_tick;                             /* guarded by mu */
};

/* Who asks: a signed-in user (session filled), a browser on this machine
 * (local), both, or neither. */
typedef struct ui_who {
	int signed_in;
	int local;
	store_session s;            /* owned strings when signed_in */
} ui_who;

int64_t ui_now_ms(const ui_ctx *ui);

/* ---- responses (ui.c) ---- */
/* Sets a JSON body from root (stolen) with status. */
int ui_reply(base_http_response *resp, int status, json_t *root);
/* {"error": sentence} with status. */
int ui_error(base_http_response *resp, int status, const char *sentence);
/* The answer for what the viewer may not see: 404 "not found" when signed
 * in, else 401 with where to sign in; the same whether it exists or not. */
int ui_hidden(const ui_who *who, base_http_response *resp);

/* ---- sign-in and sessions (auth.c) ---- */
/* Fills who from the request's session cookie and peer. */
int ui_who_get(ui_ctx *ui, const base_http_request *req, ui_who *who);
void ui_who_dispose(ui_who *who);
/* 1 when the request carries the session's CSRF token in X-CSRF-Token
 * (constant-time comparison). */
int ui_csrf_ok(const ui_who *who, const base_http_request *req);
/* /auth/login, /auth/callback, /auth/logout. */
int ui_auth_handle(ui_ctx *ui, const base_http_request *req, base_http_response *resp);
/* The value of cookie `name` (not NUL-terminated: *len bytes), or NULL. */
const char *ui_cookie(const base_http_request *req, const char *name, size_t *len);
/* A browser on this machine: a loopback peer naming this machine in Host,
 * without a proxy's forwarding headers. */
int ui_local_browser(const base_http_request *req);
/* SHA-256 hex of s (out: 65 bytes). */
void ui_sha256_hex(char out[65], const char *s, size_t len);

/* ---- access (access.c) ---- */
/* The repositories the signed-in viewer can read (*out owned), from the
 * cache while fresh.  BASE_EAUTH when GitHub no longer takes the token. */
int ui_access_repos(ui_ctx *ui, const ui_who *who, json_t **out);
/* The viewer's entry for full_name (*out owned), or BASE_ENOTFOUND. */
int ui_access_repo(ui_ctx *ui, const ui_who *who, const char *full_name, json_t **out);
/* 0 when the viewer may read the run (a local run: a local viewer; else
 * the run's repository), BASE_ENOTFOUND when not; *repo_out (owned, may
 * be NULL) the repository entry, NULL for a local run. */
int ui_access_run(ui_ctx *ui, const ui_who *who, const json_t *run, json_t **repo_out);
/* Forgets what GitHub said for the session (sign-out). */
void ui_access_forget(ui_ctx *ui, const char *id_hash);

/* ---- the API (api.c) ---- */
int ui_api_handle(ui_ctx *ui, const ui_who *who, const base_http_request *req, base_http_response *resp);

#endif
