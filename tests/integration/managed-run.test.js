// Integration: agent runs with the managed backend end to end.  The real
// `perfbot serve` (PERFBOT_AGENT=managed, App credentials, GITHUB_API_URL at
// the fake GitHub) takes `/perfbot` comments, measures tests/data/optrepo in
// the real bwrap sandbox under callgrind, creates a session on the fake
// Managed Agents API (tests/fake-anthropic/server.js) and serves its tool
// calls with its own worker: each test scripts the session of its run
// (scriptFor({metadata: {run}})) and checks what perfbot did with it, and
// what the fake saw (metadata, budget, interrupts, archives, violations).
// The last tests run `perfbot optimize --agent managed --json` against the
// same fake and compare it with the command backend (JSON shape, wall time).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { ROOT, SCRIPTED_AGENT, SLOW, cli, metrics, metricSum, sqlite, startServer, tmpDir, waitFor, dataRepoFiles, receiveEvent, dataRepoCommitted, startFakeGitHubApp } from './lib/perfbot.js';

const require = createRequire(import.meta.url);
const { startFakeAnthropic } = require('../fake-anthropic/server.js');

const APP_ID = 4545;
const SECRET = 'managed-run-secret';
const REPO = 'octo-org/managed';
const API_KEY = 'sk-ant-mrun-api-4c1e9d';
const ENV_KEY = 'envkey-mrun-77a0b3';
const MODEL = 'claude-opus-4-5';
const RUN_MS = 120000 * SLOW;
const PRIMES = fs.readFileSync(path.join(ROOT, 'tests/data/optrepo/src/primes.c'), 'utf8');
const FASTER = PRIMES.replace('for (int d = 2; d < n; d++)', 'for (int d = 2; d * d <= n; d++)');
const YML = fs.readFileSync(path.join(ROOT, 'tests/data/optrepo/.github/perfbot.yml'), 'utf8')
  .replace(/max_benchmark_runs: \d+/, 'max_benchmark_runs: 5\n  max_cost_usd: 2.50');

let tmp, gh, anthropic, srv, dataDir, baseSha, agentId;
let nextComment = 5000;

const optrepoFiles = (extra = {}) => dataRepoFiles('optrepo', extra);

const managedEnv = (extra = {}) => ({
  ANTHROPIC_API_KEY: API_KEY, ANTHROPIC_BASE_URL: anthropic.url, PERFBOT_MANAGED_ENVIRONMENT_ID: anthropic.environmentId,
  PERFBOT_MANAGED_ENVIRONMENT_KEY: ENV_KEY, PERFBOT_MANAGED_MODEL: MODEL, ...extra,
});

function noKeys(text, where) {
  for (const k of [API_KEY, ENV_KEY]) assert.ok(!text.includes(k), `a key in ${where}`);
}

const receive = (event, payload) => receiveEvent({ dir: tmp, url: srv.url, secret: SECRET }, event, payload);

function repository(full) {
  const [owner, name] = full.split('/');
  return { id: 78, name, full_name: full, owner: { login: owner, type: 'Organization' }, private: true,
    default_branch: 'main', clone_url: gh.gitUrl(full) };
}

async function comment(body, { user = 'mona', issue = 1 } = {}) {
  const id = nextComment++;
  await receive('issue_comment', {
    action: 'created',
    issue: { number: issue, title: 'Make it faster', state: 'open', user: { login: 'mona', type: 'User' } },
    comment: { id, body, user: { login: user, type: 'User' } },
    repository: repository(REPO), installation: { id: 1 }, sender: { login: user, type: 'User' },
  });
}

const commentsOn = (issue) => gh.state.comments.filter((c) => c.issue === issue && c.repository === REPO);

async function replyAfter(issue, count) {
  await gh.waitFor(() => commentsOn(issue).length > count, 20000 * SLOW);
  return commentsOn(issue)[count].body;
}

async function run(id) {
  const [r] = await sqlite(dataDir, `SELECT id, state, reason, data FROM runs WHERE id=${id}`);
  return r ? { ...r, data: JSON.parse(r.data || '{}') } : null;
}

async function ended(id) {
  return waitFor(async () => {
    const r = await run(id);
    return r && ['proposal', 'no_improvement', 'failed', 'cancelled'].includes(r.state) && r.data.reported ? r : null;
  }, { timeoutMs: RUN_MS, everyMs: 200, what: `run ${id} to end and be reported` });
}

// Starts a run from a comment and scripts its session before it exists (the
// baseline is measured first); returns {id, session: () => record}.
async function optimize(issue, steps) {
  const n = commentsOn(issue).length;
  await comment('/perfbot optimize', { issue });
  const reply = await replyAfter(issue, n);
  const m = /Started perfbot run (\d+)/.exec(reply);
  assert.ok(m, reply);
  const id = Number(m[1]);
  anthropic.scriptFor({ metadata: { run: String(id) } }, steps);
  const session = () => anthropic.sessions().find((s) => s.obj.metadata.run === String(id));
  return { id, session };
}

const text = (result) => (result.content || []).map((c) => c.text || '').join('');

// A check run by the fake on a tool result: a failure is kept for the test
// (thrown there, it would only stop the session's script).
const problems = [];
const check = (fn) => (res, s, f) => {
  try { fn(res, s, f); } catch (e) { problems.push(e.message); }
};

// Every tool use of a session was answered exactly once, with the right kind.
function answeredOnce(s) {
  assert.deepEqual(problems.splice(0), []);
  assert.equal(s.error, null, `the session's script failed: ${s.error}`);
  assert.deepEqual(anthropic.violations.filter((v) => v.session === s.id), []);
  for (const u of anthropic.toolUses(s.id)) {
    if (u.permission === 'deny') assert.equal(u.results.length, 0, `denied ${u.name} was never answered`);
    else assert.equal(u.results.length, 1, `${u.name} answered once`);
  }
}

before(async () => {
  tmp = tmpDir('perfbot-managed-run-');
  dataDir = path.join(tmp, 'var');
  fs.mkdirSync(dataDir);
  const started = await startFakeGitHubApp(tmp, APP_ID);
  gh = started.fake;
  const keyPath = started.keyPath;
  const bare = gh.createGitRepo(REPO, { files: optrepoFiles({ '.github/perfbot.yml': YML }), branch: 'main' });
  baseSha = execFileSync('git', ['-C', bare, 'rev-parse', 'main']).toString().trim();
  gh.setPermission(REPO, 'mona', 'write');
  // short leases: heartbeats every few seconds, so a lost lease shows quickly
  anthropic = await startFakeAnthropic({ apiKey: API_KEY, environmentKey: ENV_KEY, port: 0, leaseTtlSeconds: 6 });
  // the agent as `perfbot managed setup` makes it; serve finds it without PERFBOT_MANAGED_AGENT_ID
  const setup = await cli(['managed', 'setup', '--json'], {
    env: { DATA_DIR: path.join(tmp, 'setup-var'), ...managedEnv() }, cwd: tmp,
  });
  assert.equal(setup.code, 0, setup.stderr);
  agentId = JSON.parse(setup.stdout).agent.id;
  srv = await startServer({
    dataDir, secret: SECRET,
    env: {
      APP_ID, PRIVATE_KEY_PATH: keyPath, GITHUB_API_URL: gh.url, WORKERS: 3, REDELIVERY_INTERVAL_SECONDS: 0,
      PERFBOT_AGENT: 'managed', LOG_LEVEL: 'debug', ...managedEnv(),
    },
  });
});

after(async () => {
  const stopped = srv ? await srv.stop() : null;
  if (anthropic) await anthropic.close();
  if (gh) await gh.close();
  if (tmp && !process.env.KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
  if (shared && !process.env.KEEP_TMP) fs.rmSync(shared, { recursive: true, force: true });
  if (stopped) {
    assert.equal(srv.sanitizerReport(), null, 'sanitizer report in perfbot serve');
    assert.ok(stopped.code === 0 || stopped.signal === 'SIGTERM', `serve exit ${stopped.code} ${stopped.signal}`);
    noKeys(stopped.stderr, 'the server\'s logs');
  }
});

// The good script: read the hot file, write the faster version, measure, submit.
function goodScript(extra = {}) {
  return [
    { tool: 'read', input: { file_path: '/workspace/src/primes.c' },
      onResult: check((r) => { assert.ok(!r.is_error && text(r).includes('d < n'), `read: ${text(r)}`); }) },
    { message: 'The trial division can stop at the square root of n.' },
    ...(extra.before || []),
    { tool: 'write', input: { file_path: '/workspace/src/primes.c', content: FASTER } },
    { custom: 'run_benchmarks', input: {}, replay: !!extra.replay },
    { usage: { input_tokens: 1200, output_tokens: 340, cache_read_input_tokens: 800, list_cost_cents: 42,
      active_seconds: 7 } },
    { custom: 'submit_result', input: { summary: 'Trial division stops at the square root of n.' } },
    { message: 'Submitted.' },
    { idle: 'end_turn' },
  ];
}

test('a managed session reads, writes, measures and submits: a verified proposal with the button', async () => {
  const { id, session } = await optimize(1, goodScript({
    // a tool use the environment refused is never run; the same tool use on
    // the stream twice is answered once
    before: [{ tool: 'bash', input: { command: 'rm -f /workspace/src/primes.h' }, permission: 'deny' }],
    replay: true,
  }));
  const r = await ended(id);
  assert.equal(r.state, 'proposal', r.reason);
  const s = session();
  assert.ok(s, 'a session was created for the run');
  // the session as perfbot created it
  assert.equal(s.obj.metadata.run, String(id));
  assert.deepEqual(s.obj.budget, { type: 'limit', max_list_cost: { amount: '250', currency: 'USD' } });
  assert.equal(s.obj.agent.id, agentId);
  assert.equal(s.obj.environment_id, anthropic.environmentId);
  const first = s.events.find((e) => e.type === 'user.message');
  const task = first.content[0].text;
  assert.match(task, /submit_result/);
  assert.match(task, /`bash` to run commands there/, 'the tools by the names the session gives them');
  assert.doesNotMatch(task, /read_file|MCP/);
  assert.match(task, /primes/);
  noKeys(task, 'the task');
  answeredOnce(s);
  const uses = anthropic.toolUses(s.id);
  assert.deepEqual(uses.map((u) => u.name), ['read', 'bash', 'write', 'run_benchmarks', 'submit_result']);
  const bench = uses.find((u) => u.name === 'run_benchmarks');
  assert.equal(bench.results[0].type, 'user.custom_tool_result');
  assert.ok(!bench.results[0].is_error, text(bench.results[0]));
  assert.match(text(bench.results[0]), /primes/);
  assert.ok(s.archived, 'the session is archived once the run is done');
  const work = anthropic.workFor(s.id);
  assert.ok(work.some((w) => w.acks > 0 && w.heartbeats > 0), 'its work item was acked and heartbeated');

  // the proposal: the written change, measured and verified
  const [prop] = await sqlite(dataDir, `SELECT data FROM proposals WHERE run_id=${id}`);
  const p = JSON.parse(prop.data);
  assert.match(p.diff, /\+\tfor \(int d = 2; d \* d <= n; d\+\+\)/);
  assert.doesNotMatch(p.diff, /primes\.h/, 'the denied command removed nothing');
  assert.equal(p.summary, 'Trial division stops at the square root of n.');
  const row = p.benchmarks.find((b) => b.name === 'primes');
  assert.equal(row.verdict, 'improved');
  assert.ok(row.head < row.base / 2, `primes got much faster: ${row.base} → ${row.head}`);
  // the check run with the button
  const [cr] = gh.state.checkRuns.filter((c) => c.name === 'perfbot optimize' && c.external_id === String(id));
  assert.equal(cr.head_sha, baseSha);
  assert.equal(cr.conclusion, 'neutral');
  assert.equal(cr.actions.length, 1);
  assert.equal(cr.actions[0].label, 'Open pull request');
  assert.match(cr.output.title, /^Verified: primes -\d+\.\d\d%$/);

  // the run's record of its session
  const m = r.data.managed;
  assert.equal(m.session_id, s.id);
  assert.equal(m.agent_id, agentId);
  assert.equal(m.agent_version, 1);
  assert.equal(m.end, 'end_turn');
  assert.deepEqual(m.usage, { input_tokens: 1200, output_tokens: 340, cache_read_input_tokens: 800,
    cache_creation_input_tokens: 0 });
  assert.equal(m.list_cost_usd, 0.42);
  assert.equal(m.active_seconds, 7);
  assert.equal(r.data.agent.backend, 'managed');
  assert.equal(r.data.budgets.benchmark_runs, 1);
  const show = await cli(['runs', 'show', String(id)], { env: { DATA_DIR: dataDir } });
  assert.equal(show.code, 0, show.stderr);
  assert.match(show.stdout, new RegExp(`^session: +${s.id} \\(agent ${agentId} version 1\\), ended: end_turn$`, 'm'));
  assert.match(show.stdout, /^tokens: +1200 input, 340 output, 800 cache read, 0 cache creation$/m);
  assert.match(show.stdout, /^cost: +\$0\.42 list cost of a \$2\.50 budget, 7\.0 s active$/m);

  // the worker's counters on /metrics
  const mt = await metrics(srv.port);
  assert.ok(metricSum(mt, 'perfbot_managed_sessions_total') >= 1, 'sessions served');
  assert.ok(metricSum(mt, 'perfbot_managed_tool_calls_total') >= 4, 'tool calls');
  assert.ok(metricSum(mt, 'perfbot_managed_tool_calls_total', { tool: 'write' }) >= 1, 'tool calls by tool');
  assert.ok('perfbot_managed_tool_calls_total{tool="edit"}' in mt, 'a tool not called yet shows 0');
  assert.ok(metricSum(mt, 'perfbot_managed_results_posted_total') >= 4, 'results posted');
  assert.ok('perfbot_managed_leases_lost_total' in mt && 'perfbot_managed_retries_total' in mt);
});

test('an agent that ends its turn without submitting: no_improvement, after a dropped stream and a 429', async () => {
  const { id, session } = await optimize(2, [
    { tool: 'read', input: { file_path: '/workspace/src/primes.c' } },
    { dropStream: true },
    { run: async () => anthropic.rateLimitResults({ count: 1, retryAfter: 1 }) },
    { tool: 'grep', input: { pattern: 'd < n', path: '/workspace/src' } },
    { tool: 'glob', input: { pattern: '**/*.c' } },
    // no key in the sandbox's environment
    { tool: 'bash', input: { command: 'env; cat /proc/self/environ | tr "\\0" "\\n"' },
      onResult: check((res) => {
        assert.ok(!res.is_error, text(res));
        noKeys(text(res), 'the sandbox');
        assert.match(text(res), /PATH=/);
      }) },
    { message: 'Nothing worth changing.' },
    { idle: 'end_turn' },
  ]);
  const r = await ended(id);
  assert.equal(r.state, 'no_improvement');
  assert.equal(r.reason, 'the agent ended its turn without submitting a change');
  const s = session();
  answeredOnce(s);
  assert.ok(s.streamsOpened >= 2, `the stream was opened again after the drop (${s.streamsOpened})`);
  const rl = anthropic.requests.filter((q) => q.method === 'POST' && q.path === `/v1/sessions/${s.id}/events`);
  assert.ok(rl.length >= 4, 'the rate-limited result was posted again');
  assert.ok(s.archived);
  assert.deepEqual(await sqlite(dataDir, `SELECT run_id FROM proposals WHERE run_id=${id}`), []);
});

test('a session that reaches its cost budget: no_improvement naming the budget', async () => {
  const { id, session } = await optimize(3, [
    { tool: 'read', input: { file_path: '/workspace/src/primes.c' } },
    { usage: { input_tokens: 90000, output_tokens: 9000, list_cost_cents: 251 } },
    { idle: 'budget_reached' },
  ]);
  const r = await ended(id);
  assert.equal(r.state, 'no_improvement');
  assert.equal(r.reason, 'the cost budget (optimize.max_cost_usd: $2.50) was reached before a change was submitted');
  assert.equal(r.data.managed.end, 'budget_reached');
  assert.equal(r.data.managed.list_cost_usd, 2.51);
  answeredOnce(session());
});

test('a lost lease ends the run failed, cleanly; stop is never called on it', async () => {
  const { id, session } = await optimize(4, [
    { tool: 'read', input: { file_path: '/workspace/src/primes.c' },
      onResult: (_r, s) => { const [w] = anthropic.workFor(s.id); anthropic.loseLease(w.id); } },
    { wait: 60000 },
  ]);
  const r = await ended(id);
  assert.equal(r.state, 'failed');
  assert.match(r.reason, /lease was lost/);
  const s = session();
  assert.deepEqual(anthropic.violations.filter((v) => v.session === s.id), []);
  assert.ok(s.archived);
});

test('a healthcheck item is acked, heartbeated and stopped', async () => {
  const item = anthropic.queueHealthcheck();
  const w = await waitFor(() => {
    const x = anthropic.work(item.id);
    return x && x.state === 'stopped' ? x : null;
  }, { timeoutMs: 20000 * SLOW, what: 'the healthcheck item to be stopped' });
  assert.ok(w.acks >= 1 && w.heartbeats >= 1, JSON.stringify({ acks: w.acks, heartbeats: w.heartbeats }));
});

// An agent run on issue `issue` whose session reads a file and then waits to
// be interrupted; once the read's result is back.
async function optimizeUntilFirstResult(issue) {
  const run = await optimize(issue, [
    { tool: 'read', input: { file_path: '/workspace/src/primes.c' } },
    { waitFor: 'interrupt', timeoutMs: RUN_MS },
  ]);
  await waitFor(() => {
    const s = run.session();
    return s && anthropic.toolUses(s.id).some((u) => u.results.length > 0);
  }, { timeoutMs: RUN_MS, what: 'the first tool result' });
  return run;
}

test('/perfbot cancel interrupts the session, stops its item and archives it', async () => {
  const { id, session } = await optimizeUntilFirstResult(5);
  const n = commentsOn(5).length;
  await comment(`/perfbot cancel ${id}`, { issue: 5 });
  await replyAfter(5, n);
  const r = await ended(id);
  assert.equal(r.state, 'cancelled');
  const s = session();
  assert.ok(s.userEvents.some((e) => e.type === 'user.interrupt'), 'the fake saw a user.interrupt');
  assert.ok(anthropic.workFor(s.id).every((w) => w.state === 'stopped'), 'its work item is stopped');
  assert.ok(s.archived, 'the session is archived');
  answeredOnce(s);
});

test('a session that fails for good: the run fails with the session\'s error', async () => {
  const { id, session } = await optimize(6, [
    { tool: 'read', input: { file_path: '/workspace/src/primes.c' } },
    { error: { type: 'overloaded_error', message: 'the model is overloaded', retry_status: 'terminal' } },
  ]);
  const r = await ended(id);
  assert.equal(r.state, 'failed');
  assert.match(r.reason, /^the agent's session (failed|was terminated)/);
  assert.deepEqual(await sqlite(dataDir, `SELECT run_id FROM proposals WHERE run_id=${id}`), []);
  answeredOnce(session());
});

test('a session whose retries are exhausted, or that is terminated: the run fails, saying which', async () => {
  let { id, session } = await optimize(8, [
    { tool: 'glob', input: { pattern: 'src/*.c' } },
    { idle: 'retries_exhausted' },
  ]);
  let r = await ended(id);
  assert.equal(r.state, 'failed');
  assert.match(r.reason, /^the agent's session exhausted its retries/);
  assert.equal(r.data.managed.end, 'retries_exhausted');
  answeredOnce(session());
  ({ id, session } = await optimize(8, [{ tool: 'glob', input: { pattern: 'src/*.c' } }, { terminate: true }]));
  r = await ended(id);
  assert.equal(r.state, 'failed');
  assert.match(r.reason, /^the agent's session was terminated/);
  answeredOnce(session());
});

// last of the server's tests: it stops the server
test('SIGTERM drains: the running session is interrupted, its item stopped and the session archived', async () => {
  const { id, session } = await optimizeUntilFirstResult(7);
  const stopped = await srv.stop();
  assert.equal(stopped.code, 0, stopped.stderr.slice(-2000));
  const r = await run(id);
  assert.equal(r.state, 'cancelled');
  assert.equal(r.reason, 'interrupted: perfbot was shutting down');
  const s = session();
  assert.ok(s.userEvents.some((e) => e.type === 'user.interrupt'), 'the fake saw a user.interrupt');
  assert.ok(anthropic.workFor(s.id).every((w) => w.state === 'stopped'), 'its work item is stopped');
  assert.ok(s.archived, 'the session is archived');
});

// ---- the command line ----------------------------------------------------------

let cliRepo, cliData, managedDoc, managedMs, shared;

function git(...args) {
  return execFileSync('git', ['-C', cliRepo, '-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args]).toString().trim();
}

test('perfbot optimize --agent managed --json: the command backend\'s JSON plus the session', async () => {
  shared = fs.mkdtempSync('/var/tmp/perfbot-managed-cli-');
  fs.chmodSync(shared, 0o755);
  cliRepo = path.join(shared, 'repo');
  cliData = path.join(shared, 'var');
  dataRepoCommitted('optrepo', cliRepo);

  // the CLI's worker alone polls the environment (a second poller would take
  // the CLI session's item, leave it, and cost reclaim windows to the timing)
  await srv.stop();
  anthropic.scriptFor((obj) => obj.title && obj.title.includes(cliRepo), goodScript());
  let t0 = Date.now();
  const r = await cli(['optimize', '--repo', cliRepo, '--agent', 'managed', '--json'],
    { env: { DATA_DIR: cliData, LOG_LEVEL: 'info', ...managedEnv({ PERFBOT_MANAGED_AGENT_ID: agentId }) },
      timeoutMs: RUN_MS });
  managedMs = Date.now() - t0;
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.doesNotMatch(r.stderr, /AddressSanitizer|LeakSanitizer|runtime error:/);
  noKeys(r.stdout + r.stderr, 'perfbot optimize\'s output');
  managedDoc = JSON.parse(r.stdout);
  assert.equal(managedDoc.status, 'proposal', managedDoc.reason);
  assert.equal(managedDoc.reason, '1 benchmark improved, none regressed');
  assert.match(managedDoc.diff, /d \* d <= n/);
  assert.equal(managedDoc.managed.end, 'end_turn');
  const s = anthropic.session(managedDoc.managed.session_id);
  assert.equal(s.obj.metadata.run, String(managedDoc.run));
  assert.equal(s.obj.budget, null, 'optrepo sets no cost budget');
  answeredOnce(s);
  assert.ok(s.archived);

  t0 = Date.now();
  const c = await cli(['optimize', '--repo', cliRepo, '--agent-command', `node '${SCRIPTED_AGENT}'`, '--json'],
    { env: { DATA_DIR: cliData, LOG_LEVEL: 'error', SCRIPTED_AGENT_MODE: 'good' }, timeoutMs: RUN_MS });
  const commandMs = Date.now() - t0;
  assert.equal(c.code, 0, c.stderr + c.stdout);
  const commandDoc = JSON.parse(c.stdout);
  const { managed, ...rest } = managedDoc;
  assert.ok(managed);
  assert.deepEqual(Object.keys(rest).sort(), Object.keys(commandDoc).sort());
  assert.deepEqual(rest.benchmarks.map((b) => Object.keys(b).sort()), commandDoc.benchmarks.map((b) => Object.keys(b).sort()));
  assert.deepEqual(rest.benchmarks.map((b) => [b.name, b.base, b.head]), commandDoc.benchmarks.map((b) => [b.name, b.base, b.head]));
  // the agent step alone (between the baseline and verification), as each run recorded it
  const agentMs = async (id) => JSON.parse((await cli(['runs', 'show', String(id), '--json'],
    { env: { DATA_DIR: cliData } })).stdout).run.data.timings.agent_ms;
  console.log(`# wall time of one scripted run: managed backend ${managedMs} ms (agent step ` +
    `${await agentMs(managedDoc.run)} ms), command backend ${commandMs} ms (agent step ${await agentMs(commandDoc.run)} ms)`);

  const show = await cli(['runs', 'show', String(managedDoc.run)], { env: { DATA_DIR: cliData } });
  assert.match(show.stdout, /^session: +sesn_\S+ \(agent agent_\S+ version 1\), ended: end_turn$/m);
});

test('perfbot optimize --agent managed without a setting names it', async () => {
  const r = await cli(['optimize', '--repo', cliRepo || tmp, '--agent', 'managed'],
    { env: { DATA_DIR: path.join(tmp, 'nokey-var'), ...managedEnv({ PERFBOT_MANAGED_ENVIRONMENT_KEY: '' }) } });
  assert.equal(r.code, 2);
  assert.match(r.stderr.trim(), /^perfbot optimize: PERFBOT_MANAGED_ENVIRONMENT_KEY: required by the managed agent backend/);
  noKeys(r.stderr, 'the error');
  const bad = await cli(['optimize', '--repo', tmp, '--agent', 'claude'], { env: { DATA_DIR: path.join(tmp, 'nokey-var') } });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--agent: expected command or managed, got "claude"/);
});

test('optimize.agent: managed in perfbot.yml picks the managed backend; its worker starts with the run', async () => {
  const yml = path.join(cliRepo, '.github', 'perfbot.yml');
  fs.writeFileSync(yml, fs.readFileSync(yml, 'utf8').replace('optimize:\n', 'optimize:\n  agent: managed\n'));
  git('commit', '-qam', 'managed');
  try {
    anthropic.scriptFor((obj) => obj.title && obj.title.includes(cliRepo) && obj.title.includes(git('rev-parse', 'HEAD').slice(0, 7)),
      [{ tool: 'glob', input: { pattern: 'src/*.c' } }, { idle: 'end_turn' }]);
    const r = await cli(['optimize', '--repo', cliRepo, '--json'], {
      env: { DATA_DIR: cliData, LOG_LEVEL: 'error', PERFBOT_AGENT_COMMAND: 'false', ...managedEnv() },
      timeoutMs: RUN_MS,
    });
    assert.equal(r.code, 1, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.equal(doc.status, 'no_improvement');
    assert.equal(doc.reason, 'the agent ended its turn without submitting a change');
    assert.equal(doc.managed.end, 'end_turn');
    const s = anthropic.session(doc.managed.session_id);
    assert.deepEqual(anthropic.toolUses(s.id).map((u) => u.name), ['glob']);
    answeredOnce(s);
  } finally {
    git('reset', '-q', '--hard', 'HEAD~1');
  }
});

test('without PERFBOT_MANAGED_AGENT_ID and no agent made by perfbot managed setup, the run fails saying so', async () => {
  const empty = await startFakeAnthropic({ apiKey: API_KEY, environmentKey: ENV_KEY, port: 0 });
  try {
    const r = await cli(['optimize', '--repo', cliRepo, '--agent', 'managed', '--json'], {
      env: { DATA_DIR: cliData, LOG_LEVEL: 'error', ...managedEnv({ ANTHROPIC_BASE_URL: empty.url,
        PERFBOT_MANAGED_ENVIRONMENT_ID: empty.environmentId }) },
      timeoutMs: RUN_MS,
    });
    assert.equal(r.code, 1, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.equal(doc.status, 'failed');
    assert.equal(doc.reason, 'agent: no agent made by perfbot managed setup is found for this API key: run perfbot '
      + 'managed setup (or set PERFBOT_MANAGED_AGENT_ID)');
    assert.ok(empty.requests.some((q) => q.method === 'GET' && q.path === '/v1/agents'), 'the agents were listed');
    assert.equal(empty.sessions().length, 0);
  } finally {
    await empty.close();
  }
});
