'use strict';
/*
 * A fake Claude Managed Agents API (beta) for perfbot's tests, written from
 * ../../../shared/reference/managed-agents.md and the official TypeScript SDK's
 * types (src/resources/beta/{agents,environments,sessions}, src/lib/environments):
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
 *     script,                         // default script of sessions without their own (default: end_turn)
 *   });
 *   fake.url / fake.port              // "http://127.0.0.1:PORT"
 *   fake.environmentId                // a self-hosted environment made at start ("perfbot-test")
 *   fake.requests                     // every request: {method, path, query, headers, body, auth, time}
 *                                     //   auth: 'api' | 'environment' | 'sessions' | 'none' | 'invalid' | 'both'
 *   fake.state                        // {agents, environments, sessions, work} (Maps by id)
 *   fake.violations                   // protocol breaches by the client: {kind, session, id, message, time}
 *                                     //   kinds: answered_twice, unknown_tool_use, wrong_result_kind,
 *                                     //   answered_denied, answered_unconfirmed, malformed_result
 *   fake.createAgent({...}) / fake.createEnvironment({name, key?}) / fake.setEnvironmentKey(envId, key)
 *   fake.scriptFor(matcher, steps)    // matcher: session id, a function(session) or {metadata:{...}};
 *                                     // sessions created later that match play `steps`
 *   fake.createSession({agent, environment_id, metadata, script})   // without HTTP
 *   fake.session(id)                  // the session record (see below)
 *   fake.toolUses(sessionId)          // [{event, kind, results: [...], answered, permission, verdict}]
 *   await fake.waitForResult(sessionId, name|id, timeoutMs)  // the first result to that tool use
 *   fake.queueHealthcheck(envId?)     // a healthcheck work item
 *   fake.queueWork(sessionId)         // a new work item for a session
 *   fake.loseLease(workId?)           // the next heartbeat of that item (any item if omitted) answers 412
 *   fake.dropStreams(sessionId?)      // cut the open SSE streams (of one session)
 *   fake.rateLimitResults({count: 1, retryAfter: 1, retryAfterMs})   // next result posts answer 429
 *   fake.failNext({status, count, path: /re/, method, type, message, headers})
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
 *        confirmDelayMs (default 50).  replay: the same event is sent a second time on the stream.
 *   {custom: 'run_benchmarks', input: {...}, replay?, onResult?}  agent.custom_tool_use, waits
 *   {message: 'text'}                                              agent.message
 *   {usage: {input_tokens, output_tokens, cache_read_input_tokens, list_cost_cents, active_seconds}}
 *                                                                  session.usage (adds up)
 *   {idle: 'end_turn'|'budget_reached'|'retries_exhausted'}        session.status_idle
 *   {error: {type, message, retry_status: 'retrying'|'exhausted'|'terminal'}}   session.error
 *   {terminate: true}                                              session.status_terminated
 *   {dropStream: true}                                             cut the session's SSE streams
 *   {wait: ms}
 *   {waitFor: 'interrupt'|'message', timeoutMs?}                   until such a user event arrives
 *   {run: async (session, fake) => {}}
 * A user.interrupt ends the script (status idle, end_turn).  Steps after the script's end:
 * none (the session stays idle).
 *
 * ---- Standalone ------------------------------------------------------------
 *   node tests/fake-anthropic/server.js [--port N] [--api-key K] [--environment-key K]
 *   prints its URL alone on the first line of stdout, then the environment id on the second,
 *   then serves until killed.  GET /_fake/requests, /_fake/state, /_fake/violations and
 *   POST /_fake/<control> {options} (queueHealthcheck, loseLease, dropStreams,
 *   rateLimitResults, failNext, clearFaults, resetRequests) are not recorded.
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
    if (same) return cur; // a no-op update makes no new version
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

function installSessions() {}

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
