/* Tests of pr/ against a real remote: the branch built and pushed over
 * smart HTTP (`git http-backend` behind tests/integration/pr-git-server.mjs,
 * started here with node; Basic auth with an installation token), the pull
 * request flow against a fake pr_github, and the store-backed job. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>

#include "store/store.h"
#include "tests/unit/pr_fixture.h"

#define TOKEN "ghs_testtoken123"

static char url[512];
static pid_t server_pid;
static int server_stdin = -1;

/* ---- fixtures ------------------------------------------------------------ */

static const char *token_value = TOKEN;

static int token_cb(char **out, void *payload)
{
	(void)payload;
	*out = strdup(token_value);
	return 0;
}

static char data_dir[300];

static pr_git_options git_opts(void)
{
	pr_git_options g = {data_dir, REPO, url, token_cb, NULL};
	return g;
}

/* records into recorded[] (pr_fixture.h): what proposal() passes as pushed_sha */
static int record_cb(int64_t run_id, const char *sha, void *payload)
{
	(void)payload;
	snprintf(recorded[run_id % 64], sizeof(recorded[0]), "%s", sha);
	return 0;
}

static pr_options options(const pr_git_options *g)
{
	pr_options o = {g, &gh, "perfbot[bot]", "4242+perfbot[bot]@users.noreply.github.com", 0, 1, -1, record_cb, NULL};
	return o;
}

static int group_setup(void **state)
{
	(void)state;
	if (fixture_setup() < 0)
		return -1;
	snprintf(data_dir, sizeof(data_dir), "%s/data", tmp);

	int in[2], out[2];
	if (pipe(in) < 0 || pipe(out) < 0)
		return -1;
	char root[300];
	snprintf(root, sizeof(root), "%s/srv", tmp);
	server_pid = fork();
	if (server_pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[1]);
		close(out[0]);
		execlp("node", "node", "tests/integration/pr-git-server.mjs", "--root", root, "--token", TOKEN, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	server_stdin = in[1];
	char line[64] = {0};
	size_t n = 0;
	while (n < sizeof(line) - 1 && read(out[0], line + n, 1) == 1 && line[n] != '\n')
		n++;
	close(out[0]);
	int port = 0;
	if (strncmp(line, "listening ", 10) != 0 || (port = (int)strtol(line + 10, NULL, 10)) <= 0)
		return -1;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/git/acme/widget.git", port);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	if (server_pid > 0) {
		close(server_stdin);
		kill(server_pid, SIGTERM);
		waitpid(server_pid, NULL, 0);
	}
	fixture_teardown();
	return 0;
}

static int test_setup(void **state)
{
	(void)state;
	fake_reset();
	token_value = TOKEN;
	return 0;
}

/* The remote's head of a branch ("" when absent). */
static void remote_head(char *out, size_t cap, const char *branch)
{
	sh_out(out, cap, "git --git-dir=%s/srv/acme/widget.git rev-parse --verify -q refs/heads/%s", tmp, branch);
}

/* ---- the branch and the pull request ------------------------------------ */

static void open_pull_request(void **state)
{
	(void)state;
	pr_git_options g = git_opts();
	pr_options o = options(&g);
	pr_proposal p = proposal(1, good_diff);
	pr_open_result r;
	assert_int_equal(pr_open(&r, &o, &p), 0);
	assert_int_equal(r.created, 1);
	assert_int_equal(r.pushed, 1);
	assert_string_equal(r.branch, "perfbot/opt-1");
	assert_int_equal(fk.creates, 1);

	/* The branch's tree equals base + diff applied by git itself. */
	char head[64], expect[64], got[64], parent[64], ident[512];
	remote_head(head, sizeof(head), "perfbot/opt-1");
	assert_string_equal(head, r.commit_sha);
	assert_int_equal(sh("set -e; cd %s; rm -rf check; git clone -q srv/acme/widget.git check; cd check;"
			    "git apply --index ../good.diff",
			    tmp),
			 0);
	sh_out(expect, sizeof(expect), "git -C %s/check write-tree", tmp);
	sh_out(got, sizeof(got), "git --git-dir=%s/srv/acme/widget.git rev-parse perfbot/opt-1^{tree}", tmp);
	assert_string_equal(got, expect);
	sh_out(parent, sizeof(parent), "git --git-dir=%s/srv/acme/widget.git rev-parse perfbot/opt-1^", tmp);
	assert_string_equal(parent, base_sha);
	sh_out(ident, sizeof(ident), "git --git-dir=%s/srv/acme/widget.git log -1 --format='%%an <%%ae>|%%cn <%%ce>|%%s' perfbot/opt-1",
	       tmp);
	assert_string_equal(ident, "perfbot[bot] <4242+perfbot[bot]@users.noreply.github.com>|"
				   "perfbot[bot] <4242+perfbot[bot]@users.noreply.github.com>|perf: speed up parse by 23%");

	/* The PR: against the measured branch, with the body a reviewer needs. */
	assert_string_equal(fk.pulls[0].base, "main");
	assert_string_equal(fk.pulls[0].head, "perfbot/opt-1");
	assert_string_equal(fk.pulls[0].title, "perf: speed up parse by 23%");
	assert_non_null(strstr(fk.pulls[0].body, "<!-- perfbot-run: 1 -->"));
	assert_non_null(strstr(fk.pulls[0].body, r.commit_sha));
	/* The link: in the originating thread and on the check run. */
	assert_int_equal(fk.ncomments, 1);
	assert_int_equal(fk.comment_on[0], 5);
	assert_non_null(strstr(fk.comments[0], r.html_url));
	assert_int_equal(fk.check_updates, 1);
	assert_string_equal(fk.check_url, r.html_url);
	/* Nothing about the remote or the token in the cache's config. */
	assert_int_not_equal(sh("grep -rq -e " TOKEN " -e remote %s/data/repos/acme/widget.git/config", tmp), 0);
	pr_open_result_dispose(&r);

	/* Approved twice: same branch, same PR, no second comment. */
	assert_int_equal(pr_open(&r, &o, &p), 0);
	assert_int_equal(r.created, 0);
	assert_int_equal(r.pushed, 0);
	assert_int_equal(r.number, fk.pulls[0].number);
	assert_int_equal(fk.creates, 1);
	assert_int_equal(fk.npulls, 1);
	assert_int_equal(fk.ncomments, 1);
	remote_head(got, sizeof(got), "perfbot/opt-1");
	assert_string_equal(got, head);
	pr_open_result_dispose(&r);
}

static void crash_between_push_and_pr(void **state)
{
	(void)state;
	pr_git_options g = git_opts();
	pr_options o = options(&g);
	pr_proposal p = proposal(2, good_diff);
	pr_open_result r;
	fk.fail_create = 1;
	assert_int_equal(pr_open(&r, &o, &p), BASE_ERETRY);
	char head[64];
	remote_head(head, sizeof(head), "perfbot/opt-2");
	assert_int_equal(strlen(head), 40);
	assert_int_equal(fk.npulls, 0);
	/* The retried job reuses the branch and opens exactly one PR. */
	assert_int_equal(pr_open(&r, &o, &p), 0);
	assert_int_equal(r.pushed, 0);
	assert_int_equal(r.created, 1);
	assert_string_equal(r.commit_sha, head);
	assert_int_equal(fk.npulls, 1);
	pr_open_result_dispose(&r);
}

static void lost_race_on_create(void **state)
{
	(void)state;
	pr_git_options g = git_opts();
	pr_options o = options(&g);
	pr_proposal p = proposal(3, good_diff);
	pr_open_result r;
	fk.race_create = 1;
	assert_int_equal(pr_open(&r, &o, &p), 0);
	assert_int_equal(fk.npulls, 1);
	assert_int_equal(r.number, fk.pulls[0].number);
	assert_int_equal(r.created, 0);
	pr_open_result_dispose(&r);
}

static void moved_base_and_conflict(void **state)
{
	(void)state;
	/* main moves on after the measurement. */
	assert_int_equal(sh("set -e; cd %s; rm -rf mover; git clone -q srv/acme/widget.git mover; cd mover;"
			    "printf 'int hot(int n) { return 0; }\\n' > src/hot.c; git commit -qam moved; git push -q",
			    tmp),
			 0);
	pr_git_options g = git_opts();
	pr_options o = options(&g);
	pr_proposal p = proposal(4, good_diff);
	pr_open_result r;
	fk.mergeable = 0;
	assert_int_equal(pr_open(&r, &o, &p), 0);
	char parent[64];
	sh_out(parent, sizeof(parent), "git --git-dir=%s/srv/acme/widget.git rev-parse perfbot/opt-4^", tmp);
	assert_string_equal(parent, base_sha);
	assert_int_equal(r.conflicts, 1);
	int conflict_comments = 0;
	for (int i = 0; i < fk.ncomments; i++)
		if (fk.comment_on[i] == r.number && strstr(fk.comments[i], "/perfbot optimize"))
			conflict_comments++;
	assert_int_equal(conflict_comments, 1);
	pr_open_result_dispose(&r);
	/* A retry does not comment again. */
	assert_int_equal(pr_open(&r, &o, &p), 0);
	assert_int_equal(fk.ncomments, 2); /* conflict + thread link, from the first call only */
	pr_open_result_dispose(&r);
}

static void bad_inputs_push_nothing(void **state)
{
	(void)state;
	pr_git_options g = git_opts();
	pr_options o = options(&g);
	pr_open_result r;
	char head[64];

	pr_proposal p = proposal(5, "diff --git a/src/hot.c b/src/hot.c\n--- a/src/hot.c\n+++ b/src/hot.c\n"
				    "@@ -1,2 +1,2 @@\n-int nothing_like_this(void)\n+int x(void)\n {\n");
	assert_int_equal(pr_open(&r, &o, &p), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "does not apply"));

	p = proposal(5, "diff --git a/lib/old.txt b/lib/keep.txt\nsimilarity index 100%\nrename from lib/old.txt\n"
			"rename to lib/keep.txt\n");
	assert_int_equal(pr_open(&r, &o, &p), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "existing file lib/keep.txt"));

	p = proposal(5, binary_diff);
	assert_int_equal(pr_open(&r, &o, &p), BASE_EINVALID);
	p = proposal(5, "diff --git a/.github/workflows/x.yml b/.github/workflows/x.yml\nnew file mode 100644\n"
			"--- /dev/null\n+++ b/.github/workflows/x.yml\n@@ -0,0 +1 @@\n+on: push\n");
	assert_int_equal(pr_open(&r, &o, &p), BASE_EINVALID);
	p = proposal(5, good_diff);
	o.max_diff_bytes = 64;
	assert_int_equal(pr_open(&r, &o, &p), BASE_ETOOBIG);

	remote_head(head, sizeof(head), "perfbot/opt-5");
	assert_string_equal(head, "");
	assert_int_equal(fk.npulls, 0);
	assert_int_equal(fk.ncomments, 0);
}

/* Deletes, a rename, an edit, a mode change and new nested folders:
 * only the touched paths are applied, and the tree must still equal what
 * git itself makes of base + diff. */
static void exact_tree_varied_diff(void **state)
{
	(void)state;
	assert_int_equal(sh("set -e; cd %s; rm -rf varied; git clone -q srv/acme/widget.git varied; cd varied;"
			    "git checkout -q %s; git rm -q README.md; git mv lib/old.txt lib/moved.txt;"
			    "printf 'keep\\nmore\\n' > lib/keep.txt; chmod +x src/hot.c; mkdir -p deep/a/b;"
			    "printf 'x\\n' > deep/a/b/c.txt; git add -A; git diff --cached -M > ../varied.diff;"
			    "git write-tree > ../varied.tree",
			    tmp, base_sha),
			 0);
	char path[512], expect[64], got[64];
	snprintf(path, sizeof(path), "%s/varied.diff", tmp);
	char *diff = slurp(path);
	assert_non_null(strstr(diff, "rename from lib/old.txt"));
	sh_out(expect, sizeof(expect), "cat %s/varied.tree", tmp);
	pr_git_options g = git_opts();
	pr_options o = options(&g);
	pr_proposal p = proposal(20, diff);
	pr_open_result r;
	assert_int_equal(pr_open(&r, &o, &p), 0);
	sh_out(got, sizeof(got), "git --git-dir=%s/srv/acme/widget.git rev-parse perfbot/opt-20^{tree}", tmp);
	assert_string_equal(got, expect);
	pr_open_result_dispose(&r);
	free(diff);

	/* a file where the base has a folder, a folder where it has a file */
	p = proposal(21, "diff --git a/README.md/x b/README.md/x\nnew file mode 100644\n--- /dev/null\n"
			 "+++ b/README.md/x\n@@ -0,0 +1 @@\n+x\n");
	assert_int_equal(pr_open(&r, &o, &p), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "which is a file"));
	p = proposal(21, "diff --git a/lib b/lib\nnew file mode 100644\n--- /dev/null\n+++ b/lib\n@@ -0,0 +1 @@\n+x\n");
	assert_int_equal(pr_open(&r, &o, &p), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "which is a directory"));
	remote_head(got, sizeof(got), "perfbot/opt-21");
	assert_string_equal(got, "");
}

/* What git itself makes of base + diff: `git apply --cached` in a fresh
 * clone at base, then write-tree into out.  The exit status of the apply. */
static int git_tree_of(char *out, size_t cap, const char *base, const char *diff)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/git-tree-of.diff", tmp);
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	fwrite(diff, 1, strlen(diff), f);
	fclose(f);
	out[0] = '\0';
	int rc = sh("set -e; cd %s; rm -rf gitcheck; git clone -q srv/acme/widget.git gitcheck; cd gitcheck;"
		    "git checkout -q %s; git apply --cached ../git-tree-of.diff 2>/dev/null",
		    tmp, base);
	if (rc == 0)
		sh_out(out, cap, "git -C %s/gitcheck write-tree", tmp);
	return rc;
}

/* Opens run `run` with diff and asserts that the pushed branch's tree is
 * what git itself makes of base + diff. */
static void expect_same_tree_as_git(const pr_options *o, int64_t run, const char *diff)
{
	char got[64], expect[64];
	pr_open_result r;
	assert_int_equal(git_tree_of(expect, sizeof(expect), base_sha, diff), 0);
	pr_proposal p = proposal(run, diff);
	assert_int_equal(pr_open(&r, o, &p), 0);
	sh_out(got, sizeof(got), "git --git-dir=%s/srv/acme/widget.git rev-parse perfbot/opt-%lld^{tree}", tmp,
	       (long long)run);
	assert_string_equal(got, expect);
	pr_open_result_dispose(&r);
}

/* A "new file" over a file of the base is refused (git apply says "already
 * exists in index"); after an earlier delta deletes or renames the file
 * away, adding or renaming onto its path is a plain replacement. */
static void added_over_existing_file(void **state)
{
	(void)state;
	pr_git_options g = git_opts();
	pr_options o = options(&g);
	pr_open_result r;
	char got[64], expect[64];

	const char *over = "diff --git a/lib/keep.txt b/lib/keep.txt\nnew file mode 100644\n--- /dev/null\n"
			   "+++ b/lib/keep.txt\n@@ -0,0 +1 @@\n+other\n";
	assert_int_not_equal(git_tree_of(expect, sizeof(expect), base_sha, over), 0);
	pr_proposal p = proposal(30, over);
	assert_int_equal(pr_open(&r, &o, &p), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "existing file lib/keep.txt"));
	remote_head(got, sizeof(got), "perfbot/opt-30");
	assert_string_equal(got, "");

	/* the same path added twice */
	p = proposal(30, "diff --git a/src/new.c b/src/new.c\nnew file mode 100644\n--- /dev/null\n+++ b/src/new.c\n"
			 "@@ -0,0 +1 @@\n+a\n"
			 "diff --git a/src/new.c b/src/new.c\nnew file mode 100644\n--- /dev/null\n+++ b/src/new.c\n"
			 "@@ -0,0 +1 @@\n+b\n");
	assert_int_equal(pr_open(&r, &o, &p), BASE_EINVALID);
	remote_head(got, sizeof(got), "perfbot/opt-30");
	assert_string_equal(got, "");
	assert_int_equal(fk.npulls, 0);

	/* delete lib/old.txt, then rename lib/keep.txt onto it */
	const char *rename = "diff --git a/lib/old.txt b/lib/old.txt\ndeleted file mode 100644\n--- a/lib/old.txt\n"
			     "+++ /dev/null\n@@ -1 +0,0 @@\n-old\n"
			     "diff --git a/lib/keep.txt b/lib/old.txt\nsimilarity index 100%\nrename from lib/keep.txt\n"
			     "rename to lib/old.txt\n";
	expect_same_tree_as_git(&o, 31, rename);

	/* delete README.md, then add it again with other contents */
	const char *readd = "diff --git a/README.md b/README.md\ndeleted file mode 100644\n--- a/README.md\n"
			    "+++ /dev/null\n@@ -1 +0,0 @@\n-readme\n"
			    "diff --git a/README.md b/README.md\nnew file mode 100644\n--- /dev/null\n+++ b/README.md\n"
			    "@@ -0,0 +1,2 @@\n+new\n+readme\n";
	expect_same_tree_as_git(&o, 32, readd);
}

/* A text hunk on a symlink or a submodule of the base would turn it into a
 * regular file: any delta that touches one is refused. */
static void symlink_and_submodule_refused(void **state)
{
	(void)state;
	char links_sha[64], got[64];
	assert_int_equal(sh("set -e; cd %s; rm -rf links; git clone -q srv/acme/widget.git links; cd links;"
			    "git checkout -q -b links %s; ln -s hot.c src/link.c; git add src/link.c;"
			    "git update-index --add --cacheinfo 160000,%s,vendor/sub; git commit -qm links;"
			    "git push -q origin links",
			    tmp, base_sha, base_sha),
			 0);
	sh_out(links_sha, sizeof(links_sha), "git -C %s/links rev-parse HEAD", tmp);
	pr_git_options g = git_opts();
	pr_options o = options(&g);
	pr_open_result r;
	pr_proposal p = proposal(33, "diff --git a/src/link.c b/src/link.c\n--- a/src/link.c\n+++ b/src/link.c\n"
				     "@@ -1 +1 @@\n-hot.c\n\\ No newline at end of file\n+fast.h\n"
				     "\\ No newline at end of file\n");
	p.base_branch = "links";
	p.base_sha = links_sha;
	assert_int_equal(pr_open(&r, &o, &p), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "src/link.c"));
	assert_non_null(strstr(base_error_last(), "symbolic link"));

	char sub[512];
	snprintf(sub, sizeof(sub),
		 "diff --git a/vendor/sub b/vendor/sub\n--- a/vendor/sub\n+++ b/vendor/sub\n@@ -1 +1 @@\n"
		 "-Subproject commit %s\n+Subproject commit 0000000000000000000000000000000000000001\n",
		 base_sha);
	p = proposal(33, sub);
	p.base_branch = "links";
	p.base_sha = links_sha;
	assert_int_equal(pr_open(&r, &o, &p), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "vendor/sub"));
	assert_non_null(strstr(base_error_last(), "submodule"));

	/* renaming the symlink away touches it too */
	p = proposal(33, "diff --git a/src/link.c b/src/other.c\nsimilarity index 100%\nrename from src/link.c\n"
			 "rename to src/other.c\n");
	p.base_branch = "links";
	p.base_sha = links_sha;
	assert_int_equal(pr_open(&r, &o, &p), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "src/link.c"));
	assert_non_null(strstr(base_error_last(), "symbolic link"));

	remote_head(got, sizeof(got), "perfbot/opt-33");
	assert_string_equal(got, "");
	assert_int_equal(fk.npulls, 0);
}

static void someone_elses_commits_are_kept(void **state)
{
	(void)state;
	assert_int_equal(sh("set -e; cd %s/mover; git fetch -q; git checkout -q -b perfbot/opt-6 %s;"
			    "printf 'mine\\n' > mine.txt; git add mine.txt; git commit -qm human; git push -q origin perfbot/opt-6",
			    tmp, base_sha),
			 0);
	char before[64], after[64];
	remote_head(before, sizeof(before), "perfbot/opt-6");
	pr_git_options g = git_opts();
	pr_options o = options(&g);
	pr_proposal p = proposal(6, good_diff);
	pr_open_result r;
	assert_int_equal(pr_open(&r, &o, &p), BASE_EEXISTS);
	assert_non_null(strstr(base_error_last(), "not overwriting"));
	remote_head(after, sizeof(after), "perfbot/opt-6");
	assert_string_equal(after, before);
	assert_int_equal(fk.npulls, 0);

	/* a branch perfbot never pushed, with an open pull request (anyone with
	 * push access can pre-create perfbot/opt-<next run>): not adopted */
	pr_pull opened = {0};
	assert_int_equal(o.gh->create_pull(&opened, p.repository, "perf: x", "perfbot/opt-6", "main", "body",
					   o.gh->payload),
			 0);
	assert_int_equal(pr_open(&r, &o, &p), BASE_EEXISTS);
	assert_non_null(strstr(base_error_last(), "perfbot did not push"));
	remote_head(after, sizeof(after), "perfbot/opt-6");
	assert_string_equal(after, before);
	assert_int_equal(fk.npulls, 1);
	assert_int_equal(fk.ncomments, 0);
	assert_int_equal(fk.check_updates, 0);
	pr_pull_dispose(&opened);

	/* perfbot's own branch and pull request, and a maintainer added a
	 * commit since (a retried job): that pull request is kept, with the
	 * commit */
	p = proposal(16, good_diff);
	assert_int_equal(pr_open(&r, &o, &p), 0);
	int number = r.number;
	pr_open_result_dispose(&r);
	assert_int_equal(sh("set -e; cd %s/mover; git fetch -q; git checkout -q -b mine16 origin/perfbot/opt-16;"
			    "printf 'more\n' > more.txt; git add more.txt; git commit -qm maintainer;"
			    "git push -q origin mine16:perfbot/opt-16",
			    tmp),
			 0);
	remote_head(before, sizeof(before), "perfbot/opt-16");
	assert_int_equal(pr_open(&r, &o, &p), 0);
	assert_int_equal(r.created, 0);
	assert_int_equal(r.number, number);
	remote_head(after, sizeof(after), "perfbot/opt-16");
	assert_string_equal(after, before);
	pr_open_result_dispose(&r);
}

/* A perfbot/opt-<run> branch made before perfbot's push, even with exactly
 * the commit perfbot would make (same tree, same parent) and a pull
 * request: perfbot did not push it, so it is not perfbot's. */
static void precreated_branch_not_adopted(void **state)
{
	(void)state;
	assert_int_equal(sh("set -e; cd %s; rm -rf squat; git clone -q srv/acme/widget.git squat; cd squat;"
			    "git checkout -q -b perfbot/opt-50 %s; git apply --index ../good.diff;"
			    "git commit -qm 'perf: speed up parse by 23%%'; git push -q origin perfbot/opt-50",
			    tmp, base_sha),
			 0);
	char before[64], after[64];
	remote_head(before, sizeof(before), "perfbot/opt-50");
	fake_pull *squat = add_pull("perfbot/opt-50", "main", "perf: speed up parse by 23%", "trust me");
	pr_git_options g = git_opts();
	pr_options o = options(&g);
	pr_proposal p = proposal(50, good_diff);
	pr_open_result r;
	assert_int_equal(pr_open(&r, &o, &p), BASE_EEXISTS);
	assert_non_null(strstr(base_error_last(), "perfbot did not push"));
	assert_int_equal(r.number, 0);
	assert_int_equal(fk.creates, 0);
	assert_int_equal(fk.ncomments, 0);      /* no "perfbot opened #N" link to their PR */
	assert_int_equal(fk.check_updates, 0);
	assert_true(squat->open);
	remote_head(after, sizeof(after), "perfbot/opt-50");
	assert_string_equal(after, before);
}

/* A proposal made on a fork's pull request: the fork's head is in the
 * cache (the run fetched refs/pull/N/head), but none of its commits is
 * ever pushed into the base repository. */
static void fork_commits_never_pushed(void **state)
{
	(void)state;
	char fork_sha[64], main_tip[64], parent[64], got[64];
	assert_int_equal(sh("set -e; cd %s; rm -rf forkwork; git clone -q srv/acme/widget.git forkwork; cd forkwork;"
			    "printf 'readme\nfrom the fork\n' > README.md; mkdir -p .github/workflows;"
			    "printf 'on: push\n' > .github/workflows/steal.yml; git add -A; git commit -qm fork;"
			    "git push -q origin HEAD:refs/pull/9/head;"
			    "printf 'keep\nfaster\n' > lib/keep.txt; git diff > ../fork-good.diff; git checkout -q lib/keep.txt;"
			    "printf 'readme\nfrom the fork, faster\n' > README.md; git diff > ../fork-bad.diff;"
			    "git checkout -q README.md;"
			    "git --git-dir=%s/data/repos/acme/widget.git fetch -q %s/srv/acme/widget.git "
			    "refs/pull/9/head:refs/perfbot/fork-head",
			    tmp, tmp, tmp),
			 0);
	sh_out(fork_sha, sizeof(fork_sha), "git -C %s/forkwork rev-parse HEAD", tmp);
	sh_out(main_tip, sizeof(main_tip), "git --git-dir=%s/srv/acme/widget.git rev-parse main", tmp);
	char path[512];
	snprintf(path, sizeof(path), "%s/fork-good.diff", tmp);
	char *good = slurp(path);
	snprintf(path, sizeof(path), "%s/fork-bad.diff", tmp);
	char *bad = slurp(path);
	pr_git_options g = git_opts();
	pr_options o = options(&g);
	pr_open_result r;

	/* built on the fork's commit as the proposal's base: refused by pr/
	 * itself, nothing pushed */
	pr_proposal p = proposal(51, good);
	p.base_sha = fork_sha;
	assert_int_equal(pr_open(&r, &o, &p), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "never a fork's commits"));
	remote_head(got, sizeof(got), "perfbot/opt-51");
	assert_string_equal(got, "");
	assert_int_equal(fk.npulls, 0);

	/* as a fork's proposal: built on main's tip */
	p = proposal(52, good);
	p.base_sha = fork_sha;
	p.fork = 1;
	assert_int_equal(pr_open(&r, &o, &p), 0);
	sh_out(parent, sizeof(parent), "git --git-dir=%s/srv/acme/widget.git rev-parse perfbot/opt-52^", tmp);
	assert_string_equal(parent, main_tip);
	assert_int_not_equal(sh("git --git-dir=%s/srv/acme/widget.git merge-base --is-ancestor %s perfbot/opt-52", tmp,
				fork_sha),
			     0);
	assert_int_not_equal(sh("git --git-dir=%s/srv/acme/widget.git cat-file -e perfbot/opt-52:.github/workflows/steal.yml "
				"2>/dev/null",
				tmp),
			     0);
	sh_out(got, sizeof(got), "git --git-dir=%s/srv/acme/widget.git show perfbot/opt-52:lib/keep.txt | tail -1", tmp);
	assert_string_equal(got, "faster");
	assert_non_null(strstr(fk.pulls[0].body, "none of the fork's commits"));
	assert_non_null(strstr(fk.pulls[0].body, main_tip));
	pr_open_result_dispose(&r);

	/* a change that does not apply to main without the fork's commits */
	p = proposal(53, bad);
	p.base_sha = fork_sha;
	p.fork = 1;
	assert_int_equal(pr_open(&r, &o, &p), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "does not apply to `main`"));
	assert_non_null(strstr(base_error_last(), "never pushes a fork's commits"));
	remote_head(got, sizeof(got), "perfbot/opt-53");
	assert_string_equal(got, "");
	free(good);
	free(bad);
}

static void rejected_push_names_cause(void **state)
{
	(void)state;
	assert_int_equal(sh("set -e; h=%s/srv/acme/widget.git/hooks/pre-receive;"
			    "printf '#!/bin/sh\\nwhile read o n r; do case $r in refs/heads/perfbot/opt-7) "
			    "echo \"protected branch pattern\" >&2; exit 1;; esac; done\\n' > $h; chmod +x $h",
			    tmp),
			 0);
	pr_git_options g = git_opts();
	pr_options o = options(&g);
	pr_proposal p = proposal(7, good_diff);
	pr_open_result r;
	int rc = pr_open(&r, &o, &p);
	sh("rm -f %s/srv/acme/widget.git/hooks/pre-receive", tmp);
	assert_int_equal(rc, BASE_EFORBIDDEN);
	assert_non_null(strstr(base_error_last(), "refused"));
	assert_int_equal(fk.npulls, 0);
}

static void bad_token(void **state)
{
	(void)state;
	token_value = "wrong";
	pr_git_options g = git_opts();
	pr_options o = options(&g);
	pr_proposal p = proposal(8, good_diff);
	pr_open_result r;
	assert_int_equal(pr_open(&r, &o, &p), BASE_EAUTH);
	assert_int_equal(fk.npulls, 0);
}
/* ---- through the store --------------------------------------------------- */

static void store_job_and_closed(void **state)
{
	(void)state;
	char path[512];
	snprintf(path, sizeof(path), "sqlite:%s/perfbot.db", tmp);
	store *st = NULL;
	assert_int_equal(store_open(&st, path), 0);
	json_t *rdata = json_pack("{s:i, s:i, s:s, s:s}", "thread_number", 9, "check_run_id", 77, "approved_by", "octocat",
				  "approved_via", "comment");
	store_run_spec spec = {STORE_RUN_AGENT, REPO, 1, base_sha, NULL, "main", "comment", rdata};
	int64_t run = 0;
	assert_int_equal(store_run_create(st, &run, &spec), 0);
	json_t *prop = json_pack("{s:s, s:s, s:s, s:[{s:s, s:i, s:i}]}", "diff", good_diff, "summary", "Closed form.",
				 "test_command", "make test", "benchmarks", "name", "parse", "base", 1000, "head", 500);
	assert_int_equal(store_proposal_put(st, run, prop), 0);

	/* an earlier test's branch of the same number is not this run's */
	sh("git --git-dir=%s/srv/acme/widget.git update-ref -d refs/heads/perfbot/opt-%lld", tmp, (long long)run);
	pr_git_options g = git_opts();
	pr_options o = options(&g);
	o.record_push = NULL; /* pr_job_open records in the store */
	pr_open_result r;
	assert_int_equal(pr_job_open(&r, st, &o, run), 0);
	assert_int_equal(fk.npulls, 1);
	/* the pushed commit is kept in the run before the push: a retried job
	 * knows the branch as its own */
	json_t *rj = NULL;
	assert_int_equal(store_run_get(st, run, &rj), 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(rj, "data"), "pr_commit")), r.commit_sha);
	json_decref(rj);
	pr_open_result again;
	assert_int_equal(pr_job_open(&again, st, &o, run), 0);
	assert_int_equal(again.pushed, 0);
	assert_int_equal(again.created, 0);
	assert_int_equal(again.number, r.number);
	assert_string_equal(again.commit_sha, r.commit_sha);
	pr_open_result_dispose(&again);
	assert_non_null(strstr(fk.pulls[0].title, "speed up parse by 50%"));
	json_t *pull = NULL;
	assert_int_equal(store_pull_get(st, run, &pull), 0);
	assert_string_equal(json_string_value(json_object_get(pull, "state")), "open");
	assert_string_equal(json_string_value(json_object_get(json_object_get(pull, "data"), "commit")), r.commit_sha);
	json_decref(pull);

	/* Merged on GitHub → the store knows, the branch goes. */
	json_t *ev = closed_payload(r.branch, 1, r.commit_sha, REPO);
	const char *state_s = NULL;
	assert_int_equal(pr_handle_closed(&state_s, st, &gh, ev), 0);
	assert_string_equal(state_s, "merged");
	assert_int_equal(fk.ndeleted, 1);
	assert_int_equal(store_pull_get(st, run, &pull), 0);
	assert_string_equal(json_string_value(json_object_get(pull, "state")), "merged");
	json_decref(pull);
	json_t *runj = NULL;
	assert_int_equal(store_run_get(st, run, &runj), 0);
	json_t *rp = json_object_get(json_object_get(runj, "data"), "pull");
	assert_string_equal(json_string_value(json_object_get(rp, "merge_commit")), "1111111111111111111111111111111111111111");
	json_decref(runj);
	json_decref(ev);

	/* A refused diff: the reason on the run and in the thread. */
	json_t *bad = json_pack("{s:s, s:[{s:s, s:i, s:i}]}", "diff", binary_diff, "benchmarks", "name", "parse", "base",
				1000, "head", 500);
	int64_t run2 = 0;
	assert_int_equal(store_run_create(st, &run2, &spec), 0);
	assert_int_equal(store_proposal_put(st, run2, bad), 0);
	int nc = fk.ncomments;
	pr_open_result_dispose(&r);
	assert_int_equal(pr_job_open(&r, st, &o, run2), BASE_EINVALID);
	assert_int_equal(fk.ncomments, nc + 1);
	assert_non_null(strstr(fk.comments[nc], "binary"));
	assert_int_equal(fk.comment_on[nc], 9);
	assert_int_equal(store_run_get(st, run2, &runj), 0);
	assert_non_null(strstr(json_string_value(json_object_get(json_object_get(json_object_get(runj, "data"), "pull"),
								 "error")),
			       "binary"));
	json_decref(runj);
	json_decref(bad);
	pr_open_result_dispose(&r);
	json_decref(prop);
	json_decref(rdata);
	store_free(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(open_pull_request, test_setup),
		cmocka_unit_test_setup(crash_between_push_and_pr, test_setup),
		cmocka_unit_test_setup(lost_race_on_create, test_setup),
		cmocka_unit_test_setup(moved_base_and_conflict, test_setup),
		cmocka_unit_test_setup(bad_inputs_push_nothing, test_setup),
		cmocka_unit_test_setup(exact_tree_varied_diff, test_setup),
		cmocka_unit_test_setup(added_over_existing_file, test_setup),
		cmocka_unit_test_setup(symlink_and_submodule_refused, test_setup),
		cmocka_unit_test_setup(someone_elses_commits_are_kept, test_setup),
		cmocka_unit_test_setup(precreated_branch_not_adopted, test_setup),
		cmocka_unit_test_setup(fork_commits_never_pushed, test_setup),
		cmocka_unit_test_setup(rejected_push_names_cause, test_setup),
		cmocka_unit_test_setup(bad_token, test_setup),
		cmocka_unit_test_setup(store_job_and_closed, test_setup),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
