// `perfbot doctor` against the real binary, a running perfbot, the fake
// GitHub and this machine's bubblewrap and valgrind: each check's ok case
// and its failure case (a wrong key, a missing permission, a hook URL
// pointing elsewhere, failed deliveries, PUBLIC_URL not answering, bwrap
// missing from PATH, a full disk, a deep queue, a store from a newer perfbot).
//
// PUBLIC_URL is http://perfbot.example.com: GitHub could reach such a name,
// and this machine reaches it through an HTTP proxy (http_proxy) that
// forwards to the perfbot under test, as a proxied network would.
// PERFBOT_DOCTOR_FREE_BYTES, read only by doctor and only for tests, stands
// for a full disk.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { createRequire } from 'node:module';
import { startServer, cli, sqlite, tmpDir, WEBHOOK_PATH } from './lib/perfbot.js';

const require = createRequire(import.meta.url);
const { startFakeGitHub } = require('../fake-github/server.js');
const { startFakeAnthropic } = require('../fake-anthropic/server.js');

const APP_ID = 6161;
const PUBLIC = 'http://perfbot.example.com';
const keyPair = () => crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const { privateKey, publicKey } = keyPair();
const privatePem = privateKey.export({ type: 'pkcs1', format: 'pem' });
const publicPem = publicKey.export({ type: 'spki', format: 'pem' });
const GOOD_PERMISSIONS = { contents: 'write', pull_requests: 'write', checks: 'write', issues: 'write', metadata: 'read' };
const GOOD_EVENTS = ['check_run', 'check_suite', 'issue_comment', 'pull_request', 'push'];

let tmp, dataDir, keyPath, fake, srv, proxy, proxyUrl;

before(async () => {
  tmp = tmpDir('perfbot-doctor-');
  dataDir = path.join(tmp, 'var');
  fs.mkdirSync(dataDir, { mode: 0o700 });
  keyPath = path.join(tmp, 'app.pem');
  fs.writeFileSync(keyPath, privatePem, { mode: 0o600 });
  fake = await startFakeGitHub({ appId: APP_ID, publicKeyPem: publicPem, installations: [
    { id: 1, account: 'octo-org', repositories: ['octo-org/demo', 'octo-org/other'] },
    { id: 2, account: 'octo-user', repositories: ['octo-user/solo'] },
  ] });
  srv = await startServer({ dataDir, env: { APP_ID, PRIVATE_KEY_PATH: keyPath, GITHUB_API_URL: fake.url,
    PUBLIC_URL: PUBLIC, REDELIVERY_INTERVAL_SECONDS: 0 } });
  // the proxy this machine reaches PUBLIC_URL through: perfbot.example.com is the perfbot under test
  proxy = http.createServer((req, res) => {
    let u;
    try { u = new URL(req.url); } catch { u = null; }
    if (!u || u.hostname !== 'perfbot.example.com' || !srv) {
      res.writeHead(502);
      return res.end();
    }
    const up = http.request({ host: '127.0.0.1', port: srv.port, path: u.pathname + u.search, method: req.method },
      (r) => { res.writeHead(r.statusCode, r.headers); r.pipe(res); });
    up.on('error', () => { res.writeHead(502); res.end(); });
    req.pipe(up);
  });
  await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  proxyUrl = `http://127.0.0.1:${proxy.address().port}`;
});

after(async () => {
  if (srv) await srv.stop();
  if (proxy) await new Promise((resolve) => proxy.close(resolve));
  if (fake) await fake.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

function healthy() {
  fake.clearFaults();
  fake.appOptions({ permissions: GOOD_PERMISSIONS, events: GOOD_EVENTS });
  fake.hookConfig({ url: `${PUBLIC}${WEBHOOK_PATH}`, content_type: 'json', secret: true });
  fake.state.deliveries.length = 0;
}

function baseEnv(extra = {}) {
  return {
    APP_ID, PRIVATE_KEY_PATH: keyPath, WEBHOOK_SECRET: 'test-secret', GITHUB_API_URL: fake.url, PUBLIC_URL: PUBLIC,
    PERFBOT_AGENT_COMMAND: 'node /nonexistent/agent.mjs', SANDBOX_DISK_RESERVE: '64MiB', SANDBOX_DISK: '64MiB',
    http_proxy: proxyUrl, no_proxy: '127.0.0.1,localhost', LOG_LEVEL: 'error', ...extra,
  };
}

// Runs `perfbot doctor --json`: { code, list, by: {check: {status, detail, fix}} }.
async function doctor(env, { dir = dataDir, args = [] } = {}) {
  const r = await cli(['doctor', '--json', '--data-dir', dir, ...args], { env, timeoutMs: 120000 });
  assert.ok(r.stdout.trim().startsWith('['), `doctor --json printed: ${r.stdout}\n${r.stderr}`);
  const list = JSON.parse(r.stdout);
  for (const c of list) {
    assert.deepEqual(Object.keys(c), ['check', 'status', 'detail', 'fix']);
    assert.ok(['ok', 'warning', 'failed'].includes(c.status), c.status);
    if (c.status === 'failed') assert.ok(c.fix, `${c.check} failed without a fix`);
  }
  return { ...r, list, by: Object.fromEntries(list.map((c) => [c.check, c])) };
}

const ALL = ['config', 'data_dir', 'store', 'github.app', 'github.permissions', 'github.installations', 'webhook.config',
  'webhook.deliveries', 'public_url', 'sandbox.bwrap', 'sandbox.valgrind', 'sandbox.limits', 'agent', 'agent.managed',
  'disk', 'queue'];

test('a healthy installation: every check is ok and the exit status is 0', async () => {
  healthy();
  fake.addDelivery({ event: 'push', status_code: 202 });
  const r = await doctor(baseEnv({ PERFBOT_AGENT_COMMAND: 'node --version' }));
  assert.deepEqual(r.list.map((c) => c.check), ALL);
  for (const c of r.list) {
    if (c.check === 'sandbox.limits') continue; // depends on this machine's cgroups
    assert.equal(c.status, 'ok', `${c.check}: ${c.detail}`);
    assert.equal(c.fix, null);
  }
  assert.notEqual(r.by['sandbox.limits'].status, 'failed');
  assert.match(r.by['sandbox.limits'].detail, /cgroup|rlimits/);
  assert.equal(r.code, 0, r.stdout);
  assert.match(r.by.data_dir.detail, /mode 0700, writable/);
  assert.match(r.by.store.detail, /schema version \d+ \(current\)/);
  assert.match(r.by['github.app'].detail, /JWT is accepted: perfbot-test/);
  assert.match(r.by['github.installations'].detail, /octo-org \(installation 1\): 2 repositories/);
  assert.match(r.by['github.installations'].detail, /octo-user \(installation 2\): 1 repository/);
  assert.match(r.by['webhook.config'].detail, new RegExp(`delivers to ${PUBLIC}${WEBHOOK_PATH}`));
  assert.match(r.by['webhook.deliveries'].detail, /1 recent delivery, all succeeded/);
  assert.match(r.by.public_url.detail, /healthz answers 200/);
  assert.match(r.by['sandbox.valgrind'].detail, /counts \d+ instructions, twice alike/);
  assert.match(r.by.agent.detail, /node is on PATH and bubblewrap confines/);
  assert.match(r.by.queue.detail, /^0 queued/);

  // the text form: one line per check, its status first, the summary last
  const t = await cli(['doctor', '--data-dir', dataDir], { env: baseEnv({ PERFBOT_AGENT_COMMAND: 'node --version' }),
    timeoutMs: 120000 });
  assert.equal(t.code, 0, t.stdout + t.stderr);
  const lines = t.stdout.split('\n').filter(Boolean);
  for (const name of ALL)
    assert.ok(lines.some((l) => new RegExp(`^(ok|warning|failed) +${name.replace('.', '\\.')} `).test(l)), name);
  assert.match(lines[lines.length - 1], /^0 failed, \d+ warnings?, \d+ ok$/);
});

test('warnings: an older failed delivery, little free disk, a recent failed job, no PUBLIC_URL, a loopback PUBLIC_URL', async () => {
  healthy();
  fake.addDelivery({ event: 'push', status_code: 502 });
  fake.addDelivery({ event: 'push', status_code: 200 });
  const now = Date.now();
  await sqlite(dataDir, `INSERT INTO jobs(kind, payload, state, run_at_ms, created_ms, updated_ms, error)
    VALUES ('event.push', '{}', 'failed', ${now}, ${now}, ${now}, 'boom')`);
  try {
    let r = await doctor(baseEnv({ PUBLIC_URL: null, PERFBOT_AGENT_COMMAND: null,
      PERFBOT_DOCTOR_FREE_BYTES: String(3 * 2 ** 30), SANDBOX_DISK_RESERVE: '1GiB', SANDBOX_DISK: '10GiB' }));
    assert.equal(r.code, 0, r.stdout);
    assert.equal(r.by['webhook.deliveries'].status, 'warning');
    assert.match(r.by['webhook.deliveries'].detail, /1 of the last 2 deliveries failed; the last failure: status 502.*newer ones succeeded/);
    assert.equal(r.by.disk.status, 'warning');
    assert.match(r.by.disk.detail, /^3\.0 GiB free, under 11\.0 GiB/);
    assert.equal(r.by.queue.status, 'warning');
    assert.match(r.by.queue.detail, /1 failed in the last day/);
    assert.equal(r.by.public_url.status, 'warning');
    assert.match(r.by.public_url.detail, /PUBLIC_URL is not set/);
    assert.equal(r.by['webhook.config'].status, 'warning');
    assert.match(r.by['webhook.config'].detail, /PUBLIC_URL is not set, so it cannot be compared/);
    assert.equal(r.by.agent.status, 'warning');
    assert.match(r.by.agent.detail, /no agent command is configured/);

    // PUBLIC_URL answering, but on an address GitHub cannot reach; the App delivering there fails
    fake.hookConfig({ url: `http://127.0.0.1:${srv.port}${WEBHOOK_PATH}` });
    r = await doctor(baseEnv({ PUBLIC_URL: `http://127.0.0.1:${srv.port}/` }));
    assert.equal(r.by.public_url.status, 'warning');
    assert.match(r.by.public_url.detail, /answers, but 127\.0\.0\.1 is a loopback or private address/);
    assert.equal(r.by['webhook.config'].status, 'ok');
    r = await doctor(baseEnv({ PUBLIC_URL: null }));
    assert.equal(r.by['webhook.config'].status, 'failed');
    assert.match(r.by['webhook.config'].detail, /an address GitHub cannot reach/);
  } finally {
    await sqlite(dataDir, 'DELETE FROM jobs');
  }
});

test('a broken installation: each failure is named with its fix, exit status 1', async () => {
  // no perfbot runs meanwhile: its workers would take the queued jobs
  await srv.stop();
  srv = null;
  healthy();
  fake.appOptions({ permissions: { ...GOOD_PERMISSIONS, checks: 'read' }, events: GOOD_EVENTS.filter((e) => e !== 'check_suite') });
  fake.hookConfig({ url: 'https://old-host.example.org/hooks' });
  fake.failNext({ status: 403, path: '^/app/installations/2/access_tokens$', message: 'This installation has been suspended' });
  fake.addDelivery({ event: 'push', status_code: 202 });
  fake.addDelivery({ event: 'pull_request', status_code: 502 });
  fake.addDelivery({ event: 'issue_comment', status_code: 401 });
  // a deep queue, and a job failed for good an hour ago
  const now = Date.now();
  const values = Array.from({ length: 150 }, (_, i) =>
    `('event.push', '{}', 'queued', ${now - 3600000 - i}, ${now - 3600000}, ${now - 3600000})`).join(',');
  await sqlite(dataDir, `INSERT INTO jobs(kind, payload, state, run_at_ms, created_ms, updated_ms) VALUES ${values};
    INSERT INTO jobs(kind, payload, state, run_at_ms, created_ms, updated_ms, error)
    VALUES ('event.push', '{}', 'failed', ${now - 3600000}, ${now - 3600000}, ${now - 3600000}, 'boom');
    INSERT INTO schema_migrations(version, applied_ms) VALUES (99, ${now});`);
  fs.chmodSync(dataDir, 0o755);
  try {
    const r = await doctor(baseEnv({ PERFBOT_AGENT_COMMAND: 'no-such-agent --flag', PUBLIC_URL: 'http://127.0.0.1:1',
      PERFBOT_DOCTOR_FREE_BYTES: '1000', SANDBOX_DISK_RESERVE: '1GiB' }));
    assert.equal(r.code, 1);
    const { by } = r;
    assert.equal(by.data_dir.status, 'warning');
    assert.match(by.data_dir.detail, /mode 0755/);
    assert.match(by.data_dir.fix, /chmod 700/);
    assert.equal(by.store.status, 'failed');
    assert.match(by.store.detail, /schema version 99 is newer than this perfbot knows/);
    assert.equal(by['github.app'].status, 'ok');
    assert.equal(by['github.permissions'].status, 'failed');
    assert.match(by['github.permissions'].detail, /missing permissions: checks: write \(has read\)/);
    assert.match(by['github.permissions'].detail, /missing events: check_suite/);
    assert.equal(by['github.installations'].status, 'failed');
    assert.match(by['github.installations'].detail, /octo-org \(installation 1\): 2 repositories/);
    assert.match(by['github.installations'].detail, /octo-user \(installation 2\): no token or repositories: GitHub 403.*suspended/);
    assert.equal(by['webhook.config'].status, 'failed');
    assert.match(by['webhook.config'].detail, /delivers to https:\/\/old-host\.example\.org\/hooks, but perfbot is at http:\/\/127\.0\.0\.1:1\/api\/github\/webhooks/);
    assert.match(by['webhook.config'].fix, /set the App's webhook URL to http:\/\/127\.0\.0\.1:1\/api\/github\/webhooks/);
    assert.equal(by['webhook.deliveries'].status, 'failed');
    assert.match(by['webhook.deliveries'].detail, /2 of the last 3 deliveries failed; the last failure: status 401 \(issue_comment/);
    assert.match(by['webhook.deliveries'].fix, /WEBHOOK_SECRET/);
    assert.equal(by.public_url.status, 'failed');
    assert.match(by.public_url.detail, /GET http:\/\/127\.0\.0\.1:1\/healthz/);
    assert.equal(by.agent.status, 'failed');
    assert.match(by.agent.detail, /"no-such-agent" is not found on PATH/);
    assert.equal(by.disk.status, 'failed');
    assert.match(by.disk.detail, /under SANDBOX_DISK_RESERVE/);
    // the store did not pass, yet its queue is still read
    assert.equal(by.queue.status, 'warning');
    assert.match(by.queue.detail, /^deep queue: 150 queued, the oldest due job waiting 36\d\d s, 1 failed in the last day/);
  } finally {
    fs.chmodSync(dataDir, 0o700);
    await sqlite(dataDir, `DELETE FROM jobs; DELETE FROM schema_migrations WHERE version = 99;`);
  }
});

test('a wrong key: GitHub refuses the JWT and the GitHub checks are not run', async () => {
  healthy();
  const other = path.join(tmp, 'other.pem');
  fs.writeFileSync(other, keyPair().privateKey.export({ type: 'pkcs1', format: 'pem' }), { mode: 0o600 });
  const r = await doctor(baseEnv({ PRIVATE_KEY_PATH: other }));
  assert.equal(r.code, 1);
  assert.equal(r.by['github.app'].status, 'failed');
  assert.match(r.by['github.app'].detail, /GitHub 401 GET \/app/);
  assert.match(r.by['github.app'].fix, /private key/);
  for (const c of ['github.permissions', 'github.installations', 'webhook.config', 'webhook.deliveries']) {
    assert.equal(r.by[c].status, 'warning', c);
    assert.match(r.by[c].detail, /^not checked/);
  }
});

test('an App installed nowhere is a warning that says where to install it', async () => {
  const lonely = await startFakeGitHub({ appId: APP_ID, publicKeyPem: publicPem, installations: [] });
  try {
    lonely.hookConfig({ url: `${PUBLIC}${WEBHOOK_PATH}` });
    const r = await doctor(baseEnv({ GITHUB_API_URL: lonely.url }));
    assert.equal(r.by['github.installations'].status, 'warning');
    assert.match(r.by['github.installations'].detail, /not installed anywhere/);
    assert.match(r.by['github.installations'].fix, /\/apps\/perfbot-test\/installations\/new/);
  } finally {
    await lonely.close();
  }
});

test('bubblewrap missing from PATH: the sandbox and the agent command fail, valgrind is not checked', async () => {
  healthy();
  // every program of /usr/bin and /bin but bwrap
  const bin = path.join(tmp, 'bin-without-bwrap');
  fs.mkdirSync(bin, { recursive: true });
  for (const dir of ['/usr/bin', '/bin']) {
    for (const name of fs.readdirSync(dir)) {
      if (name === 'bwrap' || fs.existsSync(path.join(bin, name))) continue;
      fs.symlinkSync(path.join(dir, name), path.join(bin, name));
    }
  }
  const r = await doctor(baseEnv({ PATH: bin, PERFBOT_AGENT_COMMAND: 'node --version' }));
  assert.equal(r.code, 1);
  assert.equal(r.by['sandbox.bwrap'].status, 'failed');
  assert.match(r.by['sandbox.bwrap'].detail, /bwrap not found/);
  assert.match(r.by['sandbox.bwrap'].fix, /install bubblewrap/);
  assert.equal(r.by['sandbox.valgrind'].status, 'warning');
  assert.match(r.by['sandbox.valgrind'].detail, /^not checked/);
  assert.equal(r.by.agent.status, 'failed');
  assert.match(r.by.agent.detail, /bwrap not found/);
});

test('configuration: a value that does not load, or an App not registered yet', async () => {
  let r = await doctor(baseEnv({ PORT: 'many' }));
  assert.equal(r.code, 1);
  assert.deepEqual(r.list.map((c) => c.check), ['config']);
  assert.equal(r.by.config.status, 'failed');
  assert.match(r.by.config.detail, /PORT/);
  // the managed backend without its settings does not load: doctor names the first missing one
  r = await doctor(baseEnv({ PERFBOT_AGENT: 'managed' }));
  assert.equal(r.by.config.status, 'failed');
  assert.match(r.by.config.detail, /ANTHROPIC_API_KEY: required by the managed agent backend/);

  // the text form of the same
  const t = await cli(['doctor', '--data-dir', dataDir], { env: baseEnv({ PORT: 'many' }) });
  assert.equal(t.code, 1);
  assert.match(t.stdout, /^failed +config +does not load: PORT/m);
  assert.match(t.stdout, /^ +fix: correct the variable named/m);

  r = await doctor(baseEnv({ APP_ID: null, WEBHOOK_SECRET: null }));
  assert.equal(r.code, 1);
  assert.equal(r.by.config.status, 'failed');
  assert.match(r.by.config.detail, /APP_ID, WEBHOOK_SECRET are not set/);
  assert.match(r.by.config.fix, /setup page/);
  assert.equal(r.by['github.app'].status, 'failed');
});

test('DATA_DIR missing: DATA_DIR and the store fail, the queue is not checked, nothing is created', async () => {
  healthy();
  const missing = path.join(tmp, 'nowhere', 'var');
  const r = await doctor(baseEnv(), { dir: missing });
  assert.equal(r.code, 1);
  assert.equal(r.by.data_dir.status, 'failed');
  assert.match(r.by.data_dir.detail, /No such file or directory/);
  assert.equal(r.by.store.status, 'failed');
  assert.match(r.by.store.fix, /perfbot serve/);
  assert.equal(r.by.queue.status, 'warning');
  assert.match(r.by.queue.detail, /^not checked/);
  assert.equal(r.by.disk.status, 'ok'); // measured on the nearest folder that exists
  assert.ok(!fs.existsSync(missing), 'doctor created DATA_DIR');
});

test('the Managed Agents settings: a key accepted, a key refused, an environment that does not exist', async () => {
  const apiKey = 'sk-ant-doctor-5e0c';
  const anthropic = await startFakeAnthropic({ apiKey, environmentKey: 'envkey-doctor-1', port: 0 });
  try {
    const managed = (extra) => baseEnv({ ANTHROPIC_BASE_URL: anthropic.url, PERFBOT_MANAGED_MODEL: 'claude-opus-4-5',
      ...extra });
    // not configured: ok, and nothing asked of the service
    let r = await doctor(baseEnv());
    assert.equal(r.by['agent.managed'].status, 'ok');
    assert.match(r.by['agent.managed'].detail, /not configured/);
    assert.equal(anthropic.requests.length, 0);

    const made = await cli(['managed', 'setup', '--json'], { env: { DATA_DIR: tmpDir(), LOG_LEVEL: 'error',
      ANTHROPIC_API_KEY: apiKey, ANTHROPIC_BASE_URL: anthropic.url, PERFBOT_MANAGED_MODEL: 'claude-opus-4-5' } });
    assert.equal(made.code, 0, made.stderr);
    const { settings } = JSON.parse(made.stdout);

    r = await doctor(managed({ ANTHROPIC_API_KEY: apiKey, ...settings }));
    assert.equal(r.by['agent.managed'].status, 'ok', r.by['agent.managed'].detail);
    assert.match(r.by['agent.managed'].detail, /API key is accepted; the agent exists; the environment is self-hosted/);
    // the managed backend needs no agent command
    r = await doctor(managed({ ANTHROPIC_API_KEY: apiKey, ...settings, PERFBOT_AGENT: 'managed',
      PERFBOT_MANAGED_ENVIRONMENT_KEY: 'envkey-doctor-1', PERFBOT_AGENT_COMMAND: undefined }));
    assert.equal(r.by.config.status, 'ok', r.by.config.detail);
    assert.equal(r.by.agent.status, 'ok', r.by.agent.detail);
    assert.match(r.by.agent.detail, /PERFBOT_AGENT=managed/);

    r = await doctor(managed({ ANTHROPIC_API_KEY: 'sk-ant-wrong-77', ...settings }));
    assert.equal(r.by['agent.managed'].status, 'failed');
    assert.match(r.by['agent.managed'].detail, /API key \(ANTHROPIC_API_KEY\) was refused/);
    assert.match(r.by['agent.managed'].fix, /perfbot managed setup/);
    assert.doesNotMatch(r.stdout + r.stderr, /sk-ant-wrong-77/);
    assert.equal(r.code, 1);

    r = await doctor(managed({ ANTHROPIC_API_KEY: apiKey, PERFBOT_MANAGED_ENVIRONMENT_ID: 'env_nothere' }));
    assert.equal(r.by['agent.managed'].status, 'failed');
    assert.match(r.by['agent.managed'].detail, /PERFBOT_MANAGED_ENVIRONMENT_ID: no environment env_nothere/);
    assert.doesNotMatch(r.stdout + r.stderr, new RegExp(apiKey));
  } finally {
    await anthropic.close();
  }
});
