/* Verification refuses what pr/ refuses at approval, in the same words
 * (test_pr.c's diff_policy_as_verification asserts pr/'s side of the same
 * table): a proposal that passed verification is never refused at approval
 * for another reason.  Both go through base/diff_policy.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "agent/verify.h"
#include "base/error.h"

static void expect_refused(const char *diff, int code, const char *words)
{
	assert_int_equal(agent_diff_check(diff, strlen(diff), 0, NULL), code);
	if (!strstr(base_error_last(), words))
		fail_msg("reason \"%s\" lacks \"%s\"", base_error_last(), words);
}

static void diff_policy_as_verification(void **state)
{
	(void)state;
	static const char *const diffs[] = {
		"diff --git a/tests/test_parse.c b/tests/test_parse.c\ndeleted file mode 100644\n"
		"--- a/tests/test_parse.c\n+++ /dev/null\n@@ -1 +0,0 @@\n-assert(parse(\"1\") == 1);\n",
		"diff --git a/.valgrindrc b/.valgrindrc\nnew file mode 100644\n--- /dev/null\n+++ b/.valgrindrc\n"
		"@@ -0,0 +1 @@\n+--collect-atstart=no --toggle-collect=tiny\n",
		"diff --git a/Makefile b/Makefile\n--- a/Makefile\n+++ b/Makefile\n@@ -1 +1 @@\n-CFLAGS = -O1\n+CFLAGS = -O3\n",
		"diff --git a/src/a.c b/src/a.c\n--- a/src/a.c\n+++ b/src/a.c\n@@ -1 +1,2 @@\n a();\n"
		"+#include <Valgrind/callgrind.h>\n",
	};
	static const char *const words[] = { "refused: tests/test_parse.c is a test (under tests/)",
					     "refused: .valgrindrc is a dotfile", "refused: Makefile is a build file",
					     "refused: line 6 of the diff mentions \"callgrind\"" };
	for (size_t i = 0; i < sizeof(diffs) / sizeof(diffs[0]); i++) {
		/* the same words as pr/'s (test_pr.c) */
		expect_refused(diffs[i], BASE_EINVALID, words[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(diff_policy_as_verification),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
