// Small helpers shared by the dashboard's pages: building elements, the JSON
// API (errors carry the HTTP status), the signed-in user and formatting.
// No HTML strings: text always goes through textContent.

export const SVG = 'http://www.w3.org/2000/svg';

// h('a', {href: '/ui/', class: 'x'}, 'text', child, ...) -> element
export function h(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  setAttrs(e, attrs);
  append(e, kids);
  return e;
}

// s('circle', {cx: 1, ...}) -> SVG element
export function s(tag, attrs, ...kids) {
  const e = document.createElementNS(SVG, tag);
  setAttrs(e, attrs);
  append(e, kids);
  return e;
}

function setAttrs(e, attrs) {
  if (!attrs) return;
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
}

function append(e, kids) {
  for (const k of kids.flat(Infinity)) {
    if (k === undefined || k === null || k === false) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
}

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

// GET (or another method) on /api/v1 + path; resolves to the parsed body.
export function api(path, opts) {
  return request('/api/v1' + path, opts);
}

async function request(url, { method = 'GET', headers = {} } = {}) {
  const r = await fetch(url, {
    method,
    credentials: 'same-origin',
    headers: { Accept: 'application/json', ...headers },
  });
  let body = {};
  try {
    body = await r.json();
  } catch {
    // a proxy's HTML error page: the status says enough
  }
  if (!r.ok) throw new ApiError(r.status, body.error || `HTTP ${r.status}`, body);
  return body;
}

let mePromise;
// The signed-in user ({login, avatar_url, csrf_token, local}), or null.
export function me() {
  mePromise ??= api('/me').catch((e) => {
    if (e.status === 401) return null;
    throw e;
  });
  return mePromise;
}

// A state-changing request to a path of this origin: carries the session's CSRF token.
export async function post(url) {
  const m = await me();
  return request(url, { method: 'POST', headers: { 'X-CSRF-Token': (m && m.csrf_token) || '' } });
}

export function signInHref() {
  return '/auth/login?next=' + encodeURIComponent(location.pathname + location.search);
}

export function enc(s) {
  return encodeURIComponent(s);
}

export function shortSha(sha) {
  return sha ? String(sha).slice(0, 7) : '';
}

const full = new Intl.NumberFormat('en-US');
// 1234567 -> "1,234,567"
export function num(v) {
  return v === null || v === undefined ? '–' : full.format(Math.round(v));
}

// 1234567 -> "1.23M" (digits: significant digits)
export function compact(v, digits = 3) {
  if (v === null || v === undefined) return '–';
  const a = Math.abs(v);
  for (const [d, u] of [[1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k']]) {
    if (a >= d) return (v / d).toPrecision(digits) + u;
  }
  return String(Math.round(v * 100) / 100);
}

// +1.234 -> "+1.23 %"; null -> "–"
export function pct(p) {
  if (p === null || p === undefined || Number.isNaN(p)) return '–';
  return (p > 0 ? '+' : p < 0 ? '−' : '±') + Math.abs(p).toFixed(2) + ' %';
}

// A change's class: a regression (more cycles) or an improvement beyond the threshold.
export function changeClass(p, threshold) {
  if (p === null || p === undefined) return '';
  const t = threshold ?? 0;
  if (p > t) return 'worse';
  if (p < -t) return 'better';
  return '';
}

// Times come as ISO text or seconds / milliseconds since the epoch.
export function toDate(v) {
  if (v === null || v === undefined || v === '') return null;
  if (typeof v === 'number') return new Date(v > 1e12 ? v : v * 1000);
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? null : d;
}

export function when(v) {
  const d = toDate(v);
  return d ? d.toISOString().slice(0, 16).replace('T', ' ') + ' UTC' : '–';
}

// 1234 -> "1.2 s"
export function dur(ms) {
  if (ms === null || ms === undefined) return '–';
  if (ms < 1000) return Math.round(ms) + ' ms';
  if (ms < 60000) return (ms / 1000).toFixed(1) + ' s';
  const m = Math.floor(ms / 60000);
  return m + ' min ' + Math.round((ms % 60000) / 1000) + ' s';
}

export function firstLine(s) {
  return s ? String(s).split('\n', 1)[0] : '';
}

// The one tooltip of the page: show(text lines, x, y) / hide().
export const tip = {
  show(lines, x, y) {
    const t = document.getElementById('tip');
    t.replaceChildren(...lines.map((l, i) => h('div', { class: i === 0 ? 'tip-head' : '' }, l)));
    t.hidden = false;
    const w = t.offsetWidth;
    const left = Math.min(x + 14, window.scrollX + document.documentElement.clientWidth - w - 8);
    t.style.left = Math.max(window.scrollX + 4, left) + 'px';
    t.style.top = y + 14 + 'px';
  },
  hide() {
    document.getElementById('tip').hidden = true;
  },
};

export function table(head, rows, cls) {
  return h('table', { class: cls },
    h('thead', null, h('tr', null, head.map((c) => h('th', typeof c === 'string' ? null : c.attrs, typeof c === 'string' ? c : c.text)))),
    h('tbody', null, rows));
}
