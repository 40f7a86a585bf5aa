// Entry point: session, hash router and the page frame (navigation, account, messages).
import { api, getAll, onUnauthorized, session } from './api.js';
import { announce, h } from './dom.js';
import { roleBadge } from './format.js';
import { renderSignIn } from './views/signin.js';
import { renderTicketList } from './views/tickets.js';
import { renderTicket } from './views/ticket.js';
import { renderNewTicket, clearDraft } from './views/new-ticket.js';
import { renderPeople } from './views/people.js';
import { renderJobs } from './views/jobs.js';
import { renderInbound } from './views/inbound.js';
import { renderSla } from './views/sla.js';
import { renderDashboard } from './views/dashboard.js';
import { renderAvailability } from './views/availability.js';
import { renderTriage } from './views/triage.js';

const APP_NAME = document.querySelector('meta[name="application-name"]').content;
const main = document.getElementById('main');
const nav = document.getElementById('nav');
const account = document.getElementById('account');

const state = { me: null, directory: null, view: 0 };

function isStaff() {
  return state.me && (state.me.role === 'moderator' || state.me.role === 'admin');
}

function homeFor(me) {
  return me.role === 'moderator' ? '#/queue' : '#/tickets';
}

function parseHash() {
  const raw = window.location.hash.replace(/^#/, '') || '/';
  const [path, query = ''] = raw.split('?');
  return { path, params: new URLSearchParams(query) };
}

function navItems(me) {
  if (me.role === 'admin') {
    return [['#/tickets', 'All tickets'], ['#/queue', 'My queue'], ['#/dashboard', 'Dashboard'],
      ['#/people', 'People'], ['#/jobs', 'Jobs'], ['#/inbound', 'Inbound mail'],
      ['#/triage', 'Triage quality'], ['#/sla', 'SLA'], ['#/new', 'New ticket'],
      ['#/availability', 'My availability']];
  }
  if (me.role === 'moderator') {
    return [['#/queue', 'My queue'], ['#/tickets', 'Filed by me'], ['#/new', 'New ticket'],
      ['#/availability', 'My availability']];
  }
  return [['#/tickets', 'My tickets'], ['#/new', 'New ticket']];
}

function renderFrame(path) {
  nav.replaceChildren();
  account.replaceChildren();
  if (!state.me) return;
  const list = h('ul', { class: 'nav-list' });
  for (const [href, label] of navItems(state.me)) {
    const target = href.slice(1);
    const current = path === target;
    list.append(h('li', null, h('a', { href, 'aria-current': current ? 'page' : null }, label)));
  }
  nav.append(list);
  account.append(
    h('span', { class: 'account-name' }, state.me.name || state.me.email),
    roleBadge(state.me.role),
    h('button', { type: 'button', class: 'button secondary small', id: 'sign-out', onclick: signOut }, 'Sign out'),
  );
}

/** What every view gets: who is signed in, and helpers bound to this render. */
function context(viewId) {
  return {
    me: state.me,
    appName: APP_NAME,
    isStaff: isStaff(),
    isAdmin: state.me && state.me.role === 'admin',
    get directory() { return state.directory; },
    alive: () => state.view === viewId,
    loadDirectory,
    refreshMe,
    setTitle: (title) => { document.title = `${title} · ${APP_NAME}`; },
    navigate: (hash) => {
      if (window.location.hash === hash) route();
      else window.location.hash = hash;
    },
  };
}

/** Admins see names instead of ids: a cached id -> user map from /admin/users. */
async function loadDirectory(force = false) {
  if (!state.me || state.me.role !== 'admin') return null;
  if (!state.directory || force) {
    const people = await getAll('/admin/users');
    state.directory = new Map(people.map((p) => [p.id, p]));
  }
  return state.directory;
}

async function refreshMe() {
  state.me = await api('GET', '/auth/me');
  return state.me;
}

async function route({ focus = true } = {}) {
  state.view += 1;
  const viewId = state.view;
  const { path, params } = parseHash();
  if (!state.me) {
    renderFrame(path);
    document.title = `Sign in · ${APP_NAME}`;
    renderSignIn(main, { appName: APP_NAME, onSignedIn: signedIn });
    return;
  }
  renderFrame(path);
  const ctx = context(viewId);
  main.replaceChildren();
  main.classList.remove('wide');
  let match;
  try {
    if (path === '/' || path === '/signin') {
      window.location.replace(homeFor(state.me));
      return;
    } else if (path === '/tickets') {
      await renderTicketList(main, ctx, state.me.role === 'admin' ? 'all' : 'mine', params);
    } else if (path === '/queue' && isStaff()) {
      await renderTicketList(main, ctx, 'queue', params);
    } else if (path === '/new') {
      renderNewTicket(main, ctx);
    } else if ((match = path.match(/^\/tickets\/([^/]+)$/))) {
      await renderTicket(main, ctx, decodeURIComponent(match[1]));
    } else if (path === '/availability' && isStaff()) {
      renderAvailability(main, ctx);
    } else if (path === '/people' && state.me.role === 'admin') {
      await renderPeople(main, ctx, params);
    } else if (path === '/jobs' && state.me.role === 'admin') {
      await renderJobs(main, ctx, params);
    } else if (path === '/dashboard' && state.me.role === 'admin') {
      await renderDashboard(main, ctx, params);
    } else if (path === '/inbound' && state.me.role === 'admin') {
      await renderInbound(main, ctx, params);
    } else if (path === '/sla' && state.me.role === 'admin') {
      await renderSla(main, ctx);
    } else if (path === '/triage' && state.me.role === 'admin') {
      await renderTriage(main, ctx, params);
    } else {
      ctx.setTitle('Not found');
      main.append(h('section', { class: 'page' },
        h('h1', { tabindex: '-1' }, 'Page not found'),
        h('p', null, 'There is nothing here. ', h('a', { href: homeFor(state.me) }, 'Go to your tickets'), '.')));
    }
  } catch (error) {
    if (error.status === 401) return; // handled: back to sign-in
    if (!ctx.alive()) return;
    main.append(h('p', { class: 'form-error', role: 'alert' }, error.message));
  }
  if (focus && ctx.alive()) {
    const heading = main.querySelector('h1');
    if (heading && !main.contains(document.activeElement)) heading.focus({ preventScroll: true });
  }
}

function signedIn(me) {
  state.me = me;
  state.directory = null;
  announce(`Signed in as ${me.email}.`, 'success');
  route();
}

async function signOut() {
  try {
    await api('POST', '/auth/logout');
  } catch {
    // The token may already be invalid: signing out locally is what matters.
  }
  session.token = null;
  clearDraft();
  state.me = null;
  state.directory = null;
  window.location.hash = '#/';
  announce('You are signed out.', 'success');
  route();
}

// Any 401 means the token expired or was revoked: back to sign-in, keeping the route (and the
// new-ticket draft, which lives in sessionStorage) so the person continues where they were.
onUnauthorized(() => {
  if (!state.me) return;
  session.token = null;
  state.me = null;
  state.directory = null;
  announce('Your session has ended. Sign in again to continue; your draft is kept.', 'error');
  route();
});

document.querySelector('.skip-link').addEventListener('click', (event) => {
  event.preventDefault();
  main.focus();
});
window.addEventListener('hashchange', () => route());

async function start() {
  if (session.token) {
    try {
      await refreshMe();
    } catch (error) {
      state.me = null;
      if (error.status === 401) session.token = null;
      else announce(error.message, 'error');
    }
  }
  route({ focus: false });
}

start();
