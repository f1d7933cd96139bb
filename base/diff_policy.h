/* The diff policy: which paths a proposed change may touch, and which
 * changed lines change how the code is measured rather than how fast it is.
 *
 * One policy for every place that judges a diff (agent verification, the
 * agent's write tools, pr/ at approval), so a change that passed one is
 * never refused by another for a different reason.
 *
 * Protected, whatever the configuration says:
 *  - `.github/` (CI and perfbot's own configuration) and every dotfile or
 *    dot-directory (`.valgrindrc`, `.gdbinit`, `.cargo/config`, ...: tools
 *    read them and change what is built or measured);
 *  - tests: a `tests/`, `test/`, `spec/`, `__tests__/` folder anywhere,
 *    `*_test.*`, `test_*.*`, `*.test.*`, `*.spec.*`, `conftest.py`;
 *  - build and CI files: Makefiles (`Makefile*`, `GNUmakefile`, `*.mk`),
 *    CMake, autotools (`configure*`, `*.am`, `*.ac`), meson, ninja, Python
 *    (`setup.py`, `pyproject.toml`, `pytest.ini`, ...), npm and its tools'
 *    configs, Cargo, Go, Bazel, Gradle/Maven, SCons, Zig, Jenkins files and
 *    the like (BUILD_FILES in diff_policy.c);
 * and from the configuration of the base commit:
 *  - the files named by the benchmark commands and the folder of each
 *    one's program or script (`./bench/parse data/x.json` protects `bench/`
 *    and `data/x.json`); the program or script that the build and test
 *    commands run (`./build.sh`, `python3 check.py`), but not the files they
 *    pass to it (a compiler's inputs are the code to optimise);
 *  - `optimize.protected` globs.
 * `optimize.paths` globs, when given, limit the change to what they match.
 *
 * Globs: `*` and `?` stay within one path component, `**` crosses them;
 * a glob without '/' matches a component at any depth (like .gitignore);
 * a glob that matches a folder covers everything under it.
 *
 * Pure functions, no state; any thread. */
#ifndef BASE_DIFF_POLICY_H
#define BASE_DIFF_POLICY_H

#include <stddef.h>

typedef struct base_diff_policy {
	const char *const *bench_commands;  /* the benchmarks' commands; borrowed */
	size_t nbench_commands;
	const char *const *commands;        /* the build and test commands; borrowed */
	size_t ncommands;
	const char *const *protected_globs; /* optimize.protected; borrowed */
	size_t nprotected;
	const char *const *allowed_globs;   /* optimize.paths; 0 = everything not protected */
	size_t nallowed;
} base_diff_policy;

#define BASE_DIFF_POLICY_INIT { NULL, 0, NULL, 0, NULL, 0, NULL, 0 }

/* 0 when the relative path (as in a diff, '/'-separated) may be changed
 * under `policy` (NULL: the built-in rules only); otherwise 1 (protected) or
 * 2 (outside optimize.paths) with the reason in why (e.g. "is a test (under
 * tests/)", never naming the path). */
int base_diff_policy_path(const base_diff_policy *policy, const char *path, char *why, size_t why_size);

/* The same as an error: 0, or BASE_EINVALID with "refused: <path> <reason>"
 * in base_error_last(). */
int base_diff_policy_check_path(const base_diff_policy *policy, const char *path);

/* 0 when no changed line of the diff (len bytes, git format, need not be
 * NUL-terminated) holds a measurement word (below); else BASE_EINVALID with
 * "refused: line N of the diff ..." in base_error_last(). */
int base_diff_policy_check_lines(const char *diff, size_t len);

/* The first changed line (+ or -, not a file header) of the diff that holds
 * a word of valgrind's measurement (callgrind, valgrind, vgpreload,
 * LD_PRELOAD, ...: any case): its 1-based number in the diff and the word
 * (static), or 0. */
size_t base_diff_policy_measurement_line(const char *diff, size_t len, const char **word_out);

/* 1 when glob matches path (see the glob rules above). */
int base_diff_policy_glob(const char *glob, const char *path);

#endif
