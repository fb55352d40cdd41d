// The app's last known state, kept on the phone so that an app opened
// with no network still shows the steward their incident: the address,
// the elder's essentials, whom to call. Written after every change once
// the stream has spoken; read only when the stream cannot connect.
// Forgotten at logout: it holds elders' health details.
const KEY = 'eldercare.app.saved';

/**
 * @param {string} stewardId
 * @param {{steward:any, offers:Map, incidents:Map, elders:Map, skew:number}} state
 */
export function saveState(stewardId, state) {
  const offers = [...state.offers.values()];
  const incidents = [...state.incidents.values()];
  // Only the elders this steward is going to or is offered: nothing more
  // about anybody stays on the phone.
  const needed = new Set([...offers.map((o) => o.elder?.id), ...incidents.map((i) => i.elder_id)]);
  const elders = [...state.elders.values()].filter((e) => needed.has(e.id));
  const saved = {
    v: 1,
    steward_id: stewardId,
    saved_at: new Date().toISOString(),
    skew: state.skew,
    steward: state.steward,
    offers,
    incidents,
    elders,
  };
  try {
    localStorage.setItem(KEY, JSON.stringify(saved));
  } catch { /* storage full or refused: the live app works without it */ }
}

/** What was saved for this steward, or null. */
export function loadState(stewardId) {
  try {
    const s = JSON.parse(localStorage.getItem(KEY));
    return s?.v === 1 && s.steward_id === stewardId ? s : null;
  } catch {
    return null;
  }
}

export function forgetState() {
  localStorage.removeItem(KEY);
}
