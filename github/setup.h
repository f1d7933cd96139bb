/* First-run setup: GitHub's App manifest flow (as Probot does it).
 *
 * When APP_ID or the key is missing, `perfbot serve` routes
 *   GET /                -> gh_setup_handle_page      (a "Register GitHub App" button)
 *   GET /setup/callback  -> gh_setup_handle_callback  (code + state from GitHub)
 * with the gh_setup as payload.  The page is served to a browser on this
 * machine (loopback, not through a proxy) or one that brings the setup token
 * (see gh_setup_token_path), with a session cookie that the callback
 * requires.  The page POSTs a manifest (hook URL =
 * PUBLIC_URL + WEBHOOK_PATH, the permissions and events perfbot needs) and
 * a random state to GitHub; the callback checks the state in constant time,
 * converts the code (POST /app-manifests/{code}/conversions), writes the
 * key file (0600, in DATA_DIR) and APP_ID, PRIVATE_KEY_PATH,
 * WEBHOOK_SECRET, GITHUB_CLIENT_ID, GITHUB_CLIENT_SECRET into .env
 * atomically (0600, other lines kept), and links to the installation page.
 * The new configuration takes effect when perfbot is restarted; until then
 * setup is closed (later callbacks are refused).
 * Handlers are thread-safe. */
#ifndef GH_SETUP_H
#define GH_SETUP_H

#include "base/config.h"
#include "base/http.h"
#include "github/github.h"

typedef struct gh_setup_options {
	const char *web_url;   /* GitHub's web UI; NULL: https://github.com or https://GHE_HOST */
	const char *api_url;   /* NULL: cfg->github_api_url */
	const char *env_dir;   /* folder of the .env written; NULL: the working directory */
	const char *app_name;  /* manifest name; NULL: "perfbot" */
	long timeout_ms;       /* conversion request; 0: 30000 */
} gh_setup_options;

#define GH_SETUP_OPTIONS_INIT { NULL, NULL, NULL, NULL, 0 }

typedef struct gh_setup gh_setup;

/* cfg must outlive the setup; option strings are copied. */
int gh_setup_new(gh_setup **out, const base_config *cfg, const gh_setup_options *opts);
void gh_setup_free(gh_setup *s);

/* The current state value (for tests); borrowed until the next successful
 * callback, which replaces it. */
const char *gh_setup_state(gh_setup *s);

/* The file holding the setup token (DATA_DIR/setup-token, 0600): a browser
 * on another machine opens the page with ?token=<its content>.  Removed
 * once the App is registered. */
const char *gh_setup_token_path(gh_setup *s);

/* base_http_handler for GET / (payload: gh_setup *). */
int gh_setup_handle_page(const base_http_request *req, base_http_response *resp, void *payload);

/* base_http_handler for GET /setup/callback (payload: gh_setup *). */
int gh_setup_handle_callback(const base_http_request *req, base_http_response *resp, void *payload);

#endif
