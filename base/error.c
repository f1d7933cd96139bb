/* Thread-local last-error state (see error.h).  The only mutable global
 * state in perfbot besides the frozen configuration; each thread has its own
 * copy, so no locking. */
#include "base/error.h"

#include "base/utf8.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_msg[1024];
static _Thread_local int last_code;

int base_error_set(int code, const char *fmt, ...)
{
	/* formatted aside first: callers often add context to the previous
	 * message, passing base_error_last() as an argument */
	char msg[sizeof(last_msg)];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* a long message is cut where a character starts: it often ends up in
	 * JSON (a run's reason, a comment), which must be valid UTF-8 */
	if (n >= (int)sizeof(msg))
		msg[base_utf8_whole(msg, strlen(msg))] = '\0';
	memcpy(last_msg, msg, sizeof(msg));
	last_code = code;
	return code;
}

const char *base_error_last(void)
{
	return last_msg;
}

int base_error_code(void)
{
	return last_code;
}

void base_error_clear(void)
{
	last_msg[0] = '\0';
	last_code = 0;
}

const char *base_error_name(int code)
{
	switch (code) {
	case BASE_OK: return "ok";
	case BASE_ENOTFOUND: return "not found";
	case BASE_EINVALID: return "invalid";
	case BASE_EAUTH: return "authentication failed";
	case BASE_ERETRY: return "retry later";
	case BASE_ETOOBIG: return "too large";
	case BASE_ETIMEOUT: return "timed out";
	case BASE_EEXISTS: return "already exists";
	case BASE_ENOMEM: return "out of memory";
	case BASE_ECANCELLED: return "cancelled";
	case BASE_EFORBIDDEN: return "forbidden";
	default: return "error";
	}
}
