// Small DOM helpers. Everything is built with createElement/textContent: ticket text comes
// from users and is never parsed as HTML.

const PROPS = new Set(['value', 'checked', 'selected', 'indeterminate']);

/** h('button', {class: 'x', onclick: fn}, 'text', child, [more]) -> HTMLElement */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (PROPS.has(key)) el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace an element's children, keeping keyboard focus on an element with the same id. */
export function replace(el, ...children) {
  const focused = document.activeElement && el.contains(document.activeElement)
    ? document.activeElement.id : null;
  el.replaceChildren();
  append(el, children);
  if (focused) {
    const again = document.getElementById(focused);
    if (again) again.focus();
  }
  return el;
}

let flashTimer = null;

/** Show a message in the page's live region (read out by screen readers). */
export function announce(message, kind = 'info') {
  const flash = document.getElementById('flash');
  clearTimeout(flashTimer);
  flash.replaceChildren();
  flash.className = `flash flash-${kind}`;
  if (!message) {
    flash.className = 'flash';
    return;
  }
  const inner = h('div', { class: 'flash-inner' },
    h('p', { class: 'flash-text' }, message),
    h('button', {
      type: 'button', class: 'link-button', 'aria-label': 'Dismiss message',
      onclick: () => announce(''),
    }, 'Dismiss'));
  flash.append(inner);
  if (kind !== 'error') flashTimer = setTimeout(() => announce(''), 8000);
}

let uid = 0;
export function nextId(prefix) {
  uid += 1;
  return `${prefix}-${uid}`;
}

/** A labelled form control with a slot for its error message. */
export function field({ id, label, control, hint, className }) {
  const errorId = `${id}-error`;
  const hintId = hint ? `${id}-hint` : null;
  control.id = id;
  const described = [hintId, errorId].filter(Boolean).join(' ');
  control.setAttribute('aria-describedby', described);
  return h('div', { class: `field ${className || ''}`.trim(), dataset: { field: id } },
    h('label', { for: id }, label),
    hint ? h('p', { class: 'hint', id: hintId }, hint) : null,
    control,
    h('p', { class: 'field-error', id: errorId, hidden: true }));
}

/** Show (or clear, with null) the error message of a field made by field(). */
export function setFieldError(form, id, message) {
  const control = form.querySelector(`#${CSS.escape(id)}`);
  const slot = form.querySelector(`#${CSS.escape(`${id}-error`)}`);
  if (!control || !slot) return false;
  if (message) {
    control.setAttribute('aria-invalid', 'true');
    slot.textContent = message;
    slot.hidden = false;
  } else {
    control.removeAttribute('aria-invalid');
    slot.textContent = '';
    slot.hidden = true;
  }
  return true;
}

export function clearFieldErrors(form) {
  for (const slot of form.querySelectorAll('.field-error')) {
    slot.textContent = '';
    slot.hidden = true;
  }
  for (const control of form.querySelectorAll('[aria-invalid]')) {
    control.removeAttribute('aria-invalid');
  }
  const summary = form.querySelector('.form-error');
  if (summary) {
    summary.textContent = '';
    summary.hidden = true;
  }
}

/** A form-level error line (role=alert); returns the element to put in the form. */
export function formError() {
  return h('p', { class: 'form-error', role: 'alert', hidden: true });
}

export function setFormError(form, message) {
  const summary = form.querySelector('.form-error');
  if (!summary) return;
  summary.textContent = message || '';
  summary.hidden = !message;
}

export function select(options, value) {
  const el = h('select');
  for (const [optionValue, text] of options) {
    el.append(h('option', { value: optionValue, selected: optionValue === (value ?? '') }, text));
  }
  return el;
}

/** Disable a form's buttons while a request runs; focus comes back where it was. */
export async function busy(form, work) {
  const focused = document.activeElement;
  const buttons = [...form.querySelectorAll('button')].filter((b) => !b.disabled);
  form.setAttribute('aria-busy', 'true');
  buttons.forEach((b) => { b.disabled = true; });
  try {
    return await work();
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
    form.removeAttribute('aria-busy');
    const lost = !document.activeElement || document.activeElement === document.body;
    if (lost && focused && focused.isConnected) focused.focus();
  }
}
