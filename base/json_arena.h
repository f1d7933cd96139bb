/* A per-thread bump allocator for jansson, for request-scoped JSON (the
 * webhook intake parses a payload, reads a few fields and drops the tree).
 * Between base_json_arena_begin() and base_json_arena_end() on a thread, every
 * jansson allocation of that thread comes from the thread's arena and every
 * jansson free is a no-op; end() drops everything at once.  Outside that
 * window jansson uses malloc and free as usual.
 *
 * Rule: nothing allocated inside the window may be used or freed after
 * end() (copy what must outlive it). */
#ifndef BASE_JSON_ARENA_H
#define BASE_JSON_ARENA_H

/* Installs the allocator hooks into jansson.  Call once at start-up before
 * any other thread uses jansson; without it begin/end change nothing. */
void base_json_arena_install(void);

void base_json_arena_begin(void);
void base_json_arena_end(void);

#endif
