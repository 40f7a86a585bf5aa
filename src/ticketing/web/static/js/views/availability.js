// Staff: "My availability" — away until, working hours and time zone (PATCH /auth/me).
import { patch } from '../api.js';
import { availabilityBadge, availabilityFields, hoursSummary } from '../availability.js';
import { announce, busy, clearFieldErrors, formError, h, replace, setFormError } from '../dom.js';

export function renderAvailability(root, ctx) {
  ctx.setTitle('My availability');
  const status = h('div', { class: 'card availability-status', id: 'my-availability-status', 'aria-live': 'polite' });
  const holder = h('div');

  function draw(me) {
    replace(status,
      h('p', null, 'Right now: ', availabilityBadge(me)),
      h('p', { class: 'muted small' }, `Working hours (${me.timezone}): ${hoursSummary(me)}.`),
      me.max_open_tickets === null ? null
        : h('p', { class: 'muted small' }, `You take at most ${me.max_open_tickets} open tickets at once (set by an admin).`));
    const fields = availabilityFields(me, { prefix: 'me' });
    const form = h('form', { class: 'card', novalidate: true, 'aria-labelledby': 'availability-heading' },
      h('h2', { id: 'availability-heading' }, 'Change availability'),
      fields.element,
      formError(),
      h('div', { class: 'actions' },
        h('button', { type: 'submit', class: 'button primary', id: 'save-availability' }, 'Save availability')));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      clearFieldErrors(form);
      const body = fields.changes();
      if (!Object.keys(body).length) {
        announce('Nothing changed.');
        return;
      }
      busy(form, async () => {
        try {
          const me = await patch('/auth/me', body);
          await ctx.refreshMe();
          if (!ctx.alive()) return;
          draw(me);
          announce(me.available
            ? 'Saved. You are available for new tickets.'
            : 'Saved. New tickets go to someone else while you are not available.', 'success');
        } catch (error) {
          if (error.status === 401) return;
          if (error.status === 422 && fields.showErrors(form, error.fields)) {
            setFormError(form, 'Please correct the highlighted fields.');
          } else {
            setFormError(form, error.message);
          }
        }
      });
    });
    replace(holder, form);
  }

  root.append(h('section', { class: 'page' },
    h('div', { class: 'page-header' },
      h('div', null,
        h('h1', { tabindex: '-1' }, 'My availability'),
        h('p', { class: 'muted' },
          'New tickets go only to people who are available: not away, within their working hours, and under their cap.'))),
    status,
    holder));
  draw(ctx.me);
}
