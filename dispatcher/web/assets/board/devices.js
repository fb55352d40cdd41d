// Devices: which are offline, low on battery or silent (no heartbeat for
// three promised intervals), and when each was last heard.
import { api } from '../common/api.js';
import { t, duration } from '../common/i18n.js';
import { h, fill } from '../common/dom.js';
import { state, ageS, elderName } from './state.js';

/** Below this a battery needs changing soon. */
export const LOW_BATTERY_PCT = 20;
/** Missed heartbeats before a device counts as silent. */
const SILENT_AFTER_BEATS = 3;
let problemsOnly = true;

export function problems(d) {
  const p = [];
  if (!d.online) p.push('offline');
  if (d.battery_pct != null && d.battery_pct < LOW_BATTERY_PCT) p.push('low_battery');
  if (!d.last_seen || ageS(d.last_seen) > SILENT_AFTER_BEATS * (d.heartbeat_s || 60)) p.push('silent');
  return p;
}

export async function showDevices(root) {
  fill(root, h('h2', { text: t('dev.title') }), h('p', { class: 'muted', text: t('loading') }));
  let list;
  try {
    list = await api('GET', '/devices');
  } catch (e) {
    fill(root, h('h2', { text: t('dev.title') }), h('p', { class: 'error-text', role: 'alert', text: t('err.load', { message: e.message }) }));
    return;
  }
  const rows = list.map((d) => ({ d, p: problems(d) })).sort((a, b) => b.p.length - a.p.length || a.d.id.localeCompare(b.d.id));
  const count = (k) => rows.filter((r) => r.p.includes(k)).length;
  const body = h('tbody');
  const draw = () => fill(body, rows.filter((r) => !problemsOnly || r.p.length).map(({ d, p }) => h('tr', { class: p.length ? 'problem' : '' },
    h('th', { scope: 'row', text: d.id }),
    h('td', { text: d.elder_id ? elderName(d.elder_id) : '–' }),
    h('td', { text: d.kind }),
    h('td', { text: d.online ? t('dev.online') : t('dev.offline') }),
    h('td', { class: 'num', text: d.battery_pct == null ? '–' : d.battery_pct + '%' }),
    h('td', { text: d.last_seen ? t('ago', { d: duration(ageS(d.last_seen)) }) : t('never') }),
    h('td', {}, p.length ? p.map((k) => h('span', { class: 'flag', text: t('dev.' + k) })) : h('span', { class: 'ok', text: t('dev.ok') })))));
  const toggle = h('input', { type: 'checkbox', id: 'dev-problems', checked: problemsOnly, onchange: (e) => { problemsOnly = e.target.checked; draw(); } });
  draw();
  fill(root,
    h('h2', { text: t('dev.title') }),
    h('p', { id: 'dev-summary', text: t('dev.summary', { n: rows.length, offline: count('offline'), low: count('low_battery'), silent: count('silent') }) }),
    h('p', { class: 'check' }, toggle, h('label', { for: 'dev-problems', text: t('dev.problems_only') })),
    rows.length
      ? h('div', { class: 'table-wrap' }, h('table', { id: 'devices' },
          h('thead', {}, h('tr', {}, ['col.id', 'col.elder', 'col.kind', 'col.online', 'col.battery', 'col.last_heard', 'col.problems']
            .map((k) => h('th', { scope: 'col', text: t(k) })))),
          body))
      : h('p', { class: 'muted', text: t('dev.none') }));
}
