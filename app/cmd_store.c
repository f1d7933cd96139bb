/* `perfbot deliveries` and `perfbot jobs`: read the store directly (WAL lets
 * them run beside a serving perfbot) and print a table or JSON.
 * `perfbot migrate` applies the schema migrations and prints the version;
 * `perfbot store copy` moves a SQLite installation to PostgreSQL. */
#include "app/cmd.h"
#include "base/error.h"
#include "store/store.h"
#include "webhooks/intake.h"
#include "webhooks/payload.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct list_opts {
	int json;
	long limit;
	const char *event;
};

static int parse_opts(struct list_opts *o, const char *cmd, int argc, char **argv, int allow_event)
{
	o->json = 0;
	o->limit = 50;
	o->event = NULL;
	static const struct option with_event[] = {
		{ "json", no_argument, NULL, 'j' },         { "limit", required_argument, NULL, 'n' },
		{ "event", required_argument, NULL, 'e' }, { NULL, 0, NULL, 0 },
	};
	static const struct option without_event[] = {
		{ "json", no_argument, NULL, 'j' }, { "limit", required_argument, NULL, 'n' }, { NULL, 0, NULL, 0 },
	};
	app_cmd_opts p = { .cmd = cmd, .longopts = allow_event ? with_event : without_event,
			   .shortopts = allow_event ? "n:e:" : "n:" };
	int c;
	while ((c = app_cmd_getopt(&p, argc, argv, 0)) != APP_CMD_END) {
		switch (c) {
		case 'j': o->json = 1; break;
		case 'e': o->event = optarg; break;
		case 'n': {
			char *end;
			errno = 0;
			o->limit = strtol(optarg, &end, 10);
			if (errno || *end || o->limit < 1) {
				fprintf(stderr, "perfbot %s: --limit: expected a positive number, got \"%s\"\n", cmd, optarg);
				return -1;
			}
			break;
		}
		default: return -1;
		}
	}
	return 0;
}

static const char *s_or(const json_t *o, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : dflt;
}

static int print_json(json_t *arr)
{
	char *s = json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (!s)
		return 1;
	puts(s);
	free(s);
	return 0;
}

/* The intake stores a delivery as it came and leaves its action,
 * installation and repository to the job that parses it; a listing reads
 * them from the body (one streaming pass each) where the row has none. */
static void describe_from_body(store *st, json_t *row)
{
	const char *id = json_string_value(json_object_get(row, "id"));
	if (!id || json_is_string(json_object_get(row, "action")) || json_is_string(json_object_get(row, "repository")))
		return;
	char *body = NULL;
	size_t len = 0;
	if (store_delivery_body(st, id, &body, &len) < 0 || wh_stored_json(&body, &len) < 0) {
		base_error_clear();
		free(body);
		return;
	}
	wh_payload_fields f;
	if (wh_payload_scan(&f, body, len) == 0) {
		if (f.action)
			json_object_set_new(row, "action", json_string(f.action));
		if (f.repository)
			json_object_set_new(row, "repository", json_string(f.repository));
		if (f.installation_id)
			json_object_set_new(row, "installation_id", json_integer(f.installation_id));
	} else {
		base_error_clear();
	}
	wh_payload_dispose(&f);
	free(body);
}

static int fetch_deliveries(store *st, json_t **rows, const struct list_opts *o)
{
	int error = store_delivery_list(st, rows, (int)o->limit, o->event);
	if (error == 0) {
		size_t i;
		json_t *r;
		json_array_foreach(*rows, i, r)
			describe_from_body(st, r);
	}
	return error;
}

static void print_deliveries(const json_t *rows)
{
	printf("%-38s %-26s %-22s %-30s %-25s %s\n", "DELIVERY", "EVENT", "ACTION", "REPOSITORY", "RECEIVED", "STATUS");
	size_t i;
	json_t *r;
	json_array_foreach(rows, i, r)
		printf("%-38s %-26s %-22s %-30s %-25s %s\n", s_or(r, "id", ""), s_or(r, "event", ""),
		       s_or(r, "action", "-"), s_or(r, "repository", "-"), s_or(r, "received", ""), s_or(r, "status", ""));
}

static int fetch_jobs(store *st, json_t **rows, const struct list_opts *o)
{
	return store_job_list(st, rows, (int)o->limit);
}

static void print_jobs(const json_t *rows)
{
	printf("%-8s %-34s %-10s %-8s %-38s %s\n", "JOB", "KIND", "STATE", "ATTEMPTS", "DELIVERY", "NOTE / ERROR");
	size_t i;
	json_t *r;
	json_array_foreach(rows, i, r)
		printf("%-8lld %-34s %-10s %-8lld %-38s %s\n", (long long)json_integer_value(json_object_get(r, "id")),
		       s_or(r, "kind", ""), s_or(r, "state", ""),
		       (long long)json_integer_value(json_object_get(r, "attempts")), s_or(r, "delivery_id", "-"),
		       s_or(r, "error", s_or(r, "note", "")));
}

/* Opens the existing store, fetches the rows and prints them as JSON or a table. */
static int list(const base_config *cfg, const char *cmd, int argc, char **argv, int allow_event,
		int (*fetch)(store *st, json_t **rows, const struct list_opts *o), void (*table)(const json_t *rows))
{
	struct list_opts o;
	if (parse_opts(&o, cmd, argc, argv, allow_event) < 0)
		return 2;
	store *st = NULL;
	json_t *rows = NULL;
	if (store_open_existing(&st, cfg->database_url) < 0 || fetch(st, &rows, &o) < 0) {
		fprintf(stderr, "perfbot: %s\n", base_error_last());
		store_free(st);
		return 1;
	}
	int rc = 0;
	if (o.json)
		rc = print_json(rows);
	else
		table(rows);
	json_decref(rows);
	store_free(st);
	return rc;
}

int app_cmd_deliveries(const base_config *cfg, int argc, char **argv)
{
	return list(cfg, "deliveries", argc, argv, 1, fetch_deliveries, print_deliveries);
}

int app_cmd_jobs(const base_config *cfg, int argc, char **argv)
{
	return list(cfg, "jobs", argc, argv, 0, fetch_jobs, print_jobs);
}

int app_cmd_migrate(const base_config *cfg, int argc, char **argv)
{
	app_cmd_opts o = { .cmd = "migrate" };
	if (app_cmd_getopt(&o, argc, argv, 0) != APP_CMD_END)
		return 2;
	char shown[600];
	store_url_redact(shown, sizeof(shown), cfg->database_url);
	store *st = NULL;
	int applied = 0, known = 0;
	if (store_open(&st, cfg->database_url) < 0 || store_schema_version(st, &applied, &known) < 0) {
		fprintf(stderr, "perfbot migrate: %s\n", base_error_last());
		store_free(st);
		return 1;
	}
	printf("%s (%s): schema version %d", shown, store_backend_name(st), applied);
	if (applied > known)
		printf(", newer than this perfbot knows (%d)\n", known);
	else
		printf(" (current)\n");
	store_free(st);
	return 0;
}

int app_cmd_store(const base_config *cfg, int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "copy") != 0) {
		fprintf(stderr, "perfbot store: expected \"copy\" (perfbot store copy --from sqlite:PATH --to postgres://...)\n");
		return 2;
	}
	static const struct option longopts[] = {
		{ "from", required_argument, NULL, 'f' },
		{ "to", required_argument, NULL, 't' },
		{ "force", no_argument, NULL, 'F' },
		{ NULL, 0, NULL, 0 },
	};
	app_cmd_opts o = { .cmd = "store copy", .longopts = longopts };
	const char *from = NULL, *to = NULL;
	int force = 0, c;
	/* the words after "copy" are its options */
	while ((c = app_cmd_getopt(&o, argc - 1, argv + 1, 0)) != APP_CMD_END) {
		switch (c) {
		case 'f': from = optarg; break;
		case 't': to = optarg; break;
		case 'F': force = 1; break;
		default: return o.status ? o.status : 2;
		}
	}
	/* defaults: this installation's SQLite file, to DATABASE_URL */
	char dflt[4200];
	if (!from) {
		snprintf(dflt, sizeof(dflt), "sqlite:%s/perfbot.db", cfg->data_dir);
		from = dflt;
	}
	if (!to && strncmp(cfg->database_url, "postgres", 8) == 0)
		to = cfg->database_url;
	if (!to) {
		fprintf(stderr, "perfbot store copy: --to: expected postgres://... (or DATABASE_URL set to it)\n");
		return 2;
	}
	char shown_from[4200], shown_to[600];
	store_url_redact(shown_from, sizeof(shown_from), from);
	store_url_redact(shown_to, sizeof(shown_to), to);
	store_copy_stats stats;
	if (store_copy(from, to, force, &stats) < 0) {
		fprintf(stderr, "perfbot store copy: %s\n", base_error_last());
		return base_error_code() == BASE_EEXISTS || base_error_code() == BASE_EINVALID ? 2 : 1;
	}
	printf("copied %lld rows (%d tables) from %s to %s\n", (long long)stats.rows, stats.tables, shown_from, shown_to);
	return 0;
}
