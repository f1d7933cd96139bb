// First-run setup and missed deliveries, through `perfbot serve` itself:
// the manifest flow from the setup page to a working App configuration, and
// the periodic redelivery of failed deliveries perfbot never stored.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { startServer, request, tmpDir, sign, deliveryId, SLOW, WEBHOOK_PATH } from './lib/perfbot.js';

const require = createRequire(import.meta.url);
const { startFakeGitHub } = require('../fake-github/server.js');

const APP_ID = 5151;
const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const privatePem = privateKey.export({ type: 'pkcs1', format: 'pem' });
const publicPem = publicKey.export({ type: 'spki', format: 'pem' });
const cleanups = [];
after(async () => { for (const c of cleanups.reverse()) await c(); });

function modeOf(file) {
  return fs.statSync(file).mode & 0o777;
}

test('setup mode: the setup page registers the App and perfbot starts with what GitHub returned', async () => {
  const fake = await startFakeGitHub({ appId: APP_ID, publicKeyPem: publicPem, privateKeyPem: privatePem });
  cleanups.push(() => fake.close());
  const dir = tmpDir();
  // no APP_ID, no key, no secret: setup mode, no webhook intake
  const srv = await startServer({ dataDir: dir, env: { WEBHOOK_SECRET: null, GITHUB_API_URL: fake.url } });
  cleanups.push(() => srv.stop());
  assert.equal(srv.logs().find((l) => l.msg === 'listening').mode, 'setup');
  const hook = await request(srv.port, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
  assert.equal(hook.status, 404, 'no intake without a secret');

  // a browser elsewhere (here: behind a proxy) is asked for the setup token and sees no state
  const token = fs.readFileSync(path.join(dir, 'setup-token'), 'utf8').trim();
  assert.equal(modeOf(path.join(dir, 'setup-token')), 0o600);
  assert.ok(!srv.stderr.includes(token), 'the setup token is not logged');
  const proxied = await request(srv.port, { method: 'GET', path: '/', headers: { 'X-Forwarded-For': '203.0.113.9' } });
  assert.equal(proxied.status, 403);
  assert.doesNotMatch(proxied.text, /state=/);
  const withToken = await request(srv.port, { method: 'GET', path: `/?token=${token}`, headers: { 'X-Forwarded-For': '203.0.113.9' } });
  assert.equal(withToken.status, 200);

  const page = await request(srv.port, { method: 'GET', path: '/' });
  assert.equal(page.status, 200);
  assert.match(page.text, /Register GitHub App/);
  const state = page.text.match(/state=([0-9a-f]{64})/)[1];
  const cookie = page.headers['set-cookie'][0].split(';')[0];
  assert.match(cookie, /^perfbot_setup=[0-9a-f]{64}$/);
  const manifest = JSON.parse(page.text.match(/name="manifest" value="([^"]*)"/)[1].replace(/&quot;/g, '"').replace(/&amp;/g, '&'));
  assert.deepEqual(manifest.default_permissions,
    { contents: 'write', pull_requests: 'write', checks: 'write', issues: 'write', metadata: 'read' });
  assert.ok(manifest.hook_attributes.url.endsWith(WEBHOOK_PATH));

  // a wrong state is refused and writes nothing
  fake.addManifestCode('code-1');
  const wrong = await request(srv.port, { method: 'GET', path: `/setup/callback?code=code-1&state=${'0'.repeat(64)}`,
    headers: { Cookie: cookie } });
  assert.equal(wrong.status, 400);
  // the right state without the page's cookie: someone who read the state, not the admin's browser
  const stranger = await request(srv.port, { method: 'GET', path: `/setup/callback?code=code-1&state=${state}` });
  assert.equal(stranger.status, 403);
  assert.ok(!fs.existsSync(path.join(dir, '.env')));
  assert.equal(fake.requests.filter((r) => r.path.startsWith('/app-manifests/')).length, 0);

  const ok = await request(srv.port, { method: 'GET', path: `/setup/callback?code=code-1&state=${state}`,
    headers: { Cookie: cookie } });
  assert.equal(ok.status, 200, ok.text);
  // setup is closed once the App is registered
  const replay = await request(srv.port, { method: 'GET', path: `/setup/callback?code=code-1&state=${state}`,
    headers: { Cookie: cookie } });
  assert.equal(replay.status, 409);
  assert.ok(!fs.existsSync(path.join(dir, 'setup-token')), 'the setup token is removed');
  assert.ok(!srv.stderr.includes('code-1'), 'the manifest code is not logged');
  assert.match(ok.text, /installations\/new/);
  const envFile = path.join(dir, '.env');
  assert.equal(modeOf(envFile), 0o600);
  const env = Object.fromEntries(fs.readFileSync(envFile, 'utf8').split('\n').filter((l) => l.includes('='))
    .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1).replace(/^"|"$/g, '')]));
  assert.equal(env.APP_ID, String(APP_ID));
  for (const k of ['PRIVATE_KEY_PATH', 'WEBHOOK_SECRET', 'GITHUB_CLIENT_ID', 'GITHUB_CLIENT_SECRET']) assert.ok(env[k], k);
  assert.equal(env.PUBLIC_URL, undefined, 'no public URL was entered: none is written');
  const keyPath = path.isAbsolute(env.PRIVATE_KEY_PATH) ? env.PRIVATE_KEY_PATH : path.join(dir, env.PRIVATE_KEY_PATH);
  assert.equal(modeOf(keyPath), 0o600);
  assert.ok(!srv.logs().some((l) => JSON.stringify(l).includes(env.WEBHOOK_SECRET)), 'secret in the logs');
  await srv.stop();

  // restarted in the same folder, perfbot reads the new .env: App mode, intake on with the new secret
  const again = await startServer({ dataDir: dir, env: { WEBHOOK_SECRET: null, GITHUB_API_URL: fake.url } });
  cleanups.push(() => again.stop());
  assert.equal(again.logs().find((l) => l.msg === 'listening').mode, 'app');
  const body = JSON.stringify({ zen: 'z', hook_id: 1, hook: { id: 1, app_id: APP_ID } });
  const r = await request(again.port, {
    headers: { 'Content-Type': 'application/json', 'X-GitHub-Event': 'ping', 'X-GitHub-Delivery': deliveryId(),
      'X-Hub-Signature-256': sign(body, env.WEBHOOK_SECRET) },
    body,
  });
  assert.equal(r.status, 202, r.text);
});

test('setup mode: only this machine\'s names and PUBLIC_URL\'s host are served (DNS rebinding)', async () => {
  const fake = await startFakeGitHub({ appId: APP_ID, publicKeyPem: publicPem, privateKeyPem: privatePem });
  cleanups.push(() => fake.close());
  const dir = tmpDir();
  const srv = await startServer({ dataDir: dir,
    env: { WEBHOOK_SECRET: null, GITHUB_API_URL: fake.url, PUBLIC_URL: 'https://perfbot.example.com/' } });
  cleanups.push(() => srv.stop());
  const manifestOf = (page) => JSON.parse(page.text.match(/name="manifest" value="([^"]*)"/)[1]
    .replace(/&quot;/g, '"').replace(/&amp;/g, '&'));

  // a loopback peer whose browser was lured to an attacker's name resolving to 127.0.0.1
  for (const host of ['evil.example', `evil.example:${srv.port}`, `127.0.0.1.evil.example:${srv.port}`,
    `localhost.evil.example`, `perfbot.example.com.evil.example`, `127.0.0.1:${srv.port}x`]) {
    const page = await request(srv.port, { method: 'GET', path: '/', headers: { Host: host } });
    assert.equal(page.status, 400, host);
    assert.match(page.text, /Host header/);
    assert.doesNotMatch(page.text, /state=|manifest/, host);
    assert.ok(!page.headers['set-cookie'], 'no session cookie');
  }
  fake.addManifestCode('code-host');
  const cb = await request(srv.port, { method: 'GET', path: `/setup/callback?code=code-host&state=${'0'.repeat(64)}`,
    headers: { Host: 'evil.example' } });
  assert.equal(cb.status, 400);
  assert.match(cb.text, /Host header/);

  // this machine's names, and PUBLIC_URL's host; the URLs GitHub uses are PUBLIC_URL's whatever the Host,
  // while the browser comes back where it opened the page, so that it brings its session cookie
  // a loopback peer naming PUBLIC_URL's host is a reverse proxy's request (even one that adds no
  // forwarding header): it needs the setup token, as any browser elsewhere does
  const token = fs.readFileSync(path.join(dir, 'setup-token'), 'utf8').trim();
  for (const host of [`127.0.0.1:${srv.port}`, `localhost:${srv.port}`, 'LOCALHOST', `[::1]:${srv.port}`,
    'perfbot.example.com', 'perfbot.example.com:443']) {
    const local = !host.startsWith('perfbot.example.com');
    if (!local) {
      const refused = await request(srv.port, { method: 'GET', path: '/', headers: { Host: host } });
      assert.equal(refused.status, 403, `${host} without the token`);
      assert.match(refused.text, /setup token/);
    }
    const page = await request(srv.port, { method: 'GET', path: local ? '/' : `/?token=${token}`, headers: { Host: host } });
    assert.equal(page.status, 200, `${host}: ${page.text}`);
    const m = manifestOf(page);
    assert.equal(m.url, 'https://perfbot.example.com');
    assert.equal(m.hook_attributes.url, `https://perfbot.example.com${WEBHOOK_PATH}`);
    assert.deepEqual(m.callback_urls, ['https://perfbot.example.com/auth/callback']);
    assert.equal(m.redirect_url, local ? `http://${host}/setup/callback` : 'https://perfbot.example.com/setup/callback');
    assert.equal(/; Secure/.test(page.headers['set-cookie'][0]), !local, `${host}: Secure only over https`);
  }
  assert.equal(fake.requests.filter((r) => r.path.startsWith('/app-manifests/')).length, 0);
});

test('missed deliveries: a failed delivery perfbot never stored is redelivered exactly once', async () => {
  const fake = await startFakeGitHub({ appId: APP_ID, publicKeyPem: publicPem });
  cleanups.push(() => fake.close());
  const dir = tmpDir();
  const keyPath = path.join(dir, 'app.pem');
  fs.writeFileSync(keyPath, privatePem, { mode: 0o600 });
  const stored = deliveryId(), missed = deliveryId();
  fake.addDelivery({ guid: missed, event: 'push', status_code: 502, installation_id: 1 });
  const secret = 'redeliver-secret';
  const srv = await startServer({
    dataDir: dir, secret,
    env: { APP_ID, PRIVATE_KEY_PATH: keyPath, GITHUB_API_URL: fake.url, REDELIVERY_INTERVAL_SECONDS: 1 },
  });
  cleanups.push(() => srv.stop());
  // `stored` reaches perfbot before the check runs again; `missed` never does
  const body = JSON.stringify({ zen: 'z', hook_id: 1, hook: { id: 1, app_id: APP_ID } });
  await request(srv.port, {
    headers: { 'Content-Type': 'application/json', 'X-GitHub-Event': 'ping', 'X-GitHub-Delivery': stored,
      'X-Hub-Signature-256': sign(body, secret) },
    body,
  });
  // GitHub also lists `stored` as failed (say perfbot answered too late): perfbot has it, so it is not asked for
  fake.addDelivery({ guid: stored, event: 'push', status_code: 502, installation_id: 1 });
  await fake.waitFor((f) => f.state.redeliveries.length >= 1, 10000 * SLOW);
  // at least two more checks after the redelivery, each of which lists both as failed
  const lists = () => fake.requests.filter((r) => r.path.startsWith('/app/hook/deliveries') && r.method === 'GET').length;
  const seen = lists();
  await fake.waitFor(() => lists() >= seen + 2, 15000 * SLOW);
  const guids = fake.state.redeliveries.map((r) => r.guid);
  assert.deepEqual(guids, [missed], 'the missed delivery, exactly once; never the stored one');
  assert.ok(fake.requests.filter((r) => r.path.startsWith('/app/hook/deliveries') && r.method === 'GET').length >= 2);
});

test('the listing commands name a missing store instead of creating an empty one', async () => {
  const { cli } = await import('./lib/perfbot.js');
  const dir = tmpDir();
  for (const cmd of [['deliveries'], ['jobs'], ['runs']]) {
    const r = await cli([...cmd, '--data-dir', path.join(dir, 'nowhere')]);
    assert.notEqual(r.code, 0, `${cmd} exit`);
    assert.match(r.stderr, /no perfbot store at .*nowhere\/perfbot\.db/);
  }
  assert.ok(!fs.existsSync(path.join(dir, 'nowhere')), 'nothing was created');
});
