/* The dashboard's server side: GitHub sign-in (the App's OAuth web flow),
 * sessions, the JSON API under /api/v1 and the pages' static files under
 * /ui.  One handler, ui_handle, takes every request under /ui, /api/v1 and
 * /auth.
 *
 * Who sees what: a signed-in user sees a repository only while GitHub says
 * they can read it (asked with their own token, remembered for a few
 * minutes); a browser on this machine sees the runs made here without a
 * GitHub repository; everything else answers 404 with the same body
 * whether it exists or not.  Approve and cancel call agent/'s entry points
 * the comment commands call, after GitHub says the user may write.
 *
 * GitHub is reached through a ui_github (function pointers) so that tests
 * swap it; ui_github_default wraps the App's gh_client. */
#ifndef UI_UI_H
#define UI_UI_H

#include <jansson.h>
#include <stdint.h>

#include "agent/services.h"
#include "base/clock.h"
#include "base/config.h"
#include "base/http.h"
#include "github/github.h"
#include "store/store.h"

typedef struct ui_github {
	/* The OAuth code exchange: *token_out (owned) is the user's token. */
	int (*exchange)(void *payload, const char *code, const char *redirect_uri, char **token_out);
	/* GET /user with the user's token: *out (owned) {login, id, avatar_url}. */
	int (*user)(void *payload, const char *token, json_t **out);
	/* The repositories the user can read through the App's installations
	 * (GET /user/installations, then each one's repositories): *out
	 * (owned) an array of {full_name, private, default_branch,
	 * installation_id}.  BASE_EAUTH when the token is no longer valid. */
	int (*repositories)(void *payload, const char *token, json_t **out);
	/* The user's permission on full_name, asked with the installation's
	 * token as the comment commands do: "admin" | "maintain" | "write" |
	 * "triage" | "read" | "none" (*perm_out owned). */
	int (*permission)(void *payload, int64_t installation_id, const char *full_name, const char *login,
			  char **perm_out);
	void *payload;
} ui_github;

/* A ui_github over the App's client (gh borrowed, may be NULL: every call
 * but the code exchange then fails) and the configuration (borrowed:
 * GITHUB_WEB_URL, the client id and secret).  Freed with
 * ui_github_default_free. */
int ui_github_default_new(ui_github **out, gh_client *gh, const base_config *cfg);
void ui_github_default_free(ui_github *g);

typedef struct ui_options {
	const base_config *cfg;      /* borrowed: PUBLIC_URL, client id and secret, GITHUB_WEB_URL */
	store *store;                /* borrowed */
	const agent_services *agent; /* borrowed; approve and cancel go through it (NULL: refused) */
	const ui_github *github;     /* borrowed; copied */
	const base_clock *clock;     /* NULL: the system's */
	int access_ttl_s;            /* how long GitHub's answer on access is kept: 0 = 300 */
	int session_ttl_s;           /* 0 = 8 hours */
} ui_options;

typedef struct ui_ctx ui_ctx;

int ui_new(ui_ctx **out, const ui_options *opts);
void ui_free(ui_ctx *ui);

/* The route handler (payload: the ui_ctx) for /ui, /api/v1 and /auth. */
int ui_handle(const base_http_request *req, base_http_response *resp, void *payload);

/* Longest request body the API takes (approve / cancel / logout carry none). */
#define UI_MAX_BODY 4096

#endif
