/* The pure parser of callgrind's (and cachegrind's) output files (see
 * callgrind_parse.h): text in, profile out, no I/O.
 *
 * It follows callgrind's format and callgrind_annotate's reading of it, so
 * that the numbers match `callgrind_annotate --inclusive=yes`:
 *  - a function is keyed by (current file, name); fl=, fi= and fe= change
 *    the current file, fn= the function;
 *  - names may be compressed: "(id) name" defines id, "(id)" refers to it;
 *    fn/cfn share one table, fl/fi/fe/cfi/cfl another, ob/cob a third;
 *  - a cost line is positions (as many as `positions:` names, each a
 *    number, "+N", "-N" or "*") then event counts in `events:` order;
 *  - after `calls=`, the next cost line is the inclusive cost of that call:
 *    it adds to the caller's inclusive cost, not to its own;
 *  - within one file, a function that was called has as inclusive cost the
 *    sum of the costs of the calls into it; a function never called (the
 *    roots) has its own cost plus the calls it made.
 * Files of several processes are summed function by function.
 *
 * Bounded tables (ids, functions, and the bytes of the names the functions
 * keep: a name is cut at MAX_NAME bytes, so that one long name reused under
 * many file ids cannot multiply memory); safe on any input (fuzzed:
 * fuzz/fuzz_callgrind.c links this file alone).  No shared state. */
#include "measure/callgrind_parse.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

#define MAX_ID 4000000         /* compressed-name ids accepted */
#define MAX_FUNCTIONS 250000   /* distinct (file, name) pairs in one profile */
#define MAX_NAME 4096          /* bytes kept of a function or file name, marker included */
#define MAX_NAME_BYTES (64u << 20) /* bytes of all names kept by one profile */
#define NAME_CUT_MARKER "...[truncated]"
#define MAX_POSITIONS 4

const char *const measure_cg_event_names[MEASURE_CG_NEVENTS] = { "Ir",   "Dr",   "Dw",   "I1mr", "D1mr",
							     "D1mw", "ILmr", "DLmr", "DLmw" };

/* Counts saturate at INT64_MAX (what JSON numbers carry) instead of
 * wrapping: only a crafted file gets there, and it must not turn negative. */
#define COUNT_MAX ((uint64_t)INT64_MAX)

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > COUNT_MAX || b > COUNT_MAX - a ? COUNT_MAX : a + b;
}

static uint64_t sat_mul(uint64_t a, uint64_t k)
{
	return a > COUNT_MAX / k ? COUNT_MAX : a * k;
}

void measure_cg_summarize(measure_cg_summary *out, const measure_cg_costs *c)
{
	const uint64_t *e = c->ev;
	uint64_t a = sat_add(sat_add(e[MEASURE_CG_IR], e[MEASURE_CG_DR]), e[MEASURE_CG_DW]);
	uint64_t m1 = sat_add(sat_add(e[MEASURE_CG_I1MR], e[MEASURE_CG_D1MR]), e[MEASURE_CG_D1MW]);
	uint64_t ml = sat_add(sat_add(e[MEASURE_CG_ILMR], e[MEASURE_CG_DLMR]), e[MEASURE_CG_DLMW]);
	/* Counts from a malformed file could break the hierarchy; clamp
	 * rather than wrap around. */
	if (m1 > a)
		m1 = a;
	if (ml > m1)
		ml = m1;
	out->instructions = e[MEASURE_CG_IR] > COUNT_MAX ? COUNT_MAX : e[MEASURE_CG_IR];
	out->l1_misses = m1;
	out->ll_misses = ml;
	out->estimated_cycles = sat_add(sat_add(a - m1, sat_mul(m1 - ml, 5)), sat_mul(ml, 35));
}

/* ---- the private function index --------------------------------------- */

typedef struct fn_scratch {
	measure_cg_costs self_plus_out; /* this file: own cost + calls made */
	measure_cg_costs called_in;     /* this file: cost of calls into it */
	int touched;                  /* seen in this file */
	int called;                   /* called in this file */
} fn_scratch;

typedef struct cg_index {
	size_t *slots;      /* hash -> fn index + 1, 0 = empty */
	size_t nslots;
	fn_scratch *scratch;/* parallel to p->fns */
	size_t *touched;    /* fn indices touched in the current file */
	size_t ntouched;
	size_t name_bytes;  /* kept by p->fns' names and files */
} cg_index;

static uint64_t hash_key(const char *file, const char *name)
{
	uint64_t h = 1469598103934665603ULL;
	for (const unsigned char *s = (const unsigned char *)file; *s; s++)
		h = (h ^ *s) * 1099511628211ULL;
	h = (h ^ 0xff) * 1099511628211ULL;
	for (const unsigned char *s = (const unsigned char *)name; *s; s++)
		h = (h ^ *s) * 1099511628211ULL;
	return h;
}

void measure_cg_profile_init(measure_cg_profile *p)
{
	memset(p, 0, sizeof(*p));
}

void measure_cg_profile_dispose(measure_cg_profile *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->nfns; i++) {
		free(p->fns[i].name);
		free(p->fns[i].file);
	}
	free(p->fns);
	free(p->calls);
	cg_index *ix = p->index;
	if (ix) {
		free(ix->slots);
		free(ix->scratch);
		free(ix->touched);
		free(ix);
	}
	memset(p, 0, sizeof(*p));
}

static int index_rehash(measure_cg_profile *p, cg_index *ix, size_t nslots)
{
	size_t *slots = calloc(nslots, sizeof(size_t));
	if (!slots)
		return base_error_set(BASE_ENOMEM, "out of memory");
	for (size_t i = 0; i < p->nfns; i++) {
		size_t h = (size_t)hash_key(p->fns[i].file, p->fns[i].name) & (nslots - 1);
		while (slots[h])
			h = (h + 1) & (nslots - 1);
		slots[h] = i + 1;
	}
	free(ix->slots);
	ix->slots = slots;
	ix->nslots = nslots;
	return 0;
}

/* s itself when it fits in MAX_NAME bytes; otherwise its start (cut on a
 * UTF-8 character boundary) followed by NAME_CUT_MARKER, written to buf. */
static const char *capped_name(char buf[MAX_NAME], const char *s)
{
	size_t l = strnlen(s, MAX_NAME);
	if (l < MAX_NAME)
		return s;
	size_t cut = MAX_NAME - sizeof(NAME_CUT_MARKER);
	while (cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80)
		cut--;
	memcpy(buf, s, cut);
	memcpy(buf + cut, NAME_CUT_MARKER, sizeof(NAME_CUT_MARKER));
	return buf;
}

/* The index of (file, name) in p->fns, adding it when new.  Names longer
 * than MAX_NAME are cut first, so every use of one long name finds the same
 * entry. */
static int fn_lookup(size_t *out, measure_cg_profile *p, const char *file, const char *name)
{
	char file_buf[MAX_NAME], name_buf[MAX_NAME];
	file = capped_name(file_buf, file);
	name = capped_name(name_buf, name);
	cg_index *ix = p->index;
	if (!ix) {
		ix = calloc(1, sizeof(*ix));
		if (!ix)
			return base_error_set(BASE_ENOMEM, "out of memory");
		p->index = ix;
	}
	if (!ix->slots || (p->nfns + 1) * 2 > ix->nslots) {
		int error = index_rehash(p, ix, ix->nslots ? ix->nslots * 2 : 1024);
		if (error < 0)
			return error;
	}
	size_t h = (size_t)hash_key(file, name) & (ix->nslots - 1);
	while (ix->slots[h]) {
		measure_cg_function *f = &p->fns[ix->slots[h] - 1];
		if (strcmp(f->name, name) == 0 && strcmp(f->file, file) == 0) {
			*out = ix->slots[h] - 1;
			goto touch;
		}
		h = (h + 1) & (ix->nslots - 1);
	}
	if (p->nfns >= MAX_FUNCTIONS)
		return base_error_set(BASE_ETOOBIG, "callgrind output: more than %d functions", MAX_FUNCTIONS);
	size_t bytes = strlen(name) + strlen(file) + 2;
	if (ix->name_bytes + bytes > MAX_NAME_BYTES)
		return base_error_set(BASE_ETOOBIG, "callgrind output: the names of its functions exceed %u MiB",
				     MAX_NAME_BYTES >> 20);
	if (p->nfns == p->alloc) {
		size_t n = p->alloc ? p->alloc * 2 : 256;
		measure_cg_function *fns = realloc(p->fns, n * sizeof(*fns));
		if (!fns)
			return base_error_set(BASE_ENOMEM, "out of memory");
		p->fns = fns;
		fn_scratch *sc = realloc(ix->scratch, n * sizeof(*sc));
		if (!sc)
			return base_error_set(BASE_ENOMEM, "out of memory");
		ix->scratch = sc;
		size_t *t = realloc(ix->touched, n * sizeof(*t));
		if (!t)
			return base_error_set(BASE_ENOMEM, "out of memory");
		ix->touched = t;
		p->alloc = n;
	}
	measure_cg_function *f = &p->fns[p->nfns];
	memset(f, 0, sizeof(*f));
	f->name = strdup(name);
	f->file = strdup(file);
	if (!f->name || !f->file) {
		free(f->name);
		free(f->file);
		return base_error_set(BASE_ENOMEM, "out of memory");
	}
	ix->name_bytes += bytes;
	memset(&ix->scratch[p->nfns], 0, sizeof(fn_scratch));
	ix->slots[h] = p->nfns + 1;
	*out = p->nfns++;
touch:
	if (!ix->scratch[*out].touched) {
		ix->scratch[*out].touched = 1;
		ix->touched[ix->ntouched++] = *out;
	}
	return 0;
}

/* ---- compressed names ------------------------------------------------- */

typedef struct name_table {
	char **names;
	size_t n;
} name_table;

static void name_table_dispose(name_table *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->names[i]);
	free(t->names);
	t->names = NULL;
	t->n = 0;
}

/* Resolves "(id) name", "(id)" or "name"; *out borrowed from the table or
 * from s (which is modified). */
static int uncompress(const char **out, name_table *t, char *s, int lineno)
{
	while (*s == ' ')
		s++;
	if (*s != '(') {
		*out = s;
		return 0;
	}
	char *end;
	errno = 0;
	unsigned long id = strtoul(s + 1, &end, 10);
	if (errno || end == s + 1 || *end != ')' || id > MAX_ID)
		return base_error_set(BASE_EINVALID, "callgrind output line %d: bad compressed name", lineno);
	char *name = end + 1;
	while (*name == ' ')
		name++;
	if (*name) {
		if (id >= t->n) {
			size_t n = t->n ? t->n : 64;
			while (n <= id)
				n *= 2;
			char **v = realloc(t->names, n * sizeof(*v));
			if (!v)
				return base_error_set(BASE_ENOMEM, "out of memory");
			memset(v + t->n, 0, (n - t->n) * sizeof(*v));
			t->names = v;
			t->n = n;
		}
		char *copy = strdup(name);
		if (!copy)
			return base_error_set(BASE_ENOMEM, "out of memory");
		free(t->names[id]);
		t->names[id] = copy;
		*out = copy;
		return 0;
	}
	if (id >= t->n || !t->names[id])
		return base_error_set(BASE_EINVALID, "callgrind output line %d: name id (%lu) used before definition",
				     lineno, id);
	*out = t->names[id];
	return 0;
}

/* ---- the parser ------------------------------------------------------- */

typedef struct parse_state {
	measure_cg_profile *p;
	name_table fn_names, file_names, obj_names;
	int map[64];              /* events: column -> MEASURE_CG_* or -1 */
	int nevents;
	int npositions;
	long long last_pos[MAX_POSITIONS];
	char *file;               /* owned current file (fl/fi/fe) */
	char *fn;                 /* owned current function name */
	char *cfile;              /* owned pending cfi/cfl, NULL when none */
	int have_fn;
	size_t cur;               /* index of current function */
	size_t callee;            /* index of the pending callee */
	int pending_call;         /* next cost line is a call's cost */
	int have_summary, have_totals;
	measure_cg_costs summary, totals, self_sum;
} parse_state;

static int set_str(char **dst, const char *s)
{
	char *c = strdup(s);
	if (!c)
		return base_error_set(BASE_ENOMEM, "out of memory");
	free(*dst);
	*dst = c;
	return 0;
}

static int parse_events(parse_state *st, const char *s, int lineno)
{
	st->nevents = 0;
	while (*s) {
		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s)
			break;
		size_t l = strcspn(s, " \t");
		if (st->nevents >= (int)(sizeof(st->map) / sizeof(st->map[0])))
			return base_error_set(BASE_EINVALID, "callgrind output line %d: too many events", lineno);
		int idx = -1;
		for (int i = 0; i < MEASURE_CG_NEVENTS; i++)
			if (strlen(measure_cg_event_names[i]) == l && strncmp(measure_cg_event_names[i], s, l) == 0)
				idx = i;
		st->map[st->nevents++] = idx;
		s += l;
	}
	return 0;
}

/* Parses event counts (in `events:` order) into c. */
static int parse_counts(measure_cg_costs *c, parse_state *st, const char *s, int lineno)
{
	memset(c, 0, sizeof(*c));
	for (int col = 0; *s; col++) {
		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s)
			break;
		if (col >= st->nevents)
			return base_error_set(BASE_EINVALID, "callgrind output line %d: more counts than events", lineno);
		char *end;
		errno = 0;
		unsigned long long v = strtoull(s, &end, 10);
		if (errno || end == s || (*end && *end != ' ' && *end != '\t') || *s == '-')
			return base_error_set(BASE_EINVALID, "callgrind output line %d: bad count", lineno);
		if (st->map[col] >= 0)
			c->ev[st->map[col]] = v;
		s = end;
	}
	return 0;
}

static void add_costs(measure_cg_costs *dst, const measure_cg_costs *src)
{
	for (int i = 0; i < MEASURE_CG_NEVENTS; i++)
		dst->ev[i] = sat_add(dst->ev[i], src->ev[i]);
}

/* Skips the position columns of a cost line; returns the rest or NULL. */
static const char *skip_positions(parse_state *st, const char *s)
{
	for (int i = 0; i < st->npositions; i++) {
		while (*s == ' ' || *s == '\t')
			s++;
		long long v;
		char *end;
		if (*s == '*') {
			v = st->last_pos[i];
			end = (char *)s + 1;
		} else if (*s == '+' || *s == '-') {
			errno = 0;
			long long d = strtoll(s + 1, &end, 0);
			if (errno || end == s + 1)
				return NULL;
			v = *s == '+' ? st->last_pos[i] + d : st->last_pos[i] - d;
		} else {
			errno = 0;
			unsigned long long u = strtoull(s, &end, 0);
			if (errno || end == s)
				return NULL;
			v = (long long)u;
		}
		if (*end && *end != ' ' && *end != '\t')
			return NULL;
		st->last_pos[i] = v;
		s = end;
	}
	return s;
}

static int current_fn(parse_state *st, int lineno)
{
	if (!st->fn)
		return base_error_set(BASE_EINVALID, "callgrind output line %d: cost before any fn=", lineno);
	if (!st->have_fn) {
		int error = fn_lookup(&st->cur, st->p, st->file ? st->file : "???", st->fn);
		if (error < 0)
			return error;
		st->have_fn = 1;
	}
	return 0;
}

/* Records a call edge (dropped past MEASURE_CG_MAX_CALLS: the flame tree
 * then misses the rarest calls, the counts stay exact). */
static int add_call(measure_cg_profile *p, size_t caller, size_t callee, const measure_cg_costs *c)
{
	if (p->ncalls >= MEASURE_CG_MAX_CALLS)
		return 0;
	if (p->ncalls == p->calls_alloc) {
		size_t n = p->calls_alloc ? p->calls_alloc * 2 : 256;
		measure_cg_call *nc = realloc(p->calls, n * sizeof(*nc));
		if (!nc)
			return base_error_set(BASE_ENOMEM, "out of memory");
		p->calls = nc;
		p->calls_alloc = n;
	}
	measure_cg_call *e = &p->calls[p->ncalls++];
	e->caller = caller;
	e->callee = callee;
	e->cost = *c;
	return 0;
}

/* A cost line: positions then event counts, the function's own cost or,
 * right after calls=, the inclusive cost of that call. */
static int parse_cost_line(parse_state *st, const char *line, int lineno)
{
	const char *rest = skip_positions(st, line);
	int error;
	if (!rest)
		return base_error_set(BASE_EINVALID, "callgrind output line %d: bad position", lineno);
	measure_cg_costs c;
	if ((error = parse_counts(&c, st, rest, lineno)) < 0)
		return error;
	if ((error = current_fn(st, lineno)) < 0)
		return error;
	cg_index *ix = st->p->index;
	if (st->pending_call) {
		st->pending_call = 0;
		if ((error = add_call(st->p, st->cur, st->callee, &c)) < 0)
			return error;
		add_costs(&ix->scratch[st->callee].called_in, &c);
		ix->scratch[st->callee].called = 1;
		add_costs(&ix->scratch[st->cur].self_plus_out, &c);
		return 0;
	}
	add_costs(&st->p->fns[st->cur].self, &c);
	add_costs(&ix->scratch[st->cur].self_plus_out, &c);
	add_costs(&st->self_sum, &c);
	return 0;
}

/* A position specification, key=val: the current file, function, callee
 * or call. */
static int parse_spec_line(parse_state *st, const char *key, char *val, int lineno)
{
	const char *name;
	int error;
	if (strcmp(key, "fn") == 0) {
		if ((error = uncompress(&name, &st->fn_names, val, lineno)) < 0)
			return error;
		st->have_fn = 0;
		if ((error = set_str(&st->fn, name)) < 0)
			return error;
		return current_fn(st, lineno);
	}
	if (strcmp(key, "fl") == 0 || strcmp(key, "fi") == 0 || strcmp(key, "fe") == 0) {
		if ((error = uncompress(&name, &st->file_names, val, lineno)) < 0)
			return error;
		if ((error = set_str(&st->file, name)) < 0)
			return error;
		st->have_fn = 0;
		return 0;
	}
	if (strcmp(key, "cfi") == 0 || strcmp(key, "cfl") == 0) {
		if ((error = uncompress(&name, &st->file_names, val, lineno)) < 0)
			return error;
		return set_str(&st->cfile, name);
	}
	if (strcmp(key, "cfn") == 0) {
		if ((error = uncompress(&name, &st->fn_names, val, lineno)) < 0)
			return error;
		/* the callee may be looked up before the caller exists */
		char *fname = strdup(name);
		if (!fname)
			return base_error_set(BASE_ENOMEM, "out of memory");
		const char *cf = st->cfile ? st->cfile : (st->file ? st->file : "???");
		error = fn_lookup(&st->callee, st->p, cf, fname);
		free(fname);
		free(st->cfile);
		st->cfile = NULL;
		return error;
	}
	if (strcmp(key, "ob") == 0 || strcmp(key, "cob") == 0)
		return uncompress(&name, &st->obj_names, val, lineno);
	if (strcmp(key, "jfi") == 0)
		return uncompress(&name, &st->file_names, val, lineno);
	if (strcmp(key, "jfn") == 0)
		return uncompress(&name, &st->fn_names, val, lineno);
	if (strcmp(key, "calls") == 0) {
		char *end;
		errno = 0;
		strtoull(val, &end, 10);
		if (errno || end == val)
			return base_error_set(BASE_EINVALID, "callgrind output line %d: bad calls= line", lineno);
		if ((error = current_fn(st, lineno)) < 0)
			return error;
		st->pending_call = 1;
		return 0;
	}
	if (strcmp(key, "jump") == 0 || strcmp(key, "jcnd") == 0)
		return 0;
	return base_error_set(BASE_EINVALID, "callgrind output line %d: unknown specification \"%.40s\"", lineno, key);
}

/* A header line, key: val (events, positions, summary, totals; the
 * others are descriptions and ignored). */
static int parse_header_line(parse_state *st, const char *key, char *val, int lineno)
{
	int error;
	if (strcmp(key, "events") == 0)
		return parse_events(st, val, lineno);
	if (strcmp(key, "positions") == 0) {
		int n = 0;
		for (char *s = val; *s;) {
			while (*s == ' ' || *s == '\t')
				s++;
			if (!*s)
				break;
			n++;
			s += strcspn(s, " \t");
		}
		if (n < 1 || n > MAX_POSITIONS)
			return base_error_set(BASE_EINVALID, "callgrind output line %d: bad positions", lineno);
		st->npositions = n;
		return 0;
	}
	if (strcmp(key, "summary") == 0 || strcmp(key, "totals") == 0) {
		measure_cg_costs c;
		if ((error = parse_counts(&c, st, val, lineno)) < 0)
			return error;
		if (key[0] == 's') {
			add_costs(&st->summary, &c);
			st->have_summary = 1;
		} else {
			add_costs(&st->totals, &c);
			st->have_totals = 1;
		}
		return 0;
	}
	/* version, creator, pid, cmd, part, desc, thread, ... */
	return 0;
}

static int parse_line(parse_state *st, char *line, int lineno)
{
	if (!*line || *line == '#')
		return 0;
	if ((*line >= '0' && *line <= '9') || *line == '+' || *line == '-' || *line == '*')
		return parse_cost_line(st, line, lineno);
	char *eq = strchr(line, '=');
	char *colon = strchr(line, ':');
	if (eq && (!colon || eq < colon)) {
		*eq = '\0';
		return parse_spec_line(st, line, eq + 1, lineno);
	}
	if (colon) {
		*colon = '\0';
		return parse_header_line(st, line, colon + 1, lineno);
	}
	return base_error_set(BASE_EINVALID, "callgrind output line %d: not a callgrind line", lineno);
}

int measure_cg_parse(measure_cg_profile *p, const char *text, size_t len)
{
	parse_state st;
	int error = 0;
	memset(&st, 0, sizeof(st));
	st.p = p;
	size_t calls_at_start = p->ncalls;
	st.npositions = 1;
	/* default events: Ir only */
	st.map[0] = MEASURE_CG_IR;
	st.nevents = 1;
	char *line = NULL;
	size_t line_alloc = 0;
	size_t pos = 0;
	int lineno = 0;
	int empty = 1;

	if (p->index) {
		cg_index *ix = p->index;
		ix->ntouched = 0;
	}
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t l = nl ? (size_t)(nl - (text + pos)) : len - pos;
		lineno++;
		if (l + 1 > line_alloc) {
			size_t n = line_alloc ? line_alloc : 256;
			while (n < l + 1)
				n *= 2;
			char *nline = realloc(line, n);
			if (!nline) {
				error = base_error_set(BASE_ENOMEM, "out of memory");
				goto done;
			}
			line = nline;
			line_alloc = n;
		}
		memcpy(line, text + pos, l);
		line[l] = '\0';
		if (l && line[l - 1] == '\r')
			line[l - 1] = '\0';
		if (memchr(text + pos, '\0', l)) {
			error = base_error_set(BASE_EINVALID, "callgrind output line %d: NUL byte", lineno);
			goto done;
		}
		pos += l + (nl ? 1 : 0);
		if (lineno == 1 && strncmp(line, "# callgrind format", 18) != 0 && strncmp(line, "version:", 8) != 0) {
			error = base_error_set(BASE_EINVALID, "not a callgrind output file (line 1)");
			goto done;
		}
		if ((error = parse_line(&st, line, lineno)) < 0)
			goto done;
		empty = 0;
	}
	if (empty) {
		error = base_error_set(BASE_EINVALID, "empty callgrind output file");
		goto done;
	}
	/* totals as callgrind_annotate reads them: summary, else totals, else
	 * the sum of the cost lines.  A program that calls CALLGRIND_ZERO_STATS
	 * while instrumented from the start leaves callgrind 3.19 with a summary
	 * below zero (printed wrapped around 2^64); the totals line, the sum of
	 * what the file holds, is then the count. */
	if (st.have_summary) {
		int zero = 1, wrapped = 0;
		for (int i = 0; i < MEASURE_CG_NEVENTS; i++) {
			zero &= st.summary.ev[i] == 0;
			wrapped |= st.summary.ev[i] >= COUNT_MAX; /* wrapped, or saturated by add_costs */
		}
		add_costs(&p->totals, (zero || wrapped) && st.have_totals ? &st.totals : &st.summary);
	} else if (st.have_totals) {
		add_costs(&p->totals, &st.totals);
	} else {
		add_costs(&p->totals, &st.self_sum);
	}
	p->nfiles++;

done:
	if (p->index) {
		/* fold this file's inclusive costs into the profile, and reset
		 * the scratch for the next file (also after an error) */
		cg_index *ix = p->index;
		for (size_t i = 0; i < ix->ntouched; i++) {
			size_t f = ix->touched[i];
			fn_scratch *sc = &ix->scratch[f];
			if (error == 0)
				add_costs(&p->fns[f].inclusive, sc->called ? &sc->called_in : &sc->self_plus_out);
			memset(sc, 0, sizeof(*sc));
		}
		ix->ntouched = 0;
	}
	if (error < 0)
		p->ncalls = calls_at_start;
	free(line);
	free(st.file);
	free(st.fn);
	free(st.cfile);
	name_table_dispose(&st.fn_names);
	name_table_dispose(&st.file_names);
	name_table_dispose(&st.obj_names);
	return error;
}

/* ---- reporting helpers ------------------------------------------------ */

static uint64_t metric_of(const measure_cg_costs *c, int metric)
{
	if (metric == 1)
		return c->ev[MEASURE_CG_IR];
	measure_cg_summary s;
	measure_cg_summarize(&s, c);
	return s.estimated_cycles;
}

typedef struct top_item {
	size_t idx;
	uint64_t v;
} top_item;

static int cmp_top(const void *a, const void *b)
{
	const top_item *x = a, *y = b;
	if (x->v != y->v)
		return x->v < y->v ? 1 : -1;
	return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

int measure_cg_top(size_t **out, size_t *nout, const measure_cg_profile *p, int metric, size_t n)
{
	*out = NULL;
	*nout = 0;
	if (p->nfns == 0)
		return 0;
	top_item *items = malloc(p->nfns * sizeof(*items));
	if (!items)
		return base_error_set(BASE_ENOMEM, "out of memory");
	for (size_t i = 0; i < p->nfns; i++) {
		items[i].idx = i;
		items[i].v = metric_of(&p->fns[i].inclusive, metric);
	}
	qsort(items, p->nfns, sizeof(*items), cmp_top);
	size_t k = n < p->nfns ? n : p->nfns;
	size_t *idx = malloc((k ? k : 1) * sizeof(*idx));
	if (!idx) {
		free(items);
		return base_error_set(BASE_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < k; i++)
		idx[i] = items[i].idx;
	free(items);
	*out = idx;
	*nout = k;
	return 0;
}

json_t *measure_cg_summary_json(const measure_cg_summary *s)
{
	return json_pack("{s:I, s:I, s:I, s:I}", "instructions", (json_int_t)s->instructions, "estimated_cycles",
			 (json_int_t)s->estimated_cycles, "l1_misses", (json_int_t)s->l1_misses, "ll_misses",
			 (json_int_t)s->ll_misses);
}

json_t *measure_cg_function_json(const measure_cg_function *f)
{
	measure_cg_summary self, incl;
	measure_cg_summarize(&self, &f->self);
	measure_cg_summarize(&incl, &f->inclusive);
	return json_pack("{s:s, s:s, s:o, s:o}", "name", f->name, "file", f->file, "self", measure_cg_summary_json(&self),
			 "inclusive", measure_cg_summary_json(&incl));
}

/* ---- cachegrind's totals ---------------------------------------------- */

/* A cachegrind output file: only its totals (the "events:" and "summary:"
 * lines) are added into p.  Names there are never compressed, and a name
 * such as "(below main)" would read as a compressed one: the function lines
 * are not parsed. */
int measure_cg_parse_totals(measure_cg_profile *p, const char *text, size_t len)
{
	parse_state st;
	memset(&st, 0, sizeof(st));
	int have_events = 0, lineno = 0;
	for (size_t pos = 0; pos < len;) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t l = nl ? (size_t)(nl - (text + pos)) : len - pos;
		char line[1024];
		lineno++;
		if (l < sizeof(line) && (!strncmp(text + pos, "events:", 7) || !strncmp(text + pos, "summary:", 8))) {
			memcpy(line, text + pos, l);
			line[l] = '\0';
			int error;
			if (line[0] == 'e') {
				if ((error = parse_events(&st, line + 7, lineno)) < 0)
					return error;
				have_events = 1;
			} else if (have_events) {
				measure_cg_costs c;
				if ((error = parse_counts(&c, &st, line + 8, lineno)) < 0)
					return error;
				add_costs(&p->totals, &c);
				p->nfiles++;
				return 0;
			}
		}
		pos += l + (nl ? 1 : 0);
	}
	return base_error_set(BASE_EINVALID, "cachegrind output without \"events:\" and \"summary:\" lines");
}

/* ---- flame tree ---------------------------------------------------------- */

/* The call graph with one edge per (caller, callee), callees of a caller
 * next to each other (first[f] .. first[f + 1]), heaviest first. */
typedef struct flame_graph {
	const measure_cg_profile *p;
	int metric;
	struct flame_edge {
		size_t caller, callee;
		uint64_t v;
	} *edges;
	size_t nedges;
	size_t *first;        /* nfns + 1 offsets into edges */
	uint64_t *incl;       /* per function: its inclusive cost by metric */
	unsigned char *on_path;
	size_t nodes, max_nodes;
	int max_depth;
	uint64_t min_value;
} flame_graph;

static int cmp_edge(const void *a, const void *b)
{
	const struct flame_edge *x = a, *y = b;
	if (x->caller != y->caller)
		return x->caller < y->caller ? -1 : 1;
	if (x->callee != y->callee)
		return x->callee < y->callee ? -1 : 1;
	return 0;
}

static int cmp_edge_value(const void *a, const void *b)
{
	const struct flame_edge *x = a, *y = b;
	if (x->caller != y->caller)
		return x->caller < y->caller ? -1 : 1;
	return x->v > y->v ? -1 : x->v < y->v;
}

static int cmp_root(const void *a, const void *b, void *payload)
{
	const uint64_t *incl = payload;
	uint64_t x = incl[*(const size_t *)a], y = incl[*(const size_t *)b];
	return x > y ? -1 : x < y;
}

/* A node of function f worth v, with its callees below it. */
static json_t *flame_node(flame_graph *g, size_t f, uint64_t v, int depth)
{
	const measure_cg_function *fn = &g->p->fns[f];
	json_t *node = json_pack("{s:s, s:s, s:I}", "name", fn->name, "file", fn->file, "value", (json_int_t)v);
	if (!node)
		return NULL;
	g->nodes++;
	if (depth >= g->max_depth || g->incl[f] == 0)
		return node;
	json_t *kids = NULL;
	g->on_path[f] = 1;
	for (size_t i = g->first[f]; i < g->first[f + 1] && g->nodes < g->max_nodes; i++) {
		const struct flame_edge *e = &g->edges[i];
		if (g->on_path[e->callee])
			continue;
		/* this node is v of the function's incl: its calls scale alike */
		uint64_t cv = v >= g->incl[f] ? e->v
					       : (uint64_t)((double)e->v * ((double)v / (double)g->incl[f]) + 0.5);
		if (cv > v)
			cv = v;
		if (cv < g->min_value)
			break; /* sorted heaviest first */
		json_t *k = flame_node(g, e->callee, cv, depth + 1);
		if (!k)
			break;
		if (!kids && !(kids = json_array())) {
			json_decref(k);
			break;
		}
		json_array_append_new(kids, k);
	}
	g->on_path[f] = 0;
	if (kids)
		json_object_set_new(node, "children", kids);
	return node;
}

json_t *measure_cg_flame_json(const measure_cg_profile *p, int metric, size_t max_nodes, int max_depth,
			      int min_permille)
{
	flame_graph g = { .p = p, .metric = metric, .max_nodes = max_nodes ? max_nodes : 1, .max_depth = max_depth };
	json_t *root = NULL, *kids = NULL;
	unsigned char *called = NULL;
	size_t nroots = 0, *roots = NULL;
	g.edges = p->ncalls ? malloc(p->ncalls * sizeof(*g.edges)) : NULL;
	g.first = calloc(p->nfns + 1, sizeof(*g.first));
	g.incl = calloc(p->nfns + 1, sizeof(*g.incl));
	g.on_path = calloc(p->nfns + 1, 1);
	called = calloc(p->nfns + 1, 1);
	roots = calloc(p->nfns + 1, sizeof(*roots));
	if ((p->ncalls && !g.edges) || !g.first || !g.incl || !g.on_path || !called || !roots)
		goto done;
	/* one edge per (caller, callee), summed */
	for (size_t i = 0; i < p->ncalls; i++) {
		g.edges[i].caller = p->calls[i].caller;
		g.edges[i].callee = p->calls[i].callee;
		g.edges[i].v = metric_of(&p->calls[i].cost, metric);
	}
	if (p->ncalls)
		qsort(g.edges, p->ncalls, sizeof(*g.edges), cmp_edge);
	for (size_t i = 0; i < p->ncalls; i++) {
		if (g.nedges && g.edges[g.nedges - 1].caller == g.edges[i].caller &&
		    g.edges[g.nedges - 1].callee == g.edges[i].callee) {
			g.edges[g.nedges - 1].v = sat_add(g.edges[g.nedges - 1].v, g.edges[i].v);
			continue;
		}
		g.edges[g.nedges++] = g.edges[i];
	}
	if (g.nedges)
		qsort(g.edges, g.nedges, sizeof(*g.edges), cmp_edge_value);
	/* a called function's cost is what its callers spent in it (its calls
	 * into itself left out: callgrind counts them again) */
	for (size_t i = 0; i < g.nedges; i++) {
		g.first[g.edges[i].caller + 1]++;
		if (g.edges[i].caller != g.edges[i].callee) {
			called[g.edges[i].callee] = 1;
			g.incl[g.edges[i].callee] = sat_add(g.incl[g.edges[i].callee], g.edges[i].v);
		}
	}
	for (size_t f = 0; f < p->nfns; f++) {
		g.first[f + 1] += g.first[f];
		if (!called[f])
			g.incl[f] = metric_of(&p->fns[f].inclusive, metric);
	}
	uint64_t total = 0;
	for (size_t f = 0; f < p->nfns; f++)
		if (!called[f] && g.incl[f] > 0) {
			roots[nroots++] = f;
			total = sat_add(total, g.incl[f]);
		}
	uint64_t pm = (uint64_t)(min_permille > 0 ? min_permille : 0);
	g.min_value = total / 1000 * pm + total % 1000 * pm / 1000;
	/* heaviest roots first */
	qsort_r(roots, nroots, sizeof(*roots), cmp_root, g.incl);
	if (!(root = json_pack("{s:s, s:I}", "name", "all", "value", (json_int_t)total)) || !(kids = json_array()))
		goto done;
	for (size_t i = 0; i < nroots && g.nodes < g.max_nodes; i++) {
		if (g.incl[roots[i]] < g.min_value)
			break;
		json_t *k = flame_node(&g, roots[i], g.incl[roots[i]], 1);
		if (k)
			json_array_append_new(kids, k);
	}
	json_object_set_new(root, "children", kids);
	kids = NULL;
done:
	json_decref(kids);
	free(g.edges);
	free(g.first);
	free(g.incl);
	free(g.on_path);
	free(called);
	free(roots);
	return root;
}
