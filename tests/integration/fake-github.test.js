// Checks the fake GitHub itself: it must refuse what GitHub refuses (bad,
// expired, foreign or overlong App JWTs; expired or foreign installation
// tokens) and serve git over smart HTTP only with a valid installation token.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { startFakeGitHub } = require('../fake-github/server.js');

const APP_ID = 4242;
const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const other = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
let fake;
let tmp;

function jwt(claims, key = privateKey, alg = 'RS256') {
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = `${enc({ alg, typ: 'JWT' })}.${enc(claims)}`;
  const sig = crypto.sign('RSA-SHA256', Buffer.from(head), key).toString('base64url');
  return `${head}.${sig}`;
}

function goodClaims(over = {}) {
  const now = Math.floor(Date.now() / 1000);
  return { iat: now - 60, exp: now + 540, iss: String(APP_ID), ...over };
}

async function api(method, p, { auth, body } = {}) {
  const headers = { accept: 'application/vnd.github+json', 'user-agent': 'test' };
  if (auth) headers.authorization = `Bearer ${auth}`;
  if (body) headers['content-type'] = 'application/json';
  const res = await fetch(`${fake.url}${p}`, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
}

// git runs asynchronously: the fake answers from this same process.
function git(args, opts = {}) {
  return new Promise((resolve) => {
    const child = spawn('git', args, {
      env: { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_ASKPASS: '/bin/false', HOME: tmp,
        GIT_AUTHOR_NAME: 'T', GIT_AUTHOR_EMAIL: 't@e', GIT_COMMITTER_NAME: 'T', GIT_COMMITTER_EMAIL: 't@e' },
      ...opts,
    });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    child.stdout.resume();
    const timer = setTimeout(() => child.kill('SIGKILL'), 20000);
    child.on('close', (status) => { clearTimeout(timer); resolve({ status, stderr }); });
  });
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fake-github-test-'));
  fake = await startFakeGitHub({
    appId: APP_ID,
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }),
    installations: [
      { id: 1, account: 'octo-org', repositories: ['octo-org/demo'] },
      { id: 2, account: 'other-org', repositories: ['other-org/secret'] },
    ],
  });
  fake.createGitRepo('octo-org/demo', { files: { 'README.md': 'hello\n', 'src/a.c': 'int a;\n' } });
  fake.createGitRepo('other-org/secret', { installationId: 2 });
});

after(async () => {
  await fake.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('a valid App JWT is accepted and GitHub error shapes are used', async () => {
  const res = await api('GET', '/app', { auth: jwt(goodClaims()) });
  assert.equal(res.status, 200);
  assert.equal(res.body.id, APP_ID);
  assert.equal(res.body.slug, 'perfbot-test');
  assert.ok(res.headers.get('x-ratelimit-remaining'));
  const none = await api('GET', '/app');
  assert.equal(none.status, 401);
  assert.equal(typeof none.body.message, 'string');
  assert.equal(typeof none.body.documentation_url, 'string');
});

test('App JWTs GitHub would refuse are refused', async () => {
  const now = Math.floor(Date.now() / 1000);
  const bad = {
    'wrong key': jwt(goodClaims(), other.privateKey),
    'wrong issuer': jwt(goodClaims({ iss: '999' })),
    expired: jwt(goodClaims({ iat: now - 700, exp: now - 100 })),
    'exp more than 10 minutes after iat': jwt(goodClaims({ iat: now - 10, exp: now + 660 })),
    'iat in the future': jwt(goodClaims({ iat: now + 300, exp: now + 600 })),
    'tampered payload': (() => {
      const t = jwt(goodClaims()).split('.');
      t[1] = Buffer.from(JSON.stringify(goodClaims({ iss: '1' }))).toString('base64url');
      return t.join('.');
    })(),
    'alg none': (() => {
      const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
      return `${enc({ alg: 'none' })}.${enc(goodClaims())}.`;
    })(),
  };
  for (const [name, token] of Object.entries(bad)) {
    const res = await api('POST', '/app/installations/1/access_tokens', { auth: token });
    assert.equal(res.status, 401, name);
    assert.match(res.body.message, /JSON web token/, name);
  }
});

test('installation tokens: issued with an expiry, scoped, refused when expired', async () => {
  const res = await api('POST', '/app/installations/1/access_tokens', { auth: jwt(goodClaims()) });
  assert.equal(res.status, 201);
  assert.ok(res.body.token.length > 20);
  const exp = Date.parse(res.body.expires_at);
  assert.ok(exp > Date.now() + 3500 * 1000 && exp <= Date.now() + 3601 * 1000);
  const token = res.body.token;

  assert.equal((await api('GET', '/repos/octo-org/demo', { auth: token })).status, 200);
  // another installation's repository is invisible
  assert.equal((await api('GET', '/repos/other-org/secret', { auth: token })).status, 404);
  // a token is not an App JWT
  assert.equal((await api('GET', '/app', { auth: token })).status, 401);
  // a made-up token
  const bogus = await api('GET', '/repos/octo-org/demo', { auth: 'ghs_notarealtoken' });
  assert.equal(bogus.status, 401);
  assert.equal(bogus.body.message, 'Bad credentials');
  // an expired one
  fake.tokenOptions({ expiresIn: 1 });
  const short = (await api('POST', '/app/installations/1/access_tokens', { auth: jwt(goodClaims()) })).body.token;
  fake.tokenOptions({ expiresIn: 3600 });
  await new Promise((r) => setTimeout(r, 1100));
  assert.equal((await api('GET', '/repos/octo-org/demo', { auth: short })).status, 401);
  // unknown installation
  assert.equal((await api('POST', '/app/installations/77/access_tokens', { auth: jwt(goodClaims()) })).status, 404);
});

test('pull requests: 422 when one already exists for the head', async () => {
  const token = fake.issueToken(1);
  const demo = fake.gitRepoPath('octo-org/demo');
  execFileSync('git', ['branch', 'perfbot/opt-9', 'main'], { cwd: demo });
  const body = { title: 't', head: 'perfbot/opt-9', base: 'main', body: 'b' };
  const first = await api('POST', '/repos/octo-org/demo/pulls', { auth: token, body });
  assert.equal(first.status, 201);
  assert.match(first.body.head.sha, /^[0-9a-f]{40}$/);
  const again = await api('POST', '/repos/octo-org/demo/pulls', { auth: token, body });
  assert.equal(again.status, 422);
  assert.equal(again.body.errors[0].message, 'A pull request already exists for octo-org:perfbot/opt-9.');
  const missing = await api('POST', '/repos/octo-org/demo/pulls', { auth: token, body: { ...body, head: 'nope' } });
  assert.equal(missing.status, 422);
  const list = await api('GET', '/repos/octo-org/demo/pulls?head=octo-org:perfbot/opt-9&state=open', { auth: token });
  assert.equal(list.body.length, 1);
  assert.equal(fake.state.pulls.length, 1);
  // one pull request: mergeable from git, as GitHub computes it; list entries carry none
  const one = await api('GET', `/repos/octo-org/demo/pulls/${first.body.number}`, { auth: token });
  assert.equal(one.body.mergeable, true);
  assert.equal(one.body.mergeable_state, 'clean');
  assert.equal(list.body[0].mergeable, undefined);
});

test('branches are deleted through git/refs; a missing one is a 422', async () => {
  const token = fake.issueToken(1);
  const demo = fake.gitRepoPath('octo-org/demo');
  execFileSync('git', ['branch', 'to-delete', 'main'], { cwd: demo });
  const del = await api('DELETE', '/repos/octo-org/demo/git/refs/heads/to-delete', { auth: token });
  assert.equal(del.status, 204);
  assert.throws(() => execFileSync('git', ['rev-parse', '--verify', '-q', 'refs/heads/to-delete'], { cwd: demo, stdio: 'pipe' }));
  assert.deepEqual(fake.state.deletedRefs.at(-1), { repository: 'octo-org/demo', ref: 'heads/to-delete' });
  const again = await api('DELETE', '/repos/octo-org/demo/git/refs/heads/to-delete', { auth: token });
  assert.equal(again.status, 422);
  assert.equal(again.body.message, 'Reference does not exist');
  assert.equal((await api('DELETE', '/repos/octo-org/demo/git/refs/heads/main')).status, 401);
});

test('misbehaviour on demand and request recording', async () => {
  const token = fake.issueToken(1);
  fake.resetRequests();
  fake.failNext({ status: 503, count: 1 });
  assert.equal((await api('GET', '/repos/octo-org/demo', { auth: token })).status, 503);
  fake.secondaryLimit({ retryAfter: 3 });
  const sec = await api('GET', '/repos/octo-org/demo', { auth: token });
  assert.equal(sec.status, 403);
  assert.equal(sec.headers.get('retry-after'), '3');
  fake.primaryLimit({ resetIn: 1 });
  const prim = await api('GET', '/repos/octo-org/demo', { auth: token });
  assert.equal(prim.status, 403);
  assert.equal(prim.headers.get('x-ratelimit-remaining'), '0');
  assert.ok(Number(prim.headers.get('x-ratelimit-reset')) >= Math.floor(Date.now() / 1000));
  fake.clearFaults();
  assert.equal((await api('GET', '/repos/octo-org/demo', { auth: token })).status, 200);
  assert.equal(fake.requests.length, 4);
  assert.equal(fake.requests[0].auth, 'installation');
  assert.equal(fake.requests[0].installationId, 1);
});

test('git over smart HTTP needs a valid installation token', async () => {
  const token = fake.issueToken(1);
  const url = new URL(fake.gitUrl('octo-org/demo'));

  // no credentials: 401 with a Basic challenge, clone fails
  const res = await fetch(`${url}/info/refs?service=git-upload-pack`);
  assert.equal(res.status, 401);
  assert.match(res.headers.get('www-authenticate'), /^Basic/);
  const noauth = await git(['clone', '-q', url.toString(), path.join(tmp, 'noauth')]);
  assert.notEqual(noauth.status, 0);

  // a wrong token, a wrong user, another installation's token
  for (const [user, pass] of [['x-access-token', 'ghs_wrong'], ['someone', token], ['x-access-token', fake.issueToken(2)]]) {
    const u = new URL(url);
    u.username = user;
    u.password = pass;
    const r = await git(['clone', '-q', u.toString(), path.join(tmp, `bad-${user}-${pass.slice(-4)}`)]);
    assert.notEqual(r.status, 0, `${user} should be refused`);
  }

  // the right token: clone, commit, push
  const u = new URL(url);
  u.username = 'x-access-token';
  u.password = token;
  const dest = path.join(tmp, 'clone');
  const ok = await git(['clone', '-q', u.toString(), dest]);
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(fs.readFileSync(path.join(dest, 'src/a.c'), 'utf8'), 'int a;\n');
  fs.writeFileSync(path.join(dest, 'src/b.c'), 'int b;\n');
  assert.equal((await git(['add', '.'], { cwd: dest })).status, 0);
  assert.equal((await git(['commit', '-q', '-m', 'b'], { cwd: dest })).status, 0);
  const push = await git(['push', '-q', 'origin', 'HEAD:refs/heads/perfbot/opt-1'], { cwd: dest });
  assert.equal(push.status, 0, push.stderr);
  const sha = execFileSync('git', ['rev-parse', 'refs/heads/perfbot/opt-1'], { cwd: fake.gitRepoPath('octo-org/demo') })
    .toString().trim();
  assert.match(sha, /^[0-9a-f]{40}$/);

  // the API sees the pushed branch
  const file = await api('GET', '/repos/octo-org/demo/contents/src/b.c?ref=perfbot/opt-1', { auth: token });
  assert.equal(file.status, 200);
  assert.equal(Buffer.from(file.body.content, 'base64').toString(), 'int b;\n');

  // an expired token no longer works for git
  const shortTok = fake.issueToken(1, { expiresIn: 0 });
  const e = new URL(url);
  e.username = 'x-access-token';
  e.password = shortTok;
  assert.notEqual((await git(['ls-remote', e.toString()])).status, 0);
});
