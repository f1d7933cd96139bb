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
import { BIN, ROOT, SLOW, cli, tmpDir, waitFor } from './lib/perfbot.js';

const AGENT = `node '${path.join(ROOT, 'tests', 'agent', 'scripted-agent.mjs')}'`;
const RUN_MS = 120000 * SLOW;
let tmp, repo, dataDir, wired;

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
  tmp = tmpDir('perfbot-optimize-');
  repo = path.join(tmp, 'repo');
  dataDir = path.join(tmp, 'var');
  fs.cpSync(path.join(ROOT, 'tests', 'data', 'optrepo'), repo, { recursive: true });
  execFileSync('git', ['init', '-q', '-b', 'main', repo]);
  git('add', '-A');
  git('commit', '-qm', 'base');
  const help = await cli(['optimize', '--help']);
  wired = help.code === 0 && /perfbot optimize/.test(help.stdout);
});

after(() => {
  if (tmp && !process.env.KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
});

test('optimize --json: a verified proposal whose numbers are perfbot bench\'s', async (t) => {
  if (!wired) return t.skip('perfbot optimize is not wired into main.c yet');
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

test('optimize without a real gain exits 1 with no_improvement; text output', async (t) => {
  if (!wired) return t.skip('perfbot optimize is not wired into main.c yet');
  const r = await optimize('fake-claim');
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stdout, /^run \d+: no_improvement: no benchmark improved past its threshold$/m);
  assert.match(r.stdout, /^primes +(\d+) +\1 +0\.00%$/m);
});

test('optimize refuses bad arguments and unknown benchmarks', async (t) => {
  if (!wired) return t.skip('perfbot optimize is not wired into main.c yet');
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

test('the documented Claude Code command line hands Claude a working MCP configuration', async (t) => {
  if (!wired) return t.skip('perfbot optimize is not wired into main.c yet');
  const bin = path.join(tmp, 'bin');
  fs.mkdirSync(bin);
  const sdk = (p) => 'file://' + path.join(ROOT, 'tests/node_modules/@modelcontextprotocol/sdk/dist/esm', p);
  fs.writeFileSync(path.join(bin, 'claude'), `#!/usr/bin/env node
const { Client } = await import('${sdk('client/index.js')}');
const { StreamableHTTPClientTransport } = await import('${sdk('client/streamableHttp.js')}');
const args = process.argv.slice(2);
const at = (f) => args[args.indexOf(f) + 1];
const server = JSON.parse(at('--mcp-config')).mcpServers.perfbot;
const client = new Client({ name: 'claude-stand-in', version: '1' });
const transport = new StreamableHTTPClientTransport(new URL(server.url), { requestInit: { headers: server.headers } });
await client.connect(transport);
const { tools } = await client.listTools();
console.log(JSON.stringify({ stand_in: { type: server.type, tools: tools.map((x) => x.name).sort(),
  prompt_has_rules: at('-p').includes('submit_result'), allowed: at('--allowedTools') } }));
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
  assert.deepEqual(seen.tools, ['compare', 'edit_file', 'exec', 'get_diff', 'get_profile', 'grep', 'list_files',
    'read_file', 'run_benchmarks', 'submit_result', 'write_file']);
});

test('a killed perfbot takes its agent command with it', async (t) => {
  if (!wired) return t.skip('perfbot optimize is not wired into main.c yet');
  const pidFile = path.join(tmp, 'agent.pid');
  const proc = spawn(BIN, ['optimize', '--repo', repo, '--agent-command', `echo $$ > '${pidFile}'; exec sleep 300`],
    { env: { ...process.env, DATA_DIR: path.join(tmp, 'var-kill'), LOG_LEVEL: 'error' }, stdio: 'ignore' });
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  const pid = await waitFor(() => {
    const text = fs.existsSync(pidFile) ? fs.readFileSync(pidFile, 'utf8').trim() : '';
    return /^\d+$/.test(text) ? Number(text) : null;
  }, { timeoutMs: RUN_MS, everyMs: 100, what: 'the agent command to start' });
  proc.kill('SIGKILL');
  await exited;
  // gone, or a zombie waiting for init to reap it: not running
  const alive = () => {
    try {
      return !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    } catch {
      return false;
    }
  };
  try {
    await waitFor(() => !alive(), { timeoutMs: 10000 * SLOW, what: 'the agent command to be killed' });
  } finally {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone, as it should be */ }
  }
});
