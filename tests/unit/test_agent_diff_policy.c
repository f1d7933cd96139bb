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
#include "tests/unit/diff_refusals.h"

static void expect_refused(const char *diff, int code, const char *words)
{
	assert_int_equal(agent_diff_check(diff, strlen(diff), 0, NULL), code);
	if (!strstr(base_error_last(), words))
		fail_msg("reason \"%s\" lacks \"%s\"", base_error_last(), words);
}

static void diff_policy_as_verification(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(DIFF_REFUSALS) / sizeof(DIFF_REFUSALS[0]); i++)
		expect_refused(DIFF_REFUSALS[i].diff, BASE_EINVALID, DIFF_REFUSALS[i].words);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(diff_policy_as_verification),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
