'use strict';
/*
 * A fake Claude Managed Agents API (beta) for perfbot's tests, written from the
 * platform's reference and the official TypeScript SDK's types (@anthropic-ai/sdk,
 * src/resources/beta/{agents,environments,sessions}, src/lib/environments), never
 * from perfbot's client:
 * agents (versioned), self-hosted environments, sessions and their events
 * (list, post, SSE stream), the work queue (poll, ack, heartbeat with real
 * leases, stop), scripted sessions and faults on demand.  Node built-ins only.
 * Listens on 127.0.0.1.
 *
 * Wire checks on every request, as the real service: `?beta=true` on every path
 * (else 404), `anthropic-version: 2023-06-01` and `anthropic-beta` containing
 * `managed-agents-2026-04-01` (else 400), JSON bodies with
 * `content-type: application/json` (else 400), and exactly one credential:
 *   - the API key (`x-api-key`): agents, environments, sessions (control plane);
 *   - the environment key (`Authorization: Bearer`): work poll, ack, heartbeat, stop
 *     of its own environment;
 *   - a work item's sessions token (`Authorization: Bearer`, from the item's
 *     `secret`, unpadded base64url JSON {sessions_token, api_base_url}): that
 *     item's ack/heartbeat/stop and every call about its session.
 * A credential used where it does not belong answers 401 authentication_error
 * (403 permission_error when it is valid but for another environment/session).
 * Errors: {"type":"error","error":{"type","message"},"request_id"}.
 * Lists: {data, next_page} (sessions also prev_page), `limit` (events: default 20,
 * at most 1000) and `page` (the cursor).  Agents: `POST /v1/agents/{id}` updates
 * (omitted fields kept, metadata patched) and makes version+1; its `version` is
 * optional and, when given, must be the current one (else 409);
 * `GET /v1/agents/{id}?version=N` reads an old one.
 *
 * Work items: a session made in a self-hosted environment queues one.  Poll
 * (`Anthropic-Worker-ID` required, block_ms 1..999, reclaim_older_than_ms)
 * hands out a queued item nobody polled, or one polled but not acked for
 * longer than the reclaim window, with its `secret`; ack makes it `starting`;
 * heartbeat checks `expected_last_heartbeat` (`NO_HEARTBEAT` the first time,
 * then the last `last_heartbeat` returned, else 412; omitted: unconditional),
 * makes it `active` and extends its lease by `ttl_seconds`; a lease not
 * heartbeated within its TTL, or lost on demand, answers 412 from then on;
 * stop makes it `stopped` (409 the second time).  A terminated, archived or
 * deleted session's items report `stopping` on their next heartbeat.
 *
 * ---- As a module -----------------------------------------------------------
 *   const { startFakeAnthropic } = require('../fake-anthropic/server.js');
 *   const fake = await startFakeAnthropic({
 *     apiKey: 'sk-ant-test',          // x-api-key
 *     environmentKey: 'envkey-test',  // Bearer key of every environment (see setEnvironmentKey)
 *     port: 0,
 *     leaseTtlSeconds: 90,            // ttl_seconds of a lease (desired_ttl_seconds may lower it)
 *     reclaimOlderThanMs: 5000,       // default of poll's reclaim_older_than_ms
 *     pingMs: 1000,                   // SSE ping interval
 *     stepDelayMs: 5,                 // pause between script steps
 *     scriptStart: 'create',          // when a session's script starts: 'create' | 'ack' | 'stream'
 *     secretBaseUrl,                  // api_base_url put in secrets (default: the fake's url; null: omitted)
 *     noopUpdateKeepsVersion: false,  // true: an agent update that changes nothing makes no version
 *     script,                         // script of sessions without their own (default: a message, end_turn)
 *     followUp,                       // what a session plays on a user.message after its script ended
 *   });
 *   fake.url / fake.port              // "http://127.0.0.1:PORT"
 *   fake.environmentId                // a self-hosted environment made at start ("perfbot-test")
 *   fake.requests                     // every request: {method, path, query, headers, body, auth, time}
 *                                     //   auth: 'api' | 'environment' | 'sessions' | 'none' | 'invalid' | 'both'
 *   fake.state                        // {agents, environments, sessions, work} (Maps by id)
 *   fake.violations                   // protocol breaches by the client: {kind, session, id, message, time}
 *                                     //   kinds: answered_twice, unknown_tool_use, wrong_result_kind,
 *                                     //   answered_denied, answered_unconfirmed, malformed_result,
 *                                     //   heartbeat_before_ack, stopped_lost_lease
 *   fake.createAgent({...}) / fake.createEnvironment({name, key?}) / fake.setEnvironmentKey(envId, key)
 *   fake.scriptFor(matcher, steps)    // matcher: session id, a function(session) or {metadata:{...}};
 *                                     // sessions created later that match play `steps` (latest wins)
 *   fake.nextScript(steps)            // the next session created without a matching scriptFor plays it
 *   fake.createSession(body, steps?)  // a session without HTTP (returns its record)
 *   fake.session(id) / fake.sessions() // the session record(s) (see below)
 *   fake.work(workId) / fake.workFor(sessionId)   // work records: {state, polls, acks, heartbeats,
 *                                     //   stops, leaseLost, secret, sessionsToken, ...}
 *   fake.toolUses(sessionId)          // [{event, kind, results: [...], answered, permission, verdict}]
 *   await fake.waitForResult(sessionId, name|id, timeoutMs)  // the first result to that tool use
 *   fake.queueHealthcheck(envId?)     // a healthcheck work item
 *   fake.queueWork(sessionId)         // a new work item for a session
 *   fake.loseLease(workId?)           // the next heartbeat of that item (any item if omitted) answers 412
 *   fake.dropStreams(sessionId?)      // cut the open SSE streams (of one session)
 *   fake.streamError(sessionId?, {type, message})  // an `event: error` frame, then the stream ends
 *   fake.rateLimitResults({count: 1, retryAfter: 1, retryAfterMs})   // next result posts answer 429
 *   fake.failNext({status, count, path: /re/, method, type, message, headers, retryAfter,
 *                  retryAfterMs, shouldRetry, kind: 'fail' | 'drop' (connection cut, no answer)})
 *   fake.hang({count, path})          // requests that are never answered (until close)
 *   fake.clearFaults(); fake.resetRequests()
 *   await fake.waitFor(pred, timeoutMs)
 *   await fake.close()
 *
 * A session record: {id, obj (the API object), events (history), toolUses (Map id -> use),
 *   interrupted, archived, done (script over), error (script error)}.
 *
 * ---- Scripts -----------------------------------------------------------------
 * A script is an array of steps played after the session's initial events:
 *   {tool: 'read', input: {...}, permission?: 'allow'|'ask'|'deny', confirm?: 'allow'|'deny',
 *    confirmDelayMs?, replay?: true, onResult?(result, session)}
 *        agent.tool_use (built-in tool); waits for its user.tool_result unless denied.
 *        'ask': the fake itself posts user.tool_confirmation `confirm` (default allow) after
 *        confirmDelayMs (default 50); confirm 'manual': it waits for one to be posted.
 *        replay: the same event is sent a second time on the stream (after replayDelayMs).
 *   {custom: 'run_benchmarks', input: {...}, replay?, onResult?}  agent.custom_tool_use, waits
 *   {message: 'text'}                                              agent.message
 *   {usage: {input_tokens, output_tokens, cache_read_input_tokens, list_cost_cents, active_seconds}}
 *                                                                  session.usage (adds up)
 *   {idle: 'end_turn'|'budget_reached'|'retries_exhausted'}        session.status_idle
 *   {error: {type, message, retry_status: 'retrying'|'exhausted'|'terminal'}}   session.error
 *   {terminate: true}                                              session.status_terminated
 *   {dropStream: true}                                             cut the session's SSE streams
 *   {wait: ms}
 *   {waitForStream: n}                                             until n streams were opened (true: 1)
 *   {waitForAck: true}                                             until a work item of the session is acked
 *   {waitFor: 'interrupt'|'message', timeoutMs?}                   until such a user event arrives
 *   {run: async (session, fake) => {}}
 * A script that does not end with idle, terminate or a terminal error gets an end_turn
 * idle.  A user.interrupt ends the script (status idle, end_turn).  A user.message after
 * the script's end plays `followUp` (and queues a new work item if none is live).
 *
 * ---- Standalone ------------------------------------------------------------
 *   node tests/fake-anthropic/server.js [--port N] [--api-key K] [--environment-key K]
 *   prints its URL alone on the first line of stdout, then the environment id on the second,
 *   then serves until killed.  GET /_fake/requests, /_fake/state, /_fake/violations and
 *   POST /_fake/<control> {options} (nextScript {steps}, scriptFor {metadata | session, steps},
 *   queueHealthcheck {id: envId}, queueWork {id: sessionId}, loseLease {id: workId},
 *   dropStreams {id: sessionId}, streamError {id, type, message}, rateLimitResults, failNext,
 *   hang, clearFaults, resetRequests) are not recorded.  Script steps over HTTP are plain
 *   JSON (no onResult/run).
 */
const http = require('node:http');
const crypto = require('node:crypto');

const VERSION = '2023-06-01';
const BETA = 'managed-agents-2026-04-01';
const TOOLSET = 'agent_toolset_20260401';
const BUILTIN_TOOLS = ['bash', 'edit', 'read', 'write', 'glob', 'grep', 'web_fetch', 'web_search'];

function iso(ms = Date.now()) {
  return new Date(ms).toISOString();
}

function b64url(buf) {
  return Buffer.from(buf).toString('base64').replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
}

const ID_ALPHABET = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
function newId(prefix) {
  const bytes = crypto.randomBytes(22);
  let s = '011C';
  for (const b of bytes) s += ID_ALPHABET[b % ID_ALPHABET.length];
  return `${prefix}_${s}`;
}

class ApiError extends Error {
  constructor(status, type, message, extra) {
    super(message);
    this.status = status;
    this.type = type;
    this.extra = extra || null; // merged into error{} (e.g. details)
    this.headers = {};
  }
}
const bad = (m) => new ApiError(400, 'invalid_request_error', m);
const notFound = (m) => new ApiError(404, 'not_found_error', m);
const unauth = (m) => new ApiError(401, 'authentication_error', m);
const forbidden = (m) => new ApiError(403, 'permission_error', m);

function isObj(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function checkMetadata(md, where = 'metadata', allowNull = false) {
  if (md === undefined || md === null) return;
  if (!isObj(md)) throw bad(`${where}: must be an object of strings`);
  const keys = Object.keys(md);
  if (keys.length > 16) throw bad(`${where}: at most 16 pairs (got ${keys.length})`);
  for (const k of keys) {
    if (k.length === 0 || k.length > 64) throw bad(`${where}: key "${k.slice(0, 80)}" must be 1 to 64 characters`);
    const v = md[k];
    if (v === null && allowNull) continue;
    if (typeof v !== 'string') throw bad(`${where}.${k}: must be a string`);
    if (v.length > 512) throw bad(`${where}.${k}: value must be at most 512 characters`);
  }
}

function normModel(m) {
  if (typeof m === 'string' && m.length) return { id: m };
  if (isObj(m) && typeof m.id === 'string' && m.id.length) return { ...m };
  throw bad('model: a model id string or {id, ...} is required');
}

function normTools(tools) {
  if (tools === undefined || tools === null) return [];
  if (!Array.isArray(tools)) throw bad('tools: must be an array');
  const out = [];
  const names = new Set();
  let count = 0;
  tools.forEach((t, i) => {
    if (!isObj(t)) throw bad(`tools[${i}]: must be an object`);
    if (t.type === 'custom') {
      if (typeof t.name !== 'string' || !/^[A-Za-z0-9_-]{1,128}$/.test(t.name))
        throw bad(`tools[${i}].name: 1 to 128 characters of letters, digits, underscores and hyphens`);
      if (names.has(t.name)) throw bad(`tools[${i}].name: duplicate tool name "${t.name}"`);
      names.add(t.name);
      if (typeof t.description !== 'string') throw bad(`tools[${i}].description: required`);
      if (!isObj(t.input_schema) || t.input_schema.type !== 'object')
        throw bad(`tools[${i}].input_schema: a JSON Schema with type "object" is required`);
      out.push({ type: 'custom', name: t.name, description: t.description, input_schema: t.input_schema });
      count++;
    } else if (t.type === TOOLSET) {
      const dc = t.default_config || {};
      if (!isObj(dc)) throw bad(`tools[${i}].default_config: must be an object`);
      const policy = (p) => {
        if (p === undefined || p === null) return null;
        if (!isObj(p) || !['always_allow', 'always_ask'].includes(p.type))
          throw bad(`tools[${i}]: permission_policy.type must be always_allow or always_ask`);
        return { type: p.type };
      };
      const def = {
        enabled: dc.enabled === undefined || dc.enabled === null ? true : !!dc.enabled,
        permission_policy: policy(dc.permission_policy) || { type: 'always_allow' },
      };
      const overrides = new Map();
      for (const [j, c] of (t.configs || []).entries()) {
        if (!isObj(c) || !BUILTIN_TOOLS.includes(c.name))
          throw bad(`tools[${i}].configs[${j}].name: one of ${BUILTIN_TOOLS.join(', ')}`);
        if (overrides.has(c.name)) throw bad(`tools[${i}].configs[${j}]: duplicate config for ${c.name}`);
        overrides.set(c.name, c);
      }
      const configs = BUILTIN_TOOLS.map((name) => {
        const c = overrides.get(name) || {};
        return {
          type: name, name,
          enabled: c.enabled === undefined || c.enabled === null ? def.enabled : !!c.enabled,
          permission_policy: policy(c.permission_policy) || def.permission_policy,
        };
      });
      count += configs.filter((c) => c.enabled).length;
      out.push({ type: TOOLSET, default_config: def, configs });
    } else {
      throw bad(`tools[${i}].type: "${t.type}" is not supported here (custom, ${TOOLSET})`);
    }
  });
  if (count > 128) throw bad(`tools: at most 128 tools across all toolsets (got ${count})`);
  return out;
}

function checkSystem(s) {
  if (s === undefined || s === null) return null;
  if (typeof s !== 'string') throw bad('system: must be a string');
  if (s.length > 100000) throw bad(`system: at most 100000 characters (got ${s.length})`);
  return s;
}

async function startFakeAnthropic(opts = {}) {
  const apiKey = opts.apiKey || 'sk-ant-api03-fake';
  const defaultEnvKey = opts.environmentKey || 'sk-ant-env-fake';
  const leaseTtlSeconds = opts.leaseTtlSeconds || 90;
  const defaultReclaimMs = opts.reclaimOlderThanMs === undefined ? 5000 : opts.reclaimOlderThanMs;
  const pingMs = opts.pingMs || 1000;
  const stepDelayMs = opts.stepDelayMs === undefined ? 5 : opts.stepDelayMs;
  const scriptStart = opts.scriptStart || 'create';

  const requests = [];
  const violations = [];
  const state = {
    agents: new Map(),        // id -> {versions: [agent objects], archived}
    environments: new Map(),  // id -> environment object
    envKeys: new Map(),       // id -> environment key
    sessions: new Map(),      // id -> session record
    work: new Map(),          // id -> work record
    tokens: new Map(),        // sessions token -> work id
  };
  const scripts = [];         // {match, steps}
  const faults = [];          // {kind, count, ...}
  const lostLeases = new Set();  // work ids ('*' = the next heartbeat of any item)
  const waiters = new Set();  // poll long-polls: {envId, wake}
  const sockets = new Set();
  const timers = new Set();
  let closed = false;
  let server;
  let url;

  const sleep = (ms) => new Promise((resolve) => {
    const t = setTimeout(() => { timers.delete(t); resolve(); }, ms);
    timers.add(t);
  });

  // ---- agents ------------------------------------------------------------------

  function agentDefinition(b, base) {
    const def = base ? { ...base } : {
      name: null, model: null, system: null, description: null, tools: [], metadata: {},
      mcp_servers: [], skills: [], multiagent: null,
    };
    if (!base || b.name !== undefined) {
      if (typeof b.name !== 'string' || !b.name.length || b.name.length > 256)
        throw bad('name: a non-empty string is required');
      def.name = b.name;
    }
    if (!base || b.model !== undefined) def.model = normModel(b.model);
    if (b.system !== undefined) def.system = checkSystem(b.system) || null;
    if (b.description !== undefined) {
      if (b.description !== null && typeof b.description !== 'string') throw bad('description: must be a string');
      def.description = b.description || null;
    }
    if (b.tools !== undefined) def.tools = normTools(b.tools);
    if (b.metadata !== undefined) {
      if (base) {
        checkMetadata(b.metadata, 'metadata', true);
        const md = { ...def.metadata };
        for (const [k, v] of Object.entries(b.metadata || {})) {
          if (v === null) delete md[k];
          else md[k] = v;
        }
        if (b.metadata === null) for (const k of Object.keys(md)) delete md[k];
        checkMetadata(md);
        def.metadata = md;
      } else {
        checkMetadata(b.metadata);
        def.metadata = { ...(b.metadata || {}) };
      }
    }
    if (b.mcp_servers !== undefined && b.mcp_servers !== null && b.mcp_servers.length)
      throw bad('mcp_servers: not supported by this fake');
    return def;
  }

  function createAgent(b) {
    if (!isObj(b)) throw bad('body: a JSON object is required');
    const def = agentDefinition(b, null);
    const now = iso();
    const agent = { id: newId('agent'), type: 'agent', ...def, version: 1, created_at: now, updated_at: now,
      archived_at: null };
    state.agents.set(agent.id, { versions: [agent] });
    return agent;
  }

  function currentAgent(id) {
    const a = state.agents.get(id);
    if (!a) throw notFound(`agent ${id} not found`);
    return a.versions[a.versions.length - 1];
  }

  const DEF_KEYS = ['name', 'model', 'system', 'description', 'tools', 'metadata', 'mcp_servers', 'skills', 'multiagent'];

  function updateAgent(id, b) {
    if (!isObj(b)) throw bad('body: a JSON object is required');
    const cur = currentAgent(id);
    if (cur.archived_at) throw bad(`agent ${id} is archived`);
    if (b.version !== undefined) {
      if (!Number.isInteger(b.version) || b.version < 1) throw bad('version: an integer >= 1');
      if (b.version !== cur.version) {
        const e = new ApiError(409, 'invalid_request_error',
          `version ${b.version} does not match the agent's current version ${cur.version}`);
        throw e;
      }
    }
    const base = {};
    for (const k of DEF_KEYS) base[k] = cur[k];
    const def = agentDefinition(b, base);
    const same = DEF_KEYS.every((k) => JSON.stringify(def[k]) === JSON.stringify(cur[k]));
    // Whether the service makes a version for an update that changes nothing is not
    // documented: by default every update makes one, so a client that updates
    // blindly shows (a set-up that is idempotent compares the definition itself).
    if (same && opts.noopUpdateKeepsVersion) return cur;
    const next = { ...cur, ...def, version: cur.version + 1, updated_at: iso() };
    state.agents.get(id).versions.push(next);
    return next;
  }

  // ---- environments ------------------------------------------------------------

  function createEnvironment(b = {}) {
    if (!isObj(b)) throw bad('body: a JSON object is required');
    if (typeof b.name !== 'string' || !b.name.length) throw bad('name: a non-empty string is required');
    let config = b.config;
    if (config === undefined || config === null) config = { type: 'cloud' };
    if (!isObj(config) || !['self_hosted', 'cloud'].includes(config.type))
      throw bad('config.type: self_hosted or cloud');
    checkMetadata(b.metadata);
    const now = iso();
    const env = { id: newId('env'), type: 'environment', name: b.name, description: b.description || null,
      config: config.type === 'self_hosted' ? { type: 'self_hosted' } : { ...config }, metadata: { ...(b.metadata || {}) },
      scope: 'organization', created_at: now, updated_at: now, archived_at: null };
    state.environments.set(env.id, env);
    state.envKeys.set(env.id, b.key || defaultEnvKey);
    return env;
  }

  // ---- pagination --------------------------------------------------------------

  function page(items, query, { defLimit = 20, maxLimit = 1000, bidirectional = false } = {}) {
    let limit = defLimit;
    if (query.limit !== undefined) {
      limit = Number(query.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > maxLimit) throw bad(`limit: 1 to ${maxLimit}`);
    }
    let start = 0;
    if (query.page) {
      let p;
      try { p = JSON.parse(Buffer.from(query.page, 'base64url').toString()); } catch (e) { p = null; }
      if (!p || !Number.isInteger(p.o) || p.o < 0) throw bad('page: invalid cursor');
      start = p.o;
    }
    const slice = items.slice(start, start + limit);
    const cursor = (o) => b64url(JSON.stringify({ o }));
    const out = { data: slice, next_page: start + limit < items.length ? cursor(start + limit) : null };
    if (bidirectional) out.prev_page = start > 0 ? cursor(Math.max(0, start - limit)) : null;
    return out;
  }

  // sessions, events and work are defined below (part 2)
  const ext = {};

  // ---- routes ------------------------------------------------------------------

  const routes = [];
  const route = (method, re, auth, fn) => routes.push({ method, re, auth, fn });

  route('POST', /^\/v1\/agents$/, 'api', (ctx) => [200, createAgent(ctx.body)]);
  route('GET', /^\/v1\/agents$/, 'api', (ctx) => {
    const all = [...state.agents.values()].map((a) => a.versions[a.versions.length - 1])
      .filter((a) => ctx.query.include_archived === 'true' || !a.archived_at);
    return [200, page(all, ctx.query)];
  });
  route('GET', /^\/v1\/agents\/([^/]+)$/, 'api', (ctx, id) => {
    const cur = currentAgent(id);
    if (ctx.query.version !== undefined) {
      const v = Number(ctx.query.version);
      if (!Number.isInteger(v) || v < 1) throw bad('version: an integer >= 1');
      const found = state.agents.get(id).versions.find((a) => a.version === v);
      if (!found) throw notFound(`agent ${id} has no version ${v}`);
      return [200, found];
    }
    return [200, cur];
  });
  route('POST', /^\/v1\/agents\/([^/]+)$/, 'api', (ctx, id) => [200, updateAgent(id, ctx.body)]);
  route('GET', /^\/v1\/agents\/([^/]+)\/versions$/, 'api', (ctx, id) => {
    currentAgent(id);
    return [200, page([...state.agents.get(id).versions].reverse(), ctx.query)];
  });
  route('POST', /^\/v1\/agents\/([^/]+)\/archive$/, 'api', (ctx, id) => {
    const cur = currentAgent(id);
    if (!cur.archived_at) cur.archived_at = iso();
    return [200, cur];
  });

  route('POST', /^\/v1\/environments$/, 'api', (ctx) => {
    const { key, ...b } = ctx.body || {};
    return [200, createEnvironment(b)];
  });
  route('GET', /^\/v1\/environments$/, 'api', (ctx) => {
    const all = [...state.environments.values()]
      .filter((e) => ctx.query.include_archived === 'true' || !e.archived_at);
    return [200, page(all, ctx.query)];
  });
  route('GET', /^\/v1\/environments\/([^/]+)$/, 'api', (ctx, id) => {
    const env = state.environments.get(id);
    if (!env) throw notFound(`environment ${id} not found`);
    return [200, env];
  });
  route('POST', /^\/v1\/environments\/([^/]+)\/archive$/, 'api', (ctx, id) => {
    const env = state.environments.get(id);
    if (!env) throw notFound(`environment ${id} not found`);
    if (!env.archived_at) env.archived_at = iso();
    return [200, env];
  });

  // ---- request plumbing --------------------------------------------------------

  function requestId() {
    return newId('req');
  }

  function sendJson(res, status, body, headers = {}) {
    const rid = requestId();
    const text = JSON.stringify(body === undefined ? null : body);
    res.writeHead(status, { 'content-type': 'application/json', 'request-id': rid, ...headers });
    res.end(text);
  }

  function sendError(res, e) {
    const rid = requestId();
    const body = { type: 'error', error: { type: e.type, message: e.message, ...(e.extra || {}) }, request_id: rid };
    res.writeHead(e.status, { 'content-type': 'application/json', 'request-id': rid, ...(e.headers || {}) });
    res.end(JSON.stringify(body));
  }

  function readBody(req) {
    return new Promise((resolve, reject) => {
      const chunks = [];
      let size = 0;
      req.on('data', (c) => {
        size += c.length;
        if (size > 32 * 1024 * 1024) reject(new ApiError(413, 'request_too_large', 'Request exceeds the maximum allowed size'));
        else chunks.push(c);
      });
      req.on('end', () => resolve(Buffer.concat(chunks)));
      req.on('error', reject);
    });
  }

  // Which credential a request carries: ctx.auth and, for a sessions token, ctx.work.
  function authenticate(req, ctx) {
    const key = req.headers['x-api-key'];
    const h = req.headers.authorization;
    if (key !== undefined && h !== undefined) { ctx.auth = 'both'; return; }
    if (key !== undefined) { ctx.auth = key === apiKey ? 'api' : 'invalid'; return; }
    if (h === undefined) { ctx.auth = 'none'; return; }
    const m = /^Bearer (\S+)$/.exec(h);
    if (!m) { ctx.auth = 'invalid'; return; }
    const cred = m[1];
    const wid = state.tokens.get(cred);
    if (wid) { ctx.auth = 'sessions'; ctx.work = state.work.get(wid); return; }
    for (const [envId, k] of state.envKeys) {
      if (k === cred) { ctx.auth = 'environment'; ctx.envIds = (ctx.envIds || []).concat(envId); }
    }
    if (!ctx.auth) ctx.auth = 'invalid';
  }

  // `allowed` names the credential kinds a route takes.
  function authorize(ctx, allowed) {
    const kinds = allowed.split('|');
    if (ctx.auth === 'none') throw unauth('x-api-key header is required');
    if (ctx.auth === 'both') throw unauth('send one credential: x-api-key or Authorization, not both');
    if (ctx.auth === 'invalid') throw unauth(ctx.headersHadKey ? 'invalid x-api-key' : 'invalid bearer token');
    if (!kinds.includes(ctx.auth)) {
      const what = { api: 'an API key (x-api-key)', environment: 'an environment key', sessions: 'a sessions token' }[ctx.auth];
      throw unauth(`${what} is not accepted for ${ctx.method} ${ctx.path}`);
    }
  }

  function checkWire(req, ctx) {
    if (ctx.query.beta !== 'true') throw notFound(`${ctx.method} ${ctx.path}: not found (beta endpoints need ?beta=true)`);
    const v = req.headers['anthropic-version'];
    if (v === undefined) throw bad('anthropic-version: header is required');
    if (v !== VERSION) throw bad(`anthropic-version: "${v}" is not a valid version`);
    const betas = String(req.headers['anthropic-beta'] || '').split(',').map((s) => s.trim());
    if (!betas.includes(BETA)) throw bad(`anthropic-beta: this endpoint requires the ${BETA} beta`);
  }

  function takeFault(ctx) {
    for (let i = 0; i < faults.length; i++) {
      const f = faults[i];
      if (f.path && !new RegExp(f.path).test(ctx.path)) continue;
      if (f.method && f.method.toUpperCase() !== ctx.method) continue;
      if (f.match && !f.match(ctx)) continue;
      if (--f.count <= 0) faults.splice(i, 1);
      return f;
    }
    return null;
  }

  function faultError(f) {
    const status = f.status || 500;
    const type = f.type || { 408: 'timeout_error', 409: 'invalid_request_error', 429: 'rate_limit_error',
      500: 'api_error', 502: 'api_error', 503: 'api_error', 529: 'overloaded_error' }[status] || 'api_error';
    const e = new ApiError(status, type, f.message || `fake fault: ${status}`);
    if (f.retryAfter !== undefined && f.retryAfter !== null) e.headers['retry-after'] = String(f.retryAfter);
    if (f.retryAfterMs !== undefined && f.retryAfterMs !== null) e.headers['retry-after-ms'] = String(f.retryAfterMs);
    if (f.shouldRetry !== undefined) e.headers['x-should-retry'] = String(!!f.shouldRetry);
    Object.assign(e.headers, f.headers || {});
    return e;
  }

  async function handleControl(req, res, ctx) {
    const name = ctx.path.slice('/_fake/'.length);
    if (req.method === 'GET') {
      if (name === 'requests') return sendJson(res, 200, requests);
      if (name === 'violations') return sendJson(res, 200, violations);
      if (name === 'state') return sendJson(res, 200, dumpState());
      return sendError(res, notFound('no such control'));
    }
    const b = isObj(ctx.body) ? ctx.body : {};
    if (name === 'nextScript') return sendJson(res, 200, fake.nextScript(b.steps || []) || {});
    if (name === 'scriptFor') return sendJson(res, 200, fake.scriptFor(b.session || { metadata: b.metadata || {} }, b.steps || []) || {});
    const fns = { ...control };
    if (!fns[name]) return sendError(res, notFound('no such control'));
    const out = await fns[name](b.id !== undefined ? b.id : b, b);
    return sendJson(res, 200, out === undefined ? {} : out);
  }

  async function handle(req, res) {
    const u = new URL(req.url, 'http://127.0.0.1');
    const ctx = { method: req.method, path: u.pathname, query: Object.fromEntries(u.searchParams.entries()),
      queryAll: u.searchParams, headersHadKey: req.headers['x-api-key'] !== undefined };
    const raw = await readBody(req);
    if (ctx.path.startsWith('/_fake/')) {
      try { ctx.body = raw.length ? JSON.parse(raw.toString()) : null; } catch (e) { ctx.body = null; }
      return handleControl(req, res, ctx);
    }
    authenticate(req, ctx);
    let body = null;
    let bodyProblem = null;
    if (raw.length) {
      try { body = JSON.parse(raw.toString()); } catch (e) { body = raw.toString(); bodyProblem = 'body: invalid JSON'; }
      const ct = String(req.headers['content-type'] || '');
      if (!bodyProblem && !/^application\/json\b/i.test(ct)) bodyProblem = 'content-type: application/json is required';
    }
    ctx.body = body;
    const rec = { method: req.method, path: ctx.path, query: ctx.query, headers: { ...req.headers }, body,
      auth: ctx.auth, time: Date.now() };
    requests.push(rec);
    checkWire(req, ctx);
    const fault = takeFault(ctx);
    if (fault) {
      if (fault.kind === 'hang') return undefined;
      if (fault.kind === 'drop') return res.destroy();
      throw faultError(fault);
    }
    for (const r of routes) {
      if (r.method !== req.method) continue;
      const m = r.re.exec(ctx.path);
      if (!m) continue;
      authorize(ctx, r.auth);
      if (bodyProblem) throw bad(bodyProblem);
      const out = await r.fn(ctx, ...m.slice(1).map(decodeURIComponent), req, res);
      if (out === undefined) return undefined; // the handler answered (SSE, long poll)
      return sendJson(res, out[0], out[1], out[2]);
    }
    authorize(ctx, 'api|environment|sessions');
    throw notFound(`${req.method} ${ctx.path}: not found`);
  }

  function dumpState() {
    return {
      agents: [...state.agents.values()].map((a) => a.versions[a.versions.length - 1]),
      environments: [...state.environments.values()],
      sessions: [...state.sessions.values()].map((s) => ({ ...s.obj, events: s.events })),
      work: [...state.work.values()].map((w) => ext.workView ? ext.workView(w) : w),
    };
  }

  async function waitFor(pred, timeoutMs = 5000) {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      if (await pred(fake)) return true;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error('fake Anthropic: condition not met in time');
  }

  const control = {
    failNext(o = {}) { faults.push({ kind: o.kind || 'fail', count: o.count || 1, ...o }); },
    hang(o = {}) { faults.push({ kind: 'hang', count: o.count || 1, ...o }); },
    clearFaults() { faults.length = 0; lostLeases.clear(); },
    resetRequests() { requests.length = 0; },
  };

  const fake = {
    requests, violations, state, waitFor,
    createAgent: (b) => createAgent(b),
    createEnvironment: (b) => createEnvironment(b),
    setEnvironmentKey(envId, key) { state.envKeys.set(envId, key); },
    ...control,
  };

  // part 2: sessions, events, work
  installSessions({ fake, state, opts, route, page, violations, faults, lostLeases, waiters, timers, sleep,
    ext, control, checkMetadata, currentAgent, isClosed: () => closed, getUrl: () => url,
    leaseTtlSeconds, defaultReclaimMs, pingMs, stepDelayMs, scriptStart, scripts, defaultEnvKey });

  server = http.createServer((req, res) => {
    handle(req, res).catch((e) => {
      if (res.headersSent) return res.destroy();
      if (e instanceof ApiError) return sendError(res, e);
      return sendError(res, new ApiError(500, 'api_error', `fake Anthropic error: ${e.stack || e.message}`));
    });
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port || 0, opts.host || '127.0.0.1', resolve);
  });
  const port = server.address().port;
  url = `http://127.0.0.1:${port}`;

  const env = createEnvironment({ name: 'perfbot-test', config: { type: 'self_hosted' } });

  async function close() {
    closed = true;
    for (const t of timers) clearTimeout(t);
    timers.clear();
    if (ext.onClose) ext.onClose();
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(() => resolve()));
  }

  Object.assign(fake, { url, port, environmentId: env.id, apiKey, environmentKey: defaultEnvKey, close });
  return fake;
}

// ---- part 2: sessions, events, work items, scripts ----------------------------

function installSessions(c) {
  const { fake, state, route, page, violations, faults, lostLeases, waiters, timers, sleep, ext, control,
    currentAgent, isClosed, getUrl, leaseTtlSeconds, defaultReclaimMs, pingMs, stepDelayMs, scriptStart,
    scripts, opts } = c;
  const streams = new Set();  // {session, res, ping}
  const queuedScripts = [];   // nextScript()
  let hbSeq = 0;

  // ---- sessions -----------------------------------------------------------------

  function findSession(id) {
    const s = state.sessions.get(id);
    if (!s) throw notFound(`session ${id} not found`);
    return s;
  }

  // The session a request may touch: any with the API key, only its own with a sessions token.
  function sessionFor(ctx, id) {
    if (ctx.auth === 'sessions') {
      const w = ctx.work;
      if (!w || w.data.type !== 'session' || w.data.id !== id)
        throw forbidden('this sessions token does not grant access to this session');
    }
    return findSession(id);
  }

  function setStatus(s, status) {
    const now = Date.now();
    if (s.obj.status === 'running' && status !== 'running' && s.runningSince) {
      s.activeMs += now - s.runningSince;
      s.runningSince = 0;
    }
    if (status === 'running' && s.obj.status !== 'running') s.runningSince = now;
    s.obj.status = status;
    s.obj.updated_at = iso(now);
  }

  function refreshStats(s) {
    const now = Date.now();
    const active = s.activeMs + (s.runningSince ? now - s.runningSince : 0);
    s.obj.stats = { active_seconds: Math.round(active / 100) / 10,
      duration_seconds: Math.round((now - s.createdMs) / 100) / 10 };
    if (!s.usageActiveSet) s.obj.usage.active_seconds = s.obj.stats.active_seconds;
    return s.obj;
  }

  function writeSse(res, ev) {
    res.write(`event: ${ev.type}\ndata: ${JSON.stringify(ev)}\n\n`);
  }

  function broadcast(s, ev) {
    for (const st of streams) if (st.session === s) writeSse(st.res, ev);
  }

  function pushEvent(s, ev) {
    const full = { id: newId('sevt'), ...ev, processed_at: iso() };
    s.events.push(full);
    broadcast(s, full);
    return full;
  }

  function endStreams(s) {
    for (const st of [...streams]) if (!s || st.session === s) { st.res.end(); closeStream(st); }
  }

  function dropStreams(s) {
    for (const st of [...streams]) if (!s || st.session === s) { st.res.destroy(); closeStream(st); }
  }

  function closeStream(st) {
    clearInterval(st.ping);
    streams.delete(st);
  }

  function pickScript(s) {
    for (let i = scripts.length - 1; i >= 0; i--) {
      const m = scripts[i].match;
      let ok = false;
      if (typeof m === 'function') ok = !!m(s.obj);
      else if (typeof m === 'string') ok = m === s.id;
      else if (isObj(m) && isObj(m.metadata))
        ok = Object.entries(m.metadata).every(([k, v]) => s.obj.metadata[k] === v);
      if (ok) return scripts[i].steps;
    }
    if (queuedScripts.length) return queuedScripts.shift();
    return opts.script || [{ message: 'Nothing to do.' }, { idle: 'end_turn' }];
  }

  function checkBudget(b) {
    if (b === undefined || b === null) return null;
    if (!isObj(b) || b.type !== 'limit' || !isObj(b.max_list_cost))
      throw bad('budget: {"type":"limit","max_list_cost":{"amount","currency"}} is required');
    const m = b.max_list_cost;
    if (typeof m.amount !== 'string' || !/^(0|[1-9][0-9]*)$/.test(m.amount))
      throw bad('budget.max_list_cost.amount: an integer decimal string of minor units, no leading zeros');
    if (m.currency !== 'USD') throw bad('budget.max_list_cost.currency: USD is the only currency supported');
    return { type: 'limit', max_list_cost: { amount: m.amount, currency: 'USD' } };
  }

  function checkContent(content, where) {
    if (!Array.isArray(content)) return `${where}: an array of content blocks is required`;
    for (const [i, blk] of content.entries()) {
      if (!isObj(blk) || typeof blk.type !== 'string') return `${where}[${i}]: a content block with a type is required`;
      if (blk.type === 'text' && typeof blk.text !== 'string') return `${where}[${i}].text: a string is required`;
      if (!['text', 'image', 'document', 'search_result'].includes(blk.type))
        return `${where}[${i}].type: "${blk.type}" is not a content block type`;
    }
    return null;
  }

  function createSession(b, script) {
    if (!isObj(b)) throw bad('body: a JSON object is required');
    let agentId;
    let version;
    if (typeof b.agent === 'string') agentId = b.agent;
    else if (isObj(b.agent) && typeof b.agent.id === 'string') {
      agentId = b.agent.id;
      version = b.agent.version;
    } else throw bad('agent: an agent id or {"type":"agent","id","version"} is required');
    const latest = currentAgent(agentId);
    let agent = latest;
    if (version !== undefined) {
      agent = state.agents.get(agentId).versions.find((a) => a.version === version);
      if (!agent) throw notFound(`agent ${agentId} has no version ${version}`);
    }
    if (latest.archived_at) throw bad(`agent ${agentId} is archived`);
    if (typeof b.environment_id !== 'string') throw bad('environment_id: required');
    const env = state.environments.get(b.environment_id);
    if (!env) throw notFound(`environment ${b.environment_id} not found`);
    if (env.archived_at) throw bad(`environment ${env.id} is archived`);
    c.checkMetadata(b.metadata);
    if (b.title !== undefined && b.title !== null && typeof b.title !== 'string') throw bad('title: must be a string');
    const budget = checkBudget(b.budget);
    const initial = b.initial_events === undefined ? [] : b.initial_events;
    if (!Array.isArray(initial) || initial.length > 50) throw bad('initial_events: an array of at most 50 events');
    for (const [i, ev] of initial.entries()) {
      if (!isObj(ev) || !['user.message', 'user.define_outcome'].includes(ev.type))
        throw bad(`initial_events[${i}].type: user.message or user.define_outcome`);
      if (ev.type === 'user.message') {
        const p = checkContent(ev.content, `initial_events[${i}].content`);
        if (p) throw bad(p);
      }
    }
    const now = Date.now();
    const snapshot = { id: agent.id, type: 'agent', version: agent.version, name: agent.name,
      description: agent.description, model: agent.model, system: agent.system, tools: agent.tools,
      mcp_servers: agent.mcp_servers, skills: agent.skills, multiagent: agent.multiagent };
    const obj = {
      id: newId('sesn'), type: 'session', agent: snapshot, environment_id: env.id, title: b.title || null,
      metadata: { ...(b.metadata || {}) }, budget, status: 'idle', created_at: iso(now), updated_at: iso(now),
      archived_at: null, resources: [], outcome_evaluations: [], vault_ids: [],
      stats: { active_seconds: 0, duration_seconds: 0 },
      usage: { input_tokens: 0, output_tokens: 0, cache_read_input_tokens: 0,
        cache_creation: { ephemeral_1h_input_tokens: 0, ephemeral_5m_input_tokens: 0 },
        active_seconds: 0, list_cost: { amount: '0', currency: 'USD' }, server_tool_use: null },
    };
    const s = { id: obj.id, obj, events: [], toolUses: new Map(), interrupted: false, archived: false,
      terminated: false, started: false, done: false, error: null, createdMs: now, activeMs: 0, runningSince: 0,
      listCostCents: 0, usageActiveSet: false, userEvents: [], streamsOpened: 0, script: null };
    state.sessions.set(s.id, s);
    s.script = script || pickScript(s);
    for (const ev of initial) pushEvent(s, { ...ev });
    if (env.config.type === 'self_hosted') queueWork(s.id);
    if (scriptStart === 'create') startScript(s);
    else if (initial.length) setStatus(s, 'rescheduling');
    return s;
  }

  // ---- scripts --------------------------------------------------------------------

  function startScript(s) {
    if (s.started) return;
    s.started = true;
    const t = setTimeout(() => { timers.delete(t); runScript(s); }, 0);
    timers.add(t);
  }

  const stopped = (s) => isClosed() || s.interrupted || s.archived || s.terminated || s.deleted;

  async function until(s, pred, timeoutMs) {
    const end = timeoutMs ? Date.now() + timeoutMs : Infinity;
    while (!stopped(s) && !pred()) {
      if (Date.now() > end) throw new Error('script step timed out');
      await sleep(10);
    }
    return !stopped(s);
  }

  async function runScript(s) {
    setStatus(s, 'running');
    pushEvent(s, { type: 'session.status_running' });
    let last = null;
    try {
      for (const step of s.script) {
        if (stopped(s)) break;
        if (stepDelayMs) await sleep(stepDelayMs);
        if (stopped(s)) break;
        await playStep(s, step);
        last = step;
      }
      if (!stopped(s) && !(last && (last.idle || last.terminate || (last.error && last.error.retry_status === 'terminal')))) {
        setStatus(s, 'idle');
        pushEvent(s, { type: 'session.status_idle', stop_reason: { type: 'end_turn' } });
      }
    } catch (e) {
      s.error = e;
    }
    s.done = true;
  }

  function requireAction(s, id) {
    setStatus(s, 'idle');
    pushEvent(s, { type: 'session.status_idle', stop_reason: { type: 'requires_action', event_ids: [id] } });
  }

  function resume(s) {
    if (stopped(s)) return;
    if (s.obj.status !== 'running') {
      setStatus(s, 'running');
      pushEvent(s, { type: 'session.status_running' });
    }
  }

  async function toolStep(s, step, kind) {
    const type = kind === 'custom' ? 'agent.custom_tool_use' : 'agent.tool_use';
    const ev = { type, name: kind === 'custom' ? step.custom : step.tool, input: step.input || {} };
    if (kind === 'tool' && step.permission) ev.evaluated_permission = step.permission;
    const full = pushEvent(s, ev);
    const use = { id: full.id, event: full, kind, name: ev.name, permission: step.permission || null,
      verdict: null, results: [], answered: false, cancelled: false };
    s.toolUses.set(full.id, use);
    if (step.replay) {
      const t = setTimeout(() => { timers.delete(t); broadcast(s, full); }, step.replayDelayMs || 20);
      timers.add(t);
    }
    if (use.permission === 'deny') return use;
    if (use.permission === 'ask') {
      requireAction(s, full.id);
      if (step.confirm === 'manual') {
        // the test (the "user") posts the user.tool_confirmation itself
        if (!await until(s, () => use.verdict, step.timeoutMs)) return use;
      } else {
        await sleep(step.confirmDelayMs === undefined ? 50 : step.confirmDelayMs);
      }
      if (stopped(s)) return use;
      if (!use.verdict) {
        use.verdict = step.confirm || 'allow';
        pushEvent(s, { type: 'user.tool_confirmation', tool_use_id: full.id, result: use.verdict });
      }
      if (use.verdict !== 'allow') { resume(s); return use; }
      resume(s);
    } else if (kind === 'custom') {
      requireAction(s, full.id);
    }
    if (await until(s, () => use.results.length > 0, step.timeoutMs)) {
      resume(s);
      if (step.onResult) await step.onResult(use.results[0], s, fake);
    }
    return use;
  }

  async function playStep(s, step) {
    if (step.tool) return toolStep(s, step, 'tool');
    if (step.custom) return toolStep(s, step, 'custom');
    if (step.message !== undefined)
      return pushEvent(s, { type: 'agent.message', content: [{ type: 'text', text: String(step.message) }] });
    if (step.thinking) return pushEvent(s, { type: 'agent.thinking' });
    if (step.usage) {
      const u = step.usage;
      const us = s.obj.usage;
      for (const k of ['input_tokens', 'output_tokens', 'cache_read_input_tokens']) us[k] += u[k] || 0;
      if (u.active_seconds !== undefined) { us.active_seconds = u.active_seconds; s.usageActiveSet = true; }
      s.listCostCents += u.list_cost_cents || 0;
      us.list_cost = { amount: String(s.listCostCents), currency: 'USD' };
      refreshStats(s);
      const { server_tool_use, ...snap } = us;
      return pushEvent(s, { type: 'session.usage', usage: snap, budget: s.obj.budget });
    }
    if (step.idle) {
      setStatus(s, 'idle');
      return pushEvent(s, { type: 'session.status_idle', stop_reason: { type: step.idle } });
    }
    if (step.error) {
      const e = step.error;
      const ev = pushEvent(s, { type: 'session.error', error: { type: e.type || 'unknown_error',
        message: e.message || 'fake session error', retry_status: { type: e.retry_status || 'terminal' } } });
      if ((e.retry_status || 'terminal') === 'terminal') terminate(s);
      return ev;
    }
    if (step.terminate) return terminate(s);
    if (step.dropStream) return dropStreams(s);
    if (step.wait) {
      const end = Date.now() + step.wait;
      await until(s, () => Date.now() >= end); // an interrupt, archive or close cuts it short
      return null;
    }
    if (step.waitForAck) {
      await until(s, () => [...state.work.values()].some((w) => w.data.id === s.id && w.acks > 0), step.timeoutMs);
      return null;
    }
    if (step.waitForStream) {
      const n = typeof step.waitForStream === 'number' ? step.waitForStream : 1;
      await until(s, () => s.streamsOpened >= n, step.timeoutMs);
      return null;
    }
    if (step.waitFor) {
      const n = s.userEvents.filter((e) => e.type === `user.${step.waitFor}`).length;
      const t0 = s.userEvents.length;
      if (step.waitFor === 'interrupt') {
        // an interrupt stops the script: wait for it, then the loop ends
        while (!isClosed() && !s.interrupted && !s.archived && !s.terminated) await sleep(10);
        return null;
      }
      await until(s, () => s.userEvents.slice(t0).some((e) => e.type === `user.${step.waitFor}`) ||
        s.userEvents.filter((e) => e.type === `user.${step.waitFor}`).length > n, step.timeoutMs);
      return null;
    }
    if (step.run) return step.run(s, fake);
    throw new Error(`unknown script step ${JSON.stringify(step)}`);
  }

  function terminate(s) {
    if (s.terminated) return null;
    s.terminated = true;
    setStatus(s, 'terminated');
    const ev = pushEvent(s, { type: 'session.status_terminated' });
    endStreams(s);
    stopRequested(s.id);
    return ev;
  }

  // Work items of a session that is over are asked to stop (the heartbeat says "stopping").
  function stopRequested(sessionId) {
    for (const w of state.work.values()) {
      if (w.data.type !== 'session' || w.data.id !== sessionId) continue;
      if (w.state === 'stopped' || w.state === 'stopping') continue;
      w.state = 'stopping';
      w.stop_requested_at = iso();
    }
  }

  // ---- results and user events ------------------------------------------------------

  function violation(s, kind, id, message) {
    violations.push({ kind, session: s.id, id, message, time: Date.now() });
    return bad(message);
  }

  // Checks one posted event; returns a function that applies it (after all are checked).
  function checkUserEvent(s, ev, i, seen) {
    if (!isObj(ev) || typeof ev.type !== 'string') throw bad(`events[${i}]: an event with a type is required`);
    if (ev.type === 'user.tool_result' || ev.type === 'user.custom_tool_result') {
      const custom = ev.type === 'user.custom_tool_result';
      const field = custom ? 'custom_tool_use_id' : 'tool_use_id';
      const id = ev[field];
      if (typeof id !== 'string') throw violation(s, 'malformed_result', null, `events[${i}].${field}: required`);
      const use = s.toolUses.get(id);
      if (!use) throw violation(s, 'unknown_tool_use', id, `events[${i}].${field}: ${id} is not a tool use of this session`);
      if ((use.kind === 'custom') !== custom)
        throw violation(s, 'wrong_result_kind', id, `events[${i}]: ${id} is an ${use.event.type}; answer it with ${use.kind === 'custom' ? 'user.custom_tool_result' : 'user.tool_result'}`);
      if (use.permission === 'deny') throw violation(s, 'answered_denied', id, `events[${i}]: tool use ${id} was denied; it takes no result`);
      if (use.permission === 'ask' && use.verdict !== 'allow')
        throw violation(s, 'answered_unconfirmed', id, `events[${i}]: tool use ${id} awaits confirmation; it cannot be answered yet`);
      if (use.results.length || seen.has(id)) throw violation(s, 'answered_twice', id, `events[${i}]: tool use ${id} already has a result`);
      if (ev.content !== undefined && ev.content !== null) {
        const p = checkContent(ev.content, `events[${i}].content`);
        if (p) throw violation(s, 'malformed_result', id, p);
      }
      if (ev.is_error !== undefined && ev.is_error !== null && typeof ev.is_error !== 'boolean')
        throw violation(s, 'malformed_result', id, `events[${i}].is_error: a boolean`);
      seen.add(id);
      return () => {
        const echo = pushEvent(s, { ...ev });
        use.results.push(echo);
        use.answered = true;
        return echo;
      };
    }
    if (ev.type === 'user.interrupt') {
      return () => {
        const echo = pushEvent(s, { ...ev });
        s.userEvents.push(echo);
        if (!s.interrupted && !s.terminated) {
          s.interrupted = true;
          for (const u of s.toolUses.values()) if (!u.results.length) u.cancelled = true;
          setStatus(s, 'idle');
          pushEvent(s, { type: 'session.status_idle', stop_reason: { type: 'end_turn' } });
        }
        return echo;
      };
    }
    if (ev.type === 'user.tool_confirmation') {
      const use = s.toolUses.get(ev.tool_use_id);
      if (!use || use.kind !== 'tool') throw bad(`events[${i}].tool_use_id: not a tool use of this session`);
      if (!['allow', 'deny'].includes(ev.result)) throw bad(`events[${i}].result: allow or deny`);
      if (use.permission !== 'ask' || use.verdict) throw bad(`events[${i}]: tool use ${use.id} awaits no confirmation`);
      return () => {
        use.verdict = ev.result;
        const echo = pushEvent(s, { ...ev });
        s.userEvents.push(echo);
        return echo;
      };
    }
    if (ev.type === 'user.message') {
      const p = checkContent(ev.content, `events[${i}].content`);
      if (p) throw bad(p);
      return () => {
        const echo = pushEvent(s, { ...ev });
        s.userEvents.push(echo);
        // A session that is idle and receives a message comes back as a new work item.
        if (s.done && !s.terminated) {
          const live = [...state.work.values()].some((w) => w.data.id === s.id && w.state !== 'stopped');
          if (!live) queueWork(s.id);
          s.script = s.followUp || opts.followUp || [{ message: 'Done.' }, { idle: 'end_turn' }];
          s.started = false;
          s.done = false;
          s.interrupted = false;
          startScript(s);
        }
        return echo;
      };
    }
    if (ev.type === 'user.define_outcome' || ev.type === 'system.message')
      return () => pushEvent(s, { ...ev });
    throw bad(`events[${i}].type: "${ev.type}" cannot be sent`);
  }

  // ---- work items ---------------------------------------------------------------------

  function workView(w, withSecret) {
    return { type: 'work', id: w.id, environment_id: w.environment_id, data: { ...w.data }, state: w.state,
      created_at: w.created_at, acknowledged_at: w.acknowledged_at, started_at: w.started_at,
      latest_heartbeat_at: w.latest_heartbeat_at, stop_requested_at: w.stop_requested_at,
      stopped_at: w.stopped_at, metadata: { ...w.metadata }, secret: withSecret ? w.secret : null };
  }
  ext.workView = (w) => ({ ...workView(w, false), polls: w.polls, polledBy: w.polledBy, acks: w.acks,
    heartbeats: w.heartbeats, stops: w.stops, leaseLost: w.leaseLost });

  function addWork(envId, data) {
    const token = `sk-ant-req-${b64url(crypto.randomBytes(24))}`;
    const payload = { sessions_token: token };
    const base = opts.secretBaseUrl === undefined ? getUrl() : opts.secretBaseUrl;
    if (base) payload.api_base_url = base;
    const w = { id: newId('work'), environment_id: envId, data, state: 'queued', created_at: iso(),
      acknowledged_at: null, started_at: null, latest_heartbeat_at: null, stop_requested_at: null, stopped_at: null,
      metadata: {}, sessionsToken: token, secret: b64url(JSON.stringify(payload)), polledAt: null, polledBy: null,
      polls: 0, acks: 0, heartbeats: 0, stops: 0, lastHeartbeat: null, lastHeartbeatMs: 0, ttl: leaseTtlSeconds,
      leaseLost: false };
    state.work.set(w.id, w);
    state.tokens.set(token, w.id);
    for (const wt of [...waiters]) if (wt.envId === envId) wt.wake();
    return w;
  }

  function queueWork(sessionId) {
    const s = findSession(sessionId);
    return addWork(s.obj.environment_id, { type: 'session', id: s.id });
  }

  function queueHealthcheck(envId) {
    const id = envId || fake.environmentId;
    if (!state.environments.has(id)) throw notFound(`environment ${id} not found`);
    return addWork(id, { type: 'healthcheck', id: newId('hc') });
  }

  function findEnv(ctx, envId) {
    const env = state.environments.get(envId);
    if (ctx.auth === 'environment' && !(ctx.envIds || []).includes(envId))
      throw forbidden('this environment key belongs to another environment');
    if (!env) throw notFound(`environment ${envId} not found`);
    return env;
  }

  function findWork(ctx, envId, workId) {
    findEnv(ctx, envId);
    const w = state.work.get(workId);
    if (ctx.auth === 'sessions' && (!ctx.work || ctx.work.id !== workId))
      throw forbidden('this sessions token belongs to another work item');
    if (!w || w.environment_id !== envId) throw notFound(`work ${workId} not found`);
    return w;
  }

  function claimable(envId, reclaimMs) {
    const now = Date.now();
    for (const w of state.work.values()) {
      if (w.environment_id !== envId || w.state !== 'queued') continue;
      if (w.polledAt === null || now - w.polledAt >= reclaimMs) return w;
    }
    return null;
  }

  function intParam(q, name, min, max) {
    if (q[name] === undefined) return undefined;
    const v = Number(q[name]);
    if (!/^-?[0-9]+$/.test(q[name]) || v < min || (max !== undefined && v > max))
      throw bad(`${name}: an integer from ${min}${max !== undefined ? ` to ${max}` : ''}`);
    return v;
  }

  route('GET', /^\/v1\/environments\/([^/]+)\/work\/poll$/, 'environment', async (ctx, envId, req, res) => {
    findEnv(ctx, envId);
    const worker = req.headers['anthropic-worker-id'];
    if (!worker) throw bad('Anthropic-Worker-ID: header is required');
    const blockMs = intParam(ctx.query, 'block_ms', 1, 999);
    const reclaim = intParam(ctx.query, 'reclaim_older_than_ms', 0);
    const reclaimMs = reclaim === undefined ? defaultReclaimMs : reclaim;
    let w = claimable(envId, reclaimMs);
    if (!w && blockMs) {
      await new Promise((resolve) => {
        const wt = { envId, wake: () => { waiters.delete(wt); clearTimeout(t); resolve(); } };
        const t = setTimeout(() => { timers.delete(t); wt.wake(); }, blockMs);
        timers.add(t);
        waiters.add(wt);
        res.on('close', () => wt.wake());
      });
      if (res.destroyed || isClosed()) return undefined;
      w = claimable(envId, reclaimMs);
    }
    if (!w) return [200, null];
    w.polledAt = Date.now();
    w.polledBy = worker;
    w.polls++;
    return [200, workView(w, true)];
  });

  route('POST', /^\/v1\/environments\/([^/]+)\/work\/([^/]+)\/ack$/, 'environment|sessions', (ctx, envId, workId) => {
    const w = findWork(ctx, envId, workId);
    if (w.state === 'stopped') throw new ApiError(409, 'invalid_request_error', `work ${w.id} is stopped`);
    w.acks++;
    if (w.state === 'queued') {
      w.state = 'starting';
      w.acknowledged_at = iso();
      if (w.data.type === 'session' && scriptStart === 'ack') startScript(findSession(w.data.id));
    }
    return [200, workView(w, false)];
  });

  function leaseLost(w, message) {
    w.leaseLost = true;
    return new ApiError(412, 'invalid_request_error', message, { details: { current_state: {
      last_heartbeat: w.lastHeartbeat, ttl_seconds: w.ttl, state: w.state } } });
  }

  route('POST', /^\/v1\/environments\/([^/]+)\/work\/([^/]+)\/heartbeat$/, 'environment|sessions', (ctx, envId, workId) => {
    const w = findWork(ctx, envId, workId);
    w.heartbeats++;
    const now = Date.now();
    if (lostLeases.has(w.id) || lostLeases.has('*')) {
      lostLeases.delete(lostLeases.has(w.id) ? w.id : '*');
      throw leaseLost(w, `work ${w.id}: the lease is held by another worker`);
    }
    if (w.leaseLost) throw leaseLost(w, `work ${w.id}: the lease was lost`);
    if (w.lastHeartbeatMs && now > w.lastHeartbeatMs + w.ttl * 1000)
      throw leaseLost(w, `work ${w.id}: the lease expired (no heartbeat within ${w.ttl} s)`);
    const expected = ctx.query.expected_last_heartbeat;
    if (expected !== undefined) {
      const current = w.lastHeartbeat === null ? 'NO_HEARTBEAT' : w.lastHeartbeat;
      if (expected !== current) {
        const e = new ApiError(412, 'invalid_request_error',
          `expected_last_heartbeat ${expected} does not match the lease's last heartbeat`,
          { details: { current_state: { last_heartbeat: w.lastHeartbeat, ttl_seconds: w.ttl, state: w.state } } });
        throw e;
      }
    }
    const desired = intParam(ctx.query, 'desired_ttl_seconds', 1);
    if (w.state === 'stopped')
      return [200, { type: 'work_heartbeat', last_heartbeat: w.lastHeartbeat || iso(now), lease_extended: false,
        state: 'stopped', ttl_seconds: w.ttl }];
    w.ttl = desired ? Math.min(desired, leaseTtlSeconds) : leaseTtlSeconds;
    hbSeq = (hbSeq + 1) % 1000;
    w.lastHeartbeat = iso(now).replace(/Z$/, `${String(hbSeq).padStart(3, '0')}Z`);
    w.lastHeartbeatMs = now;
    w.latest_heartbeat_at = w.lastHeartbeat;
    if (w.state === 'queued')
      violations.push({ kind: 'heartbeat_before_ack', session: w.data.type === 'session' ? w.data.id : null, id: w.id,
        message: `work ${w.id} was heartbeated before it was acked`, time: now });
    if (w.state === 'queued' || w.state === 'starting') {
      w.state = 'active';
      w.started_at = iso(now);
    }
    return [200, { type: 'work_heartbeat', last_heartbeat: w.lastHeartbeat, lease_extended: w.state === 'active',
      state: w.state, ttl_seconds: w.ttl }];
  });

  route('POST', /^\/v1\/environments\/([^/]+)\/work\/([^/]+)\/stop$/, 'environment|sessions', (ctx, envId, workId) => {
    const w = findWork(ctx, envId, workId);
    if (ctx.body !== null && (!isObj(ctx.body) || (ctx.body.force !== undefined && typeof ctx.body.force !== 'boolean')))
      throw bad('body: {"force": boolean}');
    w.stops++;
    if (w.state === 'stopped') throw new ApiError(409, 'invalid_request_error', `work ${w.id} is already stopped`);
    if (w.leaseLost) {
      violations.push({ kind: 'stopped_lost_lease', session: w.data.type === 'session' ? w.data.id : null, id: w.id,
        message: `work ${w.id} was stopped after its lease was lost`, time: Date.now() });
      throw leaseLost(w, `work ${w.id}: the lease was lost; this worker may not stop it`);
    }
    const now = iso();
    if (!w.stop_requested_at) w.stop_requested_at = now;
    w.state = 'stopped';
    w.stopped_at = now;
    w.force = !!(ctx.body && ctx.body.force);
    return [200, workView(w, false)];
  });

  route('GET', /^\/v1\/environments\/([^/]+)\/work\/stats$/, 'api|environment', (ctx, envId) => {
    findEnv(ctx, envId);
    const items = [...state.work.values()].filter((w) => w.environment_id === envId && w.state === 'queued');
    return [200, { type: 'work_queue_stats', depth: items.filter((w) => w.polledAt === null).length,
      pending: items.filter((w) => w.polledAt !== null).length,
      oldest_queued_at: items.length ? items[0].created_at : null, workers_polling: null }];
  });

  route('GET', /^\/v1\/environments\/([^/]+)\/work\/([^/]+)$/, 'api|environment|sessions', (ctx, envId, workId) =>
    [200, workView(findWork(ctx, envId, workId), false)]);

  // ---- session routes -----------------------------------------------------------------

  route('POST', /^\/v1\/sessions$/, 'api', (ctx) => [200, refreshStats(createSession(ctx.body))]);

  route('GET', /^\/v1\/sessions$/, 'api', (ctx) => {
    let all = [...state.sessions.values()].filter((s) => !s.deleted).map((s) => refreshStats(s));
    if (ctx.query.include_archived !== 'true') all = all.filter((o) => !o.archived_at);
    if (ctx.query.agent_id) all = all.filter((o) => o.agent.id === ctx.query.agent_id);
    const statuses = ctx.queryAll.getAll('statuses');
    if (statuses.length) all = all.filter((o) => statuses.includes(o.status));
    if (ctx.query.order !== 'asc') all.reverse();
    return [200, page(all, ctx.query, { bidirectional: true })];
  });

  route('GET', /^\/v1\/sessions\/([^/]+)$/, 'api|sessions', (ctx, id) => [200, refreshStats(sessionFor(ctx, id))]);

  route('POST', /^\/v1\/sessions\/([^/]+)$/, 'api', (ctx, id) => {
    const s = findSession(id);
    const b = ctx.body;
    if (!isObj(b)) throw bad('body: a JSON object is required');
    if (b.title !== undefined) s.obj.title = b.title;
    if (b.budget !== undefined) s.obj.budget = checkBudget(b.budget);
    if (b.metadata !== undefined && b.metadata !== null) {
      c.checkMetadata(b.metadata, 'metadata', true);
      for (const [k, v] of Object.entries(b.metadata)) {
        if (v === null) delete s.obj.metadata[k];
        else s.obj.metadata[k] = v;
      }
    }
    s.obj.updated_at = iso();
    return [200, refreshStats(s)];
  });

  route('POST', /^\/v1\/sessions\/([^/]+)\/archive$/, 'api|sessions', (ctx, id) => {
    const s = sessionFor(ctx, id);
    if (!s.archived) {
      s.archived = true;
      s.obj.archived_at = iso();
      endStreams(s);
      stopRequested(s.id);
    }
    return [200, refreshStats(s)];
  });

  route('DELETE', /^\/v1\/sessions\/([^/]+)$/, 'api', (ctx, id) => {
    const s = findSession(id);
    pushEvent(s, { type: 'session.deleted' });
    s.deleted = true;
    endStreams(s);
    stopRequested(s.id);
    state.sessions.delete(id);
    return [200, { id, type: 'session_deleted' }];
  });

  route('GET', /^\/v1\/sessions\/([^/]+)\/events$/, 'api|sessions', (ctx, id) => {
    const s = sessionFor(ctx, id);
    const evs = ctx.query.order === 'desc' ? [...s.events].reverse() : s.events;
    return [200, page(evs, ctx.query, { defLimit: 20, maxLimit: 1000 })];
  });

  route('POST', /^\/v1\/sessions\/([^/]+)\/events$/, 'api|sessions', (ctx, id) => {
    const s = sessionFor(ctx, id);
    const b = ctx.body;
    if (!isObj(b) || !Array.isArray(b.events) || !b.events.length) throw bad('events: a non-empty array is required');
    if (s.archived) throw bad(`session ${id} is archived`);
    if (s.terminated) throw bad(`session ${id} is terminated`);
    const seen = new Set();
    const apply = b.events.map((ev, i) => checkUserEvent(s, ev, i, seen));
    return [200, { data: apply.map((f) => f()) }];
  });

  route('GET', /^\/v1\/sessions\/([^/]+)\/events\/stream$/, 'api|sessions', (ctx, id, req, res) => {
    const s = sessionFor(ctx, id);
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive',
      'request-id': newId('req') });
    s.streamsOpened++;
    if (s.terminated || s.archived) { res.end(); return undefined; }
    const st = { session: s, res, ping: null };
    const ping = () => res.write('event: ping\ndata: {"type":"ping"}\n\n');
    ping();
    st.ping = setInterval(ping, pingMs);
    streams.add(st);
    res.on('close', () => closeStream(st));
    if (scriptStart === 'stream') startScript(s);
    return undefined;
  });

  // ---- controls -------------------------------------------------------------------------

  function rateLimitResults(o = {}) {
    faults.push({ kind: 'fail', count: o.count || 1, status: o.status || 429, method: 'POST', path: '/events$',
      retryAfter: o.retryAfter === undefined ? 1 : o.retryAfter, retryAfterMs: o.retryAfterMs,
      type: o.status && o.status !== 429 ? undefined : 'rate_limit_error',
      message: o.message || 'Number of requests has exceeded your rate limit',
      match: (ctx) => isObj(ctx.body) && Array.isArray(ctx.body.events) &&
        ctx.body.events.some((e) => isObj(e) && /^user\.(custom_)?tool_result$/.test(e.type)) });
  }

  function streamError(sessionId, o = {}) {
    const s = sessionId ? findSession(sessionId) : null;
    for (const st of [...streams]) {
      if (s && st.session !== s) continue;
      st.res.write(`event: error\ndata: ${JSON.stringify({ type: 'error', error: {
        type: o.type || 'overloaded_error', message: o.message || 'Overloaded' } })}\n\n`);
      st.res.end();
      closeStream(st);
    }
  }

  Object.assign(control, {
    queueHealthcheck: (envId) => workView(queueHealthcheck(typeof envId === 'string' ? envId : undefined), false),
    queueWork: (sid) => workView(queueWork(sid), false),
    loseLease: (workId) => { lostLeases.add(typeof workId === 'string' ? workId : '*'); },
    dropStreams: (sid) => dropStreams(typeof sid === 'string' ? findSession(sid) : null),
    streamError: (sid, o) => streamError(typeof sid === 'string' ? sid : null, o),
    rateLimitResults: (o) => rateLimitResults(o),
  });

  Object.assign(fake, control, {
    scriptFor(match, steps) { scripts.push({ match, steps }); },
    nextScript(steps) { queuedScripts.push(steps); },
    createSession(b, script) { return createSession(b, script); },
    session: (id) => state.sessions.get(id),
    sessions: () => [...state.sessions.values()],
    work: (id) => state.work.get(id),
    workFor: (sessionId) => [...state.work.values()].filter((w) => w.data.id === sessionId),
    toolUses: (sid) => [...findSession(sid).toolUses.values()],
    async waitForResult(sid, which, timeoutMs = 5000) {
      let found = null;
      await fake.waitFor(() => {
        const s = state.sessions.get(sid);
        if (!s) return false;
        for (const u of s.toolUses.values())
          if ((u.id === which || u.name === which) && u.results.length) { found = u.results[0]; return true; }
        return false;
      }, timeoutMs);
      return found;
    },
    secretFor: (workId) => state.work.get(workId).secret,
  });

  ext.onClose = () => {
    for (const st of [...streams]) { st.res.destroy(); closeStream(st); }
    for (const wt of [...waiters]) wt.wake();
  };
}

module.exports = { startFakeAnthropic, ApiError };

if (require.main === module) {
  const args = process.argv.slice(2);
  const get = (name) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : undefined;
  };
  startFakeAnthropic({
    port: Number(get('port') || 0),
    apiKey: get('api-key'),
    environmentKey: get('environment-key'),
  }).then((fake) => {
    process.stdout.write(`${fake.url}\n${fake.environmentId}\n`);
    const stop = () => fake.close().then(() => process.exit(0));
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  }, (e) => {
    process.stderr.write(`fake Anthropic failed to start: ${e.message}\n`);
    process.exit(1);
  });
}
