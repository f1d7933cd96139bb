/* Running a benchmark under callgrind (or cachegrind) in the sandbox (see
 * callgrind_run.h): the fixed valgrind command line, a per-run output
 * directory mounted at /tmp/cg, and reading the files valgrind left there
 * into a profile through the pure parser (callgrind_parse.c).
 *
 * The output directory is writable from inside the sandbox: files in it are
 * read only when they are regular files (never a FIFO, device or link), and
 * it is removed without following links.  No shared state. */
#include "measure/callgrind_run.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/error.h"

#define MAX_REMOVE_DEPTH 32    /* directories open at once while removing a tree */
#define MAX_OUTPUT_FILES 64
#define MAX_OUTPUT_BYTES (512u << 20) /* per callgrind output file */

/* --command-line-only=yes first: valgrind reads no option file and no
 * $VALGRIND_OPTS, in this process or in any traced child (valgrind passes
 * its own options on to them). */
static const char *const cg_fixed_args[] = {
	"setarch", "-R", "valgrind", "--command-line-only=yes", "--tool=callgrind", "--cache-sim=yes",
	"--I1=32768,8,64", "--D1=32768,8,64", "--LL=8388608,16,64", "--trace-children=yes",
	"--callgrind-out-file=/tmp/cg/out.%p", NULL,
};

/* cachegrind knows nothing of callgrind's client requests: it counts the
 * whole process whatever the harness or the code asks for. */
static const char *const whole_fixed_args[] = {
	"setarch", "-R", "valgrind", "--command-line-only=yes", "--tool=cachegrind", "--cache-sim=yes",
	"--I1=32768,8,64", "--D1=32768,8,64", "--LL=8388608,16,64", "--trace-children=yes",
	"--cachegrind-out-file=/tmp/cg/out.%p", NULL,
};

/* A command made only of plain words runs directly (no shell process in the
 * measurement); anything else goes through /bin/sh -c.  So does a command
 * that starts with environment assignments (`N=1000 ./bench`): run directly,
 * "N=1000" would be taken for the program. */
static int plain_words(const char *s)
{
	while (*s == ' ')
		s++;
	if (!*s || memchr(s, '=', strcspn(s, " ")))
		return 0;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (!(c == ' ' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr("_./=:,+@%-", c)))
			return 0;
	}
	return 1;
}

void measure_cg_argv_free(char **argv)
{
	if (!argv)
		return;
	for (size_t i = 0; argv[i]; i++)
		free(argv[i]);
	free(argv);
}

static int build_argv(char ***out, const char *const *fixed, const char *command, int region)
{
	*out = NULL;
	if (!command || !*command)
		return base_error_set(BASE_EINVALID, "benchmark command is empty");
	size_t cap = 16 + strlen(command) / 2 + 4;
	char **v = calloc(cap, sizeof(char *));
	if (!v)
		return base_error_set(BASE_ENOMEM, "out of memory");
	size_t n = 0;
	for (size_t i = 0; fixed[i]; i++)
		v[n++] = strdup(fixed[i]);
	if (region)
		v[n++] = strdup("--instr-atstart=no");
	if (plain_words(command)) {
		const char *s = command;
		while (*s) {
			while (*s == ' ')
				s++;
			if (!*s)
				break;
			size_t l = strcspn(s, " ");
			v[n++] = strndup(s, l);
			s += l;
		}
	} else {
		v[n++] = strdup("/bin/sh");
		v[n++] = strdup("-c");
		v[n++] = strdup(command);
	}
	for (size_t i = 0; i < n; i++) {
		if (!v[i]) {
			measure_cg_argv_free(v);
			return base_error_set(BASE_ENOMEM, "out of memory");
		}
	}
	*out = v;
	return 0;
}

int measure_cg_build_argv(char ***out, const char *command, int region)
{
	return build_argv(out, cg_fixed_args, command, region);
}

int measure_cg_build_argv_whole(char ***out, const char *command)
{
	return build_argv(out, whole_fixed_args, command, 0);
}

/* Reads the regular file name of dirfd into b.  The directory is the
 * sandbox's: a FIFO there would block a plain open or read for ever, a link
 * could point anywhere, so only a regular file is read. */
static int read_file_capped(base_buf *b, int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ELOOP)
		return base_error_set(BASE_EINVALID, "callgrind output %s is a symbolic link, not a regular file", name);
	if (fd < 0)
		return base_error_set(BASE_EGENERIC, "cannot open callgrind output %s: %s", name, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return base_error_set(BASE_EGENERIC, "callgrind output %s: %s", name, strerror(e));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return base_error_set(BASE_EINVALID, "callgrind output %s is not a regular file (a %s)", name,
				     S_ISFIFO(st.st_mode)  ? "FIFO"
				     : S_ISDIR(st.st_mode) ? "directory"
				     : S_ISSOCK(st.st_mode) ? "socket"
							    : "device");
	}
	char chunk[65536];
	int error = 0;
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			error = base_error_set(BASE_EGENERIC, "reading callgrind output %s: %s", name, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		if ((error = base_buf_put(b, chunk, (size_t)n)) < 0) {
			error = base_error_set(BASE_ETOOBIG, "callgrind output %s exceeds %u bytes", name, MAX_OUTPUT_BYTES);
			break;
		}
	}
	close(fd);
	return error;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Parses every out.* file of dir (in name order) into p; cachegrind's
 * files when whole. */
static int parse_dir(measure_cg_profile *p, const char *dir, int whole)
{
	int error = 0;
	char *names[MAX_OUTPUT_FILES];
	size_t n = 0;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return base_error_set(BASE_EGENERIC, "callgrind output dir %s: %s", dir, strerror(errno));
	DIR *d = fdopendir(dup(dfd));
	if (!d) {
		close(dfd);
		return base_error_set(BASE_EGENERIC, "callgrind output dir %s: %s", dir, strerror(errno));
	}
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, "out.", 4) != 0)
			continue;
		if (n == MAX_OUTPUT_FILES) {
			error = base_error_set(BASE_ETOOBIG, "more than %d processes under callgrind", MAX_OUTPUT_FILES);
			break;
		}
		if (!(names[n] = strdup(e->d_name))) {
			error = base_error_set(BASE_ENOMEM, "out of memory");
			break;
		}
		n++;
	}
	closedir(d);
	if (error == 0 && n == 0)
		error = base_error_set(BASE_EGENERIC, "callgrind wrote no output file");
	if (error == 0)
		qsort(names, n, sizeof(names[0]), cmp_str);
	base_buf b;
	base_buf_init(&b, MAX_OUTPUT_BYTES);
	for (size_t i = 0; i < n && error == 0; i++) {
		base_buf_reset(&b);
		if ((error = read_file_capped(&b, dfd, names[i])) < 0)
			break;
		if ((error = whole ? measure_cg_parse_totals(p, b.ptr ? b.ptr : "", b.len)
				   : measure_cg_parse(p, b.ptr ? b.ptr : "", b.len)) < 0) {
			char msg[512];
			snprintf(msg, sizeof(msg), "%s", base_error_last());
			error = base_error_set(error, "%s: %s", names[i], msg);
		}
	}
	base_buf_dispose(&b);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	close(dfd);
	return error;
}

/* Removes what the open directory dfd (closed here) holds, depth-first and
 * without following links (a link is removed, never what it points to).
 * Below MAX_REMOVE_DEPTH a directory is moved up into topfd instead, for a
 * later pass, so a deep tree never holds many descriptors at once.  Returns
 * how many entries were removed or moved. */
static size_t remove_entries(int dfd, int topfd, int depth, unsigned *moved)
{
	size_t done = 0;
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return 0;
	}
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (unlinkat(dfd, e->d_name, 0) == 0) {
			done++;
			continue;
		}
		if (errno != EISDIR)
			continue;
		if (depth >= MAX_REMOVE_DEPTH) {
			for (int tries = 0; tries < 8; tries++) {
				char name[32];
				snprintf(name, sizeof(name), ".perfbot-rm-%u", (*moved)++);
				if (renameat(dfd, e->d_name, topfd, name) == 0) {
					done++;
					break;
				}
			}
			continue;
		}
		int sub = openat(dfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub >= 0)
			done += remove_entries(sub, topfd, depth + 1, moved);
		if (unlinkat(dfd, e->d_name, AT_REMOVEDIR) == 0)
			done++;
	}
	closedir(d);
	return done;
}

/* Removes dir and everything in it (see remove_entries); passes repeat
 * while they make progress, for the directories moved up. */
static void remove_dir(const char *dir)
{
	unsigned moved = 0;
	int topfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (topfd < 0)
		return;
	for (;;) {
		/* a fresh open of the directory: each pass reads it from the start */
		int dfd = openat(topfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0 || remove_entries(dfd, topfd, 0, &moved) == 0)
			break;
	}
	close(topfd);
	rmdir(dir);
}

int measure_cg_measure(measure_cg_profile *profile, measure_sandbox_result *result, measure_sandbox *sb,
		     const measure_cg_run *run)
{
	int error = 0;
	char **argv = NULL;
	char dir[4096];
	int made_dir = 0;

	measure_cg_profile_init(profile);
	memset(result, 0, sizeof(*result));
	if (!run->scratch_dir || !run->workspace)
		return base_error_set(BASE_EINVALID, "measurement needs a workspace and a scratch directory");
	if ((error = run->whole_process ? measure_cg_build_argv_whole(&argv, run->command)
					: measure_cg_build_argv(&argv, run->command, run->region)) < 0)
		return error;
	if ((size_t)snprintf(dir, sizeof(dir), "%s/cg-XXXXXX", run->scratch_dir) >= sizeof(dir)) {
		error = base_error_set(BASE_EINVALID, "scratch path too long");
		goto done;
	}
	if (!mkdtemp(dir)) {
		error = base_error_set(BASE_EGENERIC, "cannot create %s: %s", dir, strerror(errno));
		goto done;
	}
	made_dir = 1;
	if ((error = measure_sandbox_prepare_dir(sb, dir)) < 0)
		goto done;

	/* --command-line-only=yes already keeps valgrind from reading it; an
	 * empty read-only file in its place also keeps older valgrinds and
	 * anything else that reads it from seeing it */
	measure_sandbox_mount m[2] = { { dir, "/tmp/cg", 1 }, { "/dev/null", MEASURE_SANDBOX_WORKSPACE "/.valgrindrc", 0 } };
	char rc[4096];
	struct stat rst;
	int hide = (size_t)snprintf(rc, sizeof(rc), "%s/.valgrindrc", run->workspace) < sizeof(rc) &&
		   lstat(rc, &rst) == 0 && S_ISREG(rst.st_mode);
	measure_sandbox_cmd cmd = MEASURE_SANDBOX_CMD_INIT;
	cmd.workspace = run->workspace;
	cmd.argv = (const char *const *)argv;
	cmd.mounts = m;
	cmd.nmounts = hide ? 2 : 1;
	cmd.limits = run->limits;
	cmd.cancel = run->cancel;
	if ((error = measure_sandbox_run(sb, result, &cmd)) < 0)
		goto done;
	if (result->timed_out) {
		error = base_error_set(BASE_ETIMEOUT, "timed out after %d s", run->limits.timeout_s);
		goto done;
	}
	if (result->cancelled) {
		error = base_error_set(BASE_ECANCELLED, "cancelled");
		goto done;
	}
	if (result->limit) {
		char why[160];
		error = base_error_set(BASE_EGENERIC, "%s", measure_sandbox_result_reason(result, why, sizeof(why)));
		goto done;
	}
	if (result->term_signal) {
		error = base_error_set(BASE_EGENERIC, "killed by signal %d", result->term_signal);
		goto done;
	}
	if (result->exit_code != 0) {
		error = base_error_set(BASE_EGENERIC, "exited with status %d", result->exit_code);
		goto done;
	}
	error = parse_dir(profile, dir, run->whole_process);

done:
	if (made_dir)
		remove_dir(dir);
	measure_cg_argv_free(argv);
	return error;
}

static char *first_line(const char *s)
{
	size_t l = strcspn(s, "\n");
	while (l && (s[l - 1] == ' ' || s[l - 1] == '\r'))
		l--;
	return l ? strndup(s, l) : NULL;
}

int measure_cg_toolchain(json_t **out, measure_sandbox *sb, const char *workspace)
{
	static const char *const tools[2][3] = { { "valgrind", "valgrind", "--version" }, { "cc", "cc", "--version" } };
	json_t *doc = json_object();
	if (!doc)
		return base_error_set(BASE_ENOMEM, "out of memory");
	for (int i = 0; i < 2; i++) {
		const char *argv[] = { tools[i][1], tools[i][2], NULL };
		measure_sandbox_cmd cmd = MEASURE_SANDBOX_CMD_INIT;
		cmd.workspace = workspace;
		cmd.argv = argv;
		cmd.limits.timeout_s = 30;
		measure_sandbox_result r;
		int error = measure_sandbox_run(sb, &r, &cmd);
		if (error < 0) {
			measure_sandbox_result_dispose(&r);
			json_decref(doc);
			return error;
		}
		char *v = measure_sandbox_result_ok(&r) ? first_line(r.out) : NULL;
		json_object_set_new(doc, tools[i][0], v ? json_string(v) : json_null());
		free(v);
		measure_sandbox_result_dispose(&r);
	}
	*out = doc;
	return 0;
}
