/* Integration scenarios of the GitHub client against the fake GitHub
 * (tests/fake-github/server.js, started here with node): token exchange and
 * reuse, retries, rate limits, timeouts, pagination, typed calls, missed
 * deliveries and the manifest flow.  The fake is driven through its
 * /_fake/ control endpoints. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "base/clock.h"
#include "base/config.h"
#include "base/error.h"
#include "base/http.h"
#include "base/log.h"
#include "github/github.h"
#include "github/setup.h"
#include "tests/unit/support/fake_server.h"

static char dir[256];
static char keypath[512], pubpath[512];
static char fake_url[128];
static pid_t fake_pid;
static base_config cfg;

/* ---- fake control -------------------------------------------------------------- */

/* POST (body non-NULL) or GET /_fake/<name>; the answer (owned). */
static json_t *fake(const char *name, const char *body)
{
	return fake_server_call(fake_url, name, body);
}

static void fake_do(const char *name, const char *body)
{
	json_decref(fake(name, body));
}

/* Requests recorded by the fake whose path starts with prefix (and method
 * matches when non-NULL). */
static int count_requests(const char *method, const char *prefix)
{
	json_t *all = fake("requests", NULL);
	size_t i;
	json_t *r;
	int n = 0;
	json_array_foreach(all, i, r) {
		const char *p = json_string_value(json_object_get(r, "path"));
		const char *m = json_string_value(json_object_get(r, "method"));
		if (p && strncmp(p, prefix, strlen(prefix)) == 0 && (!method || strcmp(m, method) == 0))
			n++;
	}
	json_decref(all);
	return n;
}

static json_t *last_request(void)
{
	json_t *all = fake("requests", NULL);
	json_t *r = json_incref(json_array_get(all, json_array_size(all) - 1));
	json_decref(all);
	return r;
}

static long long tokens_issued(void)
{
	json_t *st = fake("state", NULL);
	long long n = json_integer_value(json_object_get(st, "tokensIssued"));
	json_decref(st);
	return n;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- setup / teardown ------------------------------------------------------------ */

static int start_fake(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/perfbot-test-ghlive-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(keypath, sizeof(keypath), "%s/app.pem", dir);
	snprintf(pubpath, sizeof(pubpath), "%s/pub.pem", dir);
	char cmd[2048];
	snprintf(cmd, sizeof(cmd),
		 "openssl genrsa -traditional -out %s 2048 2>/dev/null && openssl rsa -in %s -pubout -out %s 2>/dev/null",
		 keypath, keypath, pubpath);
	if (system(cmd) != 0)
		return -1;
	char *const argv[] = {
		"node", "tests/fake-github/server.js", "--port", "0", "--app-id", "4242", "--public-key", pubpath,
		"--private-key", keypath, "--installation", "1:octo-org/demo", "--installation", "2:other-org/secret",
		NULL,
	};
	if (fake_server_start(&fake_pid, argv, fake_url, sizeof(fake_url), NULL, 0) < 0)
		return -1;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	base_log_configure(BASE_LOG_WARN, 0, 2);

	memset(&cfg, 0, sizeof(cfg));
	cfg.app_id = "4242";
	cfg.private_key_path = keypath;
	cfg.github_api_url = fake_url;
	cfg.webhook_path = "/api/github/webhooks";
	return 0;
}

static int stop_fake(void **state)
{
	(void)state;
	fake_server_stop(fake_pid);
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* The clients' clock: waits (backoff, Retry-After, rate-limit resets) return
 * at once and move time on by what they would have slept.  The fake GitHub
 * keeps real time, so a test whose limit must pass while the client "sleeps"
 * sets clear_faults_on_sleep. */
typedef struct fake_clock {
	int64_t wall, mono; /* ms */
	int64_t slept;      /* ms waited since the test last reset it */
	int clear_faults_on_sleep;
} fake_clock;

static fake_clock clk;

static int64_t clk_wall(void *payload)
{
	return ((fake_clock *)payload)->wall;
}

static int64_t clk_mono(void *payload)
{
	return ((fake_clock *)payload)->mono;
}

static void clk_sleep(void *payload, int64_t ms)
{
	fake_clock *f = payload;
	f->wall += ms;
	f->mono += ms;
	f->slept += ms;
	if (f->clear_faults_on_sleep)
		fake_do("clearFaults", "{}");
}

static const base_clock fake_clock_ops = { clk_wall, clk_mono, clk_sleep, &clk };

/* A client on the fake clock, its wall set to now (the fake GitHub's
 * rate-limit resets are real epoch seconds). */
static gh_client *new_client(long max_wait_ms)
{
	clk.wall = base_wall_ms();
	clk.clear_faults_on_sleep = 0;
	gh_options o = GH_OPTIONS_INIT;
	o.clock = &fake_clock_ops;
	o.backoff_ms = 50;
	o.timeout_ms = 3000;
	o.connect_timeout_ms = 2000;
	o.max_retries = 3;
	o.max_wait_ms = max_wait_ms;
	o.secondary_wait_ms = 1000;
	gh_client *c = NULL;
	assert_int_equal(gh_client_new(&c, &cfg, &o), 0);
	return c;
}

/* ---- scenarios ------------------------------------------------------------------ */

static void test_token_exchange_and_reuse(void **state)
{
	(void)state;
	gh_client *c = new_client(5000);
	fake_do("resetRequests", "{}");
	long long before = tokens_issued();
	char *t1 = NULL, *t2 = NULL;
	assert_int_equal(gh_installation_token(c, 1, &t1), 0);
	assert_int_equal(gh_installation_token(c, 1, &t2), 0);
	assert_string_equal(t1, t2);
	assert_int_equal(tokens_issued(), before + 1);

	/* the exchange used the App JWT with GitHub's headers */
	json_t *r = last_request();
	assert_string_equal(json_string_value(json_object_get(r, "path")), "/app/installations/1/access_tokens");
	assert_string_equal(json_string_value(json_object_get(r, "auth")), "app");
	json_t *h = json_object_get(r, "headers");
	assert_string_equal(json_string_value(json_object_get(h, "accept")), "application/vnd.github+json");
	assert_string_equal(json_string_value(json_object_get(h, "x-github-api-version")), "2022-11-28");
	assert_non_null(strstr(json_string_value(json_object_get(h, "user-agent")), "perfbot/"));
	json_decref(r);

	/* REST calls use the cached token */
	json_t *repo = NULL;
	assert_int_equal(gh_get_repo(c, 1, "octo-org", "demo", &repo), 0);
	assert_string_equal(json_string_value(json_object_get(repo, "full_name")), "octo-org/demo");
	json_decref(repo);
	r = last_request();
	char expect[512];
	snprintf(expect, sizeof(expect), "Bearer %s", t1);
	assert_string_equal(json_string_value(json_object_get(json_object_get(r, "headers"), "authorization")), expect);
	json_decref(r);
	assert_int_equal(tokens_issued(), before + 1);

	/* another installation cannot see this repository */
	assert_int_equal(gh_get_repo(c, 2, "octo-org", "demo", &repo), BASE_ENOTFOUND);
	assert_non_null(strstr(base_error_last(), "GitHub 404 GET /repos/octo-org/demo: Not Found"));

	/* a revoked token: one 401, a fresh token, the call succeeds */
	fake_do("revokeTokens", "{}");
	long long n = tokens_issued();
	assert_int_equal(gh_get_repo(c, 1, "octo-org", "demo", &repo), 0);
	json_decref(repo);
	assert_int_equal(tokens_issued(), n + 1);
	char *t3 = NULL;
	assert_int_equal(gh_installation_token(c, 1, &t3), 0);
	assert_string_not_equal(t3, t1);

	/* tokens that expire within the margin are not reused */
	fake_do("tokenOptions", "{\"expiresIn\":120}");
	gh_installation_token_invalidate(c, 1);
	n = tokens_issued();
	char *t4 = NULL, *t5 = NULL;
	assert_int_equal(gh_installation_token(c, 1, &t4), 0);
	assert_int_equal(gh_installation_token(c, 1, &t5), 0);
	assert_string_not_equal(t4, t5);
	assert_int_equal(tokens_issued(), n + 2);
	fake_do("tokenOptions", "{\"expiresIn\":3600}");
	free(t1);
	free(t2);
	free(t3);
	free(t4);
	free(t5);
	gh_client_free(c);
}

static void test_bad_key_refused_by_fake(void **state)
{
	(void)state;
	char otherkey[512], cmd[1024];
	snprintf(otherkey, sizeof(otherkey), "%s/other.pem", dir);
	snprintf(cmd, sizeof(cmd), "openssl genrsa -out %s 2048 2>/dev/null", otherkey);
	assert_int_equal(system(cmd), 0);
	base_config other = cfg;
	other.private_key_path = otherkey;
	gh_client *c = NULL;
	assert_int_equal(gh_client_new(&c, &other, NULL), 0);
	json_t *app = NULL;
	assert_int_equal(gh_get_app(c, &app), BASE_EAUTH);
	assert_non_null(strstr(base_error_last(), "GitHub 401 GET /app"));
	assert_null(app);
	gh_client_free(c);
}

static void test_5xx_then_success(void **state)
{
	(void)state;
	gh_client *c = new_client(5000);
	json_t *repo = NULL;
	assert_int_equal(gh_get_repo(c, 1, "octo-org", "demo", &repo), 0); /* token cached */
	json_decref(repo);
	fake_do("resetRequests", "{}");
	fake_do("failNext", "{\"status\":502,\"count\":2}");
	assert_int_equal(gh_get_repo(c, 1, "octo-org", "demo", &repo), 0);
	json_decref(repo);
	assert_int_equal(count_requests("GET", "/repos/octo-org/demo"), 3);

	/* persistent 5xx: max_retries + 1 attempts, then BASE_ERETRY with the status */
	fake_do("resetRequests", "{}");
	fake_do("failNext", "{\"status\":500,\"count\":10,\"message\":\"Server Error\"}");
	assert_int_equal(gh_get_repo(c, 1, "octo-org", "demo", &repo), BASE_ERETRY);
	assert_non_null(strstr(base_error_last(), "GitHub 500 GET /repos/octo-org/demo: Server Error"));
	assert_int_equal(count_requests("GET", "/repos/octo-org/demo"), 4);
	fake_do("clearFaults", "{}");

	/* 404 and 422 are not retried */
	fake_do("resetRequests", "{}");
	assert_int_equal(gh_get_repo(c, 1, "octo-org", "nope", &repo), BASE_ENOTFOUND);
	assert_int_equal(count_requests(NULL, "/repos/octo-org/nope"), 1);
	fake_do("failNext", "{\"status\":422,\"count\":1,\"message\":\"Validation Failed\"}");
	assert_int_equal(gh_get_repo(c, 1, "octo-org", "demo", &repo), BASE_EINVALID);
	assert_int_equal(count_requests(NULL, "/repos/octo-org/demo"), 1);
	gh_client_free(c);
}

static void test_secondary_limit(void **state)
{
	(void)state;
	gh_client *c = new_client(5000);
	json_t *repo = NULL;
	assert_int_equal(gh_get_repo(c, 1, "octo-org", "demo", &repo), 0);
	json_decref(repo);

	fake_do("secondaryLimit", "{\"retryAfter\":1}");
	int64_t t0 = mono_ms();
	clk.slept = 0;
	int64_t id = 0;
	assert_int_equal(gh_create_comment(c, 1, "octo-org", "demo", 5, "hello", &id), 0);
	assert_int_equal(clk.slept, 1000); /* Retry-After, on the client's clock */
	assert_true(mono_ms() - t0 < 1000);
	assert_true(id > 0);

	/* a wait longer than the caller affords: BASE_ERETRY at once, with the wait */
	gh_client *impatient = new_client(500);
	assert_int_equal(gh_get_repo(impatient, 1, "octo-org", "demo", &repo), 0);
	json_decref(repo);
	fake_do("secondaryLimit", "{\"retryAfter\":7}");
	t0 = mono_ms();
	clk.slept = 0;
	assert_int_equal(gh_get_repo(impatient, 1, "octo-org", "demo", &repo), BASE_ERETRY);
	assert_true(mono_ms() - t0 < 1000);
	assert_int_equal(clk.slept, 0);
	assert_int_equal(gh_retry_wait_ms(), 7000);
	assert_non_null(strstr(base_error_last(), "secondary rate limit"));

	/* without retry-after: the configured base (1 s here) */
	fake_do("secondaryLimit", "{\"retryAfter\":null}");
	t0 = mono_ms();
	clk.slept = 0;
	assert_int_equal(gh_get_repo(c, 1, "octo-org", "demo", &repo), 0);
	json_decref(repo);
	assert_true(clk.slept >= 1000);
	assert_true(mono_ms() - t0 < 1000);
	gh_client_free(impatient);
	gh_client_free(c);
}

static void test_primary_limit(void **state)
{
	(void)state;
	gh_client *c = new_client(5000);
	json_t *repo = NULL;
	assert_int_equal(gh_get_repo(c, 1, "octo-org", "demo", &repo), 0);
	json_decref(repo);
	fake_do("resetRequests", "{}");
	fake_do("primaryLimit", "{\"resetIn\":2}");
	int64_t t0 = mono_ms();
	int64_t wall0 = clk.wall / 1000;
	clk.slept = 0;
	clk.clear_faults_on_sleep = 1; /* the limit is over when the client wakes */
	assert_int_equal(gh_get_repo(c, 1, "octo-org", "demo", &repo), 0);
	clk.clear_faults_on_sleep = 0;
	json_decref(repo);
	/* it waited for the reset instead of hammering the limit */
	assert_true(clk.slept >= 1000);
	assert_true(clk.wall / 1000 >= wall0 + 2);
	assert_true(mono_ms() - t0 < 1000);
	assert_int_equal(count_requests(NULL, "/repos/octo-org/demo"), 2);

	/* too long a reset for the caller: re-queue */
	gh_client *impatient = new_client(500);
	assert_int_equal(gh_get_repo(impatient, 1, "octo-org", "demo", &repo), 0);
	json_decref(repo);
	fake_do("primaryLimit", "{\"resetIn\":30}");
	assert_int_equal(gh_get_repo(impatient, 1, "octo-org", "demo", &repo), BASE_ERETRY);
	assert_true(gh_retry_wait_ms() >= 29000);
	assert_non_null(strstr(base_error_last(), "primary rate limit"));
	/* the next call knows the budget is spent and does not even send */
	fake_do("resetRequests", "{}");
	assert_int_equal(gh_get_repo(impatient, 1, "octo-org", "demo", &repo), BASE_ERETRY);
	assert_int_equal(count_requests(NULL, "/repos/"), 0);
	fake_do("clearFaults", "{}");
	gh_client_free(impatient);
	gh_client_free(c);
}

static void test_hang_is_timeout(void **state)
{
	(void)state;
	gh_options o = GH_OPTIONS_INIT;
	o.timeout_ms = 400;
	o.max_retries = 1;
	o.backoff_ms = 50;
	o.clock = &fake_clock_ops; /* the backoff between the two timeouts */
	gh_client *c = NULL;
	assert_int_equal(gh_client_new(&c, &cfg, &o), 0);
	json_t *app = NULL;
	fake_do("hang", "{\"count\":2}");
	int64_t t0 = mono_ms();
	assert_int_equal(gh_get_app(c, &app), BASE_ETIMEOUT);
	int64_t elapsed = mono_ms() - t0;
	assert_true(elapsed >= 800 && elapsed < 4000);
	assert_non_null(strstr(base_error_last(), "GET /app"));
	/* the client is still usable afterwards */
	assert_int_equal(gh_get_app(c, &app), 0);
	assert_string_equal(json_string_value(json_object_get(app, "slug")), "perfbot-test");
	json_decref(app);
	gh_client_free(c);
}

static void test_pagination(void **state)
{
	(void)state;
	for (int i = 0; i < 220; i++) {
		char body[128];
		snprintf(body, sizeof(body), "{\"fullName\":\"octo-org/r%03d\",\"installationId\":1}", i);
		fake_do("addRepo", body);
	}
	gh_client *c = new_client(5000);
	fake_do("resetRequests", "{}");
	json_t *repos = NULL;
	assert_int_equal(gh_list_installation_repos(c, 1, &repos), 0);
	assert_int_equal(json_array_size(repos), 221);
	assert_int_equal(count_requests("GET", "/installation/repositories"), 3);
	/* every repository once */
	json_t *seen = json_object();
	size_t i;
	json_t *r;
	json_array_foreach(repos, i, r)
		json_object_set_new(seen, json_string_value(json_object_get(r, "full_name")), json_true());
	assert_int_equal(json_object_size(seen), 221);
	json_decref(seen);
	json_decref(repos);
	gh_client_free(c);
}

static void test_typed_calls(void **state)
{
	(void)state;
	gh_client *c = new_client(5000);
	json_t *o = NULL;

	assert_int_equal(gh_get_installation(c, 1, &o), 0);
	assert_int_equal(json_integer_value(json_object_get(o, "id")), 1);
	json_decref(o);
	assert_int_equal(gh_get_app(c, &o), 0);
	const char *slug = json_string_value(json_object_get(o, "slug"));
	json_t *bot = NULL;
	assert_int_equal(gh_get_bot_user(c, slug, &bot), 0);
	assert_string_equal(json_string_value(json_object_get(bot, "login")), "perfbot-test[bot]");
	assert_int_equal(json_integer_value(json_object_get(bot, "id")), 9001);
	json_decref(bot);
	json_decref(o);

	/* check run */
	json_t *body = json_pack("{s:s, s:s, s:s}", "name", "perfbot", "head_sha", "abc123", "status", "in_progress");
	int64_t run_id = 0;
	assert_int_equal(gh_create_check_run(c, 1, "octo-org", "demo", body, &run_id), 0);
	json_decref(body);
	assert_true(run_id > 0);
	body = json_pack("{s:s, s:s, s:{s:s, s:s}}", "status", "completed", "conclusion", "success", "output", "title",
			 "No regressions", "summary", "All good");
	assert_int_equal(gh_update_check_run(c, 1, "octo-org", "demo", run_id, body), 0);
	json_decref(body);
	json_t *st = fake("state", NULL);
	json_t *runs = json_object_get(st, "checkRuns");
	json_t *run = json_array_get(runs, json_array_size(runs) - 1);
	assert_int_equal(json_integer_value(json_object_get(run, "id")), run_id);
	assert_string_equal(json_string_value(json_object_get(run, "conclusion")), "success");
	assert_string_equal(json_string_value(json_object_get(json_object_get(run, "output"), "title")), "No regressions");
	json_decref(st);
	/* a check run without head_sha is refused with GitHub's message */
	body = json_pack("{s:s}", "name", "x");
	assert_int_equal(gh_create_check_run(c, 1, "octo-org", "demo", body, &run_id), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "GitHub 422 POST /repos/octo-org/demo/check-runs: Invalid request."));
	json_decref(body);

	/* comment, edit, reaction */
	int64_t cid = 0;
	assert_int_equal(gh_create_comment(c, 1, "octo-org", "demo", 7, "first", &cid), 0);
	assert_int_equal(gh_edit_comment(c, 1, "octo-org", "demo", cid, "second \xe2\x9c\x93"), 0);
	assert_int_equal(gh_add_reaction(c, 1, "octo-org", "demo", cid, "eyes"), 0);
	assert_int_equal(gh_add_reaction(c, 1, "octo-org", "demo", cid, "eyes"), 0);
	assert_int_equal(gh_add_reaction(c, 1, "octo-org", "demo", cid, "bogus"), BASE_EINVALID);
	st = fake("state", NULL);
	json_t *comments = json_object_get(st, "comments");
	json_t *cm = json_array_get(comments, json_array_size(comments) - 1);
	assert_string_equal(json_string_value(json_object_get(cm, "body")), "second \xe2\x9c\x93");
	assert_int_equal(json_array_size(json_object_get(st, "reactions")), 1);
	json_decref(st);

	/* permissions */
	fake_do("setPermission", "{\"repo\":\"octo-org/demo\",\"user\":\"alice\",\"permission\":\"write\"}");
	char *perm = NULL;
	assert_int_equal(gh_get_permission(c, 1, "octo-org", "demo", "alice", &perm), 0);
	assert_string_equal(perm, "write");
	free(perm);
	assert_int_equal(gh_get_permission(c, 1, "octo-org", "demo", "mallory", &perm), 0);
	assert_string_equal(perm, "none");
	free(perm);

	/* file content */
	fake_do("setFile", "{\"repo\":\"octo-org/demo\",\"ref\":\"abc123\",\"path\":\".github/perfbot.yml\","
			   "\"content\":\"benchmarks:\\n  - name: x\\n    command: ./x\\n\"}");
	char *data = NULL;
	size_t len = 0;
	assert_int_equal(gh_get_file(c, 1, "octo-org", "demo", ".github/perfbot.yml", "abc123", &data, &len), 0);
	assert_string_equal(data, "benchmarks:\n  - name: x\n    command: ./x\n");
	assert_int_equal(len, strlen(data));
	free(data);
	assert_int_equal(gh_get_file(c, 1, "octo-org", "demo", ".github/perfbot.yml", "other", &data, &len),
			 BASE_ENOTFOUND);
	assert_null(data);

	/* pull requests: create, duplicate (lost race), find, get, close */
	json_t *pr = NULL;
	body = json_pack("{s:s, s:s, s:s, s:s}", "title", "Faster parse", "head", "perfbot/opt-1", "base", "main", "body",
			 "Speeds up parsing");
	assert_int_equal(gh_create_pull(c, 1, "octo-org", "demo", body, &pr), 0);
	int64_t number = json_integer_value(json_object_get(pr, "number"));
	assert_true(number > 0);
	json_decref(pr);
	pr = NULL;
	assert_int_equal(gh_create_pull(c, 1, "octo-org", "demo", body, &pr), BASE_EEXISTS);
	assert_non_null(strstr(base_error_last(),
			       "GitHub 422 POST /repos/octo-org/demo/pulls: Validation Failed: A pull request already exists for octo-org:perfbot/opt-1."));
	assert_null(pr);
	json_decref(body);
	assert_int_equal(gh_find_pull(c, 1, "octo-org", "demo", "octo-org", "perfbot/opt-1", NULL, &pr), 0);
	assert_int_equal(json_integer_value(json_object_get(pr, "number")), number);
	json_decref(pr);
	assert_int_equal(gh_close_pull(c, 1, "octo-org", "demo", number), 0);
	assert_int_equal(gh_get_pull(c, 1, "octo-org", "demo", number, &pr), 0);
	assert_string_equal(json_string_value(json_object_get(pr, "state")), "closed");
	json_decref(pr);
	assert_int_equal(gh_find_pull(c, 1, "octo-org", "demo", "octo-org", "perfbot/opt-1", "open", &pr), BASE_ENOTFOUND);
	gh_client_free(c);
}

static int stored_cb(const char *guid, void *payload)
{
	(void)payload;
	return strcmp(guid, "guid-stored") == 0;
}

static void test_redeliver_missed(void **state)
{
	(void)state;
	fake_do("deliveryOptions", "{\"redeliveryStatusCode\":502}");
	fake_do("addDelivery", "{\"guid\":\"guid-ok\",\"status_code\":200}");
	fake_do("addDelivery", "{\"guid\":\"guid-missed\",\"status_code\":500}");
	fake_do("addDelivery", "{\"guid\":\"guid-stored\",\"status_code\":504}");
	fake_do("addDelivery", "{\"guid\":\"guid-later-ok\",\"status_code\":500}");
	fake_do("addDelivery", "{\"guid\":\"guid-later-ok\",\"status_code\":200,\"redelivery\":true}");
	gh_client *c = new_client(5000);
	int found = -1, redelivered = -1;
	assert_int_equal(gh_redeliver_missed(c, stored_cb, NULL, &found, &redelivered), 0);
	assert_int_equal(found, 1);
	assert_int_equal(redelivered, 1);
	/* again: the redelivery failed too (502), but one was already requested */
	assert_int_equal(gh_redeliver_missed(c, stored_cb, NULL, &found, &redelivered), 0);
	assert_int_equal(redelivered, 0);
	json_t *st = fake("state", NULL);
	json_t *rd = json_object_get(st, "redeliveries");
	assert_int_equal(json_array_size(rd), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(rd, 0), "guid")), "guid-missed");
	json_decref(st);

	/* GitHub refusing one redelivery does not stop the sweep; the refused
	 * one is asked for again next time */
	fake_do("addDelivery", "{\"guid\":\"guid-new-1\",\"status_code\":500}");
	fake_do("addDelivery", "{\"guid\":\"guid-new-2\",\"status_code\":500}");
	fake_do("failNext", "{\"status\":422,\"count\":1,\"method\":\"POST\",\"path\":\"/attempts$\"}");
	assert_true(gh_redeliver_missed(c, stored_cb, NULL, &found, &redelivered) < 0);
	assert_int_equal(found, 2);
	assert_int_equal(redelivered, 1);
	assert_int_equal(gh_redeliver_missed(c, stored_cb, NULL, &found, &redelivered), 0);
	assert_int_equal(redelivered, 1);
	st = fake("state", NULL);
	assert_int_equal(json_array_size(json_object_get(st, "redeliveries")), 3);
	json_decref(st);
	gh_client_free(c);
}

/* The status a setup handler answers req with. */
static int answer_status(int (*handler)(const base_http_request *, base_http_response *, void *), gh_setup *s,
			 const base_http_request *req)
{
	base_http_response resp;
	base_http_response_init(&resp);
	assert_int_equal(handler(req, &resp, s), 0);
	int status = resp.status;
	base_http_response_dispose(&resp);
	return status;
}

static void test_manifest_flow(void **state)
{
	(void)state;
	char envdir[512], datadir[600], envpath[600];
	snprintf(envdir, sizeof(envdir), "%s/setup", dir);
	snprintf(datadir, sizeof(datadir), "%s/var", envdir);
	snprintf(envpath, sizeof(envpath), "%s/.env", envdir);
	assert_int_equal(mkdir(envdir, 0700), 0);
	FILE *f = fopen(envpath, "w");
	fputs("# mine\nOTHER=1\nAPP_ID=old\nexport WEBHOOK_SECRET=stale\n", f);
	fclose(f);

	base_config scfg;
	memset(&scfg, 0, sizeof(scfg));
	scfg.github_api_url = fake_url;
	scfg.webhook_path = "/api/github/webhooks";
	scfg.public_url = "https://perfbot.example.com";
	scfg.data_dir = datadir;
	scfg.gh_org = "octo-org";
	gh_setup_options so = GH_SETUP_OPTIONS_INIT;
	so.web_url = "https://github.example";
	so.env_dir = envdir;
	gh_setup *s = NULL;
	assert_int_equal(gh_setup_new(&s, &scfg, &so), 0);

	/* the setup token waits in DATA_DIR, 0600 */
	struct stat sb;
	char token[80] = "";
	assert_int_equal(stat(gh_setup_token_path(s), &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	f = fopen(gh_setup_token_path(s), "r");
	assert_non_null(fgets(token, sizeof(token), f));
	fclose(f);
	token[strcspn(token, "\n")] = '\0';
	assert_int_equal(strlen(token), 64);

	/* a browser on another machine without the token: asked for it, no state shown */
	base_http_request req;
	memset(&req, 0, sizeof(req));
	req.method = "GET";
	req.path = "/";
	req.peer = "127.0.0.1";
	base_http_response resp;
	/* a Host that names neither this machine nor PUBLIC_URL (a DNS-rebound
	 * name), or none: refused before anything else */
	assert_int_equal(answer_status(gh_setup_handle_page, s, &req), 400);
	base_http_header rebound[1] = { { "Host", "attacker.example:3000" } };
	req.headers = rebound;
	req.nheaders = 1;
	assert_int_equal(answer_status(gh_setup_handle_page, s, &req), 400);
	base_http_header host[1] = { { "Host", "perfbot.example.com" } };
	req.headers = host;
	req.nheaders = 1;
	req.peer = "203.0.113.9";
	base_http_response_init(&resp);
	assert_int_equal(gh_setup_handle_page(&req, &resp, s), 0);
	assert_int_equal(resp.status, 403);
	assert_null(strstr(base_buf_cstr(&resp.body), gh_setup_state(s)));
	assert_non_null(strstr(base_buf_cstr(&resp.body), "setup token"));
	base_http_response_dispose(&resp);
	/* nor through a proxy on this machine */
	base_http_header fwd[2] = { { "X-Forwarded-For", "203.0.113.9" }, { "Host", "127.0.0.1:3000" } };
	req.peer = "127.0.0.1";
	req.headers = fwd;
	req.nheaders = 2;
	assert_int_equal(answer_status(gh_setup_handle_page, s, &req), 403);
	/* with the token it gets the page */
	base_http_header tq[1] = { { "token", token } };
	req.query = tq;
	req.nquery = 1;
	assert_int_equal(answer_status(gh_setup_handle_page, s, &req), 200);

	/* a loopback peer naming PUBLIC_URL's host is a reverse proxy's request,
	 * forwarding header or not: it needs the token too */
	req.headers = host;
	req.nheaders = 1;
	req.query = NULL;
	req.nquery = 0;
	assert_int_equal(answer_status(gh_setup_handle_page, s, &req), 403);

	/* the page for the browser with the token, through PUBLIC_URL: a form
	 * posting the manifest and the state to GitHub, and the session cookie
	 * the callback needs */
	req.query = tq;
	req.nquery = 1;
	base_http_response_init(&resp);
	assert_int_equal(gh_setup_handle_page(&req, &resp, s), 0);
	assert_int_equal(resp.status, 200);
	const char *set_cookie = NULL;
	for (size_t i = 0; i < resp.nheaders; i++)
		if (!strcmp(resp.header_names[i], "Set-Cookie"))
			set_cookie = resp.header_values[i];
	assert_non_null(set_cookie);
	assert_non_null(strstr(set_cookie, "; Path=/setup; HttpOnly; SameSite=Lax; Secure"));
	char cookie[128];
	snprintf(cookie, sizeof(cookie), "other=1; %.*s", (int)strcspn(set_cookie, ";"), set_cookie);
	assert_string_equal(resp.content_type, "text/html; charset=utf-8");
	const char *page = base_buf_cstr(&resp.body);
	char action[256];
	snprintf(action, sizeof(action),
		 "<form method=\"post\" action=\"https://github.example/organizations/octo-org/settings/apps/new?state=%s\">",
		 gh_setup_state(s));
	assert_non_null(strstr(page, action));
	assert_non_null(strstr(page, "Register GitHub App"));
	assert_non_null(strstr(page, "name=\"manifest\""));
	assert_non_null(strstr(page, "&quot;url&quot;:&quot;https://perfbot.example.com/api/github/webhooks&quot;"));
	assert_non_null(strstr(page, "&quot;redirect_url&quot;:&quot;https://perfbot.example.com/setup/callback&quot;"));
	assert_non_null(strstr(page, "&quot;checks&quot;:&quot;write&quot;"));
	assert_non_null(strstr(page, "&quot;public&quot;:false"));
	assert_non_null(strstr(page, "&quot;issue_comment&quot;"));
	base_http_response_dispose(&resp);

	/* a wrong state is refused and nothing is written */
	fake_do("addManifestCode", "{\"code\":\"code123\"}");
	base_http_header q[2] = { { "code", "code123" }, { "state", "0000000000000000000000000000000000000000000000000000000000000000" } };
	base_http_header ck[2] = { { "Cookie", cookie }, { "Host", "localhost:3000" } };
	req.path = "/setup/callback";
	req.query = q;
	req.nquery = 2;
	req.headers = ck;
	req.nheaders = 2;
	base_http_response_init(&resp);
	assert_int_equal(gh_setup_handle_callback(&req, &resp, s), 0);
	assert_int_equal(resp.status, 400);
	assert_non_null(strstr(base_buf_cstr(&resp.body), "state does not match"));
	base_http_response_dispose(&resp);
	char keyfile[700];
	snprintf(keyfile, sizeof(keyfile), "%s/github-app-4242.pem", datadir);
	assert_int_not_equal(stat(keyfile, &sb), 0);

	/* the right state without the page's cookie (someone who read the state
	 * off a page) is refused too */
	char good_state[65];
	snprintf(good_state, sizeof(good_state), "%s", gh_setup_state(s));
	q[1].value = good_state;
	req.headers = host;
	req.nheaders = 1;
	assert_int_equal(answer_status(gh_setup_handle_callback, s, &req), 403);
	assert_int_not_equal(stat(keyfile, &sb), 0);
	req.headers = ck;
	req.nheaders = 2;

	/* the right state from the page's browser: the code is converted and saved */
	base_http_response_init(&resp);
	assert_int_equal(gh_setup_handle_callback(&req, &resp, s), 0);
	assert_int_equal(resp.status, 200);
	char link[256];
	snprintf(link, sizeof(link), "href=\"%s/apps/perfbot-test/installations/new\"", fake_url);
	assert_non_null(strstr(base_buf_cstr(&resp.body), link));
	base_http_response_dispose(&resp);

	assert_int_equal(stat(envpath, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(stat(keyfile, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);

	char text[8192] = "";
	f = fopen(envpath, "r");
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	assert_non_null(strstr(text, "# mine\nOTHER=1\n"));
	assert_null(strstr(text, "APP_ID=old"));
	assert_null(strstr(text, "stale"));
	assert_non_null(strstr(text, "APP_ID=4242\n"));
	assert_non_null(strstr(text, "GITHUB_CLIENT_ID=Iv1.fakeclientid\n"));
	assert_non_null(strstr(text, "WEBHOOK_SECRET=whsec_"));
	assert_non_null(strstr(text, "GITHUB_CLIENT_SECRET=secret_"));
	char kp[800];
	snprintf(kp, sizeof(kp), "PRIVATE_KEY_PATH=%s\n", keyfile);
	assert_non_null(strstr(text, kp));

	/* the saved key works for the App JWT against the fake */
	base_config saved = cfg;
	saved.private_key_path = keyfile;
	gh_client *c = NULL;
	assert_int_equal(gh_client_new(&c, &saved, NULL), 0);
	json_t *app = NULL;
	assert_int_equal(gh_get_app(c, &app), 0);
	json_decref(app);
	gh_client_free(c);

	/* setup is closed: a replayed callback is refused, the token is gone */
	assert_int_equal(answer_status(gh_setup_handle_callback, s, &req), 409);
	assert_int_not_equal(stat(gh_setup_token_path(s), &sb), 0);
	gh_setup_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_token_exchange_and_reuse),
		cmocka_unit_test(test_bad_key_refused_by_fake),
		cmocka_unit_test(test_5xx_then_success),
		cmocka_unit_test(test_secondary_limit),
		cmocka_unit_test(test_primary_limit),
		cmocka_unit_test(test_hang_is_timeout),
		cmocka_unit_test(test_pagination),
		cmocka_unit_test(test_typed_calls),
		cmocka_unit_test(test_redeliver_missed),
		cmocka_unit_test(test_manifest_flow),
	};
	return cmocka_run_group_tests(tests, start_fake, stop_fake);
}
