/* Unit tests: Markdown escaping of text perfbot did not write. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/md.h"

static char *text_of(const char *s)
{
	base_buf b = BASE_BUF_INIT(1 << 20);
	assert_int_equal(base_md_text(&b, s, strlen(s)), 0);
	return base_buf_detach(&b);
}

/* A summary that would mention a team, show an image, link to javascript:
 * and open an HTML tag comes out as text. */
static void summary_is_text(void **state)
{
	(void)state;
	char *t = text_of("Faster! cc @org/team and @alice <img src=x onerror=alert(1)> "
			  "[click](javascript:alert(1)) ![x](https://evil.example/p.png)\n"
			  "# heading\n    indented\n| a | b |\n<!-- hidden -->\n<details open>");
	/* no mention: @ is never followed by a name character */
	assert_null(strstr(t, "@org"));
	assert_null(strstr(t, "@alice"));
	assert_non_null(strstr(t, "@\xe2\x80\x8borg/team"));
	/* no HTML */
	assert_null(strchr(t, '<'));
	assert_null(strchr(t, '>'));
	assert_non_null(strstr(t, "&lt;img src=x onerror=alert(1)&gt;"));
	/* no link or image: every bracket and parenthesis is escaped */
	assert_non_null(strstr(t, "\\[click\\](javascript:alert(1))"));
	assert_non_null(strstr(t, "!\\[x\\]"));
	for (const char *p = t; (p = strpbrk(p, "[]|`*_~$")) != NULL; p++)
		assert_true(p > t && p[-1] == '\\');
	/* no heading, no indented code block */
	assert_non_null(strstr(t, "\n\\# heading\n"));
	assert_non_null(strstr(t, "\n&nbsp;&nbsp;&nbsp;&nbsp;indented\n"));
	free(t);

	/* list items, quotes and rules at a line's start, not elsewhere */
	t = text_of("1. one\n- two\n+ three\n===\n> quote\na-b 2.5 c#d");
	assert_string_equal(t, "1\\. one\n\\- two\n\\+ three\n\\===\n&gt; quote\na-b 2.5 c#d");
	free(t);

	/* control characters are dropped, UTF-8 kept */
	t = text_of("caf\xc3\xa9\x1b[31m\r\n");
	assert_string_equal(t, "caf\xc3\xa9\\[31m\n");
	free(t);
}

/* The fence outgrows the longest backtick run: a diff that adds ``` or
 * ```` lines cannot close it. */
static void fence_outgrows_backticks(void **state)
{
	(void)state;
	const char *diff = "--- a/README.md\n+++ b/README.md\n@@ -1 +1,4 @@\n+```\n+<img src=x>\n+````\n```\n";
	base_buf b = BASE_BUF_INIT(1 << 20);
	assert_int_equal(base_md_fence(&b, "diff", diff, strlen(diff)), 0);
	const char *out = base_buf_cstr(&b);
	assert_true(strncmp(out, "`````diff\n", 10) == 0);
	assert_true(strncmp(out + 10, diff, strlen(diff)) == 0);
	assert_string_equal(out + 10 + strlen(diff), "`````\n");
	/* no line inside is a closing fence of that length or longer */
	const char *body = out + 10, *end = out + 10 + strlen(diff);
	for (const char *l = body; l < end; l = strchr(l, '\n') + 1)
		assert_false(strncmp(l, "`````", 5) == 0);
	base_buf_dispose(&b);

	/* plain text: three backticks, and a final newline added */
	base_buf_init(&b, 1024);
	assert_int_equal(base_md_fence(&b, NULL, "make: *** [all] Error 1", 23), 0);
	assert_string_equal(base_buf_cstr(&b), "```\nmake: *** [all] Error 1\n```\n");
	base_buf_dispose(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(summary_is_text),
		cmocka_unit_test(fence_outgrows_backticks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
