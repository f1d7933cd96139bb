/* perfbot's GitHub App client: App JWTs, installation tokens, and a REST
 * client (libcurl + jansson) that respects GitHub's rate limits.
 *
 * One gh_client per process.  It is thread-safe: it keeps a mutex-protected
 * pool of CURL handles (a handle is used by one thread at a time and keeps
 * its connections alive between requests), the installation-token cache,
 * per-installation rate-limit state and write locks, and the set of
 * redeliveries already requested.  Its waits (rate-limit resets,
 * Retry-After, retry backoff) sleep on the clock in gh_options, so a test
 * with a fake clock waits for nothing.
 *
 * Every function that can fail returns 0 or a negative BASE_E* code and
 * records one line with base_error_set(), e.g.
 *   "GitHub 422 POST /repos/o/r/pulls: Validation Failed: A pull request already exists for o:b."
 * HTTP statuses map to codes: 401 BASE_EAUTH, 403 BASE_EFORBIDDEN,
 * 404/410 BASE_ENOTFOUND, 422 BASE_EINVALID (BASE_EEXISTS when GitHub says
 * "already exists"), 5xx and network errors (after retries) BASE_ERETRY,
 * timeouts BASE_ETIMEOUT, a rate-limit wait longer than max_wait_ms
 * BASE_ERETRY with gh_retry_wait_ms() telling how long to wait.
 *
 * JSON crossing these functions: `json_t **out` results are owned by the
 * caller (json_decref); `json_t *` arguments are borrowed. */
#ifndef GH_GITHUB_H
#define GH_GITHUB_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "base/clock.h"
#include "base/config.h"

/* ---- App key and JWT ------------------------------------------------------ */

typedef struct gh_app_key gh_app_key;

/* The longest owner or repository name kept, with its NUL (GitHub's own
 * limits are 39 and 100 characters). */
#define GH_NAME_MAX 128

/* Splits "owner/name" into its two parts (each NUL-terminated, under
 * GH_NAME_MAX bytes).  BASE_EINVALID when full is not exactly one owner, one
 * slash and one name. */
int gh_repo_split(char owner[GH_NAME_MAX], char name[GH_NAME_MAX], const char *full);

/* Loads the App's private key from cfg->private_key (PEM text, PEM with
 * literal "\n", or base64 of the PEM) or cfg->private_key_path; PKCS#1 or
 * PKCS#8 RSA.  BASE_ENOTFOUND when neither is configured; BASE_EINVALID when
 * the key does not parse (the message never contains key material).  Call
 * it at start-up to validate the configuration.  Free with gh_app_key_free. */
int gh_app_key_load(gh_app_key **out, const base_config *cfg);

/* Same, from key text in any of the accepted forms. */
int gh_app_key_parse(gh_app_key **out, const char *text, size_t len);

void gh_app_key_free(gh_app_key *key);

/* An App JWT (RS256, iat = now - 60, exp = now + 9 min, iss = APP_ID).
 * *out is owned by the caller (free()). */
int gh_app_jwt(char **out, const gh_app_key *key, const char *app_id, time_t now);

/* ---- Client --------------------------------------------------------------- */

typedef struct gh_options {
	const char *api_url;        /* NULL: cfg->github_api_url */
	long connect_timeout_ms;    /* 10000 */
	long timeout_ms;            /* total per request attempt: 30000 */
	int max_retries;            /* on network errors and 5xx: 3 */
	long backoff_ms;            /* first backoff, doubled each retry, plus jitter: 1000 */
	long max_wait_ms;           /* longest rate-limit wait slept in place: 60000 */
	long secondary_wait_ms;     /* secondary limit without retry-after: 60000, doubling */
	long token_margin_s;        /* refresh tokens this long before expires_at: 300 */
	size_t max_response;        /* cap on a response body: 32 MiB */
	int max_pages;              /* cap on pages followed by paginated calls: 100 */
	const base_clock *clock;    /* borrowed, outlives the client; NULL: base_clock_system().
				     * Every wait (rate limits, Retry-After, retry backoff)
				     * sleeps on it and "now" is read from it */
} gh_options;

#define GH_OPTIONS_INIT { NULL, 10000, 30000, 3, 1000, 60000, 60000, 300, 32u << 20, 100, NULL }

typedef struct gh_client gh_client;

/* Creates the client.  The key is loaded from cfg when one is configured
 * (an unparseable key fails with BASE_EINVALID); without a key only
 * unauthenticated calls work (the manifest conversion of first-run setup).
 * opts may be NULL (defaults).  cfg must outlive the client; strings in
 * opts are copied. */
int gh_client_new(gh_client **out, const base_config *cfg, const gh_options *opts);
void gh_client_free(gh_client *c);

/* The wait in milliseconds behind the last BASE_ERETRY returned on this
 * thread by this module (0 when the failure was not a rate limit): a job
 * can be re-queued to run after it. */
long gh_retry_wait_ms(void);

/* An installation token for git over HTTPS (user "x-access-token") and
 * REST calls; cached until token_margin_s before it expires, one refresh
 * at a time per installation.  *token_out is owned by the caller (free()).
 * Never log it. */
int gh_installation_token(gh_client *c, int64_t installation_id, char **token_out);

/* Drops a cached token (after a 401 elsewhere, e.g. a git push). */
void gh_installation_token_invalidate(gh_client *c, int64_t installation_id);

/* ---- Generic requests ------------------------------------------------------ */

/* Authentication of a request: installation_id > 0 uses that
 * installation's token; GH_AUTH_APP the App JWT; GH_AUTH_NONE nothing. */
#define GH_AUTH_APP 0
#define GH_AUTH_NONE (-1)

/* Sends METHOD path (relative to the API URL, may carry a query) with body
 * (borrowed; NULL for none) and returns the decoded answer in *out (owned;
 * NULL for an empty body; out may be NULL).  Retries, rate limits, write
 * serialisation and a one-time token refresh after a 401 happen inside. */
int gh_request(gh_client *c, int64_t auth, const char *method, const char *path, json_t *body, json_t **out);

/* GETs path and every following page (Link rel="next", same origin only, at
 * most max_pages) and returns one array (owned) of all items; array_key
 * names the array inside each page's object ("repositories"), or NULL when
 * each page is an array. */
int gh_request_all(gh_client *c, int64_t auth, const char *path, const char *array_key, json_t **out);

/* The same for a signed-in user of the App (the OAuth web flow's
 * user-to-server token, borrowed, never logged): GET path, or every page
 * of it.  The App's own rate-limit state is not touched. */
int gh_user_request(gh_client *c, const char *user_token, const char *path, json_t **out);
int gh_user_request_all(gh_client *c, const char *user_token, const char *path, const char *array_key, json_t **out);

/* The OAuth web flow's code exchange: POST {web_url}/login/oauth/access_token
 * with the App's client id and secret (never logged), the code and the
 * redirect_uri.  *token_out (owned; wipe and free) is the user's access
 * token.  BASE_EAUTH with GitHub's error description when the code is
 * refused (bad, used or expired code, wrong client). */
int gh_oauth_exchange(char **token_out, const char *web_url, const char *client_id, const char *client_secret,
		      const char *code, const char *redirect_uri);

/* ---- Typed calls (owner/repo as two strings) ------------------------------- */

/* GET /app/installations/{id} (App JWT). */
int gh_get_installation(gh_client *c, int64_t installation_id, json_t **out);
/* GET /installation/repositories, all pages: an array of repository objects. */
int gh_list_installation_repos(gh_client *c, int64_t installation_id, json_t **out);
/* GET /repos/{o}/{r}. */
int gh_get_repo(gh_client *c, int64_t inst, const char *owner, const char *repo, json_t **out);
/* GET /repos/{o}/{r}/contents/{path}?ref=ref, base64-decoded.  *data_out
 * (owned, NUL-terminated) and *len_out; BASE_ENOTFOUND when the file (or the
 * ref) does not exist; BASE_EINVALID when path is a directory. */
int gh_get_file(gh_client *c, int64_t inst, const char *owner, const char *repo, const char *path,
		const char *ref, char **data_out, size_t *len_out);
/* POST /repos/{o}/{r}/check-runs with body (borrowed); id of the run out. */
int gh_create_check_run(gh_client *c, int64_t inst, const char *owner, const char *repo, json_t *body,
			int64_t *id_out);
/* PATCH /repos/{o}/{r}/check-runs/{id} with body (borrowed). */
int gh_update_check_run(gh_client *c, int64_t inst, const char *owner, const char *repo, int64_t id,
			json_t *body);
/* POST /repos/{o}/{r}/issues/{n}/comments; id of the comment out. */
int gh_create_comment(gh_client *c, int64_t inst, const char *owner, const char *repo, int64_t number,
		      const char *text, int64_t *id_out);
/* PATCH /repos/{o}/{r}/issues/comments/{id}. */
int gh_edit_comment(gh_client *c, int64_t inst, const char *owner, const char *repo, int64_t comment_id,
		    const char *text);
/* POST /repos/{o}/{r}/issues/comments/{id}/reactions {content}. */
int gh_add_reaction(gh_client *c, int64_t inst, const char *owner, const char *repo, int64_t comment_id,
		    const char *content);
/* GET /repos/{o}/{r}/collaborators/{user}/permission: *perm_out is one of
 * "admin" "maintain" "write" "triage" "read" "none" (owned). A user who is
 * not a collaborator gets "none" (GitHub's 404 is mapped). */
int gh_get_permission(gh_client *c, int64_t inst, const char *owner, const char *repo, const char *user,
		      char **perm_out);
/* POST /repos/{o}/{r}/pulls with body (borrowed: title, head, base, body,
 * ...); the pull request out (owned).  BASE_EEXISTS when one already
 * exists for head: look it up with gh_find_pull. */
int gh_create_pull(gh_client *c, int64_t inst, const char *owner, const char *repo, json_t *body,
		   json_t **out);
/* GET /repos/{o}/{r}/pulls?head=head_owner:branch&state=state (state NULL:
 * "open"): the first matching pull request (owned), BASE_ENOTFOUND if none. */
int gh_find_pull(gh_client *c, int64_t inst, const char *owner, const char *repo, const char *head_owner,
		 const char *branch, const char *state, json_t **out);
/* GET /repos/{o}/{r}/pulls/{n}. */
int gh_get_pull(gh_client *c, int64_t inst, const char *owner, const char *repo, int64_t number,
		json_t **out);
/* PATCH /repos/{o}/{r}/pulls/{n} {state: closed}. */
int gh_close_pull(gh_client *c, int64_t inst, const char *owner, const char *repo, int64_t number);
/* GET /app (App JWT). */
int gh_get_app(gh_client *c, json_t **out);
/* GET /users/<slug>[bot] (App JWT): the bot user (id, login). */
int gh_get_bot_user(gh_client *c, const char *slug, json_t **out);
/* GET /app/hook/deliveries?per_page=100, all pages up to max_pages (App JWT). */
int gh_list_deliveries(gh_client *c, json_t **out);
/* GET /app/hook/deliveries?per_page=n, the first page only (App JWT): the
 * newest n deliveries (n is 1..100). */
int gh_list_recent_deliveries(gh_client *c, int n, json_t **out);
/* GET /app/hook/config (App JWT): {url, content_type, secret, insecure_ssl}. */
int gh_get_hook_config(gh_client *c, json_t **out);
/* GET /app/installations, all pages (App JWT): an array of installations. */
int gh_list_installations(gh_client *c, json_t **out);
/* GET /installation/repositories?per_page=1: how many repositories the
 * installation covers (its total_count). */
int gh_count_installation_repos(gh_client *c, int64_t installation_id, int64_t *count_out);
/* POST /app/hook/deliveries/{id}/attempts (App JWT). */
int gh_redeliver(gh_client *c, int64_t delivery_id);

/* ---- Missed deliveries ------------------------------------------------------ */

/* Lists recent hook deliveries and requests one redelivery for each failed
 * delivery GUID (no 2xx attempt for that GUID) that is_stored() says
 * perfbot has not stored (is_stored returns 1 stored, 0 not, negative on
 * error) and for which this client has not requested one before.  Counts
 * out (either may be NULL): found = missed GUIDs not asked for before,
 * redelivered = redeliveries requested.  A refused redelivery does not stop
 * the others; the first error is returned after the sweep.  Metrics perfbot_redeliveries_found_total and
 * perfbot_redeliveries_requested_total. */
int gh_redeliver_missed(gh_client *c, int (*is_stored)(const char *guid, void *payload), void *payload,
			int *found_out, int *redelivered_out);

/* ---- Pure helpers (exposed for tests and fuzzing) --------------------------- */

/* The URL of rel="next" in a Link header, or *out = NULL when there is
 * none (0 returned).  BASE_EINVALID on a malformed header. *out owned. */
int gh_link_next(char **out, const char *link);

/* What a response tells about rate limits. has_* say whether a header was
 * present. */
typedef struct gh_rate_info {
	long status;
	int has_remaining;
	long remaining;          /* x-ratelimit-remaining */
	int has_reset;
	int64_t reset;           /* x-ratelimit-reset, epoch seconds */
	int has_retry_after;
	long retry_after_s;      /* retry-after */
	int says_rate_limit;     /* the message mentions a rate limit */
} gh_rate_info;

typedef enum { GH_RATE_NONE = 0, GH_RATE_PRIMARY, GH_RATE_SECONDARY } gh_rate_kind;

/* The wait decision: how long (ms) to wait before retrying the response
 * described by in, at now (epoch s), the secondary_count-th consecutive
 * secondary limit (0 for the first), with base_secondary_ms the wait of a
 * secondary limit without retry-after.  *kind_out says which limit it was;
 * GH_RATE_NONE (returning 0) when the response is not a rate limit. */
long gh_rate_wait_ms(const gh_rate_info *in, int64_t now, int secondary_count, long base_secondary_ms,
		     gh_rate_kind *kind_out);

#endif
