/* First-run setup: GitHub's App manifest flow (as Probot does it).
 *
 * When APP_ID or the key is missing, `perfbot serve` routes
 *   GET /                   -> gh_setup_handle_page        (a "Register GitHub App" button)
 *   POST /setup/public-url  -> gh_setup_handle_public_url  (the URL GitHub reaches perfbot at)
 *   GET /setup/callback     -> gh_setup_handle_callback    (code + state from GitHub)
 * with the gh_setup as payload.  The page is served to a browser on this
 * machine (loopback, not through a proxy) or one that brings the setup token
 * (see gh_setup_token_path), with a session cookie that the other two
 * require.  It says when GitHub cannot reach the webhook URL (a loopback
 * or private address, a local name, plain http) and takes the public URL a
 * reverse proxy or tunnel exposes.  The page POSTs a manifest (hook URL =
 * that URL, else PUBLIC_URL, + WEBHOOK_PATH; the permissions and events
 * perfbot needs; the browser comes back to the origin it used) and a random
 * state to GitHub; the callback checks the state in constant time,
 * converts the code (POST /app-manifests/{code}/conversions), writes the
 * key file (0600, in DATA_DIR) and APP_ID, PRIVATE_KEY_PATH,
 * WEBHOOK_SECRET, GITHUB_CLIENT_ID, GITHUB_CLIENT_SECRET (and PUBLIC_URL
 * when one was entered) into .env atomically (0600, other lines kept), and
 * links to the installation page.
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

/* base_http_handler for POST /setup/public-url (payload: gh_setup *): a
 * form-encoded public_url and the page's state, from the browser holding
 * the session cookie.  A valid URL (http(s), host, optional port and path
 * prefix, nothing else) becomes the manifest's and is written to .env after
 * registration; the state changes with it.  An invalid one gets the page
 * again with the reason (400).  Route it with a small max_body (4 KiB). */
int gh_setup_handle_public_url(const base_http_request *req, base_http_response *resp, void *payload);

/* base_http_handler for GET /setup/callback (payload: gh_setup *). */
int gh_setup_handle_callback(const base_http_request *req, base_http_response *resp, void *payload);

#endif
