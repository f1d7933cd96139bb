/* Integration scenarios of the self-hosted environment's worker
 * (agent/managed_worker.h) against the fake Managed Agents API
 * (tests/fake-anthropic/server.js, started here with node): scripted
 * sessions whose tool uses run in a real agent_tools and the real built-in
 * toolset (bash in the bubblewrap sandbox) on a temporary git workspace,
 * and the faults the fake plays (a dropped stream, a lost lease,
 * a 429 on a result, deny and ask, a healthcheck, a replayed tool use).
 * The fake checks every result (ids, kinds, exactly once) and lists what a
 * client did wrong as violations; each scenario asserts there are none.
 *
 * The worker runs on a clock twenty times faster than real time (its
 * sleeps, heartbeats and the client's retry waits), so that a scenario takes
 * a fraction of a second; the fake keeps real time (leases of 6 s). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "agent/managed_api.h"
#include "agent/managed_worker.h"
#include "agent/tools.h"
#include "agent/tools_builtin.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/json.h"
#include "base/log.h"
#include "base/metrics.h"
#include "measure/sandbox.h"
#include "store/store.h"
#include "tests/unit/support/fake_server.h"

#define API_KEY "sk-ant-test-key"
#define ENV_KEY "sk-ant-env-test-key"
#define SPEED 20

static char fake_url[128];
static char env_id[128];
static pid_t fake_pid;
static char root[64];           /* holds the workspace */
static char ws[96];
static char repo[96];
static measure_sandbox *sandbox;
static char log_path[64];       /* every line logged, read by the last scenario */
static char base_commit[41];
static char agent_id[128];

/* ---- the fast clock ---------------------------------------------------------- */

static int64_t real_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void real_sleep_ms(int64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static int64_t fast_wall(void *payload)
{
	(void)payload;
	return base_wall_ms();
}

static int64_t fast_mono(void *payload)
{
	(void)payload;
	return real_mono_ms() * SPEED;
}

static void fast_sleep(void *payload, int64_t ms)
{
	(void)payload;
	real_sleep_ms(ms / SPEED > 0 ? ms / SPEED : 1);
}

static const base_clock fast_clock = { fast_wall, fast_mono, fast_sleep, NULL };

/* The system's clock whose sleeps last ten times longer while *payload is
 * set: a pause of the worker's lasts long enough to tell "cut short" from
 * "waited out" on a loaded machine. */
static int64_t sys_mono(void *payload)
{
	(void)payload;
	return base_mono_ms();
}

static void slow_sleep(void *payload, int64_t ms)
{
	real_sleep_ms(atomic_load((atomic_int *)payload) ? ms * 10 : ms);
}

/* ---- the fake's control ---------------------------------------------------------- */

/* POST (body non-NULL) or GET /_fake/<name>; the answer (owned). */
static json_t *fake(const char *name, const char *body)
{
	return fake_server_call(fake_url, name, body);
}

static void fake_do(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fake_do(const char *name, const char *fmt, ...)
{
	char body[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(body, sizeof(body), fmt, ap);
	va_end(ap);
	json_decref(fake(name, body));
}

/* The fake's record of session sid (owned): the API object with its events. */
static json_t *session_state(const char *sid)
{
	json_t *st = fake("state", NULL);
	json_t *found = NULL, *s;
	size_t i;
	json_array_foreach(json_object_get(st, "sessions"), i, s)
		if (!strcmp(base_json_str(s, "id"), sid))
			found = json_incref(s);
	json_decref(st);
	assert_non_null(found);
	return found;
}

/* The work items of session sid (or of the healthchecks when sid is NULL),
 * as the fake counts them (owned array). */
static json_t *work_of(const char *sid)
{
	json_t *st = fake("state", NULL);
	json_t *out = json_array(), *w;
	size_t i;
	json_array_foreach(json_object_get(st, "work"), i, w) {
		const json_t *data = json_object_get(w, "data");
		if (sid ? !strcmp(base_json_str(data, "id"), sid) : !strcmp(base_json_str(data, "type"), "healthcheck"))
			json_array_append(out, w);
	}
	json_decref(st);
	return out;
}

/* The violations the fake saw for session sid (any when NULL). */
static int violations(const char *sid, const char *kind)
{
	json_t *all = fake("violations", NULL);
	json_t *v;
	size_t i;
	int n = 0;
	json_array_foreach(all, i, v) {
		if (sid && (!base_json_str(v, "session") || strcmp(base_json_str(v, "session"), sid)))
			continue;
		if (kind && strcmp(base_json_str(v, "kind"), kind))
			continue;
		fprintf(stderr, "violation: %s %s\n", base_json_str(v, "kind"), base_json_str(v, "message"));
		n++;
	}
	json_decref(all);
	return n;
}

/* The events of type `type` in the session's history whose `field` is
 * `value` (all when field is NULL). */
static int count_events(const char *sid, const char *type, const char *field, const char *value)
{
	json_t *s = session_state(sid);
	json_t *ev;
	size_t i;
	int n = 0;
	json_array_foreach(json_object_get(s, "events"), i, ev) {
		if (strcmp(base_json_str(ev, "type"), type))
			continue;
		if (field && (!base_json_str(ev, field) || strcmp(base_json_str(ev, field), value)))
			continue;
		n++;
	}
	json_decref(s);
	return n;
}

/* The id of the n-th (0-based) event of type `type` (static buffer). */
static const char *event_id(const char *sid, const char *type, int nth)
{
	static char id[128];
	json_t *s = session_state(sid);
	json_t *ev;
	size_t i;
	id[0] = '\0';
	json_array_foreach(json_object_get(s, "events"), i, ev) {
		if (!strcmp(base_json_str(ev, "type"), type) && nth-- == 0) {
			snprintf(id, sizeof(id), "%s", base_json_str(ev, "id"));
			break;
		}
	}
	json_decref(s);
	return id;
}

/* The first result event answering tool use `id` (owned), or NULL. */
static json_t *result_for(const char *sid, const char *id)
{
	json_t *s = session_state(sid);
	json_t *ev, *found = NULL;
	size_t i;
	json_array_foreach(json_object_get(s, "events"), i, ev) {
		const char *a = base_json_str(ev, "tool_use_id"), *b = base_json_str(ev, "custom_tool_use_id");
		const char *type = base_json_str(ev, "type");
		if (!strcmp(type, "user.tool_confirmation"))
			continue;
		if ((a && !strcmp(a, id)) || (b && !strcmp(b, id))) {
			found = json_incref(ev);
			break;
		}
	}
	json_decref(s);
	return found;
}

/* ---- the control plane, as a run does it ----------------------------------------- */

static agent_managed_client *client;

static json_t *api(const char *method, const char *path, json_t *body)
{
	agent_managed_request rq = { 0 };
	agent_managed_response resp;
	rq.method = method;
	rq.path = path;
	rq.body = body;
	rq.cred = AGENT_MANAGED_API_KEY;
	rq.credential = API_KEY;
	int error = agent_managed_send(client, &rq, &resp);
	if (error < 0)
		fprintf(stderr, "%s\n", base_error_last());
	assert_int_equal(error, 0);
	json_decref(body);
	json_t *out = json_incref(resp.body);
	agent_managed_response_dispose(&resp);
	return out;
}

/* A session playing `steps` (JSON text); its id in sid. */
static void new_session(char *sid, size_t cap, const char *tag, const char *steps)
{
	fake_do("scriptFor", "{\"metadata\":{\"t\":\"%s\"},\"steps\":%s}", tag, steps);
	json_t *s = api("POST", "/v1/sessions",
			json_pack("{s:s,s:s,s:{s:s},s:[{s:s,s:[{s:s,s:s}]}]}", "agent", agent_id, "environment_id", env_id,
				  "metadata", "t", tag, "initial_events", "type", "user.message", "content", "type", "text",
				  "text", "Make src/hot.c faster."));
	snprintf(sid, cap, "%s", base_json_str(s, "id"));
	json_decref(s);
	assert_true(sid[0] != '\0');
}

/* ---- a run's binding ------------------------------------------------------------- */

typedef struct run {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int ends;
	agent_managed_end_kind kind;
	char message[256];
	char status[32];      /* the session's status read at the end */
	agent_tools *tools;
	agent_builtin *builtin;
	agent_managed_binding b;
	agent_managed_worker *unbind_on_end; /* unbinds sid from its on_end */
	char sid[128];
} run;

static void on_end(void *payload, const agent_managed_end *end)
{
	run *r = payload;
	pthread_mutex_lock(&r->mu);
	r->ends++;
	r->kind = end->kind;
	snprintf(r->message, sizeof(r->message), "%s", end->message ? end->message : "(null)");
	snprintf(r->status, sizeof(r->status), "%s", end->session ? base_json_str(end->session, "status") : "none");
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->mu);
	if (r->unbind_on_end)
		agent_managed_worker_unbind(r->unbind_on_end, r->sid);
}

/* On the heap: a scenario that fails leaves it to the worker the teardown
 * stops. */
static run *run_new(void)
{
	run *r = calloc(1, sizeof(*r));
	assert_non_null(r);
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cond, NULL);
	agent_tools_options o = AGENT_TOOLS_OPTIONS_INIT;
	o.workspace = ws;
	o.repo_path = repo;
	o.base_commit = base_commit;
	assert_int_equal(agent_tools_new(&r->tools, &o), 0);
	agent_builtin_options bo = { .tools = r->tools, .sandbox = sandbox, .workspace = ws };
	measure_sandbox_limits lim = MEASURE_SANDBOX_LIMITS_INIT;
	bo.limits = lim;
	bo.limits.timeout_s = 60;
	assert_int_equal(agent_builtin_new(&r->builtin, &bo), 0);
	r->b.tools = r->tools;
	r->b.builtin = r->builtin;
	r->b.on_end = on_end;
	r->b.payload = r;
	return r;
}

/* The tool calls the run's tools counted (perfbot's and the built-in ones). */
static json_int_t tool_calls(run *r)
{
	json_t *u = agent_tools_usage(r->tools);
	json_int_t n = json_integer_value(json_object_get(u, "tool_calls"));
	json_decref(u);
	return n;
}

static int exists(const char *rel)
{
	char p[PATH_MAX];
	struct stat st;
	snprintf(p, sizeof(p), "%s/%s", ws, rel);
	return stat(p, &st) == 0;
}

/* The text of the result answering tool use `id` (static), or "". */
static const char *result_text(const char *sid, const char *id)
{
	static char text[4096];
	json_t *res = result_for(sid, id);
	snprintf(text, sizeof(text), "%s",
		 res && base_json_str(json_array_get(json_object_get(res, "content"), 0), "text")
			 ? base_json_str(json_array_get(json_object_get(res, "content"), 0), "text")
			 : "");
	json_decref(res);
	return text;
}

static void run_free(run *r)
{
	agent_builtin_free(r->builtin);
	agent_tools_free(r->tools);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cond);
	free(r);
}

/* Waits (real time) until the run heard n ends. */
static void wait_ends(run *r, int n, int timeout_ms)
{
	int64_t until = real_mono_ms() + timeout_ms;
	pthread_mutex_lock(&r->mu);
	while (r->ends < n && real_mono_ms() < until) {
		pthread_mutex_unlock(&r->mu);
		real_sleep_ms(10);
		pthread_mutex_lock(&r->mu);
	}
	int ends = r->ends;
	pthread_mutex_unlock(&r->mu);
	assert_int_equal(ends, n);
}

static int ends_of(run *r)
{
	pthread_mutex_lock(&r->mu);
	int n = r->ends;
	pthread_mutex_unlock(&r->mu);
	return n;
}

static void wait_end(run *r, int timeout_ms)
{
	wait_ends(r, 1, timeout_ms);
}

/* Waits until the session's work item (the first) has field >= n. */
static json_int_t work_field(const char *sid, const char *field)
{
	json_t *w = work_of(sid);
	json_int_t v = json_array_size(w) ? json_integer_value(json_object_get(json_array_get(w, 0), field)) : -1;
	json_decref(w);
	return v;
}

static const char *work_state(const char *sid)
{
	static char st[32];
	json_t *w = work_of(sid);
	snprintf(st, sizeof(st), "%s", json_array_size(w) ? base_json_str(json_array_get(w, 0), "state") : "none");
	json_decref(w);
	return st;
}

static void wait_work(const char *sid, const char *field, json_int_t n, int timeout_ms)
{
	int64_t until = real_mono_ms() + timeout_ms;
	while (work_field(sid, field) < n && real_mono_ms() < until)
		real_sleep_ms(20);
	assert_true(work_field(sid, field) >= n);
}

static void wait_stopped(const char *sid)
{
	int64_t until = real_mono_ms() + 15000;
	while (strcmp(work_state(sid), "stopped") && real_mono_ms() < until)
		real_sleep_ms(20);
	assert_string_equal(work_state(sid), "stopped");
}

/* A session playing HELD says "holding", then waits for a user.message
 * before it ends its turn: it is being served until release() lets it go,
 * however slow the machine. */
#define HELD "[{\"waitForStream\":1},{\"message\":\"holding\"},{\"waitFor\":\"message\"},{\"idle\":\"end_turn\"}]"

/* Once session sid is held (its "holding" sent, so that the fake waits for
 * the message from now on), sends it the message that lets it end. */
static void release(const char *sid)
{
	int64_t until = real_mono_ms() + 15000;
	while (count_events(sid, "agent.message", NULL, NULL) < 1 && real_mono_ms() < until)
		real_sleep_ms(20);
	assert_int_equal(count_events(sid, "agent.message", NULL, NULL), 1);
	char path[256];
	snprintf(path, sizeof(path), "/v1/sessions/%s/events", sid);
	json_decref(api("POST", path,
			json_pack("{s:[{s:s,s:[{s:s,s:s}]}]}", "events", "type", "user.message", "content", "type", "text",
				  "text", "Go on.")));
}

static agent_managed_worker *live_worker; /* the scenario's, stopped by the teardown if it failed */

static agent_managed_worker *start_worker(const char *key)
{
	agent_managed_worker_options o = AGENT_MANAGED_WORKER_OPTIONS_INIT;
	o.client = client;
	o.environment_id = env_id;
	o.environment_key = key;
	o.max_sessions = 4;
	o.block_ms = 100;
	o.clock = &fast_clock;
	agent_managed_worker *w = NULL;
	assert_int_equal(agent_managed_worker_start(&w, &o), 0);
	live_worker = w;
	return w;
}

static void stop_worker(agent_managed_worker *w)
{
	agent_managed_worker_stop(w);
	live_worker = NULL;
}

static int teardown(void **state)
{
	(void)state;
	stop_worker(live_worker);
	return 0;
}

/* ---- setup --------------------------------------------------------------------- */

static int start_fake(void **state)
{
	(void)state;
	snprintf(log_path, sizeof(log_path), "/tmp/perfbot-mworker-log-XXXXXX");
	int log_fd = mkstemp(log_path);
	if (log_fd < 0)
		return -1;
	base_log_configure(BASE_LOG_DEBUG, 0, getenv("TEST_LOG") ? 2 : log_fd);
	if (measure_sandbox_new(&sandbox, "bwrap") < 0) {
		fprintf(stderr, "sandbox: %s\n", base_error_last());
		return -1;
	}
	snprintf(root, sizeof(root), "/var/tmp/perfbot-mworker-XXXXXX");
	if (!mkdtemp(root))
		return -1;
	chmod(root, 0700);
	snprintf(ws, sizeof(ws), "%s/ws", root);
	snprintf(repo, sizeof(repo), "%s/repo", root);
	if (mkdir(ws, 0755) != 0)
		return -1;
	char cmd[1024];
	/* the repository holds the base commit; the workspace is a plain copy
	 * of its tree that the sandbox's user owns, as in a run */
	snprintf(cmd, sizeof(cmd),
		 "mkdir -p %s/repo/src && cd %s/repo && git init -q && "
		 "printf 'int slow(int n)\\n{\\n\\treturn n * 2;\\n}\\n' > src/hot.c && git add . && "
		 "git -c user.name=t -c user.email=t@example.com commit -qm base && cp -r src %s/",
		 root, root, ws);
	if (system(cmd) != 0)
		return -1;
	snprintf(cmd, sizeof(cmd), "git -C %s/repo rev-parse HEAD", root);
	FILE *p = popen(cmd, "r");
	if (!p || !fgets(base_commit, sizeof(base_commit), p))
		return -1;
	pclose(p);
	if (measure_sandbox_prepare_dir(sandbox, ws) < 0)
		return -1;

	char *const argv[] = {
		"node", "-e",
		"require('./tests/fake-anthropic/server.js').startFakeAnthropic({apiKey:'" API_KEY "',"
		"environmentKey:'" ENV_KEY "',leaseTtlSeconds:6,pingMs:200,"
		"followUp:[{tool:'read',input:{file_path:'src/hot.c'}},{idle:'end_turn'}]}).then((f)=>{"
		"process.stdout.write(f.url+'\\n'+f.environmentId+'\\n');"
		"process.on('SIGTERM',()=>f.close().then(()=>process.exit(0)));});",
		NULL,
	};
	if (fake_server_start(&fake_pid, argv, fake_url, sizeof(fake_url), env_id, sizeof(env_id)) < 0)
		return -1;
	curl_global_init(CURL_GLOBAL_DEFAULT);

	agent_managed_options o = AGENT_MANAGED_OPTIONS_INIT;
	o.base_url = fake_url;
	o.clock = &fast_clock;
	o.timeout_ms = 10000;
	if (agent_managed_client_new(&client, &o) < 0)
		return -1;
	json_t *a = api("POST", "/v1/agents", json_pack("{s:s,s:s}", "name", "perfbot-test", "model", "claude-test"));
	snprintf(agent_id, sizeof(agent_id), "%s", base_json_str(a, "id"));
	json_decref(a);
	return 0;
}

static int stop_fake(void **state)
{
	(void)state;
	agent_managed_client_free(client);
	fake_server_stop(fake_pid);
	measure_sandbox_free(sandbox);
	unlink(log_path);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- scenarios ------------------------------------------------------------------- */

static void test_custom_and_builtin_answered_once(void **state)
{
	(void)state;
	char sid[128];
	run *r = run_new();
	new_session(sid, sizeof(sid), "happy",
		    "[{\"waitForStream\":1},{\"custom\":\"read_file\",\"input\":{\"path\":\"src/hot.c\"}},"
		    "{\"tool\":\"read\",\"input\":{\"file_path\":\"/workspace/src/hot.c\"}},"
		    "{\"custom\":\"no_such_tool\",\"input\":{}},{\"idle\":\"end_turn\"}]");
	agent_managed_worker *w = start_worker(ENV_KEY);
	assert_int_equal(agent_managed_worker_bind(w, sid, &r->b), 0);
	assert_int_equal(agent_managed_worker_bind(w, sid, &r->b), BASE_EEXISTS);
	wait_end(r, 15000);
	assert_int_equal(r->kind, AGENT_MANAGED_END_TURN);
	assert_string_equal(r->status, "idle");
	wait_stopped(sid);

	/* the custom tool use: perfbot's read_file on the workspace, as a custom result */
	json_t *res = result_for(sid, event_id(sid, "agent.custom_tool_use", 0));
	assert_non_null(res);
	assert_string_equal(base_json_str(res, "type"), "user.custom_tool_result");
	assert_false(json_is_true(json_object_get(res, "is_error")));
	const char *text = base_json_str(json_array_get(json_object_get(res, "content"), 0), "text");
	assert_non_null(text);
	assert_non_null(strstr(text, "return n * 2;"));
	json_decref(res);
	/* the built-in one: the toolset's answer, as a tool result */
	res = result_for(sid, event_id(sid, "agent.tool_use", 0));
	assert_non_null(res);
	assert_string_equal(base_json_str(res, "type"), "user.tool_result");
	assert_false(json_is_true(json_object_get(res, "is_error")));
	assert_non_null(strstr(base_json_str(json_array_get(json_object_get(res, "content"), 0), "text"), "return n * 2;"));
	json_decref(res);
	/* an unknown tool: an error result, not silence */
	res = result_for(sid, event_id(sid, "agent.custom_tool_use", 1));
	assert_non_null(res);
	assert_true(json_is_true(json_object_get(res, "is_error")));
	json_decref(res);

	assert_int_equal(count_events(sid, "user.custom_tool_result", NULL, NULL), 2);
	assert_int_equal(count_events(sid, "user.tool_result", NULL, NULL), 1);
	assert_int_equal(tool_calls(r), 2);
	assert_int_equal(violations(sid, NULL), 0);
	assert_int_equal(work_field(sid, "acks"), 1);
	assert_int_equal(work_field(sid, "stops"), 1);
	assert_true(work_field(sid, "heartbeats") >= 1);

	agent_managed_worker_stats st;
	agent_managed_worker_stats_get(w, &st);
	assert_int_equal(st.sessions_served, 1);
	assert_int_equal(st.tool_calls, 3);
	assert_int_equal(st.results_posted, 3);
	assert_true(st.polls >= 1);
	agent_managed_worker_unbind(w, sid);
	stop_worker(w);

	base_buf m = BASE_BUF_INIT(1u << 20);
	assert_int_equal(base_metrics_render(&m), 0);
	assert_non_null(strstr(base_buf_cstr(&m), "perfbot_managed_tool_calls_total{tool=\"read_file\"}"));
	assert_non_null(strstr(base_buf_cstr(&m), "perfbot_managed_tool_calls_total{tool=\"unknown\"}"));
	assert_non_null(strstr(base_buf_cstr(&m), "perfbot_managed_results_posted_total"));
	assert_non_null(strstr(base_buf_cstr(&m), "perfbot_managed_sessions_total"));
	assert_non_null(strstr(base_buf_cstr(&m), "perfbot_managed_polls_total"));
	base_buf_dispose(&m);
	run_free(r);
}

static void test_history_first_and_replayed_tool_use(void **state)
{
	(void)state;
	char sid[128];
	run *r = run_new();
	/* the first tool use is in the history before the worker comes; the
	 * second is sent twice on the stream */
	new_session(sid, sizeof(sid), "replay",
		    "[{\"tool\":\"grep\",\"input\":{\"pattern\":\"slow\"}},{\"waitForStream\":1},"
		    "{\"tool\":\"glob\",\"input\":{\"pattern\":\"**/*.c\"},\"replay\":true,\"replayDelayMs\":10},"
		    "{\"wait\":300},{\"idle\":\"end_turn\"}]");
	int64_t until = real_mono_ms() + 15000;
	while (count_events(sid, "agent.tool_use", NULL, NULL) < 1 && real_mono_ms() < until)
		real_sleep_ms(10);
	assert_int_equal(count_events(sid, "agent.tool_use", NULL, NULL), 1);
	agent_managed_worker *w = start_worker(ENV_KEY);
	assert_int_equal(agent_managed_worker_bind(w, sid, &r->b), 0);
	wait_end(r, 15000);
	assert_int_equal(r->kind, AGENT_MANAGED_END_TURN);
	assert_int_equal(tool_calls(r), 2);
	assert_int_equal(count_events(sid, "user.tool_result", NULL, NULL), 2);
	/* grep names the matching files by default */
	const char *text = result_text(sid, event_id(sid, "agent.tool_use", 0));
	if (!strstr(text, "src/hot.c"))
		fail_msg("grep answered: %s", text);
	text = result_text(sid, event_id(sid, "agent.tool_use", 1));
	if (!strstr(text, "hot.c"))
		fail_msg("glob answered: %s", text);
	assert_int_equal(violations(sid, NULL), 0);
	agent_managed_worker_unbind(w, sid);
	stop_worker(w);
	run_free(r);
}

static void test_stream_drop_reconnects(void **state)
{
	(void)state;
	char sid[128];
	run *r = run_new();
	new_session(sid, sizeof(sid), "drop",
		    "[{\"waitForStream\":1},{\"tool\":\"read\",\"input\":{\"file_path\":\"src/hot.c\"}},"
		    "{\"dropStream\":true},{\"tool\":\"bash\",\"input\":{\"command\":\"true\"}},"
		    "{\"custom\":\"get_diff\",\"input\":{}},{\"dropStream\":true},{\"wait\":100},{\"idle\":\"end_turn\"}]");
	agent_managed_worker *w = start_worker(ENV_KEY);
	assert_int_equal(agent_managed_worker_bind(w, sid, &r->b), 0);
	wait_end(r, 15000);
	assert_int_equal(r->kind, AGENT_MANAGED_END_TURN);
	assert_int_equal(tool_calls(r), 3);
	assert_int_equal(count_events(sid, "user.tool_result", NULL, NULL), 2);
	assert_int_equal(count_events(sid, "user.custom_tool_result", NULL, NULL), 1);
	assert_int_equal(violations(sid, NULL), 0);
	/* each drop was followed by a new stream */
	json_t *requests = fake("requests", NULL);
	json_t *rq;
	size_t i;
	int streams = 0;
	char path[256];
	snprintf(path, sizeof(path), "/v1/sessions/%s/events/stream", sid);
	json_array_foreach(requests, i, rq)
		streams += !strcmp(base_json_str(rq, "path"), path);
	json_decref(requests);
	assert_true(streams >= 2);
	agent_managed_worker_unbind(w, sid);
	stop_worker(w);
	run_free(r);
}

static void test_rate_limited_result_posted_once(void **state)
{
	(void)state;
	char sid[128];
	run *r = run_new();
	new_session(sid, sizeof(sid), "ratelimit",
		    "[{\"waitForStream\":1},{\"tool\":\"read\",\"input\":{\"file_path\":\"src/hot.c\"}},{\"idle\":\"end_turn\"}]");
	/* more 429s than the client's own retries (2): the worker tries again while the lease lasts */
	fake_do("rateLimitResults", "{\"count\":4,\"retryAfter\":1}");
	agent_managed_worker *w = start_worker(ENV_KEY);
	assert_int_equal(agent_managed_worker_bind(w, sid, &r->b), 0);
	wait_end(r, 15000);
	assert_int_equal(r->kind, AGENT_MANAGED_END_TURN);
	assert_int_equal(count_events(sid, "user.tool_result", NULL, NULL), 1);
	assert_int_equal(tool_calls(r), 1);
	assert_int_equal(violations(sid, NULL), 0);
	agent_managed_worker_stats st;
	agent_managed_worker_stats_get(w, &st);
	assert_true(st.retries >= 4);
	assert_int_equal(st.results_posted, 1);
	/* the four 429 answers and the post that went through */
	json_t *requests = fake("requests", NULL);
	json_t *rq;
	size_t i;
	int posts = 0;
	char path[256];
	snprintf(path, sizeof(path), "/v1/sessions/%s/events", sid);
	json_array_foreach(requests, i, rq)
		posts += !strcmp(base_json_str(rq, "path"), path) && !strcmp(base_json_str(rq, "method"), "POST");
	json_decref(requests);
	assert_int_equal(posts, 5);
	agent_managed_worker_unbind(w, sid);
	stop_worker(w);
	run_free(r);
}

static void test_deny_never_runs_ask_waits(void **state)
{
	(void)state;
	char sid[128];
	run *r = run_new();
	new_session(sid, sizeof(sid), "permissions",
		    "[{\"waitForStream\":1},{\"tool\":\"bash\",\"input\":{\"command\":\"touch denied.txt\"},\"permission\":\"deny\"},"
		    "{\"tool\":\"write\",\"input\":{\"file_path\":\"refused.txt\",\"content\":\"x\"},\"permission\":\"ask\","
		    "\"confirm\":\"deny\",\"confirmDelayMs\":50},"
		    "{\"tool\":\"write\",\"input\":{\"file_path\":\"allowed.txt\",\"content\":\"x\"},\"permission\":\"ask\","
		    "\"confirmDelayMs\":150},"
		    "{\"idle\":\"end_turn\"}]");
	agent_managed_worker *w = start_worker(ENV_KEY);
	assert_int_equal(agent_managed_worker_bind(w, sid, &r->b), 0);
	wait_end(r, 15000);
	assert_int_equal(r->kind, AGENT_MANAGED_END_TURN);
	assert_false(exists("denied.txt"));
	assert_false(exists("refused.txt"));
	assert_true(exists("allowed.txt"));
	assert_int_equal(tool_calls(r), 1);
	/* the allowed write was answered after its confirmation: the fake refuses an earlier answer */
	assert_int_equal(count_events(sid, "user.tool_result", NULL, NULL), 1);
	json_t *res = result_for(sid, event_id(sid, "agent.tool_use", 2));
	assert_non_null(res);
	json_decref(res);
	assert_int_equal(violations(sid, NULL), 0);
	agent_managed_worker_unbind(w, sid);
	stop_worker(w);
	run_free(r);
}

static void test_lost_lease_ends_without_stop(void **state)
{
	(void)state;
	char sid[128];
	run *r = run_new();
	/* the turn would end by itself after 20 s: long after the lease is lost */
	new_session(sid, sizeof(sid), "lease", "[{\"waitForStream\":1},{\"wait\":20000},{\"idle\":\"end_turn\"}]");
	agent_managed_worker *w = start_worker(ENV_KEY);
	assert_int_equal(agent_managed_worker_bind(w, sid, &r->b), 0);
	wait_work(sid, "heartbeats", 1, 15000);
	json_t *work = work_of(sid);
	fake_do("loseLease", "{\"id\":\"%s\"}", base_json_str(json_array_get(work, 0), "id"));
	json_decref(work);
	wait_end(r, 15000);
	assert_int_equal(r->kind, AGENT_MANAGED_END_LEASE_LOST);
	real_sleep_ms(200);
	assert_int_equal(work_field(sid, "stops"), 0);
	assert_int_equal(violations(sid, "stopped_lost_lease"), 0);
	agent_managed_worker_stats st;
	agent_managed_worker_stats_get(w, &st);
	assert_int_equal(st.leases_lost, 1);
	agent_managed_worker_unbind(w, sid);
	stop_worker(w);
	run_free(r);
}

static void test_heartbeats_echo_the_last_one(void **state)
{
	(void)state;
	char sid[128];
	run *r = run_new();
	/* leases of 6 s: a heartbeat every 3 s of the worker's clock, 150 ms
	 * real; the session is held until four of them came */
	new_session(sid, sizeof(sid), "heartbeats", HELD);
	agent_managed_worker *w = start_worker(ENV_KEY);
	assert_int_equal(agent_managed_worker_bind(w, sid, &r->b), 0);
	wait_work(sid, "heartbeats", 4, 15000);
	release(sid);
	wait_end(r, 15000);
	/* a heartbeat that did not echo the last one would have lost the lease (412) */
	assert_int_equal(r->kind, AGENT_MANAGED_END_TURN);
	assert_true(work_field(sid, "heartbeats") >= 4);
	json_t *work = work_of(sid);
	char path[512];
	snprintf(path, sizeof(path), "/v1/environments/%s/work/%s/heartbeat", env_id,
		 base_json_str(json_array_get(work, 0), "id"));
	json_decref(work);
	json_t *requests = fake("requests", NULL);
	json_t *rq;
	size_t i;
	int n = 0;
	json_array_foreach(requests, i, rq) {
		if (strcmp(base_json_str(rq, "path"), path))
			continue;
		const char *expected = base_json_str(json_object_get(rq, "query"), "expected_last_heartbeat");
		assert_non_null(expected);
		if (n++ == 0)
			assert_string_equal(expected, "NO_HEARTBEAT");
		else
			assert_string_not_equal(expected, "NO_HEARTBEAT");
		assert_string_equal(base_json_str(rq, "auth"), "sessions");
	}
	json_decref(requests);
	assert_true(n >= 4);
	agent_managed_worker_unbind(w, sid);
	stop_worker(w);
	run_free(r);
}

static void test_healthcheck_acked_heartbeated_stopped(void **state)
{
	(void)state;
	agent_managed_worker *w = start_worker(ENV_KEY);
	fake_do("queueHealthcheck", "{}");
	int64_t until = real_mono_ms() + 15000;
	json_t *hc = NULL;
	for (;;) {
		json_t *all = work_of(NULL);
		hc = json_incref(json_array_get(all, json_array_size(all) - 1));
		json_decref(all);
		if ((hc && !strcmp(base_json_str(hc, "state"), "stopped")) || real_mono_ms() > until)
			break;
		json_decref(hc);
		real_sleep_ms(20);
	}
	assert_non_null(hc);
	assert_string_equal(base_json_str(hc, "state"), "stopped");
	assert_int_equal(json_integer_value(json_object_get(hc, "acks")), 1);
	assert_int_equal(json_integer_value(json_object_get(hc, "heartbeats")), 1);
	assert_int_equal(json_integer_value(json_object_get(hc, "stops")), 1);
	json_decref(hc);
	agent_managed_worker_stats st;
	agent_managed_worker_stats_get(w, &st);
	assert_int_equal(st.healthchecks, 1);
	stop_worker(w);
}

static void test_unbound_session_left_unacked(void **state)
{
	(void)state;
	char sid[128];
	new_session(sid, sizeof(sid), "elsewhere", "[{\"wait\":3000},{\"idle\":\"end_turn\"}]");
	agent_managed_worker *w = start_worker(ENV_KEY);
	wait_work(sid, "polls", 1, 15000);
	/* the worker decided (it counts the item it left), then nothing acked it */
	agent_managed_worker_stats st;
	int64_t until = real_mono_ms() + 15000;
	do {
		real_sleep_ms(20);
		agent_managed_worker_stats_get(w, &st);
	} while (st.items_left < 1 && real_mono_ms() < until);
	assert_true(st.items_left >= 1);
	real_sleep_ms(300);
	assert_int_equal(work_field(sid, "acks"), 0);
	assert_string_equal(work_state(sid), "queued");
	agent_managed_worker_stats_get(w, &st);
	assert_int_equal(st.sessions_served, 0);
	stop_worker(w);
	/* the session is over for the next scenarios: its item leaves the queue */
	char path[256];
	snprintf(path, sizeof(path), "/v1/sessions/%s/archive", sid);
	json_decref(api("POST", path, NULL));
}

static void end_kind_case(const char *tag, const char *steps, agent_managed_end_kind kind, const char *message)
{
	char sid[128];
	run *r = run_new();
	new_session(sid, sizeof(sid), tag, steps);
	agent_managed_worker *w = start_worker(ENV_KEY);
	assert_int_equal(agent_managed_worker_bind(w, sid, &r->b), 0);
	wait_end(r, 15000);
	assert_int_equal(r->kind, kind);
	if (message)
		assert_string_equal(r->message, message);
	assert_int_equal(violations(sid, NULL), 0);
	wait_stopped(sid);
	agent_managed_worker_unbind(w, sid);
	stop_worker(w);
	run_free(r);
}

static void test_end_kinds(void **state)
{
	(void)state;
	end_kind_case("budget", "[{\"waitForStream\":1},{\"idle\":\"budget_reached\"}]", AGENT_MANAGED_END_BUDGET, NULL);
	end_kind_case("retries", "[{\"waitForStream\":1},{\"idle\":\"retries_exhausted\"}]",
		      AGENT_MANAGED_END_RETRIES_EXHAUSTED, NULL);
	end_kind_case("terminated", "[{\"waitForStream\":1},{\"terminate\":true}]", AGENT_MANAGED_END_TERMINATED, NULL);
	end_kind_case("error",
		      "[{\"waitForStream\":1},{\"error\":{\"type\":\"overloaded_error\",\"message\":\"retrying\","
		      "\"retry_status\":\"retrying\"}},{\"error\":{\"type\":\"api_error\",\"message\":\"boom\","
		      "\"retry_status\":\"terminal\"}}]",
		      AGENT_MANAGED_END_ERROR, "boom");
	/* ended before the worker came: read from the history */
	end_kind_case("early", "[{\"idle\":\"budget_reached\"}]", AGENT_MANAGED_END_BUDGET, NULL);
	/* terminated as soon as acked: whether the worker learns it from the session, its
	 * history, the stream or a heartbeat answering "stopping", the end is the session's own */
	end_kind_case("early-terminated", "[{\"waitForAck\":true},{\"terminate\":true}]", AGENT_MANAGED_END_TERMINATED,
		      NULL);
}

static void test_unbind_stops_the_item(void **state)
{
	(void)state;
	char sid[128];
	run *r = run_new();
	new_session(sid, sizeof(sid), "unbind", "[{\"waitForStream\":1},{\"wait\":20000},{\"idle\":\"end_turn\"}]");
	agent_managed_worker *w = start_worker(ENV_KEY);
	assert_int_equal(agent_managed_worker_bind(w, sid, &r->b), 0);
	wait_work(sid, "heartbeats", 1, 15000);
	agent_managed_worker_unbind(w, sid);
	assert_int_equal(ends_of(r), 1);
	assert_int_equal(r->kind, AGENT_MANAGED_END_STOPPED);
	assert_string_equal(work_state(sid), "stopped");
	/* bound again: a binding is per session, not per worker */
	assert_int_equal(agent_managed_worker_bind(w, sid, &r->b), 0);
	agent_managed_worker_unbind(w, sid);
	stop_worker(w);
	run_free(r);
}

/* Requests to path (exact) seen by the fake. */
static int count_requests(const char *method, const char *path)
{
	json_t *requests = fake("requests", NULL);
	json_t *rq;
	size_t i;
	int n = 0;
	json_array_foreach(requests, i, rq)
		n += !strcmp(base_json_str(rq, "path"), path) && (!method || !strcmp(base_json_str(rq, "method"), method));
	json_decref(requests);
	return n;
}

static void test_stream_error_frame_reconnects(void **state)
{
	(void)state;
	char sid[128], path[256];
	run *r = run_new();
	new_session(sid, sizeof(sid), "errorframe",
		    "[{\"waitForStream\":1},{\"wait\":300},{\"tool\":\"read\",\"input\":{\"file_path\":\"src/hot.c\"}},"
		    "{\"idle\":\"end_turn\"}]");
	agent_managed_worker *w = start_worker(ENV_KEY);
	assert_int_equal(agent_managed_worker_bind(w, sid, &r->b), 0);
	snprintf(path, sizeof(path), "/v1/sessions/%s/events/stream", sid);
	int64_t until = real_mono_ms() + 15000;
	while (count_requests("GET", path) < 1 && real_mono_ms() < until)
		real_sleep_ms(10);
	fake_do("streamError", "{\"id\":\"%s\",\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}", sid);
	wait_end(r, 15000);
	assert_int_equal(r->kind, AGENT_MANAGED_END_TURN);
	assert_true(count_requests("GET", path) >= 2);
	assert_int_equal(tool_calls(r), 1);
	assert_int_equal(count_events(sid, "user.tool_result", NULL, NULL), 1);
	assert_int_equal(violations(sid, NULL), 0);
	agent_managed_worker_unbind(w, sid);
	stop_worker(w);
	run_free(r);
}

static void test_stream_never_connected_history_listed_again(void **state)
{
	(void)state;
	char sid[128];
	run *r = run_new();
	/* the first stream is never answered: what happens after the first
	 * listing shows in the next ones */
	fake_do("hang", "{\"count\":1,\"path\":\"/events/stream$\"}");
	new_session(sid, sizeof(sid), "unconnected",
		    "[{\"waitForAck\":true},{\"wait\":150},{\"tool\":\"read\",\"input\":{\"file_path\":\"src/hot.c\"}},"
		    "{\"idle\":\"end_turn\"}]");
	agent_managed_worker *w = start_worker(ENV_KEY);
	assert_int_equal(agent_managed_worker_bind(w, sid, &r->b), 0);
	wait_end(r, 15000);
	assert_int_equal(r->kind, AGENT_MANAGED_END_TURN);
	assert_int_equal(count_events(sid, "user.tool_result", NULL, NULL), 1);
	assert_int_equal(violations(sid, NULL), 0);
	agent_managed_worker_unbind(w, sid);
	stop_worker(w);
	run_free(r);
}

static void test_archived_session_winds_down(void **state)
{
	(void)state;
	char sid[128], path[256];
	run *r = run_new();
	new_session(sid, sizeof(sid), "archived", "[{\"waitForStream\":1},{\"wait\":20000},{\"idle\":\"end_turn\"}]");
	agent_managed_worker *w = start_worker(ENV_KEY);
	assert_int_equal(agent_managed_worker_bind(w, sid, &r->b), 0);
	wait_work(sid, "heartbeats", 1, 15000);
	snprintf(path, sizeof(path), "/v1/sessions/%s/archive", sid);
	json_decref(api("POST", path, NULL));
	/* the next heartbeat says "stopping": the worker stops the item */
	wait_end(r, 10000);
	assert_int_equal(r->kind, AGENT_MANAGED_END_STOPPED);
	wait_stopped(sid);
	assert_int_equal(work_field(sid, "stops"), 1);
	assert_int_equal(violations(sid, NULL), 0);
	agent_managed_worker_unbind(w, sid);
	stop_worker(w);
	run_free(r);
}

static void test_session_back_as_a_new_item(void **state)
{
	(void)state;
	char sid[128], path[256];
	run *r = run_new();
	new_session(sid, sizeof(sid), "followup", "[{\"waitForStream\":1},{\"idle\":\"end_turn\"}]");
	agent_managed_worker *w = start_worker(ENV_KEY);
	assert_int_equal(agent_managed_worker_bind(w, sid, &r->b), 0);
	wait_end(r, 15000);
	wait_stopped(sid);
	/* a message to the idle session: a new work item, served again with the binding */
	snprintf(path, sizeof(path), "/v1/sessions/%s/events", sid);
	json_decref(api("POST", path,
			json_pack("{s:[{s:s,s:[{s:s,s:s}]}]}", "events", "type", "user.message", "content", "type", "text",
				  "text", "Once more.")));
	wait_ends(r, 2, 15000);
	assert_int_equal(r->kind, AGENT_MANAGED_END_TURN);
	json_t *work = work_of(sid);
	assert_int_equal(json_array_size(work), 2);
	json_decref(work);
	agent_managed_worker_stats st;
	agent_managed_worker_stats_get(w, &st);
	assert_int_equal(st.sessions_served, 2);
	/* the second turn's tool use was served, not cut short by the first turn's end in the history */
	assert_int_equal(tool_calls(r), 1);
	assert_int_equal(count_events(sid, "user.tool_result", NULL, NULL), 1);
	assert_int_equal(violations(sid, NULL), 0);
	agent_managed_worker_unbind(w, sid);
	stop_worker(w);
	run_free(r);
}

static void test_no_poll_past_max_sessions(void **state)
{
	(void)state;
	char a[128], b[128];
	run *ra = run_new(), *rb = run_new();
	new_session(a, sizeof(a), "busy-a", HELD);
	new_session(b, sizeof(b), "busy-b", HELD);
	agent_managed_worker_options o = AGENT_MANAGED_WORKER_OPTIONS_INIT;
	o.client = client;
	o.environment_id = env_id;
	o.environment_key = ENV_KEY;
	o.max_sessions = 1;
	o.block_ms = 100;
	o.clock = &fast_clock;
	agent_managed_worker *w = NULL;
	assert_int_equal(agent_managed_worker_start(&w, &o), 0);
	live_worker = w;
	assert_int_equal(agent_managed_worker_bind(w, a, &ra->b), 0);
	assert_int_equal(agent_managed_worker_bind(w, b, &rb->b), 0);
	/* one session served, the other's item not even polled until it ends */
	int64_t until = real_mono_ms() + 15000;
	while (work_field(a, "acks") < 1 && work_field(b, "acks") < 1 && real_mono_ms() < until)
		real_sleep_ms(10);
	int a_first = work_field(a, "acks") == 1;
	run *first = a_first ? ra : rb, *second = a_first ? rb : ra;
	/* the first is held: it is served while the worker has time (300 ms,
	 * three of its polls) to poll the other */
	until = real_mono_ms() + 15000;
	while (count_events(a_first ? a : b, "agent.message", NULL, NULL) < 1 && real_mono_ms() < until)
		real_sleep_ms(20);
	real_sleep_ms(300);
	assert_int_equal(work_field(a_first ? b : a, "polls"), 0);
	assert_int_equal(ends_of(first), 0);
	release(a_first ? a : b);
	wait_end(first, 15000);
	release(a_first ? b : a);
	wait_end(second, 15000);
	assert_int_equal(first->kind, AGENT_MANAGED_END_TURN);
	assert_int_equal(second->kind, AGENT_MANAGED_END_TURN);
	agent_managed_worker_unbind(w, a);
	agent_managed_worker_unbind(w, b);
	stop_worker(w);
	run_free(ra);
	run_free(rb);
}

static void test_bound_after_its_item_was_polled(void **state)
{
	(void)state;
	char sid[128];
	run *r = run_new();
	/* on the system clock: the item waits 2 s for its bind */
	agent_managed_worker_options o = AGENT_MANAGED_WORKER_OPTIONS_INIT;
	o.client = client;
	o.environment_id = env_id;
	o.environment_key = ENV_KEY;
	o.block_ms = 100;
	agent_managed_worker *w = NULL;
	assert_int_equal(agent_managed_worker_start(&w, &o), 0);
	live_worker = w;
	new_session(sid, sizeof(sid), "late-bind",
		    "[{\"waitForStream\":1},{\"tool\":\"read\",\"input\":{\"file_path\":\"src/hot.c\"}},{\"idle\":\"end_turn\"}]");
	wait_work(sid, "polls", 1, 15000);
	assert_int_equal(agent_managed_worker_bind(w, sid, &r->b), 0);
	int64_t t0 = real_mono_ms();
	wait_end(r, 15000);
	/* served from that poll, not after the reclaim window (5 s) */
	assert_true(real_mono_ms() - t0 < 4000);
	assert_int_equal(r->kind, AGENT_MANAGED_END_TURN);
	assert_int_equal(work_field(sid, "polls"), 1);
	assert_int_equal(work_field(sid, "acks"), 1);
	assert_int_equal(violations(sid, NULL), 0);
	agent_managed_worker_unbind(w, sid);
	stop_worker(w);
	run_free(r);
}

/* ---- replicas: items handed over through the store ----------------------------- */

static char store_path[96];

static store *open_replica_store(void)
{
	if (!store_path[0]) {
		snprintf(store_path, sizeof(store_path), "%s/replicas.db", root);
		unlink(store_path);
	}
	char url[128];
	snprintf(url, sizeof(url), "sqlite:%s", store_path);
	store *st = NULL;
	assert_int_equal(store_open(&st, url), 0);
	return st;
}

static agent_managed_worker *start_replica(const char *worker_id, const char *key, store *st)
{
	agent_managed_worker_options o = AGENT_MANAGED_WORKER_OPTIONS_INIT;
	o.client = client;
	o.environment_id = env_id;
	o.environment_key = key;
	o.worker_id = worker_id;
	o.max_sessions = 4;
	o.block_ms = 100;
	o.store = st;
	agent_managed_worker *w = NULL;
	assert_int_equal(agent_managed_worker_start(&w, &o), 0);
	return w;
}

static const char *polled_by(const char *sid)
{
	static char by[64];
	json_t *w = work_of(sid);
	snprintf(by, sizeof(by), "%s",
		 json_array_size(w) && base_json_str(json_array_get(w, 0), "polledBy")
			 ? base_json_str(json_array_get(w, 0), "polledBy")
			 : "");
	json_decref(w);
	return by;
}

/* Replica A polls the item of a session that replica B's run bound (B is
 * bound first; its own poller is out of the way: its environment key is
 * refused, acks and heartbeats use the session's token).  B finds the row
 * on its periodic check and serves the item long before the reclaim
 * window; A never acks it. */
static void handover_case(int bind_before_poll)
{
	char sid[128];
	run *r = run_new();
	store *sa = open_replica_store(), *sb = open_replica_store();
	agent_managed_worker *a = NULL, *b = NULL;
	const char *steps =
		"[{\"waitForStream\":1},{\"tool\":\"read\",\"input\":{\"file_path\":\"src/hot.c\"}},{\"idle\":\"end_turn\"}]";
	if (bind_before_poll) {
		b = start_replica("replica-b", "sk-ant-env-wrong", sb);
		new_session(sid, sizeof(sid), "handover-early", steps);
		assert_int_equal(agent_managed_worker_bind(b, sid, &r->b), 0);
		a = start_replica("replica-a", ENV_KEY, sa);
		live_worker = a;
	} else {
		a = start_replica("replica-a", ENV_KEY, sa);
		live_worker = a;
		new_session(sid, sizeof(sid), "handover-late", steps);
		wait_work(sid, "polls", 1, 5000);
		b = start_replica("replica-b", ENV_KEY, sb);
		assert_int_equal(agent_managed_worker_bind(b, sid, &r->b), 0);
	}
	int64_t t0 = real_mono_ms();
	wait_work(sid, "polls", 1, 5000);
	assert_string_equal(polled_by(sid), "replica-a");
	wait_end(r, 15000);
	int64_t took = real_mono_ms() - t0;
	fprintf(stderr, "handover: served %lld ms after the %s\n", (long long)took, bind_before_poll ? "bind" : "poll");
	/* the reclaim window is 5 s */
	assert_true(took < 2500);
	assert_int_equal(r->kind, AGENT_MANAGED_END_TURN);
	assert_int_equal(work_field(sid, "polls"), 1);
	assert_int_equal(work_field(sid, "acks"), 1);
	assert_string_equal(polled_by(sid), "replica-a");
	agent_managed_worker_stats sta, stb;
	agent_managed_worker_stats_get(a, &sta);
	agent_managed_worker_stats_get(b, &stb);
	assert_int_equal(sta.handed_over, 1);
	assert_int_equal(sta.sessions_served, 0);
	assert_int_equal(stb.taken_over, 1);
	assert_int_equal(stb.sessions_served, 1);
	/* the tool use answered once, by B */
	assert_int_equal(count_events(sid, "user.tool_result", NULL, NULL), 1);
	assert_int_equal(violations(sid, NULL), 0);
	/* the row (and its secret) is gone once claimed */
	store_handover h;
	assert_int_equal(store_handover_claim(sa, env_id, sid, base_wall_ms(), &h), BASE_ENOTFOUND);
	base_buf m = BASE_BUF_INIT(1u << 20);
	assert_int_equal(base_metrics_render(&m), 0);
	assert_non_null(strstr(base_buf_cstr(&m), "perfbot_managed_handovers_total"));
	assert_non_null(strstr(base_buf_cstr(&m), "perfbot_managed_taken_over_total"));
	base_buf_dispose(&m);
	agent_managed_worker_unbind(b, sid);
	agent_managed_worker_stop(b);
	stop_worker(a);
	store_free(sa);
	store_free(sb);
	run_free(r);
}

static void test_item_polled_by_another_replica_handed_over(void **state)
{
	(void)state;
	handover_case(0);
}

static void test_item_polled_after_the_bind_elsewhere_handed_over(void **state)
{
	(void)state;
	handover_case(1);
}

static void test_bind_cuts_the_pause_after_an_empty_poll(void **state)
{
	(void)state;
	char sid[128];
	run *r = run_new();
	/* an empty poll is followed by 1 to 3 s of pause: 10 to 30 s real on
	 * the slowed clock */
	static atomic_int slow;
	atomic_store(&slow, 1);
	base_clock slowed = { fast_wall, sys_mono, slow_sleep, &slow };
	agent_managed_worker_options o = AGENT_MANAGED_WORKER_OPTIONS_INIT;
	o.client = client;
	o.environment_id = env_id;
	o.environment_key = ENV_KEY;
	o.block_ms = 50;
	o.clock = &slowed;
	agent_managed_worker *w = NULL;
	assert_int_equal(agent_managed_worker_start(&w, &o), 0);
	live_worker = w;
	agent_managed_worker_stats st;
	int64_t until = real_mono_ms() + 15000;
	do {
		real_sleep_ms(20);
		agent_managed_worker_stats_get(w, &st);
	} while (st.polls < 1 && real_mono_ms() < until);
	real_sleep_ms(300); /* its 50 ms poll answered empty: in the pause */
	new_session(sid, sizeof(sid), "wake", "[{\"waitForStream\":1},{\"idle\":\"end_turn\"}]");
	int64_t t0 = real_mono_ms();
	assert_int_equal(agent_managed_worker_bind(w, sid, &r->b), 0);
	wait_work(sid, "acks", 1, 15000);
	/* served within 5 s, where the pause had more than 9 s left */
	assert_true(real_mono_ms() - t0 < 5000);
	atomic_store(&slow, 0);
	wait_end(r, 15000);
	assert_int_equal(r->kind, AGENT_MANAGED_END_TURN);
	agent_managed_worker_unbind(w, sid);
	stop_worker(w);
	run_free(r);
}

static void test_unbind_from_on_end(void **state)
{
	(void)state;
	char sid[128];
	run *r = run_new();
	new_session(sid, sizeof(sid), "unbind-on-end", "[{\"waitForStream\":1},{\"idle\":\"end_turn\"}]");
	agent_managed_worker *w = start_worker(ENV_KEY);
	r->unbind_on_end = w;
	snprintf(r->sid, sizeof(r->sid), "%s", sid);
	assert_int_equal(agent_managed_worker_bind(w, sid, &r->b), 0);
	wait_end(r, 15000);
	wait_stopped(sid);
	/* the binding is gone: binding again works */
	r->unbind_on_end = NULL;
	assert_int_equal(agent_managed_worker_bind(w, sid, &r->b), 0);
	agent_managed_worker_unbind(w, sid);
	stop_worker(w);
	run_free(r);
}

static void test_worker_stop_ends_sessions(void **state)
{
	(void)state;
	char sid[128];
	run *r = run_new();
	new_session(sid, sizeof(sid), "worker-stop", "[{\"waitForStream\":1},{\"wait\":20000},{\"idle\":\"end_turn\"}]");
	agent_managed_worker *w = start_worker(ENV_KEY);
	assert_int_equal(agent_managed_worker_bind(w, sid, &r->b), 0);
	wait_work(sid, "heartbeats", 1, 15000);
	stop_worker(w);
	assert_int_equal(ends_of(r), 1);
	assert_int_equal(r->kind, AGENT_MANAGED_END_STOPPED);
	assert_string_equal(work_state(sid), "stopped");
	run_free(r);
}

static void test_long_history_paginated(void **state)
{
	(void)state;
	char sid[128], path[256];
	run *r = run_new();
	new_session(sid, sizeof(sid), "long", "[{\"wait\":400},{\"tool\":\"read\",\"input\":{\"file_path\":\"src/hot.c\"}},"
		    "{\"idle\":\"end_turn\"}]");
	/* 1100 events before the script's tool use: it is on the second page of the history,
	 * played before any stream is open */
	json_t *events = json_array();
	for (int i = 0; i < 1100; i++)
		json_array_append_new(events, json_pack("{s:s}", "type", "user.define_outcome"));
	snprintf(path, sizeof(path), "/v1/sessions/%s/events", sid);
	json_decref(api("POST", path, json_pack("{s:o}", "events", events)));
	int64_t until = real_mono_ms() + 15000;
	while (count_events(sid, "agent.tool_use", NULL, NULL) < 1 && real_mono_ms() < until)
		real_sleep_ms(10);
	agent_managed_worker *w = start_worker(ENV_KEY);
	assert_int_equal(agent_managed_worker_bind(w, sid, &r->b), 0);
	wait_end(r, 15000);
	assert_int_equal(r->kind, AGENT_MANAGED_END_TURN);
	assert_int_equal(count_events(sid, "user.tool_result", NULL, NULL), 1);
	assert_int_equal(violations(sid, NULL), 0);
	agent_managed_worker_unbind(w, sid);
	stop_worker(w);
	run_free(r);
}

/* Last: what every scenario logged holds neither the environment key nor a
 * sessions token. */
static void test_no_secret_in_the_logs(void **state)
{
	(void)state;
	FILE *f = fopen(log_path, "r");
	assert_non_null(f);
	char line[8192];
	int lines = 0;
	while (fgets(line, sizeof(line), f)) {
		lines++;
		assert_null(strstr(line, ENV_KEY));
		assert_null(strstr(line, "sk-ant-env-wrong"));
		assert_null(strstr(line, "sk-ant-req-")); /* the fake's sessions tokens */
		assert_null(strstr(line, API_KEY));
	}
	fclose(f);
	if (!getenv("TEST_LOG"))
		assert_true(lines > 20);
}

static void test_bad_environment_key_stops_polling(void **state)
{
	(void)state;
	agent_managed_worker *w = start_worker("sk-ant-env-wrong");
	agent_managed_worker_stats st;
	int64_t until = real_mono_ms() + 15000;
	do {
		real_sleep_ms(20);
		agent_managed_worker_stats_get(w, &st);
	} while (st.polls < 1 && real_mono_ms() < until);
	/* then no other poll: 400 ms are a few of its pauses after an error */
	real_sleep_ms(400);
	agent_managed_worker_stats_get(w, &st);
	assert_int_equal(st.polls, 1);
	stop_worker(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_custom_and_builtin_answered_once, teardown),
		cmocka_unit_test_teardown(test_history_first_and_replayed_tool_use, teardown),
		cmocka_unit_test_teardown(test_stream_drop_reconnects, teardown),
		cmocka_unit_test_teardown(test_rate_limited_result_posted_once, teardown),
		cmocka_unit_test_teardown(test_deny_never_runs_ask_waits, teardown),
		cmocka_unit_test_teardown(test_lost_lease_ends_without_stop, teardown),
		cmocka_unit_test_teardown(test_heartbeats_echo_the_last_one, teardown),
		cmocka_unit_test_teardown(test_healthcheck_acked_heartbeated_stopped, teardown),
		cmocka_unit_test_teardown(test_unbound_session_left_unacked, teardown),
		cmocka_unit_test_teardown(test_end_kinds, teardown),
		cmocka_unit_test_teardown(test_unbind_stops_the_item, teardown),
		cmocka_unit_test_teardown(test_stream_error_frame_reconnects, teardown),
		cmocka_unit_test_teardown(test_stream_never_connected_history_listed_again, teardown),
		cmocka_unit_test_teardown(test_archived_session_winds_down, teardown),
		cmocka_unit_test_teardown(test_session_back_as_a_new_item, teardown),
		cmocka_unit_test_teardown(test_no_poll_past_max_sessions, teardown),
		cmocka_unit_test_teardown(test_bound_after_its_item_was_polled, teardown),
		cmocka_unit_test_teardown(test_bind_cuts_the_pause_after_an_empty_poll, teardown),
		cmocka_unit_test_teardown(test_item_polled_by_another_replica_handed_over, teardown),
		cmocka_unit_test_teardown(test_item_polled_after_the_bind_elsewhere_handed_over, teardown),
		cmocka_unit_test_teardown(test_unbind_from_on_end, teardown),
		cmocka_unit_test_teardown(test_worker_stop_ends_sessions, teardown),
		cmocka_unit_test_teardown(test_long_history_paginated, teardown),
		cmocka_unit_test_teardown(test_bad_environment_key_stops_polling, teardown),
		cmocka_unit_test(test_no_secret_in_the_logs),
	};
	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, start_fake, stop_fake);
}
