// Availability: the status badge and the form fields shared by "My availability" and People.
// Whether someone is available is the server's answer (`available`); the page only says why not.
import { field, h, setFieldError } from './dom.js';
import { when } from './format.js';

export const DAYS = ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'];

/** "Available", "Away until …", "Off shift" or "Deactivated". */
export function availabilityBadge(person) {
  if (person.available) return h('span', { class: 'badge available' }, 'Available');
  if (!person.is_active) return h('span', { class: 'badge inactive' }, 'Deactivated');
  if (person.away_until && new Date(person.away_until) > new Date()) {
    return h('span', { class: 'badge away' }, 'Away until ', when(person.away_until, { short: true }));
  }
  return h('span', { class: 'badge off-shift', title: 'Outside their working hours now' }, 'Off shift');
}

/** "Mon 09:00–17:00, Tue …" or "Any time". */
export function hoursSummary(person) {
  if (!person.working_hours.length) return 'Any time';
  return person.working_hours
    .map((p) => `${DAYS[p.day].slice(0, 3)} ${p.start}–${p.end}`)
    .join(', ');
}

function pad(n) {
  return String(n).padStart(2, '0');
}

// <input type="datetime-local"> speaks the browser's local time without an offset.
function toLocalInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

let zoneList = null;
function zoneOptions() {
  if (!zoneList) {
    zoneList = h('datalist', { id: 'time-zones' });
    const zones = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];
    for (const zone of ['UTC', ...zones]) zoneList.append(h('option', { value: zone }));
  }
  return zoneList;
}

/**
 * The availability controls for `person`: time zone, away until, working hours and (for admins)
 * the cap on open tickets. `prefix` names the controls (`${prefix}-timezone`, ...).
 * Returns { element, changes() -> the fields that differ from `person`, showErrors(form, fields) }.
 */
export function availabilityFields(person, { prefix, cap = false }) {
  const zone = h('input', {
    type: 'text', value: person.timezone, list: 'time-zones', autocomplete: 'off',
    spellcheck: 'false', maxlength: '64',
  });
  const away = h('input', { type: 'datetime-local', value: toLocalInput(person.away_until) });
  const back = h('button', {
    type: 'button', class: 'button secondary small', id: `${prefix}-back`,
    onclick: () => { away.value = ''; away.focus(); },
  }, 'Not away');
  const limit = cap ? h('input', {
    type: 'number', min: '0', step: '1', inputmode: 'numeric',
    value: person.max_open_tickets === null ? '' : String(person.max_open_tickets),
  }) : null;

  const rows = h('ul', { class: 'hours-list' });
  let count = 0;
  function addRow(period) {
    count += 1;
    const n = count;
    const day = h('select', { 'aria-label': `Day of working hours ${n}`, class: 'hours-day' },
      DAYS.map((name, i) => h('option', { value: String(i), selected: i === period.day }, name)));
    const start = h('input', { type: 'time', value: period.start, 'aria-label': `Start of working hours ${n}`, class: 'hours-start' });
    const end = h('input', { type: 'time', value: period.end === '24:00' ? '00:00' : period.end, 'aria-label': `End of working hours ${n}`, class: 'hours-end' });
    const row = h('li', { class: 'hours-row' }, day, start, h('span', { 'aria-hidden': 'true' }, '–'), end,
      h('button', {
        type: 'button', class: 'link-button', 'aria-label': `Remove working hours ${n}`,
        onclick: () => { row.remove(); add.focus(); },
      }, 'Remove'));
    rows.append(row);
    return row;
  }
  const add = h('button', {
    type: 'button', class: 'button secondary small', id: `${prefix}-add-hours`,
    onclick: () => {
      const last = rows.lastElementChild;
      const day = last ? (Number(last.querySelector('.hours-day').value) + 1) % 7 : 0;
      addRow({ day, start: '09:00', end: '17:00' }).querySelector('select').focus();
    },
  }, 'Add hours');
  for (const period of person.working_hours) addRow(period);

  const hoursId = `${prefix}-working_hours`;
  const hours = h('fieldset', { class: 'field hours', id: hoursId, 'aria-describedby': `${hoursId}-hint ${hoursId}-error` },
    h('legend', null, 'Working hours'),
    h('p', { class: 'hint', id: `${hoursId}-hint` },
      'In the time zone above. None: any time. An end before the start runs past midnight.'),
    rows, add,
    h('p', { class: 'field-error', id: `${hoursId}-error`, hidden: true }));

  const element = h('div', { class: 'availability-fields' },
    h('div', { class: 'row' },
      field({ id: `${prefix}-timezone`, label: 'Time zone', control: zone, hint: 'An IANA name such as Europe/Berlin.' }),
      h('div', { class: 'away-field' },
        field({ id: `${prefix}-away_until`, label: 'Away until', control: away, hint: 'In your browser’s time. Empty: not away.' }),
        back),
      cap ? field({ id: `${prefix}-max_open_tickets`, label: 'Most open tickets', control: limit, hint: 'Empty: no cap.' }) : null),
    hours,
    zoneOptions());

  function periods() {
    return [...rows.querySelectorAll('.hours-row')].map((row) => ({
      day: Number(row.querySelector('.hours-day').value),
      start: row.querySelector('.hours-start').value,
      end: row.querySelector('.hours-end').value,
    }));
  }

  function changes() {
    const body = {};
    if (zone.value.trim() !== person.timezone) body.timezone = zone.value.trim();
    const wanted = periods();
    if (JSON.stringify(wanted) !== JSON.stringify(person.working_hours)) body.working_hours = wanted;
    if (away.value !== toLocalInput(person.away_until)) {
      body.away_until = away.value ? new Date(away.value).toISOString() : null;
    }
    if (cap) {
      const raw = limit.value.trim();
      // Anything but a whole number goes as typed: the server says what is wrong with it.
      const value = raw === '' ? null : (/^\d+$/.test(raw) ? Number(raw) : raw);
      if (value !== person.max_open_tickets) body.max_open_tickets = value;
    }
    return body;
  }

  function showErrors(form, fields) {
    let shown = false;
    for (const [key, message] of Object.entries(fields)) {
      shown = setFieldError(form, `${prefix}-${key}`, message) || shown;
    }
    return shown;
  }

  return { element, changes, showErrors };
}
