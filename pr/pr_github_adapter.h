/* The pr_github vtable (pr/pr.h) filled from the real GitHub client for one
 * installation.  The adapter borrows the client; it keeps no state of its
 * own beyond the installation id, so one adapter serves one job or event on
 * one thread, and any number may exist at once. */
#ifndef PR_PR_GITHUB_ADAPTER_H
#define PR_PR_GITHUB_ADAPTER_H

#include <stdint.h>

#include "github/github.h"
#include "pr/pr.h"

typedef struct pr_github_adapter {
	gh_client *gh;            /* borrowed */
	int64_t installation_id;
} pr_github_adapter;

/* Fills *out with callbacks that reach GitHub through gh for installation
 * installation_id.  ctx is the vtable's payload: it must outlive *out. */
void pr_github_adapter_init(pr_github *out, pr_github_adapter *ctx, gh_client *gh, int64_t installation_id);

/* A pull request object of GitHub's REST API (borrowed) as a pr_pull
 * (strings owned by *out; pr_pull_dispose). */
int pr_pull_from_github(pr_pull *out, const json_t *obj);

#endif
