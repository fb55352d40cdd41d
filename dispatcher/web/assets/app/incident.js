// The incident a steward accepted: where to go, "I have arrived", then
// closing it with an outcome and a note.
import { t, duration } from '../common/i18n.js';
import { h } from '../common/dom.js';
import { nameLine, address, navLinks, essentials } from './elder.js';

export const OUTCOMES = ['assisted', 'false_alarm', 'hospital', 'other'];

/**
 * @param {any} inc the incident
 * @param {any} elder the elder, or null while it loads
 * @param {{outcome?:string, note?:string}} draft what the steward already chose or typed
 * @param {{arrive:(id:string)=>void, resolve:(id:string, outcome:string, note:string)=>void, draft:(id:string, d:object)=>void}} actions
 */
export function incidentCard(inc, elder, draft, actions) {
  const id = inc.id;
  const onSite = inc.status === 'on_site';
  let step;
  if (!onSite) {
    step = h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'primary big arrive', onclick: () => actions.arrive(id) }, t('inc.arrive')));
  } else {
    const name = `outcome-${id}`;
    const error = h('p', { class: 'error-text outcome-error', role: 'alert' });
    const form = h('form', { class: 'resolve', novalidate: true },
      h('fieldset', { class: 'outcomes' },
        h('legend', null, t('inc.outcome')),
        OUTCOMES.map((o) => h('label', { class: 'outcome' },
          h('input', {
            type: 'radio', name, value: o, checked: draft.outcome === o,
            onchange: () => actions.draft(id, { outcome: o }),
          }),
          h('span', null, t('outcome.' + o))))),
      h('label', { for: `note-${id}` }, t('inc.note')),
      h('textarea', {
        id: `note-${id}`, name: 'note', rows: 3, maxlength: 2000,
        oninput: (e) => actions.draft(id, { note: e.target.value }),
      }, draft.note ?? ''),
      error,
      h('button', { type: 'submit', class: 'primary big resolve-submit' }, t('inc.resolve')));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const outcome = form.querySelector(`input[name="${name}"]:checked`)?.value;
      if (!outcome) { error.textContent = t('inc.outcome_needed'); return; }
      actions.resolve(id, outcome, form.note.value.trim());
    });
    step = form;
  }
  return h('article', { class: `card incident prio-${inc.priority}`, 'data-incident': id, 'data-status': inc.status },
    h('header', { class: 'card-head' },
      h('span', { class: `badge status-${inc.status}` }, t('inc.' + inc.status)),
      h('span', { class: 'kind' }, t('kind.' + inc.kind))),
    h('p', { class: 'elapsed', 'data-since': inc.created_at },
      h('span', { class: 'elapsed-value' }, '–'), ' ', t('inc.since')),
    nameLine(elder),
    inc.summary ? h('p', { class: 'summary' }, inc.summary) : null,
    address(elder),
    navLinks(elder),
    step,
    essentials(elder));
}

export function tickIncidents(root, now) {
  for (const el of root.querySelectorAll('.elapsed[data-since]')) {
    el.querySelector('.elapsed-value').textContent = duration((now - Date.parse(el.dataset.since)) / 1000);
  }
}
