// A repository: the chosen metric of every benchmark over a branch's commits
// (one chart each), the benchmarks' latest values and changes, recent runs.
import { chart } from './chart.js';
import { api, changeClass, enc, h, num, pct, shortSha, table, when } from './util.js';

const METRICS = [['cycles', 'Estimated cycles'], ['instructions', 'Instructions']];
const LIMITS = [200, 1000, 5000];

export async function render(main, [owner, name], query) {
  const base = `/repositories/${enc(owner)}/${enc(name)}`;
  const metric = METRICS.some(([m]) => m === query.get('metric')) ? query.get('metric') : 'cycles';
  const limit = LIMITS.includes(Number(query.get('limit'))) ? Number(query.get('limit')) : 200;
  const q = new URLSearchParams({ metric, limit });
  const branch = query.get('branch');
  if (branch) q.set('branch', branch);
  document.title = `${owner}/${name} · perfbot`;

  const [series, benches, runs] = await Promise.all([
    api(`${base}/series?${q}`),
    api(`${base}/benchmarks?${q}`),
    api(`${base}/runs?limit=20`).catch(() => ({ runs: [] })),
  ]);
  const threshold = series.threshold_pct;

  const submit = (ev) => ev.target.form.requestSubmit();
  const form = h('form', { class: 'controls', method: 'get', action: location.pathname },
    h('label', null, 'Branch ', h('input', { name: 'branch', value: series.branch || '', size: 16, spellcheck: 'false' })),
    h('label', null, 'Metric ', h('select', { name: 'metric', onchange: submit },
      METRICS.map(([v, t]) => h('option', { value: v, selected: v === metric }, t)))),
    h('label', null, 'Commits ', h('select', { name: 'limit', onchange: submit },
      LIMITS.map((v) => h('option', { value: v, selected: v === limit }, String(v))))),
    h('button', { type: 'submit' }, 'Show'));

  const unit = metric === 'cycles' ? 'estimated cycles' : 'instructions';
  const byName = new Map(series.series.map((x) => [x.benchmark, x]));
  const rows = benches.benchmarks.map((b) => h('tr', null,
    h('td', null, byName.has(b.name) ? h('a', { href: `#bench-${enc(b.name)}` }, b.name) : b.name),
    h('td', { class: 'num' }, num(b.latest)),
    h('td', { class: 'num ' + changeClass(b.change_10_pct, threshold) }, pct(b.change_10_pct)),
    h('td', { class: 'num ' + changeClass(b.change_100_pct, threshold) }, pct(b.change_100_pct))));

  const charts = series.series.map((x) => {
    const marks = series.marks.filter((m) => m.benchmark === x.benchmark);
    return h('figure', { class: 'chart-box', id: `bench-${enc(x.benchmark)}` },
      h('figcaption', null, h('span', { class: 'bench' }, x.benchmark),
        marks.length ? h('span', { class: 'muted' }, ` · ${marks.length} marked`) : ''),
      chart({ name: x.benchmark, commits: series.commits, values: x.values, marks, metric: unit }));
  });

  const runRows = runs.runs.map((r) => h('tr', null,
    h('td', null, h('a', { href: `/ui/runs/${enc(r.id)}` }, `#${r.id}`)),
    h('td', null, r.kind),
    h('td', null, h('span', { class: `state s-${r.state}` }, r.state)),
    h('td', { class: 'sha' }, shortSha(r.sha)),
    h('td', null, r.trigger || ''),
    h('td', { class: 'muted' }, when(r.created_at))));

  main.replaceChildren(
    h('h1', null, `${owner}/${name}`),
    form,
    h('p', { class: 'muted' },
      `${series.commits.length} commits of ${series.branch} · ${unit} · changes beyond ±${threshold ?? '?'} % are marked: `,
      h('span', { class: 'key reg' }, 'regression'), ' ', h('span', { class: 'key imp' }, 'improvement')),
    series.commits.length
      ? h('div', { class: 'charts' }, charts)
      : h('p', { class: 'notice' }, 'No measured commits on this branch yet.'),
    h('h2', null, 'Benchmarks'),
    table(['Benchmark', { text: `Latest (${unit})`, attrs: { class: 'num' } },
      { text: 'Last 10 commits', attrs: { class: 'num' } }, { text: 'Last 100 commits', attrs: { class: 'num' } }], rows, 'list benchmarks'),
    h('h2', null, 'Recent runs'),
    runRows.length
      ? table(['Run', 'Kind', 'State', 'Commit', 'Trigger', 'Created'], runRows, 'list runs')
      : h('p', { class: 'muted' }, 'No runs yet.'));
  // the page is usable from the next frame on (bench/ui reads this mark)
  requestAnimationFrame(() => performance.mark('perfbot:charts'));
}
