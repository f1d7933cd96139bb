/* Sandbox tests against the real bwrap: no network (a listener on the host's
 * 127.0.0.1 is unreachable), nothing outside the work tree visible (DATA_DIR,
 * a key file, perfbot's open file descriptors), a fork bomb, an infinite
 * loop and a 10 GB write are stopped, /tmp is a sized tmpfs, the output cap
 * holds, the environment is exactly the fixed set, the sandbox dies with
 * perfbot; a measurement of the same tree twice gives identical counts,
 * equal to a direct valgrind run in the same sandbox; a measurement survives
 * a hostile output directory (a FIFO, deep trees, links).  HOME is outside
 * the work tree, no nested user namespace can be made, only world-readable
 * toolchain files of /etc are visible, an overlapping /etc/subuid range is
 * refused, DATA_DIR's ancestors are never opened up; the whole-sandbox
 * limits (memory across ten processes, 10,000 forks, CPU time of two busy
 * loops, 20 GiB of writes, the host disk's reserve) each end a run quickly
 * with a clear reason, and no run cgroup is left behind.  A spawned
 * long-lived process gets the same confinement, its stdin and merged output,
 * its exit status; kill, the cancel flag and free take its whole tree down,
 * it outlives the thread that spawned it, and the whole-sandbox limits end
 * it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "measure/callgrind_run.h"
#include "measure/cgroup.h"
#include "measure/sandbox.h"
#include "base/clock.h"
#include "base/error.h"

typedef struct fixture {
	measure_sandbox *sb;
	char root[64];     /* stands for DATA_DIR */
	char ws[128];      /* work tree inside it */
	char secret[128];  /* a key file outside the work tree */
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));
	snprintf(f->root, sizeof(f->root), "/tmp/perfbot-sbtest-XXXXXX");
	if (!mkdtemp(f->root))
		return -1;
	snprintf(f->ws, sizeof(f->ws), "%s/work", f->root);
	snprintf(f->secret, sizeof(f->secret), "%s/private-key.pem", f->root);
	mkdir(f->ws, 0700);
	FILE *k = fopen(f->secret, "w");
	fputs("-----BEGIN PRIVATE KEY-----\nsecret\n", k);
	fclose(k);
	if (measure_sandbox_new(&f->sb, "bwrap") < 0) {
		fprintf(stderr, "sandbox: %s\n", base_error_last());
		return -1;
	}
	if (measure_sandbox_prepare_dir(f->sb, f->ws) < 0) {
		fprintf(stderr, "prepare: %s\n", base_error_last());
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
	if (system(cmd) != 0)
		return -1;
	measure_sandbox_free(f->sb);
	free(f);
	return 0;
}

static void run_shell(fixture *f, measure_sandbox_result *r, const char *shell, int timeout_s)
{
	measure_sandbox_cmd c = MEASURE_SANDBOX_CMD_INIT;
	c.workspace = f->ws;
	c.shell = shell;
	c.limits.timeout_s = timeout_s;
	int rc = measure_sandbox_run(f->sb, r, &c);
	if (rc != 0)
		fail_msg("sandbox run failed: %s", base_error_last());
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	FILE *fp = fopen(p, "w");
	fputs(text, fp);
	fclose(fp);
}

static void test_no_network(void **state)
{
	fixture *f = *state;
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s, 4), 0);
	socklen_t al = sizeof(a);
	getsockname(s, (struct sockaddr *)&a, &al);
	int port = ntohs(a.sin_port);
	char cmd[512];
	/* bash's /dev/tcp is not in dash; python3 may be absent: use perl,
	 * which Debian always ships */
	snprintf(cmd, sizeof(cmd),
		 "perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(PeerAddr => \"127.0.0.1:%d\", Timeout => 3); "
		 "print $s ? \"connected\\n\" : \"refused: $@\\n\"; exit($s ? 0 : 3)'; "
		 "perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(PeerAddr => \"1.1.1.1:80\", Timeout => 3); "
		 "exit($s ? 0 : 4)' || echo outside-unreachable; cat /proc/net/dev | grep -c : ",
		 port);
	measure_sandbox_result r;
	run_shell(f, &r, cmd, 30);
	if (!strstr(r.out, "refused") || strstr(r.out, "connected\n") || !strstr(r.out, "outside-unreachable"))
		fail_msg("network reachable from the sandbox:\n%s\n%s", r.out, r.err);
	/* only the loopback interface exists, and it is the namespace's own */
	assert_non_null(strstr(r.out, "\n1\n"));
	measure_sandbox_result_dispose(&r);
	close(s);
}

static void test_nothing_of_perfbot_visible(void **state)
{
	fixture *f = *state;
	char cmd[1024];
	setenv("WEBHOOK_SECRET", "hunter2", 1);
	snprintf(cmd, sizeof(cmd),
		 "cat '%s' 2>&1; ls '%s' 2>&1; ls /; cat /proc/1/environ | tr '\\0' '\\n'; env | grep -c hunter2",
		 f->secret, f->root);
	measure_sandbox_result r;
	run_shell(f, &r, cmd, 30);
	assert_null(strstr(r.out, "secret"));
	assert_null(strstr(r.out, "hunter2\n"));
	assert_non_null(strstr(r.out, "No such file or directory"));
	/* the root holds only what the sandbox mounts */
	assert_null(strstr(r.out, "\nroot\n"));
	assert_null(strstr(r.out, "\nwork\n"));
	assert_null(strstr(r.out, "\nhome\n"));
	assert_non_null(strstr(r.out, "\nworkspace\n"));
	measure_sandbox_result_dispose(&r);
	unsetenv("WEBHOOK_SECRET");
}

static void test_environment_is_fixed(void **state)
{
	fixture *f = *state;
	measure_sandbox_cmd c = MEASURE_SANDBOX_CMD_INIT;
	const char *argv[] = { "/usr/bin/env", NULL };
	c.workspace = f->ws;
	c.argv = argv;
	measure_sandbox_result r;
	assert_int_equal(measure_sandbox_run(f->sb, &r, &c), 0);
	assert_true(measure_sandbox_result_ok(&r));
	/* every fixed variable, and nothing else */
	size_t n = 0;
	for (const char *p = r.out; *p; p++)
		n += *p == '\n';
	assert_int_equal(n, 8);
	for (int i = 0; measure_sandbox_env[i]; i++) {
		char line[256];
		snprintf(line, sizeof(line), "%s\n", measure_sandbox_env[i]);
		if (!strstr(r.out, line))
			fail_msg("missing %s in:\n%s", measure_sandbox_env[i], r.out);
	}
	measure_sandbox_result_dispose(&r);
}

static void test_no_inherited_fds(void **state)
{
	fixture *f = *state;
	/* stand-ins for libcurl's sockets and perfbot's files: inheritable
	 * descriptors, one of them at a high number */
	int key = open(f->secret, O_RDONLY);
	assert_true(key >= 0);
	int high = fcntl(key, F_DUPFD, 200);
	assert_true(high >= 200);
	int s = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s >= 0);

	measure_sandbox_cmd c = MEASURE_SANDBOX_CMD_INIT;
	const char *argv[] = { "/bin/ls", "-1", "/proc/self/fd", NULL };
	c.workspace = f->ws;
	c.argv = argv;
	measure_sandbox_result r;
	assert_int_equal(measure_sandbox_run(f->sb, &r, &c), 0);
	assert_true(measure_sandbox_result_ok(&r));
	/* 0, 1, 2 and the directory ls itself has open */
	int n = 0, others = 0;
	for (const char *p = r.out; *p;) {
		size_t l = strcspn(p, "\n");
		if (!(l == 1 && p[0] >= '0' && p[0] <= '2'))
			others++;
		n++;
		p += l + (p[l] == '\n');
	}
	if (n > 4 || others > 1)
		fail_msg("descriptors open inside the sandbox:\n%s", r.out);
	measure_sandbox_result_dispose(&r);

	/* nor are they reachable through bwrap's own /proc entry */
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "cat /proc/1/fd/%d /proc/self/fd/%d 2>/dev/null | grep -c secret", high, key);
	run_shell(f, &r, cmd, 30);
	assert_string_equal(r.out, "0\n");
	measure_sandbox_result_dispose(&r);
	close(s);
	close(high);
	close(key);
}

static void test_tmp_is_sized(void **state)
{
	fixture *f = *state;
	measure_sandbox_result r;
	run_shell(f, &r, "df -B1 --output=size /tmp | tail -n 1", 30);
	char want[64];
	snprintf(want, sizeof(want), "%llu\n", (unsigned long long)MEASURE_SANDBOX_TMP_BYTES);
	if (!strstr(r.out, want))
		fail_msg("/tmp is not a %s-byte tmpfs:\n%s\n%s", want, r.out, r.err);
	measure_sandbox_result_dispose(&r);
}

/* pids of the processes whose command line contains marker (not followed
 * by a digit: "sleep 30.42" is not marked "sleep 30.4", another copy of the
 * suite's), up to max.  With `is_command`, only a process whose whole
 * command line is /bin/<marker>: the marked command itself running. */
static int find_marked_as(pid_t *pids, int max, const char *marker, int is_command)
{
	int n = 0;
	DIR *d = opendir("/proc");
	struct dirent *e;
	while (d && (e = readdir(d)) != NULL && n < max) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		char path[300], buf[4096];
		snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t l = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (l <= 0)
			continue;
		for (ssize_t i = 0; i < l; i++)
			if (buf[i] == '\0')
				buf[i] = ' ';
		buf[l] = '\0';
		const char *at = buf;
		size_t ml = strlen(marker);
		while ((at = strstr(at, marker)) != NULL && at[ml] >= '0' && at[ml] <= '9')
			at++;
		if (!at || (is_command && (at != buf + 5 || strncmp(buf, "/bin/", 5) || strcmp(at + ml, " "))))
			continue;
		pids[n++] = (pid_t)strtol(e->d_name, NULL, 10);
	}
	if (d)
		closedir(d);
	return n;
}

static int find_marked(pid_t *pids, int max, const char *marker)
{
	return find_marked_as(pids, max, marker, 0);
}

/* What the processes pids are (their command lines and states), on stderr. */
static void show_procs(const pid_t *pids, int n)
{
	for (int i = 0; i < n; i++) {
		char path[64], buf[512];
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pids[i]);
		FILE *fp = fopen(path, "r");
		size_t l = fp ? fread(buf, 1, sizeof(buf) - 1, fp) : 0;
		if (fp)
			fclose(fp);
		buf[l] = '\0';
		fprintf(stderr, "  left: %s", buf);
	}
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Runs `shell` in sb from a child process standing for perfbot, kills
 * that process once the command /bin/<marker> runs, and returns how many
 * marked processes are still alive 10 s later (and kills them).  Not
 * before: while bwrap sets itself up (its command line already has the
 * marker), a parent that dies can leave bwrap's pid-namespace init before
 * that init asked to die with it (bwrap's --die-with-parent has that
 * window), and the command with it. */
static int survivors_of_killed_parent(measure_sandbox *sb, const char *ws, const char *shell, const char *marker)
{
	pid_t bot = fork();
	assert_true(bot >= 0);
	if (bot == 0) {
		measure_sandbox_result r;
		measure_sandbox_cmd c = MEASURE_SANDBOX_CMD_INIT;
		c.workspace = ws;
		c.shell = shell;
		c.limits.timeout_s = 120;
		measure_sandbox_run(sb, &r, &c);
		_exit(0);
	}
	pid_t pids[64];
	int n = 0;
	for (int i = 0; i < 400 && (n = find_marked_as(pids, 64, marker, 1)) == 0; i++)
		sleep_ms(50);
	assert_true(n > 0);
	/* bwrap's init asks for the signal beside starting the command: a few
	 * system calls, done long before these 200 ms are over even on a
	 * loaded machine */
	sleep_ms(200);
	kill(bot, SIGKILL);
	waitpid(bot, NULL, 0);
	/* 10 s for the kills on a loaded machine, still short of the 30 s sleep */
	for (int i = 0; i < 200 && (n = find_marked(pids, 64, marker)) > 0; i++)
		sleep_ms(50);
	show_procs(pids, n);
	for (int i = 0; i < n; i++)
		kill(pids[i], SIGKILL);
	return n;
}

static void test_sandbox_dies_with_perfbot(void **state)
{
	fixture *f = *state;
	char marker[64], shell[128];
	snprintf(marker, sizeof(marker), "sleep 30.%d", (int)getpid());
	snprintf(shell, sizeof(shell), "/bin/%s; :", marker);
	int n = survivors_of_killed_parent(f->sb, f->ws, shell, marker);
	if (n > 0)
		fail_msg("%d sandbox processes outlived their perfbot", n);
}

/* The process perfbot starts must itself die with perfbot, whatever bwrap
 * does: a stand-in for bwrap that only runs the command (and, unlike bwrap
 * --die-with-parent, asks for nothing) shows it. */
static void test_started_process_dies_with_perfbot(void **state)
{
	fixture *f = *state;
	char fake[256], bin[] = "/tmp/perfbot-fakebwrap-XXXXXX";
	/* the run's uid execs it: not from the 0700 DATA_DIR stand-in */
	assert_non_null(mkdtemp(bin));
	assert_int_equal(chmod(bin, 0755), 0);
	snprintf(fake, sizeof(fake), "%s/fake-bwrap", bin);
	write_file(bin, "fake-bwrap", "#!/bin/sh\nwhile [ \"$1\" != -- ]; do shift; done\nshift\nexec \"$@\"\n");
	assert_int_equal(chmod(fake, 0755), 0);
	measure_sandbox *sb = NULL;
	measure_sandbox_bwrap_options o = MEASURE_SANDBOX_BWRAP_OPTIONS_INIT;
	o.bwrap_path = fake;
	if (measure_sandbox_bwrap_new(&sb, &o) < 0)
		fail_msg("fake bwrap: %s", base_error_last());
	char marker[64], shell[128];
	snprintf(marker, sizeof(marker), "sleep 31.%d", (int)getpid());
	snprintf(shell, sizeof(shell), "exec /bin/%s", marker);
	int n = survivors_of_killed_parent(sb, f->ws, shell, marker);
	measure_sandbox_free(sb);
	unlink(fake);
	rmdir(bin);
	if (n > 0)
		fail_msg("the process started for the sandbox outlived its perfbot");
}

static void test_fork_bomb_stopped(void **state)
{
	fixture *f = *state;
	measure_sandbox_result r;
	run_shell(f, &r, "b() { b | b & }; b; sleep 1; echo done", 20);
	/* the bomb hit RLIMIT_NPROC; the sandbox ended with all its processes */
	assert_false(r.timed_out);
	assert_true(r.wall_ms < 20000);
	measure_sandbox_result_dispose(&r);
	/* the host can still fork and the sandbox still works */
	run_shell(f, &r, "echo alive", 10);
	assert_string_equal(r.out, "alive\n");
	measure_sandbox_result_dispose(&r);
}

static void test_infinite_loop_times_out(void **state)
{
	fixture *f = *state;
	measure_sandbox_result r;
	run_shell(f, &r, "sh -c 'while :; do :; done' & while :; do :; done", 2);
	assert_true(r.timed_out);
	assert_int_equal(r.term_signal, 9);
	assert_true(r.wall_ms >= 2000 && r.wall_ms < 8000);
	measure_sandbox_result_dispose(&r);
}

static void test_big_write_stopped(void **state)
{
	fixture *f = *state;
	measure_sandbox_cmd c = MEASURE_SANDBOX_CMD_INIT;
	c.workspace = f->ws;
	c.shell = "head -c 10000000000 /dev/zero > big; echo status $?; wc -c < big";
	c.limits.timeout_s = 60;
	c.limits.max_file_bytes = 64 << 20;
	measure_sandbox_result r;
	assert_int_equal(measure_sandbox_run(f->sb, &r, &c), 0);
	if (!strstr(r.out, "status 153") || !strstr(r.out, "67108864"))
		fail_msg("10 GB write not stopped at 64 MiB:\n%s\n%s", r.out, r.err);
	measure_sandbox_result_dispose(&r);
}

static void test_output_cap(void **state)
{
	fixture *f = *state;
	measure_sandbox_cmd c = MEASURE_SANDBOX_CMD_INIT;
	c.workspace = f->ws;
	c.shell = "yes | head -c 5000000; yes err | head -c 10 >&2; echo end";
	c.limits.output_cap = 1000;
	measure_sandbox_result r;
	assert_int_equal(measure_sandbox_run(f->sb, &r, &c), 0);
	assert_true(measure_sandbox_result_ok(&r)); /* drained: the writer never blocked */
	assert_true(r.out_truncated);
	assert_false(r.err_truncated);
	assert_int_equal(r.out_len, 1000 + strlen("\n[output truncated at 1000 bytes]\n"));
	assert_string_equal(r.out + 1000, "\n[output truncated at 1000 bytes]\n");
	assert_string_equal(r.err, "err\nerr\ner");
	measure_sandbox_result_dispose(&r);
}

static void test_exit_status(void **state)
{
	fixture *f = *state;
	measure_sandbox_result r;
	run_shell(f, &r, "echo out; echo err >&2; exit 7", 10);
	assert_int_equal(r.exit_code, 7);
	assert_false(measure_sandbox_result_ok(&r));
	char *tail = measure_sandbox_result_tail(&r, 100);
	assert_string_equal(tail, "err\n\nout\n");
	free(tail);
	measure_sandbox_result_dispose(&r);
}

static void test_missing_bwrap_fails(void **state)
{
	(void)state;
	measure_sandbox *sb = NULL;
	measure_sandbox_bwrap_options o = MEASURE_SANDBOX_BWRAP_OPTIONS_INIT;
	o.bwrap_path = "/nonexistent/bwrap";
	assert_int_equal(measure_sandbox_bwrap_new(&sb, &o), BASE_EGENERIC);
	assert_null(sb);
	assert_non_null(strstr(base_error_last(), "never runs code unsandboxed"));
	assert_int_equal(measure_sandbox_new(&sb, "docker"), BASE_EINVALID);
}

static void test_measurement_deterministic(void **state)
{
	fixture *f = *state;
	write_file(f->ws, "prog.c",
		   "#include <stdlib.h>\nstatic int cmp(const void *a, const void *b) { return *(const int *)a - "
		   "*(const int *)b; }\nint main(void) { int n = 20000; int *a = malloc(n * sizeof(int)); unsigned s "
		   "= 1; for (int i = 0; i < n; i++) { s = s * 1103515245u + 12345u; a[i] = (int)(s >> 8); } "
		   "qsort(a, n, sizeof(int), cmp); free(a); return 0; }\n");
	measure_sandbox_result r;
	run_shell(f, &r, "cc -O1 -o prog prog.c", 60);
	assert_true(measure_sandbox_result_ok(&r));
	measure_sandbox_result_dispose(&r);
	assert_int_equal(measure_sandbox_prepare_dir(f->sb, f->ws), 0);

	measure_cg_costs first = { { 0 } };
	for (int i = 0; i < 2; i++) {
		measure_cg_run run = MEASURE_CG_RUN_INIT;
		run.workspace = f->ws;
		run.command = "./prog";
		run.scratch_dir = f->root;
		run.limits.timeout_s = 120;
		measure_cg_profile p;
		int rc = measure_cg_measure(&p, &r, f->sb, &run);
		if (rc != 0)
			fail_msg("measure: %s\n%s", base_error_last(), r.err ? r.err : "");
		assert_int_equal(p.nfiles, 1);
		assert_true(p.totals.ev[MEASURE_CG_IR] > 1000000);
		if (i == 0)
			first = p.totals;
		else
			assert_memory_equal(&first, &p.totals, sizeof(first));
		measure_cg_profile_dispose(&p);
		measure_sandbox_result_dispose(&r);
	}

	/* the same command run by hand with valgrind in the same sandbox */
	run_shell(f, &r,
		  "setarch -R valgrind --tool=callgrind --cache-sim=yes --I1=32768,8,64 --D1=32768,8,64 "
		  "--LL=8388608,16,64 --trace-children=yes --callgrind-out-file=/tmp/out ./prog 2>/dev/null && "
		  "grep '^summary:' /tmp/out",
		  120);
	char want[512];
	snprintf(want, sizeof(want), "summary: %llu %llu %llu %llu %llu %llu %llu %llu %llu\n",
		 (unsigned long long)first.ev[0], (unsigned long long)first.ev[1], (unsigned long long)first.ev[2],
		 (unsigned long long)first.ev[3], (unsigned long long)first.ev[4], (unsigned long long)first.ev[5],
		 (unsigned long long)first.ev[6], (unsigned long long)first.ev[7], (unsigned long long)first.ev[8]);
	assert_string_equal(r.out, want);
	measure_sandbox_result_dispose(&r);
}

/* The number of entries of dir, . and .. aside. */
static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	closedir(d);
	return n;
}

/* The output directory is the benchmark's to write: a FIFO named like an
 * output file is refused (not waited on for ever), and deep directories and
 * links are removed without touching what the links point to. */
static void test_measure_hostile_output_dir(void **state)
{
	fixture *f = *state;
	char scratch[256], keep[256], cmd[1024];
	snprintf(scratch, sizeof(scratch), "%s/scratch", f->root);
	assert_int_equal(mkdir(scratch, 0700), 0);
	write_file(f->ws, "keep.txt", "keep\n");
	snprintf(keep, sizeof(keep), "%s/keep.txt", f->ws);
	snprintf(cmd, sizeof(cmd),
		 "d=/tmp/cg/deep; i=0; while [ $i -lt 80 ]; do d=$d/d; i=$((i+1)); done; mkdir -p $d/sub; "
		 "echo x > $d/file; ln -s '%s' $d/link; ln -s '%s' /tmp/cg/link; mkfifo /tmp/cg/out.zz",
		 f->ws, keep);
	measure_cg_run run = MEASURE_CG_RUN_INIT;
	run.workspace = f->ws;
	run.command = cmd;
	run.scratch_dir = scratch;
	run.limits.timeout_s = 120;
	measure_cg_profile p;
	measure_sandbox_result r;
	alarm(300); /* a blocked read of the FIFO fails the test instead of hanging it */
	int rc = measure_cg_measure(&p, &r, f->sb, &run);
	alarm(0);
	assert_int_equal(rc, BASE_EINVALID);
	if (!strstr(base_error_last(), "out.zz is not a regular file (a FIFO)"))
		fail_msg("unexpected error: %s\n%s", base_error_last(), r.err ? r.err : "");
	measure_cg_profile_dispose(&p);
	measure_sandbox_result_dispose(&r);
	/* nothing of the run is left, and the links' targets are intact */
	assert_int_equal(count_entries(scratch), 0);
	struct stat st;
	assert_int_equal(stat(keep, &st), 0);
	assert_int_equal(stat(f->ws, &st), 0);
}

/* HOME is an empty, writable directory outside the work tree: nothing the
 * tree holds (a .valgrindrc) is read as the user's own, caches written to
 * HOME never land in the tree, and Python writes no bytecode there. */
static void test_home_outside_workspace(void **state)
{
	fixture *f = *state;
	write_file(f->ws, ".valgrindrc", "--collect-atstart=no\n");
	write_file(f->ws, "mod.py", "X = 1\n");
	measure_sandbox_result r;
	run_shell(f, &r,
		  "echo \"home=$HOME\"; ls -A \"$HOME\" | wc -l; touch \"$HOME/.cache-test\" && echo writable; "
		  "python3 -c 'import mod' && ls -A /workspace; echo \"vg=${VALGRIND_OPTS-unset}\"",
		  30);
	if (!strstr(r.out, "home=/tmp/home\n0\nwritable\n") || !strstr(r.out, "vg=unset\n") ||
	    strstr(r.out, "__pycache__") || strstr(r.out, ".cache-test"))
		fail_msg("HOME or bytecode in the work tree:\n%s\n%s", r.out, r.err);
	measure_sandbox_result_dispose(&r);
	char p[256];
	struct stat st;
	snprintf(p, sizeof(p), "%s/__pycache__", f->ws);
	assert_int_not_equal(stat(p, &st), 0);
}

/* No nested namespaces: the sandbox cannot make a user namespace of its
 * own (reaching kernel code no filter of ours looks at). */
static void test_no_nested_user_namespace(void **state)
{
	fixture *f = *state;
	measure_sandbox_result r;
	run_shell(f, &r, "unshare -U true && echo nested-ok || echo nested-refused", 30);
	if (!strstr(r.out, "nested-refused"))
		fail_msg("a user namespace was created inside the sandbox:\n%s\n%s", r.out, r.err);
	measure_sandbox_result_dispose(&r);
}

/* The sandbox sees only the world-readable toolchain files of /etc: a file
 * of perfbot's (readable by its user only) and any file not on the list stay
 * out, even when the name matches the list. */
static void test_etc_only_world_readable(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	char privname[128], othername[128], pub[160], priv[160], other[160];
	snprintf(privname, sizeof(privname), "python3-perfbot-test-%d", (int)getpid());
	snprintf(othername, sizeof(othername), "perfbot-test-%d.conf", (int)getpid());
	snprintf(priv, sizeof(priv), "/etc/%s", privname);
	snprintf(other, sizeof(other), "/etc/%s", othername);
	snprintf(pub, sizeof(pub), "/etc/python3-perfbot-pub-%d", (int)getpid());
	write_file("/etc", privname, "token=hunter2\n");
	write_file("/etc", othername, "token=hunter2\n");
	write_file("/etc", pub + 5, "public\n");
	assert_int_equal(chmod(priv, 0600), 0);
	assert_int_equal(chmod(other, 0644), 0);
	assert_int_equal(chmod(pub, 0644), 0);
	measure_sandbox *sb = NULL;
	int rc = measure_sandbox_new(&sb, "bwrap");
	char ws[] = "/tmp/perfbot-etc-XXXXXX";
	assert_non_null(mkdtemp(ws));
	measure_sandbox_result r;
	memset(&r, 0, sizeof(r));
	char cmd[1200];
	snprintf(cmd, sizeof(cmd),
		 "for f in %s %s %s /etc/passwd /etc/ld.so.cache; do test -e $f && echo \"seen $f\"; done; "
		 "cat %s %s 2>/dev/null; :",
		 priv, other, pub, priv, other);
	if (rc == 0) {
		measure_sandbox_prepare_dir(sb, ws);
		measure_sandbox_cmd c = MEASURE_SANDBOX_CMD_INIT;
		c.workspace = ws;
		c.shell = cmd;
		rc = measure_sandbox_run(sb, &r, &c);
	}
	unlink(priv);
	unlink(other);
	unlink(pub);
	rmdir(ws);
	measure_sandbox_free(sb);
	assert_int_equal(rc, 0);
	char want[400];
	snprintf(want, sizeof(want), "seen %s\nseen /etc/passwd\nseen /etc/ld.so.cache\n", pub);
	if (strcmp(r.out, want) != 0)
		fail_msg("/etc inside the sandbox:\n%s\nwanted:\n%s", r.out, want);
	measure_sandbox_result_dispose(&r);
}

/* An /etc entry the sandbox picked at start and that is removed since (a
 * package upgrade) is left out; the sandbox still runs. */
static void test_etc_entry_removed_since_start(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	char gone[160];
	snprintf(gone, sizeof(gone), "/etc/python3-perfbot-gone-%d", (int)getpid());
	write_file("/etc", gone + 5, "public\n");
	assert_int_equal(chmod(gone, 0644), 0);
	measure_sandbox *sb = NULL;
	int rc = measure_sandbox_new(&sb, "bwrap");
	unlink(gone);
	assert_int_equal(rc, 0);
	char ws[] = "/tmp/perfbot-etc-XXXXXX";
	assert_non_null(mkdtemp(ws));
	measure_sandbox_prepare_dir(sb, ws);
	measure_sandbox_cmd c = MEASURE_SANDBOX_CMD_INIT;
	c.workspace = ws;
	c.shell = "test -e /etc/passwd && echo ok";
	measure_sandbox_result r;
	memset(&r, 0, sizeof(r));
	rc = measure_sandbox_run(sb, &r, &c);
	if (rc < 0)
		fail_msg("sandbox run: %s", base_error_last());
	rmdir(ws);
	measure_sandbox_free(sb);
	assert_string_equal(r.out, "ok\n");
	measure_sandbox_result_dispose(&r);
}

/* A range of /etc/subuid or /etc/subgid overlapping the runs' uids is
 * refused at start with the file and the line named. */
static void test_subuid_overlap_refused(void **state)
{
	fixture *f = *state;
	if (geteuid() != 0)
		skip();
	/* the layout useradd makes: the second user's range covers 200000 */
	write_file(f->root, "subuid", "alice:100000:65536\nbob:165536:65536\n");
	write_file(f->root, "subgid", "alice:100000:65536\nbob:165536:65536\n");
	write_file(f->root, "subgid-ok", "alice:100000:65536\nbob:300000:65536\n");
	char subuid[256], subgid[256], ok[256];
	snprintf(subuid, sizeof(subuid), "%s/subuid", f->root);
	snprintf(subgid, sizeof(subgid), "%s/subgid", f->root);
	snprintf(ok, sizeof(ok), "%s/subgid-ok", f->root);
	measure_sandbox *sb = NULL;
	measure_sandbox_bwrap_options o = MEASURE_SANDBOX_BWRAP_OPTIONS_INIT;
	o.subuid_path = ok;
	o.subgid_path = subgid;
	assert_int_equal(measure_sandbox_bwrap_new(&sb, &o), BASE_EINVALID);
	assert_null(sb);
	if (!strstr(base_error_last(), "subgid line 2 (bob) gives gids 165536..231071") ||
	    !strstr(base_error_last(), "200000..204095"))
		fail_msg("unclear refusal: %s", base_error_last());
	o.subuid_path = subuid;
	o.subgid_path = ok;
	assert_int_equal(measure_sandbox_bwrap_new(&sb, &o), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "subuid line 2 (bob)"));
	/* ranges clear of 200000..204095 are fine */
	o.subuid_path = ok;
	assert_int_equal(measure_sandbox_bwrap_new(&sb, &o), 0);
	measure_sandbox_free(sb);
}

/* Handing a tree to the sandbox changes nothing above it: DATA_DIR (here
 * the fixture's 0700 root) stays closed to other users, and the run still
 * reaches its work tree and its output directory. */
static void test_ancestors_untouched(void **state)
{
	fixture *f = *state;
	char out[256];
	snprintf(out, sizeof(out), "%s/out", f->root);
	assert_int_equal(mkdir(out, 0700), 0);
	assert_int_equal(measure_sandbox_prepare_dir(f->sb, out), 0);
	measure_sandbox_mount m = { out, "/tmp/out", 1 };
	measure_sandbox_cmd c = MEASURE_SANDBOX_CMD_INIT;
	c.workspace = f->ws;
	c.shell = "echo hi > /workspace/w && echo there > /tmp/out/o && cat /workspace/w /tmp/out/o";
	c.mounts = &m;
	c.nmounts = 1;
	measure_sandbox_result r;
	assert_int_equal(measure_sandbox_run(f->sb, &r, &c), 0);
	if (!measure_sandbox_result_ok(&r) || strcmp(r.out, "hi\nthere\n") != 0)
		fail_msg("run failed: %s\n%s", r.out, r.err);
	measure_sandbox_result_dispose(&r);
	struct stat st;
	assert_int_equal(stat(f->root, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
}

/* Root without a mount namespace of its own (a container without
 * CAP_SYS_ADMIN, here: nothing to mount on): the trees are bound by path,
 * their ancestors made searchable, and runs still work. */
static void test_trees_by_path_without_mount_namespace(void **state)
{
	fixture *f = *state;
	if (geteuid() != 0)
		skip();
	measure_sandbox_bwrap_options o = MEASURE_SANDBOX_BWRAP_OPTIONS_INIT;
	o.stage_dir = "/nonexistent-perfbot-stage";
	measure_sandbox *sb = NULL;
	assert_int_equal(measure_sandbox_bwrap_new(&sb, &o), 0);
	assert_int_equal(measure_sandbox_prepare_dir(sb, f->ws), 0);
	measure_sandbox_cmd c = MEASURE_SANDBOX_CMD_INIT;
	c.workspace = f->ws;
	c.shell = "echo by-path > /workspace/p && cat /workspace/p";
	measure_sandbox_result r;
	assert_int_equal(measure_sandbox_run(sb, &r, &c), 0);
	if (!measure_sandbox_result_ok(&r) || strcmp(r.out, "by-path\n") != 0)
		fail_msg("run failed: %s\n%s", r.out, r.err);
	measure_sandbox_result_dispose(&r);
	measure_sandbox_free(sb);
	struct stat st;
	assert_int_equal(stat(f->root, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0701);
	chmod(f->root, 0700);
}

/* ---- whole-sandbox limits ------------------------------------------------ */

/* A sandbox with small whole-sandbox limits, for the limit tests. */
static measure_sandbox *small_sandbox(uint64_t memory, int pids, int cpu_s, uint64_t disk, uint64_t reserve)
{
	measure_sandbox_bwrap_options o = MEASURE_SANDBOX_BWRAP_OPTIONS_INIT;
	o.memory_bytes = memory;
	o.pids = pids;
	o.cpu_s = cpu_s;
	o.disk_bytes = disk;
	o.disk_reserve_bytes = reserve;
	measure_sandbox *sb = NULL;
	if (measure_sandbox_bwrap_new(&sb, &o) < 0)
		fail_msg("sandbox: %s", base_error_last());
	/* as root this machine has cgroups: the limits must hold through one */
	if (geteuid() == 0 && strncmp(sb->limits_mechanism, "cgroup", 6) != 0)
		fail_msg("no cgroup holds the whole-sandbox limits: %s", sb->limits_mechanism);
	return sb;
}

static void run_in(measure_sandbox *sb, fixture *f, measure_sandbox_result *r, const char *shell, int timeout_s)
{
	measure_sandbox_cmd c = MEASURE_SANDBOX_CMD_INIT;
	c.workspace = f->ws;
	c.shell = shell;
	c.limits.timeout_s = timeout_s;
	if (measure_sandbox_run(sb, r, &c) != 0)
		fail_msg("sandbox run failed: %s", base_error_last());
}

/* The directory run cgroups are made in on the v1 hierarchy `ctl`. */
static void ctl_base(char *dir, size_t cap, const char *ctl)
{
	FILE *fp = fopen("/proc/self/cgroup", "r");
	char line[512], own[512] = "", key[32];
	snprintf(key, sizeof(key), ":%s:", ctl);
	while (fp && fgets(line, sizeof(line), fp)) {
		char *p = strstr(line, key);
		if (p) {
			snprintf(own, sizeof(own), "%s", p + strlen(key));
			own[strcspn(own, "\n")] = '\0';
		}
	}
	if (fp)
		fclose(fp);
	snprintf(dir, cap, "/sys/fs/cgroup/%s%s/perfbot", ctl, strcmp(own, "/") ? own : "");
}

static void memory_base(char *dir, size_t cap)
{
	ctl_base(dir, cap, "memory");
}

/* run cgroups of this process left behind (they are removed after each run) */
static int leftover_cgroups(void)
{
	char dir[1024], prefix[32], old[32];
	memory_base(dir, sizeof(dir));
	snprintf(prefix, sizeof(prefix), "%d.", (int)getpid());
	snprintf(old, sizeof(old), "%d-", (int)getpid());
	DIR *d = opendir(dir);
	int n = 0;
	struct dirent *e;
	while (d && (e = readdir(d)) != NULL)
		n += strncmp(e->d_name, prefix, strlen(prefix)) == 0 || strncmp(e->d_name, old, strlen(old)) == 0;
	if (d)
		closedir(d);
	return n;
}

/* The run cgroups of a perfbot that died are removed when the next one
 * starts; those of a live process are left alone. */
static void test_stale_cgroups_swept(void **state)
{
	(void)state;
	char base[1024], stale[1100], live[1100];
	memory_base(base, sizeof(base));
	struct stat st;
	if (geteuid() != 0 || (mkdir(base, 0755) < 0 && errno != EEXIST)) {
		printf("SKIP test_stale_cgroups_swept: cannot create cgroups under %s (needs root and cgroup v1 memory): "
		       "%s\n",
		       base, geteuid() != 0 ? "not root" : strerror(errno));
		skip();
	}
	/* no process has a pid above the kernel's 2^22 maximum */
	snprintf(stale, sizeof(stale), "%s/%d-7", base, 99999999);
	snprintf(live, sizeof(live), "%s/%d-7", base, (int)getppid());
	assert_int_equal(mkdir(stale, 0755), 0);
	assert_int_equal(mkdir(live, 0755), 0);
	measure_sandbox *sb = NULL;
	int rc = measure_sandbox_new(&sb, "bwrap");
	measure_sandbox_free(sb);
	int stale_left = stat(stale, &st) == 0, live_left = stat(live, &st) == 0;
	rmdir(stale);
	rmdir(live);
	assert_int_equal(rc, 0);
	assert_false(stale_left);
	assert_true(live_left);
}

/* Start time of pid (field 22 of /proc/<pid>/stat), 0 when unknown. */
static unsigned long long start_of(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *fp = fopen(path, "r");
	size_t n = fp ? fread(buf, 1, sizeof(buf) - 1, fp) : 0;
	if (fp)
		fclose(fp);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	for (int field = 2; p && field < 22; field++) {
		p = strchr(p + 1, ' ');
	}
	return p ? strtoull(p + 1, NULL, 10) : 0;
}

/* A `sleep 300` whose argv[0] is `marker`, moved into the cgroups dirs[]
 * (NULL-ended) before it runs. */
static pid_t sleeper_in(const char *const *dirs, const char *marker)
{
	pid_t pid = fork();
	if (pid == 0) {
		for (int i = 0; dirs[i]; i++) {
			char p[1200];
			snprintf(p, sizeof(p), "%s/cgroup.procs", dirs[i]);
			int fd = open(p, O_WRONLY);
			if (fd < 0 || write(fd, "0", 1) != 1)
				_exit(127);
			close(fd);
		}
		execl("/bin/sleep", marker, "300", (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* 1 when the process pid runs with argv[0] marker (not a zombie). */
static int runs_as(pid_t pid, const char *marker)
{
	char path[64], buf[256];
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	FILE *fp = fopen(path, "r");
	size_t n = fp ? fread(buf, 1, sizeof(buf) - 1, fp) : 0;
	if (fp)
		fclose(fp);
	buf[n] = '\0';
	return n > 0 && strcmp(buf, marker) == 0;
}

/* How pid ended, waiting up to 5 s: the signal that killed it, 0 if it
 * exited, -1 if it still runs. */
static int ended_by(pid_t pid)
{
	for (int i = 0; i < 500; i++) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFSIGNALED(st) ? WTERMSIG(st) : 0;
		usleep(10000);
	}
	return -1;
}

/* A sandbox left running by a perfbot that died (bwrap asked to die with a
 * parent already gone) is killed and its cgroups removed when the next
 * perfbot starts: on every hierarchy, a frozen one included, and when the
 * owner's pid now belongs to another process (start time differs).  The
 * cgroups of a live perfbot, and their processes, are left alone. */
static void test_stale_cgroup_processes_killed(void **state)
{
	(void)state;
	char mem[1024], frz[1024];
	memory_base(mem, sizeof(mem));
	ctl_base(frz, sizeof(frz), "freezer");
	if (geteuid() != 0 || (mkdir(mem, 0755) < 0 && errno != EEXIST) || (mkdir(frz, 0755) < 0 && errno != EEXIST)) {
		printf("SKIP test_stale_cgroup_processes_killed: cannot create cgroups under %s and %s "
		       "(needs root and cgroup v1 memory and freezer): %s\n",
		       mem, frz, geteuid() != 0 ? "not root" : strerror(errno));
		skip();
	}
	/* the live owner: a process of this test, its real start time */
	pid_t owner = fork();
	if (owner == 0) {
		pause();
		_exit(0);
	}
	assert_true(owner > 0);
	unsigned long long ostart = start_of(owner);
	assert_true(ostart > 0);
	char dead_m[1200], dead_f[1200], reused[1200], live[1200], marker[64], lmarker[64], rmarker[64];
	/* no process has a pid above the kernel's 2^22 maximum */
	snprintf(dead_m, sizeof(dead_m), "%s/99999998.12345-0", mem);
	snprintf(dead_f, sizeof(dead_f), "%s/99999998.12345-0", frz);
	snprintf(reused, sizeof(reused), "%s/%d.%llu-0", mem, (int)owner, ostart + 1);
	snprintf(live, sizeof(live), "%s/%d.%llu-0", mem, (int)owner, ostart);
	snprintf(marker, sizeof(marker), "perfbot-stale-%d", (int)getpid());
	snprintf(rmarker, sizeof(rmarker), "perfbot-reused-%d", (int)getpid());
	snprintf(lmarker, sizeof(lmarker), "perfbot-live-%d", (int)getpid());
	assert_int_equal(mkdir(dead_m, 0755), 0);
	assert_int_equal(mkdir(dead_f, 0755), 0);
	assert_int_equal(mkdir(reused, 0755), 0);
	assert_int_equal(mkdir(live, 0755), 0);
	const char *dead_dirs[] = { dead_m, dead_f, NULL }, *reused_dirs[] = { reused, NULL },
		   *live_dirs[] = { live, NULL };
	pid_t stale = sleeper_in(dead_dirs, marker);
	pid_t rsleep = sleeper_in(reused_dirs, rmarker);
	pid_t lsleep = sleeper_in(live_dirs, lmarker);
	for (int i = 0; i < 200 && !(runs_as(stale, marker) && runs_as(rsleep, rmarker) && runs_as(lsleep, lmarker)); i++)
		usleep(10000);
	assert_true(runs_as(stale, marker));
	/* perfbot died while killing it: the group is frozen */
	char fs[1300];
	snprintf(fs, sizeof(fs), "%s/freezer.state", dead_f);
	FILE *fp = fopen(fs, "w");
	assert_non_null(fp);
	fputs("FROZEN", fp);
	fclose(fp);

	measure_sandbox *sb = NULL;
	int rc = measure_sandbox_new(&sb, "bwrap");
	measure_sandbox_free(sb);

	int stale_sig = ended_by(stale), reused_sig = ended_by(rsleep);
	int live_runs = runs_as(lsleep, lmarker);
	struct stat st;
	int dead_left = stat(dead_m, &st) == 0 || stat(dead_f, &st) == 0, reused_left = stat(reused, &st) == 0,
	    live_left = stat(live, &st) == 0;
	/* clean up whatever the outcome */
	kill(lsleep, SIGKILL);
	kill(owner, SIGKILL);
	if (stale_sig < 0) {
		FILE *t = fopen(fs, "w");
		if (t) {
			fputs("THAWED", t);
			fclose(t);
		}
		kill(stale, SIGKILL);
		waitpid(stale, NULL, 0);
	}
	if (reused_sig < 0) {
		kill(rsleep, SIGKILL);
		waitpid(rsleep, NULL, 0);
	}
	waitpid(lsleep, NULL, 0);
	waitpid(owner, NULL, 0);
	for (int i = 0; i < 100 && (rmdir(live) < 0 && errno == EBUSY); i++)
		usleep(10000);
	rmdir(dead_m);
	rmdir(dead_f);
	rmdir(reused);

	assert_int_equal(rc, 0);
	assert_int_equal(stale_sig, SIGKILL);
	assert_int_equal(reused_sig, SIGKILL);
	assert_false(dead_left);
	assert_false(reused_left);
	assert_true(live_runs);
	assert_true(live_left);
}

/* A run cgroup is named after the process that makes it, start time
 * included, also in a child forked after the probe: else the next perfbot
 * would take the live child's runs for a dead process's and kill them. */
static void test_run_cgroup_named_after_its_process(void **state)
{
	(void)state;
	measure_cgroups *cgs = NULL;
	assert_int_equal(measure_cgroups_probe(&cgs, NULL), 0);
	if (measure_cgroups_kind(cgs) == MEASURE_CGROUP_NONE) {
		printf("SKIP test_run_cgroup_named_after_its_process: cannot create cgroups (%s)\n",
		       geteuid() != 0 ? "not root" : "no usable hierarchy");
		measure_cgroups_free(cgs);
		skip();
	}
	pid_t pid = fork();
	if (pid == 0) {
		measure_cgroup cg;
		if (measure_cgroup_create(&cg, cgs, 0, 0) != 0)
			_exit(2);
		const char *dir = NULL;
		for (int i = 0; i < MEASURE_CG_NCTL && !dir; i++)
			dir = cg.dir[i];
		char want[64];
		snprintf(want, sizeof(want), "/%d.%llu-", (int)getpid(), start_of(getpid()));
		int ok = dir && strstr(dir, want) != NULL;
		if (!ok)
			printf("run cgroup %s is not named after %s\n", dir ? dir : "(none)", want);
		measure_cgroup_destroy(&cg);
		_exit(ok ? 0 : 1);
	}
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	measure_cgroups_free(cgs);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* 30 GiB across ten processes, each well under its 8 GiB RLIMIT_AS: only
 * the whole-sandbox limit stops it. */
static void test_memory_limit_whole_sandbox(void **state)
{
	fixture *f = *state;
	measure_sandbox *sb = small_sandbox(1ULL << 30, 512, 0, 0, 0);
	measure_sandbox_result r;
	run_in(sb, f, &r,
	       "i=0; while [ $i -lt 10 ]; do perl -e '$x = q(x) x (3 << 30); sleep 60' & i=$((i+1)); done; wait; "
	       "echo finished",
	       60);
	assert_int_equal(r.limit, MEASURE_SANDBOX_LIMIT_MEMORY);
	assert_int_equal(r.limit_value, 1ULL << 30);
	assert_false(r.timed_out);
	assert_false(measure_sandbox_result_ok(&r));
	assert_true(r.wall_ms < 20000);
	char *tail = measure_sandbox_result_tail(&r, 300);
	if (!strstr(tail, "[the sandbox exceeded its memory limit (1 GiB) and was killed]"))
		fail_msg("no clear reason: %s", tail);
	free(tail);
	measure_sandbox_result_dispose(&r);
	/* the host is fine and the next run works */
	run_in(sb, f, &r, "echo alive", 10);
	assert_string_equal(r.out, "alive\n");
	measure_sandbox_result_dispose(&r);
	measure_sandbox_free(sb);
	if (geteuid() == 0)
		assert_int_equal(leftover_cgroups(), 0);
}

/* 10,000 processes: the process limit of the whole sandbox ends the run
 * at once with that reason (not the timeout). */
static void test_pids_limit_whole_sandbox(void **state)
{
	fixture *f = *state;
	measure_sandbox *sb = small_sandbox(1ULL << 30, 100, 0, 0, 0);
	measure_sandbox_result r;
	run_in(sb, f, &r, "i=0; while [ $i -lt 10000 ]; do sleep 60 & i=$((i+1)); done; wait", 60);
	assert_int_equal(r.limit, MEASURE_SANDBOX_LIMIT_PIDS);
	assert_int_equal(r.limit_value, 100);
	assert_false(r.timed_out);
	assert_true(r.wall_ms < 15000);
	char *tail = measure_sandbox_result_tail(&r, 300);
	if (!strstr(tail, "[the sandbox reached its process limit (100 processes) and was killed]"))
		fail_msg("no clear reason: %s", tail);
	free(tail);
	measure_sandbox_result_dispose(&r);
	run_in(sb, f, &r, "echo alive", 10);
	assert_string_equal(r.out, "alive\n");
	measure_sandbox_result_dispose(&r);
	measure_sandbox_free(sb);
	if (geteuid() == 0)
		assert_int_equal(leftover_cgroups(), 0);
}

/* Two busy loops: the CPU time of the whole tree is bounded, not each
 * process's. */
static void test_cpu_limit_whole_sandbox(void **state)
{
	fixture *f = *state;
	measure_sandbox *sb = small_sandbox(1ULL << 30, 512, 2, 0, 0);
	measure_sandbox_cmd c = MEASURE_SANDBOX_CMD_INIT;
	c.workspace = f->ws;
	c.shell = "sh -c 'while :; do :; done' & sh -c 'while :; do :; done' & while :; do :; done";
	c.limits.timeout_s = 30;
	c.limits.cpu_s = 0; /* no RLIMIT_CPU: only the whole tree's limit applies */
	measure_sandbox_result r;
	assert_int_equal(measure_sandbox_run(sb, &r, &c), 0);
	assert_int_equal(r.limit, MEASURE_SANDBOX_LIMIT_CPU);
	assert_int_equal(r.limit_value, 2);
	assert_false(r.timed_out);
	assert_true(r.wall_ms < 10000);
	measure_sandbox_result_dispose(&r);
	measure_sandbox_free(sb);
}

/* 20 GiB in many files, each under RLIMIT_FSIZE: the disk limit of the
 * sandbox ends the run soon after 256 MiB, and the files are the
 * caller's to remove. */
static void test_disk_limit_whole_sandbox(void **state)
{
	fixture *f = *state;
	measure_sandbox *sb = small_sandbox(1ULL << 30, 512, 0, 256ULL << 20, 0);
	measure_sandbox_result r;
	run_in(sb, f, &r,
	       "mkdir -p fill; i=0; while [ $i -lt 400 ]; do head -c 52428800 /dev/zero > fill/f$i || exit 9; "
	       "i=$((i+1)); done; echo finished",
	       120);
	assert_int_equal(r.limit, MEASURE_SANDBOX_LIMIT_DISK);
	assert_false(r.timed_out);
	assert_null(strstr(r.out, "finished"));
	char *tail = measure_sandbox_result_tail(&r, 300);
	if (!strstr(tail, "[the sandbox exceeded its disk limit (256 MiB written) and was killed]"))
		fail_msg("no clear reason: %s", tail);
	free(tail);
	measure_sandbox_result_dispose(&r);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "du -sm '%s/fill' | cut -f1", f->ws);
	FILE *p = popen(cmd, "r");
	int mb = 0;
	assert_int_equal(fscanf(p, "%d", &mb), 1);
	pclose(p);
	/* stopped within a few hundred MiB of the limit, not at 20 GiB */
	if (mb > 2048)
		fail_msg("%d MiB written before the sandbox was stopped", mb);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s/fill'", f->ws);
	assert_int_equal(system(cmd), 0);
	measure_sandbox_free(sb);
}

/* Whatever the sandbox's own limit, the host disk keeps its reserve. */
static void test_disk_reserve_kept(void **state)
{
	fixture *f = *state;
	struct statvfs sv;
	assert_int_equal(statvfs(f->ws, &sv), 0);
	uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	if (avail < (1ULL << 30))
		skip();
	/* a reserve 200 MiB below what is free now */
	measure_sandbox *sb = small_sandbox(1ULL << 30, 512, 0, 0, avail - (200ULL << 20));
	measure_sandbox_result r;
	run_in(sb, f, &r,
	       "mkdir -p fill; i=0; while [ $i -lt 100 ]; do head -c 52428800 /dev/zero > fill/f$i || exit 9; "
	       "i=$((i+1)); done; echo finished",
	       120);
	assert_int_equal(r.limit, MEASURE_SANDBOX_LIMIT_DISK_FREE);
	assert_null(strstr(r.out, "finished"));
	measure_sandbox_result_dispose(&r);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s/fill'", f->ws);
	assert_int_equal(system(cmd), 0);
	measure_sandbox_free(sb);
}

/* The reason of each limit, as users read it; the tail keeps it whatever
 * its size. */
static void test_limit_reasons(void **state)
{
	(void)state;
	measure_sandbox_result r;
	memset(&r, 0, sizeof(r));
	char buf[200];
	r.limit = MEASURE_SANDBOX_LIMIT_MEMORY;
	r.limit_value = 8ULL << 30;
	assert_string_equal(measure_sandbox_result_reason(&r, buf, sizeof(buf)),
			    "the sandbox exceeded its memory limit (8 GiB) and was killed");
	r.limit = MEASURE_SANDBOX_LIMIT_DISK_FREE;
	r.limit_value = 1ULL << 30;
	assert_string_equal(measure_sandbox_result_reason(&r, buf, sizeof(buf)),
			    "the sandbox was killed: the host disk fell below 1 GiB free");
	r.limit = MEASURE_SANDBOX_LIMIT_CPU;
	r.limit_value = 3600;
	assert_string_equal(measure_sandbox_result_reason(&r, buf, sizeof(buf)),
			    "the sandbox exceeded its CPU time limit (3600 s) and was killed");
	r.err = strdup("0123456789abcdefghij");
	r.out = strdup("");
	const char *note = "[the sandbox exceeded its CPU time limit (3600 s) and was killed]";
	char *tail = measure_sandbox_result_tail(&r, strlen(note) + 1 + 4);
	assert_string_equal(tail, "ghij\n[the sandbox exceeded its CPU time limit (3600 s) and was killed]");
	free(tail);
	assert_false(measure_sandbox_result_ok(&r));
	measure_sandbox_result_dispose(&r);
}

/* ---- spawn: a long-lived process ------------------------------------------ */

/* Reads the proc's merged output until `want` appears or EOF (or 10 s). */
static char *read_until(measure_sandbox_proc *p, const char *want)
{
	static char buf[65536];
	size_t len = 0;
	buf[0] = '\0';
	for (int i = 0; i < 1000 && len < sizeof(buf) - 1; i++) {
		struct pollfd pfd = { .fd = p->out_fd, .events = POLLIN };
		if (poll(&pfd, 1, 10) <= 0)
			continue;
		ssize_t n = read(p->out_fd, buf + len, sizeof(buf) - 1 - len);
		if (n == 0)
			break;
		if (n > 0) {
			len += (size_t)n;
			buf[len] = '\0';
			if (want && strstr(buf, want))
				break;
		}
	}
	return buf;
}

static measure_sandbox_proc *spawn_shell(measure_sandbox *sb, fixture *f, const char *shell, const atomic_int *cancel)
{
	measure_sandbox_cmd c = MEASURE_SANDBOX_CMD_INIT;
	c.workspace = f->ws;
	c.shell = shell;
	c.limits.timeout_s = 0;
	c.cancel = cancel;
	measure_sandbox_proc *p = NULL;
	if (measure_sandbox_spawn(sb, &p, &c) != 0)
		fail_msg("spawn failed: %s", base_error_last());
	return p;
}

/* stdin in, stdout and stderr merged out, the exit status; the same
 * confinement as run(): no descriptor of perfbot's, nothing of its files. */
static void test_spawn_io_and_status(void **state)
{
	fixture *f = *state;
	int key = open(f->secret, O_RDONLY);
	int high = fcntl(key, F_DUPFD, 200);
	assert_true(high >= 200);
	char shell[512];
	snprintf(shell, sizeof(shell),
		 "read line; echo \"got $line\"; echo err >&2; ls /proc/self/fd | tr '\\n' ' '; echo; "
		 "cat '%s' 2>&1 | grep -c secret; id -u; exit 7",
		 f->secret);
	measure_sandbox_proc *p = spawn_shell(f->sb, f, shell, NULL);
	assert_true(p->in_fd >= 0 && p->out_fd >= 0);
	assert_int_equal(p->wait(p, 0, NULL), 0);
	assert_int_equal(send(p->in_fd, "hello\n", 6, MSG_NOSIGNAL), 6);
	const char *out = read_until(p, NULL);
	/* 0, 1, 2 and ls's own directory */
	assert_string_equal(out, "got hello\nerr\n0 1 2 3 \n0\n1000\n");
	measure_sandbox_result st;
	assert_int_equal(p->wait(p, 5000, &st), 1);
	assert_int_equal(st.exit_code, 7);
	assert_false(st.cancelled || st.timed_out);
	assert_null(st.out);
	/* writing to a process that has gone is an error, not a SIGPIPE */
	assert_true(send(p->in_fd, "x\n", 2, MSG_NOSIGNAL) < 0);
	measure_sandbox_proc_free(p);
	close(high);
	close(key);
}

/* kill(), the cancel flag and free each take the whole tree down. */
static void test_spawn_kill_cancel_free(void **state)
{
	fixture *f = *state;
	char marker[64], shell[160];
	snprintf(marker, sizeof(marker), "sleep 33.%d", (int)getpid());
	snprintf(shell, sizeof(shell), "setsid /bin/%s & /bin/%s; :", marker, marker);
	pid_t pids[64];

	measure_sandbox_proc *p = spawn_shell(f->sb, f, shell, NULL);
	for (int i = 0; i < 500 && find_marked(pids, 64, marker) < 2; i++)
		sleep_ms(20);
	assert_true(find_marked(pids, 64, marker) >= 2);
	int64_t t0 = base_mono_ms();
	p->kill(p);
	measure_sandbox_result st;
	/* at once, not after the 33 s sleep (the margin is for a loaded machine) */
	assert_int_equal(p->wait(p, 10000, &st), 1);
	assert_true(base_mono_ms() - t0 < 10000);
	assert_int_equal(st.term_signal, SIGKILL);
	assert_int_equal(find_marked(pids, 64, marker), 0);
	measure_sandbox_proc_free(p);

	atomic_int cancel = 0;
	p = spawn_shell(f->sb, f, shell, &cancel);
	for (int i = 0; i < 500 && find_marked(pids, 64, marker) < 2; i++)
		sleep_ms(20);
	cancel = 1;
	assert_int_equal(p->wait(p, 10000, &st), 1);
	assert_true(st.cancelled);
	assert_int_equal(find_marked(pids, 64, marker), 0);
	measure_sandbox_proc_free(p);

	p = spawn_shell(f->sb, f, shell, NULL);
	for (int i = 0; i < 500 && find_marked(pids, 64, marker) < 2; i++)
		sleep_ms(20);
	measure_sandbox_proc_free(p);
	int n = find_marked(pids, 64, marker);
	for (int i = 0; i < 200 && n > 0; i++) {
		sleep_ms(50);
		n = find_marked(pids, 64, marker);
	}
	assert_int_equal(n, 0);
}

static void *spawn_in_thread(void *arg)
{
	void **a = arg;
	a[2] = spawn_shell(a[0], a[1], "cat", NULL);
	return NULL;
}

/* A process spawned by a thread that has since ended lives on: the
 * sandbox dies with the thread that forked it, which is the proc's own. */
static void test_spawn_outlives_its_thread(void **state)
{
	fixture *f = *state;
	void *a[3] = { f->sb, f, NULL };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, spawn_in_thread, a), 0);
	pthread_join(th, NULL);
	measure_sandbox_proc *p = a[2];
	sleep_ms(300);
	assert_int_equal(p->wait(p, 0, NULL), 0);
	assert_int_equal(send(p->in_fd, "still here\n", 11, MSG_NOSIGNAL), 11);
	assert_string_equal(read_until(p, "here\n"), "still here\n");
	measure_sandbox_proc_free(p);
}

/* The whole-sandbox limits hold for a spawned process too. */
static void test_spawn_whole_sandbox_limit(void **state)
{
	fixture *f = *state;
	measure_sandbox *sb = small_sandbox(0, 64, 0, 0, 0);
	measure_sandbox_proc *p = spawn_shell(sb, f, "while :; do sleep 30 & done", NULL);
	measure_sandbox_result st;
	assert_int_equal(p->wait(p, 20000, &st), 1);
	if (geteuid() == 0)
		assert_int_equal(st.limit, MEASURE_SANDBOX_LIMIT_PIDS);
	measure_sandbox_proc_free(p);
	measure_sandbox_free(sb);
	if (geteuid() == 0)
		assert_int_equal(leftover_cgroups(), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_network),
		cmocka_unit_test(test_spawn_io_and_status),
		cmocka_unit_test(test_spawn_kill_cancel_free),
		cmocka_unit_test(test_spawn_outlives_its_thread),
		cmocka_unit_test(test_nothing_of_perfbot_visible),
		cmocka_unit_test(test_environment_is_fixed),
		cmocka_unit_test(test_no_inherited_fds),
		cmocka_unit_test(test_tmp_is_sized),
		cmocka_unit_test(test_sandbox_dies_with_perfbot),
		cmocka_unit_test(test_started_process_dies_with_perfbot),
		cmocka_unit_test(test_fork_bomb_stopped),
		cmocka_unit_test(test_infinite_loop_times_out),
		cmocka_unit_test(test_big_write_stopped),
		cmocka_unit_test(test_output_cap),
		cmocka_unit_test(test_exit_status),
		cmocka_unit_test(test_missing_bwrap_fails),
		cmocka_unit_test(test_measurement_deterministic),
		cmocka_unit_test(test_measure_hostile_output_dir),
		cmocka_unit_test(test_home_outside_workspace),
		cmocka_unit_test(test_no_nested_user_namespace),
		cmocka_unit_test(test_etc_only_world_readable),
		cmocka_unit_test(test_etc_entry_removed_since_start),
		cmocka_unit_test(test_subuid_overlap_refused),
		cmocka_unit_test(test_ancestors_untouched),
		cmocka_unit_test(test_trees_by_path_without_mount_namespace),
		cmocka_unit_test(test_stale_cgroups_swept),
		cmocka_unit_test(test_stale_cgroup_processes_killed),
		cmocka_unit_test(test_run_cgroup_named_after_its_process),
		cmocka_unit_test(test_memory_limit_whole_sandbox),
		cmocka_unit_test(test_pids_limit_whole_sandbox),
		cmocka_unit_test(test_spawn_whole_sandbox_limit),
		cmocka_unit_test(test_cpu_limit_whole_sandbox),
		cmocka_unit_test(test_disk_limit_whole_sandbox),
		cmocka_unit_test(test_disk_reserve_kept),
		cmocka_unit_test(test_limit_reasons),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
