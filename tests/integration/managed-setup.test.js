// Integration: `perfbot managed setup` against the fake Managed Agents API
// (tests/fake-anthropic/): the first run creates the agent and the
// self-hosted environment, a second run changes nothing, a changed model
// makes a new agent version, a refused key is one line naming it, and the
// keys never appear in perfbot's output or logs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { cli, tmpDir } from './lib/perfbot.js';

const require = createRequire(import.meta.url);
const { startFakeAnthropic } = require('../fake-anthropic/server.js');
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

const API_KEY = 'sk-ant-itest-api-6f1d2c';
const ENV_KEY = 'envkey-itest-9b3e71';
let fake, tmp, agentId, environmentId;

function setup(extraEnv = {}, args = []) {
  return cli(['managed', 'setup', ...args], {
    env: {
      DATA_DIR: path.join(tmp, 'var'), LOG_LEVEL: 'debug', ANTHROPIC_API_KEY: API_KEY,
      ANTHROPIC_BASE_URL: fake.url, PERFBOT_MANAGED_MODEL: 'claude-opus-4-5', ...extraEnv,
    },
    cwd: tmp,
  });
}

function noKeys(r) {
  for (const k of [API_KEY, ENV_KEY]) {
    assert.ok(!r.stdout.includes(k), `a key in stdout: ${r.stdout}`);
    assert.ok(!r.stderr.includes(k), `a key in stderr/logs: ${r.stderr}`);
  }
}

function agentVersions(id) {
  return fake.state.agents.get(id).versions;
}

before(async () => {
  tmp = tmpDir('perfbot-managed-');
  fake = await startFakeAnthropic({ apiKey: API_KEY, environmentKey: ENV_KEY, port: 0 });
});

after(async () => {
  if (fake) await fake.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('the first run creates the agent and the self-hosted environment', async () => {
  const envsBefore = fake.state.environments.size;
  const r = await setup({ PERFBOT_MANAGED_ENVIRONMENT_KEY: ENV_KEY }, ['--json']);
  assert.equal(r.code, 0, r.stderr);
  noKeys(r);
  const out = JSON.parse(r.stdout);
  assert.equal(out.agent.action, 'created');
  assert.equal(out.agent.version, 1);
  assert.equal(out.environment.action, 'created');
  assert.match(out.definition_sha256, /^[0-9a-f]{64}$/);
  agentId = out.agent.id;
  environmentId = out.environment.id;
  assert.deepEqual(out.settings, { PERFBOT_MANAGED_AGENT_ID: agentId, PERFBOT_MANAGED_ENVIRONMENT_ID: environmentId });
  assert.match(out.environment_key.how, /Console/);

  // what the service holds
  assert.equal(fake.state.environments.size, envsBefore + 1);
  const env = fake.state.environments.get(environmentId);
  assert.equal(env.config.type, 'self_hosted');
  const agent = agentVersions(agentId).at(-1);
  assert.equal(agent.name, 'perfbot');
  assert.equal(agent.model.id || agent.model, 'claude-opus-4-5');
  assert.equal(agent.system, fs.readFileSync(path.join(ROOT, 'agent/managed_system_prompt.md'), 'utf8'));
  assert.equal(agent.metadata.perfbot_definition_sha256, out.definition_sha256);
  const custom = agent.tools.filter((t) => t.type === 'custom').map((t) => t.name);
  assert.deepEqual(custom, ['run_benchmarks', 'get_profile', 'compare', 'get_diff', 'submit_result']);
  const submit = agent.tools.find((t) => t.name === 'submit_result');
  assert.deepEqual(submit.input_schema.required, ['summary']);
  const toolset = agent.tools.find((t) => t.type === 'agent_toolset_20260401');
  assert.ok(toolset, 'the built-in toolset');
  const cfg = Object.fromEntries(toolset.configs.map((c) => [c.name, c.enabled]));
  assert.equal(cfg.web_fetch, false);
  assert.equal(cfg.web_search, false);
  assert.equal(cfg.bash, true);

  // every call was the control plane's, with the API key
  const mine = fake.requests.filter((q) => q.path.startsWith('/v1/'));
  assert.ok(mine.length >= 3);
  for (const q of mine) assert.equal(q.auth, 'api', `${q.method} ${q.path}`);
});

test('a second run changes nothing and prints the settings to add', async () => {
  fake.resetRequests();
  // as the operator would: the environment id printed by the first run
  let r = await setup({ PERFBOT_MANAGED_ENVIRONMENT_ID: environmentId });
  assert.equal(r.code, 0, r.stderr);
  noKeys(r);
  assert.match(r.stdout, new RegExp(`agent: +${agentId} \\(version 1, unchanged\\)`));
  assert.match(r.stdout, new RegExp(`environment: +${environmentId} \\(self-hosted, unchanged\\)`));
  assert.match(r.stdout, new RegExp(`^PERFBOT_MANAGED_AGENT_ID=${agentId}$`, 'm'));
  assert.match(r.stdout, new RegExp(`^PERFBOT_MANAGED_ENVIRONMENT_ID=${environmentId}$`, 'm'));
  assert.match(r.stdout, /^PERFBOT_MANAGED_ENVIRONMENT_KEY=\.\.\. .*Anthropic Console/m);
  // and with the agent id too
  r = await setup({ PERFBOT_MANAGED_ENVIRONMENT_ID: environmentId, PERFBOT_MANAGED_AGENT_ID: agentId }, ['--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).agent.action, 'unchanged');
  const writes = fake.requests.filter((q) => q.method !== 'GET');
  assert.deepEqual(writes.map((q) => `${q.method} ${q.path}`), []);
  assert.equal(agentVersions(agentId).length, 1);
});

test('a changed model updates the agent to a new version', async () => {
  const r = await setup({ PERFBOT_MANAGED_ENVIRONMENT_ID: environmentId, PERFBOT_MANAGED_MODEL: 'claude-sonnet-4-5' },
    ['--json']);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.agent.id, agentId);
  assert.equal(out.agent.action, 'updated');
  assert.equal(out.agent.version, 2);
  assert.equal(out.environment.action, 'unchanged');
  const versions = agentVersions(agentId);
  assert.equal(versions.length, 2);
  assert.equal(versions[1].model.id || versions[1].model, 'claude-sonnet-4-5');
  assert.equal(versions[1].metadata.perfbot_definition_sha256, out.definition_sha256);
  // the same definition again: still version 2
  const again = await setup({ PERFBOT_MANAGED_ENVIRONMENT_ID: environmentId, PERFBOT_MANAGED_MODEL: 'claude-sonnet-4-5' },
    ['--json']);
  assert.equal(JSON.parse(again.stdout).agent.action, 'unchanged');
  assert.equal(agentVersions(agentId).length, 2);
});

test('a refused API key is one line naming it, without the key', async () => {
  const wrong = 'sk-ant-wrong-key-0a9c44';
  const r = await setup({ ANTHROPIC_API_KEY: wrong, PERFBOT_MANAGED_ENVIRONMENT_KEY: ENV_KEY });
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  const lines = r.stderr.split('\n').filter((l) => l && !l.startsWith('{'));
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /^perfbot managed setup: listing the agents: the API key \(ANTHROPIC_API_KEY\) was refused: Anthropic API GET \/v1\/agents: 401 authentication_error/);
  assert.ok(!r.stderr.includes(wrong), r.stderr);
  noKeys(r);
});

test('missing and malformed settings stop with one line naming them', async () => {
  let r = await setup({ PERFBOT_MANAGED_MODEL: null });
  assert.equal(r.code, 1);
  assert.match(r.stderr.trim(), /^perfbot managed setup: PERFBOT_MANAGED_MODEL: required/);
  r = await setup({ ANTHROPIC_API_KEY: null });
  assert.equal(r.code, 1);
  assert.match(r.stderr.trim(), /^perfbot managed setup: ANTHROPIC_API_KEY: required/);
  r = await setup({ ANTHROPIC_BASE_URL: 'ftp://example.com' });
  assert.equal(r.code, 2);
  assert.match(r.stderr.trim(), /^perfbot managed: ANTHROPIC_BASE_URL: expected an http or https URL/);
  r = await setup({ ANTHROPIC_API_KEY: 'sk-ant bad key-77' });
  assert.equal(r.code, 2);
  assert.match(r.stderr.trim(), /^perfbot managed: ANTHROPIC_API_KEY: /);
  assert.ok(!r.stderr.includes('bad key-77'));
  r = await setup({ PERFBOT_MANAGED_AGENT_ID: 'agent_missing' });
  assert.equal(r.code, 1);
  assert.match(r.stderr.trim(), /PERFBOT_MANAGED_AGENT_ID: no agent agent_missing/);
  r = await cli(['managed', 'teardown'], { env: { DATA_DIR: path.join(tmp, 'var') } });
  assert.equal(r.code, 2);
  assert.match(r.stderr.trim(), /^perfbot managed: expected 'setup'/);
});

test('PERFBOT_AGENT=managed without one of its settings stops start-up, naming it and no key', async () => {
  const env = { DATA_DIR: path.join(tmp, 'var'), PERFBOT_AGENT: 'managed', ANTHROPIC_API_KEY: API_KEY,
    PERFBOT_MANAGED_ENVIRONMENT_ID: environmentId || 'env_011CZtest', PERFBOT_MANAGED_MODEL: 'claude-opus-4-5' };
  let r = await cli(['runs'], { env });
  assert.equal(r.code, 2);
  assert.match(r.stderr.trim(), /^perfbot runs: PERFBOT_MANAGED_ENVIRONMENT_KEY: required by the managed agent backend/);
  noKeys(r);
  r = await cli(['runs'], { env: { ...env, ANTHROPIC_API_KEY: '', PERFBOT_MANAGED_ENVIRONMENT_KEY: ENV_KEY } });
  assert.equal(r.code, 2);
  assert.match(r.stderr.trim(), /^perfbot runs: ANTHROPIC_API_KEY: required by the managed agent backend/);
  noKeys(r);
  // all four set: the configuration loads (and `runs` goes on to look for its store)
  r = await cli(['runs'], { env: { ...env, DATA_DIR: path.join(tmp, 'no-store'), PERFBOT_MANAGED_ENVIRONMENT_KEY: ENV_KEY } });
  assert.match(r.stderr.trim(), /^perfbot runs: no perfbot store at /);
  noKeys(r);
});

test('retries are logged without the keys; --help shows no values', async () => {
  fake.failNext({ status: 529, count: 1, path: /\/v1\/agents/, type: 'overloaded_error', message: 'busy',
    headers: { 'retry-after-ms': '10' } });
  const r = await setup({ PERFBOT_MANAGED_ENVIRONMENT_ID: environmentId, PERFBOT_MANAGED_ENVIRONMENT_KEY: ENV_KEY });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /anthropic api retry/);
  assert.match(r.stdout, /PERFBOT_MANAGED_ENVIRONMENT_KEY is set/);
  noKeys(r);
  const help = await cli(['managed', '--help'], { env: { ANTHROPIC_API_KEY: API_KEY, PERFBOT_MANAGED_ENVIRONMENT_KEY: ENV_KEY } });
  assert.equal(help.code, 0);
  assert.match(help.stdout, /perfbot managed setup \[--json\]/);
  assert.match(help.stdout, /ANTHROPIC_API_KEY/);
  assert.match(help.stdout, /PERFBOT_MANAGED_ENVIRONMENT_KEY/);
  noKeys(help);
});
