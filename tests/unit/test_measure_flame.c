/* Unit tests: the flame tree built from callgrind's call graph: roots are
 * the functions nobody calls, children are the calls' inclusive costs,
 * recursion is not expanded, small calls and the node cap prune it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "base/json.h"
#include "measure/callgrind_parse.h"

/* main (self 10) calls parse (incl 60) and print (incl 30); parse (self 20)
 * calls lex (incl 40); lex calls itself (recursion) and, once, a tiny
 * helper (1).  Instructions only (the metric 1). */
static const char PROFILE[] = "version: 1\n"
			      "events: Ir\n"
			      "fl=main.c\n"
			      "fn=main\n"
			      "1 10\n"
			      "cfn=parse\n"
			      "calls=1 5\n"
			      "5 60\n"
			      "cfn=print\n"
			      "calls=1 6\n"
			      "6 30\n"
			      "fn=parse\n"
			      "5 20\n"
			      "cfn=lex\n"
			      "calls=3 7\n"
			      "7 40\n"
			      "fn=lex\n"
			      "7 39\n"
			      "cfn=lex\n"
			      "calls=2 7\n"
			      "7 15\n"
			      "cfn=tiny\n"
			      "calls=1 9\n"
			      "9 1\n"
			      "fn=tiny\n"
			      "9 1\n"
			      "fn=print\n"
			      "6 30\n"
			      "totals: 100\n";

static const json_t *child(const json_t *node, const char *name)
{
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(node, "children"), i, c)
		if (!strcmp(base_json_str(c, "name"), name))
			return c;
	return NULL;
}

static void test_flame_tree(void **state)
{
	(void)state;
	measure_cg_profile p;
	measure_cg_profile_init(&p);
	assert_int_equal(measure_cg_parse(&p, PROFILE, strlen(PROFILE)), 0);
	json_t *f = measure_cg_flame_json(&p, 1, 100, 10, 0);
	assert_non_null(f);
	assert_string_equal(base_json_str(f, "name"), "all");
	assert_int_equal(base_json_int(f, "value"), 100);
	assert_int_equal(json_array_size(json_object_get(f, "children")), 1);
	const json_t *m = child(f, "main");
	assert_int_equal(base_json_int(m, "value"), 100);
	assert_string_equal(base_json_str(m, "file"), "main.c");
	/* heaviest first */
	assert_string_equal(base_json_str(json_array_get(json_object_get(m, "children"), 0), "name"), "parse");
	const json_t *parse = child(m, "parse"), *print = child(m, "print");
	assert_int_equal(base_json_int(parse, "value"), 60);
	assert_int_equal(base_json_int(print, "value"), 30);
	assert_null(json_object_get(print, "children"));
	const json_t *lex = child(parse, "lex");
	assert_int_equal(base_json_int(lex, "value"), 40);
	/* lex is not expanded inside itself; its call to tiny is */
	assert_null(child(lex, "lex"));
	assert_int_equal(base_json_int(child(lex, "tiny"), "value"), 1);
	json_decref(f);

	/* calls under 5% of the total are left out; the node cap holds */
	f = measure_cg_flame_json(&p, 1, 100, 10, 50);
	assert_null(child(child(child(child(f, "main"), "parse"), "lex"), "tiny"));
	json_decref(f);
	f = measure_cg_flame_json(&p, 1, 2, 10, 0);
	m = child(f, "main");
	assert_int_equal(json_array_size(json_object_get(m, "children")), 1);
	assert_null(json_object_get(child(m, "parse"), "children"));
	json_decref(f);
	/* depth */
	f = measure_cg_flame_json(&p, 1, 100, 2, 0);
	assert_null(json_object_get(child(child(f, "main"), "parse"), "children"));
	json_decref(f);
	measure_cg_profile_dispose(&p);
}

/* A file that fails to parse leaves no calls behind. */
static void test_flame_bad_file(void **state)
{
	(void)state;
	measure_cg_profile p;
	measure_cg_profile_init(&p);
	const char *bad = "version: 1\nevents: Ir\nfn=a\n1 1\ncfn=b\ncalls=1 1\n1 5\nbogus line here\n";
	assert_true(measure_cg_parse(&p, bad, strlen(bad)) < 0);
	assert_int_equal(p.ncalls, 0);
	json_t *f = measure_cg_flame_json(&p, 1, 10, 10, 0);
	assert_non_null(f);
	json_decref(f);
	measure_cg_profile_dispose(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flame_tree),
		cmocka_unit_test(test_flame_bad_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
