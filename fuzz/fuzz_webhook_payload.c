/* libFuzzer target: what is parsed of a signed body, which the intake
 * stores without reading: form decoding, the streaming scan `perfbot
 * deliveries` runs over a stored body, JSON, the common fields and every
 * typed event parser. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "webhooks/event.h"
#include "webhooks/intake.h"
#include "webhooks/payload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *form = NULL;
	size_t flen = 0;
	wh_payload_fields f;
	if (wh_form_payload(&form, &flen, (const char *)data, size) == 0) {
		wh_payload_scan(&f, form, flen);
		wh_payload_dispose(&f);
		free(form);
	}
	wh_payload_scan(&f, (const char *)data, size);
	wh_payload_dispose(&f);
	json_t *root = json_loadb((const char *)data, size, 0, NULL);
	if (!root)
		return 0;
	wh_event_info info;
	wh_event_info_parse(&info, root);
	if (info.action)
		wh_event_is_handled("pull_request", info.action);
	wh_ping ping;
	wh_ping_parse(&ping, root);
	wh_installation inst;
	if (wh_installation_parse(&inst, root) == 0)
		wh_installation_dispose(&inst);
	wh_push push;
	wh_push_parse(&push, root);
	json_decref(root);
	return 0;
}
