/* Unit tests: the callgrind output parser against committed output files
 * (tests/data/callgrind/, written by the measurement command for
 * `./bench/parse 300` of tests/data/benchrepo), with the expected numbers
 * taken from `callgrind_annotate --inclusive=yes` and `--inclusive=no`;
 * name and subposition compression; the estimated-cycles formula; the argv
 * of the measurement command; malformed input; bounded memory for long
 * names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "measure/callgrind_run.h"
#include "measure/sandbox.h"
#include "base/error.h"

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s (run from the repository root)", path);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}

static void parse_file(measure_cg_profile *p, const char *path)
{
	size_t len;
	char *text = slurp(path, &len);
	int rc = measure_cg_parse(p, text, len);
	if (rc != 0)
		fail_msg("parse %s: %s", path, base_error_last());
	free(text);
}

static const measure_cg_function *find(const measure_cg_profile *p, const char *file, const char *name)
{
	for (size_t i = 0; i < p->nfns; i++)
		if (strcmp(p->fns[i].name, name) == 0 && strcmp(p->fns[i].file, file) == 0)
			return &p->fns[i];
	fail_msg("function %s:%s not in the profile", file, name);
	return NULL;
}

static void expect_costs(const measure_cg_costs *c, const uint64_t want[MEASURE_CG_NEVENTS])
{
	for (int i = 0; i < MEASURE_CG_NEVENTS; i++)
		if (c->ev[i] != want[i])
			fail_msg("%s: got %llu, expected %llu", measure_cg_event_names[i], (unsigned long long)c->ev[i],
				 (unsigned long long)want[i]);
}

static void test_matches_callgrind_annotate(void **state)
{
	(void)state;
	measure_cg_profile p;
	measure_cg_profile_init(&p);
	parse_file(&p, "tests/data/callgrind/parse.out.21");
	/* PROGRAM TOTALS */
	const uint64_t totals[] = { 757179, 128543, 69482, 1288, 984, 673, 1267, 758, 642 };
	expect_costs(&p.totals, totals);
	/* /workspace/bench/parse.c:main, inclusive and exclusive */
	const measure_cg_function *main_fn = find(&p, "/workspace/bench/parse.c", "main");
	const uint64_t main_incl[] = { 649126, 104570, 58025, 198, 66, 109, 198, 35, 107 };
	const uint64_t main_self[] = { 296512, 38553, 320, 8, 0, 0, 8, 0, 0 };
	expect_costs(&main_fn->inclusive, main_incl);
	expect_costs(&main_fn->self, main_self);
	/* a libc function reached through fi=/fe= and compressed names */
	const measure_cg_function *below =
		find(&p, "./csu/../sysdeps/nptl/libc_start_call_main.h", "(below main)");
	const uint64_t below_incl[] = { 650700, 104999, 58327, 304, 86, 111, 293, 39, 108 };
	expect_costs(&below->inclusive, below_incl);
	assert_int_equal(p.nfiles, 1);

	measure_cg_summary s;
	measure_cg_summarize(&s, &p.totals);
	assert_int_equal(s.instructions, 757179);
	assert_int_equal(s.l1_misses, 1288 + 984 + 673);
	assert_int_equal(s.ll_misses, 1267 + 758 + 642);
	/* (A - M1) + 5 (M1 - ML) + 35 ML with A = 955204, M1 = 2945, ML = 2667 */
	assert_int_equal(s.estimated_cycles, 1046994);

	size_t *top, ntop;
	assert_int_equal(measure_cg_top(&top, &ntop, &p, 1, 3), 0);
	assert_int_equal(ntop, 3);
	assert_true(p.fns[top[0]].inclusive.ev[MEASURE_CG_IR] >= p.fns[top[1]].inclusive.ev[MEASURE_CG_IR]);
	free(top);
	measure_cg_profile_dispose(&p);
}

static void test_processes_sum(void **state)
{
	(void)state;
	measure_cg_profile p;
	measure_cg_profile_init(&p);
	parse_file(&p, "tests/data/callgrind/sh-parse.out.20");
	parse_file(&p, "tests/data/callgrind/parse.out.21");
	assert_int_equal(p.nfiles, 2);
	/* the shell's totals (189,449 Ir) plus the benchmark's (757,179 Ir) */
	assert_int_equal(p.totals.ev[MEASURE_CG_IR], 189449 + 757179);
	assert_int_equal(p.totals.ev[MEASURE_CG_DLMW], 680 + 642);
	/* main of the benchmark is unchanged by the shell's file */
	const measure_cg_function *main_fn = find(&p, "/workspace/bench/parse.c", "main");
	assert_int_equal(main_fn->inclusive.ev[MEASURE_CG_IR], 649126);
	measure_cg_profile_dispose(&p);
}

static void test_compression_and_calls(void **state)
{
	(void)state;
	const char *text = "# callgrind format\n"
			   "version: 1\n"
			   "positions: line\n"
			   "events: Ir Dr\n"
			   "fl=(1) a.c\n"
			   "fn=(1) leaf\n"
			   "10 5 1\n"
			   "+2 3\n"
			   "* 2 2\n"
			   "fn=(2) root\n"
			   "1 1\n"
			   "cfn=(1)\n"
			   "calls=2 10\n"
			   "-1 10 3\n"
			   "fi=(2) b.h\n"
			   "5 7\n"
			   "fe=(1)\n"
			   "2 1\n"
			   "totals: 19 3\n";
	measure_cg_profile p;
	measure_cg_profile_init(&p);
	assert_int_equal(measure_cg_parse(&p, text, strlen(text)), 0);
	const measure_cg_function *leaf = find(&p, "a.c", "leaf");
	assert_int_equal(leaf->self.ev[MEASURE_CG_IR], 10);
	assert_int_equal(leaf->self.ev[MEASURE_CG_DR], 3);
	assert_int_equal(leaf->inclusive.ev[MEASURE_CG_IR], 10); /* the calls into it */
	const measure_cg_function *root = find(&p, "a.c", "root");
	assert_int_equal(root->self.ev[MEASURE_CG_IR], 2);
	assert_int_equal(root->inclusive.ev[MEASURE_CG_IR], 12);
	const measure_cg_function *inl = find(&p, "b.h", "root"); /* inlined code keyed by its file */
	assert_int_equal(inl->self.ev[MEASURE_CG_IR], 7);
	assert_int_equal(p.totals.ev[MEASURE_CG_IR], 19);
	assert_int_equal(p.totals.ev[MEASURE_CG_I1MR], 0); /* absent events count as 0 */
	measure_cg_profile_dispose(&p);
}

/* A program that calls CALLGRIND_ZERO_STATS while instrumented from the
 * start: callgrind 3.19 writes a summary below zero, wrapped around 2^64
 * (as seen on this machine); the totals line holds the count. */
static void test_wrapped_summary_uses_totals(void **state)
{
	(void)state;
	const char *text = "version: 1\n"
			   "events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw\n"
			   "summary: 18446744073701428337 18446744073709524756 18446744073709540307 18446744073709550610"
			   " 18446744073709550681 18446744073709551050 18446744073709550619 18446744073709550870"
			   " 18446744073709551080\n"
			   "fl=(1) region.c\n"
			   "fn=(1) region\n"
			   "5 7025 1 14 3\n"
			   "totals: 7025 1 14 3 0 0 3\n";
	measure_cg_profile p;
	measure_cg_profile_init(&p);
	assert_int_equal(measure_cg_parse(&p, text, strlen(text)), 0);
	assert_int_equal(p.totals.ev[MEASURE_CG_IR], 7025);
	assert_int_equal(p.totals.ev[MEASURE_CG_DW], 14);
	measure_cg_profile_dispose(&p);
}

/* Counts from a crafted file saturate instead of wrapping to negative. */
static void test_counts_saturate(void **state)
{
	(void)state;
	measure_cg_costs c;
	memset(&c, 0, sizeof(c));
	c.ev[MEASURE_CG_IR] = (uint64_t)INT64_MAX - 1;
	c.ev[MEASURE_CG_DR] = 10;
	c.ev[MEASURE_CG_I1MR] = (uint64_t)INT64_MAX / 2;
	c.ev[MEASURE_CG_ILMR] = (uint64_t)INT64_MAX / 2;
	measure_cg_summary s;
	measure_cg_summarize(&s, &c);
	assert_true(s.estimated_cycles <= (uint64_t)INT64_MAX);
	assert_true(s.estimated_cycles >= (uint64_t)INT64_MAX / 2);
	const char *text = "version: 1\nevents: Ir\nfl=(1) a.c\nfn=(1) f\n1 9000000000000000000\n2 9000000000000000000\n";
	measure_cg_profile p;
	measure_cg_profile_init(&p);
	assert_int_equal(measure_cg_parse(&p, text, strlen(text)), 0);
	assert_true(p.totals.ev[MEASURE_CG_IR] <= (uint64_t)INT64_MAX);
	assert_true(p.totals.ev[MEASURE_CG_IR] >= 9000000000000000000ull);
	measure_cg_profile_dispose(&p);
}

static void test_malformed(void **state)
{
	(void)state;
	const char *bad[] = {
		"not callgrind\n",
		"# callgrind format\nevents: Ir\nfn=(3)\n",            /* id used before definition */
		"# callgrind format\nevents: Ir\n10 20\n",             /* cost before fn= */
		"# callgrind format\nevents: Ir\nfn=a\n10 20 30\n",    /* more counts than events */
		"# callgrind format\nevents: Ir\nfn=a\n10 x\n",        /* bad count */
		"# callgrind format\nevents: Ir\nfn=(99999999) a\n",   /* id too large */
		"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		measure_cg_profile p;
		measure_cg_profile_init(&p);
		int rc = measure_cg_parse(&p, bad[i], strlen(bad[i]));
		if (rc != BASE_EINVALID)
			fail_msg("input %zu: expected BASE_EINVALID, got %d", i, rc);
		measure_cg_profile_dispose(&p);
	}
}

static void test_argv(void **state)
{
	(void)state;
	char **argv;
	assert_int_equal(measure_cg_build_argv(&argv, "./bench/sort 20000", 0), 0);
	const char *want[] = { "setarch", "-R", "valgrind", "--command-line-only=yes", "--tool=callgrind", "--cache-sim=yes",
			       "--I1=32768,8,64", "--D1=32768,8,64", "--LL=8388608,16,64", "--trace-children=yes",
			       "--callgrind-out-file=/tmp/cg/out.%p", "./bench/sort", "20000", NULL };
	for (size_t i = 0; want[i]; i++)
		assert_string_equal(argv[i], want[i]);
	assert_null(argv[13]);
	measure_cg_argv_free(argv);

	assert_int_equal(measure_cg_build_argv(&argv, "cd bench && ./run | tail -1", 1), 0);
	assert_string_equal(argv[11], "--instr-atstart=no");
	assert_string_equal(argv[12], "/bin/sh");
	assert_string_equal(argv[13], "-c");
	assert_string_equal(argv[14], "cd bench && ./run | tail -1");
	assert_null(argv[15]);
	measure_cg_argv_free(argv);
	assert_int_equal(measure_cg_build_argv(&argv, "", 0), BASE_EINVALID);

	/* the whole-process count: cachegrind, no option file either */
	assert_int_equal(measure_cg_build_argv_whole(&argv, "./bench/sort 20000"), 0);
	assert_string_equal(argv[3], "--command-line-only=yes");
	assert_string_equal(argv[4], "--tool=cachegrind");
	assert_string_equal(argv[10], "--cachegrind-out-file=/tmp/cg/out.%p");
	assert_string_equal(argv[11], "./bench/sort");
	measure_cg_argv_free(argv);

	/* an environment assignment before the program needs a shell */
	assert_int_equal(measure_cg_build_argv(&argv, "N=1000 ./bench/sort", 0), 0);
	assert_string_equal(argv[11], "/bin/sh");
	assert_string_equal(argv[12], "-c");
	assert_string_equal(argv[13], "N=1000 ./bench/sort");
	assert_null(argv[14]);
	measure_cg_argv_free(argv);
	assert_int_equal(measure_cg_build_argv(&argv, "  A=1 B=2 ./bench/sort", 1), 0);
	assert_string_equal(argv[12], "/bin/sh");
	assert_string_equal(argv[14], "  A=1 B=2 ./bench/sort");
	measure_cg_argv_free(argv);
	/* '=' in an argument of the program does not */
	assert_int_equal(measure_cg_build_argv(&argv, "./bench/sort --n=1000", 0), 0);
	assert_string_equal(argv[11], "./bench/sort");
	assert_string_equal(argv[12], "--n=1000");
	assert_null(argv[13]);
	measure_cg_argv_free(argv);
}

/* A file that defines one function name of name_len bytes and then uses it
 * under nfiles different file ids. */
static char *reused_name_file(size_t name_len, int nfiles, size_t *len)
{
	size_t cap = name_len + (size_t)nfiles * 40 + 100;
	char *t = malloc(cap);
	assert_non_null(t);
	size_t n = (size_t)snprintf(t, cap, "# callgrind format\nevents: Ir\nfn=(1) ");
	memset(t + n, 'x', name_len);
	n += name_len;
	t[n++] = '\n';
	n += (size_t)snprintf(t + n, cap - n, "1 1\n");
	for (int i = 0; i < nfiles; i++)
		n += (size_t)snprintf(t + n, cap - n, "fl=(%d) f%d.c\nfn=(1)\n1 1\n", i + 1, i);
	*len = n;
	return t;
}

static void test_long_names_bounded(void **state)
{
	(void)state;
	/* one 100 KB name under 100 files: each entry keeps at most 4 KiB */
	size_t len;
	char *text = reused_name_file(100000, 100, &len);
	measure_cg_profile p;
	measure_cg_profile_init(&p);
	if (measure_cg_parse(&p, text, len) != 0)
		fail_msg("parse: %s", base_error_last());
	free(text);
	assert_int_equal(p.nfns, 101);
	for (size_t i = 0; i < p.nfns; i++) {
		size_t l = strlen(p.fns[i].name);
		assert_true(l < 4096);
		assert_true(l > 4000);
		assert_string_equal(p.fns[i].name + l - strlen("...[truncated]"), "...[truncated]");
		assert_int_equal(p.fns[i].self.ev[MEASURE_CG_IR], 1);
	}
	measure_cg_profile_dispose(&p);

	/* a 10 KB name under 20000 files would keep 200 MB: refused */
	text = reused_name_file(10000, 20000, &len);
	measure_cg_profile_init(&p);
	assert_int_equal(measure_cg_parse(&p, text, len), BASE_ETOOBIG);
	assert_non_null(strstr(base_error_last(), "names of its functions exceed 64 MiB"));
	measure_cg_profile_dispose(&p);
	free(text);
}

static void sh(const char *cmd)
{
	if (system(cmd) != 0)
		fail_msg("command failed: %s", cmd);
}

/* A program that steers valgrind from inside: a .valgrindrc in the work tree
 * (valgrind reads it when its owner runs it), and VALGRIND_OPTS set before
 * it re-executes itself under --trace-children.  Both would collect only
 * tiny(); the measurement must count all of the work.  Then a constructor
 * that works before a region harness zeroes the counters: the whole-process
 * count (cachegrind) still sees it. */
static const char STEER[] =
	"#include <stdio.h>\n#include <stdlib.h>\n#include <unistd.h>\n"
	"static unsigned long w(unsigned long n) { unsigned long x = 1; for (unsigned long i = 0; i < n; i++) "
	"x = x * 6364136223846793005UL + 1; return x; }\n"
	"unsigned long tiny(void) { return w(10); }\n"
	"int main(int argc, char **argv) {\n"
	"  if (argc > 1) { printf(\"%lu\\n\", w(1000000) + tiny()); return 0; }\n"
	"  setenv(\"VALGRIND_OPTS\", \"--collect-atstart=no --toggle-collect=tiny\", 1);\n"
	"  execl(\"./steer\", \"./steer\", \"child\", (char *)0); return 1; }\n";

static const char EARLY[] =
	"#include <stdio.h>\n#include <valgrind/callgrind.h>\n"
	"static unsigned long w(unsigned long n) { unsigned long x = 1; for (unsigned long i = 0; i < n; i++) "
	"x = x * 6364136223846793005UL + 1; return x; }\n"
	"static volatile unsigned long early;\n"
	"__attribute__((constructor)) static void before(void) { early = w(1000000); }\n"
	"int main(void) { CALLGRIND_ZERO_STATS; CALLGRIND_START_INSTRUMENTATION; unsigned long r = w(1000);\n"
	"  CALLGRIND_STOP_INSTRUMENTATION; printf(\"%lu\\n\", r + early); return 0; }\n";

static uint64_t measure_ir(measure_sandbox *sb, const char *ws, const char *scratch, const char *cmd, int region,
			   int whole)
{
	measure_cg_run run = MEASURE_CG_RUN_INIT;
	run.workspace = ws;
	run.command = cmd;
	run.region = region;
	run.whole_process = whole;
	run.scratch_dir = scratch;
	run.limits.timeout_s = 120;
	measure_cg_profile p;
	measure_sandbox_result r;
	int rc = measure_cg_measure(&p, &r, sb, &run);
	if (rc != 0)
		fail_msg("measure %s: %s\n%s", cmd, base_error_last(), r.err ? r.err : "");
	uint64_t ir = p.totals.ev[MEASURE_CG_IR];
	if (whole && p.totals.ev[MEASURE_CG_DR] == 0) /* cachegrind's events are read too */
		fail_msg("%s: no data reads counted (Ir %llu)", cmd, (unsigned long long)ir);
	measure_cg_profile_dispose(&p);
	measure_sandbox_result_dispose(&r);
	return ir;
}

static void test_measurement_not_steered(void **state)
{
	(void)state;
	char dir[] = "/tmp/perfbot-cgsteer-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char ws[128], scratch[128], cmd[512];
	snprintf(ws, sizeof(ws), "%s/ws", dir);
	snprintf(scratch, sizeof(scratch), "%s/scratch", dir);
	snprintf(cmd, sizeof(cmd), "mkdir %s %s", ws, scratch);
	sh(cmd);
	char path[256];
	snprintf(path, sizeof(path), "%s/steer.c", ws);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(STEER, f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/early.c", ws);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(EARLY, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd),
		 "cd %s && cc -O1 -o steer steer.c && cc -O1 -o early early.c && "
		 "echo '--collect-atstart=no --toggle-collect=tiny' > .valgrindrc",
		 ws);
	sh(cmd);
	measure_sandbox *sb = NULL;
	if (measure_sandbox_new(&sb, "bwrap") < 0)
		fail_msg("sandbox: %s", base_error_last());
	assert_int_equal(measure_sandbox_prepare_dir(sb, ws), 0);
	assert_int_equal(measure_sandbox_prepare_dir(sb, scratch), 0);
	/* a .valgrindrc in the tree: hidden behind an empty file, and not read */
	assert_true(measure_ir(sb, ws, scratch, "test ! -s .valgrindrc && ./steer child", 0, 0) > 4000000);
	/* one the measured command writes itself, owned by the sandbox's user as
	 * valgrind requires, read by the valgrind of the traced child */
	snprintf(cmd, sizeof(cmd), "rm %s/.valgrindrc", ws);
	sh(cmd);
	assert_true(measure_ir(sb, ws, scratch,
			       "printf -- '--collect-atstart=no --toggle-collect=tiny\\n' > .valgrindrc && chmod 600 .valgrindrc "
			       "&& ./steer child",
			       0, 0) > 4000000);
	/* VALGRIND_OPTS set by the program for the child it executes */
	assert_true(measure_ir(sb, ws, scratch, "./steer", 0, 0) > 4000000);

	uint64_t region = measure_ir(sb, ws, scratch, "./early", 1, 0);
	uint64_t whole = measure_ir(sb, ws, scratch, "./early", 1, 1);
	assert_true(region < 100000);
	assert_true(whole > 4000000);
	measure_sandbox_free(sb);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	sh(cmd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_matches_callgrind_annotate),
		cmocka_unit_test(test_processes_sum),
		cmocka_unit_test(test_compression_and_calls),
		cmocka_unit_test(test_wrapped_summary_uses_totals),
		cmocka_unit_test(test_counts_saturate),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_argv),
		cmocka_unit_test(test_long_names_bounded),
		cmocka_unit_test(test_measurement_not_steered),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
