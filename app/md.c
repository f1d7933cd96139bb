/* Markdown escaping (see md.h).  Pure functions over caller buffers; any
 * thread. */
#include "app/md.h"

#include <string.h>

int app_md_text(app_buf *b, const char *s, size_t len)
{
	int error = 0, line_start = 1;
	for (size_t i = 0; i < len && error == 0; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\n') {
			error = app_buf_put(b, "\n", 1);
			line_start = 1;
			continue;
		}
		if (c == ' ' && line_start) {
			error = app_buf_puts(b, "&nbsp;");
			continue;
		}
		line_start = 0;
		if (c == '\r' || c == 0x7f || (c < 0x20 && c != '\t'))
			continue;
		switch (c) {
		case '<': error = app_buf_puts(b, "&lt;"); break;
		case '>': error = app_buf_puts(b, "&gt;"); break;
		case '&': error = app_buf_puts(b, "&amp;"); break;
		case '@': error = app_buf_puts(b, "@\xe2\x80\x8b"); break; /* U+200B: no mention */
		default:
			if (strchr("\\`*_{}[]()#+-.!|~=:\"'$%^", (int)c))
				error = app_buf_put(b, "\\", 1);
			if (error == 0)
				error = app_buf_put(b, (const char *)&s[i], 1);
		}
	}
	return error;
}

int app_md_fence(app_buf *b, const char *info, const char *s, size_t len)
{
	size_t longest = 0, run = 0;
	for (size_t i = 0; i < len; i++) {
		run = s[i] == '`' ? run + 1 : 0;
		if (run > longest)
			longest = run;
	}
	size_t n = longest < 3 ? 3 : longest + 1;
	int error = 0;
	for (size_t k = 0; k < n && error == 0; k++)
		error = app_buf_put(b, "`", 1);
	if (error == 0 && info)
		error = app_buf_puts(b, info);
	if (error == 0)
		error = app_buf_put(b, "\n", 1);
	if (error == 0 && len)
		error = app_buf_put(b, s, len);
	if (error == 0 && len && s[len - 1] != '\n')
		error = app_buf_put(b, "\n", 1);
	for (size_t k = 0; k < n && error == 0; k++)
		error = app_buf_put(b, "`", 1);
	if (error == 0)
		error = app_buf_put(b, "\n", 1);
	return error;
}
