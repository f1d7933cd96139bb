/* The URL GitHub is given to reach perfbot (PUBLIC_URL, and the webhook URL
 * built from it) and whether GitHub can reach it.  Addresses and names are
 * classified as written: nothing is resolved, so a public name that points
 * at a private address still counts as public.  Leaf utility. */
#ifndef BASE_URL_H
#define BASE_URL_H

#include <stddef.h>

typedef struct base_url {
	char scheme[8];   /* "http" or "https" */
	char host[256];   /* lower case, no trailing dot; an IPv6 address without brackets */
	int port;         /* 0: none written (the scheme's default) */
	char path[256];   /* "" or a prefix such as "/perfbot", never ending in '/' */
} base_url;

/* Parses where perfbot is served: http(s)://host[:port][/prefix], with no
 * user name, query or fragment, a host that is a name, a dotted-quad IPv4
 * address or a bracketed IPv6 address, and a plain path (no "." or ".."
 * segment).  A trailing '/' is dropped.  BASE_EINVALID with the reason (a
 * sentence for the person who typed it) otherwise. */
int base_url_parse(base_url *out, const char *text);

/* Writes u back, normalised ("https://perfbot.example.com:8443/x"):
 * out_len bytes at most, NUL included.  BASE_ETOOBIG when it does not fit. */
int base_url_format(char *out, size_t out_len, const base_url *u);

typedef enum base_host_kind {
	BASE_HOST_PUBLIC = 0,
	BASE_HOST_LOOPBACK,     /* 127.0.0.0/8, ::1, localhost, *.localhost */
	BASE_HOST_PRIVATE,      /* RFC 1918, fc00::/7 (unique local), fec0::/10 */
	BASE_HOST_LINK_LOCAL,   /* 169.254.0.0/16, fe80::/10 */
	BASE_HOST_CGNAT,        /* 100.64.0.0/10 (RFC 6598, shared address space) */
	BASE_HOST_UNSPECIFIED,  /* 0.0.0.0/8, ::: "every interface", nobody's address */
	BASE_HOST_RESERVED,     /* multicast, 240.0.0.0/4, broadcast */
	BASE_HOST_LOCAL_NAME    /* no dot, or under .local, .localdomain, .internal, .lan, .home.arpa */
} base_host_kind;

/* The kind of host (an address or a name, IPv6 without brackets; a
 * trailing dot is ignored). */
base_host_kind base_host_classify(const char *host);

typedef enum base_reach {
	BASE_REACH_OK = 0,       /* https to a public address or name */
	BASE_REACH_NO_TLS,       /* public, but plain http: payloads travel unencrypted */
	BASE_REACH_UNREACHABLE   /* GitHub cannot deliver there */
} base_reach;

/* Whether GitHub can deliver to u; why gets a sentence fragment saying why
 * not ("127.0.0.1 is a loopback address"), "" for BASE_REACH_OK. */
base_reach base_url_reach(const base_url *u, char *why, size_t why_len);

#endif
