/* perfbot error convention.
 *
 * A function that can fail returns int: 0 on success or one of the negative
 * codes below.  The failing site records one line of context with
 * app_error_set(); callers pass the code up unchanged.  The message lives in
 * thread-local storage and stays valid until the next app_error_set() or
 * app_error_clear() on the same thread. */
#ifndef APP_ERROR_H
#define APP_ERROR_H

enum {
	APP_OK = 0,
	APP_EGENERIC = -1,
	APP_ENOTFOUND = -2,
	APP_EINVALID = -3,
	APP_EAUTH = -4,
	APP_ERETRY = -5,   /* transient: try again later */
	APP_ETOOBIG = -6,  /* a cap was hit */
	APP_ETIMEOUT = -7,
	APP_EEXISTS = -8,
	APP_ENOMEM = -9,
	APP_ECANCELLED = -10,
	APP_EFORBIDDEN = -11
};

/* Records a printf-style message for the calling thread; returns `code` so
 * that a site can write `return app_error_set(APP_EINVALID, "...")`. */
int app_error_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The last message recorded on this thread, or "" (never NULL). Borrowed. */
const char *app_error_last(void);

/* The code recorded with the last message on this thread (0 if none). */
int app_error_code(void);

void app_error_clear(void);

/* A short constant name for a code ("invalid", "not found", ...). */
const char *app_error_name(int code);

#endif
