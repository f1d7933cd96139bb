// Graceful shutdown of the real perfbot binary: on SIGTERM / SIGINT /readyz
// turns 503, new connections are refused, an upload already in flight
// finishes and is stored (202), the process exits 0, and nothing accepted is
// lost: the next start runs the jobs that were still queued.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import {
  SLOW, WEBHOOK_PATH, deliver, deliveries, deliveryId, fixture, jobs, request, requestHead, sleep, startServer,
  waitFor, webhookHeaders,
} from './lib/perfbot.js';

const SECRET = 'shutdown-test-secret';

// One keep-alive TCP connection on which requests are sent one after the
// other; each answer is read up to its Content-Length.
class Conn {
  constructor(port) {
    this.sock = net.connect(port, '127.0.0.1');
    this.buf = Buffer.alloc(0);
    this.waiting = null;
    this.closed = false;
    this.sock.on('data', (d) => { this.buf = Buffer.concat([this.buf, d]); this.pump(); });
    this.sock.on('close', () => { this.closed = true; this.pump(); });
    this.sock.on('error', () => {});
  }

  ready() {
    return new Promise((resolve, reject) => { this.sock.once('connect', resolve); this.sock.once('error', reject); });
  }

  pump() {
    if (!this.waiting) return;
    const text = this.buf.toString('latin1');
    const sep = text.indexOf('\r\n\r\n');
    if (sep >= 0) {
      const head = text.slice(0, sep);
      const cl = Number((/\r\ncontent-length:\s*(\d+)/i.exec(head) || [0, 0])[1]);
      if (this.buf.length >= sep + 4 + cl) {
        const body = this.buf.subarray(sep + 4, sep + 4 + cl).toString('utf8');
        this.buf = this.buf.subarray(sep + 4 + cl);
        const w = this.waiting;
        this.waiting = null;
        let json = null;
        try { json = JSON.parse(body); } catch { /* not JSON */ }
        w.resolve({ status: Number(head.slice(9, 12)), head, body, json });
        return;
      }
    }
    if (this.closed) {
      const w = this.waiting;
      this.waiting = null;
      w.reject(new Error('connection closed before an answer'));
    }
  }

  // Writes raw bytes; the answer (if awaited) is the next full response.
  write(data) {
    this.sock.write(data);
  }

  answer(timeoutMs = 15000 * SLOW) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no answer')), timeoutMs);
      this.waiting = {
        resolve: (v) => { clearTimeout(timer); resolve(v); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      };
      this.pump();
    });
  }

  // Waits for an interim "100 Continue" and takes it off the buffer.
  async continued(timeoutMs = 15000 * SLOW) {
    const line = 'HTTP/1.1 100 Continue\r\n\r\n';
    await waitFor(() => this.buf.toString('latin1').startsWith(line) || this.closed,
      { timeoutMs, everyMs: 10, what: '100 Continue' });
    assert.ok(!this.closed, 'the connection stayed open');
    this.buf = this.buf.subarray(line.length);
  }

  get(path) {
    this.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    return this.answer();
  }

  close() {
    this.sock.destroy();
  }
}

function connectError(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(null); });
    s.once('error', (e) => resolve(e.code));
  });
}

test('SIGTERM: readyz 503, new connections refused, a slow upload in flight still gets 202, exit 0', async () => {
  const srv = await startServer({ secret: SECRET, env: { SHUTDOWN_GRACE_SECONDS: 20 } });
  const probe = new Conn(srv.port);
  await probe.ready();
  assert.equal((await probe.get('/readyz')).status, 200);

  // a push whose body arrives slowly: half now, the rest after SIGTERM
  const body = fixture('push.json').body;
  const id = deliveryId();
  const upload = new Conn(srv.port);
  await upload.ready();
  upload.write(requestHead('POST', WEBHOOK_PATH, { ...webhookHeaders({ event: 'push', body, secret: SECRET, delivery: id }),
    'Content-Length': body.length, Expect: '100-continue' }));
  await upload.continued(); // the server has taken the request head: the request is in flight
  upload.write(body.subarray(0, body.length >> 1));

  srv.proc.kill('SIGTERM');
  await waitFor(() => srv.logs().some((l) => l.msg === 'draining'), { what: 'the draining log line' });

  const ready = await probe.get('/readyz');
  assert.equal(ready.status, 503, `readyz while draining: ${ready.status} ${ready.body}`);
  assert.equal(await connectError(srv.port), 'ECONNREFUSED', 'new connections are refused while draining');
  assert.equal(srv.proc.exitCode, null, 'still running while the upload is in flight');

  await sleep(300 * SLOW);
  const pending = upload.answer();
  upload.write(body.subarray(body.length >> 1));
  const res = await pending;
  assert.equal(res.status, 202, `${res.head}\n${res.body}`);
  assert.deepEqual(res.json, { delivery: id, status: 'queued' });

  const exit = await srv.stop('SIGTERM', 30000 * SLOW);
  probe.close();
  upload.close();
  assert.ok(srv.logs().some((l) => l.msg === 'stopped'), 'logs "stopped"');

  // the delivery is durable, and its job runs exactly once by the next start
  const listed = (await deliveries(srv.dataDir)).find((d) => d.id === id);
  assert.ok(listed, 'the in-flight delivery is stored');
  const again = await startServer({ secret: SECRET, dataDir: srv.dataDir });
  try {
    const js = await waitFor(async () => {
      const all = (await jobs(srv.dataDir)).filter((j) => j.delivery_id === id);
      return all.length && all.every((j) => j.state === 'done') ? all : null;
    }, { what: 'the job of the in-flight delivery' });
    assert.equal(js.length, 1);
    assert.equal(js[0].completions, 1);
  } finally {
    await again.stop();
  }
  // checked last so that the durability checks above report on their own
  assert.ok(!srv.sanitizerReport(), srv.sanitizerReport() ?? '');
  assert.equal(exit.code, 0, exit.stderr.slice(-3000));
});

test('SIGINT with an idle keep-alive connection open: exits 0 promptly', async () => {
  const srv = await startServer({ secret: SECRET });
  const idle = new Conn(srv.port);
  await idle.ready();
  assert.equal((await idle.get('/healthz')).status, 200);
  const t0 = Date.now();
  const exit = await srv.stop('SIGINT', 30000 * SLOW);
  const ms = Date.now() - t0;
  idle.close();
  assert.equal(exit.code, 0, exit.stderr.slice(-3000));
  assert.ok(ms < 5000 * SLOW, `took ${ms} ms`);
  assert.ok(srv.logs().some((l) => l.msg === 'draining' && l.signal === 'SIGINT'));
  assert.ok(!srv.sanitizerReport(), srv.sanitizerReport() ?? '');
});

test('deliveries accepted just before SIGTERM are all processed, each job once, after a restart', async () => {
  const srv = await startServer({ secret: SECRET, env: { WORKERS: 1 } });
  const ping = JSON.parse(fixture('ping.json').body);
  const ids = [];
  const sends = [];
  for (let i = 0; i < 40; i++) {
    const body = JSON.stringify({ ...ping, hook_id: 9000 + i, hook: { ...ping.hook, id: 9000 + i } });
    sends.push(deliver(srv.port, { event: 'ping', body, secret: SECRET }).then((r) => {
      assert.equal(r.status, 202, r.text);
      ids.push(r.delivery);
    }));
  }
  await Promise.all(sends);
  const exit = await srv.stop('SIGTERM', 30000 * SLOW);
  // nothing is left running: leases are released on the way out
  const left = await jobs(srv.dataDir);
  assert.ok(left.every((j) => j.state !== 'running'), `jobs left running: ${JSON.stringify(left.filter((j) => j.state === 'running'))}`);

  const again = await startServer({ secret: SECRET, dataDir: srv.dataDir });
  try {
    const all = await waitFor(async () => {
      const js = (await jobs(srv.dataDir)).filter((j) => ids.includes(j.delivery_id));
      return js.length === ids.length && js.every((j) => j.state === 'done') ? js : null;
    }, { what: 'every job done' });
    for (const j of all) assert.equal(j.completions, 1, JSON.stringify(j));
    assert.equal(new Set(all.map((j) => j.delivery_id)).size, ids.length, 'one job per delivery');
  } finally {
    await again.stop();
  }
  assert.equal(exit.code, 0, exit.stderr.slice(-3000));
});

// A GitHub API that answers every request after `delayMs` (404), so that a
// job calling it is still running when the server is told to stop.
async function slowGitHub(delayMs) {
  const seen = [];
  const server = http.createServer((req, res) => {
    const r = { method: req.method, url: req.url, started: Date.now(), answered: 0 };
    seen.push(r);
    req.resume();
    const timer = setTimeout(() => {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"message":"Not Found"}');
      r.answered = Date.now();
    }, delayMs);
    res.on('close', () => clearTimeout(timer));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { seen, url: `http://127.0.0.1:${server.address().port}`,
    close: () => { server.closeAllConnections(); return new Promise((r) => server.close(r)); } };
}

// A job that talks to GitHub: a /perfbot command in an issue comment.
async function startWithSlowJob(delayMs, grace) {
  const gh = await slowGitHub(delayMs);
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const srv = await startServer({ secret: SECRET, env: {
    APP_ID: '1012345', PRIVATE_KEY: privateKey.export({ type: 'pkcs1', format: 'pem' }), GITHUB_API_URL: gh.url,
    SHUTDOWN_GRACE_SECONDS: grace, WORKERS: 1, JOB_ATTEMPTS: 5 } });
  const body = {
    action: 'created', installation: { id: 52961404 }, repository: { full_name: 'octo-org/fastjson' },
    issue: { number: 3 }, comment: { id: 11, body: '/perfbot help', user: { login: 'monalisa', type: 'User' } },
    sender: { login: 'monalisa', type: 'User' },
  };
  const r = await deliver(srv.port, { event: 'issue_comment', body, secret: SECRET });
  assert.equal(r.status, 202, r.text);
  await waitFor(() => gh.seen.length > 0, { what: 'the job to call GitHub' });
  // the claim is recorded by the next group commit, not before the job starts
  await waitFor(async () => (await jobs(srv.dataDir)).some((j) => j.delivery_id === r.delivery && j.state === 'running'),
    { what: 'the job to be recorded running when SIGTERM comes' });
  return { srv, gh, delivery: r.delivery };
}

test('SIGTERM lets a running job finish within SHUTDOWN_GRACE_SECONDS', async () => {
  const { srv, gh, delivery } = await startWithSlowJob(1500 * SLOW, 20);
  try {
    const t0 = Date.now();
    const exit = await srv.stop('SIGTERM', 40000 * SLOW);
    const stopped = Date.now();
    const first = gh.seen[0];
    assert.ok(first.answered && first.answered <= stopped, 'the GitHub call of the running job was answered before exit');
    assert.ok(stopped - t0 < 15000 * SLOW, `exit after ${stopped - t0} ms`);
    const js = (await jobs(srv.dataDir)).filter((j) => j.delivery_id === delivery);
    assert.equal(js.length, 1);
    assert.notEqual(js[0].state, 'running', 'no lease is left behind');
    assert.ok(js[0].attempts >= 1);
    assert.equal(exit.code, 0, exit.stderr.slice(-3000));
  } finally {
    await gh.close();
  }
});

test('a job still running when the grace period ends gets its lease released; exit 0', async () => {
  const { srv, gh, delivery } = await startWithSlowJob(60000, 1);
  try {
    const t0 = Date.now();
    const exit = await srv.stop('SIGTERM', 40000 * SLOW);
    const ms = Date.now() - t0;
    assert.ok(ms < 8000 * SLOW, `exit after ${ms} ms with a 1 s grace`);
    const js = (await jobs(srv.dataDir)).filter((j) => j.delivery_id === delivery);
    assert.equal(js.length, 1);
    assert.equal(js[0].state, 'queued', `released for the next start: ${JSON.stringify(js[0])}`);
    assert.equal(exit.code, 0, exit.stderr.slice(-3000));
  } finally {
    await gh.close();
  }
});
