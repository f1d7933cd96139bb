/* Tests of pr/ that need no server: diff checks, the commit message and
 * pull request body, closed events and superseding against a fake
 * pr_github.  Pushing over smart HTTP is tests/integration/c/test_pr_push.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/pr_fixture.h"
#include "tests/unit/diff_refusals.h"

static int group_setup(void **state)
{
	(void)state;
	return fixture_setup();
}

static int group_teardown(void **state)
{
	(void)state;
	fixture_teardown();
	return 0;
}

static int test_setup(void **state)
{
	(void)state;
	fake_reset();
	return 0;
}

/* ---- diff validation ----------------------------------------------------- */

static void expect_refused(const char *diff, int code, const char *words)
{
	int rc = pr_diff_check(diff, strlen(diff), 0);
	assert_int_equal(rc, code);
	if (!strstr(base_error_last(), words))
		fail_msg("reason \"%s\" lacks \"%s\"", base_error_last(), words);
}

static void diff_checks(void **state)
{
	(void)state;
	assert_int_equal(pr_diff_check(good_diff, strlen(good_diff), 0), 0);
	expect_refused("diff --git a/../etc/passwd b/../etc/passwd\n--- a/../etc/passwd\n+++ b/../etc/passwd\n"
		       "@@ -1 +1 @@\n-a\n+b\n",
		       BASE_EINVALID, "outside the tree");
	expect_refused("diff --git a//etc/passwd b//etc/passwd\n--- a//etc/passwd\n+++ b//etc/passwd\n@@ -1 +1 @@\n-a\n+b\n",
		       BASE_EINVALID, "absolute");
	expect_refused("diff --git a/.git/config b/.git/config\n--- a/.git/config\n+++ b/.git/config\n@@ -1 +1 @@\n-a\n+b\n",
		       BASE_EINVALID, ".git");
	expect_refused("diff --git a/sub/.GIT/hooks/x b/sub/.GIT/hooks/x\nnew file mode 100755\n--- /dev/null\n"
		       "+++ b/sub/.GIT/hooks/x\n@@ -0,0 +1 @@\n+evil\n",
		       BASE_EINVALID, ".git");
	expect_refused("diff --git a/.github/workflows/ci.yml b/.github/workflows/ci.yml\nnew file mode 100644\n"
		       "--- /dev/null\n+++ b/.github/workflows/ci.yml\n@@ -0,0 +1 @@\n+on: push\n",
		       BASE_EINVALID, "workflow");
	expect_refused(binary_diff, BASE_EINVALID, "binary");
	expect_refused(binary_nodata_diff, BASE_EINVALID, "binary");
	expect_refused("diff --git a/l b/l\nnew file mode 120000\n--- /dev/null\n+++ b/l\n@@ -0,0 +1 @@\n+/etc/passwd\n"
		       "\\ No newline at end of file\n",
		       BASE_EINVALID, "symbolic link");
	expect_refused("this is not a diff\n", BASE_EINVALID, "");
	expect_refused("", BASE_EINVALID, "empty");
	assert_int_equal(pr_diff_check(good_diff, strlen(good_diff), 100), BASE_ETOOBIG);
	assert_non_null(strstr(base_error_last(), "over the cap"));
}

/* The diff policy of verification holds at approval too, with the same
 * reason: a test deleted, a build file, a dotfile, a client request. */
static void diff_policy_as_verification(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(DIFF_REFUSALS) / sizeof(DIFF_REFUSALS[0]); i++)
		expect_refused(DIFF_REFUSALS[i].diff, BASE_EINVALID, DIFF_REFUSALS[i].words);
}

/* ---- messages ------------------------------------------------------------ */

static void message_and_body(void **state)
{
	(void)state;
	pr_proposal p = proposal(42, good_diff);
	char *msg = NULL, *body = NULL;
	assert_int_equal(pr_commit_message(&msg, &p), 0);
	assert_true(strncmp(msg, "perf: speed up parse by 23%\n\n", 29) == 0);
	assert_non_null(strstr(msg, "| parse | 1000000 | 770000 | -23.0% |"));
	assert_non_null(strstr(msg, "Verified by perfbot run 42"));
	assert_int_equal(pr_pull_body(&body, &p, "abc123"), 0);
	assert_non_null(strstr(body, "Replaced the loop"));
	assert_non_null(strstr(body, "| render | 500000 | 480000 | -4.0% |"));
	assert_non_null(strstr(body, "CPU simulation"));
	assert_non_null(strstr(body, "`make test`"));
	assert_non_null(strstr(body, base_sha));
	assert_non_null(strstr(body, "Approved by @octocat via check run button"));
	assert_non_null(strstr(body, "<!-- perfbot-run: 42 -->"));
	free(msg);
	free(body);
	char *name = NULL, *email = NULL;
	assert_int_equal(pr_bot_identity(&name, &email, "perfbot", 4242), 0);
	assert_string_equal(name, "perfbot[bot]");
	assert_string_equal(email, "4242+perfbot[bot]@users.noreply.github.com");
	free(name);
	free(email);
}

/* The agent's summary is shown as text in the pull request body: it cannot
 * mention a team, show an image, link to javascript: or hide HTML. */
static void body_summary_is_text(void **state)
{
	(void)state;
	pr_proposal p = proposal(43, good_diff);
	p.summary = "Faster. cc @org/team <img src=x> [x](javascript:alert(1)) ![i](https://evil.example/i.png) "
		    "<!-- perfbot-benchmarks: other -->";
	char *body = NULL;
	assert_int_equal(pr_pull_body(&body, &p, "abc123"), 0);
	assert_null(strstr(body, "@org/team"));
	assert_null(strstr(body, "<img"));
	for (const char *q = body; (q = strstr(q, "](")) != NULL; q++)
		assert_true(q > body && q[-1] == '\\'); /* \](...): no link, no image */
	assert_non_null(strstr(body, "\\[x\\](javascript:alert(1))"));
	assert_null(strstr(body, "<!-- perfbot-benchmarks: other"));
	assert_non_null(strstr(body, "&lt;img src=x&gt;"));
	/* perfbot's own markers are still there, once */
	const char *m = strstr(body, "<!-- perfbot-run: 43 -->");
	assert_non_null(m);
	assert_null(strstr(m + 1, "<!-- perfbot-run:"));
	free(body);
}

/* Text cut to a byte count must still be UTF-8: a cut inside a character
 * would make json_pack refuse the body. */
static void cuts_keep_utf8(void **state)
{
	(void)state;
	size_t n = 19999;
	char *summary = malloc(n + 64);
	memset(summary, 'a', n);
	snprintf(summary + n, 64, "\xc3\xa9 and more text after the cut");
	char branch[256], command[256], who[128];
	memset(branch, 'b', 199);
	snprintf(branch + 199, sizeof(branch) - 199, "\xc3\xa9");
	memset(command, 'c', 199);
	snprintf(command + 199, sizeof(command) - 199, "\xe2\x82\xac");
	memset(who, 'd', 99);
	snprintf(who + 99, sizeof(who) - 99, "\xf0\x9f\x98\x80");

	pr_proposal p = proposal(42, good_diff);
	p.summary = summary;
	p.base_branch = branch;
	p.test_command = command;
	p.approved_by = who;
	p.approved_via = who;
	char *body = NULL;
	assert_int_equal(pr_pull_body(&body, &p, "abc123"), 0);
	json_t *j = json_string(body);
	assert_non_null(j);
	json_decref(j);
	/* the summary ends before the character, nothing replaced */
	assert_true(strncmp(body + n, "\n\n*(summary truncated)*\n", 24) == 0);
	assert_null(strstr(body, "\xef\xbf\xbd"));
	free(body);
	free(summary);

	/* the path in a refusal reaches the thread and the run as JSON */
	char diff[2048], path[256];
	memset(path, 'e', 199);
	snprintf(path + 199, sizeof(path) - 199, "\xc3\xa9/.git/config");
	snprintf(diff, sizeof(diff), "diff --git a/%s b/%s\n--- a/%s\n+++ b/%s\n@@ -1 +1 @@\n-a\n+b\n", path, path, path,
		 path);
	assert_int_equal(pr_diff_check(diff, strlen(diff), 0), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), ".git"));
	j = json_string(base_error_last());
	assert_non_null(j);
	json_decref(j);
}


/* ---- following it -------------------------------------------------------- */

static void closed_events(void **state)
{
	(void)state;
	const char *ours = "2222222222222222222222222222222222222222";
	pr_closed_event ev;
	const char *st = NULL;
	int deleted = 0;

	json_t *j = closed_payload("perfbot/opt-12", 1, ours, REPO);
	assert_int_equal(pr_closed_event_parse(&ev, j), 0);
	assert_int_equal(ev.run_id, 12);
	assert_int_equal(ev.number, 100);
	assert_int_equal(ev.merged, 1);
	assert_string_equal(ev.merge_commit_sha, "1111111111111111111111111111111111111111");
	assert_int_equal(pr_closed_apply(&st, &deleted, &gh, &ev, ours), 0);
	assert_string_equal(st, "merged");
	assert_int_equal(deleted, 1);
	assert_string_equal(fk.deleted[0], "perfbot/opt-12");
	json_decref(j);

	j = closed_payload("perfbot/opt-13", 0, "3333333333333333333333333333333333333333", REPO);
	assert_int_equal(pr_closed_event_parse(&ev, j), 0);
	assert_int_equal(pr_closed_apply(&st, &deleted, &gh, &ev, ours), 0);
	assert_string_equal(st, "closed");
	assert_int_equal(deleted, 0); /* someone else pushed: keep it */
	assert_int_equal(fk.ndeleted, 1);
	json_decref(j);

	j = closed_payload("perfbot/opt-14", 0, ours, "fork/widget");
	assert_int_equal(pr_closed_event_parse(&ev, j), BASE_ENOTFOUND);
	json_decref(j);
	j = closed_payload("feature/x", 0, ours, REPO);
	assert_int_equal(pr_closed_event_parse(&ev, j), BASE_ENOTFOUND);
	json_decref(j);
	j = json_pack("{s:s}", "action", "opened");
	assert_int_equal(pr_closed_event_parse(&ev, j), BASE_ENOTFOUND);
	json_decref(j);
}

static void superseded(void **state)
{
	(void)state;
	pr_proposal older = proposal(20, good_diff), other = proposal(21, good_diff), newer = proposal(22, good_diff);
	static const pr_bench_result just_render[] = {{"render", 10, 5}};
	other.benchmarks = just_render;
	other.nbenchmarks = 1;
	char *b1 = NULL, *b2 = NULL, *b3 = NULL;
	assert_int_equal(pr_pull_body(&b1, &older, "x"), 0);
	assert_int_equal(pr_pull_body(&b2, &other, "x"), 0);
	assert_int_equal(pr_pull_body(&b3, &newer, "x"), 0);
	fake_pull *a = add_pull("perfbot/opt-20", "main", "old", b1);
	add_pull("perfbot/opt-21", "main", "other", b2);
	fake_pull *c = add_pull("perfbot/opt-22", "main", "new", b3);
	add_pull("feature/y", "main", "human", b1);
	int closed = 0;
	assert_int_equal(pr_supersede(&closed, &gh, &newer, c->number), 0);
	assert_int_equal(closed, 1);
	assert_int_equal(fk.nclosed, 1);
	assert_int_equal(fk.closed[0], a->number);
	assert_int_equal(fk.comment_on[0], a->number);
	char want[64];
	snprintf(want, sizeof(want), "Superseded by #%d.", c->number);
	assert_string_equal(fk.comments[0], want);
	free(b1);
	free(b2);
	free(b3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(diff_checks, test_setup),
		cmocka_unit_test_setup(diff_policy_as_verification, test_setup),
		cmocka_unit_test_setup(message_and_body, test_setup),
		cmocka_unit_test_setup(cuts_keep_utf8, test_setup),
		cmocka_unit_test_setup(body_summary_is_text, test_setup),
		cmocka_unit_test_setup(closed_events, test_setup),
		cmocka_unit_test_setup(superseded, test_setup),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
