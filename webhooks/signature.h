/* GitHub webhook signatures: X-Hub-Signature-256 = "sha256=" + hex HMAC-SHA256
 * of the raw request body keyed with the webhook secret. */
#ifndef WH_SIGNATURE_H
#define WH_SIGNATURE_H

#include <stddef.h>

#define WH_SIGNATURE_LEN (7 + 64) /* "sha256=" + 64 hex digits */

/* Writes "sha256=<hex>" and a NUL into out (WH_SIGNATURE_LEN + 1 bytes). */
int wh_signature_compute(char *out, const void *body, size_t len, const char *secret);

/* 0 when `header` is a well-formed sha256 signature of body under `secret`
 * or, when non-NULL, `secret_old` (a rotation).  BASE_EAUTH otherwise, with
 * the reason (missing, malformed, mismatch) in base_error_last(); the secrets
 * never appear in it.  Comparison is constant-time. */
int wh_signature_verify(const char *header, const void *body, size_t len, const char *secret, const char *secret_old);

#endif
