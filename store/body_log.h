/* The SQLite store's body log: webhook bodies appended to segment files
 * beside the database (<db>-bodies/000001.log, ...) instead of into its
 * pages.  A body then reaches the disk once, in one large write per group
 * commit, where in the database it was written to the WAL page by page and
 * copied again by each checkpoint.  The deliveries row keeps where its body
 * is (segment, offset, length); the committer makes the bodies of a batch
 * durable before the transaction holding their rows commits, so a committed
 * row never points at bytes that are not on disk.  Bytes no committed row
 * points at (a batch that failed, a process killed between the two) are
 * never read and are overwritten or left behind, never misread.
 * Store-internal; one thread appends and syncs (the committer); reads open
 * the file themselves. */
#ifndef STORE_BODY_LOG_H
#define STORE_BODY_LOG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define STORE_BODY_LOG_SEGMENT_MAX ((int64_t)1 << 30) /* the store's: a segment is closed past 1 GiB */

typedef struct store_body_log store_body_log;

/* Opens (creating it 0700 if needed) the log directory dir (copied) and its
 * newest segment; appends go after that segment's end, into a new segment
 * once one would grow past segment_max bytes. */
int store_body_log_open(store_body_log **out, const char *dir, int64_t segment_max);
void store_body_log_free(store_body_log *l);

/* Writes n bodies after the log's end, one after another (not yet
 * durable: see sync), and starts their write-back.  *segment_out is the
 * segment they are in (all in one), offsets[i] where body i starts. */
int store_body_log_append(store_body_log *l, const struct iovec *iov, size_t n, int *segment_out, int64_t *offsets);

/* Makes everything appended so far durable (and a new segment's name).
 * The same in two steps: begin starts it on the log's sync thread and
 * returns; end waits for it and returns its outcome.  Each begin is paired
 * with one end, and no append comes between them. */
int store_body_log_sync(store_body_log *l);
void store_body_log_sync_begin(store_body_log *l);
int store_body_log_sync_end(store_body_log *l);

/* Forgets the last append: the next one starts where it did. */
void store_body_log_rewind(store_body_log *l, int segment, int64_t offset);

/* Reads length bytes at offset of segment under dir into *out (owned,
 * NUL-terminated).  BASE_EGENERIC naming the file when they are not all
 * there. */
int store_body_log_read(const char *dir, int segment, int64_t offset, size_t length, char **out);

/* "<db path>-bodies" into buf; BASE_EINVALID when it does not fit. */
int store_body_log_dir(char *buf, size_t size, const char *db_path);

#endif
