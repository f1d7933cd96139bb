/* `perfbot doctor [--json]`: whether this installation works, from end to
 * end, one check at a time: the configuration, DATA_DIR and the store, the
 * App's credentials, permissions, events and installations on GitHub, the
 * webhook GitHub delivers to and how its last deliveries went, PUBLIC_URL
 * seen from here, the sandbox (bubblewrap, valgrind, the whole-sandbox
 * limits), the agent backend, free disk and the job queue.
 *
 * Each check ends as ok, warning or failed, with a detail line and, unless
 * it is ok, what to do about it.  A check that depends on one that failed
 * (no credentials, no sandbox) says "not checked" as a warning, so the set
 * of checks is always the same.  Exit status 1 when a check failed, 0
 * otherwise, 2 for a usage error.  The checks only read: nothing is
 * created but scratch directories (removed) and, as every command does, the
 * store's pending migrations.
 *
 * PERFBOT_DOCTOR_FREE_BYTES replaces the free-space figure of DATA_DIR's
 * disk.  It exists for the tests alone (a full disk cannot be made on
 * demand) and is no configuration variable. */
#include "app/cmd.h"
#include "app/cmd_doctor.h"

#include <curl/curl.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "agent/agent_cmd.h"
#include "base/clock.h"
#include "agent/managed_api.h"
#include "agent/managed_setup.h"
#include "base/error.h"
#include "base/url.h"
#include "base/fs.h"
#include "base/log.h"
#include "github/github.h"
#include "measure/callgrind_run.h"
#include "measure/cgroup.h"
#include "measure/sandbox.h"
#include "store/store.h"

#define GIB (1ULL << 30)
#define RECENT_DELIVERIES 100
#define QUEUE_DEEP 100              /* queued jobs that make a deep queue */
#define QUEUE_OLD_MS (10 * 60000)   /* a due job waiting longer than this */
#define DAY_MS (24 * 3600000LL)

typedef enum { DOC_OK = 0, DOC_WARN, DOC_FAIL } doc_status;

static const char *const status_names[] = { "ok", "warning", "failed" };

typedef struct doctor {
	const base_config *cfg;
	int json;
	json_t *checks;      /* owned: {check, status, detail, fix} */
	int counts[3];
	store *st;           /* owned; NULL when the store did not open */
	gh_client *gh;       /* owned; NULL without working credentials */
	json_t *app;         /* owned: GET /app */
	measure_sandbox *sb; /* owned; NULL when bwrap cannot run */
	char sandbox_error[512];
} doctor;

/* Records one check and, in text mode, prints it at once (the sandbox
 * checks take seconds).  fix may be NULL; detail is printf-style. */
static void report(doctor *d, const char *check, doc_status s, const char *fix, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void report(doctor *d, const char *check, doc_status s, const char *fix, const char *fmt, ...)
{
	char detail[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	d->counts[s]++;
	if (s == DOC_OK)
		fix = NULL;
	if (d->json) {
		json_t *o = json_pack("{s:s, s:s, s:s, s:o}", "check", check, "status", status_names[s], "detail", detail,
				      "fix", fix ? json_string(fix) : json_null());
		if (!o) /* a detail from outside that is not UTF-8 */
			o = json_pack("{s:s, s:s, s:s, s:n}", "check", check, "status", status_names[s], "detail",
				      "(not valid UTF-8)", "fix");
		json_array_append_new(d->checks, o);
		return;
	}
	printf("%-8s %-20s %s\n", status_names[s], check, detail);
	if (fix)
		printf("%-8s %-20s fix: %s\n", "", "", fix);
	fflush(stdout);
}

static int finish(doctor *d)
{
	if (d->json) {
		char *s = json_dumps(d->checks, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		if (s)
			puts(s);
		free(s);
	} else {
		printf("\n%d failed, %d warning%s, %d ok\n", d->counts[DOC_FAIL], d->counts[DOC_WARN],
		       d->counts[DOC_WARN] == 1 ? "" : "s", d->counts[DOC_OK]);
	}
	return d->counts[DOC_FAIL] ? 1 : 0;
}

static void not_checked(doctor *d, const char *check, const char *why)
{
	report(d, check, DOC_WARN, NULL, "not checked: %s", why);
}

static int set(const char *s)
{
	return s && *s;
}

/* ---- scratch directories ---------------------------------------------------- */

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)ftw;
	return (flag == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT ? -1 : 0;
}

static void remove_tree(const char *dir)
{
	if (dir && *dir)
		nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A private directory (0700) for one check: under DATA_DIR/work like a
 * run's, or in TMPDIR when DATA_DIR does not exist.  dir holds the path. */
static int scratch_dir(char dir[PATH_MAX], const base_config *cfg, const char *name)
{
	struct stat st;
	const char *tmp = getenv("TMPDIR");
	char work[PATH_MAX];
	int n;
	if ((size_t)snprintf(work, sizeof(work), "%s/work", cfg->data_dir) < sizeof(work) &&
	    stat(cfg->data_dir, &st) == 0 && S_ISDIR(st.st_mode) && base_mkdirs(work, 0700) == 0)
		n = snprintf(dir, PATH_MAX, "%.3000s/%s-XXXXXX", work, name);
	else
		n = snprintf(dir, PATH_MAX, "%.3000s/perfbot-%s-XXXXXX", set(tmp) ? tmp : "/tmp", name);
	if (n < 0 || n >= PATH_MAX)
		return base_error_set(BASE_EINVALID, "scratch path too long");
	if (!mkdtemp(dir))
		return base_error_set(BASE_EGENERIC, "cannot create %s: %s", dir, strerror(errno));
	return 0;
}

/* ---- configuration, DATA_DIR, store ------------------------------------------------ */

static void check_config(doctor *d)
{
	const base_config *cfg = d->cfg;
	char missing[128] = "";
	if (!set(cfg->app_id))
		strcat(missing, ", APP_ID");
	if (!set(cfg->private_key) && !set(cfg->private_key_path))
		strcat(missing, ", PRIVATE_KEY_PATH (or PRIVATE_KEY)");
	if (!set(cfg->webhook_secret) && !cfg->insecure_no_signature)
		strcat(missing, ", WEBHOOK_SECRET");
	if (missing[0]) {
		report(d, "config", DOC_FAIL,
		       "register the App: run `perfbot serve` and open its setup page (http://127.0.0.1:PORT/), which "
		       "writes .env; or set the variables from the App's settings page",
		       "loaded, but %s %s not set", missing + 2, strchr(missing + 2, ',') ? "are" : "is");
		return;
	}
	report(d, "config", DOC_OK, NULL, "loaded: APP_ID %s, GitHub API %s, DATA_DIR %s", cfg->app_id,
	       cfg->github_api_url, cfg->data_dir);
}

static void check_data_dir(doctor *d)
{
	const char *dir = d->cfg->data_dir;
	char fix[PATH_MAX + 128];
	struct stat st;
	if (stat(dir, &st) < 0) {
		snprintf(fix, sizeof(fix), "start `perfbot serve` once (it creates DATA_DIR), or mkdir -m 700 %s", dir);
		report(d, "data_dir", DOC_FAIL, fix, "%s: %s", dir, strerror(errno));
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		report(d, "data_dir", DOC_FAIL, "point DATA_DIR at a directory", "%s is not a directory", dir);
		return;
	}
	char probe[PATH_MAX];
	snprintf(probe, sizeof(probe), "%s/.doctor-XXXXXX", dir);
	int fd = mkstemp(probe);
	if (fd < 0) {
		snprintf(fix, sizeof(fix), "make %s writable by uid %u (chown it to perfbot's user)", dir,
			 (unsigned)geteuid());
		report(d, "data_dir", DOC_FAIL, fix, "%s is not writable: %s", dir, strerror(errno));
		return;
	}
	close(fd);
	unlink(probe);
	unsigned mode = (unsigned)st.st_mode & 07777;
	if (st.st_uid != geteuid()) {
		snprintf(fix, sizeof(fix), "chown %u %s", (unsigned)geteuid(), dir);
		report(d, "data_dir", DOC_WARN, fix, "%s belongs to uid %u, not to perfbot's uid %u", dir,
		       (unsigned)st.st_uid, (unsigned)geteuid());
		return;
	}
	if (mode & 077) {
		snprintf(fix, sizeof(fix), "chmod 700 %s (perfbot serve also does at start-up)", dir);
		report(d, "data_dir", DOC_WARN, fix, "%s has mode %04o: others can read the database and work trees (0700 "
						     "expected)", dir, mode);
		return;
	}
	report(d, "data_dir", DOC_OK, NULL, "%s, mode %04o, writable", dir, mode);
}

static void check_store(doctor *d)
{
	const char *url = d->cfg->database_url;
	char shown[600]; /* the password never shown */
	store_url_redact(shown, sizeof(shown), url);
	int applied = 0, known = 0;
	if (store_open_existing(&d->st, url) < 0) {
		report(d, "store", DOC_FAIL,
		       base_error_code() == BASE_ENOTFOUND ? "start `perfbot serve` once: it creates the store"
							  : "check DATABASE_URL and the database file's owner and mode",
		       "%s", base_error_last());
		store_free(d->st);
		d->st = NULL;
		return;
	}
	if (store_ping(d->st) < 0 || store_schema_version(d->st, &applied, &known) < 0) {
		report(d, "store", DOC_FAIL, "check the database file (sqlite3 PATH 'PRAGMA integrity_check')", "%s",
		       base_error_last());
		return;
	}
	if (applied > known) {
		report(d, "store", DOC_FAIL, "run the perfbot version that migrated it, or upgrade this one",
		       "%s: schema version %d is newer than this perfbot knows (%d)", shown, applied, known);
		return;
	}
	report(d, "store", DOC_OK, NULL, "%s, schema version %d (current)", shown, applied);
}

/* ---- GitHub: the App, its permissions and installations ------------------------------ */

static const char *const needed_permissions[][2] = {
	{ "checks", "write" },   { "contents", "write" }, { "pull_requests", "write" },
	{ "issues", "write" },   { "metadata", "read" },
};
#define NPERMS (sizeof(needed_permissions) / sizeof(needed_permissions[0]))

static const char *const needed_events[] = { "push", "pull_request", "issue_comment", "check_run", "check_suite" };
#define NEVENTS (sizeof(needed_events) / sizeof(needed_events[0]))

static int level(const char *s)
{
	if (!s)
		return 0;
	if (!strcmp(s, "read"))
		return 1;
	if (!strcmp(s, "write"))
		return 2;
	if (!strcmp(s, "admin"))
		return 3;
	return 0;
}

/* What permissions lacks of what perfbot needs, as "checks: write, ..."
 * into out; returns how many. */
static int missing_permissions(char *out, size_t cap, const json_t *permissions)
{
	int n = 0;
	out[0] = '\0';
	for (size_t i = 0; i < NPERMS; i++) {
		const char *have = json_string_value(json_object_get(permissions, needed_permissions[i][0]));
		if (level(have) >= level(needed_permissions[i][1]))
			continue;
		size_t l = strlen(out);
		snprintf(out + l, cap - l, "%s%s: %s (has %s)", n ? ", " : "", needed_permissions[i][0],
			 needed_permissions[i][1], have ? have : "none");
		n++;
	}
	return n;
}

static int missing_events(char *out, size_t cap, const json_t *events)
{
	int n = 0;
	out[0] = '\0';
	for (size_t i = 0; i < NEVENTS; i++) {
		int found = 0;
		size_t j;
		json_t *e;
		json_array_foreach(events, j, e)
			if (json_is_string(e) && !strcmp(json_string_value(e), needed_events[i]))
				found = 1;
		if (found)
			continue;
		size_t l = strlen(out);
		snprintf(out + l, cap - l, "%s%s", n ? ", " : "", needed_events[i]);
		n++;
	}
	return n;
}

static void check_app(doctor *d)
{
	const base_config *cfg = d->cfg;
	if (!set(cfg->app_id) || (!set(cfg->private_key) && !set(cfg->private_key_path))) {
		report(d, "github.app", DOC_FAIL, "register the App first (see config)", "no App is configured");
		return;
	}
	gh_options o = GH_OPTIONS_INIT;
	o.timeout_ms = 15000;
	o.max_retries = 1;
	o.backoff_ms = 200;
	o.max_wait_ms = 2000;
	o.secondary_wait_ms = 2000;
	o.max_pages = 10;
	if (gh_client_new(&d->gh, cfg, &o) < 0) {
		report(d, "github.app", DOC_FAIL,
		       "PRIVATE_KEY_PATH (or PRIVATE_KEY) must hold the App's private key as GitHub gave it (a .pem file)",
		       "the App's key does not load: %s", base_error_last());
		return;
	}
	if (gh_get_app(d->gh, &d->app) < 0) {
		int code = base_error_code();
		char fix[512];
		if (code == BASE_EAUTH || code == BASE_EFORBIDDEN)
			snprintf(fix, sizeof(fix),
				 "APP_ID %s and the private key must belong to the same App: generate a new private key on "
				 "the App's settings page and point PRIVATE_KEY_PATH at it",
				 cfg->app_id);
		else
			snprintf(fix, sizeof(fix), "check that this machine reaches %s (GITHUB_API_URL, proxy, firewall)",
				 cfg->github_api_url);
		report(d, "github.app", DOC_FAIL, fix, "GitHub refused or did not answer GET /app: %s", base_error_last());
		gh_client_free(d->gh);
		d->gh = NULL;
		return;
	}
	const char *slug = json_string_value(json_object_get(d->app, "slug"));
	report(d, "github.app", DOC_OK, NULL, "the App's JWT is accepted: %s (App id %s)", slug ? slug : "?", cfg->app_id);
}

static void check_permissions(doctor *d)
{
	if (!d->app) {
		not_checked(d, "github.permissions", "the App's credentials do not work");
		return;
	}
	char perms[512], events[256], detail[900];
	int np = missing_permissions(perms, sizeof(perms), json_object_get(d->app, "permissions"));
	int ne = missing_events(events, sizeof(events), json_object_get(d->app, "events"));
	if (np || ne) {
		snprintf(detail, sizeof(detail), "%s%s%s%s%s", np ? "missing permissions: " : "", perms,
			 np && ne ? "; " : "", ne ? "missing events: " : "", events);
		report(d, "github.permissions", DOC_FAIL,
		       "on the App's settings page (Permissions & events) grant them and subscribe to the events, then "
		       "accept the new permissions on each installation",
		       "%s", detail);
		return;
	}
	report(d, "github.permissions", DOC_OK, NULL,
	       "checks, contents, pull_requests, issues: write; metadata: read; events push, pull_request, "
	       "issue_comment, check_run, check_suite");
}

static void check_installations(doctor *d)
{
	if (!d->gh) {
		not_checked(d, "github.installations", "the App's credentials do not work");
		return;
	}
	json_t *list = NULL;
	if (gh_list_installations(d->gh, &list) < 0) {
		report(d, "github.installations", DOC_FAIL, "see github.app", "GET /app/installations: %s",
		       base_error_last());
		return;
	}
	if (json_array_size(list) == 0) {
		const char *url = json_string_value(json_object_get(d->app, "html_url"));
		char fix[512];
		snprintf(fix, sizeof(fix), "install the App on an organisation or account: %s/installations/new",
			 url ? url : "the App's public page");
		report(d, "github.installations", DOC_WARN, fix, "the App is not installed anywhere");
		json_decref(list);
		return;
	}
	char detail[1024] = "", problems[1024] = "";
	doc_status s = DOC_OK;
	size_t i;
	json_t *inst;
	json_array_foreach(list, i, inst) {
		int64_t id = (int64_t)json_integer_value(json_object_get(inst, "id"));
		const char *login = json_string_value(json_object_get(json_object_get(inst, "account"), "login"));
		char one[256], missing[512];
		int64_t repos = 0;
		size_t l = strlen(detail), pl = strlen(problems);
		if (gh_count_installation_repos(d->gh, id, &repos) < 0) {
			s = DOC_FAIL;
			snprintf(one, sizeof(one), "%s (installation %" PRId64 "): no token or repositories: %.120s",
				 login ? login : "?", id, base_error_last());
		} else {
			snprintf(one, sizeof(one), "%s (installation %" PRId64 "): %" PRId64 " repositor%s", login ? login : "?",
				 id, repos, repos == 1 ? "y" : "ies");
		}
		snprintf(detail + l, sizeof(detail) - l, "%s%s", l ? "; " : "", one);
		if (json_is_string(json_object_get(inst, "suspended_at"))) {
			if (s == DOC_OK)
				s = DOC_WARN;
			snprintf(problems + pl, sizeof(problems) - pl, "%s%s is suspended", pl ? "; " : "", login ? login : "?");
		} else if (missing_permissions(missing, sizeof(missing), json_object_get(inst, "permissions"))) {
			if (s == DOC_OK)
				s = DOC_WARN;
			snprintf(problems + pl, sizeof(problems) - pl, "%s%s has not accepted %s", pl ? "; " : "",
				 login ? login : "?", missing);
		}
	}
	json_decref(list);
	if (s == DOC_OK) {
		report(d, "github.installations", DOC_OK, NULL, "%s", detail);
		return;
	}
	report(d, "github.installations", s,
	       s == DOC_FAIL ? "see the installation's settings on GitHub: an installation whose token is refused was "
			       "suspended or removed"
			     : "accept the App's new permissions (or unsuspend it) in the installation's settings on GitHub",
	       "%s%s%s", detail, problems[0] ? "; " : "", problems);
}

/* ---- the webhook and PUBLIC_URL -------------------------------------------------------- */

/* The host of an http(s) URL, without brackets or port, into host. */
static void url_host(char *host, size_t cap, const char *url)
{
	host[0] = '\0';
	const char *p = url ? strstr(url, "://") : NULL;
	if (!p)
		return;
	p += 3;
	size_t n;
	if (*p == '[') {
		p++;
		n = strcspn(p, "]");
	} else {
		n = strcspn(p, ":/?#");
	}
	if (n >= cap)
		n = cap - 1;
	memcpy(host, p, n);
	host[n] = '\0';
}

/* 1 when GitHub cannot reach host: anything but a public address or name
 * (base/url.h; names are not resolved: this machine may see another answer
 * than GitHub). */
static int unreachable_host(const char *host)
{
	return !host[0] || base_host_classify(host) != BASE_HOST_PUBLIC;
}

/* PUBLIC_URL without its trailing slashes, plus suffix. */
static void public_url_with(char *out, size_t cap, const char *public_url, const char *suffix)
{
	size_t n = strlen(public_url);
	while (n > 0 && public_url[n - 1] == '/')
		n--;
	snprintf(out, cap, "%.*s%s", (int)n, public_url, suffix);
}

static void check_hook_config(doctor *d)
{
	const base_config *cfg = d->cfg;
	if (!d->gh) {
		not_checked(d, "webhook.config", "the App's credentials do not work");
		return;
	}
	json_t *hook = NULL;
	if (gh_get_hook_config(d->gh, &hook) < 0) {
		report(d, "webhook.config", DOC_FAIL, "set a webhook URL on the App's settings page (General → Webhook)",
		       "GET /app/hook/config: %s", base_error_last());
		return;
	}
	const char *url = json_string_value(json_object_get(hook, "url"));
	const char *type = json_string_value(json_object_get(hook, "content_type"));
	int has_secret = json_is_string(json_object_get(hook, "secret"));
	char expected[2048], host[256], fix[2300];
	url_host(host, sizeof(host), url);
	if (!set(url)) {
		report(d, "webhook.config", DOC_FAIL, "set the App's webhook URL (App settings → General → Webhook) and "
						      "tick Active",
		       "the App has no webhook URL: GitHub delivers nothing");
	} else if (set(cfg->public_url)) {
		public_url_with(expected, sizeof(expected), cfg->public_url, cfg->webhook_path);
		if (strcmp(url, expected) != 0) {
			snprintf(fix, sizeof(fix),
				 "set the App's webhook URL to %s (App settings → General → Webhook URL), or PUBLIC_URL and "
				 "WEBHOOK_PATH to what the App delivers to",
				 expected);
			report(d, "webhook.config", DOC_FAIL, fix, "GitHub delivers to %s, but perfbot is at %s", url, expected);
		} else if (!has_secret) {
			report(d, "webhook.config", DOC_FAIL, "set the App's webhook secret to the value of WEBHOOK_SECRET",
			       "the App's webhook has no secret: perfbot refuses every unsigned delivery");
		} else if (!type || strcmp(type, "json") != 0) {
			report(d, "webhook.config", DOC_WARN, "set the App's webhook content type to application/json",
			       "deliveries to %s are sent as %s (accepted, but json is expected)", url, type ? type : "?");
		} else {
			report(d, "webhook.config", DOC_OK, NULL, "GitHub delivers to %s (json, signed)", url);
		}
	} else if (unreachable_host(host)) {
		report(d, "webhook.config", DOC_FAIL,
		       "expose perfbot through a reverse proxy or tunnel, set PUBLIC_URL to that address and the App's "
		       "webhook URL to PUBLIC_URL + WEBHOOK_PATH",
		       "the App delivers to %s, an address GitHub cannot reach", url);
	} else {
		report(d, "webhook.config", DOC_WARN, "set PUBLIC_URL to the address GitHub reaches perfbot at",
		       "GitHub delivers to %s; PUBLIC_URL is not set, so it cannot be compared", url);
	}
	json_decref(hook);
}

static void check_deliveries(doctor *d)
{
	if (!d->gh) {
		not_checked(d, "webhook.deliveries", "the App's credentials do not work");
		return;
	}
	json_t *list = NULL;
	if (gh_list_recent_deliveries(d->gh, RECENT_DELIVERIES, &list) < 0) {
		report(d, "webhook.deliveries", DOC_FAIL, "see github.app and webhook.config", "GET /app/hook/deliveries: %s",
		       base_error_last());
		return;
	}
	size_t total = json_array_size(list), failed = 0, i;
	json_t *e, *newest = NULL, *last_failed = NULL;
	json_array_foreach(list, i, e) {
		json_int_t id = json_integer_value(json_object_get(e, "id"));
		json_int_t code = json_integer_value(json_object_get(e, "status_code"));
		if (!newest || id > json_integer_value(json_object_get(newest, "id")))
			newest = e;
		if (code >= 200 && code < 300)
			continue;
		failed++;
		if (!last_failed || id > json_integer_value(json_object_get(last_failed, "id")))
			last_failed = e;
	}
	if (!total) {
		report(d, "webhook.deliveries", DOC_OK, NULL, "no deliveries yet");
	} else if (!failed) {
		report(d, "webhook.deliveries", DOC_OK, NULL, "%zu recent deliver%s, all succeeded", total,
		       total == 1 ? "y" : "ies");
	} else {
		json_int_t code = json_integer_value(json_object_get(last_failed, "status_code"));
		const char *when = json_string_value(json_object_get(last_failed, "delivered_at"));
		const char *event = json_string_value(json_object_get(last_failed, "event"));
		const char *fix = code == 401 ? "WEBHOOK_SECRET must equal the App's webhook secret"
				  : code == 404 ? "the App's webhook URL path must be WEBHOOK_PATH (see webhook.config)"
				  : code == 0   ? "GitHub could not connect: PUBLIC_URL must reach perfbot from the internet "
						  "(see public_url and webhook.config)"
						: "check that perfbot and its proxy run; perfbot redelivers the failed deliveries "
						  "it never stored (REDELIVERY_INTERVAL_SECONDS)";
		int newest_failed = newest == last_failed;
		report(d, "webhook.deliveries", newest_failed ? DOC_FAIL : DOC_WARN, fix,
		       "%zu of the last %zu deliveries failed; the last failure: status %" JSON_INTEGER_FORMAT
		       " (%s, %s)%s",
		       failed, total, code, event ? event : "?", when ? when : "?",
		       newest_failed ? ", and it is the newest delivery" : "; newer ones succeeded");
	}
	json_decref(list);
}

static size_t discard(char *data, size_t size, size_t n, void *payload)
{
	(void)data, (void)payload;
	return size * n;
}

static void check_public_url(doctor *d)
{
	const char *pub = d->cfg->public_url;
	if (!set(pub)) {
		report(d, "public_url", DOC_WARN,
		       "set PUBLIC_URL to the https address a reverse proxy or tunnel exposes (README: Reaching perfbot "
		       "from GitHub)",
		       "PUBLIC_URL is not set: GitHub can only reach perfbot through an address you expose");
		return;
	}
	char url[2048], host[256], err[CURL_ERROR_SIZE] = "";
	public_url_with(url, sizeof(url), pub, "/healthz");
	url_host(host, sizeof(host), pub);
	long status = 0;
	CURL *h = curl_easy_init();
	CURLcode rc = CURLE_FAILED_INIT;
	if (h) {
		curl_easy_setopt(h, CURLOPT_URL, url);
		curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
		curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
		curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
		if ((rc = curl_easy_perform(h)) == CURLE_OK)
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_cleanup(h);
	}
	if (rc != CURLE_OK || status != 200) {
		char detail[600];
		if (rc != CURLE_OK)
			snprintf(detail, sizeof(detail), "%s", err[0] ? err : curl_easy_strerror(rc));
		else
			snprintf(detail, sizeof(detail), "status %ld", status);
		report(d, "public_url", DOC_FAIL,
		       "make the proxy or tunnel at PUBLIC_URL forward to perfbot's HOST:PORT (and keep perfbot serve "
		       "running)",
		       "GET %s from this machine: %s", url, detail);
		return;
	}
	if (unreachable_host(host)) {
		report(d, "public_url", DOC_WARN,
		       "set PUBLIC_URL to an address GitHub can reach (a reverse proxy or tunnel)",
		       "%s answers, but %s is a loopback or private address GitHub cannot reach", url, host);
		return;
	}
	report(d, "public_url", DOC_OK, NULL, "%s answers 200 from this machine", url);
}

/* ---- the sandbox ----------------------------------------------------------------------- */

static const char *const BWRAP_FIX =
	"install bubblewrap (bwrap on PATH) and let perfbot's user create user namespaces "
	"(sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0), or run perfbot as root";

static void check_bwrap(doctor *d)
{
	if (measure_sandbox_new_config(&d->sb, d->cfg) < 0) {
		snprintf(d->sandbox_error, sizeof(d->sandbox_error), "%s", base_error_last());
		report(d, "sandbox.bwrap", DOC_FAIL, BWRAP_FIX, "%s", d->sandbox_error);
		d->sb = NULL;
		return;
	}
	report(d, "sandbox.bwrap", DOC_OK, NULL, "bubblewrap creates the sandbox's namespaces (a probe ran /bin/true)");
}

/* One callgrind count of `true` in the sandbox. */
static int count_once(doctor *d, uint64_t *ir, const char *ws, const char *scratch)
{
	measure_cg_profile p;
	measure_sandbox_result r;
	measure_cg_run run = MEASURE_CG_RUN_INIT;
	run.workspace = ws;
	run.command = "true";
	run.scratch_dir = scratch;
	run.limits.timeout_s = 120;
	int error = measure_cg_measure(&p, &r, d->sb, &run);
	if (error < 0) {
		char *tail = measure_sandbox_result_tail(&r, 300);
		if (tail && *tail)
			base_error_set(error, "%s: %s", base_error_last(), tail);
		free(tail);
	}
	*ir = p.totals.ev[MEASURE_CG_IR];
	measure_cg_profile_dispose(&p);
	measure_sandbox_result_dispose(&r);
	return error;
}

static void check_valgrind(doctor *d)
{
	if (!d->sb) {
		not_checked(d, "sandbox.valgrind", "no sandbox (see sandbox.bwrap)");
		return;
	}
	char dir[PATH_MAX], ws[PATH_MAX + 8];
	uint64_t a = 0, b = 0;
	int error = scratch_dir(dir, d->cfg, "doctor");
	if (error == 0) {
		snprintf(ws, sizeof(ws), "%s/ws", dir);
		if (mkdir(ws, 0700) < 0)
			error = base_error_set(BASE_EGENERIC, "mkdir %s: %s", ws, strerror(errno));
		else if ((error = measure_sandbox_prepare_dir(d->sb, ws)) == 0 &&
			 (error = count_once(d, &a, ws, dir)) == 0)
			error = count_once(d, &b, ws, dir);
		remove_tree(dir);
	}
	if (error < 0) {
		report(d, "sandbox.valgrind", DOC_FAIL,
		       "install valgrind (and setarch, util-linux) where the sandbox sees it (/usr)",
		       "callgrind did not run `true` in the sandbox: %s", base_error_last());
	} else if (a == 0 || a != b) {
		report(d, "sandbox.valgrind", DOC_FAIL,
		       "measurements are not deterministic here: check that setarch -R works (ASLR) and valgrind is not "
		       "wrapped",
		       "`true` under callgrind counted %" PRIu64 " then %" PRIu64 " instructions", a, b);
	} else {
		report(d, "sandbox.valgrind", DOC_OK, NULL,
		       "`true` under callgrind counts %" PRIu64 " instructions, twice alike", a);
	}
}

static void check_limits(doctor *d)
{
	measure_cgroups *cgs = NULL;
	if (measure_cgroups_probe(&cgs, NULL) < 0) {
		report(d, "sandbox.limits", DOC_FAIL, "see the error", "%s", base_error_last());
		return;
	}
	if (measure_cgroups_kind(cgs) == MEASURE_CGROUP_NONE)
		report(d, "sandbox.limits", DOC_WARN,
		       "give perfbot a cgroup it may write (systemd: Delegate=yes in its unit; a container: a writable "
		       "/sys/fs/cgroup)",
		       "rlimits only: SANDBOX_MEMORY and SANDBOX_PIDS hold per process, not for a whole sandbox run");
	else
		report(d, "sandbox.limits", DOC_OK, NULL, "whole-sandbox limits hold through %s",
		       measure_cgroups_describe(cgs));
	measure_cgroups_free(cgs);
}

/* ---- the agent backend -------------------------------------------------------------- */

/* The program the agent command starts: its first word after VAR=value
 * assignments, quotes removed, into out. */
static void first_word(char *out, size_t cap, const char *cmd)
{
	out[0] = '\0';
	for (const char *p = cmd; *p;) {
		while (*p == ' ' || *p == '\t')
			p++;
		size_t n = 0;
		char quote = 0;
		for (; *p && (quote || (*p != ' ' && *p != '\t')); p++) {
			if (!quote && (*p == '\'' || *p == '"'))
				quote = *p;
			else if (quote && *p == quote)
				quote = 0;
			else if (n + 1 < cap)
				out[n++] = *p;
		}
		out[n] = '\0';
		const char *eq = strchr(out, '=');
		if (!n || !eq || strcspn(out, "=/") != (size_t)(eq - out))
			return;
	}
	out[0] = '\0';
}

static int on_path(const char *name)
{
	if (strchr(name, '/'))
		return access(name, X_OK) == 0;
	const char *p = getenv("PATH");
	for (p = p ? p : ""; *p;) {
		size_t l = strcspn(p, ":");
		char cand[PATH_MAX];
		if (l && (size_t)snprintf(cand, sizeof(cand), "%.*s/%s", (int)l, p, name) < sizeof(cand) &&
		    access(cand, X_OK) == 0)
			return 1;
		p += l;
		if (*p == ':')
			p++;
	}
	return 0;
}

/* The Managed Agents settings (perfbot managed setup), when there are any:
 * read-only calls with the API key. */
static void check_managed(doctor *d)
{
	const base_config *cfg = d->cfg;
	if (!set(cfg->anthropic_api_key)) {
		report(d, "agent.managed", DOC_OK, NULL, "not configured (ANTHROPIC_API_KEY is not set)");
		return;
	}
	agent_managed_options mo = AGENT_MANAGED_OPTIONS_INIT;
	mo.base_url = cfg->anthropic_base_url;
	mo.max_retries = 1;
	mo.timeout_ms = 15000;
	agent_managed_client *c = NULL;
	char detail[512];
	int error = agent_managed_client_new(&c, &mo);
	if (error == 0)
		error = agent_managed_verify(detail, sizeof(detail), c, cfg->anthropic_api_key,
					     set(cfg->managed_agent_id) ? cfg->managed_agent_id : NULL,
					     set(cfg->managed_environment_id) ? cfg->managed_environment_id : NULL);
	agent_managed_client_free(c);
	if (error < 0) {
		report(d, "agent.managed", DOC_FAIL,
		       "check ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL), then run perfbot managed setup and add the settings it "
		       "prints",
		       "%s", base_error_last());
		return;
	}
	report(d, "agent.managed", DOC_OK, NULL, "%s", detail);
}

static void check_agent(doctor *d)
{
	const base_config *cfg = d->cfg;
	if (!set(cfg->agent_command) && cfg->agent && !strcmp(cfg->agent, "managed")) {
		report(d, "agent", DOC_OK, NULL, "PERFBOT_AGENT=managed: Claude Managed Agents runs the agent (see agent.managed)");
		return;
	}
	if (!set(cfg->agent_command)) {
		report(d, "agent", DOC_WARN, "set PERFBOT_AGENT_COMMAND (README: Agent runs)",
		       "no agent command is configured: /perfbot optimize fails");
		return;
	}
	char prog[PATH_MAX], fix[PATH_MAX + 128];
	first_word(prog, sizeof(prog), cfg->agent_command);
	if (!prog[0] || !on_path(prog)) {
		snprintf(fix, sizeof(fix), "install %s where perfbot's PATH finds it (or give its full path), readable by "
					   "every user", prog[0] ? prog : "the agent");
		report(d, "agent", DOC_FAIL, fix, "the agent command's program %s%s%s is not found on PATH",
		       prog[0] ? "\"" : "", prog[0] ? prog : "(none)", prog[0] ? "\"" : "");
		return;
	}
	char dir[PATH_MAX];
	agent_cmd_result res;
	memset(&res, 0, sizeof(res));
	int error = scratch_dir(dir, cfg, "doctor-agent");
	if (error == 0) {
		const char *hide[] = { cfg->data_dir, NULL };
		agent_cmd_options o = AGENT_CMD_OPTIONS_INIT;
		o.command = "true";
		o.workdir = dir;
		o.hide = hide;
		o.wall_ms = 30000;
		error = agent_cmd_run(&res, &o);
		if (error == 0 && res.exit_code != 0)
			error = base_error_set(BASE_EGENERIC, "`true` exited %d under the agent's confinement: %.200s",
					      res.exit_code, res.output ? res.output : "");
		agent_cmd_result_dispose(&res);
		remove_tree(dir);
	}
	if (error < 0) {
		report(d, "agent", DOC_FAIL, BWRAP_FIX, "%s", base_error_last());
		return;
	}
	report(d, "agent", DOC_OK, NULL, "%s is on PATH and bubblewrap confines the agent command", prog);
}

/* ---- disk and queue ------------------------------------------------------------------ */

static void human(char *out, size_t cap, uint64_t bytes)
{
	if (bytes >= GIB)
		snprintf(out, cap, "%.1f GiB", (double)bytes / (double)GIB);
	else
		snprintf(out, cap, "%.1f MiB", (double)bytes / (double)(1u << 20));
}

static void check_disk(doctor *d)
{
	const base_config *cfg = d->cfg;
	uint64_t free_bytes = 0;
	const char *fake = getenv("PERFBOT_DOCTOR_FREE_BYTES");
	if (set(fake)) {
		free_bytes = strtoull(fake, NULL, 10);
	} else {
		struct statvfs sv;
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s", cfg->data_dir);
		/* DATA_DIR, or the nearest existing folder above it */
		while (statvfs(path, &sv) < 0) {
			char *slash = strrchr(path, '/');
			if (!slash || slash == path) {
				snprintf(path, sizeof(path), "%s", slash == path ? "/" : ".");
				if (statvfs(path, &sv) < 0) {
					report(d, "disk", DOC_FAIL, "check DATA_DIR", "statvfs %s: %s", path, strerror(errno));
					return;
				}
				break;
			}
			*slash = '\0';
		}
		free_bytes = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
	}
	uint64_t reserve = cfg->sandbox_disk_reserve, margin = cfg->sandbox_disk ? cfg->sandbox_disk : GIB;
	char f[32], r[32], w[32], fix[256];
	human(f, sizeof(f), free_bytes);
	human(r, sizeof(r), reserve);
	human(w, sizeof(w), reserve + margin);
	snprintf(fix, sizeof(fix), "free space on DATA_DIR's disk (%s), or move DATA_DIR to a larger one", cfg->data_dir);
	if (free_bytes < reserve)
		report(d, "disk", DOC_FAIL, fix, "%s free, under SANDBOX_DISK_RESERVE (%s): every sandbox run is stopped", f, r);
	else if (free_bytes < reserve + margin)
		report(d, "disk", DOC_WARN, fix,
		       "%s free, under %s (SANDBOX_DISK_RESERVE plus SANDBOX_DISK): a run that grows its tree is stopped", f,
		       w);
	else
		report(d, "disk", DOC_OK, NULL, "%s free on DATA_DIR's disk (reserve %s)", f, r);
}

static void check_queue(doctor *d)
{
	if (!d->st) {
		not_checked(d, "queue", "the store did not open");
		return;
	}
	store_queue_stats q = { 0 };
	int64_t now = base_wall_ms();
	if (store_queue_stats_get(d->st, &q, now, now - DAY_MS) < 0) {
		report(d, "queue", DOC_FAIL, "see store", "%s", base_error_last());
		return;
	}
	int64_t waited_s = q.oldest_due_ms ? (now - q.oldest_due_ms) / 1000 : 0;
	char detail[256];
	snprintf(detail, sizeof(detail), "%" PRId64 " queued, the oldest due job waiting %" PRId64 " s, %" PRId64
		 " failed in the last day", q.queued, waited_s, q.failed_since);
	if (q.queued >= QUEUE_DEEP || waited_s * 1000 > QUEUE_OLD_MS)
		report(d, "queue", DOC_WARN,
		       "check that perfbot serve runs and its workers are not stuck (`perfbot jobs`); raise WORKERS or "
		       "BENCH_WORKERS if it keeps growing",
		       "deep queue: %s", detail);
	else if (q.failed_since > 0)
		report(d, "queue", DOC_WARN, "see why with `perfbot jobs` (the error column)", "%s", detail);
	else
		report(d, "queue", DOC_OK, NULL, "%s", detail);
}

/* ---- entry points ------------------------------------------------------------------- */

static int parse_json_flag(int argc, char **argv, int *json)
{
	static const struct option longopts[] = { { "json", no_argument, NULL, 'j' }, { NULL, 0, NULL, 0 } };
	app_cmd_opts o = { .cmd = "doctor", .longopts = longopts };
	int c;
	*json = 0;
	while ((c = app_cmd_getopt(&o, argc, argv, 0)) != APP_CMD_END) {
		if (c != 'j')
			return o.status ? o.status : 2;
		*json = 1;
	}
	return 0;
}

int app_cmd_doctor_unloaded(int argc, char **argv, const char *error)
{
	doctor d = { 0 };
	/* the options configuration did not take are the doctor's own */
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--json"))
			d.json = 1;
	if (!(d.checks = json_array()))
		return 1;
	report(&d, "config", DOC_FAIL, "correct the variable named (environment, .env in the working directory or "
				       "--VAR flag); `perfbot doctor --help` lists them",
	       "does not load: %s", error);
	int rc = finish(&d);
	json_decref(d.checks);
	return rc;
}

int app_cmd_doctor(const base_config *cfg, int argc, char **argv)
{
	doctor d = { .cfg = cfg };
	int rc = parse_json_flag(argc, argv, &d.json);
	if (rc)
		return rc;
	/* the report is the output: module logs would only repeat it */
	if (cfg->log_level > BASE_LOG_DEBUG)
		base_log_configure(BASE_LOG_OFF, cfg->log_json, 2);
	if (!(d.checks = json_array())) {
		fprintf(stderr, "perfbot doctor: out of memory\n");
		return 1;
	}
	check_config(&d);
	check_data_dir(&d);
	check_store(&d);
	check_app(&d);
	check_permissions(&d);
	check_installations(&d);
	check_hook_config(&d);
	check_deliveries(&d);
	check_public_url(&d);
	check_bwrap(&d);
	check_valgrind(&d);
	check_limits(&d);
	check_agent(&d);
	check_managed(&d);
	check_disk(&d);
	check_queue(&d);
	rc = finish(&d);
	measure_sandbox_free(d.sb);
	json_decref(d.app);
	gh_client_free(d.gh);
	store_free(d.st);
	json_decref(d.checks);
	return rc;
}
