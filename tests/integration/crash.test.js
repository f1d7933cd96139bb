// Crash safety of the real perfbot binary: several clients send signed
// deliveries concurrently, the server is killed with SIGKILL in the middle
// of the load (twice: once while receiving, once while it works through the
// backlog after a restart), and after the last restart every delivery that
// was answered 2xx is listed by `perfbot deliveries`, and every handled one
// has exactly one job, which ran exactly once (or, for a signed body that is
// not JSON, failed for good and left the delivery listed malformed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import {
  SLOW, deliver, deliveries, fixture, jobs, settledJobs, sleep, startServer, tmpDir,
} from './lib/perfbot.js';

const SECRET = 'crash-test-secret';
const CLIENTS = 8;

const ping = JSON.parse(fixture('ping.json').body);
const star = fixture('star.created.json').body;
const push = fixture('push.json').body;
const repos = JSON.parse(fixture('installation_repositories.added.json').body);

// Payload number n: a mix of handled and ignored events, and signed bodies
// that are not JSON (stored, then marked malformed by their job).
function payload(n) {
  switch (n % 5) {
    case 0: return { event: 'ping', body: JSON.stringify({ ...ping, hook_id: 1e6 + n, hook: { ...ping.hook, id: 1e6 + n } }) };
    case 1: return { event: 'star', body: star };
    case 2: return { event: 'push', body: push };
    case 3: return { event: 'ping', body: `{"zen": ${n}`, malformed: true };
    default: {
      const r = { ...repos, repositories_added: [{ ...repos.repositories_added[0], id: 2e6 + n, full_name: `octo-org/r${n}` }] };
      return { event: 'installation_repositories', body: JSON.stringify(r) };
    }
  }
}

// Runs CLIENTS concurrent senders (one keep-alive connection each) until
// stop() is called; records every delivery answered 2xx.
function load(port, acked, counter) {
  let stopped = false;
  const loops = [];
  for (let c = 0; c < CLIENTS; c++) {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    loops.push((async () => {
      while (!stopped) {
        const n = counter.next++;
        const p = payload(n);
        try {
          const r = await deliver(port, { ...p, secret: SECRET, agent });
          if (r.status >= 200 && r.status < 300) {
            acked.set(r.delivery, { event: p.event, status: r.json?.status, code: r.status, malformed: !!p.malformed });
          }
          else if (r.status !== 503) throw new Error(`unexpected answer ${r.status} ${r.text}`);
        } catch (e) {
          if (!/ECONNRESET|ECONNREFUSED|EPIPE|socket hang up|no answer/.test(String(e.code || e.message))) throw e;
          counter.lost++;
          await sleep(5);
        }
      }
      agent.destroy();
    })());
  }
  return { stop: async () => { stopped = true; await Promise.all(loops); } };
}

async function untilAcked(acked, n, maxMs) {
  const end = Date.now() + maxMs;
  while (acked.size < n && Date.now() < end) await sleep(10);
}

test('kill -9 under load loses no acknowledged delivery, and every job runs exactly once', async (t) => {
  const dataDir = tmpDir('perfbot-crash-');
  const acked = new Map();
  const counter = { next: 0, lost: 0 };

  // round 1: killed while receiving
  let srv = await startServer({ secret: SECRET, dataDir, env: { WORKERS: 2 } });
  let l = load(srv.port, acked, counter);
  await untilAcked(acked, 600, 4000 * SLOW);
  await srv.kill();
  await l.stop();
  const round1 = acked.size;
  assert.ok(round1 > 0, 'some deliveries were acknowledged before the kill');
  const after1 = await jobs(dataDir);

  // round 2: restarted, more load, killed again while the backlog is worked on
  srv = await startServer({ secret: SECRET, dataDir, env: { WORKERS: 2 } });
  l = load(srv.port, acked, counter);
  await untilAcked(acked, round1 + 300, 3000 * SLOW);
  await srv.kill();
  await l.stop();
  assert.ok(acked.size > round1, 'deliveries were acknowledged after the first restart');
  const after2 = await jobs(dataDir);
  const unfinished = (js) => js.filter((j) => j.state === 'queued' || j.state === 'running').length;
  const running = (js) => js.filter((j) => j.state === 'running').length;
  t.diagnostic(`acked ${round1} then ${acked.size}, lost in flight ${counter.lost}; unfinished after kills: ${unfinished(after1)} ` +
    `(${running(after1)} running), ${unfinished(after2)} (${running(after2)} running)`);

  // round 3: restart and let every job finish
  srv = await startServer({ secret: SECRET, dataDir, env: { WORKERS: 2 } });
  const allJobs = await settledJobs(dataDir, { timeoutMs: 20000 * SLOW, everyMs: 200 });
  const exit = await srv.stop('SIGTERM');
  assert.equal(exit.code, 0, exit.stderr.slice(-3000));
  assert.ok(!srv.sanitizerReport(), srv.sanitizerReport() ?? '');

  const listed = new Map((await deliveries(dataDir)).map((d) => [d.id, d]));
  const byDelivery = new Map();
  for (const j of allJobs) {
    if (!byDelivery.has(j.delivery_id)) byDelivery.set(j.delivery_id, []);
    byDelivery.get(j.delivery_id).push(j);
  }

  const missing = [...acked.keys()].filter((id) => !listed.has(id));
  assert.deepEqual(missing, [], `${missing.length} of ${acked.size} acknowledged deliveries are not listed`);

  const problems = [];
  for (const [id, a] of acked) {
    const js = byDelivery.get(id) || [];
    if (a.status === 'queued' && a.malformed) {
      // its job fails for good (once more after a kill that stopped it midway)
      if (js.length !== 1) problems.push(`${id} (${a.event}, malformed): ${js.length} jobs`);
      else if (js[0].state !== 'failed' || js[0].completions !== 0 || !/malformed JSON/.test(js[0].error ?? ''))
        problems.push(`${id} (${a.event}, malformed): job ${js[0].id} ${js[0].state}, error ${js[0].error}`);
      if (listed.get(id).status !== 'malformed') problems.push(`${id} (malformed): listed as ${listed.get(id).status}`);
    } else if (a.status === 'queued') {
      if (js.length !== 1) problems.push(`${id} (${a.event}): ${js.length} jobs`);
      else if (js[0].state !== 'done' || js[0].completions !== 1)
        problems.push(`${id} (${a.event}): job ${js[0].id} ${js[0].state}, completions ${js[0].completions}, ` +
          `attempts ${js[0].attempts}, error ${js[0].error}`);
    } else if (a.status === 'ignored') {
      if (js.length !== 0) problems.push(`${id} (${a.event}, ignored): ${js.length} jobs`);
      if (listed.get(id).status !== 'ignored') problems.push(`${id}: listed as ${listed.get(id).status}`);
    } else {
      problems.push(`${id}: answered ${a.code} ${a.status}`);
    }
  }
  // deliveries stored without an answer reaching the client follow the same rule
  for (const [id, js] of byDelivery) {
    if (js.length > 1) problems.push(`${id}: ${js.length} jobs`);
    for (const j of js) if (j.completions > 1) problems.push(`${id}: job ${j.id} completed ${j.completions} times`);
  }
  assert.deepEqual(problems.slice(0, 20), [], `${problems.length} problems (acked ${acked.size}, lost in flight ${counter.lost})`);
  const handled = [...acked.values()].filter((a) => a.status === 'queued').length;
  assert.ok(handled > 0 && handled < acked.size, 'the load mixed handled and ignored events');
  assert.ok([...acked.values()].some((a) => a.malformed), 'and bodies that are not JSON');
});
