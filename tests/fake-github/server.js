'use strict';
/*
 * A fake GitHub for perfbot's tests: the REST endpoints perfbot uses, App JWT
 * and installation-token checks like GitHub's, misbehaviour on demand, and
 * test git repositories over smart HTTP (the real `git http-backend`).
 * Node built-ins only.  Listens on 127.0.0.1.
 *
 * ---- As a module -----------------------------------------------------------
 *   const { startFakeGitHub } = require('../fake-github/server.js');
 *   const fake = await startFakeGitHub({
 *     appId: 4242,                 // JWT iss must equal it
 *     publicKeyPem,                // verifies the App JWTs (RS256)
 *     privateKeyPem,               // optional: returned as `pem` by manifest conversions
 *     appSlug: 'perfbot-test', botUserId: 9001,
 *     installations: [{ id: 1, account: 'octo-org',
 *                       repositories: ['octo-org/demo'] }],   // default: this one
 *     gitRoot,                     // optional: folder of bare repos (default: a temp dir)
 *     port: 0,                     // 0 = random
 *     webUrl,                      // html_url base (default: the fake's url)
 *   });
 *   fake.url / fake.port           // "http://127.0.0.1:PORT"; API at the root
 *   fake.requests                  // every request: {method, path, query, headers, body, auth, installationId, time}
 *   fake.state                     // {checkRuns, comments, reactions, pulls, deletedRefs, deliveries,
 *                                  //  redeliveries, tokensIssued, permissions, files, repos, installations}
 *   GET /repos/o/r/pulls/N answers `mergeable` computed with `git merge-tree` on the repository;
 *   DELETE /repos/o/r/git/refs/heads/B deletes the branch of the git repository.
 *   fake.failNext({status: 500, count: 2, path: /regex/?, method?, body?})
 *   fake.secondaryLimit({retryAfter: 1, count: 1, status: 403})   // retryAfter null: no header
 *   fake.primaryLimit({resetIn: 2, status: 403})  // remaining 0 until the reset, then answers again
 *   fake.hang({count: 1, path?})   // never answers (until close)
 *   fake.clearFaults()             // forget pending failNext/limits/hangs and any primary limit
 *   fake.tokenOptions({expiresIn: 3600})          // seconds for tokens issued from now on (can be < 300)
 *   fake.issueToken(installationId, {expiresIn})  // a token without the JWT dance
 *   fake.revokeTokens()            // every issued token answers 401 from now on
 *   fake.addRepo('owner/name', {installationId: 1, private: true, default_branch: 'main'})
 *   fake.setPermission('owner/name', 'user', 'write')   // default for unknown users: 'none'
 *   fake.setFile('owner/name', 'main', 'path/to/file', 'text')   // ref may be a branch or sha
 *   fake.addDelivery({guid, event: 'push', action: null, status_code: 500, redelivery: false, installation_id})
 *   fake.deliveryOptions({redeliveryStatusCode: 200})  // status of the attempt a redelivery adds
 *   fake.appOptions({permissions: {...}, events: [...]})  // what GET /app (and installations) answer
 *   fake.hookConfig({url, content_type: 'json', secret: true})  // GET /app/hook/config; secret false: none set
 *   fake.addManifestCode('code123', {id, slug, ...})   // fields override the defaults
 *   fake.createGitRepo('owner/name', {files: {'README': 'hi'}, branch: 'main'}) // bare repo + API repo; returns its path
 *   fake.gitUrl('owner/name')     // "<url>/git/owner/name.git" (Basic auth x-access-token:<token>)
 *   fake.protectBranches('owner/name', ['perfbot/*'])  // pushes to matching branches are refused the
 *                                  // way GitHub's branch protection does (GH006, "protected branch hook declined")
 *   fake.denyPush('owner/name', true)  // tokens may read but not push: receive-pack answers 403
 *   fake.mergeableUnknown(3)       // the next 3 GET pulls/N answer mergeable: null (not computed yet)
 *   fake.addPull('owner/name', {number, headRef, headSha, base, headRepo: 'fork/name' | null,
 *                authorAssociation, user})   // someone else's pull request, e.g. from a fork
 *   // git repositories serve any reachable commit by sha (uploadpack.allowReachableSHA1InWant), as GitHub does
 *   // Sign-in with GitHub (the App's OAuth web flow), checked like GitHub does:
 *   //   GET /login/oauth/authorize?client_id&redirect_uri&state -> 302 redirect_uri?code&state for the
 *   //     user set by signInAs (codes: single use, 10 minutes, bound to client and redirect_uri);
 *   //   POST /login/oauth/access_token (form or JSON: client_id, client_secret, code, redirect_uri)
 *   //     -> {access_token: 'ghu_...'} or GitHub's 200 {error, error_description};
 *   //   GET /user, GET /user/installations, GET /user/installations/{id}/repositories with that token.
 *   fake.addUser('alice', {id, repositories: ['octo-org/demo']})  // what the user can read
 *   fake.signInAs('alice')        // who GET /login/oauth/authorize signs in from now on (null: nobody)
 *   fake.revokeUserTokens()       // every user token answers 401 from now on
 *   //   options: oauthClientId (default 'Iv1.fakeclientid'), oauthClientSecret (default 'fake-client-secret')
 *   await fake.waitFor(pred, timeoutMs)  // resolves when pred(fake) is true
 *   fake.resetRequests()
 *   await fake.close()
 *
 * ---- Standalone ------------------------------------------------------------
 *   node tests/fake-github/server.js --port 0 --app-id 4242 --public-key pub.pem
 *        [--private-key key.pem] [--git-root DIR] [--installation 1:octo-org/demo,octo-org/other]
 *   prints its URL alone on the first line of stdout, then serves until killed.
 *   The control functions are reachable over HTTP as POST /_fake/<name> with the
 *   options object as JSON body (failNext, secondaryLimit, primaryLimit, hang, clearFaults,
 *   tokenOptions, issueToken {installationId, expiresIn} -> {token}, revokeTokens,
 *   addRepo {fullName, ...}, setPermission {repo, user, permission},
 *   setFile {repo, ref, path, content}, addDelivery, deliveryOptions,
 *   appOptions, hookConfig, addManifestCode {code, ...}, createGitRepo {fullName, files, branch},
 *   protectBranches {repo, patterns}, denyPush {repo, deny}, resetRequests) and GET /_fake/requests, GET /_fake/state.
 *   /_fake/* requests are not recorded.
 */
const http = require('node:http');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, execFileSync } = require('node:child_process');

const DOCS = 'https://docs.github.com/rest';

function b64url(buf) {
  return Buffer.from(buf).toString('base64').replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
}

function isoNow(offsetS = 0) {
  return new Date(Date.now() + offsetS * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

class HttpError extends Error {
  constructor(status, message, extra) {
    super(message);
    this.status = status;
    this.extra = extra || {};
  }
}

function verifyJwt(token, publicKey, appId) {
  const parts = token.split('.');
  if (parts.length !== 3) return 'not a JWT';
  let header;
  let claims;
  try {
    header = JSON.parse(Buffer.from(parts[0], 'base64url').toString());
    claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString());
  } catch (e) {
    return 'undecodable JWT';
  }
  if (header.alg !== 'RS256') return `alg ${header.alg} is not RS256`;
  const ok = crypto.verify('RSA-SHA256', Buffer.from(`${parts[0]}.${parts[1]}`), publicKey,
    Buffer.from(parts[2], 'base64url'));
  if (!ok) return 'bad signature';
  const now = Math.floor(Date.now() / 1000);
  if (typeof claims.iat !== 'number' || typeof claims.exp !== 'number') return 'iat/exp missing';
  if (claims.exp <= now) return "'Expiration time' claim ('exp') is too far in the past";
  if (claims.iat > now + 60) return "'Issued at' claim ('iat') must be an Integer representing a time in the past";
  if (claims.exp - claims.iat > 600) return "'Expiration time' claim ('exp') is too far in the future";
  if (String(claims.iss) !== String(appId)) return `'Issuer' claim ('iss') must match the app id`;
  return null;
}

async function startFakeGitHub(opts = {}) {
  const appId = Number(opts.appId || 4242);
  const publicKey = crypto.createPublicKey(opts.publicKeyPem);
  const slug = opts.appSlug || 'perfbot-test';
  const botUserId = opts.botUserId || 9001;
  const ownedGitRoot = !opts.gitRoot;
  const gitRoot = opts.gitRoot || fs.mkdtempSync(path.join(os.tmpdir(), 'fake-github-git-'));

  const requests = [];
  const state = {
    installations: new Map(),   // id -> {id, account}
    repos: new Map(),           // 'o/r' -> {id, name, full_name, owner, private, default_branch, installationId}
    tokens: new Map(),          // token -> {installationId, expiresAt (ms), revoked}
    tokensIssued: 0,
    checkRuns: [],
    comments: [],
    reactions: [],
    pulls: [],
    deletedRefs: [],   // {repository, ref} of every DELETE git/refs that succeeded
    permissions: new Map(),     // 'o/r' -> Map(user -> perm)
    files: new Map(),           // 'o/r@ref:path' -> content Buffer
    deliveries: [],
    redeliveries: [],
    manifestCodes: new Map(),
    budget: new Map(),          // 'app' | 'i<id>' -> requests counted
    users: new Map(),           // login -> {login, id, avatar_url, repositories: Set('o/r')}
    oauthCodes: new Map(),      // code -> {login, clientId, redirectUri, expiresAt}
    userTokens: new Map(),      // 'ghu_...' -> {login, revoked}
    signedIn: null,             // login the authorize page signs in
  };
  const oauthClientId = opts.oauthClientId || 'Iv1.fakeclientid';
  const oauthClientSecret = opts.oauthClientSecret || 'fake-client-secret';
  let nextId = 1000;
  const issueNumbers = new Map();
  const faults = [];
  let primaryUntil = 0;         // epoch s: primary limit in force until then
  let tokenExpiresIn = 3600;
  let redeliveryStatusCode = 200;
  let appPermissions = { contents: 'write', pull_requests: 'write', checks: 'write', issues: 'write', metadata: 'read' };
  let appEvents = ['check_run', 'check_suite', 'issue_comment', 'pull_request', 'push'];
  const hook = { url: 'https://perfbot.example.com/api/github/webhooks', content_type: 'json', secret: true };
  const hanging = new Set();
  const pushDenied = new Set(); // repositories whose tokens may not push
  let mergeableUnknown = 0;      // GET pulls/N answers mergeable: null this many more times
  const sockets = new Set();
  let server;
  let url;

  const webUrl = () => opts.webUrl || url;

  function addRepo(fullName, o = {}) {
    const [owner, name] = fullName.split('/');
    const installationId = Number(o.installationId || 1);
    if (!state.installations.has(installationId))
      state.installations.set(installationId, { id: installationId, account: owner });
    const repo = {
      id: o.id || nextId++, name, full_name: fullName, private: o.private !== false,
      owner: { login: owner, id: 500 + installationId, type: 'Organization' },
      default_branch: o.default_branch || 'main', installationId,
      html_url: `${webUrl()}/${fullName}`, clone_url: `${url}/git/${fullName}.git`,
    };
    state.repos.set(fullName, repo);
    return repo;
  }

  for (const inst of opts.installations || [{ id: 1, account: 'octo-org', repositories: ['octo-org/demo'] }]) {
    state.installations.set(Number(inst.id), { id: Number(inst.id), account: inst.account });
    for (const r of inst.repositories || []) addRepo(r, { installationId: inst.id });
  }

  function publicRepo(r) {
    const { installationId, ...rest } = r;
    return rest;
  }

  function botUser() {
    return { login: `${slug}[bot]`, id: botUserId, type: 'Bot', html_url: `${webUrl()}/apps/${slug}` };
  }

  function appObject() {
    return {
      id: appId, slug, node_id: `A_${appId}`, name: slug, owner: { login: 'octo-org', id: 501 },
      html_url: `${webUrl()}/apps/${slug}`, external_url: 'http://127.0.0.1', description: '',
      permissions: { ...appPermissions }, events: [...appEvents],
      installations_count: state.installations.size,
    };
  }

  function installationObject(inst) {
    return {
      id: inst.id, account: { login: inst.account, id: 500 + inst.id, type: 'Organization' },
      app_id: appId, app_slug: slug, target_type: 'Organization', repository_selection: 'selected',
      permissions: appObject().permissions, events: appObject().events,
      access_tokens_url: `${url}/app/installations/${inst.id}/access_tokens`,
    };
  }

  function issueToken(installationId, o = {}) {
    const token = `ghs_${b64url(crypto.randomBytes(27))}`;
    const expiresIn = o.expiresIn !== undefined ? o.expiresIn : tokenExpiresIn;
    const expiresAt = Date.now() + expiresIn * 1000;
    state.tokens.set(token, { installationId: Number(installationId), expiresAt, revoked: false });
    state.tokensIssued++;
    return { token, expires_at: new Date(expiresAt).toISOString().replace(/\.\d{3}Z$/, 'Z') };
  }

  function tokenInfo(token) {
    const t = state.tokens.get(token);
    if (!t || t.revoked || t.expiresAt <= Date.now()) return null;
    return t;
  }

  // ---- request plumbing ------------------------------------------------------

  function send(res, status, body, headers = {}) {
    const text = body === undefined || body === null ? '' : JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      'x-github-api-version-selected': '2022-11-28',
      ...headers,
    });
    res.end(text);
  }

  function errorBody(status, message, extra) {
    return { message, documentation_url: DOCS, status: String(status), ...extra };
  }

  function rateHeaders(ctx) {
    const key = ctx.installationId ? `i${ctx.installationId}` : 'app';
    const used = (state.budget.get(key) || 0) + 1;
    state.budget.set(key, used);
    const reset = Math.floor(Date.now() / 1000) + 3600;
    return {
      'x-ratelimit-limit': '5000', 'x-ratelimit-remaining': String(Math.max(0, 5000 - used)),
      'x-ratelimit-used': String(used), 'x-ratelimit-reset': String(reset), 'x-ratelimit-resource': 'core',
    };
  }

  function paginate(req, ctx, items, wrap) {
    const perPage = Math.min(100, Math.max(1, Number(ctx.query.per_page) || 30));
    const page = Math.max(1, Number(ctx.query.page) || 1);
    const last = Math.max(1, Math.ceil(items.length / perPage));
    const slice = items.slice((page - 1) * perPage, page * perPage);
    const links = [];
    const link = (p, rel) => {
      const q = new URLSearchParams(ctx.query);
      q.set('page', String(p));
      q.set('per_page', String(perPage));
      return `<${url}${ctx.path}?${q.toString()}>; rel="${rel}"`;
    };
    if (page < last) links.push(link(page + 1, 'next'), link(last, 'last'));
    if (page > 1) links.push(link(1, 'first'), link(page - 1, 'prev'));
    const headers = links.length ? { link: links.join(', ') } : {};
    return { body: wrap ? wrap(slice) : slice, headers };
  }

  function authenticate(req, ctx) {
    const h = req.headers.authorization || '';
    const m = /^(Bearer|token)\s+(\S+)$/i.exec(h);
    ctx.auth = 'none';
    if (!m) return;
    const cred = m[2];
    if (cred.split('.').length === 3) {
      const problem = verifyJwt(cred, publicKey, appId);
      ctx.auth = problem ? 'invalid-jwt' : 'app';
      ctx.authProblem = problem;
      return;
    }
    const u = state.userTokens.get(cred);
    if (u) {
      ctx.auth = u.revoked ? 'invalid-token' : 'user';
      ctx.user = u.login;
      return;
    }
    const t = tokenInfo(cred);
    if (t) {
      ctx.auth = 'installation';
      ctx.installationId = t.installationId;
    } else {
      ctx.auth = 'invalid-token';
    }
  }

  function needApp(ctx) {
    if (ctx.auth === 'app') return;
    if (ctx.auth === 'invalid-jwt')
      throw new HttpError(401, `A JSON web token could not be decoded (${ctx.authProblem})`);
    throw new HttpError(401, 'A JSON web token could not be decoded');
  }

  function needToken(ctx) {
    if (ctx.auth === 'installation') return;
    throw new HttpError(401, 'Bad credentials');
  }

  function needRepo(ctx, owner, name) {
    needToken(ctx);
    const repo = state.repos.get(`${owner}/${name}`);
    if (!repo || repo.installationId !== ctx.installationId) throw new HttpError(404, 'Not Found');
    return repo;
  }

  function readBody(req) {
    return new Promise((resolve, reject) => {
      const chunks = [];
      let size = 0;
      req.on('data', (c) => {
        size += c.length;
        if (size > 50 * 1024 * 1024) reject(new HttpError(413, 'Payload too large'));
        else chunks.push(c);
      });
      req.on('end', () => resolve(Buffer.concat(chunks)));
      req.on('error', reject);
    });
  }

  function takeFault(ctx) {
    for (let i = 0; i < faults.length; i++) {
      const f = faults[i];
      if (f.path && !new RegExp(f.path).test(ctx.path)) continue;
      if (f.method && f.method.toUpperCase() !== ctx.method) continue;
      if (--f.count <= 0) faults.splice(i, 1);
      return f;
    }
    return null;
  }

  // ---- git smart HTTP --------------------------------------------------------

  function gitAuthorized(req, fullName) {
    const h = req.headers.authorization || '';
    const m = /^Basic\s+(\S+)$/i.exec(h);
    if (!m) return false;
    const decoded = Buffer.from(m[1], 'base64').toString();
    const colon = decoded.indexOf(':');
    if (colon < 0) return false;
    const user = decoded.slice(0, colon);
    const pass = decoded.slice(colon + 1);
    if (user !== 'x-access-token') return false;
    const t = tokenInfo(pass);
    if (!t) return false;
    const repo = state.repos.get(fullName);
    return !!repo && repo.installationId === t.installationId;
  }

  function serveGit(req, res, ctx) {
    const m = /^\/git\/([^/]+)\/([^/]+?)\.git(\/.*)?$/.exec(ctx.path);
    if (!m) return send(res, 404, errorBody(404, 'Not Found'));
    const fullName = `${m[1]}/${m[2]}`;
    if (!gitAuthorized(req, fullName)) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="GitHub"', 'content-type': 'text/plain' });
      return res.end('Invalid username or token. Password authentication is not supported for Git operations.\n');
    }
    if (pushDenied.has(fullName) && (m[3] === '/git-receive-pack' || ctx.query.service === 'git-receive-pack')) {
      res.writeHead(403, { 'content-type': 'text/plain' });
      return res.end(`Permission to ${fullName}.git denied to ${slug}[bot].\n`);
    }
    const env = {
      PATH: process.env.PATH,
      GIT_PROJECT_ROOT: gitRoot,
      GIT_HTTP_EXPORT_ALL: '1',
      PATH_INFO: `/${m[1]}/${m[2]}.git${m[3] || ''}`,
      QUERY_STRING: ctx.rawQuery,
      REQUEST_METHOD: req.method,
      CONTENT_TYPE: req.headers['content-type'] || '',
      REMOTE_USER: 'x-access-token',
      REMOTE_ADDR: '127.0.0.1',
      GIT_HTTP_MAX_REQUEST_BUFFER: '100M',
    };
    if (req.headers['content-length']) env.CONTENT_LENGTH = req.headers['content-length'];
    if (req.headers['content-encoding']) env.HTTP_CONTENT_ENCODING = req.headers['content-encoding'];
    if (req.headers['git-protocol']) env.GIT_PROTOCOL = req.headers['git-protocol'];
    const child = spawn('git', ['http-backend'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    req.pipe(child.stdin);
    child.stdin.on('error', () => {});
    let head = Buffer.alloc(0);
    let headersDone = false;
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    child.stdout.on('data', (d) => {
      if (headersDone) return res.write(d);
      head = Buffer.concat([head, d]);
      let idx = head.indexOf('\r\n\r\n');
      let sepLen = 4;
      if (idx < 0) { idx = head.indexOf('\n\n'); sepLen = 2; }
      if (idx < 0) return;
      headersDone = true;
      const lines = head.slice(0, idx).toString().split(/\r?\n/);
      let status = 200;
      const headers = {};
      for (const line of lines) {
        const c = line.indexOf(':');
        if (c < 0) continue;
        const k = line.slice(0, c).trim();
        const v = line.slice(c + 1).trim();
        if (k.toLowerCase() === 'status') status = parseInt(v, 10) || 200;
        else headers[k] = v;
      }
      res.writeHead(status, headers);
      res.write(head.slice(idx + sepLen));
    });
    child.on('close', (code) => {
      if (!headersDone) {
        res.writeHead(500, { 'content-type': 'text/plain' });
        return res.end(`git http-backend failed (${code}): ${stderr}`);
      }
      res.end();
    });
  }

  function gitRepoPath(fullName) {
    return path.join(gitRoot, `${fullName}.git`);
  }

  function git(args, cwd, env) {
    return execFileSync('git', args, {
      cwd, env: { ...process.env, GIT_AUTHOR_NAME: 'Test', GIT_AUTHOR_EMAIL: 'test@example.com',
        GIT_COMMITTER_NAME: 'Test', GIT_COMMITTER_EMAIL: 'test@example.com', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    }).toString().trim();
  }

  function createGitRepo(fullName, o = {}) {
    const branch = o.branch || 'main';
    const dir = gitRepoPath(fullName);
    fs.mkdirSync(dir, { recursive: true });
    git(['init', '--bare', '-q', '-b', branch, dir]);
    git(['config', 'http.receivepack', 'true'], dir);
    // GitHub serves any reachable commit by its sha (a fork's pull request head under refs/pull/N/head)
    git(['config', 'uploadpack.allowReachableSHA1InWant', 'true'], dir);
    const files = o.files || { 'README.md': `# ${fullName}\n` };
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fake-github-work-'));
    try {
      git(['init', '-q', '-b', branch, work]);
      for (const [p, content] of Object.entries(files)) {
        fs.mkdirSync(path.dirname(path.join(work, p)), { recursive: true });
        fs.writeFileSync(path.join(work, p), content);
      }
      git(['add', '-A'], work);
      git(['commit', '-q', '-m', o.message || 'initial commit'], work);
      git(['push', '-q', dir, `HEAD:refs/heads/${branch}`], work);
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
    if (!state.repos.has(fullName)) addRepo(fullName, { installationId: o.installationId || 1, default_branch: branch });
    return dir;
  }

  function gitSha(fullName, ref) {
    const dir = gitRepoPath(fullName);
    if (!fs.existsSync(dir)) return undefined;
    try {
      return git(['rev-parse', '--verify', '-q', `${ref}^{commit}`], dir);
    } catch (e) {
      return null;
    }
  }

  function gitFile(fullName, ref, p) {
    const dir = gitRepoPath(fullName);
    if (!fs.existsSync(dir)) return undefined;
    try {
      return execFileSync('git', ['show', `${ref}:${p}`], { cwd: dir, stdio: ['ignore', 'pipe', 'ignore'] });
    } catch (e) {
      return null;
    }
  }

  // ---- REST routes -----------------------------------------------------------

  const routes = [];
  const route = (method, pattern, fn) => routes.push({ method, re: new RegExp(`^${pattern}$`), fn });

  // ---- sign-in with GitHub (OAuth web flow) ----------------------------------
  function needUser(ctx) {
    if (ctx.auth === 'user' && state.users.has(ctx.user)) return state.users.get(ctx.user);
    throw new HttpError(401, 'Bad credentials');
  }
  function userObject(u) {
    return { login: u.login, id: u.id, node_id: `U_${u.id}`, avatar_url: u.avatar_url, type: 'User',
      html_url: `${webUrl()}/${u.login}`, name: u.login };
  }
  function userInstallations(u) {
    const ids = new Set();
    for (const fullName of u.repositories) {
      const r = state.repos.get(fullName);
      if (r) ids.add(r.installationId);
    }
    return [...ids].sort((a, b) => a - b).map((id) => state.installations.get(id)).filter(Boolean);
  }
  route('GET', '/login/oauth/authorize', (ctx) => {
    const q = ctx.query;
    if (q.client_id !== oauthClientId) throw new HttpError(404, 'Not Found');   // GitHub: an error page
    if (!q.redirect_uri) throw new HttpError(400, 'The redirect_uri MUST be given');
    if (!state.signedIn || !state.users.has(state.signedIn))
      throw new HttpError(403, 'nobody is signed in to the fake GitHub: call signInAs(login) first');
    const code = b64url(crypto.randomBytes(15));
    state.oauthCodes.set(code, { login: state.signedIn, clientId: q.client_id, redirectUri: q.redirect_uri,
      expiresAt: Date.now() + 600 * 1000 });
    const to = new URL(q.redirect_uri);
    to.searchParams.set('code', code);
    if (q.state !== undefined) to.searchParams.set('state', q.state);
    return { status: 302, body: null, headers: { location: to.toString() } };
  });
  route('POST', '/login/oauth/access_token', (ctx, req) => {
    let b = ctx.body || {};
    if (typeof b === 'string') b = Object.fromEntries(new URLSearchParams(b).entries());
    const fail = (error, description) => [200, { error, error_description: description,
      error_uri: 'https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors' }];
    if (b.client_id !== oauthClientId || b.client_secret !== oauthClientSecret)
      return fail('incorrect_client_credentials', 'The client_id and/or client_secret passed are incorrect.');
    const c = state.oauthCodes.get(b.code || '');
    if (!c || c.expiresAt <= Date.now() || c.clientId !== b.client_id)
      return fail('bad_verification_code', 'The code passed is incorrect or expired.');
    state.oauthCodes.delete(b.code);   // single use
    if (b.redirect_uri && b.redirect_uri !== c.redirectUri)
      return fail('redirect_uri_mismatch', 'The redirect_uri MUST match the registered callback URL for this application.');
    const token = `ghu_${b64url(crypto.randomBytes(27))}`;
    state.userTokens.set(token, { login: c.login, revoked: false });
    if (!/json/.test(req.headers.accept || ''))
      return { status: 200, body: null, raw: `access_token=${token}&scope=&token_type=bearer` };
    return [200, { access_token: token, token_type: 'bearer', scope: '' }];
  });
  route('GET', '/user', (ctx) => [200, userObject(needUser(ctx))]);
  route('GET', '/user/installations', (ctx, req) => {
    const u = needUser(ctx);
    const all = userInstallations(u).map(installationObject);
    return paginate(req, ctx, all, (slice) => ({ total_count: all.length, installations: slice }));
  });
  route('GET', '/user/installations/(\\d+)/repositories', (ctx, req, id) => {
    const u = needUser(ctx);
    if (!userInstallations(u).some((i) => i.id === Number(id))) throw new HttpError(404, 'Not Found');
    const repos = [...state.repos.values()].filter((r) => r.installationId === Number(id) && u.repositories.has(r.full_name))
      .map((r) => ({ ...publicRepo(r), permissions: { pull: true, push: false, admin: false } }));
    return paginate(req, ctx, repos, (slice) => ({ total_count: repos.length, repositories: slice }));
  });

  route('GET', '/app', (ctx) => { needApp(ctx); return [200, appObject()]; });
  route('GET', '/app/installations', (ctx, req) => {
    needApp(ctx);
    return paginate(req, ctx, [...state.installations.values()].map(installationObject));
  });
  route('GET', '/app/installations/(\\d+)', (ctx, req, id) => {
    needApp(ctx);
    const inst = state.installations.get(Number(id));
    if (!inst) throw new HttpError(404, 'Not Found');
    return [200, installationObject(inst)];
  });
  route('POST', '/app/installations/(\\d+)/access_tokens', (ctx, req, id) => {
    needApp(ctx);
    if (!state.installations.has(Number(id))) throw new HttpError(404, 'Not Found');
    const t = issueToken(id);
    return [201, { ...t, permissions: appObject().permissions, repository_selection: 'selected' }];
  });
  route('GET', '/installation/repositories', (ctx, req) => {
    needToken(ctx);
    const repos = [...state.repos.values()].filter((r) => r.installationId === ctx.installationId).map(publicRepo);
    return paginate(req, ctx, repos, (slice) => ({ total_count: repos.length, repository_selection: 'selected', repositories: slice }));
  });
  route('GET', '/users/([^/]+)', (ctx, req, login) => {
    login = decodeURIComponent(login);
    if (login === `${slug}[bot]`) return [200, botUser()];
    if (state.permissionsUsers && state.permissionsUsers.has(login))
      return [200, { login, id: state.permissionsUsers.get(login), type: 'User' }];
    throw new HttpError(404, 'Not Found');
  });
  route('GET', '/app/hook/deliveries', (ctx, req) => {
    needApp(ctx);
    const sorted = [...state.deliveries].sort((a, b) => b.id - a.id);
    return paginate(req, ctx, sorted);
  });
  route('GET', '/app/hook/config', (ctx) => {
    needApp(ctx);
    const c = { content_type: hook.content_type, insecure_ssl: '0', url: hook.url };
    if (hook.secret) c.secret = '********';
    return [200, c];
  });
  route('POST', '/app/hook/deliveries/(\\d+)/attempts', (ctx, req, id) => {
    needApp(ctx);
    const d = state.deliveries.find((x) => x.id === Number(id));
    if (!d) throw new HttpError(404, 'Not Found');
    state.redeliveries.push({ id: d.id, guid: d.guid });
    state.deliveries.push({ ...d, id: nextId++, redelivery: true, status_code: redeliveryStatusCode,
      status: redeliveryStatusCode < 300 ? 'OK' : 'failed', delivered_at: isoNow() });
    return [202, {}];
  });
  route('POST', '/app-manifests/([^/]+)/conversions', (ctx, req, code) => {
    const data = state.manifestCodes.get(decodeURIComponent(code));
    if (!data) throw new HttpError(404, 'Not Found');
    state.manifestCodes.delete(decodeURIComponent(code));
    return [201, data];
  });

  const R = '/repos/([^/]+)/([^/]+)';
  route('GET', R, (ctx, req, o, n) => [200, publicRepo(needRepo(ctx, o, n))]);
  route('GET', `${R}/contents/(.+)`, (ctx, req, o, n, p) => {
    const repo = needRepo(ctx, o, n);
    p = decodeURIComponent(p);
    const ref = ctx.query.ref || repo.default_branch;
    let content = state.files.get(`${repo.full_name}@${ref}:${p}`);
    if (content === undefined) {
      const g = gitFile(repo.full_name, ref, p);
      if (g) content = g;
    }
    if (content === undefined || content === null) {
      if (ctx.query.ref && gitSha(repo.full_name, ref) === null)
        throw new HttpError(404, `No commit found for the ref ${ref}`);
      throw new HttpError(404, 'Not Found');
    }
    const b64 = content.toString('base64').replace(/(.{60})/g, '$1\n');
    const sha = crypto.createHash('sha1').update(`blob ${content.length}\0`).update(content).digest('hex');
    return [200, { type: 'file', encoding: 'base64', size: content.length, name: path.basename(p), path: p,
      content: b64, sha, url: `${url}${ctx.path}` }];
  });
  route('POST', `${R}/check-runs`, (ctx, req, o, n) => {
    const repo = needRepo(ctx, o, n);
    const b = ctx.body || {};
    if (!b.name || !b.head_sha)
      throw new HttpError(422, 'Invalid request.', { errors: [`"${!b.name ? 'name' : 'head_sha'}" wasn't supplied.`] });
    const id = nextId++;
    const run = {
      id, node_id: `CR_${id}`, name: b.name, head_sha: b.head_sha, external_id: b.external_id || '',
      status: b.status || 'queued', conclusion: b.conclusion || null, details_url: b.details_url || null,
      started_at: b.started_at || isoNow(), completed_at: b.completed_at || (b.conclusion ? isoNow() : null),
      output: { title: null, summary: null, text: null, annotations_count: 0, ...(b.output || {}) },
      actions: b.actions || [], url: `${url}/repos/${repo.full_name}/check-runs/${id}`,
      html_url: `${webUrl()}/${repo.full_name}/runs/${id}`, app: { id: appId, slug },
      check_suite: { id: id + 1 }, pull_requests: [], repository: repo.full_name, updates: [],
    };
    if (run.actions.length > 3) throw new HttpError(422, 'Invalid request.', { errors: ['actions: at most 3'] });
    state.checkRuns.push(run);
    return [201, run];
  });
  route('PATCH', `${R}/check-runs/(\\d+)`, (ctx, req, o, n, id) => {
    const repo = needRepo(ctx, o, n);
    const run = state.checkRuns.find((r) => r.id === Number(id) && r.repository === repo.full_name);
    if (!run) throw new HttpError(404, 'Not Found');
    const b = ctx.body || {};
    run.updates.push(b);
    for (const k of ['name', 'status', 'conclusion', 'details_url', 'completed_at', 'external_id', 'actions'])
      if (b[k] !== undefined) run[k] = b[k];
    if (b.conclusion && !b.status) run.status = 'completed';
    if (run.status === 'completed' && !run.completed_at) run.completed_at = isoNow();
    if (b.output) run.output = { ...run.output, ...b.output };
    return [200, run];
  });
  route('GET', `${R}/check-runs/(\\d+)`, (ctx, req, o, n, id) => {
    const repo = needRepo(ctx, o, n);
    const run = state.checkRuns.find((r) => r.id === Number(id) && r.repository === repo.full_name);
    if (!run) throw new HttpError(404, 'Not Found');
    return [200, run];
  });
  function commentObject(repo, c) {
    return { id: c.id, node_id: `IC_${c.id}`, body: c.body, user: botUser(), created_at: c.created_at,
      updated_at: c.updated_at, author_association: 'NONE',
      url: `${url}/repos/${repo.full_name}/issues/comments/${c.id}`,
      html_url: `${webUrl()}/${repo.full_name}/issues/${c.issue}#issuecomment-${c.id}`,
      issue_url: `${url}/repos/${repo.full_name}/issues/${c.issue}` };
  }
  route('POST', `${R}/issues/(\\d+)/comments`, (ctx, req, o, n, num) => {
    const repo = needRepo(ctx, o, n);
    const b = ctx.body || {};
    if (typeof b.body !== 'string' || b.body.length === 0)
      throw new HttpError(422, 'Validation Failed', { errors: [{ resource: 'IssueComment', code: 'missing_field', field: 'body' }] });
    if (b.body.length > 65536)
      throw new HttpError(422, 'Validation Failed', { errors: [{ resource: 'IssueComment', code: 'custom', field: 'body', message: 'body is too long (maximum is 65536 characters)' }] });
    const c = { id: nextId++, repository: repo.full_name, issue: Number(num), body: b.body,
      created_at: isoNow(), updated_at: isoNow(), edits: 0 };
    state.comments.push(c);
    return [201, commentObject(repo, c)];
  });
  route('GET', `${R}/issues/(\\d+)/comments`, (ctx, req, o, n, num) => {
    const repo = needRepo(ctx, o, n);
    const list = state.comments.filter((c) => c.repository === repo.full_name && c.issue === Number(num))
      .map((c) => commentObject(repo, c));
    return paginate(req, ctx, list);
  });
  route('PATCH', `${R}/issues/comments/(\\d+)`, (ctx, req, o, n, id) => {
    const repo = needRepo(ctx, o, n);
    const c = state.comments.find((x) => x.id === Number(id) && x.repository === repo.full_name);
    if (!c) throw new HttpError(404, 'Not Found');
    if (typeof (ctx.body || {}).body !== 'string')
      throw new HttpError(422, 'Validation Failed', { errors: [{ resource: 'IssueComment', code: 'missing_field', field: 'body' }] });
    c.body = ctx.body.body;
    c.updated_at = isoNow();
    c.edits++;
    return [200, commentObject(repo, c)];
  });
  const REACTIONS = ['+1', '-1', 'laugh', 'confused', 'heart', 'hooray', 'rocket', 'eyes'];
  route('POST', `${R}/issues/comments/(\\d+)/reactions`, (ctx, req, o, n, id) => {
    const repo = needRepo(ctx, o, n);
    const content = (ctx.body || {}).content;
    if (!REACTIONS.includes(content))
      throw new HttpError(422, 'Validation Failed', { errors: [{ resource: 'Reaction', code: 'invalid', field: 'content' }] });
    const existing = state.reactions.find((r) => r.repository === repo.full_name && r.comment_id === Number(id) && r.content === content);
    if (existing) return [200, existing.object];
    const r = { id: nextId++, repository: repo.full_name, comment_id: Number(id), content };
    r.object = { id: r.id, node_id: `REA_${r.id}`, content, user: botUser(), created_at: isoNow() };
    state.reactions.push(r);
    return [201, r.object];
  });
  route('GET', `${R}/collaborators/([^/]+)/permission`, (ctx, req, o, n, user) => {
    const repo = needRepo(ctx, o, n);
    user = decodeURIComponent(user);
    const perms = state.permissions.get(repo.full_name);
    const permission = (perms && perms.get(user)) || 'none';
    const role = { admin: 'admin', maintain: 'maintain', write: 'write', triage: 'triage', read: 'read' }[permission] || 'none';
    return [200, { permission: permission === 'maintain' ? 'write' : permission === 'triage' ? 'read' : permission,
      role_name: role, user: { login: user, type: 'User' } }];
  });
  // The head repository of a pull request: the base repository itself, a
  // fork (p.headRepo 'owner/name', with fork: true), or null (a deleted fork).
  function headRepoObject(repo, p) {
    if (p.headRepo === undefined) return publicRepo(repo);
    if (p.headRepo === null) return null;
    const [owner, name] = p.headRepo.split('/');
    return { id: 900000 + p.id, name, full_name: p.headRepo, owner: { login: owner, type: 'User' }, private: false,
      fork: true, default_branch: repo.default_branch, html_url: `${webUrl()}/${p.headRepo}`,
      clone_url: `${webUrl()}/${p.headRepo}.git` };
  }
  function pullObject(repo, p) {
    return { id: p.id, node_id: `PR_${p.id}`, number: p.number, state: p.state, title: p.title, body: p.body,
      draft: !!p.draft, maintainer_can_modify: !!p.maintainer_can_modify, merged: false, merged_at: null,
      user: p.userLogin ? { login: p.userLogin, id: 700000 + p.id, type: 'User' } : botUser(),
      author_association: p.authorAssociation || 'NONE',
      created_at: p.created_at, updated_at: p.updated_at, closed_at: p.closed_at || null,
      head: { label: p.headLabel, ref: p.headRef, sha: p.headSha, repo: headRepoObject(repo, p) },
      base: { label: `${repo.owner.login}:${p.base}`, ref: p.base, sha: p.baseSha, repo: publicRepo(repo) },
      url: `${url}/repos/${repo.full_name}/pulls/${p.number}`,
      html_url: `${webUrl()}/${repo.full_name}/pull/${p.number}` };
  }
  route('POST', `${R}/pulls`, (ctx, req, o, n) => {
    const repo = needRepo(ctx, o, n);
    const b = ctx.body || {};
    for (const f of ['title', 'head', 'base'])
      if (!b[f]) throw new HttpError(422, 'Validation Failed', { errors: [{ resource: 'PullRequest', code: 'missing_field', field: f }] });
    const headRef = b.head.includes(':') ? b.head.split(':')[1] : b.head;
    const headOwner = b.head.includes(':') ? b.head.split(':')[0] : repo.owner.login;
    const headLabel = `${headOwner}:${headRef}`;
    if (typeof b.body === 'string' && b.body.length > 65536)
      throw new HttpError(422, 'Validation Failed', { errors: [{ resource: 'PullRequest', code: 'custom', field: 'body', message: 'body is too long (maximum is 65536 characters)' }] });
    const headSha = gitSha(repo.full_name, `refs/heads/${headRef}`);
    const baseSha = gitSha(repo.full_name, `refs/heads/${b.base}`);
    if (headSha === null)
      throw new HttpError(422, 'Validation Failed', { errors: [{ resource: 'PullRequest', field: 'head', code: 'invalid' }] });
    if (baseSha === null)
      throw new HttpError(422, 'Validation Failed', { errors: [{ resource: 'PullRequest', field: 'base', code: 'invalid' }] });
    if (state.pulls.find((p) => p.repository === repo.full_name && p.state === 'open' && p.headLabel === headLabel && p.base === b.base))
      throw new HttpError(422, 'Validation Failed', { errors: [{ resource: 'PullRequest', code: 'custom', message: `A pull request already exists for ${headLabel}.` }] });
    const number = (issueNumbers.get(repo.full_name) || 0) + 1;
    issueNumbers.set(repo.full_name, number);
    const p = { id: nextId++, number, repository: repo.full_name, state: 'open', title: b.title, body: b.body || null,
      draft: b.draft, maintainer_can_modify: b.maintainer_can_modify, headRef, headLabel, headSha: headSha || '0'.repeat(40),
      base: b.base, baseSha: baseSha || '0'.repeat(40), created_at: isoNow(), updated_at: isoNow() };
    state.pulls.push(p);
    return [201, pullObject(repo, p)];
  });
  route('GET', `${R}/pulls`, (ctx, req, o, n) => {
    const repo = needRepo(ctx, o, n);
    const st = ctx.query.state || 'open';
    let list = state.pulls.filter((p) => p.repository === repo.full_name && (st === 'all' || p.state === st));
    if (ctx.query.head) list = list.filter((p) => p.headLabel === ctx.query.head);
    if (ctx.query.base) list = list.filter((p) => p.base === ctx.query.base);
    return paginate(req, ctx, list.sort((a, b) => b.number - a.number).map((p) => pullObject(repo, p)));
  });
  // Whether head merges cleanly into base, as GitHub computes `mergeable`:
  // true, false (a conflict), or null (not known: closed, or no repository).
  function mergeable(repo, p) {
    const dir = gitRepoPath(repo.full_name);
    if (p.state !== 'open' || !fs.existsSync(dir)) return null;
    try {
      git(['merge-tree', '--write-tree', `refs/heads/${p.base}`, p.headSha], dir);
      return true;
    } catch (e) {
      return e.status === 1 ? false : null;
    }
  }
  route('GET', `${R}/pulls/(\\d+)`, (ctx, req, o, n, num) => {
    const repo = needRepo(ctx, o, n);
    const p = state.pulls.find((x) => x.repository === repo.full_name && x.number === Number(num));
    if (!p) throw new HttpError(404, 'Not Found');
    let m = mergeable(repo, p);
    if (mergeableUnknown > 0 && p.state === 'open') {
      mergeableUnknown--; // still being computed, as GitHub answers at first
      m = null;
    }
    return [200, { ...pullObject(repo, p), mergeable: m,
      mergeable_state: m === true ? 'clean' : m === false ? 'dirty' : 'unknown' }];
  });
  route('DELETE', `${R}/git/refs/(.+)`, (ctx, req, o, n, ref) => {
    const repo = needRepo(ctx, o, n);
    ref = decodeURIComponent(ref);
    const dir = gitRepoPath(repo.full_name);
    if (!/^(heads|tags)\/./.test(ref) || !fs.existsSync(dir) || gitSha(repo.full_name, `refs/${ref}`) === null)
      throw new HttpError(422, 'Reference does not exist');
    git(['update-ref', '-d', `refs/${ref}`], dir);
    state.deletedRefs.push({ repository: repo.full_name, ref });
    return [204, null];
  });
  route('PATCH', `${R}/pulls/(\\d+)`, (ctx, req, o, n, num) => {
    const repo = needRepo(ctx, o, n);
    const p = state.pulls.find((x) => x.repository === repo.full_name && x.number === Number(num));
    if (!p) throw new HttpError(404, 'Not Found');
    const b = ctx.body || {};
    if (b.state && !['open', 'closed'].includes(b.state))
      throw new HttpError(422, 'Validation Failed', { errors: [{ resource: 'PullRequest', code: 'invalid', field: 'state' }] });
    for (const k of ['title', 'body', 'state']) if (b[k] !== undefined) p[k] = b[k];
    if (b.base) p.base = b.base;
    p.updated_at = isoNow();
    if (p.state === 'closed' && !p.closed_at) p.closed_at = isoNow();
    return [200, pullObject(repo, p)];
  });

  // ---- control API -----------------------------------------------------------

  const control = {
    failNext(o = {}) {
      faults.push({ kind: 'fail', status: o.status || 500, count: o.count || 1, path: o.path, method: o.method,
        body: o.body || errorBody(o.status || 500, o.message || 'Server Error') });
    },
    secondaryLimit(o = {}) {
      faults.push({ kind: 'secondary', status: o.status || 403, count: o.count || 1, path: o.path, method: o.method,
        retryAfter: o.retryAfter === undefined ? 1 : o.retryAfter });
    },
    primaryLimit(o = {}) {
      faults.push({ kind: 'primary', status: o.status || 403, count: 1, path: o.path, method: o.method,
        resetIn: o.resetIn === undefined ? 2 : o.resetIn });
    },
    clearFaults() { faults.length = 0; primaryUntil = 0; },
    hang(o = {}) { faults.push({ kind: 'hang', count: o.count || 1, path: o.path, method: o.method }); },
    tokenOptions(o = {}) { if (o.expiresIn !== undefined) tokenExpiresIn = o.expiresIn; },
    issueToken(installationId, o = {}) { return issueToken(installationId, o).token; },
    revokeTokens() { for (const t of state.tokens.values()) t.revoked = true; },
    protectBranches(fullName, patterns) {
      for (const p of patterns) if (!/^[A-Za-z0-9._/*-]+$/.test(p)) throw new Error(`bad branch pattern ${p}`);
      const cases = patterns.map((p) => `    refs/heads/${p})
      echo "error: GH006: Protected branch update failed for $ref." >&2
      echo "error: Changes must be made through a pull request." >&2
      exit 1 ;;`).join('\n');
      const hook = path.join(gitRepoPath(fullName), 'hooks', 'pre-receive');
      fs.mkdirSync(path.dirname(hook), { recursive: true });
      fs.writeFileSync(hook, `#!/bin/sh\nwhile read old new ref; do\n  case "$ref" in\n${cases}\n  esac\ndone\nexit 0\n`,
        { mode: 0o755 });
    },
    // A pull request opened by someone else, e.g. from a fork: {number, headRef, headSha, base,
    // headRepo: 'owner/name' | null (deleted fork) | undefined (this repository),
    // authorAssociation, user, title}.  Its commits go under refs/pull/N/head (the test puts them there).
    addPull(fullName, o = {}) {
      const repo = state.repos.get(fullName);
      if (!repo) throw new Error(`no repository ${fullName}`);
      const number = o.number || (issueNumbers.get(fullName) || 0) + 1;
      if (number > (issueNumbers.get(fullName) || 0)) issueNumbers.set(fullName, number);
      const owner = o.headRepo ? o.headRepo.split('/')[0] : repo.owner.login;
      const p = { id: nextId++, number, repository: fullName, state: 'open', title: o.title || `PR ${number}`,
        body: o.body || null, headRef: o.headRef || 'patch-1', headLabel: `${owner}:${o.headRef || 'patch-1'}`,
        headSha: o.headSha, base: o.base || repo.default_branch,
        baseSha: gitSha(fullName, `refs/heads/${o.base || repo.default_branch}`) || '0'.repeat(40),
        headRepo: o.headRepo, authorAssociation: o.authorAssociation, userLogin: o.user,
        created_at: isoNow(), updated_at: isoNow() };
      state.pulls.push(p);
      return pullObject(repo, p);
    },
    mergeableUnknown(count = 1) { mergeableUnknown = count; },
    denyPush(fullName, deny = true) {
      if (deny) pushDenied.add(fullName); else pushDenied.delete(fullName);
    },
    addRepo,
    setPermission(repo, user, permission) {
      if (!state.permissions.has(repo)) state.permissions.set(repo, new Map());
      state.permissions.get(repo).set(user, permission);
    },
    setFile(repo, ref, p, content) { state.files.set(`${repo}@${ref}:${p}`, Buffer.from(content)); },
    addDelivery(o = {}) {
      const d = { id: o.id || nextId++, guid: o.guid || crypto.randomUUID(), delivered_at: o.delivered_at || isoNow(),
        redelivery: !!o.redelivery, duration: 0.1, status: (o.status_code || 200) < 300 ? 'OK' : 'failed',
        status_code: o.status_code === undefined ? 200 : o.status_code, event: o.event || 'push',
        action: o.action === undefined ? null : o.action, installation_id: o.installation_id || 1, repository_id: o.repository_id || null };
      state.deliveries.push(d);
      return d;
    },
    appOptions(o = {}) {
      if (o.permissions) appPermissions = { ...o.permissions };
      if (o.events) appEvents = [...o.events];
    },
    hookConfig(o = {}) {
      for (const k of ['url', 'content_type', 'secret']) if (o[k] !== undefined) hook[k] = o[k];
    },
    deliveryOptions(o = {}) { if (o.redeliveryStatusCode !== undefined) redeliveryStatusCode = o.redeliveryStatusCode; },
    addManifestCode(code, o = {}) {
      state.manifestCodes.set(code, {
        id: appId, slug, node_id: `A_${appId}`, name: slug, owner: { login: 'octo-org', id: 501 },
        html_url: `${webUrl()}/apps/${slug}`, client_id: 'Iv1.fakeclientid', client_secret: `secret_${b64url(crypto.randomBytes(12))}`,
        webhook_secret: `whsec_${b64url(crypto.randomBytes(12))}`, pem: opts.privateKeyPem || '', ...o,
      });
    },
    createGitRepo,
    gitUrl(fullName) { return `${url}/git/${fullName}.git`; },
    gitRepoPath,
    resetRequests() { requests.length = 0; },
    addUser(login, o = {}) {
      const u = { login, id: o.id || nextId++, avatar_url: o.avatar_url || `${webUrl()}/avatars/${login}.png`,
        repositories: new Set(o.repositories || []) };
      state.users.set(login, u);
      return userObject(u);
    },
    signInAs(login) { state.signedIn = login || null; },
    revokeUserTokens() { for (const t of state.userTokens.values()) t.revoked = true; },
  };

  async function handleControl(req, res, ctx) {
    const name = ctx.path.slice('/_fake/'.length);
    if (req.method === 'GET' && name === 'requests') return send(res, 200, requests);
    if (req.method === 'GET' && name === 'state') {
      return send(res, 200, {
        checkRuns: state.checkRuns, comments: state.comments, pulls: state.pulls, redeliveries: state.redeliveries,
        reactions: state.reactions.map((r) => ({ repository: r.repository, comment_id: r.comment_id, content: r.content })),
        deliveries: state.deliveries, tokensIssued: state.tokensIssued,
      });
    }
    const b = ctx.body || {};
    let result;
    switch (name) {
      case 'issueToken': result = { token: control.issueToken(b.installationId || 1, b) }; break;
      case 'addRepo': result = publicRepo(control.addRepo(b.fullName, b)); break;
      case 'setPermission': control.setPermission(b.repo, b.user, b.permission); break;
      case 'setFile': control.setFile(b.repo, b.ref, b.path, b.content); break;
      case 'addManifestCode': control.addManifestCode(b.code, b.data || {}); break;
      case 'createGitRepo': result = { path: control.createGitRepo(b.fullName, b) }; break;
      case 'protectBranches': control.protectBranches(b.repo, b.patterns || []); break;
      case 'denyPush': control.denyPush(b.repo, b.deny !== false); break;
      case 'addUser': result = control.addUser(b.login, b); break;
      case 'signInAs': control.signInAs(b.login); break;
      default:
        if (typeof control[name] !== 'function') return send(res, 404, errorBody(404, `no control ${name}`));
        result = control[name](b);
    }
    return send(res, 200, result === undefined ? {} : result);
  }

  async function handle(req, res) {
    const u = new URL(req.url, 'http://127.0.0.1');
    const ctx = {
      method: req.method, path: u.pathname, rawQuery: u.search.slice(1),
      query: Object.fromEntries(u.searchParams.entries()),
    };
    if (ctx.path.startsWith('/git/')) {
      requests.push({ method: req.method, path: ctx.path, query: ctx.query, headers: { ...req.headers }, body: null,
        auth: 'git', time: Date.now() });
      return serveGit(req, res, ctx);
    }
    const raw = await readBody(req);
    let body = null;
    if (raw.length) {
      try { body = JSON.parse(raw.toString()); } catch (e) { body = raw.toString(); }
    }
    ctx.body = body;
    if (ctx.path.startsWith('/_fake/')) return handleControl(req, res, ctx);
    authenticate(req, ctx);
    requests.push({ method: req.method, path: ctx.path, query: ctx.query, headers: { ...req.headers }, body,
      auth: ctx.auth, installationId: ctx.installationId || null, time: Date.now() });
    const now = Math.floor(Date.now() / 1000);
    if (primaryUntil > now) {
      return send(res, 403, errorBody(403, `API rate limit exceeded for installation ID ${ctx.installationId || 0}.`),
        { 'x-ratelimit-limit': '5000', 'x-ratelimit-remaining': '0', 'x-ratelimit-used': '5000',
          'x-ratelimit-reset': String(primaryUntil), 'x-ratelimit-resource': 'core' });
    }
    const fault = takeFault(ctx);
    if (fault) {
      if (fault.kind === 'hang') {
        hanging.add(res);
        res.on('close', () => hanging.delete(res));
        return undefined;
      }
      if (fault.kind === 'fail') return send(res, fault.status, fault.body, rateHeaders(ctx));
      if (fault.kind === 'secondary') {
        const h = { ...rateHeaders(ctx) };
        if (fault.retryAfter !== null) h['retry-after'] = String(fault.retryAfter);
        return send(res, fault.status, errorBody(fault.status,
          'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.'), h);
      }
      if (fault.kind === 'primary') {
        primaryUntil = now + fault.resetIn;
        return send(res, fault.status, errorBody(fault.status, `API rate limit exceeded for installation ID ${ctx.installationId || 0}.`),
          { 'x-ratelimit-limit': '5000', 'x-ratelimit-remaining': '0', 'x-ratelimit-used': '5000',
            'x-ratelimit-reset': String(primaryUntil), 'x-ratelimit-resource': 'core' });
      }
    }
    for (const r of routes) {
      if (r.method !== req.method) continue;
      const m = r.re.exec(ctx.path);
      if (!m) continue;
      const out = r.fn(ctx, req, ...m.slice(1));
      const headers = rateHeaders(ctx);
      if (Array.isArray(out)) return send(res, out[0], out[1], headers);
      if (out.raw !== undefined) {
        res.writeHead(out.status || 200, { 'content-type': 'application/x-www-form-urlencoded' });
        return res.end(out.raw);
      }
      if (out.status === 302) {
        res.writeHead(302, out.headers);
        return res.end();
      }
      return send(res, 200, out.body, { ...headers, ...out.headers });
    }
    throw new HttpError(404, 'Not Found');
  }

  server = http.createServer((req, res) => {
    handle(req, res).catch((e) => {
      if (res.headersSent) return res.destroy();
      if (e instanceof HttpError) {
        return send(res, e.status, errorBody(e.status, e.message, e.extra));
      }
      return send(res, 500, errorBody(500, `fake GitHub error: ${e.message}`));
    });
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port || 0, opts.host || '127.0.0.1', resolve);
  });
  const port = server.address().port;
  url = `http://127.0.0.1:${port}`;
  for (const r of state.repos.values()) {
    r.html_url = `${webUrl()}/${r.full_name}`;
    r.clone_url = `${url}/git/${r.full_name}.git`;
  }

  async function waitFor(pred, timeoutMs = 5000) {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      if (await pred(fake)) return true;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error('fake GitHub: condition not met in time');
  }

  async function close() {
    for (const res of hanging) res.destroy();
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(() => resolve()));
    if (ownedGitRoot) fs.rmSync(gitRoot, { recursive: true, force: true });
  }

  const fake = { url, port, requests, state, gitRoot, waitFor, close, ...control };
  return fake;
}

module.exports = { startFakeGitHub, verifyJwt };

if (require.main === module) {
  const args = process.argv.slice(2);
  const get = (name) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const installations = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] !== '--installation') continue;
    const [id, repos] = args[i + 1].split(':');
    installations.push({ id: Number(id), account: (repos || 'octo-org/x').split('/')[0], repositories: repos ? repos.split(',') : [] });
  }
  const pubFile = get('public-key');
  if (!pubFile) {
    process.stderr.write('usage: server.js --port N --app-id N --public-key FILE [--private-key FILE] [--git-root DIR] [--installation ID:o/r,...]\n');
    process.exit(2);
  }
  startFakeGitHub({
    port: Number(get('port') || 0),
    appId: Number(get('app-id') || 4242),
    publicKeyPem: fs.readFileSync(pubFile, 'utf8'),
    privateKeyPem: get('private-key') ? fs.readFileSync(get('private-key'), 'utf8') : undefined,
    gitRoot: get('git-root'),
    installations: installations.length ? installations : undefined,
  }).then((fake) => {
    process.stdout.write(`${fake.url}\n`);
    const stop = () => fake.close().then(() => process.exit(0));
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  }, (e) => {
    process.stderr.write(`fake GitHub failed to start: ${e.message}\n`);
    process.exit(1);
  });
}
