// Integration: the subcommands' option errors, against the real binary.
// Every subcommand takes "--opt value" and "--opt=value"; a missing value,
// an unknown option and a stray argument are one line on stderr naming it,
// exit status 2, before anything is opened or measured.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { cli, tmpDir } from './lib/perfbot.js';

let tmp, dataDir, repo;

function perfbot(...args) {
  return cli(args, { env: { DATA_DIR: dataDir, LOG_LEVEL: 'error' } });
}

// exit 2 and exactly one line on stderr, matching `line`
function usageError(r, line) {
  assert.equal(r.code, 2, r.stderr + r.stdout);
  assert.equal(r.stdout, '');
  const lines = r.stderr.split('\n').filter(Boolean);
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], line);
}

before(() => {
  tmp = tmpDir('perfbot-cli-');
  dataDir = path.join(tmp, 'var');
  repo = path.join(tmp, 'repo');
  fs.mkdirSync(repo);
  execFileSync('git', ['init', '-q', '-b', 'main', repo]);
  fs.writeFileSync(path.join(repo, 'README'), 'no perfbot.yml here\n');
  execFileSync('git', ['-C', repo, '-c', 'user.name=t', '-c', 'user.email=t@example.com', 'add', '-A']);
  execFileSync('git', ['-C', repo, '-c', 'user.name=t', '-c', 'user.email=t@example.com', 'commit', '-qm', 'x']);
});

after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('a missing value names the option', async () => {
  const cases = [
    [['bench', '--repo'], /^perfbot bench: option '--repo' needs a value$/],
    [['bench', '--json', '--rev'], /^perfbot bench: option '--rev' needs a value$/],
    [['optimize', '--repo', repo, '--agent-command'], /^perfbot optimize: option '--agent-command' needs a value$/],
    [['optimize', '-b'], /^perfbot optimize: option '-b' needs a value$/],
    [['runs', '--limit'], /^perfbot runs: option '--limit' needs a value$/],
    [['runs', '--kind'], /^perfbot runs: option '--kind' needs a value$/],
    [['jobs', '-n'], /^perfbot jobs: option '-n' needs a value$/],
    [['deliveries', '--event'], /^perfbot deliveries: option '--event' needs a value$/],
    [['receive', '-e', 'push', '--payload-path'], /^perfbot receive: option '--payload-path' needs a value$/],
    [['receive', '--secret'], /^perfbot receive: option '--secret' needs a value$/],
    // configuration flags, taken by every subcommand
    [['serve', '--port'], /^perfbot serve: option '--port' needs a value$/],
    [['bench', '--data-dir'], /^perfbot bench: option '--data-dir' needs a value$/],
  ];
  for (const [args, line] of cases) usageError(await perfbot(...args), line);
});

test('an unknown option or a stray argument is named, with a pointer to --help', async () => {
  const cases = [
    [['bench', '--nope'], /^perfbot bench: unknown option '--nope' \(see perfbot bench --help\)$/],
    [['bench', '--rep', repo], /^perfbot bench: unknown option '--rep'/], // no abbreviations
    [['bench', 'stray'], /^perfbot bench: unexpected argument 'stray'/],
    [['bench', '--json=yes'], /^perfbot bench: option '--json' takes no value$/],
    [['optimize', '-x'], /^perfbot optimize: unknown option '-x'/],
    [['runs', '--event', 'push'], /^perfbot runs: unknown option '--event'/],
    [['runs', 'show', '1', '2'], /^perfbot runs: unexpected argument '2'/],
    [['jobs', '--event', 'push'], /^perfbot jobs: unknown option '--event'/],
    [['deliveries', '--nope=1'], /^perfbot deliveries: unknown option '--nope'/],
    [['receive', '--url'], /^perfbot receive: option '--url' needs a value$/],
    [['receive', '--bogus'], /^perfbot receive: unknown option '--bogus'/],
    [['serve', '--no-such-variable', '1'], /^perfbot serve: unknown option '--no-such-variable' \(see perfbot serve --help\)$/],
    [['serve', 'extra'], /^perfbot serve: unexpected argument 'extra'/],
  ];
  for (const [args, line] of cases) usageError(await perfbot(...args), line);
});

test('--opt=value and --opt value reach the command alike', async () => {
  for (const args of [['--repo', repo], [`--repo=${repo}`]]) {
    const r = await perfbot('bench', ...args, '--rev=HEAD');
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /has no \.github\/perfbot\.yml/);
  }
  for (const args of [['--limit', '0'], ['--limit=0'], ['-n', '0']]) {
    const r = await perfbot('runs', ...args);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^perfbot runs: --limit expects a positive number\n$/);
  }
  for (const args of [['--limit', 'abc'], ['--limit=abc']]) {
    const r = await perfbot('jobs', ...args);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--limit: expected a positive number, got "abc"/);
  }
  const missing = path.join(tmp, 'missing.json');
  for (const args of [['-e', 'push', '-p', missing, '--secret', 's'], ['--event=push', `--payload-path=${missing}`, '--secret=s']]) {
    const r = await perfbot('receive', ...args);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /cannot read .*missing\.json/);
  }
  // configuration flags too: --port=abc sets PORT
  for (const args of [['--port', 'abc'], ['--port=abc']]) {
    const r = await perfbot('serve', ...args);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^perfbot serve: PORT: .*abc/);
  }
});

test('--help prints each subcommand\'s usage, exit 0', async () => {
  for (const cmd of ['serve', 'deliveries', 'jobs', 'bench', 'optimize', 'runs', 'receive']) {
    const r = await perfbot(cmd, '--help');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^Usage: perfbot ${cmd} `));
    assert.match(r.stdout, /Configuration \(environment, \.env, or --flag-name VALUE\):/);
  }
});
