// "My follow-ups" (我的回访): the calls and visits after incidents this
// steward resolved or was sent to, and after visits whose note asked for
// one, soonest due first, overdue ones
// marked. Each is completed with one big outcome button and an optional
// note; "I cannot go" hands it back to the supervisors with a reason.
// Read at start, every minute, and after the steward closes an incident
// or ends a visit asking for a follow-up.
import { api, ApiError, OfflineError } from '../common/api.js';
import { t, dateTime } from '../common/i18n.js';
import { h, fill } from '../common/dom.js';
import { nameLine, address, essentials } from './elder.js';

export const FOLLOW_UP_OUTCOMES = ['well', 'needs_visit', 'referred', 'hospitalised', 'unreachable', 'declined', 'other'];
const EVERY_MS = 60_000;

let root;
let say = () => {};
let list = [];
/** elder id → the elder, or null when this steward may not read it */
const elders = new Map();
/** follow-up id → {outcome, note, reason, handingBack} typed so far */
const drafts = new Map();
const busy = new Set();
let shownKey = '';

/**
 * @param {HTMLElement} el where the list goes
 * @param {(text:string, kind?:string)=>void} notice the app's notice line
 */
export function initFollowUps(el, notice) {
  root = el;
  say = notice;
  loadFollowUps();
  setInterval(loadFollowUps, EVERY_MS);
}

function failure(err) {
  if (err instanceof OfflineError) return t('err.offline');
  if (err instanceof ApiError) return t('fu.failed', { message: err.message });
  return t('fu.failed', { message: String(err?.message ?? err) });
}

export async function loadFollowUps() {
  try {
    list = await api('GET', '/follow-ups?status=open');
  } catch {
    return; // shown as last known; tried again in a minute
  }
  render();
  for (const f of list) {
    if (elders.has(f.elder_id)) continue;
    try {
      elders.set(f.elder_id, await api('GET', `/elders/${encodeURIComponent(f.elder_id)}`));
    } catch {
      elders.set(f.elder_id, null);
    }
    render();
  }
}

function draft(id) {
  if (!drafts.has(id)) drafts.set(id, {});
  return drafts.get(id);
}

async function act(id, call, done) {
  if (busy.has(id)) return;
  busy.add(id);
  shownKey = '';
  render();
  try {
    const r = await call();
    drafts.delete(id);
    say(done(r), 'ok');
  } catch (err) {
    say(failure(err), 'error');
  } finally {
    busy.delete(id);
    shownKey = '';
    await loadFollowUps();
  }
}

function complete(f, outcome) {
  const d = draft(f.id);
  act(f.id,
    () => api('POST', `/follow-ups/${encodeURIComponent(f.id)}/complete`, { outcome, note: (d.note ?? '').trim() }),
    (r) => (r.next ? t('fu.done_next', { at: dateTime(r.next.due_at) }) : t('fu.done')));
}

function handBack(f, reasonEl, error) {
  const reason = reasonEl.value.trim();
  if (!reason) { error.textContent = t('fu.reason_needed'); reasonEl.focus(); return; }
  act(f.id,
    () => api('POST', `/follow-ups/${encodeURIComponent(f.id)}/hand-back`, { reason }),
    () => t('fu.handed_back'));
}

function card(f) {
  const d = draft(f.id);
  const elder = elders.get(f.elder_id) ?? null;
  const working = busy.has(f.id);
  const note = h('textarea', {
    id: `fu-note-${f.id}`, rows: 2, maxlength: 2000,
    oninput: (e) => { d.note = e.target.value; },
  }, d.note ?? '');
  const outcomes = h('div', { class: 'fu-outcomes', role: 'group', 'aria-labelledby': `fu-q-${f.id}` },
    FOLLOW_UP_OUTCOMES.map((o) => h('button', {
      type: 'button', class: `fu-outcome fu-${o}`, disabled: working, dataset: { outcome: o },
      onclick: () => complete(f, o),
    }, t('fu.outcome.' + o))));
  const reason = h('input', { type: 'text', id: `fu-reason-${f.id}`, maxlength: 500, value: d.reason ?? '',
    oninput: (e) => { d.reason = e.target.value; } });
  const error = h('p', { class: 'error-text', role: 'alert' });
  const back = d.handingBack
    ? h('div', { class: 'fu-back' },
      h('label', { for: `fu-reason-${f.id}` }, t('fu.reason')),
      reason, error,
      h('button', { type: 'button', class: 'big fu-back-confirm', disabled: working,
        onclick: () => handBack(f, reason, error) }, t('fu.hand_back')))
    : h('button', { type: 'button', class: 'big fu-cannot', disabled: working,
      onclick: () => {
        d.handingBack = true;
        shownKey = '';
        render();
        document.getElementById(`fu-reason-${f.id}`)?.focus();
      } }, t('fu.cannot_go'));
  return h('article', { class: 'card follow-up' + (f.overdue ? ' overdue' : ''), dataset: { followUp: f.id } },
    h('header', { class: 'card-head' },
      h('span', { class: 'badge fu-kind' }, t('fu.kind.' + f.kind)),
      f.visit_id ? h('span', { class: 'badge fu-after-visit' }, t('fu.after_visit')) : null,
      f.overdue ? h('strong', { class: 'fu-overdue' }, t('fu.overdue')) : null),
    h('p', { class: 'fu-due' }, t('fu.due', { at: dateTime(f.due_at) })),
    elder ? nameLine(elder, 'h3') : h('h3', { class: 'elder-name' }, f.elder_id),
    address(elder),
    h('p', { class: 'fu-question', id: `fu-q-${f.id}` }, t('fu.how')),
    h('label', { for: `fu-note-${f.id}` }, t('fu.note')),
    note,
    outcomes,
    back,
    essentials(elder));
}

function render() {
  if (!root) return;
  const key = JSON.stringify([list.map((f) => [f.id, f.overdue, f.due_at]), [...elders.keys()],
    [...busy], [...drafts].map(([id, d]) => [id, !!d.handingBack])]);
  if (key === shownKey) return;
  shownKey = key;
  const focused = document.activeElement?.id;
  if (!list.length) { fill(root); root.hidden = true; return; }
  root.hidden = false;
  fill(root,
    h('h2', { class: 'fu-title' }, t('fu.mine', { n: list.length })),
    list.map(card));
  if (focused) document.getElementById(focused)?.focus();
}

/** The language changed: draw again. */
export function redrawFollowUps() {
  shownKey = '';
  render();
}
