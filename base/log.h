/* Structured logging: one line per event, JSON (LOG_FORMAT=json) or a
 * readable "time level msg key=value" line.  Configured once at start-up;
 * thread-safe (each line is one write(2)).  Never pass secrets, tokens or
 * request bodies as values. */
#ifndef BASE_LOG_H
#define BASE_LOG_H

typedef enum { BASE_LOG_DEBUG = 0, BASE_LOG_INFO, BASE_LOG_WARN, BASE_LOG_ERROR, BASE_LOG_OFF } base_log_level;

/* "debug" | "info" | "warn" | "error" | "off" (also "trace", "fatal" as Probot spells
 * them); BASE_EINVALID otherwise. */
int base_log_parse_level(base_log_level *out, const char *s);

/* Sets the minimum level, the format (json != 0) and the output fd. Call
 * before any thread starts logging. */
void base_log_configure(base_log_level min, int json, int fd);

int base_log_enabled(base_log_level lvl);

/* Logs msg with string key/value pairs ending in NULL; a NULL value skips
 * its key:  base_log(BASE_LOG_INFO, "request", "status", "202", NULL); */
void base_log(base_log_level lvl, const char *msg, ...) __attribute__((sentinel));

#endif
