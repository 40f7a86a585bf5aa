// Admin: the SLA policy — targets per priority, business hours, holidays, when to warn.
// The server validates (422 names the field); the page only lays the policy out.
import { api, get } from '../api.js';
import { announce, busy, field, formError, h, nextId, replace, select, setFormError } from '../dom.js';
import { PRIORITY, duration } from '../format.js';

const DAYS = ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'];
const PRIORITIES = ['urgent', 'high', 'medium', 'low'];

function zones() {
  try {
    return Intl.supportedValuesOf('timeZone');
  } catch {
    return [];
  }
}

export async function renderSla(root, ctx) {
  ctx.setTitle('SLA');
  const policy = await get('/admin/sla');
  if (!ctx.alive()) return;
  const form = h('form', { class: 'sla-form card', id: 'sla-form', novalidate: true });
  root.append(h('section', { class: 'page' },
    h('div', { class: 'page-header' }, h('div', null,
      h('h1', { tabindex: '-1' }, 'Service levels'),
      h('p', { class: 'muted' },
        'How soon tickets must get a first answer and be resolved, per priority. The assignee is '
        + 'warned when a target is at risk; a missed target also alerts the admins. Open tickets '
        + 'follow a change within moments.'))),
    form));
  draw(form, policy);
}

function draw(form, policy) {
  const targets = h('tbody');
  const inputs = {};
  for (const priority of PRIORITIES) {
    const current = policy.policies[priority];
    const on = h('input', { type: 'checkbox', id: `sla-${priority}-on`, checked: Boolean(current) });
    const first = h('input', {
      type: 'number', min: '1', step: '1', id: `sla-${priority}-first`, inputmode: 'numeric',
      value: current ? String(current.first_response_minutes) : '', disabled: !current,
      'aria-label': `${PRIORITY[priority]}: first response, minutes`,
    });
    const resolution = h('input', {
      type: 'number', min: '1', step: '1', id: `sla-${priority}-resolution`, inputmode: 'numeric',
      value: current ? String(current.resolution_minutes) : '', disabled: !current,
      'aria-label': `${PRIORITY[priority]}: resolution, minutes`,
    });
    const hint = h('span', { class: 'muted small', 'aria-live': 'polite' });
    const explain = () => {
      const a = Number(first.value);
      const b = Number(resolution.value);
      hint.textContent = on.checked && a > 0 && b > 0 ? `${duration(a)} · ${duration(b)}` : '';
    };
    on.addEventListener('change', () => {
      first.disabled = !on.checked;
      resolution.disabled = !on.checked;
      explain();
    });
    first.addEventListener('input', explain);
    resolution.addEventListener('input', explain);
    explain();
    inputs[priority] = { on, first, resolution };
    targets.append(h('tr', { dataset: { priority } },
      h('th', { scope: 'row' }, h('label', { for: on.id }, on, ` ${PRIORITY[priority]}`)),
      h('td', null, first), h('td', null, resolution), h('td', null, hint)));
  }

  const ratio = h('input', {
    type: 'number', min: '1', max: '99', step: '1', id: 'sla-warning',
    value: String(Math.round(policy.warning_ratio * 100)),
  });

  const hours = policy.business_hours;
  const useHours = h('input', { type: 'checkbox', id: 'sla-business-hours', checked: Boolean(hours) });
  const zoneList = h('datalist', { id: nextId('zones') }, zones().map((z) => h('option', { value: z })));
  const zone = h('input', {
    type: 'text', id: 'sla-timezone', list: zoneList.id, autocomplete: 'off',
    value: hours ? hours.timezone : Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC',
  });
  const periods = h('ul', { class: 'sla-periods', id: 'sla-periods' });
  const addPeriod = (p) => {
    const day = select(DAYS.map((d, i) => [String(i), d]), String(p.day));
    day.setAttribute('aria-label', 'Day');
    const start = h('input', { type: 'time', value: p.start, 'aria-label': 'From' });
    const end = h('input', { type: 'time', value: p.end === '24:00' ? '00:00' : p.end, 'aria-label': 'Until' });
    const item = h('li', null, day, start, h('span', null, 'to'), end,
      h('button', { type: 'button', class: 'button secondary small', onclick: () => item.remove() }, 'Remove'));
    periods.append(item);
  };
  const weekdays = [0, 1, 2, 3, 4].map((day) => ({ day, start: '09:00', end: '17:00' }));
  for (const p of (hours ? hours.days : weekdays)) addPeriod(p);
  const hoursBox = h('div', { id: 'sla-hours-box', hidden: !hours },
    field({ id: 'sla-timezone', label: 'Time zone', control: zone, hint: 'An IANA name, such as Europe/Berlin' }),
    zoneList,
    h('p', { class: 'hint' }, 'Working periods (an end before the start runs past midnight):'),
    periods,
    h('button', {
      type: 'button', class: 'button secondary small', id: 'sla-add-period',
      onclick: () => addPeriod({ day: 0, start: '09:00', end: '17:00' }),
    }, 'Add a period'));
  useHours.addEventListener('change', () => { hoursBox.hidden = !useHours.checked; });

  const holidays = h('textarea', { id: 'sla-holidays', rows: '4' }, policy.holidays.join('\n'));

  const errors = h('ul', { class: 'field-error', id: 'sla-errors', hidden: true });
  replace(form,
    h('fieldset', null, h('legend', null, 'Targets'),
      h('table', { class: 'sla-targets' },
        h('thead', null, h('tr', null,
          h('th', { scope: 'col' }, 'Priority'),
          h('th', { scope: 'col' }, 'First response (minutes)'),
          h('th', { scope: 'col' }, 'Resolution (minutes)'),
          h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'In hours and days')))),
        targets),
      h('p', { class: 'hint' }, 'A priority left unticked has no SLA.'),
      field({ id: 'sla-warning', label: 'Warn when this much of a target is used (%)', control: ratio })),
    h('fieldset', null, h('legend', null, 'Business hours'),
      h('label', { for: useHours.id }, useHours, ' Count only business hours (otherwise round the clock)'),
      hoursBox),
    h('fieldset', null, h('legend', null, 'Holidays'),
      field({
        id: 'sla-holidays', label: 'Days without business hours',
        control: holidays, hint: 'One date per line, as 2026-12-25. Only used with business hours.',
      })),
    errors,
    formError(),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'button primary', id: 'sla-save' }, 'Save policy')));

  form.onsubmit = async (event) => {
    event.preventDefault();
    const body = {
      policies: {},
      business_hours: null,
      holidays: holidays.value.split(/[\s,]+/).map((d) => d.trim()).filter(Boolean),
      warning_ratio: Number(ratio.value) / 100,
    };
    for (const priority of PRIORITIES) {
      const { on, first, resolution } = inputs[priority];
      if (!on.checked) continue;
      body.policies[priority] = {
        first_response_minutes: first.value === '' ? null : Number(first.value),
        resolution_minutes: resolution.value === '' ? null : Number(resolution.value),
      };
    }
    if (useHours.checked) {
      body.business_hours = {
        timezone: zone.value.trim(),
        days: [...periods.children].map((li) => {
          const [day, start, end] = li.querySelectorAll('select, input');
          return { day: Number(day.value), start: start.value, end: end.value === '00:00' ? '24:00' : end.value };
        }),
      };
    }
    errors.hidden = true;
    setFormError(form, '');
    try {
      const saved = await busy(form, () => api('PUT', '/admin/sla', { body }));
      announce('SLA policy saved. Open tickets are being updated.', 'success');
      draw(form, saved);
    } catch (error) {
      if (error.status === 401) return;
      if (error.status === 422) {
        replace(errors, ...Object.entries(error.fields).map(([name, msg]) => h('li', null, `${name.replace('_', ' ')}: ${msg}`)));
        errors.hidden = !errors.children.length;
        setFormError(form, 'The policy was not saved; please correct it.');
      } else {
        setFormError(form, error.message);
      }
    }
  };
}
