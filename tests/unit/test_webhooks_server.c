/* Unit tests: the HTTP front's threading.  With one event thread, a handler
 * that blocks runs on a thread of its own (a quick route still answers
 * meanwhile), and a route that waits through start / submit / finish holds
 * no thread: many of them wait at once and each gets its own answer.  With
 * several event threads, the connections spread over them, and a port
 * another server listens on is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "base/http.h"
#include "webhooks/server.h"

static atomic_int slow_release;

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Blocks until the test releases it (at most 5 s). */
static int slow_handler(const base_http_request *req, base_http_response *resp, void *payload)
{
	(void)req;
	(void)payload;
	for (int i = 0; i < 500 && !atomic_load(&slow_release); i++)
		usleep(10000);
	return base_http_response_json(resp, 200, "{\"slow\":true}");
}

static int fast_handler(const base_http_request *req, base_http_response *resp, void *payload)
{
	(void)req;
	(void)payload;
	return base_http_response_json(resp, 200, "{\"fast\":true}");
}

/* The event threads that started a /later request. */
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t seen[8];
static int nseen;

static void seen_thread(void)
{
	pthread_mutex_lock(&seen_lock);
	int known = 0;
	for (int i = 0; i < nseen; i++)
		known |= pthread_equal(seen[i], pthread_self());
	if (!known && nseen < 8)
		seen[nseen++] = pthread_self();
	pthread_mutex_unlock(&seen_lock);
}

/* A request answered 100 ms later by another thread, with its own query. */
struct later {
	char q[32];
	void (*resume)(void *token);
	void *token;
};

static int later_start(const base_http_request *req, base_http_response *resp, void *payload, void **state)
{
	(void)payload;
	const char *q = base_http_request_query(req, "n");
	if (!q)
		return base_http_response_error(resp, 400, "no n");
	struct later *l = calloc(1, sizeof(*l));
	if (!l)
		return -1;
	snprintf(l->q, sizeof(l->q), "%s", q);
	*state = l;
	seen_thread();
	return 1;
}

static void *later_thread(void *arg)
{
	struct later *l = arg;
	usleep(100000);
	l->resume(l->token);
	return NULL;
}

static void later_submit(void *state, void (*resume)(void *token), void *token)
{
	struct later *l = state;
	l->resume = resume;
	l->token = token;
	pthread_t t;
	if (pthread_create(&t, NULL, later_thread, l) == 0)
		pthread_detach(t);
	else
		resume(token);
}

static int later_finish(void *state, base_http_response *resp)
{
	struct later *l = state;
	char body[64];
	snprintf(body, sizeof(body), "{\"n\":\"%s\"}", l->q);
	free(l);
	return base_http_response_json(resp, 202, body);
}

static size_t collect(char *p, size_t size, size_t n, void *userdata)
{
	char *buf = userdata;
	size_t have = strlen(buf), add = size * n;
	if (have + add < 256) {
		memcpy(buf + have, p, add);
		buf[have + add] = '\0';
	}
	return add;
}

/* GET url: status, body into out (256 bytes). */
static long get(const char *url, char *out)
{
	out[0] = '\0';
	CURL *c = curl_easy_init();
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	long status = 0;
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	return status;
}

static wh_server *start_server_on(int port, int threads, int *error)
{
	wh_server *srv = NULL;
	wh_server_options o = { .host = "127.0.0.1", .port = port, .threads = threads };
	assert_int_equal(wh_server_new(&srv, &o), 0);
	wh_route slow = { .path = "/slow", .handler = slow_handler };
	wh_route fast = { .path = "/fast", .handler = fast_handler, .quick = 1 };
	wh_route later = { .path = "/later", .start = later_start, .submit = later_submit, .finish = later_finish };
	assert_int_equal(wh_server_route(srv, &slow), 0);
	assert_int_equal(wh_server_route(srv, &fast), 0);
	assert_int_equal(wh_server_route(srv, &later), 0);
	if ((*error = wh_server_start(srv)) < 0) {
		wh_server_free(srv);
		return NULL;
	}
	return srv;
}

static wh_server *start_server(void)
{
	int error = 0;
	wh_server *srv = start_server_on(0, 1, &error);
	assert_int_equal(error, 0);
	return srv;
}

struct slow_call {
	char url[64];
	long status;
	char body[256];
};

static void *slow_call_main(void *arg)
{
	struct slow_call *s = arg;
	s->status = get(s->url, s->body);
	return NULL;
}

static void test_blocking_handler_does_not_hold_the_event_thread(void **state)
{
	(void)state;
	wh_server *srv = start_server();
	atomic_store(&slow_release, 0);
	struct slow_call sc;
	memset(&sc, 0, sizeof(sc));
	snprintf(sc.url, sizeof(sc.url), "http://127.0.0.1:%d/slow", wh_server_port(srv));
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, slow_call_main, &sc), 0);
	usleep(200000); /* the slow request is in its handler */
	char url[64], body[256];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/fast", wh_server_port(srv));
	double t0 = now_s();
	assert_int_equal(get(url, body), 200);
	double took = now_s() - t0;
	assert_string_equal(body, "{\"fast\":true}");
	assert_true(took < 1.0); /* not after the slow one (5 s) */
	atomic_store(&slow_release, 1);
	pthread_join(t, NULL);
	assert_int_equal(sc.status, 200);
	assert_string_equal(sc.body, "{\"slow\":true}");
	wh_server_free(srv);
}

#define NLATER 16

struct later_call {
	char url[64];
	long status;
	char body[256];
};

static void *later_call_main(void *arg)
{
	struct later_call *l = arg;
	l->status = get(l->url, l->body);
	return NULL;
}

/* n GET /later?n=i at once, each on its own connection; all answered. */
static void call_later(wh_server *srv, struct later_call *calls, int n)
{
	pthread_t t[32];
	assert_true(n <= 32);
	for (int i = 0; i < n; i++) {
		memset(&calls[i], 0, sizeof(calls[i]));
		snprintf(calls[i].url, sizeof(calls[i].url), "http://127.0.0.1:%d/later?n=%d", wh_server_port(srv), i);
		assert_int_equal(pthread_create(&t[i], NULL, later_call_main, &calls[i]), 0);
	}
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
}

static void test_waiting_requests_hold_no_thread(void **state)
{
	(void)state;
	wh_server *srv = start_server();
	struct later_call calls[NLATER];
	double t0 = now_s();
	call_later(srv, calls, NLATER);
	for (int i = 0; i < NLATER; i++) {
		char want[64];
		snprintf(want, sizeof(want), "{\"n\":\"%d\"}", i);
		assert_int_equal(calls[i].status, 202);
		assert_string_equal(calls[i].body, want);
	}
	/* one after another they would take NLATER x 100 ms */
	assert_true(now_s() - t0 < 0.8 * NLATER * 0.1);
	char url[64], body[256];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/later", wh_server_port(srv));
	assert_int_equal(get(url, body), 400); /* start's own answer */
	assert_int_equal(wh_server_wait_idle(srv, 2000), 0);
	wh_server_free(srv);
}

static void test_event_threads_share_the_port(void **state)
{
	(void)state;
	int error = 0;
	wh_server *srv = start_server_on(0, 4, &error);
	assert_int_equal(error, 0);
	nseen = 0;
	enum { N = 32 };
	struct later_call calls[N];
	call_later(srv, calls, N);
	for (int i = 0; i < N; i++)
		assert_int_equal(calls[i].status, 202);
	/* 32 connections over 4 event threads: all on one is 1 in 2^62 */
	assert_true(nseen > 1);
	/* the port is taken: a second server is refused, as with one thread */
	assert_null(start_server_on(wh_server_port(srv), 4, &error));
	assert_int_equal(error, BASE_EGENERIC);
	assert_non_null(strstr(base_error_last(), "Address already in use"));
	assert_int_equal(wh_server_wait_idle(srv, 2000), 0);
	wh_server_free(srv);
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_blocking_handler_does_not_hold_the_event_thread),
		cmocka_unit_test(test_waiting_requests_hold_no_thread),
		cmocka_unit_test(test_event_threads_share_the_port),
	};
	int rc = cmocka_run_group_tests_name("webhooks_server", tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
