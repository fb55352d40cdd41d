// What the board knows, kept current by the stream: open incidents and
// stewards (from the `snapshot` and then `incident` / `steward` events),
// plus the elders (for names and homes) and the web settings.
import { api } from '../common/api.js';

export const state = {
  /** @type {Map<string, any>} open incidents by id */
  incidents: new Map(),
  /** @type {Map<string, any>} */
  stewards: new Map(),
  /** @type {Map<string, any>} */
  elders: new Map(),
  config: {
    target_ack_s: 60, target_arrive_s: 900, map_tile_url: null,
    escalate_after_s: { critical: 90, urgent: 180, routine: 600, technical: 3600 },
  },
  stream: 'connecting',
  /** Server time minus browser time, in ms, from the latest event. */
  skew: 0,
};

export const OPEN = ['dispatching', 'acknowledged', 'on_site'];
export const PRIORITIES = ['critical', 'urgent', 'routine', 'technical'];

const listeners = new Set();

/** Calls `f(what)` after each change ('incidents', 'stewards', 'elders', 'stream'). */
export function subscribe(f) {
  listeners.add(f);
  return () => listeners.delete(f);
}

export function changed(what) {
  for (const f of listeners) f(what);
}

export function applyEvent(name, data) {
  if (name === 'snapshot') {
    state.incidents = new Map((data.incidents ?? []).map((i) => [i.id, i]));
    state.stewards = new Map((data.stewards ?? []).map((s) => [s.id, s]));
    changed('incidents');
    changed('stewards');
  } else if (name === 'incident') {
    if (data.elder_id && !state.elders.has(data.elder_id)) eldersSoon();
    if (OPEN.includes(data.status)) state.incidents.set(data.id, data);
    else state.incidents.delete(data.id);
    changed('incidents');
    changed('incident:' + data.id);
  } else if (name === 'steward') {
    state.stewards.set(data.id, data);
    changed('stewards');
  }
}

/** Most urgent first: priority, then the oldest. */
export function byUrgency(a, b) {
  const p = PRIORITIES.indexOf(a.priority) - PRIORITIES.indexOf(b.priority);
  return p || Date.parse(a.created_at) - Date.parse(b.created_at);
}

/** Seconds since `iso`, by the browser's clock. */
export function ageS(iso) {
  return (Date.now() - Date.parse(iso)) / 1000;
}

/**
 * Whether an open incident is past its target: not acknowledged within
 * target_ack_s, or not on site within target_arrive_s, of created_at.
 */
export function pastTarget(i) {
  const age = ageS(i.created_at);
  if (i.status === 'dispatching') return age > state.config.target_ack_s;
  if (i.status === 'acknowledged') return age > state.config.target_arrive_s;
  return false;
}

export function elderName(id) {
  return state.elders.get(id)?.name ?? id ?? '–';
}

export function stewardName(id) {
  return id ? state.stewards.get(id)?.name ?? id : null;
}

/** Elders for names and homes: the stream does not carry them. */
export async function loadElders() {
  try {
    const list = await api('GET', '/elders');
    state.elders = new Map(list.map((e) => [e.id, e]));
    changed('elders');
  } catch { /* names fall back to ids; the map shows incidents' homes it knows */ }
}

let eldersTimer = null;
/** An incident of an elder registered since the page loaded: fetch again, once. */
function eldersSoon() {
  if (eldersTimer) return;
  eldersTimer = setTimeout(() => { eldersTimer = null; loadElders(); }, 500);
}
