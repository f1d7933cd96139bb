/* Streaming payload check (see payload.h).  yajl calls back for every
 * token; a few counters say where in the document the parser is: `depth`
 * open containers, the key last seen at depth 1 and at depth 2, and whether
 * the container at depth 2 is the object under "installation" or
 * "repository".  A value at depth 1 under a watched key resets that field
 * (the last duplicate wins, as in jansson); a scalar at depth 2 under the
 * watched sub-key sets it.  Like jansson's default decoder, a string or key
 * holding \u0000 is refused. */
#include "webhooks/payload.h"
#include "base/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

enum key { K_OTHER, K_ACTION, K_INSTALLATION, K_REPOSITORY, K_ID, K_FULL_NAME };
enum vtype { V_STR, V_INT, V_DBL, V_OTHER };

struct scan {
	wh_payload_fields *f;
	int depth;
	int top_is_object;
	int top_key;      /* key of the current value in the top object */
	int sub_key;      /* key of the current value at depth 2 */
	int in_target;    /* the container at depth 2 is installation's or repository's object */
	int nul;          /* a string held \u0000 */
	int nomem;
};

static int classify(const unsigned char *k, size_t n, int depth)
{
#define IS(lit) (n == sizeof(lit) - 1 && memcmp(k, lit, n) == 0)
	if (depth == 1) {
		if (IS("action"))
			return K_ACTION;
		if (IS("installation"))
			return K_INSTALLATION;
		if (IS("repository"))
			return K_REPOSITORY;
	} else if (depth == 2) {
		if (IS("id"))
			return K_ID;
		if (IS("full_name"))
			return K_FULL_NAME;
	}
#undef IS
	return K_OTHER;
}

static int set_str(struct scan *sc, char **field, int type, const unsigned char *s, size_t n)
{
	free(*field);
	*field = NULL;
	if (type != V_STR)
		return 1;
	*field = malloc(n + 1);
	if (!*field) {
		sc->nomem = 1;
		return 0;
	}
	memcpy(*field, s, n);
	(*field)[n] = '\0';
	return 1;
}

/* Every value, containers included (before they open). */
static int value(struct scan *sc, int type, const unsigned char *s, size_t n, long long iv, double dv)
{
	if (sc->depth == 1) {
		switch (sc->top_key) {
		case K_ACTION:
			return set_str(sc, &sc->f->action, type, s, n);
		case K_INSTALLATION:
			sc->f->installation_id = 0;
			break;
		case K_REPOSITORY:
			return set_str(sc, &sc->f->repository, V_OTHER, NULL, 0);
		default:
			break;
		}
	} else if (sc->depth == 2 && sc->in_target) {
		if (sc->top_key == K_INSTALLATION && sc->sub_key == K_ID)
			sc->f->installation_id = type == V_INT ? (int64_t)iv : type == V_DBL ? (int64_t)dv : 0;
		else if (sc->top_key == K_REPOSITORY && sc->sub_key == K_FULL_NAME)
			return set_str(sc, &sc->f->repository, type, s, n);
	}
	return 1;
}

static int on_null(void *ctx)
{
	return value(ctx, V_OTHER, NULL, 0, 0, 0);
}

static int on_boolean(void *ctx, int b)
{
	(void)b;
	return value(ctx, V_OTHER, NULL, 0, 0, 0);
}

static int on_integer(void *ctx, long long v)
{
	return value(ctx, V_INT, NULL, 0, v, 0);
}

static int on_double(void *ctx, double v)
{
	return value(ctx, V_DBL, NULL, 0, 0, v);
}

static int on_string(void *ctx, const unsigned char *s, size_t n)
{
	struct scan *sc = ctx;
	if (memchr(s, '\0', n)) {
		sc->nul = 1;
		return 0;
	}
	return value(sc, V_STR, s, n, 0, 0);
}

static int on_start_map(void *ctx)
{
	struct scan *sc = ctx;
	if (!value(sc, V_OTHER, NULL, 0, 0, 0))
		return 0;
	sc->depth++;
	if (sc->depth == 1)
		sc->top_is_object = 1;
	else if (sc->depth == 2)
		sc->in_target = sc->top_key == K_INSTALLATION || sc->top_key == K_REPOSITORY;
	return 1;
}

static int on_map_key(void *ctx, const unsigned char *k, size_t n)
{
	struct scan *sc = ctx;
	if (memchr(k, '\0', n)) {
		sc->nul = 1;
		return 0;
	}
	if (sc->depth == 1)
		sc->top_key = classify(k, n, 1);
	else if (sc->depth == 2)
		sc->sub_key = classify(k, n, 2);
	return 1;
}

static int on_end(void *ctx)
{
	struct scan *sc = ctx;
	if (sc->depth == 2)
		sc->in_target = 0;
	sc->depth--;
	return 1;
}

static int on_start_array(void *ctx)
{
	struct scan *sc = ctx;
	if (!value(sc, V_OTHER, NULL, 0, 0, 0))
		return 0;
	sc->depth++;
	if (sc->depth == 2)
		sc->in_target = 0;
	return 1;
}

static const yajl_callbacks callbacks = {
	.yajl_null = on_null,
	.yajl_boolean = on_boolean,
	.yajl_integer = on_integer,
	.yajl_double = on_double,
	.yajl_string = on_string,
	.yajl_start_map = on_start_map,
	.yajl_map_key = on_map_key,
	.yajl_end_map = on_end,
	.yajl_start_array = on_start_array,
	.yajl_end_array = on_end,
};

void wh_payload_dispose(wh_payload_fields *f)
{
	free(f->action);
	free(f->repository);
	memset(f, 0, sizeof(*f));
}

int wh_payload_scan(wh_payload_fields *out, const char *bytes, size_t len)
{
	memset(out, 0, sizeof(*out));
	struct scan sc = { .f = out };
	yajl_handle h = yajl_alloc(&callbacks, NULL, &sc);
	if (!h)
		return base_error_set(BASE_ENOMEM, "out of memory");
	yajl_status st = yajl_parse(h, (const unsigned char *)(bytes ? bytes : ""), len);
	if (st == yajl_status_ok)
		st = yajl_complete_parse(h);
	int error = 0;
	if (sc.nomem) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
	} else if (st != yajl_status_ok) {
		size_t at = yajl_get_bytes_consumed(h);
		if (sc.nul) {
			error = base_error_set(BASE_EINVALID, "malformed JSON at byte %zu: \\u0000 is not allowed", at);
		} else {
			unsigned char *msg = yajl_get_error(h, 0, NULL, 0);
			char why[160];
			snprintf(why, sizeof(why), "%s", msg ? (const char *)msg : "parse error");
			if (msg)
				yajl_free_error(h, msg);
			size_t n = strlen(why);
			while (n && (why[n - 1] == '\n' || why[n - 1] == ' '))
				why[--n] = '\0';
			error = base_error_set(BASE_EINVALID, "malformed JSON at byte %zu: %s", at, why);
		}
	} else if (!sc.top_is_object) {
		error = base_error_set(BASE_EINVALID, "the payload is not a JSON object");
	}
	yajl_free(h);
	return error;
}
