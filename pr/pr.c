/* The pull request flow: commit message and PR body, opening the PR
 * idempotently, conflict and link reporting, closed events, superseding.
 *
 * GitHub is reached only through the caller's pr_github vtable.  Idempotence
 * rests on state GitHub and git already hold, not on local memory: the branch
 * is reused when it holds an equal commit (pr_branch_publish), an open PR is
 * looked up by its head before one is created and after a 422 "already
 * exists".  Posts that are not idempotent (the conflict comment, the link in
 * the originating thread) are made only by the call that created the PR.
 * No state; any thread. */
#include "pr/pr.h"

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"
#include "base/error.h"
#include "base/json.h"
#include "base/log.h"
#include "base/md.h"
#include "base/utf8.h"

#define BODY_CAP 65000         /* GitHub caps PR bodies at 65,536 characters */
#define SUMMARY_CAP 20000      /* of the agent's summary kept in the body */
#define MESSAGE_CAP 16384

/* The length of s cut to at most cap bytes without splitting a UTF-8
 * character, for "%.*s": the text goes to GitHub as JSON, which must be
 * valid UTF-8. */
static int cut(const char *s, size_t cap)
{
	return (int)base_utf8_cut(s, strlen(s), cap);
}

void pr_pull_dispose(pr_pull *p)
{
	if (!p)
		return;
	free(p->html_url);
	free(p->state);
	free(p->head_ref);
	free(p->head_sha);
	free(p->base_ref);
	free(p->body);
	free(p->merge_commit_sha);
	memset(p, 0, sizeof(*p));
}

void pr_open_result_dispose(pr_open_result *r)
{
	if (!r)
		return;
	free(r->html_url);
	r->html_url = NULL;
}

static double improvement_pct(const pr_bench_result *b)
{
	if (!(b->before > 0))
		return 0;
	return (b->before - b->after) / b->before * 100.0;
}

/* The benchmark with the largest improvement, or NULL when none improved. */
static const pr_bench_result *best(const pr_proposal *p)
{
	const pr_bench_result *top = NULL;
	for (size_t i = 0; i < p->nbenchmarks; i++) {
		const pr_bench_result *b = &p->benchmarks[i];
		if (improvement_pct(b) > 0 && (!top || improvement_pct(b) > improvement_pct(top)))
			top = b;
	}
	return top;
}

/* Markdown table cells must not break the table or a hidden comment. */
static int put_name(base_buf *b, const char *name)
{
	int error = 0;
	for (const char *s = name ? name : "?"; *s && error == 0; s++) {
		char ch = (*s == '|' || *s == '\n' || *s == '\r' || *s == '<' || *s == '>') ? '_' : *s;
		error = base_buf_put(b, &ch, 1);
	}
	return error;
}

static int put_table(base_buf *b, const pr_proposal *p)
{
	int error = base_buf_puts(b, "| benchmark | before | after | change |\n|---|---:|---:|---:|\n");
	for (size_t i = 0; i < p->nbenchmarks && error == 0; i++) {
		const pr_bench_result *r = &p->benchmarks[i];
		double change = r->before > 0 ? (r->after - r->before) / r->before * 100.0 : 0;
		if ((error = base_buf_puts(b, "| ")) < 0 || (error = put_name(b, r->name)) < 0)
			break;
		error = base_buf_printf(b, " | %.0f | %.0f | %+.1f%% |\n", r->before, r->after, change);
	}
	return error;
}

/* Sorted, sanitised benchmark names joined by ',' — the identity used to
 * decide that a newer proposal supersedes an older one. */
static int bench_key(base_buf *b, const pr_proposal *p)
{
	size_t n = p->nbenchmarks;
	const char **names = calloc(n ? n : 1, sizeof(*names));
	if (!names)
		return base_error_set(BASE_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++)
		names[i] = p->benchmarks[i].name ? p->benchmarks[i].name : "";
	for (size_t i = 1; i < n; i++) /* insertion sort: a handful of names */
		for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
			const char *t = names[j];
			names[j] = names[j - 1];
			names[j - 1] = t;
		}
	int error = 0;
	for (size_t i = 0; i < n && error == 0; i++) {
		if (i > 0)
			error = base_buf_puts(b, ",");
		for (const char *s = names[i]; *s && error == 0; s++) {
			char ch = (isalnum((unsigned char)*s) || strchr("._/:+=", *s)) ? *s : '_';
			error = base_buf_put(b, &ch, 1);
		}
	}
	free(names);
	return error;
}

static int subject(base_buf *b, const pr_proposal *p)
{
	const pr_bench_result *top = best(p);
	if (!top)
		return base_buf_printf(b, "perf: apply perfbot run %" PRId64, p->run_id);
	long pct = lround(improvement_pct(top));
	if (pct < 1)
		pct = 1;
	if (base_buf_puts(b, "perf: speed up ") < 0 || put_name(b, top->name) < 0)
		return base_error_code();
	return base_buf_printf(b, " by %ld%%", pct);
}

int pr_commit_message(char **out, const pr_proposal *p)
{
	base_buf b = BASE_BUF_INIT(MESSAGE_CAP);
	int error;
	*out = NULL;
	if ((error = subject(&b, p)) < 0 || (error = base_buf_puts(&b, "\n\n")) < 0 ||
	    (error = put_table(&b, p)) < 0 ||
	    (error = base_buf_printf(&b, "\nVerified by perfbot run %" PRId64 ".\n", p->run_id)) < 0) {
		base_buf_dispose(&b);
		return error;
	}
	*out = base_buf_detach(&b);
	return *out ? 0 : base_error_set(BASE_ENOMEM, "out of memory");
}

int pr_pull_body(char **out, const pr_proposal *p, const char *commit_sha)
{
	base_buf b = BASE_BUF_INIT(BODY_CAP);
	int error = 0;
	*out = NULL;
	const char *summary = p->summary && *p->summary ? p->summary : "perfbot found a faster version of this code.";
	size_t slen = strlen(summary), keep = base_utf8_cut(summary, slen, SUMMARY_CAP);
	/* the agent's words, shown as text: no mention, link, image or markup */
	error = base_md_text(&b, summary, keep);
	if (error == 0)
		error = base_buf_puts(&b, keep < slen ? "\n\n*(summary truncated)*\n" : "\n");
	if (error < 0 || (error = base_buf_puts(&b, "\n### Verified results\n\nEstimated CPU cycles (lower is better):\n\n")) < 0 ||
	    (error = put_table(&b, p)) < 0)
		goto done;
	if ((error = base_buf_puts(&b, "\n### How this was measured\n\n"
				     "- Every benchmark ran under a CPU simulation (callgrind with a fixed cache model; "
				     "estimated cycles = L1 hits + 5 × LL hits + 35 × RAM accesses), so the same commit "
				     "always gives the same counts.\n")) < 0)
		goto done;
	if (p->test_command && *p->test_command)
		error = base_buf_printf(&b, "- Tests passed on a clean checkout with the change applied: `%.*s`.\n",
				       cut(p->test_command, 200), p->test_command);
	else
		error = base_buf_puts(&b, "- The repository's tests passed on a clean checkout with the change applied.\n");
	const char *base_sha = p->base_sha ? p->base_sha : "?", *base_branch = p->base_branch ? p->base_branch : "?";
	const char *commit = commit_sha ? commit_sha : "?", *via = p->approved_via ? p->approved_via : "";
	if (error < 0 ||
	    (error = base_buf_printf(&b, "- Commits compared: base `%.*s` (branch `%.*s`) and this pull request's commit `%.*s`.\n",
				    cut(base_sha, 40), base_sha, cut(base_branch, 200), base_branch, cut(commit, 40),
				    commit)) < 0)
		goto done;
	if (error == 0 && p->fork)
		error = base_buf_printf(&b, "- The change was made and measured on a fork's pull request and is applied "
					   "here to `%.*s` alone: none of the fork's commits are part of this pull "
					   "request.\n",
				       cut(base_branch, 200), base_branch);
	if (p->approved_by && *p->approved_by)
		error = base_buf_printf(&b, "- Approved by @%.*s%s%.*s.\n", cut(p->approved_by, 100), p->approved_by,
				       *via ? " via " : "", cut(via, 100), via);
	if (error < 0 || (error = base_buf_printf(&b, "\nVerified by perfbot run %" PRId64 ".\n\n<!-- perfbot-run: %" PRId64 " -->\n<!-- perfbot-benchmarks: ",
						 p->run_id, p->run_id)) < 0 ||
	    (error = bench_key(&b, p)) < 0 || (error = base_buf_puts(&b, " -->\n")) < 0)
		goto done;
	*out = base_buf_detach(&b);
	if (!*out)
		error = base_error_set(BASE_ENOMEM, "out of memory");
done:
	base_buf_dispose(&b);
	return error;
}

static void sleep_ms(int ms)
{
	if (ms <= 0)
		return;
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0)
		;
}

static void warn(const char *msg, const pr_proposal *p)
{
	base_log(BASE_LOG_WARN, msg, "repository", p->repository, "error", base_error_last(), NULL);
}

/* Finds the open PR for the branch, or creates it.  A 422 "already exists"
 * is a lost race with another attempt: look the PR up again. */
static int find_or_create(pr_pull *pull, int *created, const pr_github *gh, const pr_proposal *p,
			  const char *branch, const char *title, const char *body)
{
	*created = 0;
	int error = gh->find_pull_by_head(pull, p->repository, branch, gh->payload);
	if (error != BASE_ENOTFOUND)
		return error;
	pr_pull_dispose(pull);
	error = gh->create_pull(pull, p->repository, title, branch, p->base_branch, body, gh->payload);
	if (error == 0) {
		*created = 1;
		return 0;
	}
	if (error != BASE_EEXISTS)
		return error;
	pr_pull_dispose(pull);
	error = gh->find_pull_by_head(pull, p->repository, branch, gh->payload);
	if (error == BASE_ENOTFOUND)
		return base_error_set(BASE_ERETRY, "GitHub says a pull request for %s exists but none is open", branch);
	return error;
}

int pr_check_conflict(int *mergeable_out, const pr_github *gh, const char *repository, int number,
		      const char *base_branch, const char *base_sha)
{
	pr_pull pull = {0};
	*mergeable_out = -1;
	int error = gh->get_pull(&pull, repository, number, gh->payload);
	if (error == 0)
		*mergeable_out = pull.state && strcmp(pull.state, "open") == 0 ? pull.mergeable : 1;
	pr_pull_dispose(&pull);
	if (error < 0 || *mergeable_out != 0)
		return error;
	base_buf c = BASE_BUF_INIT(4096);
	if ((error = base_buf_printf(&c, "This change conflicts with the current `%.*s`: it was built on the measured "
					"base commit `%.*s`, which `%.*s` has since moved past. Comment "
					"`/perfbot optimize` to run perfbot again on the new base.",
				    cut(base_branch, 200), base_branch, cut(base_sha, 12), base_sha,
				    cut(base_branch, 200), base_branch)) == 0)
		error = gh->comment(repository, number, base_buf_cstr(&c), gh->payload);
	base_buf_dispose(&c);
	return error;
}

/* GitHub computes mergeability in the background: a few quick looks, and
 * when it still has no answer the caller checks again later. */
static void report_conflict(pr_open_result *out, const pr_options *opts, const pr_proposal *p)
{
	int polls = opts->mergeable_polls > 0 ? opts->mergeable_polls : 3;
	int delay = opts->mergeable_delay_ms == 0 ? 1000 : opts->mergeable_delay_ms;
	int mergeable = -1;
	for (int i = 0; i < polls && mergeable < 0; i++) {
		if (i > 0)
			sleep_ms(delay);
		if (pr_check_conflict(&mergeable, opts->gh, p->repository, out->number, p->base_branch, p->base_sha) < 0 &&
		    mergeable == 0)
			warn("pr: conflict comment failed", p);
	}
	out->conflicts = mergeable == 0;
	out->mergeable_unknown = mergeable < 0;
}

static void post_links(const pr_open_result *out, const pr_options *opts, const pr_proposal *p)
{
	const pr_github *gh = opts->gh;
	const char *url = out->html_url ? out->html_url : "";
	base_buf b = BASE_BUF_INIT(BODY_CAP);
	if (out->created && p->thread_number > 0 && p->thread_number != out->number) {
		if (base_buf_printf(&b, "perfbot opened #%d with the verified change from run %" PRId64 ": %s", out->number,
				   p->run_id, url) == 0 &&
		    gh->comment(p->repository, p->thread_number, base_buf_cstr(&b), gh->payload) < 0)
			warn("pr: thread comment failed", p);
	}
	if (p->check_run_id > 0 && gh->update_check_run) {
		char title[128];
		snprintf(title, sizeof(title), "Pull request #%d opened", out->number);
		base_buf_reset(&b);
		if (base_buf_printf(&b, "perfbot opened [#%d](%s) from this run.\n\n", out->number, url) == 0 &&
		    put_table(&b, p) == 0 &&
		    gh->update_check_run(p->repository, p->check_run_id, title, base_buf_cstr(&b), url, gh->payload) < 0)
			warn("pr: check run update failed", p);
	}
	base_buf_dispose(&b);
}

typedef struct record_ctx {
	const pr_options *opts;
	const pr_proposal *p;
} record_ctx;

static int record_push(const char *commit_sha, void *payload)
{
	record_ctx *c = payload;
	return c->opts->record_push(c->p->run_id, commit_sha, c->opts->record_payload);
}

int pr_open(pr_open_result *out, const pr_options *opts, const pr_proposal *p)
{
	char *message = NULL, *body = NULL;
	pr_pull pull = {0};
	int error;
	memset(out, 0, sizeof(*out));
	if (!opts || !opts->git || !opts->gh || !p || !p->repository || !p->base_branch || !p->base_sha ||
	    !opts->bot_name || !opts->bot_email || p->run_id <= 0)
		return base_error_set(BASE_EINVALID, "pr_open: missing argument");
	snprintf(out->branch, sizeof(out->branch), PR_BRANCH_PREFIX "%" PRId64, p->run_id);

	/* Refuse a bad diff first: nothing is fetched or pushed. */
	if ((error = pr_diff_check(p->diff, p->diff_len, opts->max_diff_bytes)) < 0)
		goto done;
	if ((error = pr_commit_message(&message, p)) < 0)
		goto done;

	pr_commit_spec spec = {
		.base_sha = p->base_sha,
		.base_branch = p->base_branch,
		.diff = p->diff,
		.diff_len = p->diff_len,
		.max_diff_bytes = opts->max_diff_bytes,
		.author_name = opts->bot_name,
		.author_email = opts->bot_email,
		.message = message,
		.branch = out->branch,
		.onto_branch_tip = p->fork,
		.pushed_sha = p->pushed_sha,
	};
	record_ctx rc = {opts, p};
	if (opts->record_push) {
		spec.record_push = record_push;
		spec.record_payload = &rc;
	}
	pr_branch_result br;
	pr_proposal shown = *p; /* what the pull request says it was built on */
	if ((error = pr_branch_publish(&br, opts->git, &spec)) == BASE_EEXISTS) {
		/* Someone pushed to our branch.  If perfbot's own commit is under
		 * their commits and our pull request is open (a retry after the
		 * first attempt opened it, and a maintainer added a commit since),
		 * it is the pull request of this run: keep it and their commits.
		 * A branch perfbot never pushed is not adopted, whatever pull
		 * request it has. */
		char why[1024];
		snprintf(why, sizeof(why), "%s", base_error_last());
		if (!br.extended) {
			error = base_error_set(BASE_EEXISTS, "%s", why);
			goto done;
		}
		int found = opts->gh->find_pull_by_head(&pull, p->repository, out->branch, opts->gh->payload);
		if (found < 0 || !pull.state || strcmp(pull.state, "open") != 0) {
			error = base_error_set(found < 0 && found != BASE_ENOTFOUND ? found : BASE_EEXISTS, "%s", why);
			goto done;
		}
		base_log(BASE_LOG_INFO, "pr: the branch has other commits; its open pull request is kept", "repository",
			p->repository, "branch", out->branch, NULL);
		error = 0;
	} else if (error < 0) {
		if (error == BASE_EINVALID && p->fork && strstr(base_error_last(), "does not apply")) {
			char why[1024];
			snprintf(why, sizeof(why), "%s", base_error_last());
			error = base_error_set(BASE_EINVALID,
					      "the change was made on a fork's pull request and does not apply to `%.*s` "
					      "as it is now; perfbot never pushes a fork's commits, so it cannot open this "
					      "pull request (%s)",
					      cut(p->base_branch, 200), p->base_branch, why);
		}
		goto done;
	} else {
		out->pushed = br.pushed;
		memcpy(out->commit_sha, br.commit_sha, sizeof(out->commit_sha));
		if (p->fork)
			shown.base_sha = br.parent_sha;
		if ((error = pr_pull_body(&body, &shown, out->commit_sha)) < 0)
			goto done;
		char *nl = strchr(message, '\n');
		if (nl)
			*nl = '\0'; /* the title is the subject line */
		if ((error = find_or_create(&pull, &out->created, opts->gh, p, out->branch, message, body)) < 0)
			goto done;
	}
	out->number = pull.number;
	if (pull.html_url && !(out->html_url = strdup(pull.html_url))) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	if (p->fork && br.parent_sha[0])
		shown.base_sha = br.parent_sha;
	if (out->created)
		report_conflict(out, opts, &shown);
	post_links(out, opts, &shown);
	char num[24];
	snprintf(num, sizeof(num), "%d", out->number);
	base_log(BASE_LOG_INFO, "pr: pull request ready", "repository", p->repository, "number", num, "created",
		out->created ? "yes" : "no", NULL);
	error = 0;
done:
	pr_pull_dispose(&pull);
	free(message);
	free(body);
	if (error < 0)
		pr_open_result_dispose(out);
	return error;
}

/* ---- following the pull request ------------------------------------------ */

int pr_closed_event_parse(pr_closed_event *out, const json_t *payload)
{
	memset(out, 0, sizeof(*out));
	if (!json_is_object(payload))
		return base_error_set(BASE_EINVALID, "pull_request payload is not an object");
	const char *action = base_json_str(payload, "action");
	if (!action || strcmp(action, "closed") != 0)
		return base_error_set(BASE_ENOTFOUND, "not a closed action");
	const json_t *pr = json_object_get(payload, "pull_request");
	const json_t *head = json_object_get(pr, "head");
	/* absent strings read as "" below */
	const char *repo = base_json_str(json_object_get(payload, "repository"), "full_name");
	const char *head_repo = base_json_str(json_object_get(head, "repo"), "full_name");
	const char *ref = base_json_str(head, "ref");
	const char *sha = base_json_str(head, "sha");
	repo = repo ? repo : "";
	head_repo = head_repo ? head_repo : "";
	ref = ref ? ref : "";
	sha = sha ? sha : "";
	if (!json_is_object(pr) || !*repo || !*ref)
		return base_error_set(BASE_EINVALID, "pull_request payload lacks repository or head");
	/* A fork can name a branch perfbot/opt-1 too: only our repository's. */
	if (strncmp(ref, PR_BRANCH_PREFIX, strlen(PR_BRANCH_PREFIX)) != 0 || strcmp(head_repo, repo) != 0)
		return base_error_set(BASE_ENOTFOUND, "not a perfbot branch");
	const char *digits = ref + strlen(PR_BRANCH_PREFIX);
	char *end = NULL;
	long long run = strtoll(digits, &end, 10);
	if (!isdigit((unsigned char)*digits) || *end || run <= 0)
		return base_error_set(BASE_ENOTFOUND, "not a perfbot branch: %.*s", cut(ref, 100), ref);
	if (strlen(repo) >= sizeof(out->repository) || strlen(ref) >= sizeof(out->branch) || strlen(sha) > 40)
		return base_error_set(BASE_EINVALID, "pull_request payload has oversized fields");
	json_int_t number = json_integer_value(json_object_get(pr, "number"));
	if (number <= 0 || number > 2147483647)
		return base_error_set(BASE_EINVALID, "pull_request payload lacks a number");
	snprintf(out->repository, sizeof(out->repository), "%s", repo);
	snprintf(out->branch, sizeof(out->branch), "%s", ref);
	snprintf(out->head_sha, sizeof(out->head_sha), "%s", sha);
	out->run_id = run;
	out->number = (int)number;
	out->merged = json_is_true(json_object_get(pr, "merged"));
	const char *merge = base_json_str(pr, "merge_commit_sha");
	if (out->merged && merge && strlen(merge) <= 40)
		snprintf(out->merge_commit_sha, sizeof(out->merge_commit_sha), "%s", merge);
	return 0;
}

int pr_closed_apply(const char **state_out, int *deleted_out, const pr_github *gh, const pr_closed_event *ev,
		    const char *our_commit_sha)
{
	*state_out = ev->merged ? "merged" : "closed";
	*deleted_out = 0;
	if (!our_commit_sha || !*our_commit_sha || strcmp(ev->head_sha, our_commit_sha) != 0) {
		base_log(BASE_LOG_INFO, "pr: keeping branch with commits perfbot did not make", "repository",
			ev->repository, "branch", ev->branch, NULL);
		return 0;
	}
	int error = gh->delete_branch(ev->repository, ev->branch, gh->payload);
	if (error == BASE_ENOTFOUND)
		return 0; /* GitHub's "delete head branch" got there first */
	if (error < 0)
		return error;
	*deleted_out = 1;
	return 0;
}

int pr_supersede(int *closed_out, const pr_github *gh, const pr_proposal *p, int new_number)
{
	pr_pull *pulls = NULL;
	size_t n = 0;
	int closed = 0, error;
	base_buf key = BASE_BUF_INIT(8192), marker = BASE_BUF_INIT(8300), msg = BASE_BUF_INIT(256);
	if (closed_out)
		*closed_out = 0;
	if ((error = bench_key(&key, p)) < 0 ||
	    (error = base_buf_printf(&marker, "<!-- perfbot-benchmarks: %s -->", base_buf_cstr(&key))) < 0 ||
	    (error = base_buf_printf(&msg, "Superseded by #%d.", new_number)) < 0)
		goto done;
	if ((error = gh->list_open_pulls(&pulls, &n, p->repository, p->base_branch, gh->payload)) < 0)
		goto done;
	for (size_t i = 0; i < n; i++) {
		pr_pull *o = &pulls[i];
		const char *ref = o->head_ref ? o->head_ref : "";
		if (o->number == new_number || strncmp(ref, PR_BRANCH_PREFIX, strlen(PR_BRANCH_PREFIX)) != 0)
			continue;
		long long run = strtoll(ref + strlen(PR_BRANCH_PREFIX), NULL, 10);
		if (run <= 0 || run >= p->run_id || (o->base_ref && strcmp(o->base_ref, p->base_branch) != 0))
			continue;
		if (!o->body || !strstr(o->body, base_buf_cstr(&marker)))
			continue;
		if ((error = gh->comment(p->repository, o->number, base_buf_cstr(&msg), gh->payload)) < 0 ||
		    (error = gh->close_pull(p->repository, o->number, gh->payload)) < 0)
			goto done;
		closed++;
	}
	if (closed_out)
		*closed_out = closed;
	error = 0;
done:
	for (size_t i = 0; i < n; i++)
		pr_pull_dispose(&pulls[i]);
	free(pulls);
	base_buf_dispose(&key);
	base_buf_dispose(&marker);
	base_buf_dispose(&msg);
	return error;
}
