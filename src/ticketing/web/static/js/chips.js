// A keyboard-friendly "chips" editor for skills: type and press Enter (or comma) to add,
// a chip's × button (or Backspace in the empty input) removes one.
import { h } from './dom.js';

const normalise = (text) => text.trim().toLowerCase().replace(/\s+/g, ' ').slice(0, 50);

export function chipsInput({ id, label, values = [], hint = 'Press Enter or comma to add a skill.' }) {
  let current = [...new Set(values.map(normalise).filter(Boolean))];
  const list = h('ul', { class: 'chip-list editable', 'aria-label': `Chosen: ${label}` });
  const input = h('input', {
    type: 'text', id, autocomplete: 'off', spellcheck: 'false', maxlength: '50',
    'aria-describedby': `${id}-hint ${id}-error`, placeholder: 'Add a skill',
  });
  const live = h('span', { class: 'sr-only', 'aria-live': 'polite' });

  function draw() {
    list.replaceChildren(...current.map((skill) => h('li', { class: 'chip' },
      h('span', null, skill),
      h('button', {
        type: 'button', class: 'chip-remove', 'aria-label': `Remove ${skill}`,
        onclick: () => {
          current = current.filter((s) => s !== skill);
          live.textContent = `Removed ${skill}`;
          draw();
          input.focus();
        },
      }, '×'))));
    list.hidden = current.length === 0;
  }

  function addFromInput() {
    const parts = input.value.split(',').map(normalise).filter(Boolean);
    const added = parts.filter((p) => !current.includes(p));
    current = current.concat([...new Set(added)]);
    input.value = '';
    if (added.length) live.textContent = `Added ${added.join(', ')}`;
    draw();
  }

  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' || event.key === ',') {
      event.preventDefault();
      addFromInput();
    } else if (event.key === 'Backspace' && input.value === '' && current.length) {
      const removed = current.pop();
      live.textContent = `Removed ${removed}`;
      draw();
    }
  });
  input.addEventListener('blur', () => { if (input.value.trim()) addFromInput(); });
  draw();

  const element = h('div', { class: 'field chips-field', dataset: { field: id } },
    h('label', { for: id }, label),
    h('p', { class: 'hint', id: `${id}-hint` }, hint),
    h('div', { class: 'chips-box' }, list, input),
    h('p', { class: 'field-error', id: `${id}-error`, hidden: true }),
    live);

  return {
    element,
    input,
    clear() {
      current = [];
      input.value = '';
      draw();
    },
    get values() {
      if (input.value.trim()) addFromInput();
      return [...current];
    },
  };
}
