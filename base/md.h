/* Markdown for text perfbot did not write (an agent's summary, a diff, a
 * build log) on its way into a GitHub comment, check run or pull request
 * body: shown as the text it is, never as markup.  Leaf utility. */
#ifndef BASE_MD_H
#define BASE_MD_H

#include <stddef.h>

#include "base/buf.h"

/* Appends s[0..len) as plain text: the characters that make links, images,
 * emphasis, code, tables, HTML tags and entities are escaped, and those that
 * start headings, lists and rules at a line's start (so none of these comes
 * out of it), an @ is followed by a zero-width space (no
 * @user or @org/team mention notifies anyone), control characters other
 * than newline and tab are dropped, and leading spaces of a line (an
 * indented code block) become non-breaking.  Returns base_buf's code. */
int base_md_text(base_buf *b, const char *s, size_t len);

/* Appends s[0..len) as a fenced code block with info string `info` (may be
 * NULL): the fence is longer than any run of backticks inside, so nothing
 * in s can close it.  A missing final newline is added. */
int base_md_fence(base_buf *b, const char *info, const char *s, size_t len);

#endif
