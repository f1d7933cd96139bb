// A measurement's callgrind profile: its function table (sortable) and flame
// graph; or, for a run and a benchmark, the differential flame graph of the
// base and head profiles.
import { flame, merge, single } from './flame.js';
import { api, enc, h, num, table } from './util.js';

export async function render(main, [id], query, mode) {
  if (mode === 'diff') return renderDiff(main, id, query.get('benchmark') || '');
  const p = await api(`/measurements/${enc(id)}/profile?limit=100`);
  document.title = `${p.benchmark} profile · perfbot`;
  const unit = p.metric || 'cycles';
  const total = p.flame ? p.flame.value : 0;
  let key = 'exclusive';
  const body = h('tbody');
  const fill = () => {
    const fns = [...p.functions].sort((a, b) => (b[key] ?? 0) - (a[key] ?? 0));
    body.replaceChildren(...fns.map((f) => h('tr', null,
      h('td', { class: 'fn' }, f.name),
      h('td', { class: 'muted file' }, f.file || ''),
      h('td', { class: 'num' }, num(f.exclusive)),
      h('td', { class: 'num' }, total ? ((f.exclusive / total) * 100).toFixed(2) + ' %' : '–'),
      h('td', { class: 'num' }, num(f.inclusive)))));
  };
  const sortBy = (k) => h('button', {
    type: 'button', class: 'link' + (k === key ? ' on' : ''),
    onclick: (ev) => {
      key = k;
      for (const b of ev.currentTarget.closest('tr').querySelectorAll('button')) b.classList.toggle('on', b === ev.currentTarget);
      fill();
    },
  }, k === 'exclusive' ? 'Self' : 'Inclusive');
  fill();
  main.replaceChildren(
    h('h1', null, `Profile of ${p.benchmark}`),
    h('p', { class: 'muted' }, `Measurement ${id} · ${unit} · ${num(total)} in all`),
    h('h2', null, 'Flame graph'),
    p.flame ? flame(single(p.flame), { unit }) : h('p', { class: 'muted' }, 'No call tree in this profile.'),
    h('h2', null, 'Functions'),
    h('table', { class: 'list functions' },
      h('thead', null, h('tr', null, h('th', null, 'Function'), h('th', null, 'File'),
        h('th', { class: 'num' }, sortBy('exclusive')), h('th', { class: 'num' }, 'Self %'),
        h('th', { class: 'num' }, sortBy('inclusive')))),
      body));
}

async function renderDiff(main, id, benchmark) {
  const t = await api(`/runs/${enc(id)}/flame?benchmark=${enc(benchmark)}`);
  document.title = `${benchmark} base vs head · perfbot`;
  const both = t.base && t.head;
  const tree = both ? merge(t.base, t.head) : single(t.head || t.base || { name: 'all', value: 0 });
  main.replaceChildren(
    h('h1', null, `${benchmark}: ${both ? 'base vs head' : t.head ? 'head' : 'base'}`),
    h('p', null, h('a', { href: `/ui/runs/${enc(id)}` }, `Run ${id}`),
      both ? [' · ', h('span', { class: 'key reg' }, 'costs more in head'), ' ', h('span', { class: 'key less' }, 'costs less')] : ''),
    t.base || t.head ? flame(tree, { diff: !!both }) : h('p', { class: 'muted' }, 'No profile for this benchmark.'),
    both ? h('h2', null, 'Largest changes') : '',
    both ? changes(tree) : '');
}

// The frames whose cost changed the most (by call path's last name, summed).
function changes(tree) {
  const by = new Map();
  const walk = (n) => {
    let cb = n.base;
    let ch = n.head;
    for (const c of n.children) { cb -= c.base; ch -= c.head; walk(c); }
    const e = by.get(n.name) || { base: 0, head: 0 };
    e.base += Math.max(0, cb);
    e.head += Math.max(0, ch);
    by.set(n.name, e);
  };
  walk(tree);
  const rows = [...by.entries()].map(([name, e]) => ({ name, ...e, d: e.head - e.base }))
    .filter((r) => r.d !== 0).sort((a, b) => Math.abs(b.d) - Math.abs(a.d)).slice(0, 20);
  return table(['Function', { text: 'Self, base', attrs: { class: 'num' } }, { text: 'Self, head', attrs: { class: 'num' } },
    { text: 'Change', attrs: { class: 'num' } }],
  rows.map((r) => h('tr', null, h('td', { class: 'fn' }, r.name), h('td', { class: 'num' }, num(r.base)),
    h('td', { class: 'num' }, num(r.head)), h('td', { class: 'num ' + (r.d > 0 ? 'worse' : 'better') }, (r.d > 0 ? '+' : '−') + num(Math.abs(r.d)))))
  , 'list');
}
