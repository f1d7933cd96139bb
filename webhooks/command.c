/* Comment command parsing (see command.h).  Input is a comment body from
 * any GitHub user: every copy is bounded, every word is checked, nothing is
 * assumed about its length or characters. */
#include "webhooks/command.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
	const char *word;
	wh_command_kind kind;
} known[] = {
	{ "help", WH_CMD_HELP },       { "bench", WH_CMD_BENCH },   { "optimize", WH_CMD_OPTIMIZE },
	{ "apply", WH_CMD_APPLY },     { "cancel", WH_CMD_CANCEL }, { "approve", WH_CMD_APPROVE },
};

const char *wh_command_help(void)
{
	return "| command | does |\n"
	       "|---|---|\n"
	       "| `/perfbot help` | this list |\n"
	       "| `/perfbot bench` | measure this pull request's head against its base (approves a waiting run) |\n"
	       "| `/perfbot approve` | run the benchmarks of a pull request from a fork or a first-time contributor, "
	       "which wait for a maintainer |\n"
	       "| `/perfbot optimize [benchmark…]` | start an agent run looking for a verified speed-up |\n"
	       "| `/perfbot apply <run>` | open the pull request of a run's verified proposal |\n"
	       "| `/perfbot cancel <run>` | stop a running run |\n";
}

static size_t distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 63 || lb > 63)
		return 64;
	size_t d[64][64];
	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++)
		for (size_t j = 1; j <= lb; j++) {
			size_t sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			size_t del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
			d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
		}
	return d[la][lb];
}

/* Next whitespace-separated word of the line; returns its length (0 at end). */
static size_t next_word(const char **p, const char *end, char *out, size_t cap)
{
	while (*p < end && isspace((unsigned char)**p))
		(*p)++;
	const char *s = *p;
	while (*p < end && !isspace((unsigned char)**p))
		(*p)++;
	size_t n = (size_t)(*p - s);
	size_t c = n < cap - 1 ? n : cap - 1;
	memcpy(out, s, c);
	out[c] = '\0';
	return n;
}

static int parse_run(int64_t *out, const char *w)
{
	if (*w == '#')
		w++;
	if (!*w)
		return -1;
	char *end;
	errno = 0;
	long long v = strtoll(w, &end, 10);
	if (errno || *end || v <= 0)
		return -1;
	*out = v;
	return 0;
}

static void parse_line(wh_command *out, const char *p, const char *end)
{
	char word[64];
	if (next_word(&p, end, word, sizeof(word)) == 0) {
		out->kind = WH_CMD_HELP; /* a bare /perfbot asks for help */
		return;
	}
	for (char *c = word; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	snprintf(out->word, sizeof(out->word), "%s", word);
	wh_command_kind kind = WH_CMD_UNKNOWN;
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (!strcmp(word, known[i].word))
			kind = known[i].kind;
	out->kind = kind;
	if (kind == WH_CMD_UNKNOWN) {
		size_t best = 3;
		for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
			size_t d = distance(word, known[i].word);
			if (d < best || (strlen(word) >= 3 && !strncmp(known[i].word, word, strlen(word)))) {
				best = d < best ? d : best;
				out->suggestion = known[i].word;
			}
		}
		return;
	}
	char arg[128];
	size_t n;
	switch (kind) {
	case WH_CMD_OPTIMIZE:
		while ((n = next_word(&p, end, arg, sizeof(arg))) > 0) {
			if (n >= sizeof(arg) || out->nargs >= WH_CMD_MAX_ARGS) {
				out->kind = WH_CMD_INVALID;
				snprintf(out->error, sizeof(out->error), "too many or too long benchmark names");
				return;
			}
			snprintf(out->args[out->nargs++], sizeof(out->args[0]), "%s", arg);
		}
		break;
	case WH_CMD_APPLY:
	case WH_CMD_CANCEL:
		if (next_word(&p, end, arg, sizeof(arg)) == 0 || parse_run(&out->run, arg) < 0) {
			out->kind = WH_CMD_INVALID;
			snprintf(out->error, sizeof(out->error), "`/perfbot %s` needs a run number, e.g. `/perfbot %s 12`",
				 word, word);
			return;
		}
		if (next_word(&p, end, arg, sizeof(arg)) > 0) {
			out->kind = WH_CMD_INVALID;
			snprintf(out->error, sizeof(out->error), "`/perfbot %s` takes one run number", word);
		}
		break;
	case WH_CMD_APPROVE:
		if ((n = next_word(&p, end, arg, sizeof(arg))) > 0 &&
		    (n >= sizeof(arg) || parse_run(&out->run, arg) < 0 || next_word(&p, end, arg, sizeof(arg)) > 0)) {
			out->kind = WH_CMD_INVALID;
			snprintf(out->error, sizeof(out->error),
				 "`/perfbot approve` takes at most a run number, e.g. `/perfbot approve` or `/perfbot approve 12`");
		}
		break;
	default:
		break;
	}
}

void wh_command_parse(wh_command *out, const char *body)
{
	memset(out, 0, sizeof(*out));
	if (!body)
		return;
	int in_fence = 0;
	const char *line = body;
	while (*line) {
		const char *eol = strchr(line, '\n');
		const char *end = eol ? eol : line + strlen(line);
		const char *p = line;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (end - p >= 3 && (!strncmp(p, "```", 3) || !strncmp(p, "~~~", 3))) {
			in_fence = !in_fence;
		} else if (!in_fence && *p != '>' && end - p >= 8 && !strncmp(p, "/perfbot", 8) &&
			   (end - p == 8 || isspace((unsigned char)p[8]))) {
			parse_line(out, p + 8, end);
			return;
		}
		if (!eol)
			break;
		line = eol + 1;
	}
}
