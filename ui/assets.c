/* The table of the dashboard's static files.  Its rows come from
 * $(BUILD)/gen/ui/assets_data.inc, which ui/gen_assets.sh writes at build time
 * from ui/web/ (bytes, a gzip variant, content type, ETag), so the files are
 * edited as files and served from memory.  Read-only after start-up: safe from
 * any thread. */
#include "ui/assets.h"

#include <string.h>

#include "base/error.h"

#include "ui/assets_data.inc"

static const size_t asset_count = sizeof(assets) / sizeof(assets[0]);

int ui_asset_find(const char *path, const ui_asset **out)
{
	*out = NULL;
	if (path == NULL)
		return base_error_set(BASE_ENOTFOUND, "no dashboard file at that path");
	if (path[0] == '\0' || strcmp(path, "/") == 0)
		path = "/index.html";
	for (size_t i = 0; i < asset_count; i++) {
		if (strcmp(assets[i].path, path) == 0) {
			*out = &assets[i];
			return 0;
		}
	}
	return base_error_set(BASE_ENOTFOUND, "no dashboard file at that path");
}

size_t ui_asset_count(void)
{
	return asset_count;
}

const ui_asset *ui_asset_at(size_t i)
{
	return i < asset_count ? &assets[i] : NULL;
}
