/* `perfbot managed setup`: the Managed Agents agent and self-hosted
 * environment perfbot's managed backend runs on.
 *
 * The agent's definition is perfbot's own: name "perfbot", the configured
 * model, the system prompt compiled in (agent/managed_system_prompt.md),
 * perfbot's run tools as custom tools (the same names, descriptions and
 * schemas as over MCP, from agent_tools_list) and the built-in toolset with
 * the web tools off.  Its SHA-256 goes into the agent's metadata, so that
 * set-up is idempotent: an agent whose stored hash matches is left alone,
 * one whose definition changed gets a new version. */
#ifndef AGENT_MANAGED_SETUP_H
#define AGENT_MANAGED_SETUP_H

#include <jansson.h>

#include "agent/managed_api.h"

/* The metadata key holding the definition's hash. */
#define AGENT_MANAGED_HASH_KEY "perfbot_definition_sha256"

typedef struct agent_managed_setup_options {
	const char *api_key;          /* ANTHROPIC_API_KEY; borrowed, required */
	const char *model;            /* PERFBOT_MANAGED_MODEL; required */
	const char *agent_id;         /* PERFBOT_MANAGED_AGENT_ID, or NULL: found by its metadata or created */
	const char *environment_id;   /* PERFBOT_MANAGED_ENVIRONMENT_ID, or NULL: created */
	const char *system_prompt;    /* NULL: the compiled-in prompt (tests change it) */
} agent_managed_setup_options;

typedef struct agent_managed_setup_result {
	char agent_id[128];
	long long agent_version;
	const char *agent_action;       /* "created" | "updated" | "unchanged" (static) */
	char environment_id[128];
	const char *environment_action; /* "created" | "unchanged" (static) */
	char definition_sha256[65];
} agent_managed_setup_result;

/* The agent's definition for model: {name, description, model, system,
 * tools} (owned), system NULL meaning the compiled-in prompt. */
json_t *agent_managed_agent_definition(const char *model, const char *system);

/* The hex SHA-256 of a definition's canonical JSON (sorted keys, compact). */
int agent_managed_definition_hash(char out[65], const json_t *definition);

/* The compiled-in system prompt (static). */
const char *agent_managed_system_prompt(void);

/* Creates or updates the agent and, without an environment id, creates the
 * self-hosted environment.  Errors name what failed in one line ("the API
 * key (ANTHROPIC_API_KEY) was refused: ..."); no key is ever part of one. */
int agent_managed_setup(agent_managed_setup_result *out, agent_managed_client *c,
			const agent_managed_setup_options *opts);

/* The first live agent of the account carrying perfbot's hash key (the one
 * setup made), as the agent list shows it; *out owned, or NULL when there
 * is none. */
int agent_managed_find_agent(json_t **out, agent_managed_client *c, const char *api_key);

/* Checks, without changing anything, what the configuration names: the API
 * key is accepted (a list of agents), the agent id (may be NULL) exists and
 * the environment id (may be NULL) is a self-hosted environment.  0 with a
 * one-line summary in detail, or the error of the first that does not hold
 * (one line, naming the setting, never a key).  The environment key can only
 * be checked by polling, which would take work from a running worker: it is
 * not. */
int agent_managed_verify(char *detail, size_t cap, agent_managed_client *c, const char *api_key,
			 const char *agent_id, const char *environment_id);

#endif
