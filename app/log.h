/* Structured logging: one line per event, JSON (LOG_FORMAT=json) or a
 * readable "time level msg key=value" line.  Configured once at start-up;
 * thread-safe (each line is one write(2)).  Never pass secrets, tokens or
 * request bodies as values. */
#ifndef APP_LOG_H
#define APP_LOG_H

typedef enum { APP_LOG_DEBUG = 0, APP_LOG_INFO, APP_LOG_WARN, APP_LOG_ERROR, APP_LOG_OFF } app_log_level;

/* "debug" | "info" | "warn" | "error" | "off" (also "trace", "fatal" as Probot spells
 * them); APP_EINVALID otherwise. */
int app_log_parse_level(app_log_level *out, const char *s);

/* Sets the minimum level, the format (json != 0) and the output fd. Call
 * before any thread starts logging. */
void app_log_configure(app_log_level min, int json, int fd);

int app_log_enabled(app_log_level lvl);

/* Logs msg with string key/value pairs ending in NULL; a NULL value skips
 * its key:  app_log(APP_LOG_INFO, "request", "status", "202", NULL); */
void app_log(app_log_level lvl, const char *msg, ...) __attribute__((sentinel));

#endif
