/* UTF-8 helpers; see utf8.h.  Well-formed means RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF. */
#include "base/utf8.h"

#include <stdlib.h>
#include <string.h>

/* The length of the well-formed sequence at s (n bytes left), or 0. */
static size_t seq_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	if (c >= 0x01 && c <= 0x7f)
		return 1;
	size_t need;
	unsigned char lo = 0x80, hi = 0xbf;
	if (c >= 0xc2 && c <= 0xdf) {
		need = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else {
		return 0;
	}
	if (n < need || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < need; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return need;
}

size_t base_utf8_cut(const char *s, size_t len, size_t cap)
{
	if (len <= cap)
		return len;
	size_t n = cap;
	/* step back over continuation bytes to the start of the last sequence */
	size_t back = 0;
	while (n > 0 && back < 3 && ((unsigned char)s[n] & 0xc0) == 0x80) {
		n--;
		back++;
	}
	return n;
}

size_t base_utf8_whole(const char *s, size_t len)
{
	size_t p = len;
	while (p > 0 && len - p < 4 && ((unsigned char)s[p - 1] & 0xc0) == 0x80)
		p--;
	if (p == 0 || ((unsigned char)s[p - 1] & 0xc0) != 0xc0)
		return len; /* ends in ASCII, or no lead byte close enough */
	p--; /* the lead byte of the last sequence */
	return seq_len((const unsigned char *)s + p, len - p) ? len : p;
}

char *base_utf8_clean(const char *s, size_t len, size_t *out_len)
{
	static const char fffd[] = "\xef\xbf\xbd";
	size_t bad = 0;
	for (size_t i = 0; i < len;) {
		size_t k = seq_len((const unsigned char *)s + i, len - i);
		if (k == 0) {
			bad++;
			i++;
		} else {
			i += k;
		}
	}
	if (len > ((size_t)-1 - 1) / 3)
		return NULL;
	char *out = malloc(len + 2 * bad + 1);
	if (!out)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < len;) {
		size_t k = seq_len((const unsigned char *)s + i, len - i);
		if (k == 0) {
			memcpy(out + o, fffd, 3);
			o += 3;
			i++;
		} else {
			memcpy(out + o, s + i, k);
			o += k;
			i += k;
		}
	}
	out[o] = '\0';
	if (out_len)
		*out_len = o;
	return out;
}
