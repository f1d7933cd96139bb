/* Run cgroups for the sandbox (see cgroup.h).
 *
 * v1: one directory per hierarchy (memory, pids, cpuacct, freezer), each
 * under the cgroup perfbot itself is in on that hierarchy.  The memory limit
 * is memory.limit_in_bytes and, where swap accounting exists, the same value
 * in memory.memsw.limit_in_bytes (no escape into swap); an OOM kill shows in
 * memory.oom_control's oom_kill.  A kill freezes the group first so nothing
 * forks while the pids are killed one by one.
 *
 * v2: one directory; memory.max with memory.swap.max 0, pids.max,
 * cgroup.kill (or cgroup.freeze then SIGKILL each pid on kernels before
 * 5.14).  perfbot's own cgroup must be able to delegate the controllers: if
 * it holds processes (the "no internal processes" rule), perfbot moves
 * itself into a leaf "perfbot-main" first.
 *
 * Nothing here keeps state between runs beyond the read-only measure_cgroups;
 * a run's directory is named after perfbot's pid, its start time and a
 * counter ("<pid>.<start>-<n>") so that several perfbot processes can share a
 * parent, and so that at start-up the cgroups of a perfbot that no longer runs
 * (its pid gone or reused) are told from those of a live one: those are
 * swept, the processes still in them killed. */
#include "measure/cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/error.h"
#include "base/log.h"

static const char *const ctl_names[MEASURE_CG_NCTL] = { "memory", "pids", "cpuacct", "freezer" };

struct measure_cgroups {
	measure_cgroup_kind kind;
	char *base[MEASURE_CG_NCTL]; /* owned: ".../perfbot" per hierarchy (v2: slot 0 only) */
	int has[MEASURE_CG_NCTL];
	int v2_kill;               /* cgroup.kill exists */
	char describe[PATH_MAX + 200];
	atomic_uint seq;
	pid_t pid;                 /* the process that probed, */
	uint64_t start;            /* its start time (0 unknown), in run cgroups' names */
};

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Writes s to path; 0 or an errno value. */
static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	size_t l = strlen(s);
	ssize_t w = write(fd, s, l);
	int e = w == (ssize_t)l ? 0 : (w < 0 ? errno : EIO);
	close(fd);
	return e;
}

/* Reads up to cap-1 bytes of path into buf; the length, or -1. */
static ssize_t read_small(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t n = 0;
	while (n + 1 < cap) {
		ssize_t r = read(fd, buf + n, cap - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	return (ssize_t)n;
}

static uint64_t parse_u64(const char *s, const char **end)
{
	uint64_t v = 0;
	while (*s >= '0' && *s <= '9') {
		v = v * 10 + (uint64_t)(*s - '0');
		s++;
	}
	if (end)
		*end = s;
	return v;
}

/* The value after "key " at the start of a line of `text`, or `dflt`. */
static uint64_t keyed_value(const char *text, const char *key, uint64_t dflt)
{
	size_t kl = strlen(key);
	for (const char *p = text; p && *p;) {
		if (strncmp(p, key, kl) == 0 && p[kl] == ' ')
			return parse_u64(p + kl + 1, NULL);
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return dflt;
}

static uint64_t file_keyed(const char *dir, const char *file, const char *key, uint64_t dflt)
{
	char path[PATH_MAX], buf[4096];
	if (!dir || (size_t)snprintf(path, sizeof(path), "%s/%s", dir, file) >= sizeof(path) ||
	    read_small(path, buf, sizeof(buf)) < 0)
		return dflt;
	return keyed_value(buf, key, dflt);
}

static uint64_t file_u64(const char *dir, const char *file, uint64_t dflt)
{
	char path[PATH_MAX], buf[64];
	if (!dir || (size_t)snprintf(path, sizeof(path), "%s/%s", dir, file) >= sizeof(path) ||
	    read_small(path, buf, sizeof(buf)) <= 0 || buf[0] < '0' || buf[0] > '9')
		return dflt;
	return parse_u64(buf, NULL);
}

static int write_in(const char *dir, const char *file, const char *s)
{
	char path[PATH_MAX];
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, file) >= sizeof(path))
		return ENAMETOOLONG;
	return write_str(path, s);
}

/* perfbot's own cgroup on the hierarchy whose line in /proc/self/cgroup
 * lists `ctl` ("" for the v2 line "0::/path"); into out. */
static int own_path(char *out, size_t cap, const char *ctl)
{
	char buf[8192];
	if (read_small("/proc/self/cgroup", buf, sizeof(buf)) <= 0)
		return -1;
	for (char *line = buf; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		char *c1 = strchr(line, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (c1 && c2) {
			*c2 = '\0';
			const char *list = c1 + 1;
			int match = 0;
			if (!*ctl) {
				match = !*list && strncmp(line, "0:", 2) == 0;
			} else {
				size_t l = strlen(ctl);
				for (const char *p = list; *p;) {
					size_t n = strcspn(p, ",");
					if (n == l && strncmp(p, ctl, l) == 0)
						match = 1;
					p += n;
					if (*p == ',')
						p++;
				}
			}
			if (match)
				return (size_t)snprintf(out, cap, "%s", strcmp(c2 + 1, "/") ? c2 + 1 : "") < cap ? 0 : -1;
		}
		line = nl ? nl + 1 : NULL;
	}
	return -1;
}

/* Distinct pids a sweep killed (counted past the cap, not remembered). */
typedef struct {
	pid_t pid[1024];
	size_t n;
	int count;
} killed_set;

static void kill_one(pid_t p, killed_set *ks)
{
	if (p <= 0)
		return;
	kill(p, SIGKILL);
	if (!ks)
		return;
	for (size_t i = 0; i < ks->n; i++)
		if (ks->pid[i] == p)
			return;
	if (ks->n < sizeof(ks->pid) / sizeof(ks->pid[0]))
		ks->pid[ks->n++] = p;
	ks->count++;
}

/* SIGKILLs every pid listed, noting each in ks (may be NULL); the number
 * listed (-1 when unreadable). */
static int kill_listed(const char *dir, killed_set *ks)
{
	char path[PATH_MAX];
	if (!dir || (size_t)snprintf(path, sizeof(path), "%s/cgroup.procs", dir) >= sizeof(path))
		return -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	char buf[8192], num[24];
	size_t nl = 0;
	int count = 0;
	ssize_t r;
	while ((r = read(fd, buf, sizeof(buf))) > 0 || (r < 0 && errno == EINTR)) {
		for (ssize_t i = 0; i < r; i++) {
			if (buf[i] >= '0' && buf[i] <= '9') {
				if (nl < sizeof(num) - 1)
					num[nl++] = buf[i];
				continue;
			}
			if (nl) {
				num[nl] = '\0';
				kill_one((pid_t)parse_u64(num, NULL), ks);
				count++;
				nl = 0;
			}
		}
	}
	if (nl) {
		num[nl] = '\0';
		kill_one((pid_t)parse_u64(num, NULL), ks);
		count++;
	}
	close(fd);
	return count;
}

/* The start time of process pid (clock ticks after boot, field 22 of
 * /proc/<pid>/stat); -1 when there is no such process. */
static int proc_start(pid_t pid, uint64_t *out)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if (read_small(path, buf, sizeof(buf)) <= 0)
		return -1;
	/* the command name in parentheses may hold spaces and ')' */
	const char *p = strrchr(buf, ')');
	if (!p)
		return -1;
	p++;
	for (int field = 2; field < 22 && p; field++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	if (!p || *p < '0' || *p > '9')
		return -1;
	*out = parse_u64(p, NULL);
	return 0;
}

/* Kills every process left in a stale run cgroup and removes it: thaws it
 * first (a perfbot that died while killing may have left it frozen, and a
 * frozen process does not die), uses cgroup.kill where the kernel has it,
 * and lists and kills again until the group is empty (~2 s at most). */
static void sweep_one(const char *dir)
{
	killed_set ks;
	ks.n = 0;
	ks.count = 0;
	char path[PATH_MAX];
	(void)write_in(dir, "freezer.state", "THAWED"); /* v1 freezer hierarchy only */
	(void)write_in(dir, "cgroup.freeze", "0");      /* v2 only */
	int listed = kill_listed(dir, &ks);
	if (listed > 0 && (size_t)snprintf(path, sizeof(path), "%s/cgroup.kill", dir) < sizeof(path) &&
	    access(path, F_OK) == 0)
		(void)write_str(path, "1");
	for (int i = 0; i < 200 && listed > 0; i++) {
		sleep_ms(10);
		listed = kill_listed(dir, &ks);
	}
	int removed = 0;
	for (int t = 0; t < 50; t++) {
		if (rmdir(dir) == 0) {
			removed = 1;
			break;
		}
		if (errno != EBUSY)
			break;
		sleep_ms(10);
	}
	char n[24];
	snprintf(n, sizeof(n), "%d", ks.count);
	base_log(removed ? BASE_LOG_INFO : BASE_LOG_WARN,
		 removed ? "stale sandbox cgroup swept" : "stale sandbox cgroup swept but not removed", "cgroup", dir,
		 "killed", n, "error", removed ? NULL : strerror(errno), NULL);
}

/* Sweeps the cgroups a perfbot that no longer runs left in base: run
 * cgroups "<pid>.<start>-<n>" whose process <pid> does not exist or started
 * at another time than <start> (the pid was reused), older "<pid>-<n>" and
 * "probe-<pid>" ones whose pid does not exist.  Processes still in them (a
 * sandbox whose bwrap lost its parent before it could ask to die with it)
 * are killed.  Those of a live perfbot, this one included, are left alone. */
static void sweep_stale(const char *base)
{
	DIR *d = opendir(base);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		const char *end;
		const char *name = strncmp(e->d_name, "probe-", 6) == 0 ? e->d_name + 6 : e->d_name;
		uint64_t pid = parse_u64(name, &end);
		if (end == name || pid == 0 || pid > INT_MAX)
			continue;
		int has_start = 0;
		uint64_t start = 0, now_start;
		if (*end == '.' && name == e->d_name) {
			const char *s = end + 1;
			start = parse_u64(s, &end);
			if (end == s)
				continue;
			has_start = 1;
		}
		if (*end != '-' && *end != '\0')
			continue;
		if (has_start) {
			if (proc_start((pid_t)pid, &now_start) == 0 && now_start == start)
				continue;
		} else if ((pid_t)pid == getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH) {
			continue;
		}
		char dir[PATH_MAX];
		if ((size_t)snprintf(dir, sizeof(dir), "%s/%s", base, e->d_name) < sizeof(dir))
			sweep_one(dir);
	}
	closedir(d);
}

/* Makes base (EEXIST is fine) and checks a run cgroup can be made in it. */
static int usable_base(const char *base)
{
	if (mkdir(base, 0755) < 0 && errno != EEXIST)
		return 0;
	char probe[PATH_MAX];
	if ((size_t)snprintf(probe, sizeof(probe), "%s/probe-%ld", base, (long)getpid()) >= sizeof(probe))
		return 0;
	if (mkdir(probe, 0755) < 0 && errno != EEXIST)
		return 0;
	rmdir(probe);
	return 1;
}

static int probe_v2(measure_cgroups *cgs, const char *root)
{
	char own[PATH_MAX], dir[PATH_MAX], buf[512], base[PATH_MAX];
	if ((size_t)snprintf(dir, sizeof(dir), "%s/cgroup.controllers", root) >= sizeof(dir) ||
	    read_small(dir, buf, sizeof(buf)) < 0 || own_path(own, sizeof(own), "") < 0)
		return 0;
	if ((size_t)snprintf(dir, sizeof(dir), "%s%s", root, own) >= sizeof(dir))
		return 0;
	char ctrls[512];
	char cpath[PATH_MAX];
	if ((size_t)snprintf(cpath, sizeof(cpath), "%s/cgroup.controllers", dir) >= sizeof(cpath) ||
	    read_small(cpath, ctrls, sizeof(ctrls)) < 0 || !strstr(ctrls, "memory") || !strstr(ctrls, "pids"))
		return 0;
	int cpu = strstr(ctrls, "cpu") != NULL;
	const char *want = cpu ? "+memory +pids +cpu" : "+memory +pids";
	if (write_in(dir, "cgroup.subtree_control", want) == EBUSY) {
		/* perfbot's cgroup holds processes: move perfbot into a leaf */
		char leaf[PATH_MAX];
		if ((size_t)snprintf(leaf, sizeof(leaf), "%s/perfbot-main", dir) >= sizeof(leaf) ||
		    (mkdir(leaf, 0755) < 0 && errno != EEXIST) || write_in(leaf, "cgroup.procs", "0") != 0 ||
		    write_in(dir, "cgroup.subtree_control", want) != 0)
			return 0;
	}
	if ((size_t)snprintf(base, sizeof(base), "%s/perfbot", dir) >= sizeof(base) || !usable_base(base) ||
	    write_in(base, "cgroup.subtree_control", want) != 0)
		return 0;
	cgs->kind = MEASURE_CGROUP_V2;
	cgs->base[0] = strdup(base);
	cgs->has[MEASURE_CG_MEMORY] = cgs->has[MEASURE_CG_PIDS] = cgs->has[MEASURE_CG_FREEZER] = 1;
	cgs->has[MEASURE_CG_CPUACCT] = cpu;
	char kill_path[PATH_MAX];
	cgs->v2_kill = (size_t)snprintf(kill_path, sizeof(kill_path), "%s/cgroup.kill", dir) < sizeof(kill_path) &&
		       access(kill_path, F_OK) == 0;
	snprintf(cgs->describe, sizeof(cgs->describe), "cgroup v2 (memory, pids%s, %s) at %s", cpu ? ", cpu" : "",
		 cgs->v2_kill ? "cgroup.kill" : "cgroup.freeze", base);
	return cgs->base[0] != NULL;
}

static void probe_v1(measure_cgroups *cgs, const char *root)
{
	int any = 0;
	base_buf d;
	base_buf_init(&d, sizeof(cgs->describe));
	for (int i = 0; i < MEASURE_CG_NCTL; i++) {
		char own[PATH_MAX], base[PATH_MAX];
		if (own_path(own, sizeof(own), ctl_names[i]) < 0)
			continue;
		static const char *const cpu_mounts[] = { "cpuacct", "cpu,cpuacct", "cpuacct,cpu" };
		size_t nm = i == MEASURE_CG_CPUACCT ? 3 : 1;
		for (size_t m = 0; m < nm; m++) {
			const char *mount = i == MEASURE_CG_CPUACCT ? cpu_mounts[m] : ctl_names[i];
			char mdir[PATH_MAX];
			struct stat st;
			if ((size_t)snprintf(mdir, sizeof(mdir), "%s/%s%s", root, mount, own) >= sizeof(mdir) ||
			    stat(mdir, &st) < 0 || !S_ISDIR(st.st_mode))
				continue;
			if ((size_t)snprintf(base, sizeof(base), "%s/perfbot", mdir) >= sizeof(base) || !usable_base(base))
				continue;
			cgs->base[i] = strdup(base);
			cgs->has[i] = cgs->base[i] != NULL;
			break;
		}
		if (cgs->has[i]) {
			base_buf_printf(&d, "%s%s", any ? ", " : "", ctl_names[i]);
			any = 1;
		}
	}
	if (any && (cgs->has[MEASURE_CG_MEMORY] || cgs->has[MEASURE_CG_PIDS])) {
		cgs->kind = MEASURE_CGROUP_V1;
		snprintf(cgs->describe, sizeof(cgs->describe), "cgroup v1 (%s)", base_buf_cstr(&d));
	} else {
		for (int i = 0; i < MEASURE_CG_NCTL; i++) {
			free(cgs->base[i]);
			cgs->base[i] = NULL;
			cgs->has[i] = 0;
		}
	}
	base_buf_dispose(&d);
}

int measure_cgroups_probe(measure_cgroups **out, const char *root)
{
	*out = NULL;
	measure_cgroups *cgs = calloc(1, sizeof(*cgs));
	if (!cgs)
		return base_error_set(BASE_ENOMEM, "out of memory");
	const char *r = root ? root : "/sys/fs/cgroup";
	cgs->pid = getpid();
	if (proc_start(cgs->pid, &cgs->start) < 0)
		cgs->start = 0;
	snprintf(cgs->describe, sizeof(cgs->describe), "none");
	if (!probe_v2(cgs, r)) {
		free(cgs->base[0]);
		memset(cgs->base, 0, sizeof(cgs->base));
		memset(cgs->has, 0, sizeof(cgs->has));
		cgs->kind = MEASURE_CGROUP_NONE;
		probe_v1(cgs, r);
	}
	/* the freezer first: a frozen process dies only once thawed, and until
	 * it dies it holds its cgroups on the other hierarchies */
	static const int order[] = { MEASURE_CG_FREEZER, MEASURE_CG_MEMORY, MEASURE_CG_PIDS, MEASURE_CG_CPUACCT };
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		if (cgs->base[order[i]])
			sweep_stale(cgs->base[order[i]]);
	*out = cgs;
	return 0;
}

void measure_cgroups_free(measure_cgroups *cgs)
{
	if (!cgs)
		return;
	for (int i = 0; i < MEASURE_CG_NCTL; i++)
		free(cgs->base[i]);
	free(cgs);
}

measure_cgroup_kind measure_cgroups_kind(const measure_cgroups *cgs)
{
	return cgs ? cgs->kind : MEASURE_CGROUP_NONE;
}

const char *measure_cgroups_describe(const measure_cgroups *cgs)
{
	return cgs ? cgs->describe : "none";
}

int measure_cgroups_has(const measure_cgroups *cgs, int ctl)
{
	return cgs && ctl >= 0 && ctl < MEASURE_CG_NCTL && cgs->has[ctl];
}

static void zero(measure_cgroup *cg)
{
	memset(cg, 0, sizeof(*cg));
	for (int i = 0; i < MEASURE_CG_NCTL; i++)
		cg->procs_fd[i] = -1;
}

int measure_cgroup_create(measure_cgroup *cg, const measure_cgroups *cgs, uint64_t memory_bytes, int pids)
{
	zero(cg);
	cg->cgs = cgs;
	if (!cgs || cgs->kind == MEASURE_CGROUP_NONE)
		return 0;
	unsigned n = atomic_fetch_add((atomic_uint *)&cgs->seq, 1);
	char num[32], name[64];
	int ndirs = cgs->kind == MEASURE_CGROUP_V2 ? 1 : MEASURE_CG_NCTL;
	/* a child forked after the probe has its own pid and start time */
	pid_t self = getpid();
	uint64_t start = cgs->start;
	if (self != cgs->pid && proc_start(self, &start) < 0)
		start = 0;
	if (start)
		snprintf(name, sizeof(name), "%ld.%llu-%u", (long)self, (unsigned long long)start, n);
	else
		snprintf(name, sizeof(name), "%ld-%u", (long)self, n);
	for (int i = 0; i < ndirs; i++) {
		if (!cgs->base[i])
			continue;
		char dir[PATH_MAX];
		if ((size_t)snprintf(dir, sizeof(dir), "%s/%s", cgs->base[i], name) >= sizeof(dir))
			goto fail;
		if (mkdir(dir, 0755) < 0) {
			base_error_set(BASE_EGENERIC, "sandbox: cannot create cgroup %s: %s", dir, strerror(errno));
			goto fail;
		}
		if (!(cg->dir[i] = strdup(dir))) {
			rmdir(dir);
			base_error_set(BASE_ENOMEM, "out of memory");
			goto fail;
		}
	}
	int e = 0;
	const char *what = "";
	if (cgs->kind == MEASURE_CGROUP_V2) {
		if (memory_bytes) {
			snprintf(num, sizeof(num), "%llu", (unsigned long long)memory_bytes);
			what = "memory.max";
			e = write_in(cg->dir[0], "memory.max", num);
			if (!e)
				(void)write_in(cg->dir[0], "memory.swap.max", "0"); /* absent without swap */
		}
		if (!e && pids > 0) {
			snprintf(num, sizeof(num), "%d", pids);
			what = "pids.max";
			e = write_in(cg->dir[0], "pids.max", num);
		}
	} else {
		if (memory_bytes && cg->dir[MEASURE_CG_MEMORY]) {
			snprintf(num, sizeof(num), "%llu", (unsigned long long)memory_bytes);
			what = "memory.limit_in_bytes";
			e = write_in(cg->dir[MEASURE_CG_MEMORY], "memory.limit_in_bytes", num);
			char sw[PATH_MAX];
			if (!e && (size_t)snprintf(sw, sizeof(sw), "%s/memory.memsw.limit_in_bytes",
						   cg->dir[MEASURE_CG_MEMORY]) < sizeof(sw) &&
			    access(sw, F_OK) == 0) {
				what = "memory.memsw.limit_in_bytes";
				e = write_str(sw, num);
			}
		}
		if (!e && pids > 0 && cg->dir[MEASURE_CG_PIDS]) {
			snprintf(num, sizeof(num), "%d", pids);
			what = "pids.max";
			e = write_in(cg->dir[MEASURE_CG_PIDS], "pids.max", num);
		}
	}
	if (e) {
		base_error_set(BASE_EGENERIC, "sandbox: cannot set %s of cgroup %s: %s", what, name, strerror(e));
		goto fail;
	}
	for (int i = 0; i < ndirs; i++) {
		if (!cg->dir[i])
			continue;
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s/cgroup.procs", cg->dir[i]);
		if ((cg->procs_fd[i] = open(p, O_WRONLY | O_CLOEXEC)) < 0) {
			base_error_set(BASE_EGENERIC, "sandbox: cannot open %s: %s", p, strerror(errno));
			goto fail;
		}
	}
	return 0;

fail:
	measure_cgroup_destroy(cg);
	return BASE_EGENERIC;
}

int measure_cgroup_join(const measure_cgroup *cg)
{
	for (int i = 0; i < MEASURE_CG_NCTL; i++) {
		if (!cg->dir[i] || cg->procs_fd[i] < 0)
			continue;
		/* "0" is the writing process, on v1 and v2 */
		if (write(cg->procs_fd[i], "0", 1) != 1)
			return errno ? errno : EIO;
	}
	return 0;
}

void measure_cgroup_close_fds(measure_cgroup *cg)
{
	for (int i = 0; i < MEASURE_CG_NCTL; i++) {
		/* only descriptors this module opened: a zeroed struct has none */
		if (cg->dir[i] && cg->procs_fd[i] >= 0)
			close(cg->procs_fd[i]);
		cg->procs_fd[i] = -1;
	}
}

void measure_cgroup_stats_read(const measure_cgroup *cg, measure_cgroup_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->cpu_ns = UINT64_MAX;
	if (!cg->cgs)
		return;
	if (cg->cgs->kind == MEASURE_CGROUP_V2) {
		out->oom_kills = file_keyed(cg->dir[0], "memory.events", "oom_kill", 0);
		out->pids_max = file_keyed(cg->dir[0], "pids.events", "max", 0);
		uint64_t us = file_keyed(cg->dir[0], "cpu.stat", "usage_usec", UINT64_MAX);
		out->cpu_ns = us == UINT64_MAX ? us : us * 1000;
		return;
	}
	if (cg->dir[MEASURE_CG_MEMORY]) {
		out->oom_kills = file_keyed(cg->dir[MEASURE_CG_MEMORY], "memory.oom_control", "oom_kill", 0);
		out->memory_failcnt = file_u64(cg->dir[MEASURE_CG_MEMORY], "memory.failcnt", 0);
	}
	if (cg->dir[MEASURE_CG_PIDS])
		out->pids_max = file_keyed(cg->dir[MEASURE_CG_PIDS], "pids.events", "max", 0);
	if (cg->dir[MEASURE_CG_CPUACCT])
		out->cpu_ns = file_u64(cg->dir[MEASURE_CG_CPUACCT], "cpuacct.usage", UINT64_MAX);
}

/* The directory whose cgroup.procs lists the run's processes. */
static const char *procs_dir(const measure_cgroup *cg)
{
	static const int order[] = { MEASURE_CG_FREEZER, MEASURE_CG_MEMORY, MEASURE_CG_PIDS, MEASURE_CG_CPUACCT };
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		if (cg->dir[order[i]])
			return cg->dir[order[i]];
	return NULL;
}

/* Asks the v1 freezer for `state`; for FROZEN, waits up to ~0.5 s for it.
 * Returns -1 when the request itself failed, 0 when frozen, 1 when the
 * group is still freezing (it must be thawed all the same). */
static int v1_freeze(const char *dir, const char *state)
{
	if (write_in(dir, "freezer.state", state) != 0)
		return -1;
	if (strcmp(state, "FROZEN") != 0)
		return 0;
	char path[PATH_MAX], buf[32];
	snprintf(path, sizeof(path), "%s/freezer.state", dir);
	for (int i = 0; i < 100; i++) {
		if (read_small(path, buf, sizeof(buf)) > 0 && strncmp(buf, "FROZEN", 6) == 0)
			return 0;
		sleep_ms(5);
	}
	return 1;
}

int measure_cgroup_kill(measure_cgroup *cg)
{
	if (!cg->cgs || cg->cgs->kind == MEASURE_CGROUP_NONE)
		return 0;
	const char *dir = procs_dir(cg);
	if (!dir)
		return 0;
	if (cg->cgs->kind == MEASURE_CGROUP_V2 && cg->cgs->v2_kill && write_in(dir, "cgroup.kill", "1") == 0)
		return 1;
	/* requested: the group must be thawed after, frozen or not yet */
	int requested = 0, frozen = 0;
	if (cg->cgs->kind == MEASURE_CGROUP_V2) {
		requested = frozen = write_in(dir, "cgroup.freeze", "1") == 0;
	} else if (cg->dir[MEASURE_CG_FREEZER]) {
		int f = v1_freeze(cg->dir[MEASURE_CG_FREEZER], "FROZEN");
		requested = f >= 0;
		frozen = f == 0;
	}
	int seen = kill_listed(dir, NULL);
	/* frozen, nothing can fork between the listing and the kill; else,
	 * list again until the group is empty (bounded by pids.max) */
	for (int i = 0; !frozen && seen > 0 && i < 50; i++) {
		int again = kill_listed(dir, NULL);
		if (again <= 0)
			break;
	}
	if (requested && cg->cgs->kind == MEASURE_CGROUP_V2)
		write_in(dir, "cgroup.freeze", "0");
	else if (requested)
		v1_freeze(cg->dir[MEASURE_CG_FREEZER], "THAWED");
	return seen < 0 ? 0 : seen;
}

static int empty(const char *dir)
{
	char path[PATH_MAX], buf[64];
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	ssize_t n = read_small(path, buf, sizeof(buf));
	return n <= 0;
}

void measure_cgroup_destroy(measure_cgroup *cg)
{
	if (!cg)
		return;
	measure_cgroup_close_fds(cg);
	const char *dir = procs_dir(cg);
	if (dir && !empty(dir)) {
		measure_cgroup_kill(cg);
		for (int i = 0; i < 200 && !empty(dir); i++) {
			if (i % 20 == 19)
				measure_cgroup_kill(cg);
			sleep_ms(10);
		}
	}
	for (int i = 0; i < MEASURE_CG_NCTL; i++) {
		if (!cg->dir[i])
			continue;
		for (int t = 0; t < 50 && rmdir(cg->dir[i]) < 0 && errno == EBUSY; t++)
			sleep_ms(10);
		free(cg->dir[i]);
		cg->dir[i] = NULL;
	}
	cg->cgs = NULL;
}
