// The steward app (`/app/`): duty, location, alerts on this phone,
// offers as they ring, and the incident the steward took, live from the
// stream. The stream's snapshot is the truth on every (re)connection;
// events change it in between. With no stream at all, the app shows what
// it last knew (saved.js), marked as such.
import './strings.js';
import { requireSession, session, LeavingForLogin } from '../common/session.js';
import { api, ApiError, OfflineError, logout } from '../common/api.js';
import { openStream } from '../common/stream.js';
import { t, apply, languageToggle, onLangChange, time } from '../common/i18n.js';
import { h, fill } from '../common/dom.js';
import { offerCard, tickOffers } from './offer.js';
import { incidentCard, tickIncidents } from './incident.js';
import { locationSharer } from './location.js';
import { distance } from './elder.js';
import {
  soundSupported, soundReady, unlockSound, onSoundChange, startRinging, stopRinging, testBeep,
} from './alert.js';
import { initPush, registerWorker, saveClockOffset } from './push.js';
import { saveState, loadState, forgetState } from './saved.js';
import { redeemLink, hashParam, clearHash } from './links.js';
import { roundView } from './round.js';
import { initFollowUps, loadFollowUps, redrawFollowUps } from './followups.js';

// An SMS's link carries its own session: redeem it before asking for a login.
const linkProblem = await redeemLink();
if (linkProblem && session()?.role !== 'steward') {
  linkAlone(linkProblem);
  throw new LeavingForLogin('the link did not work');
}

const me = requireSession(['steward']);
const stewardId = me.steward_id;

const state = {
  /** The steward's own record (duty, status). */
  steward: null,
  /** incident id → offer view {incident, elder, distance_m, expires_at} */
  offers: new Map(),
  /** incident id → assigned open incident */
  incidents: new Map(),
  /** elder id → elder (from offers, or fetched for an assigned incident) */
  elders: new Map(),
  /** incident ids (and 'duty') with a request in flight */
  busy: new Set(),
  /** incident id → the class of the button pressed for it */
  pressed: new Map(),
  /** incident id → {outcome, note} typed into the resolve form */
  drafts: new Map(),
  /** offers already rung for: a snapshot after a reconnect does not ring again */
  rung: new Set(),
  /** server time minus this phone's time, ms */
  skew: 0,
  conn: 'connecting',
  location: { state: 'off' },
  /** a snapshot has arrived since the page loaded: the state is live, worth saving */
  synced: false,
  /** when the state shown was saved, while it is the saved one */
  savedAt: null,
  /** the card `#incident=` asked for: {id, since} until it is shown */
  target: null,
  /** the card last asked for, outlined */
  highlight: null,
};

const $ = (id) => document.getElementById(id);
const els = {
  offline: $('offline'),
  duty: $('duty'),
  dutyState: $('duty-state'),
  dutyNote: $('duty-note'),
  sound: $('sound'),
  location: $('location'),
  notice: $('notice'),
  noticeText: $('notice-text'),
  announce: $('announce'),
  offers: $('offers'),
  incidents: $('incidents'),
  empty: $('empty'),
  savedAt: $('saved-at'),
};

apply();
languageToggle($('lang'));
$('logout').addEventListener('click', async (e) => {
  e.currentTarget.disabled = true;
  // This phone stops ringing for this steward, and forgets their elders.
  await alerts.forget();
  forgetState();
  logout();
});

// --- notices ---------------------------------------------------------------

function notice(text, kind = 'info') {
  els.noticeText.textContent = text;
  els.notice.className = 'notice ' + kind;
  els.notice.hidden = false;
}
$('notice-close').addEventListener('click', () => { els.notice.hidden = true; });

function linkText(p) {
  if (p.code === 'link_expired') return t('link.expired');
  if (p.code === 'offline') return t('link.offline');
  return t('link.failed', { message: p.message ?? p.code });
}

/** A link that did not work on a logged-out phone: say why, offer the login. */
function linkAlone(p) {
  apply();
  document.body.dataset.conn = 'link';
  // Nothing behind them works without a login.
  for (const id of ['logout', 'lang']) document.getElementById(id).hidden = true;
  fill(document.querySelector('main'),
    h('p', { id: 'link-problem', class: 'notice error', role: 'alert' }, linkText(p)),
    h('a', { class: 'button-link', href: '/login?next=' + encodeURIComponent('/app/') }, t('link.login')));
}

function failure(err) {
  if (err instanceof OfflineError) return t('err.offline');
  if (err instanceof ApiError) {
    const key = 'err.' + err.code;
    const text = t(key);
    return text === key ? t('common.error', { message: err.message }) : text;
  }
  return t('common.error', { message: String(err?.message ?? err) });
}

// --- sound -----------------------------------------------------------------

function renderSound() {
  if (!soundSupported()) {
    els.sound.textContent = t('sound.unsupported');
    els.sound.disabled = true;
    return;
  }
  const ready = soundReady();
  els.sound.textContent = ready ? t('sound.on') : t('sound.enable');
  els.sound.classList.toggle('ready', ready);
  els.sound.setAttribute('aria-pressed', String(ready));
}
els.sound.addEventListener('click', async () => { if (await unlockSound()) testBeep(); });
// Any first tap or key unlocks sound too.
for (const ev of ['pointerdown', 'keydown']) {
  document.addEventListener(ev, () => { if (!soundReady()) unlockSound(); }, { capture: true });
}
onSoundChange(renderSound);

// --- duty and location -----------------------------------------------------

const sharer = locationSharer(stewardId, (s) => { state.location = s; renderLocation(); });

function renderDuty() {
  const s = state.steward;
  const on = !!s?.on_duty;
  els.dutyState.textContent = s ? t(on ? 'duty.on' : 'duty.off') : '…';
  els.dutyState.className = 'duty-state ' + (on ? 'on' : 'off');
  els.duty.textContent = t(on ? 'duty.go_off' : 'duty.go_on');
  els.duty.classList.toggle('primary', !on);
  els.duty.disabled = !s || state.busy.has('duty');
  els.duty.setAttribute('aria-pressed', String(on));
  els.dutyNote.hidden = !(s && !on && s.status === 'busy');
  if (on) sharer.start(); else sharer.stop();
}

els.duty.addEventListener('click', async () => {
  if (!state.steward) return;
  const want = !state.steward.on_duty;
  state.busy.add('duty');
  renderDuty();
  try {
    state.steward = await api('PUT', `/stewards/${encodeURIComponent(stewardId)}/duty`, { on_duty: want });
  } catch (err) {
    notice(failure(err), 'error');
  } finally {
    state.busy.delete('duty');
    render();
  }
});

function renderLocation() {
  const l = state.location;
  let text = '';
  let cls = 'muted';
  switch (l.state) {
    case 'off': text = t('loc.off'); break;
    case 'waiting': text = t('loc.waiting'); break;
    case 'shared':
      text = t('loc.shared', { time: time(new Date(l.at).toISOString()), acc: isFinite(l.accuracy) ? Math.round(l.accuracy) : '?' });
      cls = 'ok';
      break;
    case 'denied': text = t('loc.denied'); cls = 'warn'; break;
    case 'unavailable': text = t('loc.unavailable'); cls = 'warn'; break;
    case 'unsupported': text = t('loc.unsupported'); cls = 'warn'; break;
    case 'send_failed': text = t('loc.send_failed'); cls = 'warn'; break;
  }
  els.location.textContent = text;
  els.location.className = 'location ' + cls;
}

// --- alerts on this phone ---------------------------------------------------

const alerts = initPush($('push'), { onChange: () => render() });

// A tap on a notification while the app is open: go to the card, no reload.
navigator.serviceWorker?.addEventListener('message', (e) => {
  if (e.data?.type !== 'navigate') return;
  const url = new URL(e.data.url, location.href);
  if (url.pathname === location.pathname) location.hash = url.hash;
  else location.assign(url.href);
});

// --- offers and incidents --------------------------------------------------

/** Rebuilds a card only when what it shows changed, so typing and focus survive. */
function reconcile(container, items, keyOf, build) {
  const existing = new Map([...container.children].map((el) => [el.dataset.incident, el]));
  let prev = null;
  for (const [id, item] of items) {
    const key = keyOf(item);
    let el = existing.get(id);
    existing.delete(id);
    if (!el || el.dataset.key !== key) {
      const fresh = build(item);
      fresh.dataset.key = key;
      if (el) {
        const hadFocus = el.contains(document.activeElement);
        el.replaceWith(fresh);
        if (hadFocus) fresh.querySelector('button, textarea, input')?.focus();
      }
      el = fresh;
    }
    const want = prev ? prev.nextSibling : container.firstChild;
    if (el !== want) container.insertBefore(el, want);
    prev = el;
  }
  for (const el of existing.values()) el.remove();
}

const offerActions = { accept, decline };
const incidentActions = {
  arrive,
  resolve,
  draft: (id, d) => state.drafts.set(id, { ...(state.drafts.get(id) ?? {}), ...d }),
};

function render() {
  renderDuty();
  reconcile(els.offers, state.offers,
    (o) => [o.expires_at, o.incident.escalation_level, state.busy.has(o.incident.id)].join('|'),
    (o) => {
      const card = offerCard(o, offerActions);
      if (state.busy.has(o.incident.id)) busyButtons(card, o.incident.id);
      return card;
    });
  reconcile(els.incidents, state.incidents,
    (i) => [i.status, state.elders.has(i.elder_id), state.busy.has(i.id)].join('|'),
    (i) => {
      const card = incidentCard(i, state.elders.get(i.elder_id) ?? null, state.drafts.get(i.id) ?? {}, incidentActions);
      if (state.busy.has(i.id)) busyButtons(card, i.id);
      return card;
    });
  els.empty.hidden = state.offers.size > 0 || state.incidents.size > 0;
  els.empty.textContent = t(!state.steward?.on_duty ? 'empty.off' : alerts.isOn() ? 'empty.on_alerts' : 'empty.on');
  els.savedAt.hidden = !state.savedAt;
  els.savedAt.textContent = state.savedAt ? t('saved.at', { time: time(state.savedAt) }) : '';
  for (const card of document.querySelectorAll('.card[data-incident]')) {
    card.classList.toggle('target', card.dataset.incident === state.highlight);
  }
  if (state.synced) saveState(stewardId, state);
  if (state.offers.size) startRinging(); else stopRinging();
  // The tab's title shows a waiting offer even when another app is in front.
  document.title = (state.offers.size ? '(' + state.offers.size + ') ' + t('offer.new', { kind: '' }).replace(/[:：]\s*$/, '') + ' · ' : '') + t('app.name');
  keepAwake(!!state.steward?.on_duty);
  tick();
}

/** On duty, the screen stays on where the browser allows (a sleeping phone may not ring). */
let wakeLock = null;
function keepAwake(on) {
  if (!navigator.wakeLock) return;
  if (on && !wakeLock && document.visibilityState === 'visible') {
    wakeLock = navigator.wakeLock.request('screen');
    wakeLock.then((l) => l.addEventListener('release', () => { wakeLock = null; }), () => { wakeLock = null; });
  } else if (!on && wakeLock) {
    wakeLock.then((l) => l.release(), () => {});
    wakeLock = null;
  }
}
document.addEventListener('visibilitychange', () => keepAwake(!!state.steward?.on_duty));

const BUSY_LABEL = {
  accept: 'offer.accepting', decline: 'offer.declining', arrive: 'inc.arriving', 'resolve-submit': 'inc.resolving',
};

/** While a request is out, the card's buttons are disabled and the pressed one says so. */
function busyButtons(card, id) {
  const cls = state.pressed.get(id);
  for (const b of card.querySelectorAll('button')) {
    b.disabled = true;
    if (cls && b.classList.contains(cls)) b.textContent = t(BUSY_LABEL[cls]);
  }
}

async function act(id, cls, request) {
  state.busy.add(id);
  state.pressed.set(id, cls);
  render();
  try {
    return await request();
  } finally {
    state.busy.delete(id);
    state.pressed.delete(id);
  }
}

async function accept(id) {
  const offer = state.offers.get(id);
  try {
    const inc = await act(id, 'accept', () => api('POST', `/incidents/${encodeURIComponent(id)}/accept`));
    state.offers.delete(id);
    if (offer?.elder) state.elders.set(offer.elder.id, offer.elder);
    if (inc.status && isOpen(inc.status)) state.incidents.set(id, inc);
  } catch (err) {
    notice(failure(err), 'error');
    if (err instanceof ApiError && err.status !== 401) state.offers.delete(id);
  }
  render();
  ensureElders();
  document.querySelector(`#incidents [data-incident="${CSS.escape(id)}"] button`)?.focus();
}

async function decline(id) {
  try {
    await act(id, 'decline', () => api('POST', `/incidents/${encodeURIComponent(id)}/decline`));
    state.offers.delete(id);
  } catch (err) {
    notice(failure(err), 'error');
    if (err instanceof ApiError && err.status !== 401) state.offers.delete(id);
  }
  render();
}

async function arrive(id) {
  try {
    const inc = await act(id, 'arrive', () => api('POST', `/incidents/${encodeURIComponent(id)}/arrive`));
    updateIncident(inc);
  } catch (err) {
    notice(failure(err), 'error');
    if (err instanceof ApiError && err.status === 409) refetch(id);
  }
  render();
}

async function resolve(id, outcome, notes) {
  try {
    const inc = await act(id, 'resolve-submit', () =>
      api('POST', `/incidents/${encodeURIComponent(id)}/resolve`, { outcome, notes }));
    updateIncident(inc, true);
    notice(t('inc.resolved_notice'), 'ok');
    // A resolve makes a follow-up call for this steward.
    loadFollowUps();
  } catch (err) {
    notice(failure(err), 'error');
    if (err instanceof ApiError && err.status === 409) refetch(id);
  }
  render();
}

/** After a conflict, what the server now says about the incident. */
async function refetch(id) {
  try {
    const d = await api('GET', `/incidents/${encodeURIComponent(id)}`);
    updateIncident(d.incident ?? d, true);
  } catch (err) {
    if (err instanceof ApiError) state.incidents.delete(id);
  }
  render();
}

function isOpen(status) {
  return status === 'dispatching' || status === 'acknowledged' || status === 'on_site';
}

/** An incident after a change: kept while open and ours, else let go. */
function updateIncident(inc, quiet = false) {
  const mine = inc.steward_id === stewardId && isOpen(inc.status);
  if (mine) {
    state.incidents.set(inc.id, inc);
    state.offers.delete(inc.id);
    return;
  }
  if (state.incidents.has(inc.id)) {
    state.incidents.delete(inc.id);
    state.drafts.delete(inc.id);
    if (!quiet) {
      notice(t(inc.status === 'cancelled' ? 'inc.cancelled_notice'
        : inc.status === 'resolved' ? 'inc.closed_by_other' : 'err.not_assigned'));
    }
  }
}

/** Fetches the elder of each assigned incident not yet known (after a reload). */
async function ensureElders() {
  for (const inc of state.incidents.values()) {
    if (!inc.elder_id || state.elders.has(inc.elder_id)) continue;
    try {
      state.elders.set(inc.elder_id, await api('GET', `/elders/${encodeURIComponent(inc.elder_id)}`));
      render();
    } catch { /* shown without details; tried again on the next change */ }
  }
}

// --- the stream ------------------------------------------------------------

function ringFor(offer) {
  if (state.rung.has(offer.incident.id)) return;
  state.rung.add(offer.incident.id);
  els.announce.textContent = t('offer.announce', {
    name: offer.elder?.name ?? t('elder.unknown'), dist: distance(offer.distance_m),
  });
}

function onEvent(name, data) {
  switch (name) {
    case 'snapshot':
      state.synced = true;
      state.savedAt = null;
      state.offers = new Map((data.offers ?? []).map((o) => [o.incident.id, o]));
      state.incidents = new Map((data.incidents ?? []).map((i) => [i.id, i]));
      if (data.steward) state.steward = data.steward;
      for (const o of state.offers.values()) {
        if (o.elder) state.elders.set(o.elder.id, o.elder);
        ringFor(o);
      }
      ensureElders();
      break;
    case 'offer':
      state.offers.set(data.incident.id, data);
      if (data.elder) state.elders.set(data.elder.id, data.elder);
      ringFor(data);
      break;
    case 'offer.withdrawn': {
      const id = data.incident_id;
      const had = state.offers.delete(id) || state.incidents.delete(id);
      if (had && data.reason !== 'declined') {
        const key = 'withdrawn.' + data.reason;
        const text = t(key);
        notice(text === key ? t('withdrawn.other', { reason: data.reason }) : text, 'warn');
      }
      break;
    }
    case 'incident':
      updateIncident(data);
      ensureElders();
      break;
    default:
      return;
  }
  render();
}

/** The banner shows while the stream is down or the phone says it has no network. */
let netDown = navigator.onLine === false;
function renderOffline() {
  els.offline.hidden = !(state.conn === 'offline' || netDown);
}
function onState(s) {
  state.conn = s;
  document.body.dataset.conn = s;
  renderOffline();
  if (s === 'offline' && !state.synced && !state.savedAt) restoreSaved();
  if (s === 'live') alerts.retry();
}

/** No stream since the page loaded: show what this phone last knew. */
function restoreSaved() {
  const saved = loadState(stewardId);
  if (!saved) return;
  state.skew = saved.skew ?? 0;
  state.steward = saved.steward ?? state.steward;
  const now = serverNow();
  // An offer past its time cannot be taken: not shown at all.
  state.offers = new Map((saved.offers ?? [])
    .filter((o) => Date.parse(o.expires_at) > now)
    .map((o) => [o.incident.id, { ...o, saved: true }]));
  state.incidents = new Map((saved.incidents ?? []).map((i) => [i.id, i]));
  for (const e of saved.elders ?? []) state.elders.set(e.id, e);
  state.savedAt = saved.saved_at;
  render();
}
window.addEventListener('offline', () => { netDown = true; renderOffline(); });
window.addEventListener('online', () => { netDown = false; renderOffline(); });

// --- time ------------------------------------------------------------------

/** Now on the server's clock: countdowns agree with the dispatcher's. */
const serverNow = () => Date.now() + state.skew;

function tick() {
  const now = serverNow();
  // A saved offer is only known until its time is up; then it goes, not
  // left with buttons as if it could still be taken.
  let ended = false;
  for (const [id, o] of state.offers) {
    if (o.saved && Date.parse(o.expires_at) <= now) { state.offers.delete(id); ended = true; }
  }
  if (ended) { render(); return; }
  tickOffers(els.offers, now);
  tickIncidents(els.incidents, now);
  showTarget();
}

// --- `#incident=<id>` ----------------------------------------------------------

/** How long a card asked for may take to arrive (an accept from a notification is on its way). */
const TARGET_PATIENCE_MS = 10_000;

function takeTarget() {
  const id = hashParam('incident');
  if (!id) return;
  state.target = { id, since: Date.now() };
  clearHash();
  showTarget();
}

function showTarget() {
  if (!state.target) return;
  const { id, since } = state.target;
  const card = document.querySelector(`.cards [data-incident="${CSS.escape(id)}"]`);
  if (card) {
    state.target = null;
    state.highlight = id;
    for (const c of document.querySelectorAll('.card.target')) c.classList.remove('target');
    card.classList.add('target');
    card.scrollIntoView({ block: 'start' });
  } else if (state.synced && Date.now() - since > TARGET_PATIENCE_MS) {
    state.target = null;
    notice(t('link.gone'), 'warn');
  }
}

/** A link opened while the app is already open only changes the hash. */
async function onHashChange() {
  if (hashParam('link')) {
    const problem = await redeemLink();
    if (problem) notice(linkText(problem), 'error');
    // This page's login had gone and the link brought another: start afresh.
    if (session()?.steward_id !== stewardId) { location.reload(); return; }
  }
  takeTarget();
}
window.addEventListener('hashchange', onHashChange);

async function syncClock() {
  try {
    const sent = Date.now();
    const r = await fetch('/api/v1/auth/me', { headers: { Authorization: 'Bearer ' + me.token } });
    const date = Date.parse(r.headers.get('date'));
    const here = (sent + Date.now()) / 2;
    // The header has whole seconds: correct only what is clearly off.
    if (isFinite(date) && Math.abs(date + 500 - here) > 2000) state.skew = date + 500 - here;
    saveClockOffset(state.skew);
  } catch { /* keep the phone's time */ }
}

onLangChange(() => {
  redrawFollowUps();
  // Cards carry text of the old language: rebuild them all.
  for (const c of [...els.offers.children, ...els.incidents.children]) c.dataset.key = '';
  renderSound();
  renderLocation();
  render();
  round.render();
});

// Today's round of visits, below the alarms.
const round = roundView($('round'), failure);

renderSound();
renderLocation();
initFollowUps(document.getElementById('followups'), notice);
if (linkProblem) notice(linkText(linkProblem), 'error');
takeTarget();
render();
syncClock();
setInterval(tick, 1000);
registerWorker();
openStream(onEvent, onState);
// The phone says it has no network: no need to wait for the stream to fail.
if (netDown) restoreSaved();
// Nobody answered for a long while past the deadline: the server has surely
// withdrawn it; if that event was lost, the next snapshot will say so.
setInterval(() => {
  for (const [id, o] of state.offers) {
    if (serverNow() - Date.parse(o.expires_at) > 15_000 && !state.busy.has(id)) {
      state.offers.delete(id);
      notice(t('withdrawn.expired'), 'warn');
      render();
    }
  }
}, 5000);
