// Integration: an approved proposal becomes a pull request, end to end.
// The real `perfbot serve` runs against the fake GitHub (tests/fake-github)
// and pushes over real smart HTTP (`git http-backend`) to the fake's
// repository.  A proposal is stored the way an approval leaves it: a run
// row of kind "agent", its proposals row and a queued "pr.open" job,
// written with the sqlite3 CLI.  `pull_request` closed events are sent with
// `perfbot receive`.  The fake deletes branches (DELETE git/refs) in its
// bare repository and answers `mergeable` from `git merge-tree`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { startServer, cli, sqlite, waitFor, tmpDir, SLOW, BIN } from './lib/perfbot.js';

const require = createRequire(import.meta.url);
const { startFakeGitHub } = require('../fake-github/server.js');

const APP_ID = 4242;
const SLUG = 'perfbot-test';
const BOT_ID = 9001;
const REPO = 'octo-org/demo';
const SECRET = 'pr-test-secret';
const THREAD = 500;
const BOT = `${SLUG}[bot] <${BOT_ID}+${SLUG}[bot]@users.noreply.github.com>`;

const HOT = 'int hot(int n)\n{\n\tint s = 0;\n\tfor (int i = 0; i < n; i++)\n\t\ts += i;\n\treturn s;\n}\n';
const FAST = 'int hot(int n)\n{\n\treturn n * (n - 1) / 2;\n}\n';

let tmp, dataDir, keyPath, fake, srv, bare, base, goodDiff;

const gitEnv = () => ({ ...process.env, HOME: tmp, GIT_CONFIG_NOSYSTEM: '1', GIT_AUTHOR_NAME: 'Dev', GIT_AUTHOR_EMAIL: 'dev@example.com',
  GIT_COMMITTER_NAME: 'Dev', GIT_COMMITTER_EMAIL: 'dev@example.com' });
// Local git only (paths on disk): the fake answers HTTP from this process.
function git(args, opts = {}) {
  return execFileSync('git', args, { env: gitEnv(), stdio: ['pipe', 'pipe', 'pipe'], ...opts }).toString().trim();
}
function branchSha(branch) {
  try {
    return git(['--git-dir', bare, 'rev-parse', '--verify', '-q', `refs/heads/${branch}`]);
  } catch {
    return null;
  }
}

// Branches perfbot deleted through the API, oldest first.
const deletes = () => fake.state.deletedRefs.filter((d) => d.repository === REPO).map((d) => d.ref.replace(/^heads\//, ''));

// ---- seeding a proposal the way an approval stores it ------------------------

const q = (s) => `'${String(s).replace(/'/g, "''")}'`;

async function seed(runId, { diff = goodDiff, benchmarks, baseSha = base, thread = THREAD, checkRun = true, extra = {} } = {}) {
  let checkRunId = 0;
  if (checkRun) {
    const token = fake.issueToken(1);
    const r = await fetch(`${fake.url}/repos/${REPO}/check-runs`, {
      method: 'POST',
      headers: { authorization: `token ${token}`, 'content-type': 'application/json', accept: 'application/vnd.github+json' },
      body: JSON.stringify({ name: 'perfbot / optimize', head_sha: baseSha, external_id: String(runId), status: 'completed', conclusion: 'success' }),
    });
    assert.equal(r.status, 201);
    checkRunId = (await r.json()).id;
  }
  const data = { approved_by: 'alice', approved_via: 'check run button', thread_number: thread, check_run_id: checkRunId,
    clone_url: fake.gitUrl(REPO), ...extra };
  const proposal = { diff, summary: `Run ${runId}: replaced the loop in hot() with the closed form.`, test_command: 'make test',
    benchmarks: (benchmarks || [`bench${runId}`]).map((name) => ({ name, base: 1000000, head: 770000 })) };
  const now = Date.now();
  await sqlite(dataDir, `INSERT INTO runs(id, kind, repository, installation_id, head_sha, base_sha, branch, trigger, state, data, created_ms, updated_ms)
    VALUES(${runId}, 'agent', ${q(REPO)}, 1, ${q(baseSha)}, ${q(baseSha)}, 'main', 'comment', 'done', ${q(JSON.stringify(data))}, ${now}, ${now});
    INSERT INTO proposals(run_id, data, created_ms, updated_ms) VALUES(${runId}, ${q(JSON.stringify(proposal))}, ${now}, ${now});`);
  await queueJob(runId);
  return { checkRunId };
}

async function queueJob(runId) {
  const now = Date.now();
  await sqlite(dataDir, `INSERT INTO jobs(kind, payload, state, attempts, run_at_ms, created_ms, updated_ms)
    VALUES('pr.open', ${q(JSON.stringify({ run_id: runId }))}, 'queued', 0, 0, ${now}, ${now});`);
}

// The pr.open jobs of a run once all of them have ended.
async function settled(runId, count = 1) {
  return waitFor(async () => {
    const rows = await sqlite(dataDir, `SELECT id, state, error, note, attempts FROM jobs WHERE kind='pr.open'
      AND json_extract(payload, '$.run_id')=${runId} ORDER BY id`);
    return rows.length >= count && rows.every((r) => r.state === 'done' || r.state === 'failed') ? rows : null;
  }, { timeoutMs: 30000 * SLOW, everyMs: 100, what: `pr.open jobs of run ${runId}` });
}

async function run(runId) {
  const [row] = await sqlite(dataDir, `SELECT state, reason, data FROM runs WHERE id=${runId}`);
  return { ...row, data: JSON.parse(row.data) };
}

const pullsOf = (branch) => fake.state.pulls.filter((p) => p.headRef === branch);
const commentsOn = (n) => fake.state.comments.filter((c) => c.issue === n);

async function startPerfbot() {
  srv = await startServer({
    dataDir, secret: SECRET,
    env: { APP_ID, PRIVATE_KEY_PATH: keyPath, GITHUB_API_URL: fake.url, REDELIVERY_INTERVAL_SECONDS: 0, JOB_ATTEMPTS: 3 },
  });
}

async function receive(event, payload) {
  const file = path.join(tmp, `event-${crypto.randomUUID()}.json`);
  fs.writeFileSync(file, JSON.stringify(payload));
  const r = await cli(['receive', '-e', event, '-p', file, '--url', srv.url, '--secret', SECRET]);
  assert.equal(r.code, 0, r.stderr);
}

function closedPayload(pull, { merged, headSha }) {
  const repo = { id: 1, name: 'demo', full_name: REPO, owner: { login: 'octo-org' }, clone_url: fake.gitUrl(REPO) };
  return {
    action: 'closed', number: pull.number,
    pull_request: { number: pull.number, state: 'closed', merged, merge_commit_sha: merged ? 'c'.repeat(40) : null,
      head: { ref: pull.headRef, sha: headSha || pull.headSha, repo }, base: { ref: 'main', sha: base, repo } },
    repository: repo, installation: { id: 1 }, sender: { login: 'alice' },
  };
}

// ---- setup -------------------------------------------------------------------

before(async () => {
  tmp = tmpDir('perfbot-pr-it-');
  dataDir = path.join(tmp, 'var');
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  keyPath = path.join(tmp, 'app.pem');
  fs.writeFileSync(keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  fake = await startFakeGitHub({ appId: APP_ID, publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }),
    appSlug: SLUG, botUserId: BOT_ID, gitRoot: path.join(tmp, 'git') });
  bare = fake.createGitRepo(REPO, { files: { 'src/hot.c': HOT, 'README.md': '# demo\n', 'Makefile': 'test:\n\ttrue\n' } });
  base = git(['--git-dir', bare, 'rev-parse', 'main']);
  // the proposal: a diff made by git on the measured base
  const work = path.join(tmp, 'work');
  git(['clone', '-q', bare, work]);
  fs.writeFileSync(path.join(work, 'src/hot.c'), FAST);
  fs.writeFileSync(path.join(work, 'src/fast.h'), '#define FAST 1\n');
  git(['-C', work, 'add', '-A']);
  goodDiff = git(['-C', work, 'diff', '--cached']) + '\n';
  git(['-C', work, 'reset', '-q', '--hard']);

  // the schema comes from perfbot's own migrations, applied when it starts
  fs.mkdirSync(dataDir, { recursive: true });
  await startPerfbot();
});

after(async () => {
  if (srv) {
    const r = await srv.stop();
    assert.equal(srv.sanitizerReport(), null, r.stderr);
  }
  if (fake) await fake.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

// ---- tests -------------------------------------------------------------------

test('an approved proposal becomes a branch with base + diff exactly, by the bot, and one pull request', async () => {
  const { checkRunId } = await seed(1);
  const [job] = await settled(1);
  assert.equal(job.state, 'done', job.error);

  const head = branchSha('perfbot/opt-1');
  assert.ok(head, 'branch perfbot/opt-1 pushed');
  // the tree equals what git itself makes of base + diff
  const check = path.join(tmp, 'check1');
  git(['clone', '-q', bare, check]);
  git(['-C', check, 'checkout', '-q', base]);
  fs.writeFileSync(path.join(tmp, 'good.diff'), goodDiff);
  git(['-C', check, 'apply', '--index', path.join(tmp, 'good.diff')]);
  assert.equal(git(['--git-dir', bare, 'rev-parse', 'perfbot/opt-1^{tree}']), git(['-C', check, 'write-tree']));
  assert.equal(git(['--git-dir', bare, 'rev-parse', 'perfbot/opt-1^']), base);
  assert.equal(git(['--git-dir', bare, 'log', '-1', '--format=%an <%ae>|%cn <%ce>|%s', 'perfbot/opt-1']),
    `${BOT}|${BOT}|perf: speed up bench1 by 23%`);

  const pulls = pullsOf('perfbot/opt-1');
  assert.equal(pulls.length, 1);
  const pr = pulls[0];
  assert.equal(pr.base, 'main');
  assert.equal(pr.maintainer_can_modify, true);
  assert.equal(pr.title, 'perf: speed up bench1 by 23%');
  for (const part of ['Run 1: replaced the loop in hot() with the closed form.', '| bench1 | 1000000 | 770000 | -23.0% |',
    '### How this was measured', 'callgrind', '`make test`', `base \`${base}\``, head, 'Approved by @alice via check run button',
    '<!-- perfbot-run: 1 -->'])
    assert.ok(pr.body.includes(part), `PR body lacks ${part}:\n${pr.body}`);

  const url = `${fake.url}/${REPO}/pull/${pr.number}`;
  const thread = commentsOn(THREAD);
  assert.equal(thread.length, 1);
  assert.ok(thread[0].body.includes(url), thread[0].body);
  const cr = fake.state.checkRuns.find((c) => c.id === checkRunId);
  assert.equal(cr.details_url, url);
  assert.ok(cr.output.summary.includes(`[#${pr.number}](${url})`), cr.output.summary);

  const r = await run(1);
  assert.equal(r.data.pull.number, pr.number);
  assert.equal(r.data.pull.url, url);
  assert.equal(r.data.pull.commit, head);
  const [row] = await sqlite(dataDir, `SELECT number, branch, state FROM pulls WHERE run_id=1`);
  assert.deepEqual(row, { number: pr.number, branch: 'perfbot/opt-1', state: 'open' });
  // the bot identity is looked up once per process
  const lookups = fake.requests.filter((x) => x.method === 'GET' && decodeURIComponent(x.path) === `/users/${SLUG}[bot]`);
  assert.equal(lookups.length, 1);
});

test('the job run twice gives one branch, one pull request and one thread comment', async () => {
  const head = branchSha('perfbot/opt-1');
  await queueJob(1);
  const jobs = await settled(1, 2);
  assert.equal(jobs[1].state, 'done', jobs[1].error);
  assert.match(jobs[1].note, /already open/);
  assert.equal(branchSha('perfbot/opt-1'), head);
  assert.equal(pullsOf('perfbot/opt-1').length, 1);
  assert.equal(commentsOn(THREAD).length, 1);
  assert.equal(fake.requests.filter((x) => x.method === 'POST' && x.path === `/repos/${REPO}/pulls`).length, 1);
});

test('a crash between the push and the pull request: after a restart, one pull request', async () => {
  fake.hang({ method: 'POST', path: /\/pulls$/ });
  await seed(2);
  await waitFor(() => fake.requests.some((x) => x.method === 'POST' && x.path === `/repos/${REPO}/pulls`
    && x.body && x.body.head === 'perfbot/opt-2'), { what: 'POST /pulls for run 2' });
  const head = branchSha('perfbot/opt-2');
  assert.ok(head, 'the branch was pushed before the pull request');
  await srv.kill();
  assert.equal(pullsOf('perfbot/opt-2').length, 0);
  await startPerfbot();
  const [job] = await settled(2);
  assert.equal(job.state, 'done', job.error);
  assert.equal(job.attempts, 2);
  assert.equal(branchSha('perfbot/opt-2'), head, 'the branch was reused, not pushed again');
  assert.equal(pullsOf('perfbot/opt-2').length, 1);
});

test('a 500 on POST /pulls is retried: one pull request', async () => {
  fake.failNext({ status: 500, method: 'POST', path: /\/pulls$/ });
  await seed(3);
  const [job] = await settled(3);
  assert.equal(job.state, 'done', job.error);
  const posts = fake.requests.filter((x) => x.method === 'POST' && x.path === `/repos/${REPO}/pulls` && x.body.head === 'perfbot/opt-3');
  assert.equal(posts.length, 2);
  assert.equal(pullsOf('perfbot/opt-3').length, 1);
});

test('a moved base: the pull request still comes from the measured base commit', async () => {
  const work = path.join(tmp, 'mover');
  git(['clone', '-q', bare, work]);
  fs.writeFileSync(path.join(work, 'README.md'), '# demo\n\nmoved on\n');
  git(['-C', work, 'commit', '-qam', 'docs']);
  git(['-C', work, 'push', '-q', 'origin', 'main']);
  assert.notEqual(git(['--git-dir', bare, 'rev-parse', 'main']), base);
  await seed(4);
  const [job] = await settled(4);
  assert.equal(job.state, 'done', job.error);
  assert.equal(git(['--git-dir', bare, 'rev-parse', 'perfbot/opt-4^']), base);
  assert.equal(git(['--git-dir', bare, 'rev-parse', 'perfbot/opt-4^{tree}']),
    git(['--git-dir', bare, 'rev-parse', 'perfbot/opt-1^{tree}']));
  const [pr] = pullsOf('perfbot/opt-4');
  assert.ok(pr);
  // mergeable: no conflict comment on the PR
  assert.equal(commentsOn(pr.number).length, 0);
});

for (const [i, [label, diff, reason]] of [
  ['a workflow file', 'diff --git a/.github/workflows/ci.yml b/.github/workflows/ci.yml\nnew file mode 100644\n--- /dev/null\n'
    + '+++ b/.github/workflows/ci.yml\n@@ -0,0 +1 @@\n+on: push\n', /GitHub Actions workflow: \.github\/workflows\/ci\.yml/],
  ['a binary patch', 'diff --git a/img.bin b/img.bin\nnew file mode 100644\nindex 0000000..5416677\nGIT binary patch\n'
    + 'literal 4\nLcmZQzWMT#Y01f~L\n\nliteral 0\nHcmV?d00001\n\n', /binary patch: img\.bin/],
  ['a diff that does not apply', 'diff --git a/src/hot.c b/src/hot.c\n--- a/src/hot.c\n+++ b/src/hot.c\n@@ -1,2 +1,2 @@\n'
    + '-int nothing_like_this(void)\n+int x(void)\n {\n', /does not apply/],
].entries()) {
  test(`bad input (${label}): the job fails with the reason, a comment, nothing pushed`, async () => {
    const runId = 10 + i;
    const thread = 600 + i;
    const { checkRunId } = await seed(runId, { diff, thread });
    const [job] = await settled(runId);
    assert.equal(job.state, 'failed');
    assert.equal(job.attempts, 1, 'a refused proposal is not retried');
    assert.match(job.error, reason);
    const r = await run(runId);
    assert.match(r.data.pull.error, reason);
    const c = commentsOn(thread);
    assert.equal(c.length, 1);
    assert.match(c[0].body, new RegExp(`did not open a pull request for run ${runId}`));
    assert.match(c[0].body, reason);
    // the check run whose button was pressed says so too
    const cr = fake.state.checkRuns.find((x) => x.id === checkRunId);
    assert.equal(cr.output.title, 'Pull request not opened');
    assert.match(cr.output.summary, reason);
    assert.equal(branchSha(`perfbot/opt-${runId}`), null);
    assert.equal(fake.state.pulls.filter((p) => p.headRef === `perfbot/opt-${runId}`).length, 0);
  });
}

test('a newer proposal for the same benchmarks closes the older pull request as superseded', async () => {
  await seed(20, { benchmarks: ['sort', 'parse'] });
  assert.equal((await settled(20))[0].state, 'done');
  const [older] = pullsOf('perfbot/opt-20');
  await seed(21, { benchmarks: ['parse', 'sort'] });
  assert.equal((await settled(21))[0].state, 'done');
  const [newer] = pullsOf('perfbot/opt-21');
  assert.equal(older.state, 'closed');
  assert.deepEqual(commentsOn(older.number).map((c) => c.body), [`Superseded by #${newer.number}.`]);
  assert.equal(newer.state, 'open');
  // other benchmark sets are left alone
  assert.equal(pullsOf('perfbot/opt-4')[0].state, 'open');
});

test('pull_request closed events: merged and closed unmerged update the run and delete our branch', async () => {
  const merged = pullsOf('perfbot/opt-1')[0];
  await receive('pull_request', closedPayload(merged, { merged: true }));
  await waitFor(async () => (await run(1)).state === 'merged', { what: 'run 1 merged' });
  let r = await run(1);
  assert.equal(r.data.pull.state, 'merged');
  assert.equal(r.data.pull.merge_commit, 'c'.repeat(40));
  assert.match(r.reason, /merged as c{40}/);
  assert.equal(branchSha('perfbot/opt-1'), null);

  const closed = pullsOf('perfbot/opt-3')[0];
  await receive('pull_request', closedPayload(closed, { merged: false }));
  await waitFor(async () => (await run(3)).state === 'closed', { what: 'run 3 closed' });
  r = await run(3);
  assert.equal(r.data.pull.state, 'closed');
  assert.equal(branchSha('perfbot/opt-3'), null);
  const [row] = await sqlite(dataDir, `SELECT state, json_extract(data, '$.branch_deleted') AS deleted FROM pulls WHERE run_id=3`);
  assert.deepEqual(row, { state: 'closed', deleted: 1 });
  assert.deepEqual(deletes(), ['perfbot/opt-1', 'perfbot/opt-3']);
});

test('a closed event for a branch someone else pushed to keeps the branch; a foreign branch is ignored', async () => {
  const pr = pullsOf('perfbot/opt-2')[0];
  const before = branchSha('perfbot/opt-2');
  await receive('pull_request', closedPayload(pr, { merged: false, headSha: 'd'.repeat(40) }));
  await waitFor(async () => (await run(2)).state === 'closed', { what: 'run 2 closed' });
  assert.equal(branchSha('perfbot/opt-2'), before);
  // a branch perfbot did not make: nothing changes, the delivery succeeds
  const foreign = { ...pr, headRef: 'feature/x', number: 999 };
  await receive('pull_request', closedPayload(foreign, { merged: true }));
  await waitFor(async () => {
    const rows = await sqlite(dataDir, `SELECT j.state FROM jobs j JOIN deliveries d ON j.delivery_id=d.id
      WHERE d.event='pull_request' ORDER BY j.id`);
    return rows.length === 4 && rows.every((x) => x.state === 'done');
  }, { what: 'closed events handled' });
  assert.equal(deletes().length, 2);
});

test('a base that moved over the same lines: the pull request is opened from the measured base and a conflict comment posted once', async () => {
  const work = path.join(tmp, 'mover');
  fs.writeFileSync(path.join(work, 'src/hot.c'), HOT.replace('int s = 0;', 'long s = 0;'));
  git(['-C', work, 'commit', '-qam', 'wider sum']);
  git(['-C', work, 'push', '-q', 'origin', 'main']);
  await seed(30);
  const [job] = await settled(30);
  assert.equal(job.state, 'done', job.error);
  assert.equal(git(['--git-dir', bare, 'rev-parse', 'perfbot/opt-30^']), base);
  const [pr] = pullsOf('perfbot/opt-30');
  const c = commentsOn(pr.number);
  assert.equal(c.length, 1);
  assert.match(c[0].body, /conflicts with the current `main`/);
  assert.match(c[0].body, /\/perfbot optimize/);
  assert.ok(fake.requests.some((x) => x.method === 'GET' && x.path === `/repos/${REPO}/pulls/${pr.number}`),
    'mergeable was asked of GitHub');
});

test('mergeability not computed while the job runs: checked again later, the conflict commented once', async () => {
  fake.mergeableUnknown(3); // the job's three quick looks
  await seed(31);
  const [job] = await settled(31);
  assert.equal(job.state, 'done', job.error);
  const [pr] = pullsOf('perfbot/opt-31');
  assert.equal(commentsOn(pr.number).length, 0, 'nothing known yet');
  // the later check is queued; bring it forward instead of waiting for it
  const [check] = await sqlite(dataDir, `SELECT id, state FROM jobs WHERE kind='pr.conflict' AND dedupe_key='pr.conflict:31'`);
  assert.equal(check.state, 'queued');
  await sqlite(dataDir, `UPDATE jobs SET run_at_ms=0 WHERE id=${check.id}`);
  const done = await waitFor(async () => {
    const [j] = await sqlite(dataDir, `SELECT state, note FROM jobs WHERE id=${check.id}`);
    return j.state === 'done' ? j : null;
  }, { what: 'the later mergeability check' });
  assert.match(done.note, /conflicts: commented/);
  const c = commentsOn(pr.number);
  assert.equal(c.length, 1);
  assert.match(c[0].body, /conflicts with the current `main`/);
});

test('a push refused by branch protection: the job fails naming the rule, a comment, nothing pushed', async () => {
  fake.protectBranches(REPO, ['perfbot/opt-40']);
  await seed(40, { thread: 640 });
  const [job] = await settled(40);
  assert.equal(job.state, 'failed');
  assert.equal(job.attempts, 1, 'a refusal is not retried');
  assert.match(job.error, /push of refs\/heads\/perfbot\/opt-40 refused by octo-org\/demo: a branch protection rule covers it/);
  assert.match(job.error, /GH006: Protected branch update failed for refs\/heads\/perfbot\/opt-40/);
  const r = await run(40);
  assert.match(r.data.pull.error, /branch protection rule/);
  const c = commentsOn(640);
  assert.equal(c.length, 1);
  assert.match(c[0].body, /did not open a pull request for run 40/);
  assert.match(c[0].body, /branch protection rule/);
  assert.equal(branchSha('perfbot/opt-40'), null);
  assert.equal(pullsOf('perfbot/opt-40').length, 0);
});

test('an installation that may not push: the job fails saying which permission is missing, nothing pushed', async () => {
  fake.denyPush(REPO, true);
  try {
    await seed(41, { thread: 641 });
    const [job] = await settled(41);
    assert.equal(job.state, 'failed');
    assert.equal(job.attempts, 1, 'a refusal is not retried');
    assert.match(job.error, /push to octo-org\/demo refused: the app may not write to it \(it needs the contents: write permission\)/);
    const c = commentsOn(641);
    assert.equal(c.length, 1);
    assert.match(c[0].body, /contents: write/);
    assert.equal(branchSha('perfbot/opt-41'), null);
    assert.equal(pullsOf('perfbot/opt-41').length, 0);
  } finally {
    fake.denyPush(REPO, false);
  }
});

test('git refusing the cached installation token: a new token is taken and one pull request opened', async () => {
  fake.revokeTokens(); // the token perfbot cached is refused from now on, by git and by the API
  const refusedBefore = srv.logs().filter((l) => /git refused the installation token/.test(l.msg)).length;
  await seed(42, { thread: 642 });
  const [job] = await settled(42);
  assert.equal(job.state, 'done', job.error);
  assert.ok(branchSha('perfbot/opt-42'), 'the branch was pushed with the new token');
  assert.equal(pullsOf('perfbot/opt-42').length, 1);
  const refused = srv.logs().filter((l) => /git refused the installation token/.test(l.msg));
  assert.equal(refused.length, refusedBefore + 1, 'git refused the old token once');
  for (const token of fake.state.tokens.keys()) assert.ok(!srv.stderr.includes(token), 'no token in the logs');
});

test('a pre-created perfbot/opt branch and pull request are not adopted: the job fails saying so', async () => {
  // anyone with push access (or a fork's pull request) can guess the next run id
  const work = path.join(tmp, 'squat');
  git(['clone', '-q', bare, work]);
  git(['-C', work, 'checkout', '-q', '-b', 'perfbot/opt-43', base]);
  fs.writeFileSync(path.join(tmp, 'squat.diff'), goodDiff);
  git(['-C', work, 'apply', '--index', path.join(tmp, 'squat.diff')]); // even the very tree perfbot would make
  git(['-C', work, 'commit', '-qm', 'perf: speed up bench43 by 23%']);
  git(['-C', work, 'push', '-q', 'origin', 'perfbot/opt-43']);
  const squatted = branchSha('perfbot/opt-43');
  const token = fake.issueToken(1);
  const r = await fetch(`${fake.url}/repos/${REPO}/pulls`, {
    method: 'POST',
    headers: { authorization: `token ${token}`, 'content-type': 'application/json', accept: 'application/vnd.github+json' },
    body: JSON.stringify({ title: 'perf: speed up bench43 by 23%', head: 'perfbot/opt-43', base: 'main', body: 'Verified by perfbot run 43.' }),
  });
  assert.equal(r.status, 201);
  const squatPull = await r.json();

  await seed(43, { thread: 643 });
  const [job] = await settled(43);
  assert.equal(job.state, 'failed');
  assert.match(job.error, /perfbot\/opt-43 already exists in octo-org\/demo with commit [0-9a-f]{12}, which perfbot did not push/);
  const c = commentsOn(643);
  assert.equal(c.length, 1);
  assert.match(c[0].body, /did not open a pull request for run 43/);
  assert.ok(!c[0].body.includes(`#${squatPull.number}`), 'their pull request is not announced as perfbot\'s');
  const rr = await run(43);
  assert.equal(rr.data.pull.number, undefined);
  assert.match(rr.data.pull.error, /perfbot did not push/);
  assert.equal(branchSha('perfbot/opt-43'), squatted, 'their branch is left alone');
  const pulls = await sqlite(dataDir, `SELECT run_id FROM pulls WHERE run_id=43`);
  assert.equal(pulls.length, 0, 'no pull request recorded as perfbot\'s');
});

test('a fork\'s proposal that does not apply to the base branch without the fork\'s commits: a clear refusal, nothing pushed', async () => {
  // the fork changed hot() itself; the agent's change was made on top of that
  const work = path.join(tmp, 'fork');
  git(['clone', '-q', bare, work]);
  git(['-C', work, 'checkout', '-q', base]);
  fs.writeFileSync(path.join(work, 'src/hot.c'), HOT.replace('s += i;', 's += i * 1;'));
  git(['-C', work, 'commit', '-qam', 'fork: explicit factor']);
  const forkSha = git(['-C', work, 'rev-parse', 'HEAD']);
  git(['-C', work, 'push', '-q', 'origin', 'HEAD:refs/pull/44/head']);
  fs.writeFileSync(path.join(work, 'src/hot.c'), HOT.replace('s += i;', 's += i + 0;'));
  const diff = git(['-C', work, 'diff']) + '\n';
  await seed(44, { thread: 644, baseSha: forkSha, diff, extra: { fork: true } });
  const [job] = await settled(44);
  assert.equal(job.state, 'failed');
  assert.equal(job.attempts, 1, 'a refusal is not retried');
  const c = commentsOn(644);
  assert.equal(c.length, 1);
  assert.match(c[0].body, /did not open a pull request for run 44: the change was made on a fork's pull request and does not apply to `main`/);
  assert.match(c[0].body, /never pushes a fork's commits/);
  const rr = await run(44);
  assert.match(rr.data.pull.error, /does not apply to `main`/);
  const cr = fake.state.checkRuns.find((x) => x.id === rr.data.check_run_id);
  assert.equal(cr.output.title, 'Pull request not opened');
  assert.match(cr.output.summary, /never pushes a fork's commits/);
  assert.equal(branchSha('perfbot/opt-44'), null);
  assert.equal(pullsOf('perfbot/opt-44').length, 0);
});

test('the perfbot binary under test is the one built', () => {
  assert.ok(fs.existsSync(BIN));
});
