/* A webhook payload checked in one streaming pass (yajl, no tree): a
 * listing of deliveries needs only "is this a JSON object" and the three
 * fields it shows, so it reads them as the bytes go by instead of building
 * a document.  The fields are those wh_event_info_parse takes from
 * a jansson tree (the same values for the same payload, duplicate keys
 * included: the last one wins). */
#ifndef WH_PAYLOAD_H
#define WH_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

typedef struct wh_payload_fields {
	char *action;            /* owned; NULL when absent or not a string */
	int64_t installation_id; /* installation.id; 0 when none */
	char *repository;        /* owned; repository.full_name or NULL */
} wh_payload_fields;

/* 0 with *out filled when bytes are one JSON object; BASE_EINVALID with a
 * reason naming JSON ("malformed JSON at byte N: ...", "the payload is not
 * a JSON object") otherwise; BASE_ENOMEM.  Release with wh_payload_dispose
 * either way. */
int wh_payload_scan(wh_payload_fields *out, const char *bytes, size_t len);
void wh_payload_dispose(wh_payload_fields *f);

#endif
