// The steward roster: status, duty, how old their location is, the
// incident they are on, and, for those on duty, whether an offer can
// reach them when the app is not open (GET /reachability: no phone
// registered for alerts, the last alert failed, no phone number for SMS).
import { api } from '../common/api.js';
import { t, duration } from '../common/i18n.js';
import { h, fill } from '../common/dom.js';
import { state, subscribe, ageS, elderName } from './state.js';
import { label } from './incidents.js';

const ORDER = ['busy', 'offered', 'available', 'off_duty'];
const REACH_EVERY_MS = 30_000;
/** Steward events come with every location fix: ask at most this often for them. */
const REACH_AT_MOST_MS = 5_000;
let table;
/** steward id → their entry of GET /reachability */
let reach = new Map();

export function initRoster(el) {
  table = el;
  subscribe((what) => {
    if (['stewards', 'incidents', 'elders', 'lang'].includes(what)) render();
    if (what === 'stewards') loadReachSoon();
  });
  render();
  setInterval(tickAges, 5000);
  loadReach();
  setInterval(loadReach, REACH_EVERY_MS);
}

async function loadReach() {
  try {
    const list = await api('GET', '/reachability');
    reach = new Map(list.map((r) => [r.steward_id, r]));
    render();
  } catch { /* the roster stands without the marks; tried again in 30 s */ }
}

let reachTimer = null;
let reachAt = 0;
function loadReachSoon() {
  if (reachTimer) return;
  const wait = Math.max(0, reachAt + REACH_AT_MOST_MS - Date.now());
  reachTimer = setTimeout(() => { reachTimer = null; reachAt = Date.now(); loadReach(); }, wait);
}

function currentIncident(stewardId) {
  for (const i of state.incidents.values()) if (i.steward_id === stewardId) return i;
  return null;
}

/** Why an on-duty steward may not hear an offer, in words (not colour alone). */
function reachMark(s) {
  const r = reach.get(s.id);
  if (!s.on_duty || !r?.problems?.length) return null;
  const words = r.problems.map((p) => {
    const text = label('reach', p);
    return p === 'push_failing' && r.last_push_error ? `${text} (${r.last_push_error})` : text;
  });
  return h('span', { class: 'reach-problem', dataset: { problems: r.problems.join(' ') } },
    '⚠ ' + words.join(t('reach.sep')));
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
      const mark = reachMark(s);
      return h('tr', { dataset: { id: s.id }, class: mark ? 'unreachable' : null },
        h('th', { scope: 'row' }, s.name, mark),
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
