/* A growable byte buffer with a hard cap given at init (like curl's dynbuf).
 *
 * Every buffer filled from outside (request bodies, subprocess output, HTTP
 * answers) is a base_buf whose cap is chosen by its owner.  The contents are
 * always NUL-terminated (the NUL is not counted in len). Embedded struct:
 * base_buf_init / base_buf_dispose. */
#ifndef BASE_BUF_H
#define BASE_BUF_H

#include <stddef.h>

typedef struct base_buf {
	char *ptr;      /* NULL until the first byte is added */
	size_t len;     /* bytes used, not counting the trailing NUL */
	size_t alloc;   /* bytes allocated */
	size_t max;     /* hard cap on len */
} base_buf;

#define BASE_BUF_INIT(cap) { NULL, 0, 0, (cap) }

void base_buf_init(base_buf *b, size_t max);
void base_buf_dispose(base_buf *b);

/* Appends n bytes; BASE_ETOOBIG (buffer unchanged) past the cap, BASE_ENOMEM. */
int base_buf_put(base_buf *b, const void *data, size_t n);
int base_buf_puts(base_buf *b, const char *s);
int base_buf_printf(base_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Makes room for n more bytes without changing the contents (capped). */
int base_buf_reserve(base_buf *b, size_t n);

/* Empties the buffer, keeping its allocation. */
void base_buf_reset(base_buf *b);

/* The contents as a string ("" when empty); borrowed. */
const char *base_buf_cstr(const base_buf *b);

/* Hands the contents to the caller (who frees them) and empties the buffer.
 * Never NULL unless out of memory. */
char *base_buf_detach(base_buf *b);

#endif
