/* Per-run bearer tokens for the MCP endpoint.
 *
 * A token is 32 random bytes (OpenSSL RAND_bytes) written as 64 lowercase
 * hex characters.  Only its SHA-256 (hex) is ever stored; the clear token
 * exists in the caller's memory and in the agent process's environment.
 * Where the hashes live is behind agent_token_store, a small vtable: the
 * durable store (store/store.h) in the server, an in-memory map in tests and
 * in the local CLI. */
#ifndef AGENT_RUN_TOKEN_H
#define AGENT_RUN_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define AGENT_TOKEN_LEN 64      /* hex characters of a token */
#define AGENT_TOKEN_HASH_LEN 64 /* hex characters of its SHA-256 */

/* Fills out (AGENT_TOKEN_LEN + 1 bytes) with a fresh random token. */
int agent_token_generate(char out[AGENT_TOKEN_LEN + 1]);

/* SHA-256 of token as lowercase hex into out (AGENT_TOKEN_HASH_LEN + 1). */
int agent_token_hash(char out[AGENT_TOKEN_HASH_LEN + 1], const char *token, size_t len);

/* Constant-time comparison of two NUL-terminated strings of equal length;
 * 1 when equal. */
int agent_token_equal(const char *a, const char *b);

/* Where token hashes are kept.  Every function is thread-safe. */
typedef struct agent_token_store {
	int (*put)(void *self, int64_t run_id, const char *token_hash);
	/* BASE_ENOTFOUND when the hash is unknown. */
	int (*find)(void *self, const char *token_hash, int64_t *run_id_out);
	int (*del)(void *self, int64_t run_id);
	void (*free)(void *self);
	void *self;
} agent_token_store;

/* An in-memory token store (hashes only), freed through its free member. */
int agent_token_store_memory(agent_token_store *out);

/* A token store backed by the durable store (store/store.h); `st` is borrowed
 * and must outlive the token store. */
struct store;
int agent_token_store_durable(agent_token_store *out, struct store *st);

void agent_token_store_dispose(agent_token_store *ts);

#endif
