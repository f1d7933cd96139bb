// Web and worker roles in separate processes on one PostgreSQL store: a
// `--role web` replica takes the webhooks, a `--role worker` replica runs
// the jobs.  End to end against the fake GitHub: a push measured by a bench
// run, and `/perfbot optimize` run by the command backend (the scripted MCP
// agent) up to a verified proposal; the agent reaches the MCP endpoint of
// the worker running its run, which the run records.  Then a worker killed
// in the middle of an agent run: after the lease another worker ends that
// run failed with the reason instead of running the agent again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { ROOT, SCRIPTED_AGENT, SLOW, deliver, request, startServer, tmpDir, waitFor, dataRepoFiles, startFakeGitHubApp } from './lib/perfbot.js';
import { startPostgres } from './lib/pg.js';

const APP_ID = 4545;
const SECRET = 'roles-secret';
const REPO = 'octo-org/opt';
const ZERO = '0'.repeat(40);
const RUN_MS = 120000 * SLOW;

let tmp, shared, modeFile, fake, pg, web, env, baseSha;
const workers = [];
let nextComment = 5000;

const optrepoFiles = (extra = {}) => dataRepoFiles('optrepo', extra);

function repository() {
  const [owner, name] = REPO.split('/');
  return { id: 77, name, full_name: REPO, owner: { login: owner, type: 'Organization' }, private: true,
    default_branch: 'main', clone_url: fake.gitUrl(REPO) };
}

async function send(event, body) {
  const r = await deliver(web.port, { event, body, secret: SECRET });
  assert.equal(r.status, 202, r.text);
  return r.delivery;
}

async function comment(text, issue) {
  const id = nextComment++;
  await send('issue_comment', {
    action: 'created',
    issue: { number: issue, title: 'Make it faster', state: 'open', user: { login: 'mona', type: 'User' } },
    comment: { id, body: text, user: { login: 'mona', type: 'User' } },
    repository: repository(), installation: { id: 1 }, sender: { login: 'mona', type: 'User' },
  });
}

async function runRow(id) {
  const [r] = await pg.query(`SELECT id, kind, state, reason, data FROM runs WHERE id=${id}`);
  return r;
}

async function startOptimize(mode, issue) {
  fs.writeFileSync(modeFile, mode);
  const before = fake.state.comments.filter((c) => c.issue === issue).length;
  await comment('/perfbot optimize', issue);
  await fake.waitFor(() => fake.state.comments.filter((c) => c.issue === issue).length > before, 30000 * SLOW);
  const reply = fake.state.comments.filter((c) => c.issue === issue)[before].body;
  const m = /Started perfbot run (\d+)/.exec(reply);
  assert.ok(m, reply);
  return Number(m[1]);
}

async function startWorker() {
  const w = await startServer({ secret: SECRET, env, args: ['--role', 'worker'] });
  workers.push(w);
  return w;
}

before(async () => {
  tmp = tmpDir('perfbot-roles-');
  shared = fs.mkdtempSync('/var/tmp/perfbot-roles-');
  fs.chmodSync(shared, 0o755);
  modeFile = path.join(shared, 'mode');
  fs.writeFileSync(modeFile, 'good');
  const started = await startFakeGitHubApp(tmp, APP_ID);
  fake = started.fake;
  const keyPath = started.keyPath;
  const bare = fake.createGitRepo(REPO, { files: optrepoFiles(), branch: 'main' });
  baseSha = execFileSync('git', ['-C', bare, 'rev-parse', 'main']).toString().trim();
  fake.setPermission(REPO, 'mona', 'write');
  pg = startPostgres();
  env = { DATABASE_URL: pg.url, APP_ID, PRIVATE_KEY_PATH: keyPath, GITHUB_API_URL: fake.url, WORKERS: 2, BENCH_WORKERS: 1,
    JOB_LEASE_SECONDS: 3, REDELIVERY_INTERVAL_SECONDS: 0,
    PERFBOT_AGENT_COMMAND: `export SCRIPTED_AGENT_MODE=$(cat '${modeFile}'); exec node '${SCRIPTED_AGENT}'` };
  web = await startServer({ secret: SECRET, env, args: ['--role', 'web'] });
  await startWorker();
});

after(async () => {
  const stops = [];
  for (const p of [web, ...workers]) if (p) stops.push({ p, r: await p.stop() });
  if (fake) await fake.close();
  if (pg) pg.destroy();
  if (tmp && !process.env.KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
  if (shared) fs.rmSync(shared, { recursive: true, force: true });
  for (const { p, r } of stops) {
    assert.equal(p.sanitizerReport(), null, 'sanitizer report');
    assert.ok(r.code === 0 || r.signal === 'SIGTERM' || r.signal === 'SIGKILL', `serve exit ${r.code} ${r.signal}`);
  }
});

test('a push is measured by a bench run on the worker replica, the web replica took the webhook', async () => {
  const p = JSON.parse(fs.readFileSync(path.join(ROOT, 'tests', 'data', 'bench-github', 'push.json'), 'utf8'));
  Object.assign(p, { ref: 'refs/heads/main', before: ZERO, after: baseSha, created: true, repository: repository() });
  await send('push', p);
  await fake.waitFor(() => fake.state.checkRuns.some((c) => c.head_sha === baseSha && c.name === 'perfbot'
    && c.status === 'completed'), RUN_MS);
  const cr = fake.state.checkRuns.find((c) => c.head_sha === baseSha && c.name === 'perfbot');
  assert.equal(cr.conclusion, 'success', JSON.stringify(cr.output));
  const [run] = await pg.query(`SELECT id, state FROM runs WHERE kind='bench' AND head_sha='${baseSha}'`);
  assert.equal(run.state, 'done');
  const ms = await pg.query(`SELECT benchmark FROM measurements WHERE run_id=${run.id}`);
  assert.deepEqual(ms.map((m) => m.benchmark), ['primes']);
  assert.ok(!web.logs().some((l) => l.msg === 'job'), 'the web replica runs no job');
  assert.ok(workers[0].logs().some((l) => l.msg === 'job' && l.kind === 'bench.run'), 'the worker ran the bench run');
});

test('/perfbot optimize: the agent run goes through the MCP endpoint of the worker running it, up to a proposal', async () => {
  const id = await startOptimize('good', 1);
  const r = await waitFor(async () => {
    const row = await runRow(id);
    return row && ['proposal', 'no_improvement', 'failed', 'cancelled'].includes(row.state) ? row : null;
  }, { timeoutMs: RUN_MS, everyMs: 250, what: 'the agent run to end' });
  assert.equal(r.state, 'proposal', r.reason);
  assert.match(r.data.replica.owner, new RegExp(`:${workers[0].proc.pid}:`));
  assert.equal(r.data.replica.mcp_url, `http://127.0.0.1:${workers[0].port}/mcp`);
  const [prop] = await pg.query(`SELECT data FROM proposals WHERE run_id=${id}`);
  assert.match(prop.data.diff, /d \* d <= n/);
  // the dashboard is the web replica's; a worker's listener has none
  assert.notEqual((await request(web.port, { method: 'GET', path: '/ui' })).status, 404);
  assert.equal((await request(workers[0].port, { method: 'GET', path: '/ui' })).status, 404);
  assert.equal((await request(workers[0].port, { method: 'GET', path: '/api/v1/repos' })).status, 404);
  // the web replica has no MCP endpoint: agents talk to their worker
  assert.equal((await request(web.port, { method: 'POST', path: '/mcp', body: '{}',
    headers: { 'Content-Type': 'application/json' } })).status, 404);
});

test('a worker killed in the middle of an agent run: another worker ends the run failed, saying why', async () => {
  const first = workers[0];
  const id = await startOptimize('slow', 2);
  await waitFor(async () => {
    const row = await runRow(id);
    return row && row.state === 'running' && row.data.replica ? row : null;
  }, { timeoutMs: RUN_MS, everyMs: 200, what: 'the agent run to be running on the worker' });
  await first.kill();
  await startWorker();
  const r = await waitFor(async () => {
    const row = await runRow(id);
    return row && row.state !== 'running' && row.state !== 'queued' ? row : null;
  }, { timeoutMs: RUN_MS, everyMs: 200, what: 'the interrupted run to end' });
  assert.equal(r.state, 'failed');
  assert.match(r.reason, /interrupted: the replica running it \(.*:\d+:\d+\) stopped before it ended/);
  const [job] = await pg.query(`SELECT state, attempts, completions FROM jobs WHERE kind='agent.run' AND payload LIKE '%"run_id":${id}%'`);
  assert.equal(job.state, 'done');
  assert.equal(job.completions, 1);
  assert.ok(job.attempts >= 2);
});
