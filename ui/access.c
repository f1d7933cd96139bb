/* Who may read what.  GitHub decides: the repositories a signed-in user can
 * read through the App's installations, asked with the user's own token
 * and kept for access_ttl (minutes, not hours: a user removed from a
 * repository loses it within that time).  One slot per session, the oldest
 * reused when all are taken; GitHub is asked outside the lock, so two
 * requests of one user may both ask.  A run without an installation was
 * made on this machine (`perfbot bench`, `perfbot optimize`): only a local
 * browser sees it. */
#include "ui/ui_int.h"
#include "base/error.h"
#include "base/json.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* The cached answer for key if fresh (incref'd), else NULL.  Lock held. */
static json_t *cached(ui_ctx *ui, const char *key, int64_t now)
{
	for (size_t i = 0; i < UI_ACCESS_SLOTS; i++) {
		ui_access_slot *s = &ui->access[i];
		if (s->repos && !strcmp(s->key, key)) {
			if (now - s->fetched_ms < ui->access_ttl_ms && now >= s->fetched_ms)
				return json_incref(s->repos);
			return NULL;
		}
	}
	return NULL;
}

/* Stores repos (borrowed, incref'd) for key.  Lock held. */
static void remember(ui_ctx *ui, const char *key, json_t *repos, int64_t now)
{
	ui_access_slot *slot = NULL;
	for (size_t i = 0; i < UI_ACCESS_SLOTS && !slot; i++)
		if (ui->access[i].repos && !strcmp(ui->access[i].key, key))
			slot = &ui->access[i];
	for (size_t i = 0; i < UI_ACCESS_SLOTS && !slot; i++)
		if (!ui->access[i].repos)
			slot = &ui->access[i];
	if (!slot) {
		slot = &ui->access[0];
		for (size_t i = 1; i < UI_ACCESS_SLOTS; i++)
			if (ui->access[i].fetched_ms < slot->fetched_ms)
				slot = &ui->access[i];
	}
	json_decref(slot->repos);
	snprintf(slot->key, sizeof(slot->key), "%s", key);
	slot->repos = json_incref(repos);
	slot->fetched_ms = now;
}

void ui_access_forget(ui_ctx *ui, const char *id_hash)
{
	pthread_mutex_lock(&ui->mu);
	for (size_t i = 0; i < UI_ACCESS_SLOTS; i++)
		if (ui->access[i].repos && !strcmp(ui->access[i].key, id_hash)) {
			json_decref(ui->access[i].repos);
			ui->access[i].repos = NULL;
			ui->access[i].key[0] = '\0';
		}
	pthread_mutex_unlock(&ui->mu);
}

int ui_access_repos(ui_ctx *ui, const ui_who *who, json_t **out)
{
	*out = NULL;
	if (!who->signed_in)
		return (*out = json_array()) ? 0 : base_error_set(BASE_ENOMEM, "out of memory");
	int64_t now = ui_now_ms(ui);
	pthread_mutex_lock(&ui->mu);
	json_t *repos = cached(ui, who->s.id_hash, now);
	pthread_mutex_unlock(&ui->mu);
	if (repos) {
		*out = repos;
		return 0;
	}
	if (!ui->gh.repositories)
		return base_error_set(BASE_EINVALID, "no GitHub App is configured");
	int error = ui->gh.repositories(ui->gh.payload, who->s.token, &repos);
	if (error < 0)
		return error;
	if (!json_is_array(repos)) {
		json_decref(repos);
		return base_error_set(BASE_EINVALID, "GitHub's list of repositories is not a list");
	}
	pthread_mutex_lock(&ui->mu);
	remember(ui, who->s.id_hash, repos, now);
	pthread_mutex_unlock(&ui->mu);
	*out = repos;
	return 0;
}

int ui_access_repo(ui_ctx *ui, const ui_who *who, const char *full_name, json_t **out)
{
	json_t *repos = NULL;
	*out = NULL;
	if (!full_name || !who->signed_in)
		return base_error_set(BASE_ENOTFOUND, "not found");
	int error = ui_access_repos(ui, who, &repos);
	if (error < 0)
		return error;
	size_t i;
	json_t *r;
	error = base_error_set(BASE_ENOTFOUND, "not found");
	json_array_foreach(repos, i, r)
	{
		const char *name = base_json_str(r, "full_name");
		/* GitHub's names are case-insensitive; the store keeps GitHub's spelling */
		if (name && !strcasecmp(name, full_name)) {
			*out = json_incref(r);
			error = 0;
			break;
		}
	}
	json_decref(repos);
	return error;
}

int ui_access_run(ui_ctx *ui, const ui_who *who, const json_t *run, json_t **repo_out)
{
	if (repo_out)
		*repo_out = NULL;
	if (!run)
		return base_error_set(BASE_ENOTFOUND, "not found");
	if (base_json_int(run, "installation_id") == 0)
		return who->local ? 0 : base_error_set(BASE_ENOTFOUND, "not found");
	json_t *repo = NULL;
	int error = ui_access_repo(ui, who, base_json_str(run, "repository"), &repo);
	if (error == 0 && repo_out)
		*repo_out = repo;
	else
		json_decref(repo);
	return error;
}
