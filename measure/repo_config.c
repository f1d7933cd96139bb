/* `.github/perfbot.yml` parsing (see repo_config.h).
 *
 * libyaml loads the text into a node tree (with line/column marks); a
 * walker checks each mapping against its list of allowed keys and fills the
 * typed struct.  Every problem stops the parse with one message naming the
 * 1-based line and column, the key and what was expected.  The input is a
 * repository file, i.e. untrusted: sizes are capped, nothing asserts on it.
 * Pure; thread-safe. */
#include "measure/repo_config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "base/error.h"

#define MAX_BENCHMARKS 200
#define MAX_BRANCHES 100
#define MAX_GLOBS 200
#define MAX_NAME 100
#define MAX_COMMAND 4096
#define MAX_TIMEOUT_S (6 * 3600)
#define DEFAULT_TIMEOUT_S 600

typedef struct walker {
	yaml_document_t *doc;
	measure_repo_config *cfg;
} walker;

static int fail(const yaml_node_t *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(const yaml_node_t *n, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!n)
		return base_error_set(BASE_EINVALID, "%s", msg);
	return base_error_set(BASE_EINVALID, "line %lu, column %lu: %s", (unsigned long)n->start_mark.line + 1,
			     (unsigned long)n->start_mark.column + 1, msg);
}

/* A scalar's text for messages: quoted, shortened, or the node's kind. */
static void describe(char *buf, size_t size, const yaml_node_t *n)
{
	if (n->type == YAML_SCALAR_NODE) {
		size_t l = n->data.scalar.length;
		int cut = l > 40;
		snprintf(buf, size, "\"%.*s%s\"", (int)(cut ? 40 : l), (const char *)n->data.scalar.value,
			 cut ? "..." : "");
	} else if (n->type == YAML_SEQUENCE_NODE) {
		snprintf(buf, size, "a list");
	} else {
		snprintf(buf, size, "a mapping");
	}
}

static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 64 || lb > 64)
		return 99;
	size_t prev[65], cur[65];
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t sub = prev[j - 1] + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
			size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
			cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
		}
		memcpy(prev, cur, (lb + 1) * sizeof(size_t));
	}
	return prev[lb];
}

static int unknown_key(const yaml_node_t *key, const char *where, const char *const *allowed)
{
	const char *k = (const char *)key->data.scalar.value;
	const char *best = NULL;
	size_t bestd = 99;
	for (size_t i = 0; allowed[i]; i++) {
		size_t d = edit_distance(k, allowed[i]);
		if (d < bestd) {
			bestd = d;
			best = allowed[i];
		}
	}
	size_t lk = strlen(k);
	if (best && bestd <= (lk <= 4 ? 1 : lk <= 8 ? 2 : 3))
		return fail(key, "unknown key \"%.60s\"%s%s (did you mean \"%s\"?)", k, where ? " in " : "",
			    where ? where : "", best);
	char list[512] = "";
	size_t pos = 0;
	for (size_t i = 0; allowed[i] && pos < sizeof(list); i++)
		pos += (size_t)snprintf(list + pos, sizeof(list) - pos, "%s%s", i ? ", " : "", allowed[i]);
	return fail(key, "unknown key \"%.60s\"%s%s (expected one of: %s)", k, where ? " in " : "", where ? where : "",
		    list);
}

static const char *scalar(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

static int expect_string(char **out, const yaml_node_t *v, const char *key, size_t max)
{
	char got[64];
	if (v->type != YAML_SCALAR_NODE) {
		describe(got, sizeof(got), v);
		return fail(v, "%s: expected a string, got %s", key, got);
	}
	if (v->data.scalar.length == 0)
		return fail(v, "%s: expected a non-empty string", key);
	if (v->data.scalar.length > max)
		return fail(v, "%s: longer than %zu characters", key, max);
	if (strlen(scalar(v)) != v->data.scalar.length)
		return fail(v, "%s: contains a NUL character", key);
	char *s = strdup(scalar(v));
	if (!s)
		return base_error_set(BASE_ENOMEM, "out of memory");
	free(*out);
	*out = s;
	return 0;
}

static int expect_percent(double *out, const yaml_node_t *v, const char *key)
{
	char got[64];
	describe(got, sizeof(got), v);
	if (v->type != YAML_SCALAR_NODE || v->data.scalar.length < 2 || v->data.scalar.length > 20)
		return fail(v, "%s: expected a percentage like 3%%, got %s", key, got);
	const char *s = scalar(v);
	size_t l = v->data.scalar.length;
	char num[32];
	memcpy(num, s, l - 1);
	num[l - 1] = '\0';
	char *end;
	errno = 0;
	double d = strtod(num, &end);
	if (s[l - 1] != '%' || errno || end == num || *end || !isdigit((unsigned char)num[0]) || !isfinite(d))
		return fail(v, "%s: expected a percentage like 3%%, got %s", key, got);
	if (d <= 0 || d > 1000)
		return fail(v, "%s: expected a percentage between 0%% and 1000%%, got %s", key, got);
	*out = d;
	return 0;
}

static int expect_int(int *out, const yaml_node_t *v, const char *key, long min, long max)
{
	char got[64];
	describe(got, sizeof(got), v);
	if (v->type != YAML_SCALAR_NODE)
		return fail(v, "%s: expected a whole number, got %s", key, got);
	const char *s = scalar(v);
	char *end;
	errno = 0;
	long n = strtol(s, &end, 10);
	if (errno || end == s || *end || !isdigit((unsigned char)s[0]))
		return fail(v, "%s: expected a whole number, got %s", key, got);
	if (n < min || n > max)
		return fail(v, "%s: expected a number from %ld to %ld, got %s", key, min, max, got);
	*out = (int)n;
	return 0;
}

/* "90", "90s", "10m", "1h" */
static int expect_duration(int *out, const yaml_node_t *v, const char *key)
{
	char got[64];
	describe(got, sizeof(got), v);
	if (v->type != YAML_SCALAR_NODE)
		return fail(v, "%s: expected a duration like 10m or 90s, got %s", key, got);
	const char *s = scalar(v);
	char *end;
	errno = 0;
	long n = strtol(s, &end, 10);
	long mult = 1;
	if (*end == 's')
		end++;
	else if (*end == 'm')
		mult = 60, end++;
	else if (*end == 'h')
		mult = 3600, end++;
	if (errno || end == s || *end || !isdigit((unsigned char)s[0]) || n <= 0 || n > MAX_TIMEOUT_S ||
	    n * mult > MAX_TIMEOUT_S)
		return fail(v, "%s: expected a duration like 10m or 90s (at most 6h), got %s", key, got);
	*out = (int)(n * mult);
	return 0;
}

typedef int (*pair_fn)(walker *w, const yaml_node_t *key, const yaml_node_t *val, void *payload);

/* Walks a mapping: keys must be plain scalars from `allowed`, each at most once. */
static int walk_mapping(walker *w, const yaml_node_t *map, const char *what, const char *where,
			const char *const *allowed, pair_fn fn, void *payload)
{
	char got[64];
	if (map->type != YAML_MAPPING_NODE) {
		describe(got, sizeof(got), map);
		return fail(map, "%s: expected a mapping of keys, got %s", what, got);
	}
	unsigned seen = 0;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(w->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(w->doc, p->value);
		if (!k || !v)
			return fail(map, "%s: malformed mapping", what);
		if (k->type != YAML_SCALAR_NODE) {
			describe(got, sizeof(got), k);
			return fail(k, "%s: expected a key name, got %s", what, got);
		}
		int idx = -1;
		for (int i = 0; allowed[i]; i++)
			if (strcmp(allowed[i], scalar(k)) == 0)
				idx = i;
		if (idx < 0)
			return unknown_key(k, where, allowed);
		if (seen & (1u << idx))
			return fail(k, "%s: duplicate key", scalar(k));
		seen |= 1u << idx;
		int error = fn(w, k, v, payload);
		if (error < 0)
			return error;
	}
	return 0;
}

static const char *const benchmark_keys[] = { "name", "command", "mode", "threshold", "timeout", NULL };

typedef struct bench_state {
	measure_benchmark_config *b;
	int has_threshold, has_timeout;
} bench_state;

static int bench_pair(walker *w, const yaml_node_t *k, const yaml_node_t *v, void *payload)
{
	(void)w;
	bench_state *bs = payload;
	measure_benchmark_config *b = bs->b;
	const char *key = scalar(k);
	char got[64];
	if (strcmp(key, "name") == 0) {
		int error = expect_string(&b->name, v, "name", MAX_NAME);
		if (error < 0)
			return error;
		for (const char *s = b->name; *s; s++) {
			if (!isalnum((unsigned char)*s) && !strchr("._-", *s)) {
				describe(got, sizeof(got), v);
				return fail(v, "name: expected letters, digits, '.', '_' or '-', got %s", got);
			}
		}
		return 0;
	}
	if (strcmp(key, "command") == 0)
		return expect_string(&b->command, v, "command", MAX_COMMAND);
	if (strcmp(key, "mode") == 0) {
		if (v->type == YAML_SCALAR_NODE && strcmp(scalar(v), "process") == 0)
			b->mode = MEASURE_MODE_PROCESS;
		else if (v->type == YAML_SCALAR_NODE && strcmp(scalar(v), "region") == 0)
			b->mode = MEASURE_MODE_REGION;
		else {
			describe(got, sizeof(got), v);
			return fail(v, "mode: expected process or region, got %s", got);
		}
		return 0;
	}
	if (strcmp(key, "threshold") == 0) {
		bs->has_threshold = 1;
		return expect_percent(&b->threshold_pct, v, "threshold");
	}
	bs->has_timeout = 1;
	return expect_duration(&b->timeout_s, v, "timeout");
}

static int parse_benchmarks(walker *w, const yaml_node_t *v, bench_state **states_out)
{
	char got[64];
	measure_repo_config *cfg = w->cfg;
	if (v->type != YAML_SEQUENCE_NODE) {
		describe(got, sizeof(got), v);
		return fail(v, "benchmarks: expected a list of benchmarks (- name: ..., command: ...), got %s", got);
	}
	size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
	if (n == 0)
		return fail(v, "benchmarks: expected at least one benchmark");
	if (n > MAX_BENCHMARKS)
		return fail(v, "benchmarks: at most %d benchmarks", MAX_BENCHMARKS);
	cfg->benchmarks = calloc(n, sizeof(*cfg->benchmarks));
	bench_state *states = calloc(n, sizeof(*states));
	*states_out = states;
	if (!cfg->benchmarks || !states)
		return base_error_set(BASE_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *item = yaml_document_get_node(w->doc, v->data.sequence.items.start[i]);
		if (!item)
			return fail(v, "benchmarks: malformed list");
		measure_benchmark_config *b = &cfg->benchmarks[i];
		cfg->nbenchmarks = i + 1;
		states[i].b = b;
		int error = walk_mapping(w, item, "benchmarks", "a benchmark", benchmark_keys, bench_pair, &states[i]);
		if (error < 0)
			return error;
		if (!b->name)
			return fail(item, "benchmarks: a benchmark is missing \"name\"");
		if (!b->command)
			return fail(item, "benchmark %s: missing \"command\"", b->name);
		for (size_t j = 0; j < i; j++)
			if (strcmp(cfg->benchmarks[j].name, b->name) == 0)
				return fail(item, "benchmarks: the name \"%s\" is used twice", b->name);
	}
	return 0;
}

static int string_list(char ***out, size_t *nout, const yaml_node_t *v, walker *w, const char *key, size_t max)
{
	char got[64];
	if (v->type == YAML_SCALAR_NODE) {
		*out = calloc(1, sizeof(char *));
		if (!*out)
			return base_error_set(BASE_ENOMEM, "out of memory");
		*nout = 1;
		return expect_string(&(*out)[0], v, key, 255);
	}
	if (v->type != YAML_SEQUENCE_NODE) {
		describe(got, sizeof(got), v);
		return fail(v, "%s: expected a list like [main], got %s", key, got);
	}
	size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
	if (n > max)
		return fail(v, "%s: at most %zu entries", key, max);
	*out = calloc(n ? n : 1, sizeof(char *));
	if (!*out)
		return base_error_set(BASE_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *item = yaml_document_get_node(w->doc, v->data.sequence.items.start[i]);
		if (!item)
			return fail(v, "%s: malformed list", key);
		*nout = i + 1;
		int error = expect_string(&(*out)[i], item, key, 255);
		if (error < 0)
			return error;
	}
	return 0;
}

static const char *const optimize_keys[] = { "on",    "max_minutes", "max_benchmark_runs", "protected",
					     "paths", "agent",       "max_cost_usd",       NULL };

/* optimize.max_cost_usd: a positive amount of US dollars, e.g. 5 or 2.50
 * (at most 10000, at most cent precision). */
static int expect_usd(double *out, const yaml_node_t *v, const char *key)
{
	char got[64];
	describe(got, sizeof(got), v);
	if (v->type != YAML_SCALAR_NODE || v->data.scalar.length == 0 || v->data.scalar.length > 20)
		return fail(v, "%s: expected an amount of US dollars like 5 or 2.50, got %s", key, got);
	const char *s = scalar(v);
	char *end;
	errno = 0;
	double d = strtod(s, &end);
	const char *dot = strchr(s, '.');
	if (errno || end == s || *end || !isdigit((unsigned char)s[0]) || !isfinite(d) || (dot && strlen(dot + 1) > 2))
		return fail(v, "%s: expected an amount of US dollars like 5 or 2.50, got %s", key, got);
	if (d <= 0 || d > 10000)
		return fail(v, "%s: expected a positive amount of at most 10000 dollars, got %s", key, got);
	*out = d;
	return 0;
}

/* optimize.protected / optimize.paths: globs of relative paths. */
static int glob_list(char ***out, size_t *nout, const yaml_node_t *v, walker *w, const char *key)
{
	int error = string_list(out, nout, v, w, key, MAX_GLOBS);
	if (error < 0)
		return error;
	for (size_t i = 0; i < *nout; i++) {
		const char *g = (*out)[i];
		if (!g || !*g)
			return fail(v, "%s: expected globs of paths like src/** or \"*.pb.c\", got an empty one", key);
		if (strstr(g, "..") || g[0] == '/')
			return fail(v, "%s: expected globs of paths inside the repository, got \"%.60s\"", key, g);
	}
	return 0;
}

static int optimize_pair(walker *w, const yaml_node_t *k, const yaml_node_t *v, void *payload)
{
	(void)payload;
	measure_repo_config *cfg = w->cfg;
	const char *key = scalar(k);
	if (strcmp(key, "on") == 0) {
		char **list = NULL;
		size_t n = 0;
		int error = string_list(&list, &n, v, w, "optimize.on", 2);
		cfg->optimize_on_comment = cfg->optimize_on_push = 0;
		for (size_t i = 0; i < n && error == 0; i++) {
			if (list[i] && strcmp(list[i], "comment") == 0)
				cfg->optimize_on_comment = 1;
			else if (list[i] && strcmp(list[i], "push") == 0)
				cfg->optimize_on_push = 1;
			else
				error = fail(v, "optimize.on: expected comment or push, got \"%.40s\"",
					     list[i] ? list[i] : "");
		}
		for (size_t i = 0; i < n; i++)
			free(list[i]);
		free(list);
		return error;
	}
	if (strcmp(key, "protected") == 0)
		return glob_list(&cfg->optimize_protected, &cfg->noptimize_protected, v, w, "optimize.protected");
	if (strcmp(key, "paths") == 0)
		return glob_list(&cfg->optimize_paths, &cfg->noptimize_paths, v, w, "optimize.paths");
	if (strcmp(key, "max_minutes") == 0)
		return expect_int(&cfg->optimize_max_minutes, v, "optimize.max_minutes", 1, 24 * 60);
	if (strcmp(key, "max_cost_usd") == 0)
		return expect_usd(&cfg->optimize_max_cost_usd, v, "optimize.max_cost_usd");
	if (strcmp(key, "agent") == 0) {
		char got[64];
		describe(got, sizeof(got), v);
		if (v->type == YAML_SCALAR_NODE && strcmp(scalar(v), "command") == 0)
			cfg->optimize_agent = MEASURE_AGENT_COMMAND;
		else if (v->type == YAML_SCALAR_NODE && strcmp(scalar(v), "managed") == 0)
			cfg->optimize_agent = MEASURE_AGENT_MANAGED;
		else
			return fail(v, "optimize.agent: expected command or managed, got %s", got);
		return 0;
	}
	return expect_int(&cfg->optimize_max_benchmark_runs, v, "optimize.max_benchmark_runs", 1, 10000);
}

static const char *const top_keys[] = { "build",  "test",     "benchmarks", "threshold", "metric",
					"branches", "optimize", "timeout",    NULL };

typedef struct top_state {
	bench_state *bench;
	int has_benchmarks;
} top_state;

static int top_pair(walker *w, const yaml_node_t *k, const yaml_node_t *v, void *payload)
{
	top_state *ts = payload;
	measure_repo_config *cfg = w->cfg;
	const char *key = scalar(k);
	char got[64];
	if (strcmp(key, "build") == 0)
		return expect_string(&cfg->build, v, "build", MAX_COMMAND);
	if (strcmp(key, "test") == 0)
		return expect_string(&cfg->test, v, "test", MAX_COMMAND);
	if (strcmp(key, "benchmarks") == 0) {
		ts->has_benchmarks = 1;
		return parse_benchmarks(w, v, &ts->bench);
	}
	if (strcmp(key, "threshold") == 0)
		return expect_percent(&cfg->threshold_pct, v, "threshold");
	if (strcmp(key, "metric") == 0) {
		if (v->type == YAML_SCALAR_NODE && strcmp(scalar(v), "cycles") == 0)
			cfg->metric = MEASURE_METRIC_CYCLES;
		else if (v->type == YAML_SCALAR_NODE && strcmp(scalar(v), "instructions") == 0)
			cfg->metric = MEASURE_METRIC_INSTRUCTIONS;
		else {
			describe(got, sizeof(got), v);
			return fail(v, "metric: expected cycles or instructions, got %s", got);
		}
		return 0;
	}
	if (strcmp(key, "branches") == 0)
		return string_list(&cfg->branches, &cfg->nbranches, v, w, "branches", MAX_BRANCHES);
	if (strcmp(key, "optimize") == 0)
		return walk_mapping(w, v, "optimize", "optimize", optimize_keys, optimize_pair, NULL);
	return expect_duration(&cfg->timeout_s, v, "timeout");
}

void measure_repo_config_free(measure_repo_config *cfg)
{
	if (!cfg)
		return;
	free(cfg->build);
	free(cfg->test);
	for (size_t i = 0; i < cfg->nbenchmarks; i++) {
		free(cfg->benchmarks[i].name);
		free(cfg->benchmarks[i].command);
	}
	free(cfg->benchmarks);
	for (size_t i = 0; i < cfg->nbranches; i++)
		free(cfg->branches[i]);
	free(cfg->branches);
	for (size_t i = 0; i < cfg->noptimize_protected; i++)
		free(cfg->optimize_protected[i]);
	free(cfg->optimize_protected);
	for (size_t i = 0; i < cfg->noptimize_paths; i++)
		free(cfg->optimize_paths[i]);
	free(cfg->optimize_paths);
	free(cfg);
}

/* The 0-based line and column (in characters) of byte `offset` of a UTF-8
 * text.  libyaml's reader errors (bytes that are not UTF-8, control
 * characters) carry only the offset, not a mark. */
static void mark_at_offset(unsigned long *line, unsigned long *column, const char *text, size_t len, size_t offset)
{
	const unsigned char *t = (const unsigned char *)text;
	size_t i = 0;
	*line = 0;
	*column = 0;
	if (offset > len)
		offset = len;
	if (len >= 3 && t[0] == 0xef && t[1] == 0xbb && t[2] == 0xbf)
		i = 3; /* the byte-order mark is not a character of line 1 */
	for (; i < offset; i++) {
		if (t[i] == '\n' || (t[i] == '\r' && (i + 1 >= len || t[i + 1] != '\n'))) {
			(*line)++;
			*column = 0;
		} else if (t[i] != '\r' && (t[i] & 0xc0) != 0x80) {
			(*column)++;
		}
	}
}

int measure_repo_config_parse(measure_repo_config **out, const char *text, size_t len)
{
	int error = 0;
	yaml_parser_t parser;
	yaml_document_t doc;
	int have_parser = 0, have_doc = 0;
	top_state ts = { NULL, 0 };
	measure_repo_config *cfg = NULL;

	*out = NULL;
	if (len > MEASURE_REPO_CONFIG_MAX)
		return base_error_set(BASE_ETOOBIG, "%s is larger than %d bytes", MEASURE_REPO_CONFIG_PATH,
				     MEASURE_REPO_CONFIG_MAX);
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		return base_error_set(BASE_ENOMEM, "out of memory");
	cfg->threshold_pct = 3.0;
	cfg->metric = MEASURE_METRIC_CYCLES;
	cfg->timeout_s = DEFAULT_TIMEOUT_S;
	cfg->optimize_on_comment = 1;
	cfg->optimize_max_minutes = 30;
	cfg->optimize_max_benchmark_runs = 40;

	if (!yaml_parser_initialize(&parser)) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	have_parser = 1;
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		unsigned long line = (unsigned long)parser.problem_mark.line;
		unsigned long column = (unsigned long)parser.problem_mark.column;
		if (parser.error == YAML_READER_ERROR)
			mark_at_offset(&line, &column, text, len, parser.problem_offset);
		error = base_error_set(BASE_EINVALID, "line %lu, column %lu: YAML syntax error: %s%s%s", line + 1,
				      column + 1, parser.problem ? parser.problem : "malformed document",
				      parser.context ? " " : "", parser.context ? parser.context : "");
		goto done;
	}
	have_doc = 1;
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	if (!root) {
		error = base_error_set(BASE_EINVALID, "line 1, column 1: the file is empty: expected a mapping with "
						    "\"benchmarks\"");
		goto done;
	}
	walker w = { &doc, cfg };
	if ((error = walk_mapping(&w, root, "top level", NULL, top_keys, top_pair, &ts)) < 0)
		goto done;
	if (!ts.has_benchmarks) {
		error = fail(root, "benchmarks: missing; expected a list of benchmarks (- name: ..., command: ...)");
		goto done;
	}
	for (size_t i = 0; i < cfg->nbenchmarks; i++) {
		if (!ts.bench[i].has_threshold)
			cfg->benchmarks[i].threshold_pct = cfg->threshold_pct;
		if (!ts.bench[i].has_timeout)
			cfg->benchmarks[i].timeout_s = cfg->timeout_s;
	}

done:
	free(ts.bench);
	if (have_doc)
		yaml_document_delete(&doc);
	if (have_parser)
		yaml_parser_delete(&parser);
	if (error < 0) {
		measure_repo_config_free(cfg);
		return error;
	}
	*out = cfg;
	return 0;
}

int measure_repo_config_diff_policy(base_diff_policy **out, const measure_repo_config *cfg)
{
	*out = NULL;
	size_t n = cfg->nbenchmarks + 2;
	base_diff_policy *p = calloc(1, sizeof(*p) + n * sizeof(char *));
	if (!p)
		return base_error_set(BASE_ENOMEM, "out of memory");
	const char **cmds = (const char **)(p + 1);
	for (size_t i = 0; i < cfg->nbenchmarks; i++)
		cmds[i] = cfg->benchmarks[i].command;
	size_t k = cfg->nbenchmarks;
	if (cfg->build)
		cmds[k++] = cfg->build;
	if (cfg->test)
		cmds[k++] = cfg->test;
	p->bench_commands = cmds;
	p->nbench_commands = cfg->nbenchmarks;
	p->commands = cmds + cfg->nbenchmarks;
	p->ncommands = k - cfg->nbenchmarks;
	p->protected_globs = (const char *const *)cfg->optimize_protected;
	p->nprotected = cfg->noptimize_protected;
	p->allowed_globs = (const char *const *)cfg->optimize_paths;
	p->nallowed = cfg->noptimize_paths;
	*out = p;
	return 0;
}

const measure_benchmark_config *measure_repo_config_benchmark(const measure_repo_config *cfg, const char *name)
{
	for (size_t i = 0; cfg && name && i < cfg->nbenchmarks; i++)
		if (strcmp(cfg->benchmarks[i].name, name) == 0)
			return &cfg->benchmarks[i];
	return NULL;
}

int measure_repo_config_tracks_branch(const measure_repo_config *cfg, const char *branch, const char *default_branch)
{
	if (!branch)
		return 0;
	if (!cfg || cfg->nbranches == 0)
		return default_branch && strcmp(branch, default_branch) == 0;
	for (size_t i = 0; i < cfg->nbranches; i++)
		if (strcmp(cfg->branches[i], branch) == 0)
			return 1;
	return 0;
}
