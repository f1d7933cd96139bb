// Integration: a replica that dies in the middle of a managed session.  The
// real `perfbot serve` (PERFBOT_AGENT=managed, against the fake GitHub and
// the fake Managed Agents API) starts an agent run from a `/perfbot
// optimize` comment; once the session's first tool use is answered the
// server is killed with SIGKILL (no drain, no stop, no heartbeat any more).
// The next replica on the same store claims the run's job again: the run
// must end failed saying the replica serving it stopped, its session
// interrupted and archived, and no second session started for it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { SLOW, cli, dataRepoFiles, sqlite, startServer, tmpDir, waitFor, startFakeGitHubApp } from './lib/perfbot.js';

const require = createRequire(import.meta.url);
const { startFakeAnthropic } = require('../fake-anthropic/server.js');

const APP_ID = 4546;
const SECRET = 'managed-replica-secret';
const REPO = 'octo-org/replica';
const API_KEY = 'sk-ant-mrep-api-5d2f0a';
const ENV_KEY = 'envkey-mrep-81b1c4';
const RUN_MS = 120000 * SLOW;

let tmp, gh, anthropic, srv, dataDir, keyPath;
let nextComment = 7000;

const optrepoFiles = (extra = {}) => dataRepoFiles('optrepo', extra);

const managedEnv = () => ({
  ANTHROPIC_API_KEY: API_KEY, ANTHROPIC_BASE_URL: anthropic.url, PERFBOT_MANAGED_ENVIRONMENT_ID: anthropic.environmentId,
  PERFBOT_MANAGED_ENVIRONMENT_KEY: ENV_KEY, PERFBOT_MANAGED_MODEL: 'claude-opus-4-5',
});

const serve = () => startServer({
  dataDir, secret: SECRET,
  env: {
    APP_ID, PRIVATE_KEY_PATH: keyPath, GITHUB_API_URL: gh.url, WORKERS: 2, REDELIVERY_INTERVAL_SECONDS: 0,
    PERFBOT_AGENT: 'managed', LOG_LEVEL: 'debug', ...managedEnv(),
  },
});

async function comment(body, issue) {
  const payload = {
    action: 'created',
    issue: { number: issue, title: 'Make it faster', state: 'open', user: { login: 'mona', type: 'User' } },
    comment: { id: nextComment++, body, user: { login: 'mona', type: 'User' } },
    repository: { id: 79, name: 'replica', full_name: REPO, owner: { login: 'octo-org', type: 'Organization' },
      private: true, default_branch: 'main', clone_url: gh.gitUrl(REPO) },
    installation: { id: 1 }, sender: { login: 'mona', type: 'User' },
  };
  const file = path.join(tmp, `comment-${crypto.randomUUID()}.json`);
  fs.writeFileSync(file, JSON.stringify(payload));
  const r = await cli(['receive', '-e', 'issue_comment', '-p', file, '--url', srv.url, '--secret', SECRET]);
  assert.equal(r.code, 0, r.stderr);
}

const commentsOn = (issue) => gh.state.comments.filter((c) => c.issue === issue && c.repository === REPO);

async function run(id) {
  const [r] = await sqlite(dataDir, `SELECT id, state, reason, data FROM runs WHERE id=${id}`);
  return r ? { ...r, data: JSON.parse(r.data || '{}') } : null;
}

before(async () => {
  tmp = tmpDir('perfbot-managed-replica-');
  dataDir = path.join(tmp, 'var');
  fs.mkdirSync(dataDir);
  ({ fake: gh, keyPath } = await startFakeGitHubApp(tmp, APP_ID));
  const bare = gh.createGitRepo(REPO, { files: optrepoFiles(), branch: 'main' });
  execFileSync('git', ['-C', bare, 'rev-parse', 'main']);
  gh.setPermission(REPO, 'mona', 'write');
  anthropic = await startFakeAnthropic({ apiKey: API_KEY, environmentKey: ENV_KEY, port: 0, leaseTtlSeconds: 6 });
  const setup = await cli(['managed', 'setup', '--json'], {
    env: { DATA_DIR: path.join(tmp, 'setup-var'), ...managedEnv() }, cwd: tmp,
  });
  assert.equal(setup.code, 0, setup.stderr);
  srv = await serve();
});

after(async () => {
  const stopped = srv ? await srv.stop() : null;
  if (anthropic) await anthropic.close();
  if (gh) await gh.close();
  if (tmp && !process.env.KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
  if (stopped) {
    assert.equal(srv.sanitizerReport(), null, 'sanitizer report in perfbot serve');
    for (const k of [API_KEY, ENV_KEY]) assert.ok(!stopped.stderr.includes(k), 'a key in the logs');
  }
});

test('a replica killed mid-session: the next one ends the run failed and archives the session, no second session', async () => {
  await comment('/perfbot optimize', 1);
  await gh.waitFor(() => commentsOn(1).length > 0, 20000 * SLOW);
  const m = /Started perfbot run (\d+)/.exec(commentsOn(1)[0].body);
  assert.ok(m, commentsOn(1)[0].body);
  const id = Number(m[1]);
  anthropic.scriptFor({ metadata: { run: String(id) } }, [
    { tool: 'read', input: { file_path: '/workspace/src/primes.c' } },
    { wait: 600000 },
  ]);
  const sessions = () => anthropic.sessions().filter((s) => s.obj.metadata.run === String(id));
  await waitFor(() => {
    const [s] = sessions();
    return s && anthropic.toolUses(s.id).some((u) => u.results.length > 0);
  }, { timeoutMs: RUN_MS, what: 'the first tool result' });
  assert.equal((await run(id)).state, 'running');

  const killed = await srv.kill();
  assert.equal(killed.signal, 'SIGKILL');
  srv = await serve();

  const r = await waitFor(async () => {
    const x = await run(id);
    return x && x.state !== 'running' && x.data.reported ? x : null;
  }, { timeoutMs: RUN_MS, everyMs: 200, what: `run ${id} to end and be reported` });
  assert.equal(r.state, 'failed');
  assert.match(r.reason, /^the replica serving the run stopped/);
  assert.equal(r.data.managed.end, 'replica_stopped');
  const all = sessions();
  assert.equal(all.length, 1, 'no second session for the run');
  const [s] = all;
  assert.equal(r.data.managed.session_id, s.id);
  assert.ok(s.userEvents.some((e) => e.type === 'user.interrupt'), 'the fake saw a user.interrupt');
  assert.ok(s.archived, 'the session is archived');
  // the one tool use answered before the kill, once; nothing half-answered after
  for (const u of anthropic.toolUses(s.id)) assert.ok(u.results.length <= 1, `${u.name} answered at most once`);
  assert.deepEqual(anthropic.violations.filter((v) => v.session === s.id), []);
  // the thread hears why
  await gh.waitFor(() => commentsOn(1).some((c) => /replica serving the run stopped/.test(c.body)), 20000 * SLOW);
  assert.deepEqual(await sqlite(dataDir, `SELECT run_id FROM proposals WHERE run_id=${id}`), []);
});
