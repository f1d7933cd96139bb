/* perfbot error convention.
 *
 * A function that can fail returns int: 0 on success or one of the negative
 * codes below.  The failing site records one line of context with
 * base_error_set(); callers pass the code up unchanged.  The message lives in
 * thread-local storage and stays valid until the next base_error_set() or
 * base_error_clear() on the same thread. */
#ifndef BASE_ERROR_H
#define BASE_ERROR_H

enum {
	BASE_OK = 0,
	BASE_EGENERIC = -1,
	BASE_ENOTFOUND = -2,
	BASE_EINVALID = -3,
	BASE_EAUTH = -4,
	BASE_ERETRY = -5,   /* transient: try again later */
	BASE_ETOOBIG = -6,  /* a cap was hit */
	BASE_ETIMEOUT = -7,
	BASE_EEXISTS = -8,
	BASE_ENOMEM = -9,
	BASE_ECANCELLED = -10,
	BASE_EFORBIDDEN = -11
};

/* Records a printf-style message for the calling thread; returns `code` so
 * that a site can write `return base_error_set(BASE_EINVALID, "...")`. */
int base_error_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The last message recorded on this thread, or "" (never NULL). Borrowed. */
const char *base_error_last(void);

/* The code recorded with the last message on this thread (0 if none). */
int base_error_code(void);

void base_error_clear(void);

/* A short constant name for a code ("invalid", "not found", ...). */
const char *base_error_name(int code);

#endif
