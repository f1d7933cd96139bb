// A run: its state and timings, the comparison of base and head per
// benchmark, the proposal's diff, the verification log, the agent's tool
// calls as a timeline, usage and cost of a managed run, the pull request, and
// the approve / cancel buttons when the user may press them.
import { api, changeClass, dur, enc, h, num, pct, post, s, shortSha, table, tip, when } from './util.js';

const ACTIVE = new Set(['queued', 'waiting', 'running', 'cancelling']);

export async function render(main, [id]) {
  const run = await api(`/runs/${enc(id)}`);
  document.title = `Run ${run.id} · perfbot`;
  main.replaceChildren(...page(run));
  if (ACTIVE.has(run.state)) {
    // follow a run that is still going; stop when the page is left
    setTimeout(() => { if (document.getElementById('run-state')) render(main, [id]).catch(() => {}); }, 5000);
  }
}

function page(run) {
  const repo = run.repository;
  const [owner, name, extra] = repo ? repo.split('/') : [];
  const out = [
    h('p', { class: 'crumbs' }, owner && name && extra === undefined ? h('a', { href: `/ui/repos/${enc(owner)}/${enc(name)}` }, repo) : repo || 'this machine',
      ` · ${run.kind} run`),
    h('h1', null, `Run ${run.id} `, h('span', { id: 'run-state', class: `state s-${run.state}` }, run.state)),
    h('dl', { class: 'facts' },
      fact('Commit', h('span', { class: 'sha' }, shortSha(run.sha))),
      fact('Trigger', run.trigger || '–'),
      fact('Created', when(run.created_at)),
      fact('Finished', when(run.finished_at)),
      run.reason ? fact('Reason', run.reason) : '',
      run.pull ? fact('Pull request', /^https?:\/\//.test(run.pull.url || '')
        ? h('a', { href: run.pull.url, id: 'pull-link' }, `#${run.pull.number}`)
        : h('span', { id: 'pull-link' }, `#${run.pull.number}`), ` (${run.pull.state})`) : ''),
    actions(run),
  ];
  if (run.timings) out.push(h('h2', null, 'Timings'), timings(run.timings));
  if (run.comparison && run.comparison.length) out.push(h('h2', null, 'Before and after'), comparison(run));
  else if (run.measurements && run.measurements.length) {
    // nothing to compare with: the profiles measured
    out.push(h('h2', null, 'Measurements'), table(['Benchmark', 'Side', 'Profile'], run.measurements.map((m) => h('tr', null,
      h('td', null, m.benchmark), h('td', null, m.side), h('td', null, h('a', { href: `/ui/measurements/${enc(m.id)}` }, 'profile')))),
    'list measurements'));
  }
  if (run.diff) out.push(h('h2', null, 'Proposed change'), diff(run.diff));
  if (run.verification_log) out.push(h('h2', null, 'Verification'), h('pre', { class: 'log' }, run.verification_log));
  if (run.tool_calls && run.tool_calls.length) out.push(h('h2', null, 'Agent tool calls'), timeline(run.tool_calls));
  if (run.managed) out.push(h('h2', null, 'Managed agent'), managed(run.managed));
  return out;
}

function fact(k, ...v) {
  return [h('dt', null, k), h('dd', null, ...v)];
}

function actions(run) {
  const box = h('div', { class: 'actions' });
  const status = h('span', { class: 'status', role: 'status' });
  const button = (label, verb, cls) => h('button', {
    type: 'button', class: cls, id: `run-${verb}`,
    onclick: async (ev) => {
      const b = ev.currentTarget;
      for (const x of box.querySelectorAll('button')) x.disabled = true;
      status.className = 'status';
      status.textContent = verb === 'approve' ? 'Opening the pull request…' : 'Cancelling…';
      try {
        const r = await post(`/api/v1/runs/${enc(run.id)}/${verb}`);
        status.textContent = r.message || (verb === 'approve' ? 'Approved: opening the pull request…' : `Done: ${r.state || 'accepted'}.`);
        follow(run.id, verb);
      } catch (e) {
        status.className = 'status error';
        status.textContent = e.message;
        b.disabled = false;
      }
    },
  }, label);
  if (run.can_approve && !run.pull) box.append(button('Open pull request', 'approve', 'primary'));
  if (run.can_cancel) box.append(button('Cancel run', 'cancel', 'danger'));
  if (!box.childElementCount) return '';
  box.append(status);
  return box;
}

// After a button: reads the run again until the change shows (its pull
// request, or a state that ended), then draws the page again.
async function follow(id, verb) {
  for (let i = 0; i < 40; i++) {
    await new Promise((res) => setTimeout(res, 1000));
    if (!document.getElementById('run-state')) return; // the page was left
    const run = await api(`/runs/${enc(id)}`).catch(() => null);
    if (run && (verb === 'approve' ? run.pull || !ACTIVE.has(run.state) && run.state !== 'proposal' : !ACTIVE.has(run.state))) {
      document.getElementById('main').replaceChildren(...page(run));
      return;
    }
  }
}

function timings(t) {
  const parts = [['Queued', t.queued_ms], ['Baseline', t.baseline_ms], ['Agent', t.agent_ms], ['Verification', t.verify_ms]]
    .filter(([, v]) => v !== null && v !== undefined);
  return h('dl', { class: 'facts timings' },
    parts.map(([k, v]) => fact(k, dur(v))),
    fact('Total', h('strong', null, dur(t.total_ms))));
}

function comparison(run) {
  const prof = new Map((run.measurements || []).map((m) => [`${m.benchmark}\0${m.side}`, m.id]));
  const max = Math.max(...run.comparison.map((c) => Math.max(c.base || 0, c.head || 0)), 1);
  const bar = (c) => {
    const w = 120;
    const g = s('svg', { width: w, height: 14, class: 'bars', 'aria-hidden': 'true' });
    if (c.base !== null && c.base !== undefined) g.append(s('rect', { x: 0, y: 1, height: 5, width: Math.max(1, (c.base / max) * w).toFixed(1), class: 'b-base' }));
    if (c.head !== null && c.head !== undefined) g.append(s('rect', { x: 0, y: 8, height: 5, width: Math.max(1, (c.head / max) * w).toFixed(1), class: 'b-head ' + changeClass(c.change_pct, 0) }));
    return g;
  };
  const link = (c, side, v) => {
    const m = prof.get(`${c.name}\0${side}`);
    return m !== undefined ? h('a', { href: `/ui/measurements/${enc(m)}`, title: `${side} profile` }, num(v)) : num(v);
  };
  const rows = run.comparison.map((c) => h('tr', null,
    h('td', null, c.name),
    h('td', { class: 'num' }, link(c, 'base', c.base)),
    h('td', { class: 'num' }, link(c, 'head', c.head)),
    h('td', { class: 'num ' + changeClass(c.change_pct, 0) }, pct(c.change_pct)),
    h('td', null, bar(c)),
    h('td', null, prof.has(`${c.name}\0base`) || prof.has(`${c.name}\0head`)
      ? h('a', { href: `/ui/runs/${enc(run.id)}/flame?benchmark=${enc(c.name)}` }, 'flame graph') : '')));
  return table(['Benchmark', { text: 'Before', attrs: { class: 'num' } }, { text: 'After', attrs: { class: 'num' } },
    { text: 'Change', attrs: { class: 'num' } }, '', ''], rows, 'list comparison');
}

// A unified diff, each line coloured by its first character.
export function diff(text) {
  const pre = h('pre', { class: 'diff' });
  let file = true;
  for (const line of text.replace(/\n$/, '').split('\n')) {
    let cls = 'ctx';
    if (line.startsWith('diff ') || line.startsWith('index ')) { cls = 'file'; file = true; }
    else if (file && (line.startsWith('--- ') || line.startsWith('+++ '))) cls = 'file';
    else if (line.startsWith('@@')) { cls = 'hunk'; file = false; }
    else if (line.startsWith('+')) cls = 'add';
    else if (line.startsWith('-')) cls = 'del';
    else if (line.startsWith('\\')) cls = 'meta';
    pre.append(h('span', { class: cls }, line + '\n'));
  }
  return pre;
}

function timeline(calls) {
  const end = Math.max(...calls.map((c) => (c.started_ms || 0) + (c.duration_ms || 0)), 1);
  const W = 720;
  const L = 150;
  const R = 70;
  const row = 16;
  const svg = s('svg', { class: 'timeline', viewBox: `0 0 ${W} ${calls.length * row + 18}`, role: 'img', 'aria-label': `${calls.length} tool calls` });
  const x = (ms) => L + (ms / end) * (W - L - R);
  calls.forEach((c, i) => {
    const y = i * row;
    const g = s('g', { class: 'call' + (c.error ? ' failed' : '') },
      s('text', { x: L - 6, y: y + 12, 'text-anchor': 'end' }, c.tool),
      s('rect', { x: x(c.started_ms || 0).toFixed(1), y: y + 3, height: row - 5, width: Math.max(2, x(c.duration_ms || 0) - L).toFixed(1) }),
      s('text', { x: (x((c.started_ms || 0) + (c.duration_ms || 0)) + 4).toFixed(1), y: y + 12, class: 'd' }, dur(c.duration_ms)));
    g.addEventListener('mousemove', (ev) => tip.show([c.tool, `at ${dur(c.started_ms)}, took ${dur(c.duration_ms)}`, c.error ? `error: ${c.error}` : 'ok'], ev.pageX, ev.pageY));
    g.addEventListener('mouseleave', () => tip.hide());
    svg.append(g);
  });
  svg.append(s('text', { x: L, y: calls.length * row + 14, class: 'axis' }, '0'),
    s('text', { x: W - R, y: calls.length * row + 14, class: 'axis', 'text-anchor': 'end' }, dur(end)));
  const failed = calls.filter((c) => c.error);
  return h('div', null, svg,
    h('p', { class: 'muted' }, `${calls.length} calls, ${failed.length} failed`),
    failed.length ? table(['Tool', 'At', 'Error'], failed.map((c) => h('tr', null, h('td', null, c.tool), h('td', null, dur(c.started_ms)), h('td', { class: 'error' }, c.error))), 'list') : '');
}

function managed(m) {
  const usage = Object.entries(m.usage || {}).flatMap(([k, v]) => (v && typeof v === 'object'
    ? Object.entries(v).map(([k2, v2]) => [`${k}.${k2}`, v2]) : [[k, v]]));
  return h('dl', { class: 'facts' },
    fact('Session', h('code', null, m.session_id || '–')),
    fact('Agent version', String(m.agent_version ?? '–')),
    usage.map(([k, v]) => fact(k.replace(/_/g, ' '), typeof v === 'number' ? num(v) : String(v))),
    fact('Cost at list prices', m.list_cost_usd === null || m.list_cost_usd === undefined ? '–' : `$${Number(m.list_cost_usd).toFixed(4)}`));
}
