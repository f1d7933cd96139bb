/* `perfbot doctor [--json]` (same contract as app/cmd.h): checks an
 * installation from end to end and prints one line per check. */
#ifndef APP_CMD_DOCTOR_H
#define APP_CMD_DOCTOR_H

#include "base/config.h"

int app_cmd_doctor(const base_config *cfg, int argc, char **argv);

/* The report when the configuration did not load (error names the variable
 * and the problem): the configuration check fails, nothing else runs.
 * argv as for a command (argv[0] is "doctor"); returns the exit status. */
int app_cmd_doctor_unloaded(int argc, char **argv, const char *error);

#endif
