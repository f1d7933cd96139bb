/* Unit tests: the dashboard's handler called directly, with GitHub faked
 * behind ui_github and a clock the test moves: access as GitHub says and
 * its cache expiring, the same 404 for hidden and missing things, CSRF on
 * every POST, the cookies' attributes, the local viewer, and approval
 * through agent/'s entry point after GitHub's permission check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/error.h"
#include "base/json.h"
#include "ui/assets.h"
#include "ui/ui.h"
#include "ui/ui_int.h"

/* ---- fakes ---------------------------------------------------------------- */

struct fake_gh {
	int repo_calls;         /* GET /user/installations... asked */
	int perm_calls;
	int64_t perm_installation;
	const char *perm;       /* what the permission API answers */
	json_t *repos;          /* what the user can read (owned) */
	int revoked;            /* the token is no longer valid */
	char last_code[64];
};

static int f_exchange(void *payload, const char *code, const char *redirect_uri, char **token_out)
{
	struct fake_gh *g = payload;
	(void)redirect_uri;
	snprintf(g->last_code, sizeof(g->last_code), "%s", code);
	if (strcmp(code, "good"))
		return base_error_set(BASE_EAUTH, "bad code");
	*token_out = strdup("ghu_token");
	return 0;
}

static int f_user(void *payload, const char *token, json_t **out)
{
	(void)payload;
	assert_string_equal(token, "ghu_token");
	*out = json_pack("{s:s, s:i, s:s}", "login", "alice", "id", 7, "avatar_url", "https://avatars.githubusercontent.com/u/7");
	return 0;
}

static int f_repositories(void *payload, const char *token, json_t **out)
{
	struct fake_gh *g = payload;
	(void)token;
	g->repo_calls++;
	if (g->revoked)
		return base_error_set(BASE_EAUTH, "Bad credentials");
	*out = json_deep_copy(g->repos);
	return 0;
}

static int f_permission(void *payload, int64_t inst, const char *full_name, const char *login, char **perm_out)
{
	struct fake_gh *g = payload;
	(void)full_name;
	(void)login;
	g->perm_calls++;
	g->perm_installation = inst;
	*perm_out = strdup(g->perm);
	return 0;
}

struct fake_clock {
	int64_t now;
};

static int64_t fc_now(void *p)
{
	return ((struct fake_clock *)p)->now;
}

static void fc_sleep(void *p, int64_t ms)
{
	((struct fake_clock *)p)->now += ms;
}

static int approvals;

static int fake_queue_pr(store *st, const store_approval *a, void *payload)
{
	(void)payload;
	approvals++;
	return store_approval_put(st, a);
}

/* ---- fixture ---------------------------------------------------------------- */

struct fixture {
	char dir[64];
	store *st;
	struct fake_gh gh;
	struct fake_clock clock;
	base_clock bclock;
	ui_github ugh;
	base_config cfg;
	agent_services svc;
	ui_ctx *ui;
	char cookie[128];     /* "perfbot_session=<id>" of a signed-in alice */
	char csrf[65];
	int64_t run_visible, run_hidden, run_local;
};

static int64_t add_run(store *st, const char *repo, int64_t inst, store_run_kind kind, store_run_state state)
{
	store_run_spec spec = { .kind = kind, .repository = repo, .installation_id = inst, .head_sha = "abc",
				.branch = "main", .trigger = inst ? "push" : "cli" };
	int64_t id = 0;
	assert_int_equal(store_run_create(st, &id, &spec), 0);
	assert_int_equal(store_run_set_state(st, id, state, NULL), 0);
	return id;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char url[128];
	snprintf(f->dir, sizeof(f->dir), "/tmp/perfbot-ui-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(url, sizeof(url), "sqlite:%s/perfbot.db", f->dir);
	assert_int_equal(store_open(&f->st, url), 0);
	f->clock.now = 1700000000000;
	f->bclock = (base_clock){ .wall_ms = fc_now, .mono_ms = fc_now, .sleep_ms = fc_sleep, .payload = &f->clock };
	f->gh.perm = "write";
	f->gh.repos = json_pack("[{s:s, s:b, s:s, s:i}]", "full_name", "octo/demo", "private", 1, "default_branch", "main",
				"installation_id", 42);
	f->ugh = (ui_github){ .exchange = f_exchange, .user = f_user, .repositories = f_repositories,
			      .permission = f_permission, .payload = &f->gh };
	f->cfg.public_url = "https://perfbot.example.com/";
	f->cfg.github_client_id = "cid";
	f->cfg.github_client_secret = "csecret";
	f->cfg.github_web_url = "https://github.example.com";
	f->svc = (agent_services){ .store = f->st, .queue_pr = fake_queue_pr, .clock = &f->bclock };
	ui_options o = { .cfg = &f->cfg, .store = f->st, .agent = &f->svc, .github = &f->ugh, .clock = &f->bclock,
			 .access_ttl_s = 300 };
	assert_int_equal(ui_new(&f->ui, &o), 0);
	/* a signed-in alice: her session as the callback stores it */
	const char *id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	char hash[65];
	ui_sha256_hex(hash, id, 64);
	snprintf(f->csrf, sizeof(f->csrf), "%s", "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210");
	store_session s = { .id_hash = hash, .login = "alice", .user_id = 7, .token = "ghu_token", .csrf = f->csrf,
			    .created_ms = f->clock.now, .expires_ms = f->clock.now + 3600000 };
	assert_int_equal(store_session_put(f->st, &s), 0);
	snprintf(f->cookie, sizeof(f->cookie), "perfbot_session=%s", id);
	f->run_visible = add_run(f->st, "octo/demo", 42, STORE_RUN_AGENT, STORE_RUN_PROPOSAL);
	json_t *p = json_pack("{s:s}", "diff", "--- a/x\n+++ b/x\n");
	assert_int_equal(store_proposal_put(f->st, f->run_visible, p), 0);
	json_decref(p);
	f->run_hidden = add_run(f->st, "octo/secret", 42, STORE_RUN_AGENT, STORE_RUN_PROPOSAL);
	f->run_local = add_run(f->st, "/home/dev/proj", 0, STORE_RUN_BENCH, STORE_RUN_DONE);
	approvals = 0;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	ui_free(f->ui);
	store_free(f->st);
	json_decref(f->gh.repos);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* ---- requests --------------------------------------------------------------- */

struct call {
	base_http_header headers[8];
	size_t nheaders;
	base_http_header query[4];
	size_t nquery;
	base_http_response resp;
	json_t *json;
};

static void header(struct call *c, const char *name, const char *value)
{
	c->headers[c->nheaders++] = (base_http_header){ name, value };
}

static int send_req(struct fixture *f, struct call *c, const char *method, const char *path, const char *peer)
{
	base_http_request req = { .method = method, .path = path, .headers = c->headers, .nheaders = c->nheaders,
				  .query = c->query, .nquery = c->nquery, .peer = peer ? peer : "203.0.113.9" };
	base_http_response_init(&c->resp);
	assert_int_equal(ui_handle(&req, &c->resp, f->ui), 0);
	c->json = c->resp.body.len ? json_loadb(c->resp.body.ptr, c->resp.body.len, 0, NULL) : NULL;
	return c->resp.status;
}

static void done(struct call *c)
{
	json_decref(c->json);
	base_http_response_dispose(&c->resp);
	memset(c, 0, sizeof(*c));
}

static const char *resp_header(const struct call *c, const char *name, int nth)
{
	for (size_t i = 0; i < c->resp.nheaders; i++)
		if (!strcasecmp(c->resp.header_names[i], name) && nth-- == 0)
			return c->resp.header_values[i];
	return NULL;
}

static int as_alice(struct fixture *f, const char *method, const char *path, struct call *c)
{
	header(c, "Cookie", f->cookie);
	header(c, "Host", "perfbot.example.com");
	return send_req(f, c, method, path, NULL);
}

/* ---- tests ------------------------------------------------------------------ */

/* A finished push-triggered bench run of octo/demo's main with one
 * measurement of bench. */
static int64_t measured(store *st, const char *sha, const char *bench, long cycles)
{
	store_run_spec spec = { .kind = STORE_RUN_BENCH, .repository = "octo/demo", .installation_id = 42,
				.head_sha = sha, .branch = "main", .trigger = "push" };
	int64_t id = 0;
	assert_int_equal(store_run_create(st, &id, &spec), 0);
	json_t *m = json_pack("{s:s, s:I}", "status", "ok", "estimated_cycles", (json_int_t)cycles);
	assert_int_equal(store_measurement_put(st, NULL, id, "octo/demo", sha, bench, m), 0);
	json_decref(m);
	assert_int_equal(store_run_set_state(st, id, STORE_RUN_DONE, NULL), 0);
	return id;
}

static size_t series_slots_used(const ui_ctx *ui)
{
	size_t n = 0;
	for (size_t i = 0; i < UI_SERIES_SLOTS; i++)
		n += ui->series[i].text != NULL;
	return n;
}

/* The series answer is kept and sent again as it was built; a measurement
 * stored or a run finished shows at the next request. */
static void test_series_kept_until_measured(void **state)
{
	struct fixture *f = *state;
	struct call c = { 0 }, again = { 0 };
	int64_t run = measured(f->st, "s1", "a", 100);
	const char *path = "/api/v1/repositories/octo/demo/series";
	assert_int_equal(as_alice(f, "GET", path, &c), 200);
	assert_int_equal(json_array_size(json_object_get(c.json, "commits")), 1);
	assert_int_equal(series_slots_used(f->ui), 1);
	assert_int_equal(as_alice(f, "GET", path, &again), 200);
	assert_int_equal(again.resp.body.len, c.resp.body.len);
	assert_memory_equal(again.resp.body.ptr, c.resp.body.ptr, c.resp.body.len);
	assert_int_equal(series_slots_used(f->ui), 1);
	done(&again);
	/* the kept answer is the one a fresh dashboard builds */
	ui_ctx *fresh = NULL;
	ui_options o = { .cfg = &f->cfg, .store = f->st, .agent = &f->svc, .github = &f->ugh, .clock = &f->bclock,
			 .access_ttl_s = 300 };
	assert_int_equal(ui_new(&fresh, &o), 0);
	ui_ctx *kept = f->ui;
	f->ui = fresh;
	assert_int_equal(as_alice(f, "GET", path, &again), 200);
	f->ui = kept;
	ui_free(fresh);
	assert_int_equal(again.resp.body.len, c.resp.body.len);
	assert_memory_equal(again.resp.body.ptr, c.resp.body.ptr, c.resp.body.len);
	done(&again);
	done(&c);
	/* a measurement more of the same run: at once */
	json_t *m = json_pack("{s:s, s:I}", "status", "ok", "estimated_cycles", (json_int_t)7);
	assert_int_equal(store_measurement_put(f->st, NULL, run, "octo/demo", "s1", "b", m), 0);
	json_decref(m);
	assert_int_equal(as_alice(f, "GET", path, &c), 200);
	assert_int_equal(json_array_size(json_object_get(c.json, "series")), 2);
	done(&c);
	/* a new commit measured: at once */
	measured(f->st, "s2", "a", 130);
	assert_int_equal(as_alice(f, "GET", path, &c), 200);
	json_t *commits = json_object_get(c.json, "commits");
	assert_int_equal(json_array_size(commits), 2);
	assert_string_equal(base_json_str(json_array_get(commits, 1), "sha"), "s2");
	assert_int_equal(json_array_size(json_object_get(c.json, "marks")), 1);
	done(&c);
	/* another limit is another answer */
	c.query[c.nquery++] = (base_http_header){ "limit", "1" };
	assert_int_equal(as_alice(f, "GET", path, &c), 200);
	assert_int_equal(json_array_size(json_object_get(c.json, "commits")), 1);
	done(&c);
	assert_int_equal(series_slots_used(f->ui), 2);
}

static void test_access_cache_expires(void **state)
{
	struct fixture *f = *state;
	struct call c = { 0 };
	char path[64];
	snprintf(path, sizeof(path), "/api/v1/runs/%lld", (long long)f->run_visible);
	assert_int_equal(as_alice(f, "GET", path, &c), 200);
	assert_string_equal(base_json_str(c.json, "repository"), "octo/demo");
	assert_true(json_is_true(json_object_get(c.json, "can_approve")));
	done(&c);
	assert_int_equal(f->gh.repo_calls, 1);
	/* within the few minutes: GitHub is not asked again */
	f->clock.now += 299 * 1000;
	assert_int_equal(as_alice(f, "GET", "/api/v1/repositories/octo/demo/series", &c), 200);
	done(&c);
	assert_int_equal(f->gh.repo_calls, 1);
	/* GitHub now says she cannot read it: once the answer expires, 404 */
	json_array_clear(f->gh.repos);
	f->clock.now += 2 * 1000;
	assert_int_equal(as_alice(f, "GET", path, &c), 404);
	done(&c);
	assert_int_equal(f->gh.repo_calls, 2);
	/* a token GitHub no longer takes: sign in again */
	f->gh.revoked = 1;
	f->clock.now += 301 * 1000;
	assert_int_equal(as_alice(f, "GET", path, &c), 401);
	assert_string_equal(base_json_str(c.json, "sign_in"), "/auth/login");
	done(&c);
}

static void test_not_found_is_uniform(void **state)
{
	struct fixture *f = *state;
	char hidden[64], missing[64], hidden_profile[64];
	snprintf(hidden, sizeof(hidden), "/api/v1/runs/%lld", (long long)f->run_hidden);
	snprintf(missing, sizeof(missing), "/api/v1/runs/%lld", (long long)f->run_hidden + 1000);
	snprintf(hidden_profile, sizeof(hidden_profile), "/api/v1/runs/%lld/flame", (long long)f->run_hidden);
	const char *paths[] = { hidden, missing, hidden_profile, "/api/v1/runs/abc", "/api/v1/repositories/octo/secret/series",
				"/api/v1/repositories/nobody/nothing/runs", "/api/v1/measurements/77/profile",
				"/api/v1/repositories/octo/secret/benchmarks" };
	char local[64];
	snprintf(local, sizeof(local), "/api/v1/runs/%lld", (long long)f->run_local);
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		struct call c = { 0 };
		assert_int_equal(as_alice(f, "GET", paths[i], &c), 404);
		assert_int_equal(c.resp.body.len, strlen("{\"error\":\"not found\"}"));
		assert_memory_equal(c.resp.body.ptr, "{\"error\":\"not found\"}", c.resp.body.len);
		done(&c);
	}
	/* a local run, seen from elsewhere, is hidden the same way */
	struct call c = { 0 };
	assert_int_equal(as_alice(f, "GET", local, &c), 404);
	done(&c);
	/* and without a session: 401 for all of them alike */
	for (size_t i = 0; i < 3; i++) {
		header(&c, "Host", "perfbot.example.com");
		assert_int_equal(send_req(f, &c, "GET", paths[i], NULL), 401);
		done(&c);
	}
}

static void test_csrf(void **state)
{
	struct fixture *f = *state;
	char path[64];
	snprintf(path, sizeof(path), "/api/v1/runs/%lld/approve", (long long)f->run_visible);
	struct call c = { 0 };
	assert_int_equal(as_alice(f, "POST", path, &c), 403);
	done(&c);
	char wrong[65];
	snprintf(wrong, sizeof(wrong), "%s", f->csrf);
	wrong[63] = wrong[63] == '0' ? '1' : '0';
	header(&c, "X-CSRF-Token", wrong);
	assert_int_equal(as_alice(f, "POST", path, &c), 403);
	done(&c);
	header(&c, "X-CSRF-Token", "short");
	assert_int_equal(as_alice(f, "POST", path, &c), 403);
	done(&c);
	assert_int_equal(approvals, 0);
	assert_int_equal(f->gh.perm_calls, 0);
	/* sign-out too */
	assert_int_equal(as_alice(f, "POST", "/auth/logout", &c), 403);
	done(&c);
	/* with the token: GitHub is asked, then the run is approved once */
	header(&c, "X-CSRF-Token", f->csrf);
	assert_int_equal(as_alice(f, "POST", path, &c), 202);
	assert_string_equal(base_json_str(c.json, "state"), "approved");
	done(&c);
	assert_int_equal(approvals, 1);
	assert_int_equal(f->gh.perm_installation, 42);
	json_t *run = NULL;
	assert_int_equal(store_run_get(f->st, f->run_visible, &run), 0);
	assert_string_equal(base_json_str(json_object_get(run, "data"), "approved_via"), "dashboard");
	assert_string_equal(base_json_str(json_object_get(run, "data"), "approved_by"), "alice");
	json_decref(run);
	/* approved: no button any more */
	char runpath[64];
	snprintf(runpath, sizeof(runpath), "/api/v1/runs/%lld", (long long)f->run_visible);
	assert_int_equal(as_alice(f, "GET", runpath, &c), 200);
	assert_true(json_is_false(json_object_get(c.json, "can_approve")));
	done(&c);
	header(&c, "X-CSRF-Token", f->csrf);
	assert_int_equal(as_alice(f, "POST", path, &c), 409);
	assert_non_null(strstr(base_json_str(c.json, "error"), "already approved"));
	done(&c);
}

static void test_write_permission_asked(void **state)
{
	struct fixture *f = *state;
	f->gh.perm = "read";
	char path[64];
	snprintf(path, sizeof(path), "/api/v1/runs/%lld/approve", (long long)f->run_visible);
	struct call c = { 0 };
	header(&c, "X-CSRF-Token", f->csrf);
	assert_int_equal(as_alice(f, "POST", path, &c), 403);
	assert_string_equal(base_json_str(c.json, "error"),
			    "Sorry @alice, only people with write access to octo/demo can use perfbot commands. Nothing was "
			    "started.");
	done(&c);
	assert_int_equal(approvals, 0);
	snprintf(path, sizeof(path), "/api/v1/runs/%lld", (long long)f->run_visible);
	assert_int_equal(as_alice(f, "GET", path, &c), 200);
	assert_true(json_is_false(json_object_get(c.json, "can_approve")));
	done(&c);
}

static void test_cancel(void **state)
{
	struct fixture *f = *state;
	int64_t id = add_run(f->st, "octo/demo", 42, STORE_RUN_AGENT, STORE_RUN_QUEUED);
	char path[64], action[80];
	snprintf(path, sizeof(path), "/api/v1/runs/%lld", (long long)id);
	snprintf(action, sizeof(action), "/api/v1/runs/%lld/cancel", (long long)id);
	struct call c = { 0 };
	assert_int_equal(as_alice(f, "GET", path, &c), 200);
	assert_true(json_is_true(json_object_get(c.json, "can_cancel")));
	assert_true(json_is_false(json_object_get(c.json, "can_approve")));
	done(&c);
	assert_int_equal(as_alice(f, "GET", action, &c), 405);
	done(&c);
	header(&c, "X-CSRF-Token", f->csrf);
	assert_int_equal(as_alice(f, "POST", action, &c), 202);
	assert_string_equal(base_json_str(c.json, "state"), "cancelled");
	done(&c);
	json_t *run = NULL;
	assert_int_equal(store_run_get(f->st, id, &run), 0);
	assert_int_equal(store_run_state_of(run), STORE_RUN_CANCELLED);
	assert_string_equal(base_json_str(run, "reason"), "cancelled by @alice");
	json_decref(run);
	/* as /perfbot cancel answers for a run that ended */
	header(&c, "X-CSRF-Token", f->csrf);
	assert_int_equal(as_alice(f, "POST", action, &c), 409);
	assert_non_null(strstr(base_json_str(c.json, "error"), "has already ended"));
	done(&c);
}

static void test_sign_in_cookies(void **state)
{
	struct fixture *f = *state;
	struct call c = { 0 };
	c.query[c.nquery++] = (base_http_header){ "next", "/ui/runs/1" };
	assert_int_equal(send_req(f, &c, "GET", "/auth/login", NULL), 302);
	const char *loc = resp_header(&c, "Location", 0);
	assert_non_null(strstr(loc, "https://github.example.com/login/oauth/authorize?client_id=cid&redirect_uri="
				    "https%3A%2F%2Fperfbot.example.com%2Fauth%2Fcallback&state="));
	const char *state_cookie = resp_header(&c, "Set-Cookie", 0);
	assert_non_null(strstr(state_cookie, "; HttpOnly; SameSite=Lax; Secure"));
	char st[65], cookie[700];
	snprintf(st, sizeof(st), "%s", strstr(loc, "&state=") + 7);
	snprintf(cookie, sizeof(cookie), "%.*s", (int)strcspn(state_cookie, ";"), state_cookie);
	assert_null(strstr(loc, f->cfg.github_client_secret)); /* the secret never in a URL */
	done(&c);
	assert_non_null(strstr(cookie, "|/ui/runs/1"));

	/* GitHub sends the browser back with a code */
	header(&c, "Cookie", cookie);
	c.query[c.nquery++] = (base_http_header){ "state", st };
	c.query[c.nquery++] = (base_http_header){ "code", "good" };
	assert_int_equal(send_req(f, &c, "GET", "/auth/callback", NULL), 302);
	assert_string_equal(resp_header(&c, "Location", 0), "/ui/runs/1");
	const char *sess = NULL;
	for (int i = 0; (sess = resp_header(&c, "Set-Cookie", i)); i++)
		if (!strncmp(sess, "perfbot_session=", 16))
			break;
	assert_non_null(sess);
	assert_non_null(strstr(sess, "; Path=/; Max-Age=28800; HttpOnly; SameSite=Lax; Secure"));
	assert_non_null(resp_header(&c, "Content-Security-Policy", 0));
	char session_cookie[128];
	snprintf(session_cookie, sizeof(session_cookie), "%.*s", (int)strcspn(sess, ";"), sess);
	done(&c);
	header(&c, "Cookie", session_cookie);
	assert_int_equal(send_req(f, &c, "GET", "/api/v1/me", NULL), 200);
	assert_string_equal(base_json_str(c.json, "login"), "alice");
	assert_int_equal(strlen(base_json_str(c.json, "csrf_token")), 64);
	done(&c);
	/* sessions expire */
	f->clock.now += 8 * 3600 * 1000;
	header(&c, "Cookie", session_cookie);
	assert_int_equal(send_req(f, &c, "GET", "/api/v1/me", NULL), 401);
	done(&c);

	/* a state that is not this browser's */
	header(&c, "Cookie", cookie);
	c.query[c.nquery++] = (base_http_header){ "state", "0000000000000000000000000000000000000000000000000000000000000000" };
	c.query[c.nquery++] = (base_http_header){ "code", "good" };
	assert_int_equal(send_req(f, &c, "GET", "/auth/callback", NULL), 400);
	assert_null(resp_header(&c, "Location", 0));
	done(&c);
	/* next never leaves the dashboard */
	c.query[c.nquery++] = (base_http_header){ "next", "//evil.example.com/ui" };
	assert_int_equal(send_req(f, &c, "GET", "/auth/login", NULL), 302);
	assert_non_null(strstr(resp_header(&c, "Set-Cookie", 0), "|/ui/;"));
	done(&c);
}

static void test_local_viewer(void **state)
{
	struct fixture *f = *state;
	char path[64];
	snprintf(path, sizeof(path), "/api/v1/runs/%lld", (long long)f->run_local);
	struct call c = { 0 };
	header(&c, "Host", "127.0.0.1:3000");
	assert_int_equal(send_req(f, &c, "GET", path, "127.0.0.1"), 200);
	done(&c);
	header(&c, "Host", "localhost");
	assert_int_equal(send_req(f, &c, "GET", "/api/v1/runs", "::1"), 200);
	assert_int_equal(json_array_size(json_object_get(c.json, "runs")), 1);
	done(&c);
	/* a reverse proxy on this machine forwards someone else */
	header(&c, "Host", "127.0.0.1:3000");
	header(&c, "X-Forwarded-For", "198.51.100.7");
	assert_int_equal(send_req(f, &c, "GET", path, "127.0.0.1"), 401);
	done(&c);
	header(&c, "Host", "perfbot.example.com");
	assert_int_equal(send_req(f, &c, "GET", path, "127.0.0.1"), 401);
	done(&c);
	header(&c, "Host", "127.0.0.1");
	assert_int_equal(send_req(f, &c, "GET", path, "192.0.2.4"), 401);
	done(&c);
	/* the local viewer does not see GitHub's repositories without signing in */
	snprintf(path, sizeof(path), "/api/v1/runs/%lld", (long long)f->run_visible);
	header(&c, "Host", "127.0.0.1");
	assert_int_equal(send_req(f, &c, "GET", path, "127.0.0.1"), 401);
	done(&c);
}

static void test_pages(void **state)
{
	struct fixture *f = *state;
	struct call c = { 0 };
	assert_int_equal(send_req(f, &c, "GET", "/ui/repos/a/b", NULL), 200);
	assert_non_null(strstr(c.resp.content_type, "text/html"));
	assert_non_null(strstr(resp_header(&c, "Content-Security-Policy", 0), "script-src 'self'"));
	assert_string_equal(resp_header(&c, "X-Content-Type-Options", 0), "nosniff");
	done(&c);
	/* a compressed file goes out compressed only to who takes gzip */
	const ui_asset *gz = NULL;
	for (size_t i = 0; i < ui_asset_count() && !gz; i++)
		if (ui_asset_at(i)->gzip)
			gz = ui_asset_at(i);
	if (gz) {
		char p[256];
		snprintf(p, sizeof(p), "/ui%s", gz->path);
		header(&c, "Accept-Encoding", "deflate, gzip;q=0.8, br");
		assert_int_equal(send_req(f, &c, "GET", p, NULL), 200);
		assert_string_equal(resp_header(&c, "Content-Encoding", 0), "gzip");
		assert_string_equal(resp_header(&c, "Vary", 0), "Accept-Encoding");
		assert_int_equal(c.resp.body.len, gz->gzip_len);
		done(&c);
		header(&c, "Accept-Encoding", "gzip;q=0");
		assert_int_equal(send_req(f, &c, "GET", p, NULL), 200);
		assert_null(resp_header(&c, "Content-Encoding", 0));
		assert_int_equal(c.resp.body.len, gz->len);
		done(&c);
	}
	assert_int_equal(send_req(f, &c, "GET", "/ui/missing.js", NULL), 404);
	done(&c);
	assert_int_equal(send_req(f, &c, "POST", "/ui/", NULL), 405);
	done(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_access_cache_expires, setup, teardown),
		cmocka_unit_test_setup_teardown(test_series_kept_until_measured, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_found_is_uniform, setup, teardown),
		cmocka_unit_test_setup_teardown(test_csrf, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_permission_asked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sign_in_cookies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_local_viewer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pages, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
