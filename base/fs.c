/* Filesystem helpers (see fs.h).  No state. */
#include "base/fs.h"
#include "base/error.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int base_mkdirs(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	int n = snprintf(tmp, sizeof(tmp), "%s", path);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return base_error_set(BASE_EINVALID, "path too long: %.200s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) < 0 && errno != EEXIST)
			return base_error_set(BASE_EGENERIC, "cannot create %s: %s", tmp, strerror(errno));
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return base_error_set(BASE_EGENERIC, "cannot create %s: %s", tmp, strerror(errno));
	return 0;
}

char *base_find_in_path(const char *name)
{
	if (strchr(name, '/'))
		return access(name, X_OK) == 0 ? strdup(name) : NULL;
	const char *p = getenv("PATH");
	if (!p || !*p)
		p = "/usr/local/bin:/usr/bin:/bin";
	while (*p) {
		size_t l = strcspn(p, ":");
		char cand[PATH_MAX];
		if (l > 0 && (size_t)snprintf(cand, sizeof(cand), "%.*s/%s", (int)l, p, name) < sizeof(cand) &&
		    access(cand, X_OK) == 0)
			return strdup(cand);
		p += l;
		if (*p == ':')
			p++;
	}
	return NULL;
}
