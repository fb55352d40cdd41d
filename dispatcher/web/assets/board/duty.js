// Device duty: devices whose scheduled test call is missed or due, and
// the devices and elders whose alarms are mostly false, with the rule
// change suggested for each flagged elder and a button that applies it.
import { api } from '../common/api.js';
import { t } from '../common/i18n.js';
import { h, fill } from '../common/dom.js';
import { elderName } from './state.js';
import { label } from './incidents.js';

const pct = (rate) => `${Math.round(rate * 100)}%`;
const when = (at) => (at ? new Date(at).toLocaleDateString() : '–');

/** The late devices one page shows; the summary counts them all. */
const PAGE = 500;

export async function showDuty(root) {
  fill(root, h('h2', { text: t('duty.title') }), h('p', { class: 'muted', text: t('loading') }));
  let roster;
  let due;
  let alarms;
  try {
    // Only the devices that need someone, a page of each status, missed
    // first; the counts cover all.
    [roster, due, alarms] = await Promise.all([
      api('GET', `/device-tests?status=missed&limit=${PAGE}`),
      api('GET', `/device-tests?status=due&limit=${PAGE}`),
      api('GET', '/false-alarms')]);
  } catch (e) {
    fill(root, h('h2', { text: t('duty.title') }), h('p', { class: 'error-text', role: 'alert', text: t('err.load', { message: e.message }) }));
    return;
  }
  const late = [...roster.devices, ...due.devices];
  const c = roster.counts;
  const total = roster.total + due.total;
  fill(root,
    h('h2', { text: t('duty.title') }),
    h('section', { class: 'panel', 'aria-labelledby': 'duty-tests-h' },
      h('h3', { id: 'duty-tests-h', text: t('duty.tests') }),
      h('p', { id: 'duty-summary', text: t('duty.summary', { n: c.missed + c.due + c.ok, missed: c.missed, due: c.due, every: roster.test_every_days }) }),
      total > late.length ? h('p', { id: 'duty-more', class: 'muted', text: t('duty.first', { shown: late.length, total, page: PAGE }) }) : null,
      late.length ? testTable(late) : h('p', { class: 'ok', text: t('duty.all_tested') })),
    h('section', { class: 'panel', 'aria-labelledby': 'duty-alarms-h' },
      h('h3', { id: 'duty-alarms-h', text: t('duty.false_alarms') }),
      h('p', { class: 'muted', text: t('duty.rule', { threshold: pct(alarms.threshold), min: alarms.min_incidents }) }),
      h('h4', { text: t('duty.flagged_elders') }),
      elderTable(alarms.elders.filter((e) => e.flagged), root),
      h('h4', { text: t('duty.flagged_devices') }),
      deviceTable(alarms.devices.filter((d) => d.flagged))));
}

function testTable(rows) {
  return h('div', { class: 'table-wrap' }, h('table', { id: 'duty-tests' },
    h('thead', {}, h('tr', {}, ['col.id', 'col.elder', 'col.kind', 'duty.col_status', 'duty.col_last', 'duty.col_result', 'duty.col_due']
      .map((k) => h('th', { scope: 'col', text: t(k) })))),
    h('tbody', {}, rows.map((d) => h('tr', { class: d.status === 'missed' ? 'problem' : '' },
      h('th', { scope: 'row', text: d.device_id }),
      h('td', { text: d.elder_id ? elderName(d.elder_id) : '–' }),
      h('td', { text: d.kind }),
      h('td', {}, h('span', { class: d.status === 'missed' ? 'flag' : '', text: t('duty.status.' + d.status) })),
      h('td', { text: d.last_test ? when(d.last_test.received_at) : t('never') }),
      h('td', { text: d.last_result ? t('duty.result.' + d.last_result) : '–' }),
      h('td', { text: when(d.due_at) }))))));
}

function elderTable(rows, root) {
  if (!rows.length) return h('p', { class: 'ok', id: 'duty-elders-none', text: t('duty.no_flagged_elders') });
  return h('div', { class: 'table-wrap' }, h('table', { id: 'duty-elders' },
    h('thead', {}, h('tr', {}, ['col.elder', 'duty.col_rate', 'duty.col_mostly', 'duty.col_suggestion', 'col.actions']
      .map((k) => h('th', { scope: 'col', text: t(k) })))),
    h('tbody', {}, rows.map((e) => h('tr', {},
      h('th', { scope: 'row', text: elderName(e.elder_id) ?? e.elder_id }),
      h('td', { class: 'num', text: t('duty.rate', { rate: pct(e.rate), n: e.false_alarms, of: e.resolved }) }),
      h('td', { text: e.suggestion ? label('kind', e.suggestion.kind) : '–' }),
      h('td', { text: e.suggestion ? advice(e.suggestion) : '–' }),
      h('td', {}, e.suggestion?.change ? applyButton(e, root) : null))))));
}

/** The suggestion in the reader's language, from its kind and change. */
function advice(s) {
  if (s.change) {
    return t('duty.change.' + s.change.limit, { from: s.change.from, to: s.change.to });
  }
  return t('duty.advice.' + s.kind);
}

function applyButton(e, root) {
  const out = h('span', { class: 'muted', 'aria-live': 'polite' });
  const button = h('button', {
    type: 'button', class: 'primary', dataset: { elder: e.elder_id }, text: t('duty.apply'),
    onclick: async () => {
      button.disabled = true;
      try {
        await api('POST', '/false-alarms/suggestions/apply', { elder_id: e.elder_id, change: e.suggestion.change });
        fill(out, t('duty.applied'));
        setTimeout(() => showDuty(root), 800);
      } catch (err) {
        button.disabled = false;
        fill(out, h('span', { class: 'error-text', role: 'alert', text: t('err.load', { message: err.message }) }));
      }
    },
  });
  return [button, ' ', out];
}

function deviceTable(rows) {
  if (!rows.length) return h('p', { class: 'ok', text: t('duty.no_flagged_devices') });
  return h('div', { class: 'table-wrap' }, h('table', { id: 'duty-devices' },
    h('thead', {}, h('tr', {}, ['col.id', 'col.elder', 'duty.col_rate']
      .map((k) => h('th', { scope: 'col', text: t(k) })))),
    h('tbody', {}, rows.map((d) => h('tr', {},
      h('th', { scope: 'row', text: d.device_id }),
      h('td', { text: d.elder_id ? elderName(d.elder_id) : '–' }),
      h('td', { class: 'num', text: t('duty.rate', { rate: pct(d.rate), n: d.false_alarms, of: d.resolved }) }))))));
}
