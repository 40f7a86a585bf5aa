// Admin: background jobs. Failed ones (out of attempts) first, with their error and a retry.
import { get, post } from '../api.js';
import { announce, busy, h, nextId, replace, select } from '../dom.js';
import { when } from '../format.js';

const POLL_MS = 2000;
const WATCH_MS = 60000; // how long a retried job is followed after the click
const ERROR_PREVIEW_CHARS = 240;

export const JOB_STATUS = { failed: 'Failed', queued: 'Queued', running: 'Running', done: 'Done' };
const FILTER_OPTIONS = [...Object.entries(JOB_STATUS), ['any', 'Any status']];
// Display names of the kinds this product has; any other kind is shown as it is.
const KIND = {
  send_email: 'Email', triage_ticket: 'Ticket analysis', triage_train: 'Model training',
  triage_retrain: 'Model retraining', sla_timer: 'SLA timer', sla_recompute: 'SLA recompute',
};
const WHEN = { failed: 'Failed', queued: 'Due', running: 'Started', done: 'Done' };

function kindLabel(job) {
  return KIND[job.kind] || job.kind;
}

function shortId(job) {
  return job.id.slice(0, 8);
}

export async function renderJobs(root, ctx, params) {
  ctx.setTitle('Jobs');
  const filters = { status: params.get('status') || 'failed' };
  if (!(filters.status in JOB_STATUS) && filters.status !== 'any') filters.status = 'failed';

  const results = h('div', { class: 'results', id: 'job-results' });
  const summary = h('p', { class: 'summary', 'aria-live': 'polite', id: 'job-summary' });
  const headerActions = h('div', { class: 'header-actions' });
  const heading = h('h1', { tabindex: '-1' }, 'Jobs');
  let items = [];
  let cursor = null;
  let timer = null;
  const watched = new Map(); // id -> job as it was retried: announce how each one ends
  let watchUntil = 0;

  async function load({ more = false, quiet = false } = {}) {
    const limit = more ? 50 : Math.min(100, Math.max(50, items.length));
    const status = filters.status === 'any' ? null : filters.status;
    const page = await get('/admin/jobs', { status, limit, cursor: more ? cursor : null });
    if (!ctx.alive()) return;
    items = more ? items.concat(page.items) : page.items;
    cursor = page.next_cursor;
    draw(quiet);
  }

  function draw(quiet) {
    const noun = filters.status === 'any' ? 'job' : `${JOB_STATUS[filters.status].toLowerCase()} job`;
    const text = `${items.length}${cursor ? '+' : ''} ${noun}${items.length === 1 ? '' : 's'}`;
    if (!quiet || summary.textContent !== text) summary.textContent = text;
    const failed = items.filter((job) => job.status === 'failed');
    replace(headerActions, failed.length ? retryAllButton() : null);
    if (!items.length) {
      replace(results, h('div', { class: 'empty card' },
        h('p', null, filters.status === 'failed'
          ? 'No failed jobs. Work that runs out of attempts shows up here, with its error.'
          : 'No jobs match this filter.')));
      return;
    }
    replace(results,
      table(items),
      cursor ? h('button', {
        type: 'button', class: 'button secondary', id: 'load-more',
        onclick: (e) => busy(e.target.parentElement, () => load({ more: true })).catch(showError),
      }, 'Load more') : null);
  }

  function table(jobs) {
    const columns = [
      ['Job', (job) => h('div', { class: 'job' },
        h('strong', null, kindLabel(job)),
        h('span', { class: 'muted small' }, `${job.kind} · ${shortId(job)}`))],
      ['Status', (job) => h('span', { class: `badge job-${job.status}` }, JOB_STATUS[job.status] || job.status)],
      ['Attempts', (job) => `${job.attempts} / ${job.max_attempts}`],
      ['Last error', (job) => errorText(job.last_error)],
      ['Ticket', (job) => (job.ticket_id
        ? h('a', { href: `#/tickets/${encodeURIComponent(job.ticket_id)}` }, 'Open ticket')
        : h('span', { class: 'muted' }, '—'))],
      ['When', (job) => h('span', null, `${WHEN[job.status] || 'Updated'} `,
        when(job.status === 'queued' ? job.run_after : job.updated_at, { short: true }))],
      ['Actions', (job) => actions(job)],
    ];
    return h('table', { class: 'jobs responsive' },
      h('caption', { class: 'sr-only' }, 'Jobs'),
      h('thead', null, h('tr', null, columns.map(([label]) => h('th', { scope: 'col' }, label)))),
      h('tbody', null, jobs.map((job) => h('tr', {
        class: job.status === 'failed' ? 'row-failed' : null,
        dataset: { jobId: job.id, status: job.status },
      }, columns.map(([label, cell]) => h('td', { dataset: { label } }, cell(job)))))));
  }

  function actions(job) {
    if (job.status !== 'failed') return h('span', { class: 'muted' }, '—');
    const wrap = h('div', { class: 'actions' });
    wrap.append(h('button', {
      type: 'button', class: 'button secondary small', id: `retry-${job.id}`,
      'aria-label': `Retry ${kindLabel(job).toLowerCase()} job ${shortId(job)}`,
      onclick: () => retry(job, wrap),
    }, 'Retry'));
    return wrap;
  }

  async function retry(job, wrap) {
    try {
      await busy(wrap, () => post(`/admin/jobs/${encodeURIComponent(job.id)}/retry`));
      announce(`${kindLabel(job)} job ${shortId(job)} is queued again; it runs in a moment.`, 'success');
      watch([job]);
    } catch (error) {
      if (error.status === 409) announce('That job is no longer failed: it was retried already.', 'info');
      else if (error.status === 404) announce('That job no longer exists.', 'info');
      else {
        showError(error);
        return;
      }
    }
    await reload();
  }

  function retryAllButton() {
    const wrap = h('div', { class: 'retry-all' });
    wrap.append(h('button', {
      type: 'button', class: 'button primary', id: 'retry-all-failed',
      onclick: async () => {
        try {
          const answer = await busy(wrap, () => post('/admin/jobs/retry-failed'));
          const n = answer.queued;
          announce(n === 0 ? 'No failed jobs to retry.'
            : `Queued ${n} failed job${n === 1 ? '' : 's'} again.`, 'success');
          watch(items.filter((job) => job.status === 'failed'));
          await reload();
        } catch (error) {
          showError(error);
        }
      },
    }, 'Retry all failed'));
    return wrap;
  }

  /** Reload; the clicked button may be gone: keep keyboard focus on the page. */
  async function reload() {
    await load().catch(showError);
    if (!ctx.alive()) return;
    if (!document.activeElement || document.activeElement === document.body) {
      const next = results.querySelector('button[id^="retry-"]');
      (next || heading).focus();
    }
  }

  // Follow retried jobs for a while and say how each one ended.
  function watch(jobs) {
    for (const job of jobs) watched.set(job.id, job);
    watchUntil = Date.now() + WATCH_MS;
    schedule();
  }

  function schedule() {
    clearTimeout(timer);
    if (!watched.size || Date.now() > watchUntil) {
      watched.clear();
      return;
    }
    timer = setTimeout(() => {
      if (!ctx.alive()) return;
      check().catch(() => {}).finally(() => { if (ctx.alive()) schedule(); });
    }, POLL_MS);
  }

  async function check() {
    const done = [];
    const failedAgain = [];
    for (const [id, job] of [...watched]) {
      let now;
      try {
        now = await get(`/admin/jobs/${encodeURIComponent(id)}`);
      } catch (error) {
        if (error.status === 404) watched.delete(id);
        continue;
      }
      if (!ctx.alive()) return;
      if (now.status === 'done') done.push(job);
      else if (now.status === 'failed') failedAgain.push(now);
      else continue;
      watched.delete(id);
    }
    if (!done.length && !failedAgain.length) return;
    if (failedAgain.length) {
      const [first] = failedAgain;
      announce(failedAgain.length === 1
        ? `${kindLabel(first)} job ${shortId(first)} failed again: ${first.last_error || 'no error recorded'}`
        : `${failedAgain.length} retried jobs failed again; their errors are in the list.`, 'error');
    } else {
      announce(done.length === 1
        ? `${kindLabel(done[0])} job ${shortId(done[0])} is done.`
        : `${done.length} retried jobs are done.`, 'success');
    }
    await load({ quiet: true });
  }

  const statusSelect = select(FILTER_OPTIONS, filters.status);
  statusSelect.id = nextId('jobs-status');
  statusSelect.addEventListener('change', () => {
    filters.status = statusSelect.value;
    history.replaceState(null, '', filters.status === 'failed' ? '#/jobs' : `#/jobs?status=${filters.status}`);
    load().catch(showError);
  });
  const filterForm = h('form', { class: 'filters card job-filters', role: 'search', 'aria-label': 'Filter jobs' },
    h('div', { class: 'field' }, h('label', { for: statusSelect.id }, 'Status'), statusSelect));
  filterForm.addEventListener('submit', (event) => event.preventDefault());

  root.classList.add('wide');
  root.append(h('section', { class: 'page' },
    h('div', { class: 'page-header' },
      h('div', { class: 'page-intro' },
        heading,
        h('p', { class: 'muted' },
          'Background work: ticket analysis and email. A job that keeps failing stops after its '
          + 'last attempt and waits here. Fix the cause (for example the mail server), then retry it.')),
      headerActions),
    filterForm,
    summary,
    results));
  await load();
}

function errorText(error) {
  if (!error) return h('span', { class: 'muted' }, '—');
  // Text nodes only: an error message may hold anything, markup included.
  if (error.length <= ERROR_PREVIEW_CHARS) return h('p', { class: 'job-error' }, error);
  return h('details', { class: 'job-error-details' },
    h('summary', null, `${error.slice(0, ERROR_PREVIEW_CHARS).trimEnd()}… (show all)`),
    h('p', { class: 'job-error' }, error));
}

function showError(error) {
  if (error.status !== 401) announce(error.message, 'error');
}
