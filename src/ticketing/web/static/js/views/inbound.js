// Admin: every message read from the support mailbox and what became of it. Ignored and
// rejected mail is listed with its reason, so nothing disappears silently.
import { get } from '../api.js';
import { announce, busy, h, nextId, replace, select } from '../dom.js';
import { when } from '../format.js';

export const OUTCOME = {
  ticket: 'New ticket', comment: 'Reply', ignored: 'Ignored', rejected: 'Rejected',
};
const FILTER_OPTIONS = [['', 'Any outcome'], ...Object.entries(OUTCOME)];

export async function renderInbound(root, ctx, params) {
  ctx.setTitle('Inbound mail');
  const filters = { outcome: params.get('outcome') || '' };
  if (filters.outcome && !(filters.outcome in OUTCOME)) filters.outcome = '';

  const results = h('div', { class: 'results', id: 'inbound-results' });
  const summary = h('p', { class: 'summary', 'aria-live': 'polite', id: 'inbound-summary' });
  let items = [];
  let cursor = null;

  async function load({ more = false } = {}) {
    const page = await get('/admin/inbound-emails', {
      outcome: filters.outcome || null, limit: 50, cursor: more ? cursor : null,
    });
    if (!ctx.alive()) return;
    items = more ? items.concat(page.items) : page.items;
    cursor = page.next_cursor;
    draw();
  }

  function draw() {
    summary.textContent = `${items.length}${cursor ? '+' : ''} message${items.length === 1 ? '' : 's'}`;
    if (!items.length) {
      replace(results, h('div', { class: 'empty card' }, h('p', null,
        'No mail here yet. Messages read from the support mailbox are listed with what became of them.')));
      return;
    }
    replace(results, table(items),
      cursor ? h('button', {
        type: 'button', class: 'button secondary', id: 'load-more',
        onclick: (e) => busy(e.target.parentElement, () => load({ more: true })).catch(showError),
      }, 'Load more') : null);
  }

  function table(rows) {
    const columns = [
      ['Received', (m) => when(m.received_at, { short: true })],
      ['From', (m) => m.from || h('span', { class: 'muted' }, 'unknown')],
      ['Subject', (m) => m.subject || h('span', { class: 'muted' }, '(no subject)')],
      ['Outcome', (m) => h('span', { class: `badge outcome-${m.outcome}` }, OUTCOME[m.outcome] || m.outcome)],
      // Text nodes only: a reason may quote the message.
      ['Why', (m) => h('span', { class: 'reason' }, m.reason || '—')],
      ['Ticket', (m) => (m.ticket_id
        ? h('a', { href: `#/tickets/${encodeURIComponent(m.ticket_id)}` }, 'Open ticket')
        : h('span', { class: 'muted' }, '—'))],
    ];
    return h('table', { class: 'inbound responsive' },
      h('caption', { class: 'sr-only' }, 'Inbound mail'),
      h('thead', null, h('tr', null, columns.map(([label]) => h('th', { scope: 'col' }, label)))),
      h('tbody', null, rows.map((m) => h('tr', {
        class: m.outcome === 'rejected' ? 'row-failed' : null,
        dataset: { inboundId: m.id, outcome: m.outcome },
      }, columns.map(([label, cell]) => h('td', { dataset: { label } }, cell(m)))))));
  }

  const outcomeSelect = select(FILTER_OPTIONS, filters.outcome);
  outcomeSelect.id = nextId('inbound-outcome');
  outcomeSelect.addEventListener('change', () => {
    filters.outcome = outcomeSelect.value;
    history.replaceState(null, '', filters.outcome ? `#/inbound?outcome=${filters.outcome}` : '#/inbound');
    load().catch(showError);
  });
  const filterForm = h('form', { class: 'filters card', role: 'search', 'aria-label': 'Filter inbound mail' },
    h('div', { class: 'field' }, h('label', { for: outcomeSelect.id }, 'Outcome'), outcomeSelect));
  filterForm.addEventListener('submit', (event) => event.preventDefault());

  root.classList.add('wide');
  root.append(h('section', { class: 'page' },
    h('div', { class: 'page-header' },
      h('div', { class: 'page-intro' },
        h('h1', { tabindex: '-1' }, 'Inbound mail'),
        h('p', { class: 'muted' },
          'Mail to the support address becomes tickets and replies. Automatic mail, bounces and '
          + 'our own mail are ignored; mail from people who may not sign in, too large or '
          + 'unreadable is rejected. Each is listed here with the reason.'))),
    filterForm,
    summary,
    results));
  await load();
}

function showError(error) {
  if (error.status !== 401) announce(error.message, 'error');
}
