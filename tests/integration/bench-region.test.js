// Region mode: a harness that marks what counts with callgrind's client
// requests (CALLGRIND_ZERO_STATS / START / STOP_INSTRUMENTATION) is measured
// for that region only, while process mode counts the whole process.  The
// program spends most of its instructions in setup outside the region.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BIN } from './lib/perfbot.js';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'perfbot-region-'));
after(() => fs.rmSync(work, { recursive: true, force: true }));

const PROGRAM = `#include <stdio.h>
#include <stdlib.h>
#include <valgrind/callgrind.h>

/* setup: far more work than the measured region */
static unsigned long setup(unsigned long n)
{
	unsigned long x = 1;
	for (unsigned long i = 0; i < n; i++)
		x = x * 6364136223846793005UL + 1442695040888963407UL;
	return x;
}

static unsigned long region(unsigned long n, unsigned long seed)
{
	unsigned long s = seed;
	for (unsigned long i = 0; i < n; i++)
		s += (s >> 3) ^ i;
	return s;
}

int main(int argc, char **argv)
{
	unsigned long rounds = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000;
	unsigned long seed = setup(2000000);
#ifndef PLAIN
	CALLGRIND_ZERO_STATS;
	CALLGRIND_START_INSTRUMENTATION;
#endif
	unsigned long r = region(rounds, seed);
#ifndef PLAIN
	CALLGRIND_STOP_INSTRUMENTATION;
#endif
	printf("%lu\\n", r);
	return 0;
}
`;

let repos = 0;
function setupRepo(rounds) {
  const repo = path.join(work, `repo-${++repos}`);
  fs.mkdirSync(path.join(repo, '.github'), { recursive: true });
  fs.writeFileSync(path.join(repo, 'region.c'), PROGRAM);
  fs.writeFileSync(path.join(repo, '.github/perfbot.yml'), [
    'build: cc -O1 -g -o region region.c && cc -O1 -g -DPLAIN -o plain region.c',
    'benchmarks:',
    `  - name: whole`,
    `    command: ./plain ${rounds}`,
    `  - name: region`,
    `    command: ./region ${rounds}`,
    '    mode: region',
    '',
  ].join('\n'));
  const git = (...a) => execFileSync('git', ['-C', repo, '-c', 'user.name=t', '-c', 'user.email=t@example.com', ...a]);
  execFileSync('git', ['init', '-q', '-b', 'main', repo]);
  git('add', '-A');
  git('commit', '-qm', 'region');
  return repo;
}

function bench(repo) {
  const r = spawnSync(BIN, ['bench', '--repo', repo, '--json'], {
    env: { PATH: process.env.PATH, DATA_DIR: path.join(work, 'var'), LOG_LEVEL: 'error',
      ASAN_OPTIONS: process.env.ASAN_OPTIONS || '' },
    encoding: 'utf8', timeout: 300000,
  });
  assert.equal(r.status, 0, r.stderr);
  const doc = JSON.parse(r.stdout);
  return Object.fromEntries(doc.benchmarks.map((b) => [b.name, b]));
}

test('mode: region counts only what the harness marks; process mode counts the whole process', () => {
  const small = bench(setupRepo(1000));
  const large = bench(setupRepo(100000));
  for (const b of [small.whole, small.region, large.region]) assert.equal(b.status, 'ok', JSON.stringify(b));
  // the whole process pays for the setup (millions of instructions); the region does not
  assert.ok(small.whole.instructions > 5_000_000, `whole: ${small.whole.instructions}`);
  assert.ok(small.region.instructions < 50_000, `region: ${small.region.instructions}`);
  // the region grows with the work inside it, about linearly (100x the rounds)
  const ratio = large.region.instructions / small.region.instructions;
  assert.ok(ratio > 50 && ratio < 150, `region ratio ${ratio}`);
  // and it is as repeatable as the whole process
  const again = bench(setupRepo(1000));
  assert.equal(again.region.instructions, small.region.instructions);
  assert.equal(again.region.estimated_cycles, small.region.estimated_cycles);
});
