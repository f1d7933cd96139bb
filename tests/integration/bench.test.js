// Integration: `perfbot bench` on a local git repository made from
// tests/data/benchrepo (three C benchmarks), measured in the real bwrap
// sandbox under callgrind.  A second commit makes `parse` faster and
// `hashmap` slower; `sort` is untouched and must compare at exactly 0.00%.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, cpSync, rmSync, readFileSync, writeFileSync, readdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = process.env.PERFBOT_BIN || path.join(root, 'build/perfbot');
let work, repo, dataDir, help;

function git(...args) {
  return execFileSync('git', ['-C', repo, '-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args]).toString().trim();
}

function bench(...args) {
  const r = spawnSync(bin, ['bench', ...args], {
    env: { PATH: process.env.PATH, DATA_DIR: dataDir, LOG_LEVEL: 'error', ASAN_OPTIONS: process.env.ASAN_OPTIONS || '' },
    encoding: 'utf8',
    timeout: 300000,
  });
  return r;
}

before(() => {
  work = mkdtempSync(path.join(tmpdir(), 'perfbot-bench-'));
  repo = path.join(work, 'repo');
  dataDir = path.join(work, 'var');
  cpSync(path.join(root, 'tests/data/benchrepo'), repo, { recursive: true });
  execFileSync('git', ['init', '-q', '-b', 'main', repo]);
  git('add', '-A');
  git('commit', '-qm', 'base');
  // head: parse does 8 rounds instead of 10; hashmap formats each key twice
  const p = path.join(repo, 'bench/parse.c');
  writeFileSync(p, readFileSync(p, 'utf8').replace('round < 10', 'round < 8'));
  const h = path.join(repo, 'bench/hashmap.c');
  const key = '\t\tsnprintf(key, sizeof(key), "key-%ld", i * 7919);\n\t\tsum += find';
  const src = readFileSync(h, 'utf8');
  assert.ok(src.includes(key));
  writeFileSync(h, src.replace(key, '\t\tsnprintf(key, sizeof(key), "key-%ld", i * 7919 + 1);\n' + key));
  git('commit', '-qam', 'head');
  help = bench('--help');
});

// Every test here needs `perfbot bench`: a binary that lacks it fails them
// all, saying so, rather than passing them by.
function assertWired() {
  assert.ok(existsSync(bin), `no perfbot binary at ${bin}`);
  assert.ok(help.status === 0 && /perfbot bench/.test(help.stdout),
    `\`perfbot bench --help\` does not describe the subcommand (exit ${help.status}): ` +
    `perfbot bench is not wired into main.c\n${help.stdout}${help.stderr}`);
}

after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

test('bench --json measures every benchmark with counts and functions', () => {
  assertWired();
  const r = bench('--repo', repo, '--rev', 'HEAD~1', '--json');
  assert.equal(r.status, 0, r.stderr);
  const doc = JSON.parse(r.stdout);
  assert.equal(doc.commit, git('rev-parse', 'HEAD~1'));
  assert.deepEqual(doc.benchmarks.map((b) => b.name), ['sort', 'hashmap', 'parse']);
  for (const b of doc.benchmarks) {
    assert.equal(b.status, 'ok');
    assert.ok(b.instructions > 1000000, `${b.name}: ${b.instructions}`);
    assert.ok(b.estimated_cycles > b.instructions);
    assert.ok(b.l1_misses >= b.ll_misses);
    assert.ok(b.top_functions.length > 0);
    assert.ok(b.top_functions.some((f) => f.name === 'main' && f.file === `/workspace/bench/${b.name === 'hashmap' ? 'hashmap' : b.name}.c`),
      JSON.stringify(b.top_functions.slice(0, 3)));
  }
  // work trees are removed after the run
  assert.deepEqual(readdirSync(path.join(dataDir, 'work')), []);
});

test('bench --base compares: improvement, regression and an untouched benchmark at 0.00%', () => {
  assertWired();
  const r = bench('--repo', repo, '--base', 'HEAD~1', '--json');
  assert.equal(r.status, 1, 'a regression exits 1\n' + r.stderr);
  const doc = JSON.parse(r.stdout);
  const by = Object.fromEntries(doc.comparison.map((c) => [c.name, c]));
  assert.equal(by.sort.verdict, 'unchanged');
  assert.equal(by.sort.change_pct, 0);
  assert.equal(by.sort.base, by.sort.head);
  assert.equal(by.parse.verdict, 'improved');
  assert.ok(by.parse.change_pct < -3, String(by.parse.change_pct));
  assert.equal(by.hashmap.verdict, 'regressed');
  assert.ok(by.hashmap.change_pct > 3, String(by.hashmap.change_pct));
  assert.ok(by.hashmap.top_changes.length > 0);

  const text = bench('--repo', repo, '--base', 'HEAD~1');
  assert.match(text.stdout, /sort\s+\d+\s+\d+\s+0\.00%\s+unchanged/);
  assert.match(text.stdout, /1 regression, 1 improvement \(failure\)/);
});

test('the same commit measured twice gives identical counts', () => {
  assertWired();
  const a = JSON.parse(bench('--repo', repo, '--json').stdout);
  const b = JSON.parse(bench('--repo', repo, '--json').stdout);
  for (let i = 0; i < a.benchmarks.length; i++) {
    assert.equal(a.benchmarks[i].instructions, b.benchmarks[i].instructions);
    assert.equal(a.benchmarks[i].estimated_cycles, b.benchmarks[i].estimated_cycles);
  }
});

test('a broken configuration names the line; a failing benchmark is reported with its output', () => {
  assertWired();
  const yml = path.join(repo, '.github/perfbot.yml');
  const good = readFileSync(yml, 'utf8');
  writeFileSync(yml, good.replace('threshold: 3%', 'treshold: 3%'));
  git('commit', '-qam', 'typo');
  let r = bench('--repo', repo);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /line 9, column 1: unknown key "treshold" \(did you mean "threshold"\?\)/);

  writeFileSync(yml, good.replace('./bench/parse 2000', './bench/parse 2000 && echo boom >&2 && exit 3'));
  git('commit', '-qam', 'failing');
  r = bench('--repo', repo, '--json');
  assert.equal(r.status, 1);
  const doc = JSON.parse(r.stdout);
  const parse = doc.benchmarks.find((b) => b.name === 'parse');
  assert.equal(parse.status, 'failed');
  assert.equal(parse.error, 'exited with status 3');
  assert.match(parse.output_tail, /boom/);
  assert.equal(doc.benchmarks.find((b) => b.name === 'sort').status, 'ok');
  assert.ok(existsSync(path.join(dataDir, 'work')));
});

test('bench run inside the repository with the default DATA_DIR (./var) works', () => {
  assert.ok(existsSync(bin), `no perfbot binary at ${bin}`);
  const own = path.join(work, 'own');
  cpSync(path.join(root, 'tests/data/benchrepo'), own, { recursive: true });
  execFileSync('git', ['init', '-q', '-b', 'main', own]);
  execFileSync('git', ['-C', own, 'add', '-A']);
  execFileSync('git', ['-C', own, '-c', 'user.name=t', '-c', 'user.email=t@example.com', 'commit', '-qm', 'base']);
  const r = spawnSync(bin, ['bench', '--repo', '.', '--json'], {
    cwd: own,
    env: { PATH: process.env.PATH, LOG_LEVEL: 'error', ASAN_OPTIONS: process.env.ASAN_OPTIONS || '' },
    encoding: 'utf8',
    timeout: 300000,
  });
  assert.equal(r.status, 0, r.stderr);
  const doc = JSON.parse(r.stdout);
  assert.ok(doc.benchmarks.length >= 3 && doc.benchmarks.every((b) => b.status === 'ok'), r.stdout);
  assert.ok(existsSync(path.join(own, 'var', 'work')), 'DATA_DIR is ./var of the working directory');
});
