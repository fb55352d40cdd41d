// Follow-ups (回访) on the board: every open follow-up after a resolved
// incident, soonest due first. Overdue ones are marked in words and
// colour; those nobody holds (handed back, or resolved by a supervisor
// with nobody assigned) say so, and every open one has a control to send
// a steward (POST /follow-ups/{id}/reassign). Read every 30 s, and soon
// after an incident changes (a resolve makes a follow-up).
import { api, ApiError } from '../common/api.js';
import { t, dateTime } from '../common/i18n.js';
import { h, fill } from '../common/dom.js';
import { state, subscribe, elderName, stewardName } from './state.js';

const EVERY_MS = 30_000;
let panel;
let list = [];
let error = null;
/** follow-up id → what the supervisor was told after acting on it */
const notes = new Map();

export function initFollowUps(el) {
  panel = el;
  subscribe((what) => {
    if (['stewards', 'elders', 'lang'].includes(what)) render();
    if (what === 'incidents') loadSoon();
  });
  load();
  setInterval(load, EVERY_MS);
}

async function load() {
  try {
    list = await api('GET', '/follow-ups?status=open&limit=500');
    error = null;
  } catch (e) {
    error = e instanceof ApiError ? e.message : t('err.offline');
  }
  render();
}

let soon = null;
function loadSoon() {
  if (soon) return;
  soon = setTimeout(() => { soon = null; load(); }, 1000);
}

function stewardChoice(f) {
  const stewards = [...state.stewards.values()].sort((a, b) => a.name.localeCompare(b.name));
  return h('select', { class: 'fu-steward', 'aria-label': t('fu.reassign_to') },
    h('option', { value: '', text: t('fu.choose') }),
    stewards.map((s) => h('option', {
      value: s.id,
      selected: s.id === f.steward_id,
      text: `${s.name} · ${s.grid ?? ''}`,
    })));
}

async function reassign(f, select, reason, button) {
  if (!select.value) { select.focus(); return; }
  button.disabled = true;
  try {
    await api('POST', `/follow-ups/${encodeURIComponent(f.id)}/reassign`,
      { steward_id: select.value, reason: reason.value });
    notes.set(f.id, t('fu.reassigned'));
  } catch (e) {
    notes.set(f.id, e instanceof ApiError ? e.message : t('err.offline'));
  }
  await load();
}

function row(f) {
  const select = stewardChoice(f);
  const reason = h('input', { type: 'text', class: 'fu-reason', maxlength: 200,
    placeholder: t('fu.reason'), 'aria-label': t('fu.reason') });
  const button = h('button', { type: 'button', text: t('fu.reassign') });
  button.addEventListener('click', () => reassign(f, select, reason, button));
  const who = stewardName(f.steward_id);
  return h('li', {
    class: ['follow-up', f.overdue ? 'overdue' : null, f.steward_id ? null : 'unassigned'].filter(Boolean).join(' '),
    dataset: { id: f.id },
  },
  h('div', { class: 'fu-head' },
    h('span', { class: 'badge fu-kind', text: t('fu.kind.' + f.kind) }),
    f.visit_id ? h('span', { class: 'badge fu-after-visit', text: t('fu.after_visit') }) : null,
    // After an incident: its page; after a visit: the elder's notebook, where the visit's note is.
    h('a', {
      class: 'fu-elder',
      href: f.incident_id ? '#incident/' + encodeURIComponent(f.incident_id) : '#elder/' + encodeURIComponent(f.elder_id),
      text: elderName(f.elder_id),
    }),
    f.overdue ? h('strong', { class: 'fu-overdue', text: t('fu.overdue') }) : null),
  h('div', { class: 'fu-due' }, t('fu.due', { at: dateTime(f.due_at) })),
  h('div', { class: 'fu-who' }, who ? t('fu.assigned', { name: who }) : h('strong', { text: t('fu.needs_someone') })),
  h('div', { class: 'fu-reassign' }, select, reason, button),
  notes.has(f.id) ? h('p', { class: 'fu-note', role: 'status', text: notes.get(f.id) }) : null);
}

function render() {
  if (!panel) return;
  const count = list.length;
  const late = list.filter((f) => f.overdue).length;
  const nobody = list.filter((f) => !f.steward_id).length;
  fill(panel,
    h('h2', { id: 'followups-h' }, t('fu.title'), ' ',
      h('span', { class: 'count', text: t('fu.count', { n: count, late, nobody }) })),
    error ? h('p', { class: 'error', role: 'alert', text: t('err.load', { message: error }) }) : null,
    count
      ? h('ol', { class: 'follow-ups' }, list.map(row))
      : h('p', { class: 'muted', text: t('fu.none') }));
}
