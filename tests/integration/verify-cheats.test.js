// Integration: agents that would steer their own measurement, run end to end
// with `perfbot optimize` (the real binary, its MCP endpoint, the scripted
// agent, bwrap and valgrind).  Each cheat is written through the MCP tools
// (refused at once with the reason) and then through exec, which can write
// anything; verification refuses it again and names the path or the reason.
// A comment-only change to a Python repository whose tests leave a results
// cache that the benchmark reads is no improvement: the base goes through
// the tests as well.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { ROOT, SCRIPTED_AGENT, SLOW, cli, tmpDir } from './lib/perfbot.js';

const AGENT = `node '${SCRIPTED_AGENT}'`;
const RUN_MS = 120000 * SLOW;
let tmp, dataDir;

function makeRepo(name, files) {
  const repo = path.join(tmp, name);
  for (const [file, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(repo, file)), { recursive: true });
    fs.writeFileSync(path.join(repo, file), text);
  }
  execFileSync('git', ['init', '-q', '-b', 'main', repo]);
  const git = (...a) => execFileSync('git', ['-C', repo, '-c', 'user.name=t', '-c', 'user.email=t@example.com', ...a]);
  git('add', '-A');
  git('commit', '-qm', 'base');
  return repo;
}

async function optimize(repo, mode, env = {}) {
  const r = await cli(['optimize', '--repo', repo, '--agent-command', AGENT, '--json'],
    { env: { DATA_DIR: dataDir, LOG_LEVEL: 'error', SCRIPTED_AGENT_MODE: mode, ...env }, timeoutMs: RUN_MS });
  let doc;
  try {
    doc = JSON.parse(r.stdout);
  } catch {
    assert.fail(`no JSON from perfbot optimize (exit ${r.code}): ${r.stderr}${r.stdout}`);
  }
  const show = await cli(['runs', 'show', String(doc.run), '--json'], { env: { DATA_DIR: dataDir, LOG_LEVEL: 'error' } });
  const run = JSON.parse(show.stdout).run || JSON.parse(show.stdout);
  const calls = (run.data?.agent?.output || '').split('\n').filter((l) => l.startsWith('{"tool"')).map((l) => JSON.parse(l));
  return { doc, run, calls };
}

let optrepo;
before(() => {
  tmp = tmpDir('perfbot-cheats-');
  dataDir = path.join(tmp, 'var');
  optrepo = path.join(tmp, 'optrepo');
  fs.cpSync(path.join(ROOT, 'tests', 'data', 'optrepo'), optrepo, { recursive: true });
  execFileSync('git', ['init', '-q', '-b', 'main', optrepo]);
  execFileSync('git', ['-C', optrepo, 'add', '-A']);
  execFileSync('git', ['-C', optrepo, '-c', 'user.name=t', '-c', 'user.email=t@example.com', 'commit', '-qm', 'base']);
});

after(() => {
  if (tmp && !process.env.KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
});

function refusedByTool(calls, tool, words) {
  const c = calls.find((x) => x.tool === tool && x.isError && x.text.includes(words));
  assert.ok(c, `${tool} was not refused with "${words}": ${JSON.stringify(calls)}`);
}

test('a .valgrindrc is refused by write_file and by verification', async () => {
  const { doc, calls } = await optimize(optrepo, 'cheat-valgrindrc');
  refusedByTool(calls, 'write_file', 'refused: .valgrindrc is a dotfile');
  assert.equal(doc.status, 'failed');
  assert.match(doc.reason, /^refused: \.valgrindrc is a dotfile or under a dot-folder/);
});

test('an edit of the benchmark harness is refused', async () => {
  const { doc, calls } = await optimize(optrepo, 'cheat-harness');
  refusedByTool(calls, 'edit_file', 'refused: bench/primes.c is in bench/');
  assert.equal(doc.status, 'failed');
  assert.match(doc.reason, /^refused: bench\/primes\.c is in bench\/, the folder of the benchmark command `\.\/bench\/primes 3000`/);
});

test('a deleted test is refused', async () => {
  const { doc, calls } = await optimize(optrepo, 'cheat-tests');
  refusedByTool(calls, 'write_file', 'refused: test/check.c is a test (under test/)');
  assert.equal(doc.status, 'failed');
  assert.match(doc.reason, /^refused: test\/check\.c is a test \(under test\/\)/);
});

test('a client request spelled as raw instructions is refused after the build', async () => {
  const { doc, run } = await optimize(optrepo, 'cheat-asm');
  assert.equal(doc.status, 'failed', doc.reason);
  assert.match(doc.reason, /^refused: the built file (bench\/primes|test\/check) holds 1 valgrind client request, the base's 0/);
  assert.match(doc.reason, /^refused: the built file bench\/primes /);
  assert.match(run.data.verification_log, /candidate build: `make`: ok/);
  assert.doesNotMatch(run.data.verification_log, /candidate test:/);
});

test('a tests\' cache the benchmark reads is no gain: the base goes through the tests too', async () => {
  const repo = makeRepo('pyrepo', {
    '.github/perfbot.yml':
      'test: python3 tests/check.py\nbenchmarks:\n  - name: calc\n    command: python3 bench/run.py\nthreshold: 3%\n' +
      'optimize:\n  max_minutes: 5\n  max_benchmark_runs: 2\n',
    'src/calc.py': 'def total(n):\n    s = 0\n    for i in range(n):\n        s += i * i\n    return s\n',
    'tests/check.py':
      "import sys\nsys.path.insert(0, 'src')\nfrom calc import total\nassert total(10) == 285\n" +
      "open('results.cache', 'w').write(str(total(30000)))\n",
    'bench/run.py':
      "import os, sys\nsys.path.insert(0, 'src')\nfrom calc import total\n" +
      "if os.path.exists('results.cache'):\n    print(open('results.cache').read())\nelse:\n    print(total(30000))\n",
  });
  const { doc, run } = await optimize(repo, 'comment', { SCRIPTED_AGENT_FILE: 'src/calc.py' });
  assert.equal(doc.status, 'no_improvement', doc.reason);
  assert.equal(doc.reason, 'no benchmark improved past its threshold');
  assert.equal(doc.benchmarks[0].change_pct, 0);
  assert.match(run.data.verification_log, /base test: `python3 tests\/check\.py`: ok/);
});
