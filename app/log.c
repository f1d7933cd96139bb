/* Structured log lines (see log.h).  Configuration is written once before
 * worker threads start and only read afterwards. */
#include "app/log.h"
#include "app/buf.h"
#include "app/error.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static app_log_level min_level = APP_LOG_INFO;
static int json_format;
static int out_fd = 2;

int app_log_parse_level(app_log_level *out, const char *s)
{
	static const struct { const char *name; app_log_level lvl; } names[] = {
		{ "trace", APP_LOG_DEBUG }, { "debug", APP_LOG_DEBUG }, { "info", APP_LOG_INFO },
		{ "warn", APP_LOG_WARN },   { "error", APP_LOG_ERROR }, { "fatal", APP_LOG_ERROR },
		{ "off", APP_LOG_OFF },     { "silent", APP_LOG_OFF },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcasecmp(s, names[i].name) == 0) {
			*out = names[i].lvl;
			return 0;
		}
	}
	return app_error_set(APP_EINVALID, "expected one of trace, debug, info, warn, error, fatal, off");
}

void app_log_configure(app_log_level min, int json, int fd)
{
	min_level = min;
	json_format = json;
	out_fd = fd;
}

int app_log_enabled(app_log_level lvl)
{
	return lvl >= min_level && lvl != APP_LOG_OFF;
}

static const char *level_name(app_log_level lvl)
{
	switch (lvl) {
	case APP_LOG_DEBUG: return "debug";
	case APP_LOG_INFO: return "info";
	case APP_LOG_WARN: return "warn";
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

void app_log(app_log_level lvl, const char *msg, ...)
{
	if (!app_log_enabled(lvl))
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
	app_buf line = APP_BUF_INIT(64 * 1024);
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
			app_buf_puts(&line, s);
			free(s);
		}
		json_decref(o);
	} else {
		app_buf_printf(&line, "%s %-5s %s", when, level_name(lvl), msg);
		const char *k;
		while ((k = va_arg(ap, const char *)) != NULL) {
			const char *v = va_arg(ap, const char *);
			if (!v)
				continue;
			if (needs_quotes(v)) {
				app_buf_printf(&line, " %s=\"", k);
				for (const char *p = v; *p; p++) {
					if (*p == '"' || *p == '\\')
						app_buf_printf(&line, "\\%c", *p);
					else if ((unsigned char)*p < 0x20)
						app_buf_printf(&line, "\\x%02x", (unsigned char)*p);
					else
						app_buf_put(&line, p, 1);
				}
				app_buf_puts(&line, "\"");
			} else {
				app_buf_printf(&line, " %s=%s", k, v);
			}
		}
	}
	va_end(ap);
	app_buf_puts(&line, "\n");
	ssize_t w = write(out_fd, line.ptr, line.len);
	(void)w;
	app_buf_dispose(&line);
}
