/* The GitHub App's private key and its JWTs.
 *
 * A key is accepted as PEM text, PEM with literal "\n" sequences (as pasted
 * into environment variables), or base64 of the PEM; PKCS#1 ("BEGIN RSA
 * PRIVATE KEY", what GitHub hands out) or PKCS#8.  OpenSSL parses it once
 * and it is kept re-encoded as unencrypted PKCS#8 PEM, the form libjwt takes.
 * Key bytes are wiped before being freed and never appear in a message.
 * A gh_app_key is immutable after loading and may be shared by threads. */
#include "github/github.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "base/buf.h"
#include "base/error.h"

#define MAX_KEY_BYTES (64 * 1024)

struct gh_app_key {
	char *pem;      /* PKCS#8 PEM, NUL-terminated */
	size_t len;
};

void gh_app_key_free(gh_app_key *key)
{
	if (!key)
		return;
	if (key->pem) {
		OPENSSL_cleanse(key->pem, key->len);
		free(key->pem);
	}
	free(key);
}

static int no_password(char *buf, int size, int rwflag, void *u)
{
	(void)buf, (void)size, (void)rwflag, (void)u;
	return 0;
}

/* Turns the configured text into PEM bytes in *pem (owned, wiped by the
 * caller).  Returns 0 or BASE_EINVALID. */
static int to_pem(char **pem, size_t *pem_len, const char *text, size_t len)
{
	*pem = NULL;
	if (memmem(text, len, "-----BEGIN", 10)) {
		char *p = malloc(len + 1);
		if (!p)
			return base_error_set(BASE_ENOMEM, "out of memory");
		size_t n = 0;
		for (size_t i = 0; i < len; i++) {
			if (text[i] == '\\' && i + 1 < len && text[i + 1] == 'n') {
				p[n++] = '\n';
				i++;
			} else if (text[i] == '\\' && i + 1 < len && text[i + 1] == 'r') {
				i++;
			} else {
				p[n++] = text[i];
			}
		}
		p[n] = '\0';
		*pem = p;
		*pem_len = n;
		return 0;
	}
	/* base64 of the PEM: strip whitespace, then decode. */
	char *clean = malloc(len + 1);
	unsigned char *dec = malloc(len + 4);
	int error = 0;
	if (!clean || !dec) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		char ch = text[i];
		if (ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t')
			continue;
		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		      ch == '+' || ch == '/' || ch == '=')) {
			error = base_error_set(BASE_EINVALID, "GitHub App private key is neither PEM nor base64 of a PEM");
			goto done;
		}
		clean[n++] = ch;
	}
	if (n == 0 || n % 4 != 0 || n > INT32_MAX) {
		error = base_error_set(BASE_EINVALID, "GitHub App private key is neither PEM nor base64 of a PEM");
		goto done;
	}
	int dn = EVP_DecodeBlock(dec, (const unsigned char *)clean, (int)n);
	if (dn < 0) {
		error = base_error_set(BASE_EINVALID, "GitHub App private key is not valid base64");
		goto done;
	}
	/* EVP_DecodeBlock counts padding as zero bytes. */
	if (n >= 1 && clean[n - 1] == '=')
		dn--;
	if (n >= 2 && clean[n - 2] == '=')
		dn--;
	if (!memmem(dec, (size_t)dn, "-----BEGIN", 10)) {
		error = base_error_set(BASE_EINVALID, "GitHub App private key: the base64 text does not hold a PEM key");
		goto done;
	}
	dec[dn] = '\0';
	*pem = (char *)dec;
	*pem_len = (size_t)dn;
	dec = NULL;
done:
	if (clean) {
		OPENSSL_cleanse(clean, len + 1);
		free(clean);
	}
	if (dec) {
		OPENSSL_cleanse(dec, len + 4);
		free(dec);
	}
	return error;
}

int gh_app_key_parse(gh_app_key **out, const char *text, size_t len)
{
	int error = 0;
	char *pem = NULL;
	size_t pem_len = 0;
	BIO *in = NULL, *mem = NULL;
	EVP_PKEY *pkey = NULL;
	gh_app_key *key = NULL;

	*out = NULL;
	if (!text || len == 0)
		return base_error_set(BASE_EINVALID, "GitHub App private key is empty");
	if (len > MAX_KEY_BYTES)
		return base_error_set(BASE_EINVALID, "GitHub App private key is too large (%zu bytes)", len);
	if ((error = to_pem(&pem, &pem_len, text, len)) < 0)
		goto done;
	if (!(in = BIO_new_mem_buf(pem, (int)pem_len))) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	pkey = PEM_read_bio_PrivateKey(in, NULL, no_password, NULL);
	if (!pkey) {
		error = base_error_set(BASE_EINVALID,
				      "GitHub App private key does not parse (expected an unencrypted RSA key, PKCS#1 or PKCS#8 PEM)");
		goto done;
	}
	if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA) {
		error = base_error_set(BASE_EINVALID, "GitHub App private key is not an RSA key");
		goto done;
	}
	if (!(mem = BIO_new(BIO_s_mem())) || !PEM_write_bio_PrivateKey(mem, pkey, NULL, NULL, 0, NULL, NULL)) {
		error = base_error_set(BASE_EGENERIC, "GitHub App private key: cannot re-encode it");
		goto done;
	}
	char *data = NULL;
	long n = BIO_get_mem_data(mem, &data);
	if (n <= 0 || !(key = calloc(1, sizeof(*key))) || !(key->pem = malloc((size_t)n + 1))) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	memcpy(key->pem, data, (size_t)n);
	key->pem[n] = '\0';
	key->len = (size_t)n;
	OPENSSL_cleanse(data, (size_t)n);
	*out = key;
	key = NULL;
done:
	ERR_clear_error();
	gh_app_key_free(key);
	EVP_PKEY_free(pkey);
	BIO_free(in);
	BIO_free(mem);
	if (pem) {
		OPENSSL_cleanse(pem, pem_len);
		free(pem);
	}
	return error;
}

static int read_key_file(base_buf *b, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return base_error_set(errno == ENOENT ? BASE_ENOTFOUND : BASE_EINVALID,
				     "PRIVATE_KEY_PATH %s: %s", path, strerror(errno));
	int error = 0;
	char chunk[4096];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			error = base_error_set(BASE_EINVALID, "PRIVATE_KEY_PATH %s: %s", path, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		if (base_buf_put(b, chunk, (size_t)n) < 0) {
			error = base_error_set(BASE_EINVALID, "PRIVATE_KEY_PATH %s: file too large for a key", path);
			break;
		}
	}
	OPENSSL_cleanse(chunk, sizeof(chunk));
	close(fd);
	return error;
}

int gh_app_key_load(gh_app_key **out, const base_config *cfg)
{
	*out = NULL;
	if (cfg->private_key && cfg->private_key[0]) {
		int error = gh_app_key_parse(out, cfg->private_key, strlen(cfg->private_key));
		if (error < 0)
			return base_error_set(error, "PRIVATE_KEY: %s", base_error_last());
		return 0;
	}
	if (cfg->private_key_path && cfg->private_key_path[0]) {
		base_buf b = BASE_BUF_INIT(MAX_KEY_BYTES);
		int error = read_key_file(&b, cfg->private_key_path);
		if (error == 0) {
			error = gh_app_key_parse(out, base_buf_cstr(&b), b.len);
			if (error < 0)
				base_error_set(error, "PRIVATE_KEY_PATH %s: %s", cfg->private_key_path, base_error_last());
		}
		if (b.ptr)
			OPENSSL_cleanse(b.ptr, b.alloc);
		base_buf_dispose(&b);
		return error;
	}
	return base_error_set(BASE_ENOTFOUND, "no GitHub App private key configured (PRIVATE_KEY or PRIVATE_KEY_PATH)");
}

int gh_app_jwt(char **out, const gh_app_key *key, const char *app_id, time_t now)
{
	int error = 0;
	jwt_t *jwt = NULL;
	*out = NULL;
	if (!key)
		return base_error_set(BASE_EAUTH, "no GitHub App private key configured (PRIVATE_KEY or PRIVATE_KEY_PATH)");
	if (!app_id || !app_id[0])
		return base_error_set(BASE_EAUTH, "APP_ID is not set");
	if (jwt_new(&jwt) != 0 || jwt_add_grant_int(jwt, "iat", (long)now - 60) != 0 ||
	    jwt_add_grant_int(jwt, "exp", (long)now + 9 * 60) != 0 || jwt_add_grant(jwt, "iss", app_id) != 0 ||
	    jwt_set_alg(jwt, JWT_ALG_RS256, (const unsigned char *)key->pem, (int)key->len) != 0) {
		error = base_error_set(BASE_EGENERIC, "cannot build the App JWT");
		goto done;
	}
	if (!(*out = jwt_encode_str(jwt)))
		error = base_error_set(BASE_EGENERIC, "cannot sign the App JWT");
done:
	ERR_clear_error();
	jwt_free(jwt);
	return error;
}
