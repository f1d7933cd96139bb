// Integration: the dashboard in a real browser.  Headless Chromium (Debian's
// `chromium`, driven by puppeteer-core) against the real `perfbot serve` and
// the fake GitHub: a user signs in through the fake's OAuth pages, opens a
// repository with 200 measured commits (written into the store with the
// sqlite3 CLI, as a push's bench runs leave them) and sees a chart of 200
// points per benchmark, opens a run, approves it and the pull request is
// opened in the fake GitHub; a user without access sees "Not found" for the
// same pages; a POST without the CSRF token gets 403.  No page may log an
// error (a Content-Security-Policy violation is one).  Screenshots of every
// page go to <build>/test-output/ui/*.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { startServer, waitFor, tmpDir, BIN, SLOW } from './lib/perfbot.js';

const require = createRequire(import.meta.url);
const { startFakeGitHub } = require('../fake-github/server.js');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const noBrowser = fs.existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (.ci/deps.sh installs it)`;
const OUT = path.join(path.dirname(BIN), 'test-output', 'ui');

const APP_ID = 4343;
const REPO = 'octo-org/widgets';
const COMMITS = 200;
const PROPOSAL_RUN = 7000;
const LOCAL_RUN = 7001;
const HOT = 'int hot(int n)\n{\n\tint s = 0;\n\tfor (int i = 0; i < n; i++)\n\t\ts += i;\n\treturn s;\n}\n';
const FAST = 'int hot(int n)\n{\n\treturn n * (n - 1) / 2;\n}\n';

let tmp, dataDir, fake, srv, base, browser, alice;
const q = (s) => `'${String(s).replace(/'/g, "''")}'`;
const sha = (i) => crypto.createHash('sha1').update(`commit ${i}`).digest('hex');

function git(args) {
  return execFileSync('git', args, { env: { ...process.env, HOME: tmp, GIT_CONFIG_NOSYSTEM: '1', GIT_AUTHOR_NAME: 'Dev',
    GIT_AUTHOR_EMAIL: 'dev@example.com', GIT_COMMITTER_NAME: 'Dev', GIT_COMMITTER_EMAIL: 'dev@example.com' },
  stdio: ['pipe', 'pipe', 'pipe'] }).toString().trim();
}

// The history of main: 200 push-triggered bench runs, three benchmarks each:
// "parse" 8 % slower from commit 120 on, "sort" 30 % faster from commit 60
// on, "render" unmeasured at commit 7.  Then a verified proposal waiting for
// approval, with its measurements (profiles with flame trees) and tool calls.
function seed(diff) {
  const now = Date.now();
  const sql = ['BEGIN;'];
  const m = (run, commit, bench, cycles, data = { status: 'ok' }) =>
    sql.push(`INSERT INTO measurements(run_id, repository, commit_sha, benchmark, data, created_ms, ok, instructions, estimated_cycles)
      VALUES(${run}, ${q(REPO)}, ${commit ? q(commit) : 'NULL'}, ${q(bench)}, ${q(JSON.stringify(data))}, ${now}, 1,
      ${Math.round(cycles * 0.8)}, ${cycles});`);
  for (let i = 1; i <= COMMITS; i++) {
    const data = { commit: { author: ['ada', 'brian', 'grace'][i % 3], message: `commit ${i}: tune things\n\nmore words`,
      at_ms: now - (COMMITS - i) * 3600000 } };
    sql.push(`INSERT INTO runs(id, kind, repository, installation_id, head_sha, branch, trigger, state, data, created_ms, updated_ms)
      VALUES(${i}, 'bench', ${q(REPO)}, 1, ${q(sha(i))}, 'main', 'push', 'done', ${q(JSON.stringify(data))}, ${now}, ${now});`);
    const wobble = 1 + 0.002 * Math.sin(i / 3);
    m(i, sha(i), 'parse', Math.round((i >= 120 ? 1080000 : 1000000) * wobble));
    m(i, sha(i), 'sort', Math.round((i >= 60 ? 2100000 : 3000000) * wobble));
    if (i !== 7) m(i, sha(i), 'render', 500000 + i * 100);
  }
  const flame = (hot) => ({ name: 'all', value: 100 + hot + 200, children: [{ name: 'main', file: 'src/main.c', value: 100 + hot + 200,
    children: [{ name: 'hot', file: 'src/hot.c', value: hot }, { name: 'parse_line', file: 'src/parse.c', value: 200,
      children: [{ name: 'strtol', file: 'stdlib/strtol.c', value: 120 }] }] }] });
  const data = { clone_url: fake.gitUrl(REPO), thread_number: 0,
    budgets: { tool_calls: 3, calls: [{ tool: 'read_file', started_ms: 0, duration_ms: 12, error: null },
      { tool: 'run_benchmarks', started_ms: 40, duration_ms: 2900, error: null },
      { tool: 'exec', started_ms: 3000, duration_ms: 30, error: 'command exited with status 2' }] },
    timings: { baseline_ms: 1200, agent_ms: 5000, verify_ms: 2400, total_ms: 8700 },
    managed: { session_id: 'sesn_01abc', agent_version: 3, list_cost_usd: 0.4213,
      usage: { input_tokens: 123456, output_tokens: 7890, cache_read_input_tokens: 50000 } } };
  sql.push(`INSERT INTO runs(id, kind, repository, installation_id, head_sha, base_sha, branch, trigger, state, data, created_ms, updated_ms)
    VALUES(${PROPOSAL_RUN}, 'agent', ${q(REPO)}, 1, ${q(base)}, ${q(base)}, 'main', 'comment', 'proposal', ${q(JSON.stringify(data))}, ${now}, ${now});`);
  const proposal = { diff, summary: 'closed form for hot()', verification_log: 'build ok\ntests ok\nparse: 1000000 -> 770000\n',
    benchmarks: [{ name: 'parse', base: 1000000, head: 770000, change_pct: -23 }] };
  sql.push(`INSERT INTO proposals(run_id, data, created_ms, updated_ms) VALUES(${PROPOSAL_RUN}, ${q(JSON.stringify(proposal))}, ${now}, ${now});`);
  for (const [side, hot] of [['base', 700], ['head', 470]]) {
    m(PROPOSAL_RUN, side === 'base' ? base : null, 'parse', side === 'base' ? 1000000 : 770000, {
      status: 'ok', verified: side === 'head', flame: flame(hot),
      top_functions: [{ name: 'hot', file: 'src/hot.c', self: { estimated_cycles: hot }, inclusive: { estimated_cycles: hot } },
        { name: 'strtol', file: 'stdlib/strtol.c', self: { estimated_cycles: 120 }, inclusive: { estimated_cycles: 120 } }] });
  }
  // a run of `perfbot bench` on this machine (no GitHub repository)
  sql.push(`INSERT INTO runs(id, kind, repository, installation_id, head_sha, trigger, state, data, created_ms, updated_ms)
    VALUES(${LOCAL_RUN}, 'bench', '/home/dev/project', 0, ${q('d'.repeat(40))}, 'cli', 'done', '{}', ${now}, ${now});`);
  sql.push('COMMIT;');
  execFileSync('sqlite3', ['-cmd', '.timeout 5000', path.join(dataDir, 'perfbot.db')], { input: sql.join('\n') });
}

// ---- the browser ---------------------------------------------------------------

const origin = () => `http://127.0.0.1:${srv.port}`;

// A fresh browser profile (its own cookies) whose pages record what they log.
async function newUser() {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  page.errors = [];
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    // answers the tests ask for on purpose (401, 403, 404) are not the page's errors
    if (/status of 40[134]/.test(msg.text())) return;
    page.errors.push(msg.text());
  });
  page.on('pageerror', (e) => page.errors.push(e.message));
  return { context, page };
}

async function shot(page, name, { fullPage = true } = {}) {
  fs.mkdirSync(OUT, { recursive: true });
  await page.screenshot({ path: path.join(OUT, `${name}.png`), fullPage });
}

function noErrors(page) {
  assert.deepEqual(page.errors, [], 'nothing logged as an error by the page (CSP violations included)');
}

// Signs `login` in from the page's sign-in link, as a person would.
async function signIn(page, login, from = '/ui/') {
  fake.signInAs(login);
  await page.goto(origin() + from, { waitUntil: 'networkidle0' });
  await page.waitForSelector('#sign-in');
  await Promise.all([page.waitForNavigation({ waitUntil: 'networkidle0' }), page.click('#sign-in')]);
  await page.waitForSelector('#sign-out');
  assert.equal(await page.$eval('#user .login', (e) => e.textContent), login);
}

before(async () => {
  if (noBrowser) return;
  const puppeteer = require('puppeteer-core');
  tmp = tmpDir('perfbot-ui-browser-');
  dataDir = path.join(tmp, 'var');
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyPath = path.join(tmp, 'app.pem');
  fs.writeFileSync(keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  fake = await startFakeGitHub({ appId: APP_ID, publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }),
    gitRoot: path.join(tmp, 'git') });
  const bare = fake.createGitRepo(REPO, { files: { 'src/hot.c': HOT, 'Makefile': 'test:\n\ttrue\n' } });
  base = git(['--git-dir', bare, 'rev-parse', 'main']);
  const work = path.join(tmp, 'work');
  git(['clone', '-q', bare, work]);
  fs.writeFileSync(path.join(work, 'src/hot.c'), FAST);
  git(['-C', work, 'add', '-A']);
  const diff = git(['-C', work, 'diff', '--cached']) + '\n';
  fake.addUser('alice', { repositories: [REPO] });
  fake.addUser('bob', { repositories: [] });
  fake.setPermission(REPO, 'alice', 'write');
  fs.mkdirSync(dataDir, { recursive: true });
  srv = await startServer({
    dataDir,
    env: { APP_ID, PRIVATE_KEY_PATH: keyPath, GITHUB_API_URL: fake.url, GITHUB_WEB_URL: fake.url,
      GITHUB_CLIENT_ID: 'Iv1.fakeclientid', GITHUB_CLIENT_SECRET: 'fake-client-secret', REDELIVERY_INTERVAL_SECONDS: 0 },
  });
  seed(diff);
  browser = await puppeteer.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  alice = await newUser();
});

after(async () => {
  if (browser) await browser.close();
  if (srv) {
    const r = await srv.stop();
    assert.equal(srv.sanitizerReport(), null, r.stderr);
  }
  if (fake) await fake.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

// ---- tests --------------------------------------------------------------------------

test('signed out, the dashboard asks to sign in; signing in through GitHub lists the repository', { skip: noBrowser }, async () => {
  const { page } = alice;
  await page.goto(origin() + '/ui/', { waitUntil: 'networkidle0' });
  assert.match(await page.$eval('main', (e) => e.textContent), /Sign in with GitHub to see the repositories/);
  // a browser on perfbot's machine sees the runs made there
  assert.deepEqual(await page.$$eval('table.runs tbody tr', (trs) => trs.map((tr) => [tr.cells[0].textContent, tr.cells[3].textContent])),
    [[`#${LOCAL_RUN}`, '/home/dev/project']]);
  await shot(page, 'signed-out');
  await signIn(page, 'alice');
  assert.equal(new URL(page.url()).pathname, '/ui/');
  const rows = await page.$$eval('table.repos tbody tr', (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent.trim())));
  assert.equal(rows.length, 1);
  assert.equal(await page.$eval('a.repo', (a) => a.textContent), REPO);
  assert.match(rows[0][2], new RegExp(`^${sha(COMMITS).slice(0, 7)} `), 'its last measurement');
  assert.equal(rows[0][3], '1', 'one open proposal');
  await shot(page, 'repositories');
  noErrors(page);
});

test('a repository: one chart per benchmark with a point per commit, marks, the commit on hover, links to runs', { skip: noBrowser }, async () => {
  const { page } = alice;
  await Promise.all([page.waitForNavigation({ waitUntil: 'networkidle0' }), page.click(`a.repo`)]);
  assert.equal(new URL(page.url()).pathname, `/ui/repos/${REPO}`);
  await page.waitForSelector('figure.chart-box svg');
  const charts = await page.$$eval('figure.chart-box', (figs) => figs.map((f) => ({
    name: f.querySelector('.bench').textContent,
    points: f.querySelectorAll('svg circle.pt').length,
    regressions: [...f.querySelectorAll('svg circle.pt.reg')].map((c) => Number(c.dataset.i)),
    improvements: [...f.querySelectorAll('svg circle.pt.imp')].map((c) => Number(c.dataset.i)),
    links: f.querySelectorAll('svg a[href^="/ui/runs/"]').length,
  })));
  const by = Object.fromEntries(charts.map((c) => [c.name, c]));
  assert.deepEqual(Object.keys(by).sort(), ['parse', 'render', 'sort']);
  assert.equal(by.parse.points, COMMITS, '200 points: one per measured commit');
  assert.equal(by.parse.links, COMMITS, 'each point links to its run');
  assert.equal(by.render.points, COMMITS - 1, 'no point where the commit has no value');
  assert.deepEqual(by.parse.regressions, [119], 'the 8 % slowdown at commit 120');
  assert.deepEqual(by.sort.improvements, [59], 'the 30 % speed-up at commit 60');
  assert.deepEqual(by.render.regressions.concat(by.render.improvements), []);

  // the pages' own files came compressed (a slow link carries a third of their bytes)
  const files = await page.evaluate(() => performance.getEntriesByType('resource')
    .filter((r) => /\/ui\/[a-z]+\.(js|css)\?v=/.test(r.name) && r.decodedBodySize > 1024)
    .map((r) => [r.name, r.encodedBodySize, r.decodedBodySize]));
  assert.ok(files.length >= 4, JSON.stringify(files));
  for (const [name, encoded, decoded] of files) assert.ok(encoded < decoded * 0.6, `${name}: ${encoded} of ${decoded} bytes`);

  // the benchmark table: latest value and the change over the last 10 / 100 commits
  const table = await page.$$eval('table.benchmarks tbody tr', (trs) => trs.map((tr) => [...tr.cells].map((c) => [c.textContent.trim(), c.className])));
  const parse = table.find((r) => r[0][0] === 'parse');
  assert.ok(parse, 'parse in the table');
  assert.match(parse[1][0], /^1,0[78]\d,\d{3}$/);
  assert.match(parse[3][0], /^\+[78]\.\d\d %$/);
  assert.match(parse[3][1], /worse/);

  // hover: the commit, its author and the value
  const point = await page.$('figure.chart-box:first-of-type svg circle.pt[data-i="150"]');
  const box = await point.boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.waitForSelector('#tip:not([hidden])');
  const tipText = await page.$eval('#tip', (e) => e.innerText);
  assert.match(tipText, new RegExp(sha(151).slice(0, 7)));
  assert.match(tipText, /commit 151: tune things/);
  assert.match(tipText, /brian|ada|grace/);
  assert.match(tipText, /[\d,]+ estimated cycles/);
  await shot(page, 'repository');
  await shot(page, 'repository-top', { fullPage: false });

  // the keyboard reaches the points too
  await page.mouse.move(1, 1);
  await page.$eval('figure.chart-box:first-of-type svg a:has(circle.pt[data-i="10"])', (a) => a.focus());
  await page.waitForFunction((s) => !document.getElementById('tip').hidden && document.getElementById('tip').innerText.includes(s),
    {}, sha(11).slice(0, 7));

  // a point is a link to its run
  assert.equal(await page.$eval('figure.chart-box:first-of-type svg a:has(circle.pt[data-i="150"])', (a) => a.getAttribute('href')), '/ui/runs/151');

  // ... and that run's page: a push's bench run (no timings, no diff, no agent)
  await Promise.all([page.waitForNavigation({ waitUntil: 'networkidle0' }),
    page.$eval('figure.chart-box:first-of-type svg a:has(circle.pt[data-i="150"])', (a) => a.dispatchEvent(new MouseEvent('click', { bubbles: true, cancelable: true })))]);
  assert.equal(new URL(page.url()).pathname, '/ui/runs/151');
  await page.waitForSelector('#run-state');
  assert.equal(await page.$eval('main h1', (e) => e.firstChild.textContent.trim()), 'Run 151');
  assert.equal(await page.$eval('#run-state', (e) => e.textContent), 'done');
  assert.equal(await page.$('#run-approve'), null);
  assert.deepEqual(await page.$$eval('table.measurements tbody tr', (trs) => trs.map((tr) => tr.cells[0].textContent)).then((n) => n.sort()),
    ['parse', 'render', 'sort'], 'its measurements, each a link to its profile');
  await shot(page, 'bench-run');
  await page.goBack({ waitUntil: 'networkidle0' });
  await page.waitForSelector('figure.chart-box svg');

  // the other metric
  // choosing in a list shows it at once
  await Promise.all([page.waitForNavigation({ waitUntil: 'networkidle0' }), page.select('select[name="metric"]', 'instructions')]);
  assert.match(page.url(), /metric=instructions/);
  assert.match(await page.$eval('main', (e) => e.textContent), /Latest \(instructions\)/);
  assert.equal(await page.$$eval('figure.chart-box:first-of-type svg circle.pt', (c) => c.length), COMMITS);
  noErrors(page);
});

test('a POST without the CSRF token is refused with 403', { skip: noBrowser }, async () => {
  const { page } = alice;
  const statuses = await page.evaluate(async (id) => {
    const out = [];
    for (const headers of [{}, { 'X-CSRF-Token': 'f'.repeat(64) }]) {
      const r = await fetch(`/api/v1/runs/${id}/cancel`, { method: 'POST', headers });
      out.push(r.status);
    }
    return out;
  }, PROPOSAL_RUN);
  assert.deepEqual(statuses, [403, 403]);
});

test('a run: state, timings, before and after, the diff, the log, the tool calls; approving opens the pull request', { skip: noBrowser }, async () => {
  const { page } = alice;
  await page.goto(`${origin()}/ui/runs/${PROPOSAL_RUN}`, { waitUntil: 'networkidle0' });
  await page.waitForSelector('#run-state');
  assert.equal(await page.$eval('#run-state', (e) => e.textContent), 'proposal');
  const text = await page.$eval('main', (e) => e.innerText);
  assert.match(text, /Total\s+8\.7 s/);
  assert.deepEqual(await page.$$eval('table.comparison tbody tr', (trs) => trs.map((tr) => [...tr.cells].slice(0, 4).map((c) => c.textContent))),
    [['parse', '1,000,000', '770,000', '−23.00 %']]);
  assert.deepEqual(await page.$$eval('pre.diff span.add', (s) => s.map((x) => x.textContent.trim())), ['+\treturn n * (n - 1) / 2;']);
  assert.ok((await page.$$('pre.diff span.del')).length >= 4, 'the removed loop in red');
  assert.match(await page.$eval('pre.log', (e) => e.textContent), /tests ok/);
  const calls = await page.$$eval('svg.timeline g.call', (gs) => gs.map((g) => [g.querySelector('text').textContent, g.classList.contains('failed')]));
  assert.deepEqual(calls, [['read_file', false], ['run_benchmarks', false], ['exec', true]]);
  assert.match(text, /command exited with status 2/);
  // a managed run's usage and cost
  assert.match(text, /input tokens\s+123,456/);
  assert.match(text, /Cost at list prices\s+\$0\.4213/);
  const allowed = await page.evaluate(async (id) => (await (await fetch(`/api/v1/runs/${id}`)).json()), PROPOSAL_RUN);
  assert.equal(allowed.can_approve, true);
  assert.equal(!!(await page.$('#run-cancel')), allowed.can_cancel, 'the cancel button where the server allows it');
  await shot(page, 'run');

  await page.click('#run-approve');
  await page.waitForFunction((id) => /Approved perfbot run (\d+)/.exec(document.querySelector('.actions .status')?.textContent || '')?.[1] === String(id),
    { timeout: 10000 * SLOW }, PROPOSAL_RUN);
  const pull = await waitFor(() => fake.state.pulls.find((p) => p.headRef === `perfbot/opt-${PROPOSAL_RUN}`),
    { timeoutMs: 30000 * SLOW, what: 'the pull request in the fake GitHub' });
  assert.equal(pull.base, 'main');
  await page.waitForSelector('#pull-link', { timeout: 30000 * SLOW });
  assert.equal(await page.$eval('#pull-link', (a) => a.textContent), `#${pull.number}`);
  assert.match(await page.$eval('#pull-link', (a) => a.href), new RegExp(`^https?://.*/${REPO}/pull/${pull.number}$`));
  assert.equal(await page.$('#run-approve'), null, 'approved once: the button is gone');
  await shot(page, 'run-approved');
  noErrors(page);
});

test('a profile: the function table and the flame graph; base against head as a differential flame graph', { skip: noBrowser }, async () => {
  const { page } = alice;
  await page.goto(`${origin()}/ui/runs/${PROPOSAL_RUN}`, { waitUntil: 'networkidle0' });
  await Promise.all([page.waitForNavigation({ waitUntil: 'networkidle0' }), page.click('table.comparison a[title="base profile"]')]);
  assert.match(new URL(page.url()).pathname, /^\/ui\/measurements\/\d+$/);
  await page.waitForSelector('.flame svg g.frame');
  const fns = await page.$$eval('table.functions tbody tr', (trs) => trs.map((tr) => [tr.cells[0].textContent, tr.cells[2].textContent]));
  assert.deepEqual(fns, [['hot', '700'], ['strtol', '120']]);
  const frames = await page.$$eval('.flame svg g.frame', (gs) => gs.map((g) => g.querySelector('text')?.textContent));
  assert.ok(frames.includes('hot') && frames.includes('strtol'), frames.join(','));
  await shot(page, 'profile');

  await page.goto(`${origin()}/ui/runs/${PROPOSAL_RUN}/flame?benchmark=parse`, { waitUntil: 'networkidle0' });
  await page.waitForSelector('.flame svg g.frame');
  // hot() costs less in head: drawn blue; strtol unchanged: grey
  const fills = await page.$$eval('.flame svg g.frame', (gs) => Object.fromEntries(gs.map((g) => [g.querySelector('text')?.textContent, g.querySelector('rect').getAttribute('fill')])));
  assert.match(fills.hot, /^hsl\(215,/);
  assert.equal(fills.strtol, 'hsl(0, 0%, 88%)');
  assert.deepEqual(await page.$$eval('table.list tbody tr', (trs) => trs.map((tr) => tr.cells[0].textContent)), ['hot']);
  await shot(page, 'flame-diff');
  noErrors(page);
});

test('a user who cannot read the repository sees "Not found" for the same pages', { skip: noBrowser }, async () => {
  const bob = await newUser();
  const { page } = bob;
  await signIn(page, 'bob');
  assert.match(await page.$eval('main', (e) => e.textContent), /None of the App's repositories/);
  for (const p of [`/ui/repos/${REPO}`, `/ui/runs/${PROPOSAL_RUN}`, `/ui/runs/${PROPOSAL_RUN}/flame?benchmark=parse`, '/ui/runs/1']) {
    await page.goto(origin() + p, { waitUntil: 'networkidle0' });
    await page.waitForSelector('main h1');
    assert.equal(await page.$eval('main h1', (e) => e.textContent), 'Not found', p);
  }
  await shot(page, 'not-found');
  const statuses = await page.evaluate(async (urls) => Promise.all(urls.map((u) => fetch(u).then((r) => r.status))),
    [`/api/v1/repositories/${REPO}/series`, `/api/v1/runs/${PROPOSAL_RUN}`, '/api/v1/runs/1']);
  assert.deepEqual(statuses, [404, 404, 404]);
  noErrors(page);
  await bob.context.close();
});

test('signing out ends the session', { skip: noBrowser }, async () => {
  const { page } = alice;
  await page.goto(origin() + '/ui/', { waitUntil: 'networkidle0' });
  await Promise.all([page.waitForNavigation({ waitUntil: 'networkidle0' }), page.click('#sign-out')]);
  await page.waitForSelector('#sign-in');
  assert.match(await page.$eval('main', (e) => e.textContent), /Sign in with GitHub to see the repositories/);
  // the session is gone, not only the page's view of it
  assert.equal(await page.evaluate(async (r) => (await fetch(`/api/v1/repositories/${r}/series`)).status, REPO), 401);
  noErrors(page);
});
