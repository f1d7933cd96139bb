/* A growable byte buffer with a hard cap given at init (like curl's dynbuf).
 *
 * Every buffer filled from outside (request bodies, subprocess output, HTTP
 * answers) is an app_buf whose cap is chosen by its owner.  The contents are
 * always NUL-terminated (the NUL is not counted in len). Embedded struct:
 * app_buf_init / app_buf_dispose. */
#ifndef APP_BUF_H
#define APP_BUF_H

#include <stddef.h>

typedef struct app_buf {
	char *ptr;      /* NULL until the first byte is added */
	size_t len;     /* bytes used, not counting the trailing NUL */
	size_t alloc;   /* bytes allocated */
	size_t max;     /* hard cap on len */
} app_buf;

#define APP_BUF_INIT(cap) { NULL, 0, 0, (cap) }

void app_buf_init(app_buf *b, size_t max);
void app_buf_dispose(app_buf *b);

/* Appends n bytes; APP_ETOOBIG (buffer unchanged) past the cap, APP_ENOMEM. */
int app_buf_put(app_buf *b, const void *data, size_t n);
int app_buf_puts(app_buf *b, const char *s);
int app_buf_printf(app_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Makes room for n more bytes without changing the contents (capped). */
int app_buf_reserve(app_buf *b, size_t n);

/* Empties the buffer, keeping its allocation. */
void app_buf_reset(app_buf *b);

/* The contents as a string ("" when empty); borrowed. */
const char *app_buf_cstr(const app_buf *b);

/* Hands the contents to the caller (who frees them) and empties the buffer.
 * Never NULL unless out of memory. */
char *app_buf_detach(app_buf *b);

#endif
