/* Unit tests: comment command parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "webhooks/command.h"

static void test_commands(void **state)
{
	(void)state;
	wh_command c;
	wh_command_parse(&c, "Looks good.\n/perfbot optimize parse-small parse-large\nthanks");
	assert_int_equal(c.kind, WH_CMD_OPTIMIZE);
	assert_int_equal(c.nargs, 2);
	assert_string_equal(c.args[1], "parse-large");
	wh_command_parse(&c, "/perfbot optimize");
	assert_int_equal(c.kind, WH_CMD_OPTIMIZE);
	assert_int_equal(c.nargs, 0);
	wh_command_parse(&c, "  /perfbot apply #12");
	assert_int_equal(c.kind, WH_CMD_APPLY);
	assert_int_equal(c.run, 12);
	wh_command_parse(&c, "/perfbot cancel 7\r\n");
	assert_int_equal(c.kind, WH_CMD_CANCEL);
	assert_int_equal(c.run, 7);
	wh_command_parse(&c, "/perfbot BENCH");
	assert_int_equal(c.kind, WH_CMD_BENCH);
	wh_command_parse(&c, "/perfbot");
	assert_int_equal(c.kind, WH_CMD_HELP);
	wh_command_parse(&c, "/perfbot help");
	assert_int_equal(c.kind, WH_CMD_HELP);
	wh_command_parse(&c, "/perfbot approve");
	assert_int_equal(c.kind, WH_CMD_APPROVE);
	assert_int_equal(c.run, 0);
	wh_command_parse(&c, "/perfbot approve #31");
	assert_int_equal(c.kind, WH_CMD_APPROVE);
	assert_int_equal(c.run, 31);
	wh_command_parse(&c, "/perfbot approve everything now");
	assert_int_equal(c.kind, WH_CMD_INVALID);
	assert_non_null(strstr(wh_command_help(), "/perfbot approve"));
}

static void test_not_commands(void **state)
{
	(void)state;
	wh_command c;
	wh_command_parse(&c, "I think /perfbot optimize would help");
	assert_int_equal(c.kind, WH_CMD_NONE);
	wh_command_parse(&c, "> /perfbot optimize\nquoted");
	assert_int_equal(c.kind, WH_CMD_NONE);
	wh_command_parse(&c, "```\n/perfbot optimize\n```");
	assert_int_equal(c.kind, WH_CMD_NONE);
	wh_command_parse(&c, "/perfbotoptimize");
	assert_int_equal(c.kind, WH_CMD_NONE);
	wh_command_parse(&c, "");
	assert_int_equal(c.kind, WH_CMD_NONE);
	wh_command_parse(&c, NULL);
	assert_int_equal(c.kind, WH_CMD_NONE);
}

static void test_unknown_and_invalid(void **state)
{
	(void)state;
	wh_command c;
	wh_command_parse(&c, "/perfbot optimise");
	assert_int_equal(c.kind, WH_CMD_UNKNOWN);
	assert_string_equal(c.suggestion, "optimize");
	wh_command_parse(&c, "/perfbot aply 3");
	assert_int_equal(c.kind, WH_CMD_UNKNOWN);
	assert_string_equal(c.suggestion, "apply");
	wh_command_parse(&c, "/perfbot deploy");
	assert_int_equal(c.kind, WH_CMD_UNKNOWN);
	assert_null(c.suggestion);
	assert_string_equal(c.word, "deploy");
	wh_command_parse(&c, "/perfbot apply");
	assert_int_equal(c.kind, WH_CMD_INVALID);
	assert_non_null(strstr(c.error, "run number"));
	wh_command_parse(&c, "/perfbot apply x12");
	assert_int_equal(c.kind, WH_CMD_INVALID);
	wh_command_parse(&c, "/perfbot cancel 1 2");
	assert_int_equal(c.kind, WH_CMD_INVALID);
	char big[4096];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "/perfbot ", 9);
	wh_command_parse(&c, big);
	assert_int_equal(c.kind, WH_CMD_UNKNOWN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_commands),
		cmocka_unit_test(test_not_commands),
		cmocka_unit_test(test_unknown_and_invalid),
	};
	return cmocka_run_group_tests_name("webhooks_command", tests, NULL, NULL);
}
