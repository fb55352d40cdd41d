// The stewards' daily work on the board: visits due, in progress, done and
// overdue per grid on a day (#care), and an elder's notebook
// (#elder/<id>): visits and their notes, record changes, incidents,
// follow-ups and device health in one timeline, newest first.
import { api } from '../common/api.js';
import { t, dateTime } from '../common/i18n.js';
import { h, fill, scriptLang } from '../common/dom.js';
import { label } from './incidents.js';

const form = { date: null };
const day = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;

export async function showCare(root) {
  form.date ??= day(new Date());
  const date = h('input', { type: 'date', id: 'care-date', value: form.date, required: true });
  const out = h('div', { id: 'care-out', 'aria-live': 'polite' });
  fill(root,
    h('h2', { text: t('care.title') }),
    h('form', { class: 'panel filters', onsubmit: (e) => { e.preventDefault(); form.date = date.value; load(out); } },
      h('div', {}, h('label', { for: 'care-date', text: t('care.date') }), date),
      h('button', { type: 'submit', class: 'primary', text: t('rep.show') })),
    out);
  load(out);
}

async function load(out) {
  fill(out, h('p', { class: 'muted', text: t('loading') }));
  let r;
  try {
    r = await api('GET', '/visits/summary?date=' + encodeURIComponent(form.date));
  } catch (e) {
    fill(out, h('p', { class: 'error-text', role: 'alert', text: t('err.load', { message: e.message }) }));
    return;
  }
  if (!r.grids.length) { fill(out, h('p', { class: 'muted', text: t('care.none') })); return; }
  const sum = (k) => r.grids.reduce((n, g) => n + g[k], 0);
  const cols = ['care.grid', 'care.due', 'care.in_progress', 'care.done', 'care.overdue'];
  const row = (g, cls) => h('tr', { class: cls },
    h('th', { scope: 'row', text: g.grid || t('care.no_grid') }),
    h('td', { text: String(g.due) }), h('td', { text: String(g.in_progress) }), h('td', { text: String(g.done) }),
    h('td', { class: g.overdue ? 'late-sign' : null, text: String(g.overdue) }));
  fill(out, h('div', { class: 'table-wrap' }, h('table', { id: 'care-grids', class: 'roster' },
    h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col', text: t(c) })))),
    h('tbody', {}, r.grids.map((g) => row(g)),
      row({ grid: t('care.total'), due: sum('due'), in_progress: sum('in_progress'), done: sum('done'), overdue: sum('overdue') }, 'total')))));
}

export async function showNotebook(root, id) {
  fill(root, h('p', { class: 'muted', text: t('loading') }));
  let b;
  try {
    b = await api('GET', `/elders/${encodeURIComponent(id)}/notebook`);
  } catch (e) {
    fill(root, h('p', { class: 'error-text', role: 'alert', text: t('err.load', { message: e.message }) }));
    return;
  }
  const e = b.elder;
  fill(root,
    h('h2', {}, h('span', { lang: scriptLang(e.name), text: e.name }), ' · ', t('nb.title')),
    h('p', { class: 'facts' },
      h('span', { text: e.address }),
      h('span', { text: `${t('inc.conditions')}: ${(e.conditions ?? []).join(', ') || '–'}` }),
      h('span', { text: `${t('inc.medications')}: ${(e.medications ?? []).join(', ') || '–'}` }),
      e.care?.checkin ? h('span', { text: t('nb.checkin', { by: e.care.checkin.by }) }) : null),
    h('h3', { text: t('nb.devices') }),
    b.devices.length
      ? h('ul', { class: 'nb-devices' }, b.devices.map((d) => h('li', {},
        `${d.id} · ${t(d.online ? 'nb.online' : 'nb.offline')}`,
        d.battery_pct != null ? ` · ${d.battery_pct}%` : '',
        d.last_seen ? ` · ${dateTime(d.last_seen)}` : '')))
      : h('p', { class: 'muted', text: t('inc.none') }),
    h('h3', { text: t('nb.timeline') }),
    b.entries.length
      ? h('ol', { id: 'nb-entries', class: 'nb-entries' }, b.entries.map(entry))
      : h('p', { class: 'muted', text: t('inc.none') }));
}

function entry(x) {
  const when = h('time', { datetime: x.at, text: dateTime(x.at) });
  switch (x.entry) {
    case 'visit': {
      const v = x.visit;
      const n = v.note;
      return h('li', { class: 'nb-visit nb-visit-' + v.status }, when, ' ', h('strong', { text: t('nb.visit_' + v.status) }),
        v.done_by ? ` · ${v.done_by}` : '',
        n ? h('p', {},
          t('wellbeing.' + n.wellbeing),
          n.needs?.length ? ' · ' + n.needs.map((k) => t('need.' + k)).join(', ') : '',
          n.follow_up ? ' · ' + t('nb.follow_up_wanted') : '',
          n.text ? h('span', { lang: scriptLang(n.text) }, ' · ' + n.text) : null) : null);
    }
    case 'change': {
      const c = x.change;
      const parts = [];
      if (c.add?.length) parts.push('+ ' + c.add.join(', '));
      if (c.remove?.length) parts.push('− ' + c.remove.join(', '));
      return h('li', { class: 'nb-change' }, when, ' ', h('strong', { text: t('nb.' + c.field) }), ` ${parts.join(' ')} · ${c.actor}`);
    }
    case 'incident':
      return h('li', { class: 'nb-incident' }, when, ' ',
        h('a', { href: '#incident/' + encodeURIComponent(x.incident_id), text: label('kind', x.kind) }),
        ` · ${label('state', x.status)}`, x.outcome ? ` · ${label('outcome', x.outcome)}` : '', x.summary ? ` · ${x.summary}` : '');
    case 'follow_up': {
      const f = x.follow_up;
      return h('li', { class: 'nb-follow-up' + (f.overdue ? ' late-sign' : '') }, when, ' ',
        h('strong', { text: t('nb.follow_up_' + f.kind) }), ` · ${t('nb.fu_' + f.status)}`,
        f.outcome ? ` · ${f.outcome}` : '', f.note ? ` · ${f.note}` : '');
    }
    case 'device':
      return h('li', { class: 'nb-device' }, when, ' ', h('strong', { text: label('kind', x.kind) }),
        x.device_id ? ` · ${x.device_id}` : '', ` · ${label('state', x.status)}`);
    default:
      return h('li', {}, when);
  }
}
