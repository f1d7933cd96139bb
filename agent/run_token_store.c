/* The durable token store: agent_token_store over store/store.h's run-token
 * table.  Separate from run_token.c so that only programs that link the
 * store pull it in.  Thread-safety is the store's. */
#include "agent/run_token.h"

#include "store/store.h"

static int st_put(void *self, int64_t run_id, const char *token_hash)
{
	return store_run_token_put(self, run_id, token_hash);
}

static int st_find(void *self, const char *token_hash, int64_t *run_id_out)
{
	return store_run_token_find(self, token_hash, run_id_out);
}

static int st_del(void *self, int64_t run_id)
{
	return store_run_token_delete(self, run_id);
}

int agent_token_store_durable(agent_token_store *out, struct store *st)
{
	out->put = st_put;
	out->find = st_find;
	out->del = st_del;
	out->free = NULL;
	out->self = st;
	return 0;
}
