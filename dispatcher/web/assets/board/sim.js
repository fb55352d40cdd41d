// Starting and stopping a simulator scenario (admins, and only where
// `[sim] enabled`): a 403, 404 or 409 says plainly "not available".
import { api, ApiError } from '../common/api.js';
import { t, time } from '../common/i18n.js';
import { h, fill } from '../common/dom.js';

/** What a server that does not list its scenarios is assumed to have. */
const FALLBACK = ['ordinary-day', 'flu-week', 'earthquake', 'power-cut', 'stuck-button'];
const UNAVAILABLE = [403, 404, 409, 503];

export async function showSim(root) {
  const title = h('h2', { text: t('sim.title') });
  fill(root, title, h('p', { class: 'muted', text: t('loading') }));
  let info;
  try {
    info = await api('GET', '/sim');
  } catch (e) {
    fill(root, title, e instanceof ApiError && UNAVAILABLE.includes(e.status)
      ? h('p', { id: 'sim-unavailable', class: 'panel', text: t('sim.unavailable') })
      : h('p', { class: 'error-text', role: 'alert', text: t('err.load', { message: e.message }) }));
    return;
  }
  const scenarios = (info?.scenarios?.length ? info.scenarios : FALLBACK)
    .map((s) => (typeof s === 'string' ? { name: s, summary: '' } : s));
  const status = h('p', { id: 'sim-status', role: 'status', 'aria-live': 'polite',
    text: info?.running ? t('sim.running', { name: info.scenario ?? '?' }) : t('sim.idle') });
  const select = h('select', { id: 'sim-scenario' }, scenarios.map((s) =>
    h('option', { value: s.name, text: s.summary ? `${s.name} — ${s.summary}` : s.name })));
  const act = async (path, body, done) => {
    try {
      await api('POST', '/sim/' + path, body);
      status.textContent = t(done);
      setTimeout(() => { if (!root.hidden) showSim(root); }, 800);
    } catch (e) {
      status.textContent = e instanceof ApiError && UNAVAILABLE.includes(e.status)
        ? `${t('sim.unavailable')} (${e.message})` : t('common.error', { message: e.message });
    }
  };
  fill(root, title,
    info?.enabled === false ? h('p', { id: 'sim-unavailable', class: 'panel', text: t('sim.unavailable') }) : null,
    h('form', { class: 'panel filters', onsubmit: (e) => { e.preventDefault(); act('start', { scenario: select.value }, 'sim.started'); } },
      h('div', {}, h('label', { for: 'sim-scenario', text: t('sim.scenario') }), select),
      h('button', { type: 'submit', class: 'primary', text: t('sim.start'), disabled: info?.enabled === false || info?.running }),
      h('button', { type: 'button', text: t('sim.stop'), disabled: !info?.running, onclick: () => act('stop', undefined, 'sim.stopped') })),
    status,
    info?.running || info?.events_sent ? h('p', { text: t('sim.sent', { n: info.events_sent ?? 0 }) }) : null,
    info?.happenings?.length
      ? h('ul', { class: 'panel' }, info.happenings.slice(-10).map((x) => h('li', {}, `${time(x.at)} ${x.what}`)))
      : null);
}
