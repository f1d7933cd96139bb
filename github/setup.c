/* First-run setup through GitHub's App manifest flow (see setup.h).
 *
 * Who may register the App: the page is served to a browser on this
 * machine (a loopback peer without proxy headers) or to one that brings the
 * setup token, which is written to DATA_DIR/setup-token (0600) and never
 * logged.  Such a browser gets a session cookie (HttpOnly, SameSite=Lax);
 * the callback needs that cookie and the state, both compared in constant
 * time, so a state read off the page is useless to anyone else.
 * The public URL entered on the page is kept here until the callback
 * writes it to .env; entering one replaces the state, so only a page built
 * for the latest URL can complete the registration.
 * Invariants: the state, token and session are 32 random bytes (hex); one
 * conversion succeeds at most once, after which setup is closed and the
 * state replaced (a failed conversion keeps it, so the admin can retry);
 * secrets from the conversion go only to the key file and .env (both 0600,
 * written to a temporary file and renamed) and never into logs or the page.
 * Threading: everything mutable is guarded by one mutex, which also
 * serialises the file writes. */
#include "github/setup.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "base/buf.h"
#include "base/error.h"
#include "base/log.h"
#include "base/url.h"

#define PAGE_CAP (256u << 10)
#define ENV_CAP (1u << 20)

struct gh_setup {
	const base_config *cfg;
	base_config client_cfg;   /* cfg without a key: the conversion is unauthenticated */
	gh_client *client;
	char *web_url;
	char *env_dir;
	char *app_name;
	pthread_mutex_t mu;
	char state[65];
	char token[65];    /* the setup token, for browsers on other machines */
	char session[65];  /* the cookie that binds the callback to the page's browser */
	char token_path[PATH_MAX];
	char public_url[600]; /* entered on the page, normalised; "" when none */
	int done;          /* an App was registered: setup is closed */
};

#define COOKIE_NAME "perfbot_setup"

static int write_private_file(const char *path, const char *data, size_t len);
static int ensure_dir(const char *dir);
static int message_page(base_http_response *resp, int status, const char *title, const char *text);
static int message_page_with(base_http_response *resp, int status, const char *title, const char *text,
			     const char *extra_html);

static int new_state(char out[65])
{
	unsigned char raw[32];
	static const char hex[] = "0123456789abcdef";
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return base_error_set(BASE_EGENERIC, "no randomness for the setup state");
	for (size_t i = 0; i < sizeof(raw); i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 15];
	}
	out[64] = '\0';
	return 0;
}

static char *dup_or(const char *s, const char *fallback)
{
	return strdup(s ? s : fallback);
}

int gh_setup_new(gh_setup **out, const base_config *cfg, const gh_setup_options *opts)
{
	static const gh_setup_options defaults = GH_SETUP_OPTIONS_INIT;
	int error = 0;
	gh_setup *s = NULL;
	base_buf web = BASE_BUF_INIT(1024);
	*out = NULL;
	if (!opts)
		opts = &defaults;
	if (!(s = calloc(1, sizeof(*s))))
		return base_error_set(BASE_ENOMEM, "out of memory");
	pthread_mutex_init(&s->mu, NULL);
	s->cfg = cfg;
	s->client_cfg = *cfg;
	s->client_cfg.private_key = NULL;
	s->client_cfg.private_key_path = NULL;
	if (opts->web_url)
		error = base_buf_puts(&web, opts->web_url);
	else if (cfg->ghe_host && cfg->ghe_host[0])
		error = base_buf_printf(&web, "https://%s", cfg->ghe_host);
	else
		error = base_buf_puts(&web, "https://github.com");
	if (error < 0)
		goto done;
	while (web.len > 0 && web.ptr[web.len - 1] == '/')
		web.ptr[--web.len] = '\0';
	if (!(s->web_url = base_buf_detach(&web)) || !(s->env_dir = dup_or(opts->env_dir, ".")) ||
	    !(s->app_name = dup_or(opts->app_name, "perfbot"))) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	gh_options gopts = GH_OPTIONS_INIT;
	gopts.api_url = opts->api_url;
	gopts.timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 30000;
	gopts.max_retries = 1;
	if ((error = gh_client_new(&s->client, &s->client_cfg, &gopts)) < 0)
		goto done;
	if ((error = new_state(s->state)) < 0 || (error = new_state(s->token)) < 0 ||
	    (error = new_state(s->session)) < 0)
		goto done;
	const char *data_dir = cfg->data_dir ? cfg->data_dir : "./var";
	if ((size_t)snprintf(s->token_path, sizeof(s->token_path), "%s/setup-token", data_dir) >= sizeof(s->token_path)) {
		error = base_error_set(BASE_EINVALID, "DATA_DIR path too long");
		goto done;
	}
	char line[80];
	snprintf(line, sizeof(line), "%s\n", s->token);
	if ((error = ensure_dir(data_dir)) == 0)
		error = write_private_file(s->token_path, line, 65);
	OPENSSL_cleanse(line, sizeof(line));
	if (error < 0)
		goto done;
	base_log(BASE_LOG_INFO, "setup: a browser on another machine needs the setup token from this file", "file",
		s->token_path, NULL);
	*out = s;
	s = NULL;
done:
	base_buf_dispose(&web);
	gh_setup_free(s);
	return error;
}

void gh_setup_free(gh_setup *s)
{
	if (!s)
		return;
	gh_client_free(s->client);
	OPENSSL_cleanse(s->token, sizeof(s->token));
	OPENSSL_cleanse(s->session, sizeof(s->session));
	free(s->web_url);
	free(s->env_dir);
	free(s->app_name);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

const char *gh_setup_state(gh_setup *s)
{
	return s->state;
}

const char *gh_setup_token_path(gh_setup *s)
{
	return s->token_path;
}

static int equal_secret(const char *given, size_t given_len, const char *mine)
{
	return given && given_len == 64 && CRYPTO_memcmp(given, mine, 64) == 0;
}

static int loopback_host(const base_http_request *req);

/* A browser on this machine: a loopback peer, not forwarded by a proxy, that
 * names this machine in Host (a reverse proxy that passes the public Host
 * on but adds no forwarding header is not taken for a local browser). */
static int local_browser(const base_http_request *req)
{
	const char *peer = req->peer ? req->peer : "";
	int loopback = strncmp(peer, "127.", 4) == 0 || strcmp(peer, "::1") == 0 || strncmp(peer, "::ffff:127.", 11) == 0;
	return loopback && loopback_host(req) && !base_http_request_header(req, "X-Forwarded-For") &&
	       !base_http_request_header(req, "Forwarded") && !base_http_request_header(req, "X-Real-IP");
}

/* Whether `name` (len bytes) followed by `rest` is name[:port]: rest is
 * empty or a colon and 1 to 5 digits. */
static int port_suffix_ok(const char *rest)
{
	if (*rest == '\0')
		return 1;
	if (*rest != ':')
		return 0;
	size_t n = strspn(rest + 1, "0123456789");
	return n >= 1 && n <= 5 && rest[1 + n] == '\0';
}

/* The host part of PUBLIC_URL ("https://perfbot.example.com:8443/x" →
 * "perfbot.example.com"), into out; "" when there is none. */
static void public_host(char *out, size_t cap, const char *url)
{
	out[0] = '\0';
	const char *p = url ? strstr(url, "://") : NULL;
	if (!p)
		return;
	p += 3;
	size_t n = p[0] == '[' ? strcspn(p, "]") + 1 : strcspn(p, ":/?#");
	if (p[0] == '[' && p[n - 1] != ']')
		return;
	if (n == 0 || n >= cap)
		return;
	memcpy(out, p, n);
	out[n] = '\0';
}

/* The Host header must name this machine (127.0.0.1, localhost, [::1]) or
 * PUBLIC_URL's host, each with an optional port.  A browser lured to an
 * attacker's name that resolves to 127.0.0.1 (DNS rebinding) sends that
 * name: such a page would otherwise be loopback-trusted and its manifest
 * would point GitHub at the attacker.  0 when allowed, else BASE_EINVALID
 * with the reason. */
static int host_allowed(const gh_setup *s, const base_http_request *req)
{
	const char *host = base_http_request_header(req, "Host");
	if (!host || !*host)
		return base_error_set(BASE_EINVALID, "the request has no Host header");
	if (strlen(host) > 255)
		return base_error_set(BASE_EINVALID, "the Host header is too long");
	char pub[256];
	public_host(pub, sizeof(pub), s->cfg->public_url);
	const char *names[] = { "127.0.0.1", "localhost", "[::1]", pub[0] ? pub : NULL };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		size_t n = names[i] ? strlen(names[i]) : 0;
		if (n && strncasecmp(host, names[i], n) == 0 && port_suffix_ok(host + n))
			return 0;
	}
	return base_error_set(BASE_EINVALID,
			     "the Host header names neither this machine (127.0.0.1, localhost, [::1]) nor PUBLIC_URL's "
			     "host; open the setup page at one of those, or set PUBLIC_URL to the name you use");
}

static int wrong_host(const gh_setup *s, const base_http_request *req, base_http_response *resp)
{
	if (host_allowed(s, req) == 0)
		return 0;
	snprintf(resp->log_outcome, sizeof(resp->log_outcome), "setup-bad-host");
	base_log(BASE_LOG_WARN, "setup refused: unexpected Host header", "peer", req->peer, NULL);
	message_page(resp, 400, "Setup refused", base_error_last());
	return 1;
}

/* The value of cookie `name` in the request's Cookie header (length in
 * *len), or NULL. */
static const char *cookie_value(const base_http_request *req, const char *name, size_t *len)
{
	const char *h = base_http_request_header(req, "Cookie");
	size_t n = strlen(name);
	while (h && *h) {
		h += strspn(h, " \t;");
		if (strncmp(h, name, n) == 0 && h[n] == '=') {
			const char *v = h + n + 1;
			*len = strcspn(v, ";");
			return v;
		}
		h = strchr(h, ';');
	}
	return NULL;
}

/* ---- page ------------------------------------------------------------------------ */

static int html_escape(base_buf *b, const char *s)
{
	int error = 0;
	for (; *s && error == 0; s++) {
		switch (*s) {
		case '&': error = base_buf_puts(b, "&amp;"); break;
		case '<': error = base_buf_puts(b, "&lt;"); break;
		case '>': error = base_buf_puts(b, "&gt;"); break;
		case '"': error = base_buf_puts(b, "&quot;"); break;
		case '\'': error = base_buf_puts(b, "&#39;"); break;
		default: error = base_buf_put(b, s, 1); break;
		}
	}
	return error;
}

/* Whether the Host header (one host_allowed accepted) names this machine. */
static int loopback_host(const base_http_request *req)
{
	const char *host = base_http_request_header(req, "Host");
	const char *names[] = { "127.0.0.1", "localhost", "[::1]" };
	for (size_t i = 0; host && i < sizeof(names) / sizeof(names[0]); i++) {
		size_t n = strlen(names[i]);
		if (strncasecmp(host, names[i], n) == 0 && port_suffix_ok(host + n))
			return 1;
	}
	return 0;
}

static void trim_slashes(base_buf *b)
{
	while (b->len > 0 && b->ptr[b->len - 1] == '/')
		b->ptr[--b->len] = '\0';
}

/* The base URL GitHub is given for the webhook and the App's pages: the
 * one entered on the page, else PUBLIC_URL, else what the browser used (a
 * Host host_allowed accepted: this machine's own names). */
static int public_base(base_buf *b, const gh_setup *s, const char *entered, const base_http_request *req)
{
	int error;
	if (entered[0]) {
		error = base_buf_puts(b, entered);
	} else if (s->cfg->public_url && s->cfg->public_url[0]) {
		error = base_buf_puts(b, s->cfg->public_url);
	} else {
		const char *host = base_http_request_header(req, "Host");
		if (host && strpbrk(host, "\"<>/\\ \t\r\n") == NULL)
			error = base_buf_printf(b, "http://%s", host);
		else
			error = base_buf_printf(b, "http://%s:%d", s->cfg->host ? s->cfg->host : "127.0.0.1", s->cfg->port);
	}
	trim_slashes(b);
	return error;
}

/* Where GitHub sends the browser back: the origin this browser uses, so
 * that it brings the session cookie.  A browser on this machine (a Host
 * naming it) comes back to that Host, whatever URL GitHub delivers
 * webhooks to; any other Host is PUBLIC_URL's. */
static int browser_base(base_buf *b, const gh_setup *s, const base_http_request *req)
{
	int error;
	if (loopback_host(req) || !s->cfg->public_url || !s->cfg->public_url[0])
		error = base_buf_printf(b, "http://%s", base_http_request_header(req, "Host"));
	else
		error = base_buf_puts(b, s->cfg->public_url);
	trim_slashes(b);
	return error;
}

static void page_headers(base_http_response *resp)
{
	resp->content_type = "text/html; charset=utf-8";
	base_http_response_header(resp, "Cache-Control", "no-store");
	base_http_response_header(resp, "Referrer-Policy", "no-referrer");
	base_http_response_header(resp, "X-Frame-Options", "DENY");
	base_http_response_header(resp, "Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action *");
}

static const char page_head[] =
	"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>perfbot setup</title>"
	"<style>body{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;line-height:1.5}"
	"button{font-size:1.1em;padding:.5em 1.2em}"
	".warning{border:2px solid #b00;background:#fff4f2;padding:0 1em;margin:1em 0}"
	".problem{color:#b00;font-weight:bold}</style></head><body>\n";

/* The warning at the top of the page when GitHub cannot deliver to the
 * webhook URL (or only without TLS); nothing when it can. */
static int reach_warning(base_buf *out, const char *base, const char *hook_url)
{
	base_url u;
	char why[300];
	base_reach r;
	if (base_url_parse(&u, base) < 0) {
		snprintf(why, sizeof(why), "%s", base_error_last());
		r = BASE_REACH_UNREACHABLE;
	} else {
		r = base_url_reach(&u, why, sizeof(why));
	}
	if (r == BASE_REACH_OK)
		return 0;
	base_buf_puts(out, "<div class=\"warning\" role=\"alert\">\n<p><b>");
	if (r == BASE_REACH_NO_TLS) {
		base_buf_puts(out, "The webhook URL <code>");
		html_escape(out, hook_url);
		base_buf_puts(out, "</code> is plain http:</b> GitHub would send every payload unencrypted. Put TLS in "
				   "front of perfbot (a reverse proxy or a tunnel) and enter the https address it exposes "
				   "below.</p>\n");
	} else {
		base_buf_puts(out, "GitHub cannot deliver webhooks to <code>");
		html_escape(out, hook_url);
		base_buf_puts(out, "</code>:</b> ");
		html_escape(out, why);
		base_buf_puts(out, ". GitHub would register the App, but no event would ever reach perfbot.</p>\n"
				   "<p>Make perfbot reachable from the internet through a reverse proxy with HTTPS or a "
				   "tunnel, then enter the public https address it exposes below (saved as "
				   "<code>PUBLIC_URL</code> in <code>.env</code> once the App is registered).</p>\n");
	}
	return base_buf_puts(out, "</div>\n");
}

/* The setup page for a browser allowed to register the App: the
 * reachability warning, the public URL form, the manifest form, and the
 * session cookie.  problem (may be NULL): why the URL just entered was
 * refused, shown with typed (what was entered) in the input. */
static int render_page(gh_setup *s, const base_http_request *req, base_http_response *resp, int status,
		       const char *problem, const char *typed)
{
	int error = 0;
	base_buf base = BASE_BUF_INIT(2048), back = BASE_BUF_INIT(2048);
	base_buf hook = BASE_BUF_INIT(4096), redirect = BASE_BUF_INIT(4096), signin = BASE_BUF_INIT(4096);
	json_t *m = NULL;
	char *mtext = NULL;
	char state[65], session[65], entered[sizeof(s->public_url)];

	pthread_mutex_lock(&s->mu);
	memcpy(state, s->state, sizeof(state));
	memcpy(session, s->session, sizeof(session));
	memcpy(entered, s->public_url, sizeof(entered));
	pthread_mutex_unlock(&s->mu);

	if ((error = public_base(&base, s, entered, req)) < 0 || (error = browser_base(&back, s, req)) < 0)
		goto done;
	char cookie[160];
	snprintf(cookie, sizeof(cookie), COOKIE_NAME "=%s; Path=/setup; HttpOnly; SameSite=Lax%s", session,
		 strncmp(base_buf_cstr(&back), "https://", 8) == 0 ? "; Secure" : "");
	const char *b = base_buf_cstr(&base);
	const char *hook_path = s->cfg->webhook_path ? s->cfg->webhook_path : "/api/github/webhooks";
	if ((error = base_buf_printf(&hook, "%s%s", b, hook_path)) < 0 ||
	    (error = base_buf_printf(&redirect, "%s/setup/callback", base_buf_cstr(&back))) < 0 ||
	    /* the dashboard's sign-in: GitHub sends users back exactly there */
	    (error = base_buf_printf(&signin, "%s/auth/callback", b)) < 0)
		goto done;
	m = json_pack("{s:s, s:s, s:{s:s, s:b}, s:s, s:[s], s:b, s:{s:s, s:s, s:s, s:s, s:s}, s:[s,s,s,s,s]}",
		      "name", s->app_name, "url", b,
		      "hook_attributes", "url", base_buf_cstr(&hook), "active", 1,
		      "redirect_url", base_buf_cstr(&redirect),
		      "callback_urls", base_buf_cstr(&signin),
		      "public", 0,
		      "default_permissions", "contents", "write", "pull_requests", "write", "checks", "write",
		      "issues", "write", "metadata", "read",
		      "default_events", "check_run", "check_suite", "issue_comment", "pull_request", "push");
	if (!m || !(mtext = json_dumps(m, JSON_COMPACT))) {
		error = base_error_set(BASE_EINVALID, "cannot build the app manifest (PUBLIC_URL not UTF-8?)");
		goto done;
	}

	base_buf *out = &resp->body;
	base_buf_reset(out);
	out->max = PAGE_CAP;
	resp->status = status;
	page_headers(resp);
	base_http_response_header(resp, "Set-Cookie", cookie);
	OPENSSL_cleanse(cookie, sizeof(cookie));
	base_buf_puts(out, page_head);
	base_buf_puts(out, "<h1>perfbot setup</h1>\n");
	reach_warning(out, b, base_buf_cstr(&hook));
	base_buf_puts(out, "<p>perfbot has no GitHub App yet. Register one");
	if (s->cfg->gh_org && s->cfg->gh_org[0]) {
		base_buf_puts(out, " for the organisation <b>");
		html_escape(out, s->cfg->gh_org);
		base_buf_puts(out, "</b>");
	}
	base_buf_puts(out, "; GitHub will send you back here with its credentials.</p>\n");

	/* the public URL, posted back here with the session cookie and the state */
	base_buf_puts(out, "<form method=\"post\" action=\"/setup/public-url\">\n");
	if (problem) {
		base_buf_puts(out, "<p class=\"problem\" role=\"alert\">That public URL cannot be used: ");
		html_escape(out, problem);
		base_buf_puts(out, ".</p>\n");
	}
	base_buf_puts(out, "<p><label>Public URL (where GitHub reaches perfbot): <input name=\"public_url\" "
			   "size=\"48\" autocomplete=\"off\" placeholder=\"https://perfbot.example.com\" value=\"");
	if (typed)
		html_escape(out, typed);
	else if (entered[0])
		html_escape(out, entered);
	else if (s->cfg->public_url)
		html_escape(out, s->cfg->public_url);
	base_buf_puts(out, "\"></label>\n<input type=\"hidden\" name=\"state\" value=\"");
	base_buf_puts(out, state);
	base_buf_puts(out, "\"> <button type=\"submit\">Use this URL</button></p>\n</form>\n");

	base_buf_puts(out, "<p>Webhook URL: <code>");
	html_escape(out, base_buf_cstr(&hook));
	base_buf_puts(out, "</code></p>\n<form method=\"post\" action=\"");
	html_escape(out, s->web_url);
	if (s->cfg->gh_org && s->cfg->gh_org[0]) {
		base_buf_puts(out, "/organizations/");
		html_escape(out, s->cfg->gh_org);
	}
	base_buf_puts(out, "/settings/apps/new?state=");
	base_buf_puts(out, state);
	base_buf_puts(out, "\">\n<input type=\"hidden\" name=\"manifest\" value=\"");
	html_escape(out, mtext);
	if ((error = base_buf_puts(out, "\">\n<button type=\"submit\">Register GitHub App</button>\n</form>\n</body></html>\n")) < 0)
		error = base_error_set(error, "setup page too large");
	snprintf(resp->log_outcome, sizeof(resp->log_outcome), problem ? "setup-bad-url" : "setup-page");
done:
	OPENSSL_cleanse(session, sizeof(session));
	free(mtext);
	json_decref(m);
	base_buf_dispose(&base);
	base_buf_dispose(&back);
	base_buf_dispose(&hook);
	base_buf_dispose(&redirect);
	base_buf_dispose(&signin);
	return error;
}

int gh_setup_handle_page(const base_http_request *req, base_http_response *resp, void *payload)
{
	gh_setup *s = payload;

	if (wrong_host(s, req, resp))
		return 0;
	const char *token = base_http_request_query(req, "token");
	int allowed = local_browser(req) || equal_secret(token, token ? strlen(token) : 0, s->token);
	pthread_mutex_lock(&s->mu);
	int done = s->done;
	pthread_mutex_unlock(&s->mu);
	if (done) {
		snprintf(resp->log_outcome, sizeof(resp->log_outcome), "setup-done");
		return message_page(resp, 200, "GitHub App registered",
				    "This perfbot has registered its GitHub App. Restart perfbot to use it.");
	}
	if (!allowed) {
		snprintf(resp->log_outcome, sizeof(resp->log_outcome), "setup-token-needed");
		return message_page_with(resp, 403, "perfbot setup",
					 "To register perfbot's GitHub App from another machine, enter the setup token: it "
					 "is in the file setup-token in perfbot's data directory on the server.",
					 "<form method=\"get\" action=\"/\"><input name=\"token\" size=\"64\" "
					 "autocomplete=\"off\"> <button type=\"submit\">Continue</button></form>\n");
	}
	return render_page(s, req, resp, 200, NULL, NULL);
}

/* The value of field `name` of a form-encoded body, decoded into out (cap
 * bytes with the NUL): 1 when found, 0 when absent, BASE_EINVALID when it
 * is malformed or too long. */
static int form_field(char *out, size_t cap, const char *body, size_t len, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < len;) {
		size_t end = i;
		while (end < len && body[end] != '&')
			end++;
		if (end - i > n && memcmp(body + i, name, n) == 0 && body[i + n] == '=') {
			size_t o = 0;
			for (size_t k = i + n + 1; k < end; k++) {
				int c = (unsigned char)body[k];
				if (c == '+') {
					c = ' ';
				} else if (c == '%') {
					if (k + 2 >= end || !isxdigit((unsigned char)body[k + 1]) ||
					    !isxdigit((unsigned char)body[k + 2]))
						return base_error_set(BASE_EINVALID, "a form field is badly encoded");
					char hx[3] = { body[k + 1], body[k + 2], '\0' };
					c = (int)strtol(hx, NULL, 16);
					k += 2;
				}
				if (c == '\0' || o + 1 >= cap)
					return base_error_set(BASE_EINVALID, "a form field is too long or holds a NUL");
				out[o++] = (char)c;
			}
			out[o] = '\0';
			return 1;
		}
		i = end + 1;
	}
	return 0;
}

int gh_setup_handle_public_url(const base_http_request *req, base_http_response *resp, void *payload)
{
	gh_setup *s = payload;
	char typed[600], state[80];
	base_url u;
	char normal[sizeof(s->public_url)];

	if (strcmp(req->method, "POST") != 0) {
		base_http_response_header(resp, "Allow", "POST");
		return message_page(resp, 405, "Setup", "This address takes the setup page's form.");
	}
	if (wrong_host(s, req, resp))
		return 0;
	size_t cookie_len = 0;
	const char *cookie = cookie_value(req, COOKIE_NAME, &cookie_len);
	pthread_mutex_lock(&s->mu);
	int done = s->done;
	int session_ok = equal_secret(cookie, cookie_len, s->session);
	pthread_mutex_unlock(&s->mu);
	snprintf(resp->log_outcome, sizeof(resp->log_outcome), "setup-url");
	if (done)
		return message_page(resp, 409, "Setup closed",
				    "This perfbot has registered its GitHub App already. Restart perfbot to use it.");
	if (!session_ok) {
		base_log(BASE_LOG_WARN, "setup: public URL refused: not from the browser that opened the setup page", "peer",
			req->peer, NULL);
		return message_page(resp, 403, "Setup failed",
				    "This form does not come from the browser that opened perfbot's setup page. "
				    "Start again from the setup page.");
	}
	const char *ct = base_http_request_header(req, "Content-Type");
	if (!ct || strncasecmp(ct, "application/x-www-form-urlencoded", 33) != 0 || (ct[33] != '\0' && ct[33] != ';'))
		return message_page(resp, 415, "Setup failed", "The form must be sent as application/x-www-form-urlencoded.");
	const char *body = req->body ? req->body : "";
	if (form_field(state, sizeof(state), body, req->body_len, "state") != 1)
		return message_page(resp, 400, "Setup failed", "The form has no valid state. Reload the setup page.");
	pthread_mutex_lock(&s->mu);
	int state_ok = equal_secret(state, strlen(state), s->state);
	pthread_mutex_unlock(&s->mu);
	if (!state_ok)
		return message_page(resp, 400, "Setup failed",
				    "The state does not match this perfbot's setup page (it changes when the public URL "
				    "does). Reload the setup page.");
	int found = form_field(typed, sizeof(typed), body, req->body_len, "public_url");
	if (found != 1)
		return render_page(s, req, resp, 400, found < 0 ? base_error_last() : "no URL given", NULL);
	if (base_url_parse(&u, typed) < 0 || base_url_format(normal, sizeof(normal), &u) < 0)
		return render_page(s, req, resp, 400, base_error_last(), typed);

	/* a new state: a page built for the previous URL cannot complete the
	 * registration, so GitHub and .env always agree on the URL */
	pthread_mutex_lock(&s->mu);
	int error = s->done ? 0 : new_state(s->state);
	if (error == 0 && !s->done)
		memcpy(s->public_url, normal, sizeof(normal));
	pthread_mutex_unlock(&s->mu);
	if (error < 0)
		return error;
	base_log(BASE_LOG_INFO, "setup: public URL entered", "public_url", normal, NULL);
	return render_page(s, req, resp, 200, NULL, NULL);
}

/* ---- callback ------------------------------------------------------------------ */

/* A page with a title and a sentence, then extra_html (trusted; may be NULL). */
static int message_page_with(base_http_response *resp, int status, const char *title, const char *text,
			     const char *extra_html)
{
	base_buf *out = &resp->body;
	base_buf_reset(out);
	out->max = PAGE_CAP;
	resp->status = status;
	page_headers(resp);
	base_buf_puts(out, page_head);
	base_buf_puts(out, "<h1>");
	html_escape(out, title);
	base_buf_puts(out, "</h1>\n<p>");
	html_escape(out, text);
	base_buf_puts(out, "</p>\n");
	if (extra_html)
		base_buf_puts(out, extra_html);
	return base_buf_puts(out, "</body></html>\n");
}

static int message_page(base_http_response *resp, int status, const char *title, const char *text)
{
	return message_page_with(resp, status, title, text, NULL);
}

/* Writes data to path atomically: a 0600 temporary file beside it, fsync,
 * rename. */
static int write_private_file(const char *path, const char *data, size_t len)
{
	char tmp[PATH_MAX];
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", path) >= sizeof(tmp))
		return base_error_set(BASE_EINVALID, "path too long: %s", path);
	int fd = mkstemp(tmp);
	if (fd < 0)
		return base_error_set(BASE_EGENERIC, "cannot create %s: %s", tmp, strerror(errno));
	int error = 0;
	if (fchmod(fd, 0600) != 0) {
		error = base_error_set(BASE_EGENERIC, "chmod %s: %s", tmp, strerror(errno));
		goto fail;
	}
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fd, data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			error = base_error_set(BASE_EGENERIC, "write %s: %s", tmp, strerror(errno));
			goto fail;
		}
		off += (size_t)n;
	}
	if (fsync(fd) != 0) {
		error = base_error_set(BASE_EGENERIC, "fsync %s: %s", tmp, strerror(errno));
		goto fail;
	}
	close(fd);
	fd = -1;
	if (rename(tmp, path) != 0) {
		error = base_error_set(BASE_EGENERIC, "rename to %s: %s", path, strerror(errno));
		goto fail;
	}
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return error;
}

/* What the callback writes to .env.  The first ENV_ALWAYS keys replace
 * their lines whatever their value (PRIVATE_KEY gives way to the key
 * file); the others only when they have a value. */
static const char *const env_keys[] = { "APP_ID", "PRIVATE_KEY_PATH", "PRIVATE_KEY", "WEBHOOK_SECRET",
					"GITHUB_CLIENT_ID", "GITHUB_CLIENT_SECRET", "PUBLIC_URL" };
#define ENV_KEYS (sizeof(env_keys) / sizeof(env_keys[0]))
#define ENV_ALWAYS 6

/* 1 when the .env line sets one of env_keys that values replaces. */
static int is_our_line(const char *line, size_t len, const char *const values[ENV_KEYS])
{
	while (len > 0 && (*line == ' ' || *line == '\t'))
		line++, len--;
	if (len >= 7 && strncmp(line, "export ", 7) == 0)
		line += 7, len -= 7;
	while (len > 0 && (*line == ' ' || *line == '\t'))
		line++, len--;
	for (size_t i = 0; i < ENV_KEYS; i++) {
		if (i >= ENV_ALWAYS && !values[i])
			continue;
		size_t k = strlen(env_keys[i]);
		if (len > k && strncmp(line, env_keys[i], k) == 0) {
			const char *p = line + k;
			while (p < line + len && (*p == ' ' || *p == '\t'))
				p++;
			if (p < line + len && *p == '=')
				return 1;
		}
	}
	return 0;
}

static int env_value(base_buf *b, const char *key, const char *value)
{
	int plain = value[0] != '\0';
	for (const char *p = value; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      strchr("_-./:+@", *p)))
			plain = 0;
	if (plain)
		return base_buf_printf(b, "%s=%s\n", key, value);
	int error = base_buf_printf(b, "%s=\"", key);
	for (const char *p = value; *p && error == 0; p++) {
		if (*p == '"' || *p == '\\' || *p == '$')
			error = base_buf_put(b, "\\", 1);
		if (error == 0)
			error = *p == '\n' ? base_buf_puts(b, "\\n") : base_buf_put(b, p, 1);
	}
	return error ? error : base_buf_puts(b, "\"\n");
}

/* Rewrites dir/.env with values, keeping every other line. */
static int write_env(const char *dir, const char *const values[ENV_KEYS])
{
	char path[PATH_MAX];
	base_buf env = BASE_BUF_INIT(ENV_CAP);
	int error = 0;
	if ((size_t)snprintf(path, sizeof(path), "%s/.env", dir) >= sizeof(path))
		return base_error_set(BASE_EINVALID, "path too long: %s", dir);
	FILE *f = fopen(path, "r");
	if (f) {
		char *line = NULL;
		size_t cap = 0;
		ssize_t n;
		while ((n = getline(&line, &cap, f)) >= 0) {
			if (is_our_line(line, (size_t)n, values))
				continue;
			if ((error = base_buf_put(&env, line, (size_t)n)) < 0)
				break;
			if (n > 0 && line[n - 1] != '\n' && (error = base_buf_puts(&env, "\n")) < 0)
				break;
		}
		free(line);
		fclose(f);
		if (error < 0) {
			error = base_error_set(error, "%s is too large", path);
			goto done;
		}
	} else if (errno != ENOENT) {
		error = base_error_set(BASE_EGENERIC, "cannot read %s: %s", path, strerror(errno));
		goto done;
	}
	for (size_t i = 0; i < ENV_KEYS; i++) {
		if (!values[i])
			continue;
		if ((error = env_value(&env, env_keys[i], values[i])) < 0) {
			error = base_error_set(error, "%s is too large", path);
			goto done;
		}
	}
	error = write_private_file(path, base_buf_cstr(&env), env.len);
done:
	if (env.ptr)
		OPENSSL_cleanse(env.ptr, env.alloc);
	base_buf_dispose(&env);
	return error;
}

static int ensure_dir(const char *dir)
{
	if (mkdir(dir, 0700) == 0 || errno == EEXIST)
		return 0;
	return base_error_set(BASE_EGENERIC, "cannot create %s: %s", dir, strerror(errno));
}

int gh_setup_handle_callback(const base_http_request *req, base_http_response *resp, void *payload)
{
	gh_setup *s = payload;
	const char *code = base_http_request_query(req, "code");
	const char *state = base_http_request_query(req, "state");
	json_t *conv = NULL;
	base_buf path = BASE_BUF_INIT(1024);
	int error = 0;

	snprintf(resp->log_outcome, sizeof(resp->log_outcome), "setup-callback");
	if (wrong_host(s, req, resp))
		return 0;
	if (!code || !code[0] || strlen(code) > 256 || strspn(code, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != strlen(code))
		return message_page(resp, 400, "Setup failed", "The callback has no valid code. Start again from the setup page.");

	size_t cookie_len = 0;
	const char *cookie = cookie_value(req, COOKIE_NAME, &cookie_len);
	pthread_mutex_lock(&s->mu);
	if (s->done) {
		pthread_mutex_unlock(&s->mu);
		return message_page(resp, 409, "Setup closed",
				    "This perfbot has registered its GitHub App already. Restart perfbot to use it.");
	}
	if (!equal_secret(cookie, cookie_len, s->session)) {
		pthread_mutex_unlock(&s->mu);
		base_log(BASE_LOG_WARN, "setup callback refused: not from the browser that opened the setup page", "peer",
			req->peer, NULL);
		return message_page(resp, 403, "Setup failed",
				    "This callback does not come from the browser that opened perfbot's setup page. "
				    "Start again from the setup page.");
	}
	if (!equal_secret(state, state ? strlen(state) : 0, s->state)) {
		pthread_mutex_unlock(&s->mu);
		base_log(BASE_LOG_WARN, "setup callback refused: state mismatch", NULL);
		return message_page(resp, 400, "Setup failed",
				    "The state does not match this perfbot's setup page. Start again from the setup page.");
	}
	/* The mutex stays held until the outcome is known: a replayed callback
	 * waits, then finds setup closed.  A failed conversion keeps the state,
	 * so the admin can retry from the same page. */

	base_buf_puts(&path, "/app-manifests/");
	base_buf_puts(&path, code);
	base_buf_puts(&path, "/conversions");
	if ((error = gh_request(s->client, GH_AUTH_NONE, "POST", base_buf_cstr(&path), NULL, &conv)) < 0) {
		pthread_mutex_unlock(&s->mu);
		base_log(BASE_LOG_ERROR, "setup: manifest conversion failed", "error", base_error_last(), NULL);
		error = message_page(resp, 502, "Setup failed", base_error_last());
		goto done;
	}
	json_int_t id = json_integer_value(json_object_get(conv, "id"));
	const char *pem = json_string_value(json_object_get(conv, "pem"));
	const char *slug = json_string_value(json_object_get(conv, "slug"));
	const char *html_url = json_string_value(json_object_get(conv, "html_url"));
	const char *secret = json_string_value(json_object_get(conv, "webhook_secret"));
	const char *client_id = json_string_value(json_object_get(conv, "client_id"));
	const char *client_secret = json_string_value(json_object_get(conv, "client_secret"));
	if (id <= 0 || !pem || !pem[0]) {
		pthread_mutex_unlock(&s->mu);
		error = message_page(resp, 502, "Setup failed", "GitHub's answer has no app id or key.");
		goto done;
	}
	/* the key is checked before anything is written */
	gh_app_key *key = NULL;
	if (gh_app_key_parse(&key, pem, strlen(pem)) < 0) {
		pthread_mutex_unlock(&s->mu);
		error = message_page(resp, 502, "Setup failed", "GitHub's answer holds a key that does not parse.");
		goto done;
	}
	gh_app_key_free(key);

	const char *data_dir = s->cfg->data_dir ? s->cfg->data_dir : "./var";
	char keypath[PATH_MAX], absdir[PATH_MAX], idtext[32];
	snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
	int werr = ensure_dir(data_dir);
	if (werr == 0 && !realpath(data_dir, absdir))
		werr = base_error_set(BASE_EGENERIC, "cannot resolve %s: %s", data_dir, strerror(errno));
	if (werr == 0 && (size_t)snprintf(keypath, sizeof(keypath), "%s/github-app-%s.pem", absdir, idtext) >= sizeof(keypath))
		werr = base_error_set(BASE_EINVALID, "DATA_DIR path too long");
	if (werr == 0)
		werr = write_private_file(keypath, pem, strlen(pem));
	if (werr == 0) {
		const char *values[ENV_KEYS] = { idtext, keypath, NULL, secret, client_id, client_secret,
						 s->public_url[0] ? s->public_url : NULL };
		werr = write_env(s->env_dir, values);
	}
	if (werr == 0) {
		s->done = 1;
		new_state(s->state);
		unlink(s->token_path); /* setup is closed: the token has no use left */
	}
	pthread_mutex_unlock(&s->mu);
	if (werr < 0) {
		base_log(BASE_LOG_ERROR, "setup: cannot save the app credentials", "error", base_error_last(), NULL);
		error = message_page(resp, 500, "Setup failed", base_error_last());
		goto done;
	}
	base_log(BASE_LOG_INFO, "setup: GitHub App registered", "app_id", idtext, "slug", slug, NULL);

	base_buf *out = &resp->body;
	base_buf_reset(out);
	out->max = PAGE_CAP;
	resp->status = 200;
	page_headers(resp);
	base_buf_puts(out, page_head);
	base_buf_puts(out, "<h1>GitHub App registered</h1>\n<p>App <b>");
	html_escape(out, slug ? slug : idtext);
	base_buf_puts(out, "</b> (id ");
	base_buf_puts(out, idtext);
	base_buf_puts(out, ") is saved in <code>.env</code>. Restart perfbot to use it.</p>\n");
	if (html_url) {
		base_buf_puts(out, "<p><a href=\"");
		html_escape(out, html_url);
		base_buf_puts(out, "/installations/new\">Install the app on your repositories</a></p>\n");
	}
	error = base_buf_puts(out, "</body></html>\n");
done:
	if (conv && json_is_string(json_object_get(conv, "pem"))) {
		json_t *pemv = json_object_get(conv, "pem");
		/* wipe the key text before jansson frees it */
		char *p = (char *)json_string_value(pemv);
		OPENSSL_cleanse(p, strlen(p));
	}
	json_decref(conv);
	base_buf_dispose(&path);
	return error;
}
