/* The SQLite store's body log: webhook deliveries appended as records to
 * segment files beside the database (<db>-bodies/000001.log, ...) instead
 * of into its pages.  A delivery then reaches the disk once, in one large
 * write and one fdatasync per batch, where in the database its body was
 * written to the WAL page by page and copied again by each checkpoint.  The
 * deliveries row keeps where its body is (segment, offset, length); the
 * record also holds what the row needs, so the log alone makes a delivery
 * durable and the row can follow.  Store-internal; one thread at a time
 * appends or rewinds, and another may sync beside it; reads open the file
 * themselves. */
#ifndef STORE_BODY_LOG_H
#define STORE_BODY_LOG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define STORE_BODY_LOG_SEGMENT_MAX ((int64_t)1 << 30) /* the store's: a segment is closed past 1 GiB */

typedef struct store_body_log store_body_log;

/* Opens (creating it 0700 if needed) the log directory dir (copied) and its
 * newest segment, for appends after that segment's end, into a new segment
 * once one would grow past segment_max bytes.  One process at a time: the
 * log is locked while open; BASE_EEXISTS when another process still holds
 * it after wait_ms (reads, store_body_log_read, need no lock). */
int store_body_log_open(store_body_log **out, const char *dir, int64_t segment_max, int wait_ms);
void store_body_log_free(store_body_log *l);

/* Writes n bodies after the log's end, one after another (not yet
 * durable: see sync), and starts their write-back.  *segment_out is the
 * segment they are in (all in one), offsets[i] where body i starts. */
int store_body_log_append(store_body_log *l, const struct iovec *iov, size_t n, int *segment_out, int64_t *offsets);

/* Makes everything appended before the call durable (and a new segment's
 * name); may run beside an append. */
int store_body_log_sync(store_body_log *l);

/* Undoes the last append (segment and offset its first body's, as append
 * gave them): the segment is cut there and the next append starts there. */
void store_body_log_rewind(store_body_log *l, int segment, int64_t offset);

/* Reads length bytes at offset of segment under dir into *out (owned,
 * NUL-terminated).  BASE_EGENERIC naming the file when they are not all
 * there. */
int store_body_log_read(const char *dir, int segment, int64_t offset, size_t length, char **out);

/* Records: the log holds each delivery as a record, a fixed head (magic,
 * the lengths of its two parts, the SHA-256 of both) then `meta` (what
 * the store needs to rebuild the delivery's row, its own format) then the
 * body.  A record is whole when its head, lengths and digest agree; a crash
 * can leave only an unwhole tail, which replay stops at. */
#define STORE_BODY_LOG_HEAD 44
#define STORE_BODY_LOG_META_MAX ((size_t)1 << 20) /* a longer meta is not whole: replay stops at it */

/* Fills head (STORE_BODY_LOG_HEAD bytes) for a record of meta and body. */
void store_body_log_head(unsigned char *head, const char *meta, size_t meta_len, const void *body, size_t body_len);

typedef struct store_body_log_record {
	int segment;
	int64_t offset;       /* where the record starts */
	int64_t body_offset;  /* where its body starts */
	const char *meta;     /* meta_len bytes, NUL-terminated; valid during the call */
	size_t meta_len;
	size_t body_len;
} store_body_log_record;

/* Calls fn for each whole record from (segment, offset) on, in order,
 * across segments, until the log's end or the first record that is not
 * whole; *segment_out / *offset_out say where that is.  A negative return
 * of fn stops the replay and is returned. */
int store_body_log_replay(const char *dir, int segment, int64_t offset,
			  int (*fn)(const store_body_log_record *r, void *arg), void *arg, int *segment_out,
			  int64_t *offset_out);

/* Makes (segment, offset) the log's end: the rest of that segment and any
 * later segment are removed, and appends go there. */
int store_body_log_seek(store_body_log *l, int segment, int64_t offset);

/* The log's formats' integers: n bytes (at most 8), big-endian. */
static inline void store_be_put(unsigned char *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (unsigned char)(v >> (8 * (n - 1 - i)));
}

static inline uint64_t store_be_get(const unsigned char *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* "<db path>-bodies" into buf; BASE_EINVALID when it does not fit. */
int store_body_log_dir(char *buf, size_t size, const char *db_path);

#endif
