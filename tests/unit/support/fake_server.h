/* Test support: a node fake server (tests/fake-github/server.js,
 * tests/fake-anthropic/server.js) run as a child process for C tests, and
 * its control endpoints /_fake/<name>. */
#ifndef PERFBOT_TESTS_FAKE_SERVER_H
#define PERFBOT_TESTS_FAKE_SERVER_H

#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

/* Runs argv (argv[0] looked up in PATH) with its stdout on a pipe and reads
 * the first line it prints, its URL, into url (which must then start with
 * http://127.0.0.1:), and when second is non-NULL the next line into it.
 * *pid is the child's (0 when none was started: fake_server_stop it even
 * when this fails).  0 or -1. */
int fake_server_start(pid_t *pid, char *const argv[], char *url, size_t url_cap, char *second, size_t second_cap);

/* SIGTERM to the child and waits for it; pid <= 0: nothing. */
void fake_server_stop(pid_t pid);

/* POST (body non-NULL, JSON) or GET <url>/_fake/<name>; the answer (owned).
 * Fails the calling cmocka test when there is no JSON answer. */
json_t *fake_server_call(const char *url, const char *name, const char *body);

#endif
