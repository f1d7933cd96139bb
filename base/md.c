/* Markdown escaping (see md.h).  Pure functions over caller buffers; any
 * thread. */
#include "base/md.h"

#include <string.h>

/* Characters escaped wherever they are: emphasis, code spans, links and
 * images ([ and ] are enough: without them `(...)` is text), tables,
 * strikethrough and math. */
static const char always[] = "\\`*_[]|~$";
/* Characters escaped only as a line's first non-blank character: headings,
 * block quotes (> is an entity anyway), list items, setext underlines. */
static const char at_start[] = "#+-=";

int base_md_text(base_buf *b, const char *s, size_t len)
{
	int error = 0, line_start = 1;
	for (size_t i = 0; i < len && error == 0; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\n') {
			error = base_buf_put(b, "\n", 1);
			line_start = 1;
			continue;
		}
		if (c == ' ' && line_start) {
			/* no indented code block */
			error = base_buf_puts(b, "&nbsp;");
			continue;
		}
		if (c == '\r' || c == 0x7f || (c < 0x20 && c != '\t'))
			continue;
		if (line_start && c >= '0' && c <= '9') {
			/* "1." or "1)" opens an ordered list */
			size_t d = i;
			while (d < len && s[d] >= '0' && s[d] <= '9')
				d++;
			error = base_buf_put(b, s + i, d - i);
			if (error == 0 && d < len && (s[d] == '.' || s[d] == ')')) {
				error = base_buf_put(b, "\\", 1);
				if (error == 0)
					error = base_buf_put(b, s + d, 1);
				d++;
			}
			i = d - 1;
			line_start = 0;
			continue;
		}
		int first = line_start;
		line_start = 0;
		switch (c) {
		case '<': error = base_buf_puts(b, "&lt;"); break;
		case '>': error = base_buf_puts(b, "&gt;"); break;
		case '&': error = base_buf_puts(b, "&amp;"); break;
		case '@': error = base_buf_puts(b, "@\xe2\x80\x8b"); break; /* U+200B: no mention */
		default:
			if (strchr(always, (int)c) || (first && strchr(at_start, (int)c)))
				error = base_buf_put(b, "\\", 1);
			if (error == 0)
				error = base_buf_put(b, (const char *)&s[i], 1);
		}
	}
	return error;
}

int base_md_fence(base_buf *b, const char *info, const char *s, size_t len)
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
		error = base_buf_put(b, "`", 1);
	if (error == 0 && info)
		error = base_buf_puts(b, info);
	if (error == 0)
		error = base_buf_put(b, "\n", 1);
	if (error == 0 && len)
		error = base_buf_put(b, s, len);
	if (error == 0 && len && s[len - 1] != '\n')
		error = base_buf_put(b, "\n", 1);
	for (size_t k = 0; k < n && error == 0; k++)
		error = base_buf_put(b, "`", 1);
	if (error == 0)
		error = base_buf_put(b, "\n", 1);
	return error;
}
