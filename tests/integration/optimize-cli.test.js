// Integration: `perfbot optimize` on a local repository (no GitHub): its own
// MCP endpoint on 127.0.0.1, the scripted agent as --agent-command, the real
// bwrap sandbox and callgrind; then `perfbot runs` / `perfbot runs show` on
// the same DATA_DIR.  The verified numbers are checked against `perfbot
// bench --json` on the base and on a commit with the proposed diff.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { AGENT_HOME, BIN, ROOT, SCRIPTED_AGENT, SLOW, cli, processesRunning, waitFor, dataRepoCommitted } from './lib/perfbot.js';

const AGENT = `node '${SCRIPTED_AGENT}'`;
const RUN_MS = 120000 * SLOW;
let tmp, repo, dataDir, help;

function git(...args) {
  return execFileSync('git', ['-C', repo, '-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args]).toString().trim();
}

function optimize(mode, ...args) {
  return cli(['optimize', '--repo', repo, '--agent-command', AGENT, ...args],
    { env: { DATA_DIR: dataDir, LOG_LEVEL: 'error', SCRIPTED_AGENT_MODE: mode }, timeoutMs: RUN_MS });
}

function perfbot(...args) {
  return cli(args, { env: { DATA_DIR: dataDir, LOG_LEVEL: 'error' }, timeoutMs: RUN_MS });
}

before(async () => {
  // outside /tmp and readable by all: the agent command (its own uid under
  // root, a /tmp of its own) runs the stand-ins it finds here
  tmp = fs.mkdtempSync('/var/tmp/perfbot-optimize-');
  fs.chmodSync(tmp, 0o755);
  repo = path.join(tmp, 'repo');
  dataDir = path.join(tmp, 'var');
  dataRepoCommitted('optrepo', repo);
  help = await cli(['optimize', '--help']);
});

// Every test here needs `perfbot optimize`: a binary that lacks it fails them
// all, saying so, rather than passing them by.
function assertWired() {
  assert.ok(fs.existsSync(BIN), `no perfbot binary at ${BIN}`);
  assert.ok(help.code === 0 && /perfbot optimize/.test(help.stdout),
    `\`perfbot optimize --help\` does not describe the subcommand (exit ${help.code}): ` +
    `perfbot optimize is not wired into main.c\n${help.stdout}${help.stderr}`);
}

after(() => {
  if (tmp && !process.env.KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
});

test('optimize --json: a verified proposal whose numbers are perfbot bench\'s', async () => {
  assertWired();
  const diffOut = path.join(tmp, 'out.diff');
  const r = await optimize('good', '--json', '--diff-out', diffOut);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const doc = JSON.parse(r.stdout);
  assert.equal(doc.status, 'proposal');
  assert.equal(doc.reason, '1 benchmark improved, none regressed');
  assert.ok(Number.isInteger(doc.run) && doc.run > 0);
  assert.match(doc.summary, /square root/);
  assert.match(doc.diff, /^diff --git a\/src\/primes\.c b\/src\/primes\.c\n/);
  assert.equal(fs.readFileSync(diffOut, 'utf8'), doc.diff);
  assert.deepEqual(Object.keys(doc.benchmarks[0]).sort(), ['base', 'change_pct', 'head', 'name']);

  const base = JSON.parse((await perfbot('bench', '--repo', repo, '--json')).stdout);
  git('apply', diffOut);
  git('commit', '-qam', 'proposal');
  const head = JSON.parse((await perfbot('bench', '--repo', repo, '--json')).stdout);
  git('reset', '-q', '--hard', 'HEAD~1');
  const [row] = doc.benchmarks;
  assert.equal(row.name, 'primes');
  assert.equal(row.base, base.benchmarks[0].estimated_cycles);
  assert.equal(row.head, head.benchmarks[0].estimated_cycles);
  assert.equal(Math.round(row.change_pct * 100), Math.round(((row.head - row.base) / row.base) * 10000));

  // the run is recorded for operators
  const list = await perfbot('runs', '--json');
  assert.equal(list.code, 0, list.stderr);
  const runs = JSON.parse(list.stdout);
  const rec = runs.find((x) => x.id === doc.run);
  assert.equal(rec.kind, 'agent');
  assert.equal(rec.state, 'proposal');
  assert.equal(rec.trigger, 'cli');
  assert.equal(rec.head_sha, git('rev-parse', 'HEAD'));
  const show = await perfbot('runs', 'show', String(doc.run));
  assert.equal(show.code, 0, show.stderr);
  assert.match(show.stdout, new RegExp(`^state: +proposal: 1 benchmark improved, none regressed$`, 'm'));
  assert.match(show.stdout, new RegExp(`^  primes +${row.base} +${row.head} +-\\d+\\.\\d\\d% improved$`, 'm'));
  assert.match(show.stdout, /^timings: +baseline \d+ ms, agent \d+ ms, verification \d+ ms, total \d+ ms$/m);
  assert.match(show.stdout, /^budgets: +\d+\/125 tool calls, 1\/5 benchmark runs/m);
  const showJson = JSON.parse((await perfbot('runs', 'show', String(doc.run), '--json')).stdout);
  assert.equal(showJson.proposal.diff, doc.diff);
  // work trees and the run's scratch are gone
  assert.deepEqual(fs.readdirSync(path.join(dataDir, 'work')), []);
});

test('optimize without a real gain exits 1 with no_improvement; text output', async () => {
  assertWired();
  const r = await optimize('fake-claim');
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stdout, /^run \d+: no_improvement: no benchmark improved past its threshold$/m);
  assert.match(r.stdout, /^primes +(\d+) +\1 +0\.00%$/m);
});

test('optimize refuses bad arguments and unknown benchmarks', async () => {
  assertWired();
  let r = await cli(['optimize', '--agent-command', 'true'], { env: { DATA_DIR: dataDir } });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--repo is required/);
  r = await optimize('good', '--json', '--benchmark', 'nope');
  assert.equal(r.code, 1);
  const doc = JSON.parse(r.stdout);
  assert.equal(doc.status, 'failed');
  assert.equal(doc.reason, 'configuration: the configuration has no benchmark named "nope"');
  r = await perfbot('runs', 'show', '999999');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /run 999999 not found/);
});

// The command line the README gives for Claude Code, run through perfbot's
// `command` backend with a stand-in `claude` on PATH: the stand-in parses
// --mcp-config as Claude Code would, connects with the MCP SDK using exactly
// the url and headers it finds there, and lists the tools.
// Taken from README.md itself, so the documentation cannot drift from what is tested.
const CLAUDE_COMMAND = (() => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const m = readme.match(/^PERFBOT_AGENT_COMMAND='(claude .*)'$/m);
  if (!m) throw new Error('README.md has no PERFBOT_AGENT_COMMAND line for Claude Code');
  return m[1];
})();

test('the documented Claude Code command line hands Claude a working MCP configuration', async () => {
  assertWired();
  const bin = path.join(tmp, 'bin');
  fs.mkdirSync(bin);
  const sdk = (p) => 'file://' + path.join(AGENT_HOME, 'node_modules/@modelcontextprotocol/sdk/dist/esm', p);
  fs.writeFileSync(path.join(bin, 'claude'), `#!/usr/bin/env node
const { Client } = await import('${sdk('client/index.js')}');
const { StreamableHTTPClientTransport } = await import('${sdk('client/streamableHttp.js')}');
const { readFileSync } = await import('node:fs');
const args = process.argv.slice(2);
const at = (f) => args[args.indexOf(f) + 1];
// as Claude Code does: a file, or the JSON itself
const config = at('--mcp-config');
const server = JSON.parse(config.trim().startsWith('{') ? config : readFileSync(config, 'utf8')).mcpServers.perfbot;
const token = process.env.PERFBOT_RUN_TOKEN;
const client = new Client({ name: 'claude-stand-in', version: '1' });
const transport = new StreamableHTTPClientTransport(new URL(server.url), { requestInit: { headers: server.headers } });
await client.connect(transport);
const { tools } = await client.listTools();
console.log(JSON.stringify({ stand_in: { type: server.type, tools: tools.map((x) => x.name).sort(),
  prompt_has_rules: at('-p').includes('submit_result'), allowed: at('--allowedTools'),
  token_in_argv: process.argv.some((a) => a.includes(token)), header_is_token: server.headers.Authorization === \`Bearer \${token}\` } }));
await transport.terminateSession().catch(() => {});
await client.close();
`, { mode: 0o755 });
  const r = await cli(['optimize', '--repo', repo, '--agent-command', CLAUDE_COMMAND, '--json'],
    { env: { DATA_DIR: dataDir, LOG_LEVEL: 'error', PATH: `${bin}:${process.env.PATH}` }, timeoutMs: RUN_MS });
  assert.equal(r.code, 1, r.stderr);
  const doc = JSON.parse(r.stdout);
  assert.equal(doc.status, 'no_improvement');
  assert.equal(doc.reason, 'the agent ended without submitting a change');
  const show = JSON.parse((await perfbot('runs', 'show', String(doc.run), '--json')).stdout);
  const line = show.run.data.agent.output.split('\n').find((l) => l.includes('stand_in'));
  assert.ok(line, show.run.data.agent.output);
  const seen = JSON.parse(line).stand_in;
  assert.equal(seen.type, 'http');
  assert.equal(seen.allowed, 'mcp__perfbot');
  assert.equal(seen.prompt_has_rules, true);
  assert.equal(seen.token_in_argv, false, 'the token is not in the command line');
  assert.equal(seen.header_is_token, true);
  assert.deepEqual(seen.tools, ['compare', 'edit_file', 'exec', 'get_diff', 'get_profile', 'grep', 'list_files',
    'read_file', 'run_benchmarks', 'submit_result', 'write_file']);
});

function killAll(...args) {
  for (const pid of processesRunning(...args)) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
}

test('a killed perfbot takes its agent command with it', async () => {
  assertWired();
  const proc = spawn(BIN, ['optimize', '--repo', repo, '--agent-command',
    'setsid sleep 300.21 </dev/null >/dev/null 2>&1 & exec sleep 300.22'],
    { env: { ...process.env, DATA_DIR: path.join(tmp, 'var-kill'), LOG_LEVEL: 'error' }, stdio: 'ignore' });
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  try {
    await waitFor(() => processesRunning('sleep', '300.22').length === 1 && processesRunning('sleep', '300.21').length === 1,
      { timeoutMs: RUN_MS, everyMs: 100, what: 'the agent command to start' });
    proc.kill('SIGKILL');
    await exited;
    await waitFor(() => processesRunning('sleep', '300.22').length + processesRunning('sleep', '300.21').length === 0,
      { timeoutMs: 10000 * SLOW, what: 'the agent command and its setsid child to be killed' });
  } finally {
    killAll('sleep', '300.21');
    killAll('sleep', '300.22');
  }
});

// What an agent command can reach of perfbot: the .env next to it, the key
// file, the database, its parent's environment, other runs' directories.
// Each is readable by the command's uid on the host (0644 files, DATA_DIR
// 0755), so only the confinement keeps them out.  The command also leaves a
// `setsid` child behind that must die with the run, and waits until the test
// has looked at its MCP configuration file.
test('the agent command cannot read .env, the key, the database or its parent; its setsid child dies with the run',
  async () => {
    assertWired();
    const cwd = path.join(tmp, 'confined');
    const data = path.join(cwd, 'var');
    fs.mkdirSync(data, { recursive: true, mode: 0o755 });
    fs.chmodSync(cwd, 0o755);
    fs.chmodSync(data, 0o755);
    fs.writeFileSync(path.join(cwd, '.env'), 'WEBHOOK_SECRET=dotenv-secret-5e1f\n', { mode: 0o644 });
    const key = path.join(cwd, 'app.pem');
    fs.writeFileSync(key, '-----BEGIN RSA PRIVATE KEY-----\nkey-material-77c1\n', { mode: 0o644 });
    fs.mkdirSync(path.join(data, 'work', 'run-999-other', 'agent'), { recursive: true, mode: 0o755 });
    fs.writeFileSync(path.join(data, 'work', 'run-999-other', 'agent', 'mcp.json'), 'other-run-token-0b3a',
      { mode: 0o644 });
    const go = path.join(cwd, 'go');
    const script = path.join(cwd, 'agent.sh');
    fs.writeFileSync(script, `#!/bin/sh
try() { printf '%s: ' "$1"; cat "$2" 2>&1 | tr '\\n\\0' '  ' | head -c 300; echo; }
try env '${cwd}/.env'
try key '${key}'
try db '${data}/perfbot.db'
try other '${data}/work/run-999-other/agent/mcp.json'
try parent /proc/$PPID/environ
echo "config: $(stat -c %a "$PERFBOT_MCP_CONFIG")"
setsid sleep 300.31 </dev/null >/dev/null 2>&1 &
while [ ! -e '${go}' ]; do sleep 0.1; done
echo done
`, { mode: 0o755 });
    // exec: $PPID is then what started the command, not a shell of its own
    const proc = spawn(BIN, ['optimize', '--repo', repo, '--agent-command', `exec '${script}'`, '--json'],
      { cwd, env: { ...process.env, DATA_DIR: data, PRIVATE_KEY_PATH: key, LOG_LEVEL: 'error',
        WEBHOOK_SECRET_OLD: 'parent-env-3d9a' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    proc.stdout.on('data', (d) => { stdout += d; });
    proc.stderr.on('data', (d) => { stderr += d; });
    const exited = new Promise((resolve) => proc.on('exit', resolve));
    try {
      await waitFor(() => processesRunning('sleep', '300.31').length === 1, { timeoutMs: RUN_MS, everyMs: 100,
        what: 'the agent command to start its setsid child' });
      // while the run is active: its MCP configuration, 0600, the URL and the bearer header
      const work = path.join(data, 'work');
      const dir = fs.readdirSync(work).find((d) => /^run-\d+-/.test(d) && d !== 'run-999-other');
      const config = path.join(work, dir, 'agent', 'mcp.json');
      assert.equal(fs.statSync(config).mode & 0o777, 0o600);
      const server = JSON.parse(fs.readFileSync(config, 'utf8')).mcpServers.perfbot;
      assert.equal(server.type, 'http');
      assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/mcp$/);
      assert.match(server.headers.Authorization, /^Bearer [0-9a-f]{64}$/);
      fs.writeFileSync(go, '');
      const code = await exited;
      assert.equal(code, 1, stderr);
      const doc = JSON.parse(stdout);
      assert.equal(doc.status, 'no_improvement', doc.reason);
      assert.ok(!fs.existsSync(config), 'the MCP configuration file is gone after the run');
      await waitFor(() => processesRunning('sleep', '300.31').length === 0,
        { timeoutMs: 10000 * SLOW, what: 'the setsid child to be killed when the run ended' });

      const show = JSON.parse((await cli(['runs', 'show', String(doc.run), '--json'],
        { env: { DATA_DIR: data, LOG_LEVEL: 'error' } })).stdout);
      const out = show.run.data.agent.output;
      const line = (name) => (out.split('\n').find((l) => l.startsWith(`${name}: `)) || '').slice(name.length + 2);
      // what it could read: nothing of perfbot's
      assert.match(line('env'), /No such file or directory|Permission denied/);
      assert.doesNotMatch(out, /dotenv-secret-5e1f/);
      assert.match(line('key'), /No such file or directory|Permission denied/);
      assert.doesNotMatch(out, /key-material-77c1/);
      assert.match(line('db'), /No such file or directory|Permission denied/);
      assert.doesNotMatch(out, /SQLite format/);
      assert.match(line('other'), /No such file or directory|Permission denied/);
      assert.doesNotMatch(out, /other-run-token-0b3a/);
      // its parent is the namespace's init: unreadable, or an empty environment
      assert.doesNotMatch(out, /parent-env-3d9a|PRIVATE_KEY_PATH=/);
      assert.match(line('parent'), /^(cat: \/proc\/1\/environ: Permission denied\s*)?$/);
      assert.equal(line('config'), '600');
      assert.match(out, /^done$/m);
    } finally {
      if (!fs.existsSync(go)) fs.writeFileSync(go, '');
      proc.kill('SIGKILL');
      killAll('sleep', '300.31');
    }
  });

test('cancelling optimize (SIGINT) kills the agent command and its setsid child', async () => {
  assertWired();
  const proc = spawn(BIN, ['optimize', '--repo', repo, '--agent-command',
    'setsid sleep 300.41 </dev/null >/dev/null 2>&1 & exec sleep 300.42', '--json'],
    { env: { ...process.env, DATA_DIR: path.join(tmp, 'var-cancel'), LOG_LEVEL: 'error' }, stdio: ['ignore', 'pipe', 'ignore'] });
  let stdout = '';
  proc.stdout.on('data', (d) => { stdout += d; });
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  try {
    await waitFor(() => processesRunning('sleep', '300.42').length === 1 && processesRunning('sleep', '300.41').length === 1,
      { timeoutMs: RUN_MS, everyMs: 100, what: 'the agent command to start' });
    const t0 = Date.now();
    proc.kill('SIGINT');
    await exited;
    assert.equal(JSON.parse(stdout).status, 'cancelled');
    await waitFor(() => processesRunning('sleep', '300.41').length + processesRunning('sleep', '300.42').length === 0,
      { timeoutMs: 10000 * SLOW, what: 'the agent command and its setsid child to be killed' });
    assert.ok(Date.now() - t0 < 10000 * SLOW);
  } finally {
    proc.kill('SIGKILL');
    killAll('sleep', '300.41');
    killAll('sleep', '300.42');
  }
});
