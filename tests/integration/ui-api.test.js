// Integration: the dashboard's API over HTTP, against the real `perfbot
// serve` and the fake GitHub's OAuth endpoints.  Users sign in the way a
// browser does (login -> GitHub's authorize page -> callback, cookies
// carried by hand); the history, a proposal and a local run are written
// into the store with the sqlite3 CLI; approving the proposal opens its
// pull request in the fake GitHub through perfbot's own pr.open job.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { startServer, sqlite, waitFor, tmpDir, request, SLOW } from './lib/perfbot.js';

const require = createRequire(import.meta.url);
const { startFakeGitHub } = require('../fake-github/server.js');

const APP_ID = 4242;
const REPO = 'octo-org/demo';
const OTHER = 'octo-org/secret';
const HOT = 'int hot(int n)\n{\n\tint s = 0;\n\tfor (int i = 0; i < n; i++)\n\t\ts += i;\n\treturn s;\n}\n';
const FAST = 'int hot(int n)\n{\n\treturn n * (n - 1) / 2;\n}\n';
const COMMITS = 200;
const PROPOSAL_RUN = 5000;
const LOCAL_RUN = 5001;
const OTHER_RUN = 5002;

let tmp, dataDir, fake, srv, bare, base;
const q = (s) => `'${String(s).replace(/'/g, "''")}'`;

function git(args, opts = {}) {
  return execFileSync('git', args, { env: { ...process.env, HOME: tmp, GIT_CONFIG_NOSYSTEM: '1', GIT_AUTHOR_NAME: 'Dev',
    GIT_AUTHOR_EMAIL: 'dev@example.com', GIT_COMMITTER_NAME: 'Dev', GIT_COMMITTER_EMAIL: 'dev@example.com' },
  stdio: ['pipe', 'pipe', 'pipe'], ...opts }).toString().trim();
}

// ---- a browser, by hand --------------------------------------------------------

function cookiesOf(res) {
  const set = res.headers['set-cookie'] || [];
  return (Array.isArray(set) ? set : [set]);
}

function cookieValue(res, name) {
  for (const c of cookiesOf(res)) {
    const m = new RegExp(`^${name}=([^;]*)`).exec(c);
    if (m) return m[1];
  }
  return null;
}

async function get(p, { cookie, headers = {} } = {}) {
  return request(srv.port, { method: 'GET', path: p, headers: { ...(cookie ? { Cookie: cookie } : {}), ...headers } });
}

async function post(p, { cookie, csrf, headers = {} } = {}) {
  const h = { ...(cookie ? { Cookie: cookie } : {}), ...(csrf ? { 'X-CSRF-Token': csrf } : {}), ...headers };
  return request(srv.port, { method: 'POST', path: p, headers: h, body: '' });
}

// Signs `login` in through the fake GitHub; returns {cookie, csrf, res}.
async function signIn(login) {
  fake.signInAs(login);
  const start = await get('/auth/login?next=/ui/repos/octo-org/demo');
  assert.equal(start.status, 302);
  const state = cookieValue(start, 'perfbot_oauth');
  assert.ok(state, 'a state cookie');
  const authorize = new URL(start.headers.location);
  assert.equal(authorize.origin + authorize.pathname, `${fake.url}/login/oauth/authorize`);
  assert.equal(authorize.searchParams.get('client_id'), 'Iv1.fakeclientid');
  const atGitHub = await fetch(authorize, { redirect: 'manual' });
  assert.equal(atGitHub.status, 302);
  const back = new URL(atGitHub.headers.get('location'));
  const cb = await get(back.pathname + back.search, { cookie: `perfbot_oauth=${state}` });
  assert.equal(cb.status, 302, cb.text);
  assert.equal(cb.headers.location, "/ui/repos/octo-org/demo", JSON.stringify(cb.headers));
  const session = cookieValue(cb, 'perfbot_session');
  assert.match(session, /^[0-9a-f]{64}$/);
  const cookie = `perfbot_session=${session}`;
  const me = await get('/api/v1/me', { cookie });
  assert.equal(me.status, 200);
  assert.equal(me.json.login, login);
  return { cookie, csrf: me.json.csrf_token, res: cb };
}

// ---- the store's contents ----------------------------------------------------------

async function seed() {
  const now = Date.now();
  const sql = ['BEGIN;'];
  for (let i = 1; i <= COMMITS; i++) {
    const sha = crypto.createHash('sha1').update(`c${i}`).digest('hex');
    const data = { commit: { author: `dev${i % 3}`, message: `commit number ${i}`, at_ms: now - (COMMITS - i) * 60000 } };
    sql.push(`INSERT INTO runs(id, kind, repository, installation_id, head_sha, branch, trigger, state, data, created_ms, updated_ms)
      VALUES(${i}, 'bench', ${q(REPO)}, 1, ${q(sha)}, 'main', 'push', 'done', ${q(JSON.stringify(data))}, ${now}, ${now});`);
    // parse: flat, then 10% slower at commit 150; render: missing at commit 7
    const parse = i >= 150 ? 1100000 : 1000000;
    sql.push(`INSERT INTO measurements(run_id, repository, commit_sha, benchmark, data, created_ms, ok, instructions, estimated_cycles)
      VALUES(${i}, ${q(REPO)}, ${q(sha)}, 'parse', '{"status":"ok"}', ${now}, 1, ${parse / 2}, ${parse});`);
    if (i !== 7)
      sql.push(`INSERT INTO measurements(run_id, repository, commit_sha, benchmark, data, created_ms, ok, instructions, estimated_cycles)
        VALUES(${i}, ${q(REPO)}, ${q(sha)}, 'render', '{"status":"ok"}', ${now}, 1, 400, ${2000 + i});`);
  }
  // another branch: not part of main's history
  sql.push(`INSERT INTO runs(id, kind, repository, installation_id, head_sha, branch, trigger, state, data, created_ms, updated_ms)
    VALUES(${COMMITS + 1}, 'bench', ${q(REPO)}, 1, ${q('f'.repeat(40))}, 'feature', 'push', 'done', '{}', ${now}, ${now});`);
  // a verified proposal waiting for approval, with its tool calls and a flame tree
  const flame = { name: 'all', value: 1000, children: [{ name: 'main', file: 'main.c', value: 1000,
    children: [{ name: 'hot', file: 'src/hot.c', value: 900 }] }] };
  const data = { clone_url: fake.gitUrl(REPO), thread_number: 0,
    budgets: { tool_calls: 2, calls: [{ tool: 'run_benchmarks', started_ms: 10, duration_ms: 900, error: null },
      { tool: 'exec', started_ms: 950, duration_ms: 20, error: 'command exited with status 2' }] },
    timings: { baseline_ms: 1200, agent_ms: 5000, verify_ms: 2400, total_ms: 8700 } };
  sql.push(`INSERT INTO runs(id, kind, repository, installation_id, head_sha, base_sha, branch, trigger, state, data, created_ms, updated_ms)
    VALUES(${PROPOSAL_RUN}, 'agent', ${q(REPO)}, 1, ${q(base)}, ${q(base)}, 'main', 'comment', 'proposal', ${q(JSON.stringify(data))}, ${now}, ${now});`);
  const proposal = { diff: fs.readFileSync(path.join(tmp, 'good.diff'), 'utf8'), summary: 'closed form for hot()',
    verification_log: 'build ok\ntests ok\n', benchmarks: [{ name: 'parse', base: 1000000, head: 770000, change_pct: -23 }] };
  sql.push(`INSERT INTO proposals(run_id, data, created_ms, updated_ms) VALUES(${PROPOSAL_RUN}, ${q(JSON.stringify(proposal))}, ${now}, ${now});`);
  // an agent run measures the base commit, then the verified candidate (no commit)
  for (const side of ['base', 'head'])
    sql.push(`INSERT INTO measurements(run_id, repository, commit_sha, benchmark, data, created_ms, ok, estimated_cycles)
      VALUES(${PROPOSAL_RUN}, ${q(REPO)}, ${side === 'base' ? q(base) : 'NULL'}, 'parse', ${q(JSON.stringify({ status: 'ok',
        verified: side === 'head', flame: { ...flame, value: side === 'base' ? 1000 : 770 },
        top_functions: [{ name: 'hot', file: 'src/hot.c', self: { estimated_cycles: 900 }, inclusive: { estimated_cycles: 900 } }] }))},
        ${now}, 1, 1000);`);
  // a run of `perfbot bench` on this machine, and one of a repository nobody here may read
  sql.push(`INSERT INTO runs(id, kind, repository, installation_id, head_sha, trigger, state, data, created_ms, updated_ms)
    VALUES(${LOCAL_RUN}, 'bench', '/home/dev/project', 0, ${q('d'.repeat(40))}, 'cli', 'done', '{}', ${now}, ${now});`);
  sql.push(`INSERT INTO runs(id, kind, repository, installation_id, head_sha, trigger, state, data, created_ms, updated_ms)
    VALUES(${OTHER_RUN}, 'bench', ${q(OTHER)}, 1, ${q('a'.repeat(40))}, 'push', 'done', '{}', ${now}, ${now});`);
  sql.push('COMMIT;');
  // too long for an argument: on standard input
  execFileSync('sqlite3', ['-cmd', '.timeout 5000', path.join(dataDir, 'perfbot.db')], { input: sql.join('\n') });
}

before(async () => {
  tmp = tmpDir('perfbot-ui-it-');
  dataDir = path.join(tmp, 'var');
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyPath = path.join(tmp, 'app.pem');
  fs.writeFileSync(keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  fake = await startFakeGitHub({ appId: APP_ID, publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }),
    gitRoot: path.join(tmp, 'git') });
  bare = fake.createGitRepo(REPO, { files: { 'src/hot.c': HOT, 'Makefile': 'test:\n\ttrue\n' } });
  fake.addRepo(OTHER, { installationId: 1 });
  base = git(['--git-dir', bare, 'rev-parse', 'main']);
  const work = path.join(tmp, 'work');
  git(['clone', '-q', bare, work]);
  fs.writeFileSync(path.join(work, 'src/hot.c'), FAST);
  git(['-C', work, 'add', '-A']);
  fs.writeFileSync(path.join(tmp, 'good.diff'), git(['-C', work, 'diff', '--cached']) + '\n');
  fake.addUser('alice', { repositories: [REPO] });
  fake.addUser('bob', { repositories: [] });
  fake.setPermission(REPO, 'alice', 'write');
  fs.mkdirSync(dataDir, { recursive: true });
  srv = await startServer({
    dataDir,
    env: { APP_ID, PRIVATE_KEY_PATH: keyPath, GITHUB_API_URL: fake.url, GITHUB_WEB_URL: fake.url,
      GITHUB_CLIENT_ID: 'Iv1.fakeclientid', GITHUB_CLIENT_SECRET: 'fake-client-secret', REDELIVERY_INTERVAL_SECONDS: 0 },
  });
  await seed();
});

after(async () => {
  if (srv) {
    const r = await srv.stop();
    assert.equal(srv.sanitizerReport(), null, r.stderr);
    assert.ok(!r.stderr.includes('fake-client-secret'), 'the client secret is never logged');
    assert.ok(!/ghu_[A-Za-z0-9_-]{20,}/.test(r.stderr), 'no user token in the logs');
  }
  if (fake) await fake.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

// ---- tests --------------------------------------------------------------------------

test('sign-in through GitHub sets an HttpOnly, SameSite=Lax, expiring session cookie and the CSP', async () => {
  const { res } = await signIn('alice');
  const c = cookiesOf(res).find((x) => x.startsWith('perfbot_session='));
  assert.match(c, /; HttpOnly/);
  assert.match(c, /; SameSite=Lax/);
  assert.match(c, /; Max-Age=28800/);
  assert.doesNotMatch(c, /Secure/, 'PUBLIC_URL is not https here');
  assert.match(res.headers['content-security-policy'], /script-src 'self'/);
  assert.equal(res.headers['x-content-type-options'], 'nosniff');
  // a code is good once, as on GitHub
  const used = fake.requests.filter((r) => r.path === '/login/oauth/access_token');
  assert.ok(used.length >= 1);
});

test('a callback whose state is not the one this browser started with is refused', async () => {
  fake.signInAs('alice');
  const start = await get('/auth/login');
  const atGitHub = await fetch(start.headers.location, { redirect: 'manual' });
  const back = new URL(atGitHub.headers.get('location'));
  const r = await get(back.pathname + back.search, { cookie: `perfbot_oauth=${'0'.repeat(64)}|/ui/` });
  assert.equal(r.status, 400);
  assert.equal(cookieValue(r, 'perfbot_session'), null);
});

test('alice lists her repository, reads 200 commits of history with marks, the benchmark table, runs', async () => {
  const { cookie } = await signIn('alice');
  const repos = await get('/api/v1/repositories', { cookie });
  assert.equal(repos.status, 200);
  assert.deepEqual(repos.json.repositories.map((r) => r.full_name), [REPO]);
  assert.equal(repos.json.repositories[0].last_measurement.run_id, COMMITS);
  assert.equal(repos.json.repositories[0].open_proposals, 1);

  const t0 = Date.now();
  const s = await get(`/api/v1/repositories/${REPO}/series?branch=main&metric=cycles&limit=200`, { cookie });
  assert.equal(s.status, 200, s.text);
  assert.ok(Date.now() - t0 < 2000 * SLOW);
  assert.equal(s.json.commits.length, COMMITS);
  assert.equal(s.json.commits[0].message, 'commit number 1');
  assert.equal(s.json.commits[COMMITS - 1].run_id, COMMITS);
  const parse = s.json.series.find((x) => x.benchmark === 'parse');
  const render = s.json.series.find((x) => x.benchmark === 'render');
  assert.equal(parse.values.length, COMMITS);
  assert.equal(render.values[6], null, 'no measurement of render at commit 7');
  assert.deepEqual(s.json.marks, [{ benchmark: 'parse', index: 149, kind: 'regression', change_pct: 10 }]);

  const few = await get(`/api/v1/repositories/${REPO}/series?limit=10`, { cookie });
  assert.equal(few.json.commits.length, 10);
  assert.equal(few.json.commits[9].run_id, COMMITS, 'the newest commits, oldest first');
  assert.equal((await get(`/api/v1/repositories/${REPO}/series?limit=5001`, { cookie })).status, 400);

  const b = await get(`/api/v1/repositories/${REPO}/benchmarks`, { cookie });
  assert.equal(b.status, 200);
  const bp = b.json.benchmarks.find((x) => x.name === 'parse');
  assert.equal(bp.latest, 1100000);
  assert.equal(bp.change_10_pct, 0);
  assert.equal(bp.change_100_pct, 10);

  const runs = await get(`/api/v1/repositories/${REPO}/runs?kind=agent`, { cookie });
  assert.deepEqual(runs.json.runs.map((r) => r.id), [PROPOSAL_RUN]);
});

test('a run: comparison, diff, verification log, tool calls, measurements, profile and flame', async () => {
  const { cookie } = await signIn('alice');
  const r = await get(`/api/v1/runs/${PROPOSAL_RUN}`, { cookie });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.state, 'proposal');
  assert.match(r.json.diff, /return n \* \(n - 1\) \/ 2;/);
  assert.equal(r.json.verification_log, 'build ok\ntests ok\n');
  assert.deepEqual(r.json.comparison, [{ name: 'parse', base: 1000000, head: 770000, change_pct: -23 }]);
  assert.deepEqual(r.json.tool_calls.map((c) => [c.tool, c.duration_ms, c.error]),
    [['run_benchmarks', 900, null], ['exec', 20, 'command exited with status 2']]);
  assert.equal(r.json.timings.total_ms, 8700);
  assert.equal(r.json.can_approve, true);
  assert.equal(r.json.pull, null);
  const base = r.json.measurements.find((m) => m.side === 'base');
  const p = await get(`/api/v1/measurements/${base.id}/profile`, { cookie });
  assert.equal(p.status, 200);
  assert.deepEqual(p.json.functions, [{ name: 'hot', file: 'src/hot.c', exclusive: 900, inclusive: 900 }]);
  assert.equal(p.json.flame.children[0].children[0].name, 'hot');
  const f = await get(`/api/v1/runs/${PROPOSAL_RUN}/flame?benchmark=parse`, { cookie });
  assert.equal(f.json.base.value, 1000);
  assert.equal(f.json.head.value, 770);
});

test('bob, who cannot read the repository, gets the same 404 as for what does not exist', async () => {
  const { cookie, csrf } = await signIn('bob');
  const alice = await signIn('alice');
  const mid = (await get(`/api/v1/runs/${PROPOSAL_RUN}`, { cookie: alice.cookie })).json.measurements[0].id;
  const urls = [`/api/v1/repositories/${REPO}/series`, `/api/v1/repositories/${REPO}/benchmarks`,
    `/api/v1/repositories/${REPO}/runs`, `/api/v1/runs/${PROPOSAL_RUN}`, `/api/v1/runs/${PROPOSAL_RUN}/flame?benchmark=parse`,
    `/api/v1/measurements/${mid}/profile`, `/api/v1/runs/${OTHER_RUN}`];
  const missing = ['/api/v1/repositories/octo-org/nothing/series', '/api/v1/runs/999999', '/api/v1/measurements/999999/profile'];
  for (const u of [...urls, ...missing]) {
    const r = await get(u, { cookie, headers: { Host: 'perfbot.example.com' } });
    assert.equal(r.status, 404, u);
    assert.equal(r.text, '{"error":"not found"}', u);
  }
  assert.deepEqual((await get('/api/v1/repositories', { cookie })).json.repositories, []);
  const a = await post(`/api/v1/runs/${PROPOSAL_RUN}/approve`, { cookie, csrf });
  assert.equal(a.status, 404);
  assert.equal(a.text, '{"error":"not found"}');
  // alice cannot see the other repository either
  assert.equal((await get(`/api/v1/runs/${OTHER_RUN}`, { cookie: alice.cookie })).status, 404);
});

test('a POST without the CSRF token is refused with 403 and changes nothing', async () => {
  const { cookie } = await signIn('alice');
  for (const csrf of [undefined, 'f'.repeat(64)]) {
    const r = await post(`/api/v1/runs/${PROPOSAL_RUN}/approve`, { cookie, csrf });
    assert.equal(r.status, 403);
  }
  const [row] = await sqlite(dataDir, `SELECT count(*) AS n FROM approvals WHERE run_id=${PROPOSAL_RUN}`);
  assert.equal(row.n, 0);
  assert.equal((await post('/auth/logout', { cookie })).status, 403, 'sign-out needs the token too');
});

test('approving in the dashboard opens the pull request in GitHub, as /perfbot apply does', async () => {
  const { cookie, csrf } = await signIn('alice');
  const r = await post(`/api/v1/runs/${PROPOSAL_RUN}/approve`, { cookie, csrf });
  assert.equal(r.status, 202, r.text);
  assert.equal(r.json.state, 'approved');
  const pull = await waitFor(() => fake.state.pulls.find((p) => p.headRef === `perfbot/opt-${PROPOSAL_RUN}`),
    { timeoutMs: 30000 * SLOW, what: 'the pull request' });
  assert.equal(pull.base, 'main');
  assert.ok(fake.requests.some((x) => x.path === `/repos/${REPO}/collaborators/alice/permission` && x.auth === 'installation'),
    'write access asked of GitHub with the installation token');
  const [audit] = await sqlite(dataDir, `SELECT actor, action, detail FROM audit WHERE action='approve' AND subject='run ${PROPOSAL_RUN}'`);
  assert.deepEqual(audit, { actor: 'alice', action: 'approve', detail: 'dashboard' });
  const again = await post(`/api/v1/runs/${PROPOSAL_RUN}/approve`, { cookie, csrf });
  assert.equal(again.status, 409);
  assert.match(again.json.error, /already approved by @alice/);
  const detail = await waitFor(async () => {
    const d = await get(`/api/v1/runs/${PROPOSAL_RUN}`, { cookie });
    return d.json.pull ? d : null;
  }, { timeoutMs: 10000 * SLOW, what: 'the run to name its pull request' });
  assert.equal(detail.json.pull.number, pull.number);
});

test('a run made on this machine is shown to a browser on it without sign-in, to nobody else', async () => {
  const local = await get(`/api/v1/runs/${LOCAL_RUN}`);
  assert.equal(local.status, 200, local.text);
  assert.equal(local.json.repository, '/home/dev/project');
  const list = await get('/api/v1/runs');
  assert.deepEqual(list.json.runs.map((r) => r.id), [LOCAL_RUN]);
  const proxied = await get(`/api/v1/runs/${LOCAL_RUN}`, { headers: { Host: 'perfbot.example.com' } });
  assert.equal(proxied.status, 401);
  assert.equal(proxied.json.sign_in, '/auth/login');
  // and a GitHub repository's run is not shown to a local browser that has not signed in
  assert.equal((await get(`/api/v1/runs/${PROPOSAL_RUN}`)).status, 401);
});

test('sign-out ends the session', async () => {
  const { cookie, csrf } = await signIn('alice');
  const r = await post('/auth/logout', { cookie, csrf });
  assert.equal(r.status, 302);
  assert.match(cookiesOf(r).find((c) => c.startsWith('perfbot_session=')), /Max-Age=0/);
  assert.equal((await get('/api/v1/repositories', { cookie, headers: { Host: 'perfbot.example.com' } })).status, 401);
});

test('the pages are served with the CSP; unknown page routes get the index page', async () => {
  const r = await get('/ui/repos/octo-org/demo');
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'], /text\/html/);
  assert.equal(r.headers['content-security-policy'].includes("default-src 'self'"), true);
  assert.equal((await get('/ui/no-such-file.js')).status, 404);
});
