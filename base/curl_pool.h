/* libcurl easy handles kept for reuse (their connections and TLS sessions
 * stay warm between requests), and the capped body writer the HTTP clients
 * share.  One handle is used by one thread at a time: take it with
 * base_curl_pool_get, give it back with base_curl_pool_put.  The pool is an
 * embedded struct: base_curl_pool_init / base_curl_pool_dispose.  Any
 * thread. */
#ifndef BASE_CURL_POOL_H
#define BASE_CURL_POOL_H

#include <curl/curl.h>
#include <pthread.h>
#include <stddef.h>

#define BASE_CURL_POOL_MAX 16

typedef struct base_curl_pool {
	pthread_mutex_t mu;
	CURL *handles[BASE_CURL_POOL_MAX];
	int n;
	int max; /* handles kept; more are cleaned up when given back */
} base_curl_pool;

/* Also initialises libcurl once per process.  max is capped at
 * BASE_CURL_POOL_MAX. */
void base_curl_pool_init(base_curl_pool *p, int max);
void base_curl_pool_dispose(base_curl_pool *p);

/* A kept handle or a new one (owned until put back); NULL when libcurl
 * cannot make one.  The caller resets it before use. */
CURL *base_curl_pool_get(base_curl_pool *p);
/* Gives h back (NULL is fine); beyond max it is cleaned up. */
void base_curl_pool_put(base_curl_pool *p, CURL *h);

/* CURLOPT_WRITEFUNCTION appending to the base_buf in CURLOPT_WRITEDATA: a
 * body past the buffer's cap aborts the transfer (CURLE_WRITE_ERROR). */
size_t base_curl_write_buf(char *data, size_t size, size_t n, void *userdata);

#endif
