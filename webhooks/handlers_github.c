/* Event handlers that act on GitHub: a push or pull request queues a bench
 * run, a `/perfbot` comment runs a command, a check-run button approves a
 * proposal, a closed perfbot pull request updates its run.  They run on
 * worker threads; every reply goes through the GitHub client.
 *
 * Trust: the payload is verified (it came through the signed intake), but
 * what a user may do is never read from it: write access is asked of the
 * permission API for every command and every button click.  A pull request
 * from a fork or a first-time contributor is untrusted code: its bench run
 * waits for a maintainer's approval, and `/perfbot optimize` on a fork's
 * pull request proposes against the base branch, never on the fork's
 * commits. */
#include "base/error.h"
#include "base/json.h"
#include "base/log.h"
#include "github/github.h"
#include "webhooks/command.h"
#include "webhooks/event.h"
#include "webhooks/handlers.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A pull request from a fork: its head repository is another one, or gone
 * (head.repo null when the fork was deleted).  head.repo.fork alone says
 * nothing: a repository that is itself a fork has it set for its own
 * branches. */
static int pull_from_fork(const json_t *pull)
{
	const char *head = base_json_str(json_object_get(json_object_get(pull, "head"), "repo"), "full_name");
	const char *base = base_json_str(json_object_get(json_object_get(pull, "base"), "repo"), "full_name");
	return !head || !base || strcmp(head, base) != 0;
}

/* Whose pull request runs only after a maintainer approves, as GitHub
 * Actions does: a fork's, or a first-time or outside contributor's
 * (author_association; a missing one counts as outside).  A bot's pull
 * request from a branch of this repository (perfbot's own proposals,
 * Dependabot's) runs at once: an App with write access pushed that
 * branch. */
static int pull_needs_approval(const json_t *pull)
{
	static const char *const outside[] = { "FIRST_TIME_CONTRIBUTOR", "FIRST_TIMER", "NONE", "MANNEQUIN" };
	if (pull_from_fork(pull))
		return 1;
	const char *type = base_json_str(json_object_get(pull, "user"), "type");
	if (type && !strcmp(type, "Bot"))
		return 0;
	const char *assoc = base_json_str(pull, "author_association");
	if (!assoc)
		return 1;
	for (size_t i = 0; i < sizeof(outside) / sizeof(outside[0]); i++)
		if (!strcmp(assoc, outside[i]))
			return 1;
	return 0;
}

static int need_app(const wh_handlers_options *o, store_job_ctx *ctx)
{
	if (o->agent && o->agent->gh)
		return 1;
	snprintf(ctx->note, sizeof(ctx->note), "no GitHub App configured: event recorded only");
	return 0;
}

/* Runs fn on the delivery's parsed payload, once an App is known to be
 * configured (checked before the payload is even read). */
typedef int (*event_fn)(store_job_ctx *ctx, const wh_handlers_options *o, const json_t *root);

static int with_payload(store_job_ctx *ctx, const wh_handlers_options *o, event_fn fn)
{
	if (!need_app(o, ctx))
		return 0;
	json_t *root = NULL;
	int error = wh_job_payload(&root, ctx);
	if (error == 0)
		error = fn(ctx, o, root);
	json_decref(root);
	return error > 0 ? 0 : error;
}

/* ---- push and pull_request ----------------------------------------------- */

static int on_push_event(store_job_ctx *ctx, const wh_handlers_options *o, const json_t *root)
{
	int error = 0;
	wh_push p;
	if ((error = wh_push_parse(&p, root)) < 0)
		goto done;
	if (p.deleted) {
		snprintf(ctx->note, sizeof(ctx->note), "branch deleted: nothing to measure");
		goto done;
	}
	measure_bench_push req = { .repository = p.repository, .installation_id = p.installation_id, .ref = p.ref,
				 .before = p.before, .after = p.after, .deleted = p.deleted,
				 .default_branch = p.default_branch, .clone_url = p.clone_url, .sender = p.sender,
				 .commit_author = p.head_author, .commit_message = p.head_message,
				 .commit_at_ms = p.head_at_ms };
	int64_t run = 0;
	if ((error = measure_bench_queue_push(&run, o->measure, &req)) == 0)
		snprintf(ctx->note, sizeof(ctx->note), run ? "bench run %lld queued" : "not a tracked branch", (long long)run);
done:
	return error;
}

static int on_push(store_job_ctx *ctx, void *payload)
{
	return with_payload(ctx, payload, on_push_event);
}

static int on_pull_request_event(store_job_ctx *ctx, const wh_handlers_options *o, const json_t *root)
{
	int error = 0;
	const char *action = base_json_str(root, "action");
	const json_t *pr = json_object_get(root, "pull_request");
	const json_t *head = json_object_get(pr, "head"), *base = json_object_get(pr, "base");
	if (!action || !pr) {
		error = base_error_set(BASE_EINVALID, "pull_request event without action or pull_request");
		goto done;
	}
	if (!strcmp(action, "closed")) {
		error = pr_handle_closed_event(o->pr, root);
		if (error == 0)
			snprintf(ctx->note, sizeof(ctx->note), "pull request #%lld closed", (long long)base_json_int(pr, "number"));
		goto done;
	}
	measure_bench_pull req = {
		.repository = base_json_str(json_object_get(root, "repository"), "full_name"),
		.installation_id = base_json_int(json_object_get(root, "installation"), "id"),
		.number = (int)base_json_int(pr, "number"),
		.head_sha = base_json_str(head, "sha"),
		.head_ref = base_json_str(head, "ref"),
		.base_sha = base_json_str(base, "sha"),
		.base_ref = base_json_str(base, "ref"),
		.clone_url = base_json_str(json_object_get(root, "repository"), "clone_url"),
		.trigger = "pull_request",
		.sender = base_json_str(json_object_get(root, "sender"), "login"),
		.needs_approval = pull_needs_approval(pr),
	};
	if (!req.repository || !req.head_sha || !req.base_sha || !req.number) {
		error = base_error_set(BASE_EINVALID, "pull_request event without repository, number, head or base");
		goto done;
	}
	int64_t run = 0;
	if ((error = measure_bench_queue_pull(&run, o->measure, &req)) == 0)
		snprintf(ctx->note, sizeof(ctx->note), "bench run %lld queued for #%d%s", (long long)run, req.number,
			 req.needs_approval ? " (waits for approval)" : "");
done:
	return error;
}

static int on_pull_request(store_job_ctx *ctx, void *payload)
{
	return with_payload(ctx, payload, on_pull_request_event);
}

/* ---- comment commands ----------------------------------------------------- */

struct thread {
	const wh_handlers_options *o;
	int64_t inst;
	char owner[128], name[128];
	const char *full_name;
	int64_t number;
	const char *user;
};

static int reply(const struct thread *t, const char *text)
{
	int64_t id = 0;
	int error = gh_create_comment(t->o->agent->gh, t->inst, t->owner, t->name, t->number, text, &id);
	if (error < 0)
		base_log(BASE_LOG_WARN, "cannot reply", "repository", t->full_name, "error", base_error_last(), NULL);
	return error;
}

static int replyf(const struct thread *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int replyf(const struct thread *t, const char *fmt, ...)
{
	char text[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	return reply(t, text);
}

/* write, maintain and admin may command perfbot; the answer comes from
 * GitHub's permission API, never from the payload. */
static int may_write(int *out, const struct thread *t)
{
	char *perm = NULL;
	int error = gh_get_permission(t->o->agent->gh, t->inst, t->owner, t->name, t->user, &perm);
	if (error < 0)
		return error;
	*out = !strcmp(perm, "admin") || !strcmp(perm, "maintain") || !strcmp(perm, "write");
	free(perm);
	return 0;
}

static int is_bot(const json_t *user)
{
	const char *type = base_json_str(user, "type");
	const char *login = base_json_str(user, "login");
	size_t n = login ? strlen(login) : 0;
	return (type && !strcmp(type, "Bot")) || (n > 5 && !strcmp(login + n - 5, "[bot]"));
}

static int run_command(store_job_ctx *ctx, struct thread *t, const wh_command *cmd, const json_t *root)
{
	const json_t *issue = json_object_get(root, "issue");
	int is_pull = json_object_get(issue, "pull_request") != NULL;
	int error = 0;
	char *help = NULL;
	switch (cmd->kind) {
	case WH_CMD_HELP:
		error = replyf(t, "perfbot measures benchmarks under CPU simulation and proposes verified speed-ups.\n\n%s",
			       wh_command_help());
		snprintf(ctx->note, sizeof(ctx->note), "help");
		break;
	case WH_CMD_UNKNOWN:
		if (cmd->suggestion)
			error = replyf(t, "I don't know `/perfbot %s`. Did you mean `/perfbot %s`?\n\n%s", cmd->word,
				       cmd->suggestion, wh_command_help());
		else
			error = replyf(t, "I don't know `/perfbot %s`. These are the commands:\n\n%s", cmd->word,
				       wh_command_help());
		snprintf(ctx->note, sizeof(ctx->note), "unknown command %s", cmd->word);
		break;
	case WH_CMD_INVALID:
		error = replyf(t, "%s.\n\n%s", cmd->error, wh_command_help());
		snprintf(ctx->note, sizeof(ctx->note), "invalid command");
		break;
	case WH_CMD_BENCH: {
		if (!is_pull) {
			error = reply(t, "`/perfbot bench` measures a pull request: comment it on one.");
			break;
		}
		json_t *pull = NULL;
		if ((error = gh_get_pull(t->o->agent->gh, t->inst, t->owner, t->name, t->number, &pull)) < 0)
			break;
		const json_t *head = json_object_get(pull, "head"), *base = json_object_get(pull, "base");
		measure_bench_pull req = { .repository = t->full_name, .installation_id = t->inst, .number = (int)t->number,
					 .head_sha = base_json_str(head, "sha"), .head_ref = base_json_str(head, "ref"),
					 .base_sha = base_json_str(base, "sha"), .base_ref = base_json_str(base, "ref"),
					 .clone_url = base_json_str(json_object_get(root, "repository"), "clone_url"),
					 .trigger = "comment", .sender = t->user };
		int64_t run = 0;
		if (!req.head_sha || !req.base_sha)
			error = base_error_set(BASE_EINVALID, "pull request #%lld has no head or base", (long long)t->number);
		else if ((error = measure_bench_queue_pull(&run, t->o->measure, &req)) == 0)
			error = replyf(t, "Measuring `%.7s` against `%s` (perfbot run %lld); the result will appear as the "
					  "**perfbot** check run on the head commit.",
				       req.head_sha, req.base_ref ? req.base_ref : "the base", (long long)run);
		json_decref(pull);
		snprintf(ctx->note, sizeof(ctx->note), "bench run %lld", (long long)run);
		break;
	}
	case WH_CMD_OPTIMIZE: {
		const char *names[WH_CMD_MAX_ARGS];
		for (size_t i = 0; i < cmd->nargs; i++)
			names[i] = cmd->args[i];
		agent_run_request req = { .repository = t->full_name, .installation_id = t->inst,
					  .clone_url = base_json_str(json_object_get(root, "repository"), "clone_url"),
					  .trigger = "comment", .requested_by = t->user, .thread_number = (int)t->number,
					  .benchmarks = cmd->nargs ? names : NULL, .nbenchmarks = cmd->nargs };
		json_t *pull = NULL, *repo = NULL;
		if (is_pull) {
			/* on a pull request: its head, proposed against its branch */
			if ((error = gh_get_pull(t->o->agent->gh, t->inst, t->owner, t->name, t->number, &pull)) < 0)
				break;
			req.commit = base_json_str(json_object_get(pull, "head"), "sha");
			req.branch = base_json_str(json_object_get(pull, "head"), "ref");
			if (pull_from_fork(pull)) {
				/* the agent works on the fork's head in the sandbox, but the
				 * proposal goes to the base branch, built on its own tip:
				 * the fork's commits are never pushed here */
				req.branch = base_json_str(json_object_get(pull, "base"), "ref");
				req.fork = 1;
			}
		} else {
			/* on an issue: the default branch as it is now */
			req.branch = base_json_str(json_object_get(root, "repository"), "default_branch");
			if (!req.branch && (error = gh_get_repo(t->o->agent->gh, t->inst, t->owner, t->name, &repo)) == 0)
				req.branch = base_json_str(repo, "default_branch");
		}
		int64_t run = 0;
		if (error == 0 && (error = agent_run_queue(&run, t->o->agent, &req)) == 0 && req.fork)
			error = replyf(t, "Started perfbot run %lld: an agent is looking for a verified speed-up of this pull "
					  "request's head `%.7s`%s%s. It comes from a fork, so a verified change is proposed "
					  "against `%s` alone, built on its own tip: the fork's commits are never pushed to "
					  "this repository, and if the change does not apply to `%s` without them no pull "
					  "request is opened. `/perfbot cancel %lld` stops it.",
				       (long long)run, req.commit ? req.commit : "", cmd->nargs ? " for " : "",
				       cmd->nargs ? cmd->args[0] : "", req.branch ? req.branch : "the base branch",
				       req.branch ? req.branch : "the base branch", (long long)run);
		else if (error == 0)
			error = replyf(t, "Started perfbot run %lld: an agent is looking for a verified speed-up of `%s`%s%s. "
					  "`/perfbot cancel %lld` stops it.",
				       (long long)run, req.branch ? req.branch : "the default branch",
				       cmd->nargs ? " for " : "", cmd->nargs ? cmd->args[0] : "", (long long)run);
		else if (error == BASE_EEXISTS)
			error = replyf(t, "An agent run is already going on for this repository: %s", base_error_last());
		json_decref(pull);
		json_decref(repo);
		snprintf(ctx->note, sizeof(ctx->note), "agent run %lld", (long long)run);
		break;
	}
	case WH_CMD_APPLY:
		error = agent_run_approve(t->o->agent, t->full_name, cmd->run, t->user, "comment");
		if (error == 0)
			error = replyf(t, "Approved perfbot run %lld: opening its pull request.", (long long)cmd->run);
		else if (error == BASE_EEXISTS || error == BASE_ENOTFOUND || error == BASE_EINVALID)
			error = replyf(t, "Cannot apply run %lld: %s.", (long long)cmd->run, base_error_last());
		snprintf(ctx->note, sizeof(ctx->note), "apply %lld", (long long)cmd->run);
		break;
	case WH_CMD_APPROVE: {
		if (!is_pull && !cmd->run) {
			error = reply(t, "`/perfbot approve` runs the benchmarks of a pull request waiting for approval: "
					 "comment it on the pull request.");
			break;
		}
		int64_t run = 0;
		error = measure_bench_approve(&run, t->o->measure, t->full_name, cmd->run, (int)t->number, t->user, "comment");
		if (error == 0)
			error = replyf(t, "Approved by @%s: perfbot run %lld measures this pull request's benchmarks now; the "
					  "result will appear as the **perfbot** check run on its head commit.",
				       t->user, (long long)run);
		else if (error == BASE_ENOTFOUND)
			error = replyf(t, "Nothing to approve: %s.", base_error_last());
		snprintf(ctx->note, sizeof(ctx->note), "approve %lld", (long long)run);
		break;
	}
	case WH_CMD_CANCEL:
		error = agent_run_cancel(t->o->agent, t->full_name, cmd->run, t->user);
		if (error == 0)
			error = replyf(t, "Cancelled perfbot run %lld.", (long long)cmd->run);
		else if (error == BASE_ENOTFOUND || error == BASE_EINVALID)
			error = replyf(t, "Cannot cancel run %lld: %s.", (long long)cmd->run, base_error_last());
		snprintf(ctx->note, sizeof(ctx->note), "cancel %lld", (long long)cmd->run);
		break;
	case WH_CMD_NONE:
		break;
	}
	free(help);
	return error;
}

static int on_issue_comment_event(store_job_ctx *ctx, const wh_handlers_options *o, const json_t *root)
{
	int error = 0;
	const json_t *comment = json_object_get(root, "comment");
	const char *action = base_json_str(root, "action");
	if (!action || strcmp(action, "created") != 0)
		goto done;
	if (is_bot(json_object_get(comment, "user")) || is_bot(json_object_get(root, "sender"))) {
		snprintf(ctx->note, sizeof(ctx->note), "comment by a bot: ignored");
		goto done;
	}
	wh_command cmd;
	wh_command_parse(&cmd, base_json_str(comment, "body"));
	if (cmd.kind == WH_CMD_NONE) {
		snprintf(ctx->note, sizeof(ctx->note), "no command");
		goto done;
	}
	struct thread t = { .o = o, .inst = base_json_int(json_object_get(root, "installation"), "id"),
			    .full_name = base_json_str(json_object_get(root, "repository"), "full_name"),
			    .number = base_json_int(json_object_get(root, "issue"), "number"),
			    .user = base_json_str(json_object_get(comment, "user"), "login") };
	if (!t.user)
		t.user = base_json_str(json_object_get(root, "sender"), "login");
	if (!t.inst || !t.number || !t.user || (error = gh_repo_split(t.owner, t.name, t.full_name)) < 0) {
		if (error == 0)
			error = base_error_set(BASE_EINVALID, "issue_comment without installation, issue number or user");
		goto done;
	}
	int allowed = 0;
	if ((error = may_write(&allowed, &t)) < 0)
		goto done;
	if (!allowed) {
		error = replyf(&t, "Sorry @%s, only people with write access to %s can use perfbot commands. "
				   "Nothing was started.",
			       t.user, t.full_name);
		snprintf(ctx->note, sizeof(ctx->note), "refused: %s has no write access", t.user);
		goto done;
	}
	int64_t comment_id = base_json_int(comment, "id");
	if (comment_id && gh_add_reaction(o->agent->gh, t.inst, t.owner, t.name, comment_id, "eyes") < 0)
		base_log(BASE_LOG_WARN, "cannot add a reaction", "error", base_error_last(), NULL);
	error = run_command(ctx, &t, &cmd, root);
done:
	return error;
}

static int on_issue_comment(store_job_ctx *ctx, void *payload)
{
	return with_payload(ctx, payload, on_issue_comment_event);
}

/* ---- check runs and suites ------------------------------------------------ */

/* "Approve and run" on a waiting bench run's check run.  The clicking user
 * needs write access; anyone else gets the polite refusal in the pull
 * request, and nothing runs. */
static int approve_button(store_job_ctx *ctx, struct thread *t, int64_t run)
{
	json_t *r = NULL;
	int error = store_run_get(t->o->agent->store, run, &r);
	const char *of = error == 0 ? base_json_str(r, "repository") : NULL;
	if (error == BASE_ENOTFOUND || (error == 0 && (!of || strcmp(of, t->full_name) != 0))) {
		snprintf(ctx->note, sizeof(ctx->note), "run %lld is not a run of %s", (long long)run, t->full_name);
		error = 0;
		goto done;
	}
	if (error < 0)
		goto done;
	t->number = base_json_int(json_object_get(r, "data"), "pull");
	int allowed = 0;
	if ((error = may_write(&allowed, t)) < 0)
		goto done;
	if (!allowed) {
		snprintf(ctx->note, sizeof(ctx->note), "refused: %s has no write access", t->user);
		if (t->number > 0)
			error = replyf(t, "Sorry @%s, only people with write access to %s can approve perfbot runs. "
					  "Nothing was started.",
				       t->user, t->full_name);
		goto done;
	}
	int64_t approved = 0;
	error = measure_bench_approve(&approved, t->o->measure, t->full_name, run, 0, t->user, "button");
	if (error == BASE_ENOTFOUND) {
		snprintf(ctx->note, sizeof(ctx->note), "not approved: %s", base_error_last());
		error = 0;
	} else if (error == 0) {
		snprintf(ctx->note, sizeof(ctx->note), "bench run %lld approved by %s", (long long)run, t->user);
	}
done:
	json_decref(r);
	return error;
}

static int on_check_run_event(store_job_ctx *ctx, const wh_handlers_options *o, const json_t *root)
{
	int error = 0;
	const char *action = base_json_str(root, "action");
	const json_t *cr = json_object_get(root, "check_run");
	const char *external = base_json_str(cr, "external_id");
	int64_t run = 0;
	if (external) {
		char *end;
		long long v = strtoll(external, &end, 10);
		if (*end == '\0' && v > 0)
			run = v;
	}
	if (!action || !run) {
		snprintf(ctx->note, sizeof(ctx->note), "not a perfbot check run");
		goto done;
	}
	struct thread t = { .o = o, .inst = base_json_int(json_object_get(root, "installation"), "id"),
			    .full_name = base_json_str(json_object_get(root, "repository"), "full_name"),
			    .user = base_json_str(json_object_get(root, "sender"), "login") };
	if (!t.inst || !t.user || (error = gh_repo_split(t.owner, t.name, t.full_name)) < 0) {
		if (error == 0)
			error = base_error_set(BASE_EINVALID, "check_run without installation or sender");
		goto done;
	}
	if (!strcmp(action, "requested_action")) {
		const char *id = base_json_str(json_object_get(root, "requested_action"), "identifier");
		if (id && !strcmp(id, "approve-run")) {
			error = approve_button(ctx, &t, run);
			goto done;
		}
		if (!id || strcmp(id, "open-pr") != 0) {
			snprintf(ctx->note, sizeof(ctx->note), "unknown action");
			goto done;
		}
		int allowed = 0;
		if ((error = may_write(&allowed, &t)) < 0)
			goto done;
		if (!allowed) {
			snprintf(ctx->note, sizeof(ctx->note), "refused: %s has no write access", t.user);
			base_log(BASE_LOG_WARN, "approval refused: no write access", "user", t.user, "repository", t.full_name,
				NULL);
			goto done;
		}
		error = agent_run_approve(o->agent, t.full_name, run, t.user, "button");
		if (error == BASE_EEXISTS || error == BASE_ENOTFOUND || error == BASE_EINVALID) {
			snprintf(ctx->note, sizeof(ctx->note), "not approved: %s", base_error_last());
			error = 0;
		} else if (error == 0) {
			snprintf(ctx->note, sizeof(ctx->note), "run %lld approved by %s", (long long)run, t.user);
		}
		goto done;
	}
	if (!strcmp(action, "rerequested")) {
		/* measure the same commits again */
		json_t *r = NULL;
		if ((error = store_run_get(o->agent->store, run, &r)) < 0)
			goto done;
		int bench = store_run_kind_of(r) == STORE_RUN_BENCH;
		const char *of = base_json_str(r, "repository");
		const json_t *rdata = json_object_get(r, "data");
		if (bench && of && !strcmp(of, t.full_name) && base_json_int(rdata, "pull") > 0 &&
		    json_is_true(json_object_get(rdata, "needs_approval"))) {
			/* a re-run of a pull request that needs approval: the clicking
			 * user's write access is that approval, else it waits again */
			int allowed = 0;
			if ((error = may_write(&allowed, &t)) == 0) {
				measure_bench_pull req = { .repository = t.full_name, .installation_id = t.inst,
							 .number = (int)base_json_int(rdata, "pull"), .head_sha = base_json_str(r, "head_sha"),
							 .head_ref = base_json_str(rdata, "head_ref"), .base_sha = base_json_str(r, "base_sha"),
							 .base_ref = base_json_str(rdata, "base_ref"),
							 .clone_url = base_json_str(json_object_get(root, "repository"), "clone_url"),
							 .trigger = "rerequested", .sender = t.user, .needs_approval = !allowed };
				int64_t again = 0;
				if ((error = measure_bench_queue_pull(&again, o->measure, &req)) == 0)
					snprintf(ctx->note, sizeof(ctx->note), "bench run %lld queued again as %lld%s",
						 (long long)run, (long long)again, allowed ? "" : " (waits for approval)");
			}
		} else if (bench && of && !strcmp(of, t.full_name)) {
			const json_t *data = rdata;
			measure_bench_push req = { .repository = t.full_name, .installation_id = t.inst,
						 .ref = base_json_str(data, "ref"), .before = base_json_str(r, "base_sha"),
						 .after = base_json_str(r, "head_sha"), .default_branch = base_json_str(data, "default_branch"),
						 .clone_url = base_json_str(json_object_get(root, "repository"), "clone_url"),
						 .sender = t.user };
			int64_t again = 0;
			if (req.after && (error = measure_bench_queue_push(&again, o->measure, &req)) == 0)
				snprintf(ctx->note, sizeof(ctx->note), "bench run %lld queued again as %lld", (long long)run,
					 (long long)again);
		}
		json_decref(r);
	}
done:
	return error;
}

static int on_check_run(store_job_ctx *ctx, void *payload)
{
	return with_payload(ctx, payload, on_check_run_event);
}

static int on_check_suite_event(store_job_ctx *ctx, const wh_handlers_options *o, const json_t *root)
{
	int error = 0;
	const json_t *suite = json_object_get(root, "check_suite");
	const json_t *pulls = json_object_get(suite, "pull_requests");
	if (json_array_size(pulls) > 0) {
		/* the commit of a pull request: measured as the pull request is,
		 * against its merge base, not as a push to a branch of that name */
		size_t i;
		const json_t *pr;
		int queued = 0;
		json_array_foreach(pulls, i, pr) {
			const json_t *head = json_object_get(pr, "head"), *base = json_object_get(pr, "base");
			measure_bench_pull req = {
				.repository = base_json_str(json_object_get(root, "repository"), "full_name"),
				.installation_id = base_json_int(json_object_get(root, "installation"), "id"),
				.number = (int)base_json_int(pr, "number"),
				.head_sha = base_json_str(suite, "head_sha"),
				.head_ref = base_json_str(head, "ref"),
				.base_sha = base_json_str(base, "sha"),
				.base_ref = base_json_str(base, "ref"),
				.clone_url = base_json_str(json_object_get(root, "repository"), "clone_url"),
				.trigger = "rerequested",
				.sender = base_json_str(json_object_get(root, "sender"), "login"),
			};
			int64_t run = 0;
			if ((error = measure_bench_queue_pull(&run, o->measure, &req)) < 0)
				goto done;
			queued++;
		}
		snprintf(ctx->note, sizeof(ctx->note), "bench runs queued for %d pull request%s", queued,
			 queued == 1 ? "" : "s");
		goto done;
	}
	char ref[300];
	const char *branch = base_json_str(suite, "head_branch");
	snprintf(ref, sizeof(ref), "refs/heads/%s", branch ? branch : "");
	measure_bench_push req = { .repository = base_json_str(json_object_get(root, "repository"), "full_name"),
				 .installation_id = base_json_int(json_object_get(root, "installation"), "id"),
				 .ref = branch ? ref : NULL, .before = base_json_str(suite, "before"), .after = base_json_str(suite, "head_sha"),
				 .default_branch = base_json_str(json_object_get(root, "repository"), "default_branch"),
				 .clone_url = base_json_str(json_object_get(root, "repository"), "clone_url"),
				 .sender = base_json_str(json_object_get(root, "sender"), "login") };
	if (!req.repository || !req.after || !req.ref) {
		snprintf(ctx->note, sizeof(ctx->note), "check suite without repository, branch or head");
		goto done;
	}
	int64_t run = 0;
	if ((error = measure_bench_queue_push(&run, o->measure, &req)) == 0)
		snprintf(ctx->note, sizeof(ctx->note), "bench run %lld queued", (long long)run);
done:
	return error;
}

static int on_check_suite(store_job_ctx *ctx, void *payload)
{
	return with_payload(ctx, payload, on_check_suite_event);
}

int wh_github_handlers_register(store_workers *w, const wh_handlers_options *opts)
{
	void *p = (void *)opts;
	int error;
	if ((error = store_workers_register(w, "event.push", on_push, p)) < 0 ||
	    (error = store_workers_register(w, "event.pull_request", on_pull_request, p)) < 0 ||
	    (error = store_workers_register(w, "event.issue_comment", on_issue_comment, p)) < 0 ||
	    (error = store_workers_register(w, "event.check_run", on_check_run, p)) < 0 ||
	    (error = store_workers_register(w, "event.check_suite", on_check_suite, p)) < 0)
		return error;
	return 0;
}
