/* Private declarations shared by the files of github/. */
#ifndef GH_INT_H
#define GH_INT_H

#include "base/buf.h"
#include "github/github.h"

/* Appends s percent-encoded for a URL path segment (keep_slash: '/' kept,
 * for file paths). */
int gh__url_escape(base_buf *b, const char *s, int keep_slash);

/* Redelivery GUIDs already requested by this client: 1 if guid was added
 * now, 0 if it was there already, negative on error. */
int gh__redelivery_mark(gh_client *c, const char *guid);

/* Removes guid again (a request that failed). */
void gh__redelivery_unmark(gh_client *c, const char *guid);

int gh__max_pages(const gh_client *c);

#endif
