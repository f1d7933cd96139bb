/* The intake benchmark's ceiling: the least an HTTP server on libmicrohttpd
 * can do for a webhook delivery.  It reads the whole body into a buffer of
 * its own (as perfbot does) and answers 202 with a short JSON body, nothing
 * else: no signature, no parsing, no storage.  bench/intake/run.sh builds it
 * and loads it with the same wrk script as perfbot and Probot.
 *
 *   ceiling epoll PORT [THREADS]   epoll, a pool of THREADS event threads
 *                                  (default: one per online core)
 *   ceiling tpc PORT               one thread per connection
 *
 * Runs until SIGTERM / SIGINT. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_BODY ((size_t)25 << 20)

struct body {
	char *ptr;
	size_t len, cap;
};

static const char answer[] = "{\"delivery\":\"00000000-0000-4000-8000-000000000000\",\"status\":\"queued\"}";

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				  const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	(void)cls;
	(void)url;
	(void)method;
	(void)version;
	struct body *b = *con_cls;
	if (!b) {
		b = calloc(1, sizeof(*b));
		if (!b)
			return MHD_NO;
		*con_cls = b;
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		if (b->len + n > MAX_BODY)
			return MHD_NO;
		if (b->len + n > b->cap) {
			size_t cap = b->cap ? b->cap * 2 : 16384;
			while (cap < b->len + n)
				cap *= 2;
			char *p = realloc(b->ptr, cap);
			if (!p)
				return MHD_NO;
			b->ptr = p;
			b->cap = cap;
		}
		memcpy(b->ptr + b->len, upload_data, n);
		b->len += n;
		*upload_data_size = 0;
		return MHD_YES;
	}
	struct MHD_Response *r =
		MHD_create_response_from_buffer(sizeof(answer) - 1, (void *)answer, MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	enum MHD_Result ret = MHD_queue_response(conn, 202, r);
	MHD_destroy_response(r);
	return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)conn;
	(void)toe;
	struct body *b = *con_cls;
	if (b) {
		free(b->ptr);
		free(b);
		*con_cls = NULL;
	}
}

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	if (argc < 3 || (strcmp(argv[1], "epoll") != 0 && strcmp(argv[1], "tpc") != 0)) {
		fprintf(stderr, "usage: ceiling epoll PORT [THREADS] | ceiling tpc PORT\n");
		return 2;
	}
	char *end;
	unsigned long port = strtoul(argv[2], &end, 10);
	if (*end || port == 0 || port > 65535) {
		fprintf(stderr, "ceiling: bad port %s\n", argv[2]);
		return 2;
	}
	long threads = sysconf(_SC_NPROCESSORS_ONLN);
	if (argc > 3) {
		threads = strtol(argv[3], &end, 10);
		if (*end || threads < 1 || threads > 1024) {
			fprintf(stderr, "ceiling: bad thread count %s\n", argv[3]);
			return 2;
		}
	}
	struct sockaddr_in sin;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct MHD_Daemon *d;
	if (strcmp(argv[1], "epoll") == 0)
		d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG, (uint16_t)port, NULL, NULL,
				     on_request, NULL, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
				     MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)threads, MHD_OPTION_CONNECTION_LIMIT,
				     1024u, MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
				     MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
				     MHD_OPTION_END);
	else
		d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
				     (uint16_t)port, NULL, NULL, on_request, NULL, MHD_OPTION_NOTIFY_COMPLETED,
				     on_completed, NULL, MHD_OPTION_CONNECTION_LIMIT, 1024u,
				     MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
				     MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
				     MHD_OPTION_END);
	if (!d) {
		fprintf(stderr, "ceiling: cannot listen on 127.0.0.1:%lu\n", port);
		return 1;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	while (!stop)
		pause();
	MHD_stop_daemon(d);
	return 0;
}
