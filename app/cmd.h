/* perfbot's subcommands.  Each gets the frozen configuration and the
 * arguments left after configuration flags were taken (argv[0] is the first
 * of them, not the command name); returns the process exit status. */
#ifndef APP_CMD_H
#define APP_CMD_H

#include "base/config.h"

int app_cmd_serve(const base_config *cfg, int argc, char **argv);
int app_cmd_deliveries(const base_config *cfg, int argc, char **argv);
int app_cmd_jobs(const base_config *cfg, int argc, char **argv);
int app_cmd_receive(const base_config *cfg, int argc, char **argv);
int app_cmd_bench(const base_config *cfg, int argc, char **argv);

/* Shared option parsing for the commands: "--name value", "--name=value"
 * or "-n value".  Returns the value or NULL; *i advances past it. */
const char *app_cmd_optval(int argc, char **argv, int *i, const char *long_name, const char *short_name);

#endif
