/* The dashboard's static files (ui/web/), compiled into the binary so that
 * `perfbot serve` serves them with nothing to install. */
#ifndef UI_ASSETS_H
#define UI_ASSETS_H

#include <stddef.h>

typedef struct ui_asset {
	const char *path;                /* under /ui: "/app.js" */
	const char *content_type;        /* with charset for text */
	const unsigned char *bytes;      /* the file */
	size_t len;
	const char *etag;                /* quoted strong ETag: a hash of bytes */
	const unsigned char *gzip;       /* gzip of bytes, or NULL when not smaller */
	size_t gzip_len;
} ui_asset;

/* Finds the file served at /ui + `path` ("/index.html"; "" and "/" are
 * index.html).  *out borrows static data.  Returns 0, or BASE_ENOTFOUND when
 * no file has that path (the caller decides whether that is the page for
 * client-side routing or a 404). */
int ui_asset_find(const char *path, const ui_asset **out);

/* The number of files, and the i-th of them (for listings and tests). */
size_t ui_asset_count(void);
const ui_asset *ui_asset_at(size_t i);

#endif
