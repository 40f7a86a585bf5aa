// Admin: people — list, invite, change role, edit skills and availability, activate/deactivate.
import { get, patch, post } from '../api.js';
import { availabilityBadge, availabilityFields, hoursSummary } from '../availability.js';
import { chipsInput } from '../chips.js';
import {
  announce, busy, clearFieldErrors, field, formError, h, nextId, replace, select, setFieldError,
  setFormError,
} from '../dom.js';
import { ROLE, options, roleBadge, skillChips, when } from '../format.js';

const ACTIVE = { true: 'Active', false: 'Deactivated' };

export async function renderPeople(root, ctx, params) {
  ctx.setTitle('People');
  const filters = { role: params.get('role') || '', is_active: params.get('is_active') || '', q: params.get('q') || '' };
  const results = h('div', { class: 'results', id: 'people-results' });
  const summary = h('p', { class: 'summary', 'aria-live': 'polite' });
  let people = [];
  let cursor = null;
  let editing = null; // id of the person being edited

  async function load({ more = false } = {}) {
    const page = await get('/admin/users', { ...filters, limit: 100, cursor: more ? cursor : null });
    if (!ctx.alive()) return;
    people = more ? people.concat(page.items) : page.items;
    cursor = page.next_cursor;
    draw();
  }

  function draw() {
    summary.textContent = `${people.length}${cursor ? '+' : ''} ${people.length === 1 ? 'person' : 'people'}`;
    const rows = [];
    for (const person of people) {
      rows.push(personRow(person));
      if (person.id === editing) rows.push(editorRow(person));
    }
    replace(results,
      h('table', { class: 'people responsive' },
        h('caption', { class: 'sr-only' }, 'People'),
        h('thead', null, h('tr', null, ['Person', 'Role', 'Skills', 'Availability', 'Status', 'Actions']
          .map((label) => h('th', { scope: 'col' }, label)))),
        h('tbody', null, rows)),
      cursor ? h('button', {
        type: 'button', class: 'button secondary', onclick: () => load({ more: true }).catch(showError),
      }, 'Load more') : null);
  }

  function personRow(person) {
    const self = person.id === ctx.me.id;
    return h('tr', { class: person.is_active ? null : 'inactive', dataset: { email: person.email } },
      h('td', { dataset: { label: 'Person' } },
        h('div', { class: 'person' },
          h('strong', null, person.name || person.email),
          person.name ? h('span', null, person.email) : null,
          h('span', { class: 'muted small' }, self ? 'You · joined ' : 'Joined ', when(person.created_at)))),
      h('td', { dataset: { label: 'Role' } }, roleBadge(person.role)),
      h('td', { dataset: { label: 'Skills' } }, skillChips(person.skills)),
      h('td', { dataset: { label: 'Availability' } },
        h('div', { class: 'availability' },
          availabilityBadge(person),
          h('span', { class: 'muted small' }, `${hoursSummary(person)} (${person.timezone})`),
          h('span', { class: 'muted small' },
            person.max_open_tickets === null ? 'No cap' : `At most ${person.max_open_tickets} open`))),
      h('td', { dataset: { label: 'Status' } },
        h('span', { class: `badge ${person.is_active ? 'active' : 'inactive'}` }, ACTIVE[person.is_active])),
      h('td', { dataset: { label: 'Actions' } },
        h('div', { class: 'actions' },
          h('button', {
            type: 'button', class: 'button secondary small', id: `edit-${person.id}`,
            'aria-expanded': String(editing === person.id),
            'aria-label': `Edit ${person.email}`,
            onclick: () => {
              editing = editing === person.id ? null : person.id;
              draw();
              const first = document.getElementById('person-role');
              if (first) first.focus();
            },
          }, editing === person.id ? 'Close editor' : 'Edit'),
          h('button', {
            type: 'button', class: `button small ${person.is_active ? 'danger' : 'secondary'}`,
            id: `toggle-${person.id}`,
            'aria-label': `${person.is_active ? 'Deactivate' : 'Activate'} ${person.email}`,
            onclick: (event) => busy(event.target.parentElement, () => save(person, { is_active: !person.is_active },
              `${person.email} is now ${person.is_active ? 'deactivated' : 'active'}.`)),
          }, person.is_active ? 'Deactivate' : 'Activate'))));
  }

  function editorRow(person) {
    const name = h('input', { type: 'text', value: person.name || '', maxlength: '200', autocomplete: 'off' });
    const role = select(options(ROLE), person.role);
    const skills = chipsInput({ id: 'person-skills', label: 'Skills', values: person.skills });
    const availability = availabilityFields(person, { prefix: 'person', cap: true });
    const form = h('form', { class: 'editor-form', novalidate: true, 'aria-label': `Edit ${person.email}` },
      h('div', { class: 'row' },
        field({ id: 'person-name', label: 'Name', control: name }),
        field({
          id: 'person-role', label: 'Role', control: role,
          hint: 'Changing the role signs the person out everywhere.',
        })),
      skills.element,
      h('div', { class: 'subform' },
        h('h3', null, 'Availability'),
        availability.element),
      formError(),
      h('div', { class: 'actions' },
        h('button', { type: 'submit', class: 'button primary', id: 'save-person' }, 'Save changes'),
        h('button', {
          type: 'button', class: 'button secondary',
          onclick: () => { editing = null; draw(); document.getElementById(`edit-${person.id}`).focus(); },
        }, 'Cancel')));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      clearFieldErrors(form);
      const body = {};
      if (name.value.trim() && name.value.trim() !== (person.name || '')) body.name = name.value.trim();
      if (role.value !== person.role) body.role = role.value;
      const values = skills.values;
      if (values.join(',') !== person.skills.join(',')) body.skills = values;
      Object.assign(body, availability.changes());
      if (!Object.keys(body).length) {
        announce('Nothing changed.');
        return;
      }
      busy(form, () => save(person, body, `Saved changes for ${person.email}.`, form));
    });
    return h('tr', { class: 'editor' }, h('td', { colspan: '6' }, form));
  }

  async function save(person, body, message, form) {
    try {
      await patch(`/admin/users/${encodeURIComponent(person.id)}`, body);
      editing = null;
      announce(message, 'success');
      await ctx.loadDirectory(true);
      await load();
      const button = document.getElementById(`edit-${person.id}`);
      if (button) button.focus();
    } catch (error) {
      if (error.status === 401) return;
      if (form && error.status === 422) {
        for (const [key, msg] of Object.entries(error.fields)) setFieldError(form, `person-${key}`, msg);
        setFormError(form, 'Please correct the highlighted fields.');
      } else if (form) {
        setFormError(form, error.message);
      } else {
        showError(error);
      }
    }
  }

  root.classList.add('wide');
  root.append(h('section', { class: 'page' },
    h('div', { class: 'page-header' },
      h('div', null,
        h('h1', { tabindex: '-1' }, 'People'),
        h('p', { class: 'muted' }, 'Moderators get tickets that match their skills. Only admins change roles.'))),
    inviteForm(ctx, () => load()),
    filterForm(filters, () => {
      const query = new URLSearchParams();
      for (const [k, v] of Object.entries(filters)) if (v) query.set(k, v);
      history.replaceState(null, '', `#/people${query.toString() ? `?${query}` : ''}`);
      load().catch(showError);
    }),
    summary,
    results));
  await load();
}

function showError(error) {
  if (error.status !== 401) announce(error.message, 'error');
}

function inviteForm(ctx, onInvited) {
  const email = h('input', { type: 'email', autocomplete: 'off', spellcheck: 'false' });
  const name = h('input', { type: 'text', autocomplete: 'off', maxlength: '200' });
  const role = select(options(ROLE), 'user');
  const skills = chipsInput({ id: 'invite-skills', label: 'Skills (for moderators)', values: [] });
  const form = h('form', { class: 'card invite', novalidate: true, 'aria-labelledby': 'invite-heading' },
    h('h2', { id: 'invite-heading' }, 'Invite someone'),
    h('div', { class: 'row' },
      field({ id: 'invite-email', label: 'Email', control: email }),
      field({ id: 'invite-name', label: 'Name (optional)', control: name }),
      field({ id: 'invite-role', label: 'Role', control: role })),
    skills.element,
    formError(),
    h('button', { type: 'submit', class: 'button primary', id: 'invite' }, 'Invite'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearFieldErrors(form);
    const body = { email: email.value.trim(), role: role.value, skills: skills.values };
    if (name.value.trim()) body.name = name.value.trim();
    try {
      const person = await busy(form, () => post('/admin/users', body));
      announce(`Invited ${person.email} as ${ROLE[person.role].toLowerCase()}. They sign in with their email.`, 'success');
      form.reset();
      skills.clear();
      email.focus();
      await ctx.loadDirectory(true);
      await onInvited();
    } catch (error) {
      if (error.status === 401) return;
      if (error.status === 422) {
        for (const [key, msg] of Object.entries(error.fields)) setFieldError(form, `invite-${key}`, msg);
        setFormError(form, 'Please correct the highlighted fields.');
      } else if (error.status === 409) {
        setFieldError(form, 'invite-email', 'Someone with this email already has an account.');
        email.focus();
      } else {
        setFormError(form, error.message);
      }
    }
  });
  return form;
}

function filterForm(filters, apply) {
  const role = select(options(ROLE, 'Any role'), filters.role);
  const active = select([['', 'Active or not'], ['true', 'Active'], ['false', 'Deactivated']], filters.is_active);
  const q = h('input', { type: 'search', value: filters.q, placeholder: 'Email or name', maxlength: '200' });
  const ids = { role: nextId('people-role'), active: nextId('people-active'), q: nextId('people-q') };
  role.id = ids.role;
  active.id = ids.active;
  q.id = ids.q;
  role.addEventListener('change', () => { filters.role = role.value; apply(); });
  active.addEventListener('change', () => { filters.is_active = active.value; apply(); });
  const form = h('form', { class: 'filters card', role: 'search', 'aria-label': 'Filter people' },
    h('div', { class: 'field' }, h('label', { for: ids.role }, 'Role'), role),
    h('div', { class: 'field' }, h('label', { for: ids.active }, 'Status'), active),
    h('div', { class: 'field filter-q' }, h('label', { for: ids.q }, 'Search'), q),
    h('div', { class: 'filter-buttons' }, h('button', { type: 'submit', class: 'button primary' }, 'Search')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    filters.q = q.value.trim();
    apply();
  });
  return form;
}
