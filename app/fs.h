/* Small filesystem helpers shared by the modules. */
#ifndef APP_FS_H
#define APP_FS_H

#include <sys/types.h>

/* mkdir -p: creates path and every missing parent with mode; existing
 * directories are fine.  APP_EINVALID for a path over PATH_MAX, otherwise
 * APP_EGENERIC naming the directory that could not be made. */
int app_mkdirs(const char *path, mode_t mode);

#endif
