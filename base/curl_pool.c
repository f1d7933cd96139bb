/* A pool of libcurl easy handles and the capped body writer (see
 * curl_pool.h).  The pool's mutex guards only its array. */
#include "base/curl_pool.h"

#include "base/buf.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

void base_curl_pool_init(base_curl_pool *p, int max)
{
	pthread_once(&curl_once, curl_init_once);
	pthread_mutex_init(&p->mu, NULL);
	p->n = 0;
	p->max = max < 0 ? 0 : max > BASE_CURL_POOL_MAX ? BASE_CURL_POOL_MAX : max;
}

void base_curl_pool_dispose(base_curl_pool *p)
{
	for (int i = 0; i < p->n; i++)
		curl_easy_cleanup(p->handles[i]);
	p->n = 0;
	pthread_mutex_destroy(&p->mu);
}

CURL *base_curl_pool_get(base_curl_pool *p)
{
	CURL *h = NULL;
	pthread_mutex_lock(&p->mu);
	if (p->n > 0)
		h = p->handles[--p->n];
	pthread_mutex_unlock(&p->mu);
	return h ? h : curl_easy_init();
}

void base_curl_pool_put(base_curl_pool *p, CURL *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&p->mu);
	if (p->n < p->max) {
		p->handles[p->n++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&p->mu);
	if (h)
		curl_easy_cleanup(h);
}

size_t base_curl_write_buf(char *data, size_t size, size_t n, void *userdata)
{
	base_buf *b = userdata;
	if (base_buf_put(b, data, size * n) < 0)
		return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
	return size * n;
}
