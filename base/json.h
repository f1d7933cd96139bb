/* Reading fields of jansson objects without repeating the NULL checks: a
 * missing key, a NULL object or a value of another type reads as "absent"
 * (NULL, 0).  Pure; any thread.  Every returned string is borrowed from the
 * object. */
#ifndef BASE_JSON_H
#define BASE_JSON_H

#include <jansson.h>
#include <stdint.h>

/* The string at key, or NULL. */
const char *base_json_str(const json_t *o, const char *key);
/* The integer at key (a real is truncated), or 0. */
int64_t base_json_int(const json_t *o, const char *key);
/* The number at key (integer or real), or 0. */
double base_json_num(const json_t *o, const char *key);

#endif
