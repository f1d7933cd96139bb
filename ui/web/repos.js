// The repositories the user can read (of the App's installations): each with
// its last measurement and its open proposals.
import { api, enc, h, shortSha, table, when } from './util.js';

export async function render(main) {
  const { repositories } = await api('/repositories');
  document.title = 'Repositories · perfbot';
  if (!repositories.length) {
    main.replaceChildren(h('h1', null, 'Repositories'),
      h('p', { class: 'muted' }, 'No repositories yet. Install the App on a repository, or run perfbot bench on this machine.'));
    return;
  }
  const rows = repositories.map((r) => {
    const [owner, name] = r.full_name.split('/');
    const last = r.last_measurement;
    return h('tr', null,
      h('td', null, h('a', { href: `/ui/r/${enc(owner)}/${enc(name)}`, class: 'repo' }, r.full_name),
        r.private ? h('span', { class: 'badge' }, 'private') : ''),
      h('td', null, r.default_branch || '–'),
      h('td', null, last
        ? [h('a', { href: `/ui/runs/${enc(last.run_id)}`, class: 'sha' }, shortSha(last.sha)), ' ', h('span', { class: 'muted' }, when(last.at))]
        : h('span', { class: 'muted' }, 'not measured yet')),
      h('td', { class: 'num' }, r.open_proposals ? h('span', { class: 'badge proposal' }, String(r.open_proposals)) : '0'));
  });
  main.replaceChildren(h('h1', null, 'Repositories'),
    table(['Repository', 'Default branch', 'Last measurement', { text: 'Open proposals', attrs: { class: 'num' } }], rows, 'list'));
}
