/* pr/ inside the server: the "pr.open" job and `pull_request` closed events,
 * wired to the real GitHub client.
 *
 * The job reads the run (repository, installation, data.clone_url), builds
 * the git options (DATA_DIR's bare cache, the clone URL, the installation
 * token handed to libgit2 only inside its credential callback) and a
 * pr_github adapter for the run's installation, then runs pr_job_open.
 * The bot identity is asked of GitHub once per process and kept in the
 * pr_services (bot_lock).  A refused proposal fails the job for good: the
 * worker's retry would only repeat the refusal and its comment.  A git 401
 * drops the cached token and the job tries once more with a fresh one.
 * When GitHub has not computed the new pull request's mergeability yet, a
 * "pr.conflict" job asks again later (CONFLICT_DELAY_MS, up to
 * CONFLICT_CHECKS times) and comments once if it conflicts.
 * Worker threads; the state shared between jobs is the bot identity only. */
#include "pr/pr_job.h"
#include "base/clock.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"
#include "base/error.h"
#include "base/log.h"
#include "pr/pr.h"
#include "pr/pr_github_adapter.h"

#define PR_OPEN_JOB "pr.open"
#define CONFLICT_DELAY_MS 30000
#define CONFLICT_CHECKS 5

typedef struct token_ctx {
	gh_client *gh;
	int64_t installation_id;
} token_ctx;

static int token_cb(char **token_out, void *payload)
{
	token_ctx *t = payload;
	return gh_installation_token(t->gh, t->installation_id, token_out);
}

static int permanent(int error)
{
	return error == BASE_EINVALID || error == BASE_ETOOBIG || error == BASE_EEXISTS || error == BASE_EFORBIDDEN ||
	       error == BASE_ENOTFOUND;
}

/* The App's bot identity, from the cache or GitHub (GET /app, then GET
 * /users/<slug>[bot]).  Copies into the caller's buffers. */
static int bot_identity(pr_services *svc, char *name, size_t name_cap, char *email, size_t email_cap)
{
	json_t *app = NULL, *user = NULL;
	char *n = NULL, *e = NULL;
	int error = 0;
	pthread_mutex_lock(&svc->bot_lock);
	if (svc->bot_known)
		goto copy;
	if ((error = gh_get_app(svc->gh, &app)) < 0)
		goto done;
	const char *slug = json_string_value(json_object_get(app, "slug"));
	if (!slug || !*slug) {
		error = base_error_set(BASE_ERETRY, "GitHub's GET /app answered without a slug");
		goto done;
	}
	if ((error = gh_get_bot_user(svc->gh, slug, &user)) < 0)
		goto done;
	json_t *id = json_object_get(user, "id");
	if (!json_is_integer(id)) {
		error = base_error_set(BASE_ERETRY, "GitHub's bot user %s[bot] has no id", slug);
		goto done;
	}
	if ((error = pr_bot_identity(&n, &e, slug, (int64_t)json_integer_value(id))) < 0)
		goto done;
	if (strlen(n) >= sizeof(svc->bot_name) || strlen(e) >= sizeof(svc->bot_email)) {
		error = base_error_set(BASE_EINVALID, "the App's slug is too long for a commit identity");
		goto done;
	}
	snprintf(svc->bot_name, sizeof(svc->bot_name), "%s", n);
	snprintf(svc->bot_email, sizeof(svc->bot_email), "%s", e);
	svc->bot_known = 1;
	base_log(BASE_LOG_INFO, "pr: bot identity", "name", svc->bot_name, NULL);
copy:
	snprintf(name, name_cap, "%s", svc->bot_name);
	snprintf(email, email_cap, "%s", svc->bot_email);
done:
	pthread_mutex_unlock(&svc->bot_lock);
	free(n);
	free(e);
	json_decref(app);
	json_decref(user);
	return error;
}

/* The clone URL of the run's repository: the one its event carried, else
 * github.com's (or the GitHub Enterprise host's). */
static int clone_url(base_buf *out, const base_config *cfg, const json_t *run, const char *repository)
{
	const char *url = json_string_value(json_object_get(json_object_get(run, "data"), "clone_url"));
	if (url && *url)
		return base_buf_puts(out, url);
	const char *host = cfg && cfg->ghe_host && *cfg->ghe_host ? cfg->ghe_host : "github.com";
	return base_buf_printf(out, "https://%s/%s.git", host, repository);
}

static int parse_run_id(int64_t *out, const char *payload)
{
	json_error_t jerr;
	json_t *root = json_loads(payload ? payload : "", 0, &jerr);
	json_t *id = json_object_get(root, "run_id");
	int error = 0;
	if (!json_is_integer(id) || json_integer_value(id) <= 0)
		error = base_error_set(BASE_EINVALID, PR_OPEN_JOB " job payload lacks a run_id");
	else
		*out = (int64_t)json_integer_value(id);
	json_decref(root);
	return error;
}

static int on_pr_open(store_job_ctx *ctx, void *payload)
{
	pr_services *svc = payload;
	json_t *run = NULL;
	base_buf url = BASE_BUF_INIT(4096);
	pr_open_result res = {0};
	char bot_name[256], bot_email[384];
	int64_t run_id = 0;
	int error;

	if ((error = parse_run_id(&run_id, ctx->job->payload)) < 0)
		goto done;
	if (!svc->gh) {
		error = base_error_set(BASE_EINVALID, "no GitHub App is configured: cannot open pull requests");
		goto done;
	}
	if ((error = store_run_get(svc->store, run_id, &run)) < 0)
		goto done;
	const char *repository = json_string_value(json_object_get(run, "repository"));
	int64_t inst = (int64_t)json_integer_value(json_object_get(run, "installation_id"));
	if (!repository || inst <= 0) {
		error = base_error_set(BASE_EINVALID, "run %" PRId64 " has no repository or installation", run_id);
		goto done;
	}
	if ((error = clone_url(&url, svc->cfg, run, repository)) < 0)
		goto done;
	if ((error = bot_identity(svc, bot_name, sizeof(bot_name), bot_email, sizeof(bot_email))) < 0)
		goto done;

	token_ctx tok = {svc->gh, inst};
	pr_git_options git = {
		.data_dir = svc->cfg && svc->cfg->data_dir ? svc->cfg->data_dir : ".",
		.repository = repository,
		.url = base_buf_cstr(&url),
		.token = token_cb,
		.token_payload = &tok,
	};
	pr_github gh;
	pr_github_adapter adapter;
	pr_github_adapter_init(&gh, &adapter, svc->gh, inst);
	pr_options opts = {
		.git = &git,
		.gh = &gh,
		.bot_name = bot_name,
		.bot_email = bot_email,
		.mergeable_polls = 3,
		.mergeable_delay_ms = 1000,
	};
	error = pr_job_open(&res, svc->store, &opts, run_id);
	if (error == BASE_EAUTH) {
		/* the cached token was refused by git: one more try with a new one */
		base_log(BASE_LOG_WARN, "pr: git refused the installation token; retrying with a new one", "repository",
			repository, NULL);
		gh_installation_token_invalidate(svc->gh, inst);
		error = pr_job_open(&res, svc->store, &opts, run_id);
		if (error == BASE_EAUTH)
			gh_installation_token_invalidate(svc->gh, inst);
	}
	if (error == 0)
		snprintf(ctx->note, sizeof(ctx->note), "run %" PRId64 ": pull request #%d %s", run_id, res.number,
			 res.created ? "opened" : "already open");
	if (error == 0 && res.mergeable_unknown) {
		char job[64], key[64];
		snprintf(job, sizeof(job), "{\"run_id\":%" PRId64 "}", run_id);
		snprintf(key, sizeof(key), "pr.conflict:%" PRId64, run_id);
		if (store_job_add(svc->store, NULL, "pr.conflict", job, key, base_wall_ms() + CONFLICT_DELAY_MS) < 0)
			base_log(BASE_LOG_WARN, "pr: cannot queue the later mergeability check", "repository", repository,
				"error", base_error_last(), NULL);
	}
done:
	if (error < 0) {
		if (permanent(error)) {
			ctx->final_attempt = 1; /* the refusal would only repeat */
			snprintf(ctx->note, sizeof(ctx->note), "run %" PRId64 ": no pull request", run_id);
		} else if (error == BASE_ERETRY && gh_retry_wait_ms() > 0) {
			ctx->retry_at_ms = base_wall_ms() + gh_retry_wait_ms();
		}
	}
	pr_open_result_dispose(&res);
	base_buf_dispose(&url);
	json_decref(run);
	return error;
}

/* "pr.conflict": GitHub's mergeability of the run's open pull request,
 * asked again until known; a conflict gets its comment once. */
static int on_pr_conflict(store_job_ctx *ctx, void *payload)
{
	pr_services *svc = payload;
	json_t *run = NULL, *pull = NULL, *proposal = NULL;
	int64_t run_id = 0;
	int error;
	if ((error = parse_run_id(&run_id, ctx->job->payload)) < 0)
		goto done;
	if (!svc->gh) {
		error = base_error_set(BASE_EINVALID, "no GitHub App is configured");
		goto done;
	}
	if ((error = store_run_get(svc->store, run_id, &run)) < 0 || (error = store_pull_get(svc->store, run_id, &pull)) < 0 ||
	    (error = store_proposal_get(svc->store, run_id, &proposal)) < 0)
		goto done;
	const char *state = json_string_value(json_object_get(pull, "state"));
	int number = (int)json_integer_value(json_object_get(pull, "number"));
	if (!state || strcmp(state, "open") != 0 || number <= 0) {
		snprintf(ctx->note, sizeof(ctx->note), "run %" PRId64 ": the pull request is not open", run_id);
		goto done;
	}
	pr_bench_result benches[64];
	pr_proposal p;
	if ((error = pr_proposal_from_json(&p, benches, sizeof(benches) / sizeof(benches[0]), run_id, run, proposal)) < 0)
		goto done;
	int64_t inst = (int64_t)json_integer_value(json_object_get(run, "installation_id"));
	pr_github gh;
	pr_github_adapter adapter;
	pr_github_adapter_init(&gh, &adapter, svc->gh, inst);
	int mergeable = -1;
	if ((error = pr_check_conflict(&mergeable, &gh, p.repository, number, p.base_branch, p.base_sha)) < 0)
		goto done;
	if (mergeable < 0) {
		if (ctx->job->attempts >= CONFLICT_CHECKS) {
			snprintf(ctx->note, sizeof(ctx->note), "run %" PRId64 ": GitHub did not compute whether #%d merges",
				 run_id, number);
			goto done;
		}
		ctx->retry_at_ms = base_wall_ms() + CONFLICT_DELAY_MS;
		error = base_error_set(BASE_ERETRY, "GitHub has not computed whether #%d merges yet", number);
		goto done;
	}
	snprintf(ctx->note, sizeof(ctx->note), "run %" PRId64 ": #%d %s", run_id, number,
		 mergeable ? "merges cleanly" : "conflicts: commented");
done:
	json_decref(run);
	json_decref(pull);
	json_decref(proposal);
	return error;
}

int pr_job_queue_open(store *st, const store_approval *approval)
{
	char payload[64], key[64];
	snprintf(payload, sizeof(payload), "{\"run_id\":%" PRId64 "}", approval->run_id);
	snprintf(key, sizeof(key), PR_OPEN_JOB ":%" PRId64, approval->run_id);
	store_approval a = *approval;
	a.job_kind = PR_OPEN_JOB;
	a.job_payload = payload;
	a.job_key = key;
	return store_approval_put(st, &a);
}

int pr_jobs_register(store_workers *w, pr_services *svc)
{
	if (!w || !svc)
		return base_error_set(BASE_EINVALID, "pr_jobs_register: missing argument");
	pthread_mutex_init(&svc->bot_lock, NULL);
	svc->bot_known = 0;
	int error = store_workers_register(w, PR_OPEN_JOB, on_pr_open, svc);
	return error < 0 ? error : store_workers_register(w, "pr.conflict", on_pr_conflict, svc);
}

int pr_handle_closed_event(pr_services *svc, const json_t *payload)
{
	pr_closed_event ev;
	const char *state = NULL;
	int error = pr_closed_event_parse(&ev, payload);
	if (error == BASE_ENOTFOUND)
		return 0; /* not a perfbot branch */
	if (error < 0)
		return error;
	if (!svc || !svc->gh || !svc->store)
		return base_error_set(BASE_EINVALID, "no GitHub App is configured: pull request event ignored");
	int64_t inst = (int64_t)json_integer_value(json_object_get(json_object_get(payload, "installation"), "id"));
	pr_github gh;
	pr_github_adapter adapter;
	pr_github_adapter_init(&gh, &adapter, svc->gh, inst);
	error = pr_handle_closed(&state, svc->store, &gh, payload);
	if (error == BASE_ENOTFOUND) {
		base_log(BASE_LOG_INFO, "pr: closed pull request is not one perfbot opened", "repository", ev.repository,
			"branch", ev.branch, NULL);
		return 0;
	}
	if (error < 0)
		return error;
	char reason[200];
	if (ev.merged)
		snprintf(reason, sizeof(reason), "pull request #%d merged as %.40s", ev.number,
			 ev.merge_commit_sha[0] ? ev.merge_commit_sha : "?");
	else
		snprintf(reason, sizeof(reason), "pull request #%d closed without merging", ev.number);
	if ((error = store_run_set_state(svc->store, ev.run_id, store_run_state_parse(state), reason)) < 0)
		return error;
	base_log(BASE_LOG_INFO, "pr: pull request closed", "repository", ev.repository, "branch", ev.branch, "state",
		state, NULL);
	return 0;
}
