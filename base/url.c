/* Parsing PUBLIC_URL and telling whether GitHub can reach it (see url.h).
 *
 * The parser is deliberately narrower than RFC 3986: it accepts what a
 * reverse proxy or a tunnel exposes (scheme, host, port, a path prefix) and
 * refuses, with a reason a person can act on, anything that would make the
 * webhook URL ambiguous (a user name, a query, a fragment, "..", an IPv4
 * address spelled the way only browsers read it, such as 0x7f.1).  The
 * classifier looks at the address or name as written and resolves nothing.
 * Pure functions over caller-owned memory; thread-safe. */
#include "base/url.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/error.h"

#define URL_MAX 512

static int lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static int is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int is_hex(int c)
{
	return is_digit(c) || (lower(c) >= 'a' && lower(c) <= 'f');
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* A host name: dot-separated labels of letters, digits, '-' and '_', each
 * 1 to 63 long and not starting or ending with '-'.  A name whose last
 * label is numeric is an IPv4 address in a spelling only browsers read
 * (127.1, 0x7f.0.0.1): refused, since perfbot and a browser would disagree
 * on where it points. */
static int check_name(const char *h)
{
	size_t n = strlen(h);
	if (n > 253)
		return base_error_set(BASE_EINVALID, "the host name is longer than 253 characters");
	const char *label = h;
	for (;;) {
		size_t len = strcspn(label, ".");
		if (len == 0 || len > 63)
			return base_error_set(BASE_EINVALID, "the host name \"%s\" has an empty or overlong part", h);
		if (label[0] == '-' || label[len - 1] == '-')
			return base_error_set(BASE_EINVALID, "a part of the host name \"%s\" starts or ends with '-'", h);
		for (size_t i = 0; i < len; i++) {
			int c = label[i];
			if (!(is_digit(c) || (c >= 'a' && c <= 'z') || c == '-' || c == '_'))
				return base_error_set(BASE_EINVALID,
						      "the host name \"%s\" may hold only letters, digits, '-', '_' and dots "
						      "(write an international name in its xn-- form)",
						      h);
		}
		if (label[len] == '\0') {
			int numeric = strspn(label, "0123456789") == len ||
				      (len > 2 && label[0] == '0' && label[1] == 'x' && strspn(label + 2, "0123456789abcdef") == len - 2);
			if (numeric)
				return base_error_set(BASE_EINVALID,
						      "\"%s\" is not an IPv4 address written as four decimal numbers (a.b.c.d)", h);
			return 0;
		}
		label += len + 1;
	}
}

/* The path after the authority: "" or a prefix of plain segments. */
static int check_path(char *out, size_t out_len, const char *p, size_t len)
{
	while (len > 0 && p[len - 1] == '/')
		len--;
	if (len >= out_len)
		return base_error_set(BASE_EINVALID, "the URL's path is longer than %zu characters", out_len - 1);
	for (size_t i = 0; i < len; i++) {
		int c = p[i];
		if (c == '%') {
			if (i + 2 >= len || !is_hex(p[i + 1]) || !is_hex(p[i + 2]))
				return base_error_set(BASE_EINVALID, "the URL's path has a '%%' not followed by two hex digits");
			continue;
		}
		if (!(is_digit(c) || (lower(c) >= 'a' && lower(c) <= 'z') || strchr("-._~/", c)))
			return base_error_set(BASE_EINVALID,
					      "the URL may have a path prefix such as /perfbot (letters, digits, - . _ ~ /), "
					      "nothing more; '%c' is not allowed",
					      c);
	}
	/* segments: none empty, none "." or ".." */
	for (size_t i = 0; i < len;) {
		size_t j = i + 1;
		while (j < len && p[j] != '/')
			j++;
		size_t seg = j - i - 1;
		const char *s = p + i + 1;
		if (seg == 0 || (seg == 1 && s[0] == '.') || (seg == 2 && s[0] == '.' && s[1] == '.'))
			return base_error_set(BASE_EINVALID, "the URL's path has an empty, \".\" or \"..\" part");
		i = j;
	}
	memcpy(out, p, len);
	out[len] = '\0';
	return 0;
}

int base_url_parse(base_url *out, const char *text)
{
	memset(out, 0, sizeof(*out));
	if (!text || !*text)
		return base_error_set(BASE_EINVALID, "no URL given");
	size_t n = strlen(text);
	if (n > URL_MAX)
		return base_error_set(BASE_EINVALID, "the URL is longer than %d characters", URL_MAX);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)text[i] <= ' ' || (unsigned char)text[i] >= 0x7f)
			return base_error_set(BASE_EINVALID,
					      "the URL may hold only printable ASCII characters, no spaces "
					      "(write an international name in its xn-- form)");
	const char *rest;
	if (strncasecmp(text, "https://", 8) == 0) {
		memcpy(out->scheme, "https", 6);
		rest = text + 8;
	} else if (strncasecmp(text, "http://", 7) == 0) {
		memcpy(out->scheme, "http", 5);
		rest = text + 7;
	} else {
		return base_error_set(BASE_EINVALID, "the URL must start with https:// (or http://)");
	}
	if (strchr(rest, '?'))
		return base_error_set(BASE_EINVALID, "the URL must not have a query (?...)");
	if (strchr(rest, '#'))
		return base_error_set(BASE_EINVALID, "the URL must not have a fragment (#...)");
	size_t alen = strcspn(rest, "/");
	const char *path = rest + alen;
	if (memchr(rest, '@', alen))
		return base_error_set(BASE_EINVALID, "the URL must not hold a user name or password (user@...)");
	if (memchr(rest, '\\', alen))
		return base_error_set(BASE_EINVALID, "the URL's host must not hold a backslash");

	/* host, then an optional :port */
	const char *port = NULL;
	size_t hlen;
	if (alen > 0 && rest[0] == '[') {
		const char *close = memchr(rest, ']', alen);
		if (!close)
			return base_error_set(BASE_EINVALID, "the URL's IPv6 address has no closing ']'");
		hlen = (size_t)(close - rest) - 1;
		if (hlen == 0 || hlen >= sizeof(out->host))
			return base_error_set(BASE_EINVALID, "the URL's IPv6 address is empty or too long");
		for (size_t i = 0; i < hlen; i++)
			out->host[i] = (char)lower(rest[1 + i]);
		out->host[hlen] = '\0';
		unsigned char a6[16];
		if (strchr(out->host, '%') || inet_pton(AF_INET6, out->host, a6) != 1)
			return base_error_set(BASE_EINVALID, "[%s] is not an IPv6 address", out->host);
		const char *after = close + 1;
		if (after < rest + alen) {
			if (*after != ':')
				return base_error_set(BASE_EINVALID, "the URL has text after its IPv6 address");
			port = after + 1;
		}
	} else {
		const char *colon = memchr(rest, ':', alen);
		hlen = colon ? (size_t)(colon - rest) : alen;
		if (hlen == 0)
			return base_error_set(BASE_EINVALID, "the URL has no host");
		if (hlen >= sizeof(out->host))
			return base_error_set(BASE_EINVALID, "the URL's host is too long");
		for (size_t i = 0; i < hlen; i++)
			out->host[i] = (char)lower(rest[i]);
		out->host[hlen] = '\0';
		if (hlen > 1 && out->host[hlen - 1] == '.')
			out->host[--hlen] = '\0';
		struct in_addr a4;
		if (inet_pton(AF_INET, out->host, &a4) != 1) {
			int error = check_name(out->host);
			if (error < 0)
				return error;
		}
		if (colon)
			port = colon + 1;
	}
	if (port) {
		size_t plen = (size_t)(rest + alen - port);
		if (plen == 0 || plen > 5 || strspn(port, "0123456789") < plen)
			return base_error_set(BASE_EINVALID, "the URL's port must be a number from 1 to 65535");
		int v = 0;
		for (size_t i = 0; i < plen; i++)
			v = v * 10 + (port[i] - '0');
		if (v < 1 || v > 65535)
			return base_error_set(BASE_EINVALID, "the URL's port must be a number from 1 to 65535");
		out->port = v;
	}
	return check_path(out->path, sizeof(out->path), path, strlen(path));
}

int base_url_format(char *out, size_t out_len, const base_url *u)
{
	int v6 = strchr(u->host, ':') != NULL;
	char port[16] = "";
	if (u->port)
		snprintf(port, sizeof(port), ":%d", u->port);
	int n = snprintf(out, out_len, "%s://%s%s%s%s%s", u->scheme, v6 ? "[" : "", u->host, v6 ? "]" : "", port, u->path);
	if (n < 0 || (size_t)n >= out_len)
		return base_error_set(BASE_ETOOBIG, "the URL is too long");
	return 0;
}

static base_host_kind classify_v4(const unsigned char a[4])
{
	if (a[0] == 0)
		return BASE_HOST_UNSPECIFIED;
	if (a[0] == 127)
		return BASE_HOST_LOOPBACK;
	if (a[0] == 10 || (a[0] == 172 && (a[1] & 0xf0) == 16) || (a[0] == 192 && a[1] == 168))
		return BASE_HOST_PRIVATE;
	if (a[0] == 169 && a[1] == 254)
		return BASE_HOST_LINK_LOCAL;
	if (a[0] == 100 && (a[1] & 0xc0) == 64)
		return BASE_HOST_CGNAT;
	if (a[0] >= 224)
		return BASE_HOST_RESERVED;
	return BASE_HOST_PUBLIC;
}

static base_host_kind classify_v6(const unsigned char a[16])
{
	static const unsigned char zero[16], mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	if (memcmp(a, zero, 15) == 0 && (a[15] == 0 || a[15] == 1))
		return a[15] == 0 ? BASE_HOST_UNSPECIFIED : BASE_HOST_LOOPBACK;
	if (memcmp(a, mapped, 12) == 0)
		return classify_v4(a + 12);
	if ((a[0] & 0xfe) == 0xfc)
		return BASE_HOST_PRIVATE;
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
		return BASE_HOST_LINK_LOCAL;
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0)
		return BASE_HOST_PRIVATE;
	if (a[0] == 0xff)
		return BASE_HOST_RESERVED;
	return BASE_HOST_PUBLIC;
}

base_host_kind base_host_classify(const char *host)
{
	char h[256];
	size_t n = host ? strlen(host) : 0;
	if (n == 0 || n >= sizeof(h))
		return n == 0 ? BASE_HOST_UNSPECIFIED : BASE_HOST_LOCAL_NAME;
	for (size_t i = 0; i <= n; i++)
		h[i] = (char)lower(host[i]);
	if (n > 2 && h[0] == '[' && h[n - 1] == ']') {
		memmove(h, h + 1, n - 2);
		h[n -= 2] = '\0';
	}
	if (n > 1 && h[n - 1] == '.')
		h[--n] = '\0';
	unsigned char a[16];
	if (inet_pton(AF_INET, h, a) == 1)
		return classify_v4(a);
	if (inet_pton(AF_INET6, h, a) == 1)
		return classify_v6(a);
	if (strcmp(h, "localhost") == 0 || ends_with(h, ".localhost"))
		return BASE_HOST_LOOPBACK;
	if (!strchr(h, '.'))
		return BASE_HOST_LOCAL_NAME;
	static const char *const local_suffixes[] = { ".local", ".localdomain", ".internal", ".lan", ".home.arpa" };
	for (size_t i = 0; i < sizeof(local_suffixes) / sizeof(local_suffixes[0]); i++)
		if (ends_with(h, local_suffixes[i]))
			return BASE_HOST_LOCAL_NAME;
	return BASE_HOST_PUBLIC;
}

base_reach base_url_reach(const base_url *u, char *why, size_t why_len)
{
	base_host_kind k = base_host_classify(u->host);
	const char *what = NULL;
	switch (k) {
	case BASE_HOST_PUBLIC: break;
	case BASE_HOST_LOOPBACK: what = "a loopback address: only this machine reaches it"; break;
	case BASE_HOST_PRIVATE: what = "a private network address"; break;
	case BASE_HOST_LINK_LOCAL: what = "a link-local address"; break;
	case BASE_HOST_CGNAT: what = "a carrier-grade NAT address, not reachable from the internet"; break;
	case BASE_HOST_UNSPECIFIED: what = "not an address anyone can send to (it means every interface)"; break;
	case BASE_HOST_RESERVED: what = "not an internet unicast address"; break;
	case BASE_HOST_LOCAL_NAME: what = "a local name that the internet cannot resolve"; break;
	}
	if (what) {
		if (why_len)
			snprintf(why, why_len, "%s is %s", u->host[0] ? u->host : "the host", what);
		return BASE_REACH_UNREACHABLE;
	}
	if (strcmp(u->scheme, "https") != 0) {
		if (why_len)
			snprintf(why, why_len, "http:// is not encrypted: GitHub would send every payload in the clear");
		return BASE_REACH_NO_TLS;
	}
	if (why_len)
		why[0] = '\0';
	return BASE_REACH_OK;
}
