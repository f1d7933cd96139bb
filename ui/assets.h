/* The dashboard's static files (the pages, their scripts and styles),
 * compiled into the binary from ui/web/dist by the build.  Read-only
 * tables; any thread. */
#ifndef UI_ASSETS_H
#define UI_ASSETS_H

#include <stddef.h>

typedef struct ui_asset {
	const char *path;          /* "/index.html", "/assets/app.js": the URL path after "/ui" */
	const char *content_type;  /* "text/html; charset=utf-8" */
	const unsigned char *bytes;
	size_t len;
	const char *etag;          /* quoted, e.g. "\"3f2a...\"" */
} ui_asset;

/* The asset at path (borrowed, static), or BASE_ENOTFOUND. */
int ui_asset_find(const char *path, const ui_asset **out);

#endif
