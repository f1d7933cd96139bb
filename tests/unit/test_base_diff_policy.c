/* Unit tests: the diff policy shared by verification, the agent's tools
 * and pr/ — protected paths with their reasons, the files of the commands,
 * optimize.protected / optimize.paths globs, and measurement words in any
 * case. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "base/diff_policy.h"
#include "base/error.h"

static const char *why_of(const base_diff_policy *p, const char *path)
{
	static char why[256];
	if (!base_diff_policy_path(p, path, why, sizeof(why)))
		return NULL;
	return why;
}

static void test_builtin_rules(void **state)
{
	(void)state;
	assert_string_equal(why_of(NULL, ".valgrindrc"),
			    "is a dotfile or under a dot-folder (tools such as valgrind read them)");
	assert_non_null(why_of(NULL, "src/.valgrindrc"));
	assert_non_null(why_of(NULL, ".cargo/config.toml"));
	assert_string_equal(why_of(NULL, ".github/perfbot.yml"), "is under .github/ (CI and perfbot's configuration)");
	assert_string_equal(why_of(NULL, ".github/actions/x/action.yml"),
			    "is under .github/ (CI and perfbot's configuration)");
	assert_string_equal(why_of(NULL, "tests/test_sort.c"), "is a test (under tests/)");
	assert_string_equal(why_of(NULL, "test/check.c"), "is a test (under test/)");
	assert_string_equal(why_of(NULL, "lib/Spec/a.rb"), "is a test (under spec/)");
	assert_string_equal(why_of(NULL, "pkg/sort_test.go"), "is a test (*_test.*)");
	assert_string_equal(why_of(NULL, "test_parse.py"), "is a test (test_*.*)");
	assert_string_equal(why_of(NULL, "Makefile"), "is a build file (Makefile*)");
	assert_string_equal(why_of(NULL, "sub/GNUmakefile"), "is a build file (GNUmakefile)");
	assert_string_equal(why_of(NULL, "rules.mk"), "is a build file (*.mk)");
	assert_non_null(why_of(NULL, "CMakeLists.txt"));
	assert_non_null(why_of(NULL, "cmake/flags.cmake"));
	assert_non_null(why_of(NULL, "configure.ac"));
	assert_non_null(why_of(NULL, "meson.build"));
	assert_non_null(why_of(NULL, "setup.py"));
	assert_non_null(why_of(NULL, "pyproject.toml"));
	assert_non_null(why_of(NULL, "package.json"));
	assert_non_null(why_of(NULL, "Cargo.toml"));
	assert_non_null(why_of(NULL, "go.mod"));
	/* code is free */
	assert_null(why_of(NULL, "src/primes.c"));
	assert_null(why_of(NULL, "lib/testing_utils_impl.c"));
	assert_null(why_of(NULL, "src/contest.c"));
	assert_null(why_of(NULL, "README.md"));
}

static void test_command_files(void **state)
{
	(void)state;
	const char *bench[] = { "./bench/parse data/small.json", "N=10 python3 tools/run.py --input=fixtures/big.bin 3",
				"cd harness && ./run" };
	const char *other[] = { "make -j2 && ./scripts/check.sh", "cc -O2 -o prog src/prog.c" };
	base_diff_policy p = BASE_DIFF_POLICY_INIT;
	p.bench_commands = bench;
	p.nbench_commands = 3;
	p.commands = other;
	p.ncommands = 2;
	assert_string_equal(why_of(&p, "bench/parse.c"),
			    "is in bench/, the folder of the benchmark command `./bench/parse data/small.json`");
	assert_string_equal(why_of(&p, "data/small.json"),
			    "is named by the benchmark command `./bench/parse data/small.json`");
	assert_null(why_of(&p, "data/other.json"));
	assert_non_null(why_of(&p, "tools/run.py"));
	assert_non_null(why_of(&p, "tools/helper.py"));
	assert_non_null(why_of(&p, "fixtures/big.bin"));
	assert_string_equal(why_of(&p, "harness/main.c"), "is in harness/, where the benchmark command `cd harness && ./run` runs");
	assert_string_equal(why_of(&p, "scripts/check.sh"),
			    "is named by the build or test command `make -j2 && ./scripts/check.sh`");
	/* a compiler's inputs are the code to optimise */
	assert_null(why_of(&p, "src/prog.c"));
	assert_null(why_of(&p, "scripts/other.sh"));
	assert_null(why_of(&p, "src/parse.c"));
}

static void test_globs(void **state)
{
	(void)state;
	assert_true(base_diff_policy_glob("vendor", "vendor/zlib/inflate.c"));
	assert_true(base_diff_policy_glob("*.pb.c", "src/gen/x.pb.c"));
	assert_false(base_diff_policy_glob("*.pb.c", "src/gen/x.c"));
	assert_true(base_diff_policy_glob("src/*.c", "src/a.c"));
	assert_false(base_diff_policy_glob("src/*.c", "src/sub/a.c"));
	assert_true(base_diff_policy_glob("src/**/*.c", "src/sub/deep/a.c"));
	assert_true(base_diff_policy_glob("src/**/*.c", "src/a.c"));
	assert_true(base_diff_policy_glob("src/", "src/sub/a.c"));
	assert_true(base_diff_policy_glob("./src/**", "src/a.c"));
	assert_false(base_diff_policy_glob("lib/**", "src/a.c"));
	assert_false(base_diff_policy_glob("", "a"));
	/* a crafted glob ends quickly */
	assert_false(base_diff_policy_glob("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b",
					  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));

	const char *prot[] = { "src/generated/**", "*.lock" };
	const char *paths[] = { "src/**", "include/*.h" };
	base_diff_policy p = BASE_DIFF_POLICY_INIT;
	p.protected_globs = prot;
	p.nprotected = 2;
	assert_string_equal(why_of(&p, "src/generated/tables.c"), "matches optimize.protected (src/generated/**)");
	assert_non_null(why_of(&p, "deps.lock"));
	assert_null(why_of(&p, "lib/a.c"));
	p.allowed_globs = paths;
	p.nallowed = 2;
	assert_null(why_of(&p, "src/a.c"));
	assert_null(why_of(&p, "include/a.h"));
	assert_string_equal(why_of(&p, "lib/a.c"), "is outside optimize.paths");
	assert_non_null(why_of(&p, "src/generated/tables.c"));

	assert_int_equal(base_diff_policy_check_path(&p, "lib/a.c"), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "refused: lib/a.c is outside optimize.paths"));
	assert_int_equal(base_diff_policy_check_path(&p, "src/a.c"), 0);
}

static void test_measurement_words(void **state)
{
	(void)state;
	const char *d = "diff --git a/b.c b/b.c\n--- a/b.c\n+++ b/b.c\n@@ -1 +1,2 @@\n a();\n"
			"+if (getenv(\"ld_PRELOAD\") && strstr(maps, \"VgPreload\")) return;\n";
	const char *word = NULL;
	assert_int_equal(base_diff_policy_measurement_line(d, strlen(d), &word), 6);
	assert_string_equal(word, "vgpreload");
	assert_int_equal(base_diff_policy_check_lines(d, strlen(d)), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "refused: line 6 of the diff mentions \"vgpreload\""));
	const char *lower = "diff --git a/b.c b/b.c\n--- a/b.c\n+++ b/b.c\n@@ -1 +1,2 @@\n a();\n"
			    "+#include <Valgrind/CallGrind.h>\n";
	assert_int_equal(base_diff_policy_check_lines(lower, strlen(lower)), BASE_EINVALID);
	const char *context = "diff --git a/b.c b/b.c\n--- a/b.c\n+++ b/b.c\n@@ -1,2 +1,2 @@\n #include <valgrind.h>\n"
			      "-a(1);\n+a(2);\n";
	assert_int_equal(base_diff_policy_check_lines(context, strlen(context)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_builtin_rules),
		cmocka_unit_test(test_command_files),
		cmocka_unit_test(test_globs),
		cmocka_unit_test(test_measurement_words),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
