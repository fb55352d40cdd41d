// The monthly report for funders and managers: per community (or, for
// one community, per grid) calls answered within 60 s and 180 s against
// the TSA's 97.5 % and 99 % (reference lines), arrivals within target,
// visits, follow-ups and test calls done, the false-alarm rate; charts
// drawn here as plain SVG (for the wall screen and for print), a table
// of every grid with subtotals, and the CSV and PDF to download.
import { api } from '../common/api.js';
import { session } from '../common/session.js';
import { t, lang } from '../common/i18n.js';
import { h, fill, download } from '../common/dom.js';

const form = { month: null, community: '' };
let communities = [];

const thisMonth = () => {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}`;
};
const pct = (v) => (v == null ? '–' : `${v.toFixed(1)}%`);
const communityName = (c) => (c === '' ? t('mon.unassigned') : c);
const gridName = (g) => (g === '' ? t('mon.no_elder') : g);

function query(format) {
  const q = new URLSearchParams({ month: form.month });
  if (form.community !== '') q.set('community', form.community);
  if (format) q.set('format', format);
  // The PDF is written in the board's language.
  if (format === 'pdf') q.set('lang', lang());
  return '/reports/monthly?' + q.toString();
}

export function showMonthly(root) {
  if (!form.month) form.month = thisMonth();
  const month = h('input', { type: 'month', id: 'mon-month', value: form.month, required: true, pattern: '[0-9]{4}-[0-9]{2}' });
  const community = h('select', { id: 'mon-community' },
    h('option', { value: '', text: t('mon.all') }),
    communities.filter((c) => c !== '').map((c) => h('option', { value: c, text: c, selected: c === form.community })));
  const out = h('div', { id: 'mon-out', 'aria-live': 'polite' });
  const read = () => { form.month = month.value || thisMonth(); form.community = community.value; };
  fill(root,
    h('h2', { text: t('mon.title') }),
    h('form', { class: 'panel filters no-print', onsubmit: (e) => { e.preventDefault(); read(); load(root, out); } },
      h('div', {}, h('label', { for: 'mon-month', text: t('mon.month') }), month),
      h('div', {}, h('label', { for: 'mon-community', text: t('mon.community') }), community),
      h('button', { type: 'submit', class: 'primary', id: 'mon-show', text: t('rep.show') }),
      h('button', { type: 'button', id: 'mon-csv', text: t('rep.csv'), onclick: () => { read(); csv(out); } }),
      h('button', { type: 'button', id: 'mon-pdf', text: t('mon.pdf'), onclick: () => { read(); pdf(out); } }),
      h('button', { type: 'button', id: 'mon-print', text: t('mon.print'), onclick: () => window.print() })),
    out);
  load(root, out);
}

async function load(root, out) {
  fill(out, h('p', { class: 'muted', text: t('loading') }));
  let r;
  try {
    r = await api('GET', query());
  } catch (e) {
    fill(out, h('p', { class: 'error-text', role: 'alert', text: t('err.load', { message: e.message }) }));
    return;
  }
  // The community list comes from the whole site's report.
  if (r.community == null) {
    const known = r.communities.map((c) => c.community);
    if (known.join('\n') !== communities.join('\n')) {
      communities = known;
      const select = root.querySelector('#mon-community');
      if (select) {
        fill(select, h('option', { value: '', text: t('mon.all') }),
          communities.filter((c) => c !== '').map((c) => h('option', { value: c, text: c, selected: c === form.community })));
      }
    }
  }
  // One bar per community, or per grid of the community asked for.
  const rows = r.community == null
    ? r.communities.map((c) => ({ name: communityName(c.community), f: c }))
    : r.grids.map((g) => ({ name: gridName(g.grid), f: g }));
  rows.push({ name: t('mon.total'), f: r.total, total: true });
  const refs = r.targets;
  fill(out,
    h('p', { id: 'mon-heading', text: t('mon.heading', { month: r.month, where: r.community == null ? t('mon.all') : r.community }) }),
    h('p', { class: 'muted', text: t('mon.defs', { arrive: Math.round(refs.arrive_s / 60) }) }),
    h('p', { id: 'mon-summary', text: t('mon.summary', { calls: r.total.calls, a60: pct(r.total.answered_60s_pct), a180: pct(r.total.answered_180s_pct) }) }),
    h('div', { class: 'charts monthly-charts' },
      answeredChart(rows, refs),
      pctChart(t('mon.chart_arrive'), rows, 'arrived_in_target_pct'),
      pctChart(t('mon.chart_visits'), rows, 'visits_done_pct'),
      pctChart(t('mon.chart_followups'), rows, 'follow_ups_done_pct'),
      pctChart(t('mon.chart_tests'), rows, 'test_devices_passed_pct'),
      pctChart(t('mon.chart_false'), rows, 'false_alarm_pct')),
    table(r));
}

const svg = (tag, attrs, ...kids) => h('svg:' + tag, attrs, ...kids);
const ROW = 24;
const TOP = 14;
const LABEL = 120;
const WIDTH = 560;
const PLOT = WIDTH - LABEL - 110;
const px = (v) => LABEL + (Math.max(0, Math.min(100, v)) / 100) * PLOT;

function frame(title, rows, body, extra = []) {
  const height = TOP + rows.length * ROW + 24;
  return h('figure', { class: 'chart panel' },
    h('figcaption', { text: title }),
    svg('svg', { viewBox: `0 0 ${WIDTH} ${height}`, role: 'img', 'aria-label': title },
      rows.map((row, n) => svg('g', { class: row.total ? 'total' : '' },
        svg('text', { x: LABEL - 6, y: TOP + n * ROW + 17, 'text-anchor': 'end', class: 'axis' }, row.name),
        body(row, TOP + n * ROW + 5))),
      [0, 50, 100].map((v) => svg('text', { x: px(v), y: height - 4, 'text-anchor': 'middle', class: 'axis' }, `${v}%`)),
      extra.map((e) => e(height))));
}

/** Within 180 s pale behind within 60 s solid; the references dashed. */
function answeredChart(rows, refs) {
  const line = (v, cls, label, dy) => (height) => svg('g', {},
    svg('line', { x1: px(v), x2: px(v), y1: 0, y2: height - 18, class: 'target ' + cls }),
    svg('text', { x: px(v) - 3, y: dy, 'text-anchor': 'end', class: 'axis ref-label' }, label));
  return frame(t('mon.chart_answered'), rows, (row, y) => {
    const a60 = row.f.answered_60s_pct;
    const a180 = row.f.answered_180s_pct;
    return [
      a180 != null ? svg('rect', { x: LABEL, y, width: Math.max(1, px(a180) - LABEL), height: ROW - 8, class: 'bar-p90' }) : null,
      a60 != null ? svg('rect', { x: LABEL, y: y + 4, width: Math.max(1, px(a60) - LABEL), height: ROW - 16, class: 'bar-p50' }) : null,
      svg('text', { x: px(100) + 4, y: y + 12, class: 'value' }, `${pct(a60)} / ${pct(a180)}`),
    ];
  }, [
    line(refs.answered_60s_reference_pct, 'ref-60', `${refs.answered_60s_reference_pct}%`, 10),
    line(refs.answered_180s_reference_pct, 'ref-180', '', 10),
    (height) => svg('text', { x: px(100) + 4, y: 10, class: 'axis ref-label' }, `${refs.answered_180s_reference_pct}%`),
  ]);
}

function pctChart(title, rows, field) {
  return frame(title, rows, (row, y) => {
    const v = row.f[field];
    return [
      svg('rect', { x: LABEL, y, width: PLOT, height: ROW - 8, class: 'bar-bg' }),
      v != null ? svg('rect', { x: LABEL, y, width: Math.max(1, px(v) - LABEL), height: ROW - 8, class: 'bar-p50' }) : null,
      svg('text', { x: px(100) + 4, y: y + 12, class: 'value' }, pct(v)),
    ];
  });
}

function table(r) {
  const cols = ['mon.col_grid', 'mon.col_elders', 'mon.col_calls', 'mon.col_a60', 'mon.col_a180', 'mon.col_arrive',
    'mon.col_false', 'mon.col_visits', 'mon.col_followups', 'mon.col_tests'];
  const cells = (f) => [
    h('td', { class: 'num', text: String(f.elders) }),
    h('td', { class: 'num', text: String(f.calls) }),
    h('td', { class: 'num', text: pct(f.answered_60s_pct) }),
    h('td', { class: 'num', text: pct(f.answered_180s_pct) }),
    h('td', { class: 'num', text: pct(f.arrived_in_target_pct) }),
    h('td', { class: 'num', text: pct(f.false_alarm_pct) }),
    h('td', { class: 'num', text: `${f.visits_done}/${f.visits_planned} (${pct(f.visits_done_pct)})` }),
    h('td', { class: 'num', text: `${f.follow_ups_done}/${f.follow_ups_due} (${pct(f.follow_ups_done_pct)})` }),
    h('td', { class: 'num', text: `${f.test_devices_passed}/${f.test_devices} (${pct(f.test_devices_passed_pct)})` }),
  ];
  const body = [];
  for (const c of r.communities) {
    for (const g of r.grids.filter((g) => g.community === c.community)) {
      body.push(h('tr', { dataset: { grid: g.grid } }, h('th', { scope: 'row', text: gridName(g.grid) }), cells(g)));
    }
    body.push(h('tr', { class: 'subtotal', dataset: { community: c.community } },
      h('th', { scope: 'row', text: communityName(c.community) }), cells(c)));
  }
  body.push(h('tr', { class: 'total', id: 'mon-total' }, h('th', { scope: 'row', text: t('mon.total') }), cells(r.total)));
  return h('div', { class: 'table-wrap' }, h('table', { id: 'mon-table', class: 'report' },
    h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col', text: t(c) })))),
    h('tbody', {}, body)));
}

async function csv(out) {
  try {
    const text = await api('GET', query(), undefined, { accept: 'text/csv' });
    download(new Blob([text], { type: 'text/csv' }), `monthly-${form.month}.csv`);
  } catch (e) {
    out.prepend(h('p', { class: 'error-text', role: 'alert', text: t('err.load', { message: e.message }) }));
  }
}

/** The PDF is bytes: fetched as a blob, not through api()'s text. */
async function pdf(out) {
  try {
    const res = await fetch('/api/v1' + query('pdf'), { headers: { Authorization: 'Bearer ' + session()?.token } });
    if (!res.ok) throw new Error(`${res.status} ${res.statusText}`);
    download(await res.blob(), `monthly-${form.month}.pdf`);
  } catch (e) {
    out.prepend(h('p', { class: 'error-text', role: 'alert', text: t('err.load', { message: e.message }) }));
  }
}
