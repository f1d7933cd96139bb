// Reaching perfbot from GitHub: `perfbot serve` says at start when GitHub
// cannot deliver to the webhook URL it would be given, and the setup page
// says so too, takes the public URL a reverse proxy or tunnel exposes,
// puts it in the manifest and writes it to .env with the App's credentials.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { startServer, request, tmpDir, WEBHOOK_PATH } from './lib/perfbot.js';

const require = createRequire(import.meta.url);
const { startFakeGitHub } = require('../fake-github/server.js');

const APP_ID = 6262;
const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const privatePem = privateKey.export({ type: 'pkcs1', format: 'pem' });
const publicPem = publicKey.export({ type: 'spki', format: 'pem' });
const cleanups = [];
after(async () => { for (const c of cleanups.reverse()) await c(); });

const UNREACHABLE = /^GitHub cannot deliver webhooks to this URL: set PUBLIC_URL to the https address a reverse proxy or a tunnel exposes$/;
const NO_TLS = /^the webhook URL is plain http/;
const reachLines = (srv) => srv.logs().filter((l) => UNREACHABLE.test(l.msg) || NO_TLS.test(l.msg));

function unescapeHtml(s) {
  return s.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}
const manifestOf = (page) => JSON.parse(unescapeHtml(page.text.match(/name="manifest" value="([^"]*)"/)[1]));
const inputValue = (page) => unescapeHtml(page.text.match(/name="public_url"[^>]* value="([^"]*)"/)[1]);
const stateOf = (page) => page.text.match(/name="state" value="([0-9a-f]{64})"/)[1];
const warningOf = (page) => (page.text.match(/<div class="warning" role="alert">([\s\S]*?)<\/div>/) || [])[1];

function readEnv(file) {
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.includes('='))
    .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1).replace(/^"|"$/g, '')]);
}

async function serve(env, opts = {}) {
  const srv = await startServer({ dataDir: opts.dir || tmpDir(), secret: opts.secret ?? null,
    env: { REDELIVERY_INTERVAL_SECONDS: 0, ...env } });
  cleanups.push(() => srv.stop());
  return srv;
}

test('start-up: one warning when GitHub cannot deliver to the webhook URL, none for a public https URL', async () => {
  const cases = [
    // [PUBLIC_URL, expected message, what the reason names, the URL logged]
    [null, UNREACHABLE, /^PUBLIC_URL is not set and 127\.0\.0\.1 is a loopback address/, (p) => `http://127.0.0.1:${p}${WEBHOOK_PATH}`],
    ['https://10.1.2.3', UNREACHABLE, /10\.1\.2\.3 is a private network address/, () => `https://10.1.2.3${WEBHOOK_PATH}`],
    ['https://[fd00::7]:8443/', UNREACHABLE, /fd00::7 is a private network address/, () => `https://[fd00::7]:8443${WEBHOOK_PATH}`],
    ['https://169.254.10.20', UNREACHABLE, /link-local/, () => `https://169.254.10.20${WEBHOOK_PATH}`],
    ['https://100.72.1.9', UNREACHABLE, /carrier-grade NAT/, () => `https://100.72.1.9${WEBHOOK_PATH}`],
    ['https://localhost:8443', UNREACHABLE, /localhost is a loopback address/, () => `https://localhost:8443${WEBHOOK_PATH}`],
    ['https://buildbox', UNREACHABLE, /buildbox is a local name/, () => `https://buildbox${WEBHOOK_PATH}`],
    ['perfbot.example.com', UNREACHABLE, /^PUBLIC_URL: the URL must start with https:\/\//, null],
    ['http://perfbot.example.com', NO_TLS, /not encrypted/, () => `http://perfbot.example.com${WEBHOOK_PATH}`],
    ['https://perfbot.example.com/ci/', null],
    ['https://203.0.113.40:8443', null],
  ];
  for (const [publicUrl, msg, reason, url] of cases) {
    const srv = await serve({ PUBLIC_URL: publicUrl });
    const lines = reachLines(srv);
    if (!msg) {
      assert.deepEqual(lines, [], `${publicUrl}: no warning`);
    } else {
      assert.equal(lines.length, 1, `${publicUrl}: one warning line\n${srv.stderr}`);
      const [l] = lines;
      assert.equal(l.level, 'warn');
      assert.match(l.msg, msg, publicUrl);
      assert.match(l.reason, reason, `${publicUrl}: ${l.reason}`);
      assert.equal(l.see, 'README: Reaching perfbot from GitHub');
      if (url) assert.equal(l.url, url(srv.port), publicUrl);
      if (msg === NO_TLS) assert.match(l.msg, /put TLS in front .* set PUBLIC_URL to its https address/);
    }
    await srv.stop();
  }

  // an installed App too, and WEBHOOK_PATH is part of the URL
  const dir = tmpDir();
  const keyPath = path.join(dir, 'app.pem');
  fs.writeFileSync(keyPath, privatePem, { mode: 0o600 });
  const app = { APP_ID, PRIVATE_KEY_PATH: keyPath, GITHUB_API_URL: 'http://127.0.0.1:9', WEBHOOK_PATH: '/hooks/gh' };
  let srv = await serve({ ...app, PUBLIC_URL: 'https://192.168.0.20' }, { dir, secret: 's3cret' });
  assert.equal(srv.logs().find((l) => l.msg === 'listening').mode, 'app');
  assert.deepEqual(reachLines(srv).map((l) => l.url), ['https://192.168.0.20/hooks/gh']);
  await srv.stop();
  srv = await serve({ ...app, PUBLIC_URL: 'https://perfbot.example.com' }, { dir, secret: 's3cret' });
  assert.deepEqual(reachLines(srv), []);
});

test('setup page: says GitHub cannot reach it, takes a public URL, and writes it to .env after registration', async () => {
  const fake = await startFakeGitHub({ appId: APP_ID, publicKeyPem: publicPem, privateKeyPem: privatePem });
  cleanups.push(() => fake.close());
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, '.env'), '# mine\nOTHER=1\n', { mode: 0o600 });
  const srv = await serve({ GITHUB_API_URL: fake.url }, { dir });
  const post = (fields, { cookie, contentType = 'application/x-www-form-urlencoded', method = 'POST', host } = {}) => {
    const headers = { 'Content-Type': contentType };
    if (cookie) headers.Cookie = cookie;
    if (host) headers.Host = host;
    return request(srv.port, { method, path: '/setup/public-url', headers, body: new URLSearchParams(fields).toString() });
  };

  // without PUBLIC_URL: the warning at the top, an empty input, the manifest on loopback
  const page = await request(srv.port, { method: 'GET', path: '/' });
  assert.equal(page.status, 200);
  const warning = warningOf(page);
  assert.ok(warning, 'a warning on the page');
  assert.match(warning, new RegExp(`GitHub cannot deliver webhooks to <code>http://127\\.0\\.0\\.1:${srv.port}${WEBHOOK_PATH}</code>`));
  assert.match(warning, /PUBLIC_URL is not set and 127\.0\.0\.1 is a loopback address|127\.0\.0\.1 is a loopback address/);
  assert.match(warning, /reverse proxy with HTTPS or a tunnel/);
  assert.match(warning, /<code>PUBLIC_URL<\/code>/);
  assert.ok(page.text.indexOf('class="warning"') < page.text.indexOf('Register GitHub App'), 'the warning comes first');
  assert.match(page.text, /<form method="post" action="\/setup\/public-url">/);
  assert.equal(inputValue(page), '');
  const cookie = page.headers['set-cookie'][0].split(';')[0];
  const state0 = stateOf(page);
  assert.equal(page.text.match(/apps\/new\?state=([0-9a-f]{64})/)[1], state0);
  assert.equal(manifestOf(page).hook_attributes.url, `http://127.0.0.1:${srv.port}${WEBHOOK_PATH}`);

  // the form takes the page's protections: the session cookie, the state, a form body, a POST, this machine's Host
  const tunnel = 'https://perfbot-42.tunnel.example/';
  assert.equal((await post({ public_url: tunnel, state: state0 })).status, 403, 'no cookie');
  assert.equal((await post({ public_url: tunnel, state: state0 }, { cookie: 'perfbot_setup=' + '0'.repeat(64) })).status, 403);
  const stale = await post({ public_url: tunnel, state: '0'.repeat(64) }, { cookie });
  assert.equal(stale.status, 400);
  assert.match(stale.text, /state does not match/);
  assert.equal((await post({ public_url: tunnel }, { cookie })).status, 400, 'no state');
  assert.equal((await post({ public_url: tunnel, state: state0 }, { cookie, contentType: 'text/plain' })).status, 415);
  const get = await request(srv.port, { method: 'GET', path: '/setup/public-url', headers: { Cookie: cookie } });
  assert.equal(get.status, 405);
  const rebound = await post({ public_url: tunnel, state: state0 }, { cookie, host: 'evil.example' });
  assert.equal(rebound.status, 400);
  assert.match(rebound.text, /Host header/);
  assert.equal(manifestOf(await request(srv.port, { method: 'GET', path: '/' })).hook_attributes.url,
    `http://127.0.0.1:${srv.port}${WEBHOOK_PATH}`, 'nothing refused changed the manifest');

  // an invalid URL gets the page again with its reason, and what was typed, escaped
  for (const [typed, reason] of [
    ['perfbot.example.com', /must start with https:\/\//],
    ['https://perfbot.example.com/?x=1', /must not have a query/],
    ['https://perfbot.example.com/#frag', /must not have a fragment/],
    ['https://user@perfbot.example.com', /user name or password/],
    ['https://perfbot.example.com:99999', /port must be a number/],
    ['https://perfbot.example.com/a/../b', /&quot;\.\.&quot;/],
    ['https://perfbot.example.com/"><script>alert(1)</script>', /path prefix such as \/perfbot/],
    ['', /no URL given/],
  ]) {
    const r = await post({ public_url: typed, state: state0 }, { cookie });
    assert.equal(r.status, 400, typed);
    assert.match(r.text, /<p class="problem" role="alert">That public URL cannot be used: /, typed);
    assert.match(r.text, reason, typed);
    assert.equal(inputValue(r), typed, 'what was typed is shown again');
    assert.doesNotMatch(r.text, /<script>/);
    assert.match(r.text, /Register GitHub App/, 'the page again');
    assert.equal(stateOf(r), state0, 'a refused URL keeps the state');
  }

  // a valid URL: the manifest's URLs GitHub uses, the warning gone, the input filled, a new state
  const ok = await post({ public_url: tunnel, state: state0 }, { cookie });
  assert.equal(ok.status, 200, ok.text);
  assert.equal(warningOf(ok), undefined, 'no warning for a public https URL');
  assert.equal(inputValue(ok), 'https://perfbot-42.tunnel.example');
  const m = manifestOf(ok);
  assert.equal(m.url, 'https://perfbot-42.tunnel.example');
  assert.equal(m.hook_attributes.url, `https://perfbot-42.tunnel.example${WEBHOOK_PATH}`);
  assert.deepEqual(m.callback_urls, ['https://perfbot-42.tunnel.example/auth/callback']);
  // the browser comes back where its cookie lives
  assert.equal(m.redirect_url, `http://127.0.0.1:${srv.port}/setup/callback`);
  const state1 = stateOf(ok);
  assert.notEqual(state1, state0);
  assert.equal(ok.text.match(/apps\/new\?state=([0-9a-f]{64})/)[1], state1);
  // reloading the page keeps it
  const again = await request(srv.port, { method: 'GET', path: '/' });
  assert.equal(manifestOf(again).hook_attributes.url, `https://perfbot-42.tunnel.example${WEBHOOK_PATH}`);
  assert.equal(stateOf(again), state1);
  // plain http to a public name: a warning about TLS
  const http = await post({ public_url: 'http://perfbot.example.com:8080/perfbot', state: state1 }, { cookie });
  assert.equal(http.status, 200);
  assert.match(warningOf(http), /is plain http:<\/b> GitHub would send every payload unencrypted/);
  // a private address is a valid URL, taken, and the warning stays
  const lan = await post({ public_url: 'https://192.168.1.9:8443', state: stateOf(http) }, { cookie });
  assert.equal(lan.status, 200);
  assert.match(warningOf(lan), /192\.168\.1\.9 is a private network address/);
  assert.equal(manifestOf(lan).hook_attributes.url, `https://192.168.1.9:8443${WEBHOOK_PATH}`);
  const state2 = stateOf(lan);
  const back = await post({ public_url: tunnel, state: state2 }, { cookie });
  const state3 = stateOf(back);

  // a page built for an earlier URL cannot complete the registration
  fake.addManifestCode('code-old');
  const old = await request(srv.port, { method: 'GET', path: `/setup/callback?code=code-old&state=${state1}`,
    headers: { Cookie: cookie } });
  assert.equal(old.status, 400);
  assert.match(old.text, /state does not match/);
  assert.deepEqual(readEnv(path.join(dir, '.env')), [['OTHER', '1']], 'nothing written');

  fake.addManifestCode('code-new');
  const cb = await request(srv.port, { method: 'GET', path: `/setup/callback?code=code-new&state=${state3}`,
    headers: { Cookie: cookie } });
  assert.equal(cb.status, 200, cb.text);
  const envFile = path.join(dir, '.env');
  assert.equal(fs.statSync(envFile).mode & 0o777, 0o600);
  const entries = readEnv(envFile);
  const env = Object.fromEntries(entries);
  assert.equal(env.PUBLIC_URL, 'https://perfbot-42.tunnel.example');
  assert.equal(env.APP_ID, String(APP_ID));
  assert.equal(env.OTHER, '1');
  for (const k of ['PRIVATE_KEY_PATH', 'WEBHOOK_SECRET', 'GITHUB_CLIENT_ID', 'GITHUB_CLIENT_SECRET']) assert.ok(env[k], k);
  assert.equal(entries.filter(([k]) => k === 'PUBLIC_URL').length, 1);
  // setup is closed: the form with it
  assert.equal((await post({ public_url: tunnel, state: state3 }, { cookie })).status, 409);
  await srv.stop();

  // restarted with that .env: no warning at start
  const app = await serve({ GITHUB_API_URL: fake.url }, { dir });
  assert.equal(app.logs().find((l) => l.msg === 'listening').mode, 'app');
  assert.deepEqual(reachLines(app), []);
  await app.stop();
  // and a setup page with that PUBLIC_URL answers the tunnel's Host, whose browser comes back there
  const dir2 = tmpDir();
  fs.writeFileSync(path.join(dir2, '.env'), `PUBLIC_URL=${env.PUBLIC_URL}\n`, { mode: 0o600 });
  const setup2 = await serve({ GITHUB_API_URL: fake.url }, { dir: dir2 });
  const token = fs.readFileSync(path.join(dir2, 'setup-token'), 'utf8').trim();
  const viaTunnel = await request(setup2.port, { method: 'GET', path: `/?token=${token}`,
    headers: { Host: 'perfbot-42.tunnel.example', 'X-Forwarded-For': '198.51.100.7' } });
  assert.equal(viaTunnel.status, 200, viaTunnel.text);
  assert.equal(inputValue(viaTunnel), 'https://perfbot-42.tunnel.example', 'pre-filled with PUBLIC_URL');
  assert.equal(manifestOf(viaTunnel).redirect_url, 'https://perfbot-42.tunnel.example/setup/callback');
  assert.equal(warningOf(viaTunnel), undefined);
});

test('setup page: an existing PUBLIC_URL line is replaced only when a URL was entered', async () => {
  const fake = await startFakeGitHub({ appId: APP_ID, publicKeyPem: publicPem, privateKeyPem: privatePem });
  cleanups.push(() => fake.close());
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, '.env'), 'PUBLIC_URL=http://10.0.0.5:3000\nexport PUBLIC_URL = "http://10.0.0.5:3000"\nKEEP=yes\n',
    { mode: 0o600 });
  const srv = await serve({ GITHUB_API_URL: fake.url }, { dir });
  const page = await request(srv.port, { method: 'GET', path: '/' });
  // PUBLIC_URL from .env: pre-filled, and still not reachable
  assert.equal(inputValue(page), 'http://10.0.0.5:3000');
  assert.match(warningOf(page), /10\.0\.0\.5 is a private network address/);
  const cookie = page.headers['set-cookie'][0].split(';')[0];
  const r = await request(srv.port, { method: 'POST', path: '/setup/public-url',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded; charset=UTF-8', Cookie: cookie },
    body: new URLSearchParams({ state: stateOf(page), public_url: 'HTTPS://Perfbot.Example.COM/ci/' }).toString() });
  assert.equal(r.status, 200, r.text);
  fake.addManifestCode('code-x');
  const cb = await request(srv.port, { method: 'GET', path: `/setup/callback?code=code-x&state=${stateOf(r)}`,
    headers: { Cookie: cookie } });
  assert.equal(cb.status, 200, cb.text);
  const entries = readEnv(path.join(dir, '.env'));
  assert.deepEqual(entries.filter(([k]) => /PUBLIC_URL/.test(k)), [['PUBLIC_URL', 'https://perfbot.example.com/ci']]);
  assert.ok(entries.some(([k, v]) => k === 'KEEP' && v === 'yes'));
});
