// Checks the fake Managed Agents API itself, over plain HTTP: it must refuse
// what the reference says the service refuses (each credential where it does
// not belong, missing beta/version headers, malformed agents), hold work-item
// leases like the service (poll, ack, heartbeat with expected_last_heartbeat,
// 412 when the lease is lost, 409 on a second stop), play scripted sessions
// over SSE and the event history, and record every protocol breach of a
// client (a tool use answered twice, a denied one answered).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { startFakeAnthropic } = require('../fake-anthropic/server.js');

const API_KEY = 'sk-ant-api03-test-key';
const ENV_KEY = 'sk-ant-env-test-key';
let fake;

const WIRE = { 'anthropic-version': '2023-06-01', 'anthropic-beta': 'managed-agents-2026-04-01' };
const asApi = { 'x-api-key': API_KEY };
const asEnv = { authorization: `Bearer ${ENV_KEY}` };
const asToken = (token) => ({ authorization: `Bearer ${token}` });

async function call(method, p, { headers = asApi, body, wire = WIRE, beta = true, f = fake } = {}) {
  const h = { ...wire, ...headers };
  if (body !== undefined) h['content-type'] = 'application/json';
  const sep = p.includes('?') ? '&' : '?';
  const res = await fetch(`${f.url}${p}${beta ? `${sep}beta=true` : ''}`,
    { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
}

function assertError(res, status, type) {
  assert.equal(res.status, status, JSON.stringify(res.body));
  assert.equal(res.body.type, 'error');
  assert.equal(res.body.error.type, type);
  assert.equal(typeof res.body.error.message, 'string');
  assert.match(res.body.request_id, /^req_/);
}

function decodeSecret(secret) {
  assert.doesNotMatch(secret, /[=+/]/, 'unpadded base64url');
  return JSON.parse(Buffer.from(secret, 'base64url').toString());
}

// An SSE reader: collects {event, data} frames; .wait(pred) resolves with the first match.
function openStream(sessionId, token, f = fake) {
  const frames = [];
  const listeners = new Set();
  let ended = false;
  const u = new URL(`${f.url}/v1/sessions/${sessionId}/events/stream?beta=true`);
  const req = http.get(u, { headers: { ...WIRE, ...asToken(token), accept: 'text/event-stream' } });
  const ready = new Promise((resolve, reject) => {
    req.on('response', (res) => {
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        buf += d;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const raw = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const ev = /^event: (.*)$/m.exec(raw);
          const data = /^data: (.*)$/m.exec(raw);
          frames.push({ event: ev && ev[1], data: data && JSON.parse(data[1]) });
          for (const l of listeners) l();
        }
      });
      const end = () => { ended = true; for (const l of listeners) l(); };
      res.on('end', end);
      res.on('close', end);
      res.on('error', end);
      resolve(res);
    });
    req.on('error', (e) => { ended = true; for (const l of listeners) l(); reject(e); });
  });
  return {
    frames, ready, get ended() { return ended; },
    events: () => frames.filter((x) => x.event !== 'ping').map((x) => x.data),
    wait(pred, timeoutMs = 3000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = frames.find((x) => x.event !== 'ping' && pred(x.data));
          if (hit) { done(); resolve(hit.data); } else if (ended) { done(); reject(new Error('stream ended')); }
        };
        const t = setTimeout(() => { done(); reject(new Error('no such event on the stream')); }, timeoutMs);
        const done = () => { clearTimeout(t); listeners.delete(check); };
        listeners.add(check);
        check();
      });
    },
    waitEnd(timeoutMs = 3000) {
      return new Promise((resolve, reject) => {
        const check = () => { if (ended) { done(); resolve(); } };
        const t = setTimeout(() => { done(); reject(new Error('stream did not end')); }, timeoutMs);
        const done = () => { clearTimeout(t); listeners.delete(check); };
        listeners.add(check);
        check();
      });
    },
    close() { req.destroy(); },
  };
}

let agentId;

async function newAgent() {
  const res = await call('POST', '/v1/agents', { body: {
    name: 'perfbot', model: 'claude-sonnet-4-5', system: 'You make C code faster.',
    tools: [
      { type: 'agent_toolset_20260401', default_config: { enabled: true, permission_policy: { type: 'always_allow' } },
        configs: [{ name: 'web_fetch', enabled: false }, { name: 'web_search', enabled: false }] },
      { type: 'custom', name: 'run_benchmarks', description: 'Runs the benchmarks.', input_schema: { type: 'object', properties: {} } },
      { type: 'custom', name: 'submit_result', description: 'Submits.', input_schema: { type: 'object' } },
    ],
    metadata: { owner: 'perfbot' } } });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body;
}

// Creates a session that plays `script`, polls its work item and acks it: {session, work, token}.
async function claimSession(script, { f = fake, env } = {}) {
  f.nextScript(script);
  const s = await call('POST', '/v1/sessions', { f, body: {
    agent: agentId, environment_id: env || f.environmentId, title: 'run 7', metadata: { run: '7' },
    initial_events: [{ type: 'user.message', content: [{ type: 'text', text: 'Make it faster.' }] }] } });
  assert.equal(s.status, 200, JSON.stringify(s.body));
  const poll = await call('GET', `/v1/environments/${env || f.environmentId}/work/poll?block_ms=500`,
    { f, headers: { ...asEnv, 'anthropic-worker-id': 'worker-1' } });
  assert.equal(poll.status, 200, JSON.stringify(poll.body));
  assert.equal(poll.body.data.id, s.body.id);
  const ack = await call('POST', `/v1/environments/${poll.body.environment_id}/work/${poll.body.id}/ack`, { f, headers: asEnv });
  assert.equal(ack.status, 200);
  return { session: s.body, work: poll.body, token: decodeSecret(poll.body.secret).sessions_token };
}

async function listAll(sessionId, token, limit = 3) {
  const out = [];
  let cursor = null;
  for (;;) {
    const r = await call('GET', `/v1/sessions/${sessionId}/events?limit=${limit}${cursor ? `&page=${cursor}` : ''}`,
      { headers: asToken(token) });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    out.push(...r.body.data);
    if (!r.body.next_page) return out;
    cursor = r.body.next_page;
  }
}

const text = (t) => [{ type: 'text', text: t }];

before(async () => {
  fake = await startFakeAnthropic({ apiKey: API_KEY, environmentKey: ENV_KEY, pingMs: 100, stepDelayMs: 1 });
  agentId = (await newAgent()).id;
});

after(async () => {
  await fake.close();
});

test('the wire: ?beta=true, anthropic-version, anthropic-beta and JSON bodies are required', async () => {
  assertError(await call('GET', '/v1/agents', { beta: false }), 404, 'not_found_error');
  assertError(await call('GET', '/v1/agents', { wire: { 'anthropic-beta': WIRE['anthropic-beta'] } }), 400, 'invalid_request_error');
  assertError(await call('GET', '/v1/agents', { wire: { ...WIRE, 'anthropic-version': '2024-01-01' } }), 400, 'invalid_request_error');
  assertError(await call('GET', '/v1/agents', { wire: { 'anthropic-version': '2023-06-01' } }), 400, 'invalid_request_error');
  const plain = await fetch(`${fake.url}/v1/agents?beta=true`, { method: 'POST',
    headers: { ...WIRE, ...asApi, 'content-type': 'text/plain' }, body: JSON.stringify({ name: 'x', model: 'm' }) });
  assert.equal(plain.status, 400);
  const broken = await fetch(`${fake.url}/v1/agents?beta=true`, { method: 'POST',
    headers: { ...WIRE, ...asApi, 'content-type': 'application/json' }, body: '{"name":' });
  assert.equal(broken.status, 400);
  // several betas in one header are fine
  const ok = await call('GET', '/v1/agents', { wire: { ...WIRE, 'anthropic-beta': 'foo-2025-01-01,managed-agents-2026-04-01' } });
  assert.equal(ok.status, 200);
  const rec = fake.requests.at(-1);
  assert.equal(rec.auth, 'api');
  assert.equal(rec.headers['x-api-key'], API_KEY);
});

test('each credential is refused where it does not belong', async () => {
  const { session, work, token } = await claimSession([{ waitFor: 'interrupt' }]);
  const env = fake.environmentId;
  // control plane: the API key only
  assertError(await call('GET', '/v1/agents', { headers: asEnv }), 401, 'authentication_error');
  assertError(await call('GET', '/v1/agents', { headers: asToken(token) }), 401, 'authentication_error');
  assertError(await call('GET', '/v1/agents', { headers: { 'x-api-key': 'sk-ant-wrong' } }), 401, 'authentication_error');
  assertError(await call('GET', '/v1/agents', { headers: {} }), 401, 'authentication_error');
  assertError(await call('GET', '/v1/agents', { headers: { ...asApi, ...asEnv } }), 401, 'authentication_error');
  assertError(await call('POST', '/v1/environments', { headers: asEnv, body: { name: 'x', config: { type: 'self_hosted' } } }), 401, 'authentication_error');
  assertError(await call('POST', '/v1/sessions', { headers: asToken(token), body: { agent: agentId, environment_id: env } }), 401, 'authentication_error');
  // polling: the environment key only
  const workerId = { 'anthropic-worker-id': 'w' };
  assertError(await call('GET', `/v1/environments/${env}/work/poll`, { headers: { ...asApi, ...workerId } }), 401, 'authentication_error');
  assertError(await call('GET', `/v1/environments/${env}/work/poll`, { headers: { ...asToken(token), ...workerId } }), 401, 'authentication_error');
  assertError(await call('GET', `/v1/environments/${env}/work/poll`, { headers: { authorization: 'Bearer nope', ...workerId } }), 401, 'authentication_error');
  assertError(await call('GET', `/v1/environments/${env}/work/poll`, { headers: asEnv }), 400, 'invalid_request_error'); // no worker id
  // an environment key is its environment's only
  const other = fake.createEnvironment({ name: 'other', config: { type: 'self_hosted' }, key: 'sk-ant-env-other' });
  assertError(await call('GET', `/v1/environments/${other.id}/work/poll`, { headers: { ...asEnv, ...workerId } }), 403, 'permission_error');
  // the work item's calls: the environment key or its own sessions token, never the API key
  assertError(await call('POST', `/v1/environments/${env}/work/${work.id}/heartbeat?expected_last_heartbeat=NO_HEARTBEAT`), 401, 'authentication_error');
  assertError(await call('POST', `/v1/environments/${env}/work/${work.id}/stop`, { body: { force: true } }), 401, 'authentication_error');
  // the session's calls: the API key or its sessions token, never the environment key
  assertError(await call('GET', `/v1/sessions/${session.id}`, { headers: asEnv }), 401, 'authentication_error');
  assertError(await call('GET', `/v1/sessions/${session.id}/events`, { headers: asEnv }), 401, 'authentication_error');
  assert.equal((await call('GET', `/v1/sessions/${session.id}`, { headers: asToken(token) })).status, 200);
  assert.equal((await call('GET', `/v1/sessions/${session.id}`)).status, 200);
  // a sessions token is for its own item and session only
  const second = await claimSession([{ waitFor: 'interrupt' }]);
  assertError(await call('GET', `/v1/sessions/${session.id}/events`, { headers: asToken(second.token) }), 403, 'permission_error');
  assertError(await call('POST', `/v1/environments/${env}/work/${work.id}/heartbeat?expected_last_heartbeat=NO_HEARTBEAT`,
    { headers: asToken(second.token) }), 403, 'permission_error');
  assertError(await call('GET', '/v1/sessions/sesn_nope', { headers: asApi }), 404, 'not_found_error');
  for (const x of [session, second.session])
    await call('POST', `/v1/sessions/${x.id}/events`, { body: { events: [{ type: 'user.interrupt' }] } });
  const kinds = new Set(fake.requests.map((r) => r.auth));
  for (const k of ['api', 'environment', 'sessions', 'none', 'invalid', 'both']) assert.ok(kinds.has(k), k);
});

test('agents: validated, versioned on update, listed with pagination', async () => {
  const base = { name: 'a', model: 'claude-sonnet-4-5' };
  const refused = [
    { ...base, name: '' },
    { name: 'a' },
    { ...base, system: 'x'.repeat(100001) },
    { ...base, tools: [{ type: 'custom', name: 'bad name', description: 'd', input_schema: { type: 'object' } }] },
    { ...base, tools: [{ type: 'custom', name: 'x'.repeat(129), description: 'd', input_schema: { type: 'object' } }] },
    { ...base, tools: Array.from({ length: 129 }, (_, i) => ({ type: 'custom', name: `t${i}`, description: 'd', input_schema: { type: 'object' } })) },
    { ...base, tools: [{ type: 'agent_toolset_20260401', configs: [{ name: 'telnet' }] }] },
    { ...base, metadata: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])) },
    { ...base, metadata: { ['k'.repeat(65)]: 'v' } },
    { ...base, metadata: { k: 'v'.repeat(513) } },
  ];
  for (const body of refused) assertError(await call('POST', '/v1/agents', { body }), 400, 'invalid_request_error');
  const okMax = await call('POST', '/v1/agents', { body: { ...base, system: 'x'.repeat(100000),
    tools: Array.from({ length: 128 }, (_, i) => ({ type: 'custom', name: `t-${i}_X`, description: 'd', input_schema: { type: 'object' } })),
    metadata: Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`.padEnd(64, 'k'), 'v'.repeat(512)])) } });
  assert.equal(okMax.status, 200, JSON.stringify(okMax.body).slice(0, 300));

  const a = await newAgent();
  assert.match(a.id, /^agent_/);
  assert.equal(a.type, 'agent');
  assert.equal(a.version, 1);
  assert.deepEqual(a.model, { id: 'claude-sonnet-4-5' });
  const toolset = a.tools.find((t) => t.type === 'agent_toolset_20260401');
  assert.equal(toolset.configs.find((c) => c.name === 'web_fetch').enabled, false);
  assert.equal(toolset.configs.find((c) => c.name === 'bash').enabled, true);
  for (const k of ['created_at', 'updated_at', 'archived_at', 'description', 'mcp_servers', 'skills', 'metadata'])
    assert.ok(k in a, k);

  const up = await call('POST', `/v1/agents/${a.id}`, { body: { system: 'Faster, please.', version: 1 } });
  assert.equal(up.status, 200);
  assert.equal(up.body.version, 2);
  assert.equal(up.body.name, 'perfbot'); // omitted fields are kept
  assertError(await call('POST', `/v1/agents/${a.id}`, { body: { system: 'x', version: 1 } }), 409, 'invalid_request_error');
  // by default even an update that changes nothing makes a version (a blind update shows)
  const same = await call('POST', `/v1/agents/${a.id}`, { body: { system: 'Faster, please.', version: 2 } });
  assert.equal(same.body.version, 3);
  assert.equal((await call('GET', `/v1/agents/${a.id}?version=1`)).body.system, 'You make C code faster.');
  assert.equal((await call('GET', `/v1/agents/${a.id}`)).body.system, 'Faster, please.');
  const md = await call('POST', `/v1/agents/${a.id}`, { body: { metadata: { owner: null, team: 'perf' } } });
  assert.deepEqual(md.body.metadata, { team: 'perf' });
  assert.equal(md.body.version, 4);
  const versions = await call('GET', `/v1/agents/${a.id}/versions?limit=10`);
  assert.deepEqual(versions.body.data.map((v) => v.version), [4, 3, 2, 1]);
  assertError(await call('GET', '/v1/agents/agent_missing'), 404, 'not_found_error');

  const keep = await startFakeAnthropic({ apiKey: API_KEY, noopUpdateKeepsVersion: true });
  try {
    const k = await call('POST', '/v1/agents', { f: keep, body: { name: 'k', model: 'm', system: 's' } });
    assert.equal((await call('POST', `/v1/agents/${k.body.id}`, { f: keep, body: { system: 's' } })).body.version, 1);
    assert.equal((await call('POST', `/v1/agents/${k.body.id}`, { f: keep, body: { system: 't' } })).body.version, 2);
  } finally {
    await keep.close();
  }

  const first = await call('GET', '/v1/agents?limit=1');
  assert.equal(first.body.data.length, 1);
  assert.equal(typeof first.body.next_page, 'string');
  const second = await call('GET', `/v1/agents?limit=1&page=${first.body.next_page}`);
  assert.notEqual(second.body.data[0].id, first.body.data[0].id);
});

test('environments: a self-hosted one is created, read and listed', async () => {
  const e = await call('POST', '/v1/environments', { body: { name: 'perfbot', config: { type: 'self_hosted' } } });
  assert.equal(e.status, 200);
  assert.match(e.body.id, /^env_/);
  assert.equal(e.body.type, 'environment');
  assert.deepEqual(e.body.config, { type: 'self_hosted' });
  assert.equal((await call('GET', `/v1/environments/${e.body.id}`)).body.name, 'perfbot');
  const list = await call('GET', '/v1/environments?limit=100');
  assert.ok(list.body.data.some((x) => x.id === e.body.id));
  assert.ok('next_page' in list.body);
  assertError(await call('POST', '/v1/environments', { body: { name: 'x', config: { type: 'moon' } } }), 400, 'invalid_request_error');
});

test('a session makes a work item: polled, reclaimed when not acked, acked, heartbeated with leases, stopped once', async () => {
  fake.nextScript([{ waitFor: 'interrupt' }]);
  const s = await call('POST', '/v1/sessions', { body: { agent: agentId, environment_id: fake.environmentId,
    title: 't', metadata: { run: '42' },
    budget: { type: 'limit', max_list_cost: { amount: '250', currency: 'USD' } },
    initial_events: [{ type: 'user.message', content: text('go') }] } });
  assert.equal(s.status, 200, JSON.stringify(s.body));
  assert.match(s.body.id, /^sesn_/);
  assert.equal(s.body.agent.version, 1);
  assert.deepEqual(s.body.budget.max_list_cost, { amount: '250', currency: 'USD' });
  assertError(await call('POST', '/v1/sessions', { body: { agent: agentId, environment_id: fake.environmentId,
    budget: { type: 'limit', max_list_cost: { amount: '2.50', currency: 'USD' } } } }), 400, 'invalid_request_error');
  const env = fake.environmentId;
  const poll = (q = 'block_ms=200') => call('GET', `/v1/environments/${env}/work/poll?${q}`,
    { headers: { ...asEnv, 'anthropic-worker-id': 'worker-a' } });
  assertError(await poll('block_ms=1000'), 400, 'invalid_request_error');
  const w = await poll();
  assert.equal(w.status, 200);
  assert.match(w.body.id, /^work_/);
  assert.equal(w.body.type, 'work');
  assert.equal(w.body.state, 'queued');
  assert.deepEqual(w.body.data, { type: 'session', id: s.body.id });
  const secret = decodeSecret(w.body.secret);
  assert.match(secret.sessions_token, /^sk-ant-req-/);
  assert.equal(secret.api_base_url, fake.url);
  // not acked: nobody else gets it before the reclaim window, then it comes back
  const t0 = Date.now();
  const empty = await poll('block_ms=100');
  assert.equal(empty.body, null);
  assert.ok(Date.now() - t0 >= 90, 'the poll blocked');
  const again = await poll('reclaim_older_than_ms=0');
  assert.equal(again.body.id, w.body.id);
  const token = decodeSecret(again.body.secret).sessions_token;
  const base = `/v1/environments/${env}/work/${w.body.id}`;
  const ack = await call('POST', `${base}/ack`, { headers: asToken(token) });
  assert.equal(ack.body.state, 'starting');
  assert.equal(ack.body.secret, null);
  assert.equal((await poll('block_ms=50&reclaim_older_than_ms=0')).body, null, 'an acked item is not handed out');

  const hb1 = await call('POST', `${base}/heartbeat?expected_last_heartbeat=NO_HEARTBEAT`, { headers: asToken(token) });
  assert.equal(hb1.status, 200);
  assert.equal(hb1.body.type, 'work_heartbeat');
  assert.equal(hb1.body.state, 'active');
  assert.equal(hb1.body.lease_extended, true);
  assert.equal(hb1.body.ttl_seconds, 90);
  const wrong = await call('POST', `${base}/heartbeat?expected_last_heartbeat=NO_HEARTBEAT`, { headers: asToken(token) });
  assertError(wrong, 412, 'invalid_request_error');
  assert.equal(wrong.body.error.details.current_state.last_heartbeat, hb1.body.last_heartbeat);
  const hb2 = await call('POST', `${base}/heartbeat?expected_last_heartbeat=${encodeURIComponent(hb1.body.last_heartbeat)}&desired_ttl_seconds=20`,
    { headers: asEnv });
  assert.equal(hb2.status, 200);
  assert.notEqual(hb2.body.last_heartbeat, hb1.body.last_heartbeat);
  assert.equal(hb2.body.ttl_seconds, 20);

  // the session ends: the heartbeat says stopping; stop once, then 409
  await call('POST', `/v1/sessions/${s.body.id}/events`, { headers: asToken(token), body: { events: [{ type: 'user.interrupt' }] } });
  const arch = await call('POST', `/v1/sessions/${s.body.id}/archive`);
  assert.ok(arch.body.archived_at);
  const hb3 = await call('POST', `${base}/heartbeat?expected_last_heartbeat=${encodeURIComponent(hb2.body.last_heartbeat)}`, { headers: asToken(token) });
  assert.equal(hb3.body.state, 'stopping');
  assert.equal((await call('POST', `${base}/stop`, { headers: asToken(token), body: { force: true } })).body.state, 'stopped');
  assertError(await call('POST', `${base}/stop`, { headers: asToken(token), body: { force: true } }), 409, 'invalid_request_error');
  const st = fake.work(w.body.id);
  assert.equal(st.polls, 2);
  assert.equal(st.stops, 2);
});

test('a lost lease: 412 on the next heartbeat, and a stop after it is a violation', async () => {
  const { work, token } = await claimSession([{ waitFor: 'interrupt' }]);
  const base = `/v1/environments/${work.environment_id}/work/${work.id}`;
  const hb = await call('POST', `${base}/heartbeat?expected_last_heartbeat=NO_HEARTBEAT`, { headers: asToken(token) });
  assert.equal(hb.status, 200);
  fake.loseLease(work.id);
  assertError(await call('POST', `${base}/heartbeat?expected_last_heartbeat=${encodeURIComponent(hb.body.last_heartbeat)}`,
    { headers: asToken(token) }), 412, 'invalid_request_error');
  assertError(await call('POST', `${base}/stop`, { headers: asToken(token), body: { force: true } }), 412, 'invalid_request_error');
  assert.ok(fake.violations.some((v) => v.kind === 'stopped_lost_lease' && v.id === work.id));
  fake.violations.length = 0;

  // a lease not heartbeated within its TTL is lost too
  const short = await startFakeAnthropic({ apiKey: API_KEY, environmentKey: ENV_KEY, leaseTtlSeconds: 1, secretBaseUrl: null });
  try {
    const a = await call('POST', '/v1/agents', { f: short, body: { name: 'a', model: 'm' } });
    const saved = agentId;
    agentId = a.body.id;
    const c = await claimSession([{ waitFor: 'interrupt' }], { f: short });
    agentId = saved;
    assert.ok(!('api_base_url' in decodeSecret(c.work.secret)), 'api_base_url is optional');
    const b2 = `/v1/environments/${c.work.environment_id}/work/${c.work.id}`;
    const h1 = await call('POST', `${b2}/heartbeat?expected_last_heartbeat=NO_HEARTBEAT`, { f: short, headers: asToken(c.token) });
    assert.equal(h1.body.ttl_seconds, 1);
    await new Promise((r) => setTimeout(r, 1150));
    assertError(await call('POST', `${b2}/heartbeat?expected_last_heartbeat=${encodeURIComponent(h1.body.last_heartbeat)}`,
      { f: short, headers: asToken(c.token) }), 412, 'invalid_request_error');
  } finally {
    await short.close();
  }
});

test('a scripted session: tool uses on the stream, each answered once, then end_turn', async () => {
  const { session, token } = await claimSession([
    { tool: 'read', input: { file_path: 'src/sum.c' } },
    { tool: 'write', input: { file_path: 'src/sum.c', content: 'int x;\n' } },
    { custom: 'run_benchmarks', input: {} },
    { usage: { input_tokens: 1200, output_tokens: 300, list_cost_cents: 7 } },
    { custom: 'submit_result', input: { summary: 'faster' } },
    { message: 'Submitted.' },
    { idle: 'end_turn' },
  ]);
  const stream = openStream(session.id, token);
  await stream.ready;
  const answer = async (ev) => {
    const custom = ev.type === 'agent.custom_tool_use';
    const result = custom
      ? { type: 'user.custom_tool_result', custom_tool_use_id: ev.id, content: text(`${ev.name} ok`), is_error: false }
      : { type: 'user.tool_result', tool_use_id: ev.id, content: text(`${ev.name} ok`), is_error: false };
    const r = await call('POST', `/v1/sessions/${session.id}/events`, { headers: asToken(token), body: { events: [result] } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.data[0].type, result.type);
    assert.match(r.body.data[0].id, /^sevt_/);
  };
  // the first tool use may come before the stream opened: it is in the history
  const history = await listAll(session.id, token, 2);
  assert.equal(history[0].type, 'user.message');
  const answered = new Set();
  const serve = async (ev) => { if (!answered.has(ev.id)) { answered.add(ev.id); await answer(ev); } };
  const known = new Map();
  for (const ev of history) if (/^agent\.(custom_)?tool_use$/.test(ev.type)) { known.set(ev.name, ev); await serve(ev); }
  for (const name of ['read', 'write', 'run_benchmarks', 'submit_result'])
    await serve(known.get(name) || await stream.wait((e) => /tool_use$/.test(e.type) && e.name === name));
  const idle = await stream.wait((e) => e.type === 'session.status_idle' && e.stop_reason.type === 'end_turn');
  assert.ok(idle.processed_at);
  assert.ok(stream.frames.some((x) => x.event === 'ping'));
  assert.ok(stream.frames.every((x) => x.event === x.data.type), 'the event name is the JSON type');
  const waiting = stream.events().find((e) => e.type === 'session.status_idle' && e.stop_reason.type === 'requires_action');
  assert.equal(waiting.stop_reason.event_ids.length, 1);
  const uses = fake.toolUses(session.id);
  assert.deepEqual(uses.map((u) => [u.name, u.results.length]),
    [['read', 1], ['write', 1], ['run_benchmarks', 1], ['submit_result', 1]]);
  assert.equal((await fake.waitForResult(session.id, 'write')).content[0].text, 'write ok');
  const got = await call('GET', `/v1/sessions/${session.id}`, { headers: asToken(token) });
  assert.equal(got.body.status, 'idle');
  assert.equal(got.body.usage.input_tokens, 1200);
  assert.deepEqual(got.body.usage.list_cost, { amount: '7', currency: 'USD' });
  assert.equal(typeof got.body.usage.active_seconds, 'number');
  assert.deepEqual(fake.violations, []);
  stream.close();
});

test('a second answer, a wrong kind and an unknown id are refused and recorded as violations', async () => {
  const { session, token } = await claimSession([{ tool: 'bash', input: { command: 'make' } }, { custom: 'compare', input: {} }]);
  const post = (events) => call('POST', `/v1/sessions/${session.id}/events`, { headers: asToken(token), body: { events } });
  await fake.waitFor(() => fake.toolUses(session.id).length === 1);
  const use = fake.toolUses(session.id)[0];
  const wrongKind = await post([{ type: 'user.custom_tool_result', custom_tool_use_id: use.id, content: text('x') }]);
  assertError(wrongKind, 400, 'invalid_request_error');
  assert.equal((await post([{ type: 'user.tool_result', tool_use_id: use.id, content: text('ok') }])).status, 200);
  assertError(await post([{ type: 'user.tool_result', tool_use_id: use.id, content: text('again') }]), 400, 'invalid_request_error');
  assertError(await post([{ type: 'user.tool_result', tool_use_id: 'sevt_nope', content: text('x') }]), 400, 'invalid_request_error');
  // twice in one post: the whole post is refused
  await fake.waitFor(() => fake.toolUses(session.id).length === 2);
  const c = fake.toolUses(session.id)[1];
  const r = { type: 'user.custom_tool_result', custom_tool_use_id: c.id, content: text('ok') };
  assertError(await post([r, r]), 400, 'invalid_request_error');
  assert.equal(c.results.length, 0);
  assert.deepEqual(fake.violations.map((v) => v.kind),
    ['wrong_result_kind', 'answered_twice', 'unknown_tool_use', 'answered_twice']);
  assert.ok(fake.violations.every((v) => v.session === session.id));
  fake.violations.length = 0;
  await post([r]);
});

test('a dropped stream: the tool use is found again in the paginated history and answered once', async () => {
  const { session, token } = await claimSession([
    { message: 'Looking.' },
    { waitForStream: true },
    { dropStream: true },
    { tool: 'grep', input: { pattern: 'sum' } },
    { waitForStream: 2 },
    { tool: 'glob', input: { pattern: '**/*.c' } },
    { idle: 'end_turn' },
  ]);
  let stream = openStream(session.id, token);
  await stream.ready;
  await stream.waitEnd();
  await fake.waitFor(() => fake.toolUses(session.id).length === 1); // emitted while disconnected
  // reconnect, then re-list the history
  stream = openStream(session.id, token);
  await stream.ready;
  const answered = new Set();
  const answer = async (ev) => {
    if (answered.has(ev.id)) return;
    answered.add(ev.id);
    const r = await call('POST', `/v1/sessions/${session.id}/events`, { headers: asToken(token),
      body: { events: [{ type: 'user.tool_result', tool_use_id: ev.id, content: text('ok') }] } });
    assert.equal(r.status, 200);
  };
  const history = await listAll(session.id, token, 2);
  const grep = history.find((e) => e.type === 'agent.tool_use' && e.name === 'grep');
  assert.ok(grep, 'the tool use emitted during the drop is in the history');
  await answer(grep);
  const glob = history.find((e) => e.type === 'agent.tool_use' && e.name === 'glob')
    || await stream.wait((e) => e.type === 'agent.tool_use' && e.name === 'glob');
  await answer(glob);
  await stream.wait((e) => e.type === 'session.status_idle' && e.stop_reason.type === 'end_turn');
  const desc = await call('GET', `/v1/sessions/${session.id}/events?order=desc&limit=1`, { headers: asToken(token) });
  assert.equal(desc.body.data[0].type, 'session.status_idle');
  assert.deepEqual(fake.violations, []);
  assert.equal(fake.session(session.id).streamsOpened, 2);
  stream.close();
});

test('the same tool use in the history and on the stream (replayed): answering it once is clean', async () => {
  const { session, token } = await claimSession([{ waitForStream: true },
    { tool: 'read', input: { file_path: 'a.c' }, replay: true, replayDelayMs: 50 }]);
  const stream = openStream(session.id, token);
  await stream.ready;
  const seen = await stream.wait((e) => e.type === 'agent.tool_use');
  const history = await listAll(session.id, token, 10);
  assert.equal(history.find((e) => e.type === 'agent.tool_use').id, seen.id);
  await fake.waitFor(() => stream.frames.filter((x) => x.data && x.data.id === seen.id).length === 2);
  await call('POST', `/v1/sessions/${session.id}/events`, { headers: asToken(token),
    body: { events: [{ type: 'user.tool_result', tool_use_id: seen.id, content: text('ok') }] } });
  await stream.wait((e) => e.type === 'session.status_idle' && e.stop_reason.type === 'end_turn');
  assert.equal(fake.session(session.id).events.filter((e) => e.id === seen.id).length, 1, 'once in the history');
  assert.deepEqual(fake.violations, []);
  stream.close();
});

test('429 with retry-after and retry-after-ms on the next result posts, then accepted', async () => {
  const { session, token } = await claimSession([{ custom: 'run_benchmarks', input: {} }]);
  await fake.waitFor(() => fake.toolUses(session.id).length === 1);
  const id = fake.toolUses(session.id)[0].id;
  fake.rateLimitResults({ count: 2, retryAfter: 1, retryAfterMs: 40 });
  // a post without a result is not affected
  const msg = await call('POST', `/v1/sessions/${session.id}/events`, { headers: asToken(token),
    body: { events: [{ type: 'user.message', content: text('hi') }] } });
  assert.equal(msg.status, 200);
  const body = { events: [{ type: 'user.custom_tool_result', custom_tool_use_id: id, content: text('ok') }] };
  for (let i = 0; i < 2; i++) {
    const r = await call('POST', `/v1/sessions/${session.id}/events`, { headers: asToken(token), body });
    assertError(r, 429, 'rate_limit_error');
    assert.equal(r.headers.get('retry-after'), '1');
    assert.equal(r.headers.get('retry-after-ms'), '40');
  }
  assert.equal((await call('POST', `/v1/sessions/${session.id}/events`, { headers: asToken(token), body })).status, 200);
  assert.equal(fake.toolUses(session.id)[0].results.length, 1);
  assert.deepEqual(fake.violations, []);
});

test('evaluated_permission: deny is never answered; ask waits for the confirmation', async () => {
  const { session, token } = await claimSession([
    { tool: 'bash', input: { command: 'rm -rf /' }, permission: 'deny' },
    { tool: 'bash', input: { command: 'make' }, permission: 'ask', confirm: 'manual' },
    { idle: 'end_turn' },
  ]);
  const post = (ev, headers = asToken(token)) => call('POST', `/v1/sessions/${session.id}/events`, { headers, body: { events: [ev] } });
  await fake.waitFor(() => fake.toolUses(session.id).length === 2);
  const [deny, ask] = fake.toolUses(session.id);
  assert.equal(deny.event.evaluated_permission, 'deny');
  assert.equal(ask.event.evaluated_permission, 'ask');
  assertError(await post({ type: 'user.tool_result', tool_use_id: deny.id, content: text('x') }), 400, 'invalid_request_error');
  assertError(await post({ type: 'user.tool_result', tool_use_id: ask.id, content: text('x') }), 400, 'invalid_request_error');
  // the user allows it (with the API key), then the result is taken
  assert.equal((await post({ type: 'user.tool_confirmation', tool_use_id: ask.id, result: 'allow' }, asApi)).status, 200);
  assertError(await post({ type: 'user.tool_confirmation', tool_use_id: ask.id, result: 'allow' }, asApi), 400, 'invalid_request_error');
  assert.equal((await post({ type: 'user.tool_result', tool_use_id: ask.id, content: text('built') })).status, 200);
  await fake.waitFor(() => fake.session(session.id).done);
  assert.deepEqual(fake.violations.map((v) => v.kind), ['answered_denied', 'answered_unconfirmed']);
  fake.violations.length = 0;

  // the fake can play the user too: it confirms after a delay
  const auto = await claimSession([{ tool: 'edit', input: {}, permission: 'ask', confirm: 'allow', confirmDelayMs: 10 }]);
  await fake.waitFor(() => fake.session(auto.session.id).events.some((e) => e.type === 'user.tool_confirmation'));
  const conf = fake.session(auto.session.id).events.find((e) => e.type === 'user.tool_confirmation');
  const use = fake.toolUses(auto.session.id)[0];
  assert.deepEqual([conf.tool_use_id, conf.result], [use.id, 'allow']);
  assert.equal((await call('POST', `/v1/sessions/${auto.session.id}/events`, { headers: asToken(auto.token),
    body: { events: [{ type: 'user.tool_result', tool_use_id: use.id, content: text('ok') }] } })).status, 200);
  assert.deepEqual(fake.violations, []);
});

test('a healthcheck item: acked, heartbeated, stopped', async () => {
  const hc = fake.queueHealthcheck();
  const poll = await call('GET', `/v1/environments/${fake.environmentId}/work/poll?block_ms=100`,
    { headers: { ...asEnv, 'anthropic-worker-id': 'w' } });
  assert.equal(poll.body.id, hc.id);
  assert.equal(poll.body.data.type, 'healthcheck');
  const token = decodeSecret(poll.body.secret).sessions_token;
  const base = `/v1/environments/${fake.environmentId}/work/${hc.id}`;
  assert.equal((await call('POST', `${base}/ack`, { headers: asEnv })).status, 200);
  assert.equal((await call('POST', `${base}/heartbeat?expected_last_heartbeat=NO_HEARTBEAT`, { headers: asToken(token) })).status, 200);
  assert.equal((await call('POST', `${base}/stop`, { headers: asToken(token), body: { force: true } })).status, 200);
  const w = fake.work(hc.id);
  assert.deepEqual([w.acks, w.heartbeats, w.stops, w.state], [1, 1, 1, 'stopped']);
  assert.deepEqual(fake.violations, []);
  // heartbeating an item not acked is a breach of the protocol
  const hc2 = fake.queueHealthcheck();
  const p2 = await call('GET', `/v1/environments/${fake.environmentId}/work/poll?block_ms=100`,
    { headers: { ...asEnv, 'anthropic-worker-id': 'w' } });
  assert.equal(p2.body.id, hc2.id);
  await call('POST', `/v1/environments/${fake.environmentId}/work/${hc2.id}/heartbeat?expected_last_heartbeat=NO_HEARTBEAT`,
    { headers: asEnv });
  assert.deepEqual(fake.violations.map((v) => v.kind), ['heartbeat_before_ack']);
  fake.violations.length = 0;
});

test('an interrupt is recorded and ends the turn; archive ends the stream; budget and terminal errors end sessions', async () => {
  const { session, token } = await claimSession([{ message: 'working' }, { waitFor: 'interrupt' }, { message: 'never' }]);
  const stream = openStream(session.id, token);
  await stream.ready;
  await fake.waitFor(() => fake.session(session.id).events.some((e) => e.type === 'agent.message'));
  const r = await call('POST', `/v1/sessions/${session.id}/events`, { body: { events: [{ type: 'user.interrupt' }] } });
  assert.equal(r.status, 200);
  await stream.wait((e) => e.type === 'user.interrupt');
  await stream.wait((e) => e.type === 'session.status_idle' && e.stop_reason.type === 'end_turn');
  assert.equal((await call('POST', `/v1/sessions/${session.id}/archive`)).status, 200);
  await stream.waitEnd();
  const s = fake.session(session.id);
  assert.ok(s.interrupted && s.archived);
  assert.ok(!s.events.some((e) => e.type === 'agent.message' && e.content[0].text === 'never'));
  assertError(await call('POST', `/v1/sessions/${session.id}/events`, { body: { events: [{ type: 'user.interrupt' }] } }),
    400, 'invalid_request_error');

  const b = await claimSession([{ usage: { list_cost_cents: 300 } }, { idle: 'budget_reached' }]);
  await fake.waitFor(() => fake.session(b.session.id).done);
  assert.equal(fake.session(b.session.id).events.at(-1).stop_reason.type, 'budget_reached');

  // (a session that ends before a worker acked its item takes its item with it)
  const t = await claimSession([{ waitForAck: true }, { error: { type: 'model_overloaded_error', message: 'down', retry_status: 'terminal' } }]);
  await fake.waitFor(() => fake.session(t.session.id).done);
  const evs = fake.session(t.session.id).events.slice(-2);
  assert.deepEqual(evs.map((e) => e.type), ['session.error', 'session.status_terminated']);
  assert.equal(evs[0].error.retry_status.type, 'terminal');
  const hb = await call('POST', `/v1/environments/${t.work.environment_id}/work/${t.work.id}/heartbeat?expected_last_heartbeat=NO_HEARTBEAT`,
    { headers: asToken(t.token) });
  assert.equal(hb.body.state, 'stopping');
  assert.equal((await call('GET', `/v1/sessions/${t.session.id}`)).body.status, 'terminated');
});

test('scripts chosen by metadata, started at the ack; an error frame on the stream; a follow-up message is new work', async () => {
  const f = await startFakeAnthropic({ apiKey: API_KEY, environmentKey: ENV_KEY, scriptStart: 'ack', pingMs: 50 });
  try {
    const a = await call('POST', '/v1/agents', { f, body: { name: 'a', model: 'm' } });
    f.scriptFor({ metadata: { run: '9' } }, [{ message: 'run nine' }, { waitForStream: true }, { wait: 30000 }]);
    const s = await call('POST', '/v1/sessions', { f, body: { agent: a.body.id, environment_id: f.environmentId,
      metadata: { run: '9' }, initial_events: [{ type: 'user.message', content: text('go') }] } });
    assert.equal(s.body.status, 'rescheduling', 'waits for a worker');
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(!f.session(s.body.id).events.some((e) => e.type === 'agent.message'), 'not before the ack');
    const poll = await call('GET', `/v1/environments/${f.environmentId}/work/poll?block_ms=200`,
      { f, headers: { ...asEnv, 'anthropic-worker-id': 'w' } });
    const token = decodeSecret(poll.body.secret).sessions_token;
    await call('POST', `/v1/environments/${f.environmentId}/work/${poll.body.id}/ack`, { f, headers: asEnv });
    await f.waitFor(() => f.session(s.body.id).events.some((e) => e.type === 'agent.message' && e.content[0].text === 'run nine'));
    const stream = openStream(s.body.id, token, f);
    await stream.ready;
    await f.waitFor(() => stream.frames.some((x) => x.event === 'ping'));
    f.streamError(s.body.id, { type: 'overloaded_error', message: 'Overloaded' });
    await stream.waitEnd();
    const err = stream.frames.find((x) => x.event === 'error');
    assert.equal(err.data.type, 'error');
    assert.equal(err.data.error.type, 'overloaded_error');
    // interrupt, stop the item; a new message comes back as a new work item
    await call('POST', `/v1/sessions/${s.body.id}/events`, { f, headers: asToken(token), body: { events: [{ type: 'user.interrupt' }] } });
    await call('POST', `/v1/environments/${f.environmentId}/work/${poll.body.id}/stop`, { f, headers: asToken(token), body: { force: true } });
    await f.waitFor(() => f.session(s.body.id).done);
    await call('POST', `/v1/sessions/${s.body.id}/events`, { f, body: { events: [{ type: 'user.message', content: text('more') }] } });
    const again = await call('GET', `/v1/environments/${f.environmentId}/work/poll?block_ms=200`,
      { f, headers: { ...asEnv, 'anthropic-worker-id': 'w' } });
    assert.notEqual(again.body.id, poll.body.id);
    assert.deepEqual(again.body.data, { type: 'session', id: s.body.id });
    // standalone controls answer over HTTP and are not recorded
    const n = f.requests.length;
    const st = await (await fetch(`${f.url}/_fake/state`)).json();
    assert.equal(st.work.length, 2);
    assert.equal(f.requests.length, n);
  } finally {
    await f.close();
  }
});
