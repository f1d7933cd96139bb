/* The SQLite store's body log (see body_log.h).  Segments are plain files
 * of concatenated bodies with no framing: the rows of the database are the
 * index, and hold each body's segment, offset and length.  A segment is
 * written at its end only, by one thread, with pwritev; write-back starts
 * at once (sync_file_range), and the fdatasync runs on a thread of its own
 * while the committer inserts the rows, which wait for it only at COMMIT. */
#include "store/body_log.h"
#include "base/error.h"
#include "base/fs.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct store_body_log {
	char *dir;
	int fd;            /* the segment appends go to */
	int segment;
	int64_t end;       /* where the next append starts */
	int dir_dirty;     /* a segment was created since the last sync */
	int64_t segment_max;
	/* the syncer thread: a sync begun runs there while the committer goes on */
	pthread_t syncer;
	int syncer_started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int want, busy, stop;  /* guarded by lock */
	int result;
	char msg[256];
};

static void *syncer_main(void *arg);

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

int store_body_log_dir(char *buf, size_t size, const char *db_path)
{
	if ((size_t)snprintf(buf, size, "%s-bodies", db_path) >= size)
		return base_error_set(BASE_EINVALID, "store: database path too long");
	return 0;
}

int store_body_log_open(store_body_log **out, const char *dir, int64_t segment_max)
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
	l->segment_max = segment_max > 0 ? segment_max : STORE_BODY_LOG_SEGMENT_MAX;
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->cond, NULL);
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
	if (pthread_create(&l->syncer, NULL, syncer_main, l) != 0) {
		error = base_error_set(BASE_EGENERIC, "store: cannot start the body log's sync thread");
		goto fail;
	}
	l->syncer_started = 1;
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
	if (l->syncer_started) {
		pthread_mutex_lock(&l->lock);
		l->stop = 1;
		pthread_cond_broadcast(&l->cond);
		pthread_mutex_unlock(&l->lock);
		pthread_join(l->syncer, NULL);
	}
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->cond);
	if (l->fd >= 0)
		close(l->fd);
	free(l->dir);
	free(l);
}

int store_body_log_append(store_body_log *l, const struct iovec *iov, size_t n, int *segment_out, int64_t *offsets)
{
	int64_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += (int64_t)iov[i].iov_len;
	if (l->end > 0 && l->end + total > l->segment_max) {
		/* what the old segment holds was made durable by earlier commits */
		int error = open_segment(l, l->segment + 1);
		if (error < 0)
			return error;
		l->dir_dirty = 1;
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

static int sync_now(store_body_log *l)
{
	if (fdatasync(l->fd) < 0)
		return base_error_set(BASE_EGENERIC, "store: cannot sync the body log: %s", strerror(errno));
	if (l->dir_dirty) {
		int dfd = open(l->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0 || fsync(dfd) < 0) {
			int error = base_error_set(BASE_EGENERIC, "store: cannot sync %s: %s", l->dir, strerror(errno));
			if (dfd >= 0)
				close(dfd);
			return error;
		}
		close(dfd);
		l->dir_dirty = 0;
	}
	return 0;
}

static void *syncer_main(void *arg)
{
	store_body_log *l = arg;
	pthread_mutex_lock(&l->lock);
	for (;;) {
		while (!l->want && !l->stop)
			pthread_cond_wait(&l->cond, &l->lock);
		if (!l->want)
			break;
		l->want = 0;
		pthread_mutex_unlock(&l->lock);
		int r = sync_now(l);
		pthread_mutex_lock(&l->lock);
		l->result = r;
		if (r < 0)
			snprintf(l->msg, sizeof(l->msg), "%s", base_error_last());
		l->busy = 0;
		pthread_cond_broadcast(&l->cond);
	}
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

void store_body_log_sync_begin(store_body_log *l)
{
	pthread_mutex_lock(&l->lock);
	l->want = 1;
	l->busy = 1;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
}

int store_body_log_sync_end(store_body_log *l)
{
	pthread_mutex_lock(&l->lock);
	while (l->busy)
		pthread_cond_wait(&l->cond, &l->lock);
	int r = l->result;
	char msg[256];
	memcpy(msg, l->msg, sizeof(msg));
	pthread_mutex_unlock(&l->lock);
	return r < 0 ? base_error_set(r, "%s", msg) : 0;
}

int store_body_log_sync(store_body_log *l)
{
	store_body_log_sync_begin(l);
	return store_body_log_sync_end(l);
}

void store_body_log_rewind(store_body_log *l, int segment, int64_t offset)
{
	if (segment == l->segment)
		l->end = offset;
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
	size_t got = 0;
	while (got < length) {
		ssize_t r = pread(fd, b + got, length - got, offset + (int64_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			int error = base_error_set(BASE_EGENERIC, "store: the body log %s ends before a stored body (%s)", path,
						  r < 0 ? strerror(errno) : "short file");
			free(b);
			close(fd);
			return error;
		}
		got += (size_t)r;
	}
	close(fd);
	b[length] = '\0';
	*out = b;
	return 0;
}
