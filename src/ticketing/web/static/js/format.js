// Labels, badges and dates shared by the views.
import { h } from './dom.js';

export const STATUS = {
  open: 'Open', in_progress: 'In progress', resolved: 'Resolved', closed: 'Closed',
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

export function analysisBadge(state) {
  const label = ANALYSIS[state] || state;
  if (state === 'pending') {
    return h('span', { class: 'badge analysis-pending' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), label);
  }
  if (state === 'fallback') {
    return h('span', {
      class: 'badge analysis-fallback',
      title: 'The AI could not analyse this ticket; the built-in rules did',
    }, '⚠ ', label);
  }
  return h('span', { class: `badge analysis-${state}` }, label);
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

export function when(iso) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  const date = new Date(iso);
  return h('time', { datetime: iso }, dateFormat.format(date));
}

/** A person's display name for an id: "you", the directory's name/email, or a fallback. */
export function personName(ctx, id, fallback = 'someone') {
  if (!id) return fallback;
  if (ctx.me && id === ctx.me.id) return 'you';
  const person = ctx.directory && ctx.directory.get(id);
  if (person) return person.name ? `${person.name} (${person.email})` : person.email;
  return fallback;
}
