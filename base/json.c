/* Field readers for jansson objects (see json.h).  Pure, no state. */
#include "base/json.h"

const char *base_json_str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

int64_t base_json_int(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : json_is_real(v) ? (int64_t)json_real_value(v) : 0;
}

double base_json_num(const json_t *o, const char *key)
{
	return json_number_value(json_object_get(o, key));
}
