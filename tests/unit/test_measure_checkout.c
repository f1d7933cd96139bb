/* Unit tests: the checkout cache under concurrency.  Several threads fetch
 * different commits of one repository into the same bare cache and export
 * work trees at once; the cache must stay a valid repository and every work
 * tree must hold exactly its commit's files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <git2.h>

#include "measure/checkout.h"
#include "base/error.h"

#define NCOMMITS 6
#define NTHREADS 6

static char dir[64], origin[128], data_dir[128];
static char shas[NCOMMITS][41];

static void sh(const char *cmd)
{
	if (system(cmd) != 0)
		fail_msg("command failed: %s", cmd);
}

static int setup(void **state)
{
	(void)state;
	/* as perfbot serve does (pr_init): one libgit2 reference for the whole
	 * process, so the per-call references never bring it down between threads */
	git_libgit2_init();
	snprintf(dir, sizeof(dir), "/tmp/perfbot-checkout-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(origin, sizeof(origin), "%s/origin.git", dir);
	snprintf(data_dir, sizeof(data_dir), "%s/var", dir);
	char cmd[1024];
	snprintf(cmd, sizeof(cmd),
		 "set -e; git init -q -b main %s/src; cd %s/src; "
		 "for i in 0 1 2 3 4 5; do echo \"version $i\" > file.txt; mkdir -p d$i; echo $i > d$i/x; "
		 "git add -A; git -c user.name=t -c user.email=t@e commit -qm c$i; git rev-parse HEAD >> ../shas; done; "
		 "git clone -q --bare %s/src %s",
		 dir, dir, dir, origin);
	sh(cmd);
	snprintf(cmd, sizeof(cmd), "%s/shas", dir);
	FILE *f = fopen(cmd, "r");
	assert_non_null(f);
	for (int i = 0; i < NCOMMITS; i++) {
		assert_non_null(fgets(shas[i], sizeof(shas[i]), f));
		fgetc(f); /* the newline */
	}
	fclose(f);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	sh(cmd);
	git_libgit2_shutdown();
	return 0;
}

struct worker {
	int index;
	int error;
	char message[256];
};

static void *work(void *arg)
{
	struct worker *w = arg;
	measure_checkout_source src = { .data_dir = data_dir, .repository = "octo/cache", .url = origin };
	for (int round = 0; round < 3 && !w->error; round++) {
		int c = (w->index + round) % NCOMMITS;
		char *tree = NULL, sha[41];
		int error = measure_checkout_worktree(&tree, sha, &src, shas[c]);
		if (error == 0 && strcmp(sha, shas[c]) != 0)
			error = base_error_set(BASE_EINVALID, "worktree of %s is %s", shas[c], sha);
		if (error == 0) {
			char path[512], want[32], got[64] = "";
			snprintf(path, sizeof(path), "%s/file.txt", tree);
			snprintf(want, sizeof(want), "version %d\n", c);
			FILE *f = fopen(path, "r");
			if (!f || !fgets(got, sizeof(got), f) || strcmp(got, want) != 0)
				error = base_error_set(BASE_EINVALID, "%s holds \"%s\", not commit %d", path, got, c);
			if (f)
				fclose(f);
			snprintf(path, sizeof(path), "%s/d%d/x", tree, c);
			if (error == 0 && access(path, R_OK) != 0)
				error = base_error_set(BASE_EINVALID, "%s missing", path);
			snprintf(path, sizeof(path), "%s/.git", tree);
			if (error == 0 && access(path, F_OK) == 0)
				error = base_error_set(BASE_EINVALID, "a work tree has a .git");
		}
		if (tree)
			measure_worktree_remove(data_dir, tree);
		free(tree);
		if (error < 0) {
			w->error = error;
			snprintf(w->message, sizeof(w->message), "%s", base_error_last());
		}
	}
	return NULL;
}

static void test_concurrent_fetches_keep_the_cache_whole(void **state)
{
	(void)state;
	pthread_t t[NTHREADS];
	struct worker w[NTHREADS];
	for (int i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){ .index = i };
		assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
	}
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < NTHREADS; i++)
		if (w[i].error)
			fail_msg("thread %d: %s", i, w[i].message);
	/* the cache is one valid repository with every commit, and no remote
	 * configuration or credentials were written into it */
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "git --git-dir=%s/repos/octo/cache.git fsck --strict --no-progress --no-dangling >/dev/null 2>&1", data_dir);
	sh(cmd);
	for (int i = 0; i < NCOMMITS; i++) {
		snprintf(cmd, sizeof(cmd), "git --git-dir=%s/repos/octo/cache.git cat-file -e %s^{commit}", data_dir,
			 shas[i]);
		sh(cmd);
	}
	snprintf(cmd, sizeof(cmd), "! grep -q url %s/repos/octo/cache.git/config", data_dir);
	sh(cmd);
	/* every work tree was removed */
	snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A %s/work 2>/dev/null)\"", data_dir);
	sh(cmd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_concurrent_fetches_keep_the_cache_whole),
	};
	return cmocka_run_group_tests_name("agent_checkout", tests, setup, teardown);
}
