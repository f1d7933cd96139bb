/* UTF-8 helpers for text that came from outside (program output, files,
 * an agent's summary) before it goes into JSON, which must be valid UTF-8. */
#ifndef BASE_UTF8_H
#define BASE_UTF8_H

#include <stddef.h>

/* The length of the longest prefix of s[0..len) that is at most cap bytes
 * and does not end inside a multi-byte sequence. */
size_t base_utf8_cut(const char *s, size_t len, size_t cap);

/* The length of s[0..len) without a multi-byte sequence cut short at its
 * end (what a truncating snprintf may leave). */
size_t base_utf8_whole(const char *s, size_t len);

/* A NUL-terminated copy of s[0..len) that is valid UTF-8: each byte that is
 * not part of a well-formed sequence (and each NUL) becomes U+FFFD.  Owned
 * by the caller; NULL when out of memory.  *out_len (may be NULL) is its
 * length. */
char *base_utf8_clean(const char *s, size_t len, size_t *out_len);

#endif
