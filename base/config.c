/* Configuration loading (see config.h).  One table names every variable,
 * its default and how it is checked; the environment, the .env file and the
 * command line all go through it, so every subcommand reads the same
 * configuration.  The loaded struct owns all its strings. */
#include "base/config.h"
#include "base/buf.h"
#include "base/error.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <unistd.h>

extern char **environ;

enum kind { K_STR, K_INT, K_SIZE, K_BYTES, K_LEVEL, K_FORMAT, K_BOOL, K_PATHFILE };

struct var {
	const char *name;
	enum kind kind;
	const char *def;
	long min, max;   /* for K_INT */
	const char *help;
};

static const struct var vars[] = {
	{ "APP_ID", K_STR, NULL, 0, 0, "GitHub App id" },
	{ "PRIVATE_KEY", K_STR, NULL, 0, 0, "App private key: PEM, PEM with \\n, or base64 of the PEM" },
	{ "PRIVATE_KEY_PATH", K_PATHFILE, NULL, 0, 0, "file holding the App private key" },
	{ "WEBHOOK_SECRET", K_STR, NULL, 0, 0, "webhook secret (required to serve)" },
	{ "WEBHOOK_SECRET_OLD", K_STR, NULL, 0, 0, "previous secret, accepted during a rotation" },
	{ "WEBHOOK_PATH", K_STR, "/api/github/webhooks", 0, 0, "path of the webhook intake" },
	{ "GHE_HOST", K_STR, NULL, 0, 0, "GitHub Enterprise Server host name" },
	{ "GITHUB_API_URL", K_STR, NULL, 0, 0, "REST API base URL (default https://api.github.com)" },
	{ "HOST", K_STR, "127.0.0.1", 0, 0, "address to listen on" },
	{ "PORT", K_INT, "3000", 0, 65535, "port to listen on (0: any free port)" },
	{ "DATA_DIR", K_STR, "./var", 0, 0, "where the store and checkouts live" },
	{ "DATABASE_URL", K_STR, NULL, 0, 0,
	  "store URL: sqlite:PATH (default sqlite:$DATA_DIR/perfbot.db) or postgres://user:password@host:port/db" },
	{ "PERFBOT_ROLE", K_STR, "all", 0, 0,
	  "what perfbot serve runs: all | web (intake, setup, dashboard; no jobs) | worker (jobs, sandboxes, MCP; no intake)" },
	{ "WORKERS", K_INT, NULL, 1, 256, "threads for webhook events, comment commands and PR jobs (default: number of cores)" },
	{ "BENCH_WORKERS", K_INT, NULL, 1, 256, "threads for bench and agent runs (default: cores - 1, at least 1)" },
	{ "LOG_LEVEL", K_LEVEL, "info", 0, 0, "debug | info | warn | error" },
	{ "LOG_FORMAT", K_FORMAT, NULL, 0, 0, "json | pretty (default: pretty on a terminal)" },
	{ "PUBLIC_URL", K_STR, NULL, 0, 0, "URL GitHub reaches perfbot at" },
	{ "PERFBOT_AGENT", K_STR, "command", 0, 0, "agent backend: command or managed (Claude Managed Agents)" },
	{ "PERFBOT_AGENT_COMMAND", K_STR, NULL, 0, 0, "command started for each agent run" },
	{ "ANTHROPIC_API_KEY", K_STR, NULL, 0, 0, "Anthropic API key (managed backend, perfbot managed setup)" },
	{ "ANTHROPIC_BASE_URL", K_STR, "https://api.anthropic.com", 0, 0, "Anthropic API base URL (http or https)" },
	{ "PERFBOT_MANAGED_ENVIRONMENT_ID", K_STR, NULL, 0, 0, "the self-hosted environment's id (env_...)" },
	{ "PERFBOT_MANAGED_ENVIRONMENT_KEY", K_STR, NULL, 0, 0, "the environment key from the Console (polling work)" },
	{ "PERFBOT_MANAGED_MODEL", K_STR, NULL, 0, 0, "model of the managed agent (e.g. claude-opus-4-5)" },
	{ "PERFBOT_MANAGED_AGENT_ID", K_STR, NULL, 0, 0, "the managed agent's id, printed by perfbot managed setup" },
	{ "PERFBOT_SANDBOX", K_STR, "bwrap", 0, 0, "sandbox backend" },
	{ "SANDBOX_MEMORY", K_BYTES, "8GiB", 0, 0, "memory of a whole sandbox run, its /tmp included (0: no limit)" },
	{ "SANDBOX_PIDS", K_INT, "512", 0, 1000000, "processes and threads of a whole sandbox run (0: no limit)" },
	{ "SANDBOX_CPU_SECONDS", K_INT, "3600", 0, 604800,
	  "CPU time of a whole sandbox run, all processes together; a longer benchmark timeout raises it (0: no limit)" },
	{ "SANDBOX_DISK", K_BYTES, "10GiB", 0, 0, "what a sandbox run may add to its work tree (0: no limit)" },
	{ "SANDBOX_DISK_RESERVE", K_BYTES, "1GiB", 0, 0,
	  "free space kept on the work tree's disk: a sandbox run is stopped below it (0: none)" },
	{ "MAX_BODY", K_SIZE, "25MiB", 0, 0, "largest webhook body accepted" },
	{ "MAX_BUFFERED_BODIES", K_SIZE, "64MiB", 0, 0, "request bodies held in memory at once (past it: 503)" },
	{ "MAX_CONNECTIONS", K_INT, "1024", 1, 100000, "concurrent HTTP connections" },
	{ "JOB_ATTEMPTS", K_INT, "5", 1, 100, "tries before a job is marked failed" },
	{ "JOB_LEASE_SECONDS", K_INT, "300", 1, 86400, "lease a worker holds on a job" },
	{ "SHUTDOWN_GRACE_SECONDS", K_INT, "30", 0, 3600, "time running jobs get on SIGTERM" },
	{ "INSECURE_NO_SIGNATURE", K_BOOL, "0", 0, 0, "accept unsigned webhooks (local experiments only)" },
	{ "GH_ORG", K_STR, NULL, 0, 0, "organisation to register the App for" },
	{ "GITHUB_CLIENT_ID", K_STR, NULL, 0, 0, "App client id" },
	{ "GITHUB_CLIENT_SECRET", K_STR, NULL, 0, 0, "App client secret" },
	{ "GITHUB_WEB_URL", K_STR, NULL, 0, 0, "GitHub's web address for sign-in (default https://github.com or GHE_HOST)" },
	{ "REDELIVERY_INTERVAL_SECONDS", K_INT, "0", 0, 86400, "how often missed deliveries are redelivered (0: off)" },
};
#define NVARS (sizeof(vars) / sizeof(vars[0]))

/* Values wiped when the configuration is freed and never echoed in errors. */
static int is_secret(const char *name)
{
	return !strcmp(name, "PRIVATE_KEY") || strstr(name, "SECRET") || !strcmp(name, "ANTHROPIC_API_KEY") ||
	       !strcmp(name, "PERFBOT_MANAGED_ENVIRONMENT_KEY") || !strcmp(name, "DATABASE_URL");
}

struct loaded {
	base_config cfg;
	char *values[NVARS];   /* owned raw values, NULL when unset */
	char *derived[4];      /* owned derived strings */
};

static int var_index(const char *name)
{
	for (size_t i = 0; i < NVARS; i++)
		if (strcmp(vars[i].name, name) == 0)
			return (int)i;
	return -1;
}

static int set_value(struct loaded *l, int idx, const char *value, int overwrite)
{
	if (l->values[idx] && !overwrite)
		return 0;
	char *copy = strdup(value);
	if (!copy)
		return base_error_set(BASE_ENOMEM, "out of memory");
	free(l->values[idx]);
	l->values[idx] = copy;
	return 0;
}

/* ---- .env ---------------------------------------------------------------- */

int base_dotenv_parse(const char *text, int (*cb)(const char *, const char *, void *), void *payload)
{
	const char *p = text;
	int line = 1;
	int error = 0;
	base_buf key = BASE_BUF_INIT(256), val = BASE_BUF_INIT(1 << 20);
	while (*p) {
		base_buf_reset(&key);
		base_buf_reset(&val);
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\n') { p++; line++; continue; }
		if (*p == '#') {
			while (*p && *p != '\n') p++;
			continue;
		}
		if (*p == '\r' && p[1] == '\n') { p += 2; line++; continue; }
		if (strncmp(p, "export ", 7) == 0)
			p += 7;
		while (*p == ' ' || *p == '\t')
			p++;
		const char *ks = p;
		while (isalnum((unsigned char)*p) || *p == '_' || *p == '.' || *p == '-')
			p++;
		if (p == ks) {
			error = base_error_set(BASE_EINVALID, ".env line %d: expected KEY=VALUE", line);
			goto done;
		}
		base_buf_put(&key, ks, (size_t)(p - ks));
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '=') {
			error = base_error_set(BASE_EINVALID, ".env line %d: expected '=' after %s", line, key.ptr);
			goto done;
		}
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		int start_line = line;
		if (*p == '"' || *p == '\'' || *p == '`') {
			char q = *p++;
			while (*p && *p != q) {
				if (*p == '\n')
					line++;
				if (q == '"' && *p == '\\' && p[1]) {
					char c = p[1];
					char e = c == 'n' ? '\n' : c == 'r' ? '\r' : c == 't' ? '\t' : c;
					if ((error = base_buf_put(&val, &e, 1)) < 0)
						goto done;
					p += 2;
					continue;
				}
				if ((error = base_buf_put(&val, p, 1)) < 0)
					goto done;
				p++;
			}
			if (*p != q) {
				error = base_error_set(BASE_EINVALID, ".env line %d: unterminated quote for %s", start_line, key.ptr);
				goto done;
			}
			p++;
			while (*p == ' ' || *p == '\t')
				p++;
			if (*p == '#')
				while (*p && *p != '\n') p++;
			if (*p == '\r')
				p++;
			if (*p && *p != '\n') {
				error = base_error_set(BASE_EINVALID, ".env line %d: unexpected text after the closing quote of %s", line, key.ptr);
				goto done;
			}
		} else {
			const char *vs = p;
			const char *ve = p;
			while (*p && *p != '\n') {
				if (*p == '#' && (p == vs || p[-1] == ' ' || p[-1] == '\t'))
					break;
				p++;
				ve = p;
			}
			while (ve > vs && (ve[-1] == ' ' || ve[-1] == '\t' || ve[-1] == '\r'))
				ve--;
			if ((error = base_buf_put(&val, vs, (size_t)(ve - vs))) < 0)
				goto done;
			while (*p && *p != '\n')
				p++;
		}
		if ((error = cb(key.ptr, base_buf_cstr(&val), payload)) < 0)
			goto done;
	}
done:
	base_buf_dispose(&key);
	base_buf_dispose(&val);
	return error;
}

static int dotenv_cb(const char *key, const char *value, void *payload)
{
	struct loaded *l = payload;
	int idx = var_index(key);
	if (idx < 0)
		return 0; /* other tools' variables may share the file */
	return set_value(l, idx, value, 0); /* the real environment wins */
}

static int read_file_capped(char **out, const char *path, size_t cap)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return base_error_set(errno == ENOENT ? BASE_ENOTFOUND : BASE_EGENERIC, "cannot read %s: %s", path, strerror(errno));
	base_buf b = BASE_BUF_INIT(cap);
	char chunk[8192];
	size_t n;
	int error = 0;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if ((error = base_buf_put(&b, chunk, n)) < 0)
			break;
	if (!error && ferror(f))
		error = base_error_set(BASE_EGENERIC, "cannot read %s: %s", path, strerror(errno));
	fclose(f);
	if (error < 0) {
		base_buf_dispose(&b);
		return error;
	}
	*out = base_buf_detach(&b);
	return 0;
}

/* ---- values -------------------------------------------------------------- */

static int parse_long(long *out, const char *s)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end)
		return -1;
	*out = v;
	return 0;
}

static int parse_size(size_t *out, const char *s)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -1;
	unsigned long long mul = 1;
	if (!strcmp(end, "") || !strcmp(end, "B")) mul = 1;
	else if (!strcmp(end, "KiB") || !strcmp(end, "K") || !strcmp(end, "k")) mul = 1ULL << 10;
	else if (!strcmp(end, "MiB") || !strcmp(end, "M")) mul = 1ULL << 20;
	else if (!strcmp(end, "GiB") || !strcmp(end, "G")) mul = 1ULL << 30;
	else if (!strcmp(end, "KB") || !strcmp(end, "kB")) mul = 1000ULL;
	else if (!strcmp(end, "MB")) mul = 1000000ULL;
	else return -1;
	if (v > (unsigned long long)SIZE_MAX / mul)
		return -1;
	*out = (size_t)(v * mul);
	return 0;
}

/* An API credential: printable ASCII without spaces.  Its value is never
 * part of the message. */
static int check_key(const char *name, const char *v)
{
	if (!v)
		return 0;
	for (const unsigned char *p = (const unsigned char *)v; *p; p++)
		if (*p <= ' ' || *p >= 0x7f)
			return base_error_set(BASE_EINVALID, "%s: a key holds no spaces, line breaks or other control or "
							     "non-ASCII characters (value not shown)",
					      name);
	if (strlen(v) > 1024)
		return base_error_set(BASE_EINVALID, "%s: longer than 1024 characters (value not shown)", name);
	return 0;
}

/* An id or a model name: 1-128 of [A-Za-z0-9_-] plus `extra`. */
static int check_id(const char *name, const char *v, const char *extra, const char *what)
{
	if (!v)
		return 0;
	size_t n = strlen(v);
	for (const char *p = v; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-' && !strchr(extra, *p))
			n = 0;
	if (n == 0 || n > 128)
		return base_error_set(BASE_EINVALID, "%s: expected %s, got \"%.200s\"", name, what, v);
	return 0;
}

/* The managed backend's settings (their use is checked where they are
 * used: perfbot managed setup, the worker). */
/* DATABASE_URL: SQLite (sqlite:PATH or a path) or PostgreSQL (libpq's
 * postgres:// or postgresql:// URI).  The value holds a password: errors
 * name the scheme at most. */
static int check_database_url(const char *url)
{
	const char *sep = strstr(url, "://");
	if (!strncmp(url, "sqlite:", 7))
		return url[7] ? 0 : base_error_set(BASE_EINVALID, "DATABASE_URL: empty SQLite path");
	if (!strncmp(url, "postgres://", 11) || !strncmp(url, "postgresql://", 13)) {
		const char *rest = sep + 3;
		size_t auth = strcspn(rest, "/?");
		const char *at = memrchr(rest, '@', auth);
		const char *host = at ? at + 1 : rest;
		const char *end = rest + auth;
		const char *colon = host < end && *host != '[' ? memchr(host, ':', (size_t)(end - host)) : NULL;
		if (host[0] == '[')
			colon = memchr(host, ']', (size_t)(end - host)) ? strchr(memchr(host, ']', (size_t)(end - host)), ':')
									: NULL;
		if (colon && colon < end) {
			if (colon + 1 == end)
				return base_error_set(BASE_EINVALID, "DATABASE_URL: empty port");
			for (const char *p = colon + 1; p < end; p++)
				if ((*p < '0' || *p > '9') && *p != ',' && *p != ':')
					return base_error_set(BASE_EINVALID, "DATABASE_URL: the port is not a number");
		}
		for (const char *p = url; *p; p++)
			if ((unsigned char)*p <= ' ')
				return base_error_set(BASE_EINVALID, "DATABASE_URL: a space or control character in the URL");
		return 0;
	}
	if (!strncmp(url, "postgres", 8))
		return base_error_set(BASE_EINVALID, "DATABASE_URL: expected postgres://user:password@host:port/dbname");
	if (sep) {
		int n = (int)(sep - url);
		return base_error_set(BASE_EINVALID, "DATABASE_URL: unsupported store \"%.*s\" (expected sqlite:PATH or "
						     "postgres://...)", n > 20 ? 20 : n, url);
	}
	return 0;
}

static int check_managed(struct loaded *l)
{
	base_config *c = &l->cfg;
	int error;
	if ((error = check_key("ANTHROPIC_API_KEY", c->anthropic_api_key)) < 0 ||
	    (error = check_key("PERFBOT_MANAGED_ENVIRONMENT_KEY", c->managed_environment_key)) < 0 ||
	    (error = check_id("PERFBOT_MANAGED_ENVIRONMENT_ID", c->managed_environment_id, "",
			      "an environment id such as env_011CZ...")) < 0 ||
	    (error = check_id("PERFBOT_MANAGED_AGENT_ID", c->managed_agent_id, "",
			      "an agent id such as agent_011CZ...")) < 0 ||
	    (error = check_id("PERFBOT_MANAGED_MODEL", c->managed_model, ".:@/",
			      "a model id such as claude-opus-4-5")) < 0)
		return error;
	if (!c->anthropic_base_url)
		c->anthropic_base_url = "https://api.anthropic.com"; /* set but empty: the default */
	const char *u = c->anthropic_base_url;
	const char *host = !strncmp(u, "https://", 8) ? u + 8 : !strncmp(u, "http://", 7) ? u + 7 : NULL;
	int bad = !host || !*host || *host == '/' || *host == ':' || strlen(u) > 2048;
	for (const unsigned char *p = (const unsigned char *)u; !bad && *p; p++)
		bad = *p <= ' ' || *p >= 0x7f || *p == '?' || *p == '#' || *p == '\\';
	for (const char *p = host; !bad && p && *p && *p != '/'; p++)
		bad = *p == '@'; /* credentials in the URL would end up in messages */
	if (bad)
		return base_error_set(BASE_EINVALID,
				      "ANTHROPIC_BASE_URL: expected an http or https URL such as https://api.anthropic.com "
				      "(no user, query or fragment), got \"%.200s\"",
				      u);
	/* trailing slashes would double up in request paths */
	char *own = l->values[var_index("ANTHROPIC_BASE_URL")];
	if (own == u) {
		size_t len = strlen(own);
		while (len > 0 && own[len - 1] == '/' && own + len - 1 > host)
			own[--len] = '\0';
	}
	return 0;
}

int base_config_managed_ready(const base_config *c)
{
	/* the fields, not base_config_get: callers may hold a copy of the struct */
	const struct {
		const char *name, *value, *what;
	} need[] = {
		{ "ANTHROPIC_API_KEY", c->anthropic_api_key, "an API key from the Anthropic Console" },
		{ "PERFBOT_MANAGED_ENVIRONMENT_ID", c->managed_environment_id,
		  "the self-hosted environment's id (perfbot managed setup prints it)" },
		{ "PERFBOT_MANAGED_ENVIRONMENT_KEY", c->managed_environment_key,
		  "the environment's key, generated in the Anthropic Console" },
		{ "PERFBOT_MANAGED_MODEL", c->managed_model, "the agent's model, e.g. claude-opus-4-5" },
	};
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		const char *v = need[i].value;
		if (!v || !*v)
			return base_error_set(BASE_EINVALID, "%s: required by the managed agent backend: %s", need[i].name,
					      need[i].what);
	}
	return 0;
}

static int check_and_store(struct loaded *l)
{
	base_config *c = &l->cfg;
	int error;
	for (size_t i = 0; i < NVARS; i++) {
		const struct var *v = &vars[i];
		const char *s = l->values[i] ? l->values[i] : v->def;
		if (s && l->values[i] && !*s && v->kind != K_STR)
			s = v->def; /* an empty value means the default */
		long n = 0;
		uint64_t bytes = 0;
		switch (v->kind) {
		case K_INT:
			if (!s)
				break;
			if (parse_long(&n, s) < 0 || n < v->min || n > v->max)
				return base_error_set(BASE_EINVALID, "%s: expected a whole number from %ld to %ld, got \"%s\"",
						     v->name, v->min, v->max, s);
			break;
		case K_SIZE: {
			size_t sz;
			if (parse_size(&sz, s) < 0 || sz == 0)
				return base_error_set(BASE_EINVALID, "%s: expected a size such as 25MiB or 1048576, got \"%s\"", v->name, s);
			if (strcmp(v->name, "MAX_BODY") == 0)
				c->max_body = sz;
			else
				c->max_buffered_bodies = sz;
			break;
		}
		case K_BYTES: {
			size_t sz;
			if (parse_size(&sz, s) < 0)
				return base_error_set(BASE_EINVALID, "%s: expected a size such as 8GiB, 512MiB or 0, got \"%s\"",
						     v->name, s);
			if (sz != 0 && sz < (64u << 20))
				return base_error_set(BASE_EINVALID, "%s: at least 64MiB (or 0 for no limit), got \"%s\"", v->name,
						     s);
			bytes = (uint64_t)sz;
			break;
		}
		case K_LEVEL:
			if (base_log_parse_level(&c->log_level, s) < 0)
				return base_error_set(BASE_EINVALID, "%s: %s, got \"%s\"", v->name, base_error_last(), s);
			break;
		case K_FORMAT:
			if (!s || !*s)
				c->log_json = !isatty(2);
			else if (!strcmp(s, "json"))
				c->log_json = 1;
			else if (!strcmp(s, "pretty") || !strcmp(s, "text"))
				c->log_json = 0;
			else
				return base_error_set(BASE_EINVALID, "%s: expected json or pretty, got \"%s\"", v->name, s);
			break;
		case K_BOOL:
			if (!strcmp(s, "1") || !strcmp(s, "true") || !strcmp(s, "yes"))
				n = 1;
			else if (!strcmp(s, "0") || !strcmp(s, "false") || !strcmp(s, "no") || !*s)
				n = 0;
			else
				return base_error_set(BASE_EINVALID, "%s: expected true or false, got \"%s\"", v->name, s);
			break;
		case K_PATHFILE:
			if (s && *s && access(s, R_OK) != 0)
				return base_error_set(BASE_EINVALID, "%s: cannot read %s: %s", v->name, s, strerror(errno));
			break;
		case K_STR:
			break;
		}
		const char *name = v->name;
#define STR(field, var) if (!strcmp(name, var)) c->field = (s && *s) ? s : NULL
#define NUM(field, var) if (!strcmp(name, var)) c->field = (int)n
#define BYTES(field, var) if (!strcmp(name, var)) c->field = bytes
		STR(app_id, "APP_ID");
		STR(private_key, "PRIVATE_KEY");
		STR(private_key_path, "PRIVATE_KEY_PATH");
		STR(webhook_secret, "WEBHOOK_SECRET");
		STR(webhook_secret_old, "WEBHOOK_SECRET_OLD");
		STR(webhook_path, "WEBHOOK_PATH");
		STR(ghe_host, "GHE_HOST");
		STR(github_api_url, "GITHUB_API_URL");
		STR(host, "HOST");
		NUM(port, "PORT");
		STR(data_dir, "DATA_DIR");
		STR(database_url, "DATABASE_URL");
		STR(role, "PERFBOT_ROLE");
		NUM(workers, "WORKERS");
		NUM(bench_workers, "BENCH_WORKERS");
		STR(public_url, "PUBLIC_URL");
		STR(agent, "PERFBOT_AGENT");
		STR(agent_command, "PERFBOT_AGENT_COMMAND");
		STR(sandbox, "PERFBOT_SANDBOX");
		STR(anthropic_api_key, "ANTHROPIC_API_KEY");
		STR(anthropic_base_url, "ANTHROPIC_BASE_URL");
		STR(managed_environment_id, "PERFBOT_MANAGED_ENVIRONMENT_ID");
		STR(managed_environment_key, "PERFBOT_MANAGED_ENVIRONMENT_KEY");
		STR(managed_model, "PERFBOT_MANAGED_MODEL");
		STR(managed_agent_id, "PERFBOT_MANAGED_AGENT_ID");
		BYTES(sandbox_memory, "SANDBOX_MEMORY");
		NUM(sandbox_pids, "SANDBOX_PIDS");
		NUM(sandbox_cpu_s, "SANDBOX_CPU_SECONDS");
		BYTES(sandbox_disk, "SANDBOX_DISK");
		BYTES(sandbox_disk_reserve, "SANDBOX_DISK_RESERVE");
		NUM(max_connections, "MAX_CONNECTIONS");
		NUM(job_attempts, "JOB_ATTEMPTS");
		NUM(job_lease_s, "JOB_LEASE_SECONDS");
		NUM(shutdown_grace_s, "SHUTDOWN_GRACE_SECONDS");
		NUM(insecure_no_signature, "INSECURE_NO_SIGNATURE");
		STR(gh_org, "GH_ORG");
		STR(github_client_id, "GITHUB_CLIENT_ID");
		STR(github_client_secret, "GITHUB_CLIENT_SECRET");
		STR(github_web_url, "GITHUB_WEB_URL");
		NUM(redelivery_interval_s, "REDELIVERY_INTERVAL_SECONDS");
#undef STR
#undef NUM
#undef BYTES
	}
	if (c->webhook_path[0] != '/')
		return base_error_set(BASE_EINVALID, "WEBHOOK_PATH: must start with '/', got \"%s\"", c->webhook_path);
	if (c->workers == 0) {
		long nc = sysconf(_SC_NPROCESSORS_ONLN);
		c->workers = nc > 0 ? (int)nc : 2;
	}
	if (c->bench_workers == 0) {
		/* a core is left to the event threads and perfbot itself */
		long nc = sysconf(_SC_NPROCESSORS_ONLN);
		c->bench_workers = nc > 1 ? (int)nc - 1 : 1;
	}
	if (!c->github_api_url) {
		char *u = NULL;
		if (c->ghe_host) {
			size_t len = strlen(c->ghe_host) + 32;
			u = malloc(len);
			if (u)
				snprintf(u, len, "https://%s/api/v3", c->ghe_host);
		} else {
			u = strdup("https://api.github.com");
		}
		if (!u)
			return base_error_set(BASE_ENOMEM, "out of memory");
		l->derived[0] = u;
		c->github_api_url = u;
	} else {
		/* trailing slashes would double up in request paths */
		size_t len = strlen(c->github_api_url);
		while (len > 1 && c->github_api_url[len - 1] == '/')
			((char *)c->github_api_url)[--len] = '\0';
	}
	if (c->data_dir && c->data_dir[0] != '/') {
		/* absolute from here on: libgit2 resolves a relative checkout
		 * target against the repository, not the working directory */
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd)))
			return base_error_set(BASE_EINVALID, "DATA_DIR: cannot resolve %s: %s", c->data_dir, strerror(errno));
		const char *rel = c->data_dir;
		while (rel[0] == '.' && rel[1] == '/')
			rel += 2;
		size_t len = strlen(cwd) + strlen(rel) + 2;
		char *abs = malloc(len);
		if (!abs)
			return base_error_set(BASE_ENOMEM, "out of memory");
		snprintf(abs, len, "%s/%s", cwd, strcmp(rel, ".") == 0 ? "" : rel);
		while (strlen(abs) > 1 && abs[strlen(abs) - 1] == '/')
			abs[strlen(abs) - 1] = '\0';
		l->derived[3] = abs;
		c->data_dir = abs;
	}
	if (!c->database_url) {
		size_t len = strlen(c->data_dir) + 32;
		char *u = malloc(len);
		if (!u)
			return base_error_set(BASE_ENOMEM, "out of memory");
		snprintf(u, len, "sqlite:%s/perfbot.db", c->data_dir);
		l->derived[1] = u;
		c->database_url = u;
	}
	if ((error = check_database_url(c->database_url)) < 0)
		return error;
	if (c->role && strcmp(c->role, "all") && strcmp(c->role, "web") && strcmp(c->role, "worker"))
		return base_error_set(BASE_EINVALID, "PERFBOT_ROLE: expected all, web or worker, got \"%.40s\"", c->role);
	if ((error = check_managed(l)) < 0)
		return error;
	if (c->agent && !strcmp(c->agent, "managed")) {
		if ((error = base_config_managed_ready(c)) < 0)
			return error;
	} else if (c->agent && strcmp(c->agent, "command")) {
		return base_error_set(BASE_EINVALID, "PERFBOT_AGENT: expected command or managed, got \"%s\"", c->agent);
	}
	if (c->sandbox && strcmp(c->sandbox, "bwrap"))
		return base_error_set(BASE_EINVALID, "PERFBOT_SANDBOX: expected bwrap, got \"%s\"", c->sandbox);
	if (c->sandbox_pids > 0 && c->sandbox_pids < 16)
		return base_error_set(BASE_EINVALID, "SANDBOX_PIDS: at least 16 (or 0 for no limit), got %d", c->sandbox_pids);
	return 0;
}

/* "--webhook-path" -> "WEBHOOK_PATH" */
static int flag_to_var(const char *flag, size_t len)
{
	char name[64];
	if (len >= sizeof(name))
		return -1;
	for (size_t i = 0; i < len; i++)
		name[i] = flag[i] == '-' ? '_' : (char)toupper((unsigned char)flag[i]);
	name[len] = '\0';
	return var_index(name);
}

int base_config_load(base_config **out, const char *dotenv_dir, int argc, char **argv, char ***rest_out)
{
	int error = 0;
	char **rest = NULL;
	int nrest = 0;
	struct loaded *l = calloc(1, sizeof(*l));
	if (!l)
		return base_error_set(BASE_ENOMEM, "out of memory");
	if (rest_out) {
		rest = calloc((size_t)argc + 1, sizeof(char *));
		if (!rest) {
			free(l);
			return base_error_set(BASE_ENOMEM, "out of memory");
		}
	}

	/* flags first (they win), then the environment, then .env */
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
			if (rest) { rest[nrest++] = argv[i]; continue; }
			error = base_error_set(BASE_EINVALID, "unexpected argument \"%s\"", a);
			goto done;
		}
		const char *eq = strchr(a + 2, '=');
		size_t nlen = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
		int idx = flag_to_var(a + 2, nlen);
		if (idx < 0) {
			if (rest) { rest[nrest++] = argv[i]; continue; }
			error = base_error_set(BASE_EINVALID, "unknown option %s", a);
			goto done;
		}
		const char *val;
		if (vars[idx].kind == K_BOOL && !eq) {
			val = "1";
		} else if (eq) {
			val = eq + 1;
		} else if (i + 1 < argc) {
			val = argv[++i];
		} else {
			error = base_error_set(BASE_EINVALID, "option '%s' needs a value", a);
			goto done;
		}
		if ((error = set_value(l, idx, val, 1)) < 0)
			goto done;
	}
	for (char **e = environ; e && *e; e++) {
		const char *eq = strchr(*e, '=');
		if (!eq)
			continue;
		char name[64];
		size_t nlen = (size_t)(eq - *e);
		if (nlen >= sizeof(name))
			continue;
		memcpy(name, *e, nlen);
		name[nlen] = '\0';
		int idx = var_index(name);
		if (idx >= 0 && (error = set_value(l, idx, eq + 1, 0)) < 0)
			goto done;
	}
	{
		char path[4096];
		snprintf(path, sizeof(path), "%s/.env", dotenv_dir ? dotenv_dir : ".");
		char *text = NULL;
		error = read_file_capped(&text, path, 1 << 20);
		if (error == BASE_ENOTFOUND) {
			error = 0;
		} else if (error < 0) {
			goto done;
		} else {
			error = base_dotenv_parse(text, dotenv_cb, l);
			free(text);
			if (error < 0)
				goto done;
		}
	}
	error = check_and_store(l);
done:
	if (error < 0) {
		free(rest);
		base_config_free(&l->cfg);
		return error;
	}
	if (rest_out)
		*rest_out = rest;
	*out = &l->cfg;
	return 0;
}

void base_config_free(base_config *cfg)
{
	if (!cfg)
		return;
	struct loaded *l = (struct loaded *)cfg; /* cfg is the first member */
	for (size_t i = 0; i < NVARS; i++) {
		if (l->values[i] && is_secret(vars[i].name))
			explicit_bzero(l->values[i], strlen(l->values[i]));
		free(l->values[i]);
	}
	for (size_t i = 0; i < sizeof(l->derived) / sizeof(l->derived[0]); i++)
		free(l->derived[i]);
	free(l);
}

const char *base_config_get(const base_config *cfg, const char *name)
{
	const struct loaded *l = (const struct loaded *)cfg;
	int idx = var_index(name);
	if (idx < 0)
		return NULL;
	return l->values[idx] ? l->values[idx] : vars[idx].def;
}

void base_config_print_help(void)
{
	printf("Configuration (environment, .env, or --flag-name VALUE):\n");
	for (size_t i = 0; i < NVARS; i++)
		printf("  %-28s %s%s%s%s\n", vars[i].name, vars[i].help, vars[i].def ? " [" : "",
		       vars[i].def ? vars[i].def : "", vars[i].def ? "]" : "");
}
