/* Unit tests: verification of a submitted diff with the real sandbox and
 * callgrind on tests/data/optrepo — a real speed-up becomes a proposal; a
 * change that breaks the tests, a change that only claims a gain, and
 * forbidden changes (workflow, .git, outside the tree, binary, too big) do
 * not.  Changes that would steer their own measurement do not either: the
 * harness, the tests, a .valgrindrc, optimize.protected / optimize.paths, a
 * client request spelled so that no source check sees it (token pasting, raw
 * asm), work moved before a region harness starts, and a tests' cache the
 * benchmark reads (the base and the candidate go through the same steps).
 * The agent's write tools refuse protected paths at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "measure/bench.h"
#include "measure/repo_config.h"
#include "measure/sandbox.h"
#include "agent/tools.h"
#include "agent/verify.h"
#include "base/error.h"
#include "base/log.h"

typedef struct env {
	char dir[64];
	char repo[128], scratch[128];
	char base[41];
	measure_sandbox *sb;
	measure_repo_config *cfg;
	int n;
} env;

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (system(cmd) != 0)
		fail_msg("command failed: %s", cmd);
}

/* A new plain tree of the base commit of repo; path into out. */
static void tree_of(env *e, const char *repo, char *out, size_t n)
{
	snprintf(out, n, "%s/tree%d", e->dir, e->n++);
	sh("mkdir -p %s && git -C %s archive HEAD | tar -x -C %s", out, repo, out);
}

static void fresh_tree(env *e, char *out, size_t n)
{
	tree_of(e, e->repo, out, n);
}

static int group_setup(void **state)
{
	env *e = calloc(1, sizeof(*e));
	base_log_configure(BASE_LOG_WARN, 0, 2);
	snprintf(e->dir, sizeof(e->dir), "/tmp/perfbot-verify-XXXXXX");
	if (!mkdtemp(e->dir))
		return -1;
	snprintf(e->repo, sizeof(e->repo), "%s/repo", e->dir);
	snprintf(e->scratch, sizeof(e->scratch), "%s/scratch", e->dir);
	sh("cp -r tests/data/optrepo %s && mkdir %s && cd %s && git init -q && git add -A && "
	   "git -c user.name=t -c user.email=t@example.com commit -qm base",
	   e->repo, e->scratch, e->repo);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "git -C %s rev-parse HEAD", e->repo);
	FILE *p = popen(cmd, "r");
	if (!p || !fgets(e->base, sizeof(e->base), p))
		return -1;
	pclose(p);
	char yml[] = "build: make\ntest: make test\nbenchmarks:\n  - name: primes\n    command: ./bench/primes 3000\n"
		     "threshold: 3%\n";
	if (measure_repo_config_parse(&e->cfg, yml, strlen(yml)) < 0 || measure_sandbox_new(&e->sb, "bwrap") < 0)
		return -1;
	if (e->sb->prepare_dir(e->sb, e->scratch) < 0)
		return -1;
	*state = e;
	return 0;
}

static int group_teardown(void **state)
{
	env *e = *state;
	measure_repo_config_free(e->cfg);
	measure_sandbox_free(e->sb);
	sh("rm -rf %s", e->dir);
	free(e);
	return 0;
}

/* The diff of a tree changed by `edit` (a shell command run in it). */
static char *make_diff(env *e, const char *edit)
{
	char tree[PATH_MAX];
	fresh_tree(e, tree, sizeof(tree));
	sh("cd %s && %s", tree, edit);
	char *diff = NULL;
	assert_int_equal(agent_workspace_diff(&diff, e->repo, tree, e->base, 1 << 20), 0);
	return diff;
}

static json_t *verify_with(env *e, const char *repo, const measure_repo_config *cfg, const char *diff)
{
	char tree[PATH_MAX], base[PATH_MAX];
	tree_of(e, repo, tree, sizeof(tree));
	tree_of(e, repo, base, sizeof(base));
	agent_verify_options o = AGENT_VERIFY_OPTIONS_INIT;
	o.sandbox = e->sb;
	o.config = cfg;
	o.repo_path = repo;
	o.fresh_dir = tree;
	o.base_dir = base;
	o.scratch_dir = e->scratch;
	o.diff = diff;
	o.diff_len = strlen(diff);
	o.summary = "summary";
	json_t *out = NULL;
	if (agent_verify(&out, &o) != 0)
		fail_msg("verify: %s", base_error_last());
	assert_non_null(out);
	return out;
}

static json_t *verify(env *e, const char *diff)
{
	return verify_with(e, e->repo, e->cfg, diff);
}

static const char *str(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static void test_real_speedup_is_a_proposal(void **state)
{
	env *e = *state;
	char *diff = make_diff(e, "sed -i 's/d < n;/d * d <= n;/' src/primes.c");
	json_t *v = verify(e, diff);
	assert_string_equal(str(v, "status"), "proposal");
	json_t *b = json_array_get(json_object_get(v, "benchmarks"), 0);
	assert_string_equal(str(b, "name"), "primes");
	assert_string_equal(str(b, "verdict"), "improved");
	assert_true(json_number_value(json_object_get(b, "head")) < json_number_value(json_object_get(b, "base")) / 2);
	assert_true(json_number_value(json_object_get(b, "change_pct")) < -50);
	assert_non_null(strstr(str(v, "log"), "base test: `make test`: ok"));
	assert_non_null(strstr(str(v, "log"), "candidate test: `make test`: ok"));
	assert_non_null(strstr(str(v, "log"), "scan: no new valgrind client request"));
	/* the base was measured now, the same way */
	assert_true(json_is_object(json_object_get(v, "base_measurement")));
	assert_string_equal(str(v, "diff"), diff);
	json_decref(v);
	free(diff);
}

static void test_broken_tests_are_no_proposal(void **state)
{
	env *e = *state;
	char *diff = make_diff(e, "sed -i 's/d < n;/d * d < n;/' src/primes.c");
	json_t *v = verify(e, diff);
	assert_string_equal(str(v, "status"), "failed");
	assert_string_equal(str(v, "reason"), "the tests fail with the change");
	assert_non_null(strstr(str(v, "log"), "FAIL"));
	assert_int_equal(json_array_size(json_object_get(v, "benchmarks")), 0);
	json_decref(v);
	free(diff);
}

static void test_claimed_gain_is_no_improvement(void **state)
{
	env *e = *state;
	char *diff = make_diff(e, "sed -i 's|^int is_prime|/* faster now */\\nint is_prime|' src/primes.c");
	assert_non_null(strstr(diff, "+/* faster now */"));
	json_t *v = verify(e, diff);
	assert_string_equal(str(v, "status"), "no_improvement");
	assert_string_equal(str(v, "reason"), "no benchmark improved past its threshold");
	assert_string_equal(str(json_array_get(json_object_get(v, "benchmarks"), 0), "verdict"), "unchanged");
	json_decref(v);
	free(diff);
}

static void test_forbidden_changes_are_refused(void **state)
{
	env *e = *state;
	char *diff = make_diff(e, "sed -i 's/d < n;/d * d <= n;/' src/primes.c && mkdir -p .github/workflows && "
				  "echo 'on: push' > .github/workflows/x.yml");
	json_t *v = verify(e, diff);
	assert_string_equal(str(v, "status"), "failed");
	assert_true(json_is_true(json_object_get(v, "refused")));
	assert_string_equal(str(v, "reason"),
			    "refused: .github/workflows/x.yml is a GitHub Actions workflow (.github/workflows/)");
	json_decref(v);
	free(diff);

	/* a new binary file (a build product) never reaches the diff ... */
	diff = make_diff(e, "printf '\\000\\001\\002' > blob.bin");
	assert_string_equal(diff, "");
	free(diff);
	/* ... and a binary change in a diff is refused */
	const char *bin = "diff --git a/x.bin b/x.bin\nindex 1111111..2222222 100644\nBinary files a/x.bin and b/x.bin differ\n";
	assert_int_equal(agent_diff_check(bin, strlen(bin), 0, NULL), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "binary"));

	const char *git = "diff --git a/.git/config b/.git/config\n--- a/.git/config\n+++ b/.git/config\n"
			  "@@ -1 +1 @@\n-a\n+b\n";
	assert_int_equal(agent_diff_check(git, strlen(git), 0, NULL), BASE_EINVALID);
	assert_string_equal(base_error_last(), "refused: .git/config is under .git/");
	const char *up = "diff --git a/../x b/../x\n--- a/../x\n+++ b/../x\n@@ -1 +1 @@\n-a\n+b\n";
	assert_int_equal(agent_diff_check(up, strlen(up), 0, NULL), BASE_EINVALID);
	const char *ok = "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n";
	assert_int_equal(agent_diff_check(ok, strlen(ok), 0, NULL), 0);
	assert_int_equal(agent_diff_check(ok, strlen(ok), 10, NULL), BASE_ETOOBIG);
	/* a diff may not change what callgrind counts */
	const char *zero = "diff --git a/b.c b/b.c\n--- a/b.c\n+++ b/b.c\n@@ -1 +1,2 @@\n a();\n+CALLGRIND_ZERO_STATS;\n";
	assert_int_equal(agent_diff_check(zero, strlen(zero), 0, NULL), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "line 6 of the diff mentions \"callgrind\""));
	const char *cheat = "diff --git a/b.c b/b.c\n--- a/b.c\n+++ b/b.c\n@@ -1 +1 @@\n-slow();\n"
			    "+if (!RUNNING_ON_VALGRIND) slow();\n";
	assert_int_equal(agent_diff_check(cheat, strlen(cheat), 0, NULL), BASE_EINVALID);
	const char *moved = "diff --git a/h.c b/h.c\n--- a/h.c\n+++ b/h.c\n@@ -1,2 +1 @@\n-CALLGRIND_START_INSTRUMENTATION;\n"
			    " run();\n";
	assert_int_equal(agent_diff_check(moved, strlen(moved), 0, NULL), BASE_EINVALID);
	/* context lines that mention them are fine */
	const char *near = "diff --git a/h.c b/h.c\n--- a/h.c\n+++ b/h.c\n@@ -1,2 +1,2 @@\n CALLGRIND_START_INSTRUMENTATION;\n"
			   "-run(1);\n+run(2);\n";
	assert_int_equal(agent_diff_check(near, strlen(near), 0, NULL), 0);

	v = verify(e, "");
	assert_string_equal(str(v, "status"), "no_improvement");
	json_decref(v);
}


/* A repository of its own: files as (path, content) pairs, NULL-ended, one
 * of them .github/perfbot.yml (parsed into *cfg); its path into repo. */
static void make_repo(env *e, char *repo, size_t n, const char *const *files, measure_repo_config **cfg)
{
	snprintf(repo, n, "%s/repo%d", e->dir, e->n++);
	for (size_t i = 0; files[i]; i += 2) {
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s", repo, files[i]);
		sh("mkdir -p \"$(dirname %s)\"", path);
		FILE *f = fopen(path, "w");
		assert_non_null(f);
		fputs(files[i + 1], f);
		fclose(f);
		if (!strcmp(files[i], ".github/perfbot.yml") &&
		    measure_repo_config_parse(cfg, files[i + 1], strlen(files[i + 1])) < 0)
			fail_msg("config: %s", base_error_last());
	}
	sh("cd %s && git init -q && git add -A && git -c user.name=t -c user.email=t@example.com commit -qm base", repo);
}

/* The diff of a tree of repo changed by `edit`. */
static char *diff_of(env *e, const char *repo, const char *edit)
{
	char tree[PATH_MAX], sha[41] = "";
	tree_of(e, repo, tree, sizeof(tree));
	sh("cd %s && %s", tree, edit);
	char cmd[PATH_MAX + 64];
	snprintf(cmd, sizeof(cmd), "git -C %s rev-parse HEAD", repo);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	assert_non_null(fgets(sha, sizeof(sha), p));
	pclose(p);
	char *diff = NULL;
	assert_int_equal(agent_workspace_diff(&diff, repo, tree, sha, 1 << 20), 0);
	return diff;
}

static void expect_refused(env *e, const char *edit, const char *reason)
{
	char *diff = make_diff(e, edit);
	json_t *v = verify(e, diff);
	assert_string_equal(str(v, "status"), "failed");
	assert_true(json_is_true(json_object_get(v, "refused")));
	if (strncmp(str(v, "reason"), reason, strlen(reason)) != 0)
		fail_msg("reason \"%s\" does not start with \"%s\"", str(v, "reason"), reason);
	json_decref(v);
	free(diff);
}

static void test_protected_paths_are_refused(void **state)
{
	env *e = *state;
	/* the harness: a smaller input in the benchmark's own folder */
	expect_refused(e, "sed -i 's/: 3000/: 30/' bench/primes.c && sed -i 's/d < n;/d * d <= n;/' src/primes.c",
		       "refused: bench/primes.c is in bench/, the folder of the benchmark command `./bench/primes 3000`");
	/* the tests: deleted, so the gate proves nothing */
	expect_refused(e, "rm test/check.c && sed -i 's/d < n;/d * d < n;/' src/primes.c",
		       "refused: test/check.c is a test (under test/)");
	/* valgrind's option file */
	expect_refused(e, "echo '--collect-atstart=no --toggle-collect=tiny' > .valgrindrc",
		       "refused: .valgrindrc is a dotfile or under a dot-folder");
	/* the build flags */
	expect_refused(e, "sed -i 's/-O1/-O3/' Makefile", "refused: Makefile is a build file (Makefile*)");
	expect_refused(e, "echo 'benchmarks: []' > .github/perfbot.yml",
		       "refused: .github/perfbot.yml is under .github/");

	/* optimize.protected and optimize.paths */
	const char *yml = "build: make\ntest: make test\nbenchmarks:\n  - name: primes\n    command: ./bench/primes 3000\n"
			  "optimize:\n  protected: [\"src/*.h\"]\n  paths: [\"src/**\"]\n";
	measure_repo_config *cfg = NULL;
	assert_int_equal(measure_repo_config_parse(&cfg, yml, strlen(yml)), 0);
	base_diff_policy *p = NULL;
	assert_int_equal(measure_repo_config_diff_policy(&p, cfg), 0);
	char *d = make_diff(e, "echo '/* x */' >> src/primes.h");
	assert_int_equal(agent_diff_check(d, strlen(d), 0, p), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "refused: src/primes.h matches optimize.protected (src/*.h)"));
	free(d);
	d = make_diff(e, "echo notes > NOTES.md");
	assert_int_equal(agent_diff_check(d, strlen(d), 0, p), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "refused: NOTES.md is outside optimize.paths"));
	assert_int_equal(agent_diff_check(d, strlen(d), 0, NULL), 0);
	free(d);
	d = make_diff(e, "sed -i 's/d < n;/d * d <= n;/' src/primes.c");
	assert_int_equal(agent_diff_check(d, strlen(d), 0, p), 0);
	json_t *v = verify_with(e, e->repo, cfg, d);
	assert_string_equal(str(v, "status"), "proposal");
	json_decref(v);
	free(d);
	d = make_diff(e, "echo notes > NOTES.md && sed -i 's/d < n;/d * d <= n;/' src/primes.c");
	v = verify_with(e, e->repo, cfg, d);
	assert_string_equal(str(v, "status"), "failed");
	assert_true(json_is_true(json_object_get(v, "refused")));
	free(d);
	json_decref(v);
	free(p);
	measure_repo_config_free(cfg);
}

static json_t *tool(agent_tools *t, const char *name, const char *args)
{
	json_t *a = json_loads(args, 0, NULL), *r = NULL;
	assert_non_null(a);
	assert_int_equal(agent_tool_call(t, name, a, &r), 0);
	json_decref(a);
	return r;
}

static const char *tool_text(const json_t *r)
{
	return str(json_array_get(json_object_get(r, "content"), 0), "text");
}

static void test_write_tools_refuse_protected_paths(void **state)
{
	env *e = *state;
	char tree[PATH_MAX];
	fresh_tree(e, tree, sizeof(tree));
	base_diff_policy *p = NULL;
	assert_int_equal(measure_repo_config_diff_policy(&p, e->cfg), 0);
	agent_tools_options to = AGENT_TOOLS_OPTIONS_INIT;
	to.workspace = tree;
	to.repo_path = e->repo;
	to.base_commit = e->base;
	to.policy = p;
	agent_tools *t = NULL;
	assert_int_equal(agent_tools_new(&t, &to), 0);
	json_t *r = tool(t, "write_file", "{\"path\": \"test/check.c\", \"content\": \"int main(void){return 0;}\\n\"}");
	assert_true(json_is_true(json_object_get(r, "isError")));
	assert_non_null(strstr(tool_text(r), "refused: test/check.c is a test (under test/)"));
	json_decref(r);
	r = tool(t, "write_file", "{\"path\": \"./.valgrindrc\", \"content\": \"--collect-atstart=no\\n\"}");
	assert_true(json_is_true(json_object_get(r, "isError")));
	assert_non_null(strstr(tool_text(r), "refused: .valgrindrc is a dotfile"));
	json_decref(r);
	r = tool(t, "edit_file", "{\"path\": \"bench/primes.c\", \"old_string\": \"3000\", \"new_string\": \"30\"}");
	assert_true(json_is_true(json_object_get(r, "isError")));
	assert_non_null(strstr(tool_text(r), "refused: bench/primes.c is in bench/"));
	json_decref(r);
	r = tool(t, "edit_file", "{\"path\": \"src/primes.c\", \"old_string\": \"d < n;\", \"new_string\": \"d * d <= n;\"}");
	assert_false(json_is_true(json_object_get(r, "isError")));
	json_decref(r);
	/* nothing protected was written */
	sh("test ! -e %s/.valgrindrc && grep -q 'count_primes(1000) != 168' %s/test/check.c && grep -q 3000 %s/bench/primes.c",
	   tree, tree, tree);
	agent_tools_free(t);
	free(p);
}

static void test_client_requests_in_any_spelling(void **state)
{
	env *e = *state;
	/* token pasting: no word of valgrind's in the source, CALLGRIND_ZERO_STATS in the binary */
	char *diff = make_diff(e, "sed -i '1i #define VG_H(a, b, c, d) <a##b/c##d.h>\\n#include VG_H(valg,rind,callg,rind)\\n"
				  "#define PASTE(a, b) a##b' src/primes.c && "
				  "sed -i 's/int count = 0;/int count = 0;\\n\\tPASTE(CALLGRI, ND_ZERO_STATS);/' src/primes.c");
	assert_int_equal(agent_diff_check(diff, strlen(diff), 0, NULL), 0);
	json_t *v = verify(e, diff);
	assert_string_equal(str(v, "status"), "failed");
	assert_true(json_is_true(json_object_get(v, "refused")));
	assert_non_null(strstr(str(v, "reason"), "refused: the built file "));
	assert_non_null(strstr(str(v, "reason"), "valgrind client request"));
	assert_int_equal(json_array_size(json_object_get(v, "benchmarks")), 0);
	json_decref(v);
	free(diff);

	/* the raw instruction sequence in asm */
	diff = make_diff(e, "sed -i 's/int count = 0;/int count = 0;\\n\\t__asm__ volatile(\"rolq $3, %%rdi; "
			    "rolq $13, %%rdi; rolq $61, %%rdi; rolq $51, %%rdi; xchgq %%rbx, %%rbx\" ::: "
			    "\"memory\", \"rdi\");/' src/primes.c");
	assert_non_null(strstr(diff, "rolq $3, %%rdi"));
	v = verify(e, diff);
	assert_string_equal(str(v, "status"), "failed");
	assert_true(json_is_true(json_object_get(v, "refused")));
	assert_non_null(strstr(str(v, "reason"), "valgrind client request"));
	json_decref(v);
	free(diff);

	/* the scan itself: counted per file, links not followed */
	char tree[PATH_MAX];
	fresh_tree(e, tree, sizeof(tree));
	sh("cd %s && printf 'xx\\110\\301\\307\\003\\110\\301\\307\\015\\110\\301\\307\\075\\110\\301\\307\\063yy' > a.bin && "
	   "mkdir -p d && cat a.bin a.bin > d/b.bin && ln -s a.bin link.bin",
	   tree);
	json_t *found = NULL;
	assert_int_equal(agent_verify_scan_requests(&found, tree, 0), 0);
	assert_int_equal(json_integer_value(json_object_get(found, "a.bin")), 1);
	assert_int_equal(json_integer_value(json_object_get(found, "d/b.bin")), 2);
	assert_null(json_object_get(found, "link.bin"));
	json_decref(found);
	assert_int_equal(agent_verify_scan_requests(&found, tree, 10), BASE_ETOOBIG);
	assert_null(found);
}

/* A region harness (bench/, protected) around work() of src/: moving the
 * work into a constructor that runs before the harness starts
 * instrumentation empties the region, not the process. */
static void test_work_moved_out_of_the_region(void **state)
{
	env *e = *state;
	static const char *const files[] = {
		".github/perfbot.yml",
		"build: cc -O1 -g -Isrc -o bench/region bench/region.c src/work.c\n"
		"benchmarks:\n  - name: region\n    command: ./bench/region\n    mode: region\nthreshold: 3%\n",
		"src/work.h", "unsigned long work(unsigned long n);\n",
		"src/work.c",
		"#include \"work.h\"\n\nunsigned long work(unsigned long n)\n{\n\tunsigned long x = 1;\n"
		"\tfor (unsigned long i = 0; i < n; i++)\n\t\tx = x * 6364136223846793005UL + (i ^ (x >> 7));\n"
		"\treturn x;\n}\n",
		"bench/region.c",
		"#include <stdio.h>\n#include <valgrind/callgrind.h>\n#include \"work.h\"\n\nint main(void)\n{\n"
		"\tCALLGRIND_ZERO_STATS;\n\tCALLGRIND_START_INSTRUMENTATION;\n\tunsigned long r = work(200000);\n"
		"\tCALLGRIND_STOP_INSTRUMENTATION;\n\tprintf(\"%lu\\n\", r);\n\treturn 0;\n}\n",
		NULL,
	};
	char repo[PATH_MAX];
	measure_repo_config *cfg = NULL;
	make_repo(e, repo, sizeof(repo), files, &cfg);

	/* the cheat: the same result, computed before main */
	char *diff = diff_of(e, repo,
			     "sed -i 's/^unsigned long work(unsigned long n)$/static unsigned long slow(unsigned long n)/' "
			     "src/work.c && printf '%s' '\nstatic unsigned long early;\n\n"
			     "__attribute__((constructor)) static void warm(void)\n{\n\tearly = slow(200000);\n}\n\n"
			     "unsigned long work(unsigned long n)\n{\n\treturn n == 200000 ? early : slow(n);\n}\n' >> src/work.c");
	json_t *v = verify_with(e, repo, cfg, diff);
	assert_string_equal(str(v, "status"), "no_improvement");
	assert_non_null(strstr(str(v, "reason"), "work moved out of the measured region"));
	json_t *row = json_array_get(json_object_get(v, "benchmarks"), 0);
	assert_string_equal(str(row, "verdict"), "moved_out_of_region");
	assert_true(json_number_value(json_object_get(row, "change_pct")) < -50);
	assert_non_null(strstr(str(v, "log"), "but the whole process by"));
	json_decref(v);
	free(diff);

	/* a real gain of the region shows in the whole process too */
	diff = diff_of(e, repo, "sed -i 's/i < n;/i < n \\/ 2;/' src/work.c");
	v = verify_with(e, repo, cfg, diff);
	assert_string_equal(str(v, "status"), "proposal");
	json_decref(v);
	free(diff);
	measure_repo_config_free(cfg);
}

/* The tests leave a results cache in the tree that the benchmark reads:
 * the base goes through the tests as well, so a comment changes nothing. */
static void test_same_steps_for_base_and_candidate(void **state)
{
	env *e = *state;
	static const char *const files[] = {
		".github/perfbot.yml",
		"test: python3 tests/check.py\nbenchmarks:\n  - name: calc\n    command: python3 bench/run.py\nthreshold: 3%\n",
		"src/calc.py", "def total(n):\n    s = 0\n    for i in range(n):\n        s += i * i\n    return s\n",
		"tests/check.py",
		"import sys\nsys.path.insert(0, 'src')\nfrom calc import total\nassert total(10) == 285\n"
		"open('results.cache', 'w').write(str(total(30000)))\n",
		"bench/run.py",
		"import os, sys\nsys.path.insert(0, 'src')\nfrom calc import total\n"
		"if os.path.exists('results.cache'):\n    print(open('results.cache').read())\nelse:\n    print(total(30000))\n",
		NULL,
	};
	char repo[PATH_MAX];
	measure_repo_config *cfg = NULL;
	make_repo(e, repo, sizeof(repo), files, &cfg);
	char *diff = diff_of(e, repo, "sed -i '1i # sums of squares' src/calc.py");
	json_t *v = verify_with(e, repo, cfg, diff);
	assert_string_equal(str(v, "status"), "no_improvement");
	assert_string_equal(str(v, "reason"), "no benchmark improved past its threshold");
	assert_non_null(strstr(str(v, "log"), "base test: `python3 tests/check.py`: ok"));
	json_decref(v);
	free(diff);
	measure_repo_config_free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_speedup_is_a_proposal),
		cmocka_unit_test(test_broken_tests_are_no_proposal),
		cmocka_unit_test(test_claimed_gain_is_no_improvement),
		cmocka_unit_test(test_forbidden_changes_are_refused),
		cmocka_unit_test(test_protected_paths_are_refused),
		cmocka_unit_test(test_write_tools_refuse_protected_paths),
		cmocka_unit_test(test_client_requests_in_any_spelling),
		cmocka_unit_test(test_work_moved_out_of_the_region),
		cmocka_unit_test(test_same_steps_for_base_and_candidate),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
