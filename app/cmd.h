/* perfbot's subcommands and their shared option parsing.  Each command gets
 * the frozen configuration and the arguments left after configuration flags
 * were taken, like a program's main: argv[0] is the command's name, options
 * and operands follow; returns the process exit status. */
#ifndef APP_CMD_H
#define APP_CMD_H

#include <getopt.h>

#include "base/config.h"

int app_cmd_serve(const base_config *cfg, int argc, char **argv);
int app_cmd_deliveries(const base_config *cfg, int argc, char **argv);
int app_cmd_jobs(const base_config *cfg, int argc, char **argv);
int app_cmd_migrate(const base_config *cfg, int argc, char **argv);
int app_cmd_store(const base_config *cfg, int argc, char **argv);
int app_cmd_receive(const base_config *cfg, int argc, char **argv);
int app_cmd_bench(const base_config *cfg, int argc, char **argv);

/* A command's options for app_cmd_getopt: getopt_long's table (ending with
 * a zero entry) and short options ("n:e:"; NULL for none).  `--help` never
 * gets here: main prints each command's usage before its options are read. */
typedef struct app_cmd_opts {
	const char *cmd;               /* "bench": errors say "perfbot bench: ..." */
	const struct option *longopts; /* borrowed */
	const char *shortopts;         /* borrowed */
	int next;                      /* after APP_CMD_END: argv[next..] are the operands */
	int status;                    /* after APP_CMD_STOP: the exit status */
} app_cmd_opts;

#define APP_CMD_END (-1)  /* no more options */
#define APP_CMD_STOP (-2) /* a usage error was printed (one line): return o->status */

/* The next option of argv (argv[0] is the command): its `val`, with optarg
 * set for an option taking a value ("--name value", "--name=value", "-n
 * value").  A long option must be spelt in full.  An unknown option, a missing
 * value, a value given to an option that takes none, or (with
 * operands_allowed 0) an operand prints one line naming it and returns
 * APP_CMD_STOP with o->status 2.  Start with o->next = 0. */
int app_cmd_getopt(app_cmd_opts *o, int argc, char **argv, int operands_allowed);

#endif
