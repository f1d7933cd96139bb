/* Declarations shared by the files of pr/ (not part of the public API). */
#ifndef PR_PR_INT_H
#define PR_PR_INT_H

#include <git2.h>
#include <stddef.h>

/* Parses and checks a diff (see pr_diff_check); *out owned by the caller
 * (git_diff_free).  libgit2 must be initialised. */
int pr_diff_parse(git_diff **out, const char *diff, size_t len, size_t max_bytes);

/* The per-delta checks of pr_diff_check on a parsed diff. */
int pr_diff_check_parsed(git_diff *diff);

#endif
