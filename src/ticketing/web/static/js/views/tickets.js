// Ticket lists: a user's own tickets, a moderator's queue, and the admin's view of everything.
import { get, post } from '../api.js';
import { announce, busy, h, nextId, replace, select } from '../dom.js';
import {
  ANALYSIS, PRIORITY, SLA, STATUS, TYPE, analysisBadge, options, personName, priorityBadge,
  reviewBadge, slaCell, ticketNumber, statusBadge, typeBadge, when,
} from '../format.js';

const POLL_MS = 2000;
const FILTERS = ['status', 'priority', 'ticket_type', 'sla_status', 'analysis_status', 'assigned_to', 'q', 'order'];
const ORDER = { '': 'Newest first', due: 'Most urgent first' };

function modeConfig(ctx, mode) {
  if (mode === 'queue') {
    return {
      title: 'My queue', path: '/moderator/tickets', route: '#/queue', query: {},
      intro: 'Tickets assigned to you.', empty: 'Nothing in your queue right now.',
    };
  }
  if (mode === 'all') {
    return {
      title: 'All tickets', path: '/tickets', route: '#/tickets', query: {}, admin: true,
      intro: 'Every ticket. Fallback tickets were analysed offline (the local model and rules) because the AI failed.',
      empty: 'No tickets match these filters.',
    };
  }
  if (ctx.isStaff) {
    return {
      title: 'Tickets I filed', path: '/tickets', route: '#/tickets', query: { created_by: ctx.me.id },
      intro: null, empty: 'You have not filed any tickets.',
    };
  }
  return {
    title: 'My tickets', path: '/tickets', route: '#/tickets', query: {}, mine: true,
    intro: null, empty: 'You have not filed any tickets yet.',
  };
}

export async function renderTicketList(root, ctx, mode, params) {
  const config = modeConfig(ctx, mode);
  ctx.setTitle(config.title);
  if (config.admin) await ctx.loadDirectory();
  const filters = {};
  for (const name of FILTERS) filters[name] = params.get(name) || '';

  const results = h('div', { class: 'results', id: 'ticket-results' });
  const summary = h('p', { class: 'summary', 'aria-live': 'polite', id: 'ticket-summary' });
  let items = [];
  let cursor = null;
  let watchUntil = 0;
  let timer = null;

  async function load({ more = false, quiet = false } = {}) {
    const limit = more ? 50 : Math.min(100, Math.max(50, items.length));
    const page = await get(config.path, {
      ...config.query, ...filters, limit, cursor: more ? cursor : null,
    });
    if (!ctx.alive()) return;
    items = more ? items.concat(page.items) : page.items;
    cursor = page.next_cursor;
    draw(quiet);
    schedule();
  }

  function schedule() {
    clearTimeout(timer);
    const analysing = items.some((t) => t.analysis_status === 'pending');
    const rerunning = Date.now() < watchUntil; // a re-run was just queued: watch it land
    if (!analysing && !rerunning) return;
    timer = setTimeout(() => {
      if (!ctx.alive()) return;
      load({ quiet: true }).catch(() => {});
    }, POLL_MS);
  }

  function draw(quiet) {
    const count = `${items.length}${cursor ? '+' : ''} ticket${items.length === 1 ? '' : 's'}`;
    const pending = items.filter((t) => t.analysis_status === 'pending').length;
    const text = pending ? `${count}, ${pending} being analysed` : count;
    if (!quiet || summary.textContent !== text) summary.textContent = text;
    if (!items.length) {
      replace(results, h('div', { class: 'empty card' },
        h('p', null, config.empty),
        config.mine ? h('a', { class: 'button primary', href: '#/new' }, 'File a ticket') : null));
      return;
    }
    replace(results,
      table(ctx, config, items),
      cursor ? h('button', {
        type: 'button', class: 'button secondary', id: 'load-more',
        onclick: (e) => busy(e.target.parentElement, () => load({ more: true })).catch(showError),
      }, 'Load more') : null);
  }

  function applyFilters() {
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(filters)) if (v) query.set(k, v);
    const qs = query.toString();
    history.replaceState(null, '', `${config.route}${qs ? `?${qs}` : ''}`);
    load().catch(showError);
  }

  const header = h('div', { class: 'page-header' },
    h('div', null,
      h('h1', { tabindex: '-1' }, config.title),
      config.intro ? h('p', { class: 'muted' }, config.intro) : null),
    h('div', { class: 'header-actions' },
      config.admin ? rerunButton() : null,
      config.mine ? h('a', { class: 'button primary', href: '#/new' }, 'New ticket') : null));

  function rerunButton() {
    const wrap = h('div', { class: 'rerun' });
    const button = h('button', { type: 'button', class: 'button primary', id: 'rerun-ai' }, 'Re-run AI on fallback tickets');
    button.addEventListener('click', async () => {
      try {
        const answer = await busy(wrap, () => post('/admin/rerun-ai'));
        const n = answer.queued;
        announce(n === 0
          ? 'No fallback tickets needed re-analysis (only open and in-progress ones are re-run).'
          : `Queued ${n} fallback ticket${n === 1 ? '' : 's'} for AI re-analysis.`, 'success');
        if (n > 0) {
          watchUntil = Date.now() + 60000;
          schedule();
        }
      } catch (error) {
        showError(error);
      }
    });
    wrap.append(button);
    return wrap;
  }

  root.append(h('section', { class: 'page' },
    header,
    filterForm(ctx, config, filters, applyFilters),
    summary,
    results));
  root.classList.add('wide');
  await load();
}

function showError(error) {
  if (error.status !== 401) announce(error.message, 'error');
}

function filterForm(ctx, config, filters, apply) {
  const controls = [];
  const add = (name, label, control) => {
    const id = nextId(`filter-${name}`);
    control.id = id;
    control.name = name;
    control.addEventListener('change', () => {
      filters[name] = control.value.trim();
      if (control.tagName === 'SELECT') apply();
    });
    controls.push(h('div', { class: `field filter-${name}` }, h('label', { for: id }, label), control));
  };
  add('status', 'Status', select(options(STATUS, 'Any status'), filters.status));
  add('priority', 'Priority', select(options(PRIORITY, 'Any priority'), filters.priority));
  add('ticket_type', 'Type', select(options(TYPE, 'Any type'), filters.ticket_type));
  add('sla_status', 'SLA', select(options(SLA, 'Any SLA'), filters.sla_status));
  add('order', 'Sort', select(Object.entries(ORDER), filters.order));
  if (config.admin) {
    add('analysis_status', 'Analysis', select(options(ANALYSIS, 'Any analysis'), filters.analysis_status));
    const staff = [...(ctx.directory ? ctx.directory.values() : [])]
      .filter((p) => p.role !== 'user')
      .map((p) => [p.id, p.name || p.email]);
    add('assigned_to', 'Assignee', select([['', 'Anyone'], ...staff], filters.assigned_to));
  }
  const search = h('input', { type: 'search', value: filters.q, placeholder: 'Words in title or description', maxlength: '200' });
  add('q', 'Search', search);
  const form = h('form', { class: 'filters card', role: 'search', 'aria-label': 'Filter tickets' },
    ...controls,
    h('div', { class: 'filter-buttons' },
      h('button', { type: 'submit', class: 'button primary' }, 'Search'),
      h('button', {
        type: 'button', class: 'button secondary',
        onclick: () => {
          for (const key of Object.keys(filters)) filters[key] = '';
          for (const control of form.querySelectorAll('select, input')) control.value = '';
          apply();
        },
      }, 'Clear')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    filters.q = search.value.trim();
    apply();
  });
  return form;
}

function assigneeCell(ctx, ticket) {
  if (!ticket.assigned_to) {
    // Staff see why nobody has it yet: "waiting: nobody available (2 away, ...)".
    const reason = ticket.assignment_reason || '';
    if (reason.startsWith('waiting:')) {
      return h('span', { class: 'muted', title: reason }, 'Waiting for someone free');
    }
    return h('span', { class: 'muted' }, ticket.analysis_status === 'pending' ? 'Waiting for triage' : 'Unassigned');
  }
  if (!ctx.isStaff) return 'A support agent';
  return personName(ctx, ticket.assigned_to, 'assigned', { short: true });
}

function table(ctx, config, items) {
  const columns = [
    ['Ticket', (t) => h('span', { class: 'ticket-cell' }, ticketNumber(t), ' ',
      h('a', { href: `#/tickets/${encodeURIComponent(t.id)}`, class: 'ticket-link' }, t.title))],
    ['Status', (t) => statusBadge(t.status)],
    ['Priority', (t) => priorityBadge(t.priority)],
    ['SLA', (t) => slaCell(t)],
    ['Type', (t) => typeBadge(t.ticket_type)],
    ['Analysis', (t) => h('span', { class: 'badges-inline' }, analysisBadge(t), ' ', reviewBadge(t))],
    ['Assignee', (t) => assigneeCell(ctx, t)],
    ['Updated', (t) => when(t.updated_at, { short: true })],
  ];
  if (config.admin) columns.splice(7, 0, ['Filed by', (t) => personName(ctx, t.created_by, 'a user', { short: true })]);
  return h('table', { class: 'tickets responsive' },
    h('caption', { class: 'sr-only' }, config.title),
    h('thead', null, h('tr', null, columns.map(([label]) => h('th', { scope: 'col' }, label)))),
    h('tbody', null, items.map((t) => h('tr', {
      class: t.analysis_status === 'fallback' ? 'row-fallback' : null,
      dataset: { ticketId: t.id, analysis: t.analysis_status, status: t.status },
    }, columns.map(([label, cell]) => h('td', { dataset: { label } }, cell(t)))))));
}
