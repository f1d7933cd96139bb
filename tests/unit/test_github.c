/* Unit tests of github/: App key formats and JWT claims, the
 * installation-token cache (expiry, one refresh for concurrent callers),
 * Link header parsing and the rate-limit wait decision.  Test RSA keys are
 * generated with openssl at start. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jwt.h>
#include <openssl/evp.h>

#include "base/config.h"
#include "base/error.h"
#include "github/github.h"
#include "github/token_cache.h"

static char dir[256];
static char *pkcs1, *pkcs8, *pub;

static char *slurp(const char *name)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = calloc(1, 65536);
	size_t n = fread(buf, 1, 65535, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static int setup_keys(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/perfbot-test-github-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	char cmd[2048];
	snprintf(cmd, sizeof(cmd),
		 "cd %s && openssl genrsa -traditional -out k1.pem 2048 2>/dev/null && "
		 "openssl pkcs8 -topk8 -nocrypt -in k1.pem -out k8.pem && "
		 "openssl rsa -in k1.pem -pubout -out pub.pem 2>/dev/null && "
		 "openssl ecparam -name prime256v1 -genkey -noout -out ec.pem",
		 dir);
	if (system(cmd) != 0)
		return -1;
	pkcs1 = slurp("k1.pem");
	pkcs8 = slurp("k8.pem");
	pub = slurp("pub.pem");
	return pkcs1 && pkcs8 && pub ? 0 : -1;
}

static int teardown_keys(void **state)
{
	(void)state;
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		return -1;
	free(pkcs1);
	free(pkcs8);
	free(pub);
	return 0;
}

/* Signs a JWT with key and checks its claims with the public key. */
static void check_jwt(const gh_app_key *key)
{
	char *token = NULL;
	time_t now = time(NULL);
	assert_int_equal(gh_app_jwt(&token, key, "4242", now), 0);
	jwt_t *jwt = NULL;
	assert_int_equal(jwt_decode(&jwt, token, (const unsigned char *)pub, (int)strlen(pub)), 0);
	assert_int_equal(jwt_get_alg(jwt), JWT_ALG_RS256);
	assert_int_equal(jwt_get_grant_int(jwt, "iat"), (long)now - 60);
	assert_int_equal(jwt_get_grant_int(jwt, "exp"), (long)now + 540);
	assert_string_equal(jwt_get_grant(jwt, "iss"), "4242");
	jwt_free(jwt);
	/* a tampered payload does not verify */
	char *dot = strchr(token, '.');
	dot[1] = dot[1] == 'e' ? 'f' : 'e';
	jwt = NULL;
	assert_int_not_equal(jwt_decode(&jwt, token, (const unsigned char *)pub, (int)strlen(pub)), 0);
	jwt_free(jwt);
	free(token);
}

static void test_key_pkcs1_and_pkcs8(void **state)
{
	(void)state;
	gh_app_key *k = NULL;
	assert_int_equal(gh_app_key_parse(&k, pkcs1, strlen(pkcs1)), 0);
	check_jwt(k);
	gh_app_key_free(k);
	assert_int_equal(gh_app_key_parse(&k, pkcs8, strlen(pkcs8)), 0);
	check_jwt(k);
	gh_app_key_free(k);
}

static void test_key_literal_newlines(void **state)
{
	(void)state;
	/* "-----BEGIN ...-----\nMIIE...\n..." with backslash-n, on one line */
	size_t n = strlen(pkcs1);
	char *flat = calloc(1, 2 * n + 1);
	size_t j = 0;
	for (size_t i = 0; i < n; i++) {
		if (pkcs1[i] == '\n') {
			flat[j++] = '\\';
			flat[j++] = 'n';
		} else {
			flat[j++] = pkcs1[i];
		}
	}
	assert_null(strchr(flat, '\n'));
	base_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.private_key = flat;
	gh_app_key *k = NULL;
	assert_int_equal(gh_app_key_load(&k, &cfg), 0);
	check_jwt(k);
	gh_app_key_free(k);
	free(flat);
}

static void test_key_base64(void **state)
{
	(void)state;
	size_t n = strlen(pkcs8);
	char *b64 = calloc(1, n * 2 + 8);
	EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)pkcs8, (int)n);
	base_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.private_key = b64;
	gh_app_key *k = NULL;
	assert_int_equal(gh_app_key_load(&k, &cfg), 0);
	check_jwt(k);
	gh_app_key_free(k);
	free(b64);
}

static void test_key_path(void **state)
{
	(void)state;
	char path[512];
	snprintf(path, sizeof(path), "%s/k1.pem", dir);
	base_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.private_key_path = path;
	gh_app_key *k = NULL;
	assert_int_equal(gh_app_key_load(&k, &cfg), 0);
	check_jwt(k);
	gh_app_key_free(k);

	snprintf(path, sizeof(path), "%s/missing.pem", dir);
	assert_int_equal(gh_app_key_load(&k, &cfg), BASE_ENOTFOUND);
	assert_non_null(strstr(base_error_last(), "PRIVATE_KEY_PATH"));

	memset(&cfg, 0, sizeof(cfg));
	assert_int_equal(gh_app_key_load(&k, &cfg), BASE_ENOTFOUND);
	assert_null(k);
}

static void test_key_garbage_not_echoed(void **state)
{
	(void)state;
	gh_app_key *k = NULL;
	base_config cfg;
	memset(&cfg, 0, sizeof(cfg));

	/* a PEM whose body is damaged */
	char *bad = strdup(pkcs1);
	char *body = strstr(bad, "\n") + 1;
	memcpy(body + 40, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 40);
	cfg.private_key = bad;
	assert_int_equal(gh_app_key_load(&k, &cfg), BASE_EINVALID);
	assert_null(k);
	assert_non_null(strstr(base_error_last(), "PRIVATE_KEY"));
	char probe[17];
	memcpy(probe, body, 16);
	probe[16] = '\0';
	assert_null(strstr(base_error_last(), probe));
	assert_null(strstr(base_error_last(), "BEGIN"));
	free(bad);

	/* plain garbage */
	cfg.private_key = "hunter2-super-secret-value";
	assert_int_equal(gh_app_key_load(&k, &cfg), BASE_EINVALID);
	assert_null(strstr(base_error_last(), "hunter2"));

	/* base64 of something that is not a key */
	cfg.private_key = "c2VjcmV0LXRoaW5nLW5vdC1hLWtleQ==";
	assert_int_equal(gh_app_key_load(&k, &cfg), BASE_EINVALID);
	assert_null(strstr(base_error_last(), "c2VjcmV0"));

	/* not RSA */
	char *ec = slurp("ec.pem");
	assert_int_equal(gh_app_key_parse(&k, ec, strlen(ec)), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "RSA"));
	free(ec);
}

static void test_jwt_needs_app_id(void **state)
{
	(void)state;
	gh_app_key *k = NULL;
	char *token = NULL;
	assert_int_equal(gh_app_key_parse(&k, pkcs1, strlen(pkcs1)), 0);
	assert_int_equal(gh_app_jwt(&token, k, NULL, time(NULL)), BASE_EAUTH);
	assert_null(token);
	gh_app_key_free(k);
	assert_int_equal(gh_app_jwt(&token, NULL, "1", time(NULL)), BASE_EAUTH);
}

/* ---- token cache ------------------------------------------------------------------ */

typedef struct fetcher {
	pthread_mutex_t mu;
	int calls;
	int64_t lifetime;   /* s */
	int64_t now;        /* the fake clock the expiry is computed against */
	int sleep_ms;
	int fail;
} fetcher;

static int fake_fetch(char **token_out, int64_t *expires_out, int64_t id, void *payload)
{
	fetcher *f = payload;
	pthread_mutex_lock(&f->mu);
	int n = ++f->calls;
	pthread_mutex_unlock(&f->mu);
	if (f->sleep_ms)
		usleep((useconds_t)f->sleep_ms * 1000);
	if (f->fail)
		return base_error_set(BASE_ERETRY, "fetch failed");
	char buf[64];
	snprintf(buf, sizeof(buf), "tok-%lld-%d", (long long)id, n);
	*token_out = strdup(buf);
	*expires_out = f->now + f->lifetime;
	return 0;
}

static void test_token_cache_expiry(void **state)
{
	(void)state;
	gh_token_cache *tc = NULL;
	fetcher f = { PTHREAD_MUTEX_INITIALIZER, 0, 3600, 1000000, 0, 0 };
	char *t = NULL;
	assert_int_equal(gh_token_cache_new(&tc, 300), 0);

	assert_int_equal(gh_token_cache_get(tc, 7, f.now, fake_fetch, &f, &t), 0);
	assert_string_equal(t, "tok-7-1");
	free(t);
	/* reused while more than the margin is left */
	assert_int_equal(gh_token_cache_get(tc, 7, f.now + 3299, fake_fetch, &f, &t), 0);
	assert_string_equal(t, "tok-7-1");
	free(t);
	assert_int_equal(f.calls, 1);
	/* another installation has its own token */
	assert_int_equal(gh_token_cache_get(tc, 8, f.now, fake_fetch, &f, &t), 0);
	assert_string_equal(t, "tok-8-2");
	free(t);
	/* within the margin: refreshed */
	assert_int_equal(gh_token_cache_get(tc, 7, f.now + 3300, fake_fetch, &f, &t), 0);
	assert_string_equal(t, "tok-7-3");
	free(t);
	/* dropping a token that is not the cached one keeps the cached one */
	gh_token_cache_drop(tc, 7, "tok-7-1");
	assert_int_equal(gh_token_cache_get(tc, 7, f.now, fake_fetch, &f, &t), 0);
	assert_string_equal(t, "tok-7-3");
	gh_token_cache_drop(tc, 7, t);
	free(t);
	assert_int_equal(gh_token_cache_get(tc, 7, f.now, fake_fetch, &f, &t), 0);
	assert_string_equal(t, "tok-7-4");
	free(t);
	/* a token issued already inside the margin is used once, then refreshed */
	f.lifetime = 60;
	gh_token_cache_drop(tc, 7, NULL);
	assert_int_equal(gh_token_cache_get(tc, 7, f.now, fake_fetch, &f, &t), 0);
	free(t);
	assert_int_equal(gh_token_cache_get(tc, 7, f.now, fake_fetch, &f, &t), 0);
	free(t);
	assert_int_equal(f.calls, 6);
	/* failures come back unchanged and leave nothing cached */
	f.fail = 1;
	gh_token_cache_drop(tc, 7, NULL);
	assert_int_equal(gh_token_cache_get(tc, 7, f.now, fake_fetch, &f, &t), BASE_ERETRY);
	assert_null(t);
	gh_token_cache_free(tc);
}

typedef struct worker_arg {
	gh_token_cache *tc;
	fetcher *f;
	int64_t id;
	char *token;
	int rc;
} worker_arg;

static void *worker(void *p)
{
	worker_arg *a = p;
	a->rc = gh_token_cache_get(a->tc, a->id, a->f->now, fake_fetch, a->f, &a->token);
	return NULL;
}

static void test_token_cache_concurrent_refresh(void **state)
{
	(void)state;
	enum { N = 16 };
	gh_token_cache *tc = NULL;
	fetcher f = { PTHREAD_MUTEX_INITIALIZER, 0, 3600, 1000000, 100, 0 };
	pthread_t th[N];
	worker_arg args[N];
	assert_int_equal(gh_token_cache_new(&tc, 300), 0);
	for (int i = 0; i < N; i++) {
		args[i] = (worker_arg){ tc, &f, i % 2 ? 11 : 12, NULL, -99 };
		assert_int_equal(pthread_create(&th[i], NULL, worker, &args[i]), 0);
	}
	for (int i = 0; i < N; i++)
		pthread_join(th[i], NULL);
	/* one exchange per installation, every caller got that token */
	assert_int_equal(f.calls, 2);
	for (int i = 0; i < N; i++) {
		assert_int_equal(args[i].rc, 0);
		assert_non_null(args[i].token);
		assert_non_null(strstr(args[i].token, i % 2 ? "tok-11-" : "tok-12-"));
		assert_string_equal(args[i].token, args[i % 2].token);
	}
	for (int i = 0; i < N; i++)
		free(args[i].token);

	/* a failing exchange: the callers waiting for it get its error, and
	 * GitHub is not asked again by each of them in turn */
	gh_token_cache_drop(tc, 11, NULL);
	gh_token_cache_drop(tc, 12, NULL);
	f.calls = 0;
	f.fail = 1;
	for (int i = 0; i < N; i++) {
		args[i] = (worker_arg){ tc, &f, 11, NULL, -99 };
		assert_int_equal(pthread_create(&th[i], NULL, worker, &args[i]), 0);
	}
	for (int i = 0; i < N; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < N; i++) {
		assert_int_equal(args[i].rc, BASE_ERETRY);
		assert_null(args[i].token);
	}
	assert_true(f.calls < N / 2); /* one per wave of callers, not one each */
	gh_token_cache_free(tc);
}

/* ---- Link ----------------------------------------------------------------------- */

static void test_link_next(void **state)
{
	(void)state;
	char *next = NULL;
	assert_int_equal(gh_link_next(&next,
				      "<https://api.github.com/installation/repositories?page=2&per_page=100>; rel=\"next\", "
				      "<https://api.github.com/installation/repositories?page=5&per_page=100>; rel=\"last\""),
			 0);
	assert_string_equal(next, "https://api.github.com/installation/repositories?page=2&per_page=100");
	free(next);

	/* next not first, other params, unquoted rel */
	assert_int_equal(gh_link_next(&next, "<https://x/a?page=1>; rel=\"prev\", <https://x/a?page=3>; type=\"text\"; rel=next"), 0);
	assert_string_equal(next, "https://x/a?page=3");
	free(next);

	/* several rel values */
	assert_int_equal(gh_link_next(&next, "<https://x/b?cursor=abc>; rel=\"last next\""), 0);
	assert_string_equal(next, "https://x/b?cursor=abc");
	free(next);

	/* commas inside the URL */
	assert_int_equal(gh_link_next(&next, "<https://x/c?q=a,b>; rel=\"next\""), 0);
	assert_string_equal(next, "https://x/c?q=a,b");
	free(next);

	/* last page: no next */
	assert_int_equal(gh_link_next(&next, "<https://x/a?page=1>; rel=\"first\", <https://x/a?page=2>; rel=\"prev\""), 0);
	assert_null(next);
	assert_int_equal(gh_link_next(&next, NULL), 0);
	assert_null(next);
	assert_int_equal(gh_link_next(&next, ""), 0);
	assert_null(next);
	/* "nextish" is not next */
	assert_int_equal(gh_link_next(&next, "<https://x/a>; rel=\"nextish\""), 0);
	assert_null(next);

	/* malformed */
	assert_int_equal(gh_link_next(&next, "https://x/a; rel=\"next\""), BASE_EINVALID);
	assert_int_equal(gh_link_next(&next, "<https://x/a; rel=\"next\""), BASE_EINVALID);
	assert_int_equal(gh_link_next(&next, "<https://x/a>; rel=\"next"), BASE_EINVALID);
	assert_null(next);
}

/* ---- rate limit decision -------------------------------------------------------- */

static void test_rate_wait(void **state)
{
	(void)state;
	gh_rate_kind kind;
	const int64_t now = 1700000000;
	gh_rate_info in;

	/* a success or other error is never a rate limit, whatever the headers */
	in = (gh_rate_info){ .status = 200, .has_remaining = 1, .remaining = 0, .has_reset = 1, .reset = now + 50 };
	assert_int_equal(gh_rate_wait_ms(&in, now, 0, 60000, &kind), 0);
	assert_int_equal(kind, GH_RATE_NONE);
	in.status = 500;
	assert_int_equal(gh_rate_wait_ms(&in, now, 0, 60000, &kind), 0);
	assert_int_equal(kind, GH_RATE_NONE);

	/* primary: 403 + remaining 0 + reset: until the reset (plus a second) */
	in.status = 403;
	assert_int_equal(gh_rate_wait_ms(&in, now, 0, 60000, &kind), 51000);
	assert_int_equal(kind, GH_RATE_PRIMARY);
	in.status = 429;
	assert_int_equal(gh_rate_wait_ms(&in, now, 0, 60000, &kind), 51000);
	assert_int_equal(kind, GH_RATE_PRIMARY);
	/* reset already past: a second */
	in.reset = now - 10;
	assert_int_equal(gh_rate_wait_ms(&in, now, 0, 60000, &kind), 1000);
	assert_int_equal(kind, GH_RATE_PRIMARY);
	/* remaining 0 without reset: the secondary base */
	in = (gh_rate_info){ .status = 403, .has_remaining = 1, .remaining = 0 };
	assert_int_equal(gh_rate_wait_ms(&in, now, 0, 60000, &kind), 60000);
	assert_int_equal(kind, GH_RATE_PRIMARY);

	/* retry-after wins over everything (secondary) */
	in = (gh_rate_info){ .status = 403, .has_retry_after = 1, .retry_after_s = 7, .has_remaining = 1,
			     .remaining = 0, .has_reset = 1, .reset = now + 500 };
	assert_int_equal(gh_rate_wait_ms(&in, now, 3, 60000, &kind), 7000);
	assert_int_equal(kind, GH_RATE_SECONDARY);
	/* absurd header values are capped at a day */
	in = (gh_rate_info){ .status = 429, .has_retry_after = 1, .retry_after_s = 9000000000000000000L };
	assert_int_equal(gh_rate_wait_ms(&in, now, 0, 60000, &kind), 86400L * 1000);
	in = (gh_rate_info){ .status = 403, .has_remaining = 1, .remaining = 0, .has_reset = 1, .reset = INT64_MAX };
	assert_int_equal(gh_rate_wait_ms(&in, now, 0, 60000, &kind), 86400L * 1000 + 1000);
	in = (gh_rate_info){ .status = 429, .has_retry_after = 1, .retry_after_s = 0 };
	assert_int_equal(gh_rate_wait_ms(&in, now, 0, 60000, &kind), 0);
	assert_int_equal(kind, GH_RATE_SECONDARY);

	/* secondary without retry-after: 60 s, growing, capped */
	in = (gh_rate_info){ .status = 403, .has_remaining = 1, .remaining = 4000, .says_rate_limit = 1 };
	assert_int_equal(gh_rate_wait_ms(&in, now, 0, 60000, &kind), 60000);
	assert_int_equal(kind, GH_RATE_SECONDARY);
	assert_int_equal(gh_rate_wait_ms(&in, now, 1, 60000, &kind), 120000);
	assert_int_equal(gh_rate_wait_ms(&in, now, 2, 60000, &kind), 240000);
	assert_int_equal(gh_rate_wait_ms(&in, now, 30, 60000, &kind), 15 * 60 * 1000);
	in = (gh_rate_info){ .status = 429 };
	assert_int_equal(gh_rate_wait_ms(&in, now, 0, 60000, &kind), 60000);
	assert_int_equal(kind, GH_RATE_SECONDARY);

	/* a plain 403 (permissions) with budget left is not a rate limit */
	in = (gh_rate_info){ .status = 403, .has_remaining = 1, .remaining = 4000, .has_reset = 1, .reset = now + 10 };
	assert_int_equal(gh_rate_wait_ms(&in, now, 0, 60000, &kind), 0);
	assert_int_equal(kind, GH_RATE_NONE);
	in = (gh_rate_info){ .status = 403 };
	assert_int_equal(gh_rate_wait_ms(&in, now, 0, 60000, &kind), 0);
	assert_int_equal(kind, GH_RATE_NONE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_pkcs1_and_pkcs8),
		cmocka_unit_test(test_key_literal_newlines),
		cmocka_unit_test(test_key_base64),
		cmocka_unit_test(test_key_path),
		cmocka_unit_test(test_key_garbage_not_echoed),
		cmocka_unit_test(test_jwt_needs_app_id),
		cmocka_unit_test(test_token_cache_expiry),
		cmocka_unit_test(test_token_cache_concurrent_refresh),
		cmocka_unit_test(test_link_next),
		cmocka_unit_test(test_rate_wait),
	};
	return cmocka_run_group_tests(tests, setup_keys, teardown_keys);
}
