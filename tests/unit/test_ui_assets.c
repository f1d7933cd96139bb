/* Unit tests: the dashboard's files compiled into the binary (ui/assets.c):
 * every file of ui/web/ is served byte for byte with its content type, an
 * ETag and a gzip variant; nothing else is; and the pages keep to the
 * Content-Security-Policy (no inline scripts, styles or handlers). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/error.h"
#include "ui/assets.h"

static int ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* The file's bytes (owned), read from the checkout (tests run from its root). */
static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	unsigned char *buf = malloc(1 << 20);
	assert_non_null(buf);
	*len = fread(buf, 1, 1 << 20, f);
	fclose(f);
	return buf;
}

/* The served bytes with every "?v=<12 hex>" taken out (owned). */
static unsigned char *unversioned(const ui_asset *a, size_t *len)
{
	unsigned char *out = malloc(a->len + 1);
	assert_non_null(out);
	size_t n = 0;
	for (size_t i = 0; i < a->len;) {
		if (i + 15 <= a->len && memcmp(a->bytes + i, "?v=", 3) == 0) {
			i += 15;
			continue;
		}
		out[n++] = a->bytes[i++];
	}
	*len = n;
	return out;
}

static void index_page_at_the_root(void **state)
{
	(void)state;
	const ui_asset *a = NULL, *b = NULL, *c = NULL;
	assert_int_equal(ui_asset_find("/index.html", &a), 0);
	assert_int_equal(ui_asset_find("/", &b), 0);
	assert_int_equal(ui_asset_find("", &c), 0);
	assert_ptr_equal(a, b);
	assert_ptr_equal(a, c);
	assert_string_equal(a->content_type, "text/html; charset=utf-8");
	assert_non_null(strstr((const char *)a->bytes, "<script type=\"module\" src=\"/ui/app.js?v="));
}

static void every_file_byte_for_byte(void **state)
{
	(void)state;
	DIR *d = opendir("ui/web");
	assert_non_null(d);
	size_t files = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char disk[512], url[512];
		snprintf(disk, sizeof disk, "ui/web/%s", e->d_name);
		snprintf(url, sizeof url, "/%s", e->d_name);
		const ui_asset *a = NULL;
		assert_int_equal(ui_asset_find(url, &a), 0);
		size_t len = 0, got_len = 0;
		unsigned char *want = slurp(disk, &len);
		unsigned char *got = unversioned(a, &got_len);
		assert_int_equal(got_len, len);
		assert_memory_equal(got, want, len);
		free(want);
		free(got);
		if (ends_with(url, ".js"))
			assert_string_equal(a->content_type, "text/javascript; charset=utf-8");
		if (ends_with(url, ".css"))
			assert_string_equal(a->content_type, "text/css; charset=utf-8");
		if (ends_with(url, ".svg"))
			assert_string_equal(a->content_type, "image/svg+xml");
		files++;
	}
	closedir(d);
	assert_true(files >= 5);
	assert_int_equal(ui_asset_count(), files);
	assert_null(ui_asset_at(files));
}

/* Every reference from one file to another carries the same ?v= version,
 * so that a browser keeping files for an hour never mixes two builds. */
static void references_versioned(void **state)
{
	(void)state;
	char version[16] = "";
	size_t refs = 0;
	for (size_t i = 0; i < ui_asset_count(); i++) {
		const ui_asset *a = ui_asset_at(i);
		const char *opens[] = {"from './", "import('./", "=\"/ui/"};
		char *text = strndup((const char *)a->bytes, a->len);
		assert_non_null(text);
		for (size_t k = 0; k < 3; k++) {
			for (const char *p = text; (p = strstr(p, opens[k])) != NULL; p++) {
				const char *q = p + strlen(opens[k]);
				size_t name = strcspn(q, "?'\"");
				if (!memchr(q, '.', name))
					continue; /* a page ("/ui/"), not a file */
				assert_int_equal(q[name], '?');
				assert_memory_equal(q + name, "?v=", 3);
				if (!version[0])
					memcpy(version, q + name + 3, 12);
				assert_memory_equal(q + name + 3, version, 12);
				assert_true(q[name + 15] == '\'' || q[name + 15] == '"');
				refs++;
			}
		}
		free(text);
	}
	assert_true(refs >= 10);
}

static void etags_quoted_and_distinct(void **state)
{
	(void)state;
	size_t n = ui_asset_count();
	for (size_t i = 0; i < n; i++) {
		const ui_asset *a = ui_asset_at(i);
		size_t l = strlen(a->etag);
		assert_true(l > 10);
		assert_int_equal(a->etag[0], '"');
		assert_int_equal(a->etag[l - 1], '"');
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(ui_asset_at(j)->etag, a->etag);
	}
}

/* The gzip variant is gzip (magic), smaller, and of the file (its trailer's
 * length); the big text files have one. */
static void gzip_variants(void **state)
{
	(void)state;
	size_t n = ui_asset_count(), zipped = 0;
	for (size_t i = 0; i < n; i++) {
		const ui_asset *a = ui_asset_at(i);
		if (a->gzip == NULL) {
			assert_int_equal(a->gzip_len, 0);
			assert_true(a->len < 1024);
			continue;
		}
		zipped++;
		assert_true(a->gzip_len < a->len);
		assert_int_equal(a->gzip[0], 0x1f);
		assert_int_equal(a->gzip[1], 0x8b);
		const unsigned char *t = a->gzip + a->gzip_len - 4;
		uint32_t isize = (uint32_t)t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 | (uint32_t)t[3] << 24;
		assert_int_equal(isize, (uint32_t)a->len);
	}
	assert_true(zipped >= 4);
}

static void nothing_else(void **state)
{
	(void)state;
	const char *paths[] = {"/nope.js", "/../Makefile", "/app.js/", "//app.js", "/APP.JS", "/app.js?x",
			       "app.js", "/ui/app.js", "/web/app.js", "/index.html\n", "/.", "/%61pp.js"};
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		const ui_asset *a = (const ui_asset *)&paths;
		assert_int_equal(ui_asset_find(paths[i], &a), BASE_ENOTFOUND);
		assert_null(a);
	}
	const ui_asset *a = NULL;
	assert_int_equal(ui_asset_find(NULL, &a), BASE_ENOTFOUND);
	assert_int_equal(ui_asset_find("/app.js", &a), 0);
	assert_string_equal(a->path, "/app.js");
}

/* The pages are served with "script-src 'self'; style-src 'self'": an inline
 * script, style or event handler would not run, so none may be written. */
static void nothing_inline(void **state)
{
	(void)state;
	size_t n = ui_asset_count();
	for (size_t i = 0; i < n; i++) {
		const ui_asset *a = ui_asset_at(i);
		char *text = strndup((const char *)a->bytes, a->len);
		assert_non_null(text);
		if (ends_with(a->path, ".html")) {
			for (const char *p = text; (p = strcasestr(p, "<script")) != NULL; p++) {
				const char *end = strchr(p, '>');
				assert_non_null(end);
				assert_non_null(memmem(p, (size_t)(end - p), " src=", 5));
				assert_int_equal(strncasecmp(end, "></script>", 10), 0);
			}
			assert_null(strcasestr(text, "<style"));
			assert_null(strcasestr(text, " style="));
			assert_null(strcasestr(text, " onclick="));
			assert_null(strcasestr(text, " onload="));
			assert_null(strcasestr(text, "javascript:"));
		}
		if (ends_with(a->path, ".js")) {
			assert_null(strstr(text, "innerHTML"));
			assert_null(strstr(text, "eval("));
			assert_null(strstr(text, "'style'"));
			assert_null(strstr(text, "https://"));
		}
		free(text);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(index_page_at_the_root),
		cmocka_unit_test(every_file_byte_for_byte),
		cmocka_unit_test(references_versioned),
		cmocka_unit_test(etags_quoted_and_distinct),
		cmocka_unit_test(gzip_variants),
		cmocka_unit_test(nothing_else),
		cmocka_unit_test(nothing_inline),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
