/* Test support: starting, stopping and steering a node fake server from a C
 * test (see fake_server.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

#include "base/buf.h"
#include "tests/unit/support/fake_server.h"

static int read_line(FILE *f, char *out, size_t cap)
{
	if (!fgets(out, (int)cap, f))
		return -1;
	out[strcspn(out, "\r\n")] = '\0';
	return 0;
}

int fake_server_start(pid_t *pid, char *const argv[], char *url, size_t url_cap, char *second, size_t second_cap)
{
	*pid = 0;
	int fds[2];
	if (pipe(fds) != 0)
		return -1;
	pid_t child = fork();
	if (child == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(fds[1]);
	if (child < 0) {
		close(fds[0]);
		return -1;
	}
	*pid = child;
	FILE *f = fdopen(fds[0], "r");
	if (!f) {
		close(fds[0]);
		return -1;
	}
	int rc = read_line(f, url, url_cap);
	if (rc == 0 && second)
		rc = read_line(f, second, second_cap);
	fclose(f);
	if (rc < 0 || strncmp(url, "http://127.0.0.1:", 17) != 0)
		return -1;
	return 0;
}

void fake_server_stop(pid_t pid)
{
	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
	}
}

static size_t collect(char *data, size_t size, size_t n, void *userdata)
{
	return base_buf_put(userdata, data, size * n) == 0 ? size * n : 0;
}

json_t *fake_server_call(const char *url, const char *name, const char *body)
{
	char full[512];
	snprintf(full, sizeof(full), "%s/_fake/%s", url, name);
	base_buf b = BASE_BUF_INIT(64u << 20);
	CURL *h = curl_easy_init();
	struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_setopt(h, CURLOPT_URL, full);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	if (body)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	CURLcode rc = curl_easy_perform(h);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	json_t *j = rc == CURLE_OK ? json_loadb(b.ptr, b.len, JSON_DECODE_ANY, NULL) : NULL;
	base_buf_dispose(&b);
	assert_non_null(j);
	return j;
}
