/* Structured log lines (see log.h).  Configuration is written once before
 * worker threads start and only read afterwards. */
#include "base/log.h"
#include "base/buf.h"
#include "base/error.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static base_log_level min_level = BASE_LOG_INFO;
static int json_format;
static int out_fd = 2;

int base_log_parse_level(base_log_level *out, const char *s)
{
	static const struct { const char *name; base_log_level lvl; } names[] = {
		{ "trace", BASE_LOG_DEBUG }, { "debug", BASE_LOG_DEBUG }, { "info", BASE_LOG_INFO },
		{ "warn", BASE_LOG_WARN },   { "error", BASE_LOG_ERROR }, { "fatal", BASE_LOG_ERROR },
		{ "off", BASE_LOG_OFF },     { "silent", BASE_LOG_OFF },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcasecmp(s, names[i].name) == 0) {
			*out = names[i].lvl;
			return 0;
		}
	}
	return base_error_set(BASE_EINVALID, "expected one of trace, debug, info, warn, error, fatal, off");
}

void base_log_configure(base_log_level min, int json, int fd)
{
	min_level = min;
	json_format = json;
	out_fd = fd;
}

int base_log_enabled(base_log_level lvl)
{
	return lvl >= min_level && lvl != BASE_LOG_OFF;
}

static const char *level_name(base_log_level lvl)
{
	switch (lvl) {
	case BASE_LOG_DEBUG: return "debug";
	case BASE_LOG_INFO: return "info";
	case BASE_LOG_WARN: return "warn";
	default: return "error";
	}
}

/* A value is printed bare in pretty mode when it has no space or quote. */
static int needs_quotes(const char *v)
{
	if (!*v)
		return 1;
	for (; *v; v++)
		if (*v == ' ' || *v == '"' || *v == '=' || (unsigned char)*v < 0x20)
			return 1;
	return 0;
}

void base_log(base_log_level lvl, const char *msg, ...)
{
	if (!base_log_enabled(lvl))
		return;
	struct timespec ts;
	struct tm tm;
	char when[40];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + n, sizeof(when) - n, ".%03ldZ", ts.tv_nsec / 1000000);

	va_list ap;
	va_start(ap, msg);
	base_buf line = BASE_BUF_INIT(64 * 1024);
	if (json_format) {
		json_t *o = json_object();
		json_object_set_new(o, "time", json_string(when));
		json_object_set_new(o, "level", json_string(level_name(lvl)));
		json_object_set_new(o, "msg", json_string(msg));
		const char *k;
		while ((k = va_arg(ap, const char *)) != NULL) {
			const char *v = va_arg(ap, const char *);
			if (v)
				json_object_set_new(o, k, json_string(v));
		}
		char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (s) {
			base_buf_puts(&line, s);
			free(s);
		}
		json_decref(o);
	} else {
		base_buf_printf(&line, "%s %-5s %s", when, level_name(lvl), msg);
		const char *k;
		while ((k = va_arg(ap, const char *)) != NULL) {
			const char *v = va_arg(ap, const char *);
			if (!v)
				continue;
			if (needs_quotes(v)) {
				base_buf_printf(&line, " %s=\"", k);
				for (const char *p = v; *p; p++) {
					if (*p == '"' || *p == '\\')
						base_buf_printf(&line, "\\%c", *p);
					else if ((unsigned char)*p < 0x20)
						base_buf_printf(&line, "\\x%02x", (unsigned char)*p);
					else
						base_buf_put(&line, p, 1);
				}
				base_buf_puts(&line, "\"");
			} else {
				base_buf_printf(&line, " %s=%s", k, v);
			}
		}
	}
	va_end(ap);
	base_buf_puts(&line, "\n");
	ssize_t w = write(out_fd, line.ptr, line.len);
	(void)w;
	base_buf_dispose(&line);
}
