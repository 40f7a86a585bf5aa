// File a ticket. What you type is kept as a draft in sessionStorage, so an expired session
// (sign in again) or a reload does not lose it.
import { api, waitText } from '../api.js';
import {
  announce, busy, clearFieldErrors, field, formError, h, setFieldError, setFormError,
} from '../dom.js';
import { failureMessage, filePicker, sendFiles } from '../files.js';

const DRAFT_KEY = 'helpdesk.draft';

function loadDraft(owner) {
  try {
    const draft = JSON.parse(sessionStorage.getItem(DRAFT_KEY) || 'null');
    return draft && draft.owner === owner ? draft : null;
  } catch {
    return null;
  }
}

export function clearDraft() {
  sessionStorage.removeItem(DRAFT_KEY);
}

export function renderNewTicket(root, ctx) {
  ctx.setTitle('New ticket');
  const draft = loadDraft(ctx.me.email) || { title: '', description: '' };
  const title = h('input', { type: 'text', name: 'title', maxlength: '200', value: draft.title, autocomplete: 'off' });
  const description = h('textarea', { name: 'description', rows: '10', maxlength: '20000' });
  description.value = draft.description;
  const files = filePicker({
    id: 'ticket-files', label: 'Attach files (optional)',
    hint: 'Screenshots, logs or documents; they are sent once the ticket is filed.',
  });

  const form = h('form', { novalidate: true, class: 'card', 'aria-labelledby': 'new-ticket-heading' },
    field({ id: 'ticket-title', label: 'Title', control: title, hint: 'A short summary, up to 200 characters.' }),
    field({
      id: 'ticket-description', label: 'Description', control: description,
      hint: 'What happened, what you expected, and the steps to reproduce it.',
    }),
    files.element,
    formError(),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'button primary' }, 'Submit ticket'),
      h('button', { type: 'button', class: 'button secondary', onclick: discard }, 'Clear')));

  function save() {
    sessionStorage.setItem(DRAFT_KEY, JSON.stringify({
      owner: ctx.me.email, title: title.value, description: description.value,
    }));
  }
  title.addEventListener('input', save);
  description.addEventListener('input', save);

  function discard() {
    clearDraft();
    title.value = '';
    description.value = '';
    files.clear();
    clearFieldErrors(form);
    title.focus();
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearFieldErrors(form);
    save();
    try {
      const chosen = files.files;
      let failures = [];
      const ticket = await busy(form, async () => {
        const filed = await api('POST', '/tickets/create', {
          body: { title: title.value, description: description.value },
        });
        clearDraft();
        if (chosen.length) failures = await sendFiles(filed.id, chosen, { picker: files });
        return filed;
      });
      if (failures.length) {
        announce(`Ticket submitted, but not all of its files. ${failureMessage(failures)}`, 'error');
      } else {
        announce('Ticket submitted. It is being analysed and routed to the right person.', 'success');
      }
      ctx.navigate(`#/tickets/${encodeURIComponent(ticket.id)}`);
    } catch (error) {
      if (error.status === 401) return; // sign-in again; the draft is kept
      if (error.status === 422) {
        let first = null;
        for (const [name, message] of Object.entries(error.fields)) {
          const id = `ticket-${name}`;
          if (setFieldError(form, id, message) && !first) first = id;
        }
        setFormError(form, error.general.length ? error.general.join(' ') : 'Please correct the highlighted fields.');
        if (first) document.getElementById(first).focus();
      } else if (error.status === 429) {
        setFormError(form, `You are filing tickets too quickly. Try again in ${waitText(error.retryAfter)}.`);
      } else {
        setFormError(form, error.message);
      }
    }
  });

  root.append(h('section', { class: 'page narrow' },
    h('h1', { id: 'new-ticket-heading', tabindex: '-1' }, 'New ticket'),
    draft.title || draft.description
      ? h('p', { class: 'note', id: 'draft-restored' }, 'Your unsent draft was restored.') : null,
    form));
}
