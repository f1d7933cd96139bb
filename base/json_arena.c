/* Per-thread jansson arena (see json_arena.h).  Blocks are chained; the
 * first block of a thread is kept between windows (so a steady stream of
 * requests allocates nothing), larger windows add blocks that end() frees.
 * Thread-local state only; the hooks themselves are installed once. */
#include "base/json_arena.h"

#include <jansson.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define BLOCK_SIZE (128u * 1024u)
#define ALIGN 16u

struct block {
	struct block *next;
	size_t size;
	size_t used;
	_Alignas(16) unsigned char data[];
};

static _Thread_local struct block *head;   /* current block; chain ends in the kept first block */
static _Thread_local int active;
static pthread_key_t exit_key;              /* frees a thread's kept block when it exits */
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;

static void free_chain(void *p)
{
	struct block *b = p;
	while (b) {
		struct block *next = b->next;
		free(b);
		b = next;
	}
}

static void make_exit_key(void)
{
	pthread_key_create(&exit_key, free_chain);
}

static void *arena_malloc(size_t n)
{
	if (!active)
		return malloc(n);
	n = (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
	if (!head || head->size - head->used < n) {
		size_t size = n > BLOCK_SIZE ? n : BLOCK_SIZE;
		struct block *b = malloc(sizeof(*b) + size);
		if (!b)
			return NULL;
		b->next = head;
		b->size = size;
		b->used = 0;
		if (!head) /* the thread's first block: freed when the thread exits */
			pthread_setspecific(exit_key, b);
		head = b;
	}
	void *p = head->data + head->used;
	head->used += n;
	return p;
}

static void arena_free(void *p)
{
	if (!active)
		free(p);
}

void base_json_arena_install(void)
{
	pthread_once(&exit_key_once, make_exit_key);
	json_set_alloc_funcs(arena_malloc, arena_free);
}

void base_json_arena_begin(void)
{
	active = 1;
}

void base_json_arena_end(void)
{
	active = 0;
	/* keep the oldest block, free the rest */
	while (head && head->next) {
		struct block *next = head->next;
		free(head);
		head = next;
	}
	if (head)
		head->used = 0;
}
