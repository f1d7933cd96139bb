/* Comment commands: `/perfbot help | bench | optimize [benchmark…] |
 * apply <run> | cancel <run> | approve [run]` at the start of a line of an issue or pull
 * request comment.  Pure parsing; permissions and effects live elsewhere. */
#ifndef WH_COMMAND_H
#define WH_COMMAND_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
	WH_CMD_NONE = 0,     /* the comment holds no /perfbot line */
	WH_CMD_HELP,
	WH_CMD_BENCH,
	WH_CMD_OPTIMIZE,
	WH_CMD_APPLY,
	WH_CMD_CANCEL,
	WH_CMD_APPROVE,      /* a waiting bench run of the pull request: run, or 0 for the newest */
	WH_CMD_UNKNOWN,      /* a /perfbot line with a word perfbot does not know */
	WH_CMD_INVALID       /* a known command with bad arguments */
} wh_command_kind;

#define WH_CMD_MAX_ARGS 16

typedef struct wh_command {
	wh_command_kind kind;
	int64_t run;                       /* apply / cancel / approve (0: not given) */
	char args[WH_CMD_MAX_ARGS][128];   /* optimize: benchmark names */
	size_t nargs;
	char word[64];                     /* the word as typed (unknown commands) */
	const char *suggestion;            /* static: "did you mean" for unknown words, or NULL */
	char error[256];                   /* why a known command was invalid */
} wh_command;

/* Finds the first `/perfbot` line of body (leading spaces allowed, code
 * fences and quoted lines "> " skipped) and parses it into out. */
void wh_command_parse(wh_command *out, const char *body);

/* The command list as markdown, for help and refusals (static). */
const char *wh_command_help(void);

#endif
