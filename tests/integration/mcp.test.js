// Integration: perfbot's MCP endpoint against the official TypeScript SDK
// client (@modelcontextprotocol/sdk, Streamable HTTP).  A small driver
// (tests/agent/mcp_test_server.c, built by the Makefile with the agent module)
// serves agent_mcp_handle over libmicrohttpd with one run on a work tree of
// tests/data/optrepo, tools hooked to the real bwrap sandbox and callgrind.
// The client lists and calls every tool; the scripted agent then tries to
// escape the workspace and to reach the network.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, cpSync, mkdirSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const buildDir = process.env.PERFBOT_BUILD || path.join(root, 'build');
const serverBin = path.join(buildDir, 'tests/agent/mcp_test_server');
let work;
const servers = [];
const execFileP = promisify(execFile);

// Built by `make tests-build` with the agent module's libraries.
function checkServer() {
  if (!existsSync(serverBin)) throw new Error(`${serverBin} is missing: run make tests-build`);
}

// A fresh repository of optrepo, a plain work tree of its base commit, and
// a server on it.  Resolves {url, token, proc, lines, ws}.
async function startServer(extra = []) {
  const dir = mkdtempSync(path.join(work, 'run-'));
  const repo = path.join(dir, 'repo'), ws = path.join(dir, 'ws'), scratch = path.join(dir, 'scratch');
  cpSync(path.join(root, 'tests/data/optrepo'), repo, { recursive: true });
  const git = (...a) => execFileSync('git', ['-C', repo, ...a]).toString().trim();
  git('init', '-q');
  git('add', '-A');
  git('-c', 'user.name=t', '-c', 'user.email=t@example.com', 'commit', '-qm', 'base');
  const base = git('rev-parse', 'HEAD');
  mkdirSync(ws);
  mkdirSync(scratch);
  execFileSync('sh', ['-c', `git -C '${repo}' archive HEAD | tar -x -C '${ws}'`]);
  const proc = spawn(serverBin, ['--workspace', ws, '--repo', repo, '--base', base, '--scratch', scratch, ...extra], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  servers.push(proc);
  const lines = [];
  const rl = createInterface({ input: proc.stdout });
  const first = await new Promise((resolve, reject) => {
    rl.on('line', (l) => {
      lines.push(l);
      if (lines.length === 1) resolve(JSON.parse(l));
    });
    proc.on('exit', (code) => reject(new Error(`mcp_test_server exited with ${code}`)));
  });
  return { url: `http://127.0.0.1:${first.port}/mcp`, token: first.token, proc, lines, ws, dir };
}

async function connect(url, token) {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
  });
  const client = new Client({ name: 'perfbot-integration', version: '1.0.0' });
  await client.connect(transport);
  return { client, transport };
}

const text = (r) => (r.content && r.content[0] && r.content[0].text) || '';

before(() => {
  work = mkdtempSync(path.join(tmpdir(), 'perfbot-mcp-it-'));
  checkServer();
});

after(() => {
  for (const p of servers) p.stdin.end();
  rmSync(work, { recursive: true, force: true });
});

test('the SDK client connects, lists every tool and calls each one', async () => {
  const s = await startServer();
  const { client, transport } = await connect(s.url, s.token);
  assert.ok(transport.sessionId, 'a session id was issued');

  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name).sort();
  assert.deepEqual(names, ['compare', 'edit_file', 'exec', 'get_diff', 'get_profile', 'grep', 'list_files',
    'read_file', 'run_benchmarks', 'submit_result', 'write_file']);
  for (const t of tools) {
    assert.equal(t.inputSchema.type, 'object', `${t.name} has an object schema`);
    assert.ok(t.description.length > 20, `${t.name} is described`);
  }

  let r = await client.callTool({ name: 'list_files', arguments: {} });
  assert.equal(r.isError, false);
  assert.match(text(r), /^src\/$/m);

  r = await client.callTool({ name: 'read_file', arguments: { path: 'src/primes.c' } });
  assert.match(text(r), /for \(int d = 2; d < n; d\+\+\)/);

  r = await client.callTool({ name: 'grep', arguments: { pattern: 'count_primes\\(', path: 'src' } });
  assert.match(text(r), /^src\/primes\.c:13:int count_primes\(int n\)$/m);

  r = await client.callTool({ name: 'get_profile', arguments: { benchmark: 'primes', measurement: 'baseline', limit: 3 } });
  assert.equal(r.isError, false, text(r));
  assert.equal(r.structuredContent.functions[0].name, 'is_prime', 'the hot function leads the profile');

  r = await client.callTool({ name: 'edit_file', arguments: {
    path: 'src/primes.c', old_string: 'd < n;', new_string: 'd * d <= n;' } });
  assert.equal(text(r), 'replaced 1 occurrence in src/primes.c');

  r = await client.callTool({ name: 'write_file', arguments: { path: 'NOTES.md', content: 'sqrt bound\n' } });
  assert.equal(r.isError, false);

  r = await client.callTool({ name: 'exec', arguments: { command: 'make -s && make -s test && whoami; pwd', timeout_s: 120 } });
  assert.equal(r.isError, false);
  assert.equal(r.structuredContent.exit_code, 0, text(r));
  assert.match(r.structuredContent.stdout, /^ok$/m);
  assert.match(r.structuredContent.stdout, /^\/workspace$/m);

  r = await client.callTool({ name: 'run_benchmarks', arguments: {} });
  assert.equal(r.isError, false, text(r));
  const m = r.structuredContent;
  assert.equal(m.measurement, 'm1');
  const row = m.benchmarks.find((b) => b.name === 'primes');
  assert.ok(row.head < row.base / 2, `primes got faster: ${text(r)}`);

  r = await client.callTool({ name: 'compare', arguments: { base: 'baseline', head: 'm1' } });
  assert.equal(r.isError, false, text(r));
  assert.match(text(r), /primes\s+\d+\s+\d+\s+-\d+\.\d+%/);

  r = await client.callTool({ name: 'get_diff', arguments: {} });
  assert.match(text(r), /\+\tfor \(int d = 2; d \* d <= n; d\+\+\)/);
  assert.match(text(r), /diff --git a\/NOTES\.md b\/NOTES\.md\nnew file mode/);
  assert.doesNotMatch(text(r), /bench\/primes\b.*Binary/, 'build outputs are ignored');

  r = await client.callTool({ name: 'read_file', arguments: { path: '../repo/.git/config' } });
  assert.equal(r.isError, true);
  assert.match(text(r), /"\.\." is not allowed/);

  r = await client.callTool({ name: 'submit_result', arguments: { summary: 'sqrt bound in is_prime' } });
  assert.equal(r.isError, false);
  r = await client.callTool({ name: 'list_files', arguments: {} });
  assert.equal(r.isError, true);
  assert.equal(text(r), 'the run has ended: submitted');
  const sub = await submission(s);
  assert.equal(sub.summary, 'sqrt bound in is_prime');
  assert.match(sub.diff, /d \* d <= n/);

  await transport.terminateSession();
  await client.close();
});

test('a missing or wrong bearer token gets 401 and no session', async () => {
  const s = await startServer();
  const init = { jsonrpc: '2.0', id: 1, method: 'initialize',
    params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } } };
  const headers = { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' };
  let res = await fetch(s.url, { method: 'POST', headers, body: JSON.stringify(init) });
  assert.equal(res.status, 401);
  assert.match(res.headers.get('www-authenticate'), /^Bearer/);
  res = await fetch(s.url, { method: 'POST', headers: { ...headers, Authorization: 'Bearer ' + 'a'.repeat(64) },
    body: JSON.stringify(init) });
  assert.equal(res.status, 401);
  assert.equal(res.headers.get('mcp-session-id'), null);
  await assert.rejects(connect(s.url, 'b'.repeat(64)));
  res = await fetch(s.url, { method: 'GET', headers: { Authorization: 'Bearer ' + s.token, Accept: 'text/event-stream' } });
  assert.equal(res.status, 405);
});

test('one run holds at most 8 sessions; the ninth initialize gets a clear refusal', async () => {
  const s = await startServer();
  const init = { jsonrpc: '2.0', id: 1, method: 'initialize',
    params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } } };
  const headers = { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream',
    Authorization: 'Bearer ' + s.token };
  const ids = [];
  for (let i = 0; i < 8; i++) {
    const res = await fetch(s.url, { method: 'POST', headers, body: JSON.stringify(init) });
    assert.equal(res.status, 200);
    ids.push(res.headers.get('mcp-session-id'));
  }
  let res = await fetch(s.url, { method: 'POST', headers, body: JSON.stringify(init) });
  assert.equal(res.status, 429);
  assert.equal(res.headers.get('mcp-session-id'), null);
  const body = await res.json();
  assert.equal(body.error.code, -32000);
  assert.match(body.error.message, /Too many sessions for this run: at most 8/);
  // ending one makes room
  res = await fetch(s.url, { method: 'DELETE', headers: { ...headers, 'Mcp-Session-Id': ids[0] } });
  assert.equal(res.status, 200);
  res = await fetch(s.url, { method: 'POST', headers, body: JSON.stringify(init) });
  assert.equal(res.status, 200);
});

async function runScripted(s, mode) {
  const { stdout } = await execFileP('node', [path.join(root, 'tests/agent/scripted-agent.mjs')], {
    env: { ...process.env, PERFBOT_MCP_URL: s.url, PERFBOT_RUN_TOKEN: s.token, SCRIPTED_AGENT_MODE: mode },
    cwd: path.join(root, 'tests'),
  });
  return stdout.trim().split('\n').map((l) => JSON.parse(l));
}

async function submission(s) {
  for (let i = 0; i < 50; i++) {
    const l = s.lines.find((x) => x.includes('"submitted"'));
    if (l) return JSON.parse(l).submitted;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('nothing was submitted');
}

test('the scripted agent cannot leave the workspace', async () => {
  const s = await startServer();
  const calls = (await runScripted(s, 'escape')).filter((c) => c.tool);
  const byPrefix = (tool, re) => calls.find((c) => c.tool === tool && re.test(c.text) || false);
  assert.equal(calls.filter((c) => c.tool === 'write_file' && c.isError).length, 4, 'four writes refused');
  assert.ok(byPrefix('write_file', /^refused: \.github\/workflows\/perfbot-escape\.yml is under \.github\//),
    'a protected path is refused at once');
  assert.ok(byPrefix('write_file', /absolute paths are not allowed/));
  assert.ok(byPrefix('write_file', /\.git directory is off limits/));
  assert.ok(calls.find((c) => c.tool === 'read_file' && c.isError && /resolves outside the workspace/.test(c.text)),
    'a symlink to / is not followed');
  assert.equal(existsSync(path.join(s.dir, 'escape.txt')), false);
  assert.equal(existsSync('/tmp/perfbot-escape.txt'), false);
  assert.equal(existsSync('/etc/perfbot-escape'), false);
  assert.equal(existsSync('/usr/perfbot-escape'), false);
  assert.equal(existsSync(path.join(s.ws, '.git')), false);
  const sub = await submission(s);
  assert.match(sub.diff, /\.github\/workflows\/perfbot-escape\.yml/,
    'the workflow written through exec reaches verification, which refuses it');
});

test('exec has no network', async () => {
  const s = await startServer();
  const calls = (await runScripted(s, 'network')).filter((c) => c.tool === 'exec');
  assert.equal(calls[0].isError, false);
  assert.match(calls[0].text, /--- stdout ---\nlo\n--- stderr/, 'only the loopback interface');
  assert.match(calls[1].text, /DNS-FAIL/);
  assert.match(calls[1].text, /NET-FAIL/);
});
