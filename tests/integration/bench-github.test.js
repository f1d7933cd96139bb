// Integration: bench runs reported to GitHub.  The real `perfbot serve` (App
// credentials, GITHUB_API_URL at the fake GitHub) receives push and
// pull_request events sent with `perfbot receive`, fetches the repository
// over real smart HTTP (`git http-backend` behind the fake, installation
// token required), builds and measures tests/data/benchrepo in the real bwrap
// sandbox under callgrind, and reports the "perfbot" check run the fake
// records.  The numbers are checked against `perfbot bench --json` on the
// same commit (itself checked against plain callgrind by bench.test.js).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { ROOT, SLOW, cli, sqlite, startServer, tmpDir, waitFor } from './lib/perfbot.js';

const require = createRequire(import.meta.url);
const { startFakeGitHub } = require('../fake-github/server.js');

const APP_ID = 4242;
const SECRET = 'bench-github-secret';
const REPO = 'octo-org/bench';
const ZERO = '0'.repeat(40);
const DATA = path.join(ROOT, 'tests', 'data', 'bench-github');
const RUN_MS = 60000 * SLOW;

let tmp, work, bare, fake, srv, dataDir, keyPath;
const sha = {};

function git(...args) {
  return execFileSync('git', ['-C', work, '-c', 'user.name=Mona', '-c', 'user.email=mona@example.com', ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] }).toString().trim();
}

function edit(rel, from, to) {
  const p = path.join(work, rel);
  const src = fs.readFileSync(p, 'utf8');
  assert.ok(src.includes(from), `${rel} contains ${from}`);
  fs.writeFileSync(p, src.replace(from, to));
}

function commit(msg) {
  git('add', '-A');
  git('commit', '-qm', msg);
  return git('rev-parse', 'HEAD');
}

// Pushes a local branch to the fake's bare repository (on disk: the test
// plays the developer; perfbot fetches over HTTP).
function pushBranch(branch) {
  git('push', '-qf', bare, `${branch}:refs/heads/${branch}`);
}

// Sends a signed delivery to `server` (default: the suite's perfbot).
async function receive(event, payload, server = srv) {
  const file = path.join(tmp, `${event}-${crypto.randomUUID()}.json`);
  fs.writeFileSync(file, JSON.stringify(payload));
  const r = await cli(['receive', '-e', event, '-p', file, '--url', server.url, '--secret', SECRET]);
  assert.equal(r.code, 0, `perfbot receive ${event}: ${r.stderr}`);
}

function pushPayload(ref, before, after) {
  const p = JSON.parse(fs.readFileSync(path.join(DATA, 'push.json'), 'utf8'));
  Object.assign(p, { ref, before, after, created: before === ZERO });
  p.repository.clone_url = fake.gitUrl(REPO);
  return p;
}

function checkRunsFor(head) {
  return fake.state.checkRuns.filter((r) => r.head_sha === head && r.name === 'perfbot');
}

async function completedCheck(head) {
  await fake.waitFor(() => checkRunsFor(head).some((r) => r.status === 'completed'), RUN_MS);
  const runs = checkRunsFor(head);
  assert.equal(runs.length, 1, `one check run on ${head.slice(0, 7)}`);
  return runs[0];
}

async function pushAndWait(branch, before, after) {
  await receive('push', pushPayload(`refs/heads/${branch}`, before, after));
  return completedCheck(after);
}

// Rows of the check run's exact-count table: {name: {label, sha, status, instructions, ...}}.
function exactRows(text, label) {
  const out = {};
  const re = /^\| `([^`]+)` \| (head|base) `([0-9a-f]{7})` \| (\w+) \| (\d+|—) \| (\d+|—) \| (\d+|—) \| (\d+|—) \|$/gm;
  for (const m of text.matchAll(re)) {
    if (m[2] !== label) continue;
    out[m[1]] = { sha: m[3], status: m[4], instructions: Number(m[5]), estimated_cycles: Number(m[6]),
      l1_misses: Number(m[7]), ll_misses: Number(m[8]) };
  }
  return out;
}

// The summary's comparison table: {name: {icon, base, head, change}}.
function summaryRows(summary) {
  const out = {};
  for (const m of summary.matchAll(/^\| (✅|❌|⚡|🆕) \| `([^`]+)` \| ([^|]+) \| ([^|]+) \| ([^|]+) \|$/gm))
    out[m[2]] = { icon: m[1], base: m[3].trim(), head: m[4].trim(), change: m[5].trim() };
  return out;
}

async function benchJson(rev) {
  const r = await cli(['bench', '--repo', work, '--rev', rev, '--json'],
    { env: { DATA_DIR: path.join(tmp, 'cli-var'), LOG_LEVEL: 'error' }, timeoutMs: RUN_MS });
  assert.equal(r.code, 0, `perfbot bench: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

async function runRow(head) {
  const rows = await sqlite(dataDir, `SELECT id, state, reason, base_sha, branch, trigger, data FROM runs WHERE head_sha='${head}' ORDER BY id`);
  return rows.map((r) => ({ ...r, data: JSON.parse(r.data || '{}') }));
}

// The runs of head once the last has ended: the check run is completed on
// GitHub just before the run's end state is recorded.
async function endedRuns(head) {
  return waitFor(async () => {
    const rows = await runRow(head);
    return rows.length && !['queued', 'running', 'cancelling'].includes(rows.at(-1).state) ? rows : null;
  }, { timeoutMs: RUN_MS, what: `the run of ${head.slice(0, 7)} to end` });
}

before(async () => {
  tmp = tmpDir('perfbot-bench-gh-');
  work = path.join(tmp, 'work');
  dataDir = path.join(tmp, 'var');
  fs.mkdirSync(dataDir);
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  keyPath = path.join(tmp, 'app.pem');
  fs.writeFileSync(keyPath, privateKey.export({ type: 'pkcs1', format: 'pem' }), { mode: 0o600 });
  fake = await startFakeGitHub({
    appId: APP_ID,
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }),
    installations: [{ id: 1, account: 'octo-org', repositories: [] }],
  });
  bare = fake.createGitRepo(REPO, { files: { 'README.md': '# bench\n' }, branch: 'main' });

  fs.cpSync(path.join(ROOT, 'tests', 'data', 'benchrepo'), work, { recursive: true });
  execFileSync('git', ['init', '-q', '-b', 'main', work]);
  sha.base = commit('benchmarks');

  srv = await startServer({
    dataDir, secret: SECRET,
    env: { APP_ID, PRIVATE_KEY_PATH: keyPath, GITHUB_API_URL: fake.url, WORKERS: 2, REDELIVERY_INTERVAL_SECONDS: 0,
      PUBLIC_URL: 'https://perfbot.example.com' },
  });
});

after(async () => {
  try {
    if (srv) {
      const r = await srv.stop();
      const report = srv.sanitizerReport();
      assert.ok(!report, `sanitizer report in perfbot serve:\n${report && report.slice(report.search(/==\d+==ERROR|runtime error/))}`);
      assert.ok(r.code === 0 || r.signal === 'SIGTERM', `serve exit ${r.code} ${r.signal}`);
    }
  } finally {
    if (fake) await fake.close();
    if (tmp && !process.env.KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('a push of a new branch: the check run has the numbers of perfbot bench on the same commit', async (t) => {
  pushBranch('main');
  const started = Date.now();
  const [cr, cliDoc] = await Promise.all([pushAndWait('main', ZERO, sha.base), benchJson(sha.base)]);
  t.diagnostic(`push measured and reported in ${Date.now() - started} ms`);
  assert.equal(cr.conclusion, 'success', JSON.stringify(cr.output));
  assert.match(cr.output.title, /no base/i);
  // perfbot serves no page about a run (its figures are the customer's): no link to one
  assert.ok(cr.details_url == null, `unexpected details_url ${cr.details_url}`);
  // created in progress at once, completed by one update
  const created = fake.requests.find((r) => r.method === 'POST' && /\/check-runs$/.test(r.path) && r.body?.head_sha === sha.base);
  assert.equal(created.body.status, 'in_progress');
  assert.match(created.body.external_id, /^\d+$/);
  assert.equal(cr.updates.length, 1);

  const rows = exactRows(cr.output.text, 'head');
  assert.deepEqual(Object.keys(rows), ['sort', 'hashmap', 'parse']);
  for (const b of cliDoc.benchmarks) {
    const r = rows[b.name];
    assert.equal(r.status, 'ok');
    assert.equal(r.sha, sha.base.slice(0, 7));
    for (const k of ['instructions', 'estimated_cycles', 'l1_misses', 'll_misses'])
      assert.equal(r[k], b[k], `${b.name} ${k}: check run ${r[k]}, perfbot bench ${b[k]}`);
    // the summary's table rounds the same numbers
    assert.match(cr.output.summary, new RegExp(`\\| \`${b.name}\` \\| ok \\| ${(b.instructions / 1e6).toFixed(2)} M \\|`));
  }
  // one measurement per benchmark stored for the run
  const [run] = await endedRuns(sha.base);
  assert.equal(run.state, 'done');
  assert.equal(String(run.id), cr.external_id);
  assert.equal(run.data.check_run_id, cr.id);
  const ms = await sqlite(dataDir, `SELECT benchmark FROM measurements WHERE run_id=${run.id} ORDER BY id`);
  assert.deepEqual(ms.map((m) => m.benchmark), ['sort', 'hashmap', 'parse']);
});

test('a regressing push fails with ❌ and the functions that changed most', async (t) => {
  // hashmap formats every key twice
  const key = '\t\tsnprintf(key, sizeof(key), "key-%ld", i * 7919);\n\t\tsum += find';
  edit('bench/hashmap.c', key, '\t\tsnprintf(key, sizeof(key), "key-%ld", i * 7919 + 1);\n' + key);
  sha.slow = commit('hashmap: slower');
  pushBranch('main');
  const cr = await pushAndWait('main', sha.base, sha.slow);
  assert.equal(cr.conclusion, 'failure');
  assert.equal(cr.output.title, '1 regression');
  assert.match(cr.output.summary, new RegExp(`Comparing \`main\` \\(${sha.slow.slice(0, 7)}\\) with \`main\` \\(${sha.base.slice(0, 7)}\\)`));
  const rows = summaryRows(cr.output.summary);
  assert.equal(rows.hashmap.icon, '❌');
  assert.match(rows.hashmap.change, /^\*\*\+\d+\.\d\d%\*\*$/);
  assert.deepEqual([rows.sort.icon, rows.sort.change], ['✅', '0.00%']);
  assert.deepEqual([rows.parse.icon, rows.parse.change], ['✅', '0.00%']);
  // the top changed functions of the regressed benchmark
  const section = cr.output.summary.split('### `hashmap`: functions that changed most')[1];
  assert.ok(section, cr.output.summary);
  const fns = [...section.matchAll(/^\| `([^`]+)` \| ([^|]*) \| [^|]+ \| [^|]+ \| ([^|]+) \|$/gm)];
  assert.ok(fns.length >= 1 && fns.length <= 5, section);
  assert.ok(fns.some((f) => /printf|snprintf|vfprintf|__printf_buffer|_itoa|hash|main/.test(f[1])), section);
  // base numbers were reused from the first run, not measured again
  const [run] = await endedRuns(sha.slow);
  const ms = await sqlite(dataDir, `SELECT commit_sha FROM measurements WHERE run_id=${run.id}`);
  assert.ok(ms.every((m) => m.commit_sha === sha.slow), 'only the head was measured');
  assert.equal(run.data.conclusion, 'failure');
  assert.equal(run.data.regressions, 1);
  assert.equal(run.data.comparison.find((c) => c.name === 'hashmap').verdict, 'regressed');
  // base rows in the text equal the first run's head rows
  const firstText = checkRunsFor(sha.base)[0].output.text;
  assert.deepEqual(exactRows(cr.output.text, 'base'), exactRows(firstText, 'head'));
});

test('an improving push succeeds with ⚡', async (t) => {
  edit('bench/parse.c', 'round < 10', 'round < 8');
  sha.fast = commit('parse: fewer rounds');
  pushBranch('main');
  const cr = await pushAndWait('main', sha.slow, sha.fast);
  assert.equal(cr.conclusion, 'success', cr.output.summary);
  assert.equal(cr.output.title, '1 improvement');
  const rows = summaryRows(cr.output.summary);
  assert.equal(rows.parse.icon, '⚡');
  // the change is the one of the exact estimated cycles (metric: cycles)
  const head = exactRows(cr.output.text, 'head').parse, base = exactRows(cr.output.text, 'base').parse;
  const expected = ((head.estimated_cycles - base.estimated_cycles) * 100) / base.estimated_cycles;
  assert.ok(expected < -3, `parse changed by ${expected}%`);
  assert.equal(rows.parse.change, `**${expected.toFixed(2)}%**`);
  assert.equal(rows.hashmap.change, '0.00%');
  assert.match(cr.output.summary, /⚡ 1 improved benchmark/);
  if (process.env.DUMP_CHECK_RUNS) fs.writeFileSync(process.env.DUMP_CHECK_RUNS, JSON.stringify(fake.state.checkRuns, null, 2));
});

test('a broken configuration fails the check run, naming the line', async (t) => {
  edit('.github/perfbot.yml', 'threshold: 3%', 'treshold: 3%');
  sha.broken = commit('config typo');
  pushBranch('main');
  const cr = await pushAndWait('main', sha.fast, sha.broken);
  assert.equal(cr.conclusion, 'failure');
  assert.equal(cr.output.title, 'Invalid .github/perfbot.yml');
  assert.match(cr.output.summary, /line 9, column 1: unknown key "treshold" \(did you mean "threshold"\?\)/);
  const [run] = await endedRuns(sha.broken);
  assert.equal(run.state, 'failed');
  assert.match(run.reason, /line 9/);
});

test('no configuration: a neutral check run explaining how to add one', async (t) => {
  git('rm', '-q', '.github/perfbot.yml');
  sha.none = commit('drop the config');
  pushBranch('main');
  const cr = await pushAndWait('main', sha.broken, sha.none);
  assert.equal(cr.conclusion, 'neutral');
  assert.equal(cr.output.title, 'No perfbot configuration');
  assert.match(cr.output.summary, /\.github\/perfbot\.yml/);
  assert.match(cr.output.summary, /benchmarks:\n {2}- name: /);
});

test('a push to an untracked branch leaves no check run', async (t) => {
  git('checkout', '-q', '-b', 'scratch', sha.fast);
  fs.writeFileSync(path.join(work, 'NOTES'), 'scratch\n');
  const head = commit('scratch');
  pushBranch('scratch');
  await receive('push', pushPayload('refs/heads/scratch', sha.fast, head));
  const rows = await waitFor(async () => {
    const r = await runRow(head);
    return r.length && r[0].state !== 'queued' && r[0].state !== 'running' ? r : null;
  }, { timeoutMs: RUN_MS, what: 'the scratch run to end' });
  assert.equal(rows[0].state, 'skipped');
  assert.match(rows[0].reason, /scratch is not tracked/);
  assert.equal(checkRunsFor(head).length, 0);
  git('checkout', '-q', 'main');
});

test('a pull request is measured at its head and compared with the merge base', async (t) => {
  // branched from the improved commit; main moved on since (no config there)
  git('checkout', '-q', '-b', 'feature', sha.fast);
  edit('bench/parse.c', 'round < 8', 'round < 6');
  const head = commit('parse: even fewer rounds');
  pushBranch('feature');
  git('checkout', '-q', 'main');
  const p = JSON.parse(fs.readFileSync(path.join(DATA, 'pull_request.opened.json'), 'utf8'));
  p.pull_request.head.sha = head;
  p.pull_request.base.sha = sha.none;
  p.repository.clone_url = fake.gitUrl(REPO);
  await receive('pull_request', p);
  const cr = await completedCheck(head);
  assert.equal(cr.conclusion, 'success', cr.output.summary);
  assert.equal(cr.output.title, '1 improvement');
  assert.match(cr.output.summary,
    new RegExp(`Comparing \`feature\` \\(${head.slice(0, 7)}\\) with \`main\` \\(${sha.fast.slice(0, 7)}\\)`));
  const rows = summaryRows(cr.output.summary);
  assert.equal(rows.parse.icon, '⚡');
  assert.equal(rows.sort.change, '0.00%');
  const [run] = await endedRuns(head);
  assert.equal(run.trigger, 'pull_request');
  assert.equal(run.data.pull, 7);
  assert.equal(run.data.merge_base, sha.fast);
  assert.equal(run.data.ref, 'refs/pull/7/head');

  // "Re-run all checks" on the pull request's commit: measured as the pull request again
  const before = checkRunsFor(head).length;
  await receive('check_suite', {
    action: 'rerequested',
    check_suite: { id: 5, head_branch: 'feature', head_sha: head, before: sha.fast, status: 'completed',
      pull_requests: [{ number: 7, head: { ref: 'feature', sha: head }, base: { ref: 'main', sha: sha.none } }] },
    repository: p.repository, installation: { id: 1 }, sender: { login: 'mona', type: 'User' },
  });
  await fake.waitFor(() => checkRunsFor(head).length === before + 1 && checkRunsFor(head).at(-1).status === 'completed',
    RUN_MS);
  const again = (await endedRuns(head)).at(-1);
  assert.equal(again.trigger, 'rerequested');
  assert.equal(again.data.pull, 7);
  assert.equal(again.data.merge_base, sha.fast);
  assert.equal(checkRunsFor(head).at(-1).conclusion, 'success');
});

// A pull request's payload as GitHub sends it for someone else's pull
// request: from the fork `headRepo` (null: a deleted fork) or this
// repository, with the author's association.
function pullPayload(action, number, head, { headRepo = 'mallory/bench', association = 'CONTRIBUTOR', user = 'mallory',
  userType = 'User' } = {}) {
  const p = JSON.parse(fs.readFileSync(path.join(DATA, 'pull_request.opened.json'), 'utf8'));
  p.action = action;
  p.number = number;
  Object.assign(p.pull_request, { number, author_association: association, user: { login: user, id: 1234, type: userType } });
  p.pull_request.head.sha = head;
  p.pull_request.head.ref = 'patch-1';
  p.pull_request.head.repo = headRepo === null ? null : { ...p.repository, full_name: headRepo, fork: headRepo !== REPO };
  p.pull_request.base.sha = sha.none;
  p.repository.clone_url = fake.gitUrl(REPO);
  p.sender = { login: user, type: 'User' };
  return p;
}

async function commentOn(number, body, user) {
  await receive('issue_comment', {
    action: 'created',
    issue: { number, title: 'faster parse', state: 'open', pull_request: { url: `${fake.url}/repos/${REPO}/pulls/${number}` },
      user: { login: 'mallory', type: 'User' } },
    comment: { id: 90000 + fake.state.comments.length, body, user: { login: user, type: 'User' } },
    repository: { ...JSON.parse(fs.readFileSync(path.join(DATA, 'push.json'), 'utf8')).repository, clone_url: fake.gitUrl(REPO) },
    installation: { id: 1 }, sender: { login: user, type: 'User' },
  });
}

async function pressButton(checkRun, user) {
  const repo = JSON.parse(fs.readFileSync(path.join(DATA, 'push.json'), 'utf8')).repository;
  await receive('check_run', {
    action: 'requested_action',
    check_run: { id: checkRun.id, name: checkRun.name, head_sha: checkRun.head_sha, external_id: checkRun.external_id,
      status: checkRun.status, conclusion: checkRun.conclusion },
    requested_action: { identifier: 'approve-run' },
    repository: { ...repo, clone_url: fake.gitUrl(REPO) }, installation: { id: 1 }, sender: { login: user, type: 'User' },
  });
}

async function waitingRun(head) {
  return waitFor(async () => {
    const rows = await runRow(head);
    const cr = checkRunsFor(head);
    return rows.length && rows.at(-1).state === 'waiting' && cr.length === 1 && cr[0].status === 'completed' ? rows.at(-1) : null;
  }, { timeoutMs: RUN_MS, what: `the run of ${head.slice(0, 7)} to wait for approval` });
}

const commentsOnPull = (n) => fake.state.comments.filter((c) => c.issue === n && c.repository === REPO);

test('pull requests from forks and first-time contributors wait for a maintainer, like GitHub Actions', async (t) => {
  fake.setPermission(REPO, 'mona', 'write');
  fake.setPermission(REPO, 'rex', 'read');
  // the fork's commits reach the base repository as refs/pull/8/head, as on GitHub
  git('checkout', '-q', '-b', 'fork-feature', sha.fast);
  edit('bench/parse.c', 'round < 8', 'round < 7');
  const head1 = commit('fork: fewer rounds');
  git('push', '-qf', bare, 'fork-feature:refs/pull/8/head');

  await receive('pull_request', pullPayload('opened', 8, head1));
  const waiting = await waitingRun(head1);
  const [cr1] = checkRunsFor(head1);
  // the check run asks for an approval, with GitHub's button; nothing ran
  assert.equal(cr1.conclusion, 'action_required');
  assert.equal(cr1.output.title, 'Waiting for approval');
  assert.match(cr1.output.summary, /fork or from a first-time contributor/);
  assert.match(cr1.output.summary, /\/perfbot approve/);
  assert.deepEqual(cr1.actions.map((a) => a.identifier), ['approve-run']);
  assert.equal(cr1.actions[0].label, 'Approve and run');
  assert.equal(cr1.external_id, String(waiting.id));
  assert.ok(cr1.actions.every((a) => a.label.length <= 20 && a.description.length <= 40 && a.identifier.length <= 20));
  assert.equal(waiting.data.needs_approval, true);
  assert.equal(waiting.data.check_run_id, undefined, 'no measuring check run');
  const measured = await sqlite(dataDir, `SELECT id FROM measurements WHERE run_id=${waiting.id}`);
  assert.equal(measured.length, 0, 'nothing was measured');
  assert.equal(srv.logs().filter((l) => l.msg === 'bench run started' && l.run === String(waiting.id)).length, 0,
    'the run never started');

  // someone without write access: the button and the command are refused politely, the run keeps waiting
  await pressButton(cr1, 'rex');
  await fake.waitFor(() => commentsOnPull(8).some((c) => /Sorry @rex/.test(c.body)), RUN_MS);
  await commentOn(8, '/perfbot approve', 'rex');
  await fake.waitFor(() => commentsOnPull(8).filter((c) => /Sorry @rex/.test(c.body)).length === 2, RUN_MS);
  assert.equal((await runRow(head1)).at(-1).state, 'waiting');

  // a new push to the fork's pull request waits again: an approval is for one commit
  edit('bench/parse.c', 'round < 7', 'round < 6');
  const head2 = commit('fork: even fewer rounds');
  git('push', '-qf', bare, 'fork-feature:refs/pull/8/head');
  git('checkout', '-q', 'main');
  await receive('pull_request', pullPayload('synchronize', 8, head2));
  const waiting2 = await waitingRun(head2);
  const [older] = await runRow(head1);
  assert.equal(older.state, 'cancelled');
  assert.equal(older.reason, `superseded by run ${waiting2.id}`);

  // a maintainer approves with the comment command: measured now
  await commentOn(8, '/perfbot approve', 'mona');
  await fake.waitFor(() => commentsOnPull(8).some((c) => /Approved by @mona/.test(c.body)), RUN_MS);
  await fake.waitFor(() => checkRunsFor(head2).length === 2 && checkRunsFor(head2)[1].status === 'completed', RUN_MS);
  const [cr2, result] = checkRunsFor(head2);
  assert.equal(result.conclusion, 'success', result.output.summary);
  assert.equal(result.output.title, '1 improvement');
  assert.equal(cr2.conclusion, 'neutral');
  assert.equal(cr2.output.title, 'Approved by @mona');
  assert.deepEqual(cr2.actions, []);
  const [run2] = await endedRuns(head2);
  assert.equal(run2.id, waiting2.id);
  assert.equal(run2.state, 'done');
  assert.equal(run2.data.approved_by, 'mona');
  assert.equal(run2.data.approved_via, 'comment');

  // a first-time contributor's pull request from a branch of this repository: the button approves it
  git('checkout', '-q', '-b', 'first-timer', sha.fast);
  fs.writeFileSync(path.join(work, 'NOTES'), 'first\n');
  const head3 = commit('first contribution');
  git('push', '-qf', bare, 'first-timer:refs/pull/9/head');
  git('checkout', '-q', 'main');
  await receive('pull_request', pullPayload('opened', 9, head3, { headRepo: REPO, association: 'FIRST_TIME_CONTRIBUTOR', user: 'newbie' }));
  await waitingRun(head3);
  await pressButton(checkRunsFor(head3)[0], 'mona');
  await fake.waitFor(() => checkRunsFor(head3).length === 2 && checkRunsFor(head3)[1].status === 'completed', RUN_MS);
  assert.equal(checkRunsFor(head3)[1].conclusion, 'success', checkRunsFor(head3)[1].output.summary);
  const [run3] = await endedRuns(head3);
  assert.equal(run3.data.approved_via, 'button');

  // a member's pull request from this repository runs at once
  const head4 = sha.fast;
  git('push', '-qf', bare, `${head4}:refs/pull/10/head`);
  await receive('pull_request', pullPayload('opened', 10, head4, { headRepo: REPO, association: 'MEMBER', user: 'mona' }));
  const run4 = await waitFor(async () => {
    const rows = (await runRow(head4)).filter((r) => r.data.pull === 10);
    return rows.length && !['queued', 'running', 'waiting'].includes(rows[0].state) ? rows[0] : null;
  }, { timeoutMs: RUN_MS, what: 'the member\'s pull request run to end' });
  assert.equal(run4.state, 'done');
  assert.ok(!fake.state.checkRuns.some((c) => c.external_id === String(run4.id) && c.conclusion === 'action_required'));

  // so does a bot's from this repository (perfbot's own proposals, Dependabot's), though GitHub says NONE;
  // a bot's pull request from a fork still waits
  git('push', '-qf', bare, `${head4}:refs/pull/11/head`);
  await receive('pull_request', pullPayload('opened', 11, head4,
    { headRepo: REPO, association: 'NONE', user: 'perfbot-test[bot]', userType: 'Bot' }));
  const run5 = await waitFor(async () => {
    const rows = (await runRow(head4)).filter((r) => r.data.pull === 11);
    return rows.length && !['queued', 'running', 'waiting'].includes(rows[0].state) ? rows[0] : null;
  }, { timeoutMs: RUN_MS, what: 'the bot\'s pull request run to end' });
  assert.equal(run5.state, 'done');
  await receive('pull_request', pullPayload('opened', 12, head4,
    { headRepo: 'mallory/bench', association: 'NONE', user: 'evil[bot]', userType: 'Bot' }));
  const run6 = await waitFor(async () => (await runRow(head4)).find((r) => r.data.pull === 12 && r.state === 'waiting'),
    { timeoutMs: RUN_MS, what: 'the forked bot\'s pull request run to wait' });
  assert.equal(run6.data.needs_approval, true);
});

test('a newer push to the branch cancels the older run', async (t) => {
  git('checkout', '-q', sha.fast, '--', '.github/perfbot.yml');
  const first = commit('config back');
  fs.writeFileSync(path.join(work, 'NOTES'), 'second\n');
  const second = commit('notes');
  pushBranch('main');
  await receive('push', pushPayload('refs/heads/main', sha.none, first));
  // the second push arrives while the first is being measured
  await waitFor(async () => {
    const [r] = await runRow(first);
    return r && r.state === 'running' && checkRunsFor(first).length === 1;
  }, { timeoutMs: RUN_MS, everyMs: 20, what: 'the first run to start' });
  const pushed = Date.now();
  await receive('push', pushPayload('refs/heads/main', first, second));
  const stopped = await completedCheck(first);
  t.diagnostic(`older run stopped ${Date.now() - pushed} ms after the newer push`);
  assert.equal(stopped.conclusion, 'cancelled');
  const cr = await completedCheck(second);
  assert.equal(cr.conclusion, 'success', cr.output.summary);
  const [older] = await endedRuns(first);
  const [newer] = await runRow(second);
  assert.equal(older.state, 'cancelled');
  assert.equal(older.reason, `superseded by run ${newer.id}`);
  assert.match(stopped.output.summary, new RegExp(`superseded by run ${newer.id}`));
  // nothing of the stopped measurement is kept
  const ms = await sqlite(dataDir, `SELECT count(*) AS n FROM measurements WHERE run_id=${older.id}`);
  assert.equal(ms[0].n, 0);
});

test('GitHub failing while the check run is completed: the job retries without measuring or creating it again', async () => {
  fs.writeFileSync(path.join(work, 'NOTES'), 'retry\n');
  const head = commit('notes again');
  pushBranch('main');
  // every attempt of the client (one try and three retries) of the completing PATCH fails
  fake.failNext({ status: 502, count: 4, method: 'PATCH', path: /\/check-runs\/\d+$/ });
  const cr = await pushAndWait('main', git('rev-parse', 'HEAD~1'), head);
  assert.equal(cr.conclusion, 'success', cr.output.summary);
  assert.equal(cr.updates.length, 1, 'one successful completion');
  // the run's state is recorded just after the check run is completed
  const [run] = await endedRuns(head);
  assert.equal(run.state, 'done');
  const ms = await sqlite(dataDir, `SELECT count(*) AS n FROM measurements WHERE run_id=${run.id}`);
  assert.equal(ms[0].n, 3, 'measured once');
  // the job's own end is recorded after the run's
  const jobsOf = await waitFor(async () => {
    const rows = await sqlite(dataDir, `SELECT attempts, state FROM jobs WHERE kind='bench.run' AND dedupe_key='${run.data.job_key}'`);
    return rows.length && rows.every((x) => x.state !== 'queued' && x.state !== 'running') ? rows : null;
  }, { what: 'the bench job to end' });
  assert.deepEqual(jobsOf, [{ attempts: 2, state: 'done' }]);
});

test('a build that fails: the check run says so with the compiler output', async () => {
  edit('bench/sort.c', '#include', 'this is not C;\n#include');
  const head = commit('break the build');
  pushBranch('main');
  const cr = await pushAndWait('main', git('rev-parse', 'HEAD~1'), head);
  assert.equal(cr.conclusion, 'failure');
  assert.equal(cr.output.title, 'Build failed');
  assert.match(cr.output.summary, /The build `make` failed at/);
  assert.match(cr.output.summary, /sort\.c:\d+:\d+: error/);
  const [run] = await endedRuns(head);
  assert.equal(run.state, 'failed');
  assert.equal(run.reason, 'build failed');
});

test('without a usable sandbox the check run fails and nothing runs unsandboxed', async () => {
  // a second server whose PATH has no bwrap: its sandbox probe fails
  const dir = path.join(tmp, 'var-nosandbox');
  fs.mkdirSync(dir);
  const other = await startServer({
    dataDir: dir, secret: SECRET,
    env: { PATH: '/nonexistent', APP_ID, PRIVATE_KEY_PATH: keyPath, GITHUB_API_URL: fake.url, WORKERS: 1,
      REDELIVERY_INTERVAL_SECONDS: 0 },
  });
  try {
    edit('bench/sort.c', 'this is not C;\n', '');
    const head = commit('fix the build');
    pushBranch('main');
    await receive('push', pushPayload('refs/heads/main', git('rev-parse', 'HEAD~1'), head), other);
    const cr = await completedCheck(head);
    assert.equal(cr.conclusion, 'failure');
    assert.equal(cr.output.title, 'Sandbox unavailable');
    const rows = await waitFor(async () => {
      const r = await sqlite(dir, `SELECT state, reason FROM runs WHERE head_sha='${head}'`);
      return r.length && r[0].state !== 'running' ? r : null;
    }, { what: 'the run without a sandbox to end' });
    assert.deepEqual(rows, [{ state: 'failed', reason: 'sandbox unavailable' }]);
    assert.ok(!fs.existsSync(path.join(dir, 'work')) || fs.readdirSync(path.join(dir, 'work')).length === 0);
  } finally {
    await other.stop();
    assert.equal(other.sanitizerReport(), null);
  }
});

test('a bench run interrupted by a shutdown is measured again after the restart: one check run, completed', async () => {
  const dir = path.join(tmp, 'var-restart');
  fs.mkdirSync(dir);
  const env = { APP_ID, PRIVATE_KEY_PATH: keyPath, GITHUB_API_URL: fake.url, WORKERS: 1, REDELIVERY_INTERVAL_SECONDS: 0 };
  let other = await startServer({ dataDir: dir, secret: SECRET, env });
  let stopped = false;
  try {
    fs.writeFileSync(path.join(work, 'NOTES'), 'interrupted\n');
    const head = commit('a run that a restart interrupts');
    pushBranch('main');
    await receive('push', pushPayload('refs/heads/main', git('rev-parse', 'HEAD~1'), head), other);
    const runRows = async () => sqlite(dir, `SELECT id, state, reason FROM runs WHERE head_sha='${head}'`);
    await waitFor(async () => {
      const [row] = await runRows();
      return row && row.state === 'running' && checkRunsFor(head).length === 1;
    }, { timeoutMs: RUN_MS, everyMs: 20, what: 'the run to start' });
    const exit = await other.stop();
    stopped = true;
    assert.equal(exit.code, 0, exit.stderr);
    assert.equal(other.sanitizerReport(), null);
    const [interrupted] = await runRows();
    assert.equal(interrupted.state, 'queued');
    assert.equal(interrupted.reason, 'interrupted by a shutdown');
    assert.equal(checkRunsFor(head)[0].status, 'in_progress', 'the check run waits for the restart');

    other = await startServer({ dataDir: dir, secret: SECRET, env });
    stopped = false;
    const cr = await completedCheck(head); // exactly one check run for head
    assert.equal(cr.conclusion, 'success', cr.output.summary);
    const rows = await waitFor(async () => {
      const x = await runRows();
      return x.length && x[0].state === 'done' ? x : null;
    }, { what: 'the run to be recorded' });
    assert.equal(rows.length, 1, 'one run, measured again rather than duplicated');
  } finally {
    if (!stopped) {
      await other.stop();
      assert.equal(other.sanitizerReport(), null);
    }
  }
});

test('optimize on push: an agent run is queued for the pushed commit after the bench run', async () => {
  const yml = path.join(work, '.github/perfbot.yml');
  fs.writeFileSync(yml, fs.readFileSync(yml, 'utf8') + 'optimize:\n  on: [push]\n');
  const head = commit('optimize on push');
  pushBranch('main');
  const cr = await pushAndWait('main', git('rev-parse', 'HEAD~1'), head);
  assert.equal(cr.conclusion, 'success', cr.output.summary);
  const [agent] = await waitFor(async () => {
    const rows = await sqlite(dataDir, `SELECT id, state, trigger, branch, head_sha FROM runs WHERE kind='agent'`);
    return rows.length ? rows : null;
  }, { what: 'the agent run' });
  assert.equal(agent.trigger, 'push');
  assert.equal(agent.branch, 'main');
  assert.equal(agent.head_sha, head);
  // let it end (no agent command is configured here) before the server stops
  await waitFor(async () => {
    const [r] = await sqlite(dataDir, `SELECT state FROM runs WHERE id=${agent.id}`);
    return r.state !== 'queued' && r.state !== 'running';
  }, { timeoutMs: RUN_MS, what: 'the agent run to end' });
});

test('the installation token never reaches the cache, the data directory or the logs', async (t) => {
  const tokens = [...fake.state.tokens.keys()];
  assert.ok(tokens.length > 0, 'tokens were issued');
  const git401 = fake.requests.filter((r) => /^\/git\//.test(r.path));
  assert.ok(git401.length > 0, 'perfbot fetched over smart HTTP');
  // every job has ended: a run's work trees come and go while its job runs,
  // and are removed after its state is recorded
  await waitFor(async () => (await sqlite(dataDir,
    "SELECT id FROM jobs WHERE state IN ('queued','running')")).length === 0,
  { timeoutMs: 60000 * SLOW, what: 'every job to end' });
  const files = [];
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) files.push(p);
    }
  };
  walk(dataDir);
  const config = files.find((f) => /repos\/octo-org\/bench\.git\/config$/.test(f));
  assert.ok(config, 'the bare cache exists');
  assert.doesNotMatch(fs.readFileSync(config, 'utf8'), /x-access-token|\[remote/);
  for (const f of files) {
    const buf = fs.readFileSync(f);
    for (const tok of tokens) assert.equal(buf.indexOf(tok), -1, `token found in ${f}`);
  }
  for (const tok of tokens) assert.ok(!srv.stderr.includes(tok), 'token in the logs');
  assert.ok(!srv.stderr.includes('x-access-token:'), 'credentials in the logs');
  // work trees are removed after each run
  assert.deepEqual(fs.readdirSync(path.join(dataDir, 'work')).filter((n) => !n.startsWith('.')), []);
});
