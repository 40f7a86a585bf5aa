// Labels, badges and dates shared by the views.
import { h } from './dom.js';

export const STATUS = {
  open: 'Open', in_progress: 'In progress', waiting: 'Waiting on requester', resolved: 'Resolved',
  closed: 'Closed',
};
export const PRIORITY = { low: 'Low', medium: 'Medium', high: 'High', urgent: 'Urgent' };
export const TYPE = {
  bug: 'Bug', feature: 'Feature', support: 'Support', technical: 'Technical', other: 'Other',
};
export const ANALYSIS = { pending: 'Analysing…', ai: 'AI triaged', fallback: 'Fallback' };
export const ROLE = { user: 'User', moderator: 'Moderator', admin: 'Admin' };

export const options = (labels, any) => [
  ...(any ? [['', any]] : []),
  ...Object.entries(labels),
];

export function statusBadge(status) {
  return h('span', { class: `badge status-${status}` }, STATUS[status] || status);
}

export function priorityBadge(priority) {
  if (!priority) return h('span', { class: 'badge muted' }, 'Not set');
  return h('span', { class: `badge priority-${priority}` }, PRIORITY[priority] || priority);
}

export function typeBadge(type) {
  if (!type) return h('span', { class: 'badge muted' }, 'Not set');
  return h('span', { class: 'badge type' }, TYPE[type] || type);
}

/** Who analysed a ticket: "AI" only for Gemini and OpenAI-compatible models, never for the
 *  built-in rules or the local model. `label` for headings, `phrase` inside a sentence. */
export function analyser(provider, model) {
  if (provider && provider !== 'local') return { label: 'AI', phrase: 'AI' };
  if (!model || model.startsWith('local-rules')) {
    return { label: 'Built-in rules', phrase: 'the built-in rules' };
  }
  return { label: 'Local model', phrase: 'the local model' };
}

export function analysisBadge(ticket) {
  const state = ticket.analysis_status;
  let label = ANALYSIS[state] || state;
  if (state === 'ai' && ticket.analysis_provider === 'local') {
    label = `Triaged by ${analyser(ticket.analysis_provider, ticket.analysis_model).phrase}`;
  }
  if (state === 'pending') {
    return h('span', { class: 'badge analysis-pending' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), label);
  }
  if (state === 'fallback') {
    return h('span', {
      class: 'badge analysis-fallback',
      title: `The AI could not analyse this ticket; ${analyser('local', ticket.analysis_model).phrase} did`,
    }, '⚠ ', label);
  }
  return h('span', { class: `badge analysis-${state}` }, label);
}

/** Staff only: the analysis was unsure of the type or priority (below the threshold). */
export function reviewBadge(ticket) {
  if (!ticket.needs_review) return null;
  const c = ticket.analysis_confidence || {};
  const parts = Object.entries(c).map(([field, p]) => `${field === 'ticket_type' ? 'type' : field} ${Math.round(p * 100)} %`);
  return h('span', {
    class: 'badge review',
    title: `Triage was unsure (${parts.join(', ') || 'low confidence'}): check the type and priority. `
      + 'Setting either (even to the same value) clears this flag.',
  }, 'Review');
}

export function roleBadge(role) {
  return h('span', { class: `badge role-${role}` }, ROLE[role] || role);
}

export function skillChips(skills) {
  if (!skills || !skills.length) return h('span', { class: 'muted' }, 'None');
  return h('ul', { class: 'chip-list', 'aria-label': 'Skills' },
    skills.map((s) => h('li', { class: 'chip' }, s)));
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

const shortFormat = new Intl.DateTimeFormat(undefined, {
  month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
});

/** A <time> element; `short` drops the year (for tables), the full date is in its title. */
export function when(iso, { short = false } = {}) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  const date = new Date(iso);
  const full = dateFormat.format(date);
  return h('time', { datetime: iso, title: short ? full : null }, short ? shortFormat.format(date) : full);
}

/** A person's display name for an id: "you", the directory's name/email, or a fallback.
 *  `short` gives the name alone (tables); the default adds the email. */
export function personName(ctx, id, fallback = 'someone', { short = false } = {}) {
  if (!id) return fallback;
  if (ctx.me && id === ctx.me.id) return 'you';
  const person = ctx.directory && ctx.directory.get(id);
  if (!person) return fallback;
  if (!person.name) return person.email;
  return short ? person.name : `${person.name} (${person.email})`;
}

/** "#123", and an envelope for tickets that came by email. */
export function ticketNumber(ticket) {
  return h('span', { class: 'ticket-number' },
    ticket.source === 'email'
      ? h('span', { class: 'source-email', title: 'Came by email', role: 'img', 'aria-label': 'by email' }, '✉ ')
      : null,
    `#${ticket.number}`);
}

export const SLA = { on_track: 'On track', at_risk: 'At risk', breached: 'Breached', met: 'Met' };

/** "2 h 5 min", "3 d 4 h": a duration in minutes, roughly, for time left or overdue. */
export function duration(minutes) {
  const m = Math.max(0, Math.round(minutes));
  if (m < 60) return `${m} min`;
  if (m < 24 * 60) return `${Math.floor(m / 60)} h${m % 60 ? ` ${m % 60} min` : ''}`;
  const hours = Math.floor((m % (24 * 60)) / 60);
  return `${Math.floor(m / (24 * 60))} d${hours ? ` ${hours} h` : ''}`;
}

/** The SLA at a glance: its status, and the time left to (or past) the nearest due time the
 *  server says is pending (`sla_next_due_at`). */
export function slaCell(ticket, now = Date.now()) {
  if (!ticket.sla_status) return h('span', { class: 'muted' }, '—');
  const badge = h('span', { class: `badge sla-${ticket.sla_status}` }, SLA[ticket.sla_status] || ticket.sla_status);
  if (!ticket.sla_next_due_at) return badge;
  const left = (new Date(ticket.sla_next_due_at).getTime() - now) / 60000;
  const text = left >= 0 ? `${duration(left)} left` : `${duration(-left)} overdue`;
  return h('span', { class: 'sla-cell' }, badge, ' ',
    h('time', {
      class: left >= 0 ? 'sla-left' : 'sla-overdue',
      datetime: ticket.sla_next_due_at,
      title: `Due ${dateFormat.format(new Date(ticket.sla_next_due_at))}`,
    }, text));
}
