// The dashboard's entry: the account links in the header, then the page for
// this URL (each page is its own module, loaded on demand).  Any /ui/... path
// serves index.html, so the path alone picks the page.
import { h, me, post, signInHref } from './util.js';

const routes = [
  [/^\/ui\/?$/, () => import('./repos.js')],
  [/^\/ui\/(?:repos|r)\/([^/]+)\/([^/]+)\/?$/, () => import('./repo.js')],
  [/^\/ui\/runs\/([^/]+)\/?$/, () => import('./run.js')],
  [/^\/ui\/runs\/([^/]+)\/flame\/?$/, () => import('./profile.js'), 'diff'],
  [/^\/ui\/measurements\/([^/]+)\/?$/, () => import('./profile.js'), 'profile'],
];

async function account() {
  const nav = document.getElementById('user');
  let user = null;
  try {
    user = await me();
  } catch {
    // the page says what went wrong
  }
  if (user && user.login) {
    const out = h('button', { type: 'button', class: 'link', id: 'sign-out' }, 'Sign out');
    out.addEventListener('click', async () => {
      out.disabled = true;
      try {
        await post('/auth/logout').catch(() => {});
      } finally {
        location.assign('/ui/');
      }
    });
    nav.replaceChildren(
      // only where the Content-Security-Policy lets images come from
      /^https:\/\/avatars\.githubusercontent\.com\//.test(user.avatar_url || '')
        ? h('img', { src: user.avatar_url, alt: '', class: 'avatar', width: 20, height: 20 }) : '',
      h('span', { class: 'login' }, user.login),
      out);
  } else {
    nav.replaceChildren(
      user && user.local ? h('span', { class: 'muted' }, 'this machine · ') : '',
      h('a', { href: signInHref(), id: 'sign-in' }, 'Sign in with GitHub'));
  }
}

export function showError(main, e) {
  document.title = 'perfbot';
  if (e && e.status === 401) {
    main.replaceChildren(h('section', { class: 'notice' },
      h('h1', null, 'Sign in'),
      h('p', null, 'The dashboard shows the repositories your GitHub account can read.'),
      h('p', null, h('a', { class: 'button', href: signInHref() }, 'Sign in with GitHub'))));
  } else if (e && e.status === 404) {
    main.replaceChildren(h('section', { class: 'notice' },
      h('h1', null, 'Not found'),
      h('p', null, 'There is nothing here you can see. ', h('a', { href: '/ui/' }, 'Repositories'))));
  } else {
    main.replaceChildren(h('section', { class: 'notice' },
      h('h1', null, 'Something went wrong'),
      h('p', { class: 'error' }, (e && e.message) || String(e))));
  }
}

async function route() {
  const main = document.getElementById('main');
  const path = location.pathname;
  for (const [re, load, mode] of routes) {
    const m = re.exec(path);
    if (!m) continue;
    try {
      const page = await load();
      const params = m.slice(1).map(decodeURIComponent);
      await page.render(main, params, new URLSearchParams(location.search), mode);
    } catch (e) {
      showError(main, e);
    }
    return;
  }
  showError(main, { status: 404 });
}

account();
route();
