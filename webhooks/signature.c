/* Webhook signature check (see signature.h).  The header is decoded to raw
 * bytes first, so the comparison is a fixed-length CRYPTO_memcmp over 32
 * bytes whatever the input; parsing never depends on the secret. */
#include "webhooks/signature.h"
#include "base/error.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

static int mac(unsigned char out[32], const void *body, size_t len, const char *secret)
{
	unsigned int n = 0;
	if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), body ? body : (const void *)"", len, out, &n) || n != 32)
		return base_error_set(BASE_EGENERIC, "HMAC-SHA256 failed");
	return 0;
}

int wh_signature_compute(char *out, const void *body, size_t len, const char *secret)
{
	unsigned char m[32];
	int error = mac(m, body, len, secret);
	if (error < 0)
		return error;
	static const char hex[] = "0123456789abcdef";
	memcpy(out, "sha256=", 7);
	for (int i = 0; i < 32; i++) {
		out[7 + 2 * i] = hex[m[i] >> 4];
		out[8 + 2 * i] = hex[m[i] & 15];
	}
	out[WH_SIGNATURE_LEN] = '\0';
	OPENSSL_cleanse(m, sizeof(m));
	return 0;
}

static int unhex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int wh_signature_verify(const char *header, const void *body, size_t len, const char *secret, const char *secret_old)
{
	if (!header || !*header)
		return base_error_set(BASE_EAUTH, "missing X-Hub-Signature-256");
	if (strncmp(header, "sha256=", 7) != 0)
		return base_error_set(BASE_EAUTH, "X-Hub-Signature-256 is not a sha256 signature");
	if (strlen(header) != WH_SIGNATURE_LEN)
		return base_error_set(BASE_EAUTH, "X-Hub-Signature-256 has the wrong length");
	unsigned char want[32];
	for (int i = 0; i < 32; i++) {
		int hi = unhex((unsigned char)header[7 + 2 * i]), lo = unhex((unsigned char)header[8 + 2 * i]);
		if (hi < 0 || lo < 0)
			return base_error_set(BASE_EAUTH, "X-Hub-Signature-256 is not hexadecimal");
		want[i] = (unsigned char)(hi << 4 | lo);
	}
	unsigned char got[32];
	int error;
	int ok = 0;
	if (secret) {
		if ((error = mac(got, body, len, secret)) < 0)
			return error;
		ok |= CRYPTO_memcmp(got, want, 32) == 0;
	}
	if (secret_old) {
		if ((error = mac(got, body, len, secret_old)) < 0)
			return error;
		ok |= CRYPTO_memcmp(got, want, 32) == 0;
	}
	OPENSSL_cleanse(got, sizeof(got));
	if (!ok)
		return base_error_set(BASE_EAUTH, "signature does not match");
	return 0;
}
