/* `perfbot receive`: signs a payload file exactly as GitHub does and POSTs
 * it with GitHub's headers to a running perfbot, so that a delivery goes
 * through the real verification path.  Prints the status and the answer. */
#include "base/buf.h"
#include "app/cmd.h"
#include "base/error.h"
#include "webhooks/signature.h"

#include <curl/curl.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAYLOAD_CAP (64u << 20)

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	base_buf *b = userdata;
	return base_buf_put(b, ptr, size * nmemb) < 0 ? 0 : size * nmemb;
}

static int read_file(base_buf *out, const char *path)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	if (!f)
		return base_error_set(BASE_ENOTFOUND, "cannot read %s", path);
	char chunk[65536];
	size_t n;
	int error = 0;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if ((error = base_buf_put(out, chunk, n)) < 0)
			break;
	if (f != stdin)
		fclose(f);
	return error;
}

static void uuid4(char out[37])
{
	unsigned char r[16];
	RAND_bytes(r, sizeof(r));
	r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
	r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3],
		 r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15]);
}

int app_cmd_receive(const base_config *cfg, int argc, char **argv)
{
	const char *event = NULL, *file = NULL, *url = NULL, *secret = cfg->webhook_secret, *delivery = NULL;
	static const struct option longopts[] = {
		{ "event", required_argument, NULL, 'e' },  { "payload-path", required_argument, NULL, 'p' },
		{ "url", required_argument, NULL, 'u' },    { "secret", required_argument, NULL, 's' },
		{ "delivery", required_argument, NULL, 'd' }, { NULL, 0, NULL, 0 },
	};
	app_cmd_opts o = { .cmd = "receive", .longopts = longopts, .shortopts = "e:p:s:d:" };
	int c;
	while ((c = app_cmd_getopt(&o, argc, argv, 0)) != APP_CMD_END) {
		switch (c) {
		case 'e': event = optarg; break;
		case 'p': file = optarg; break;
		case 'u': url = optarg; break;
		case 's': secret = optarg; break;
		case 'd': delivery = optarg; break;
		default: return o.status;
		}
	}
	if (!event || !file) {
		fprintf(stderr, "usage: perfbot receive -e EVENT -p PAYLOAD.json [--url URL] [--secret S] [--delivery ID]\n");
		return 2;
	}
	if (!secret) {
		fprintf(stderr, "perfbot receive: no secret: set WEBHOOK_SECRET or pass --secret\n");
		return 2;
	}
	base_buf body = BASE_BUF_INIT(PAYLOAD_CAP), answer = BASE_BUF_INIT(1 << 20);
	int rc = 1;
	struct curl_slist *h = NULL;
	CURL *curl = NULL;
	if (read_file(&body, file) < 0) {
		fprintf(stderr, "perfbot receive: %s\n", base_error_last());
		goto done;
	}
	char sig[WH_SIGNATURE_LEN + 1];
	if (wh_signature_compute(sig, body.ptr, body.len, secret) < 0) {
		fprintf(stderr, "perfbot receive: %s\n", base_error_last());
		goto done;
	}
	char id[37], line[512], target[1024];
	if (!delivery) {
		uuid4(id);
		delivery = id;
	}
	if (!url) {
		const char *host = strcmp(cfg->host, "0.0.0.0") == 0 ? "127.0.0.1" : cfg->host;
		int v6 = strchr(host, ':') != NULL;
		snprintf(target, sizeof(target), "http://%s%s%s:%d%s", v6 ? "[" : "", host, v6 ? "]" : "", cfg->port,
			 cfg->webhook_path);
		url = target;
	}
	snprintf(line, sizeof(line), "X-GitHub-Event: %s", event);
	h = curl_slist_append(h, line);
	snprintf(line, sizeof(line), "X-GitHub-Delivery: %s", delivery);
	h = curl_slist_append(h, line);
	snprintf(line, sizeof(line), "X-Hub-Signature-256: %s", sig);
	h = curl_slist_append(h, line);
	h = curl_slist_append(h, "X-GitHub-Hook-ID: 0");
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "User-Agent: GitHub-Hookshot/perfbot-receive");
	h = curl_slist_append(h, "Expect:");
	curl = curl_easy_init();
	if (!curl || !h)
		goto done;
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_POST, 1L);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.ptr ? body.ptr : "");
	curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body.len);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
	CURLcode cc = curl_easy_perform(curl);
	if (cc != CURLE_OK) {
		fprintf(stderr, "perfbot receive: POST %s: %s\n", url, curl_easy_strerror(cc));
		goto done;
	}
	long status = 0;
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	printf("%ld %s\n", status, base_buf_cstr(&answer));
	rc = status >= 200 && status < 300 ? 0 : 1;
done:
	curl_easy_cleanup(curl);
	curl_slist_free_all(h);
	base_buf_dispose(&body);
	base_buf_dispose(&answer);
	return rc;
}
