// Reads `perfbot bench --json` documents (one file per run, given as
// arguments) and prints per benchmark the counts of every run, whether they
// are identical, and the spread of the wall-clock time of the same runs.
'use strict';
const fs = require('fs');
const runs = process.argv.slice(2).map((f) => JSON.parse(fs.readFileSync(f, 'utf8')));
const names = runs.length ? (runs[0].benchmarks || []).map((b) => b.name) : [];
if (names.length === 0) {
  // "identical" would hold for nothing at all
  console.error(`no benchmarks measured in ${process.argv.slice(2).join(' ') || '(no documents given)'}`);
  process.exit(1);
}
let allSame = true;
for (const name of names) {
  const rows = runs.map((r) => (r.benchmarks || []).find((b) => b.name === name));
  const missing = rows.flatMap((b, i) => (b && b.status === 'ok' ? [] : [`run ${i + 1}: ${b ? b.error || b.status : 'absent'}`]));
  if (missing.length) {
    console.log(`${name}\n  not measured in every run: ${missing.join('; ')}`);
    allSame = false;
    continue;
  }
  const ins = rows.map((b) => b.instructions), cyc = rows.map((b) => b.estimated_cycles), wall = rows.map((b) => b.wall_ms);
  const same = new Set(ins).size === 1 && new Set(cyc).size === 1;
  allSame = allSame && same;
  const mean = wall.reduce((a, b) => a + b, 0) / wall.length;
  const spread = ((Math.max(...wall) - Math.min(...wall)) * 100) / mean;
  console.log(`${name}`);
  rows.forEach((b, i) => console.log(`  run ${i + 1}: instructions ${b.instructions}  estimated cycles ${b.estimated_cycles}  wall ${b.wall_ms} ms`));
  console.log(`  counts identical: ${same ? 'yes' : 'NO'}; wall-clock spread ${spread.toFixed(1)}% (min ${Math.min(...wall)} ms, max ${Math.max(...wall)} ms)`);
}
process.exit(allSame ? 0 : 1);
