/* Capped byte buffer (see buf.h).  Growth doubles up to the cap so that a
 * buffer filled from the network never exceeds what its owner allowed. */
#include "base/buf.h"
#include "base/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void base_buf_init(base_buf *b, size_t max)
{
	b->ptr = NULL;
	b->len = 0;
	b->alloc = 0;
	b->max = max;
}

void base_buf_dispose(base_buf *b)
{
	if (!b)
		return;
	free(b->ptr);
	b->ptr = NULL;
	b->len = b->alloc = 0;
}

static int grow(base_buf *b, size_t need)
{
	if (need > b->max)
		return base_error_set(BASE_ETOOBIG, "buffer cap of %zu bytes exceeded", b->max);
	if (need + 1 <= b->alloc)
		return 0;
	size_t n = b->alloc ? b->alloc : 256;
	while (n < need + 1)
		n *= 2;
	if (n > b->max + 1)
		n = b->max + 1;
	char *p = realloc(b->ptr, n);
	if (!p)
		return base_error_set(BASE_ENOMEM, "out of memory growing a buffer to %zu bytes", n);
	b->ptr = p;
	b->alloc = n;
	return 0;
}

int base_buf_put(base_buf *b, const void *data, size_t n)
{
	if (n > b->max || b->len > b->max - n)
		return base_error_set(BASE_ETOOBIG, "buffer cap of %zu bytes exceeded", b->max);
	int error = grow(b, b->len + n);
	if (error < 0)
		return error;
	if (n)
		memcpy(b->ptr + b->len, data, n);
	b->len += n;
	b->ptr[b->len] = '\0';
	return 0;
}

int base_buf_puts(base_buf *b, const char *s)
{
	return base_buf_put(b, s, strlen(s));
}

int base_buf_printf(base_buf *b, const char *fmt, ...)
{
	va_list ap;
	char small[512];
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return base_error_set(BASE_EINVALID, "bad format");
	if ((size_t)n < sizeof(small))
		return base_buf_put(b, small, (size_t)n);
	if ((size_t)n > b->max || b->len > b->max - (size_t)n)
		return base_error_set(BASE_ETOOBIG, "buffer cap of %zu bytes exceeded", b->max);
	int error = grow(b, b->len + (size_t)n);
	if (error < 0)
		return error;
	va_start(ap, fmt);
	vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

int base_buf_reserve(base_buf *b, size_t n)
{
	if (n > b->max || b->len > b->max - n)
		return base_error_set(BASE_ETOOBIG, "buffer cap of %zu bytes exceeded", b->max);
	return grow(b, b->len + n);
}

void base_buf_reset(base_buf *b)
{
	b->len = 0;
	if (b->ptr)
		b->ptr[0] = '\0';
}

const char *base_buf_cstr(const base_buf *b)
{
	return b->ptr ? b->ptr : "";
}

char *base_buf_detach(base_buf *b)
{
	char *p = b->ptr;
	if (!p)
		p = calloc(1, 1);
	b->ptr = NULL;
	b->len = b->alloc = 0;
	return p;
}
