/* Small filesystem helpers shared by the modules. */
#ifndef BASE_FS_H
#define BASE_FS_H

#include <sys/types.h>

/* mkdir -p: creates path and every missing parent with mode; existing
 * directories are fine.  BASE_EINVALID for a path over PATH_MAX, otherwise
 * BASE_EGENERIC naming the directory that could not be made. */
int base_mkdirs(const char *path, mode_t mode);

/* The executable `name` as a path: name itself when it holds a slash and is
 * executable, else the first executable PATH entry (PATH unset or empty:
 * /usr/local/bin:/usr/bin:/bin).  Owned (free()); NULL when there is none. */
char *base_find_in_path(const char *name);

#endif
