// Integration: whole-sandbox limits through the real binary, the real bwrap
// and the real cgroups.  `perfbot bench` on a local repository whose build
// forks 10,000 processes, writes 20 GiB in many files, or allocates 30 GiB
// across ten processes (each under its own RLIMIT_AS): every run fails
// quickly with the reason shown, while a `perfbot serve` on the same disk
// keeps answering /healthz and storing webhooks.  Also: DATA_DIR is 0700
// and perfbot.db 0600 after start, and no ancestor of a work tree gains
// o+x when the sandbox gets it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  BIN, ROOT, SLOW, cli, deliverFixture, deliveries, request, startServer, tmpDir,
} from './lib/perfbot.js';

const SECRET = 'limits-secret';
let work, repo, srv, benchData;
const commits = {};

function git(...args) {
  return execFileSync('git', ['-C', repo, '-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args])
    .toString().trim();
}

// a commit whose build is `script` (a file in the repository)
function commitBuild(name, script) {
  writeFileSync(path.join(repo, `${name}.sh`), script);
  writeFileSync(path.join(repo, '.github/perfbot.yml'),
    `build: sh ${name}.sh\nbenchmarks:\n  - name: sort\n    command: ./bench/sort 20000\nthreshold: 3%\n`);
  git('add', '-A');
  git('commit', '-qm', name);
  commits[name] = git('rev-parse', 'HEAD');
}

before(async () => {
  assert.ok(existsSync(BIN), `no perfbot binary at ${BIN}`);
  // a private parent, as /root or a service's home is: nothing of it may change
  work = tmpDir('perfbot-limits-');
  chmodSync(work, 0o700);
  repo = path.join(work, 'repo');
  cpSync(path.join(ROOT, 'tests/data/benchrepo'), repo, { recursive: true });
  execFileSync('git', ['init', '-q', '-b', 'main', repo]);
  git('add', '-A');
  git('commit', '-qm', 'base');
  commitBuild('forks', 'i=0; while [ $i -lt 10000 ]; do sleep 60 & i=$((i+1)); done; wait; echo all-forked\n');
  commitBuild('fills',
    'mkdir -p out; i=0; while [ $i -lt 400 ]; do head -c 52428800 /dev/zero > out/f$i || exit 9; ' +
    'i=$((i+1)); done; echo all-written\n');
  commitBuild('hogs',
    "i=0; while [ $i -lt 10 ]; do perl -e '$x = q(x) x (3 << 30); sleep 60' & i=$((i+1)); done; wait; " +
    'echo all-allocated\n');

  // serve's DATA_DIR exists already, too open (as an older perfbot left it)
  const dataDir = path.join(work, 'serve');
  mkdirSync(dataDir, { mode: 0o755 });
  chmodSync(dataDir, 0o755);
  srv = await startServer({ dataDir, secret: SECRET });
  benchData = path.join(work, 'bench');
});

after(async () => {
  if (srv) await srv.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

function bench(rev) {
  return cli(['bench', '--repo', repo, '--rev', rev, '--json'], {
    env: {
      DATA_DIR: benchData, LOG_LEVEL: 'error', SANDBOX_PIDS: 200, SANDBOX_DISK: '256MiB', SANDBOX_MEMORY: '1GiB',
    },
    timeoutMs: 240000 * SLOW,
  });
}

// Runs a bench while checking, every 200 ms, that serve still answers.
async function benchWhileServing(rev) {
  let healthy = 0, unhealthy = 0, done = false;
  const probe = (async () => {
    while (!done) {
      const h = await request(srv.port, { method: 'GET', path: '/healthz', timeoutMs: 5000 })
        .catch(() => ({ status: 0 }));
      if (h.status === 200) healthy++;
      else unhealthy++;
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  const t0 = Date.now();
  const r = await bench(rev);
  const ms = Date.now() - t0;
  done = true;
  await probe;
  return { r, ms, healthy, unhealthy };
}

function buildOf(r) {
  assert.ok(r.stdout, `no output: ${r.stderr}`);
  const doc = JSON.parse(r.stdout);
  assert.equal(doc.benchmarks[0].status, 'failed', JSON.stringify(doc.benchmarks[0]));
  return doc;
}

test('DATA_DIR is 0700 and perfbot.db 0600 once serve has started', () => {
  assert.ok(srv, 'perfbot serve did not start (see the before hook)');
  assert.equal(statSync(srv.dataDir).mode & 0o777, 0o700);
  const db = path.join(srv.dataDir, 'perfbot.db');
  assert.equal(statSync(db).mode & 0o777, 0o600);
  for (const f of [`${db}-wal`, `${db}-shm`])
    if (existsSync(f)) assert.equal(statSync(f).mode & 0o777, 0o600, f);
});

test('a build that forks 10,000 processes fails with the process limit; serve stays healthy', async () => {
  assert.ok(srv, 'perfbot serve did not start (see the before hook)');
  const { r, ms, unhealthy } = await benchWhileServing(commits.forks);
  const doc = buildOf(r);
  assert.match(doc.benchmarks[0].output_tail, /\[the sandbox reached its process limit \(200 processes\) and was killed\]$/);
  assert.equal(doc.benchmarks[0].error,
    'build `sh forks.sh` failed: the sandbox reached its process limit (200 processes) and was killed');
  assert.doesNotMatch(doc.benchmarks[0].output_tail, /all-forked/);
  assert.ok(ms < 60000 * SLOW, `took ${ms} ms`);
  assert.equal(unhealthy, 0);
});

test('a build that writes 20 GiB fails with the disk limit; serve stores webhooks meanwhile', async () => {
  assert.ok(srv, 'perfbot serve did not start (see the before hook)');
  const { r, ms, unhealthy, healthy } = await benchWhileServing(commits.fills);
  const doc = buildOf(r);
  assert.match(doc.benchmarks[0].output_tail, /\[the sandbox exceeded its disk limit \(256 MiB written\) and was killed\]$/);
  assert.doesNotMatch(doc.benchmarks[0].output_tail, /all-written/);
  assert.ok(ms < 60000 * SLOW, `took ${ms} ms`);
  assert.equal(unhealthy, 0);
  assert.ok(healthy > 0);
  // and the store still takes a webhook
  const w = await deliverFixture(srv.port, 'ping.json', { secret: SECRET });
  assert.equal(w.status, 202, w.text);
  const ds = await deliveries(srv.dataDir);
  assert.ok(ds.some((d) => d.delivery_id === w.delivery || d.id === w.delivery), JSON.stringify(ds.slice(0, 2)));
});

test('a build that allocates 30 GiB across ten processes fails with the memory limit', async () => {
  assert.ok(srv, 'perfbot serve did not start (see the before hook)');
  const { r, ms, unhealthy } = await benchWhileServing(commits.hogs);
  const doc = buildOf(r);
  assert.match(doc.benchmarks[0].output_tail, /\[the sandbox exceeded its memory limit \(1 GiB\) and was killed\]$/);
  assert.doesNotMatch(doc.benchmarks[0].output_tail, /all-allocated/);
  assert.ok(ms < 60000 * SLOW, `took ${ms} ms`);
  assert.equal(unhealthy, 0);
});

test('handing work trees to the sandbox opens none of their ancestors', async () => {
  assert.ok(srv, 'perfbot serve did not start (see the before hook)');
  const r = await bench('HEAD~3');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).benchmarks[0].status, 'ok');
  assert.equal(statSync(work).mode & 0o777, 0o700);
  assert.equal(statSync(benchData).mode & 0o777, 0o700);
});
