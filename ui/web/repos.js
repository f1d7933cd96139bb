// The repositories the user can read (of the App's installations): each with
// its last measurement and its open proposals; for a browser on perfbot's
// machine, also the runs made there with `perfbot bench` / `perfbot optimize`.
import { api, enc, h, me, shortSha, signInHref, table, when } from './util.js';

export async function render(main) {
  const user = await me().catch(() => null);
  const [{ repositories }, local] = await Promise.all([
    api('/repositories'),
    user && user.local ? api('/runs?limit=50').catch(() => null) : null,
  ]);
  document.title = 'Repositories · perfbot';
  const localRuns = local && local.runs.length
    ? [h('h2', null, 'Runs on this machine'),
      table(['Run', 'Kind', 'State', 'Repository', 'Commit', 'Created'], local.runs.map((r) => h('tr', null,
        h('td', null, h('a', { href: `/ui/runs/${enc(r.id)}` }, `#${r.id}`)),
        h('td', null, r.kind),
        h('td', null, h('span', { class: `state s-${r.state}` }, r.state)),
        h('td', null, r.repository || '–'),
        h('td', { class: 'sha' }, shortSha(r.sha)),
        h('td', { class: 'muted' }, when(r.created_at)))), 'list runs')]
    : [];
  if (!repositories.length) {
    main.replaceChildren(h('h1', null, 'Repositories'),
      ...(user && user.login
        ? [h('p', { class: 'muted' }, 'None of the App\'s repositories is readable by your GitHub account yet. Install the App on a repository.')]
        : [h('p', { class: 'muted' }, 'Sign in with GitHub to see the repositories of the App\'s installations.'),
          h('p', null, h('a', { class: 'button', href: signInHref() }, 'Sign in with GitHub'))]),
      ...localRuns);
    return;
  }
  const rows = repositories.map((r) => {
    const [owner, name] = r.full_name.split('/');
    const last = r.last_measurement;
    return h('tr', null,
      h('td', null, h('a', { href: `/ui/repos/${enc(owner)}/${enc(name)}`, class: 'repo' }, r.full_name),
        r.private ? h('span', { class: 'badge' }, 'private') : ''),
      h('td', null, r.default_branch || '–'),
      h('td', null, last
        ? [h('a', { href: `/ui/runs/${enc(last.run_id)}`, class: 'sha' }, shortSha(last.sha)), ' ', h('span', { class: 'muted' }, when(last.at))]
        : h('span', { class: 'muted' }, 'not measured yet')),
      h('td', { class: 'num' }, r.open_proposals ? h('span', { class: 'badge proposal' }, String(r.open_proposals)) : '0'));
  });
  main.replaceChildren(h('h1', null, 'Repositories'),
    table(['Repository', 'Default branch', 'Last measurement', { text: 'Open proposals', attrs: { class: 'num' } }], rows, 'list repos'),
    ...localRuns);
}
