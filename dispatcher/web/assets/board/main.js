// The supervisor dashboard: one page, views chosen by the URL's hash
// (#board, #incident/<id>, #reports, #monthly, #devices, #duty, #manage, #sim), kept
// current by the stream.
import { requireSession } from '../common/session.js';
import { api, logout } from '../common/api.js';
import { openStream } from '../common/stream.js';
import { apply, languageToggle, onLangChange, t } from '../common/i18n.js';
import './strings.js';
import { state, applyEvent, changed, subscribe, loadElders } from './state.js';
import { initBoard } from './incidents.js';
import { initAlerts, initSound } from './alert.js';
import { initMap, showMap } from './map.js';
import { initRoster } from './roster.js';
import { initFollowUps } from './followups.js';
import { showIncident } from './incident.js';
import { showReports } from './reports.js';
import { showCare, showNotebook } from './care.js';
import { showDevices } from './devices.js';
import { showManage } from './manage.js';
import { showSim } from './sim.js';
import { showDuty } from './duty.js';
import { showMonthly } from './monthly.js';

requireSession(['admin', 'supervisor']);

apply();
languageToggle(document.getElementById('lang'));
document.getElementById('logout').addEventListener('click', logout);
initSound(document.getElementById('sound'));
initWall(document.getElementById('wall'));
initBoard(document.getElementById('incidents'), document.getElementById('open-count'));
initRoster(document.getElementById('roster'));
initFollowUps(document.getElementById('followups'));
initAlerts(document.getElementById('alerts'));
initMap(document.getElementById('map'), document.getElementById('map-legend'));

const streamState = document.getElementById('stream-state');
const offline = document.getElementById('offline');
function showStreamState() {
  const key = { live: 'common.live', connecting: 'common.connecting', offline: 'top.offline' }[state.stream];
  streamState.textContent = t(key);
  streamState.className = 'stream-state ' + state.stream;
  offline.hidden = state.stream !== 'offline';
}
subscribe((what) => { if (what === 'stream') showStreamState(); });
showStreamState();

openStream(
  (name, data) => applyEvent(name, data),
  (s) => { state.stream = s; changed('stream'); },
);

// What this login sees: a supervisor scoped to a community or a district
// gets only its grids from the API and the stream; the header says which.
const scopeEl = document.getElementById('scope');
let scope = null;
function showScope() {
  if (scope === null) return;
  const [kind, ...rest] = (scope || '').split(':');
  const name = rest.join(':');
  scopeEl.textContent = kind === 'community' ? t('top.scope_community', { name })
    : kind === 'district' ? t('top.scope_district', { name })
    : t('top.scope_site');
  scopeEl.dataset.scope = scope || '';
  scopeEl.hidden = false;
}
api('GET', '/auth/me').then((me) => { scope = me.scope ?? ''; showScope(); }).catch(() => {});

// Settings and elders: the stream does not carry them.
api('GET', '/config/web').then((c) => { Object.assign(state.config, c); changed('config'); }).catch(() => {});
loadElders();

const views = {
  board: () => showMap(),
  incident: (id) => showIncident(document.getElementById('view-incident'), id),
  reports: () => showReports(document.getElementById('view-reports')),
  care: () => showCare(document.getElementById('view-care')),
  elder: (id) => showNotebook(document.getElementById('view-elder'), id),
  monthly: () => showMonthly(document.getElementById('view-monthly')),
  devices: () => showDevices(document.getElementById('view-devices')),
  duty: () => showDuty(document.getElementById('view-duty')),
  manage: (sub) => showManage(document.getElementById('view-manage'), sub),
  sim: () => showSim(document.getElementById('view-sim')),
};

function route() {
  const [name, arg] = location.hash.replace(/^#/, '').split('/').map(decodeURIComponent);
  const view = views[name] ? name : 'board';
  for (const el of document.querySelectorAll('main > .view')) el.hidden = el.id !== 'view-' + view;
  for (const a of document.querySelectorAll('nav a')) {
    const current = a.dataset.view === view || (view === 'incident' && a.dataset.view === 'board')
      || (view === 'elder' && a.dataset.view === 'care');
    if (current) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  views[view](arg);
}
window.addEventListener('hashchange', route);
onLangChange(() => { showStreamState(); showScope(); route(); changed('lang'); });
route();

function initWall(button) {
  const set = (on) => {
    document.body.classList.toggle('wall', on);
    button.setAttribute('aria-pressed', String(on));
    localStorage.setItem('eldercare.wall', on ? '1' : '');
    changed('layout');
  };
  const param = new URLSearchParams(location.search).get('wall');
  set(param != null ? param === '1' : localStorage.getItem('eldercare.wall') === '1');
  button.addEventListener('click', () => set(!document.body.classList.contains('wall')));
}
