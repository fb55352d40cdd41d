// The incident page: the elder's essentials, the timeline, the offers
// (each with how its steward was tried: pushes, repeats, SMS, a call, and
// what came back) and why each steward was chosen or passed over, the
// other notifications, and the supervisor's actions (assign, cancel,
// resolve).
import { api, ApiError } from '../common/api.js';
import { t, duration, dateTime, time } from '../common/i18n.js';
import { h, fill } from '../common/dom.js';
import { state, subscribe, OPEN, ageS, pastTarget, stewardName } from './state.js';
import { label } from './incidents.js';

let current = null; // the id shown
let root;

subscribe((what) => {
  if (current && what === 'incident:' + current && !root.hidden) load(current);
});

export function showIncident(el, id) {
  root = el;
  current = id;
  fill(root, h('p', { class: 'muted', text: t('loading') }));
  load(id);
}

async function load(id) {
  let d;
  let elder = null;
  try {
    d = await api('GET', '/incidents/' + encodeURIComponent(id));
    if (d.elder_id) elder = state.elders.get(d.elder_id) ?? await api('GET', '/elders/' + encodeURIComponent(d.elder_id)).catch(() => null);
  } catch (e) {
    if (current !== id) return;
    fill(root, back(), h('p', { class: 'error-text', role: 'alert', text: e instanceof ApiError && e.status === 404 ? t('inc.not_found') : t('err.load', { message: e.message }) }));
    return;
  }
  if (current !== id) return;
  const focused = document.activeElement?.id;
  fill(root,
    back(),
    h('div', { class: 'incident-page' },
      header(d),
      section('inc.elder', elderCard(elder)),
      section('inc.actions', actions(d)),
      section('inc.timeline', timeline(d.timeline)),
      section('inc.offers', offers(d.offers, d.deliveries)),
      section('inc.candidates', candidates(d.candidates)),
      section('inc.deliveries', deliveries(otherDeliveries(d.offers, d.deliveries)))));
  if (focused) document.getElementById(focused)?.focus();
}

const back = () => h('p', {}, h('a', { href: '#board', text: '← ' + t('inc.back') }));

function section(key, ...body) {
  return h('section', { class: 'panel' }, h('h3', { text: t(key) }), ...body);
}

function header(d) {
  const open = OPEN.includes(d.status);
  return h('div', { class: `incident-head prio-${d.priority}` + (open && pastTarget(d) ? ' past-target' : '') },
    h('h2', { text: t('inc.title', { id: d.id }) }),
    h('p', { class: 'facts' },
      h('span', { class: `badge prio-bg-${d.priority}`, text: label('priority', d.priority) }),
      h('span', { text: label('kind', d.kind) + (d.summary ? ' · ' + d.summary : '') }),
      h('strong', { class: 'state', text: label('state', d.status) }),
      h('span', { text: `${t('col.steward')}: ${stewardName(d.steward_id) ?? t('unassigned')}` }),
      d.escalation_level > 0 ? h('span', { class: 'escalation', text: '▲ ' + t('escalated', { n: d.escalation_level }) }) : null,
      h('span', { text: `${t('inc.created')}: ${dateTime(d.created_at)}` + (open ? ` (${duration(ageS(d.created_at))})` : '') }),
      open && pastTarget(d) ? h('span', { class: 'late-sign', text: '⚠ ' + t('past_target') }) : null,
      d.outcome ? h('span', { text: `${t('inc.outcome')}: ${label('outcome', d.outcome)}` }) : null));
}

function elderCard(e) {
  if (!e) return h('p', { class: 'muted', text: '–' });
  const list = (items) => (items?.length ? h('ul', {}, items.map((x) => h('li', { text: x }))) : h('span', { class: 'muted', text: t('inc.none') }));
  const risks = [e.risks?.fall && t('inc.risk_fall'), e.risks?.wandering && t('inc.risk_wandering'), e.lives_alone && t('inc.lives_alone')].filter(Boolean);
  const age = new Date().getFullYear() - e.birth_year;
  return h('dl', { class: 'essentials' },
    h('dt', { text: t('col.name') }), h('dd', {}, h('strong', { text: e.name }), ' · ', t('inc.age_years', { n: age }),
      ' · ', h('a', { class: 'notebook-link', href: '#elder/' + encodeURIComponent(e.id), text: t('nb.link') })),
    h('dt', { text: t('inc.address') }), h('dd', { text: e.address }),
    h('dt', { text: t('inc.conditions') }), h('dd', {}, list(e.conditions)),
    h('dt', { text: t('inc.medications') }), h('dd', {}, list(e.medications)),
    h('dt', { text: t('inc.risks') }), h('dd', {}, risks.length ? h('strong', { class: 'risk', text: risks.join(' · ') }) : t('inc.none')),
    h('dt', { text: t('inc.contacts') }), h('dd', {}, e.contacts?.length
      ? h('ul', {}, e.contacts.map((c) => h('li', {}, `${c.name} (${c.relation}) `, h('a', { href: 'tel:' + c.phone, text: c.phone }))))
      : t('inc.none')),
    h('dt', { text: t('inc.languages') }), h('dd', { text: (e.languages ?? []).join(', ') || '–' }),
    h('dt', { text: t('inc.notes') }), h('dd', { text: e.notes || '–' }));
}

function table(cols, rows) {
  if (!rows.length) return h('p', { class: 'muted', text: t('inc.none') });
  return h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col', text: t(c) })))),
    h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c) => h('td', {}, c ?? '–')))))));
}

const metres = (m) => (m == null ? '–' : m >= 1000 ? `${(m / 1000).toFixed(1)} km` : `${Math.round(m)} m`);

function timeline(entries) {
  return table(['inc.at', 'col.what', 'inc.actor'], (entries ?? []).map((e) => [time(e.at), e.what, e.actor]));
}

const OFFER_COLS = ['col.steward', 'inc.offered_at', 'inc.expires_at', 'inc.response', 'inc.distance'];

/** Each offer, and under it every way its steward was tried, in order. */
function offers(list, allDeliveries) {
  if (!list?.length) return h('p', { class: 'muted', text: t('inc.none') });
  const byOffer = new Map();
  for (const d of allDeliveries ?? []) {
    if (!d.offer_id) continue;
    if (!byOffer.has(d.offer_id)) byOffer.set(d.offer_id, []);
    byOffer.get(d.offer_id).push(d);
  }
  const when = (d) => Date.parse(d.due_at ?? d.created_at);
  return h('div', { class: 'table-wrap' }, h('table', { class: 'offers' },
    h('thead', {}, h('tr', {}, OFFER_COLS.map((c) => h('th', { scope: 'col', text: t(c) })))),
    h('tbody', {}, list.map((o) => {
      const tried = (byOffer.get(o.id) ?? []).sort((a, b) => when(a) - when(b));
      return [
        h('tr', { class: 'offer-row', dataset: { offer: o.id } },
          [stewardName(o.steward_id), time(o.offered_at), time(o.expires_at),
            label('response', o.response ?? 'live') + (o.responded_at ? ' ' + time(o.responded_at) : ''),
            metres(o.distance_m)].map((c) => h('td', {}, c ?? '–'))),
        tried.length
          ? h('tr', { class: 'attempts-row', dataset: { offer: o.id } },
            h('td', { colspan: OFFER_COLS.length },
              h('ul', { class: 'attempts', 'aria-label': t('inc.attempts_of', { name: stewardName(o.steward_id) }) },
                tried.map(attempt))))
          : null,
      ];
    }))));
}

/** One try: the channel, when it was due, and what came back. */
function attempt(d) {
  const note = d.event === 'offer' || d.event === 'offer.sms' || d.event === 'offer.voice' ? null : label('event', d.event);
  return h('li', { class: 'attempt st-' + d.state, dataset: { channel: d.channel, state: d.state } },
    h('strong', { text: label('channel', d.channel) }),
    note ? ` (${note})` : '',
    ` · ${t('inc.due')} ${time(d.due_at ?? d.created_at)} · `,
    h('span', { class: 'attempt-state', text: label('dstate', d.state) }),
    d.last_error ? h('span', { class: 'attempt-error', text: ` (${d.last_error})` }) : null);
}

/** The deliveries not tied to an offer shown above (webhooks, device commands). */
function otherDeliveries(offerList, list) {
  const ids = new Set((offerList ?? []).map((o) => o.id));
  return (list ?? []).filter((d) => !d.offer_id || !ids.has(d.offer_id));
}

function candidates(list) {
  return table(['col.steward', 'inc.distance', 'inc.verdict', 'inc.reason'],
    (list ?? []).map((c) => [c.name, metres(c.distance_m), c.verdict, c.reason]));
}

function deliveries(list) {
  return table(['inc.channel', 'inc.target', 'inc.event', 'inc.delivery_state', 'inc.attempts'],
    (list ?? []).map((d) => [label('channel', d.channel), d.target, d.event,
      label('dstate', d.state) + (d.last_error ? ` (${d.last_error})` : ''), String(d.attempts)]));
}

function actions(d) {
  if (!OPEN.includes(d.status)) return h('p', { class: 'muted', text: t('inc.closed') });
  const status = h('p', { class: 'action-status', role: 'status', 'aria-live': 'polite' });
  const run = async (path, body) => {
    status.className = 'action-status';
    status.textContent = '…';
    try {
      await api('POST', `/incidents/${encodeURIComponent(d.id)}/${path}`, body);
      status.textContent = t('inc.done');
      load(d.id);
    } catch (e) {
      status.className = 'action-status error-text';
      status.textContent = t('common.error', { message: e.message });
    }
  };
  const candidatesFor = [...state.stewards.values()].filter((s) => s.on_duty && s.id !== d.steward_id)
    .sort((a, b) => (a.status === 'available' ? 0 : 1) - (b.status === 'available' ? 0 : 1) || a.name.localeCompare(b.name));
  const assignSel = h('select', { id: 'assign-steward' }, candidatesFor.map((s) => h('option', { value: s.id, text: `${s.name} · ${label('status', s.status)}` })));
  const reason = h('input', { id: 'cancel-reason', required: true });
  const outcome = h('select', { id: 'resolve-outcome' }, ['assisted', 'false_alarm', 'hospital', 'other'].map((o) => h('option', { value: o, text: label('outcome', o) })));
  const notes = h('input', { id: 'resolve-notes' });
  return h('div', { class: 'actions' },
    h('form', { class: 'action', onsubmit: (e) => { e.preventDefault(); if (assignSel.value) run('assign', { steward_id: assignSel.value }); } },
      h('label', { for: 'assign-steward', text: t('inc.assign_to') }), assignSel,
      h('button', { type: 'submit', class: 'primary', text: t('inc.assign'), disabled: !candidatesFor.length })),
    h('form', { class: 'action', onsubmit: (e) => { e.preventDefault(); run('resolve', { outcome: outcome.value, notes: notes.value }); } },
      h('label', { for: 'resolve-outcome', text: t('inc.outcome') }), outcome,
      h('label', { for: 'resolve-notes', text: t('inc.resolve_notes') }), notes,
      h('button', { type: 'submit', class: 'primary', text: t('inc.resolve') })),
    h('form', { class: 'action', onsubmit: (e) => { e.preventDefault(); if (confirm(t('inc.confirm_cancel'))) run('cancel', { reason: reason.value }); } },
      h('label', { for: 'cancel-reason', text: t('inc.cancel_reason') }), reason,
      h('button', { type: 'submit', class: 'danger', text: t('inc.cancel') })),
    status);
}
