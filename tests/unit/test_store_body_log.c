/* Unit tests: the SQLite store's body log (store/body_log.h) on its own
 * (appends read back byte for byte, across a reopen, a rewind and a new
 * segment; a read past the end is an error naming the file; appends
 * beside a sync on another thread, across new segments) and through
 * the store (a delivery's body is in the log, not in the database file; it
 * reads back after a reopen; a row from before the log, with its body
 * inline, still reads back; the log is private to perfbot's user), and
 * the replay at open of records whose rows were never added. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/error.h"
#include "store/body_log.h"
#include "store/store.h"
#include "tests/unit/support/store_test.h"

static char dir[64];

static int setup_dir(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/perfbot-bodylog-XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown_dir(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static void expect_read(const char *logdir, int segment, int64_t offset, const char *want, size_t len)
{
	char *got = NULL;
	assert_int_equal(store_body_log_read(logdir, segment, offset, len, &got), 0);
	assert_memory_equal(got, want, len);
	assert_int_equal(got[len], '\0');
	free(got);
}

static void test_append_read_reopen(void **state)
{
	(void)state;
	char logdir[128];
	snprintf(logdir, sizeof(logdir), "%s/db-bodies", dir);
	store_body_log *l = NULL;
	assert_int_equal(store_body_log_open(&l, logdir, 0, 0), 0);
	static const char bin[] = "\x00\x01\xff{\"x\":1}";
	struct iovec iov[3] = { { (void *)"first", 5 }, { (void *)"", 0 }, { (void *)bin, sizeof(bin) } };
	int seg = 0;
	int64_t off[3];
	assert_int_equal(store_body_log_append(l, iov, 3, &seg, off), 0);
	assert_int_equal(seg, 1);
	assert_int_equal(off[0], 0);
	assert_int_equal(off[1], 5);
	assert_int_equal(off[2], 5);
	assert_int_equal(store_body_log_sync(l), 0);
	expect_read(logdir, 1, off[0], "first", 5);
	expect_read(logdir, 1, off[1], "", 0);
	expect_read(logdir, 1, off[2], bin, sizeof(bin));
	store_body_log_free(l);

	/* reopened: appends go after what is there */
	assert_int_equal(store_body_log_open(&l, logdir, 0, 0), 0);
	struct iovec more = { (void *)"second", 6 };
	assert_int_equal(store_body_log_append(l, &more, 1, &seg, off), 0);
	assert_int_equal(seg, 1);
	assert_int_equal(off[0], (int64_t)(5 + sizeof(bin)));
	assert_int_equal(store_body_log_sync(l), 0);
	expect_read(logdir, 1, off[0], "second", 6);
	expect_read(logdir, 1, 0, "first", 5);
	store_body_log_free(l);

	/* private to perfbot's user */
	struct stat st;
	assert_int_equal(stat(logdir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	char seg1[160];
	snprintf(seg1, sizeof(seg1), "%s/000001.log", logdir);
	assert_int_equal(stat(seg1, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_rewind_and_segments(void **state)
{
	(void)state;
	char logdir[128];
	snprintf(logdir, sizeof(logdir), "%s/db-bodies", dir);
	store_body_log *l = NULL;
	assert_int_equal(store_body_log_open(&l, logdir, 16, 0), 0);
	struct iovec a = { (void *)"0123456789", 10 };
	int seg = 0;
	int64_t off[1];
	assert_int_equal(store_body_log_append(l, &a, 1, &seg, off), 0);
	assert_int_equal(off[0], 0);
	/* a failed batch is forgotten: the next append starts where it did */
	struct iovec b = { (void *)"lost", 4 };
	assert_int_equal(store_body_log_append(l, &b, 1, &seg, off), 0);
	assert_int_equal(off[0], 10);
	store_body_log_rewind(l, seg, off[0]);
	struct iovec c = { (void *)"kept", 4 };
	assert_int_equal(store_body_log_append(l, &c, 1, &seg, off), 0);
	assert_int_equal(seg, 1);
	assert_int_equal(off[0], 10);
	expect_read(logdir, 1, 10, "kept", 4);
	/* past 16 bytes: a new segment, from its start */
	struct iovec d = { (void *)"next segment", 12 };
	assert_int_equal(store_body_log_append(l, &d, 1, &seg, off), 0);
	assert_int_equal(seg, 2);
	assert_int_equal(off[0], 0);
	assert_int_equal(store_body_log_sync(l), 0);
	expect_read(logdir, 2, 0, "next segment", 12);
	expect_read(logdir, 1, 0, "0123456789kept", 14);
	store_body_log_free(l);
	/* reopened: the newest segment is appended to */
	assert_int_equal(store_body_log_open(&l, logdir, 16, 0), 0);
	struct iovec e = { (void *)"!", 1 };
	assert_int_equal(store_body_log_append(l, &e, 1, &seg, off), 0);
	assert_int_equal(seg, 2);
	assert_int_equal(off[0], 12);
	store_body_log_free(l);
}

static void test_read_past_end_names_the_file(void **state)
{
	(void)state;
	char logdir[128];
	snprintf(logdir, sizeof(logdir), "%s/db-bodies", dir);
	store_body_log *l = NULL;
	assert_int_equal(store_body_log_open(&l, logdir, 0, 0), 0);
	struct iovec a = { (void *)"short", 5 };
	int seg = 0;
	int64_t off[1];
	assert_int_equal(store_body_log_append(l, &a, 1, &seg, off), 0);
	store_body_log_free(l);
	char *got = NULL;
	assert_int_equal(store_body_log_read(logdir, 1, 2, 10, &got), BASE_EGENERIC);
	assert_null(got);
	assert_non_null(strstr(base_error_last(), "000001.log"));
	assert_int_equal(store_body_log_read(logdir, 7, 0, 1, &got), BASE_EGENERIC);
	assert_non_null(strstr(base_error_last(), "000007.log"));
	assert_int_equal(store_body_log_read(logdir, 1, -1, 1, &got), BASE_EINVALID);
}

struct seen {
	int n;
	char metas[4][32];
	int segments[4];
};

static int see(const store_body_log_record *r, void *arg)
{
	struct seen *v = arg;
	if (v->n < 4) {
		snprintf(v->metas[v->n], sizeof(v->metas[0]), "%s", r->meta);
		v->segments[v->n] = r->segment;
	}
	v->n++;
	return 0;
}

static void append_record(store_body_log *l, const char *meta, const char *body)
{
	unsigned char head[STORE_BODY_LOG_HEAD];
	store_body_log_head(head, meta, strlen(meta), body, strlen(body));
	struct iovec iov[3] = { { head, sizeof(head) }, { (void *)meta, strlen(meta) }, { (void *)body, strlen(body) } };
	int seg;
	int64_t off[3];
	assert_int_equal(store_body_log_append(l, iov, 3, &seg, off), 0);
	assert_int_equal(store_body_log_sync(l), 0);
}

/* A record cut short (a crash in its write): its head promises more bytes
 * than follow it. */
static void append_torn_record(store_body_log *l)
{
	unsigned char head[STORE_BODY_LOG_HEAD];
	store_body_log_head(head, "m?", 2, "0123456789", 10);
	struct iovec torn[2] = { { head, sizeof(head) }, { (void *)"m?01", 4 } };
	int seg;
	int64_t off[2];
	assert_int_equal(store_body_log_append(l, torn, 2, &seg, off), 0);
}

/* Replay reads whole records in order across segments; a tail that is not
 * whole ends the log, unless a later segment was begun after it (the tail
 * then belonged to a batch that failed, and the later records count). */
static void test_replay_across_segments(void **state)
{
	(void)state;
	char logdir[128];
	snprintf(logdir, sizeof(logdir), "%s/db-bodies", dir);
	store_body_log *l = NULL;
	assert_int_equal(store_body_log_open(&l, logdir, 200, 0), 0);
	append_record(l, "m1", "body one");
	append_torn_record(l);
	struct seen v = { 0 };
	int end_seg = 0;
	int64_t end = 0;
	assert_int_equal(store_body_log_replay(logdir, 1, 0, see, &v, &end_seg, &end), 0);
	assert_int_equal(v.n, 1);
	assert_string_equal(v.metas[0], "m1");
	assert_int_equal(end_seg, 1);
	assert_int_equal(end, STORE_BODY_LOG_HEAD + 2 + 8);
	/* a record too big for what is left of segment 1 begins segment 2 */
	char big[160];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	append_record(l, "m2", big);
	append_record(l, "m3", "three");
	store_body_log_free(l);
	memset(&v, 0, sizeof(v));
	assert_int_equal(store_body_log_replay(logdir, 1, 0, see, &v, &end_seg, &end), 0);
	assert_int_equal(v.n, 3);
	assert_string_equal(v.metas[1], "m2");
	assert_int_equal(v.segments[1], 2);
	assert_string_equal(v.metas[2], "m3");
	assert_int_equal(v.segments[2], 3); /* segment 2 was full */
	assert_int_equal(end_seg, 3);
	/* from a later position, only what follows it */
	memset(&v, 0, sizeof(v));
	assert_int_equal(store_body_log_replay(logdir, 2, 0, see, &v, &end_seg, &end), 0);
	assert_int_equal(v.n, 2);
	assert_string_equal(v.metas[0], "m2");
}

/* Appends on one thread while another syncs, across many new segments:
 * every record replays, in order, and the segments are whole. */
struct syncing {
	store_body_log *l;
	atomic_int done;
	int syncs, errors;
};

static void *sync_loop(void *arg)
{
	struct syncing *g = arg;
	while (!atomic_load(&g->done)) {
		if (store_body_log_sync(g->l) < 0)
			g->errors++;
		g->syncs++;
	}
	return NULL;
}

struct ordered {
	int n, bad;
};

static int see_in_order(const store_body_log_record *r, void *arg)
{
	struct ordered *o = arg;
	char want[16];
	snprintf(want, sizeof(want), "r%d", o->n);
	if (strcmp(r->meta, want) != 0 || r->body_len != (size_t)(o->n % 97) * 7)
		o->bad++;
	o->n++;
	return 0;
}

static void test_append_beside_sync(void **state)
{
	(void)state;
	char logdir[128];
	snprintf(logdir, sizeof(logdir), "%s/db-bodies", dir);
	enum { N = 1200 };
	struct syncing g = { 0 };
	assert_int_equal(store_body_log_open(&g.l, logdir, 4096, 0), 0);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, sync_loop, &g), 0);
	static char body[97 * 7];
	memset(body, 'b', sizeof(body));
	for (int i = 0; i < N; i++) {
		char meta[16];
		snprintf(meta, sizeof(meta), "r%d", i);
		size_t blen = (size_t)(i % 97) * 7;
		unsigned char head[STORE_BODY_LOG_HEAD];
		store_body_log_head(head, meta, strlen(meta), body, blen);
		struct iovec iov[3] = { { head, sizeof(head) }, { meta, strlen(meta) }, { body, blen } };
		int seg;
		int64_t off[3];
		assert_int_equal(store_body_log_append(g.l, iov, 3, &seg, off), 0);
	}
	atomic_store(&g.done, 1);
	pthread_join(t, NULL);
	assert_int_equal(g.errors, 0);
	assert_true(g.syncs > 0);
	store_body_log_free(g.l);
	struct ordered o = { 0 };
	int end_seg = 0;
	int64_t end = 0;
	assert_int_equal(store_body_log_replay(logdir, 1, 0, see_in_order, &o, &end_seg, &end), 0);
	assert_int_equal(o.n, N);
	assert_int_equal(o.bad, 0);
	assert_true(end_seg > 50); /* about 1200 * 380 bytes in segments of 4 KB */
}

/* Whether the file at path holds needle anywhere. */
static int file_has(const char *path, const char *needle)
{
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return 0;
	size_t n = strlen(needle), cap = 1 << 20, len = 0;
	char *buf = malloc(cap);
	int found = 0;
	size_t r;
	while (!found && (r = fread(buf + len, 1, cap - len, fp)) > 0) {
		len += r;
		for (size_t i = 0; i + n <= len && !found; i++)
			found = memcmp(buf + i, needle, n) == 0;
		if (len >= n) {
			memmove(buf, buf + len - (n - 1), n - 1);
			len = n - 1;
		}
	}
	free(buf);
	fclose(fp);
	return found;
}

static void test_store_keeps_bodies_in_the_log(void **state)
{
	(void)state;
	struct store_test *f = store_test_sqlite("bodylog");
	static const char body[] = "{\"marker\":\"body-in-the-log-7f3a\"}";
	store_delivery d = { .id = "d-log-1", .event = "push", .headers_json = "{}", .body = body,
			     .body_len = sizeof(body) - 1, .received_ms = base_wall_ms(), .status = "ignored" };
	int dup = -1;
	assert_int_equal(store_delivery_put(f->st, &d, &dup), 0);
	assert_int_equal(dup, 0);
	/* the same id again: a duplicate, and its body is not read back instead */
	store_delivery d2 = d;
	d2.body = "{\"other\":1}";
	d2.body_len = 11;
	assert_int_equal(store_delivery_put(f->st, &d2, &dup), 0);
	assert_int_equal(dup, 1);
	char *b = NULL;
	size_t len = 0;
	assert_int_equal(store_delivery_body(f->st, "d-log-1", &b, &len), 0);
	assert_int_equal(len, sizeof(body) - 1);
	assert_string_equal(b, body);
	free(b);

	char path[160];
	snprintf(path, sizeof(path), "%s/perfbot.db-bodies/000001.log", f->dir);
	assert_true(file_has(path, "body-in-the-log-7f3a"));
	store_free(f->st);
	f->st = NULL;
	char db[160];
	snprintf(db, sizeof(db), "%s/perfbot.db", f->dir);
	assert_false(file_has(db, "body-in-the-log-7f3a"));
	snprintf(path, sizeof(path), "%s/perfbot.db-wal", f->dir);
	assert_false(file_has(path, "body-in-the-log-7f3a"));

	/* a row from before the log keeps its body inline and still reads */
	sqlite3 *raw = NULL;
	assert_int_equal(sqlite3_open(db, &raw), SQLITE_OK);
	assert_int_equal(sqlite3_exec(raw,
				      "INSERT INTO deliveries(id, event, headers, body, received_ms, status)"
				      " VALUES('d-old', 'push', '{}', X'7B226F6C64223A747275657D', 1, 'ignored')",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(raw);

	/* reopened: both read back, and new bodies follow the old ones */
	assert_int_equal(store_open(&f->st, f->url), 0);
	assert_int_equal(store_delivery_body(f->st, "d-old", &b, &len), 0);
	assert_string_equal(b, "{\"old\":true}");
	free(b);
	assert_int_equal(store_delivery_body(f->st, "d-log-1", &b, &len), 0);
	assert_string_equal(b, body);
	free(b);
	store_delivery d3 = { .id = "d-log-2", .event = "push", .headers_json = "{}", .body = "{\"n\":2}",
			      .body_len = 7, .received_ms = base_wall_ms(), .status = "ignored" };
	assert_int_equal(store_delivery_put(f->st, &d3, &dup), 0);
	assert_int_equal(store_delivery_body(f->st, "d-log-2", &b, &len), 0);
	assert_string_equal(b, "{\"n\":2}");
	free(b);
	assert_int_equal(store_delivery_body(f->st, "d-log-1", &b, &len), 0);
	assert_string_equal(b, body);
	free(b);
	store_test_free(f);
}

static int jobs_of(store *st, const char *delivery)
{
	json_t *rows = NULL;
	assert_int_equal(store_job_list(st, &rows, 1000), 0);
	int n = 0;
	size_t i;
	json_t *r;
	json_array_foreach(rows, i, r)
		n += json_is_string(json_object_get(r, "delivery_id")) &&
		     strcmp(json_string_value(json_object_get(r, "delivery_id")), delivery) == 0;
	json_decref(rows);
	return n;
}

/* A delivery answered after its record was synced, its row never added
 * (the process killed between the two): opening the store adds the row and
 * its job, once, and cuts a torn record after it. */
static void test_open_replays_records_past_the_position(void **state)
{
	(void)state;
	struct store_test *f = store_test_sqlite("bodylog-replay");
	store_job_spec job = { .kind = "event.push", .payload = "{\"delivery\":\"r1\"}" };
	store_delivery d1 = { .id = "r1", .event = "push", .headers_json = "{}", .body = "{\"replayed\":1}",
			      .body_len = 14, .received_ms = 1, .status = "queued", .jobs = &job, .njobs = 1 };
	int dup = -1;
	assert_int_equal(store_delivery_put(f->st, &d1, &dup), 0);
	assert_int_equal(jobs_of(f->st, "r1"), 1);
	store_free(f->st);
	f->st = NULL;
	/* the row never made it: only the record is there, past the position */
	char db[160];
	snprintf(db, sizeof(db), "%s/perfbot.db", f->dir);
	sqlite3 *raw = NULL;
	assert_int_equal(sqlite3_open(db, &raw), SQLITE_OK);
	assert_int_equal(sqlite3_exec(raw,
				      "DELETE FROM jobs; DELETE FROM deliveries; UPDATE body_log_position SET segment=1, offset=0",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(raw);
	char logdir[160], seg1[200];
	snprintf(logdir, sizeof(logdir), "%s/perfbot.db-bodies", f->dir);
	snprintf(seg1, sizeof(seg1), "%s/000001.log", logdir);
	struct stat st;
	assert_int_equal(stat(seg1, &st), 0);
	off_t whole = st.st_size;
	/* a record cut short by the crash */
	store_body_log *l = NULL;
	assert_int_equal(store_body_log_open(&l, logdir, 0, 0), 0);
	append_torn_record(l);
	store_body_log_free(l);

	assert_int_equal(store_open(&f->st, f->url), 0);
	char *b = NULL;
	size_t len = 0;
	assert_int_equal(store_delivery_body(f->st, "r1", &b, &len), 0);
	assert_string_equal(b, "{\"replayed\":1}");
	free(b);
	assert_int_equal(jobs_of(f->st, "r1"), 1);
	assert_int_equal(stat(seg1, &st), 0);
	assert_int_equal(st.st_size, whole);
	/* new deliveries follow, readable at once */
	store_delivery d = { .id = "r2", .event = "push", .headers_json = "{}", .body = "{\"n\":2}", .body_len = 7,
			     .received_ms = base_wall_ms(), .status = "ignored" };
	assert_int_equal(store_delivery_put(f->st, &d, &dup), 0);
	assert_int_equal(dup, 0);
	assert_int_equal(store_delivery_exists(f->st, "r2"), 1);
	assert_int_equal(store_delivery_body(f->st, "r2", &b, &len), 0);
	assert_string_equal(b, "{\"n\":2}");
	free(b);
	/* a redelivery of the replayed one is a duplicate */
	d.id = "r1";
	assert_int_equal(store_delivery_put(f->st, &d, &dup), 0);
	assert_int_equal(dup, 1);
	store_free(f->st);
	/* opened again: nothing replayed twice */
	assert_int_equal(store_open(&f->st, f->url), 0);
	assert_int_equal(jobs_of(f->st, "r1"), 1);
	assert_int_equal(store_delivery_body(f->st, "r2", &b, &len), 0);
	free(b);
	store_test_free(f);
}

/* The body of id read through st, once its row is there: a store other
 * than the one that took the delivery sees it within a commit. */
static char *body_when_there(store *st, const char *id)
{
	char *b = NULL;
	size_t len = 0;
	int rc = BASE_ENOTFOUND;
	for (int i = 0; i < 300 && (rc = store_delivery_body(st, id, &b, &len)) == BASE_ENOTFOUND; i++)
		usleep(10 * 1000);
	assert_int_equal(rc, 0);
	return b;
}

/* The log has one owner, the first store to open it (the serving process
 * in practice); a store opened beside it (a CLI tool) reads the log but
 * neither replays nor appends to it, and writes its own deliveries into
 * the database; the next open after the owner closes owns the log. */
static void test_one_owner(void **state)
{
	(void)state;
	struct store_test *f = store_test_sqlite("bodylog-owner");
	store_delivery d = { .id = "o1", .event = "push", .headers_json = "{}", .body = "{\"by\":\"owner\"}",
			     .body_len = 14, .received_ms = base_wall_ms(), .status = "ignored" };
	int dup = -1;
	assert_int_equal(store_delivery_put(f->st, &d, &dup), 0);
	char seg1[200];
	snprintf(seg1, sizeof(seg1), "%s/perfbot.db-bodies/000001.log", f->dir);
	struct stat st;
	assert_int_equal(stat(seg1, &st), 0);
	off_t size = st.st_size;

	store *tool = NULL;
	assert_int_equal(store_open(&tool, f->url), 0);
	char *b = body_when_there(tool, "o1");
	size_t len = 0;
	assert_string_equal(b, "{\"by\":\"owner\"}");
	free(b);
	store_delivery t = d;
	t.id = "t1";
	t.body = "{\"by\":\"tool\"}";
	t.body_len = 13;
	assert_int_equal(store_delivery_put(tool, &t, &dup), 0);
	assert_int_equal(dup, 0);
	assert_int_equal(stat(seg1, &st), 0);
	assert_int_equal(st.st_size, size); /* the tool wrote nothing to the log */
	assert_int_equal(store_delivery_body(f->st, "t1", &b, &len), 0);
	assert_string_equal(b, "{\"by\":\"tool\"}");
	free(b);
	/* the owner's next delivery is readable by the tool once its row is
	 * added (within a commit of the answer) */
	d.id = "o2";
	assert_int_equal(store_delivery_put(f->st, &d, &dup), 0);
	free(body_when_there(tool, "o2"));
	store_free(tool);

	store_free(f->st);
	assert_int_equal(store_open(&f->st, f->url), 0);
	d.id = "o3";
	assert_int_equal(store_delivery_put(f->st, &d, &dup), 0);
	assert_int_equal(stat(seg1, &st), 0);
	assert_true(st.st_size > size); /* the next open owns the log */
	store_test_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_append_read_reopen, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_rewind_and_segments, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_read_past_end_names_the_file, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_replay_across_segments, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_append_beside_sync, setup_dir, teardown_dir),
		cmocka_unit_test(test_store_keeps_bodies_in_the_log),
		cmocka_unit_test(test_open_replays_records_past_the_position),
		cmocka_unit_test(test_one_owner),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
