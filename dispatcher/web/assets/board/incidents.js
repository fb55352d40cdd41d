// The live board: open incidents, most urgent first, each with a running
// timer since the press, its state, steward, escalation level and a
// "past target" sign. Each row links to the incident page.
import { t, duration } from '../common/i18n.js';
import { h, fill } from '../common/dom.js';
import { state, subscribe, byUrgency, ageS, pastTarget, elderName, stewardName } from './state.js';

let list;
let count;

export function initBoard(listEl, countEl) {
  list = listEl;
  count = countEl;
  subscribe((what) => {
    if (['incidents', 'stewards', 'elders', 'lang', 'config'].includes(what)) render();
  });
  render();
  setInterval(tick, 1000);
}

/** Label text for a priority, state or kind. */
export function label(group, value) {
  const key = `${group}.${value}`;
  const s = t(key);
  return s === key ? value : s;
}

function render() {
  const open = [...state.incidents.values()].sort(byUrgency);
  count.textContent = t('board.count', { n: open.length });
  if (!open.length) {
    fill(list, h('li', { class: 'empty muted', text: t('board.none') }));
    return;
  }
  fill(list, open.map(row));
  tick();
}

function row(i) {
  const steward = stewardName(i.steward_id);
  return h('li', { class: `incident prio-${i.priority} st-${i.status}`, dataset: { id: i.id, created: i.created_at, status: i.status } },
    h('a', { href: '#incident/' + encodeURIComponent(i.id), class: 'incident-link' },
      h('span', { class: `badge prio-bg-${i.priority}`, text: label('priority', i.priority) }),
      h('span', { class: 'who' },
        h('strong', { class: 'elder', text: elderName(i.elder_id) }),
        h('span', { class: 'what', text: label('kind', i.kind) + (i.summary ? ' · ' + i.summary : '') })),
      h('span', { class: 'state', text: label('state', i.status) }),
      h('span', { class: steward ? 'steward' : 'steward muted', text: steward ?? t('unassigned') }),
      i.escalation_level > 0
        ? h('span', { class: 'escalation', text: '▲ ' + t('escalated', { n: i.escalation_level }) })
        : h('span', { class: 'escalation none' }),
      h('span', { class: 'timer', title: t('col.elapsed') },
        h('span', { class: 'elapsed' }),
        h('span', { class: 'late', text: '⚠ ' + t('past_target') }))));
}

/** Every second: the timers and the past-target signs. */
function tick() {
  for (const li of list.querySelectorAll('li.incident')) {
    const i = state.incidents.get(li.dataset.id);
    if (!i) continue;
    li.querySelector('.elapsed').textContent = duration(ageS(i.created_at));
    li.classList.toggle('past-target', pastTarget(i));
  }
}
