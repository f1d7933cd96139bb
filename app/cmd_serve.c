/* `perfbot serve`: wires the store, the worker pool, the webhook intake and
 * the HTTP front together, then waits for SIGTERM / SIGINT and drains:
 * /readyz turns 503, no new connections, in-flight requests finish, running
 * jobs get SHUTDOWN_GRACE_SECONDS, leases of the rest are released, exit 0.
 *
 * Roles (--role, PERFBOT_ROLE), for several replicas on one PostgreSQL
 * store: `all` (one process does everything), `web` (webhook intake, setup
 * page and dashboard, no job threads) and `worker` (job threads, sandboxes and the
 * MCP endpoint of the agent runs it runs; its listener serves only /mcp,
 * /healthz, /readyz and /metrics).  MCP stays with the replica running the
 * run: the agent command is its child and reaches it over loopback; the run
 * records that replica (data.replica: owner, mcp_url).
 *
 * Signals are blocked in every thread and taken synchronously by the main
 * thread with sigwait, so no handler runs in an arbitrary thread. */
#include "app/cmd.h"
#include "base/error.h"
#include "base/fs.h"
#include "base/http.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/url.h"
#include "store/store.h"
#include "store/worker.h"
#include "agent/mcp.h"
#include "agent/run_token.h"
#include "measure/sandbox.h"
#include "agent/services.h"
#include "github/github.h"
#include "pr/pr.h"
#include "pr/pr_job.h"
#include "github/setup.h"
#include "webhooks/handlers.h"
#include "webhooks/intake.h"
#include "webhooks/server.h"
#include "ui/ui.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum role { ROLE_ALL, ROLE_WEB, ROLE_WORKER };

struct serve_state {
	const base_config *cfg;
	enum role role;
	store *store;
	store_workers *workers;
	gh_client *gh;              /* NULL in setup mode */
	agent_managed_backend *managed; /* NULL without the managed settings */
	atomic_int draining;
	pthread_mutex_t stop_lock;  /* redelivery loop sleeps on stop_cond */
	pthread_cond_t stop_cond;
	int stop;
};

static int delivery_stored(const char *guid, void *payload)
{
	struct serve_state *s = payload;
	return store_delivery_exists(s->store, guid);
}

/* GitHub never redelivers by itself: ask for failed deliveries perfbot has
 * not stored, at start and then every REDELIVERY_INTERVAL_SECONDS. */
static void *redelivery_main(void *arg)
{
	struct serve_state *s = arg;
	pthread_setname_np(pthread_self(), "pb-redeliver");
	for (;;) {
		int found = 0, redelivered = 0;
		if (gh_redeliver_missed(s->gh, delivery_stored, s, &found, &redelivered) < 0) {
			base_log(BASE_LOG_WARN, "missed-delivery check failed", "error", base_error_last(), NULL);
		} else if (found || redelivered) {
			char f[16], r[16];
			snprintf(f, sizeof(f), "%d", found);
			snprintf(r, sizeof(r), "%d", redelivered);
			base_log(BASE_LOG_INFO, "missed deliveries", "found", f, "redelivered", r, NULL);
		}
		pthread_mutex_lock(&s->stop_lock);
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += s->cfg->redelivery_interval_s;
		while (!s->stop && pthread_cond_timedwait(&s->stop_cond, &s->stop_lock, &ts) == 0)
			;
		int stop = s->stop;
		pthread_mutex_unlock(&s->stop_lock);
		if (stop)
			return NULL;
	}
}

static int handle_healthz(const base_http_request *req, base_http_response *resp, void *payload)
{
	(void)payload;
	if (strcmp(req->method, "GET") && strcmp(req->method, "HEAD")) {
		base_http_response_header(resp, "Allow", "GET");
		return base_http_response_error(resp, 405, "method not allowed");
	}
	return base_http_response_json(resp, 200, "{\"status\":\"ok\"}");
}

static int handle_readyz(const base_http_request *req, base_http_response *resp, void *payload)
{
	struct serve_state *s = payload;
	if (strcmp(req->method, "GET") && strcmp(req->method, "HEAD")) {
		base_http_response_header(resp, "Allow", "GET");
		return base_http_response_error(resp, 405, "method not allowed");
	}
	if (atomic_load(&s->draining))
		return base_http_response_json(resp, 503, "{\"status\":\"draining\"}");
	if (store_ping(s->store) < 0) {
		base_http_response_header(resp, "Retry-After", "5");
		return base_http_response_json(resp, 503, "{\"status\":\"store unavailable\"}");
	}
	if (s->role != ROLE_WEB && store_workers_running(s->workers) == 0)
		return base_http_response_json(resp, 503, "{\"status\":\"workers not running\"}");
	return base_http_response_json(resp, 200, "{\"status\":\"ready\"}");
}

static int handle_metrics(const base_http_request *req, base_http_response *resp, void *payload)
{
	struct serve_state *s = payload;
	if (strcmp(req->method, "GET") && strcmp(req->method, "HEAD")) {
		base_http_response_header(resp, "Allow", "GET");
		return base_http_response_error(resp, 405, "method not allowed");
	}
	json_t *counts = NULL;
	if (store_job_counts(s->store, &counts) == 0) {
		const char *state;
		json_t *n;
		json_object_foreach(counts, state, n) {
			char labels[64];
			snprintf(labels, sizeof(labels), "state=\"%s\"", state);
			base_metric_set(base_metric_gauge("perfbot_jobs", "Jobs by state", labels),
				       (double)json_integer_value(n));
		}
		base_metric_set(base_metric_gauge("perfbot_queue_depth", "Jobs waiting to run", NULL),
			       (double)json_integer_value(json_object_get(counts, "queued")));
		json_decref(counts);
	}
	base_metric_set(base_metric_gauge("perfbot_workers_busy", "Workers running a job", NULL),
		       store_workers_busy(s->workers));
	base_metric_set(base_metric_gauge("perfbot_workers", "Worker threads", NULL), store_workers_running(s->workers));
	agent_managed_backend_metrics(s->managed);
	resp->status = 200;
	resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
	return base_metrics_render(&resp->body);
}

static void wake_workers(void *payload)
{
	store_workers_wake(payload);
}


/* measure/ asks for an agent run after a push (optimize.on: push); agent/
 * queues it. */
static int queue_optimize(int64_t *run_out, const measure_optimize_request *m, void *payload)
{
	agent_run_request req = { .repository = m->repository, .installation_id = m->installation_id,
				  .commit = m->commit, .branch = m->branch, .clone_url = m->clone_url,
				  .trigger = "push", .requested_by = m->requested_by };
	return agent_run_queue(run_out, payload, &req);
}

/* agent/ records an approval with pr/'s job that opens the pull request. */
static int queue_pr(store *st, const store_approval *a, void *payload)
{
	(void)payload;
	return pr_job_queue_open(st, a);
}

/* GitHub is given PUBLIC_URL + WEBHOOK_PATH, or without PUBLIC_URL the
 * address perfbot listens on: one warning line when GitHub cannot deliver
 * there (or only without TLS), saying what to do. */
static void log_reachability(const base_config *cfg, int port)
{
	static const char see[] = "README: Reaching perfbot from GitHub";
	int has_public = cfg->public_url && cfg->public_url[0];
	char base[600], hook[1200], why[300], reason[400];
	base_url u;
	if (has_public) {
		snprintf(base, sizeof(base), "%s", cfg->public_url);
	} else {
		int v6 = strchr(cfg->host, ':') != NULL;
		snprintf(base, sizeof(base), "http://%s%s%s:%d", v6 ? "[" : "", cfg->host, v6 ? "]" : "", port);
	}
	if (base_url_parse(&u, base) < 0 || base_url_format(base, sizeof(base), &u) < 0) {
		snprintf(reason, sizeof(reason), "%s%s", has_public ? "PUBLIC_URL: " : "HOST: ", base_error_last());
		base_log(BASE_LOG_WARN, "GitHub cannot deliver webhooks to this URL: set PUBLIC_URL to the https address "
					"a reverse proxy or a tunnel exposes", "reason", reason, "see", see, NULL);
		return;
	}
	snprintf(hook, sizeof(hook), "%s%s", base, cfg->webhook_path);
	base_reach r = base_url_reach(&u, why, sizeof(why));
	if (r == BASE_REACH_OK)
		return;
	snprintf(reason, sizeof(reason), "%s%s", has_public ? "" : "PUBLIC_URL is not set and ", why);
	if (r == BASE_REACH_NO_TLS)
		base_log(BASE_LOG_WARN, "the webhook URL is plain http: GitHub would deliver payloads unencrypted; put TLS "
					"in front (a reverse proxy or a tunnel) and set PUBLIC_URL to its https address",
			"url", hook, "reason", reason, "see", see, NULL);
	else
		base_log(BASE_LOG_WARN, "GitHub cannot deliver webhooks to this URL: set PUBLIC_URL to the https address "
					"a reverse proxy or a tunnel exposes",
			"url", hook, "reason", reason, "see", see, NULL);
}

int app_cmd_serve(const base_config *cfg, int argc, char **argv)
{
	/* two malloc arenas, not one per thread that ever allocated (up to 8 a
	 * core): the threads of serve allocate little, and each arena they
	 * touch stays in the resident set */
	mallopt(M_ARENA_MAX, 2);
	/* every option of serve but --role is a configuration flag, taken before */
	static const struct option longopts[] = { { "role", required_argument, NULL, 'r' }, { NULL, 0, NULL, 0 } };
	app_cmd_opts o = { .cmd = "serve", .longopts = longopts };
	const char *role_name = cfg->role ? cfg->role : "all";
	int oc;
	while ((oc = app_cmd_getopt(&o, argc, argv, 0)) != APP_CMD_END) {
		if (oc != 'r')
			return o.status ? o.status : 2;
		role_name = optarg;
	}
	enum role role = !strcmp(role_name, "web") ? ROLE_WEB : !strcmp(role_name, "worker") ? ROLE_WORKER : ROLE_ALL;
	if (strcmp(role_name, "all") && strcmp(role_name, "web") && strcmp(role_name, "worker")) {
		fprintf(stderr, "perfbot serve: --role: expected all, web or worker, got \"%s\"\n", role_name);
		return 2;
	}
	/* roles share work through the store: SQLite serves one process */
	if (role != ROLE_ALL && strncmp(cfg->database_url, "postgres", 8) != 0) {
		fprintf(stderr, "perfbot serve: --role %s: needs a PostgreSQL DATABASE_URL shared by the replicas "
				"(with SQLite one perfbot serve does everything: --role all)\n", role_name);
		return 2;
	}
	/* A key that is configured but does not parse stops start-up; a missing
	 * APP_ID or key means first-run setup mode. */
	gh_app_key *key = NULL;
	int kerr = gh_app_key_load(&key, cfg);
	gh_app_key_free(key);
	if (kerr < 0 && kerr != BASE_ENOTFOUND) {
		fprintf(stderr, "perfbot: %s\n", base_error_last());
		return 2;
	}
	int setup_mode = !cfg->app_id || kerr == BASE_ENOTFOUND;
	int intake_on = (cfg->webhook_secret || cfg->insecure_no_signature) && role != ROLE_WORKER;
	if (!intake_on && !setup_mode && role != ROLE_WORKER) {
		fprintf(stderr, "perfbot: WEBHOOK_SECRET: not set; perfbot never accepts unsigned webhooks "
				"(pass --insecure-no-signature for a local experiment)\n");
		return 2;
	}
	if (cfg->insecure_no_signature)
		base_log(BASE_LOG_WARN, "webhook signatures are NOT checked (--insecure-no-signature): never expose this server",
			NULL);
	if (setup_mode && role == ROLE_WORKER) {
		fprintf(stderr, "perfbot: APP_ID and the private key: a worker replica needs them (register the App "
				"with a web or all replica first)\n");
		return 2;
	}
	if (setup_mode)
		base_log(BASE_LOG_WARN, intake_on ? "setup mode: APP_ID or the private key is not set; register the App at /"
						: "setup mode: APP_ID or the private key is not set; register the App at /"
						  " (the webhook intake stays off until WEBHOOK_SECRET is set)",
			NULL);

	int rc = 1;
	int lock_fd = -1;
	struct serve_state st = { .cfg = cfg, .role = role };
	atomic_init(&st.draining, 0);
	pthread_mutex_init(&st.stop_lock, NULL);
	pthread_cond_init(&st.stop_cond, NULL);
	pthread_t redelivery;
	int redelivery_started = 0;
	wh_intake *intake = NULL;
	wh_server *srv = NULL;
	gh_setup *setup = NULL;
	measure_sandbox *sandbox = NULL;
	agent_mcp *mcp = NULL;
	ui_ctx *ui = NULL;
	ui_github *ui_gh = NULL;
	agent_services svc = { .cfg = cfg, .public_url = cfg->public_url, .queue_pr = queue_pr };
	measure_services msvc = { .cfg = cfg, .public_url = cfg->public_url, .queue_optimize = queue_optimize,
				  .queue_optimize_payload = &svc };
	pr_services prs = { .cfg = cfg };
	char mcp_url[300];

	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (base_mkdirs(cfg->data_dir, 0700) < 0) {
		base_error_set(base_error_code(), "DATA_DIR: %s", base_error_last());
		goto fail;
	}
	/* an existing DATA_DIR too: it holds the database and every run's tree
	 * (a shared sticky directory such as /tmp is left alone) */
	struct stat dd;
	if (stat(cfg->data_dir, &dd) == 0 && (dd.st_mode & 077) && !(dd.st_mode & S_ISVTX) && dd.st_uid == geteuid() &&
	    chmod(cfg->data_dir, 0700) < 0)
		base_log(BASE_LOG_WARN, "DATA_DIR: cannot make it private", "error", strerror(errno), NULL);
	char lock_path[4096];
	snprintf(lock_path, sizeof(lock_path), "%s/perfbot.lock", cfg->data_dir);
	lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lock_fd < 0) {
		base_error_set(BASE_EGENERIC, "DATA_DIR: cannot open %s: %s", lock_path, strerror(errno));
		goto fail;
	}
	if (flock(lock_fd, LOCK_EX | LOCK_NB) < 0) {
		base_error_set(BASE_EGENERIC, "DATA_DIR: another perfbot serve is using %s", cfg->data_dir);
		goto fail;
	}
	if (store_open_serving(&st.store, cfg->database_url) < 0)
		goto fail;
	/* SQLite: we hold DATA_DIR's lock, so jobs still marked running belong
	 * to a dead process.  A shared store's running jobs may be another
	 * replica's: theirs expire with their lease instead. */
	if (strcmp(store_backend_name(st.store), "sqlite") == 0 && store_job_release(st.store, NULL) < 0)
		goto fail;

	store_workers_options wopts = { .nthreads = cfg->workers, .bench_threads = cfg->bench_workers,
				      .lease_ms = (int64_t)cfg->job_lease_s * 1000,
				      .max_attempts = cfg->job_attempts, .poll_ms = 1000 };
	if (!setup_mode && gh_client_new(&st.gh, cfg, NULL) < 0)
		goto fail;
	if (pr_init() < 0)
		goto fail;
	/* without a working sandbox perfbot still receives webhooks; runs fail
	 * with the reason instead of ever running unsandboxed */
	if (measure_sandbox_new_config(&sandbox, cfg) < 0)
		base_log(BASE_LOG_ERROR, "sandbox unavailable: benchmark and agent runs will fail", "error",
			base_error_last(), NULL);
	agent_mcp_options mopts = AGENT_MCP_OPTIONS_INIT;
	if (agent_token_store_durable(&mopts.tokens, st.store) < 0 || agent_mcp_new(&mcp, &mopts) < 0)
		goto fail;
	if (store_workers_new(&st.workers, st.store, &wopts) < 0)
		goto fail;
	/* the Managed Agents worker: with PERFBOT_AGENT=managed it polls from
	 * the start (healthchecks are answered); with only the settings it
	 * starts with the first run of a repository choosing optimize.agent:
	 * managed */
	if (base_config_managed_ready(cfg) == 0) {
		if (agent_managed_backend_new(&st.managed, cfg, cfg->workers) < 0)
			goto fail;
		agent_managed_backend_set_store(st.managed, st.store);
		if (cfg->agent && !strcmp(cfg->agent, "managed") && agent_managed_backend_start(st.managed) < 0)
			goto fail;
	}
	svc.managed = st.managed;
	svc.store = prs.store = st.store;
	svc.gh = prs.gh = st.gh;
	svc.workers = st.workers;
	svc.mcp = mcp;
	svc.sandbox = sandbox;
	msvc.store = st.store;
	msvc.gh = st.gh;
	msvc.workers = st.workers;
	msvc.sandbox = sandbox;
	svc.mcp_url = mcp_url;
	mcp_url[0] = '\0';
	wh_handlers_options hopts = { .measure = &msvc, .agent = &svc, .pr = &prs };
	if (wh_handlers_register(st.workers, &hopts) < 0 || measure_bench_jobs_register(st.workers, &msvc) < 0 ||
	    agent_run_jobs_register(st.workers, &svc) < 0 || pr_jobs_register(st.workers, &prs) < 0)
		goto fail;

	wh_intake_options iopts = { .store = st.store, .secret = cfg->webhook_secret,
				    .secret_old = cfg->webhook_secret_old,
				    .insecure_no_signature = cfg->insecure_no_signature, .max_body = cfg->max_body,
				    .on_queued = wake_workers, .on_queued_payload = st.workers };
	if (intake_on && wh_intake_new(&intake, &iopts) < 0)
		goto fail;
	wh_server_options sopts = { .host = cfg->host, .port = cfg->port, .max_connections = cfg->max_connections,
				    .connection_timeout_s = 30, .max_buffered = cfg->max_buffered_bodies };
	if (wh_server_new(&srv, &sopts) < 0)
		goto fail;
	wh_route routes[] = {
		{ .path = "/healthz", .handler = handle_healthz, .payload = &st, .quick = 1 },
		{ .path = "/readyz", .handler = handle_readyz, .payload = &st, .quick = 1 },
		{ .path = "/metrics", .handler = handle_metrics, .payload = &st, .quick = 1 },
	};
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (wh_server_route(srv, &routes[i]) < 0)
			goto fail;
	wh_route mcp_route = { .path = "/mcp", .handler = agent_mcp_handle, .head_check = agent_mcp_check_head,
			       .payload = mcp, .max_body = 8u << 20 };
	if (role != ROLE_WEB && wh_server_route(srv, &mcp_route) < 0)
		goto fail;
	if (intake_on) {
		wh_route r = { .path = cfg->webhook_path, .handler = wh_intake_handle, .head_check = wh_intake_check_head,
			       .start = wh_intake_prepare, .submit = wh_intake_submit, .finish = wh_intake_finish,
			       .payload = intake, .max_body = cfg->max_body };
		if (wh_server_route(srv, &r) < 0)
			goto fail;
	}
	if (setup_mode) {
		if (gh_setup_new(&setup, cfg, NULL) < 0)
			goto fail;
		wh_route page = { .path = "/", .handler = gh_setup_handle_page, .payload = setup };
		wh_route cb = { .path = "/setup/callback", .handler = gh_setup_handle_callback, .payload = setup };
		wh_route url = { .path = "/setup/public-url", .handler = gh_setup_handle_public_url, .payload = setup,
				 .max_body = 4096 };
		if (wh_server_route(srv, &cb) < 0 || wh_server_route(srv, &url) < 0 || wh_server_route(srv, &page) < 0)
			goto fail;
	}

	/* the dashboard: its pages, its API and the sign-in with GitHub */
	ui_options uopts = { .cfg = cfg, .store = st.store, .agent = &svc };
	if (ui_github_default_new(&ui_gh, st.gh, cfg) < 0)
		goto fail;
	uopts.github = ui_gh;
	if (ui_new(&ui, &uopts) < 0)
		goto fail;
	static const char *const ui_prefixes[] = { "/ui", "/api/v1/", "/auth/" };
	/* a worker's listener serves its agents and probes only */
	for (size_t i = 0; role != ROLE_WORKER && i < sizeof(ui_prefixes) / sizeof(ui_prefixes[0]); i++) {
		wh_route r = { .path = ui_prefixes[i], .prefix = 1, .handler = ui_handle, .payload = ui,
			       .max_body = UI_MAX_BODY };
		if (wh_server_route(srv, &r) < 0)
			goto fail;
	}

	char labels[64];
	snprintf(labels, sizeof(labels), "version=\"%s\"", PERFBOT_VERSION);
	base_metric_set(base_metric_gauge("perfbot_build_info", "perfbot build", labels), 1);
	/* pre-register the outcome series so dashboards see zeros */
	static const char *outcomes[] = { "accepted", "duplicate", "bad_signature", "too_large", "bad_request" };
	for (size_t i = 0; i < sizeof(outcomes) / sizeof(outcomes[0]); i++) {
		snprintf(labels, sizeof(labels), "event=\"%s\",outcome=\"%s\"", i < 2 ? "push" : "unverified", outcomes[i]);
		base_metric_counter("perfbot_webhook_deliveries_total", "Webhook deliveries by event and outcome", labels);
	}

	if (role != ROLE_WEB && store_workers_start(st.workers) < 0)
		goto fail;
	if (wh_server_start(srv) < 0)
		goto fail;
	char url[300], port_s[16], workers_s[16], bench_s[16];
	/* where to go next: the webhook intake, or the setup page without it */
	snprintf(url, sizeof(url), "http://%s%s%s:%d%s", strchr(cfg->host, ':') ? "[" : "", cfg->host,
		 strchr(cfg->host, ':') ? "]" : "", wh_server_port(srv), intake_on ? cfg->webhook_path : "/");
	snprintf(port_s, sizeof(port_s), "%d", wh_server_port(srv));
	/* agent commands run on this machine: they reach /mcp on loopback */
	snprintf(mcp_url, sizeof(mcp_url), "http://%s%s%s:%d/mcp",
		 strchr(cfg->host, ':') ? "[" : "",
		 strcmp(cfg->host, "0.0.0.0") == 0 ? "127.0.0.1" : strcmp(cfg->host, "::") == 0 ? "::1" : cfg->host,
		 strchr(cfg->host, ':') ? "]" : "", wh_server_port(srv));
	snprintf(workers_s, sizeof(workers_s), "%d", cfg->workers);
	snprintf(bench_s, sizeof(bench_s), "%d", cfg->bench_workers);
	log_reachability(cfg, wh_server_port(srv));
	char store_shown[600];
	store_url_redact(store_shown, sizeof(store_shown), cfg->database_url);
	base_log(BASE_LOG_INFO, "listening", "url", url, "port", port_s, "workers", role == ROLE_WEB ? "0" : workers_s,
		"bench_workers", role == ROLE_WEB ? "0" : bench_s, "role", role_name, "store", store_shown,
		"data_dir", cfg->data_dir,
		"version", PERFBOT_VERSION, "mode", setup_mode ? "setup" : "app", NULL);
	if (st.gh && role != ROLE_WORKER && cfg->redelivery_interval_s > 0 &&
	    pthread_create(&redelivery, NULL, redelivery_main, &st) == 0)
		redelivery_started = 1;

	int sig = 0;
	sigwait(&sigs, &sig);
	/* not ready, and no new connections, before saying so */
	atomic_store(&st.draining, 1);
	wh_server_quiesce(srv);
	base_log(BASE_LOG_INFO, "draining", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
	if (redelivery_started) {
		pthread_mutex_lock(&st.stop_lock);
		st.stop = 1;
		pthread_cond_broadcast(&st.stop_cond);
		pthread_mutex_unlock(&st.stop_lock);
		pthread_join(redelivery, NULL);
	}
	int grace_ms = cfg->shutdown_grace_s * 1000;
	if (wh_server_wait_idle(srv, grace_ms) < 0)
		base_log(BASE_LOG_WARN, "requests still in flight at shutdown", "detail", base_error_last(), NULL);
	store_workers_stop(st.workers, grace_ms);
	if (store_workers_busy(st.workers) > 0) {
		/* Jobs outlived the grace period: their leases are released, so
		 * they run again after a restart.  Their threads still use the
		 * store and the services, so nothing is torn down under them. */
		base_log(BASE_LOG_WARN, "stopped with jobs still running; they will run again after restart", NULL);
		_exit(0);
	}
	wh_server_free(srv);
	srv = NULL;
	base_log(BASE_LOG_INFO, "stopped", NULL);
	rc = 0;
	goto done;
fail:
	fprintf(stderr, "perfbot: %s\n", base_error_last());
	rc = 1;
done:
	wh_server_free(srv);
	wh_intake_free(intake);
	gh_setup_free(setup);
	ui_free(ui);
	ui_github_default_free(ui_gh);
	if (!st.workers || store_workers_busy(st.workers) == 0) {
		store_workers_free(st.workers);
		/* after the runs: their sessions were interrupted and unbound */
		agent_managed_backend_free(st.managed);
		agent_mcp_free(mcp);
		measure_sandbox_free(sandbox);
		gh_client_free(st.gh);
		store_free(st.store);
		pr_shutdown();
	}
	if (lock_fd >= 0)
		close(lock_fd);
	return rc;
}
