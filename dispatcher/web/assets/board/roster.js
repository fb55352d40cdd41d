// The steward roster: status, duty, how old their location is, and the
// incident they are on.
import { t, duration } from '../common/i18n.js';
import { h, fill } from '../common/dom.js';
import { state, subscribe, ageS, elderName } from './state.js';
import { label } from './incidents.js';

const ORDER = ['busy', 'offered', 'available', 'off_duty'];
let table;

export function initRoster(el) {
  table = el;
  subscribe((what) => { if (['stewards', 'incidents', 'elders', 'lang'].includes(what)) render(); });
  render();
  setInterval(tickAges, 5000);
}

function currentIncident(stewardId) {
  for (const i of state.incidents.values()) if (i.steward_id === stewardId) return i;
  return null;
}

function render() {
  const stewards = [...state.stewards.values()].sort(
    (a, b) => ORDER.indexOf(a.status) - ORDER.indexOf(b.status) || a.name.localeCompare(b.name),
  );
  fill(table,
    h('thead', {}, h('tr', {}, ['col.name', 'col.status', 'col.duty', 'col.location_age', 'col.incident']
      .map((k) => h('th', { scope: 'col', text: t(k) })))),
    h('tbody', {}, stewards.map((s) => {
      const i = currentIncident(s.id);
      return h('tr', { dataset: { id: s.id } },
        h('th', { scope: 'row', text: s.name }),
        h('td', {}, h('span', { class: 'status st-' + s.status, text: label('status', s.status) })),
        h('td', { text: s.on_duty ? t('on_duty') : t('off_duty_short') }),
        h('td', { class: 'loc-age', dataset: { at: s.location_at ?? '' } }),
        h('td', {}, i ? h('a', { href: '#incident/' + encodeURIComponent(i.id), text: `${elderName(i.elder_id)} · ${label('kind', i.kind)}` }) : '–'));
    })));
  tickAges();
}

function tickAges() {
  for (const td of table.querySelectorAll('td.loc-age')) {
    const at = td.dataset.at;
    td.textContent = at ? t('ago', { d: duration(ageS(at)) }) : t('never');
  }
}
