/* perfbot's agent-run subcommands (same contract as app/cmd.h):
 *   perfbot optimize --repo DIR --agent-command CMD [--rev REV] [--json]
 *                    [--diff-out FILE] [--benchmark NAME ...]
 *   perfbot runs [--json] [--limit N] [--kind bench|agent]
 *   perfbot runs show N [--json]
 *   perfbot managed setup [--json] */
#ifndef APP_CMD_AGENT_H
#define APP_CMD_AGENT_H

#include "base/config.h"

int app_cmd_optimize(const base_config *cfg, int argc, char **argv);
int app_cmd_runs(const base_config *cfg, int argc, char **argv);
int app_cmd_managed(const base_config *cfg, int argc, char **argv);

#endif
