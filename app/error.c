/* Thread-local last-error state (see error.h).  The only mutable global
 * state in perfbot besides the frozen configuration; each thread has its own
 * copy, so no locking. */
#include "app/error.h"

#include "app/utf8.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_msg[1024];
static _Thread_local int last_code;

int app_error_set(int code, const char *fmt, ...)
{
	/* formatted aside first: callers often add context to the previous
	 * message, passing app_error_last() as an argument */
	char msg[sizeof(last_msg)];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* a long message is cut where a character starts: it often ends up in
	 * JSON (a run's reason, a comment), which must be valid UTF-8 */
	if (n >= (int)sizeof(msg))
		msg[app_utf8_whole(msg, strlen(msg))] = '\0';
	memcpy(last_msg, msg, sizeof(msg));
	last_code = code;
	return code;
}

const char *app_error_last(void)
{
	return last_msg;
}

int app_error_code(void)
{
	return last_code;
}

void app_error_clear(void)
{
	last_msg[0] = '\0';
	last_code = 0;
}

const char *app_error_name(int code)
{
	switch (code) {
	case APP_OK: return "ok";
	case APP_ENOTFOUND: return "not found";
	case APP_EINVALID: return "invalid";
	case APP_EAUTH: return "authentication failed";
	case APP_ERETRY: return "retry later";
	case APP_ETOOBIG: return "too large";
	case APP_ETIMEOUT: return "timed out";
	case APP_EEXISTS: return "already exists";
	case APP_ENOMEM: return "out of memory";
	case APP_ECANCELLED: return "cancelled";
	case APP_EFORBIDDEN: return "forbidden";
	default: return "error";
	}
}
