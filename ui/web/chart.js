// One benchmark's values over a branch's commits, as a small SVG: a line, a
// point per measured commit (a link to its run), regressions and improvements
// beyond the threshold marked, and the commit under the pointer in the
// tooltip.  Past DENSE commits only the marked points are drawn (the line
// still shows every value; pointing and clicking pick the nearest commit).
import { compact, enc, firstLine, num, pct, s, shortSha, tip, when } from './util.js';

const W = 640;
const H = 170;
const PAD = { l: 62, r: 10, t: 10, b: 22 };
const DENSE = 1000;

// commits: [{sha, author, message, at, run_id}], values: aligned numbers or
// null, marks: [{index, kind, change_pct}] of this benchmark.
export function chart({ name, commits, values, marks, metric }) {
  const n = values.length;
  const present = values.filter((v) => v !== null && v !== undefined);
  let lo = Math.min(...present);
  let hi = Math.max(...present);
  if (!present.length) { lo = 0; hi = 1; }
  if (lo === hi) { lo -= 1; hi += 1; }
  const span = hi - lo;
  lo -= span * 0.08;
  hi += span * 0.08;
  const pw = W - PAD.l - PAD.r;
  const ph = H - PAD.t - PAD.b;
  const x = (i) => PAD.l + (n > 1 ? (i * pw) / (n - 1) : pw / 2);
  const y = (v) => PAD.t + ph - ((v - lo) / (hi - lo)) * ph;
  const markAt = new Map(marks.map((m) => [m.index, m]));

  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': `${name}: ${metric} over ${n} commits` });
  const grid = s('g', { class: 'grid' });
  // enough digits that the ticks differ: 3 for a wide range, more for a flat one
  const digits = Math.min(8, Math.max(3, Math.ceil(Math.log10(Math.abs(hi) / (hi - lo))) + 2));
  for (let k = 0; k <= 3; k++) {
    const v = lo + ((hi - lo) * k) / 3;
    const yy = y(v).toFixed(1);
    grid.append(s('line', { x1: PAD.l, x2: W - PAD.r, y1: yy, y2: yy }),
      s('text', { x: PAD.l - 6, y: yy, dy: '0.32em', 'text-anchor': 'end' }, compact(v, digits)));
  }
  if (n) {
    grid.append(s('text', { x: PAD.l, y: H - 6 }, shortSha(commits[0].sha)),
      s('text', { x: W - PAD.r, y: H - 6, 'text-anchor': 'end' }, shortSha(commits[n - 1].sha)));
  }
  svg.append(grid);

  let d = '';
  let pen = false;
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (v === null || v === undefined) { pen = false; continue; }
    d += (pen ? 'L' : 'M') + x(i).toFixed(1) + ' ' + y(v).toFixed(1);
    pen = true;
  }
  svg.append(s('path', { d, class: 'line' }));

  const dot = n <= 60 ? 3 : n <= 250 ? 2 : 1.5;
  // the marked points last, so that no neighbour covers them
  const points = s('g', { class: 'points' });
  const marked = s('g', { class: 'marks' });
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (v === null || v === undefined) continue;
    const m = markAt.get(i);
    if (n > DENSE && !m) continue;
    const c = s('circle', {
      cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: m ? 4.5 : dot,
      class: 'pt' + (m ? (m.kind === 'regression' ? ' reg' : ' imp') : ''), 'data-i': i,
    });
    const run = commits[i].run_id;
    (m ? marked : points).append(run !== null && run !== undefined
      ? s('a', { href: `/ui/runs/${enc(run)}`, 'aria-label': `${shortSha(commits[i].sha)}: ${num(v)}` }, c)
      : c);
  }
  svg.append(points, marked);
  const cursor = s('circle', { r: 6, class: 'cursor', visibility: 'hidden' });
  svg.append(cursor);

  const nearest = (ev) => {
    const box = svg.getBoundingClientRect();
    const px = ((ev.clientX - box.left) / box.width) * W;
    let i = n > 1 ? Math.round(((px - PAD.l) / pw) * (n - 1)) : 0;
    i = Math.max(0, Math.min(n - 1, i));
    // the closest commit that has a value
    for (let k = 0; k < n; k++) {
      for (const j of [i - k, i + k]) {
        if (j >= 0 && j < n && values[j] !== null && values[j] !== undefined) return j;
      }
    }
    return -1;
  };
  const show = (i, px, py) => {
    const c = commits[i];
    const m = markAt.get(i);
    cursor.setAttribute('cx', x(i).toFixed(1));
    cursor.setAttribute('cy', y(values[i]).toFixed(1));
    cursor.setAttribute('visibility', 'visible');
    tip.show([
      `${num(values[i])} ${metric}`,
      `${shortSha(c.sha)} · ${c.author || 'unknown author'}`,
      firstLine(c.message),
      when(c.at),
      m ? `${m.kind} ${pct(m.change_pct)}` : '',
    ].filter(Boolean), px, py);
  };
  svg.addEventListener('mousemove', (ev) => {
    const i = nearest(ev);
    if (i >= 0) show(i, ev.pageX, ev.pageY);
  });
  // a point reached with the keyboard shows its commit too
  svg.addEventListener('focusin', (ev) => {
    const c = ev.target.querySelector && ev.target.querySelector('circle.pt');
    if (!c) return;
    const box = c.getBoundingClientRect();
    show(Number(c.dataset.i), window.scrollX + box.right, window.scrollY + box.top);
  });
  svg.addEventListener('focusout', () => tip.hide());
  svg.addEventListener('mouseleave', () => {
    cursor.setAttribute('visibility', 'hidden');
    tip.hide();
  });
  svg.addEventListener('click', (ev) => {
    if (ev.target.closest('a')) return;
    const i = nearest(ev);
    const run = i >= 0 ? commits[i].run_id : null;
    if (run !== null && run !== undefined) location.assign(`/ui/runs/${enc(run)}`);
  });
  return svg;
}
