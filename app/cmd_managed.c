/* `perfbot managed setup [--json]`: creates or updates the Claude Managed
 * Agents agent and, when PERFBOT_MANAGED_ENVIRONMENT_ID is unset, the
 * self-hosted environment, then prints their ids and the settings to add.
 * Idempotent (agent/managed_setup.h).  Errors are one line on stderr,
 * exit status 1; a usage error exits 2.  No key is ever printed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/managed_api.h"
#include "agent/managed_setup.h"
#include "app/cmd.h"
#include "app/cmd_agent.h"
#include "base/error.h"

#define ENV_KEY_HINT "generate it in the Anthropic Console, on the environment's page; the API cannot issue it"

static void print_text(const agent_managed_setup_result *r, const base_config *cfg)
{
	printf("agent:       %s (version %lld, %s)\n", r->agent_id, r->agent_version, r->agent_action);
	printf("environment: %s (self-hosted, %s)\n\n", r->environment_id, r->environment_action);
	printf("Add to perfbot's configuration (.env or environment):\n\n");
	printf("PERFBOT_MANAGED_AGENT_ID=%s\n", r->agent_id);
	printf("PERFBOT_MANAGED_ENVIRONMENT_ID=%s\n", r->environment_id);
	if (cfg->managed_environment_key && !strcmp(r->environment_action, "unchanged"))
		printf("\nPERFBOT_MANAGED_ENVIRONMENT_KEY is set.\n");
	else
		printf("PERFBOT_MANAGED_ENVIRONMENT_KEY=...  (%s)\n", ENV_KEY_HINT);
}

static int print_json(const agent_managed_setup_result *r, const base_config *cfg)
{
	json_t *doc = json_pack("{s:{s:s,s:I,s:s},s:{s:s,s:s},s:s,s:{s:s,s:s},s:{s:b,s:s}}", "agent", "id", r->agent_id,
				"version", (json_int_t)r->agent_version, "action", r->agent_action, "environment", "id",
				r->environment_id, "action", r->environment_action, "definition_sha256",
				r->definition_sha256, "settings", "PERFBOT_MANAGED_AGENT_ID", r->agent_id,
				"PERFBOT_MANAGED_ENVIRONMENT_ID", r->environment_id, "environment_key", "set",
				cfg->managed_environment_key != NULL, "how", ENV_KEY_HINT);
	char *text = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
	json_decref(doc);
	if (!text) {
		fprintf(stderr, "perfbot managed: out of memory\n");
		return 1;
	}
	printf("%s\n", text);
	free(text);
	return 0;
}

int app_cmd_managed(const base_config *cfg, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	app_cmd_opts o = { .cmd = "managed", .longopts = longopts };
	int c, json = 0;
	while ((c = app_cmd_getopt(&o, argc, argv, 1)) != APP_CMD_END) {
		switch (c) {
		case 'j': json = 1; break;
		default: return o.status;
		}
	}
	if (o.next >= argc || strcmp(argv[o.next], "setup") != 0 || o.next + 1 < argc) {
		fprintf(stderr, "perfbot managed: expected 'setup' (see perfbot managed --help)\n");
		return 2;
	}

	agent_managed_client *client = NULL;
	agent_managed_options mo = AGENT_MANAGED_OPTIONS_INIT;
	mo.base_url = cfg->anthropic_base_url;
	if (agent_managed_client_new(&client, &mo) < 0) {
		fprintf(stderr, "perfbot managed setup: %s\n", base_error_last());
		return 1;
	}
	agent_managed_setup_options so = { 0 };
	so.api_key = cfg->anthropic_api_key;
	so.model = cfg->managed_model;
	so.agent_id = cfg->managed_agent_id;
	so.environment_id = cfg->managed_environment_id;
	agent_managed_setup_result r;
	int rc = 0;
	if (agent_managed_setup(&r, client, &so) < 0) {
		fprintf(stderr, "perfbot managed setup: %s\n", base_error_last());
		rc = 1;
	} else if (json) {
		rc = print_json(&r, cfg);
	} else {
		print_text(&r, cfg);
	}
	agent_managed_client_free(client);
	return rc;
}
