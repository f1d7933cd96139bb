// Push → check run benchmark: how long a maintainer waits after a push.
//
// The real `perfbot serve` (App credentials, GITHUB_API_URL at the fake
// GitHub of tests/fake-github/, repositories over real smart HTTP) gets a
// signed push of tests/data/benchrepo (3 benchmarks); the base commit was
// measured by an earlier push, so the run measures the head and compares.
// The figure is the wall time from sending the push webhook to the "perfbot"
// check run completed at the fake GitHub.
//
// Beside it, in the same run and on the same machine: the bare sequential
// time, what a developer would spend by hand on the pushed commit with
// nothing to clone: the build, then the three callgrind runs of the head one
// after another (the same valgrind options perfbot uses, no sandbox).
//
// perfbot measures a run's benchmarks side by side (the cores shared out
// among BENCH_WORKERS); every run checks that the check run's counts are
// exactly those of `perfbot bench`, which measures one at a time.
//
// Prints both times, and the ratio against the target (push → check run <=
// 1.0x the bare time); BENCH_RUNS pushes (3 by default) each get a fresh head
// commit.  Figures go to bench/out/push.json.  Exit status 1 when a check
// run did not complete with the benchmarks' numbers.
//
// Needs build/perfbot, node (tests/node_modules), git, make, cc, valgrind,
// setarch and bubblewrap, as the integration tests do.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { ROOT, cli, receiveEvent, startServer, tmpDir, startFakeGitHubApp } from '../../tests/integration/lib/perfbot.js';

const APP_ID = 4242;
const SECRET = 'bench-push-secret';
const REPO = 'octo-org/bench';
const ZERO = '0'.repeat(40);
const RUNS = Number(process.env.BENCH_RUNS || 3);
const WAIT_MS = 300000;
const OUT = path.join(ROOT, 'bench', 'out');
const PUSH_FIXTURE = path.join(ROOT, 'tests', 'data', 'bench-github', 'push.json');
const CG_ARGS = ['-R', 'valgrind', '--command-line-only=yes', '--tool=callgrind', '--cache-sim=yes',
  '--I1=32768,8,64', '--D1=32768,8,64', '--LL=8388608,16,64', '--trace-children=yes'];

const log = (s) => process.stderr.write(`${s}\n`);

let tmp, work, fake, srv, bareDir;

function git(...args) {
  return execFileSync('git', ['-C', work, '-c', 'user.name=Mona', '-c', 'user.email=mona@example.com', ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] }).toString().trim();
}

function commit(msg) {
  git('add', '-A');
  git('commit', '-qm', msg);
  return git('rev-parse', 'HEAD');
}

function pushPayload(ref, before, after) {
  const p = JSON.parse(fs.readFileSync(PUSH_FIXTURE, 'utf8'));
  Object.assign(p, { ref, before, after, created: before === ZERO });
  p.repository.clone_url = fake.gitUrl(REPO);
  return p;
}

const receive = (event, payload) => receiveEvent({ dir: tmp, url: srv.url, secret: SECRET }, event, payload);

function completed(head) {
  return fake.state.checkRuns.find((r) => r.head_sha === head && r.name === 'perfbot' && r.status === 'completed');
}

// ms from the push webhook to the completed check run of `after`.
async function pushAndTime(before, after) {
  git('push', '-qf', bareDir, 'main:refs/heads/main');
  const t0 = process.hrtime.bigint();
  await receive('push', pushPayload('refs/heads/main', before, after));
  await fake.waitFor(() => completed(after), WAIT_MS);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const cr = completed(after);
  const rows = [...cr.output.text.matchAll(/^\| `([^`]+)` \| head `[0-9a-f]{7}` \| ok \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|/gm)]
    .map((m) => [m[1], { instructions: Number(m[2]), estimated_cycles: Number(m[3]), l1_misses: Number(m[4]),
      ll_misses: Number(m[5]) }]);
  return { ms, conclusion: cr.conclusion, head: Object.fromEntries(rows) };
}

// The bare sequential time at `sha`: a checkout already on disk (nothing
// cloned), the build, then each benchmark under callgrind, one after another.
function bareTime(sha, benchmarks, build) {
  const dir = path.join(tmp, `bare-${sha.slice(0, 7)}`);
  execFileSync('git', ['-C', work, 'worktree', 'add', '-q', '--detach', dir, sha], { stdio: 'ignore' });
  const cgDir = path.join(dir, '.cg');
  fs.mkdirSync(cgDir);
  const t0 = process.hrtime.bigint();
  const b = spawnSync('/bin/sh', ['-c', build], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  assert.equal(b.status, 0, `build: ${b.stderr}`);
  for (const bm of benchmarks) {
    // plain words run directly, as perfbot runs them; anything else through sh
    const argv = /^[\w./=:,+@%-]+( [\w./=:,+@%-]+)*$/.test(bm.command) && !bm.command.split(' ')[0].includes('=')
      ? bm.command.split(' ') : ['/bin/sh', '-c', bm.command];
    const r = spawnSync('setarch', [...CG_ARGS, `--callgrind-out-file=${cgDir}/out.%p`, ...argv],
      { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    assert.equal(r.status, 0, `${bm.name}: ${r.stderr}`);
  }
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  execFileSync('git', ['-C', work, 'worktree', 'remove', '--force', dir], { stdio: 'ignore' });
  return ms;
}

// Counts of `perfbot bench` at sha (benchmarks measured one at a time).
async function sequentialCounts(sha) {
  const r = await cli(['bench', '--repo', work, '--rev', sha, '--json'],
    { env: { DATA_DIR: path.join(tmp, 'cli-var'), LOG_LEVEL: 'error' }, timeoutMs: WAIT_MS });
  assert.equal(r.code, 0, `perfbot bench: ${r.stderr}`);
  const doc = JSON.parse(r.stdout);
  return Object.fromEntries(doc.benchmarks.map((b) => [b.name, { instructions: b.instructions,
    estimated_cycles: b.estimated_cycles, l1_misses: b.l1_misses, ll_misses: b.ll_misses }]));
}

// build and benchmarks of tests/data/benchrepo's perfbot.yml (its simple shape).
function benchConfig() {
  const text = fs.readFileSync(path.join(work, '.github', 'perfbot.yml'), 'utf8');
  const build = /^build:\s*(.+)$/m.exec(text)[1].trim();
  const benchmarks = [...text.matchAll(/- name:\s*(\S+)\s*\n\s*command:\s*(.+)/g)]
    .map((m) => ({ name: m[1], command: m[2].trim() }));
  return { build, benchmarks };
}



async function main() {
  tmp = tmpDir('perfbot-bench-push-');
  work = path.join(tmp, 'work');
  const dataDir = path.join(tmp, 'var');
  fs.mkdirSync(dataDir);
  const started = await startFakeGitHubApp(tmp, APP_ID);
  fake = started.fake;
  const keyPath = started.keyPath;
  bareDir = fake.createGitRepo(REPO, { files: { 'README.md': '# bench\n' }, branch: 'main' });
  fs.cpSync(path.join(ROOT, 'tests', 'data', 'benchrepo'), work, { recursive: true });
  execFileSync('git', ['init', '-q', '-b', 'main', work]);
  const base = commit('benchmarks');
  const cfg = benchConfig();
  srv = await startServer({
    dataDir, secret: SECRET,
    env: { APP_ID, PRIVATE_KEY_PATH: keyPath, GITHUB_API_URL: fake.url, REDELIVERY_INTERVAL_SECONDS: 0,
      PUBLIC_URL: 'https://perfbot.example.com' },
    timeoutMs: 30000,
  });

  log(`bench/push: ${os.cpus().length} cores, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  log(`  base ${base.slice(0, 7)}: first push (measures the base; not timed)`);
  const first = await pushAndTime(ZERO, base);
  assert.equal(Object.keys(first.head).length, cfg.benchmarks.length, 'the base is measured');

  const results = [];
  let prev = base;
  for (let i = 1; i <= RUNS; i++) {
    // a new head each time: a comment line in a benchmark's source
    fs.appendFileSync(path.join(work, 'README.md'), `\nrun ${i} ${Date.now()}\n`);
    const head = commit(`head ${i}`);
    const loadBefore = os.loadavg()[0];
    const pushed = await pushAndTime(prev, head);
    const bare = bareTime(head, cfg.benchmarks, cfg.build);
    // the check run measured its benchmarks side by side: its counts must be
    // those of `perfbot bench`, which measures them one at a time
    const seq = await sequentialCounts(head);
    const same = cfg.benchmarks.every((b) => pushed.head[b.name] && seq[b.name]
      && ['instructions', 'estimated_cycles', 'l1_misses', 'll_misses'].every((k) => pushed.head[b.name][k] === seq[b.name][k]));
    if (!same) log(`  run ${i}: counts differ from one-at-a-time runs:\n    check run ${JSON.stringify(pushed.head)}\n    perfbot bench ${JSON.stringify(seq)}`);
    const ok = Object.keys(pushed.head).length === cfg.benchmarks.length && same;
    results.push({ run: i, head, push_to_check_ms: Math.round(pushed.ms), bare_sequential_ms: Math.round(bare),
      ratio: Number((pushed.ms / bare).toFixed(3)), conclusion: pushed.conclusion, benchmarks: pushed.head,
      counts_equal_one_at_a_time: same,
      load_before: loadBefore, load_after: os.loadavg()[0], valid: ok });
    log(`  run ${i}: push -> completed check run ${(pushed.ms / 1000).toFixed(2)} s, bare ${(bare / 1000).toFixed(2)} s`
      + ` (${(pushed.ms / bare).toFixed(2)}x), conclusion ${pushed.conclusion}, counts ${same ? 'identical to' : 'DIFFERENT from'} one-at-a-time runs`);
    prev = head;
  }

  console.log('');
  console.log('== bench/push: push webhook -> completed "perfbot" check run (3 benchmarks, base already measured)');
  console.log('run  push->check run   bare sequential   ratio   target <= 1.0x   counts = one at a time   load');
  for (const r of results) {
    console.log(`${String(r.run).padEnd(4)} ${(r.push_to_check_ms / 1000).toFixed(2).padStart(13)} s `
      + `${(r.bare_sequential_ms / 1000).toFixed(2).padStart(15)} s   ${r.ratio.toFixed(2).padStart(5)}x   `
      + `${r.ratio <= 1.0 ? 'PASS' : 'MISS'}             ${r.counts_equal_one_at_a_time ? 'yes' : 'NO '}`
      + `                      ${r.load_before.toFixed(2)}/${r.load_after.toFixed(2)}`);
  }
  console.log('bare sequential = the build plus the three callgrind runs of the head, by hand, one after another, nothing cloned.');
  fs.mkdirSync(OUT, { recursive: true });
  const valid = results.every((r) => r.valid);
  fs.writeFileSync(path.join(OUT, 'push.json'), JSON.stringify({ benchmark: 'push', date: new Date().toISOString(),
    cores: os.cpus().length, runs: results, valid }, null, 2) + '\n');
  console.log('figures written to bench/out/push.json');
  return valid;
}

let ok = false;
try {
  ok = await main();
} catch (e) {
  log(`bench/push: ${e.stack || e}`);
} finally {
  if (srv) await srv.stop().catch(() => {});
  if (fake) await fake.close().catch(() => {});
  if (tmp && !process.env.KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
}
process.exit(ok ? 0 : 1);
