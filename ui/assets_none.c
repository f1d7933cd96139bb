/* The dashboard's files when the build has none (ui/assets.c, generated
 * from ui/web/dist, defines UI_HAVE_ASSETS for this file): one page that
 * says so, so that the API can be built and tested alone. */
#include "ui/assets.h"
#include "base/error.h"

#include <string.h>

#ifndef UI_HAVE_ASSETS
static const unsigned char index_html[] =
	"<!doctype html><html><head><meta charset=\"utf-8\"><title>perfbot</title></head>"
	"<body><p>This perfbot was built without the dashboard's pages; its API is at /api/v1/.</p></body></html>\n";

static const ui_asset assets[] = {
	{ "/index.html", "text/html; charset=utf-8", index_html, sizeof(index_html) - 1, "\"none-1\"" },
};

int ui_asset_find(const char *path, const ui_asset **out)
{
	for (size_t i = 0; i < sizeof(assets) / sizeof(assets[0]); i++)
		if (path && strcmp(path, assets[i].path) == 0) {
			*out = &assets[i];
			return 0;
		}
	*out = NULL;
	return base_error_set(BASE_ENOTFOUND, "no such file");
}
#else
/* ISO C wants a translation unit to declare something */
typedef int ui_assets_none_unused;
#endif
