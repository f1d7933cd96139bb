// Starts and stops the real perfbot binary for integration tests, and talks
// to it the way GitHub and an operator do: signed webhook requests over
// plain HTTP (node:http, so headers, methods and body framing are exactly
// what the test asks for), and the CLI subcommands against the same
// DATA_DIR.  The binary comes from PERFBOT_BIN (normal or sanitizer build).
import assert from 'node:assert/strict';
import { spawn, execFile, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, '..', '..', '..');
export const BIN = process.env.PERFBOT_BIN
  ? path.resolve(process.env.PERFBOT_BIN)
  : path.join(ROOT, 'build', 'perfbot');
export const FIXTURES = path.join(ROOT, 'tests', 'data', 'webhooks');
export const WEBHOOK_PATH = '/api/github/webhooks';
// sanitizer builds run several times slower: every wait scales with this
export const SLOW = /san/.test(path.basename(path.dirname(BIN))) ? 3 : 1;

const SANITIZER_REPORT = /ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer/;

// The agent command runs confined: its /tmp is its run's own directory and,
// under root, it runs as a uid of its own.  The scripts it runs (and the MCP
// SDK they import) must be reachable by that uid outside /tmp: the checkout's
// tests/ when every ancestor lets others in, else a copy under /var/tmp,
// removed when the test process ends.
function reachableByAnyone(dir) {
  if (dir === '/tmp' || dir.startsWith('/tmp/')) return false;
  for (let d = dir; ; d = path.dirname(d)) {
    if ((fs.statSync(d).mode & 0o005) !== 0o005) return false;
    if (d === path.dirname(d)) return true;
  }
}
export const AGENT_HOME = (() => {
  const tests = path.join(ROOT, 'tests');
  if (reachableByAnyone(tests)) return tests;
  const copy = fs.mkdtempSync('/var/tmp/perfbot-agent-scripts-');
  fs.chmodSync(copy, 0o755);
  fs.cpSync(path.join(tests, 'agent'), path.join(copy, 'agent'), { recursive: true });
  fs.cpSync(path.join(tests, 'node_modules'), path.join(copy, 'node_modules'), { recursive: true });
  process.on('exit', () => fs.rmSync(copy, { recursive: true, force: true }));
  return copy;
})();
// The scripted MCP agent (tests/agent/scripted-agent.mjs) where an agent command can run it.
export const SCRIPTED_AGENT = path.join(AGENT_HOME, 'agent', 'scripted-agent.mjs');

// Host pids of processes whose command line is exactly `args` (an agent's
// pid namespace does not hide them from here), zombies left out.
export function processesRunning(...args) {
  const want = args.join('\0') + '\0';
  return fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((pid) => {
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8') === want
        && !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    } catch {
      return false;
    }
  }).map(Number);
}

export function tmpDir(prefix = 'perfbot-it-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

// The files of the repository tests/data/NAME (path relative to it -> text),
// with `extra` laid over them: what a fake GitHub repository is made of.
export function dataRepoFiles(name, extra = {}) {
  const src = path.join(ROOT, 'tests', 'data', name);
  const files = {};
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else files[path.relative(src, p)] = fs.readFileSync(p, 'utf8');
    }
  };
  walk(src);
  return { ...files, ...extra };
}

// A local git repository at `dest`: a copy of tests/data/NAME committed once
// on main.
export function dataRepoCommitted(name, dest) {
  fs.cpSync(path.join(ROOT, 'tests', 'data', name), dest, { recursive: true });
  const git = (...args) => execFileSync('git', ['-C', dest, '-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args]);
  execFileSync('git', ['init', '-q', '-b', 'main', dest]);
  git('add', '-A');
  git('commit', '-qm', 'base');
}

// The fake GitHub (tests/fake-github/server.js) serving the App `appId`,
// installed on octo-org, and the App's private key written to <dir>/app.pem:
// { fake, keyPath }.
export async function startFakeGitHubApp(dir, appId) {
  const { startFakeGitHub } = createRequire(import.meta.url)('../../fake-github/server.js');
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyPath = path.join(dir, 'app.pem');
  fs.writeFileSync(keyPath, privateKey.export({ type: 'pkcs1', format: 'pem' }), { mode: 0o600 });
  const fake = await startFakeGitHub({
    appId,
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }),
    installations: [{ id: 1, account: 'octo-org', repositories: [] }],
  });
  return { fake, keyPath };
}

// `perfbot receive` of one event to the server at `url`: the payload written
// to a file under `dir`, signed with `secret`; fails the test unless it exits 0.
export async function receiveEvent({ dir, url, secret }, event, payload) {
  const file = path.join(dir, `${event}-${crypto.randomUUID()}.json`);
  fs.writeFileSync(file, JSON.stringify(payload));
  const r = await cli(['receive', '-e', event, '-p', file, '--url', url, '--secret', secret]);
  assert.equal(r.code, 0, `perfbot receive ${event}: ${r.stderr}`);
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

export function deliveryId() {
  return crypto.randomUUID();
}

export function sign(body, secret) {
  return 'sha256=' + crypto.createHmac('sha256', secret).update(body).digest('hex');
}

// A captured request from tests/data/webhooks: its raw body and the headers
// GitHub sent with it.
const captured = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'requests.json'), 'utf8'));
export function fixture(name) {
  const headers = captured[name];
  assert.ok(headers, `no captured headers for ${name}`);
  return { file: path.join(FIXTURES, name), body: fs.readFileSync(path.join(FIXTURES, name)), headers: { ...headers } };
}

// Environment for a child perfbot: nothing inherited that could change its
// configuration (a developer's WEBHOOK_SECRET, PORT...), sanitizer options kept.
function childEnv(extra) {
  const env = { PATH: process.env.PATH, HOME: process.env.HOME || '/tmp', LOG_FORMAT: 'json' };
  for (const k of ['ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS', 'TMPDIR'])
    if (process.env[k] !== undefined) env[k] = process.env[k];
  for (const [k, v] of Object.entries(extra || {}))
    if (v === undefined || v === null) delete env[k];
    else env[k] = String(v);
  return env;
}

// Runs a CLI subcommand to completion: { code, signal, stdout, stderr }.
export function cli(args, { env, cwd, timeoutMs = 20000 * SLOW } = {}) {
  return new Promise((resolve) => {
    execFile(BIN, args, { env: childEnv(env), cwd: cwd || os.tmpdir(), timeout: timeoutMs, maxBuffer: 256 << 20 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
        resolve({ code, signal: err ? err.signal : null, stdout, stderr });
      });
  });
}

export async function deliveries(dataDir, extra = []) {
  const r = await cli(['deliveries', '--json', '--limit', '1000000', ...extra, '--data-dir', dataDir]);
  assert.equal(r.code, 0, `perfbot deliveries failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

export async function jobs(dataDir) {
  const r = await cli(['jobs', '--json', '--limit', '1000000', '--data-dir', dataDir]);
  assert.equal(r.code, 0, `perfbot jobs failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

// Rows of a query on DATA_DIR/perfbot.db through the sqlite3 CLI.
export function sqlite(dataDir, sql) {
  return new Promise((resolve, reject) => {
    execFile('sqlite3', ['-json', '-cmd', '.timeout 5000', path.join(dataDir, 'perfbot.db'), sql],
      (err, stdout, stderr) => {
        if (err) reject(new Error(`sqlite3: ${stderr || err.message}`));
        else resolve(stdout.trim() ? JSON.parse(stdout) : []);
      });
  });
}

// The bytes of a stored delivery's body, as the SQLite store keeps them:
// in its body log beside the database (the row says where), or inline in
// the row (a row from before the log).
export async function storedBody(dataDir, id) {
  const [row] = await sqlite(dataDir, 'SELECT hex(body) AS h, body_segment AS s, body_offset AS o, body_length AS n' +
    ` FROM deliveries WHERE id = '${id.replace(/'/g, "''")}'`);
  if (!row) return null;
  if (row.s === null || row.o === null || row.o < 0) return Buffer.from(row.h ?? '', 'hex');
  const file = path.join(dataDir, 'perfbot.db-bodies', `${String(row.s).padStart(6, '0')}.log`);
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(row.n);
    fs.readSync(fd, buf, 0, row.n, row.o);
    return buf;
  } finally {
    fs.closeSync(fd);
  }
}

// Polls fn until it returns a truthy value; returns that value.
export async function waitFor(fn, { timeoutMs = 10000 * SLOW, everyMs = 50, what = 'condition' } = {}) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

// Jobs of DATA_DIR once none is queued or running.
export async function settledJobs(dataDir, opts = {}) {
  return waitFor(async () => {
    const all = await jobs(dataDir);
    return all.every((j) => j.state !== 'queued' && j.state !== 'running') ? all : null;
  }, { what: 'jobs to settle', everyMs: 100, ...opts });
}

// A running `perfbot serve`.  Logs are collected from stderr (JSON lines).
export class Server {
  constructor(proc, dataDir) {
    this.proc = proc;
    this.dataDir = dataDir;
    this.stderr = '';
    this.stdout = '';
    this.port = 0;
    this.exited = new Promise((resolve) => {
      proc.on('exit', (code, signal) => resolve({ code, signal }));
    });
    proc.stderr.setEncoding('utf8');
    proc.stdout.setEncoding('utf8');
    proc.stderr.on('data', (d) => { this.stderr += d; });
    proc.stdout.on('data', (d) => { this.stdout += d; });
  }

  logs() {
    const out = [];
    for (const line of this.stderr.split('\n')) {
      if (!line.startsWith('{')) continue;
      try { out.push(JSON.parse(line)); } catch { /* a partial line */ }
    }
    return out;
  }

  get url() {
    return `http://127.0.0.1:${this.port}${WEBHOOK_PATH}`;
  }

  sanitizerReport() {
    return SANITIZER_REPORT.test(this.stderr) ? this.stderr : null;
  }

  // Sends a signal and waits for the exit: { code, signal, stderr }.
  async stop(sig = 'SIGTERM', timeoutMs = 20000 * SLOW) {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill(sig);
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), timeoutMs);
    const r = await this.exited;
    clearTimeout(timer);
    return { ...r, stderr: this.stderr };
  }

  async kill() {
    return this.stop('SIGKILL');
  }
}

// Starts `perfbot serve` on a free port (PORT 0, the port read back from the
// "listening" log line) and waits until /healthz answers.
export async function startServer({ dataDir, secret = 'test-secret', env = {}, args = [], timeoutMs = 15000 * SLOW } = {}) {
  dataDir = dataDir || tmpDir();
  const proc = spawn(BIN, ['serve', '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir, ...args], {
    env: childEnv({ WEBHOOK_SECRET: secret, WORKERS: 2, ...env }),
    cwd: dataDir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const srv = new Server(proc, dataDir);
  const end = Date.now() + timeoutMs;
  while (!srv.port) {
    const listening = srv.logs().find((l) => l.msg === 'listening');
    if (listening) srv.port = Number(listening.port);
    else if (proc.exitCode !== null || proc.signalCode !== null)
      throw new Error(`perfbot serve exited (${proc.exitCode}) before listening:\n${srv.stderr}`);
    else if (Date.now() > end) {
      proc.kill('SIGKILL');
      throw new Error(`perfbot serve did not listen within ${timeoutMs} ms:\n${srv.stderr}`);
    } else await sleep(20);
  }
  const h = await request(srv.port, { method: 'GET', path: '/healthz' });
  assert.equal(h.status, 200, 'GET /healthz');
  return srv;
}

// One HTTP request with exactly the given headers.  body: Buffer/string sent
// with a Content-Length (unless headers say otherwise), or an array of chunks
// sent one write at a time (chunked unless a Content-Length is given).
// Resolves { status, headers, text, json } or rejects with the socket error.
export function request(port, { method = 'POST', path: p = WEBHOOK_PATH, headers = {}, body, agent = false,
  timeoutMs = 15000 * SLOW } = {}) {
  return new Promise((resolve, reject) => {
    const hasLength = Object.keys(headers).some((k) => k.toLowerCase() === 'content-length');
    const h = { ...headers };
    if (body !== undefined && !Array.isArray(body) && !hasLength) h['Content-Length'] = Buffer.byteLength(body);
    const req = http.request({ host: '127.0.0.1', port, method, path: p, headers: h, agent });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.on('response', (res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        let json = null;
        try { json = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    if (Array.isArray(body)) for (const c of body) req.write(c);
    else if (body !== undefined) req.write(body);
    req.end();
  });
}

// Headers of a correctly signed GitHub delivery.
export function webhookHeaders({ event, body, secret = 'test-secret', delivery = deliveryId(),
  contentType = 'application/json', extra = {} }) {
  return {
    'Content-Type': contentType,
    'User-Agent': 'GitHub-Hookshot/7e1a3b2',
    'X-GitHub-Event': event,
    'X-GitHub-Delivery': delivery,
    'X-GitHub-Hook-ID': '523456789',
    'X-GitHub-Hook-Installation-Target-Type': 'integration',
    'X-GitHub-Hook-Installation-Target-ID': '1012345',
    'X-Hub-Signature-256': sign(body, secret),
    ...extra,
  };
}

// POSTs a signed delivery; returns the answer plus the delivery id used.
export async function deliver(port, { event, body, secret = 'test-secret', delivery = deliveryId(),
  contentType = 'application/json', extra = {}, agent = false }) {
  if (typeof body === 'object' && !Buffer.isBuffer(body)) body = JSON.stringify(body);
  const headers = webhookHeaders({ event, body, secret, delivery, contentType, extra });
  const res = await request(port, { headers, body, agent });
  return { ...res, delivery };
}

// POSTs a captured fixture with its captured headers.
export async function deliverFixture(port, name, { secret = 'test-secret', delivery = deliveryId() } = {}) {
  const f = fixture(name);
  return deliver(port, {
    event: f.headers['X-GitHub-Event'], body: f.body, secret, delivery, contentType: f.headers['Content-Type'],
  });
}

// Parses the Prometheus text of GET /metrics: { 'name{labels}': value }.
export async function metrics(port) {
  const r = await request(port, { method: 'GET', path: '/metrics' });
  assert.equal(r.status, 200, 'GET /metrics');
  const out = {};
  for (const line of r.text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out[line.slice(0, i)] = Number(line.slice(i + 1));
  }
  return out;
}

// Sum of every series of a metric whose labels include all of `labels`.
export function metricSum(m, name, labels = {}) {
  let sum = 0;
  for (const [key, v] of Object.entries(m)) {
    const brace = key.indexOf('{');
    const n = brace < 0 ? key : key.slice(0, brace);
    if (n !== name) continue;
    const ls = brace < 0 ? '' : key.slice(brace);
    if (Object.entries(labels).every(([k, val]) => ls.includes(`${k}="${val}"`))) sum += v;
  }
  return sum;
}

// Raw exchange over one TCP connection: writes `data` (the whole request or
// just its head) and reads until the server closes or a complete answer
// (headers plus Content-Length bytes) has arrived.  For requests node:http
// would refuse to send (a declared length with no body).
export function rawExchange(port, data, { timeoutMs = 10000 * SLOW } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    const parts = [];
    const started = Date.now();
    let done = false;
    const finish = (closed) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const text = Buffer.concat(parts).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      const sep = text.indexOf('\r\n\r\n');
      const head = sep >= 0 ? text.slice(0, sep) : text;
      const body = sep >= 0 ? text.slice(sep + 4) : '';
      let json = null;
      try { json = JSON.parse(body); } catch { /* not JSON */ }
      sock.destroy();
      resolve({ status: m ? Number(m[1]) : 0, head, body, json, closed, ms: Date.now() - started });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.on('data', (d) => {
      parts.push(d);
      const text = Buffer.concat(parts).toString('latin1');
      const sep = text.indexOf('\r\n\r\n');
      const cl = /\r\ncontent-length:\s*(\d+)/i.exec(text.slice(0, sep >= 0 ? sep : text.length));
      if (sep >= 0 && cl && Buffer.byteLength(text.slice(sep + 4), 'latin1') >= Number(cl[1])) finish(false);
    });
    sock.on('end', () => finish(true));
    sock.on('close', () => finish(true));
    sock.on('error', (e) => (parts.length ? finish(true) : (done = true, clearTimeout(timer), reject(e))));
    sock.write(data);
  });
}

// The head of a request as text, for rawExchange.
export function requestHead(method, p, headers) {
  let s = `${method} ${p} HTTP/1.1\r\nHost: 127.0.0.1\r\n`;
  for (const [k, v] of Object.entries(headers)) s += `${k}: ${v}\r\n`;
  return s + '\r\n';
}
