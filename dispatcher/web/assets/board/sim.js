// Starting and stopping a simulator scenario (admin only, and off in
// production unless enabled): a 404, 403 or 409 says "not available".
import { api, ApiError } from '../common/api.js';
import { t } from '../common/i18n.js';
import { h, fill } from './dom.js';

const FALLBACK = ['ordinary-day', 'flu-week', 'earthquake', 'power-cut', 'stuck-button'];

export async function showSim(root) {
  const title = h('h2', { text: t('sim.title') });
  fill(root, title, h('p', { class: 'muted', text: t('loading') }));
  let info;
  try {
    info = await api('GET', '/sim');
  } catch (e) {
    if (e instanceof ApiError && [403, 404, 409, 503].includes(e.status)) {
      fill(root, title, h('p', { id: 'sim-unavailable', class: 'panel', text: t('sim.unavailable') }));
    } else {
      fill(root, title, h('p', { class: 'error-text', role: 'alert', text: t('err.load', { message: e.message }) }));
    }
    return;
  }
  const names = (info?.scenarios ?? FALLBACK).map((s) => (typeof s === 'string' ? s : s.name ?? s.id));
  const running = info?.running ? (info.scenario ?? info.running) : null;
  const status = h('p', { id: 'sim-status', role: 'status', text: running ? t('sim.running', { name: typeof running === 'string' ? running : JSON.stringify(running) }) : t('sim.idle') });
  const select = h('select', { id: 'sim-scenario' }, names.map((n) => h('option', { value: n, text: n })));
  const act = async (path, body, done) => {
    try {
      await api('POST', '/sim/' + path, body);
      status.textContent = t(done);
      setTimeout(() => showSim(root), 500);
    } catch (e) {
      status.textContent = e instanceof ApiError && [403, 404, 409].includes(e.status) ? `${t('sim.unavailable')} (${e.message})` : t('common.error', { message: e.message });
    }
  };
  fill(root, title,
    h('form', { class: 'panel filters', onsubmit: (e) => { e.preventDefault(); act('start', { scenario: select.value }, 'sim.started'); } },
      h('div', {}, h('label', { for: 'sim-scenario', text: t('sim.scenario') }), select),
      h('button', { type: 'submit', class: 'primary', text: t('sim.start') }),
      h('button', { type: 'button', text: t('sim.stop'), onclick: () => act('stop', undefined, 'sim.stopped') })),
    status);
}
