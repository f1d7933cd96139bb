/* Sign-in with GitHub (the App's OAuth web flow) and the sessions it makes.
 *
 *   GET /auth/login?next=/ui/...  a random state in a short-lived cookie,
 *                                 then GitHub's authorize page
 *   GET /auth/callback?code&state the state checked against the cookie, the
 *                                 code exchanged for the user's token, GET
 *                                 /user, a session stored, back to next
 *   POST /auth/logout             (X-CSRF-Token) the session deleted
 *
 * Invariants: session ids, states and CSRF tokens are 32 random bytes in
 * hex; the store keeps only the SHA-256 of a session id; secrets are
 * compared in constant time; the user's token and the client secret are
 * never logged nor put in an answer.  Cookies are HttpOnly, SameSite=Lax,
 * Secure when PUBLIC_URL is https. */
#include "ui/ui_int.h"
#include "base/buf.h"
#include "base/error.h"
#include "base/json.h"
#include "base/log.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define STATE_MAX_AGE_S 600

void ui_sha256_hex(char out[65], const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[32];
	unsigned int n = 0;
	if (EVP_Digest(s, len, md, &n, EVP_sha256(), NULL) != 1 || n != 32)
		memset(md, 0, sizeof(md));
	for (int i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

static int random_hex(char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char raw[32];
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return base_error_set(BASE_EGENERIC, "no random bytes");
	for (int i = 0; i < 32; i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 15];
	}
	out[64] = '\0';
	OPENSSL_cleanse(raw, sizeof(raw));
	return 0;
}

static int is_hex64(const char *s, size_t len)
{
	return len == 64 && strspn(s, "0123456789abcdef") >= 64;
}

const char *ui_cookie(const base_http_request *req, const char *name, size_t *len)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < req->nheaders; i++) {
		if (strcasecmp(req->headers[i].name, "Cookie") != 0)
			continue;
		const char *h = req->headers[i].value;
		while (h && *h) {
			h += strspn(h, " \t;");
			if (strncmp(h, name, n) == 0 && h[n] == '=') {
				const char *v = h + n + 1;
				*len = strcspn(v, ";");
				return v;
			}
			h = strchr(h, ';');
		}
	}
	return NULL;
}

int ui_local_browser(const base_http_request *req)
{
	const char *peer = req->peer ? req->peer : "";
	int loopback = strncmp(peer, "127.", 4) == 0 || strcmp(peer, "::1") == 0 || strncmp(peer, "::ffff:127.", 11) == 0;
	if (!loopback || base_http_request_header(req, "X-Forwarded-For") || base_http_request_header(req, "Forwarded") ||
	    base_http_request_header(req, "X-Real-IP"))
		return 0;
	const char *host = base_http_request_header(req, "Host");
	static const char *const names[] = { "127.0.0.1", "localhost", "[::1]" };
	for (size_t i = 0; host && i < sizeof(names) / sizeof(names[0]); i++) {
		size_t n = strlen(names[i]);
		if (strncasecmp(host, names[i], n) == 0) {
			const char *rest = host + n;
			size_t d = *rest == ':' ? strspn(rest + 1, "0123456789") : 0;
			if (*rest == '\0' || (*rest == ':' && d >= 1 && d <= 5 && rest[1 + d] == '\0'))
				return 1;
		}
	}
	return 0;
}

int ui_who_get(ui_ctx *ui, const base_http_request *req, ui_who *who)
{
	memset(who, 0, sizeof(*who));
	who->local = ui_local_browser(req);
	size_t len = 0;
	const char *id = ui_cookie(req, UI_SESSION_COOKIE, &len);
	if (!id || !is_hex64(id, len))
		return 0;
	char hash[65];
	ui_sha256_hex(hash, id, len);
	int error = store_session_get(ui->store, hash, ui_now_ms(ui), &who->s);
	if (error == BASE_ENOTFOUND)
		return 0;
	if (error < 0)
		return error;
	who->signed_in = 1;
	return 0;
}

void ui_who_dispose(ui_who *who)
{
	if (who->signed_in)
		store_session_dispose(&who->s);
	memset(who, 0, sizeof(*who));
}

int ui_csrf_ok(const ui_who *who, const base_http_request *req)
{
	const char *given = base_http_request_header(req, "X-CSRF-Token");
	if (!who->signed_in || !given || !who->s.csrf)
		return 0;
	size_t n = strlen(who->s.csrf);
	return strlen(given) == n && n > 0 && CRYPTO_memcmp(given, who->s.csrf, n) == 0;
}

/* Set-Cookie for name=value with the dashboard's attributes; max_age 0
 * deletes it. */
static int set_cookie(const ui_ctx *ui, base_http_response *resp, const char *name, const char *value, const char *path,
		      long max_age)
{
	char c[1024];
	int n = snprintf(c, sizeof(c), "%s=%s; Path=%s; Max-Age=%ld; HttpOnly; SameSite=Lax%s", name, value, path,
			 max_age, ui->secure ? "; Secure" : "");
	if (n < 0 || (size_t)n >= sizeof(c))
		return base_error_set(BASE_ETOOBIG, "cookie too long");
	return base_http_response_header(resp, "Set-Cookie", c);
}

static int redirect(base_http_response *resp, const char *to)
{
	resp->status = 302;
	base_buf_reset(&resp->body);
	return base_http_response_header(resp, "Location", to);
}

/* A same-origin path under /ui, of safe characters only; else "/ui/". */
static const char *safe_next(const char *next)
{
	if (!next || strncmp(next, "/ui", 3) != 0 || (next[3] && next[3] != '/' && next[3] != '?') ||
	    strlen(next) >= UI_NEXT_MAX || strstr(next, "//") || strstr(next, "/..") ||
	    strspn(next, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/_.-~?=&%+") != strlen(next))
		return "/ui/";
	return next;
}

static int url_escape(base_buf *b, const char *s)
{
	int error = 0;
	for (; *s && error == 0; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-._~", c))
			error = base_buf_put(b, s, 1);
		else
			error = base_buf_printf(b, "%%%02X", c);
	}
	return error;
}

/* Where GitHub sends the browser back: PUBLIC_URL, else the address the
 * browser used (a Host without odd characters). */
static int callback_url(base_buf *b, const ui_ctx *ui, const base_http_request *req)
{
	if (ui->public_url[0])
		return base_buf_printf(b, "%s/auth/callback", ui->public_url);
	const char *host = base_http_request_header(req, "Host");
	if (!host || !*host || strpbrk(host, "\"<>/\\ \t\r\n@;,"))
		return base_error_set(BASE_EINVALID, "no usable Host header and PUBLIC_URL is not set");
	return base_buf_printf(b, "http://%s/auth/callback", host);
}

static int configured(const ui_ctx *ui)
{
	return ui->cfg && ui->cfg->github_client_id && ui->cfg->github_client_secret && ui->gh.exchange;
}

static int handle_login(ui_ctx *ui, const base_http_request *req, base_http_response *resp)
{
	int error = 0;
	char state[65];
	base_buf loc = BASE_BUF_INIT(8192), cb = BASE_BUF_INIT(2048), cookie = BASE_BUF_INIT(1024);
	if (!configured(ui)) {
		error = ui_error(resp, 503, "sign-in with GitHub is not configured: GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET "
					    "are not set (the App's setup writes them to .env)");
		goto done;
	}
	if ((error = random_hex(state)) < 0)
		goto done;
	if (callback_url(&cb, ui, req) < 0) {
		error = ui_error(resp, 400, base_error_last());
		goto done;
	}
	if ((error = base_buf_printf(&loc, "%s/login/oauth/authorize?client_id=", ui->web_url)) < 0 ||
	    (error = url_escape(&loc, ui->cfg->github_client_id)) < 0 ||
	    (error = base_buf_puts(&loc, "&redirect_uri=")) < 0 || (error = url_escape(&loc, base_buf_cstr(&cb))) < 0 ||
	    (error = base_buf_printf(&loc, "&state=%s", state)) < 0 ||
	    (error = base_buf_printf(&cookie, "%s|%s", state, safe_next(base_http_request_query(req, "next")))) < 0)
		goto done;
	if ((error = set_cookie(ui, resp, UI_STATE_COOKIE, base_buf_cstr(&cookie), "/auth", STATE_MAX_AGE_S)) < 0)
		goto done;
	error = redirect(resp, base_buf_cstr(&loc));
done:
	OPENSSL_cleanse(state, sizeof(state));
	base_buf_dispose(&loc);
	base_buf_dispose(&cb);
	base_buf_dispose(&cookie);
	return error;
}

static int handle_callback(ui_ctx *ui, const base_http_request *req, base_http_response *resp)
{
	int error = 0;
	char *token = NULL;
	json_t *user = NULL;
	char id[65] = "", next[UI_NEXT_MAX] = "/ui/";
	store_session s = { 0 };
	base_buf cb = BASE_BUF_INIT(2048);
	size_t clen = 0;
	const char *cookie = ui_cookie(req, UI_STATE_COOKIE, &clen);
	const char *state = base_http_request_query(req, "state");
	const char *code = base_http_request_query(req, "code");
	if (!configured(ui)) {
		error = ui_error(resp, 503, "sign-in with GitHub is not configured");
		goto done;
	}
	if (!cookie || clen < 65 || cookie[64] != '|' || !state || strlen(state) != 64 ||
	    CRYPTO_memcmp(cookie, state, 64) != 0) {
		error = ui_error(resp, 400, "this sign-in did not start here or has expired: sign in again");
		goto done;
	}
	char asked[UI_NEXT_MAX];
	snprintf(asked, sizeof(asked), "%.*s", (int)(clen - 65 < sizeof(asked) - 1 ? clen - 65 : sizeof(asked) - 1),
		 cookie + 65);
	snprintf(next, sizeof(next), "%s", safe_next(asked));
	set_cookie(ui, resp, UI_STATE_COOKIE, "", "/auth", 0);
	if (!code || !*code || strlen(code) > 256) {
		/* the user said no on GitHub's page */
		error = redirect(resp, "/ui/");
		goto done;
	}
	if ((error = callback_url(&cb, ui, req)) < 0) {
		error = ui_error(resp, 400, base_error_last());
		goto done;
	}
	if ((error = ui->gh.exchange(ui->gh.payload, code, base_buf_cstr(&cb), &token)) < 0 ||
	    (error = ui->gh.user(ui->gh.payload, token, &user)) < 0) {
		base_log(BASE_LOG_WARN, "dashboard sign-in failed", "error", base_error_last(), NULL);
		error = ui_error(resp, error == BASE_EAUTH ? 403 : 502, "GitHub did not accept this sign-in: sign in again");
		goto done;
	}
	const char *login = base_json_str(user, "login");
	if (!login || !*login || strlen(login) > 100) {
		error = ui_error(resp, 502, "GitHub did not say who signed in");
		goto done;
	}
	char hash[65], csrf[65];
	if ((error = random_hex(id)) < 0 || (error = random_hex(csrf)) < 0)
		goto done;
	ui_sha256_hex(hash, id, 64);
	int64_t now = ui_now_ms(ui);
	s = (store_session){ .id_hash = hash, .login = (char *)login, .user_id = base_json_int(user, "id"),
			     .avatar_url = (char *)base_json_str(user, "avatar_url"), .token = token, .csrf = csrf,
			     .created_ms = now, .expires_ms = now + ui->session_ttl_ms };
	if ((error = store_session_put(ui->store, &s)) < 0)
		goto done;
	if ((error = set_cookie(ui, resp, UI_SESSION_COOKIE, id, "/", (long)(ui->session_ttl_ms / 1000))) < 0)
		goto done;
	base_log(BASE_LOG_INFO, "dashboard sign-in", "user", login, NULL);
	store_audit(ui->store, login, "sign-in", "dashboard", NULL);
	error = redirect(resp, next);
done:
	if (token) {
		OPENSSL_cleanse(token, strlen(token));
		free(token);
	}
	OPENSSL_cleanse(id, sizeof(id));
	json_decref(user);
	base_buf_dispose(&cb);
	return error;
}

static int handle_logout(ui_ctx *ui, const base_http_request *req, base_http_response *resp)
{
	ui_who who;
	int error = ui_who_get(ui, req, &who);
	if (error < 0)
		return error;
	if (who.signed_in && !ui_csrf_ok(&who, req)) {
		error = ui_error(resp, 403, "missing or wrong CSRF token");
		goto done;
	}
	if (who.signed_in) {
		if ((error = store_session_delete(ui->store, who.s.id_hash)) < 0)
			goto done;
		ui_access_forget(ui, who.s.id_hash);
		store_audit(ui->store, who.s.login, "sign-out", "dashboard", NULL);
	}
	if ((error = set_cookie(ui, resp, UI_SESSION_COOKIE, "", "/", 0)) < 0)
		goto done;
	error = redirect(resp, "/ui/");
done:
	ui_who_dispose(&who);
	return error;
}

int ui_auth_handle(ui_ctx *ui, const base_http_request *req, base_http_response *resp)
{
	int get = !strcmp(req->method, "GET") || !strcmp(req->method, "HEAD");
	if (!strcmp(req->path, "/auth/login") && get)
		return handle_login(ui, req, resp);
	if (!strcmp(req->path, "/auth/callback") && get)
		return handle_callback(ui, req, resp);
	if (!strcmp(req->path, "/auth/logout") && !strcmp(req->method, "POST"))
		return handle_logout(ui, req, resp);
	if (!strcmp(req->path, "/auth/login") || !strcmp(req->path, "/auth/callback") || !strcmp(req->path, "/auth/logout"))
		return ui_error(resp, 405, "method not allowed");
	return ui_error(resp, 404, "not found");
}
