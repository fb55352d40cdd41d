// Today's round (`/app/`): the steward's visits due today and earlier, in
// walking order, each with the elder's essentials. A visit begins at the
// door (the phone's location, or the bed's button pressed twice) and ends
// with a short note: how they are, medicines started or stopped, what
// they need, a follow-up wanted, free text. Then the next stop.
import { t } from '../common/i18n.js';
import { h, fill, scriptLang } from '../common/dom.js';
import { api } from '../common/api.js';
import { nameLine, address, navLinks, distance } from './elder.js';
import { loadFollowUps } from './followups.js';

const WELLBEING = ['well', 'fair', 'poor'];
const NEEDS = ['meals', 'cleaning', 'shopping', 'medicine', 'doctor', 'company', 'repairs', 'other'];

/**
 * The round in `section`. `failure(err)` words an error as the rest of
 * the app does. Returns {refresh}.
 */
export function roundView(section, failure) {
  const state = { round: null, busy: null, error: null, drafts: new Map(), books: new Map() };

  /** The elder's notebook, opened under their card (toggled). */
  async function toggleBook(elderId) {
    if (state.books.has(elderId)) { state.books.delete(elderId); render(); return; }
    state.books.set(elderId, { loading: true });
    render();
    try {
      state.books.set(elderId, await api('GET', `/elders/${encodeURIComponent(elderId)}/notebook`));
    } catch (e) {
      state.books.set(elderId, { error: failure(e) });
    }
    render();
  }

  function bookView(b) {
    if (b.loading) return h('p', { class: 'muted' }, '…');
    if (b.error) return h('p', { class: 'notice error' }, b.error);
    const line = (x) => {
      const when = new Date(x.at).toLocaleDateString();
      switch (x.entry) {
        case 'visit':
          return x.visit.note
            ? [when, ' ', t('wellbeing.' + x.visit.note.wellbeing), x.visit.note.text ? ' · ' + x.visit.note.text : '']
            : [when, ' ', t('visit.' + x.visit.status)];
        case 'change':
          return [when, ' ', t('book.' + x.change.field), ': ',
            [...(x.change.add ?? []).map((a) => '+' + a), ...(x.change.remove ?? []).map((r) => '−' + r)].join(', ')];
        case 'incident':
          return [when, ' ', t('kind.' + x.kind), x.outcome ? ' · ' + t('outcome.' + x.outcome) : ''];
        case 'follow_up':
          return [when, ' ', t('book.follow_up'), x.follow_up.outcome ? ' · ' + x.follow_up.outcome : ''];
        case 'device':
          return [when, ' ', t('kind.' + x.kind)];
        default:
          return [when];
      }
    };
    const entries = (b.entries ?? []).slice(0, 12);
    return h('div', { class: 'notebook' },
      entries.length
        ? h('ol', { class: 'book-entries' }, entries.map((x) => h('li', { class: 'book-' + x.entry }, line(x))))
        : h('p', { class: 'muted' }, t('book.empty')));
  }

  async function refresh() {
    try {
      state.round = await api('GET', '/rounds/today');
      state.error = null;
    } catch (e) {
      state.error = failure(e);
    }
    render();
  }

  function here() {
    return new Promise((resolve, reject) => {
      if (!navigator.geolocation) { reject(new Error(t('round.no_location'))); return; }
      navigator.geolocation.getCurrentPosition(
        (p) => resolve({ lat: p.coords.latitude, lon: p.coords.longitude, accuracy_m: p.coords.accuracy }),
        () => reject(new Error(t('round.no_location'))),
        { enableHighAccuracy: true, timeout: 15000, maximumAge: 30000 });
    });
  }

  async function act(visit, f) {
    state.busy = visit;
    state.error = null;
    render();
    try {
      await f();
      await refresh();
    } catch (e) {
      state.error = failure(e);
    } finally {
      state.busy = null;
      render();
    }
  }

  function checkIn(stop) {
    return act(stop.visit.id, async () => {
      const at = await here();
      await api('POST', `/visits/${encodeURIComponent(stop.visit.id)}/start`, at);
    });
  }

  function draft(id) {
    if (!state.drafts.has(id)) {
      state.drafts.set(id, { wellbeing: null, needs: new Set(), started: '', stopped: '', follow_up: false, text: '' });
    }
    return state.drafts.get(id);
  }

  function finish(stop) {
    const d = draft(stop.visit.id);
    if (!d.wellbeing) { state.error = t('round.pick_wellbeing'); render(); return; }
    const lines = (s) => s.split(/[\n,，;；]/).map((x) => x.trim()).filter(Boolean);
    const note = {
      wellbeing: d.wellbeing,
      medication_changes: { add: lines(d.started), remove: lines(d.stopped) },
      needs: [...d.needs],
      follow_up: d.follow_up,
      text: d.text,
    };
    return act(stop.visit.id, async () => {
      await api('POST', `/visits/${encodeURIComponent(stop.visit.id)}/finish`, note);
      state.drafts.delete(stop.visit.id);
      // A follow-up wanted is a call on this steward's list now.
      if (note.follow_up) loadFollowUps();
    });
  }

  function noteForm(stop) {
    const d = draft(stop.visit.id);
    const id = stop.visit.id;
    const busy = state.busy === id;
    return h('form', { class: 'visit-note', onsubmit: (e) => { e.preventDefault(); finish(stop); } },
      h('fieldset', { class: 'choices' },
        h('legend', null, t('round.how')),
        WELLBEING.map((w) => h('label', { class: 'choice' + (d.wellbeing === w ? ' on' : '') },
          h('input', { type: 'radio', name: 'wellbeing-' + id, value: w, checked: d.wellbeing === w,
            onchange: () => { d.wellbeing = w; render(); } }),
          t('wellbeing.' + w)))),
      h('fieldset', { class: 'choices' },
        h('legend', null, t('round.needs')),
        NEEDS.map((n) => h('label', { class: 'choice' + (d.needs.has(n) ? ' on' : '') },
          h('input', { type: 'checkbox', value: n, checked: d.needs.has(n),
            onchange: (e) => { if (e.target.checked) d.needs.add(n); else d.needs.delete(n); render(); } }),
          t('need.' + n)))),
      h('label', { class: 'field' }, t('round.med_started'),
        h('input', { type: 'text', value: d.started, oninput: (e) => { d.started = e.target.value; } })),
      h('label', { class: 'field' }, t('round.med_stopped'),
        h('input', { type: 'text', value: d.stopped, oninput: (e) => { d.stopped = e.target.value; } })),
      h('label', { class: 'check' },
        h('input', { type: 'checkbox', class: 'follow-up-wanted', checked: d.follow_up, onchange: (e) => { d.follow_up = e.target.checked; } }),
        t('round.follow_up')),
      h('label', { class: 'field' }, t('round.text'),
        h('textarea', { rows: 3, maxlength: 4000, oninput: (e) => { d.text = e.target.value; } }, d.text)),
      h('button', { type: 'submit', class: 'big primary finish', disabled: busy }, busy ? '…' : t('round.finish')));
  }

  function stopCard(stop, n) {
    const v = stop.visit;
    const busy = state.busy === v.id;
    const status = stop.overdue ? 'overdue' : v.status;
    return h('article', { class: 'card stop stop-' + status, dataset: { visit: v.id } },
      h('div', { class: 'card-head' },
        h('span', { class: 'stop-n' }, String(n)),
        h('span', { class: 'badge stop-status' }, t('visit.' + status)),
        stop.walk_m != null ? h('span', { class: 'muted' }, t('round.walk', { d: distance(stop.walk_m) })) : null),
      nameLine(stop.elder, 'h3'),
      address(stop.elder),
      h('p', { class: 'stop-essentials' },
        stop.elder.lives_alone ? h('strong', null, t('elder.lives_alone') + ' · ') : null,
        [...stop.elder.conditions, ...stop.elder.medications].map((x, i) =>
          [i ? ' · ' : '', h('span', { lang: scriptLang(x) }, x)])),
      stop.last_note
        ? h('p', { class: 'muted last-note' }, t('round.last', { how: t('wellbeing.' + stop.last_note.wellbeing) }),
          stop.last_note.text ? h('span', { lang: scriptLang(stop.last_note.text) }, ' ' + stop.last_note.text) : null)
        : null,
      h('button', { type: 'button', class: 'small book-toggle', 'aria-expanded': String(state.books.has(stop.elder.id)),
        onclick: () => toggleBook(stop.elder.id) }, t('book.open')),
      state.books.has(stop.elder.id) ? bookView(state.books.get(stop.elder.id)) : null,
      v.status === 'planned'
        ? [navLinks(stop.elder),
          h('button', { type: 'button', class: 'big primary check-in', disabled: busy, onclick: () => checkIn(stop) },
            busy ? t('round.locating') : t('round.check_in')),
          h('p', { class: 'muted hint' }, t('round.button_hint'))]
        : noteForm(stop));
  }

  function render() {
    const r = state.round;
    const stops = r?.stops ?? [];
    fill(section,
      h('h2', { class: 'round-title' }, t('round.title'),
        r ? h('span', { class: 'muted' }, ' · ' + t('round.count', { n: stops.length })) : null),
      state.error ? h('p', { class: 'notice error round-error', role: 'alert' }, state.error) : null,
      r && !stops.length ? h('p', { class: 'muted round-empty' }, t('round.none')) : null,
      stops.map((s, i) => stopCard(s, i + 1)));
  }

  render();
  refresh();
  setInterval(refresh, 60000);
  return { refresh, render };
}
