// Response times: time to acknowledge and to arrive (p50, p90) and the
// share within target, grouped by hour, steward, grid or priority over a
// date range, as bar charts (plain SVG) and a table, with a CSV download.
import { api } from '../common/api.js';
import { t, duration } from '../common/i18n.js';
import { h, fill, download } from '../common/dom.js';
import { label } from './incidents.js';
import { stewardName } from './state.js';

const GROUPS = ['priority', 'hour', 'steward', 'grid'];
const form = { from: null, to: null, group_by: 'priority' };
let root;

const day = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;

export function showReports(el) {
  root = el;
  if (!form.from) {
    const today = new Date();
    form.to = day(today);
    form.from = day(new Date(today.getTime() - 6 * 86400e3));
  }
  const from = h('input', { type: 'date', id: 'rep-from', value: form.from, required: true });
  const to = h('input', { type: 'date', id: 'rep-to', value: form.to, required: true });
  const group = h('select', { id: 'rep-group' }, GROUPS.map((g) => h('option', { value: g, text: t('group.' + g), selected: g === form.group_by })));
  const out = h('div', { id: 'rep-out', 'aria-live': 'polite' });
  const read = () => { form.from = from.value; form.to = to.value; form.group_by = group.value; };
  fill(root,
    h('h2', { text: t('rep.title') }),
    h('form', { class: 'panel filters', onsubmit: (e) => { e.preventDefault(); read(); load(out); } },
      h('div', {}, h('label', { for: 'rep-from', text: t('rep.from') }), from),
      h('div', {}, h('label', { for: 'rep-to', text: t('rep.to') }), to),
      h('div', {}, h('label', { for: 'rep-group', text: t('rep.group_by') }), group),
      h('button', { type: 'submit', class: 'primary', id: 'rep-show', text: t('rep.show') }),
      h('button', { type: 'button', id: 'rep-csv', text: t('rep.csv'), onclick: () => { read(); csv(out); } })),
    out);
  load(out);
}

/** The query for the form: whole local days, `to` inclusive. */
function query() {
  const from = new Date(form.from + 'T00:00:00');
  const to = new Date(new Date(form.to + 'T00:00:00').getTime() + 86400e3);
  return `from=${encodeURIComponent(from.toISOString())}&to=${encodeURIComponent(to.toISOString())}&group_by=${form.group_by}`;
}

async function load(out) {
  fill(out, h('p', { class: 'muted', text: t('loading') }));
  let r;
  try {
    r = await api('GET', '/reports/response-times?' + query());
  } catch (e) {
    fill(out, h('p', { class: 'error-text', role: 'alert', text: t('err.load', { message: e.message }) }));
    return;
  }
  const total = r.groups.reduce((n, g) => n + g.count, 0);
  fill(out,
    h('p', { text: t('rep.targets', { ack: duration(r.targets.ack_s), arrive: duration(r.targets.arrive_s) }) }),
    h('p', { id: 'rep-total', text: t('rep.total', { n: total }) }),
    r.groups.length
      ? [h('div', { class: 'charts' },
          chart(t('rep.chart_ack'), r.groups, 'ack_s', r.targets.ack_s, r.group_by),
          chart(t('rep.chart_arrive'), r.groups, 'arrive_s', r.targets.arrive_s, r.group_by)),
        reportTable(r)]
      : h('p', { class: 'muted', text: t('rep.none') }));
}

function groupName(by, g) {
  if (by === 'priority') return label('priority', g);
  if (by === 'steward') return stewardName(g) ?? g;
  if (by === 'hour') return `${String(g).padStart(2, '0')}:00`;
  return g;
}

const pct = (v) => (v == null ? '–' : `${Math.round(v)}%`);

function reportTable(r) {
  const cols = ['col.group', 'col.count', 'col.ack_p50', 'col.ack_p90', 'col.ack_within', 'col.arrive_p50', 'col.arrive_p90', 'col.arrive_within'];
  return h('div', { class: 'table-wrap' }, h('table', { id: 'rep-table', class: 'report' },
    h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col', text: t(c) })))),
    h('tbody', {}, r.groups.map((g) => h('tr', {},
      h('th', { scope: 'row', text: groupName(r.group_by, g.group) }),
      h('td', { class: 'num', text: String(g.count) }),
      h('td', { class: 'num', text: duration(g.ack_s.p50) }),
      h('td', { class: 'num', text: duration(g.ack_s.p90) }),
      h('td', { class: 'num', text: pct(g.ack_within_target_pct) }),
      h('td', { class: 'num', text: duration(g.arrive_s.p50) }),
      h('td', { class: 'num', text: duration(g.arrive_s.p90) }),
      h('td', { class: 'num', text: pct(g.arrive_within_target_pct) }))))));
}

/** Horizontal bars: p90 pale behind p50 solid, a dashed line at the target. */
function chart(title, groups, field, target, by) {
  const rowH = 28;
  const labelW = 110;
  const width = 640;
  const plotW = width - labelW - 60;
  const max = Math.max(target, ...groups.map((g) => g[field].p90 ?? 0)) * 1.1 || 1;
  const x = (v) => labelW + (v / max) * plotW;
  const height = groups.length * rowH + 30;
  const svg = (tag, attrs, ...kids) => h('svg:' + tag, attrs, ...kids);
  return h('figure', { class: 'chart panel' },
    h('figcaption', { text: title }),
    svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': title },
      groups.map((g, n) => {
        const y = n * rowH + 6;
        const p50 = g[field].p50;
        const p90 = g[field].p90;
        return svg('g', {},
          svg('text', { x: labelW - 6, y: y + 15, 'text-anchor': 'end', class: 'axis' }, groupName(by, g.group)),
          p90 != null ? svg('rect', { x: labelW, y, width: Math.max(1, x(p90) - labelW), height: rowH - 8, class: 'bar-p90' }) : null,
          p50 != null ? svg('rect', { x: labelW, y: y + 4, width: Math.max(1, x(p50) - labelW), height: rowH - 16, class: 'bar-p50' }) : null,
          svg('text', { x: x(p90 ?? p50 ?? 0) + 4, y: y + 15, class: 'value' }, p50 == null ? '–' : `${duration(p50)} / ${duration(p90)}`));
      }),
      svg('line', { x1: x(target), x2: x(target), y1: 0, y2: height - 22, class: 'target' }),
      svg('text', { x: x(target), y: height - 6, 'text-anchor': 'middle', class: 'axis' }, `${t('rep.target_line')} ${duration(target)}`)));
}

async function csv(out) {
  try {
    const text = await api('GET', '/reports/response-times?' + query(), undefined, { accept: 'text/csv' });
    download(new Blob([text], { type: 'text/csv' }), `response-times-${form.group_by}-${form.from}-${form.to}.csv`);
  } catch (e) {
    out.prepend(h('p', { class: 'error-text', role: 'alert', text: t('err.load', { message: e.message }) }));
  }
}
