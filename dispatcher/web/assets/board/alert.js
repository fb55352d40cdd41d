// A new critical incident cannot be missed: a banner that stays until a
// supervisor says they have seen it (always), and a beep repeated while
// it stands (only after the supervisor turned sound on: browsers allow
// audio only after a click, and a wall screen must not surprise anyone).
import { t } from '../common/i18n.js';
import { h, fill } from '../common/dom.js';
import { state, subscribe, elderName } from './state.js';
import { label } from './incidents.js';

const SEEN_KEY = 'eldercare.board.seen';
const seen = new Set(JSON.parse(sessionStorage.getItem(SEEN_KEY) ?? '[]'));
let box;
let audio = null;
let soundOn = false;
let beeper = null;

export function initAlerts(el) {
  box = el;
  subscribe((what) => { if (what === 'incidents' || what === 'elders' || what === 'lang') render(); });
  render();
}

/** Critical incidents still looking for a steward that nobody has marked seen. */
function pending() {
  return [...state.incidents.values()].filter(
    (i) => i.priority === 'critical' && i.status === 'dispatching' && !seen.has(i.id),
  );
}

function render() {
  const list = pending();
  fill(box, list.map((i) => h('div', { class: 'alert', role: 'alert', dataset: { id: i.id } },
    h('strong', { text: '⚠ ' + t('alert.title') }),
    h('span', { text: `${elderName(i.elder_id)} · ${label('kind', i.kind)}` }),
    h('a', { href: '#incident/' + encodeURIComponent(i.id), class: 'button', text: t('alert.open') }),
    h('button', { type: 'button', onclick: () => markSeen(i.id), text: t('alert.seen') }))));
  document.body.classList.toggle('alerting', list.length > 0);
  if (list.length && soundOn) startBeeping(); else stopBeeping();
}

function markSeen(id) {
  seen.add(id);
  sessionStorage.setItem(SEEN_KEY, JSON.stringify([...seen].slice(-200)));
  render();
}

export function initSound(button) {
  const show = () => {
    button.textContent = t(soundOn ? 'top.sound_on' : 'top.sound_off');
    button.setAttribute('aria-pressed', String(soundOn));
  };
  subscribe((what) => { if (what === 'lang') show(); });
  show();
  button.addEventListener('click', () => {
    soundOn = !soundOn;
    if (soundOn) {
      audio ??= new AudioContext();
      audio.resume();
      beep();
    }
    show();
    render();
  });
}

function startBeeping() {
  if (beeper) return;
  beep();
  beeper = setInterval(beep, 2500);
}

function stopBeeping() {
  clearInterval(beeper);
  beeper = null;
}

/** Two short tones, made on the spot: no audio file to load. */
function beep() {
  if (!audio) return;
  const now = audio.currentTime;
  for (const [start, freq] of [[0, 880], [0.25, 660]]) {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = freq;
    osc.type = 'square';
    gain.gain.setValueAtTime(0.0001, now + start);
    gain.gain.exponentialRampToValueAtTime(0.3, now + start + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, now + start + 0.2);
    osc.connect(gain).connect(audio.destination);
    osc.start(now + start);
    osc.stop(now + start + 0.22);
  }
}
