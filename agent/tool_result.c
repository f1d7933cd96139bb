/* Tool results, argument readers and shell quoting shared by perfbot's
 * tools and the built-in toolset (agent/tool_result.h). */
#include "agent/tool_result.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"

json_t *agent_tool_result(const char *text, size_t len, int is_error, json_t *structured)
{
	char *clean = base_utf8_clean(text, len, NULL);
	json_t *r = clean ? json_pack("{s:[{s:s,s:s}],s:b}", "content", "type", "text", "text", clean, "isError",
				      is_error)
			  : NULL;
	free(clean);
	if (r && structured)
		json_object_set_new(r, "structuredContent", structured);
	else
		json_decref(structured);
	return r;
}

json_t *agent_tool_errorf(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return agent_tool_result(msg, strlen(msg), 1, NULL);
}

int agent_tool_arg_str(const json_t *in, const char *noun, const char *key, int required, const char **out,
		       json_t **err)
{
	json_t *v = json_object_get(in, key);
	*out = NULL;
	if (!v || json_is_null(v)) {
		if (!required)
			return 0;
		*err = agent_tool_errorf("the %s \"%s\" is required", noun, key);
		return -1;
	}
	if (!json_is_string(v)) {
		*err = agent_tool_errorf("the %s \"%s\" must be a string", noun, key);
		return -1;
	}
	*out = json_string_value(v);
	return 0;
}

int agent_tool_arg_int(const json_t *in, const char *noun, const char *key, long long min, long long max,
		       long long *out, json_t **err)
{
	json_t *v = json_object_get(in, key);
	if (!v || json_is_null(v))
		return 0; /* keeps the default in *out */
	long long x;
	if (json_is_integer(v))
		x = json_integer_value(v);
	else if (json_is_real(v) && json_real_value(v) == (double)(long long)json_real_value(v))
		x = (long long)json_real_value(v);
	else {
		*err = agent_tool_errorf("the %s \"%s\" must be an integer", noun, key);
		return -1;
	}
	if (x < min || x > max) {
		*err = agent_tool_errorf("the %s \"%s\" must be between %lld and %lld", noun, key, min, max);
		return -1;
	}
	*out = x;
	return 0;
}

int agent_tool_shell_quote(base_buf *b, const char *s)
{
	if (base_buf_put(b, "'", 1) < 0)
		return -1;
	for (; *s; s++)
		if ((*s == '\'' ? base_buf_puts(b, "'\\''") : base_buf_put(b, s, 1)) < 0)
			return -1;
	return base_buf_put(b, "'", 1);
}
