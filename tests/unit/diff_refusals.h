/* One table of diffs that both verification (agent/) and approval (pr/)
 * must refuse, with the words of the refusal: test_agent_diff_policy.c and
 * test_pr.c each check their side, so a proposal verification accepted is
 * never refused at approval for another reason. */
#ifndef TESTS_DIFF_REFUSALS_H
#define TESTS_DIFF_REFUSALS_H

static const struct {
	const char *diff;
	const char *words;
} DIFF_REFUSALS[] = {
	{ "diff --git a/tests/test_parse.c b/tests/test_parse.c\ndeleted file mode 100644\n"
	  "--- a/tests/test_parse.c\n+++ /dev/null\n@@ -1 +0,0 @@\n-assert(parse(\"1\") == 1);\n",
	  "refused: tests/test_parse.c is a test (under tests/)" },
	{ "diff --git a/.valgrindrc b/.valgrindrc\nnew file mode 100644\n--- /dev/null\n+++ b/.valgrindrc\n"
	  "@@ -0,0 +1 @@\n+--collect-atstart=no --toggle-collect=tiny\n",
	  "refused: .valgrindrc is a dotfile" },
	{ "diff --git a/Makefile b/Makefile\n--- a/Makefile\n+++ b/Makefile\n@@ -1 +1 @@\n-CFLAGS = -O1\n+CFLAGS = -O3\n",
	  "refused: Makefile is a build file" },
	{ "diff --git a/src/a.c b/src/a.c\n--- a/src/a.c\n+++ b/src/a.c\n@@ -1 +1,2 @@\n a();\n"
	  "+#include <Valgrind/callgrind.h>\n",
	  "refused: line 6 of the diff mentions \"callgrind\"" },
};

#endif
