/* The OAuth web flow's code exchange (the dashboard's sign-in): one POST to
 * GitHub's web host, not its API, so it does not go through the REST
 * client.  The client secret and the token cross only this file's buffers,
 * which are wiped; errors carry GitHub's error description, never the
 * secret or the code.  Any thread: each call uses its own curl handle. */
#include "base/buf.h"
#include "base/curl_pool.h"
#include "base/error.h"
#include "github/github.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#define ANSWER_CAP (64u << 10)

/* Appends name=value (form-encoded) to b. */
static int form_add(base_buf *b, CURL *h, const char *name, const char *value)
{
	char *esc = curl_easy_escape(h, value, 0);
	if (!esc)
		return base_error_set(BASE_ENOMEM, "out of memory");
	int error = base_buf_printf(b, "%s%s=%s", b->len ? "&" : "", name, esc);
	OPENSSL_cleanse(esc, strlen(esc));
	curl_free(esc);
	return error;
}

int gh_oauth_exchange(char **token_out, const char *web_url, const char *client_id, const char *client_secret,
		      const char *code, const char *redirect_uri)
{
	int error = 0;
	base_buf form = BASE_BUF_INIT(16384), url = BASE_BUF_INIT(4096), answer = BASE_BUF_INIT(ANSWER_CAP);
	struct curl_slist *hdrs = NULL;
	json_t *root = NULL;
	base_curl_pool pool;
	base_curl_pool_init(&pool, 1); /* libcurl's one-time init */
	CURL *h = base_curl_pool_get(&pool);
	*token_out = NULL;
	if (!h) {
		error = base_error_set(BASE_ENOMEM, "cannot create a curl handle");
		goto done;
	}
	if (!web_url || !client_id || !client_secret || !code) {
		error = base_error_set(BASE_EINVALID, "GitHub sign-in needs GITHUB_CLIENT_ID, GITHUB_CLIENT_SECRET and a code");
		goto done;
	}
	if ((error = base_buf_printf(&url, "%s/login/oauth/access_token", web_url)) < 0 ||
	    (error = form_add(&form, h, "client_id", client_id)) < 0 ||
	    (error = form_add(&form, h, "client_secret", client_secret)) < 0 ||
	    (error = form_add(&form, h, "code", code)) < 0 ||
	    (redirect_uri && (error = form_add(&form, h, "redirect_uri", redirect_uri)) < 0))
		goto done;
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	hdrs = curl_slist_append(hdrs, "User-Agent: perfbot/" PERFBOT_VERSION);
	curl_easy_setopt(h, CURLOPT_URL, base_buf_cstr(&url));
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, base_buf_cstr(&form));
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)form.len);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, base_curl_write_buf);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &answer);
	CURLcode cc = curl_easy_perform(h);
	long status = 0;
	if (cc != CURLE_OK) {
		error = base_error_set(cc == CURLE_OPERATION_TIMEDOUT ? BASE_ETIMEOUT : BASE_ERETRY,
				       "GitHub sign-in: POST /login/oauth/access_token: %s", curl_easy_strerror(cc));
		goto done;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	root = answer.len ? json_loadb(answer.ptr, answer.len, 0, NULL) : NULL;
	const char *token = json_string_value(json_object_get(root, "access_token"));
	if (status >= 500) {
		error = base_error_set(BASE_ERETRY, "GitHub sign-in: POST /login/oauth/access_token: HTTP %ld", status);
	} else if (status != 200 || !token || !token[0]) {
		/* GitHub answers 200 with {"error", "error_description"} */
		const char *why = json_string_value(json_object_get(root, "error_description"));
		const char *err = json_string_value(json_object_get(root, "error"));
		error = base_error_set(BASE_EAUTH, "GitHub sign-in refused the code: %.200s",
				       why ? why : err ? err : "no access token in the answer");
	} else if (!(*token_out = strdup(token))) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
	}
done:
	if (h)
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdrs);
	base_curl_pool_put(&pool, h);
	base_curl_pool_dispose(&pool);
	if (form.ptr)
		OPENSSL_cleanse(form.ptr, form.alloc);
	if (answer.ptr)
		OPENSSL_cleanse(answer.ptr, answer.alloc);
	base_buf_dispose(&form);
	base_buf_dispose(&url);
	base_buf_dispose(&answer);
	json_decref(root); /* its copy of the token is freed with it */
	return error;
}
