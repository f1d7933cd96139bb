/* pr/: turns an approved proposal into a pull request and follows it.
 *
 * The steps, each usable on its own:
 *   pr_diff_check       validate a proposal diff before anything touches git
 *   pr_branch_publish   build the commit in memory on the measured base commit
 *                       (bare cache under DATA_DIR/repos/<owner>/<name>.git) and
 *                       push refs/heads/perfbot/opt-<run> without force
 *   pr_open             the whole flow: check, publish, open (or find) the pull
 *                       request, report conflicts, post the link
 *   pr_closed_*         a `pull_request` closed event for a perfbot branch
 *   pr_supersede        close older open perfbot PRs for the same benchmarks
 *   pr_job_open, pr_handle_closed   the same, persisted through store/store.h
 *
 * GitHub's REST API is reached only through the `pr_github` vtable so the
 * module does not depend on the client; git credentials come from a token
 * callback and are never written to disk.  Every function that can fail
 * returns 0 or a negative BASE_E* code with one line in base_error_last().
 * Functions are safe to call from several threads for different runs; two
 * calls on one repository serialise on an flock of the cache. */
#ifndef PR_PR_H
#define PR_PR_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define PR_DIFF_MAX_DEFAULT ((size_t)1024 * 1024) /* bytes */
#define PR_BRANCH_PREFIX "perfbot/opt-"

/* Initialises libgit2 (TLS, certificates) for the process; call once at
 * start-up and pr_shutdown() at exit.  Every pr_ function also works without
 * it, but then pays that initialisation on each call. */
int pr_init(void);
void pr_shutdown(void);

/* ---- diff validation ----------------------------------------------------- */

/* Checks a proposal diff (git format) without a repository: size (max_bytes,
 * 0 = PR_DIFF_MAX_DEFAULT → BASE_ETOOBIG), that it parses and changes at least
 * one file, no path outside the tree (absolute, `..`), nothing under `.git/`
 * or `.github/workflows/`, no binary patch, no symlink or submodule entry
 * (all BASE_EINVALID).  base_error_last() names the reason and the path. */
int pr_diff_check(const char *diff, size_t len, size_t max_bytes);

/* ---- git: the branch ----------------------------------------------------- */

/* Supplies the installation token for git over HTTP(S) (user
 * `x-access-token`).  *token_out is malloc'd and freed by pr/. */
typedef int (*pr_token_fn)(char **token_out, void *payload);

typedef struct pr_git_options {
	const char *data_dir;   /* the cache lives in DATA_DIR/repos/<owner>/<name>.git */
	const char *repository; /* "owner/name" */
	const char *url;        /* clone URL, e.g. https://github.com/owner/name.git */
	pr_token_fn token;      /* NULL: no credentials */
	void *token_payload;
} pr_git_options;

typedef struct pr_commit_spec {
	const char *base_sha;    /* the measured base commit, 40 hex */
	const char *base_branch; /* the branch the run measured (fetched to reach base_sha) */
	const char *diff;
	size_t diff_len;
	size_t max_diff_bytes;   /* 0 = PR_DIFF_MAX_DEFAULT */
	const char *author_name; /* author and committer */
	const char *author_email;
	const char *message;     /* full commit message */
	const char *branch;      /* e.g. "perfbot/opt-42" (without refs/heads/) */
	/* A fork's proposal: base_sha is the fork's commit the diff was made
	 * on, never pushed; the commit is built on base_branch's current tip. */
	int onto_branch_tip;
	/* The commit perfbot pushed to `branch` before (see record_push), or
	 * NULL: only a remote branch whose head is this commit, or descends
	 * from it, is perfbot's own. */
	const char *pushed_sha;
	/* Called with the new commit before it is pushed, so that a retry can
	 * tell perfbot's push from anyone else's; a failure stops the push. */
	int (*record_push)(const char *commit_sha, void *payload);
	void *record_payload;
} pr_commit_spec;

typedef struct pr_branch_result {
	char commit_sha[41]; /* the branch head after the call */
	char tree_sha[41];
	char parent_sha[41]; /* the commit it was built on */
	int pushed;          /* 1: pushed by this call; 0: the branch already held perfbot's commit */
	int extended;        /* the remote branch has commits on top of perfbot's (BASE_EEXISTS) */
} pr_branch_result;

/* Opens (or creates) the bare cache, fetches base_branch and perfbot's
 * branches with the token, applies the diff to the tree of base_sha (or of
 * base_branch's tip, onto_branch_tip) in memory (no work tree), commits it
 * and pushes refs/heads/<branch> without force.  The parent must be
 * base_branch's tip or one of its ancestors in the repository: a commit
 * from anywhere else (a fork) is never pushed (BASE_EINVALID).  A remote
 * branch whose head is spec->pushed_sha is reused; any other head is left
 * alone (BASE_EEXISTS, naming the commit; out->extended when it descends
 * from pushed_sha).  A
 * diff that does not apply, or renames/copies onto an existing file, is
 * BASE_EINVALID; a push the server refuses (protected branch, permission) is
 * BASE_EFORBIDDEN naming the server's reason; authentication BASE_EAUTH;
 * network BASE_ERETRY. */
int pr_branch_publish(pr_branch_result *out, const pr_git_options *git, const pr_commit_spec *spec);

/* "<slug>[bot]" and "<user_id>+<slug>[bot]@users.noreply.github.com"; both
 * malloc'd, owned by the caller. */
int pr_bot_identity(char **name_out, char **email_out, const char *slug, int64_t bot_user_id);

/* ---- GitHub through a vtable --------------------------------------------- */

/* A pull request as the GitHub adapter reports it.  Strings are malloc'd
 * and released by pr_pull_dispose (NULL when unknown). */
typedef struct pr_pull {
	int number;
	char *html_url;
	char *state;            /* "open" | "closed" */
	char *head_ref;         /* branch name */
	char *head_sha;
	char *base_ref;
	char *body;
	int merged;
	int mergeable;          /* 1, 0, or -1 while GitHub has not computed it */
	char *merge_commit_sha;
} pr_pull;

void pr_pull_dispose(pr_pull *p);

/* Wired to github/ by the caller, faked in tests.  `repository` is
 * "owner/name"; every callback gets the vtable's payload last.  Results
 * returned through `out` belong to the caller. */
typedef struct pr_github {
	/* POST /repos/{repo}/pulls with maintainer_can_modify true.  BASE_EEXISTS
	 * when GitHub answers 422 "A pull request already exists". */
	int (*create_pull)(pr_pull *out, const char *repository, const char *title, const char *head,
			   const char *base, const char *body, void *payload);
	/* The open PR whose head is owner:branch (GET /pulls?head=&state=open); BASE_ENOTFOUND. */
	int (*find_pull_by_head)(pr_pull *out, const char *repository, const char *branch, void *payload);
	/* GET /repos/{repo}/pulls/{number} (mergeable may be -1). */
	int (*get_pull)(pr_pull *out, const char *repository, int number, void *payload);
	/* Open PRs against base (GET /pulls?state=open&base=), bodies included.
	 * *out is a malloc'd array of *n_out pulls; pr/ disposes and frees it. */
	int (*list_open_pulls)(pr_pull **out, size_t *n_out, const char *repository, const char *base, void *payload);
	/* POST /repos/{repo}/issues/{number}/comments */
	int (*comment)(const char *repository, int number, const char *body, void *payload);
	/* PATCH /repos/{repo}/pulls/{number} {state: closed} */
	int (*close_pull)(const char *repository, int number, void *payload);
	/* DELETE /repos/{repo}/git/refs/heads/{branch}; BASE_ENOTFOUND when already gone. */
	int (*delete_branch)(const char *repository, const char *branch, void *payload);
	/* PATCH /repos/{repo}/check-runs/{id} {details_url, output {title, summary}}. */
	int (*update_check_run)(const char *repository, int64_t check_run_id, const char *title, const char *summary,
				const char *details_url, void *payload);
	void *payload;
} pr_github;

/* ---- the pull request ---------------------------------------------------- */

typedef struct pr_bench_result {
	const char *name;
	double before; /* estimated cycles at the base commit */
	double after;  /* with the proposal applied */
} pr_bench_result;

/* What pr_open needs from a run and its proposal; all strings borrowed. */
typedef struct pr_proposal {
	int64_t run_id;
	const char *repository;   /* "owner/name" */
	const char *base_branch;  /* the branch the run measured; the PR's base */
	const char *base_sha;     /* the measured base commit */
	const char *diff;
	size_t diff_len;
	const char *summary;      /* the agent's summary (Markdown), may be NULL */
	const pr_bench_result *benchmarks;
	size_t nbenchmarks;
	const char *test_command; /* the test command that passed, may be NULL */
	const char *approved_by;  /* GitHub login, may be NULL */
	const char *approved_via; /* "check run button" | "comment" | "dashboard", may be NULL */
	int fork;                 /* base_sha is a fork's commit: built on base_branch's tip instead */
	const char *pushed_sha;   /* the commit an earlier attempt pushed (record_push), may be NULL */
	int thread_number;        /* issue/PR the command came from; 0 = none */
	int64_t check_run_id;     /* the run's check run; 0 = none */
} pr_proposal;

typedef struct pr_options {
	const pr_git_options *git;
	const pr_github *gh;
	const char *bot_name;     /* pr_bot_identity() */
	const char *bot_email;
	size_t max_diff_bytes;    /* 0 = PR_DIFF_MAX_DEFAULT */
	int mergeable_polls;      /* get_pull tries while mergeable is unknown; 0 = 3 */
	int mergeable_delay_ms;   /* between tries; 0 = 1000, negative = no wait */
	/* Records the commit about to be pushed for run_id (pr_job_open keeps
	 * it in the run); NULL records nothing, and then no later attempt can
	 * reuse the branch. */
	int (*record_push)(int64_t run_id, const char *commit_sha, void *payload);
	void *record_payload;
} pr_options;

typedef struct pr_open_result {
	int number;
	char *html_url;           /* owned; pr_open_result_dispose */
	char branch[64];
	char commit_sha[41];
	int created;              /* 1 when this call opened the PR (0: found existing) */
	int pushed;               /* 1 when this call pushed the branch */
	int conflicts;            /* GitHub reported the PR not mergeable */
	int mergeable_unknown;    /* GitHub had not computed it yet: pr_check_conflict later */
} pr_open_result;

/* Asks GitHub once whether pull request `number` merges; when it does not,
 * comments on it that the change conflicts with base_branch (built on
 * base_sha) and that `/perfbot optimize` can run again.  *mergeable_out: 1,
 * 0 (commented), or -1 when GitHub has not computed it yet. */
int pr_check_conflict(int *mergeable_out, const pr_github *gh, const char *repository, int number,
		      const char *base_branch, const char *base_sha);

void pr_open_result_dispose(pr_open_result *r);

/* The commit subject ("perf: speed up <benchmark> by 23%", the largest
 * improvement) and message / the pull request body.  Owned by the caller. */
int pr_commit_message(char **out, const pr_proposal *p);
int pr_pull_body(char **out, const pr_proposal *p, const char *commit_sha);

/* The whole flow, idempotent: approving twice, a retried job or a crash
 * between push and PR creation gives one branch and one PR.  The PR and the
 * thread comment are posted only by the call that creates the PR; the check
 * run is updated every time.  Nothing is pushed when the diff is refused. */
int pr_open(pr_open_result *out, const pr_options *opts, const pr_proposal *p);

/* ---- following the pull request ------------------------------------------ */

typedef struct pr_closed_event {
	char repository[256];
	char branch[128];
	int64_t run_id;             /* from perfbot/opt-<run> */
	int number;
	int merged;
	char merge_commit_sha[41];  /* "" unless merged */
	char head_sha[41];
} pr_closed_event;

/* Parses a `pull_request` payload (borrows).  BASE_ENOTFOUND when it is not a
 * "closed" action on a perfbot/opt-<run> branch; BASE_EINVALID when malformed. */
int pr_closed_event_parse(pr_closed_event *out, const json_t *payload);

/* Acts on a closed event: deletes the branch unless its head is not
 * our_commit_sha (someone else pushed; NULL = unknown, keep it).  *state_out
 * is "merged" or "closed" (static string); *deleted_out 1 if deleted. */
int pr_closed_apply(const char **state_out, int *deleted_out, const pr_github *gh, const pr_closed_event *ev,
		    const char *our_commit_sha);

/* Closes every other open perfbot PR on base whose benchmark set equals the
 * new proposal's, with a comment "Superseded by #<new_number>.".  *closed_out
 * (may be NULL) receives the count. */
int pr_supersede(int *closed_out, const pr_github *gh, const pr_proposal *p, int new_number);

/* ---- persisted through the store ----------------------------------------- */

/* Fills a pr_proposal from store documents (borrows both; the strings in *out
 * point into them):
 *   run      store_run_get: repository, base_sha (else head_sha), branch,
 *            data.thread_number, data.check_run_id, data.approved_by,
 *            data.approved_via, data.fork (a fork's proposal), data.pr_commit
 *            (the commit an earlier attempt pushed)
 *   proposal store_proposal_get: diff, summary, test_command, fork,
 *            benchmarks [{name, base, head}] (estimated cycles)
 * benches is caller storage for up to nbenches results. */
int pr_proposal_from_json(pr_proposal *out, pr_bench_result *benches, size_t nbenches, int64_t run_id,
			  const json_t *run, const json_t *proposal);

/* The "pr.open" job: loads run run_id and its proposal, runs pr_open
 * (recording the commit before it is pushed as the run's data.pr_commit),
 * records the pull (store_pull_put, state "open", data {commit, url,
 * benchmarks, base}) and the run ({"pull": {number, url, branch}}), then
 * supersedes older PRs.  A refused diff marks nothing open and returns
 * BASE_EINVALID / BASE_ETOOBIG: the caller fails the job without retry. */
int pr_job_open(pr_open_result *out, store *st, const pr_options *opts, int64_t run_id);

/* A `pull_request` event (borrows): for a closed perfbot PR known to the
 * store, applies pr_closed_apply with the stored commit, records the pull
 * state and the run's {"pull": {state, merge_commit}}.  *state_out (may be
 * NULL) gets "merged" / "closed"; BASE_ENOTFOUND when not ours. */
int pr_handle_closed(const char **state_out, store *st, const pr_github *gh, const json_t *payload);

#endif
