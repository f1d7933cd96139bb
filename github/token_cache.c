/* Installation-token cache.
 *
 * Entries live in a linked list under one mutex; an entry is never freed
 * before the cache.  A fetch runs without the mutex held, with the entry's
 * `fetching` flag set; other callers for the same installation wait on the
 * condition variable and then re-check, so one fetch serves them all.  If a
 * fetch fails, everyone who waited for it gets its error (a GitHub that is
 * down is not asked again by each waiter in turn); a later call fetches
 * anew.  Tokens are opaque
 * strings: nothing is assumed about their length or prefix, and they are
 * wiped before being freed. */
#include "github/token_cache.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "base/error.h"

typedef struct entry {
	struct entry *next;
	int64_t installation_id;
	char *token;       /* NULL when none cached */
	int64_t expires;   /* epoch s */
	int fetching;
	unsigned long fetches;  /* completed fetches: a waiter sees its fetch end */
	int fetch_error;        /* of the last completed fetch, 0 when it succeeded */
	char fetch_msg[300];
} entry;

struct gh_token_cache {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	long margin_s;
	entry *entries;
};

static void wipe_free(char *s)
{
	if (!s)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}

int gh_token_cache_new(gh_token_cache **out, long margin_s)
{
	gh_token_cache *tc = calloc(1, sizeof(*tc));
	if (!tc)
		return base_error_set(BASE_ENOMEM, "out of memory");
	pthread_mutex_init(&tc->mu, NULL);
	pthread_cond_init(&tc->cv, NULL);
	tc->margin_s = margin_s;
	*out = tc;
	return 0;
}

void gh_token_cache_free(gh_token_cache *tc)
{
	if (!tc)
		return;
	entry *e = tc->entries;
	while (e) {
		entry *next = e->next;
		wipe_free(e->token);
		free(e);
		e = next;
	}
	pthread_cond_destroy(&tc->cv);
	pthread_mutex_destroy(&tc->mu);
	free(tc);
}

static entry *find_or_add(gh_token_cache *tc, int64_t id)
{
	for (entry *e = tc->entries; e; e = e->next)
		if (e->installation_id == id)
			return e;
	entry *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->installation_id = id;
	e->next = tc->entries;
	tc->entries = e;
	return e;
}

int gh_token_cache_get(gh_token_cache *tc, int64_t installation_id, int64_t now, gh_token_fetch_fn fetch,
		       void *payload, char **token_out)
{
	int error = 0;
	*token_out = NULL;
	pthread_mutex_lock(&tc->mu);
	entry *e = find_or_add(tc, installation_id);
	if (!e) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	for (;;) {
		if (e->token && e->expires - tc->margin_s > now) {
			if (!(*token_out = strdup(e->token)))
				error = base_error_set(BASE_ENOMEM, "out of memory");
			goto done;
		}
		if (!e->fetching)
			break;
		unsigned long mine = e->fetches;
		while (e->fetching && e->fetches == mine)
			pthread_cond_wait(&tc->cv, &tc->mu);
		if (e->fetches != mine && e->fetch_error < 0) {
			error = base_error_set(e->fetch_error, "%s", e->fetch_msg);
			goto done;
		}
	}
	e->fetching = 1;
	wipe_free(e->token);
	e->token = NULL;
	pthread_mutex_unlock(&tc->mu);

	char *token = NULL;
	int64_t expires = 0;
	error = fetch(&token, &expires, installation_id, payload);

	pthread_mutex_lock(&tc->mu);
	e->fetching = 0;
	e->fetches++;
	e->fetch_error = error < 0 ? error : 0;
	snprintf(e->fetch_msg, sizeof(e->fetch_msg), "%s", error < 0 ? base_error_last() : "");
	if (error == 0) {
		e->token = token;
		e->expires = expires;
		if (!(*token_out = strdup(token)))
			error = base_error_set(BASE_ENOMEM, "out of memory");
	} else {
		wipe_free(token);
	}
	pthread_cond_broadcast(&tc->cv);
done:
	pthread_mutex_unlock(&tc->mu);
	return error;
}

void gh_token_cache_drop(gh_token_cache *tc, int64_t installation_id, const char *token)
{
	pthread_mutex_lock(&tc->mu);
	for (entry *e = tc->entries; e; e = e->next) {
		if (e->installation_id != installation_id || !e->token)
			continue;
		if (!token || strcmp(token, e->token) == 0) {
			wipe_free(e->token);
			e->token = NULL;
		}
	}
	pthread_mutex_unlock(&tc->mu);
}
