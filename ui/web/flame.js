// A flame graph of a callgrind profile as SVG, the root on top and each
// callee below its caller, widths by inclusive cost.  Differential when given
// two trees (base and head): the trees are merged by call path, widths by the
// larger side, colour by the change (red: head costs more, blue: less).
// Clicking a frame zooms into it; frames narrower than a pixel are left out.
import { h, num, pct, s, tip } from './util.js';

const ROW = 18;

// {name, value, children} x2 -> one tree of {name, base, head, children}
export function merge(base, head) {
  const node = (name) => ({ name, base: 0, head: 0, kids: new Map() });
  const root = node('all');
  const add = (into, t, side) => {
    into[side] += t.value || 0;
    for (const c of t.children || []) {
      if (!into.kids.has(c.name)) into.kids.set(c.name, node(c.name));
      add(into.kids.get(c.name), c, side);
    }
  };
  if (base) add(root, base, 'base');
  if (head) add(root, head, 'head');
  const finish = (n) => ({ name: n.name, base: n.base, head: n.head, children: [...n.kids.values()].map(finish) });
  return finish(root);
}

// One tree (no comparison) in the same shape, head = value.
export function single(t) {
  const conv = (n) => ({ name: n.name, base: null, head: n.value || 0, children: (n.children || []).map(conv) });
  return conv(t);
}

function hue(name) {
  let x = 0;
  for (let i = 0; i < name.length; i++) x = (x * 31 + name.charCodeAt(i)) >>> 0;
  return x;
}

function colour(n, diff) {
  if (!diff) {
    const x = hue(n.name);
    return `hsl(${20 + (x % 35)}, ${70 + (x % 20)}%, ${58 + ((x >> 8) % 14)}%)`;
  }
  const b = n.base || 0;
  const d = (n.head - b) / Math.max(b, 1);
  const k = Math.min(1, Math.abs(d) / 0.5);
  if (Math.abs(d) < 0.005) return 'hsl(0, 0%, 88%)';
  return d > 0 ? `hsl(0, ${40 + 50 * k}%, ${88 - 30 * k}%)` : `hsl(215, ${40 + 50 * k}%, ${88 - 30 * k}%)`;
}

// A frame's width: its larger side, and never less than its callees' (the two
// sides' callees may differ, and a profile's tree need not add up exactly).
function sizes(n, diff) {
  let kids = 0;
  for (const c of n.children) kids += sizes(c, diff);
  n.w = Math.max(diff ? Math.max(n.head, n.base || 0) : n.head, kids);
  return n.w;
}
const width = (n) => n.w;

// tree from merge() or single(); returns an element that redraws on zoom.
export function flame(tree, { diff = false, unit = 'cycles' } = {}) {
  const box = h('div', { class: 'flame' });
  sizes(tree, diff);
  const total = width(tree) || 1;
  const draw = (root, trail) => {
    const W = Math.max(320, box.clientWidth || document.getElementById('main').clientWidth || 960);
    const scale = W / (width(root) || 1);
    const rects = [];
    let depth = 0;
    const walk = (n, x, d) => {
      const w = width(n) * scale;
      if (w < 1) return;
      depth = Math.max(depth, d + 1);
      rects.push({ n, x, d, w });
      let cx = x;
      for (const c of n.children) {
        walk(c, cx, d + 1);
        cx += width(c) * scale;
      }
    };
    walk(root, 0, 0);
    const svg = s('svg', { class: 'flame-svg', width: W, height: depth * ROW, viewBox: `0 0 ${W} ${depth * ROW}` });
    for (const r of rects) {
      const g = s('g', { class: 'frame', transform: `translate(${r.x.toFixed(1)},${r.d * ROW})` },
        s('rect', { width: Math.max(0.5, r.w - 0.5).toFixed(1), height: ROW - 1, fill: colour(r.n, diff) }));
      const chars = Math.floor((r.w - 6) / 6.6);
      if (chars >= 3) {
        g.append(s('text', { x: 3, y: ROW - 5 }, r.n.name.length > chars ? r.n.name.slice(0, chars - 1) + '…' : r.n.name));
      }
      g.addEventListener('mousemove', (ev) => {
        const n = r.n;
        const lines = [n.name, `${num(n.head)} ${unit} · ${((n.head / (tree.head || total)) * 100).toFixed(2)} % of all`];
        if (diff) lines.push(`base ${num(n.base)} → head ${num(n.head)} (${pct(n.base ? ((n.head - n.base) / n.base) * 100 : null)})`);
        tip.show(lines, ev.pageX, ev.pageY);
      });
      g.addEventListener('mouseleave', () => tip.hide());
      g.addEventListener('click', () => {
        tip.hide();
        if (r.n !== root) draw(r.n, [...trail, root]);
      });
      svg.append(g);
    }
    const crumbs = trail.length
      ? h('p', { class: 'crumbs' }, h('button', { type: 'button', class: 'link', onclick: () => draw(trail[0], []) }, 'Reset zoom'),
        ` · ${root.name}`)
      : '';
    box.replaceChildren(crumbs, svg);
  };
  // drawn once the box is in the page (its width is known then)
  requestAnimationFrame(() => draw(tree, []));
  return box;
}
