// One ticket: details, AI triage (staff), actions, conversation with a reply box, timeline.
import { get, patch, post, waitText } from '../api.js';
import { chipsInput } from '../chips.js';
import {
  announce, busy, clearFieldErrors, field, formError, h, replace, select, setFieldError,
  setFormError,
} from '../dom.js';
import {
  PRIORITY, ROLE, STATUS, TYPE, analyser, analysisBadge, options, ticketNumber, personName, priorityBadge, skillChips,
  reviewBadge, slaCell, statusBadge, typeBadge, when,
} from '../format.js';
import { failureMessage, fileList, filePicker, sendFiles } from '../files.js';

const POLL_MS = 2000;

// What the server lets this person do (ticket.allowed_status / allowed_fields /
// allowed_actions) decides which controls appear; the page only chooses their words.
function moveLabel(ctx, ticket, to) {
  const from = ticket.status;
  if (to === 'in_progress') return from === 'waiting' ? 'Resume work' : 'Start work';
  if (to === 'resolved') return 'Resolve';
  if (to === 'waiting') return 'Wait for requester';
  if (to === 'open') return from === 'resolved' ? 'Reopen' : 'Back to open';
  const requester = ticket.created_by === ctx.me.id && !ctx.isAdmin;
  if (from !== 'resolved' && requester) return 'Withdraw ticket';
  return 'Close ticket';
}

const may = (ticket, action) => ticket.allowed_actions.includes(action);
const mayChange = (ticket, name) => ticket.allowed_fields.includes(name);

function showError(error) {
  if (error.status !== 401) announce(error.message, 'error');
}

export async function renderTicket(root, ctx, ticketId) {
  if (ctx.isAdmin) await ctx.loadDirectory();
  const path = `/tickets/${encodeURIComponent(ticketId)}`;
  let data;
  try {
    data = await fetchAll(path);
  } catch (error) {
    if (error.status !== 404) throw error;
    ctx.setTitle('Ticket not found');
    root.append(h('section', { class: 'page narrow' },
      h('h1', { tabindex: '-1' }, 'Ticket not found'),
      h('p', null, 'This ticket does not exist, or it is not one you can see.'),
      h('a', { href: '#/' }, 'Back to your tickets')));
    return;
  }
  if (!ctx.alive()) return;

  const heading = h('div', { class: 'ticket-heading' });
  const details = h('section', { class: 'card', 'aria-labelledby': 'details-heading' });
  const triage = h('section', { class: 'card triage', 'aria-labelledby': 'triage-heading' });
  const actions = h('section', { class: 'card', 'aria-labelledby': 'actions-heading' });
  const description = h('section', { class: 'card', 'aria-labelledby': 'description-heading' });
  const conversation = h('ol', { class: 'comments', id: 'comments' });
  const timeline = h('section', { class: 'card', 'aria-labelledby': 'timeline-heading' });
  let watch = null; // {analyzedAt, until}: after "re-analyse", refresh until it lands
  let timer = null;

  // Redraw only when something changed, so polling never disturbs a form being filled in.
  async function refresh() {
    const next = await fetchAll(path);
    if (!ctx.alive()) return;
    if (JSON.stringify(next) === JSON.stringify(data)) {
      schedule();
      return;
    }
    data = next;
    draw();
  }

  function schedule() {
    clearTimeout(timer);
    const t = data.ticket;
    if (watch && (t.analyzed_at !== watch.analyzedAt || Date.now() > watch.until)) watch = null;
    if (t.analysis_status !== 'pending' && !watch) return;
    timer = setTimeout(() => {
      if (ctx.alive()) refresh().catch(() => {});
    }, POLL_MS);
  }

  function draw() {
    const { ticket } = data;
    ctx.setTitle(ticket.title);
    replace(heading,
      h('p', { class: 'ticket-ref' }, ticketNumber(ticket)),
      h('h1', { tabindex: '-1', id: 'ticket-title' }, ticket.title),
      h('div', { class: 'badges' },
        statusBadge(ticket.status), priorityBadge(ticket.priority), typeBadge(ticket.ticket_type),
        analysisBadge(ticket), reviewBadge(ticket)));
    const ticketFiles = data.files.filter((f) => f.comment_id === null);
    replace(description,
      h('h2', { id: 'description-heading' }, 'Description'),
      h('div', { class: 'description' }, ticket.description),
      ticketFiles.length ? h('h3', { class: 'files-heading', id: 'ticket-files-heading' }, 'Files') : null,
      ticketFiles.length ? fileList(ticketFiles, { label: 'Files of the ticket' }) : null);
    replace(details, h('h2', { id: 'details-heading' }, 'Details'), detailsList(ctx, ticket));
    const staffView = may(ticket, 'internal_notes');
    triage.hidden = !staffView;
    if (staffView) replace(triage, h('h2', { id: 'triage-heading' }, 'AI triage'), triageInfo(ctx, ticket));
    const actionItems = actionsFor(ticket);
    actions.hidden = actionItems.length === 0;
    replace(actions, h('h2', { id: 'actions-heading' }, 'Actions'), ...actionItems);
    replace(conversation, ...data.comments.map((c) => comment(ctx, ticket, c)));
    if (!data.comments.length) {
      conversation.append(h('li', { class: 'muted empty-comments' }, 'No replies yet.'));
    }
    replace(timeline, h('h2', { id: 'timeline-heading' }, 'Timeline'),
      h('ol', { class: 'timeline' }, data.events.map((e) => timelineItem(ctx, ticket, e))));
    schedule();
  }

  async function change(body, message) {
    try {
      const ticket = await patch(path, body);
      data.ticket = ticket;
      announce(message(ticket), 'success');
      await refresh();
    } catch (error) {
      showError(error);
      await refresh().catch(() => {});
    }
  }

  function actionsFor(ticket) {
    const items = [];
    const moves = ticket.allowed_status;
    if (moves.length) {
      const group = h('div', { class: 'actions', role: 'group', 'aria-label': 'Change status' });
      for (const to of moves) {
        const label = moveLabel(ctx, ticket, to);
        const onclick = to === 'closed'
          ? () => confirmClose(group, label)
          : () => busy(group, () => change({ status: to }, (t) => `Status changed to ${STATUS[t.status]}.`));
        group.append(h('button', {
          type: 'button', id: `status-to-${to}`, onclick,
          class: `button ${to === 'resolved' ? 'primary' : to === 'closed' ? 'danger' : 'secondary'}`,
        }, label));
      }
      items.push(group);
    } else if (ticket.status === 'closed') {
      items.push(h('p', { class: 'muted' }, 'This ticket is closed. Closed tickets are final.'));
    }
    if (['priority', 'ticket_type', 'required_skills'].some((name) => mayChange(ticket, name))) {
      items.push(triageForm(ticket));
    }
    items.push(...adminForms(ticket));
    return items;
  }

  // Closing is final: ask once, in the page, before doing it.
  function confirmClose(group, label) {
    const box = h('div', { class: 'confirm', role: 'group', 'aria-labelledby': 'confirm-close-text' },
      h('p', { id: 'confirm-close-text' }, 'Closed tickets are final: they cannot be reopened. Continue?'));
    const yes = h('button', {
      type: 'button', class: 'button danger', id: 'confirm-close',
      onclick: () => busy(box, () => change({ status: 'closed' }, () => 'The ticket is closed.')),
    }, `Yes, ${label.toLowerCase()}`);
    const no = h('button', {
      type: 'button', class: 'button secondary',
      onclick: () => {
        draw();
        const again = document.getElementById('status-to-closed');
        if (again) again.focus();
      },
    }, 'Cancel');
    box.append(h('div', { class: 'actions' }, yes, no));
    group.replaceWith(box);
    yes.focus();
  }

  function triageForm(ticket) {
    const priority = select(options(PRIORITY, ticket.priority ? null : 'Not set'), ticket.priority);
    const type = select(options(TYPE, ticket.ticket_type ? null : 'Not set'), ticket.ticket_type);
    const skills = chipsInput({ id: 'edit-skills', label: 'Required skills', values: ticket.required_skills });
    const form = h('form', { class: 'subform', 'aria-labelledby': 'triage-form-heading' },
      h('h3', { id: 'triage-form-heading' }, 'Edit triage'),
      h('div', { class: 'row' },
        field({ id: 'edit-priority', label: 'Priority', control: priority }),
        field({ id: 'edit-type', label: 'Type', control: type })),
      skills.element,
      formError(),
      h('button', { type: 'submit', class: 'button secondary', id: 'save-triage' }, 'Save triage'));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const body = {};
      if (priority.value && priority.value !== ticket.priority) body.priority = priority.value;
      if (type.value && type.value !== ticket.ticket_type) body.ticket_type = type.value;
      const values = skills.values;
      if (values.join(',') !== ticket.required_skills.join(',')) body.required_skills = values;
      if (!Object.keys(body).length) {
        announce('Nothing to save: the triage is unchanged.');
        return;
      }
      busy(form, () => change(body, () => 'Triage saved.'));
    });
    return form;
  }

  function adminForms(ticket) {
    const forms = [];
    if (mayChange(ticket, 'assigned_to')) {
      const staff = [...ctx.directory.values()]
        .filter((p) => p.is_active && p.role !== 'user')
        .sort((a, b) => a.role.localeCompare(b.role) || a.email.localeCompare(b.email));
      const choice = select([
        ...(ticket.assigned_to ? [] : [['', 'Choose a person']]),
        ...staff.map((p) => [p.id, `${p.name || p.email} (${ROLE[p.role]}${p.skills.length ? `: ${p.skills.join(', ')}` : ''})`]),
      ], ticket.assigned_to);
      const form = h('form', { class: 'subform', 'aria-labelledby': 'reassign-heading' },
        h('h3', { id: 'reassign-heading' }, 'Reassign'),
        field({ id: 'reassign-to', label: 'Assign to', control: choice }),
        h('button', { type: 'submit', class: 'button secondary', id: 'reassign' }, 'Reassign'));
      form.addEventListener('submit', (event) => {
        event.preventDefault();
        if (!choice.value || choice.value === ticket.assigned_to) {
          announce('Choose someone other than the current assignee.');
          return;
        }
        busy(form, () => change({ assigned_to: choice.value },
          (t) => `Reassigned to ${personName(ctx, t.assigned_to, 'the chosen person')}; they have been emailed.`));
      });
      forms.push(form);
    }
    if (!may(ticket, 'reanalyze')) return forms;
    const rerun = h('div', { class: 'subform' },
      h('h3', null, 'AI analysis'),
      h('button', { type: 'button', class: 'button secondary', id: 'reanalyze' }, 'Re-analyse with AI'));
    rerun.querySelector('button').addEventListener('click', () => busy(rerun, async () => {
      try {
        const answer = await post(`${path}/reanalyze`);
        announce(answer.queued ? 'Queued for AI re-analysis.' : 'A re-analysis is already queued.', 'success');
        watch = { analyzedAt: data.ticket.analyzed_at, until: Date.now() + 60000 };
        schedule();
      } catch (error) {
        showError(error);
      }
    }));
    forms.push(rerun);
    return forms;
  }

  const replyForm = buildReplyForm(ctx, data.ticket.id, path, may(data.ticket, 'internal_notes'), async () => refresh());

  root.classList.add('wide');
  root.append(h('article', { class: 'page ticket-page' },
    h('p', { class: 'back' }, h('a', { href: ctx.me.role === 'moderator' ? '#/queue' : '#/tickets' }, '← Back to the list')),
    heading,
    h('div', { class: 'ticket-grid' },
      h('div', { class: 'ticket-main' },
        description,
        h('section', { class: 'card', 'aria-labelledby': 'conversation-heading' },
          h('h2', { id: 'conversation-heading' }, 'Conversation'),
          conversation,
          replyForm)),
      h('div', { class: 'ticket-side' }, details, triage, actions, timeline))));
  draw();
}

async function fetchAll(path) {
  const [ticket, comments, events, files] = await Promise.all([
    get(path),
    get(`${path}/comments`, { order: 'oldest', limit: 100 }),
    get(`${path}/events`, { order: 'oldest', limit: 100 }),
    get(`${path}/attachments`),
  ]);
  return { ticket, comments: comments.items, events: events.items, files: files.items };
}

function detailsList(ctx, ticket) {
  const rows = [
    ['Status', statusBadge(ticket.status)],
    ['Priority', priorityBadge(ticket.priority)],
    ['Type', typeBadge(ticket.ticket_type)],
    ['Analysis', analysisBadge(ticket)],
    ['Filed', h('span', null, when(ticket.created_at), ' by ', personName(ctx, ticket.created_by, 'the requester'))],
    ['Assignee', ticket.assigned_to
      ? (ctx.isStaff ? personName(ctx, ticket.assigned_to, 'a moderator') : 'A support agent is on it')
      : h('span', { class: 'muted' }, ticket.analysis_status === 'pending' ? 'Waiting for triage' : 'Not assigned yet')],
    ['Updated', when(ticket.updated_at)],
  ];
  if (ticket.resolved_at) rows.push(['Resolved', when(ticket.resolved_at)]);
  if (ticket.sla_status) {
    rows.push(['SLA', slaCell(ticket)]);
    rows.push(['First response due', h('span', null, when(ticket.first_response_due_at),
      ticket.first_responded_at ? h('span', { class: 'muted' }, ' · answered ', when(ticket.first_responded_at)) : null)]);
    rows.push(['Resolution due', ticket.status === 'waiting'
      ? h('span', null, when(ticket.resolution_due_at), h('span', { class: 'muted' }, ' · paused while waiting on the requester'))
      : when(ticket.resolution_due_at)]);
  }
  return h('dl', { class: 'details', id: 'ticket-details' },
    rows.map(([term, value]) => h('div', { class: 'detail' }, h('dt', null, term), h('dd', null, value))));
}

function triageInfo(ctx, ticket) {
  if (ticket.analysis_status === 'pending') {
    return h('p', { class: 'muted' }, 'The ticket is being analysed. This page updates by itself.');
  }
  const rows = [
    ['Required skills', skillChips(ticket.required_skills)],
    ['Notes for the moderator', ticket.helpful_notes
      ? h('p', { class: 'notes' }, ticket.helpful_notes) : h('span', { class: 'muted' }, 'None')],
    ['Assignment reason', ticket.assignment_reason || h('span', { class: 'muted' }, '—')],
    ['Analysed by', h('span', null, analysedBy(ticket),
      ticket.analyzed_at ? ' · ' : '', ticket.analyzed_at ? when(ticket.analyzed_at) : '')],
  ];
  if (ticket.analysis_confidence) {
    const c = ticket.analysis_confidence;
    const parts = [['ticket_type', 'type'], ['priority', 'priority']]
      .filter(([key]) => typeof c[key] === 'number')
      .map(([key, label]) => `${label} ${Math.round(c[key] * 100)} %`);
    rows.push(['Confidence', h('span', { id: 'analysis-confidence' }, parts.join(' · '),
      ticket.needs_review ? h('span', { class: 'muted' }, ' (below the review threshold)') : null)]);
  }
  if (ticket.analysis_error) rows.push(['AI error', h('span', { class: 'error-text' }, ticket.analysis_error)]);
  return h('dl', { class: 'details', id: 'triage-details' },
    rows.map(([term, value]) => h('div', { class: 'detail' }, h('dt', null, term), h('dd', null, value))));
}

function analysedBy(ticket) {
  const who = analyser(ticket.analysis_provider, ticket.analysis_model);
  if (ticket.analysis_status === 'fallback') return `${who.label} (AI failed)`;
  const local = ticket.analysis_provider === 'local';
  if (local && who.label === 'Built-in rules') return who.label;
  return [who.label, local ? null : ticket.analysis_provider, ticket.analysis_model]
    .filter(Boolean).join(' · ');
}

function authorName(ctx, ticket, authorId) {
  if (authorId === ctx.me.id) return 'You';
  const person = ctx.directory && ctx.directory.get(authorId);
  if (person) return person.name || person.email;
  if (authorId === ticket.created_by) return 'Requester';
  return 'Support team';
}

function comment(ctx, ticket, c) {
  return h('li', { class: `comment${c.internal ? ' internal' : ''}`, id: `comment-${c.id}` },
    h('div', { class: 'comment-meta' },
      h('strong', null, authorName(ctx, ticket, c.author_id)),
      c.internal ? h('span', { class: 'badge internal-badge' }, 'Internal note · staff only') : null,
      c.source === 'email' ? h('span', { class: 'comment-source' }, '✉ by email') : null,
      when(c.created_at)),
    h('div', { class: 'comment-body' }, c.body),
    c.attachments && c.attachments.length
      ? fileList(c.attachments, { label: c.internal ? 'Files of this internal note' : 'Files of this reply' })
      : null);
}

function buildReplyForm(ctx, ticketId, path, staff, onPosted) {
  const body = h('textarea', { name: 'body', rows: '4', maxlength: '20000' });
  const files = filePicker({
    id: 'reply-files', label: 'Attach files',
    hint: staff ? 'Files of an internal note are for staff only, like the note.' : null,
  });
  const form = h('form', { class: 'reply', novalidate: true, 'aria-label': staff ? 'Reply or add an internal note' : 'Reply' },
    field({
      id: 'reply-body', label: staff ? 'Reply or internal note' : 'Your reply', control: body,
      hint: staff ? 'A reply is visible to the requester; an internal note only to moderators and admins.' : null,
    }),
    files.element,
    formError(),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'button primary', id: 'send-reply', value: 'public' }, 'Send reply'),
      staff ? h('button', { type: 'submit', class: 'button note-button', id: 'add-note', value: 'internal' }, 'Add internal note') : null));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const internal = event.submitter && event.submitter.value === 'internal';
    clearFieldErrors(form);
    const chosen = files.files;
    let failures = [];
    try {
      await busy(form, async () => {
        const comment = await post(`${path}/comments`, { body: body.value, internal });
        body.value = '';
        if (chosen.length) {
          failures = await sendFiles(ticketId, chosen, { commentId: comment.id, picker: files });
        }
        files.clear();
      });
      const done = internal ? 'Internal note added' : 'Reply sent';
      if (failures.length) announce(`${done}, but not all of its files. ${failureMessage(failures)}`, 'error');
      else announce(`${done}.`, 'success');
      await onPosted();
    } catch (error) {
      if (error.status === 401) return;
      if (error.status === 422 && error.fields.body) {
        setFieldError(form, 'reply-body', error.fields.body);
        body.focus();
      } else if (error.status === 429) {
        setFormError(form, `Too many requests. Try again in ${waitText(error.retryAfter)}.`);
      } else {
        setFormError(form, error.message);
      }
    }
  });
  return form;
}

const EMAIL_KINDS = {
  assignment: 'assignment', resolved: 'ticket resolved', otp: 'sign-in code',
  acknowledgement: 'acknowledgement', reply: 'reply',
  sla_warning: 'SLA at risk', sla_breach: 'SLA missed',
};
const SLA_TARGET = { first_response: 'first response', resolution: 'resolution' };

function timelineItem(ctx, ticket, e) {
  const d = e.data || {};
  const name = (id, email) => (id === ctx.me.id ? 'you' : personName(ctx, id, email || 'a moderator'));
  let text;
  switch (e.kind) {
    case 'created':
      text = d.source === 'email' ? 'Ticket filed by email' : 'Ticket filed';
      break;
    case 'analysed':
      text = d.outcome === 'ai'
        ? `Analysed by ${analyser(d.provider, d.model).phrase}${d.provider === 'local' ? '' : ` (${[d.provider, d.model].filter(Boolean).join(', ')})`}`
        : `AI analysis failed; ${analyser(d.provider, d.model).phrase} used instead${d.error ? ` (${d.error})` : ''}`;
      if (d.priority) text += `: ${PRIORITY[d.priority] || d.priority}, ${TYPE[d.ticket_type] || d.ticket_type}`;
      if (d.required_skills && d.required_skills.length) text += `; skills ${d.required_skills.join(', ')}`;
      break;
    case 'assigned':
      text = d.to ? `Assigned to ${name(d.to, d.to_email)}` : 'Unassigned';
      if (d.reason) text += ` — ${d.reason}`;
      break;
    case 'unassigned':
      text = `Not assigned${d.reason ? ` — ${d.reason}` : ''}`;
      break;
    case 'status_changed':
      text = `Status: ${STATUS[d.from] || d.from} → ${STATUS[d.to] || d.to}`;
      break;
    case 'updated':
      text = `Changed ${Object.entries(d).map(([k, v]) => `${k.replace('_', ' ')}: ${fmt(v && v.from)} → ${fmt(v && v.to)}`).join('; ')}`;
      break;
    case 'commented':
      text = `${d.internal ? 'Internal note added' : 'Reply posted'}${d.source === 'email' ? ' by email' : ''}`;
      break;
    case 'attachments_dropped':
      text = `Files not kept: ${(d.names || []).join(', ')}`;
      break;
    case 'sla_warning':
    case 'sla_breached':
      text = `SLA ${SLA_TARGET[d.target] || d.target} ${e.kind === 'sla_warning' ? 'at risk' : 'target missed'}`;
      if (d.due_at) text += ` (due ${new Date(d.due_at).toLocaleString()})`;
      break;
    case 'emailed':
      text = `Emailed ${d.to || 'someone'} (${EMAIL_KINDS[d.kind] || d.kind || 'notification'})`;
      break;
    default:
      text = e.kind.replace('_', ' ');
  }
  const actor = e.actor_id
    ? (e.actor_id === ticket.created_by && e.actor_id !== ctx.me.id ? 'requester' : name(e.actor_id, 'staff'))
    : 'system';
  return h('li', { class: `event${e.internal ? ' internal' : ''}`, dataset: { kind: e.kind } },
    h('p', { class: 'event-text' }, text),
    h('p', { class: 'event-meta' }, when(e.created_at), ` · by ${actor}`,
      e.internal ? h('span', { class: 'badge internal-badge small' }, 'staff only') : null));
}

function fmt(value) {
  if (Array.isArray(value)) return value.length ? value.join(', ') : 'none';
  return value === null || value === undefined ? 'not set' : String(value);
}
