/* The SQLite store's body log (see body_log.h).  Segments are plain files
 * of concatenated bodies with no framing: the rows of the database are the
 * index, and hold each body's segment, offset and length.  A segment is
 * written at its end only, by one thread, with pwritev; write-back starts
 * at once (sync_file_range) so that the fdatasync after it has less left
 * to wait for.  The fdatasync runs on another thread, beside the next
 * appends: `lock` keeps it and an append that begins a new segment apart. */
#include "store/body_log.h"
#include "base/error.h"
#include "base/fs.h"

#include <dirent.h>
#include <openssl/evp.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct store_body_log {
	char *dir;
	int fd;            /* the segment appends go to */
	int segment;
	int64_t end;       /* where the next append starts */
	int dir_dirty;     /* a segment was created since the last sync */
	int64_t segment_max;
	int lock_fd;       /* owner.lock, flocked while the log is open */
	pthread_mutex_t lock; /* fd, segment, dir_dirty, sync_failed: a new segment against a sync */
	int sync_failed;   /* the old segment's sync, at a new segment, failed: the next sync says so */
};

static void segment_path(char *buf, size_t size, const char *dir, int segment)
{
	snprintf(buf, size, "%s/%06d.log", dir, segment);
}

static int open_segment(store_body_log *l, int segment)
{
	char path[PATH_MAX];
	segment_path(path, sizeof(path), l->dir, segment);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return base_error_set(BASE_EGENERIC, "store: cannot open the body log %s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int error = base_error_set(BASE_EGENERIC, "store: cannot read the body log %s: %s", path, strerror(errno));
		close(fd);
		return error;
	}
	if (l->fd >= 0)
		close(l->fd);
	l->fd = fd;
	l->segment = segment;
	l->end = st.st_size;
	return 0;
}

/* len bytes at offset at: 0, or -1 with errno set (0 when the file ends
 * first). */
static int read_full(int fd, void *buf, size_t len, int64_t at)
{
	size_t got = 0;
	while (got < len) {
		ssize_t r = pread(fd, (char *)buf + got, len - got, at + (int64_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = 0;
			return -1;
		}
		got += (size_t)r;
	}
	return 0;
}

int store_body_log_dir(char *buf, size_t size, const char *db_path)
{
	if ((size_t)snprintf(buf, size, "%s-bodies", db_path) >= size)
		return base_error_set(BASE_EINVALID, "store: database path too long");
	return 0;
}

int store_body_log_open(store_body_log **out, const char *dir, int64_t segment_max, int wait_ms)
{
	int error = base_mkdirs(dir, 0700);
	if (error < 0)
		return error;
	store_body_log *l = calloc(1, sizeof(*l));
	if (!l || !(l->dir = strdup(dir))) {
		free(l);
		return base_error_set(BASE_ENOMEM, "out of memory");
	}
	l->fd = -1;
	l->lock_fd = -1;
	pthread_mutex_init(&l->lock, NULL);
	/* one process appends: the one holding owner.lock */
	char lock[PATH_MAX];
	snprintf(lock, sizeof(lock), "%s/owner.lock", dir);
	if ((l->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0) {
		error = base_error_set(BASE_EGENERIC, "store: cannot open %s: %s", lock, strerror(errno));
		goto fail;
	}
	for (int waited = 0; flock(l->lock_fd, LOCK_EX | LOCK_NB) < 0; waited += 50) {
		if (errno != EWOULDBLOCK || waited >= wait_ms) {
			error = errno == EWOULDBLOCK ? base_error_set(BASE_EEXISTS, "store: another process holds %s", lock)
						     : base_error_set(BASE_EGENERIC, "store: cannot lock %s: %s", lock,
								      strerror(errno));
			goto fail;
		}
		struct timespec ts = { 0, 50 * 1000000 };
		nanosleep(&ts, NULL);
	}
	l->segment_max = segment_max > 0 ? segment_max : STORE_BODY_LOG_SEGMENT_MAX;
	/* appends continue in the newest segment */
	int newest = 0;
	DIR *d = opendir(dir);
	if (!d) {
		error = base_error_set(BASE_EGENERIC, "store: cannot read the body log %s: %s", dir, strerror(errno));
		goto fail;
	}
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		char *end;
		errno = 0;
		long n = strtol(e->d_name, &end, 10);
		if (!errno && end != e->d_name && strcmp(end, ".log") == 0 && n > newest && n < INT_MAX)
			newest = (int)n;
	}
	closedir(d);
	l->dir_dirty = newest == 0;
	if ((error = open_segment(l, newest ? newest : 1)) < 0)
		goto fail;
	*out = l;
	return 0;
fail:
	store_body_log_free(l);
	return error;
}

void store_body_log_free(store_body_log *l)
{
	if (!l)
		return;
	if (l->fd >= 0)
		close(l->fd);
	if (l->lock_fd >= 0)
		close(l->lock_fd);
	pthread_mutex_destroy(&l->lock);
	free(l->dir);
	free(l);
}

int store_body_log_append(store_body_log *l, const struct iovec *iov, size_t n, int *segment_out, int64_t *offsets)
{
	int64_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += (int64_t)iov[i].iov_len;
	if (l->end > 0 && l->end + total > l->segment_max) {
		/* the old segment's last records are made durable here: a sync
		 * that runs after the switch syncs only the new one */
		pthread_mutex_lock(&l->lock);
		int error = 0;
		if (fdatasync(l->fd) < 0) {
			l->sync_failed = 1;
			error = base_error_set(BASE_EGENERIC, "store: cannot sync the body log: %s", strerror(errno));
		} else if ((error = open_segment(l, l->segment + 1)) == 0) {
			l->dir_dirty = 1;
		}
		pthread_mutex_unlock(&l->lock);
		if (error < 0)
			return error;
	}
	int64_t at = l->end;
	for (size_t i = 0; i < n; i++) {
		offsets[i] = at;
		at += (int64_t)iov[i].iov_len;
	}
	/* pwritev at most IOV_MAX at a time, and again after a short write */
	size_t i = 0, skip = 0;
	int64_t pos = l->end;
	while (i < n) {
		struct iovec chunk[64];
		size_t k = 0;
		for (size_t j = i; j < n && k < sizeof(chunk) / sizeof(chunk[0]); j++, k++) {
			chunk[k].iov_base = (char *)iov[j].iov_base + (j == i ? skip : 0);
			chunk[k].iov_len = iov[j].iov_len - (j == i ? skip : 0);
		}
		ssize_t w = pwritev(l->fd, chunk, (int)k, pos);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return base_error_set(BASE_EGENERIC, "store: cannot write the body log: %s", strerror(errno));
		}
		pos += w;
		size_t left = (size_t)w;
		while (i < n && left >= iov[i].iov_len - skip) {
			left -= iov[i].iov_len - skip;
			skip = 0;
			i++;
		}
		skip += left;
	}
	/* start the write-back now; fdatasync waits for what is left */
	(void)sync_file_range(l->fd, l->end, total, SYNC_FILE_RANGE_WRITE);
	l->end = at;
	*segment_out = l->segment;
	return 0;
}

int store_body_log_sync(store_body_log *l)
{
	pthread_mutex_lock(&l->lock);
	int error = 0;
	if (l->sync_failed) {
		l->sync_failed = 0;
		error = base_error_set(BASE_EGENERIC, "store: cannot sync the body log: an earlier segment's sync failed");
	} else if (fdatasync(l->fd) < 0) {
		error = base_error_set(BASE_EGENERIC, "store: cannot sync the body log: %s", strerror(errno));
	} else if (l->dir_dirty) {
		int dfd = open(l->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0 || fsync(dfd) < 0)
			error = base_error_set(BASE_EGENERIC, "store: cannot sync %s: %s", l->dir, strerror(errno));
		else
			l->dir_dirty = 0;
		if (dfd >= 0)
			close(dfd);
	}
	pthread_mutex_unlock(&l->lock);
	return error;
}

void store_body_log_rewind(store_body_log *l, int segment, int64_t offset)
{
	/* cut, not only forgotten: a segment ends on a whole record, so a
	 * replay that reaches its end goes on into the next one */
	if (segment == l->segment && offset <= l->end) {
		l->end = offset;
		(void)ftruncate(l->fd, offset);
	}
}

int store_body_log_read(const char *dir, int segment, int64_t offset, size_t length, char **out)
{
	char path[PATH_MAX];
	segment_path(path, sizeof(path), dir, segment);
	if (offset < 0 || length > ((size_t)1 << 32))
		return base_error_set(BASE_EINVALID, "store: body log entry out of range in %s", path);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return base_error_set(BASE_EGENERIC, "store: cannot open the body log %s: %s", path, strerror(errno));
	char *b = malloc(length + 1);
	if (!b) {
		close(fd);
		return base_error_set(BASE_ENOMEM, "out of memory");
	}
	if (read_full(fd, b, length, offset) < 0) {
		int error = base_error_set(BASE_EGENERIC, "store: the body log %s ends before a stored body (%s)", path,
					  errno ? strerror(errno) : "short file");
		free(b);
		close(fd);
		return error;
	}
	close(fd);
	b[length] = '\0';
	*out = b;
	return 0;
}

/* ---- records --------------------------------------------------------------- */

static const unsigned char MAGIC[4] = { 'P', 'B', 'D', '1' };
#define BODY_MAX ((size_t)1 << 30)

static void digest(unsigned char *out, const char *meta, size_t meta_len, const void *body, size_t body_len)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	unsigned int n = 0;
	if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1 || EVP_DigestUpdate(c, meta, meta_len) != 1 ||
	    EVP_DigestUpdate(c, body, body_len) != 1 || EVP_DigestFinal_ex(c, out, &n) != 1)
		memset(out, 0, 32); /* such a record never replays: its write fails the batch first */
	EVP_MD_CTX_free(c);
}

void store_body_log_head(unsigned char *head, const char *meta, size_t meta_len, const void *body, size_t body_len)
{
	memcpy(head, MAGIC, 4);
	store_be_put(head + 4, meta_len, 4);
	store_be_put(head + 8, body_len, 4);
	digest(head + 12, meta, meta_len, body ? body : "", body_len);
}

/* Where a replay goes once the record at (segment, offset) is not whole:
 * that is the segment's end, or a tail no answer depended on (a batch that
 * failed, or one a crash cut); when a later segment was begun after it,
 * the log goes on at its start (0), else it ends here (-1). */
static int next_segment(const char *dir, int *segment, int64_t *offset, int *fd)
{
	char next[PATH_MAX];
	segment_path(next, sizeof(next), dir, *segment + 1);
	if (access(next, F_OK) != 0)
		return -1;
	close(*fd);
	*fd = -1;
	(*segment)++;
	*offset = 0;
	return 0;
}

int store_body_log_replay(const char *dir, int segment, int64_t offset,
			  int (*fn)(const store_body_log_record *r, void *arg), void *arg, int *segment_out,
			  int64_t *offset_out)
{
	int error = 0;
	char *buf = NULL;
	size_t cap = 0;
	int fd = -1;
	for (;;) {
		if (fd < 0) {
			char path[PATH_MAX];
			segment_path(path, sizeof(path), dir, segment);
			if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
				break; /* no such segment: the log ends here */
		}
		struct stat st;
		if (fstat(fd, &st) < 0) {
			error = base_error_set(BASE_EGENERIC, "store: cannot read the body log: %s", strerror(errno));
			break;
		}
		unsigned char head[STORE_BODY_LOG_HEAD];
		size_t meta_len = 0, body_len = 0;
		int whole = offset + STORE_BODY_LOG_HEAD <= st.st_size && read_full(fd, head, sizeof(head), offset) == 0 &&
			    memcmp(head, MAGIC, 4) == 0;
		if (whole) {
			meta_len = (size_t)store_be_get(head + 4, 4);
			body_len = (size_t)store_be_get(head + 8, 4);
			whole = meta_len <= STORE_BODY_LOG_META_MAX && body_len <= BODY_MAX &&
				offset + STORE_BODY_LOG_HEAD + (int64_t)meta_len + (int64_t)body_len <= st.st_size;
		}
		if (!whole) {
			if (next_segment(dir, &segment, &offset, &fd) < 0)
				break;
			continue;
		}
		size_t need = meta_len + body_len + 1;
		if (need > cap) {
			char *nb = realloc(buf, need);
			if (!nb) {
				error = base_error_set(BASE_ENOMEM, "out of memory");
				break;
			}
			buf = nb;
			cap = need;
		}
		if (read_full(fd, buf, meta_len + body_len, offset + STORE_BODY_LOG_HEAD) < 0)
			break;
		unsigned char sum[32];
		digest(sum, buf, meta_len, buf + meta_len, body_len);
		if (memcmp(sum, head + 12, 32) != 0) {
			if (next_segment(dir, &segment, &offset, &fd) < 0)
				break;
			continue;
		}
		char keep = buf[meta_len];
		buf[meta_len] = '\0';
		store_body_log_record r = { .segment = segment, .offset = offset,
					    .body_offset = offset + STORE_BODY_LOG_HEAD + (int64_t)meta_len,
					    .meta = buf, .meta_len = meta_len, .body_len = body_len };
		error = fn(&r, arg);
		buf[meta_len] = keep;
		if (error < 0)
			break;
		offset += STORE_BODY_LOG_HEAD + (int64_t)meta_len + (int64_t)body_len;
	}
	if (fd >= 0)
		close(fd);
	free(buf);
	*segment_out = segment;
	*offset_out = offset;
	return error;
}

int store_body_log_seek(store_body_log *l, int segment, int64_t offset)
{
	/* later segments first: nothing whole is in them (l->segment is the
	 * newest: open started there) */
	for (int s = segment + 1; s <= l->segment; s++) {
		char path[PATH_MAX];
		segment_path(path, sizeof(path), l->dir, s);
		if (unlink(path) < 0 && errno != ENOENT)
			return base_error_set(BASE_EGENERIC, "store: cannot remove %s: %s", path, strerror(errno));
	}
	int error = open_segment(l, segment);
	if (error < 0)
		return error;
	if (offset < l->end && ftruncate(l->fd, offset) < 0)
		return base_error_set(BASE_EGENERIC, "store: cannot cut the body log's tail: %s", strerror(errno));
	l->end = offset;
	l->dir_dirty = 1;
	return store_body_log_sync(l);
}
