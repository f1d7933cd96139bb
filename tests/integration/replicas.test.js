// Several `perfbot serve` replicas on one PostgreSQL store (a cluster of
// its own per test, tests/integration/lib/pg.js):
//  - deliveries spread over three replicas, each id also sent to another
//    replica; one replica killed with SIGKILL under load, PostgreSQL
//    restarted under load, then another replica drained with SIGTERM (a
//    rolling upgrade): every delivery answered 2xx is stored once, each
//    handled one has one job, done exactly once (the dead replica's jobs
//    are claimed again when their lease expires);
//  - while PostgreSQL is down, deliveries and /readyz get 503 with
//    Retry-After, never a 2xx, and both recover by themselves;
//  - a worker killed in the middle of a job: another worker finishes it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { SLOW, cli, deliver, fixture, request, sleep, sqlite, startServer, tmpDir, waitFor } from './lib/perfbot.js';
import { startPostgres } from './lib/pg.js';

const SECRET = 'replicas-secret';
const ping = JSON.parse(fixture('ping.json').body);
const star = fixture('star.created.json').body;

// Delivery n: mostly pings (a job each, no network), some stars (ignored).
function payload(n) {
  if (n % 5 === 4) return { event: 'star', body: star };
  return { event: 'ping', body: JSON.stringify({ ...ping, hook_id: 1e6 + n, hook: { ...ping.hook, id: 1e6 + n } }) };
}

function replicaEnv(pg, extra = {}) {
  return { DATABASE_URL: pg.url, JOB_LEASE_SECONDS: 2, WORKERS: 2, BENCH_WORKERS: 1, REDELIVERY_INTERVAL_SECONDS: 0,
    ...extra };
}

const CONN_ERROR = /ECONNRESET|ECONNREFUSED|EPIPE|socket hang up|no answer/;

test('three replicas: duplicates across replicas, kill -9 of one, a PostgreSQL restart and a drain under load lose nothing answered 2xx, and every job runs once', async (t) => {
  const pg = startPostgres();
  const replicas = [];
  try {
    // started together: the migrations are applied once (advisory lock)
    replicas.push(...await Promise.all([0, 1, 2].map(() => startServer({ secret: SECRET, env: replicaEnv(pg) }))));
    const alive = [true, true, true];
    const acked = new Map(); // delivery -> event
    const dupAnswers = [];
    const unexpected = [];
    const counts = { sent: 0, s503: 0, conn: 0 };
    let next = 0;
    let stopped = false;
    const pick = (n) => {
      for (let k = 0; k < 3; k++) if (alive[(n + k) % 3]) return (n + k) % 3;
      throw new Error('no replica alive');
    };
    const loops = [];
    for (let c = 0; c < 6; c++) {
      loops.push((async () => {
        while (!stopped) {
          const n = next++;
          const p = payload(n);
          const delivery = crypto.randomUUID();
          const first = pick(n);
          let ok = false;
          try {
            counts.sent++;
            const r = await deliver(replicas[first].port, { ...p, secret: SECRET, delivery });
            if (r.status === 202 || r.status === 200) { acked.set(delivery, p.event); ok = true; }
            else if (r.status === 503) { counts.s503++; assert.ok(r.headers['retry-after'], '503 with Retry-After'); }
            else unexpected.push(`${r.status} ${r.text}`);
          } catch (e) {
            if (!CONN_ERROR.test(String(e.code || e.message))) throw e;
            counts.conn++;
            await sleep(10);
          }
          if (n % 3 === 0) { // the same delivery again, to another replica
            const second = pick(first + 1);
            try {
              const r = await deliver(replicas[second].port, { ...p, secret: SECRET, delivery });
              if (r.status === 202 || r.status === 200) acked.set(delivery, p.event);
              if (ok) dupAnswers.push({ status: r.status, body: r.json?.status, second, first });
              else if (r.status !== 503 && r.status !== 202 && r.status !== 200) unexpected.push(`${r.status} ${r.text}`);
            } catch (e) {
              if (!CONN_ERROR.test(String(e.code || e.message))) throw e;
            }
          }
        }
      })());
    }
    const until = async (n, what) => waitFor(() => acked.size >= n, { timeoutMs: 30000 * SLOW, everyMs: 20, what });
    await until(150, '150 deliveries acknowledged');
    // one replica dies with jobs in flight
    await replicas[2].kill();
    alive[2] = false;
    const atKill = acked.size;
    await until(atKill + 150, 'deliveries after the kill');
    // PostgreSQL restarts under load: 503s meanwhile, never a lost 2xx
    const atRestart = acked.size;
    await pg.restart();
    await until(atRestart + 150, 'deliveries after the PostgreSQL restart');
    // a rolling upgrade: SIGTERM drains one replica while the last one serves
    const draining = replicas[1].stop();
    const drained = await draining;
    alive[1] = false;
    assert.equal(drained.code, 0, drained.stderr.slice(-3000));
    assert.equal(replicas[1].sanitizerReport(), null);
    const atDrain = acked.size;
    await until(atDrain + 100, 'deliveries after the drain');
    stopped = true;
    await Promise.all(loops);
    t.diagnostic(`sent ${counts.sent}, acknowledged ${acked.size}, 503 ${counts.s503}, connection errors ${counts.conn}`);
    assert.deepEqual(unexpected, []);

    // every 2xx is stored, once (the id is the primary key)
    const stored = new Set((await pg.query('SELECT id FROM deliveries')).map((r) => r.id));
    const missing = [...acked.keys()].filter((id) => !stored.has(id));
    assert.deepEqual(missing, [], 'deliveries answered 2xx and not stored');
    // a duplicate sent to another replica is recognised there
    const dups = dupAnswers.filter((d) => d.status !== 503);
    assert.ok(dups.length > 20, `duplicates answered: ${dups.length}`);
    for (const d of dups) assert.deepEqual([d.status, d.body], [200, 'duplicate'], JSON.stringify(d));

    // every job ends (the dead replica's after its lease), each done once
    const settled = await waitFor(async () => {
      const js = await pg.query('SELECT delivery_id, state, completions, attempts FROM jobs');
      return js.every((j) => j.state === 'done') ? js : null;
    }, { timeoutMs: 30000 * SLOW, everyMs: 200, what: 'every job done' });
    const byDelivery = new Map();
    for (const j of settled) byDelivery.set(j.delivery_id, [...(byDelivery.get(j.delivery_id) || []), j]);
    for (const [id, event] of acked) {
      const js = byDelivery.get(id) || [];
      if (event === 'star') { assert.equal(js.length, 0, `no job for an ignored delivery ${id}`); continue; }
      assert.equal(js.length, 1, `one job for ${id}`);
      assert.equal(js[0].completions, 1, `done exactly once: ${JSON.stringify(js[0])}`);
    }
    const reclaimed = settled.filter((j) => j.attempts > 1).length;
    t.diagnostic(`jobs ${settled.length}, claimed again after a lease expired: ${reclaimed}`);
    // the survivor drains and exits cleanly too (a sanitizer build reports leaks at exit)
    for (const i of [0]) {
      const exit = await replicas[i].stop();
      assert.equal(exit.code, 0, exit.stderr.slice(-3000));
      assert.equal(replicas[i].sanitizerReport(), null);
    }
  } finally {
    for (const r of replicas) await r.stop();
    pg.destroy();
  }
});

test('PostgreSQL down: deliveries and /readyz answer 503 with Retry-After, never 2xx, and recover by themselves', async () => {
  const pg = startPostgres();
  let srv;
  try {
    srv = await startServer({ secret: SECRET, env: replicaEnv(pg) });
    assert.equal((await request(srv.port, { method: 'GET', path: '/readyz' })).status, 200);
    await pg.stop();
    const ready = await waitFor(async () => {
      const r = await request(srv.port, { method: 'GET', path: '/readyz' });
      return r.status === 503 ? r : null;
    }, { what: '/readyz to turn 503' });
    assert.ok(ready.headers['retry-after']);
    assert.match(ready.text, /store unavailable/);
    for (let i = 0; i < 5; i++) {
      const r = await deliver(srv.port, { ...payload(i), secret: SECRET });
      assert.equal(r.status, 503, r.text);
      assert.ok(r.headers['retry-after'], 'Retry-After');
    }
    // /healthz: the process is alive, whatever the store
    assert.equal((await request(srv.port, { method: 'GET', path: '/healthz' })).status, 200);
    await pg.start();
    await waitFor(async () => (await request(srv.port, { method: 'GET', path: '/readyz' })).status === 200,
      { timeoutMs: 20000 * SLOW, what: '/readyz back to 200' });
    const r = await deliver(srv.port, { ...payload(1), secret: SECRET });
    assert.equal(r.status, 202, r.text);
    const rows = await pg.query(`SELECT id FROM deliveries WHERE id='${r.delivery}'`);
    assert.equal(rows.length, 1);
    // the password is in DATABASE_URL only, never in the logs
    const password = new URL(pg.url).password;
    assert.ok(!srv.stderr.includes(password), 'the database password is not logged');
    const exit = await srv.stop();
    assert.equal(exit.code, 0, exit.stderr.slice(-3000));
    assert.equal(srv.sanitizerReport(), null);
  } finally {
    if (srv) await srv.stop();
    pg.destroy();
  }
});

// A GitHub API whose first request never gets an answer (the job calling it
// stays running) and whose later requests get 404 at once.
async function hangingGitHub() {
  const seen = [];
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method, url: req.url });
    req.resume();
    if (seen.length === 1) return; /* hangs until the client goes */
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"message":"Not Found"}');
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { seen, url: `http://127.0.0.1:${server.address().port}`,
    close: () => { server.closeAllConnections(); return new Promise((r) => server.close(r)); } };
}

test('a worker killed in the middle of a job: after its lease another worker runs it, once', async () => {
  const pg = startPostgres();
  const gh = await hangingGitHub();
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const app = { APP_ID: '1012345', PRIVATE_KEY: privateKey.export({ type: 'pkcs1', format: 'pem' }), GITHUB_API_URL: gh.url,
    JOB_ATTEMPTS: 5 };
  const procs = [];
  try {
    const web = await startServer({ secret: SECRET, env: replicaEnv(pg, app), args: ['--role', 'web'] });
    procs.push(web);
    const a = await startServer({ secret: SECRET, env: replicaEnv(pg, app), args: ['--role', 'worker'] });
    procs.push(a);
    // a web replica runs no job, a worker replica takes no delivery
    assert.equal((await deliver(a.port, { ...payload(1), secret: SECRET })).status, 404);
    const body = {
      action: 'created', installation: { id: 52961404 }, repository: { full_name: 'octo-org/fastjson' },
      issue: { number: 3 }, comment: { id: 11, body: '/perfbot help', user: { login: 'monalisa', type: 'User' } },
      sender: { login: 'monalisa', type: 'User' },
    };
    const r = await deliver(web.port, { event: 'issue_comment', body, secret: SECRET });
    assert.equal(r.status, 202, r.text);
    await waitFor(() => gh.seen.length > 0, { what: 'the worker to call GitHub' });
    const [running] = await pg.query(`SELECT state, lease_owner FROM jobs WHERE delivery_id='${r.delivery}'`);
    assert.equal(running.state, 'running');
    assert.match(running.lease_owner, new RegExp(`:${a.proc.pid}:`), 'the worker replica holds the lease');
    await a.kill();
    const b = await startServer({ secret: SECRET, env: replicaEnv(pg, app), args: ['--role', 'worker'] });
    procs.push(b);
    const [job] = await waitFor(async () => {
      const js = await pg.query(`SELECT state, attempts, completions, lease_owner FROM jobs WHERE delivery_id='${r.delivery}'`);
      return js.length && js[0].state !== 'running' && js[0].state !== 'queued' ? js : null;
    }, { timeoutMs: 30000 * SLOW, everyMs: 100, what: 'the job to end on the other worker' });
    assert.ok(job.attempts >= 2, JSON.stringify(job));
    assert.ok(job.completions <= 1, JSON.stringify(job));
    assert.ok(b.logs().some((l) => l.msg === 'job' && l.delivery === r.delivery), 'the second worker ran it');
    assert.ok(!web.logs().some((l) => l.msg === 'job'), 'the web replica ran no job');
    for (const p of [web, b]) {
      const exit = await p.stop();
      assert.equal(exit.code, 0, exit.stderr.slice(-3000));
      assert.equal(p.sanitizerReport(), null);
    }
  } finally {
    for (const p of procs) await p.stop();
    await gh.close();
    pg.destroy();
  }
});

test('perfbot migrate and perfbot store copy move a SQLite installation to PostgreSQL, ids kept', async () => {
  const pg = startPostgres();
  const password = new URL(pg.url).password;
  try {
    const old = await startServer({ secret: SECRET, env: { WORKERS: 1 } });
    const ids = [];
    for (let i = 0; i < 3; i++) {
      const r = await deliver(old.port, { ...payload(i), secret: SECRET });
      assert.equal(r.status, 202, r.text);
      ids.push(r.delivery);
    }
    await old.stop();
    const sqliteUrl = `sqlite:${old.dataDir}/perfbot.db`;

    let r = await cli(['migrate', '--data-dir', old.dataDir]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /\(sqlite\): schema version \d+ \(current\)/);
    r = await cli(['migrate'], { env: { DATABASE_URL: pg.url } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^postgres:\/\/perfbot:\*\*\*@127\.0\.0\.1:\d+\/perfbot \(postgres\): schema version \d+ \(current\)/);
    assert.ok(!r.stdout.includes(password) && !r.stderr.includes(password));

    r = await cli(['store', 'copy', '--from', sqliteUrl, '--to', pg.url]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^copied \d+ rows \(13 tables\) from sqlite:.* to postgres:\/\/perfbot:\*\*\*@/);
    r = await cli(['store', 'copy', '--from', sqliteUrl, '--to', pg.url]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /already holds \d+ rows \(pass --force to replace them\)/);
    r = await cli(['store', 'copy', '--from', sqliteUrl, '--to', pg.url, '--force']);
    assert.equal(r.code, 0, r.stderr);
    const copied = await pg.query('SELECT id FROM deliveries');
    assert.deepEqual(copied.map((d) => d.id).sort(), [...ids].sort());
    // bodies come from the SQLite store's body log, byte for byte
    const bodies = await pg.query("SELECT id, convert_from(body, 'UTF8') AS body FROM deliveries");
    for (const [i, id] of ids.entries())
      assert.equal(bodies.find((b) => b.id === id)?.body, payload(i).body, `body of ${id}`);
    const jobs = await pg.query('SELECT id, delivery_id, state FROM jobs ORDER BY id');
    const oldJobs = await sqlite(old.dataDir, 'SELECT id, delivery_id, state FROM jobs ORDER BY id');
    assert.deepEqual(jobs, oldJobs, 'jobs with their ids');

    // a replica on the copy: the old deliveries are duplicates there, new ones get fresh job ids
    const srv = await startServer({ secret: SECRET, env: replicaEnv(pg) });
    try {
      const dup = await deliver(srv.port, { ...payload(0), secret: SECRET, delivery: ids[0] });
      assert.equal(dup.json?.status, 'duplicate');
      const fresh = await deliver(srv.port, { ...payload(7), secret: SECRET });
      assert.equal(fresh.status, 202);
      const [j] = await pg.query(`SELECT id FROM jobs WHERE delivery_id='${fresh.delivery}'`);
      assert.ok(j.id > Math.max(...oldJobs.map((x) => x.id)));
    } finally {
      await srv.stop();
    }
  } finally {
    pg.destroy();
  }
});

test('roles need a shared PostgreSQL store; a wrong role or database URL is one line naming it', async () => {
  const dataDir = tmpDir('perfbot-roles-cli-');
  const cliServe = (args, env) => cli(['serve', '--port', '0', '--data-dir', dataDir, ...args], { env });
  let r = await cliServe(['--role', 'worker'], { WEBHOOK_SECRET: SECRET });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--role worker: needs a PostgreSQL DATABASE_URL/);
  r = await cliServe(['--role', 'chef'], { WEBHOOK_SECRET: SECRET });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--role: expected all, web or worker, got "chef"/);
  r = await cliServe([], { WEBHOOK_SECRET: SECRET, DATABASE_URL: 'mysql://u:hunter2@db/x' });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /DATABASE_URL: unsupported store "mysql"/);
  assert.ok(!r.stderr.includes('hunter2'));
  // PostgreSQL that does not answer: start-up fails with the reason, not the password
  r = await cliServe([], { WEBHOOK_SECRET: SECRET, DATABASE_URL: 'postgres://perfbot:hunter2@127.0.0.1:1/perfbot' });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /DATABASE_URL: cannot connect to PostgreSQL/);
  assert.ok(!r.stderr.includes('hunter2'));
  fs.rmSync(dataDir, { recursive: true, force: true });
});
