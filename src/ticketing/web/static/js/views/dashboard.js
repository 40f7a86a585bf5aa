// Admin: the summary report of a period (GET /admin/reports/summary) as figures and charts.
// Charts are inline SVG built with DOM calls (no library, nothing inline for the CSP); every
// chart has a text equivalent (its label and the values printed next to the bars).
import { get, getBlob } from '../api.js';
import { announce, busy, h, nextId, replace } from '../dom.js';
import { PRIORITY, STATUS, TYPE } from '../format.js';

const SVG = 'http://www.w3.org/2000/svg';
const DAY_MS = 24 * 60 * 60 * 1000;
const PRESETS = [[7, 'Last 7 days'], [30, 'Last 30 days'], [90, 'Last 90 days']];
const NOT_SET = 'Not set';
const FIELD = { priority: 'Priority', ticket_type: 'Type', required_skills: 'Skills' };

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) el.setAttribute(key, String(value));
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  return el;
}

/** "2026-11-30" for a Date, in UTC (the API's periods are whole UTC days when given dates). */
function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

/** Minutes as "45 min", "3 h 20 min", "2 d 4 h"; "—" for null. */
export function duration(minutes) {
  if (minutes === null || minutes === undefined) return '—';
  const m = Math.round(minutes);
  if (m < 60) return `${m} min`;
  if (m < 24 * 60) {
    const rest = m % 60;
    return rest ? `${Math.floor(m / 60)} h ${rest} min` : `${m / 60} h`;
  }
  const days = Math.floor(m / (24 * 60));
  const hours = Math.round((m % (24 * 60)) / 60);
  return hours ? `${days} d ${hours} h` : `${days} d`;
}

function percent(ratio) {
  return ratio === null || ratio === undefined ? '—' : `${Math.round(ratio * 1000) / 10}%`;
}

/**
 * A horizontal bar chart: rows of [label, value, cssClass, text?]. The SVG is an image whose
 * label lists the values; each bar also prints its value.
 */
export function barChart(title, rows, { id } = {}) {
  const rowHeight = 28;
  const labelWidth = 130;
  const barSpace = 250;
  const width = labelWidth + barSpace + 90;
  const height = rows.length * rowHeight + 4;
  const max = Math.max(1, ...rows.map(([, value]) => value || 0));
  const description = rows.map(([label, value, , text]) => `${label}: ${text ?? value}`).join(', ');
  const chart = svg('svg', {
    class: 'chart', viewBox: `0 0 ${width} ${height}`, width, height,
    role: 'img', 'aria-label': `${title}. ${description}`,
  }, svg('title', null, `${title}: ${description}`));
  rows.forEach(([label, value, cls, text], i) => {
    const y = i * rowHeight + 2;
    const barWidth = value ? Math.max(2, Math.round((value / max) * barSpace)) : 0;
    chart.append(
      svg('text', { x: labelWidth - 8, y: y + 18, 'text-anchor': 'end', class: 'chart-label' }, label),
      svg('rect', { x: labelWidth, y: y + 4, width: barSpace, height: rowHeight - 10, rx: 3, class: 'chart-track' }),
      svg('rect', { x: labelWidth, y: y + 4, width: barWidth, height: rowHeight - 10, rx: 3, class: `chart-bar ${cls || ''}`.trim() }),
      svg('text', { x: labelWidth + barWidth + 6, y: y + 18, class: 'chart-value' }, text ?? String(value)),
    );
  });
  return h('figure', { class: 'chart-figure', id: id || null },
    h('figcaption', null, title), chart);
}

/** Met vs breached as one stacked bar. */
function complianceChart(sla) {
  const total = sla.met + sla.breached;
  const width = 360;
  const metWidth = total ? Math.round((sla.met / total) * width) : 0;
  const label = total
    ? `SLA compliance ${percent(sla.compliance)}: ${sla.met} met, ${sla.breached} breached`
    : 'No ticket of the period has met or breached its SLA yet';
  return svg('svg', { class: 'chart', viewBox: `0 0 ${width} 24`, width, height: 24, role: 'img', 'aria-label': label },
    svg('title', null, label),
    svg('rect', { x: 0, y: 2, width, height: 20, rx: 4, class: 'chart-track' }),
    total ? svg('rect', { x: 0, y: 2, width: metWidth, height: 20, rx: 4, class: 'chart-bar sla-met' }) : null,
    total && sla.breached ? svg('rect', { x: metWidth, y: 2, width: width - metWidth, height: 20, class: 'chart-bar sla-breached' }) : null);
}

function tile(label, value, figure, { hint, tone } = {}) {
  return h('div', { class: `stat card ${tone || ''}`.trim(), dataset: { figure } },
    h('p', { class: 'stat-label' }, label),
    h('p', { class: 'stat-value' }, String(value)),
    hint ? h('p', { class: 'stat-hint muted small' }, hint) : null);
}

function section(title, ...children) {
  const headingId = nextId('dash');
  return h('section', { class: 'dash-section card', 'aria-labelledby': headingId },
    h('h2', { id: headingId }, title), ...children);
}

function keyed(labels, counts) {
  return [...Object.entries(labels).map(([key, label]) => [label, counts[key] || 0, key]),
    [NOT_SET, counts.none || 0, 'none']];
}

function render(report) {
  const { backlog, sla, ai } = report;
  const inBacklog = backlog.open + backlog.in_progress + backlog.waiting;
  const tiles = h('div', { class: 'stats' },
    tile('Created', report.created, 'created', { hint: 'in the period' }),
    tile('Resolved', report.resolved, 'resolved', { hint: 'in the period' }),
    tile('Backlog', inBacklog, 'backlog', { hint: `${backlog.unassigned} unassigned` }),
    tile('At risk now', backlog.at_risk, 'at-risk', { tone: backlog.at_risk ? 'tone-warn' : null, hint: 'SLA nearly used up' }),
    tile('Breached now', backlog.breached, 'breached', { tone: backlog.breached ? 'tone-danger' : null, hint: 'open tickets past a target' }),
    tile('SLA compliance', percent(sla.compliance), 'compliance', { hint: `${sla.met} met, ${sla.breached} breached` }));

  const backlogCharts = h('div', { class: 'chart-row' },
    barChart('By status', [
      [STATUS.open, backlog.open, 'status-open'],
      [STATUS.in_progress, backlog.in_progress, 'status-in_progress'],
      ['Waiting', backlog.waiting, 'status-waiting'],
      ['Unassigned', backlog.unassigned, 'unassigned'],
    ], { id: 'chart-backlog-status' }),
    barChart('By priority', keyed(PRIORITY, backlog.by_priority).reverse()
      .map(([label, value, key]) => [label, value, `priority-${key}`]), { id: 'chart-backlog-priority' }));

  const times = h('div', { class: 'chart-row' },
    barChart('First response', [
      ['Median', report.first_response_minutes.median || 0, 'time', duration(report.first_response_minutes.median)],
      ['90th percentile', report.first_response_minutes.p90 || 0, 'time', duration(report.first_response_minutes.p90)],
    ], { id: 'chart-first-response' }),
    barChart('Resolution', [
      ['Median', report.resolution_minutes.median || 0, 'time', duration(report.resolution_minutes.median)],
      ['90th percentile', report.resolution_minutes.p90 || 0, 'time', duration(report.resolution_minutes.p90)],
    ], { id: 'chart-resolution' }));

  const people = report.by_assignee.length
    ? h('table', { class: 'load responsive', id: 'load-table' },
      h('caption', { class: 'sr-only' }, 'Load per person'),
      h('thead', null, h('tr', null,
        ['Person', 'Open now', 'Resolved', 'Breached'].map((label) => h('th', { scope: 'col' }, label)))),
      h('tbody', null, report.by_assignee.map((row) => h('tr', { dataset: { userId: row.user_id } },
        h('td', { dataset: { label: 'Person' } }, row.name),
        h('td', { dataset: { label: 'Open now' } }, loadBar(row.open, report.by_assignee)),
        h('td', { dataset: { label: 'Resolved' } }, String(row.resolved)),
        h('td', { dataset: { label: 'Breached' }, class: row.breached ? 'breached' : null }, String(row.breached))))))
    : h('p', { class: 'muted' }, 'Nobody on staff yet.');

  const fallbackShare = ai.analysed ? ` (${percent(ai.fallback / ai.analysed)})` : '';
  const aiSection = h('div', { class: 'chart-row' },
    h('div', null,
      h('p', { dataset: { figure: 'ai-analysed' } }, `${ai.analysed} tickets analysed in the period.`),
      h('p', { dataset: { figure: 'ai-fallback' } },
        `${ai.fallback} fell back to the built-in analysis${fallbackShare}.`)),
    barChart('Corrected by staff', Object.entries(FIELD)
      .map(([key, label]) => [label, ai.corrected[key] || 0, 'corrected']), { id: 'chart-corrected' }));

  const created = h('div', { class: 'chart-row' },
    barChart('By priority', keyed(PRIORITY, report.by_priority).reverse()
      .map(([label, value, key]) => [label, value, `priority-${key}`]), { id: 'chart-created-priority' }),
    barChart('By type', keyed(TYPE, report.by_type)
      .map(([label, value]) => [label, value, 'type']), { id: 'chart-created-type' }));

  return [
    tiles,
    section('Backlog now', backlogCharts),
    section('Response and resolution times',
      h('p', { class: 'muted small' }, 'Tickets created in the period that have been answered or resolved.'),
      times),
    section('SLA', h('p', null, complianceChart(sla)),
      h('p', { class: 'muted small' }, `Of the period's tickets, ${sla.met} met their SLA and ${sla.breached} breached it. `
        + `Now: ${backlog.at_risk} at risk, ${backlog.breached} breached.`)),
    section('Load per person', people),
    section('AI triage', aiSection),
    section('Tickets created in the period', created),
  ];
}

function loadBar(open, rows) {
  const max = Math.max(1, ...rows.map((r) => r.open));
  const width = 120;
  return h('span', { class: 'load-cell' },
    svg('svg', { class: 'chart', width, height: 12, viewBox: `0 0 ${width} 12`, 'aria-hidden': 'true' },
      svg('rect', { x: 0, y: 1, width, height: 10, rx: 3, class: 'chart-track' }),
      svg('rect', { x: 0, y: 1, width: Math.round((open / max) * width), height: 10, rx: 3, class: 'chart-bar load' })),
    h('span', null, String(open)));
}

export async function renderDashboard(root, ctx, params) {
  ctx.setTitle('Dashboard');
  const today = new Date();
  const period = {
    from: params.get('from') || isoDay(new Date(today.getTime() - 29 * DAY_MS)),
    to: params.get('to') || isoDay(today),
  };
  const fromInput = h('input', { type: 'date', id: nextId('dash-from'), value: period.from, required: true });
  const toInput = h('input', { type: 'date', id: nextId('dash-to'), value: period.to, required: true });
  const results = h('div', { class: 'dashboard', id: 'dashboard-results', 'aria-live': 'polite' },
    h('p', { class: 'loading' }, 'Loading…'));
  const heading = h('p', { class: 'summary', id: 'dashboard-period' });

  async function load() {
    const report = await get('/admin/reports/summary', { from: period.from, to: period.to });
    if (!ctx.alive()) return;
    heading.textContent = `Tickets from ${period.from} to ${period.to} (UTC days).`;
    replace(results, render(report));
  }

  function show(from, to) {
    period.from = from;
    period.to = to;
    fromInput.value = from;
    toInput.value = to;
    history.replaceState(null, '', `#/dashboard?from=${from}&to=${to}`);
    return load();
  }

  const form = h('form', { class: 'filters card period-picker', 'aria-label': 'Period' },
    h('div', { class: 'field' }, h('label', { for: fromInput.id }, 'From'), fromInput),
    h('div', { class: 'field' }, h('label', { for: toInput.id }, 'To'), toInput),
    h('div', { class: 'filter-buttons' },
      h('button', { type: 'submit', class: 'button primary', id: 'dashboard-show' }, 'Show'),
      ...PRESETS.map(([days, label]) => h('button', {
        type: 'button', class: 'button secondary', dataset: { days: String(days) },
        onclick: () => busy(form, () => show(isoDay(new Date(Date.now() - (days - 1) * DAY_MS)), isoDay(new Date())))
          .catch(showError),
      }, label))));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (!fromInput.value || !toInput.value) {
      announce('Choose both dates.', 'error');
      return;
    }
    if (fromInput.value > toInput.value) {
      announce('The start date must not be after the end date.', 'error');
      return;
    }
    busy(form, () => show(fromInput.value, toInput.value)).catch(showError);
  });

  const csvButton = h('button', { type: 'button', class: 'button secondary', id: 'dashboard-csv' }, 'Download CSV');
  csvButton.addEventListener('click', () => downloadCsv(period, csvButton));

  root.classList.add('wide');
  root.append(h('section', { class: 'page' },
    h('div', { class: 'page-header' },
      h('div', { class: 'page-intro' },
        h('h1', { tabindex: '-1' }, 'Dashboard'),
        h('p', { class: 'muted' },
          'Backlog and SLA now; response times, resolutions, load and the AI\'s work over the period.')),
      h('div', { class: 'header-actions' }, csvButton)),
    form,
    heading,
    results));
  await load();
}

async function downloadCsv(period, button) {
  button.disabled = true;
  try {
    const query = new URLSearchParams({ from: period.from, to: period.to, format: 'csv' });
    const blob = await getBlob(`/admin/reports/summary?${query}`);
    const url = URL.createObjectURL(new Blob([blob], { type: 'application/octet-stream' }));
    const link = h('a', { href: url, download: `tickets-${period.from}-${period.to}.csv`, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (error) {
    showError(error);
  } finally {
    button.disabled = false;
  }
}

function showError(error) {
  if (error.status !== 401) announce(error.message, 'error');
}
