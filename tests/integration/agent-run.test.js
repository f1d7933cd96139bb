// Integration: agent runs end to end.  The real `perfbot serve` (App
// credentials, GITHUB_API_URL at the fake GitHub) takes `/perfbot` comments
// sent with `perfbot receive`, fetches tests/data/optrepo over real smart
// HTTP, measures it in the real bwrap sandbox under callgrind, and starts the
// scripted agent (tests/agent/scripted-agent.mjs, the official MCP SDK
// client) as PERFBOT_AGENT_COMMAND against its own /mcp endpoint.  Each test
// picks the agent's scenario by writing the mode file the command reads.
// Proposals are checked against `perfbot bench --json` on the changed tree.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { ROOT, SCRIPTED_AGENT, processesRunning, SLOW, cli, request, sleep, sqlite, startServer, tmpDir, waitFor, dataRepoFiles, receiveEvent, startFakeGitHubApp } from './lib/perfbot.js';

const APP_ID = 4343;
const SECRET = 'agent-run-secret';
const REPO = 'octo-org/opt';
const BUDGET_REPO = 'octo-org/opt-budget';
const RUN_MS = 90000 * SLOW;
const AGENT = SCRIPTED_AGENT;

let tmp, shared, fake, srv, dataDir, modeFile, bare, baseSha;
let nextComment = 1000;

const optrepoFiles = (extra = {}) => dataRepoFiles('optrepo', extra);

function setMode(mode) {
  fs.writeFileSync(modeFile, mode);
}

const receive = (event, payload) => receiveEvent({ dir: tmp, url: srv.url, secret: SECRET }, event, payload);

function repository(full) {
  const [owner, name] = full.split('/');
  return { id: 77, name, full_name: full, owner: { login: owner, type: 'Organization' }, private: true,
    default_branch: 'main', clone_url: fake.gitUrl(full) };
}

// Posts `/perfbot ...` as `user` on issue `issue`; returns the comment id.
async function comment(body, { user = 'mona', issue = 1, repo = REPO } = {}) {
  const id = nextComment++;
  await receive('issue_comment', {
    action: 'created',
    issue: { number: issue, title: 'Make it faster', state: 'open', user: { login: 'mona', type: 'User' } },
    comment: { id, body, user: { login: user, type: 'User' } },
    repository: repository(repo),
    installation: { id: 1 },
    sender: { login: user, type: 'User' },
  });
  return id;
}

function commentsOn(issue, repo = REPO) {
  return fake.state.comments.filter((c) => c.issue === issue && c.repository === repo);
}

async function replyAfter(issue, count, repo = REPO) {
  await fake.waitFor(() => commentsOn(issue, repo).length > count, 20000 * SLOW);
  return commentsOn(issue, repo)[count].body;
}

async function run(id) {
  const [r] = await sqlite(dataDir, `SELECT id, state, reason, branch, trigger, data FROM runs WHERE id=${id}`);
  return r ? { ...r, data: JSON.parse(r.data || '{}') } : null;
}

const ENDED = ['proposal', 'no_improvement', 'failed', 'cancelled'];

// Waits for the run's end state and for its outcome to be out on GitHub (the
// state is recorded before the check run and the comment are published).
async function ended(id) {
  return waitFor(async () => {
    const r = await run(id);
    return r && ENDED.includes(r.state) && r.data.reported ? r : null;
  }, { timeoutMs: RUN_MS, everyMs: 200, what: `run ${id} to end and be reported` });
}

// Starts an optimize run from an issue comment; returns {id, reply}.
async function optimize(mode, { issue, repo = REPO, args = '' } = {}) {
  setMode(mode);
  const before = commentsOn(issue, repo).length;
  await comment(`/perfbot optimize${args}`, { issue, repo });
  const reply = await replyAfter(issue, before, repo);
  const m = /Started perfbot run (\d+)/.exec(reply);
  assert.ok(m, `a reply links the run: ${reply}`);
  return { id: Number(m[1]), reply, comments: before + 1 };
}

function optimizeChecks(id) {
  return fake.state.checkRuns.filter((c) => c.name === 'perfbot optimize' && c.external_id === String(id));
}

// The scripted agent's JSON lines as perfbot kept them.
function agentCalls(r) {
  return (r.data.agent?.output || '').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l))
    .filter((c) => c.tool);
}

// Processes whose environment carries PERFBOT_RUN_ID=id and this server's
// endpoint (the agent's group; other test files run agents too).
function agentProcesses(id) {
  const out = [];
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    let env;
    try { env = fs.readFileSync(`/proc/${pid}/environ`, 'utf8'); } catch { continue; }
    const vars = env.split('\0');
    if (vars.includes(`PERFBOT_RUN_ID=${id}`) && vars.includes(`PERFBOT_MCP_URL=http://127.0.0.1:${srv.port}/mcp`)) {
      out.push({ pid: Number(pid), token: (vars.find((v) => v.startsWith('PERFBOT_RUN_TOKEN=')) || '').slice(18),
        url: (vars.find((v) => v.startsWith('PERFBOT_MCP_URL=')) || '').slice(16) });
    }
  }
  return out;
}

async function benchJson(dir) {
  const r = await cli(['bench', '--repo', dir, '--json'], { env: { DATA_DIR: path.join(tmp, 'cli-var'), LOG_LEVEL: 'error' },
    timeoutMs: RUN_MS });
  assert.equal(r.code, 0, `perfbot bench: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

before(async () => {
  tmp = tmpDir('perfbot-agent-run-');
  dataDir = path.join(tmp, 'var');
  fs.mkdirSync(dataDir);
  // the agent command sees the host read-only but has a /tmp of its own:
  // what it reads lives outside /tmp, readable by its uid
  shared = fs.mkdtempSync('/var/tmp/perfbot-agent-run-');
  fs.chmodSync(shared, 0o755);
  modeFile = path.join(shared, 'mode');
  setMode('good');
  const started = await startFakeGitHubApp(tmp, APP_ID);
  fake = started.fake;
  const keyPath = started.keyPath;
  bare = fake.createGitRepo(REPO, { files: optrepoFiles(), branch: 'main' });
  baseSha = execFileSync('git', ['-C', bare, 'rev-parse', 'main']).toString().trim();
  const yml = fs.readFileSync(path.join(ROOT, 'tests/data/optrepo/.github/perfbot.yml'), 'utf8')
    .replace(/max_benchmark_runs: \d+/, 'max_benchmark_runs: 1');
  fake.createGitRepo(BUDGET_REPO, { files: optrepoFiles({ '.github/perfbot.yml': yml }), branch: 'main' });
  for (const r of [REPO, BUDGET_REPO]) {
    fake.setPermission(r, 'mona', 'write');
    fake.setPermission(r, 'rex', 'read');
  }
  srv = await startServer({
    dataDir, secret: SECRET,
    env: {
      APP_ID, PRIVATE_KEY_PATH: keyPath, GITHUB_API_URL: fake.url, WORKERS: 3, REDELIVERY_INTERVAL_SECONDS: 0,
      // a slow agent also leaves a child behind in a session of its own
      PERFBOT_AGENT_COMMAND: `export SCRIPTED_AGENT_MODE=$(cat '${modeFile}'); [ "$SCRIPTED_AGENT_MODE" != slow ] || `
        + `setsid sleep 3000.7 </dev/null >/dev/null 2>&1 & exec node '${AGENT}'`,
    },
  });
});

after(async () => {
  // close everything first, so that a failed check never leaves the fake running
  const stopped = srv ? await srv.stop() : null;
  if (fake) await fake.close();
  if (tmp && !process.env.KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
  if (shared) fs.rmSync(shared, { recursive: true, force: true });
  if (stopped) {
    assert.equal(srv.sanitizerReport(), null, 'sanitizer report in perfbot serve');
    assert.ok(stopped.code === 0 || stopped.signal === 'SIGTERM', `serve exit ${stopped.code} ${stopped.signal}`);
  }
});

test('/perfbot optimize → verified proposal with the numbers of a direct measurement → button → approval', async () => {
  const { id, reply } = await optimize('good', { issue: 1 });
  assert.match(reply, /`\/perfbot cancel \d+` stops it/);
  const cid = nextComment - 1;
  assert.ok(fake.state.reactions.some((x) => x.comment_id === cid && x.content === 'eyes'), '👀 on the command');

  const r = await ended(id);
  assert.equal(r.state, 'proposal', r.reason);
  assert.equal(r.trigger, 'comment');
  // the official SDK client called every tool through perfbot's own /mcp, and none failed
  const calls = agentCalls(r);
  const tools = ['exec', 'read_file', 'write_file', 'edit_file', 'list_files', 'grep', 'run_benchmarks',
    'get_profile', 'compare', 'get_diff', 'submit_result'];
  for (const t of tools) assert.ok(calls.some((c) => c.tool === t), `${t} was called`);
  assert.deepEqual(calls.filter((c) => c.isError).map((c) => `${c.tool}: ${c.text}`), []);
  assert.equal(r.data.commit, baseSha, 'the default branch tip was resolved');
  assert.equal(r.data.requested_by, 'mona');
  assert.ok(r.data.budgets.tool_calls >= 5 && r.data.budgets.benchmark_runs === 1, JSON.stringify(r.data.budgets));
  const [prop] = await sqlite(dataDir, `SELECT data FROM proposals WHERE run_id=${id}`);
  const p = JSON.parse(prop.data);
  assert.match(p.diff, /\+\tfor \(int d = 2; d \* d <= n; d\+\+\)/);
  assert.equal(p.base_sha, baseSha);
  assert.equal(p.base_branch, 'main');
  assert.equal(p.test_command, 'make test');
  assert.match(p.summary, /square root/);

  // the proposal's numbers are perfbot bench's on the base and on the changed tree
  const clone = path.join(tmp, 'clone');
  execFileSync('git', ['clone', '-q', bare, clone]);
  const base = await benchJson(clone);
  fs.writeFileSync(path.join(tmp, 'p.diff'), p.diff);
  execFileSync('git', ['-C', clone, 'apply', path.join(tmp, 'p.diff')]);
  execFileSync('git', ['-C', clone, '-c', 'user.name=t', '-c', 'user.email=t@e', 'commit', '-qam', 'proposal']);
  const head = await benchJson(clone);
  const row = p.benchmarks.find((b) => b.name === 'primes');
  assert.equal(row.base, base.benchmarks[0].estimated_cycles);
  assert.equal(row.head, head.benchmarks[0].estimated_cycles);
  assert.ok(row.head < row.base / 2, `primes got much faster: ${row.base} → ${row.head}`);
  assert.equal(row.verdict, 'improved');

  // the check run on the base commit, with the button
  const [cr] = optimizeChecks(id);
  assert.ok(cr, 'a "perfbot optimize" check run with external_id = the run id');
  assert.equal(cr.head_sha, baseSha);
  assert.equal(cr.status, 'completed');
  assert.equal(cr.conclusion, 'neutral');
  assert.equal(cr.actions.length, 1);
  assert.equal(cr.actions[0].label, 'Open pull request');
  assert.equal(cr.actions[0].identifier, 'open-pr');
  assert.ok(cr.actions[0].description.length <= 40);
  assert.match(cr.output.title, /^Verified: primes -\d+\.\d\d%$/);
  assert.ok(cr.output.summary.includes(`| \`primes\` | ${row.base} | ${row.head} |`), cr.output.summary);
  assert.match(cr.output.text, /```diff\n[\s\S]*d \* d <= n/);
  assert.equal(r.data.check_run_id, cr.id);

  // the comment in the thread: the same table and how to approve
  const outcome = commentsOn(1).at(-1).body;
  assert.ok(outcome.includes(`| \`primes\` | ${row.base} | ${row.head} |`), outcome);
  assert.ok(outcome.includes(`/perfbot apply ${id}`));

  // the button, pressed by a writer
  const prJobsBefore = (await sqlite(dataDir, `SELECT id FROM jobs WHERE kind='pr.open'`)).length;
  await receive('check_run', {
    action: 'requested_action',
    check_run: { id: cr.id, name: cr.name, head_sha: cr.head_sha, external_id: cr.external_id, status: 'completed' },
    requested_action: { identifier: 'open-pr' },
    repository: repository(REPO), installation: { id: 1 }, sender: { login: 'mona', type: 'User' },
  });
  const approval = await waitFor(async () => (await sqlite(dataDir, `SELECT user, via FROM approvals WHERE run_id=${id}`))[0],
    { what: 'the approval' });
  assert.deepEqual(approval, { user: 'mona', via: 'button' });
  const jobs = await sqlite(dataDir, `SELECT payload FROM jobs WHERE kind='pr.open'`);
  assert.equal(jobs.length, prJobsBefore + 1);
  assert.deepEqual(JSON.parse(jobs.at(-1).payload), { run_id: id });
  const approved = await run(id);
  assert.equal(approved.data.approved_by, 'mona');
  assert.equal(approved.data.approved_via, 'button');
  assert.equal(approved.data.thread_number, 1);
  const audit = await sqlite(dataDir, `SELECT actor, action, subject FROM audit WHERE action='approve'`);
  assert.deepEqual(audit.at(-1), { actor: 'mona', action: 'approve', subject: `run ${id}` });

  // the pull-request job comments in the thread too: let it end first
  await waitFor(async () => (await sqlite(dataDir, `SELECT state FROM jobs WHERE kind='pr.open'`))
    .every((j) => j.state !== 'queued' && j.state !== 'running'), { timeoutMs: RUN_MS, what: 'the pull-request job' });
  // a second approval is refused with a reply, and queues nothing
  const n = commentsOn(1).length;
  await comment(`/perfbot apply ${id}`, { issue: 1 });
  const again = await replyAfter(1, n);
  assert.equal(again, `Cannot apply run ${id}: run ${id} was already approved by @mona (button).`);
  assert.equal((await sqlite(dataDir, `SELECT id FROM jobs WHERE kind='pr.open'`)).length, prJobsBefore + 1);
});

test('a writer of another repository can neither apply nor cancel a run', async () => {
  // mona may write to BUDGET_REPO; the newest run of REPO is not hers to command from there
  const [{ id }] = await sqlite(dataDir, `SELECT id FROM runs WHERE kind='agent' AND repository='${REPO}' ORDER BY id DESC LIMIT 1`);
  const approvals = (await sqlite(dataDir, 'SELECT run_id FROM approvals')).length;
  const prJobs = (await sqlite(dataDir, `SELECT id FROM jobs WHERE kind='pr.open'`)).length;
  let n = commentsOn(9, BUDGET_REPO).length;
  await comment(`/perfbot apply ${id}`, { issue: 9, repo: BUDGET_REPO });
  assert.equal(await replyAfter(9, n, BUDGET_REPO), `Cannot apply run ${id}: run ${id} is not a run of ${BUDGET_REPO}.`);
  n = commentsOn(9, BUDGET_REPO).length;
  await comment(`/perfbot cancel ${id}`, { issue: 9, repo: BUDGET_REPO });
  assert.equal(await replyAfter(9, n, BUDGET_REPO), `Cannot cancel run ${id}: run ${id} is not a run of ${BUDGET_REPO}.`);
  assert.equal((await sqlite(dataDir, 'SELECT run_id FROM approvals')).length, approvals);
  assert.equal((await sqlite(dataDir, `SELECT id FROM jobs WHERE kind='pr.open'`)).length, prJobs);
  assert.notEqual((await run(id)).state, 'cancelled');
});

test('help, an unknown command with "did you mean", and comments by bots ignored', async () => {
  let n = commentsOn(11).length;
  await comment('/perfbot help', { issue: 11 });
  const help = await replyAfter(11, n);
  for (const c of ['help', 'bench', 'optimize [benchmark…]', 'apply <run>', 'cancel <run>'])
    assert.ok(help.includes(`/perfbot ${c}`), `help lists /perfbot ${c}`);
  n = commentsOn(11).length;
  await comment('/perfbot optimise', { issue: 11 });
  const unknown = await replyAfter(11, n);
  assert.match(unknown, /I don't know `\/perfbot optimise`\. Did you mean `\/perfbot optimize`\?/);
  assert.ok(unknown.includes('/perfbot cancel <run>'), 'the list follows');
  // a bot (perfbot itself included) is never answered, and nothing runs
  const runs = (await sqlite(dataDir, 'SELECT id FROM runs')).length;
  n = commentsOn(11).length;
  const reactions = fake.state.reactions.length;
  const ignored = async () => (await sqlite(dataDir, `SELECT id FROM jobs WHERE note='comment by a bot: ignored' AND state='done'`)).length;
  const ignoredBefore = await ignored();
  await comment('/perfbot optimize', { issue: 11, user: 'perfbot-test[bot]' });
  await waitFor(async () => (await ignored()) === ignoredBefore + 1, { what: 'the bot comment to be handled' });
  assert.equal(commentsOn(11).length, n);
  assert.equal(fake.state.reactions.length, reactions);
  assert.equal((await sqlite(dataDir, 'SELECT id FROM runs')).length, runs);
});

test('a commenter with read permission is refused politely and nothing runs', async () => {
  const runsBefore = (await sqlite(dataDir, 'SELECT id FROM runs')).length;
  const n = commentsOn(2).length;
  const cid = await comment('/perfbot optimize', { user: 'rex', issue: 2 });
  const reply = await replyAfter(2, n);
  assert.match(reply, /^Sorry @rex, only people with write access to octo-org\/opt can use perfbot commands\. Nothing was started\.$/);
  assert.equal((await sqlite(dataDir, 'SELECT id FROM runs')).length, runsBefore);
  assert.ok(!fake.state.reactions.some((x) => x.comment_id === cid), 'no 👀 for a refused command');
});

test('a diff too long for GitHub is shown cut at a line with a note; perfbot runs show prints all of it', async () => {
  const { id } = await optimize('long-diff', { issue: 13 });
  const r = await ended(id);
  assert.equal(r.state, 'proposal', r.reason);
  const [prop] = await sqlite(dataDir, `SELECT data FROM proposals WHERE run_id=${id}`);
  const diff = JSON.parse(prop.data).diff;
  assert.ok(diff.length > 65535, `longer than a check run may hold: ${diff.length} bytes`);
  const [cr] = optimizeChecks(id);
  assert.ok(cr.output.text.length <= 65535, `check run text within GitHub's cap: ${cr.output.text.length}`);
  const note = /\*The diff is truncated: (\d+) of (\d+) bytes shown\. `perfbot runs show (\d+)` prints all of it\.\*/;
  const m = note.exec(cr.output.text);
  assert.ok(m, cr.output.text.slice(-300));
  assert.equal(Number(m[2]), Buffer.byteLength(diff));
  assert.equal(Number(m[3]), id);
  const shown = /```diff\n([\s\S]*?)```/.exec(cr.output.text)[1];
  assert.equal(Buffer.byteLength(shown), Number(m[1]));
  assert.ok(diff.startsWith(shown) && shown.endsWith('\n'), 'the shown part is the diff cut at a line end');
  const c = commentsOn(13).at(-1).body;
  assert.ok(c.length <= 65536, `comment within GitHub's cap: ${c.length}`);
  assert.match(c, note);
  const show = await cli(['runs', 'show', String(id)], { env: { DATA_DIR: dataDir } });
  assert.equal(show.code, 0, show.stderr);
  assert.ok(show.stdout.includes('note 1499: trial division stops at the square root of n'), 'the whole diff');
});

test('an agent\'s summary is shown as text and its diff stays inside its fence, in the comment and the check run', async () => {
  const { id } = await optimize('markdown', { issue: 15 });
  const r = await ended(id);
  assert.equal(r.state, 'proposal', r.reason);
  const [cr] = optimizeChecks(id);
  const comment = commentsOn(15).at(-1).body;
  // outside the fenced diff (code, where HTML and links are shown as typed)
  const outside = (t) => t.replace(/^(`{3,})diff\n[\s\S]*?^\1$/m, '');
  for (const [where, text] of [['comment', outside(comment)], ['check run summary', cr.output.summary]]) {
    assert.ok(text.includes('Faster primes'), `${where}: ${text}`);
    assert.ok(!text.includes('@org/team'), `${where}: no mention of @org/team`);
    assert.ok(text.includes('@\u200borg/team'), where);
    assert.ok(!text.includes('<img'), `${where}: no image tag`);
    for (const m of text.matchAll(/\]\(/g)) assert.equal(text[m.index - 1], '\\', `${where}: no link or image`);
    assert.ok(!/^# Merge me/m.test(text), `${where}: no heading`);
  }
  // the diff's ``` lines cannot close the fence it is shown in
  for (const [where, text] of [['comment', comment], ['check run text', cr.output.text]]) {
    const m = /^(`{4,})diff\n([\s\S]*?)^\1$/m.exec(text);
    assert.ok(m, `${where}: a fence longer than the diff's backtick runs:\n${text}`);
    assert.ok(m[2].includes('+```\n+<img src=x onerror=alert(1)>\n+```'), where);
    assert.ok(m[2].includes('d * d <= n'), where);
  }
});

test('an agent whose change breaks the tests gets no proposal', async () => {
  const { id } = await optimize('break-tests', { issue: 3 });
  const r = await ended(id);
  assert.equal(r.state, 'failed');
  assert.equal(r.reason, 'the tests fail with the change');
  assert.deepEqual(await sqlite(dataDir, `SELECT run_id FROM proposals WHERE run_id=${id}`), []);
  const [cr] = optimizeChecks(id);
  assert.equal(cr.conclusion, 'failure');
  assert.deepEqual(cr.actions, []);
  assert.match(cr.output.title, /^No improvement verified/);
  const note = commentsOn(3).at(-1).body;
  assert.match(note, /ended without a verified improvement \(failed\): the tests fail with the change/);
  assert.doesNotMatch(note, /perfbot apply/);
  // approving it says so
  const n = commentsOn(3).length;
  await comment(`/perfbot apply ${id}`, { issue: 3 });
  assert.equal(await replyAfter(3, n), `Cannot apply run ${id}: run ${id} has no verified proposal (it is failed).`);
});

test('an agent that claims a gain it did not make ends no_improvement with the figures', async () => {
  const { id } = await optimize('fake-claim', { issue: 4 });
  const r = await ended(id);
  assert.equal(r.state, 'no_improvement');
  assert.equal(r.reason, 'no benchmark improved past its threshold');
  const [row] = r.data.outcome.benchmarks;
  assert.equal(row.name, 'primes');
  assert.equal(row.head, row.base, 'a comment changes no count');
  assert.equal(row.change_pct, 0);
  const [cr] = optimizeChecks(id);
  assert.equal(cr.conclusion, 'neutral');
  assert.deepEqual(cr.actions, []);
  assert.ok(cr.output.summary.includes(`| \`primes\` | ${row.base} | ${row.head} | 0.00% | unchanged |`), cr.output.summary);
});

test('writes outside the workspace or into .git are refused and give no proposal', async () => {
  const { id } = await optimize('escape', { issue: 5 });
  const r = await ended(id);
  assert.equal(r.state, 'failed');
  assert.match(r.reason, /^refused: \.github\/workflows\/perfbot-escape\.yml is a GitHub Actions workflow/);
  assert.equal(r.data.refused, true);
  const writes = agentCalls(r).filter((c) => c.tool === 'write_file');
  assert.ok(writes.find((c) => c.isError && /"\.\." is not allowed/.test(c.text)), JSON.stringify(writes));
  assert.ok(writes.find((c) => c.isError && /absolute paths are not allowed/.test(c.text)));
  assert.ok(writes.find((c) => c.isError && /\.git directory is off limits/.test(c.text)));
  assert.equal(fs.existsSync('/tmp/perfbot-escape.txt'), false);
  assert.equal(fs.existsSync('/etc/perfbot-escape'), false);
  assert.equal(fs.existsSync('/usr/perfbot-escape'), false);
  assert.deepEqual(await sqlite(dataDir, `SELECT run_id FROM proposals WHERE run_id=${id}`), []);
});

test('exec has no network', async () => {
  const { id } = await optimize('network', { issue: 6 });
  const r = await ended(id);
  assert.equal(r.state, 'no_improvement');
  assert.equal(r.reason, 'the agent submitted no change');
  const execs = agentCalls(r).filter((c) => c.tool === 'exec');
  assert.equal(execs.length, 2);
  assert.match(execs[0].text, /--- stdout ---\nlo\n--- stderr/, 'only the loopback interface');
  assert.match(execs[1].text, /DNS-FAIL/);
  assert.match(execs[1].text, /NET-FAIL/);
});

test('an exhausted budget ends the run with the reason', async () => {
  // max_benchmark_runs: 1 → 25 tool calls; the slow agent keeps calling
  const { id } = await optimize('slow', { issue: 7, repo: BUDGET_REPO });
  const r = await ended(id);
  assert.equal(r.state, 'no_improvement');
  assert.equal(r.reason, 'the tool call budget (25 calls) is exhausted before a change was submitted');
  assert.equal(r.data.budgets.tool_calls, 25);
  assert.equal(r.data.budgets.max_tool_calls, 25);
  assert.equal(r.data.budgets.max_benchmark_runs, 1);
  assert.match(commentsOn(7, BUDGET_REPO).at(-1).body, /tool call budget \(25 calls\) is exhausted/);
});

// The run's MCP configuration file as perfbot wrote it for the agent.
function mcpConfigFiles(id) {
  const work = path.join(dataDir, 'work');
  return fs.readdirSync(work).filter((d) => d.startsWith(`run-${id}-`))
    .map((d) => path.join(work, d, 'agent', 'mcp.json')).filter((f) => fs.existsSync(f));
}

test('/perfbot cancel ends a run within seconds while its agent greps with a catastrophic pattern', async () => {
  const { id } = await optimize('catastrophic-grep', { issue: 21 });
  await waitFor(() => { const p = agentProcesses(id); return p.length ? p : null; },
    { timeoutMs: RUN_MS, what: 'the agent to start' });
  // the search runs (in the sandbox: a grep process of its own)
  const searching = () => fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).some((pid) => {
    try { return fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('\\5\\4\\3\\2\\1x'); } catch { return false; }
  });
  await waitFor(() => searching(), { timeoutMs: 15000 * SLOW, what: 'the search to start' }).catch(() => {});
  await sleep(1000);
  const n = commentsOn(21).length;
  const t0 = Date.now();
  await comment(`/perfbot cancel ${id}`, { issue: 21 });
  assert.equal(await replyAfter(21, n), `Cancelled perfbot run ${id}.`);
  const r = await waitFor(async () => {
    const x = await run(id);
    return x && x.state === 'cancelled' && x.data.reported ? x : null;
  }, { timeoutMs: 10000, everyMs: 100, what: `run ${id} to end within 10 s of the cancel` });
  assert.equal(r.reason, 'cancelled by @mona');
  await waitFor(() => agentProcesses(id).length === 0 && !searching(),
    { timeoutMs: Math.max(1000, 10000 - (Date.now() - t0)), what: 'the agent and its search to be gone' });
  assert.ok(Date.now() - t0 < 10000, `the run ended ${Date.now() - t0} ms after the cancel`);
  // the repository's run slot is free again
  const m = commentsOn(22).length;
  await comment('/perfbot optimize', { issue: 22 });
  assert.doesNotMatch(await replyAfter(22, m), /already going on/);
  const next = /Started perfbot run (\d+)/.exec(commentsOn(22)[m].body);
  if (next) {
    await comment(`/perfbot cancel ${next[1]}`, { issue: 22 });
    await ended(Number(next[1]));
  }
});

test('/perfbot cancel kills the agent, revokes its token and cancels the run; a second request meanwhile is refused', async () => {
  const { id } = await optimize('slow', { issue: 8 });
  const procs = await waitFor(() => { const p = agentProcesses(id); return p.length ? p : null; },
    { timeoutMs: RUN_MS, what: 'the agent to start' });
  const { token, url } = procs[0];
  assert.match(token, /^[0-9a-f]{64}$/);
  await waitFor(() => processesRunning('sleep', '3000.7').length === 1, { what: 'the setsid child to start' });

  // the token reaches the agent in a file only its own user reads, never in an argv
  const [config] = mcpConfigFiles(id);
  assert.ok(config, 'the run has an MCP configuration file');
  assert.equal(fs.statSync(config).mode & 0o777, 0o600);
  assert.deepEqual(JSON.parse(fs.readFileSync(config, 'utf8')), { mcpServers: { perfbot: { type: 'http', url,
    headers: { Authorization: `Bearer ${token}` } } } });
  for (const { pid } of agentProcesses(id))
    assert.ok(!fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(token), 'no token in a command line');

  // one agent run per repository at a time
  let n = commentsOn(9).length;
  await comment('/perfbot optimize', { issue: 9 });
  assert.match(await replyAfter(9, n),
    new RegExp(`^An agent run is already going on for this repository: run ${id} is running for octo-org/opt \\(requested by @mona\\)`));

  n = commentsOn(8).length;
  await comment(`/perfbot cancel ${id}`, { issue: 8 });
  assert.equal(await replyAfter(8, n), `Cancelled perfbot run ${id}.`);
  await waitFor(() => agentProcesses(id).length === 0, { what: "the agent's processes to be gone" });
  await waitFor(() => processesRunning('sleep', '3000.7').length === 0,
    { timeoutMs: 10000 * SLOW, what: 'the setsid child to be killed with the agent' });
  const r = await ended(id);
  assert.deepEqual(mcpConfigFiles(id), [], 'the MCP configuration file is gone with the run');
  assert.equal(r.state, 'cancelled');
  assert.equal(r.reason, 'cancelled by @mona');
  assert.equal(r.data.cancelled_by, 'mona');

  // the token died with the run
  const port = Number(new URL(url).port);
  const res = await request(port, { method: 'POST', path: '/mcp',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } } }) });
  assert.equal(res.status, 401);

  // cancelling an ended run says so
  n = commentsOn(8).length;
  await comment(`/perfbot cancel ${id}`, { issue: 8 });
  assert.equal(await replyAfter(8, n), `Cannot cancel run ${id}: run ${id} has already ended (cancelled).`);
});

test('/perfbot optimize on a fork\'s pull request: approved, the proposal is built on main and nothing of the fork is pushed', async () => {
  // the fork's commit, unreviewed, with a workflow that would run on push with the repository's secrets;
  // GitHub keeps it in the base repository as refs/pull/21/head
  const work = path.join(tmp, 'fork-work');
  const g = (...a) => execFileSync('git', ['-C', work, '-c', 'user.name=Mallory', '-c', 'user.email=m@example.com', ...a])
    .toString().trim();
  execFileSync('git', ['clone', '-q', bare, work]);
  fs.mkdirSync(path.join(work, '.github', 'workflows'), { recursive: true });
  fs.writeFileSync(path.join(work, '.github', 'workflows', 'steal.yml'), 'on: push\njobs: {}\n');
  fs.writeFileSync(path.join(work, 'FORK.md'), 'from the fork\n');
  g('add', '-A');
  g('commit', '-qm', 'fork: unreviewed');
  const forkSha = g('rev-parse', 'HEAD');
  g('push', '-q', bare, 'HEAD:refs/pull/21/head');
  const mainTip = execFileSync('git', ['-C', bare, 'rev-parse', 'main']).toString().trim();
  fake.addPull(REPO, { number: 21, headRef: 'main', headSha: forkSha, headRepo: 'mallory/opt', base: 'main',
    authorAssociation: 'CONTRIBUTOR', user: 'mallory' });

  setMode('good');
  const prComment = async (body) => {
    const id = nextComment++;
    await receive('issue_comment', {
      action: 'created',
      issue: { number: 21, title: 'fork work', state: 'open', pull_request: { url: `${fake.url}/repos/${REPO}/pulls/21` },
        user: { login: 'mallory', type: 'User' } },
      comment: { id, body, user: { login: 'mona', type: 'User' } },
      repository: repository(REPO), installation: { id: 1 }, sender: { login: 'mona', type: 'User' },
    });
  };
  let n = commentsOn(21).length;
  await prComment('/perfbot optimize');
  const reply = await replyAfter(21, n);
  const m = /Started perfbot run (\d+)/.exec(reply);
  assert.ok(m, reply);
  assert.match(reply, /comes from a fork/);
  assert.match(reply, /never pushed/);
  const id = Number(m[1]);
  const r = await ended(id);
  assert.equal(r.state, 'proposal', r.reason);
  assert.equal(r.data.commit, forkSha, 'the agent worked on the fork\'s head');
  assert.equal(r.branch, 'main', 'proposed against the base branch');
  assert.equal(r.data.fork, true);

  n = commentsOn(21).length;
  await prComment(`/perfbot apply ${id}`);
  assert.match(await replyAfter(21, n), /Approved perfbot run/);
  const branch = `perfbot/opt-${id}`;
  await waitFor(async () => (await sqlite(dataDir, `SELECT state FROM jobs WHERE kind='pr.open'`))
    .every((j) => j.state !== 'queued' && j.state !== 'running') && fake.state.pulls.some((p) => p.headRef === branch),
  { timeoutMs: RUN_MS, what: 'the pull request of the fork\'s proposal' });

  // the pushed branch: one commit on main's tip; the fork's commit is in no ancestry but its own ref
  const bareGit = (...a) => execFileSync('git', ['-C', bare, ...a]).toString().trim();
  assert.equal(bareGit('rev-parse', `${branch}^`), mainTip);
  const ancestry = bareGit('rev-list', branch).split('\n');
  assert.ok(!ancestry.includes(forkSha), 'the fork\'s commit is not an ancestor of the pushed branch');
  assert.deepEqual(bareGit('for-each-ref', '--contains', forkSha, '--format=%(refname)').split('\n'), ['refs/pull/21/head']);
  assert.throws(() => bareGit('cat-file', '-e', `${branch}:.github/workflows/steal.yml`));
  assert.throws(() => bareGit('cat-file', '-e', `${branch}:FORK.md`));
  assert.match(bareGit('show', `${branch}:src/primes.c`), /d \* d <= n/);
  const pull = fake.state.pulls.find((p) => p.headRef === branch);
  assert.equal(pull.base, 'main');
  assert.match(pull.body, /none of the fork's commits/);
  const after = await run(id);
  assert.equal(after.data.pr_commit, bareGit('rev-parse', branch), 'the pushed commit is recorded');
});
