/* The installation-token cache of gh_client, exposed on its own so that its
 * expiry and single-refresh behaviour can be tested without a server.
 *
 * Thread-safe.  For each installation at most one fetch runs at a time;
 * callers arriving during a fetch wait for it and share its result. */
#ifndef GH_TOKEN_CACHE_H
#define GH_TOKEN_CACHE_H

#include <stdint.h>

typedef struct gh_token_cache gh_token_cache;

/* Fetches a fresh token: *token_out owned by the cache afterwards (malloc'd),
 * *expires_out in epoch seconds. Returns 0 or a negative BASE_E* code. */
typedef int (*gh_token_fetch_fn)(char **token_out, int64_t *expires_out, int64_t installation_id,
				 void *payload);

/* margin_s: a token is refreshed when fewer than margin_s seconds are left. */
int gh_token_cache_new(gh_token_cache **out, long margin_s);
void gh_token_cache_free(gh_token_cache *tc);

/* A copy of a valid token (owned by the caller) for installation_id at time
 * now (epoch s), calling fetch when none is cached or it is about to
 * expire. */
int gh_token_cache_get(gh_token_cache *tc, int64_t installation_id, int64_t now, gh_token_fetch_fn fetch,
		       void *payload, char **token_out);

/* Drops the cached token of installation_id if it equals token (NULL: any). */
void gh_token_cache_drop(gh_token_cache *tc, int64_t installation_id, const char *token);

#endif
