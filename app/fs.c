/* Filesystem helpers (see fs.h).  No state. */
#include "app/fs.h"
#include "app/error.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int app_mkdirs(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	int n = snprintf(tmp, sizeof(tmp), "%s", path);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return app_error_set(APP_EINVALID, "path too long: %.200s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) < 0 && errno != EEXIST)
			return app_error_set(APP_EGENERIC, "cannot create %s: %s", tmp, strerror(errno));
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return app_error_set(APP_EGENERIC, "cannot create %s: %s", tmp, strerror(errno));
	return 0;
}
