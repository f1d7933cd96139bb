/* Per-run bearer tokens: generation, hashing and the in-memory hash map.
 *
 * Invariants: clear tokens are never stored nor logged; the in-memory map
 * holds hashes only and is guarded by one mutex.  The durable variant lives
 * in run_token_store.c so that programs without a store do not link it. */
#include "agent/run_token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

static void to_hex(char *out, const unsigned char *in, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

int agent_token_generate(char out[AGENT_TOKEN_LEN + 1])
{
	unsigned char raw[AGENT_TOKEN_LEN / 2];
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return base_error_set(BASE_EGENERIC, "the random generator failed");
	to_hex(out, raw, sizeof(raw));
	OPENSSL_cleanse(raw, sizeof(raw));
	return 0;
}

int agent_token_hash(char out[AGENT_TOKEN_HASH_LEN + 1], const char *token, size_t len)
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	if (EVP_Digest(token, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != sizeof(md))
		return base_error_set(BASE_EGENERIC, "SHA-256 failed");
	to_hex(out, md, sizeof(md));
	return 0;
}

int agent_token_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la != lb)
		return 0;
	return CRYPTO_memcmp(a, b, la) == 0;
}

/* ---- in-memory store ----------------------------------------------------- */

typedef struct mem_entry {
	int64_t run_id;
	char hash[AGENT_TOKEN_HASH_LEN + 1];
} mem_entry;

typedef struct mem_store {
	pthread_mutex_t lock;
	mem_entry *entries;
	size_t n, alloc;
} mem_store;

static int mem_put(void *self, int64_t run_id, const char *token_hash)
{
	mem_store *m = self;
	int error = 0;
	if (strlen(token_hash) != AGENT_TOKEN_HASH_LEN)
		return base_error_set(BASE_EINVALID, "a token hash has 64 hex characters");
	pthread_mutex_lock(&m->lock);
	if (m->n == m->alloc) {
		size_t na = m->alloc ? m->alloc * 2 : 8;
		mem_entry *ne = realloc(m->entries, na * sizeof(*ne));
		if (!ne) {
			error = base_error_set(BASE_ENOMEM, "out of memory");
			goto done;
		}
		m->entries = ne;
		m->alloc = na;
	}
	m->entries[m->n].run_id = run_id;
	memcpy(m->entries[m->n].hash, token_hash, AGENT_TOKEN_HASH_LEN + 1);
	m->n++;
done:
	pthread_mutex_unlock(&m->lock);
	return error;
}

static int mem_find(void *self, const char *token_hash, int64_t *run_id_out)
{
	mem_store *m = self;
	int found = 0;
	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < m->n; i++) {
		/* no early exit: the time taken does not depend on where it matched */
		if (agent_token_equal(m->entries[i].hash, token_hash) && !found) {
			*run_id_out = m->entries[i].run_id;
			found = 1;
		}
	}
	pthread_mutex_unlock(&m->lock);
	return found ? 0 : base_error_set(BASE_ENOTFOUND, "unknown token");
}

static int mem_del(void *self, int64_t run_id)
{
	mem_store *m = self;
	pthread_mutex_lock(&m->lock);
	size_t j = 0;
	for (size_t i = 0; i < m->n; i++)
		if (m->entries[i].run_id != run_id)
			m->entries[j++] = m->entries[i];
	m->n = j;
	pthread_mutex_unlock(&m->lock);
	return 0;
}

static void mem_free(void *self)
{
	mem_store *m = self;
	if (!m)
		return;
	pthread_mutex_destroy(&m->lock);
	free(m->entries);
	free(m);
}

int agent_token_store_memory(agent_token_store *out)
{
	mem_store *m = calloc(1, sizeof(*m));
	if (!m)
		return base_error_set(BASE_ENOMEM, "out of memory");
	pthread_mutex_init(&m->lock, NULL);
	out->put = mem_put;
	out->find = mem_find;
	out->del = mem_del;
	out->free = mem_free;
	out->self = m;
	return 0;
}

void agent_token_store_dispose(agent_token_store *ts)
{
	if (ts && ts->free)
		ts->free(ts->self);
	if (ts)
		memset(ts, 0, sizeof(*ts));
}
