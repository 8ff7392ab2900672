// The console's shell: hash routes (nothing secret ever goes in the URL), the
// navigation for a tenant or the admin, the error banner, sign-in and out.

import { api, clearSession, onApiFailure, session, setSession, ApiError } from './api.js';
import { clear, describeError, h, statusLine } from './dom.js';
import { tasksPage, taskPage } from './pages/tasks.js';
import { promptPage } from './pages/prompts.js';
import { jobsPage, jobPage } from './pages/jobs.js';
import { playgroundPage } from './pages/playground.js';
import { serverPage } from './pages/server.js';
import { tenantsPage, tenantPage } from './pages/admin.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
const banner = document.getElementById('banner');

// role: 'tenant' | 'admin' | 'any' (signed in) | 'public'
const ROUTES = [
  { re: /^\/signin$/, page: signinPage, role: 'public' },
  { re: /^\/tasks$/, page: tasksPage, role: 'tenant' },
  { re: /^\/tasks\/([^/]+)$/, page: taskPage, role: 'tenant' },
  { re: /^\/tasks\/([^/]+)\/prompts\/([^/]+)$/, page: promptPage, role: 'tenant' },
  { re: /^\/jobs$/, page: jobsPage, role: 'tenant' },
  { re: /^\/jobs\/([^/]+)$/, page: jobPage, role: 'tenant' },
  { re: /^\/playground$/, page: playgroundPage, role: 'tenant' },
  { re: /^\/server$/, page: serverPage, role: 'any' },
  { re: /^\/admin\/tenants$/, page: tenantsPage, role: 'admin' },
  { re: /^\/admin\/tenants\/([^/]+)$/, page: tenantPage, role: 'admin' },
];

const NAV = {
  tenant: [['#/tasks', 'Tasks'], ['#/jobs', 'Training jobs'], ['#/playground', 'Playground'], ['#/server', 'Server']],
  admin: [['#/admin/tenants', 'Tenants'], ['#/server', 'Server']],
};

let signInMessage = null;
let cleanups = [];
let generation = 0;
let bannerTimer = null;

function home(s) { return s?.role === 'admin' ? '#/admin/tenants' : '#/tasks'; }

export function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function showBanner(text, kind = 'error', seconds = null) {
  clearInterval(bannerTimer);
  banner.className = kind === 'error' ? '' : kind;
  banner.hidden = false;
  if (seconds === null || !Number.isFinite(seconds)) { banner.textContent = text; return; }
  // A 429 says when to come back: count down to it.
  let left = Math.max(0, Math.round(seconds));
  const paint = () => { banner.textContent = `${text} Retry after ${left} s.`; };
  paint();
  bannerTimer = setInterval(() => { left--; if (left <= 0) { clearInterval(bannerTimer); banner.textContent = `${text} You can retry now.`; } else paint(); }, 1000);
}

function hideBanner() { clearInterval(bannerTimer); banner.hidden = true; banner.textContent = ''; }

onApiFailure((err) => {
  if (err.status === 401 && session()) {
    clearSession();
    signInMessage = { error: true, text: `Signed out: the server refused the key (${err.code}: ${err.message}). Sign in again.` };
    go('#/signin');
  } else if (err.status === 429) {
    showBanner(`Too many requests (${err.code}): ${err.message}.`, 'error', err.retryAfter);
  } else if (err.status === 0 || err.status >= 500) {
    showBanner(describeError(err));
  }
});

function renderChrome(s, path) {
  clear(nav);
  clear(who);
  if (!s) return;
  for (const [href, text] of NAV[s.role] ?? []) {
    nav.append(h('a', { href, class: path.startsWith(href.slice(1)) ? 'active' : null }, text));
  }
  who.append(
    h('span', { id: 'who-name' }, s.role === 'admin' ? 'admin' : `tenant ${s.name}`),
    h('button', { id: 'signout', type: 'button', onclick: signOut }, 'Sign out'),
  );
}

function signOut() {
  clearSession();
  signInMessage = { error: false, text: 'Signed out.' };
  go('#/signin');
}

async function route() {
  const gen = ++generation;
  for (const fn of cleanups) { try { fn(); } catch { /* a page's cleanup must not stop navigation */ } }
  cleanups = [];
  const path = (location.hash || '#/').slice(1);
  const s = session();
  const match = ROUTES.map((r) => ({ r, m: r.re.exec(path) })).find((x) => x.m);
  if (!match) { go(s ? home(s) : '#/signin'); return; }
  const { r, m } = match;
  if (r.role !== 'public' && !s) { go('#/signin'); return; }
  if (s && r.role !== 'public' && r.role !== 'any' && r.role !== s.role) { go(home(s)); return; }
  if (r.role !== 'public') hideBanner();
  renderChrome(r.role === 'public' ? null : s, path);
  clear(main);
  const ctx = {
    onLeave(fn) { cleanups.push(fn); },
    isCurrent() { return gen === generation; },
    go,
    banner: showBanner,
  };
  try {
    await r.page(main, m.slice(1).map(decodeURIComponent), ctx);
  } catch (err) {
    if (!ctx.isCurrent()) return;
    if (err instanceof ApiError && err.status === 401) return; // already sent to sign-in
    clear(main);
    if (err instanceof ApiError && err.status === 404) {
      main.append(h('div', { class: 'notfound card', id: 'not-found' },
        h('h1', {}, 'Not found'),
        h('p', {}, `${err.code}: ${err.message}`),
        h('p', {}, h('a', { href: home(s) }, 'Back'))));
    } else {
      main.append(h('div', { class: 'card', id: 'page-error' }, h('h1', {}, 'Something went wrong'), h('p', {}, describeError(err))));
    }
  }
}

async function signinPage(root) {
  const status = statusLine();
  if (signInMessage) {
    if (signInMessage.error) status.error(signInMessage.text);
    else status.ok(signInMessage.text);
    signInMessage = null;
  }
  const keyInput = h('input', { type: 'password', name: 'key', id: 'key', autocomplete: 'off', spellcheck: 'false', required: true, placeholder: 'ss_… or the admin key' });
  const form = h('form', { class: 'stack', id: 'signin-form', novalidate: true },
    h('label', { for: 'key' }, 'API key'), keyInput,
    h('div', { class: 'full' }, h('button', { type: 'submit' }, 'Sign in')),
    h('div', { class: 'full' }, status.el));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const key = keyInput.value.trim();
    if (!key) { status.error('Enter a key.'); return; }
    status.busy('Checking the key…');
    try {
      const me = await api('GET', '/v1/whoami', { key, quiet: true });
      setSession({ key, role: 'tenant', name: me.name, id: me.id });
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 403) { status.error(err); return; }
      // 403 on a tenant route: perhaps the admin key.
      try {
        await api('GET', '/v1/tenants', { key, quiet: true });
        setSession({ key, role: 'admin', name: 'admin' });
      } catch (err2) { status.error(err2); return; }
    }
    keyInput.value = '';
    go(home(session()));
  });
  root.append(h('div', { class: 'signin card' },
    h('h1', {}, 'Sign in'),
    h('p', { class: 'muted' }, 'A tenant API key opens its tasks, prompts, jobs and playground; the admin key opens tenants, keys and usage. The key stays in this tab (sessionStorage) until you sign out or close it.'),
    form));
  keyInput.focus();
}

window.addEventListener('hashchange', route);
route();
