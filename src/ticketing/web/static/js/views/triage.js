// Admin: how good triage is (how often staff corrected each provider, the type confusion
// matrix) over a chosen period, and the local model's versions: train now, activate one.
import { get, post } from '../api.js';
import { announce, busy, h, nextId, replace } from '../dom.js';
import { TYPE, when } from '../format.js';

const FIELDS = [['ticket_type', 'Type'], ['priority', 'Priority'], ['required_skills', 'Skills']];
const DAY_MS = 24 * 3600 * 1000;
const POLL_MS = 3000;
const WATCH_MS = 120000;

function percent(rate) {
  return `${(rate * 100).toFixed(1)} %`;
}

function f1(scores, field) {
  const value = scores && scores[field] && scores[field].macro_f1;
  return typeof value === 'number' ? value.toFixed(3) : '—';
}

function dateValue(date) {
  return date.toISOString().slice(0, 10);
}

export async function renderTriage(root, ctx, params) {
  ctx.setTitle('Triage quality');
  const today = new Date();
  const range = {
    from: params.get('from') || dateValue(new Date(today.getTime() - 30 * DAY_MS)),
    to: params.get('to') || dateValue(new Date(today.getTime() + DAY_MS)),
  };
  const heading = h('h1', { tabindex: '-1' }, 'Triage quality');
  const quality = h('div', { class: 'results', id: 'triage-quality' });
  const models = h('div', { class: 'results', id: 'triage-models' });
  const modelSummary = h('p', { class: 'summary', 'aria-live': 'polite', id: 'models-summary' });
  let timer = null;
  let watchUntil = 0;
  let knownIds = new Set();

  async function loadQuality() {
    const q = await get('/admin/triage/quality', {
      from: range.from ? `${range.from}T00:00:00Z` : null,
      to: range.to ? `${range.to}T00:00:00Z` : null,
    });
    if (!ctx.alive()) return;
    replace(quality, providerTable(q.providers), confusionTable(q.confusion), activeModel(q.active_model));
  }

  async function loadModels() {
    const page = await get('/admin/triage/models');
    if (!ctx.alive()) return [];
    drawModels(page.items);
    return page.items;
  }

  function providerTable(providers) {
    if (!providers.length) {
      return h('div', { class: 'empty card' }, h('p', null, 'No tickets were analysed in this period.'));
    }
    const columns = [
      ['Provider', (p) => h('strong', null, p.provider)],
      ['Analysed', (p) => String(p.analysed)],
      ...FIELDS.map(([field, label]) => [`${label} corrected`, (p) => {
        const c = p.corrected[field] || { count: 0, rate: 0 };
        return `${c.count} (${percent(c.rate)})`;
      }]),
    ];
    return h('table', { class: 'triage-providers responsive', id: 'quality-providers' },
      h('caption', null, 'How often staff corrected the analysis, per provider'),
      h('thead', null, h('tr', null, columns.map(([label]) => h('th', { scope: 'col' }, label)))),
      h('tbody', null, providers.map((p) => h('tr', { dataset: { provider: p.provider } },
        columns.map(([label, cell]) => h('td', { dataset: { label } }, cell(p)))))));
  }

  function confusionTable(confusion) {
    const types = Object.keys(TYPE);
    const seen = new Set(Object.keys(confusion));
    for (const row of Object.values(confusion)) for (const k of Object.keys(row)) seen.add(k);
    const classes = types.filter((t) => seen.has(t)).concat([...seen].filter((t) => !types.includes(t)));
    if (!classes.length) return null;
    return h('table', { class: 'confusion', id: 'quality-confusion' },
      h('caption', null, 'Type: what the analysis said (rows) against the final type (columns)'),
      h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Analysis \\ final'),
        classes.map((c) => h('th', { scope: 'col' }, TYPE[c] || c)))),
      h('tbody', null, classes.map((said) => h('tr', null,
        h('th', { scope: 'row' }, TYPE[said] || said),
        classes.map((final) => {
          const n = (confusion[said] || {})[final] || 0;
          return h('td', {
            class: n && said !== final ? 'confused' : (n ? 'agreed' : 'zero'),
            dataset: { said, final },
          }, String(n));
        })))));
  }

  function activeModel(active) {
    const scores = active.scores;
    return h('p', { class: 'muted', id: 'active-model' },
      active.id === 'default'
        ? 'The local provider uses the model shipped with the product (no version trained here is active).'
        : `Active local model ${active.id.slice(0, 8)}: type macro-F1 ${f1(scores, 'ticket_type')}, `
          + `priority macro-F1 ${f1(scores, 'priority')} on ${scores && scores.heldout} held-out labels.`);
  }

  function drawModels(items) {
    modelSummary.textContent = `${items.length} version${items.length === 1 ? '' : 's'}`;
    if (!items.length) {
      replace(models, h('div', { class: 'empty card' }, h('p', null,
        'No model has been trained here yet. Train one once staff have corrected or resolved some tickets.')));
      return;
    }
    const columns = [
      ['Version', (m) => h('span', null, m.id.slice(0, 8), m.active ? h('span', { class: 'badge active small' }, 'Active') : null)],
      ['Trained', (m) => when(m.created_at, { short: true })],
      ['Labels', (m) => String(m.labels)],
      ['Held out', (m) => String(m.scores.heldout ?? '—')],
      ['Type F1', (m) => f1(m.scores, 'ticket_type')],
      ['Priority F1', (m) => f1(m.scores, 'priority')],
      ['Compared with', (m) => `${(m.scores.compared_with || '—').slice(0, 8)}: type F1 ${f1(m.scores.compared_scores, 'ticket_type')}`],
      ['Decision', (m) => h('span', { class: 'reason' }, m.scores.decision || '—')],
      ['Actions', (m) => (m.active ? h('span', { class: 'muted' }, '—') : activateButton(m))],
    ];
    replace(models, h('table', { class: 'triage-models responsive' },
      h('caption', { class: 'sr-only' }, 'Model versions'),
      h('thead', null, h('tr', null, columns.map(([label]) => h('th', { scope: 'col' }, label)))),
      h('tbody', null, items.map((m) => h('tr', { dataset: { modelId: m.id, active: String(m.active) } },
        columns.map(([label, cell]) => h('td', { dataset: { label } }, cell(m))))))));
  }

  function activateButton(model) {
    const wrap = h('div', { class: 'actions' });
    wrap.append(h('button', {
      type: 'button', class: 'button secondary small', id: `activate-${model.id}`,
      'aria-label': `Activate model version ${model.id.slice(0, 8)}`,
      onclick: async () => {
        try {
          await busy(wrap, () => post(`/admin/triage/models/${encodeURIComponent(model.id)}/activate`));
          announce(`Model ${model.id.slice(0, 8)} is active; every process uses it within a minute.`, 'success');
          await Promise.all([loadModels(), loadQuality()]);
          heading.focus();
        } catch (error) {
          showError(error);
        }
      },
    }, 'Activate'));
    return wrap;
  }

  const trainWrap = h('div', { class: 'header-actions' });
  trainWrap.append(h('button', {
    type: 'button', class: 'button primary', id: 'train-now',
    onclick: async () => {
      try {
        const answer = await busy(trainWrap, () => post('/admin/triage/train'));
        announce(answer.queued
          ? 'Training is queued. The new version appears below; it becomes active only if it scores at least as well.'
          : 'A training is already queued or running.', 'success');
        watchUntil = Date.now() + WATCH_MS;
        schedule();
      } catch (error) {
        showError(error);
      }
    },
  }, 'Train now'));

  // After "Train now", look for the new version for a while.
  function schedule() {
    clearTimeout(timer);
    if (Date.now() > watchUntil) return;
    timer = setTimeout(async () => {
      if (!ctx.alive()) return;
      try {
        const items = await loadModels();
        const fresh = items.find((m) => !knownIds.has(m.id));
        if (fresh) {
          knownIds = new Set(items.map((m) => m.id));
          announce(`New model ${fresh.id.slice(0, 8)}: ${fresh.scores.decision || 'trained'}.`, 'success');
          await loadQuality();
          return;
        }
      } catch {
        // keep trying until the watch ends
      }
      schedule();
    }, POLL_MS);
  }

  const fromInput = h('input', { type: 'date', id: nextId('quality-from'), value: range.from });
  const toInput = h('input', { type: 'date', id: nextId('quality-to'), value: range.to });
  const periodForm = h('form', { class: 'filters card', 'aria-label': 'Period' },
    h('div', { class: 'field' }, h('label', { for: fromInput.id }, 'From'), fromInput),
    h('div', { class: 'field' }, h('label', { for: toInput.id }, 'To (exclusive)'), toInput),
    h('div', { class: 'field' }, h('button', { type: 'submit', class: 'button secondary' }, 'Show')));
  periodForm.addEventListener('submit', (event) => {
    event.preventDefault();
    range.from = fromInput.value;
    range.to = toInput.value;
    history.replaceState(null, '', `#/triage?from=${range.from}&to=${range.to}`);
    busy(periodForm, loadQuality).catch(showError);
  });

  root.classList.add('wide');
  root.append(h('section', { class: 'page' },
    h('div', { class: 'page-header' },
      h('div', { class: 'page-intro' },
        heading,
        h('p', { class: 'muted' },
          'Every staff change to an analysed ticket\u2019s type, priority or skills is a correction. '
          + 'Fewer corrections mean better triage. Corrections and resolved tickets also train the '
          + 'local model, and the AI prompts show the most similar corrected tickets as examples.')),
      trainWrap),
    periodForm,
    quality,
    h('h2', null, 'Local model versions'),
    modelSummary,
    models));
  const [items] = await Promise.all([loadModels(), loadQuality()]);
  knownIds = new Set(items.map((m) => m.id));
}

function showError(error) {
  if (error.status !== 401) announce(error.message, 'error');
}
